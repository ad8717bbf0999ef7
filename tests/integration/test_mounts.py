"""overcryptd's mount management (daemon/mounts.c), from the outside: real
overlays mounted by the real agent in user mode, seen in /proc/mounts and in
`overcrypt status`.

- the folder of a shared rule is mounted (locked: fail closed, still mounted),
  and after a restart it is mounted before the control socket answers;
- a `[mount] path` folder is mounted with no policy and no rule;
- SIGTERM unmounts everything; SIGKILL leaves a dead mount ("Transport
  endpoint is not connected") that the next agent removes and mounts again;
- a new policy adds a folder (mounted) and drops one (unmounted; with a file
  held open through it: "pending-unmount" until the file is closed);
- a folder inside another is served by the outer overlay (one mount), and
  when a broader folder arrives the inner overlay is unmounted first;
- failures (a missing folder, a folder of another owner) are reported with
  their reason while the other overlays serve; SIGHUP retries at once;
- an overlay unmounted from outside is mounted again;
- processes whose working folder or open files were inside a folder before
  its overlay was mounted are reported (pid, command) until they leave.

Each test removes every mount it made, even when it fails: the agents are
stopped and then anything still mounted under the test's folders is lazily
unmounted (`umount -l`)."""
import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

import pytest

from agentlib import LEDGER, Agent, Org, enroll, serve, stop_all


MARK = "overcrypt mount test marker"


# --- the org --------------------------------------------------------------------------

TAIL = """
[group staff]
members = alice

[user alice]
recipient = {ra}

[asset treasury]
type = shared
path = {data}/vault/
groups = staff
"""


WIDE = """
[asset wide]
type = shared
path = {data}/
groups = staff
"""


@pytest.fixture(scope="module")
def morg(build, tmp_path_factory):
    """One org for the module, data under morg.data. Published folders (each
    serial higher than the one before):
      v1  treasury on data/vault/
      v2  treasury + ledger on data/ledger/
      v3  treasury (ledger dropped)
      v4  treasury + wide on data/ (broader than vault)"""
    d = tmp_path_factory.mktemp("morg")
    o = Org(build, d)
    o.data = d / "data"
    o.alice_ks = d / "alice.ks"
    ra = enroll(build, o.alice_ks, o.user_pw)
    o.append(TAIL.format(ra=ra, data=o.data))
    o.v1 = o.publish(d / "v1")
    o.append(LEDGER.format(data=o.data))
    o.v2 = o.publish(d / "v2")
    conf = o.conf().read_text()
    o.conf().write_text(conf.replace(LEDGER.format(data=o.data), ""))
    o.v3 = o.publish(d / "v3")
    o.append(WIDE.format(data=o.data))
    o.v4 = o.publish(d / "v4")
    serials = [json.loads((getattr(o, v) / "alice.json").read_text())["serial"]
               for v in ("v1", "v2", "v3", "v4")]
    assert serials == sorted(serials) and len(set(serials)) == 4, serials
    return o


# --- mounts -----------------------------------------------------------------------------

def unescape(s):
    return (s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")
            .replace("\\134", "\\"))


def mounts_table():
    """[(mount point, fstype, options)] from /proc/mounts, in order."""
    rows = []
    for line in pathlib.Path("/proc/mounts").read_text().splitlines():
        f = line.split(" ")
        if len(f) >= 4:
            rows.append((unescape(f[1]), f[2], f[3]))
    return rows


def overlays(under=None):
    """Mount points of overcrypt overlays (below `under` when given)."""
    out = []
    for mp, fs, _ in mounts_table():
        if fs == "fuse.overcrypt" and (under is None or mp == str(under)
                                       or mp.startswith(str(under) + "/")):
            out.append(mp)
    return out


def is_mounted(path):
    """` PATH fuse` in /proc/mounts, as a user would grep it."""
    return f" {path} fuse" in pathlib.Path("/proc/mounts").read_text()


def wait_for(pred, what, timeout=10, log=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s\nmounts: {overlays()}\n"
                         f"{log() if log else ''}")


def lazy_unmount_under(*dirs):
    """umount -l every mount below `dirs`, deepest first, until none is left."""
    for _ in range(10):
        left = [mp for mp, _, _ in mounts_table()
                if any(mp == str(d) or mp.startswith(str(d) + "/") for d in dirs)]
        if not left:
            return
        for mp in sorted(set(left), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)


