"""overcryptd --system: one agent, two local users (made here with useradd),
each with their own policy, state, unlock and lock; and, in user mode, the
control socket refusing another uid.

`overcryptd --system` reads only /etc/overcrypt/overcrypt.conf: the module
fixture backs up any file there and restores it (and removes /etc/overcrypt
when it made it); each test writes its own config there with its own
cache_dir and runtime_dir under a private scratch folder. The users' CLIs run
as those users (runuser) with a config of their own that points at the
system runtime_dir. Policies come from a file:// folder (the fetch itself is
test_fetch.py's business).

Needs root (useradd, runuser, /etc); skipped otherwise.
"""
import json
import os
import pathlib
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import pytest

from agentlib import NO_PROXY_ENV, USER_PASS, Org, request, sanitizer_report, set_setting

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("useradd")
                                or not shutil.which("runuser"),
                                reason="system mode needs root, useradd and runuser")

ETC_DIR = pathlib.Path("/etc/overcrypt")
ETC_CONF = ETC_DIR / "overcrypt.conf"

# A tiny control client run as another user: one request, the raw reply.
RAW_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(15)
s.connect(sys.argv[1])
try:
    s.sendall(sys.argv[2].encode() + b"\n")
except (BrokenPipeError, ConnectionResetError):
    pass  # refused before reading: the reply is there to read
d = b""
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        break
    if not b:
        break
    d += b
sys.stdout.write(d.decode())
"""


def as_user(name, args, home, timeout=120, input=None):
    """Run `args` as local user `name` with a clean environment."""
    cmd = ["runuser", "-u", name, "--", "env", "-i", f"HOME={home}",
           "PATH=/usr/local/bin:/usr/bin:/bin", f"USER={name}", f"LOGNAME={name}",
           *[str(a) for a in args]]
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
    p.out = p.stdout.decode(errors="replace")
    p.err = p.stderr.decode(errors="replace")
    assert sanitizer_report(p.err) is None, f"{args} as {name}: sanitizer report:\n{p.err}"
    return p


class User:
    def __init__(self, name, base):
        self.name = name
        self.pw = pwd.getpwnam(name)
        self.uid = self.pw.pw_uid
        self.home = base / name                 # owned by the user, 0700
        self.keystore = self.home / "keystore.age"
        self.passfile = self.home / "pass"
        self.wrongpass = self.home / "wrong"
        self.recipient = None
        self.conf = None                        # per test

    def oc(self, *args, timeout=120):
        return as_user(self.name, [World.build / "overcrypt", "--config", self.conf, *args],
                       self.home, timeout=timeout)

    def status(self):
        p = self.oc("status", "--json")
        assert p.returncode == 0, p.out + p.err
        return json.loads(p.out)

    def raw(self, sock, obj):
        """One raw request over the socket as this user; the parsed reply."""
        p = as_user(self.name, ["/usr/bin/python3", "-c", RAW_CLIENT, sock,
                                json.dumps(obj)], self.home, timeout=30)
        assert p.returncode == 0, p.err
        assert p.out.endswith("\n") and p.out.count("\n") == 1, p.out
        return json.loads(p.out)


class World:
    """The module's users, org, keystores and published policies."""
    build = None


