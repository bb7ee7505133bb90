"""The admin plane over TLS (issue 18; docs/operations.md "Admin plane
security"): admin.tls serves /healthz, /metrics and the POST routes over
TLS 1.3 with the node's certificate (ALPN h2 and http/1.1), a plaintext
client gets nothing; a non-loopback admin address needs admin.tls and a
token; admin.client_ca_file makes it mutual TLS; a reload picks up a new
certificate."""
import http.client
import os
import shutil
import socket
import ssl

import pytest

from conftest import CURL, SLOW, free_ports, run_cli, run_tool

TOKEN = "admin-tls-token-0123456789abcdef"


def ctx(pki, client=None):
    c = ssl.create_default_context(cafile=pki.path("ca.pem"))
    if client:
        c.load_cert_chain(pki.path(client + ".pem"), pki.path(client + ".key"))
    return c


def https(n, method, path, pki, client=None, headers=None, host="127.0.0.1"):
    c = http.client.HTTPSConnection(host, n.admin_port, context=ctx(pki, client),
                                    timeout=10 * SLOW)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    ver = c.sock.version()
    c.close()
    return r.status, body, ver


def tls_node(node_factory, pki, admin=None, **kw):
    cfg = pki.tls_config()
    cfg["admin"] = dict({"tls": True}, **(admin or {}))
    return node_factory(cfg, **kw)


def wait_ready_tls(n, pki):
    import time
    deadline = time.monotonic() + 30 * SLOW
    while time.monotonic() < deadline:
        try:
            if https(n, "GET", "/readyz", pki)[0] == 200:
                return
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass
        time.sleep(0.05)
    raise AssertionError("admin plane not ready over TLS:\n" + n.log()[-3000:])


def start(n, pki):
    n.spawn()
    wait_ready_tls(n, pki)
    return n


def test_admin_over_tls13_and_nothing_in_plaintext(node_factory, pki):
    n = start(tls_node(node_factory, pki, start=False), pki)
    status, body, ver = https(n, "GET", "/metrics", pki)
    assert status == 200 and ver == "TLSv1.3" and b"# TYPE" in body, (status, ver)
    status, body, _ = https(n, "GET", "/healthz", pki)
    assert status == 200
    # plaintext HTTP gets no answer
    s = socket.create_connection(("127.0.0.1", n.admin_port), timeout=5 * SLOW)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(5 * SLOW)
    try:
        got = s.recv(4096)
    except (ConnectionResetError, socket.timeout):
        got = b""
    s.close()
    assert not got.startswith(b"HTTP/1.1 200"), got
    # mutating calls from loopback without a token still work as before
    status, _, _ = https(n, "POST", "/api/v1/reload", pki)
    assert status == 202


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_admin_tls_offers_h2(node_factory, pki):
    n = start(tls_node(node_factory, pki, start=False), pki)
    p = run_tool([CURL, "-sS", "--http2", "--cacert", pki.path("ca.pem"), "-o", "/dev/null",
                  "-w", "%{http_version} %{http_code}",
                  "https://localhost:%d/readyz" % n.admin_port])
    assert p.stdout == b"2 200", p


def test_non_loopback_admin_needs_tls_and_token(node_factory, pki, tmp_dir):
    a, g = free_ports(2)
    base = ["run", "--http-addr", "0.0.0.0:%d" % a, "--gateway-addr", "127.0.0.1:%d" % g,
            "--data-dir", os.path.join(tmp_dir, "d")]
    p = run_cli(base, env={"RON_ADMIN_TOKEN": TOKEN}, timeout=10 * SLOW)
    assert p.returncode == 2, p
    assert "admin.addr: non-loopback admin address requires admin.tls" in p.stderr, p.stderr
    assert TOKEN not in p.stderr
    p = run_cli(base, env={"RON_ADMIN_TLS": "true", "RON_TLS_CERT": pki.path("server.pem"),
                           "RON_TLS_KEY": pki.path("server.key")}, timeout=10 * SLOW)
    assert p.returncode == 2 and "requires an admin token" in p.stderr, p.stderr
    # both: it runs; POSTs need the token, from anywhere
    cfg = pki.tls_config()
    cfg["admin"] = {"tls": True, "addr": "0.0.0.0:%d" % free_ports(1)[0]}
    n = node_factory(cfg, start=False, env={"RON_ADMIN_TOKEN": TOKEN})
    n.admin_port = int(cfg["admin"]["addr"].rsplit(":", 1)[1])
    start(n, pki)
    assert https(n, "POST", "/api/v1/reload", pki)[0] == 401
    assert https(n, "POST", "/api/v1/reload", pki,
                 headers={"Authorization": "Bearer " + TOKEN})[0] == 202
    assert TOKEN not in n.log()


def test_admin_tls_config_errors(tmp_dir, pki):
    import json
    cases = [({"admin": {"tls": True}}, "admin.tls: requires tls.cert_file and tls.key_file"),
             ({"admin": {"client_ca_file": pki.path("ca.pem")}},
              "admin.client_ca_file: requires admin.tls")]
    for cfg, msg in cases:
        path = os.path.join(tmp_dir, "c.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        r = run_cli(["config", "validate", path])
        assert r.returncode == 2 and msg in r.stderr, (cfg, r.stderr)


def test_admin_mtls(node_factory, pki):
    n = tls_node(node_factory, pki, admin={"client_ca_file": pki.path("ca.pem")}, start=False)
    n.spawn()
    import time
    deadline = time.monotonic() + 30 * SLOW
    while True:
        try:
            if https(n, "GET", "/readyz", pki, client="client")[0] == 200:
                break
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass
        assert time.monotonic() < deadline, n.log()[-3000:]
        time.sleep(0.05)
    # no certificate, or one of another CA: refused in the handshake
    for client in (None, "other-client"):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError,
                            http.client.RemoteDisconnected)):
            https(n, "GET", "/healthz", pki, client=client)
    # the gateway (tls.client_ca_file unset) still takes clients without one
    c = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, context=ctx(pki),
                                    timeout=10 * SLOW)
    c.request("GET", "/healthz")
    assert c.getresponse().status == 200
    c.close()


def test_admin_tls_reload_takes_a_new_certificate(node_factory, pki, tmp_dir):
    """SIGHUP: the admin plane answers with the certificate now in the files."""
    import signal
    import time
    cert, key = os.path.join(tmp_dir, "a.pem"), os.path.join(tmp_dir, "a.key")
    shutil.copy(pki.path("server.pem"), cert)
    shutil.copy(pki.path("server.key"), key)
    os.chmod(key, 0o600)
    n = node_factory({"tls": {"cert_file": cert, "key_file": key}, "admin": {"tls": True}},
                     start=False)
    start(n, pki)

    def serial():
        c = ctx(pki)
        with socket.create_connection(("127.0.0.1", n.admin_port), timeout=5 * SLOW) as s:
            with c.wrap_socket(s, server_hostname="localhost") as t:
                return t.getpeercert()["serialNumber"]
    first = serial()
    shutil.copy(pki.path("server2.pem"), cert)
    shutil.copy(pki.path("server2.key"), key)
    n.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10 * SLOW
    while serial() == first:
        assert time.monotonic() < deadline, n.log()[-2000:]
        time.sleep(0.05)
    assert serial() != first
