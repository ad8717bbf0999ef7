"""SMB shares (DESIGN.md "SMB", daemon/mtab.h, daemon/mounts.h): the agent
follows the mount table and puts overlays on the shares that smb:// rules
name.

This machine has no cifs kernel module, so the "shares" are real local
folders, each bind-mounted on its mount point (so that it can be unmounted
like a share), and the agent reads the cifs lines from a mountinfo-format
file given with `overcryptd --mountinfo FILE`, which the tests rewrite as the
kernel would. The folder behind each bind mount stands for the server: what
lands there is what the server would store.

- a share appears -> overlays mounted on it within a second (two, stacked),
  `overcrypt status` names the share and the rule; files written there are
  encrypted on the "server"; the share goes away -> the overlays are dropped;
- a plain `umount` of the folder takes only the top overlay: the one under it
  keeps encrypting, and the agent mounts a new top at once and logs it;
- `overcrypt unmount PATH` takes the overlays and then the share down; it is
  refused while a file is open, and for a path that is no share;
- matching: host and share case-insensitive, the user in the source ignored,
  a sub-path rule governs only its folder; a share mounted under a short
  name, or under an address that a rule's host resolves to, matches no rule
  and is logged as such."""
import os
import subprocess
import time

import pytest

from agentlib import Org, enroll, serve, stop_all
from test_mounts import MAgent, lazy_unmount_under, mounts_table, wait_for


TAIL = """
[group staff]
members = alice

[user alice]
recipient = {ra}

[asset marketing]
type = shared
path = smb://files.corp.local/marketing/
groups = staff

[asset reports]
type = shared
path = smb://files.corp.local/finance/reports/
groups = staff

[asset lab]
type = shared
path = smb://localhost/lab/
groups = staff
"""


@pytest.fixture(scope="module")
def sorg(build, tmp_path_factory):
    d = tmp_path_factory.mktemp("sorg")
    o = Org(build, d)
    o.alice_ks = d / "alice.ks"
    ra = enroll(build, o.alice_ks, o.user_pw)
    o.append(TAIL.format(ra=ra))
    o.pubdir = d / "pubdir"
    serve(o.publish(d / "v1"), o.pubdir)
    return o


