"""Hardening found from outside (issue 11): each test here failed before its fix."""
import os
import resource
import socket
import time

import pytest

from conftest import (DEFAULT_BUNDLE, OAP_END, OAP_PING, OAP_PUT, OAP_REQ, OAP_START, OAP_STAT,
                      OPENSSL, SLOW, OapConn, install_wall, oap_frame, oap_json, oap_node,
                      parse_responses, raw_connect, recv_all, wait_until)


def test_supervisor_writes_no_core_file(node):
    """The supervisor holds the admin token: no core file (0/0), like every
    service process (test_wall_client.py covers those)."""
    with open("/proc/%d/limits" % node.proc.pid) as f:
        line = next(l for l in f if l.startswith("Max core file size"))
    assert line.split()[4:6] == ["0", "0"], line



# ------------------------------------------------------------ request framing
# One rule, on every route, before the wall or a handler: a header name that
# is not a token is 400; Transfer-Encoding other than a single final
# `chunked` is 400 (cannot be framed) or 501 (a coding we do not implement);
# every such request gets a reply, and the connection closes after it.

def _exchange(node, raw):
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(raw)
        data, eof = recv_all(s, timeout=5)
    finally:
        s.close()
    resps, _ = parse_responses(data)
    return resps, eof


FRAMING = [
    # (what, request, status)
    ("space before colon", b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Length : 4\r\n\r\nabcd", 400),
    ("tab in a name", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX\tY: 1\r\n\r\n", 400),
    ("bogus coding, non-object route", b"GET /healthz HTTP/1.1\r\nHost: t\r\n"
     b"Transfer-Encoding: bogus\r\n\r\n", 400),
    ("gzip alone", b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ("identity", b"GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n", 400),
    ("gzip then chunked", b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n"
     b"\r\n5\r\nhello\r\n0\r\n\r\n", 501),
    ("chunked then gzip", b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n"
     b"\r\n0\r\n\r\n", 400),
    ("chunked on two lines", b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunked twice in one", b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked"
     b"\r\n\r\n0\r\n\r\n", 400),
    ("empty value", b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: \r\n\r\n", 400),
    ("chunked on HTTP/1.0", b"POST /o HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400),
]


@pytest.mark.parametrize("what,raw,status", FRAMING, ids=[f[0] for f in FRAMING])
def test_framing_rule(node, what, raw, status):
    resps, eof = _exchange(node, raw)
    assert [r.status for r in resps] == [status], (what, resps)
    assert resps[0].header("Connection") == "close", resps[0].headers
    assert eof, "connection left open after a framing refusal"
    # nothing reached the store
    assert node.metrics().sum("http_requests_total", code="201") == 0


def test_framing_refusals_counted(node):
    for _, raw, _ in FRAMING:
        _exchange(node, raw)
    m = node.metrics()
    assert m.sum("rejected_total", reason="501") == 1
    assert m.sum("rejected_total", reason="bad_request") == len(FRAMING) - 1


def test_plain_chunked_still_works(node):
    resps, _ = _exchange(node, b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n"
                               b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    assert [r.status for r in resps] == [201], resps


def test_refused_small_body_keeps_the_connection(node_factory):
    """A refusal given before its body arrived: a small body of known length
    is read and dropped and the connection serves the next request (the
    reply says nothing of closing); a chunked one closes, and says so."""
    n = node_factory(start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)    # anonymous writes: 401
    n.start()
    body = b"x" * 1000
    resps, eof = _exchange(n, b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + body +
                           b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert [r.status for r in resps] == [401, 200], resps
    assert resps[0].header("Connection") is None
    big = b"y" * (100 * 1024)            # past the 64 KiB drain bound
    resps, eof = _exchange(n, b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(big)
                           + big + b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [r.status for r in resps] == [401], resps
    assert resps[0].header("Connection") == "close" and eof
    resps, eof = _exchange(n, b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"5\r\nhello\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [r.status for r in resps] == [401], resps
    assert resps[0].header("Connection") == "close" and eof


# ------------------------------------------------- OAP under the node-wide caps

def _stat(c, corr):
    c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_STAT, corr=corr,
                 payload=oap_json({"cid": "b3:" + "0" * 64}))
    return c.recv_frame()


def test_oap_request_rate_cap(node_factory, pki):
    """limits.requests_per_second binds OAP streams as it binds HTTP requests:
    past it a START is answered 429 on its own stream (retryable, with the
    wait), counted in rejected_total{reason="429"}; PING is never capped."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    n = oap_node(node_factory, pki, {"limits": {"requests_per_second": 5}})
    c = OapConn(n.oap_port)
    try:
        c.hello()
        codes = [_stat(c, 100 + i).code for i in range(20)]
        assert codes.count(429) >= 10 and codes[0] == 404, codes
        f = _stat(c, 200)
        assert f.code == 429 and f.json()["retryable"] is True, f
        assert "retry after" in f.json()["message"], f.json()
        for i in range(5):
            c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_PING, corr=300 + i,
                         payload=b"{}")
            assert c.recv_frame().code == 200
    finally:
        c.close()
    assert n.metrics().sum("rejected_total", reason="429") >= 11


def test_oap_inflight_cap(node_factory, pki):
    """limits.max_inflight binds OAP streams in flight across connections:
    two open PUT streams (no END yet) fill a cap of 2, the next START on
    another connection is 503 (retryable), rejected_total{reason="503"}; once
    they finish, streams are admitted again."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    n = oap_node(node_factory, pki, {"limits": {"max_inflight": 2}})
    a, b = OapConn(n.oap_port), OapConn(n.oap_port)
    try:
        a.hello()
        b.hello()
        for corr in (1, 2):
            a.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=corr, payload=b"{}") +
                   oap_frame(OAP_REQ, corr=corr, payload=b"x" * (10 + corr)))
        # a PING answered on a means a's two STARTs before it were taken
        a.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_PING, corr=5, payload=b"{}")
        assert a.recv_frame().corr == 5
        f = _stat(b, 9)
        assert (f.corr, f.code) == (9, 503) and f.json()["retryable"] is True, f
        assert n.metrics().sum("rejected_total", reason="503") == 1
        a.send(b"".join(oap_frame(OAP_REQ | OAP_END, corr=corr) for corr in (1, 2)))
        assert sorted(a.recv_frame().code for _ in range(2)) == [201, 201]
        assert _stat(b, 10).code == 404
    finally:
        a.close()
        b.close()


# ------------------------------------------------------- fd exhaustion

def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])        # utime + stime


def _fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _exhaust_and_recover(pid, port, connect):
    """Lower pid's RLIMIT_NOFILE to what it holds + 2, open connections until
    it cannot accept, then measure its CPU over a second: a listener that
    stays armed on EMFILE spins one core (~100 ticks/s). Raise the limit and a
    new connection is served again."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    socks = []
    try:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_fd_count(pid) + 2, hard))
        for _ in range(8):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        time.sleep(0.3)
        t0 = _cpu_ticks(pid)
        time.sleep(1.0)
        spent = _cpu_ticks(pid) - t0
        assert spent < 30, "a listener out of fds used %d ticks in 1 s (spinning)" % spent
    finally:
        for s in socks:
            s.close()
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    wait_until(connect, 5 * SLOW, what="served again after fds came back")


def test_gateway_backs_off_when_out_of_fds(node):
    from conftest import gateway_pids
    pid = gateway_pids(node)[0]
    _exhaust_and_recover(pid, node.gateway_port, lambda: node.gw("GET", "/healthz").status == 200)


def test_omnigate_backs_off_when_out_of_fds(node_factory, pki):
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    n = oap_node(node_factory, pki)
    pid = [c["pid"] for c in n.children() if c["service"] == "omnigate"][0]

    def served():
        c = OapConn(n.oap_port)
        try:
            return c.hello().code == 200
        finally:
            c.close()
    _exhaust_and_recover(pid, n.oap_port, served)


def test_custom_caveat_token_decodes_and_is_refused(node_factory):
    """A ron-auth v1 token with a Custom caveat (the CBOR value embedded, as
    the reference encodes it) decodes and inspects; the node, with no
    handler for the namespace, refuses it with 403, not 401 malformed."""
    import json
    from conftest import mint_token, run_cli
    node = node_factory(start=False, wall=None)
    install_wall(node.data_dir)                   # allow-all policy: only the token decides
    node.start()
    tok = mint_token(node.data_dir, "--prefix", "/o", "--method", "GET", "--method", "POST",
                     "--custom", "acme:tier:a1616b02")
    r = run_cli(["token", "inspect", tok])
    assert r.returncode == 0, r.stderr
    cav = json.loads(r.stdout)["caveats"]
    assert cav == [{"t": "Custom", "v": {"ns": "acme", "name": "tier", "cbor_hex": "a1616b02"}}]
    resp = node.gw("POST", "/o", body=b"x", headers={"Authorization": "Bearer " + tok})
    assert resp.status == 403, resp
    assert "custom" in resp.json()["message"], resp.json()
    # a value that is not exactly one CBOR item is not minted
    r = run_cli(["token", "mint", "--key", os.path.join(node.data_dir, "auth", "keys", "k1.key"),
                 "--kid", "k1", "--custom", "acme:tier:0102"])
    assert r.returncode != 0