@pytest.fixture(autouse=True)
def clean_mounts(morg, tmp_path):
    """Fresh data folders before each test; after it (after its agents have
    stopped: this fixture is set up first, so torn down last), nothing
    mounted under the org's folder or tmp_path."""
    lazy_unmount_under(morg.d, tmp_path)
    if morg.data.exists():
        shutil.rmtree(morg.data)
    for sub in ("vault", "ledger"):
        (morg.data / sub).mkdir(parents=True)
    (morg.data / "ledger" / "keep.txt").write_text("plaintext from before the rule\n")
    yield
    lazy_unmount_under(morg.d, tmp_path)
    left = [mp for mp, _, _ in mounts_table()
            if str(morg.d) in mp or str(tmp_path) in mp]
    assert not left, f"mounts left behind: {left}"


# --- the agent --------------------------------------------------------------------------

class MAgent(Agent):
    """An Agent whose config also has a [mount] section."""

    def __init__(self, *a, mounts=(), allow_other=None, **kw):
        self.mount_paths = list(mounts)
        self.allow_other = allow_other
        super().__init__(*a, **kw)

    def write_config(self, **kw):
        super().write_config(**kw)
        lines = []
        if self.mount_paths or self.allow_other is not None:
            lines.append("[mount]")
            lines += [f"path = {p}" for p in self.mount_paths]
            if self.allow_other is not None:
                lines.append(f"allow_other = {self.allow_other}")
        with open(self.config, "a") as f:
            f.write("\n".join(lines) + "\n")

    def mount(self, path, st=None):
        st = st or self.raw_status()
        for m in st["mounts"]:
            if m["path"] == str(path):
                return m
        return None

    def wait_mount_state(self, path, state, timeout=10):
        return self.wait_status(lambda s: (self.mount(path, s) or {}).get("state") == state,
                                timeout, f"{path} {state}")

    def wait_no_mount(self, path, timeout=10):
        return self.wait_status(lambda s: self.mount(path, s) is None, timeout,
                                f"{path} gone from status")


@pytest.fixture
def magent(build, morg, tmp_path):
    """Make an MAgent for alice under tmp_path/NAME serving file://PUB/ (or
    `url`); each is stopped with SIGTERM at the end and must exit 0 with no
    sanitizer report."""
    made = []

    def make(pub=None, name="agent", url=None, **kw):
        kw.setdefault("keystore", morg.alice_ks)
        a = MAgent(build, tmp_path / name, morg, url or f"file://{pub}/", **kw)
        made.append(a)
        return a
    yield make
    stop_all(made)


def pub_with(tmp_path, src, name="pub"):
    """A file:// source folder holding alice's pair from `src`."""
    pub = tmp_path / name
    serve(src, pub)
    return pub


# --- tests ------------------------------------------------------------------------------

def test_rule_folder_mounted_and_in_status(morg, magent, tmp_path):
    vault = morg.data / "vault"
    a = magent(pub_with(tmp_path, morg.v1)).start()
    a.wait_policy()
    st = a.wait_mount_state(vault, "mounted")
    assert is_mounted(vault), overlays()
    assert overlays(morg.d) == [str(vault)]
    # locked: mounted all the same (fail closed, not unmounted)
    assert st["state"] == "locked"
    m = a.mount(vault, st)
    assert m["rules"] == ["treasury"] and m["reason"] is None
    assert m["open_handles"] == 0 and m["bypassing"] == []
    for k in ("bytes_read", "bytes_written", "files_opened", "open_after_lock"):
        assert isinstance(m[k], (int, float)), (k, m)
    # the human form: one line per mount
    p = a.oc("status")
    assert p.returncode == 0, p.err
    assert f"{vault}  mounted" in p.out and "treasury" in p.out, p.out

    # SIGTERM unmounts; the next agent mounts from its cache before its
    # socket answers (no fetch needed: the source is gone)
    a.stop()
    assert not is_mounted(vault), overlays()
    shutil.rmtree(tmp_path / "pub")
    a.start()
    assert is_mounted(vault), overlays()
    assert a.mount(vault)["state"] == "mounted"


