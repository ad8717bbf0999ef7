"""Persistent encryption and moves between rules (issue 7; DESIGN.md, "The overlay";
docs/overlay.md, "Moving between rules"), through a real overlay mounted by overcryptd.

The overlay fixture's org: `enc/` (shared asset "enc"), `enc/legal/` (shared asset
"legal": another key), `enc/pub/` (public: no key, passthrough). Persistent encryption is
on (the org default) unless a test turns it off.
"""
import errno
import os
import re
import shutil
import subprocess
import time

import pytest

from overlaylib import MAGIC, MARK, data, header, overlay  # noqa: F401
from overlaylib import read_bytes as read, write_synced as write

KEY_ID = slice(16, 32)     # header fields (crypto/format.h)
FILE_ID = slice(32, 48)


def expect_errno(n, fn, *a):
    with pytest.raises(OSError) as ei:
        fn(*a)
    assert ei.value.errno == n, f"{fn.__name__}{a}: {ei.value!r}, want {errno.errorcode[n]}"


def key_id_of(ov, folder):
    """The key id a new file in `folder` gets (from a probe file's header)."""
    p = folder / ".probe"
    write(p, b"probe")
    kid = header(ov.backing_of(p))[KEY_ID]
    os.unlink(p)
    return kid


def test_move_out_of_rule_stays_encrypted(overlay):
    """Encrypted file to a place with no key (public): renamed in place (same inode),
    still encrypted on the backing side, readable; a descriptor open across the move
    keeps reading and writing."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    body = data(3 * 4096 + 17)
    write(src / "a", body)
    ino = os.stat(src / "a").st_ino
    fd = os.open(src / "a", os.O_RDWR)
    try:
        os.rename(src / "a", dst / "a")
        assert os.stat(dst / "a").st_ino == ino
        assert os.pread(fd, 100, 0) == body[:100]
        os.pwrite(fd, b"after the move", 5)
        os.fsync(fd)
    finally:
        os.close(fd)
    want = body[:5] + b"after the move" + body[19:]
    assert read(dst / "a") == want
    raw = read(overlay.backing_of(dst / "a"))
    assert raw.startswith(MAGIC) and MARK not in raw
    # and back into the rule: same key, a plain rename
    os.rename(dst / "a", src / "b")
    assert read(src / "b") == want


def test_move_folder_out_of_rule(overlay):
    """A folder leaves the rule as it is: what was encrypted below stays so."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    (src / "d" / "e").mkdir(parents=True)
    files = {"d/x": data(100), "d/e/y": data(9000)}
    for rel, b in files.items():
        write(src / rel, b)
    os.rename(src / "d", dst / "d")
    for rel, b in files.items():
        assert read(dst / rel) == b
        assert header(overlay.backing_of(dst / rel)).startswith(MAGIC)


def test_move_between_rules_rewraps(overlay):
    """Encrypted -> another rule's place: the header's key id becomes the destination's,
    the file id stays (same file key, same blocks); hard links and open descriptors
    survive; the log says so."""
    src, dst = overlay.fresh(), overlay.fresh(legal=True)
    body = data(5 * 4096)
    write(src / "f", body)
    os.link(src / "f", src / "f-link")
    before = header(overlay.backing_of(src / "f"))
    blocks = read(overlay.backing_of(src / "f"))[120:]
    want_kid = key_id_of(overlay, dst)
    assert before[KEY_ID] != want_kid
    fd = os.open(src / "f", os.O_RDONLY)
    try:
        os.rename(src / "f", dst / "f")
        assert os.pread(fd, 64, 4096) == body[4096:4160]
    finally:
        os.close(fd)
    after = header(overlay.backing_of(dst / "f"))
    assert after[KEY_ID] == want_kid
    assert after[FILE_ID] == before[FILE_ID]
    assert read(overlay.backing_of(dst / "f"))[120:] == blocks   # no block rewritten
    assert read(dst / "f") == body
    assert read(src / "f-link") == body                           # the other name
    assert os.stat(src / "f-link").st_ino == os.stat(dst / "f").st_ino
    assert "its key rewrapped" in overlay.agent.log()
    # writes after the move go on under the new key
    with open(dst / "f", "r+b") as f:
        f.seek(100)
        f.write(b"edited")
    assert read(dst / "f")[100:106] == b"edited"
    assert header(overlay.backing_of(dst / "f"))[KEY_ID] == want_kid