@pytest.fixture(scope="module")
def world(build):
    World.build = pathlib.Path(build)
    # the build folder must be reachable by the test users
    for p in [World.build, *World.build.parents]:
        if p == pathlib.Path("/"):
            break
        if not os.stat(p).st_mode & stat.S_IXOTH:
            pytest.skip(f"{p} is not searchable by other users")
    base = pathlib.Path(tempfile.mkdtemp(prefix="ovcs", dir="/tmp"))
    os.chmod(base, 0o755)
    tag = secrets.token_hex(3)
    names = [f"ovct{tag}a", f"ovct{tag}b", f"ovct{tag}c"]
    made_users = []
    etc_made = not ETC_DIR.exists()
    backup = ETC_CONF.read_bytes() if ETC_CONF.exists() else None
    w = World()
    w.base = base
    w.agents = []

    def fin():
        errors = []
        for a in w.agents:
            try:
                a.stop()
            except AssertionError as e:
                errors.append(str(e))
        if backup is not None:
            ETC_CONF.write_bytes(backup)
        elif ETC_CONF.exists():
            ETC_CONF.unlink()
        if etc_made and ETC_DIR.exists():
            shutil.rmtree(ETC_DIR)
        if w.__dict__.get("shared_root"):
            subprocess.run(["umount", "-l", str(base / "raw")], capture_output=True)
            shutil.rmtree(w.shared_root, ignore_errors=True)
        for n in made_users:
            subprocess.run(["userdel", "-r", n], capture_output=True)
            subprocess.run(["userdel", n], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        if errors:
            raise AssertionError("\n".join(errors))

    try:
        for n in names:
            p = subprocess.run(["useradd", "-M", "-U", "-s", "/bin/sh", "-d", str(base / n), n],
                               capture_output=True)
            assert p.returncode == 0, p.stderr.decode()
            made_users.append(n)
        w.alice, w.bob, w.carol = [User(n, base) for n in names]
        for u in (w.alice, w.bob, w.carol):
            u.home.mkdir(mode=0o700)
            u.passfile.write_text(USER_PASS + "\n")
            u.wrongpass.write_text("Wr0ng-passphrase!here\n")
            for p in (u.home, u.passfile, u.wrongpass):
                os.chown(p, u.uid, u.pw.pw_gid)
        # the org (one init: scrypt 2^20 is slow), keystores made by their owners
        orgdir = base / "org"
        orgdir.mkdir(mode=0o700)
        w.org = Org(build, orgdir)
        w.org_pub = base / "org.pub"
        shutil.copy(w.org.pub, w.org_pub)
        os.chmod(w.org_pub, 0o644)
        for u in (w.alice, w.bob):
            p = as_user(u.name, [w.build / "overcrypt", "enroll", "--keystore", u.keystore,
                                 "--passphrase-file", u.passfile], u.home)
            assert p.returncode == 0, p.out + p.err
            m = re.search(r"age1[0-9a-z]+", p.out + p.err)
            assert m, p.out + p.err
            u.recipient = m[0]
            st = os.stat(u.keystore)
            assert st.st_uid == u.uid
        w.vault = f"/srv/ovct{tag}/"
        # the overlay's tests: one private asset over a folder both use (a
        # key each), and a folder shared for bob and public for alice
        w.shared_root = pathlib.Path(f"/srv/ovct{tag}t")
        w.team = w.shared_root / "team"
        w.mixed = w.shared_root / "mixed"
        w.org.append(f"""
[group staff]
members = {w.alice.name}, {w.bob.name}

[user {w.alice.name}]
recipient = {w.alice.recipient}

[user {w.bob.name}]
recipient = {w.bob.recipient}

[asset vault{tag}]
type = shared
path = {w.vault}
groups = staff

[asset home{tag}]
type = private
path = /home/%USERNAME%/Private/
groups = staff

[group bobs{tag}]
members = {w.bob.name}

[asset team{tag}]
type = private
path = {w.team}/
groups = staff

[asset mixed{tag}]
type = shared
path = {w.mixed}/
groups = bobs{tag}

[asset mixedpub{tag}]
type = public
path = {w.mixed}/
users = {w.alice.name}
""")
        w.pub = w.org.publish(base / "pub")
        for u in (w.alice, w.bob):
            assert (w.pub / f"{u.name}.json").exists()
        w.serial = json.loads((w.pub / f"{w.alice.name}.json").read_text())["serial"]
        ETC_DIR.mkdir(mode=0o755, exist_ok=True)
    except BaseException:
        fin()
        raise
    yield w
    fin()


class SystemAgent:
    """overcryptd --system with /etc/overcrypt/overcrypt.conf written for one
    test: its own cache, runtime and policy folders under `d`."""

    def __init__(self, w, d, users, src=None):
        self.w = w
        self.d = d
        d.mkdir(mode=0o755)
        self.pub = d / "pub"
        shutil.copytree(src or w.pub, self.pub)
        self.cache = d / "cache"
        self.run_dir = d / "run"
        self.sock = self.run_dir / "control"
        self.log_path = d / "agent.log"
        self.proc = None
        ETC_CONF.write_text(f"""# written by tests/integration/test_agent_system.py
[server]
policy_url = file://{self.pub}/
org_public_key = {w.org_pub}

[client]
users = {", ".join(users)}
cache_dir = {self.cache}
runtime_dir = {self.run_dir}

[log]
level = debug
""")
        # each user's CLI config: their keystore, the system runtime_dir
        for u in (w.alice, w.bob, w.carol):
            u.conf = d / f"{u.name}.conf"
            u.conf.write_text(f"""[server]
policy_url = file://{self.pub}/
org_public_key = {w.org_pub}

[client]
keystore = {u.keystore}
cache_dir = {u.home}/cache
runtime_dir = {self.run_dir}
""")
            os.chmod(u.conf, 0o644)

    def start(self):
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen([str(self.w.build / "overcryptd"), "--foreground",
                                      "--system"], stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=NO_PROXY_ENV)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"overcryptd --system exited {self.proc.returncode}:\n"
                                     f"{self.log()}")
            if self.sock.is_socket():
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no socket after 15 s:\n{self.log()}")
        return self

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self):
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.proc = None
                self.log_file.close()
                raise AssertionError(f"overcryptd --system did not stop on SIGTERM:\n{self.log()}")
        self.proc = None
        self.log_file.close()
        log = self.log()
        rep = sanitizer_report(log)
        assert rep is None, f"overcryptd --system: sanitizer report ({rep}):\n{log}"
        assert rc == 0, f"overcryptd --system exited {rc}:\n{log}"

    def root(self, obj):
        return request(self.sock, obj)

    def status(self, user):
        r = self.root({"cmd": "status", "user": user.name})
        assert r["ok"] is True, r
        return r

    def wait(self, user, pred, what, timeout=15):
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.status(user)
            if pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError(f"{user.name}: {what} not reached in {timeout} s: "
                             f"{json.dumps(st, indent=1)}\n{self.log()}")

    def wait_policy(self, user, timeout=15):
        return self.wait(user, lambda s: s["policy"] is not None
                         and s["refresh"]["last_result"] is not None, "a policy", timeout)


