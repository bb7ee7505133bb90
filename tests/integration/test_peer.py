"""The peer plane (issue 12, docs/oap.md "Peer plane"): omnigate without
tls.cert_file serves the node identity's self-signed Ed25519 certificate; the
SNI peer.macronode.invalid demands an identity certificate from the client;
`macronode get --pin-node` fetches over it with the node's own peer_fetch
(OUTBOARD, then every 64 KiB group verified) and refuses a node that is not
the one pinned; the OUTBOARD verb serves exactly the stored outboard and
passes the wall as GET does."""
import os
import re
import ssl
import subprocess

import pytest

from conftest import (BIN, OAP_END, OAP_REQ, OAP_RESP, OAP_START, OPENSSL, SLOW, OapConn,
                      b3sum_file, base_env, blob_file, deep_merge, free_port,
                      install_wall, mn_client, oap_json, oap_node, raw_connect, stored,
                      wait_until, wall_env)

PEER_SNI = "peer.macronode.invalid"
OAP_OUTBOARD = 5
G = 64 * 1024
MIB = 1 << 20
ID_RE = re.compile(r"^b3:[0-9a-f]{64}$")


def peer_node(node_factory, config=None, start=True, **kw):
    """A node running gateway, storage and omnigate with no tls.cert_file;
    n.oap_port / n.oap_peer is the OAP/1 listener, n.node_id its identity."""
    base = {"services": ["gateway", "storage", "omnigate"], "storage": {"max_object": "8MiB"}}
    n = node_factory(deep_merge(base, config or {}), start=False, **kw)
    n.oap_port = port = free_port()
    n.oap_peer = "127.0.0.1:%d" % port
    n.config = deep_merge(n.config, {"oap": {"addr": n.oap_peer}})
    n.write_config(n.config, merge=False)
    if start:
        n.start()
        n.node_id = n.get("/version").json()["node_id"]
        assert ID_RE.match(n.node_id), n.node_id
    return n


@pytest.fixture
def two(node_factory):
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    return peer_node(node_factory), peer_node(node_factory)


def metric(node, name, **labels):
    return node.metrics().sum(name, **labels)


def pinned_get(node, cid, pin, out=None, *extra):
    args = ["get", cid, "--peer", node.oap_peer, "--pin-node", pin]
    if out:
        args += ["-o", out]
    return mn_client(args + list(extra))


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def openssl(args, cwd, input=b""):
    return subprocess.run([OPENSSL] + args, cwd=cwd, input=input, capture_output=True,
                          timeout=30 * SLOW, env=base_env())


def self_signed(d, name, algorithm):
    """A self-signed client certificate (Ed25519 or Ed448: no digest named)."""
    p = openssl(["req", "-x509", "-newkey", algorithm, "-nodes", "-keyout", name + ".key",
                 "-out", name + ".pem", "-subj", "/CN=" + name, "-days", "2"], d)
    assert p.returncode == 0, p.stderr
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def s_client(node, d, sni=None, cert=None):
    """openssl s_client against the node's omnigate; the server certificate's
    text (openssl x509 -text) and s_client's own output."""
    args = ["s_client", "-connect", node.oap_peer, "-showcerts", "-tls1_3"]
    if sni:
        args += ["-servername", sni]
    if cert:
        args += ["-cert", cert[0], "-key", cert[1]]
    p = openssl(args, d)
    out = p.stdout.decode(errors="replace")
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert m, out + p.stderr.decode(errors="replace")
    x = openssl(["x509", "-noout", "-text"], d, input=m.group(0).encode())
    assert x.returncode == 0, x.stderr
    return x.stdout.decode(), out


def assert_identity_cert(text, node):
    assert "Public Key Algorithm: ED25519" in text, text
    assert "Signature Algorithm: ED25519" in text, text
    hexid = node.node_id[3:]
    assert "Subject: CN = %s" % hexid in text, text
    assert "Issuer: CN = %s" % hexid in text, text


# ------------------------------------------------------------------ fetch by pin

def test_pinned_get_writes_exactly_the_bytes(two, tmp_dir):
    a, b = two
    assert a.node_id != b.node_id
    for size in (0, 1, G - 1, G, G + 1, 5 * G + 123, 3 * MIB + 7):
        data = os.urandom(size)
        cid = stored(a, data)
        out = os.path.join(tmp_dir, "out-%d" % size)
        p = pinned_get(a, cid, a.node_id, out)
        assert p.returncode == 0, (size, p.stderr)
        assert b3sum_file(out) == cid
        with open(out, "rb") as f:
            assert f.read() == data
    # to standard output, and a range (only verified groups are written)
    data = os.urandom(4 * G + 999)
    cid = stored(a, data)
    p = pinned_get(a, cid, a.node_id)
    assert p.returncode == 0 and p.stdout == data, p.stderr
    p = pinned_get(a, cid, a.node_id, None, "--range", "70000-200000")
    assert p.returncode == 0 and p.stdout == data[70000:200001], p.stderr
    # the node served OUTBOARD and GET to a peer-plane client
    assert metric(a, "oap_requests_total", verb="outboard", outcome="200") == 9
    assert metric(a, "oap_peer_connections_total") == 9
    # B does not hold it: 404, exit 1, no file
    out = os.path.join(tmp_dir, "nothing")
    p = pinned_get(b, cid, b.node_id, out)
    assert p.returncode == 1 and b"404" in p.stderr, p.stderr
    assert not os.path.exists(out)


