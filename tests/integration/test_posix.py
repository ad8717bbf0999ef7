"""Our own POSIX behaviour tests, run on plain ext4 (which proves the tests
right) and on the overlay mounted by overcryptd (overlaylib.fsdir). Every
test asserts what a program sees: contents, sizes, errno values, what
another process sees. For the overlay, fsdir's teardown also checks the
backing side: every non-empty file starts with OVCRYPT1 and no file holds
the plaintext marker that data() puts into everything written here."""
import ctypes
import ctypes.util
import errno
import fcntl
import mmap
import os
import pickle
import random
import re
import socket
import stat
import struct
import traceback

import pytest

from overlaylib import MAGIC, MARK, data, overlay, fsdir  # noqa: F401

PAGE = mmap.PAGESIZE
BLOCK = 4096
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
NOBODY = 65534


# --- helpers --------------------------------------------------------------------------

def err(fn, *a, **kw):
    """The errno `fn(*a)` fails with, or 0 when it succeeds."""
    try:
        r = fn(*a, **kw)
        if isinstance(r, int) and fn is os.open:
            os.close(r)
        return 0
    except OSError as e:
        return e.errno


def ename(n):
    return errno.errorcode.get(n, str(n)) if n else "success"


def expect(n, fn, *a, **kw):
    got = err(fn, *a, **kw)
    assert got == n, f"{fn.__name__}{a}: got {ename(got)}, expected {ename(n)}"


def renameat2(src, dst, flags):
    r = libc.renameat2(AT_FDCWD, os.fsencode(src), AT_FDCWD, os.fsencode(dst),
                       ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(src))


def fallocate(fd, mode, off, length):
    r = libc.fallocate(ctypes.c_int(fd), ctypes.c_int(mode),
                       ctypes.c_long(off), ctypes.c_long(length))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def write_file(p, b, mode=0o644):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        n = os.write(fd, b)
        assert n == len(b)
    finally:
        os.close(fd)


def read_file(p):
    with open(p, "rb") as f:
        return f.read()


def reread(p):
    """Contents of `p` after dropping its clean page cache (fsync, then
    POSIX_FADV_DONTNEED): what the filesystem returns, not the page cache."""
    fd = os.open(p, os.O_RDONLY)
    try:
        try:
            os.fsync(fd)
        except OSError:
            pass
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def in_child(fn, *a, uid=None):
    """Run fn(*a) in a forked process (as `uid` when given); returns its
    value, re-raises its exception as AssertionError with the child's
    traceback."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            try:
                res = ("ok", fn(*a))
            except BaseException as e:  # noqa: BLE001 (sent to the parent)
                res = ("exc", f"{e!r}\n{traceback.format_exc()}")
            b = pickle.dumps(res)
            while b:
                n = os.write(w, b)
                b = b[n:]
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child died: {status}"
    kind, val = pickle.loads(b"".join(chunks))
    if kind == "exc":
        raise AssertionError(f"in child process: {val}")
    return val


def spawn(fn, *a):
    """Start fn(*a) in a forked process; returns a join() that waits and
    returns (value or raises)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                res = ("ok", fn(*a))
            except BaseException as e:  # noqa: BLE001
                res = ("exc", f"{e!r}\n{traceback.format_exc()}")
            b = pickle.dumps(res)
            while b:
                n = os.write(w, b)
                b = b[n:]
        finally:
            os._exit(0)
    os.close(w)

    def join():
        chunks = []
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
        os.close(r)
        os.waitpid(pid, 0)
        kind, val = pickle.loads(b"".join(chunks))
        if kind == "exc":
            raise AssertionError(f"in child process: {val}")
        return val
    return join


# --- reads and writes -----------------------------------------------------------------

def test_random_reads_writes(fsdir):
    rng = random.Random(1)
    p = fsdir / "rw"
    model = bytearray(data(300_000, rng))
    write_file(p, model)
    fd = os.open(p, os.O_RDWR)
    try:
        for i in range(600):
            off = rng.choice([rng.randrange(0, 400_000), rng.randrange(0, 40) * BLOCK,
                              rng.randrange(1, 40) * BLOCK - 1, len(model)])
            n = rng.choice([1, 2, 17, BLOCK - 1, BLOCK, BLOCK + 1, rng.randrange(1, 70_000)])
            if rng.random() < 0.5:
                b = data(n, rng)
                assert os.pwrite(fd, b, off) == n
                if off > len(model):
                    model.extend(bytes(off - len(model)))
                model[off:off + n] = b
            else:
                got = os.pread(fd, n, off)
                assert got == bytes(model[off:off + n]), f"op {i}: pread({n}, {off})"
            if i % 100 == 0:
                assert os.fstat(fd).st_size == len(model)
    finally:
        os.close(fd)
    assert os.stat(p).st_size == len(model)
    assert read_file(p) == model
    assert reread(p) == model


@pytest.mark.parametrize("n", [0, 1, 100, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK, 100_000,
                               1 << 20])
def test_stat_size_is_plaintext_size(fsdir, n):
    p = fsdir / "f"
    b = data(n)
    write_file(p, b)
    assert os.stat(p).st_size == n
    assert os.lstat(p).st_size == n
    assert read_file(p) == b
    assert reread(p) == b
    assert os.stat(p).st_size == n
    if fsdir.kind == "overcrypt" and n > 0:
        back = fsdir.backing / "f"
        raw = back.read_bytes()
        assert raw.startswith(MAGIC), raw[:16]
        assert MARK not in raw
        assert len(raw) > n          # header + tags: the ciphertext is larger


def test_wronly(fsdir):
    p = fsdir / "wo"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    a = data(20_000)
    os.write(fd, a)
    os.pwrite(fd, b"XYZ" + MARK, 5000)              # inside a block: read-modify-write
    os.pwrite(fd, b"tail", 30_000)                  # past the end: a hole
    assert err(os.read, fd, 1) == errno.EBADF       # write-only really is write-only
    os.close(fd)
    m = bytearray(a)
    m[5000:5003 + len(MARK)] = b"XYZ" + MARK
    m.extend(bytes(30_000 - len(m)))
    m += b"tail"
    assert read_file(p) == m
    fd = os.open(p, os.O_WRONLY)                    # again, without O_TRUNC
    os.pwrite(fd, b"!" * 10, 4090)                  # across a block boundary
    os.close(fd)
    m[4090:4100] = b"!" * 10
    assert os.stat(p).st_size == 30_004
    assert reread(p) == m


