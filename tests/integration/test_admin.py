"""overcrypt-admin driven as an administrator would: init, org.conf, check,
publish, explain, assets, keys, audit; the published files checked with the
stock minisign and age programs."""
import json
import os
import pathlib
import re
import subprocess

import pytest

from conftest import run
import ptyrun

ADMIN_PASS = "Corr3ct-Horse!battery"
EXPORT_PASS = "Exp0rt-Passphrase!long"


def keygen(tmp, name):
    idf = tmp / f"{name}.id"
    p = subprocess.run(["age-keygen", "-o", str(idf)], capture_output=True, check=True)
    rcp = re.search(rb"age1[0-9a-z]+", p.stderr).group(0).decode()
    return idf, rcp


ORG_TAIL = """
[group staff]
members = alice

[group sales]
parents = staff
members = bob

[user alice]
email = alice@corp.local
recipient = {ra}

[user bob]
recipient = {rb}

[asset marketing]
type = shared
path = /srv/mkt/*.*
groups = staff

[asset drop]
type = public
path = /srv/mkt/public/
users = alice

[asset home]
type = private
path = /home/%USERNAME%/Private/
groups = staff
"""


class Store:
    def __init__(self, build, tmp):
        self.build, self.tmp = build, tmp
        self.dir = tmp / "store"
        self.out = tmp / "pub"
        self.pw = tmp / "pw"
        self.pw.write_text(ADMIN_PASS + "\n")
        self.epw = tmp / "epw"
        self.epw.write_text(EXPORT_PASS + "\n")

    def adm(self, *args, **kw):
        return run([self.build / "overcrypt-admin", "--store", self.dir,
                    "--passphrase-file", self.pw, *args], **kw)

    def conf(self):
        return self.dir / "org.conf"

    def policy(self, user):
        return json.loads((self.out / f"{user}.json").read_text())


@pytest.fixture
def store(build, tmp_path):
    s = Store(build, tmp_path)
    p = run([build / "overcrypt-admin", "init", s.dir, "--passphrase-file", s.pw,
             "--admin", "root", "--org", "corp"])
    assert p.returncode == 0, p.stderr
    s.alice_id, ra = keygen(tmp_path, "alice")
    s.bob_id, rb = keygen(tmp_path, "bob")
    with open(s.conf(), "a") as f:
        f.write(ORG_TAIL.format(ra=ra, rb=rb))
    return s


def out(p):
    return p.stdout.decode() + p.stderr.decode()


def publish(s, *extra):
    p = s.adm("publish", "--out", s.out, *extra)
    assert p.returncode == 0, out(p)
    return p


def test_init_makes_a_complete_store(store):
    for f in ["org.conf", "org.pub", "org.key.age", "admin-identity.age", "keys.age",
              "state.json", "audit.log"]:
        assert (store.dir / f).exists(), f
    assert (store.dir / "org.pub").read_text().startswith("untrusted comment: minisign public key")
    for f in ["org.key.age", "admin-identity.age", "keys.age"]:
        assert oct((store.dir / f).stat().st_mode & 0o777) == "0o600", f
    text = store.conf().read_text()
    for section in ["[settings]", "[group", "[user", "[asset", "[admin"]:
        assert section in text
    # a second init into a non-empty folder is refused
    p = run([store.build / "overcrypt-admin", "init", store.dir, "--passphrase-file", store.pw])
    assert p.returncode == 1 and "not empty" in out(p)