def test_wrong_pin_refused_naming_both_ids(two, tmp_dir):
    a, b = two
    cid = stored(a, b"only on A\n")
    before = metric(a, "tls_handshake_failures_total")
    out = os.path.join(tmp_dir, "x")
    p = pinned_get(a, cid, b.node_id, out)   # A answers, B is expected
    err = p.stderr.decode()
    assert p.returncode == 1, err
    assert a.node_id in err and b.node_id in err, err
    assert "peer is node %s, not %s" % (a.node_id, b.node_id) in err, err
    assert not os.path.exists(out)
    # A saw a handshake its client aborted (our certificate was refused)
    wait_until(lambda: metric(a, "tls_handshake_failures_total") == before + 1, 5 * SLOW,
               what="A counts the aborted handshake")
    assert metric(a, "oap_requests_total", verb="outboard", outcome="200") == 0
    # usage: a malformed pin, a host name, --ca with a pin
    assert pinned_get(a, cid, "b3:XYZ").returncode == 2
    p = mn_client(["get", cid, "--peer", "localhost:%d" % a.oap_port, "--pin-node", a.node_id])
    assert p.returncode == 2 and b"numeric" in p.stderr, p.stderr
    p = mn_client(["get", cid, "--peer", a.oap_peer, "--pin-node", a.node_id, "--insecure"])
    assert p.returncode == 2, p.stderr


def test_unreachable_peer(node_factory, tmp_dir):
    port = free_port()
    p = mn_client(["get", "b3:" + "0" * 64, "--peer", "127.0.0.1:%d" % port, "--pin-node",
                   "b3:" + "1" * 64, "--timeout", "5"])
    assert p.returncode == 1 and b"connect" in p.stderr, p.stderr


# ------------------------------------------------------------------ the certificate

def test_s_client_sees_the_identity_certificate(two, tmp_dir):
    a, _ = two
    cert = self_signed(tmp_dir, "ed", "ed25519")
    before = metric(a, "oap_peer_connections_total")
    text, out = s_client(a, tmp_dir, sni=PEER_SNI, cert=cert)
    assert_identity_cert(text, a)
    assert "TLSv1.3" in out, out
    wait_until(lambda: metric(a, "oap_peer_connections_total") == before + 1, 5 * SLOW,
               what="A counts the peer-plane connection")
    # without the peer SNI (and no tls.cert_file): the same certificate, no
    # client certificate asked for
    text, _ = s_client(a, tmp_dir)
    assert_identity_cert(text, a)
    assert metric(a, "peer_tls_refused_total", reason="no_cert") == 0


def test_peer_sni_without_client_certificate_refused(two, tmp_dir):
    a, _ = two
    fails = metric(a, "tls_handshake_failures_total")
    # openssl s_client: TLS 1.3 lets the client finish first; the server refuses
    s_client(a, tmp_dir, sni=PEER_SNI)
    wait_until(lambda: metric(a, "peer_tls_refused_total", reason="no_cert") == 1, 5 * SLOW,
               what="no_cert counted")
    # a Python client the same way: the connection ends in an alert, never a frame
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(raw_connect(a.oap_port), server_hostname=PEER_SNI)
    s.settimeout(5 * SLOW)
    with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
        s.sendall(b"\0" * 38)
        if s.recv(1) == b"":
            raise ConnectionResetError("closed")
    s.close()
    wait_until(lambda: metric(a, "peer_tls_refused_total", reason="no_cert") == 2, 5 * SLOW,
               what="the second no_cert counted")
    assert metric(a, "tls_handshake_failures_total") == fails + 2
    # an Ed448 certificate is not a node identity
    cert = self_signed(tmp_dir, "ed448", "ed448")
    s_client(a, tmp_dir, sni=PEER_SNI, cert=cert)
    wait_until(lambda: metric(a, "peer_tls_refused_total", reason="not_ed25519") == 1,
               5 * SLOW, what="not_ed25519 counted")


def test_peer_plane_beside_a_certificate_file(node_factory, pki, tmp_dir):
    """With tls.cert_file the ordinary clients get that certificate, and the
    peer SNI still gets the identity's; the pinned fetch works alike."""
    n = oap_node(node_factory, pki)
    n.node_id = n.get("/version").json()["node_id"]
    text, _ = s_client(n, tmp_dir)
    assert "Subject: CN = localhost" in text, text
    cert = self_signed(tmp_dir, "ed", "ed25519")
    text, _ = s_client(n, tmp_dir, sni=PEER_SNI, cert=cert)
    assert_identity_cert(text, n)
    data = os.urandom(2 * G + 5)
    src = os.path.join(tmp_dir, "f")
    write(src, data)
    # (the gateway speaks HTTPS here: store through OAP with the CA instead)
    p = mn_client(["put", src, "--peer", n.oap_peer, "--ca", pki.path("ca.pem")])
    assert p.returncode == 0, p.stderr
    cid = p.stdout.decode().strip()
    p = pinned_get(n, cid, n.node_id)
    assert p.returncode == 0 and p.stdout == data, p.stderr