def test_append(fsdir):
    p = fsdir / "log"
    write_file(p, b"start\n")
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    want = b"start\n"
    for i in range(300):
        rec = b"%05d " % i + data(i * 37 % 5000) + b"\n"
        os.lseek(fd, 0, os.SEEK_SET)                # O_APPEND ignores the offset
        os.write(fd, rec)
        want += rec
    os.pwrite(fd, b"PW", 0)                         # Linux: pwrite on O_APPEND appends
    want += b"PW"
    os.close(fd)
    assert os.stat(p).st_size == len(want)
    assert read_file(p) == want
    # O_APPEND | O_RDWR: reads at any offset, writes at the end
    fd = os.open(p, os.O_RDWR | os.O_APPEND)
    assert os.pread(fd, 6, 0) == b"start\n"
    os.write(fd, b"end")
    os.close(fd)
    assert reread(p) == want + b"end"


def _appender(p, tag, count, size):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(count):
            head = b"%s %06d " % (tag, i)
            rec = head + MARK + b"." * (size - len(head) - len(MARK) - 1) + b"\n"
            assert os.write(fd, rec) == size
    finally:
        os.close(fd)
    return count


def test_append_two_processes(fsdir):
    p = fsdir / "shared.log"
    write_file(p, b"")
    size, count = 128, 3000
    j1 = spawn(_appender, p, b"A", count, size)
    j2 = spawn(_appender, p, b"B", count, size)
    assert j1() == count and j2() == count
    b = reread(p)
    assert len(b) == 2 * count * size, "records lost or overwritten"
    recs = [b[i:i + size] for i in range(0, len(b), size)]
    pat = re.compile(rb"^([AB]) (\d{6}) " + re.escape(MARK) + rb"\.+\n$")
    seen = {b"A": [], b"B": []}
    for i, r in enumerate(recs):
        m = pat.match(r)
        assert m, f"torn record at {i * size}: {r!r}"
        seen[m[1]].append(int(m[2]))
    # each writer's records are all there, in its own order
    assert seen[b"A"] == list(range(count))
    assert seen[b"B"] == list(range(count))


# --- truncate, fallocate, sync -----------------------------------------------------------

def test_truncate_up_down(fsdir):
    p = fsdir / "t"
    a = data(3 * BLOCK + 100)
    write_file(p, a)
    os.truncate(p, 100_000)                         # up: a hole, reads as zeros
    assert os.stat(p).st_size == 100_000
    assert read_file(p) == a + bytes(100_000 - len(a))
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, 5000)                          # down, mid-block
    assert os.fstat(fd).st_size == 5000
    assert os.pread(fd, 10_000, 0) == a[:5000]
    os.ftruncate(fd, 2 * BLOCK + 7)                 # up again: the cut bytes stay gone
    assert os.pread(fd, 3 * BLOCK, 0) == a[:5000] + bytes(2 * BLOCK + 7 - 5000)
    os.ftruncate(fd, 0)
    assert os.fstat(fd).st_size == 0
    assert os.pread(fd, 10, 0) == b""
    os.pwrite(fd, b"again" + MARK, 0)
    os.close(fd)
    assert reread(p) == b"again" + MARK
    # a write far beyond the end leaves a hole of zeros
    fd = os.open(p, os.O_RDWR)
    os.pwrite(fd, b"far", 10 << 20)
    os.close(fd)
    assert os.stat(p).st_size == (10 << 20) + 3
    b = reread(p)
    assert b[:5 + len(MARK)] == b"again" + MARK
    assert b[5 + len(MARK):10 << 20] == bytes((10 << 20) - 5 - len(MARK))
    assert b[10 << 20:] == b"far"
    # truncate up of a file with no data, by path
    q = fsdir / "sparse"
    write_file(q, b"")
    os.truncate(q, 1 << 20)
    assert os.stat(q).st_size == 1 << 20
    assert reread(q) == bytes(1 << 20)


def test_large_offsets_and_efbig(fsdir):
    """Offsets past 4 GiB (holes in between), a sparse 8 TiB file, and EFBIG
    beyond what the filesystem holds (ext4: 16 TiB; the overlay's limit is
    its backing's, a little lower because of the tags)."""
    p = fsdir / "big"
    head = b"head" + MARK
    write_file(p, head)
    G = 1 << 30
    fd = os.open(p, os.O_RDWR)
    try:
        assert os.pwrite(fd, b"tail", 5 * G + 1) == 4
        assert os.fstat(fd).st_size == 5 * G + 5
        assert os.pread(fd, 100, 4 * G - 50) == bytes(100)     # across 4 GiB: a hole
        assert os.pread(fd, 100, 5 * G - 95) == bytes(96) + b"tail"
        assert os.pread(fd, len(head), 0) == head
        if fsdir.kind == "overcrypt":     # holes stay holes on the backing side
            st = os.stat(fsdir.backing / "big")
            assert st.st_blocks * 512 < 16 << 20, f"{st.st_blocks * 512} bytes allocated"
        os.ftruncate(fd, 8 << 40)
        assert os.fstat(fd).st_size == 8 << 40
        assert os.pread(fd, 100, (8 << 40) - 10) == bytes(10)
        assert os.pread(fd, 4, 5 * G + 1) == b"tail"
        expect(errno.EFBIG, os.ftruncate, fd, 17 << 40)
        assert os.fstat(fd).st_size == 8 << 40                 # unchanged by the failure
        os.ftruncate(fd, 100)
        assert os.fstat(fd).st_size == 100
        assert os.pread(fd, 200, 0) == head + bytes(100 - len(head))
    finally:
        os.close(fd)
    assert reread(p) == head + bytes(100 - len(head))


def test_efbig_write(fsdir):
    """A write beyond the largest file the filesystem holds (ext4: 16 TiB)
    fails with EFBIG. Through a FUSE writeback cache the kernel may accept
    the write into its page cache (FUSE has no per-mount size limit): then
    the error must come at the latest from fsync (EFBIG or EIO), never be
    lost; either way the file is left usable and the data before intact."""
    p = fsdir / "efbig"
    head = b"head" + MARK
    write_file(p, head)
    fd = os.open(p, os.O_RDWR)
    try:
        e, e2 = err(os.pwrite, fd, b"x", 17 << 40), None
        if fsdir.kind == "ext4":
            assert e == errno.EFBIG, ename(e)
        if e == 0:
            e2 = err(os.fsync, fd)
            assert e2 in (errno.EFBIG, errno.EIO), \
                f"a write past the limit succeeded and fsync said {ename(e2)}"
        else:
            assert e == errno.EFBIG, ename(e)
        print("pwrite:", ename(e), "fsync:", ename(e2) if e == 0 else "-", "size now", os.fstat(fd).st_size)
        os.ftruncate(fd, len(head))                 # the file can be cut back and used
        assert os.fstat(fd).st_size == len(head)
        assert os.pread(fd, 100, 0) == head
        os.pwrite(fd, b"more", len(head))
        os.fsync(fd)
    finally:
        e = err(os.close, fd)
    assert e == 0, f"close: {ename(e)}"
    assert reread(p) == head + b"more"


