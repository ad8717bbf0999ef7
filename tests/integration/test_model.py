"""A randomized model test: the same random operations (write at a random
offset and size, read, truncate, append, rename, link, unlink, fsync,
fdatasync, mmap write, open/close of long-lived descriptors) run on a few
files under test and on their twin on plain disk. Every result (bytes read,
sizes, errno values) must be the same on both sides, and the whole files
(existence, size, link count, contents) are compared every CHECK_EVERY
operations and at the end.

The "overcrypt" run is the real test; the "ext4" run (ext4 against ext4) is
a cheap self-check of the test itself.

OVC_MODEL_SEED=N replays a run; OVC_MODEL_OPS=N changes the number of
operations (default 50,000). The seed is in every failure message."""
import errno
import mmap
import os
import random

from overlaylib import MARK, data, overlay, fsdir  # noqa: F401

OPS = int(os.environ.get("OVC_MODEL_OPS", "50000"))
CHECK_EVERY = 500
NAMES = ["f0", "f1", "f2", "f3", "d/f4", "d/f5"]
MAX_HANDLES = 6
BLOCK = 4096
OPEN_FLAGS = [os.O_RDWR, os.O_RDWR, os.O_WRONLY, os.O_RDONLY, os.O_RDWR | os.O_APPEND,
              os.O_WRONLY | os.O_APPEND, os.O_RDWR | os.O_CREAT,
              os.O_RDWR | os.O_CREAT | os.O_TRUNC]


def _read_all(fd):
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        off += len(b)


def summary(r):
    """A result with every bytes value shortened to its length and head."""
    def one(v):
        if isinstance(v, bytes) and len(v) > 48:
            return f"<{len(v)} bytes {v[:16]!r}...>"
        if isinstance(v, tuple):
            return "(" + ", ".join(one(x) for x in v) + ")"
        return repr(v)
    return one(r)


def first_difference(ra, rb):
    def blob(r):
        v = r[1]
        if isinstance(v, tuple):
            v = next((x for x in v if isinstance(x, bytes)), None)
        return v if isinstance(v, bytes) else None
    a, b = blob(ra), blob(rb)
    if a is None or b is None or a == b:
        return ""
    n = min(len(a), len(b))
    i = next((i for i in range(n) if a[i] != b[i]), n)
    return (f"; data differs first at byte {i} (block {i // BLOCK}): "
            f"under test {a[i:i + 16]!r}, twin {b[i:i + 16]!r}")


class Failure(AssertionError):
    pass


def attempt(fn):
    """("ok", value) or ("err", errno name)."""
    try:
        return ("ok", fn())
    except OSError as e:
        return ("err", errno.errorcode.get(e.errno, e.errno))