@pytest.fixture
def sysagent(world, request):
    def make(users=None, src=None):
        d = world.base / f"t{len(world.agents)}"
        a = SystemAgent(world, d, users or [world.alice.name, world.bob.name], src)
        world.agents.append(a)
        request.addfinalizer(a.stop)
        return a.start()
    return make


def unlock(user, passfile=None):
    p = user.oc("unlock", "--passphrase-file", passfile or user.passfile)
    return p


# --- tests --------------------------------------------------------------------------------

def test_both_policies_fetched_at_start_state_root_owned(world, sysagent):
    a = sysagent()
    for u in (world.alice, world.bob):
        st = a.wait_policy(u)
        assert st["mode"] == "system"
        assert st["user"] == u.name and st["uid"] == u.uid
        assert st["state"] == "locked" and st["locked"] is True and st["keys"] == 0
        assert st["policy"]["serial"] == world.serial
        assert st["refresh"]["last_result"] == "new"
        assert any(r["path"] == world.vault for r in st["rules"]), st["rules"]
        # state under cache_dir/<uid>/, root-owned, 0700 / 0600
        sd = a.cache / str(u.uid)
        s = os.stat(sd)
        assert s.st_uid == 0 and stat.S_IMODE(s.st_mode) == 0o700, oct(s.st_mode)
        names = sorted(os.listdir(sd))
        for f in ("policy.json", "policy.json.minisig", "state.json", "rules.json"):
            assert f in names, names
        for f in names:
            s = os.stat(sd / f)
            assert s.st_uid == 0 and stat.S_IMODE(s.st_mode) == 0o600, (f, oct(s.st_mode))
    s = os.stat(a.cache)
    assert s.st_uid == 0 and stat.S_IMODE(s.st_mode) & 0o077 == 0
    # the socket: any local user may connect; the folder is not writable by them
    s = os.stat(a.sock)
    assert stat.S_ISSOCK(s.st_mode) and stat.S_IMODE(s.st_mode) == 0o666, oct(s.st_mode)
    s = os.stat(a.run_dir)
    assert s.st_uid == 0 and stat.S_IMODE(s.st_mode) == 0o755, oct(s.st_mode)
    # nothing was created for the user not in the list
    assert not (a.cache / str(world.carol.uid)).exists()