def test_fallocate(fsdir):
    """ext4 supports fallocate; the overlay must give the same result or
    refuse honestly with EOPNOTSUPP (DESIGN: "fallocate where it can be
    honest"); it may never report success and then read back other bytes."""
    p = fsdir / "fa"
    a = data(10_000)
    write_file(p, a)
    fd = os.open(p, os.O_RDWR)
    try:
        e = err(fallocate, fd, 0, 0, 50_000)        # grow
        if fsdir.kind == "ext4":
            assert e == 0
        assert e in (0, errno.EOPNOTSUPP), ename(e)
        if e == 0:
            assert os.fstat(fd).st_size == 50_000
            assert os.pread(fd, 60_000, 0) == a + bytes(40_000)
        else:
            assert os.fstat(fd).st_size == 10_000
            assert os.pread(fd, 20_000, 0) == a
        e = err(fallocate, fd, FALLOC_FL_KEEP_SIZE, 0, 200_000)
        if fsdir.kind == "ext4":
            assert e == 0
        assert e in (0, errno.EOPNOTSUPP), ename(e)
        size = os.fstat(fd).st_size
        assert size in (10_000, 50_000)
        e = err(fallocate, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096)
        if fsdir.kind == "ext4":
            assert e == 0
        assert e in (0, errno.EOPNOTSUPP), ename(e)
        want = bytearray(a + bytes(size - len(a)))
        if e == 0:
            want[4096:8192] = bytes(4096)
        assert os.fstat(fd).st_size == size
        assert os.pread(fd, size + 10, 0) == want
    finally:
        os.close(fd)
    assert reread(p) == want


def test_o_direct(fsdir):
    """O_DIRECT with aligned buffers and offsets works (ext4 and the
    overlay alike); the data bypasses the page cache both ways."""
    p = fsdir / "direct"
    base = data(5 * BLOCK)
    write_file(p, base)
    buf = mmap.mmap(-1, 2 * BLOCK)                  # page-aligned memory
    fd = os.open(p, os.O_RDWR | os.O_DIRECT)
    try:
        new = data(2 * BLOCK)
        buf[:] = new
        assert os.pwrite(fd, buf, BLOCK) == 2 * BLOCK
        rd = mmap.mmap(-1, 4 * BLOCK)
        assert os.preadv(fd, [rd], 0) == 4 * BLOCK
        assert rd[:] == base[:BLOCK] + new + base[3 * BLOCK:4 * BLOCK]
        assert os.pwrite(fd, buf, 5 * BLOCK) == 2 * BLOCK     # extends the file
        assert os.fstat(fd).st_size == 7 * BLOCK
        rd.close()
    finally:
        os.close(fd)
        buf.close()
    want = base[:BLOCK] + new + base[3 * BLOCK:] + new
    assert read_file(p) == want
    assert reread(p) == want


def test_fsync_fdatasync(fsdir):
    p = fsdir / "s"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    b = data(70_000)
    os.write(fd, b)
    os.fsync(fd)
    os.pwrite(fd, b"mid", 30_000)
    os.fdatasync(fd)
    os.close(fd)
    dfd = os.open(fsdir, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(dfd)                                   # a folder can be fsync'ed too
    os.close(dfd)
    m = bytearray(b)
    m[30_000:30_003] = b"mid"
    assert reread(p) == m
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)                                    # fsync of a read-only descriptor
    os.close(fd)


# --- links, symlinks, rename -------------------------------------------------------------

def test_hard_links(fsdir):
    a, b = fsdir / "a", fsdir / "b"
    write_file(a, data(9000))
    os.link(a, b)
    sa, sb = os.stat(a), os.stat(b)
    assert sa.st_nlink == 2 and sb.st_nlink == 2
    assert sa.st_ino == sb.st_ino
    fd = os.open(b, os.O_RDWR)
    os.pwrite(fd, b"through-b", 4000)               # written through one name
    os.close(fd)
    assert read_file(a)[4000:4009] == b"through-b"  # seen through the other
    fd = os.open(a, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"end-a")
    os.close(fd)
    assert read_file(b).endswith(b"end-a") and os.stat(b).st_size == 9005
    sub = fsdir / "sub"
    sub.mkdir()
    os.link(a, sub / "c")                           # a link in another folder
    assert os.stat(a).st_nlink == 3
    os.unlink(a)
    assert os.stat(b).st_nlink == 2
    assert read_file(sub / "c") == read_file(b)
    assert reread(b)[4000:4009] == b"through-b"
    expect(errno.EEXIST, os.link, b, sub / "c")
    expect(errno.ENOENT, os.link, fsdir / "nope", fsdir / "x")
    expect(errno.EPERM, os.link, sub, fsdir / "dirlink")   # no links to folders
    os.unlink(sub / "c")
    assert os.stat(b).st_nlink == 1


def test_symlinks(fsdir):
    t = fsdir / "target"
    write_file(t, b"pointed-to " + MARK)
    s = fsdir / "link"
    os.symlink("target", s)
    assert os.readlink(s) == "target"
    ls = os.lstat(s)
    assert stat.S_ISLNK(ls.st_mode) and ls.st_size == len("target")
    assert stat.S_ISREG(os.stat(s).st_mode)
    assert read_file(s) == b"pointed-to " + MARK
    write_file(s, b"via link")                      # writing follows the link
    assert read_file(t) == b"via link"
    long_target = "x/" * 1000 + "y"                 # a long target (2001 bytes)
    os.symlink(long_target, fsdir / "long")
    assert os.readlink(fsdir / "long") == long_target
    os.symlink("/nonexistent/absolute/path", fsdir / "dangling")
    assert os.readlink(fsdir / "dangling") == "/nonexistent/absolute/path"
    expect(errno.ENOENT, os.stat, fsdir / "dangling")
    assert stat.S_ISLNK(os.lstat(fsdir / "dangling").st_mode)
    expect(errno.EEXIST, os.symlink, "x", s)
    expect(errno.EINVAL, os.readlink, t)            # not a link
    os.mkdir(fsdir / "d")
    os.symlink("d", fsdir / "dl")
    write_file(fsdir / "dl" / "in", b"in")          # a path through a folder link
    assert read_file(fsdir / "d" / "in") == b"in"
    assert sorted(os.listdir(fsdir)) == ["d", "dangling", "dl", "link", "long", "target"]
    os.unlink(s)
    assert t.exists() and not os.path.lexists(s)