def test_mount_path_without_any_rule(morg, magent, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    a = magent(url="file:///nowhere/", mounts=[plain], allow_other="yes").start()
    st = a.wait_mount_state(plain, "mounted")
    assert st["policy"] is None and st["state"] == "no-policy"
    assert a.mount(plain, st)["rules"] == []
    opts = [o for mp, fs, o in mounts_table() if mp == str(plain)]
    assert opts and "allow_other" in opts[-1].split(","), opts
    # the folder is served: listing it goes through the overlay
    assert os.listdir(plain) == []
    assert os.stat(plain).st_dev != os.stat(tmp_path).st_dev


def test_sigterm_unmounts_everything(morg, magent, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    a = magent(pub_with(tmp_path, morg.v2), mounts=[extra]).start()
    a.wait_policy()
    for p in (morg.data / "vault", morg.data / "ledger", extra):
        a.wait_mount_state(p, "mounted")
    assert sorted(overlays(morg.d) + overlays(tmp_path)) == sorted(
        [str(morg.data / "vault"), str(morg.data / "ledger"), str(extra)])
    a.signal(signal.SIGTERM)
    assert a.proc.wait(timeout=15) == 0, a.log()
    assert overlays(morg.d) == [] and overlays(tmp_path) == []
    assert "overlay unmounted" in a.log()


def test_killed_agent_leaves_stale_mount_cleaned_at_restart(morg, magent, tmp_path):
    vault = morg.data / "vault"
    a = magent(pub_with(tmp_path, morg.v1)).start()
    a.wait_policy()
    a.wait_mount_state(vault, "mounted")
    a.kill9()
    with pytest.raises(OSError) as ei:
        os.listdir(vault)
    assert ei.value.errno == errno.ENOTCONN, ei.value    # Transport endpoint ...
    assert overlays(morg.d) == [str(vault)]

    a.start()
    # cleaned and mounted again before the socket answered
    assert overlays(morg.d) == [str(vault)], overlays()
    os.listdir(vault)
    assert a.mount(vault)["state"] == "mounted"
    assert "removed a stale overlay" in a.log(), a.log()


def test_policy_adds_then_drops_a_folder(morg, magent, tmp_path):
    vault, ledger = morg.data / "vault", morg.data / "ledger"
    pub = pub_with(tmp_path, morg.v1)
    a = magent(pub).start()
    a.wait_policy()
    a.wait_mount_state(vault, "mounted")
    assert not is_mounted(ledger)

    serve(morg.v2, pub)
    assert a.refresh().returncode == 0
    st = a.wait_mount_state(ledger, "mounted")
    assert is_mounted(ledger) and is_mounted(vault)
    assert a.mount(ledger, st)["rules"] == ["ledger"]

    serve(morg.v3, pub)
    assert a.refresh().returncode == 0
    a.wait_no_mount(ledger)
    assert not is_mounted(ledger) and is_mounted(vault)
    assert (ledger / "keep.txt").read_text().startswith("plaintext")


def test_dropped_folder_with_open_file_waits_for_close(morg, magent, tmp_path):
    ledger = morg.data / "ledger"
    pub = pub_with(tmp_path, morg.v2)
    a = magent(pub).start()
    a.wait_policy()
    a.wait_mount_state(ledger, "mounted")
    f = open(ledger / "keep.txt")      # plaintext under a rule: readable
    try:
        assert f.read().startswith("plaintext")
        st = a.wait_status(lambda s: a.mount(ledger, s)["open_handles"] >= 1, 5, "a handle")
        serve(morg.v3, pub)
        assert a.refresh().returncode == 0
        st = a.wait_mount_state(ledger, "pending-unmount")
        m = a.mount(ledger, st)
        assert m["open_handles"] >= 1 and "open file" in m["reason"], m
        time.sleep(1.5)               # a few ticks: still there
        assert is_mounted(ledger)
        p = a.oc("status")
        assert f"{ledger}  pending-unmount" in p.out, p.out
    finally:
        f.close()
    a.wait_no_mount(ledger, timeout=10)
    wait_for(lambda: not is_mounted(ledger), "unmounted after the close", log=a.log)
    assert is_mounted(morg.data / "vault")


def test_nested_folder_served_by_outer_then_broader_arrives(morg, magent, tmp_path):
    vault, data = morg.data / "vault", morg.data
    inner = vault / "sub"
    inner.mkdir()
    pub = pub_with(tmp_path, morg.v1)
    a = magent(pub, mounts=[inner]).start()
    a.wait_policy()
    st = a.wait_mount_state(vault, "mounted")
    # one overlay serves both: none on the inner folder
    assert overlays(morg.d) == [str(vault)], overlays()
    assert a.mount(inner, st) is None

    serve(morg.v4, pub)
    assert a.refresh().returncode == 0
    st = a.wait_mount_state(data, "mounted")
    wait_for(lambda: overlays(morg.d) == [str(data)], "only the broader overlay", log=a.log)
    assert a.mount(vault, st) is None
    assert sorted(a.mount(data, st)["rules"]) == ["treasury", "wide"]
    log = a.log()
    i_un = log.find(f"{vault}: overlay unmounted")
    i_mnt = log.find(f"{data}: overlay mounted")
    assert 0 <= i_un < i_mnt, log
    # the inner folder is reachable through the broader overlay
    assert inner.is_dir()


def test_failed_mounts_reported_others_serve(morg, magent, tmp_path):
    vault = morg.data / "vault"
    missing = tmp_path / "missing"
    notmine = tmp_path / "notmine"
    notmine.mkdir()
    os.chown(notmine, 65534, 65534)
    a = magent(pub_with(tmp_path, morg.v1), mounts=[missing, notmine]).start()
    a.wait_policy()
    st = a.wait_mount_state(vault, "mounted")
    m = a.mount(missing, st)
    assert m["state"] == "missing" and "does not exist" in m["reason"], m
    m = a.mount(notmine, st)
    assert m["state"] == "failed" and "owned by uid 65534" in m["reason"], m
    assert not is_mounted(missing) and not is_mounted(notmine)
    p = a.oc("status")
    assert f"{missing}  missing" in p.out and "does not exist" in p.out, p.out
    assert f"{notmine}  failed" in p.out, p.out
    assert not missing.exists()        # never created

    # fixed: SIGHUP retries at once (else every 30 s)
    missing.mkdir()
    os.chown(notmine, os.getuid(), os.getgid())
    a.signal(signal.SIGHUP)
    a.wait_mount_state(missing, "mounted")
    a.wait_mount_state(notmine, "mounted")
    assert is_mounted(missing) and is_mounted(notmine) and is_mounted(vault)


def test_overlay_unmounted_from_outside_is_mounted_again(morg, magent, tmp_path):
    vault = morg.data / "vault"
    a = magent(pub_with(tmp_path, morg.v1)).start()
    a.wait_policy()
    a.wait_mount_state(vault, "mounted")
    subprocess.run(["umount", "-l", str(vault)], check=True)
    wait_for(lambda: "session ended" in a.log(), "the agent noticed", log=a.log)
    wait_for(lambda: overlays(morg.d) == [str(vault)], "mounted again", log=a.log)
    os.listdir(vault)
    assert a.mount(vault)["state"] == "mounted"


def test_processes_inside_before_the_mount_are_reported(morg, magent, tmp_path):
    vault = morg.data / "vault"
    (vault / "held.txt").write_text("held open from the backing side\n")
    cwd_proc = subprocess.Popen(["sleep", "300"], cwd=vault)
    with open(vault / "held.txt") as held:
        fd_proc = subprocess.Popen(["sleep", "299"], stdin=held, cwd="/")
    try:
        a = magent(pub_with(tmp_path, morg.v1)).start()
        a.wait_policy()
        st = a.wait_mount_state(vault, "mounted")
        by = {b["pid"]: b["command"] for b in a.mount(vault, st)["bypassing"]}
        assert by.get(cwd_proc.pid) == "sleep", by
        assert by.get(fd_proc.pid) == "sleep", by
        assert os.getpid() not in by
        log = a.log()
        assert f"process {cwd_proc.pid} (sleep)" in log, log
        p = a.oc("status")
        assert f"pid {cwd_proc.pid} (sleep)" in p.out, p.out
    finally:
        cwd_proc.kill()
        fd_proc.kill()
        cwd_proc.wait()
        fd_proc.wait()
    a.wait_status(lambda s: a.mount(vault, s)["bypassing"] == [], 5, "bypass list emptied")
    # a process that enters after the mount goes through the overlay
    late = subprocess.Popen(["sleep", "300"], cwd=vault)
    try:
        time.sleep(1.5)
        assert a.mount(vault)["bypassing"] == []
    finally:
        late.kill()
        late.wait()


def test_lock_flushes_and_counts_open_encrypted_handles(morg, magent, tmp_path):
    vault = morg.data / "vault"
    a = magent(pub_with(tmp_path, morg.v1), log_level="debug").start()
    a.wait_policy()
    a.wait_mount_state(vault, "mounted")
    p = a.unlock()
    assert p.returncode == 0, p.out + p.err
    (vault / "doc.txt").write_text(MARK)
    f = open(vault / "doc.txt")
    try:
        assert f.read() == MARK
        assert a.oc("lock").returncode == 0
        st = a.wait_status(lambda s: s["state"] == "locked", 5, "locked")
        # the keys-drop hook ran, before the keys went
        log = a.log()
        i_flush = log.find(f"{vault}: keys of uid {os.getuid()} going")
        i_lock = log.find("locked (overcrypt lock)")
        assert 0 <= i_flush < i_lock, log
        m = a.mount(vault, st)
        assert m["open_after_lock"] >= 1 and m["open_handles"] >= 1, m
        p = a.oc("status")
        assert "opened before the lock" in p.out, p.out
        with pytest.raises(PermissionError):
            open(vault / "doc.txt").close()
    finally:
        f.close()
    a.wait_status(lambda s: a.mount(vault, s)["open_after_lock"] == 0, 5, "closed")
    p = subprocess.run(["cat", str(vault / "doc.txt")], capture_output=True)
    assert p.returncode != 0 and MARK.encode() not in p.stdout
