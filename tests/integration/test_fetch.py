"""daemon/fetch.c against a real nginx on 127.0.0.1, driven through
tests/tools/fetchtool: TLS with a throwaway CA, key pins, conditional GET
(ETag, If-Modified-Since), size caps on plain and chunked bodies, refused
protocols and redirects, file:// sources. No traffic leaves 127.0.0.1."""
import base64
import http.client
import re
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from agentlib import (MIB, NO_PROXY_ENV, Nginx, free_port, make_ca,  # noqa: F401
                      make_leaf, put, spki_pin)
from conftest import BUILD

DOC = b'{"user": "alice", "serial": 1}\n'
SIG = b"untrusted comment: test\nRWQ-not-a-real-signature\n"


# The locations this file needs, inside agentlib.Nginx's server block.
LOCATIONS = """
        # sub_filter drops Content-Length, so nginx sends the body chunked.
        location /chunked/ {{
            sub_filter_types *;
            sub_filter 'no-such-text-in-the-body' 'x';
        }}
        location /mtls/ {{
            if ($ssl_client_verify != SUCCESS) {{ return 403; }}
        }}
        location = /tofile/alice.json {{ return 302 file://{d}/www/pol/alice.json; }}
        location = /moved/alice.json {{ return 302 https://127.0.0.1:{port}/pol/alice.json; }}
        location = /moved/alice.json.minisig {{ return 301 /pol/alice.json.minisig; }}
        location = /loop/alice.json {{ return 302 /loop/alice.json; }}
        location = /err/alice.json {{ return 500; }}
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A real nginx with TLS on a free port of 127.0.0.1, killed at the end
    even when a test fails."""
    if not shutil.which("nginx"):
        pytest.fail("nginx is not installed (make deps)")
    tool = BUILD / "tools" / "fetchtool"
    if not tool.exists():
        pytest.fail(f"{tool} missing: run make first")
    d = tmp_path_factory.mktemp("nginx")
    (d / "tmp").mkdir()
    make_ca(d, "ca")
    make_ca(d, "otherca")
    make_leaf(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth\n")
    make_leaf(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    www = d / "www"
    old = int(time.time()) - 3600
    for folder in ("pol", "mtls", "moved", "chunked"):
        put(www, f"{folder}/alice.json", DOC, old)
        put(www, f"{folder}/alice.json.minisig", SIG, old)
    put(www, "big/alice.json", b"x" * (9 * MIB))
    put(www, "big/alice.json.minisig", SIG)
    put(www, "chunked/big/alice.json", b"x" * (9 * MIB))
    put(www, "chunked/big/alice.json.minisig", SIG)
    put(www, "bigsig/alice.json", DOC)
    put(www, "bigsig/alice.json.minisig", b"s" * (65 * 1024))
    put(www, "nosig/alice.json", DOC)
    put(www, "err/alice.json.minisig", SIG)
    port = free_port()
    web = Nginx(d, d, www, LOCATIONS.format(d=d, port=port), port)
    try:
        web.start()
        yield {"d": d, "www": www, "port": port, "old": old,
               "url": web.url, "ca": web.ca, "tool": tool, "access": web.access}
    finally:
        web.stop()


def fetch(srv, base, user="alice", *args, ca=True, timeout=60):
    argv = [str(srv["tool"]), base, user]
    if ca:
        argv += ["--ca", srv["ca"]]
    argv += [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout,
                       env=NO_PROXY_ENV)
    err = p.stderr.decode(errors="replace")
    # under SANITIZE=1 a report also exits 1: never let it pass as a refusal
    assert "Sanitizer" not in err and "runtime error:" not in err, err
    return p.returncode, p.stdout.decode(), err


NEW = re.compile(r"^new (\d+) (\d+) etag=(\S*) modified=(\d+)$")


def parse_new(out):
    m = NEW.match(out.strip())
    assert m, out
    return int(m[1]), int(m[2]), m[3], int(m[4])


def statuses(srv, path):
    """HTTP statuses nginx logged for GETs of `path`, in order."""
    found = []
    for line in srv["access"].read_text().splitlines():
        m = re.search(r'"GET (\S+) HTTP/[\d.]+" (\d{3})', line)
        if m and m[1] == path:
            found.append(int(m[2]))
    return found


# --- https: fetch and conditional GET -----------------------------------------------

def test_fetch_new_over_https(srv, tmp_path):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--out", tmp_path)
    assert rc == 0, err
    n, sn, etag, mod = parse_new(out)
    assert (n, sn) == (len(DOC), len(SIG))
    assert etag.startswith('"') and mod == srv["old"]
    assert (tmp_path / "doc").read_bytes() == DOC
    assert (tmp_path / "sig").read_bytes() == SIG
    # no trailing slash on the base is the same folder
    rc, out, err = fetch(srv, srv["url"] + "/pol", "alice")
    assert rc == 0 and parse_new(out)[2] == etag, err


def test_unchanged_by_etag_is_a_304(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/")
    etag = parse_new(out)[2]
    before = statuses(srv, "/pol/alice.json.minisig")
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--etag", etag)
    assert rc == 0, err
    assert out.strip() == f"unchanged etag={etag} modified={srv['old']}"
    assert statuses(srv, "/pol/alice.json")[-1] == 304
    # the signature is not asked for after a 304
    assert statuses(srv, "/pol/alice.json.minisig") == before


def test_unchanged_by_if_modified_since(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice",
                         "--since", srv["old"])
    assert rc == 0, err
    assert out.startswith("unchanged ") and f"modified={srv['old']}" in out
    assert statuses(srv, "/pol/alice.json")[-1] == 304


def test_changed_document_is_fetched_again(srv):
    www = srv["www"]
    put(www, "chg/alice.json", DOC, srv["old"])
    put(www, "chg/alice.json.minisig", SIG, srv["old"])
    rc, out, err = fetch(srv, srv["url"] + "/chg/")
    _, _, etag, mod = parse_new(out)
    doc2 = DOC.replace(b"1", b"22")
    put(www, "chg/alice.json", doc2, srv["old"] + 60)
    rc, out, err = fetch(srv, srv["url"] + "/chg/", "alice",
                         "--etag", etag, "--since", mod)
    assert rc == 0, err
    n, sn, etag2, mod2 = parse_new(out)
    assert (n, sn) == (len(doc2), len(SIG))
    assert etag2 != etag and mod2 == srv["old"] + 60
    assert statuses(srv, "/chg/alice.json")[-1] == 200
    # and once fetched, it is unchanged again
    rc, out, err = fetch(srv, srv["url"] + "/chg/", "alice", "--etag", etag2)
    assert rc == 0 and out.startswith("unchanged"), err


def test_redirect_within_https_is_followed(srv):
    rc, out, err = fetch(srv, srv["url"] + "/moved/")
    assert rc == 0, err
    assert parse_new(out)[:2] == (len(DOC), len(SIG))


# --- TLS: CA, pin, client certificate ------------------------------------------------

def test_wrong_ca_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice",
                         "--ca", srv["d"] / "otherca.pem", ca=False)
    assert rc == 1 and out == ""
    assert srv["url"] + "/pol/alice.json" in err
    assert "certificate" in err.lower()


def test_system_store_does_not_know_the_test_ca(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", ca=False)
    assert rc == 1 and "certificate" in err.lower()


def test_matching_pin_works(srv):
    pin = spki_pin(srv["d"] / "server.pem")
    for p in (pin, "sha256//" + pin, f"sha256//{'A' * 43}=;{pin}"):
        rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--pin", p)
        assert rc == 0, err
        assert out.startswith("new ")


def test_wrong_pin_refused(srv):
    wrong = base64.b64encode(bytes(32)).decode()
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--pin", wrong)
    assert rc == 1 and out == ""
    assert "public key" in err.lower() or "pinned" in err.lower(), err
    # a pin does not replace the CA check
    pin = spki_pin(srv["d"] / "server.pem")
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--pin", pin,
                         "--ca", srv["d"] / "otherca.pem", ca=False)
    assert rc == 1


def test_malformed_pin_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "alice", "--pin", "abc")
    assert rc == 1 and "pin" in err


def test_client_certificate(srv):
    d = srv["d"]
    rc, out, err = fetch(srv, srv["url"] + "/mtls/")
    assert rc == 1 and "403" in err
    rc, out, err = fetch(srv, srv["url"] + "/mtls/", "alice",
                         "--cert", d / "client.pem", "--key", d / "client.key")
    assert rc == 0, err
    assert out.startswith("new ")


# --- statuses and errors -----------------------------------------------------------

def test_404_is_named(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", "nobody")
    assert rc == 1 and out == ""
    assert f"{srv['url']}/pol/nobody.json: HTTP status 404" in err


def test_missing_signature_is_named(srv):
    rc, out, err = fetch(srv, srv["url"] + "/nosig/")
    assert rc == 1
    assert f"{srv['url']}/nosig/alice.json.minisig: HTTP status 404" in err


def test_500_is_named(srv):
    rc, out, err = fetch(srv, srv["url"] + "/err/")
    assert rc == 1 and f"{srv['url']}/err/alice.json: HTTP status 500" in err


def test_redirect_loop_is_limited(srv):
    rc, out, err = fetch(srv, srv["url"] + "/loop/")
    assert rc == 1 and "redirect" in err.lower()
    assert 1 <= len(statuses(srv, "/loop/alice.json")) <= 4


def test_hanging_server_times_out(srv):
    with socket.socket() as s:   # accepts TCP, never speaks TLS
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        t0 = time.time()
        rc, out, err = fetch(srv, f"https://127.0.0.1:{s.getsockname()[1]}/",
                             "alice", "--timeout", 1500)
        assert rc == 1 and "timed out" in err.lower(), err
        assert time.time() - t0 < 10


# --- size caps ----------------------------------------------------------------------

def test_body_over_cap_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/big/")
    assert rc == 1 and out == ""
    assert "/big/alice.json: larger than 8388608 bytes" in err


def nginx_headers(srv, path):
    ctx = ssl.create_default_context(cafile=srv["ca"])
    c = http.client.HTTPSConnection("127.0.0.1", srv["port"], context=ctx,
                                    timeout=30)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def test_chunked_body_over_cap_refused(srv):
    # nginx really sends this one chunked, with no length announced ...
    status, h = nginx_headers(srv, "/chunked/big/alice.json")
    assert status == 200
    assert h.get("transfer-encoding") == "chunked" and "content-length" not in h
    # ... so only the write callback can stop it
    rc, out, err = fetch(srv, srv["url"] + "/chunked/big/")
    assert rc == 1 and out == ""
    assert "/chunked/big/alice.json: larger than 8388608 bytes" in err


def test_chunked_body_under_cap_works(srv):
    status, h = nginx_headers(srv, "/chunked/alice.json")
    assert h.get("transfer-encoding") == "chunked"
    rc, out, err = fetch(srv, srv["url"] + "/chunked/")
    assert rc == 0, err
    assert parse_new(out)[:2] == (len(DOC), len(SIG))


def test_signature_over_its_cap_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/bigsig/")
    assert rc == 1
    assert "/bigsig/alice.json.minisig: larger than 65536 bytes" in err


# --- refused URLs and protocols ------------------------------------------------------

def test_redirect_to_file_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/tofile/")
    assert rc == 1 and out == ""
    assert "/tofile/alice.json" in err
    assert "file" in err.lower() and "not supported" in err.lower(), err
    assert statuses(srv, "/tofile/alice.json") != []


def test_plain_http_refused(srv):
    rc, out, err = fetch(srv, f"http://127.0.0.1:{srv['port']}/pol/")
    assert rc == 1 and "only https:// and file://" in err
    assert not any(f"http://127.0.0.1:{srv['port']}" in line
                   for line in srv["access"].read_text().splitlines())


@pytest.mark.parametrize("scheme", ["ftp", "gopher", "scp", "dict"])
def test_other_protocols_refused(srv, scheme):
    rc, out, err = fetch(srv, f"{scheme}://127.0.0.1:{srv['port']}/pol/")
    assert rc == 1 and out == ""


def test_credentials_in_url_refused_and_not_echoed(srv):
    base = f"https://bob:hunter2secret@127.0.0.1:{srv['port']}/pol/"
    rc, out, err = fetch(srv, base)
    assert rc == 1 and "credentials" in err
    assert "hunter2secret" not in err and "hunter2secret" not in out


@pytest.mark.parametrize("user", ["../etc/passwd", "a/b", ".hidden", "a b",
                                  "x%2f", ""])
def test_bad_user_name_refused(srv, user):
    rc, out, err = fetch(srv, srv["url"] + "/pol/", user)
    assert rc == 1 and "user name" in err


def test_query_in_base_refused(srv):
    rc, out, err = fetch(srv, srv["url"] + "/pol/?x=1")
    assert rc == 1 and "query" in err


# --- file:// ------------------------------------------------------------------------

def test_file_base_works_and_judges_by_mtime(tmp_path):
    folder = tmp_path / "pol"
    t = int(time.time()) - 100
    put(folder, "alice.json", DOC, t)
    put(folder, "alice.json.minisig", SIG, t)
    srv = {"tool": BUILD / "tools" / "fetchtool", "ca": ""}
    base = f"file://{folder}/"
    rc, out, err = fetch(srv, base, ca=False)
    assert rc == 0, err
    assert parse_new(out) == (len(DOC), len(SIG), "", t)
    rc, out, err = fetch(srv, base, "alice", "--since", t, ca=False)
    assert rc == 0 and out.strip() == f"unchanged etag= modified={t}", err
    put(folder, "alice.json", DOC + b" ", t + 5)
    rc, out, err = fetch(srv, base, "alice", "--since", t, ca=False)
    assert rc == 0 and parse_new(out) == (len(DOC) + 1, len(SIG), "", t + 5)


def test_file_missing_is_an_error(tmp_path):
    srv = {"tool": BUILD / "tools" / "fetchtool", "ca": ""}
    put(tmp_path, "alice.json", DOC)
    rc, out, err = fetch(srv, f"file://{tmp_path}/", "bob", ca=False)
    assert rc == 1 and f"file://{tmp_path}/bob.json" in err
    rc, out, err = fetch(srv, f"file://{tmp_path}/", "alice", ca=False)
    assert rc == 1 and f"file://{tmp_path}/alice.json.minisig" in err


def test_file_over_cap_refused(tmp_path):
    srv = {"tool": BUILD / "tools" / "fetchtool", "ca": ""}
    put(tmp_path, "alice.json", b"x" * (9 * MIB))
    put(tmp_path, "alice.json.minisig", SIG)
    rc, out, err = fetch(srv, f"file://{tmp_path}", ca=False)
    assert rc == 1 and "larger than 8388608 bytes" in err
