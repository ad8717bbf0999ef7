"""Fixtures for tests that run against the mounted overlay.

`overlay` (module scope): an org with one user (alice, the user overcryptd
serves), a shared asset `enc` on `<tmp>/data/enc/` and a public asset `pub`
on `<tmp>/data/enc/pub/`, published to a file:// source; a client config
with `[mount] allow_other = yes` (so other local users, e.g. `nobody` in the
permission tests, reach the mount); `<tmp>/data` bind-mounted on
`<tmp>/raw` (and made private) BEFORE the agent starts, so the ciphertext can
be read behind the overlay; overcryptd started, unlocked, and
`<tmp>/data/enc` seen as a fuse mount in /proc/mounts. It yields an
`Overlay`:
    .path     the mounted folder (<tmp>/data/enc)
    .pub      its public sub-folder (passthrough)
    .backing  the bind mount of <tmp>/data (ciphertext side)
    .agent    the agentlib.Agent (oc('lock'), unlock(), log())
    .backing_of(p)   the backing path of a path under .path
    .fresh(public=False)  a new empty folder under .path (or .pub)
At the end (also after a failure): the agent is stopped, then every mount
below the tmp folder is lazily unmounted, deepest first.

`fsdir` (function scope, parametrised "ext4" / "overcrypt"): a fresh empty
folder; for "ext4" under pytest's tmp folder, for "overcrypt" a new folder
inside overlay.path. It is an `FsDir` (a pathlib.PosixPath) with .kind,
.overlay (None for ext4) and .backing (None for ext4). For "overcrypt", its
teardown checks the backing side: every non-empty regular file below the
folder's backing starts with b"OVCRYPT1" and no backing file anywhere under
<tmp>/raw (except the public sub-folder) holds MARK, the marker every test
writes into its data (use `data()`).

Nothing here reads this machine's config: overcryptd and overcrypt get
`--config` and a private HOME/XDG_* (agentlib.Agent).
"""
import os
import pathlib
import random
import signal
import subprocess
import time

import pytest

from agentlib import Agent, Org, enroll, out, run, set_setting

MAGIC = b"OVCRYPT1"
# The plaintext marker: written into the data of every test (data()), never
# allowed on the backing side of an encrypted folder.
MARK = b"ovc-plaintext-marker-%08x" % random.getrandbits(32)
MOUNT_TIMEOUT = 20

ORG_TEXT = """
[group staff]
members = alice

[user alice]
recipient = {ra}

[asset enc]
type = shared
path = {data}/enc/
groups = staff

[asset pub]
type = public
path = {data}/enc/pub/
groups = staff

[asset legal]
type = shared
path = {data}/enc/legal/
groups = staff
"""


def data(n, rng=None):
    """`n` bytes of random data with MARK every ~1 KiB (so any plaintext
    that reaches the backing side is found by a grep)."""
    rng = rng or random
    if n <= 0:
        return b""
    b = bytearray(rng.randbytes(n))
    step = 1024
    for off in range(0, n, step):
        piece = MARK[: n - off]
        b[off:off + len(piece)] = piece
    return bytes(b)


def mounts_below(path):
    """Mount points at or below `path` (from /proc/mounts), deepest first."""
    path = str(path).rstrip("/")
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            mp = line.split()[1].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                found.append(mp)
    return sorted(set(found), key=len, reverse=True)


def fs_type(path):
    """The type /proc/mounts gives for the mount exactly at `path`, or None."""
    t = None
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1].encode().decode("unicode_escape") == str(path):
                t = fields[2]          # the last one is the one on top
    return t


def umount_below(path):
    errors = []
    for mp in mounts_below(path):
        p = subprocess.run(["umount", "-l", mp], capture_output=True)
        if p.returncode != 0:
            errors.append(f"umount -l {mp}: {p.stderr.decode(errors='replace')}")
    return errors