def test_weak_admin_passphrase_is_refused(build, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("Short1!\n")
    p = run([build / "overcrypt-admin", "init", tmp_path / "s", "--passphrase-file", pw])
    assert p.returncode == 1 and "16" in out(p)


def test_check_publish_and_stock_minisign_verifies(store):
    p = store.adm("check")
    assert p.returncode == 0, out(p)
    publish(store)
    for u in ["alice", "bob"]:
        doc, sig = store.out / f"{u}.json", store.out / f"{u}.json.minisig"
        assert doc.exists() and sig.exists()
        v = run(["minisign", "-Vq", "-p", store.dir / "org.pub", "-m", doc])
        assert v.returncode == 0, out(v)
        d = store.policy(u)
        assert d["format"] == "overcrypt-policy/1" and d["org"] == "corp" and d["user"] == u
        assert isinstance(d["serial"], int) and d["valid_until"] > d["issued_at"]
        assert d["keys"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")
    # public asset only for its assigned user; bob inherits marketing via sales -> staff
    assert "drop" in [r["asset"] for r in store.policy("alice")["rules"]]
    assert "drop" not in [r["asset"] for r in store.policy("bob")["rules"]]
    assert "marketing" in [r["asset"] for r in store.policy("bob")["rules"]]
    # a private asset: each user their own key
    ka = [r["key_id"] for r in store.policy("alice")["rules"] if r["asset"] == "home"]
    kb = [r["key_id"] for r in store.policy("bob")["rules"] if r["asset"] == "home"]
    assert ka and kb and ka != kb
    # a changed byte: stock minisign refuses it
    doc = store.out / "alice.json"
    data = bytearray(doc.read_bytes())
    data[data.index(b'"org"') + 8] ^= 1
    doc.write_bytes(bytes(data))
    assert run(["minisign", "-Vq", "-p", store.dir / "org.pub", "-m", doc]).returncode != 0


def test_keys_blob_opens_with_the_users_identity(store, build):
    publish(store)
    p = run([build / "tools" / "policytool", "keys", store.out / "alice.json", store.alice_id])
    assert p.returncode == 0, out(p)
    ids = set(p.stdout.decode().split())
    want = {r["key_id"] for r in store.policy("alice")["rules"] if "key_id" in r}
    assert want <= ids
    p = run([build / "tools" / "policytool", "keys", store.out / "alice.json", store.bob_id])
    assert p.returncode == 1


def test_loader_refuses_lower_serial_and_tampering(store, build):
    publish(store)
    tool = build / "tools" / "policytool"
    doc, sig = store.out / "alice.json", store.out / "alice.json.minisig"
    serial = store.policy("alice")["serial"]
    p = run([tool, "verify", store.dir / "org.pub", doc, sig, "--user", "alice", "--org", "corp"])
    assert p.returncode == 0 and f"ok serial {serial}" in out(p), out(p)
    p = run([tool, "verify", store.dir / "org.pub", doc, sig, "--user", "alice", "--org", "corp",
             "--seen-serial", str(serial + 1)])
    assert p.returncode == 1 and "serial" in out(p)
    p = run([tool, "verify", store.dir / "org.pub", doc, sig, "--user", "bob", "--org", "corp"])
    assert p.returncode == 1
    doc.write_bytes(doc.read_bytes().replace(b'"alice"', b'"alicf"', 1))
    p = run([tool, "verify", store.dir / "org.pub", doc, sig, "--user", "alice", "--org", "corp"])
    assert p.returncode == 1 and "signature" in out(p).lower()


def test_unchanged_keeps_files_changed_gets_higher_serial(store, tmp_path):
    publish(store)
    a1 = (store.out / "alice.json").read_bytes()
    st1 = (store.out / "alice.json").stat()
    s1 = store.policy("bob")["serial"]
    p = publish(store)
    assert "0 written" in out(p) and "2 unchanged" in out(p)
    assert (store.out / "alice.json").read_bytes() == a1
    assert (store.out / "alice.json").stat().st_ino == st1.st_ino
    # bob moves out of sales: his policy changes (loses marketing), alice's does not
    text = store.conf().read_text().replace("parents = staff\nmembers = bob", "parents = staff\nmembers =")
    text = text.replace("\n[user bob]", "\n[group other]\nmembers = bob\n\n[user bob]")
    store.conf().write_text(text)
    p = publish(store, "--yes")            # bob joins 'other': a security change
    assert "user 'bob' added to group 'other'" in out(p)
    assert "lost access" in out(p) and "keys rotate" in out(p)
    assert (store.out / "alice.json").read_bytes() == a1
    assert store.policy("bob")["serial"] > s1
    assert "marketing" not in [r["asset"] for r in store.policy("bob")["rules"]]


def test_security_changes_need_confirmation(store, tmp_path):
    publish(store)
    _, rc = keygen(tmp_path, "carol")
    with open(store.conf(), "a") as f:
        f.write(f"\n[user carol]\nrecipient = {rc}\n")
    text = store.conf().read_text().replace("[group staff]\nmembers = alice",
                                            "[group staff]\nmembers = alice, carol")
    store.conf().write_text(text)
    p = store.adm("publish", "--out", store.out)       # no terminal, no --yes
    assert p.returncode == 1
    assert "user 'carol' added" in out(p) and "--yes" in out(p)
    assert not (store.out / "carol.json").exists()
    p = store.adm("publish", "--out", store.out, "--if-due")   # a timer never confirms
    assert p.returncode == 1 and "by hand" in out(p)
    p = publish(store, "--yes")
    assert (store.out / "carol.json").exists()
    p = publish(store, "--if-due")                             # nothing due: nothing written
    assert "0 written" in out(p)
    log = (store.dir / "audit.log").read_text()
    assert "user 'carol' added" in log


def test_removed_user_loses_policy_file(store):
    publish(store)
    text = store.conf().read_text()
    text = re.sub(r"\[user bob\]\nrecipient = age1[0-9a-z]+\n", "", text)
    text = text.replace("members = bob", "members =")
    store.conf().write_text(text)
    p = publish(store)
    assert "1 removed" in out(p)
    assert not (store.out / "bob.json").exists() and not (store.out / "bob.json.minisig").exists()


def test_explain_names_the_rule(store):
    publish(store)
    p = store.adm("explain", "bob", "/srv/mkt/plan.docx")
    assert p.returncode == 0 and "marketing" in out(p), out(p)
    p = store.adm("explain", "alice", "/srv/mkt/public/x.txt")
    assert p.returncode == 0 and "drop" in out(p), out(p)
    p = store.adm("explain", "bob", "/srv/mkt/public/x.txt")
    assert "marketing" in out(p)          # not assigned to drop: the shared rule holds
    p = store.adm("explain", "alice", "/home/alice/Private/cv.odt")
    assert "home" in out(p) and "private" in out(p)
    p = store.adm("explain", "alice", "/tmp/x")
    assert "no rule" in out(p)
    p = store.adm("explain", "nobody", "/tmp/x")
    assert p.returncode == 1


def test_check_errors_name_file_and_line(store):
    with open(store.conf(), "a") as f:
        f.write("\n[user carol]\nemail = carol@corp.local\n\n[asset bad]\ntype = shared\npath = srv/x/\ngroups = nosuch\n")
    lines = store.conf().read_text().splitlines()
    carol = lines.index("[user carol]") + 1
    p = store.adm("check")
    assert p.returncode == 1
    text = out(p)
    assert re.search(rf"org\.conf:{carol}:.*recipient", text), text
    assert re.search(r"org\.conf:\d+:.*(absolute|srv/x)", text), text
    assert re.search(r"org\.conf:\d+:.*nosuch", text), text


def test_asset_delete_and_restore(store):
    publish(store)
    p = store.adm("asset", "delete", "marketing")
    assert p.returncode == 0, out(p)
    publish(store, "--yes")
    assert "marketing" not in [r["asset"] for r in store.policy("alice")["rules"]]
    p = store.adm("asset", "list", "--deleted")
    assert "marketing" in out(p)
    # another asset now takes the path: restore is refused, saying why
    with open(store.conf(), "a") as f:
        f.write("\n[asset marketing2]\ntype = shared\npath = /srv/mkt/*.*\ngroups = staff\n")
    p = store.adm("asset", "restore", "marketing")
    assert p.returncode == 1 and "marketing2" in out(p)


def test_keys_rotate_export_import(store, build, tmp_path):
    publish(store)
    old = [r["key_id"] for r in store.policy("alice")["rules"] if r["asset"] == "marketing"][0]
    p = store.adm("keys", "rotate", "marketing")
    assert p.returncode == 0, out(p)
    publish(store)
    new = [r["key_id"] for r in store.policy("alice")["rules"] if r["asset"] == "marketing"][0]
    assert new != old
    p = run([build / "tools" / "policytool", "keys", store.out / "alice.json", store.alice_id])
    assert {old, new} <= set(p.stdout.decode().split())   # old kept for reading
    p = store.adm("keys", "list")
    assert old in out(p) and "retired" in out(p) and "current" in out(p)
    # export: stock age opens it; overcrypt decrypt uses it
    exp = tmp_path / "export.age"
    p = store.adm("keys", "export", "--out", exp, "--export-passphrase-file", store.epw)
    assert p.returncode == 0, out(p)
    r = ptyrun.run(["age", "-d", str(exp)], answers=[EXPORT_PASS])
    assert r.returncode == 0 and old.encode() in r.stdout
    f = tmp_path / "doc"
    f.write_bytes(b"org data")
    p = run([build / "overcrypt", "encrypt", "--key", exp, "--passphrase-file", store.epw,
             "--key-id", new, f])
    assert p.returncode == 0, out(p)
    p = run([build / "overcrypt", "decrypt", "--key", exp, "--passphrase-file", store.epw,
             "-o", tmp_path / "plain", f])
    assert p.returncode == 0 and (tmp_path / "plain").read_bytes() == b"org data"
    # import: the same keys again add nothing; a conflicting key is refused
    p = store.adm("keys", "import", exp, "--export-passphrase-file", store.epw)
    assert p.returncode == 0 and "0 keys imported" in out(p)
    doc = json.loads(r.stdout)
    doc["keys"][0]["key"] = "A" * 43 + "="
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    p = store.adm("keys", "import", tmp_path / "bad.json")
    assert p.returncode == 1 and "other bytes" in out(p)
    # a weak export passphrase is refused
    (tmp_path / "weak").write_text("weak\n")
    p = store.adm("keys", "export", "--out", tmp_path / "e2", "--export-passphrase-file", tmp_path / "weak")
    assert p.returncode == 1 and not (tmp_path / "e2").exists()


def test_admin_identity_opens_keys_age_with_stock_age(store, tmp_path):
    r = ptyrun.run(["age", "-d", str(store.dir / "admin-identity.age")], answers=[ADMIN_PASS])
    assert r.returncode == 0, r.stderr
    idf = tmp_path / "admin.id"
    idf.write_bytes(r.stdout)
    p = run(["age", "-d", "-i", idf, store.dir / "keys.age"])
    assert p.returncode == 0, out(p)
    assert json.loads(p.stdout)["format"] == "overcrypt-adminkeys/1"


def test_wrong_admin_passphrase(store, tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("Wr0ng-Passphrase!xx\n")
    p = run([store.build / "overcrypt-admin", "--store", store.dir, "--passphrase-file", bad,
             "publish", "--out", store.out])
    assert p.returncode == 1 and "passphrase" in out(p)


def test_audit_log_show_verify_and_signed_head(store):
    publish(store)
    store.adm("asset", "delete", "drop", check=True)
    publish(store, "--yes", "--as", "mallory-admin")
    p = store.adm("audit", "show")
    assert p.returncode == 0 and "publish" in out(p) and "asset delete" in out(p)
    assert "mallory-admin" in out(p)
    p = store.adm("audit", "show", "--action", "asset delete")
    assert "drop" in out(p) and "publish" not in out(p)
    head = store.out / "audit-head.json"
    assert head.exists() and (store.out / "audit-head.json.minisig").exists()
    p = store.adm("audit", "verify", "--head", head)
    assert p.returncode == 0 and "org.conf is the one published last" in out(p), out(p)
    log = store.dir / "audit.log"
    lines = log.read_text().splitlines(keepends=True)
    # an edited line is named
    log.write_text("".join(lines[:1] + [lines[1].replace("publish", "publisH")] + lines[2:]))
    p = store.adm("audit", "verify")
    assert p.returncode == 1 and "audit.log:2" in out(p), out(p)
    # a cut-off tail is caught against the signed head
    log.write_text("".join(lines[:-1]))
    assert store.adm("audit", "verify").returncode == 0
    p = store.adm("audit", "verify", "--head", head)
    assert p.returncode == 1


def test_help_and_usage(build):
    for cmd in ["init", "check", "publish", "explain", "asset", "keys", "audit"]:
        p = run([build / "overcrypt-admin", cmd, "--help"])
        assert p.returncode == 0 and b"Usage" in p.stdout, cmd
    assert run([build / "overcrypt-admin", "frobnicate"]).returncode == 2
    assert run([build / "overcrypt-admin", "publish"]).returncode == 2   # no --out