def test_rename(fsdir):
    a, b = fsdir / "a", fsdir / "b"
    da, db = data(5000), data(7000)
    write_file(a, da)
    write_file(b, db)
    fd = os.open(a, os.O_RDONLY)                    # an open descriptor survives
    os.rename(a, fsdir / "c")
    assert not a.exists() and read_file(fsdir / "c") == da
    os.rename(fsdir / "c", b)                       # over an existing file
    assert read_file(b) == da and sorted(os.listdir(fsdir)) == ["b"]
    assert os.pread(fd, 10_000, 0) == da
    os.close(fd)
    os.mkdir(fsdir / "d1")
    os.rename(b, fsdir / "d1" / "b")                # into a sub-folder
    os.rename(fsdir / "d1", fsdir / "d2")           # a folder with its contents
    assert read_file(fsdir / "d2" / "b") == da
    assert reread(fsdir / "d2" / "b") == da
    # RENAME_NOREPLACE
    write_file(a, db)
    expect(errno.EEXIST, renameat2, a, fsdir / "d2" / "b", RENAME_NOREPLACE)
    assert read_file(fsdir / "d2" / "b") == da and read_file(a) == db
    renameat2(a, fsdir / "new", RENAME_NOREPLACE)
    assert read_file(fsdir / "new") == db and not a.exists()
    # RENAME_EXCHANGE: the two names swap their files
    renameat2(fsdir / "new", fsdir / "d2" / "b", RENAME_EXCHANGE)
    assert read_file(fsdir / "new") == da and read_file(fsdir / "d2" / "b") == db
    assert reread(fsdir / "new") == da and reread(fsdir / "d2" / "b") == db
    os.mkdir(fsdir / "e")
    write_file(fsdir / "e" / "inner", b"inner")
    renameat2(fsdir / "e", fsdir / "new", RENAME_EXCHANGE)  # a folder and a file
    assert stat.S_ISDIR(os.stat(fsdir / "new").st_mode)
    assert read_file(fsdir / "new" / "inner") == b"inner"
    assert read_file(fsdir / "e") == da
    expect(errno.ENOENT, renameat2, fsdir / "e", fsdir / "nope", RENAME_EXCHANGE)
    # errors
    expect(errno.ENOENT, os.rename, fsdir / "nope", fsdir / "x")
    expect(errno.EISDIR, os.rename, fsdir / "e", fsdir / "new")     # file over folder
    expect(errno.ENOTDIR, os.rename, fsdir / "new", fsdir / "e")    # folder over file
    expect(errno.ENOTEMPTY, os.rename, fsdir / "d2", fsdir / "new")  # over a non-empty folder
    expect(errno.EINVAL, os.rename, fsdir / "d2", fsdir / "d2" / "sub")  # into itself
    os.mkdir(fsdir / "empty")
    os.rename(fsdir / "d2", fsdir / "empty")        # over an empty folder
    assert read_file(fsdir / "empty" / "b") == db
    # renaming a name onto itself (or a hard link of itself) changes nothing
    os.rename(fsdir / "e", fsdir / "e")
    os.link(fsdir / "e", fsdir / "e2")
    os.rename(fsdir / "e", fsdir / "e2")
    assert read_file(fsdir / "e") == da and os.stat(fsdir / "e").st_nlink == 2


# --- special files ----------------------------------------------------------------------

def test_fifo(fsdir):
    p = fsdir / "fifo"
    os.mkfifo(p, 0o600)
    assert stat.S_ISFIFO(os.stat(p).st_mode)
    r = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(p, os.O_WRONLY)
    os.write(w, b"through the fifo")
    assert os.read(r, 100) == b"through the fifo"
    os.close(w)
    os.close(r)
    q = fsdir / "fifo2"
    os.mknod(q, stat.S_IFIFO | 0o640)
    st = os.stat(q)
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640 & ~_umask()
    expect(errno.EEXIST, os.mkfifo, p)


def _umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_unix_socket(fsdir):
    cwd = os.getcwd()
    os.chdir(fsdir)                                 # short names: sun_path holds 108 bytes
    try:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind("sock")
        srv.listen(1)
        assert stat.S_ISSOCK(os.stat("sock").st_mode)
        cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        cli.connect("sock")
        conn, _ = srv.accept()
        cli.sendall(b"hello over a socket file")
        assert conn.recv(100) == b"hello over a socket file"
        for s in (conn, cli, srv):
            s.close()
        s2 = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        assert err(s2.bind, "sock") == errno.EADDRINUSE
        s2.close()
        os.unlink("sock")
        os.mknod("sock2", stat.S_IFSOCK | 0o600)
        assert stat.S_ISSOCK(os.stat("sock2").st_mode)
    finally:
        os.chdir(cwd)


# --- xattrs, locks, mmap ---------------------------------------------------------------

def user_xattrs(p, **kw):
    return sorted(n for n in os.listxattr(p, **kw) if n.startswith("user."))