def test_move_folder_between_rules_rewraps_below(overlay):
    """A folder moved between two encrypting rules is renamed at once (same inodes); every
    encrypted file below gets the destination's key id, keeps its file id, and reads; the
    journal entry is gone when the walk (which follows the rename's answer) is over."""
    src, dst = overlay.fresh(), overlay.fresh(legal=True)
    (src / "d" / "e").mkdir(parents=True)
    files = {"d/x": data(5000), "d/e/y": data(3 * 4096), "d/e/empty": b""}
    for rel, b in files.items():
        write(src / rel, b)
    fids = {rel: header(overlay.backing_of(src / rel))[FILE_ID] for rel in files}
    ino = os.stat(src / "d" / "x").st_ino
    want = key_id_of(overlay, dst)
    os.rename(src / "d", dst / "d")
    assert os.stat(dst / "d" / "x").st_ino == ino
    journal = overlay.agent.d / "cache" / "overcrypt" / "journal"
    deadline = time.time() + 10                       # the walk follows the rename
    while "3 files below rewrapped" not in overlay.agent.log() and time.time() < deadline:
        time.sleep(0.05)
    assert "3 files below rewrapped" in overlay.agent.log(), overlay.agent.log()[-2000:]
    assert list(journal.iterdir()) == []
    for rel, b in files.items():
        h = header(overlay.backing_of(dst / rel))
        assert h[KEY_ID] == want and h[FILE_ID] == fids[rel], rel
        assert read(dst / rel) == b


def test_folder_move_resumed_from_the_journal(overlay):
    """A crash between the rename and the end of the walk: the journal entry makes the
    agent finish the rewraps (here the entry is written by hand for a folder moved behind
    the overlay's back, as the crash would leave it)."""
    src, dst = overlay.fresh(), overlay.fresh(legal=True)
    (src / "d").mkdir()
    write(src / "d" / "x", b"moved before the crash")
    want = key_id_of(overlay, dst)
    os.rename(overlay.backing_of(src / "d"), overlay.backing_of(dst / "d"))
    rel = str((dst / "d").relative_to(overlay.path)).encode()
    entry = (b"overcrypt-rewrap 1\n" + str(overlay.path).encode().hex().encode() + b"\n" +
             str(os.getuid()).encode() + b"\n" + want.hex().encode() + b"\n" +
             rel.hex().encode() + b"\n")
    journal = overlay.agent.d / "cache" / "overcrypt" / "journal"
    (journal / "rewrap-test").write_bytes(entry)
    deadline = time.time() + 10
    while (journal / "rewrap-test").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert not (journal / "rewrap-test").exists(), overlay.agent.log()[-2000:]
    assert header(overlay.backing_of(dst / "d" / "x"))[KEY_ID] == want
    assert read(dst / "d" / "x") == b"moved before the crash"
    assert "interrupted before: 1 file below rewrapped" in overlay.agent.log()