class MountAgent(Agent):
    """An Agent whose client config also has a [mount] section."""

    def __init__(self, *a, mount_extra="allow_other = yes", **kw):
        self.mount_extra = mount_extra
        super().__init__(*a, **kw)

    def write_config(self, **kw):
        super().write_config(**kw)
        if self.mount_extra:
            with open(self.config, "a") as f:
                f.write("[mount]\n" + self.mount_extra.rstrip("\n") + "\n")


class Overlay:
    def __init__(self, tmp, agent, org):
        self.tmp = tmp
        self.data = tmp / "data"
        self.path = self.data / "enc"
        self.pub = self.path / "pub"
        self.legal = self.path / "legal"      # another shared rule, another key
        self.backing = tmp / "raw"
        self.agent = agent
        self.org = org
        self._n = 0

    def backing_of(self, p):
        """The backing-side path of `p` (a path under self.data)."""
        return self.backing / pathlib.Path(p).relative_to(self.data)

    def fresh(self, public=False, name="t", legal=False):
        self._n += 1
        d = (self.pub if public else self.legal if legal else self.path) / f"{name}{self._n}"
        d.mkdir()
        return d

    def mounted(self):
        t = fs_type(self.path)
        return t is not None and t.startswith("fuse")

    def wait_mounted(self, timeout=MOUNT_TIMEOUT):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.mounted():
                return
            if self.agent.proc is not None and self.agent.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.path} not a fuse mount after {timeout} s "
                             f"(type {fs_type(self.path)}); agent log:\n{self.agent.log()}")

    def set_policy_setting(self, key, value):
        """Change a setting in org.conf, publish, and have the agent fetch it."""
        set_setting(self.org.conf(), key, value)
        self.org.publish(self.tmp / "published")
        p = self.agent.refresh()
        assert p.returncode == 0, p.out + p.err

    def check_backing(self, below=None):
        """Every non-empty regular file below `below` (a path under .path;
        default: the whole encrypted folder) starts with MAGIC on the backing
        side, and no backing file outside the public folder holds MARK.
        Returns the number of encrypted files seen."""
        errors, seen = [], 0
        root = self.backing_of(below or self.path)
        pub = self.backing_of(self.pub)
        for dirpath, dirnames, filenames in os.walk(root):
            d = pathlib.Path(dirpath)
            if d == pub or pub in d.parents:
                dirnames[:] = []
                continue
            for fn in filenames:
                p = d / fn
                st = os.lstat(p)
                if not (st.st_mode & 0o170000 == 0o100000) or st.st_size == 0:
                    continue
                with open(p, "rb") as f:
                    head = f.read(len(MAGIC))
                if head != MAGIC:
                    errors.append(f"{p}: starts with {head!r}, not {MAGIC!r}")
                seen += 1
        for p in self.grep_backing(MARK):
            errors.append(f"{p}: holds the plaintext marker {MARK!r}")
        assert not errors, "backing side:\n" + "\n".join(errors[:50])
        return seen

    def grep_backing(self, needle):
        """Backing files (outside the public folder) that contain `needle`."""
        pub = self.backing_of(self.pub)
        hits = []
        for dirpath, dirnames, filenames in os.walk(self.backing):
            d = pathlib.Path(dirpath)
            if d == pub or pub in d.parents:
                dirnames[:] = []
                continue
            for fn in filenames:
                p = d / fn
                try:
                    if not os.path.isfile(p) or os.path.islink(p):
                        continue
                    if file_contains(p, needle):
                        hits.append(p)
                except OSError:
                    continue
        return hits


def write_synced(p, b):
    """Write the whole file and fsync it."""
    with open(p, "wb") as f:
        f.write(b)
        f.flush()
        os.fsync(f.fileno())


def read_bytes(p):
    with open(p, "rb") as f:
        return f.read()


def header(p):
    """The 120-byte header of an encrypted backing file (crypto/format.h)."""
    with open(p, "rb") as f:
        return f.read(120)


