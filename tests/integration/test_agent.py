"""overcryptd in user mode against real servers and real faults: nginx with a
throwaway CA on 127.0.0.1, misbehaving servers, file:// sources, a corrupt
cache; driven as a user would, with `overcrypt --config F status/unlock/
lock/refresh/which`, and at the protocol level with a raw socket client.
Every agent is stopped with SIGTERM at the end of its test and must exit 0
with no sanitizer report in its log (CI builds with SANITIZE=1)."""
import json
import os
import pathlib
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from datetime import datetime, timezone

import pytest

from agentlib import (MIB, ctl, request, serve, sanitizer_report, free_port,
                      # fixtures
                      tls, org, web, www, nginx, badserver, agent)  # noqa: F401


def ts(s):
    """An RFC 3339 UTC time of the status as a Unix time."""
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def flip(doc):
    b = bytearray(doc)
    b[len(b) // 2] ^= 1
    return bytes(b)


def rule_assets(st):
    return sorted(r["asset"] for r in st["rules"])


# --- first fetch, unlock, which, lock ---------------------------------------------------

def test_first_fetch_unlock_which(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    st = a.status()          # through the CLI, as a user reads it
    assert st["mode"] == "user" and st["user"] == "alice" and st["uid"] == os.getuid()
    assert st["state"] == "locked" and st["locked"] is True and st["keys"] == 0
    pol = st["policy"]
    assert pol["serial"] == org.v1_doc["serial"] and pol["org"] == "corp"
    assert pol["source"] == url + "alice.json" and pol["from_cache"] is False
    assert pol["valid_until"] == org.v1_doc["valid_until"]
    assert st["refresh"]["last_result"] == "new" and st["refresh"]["last_error"] is None
    assert st["refresh"]["failures"] == 0
    assert rule_assets(st) == ["treasury"]
    assert st["expires_at"] is not None
    # nginx served both files once
    base = "/" + folder.name
    assert web.statuses(base + "/alice.json") == [200]
    assert web.statuses(base + "/alice.json.minisig") == [200]

    p = a.unlock()
    assert p.returncode == 0 and "unlocked: 1 key\n" in p.out, p.err
    st = a.status()
    assert st["state"] == "ready" and st["locked"] is False and st["keys"] >= 1
    assert st["unlock_failures"] == 0 and st["unlock_wait_s"] == 0

    key_id = org.v1_doc["rules"][0]["key_id"]
    p = a.oc("which", org.data / "vault" / "a" / "b.txt")
    assert p.returncode == 0, p.err
    assert "treasury" in p.out and "shared" in p.out and key_id in p.out
    assert "key held: yes" in p.out
    p = a.oc("which", "/somewhere/else.txt")
    assert p.returncode == 0 and "rule: none" in p.out, p.out

    p = a.oc("status")       # the human form
    assert p.returncode == 0
    assert "state:    ready" in p.out and f"serial {pol['serial']}" in p.out
    assert "treasury" in p.out


def test_lock_wipes_keys(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    assert a.status()["keys"] >= 1
    p = a.oc("lock")
    assert p.returncode == 0 and "locked" in p.out
    st = a.status()
    assert st["state"] == "locked" and st["keys"] == 0 and st["locked"] is True
    assert st["policy"]["serial"] == org.v1_doc["serial"]      # the policy stays
    p = a.oc("which", org.data / "vault" / "x")
    assert p.returncode == 0 and "treasury" in p.out and "key held: no" in p.out
    assert "locked" in a.log()


# --- refresh: 304, a new policy, server down, expiry --------------------------------------

def test_unchanged_policy_is_a_304(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    first = a.wait_policy()
    doc, sig = f"/{folder.name}/alice.json", f"/{folder.name}/alice.json.minisig"
    assert web.statuses(doc) == [200]
    time.sleep(1.1)          # so that last_success moves on
    p = a.refresh()
    assert p.returncode == 0, p.err
    assert p.out.strip() == f"policy serial {org.v1_doc['serial']} (unchanged)"
    assert web.statuses(doc) == [200, 304]
    assert web.statuses(sig) == [200]          # no signature fetched after a 304
    st = a.status()
    assert st["refresh"]["last_result"] == "unchanged"
    assert st["refresh"]["failures"] == 0 and st["refresh"]["last_error"] is None
    assert ts(st["refresh"]["last_success"]) > ts(first["refresh"]["last_success"])
    # a 304 restarts the cache expiration
    assert ts(st["expires_at"]) >= ts(first["expires_at"])
    # the next refresh is a jittered interval (900 s +-10 %) away
    gap = ts(st["refresh"]["next"]) - ts(st["refresh"]["last_attempt"])
    assert 800 <= gap <= 1000, gap


def test_changed_policy_applied_without_restart(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    pid = a.proc.pid
    serve(org.v2, folder)
    p = a.refresh()
    assert p.returncode == 0, p.err
    assert p.out.strip() == f"policy serial {org.v2_doc['serial']} (new)"
    st = a.status()
    assert st["policy"]["serial"] == org.v2_doc["serial"]
    assert rule_assets(st) == ["ledger", "treasury"]
    assert st["state"] == "ready" and st["keys"] == 2      # the held identity opened them
    assert st["refresh"]["last_result"] == "new"
    p = a.oc("which", org.data / "ledger" / "q3.xlsx")
    assert p.returncode == 0 and "ledger" in p.out and "key held: yes" in p.out, p.out
    assert a.proc.pid == pid and a.proc.poll() is None
    assert web.statuses(f"/{folder.name}/alice.json")[-1] == 200


def backoff_ok(st):
    """refresh.next is the back-off of docs: 5 s, doubling per failure."""
    ref = st["refresh"]
    f = ref["failures"]
    want = min(5 * 2 ** (f - 1), 900)
    gap = ts(ref["next"]) - ts(ref["last_attempt"])
    return f >= 1 and abs(gap - want) <= 1, (f, gap, want)


def test_server_stopped_cache_keeps_working(org, agent, nginx):
    n = nginx()
    serve(org.v1, n.www / "p")
    a = agent(n.url + "/p/", ca_file=n.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    n.stop()
    p = a.refresh()
    assert p.returncode == 1
    assert f"{n.url}/p/alice.json" in p.err and "connect" in p.err.lower(), p.err
    st = a.status()
    assert st["state"] == "ready" and st["keys"] >= 1            # the cache keeps working
    assert st["policy"]["serial"] == org.v1_doc["serial"]
    ref = st["refresh"]
    assert ref["last_result"] == "error" and "connect" in ref["last_error"].lower()
    ok, why = backoff_ok(st)
    assert ok, why
    f1 = ref["failures"]
    p = a.refresh()
    assert p.returncode == 1
    st = a.status()
    assert st["refresh"]["failures"] == f1 + 1
    ok, why = backoff_ok(st)
    assert ok, why
    p = a.oc("status")
    assert "last error:" in p.out and "failures in a row" in p.out, p.out
    assert "policy fetch failed" in a.log()
    # the server comes back: the next refresh clears the errors
    n.start()
    p = a.refresh()
    assert p.returncode == 0 and "(unchanged)" in p.out, p.err
    st = a.status()
    assert st["refresh"]["failures"] == 0 and st["refresh"]["last_error"] is None
    assert st["state"] == "ready"


def test_expiry_drops_keys_keeps_rules_and_comes_back(org, agent, nginx):
    n = nginx()
    serve(org.vexp, n.www / "p")              # cache_expiration = 3s
    a = agent(n.url + "/p/", ca_file=n.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    assert a.refresh().returncode == 0         # restarts the 3 s
    assert a.status()["state"] == "ready"
    n.stop()
    st = a.wait_status(lambda s: s["state"] == "expired", timeout=8, what="expiry")
    assert st["keys"] == 0
    assert st["locked"] is False                                 # the identity is kept
    assert "cache_expiration" in st["reason"] and "keys dropped" in st["reason"], st["reason"]
    assert ts(st["state_since"]) >= ts(st["refresh"]["last_success"]) + 3
    assert rule_assets(st) == ["treasury"]                       # the rules stay in force
    p = a.oc("which", org.data / "vault" / "f.txt")
    assert p.returncode == 0 and "treasury" in p.out and "key held: no" in p.out
    p = a.oc("status")
    assert "expired" in p.out
    # still expired after a failed refresh
    assert a.refresh().returncode == 1
    assert a.status()["state"] == "expired"
    # the server is back: one refresh restores service, no restart, no unlock
    pid = a.proc.pid
    n.start()
    p = a.refresh()
    assert p.returncode == 0, p.err
    st = a.status()
    assert st["state"] == "ready" and st["keys"] >= 1 and st["locked"] is False
    assert a.proc.pid == pid
    assert "service restored" in a.log()


# --- refused documents --------------------------------------------------------------------

def assert_kept(a, org, doc, result):
    """The good policy `doc` is still applied, keys and all."""
    st = a.status()
    assert st["policy"]["serial"] == doc["serial"]
    assert st["refresh"]["last_result"] == result
    assert st["state"] == "ready" and st["keys"] >= 1
    p = a.oc("which", org.data / "vault" / "x.txt")
    assert p.returncode == 0 and "treasury" in p.out
    return st


def test_tampered_document_refused(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    before = a.status()
    serve(org.v1, folder, mutate=flip)
    p = a.refresh()
    assert p.returncode == 1
    assert "signature" in p.err, p.err
    st = assert_kept(a, org, org.v1_doc, "refused")
    # a refused document is no successful refresh: the expiry does not move
    assert st["refresh"]["last_success"] == before["refresh"]["last_success"]
    assert st["expires_at"] == before["expires_at"]
    assert "signature" in st["refresh"]["last_error"]
    assert "refused, the last good policy stays" in a.log()
    # a document cut short is caught by the signature as well
    serve(org.v1, folder, mutate=lambda d: d[: len(d) // 2])
    p = a.refresh()
    assert p.returncode == 1 and "signature" in p.err, p.err
    assert_kept(a, org, org.v1_doc, "refused")


def test_rollback_to_older_document_refused(web, www, org, agent):
    folder, url = www
    serve(org.v2, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    serve(org.v1, folder)                       # valid, signed, but older
    p = a.refresh()
    assert p.returncode == 1 and "serial" in p.err, p.err
    st = assert_kept(a, org, org.v2_doc, "refused")
    assert "serial" in st["refresh"]["last_error"]
    assert rule_assets(st) == ["ledger", "treasury"]
    # the highest serial is kept across restarts, even without the cached document
    a.stop()
    for f in ("policy.json", "policy.json.minisig"):
        (a.cache / f).unlink()
    a.start()
    st = a.wait_attempt()
    assert st["refresh"]["last_result"] == "refused", st
    assert st["policy"] is None and st["state"] != "ready"
    assert "serial" in st["refresh"]["last_error"]


def test_document_for_another_user_refused(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    serve(org.v1, folder, user="bob", as_user="alice")   # bob's signed pair, alice's name
    p = a.refresh()
    assert p.returncode == 1
    assert "bob" in p.err and "user" in p.err, p.err
    assert_kept(a, org, org.v1_doc, "refused")
    # and an agent that never had alice's policy does not take bob's either
    b = agent(url, name="fresh", ca_file=web.ca).start()
    st = b.wait_attempt()
    assert st["refresh"]["last_result"] == "refused" and st["policy"] is None
    assert st["state"] == "no-policy"


# --- transport faults ----------------------------------------------------------------------

def test_wrong_ca_refused(web, www, org, agent, tls):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=tls / "otherca.pem").start()
    st = a.wait_attempt()
    assert st["state"] == "no-policy" and st["policy"] is None
    assert st["refresh"]["last_result"] == "error"
    assert "certificate" in st["refresh"]["last_error"].lower()
    p = a.refresh()
    assert p.returncode == 1 and "certificate" in p.err.lower(), p.err
    assert web.requests(f"/{folder.name}/alice.json") == []   # nothing was asked


def test_server_answering_500(web, org, agent):
    a = agent(web.url + "/err500/", ca_file=web.ca).start()
    st = a.wait_attempt()
    assert st["refresh"]["last_result"] == "error" and "500" in st["refresh"]["last_error"]
    p = a.refresh()
    assert p.returncode == 1
    assert f"{web.url}/err500/alice.json: HTTP status 500" in p.err, p.err
    assert a.status()["state"] == "no-policy"


def test_hanging_server_times_out(org, agent, badserver, tls):
    s = badserver("hang")
    a = agent(s.url + "/", ca_file=tls / "ca.pem", timeout=2).start()
    # the agent answers while its fetch hangs
    t0 = time.time()
    assert a.raw_status()["ok"] is True
    assert time.time() - t0 < 1
    st = a.wait_attempt(timeout=8)
    assert "timed out" in st["refresh"]["last_error"].lower(), st
    p = a.refresh()
    assert p.returncode == 1 and "timed out" in p.err.lower(), p.err
    assert p.elapsed < 6, p.elapsed


def test_truncated_body_refused(org, agent, badserver, tls):
    s = badserver("truncate")
    a = agent(s.url + "/", ca_file=tls / "ca.pem").start()
    st = a.wait_attempt()
    assert st["refresh"]["last_result"] == "error" and st["policy"] is None
    p = a.refresh()
    assert p.returncode == 1
    assert f"{s.url}/alice.json" in p.err, p.err
    assert s.conns >= 2


def test_100_mb_body_refused_without_downloading_it(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    with open(folder / "alice.json", "r+b") as f:      # sparse: costs no disk
        f.truncate(100 * MIB)
    a = agent(url, ca_file=web.ca).start()
    st = a.wait_attempt()
    assert "larger than" in st["refresh"]["last_error"], st
    p = a.refresh()
    assert p.returncode == 1 and "larger than 8388608 bytes" in p.err, p.err
    assert p.elapsed < 5
    deadline = time.time() + 5      # nginx logs a request once it gave up on it
    while len(web.requests(f"/{folder.name}/alice.json")) < 2 and time.time() < deadline:
        time.sleep(0.1)
    sent = web.requests(f"/{folder.name}/alice.json")
    assert len(sent) == 2 and all(b < 20 * MIB for _, _, b in sent), sent


def test_endless_chunked_body_refused(org, agent, badserver, tls):
    s = badserver("endless")
    a = agent(s.url + "/", ca_file=tls / "ca.pem").start()
    st = a.wait_attempt(timeout=15)
    assert "larger than" in st["refresh"]["last_error"], st
    p = a.refresh()
    assert p.returncode == 1 and "larger than 8388608 bytes" in p.err, p.err
    assert p.elapsed < 10
    time.sleep(0.2)
    assert s.sent < 40 * MIB, s.sent       # two fetches, each stopped near 8 MiB


# --- the cache at start ---------------------------------------------------------------------

def test_corrupt_cache_at_start(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    a.stop()
    assert (a.cache / "rules.json").exists()
    (a.cache / "policy.json").write_bytes(b"\x00garbage{{{ not a policy\n" * 40)
    a.start()
    st = a.wait_policy()
    assert f"cached policy {a.cache}/policy.json refused, not used" in a.log(), a.log()
    assert st["policy"]["serial"] == org.v1_doc["serial"] and st["policy"]["from_cache"] is False
    assert st["refresh"]["last_result"] == "new"
    # the garbage is replaced by the good document
    assert json.loads((a.cache / "policy.json").read_text())["serial"] == org.v1_doc["serial"]

    # corrupt again, and no server: the rule skeleton keeps the rules in force
    a.stop()
    (a.cache / "policy.json").write_bytes(flip((a.cache / "policy.json").read_bytes()))
    a.write_config(policy_url=f"https://127.0.0.1:{free_port()}/")
    a.start()
    st = a.wait_attempt()
    assert "refused, not used" in a.log() and "rule skeleton" in a.log(), a.log()
    assert st["policy"] is None and st["state"] == "expired" and st["keys"] == 0
    assert rule_assets(st) == ["treasury"]
    assert st["refresh"]["last_result"] == "error"
    assert "rules" in st["reason"] and str(org.v1_doc["serial"]) in st["reason"], st["reason"]
    p = a.oc("which", org.data / "vault" / "x")
    assert p.returncode == 0 and "treasury" in p.out and "key held: no" in p.out, p.out
    # an unlock now waits for a policy ...
    p = a.unlock()
    assert p.returncode == 0 and "until a policy arrives" in p.out, p.out
    st = a.status()
    assert st["locked"] is False and st["keys"] == 0
    # ... which arrives once the server is back (SIGHUP applies [server] at once)
    a.write_config(policy_url=url)
    a.signal(signal.SIGHUP)
    st = a.wait_status(lambda s: s["state"] == "ready", timeout=10, what="the pending unlock")
    assert st["keys"] == 1 and st["policy"]["serial"] == org.v1_doc["serial"]

    # neither cache nor network: no policy, no rules
    a.stop()
    a.write_config(policy_url=f"https://127.0.0.1:{free_port()}/")
    for f in a.cache.iterdir():
        if f.is_dir():                  # the rewrap journal's folder (empty)
            f.rmdir()
        else:
            f.unlink()
    a.start()
    st = a.wait_attempt()
    assert st["state"] == "no-policy" and st["policy"] is None and st["rules"] == []
    assert "no policy" in st["reason"]
    p = a.oc("which", org.data / "vault" / "x")
    assert p.returncode == 1 and "no policy" in p.err, p.err


def test_file_source(org, agent, tmp_path):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    url = f"file://{pub}/"
    a = agent(url).start()
    st = a.wait_policy()
    assert st["policy"]["source"] == url + "alice.json"
    assert st["policy"]["serial"] == org.v1_doc["serial"]
    assert a.unlock().returncode == 0
    p = a.refresh()
    assert p.returncode == 0 and "(unchanged)" in p.out, p.out + p.err
    serve(org.v2, pub)
    p = a.refresh()
    assert p.returncode == 0 and p.out.strip() == f"policy serial {org.v2_doc['serial']} (new)"
    st = a.status()
    assert st["state"] == "ready" and st["keys"] == 2
    (pub / "alice.json").unlink()
    p = a.refresh()
    assert p.returncode == 1 and f"{url}alice.json" in p.err, p.err
    assert a.status()["policy"]["serial"] == org.v2_doc["serial"]


# --- unlocking ------------------------------------------------------------------------------

def test_wrong_passphrase_backs_off_and_persists(web, www, org, agent, tmp_path):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("Wr0ng-Passphrase!guess\n")
    p = a.unlock(wrong)
    assert p.returncode == 1, p.out
    st = a.status()
    assert st["unlock_failures"] == 1 and st["state"] == "locked" and st["keys"] == 0
    a.wait_status(lambda s: s["unlock_wait_s"] == 0, timeout=3, what="the 1 s wait")
    p = a.unlock(wrong)                          # the second failure: 2 s
    assert p.returncode == 1 and "wait 2 s" in p.err, p.err
    st = a.status()
    assert st["unlock_failures"] == 2 and st["unlock_wait_s"] > 0
    t0 = time.time()
    p = a.unlock()                               # even the right one waits
    assert p.returncode == 1 and "try again in" in p.err, p.err
    assert time.time() - t0 < 1                  # refused before opening the keystore
    assert a.status()["keys"] == 0
    p = a.oc("status")
    assert "unlock:   wait" in p.out and "2 failed unlocks" in p.out, p.out
    # the count survives a restart (state.json)
    a.restart()
    st = a.wait_policy()
    assert st["unlock_failures"] == 2
    a.wait_status(lambda s: s["unlock_wait_s"] == 0, timeout=4, what="the 2 s wait")
    p = a.unlock()
    assert p.returncode == 0 and "unlocked: 1 key\n" in p.out, p.err
    st = a.status()
    assert st["state"] == "ready" and st["unlock_failures"] == 0 and st["unlock_wait_s"] == 0


def test_autolock(org, agent, tmp_path):
    pub = tmp_path / "pub"
    serve(org.vauto, pub)                        # autolock_idle = 2s
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    p = a.unlock()
    assert p.returncode == 0 and "unlocked: 1 key\n" in p.out
    t0 = time.time()
    st = a.wait_status(lambda s: s["locked"], timeout=6, what="autolock")
    assert time.time() - t0 >= 0.5
    assert st["state"] == "locked" and st["keys"] == 0
    assert "autolock after 2 s" in a.log()


# --- the service: signals, lock file, file modes --------------------------------------------

def wait_log(a, text, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in a.log():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the log within {timeout} s:\n{a.log()}")


def test_sighup_sigterm_and_one_agent_per_runtime_dir(org, agent, tmp_path, build):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    assert "debug:" not in a.log()
    # a second agent on the same runtime_dir refuses to start
    p = subprocess.run([str(build / "overcryptd"), "--foreground", "--config", str(a.config)],
                       capture_output=True, timeout=20, env={**os.environ, **a.env})
    err = p.stderr.decode()
    assert sanitizer_report(err) is None, err
    assert p.returncode == 1, err
    assert f"another overcryptd is running (pid {a.proc.pid}" in err, err
    assert a.raw_status()["ok"] is True and a.sock.is_socket()
    # SIGHUP: the log level applies at once
    a.write_config(log_level="debug")
    a.signal(signal.SIGHUP)
    wait_log(a, "SIGHUP")
    wait_log(a, "overcryptd: debug:")
    # a config with an error is reported and the running one stays
    good = a.config.read_text()
    a.config.write_text(good + "[nonsense]\nfoo = bar\n")
    a.signal(signal.SIGHUP)
    wait_log(a, "the running one stays")
    assert f"{a.config}:" in a.log()            # file:line of the problem
    assert a.raw_status()["ok"] is True
    a.config.write_text(good)
    # SIGTERM: exit 0, the socket is gone
    a.signal(signal.SIGTERM)
    assert a.proc.wait(timeout=10) == 0
    assert not a.sock.exists()
    assert "stopped" in a.log()
    a.stop()                                    # checks the log for sanitizer reports
    p = a.oc("status")
    assert p.returncode == 1 and p.err


def test_file_modes(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    mode = lambda p: stat.S_IMODE(os.lstat(p).st_mode)   # noqa: E731
    assert mode(a.cache) == 0o700
    names = sorted(f.name for f in a.cache.iterdir() if not f.is_dir())
    assert names == ["policy.json", "policy.json.minisig", "rules.json", "state.json"], names
    for f in names:
        assert mode(a.cache / f) == 0o600, f
    # the overlays' rewrap journal (docs/overlay.md): private, empty
    assert sorted(f.name for f in a.cache.iterdir() if f.is_dir()) == ["journal"]
    assert mode(a.cache / "journal") == 0o700 and list((a.cache / "journal").iterdir()) == []
    assert mode(a.run_dir) == 0o700
    assert stat.S_ISSOCK(os.lstat(a.sock).st_mode) and mode(a.sock) == 0o600
    assert mode(a.run_dir / "overcryptd.lock") == 0o600
    assert (a.run_dir / "overcryptd.lock").read_text().strip() == str(a.proc.pid)
    # nothing secret on disk: no identity in the cache
    for f in names:
        assert b"AGE-SECRET-KEY" not in (a.cache / f).read_bytes()
    assert "AGE-SECRET-KEY" not in a.log()
    # SIGINT stops it cleanly too
    a.signal(signal.SIGINT)
    a.proc.wait(timeout=10)
    a.stop()                                    # exit 0, no sanitizer report
    assert not a.sock.exists()


# --- the control protocol, raw --------------------------------------------------------------

def test_malformed_control_requests(org, agent, tmp_path):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    sock = a.sock
    # a client that sends nothing is answered after about 5 s; meanwhile others are served
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.settimeout(15)
    silent.connect(str(sock))
    t0 = time.time()

    def bad(data, code="invalid", words=(), **kw):
        r, raw = ctl(sock, data, **kw)
        assert r is not None and raw.endswith(b"\n"), (data[:80], raw)
        assert r["ok"] is False and r["code"] == code, (data[:80], r)
        assert isinstance(r["error"], str) and r["error"], r
        for w in words:
            assert w in r["error"], (w, r)
        assert a.raw_status()["ok"] is True     # and the agent goes on
        return r

    bad(b"hello world\n", words=["JSON object"])
    bad(b"\xff\xfe\x00\x01\n", words=["JSON object"])
    bad(b"[1, 2]\n", words=["JSON object"])
    bad(b"42\n", words=["JSON object"])
    bad(b'"status"\n', words=["JSON object"])
    bad(b"null\n", words=["JSON object"])
    bad(b"\n", words=["JSON object"])
    bad(b'{"x": 1}\n', words=["cmd"])
    bad(b'{"cmd": 5}\n', words=["cmd"])
    bad(b'{"cmd": null}\n', words=["cmd"])
    bad(b'{"cmd": "frobnicate"}\n', words=["unknown command"])
    bad(b'{"cmd": "status", "user": 5}\n', words=["user"])
    bad(b'{"cmd": "status", "user": "bob"}\n', code="denied")
    bad(b'{"cmd": "which"}\n', words=["path"])
    bad(b'{"cmd": "which", "path": "relative/x"}\n', words=["absolute"])
    bad(b'{"cmd": "unlock"}\n', words=["identity"])
    bad(b'{"cmd": "unlock", "identity": 7}\n', words=["identity"])
    bad(b'{"cmd": "unlock", "identity": "AGE-SECRET-KEY-1NOTAKEY"}\n', code="refused")
    bad(b'{"cmd": "status"', shut=True, words=["newline"])        # EOF before the newline
    # the length limit: 65536 bytes with the newline are taken, one more is not
    pad = b'{"cmd":"status","pad":"' + b"a" * (65536 - 26) + b'"}\n'
    assert len(pad) == 65536
    r, raw = ctl(sock, pad)
    assert r is not None and r["ok"] is True, raw[:200]
    pad = pad[:-3] + b'a"}\n'
    bad(pad, words=["longer than 65536"])
    bad(b'{"cmd":"status","pad":"' + b"a" * 70000 + b'"}\n', words=["longer than 65536"])
    # two requests on one connection: only the first is answered
    r, raw = ctl(sock, b'{"cmd":"status"}\n{"cmd":"lock"}\n')
    assert r is not None and r["ok"] is True and raw.count(b"\n") == 1

    raw = b""
    while not raw.endswith(b"\n"):
        b = silent.recv(4096)
        if not b:
            break
        raw += b
    took = time.time() - t0
    silent.close()
    r = json.loads(raw)
    assert r["ok"] is False and r["code"] == "invalid" and "5000 ms" in r["error"], r
    assert 4 <= took <= 8, took
    assert a.raw_status()["ok"] is True


def test_many_connections_at_once(org, agent, tmp_path):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    held = []
    try:
        for _ in range(70):                     # more than the agent takes (64)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            held.append(s)
            s.connect(str(a.sock))      # blocking: waits while the backlog is full
        time.sleep(0.3)
        # the ones over the limit are told so
        refused = 0
        for s in held:
            s.setblocking(False)
            try:
                b = s.recv(4096)
            except BlockingIOError:
                continue
            if b:
                r = json.loads(b)
                assert r["ok"] is False and "too many" in r["error"], r
                refused += 1
        assert refused >= 1
    finally:
        for s in held:
            s.close()
    # the agent serves again once they are gone
    st = a.wait_status(lambda s: True, timeout=5)
    assert st["ok"] is True


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another uid")
def test_control_socket_refuses_another_uid(org, agent, tmp_path):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    # open the way through the file modes, so that only SO_PEERCRED stands: a
    # hard link of the socket in a folder anyone may enter
    way = pathlib.Path(tempfile.mkdtemp(prefix="ovc-sock-", dir="/tmp"))
    os.chmod(way, 0o755)
    os.chmod(a.sock, 0o666)
    os.link(a.sock, way / "control")
    code = ("import socket,sys,os;os.setgroups([]);os.setgid(65534);os.setuid(65534);"
            "s=socket.socket(socket.AF_UNIX);s.settimeout(10);s.connect(sys.argv[1]);"
            "d=b''\n"
            "try: s.sendall(b'{\"cmd\":\"status\"}\\n')\n"
            "except OSError: pass\n"   # the agent may have answered and closed already
            "while not d.endswith(b'\\n'):\n"
            "    b=s.recv(4096)\n"
            "    if not b: break\n"
            "    d+=b\n"
            "sys.stdout.write(d.decode())")
    try:
        p = subprocess.run(["/usr/bin/python3", "-c", code, str(way / "control")],
                           capture_output=True, timeout=20)
    finally:
        shutil.rmtree(way)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["ok"] is False and r["code"] == "denied", r
    assert "alice" not in p.stdout.decode()     # nothing of the status leaks
    assert "connection from uid 65534 refused" in a.log()
    assert a.raw_status()["ok"] is True


def test_valid_cache_applied_at_start_without_network(org, agent, nginx):
    n = nginx()
    serve(org.v1, n.www / "p")
    a = agent(n.url + "/p/", ca_file=n.ca).start()
    first = a.wait_policy()
    a.stop()
    n.stop()
    a.start()
    st = a.raw_status()      # applied before the socket opened: no waiting
    assert st["policy"] is not None and st["policy"]["from_cache"] is True
    assert st["policy"]["serial"] == org.v1_doc["serial"] and st["state"] == "locked"
    assert st["refresh"]["last_success"] == first["refresh"]["last_success"]
    assert "cached policy serial" in a.log()
    p = a.unlock()
    assert p.returncode == 0 and "unlocked: 1 key\n" in p.out, p.err
    st = a.wait_attempt()
    assert st["refresh"]["last_result"] == "error" and st["state"] == "ready"


def test_identity_that_does_not_open_the_keys(web, www, org, agent):
    folder, url = www
    serve(org.v1, folder)
    a = agent(url, ca_file=web.ca).start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    bob = next(line for line in (org.d / "bob.id").read_text().splitlines()
               if line.startswith("AGE-SECRET-KEY-1"))
    r = request(a.sock, {"cmd": "unlock", "identity": bob})
    assert r["ok"] is False and r["code"] == "nokey" and r["wait_s"] >= 1, r
    assert "AGE-SECRET-KEY" not in json.dumps(r)
    st = a.status()
    assert st["unlock_failures"] == 1
    assert st["state"] == "ready" and st["keys"] == 1      # alice's keys are kept
    assert "AGE-SECRET-KEY" not in a.log()


def test_sigterm_during_a_hanging_fetch(org, agent, badserver, tls):
    s = badserver("hang")
    a = agent(s.url + "/", ca_file=tls / "ca.pem").start()   # timeout: the default 60 s
    waiting = subprocess.Popen([str(a.build / "overcrypt"), "--config", str(a.config), "refresh"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, **a.env})
    time.sleep(0.5)
    t0 = time.time()
    a.signal(signal.SIGTERM)
    a.proc.wait(timeout=10)
    assert time.time() - t0 < 3, "SIGTERM waited for the fetch"
    a.stop()        # exit status 0, no sanitizer report (a refresh was waiting)
    _, err = waiting.communicate(timeout=10)
    assert waiting.returncode == 1 and err, err
    assert not a.sock.exists()


def test_daemon_mode_returns_once_the_socket_is_open(org, agent, tmp_path, build):
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/")
    logf = open(tmp_path / "daemon.log", "wb")
    p = subprocess.run([str(build / "overcryptd"), "--config", str(a.config)],
                       stdout=logf, stderr=logf, timeout=20, env={**os.environ, **a.env})
    assert p.returncode == 0
    pid = int((a.run_dir / "overcryptd.lock").read_text())
    try:
        assert a.raw_status()["ok"] is True      # at once, no polling
        # a second daemon: the lock is held, and its status says so
        p = subprocess.run([str(build / "overcryptd"), "--config", str(a.config)],
                           stdout=logf, stderr=logf, timeout=20,
                           env={**os.environ, **a.env})
        assert p.returncode == 1
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
        logf.close()
    assert not os.path.exists(f"/proc/{pid}"), "the daemon did not stop"
    log = (tmp_path / "daemon.log").read_text()
    assert sanitizer_report(log) is None, log
    assert "another overcryptd is running" in log and "stopped" in log, log


def test_config_errors(org, agent, tmp_path, build):
    a = agent("file:///nowhere/")

    def start():
        return subprocess.run([str(build / "overcryptd"), "--foreground", "--config",
                               str(a.config)], capture_output=True, timeout=20,
                              env={**os.environ, **a.env})
    good = a.config.read_text()
    a.config.write_text(good.replace("[log]", "[log]\ncolour = blue"))
    p = start()
    err = p.stderr.decode()
    assert p.returncode == 2 and f"{a.config}:" in err and "colour" in err, err
    a.config.write_text(good.replace(str(org.pub), str(tmp_path / "missing.pub")))
    p = start()
    err = p.stderr.decode()
    assert p.returncode == 2 and "missing.pub" in err, err
    a.config.write_text(good)
    a.cache.mkdir(parents=True)
    os.chmod(a.cache, 0o777)
    p = start()
    err = p.stderr.decode()
    assert p.returncode == 1 and "writable by others" in err, err
    for p in (p,):
        assert sanitizer_report(p.stderr.decode()) is None


def test_valid_until_expires_even_when_the_server_answers_304(org, agent, tmp_path):
    pub = org.publish(tmp_path / "valid", store=org.store_valid)   # policy_validity = 6s
    doc = json.loads((pub / "alice.json").read_text())
    assert ts(doc["valid_until"]) - ts(doc["issued_at"]) == 6
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    assert a.unlock().returncode == 0
    st = a.status()
    assert st["state"] == "ready" and st["expires_at"] == doc["valid_until"]
    st = a.wait_status(lambda s: s["state"] == "expired", timeout=10, what="valid_until")
    assert st["keys"] == 0 and "valid_until" in st["reason"], st["reason"]
    # the same document again (unchanged) does not bring the keys back
    p = a.refresh()
    assert p.returncode == 0 and "(unchanged)" in p.out, p.out + p.err
    st = a.status()
    assert st["state"] == "expired" and st["keys"] == 0
    assert rule_assets(st) == ["treasury"]


def test_replies_are_utf8_json(org, agent, tmp_path):
    """Every reply is a JSON line in UTF-8 (docs/control-protocol.md), even
    when the agent quotes a bad request back."""
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    a = agent(f"file://{pub}/").start()
    a.wait_policy()
    for req in (b'{"cmd":"a' + "\u00e9".encode() * 40 + b'"}\n',   # valid UTF-8, cut at 64 bytes
                b'{"cmd":"\xff\xfe"}\n'):                            # not UTF-8
        r, raw = ctl(a.sock, req)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            pytest.fail(f"reply to {req[:30]!r}... is not UTF-8 ({e}): {raw!r}")
        assert r is not None and r["ok"] is False and r["code"] == "invalid", raw


# --- passwd --------------------------------------------------------------------------

def test_passwd_changes_the_keystore_passphrase(org, agent, tmp_path):
    """`overcrypt passwd`: a wrong old passphrase and a weak new one change
    nothing; a good change makes the new passphrase unlock and the old one
    fail; the identity (and so the keys) stays the same."""
    pub = tmp_path / "pub"
    serve(org.v1, pub)
    ks = tmp_path / "alice.ks"
    shutil.copy(org.alice_ks, ks)
    before = ks.read_bytes()
    a = agent(f"file://{pub}/", keystore=ks).start()
    a.wait_policy()
    wrong, weak, new = tmp_path / "wrong", tmp_path / "weak", tmp_path / "new"
    wrong.write_text("Not-The-Passphrase-42!\n")
    weak.write_text("password\n")
    new.write_text("An0ther-Keystore#passphrase\n")

    p = a.oc("passwd", "--passphrase-file", wrong, "--new-passphrase-file", new)
    assert p.returncode == 1 and "wrong passphrase" in p.err, p.err
    assert ks.read_bytes() == before
    p = a.oc("passwd", "--passphrase-file", org.user_pw, "--new-passphrase-file", weak)
    assert p.returncode == 1 and "new passphrase" in p.err, p.err
    assert ks.read_bytes() == before

    p = a.oc("passwd", "--passphrase-file", org.user_pw, "--new-passphrase-file", new)
    assert p.returncode == 0, p.err
    assert ks.read_bytes() != before
    assert stat.S_IMODE(ks.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".alice.ks*")), "a temporary file was left behind"

    p = a.unlock(org.user_pw)                 # the old passphrase no longer opens it
    assert p.returncode == 1, p.out
    time.sleep(1.2)                           # the back-off of that failure
    p = a.unlock(new)
    assert p.returncode == 0 and "unlocked: 1 key" in p.out, p.err
    assert a.status()["state"] == "ready"
