"""`make install`: the systemd units, the man pages and what the units may not
contain (docs/systemd.md)."""
import os
import shutil
import stat
import subprocess

import pytest

from conftest import BUILD, ROOT, run

PREFIX = "/usr"

# Options that make systemd set up a private mount namespace (or mount
# something for the service): the overlay would be invisible to the user.
MOUNT_NS_OPTIONS = {
    "PrivateTmp", "PrivateDevices", "PrivateMounts", "MountFlags",
    "ProtectSystem", "ProtectHome",
    "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths",
    "NoExecPaths", "ReadOnlyDirectories", "ReadWriteDirectories",
    "InaccessibleDirectories", "TemporaryFileSystem", "BindPaths",
    "BindReadOnlyPaths",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectProc", "ProcSubset", "ProtectClock",
    "ProtectHostname",
    "PrivateNetwork", "PrivateIPC", "NetworkNamespacePath", "PrivateUsers",
    "RootDirectory", "RootImage", "MountImages", "ExtensionImages",
    "ExtensionDirectories", "MountAPIVFS", "LogNamespace", "DynamicUser",
}
# In a user unit each of these implies NoNewPrivileges=yes (systemd.exec(5)),
# which disables the setuid fusermount3; capabilities fail there outright.
USER_UNIT_FORBIDDEN = {
    "NoNewPrivileges", "SystemCallFilter", "SystemCallArchitectures",
    "SystemCallLog", "RestrictAddressFamilies", "RestrictNamespaces",
    "LockPersonality", "MemoryDenyWriteExecute", "RestrictRealtime",
    "RestrictSUIDSGID", "CapabilityBoundingSet", "AmbientCapabilities",
}

USER_UNIT = "lib/systemd/user/overcryptd.service"
SYSTEM_UNIT = "lib/systemd/system/overcryptd-system.service"
MAN_PAGES = ["man1/overcrypt.1", "man1/overcrypt-admin.1",
             "man5/overcrypt.conf.5", "man8/overcryptd.8"]


def parse_unit(path):
    """A unit file as a list of (section, key, value); continuation lines
    (a trailing backslash) are joined."""
    out, section, pending = [], None, ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        assert "=" in line, f"{path}: not key=value: {line!r}"
        k, v = line.split("=", 1)
        out.append((section, k.strip(), v.strip()))
    return out


def values(entries, key):
    return [v for _, k, v in entries if k == key]


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    """`make install DESTDIR=... PREFIX=/usr` into a fresh folder."""
    if not (BUILD / "overcryptd").exists():
        pytest.fail(f"{BUILD}/overcryptd missing: run make first")
    d = tmp_path_factory.mktemp("destdir")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DESTDIR", "PREFIX", "BINDIR")}
    p = subprocess.run(["make", "-C", str(ROOT), "install", f"BUILD={BUILD}",
                        f"DESTDIR={d}", f"PREFIX={PREFIX}"],
                       capture_output=True, env=env, timeout=600)
    assert p.returncode == 0, (p.stdout.decode(errors="replace")[-2000:] +
                               p.stderr.decode(errors="replace")[-2000:])
    return d


def installed(destdir, rel):
    return destdir / PREFIX.lstrip("/") / rel


def test_programs_in_bin(destdir):
    for prog in ("overcrypt", "overcrypt-admin", "overcryptd"):
        f = installed(destdir, f"bin/{prog}")
        assert f.is_file(), f"{f} not installed"
        assert f.stat().st_mode & 0o777 == 0o755
    assert not installed(destdir, "sbin/overcryptd").exists()


