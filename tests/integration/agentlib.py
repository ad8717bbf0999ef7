"""Helpers for the integration tests that run real servers and the real agent.

- TLS material made with openssl (a throwaway CA, a server certificate for
  127.0.0.1, a second unrelated CA), nginx on a free port of 127.0.0.1 that
  can be stopped and started again on the same port, its access log read back;
- small misbehaving HTTPS servers (hang, truncated body, endless chunked body)
  in a thread;
- an org made with `overcrypt-admin init` and published with `publish`, a user
  keystore made with `overcrypt enroll`;
- overcryptd started with `--foreground --config FILE` in the background, its
  log captured, stopped with SIGTERM; a test fails when the log holds a
  sanitizer report (CI builds with SANITIZE=1);
- a raw client for the control socket (docs/control-protocol.md).

No traffic leaves 127.0.0.1, and no config of this machine (/etc,
~/.config) is read: every program gets `--config` and a private HOME/XDG_*.
"""
import base64
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

MIB = 1 << 20
ADMIN_PASS = "Corr3ct-Horse!battery"
USER_PASS = "Us3r-Keystore!passphrase"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "Sanitizer:DEADLYSIGNAL")
NO_PROXY_ENV = {k: v for k, v in os.environ.items()
                if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                     "no_proxy", "journal_stream",
                                     "xdg_config_home", "xdg_data_home",
                                     "xdg_state_home")}


def sanitizer_report(text):
    """The first sanitizer marker found in `text`, or None."""
    for m in SANITIZER_MARKS:
        if m in text:
            return m
    return None


# --- TLS material ---------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True, timeout=60)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.pem", cwd=d)


def make_leaf(d, name, ca, ext):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=d)
    (d / f"{name}.ext").write_text(ext)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
            "-CAkey", f"{ca}.key", "-CAcreateserial", "-days", "2",
            "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def make_tls(d):
    """ca.pem (signs server.pem for 127.0.0.1/localhost and client.pem) and
    an unrelated otherca.pem, in folder `d`."""
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_leaf(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth\n")
    make_leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    return d


def spki_pin(cert):
    """The base64 SHA-256 of the certificate's SubjectPublicKeyInfo."""
    pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"],
                         check=True, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"],
                         input=pub, check=True, capture_output=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, what="nginx"):
    deadline = time.time() + 15
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not open its port")


def put(www, rel, data, mtime=None):
    p = pathlib.Path(www) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


# --- nginx ----------------------------------------------------------------------------

NGINX_CONF = """
daemon off;
master_process off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{ application/json json; text/plain minisig; }}
    default_type application/octet-stream;
    etag on;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {tls}/server.pem;
        ssl_certificate_key {tls}/server.key;
        ssl_verify_client optional;
        ssl_client_certificate {tls}/ca.pem;
        root {www};
{locations}
    }}
}}
"""


class Nginx:
    """A real nginx with TLS on 127.0.0.1:port serving `www`; stop() and
    start() again keep the port. Always stopped by the fixture that made it."""

    def __init__(self, d, tls, www=None, locations="", port=None):
        self.d = pathlib.Path(d)
        self.tls = pathlib.Path(tls)
        self.www = pathlib.Path(www) if www else self.d / "www"
        self.www.mkdir(parents=True, exist_ok=True)
        (self.d / "tmp").mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = str(self.tls / "ca.pem")
        self.access = self.d / "access.log"
        self.conf = self.d / "nginx.conf"
        self.conf.write_text(NGINX_CONF.format(
            d=self.d, port=self.port, tls=self.tls, www=self.www,
            locations=locations))
        self.proc = None

    def start(self):
        assert self.proc is None
        log = self.d / "nginx.out"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(["nginx", "-p", str(self.d), "-c", str(self.conf)],
                                         stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port, self.proc, log)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None
            # the port is free again once nothing listens
            deadline = time.time() + 5
            while time.time() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    time.sleep(0.05)
                except OSError:
                    break

    def requests(self, path=None):
        """[(path, status, body_bytes)] of the GETs nginx logged (of `path` only
        when given), in order."""
        found = []
        if not self.access.exists():
            return found
        for line in self.access.read_text().splitlines():
            m = re.search(r'"GET (\S+) HTTP/[\d.]+" (\d{3}) (\d+)', line)
            if m and (path is None or m[1] == path):
                found.append((m[1], int(m[2]), int(m[3])))
        return found

    def statuses(self, path):
        return [s for _, s, _ in self.requests(path)]