def test_plaintext_across_and_exchange(overlay):
    """Plaintext into an encrypting place, plaintext out of one, a folder from no rule into
    an encrypting one, and any exchange across rules: EXDEV; mv then copies and the copy
    takes the destination's form."""
    enc, pub = overlay.fresh(), overlay.fresh(public=True)
    write(pub / "p", b"public " + MARK)
    expect_errno(errno.EXDEV, os.rename, pub / "p", enc / "p")
    p = subprocess.run(["mv", pub / "p", enc / "p"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert header(overlay.backing_of(enc / "p")).startswith(MAGIC)
    assert read(enc / "p") == b"public " + MARK
    write(enc / "q", b"secret")
    write(pub / "r", b"open")
    expect_errno(errno.EXDEV, os.rename, pub / "r", enc / "r")
    (pub / "dir").mkdir()
    write(pub / "dir" / "f", b"open text")
    expect_errno(errno.EXDEV, os.rename, pub / "dir", enc / "dir")
    p = subprocess.run(["mv", pub / "dir", enc / "dir"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert header(overlay.backing_of(enc / "dir" / "f")).startswith(MAGIC)
    lib = __import__("ctypes").CDLL(None, use_errno=True)
    rc = lib.renameat2(-100, bytes(enc / "q"), -100, bytes(pub / "r"), 2)  # RENAME_EXCHANGE
    assert rc == -1 and __import__("ctypes").get_errno() == errno.EXDEV


def test_persistent_off_gives_exdev(overlay):
    """With persistent encryption off, an encrypted file leaving the rule is EXDEV, and
    mv's copy is plaintext (what the admin chose); turned on again, files stay encrypted.
    The setting applies to moves from then on: nothing already moved is rewritten."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    write(src / "kept", b"moved while on")
    os.rename(src / "kept", dst / "kept")
    try:
        overlay.set_policy_setting("persistent_encryption", "no")
        write(src / "a", b"secret " + MARK)
        expect_errno(errno.EXDEV, os.rename, src / "a", dst / "a")
        # the file moved earlier is left as it is
        assert header(overlay.backing_of(dst / "kept")).startswith(MAGIC)
        assert read(dst / "kept") == b"moved while on"
        shutil.copyfile(src / "a", dst / "a-copy")
        assert read(overlay.backing_of(dst / "a-copy")) == b"secret " + MARK
        os.unlink(dst / "a-copy")   # keep the marker out of the backing side
    finally:
        overlay.set_policy_setting("persistent_encryption", "yes")
    os.rename(src / "a", dst / "a")
    assert header(overlay.backing_of(dst / "a")).startswith(MAGIC)


# --- copies ---------------------------------------------------------------------------

def test_cp_keeps_encryption(overlay):
    """cp from an encrypted folder to a place with no key: the copy is encrypted under the
    source's key with its own file id (a fresh file key); cp onto an existing plaintext file
    too; the log names the copy."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    body = data(10000)
    write(src / "a", body)
    write(dst / "old", b"plaintext that cp overwrites")
    for name in ("a-copy", "old"):
        p = subprocess.run(["cp", src / "a", dst / name], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        h, hs = header(overlay.backing_of(dst / name)), header(overlay.backing_of(src / "a"))
        assert h.startswith(MAGIC), name
        assert h[KEY_ID] == hs[KEY_ID] and h[FILE_ID] != hs[FILE_ID]
        assert read(dst / name) == body
    assert "a copy, kept encrypted" in overlay.agent.log()
    # a file written by a process holding no encrypted file open stays plaintext
    write(dst / "mine", b"free text")
    assert read(overlay.backing_of(dst / "mine")) == b"free text"


def test_copy_file_range_keeps_encryption(overlay):
    """copy_file_range(2) from an encrypted file into a new file where no rule encrypts."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    body = data(50000)
    write(src / "a", body)
    fi = os.open(src / "a", os.O_RDONLY)
    try:
        fo = os.open(dst / "b", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            n = 0
            while n < len(body):
                k = os.copy_file_range(fi, fo, len(body) - n)
                assert k > 0
                n += k
        finally:
            os.close(fo)
    finally:
        os.close(fi)
    assert header(overlay.backing_of(dst / "b")).startswith(MAGIC)
    assert read(dst / "b") == body


def test_copy_refused_when_key_gone(overlay):
    """A process holding an encrypted file open, after a lock, cannot write a new file where
    no rule encrypts (it would be a plaintext copy): EACCES, and nothing is created."""
    src, dst = overlay.fresh(), overlay.fresh(public=True)
    write(src / "a", b"secret " + MARK)
    fd = os.open(src / "a", os.O_RDONLY)
    try:
        p = overlay.agent.oc("lock")
        assert p.returncode == 0, p.out + p.err
        try:
            expect_errno(errno.EACCES, os.open, dst / "b", os.O_WRONLY | os.O_CREAT, 0o644)
            assert not (dst / "b").exists()
            assert os.pread(fd, 7, 0) == b"secret "   # the open handle still reads
        finally:
            p = overlay.agent.unlock()
            assert p.returncode == 0, p.out + p.err
            overlay.agent.wait_status(lambda s: s["state"] == "ready", 10, "ready")
    finally:
        os.close(fd)


# --- initial encryption -----------------------------------------------------------------

def initial(overlay, *args):
    p = overlay.agent.oc("encrypt", "--initial", *[str(a) for a in args], timeout=300)
    return p.returncode, p.out, p.err


def test_initial_encryption(overlay):
    """Plaintext files that sat under the rule before it (written behind the overlay) are
    encrypted in place by `overcrypt encrypt --initial DIR`: content, mode, owner, times
    and xattrs kept; files where no rule encrypts left alone; --dry-run changes nothing; a
    second run finds nothing to do; a summary at the end, a line per 10 % off a terminal."""
    enc, pub = overlay.fresh(), overlay.fresh(public=True)
    files = {enc / "a.txt": data(1), enc / "sub" / "b.bin": data(3 * 4096 + 5),
             enc / "sub" / "empty": b"", pub / "p.txt": b"public " + MARK}
    for p, b in files.items():
        raw = overlay.backing_of(p)
        raw.parent.mkdir(parents=True, exist_ok=True)
        raw.write_bytes(b)
    rb = overlay.backing_of(enc / "sub" / "b.bin")
    os.chmod(rb, 0o640)
    os.chown(rb, 1234, 4321)
    os.setxattr(rb, "user.tag", b"kept")
    os.utime(rb, ns=(1_600_000_000_123_456_789, 1_500_000_000_987_654_321))
    before = os.stat(rb)

    rc, out, err = initial(overlay, "--dry-run", overlay.path)
    assert rc == 0, out + err
    assert f"would encrypt {enc / 'a.txt'}" in out and "would encrypt 3 files" in out, out
    assert read(overlay.backing_of(enc / "a.txt")) == files[enc / "a.txt"]

    rc, out, err = initial(overlay, overlay.path)
    assert rc == 0, out + err
    assert "encrypted 3 files" in out and "failed: 0" in out, out
    assert "initial encryption: 100%" in err, err      # not a terminal: lines per 10 %
    for p, b in files.items():
        raw = read(overlay.backing_of(p))
        if p.parent == pub:
            assert raw == b                                 # no rule: left alone
        else:
            assert raw.startswith(MAGIC), p
            assert MARK not in raw
            assert read(p) == b
    after = os.stat(rb)
    assert (after.st_mode, after.st_uid, after.st_gid) == (before.st_mode, 1234, 4321)
    assert after.st_mtime_ns == before.st_mtime_ns
    assert os.getxattr(rb, "user.tag") == b"kept"
    assert os.getxattr(enc / "sub" / "b.bin", "user.tag") == b"kept"

    rc, out, err = initial(overlay, overlay.path)   # resumable: nothing left to do
    assert rc == 0, out + err
    assert "encrypted 0 files" in out, out
    # the three just converted at least (other tests' files share the overlay)
    assert int(re.search(r"already encrypted: (\d+)", out).group(1)) >= 3, out


def test_initial_skips_writers_and_reports(overlay):
    """A file open for writing behind the overlay is skipped and named, the exit status
    says the work is not complete; a file with two hard links fails with the reason; the
    others are converted; closed and run again, the skipped one is converted."""
    enc = overlay.fresh()
    for name in ("busy", "fine", "linked"):
        overlay.backing_of(enc / name).write_bytes(b"plain " + name.encode())
    os.link(overlay.backing_of(enc / "linked"), overlay.backing_of(enc / "linked2"))
    w = open(overlay.backing_of(enc / "busy"), "r+b")
    try:
        rc, out, err = initial(overlay, enc)
        assert rc == 1, out + err
        assert f"{enc / 'busy'}: skipped: it is open for writing" in err, err
        assert f"{enc / 'linked'}: failed:" in err and "hard links" in err, err
        assert "skipped (open for writing): 1" in out, out
        assert read(overlay.backing_of(enc / "fine")).startswith(MAGIC)
        assert read(overlay.backing_of(enc / "busy")) == b"plain busy"
    finally:
        w.close()
    os.unlink(overlay.backing_of(enc / "linked2"))
    rc, out, err = initial(overlay, enc)
    assert rc == 0, out + err
    for name in ("busy", "fine", "linked"):
        assert read(overlay.backing_of(enc / name)).startswith(MAGIC)
        assert read(enc / name) == b"plain " + name.encode()


def test_initial_usage_errors(overlay, tmp_path):
    rc, out, err = initial(overlay, tmp_path)
    assert rc == 1 and "in no folder this agent overlays" in err, out + err
    rc, out, err = initial(overlay, "a", "b")
    assert rc == 2 and "at most one DIR" in err, out + err


# --- manual encrypt and decrypt through the agent --------------------------------------------

def test_manual_encrypt_decrypt(overlay, tmp_path):
    """Where no rule encrypts: `overcrypt encrypt --asset NAME FILE` encrypts in place under
    that asset's key; `overcrypt decrypt FILE` is refused while the policy's
    user_may_decrypt is off (the message names it) and decrypts in place once it is on.
    Where a rule encrypts, both say the rule decides; outside every overlay, they say so."""
    pub, enc = overlay.fresh(public=True), overlay.fresh()
    write(pub / "doc", b"to protect " + MARK)
    p = overlay.agent.oc("encrypt", "--asset", "legal", str(pub / "doc"))
    assert p.returncode == 0, p.out + p.err
    assert "encrypted under asset legal" in p.out
    raw = overlay.backing_of(pub / "doc")
    assert header(raw)[KEY_ID] == key_id_of(overlay, overlay.fresh(legal=True))
    assert read(pub / "doc") == b"to protect " + MARK
    p = overlay.agent.oc("encrypt", "--asset", "legal", str(pub / "doc"))
    assert p.returncode == 1 and "already encrypted" in p.err, p.out + p.err
    write(pub / "x", b"plain " + MARK)
    p = overlay.agent.oc("encrypt", "--asset", "nosuch", str(pub / "x"))
    assert p.returncode == 1 and "no asset 'nosuch'" in p.err, p.out + p.err
    assert read(pub / "x") == b"plain " + MARK

    p = overlay.agent.oc("decrypt", str(pub / "doc"))
    assert p.returncode == 1 and "user_may_decrypt" in p.err, p.out + p.err
    assert header(raw).startswith(MAGIC)

    write(enc / "in-rule", b"secret")
    p = overlay.agent.oc("decrypt", str(enc / "in-rule"))
    assert p.returncode == 1 and "governed by a rule" in p.err, p.out + p.err
    p = overlay.agent.oc("encrypt", "--asset", "enc", str(enc / "in-rule"))
    assert p.returncode == 1 and "governed by a rule" in p.err, p.out + p.err
    outside = tmp_path / "outside"
    outside.write_bytes(b"x")
    p = overlay.agent.oc("encrypt", "--asset", "enc", str(outside))
    assert p.returncode == 1 and "in no folder this agent overlays" in p.err, p.out + p.err

    try:
        overlay.set_policy_setting("user_may_decrypt", "yes")
        p = overlay.agent.oc("decrypt", str(pub / "doc"))
        assert p.returncode == 0, p.out + p.err
        assert read(raw) == b"to protect " + MARK
        assert read(pub / "doc") == b"to protect " + MARK
        os.unlink(pub / "doc")                  # keep the marker out of the backing side
    finally:
        overlay.set_policy_setting("user_may_decrypt", "no")


# --- the home folder overlaid ([mount] home = yes) ----------------------------------------

@pytest.fixture(scope="module")
def home_overlay(build, tmp_path_factory):
    from overlaylib import overlay_env
    yield from overlay_env(build, tmp_path_factory.mktemp("home"),
                           mount_extra="allow_other = yes\nhome = yes")


def test_home_overlaid_keeps_copies_encrypted(home_overlay):
    """With [mount] home = yes the user's home folder is an overlay of its own (status
    lists it); a file copied from an encrypted folder (another overlay) into it stays
    encrypted; files written there by other programs stay plaintext."""
    ov = home_overlay
    home = ov.agent.home
    from overlaylib import fs_type
    assert (fs_type(home) or "").startswith("fuse"), ov.agent.log()
    p = ov.agent.oc("status")
    assert p.returncode == 0 and str(home) in p.out, p.out + p.err
    enc = ov.fresh()
    write(enc / "report", b"secret report " + MARK)
    docs = home / "Documents"
    docs.mkdir(exist_ok=True)
    p = subprocess.run(["cp", enc / "report", docs / "report"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    write(docs / "notes", b"my own notes")
    assert read(docs / "report") == b"secret report " + MARK
    ov.agent.stop()                                  # the home folder's backing side
    assert fs_type(home) is None or not fs_type(home).startswith("fuse")
    assert read(docs / "report").startswith(MAGIC)
    assert MARK not in read(docs / "report")
    assert read(docs / "notes") == b"my own notes"


def test_plaintext_handle_of_a_file_made_encrypted(overlay):
    """A handle opened while the file was plaintext, after another open made the file
    encrypted (here: emptied by a process holding an encrypted file open, a copy): its
    ftruncate, fstat, writes and fallocate see the encrypted file as it is, never the
    ciphertext as plaintext (found by the soak: block 0 failed to authenticate after such
    a truncate, and fstat gave the backing size)."""
    enc, pub = overlay.fresh(), overlay.fresh(public=True)
    write(pub / "f", b"plaintext first")
    write(enc / "src", b"encrypted source")
    a = os.open(pub / "f", os.O_RDWR)                 # plaintext handle
    try:
        e = os.open(enc / "src", os.O_RDONLY)          # now a copy source is open
        b = os.open(pub / "f", os.O_RDWR | os.O_TRUNC)  # emptied: starts encrypted
        os.close(e)
        os.write(b, b"hello world")
        os.fsync(b)
        os.close(b)
        os.ftruncate(a, 5)
        assert os.fstat(a).st_size == 5                # the plaintext size, also here
        os.pwrite(a, b"HE", 0)                         # through the encrypted state
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        rc = libc.fallocate(a, 0, ctypes.c_long(0), ctypes.c_long(8192))
        assert rc == -1 and ctypes.get_errno() == errno.EOPNOTSUPP
        os.fsync(a)
    finally:
        os.close(a)
    assert header(overlay.backing_of(pub / "f")).startswith(MAGIC)
    __import__("subprocess").run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    assert read(pub / "f") == b"HEllo"