def test_each_user_sees_only_their_own_status(world, sysagent):
    a = sysagent()
    for u in (world.alice, world.bob):
        a.wait_policy(u)
    for u, other in ((world.alice, world.bob), (world.bob, world.alice)):
        st = u.status()
        assert st["user"] == u.name and st["uid"] == u.uid, st
        assert st["mode"] == "system"
        assert st["policy"]["serial"] == world.serial
        assert other.name not in json.dumps(st)
        # the raw protocol: naming the other user is refused; naming oneself works
        r = u.raw(a.sock, {"cmd": "status", "user": other.name})
        assert r["ok"] is False and r["code"] == "denied", r
        assert other.name not in r.get("error", "") or "your own" in r["error"]
        r = u.raw(a.sock, {"cmd": "status", "user": u.name})
        assert r["ok"] is True and r["uid"] == u.uid, r
        # nor may they lock the other's view
        r = u.raw(a.sock, {"cmd": "lock", "user": other.name})
        assert r["ok"] is False and r["code"] == "denied", r


def test_users_unlock_and_lock_separately(world, sysagent):
    a = sysagent()
    alice, bob = world.alice, world.bob
    for u in (alice, bob):
        a.wait_policy(u)
    p = unlock(alice)
    assert p.returncode == 0, p.out + p.err
    st = alice.status()
    assert st["state"] == "ready" and st["keys"] >= 2 and st["locked"] is False, st
    assert a.status(bob)["state"] == "locked"
    # which: alice holds the vault key now, bob does not
    p = alice.oc("which", world.vault + "x.docx")
    assert p.returncode == 0, p.out + p.err
    r = bob.raw(a.sock, {"cmd": "which", "path": world.vault + "x.docx"})
    assert r["ok"] is True and r["key_held"] is False, r
    r = alice.raw(a.sock, {"cmd": "which", "path": world.vault + "x.docx"})
    assert r["ok"] is True and r["key_held"] is True, r

    # bob's wrong passphrase counts for bob only
    p = unlock(bob, bob.wrongpass)
    assert p.returncode != 0
    sb = a.status(bob)
    assert sb["unlock_failures"] == 1 and sb["state"] == "locked", sb
    sa = a.status(alice)
    assert sa["unlock_failures"] == 0 and sa["state"] == "ready", sa
    time.sleep(1.2)   # the 1 s back-off
    p = unlock(bob)
    assert p.returncode == 0, p.out + p.err
    assert a.status(bob)["state"] == "ready"
    assert a.status(bob)["unlock_failures"] == 0

    # alice's lock leaves bob ready
    p = alice.oc("lock")
    assert p.returncode == 0, p.out + p.err
    sa, sb = a.status(alice), a.status(bob)
    assert sa["state"] == "locked" and sa["keys"] == 0 and sa["locked"] is True, sa
    assert sb["state"] == "ready" and sb["keys"] >= 2, sb

    # bob cannot give alice an identity: an unlock naming alice is denied
    r = bob.raw(a.sock, {"cmd": "unlock", "user": alice.name,
                         "identity": "AGE-SECRET-KEY-1" + "Q" * 58})
    assert r["ok"] is False and r["code"] == "denied", r
    assert a.status(alice)["state"] == "locked"