def data_ranges(fd, size):
    """The (start, end) ranges of `fd` that hold data (SEEK_DATA/SEEK_HOLE),
    so a sparse file of terabytes is scanned in no time."""
    off = 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:          # ENXIO: no data after off
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, end
        off = end


def file_contains(p, needle):
    fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        for start, end in data_ranges(fd, size):
            off, prev = start, b""
            while off < end:
                b = os.pread(fd, min(1 << 20, end - off), off)
                if not b:
                    break
                if needle in prev[-len(needle):] + b:
                    return True
                prev = b
                off += len(b)
        return False
    finally:
        os.close(fd)


def _term(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def overlay_env(build, tmp, prepare=None, mount_extra="allow_other = yes"):
    """A generator: the org, the agent and its overlay on tmp/data/enc (see the module
    docstring), yielding an Overlay; everything stopped and unmounted at the end.
    `prepare(data)`, when given, runs first (e.g. mounts a small filesystem on data/enc)."""
    org_dir = tmp / "org"
    org_dir.mkdir()
    data = tmp / "data"
    raw = tmp / "raw"
    raw.mkdir()
    agent = None
    errors = []
    # a SIGTERM (e.g. from `timeout`) unwinds like ^C, so the finalizer
    # below still stops the agent and unmounts
    old_term = signal.signal(signal.SIGTERM, _term)
    try:
        (data / "enc").mkdir(parents=True)
        if prepare:
            prepare(data)
        (data / "enc" / "pub").mkdir()
        (data / "enc" / "legal").mkdir()
        o = Org(build, org_dir)
        ks = org_dir / "alice.ks"
        ra = enroll(build, ks, o.user_pw)
        o.append(ORG_TEXT.format(ra=ra, data=data))
        set_setting(o.conf(), "refresh_interval", "1h")
        pubdir = o.publish(tmp / "published")
        # the backing side, seen before the overlay covers it (with what
        # `prepare` mounted below data)
        p = run(["mount", "--rbind", data, raw])
        assert p.returncode == 0, f"mount --rbind: {out(p)}"
        p = run(["mount", "--make-rprivate", raw])
        assert p.returncode == 0, f"mount --make-rprivate: {out(p)}"
        agent = MountAgent(build, tmp / "agent", o, f"file://{pubdir}/",
                           keystore=ks, log_level="debug", mount_extra=mount_extra)
        agent.start()
        agent.wait_policy(timeout=20)
        p = agent.unlock()
        assert p.returncode == 0, f"unlock: {p.out}{p.err}"
        agent.wait_status(lambda s: s["state"] == "ready", 10, "ready")
        ov = Overlay(tmp, agent, o)
        ov.wait_mounted()
        yield ov
    finally:
        if agent is not None:
            try:
                agent.stop()
            except AssertionError as e:
                errors.append(str(e))
        errors += umount_below(tmp)
        signal.signal(signal.SIGTERM, old_term)
    if errors:
        pytest.fail("\n".join(errors))


@pytest.fixture(scope="module")
def overlay(build, tmp_path_factory):
    yield from overlay_env(build, tmp_path_factory.mktemp("ovl"))


class FsDir(pathlib.PosixPath):
    """A folder for one test; .kind "ext4" or "overcrypt", .overlay, .backing."""


@pytest.fixture(params=["ext4", "overcrypt"])
def fsdir(request, tmp_path):
    if request.param == "ext4":
        d = tmp_path / "fs"
        d.mkdir()
        f = FsDir(d)
        f.kind, f.overlay, f.backing = "ext4", None, None
        yield f
        return
    ov = request.getfixturevalue("overlay")
    assert ov.mounted(), f"{ov.path} is no longer mounted; agent log:\n{ov.agent.log()[-4000:]}"
    f = FsDir(ov.fresh())
    f.kind, f.overlay, f.backing = "overcrypt", ov, ov.backing_of(f)
    yield f
    if ov.mounted():
        ov.check_backing(f)
