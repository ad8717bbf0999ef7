"""Interop of crypto/minisign.c (through $OVC_BUILD/tools/minisigntool) with
the stock minisign: each side verifies the other's signatures and refuses
the same tampering; legacy (non-prehashed) signatures are refused by us."""
import os
import shutil
import stat

import pytest

from conftest import BUILD, run

MINISIGN = shutil.which("minisign") or "/usr/bin/minisign"


@pytest.fixture(scope="module")
def tool():
    t = BUILD / "tools" / "minisigntool"
    if not t.exists():
        pytest.fail(f"{t} missing: build tests/tools/minisigntool.c there")
    if not os.path.exists(MINISIGN):
        pytest.fail("stock minisign missing (apt-get install minisign)")
    return t


def ms(*args):
    """Stock minisign; stdin empty so it can never wait for a password."""
    return run([MINISIGN, *args], input=b"")


def out(p):
    return (p.stdout + p.stderr).decode(errors="replace")


@pytest.fixture
def ours(tool, tmp_path):
    """Our key pair and a file signed with it (trusted comment set)."""
    pub, sec = tmp_path / "ours.pub", tmp_path / "ours.sec"
    run([tool, "keygen", pub, sec], check=True)
    f = tmp_path / "data.bin"
    f.write_bytes(b"overcrypt policy document\n" * 100)
    run([tool, "sign", sec, f, "ours: policy serial 7"], check=True)
    return pub, sec, f


@pytest.fixture
def stock(tmp_path):
    """A stock minisign key pair (unencrypted) and a file it signed."""
    pub, sec = tmp_path / "stock.pub", tmp_path / "stock.key"
    p = ms("-G", "-W", "-p", pub, "-s", sec)
    assert p.returncode == 0, out(p)
    f = tmp_path / "stock-data.bin"
    f.write_bytes(bytes(range(256)) * 64)
    p = ms("-S", "-s", sec, "-m", f, "-t", "stock: trusted text")
    assert p.returncode == 0, out(p)
    return pub, sec, f


def test_keygen_files(tool, ours, tmp_path):
    pub, sec, _ = ours
    st = os.stat(sec)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == 72
    lines = pub.read_text().split("\n")
    assert lines[0].startswith("untrusted comment: minisign public key ")
    assert len(lines) == 3 and lines[2] == "" and len(lines[1]) == 56
    # Never overwrites a key.
    p = run([tool, "keygen", pub, tmp_path / "other.sec"])
    assert p.returncode == 1 and "exists" in out(p)


def test_ours_verified_by_stock(ours):
    pub, _, f = ours
    p = ms("-V", "-p", pub, "-m", f)
    assert p.returncode == 0, out(p)
    assert "Trusted comment: ours: policy serial 7" in out(p)
    bare = pub.read_text().split("\n")[1]
    p = ms("-V", "-P", bare, "-m", f)
    assert p.returncode == 0, out(p)
    # -H: stock insists on the prehashed form, which is all we write.
    p = ms("-V", "-H", "-p", pub, "-m", f)
    assert p.returncode == 0, out(p)


def test_ours_default_comment_and_empty_file(tool, ours, tmp_path):
    pub, sec, _ = ours
    f = tmp_path / "empty"
    f.write_bytes(b"")
    run([tool, "sign", sec, f], check=True)
    p = ms("-V", "-p", pub, "-m", f)
    assert p.returncode == 0, out(p)
    assert "Trusted comment: timestamp:" in out(p)
    p = run([tool, "verify", pub, f])
    assert p.returncode == 0, out(p)


def test_stock_verified_by_ours(tool, stock):
    pub, _, f = stock
    p = run([tool, "verify", pub, f])
    assert p.returncode == 0, out(p)
    assert "Trusted comment: stock: trusted text" in out(p)


def test_stock_crlf_verified_by_both(tool, stock, tmp_path):
    pub, _, f = stock
    crlf = tmp_path / "crlf.minisig"
    text = f.with_name(f.name + ".minisig").read_bytes()
    crlf.write_bytes(text.replace(b"\n", b"\r\n"))
    p = run([tool, "verify", pub, f, crlf])
    assert p.returncode == 0, out(p)
    assert "Trusted comment: stock: trusted text\n" in out(p)
    p = ms("-V", "-p", pub, "-m", f, "-x", crlf)
    assert p.returncode == 0, out(p)


def tamper(f):
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def test_tampered_file_fails_both(tool, ours, stock):
    for pub, _, f in (ours, stock):
        tamper(f)
        p = ms("-V", "-p", pub, "-m", f)
        assert p.returncode == 1, out(p)
        assert "Signature verification failed" in out(p)
        p = run([tool, "verify", pub, f])
        assert p.returncode == 1, out(p)
        assert "signature verification failed" in out(p)


def test_tampered_trusted_comment_fails_both(tool, ours, stock):
    for pub, _, f in (ours, stock):
        sig = f.with_name(f.name + ".minisig")
        lines = sig.read_text().split("\n")
        assert lines[2].startswith("trusted comment: ")
        lines[2] += "!"
        sig.write_text("\n".join(lines))
        p = ms("-V", "-p", pub, "-m", f)
        assert p.returncode == 1, out(p)
        assert "Comment signature verification failed" in out(p)
        p = run([tool, "verify", pub, f])
        assert p.returncode == 1, out(p)
        assert "global signature verification failed" in out(p)


def test_wrong_key_fails_both(tool, ours, stock):
    our_pub, _, our_file = ours
    stock_pub, _, stock_file = stock
    p = ms("-V", "-p", stock_pub, "-m", our_file)
    assert p.returncode == 1, out(p)
    assert "key id" in out(p)
    p = ms("-V", "-p", our_pub, "-m", stock_file)
    assert p.returncode == 1, out(p)
    p = run([tool, "verify", stock_pub, our_file])
    assert p.returncode == 1, out(p)
    assert "not a pinned key" in out(p)
    p = run([tool, "verify", our_pub, stock_file])
    assert p.returncode == 1, out(p)
    assert "not a pinned key" in out(p)


def test_stock_legacy_refused(tool, stock, tmp_path):
    help_text = out(ms("-h"))
    if "-l" not in help_text:
        pytest.skip("this minisign has no legacy (-l) signing mode")
    pub, sec, f = stock
    legacy = tmp_path / "legacy.minisig"
    p = ms("-S", "-l", "-s", sec, "-m", f, "-x", legacy, "-t", "old")
    assert p.returncode == 0, out(p)
    b64 = legacy.read_text().split("\n")[1]
    assert b64.startswith("RW"), "base64 of the legacy 'Ed' prefix"
    # Stock still accepts it unless told -H; we never do.
    assert ms("-V", "-p", pub, "-m", f, "-x", legacy).returncode == 0
    assert ms("-V", "-H", "-p", pub, "-m", f, "-x", legacy).returncode != 0
    p = run([tool, "verify", pub, f, legacy])
    assert p.returncode == 1, out(p)
    assert "legacy" in out(p)


def test_garbage_signature_refused(tool, ours, tmp_path):
    pub, _, f = ours
    bad = tmp_path / "bad.minisig"
    for text in (b"", b"untrusted comment: x\n", b"\x00" * 300,
                 b"untrusted comment: x\n" + b"A" * 5000 + b"\n"):
        bad.write_bytes(text)
        p = run([tool, "verify", pub, f, bad])
        assert p.returncode == 1, out(p)
        assert out(p).startswith("minisigntool: ")