def test_refused_or_missing_policy_leaves_the_other_intact(world, sysagent):
    a = sysagent()
    alice, bob = world.alice, world.bob
    for u in (alice, bob):
        a.wait_policy(u)
    assert unlock(alice).returncode == 0
    assert unlock(bob).returncode == 0

    # alice's document tampered with (one byte, a later mtime)
    doc = a.pub / f"{alice.name}.json"
    data = doc.read_bytes().replace(world.vault.encode(), world.vault.replace("ovct", "ovcX").encode(), 1)
    assert data != doc.read_bytes()
    doc.write_bytes(data)
    os.utime(doc, (time.time() + 100, time.time() + 100))
    r = a.root({"cmd": "refresh", "user": alice.name})
    assert r["ok"] is False and r["code"] == "refused", r
    p = alice.oc("refresh")
    assert p.returncode == 1, p.out + p.err
    sa = a.status(alice)
    assert sa["state"] == "ready" and sa["policy"]["serial"] == world.serial, sa
    assert sa["refresh"]["last_result"] == "refused"
    # bob: untouched, and his own refresh works
    r = a.root({"cmd": "refresh", "user": bob.name})
    assert r["ok"] is True and r["result"] in ("new", "unchanged"), r
    p = bob.oc("refresh")
    assert p.returncode == 0, p.out + p.err
    sb = a.status(bob)
    assert sb["state"] == "ready" and sb["refresh"]["last_result"] in ("new", "unchanged"), sb
    assert sb["refresh"]["failures"] == 0

    # alice's document gone: a failure for her only
    doc.unlink()
    r = a.root({"cmd": "refresh", "user": alice.name})
    assert r["ok"] is False and r["code"] == "failed", r
    sa, sb = a.status(alice), a.status(bob)
    assert sa["state"] == "ready" and sa["refresh"]["last_result"] == "error", sa
    assert sa["refresh"]["failures"] >= 1
    assert sb["state"] == "ready" and sb["refresh"]["failures"] == 0, sb
    # the refused document never reached alice's cache
    cached = (a.cache / str(alice.uid) / "policy.json").read_bytes()
    assert cached == (world.pub / f"{alice.name}.json").read_bytes()


def test_unserved_user_and_root_without_a_name_are_denied(world, sysagent):
    a = sysagent()
    a.wait_policy(world.alice)
    carol = world.carol
    r = carol.raw(a.sock, {"cmd": "status"})
    assert r["ok"] is False and r["code"] == "denied", r
    r = carol.raw(a.sock, {"cmd": "unlock", "identity": "AGE-SECRET-KEY-1" + "Q" * 58})
    assert r["ok"] is False and r["code"] == "denied", r
    r = carol.raw(a.sock, {"cmd": "status", "user": world.alice.name})
    assert r["ok"] is False and r["code"] == "denied", r
    # carol's CLI says so too (exit 1, not a crash)
    p = carol.oc("status", "--json")
    assert p.returncode != 0, p.out
    # root must name a user
    r = a.root({"cmd": "status"})
    assert r["ok"] is False and r["code"] == "denied", r
    # malformed requests from an unserved user: an error reply, the agent lives
    r = carol.raw(a.sock, {"cmd": 5})
    assert r["ok"] is False and r["code"] == "invalid", r
    assert a.status(world.alice)["ok"] is True


def test_root_may_name_a_user(world, sysagent):
    a = sysagent()
    for u in (world.alice, world.bob):
        st = a.wait_policy(u)
        assert st["user"] == u.name and st["uid"] == u.uid
    r = a.root({"cmd": "status", "user": world.carol.name})
    assert r["ok"] is False and r["code"] == "denied", r
    r = a.root({"cmd": "status", "user": "no-such-user-here"})
    assert r["ok"] is False and r["code"] == "denied", r
    r = a.root({"cmd": "status", "user": 7})
    assert r["ok"] is False and r["code"] == "invalid", r
    # root locks bob's view (after bob unlocked); alice's stays
    assert unlock(world.bob).returncode == 0
    assert unlock(world.alice).returncode == 0
    r = a.root({"cmd": "lock", "user": world.bob.name})
    assert r["ok"] is True, r
    assert a.status(world.bob)["state"] == "locked"
    assert a.status(world.alice)["state"] == "ready"


