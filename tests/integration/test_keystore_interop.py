"""Interop of crypto/keystore.c and crypto/keys.c (through
$OVC_BUILD/tools/keytool) with stock age: a keystore we create opens with
`age -d` and holds an identity file whose recipient matches; a keystore made
by stock age opens with ours; a key export made with `age -p` loads with
ovc_keyset_load. Stock age reads passphrases only from a terminal, so it
runs under a pseudo-terminal (ptyrun).

Each test costs one or two scrypt runs at log2(N) = 18 (about a second)."""
import os
import re
import shutil
import stat

import pytest

import ptyrun
from conftest import BUILD, run

AGE = shutil.which("age") or "/usr/bin/age"
AGE_KEYGEN = shutil.which("age-keygen") or "/usr/bin/age-keygen"

PASS = "Correct-Horse7Battery"
OTHER = "Staple#Violin42Orbit"
ID1 = "00112233-4455-6677-8899-aabbccddeeff"
ID2 = "6f1c2b8e-3d4a-4b5c-9d6e-7f8091a2b3c4"
KEY1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="


def pty_run(argv, answers):
    """Stock age with a pseudo-terminal (tests/integration/ptyrun.py):
    returns (exit status, everything it wrote to the terminal or stderr)."""
    r = ptyrun.run(argv, answers=answers, timeout=60)
    return r.returncode, (r.tty + r.stderr).decode(errors="replace")


@pytest.fixture(scope="module")
def tool():
    t = BUILD / "tools" / "keytool"
    if not t.exists():
        pytest.fail(f"{t} missing: build tests/tools/keytool.c there")
    for prog in (AGE, AGE_KEYGEN):
        if not os.path.exists(prog):
            pytest.fail(f"stock {prog} missing (apt-get install age)")
    return t


def text(p):
    return (p.stdout + p.stderr).decode(errors="replace")


def passfile(tmp_path, name, value):
    f = tmp_path / name
    f.write_text(value + "\n")
    return f


def test_our_keystore_opens_with_stock_age(tool, tmp_path):
    ks = tmp_path / "keystore.age"
    p = run([tool, "keystore-create", ks, passfile(tmp_path, "pass", PASS),
             "alice"])
    assert p.returncode == 0, text(p)
    recipient = p.stdout.decode().strip()
    assert re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", recipient)
    assert stat.S_IMODE(os.stat(ks).st_mode) == 0o600

    out = tmp_path / "identity.txt"
    rc, tty = pty_run([AGE, "-d", "-o", out, ks], [PASS])
    assert rc == 0, tty
    ident = out.read_text()
    lines = ident.splitlines()
    assert any(l.startswith("# created: ") for l in lines)
    assert f"# public key: {recipient}" in lines
    secret = [l for l in lines if l and not l.startswith("#")]
    assert len(secret) == 1 and secret[0].startswith("AGE-SECRET-KEY-1")
    # The identity is what stock age-keygen says it is.
    p = run([AGE_KEYGEN, "-y", out], check=True)
    assert p.stdout.decode().strip() == recipient
    # Ours opens it again with the same passphrase, to the same recipient.
    p = run([tool, "keystore-unlock", ks, tmp_path / "pass"], check=True)
    assert p.stdout.decode().strip() == recipient


def test_our_keystore_wrong_passphrase_with_stock_age(tool, tmp_path):
    ks = tmp_path / "keystore.age"
    run([tool, "keystore-create", ks, passfile(tmp_path, "pass", PASS)],
        check=True)
    rc, tty = pty_run([AGE, "-d", "-o", tmp_path / "out", ks], [OTHER])
    assert rc != 0
    assert "incorrect passphrase" in tty or "no identity matched" in tty
    assert not (tmp_path / "out").exists() or \
        (tmp_path / "out").stat().st_size == 0


def test_stock_keystore_opens_with_ours(tool, tmp_path):
    ident = tmp_path / "identity.txt"
    run([AGE_KEYGEN, "-o", ident], check=True)
    recipient = run([AGE_KEYGEN, "-y", ident], check=True).stdout \
        .decode().strip()
    ks = tmp_path / "keystore.age"
    rc, tty = pty_run([AGE, "-p", "-o", ks, ident], [PASS, PASS])
    assert rc == 0, tty
    p = run([tool, "keystore-unlock", ks, passfile(tmp_path, "pass", PASS)])
    assert p.returncode == 0, text(p)
    assert p.stdout.decode().strip() == recipient
    p = run([tool, "keystore-unlock", ks,
             passfile(tmp_path, "other", OTHER)])
    assert p.returncode == 1
    assert "wrong passphrase, or the keystore is damaged" in text(p)


def keys_json():
    return ('{"format": "overcrypt-keys/1", "keys": [\n'
            f' {{"key_id": "{ID1}", "key": "{KEY1}", "asset": "marketing"}},\n'
            f' {{"key_id": "{ID2}", "key": "{KEY2}",'
            ' "created": "2026-11-22T10:00:00Z"}]}\n')


@pytest.mark.parametrize("armor", [False, True])
def test_stock_export_loads(tool, tmp_path, armor):
    plain = tmp_path / "keys.json"
    plain.write_text(keys_json())
    export = tmp_path / "export.age"
    argv = [AGE, "-p", *(["-a"] if armor else []), "-o", export, plain]
    rc, tty = pty_run(argv, [PASS, PASS])
    assert rc == 0, tty

    p = run([tool, "load", export, passfile(tmp_path, "pass", PASS)])
    assert p.returncode == 0, text(p)
    assert p.stdout.decode().split() == [ID1, ID2]
    # No passphrase: asked for; a wrong one: refused.
    p = run([tool, "load", export])
    assert p.returncode == 1 and "needs a passphrase" in text(p)
    p = run([tool, "load", export, passfile(tmp_path, "other", OTHER)])
    assert p.returncode == 1 and "wrong passphrase" in text(p)
    # The plain file loads too.
    p = run([tool, "load", plain], check=True)
    assert p.stdout.decode().split() == [ID1, ID2]


def test_stock_export_of_bad_json_refused(tool, tmp_path):
    plain = tmp_path / "keys.json"
    plain.write_text(keys_json().replace(KEY2, KEY2[:-4] + "AA=="))
    p = run([tool, "load", plain])
    assert p.returncode == 1
    assert "keys[1].key: 31 bytes, not 32" in text(p)