class Shares:
    """Fake SMB shares: server folders under srv/, bind-mounted on mount
    points under mnt/, listed as cifs lines in the agent's mountinfo file."""

    def __init__(self, d):
        self.d = d
        self.srv = d / "srv"
        self.mnt = d / "mnt"
        self.file = d / "mountinfo"
        self.lines = {}
        self.srv.mkdir(parents=True)
        self.mnt.mkdir()
        self.write()

    def add(self, name, source, opts="rw,vers=3.1.1"):
        """Mount (bind) srv/NAME on mnt/NAME and list it as `source`."""
        s, m = self.srv / name, self.mnt / name
        s.mkdir(exist_ok=True)
        m.mkdir(exist_ok=True)
        subprocess.run(["mount", "--bind", str(s), str(m)], check=True)
        subprocess.run(["mount", "--make-private", str(m)], check=True)
        self.lines[name] = (f"{900 + len(self.lines)} 25 0:{90 + len(self.lines)} / {m} "
                            f"rw,relatime - cifs {source} {opts}")
        self.write()
        return m

    def drop(self, name, umount=True):
        """The share goes away: unmounted (unless done already), and its
        line gone from the table."""
        if umount:
            subprocess.run(["umount", str(self.mnt / name)], check=True)
        del self.lines[name]
        self.write()

    def write(self):
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text("".join(l + "\n" for l in self.lines.values()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.file)


@pytest.fixture
def shares(tmp_path):
    s = Shares(tmp_path / "smb")
    yield s
    # the agents are stopped by then (sagent is set up after this)
    lazy_unmount_under(s.mnt)
    left = [mp for mp, _, _ in mounts_table() if str(tmp_path) in mp]
    assert not left, f"mounts left behind: {left}"


@pytest.fixture
def sagent(build, sorg, shares, tmp_path):
    made = []

    def make(name="agent"):
        a = MAgent(build, tmp_path / name, sorg, f"file://{sorg.pubdir}/", keystore=sorg.alice_ks)
        a.extra_args = ["--mountinfo", str(shares.file)]
        made.append(a)
        return a
    yield make
    stop_all(made)


def stacked(path):
    """How many of our overlays are mounted on `path` itself."""
    return sum(1 for mp, fs, _ in mounts_table() if mp == str(path) and fs == "fuse.overcrypt")


def encrypted(p):
    with open(p, "rb") as f:
        return f.read(8) == b"OVCRYPT1"


def started(sagent):
    a = sagent().start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    return a


def marketing_up(sagent, shares):
    """An unlocked agent, and //files.corp.local/marketing mounted on mnt/mkt
    with its pair of overlays on it."""
    a = started(sagent)
    mkt = shares.add("mkt", "//files.corp.local/marketing")
    wait_for(lambda: stacked(mkt) == 2, "two overlays on the share", log=a.log)
    return a, mkt


# --- the whole flow ----------------------------------------------------------------------

def test_share_appears_is_encrypted_and_goes_away(sagent, shares):
    a = started(sagent)
    mkt = shares.mnt / "mkt"
    t0 = time.time()
    shares.add("mkt", "//files.corp.local/marketing", "rw,vers=3.1.1,addr=10.0.0.5")
    wait_for(lambda: stacked(mkt) == 2, "two overlays on the share", log=a.log)
    print(f"share mounted -> overlays mounted in {time.time() - t0:.2f} s")
    (mkt / "plan.txt").write_text("secret plan\n")
    os.sync()
    assert encrypted(shares.srv / "mkt" / "plan.txt"), "the server got plaintext"
    assert (mkt / "plan.txt").read_text() == "secret plan\n"

    st = a.raw_status()
    m = a.mount(mkt, st)
    assert m["state"] == "mounted" and m["network"] is True, m
    assert m["share"]["source"] == "//files.corp.local/marketing", m
    assert m["share"]["mountpoint"] == str(mkt), m
    assert m["share"]["rules"] == [{"asset": "marketing",
                                    "path": "smb://files.corp.local/marketing/"}], m
    p = a.oc("status")
    print(p.out)
    assert p.returncode == 0, p.err
    assert f"share //files.corp.local/marketing at {mkt}, via rule " \
           "smb://files.corp.local/marketing/ (asset marketing)" in p.out, p.out

    # the share goes away: the overlays go first, nothing is left on it
    shares.drop("mkt", umount=False)
    wait_for(lambda: stacked(mkt) == 0, "overlays dropped", log=a.log)
    a.wait_no_mount(mkt)
    assert "//files.corp.local/marketing is no longer mounted" in a.log()
    subprocess.run(["umount", str(mkt)], check=True)
    assert os.listdir(mkt) == []


def test_plain_umount_takes_only_the_top_overlay(sagent, shares):
    a, mkt = marketing_up(sagent, shares)
    with open(mkt / "before.txt", "w") as f:
        f.write("before\n")
    subprocess.run(["umount", str(mkt)], check=True)
    t0 = time.time()
    # at once, before the agent could do anything: still an overlay there
    with open(mkt / "during.txt", "w") as f:
        f.write("written right after umount\n")
    assert stacked(mkt) >= 1
    wait_for(lambda: stacked(mkt) == 2, "the top overlay mounted again", log=a.log)
    print(f"umount -> top overlay mounted again in {time.time() - t0:.3f} s")
    wait_for(lambda: "unmounted from outside (umount) while //files.corp.local/marketing "
             "stays mounted: mounted again at once" in a.log(), "logged", log=a.log)
    os.sync()
    for n in ("before.txt", "during.txt"):
        assert encrypted(shares.srv / "mkt" / n), f"{n} reached the server in plaintext"
    assert (mkt / "during.txt").read_text() == "written right after umount\n"
    assert a.mount(mkt)["state"] == "mounted"


def test_overcrypt_unmount_takes_overlays_then_share(sagent, shares):
    a, mkt = marketing_up(sagent, shares)

    # refused while a file is open; nothing unmounted
    f = open(mkt / "open.txt", "w")
    try:
        p = a.oc("unmount", str(mkt))
        assert p.returncode == 1, p.out
        assert "1 file is open on the overlay at" in p.err and "nothing was unmounted" in p.err, p.err
        assert stacked(mkt) == 2
    finally:
        f.close()

    p = a.oc("unmount", str(shares.srv))
    assert p.returncode == 1 and "is not where an SMB share is mounted" in p.err, p.err

    p = a.oc("unmount", str(mkt))
    assert p.returncode == 0, p.err
    assert f"unmounted {mkt} (share //files.corp.local/marketing)" in p.out, p.out
    assert not any(mp == str(mkt) for mp, _, _ in mounts_table()), "share or overlay left"
    # the table still lists it until the "kernel" drops the line: no remount
    time.sleep(1.5)
    assert stacked(mkt) == 0
    assert "and its overlays were unmounted (overcrypt unmount)" in a.log()
    shares.drop("mkt", umount=False)
    # mounted again later: overlays again
    shares.add("mkt", "//files.corp.local/marketing")
    wait_for(lambda: stacked(mkt) == 2, "overlays on the share mounted again", log=a.log)


def test_matching_case_user_and_sub_path(sagent, shares):
    a = started(sagent)
    # the user in the source is ignored, host and share compare without case
    up = shares.add("up", "//Bob@FILES.Corp.Local/MARKETING")
    # a sub-path rule: only finance/reports is overlaid
    (shares.srv / "fin" / "other").mkdir(parents=True)
    fin = shares.add("fin", "//files.corp.local/finance")
    # a share is overlaid from its mount point, whichever folder on it a
    # rule names: `umount` meets the overlay, and the rule's folder is
    # covered even before it exists
    wait_for(lambda: stacked(up) == 2 and stacked(fin) == 2, "overlays on both shares",
             log=a.log)
    # the rule's folder did not exist: made now, it is covered from its first file
    (fin / "reports").mkdir()
    (up / "a.txt").write_text("a\n")
    (fin / "reports" / "q3.txt").write_text("q3\n")
    (fin / "other" / "note.txt").write_text("not under the rule\n")
    os.sync()
    assert encrypted(shares.srv / "up" / "a.txt")
    assert encrypted(shares.srv / "fin" / "reports" / "q3.txt")
    assert (shares.srv / "fin" / "other" / "note.txt").read_text() == "not under the rule\n"
    # the rule's folder is served by the share's overlay, never one of its own
    time.sleep(1.5)
    assert stacked(fin / "reports") == 0
    m = a.mount(fin)
    assert m["share"]["source"] == "//files.corp.local/finance", m
    assert m["share"]["rules"] == [{"asset": "reports",
                                    "path": "smb://files.corp.local/finance/reports/"}], m
    assert m["rules"] == ["reports"], m


@pytest.mark.parametrize("before", [False, True], ids=["while-running", "before-start"])
def test_share_under_another_name_is_logged(sagent, shares, before):
    if before:
        shares.add("short", "//files/marketing")
    a = started(sagent)
    short = shares.mnt / "short" if before else shares.add("short", "//files/marketing")
    byaddr = shares.add("byaddr", "//127.0.0.1/lab", "rw,vers=3.1.1,addr=127.0.0.1")
    wait_for(lambda: "the share //files/marketing matches no smb:// rule, but its short "
             "name names the same server as the rules' host 'files.corp.local'" in a.log(),
             "short name logged", log=a.log)
    wait_for(lambda: "the share //127.0.0.1/lab matches no smb:// rule, but its address "
             "127.0.0.1 names the same server as the rules' host 'localhost'" in a.log(),
             "address logged", log=a.log)
    assert stacked(short) == 0 and stacked(byaddr) == 0
    (short / "x.txt").write_text("plain\n")
    assert (shares.srv / "short" / "x.txt").read_text() == "plain\n"


def test_lazy_umount_keeps_open_files_working(sagent, shares):
    a, mkt = marketing_up(sagent, shares)
    f = open(mkt / "held.txt", "w")
    try:
        f.write("first\n")
        f.flush()
        subprocess.run(["umount", "-l", str(mkt)], check=True)
        wait_for(lambda: stacked(mkt) == 2 and "unmounted from outside" in a.log(),
                 "the top overlay mounted again", log=a.log)
        # the detached overlay still serves the file opened through it
        f.write("second\n")
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()
    (mkt / "new.txt").write_text("through the new top\n")
    os.sync()
    assert encrypted(shares.srv / "mkt" / "held.txt")
    assert encrypted(shares.srv / "mkt" / "new.txt")
    assert (mkt / "held.txt").read_text() == "first\nsecond\n"
    assert a.mount(mkt)["state"] == "mounted"


def test_other_clients_writes_are_seen(sagent, shares):
    """No writeback cache, no keep_cache on a share: what another client
    writes there (here: straight into the server folder) is what the next
    read returns, for plaintext outside the rules and for encrypted files
    inside them."""
    a = started(sagent)
    (shares.srv / "fin" / "other").mkdir(parents=True)
    (shares.srv / "fin" / "reports").mkdir(parents=True)
    fin = shares.add("fin", "//files.corp.local/finance")
    wait_for(lambda: stacked(fin) == 2, "overlays on the share", log=a.log)

    note = fin / "other" / "note.txt"
    note.write_text("version 1\n")
    assert note.read_text() == "version 1\n"
    with open(note) as held:      # a program keeps it open meanwhile
        (shares.srv / "fin" / "other" / "note.txt").write_text("version 2, from elsewhere\n")
        time.sleep(0.1)
        assert note.read_text() == "version 2, from elsewhere\n"
        held.seek(0)
        assert held.read() == "version 2, from elsewhere\n"

    # an encrypted file rewritten by another client (another file's whole
    # ciphertext copied over it, as a client writing it anew would leave it)
    one, two = fin / "reports" / "one.txt", fin / "reports" / "two.txt"
    one.write_text("first client's text\n")
    two.write_text("the other client's newer, longer text\n")
    assert one.read_text() == "first client's text\n"
    os.sync()
    raw = (shares.srv / "fin" / "reports" / "two.txt").read_bytes()
    assert raw[:8] == b"OVCRYPT1"
    with open(shares.srv / "fin" / "reports" / "one.txt", "r+b") as f:
        f.write(raw)
        f.truncate(len(raw))
    time.sleep(0.1)
    assert one.read_text() == "the other client's newer, longer text\n"


def test_killed_agent_stale_pair_cleaned_share_kept(sagent, shares):
    a, mkt = marketing_up(sagent, shares)
    a.kill9()
    assert stacked(mkt) == 2   # dead now: "Transport endpoint is not connected"
    a.start()
    a.wait_policy()
    wait_for(lambda: stacked(mkt) == 2 and a.mount(mkt)["state"] == "mounted",
             "the pair mounted again", log=a.log)
    assert a.log().count("removed a stale overlay") == 2, a.log()
    # the share itself is still there, under the new pair
    assert sum(1 for mp, fs, _ in mounts_table() if mp == str(mkt) and fs != "fuse.overcrypt") == 1
    assert a.unlock().returncode == 0
    (mkt / "after.txt").write_text("after the restart\n")
    os.sync()
    assert encrypted(shares.srv / "mkt" / "after.txt")


@pytest.mark.parametrize("share_first", [False, True], ids=["share-later", "share-before-agent"])
def test_share_inside_an_overlaid_folder(build, sorg, shares, tmp_path, share_first):
    """A share mounted inside a folder the agent overlays anyway (`[mount]
    path`, as `[mount] home = yes` does with ~): the share gets its own pair
    of network overlays, whether it was mounted before the agent started
    (its mount then sits under the outer overlay) or after (on top of it);
    files there are encrypted on the server, and the outer folder serves on."""
    outer = shares.mnt
    (outer / "notes").mkdir()
    a = MAgent(build, tmp_path / "agent", sorg, f"file://{sorg.pubdir}/",
               keystore=sorg.alice_ks, mounts=[outer])
    a.extra_args = ["--mountinfo", str(shares.file)]
    try:
        if share_first:
            mkt = shares.add("mkt", "//files.corp.local/marketing")
        a.start()
        a.wait_policy()
        assert a.unlock().returncode == 0
        if not share_first:
            wait_for(lambda: stacked(outer) == 1, "the outer overlay", log=a.log)
            mkt = shares.add("mkt", "//files.corp.local/marketing")
        wait_for(lambda: stacked(outer) == 1 and stacked(mkt) == 2,
                 "the outer overlay and the share's pair", log=a.log)
        (mkt / "plan.txt").write_text("inside\n")
        (outer / "notes" / "n.txt").write_text("outer, no rule\n")
        os.sync()
        assert encrypted(shares.srv / "mkt" / "plan.txt"), "the share got plaintext"
        assert (mkt / "plan.txt").read_text() == "inside\n"
        assert (outer / "notes" / "n.txt").read_text() == "outer, no rule\n"
        assert a.mount(mkt)["share"]["source"] == "//files.corp.local/marketing"
        # overcrypt unmount finds the share wherever its mount sits
        p = a.oc("unmount", str(mkt))
        assert p.returncode == 0, p.err + a.log()
        assert stacked(mkt) == 0 and stacked(outer) == 1
        assert not any(mp == str(mkt) for mp, _, _ in mounts_table()), mounts_table()
        shares.drop("mkt", umount=False)
        assert (outer / "notes" / "n.txt").read_text() == "outer, no rule\n"
    finally:
        stop_all([a])
    assert stacked(outer) == 0