@pytest.mark.parametrize("rel,args", [
    (USER_UNIT, ["--foreground"]),
    (SYSTEM_UNIT, ["--foreground", "--system"]),
])
def test_unit_installed_with_path(destdir, rel, args):
    unit = installed(destdir, rel)
    assert unit.is_file(), f"{unit} not installed"
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    assert not list(unit.parent.glob("*.tmp")), "temporary file left behind"
    text = unit.read_text()
    assert "@" not in text.replace("$MAINPID", ""), "a placeholder was not substituted"
    e = parse_unit(unit)
    starts = values(e, "ExecStart")
    assert starts == [f"{PREFIX}/bin/overcryptd " + " ".join(args)]
    binary = destdir / starts[0].split()[0].lstrip("/")
    assert binary.is_file() and os.access(binary, os.X_OK), f"{binary} missing"
    assert values(e, "Type") == ["simple"]
    assert values(e, "ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert values(e, "Restart") == ["on-failure"]
    assert values(e, "LimitCORE") == ["0"]
    assert values(e, "UMask") == ["0077"]
    assert values(e, "KillSignal") in ([], ["SIGTERM"])


def test_user_unit_settings(destdir):
    e = parse_unit(installed(destdir, USER_UNIT))
    assert values(e, "WantedBy") == ["default.target"]
    assert not values(e, "User"), "the user unit runs as its user"


def test_system_unit_settings(destdir):
    e = parse_unit(installed(destdir, SYSTEM_UNIT))
    assert values(e, "StateDirectory") == ["overcrypt"]
    assert values(e, "StateDirectoryMode") == ["0700"]
    assert values(e, "RuntimeDirectory") == ["overcrypt"]
    assert values(e, "RuntimeDirectoryMode") == ["0755"]
    assert "network-online.target" in " ".join(values(e, "Wants"))
    assert "network-online.target" in " ".join(values(e, "After"))
    assert not values(e, "User"), "the system unit runs as root"
    assert values(e, "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize("rel", [USER_UNIT, SYSTEM_UNIT])
def test_no_mount_namespace_options(destdir, rel):
    e = parse_unit(installed(destdir, rel))
    bad = sorted({k for _, k, _ in e if k in MOUNT_NS_OPTIONS})
    assert not bad, f"{rel} has options that make a mount namespace: {bad}"


def test_user_unit_keeps_setuid_fusermount(destdir):
    e = parse_unit(installed(destdir, USER_UNIT))
    bad = sorted({k for _, k, _ in e if k in USER_UNIT_FORBIDDEN})
    assert not bad, f"the user unit has options that imply NoNewPrivileges: {bad}"


def test_man_pages_installed(destdir):
    for page in MAN_PAGES:
        f = installed(destdir, f"share/man/{page}")
        assert f.is_file(), f"{f} not installed"


@pytest.mark.skipif(shutil.which("man") is None, reason="man (man-db) not installed")
def test_man_pages_render_cleanly(destdir):
    for page in MAN_PAGES:
        f = installed(destdir, f"share/man/{page}")
        p = run(["man", "--warnings", "-l", f], env={"MANWIDTH": "80"})
        assert p.returncode == 0, p.stderr.decode(errors="replace")
        assert p.stderr == b"", f"{page}: {p.stderr.decode(errors='replace')}"
        assert b"overcrypt" in p.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze (Debian package systemd) not installed")
@pytest.mark.parametrize("rel,user", [(USER_UNIT, True), (SYSTEM_UNIT, False)])
def test_systemd_analyze_verify(destdir, tmp_path, rel, user):
    # The unit names the installed path (/usr/bin/overcryptd), which is not
    # on this machine: verify a copy that names the DESTDIR binary, and find
    # the man pages of Documentation= in DESTDIR.
    unit = installed(destdir, rel)
    binary = installed(destdir, "bin/overcryptd")
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace(f"{PREFIX}/bin/overcryptd",
                                             str(binary)))
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    args = ["systemd-analyze"] + (["--user"] if user else []) + ["verify"]
    if shutil.which("man") is None:
        args.append("--man=no")
    p = run(args + [copy], env={
        "MANPATH": str(installed(destdir, "share/man")),
        "XDG_RUNTIME_DIR": str(rundir),
        "SYSTEMD_LOG_LEVEL": "notice",
    })
    out = (p.stdout + p.stderr).decode(errors="replace")
    assert p.returncode == 0, out
    # verify reports unknown keys and bad values as warnings with status 0
    assert out.strip() == "", out
