"""The offline `overcrypt` commands, driven as a user would: keygen, encrypt,
decrypt, inspect, enroll. Files we write are also read back by the
independent Python reference of docs/file-format.md."""
import base64
import json
import os
import pathlib
import re
import stat
import sys

import pytest

from conftest import ROOT
import ptyrun

sys.path.insert(0, str(ROOT / "tests" / "ref"))
import ovcref  # noqa: E402

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GOOD_PASS = "Tr0ub4dor&3-horse"


@pytest.fixture
def key(oc, tmp_path):
    k = tmp_path / "asset.key"
    p = oc("keygen", "-o", k)
    assert p.returncode == 0, p.stderr
    return k


def key_bytes(keyfile):
    doc = json.loads(pathlib.Path(keyfile).read_text())
    (entry,) = doc["keys"]
    return entry["key_id"], base64.b64decode(entry["key"])


def err(p):
    return p.stderr.decode(errors="replace")


def no_temp_left(folder):
    left = [n for n in os.listdir(folder) if ".ovc-" in n or ".tmp-" in n]
    assert not left, f"temporary files left behind: {left}"


# --- usage -------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["keygen", "encrypt", "decrypt", "inspect", "enroll"])
def test_every_command_has_help(oc, cmd):
    p = oc(cmd, "--help")
    assert p.returncode == 0
    assert b"Usage: overcrypt " + cmd.encode() in p.stdout


def test_top_level_help_version_and_usage_errors(oc, build):
    assert oc("--help").returncode == 0
    assert b"overcrypt" in oc("--version").stdout
    p = oc("frobnicate")
    assert p.returncode == 2 and "unknown command 'frobnicate'" in err(p)
    assert oc().returncode == 2
    assert oc("encrypt", "--bogus").returncode == 2
    assert oc("encrypt", "x").returncode == 2            # no --key
    assert oc("keygen").returncode == 2                  # no -o
    assert oc("inspect", "--verify", "x").returncode == 2  # --verify without --key
    for prog in ("overcrypt-admin", "overcryptd"):
        from conftest import run
        assert run([build / prog, "--help"]).returncode == 0
        assert run([build / prog, "--version"]).returncode == 0
        assert run([build / prog, "nonsense"]).returncode == 2


# --- keygen ------------------------------------------------------------------------

def test_keygen_prints_id_mode_0600_never_overwrites(oc, tmp_path):
    k = tmp_path / "k"
    p = oc("keygen", "-o", k)
    assert p.returncode == 0
    kid = p.stdout.decode().strip()
    assert UUID.match(kid), kid
    assert stat.S_IMODE(k.stat().st_mode) == 0o600
    assert key_bytes(k)[0] == kid and len(key_bytes(k)[1]) == 32
    before = k.read_bytes()
    p = oc("keygen", "-o", k)
    assert p.returncode == 1 and "not overwritten" in err(p)
    assert k.read_bytes() == before


