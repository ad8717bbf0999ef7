"""Our age code (through tests/tools/agetool) against stock age 1.1.1, both
directions: X25519 recipients and scrypt passphrases, binary and armored,
and clear errors for a wrong key or passphrase. Stock age reads passphrases
only from /dev/tty, hence ptyrun."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ptyrun  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("OVC_BUILD", ROOT / "build"))
AGE = shutil.which("age") or "/usr/bin/age"
AGE_KEYGEN = shutil.which("age-keygen") or "/usr/bin/age-keygen"
LOGN = "10"  # our scrypt work factor in tests: fast, and age accepts it
PASS = "Tr0ub4dor&3-interop"

SIZES = [0, 1, 65536, 200001]
MODES = ["binary", "armored"]


@pytest.fixture(scope="session")
def agetool():
    tool = BUILD / "tools" / "agetool"
    if not tool.exists():
        pytest.fail(f"{tool} missing: build tests/tools/agetool.c first")
    if not os.path.exists(AGE):
        pytest.fail("stock age is not installed (apt-get install age)")
    return tool


def run(args, input=b"", check=False):
    p = subprocess.run([str(a) for a in args], input=input,
                       capture_output=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"{args} exited {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')}")
    return p


def data(n):
    return bytes((i * 7 + (i >> 8)) & 0xFF for i in range(n))


@pytest.fixture
def keypair(tmp_path):
    """An age-keygen identity file and its recipient."""
    key = tmp_path / "key.txt"
    run([AGE_KEYGEN, "-o", key], check=True)
    rcpt = run([AGE_KEYGEN, "-y", key], check=True).stdout.decode().strip()
    return key, rcpt


@pytest.fixture
def passfile(tmp_path):
    p = tmp_path / "pass"
    p.write_text(PASS + "\n")
    return p


def armored_flag(mode):
    return ["-a"] if mode == "armored" else []


def check_form(blob, mode):
    if mode == "armored":
        assert blob.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    else:
        assert blob.startswith(b"age-encryption.org/v1\n")


# --- ours -> age ------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_ours_x25519_opens_with_age(agetool, keypair, mode, size):
    key, rcpt = keypair
    plain = data(size)
    enc = run([agetool, "encrypt", "-r", rcpt, *armored_flag(mode)],
              plain, check=True).stdout
    check_form(enc, mode)
    out = run([AGE, "-d", "-i", key], enc, check=True).stdout
    assert out == plain


def test_ours_several_recipients_open_with_age(agetool, tmp_path):
    keys = []
    for i in range(3):
        k = tmp_path / f"k{i}"
        run([AGE_KEYGEN, "-o", k], check=True)
        keys.append((k, run([AGE_KEYGEN, "-y", k], check=True)
                     .stdout.decode().strip()))
    args = [agetool, "encrypt"]
    for _, r in keys:
        args += ["-r", r]
    enc = run(args, b"to three", check=True).stdout
    for k, _ in keys:
        assert run([AGE, "-d", "-i", k], enc, check=True).stdout == b"to three"


@pytest.mark.parametrize("mode", MODES)
def test_ours_passphrase_opens_with_age(agetool, passfile, tmp_path, mode):
    plain = data(70000)
    enc = run([agetool, "encrypt", "-p", passfile, "-n", LOGN,
               *armored_flag(mode)], plain, check=True).stdout
    check_form(enc, mode)
    f = tmp_path / "f.age"
    f.write_bytes(enc)
    r = ptyrun.run([AGE, "-d", f], answers=[PASS])
    assert r.answered == 1, r.tty
    assert r.returncode == 0, r.stderr
    assert r.stdout == plain


def test_age_refuses_our_file_with_wrong_key(agetool, keypair, tmp_path):
    _, rcpt = keypair
    other = tmp_path / "other.txt"
    run([AGE_KEYGEN, "-o", other], check=True)
    enc = run([agetool, "encrypt", "-r", rcpt], b"secret", check=True).stdout
    p = run([AGE, "-d", "-i", other], enc)
    assert p.returncode != 0
    assert p.stdout == b""
    assert b"no identity matched" in p.stderr


def test_age_refuses_our_file_with_wrong_passphrase(agetool, passfile,
                                                    tmp_path):
    enc = run([agetool, "encrypt", "-p", passfile, "-n", LOGN], b"secret",
              check=True).stdout
    f = tmp_path / "f.age"
    f.write_bytes(enc)
    r = ptyrun.run([AGE, "-d", f], answers=["not-" + PASS])
    assert r.returncode != 0
    assert r.stdout == b""
    assert b"incorrect passphrase" in r.stderr


# --- age -> ours ------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", SIZES)
def test_age_x25519_opens_with_ours(agetool, keypair, mode, size):
    key, rcpt = keypair
    plain = data(size)
    enc = run([AGE, "-r", rcpt, *armored_flag(mode)], plain,
              check=True).stdout
    check_form(enc, mode)
    out = run([agetool, "decrypt", "-i", key], enc, check=True).stdout
    assert out == plain


@pytest.mark.parametrize("mode", MODES)
def test_age_passphrase_opens_with_ours(agetool, passfile, mode):
    plain = data(70000)
    r = ptyrun.run([AGE, "-p", *armored_flag(mode)], answers=[PASS, PASS],
                   stdin=plain)
    assert r.answered == 2, r.tty
    assert r.returncode == 0, r.stderr
    check_form(r.stdout, mode)
    out = run([agetool, "decrypt", "-p", passfile], r.stdout,
              check=True).stdout
    assert out == plain


def test_ours_refuses_age_file_with_wrong_key(agetool, keypair, tmp_path):
    _, rcpt = keypair
    other = tmp_path / "other.txt"
    run([AGE_KEYGEN, "-o", other], check=True)
    enc = run([AGE, "-r", rcpt], b"secret", check=True).stdout
    p = run([agetool, "decrypt", "-i", other], enc)
    assert p.returncode == 1
    assert p.stdout == b""
    assert b"no match" in p.stderr
    assert b"no identity or passphrase matches" in p.stderr


def test_ours_refuses_age_file_with_wrong_passphrase(agetool, tmp_path):
    r = ptyrun.run([AGE, "-p"], answers=[PASS, PASS], stdin=b"secret")
    assert r.returncode == 0, r.stderr
    wrong = tmp_path / "wrong"
    wrong.write_text("not-" + PASS + "\n")
    p = run([agetool, "decrypt", "-p", wrong], r.stdout)
    assert p.returncode == 1
    assert p.stdout == b""
    assert b"no match" in p.stderr


def test_ours_refuses_tampered_age_file(agetool, keypair):
    key, rcpt = keypair
    enc = bytearray(run([AGE, "-r", rcpt], data(100000), check=True).stdout)
    enc[-1000] ^= 1  # inside the second (last, 34480-byte) chunk
    p = run([agetool, "decrypt", "-i", key], bytes(enc))
    assert p.returncode == 1
    assert b"payload failure" in p.stderr
    # Only the authenticated first chunk was released.
    assert p.stdout == data(100000)[:65536]
