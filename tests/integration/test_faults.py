"""Faults (issue 7, "Faults"): backing files damaged behind the overlay's back, the
backing filesystem full, the agent killed during heavy writes, the policy changing under
load. Nothing acknowledged is lost; nothing is left half-written; damage reads as EIO with
one log line naming the file and block, never as wrong bytes.
"""
import errno
import os
import subprocess
import threading
import time

import pytest

from overlaylib import MAGIC, MARK, data, header, overlay  # noqa: F401
from overlaylib import read_bytes as read, write_synced as write

HDR, SLOT, BS = 120, 4124, 4096


def slot_off(j):
    return HDR + j * SLOT


def read_blocks(p, nblocks):
    """Each block read on its own: its bytes, or the errno it failed with."""
    out = []
    fd = os.open(p, os.O_RDONLY)
    try:
        for j in range(nblocks):
            try:
                out.append(os.pread(fd, BS, j * BS))
            except OSError as e:
                out.append(e.errno)
    finally:
        os.close(fd)
    return out


def drop_caches():
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def log_lines_since(overlay, mark, needle):
    return [l for l in overlay.agent.log()[mark:].splitlines() if needle in l]


# --- damage behind the overlay's back ------------------------------------------------------

def _flip(b, off):
    b[off] ^= 0x01


DAMAGE = {
    # name: (function(raw bytearray, other raw bytes) -> new raw, blocks that fail)
    "flipped bit": (lambda r, o: (_flip(r, slot_off(1) + 200), r)[1], {1}),
    "swapped blocks": (lambda r, o: r[:slot_off(1)] + r[slot_off(2):slot_off(3)] +
                       r[slot_off(1):slot_off(2)] + r[slot_off(3):], {1, 2}),
    "block from another file": (lambda r, o: r[:slot_off(2)] + o[slot_off(2):slot_off(3)] +
                                r[slot_off(3):], {2}),
    "zeroed block": (lambda r, o: r[:slot_off(1)] + bytes(SLOT) + r[slot_off(2):], {1}),
}


@pytest.mark.parametrize("shape", sorted(DAMAGE))
def test_damaged_blocks(overlay, shape):
    """One block (or two) damaged: exactly those give EIO, with a log line naming the file
    and the block; every other block still reads right; the agent keeps serving."""
    d = overlay.fresh(name="dmg")
    body, other = data(4 * BS), data(4 * BS)
    write(d / "f", body)
    write(d / "other", other)
    raw, oraw = overlay.backing_of(d / "f"), overlay.backing_of(d / "other")
    fn, bad = DAMAGE[shape]
    raw.write_bytes(bytes(fn(bytearray(raw.read_bytes()), oraw.read_bytes())))
    drop_caches()
    mark = len(overlay.agent.log())
    got = read_blocks(d / "f", 4)
    for j in range(4):
        if j in bad:
            assert got[j] == errno.EIO, (shape, j)
        else:
            assert got[j] == body[j * BS:(j + 1) * BS], (shape, j)
    time.sleep(0.3)
    for j in bad:
        lines = log_lines_since(overlay, mark, f"block {j} failed authentication")
        assert lines and str(d / "f") in lines[0], (shape, j, overlay.agent.log()[mark:])
    assert read(d / "other") == other


def test_header_from_another_file(overlay):
    """Another file's header: its file key opens no block of this one: EIO from block 0,
    named in the log; the other file is untouched."""
    d = overlay.fresh(name="hdr")
    body, other = data(3 * BS), data(3 * BS)
    write(d / "f", body)
    write(d / "other", other)
    raw, oraw = overlay.backing_of(d / "f"), overlay.backing_of(d / "other")
    raw.write_bytes(oraw.read_bytes()[:HDR] + raw.read_bytes()[HDR:])
    drop_caches()
    mark = len(overlay.agent.log())
    assert read_blocks(d / "f", 3) == [errno.EIO] * 3
    time.sleep(0.3)
    assert log_lines_since(overlay, mark, "block 0 failed authentication"), \
        overlay.agent.log()[mark:]
    assert read(d / "other") == other


@pytest.mark.parametrize("cut", ["at a block boundary", "back to the header"])
def test_cut_files(overlay, cut):
    """A file cut at a block boundary has lost its final block: reading its (new) last
    block fails and is named; cut back to its header, no block at all: EIO at the first
    read. `overcrypt repair` then brings it back to a readable state."""
    d = overlay.fresh(name="cut")
    body = data(3 * BS + 100)
    write(d / "f", body)
    raw = overlay.backing_of(d / "f")
    keep = slot_off(2) if cut == "at a block boundary" else HDR
    os.truncate(raw, keep)
    drop_caches()
    mark = len(overlay.agent.log())
    if keep == HDR:
        with pytest.raises(OSError) as ei:
            read(d / "f")
        assert ei.value.errno == errno.EIO
    else:
        got = read_blocks(d / "f", 2)
        assert got[0] == body[:BS]
        assert got[1] == errno.EIO
    time.sleep(0.3)
    assert log_lines_since(overlay, mark, str(d / "f")), overlay.agent.log()[mark:]
    p = overlay.agent.oc("repair", "--force", str(d / "f"))
    assert p.returncode == 0, p.out + p.err
    drop_caches()
    got = read(d / "f")
    # the prefix that authenticates, its last block resealed as the final one: both
    # blocks that were kept, or nothing when cut back to the header
    assert got == (body[:2 * BS] if keep != HDR else b""), (len(got), keep)