# ------------------------------------------------------------------ OUTBOARD

def outboard_stream(c, cid, corr=7):
    """Ask OUTBOARD on an OapConn; returns (start frame, body bytes, end seen)."""
    c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_OUTBOARD, corr=corr,
                 payload=oap_json({"cid": cid}))
    first = c.recv_frame()
    assert first is not None and first.corr == corr and first.flags & OAP_START, first
    body, end = b"", bool(first.flags & OAP_END)
    while not end:
        f = c.recv_frame()
        assert f is not None and f.corr == corr and f.flags & OAP_RESP, f
        assert len(f.payload) <= G, len(f.payload)
        body += f.payload
        end = bool(f.flags & OAP_END)
    return first, body


def test_outboard_verb_serves_the_stored_outboard(two):
    a, _ = two
    c = OapConn(a.oap_port)
    try:
        c.hello()
        for size in (0, 1000, 5 * G + 1):
            data = os.urandom(size)
            cid = stored(a, data)
            first, body = outboard_stream(c, cid)
            groups = max(1, (size + G - 1) // G)
            assert (first.code, first.json()) == (200, {"len": size, "groups": groups}), first
            with open(blob_file(a, cid) + ".ob", "rb") as f:
                assert body == f.read()
            assert len(body) == 32 * groups
        # unknown object, malformed id, unknown parameter
        first, _ = outboard_stream(c, "b3:" + "0" * 64)
        assert first.code == 404 and first.flags & OAP_END, first
        c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_OUTBOARD, corr=9,
                     payload=oap_json({"cid": "b3:xyz"}))
        f = c.recv_frame()
        assert (f.code, f.json()["code"]) == (400, "bad_request"), f
        c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_OUTBOARD, corr=10,
                     payload=oap_json({"cid": cid, "range": [0, 1]}))
        assert c.recv_frame().code == 400
    finally:
        c.close()
    assert metric(a, "oap_requests_total", verb="outboard", outcome="404") == 1


def test_outboard_over_64k_spans_frames_and_pinned_get(node_factory, tmp_dir):
    """2049 groups: an outboard of 65568 bytes, two frames; and the pinned
    fetch of the 128 MiB object through it."""
    n = peer_node(node_factory, {"storage": {"max_object": "130MiB"}})
    size = 2048 * G + 1
    src = os.path.join(tmp_dir, "big")
    write(src, os.urandom(size))
    with open(src, "rb") as f:
        cid = stored(n, f.read(), timeout=120)
    c = OapConn(n.oap_port, timeout=30)
    try:
        c.hello()
        first, body = outboard_stream(c, cid)
        assert first.json() == {"len": size, "groups": 2049}
        with open(blob_file(n, cid) + ".ob", "rb") as f:
            assert body == f.read() and len(body) == 65568
    finally:
        c.close()
    out = os.path.join(tmp_dir, "big.out")
    p = pinned_get(n, cid, n.node_id, out)
    assert p.returncode == 0, p.stderr
    assert b3sum_file(out) == cid


HEAD_ONLY = {"version": 1, "defaults": {"default_action": "deny"},
             "rules": [{"id": "heads", "when": {"method": "HEAD"}, "action": "allow",
                        "reason": "stat only"}]}


def test_outboard_passes_the_wall_as_get(node_factory, tmp_dir):
    wall = os.path.join(tmp_dir, "wall")
    install_wall(wall, bundle=HEAD_ONLY)
    n = peer_node(node_factory, wall=None, env=wall_env(wall))
    c = OapConn(n.oap_port)
    try:
        c.hello()
        # OUTBOARD is judged as GET (refused anonymously), not as STAT/HEAD
        # (allowed: then 404 for an object nobody stored)
        for verb, want in ((OAP_OUTBOARD, 401), (3, 401), (2, 404)):
            c.send_frame(OAP_REQ | OAP_START | OAP_END, code=verb, corr=verb,
                         payload=oap_json({"cid": "b3:" + "0" * 64}))
            f = c.recv_frame()
            assert f.code == want and f.flags & OAP_END, (verb, f)
    finally:
        c.close()
    assert metric(n, "oap_requests_total", verb="outboard", outcome="401") == 1


def test_config_validate_accepts_omnigate_without_certificate(node_factory):
    n = peer_node(node_factory, start=False)
    p = subprocess.run([BIN, "config", "validate", n.config_path],
                       capture_output=True, text=True, env=base_env(), timeout=20 * SLOW)
    assert p.returncode == 0, p.stdout + p.stderr
    # and a connection without the peer SNI is an ordinary OAP client
    n.start()
    n.node_id = n.get("/version").json()["node_id"]
    c = OapConn(n.oap_port)
    try:
        c.hello()
    finally:
        c.close()