def test_xattrs(fsdir):
    p = fsdir / "x"
    write_file(p, data(100))
    assert user_xattrs(p) == []
    expect(errno.ENODATA, os.getxattr, p, "user.nothing")
    os.setxattr(p, "user.one", b"1")
    os.setxattr(p, "user.two", b"\x00binary\xff" * 100)
    assert os.getxattr(p, "user.one") == b"1"
    assert os.getxattr(p, "user.two") == b"\x00binary\xff" * 100
    assert user_xattrs(p) == ["user.one", "user.two"]
    expect(errno.EEXIST, os.setxattr, p, "user.one", b"x", os.XATTR_CREATE)
    expect(errno.ENODATA, os.setxattr, p, "user.three", b"x", os.XATTR_REPLACE)
    os.setxattr(p, "user.one", b"replaced", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.one") == b"replaced"
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.empty") == b""
    os.removexattr(p, "user.two")
    assert user_xattrs(p) == ["user.empty", "user.one"]
    expect(errno.ENODATA, os.removexattr, p, "user.two")
    expect(errno.ENODATA, os.getxattr, p, "user.two")
    os.mkdir(fsdir / "d")
    os.setxattr(fsdir / "d", "user.dir", b"d")      # on a folder
    assert os.getxattr(fsdir / "d", "user.dir") == b"d"
    # the content is untouched by xattr changes, and they survive a rename
    os.rename(p, fsdir / "y")
    assert os.getxattr(fsdir / "y", "user.one") == b"replaced"
    assert len(read_file(fsdir / "y")) == 100
    os.symlink("y", fsdir / "ly")                   # follows the link by default
    assert os.getxattr(fsdir / "ly", "user.one") == b"replaced"


def _try_flock(p, how):
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return 0
    except OSError as e:
        return e.errno
    finally:
        os.close(fd)


def test_flock(fsdir):
    p = fsdir / "lk"
    write_file(p, b"lock me")
    fd = os.open(p, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    assert in_child(_try_flock, p, fcntl.LOCK_EX) == errno.EWOULDBLOCK
    assert in_child(_try_flock, p, fcntl.LOCK_SH) == errno.EWOULDBLOCK
    fcntl.flock(fd, fcntl.LOCK_SH)                  # downgrade: shared locks coexist
    assert in_child(_try_flock, p, fcntl.LOCK_SH) == 0
    assert in_child(_try_flock, p, fcntl.LOCK_EX) == errno.EWOULDBLOCK
    fcntl.flock(fd, fcntl.LOCK_UN)
    assert in_child(_try_flock, p, fcntl.LOCK_EX) == 0
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.close(fd)                                    # closing releases it
    assert in_child(_try_flock, p, fcntl.LOCK_EX) == 0


FLOCK_FMT = "hhqqi"     # struct flock on x86_64: l_type, l_whence, l_start, l_len, l_pid


def _posix_probe(p, start, length):
    """(F_GETLK answer (type, start, len, pid), errno of a non-blocking write lock)."""
    fd = os.open(p, os.O_RDWR)
    try:
        q = struct.pack(FLOCK_FMT, fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        r = struct.unpack(FLOCK_FMT, fcntl.fcntl(fd, fcntl.F_GETLK, q))
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start, os.SEEK_SET)
            e = 0
        except OSError as ex:
            e = ex.errno
        return (r[0], r[2], r[3], r[4]), e
    finally:
        os.close(fd)


def test_posix_locks(fsdir):
    p = fsdir / "pl"
    write_file(p, data(1000))
    fd = os.open(p, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX, 100, 0, os.SEEK_SET)     # bytes 0..99
    (typ, start, length, pid), e = in_child(_posix_probe, p, 50, 10)
    assert typ == fcntl.F_WRLCK and start == 0 and length == 100 and pid == os.getpid()
    assert e in (errno.EAGAIN, errno.EACCES)
    (typ, _, _, _), e = in_child(_posix_probe, p, 200, 10)  # another range is free
    assert typ == fcntl.F_UNLCK and e == 0
    fcntl.lockf(fd, fcntl.LOCK_UN, 100, 0, os.SEEK_SET)
    (typ, _, _, _), e = in_child(_posix_probe, p, 50, 10)
    assert typ == fcntl.F_UNLCK and e == 0
    fcntl.lockf(fd, fcntl.LOCK_SH, 0, 0, os.SEEK_SET)       # a read lock on the whole file
    (typ, _, _, pid), e = in_child(_posix_probe, p, 500, 1)
    assert typ == fcntl.F_RDLCK and pid == os.getpid()
    assert e in (errno.EAGAIN, errno.EACCES)
    os.close(fd)                                            # closing drops POSIX locks
    (typ, _, _, _), e = in_child(_posix_probe, p, 0, 0)
    assert typ == fcntl.F_UNLCK and e == 0


def test_mmap_shared_write(fsdir):
    p = fsdir / "mm"
    n = 5 * PAGE + 123
    a = bytearray(data(n))
    write_file(p, a)
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    edits = [(0, b"first"), (PAGE - 3, b"across-pages"), (3 * PAGE + 7, MARK),
             (n - 4, b"last")]
    for off, b in edits:
        m[off:off + len(b)] = b
        a[off:off + len(b)] = b
    other = os.open(p, os.O_RDONLY)                 # read() sees the mapping's writes
    assert os.pread(other, n + 10, 0) == a
    os.pwrite(fd, b"by-write", 2 * PAGE)            # and the mapping sees write()'s
    a[2 * PAGE:2 * PAGE + 8] = b"by-write"
    assert m[2 * PAGE:2 * PAGE + 8] == b"by-write"
    m.flush()
    m.close()
    os.close(fd)
    assert os.pread(other, n + 10, 0) == a
    os.close(other)
    assert os.stat(p).st_size == n                  # the page tail is not part of the file
    assert reread(p) == a
    # a private mapping does not write back
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, n, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE)
    m[0:5] = b"PRIV!"
    m.close()
    os.close(fd)
    assert reread(p) == a


# --- metadata ----------------------------------------------------------------------------

def test_statfs(fsdir):
    st = os.statvfs(fsdir)
    assert st.f_bsize > 0 and st.f_frsize > 0
    assert st.f_blocks > 0 and 0 < st.f_bfree <= st.f_blocks and st.f_bavail <= st.f_bfree
    assert st.f_namemax >= 255
    assert st.f_files > 0 and st.f_ffree <= st.f_files
    if fsdir.kind == "overcrypt":                   # the backing filesystem's figures
        b = os.statvfs(fsdir.backing)
        assert st.f_blocks * st.f_frsize == b.f_blocks * b.f_frsize
        assert st.f_files == b.f_files


def test_utimensat_ns(fsdir):
    p = fsdir / "u"
    write_file(p, b"time")
    at, mt = 1_600_000_000_123_456_789, 1_500_000_000_987_654_321
    os.utime(p, ns=(at, mt))
    st = os.stat(p)
    assert st.st_atime_ns == at and st.st_mtime_ns == mt
    os.mkdir(fsdir / "d")
    os.utime(fsdir / "d", ns=(at + 1, mt + 1))
    st = os.stat(fsdir / "d")
    assert st.st_atime_ns == at + 1 and st.st_mtime_ns == mt + 1
    os.symlink("u", fsdir / "l")
    os.utime(fsdir / "l", ns=(at + 2, mt + 2), follow_symlinks=False)
    st = os.lstat(fsdir / "l")
    assert st.st_atime_ns == at + 2 and st.st_mtime_ns == mt + 2
    assert os.stat(p).st_mtime_ns == mt             # the target is untouched
    fd = os.open(p, os.O_RDWR)
    os.utime(fd, ns=(at + 3, mt + 3))               # futimens
    os.close(fd)
    assert os.stat(p).st_mtime_ns == mt + 3
    # a write moves mtime forward from the past value
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"more")
    os.close(fd)
    assert os.stat(p).st_mtime_ns > mt + 3
    assert read_file(p) == b"timemore"


def test_chmod_chown(fsdir):
    p = fsdir / "c"
    write_file(p, data(50))
    for mode in (0o600, 0o640, 0o755, 0o4711, 0o000):
        os.chmod(p, mode)
        assert stat.S_IMODE(os.stat(p).st_mode) == mode
    os.chmod(p, 0o644)
    os.chown(p, NOBODY, NOBODY)
    st = os.stat(p)
    assert st.st_uid == NOBODY and st.st_gid == NOBODY
    os.chown(p, -1, 0)                              # the group only
    st = os.stat(p)
    assert st.st_uid == NOBODY and st.st_gid == 0
    os.mkdir(fsdir / "d", 0o700)
    os.chmod(fsdir / "d", 0o1777)
    assert stat.S_IMODE(os.stat(fsdir / "d").st_mode) == 0o1777
    os.symlink("c", fsdir / "l")
    os.chown(fsdir / "l", NOBODY, NOBODY, follow_symlinks=False)
    assert os.lstat(fsdir / "l").st_uid == NOBODY
    assert len(read_file(p)) == 50                  # root still reads it
    if fsdir.kind == "overcrypt":                   # and the backing file has them too
        bst = os.stat(fsdir.backing / "c")
        assert bst.st_uid == NOBODY and bst.st_gid == 0
        assert stat.S_IMODE(bst.st_mode) == 0o644