def test_a_user_that_does_not_exist_is_skipped(world, sysagent):
    a = sysagent(users=[world.alice.name, "ovctnosuchuser"])
    st = a.wait_policy(world.alice)
    assert st["state"] == "locked"
    assert "ovctnosuchuser" in a.log()
    r = world.bob.raw(a.sock, {"cmd": "status"})
    assert r["ok"] is False and r["code"] == "denied", r


def test_group_item_serves_its_members(world, sysagent):
    # each test user has a user-private group of its own name (useradd -U)
    a = sysagent(users=[f"@{world.bob.name}", world.alice.name])
    for u in (world.alice, world.bob):
        a.wait_policy(u)
    r = world.carol.raw(a.sock, {"cmd": "status"})
    assert r["ok"] is False and r["code"] == "denied", r


def test_restart_keeps_state_per_user(world, sysagent):
    a = sysagent()
    alice, bob = world.alice, world.bob
    for u in (alice, bob):
        a.wait_policy(u)
    assert unlock(alice, alice.wrongpass).returncode != 0
    assert a.status(alice)["unlock_failures"] == 1
    a.stop()
    # no network at all now: the cache must carry the policy
    shutil.rmtree(a.pub)
    a.start()
    for u in (alice, bob):
        st = a.wait(u, lambda s: s["policy"] is not None, "the cached policy")
        assert st["policy"]["from_cache"] is True
        assert st["state"] == "locked"
    assert a.status(alice)["unlock_failures"] == 1
    assert a.status(bob)["unlock_failures"] == 0


def test_one_users_expiry_leaves_the_other_ready(world, sysagent):
    """Settings are org-wide: publish from a copy of the store with a short
    cache_expiration, then stop serving alice's document only."""
    store = world.org.copy_store("fast")
    set_setting(world.org.conf(store), "refresh_interval", "2s")
    set_setting(world.org.conf(store), "cache_expiration", "6s")
    fast = world.org.publish(world.base / "pubfast", store)
    a = sysagent(src=fast)
    alice, bob = world.alice, world.bob
    for u in (alice, bob):
        a.wait_policy(u)
    assert unlock(alice).returncode == 0
    assert unlock(bob).returncode == 0
    assert a.status(alice)["state"] == "ready"
    doc, sig = a.pub / f"{alice.name}.json", a.pub / f"{alice.name}.json.minisig"
    saved = doc.read_bytes(), sig.read_bytes()
    doc.unlink()
    sig.unlink()
    st = a.wait(alice, lambda s: s["state"] == "expired", "expiry", timeout=20)
    assert st["keys"] == 0 and st["locked"] is False, st
    assert "cache_expiration" in st["reason"], st["reason"]
    assert any(r["path"] == world.vault for r in st["rules"]), "the rules stay in force"
    assert st["refresh"]["last_result"] == "error"
    r = alice.raw(a.sock, {"cmd": "which", "path": world.vault + "x.docx"})
    assert r["ok"] is True and r["key_held"] is False and r["rule"] is not None, r
    # bob, served all along, never expired
    sb = a.status(bob)
    assert sb["state"] == "ready" and sb["keys"] >= 2, sb
    assert sb["refresh"]["failures"] == 0
    # alice's document back: the next successful refresh restores her keys
    doc.write_bytes(saved[0])
    sig.write_bytes(saved[1])
    later = time.time() + 1000
    os.utime(doc, (later, later))
    os.utime(sig, (later, later))
    r = alice.raw(a.sock, {"cmd": "refresh"})
    assert r["ok"] is True, r
    st = a.wait(alice, lambda s: s["state"] == "ready", "service restored", timeout=10)
    assert st["keys"] >= 2
    assert a.status(bob)["state"] == "ready"
    assert "restored" in a.log()


