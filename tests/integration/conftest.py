"""Shared fixtures for the integration tests: they drive the real binaries."""
import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("OVC_BUILD", ROOT / "build"))


@pytest.fixture(scope="session")
def build():
    """The folder holding overcrypt, overcrypt-admin and overcryptd."""
    if not (BUILD / "overcrypt").exists():
        pytest.fail(f"{BUILD}/overcrypt missing: run make first")
    return BUILD


def run(args, input=None, check=False, env=None, timeout=120):
    """Run a command, capture text output; never raises on a non-zero exit
    unless check is set."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([str(a) for a in args], input=input,
                       capture_output=True, env=e, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')}")
    return p


@pytest.fixture
def oc(build):
    """Call build/overcrypt with arguments; returns CompletedProcess."""
    def call(*args, **kw):
        return run([build / "overcrypt", *args], **kw)
    return call