def test_o_tmpfile(fsdir):
    flags = os.O_TMPFILE | os.O_RDWR
    if fsdir.kind == "ext4":
        fd = os.open(fsdir, flags, 0o600)
        os.write(fd, b"anonymous")
        assert os.pread(fd, 20, 0) == b"anonymous"
        os.close(fd)
        assert os.listdir(fsdir) == []
    else:
        # libfuse 3.14 has no tmpfile operation
        expect(errno.EOPNOTSUPP, os.open, fsdir, flags, 0o600)
        assert os.listdir(fsdir) == []


def test_readdir(fsdir):
    names = {f"n{i:04d}-{'x' * (i % 50)}" for i in range(500)}
    for n in names:
        write_file(fsdir / n, b"")
    os.mkdir(fsdir / "sub")
    got = set(os.listdir(fsdir))
    assert got == names | {"sub"}
    with os.scandir(fsdir) as it:
        kinds = {e.name: e.is_dir(follow_symlinks=False) for e in it}
    assert kinds["sub"] is True and not any(v for k, v in kinds.items() if k != "sub")
    for n in list(names)[:250]:
        os.unlink(fsdir / n)
    assert set(os.listdir(fsdir)) == set(list(names)[250:]) | {"sub"}


def test_odd_names(fsdir):
    names = [b"with space", b"new\nline", b"tab\there", b"-dash", b".hidden", b"..dots",
             b"back\\slash", b"\x01ctl", "ünïcødé-日本".encode(), b"\xff\xfe-not-utf8",
             b"*?[glob]", b"'quote\"", b"a" * 255]
    root = os.fsencode(fsdir)
    for n in names:
        write_file(root + b"/" + n, b"name " + n + MARK)
    assert sorted(os.listdir(root)) == sorted(names)
    for n in names:
        assert read_file(root + b"/" + n) == b"name " + n + MARK
        os.rename(root + b"/" + n, root + b"/" + n[:200] + b".r")
    assert sorted(os.listdir(root)) == sorted(n[:200] + b".r" for n in names)
    for bad in (b".", b".."):
        expect(errno.EEXIST, os.mkdir, root + b"/" + bad)
    expect(errno.EISDIR, os.open, root + b"/.", os.O_WRONLY)


def test_truncate_to_zero_seen_by_other_handles(fsdir):
    """A truncation to zero through one handle (O_TRUNC or ftruncate) is
    seen by every other handle of the file, and writes through the old
    handles land in the same file."""
    p = fsdir / "tz"
    a = data(20_000)
    write_file(p, a)
    fd1 = os.open(p, os.O_RDWR)
    assert os.pread(fd1, 100, 0) == a[:100]
    fd2 = os.open(p, os.O_WRONLY | os.O_TRUNC)      # truncates under fd1
    assert os.fstat(fd1).st_size == 0
    assert os.pread(fd1, 100, 0) == b""
    b = data(5000)
    os.write(fd2, b)
    assert os.pread(fd1, 6000, 0) == b
    os.pwrite(fd1, b"fd1", 4998)                    # the old handle writes on top
    want = b[:4998] + b"fd1"
    assert os.pread(fd1, 6000, 0) == want
    os.ftruncate(fd1, 0)
    os.pwrite(fd2, b"after" + MARK, 10)             # a hole before, via the other handle
    want = bytes(10) + b"after" + MARK
    assert os.pread(fd1, 100, 0) == want
    fd3 = os.open(p, os.O_RDONLY)
    assert os.pread(fd3, 100, 0) == want
    for fd in (fd1, fd2, fd3):
        os.close(fd)
    assert reread(p) == want


def test_many_files(fsdir):
    """More files than the overlay keeps descriptors for (it caches 4096):
    every file reads back its own content, also after its folder was
    renamed, through hard links whose first name is gone, and through
    descriptors held open across the rename."""
    top = fsdir / "top"
    per, dirs = 2500, 4
    for d in range(dirs):
        (top / f"d{d}").mkdir(parents=True)
        for i in range(per):
            write_file(top / f"d{d}" / f"f{i}", b"%d/%d " % (d, i) + MARK)
    held = []
    for i in range(0, per, 2):                      # 1250 descriptors held open
        held.append((i, os.open(top / "d1" / f"f{i}", os.O_RDWR)))
    for i in range(0, per, 10):                     # links, then the first name goes
        os.link(top / "d2" / f"f{i}", top / "d3" / f"l{i}")
        os.unlink(top / "d2" / f"f{i}")
    os.rename(top, fsdir / "moved")
    top = fsdir / "moved"
    os.rename(top / "d1", top / "d1-renamed")
    for d in range(dirs):                           # walk everything (cache churn)
        dn = top / ("d1-renamed" if d == 1 else f"d{d}")
        for i in range(per):
            if d == 2 and i % 10 == 0:
                assert not os.path.lexists(dn / f"f{i}")
                continue
            assert read_file(dn / f"f{i}") == b"%d/%d " % (d, i) + MARK, f"{dn}/f{i}"
    for i in range(0, per, 10):
        assert read_file(top / "d3" / f"l{i}") == b"2/%d " % i + MARK
        assert os.stat(top / "d3" / f"l{i}").st_nlink == 1
    for i, fd in held:                              # the held descriptors still work
        assert os.pread(fd, 100, 0) == b"1/%d " % i + MARK
        os.pwrite(fd, b"!", 0)
        os.close(fd)
    for i in range(0, per, 2):
        assert read_file(top / "d1-renamed" / f"f{i}") == b"!/%d " % i + MARK
    assert len(os.listdir(top / "d3")) == per + per // 10


# --- concurrency ------------------------------------------------------------------------

def _byte_writer(p, parity, blocks, rounds):
    fd = os.open(p, os.O_WRONLY)
    try:
        for r in range(rounds):
            for off in range(parity, blocks * BLOCK, 2):
                v = 1 + (off * 7 + r) % 255
                os.pwrite(fd, bytes([v]), off)
    finally:
        os.close(fd)
    return True


def test_concurrent_writers_one_block(fsdir):
    """Two processes write interleaved single bytes (one the even offsets,
    the other the odd ones) of the same 4 KiB blocks: a read-modify-write
    that loses the other's bytes leaves an old value behind."""
    p = fsdir / "cw"
    blocks, rounds = 2, 3
    write_file(p, bytes(blocks * BLOCK))
    j1 = spawn(_byte_writer, p, 0, blocks, rounds)
    j2 = spawn(_byte_writer, p, 1, blocks, rounds)
    assert j1() and j2()
    want = bytes(1 + (off * 7 + rounds - 1) % 255 for off in range(blocks * BLOCK))
    for got in (read_file(p), reread(p)):
        bad = [o for o in range(len(want)) if got[o] != want[o]]
        assert not bad, (f"{len(bad)} bytes lost, first at {bad[:10]}: "
                         f"got {got[bad[0]]} want {want[bad[0]]}")