def test_user_mode_agent_refuses_another_uid(world):
    """An agent run (as root) in user mode serves root's uid only: another
    user that reaches its socket is refused after SO_PEERCRED."""
    d = world.base / "um"
    d.mkdir(mode=0o755)
    run_dir = d / "run"
    conf = d / "agent.conf"
    conf.write_text(f"""[server]
policy_url = file://{world.pub}/
org_public_key = {world.org_pub}

[client]
user = {world.alice.name}
keystore = {d}/keystore.age
cache_dir = {d}/cache
runtime_dir = {run_dir}
""")
    log_path = d / "agent.log"
    env = dict(NO_PROXY_ENV)
    env.update({"HOME": str(d), "XDG_RUNTIME_DIR": str(d)})
    with open(log_path, "wb") as lf:
        proc = subprocess.Popen([str(world.build / "overcryptd"), "--foreground",
                                 "--config", str(conf)], stdout=lf,
                                stderr=subprocess.STDOUT, env=env)
    sock = run_dir / "control"
    try:
        deadline = time.time() + 15
        while not sock.is_socket() and time.time() < deadline:
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
        assert sock.is_socket(), log_path.read_text()
        # user mode: 0600 socket in a 0700 folder
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        r = request(sock, {"cmd": "status"})
        assert r["ok"] is True and r["mode"] == "user", r
        # open the door on purpose so that the connection reaches SO_PEERCRED
        os.chmod(run_dir, 0o755)
        os.chmod(sock, 0o666)
        for u in (world.alice, world.carol):
            r = u.raw(sock, {"cmd": "status"})
            assert r == {"ok": False, "error": r.get("error"), "code": "denied"}, r
            r = u.raw(sock, {"cmd": "unlock", "identity": "AGE-SECRET-KEY-1" + "Q" * 58})
            assert r["ok"] is False and r["code"] == "denied", r
        # the agent goes on serving its own uid
        r = request(sock, {"cmd": "status"})
        assert r["ok"] is True and r["user"] == world.alice.name, r
        assert "refused" in log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log = log_path.read_text(errors="replace")
    rep = sanitizer_report(log)
    assert rep is None, f"overcryptd: sanitizer report ({rep}):\n{log}"
    assert proc.returncode == 0, log


# --- the overlay in system mode ---------------------------------------------------------

def sh_as(user, script, *args, timeout=30):
    return as_user(user.name, ["/bin/sh", "-c", script, "sh", *[str(a) for a in args]],
                   user.home, timeout=timeout)