class Model:
    def __init__(self, a, b, seed):
        self.roots = (a, b)
        self.seed = seed
        self.rng = random.Random(seed)
        self.handles = []      # [name, fd_a, fd_b, flags]
        self.log = []
        self.counts = {}
        for r in self.roots:
            (r / "d").mkdir()

    # --- plumbing

    def fail(self, msg):
        raise Failure(f"seed {self.seed} (OVC_MODEL_SEED={self.seed} to replay), "
                      f"op {len(self.log)}: {msg}\nlast operations:\n  "
                      + "\n  ".join(self.log[-25:]))

    def both(self, what, fn):
        """fn(side, root) on both sides; the results must agree."""
        self.log.append(what)
        ra = attempt(lambda: fn(0, self.roots[0]))
        rb = attempt(lambda: fn(1, self.roots[1]))
        if ra != rb:
            self.fail(f"{what}: under test {summary(ra)}, twin {summary(rb)}"
                      + first_difference(ra, rb))
        return rb

    def size_of(self, name):
        """The twin's size of `name`, or None."""
        try:
            return os.stat(self.roots[1] / name).st_size
        except OSError:
            return None

    def pick_off(self, size):
        r = self.rng.random()
        if r < 0.25:
            return size or 0
        if r < 0.45:
            return max(0, self.rng.randrange(0, (size or 0) // BLOCK + 2) * BLOCK
                       + self.rng.choice([-1, 0, 1]))
        if r < 0.55:
            return self.rng.randrange(0, 600_000)
        return self.rng.randrange(0, max(size or 0, 1) + 8192)

    def pick_len(self):
        r = self.rng.random()
        if r < 0.4:
            return self.rng.randrange(1, 64)
        if r < 0.6:
            return self.rng.choice([BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK])
        return self.rng.randrange(1, 48_000)

    def payload(self, n):
        return data(n, self.rng)

    # --- operations

    def op_write(self):
        name, off, n = self.rng.choice(NAMES), None, self.pick_len()
        size = self.size_of(name)
        off = self.pick_off(size)
        b = self.payload(n)
        if self.handles and self.rng.random() < 0.6:
            h = self.rng.choice(self.handles)
            self.both(f"pwrite(handle {h[0]} flags {h[3]:#o}, {n}, {off})",
                      lambda s, r: os.pwrite(h[1 + s], b, off))
            return
        creat = os.O_CREAT if self.rng.random() < 0.3 else 0

        def w(s, r):
            fd = os.open(r / name, os.O_WRONLY | creat, 0o644)
            try:
                return os.pwrite(fd, b, off)
            finally:
                os.close(fd)
        self.both(f"write({name}, {n}, {off}, creat={bool(creat)})", w)

    def op_read(self):
        n = self.pick_len() * self.rng.choice([1, 1, 4])
        if self.handles and self.rng.random() < 0.6:
            h = self.rng.choice(self.handles)
            off = self.pick_off(os.fstat(h[2]).st_size)
            self.both(f"pread(handle {h[0]} flags {h[3]:#o}, {n}, {off})",
                      lambda s, r: os.pread(h[1 + s], n, off))
            return
        name = self.rng.choice(NAMES)
        off = self.pick_off(self.size_of(name))

        def rd(s, r):
            fd = os.open(r / name, os.O_RDONLY)
            try:
                return os.pread(fd, n, off)
            finally:
                os.close(fd)
        self.both(f"read({name}, {n}, {off})", rd)

    def op_append(self):
        n = self.pick_len()
        b = self.payload(n)
        app = [h for h in self.handles if h[3] & os.O_APPEND]
        if app and self.rng.random() < 0.5:
            h = self.rng.choice(app)
            self.both(f"append(handle {h[0]}, {n})", lambda s, r: os.write(h[1 + s], b))
            return
        name = self.rng.choice(NAMES)

        def ap(s, r):
            fd = os.open(r / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                return os.write(fd, b)
            finally:
                os.close(fd)
        self.both(f"append({name}, {n})", ap)

    def op_truncate(self):
        name = self.rng.choice(NAMES)
        size = self.size_of(name) or 0
        r = self.rng.random()
        if r < 0.15:
            new = 0
        elif r < 0.5:
            new = self.rng.randrange(0, size + 1)
        elif r < 0.7:
            new = self.rng.randrange(0, size // BLOCK + 3) * BLOCK + self.rng.choice([-1, 0, 1])
            new = max(new, 0)
        else:
            new = self.rng.randrange(0, size + 200_000)
        if size > 700_000:
            new = self.rng.randrange(0, 300_000)
        if self.handles and self.rng.random() < 0.5:
            h = self.rng.choice(self.handles)
            self.both(f"ftruncate(handle {h[0]} flags {h[3]:#o}, {new})",
                      lambda s, r: os.ftruncate(h[1 + s], new))
            return
        self.both(f"truncate({name}, {new})", lambda s, r: os.truncate(r / name, new))

    def op_rename(self):
        a, b = self.rng.choice(NAMES), self.rng.choice(NAMES)
        self.both(f"rename({a}, {b})", lambda s, r: os.rename(r / a, r / b))

    def op_link(self):
        a, b = self.rng.choice(NAMES), self.rng.choice(NAMES)
        self.both(f"link({a}, {b})", lambda s, r: os.link(r / a, r / b))

    def op_unlink(self):
        a = self.rng.choice(NAMES)
        self.both(f"unlink({a})", lambda s, r: os.unlink(r / a))

    def op_sync(self):
        fn = self.rng.choice([os.fsync, os.fdatasync])
        if self.handles and self.rng.random() < 0.7:
            h = self.rng.choice(self.handles)
            self.both(f"{fn.__name__}(handle {h[0]})", lambda s, r: fn(h[1 + s]))
            return
        name = self.rng.choice(NAMES)

        def sy(s, r):
            fd = os.open(r / name, os.O_RDONLY)
            try:
                return fn(fd)
            finally:
                os.close(fd)
        self.both(f"{fn.__name__}({name})", sy)

    def op_mmap(self):
        name = self.rng.choice(NAMES)
        size = self.size_of(name)
        if not size:
            return self.op_write()
        off = self.rng.randrange(0, size)
        n = min(self.pick_len(), size - off)
        b = self.payload(n)
        msync = self.rng.random() < 0.5

        def mw(s, r):
            fd = os.open(r / name, os.O_RDWR)
            try:
                st = os.fstat(fd).st_size
                if st != size:
                    return ("size", st)
                m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                try:
                    m[off:off + n] = b
                    if msync:
                        m.flush()
                finally:
                    m.close()
                return n
            finally:
                os.close(fd)
        self.both(f"mmap_write({name}, {n}, {off}, msync={msync})", mw)

    def op_open(self):
        if len(self.handles) >= MAX_HANDLES:
            return self.op_close()
        name = self.rng.choice(NAMES)
        flags = self.rng.choice(OPEN_FLAGS)
        fds = [None, None]

        def op(s, r):
            fds[s] = os.open(r / name, flags, 0o644)
            return True
        try:
            res = self.both(f"open({name}, {flags:#o})", op)
        finally:
            if (fds[0] is None) != (fds[1] is None):    # the failure is reported
                for fd in fds:
                    if fd is not None:
                        os.close(fd)
        if res[0] == "ok":
            self.handles.append([name, fds[0], fds[1], flags])

    def op_close(self):
        if not self.handles:
            return self.op_open()
        h = self.handles.pop(self.rng.randrange(len(self.handles)))
        self.both(f"close(handle {h[0]})", lambda s, r: os.close(h[1 + s]))

    def op_stat(self):
        name = self.rng.choice(NAMES)

        def st(s, r):
            x = os.stat(r / name)
            return (x.st_size, x.st_nlink, x.st_mode)
        self.both(f"stat({name})", st)
        if self.handles:
            h = self.rng.choice(self.handles)
            self.both(f"fstat(handle {h[0]})",
                      lambda s, r: (os.fstat(h[1 + s]).st_size, os.fstat(h[1 + s]).st_nlink))

    WEIGHTS = [("write", 24), ("read", 18), ("append", 8), ("truncate", 8), ("rename", 5),
               ("link", 4), ("unlink", 4), ("sync", 4), ("mmap", 6), ("open", 6),
               ("close", 5), ("stat", 8)]

    def check(self, when):
        self.log.append(f"check ({when})")
        for name in NAMES:
            def whole(s, r):
                st = os.stat(r / name)
                fd = os.open(r / name, os.O_RDONLY)
                try:
                    cached = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
                    # then what the filesystem itself returns: written back
                    # (fsync) and the clean page cache dropped
                    os.fsync(fd)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    fresh = _read_all(fd)
                finally:
                    os.close(fd)
                if cached != fresh:
                    return ("page cache and filesystem differ", len(cached), len(fresh))
                return (st.st_size, st.st_nlink, len(fresh), fresh)
            self.both(f"check {name} ({when})", whole)
        for h in self.handles:
            self.both(f"check handle {h[0]} size",
                      lambda s, r: os.fstat(h[1 + s]).st_size)
        self.log.append(f"check ok ({when})")

    def run(self, nops):
        ops = [getattr(self, "op_" + n) for n, _ in self.WEIGHTS]
        weights = [w for _, w in self.WEIGHTS]
        for i in range(nops):
            op = self.rng.choices(ops, weights)[0]
            op()
            if (i + 1) % CHECK_EVERY == 0:
                self.check(f"after {i + 1} operations")
        while self.handles:
            self.op_close()
        self.check("at the end")

    def close_all(self):
        for h in self.handles:
            for fd in h[1:3]:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.handles = []


def test_model(fsdir, tmp_path):
    seed = int(os.environ.get("OVC_MODEL_SEED", random.randrange(1 << 32)))
    print(f"model seed {seed} ({fsdir.kind}, {OPS} operations)")
    twin = tmp_path / "twin"
    twin.mkdir()
    m = Model(fsdir, twin, seed)
    try:
        m.run(OPS)
    except Failure:
        raise
    except Exception as e:      # anything else unexpected: still name the seed
        raise AssertionError(f"seed {seed} (OVC_MODEL_SEED={seed} to replay), "
                             f"op {len(m.log)} ({m.log[-1] if m.log else '-'}): {e!r}") from e
    finally:
        m.close_all()
    assert len([x for x in m.log if not x.startswith("check")]) >= OPS
    if fsdir.kind == "overcrypt":
        # nothing written reached the backing side as plaintext (fsdir's
        # teardown checks the magic of every file as well)
        assert fsdir.overlay.grep_backing(MARK) == [], f"seed {seed}"