def _rmw_writer(p, half, iters):
    """Write the whole of one half of block 0 again and again (a new value
    each time); the last value written is (iters - 1)."""
    fd = os.open(p, os.O_RDWR)
    try:
        for i in range(iters):
            os.pwrite(fd, bytes([1 + i % 250]) * (BLOCK // 2), half * (BLOCK // 2))
    finally:
        os.close(fd)
    return True


def test_concurrent_writers_halves(fsdir):
    p = fsdir / "halves"
    write_file(p, bytes(3 * BLOCK))
    iters = 3000
    j1 = spawn(_rmw_writer, p, 0, iters)
    j2 = spawn(_rmw_writer, p, 1, iters)
    assert j1() and j2()
    v = 1 + (iters - 1) % 250
    want = bytes([v]) * BLOCK + bytes(2 * BLOCK)
    assert read_file(p) == want
    assert reread(p) == want


# --- errors -----------------------------------------------------------------------------

def test_enoent(fsdir):
    n = fsdir / "nope"
    expect(errno.ENOENT, os.open, n, os.O_RDONLY)
    expect(errno.ENOENT, os.stat, n)
    expect(errno.ENOENT, os.lstat, n)
    expect(errno.ENOENT, os.unlink, n)
    expect(errno.ENOENT, os.rmdir, n)
    expect(errno.ENOENT, os.rename, n, fsdir / "x")
    expect(errno.ENOENT, os.open, n / "deeper", os.O_RDWR | os.O_CREAT, 0o644)
    expect(errno.ENOENT, os.mkdir, n / "deeper")
    expect(errno.ENOENT, os.truncate, n, 0)
    expect(errno.ENOENT, os.chmod, n, 0o600)
    expect(errno.ENOENT, os.getxattr, n, "user.x")
    expect(errno.ENOENT, os.listdir, n)
    expect(errno.ENOENT, os.readlink, n)
    write_file(fsdir / "gone", b"x")
    os.unlink(fsdir / "gone")
    expect(errno.ENOENT, os.stat, fsdir / "gone")   # no stale entry after unlink


def test_eexist(fsdir):
    p = fsdir / "f"
    write_file(p, b"x")
    expect(errno.EEXIST, os.open, p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.mkdir(fsdir / "d")
    expect(errno.EEXIST, os.mkdir, fsdir / "d")
    expect(errno.EEXIST, os.mkdir, p)
    expect(errno.EEXIST, os.symlink, "x", p)
    expect(errno.EEXIST, os.link, p, fsdir / "d")
    expect(errno.EEXIST, os.mkfifo, p)
    expect(errno.EEXIST, os.open, fsdir / "d", os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
    assert read_file(p) == b"x"                     # untouched


def test_enotempty_eisdir_enotdir(fsdir):
    d = fsdir / "d"
    d.mkdir()
    write_file(d / "f", b"x")
    expect(errno.ENOTEMPTY, os.rmdir, d)
    expect(errno.EISDIR, os.open, d, os.O_WRONLY)
    expect(errno.EISDIR, os.open, d, os.O_RDWR)
    expect(errno.EISDIR, os.open, d, os.O_WRONLY | os.O_CREAT, 0o644)
    expect(errno.EISDIR, os.unlink, d)
    expect(errno.EISDIR, os.truncate, d, 0)
    f = d / "f"
    expect(errno.ENOTDIR, os.open, f / "x", os.O_RDONLY)
    expect(errno.ENOTDIR, os.open, f / "x", os.O_WRONLY | os.O_CREAT, 0o644)
    expect(errno.ENOTDIR, os.mkdir, f / "x")
    expect(errno.ENOTDIR, os.open, f, os.O_RDONLY | os.O_DIRECTORY)
    expect(errno.ENOTDIR, os.rmdir, f)
    expect(errno.ENOTDIR, os.listdir, f)
    expect(errno.ENOTDIR, os.stat, f / "x")
    os.unlink(f)
    os.rmdir(d)
    assert os.listdir(fsdir) == []


def test_enametoolong(fsdir):
    ok = "n" * 255
    write_file(fsdir / ok, b"255 bytes is fine")
    assert read_file(fsdir / ok) == b"255 bytes is fine"
    long = "n" * 256
    expect(errno.ENAMETOOLONG, os.open, fsdir / long, os.O_WRONLY | os.O_CREAT, 0o644)
    expect(errno.ENAMETOOLONG, os.stat, fsdir / long)
    expect(errno.ENAMETOOLONG, os.mkdir, fsdir / long)
    expect(errno.ENAMETOOLONG, os.rename, fsdir / ok, fsdir / long)
    expect(errno.ENAMETOOLONG, os.symlink, "x", fsdir / long)
    expect(errno.ENAMETOOLONG, os.link, fsdir / ok, fsdir / long)
    # multi-byte names: 255 bytes is the limit, not 255 characters
    u = "é" * 127                                   # 254 bytes
    write_file(fsdir / u, b"utf-8")
    assert u in os.listdir(fsdir)
    expect(errno.ENAMETOOLONG, os.open, fsdir / ("é" * 128), os.O_WRONLY | os.O_CREAT, 0o644)


def test_eloop(fsdir):
    write_file(fsdir / "t", b"x")
    os.symlink("t", fsdir / "l")
    expect(errno.ELOOP, os.open, fsdir / "l", os.O_RDONLY | os.O_NOFOLLOW)
    expect(errno.ELOOP, os.open, fsdir / "l", os.O_WRONLY | os.O_NOFOLLOW)
    os.symlink("b", fsdir / "a")
    os.symlink("a", fsdir / "b")
    expect(errno.ELOOP, os.open, fsdir / "a", os.O_RDONLY)
    expect(errno.ELOOP, os.stat, fsdir / "a")
    expect(errno.ELOOP, os.open, fsdir / "a", os.O_WRONLY | os.O_CREAT, 0o644)
    os.symlink("self", fsdir / "self")
    expect(errno.ELOOP, os.stat, fsdir / "self")
    assert stat.S_ISLNK(os.lstat(fsdir / "a").st_mode)


def test_exdev(fsdir, tmp_path):
    """ext4: rename to another filesystem (/dev/shm) is EXDEV. Overlay: the
    encrypted folder and its public sub-folder are governed by different
    rules: link() across is EXDEV, and so is a rename of a plaintext file
    into the encrypted folder (DESIGN: plaintext <-> encrypted folder)."""
    if fsdir.kind == "ext4":
        write_file(fsdir / "f", b"x")
        other = "/dev/shm" if os.path.isdir("/dev/shm") else None
        if other is None or os.stat(other).st_dev == os.stat(fsdir).st_dev:
            pytest.skip("no second filesystem to rename to")
        expect(errno.EXDEV, os.rename, fsdir / "f", f"{other}/ovc-exdev-{os.getpid()}")
        expect(errno.EXDEV, os.link, fsdir / "f", f"{other}/ovc-exdev-{os.getpid()}")
        return
    pub = fsdir.overlay.fresh(public=True)
    write_file(fsdir / "enc", b"encrypted " + MARK)
    write_file(pub / "plain", b"public plaintext")
    expect(errno.EXDEV, os.link, fsdir / "enc", pub / "enc-link")
    expect(errno.EXDEV, os.link, pub / "plain", fsdir / "plain-link")
    expect(errno.EXDEV, os.rename, pub / "plain", fsdir / "plain")
    expect(errno.EXDEV, renameat2, fsdir / "enc", pub / "plain", RENAME_EXCHANGE)
    assert read_file(fsdir / "enc") == b"encrypted " + MARK
    assert read_file(pub / "plain") == b"public plaintext"
    back = fsdir.overlay.backing_of(pub / "plain")
    assert back.read_bytes() == b"public plaintext"  # the public folder is passthrough


# --- permissions as another user --------------------------------------------------------

def _as_nobody(dfd):
    """Run as nobody: the errnos of a few accesses relative to folder `dfd`."""
    def e(fn, *a, **kw):
        try:
            r = fn(*a, **kw)
            if isinstance(r, int):
                os.close(r)
            return 0
        except OSError as ex:
            return ex.errno
    return {
        "read_0600": e(os.open, "secret", os.O_RDONLY, dir_fd=dfd),
        "write_0600": e(os.open, "secret", os.O_WRONLY, dir_fd=dfd),
        "read_0644": e(os.open, "public", os.O_RDONLY, dir_fd=dfd),
        "write_0644": e(os.open, "public", os.O_WRONLY, dir_fd=dfd),
        "create_in_0755": e(os.open, "new", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd),
        "unlink_in_0755": e(os.unlink, "public", dir_fd=dfd),
        "enter_0700": e(os.open, "private/inner", os.O_RDONLY, dir_fd=dfd),
        "create_in_0777": e(os.open, "open/mine", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dfd),
        "chmod_not_owner": e(os.chmod, "public", 0o777, dir_fd=dfd),
    }


def perm_tree(d):
    os.chmod(d, 0o755)
    write_file(d / "secret", b"root only", 0o600)
    os.chmod(d / "secret", 0o600)
    write_file(d / "public", b"for all", 0o644)
    os.chmod(d / "public", 0o644)
    os.mkdir(d / "private", 0o700)
    os.chmod(d / "private", 0o700)
    write_file(d / "private" / "inner", b"x", 0o644)
    os.mkdir(d / "open")
    os.chmod(d / "open", 0o777)


def test_permissions_non_root(fsdir):
    """As nobody: EACCES on a 0600 root file, on writing a 0644 root file,
    on creating in a 0755 root folder, on entering a 0700 folder; EPERM on
    chmod of another's file; a 0644 file reads and a 0777 folder takes a new
    file. On the overlay this runs in the public sub-folder (passthrough):
    in the encrypted folder a user with no keys can do nothing at all, which
    test_no_view_user_encrypted_folder covers. Paths are opened relative to
    a folder descriptor opened as root, so pytest's 0700 tmp folders above
    do not matter."""
    d = fsdir if fsdir.kind == "ext4" else fsdir.overlay.fresh(public=True)
    perm_tree(d)
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = in_child(_as_nobody, dfd, uid=NOBODY)
    finally:
        os.close(dfd)
    want = {"read_0600": errno.EACCES, "write_0600": errno.EACCES, "read_0644": 0,
            "write_0644": errno.EACCES, "create_in_0755": errno.EACCES,
            "unlink_in_0755": errno.EACCES, "enter_0700": errno.EACCES,
            "create_in_0777": 0, "chmod_not_owner": errno.EPERM}
    if fsdir.kind == "overcrypt":
        # nobody has no view (the agent serves alice only): below a folder
        # that a served user's encryption rule names, even its public
        # sub-folder, a uid without a view cannot create (fail closed,
        # fusefs/decide.c "guarded"); reads of plaintext are passthrough.
        want["create_in_0777"] = errno.EACCES
    assert {k: ename(v) for k, v in got.items()} == {k: ename(v) for k, v in want.items()}
    if fsdir.kind == "ext4":
        st = os.stat(d / "open" / "mine")
        assert st.st_uid == NOBODY and st.st_gid == NOBODY  # created as nobody
    else:
        assert not os.path.lexists(d / "open" / "mine")
    assert read_file(d / "secret") == b"root only"     # root still can
    assert read_file(d / "public") == b"for all"


def _nobody_in_encrypted(dfd):
    def e(fn, *a, **kw):
        try:
            r = fn(*a, **kw)
            if isinstance(r, int):
                os.close(r)
            return 0
        except OSError as ex:
            return ex.errno
    return {"read_0644": e(os.open, "public", os.O_RDONLY, dir_fd=dfd),
            "create_in_0777": e(os.open, "open/mine", os.O_WRONLY | os.O_CREAT, 0o644,
                                dir_fd=dfd)}


def test_no_view_user_encrypted_folder(fsdir):
    """Overlay only: a uid the agent does not serve (nobody) is treated as
    locked in the encrypted folder: it cannot read an encrypted file even
    though the mode allows it, nor create one (EACCES, fail closed)."""
    if fsdir.kind == "ext4":
        pytest.skip("overlay behaviour: ext4 has no keys")
    perm_tree(fsdir)
    dfd = os.open(fsdir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        got = in_child(_nobody_in_encrypted, dfd, uid=NOBODY)
    finally:
        os.close(dfd)
    assert {k: ename(v) for k, v in got.items()} == {"read_0644": "EACCES",
                                                       "create_in_0777": "EACCES"}
    assert not os.path.lexists(fsdir / "open" / "mine")


# --- the backing side ------------------------------------------------------------------

def test_ciphertext_behind(fsdir):
    """Overlay: files written show up on the backing side (the bind mount
    made before mounting) starting with OVCRYPT1 and without the plaintext;
    names, folders and symlinks are as written."""
    if fsdir.kind == "ext4":
        pytest.skip("overlay behaviour")
    files = {"a.txt": data(1), "b.doc": data(BLOCK), "sub/c": data(200_000),
             "sub/deeper/d": data(3 * BLOCK + 1), "e": MARK * 1000}
    for rel, b in files.items():
        (fsdir / rel).parent.mkdir(parents=True, exist_ok=True)
        write_file(fsdir / rel, b)
    os.symlink("a.txt", fsdir / "ln")
    os.sync()
    for rel, b in files.items():
        raw = (fsdir.backing / rel).read_bytes()
        assert raw.startswith(MAGIC), f"{rel}: {raw[:16]!r}"
        assert MARK not in raw
        if len(b) >= 64:
            assert b[:64] not in raw
        assert os.stat(fsdir / rel).st_size == len(b)
        assert read_file(fsdir / rel) == b
    assert os.readlink(fsdir.backing / "ln") == "a.txt"
    assert fsdir.overlay.check_backing(fsdir) == len(files)
    hits = fsdir.overlay.grep_backing(MARK)
    assert hits == [], hits
