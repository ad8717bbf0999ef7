"""The overlay as the agent's states drive it, seen from outside:

- fail closed: with the keys dropped by expiry, and with no policy ever
  fetched, writes under an encryption rule (or in a [mount] folder) give
  EACCES and nothing reaches the backing folder;
- a damaged block gives EIO and one log line naming the file and block;
- `overcrypt repair` cuts a torn tail (dry run, cut, intact, damage in the
  middle refused unless --force);
- a file held open across `overcrypt lock` keeps working, status counts it,
  and new opens are refused.

Real overcryptd, real FUSE mounts, policies from file:// or a real nginx.
"""
import errno
import os
import re
import secrets
import signal
import subprocess
import time

import pytest

from agentlib import free_port, nginx, org, serve, tls  # noqa: F401 (fixtures)
from overlaylib import MAGIC, MountAgent, fs_type, overlay, umount_below  # noqa: F401


def wait_fuse(path, agent, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        t = fs_type(path)
        if t and t.startswith("fuse"):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} not mounted:\n{agent.log()}")


def expect_errno(err, fn, *a):
    with pytest.raises(OSError) as ei:
        fn(*a)
    assert ei.value.errno == err, (ei.value, os.strerror(err))


def write(p, data, mode="wb"):
    with open(p, mode) as f:
        f.write(data)


@pytest.fixture
def mount_agent(build, org, tmp_path, request):
    """A user-mode agent (MountAgent: the config may name [mount] folders);
    every mount below org.data and tmp_path is undone at the end."""
    made = []

    def make(policy_url, mount_extra="", **kw):
        a = MountAgent(build, tmp_path / f"a{len(made)}", org, policy_url,
                       keystore=org.alice_ks, mount_extra=mount_extra, **kw)
        made.append(a)
        return a

    def fin():
        for a in made:
            if a.proc is not None:
                a.stop()
        umount_below(str(org.data))
        umount_below(str(tmp_path))
    request.addfinalizer(fin)
    return make


def test_expired_view_refuses_writes_and_nothing_reaches_the_folder(org, nginx, mount_agent):
    vault = org.data / "vault"
    vault.mkdir(parents=True, exist_ok=True)
    n = nginx()
    serve(org.vexp, n.www / "p")                 # cache_expiration = 3 s
    a = mount_agent(n.url + "/p/", ca_file=n.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    wait_fuse(vault, a)
    tag = secrets.token_hex(4)
    old = vault / f"old-{tag}.txt"
    write(old, f"written while ready {tag}\n".encode())
    assert old.read_text() == f"written while ready {tag}\n"
    n.stop()
    a.wait_status(lambda s: s["state"] == "expired", timeout=10, what="expiry")
    new = vault / f"new-{tag}.txt"
    marker = f"plaintext-after-expiry-{tag}".encode()
    expect_errno(errno.EACCES, write, new, marker)
    expect_errno(errno.EACCES, write, old, marker, "ab")
    expect_errno(errno.EACCES, old.read_bytes)
    assert not new.exists()
    a.stop()                                       # unmounted: the folder as stored
    assert fs_type(vault) is None or not fs_type(vault).startswith("fuse")
    assert not new.exists()
    data = old.read_bytes()
    assert data.startswith(MAGIC) and marker not in data and tag.encode() not in data


def test_no_policy_refuses_writes_in_mount_folders(org, mount_agent, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "before.txt").write_text("plain, from before\n")
    a = mount_agent(f"https://127.0.0.1:{free_port()}/", mount_extra=f"path = {folder}")
    a.start()
    st = a.wait_attempt()
    assert st["state"] == "no-policy", st
    wait_fuse(folder, a)
    tag = secrets.token_hex(4)
    expect_errno(errno.EACCES, write, folder / f"n-{tag}.txt", b"no policy yet " + tag.encode())
    expect_errno(errno.EACCES, write, folder / "before.txt", b"overwrite")
    assert (folder / "before.txt").read_text() == "plain, from before\n"   # reads pass
    # status shows the mount
    ms = a.status()["mounts"]
    assert any(m["path"] == str(folder) and m["state"] == "mounted" for m in ms), ms
    a.stop()
    assert sorted(os.listdir(folder)) == ["before.txt"]
    assert (folder / "before.txt").read_text() == "plain, from before\n"


def flip(p, off):
    with open(p, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x10]))


def test_damaged_block_gives_eio_and_one_log_line(overlay):
    d = overlay.fresh(name="eio")
    p = d / "damaged.bin"
    body = os.urandom(5 * 4096)
    write(p, body)
    back = overlay.backing_of(p)
    flip(back, 120 + 2 * 4124 + 100)               # inside block 2
    # the page cache may hold the plaintext: drop it
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    before = overlay.agent.log().count("block 2 failed authentication")
    with open(p, "rb") as f:
        assert f.read(4096) == body[:4096]          # undamaged blocks still read
        f.seek(4 * 4096)
        assert f.read(4096) == body[4 * 4096:]
        f.seek(2 * 4096)
        expect_errno(errno.EIO, f.read, 4096)
    time.sleep(0.3)
    lines = [l for l in overlay.agent.log().splitlines()
             if "block 2 failed authentication" in l]
    assert len(lines) - before == 1, lines
    assert str(p) in lines[-1]


