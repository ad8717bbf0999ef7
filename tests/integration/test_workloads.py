"""Real programs on the mount: git (clone, fsck, checkout of an older commit,
commit, gc), sqlite3 (two concurrent writer processes, then PRAGMA
integrity_check), fio (random read/write with crc32c verification, also
through mmap), rsync -a in and out with diff -r, tar out and back in with
identical listings, and a file edited in place through mmap. Each runs on
plain ext4 too (proving the test right) and on the overlay, where the
backing side is then checked: no plaintext marker, every file encrypted
(overlaylib.fsdir's teardown, and an explicit check here)."""
import hashlib
import json
import mmap
import os
import random
import shutil
import sqlite3
import stat
import subprocess

import pytest

from overlaylib import MARK, data, overlay, fsdir  # noqa: F401

GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
           "LC_ALL": "C"}


def sh(args, cwd=None, env=None, timeout=300, check=True, input=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([str(a) for a in args], cwd=cwd, env=e, capture_output=True,
                       timeout=timeout, input=input)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    if check:
        assert p.returncode == 0, f"{args} exited {p.returncode}:\n{p.out[-3000:]}\n{p.err[-3000:]}"
    return p


def need(*progs):
    for prog in progs:
        if not shutil.which(prog):
            pytest.fail(f"{prog} is not installed (make deps)")


def no_plaintext(fsdir):
    if fsdir.kind == "overcrypt":
        n = fsdir.overlay.check_backing(fsdir)
        assert n > 0, "nothing encrypted on the backing side"


def git(*args, cwd, check=True):
    return sh(["git", *args], cwd=cwd, env=GIT_ENV, check=check)


def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# --- git ----------------------------------------------------------------------------------

def test_git(fsdir, tmp_path):
    need("git")
    rng = random.Random(7)
    origin = tmp_path / "origin"
    origin.mkdir()
    git("init", "-q", "-b", "main", cwd=origin)
    versions = []
    for i in range(6):
        (origin / "src").mkdir(exist_ok=True)
        (origin / "README").write_bytes(b"version %d\n" % i + MARK + b"\n")
        (origin / "src" / f"mod{i}.c").write_bytes(b"int f%d(void) { return %d; }\n" % (i, i))
        (origin / "blob.bin").write_bytes(data(300_000 + i * 1000, rng))
        if i == 3:
            (origin / "src" / "mod1.c").unlink()
            os.symlink("README", origin / "link")
        git("add", "-A", cwd=origin)
        git("commit", "-q", "-m", f"commit {i} {MARK.decode()}", cwd=origin)
        head = git("rev-parse", "HEAD", cwd=origin).out.strip()
        snap = {}
        for dp, dn, fn in os.walk(origin):
            dn[:] = [d for d in dn if d != ".git"]
            for f in fn:
                p = os.path.join(dp, f)
                rel = os.path.relpath(p, origin)
                snap[rel] = (os.readlink(p).encode() if os.path.islink(p)
                             else open(p, "rb").read())
        versions.append((head, snap))

    def tree(root):
        got = {}
        for dp, dn, fn in os.walk(root):
            dn[:] = [d for d in dn if d != ".git"]
            for f in fn:
                p = os.path.join(dp, f)
                got[os.path.relpath(p, root)] = (os.readlink(p).encode() if os.path.islink(p)
                                                 else open(p, "rb").read())
        return got

    clone = fsdir / "clone"
    git("clone", "-q", "--no-local", origin, clone, cwd=fsdir)    # packs through the transport
    git("fsck", "--full", "--strict", cwd=clone)
    assert tree(clone) == versions[-1][1]
    old_head, old_snap = versions[1]
    git("checkout", "-q", old_head, cwd=clone)
    assert tree(clone) == old_snap
    assert git("status", "--porcelain", cwd=clone).out == ""
    git("checkout", "-q", "main", cwd=clone)
    assert tree(clone) == versions[-1][1]
    # work in the clone: a commit, a repack, fsck again
    (clone / "new.txt").write_bytes(b"written in the clone " + MARK)
    git("add", "new.txt", cwd=clone)
    git("commit", "-q", "-m", "in the clone", cwd=clone)
    git("gc", "-q", "--prune=now", cwd=clone)
    git("fsck", "--full", "--strict", cwd=clone)
    assert git("log", "--format=%s", "-1", cwd=clone).out.strip() == "in the clone"
    # a plain local clone (object files copied, not packed) into the overlay too
    clone2 = fsdir / "clone2"
    git("clone", "-q", origin, clone2, cwd=fsdir)
    git("fsck", "--full", "--strict", cwd=clone2)
    # and back out to plain disk: reads every object through the overlay
    back = tmp_path / "back"
    git("clone", "-q", "--no-local", clone, back, cwd=tmp_path)
    git("fsck", "--full", "--strict", cwd=back)
    assert (back / "new.txt").read_bytes() == b"written in the clone " + MARK
    no_plaintext(fsdir)


# --- sqlite -----------------------------------------------------------------------------------

ROWS = 400


def _sqlite_writer(db, who, journal):
    c = sqlite3.connect(db, timeout=120, isolation_level=None)
    try:
        c.execute("PRAGMA busy_timeout = 120000")
        for i in range(ROWS):
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO t (who, n, payload) VALUES (?, ?, ?)",
                      (who, i, MARK + os.urandom(200 + (i * 37) % 3000)))
            if i % 50 == 0:
                c.execute("UPDATE t SET upd = upd + 1 WHERE who = ? AND n = ?",
                          (who, i // 2))
            c.execute("COMMIT")
    finally:
        c.close()
    return ROWS


def _spawn(fn, *a):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn(*a)
            code = 0
        except BaseException:  # noqa: BLE001
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_sqlite_two_writers(fsdir, journal):
    need("sqlite3")
    db = fsdir / "test.db"
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA journal_mode = {journal}")
    c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT, n INTEGER, "
              "payload BLOB, upd INTEGER DEFAULT 0)")
    c.execute("CREATE INDEX t_who ON t (who, n)")
    c.commit()
    c.close()
    pids = [_spawn(_sqlite_writer, str(db), w, journal) for w in ("a", "b")]
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "a writer failed (see its traceback)"
    p = sh(["sqlite3", db, "PRAGMA integrity_check;"])
    assert p.out.strip() == "ok", p.out
    p = sh(["sqlite3", db, "SELECT who, count(*), count(DISTINCT n), min(n), max(n) "
            "FROM t GROUP BY who ORDER BY who;"])
    assert p.out.split() == [f"a|{ROWS}|{ROWS}|0|{ROWS - 1}", f"b|{ROWS}|{ROWS}|0|{ROWS - 1}"]
    p = sh(["sqlite3", db, "SELECT sum(upd), count(*) FROM t WHERE upd > 0;"])
    assert p.out.split() == ["%d|%d" % ((2 * len(range(0, ROWS, 50)),) * 2)]
    p = sh(["sqlite3", db, "SELECT count(*) FROM t WHERE instr(payload, X'%s') = 1;"
            % MARK.hex()])
    assert int(p.out) == 2 * ROWS
    if journal == "wal":
        sh(["sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE);"])
        assert sh(["sqlite3", db, "PRAGMA integrity_check;"]).out.strip() == "ok"
    sh(["sqlite3", db, "VACUUM;"])
    assert sh(["sqlite3", db, "PRAGMA integrity_check;"]).out.strip() == "ok"
    assert sh(["sqlite3", db, "SELECT count(*) FROM t;"]).out.strip() == str(2 * ROWS)
    no_plaintext(fsdir)


# --- fio --------------------------------------------------------------------------------------

def fio(fsdir, tmp_path, name, *opts):
    js = tmp_path / f"{name}.json"
    p = sh(["fio", f"--name={name}", f"--directory={fsdir}", "--output-format=json",
            f"--output={js}", "--verify=crc32c", "--verify_fatal=1", "--do_verify=1",
            "--randrepeat=0", "--verify_state_save=0", *opts], timeout=600, check=False)
    out = js.read_text() if js.exists() else ""
    assert p.returncode == 0, f"fio {name} exited {p.returncode}: {p.err[-3000:]}\n{out[-3000:]}"
    j = json.loads(out[out.find("{"):])
    for job in j["jobs"]:
        assert job["error"] == 0, f"fio {name}: {job['jobname']} error {job['error']}"
    return j


def test_fio_verify(fsdir, tmp_path):
    need("fio")
    j = fio(fsdir, tmp_path, "randwrite", "--rw=randwrite", "--bsrange=512-64k",
            "--size=64m", "--ioengine=psync", "--filename=fio.randwrite")
    assert j["jobs"][0]["write"]["io_bytes"] >= 64 << 20
    j = fio(fsdir, tmp_path, "randrw", "--rw=randrw", "--bs=4k", "--size=64m",
            "--ioengine=psync", "--filename=fio.randrw", "--fsync=64")
    assert j["jobs"][0]["write"]["io_bytes"] > 0 and j["jobs"][0]["read"]["io_bytes"] > 0
    j = fio(fsdir, tmp_path, "mmap", "--rw=randwrite", "--bs=4k", "--size=16m",
            "--ioengine=mmap", "--filename=fio.mmap")
    j = fio(fsdir, tmp_path, "twojobs", "--rw=randwrite", "--bs=16k", "--size=16m",
            "--ioengine=psync", "--numjobs=2", "--filename_format=fio.$jobnum")
    # O_DIRECT: every read of the verify pass goes to the filesystem
    j = fio(fsdir, tmp_path, "direct", "--rw=randrw", "--bs=4k", "--size=16m",
            "--ioengine=psync", "--direct=1", "--filename=fio.direct")
    assert j["jobs"][0]["read"]["io_bytes"] > 0
    for f in ("fio.randwrite", "fio.randrw", "fio.mmap", "fio.direct"):
        assert os.stat(fsdir / f).st_size >= 16 << 20
    # the files read back whole after their page cache is dropped: the
    # second verify pass reads every block from the filesystem again
    j = fio(fsdir, tmp_path, "reverify", "--rw=randwrite", "--bs=4k", "--size=8m",
            "--ioengine=psync", "--filename=fio.reverify", "--verify_backlog=256",
            "--fadvise_hint=1", "--invalidate=1")
    if fsdir.kind == "overcrypt":
        fsdir.overlay.check_backing(fsdir)
        raw = fsdir.backing / "fio.randrw"
        assert os.stat(raw).st_size > 64 << 20     # ciphertext: the tags make it bigger


# --- rsync and tar ------------------------------------------------------------------------------

def make_tree(root, rng):
    """A tree with files of many sizes, empty files and folders, symlinks
    (also dangling), a fifo, odd modes, a hard link, old mtimes with
    nanoseconds, and names with spaces and non-ASCII."""
    root.mkdir()
    sizes = [0, 1, 100, 4095, 4096, 4097, 65536, 200_001, 1 << 20]
    for d in ("a", "a/b", "a/b/c", "empty dir", "ünï"):
        (root / d).mkdir(parents=True, exist_ok=True)
    n = 0
    for d in ("", "a", "a/b", "a/b/c", "ünï"):
        for s in sizes:
            n += 1
            p = root / d / f"file {n}.dat"
            p.write_bytes(data(s, rng))
            os.chmod(p, rng.choice([0o644, 0o600, 0o755, 0o640, 0o444]))
            t = 1_500_000_000 + rng.randrange(10 ** 8)
            os.utime(p, ns=(t * 10 ** 9 + rng.randrange(10 ** 9),
                            t * 10 ** 9 + rng.randrange(10 ** 9)))
    os.symlink("file 1.dat", root / "rel-link")
    os.symlink("/nonexistent/target", root / "a" / "dangling")
    os.symlink("../..", root / "a" / "b" / "up")
    os.link(root / "a" / "file 12.dat", root / "a" / "hardlink")
    os.mkfifo(root / "a" / "fifo")
    os.chmod(root / "a" / "b", 0o750)
    for d in ("a/b/c", "empty dir"):
        os.utime(root / d, ns=(1_400_000_000_123_456_789, 1_400_000_000_123_456_789))


def listing(root):
    """{relpath: (type, mode, size, mtime_ns, link target, content hash)}."""
    out = {}
    for dp, dn, fn in os.walk(root):
        for name in dn + fn:
            p = os.path.join(dp, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            kind = stat.S_IFMT(st.st_mode)
            entry = [kind, stat.S_IMODE(st.st_mode), None, None, None, None]
            if stat.S_ISREG(kind):
                entry[2], entry[3], entry[5] = st.st_size, st.st_mtime_ns, sha(p)
            elif stat.S_ISLNK(kind):
                entry[4] = os.readlink(p)
            elif stat.S_ISDIR(kind):
                entry[3] = None          # a folder's mtime changes as it is filled
            out[rel] = tuple(entry)
    return out


def test_rsync_in_and_out(fsdir, tmp_path):
    need("rsync", "diff")
    src = tmp_path / "src"
    make_tree(src, random.Random(3))
    dst = fsdir / "tree"
    sh(["rsync", "-a", f"{src}/", f"{dst}/"])
    sh(["diff", "-r", "--no-dereference", "-x", "fifo", src, dst])
    assert listing(dst) == listing(src)
    # nothing left to transfer, even comparing checksums
    p = sh(["rsync", "-a", "-n", "-i", "-c", f"{src}/", f"{dst}/"])
    assert p.out.strip() == "", p.out
    # an update in place (--inplace rewrites blocks of an existing file)
    big = src / "a" / "b" / "file 27.dat"
    b = bytearray(big.read_bytes())
    b[500_000:500_010] = b"CHANGED!!!"
    big.write_bytes(bytes(b))
    sh(["rsync", "-a", "--inplace", "--no-whole-file", f"{src}/", f"{dst}/"])
    assert sha(dst / "a" / "b" / "file 27.dat") == sha(big)
    out = tmp_path / "out"
    sh(["rsync", "-a", f"{dst}/", f"{out}/"])
    sh(["diff", "-r", "--no-dereference", "-x", "fifo", src, out])
    assert listing(out) == listing(src)
    # with hard links and xattrs
    os.setxattr(src / "file 1.dat", "user.tag", b"value")
    dst2 = fsdir / "tree2"
    sh(["rsync", "-aHX", f"{src}/", f"{dst2}/"])
    assert os.getxattr(dst2 / "file 1.dat", "user.tag") == b"value"
    assert os.stat(dst2 / "a" / "hardlink").st_ino == os.stat(dst2 / "a" / "file 12.dat").st_ino
    sh(["diff", "-r", "--no-dereference", "-x", "fifo", src, dst2])
    no_plaintext(fsdir)


def test_tar_out_and_in(fsdir, tmp_path):
    need("tar", "diff")
    src = tmp_path / "src"
    make_tree(src, random.Random(4))
    # into the overlay with tar (a pipe from plain disk), out again, back in
    tin = fsdir / "in"
    tin.mkdir()
    a0 = tmp_path / "a0.tar"
    sh(["tar", "-C", src, "--sort=name", "--format=posix", "-cf", a0, "."])
    sh(["tar", "-C", tin, "--same-permissions", "-xf", a0])
    a1 = tmp_path / "a1.tar"
    sh(["tar", "-C", tin, "--sort=name", "--format=posix", "-cf", a1, "."])
    back = fsdir / "back"
    back.mkdir()
    sh(["tar", "-C", back, "--same-permissions", "-xf", a1])
    a2 = tmp_path / "a2.tar"
    sh(["tar", "-C", back, "--sort=name", "--format=posix", "-cf", a2, "."])

    def tv(a):
        # folder mtimes change while tar fills them; compare everything else
        lines = sh(["tar", "--full-time", "-tvf", a]).out.splitlines()
        return [ln for ln in lines if not ln.startswith("d")], \
            [" ".join(ln.split()[:2] + ln.split()[5:]) for ln in lines if ln.startswith("d")]
    assert tv(a1) == tv(a0)
    assert tv(a2) == tv(a0)
    sh(["diff", "-r", "--no-dereference", "-x", "fifo", src, tin])
    sh(["diff", "-r", "--no-dereference", "-x", "fifo", src, back])
    assert listing(back) == listing(src)
    # tar's own compare mode reads every member back through the filesystem
    sh(["tar", "-C", back, "--compare", "-f", a0])
    no_plaintext(fsdir)


# --- mmap --------------------------------------------------------------------------------------

def test_mmap_edit_in_place(fsdir, tmp_path):
    rng = random.Random(5)
    n = (3 << 20) + 1234
    want = bytearray(data(n, rng))
    p = fsdir / "doc.bin"
    p.write_bytes(want)
    for rnd in range(3):
        fd = os.open(p, os.O_RDWR)
        m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        for _ in range(300):
            off = rng.randrange(0, n)
            if rng.random() < 0.3:                  # straddle a page boundary
                off = max(0, (off // mmap.PAGESIZE) * mmap.PAGESIZE - rng.randrange(1, 20))
            k = min(rng.randrange(1, 9000), n - off)
            b = data(k, rng)
            m[off:off + k] = b
            want[off:off + k] = b
        m.move(1000, 2 * mmap.PAGESIZE, 5000)       # memmove inside the mapping
        want[1000:6000] = want[2 * mmap.PAGESIZE:2 * mmap.PAGESIZE + 5000]
        if rnd != 1:
            m.flush()
        m.close()
        os.close(fd)
        expected = tmp_path / f"expected{rnd}"
        expected.write_bytes(want)
        sh(["cmp", expected, p])                    # another process reads it
        fd = os.open(p, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        got = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
        os.close(fd)
        assert got == want, f"round {rnd}: mmap edits lost after the cache was dropped"
        assert os.stat(p).st_size == n
    # grow with ftruncate, then write the new part through a new mapping
    fd = os.open(p, os.O_RDWR)
    os.ftruncate(fd, n + 10_000)
    m = mmap.mmap(fd, n + 10_000, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    assert m[n:n + 10_000] == bytes(10_000)
    m[n + 5000:n + 5000 + len(MARK)] = MARK
    m.close()
    os.close(fd)
    want += bytes(10_000)
    want[n + 5000:n + 5000 + len(MARK)] = MARK
    assert p.read_bytes() == want
    no_plaintext(fsdir)