def test_garbage_appended(overlay):
    """Garbage after the last block: the backing size is no valid layout, or its last
    slot does not authenticate: the end of the file gives EIO, the blocks before it read."""
    d = overlay.fresh(name="garb")
    body = data(2 * BS)
    write(d / "f", body)
    raw = overlay.backing_of(d / "f")
    with open(raw, "ab") as f:
        f.write(os.urandom(5000))
    drop_caches()
    fd = os.open(d / "f", os.O_RDONLY)
    try:
        try:
            first = os.pread(fd, BS, 0)
        except OSError as e:
            first = e.errno
        assert first == body[:BS]
        with pytest.raises(OSError) as ei:
            while os.read(fd, 1 << 20):
                pass
        assert ei.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert overlay.mounted()


# --- the backing filesystem full -----------------------------------------------------------

@pytest.fixture(scope="module")
def small_overlay(build, tmp_path_factory):
    """The overlay on a 40 MiB ext4 image (loop-mounted on data/enc before the agent)."""
    tmp = tmp_path_factory.mktemp("full")
    img = tmp / "small.img"

    def prepare(data):
        subprocess.run(["truncate", "-s", "40M", img], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
        subprocess.run(["mount", "-o", "loop", img, data / "enc"], check=True)

    from overlaylib import overlay_env
    yield from overlay_env(build, tmp, prepare)


def test_backing_full(small_overlay):
    """Writes fail with ENOSPC (at write or at fsync: the writeback cache); every byte
    acknowledged by fsync before reads back; nothing reads as EIO; after space is freed
    the file reads whole and takes writes again; the agent keeps serving."""
    ov = small_overlay
    d = ov.fresh(name="full")
    keep = data(1 << 20)
    write(d / "keep", keep)
    chunk = data(256 << 10)
    acked, err = 0, None
    fd = os.open(d / "big", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for _ in range(400):                       # 100 MiB: more than the disk holds
            try:
                os.write(fd, chunk)
                os.fsync(fd)
                acked += len(chunk)
            except OSError as e:
                err = e.errno
                break
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert err == errno.ENOSPC, err
    assert acked > 10 << 20, acked
    assert read(d / "keep") == keep
    drop_caches()
    got = read(d / "big")                            # no EIO anywhere
    assert len(got) >= acked
    for off in range(0, acked, len(chunk)):
        assert got[off:off + len(chunk)] == chunk, off
    os.unlink(d / "keep")
    with open(d / "big", "ab") as f:                 # writable again
        f.write(b"after")
        f.flush()
        os.fsync(f.fileno())
    drop_caches()
    got = read(d / "big")
    assert got.endswith(b"after") and got[:acked] == (chunk * (acked // len(chunk)))
    raw = read(ov.backing_of(d / "big"))
    assert raw.startswith(MAGIC)
    p = ov.agent.oc("status")
    assert p.returncode == 0, p.out + p.err
    write(d / "small", b"still serving")
    assert read(d / "small") == b"still serving"


# --- the agent killed during heavy writes ----------------------------------------------------

@pytest.fixture(scope="module")
def kill_overlay(build, tmp_path_factory):
    from overlaylib import overlay_env
    yield from overlay_env(build, tmp_path_factory.mktemp("kill"))


class Writer(threading.Thread):
    """Rewrites whole blocks at random of a fixed-size file, fsync after every few; keeps,
    per block, the content last acknowledged by fsync and every content written since."""

    def __init__(self, path, nblocks, seed):
        super().__init__(daemon=True)
        self.path, self.n = path, nblocks
        self.rng = __import__("random").Random(seed)
        self.synced = [self.rng.randbytes(BS) for _ in range(nblocks)]
        self.pending = [[] for _ in range(nblocks)]
        self.error = None
        self.rounds = 0
        write(path, b"".join(self.synced))

    def run(self):
        try:
            fd = os.open(self.path, os.O_WRONLY)
            while True:
                for _ in range(self.rng.randrange(1, 8)):
                    j = self.rng.randrange(self.n)
                    b = self.rng.randbytes(BS)
                    self.pending[j].append(b)
                    os.pwrite(fd, b, j * BS)
                os.fsync(fd)
                for j in range(self.n):
                    if self.pending[j]:
                        self.synced[j] = self.pending[j][-1]
                        self.pending[j] = []
                self.rounds += 1
        except OSError as e:
            self.error = e.errno          # the agent is gone: ENOTCONN, EIO…


def test_agent_killed_during_writes(kill_overlay):
    """SIGKILL while four writers run: after a restart (the stale mount cleaned up and the
    folder mounted again) every block reads as its content at the last successful fsync or
    as one written after it, or, only for such blocks, fails to authenticate; repair makes
    every file readable."""
    ov = kill_overlay
    d = ov.fresh(name="kill")
    ws = [Writer(d / f"f{k}", 64, k) for k in range(4)]
    for w in ws:
        w.start()
    time.sleep(2)
    assert all(w.rounds > 0 for w in ws), [w.rounds for w in ws]
    ov.agent.kill9()
    for w in ws:
        w.join(timeout=30)
        assert not w.is_alive()
    ov.agent.start()
    ov.agent.wait_policy(timeout=20)
    p = ov.agent.unlock()
    assert p.returncode == 0, p.out + p.err
    ov.wait_mounted()
    assert "stale" in ov.agent.log().lower() or "not connected" in ov.agent.log().lower(), \
        ov.agent.log()
    drop_caches()
    for w in ws:
        got = read_blocks(w.path, w.n)
        damaged = False
        for j, b in enumerate(got):
            if b == w.synced[j] or b in w.pending[j]:
                continue
            assert b == errno.EIO and w.pending[j], (w.path, j)
            damaged = True
        if damaged:
            p = ov.agent.oc("repair", "--force", str(w.path))
            assert p.returncode == 0, p.out + p.err
            drop_caches()
            read(w.path)                              # readable again
        assert header(ov.backing_of(w.path)).startswith(MAGIC)


# --- the policy changing under load ---------------------------------------------------------

def test_key_rotation_under_load(overlay):
    """The asset's key rotated and the policy published and fetched three times while a
    writer reopens and rewrites a file: no write lost; every block authenticates; the file
    ends under the newest key (re-encrypted on its next write), never a mix."""
    d = overlay.fresh(name="rot")
    f = d / "f"
    stop = threading.Event()
    model = bytearray(data(32 * BS))
    write(f, bytes(model))
    errors = []

    def writer():
        rng = __import__("random").Random(7)
        try:
            while not stop.is_set():
                with open(f, "r+b") as fh:
                    for _ in range(8):
                        off = rng.randrange(len(model) - 100)
                        b = rng.randbytes(rng.randrange(1, 100))
                        fh.seek(off)
                        fh.write(b)
                        model[off:off + len(b)] = b
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    o = overlay.org
    for _ in range(3):
        p = subprocess.run([str(o.build / "overcrypt-admin"), "--store", str(o.store),
                            "--passphrase-file", str(o.pw), "keys", "rotate", "enc"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        o.publish(overlay.tmp / "published")
        p = overlay.agent.refresh()
        assert p.returncode == 0, p.out + p.err
        time.sleep(0.5)
    stop.set()
    t.join(timeout=30)
    assert not errors, errors
    with open(f, "r+b") as fh:                        # one more write: the newest key
        fh.write(model[:10])
    drop_caches()
    assert read(f) == bytes(model)
    kid = header(overlay.backing_of(f))[16:32]
    probe = d / "probe"
    write(probe, b"x")
    assert header(overlay.backing_of(probe))[16:32] == kid


# --- lock while files are open ---------------------------------------------------------------

def backing_size(plain):
    """The format's backing size for a plaintext size (docs/file-format.md)."""
    if plain == 0:
        return HDR + 28
    full, rem = divmod(plain, BS)
    return HDR + full * SLOT + (rem + 28 if rem else 0)


def test_lock_flushes_dirty_data_and_open_mappings_keep_working(overlay):
    """Dirty pages (written, not fsynced) reach the backing file encrypted at `lock`, while
    the keys still exist; an open descriptor and a shared writable mapping keep working
    after it; new opens are refused; nothing plaintext is written."""
    import mmap
    d = overlay.fresh(name="lockd")
    p = d / "f"
    base = data(3 * BS)
    write(p, base)
    fd = os.open(p, os.O_RDWR)
    mm = mmap.mmap(fd, 3 * BS, mmap.MAP_SHARED)
    try:
        tail = b"dirty tail, never fsynced " + MARK
        os.pwrite(fd, tail, 3 * BS)                 # grows the file: in the page cache only
        mm[100:108] = b"mmapped!"
        p2 = overlay.agent.oc("lock")
        assert p2.returncode == 0, p2.out + p2.err
        raw = overlay.backing_of(p)
        assert os.path.getsize(raw) == backing_size(3 * BS + len(tail))   # flushed at lock
        assert MARK not in read(raw)
        with pytest.raises(OSError) as ei:
            open(p, "rb")
        assert ei.value.errno == errno.EACCES
        mm[200:208] = b"after!!!"                    # the mapping still works
        mm.flush()
        assert os.pread(fd, 8, 200) == b"after!!!"
        os.fsync(fd)
    finally:
        mm.close()
        os.close(fd)
        p2 = overlay.agent.unlock()
        assert p2.returncode == 0, p2.out + p2.err
        overlay.agent.wait_status(lambda s: s["state"] == "ready", 10, "ready")
    drop_caches()
    got = read(p)
    want = bytearray(base + tail)
    want[100:108] = b"mmapped!"
    want[200:208] = b"after!!!"
    assert got == bytes(want)
    assert MARK not in read(overlay.backing_of(p))