def wait_mounted(path, a, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(l.split()[1] == str(path) and l.split()[2].startswith("fuse")
               for l in open("/proc/mounts")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{path} not mounted:\n{a.log()}")


@pytest.fixture
def overlaid(world, sysagent):
    """Both users served and unlocked, team/ and mixed/ mounted; the backing
    seen through a bind mount made before the agent started."""
    for d in (world.team, world.mixed):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o1777)
    raw = world.base / "raw"
    raw.mkdir(exist_ok=True)
    subprocess.run(["umount", "-l", str(raw)], capture_output=True)
    subprocess.run(["mount", "--bind", str(world.shared_root), str(raw)], check=True)
    subprocess.run(["mount", "--make-private", str(raw)], check=True)
    a = sysagent()
    for u in (world.alice, world.bob):
        a.wait_policy(u)
        p = unlock(u)
        assert p.returncode == 0, p.out + p.err
    wait_mounted(world.team, a)
    wait_mounted(world.mixed, a)
    a.raw = raw
    yield a
    a.stop()
    subprocess.run(["umount", "-l", str(raw)], capture_output=True)


def key_id(path):
    data = pathlib.Path(path).read_bytes()
    assert data[:8] == b"OVCRYPT1", (path, data[:16])
    return data[16:32]


def test_private_asset_each_user_their_own_key(world, overlaid):
    a, alice, bob = overlaid, world.alice, world.bob
    tag = secrets.token_hex(3)
    fa, fb = world.team / f"a{tag}.txt", world.team / f"b{tag}.txt"
    p = sh_as(alice, 'echo "alice-secret-$2" > "$1"', fa, tag)
    assert p.returncode == 0, p.err
    p = sh_as(bob, 'echo "bob-secret-$2" > "$1"', fb, tag)
    assert p.returncode == 0, p.err
    # files belong to their writers, as on a local file system
    assert os.stat(fa).st_uid == alice.uid and os.stat(fb).st_uid == bob.uid
    # on disk: encrypted, under two different keys
    ka, kb = key_id(a.raw / "team" / fa.name), key_id(a.raw / "team" / fb.name)
    assert ka != kb
    for f in (fa, fb):
        assert b"secret" not in (a.raw / "team" / f.name).read_bytes()
    # each reads their own; neither the other's (mode bits allow it: 0644)
    assert sh_as(alice, 'cat "$1"', fa).out == f"alice-secret-{tag}\n"
    assert sh_as(bob, 'cat "$1"', fb).out == f"bob-secret-{tag}\n"
    p = sh_as(bob, 'cat "$1"', fa)
    assert p.returncode != 0 and "Permission denied" in p.err, (p.out, p.err)
    assert "alice-secret" not in p.out
    # even while alice holds it open and its plaintext is in the page cache
    holder = subprocess.Popen(["runuser", "-u", alice.name, "--", "/usr/bin/python3", "-c",
                               "import sys; f = open(sys.argv[1]); print(f.read(), flush=True);"
                               " sys.stdin.read()", str(fa)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().decode().startswith("alice-secret")
        p = sh_as(bob, 'cat "$1"', fa)
        assert p.returncode != 0 and "Permission denied" in p.err, (p.out, p.err)
        p = sh_as(bob, 'echo overwrite >> "$1"', fa)
        assert p.returncode != 0, "bob wrote into alice's file"
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    assert sh_as(alice, 'cat "$1"', fa).out == f"alice-secret-{tag}\n"


def test_folder_public_for_one_shared_for_the_other(world, overlaid):
    a, alice, bob = overlaid, world.alice, world.bob
    tag = secrets.token_hex(3)
    fa, fb = world.mixed / f"pa{tag}.txt", world.mixed / f"pb{tag}.txt"
    assert sh_as(alice, 'echo "alice-plain-$2" > "$1"', fa, tag).returncode == 0
    assert sh_as(bob, 'echo "bob-enc-$2" > "$1"', fb, tag).returncode == 0
    # each stored by the writer's rule
    assert (a.raw / "mixed" / fa.name).read_bytes() == f"alice-plain-{tag}\n".encode()
    key_id(a.raw / "mixed" / fb.name)
    assert b"bob-enc" not in (a.raw / "mixed" / fb.name).read_bytes()
    # bob reads both; alice reads hers but not bob's encrypted file
    assert sh_as(bob, 'cat "$1" "$2"', fa, fb).out == f"alice-plain-{tag}\nbob-enc-{tag}\n"
    p = sh_as(alice, 'cat "$1"', fb)
    assert p.returncode != 0 and "Permission denied" in p.err


def test_locked_user_refused_while_the_other_works(world, overlaid):
    a, alice, bob = overlaid, world.alice, world.bob
    tag = secrets.token_hex(3)
    fa = world.team / f"l{tag}.txt"
    assert sh_as(alice, 'echo "before-$2" > "$1"', fa, tag).returncode == 0
    p = alice.oc("lock")
    assert p.returncode == 0, p.out + p.err
    p = sh_as(alice, 'cat "$1"', fa)
    assert p.returncode != 0 and "Permission denied" in p.err
    # alice may not write plaintext there either; nothing is created
    p = sh_as(alice, 'echo "locked-$2" > "$1"', world.team / f"n{tag}.txt", tag)
    assert p.returncode != 0
    assert not (a.raw / "team" / f"n{tag}.txt").exists()
    # bob is unaffected
    fb = world.team / f"m{tag}.txt"
    assert sh_as(bob, 'echo "bob-$2" > "$1"', fb, tag).returncode == 0
    assert sh_as(bob, 'cat "$1"', fb).out == f"bob-{tag}\n"
    # a user without any view (not served) gets no plaintext write either
    carol = world.carol
    p = sh_as(carol, 'echo "carol-$2" > "$1"', world.team / f"c{tag}.txt", tag)
    assert p.returncode != 0
    assert not (a.raw / "team" / f"c{tag}.txt").exists()