def run_oc(overlay, *args):
    return overlay.agent.oc(*args)


def test_repair_cuts_a_torn_tail(overlay):
    d = overlay.fresh(name="repair")
    p = d / "torn.bin"
    body = os.urandom(3 * 4096 + 700)
    write(p, body)
    back = overlay.backing_of(p)
    size = os.path.getsize(back)
    os.truncate(back, size - 300)                   # a crash in the last block
    subprocess.run(["sh", "-c", "echo 3 > /proc/sys/vm/drop_caches"], check=True)
    pr = run_oc(overlay, "repair", "--dry-run", p)
    assert pr.returncode == 0, pr.out + pr.err
    assert "would be cut back to 12288 bytes" in pr.out, pr.out
    assert os.path.getsize(back) == size - 300       # a dry run changes nothing
    pr = run_oc(overlay, "repair", p)
    assert pr.returncode == 0, pr.out + pr.err
    assert "cut back to 12288 bytes" in pr.out and "block 3" in pr.out, pr.out
    assert p.read_bytes() == body[:3 * 4096]
    assert os.stat(p).st_size == 3 * 4096
    pr = run_oc(overlay, "repair", p)
    assert pr.returncode == 0 and "intact" in pr.out, pr.out
    # the file goes on as usual
    with open(p, "ab") as f:
        f.write(b"more")
    assert p.read_bytes() == body[:3 * 4096] + b"more"


def test_repair_refuses_damage_in_the_middle_unless_forced(overlay):
    d = overlay.fresh(name="repair")
    p = d / "middle.bin"
    body = os.urandom(4 * 4096)
    write(p, body)
    back = overlay.backing_of(p)
    flip(back, 120 + 4124 + 50)                      # block 1 of 4
    size = os.path.getsize(back)
    pr = run_oc(overlay, "repair", p)
    assert pr.returncode == 1, pr.out
    assert "block 1" in pr.err and "not a torn tail" in pr.err, pr.err
    assert os.path.getsize(back) == size
    pr = run_oc(overlay, "repair", "--force", p)
    assert pr.returncode == 0, pr.out + pr.err
    assert p.read_bytes() == body[:4096]
    # not a file of an overlay, not encrypted
    pr = run_oc(overlay, "repair", "/etc/hostname")
    assert pr.returncode == 1 and "overlays" in pr.err, pr.err
    plain = overlay.pub / f"plain-{secrets.token_hex(3)}.txt"
    plain.write_text("plain\n")
    pr = run_oc(overlay, "repair", plain)
    assert pr.returncode == 1 and "not an encrypted file" in pr.err, pr.err


def test_open_file_survives_lock_and_status_counts_it(overlay):
    d = overlay.fresh(name="lock")
    p = d / "held.txt"
    write(p, b"held across a lock\n")
    f = open(p, "r+b")
    try:
        pr = run_oc(overlay, "lock")
        assert pr.returncode == 0, pr.out + pr.err
        # new opens are refused
        expect_errno(errno.EACCES, open, p, "rb")
        expect_errno(errno.EACCES, write, d / "new.txt", b"x")
        # the open handle keeps working: reads and writes, encrypted
        assert f.read() == b"held across a lock\n"
        f.write(b"written after the lock\n")
        f.flush()
        os.fsync(f.fileno())
        st = overlay.agent.status()
        m = [m for m in st["mounts"] if m["path"] == str(overlay.path)][0]
        assert m["open_after_lock"] >= 1, m
        txt = run_oc(overlay, "status").out
        assert re.search(r"open", txt), txt
    finally:
        f.close()
        pr = overlay.agent.unlock()
        assert pr.returncode == 0, pr.out + pr.err
    assert p.read_bytes() == b"held across a lock\nwritten after the lock\n"
    back = overlay.backing_of(p).read_bytes()
    assert back.startswith(MAGIC) and b"after the lock" not in back


def test_agent_state_inside_an_overlaid_folder_bypasses_the_overlay(org, mount_agent, tmp_path):
    """The agent's state folder lies inside a folder it overlays (an
    encryption rule's folder): the agent reaches it through a descriptor
    opened before mounting, so its state is neither encrypted by its own
    overlay nor refused after a lock."""
    vault = org.data / "vault"
    vault.mkdir(parents=True, exist_ok=True)
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = mount_agent(f"file://{pub}/")
    a.cache = vault / f"agentstate-{secrets.token_hex(3)}"
    a.write_config()
    a.start()
    a.wait_policy()
    wait_fuse(vault, a)
    assert a.unlock().returncode == 0
    assert a.oc("lock").returncode == 0
    assert a.refresh().returncode == 0            # saves state.json while locked
    assert "cannot save" not in a.log() and "cannot cache" not in a.log(), a.log()
    a.stop()
    assert fs_type(vault) is None or not fs_type(vault).startswith("fuse")
    state = (a.cache / "state.json").read_bytes()
    assert state.startswith(b"{"), state[:16]
    assert (a.cache / "policy.json").read_bytes().startswith(b"{")