# --- misbehaving HTTPS servers ---------------------------------------------------------

class BadServer:
    """A TLS server on 127.0.0.1 (certificate from `tls`) that misbehaves:
    mode "hang": takes TCP connections and never says a word (not even TLS);
    mode "truncate": announces a Content-Length and closes half-way;
    mode "endless": sends a chunked body until the client goes away (counts
    what it sent in .sent)."""

    def __init__(self, tls, mode):
        self.mode = mode
        self.sent = 0
        self.conns = 0
        self.stopping = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(pathlib.Path(tls) / "server.pem"),
                                 str(pathlib.Path(tls) / "server.key"))
        self.held = []
        self.th = None
        if mode != "hang":   # "hang": the kernel's backlog takes the connection
            self.sock.settimeout(0.2)
            self.th = threading.Thread(target=self._serve, daemon=True)
            self.th.start()

    def _serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns += 1
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        try:
            c.settimeout(10)
            s = self.ctx.wrap_socket(c, server_side=True)
            req = b""
            while b"\r\n\r\n" not in req:
                b = s.recv(4096)
                if not b:
                    return
                req += b
            if self.mode == "truncate":
                body = b'{"format": "overcrypt-policy/1", "org": "corp", ' * 3
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 5000\r\nConnection: close\r\n\r\n" + body)
                self.sent += len(body)
            elif self.mode == "endless":
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
                chunk = b"x" * 65536
                frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
                while not self.stopping and self.sent < 100 * MIB:
                    s.sendall(frame)
                    self.sent += len(chunk)
            s.close()
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def close(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        if self.th:
            self.th.join(timeout=5)


# --- the org: overcrypt-admin init / publish, overcrypt enroll -----------------------------

def run(args, env=None, timeout=120, input=None):
    e = dict(NO_PROXY_ENV)
    if env:
        e.update(env)
    p = subprocess.run([str(a) for a in args], capture_output=True, env=e,
                       timeout=timeout, input=input)
    return p


def out(p):
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


def set_setting(conf, key, value):
    """Set `key = value` in org.conf's live [settings] section."""
    lines, section, done = [], None, False
    for line in pathlib.Path(conf).read_text().split("\n"):
        m = re.match(r"\s*\[([^\]]+)\]\s*([;#].*)?$", line)
        if m:
            section = m.group(1).strip()
        elif section == "settings" and re.match(r"\s*" + re.escape(key) + r"\s*=", line):
            continue
        lines.append(line)
        if m and section == "settings" and not done:
            lines.append(f"{key} = {value}")
            done = True
    if not done:
        lines += ["", "[settings]", f"{key} = {value}"]
    pathlib.Path(conf).write_text("\n".join(lines).rstrip("\n") + "\n")


def enroll(build, keystore, passfile):
    """Make a keystore with `overcrypt enroll`; its age recipient."""
    p = run([build / "overcrypt", "enroll", "--keystore", keystore,
             "--passphrase-file", passfile])
    m = re.search(r"age1[0-9a-z]+", out(p))
    assert p.returncode == 0 and m, out(p)
    return m[0]


class Org:
    """An admin store (overcrypt-admin init: slow, scrypt 2^20: make one per
    module) with the org key in `pub`, and users' keystores."""

    def __init__(self, build, d, org="corp"):
        self.build = pathlib.Path(build)
        self.d = pathlib.Path(d)
        self.store = self.d / "store"
        self.pw = self.d / "admin.pw"
        self.pw.write_text(ADMIN_PASS + "\n")
        self.user_pw = self.d / "user.pw"
        self.user_pw.write_text(USER_PASS + "\n")
        p = run([self.build / "overcrypt-admin", "init", self.store,
                 "--passphrase-file", self.pw, "--org", org])
        assert p.returncode == 0, out(p)
        self.pub = self.store / "org.pub"

    def conf(self, store=None):
        return (store or self.store) / "org.conf"

    def append(self, text, store=None):
        with open(self.conf(store), "a") as f:
            f.write(text)

    def copy_store(self, name):
        """A copy of the store (same org key) to publish other settings from."""
        dst = self.d / name
        shutil.copytree(self.store, dst)
        return dst

    def publish_cmd(self, outdir, store=None):
        return [self.build / "overcrypt-admin", "--store", store or self.store,
                "--passphrase-file", self.pw, "publish", "--out", outdir, "--yes"]

    def publish(self, outdir, store=None):
        p = run(self.publish_cmd(outdir, store))
        assert p.returncode == 0, out(p)
        return pathlib.Path(outdir)


def publish_parallel(jobs):
    """Run several `Org.publish_cmd` lists at once (different stores)."""
    procs = [subprocess.Popen([str(a) for a in cmd], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=NO_PROXY_ENV)
             for cmd in jobs]
    for cmd, p in zip(jobs, procs):
        o, _ = p.communicate(timeout=300)
        assert p.returncode == 0, f"{cmd}: {o.decode(errors='replace')}"


_mtime = [int(time.time()) - 10 ** 6]


def serve(src, dst, user="alice", as_user=None, mutate=None):
    """Copy `user`'s published pair from folder `src` into folder `dst` (as
    `as_user`'s names), each time with a new, later mtime (so nginx's ETag
    and Last-Modified change even when the size does not). `mutate(bytes)`
    may change the document."""
    _mtime[0] += 10
    dst = pathlib.Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    name = as_user or user
    doc = (pathlib.Path(src) / f"{user}.json").read_bytes()
    sig = (pathlib.Path(src) / f"{user}.json.minisig").read_bytes()
    if mutate:
        doc = mutate(doc)
    put(dst, f"{name}.json", doc, _mtime[0])
    put(dst, f"{name}.json.minisig", sig, _mtime[0])
    return json.loads(doc) if not mutate else None


# --- the agent --------------------------------------------------------------------------

def ctl(sock, data, timeout=15, shut=False):
    """Send raw bytes to the control socket and read the reply until EOF.
    Returns (parsed reply or None, raw bytes)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(sock))
        if data:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        if shut:
            s.shutdown(socket.SHUT_WR)
        raw = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            raw += b
    finally:
        s.close()
    try:
        return json.loads(raw.decode()), raw
    except ValueError:
        return None, raw


def request(sock, obj, timeout=15):
    """One JSON request; the parsed reply (asserts the reply is one line)."""
    r, raw = ctl(sock, json.dumps(obj).encode() + b"\n", timeout=timeout)
    assert r is not None and raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
    return r


class Agent:
    """One overcryptd in user mode with its own HOME, runtime and cache
    folders under `d`, driven through `overcrypt --config`."""

    def __init__(self, build, d, org, policy_url, user="alice", ca_file=None,
                 keystore=None, server_extra="", log_level="info", timeout=None):
        self.build = pathlib.Path(build)
        self.d = pathlib.Path(d)
        self.user = user
        self.org = org
        self.home = self.d / "home"
        self.run_dir = self.d / "run" / "overcrypt"
        self.cache = self.d / "cache" / "overcrypt"
        self.sock = self.run_dir / "control"
        self.log_path = self.d / "agent.log"
        self.config = self.d / "client.conf"
        self.keystore = keystore
        self.policy_url = policy_url
        self.ca_file = ca_file
        self.server_extra = server_extra
        self.timeout = timeout
        self.log_level = log_level
        self.home.mkdir(parents=True, exist_ok=True)
        (self.d / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {"HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.d / "run"),
                    "XDG_CACHE_HOME": str(self.d / "cache")}
        self.proc = None
        self.extra_args = []  # more overcryptd options (e.g. --mountinfo)
        self.logs = []      # logs of earlier runs (restarts)
        self.write_config()

    def write_config(self, **kw):
        for k, v in kw.items():
            setattr(self, k, v)
        lines = ["[server]", f"policy_url = {self.policy_url}",
                 f"org_public_key = {self.org.pub}"]
        if self.ca_file:
            lines.append(f"ca_file = {self.ca_file}")
        if self.timeout:
            lines.append(f"timeout = {self.timeout}")
        if self.server_extra:
            lines.append(self.server_extra)
        lines += ["", "[client]", f"user = {self.user}",
                  f"keystore = {self.keystore}", f"cache_dir = {self.cache}",
                  f"runtime_dir = {self.run_dir}", "", "[log]",
                  f"level = {self.log_level}", ""]
        self.config.write_text("\n".join(lines))

    # the agent process

    def start(self, wait_socket=True):
        assert self.proc is None
        if self.log_path.exists():
            self.logs.append(self.log_path.read_text(errors="replace"))
        self.log_file = open(self.log_path, "wb")
        e = dict(NO_PROXY_ENV)
        e.update(self.env)
        self.proc = subprocess.Popen([str(self.build / "overcryptd"), "--foreground",
                                      "--config", str(self.config)] + self.extra_args,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=e)
        if wait_socket:
            self.wait_socket()
        return self

    def wait_socket(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"overcryptd exited {self.proc.returncode}: {self.log()}")
            if self.sock.is_socket():
                try:
                    if request(self.sock, {"cmd": "status"}, timeout=5)["ok"]:
                        return
                except (OSError, AssertionError):
                    pass
            time.sleep(0.05)
        raise AssertionError(f"no control socket after {timeout} s: {self.log()}")

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def all_logs(self):
        return "".join(self.logs) + self.log()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, check=True):
        """SIGTERM; returns the exit status. With `check`, a stop that takes
        over 10 s, an exit status other than 0 or a sanitizer report in the
        log fails."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.proc = None
                self.log_file.close()
                if check:
                    raise AssertionError(f"overcryptd did not stop within 10 s of SIGTERM: {self.log()}")
                return None
        self.proc = None
        self.log_file.close()
        log = self.log()
        if check:
            rep = sanitizer_report(log)
            assert rep is None, (f"overcryptd: sanitizer report ({rep}):\n"
                                 f"{log[max(0, log.find(rep) - 2000):][:6000]}")
            assert rc == 0, f"overcryptd exited {rc} after SIGTERM:\n{log}"
        return rc

    def kill9(self):
        """SIGKILL: no clean-up at all; the process is reaped."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None
        self.log_file.close()

    def restart(self):
        self.stop()
        return self.start()

    # the user's commands

    def oc(self, *args, timeout=120):
        """`overcrypt --config FILE ARGS`; the CLI may not report a sanitizer
        error either."""
        p = run([self.build / "overcrypt", "--config", self.config, *args],
                env=self.env, timeout=timeout)
        p.out = p.stdout.decode(errors="replace")
        p.err = p.stderr.decode(errors="replace")
        rep = sanitizer_report(p.err)
        assert rep is None, f"overcrypt {args}: sanitizer report:\n{p.err}"
        return p

    def status(self):
        p = self.oc("status", "--json")
        assert p.returncode == 0, p.err
        return json.loads(p.out)

    def raw_status(self):
        r = request(self.sock, {"cmd": "status"})
        assert r["ok"] is True, r
        return r

    def wait_status(self, pred, timeout=10, what="status"):
        """Poll the status (raw socket: cheap) until pred(status); returns it."""
        deadline = time.time() + timeout
        st = None
        while time.time() < deadline:
            st = self.raw_status()
            if pred(st):
                return st
            time.sleep(0.1)
        raise AssertionError(f"{what}: not reached within {timeout} s; last status "
                             f"{json.dumps(st, indent=1)}\nlog:\n{self.log()}")

    def wait_policy(self, timeout=10):
        return self.wait_status(lambda s: s.get("policy") is not None
                                and s["refresh"]["last_result"] is not None,
                                timeout, "a policy")

    def wait_attempt(self, timeout=10):
        return self.wait_status(lambda s: s["refresh"]["last_result"] is not None,
                                timeout, "a first fetch")

    def unlock(self, passfile=None):
        return self.oc("unlock", "--passphrase-file", passfile or self.org.user_pw)

    def refresh(self):
        t0 = time.time()
        p = self.oc("refresh")
        p.elapsed = time.time() - t0
        return p


# --- fixtures (import them into a test module to use them) -----------------------------

ORG_TAIL = """
[group staff]
members = alice, bob

[user alice]
recipient = {ra}

[user bob]
recipient = {rb}

[asset treasury]
type = shared
path = {data}/vault/
groups = staff
"""

LEDGER = """
[asset ledger]
type = shared
path = {data}/ledger/
groups = staff
"""

NGINX_LOCATIONS = """
        location /err500/ { return 500; }
        # sub_filter drops Content-Length, so nginx sends the body chunked.
        location /chunked/ {
            sub_filter_types *;
            sub_filter 'no-such-text-in-the-body' 'x';
        }
"""


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """A throwaway CA (ca.pem), a server certificate for 127.0.0.1 it signed,
    and an unrelated otherca.pem."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def org(build, tmp_path_factory):
    """One org for the module (init is slow): users alice (a keystore made
    by `overcrypt enroll`, passphrase in org.user_pw) and bob, asset
    treasury on org.data/vault/. Published folders, each with alice.json and
    bob.json:
      org.v1    treasury
      org.v2    treasury + ledger (org.data/ledger/), a higher serial
      org.vexp  cache_expiration = 3s (another copy of the store)
      org.vauto autolock_idle = 2s (another copy of the store)
    and org.store_valid, a copy with policy_validity = 6s, for a test to
    publish from when it needs it."""
    d = tmp_path_factory.mktemp("org")
    o = Org(build, d)
    o.data = d / "data"
    o.alice_ks = d / "alice.ks"
    ra = enroll(build, o.alice_ks, o.user_pw)
    p = subprocess.run(["age-keygen", "-o", str(d / "bob.id")], capture_output=True,
                       check=True)
    rb = re.search(rb"age1[0-9a-z]+", p.stderr)[0].decode()
    o.append(ORG_TAIL.format(ra=ra, rb=rb, data=o.data))
    exp = o.copy_store("store-exp")
    set_setting(o.conf(exp), "cache_expiration", "3s")
    auto = o.copy_store("store-auto")
    set_setting(o.conf(auto), "autolock_idle", "2s")
    o.store_valid = o.copy_store("store-valid")     # published by the test itself
    set_setting(o.conf(o.store_valid), "policy_validity", "6s")
    o.v1, o.vexp, o.vauto = d / "v1", d / "vexp", d / "vauto"
    publish_parallel([o.publish_cmd(o.v1), o.publish_cmd(o.vexp, exp),
                      o.publish_cmd(o.vauto, auto)])
    o.append(LEDGER.format(data=o.data))
    o.v2 = o.publish(d / "v2")
    for v in ("v1", "v2", "vexp", "vauto"):
        setattr(o, v + "_doc", json.loads((getattr(o, v) / "alice.json").read_text()))
    assert o.v2_doc["serial"] > o.v1_doc["serial"]
    return o


@pytest.fixture(scope="module")
def web(tmp_path_factory, tls):
    """nginx for the module; a test serves its files from web.www/<its own
    folder>/ (see `www`)."""
    if not shutil.which("nginx"):
        pytest.fail("nginx is not installed (make deps)")
    n = Nginx(tmp_path_factory.mktemp("nginx"), tls, locations=NGINX_LOCATIONS)
    n.start()
    yield n
    n.stop()


@pytest.fixture
def www(web, tmp_path):
    """(folder, url): this test's own folder on the module's nginx."""
    folder = web.www / tmp_path.name
    folder.mkdir()
    return folder, f"{web.url}/{tmp_path.name}/"


@pytest.fixture
def nginx(tls, tmp_path):
    """Make a private nginx (which a test may stop and start); each one
    stopped at the end."""
    made = []

    def make(name="nginx", **kw):
        n = Nginx(tmp_path / name, tls, **kw)
        made.append(n)
        return n.start()
    yield make
    for n in made:
        n.stop()


@pytest.fixture
def badserver(tls):
    made = []

    def make(mode):
        s = BadServer(tls, mode)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()


@pytest.fixture
def agent(build, org, tmp_path):
    """Make an Agent (not started) for alice under tmp_path/NAME; every agent
    made is stopped at the end with SIGTERM, and the test fails if it does
    not exit 0 or its log holds a sanitizer report."""
    made = []

    def make(url, name="agent", **kw):
        kw.setdefault("keystore", org.alice_ks)
        a = Agent(build, tmp_path / name, org, url, **kw)
        made.append(a)
        return a
    yield make
    stop_all(made)


def stop_all(agents):
    """Stop every agent with SIGTERM; fail the test with every problem (an
    exit status other than 0, a sanitizer report) once all were tried."""
    errors = []
    for a in agents:
        try:
            a.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors))
