"""TLS 1.3 on the gateway listener: policy (versions, suites, groups), mTLS,
key-file mode, certificate pin, handshake failures and deadline, SIGHUP
certificate reload, plaintext on a public address (issue 3)."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import time

import pytest

from conftest import (CURL, OPENSSL, SLOW, b3sum_cid, b3sum_file, free_ports, obj_path,
                      port_listening, raw_connect, recv_all, run_cli, run_tool, wait_until)

REQ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
OK_BODY = b'{"status":"ok","service":"gateway","worker":0}'
ALLOWED_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                  "TLS_CHACHA20_POLY1305_SHA256"]


def ctx_for(pki, client=None, max_version=None):
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    if client:
        ctx.load_cert_chain(pki.path(client + ".pem"), pki.path(client + ".key"))
    if max_version:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = max_version
    return ctx


def https(node, pki, method, path, body=None, headers=None, client=None, timeout=5.0):
    """One request over TLS; returns (status, headers, body, tls version, peer cert)."""
    c = http.client.HTTPSConnection("127.0.0.1", node.gateway_port, timeout=timeout * SLOW,
                                    context=ctx_for(pki, client))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data, c.sock.version(), c.sock.getpeercert()
    finally:
        c.close()


def s_client(port, pki, *args, request=REQ):
    """openssl s_client with an HTTP request on stdin; returns (rc, text output)."""
    argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
            "-CAfile", pki.path("ca.pem"), "-ign_eof"] + list(args)
    p = run_tool(argv, input=request, timeout=15)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


def failures(node):
    return node.metrics().sum("tls_handshake_failures_total")


@pytest.fixture
def tls_node(node_factory, pki):
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    return node_factory(pki.tls_config())


def test_tls13_get_python_and_curl(tls_node, pki, tmp_dir):
    n = tls_node
    status, hdrs, body, version, cert = https(n, pki, "GET", "/healthz")
    assert status == 200 and body == OK_BODY
    assert version == "TLSv1.3"
    assert dict(x[0] for x in cert["subject"])["commonName"] == "localhost"
    # an object over TLS: PUT with python, GET with curl --cacert
    data = os.urandom(200000)
    status, _, body, _, _ = https(n, pki, "POST", "/o", body=data,
                                  headers={"Content-Type": "application/octet-stream"})
    cid = b3sum_cid(data)
    assert status == 201 and body == b'{"cid":"%s"}' % cid.encode(), (status, body)
    if CURL:
        out = os.path.join(tmp_dir, "out")
        p = run_tool([CURL, "-sS", "--cacert", pki.path("ca.pem"), "-o", out, "-w",
                      "%{http_code} %{size_download}",
                      "https://127.0.0.1:%d%s" % (n.gateway_port, obj_path(cid))])
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"200 200000", p.stdout
        with open(out, "rb") as f:
            assert f.read() == data
    # keep-alive over TLS: several requests on one connection
    c = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, timeout=5 * SLOW,
                                    context=ctx_for(pki))
    try:
        for _ in range(3):
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status == 200 and r.read() == OK_BODY
    finally:
        c.close()
    assert failures(n) == 0
    if CURL:
        # curl without the CA: the certificate is not trusted; the client's
        # alert makes it a failed handshake on the server too
        p = run_tool([CURL, "-sS", "https://127.0.0.1:%d/healthz" % n.gateway_port])
        assert p.returncode == 60, (p.returncode, p.stderr)
        wait_until(lambda: failures(n) == 1, 2 * SLOW, what="one failed handshake")


def test_tls12_refused(tls_node, pki):
    n = tls_node
    rc, out = s_client(n.gateway_port, pki, "-tls1_2")
    assert rc != 0, out
    assert "HTTP/1.1 200" not in out
    with pytest.raises(ssl.SSLError):
        https_v12(n, pki)
    wait_until(lambda: failures(n) == 2, 2 * SLOW, what="tls_handshake_failures_total == 2")


def https_v12(n, pki):
    ctx = ctx_for(pki, max_version=ssl.TLSVersion.TLSv1_2)
    with socket.create_connection(("127.0.0.1", n.gateway_port), timeout=5 * SLOW) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(REQ)
            return t.recv(100)


@pytest.mark.parametrize("suite", ["TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256"])
def test_disallowed_suite_refused(tls_node, pki, suite):
    rc, out = s_client(tls_node.gateway_port, pki, "-tls1_3", "-ciphersuites", suite)
    assert rc != 0, out
    assert "HTTP/1.1 200" not in out
    wait_until(lambda: failures(tls_node) == 1, 2 * SLOW, what="one handshake failure")


@pytest.mark.parametrize("suite", ALLOWED_SUITES)
def test_allowed_suite_accepted(tls_node, pki, suite):
    rc, out = s_client(tls_node.gateway_port, pki, "-tls1_3", "-ciphersuites", suite)
    assert rc == 0, out
    assert "Cipher is %s" % suite in out, out
    assert "Verify return code: 0 (ok)" in out
    assert "HTTP/1.1 200" in out and OK_BODY.decode() in out, out


def test_groups_x25519_then_p256(tls_node, pki):
    rc, out = s_client(tls_node.gateway_port, pki)
    assert rc == 0 and "Server Temp Key: X25519" in out, out
    assert "Protocol  : TLSv1.3" in out
    # a client offering only P-256 is served; one offering only P-384 is refused
    rc, out = s_client(tls_node.gateway_port, pki, "-groups", "P-256")
    assert rc == 0 and "Server Temp Key: ECDH, prime256v1" in out, out
    rc, out = s_client(tls_node.gateway_port, pki, "-groups", "P-384")
    assert rc != 0 and "HTTP/1.1 200" not in out, out


def test_plaintext_to_tls_listener_fails(tls_node):
    s = raw_connect(tls_node.gateway_port)
    try:
        s.sendall(REQ)
        data, eof = recv_all(s, timeout=5)
    finally:
        s.close()
    assert eof, "connection left open after a plaintext request"
    assert not data.startswith(b"HTTP/1.1 200") and OK_BODY not in data, data[:200]
    wait_until(lambda: failures(tls_node) == 1, 2 * SLOW, what="one handshake failure")


def test_handshake_failures_counted_exactly(tls_node, pki):
    n = tls_node
    assert failures(n) == 0
    assert s_client(n.gateway_port, pki, "-tls1_2")[0] != 0
    assert s_client(n.gateway_port, pki, "-tls1_3", "-ciphersuites", "TLS_AES_128_CCM_SHA256")[0] != 0
    s = raw_connect(n.gateway_port)
    s.sendall(REQ)
    recv_all(s, timeout=5)
    s.close()
    wait_until(lambda: failures(n) == 3, 2 * SLOW, what="tls_handshake_failures_total == 3")
    # successful handshakes do not count
    for _ in range(3):
        assert https(n, pki, "GET", "/healthz")[0] == 200
    time.sleep(0.2)
    assert failures(n) == 3


def test_handshake_deadline(node_factory, pki):
    n = node_factory(pki.tls_config(handshake_timeout="300ms"))
    s = raw_connect(n.gateway_port)
    t0 = time.monotonic()
    try:
        data, eof = recv_all(s, timeout=5)          # send nothing at all
    finally:
        s.close()
    took = time.monotonic() - t0
    assert eof and data == b"", data
    assert 0.2 <= took < 2.0 * SLOW, took
    wait_until(lambda: failures(n) == 1, 2 * SLOW, what="the stalled handshake counted")
    assert https(n, pki, "GET", "/healthz")[0] == 200


def test_mtls_required(node_factory, pki, tmp_dir):
    n = node_factory(pki.tls_config(client_ca=True))
    # no client certificate
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        https(n, pki, "GET", "/healthz")
    # a certificate from a CA the node does not trust
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        https(n, pki, "GET", "/healthz", client="other-client")
    # the right one
    status, _, body, version, _ = https(n, pki, "GET", "/healthz", client="client")
    assert status == 200 and body == OK_BODY and version == "TLSv1.3"
    if CURL:
        url = "https://127.0.0.1:%d/healthz" % n.gateway_port
        p = run_tool([CURL, "-sS", "--cacert", pki.path("ca.pem"), url])
        assert p.returncode != 0 and OK_BODY not in p.stdout, p
        p = run_tool([CURL, "-sS", "--cacert", pki.path("ca.pem"), "--cert", pki.path("client.pem"),
                      "--key", pki.path("client.key"), "-w", " %{http_code}", url])
        assert p.returncode == 0 and p.stdout == OK_BODY + b" 200", p
    rc, out = s_client(n.gateway_port, pki)
    assert "HTTP/1.1 200" not in out, out
    rc, out = s_client(n.gateway_port, pki, "-cert", pki.path("client.pem"), "-key",
                       pki.path("client.key"))
    assert rc == 0 and "HTTP/1.1 200" in out, out
    # refused: python ×2, curl, s_client without a certificate
    want = 4 if CURL else 3
    wait_until(lambda: failures(n) == want, 2 * SLOW, what="refused client handshakes counted")


def copy_key(pki, tmp_dir, mode):
    k = os.path.join(tmp_dir, "server.key")
    shutil.copyfile(pki.path("server.key"), k)
    os.chmod(k, mode)
    return k


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_refused(node_factory, pki, tmp_dir, mode):
    key = copy_key(pki, tmp_dir, mode)
    n = node_factory({"tls": {"cert_file": pki.path("server.pem"), "key_file": key}},
                     start=False)
    v = run_cli(["config", "validate", n.config_path])
    assert v.returncode in (1, 2) and "tls.key_file" in v.stderr, (v.returncode, v.stderr)
    n.spawn()
    rc = n.wait_exit(10 * SLOW)
    assert rc in (1, 2), (rc, n.log())
    assert "tls.key_file" in n.log(), n.log()
    assert not port_listening(n.gateway_port) and not port_listening(n.admin_port)


def test_cert_pin(node_factory, pki):
    pin = b3sum_file(pki.path("server.pem"))
    n = node_factory(pki.tls_config(cert_pin=pin))
    assert https(n, pki, "GET", "/healthz")[0] == 200
    assert n.stop() == 0
    wrong = b3sum_cid(b"some other certificate")
    bad = node_factory(pki.tls_config(cert_pin=wrong), start=False)
    v = run_cli(["config", "validate", bad.config_path])
    assert v.returncode in (1, 2) and "tls.cert_pin" in v.stderr, (v.returncode, v.stderr)
    bad.spawn()
    rc = bad.wait_exit(10 * SLOW)
    assert rc in (1, 2), (rc, bad.log())
    assert "tls.cert_pin" in bad.log(), bad.log()
    assert not port_listening(bad.gateway_port)


def serial_and_cn(cert):
    return cert["serialNumber"], dict(x[0] for x in cert["subject"])["commonName"]


def test_sighup_reloads_certificate(node_factory, pki, tmp_dir):
    cert, key = os.path.join(tmp_dir, "cert.pem"), os.path.join(tmp_dir, "key.pem")
    shutil.copyfile(pki.path("server.pem"), cert)
    shutil.copyfile(pki.path("server.key"), key)
    os.chmod(key, 0o600)
    n = node_factory({"tls": {"cert_file": cert, "key_file": key}})
    assert serial_and_cn(https(n, pki, "GET", "/healthz")[4]) == ("1001", "localhost")
    # a keep-alive connection opened before the reload
    old = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, timeout=5 * SLOW,
                                      context=ctx_for(pki))
    try:
        old.request("GET", "/healthz")
        assert old.getresponse().read() == OK_BODY
        for src, dst in (("server2.pem", cert), ("server2.key", key)):
            shutil.copyfile(pki.path(src), dst + ".new")
            os.chmod(dst + ".new", 0o600)
            os.replace(dst + ".new", dst)
        n.send_signal(signal.SIGHUP)
        wait_until(lambda: n.metrics().get("config_reloads_total", result="ok") == 1, 5 * SLOW,
                   what="reload applied")
        wait_until(lambda: serial_and_cn(https(n, pki, "GET", "/healthz")[4])
                   == ("2002", "localhost-2"), 5 * SLOW, what="new certificate served")
        # the old connection keeps working with its old session
        old.request("GET", "/healthz")
        assert old.getresponse().read() == OK_BODY
        assert serial_and_cn(old.sock.getpeercert()) == ("1001", "localhost")
    finally:
        old.close()
    # a broken key on reload keeps the current certificate
    with open(key, "w") as f:
        f.write("not a key\n")
    n.send_signal(signal.SIGHUP)
    time.sleep(1.0 * SLOW)
    assert serial_and_cn(https(n, pki, "GET", "/healthz")[4]) == ("2002", "localhost-2")
    assert n.running()


def test_public_gateway_without_tls_refused(tmp_dir, pki):
    a, g = free_ports(2)
    d = os.path.join(tmp_dir, "d")
    p = run_cli(["run", "--http-addr", "127.0.0.1:%d" % a, "--gateway-addr", "0.0.0.0:%d" % g,
                 "--data-dir", d], timeout=10 * SLOW)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "gateway.allow_plaintext" in p.stderr or "gateway.addr" in p.stderr, p.stderr
    assert not port_listening(a) and not port_listening(g)
    # what validate says: refused plain, fine with allow_plaintext or with TLS
    cfgs = [({"gateway": {"addr": "0.0.0.0:%d" % g}}, 2),
            ({"gateway": {"addr": "0.0.0.0:%d" % g, "allow_plaintext": True}}, 0),
            (dict({"gateway": {"addr": "0.0.0.0:%d" % g}}, **pki.tls_config()), 0)]
    for i, (cfg, want) in enumerate(cfgs):
        path = os.path.join(tmp_dir, "c%d.json" % i)
        with open(path, "w") as f:
            json.dump(cfg, f)
        v = run_cli(["config", "validate", path])
        assert v.returncode == want, (cfg, v.returncode, v.stderr)