# --- encrypt / decrypt -----------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 12288, 1_000_003])
def test_round_trip_and_reference_reads_it(oc, key, tmp_path, size):
    data = os.urandom(size)
    f = tmp_path / "doc.bin"
    f.write_bytes(data)
    os.chmod(f, 0o640)
    os.utime(f, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    assert oc("encrypt", "--key", key, f).returncode == 0
    enc = f.read_bytes()
    assert enc[:8] == b"OVCRYPT1"
    assert size < 64 or data[:64] not in enc
    st = f.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_mtime_ns == 1_500_000_000_987_654_321
    kid, kb = key_bytes(key)
    assert enc[16:32] == bytes.fromhex(kid.replace("-", ""))
    assert ovcref.decrypt(kb, enc) == data
    assert oc("decrypt", "--key", key, f).returncode == 0
    assert f.read_bytes() == data
    assert f.stat().st_mtime_ns == 1_500_000_000_987_654_321
    no_temp_left(tmp_path)


def test_encrypt_keeps_owner_and_leaves_encrypted_alone(oc, key, tmp_path):
    f = tmp_path / "owned"
    f.write_bytes(b"secret plans")
    os.chown(f, 65534, 65534)
    assert oc("encrypt", "--key", key, f).returncode == 0
    assert (f.stat().st_uid, f.stat().st_gid) == (65534, 65534)
    before = f.read_bytes()
    p = oc("encrypt", "--key", key, f)
    assert p.returncode == 0 and "already encrypted" in err(p)
    assert f.read_bytes() == before


def test_encrypt_refuses_symlinks_hardlinks_and_folders(oc, key, tmp_path):
    target = tmp_path / "t"
    target.write_bytes(b"x")
    (tmp_path / "ln").symlink_to(target)
    p = oc("encrypt", "--key", key, tmp_path / "ln")
    assert p.returncode == 1 and "symbolic link" in err(p)
    os.link(target, tmp_path / "hard")
    p = oc("encrypt", "--key", key, target)
    assert p.returncode == 1 and "hard links" in err(p)
    assert target.read_bytes() == b"x"
    p = oc("encrypt", "--key", key, tmp_path)
    assert p.returncode == 1 and "not a regular file" in err(p)
    p = oc("encrypt", "--key", key, tmp_path / "missing")
    assert p.returncode == 1 and "missing" in err(p)


def test_decrypt_to_output_file_and_folder(oc, key, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"alpha" * 1000)
    b.write_bytes(b"beta" * 3000)
    assert oc("encrypt", "--key", key, a, b).returncode == 0
    out = tmp_path / "one"
    assert oc("decrypt", "--key", key, "-o", out, a).returncode == 0
    assert out.read_bytes() == b"alpha" * 1000
    assert a.read_bytes()[:8] == b"OVCRYPT1"          # source untouched
    folder = tmp_path / "many"
    assert oc("decrypt", "--key", key, "-o", folder, a, b).returncode == 0
    assert (folder / "a.txt").read_bytes() == b"alpha" * 1000
    assert (folder / "b.txt").read_bytes() == b"beta" * 3000


def test_wrong_key_names_file_and_key_and_leaves_nothing(oc, key, tmp_path):
    other = tmp_path / "other.key"
    oc("keygen", "-o", other, check=True)
    f = tmp_path / "report.docx"
    f.write_bytes(b"quarterly numbers")
    oc("encrypt", "--key", key, f, check=True)
    kid = key_bytes(key)[0]
    p = oc("decrypt", "--key", other, "-o", tmp_path / "out", f)
    assert p.returncode == 1
    assert f"report.docx is encrypted with key {kid}, which is not in the key file" in err(p)
    assert not (tmp_path / "out").exists()
    no_temp_left(tmp_path)


def test_decrypt_plaintext_is_refused(oc, key, tmp_path):
    f = tmp_path / "plain"
    f.write_bytes(b"hello")
    p = oc("decrypt", "--key", key, f)
    assert p.returncode == 1 and "not encrypted" in err(p)
    assert f.read_bytes() == b"hello"


def tamper_cases(size):
    """(name, function(bytes) -> bytes, block named or None)."""
    hdr, slot = 120, 4124

    def flip(at):
        return lambda d: d[:at] + bytes([d[at] ^ 1]) + d[at + 1:]
    return [
        ("flip in block 2 ciphertext", flip(hdr + 2 * slot + 100), 2),
        ("flip in block 0 nonce", flip(hdr + 3), 0),
        ("flip in final tag", lambda d: d[:-1] + bytes([d[-1] ^ 0x80]), 3),
        ("swap blocks 0 and 1", lambda d: d[:hdr] + d[hdr + slot:hdr + 2 * slot]
         + d[hdr:hdr + slot] + d[hdr + 2 * slot:], 0),
        ("cut at block boundary", lambda d: d[:hdr + 3 * slot], 2),
        ("cut mid-block", lambda d: d[:-50], 3),
        ("trailing garbage", lambda d: d + b"junkjunk", 3),
        ("zeroed inner block", lambda d: d[:hdr + slot] + bytes(slot) + d[hdr + 2 * slot:], 1),
    ]


@pytest.mark.parametrize("case", range(8))
def test_tamper_is_caught_named_and_leaves_no_output(oc, key, tmp_path, case):
    data = os.urandom(3 * 4096 + 777)
    f = tmp_path / "victim"
    f.write_bytes(data)
    oc("encrypt", "--key", key, f, check=True)
    name, mutate, block = tamper_cases(len(data))[case]
    f.write_bytes(mutate(f.read_bytes()))
    out = tmp_path / "out"
    p = oc("decrypt", "--key", key, "-o", out, f)
    assert p.returncode == 1, name
    assert f"block {block} failed authentication" in err(p) or f"block {block} " in err(p), (name, err(p))
    assert not out.exists(), name
    p = oc("inspect", "--verify", "--key", key, f)
    assert p.returncode == 1 and f"block {block}" in err(p), (name, err(p))
    no_temp_left(tmp_path)


def test_swapped_headers_and_header_cut(oc, key, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(os.urandom(9000))
    b.write_bytes(os.urandom(9000))
    oc("encrypt", "--key", key, a, b, check=True)
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db[:120] + da[120:])
    p = oc("decrypt", "--key", key, "-o", tmp_path / "o", a)
    assert p.returncode == 1 and "block 0 failed authentication" in err(p)
    b.write_bytes(db[:120])
    p = oc("decrypt", "--key", key, "-o", tmp_path / "o", b)
    assert p.returncode == 1 and "cut back to its header" in err(p)
    b.write_bytes(db[:8] + bytes([2]) + db[9:])
    p = oc("decrypt", "--key", key, "-o", tmp_path / "o", b)
    assert p.returncode == 1 and "version 2 is not supported" in err(p)
    assert not (tmp_path / "o").exists()


# --- inspect ---------------------------------------------------------------------

def test_inspect_shows_header_and_verifies(oc, key, tmp_path):
    f = tmp_path / "f"
    f.write_bytes(os.urandom(10000))
    oc("encrypt", "--key", key, f, check=True)
    p = oc("inspect", f)
    out = p.stdout.decode()
    assert p.returncode == 0
    kid = key_bytes(key)[0]
    assert f"key id:     {kid}" in out
    assert "format:     overcrypt file format v1" in out
    assert "plaintext:  10000 bytes" in out
    assert f"backing:    {f.stat().st_size} bytes in 3 blocks" in out
    assert re.search(r"file id:    [0-9a-f]{32}", out)
    p = oc("inspect", "--verify", "--key", key, f)
    assert p.returncode == 0 and "all 3 blocks authenticate" in p.stdout.decode()
    plain = tmp_path / "plain"
    plain.write_bytes(b"abc")
    p = oc("inspect", plain)
    assert p.returncode == 0 and "plaintext (not encrypted), 3 bytes" in p.stdout.decode()


# --- key exports (age passphrase files of keys JSON) ---------------------------

def test_decrypt_with_age_key_export(oc, key, tmp_path):
    f = tmp_path / "doc"
    f.write_bytes(b"exported")
    oc("encrypt", "--key", key, f, check=True)
    export = tmp_path / "export.age"
    r = ptyrun.run(["age", "-p", "-o", str(export)], answers=[GOOD_PASS, GOOD_PASS],
                   stdin=key.read_bytes())
    assert r.returncode == 0, r.stderr
    pf = tmp_path / "pass"
    pf.write_text(GOOD_PASS + "\n")
    p = oc("decrypt", "--key", export, "--passphrase-file", pf, "-o", tmp_path / "out", f)
    assert p.returncode == 0, err(p)
    assert (tmp_path / "out").read_bytes() == b"exported"
    pf.write_text("Wrong-passphrase-9\n")
    p = oc("decrypt", "--key", export, "--passphrase-file", pf, "-o", tmp_path / "out2", f)
    assert p.returncode == 1 and "export.age" in err(p)
    assert not (tmp_path / "out2").exists()


# --- enroll ----------------------------------------------------------------------

def test_enroll_creates_keystore_prints_recipient(oc, tmp_path):
    ks = tmp_path / "sub" / "keystore.age"
    pf = tmp_path / "pass"
    pf.write_text(GOOD_PASS + "\n")
    p = oc("enroll", "--keystore", ks, "--passphrase-file", pf, "--user", "alice")
    assert p.returncode == 0, err(p)
    rcp = p.stdout.decode().strip()
    assert re.match(r"^age1[02-9ac-hj-np-z]{58}$", rcp), rcp
    assert stat.S_IMODE(ks.stat().st_mode) == 0o600
    # stock age opens it with the passphrase; the identity matches
    r = ptyrun.run(["age", "-d", str(ks)], answers=[GOOD_PASS])
    assert r.returncode == 0, r.stderr
    assert f"# public key: {rcp}".encode() in r.stdout
    p = oc("enroll", "--keystore", ks, "--passphrase-file", pf)
    assert p.returncode == 1 and "exists" in err(p)


@pytest.mark.parametrize("pw,rule", [
    ("Short1!", "12"), ("alllowercase12345!", "upper"), ("ALLUPPERCASE12345!", "lower"),
    ("NoDigitsHere!!xyz", "digit"), ("NoSpecials12345xyz", "special"),
    ("Alice-Secret-12345", "user name"),
])
def test_enroll_passphrase_policy_names_the_rule(oc, tmp_path, pw, rule):
    pf = tmp_path / "pass"
    pf.write_text(pw + "\n")
    ks = tmp_path / "ks.age"
    p = oc("enroll", "--keystore", ks, "--passphrase-file", pf, "--user", "alice")
    assert p.returncode == 1
    assert rule in err(p), err(p)
    assert not ks.exists()


def test_enroll_asks_twice_on_a_terminal(build, tmp_path):
    ks = tmp_path / "ks.age"
    r = ptyrun.run([str(build / "overcrypt"), "enroll", "--keystore", str(ks), "--user", "bob"],
                   answers=[GOOD_PASS, GOOD_PASS + "x"])
    assert r.returncode == 1 and b"differ" in r.stderr
    assert not ks.exists()
    r = ptyrun.run([str(build / "overcrypt"), "enroll", "--keystore", str(ks), "--user", "bob"],
                   answers=[GOOD_PASS, GOOD_PASS])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"age1")
