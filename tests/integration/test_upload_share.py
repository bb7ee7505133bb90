"""Upload shares and the minimum body rate (issue 11): a slow-loris writer
holds at most its tenant's (or its address's) share of storage's upload
slots, so other tenants still write; and a body slower than
limits.min_body_rate is cut (HTTP 408, connection closed; an OAP PUT stream
refused with 408 and its upload given back), so the slots come back."""
import select
import socket
import time

import pytest

from conftest import (OAP_END, OAP_PING, OAP_PUT, OAP_REQ, OAP_RESP, OAP_START, OPENSSL, SLOW,
                      OapConn, assert_envelope, b3sum_cid, mint_token, oap_frame, oap_node,
                      parse_responses, raw_connect, recv_all, wait_until)

WRITE = ("--prefix", "/o", "--method", "PUT", "--method", "POST", "--method", "GET")
SLOW_LEN = 100000          # what the slow writers announce and never send
# Small values so the test runs in seconds: 4 slots, 2 per tenant, and a
# body must average 1 KiB/s after 1 s (the read deadline, 5 s, never fires:
# the trickle sends a byte every TRICKLE_S).
SHARES = {"storage": {"max_uploads": 4, "max_uploads_per_tenant": 2,
                      "max_uploads_per_peer": 0},
          "limits": {"min_body_rate": "1KiB"},
          "timeouts": {"body_grace": "1s", "read": "5s"}}
TRICKLE_S = 0.25


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def put_head(tok, length):
    return ("PUT /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: %d\r\n\r\n" % (tok, length)).encode()


def connect_from(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(5 * SLOW)
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def put_once(n, tok, body, src="127.0.0.1"):
    """One whole PUT /o on a fresh connection; the parsed response."""
    s = connect_from(n.gateway_port, src)
    try:
        s.sendall(put_head(tok, len(body)) + body)
        data, _ = recv_all(s, timeout=5.0, until=lambda d: parse_responses(d)[0])
        got, _ = parse_responses(data)
        assert got, data
        return got[0]
    finally:
        s.close()


def open_slow(n, tok, count):
    """count connections that announce SLOW_LEN body bytes and send 10."""
    conns = []
    for _ in range(count):
        s = raw_connect(n.gateway_port)
        s.sendall(put_head(tok, SLOW_LEN) + b"x" * 10)
        conns.append(s)
    return conns


def wait_share_full(n, tok, src="127.0.0.1"):
    """Probe with empty PUTs (a slot held only for an instant) until one is
    refused: then the slow writers hold their share. Returns that 503."""
    seen = []

    def refused():
        r = put_once(n, tok, b"", src)
        assert r.status in (201, 200, 503), r
        seen.append(r)
        return r.status == 503
    wait_until(refused, 10 * SLOW, interval=0.05, what="the share to fill")
    return seen[-1], sum(1 for r in seen if r.status == 503)


def trickle_until_answered(conns, limit_s):
    """Send a byte every TRICKLE_S on each connection until each is
    answered and closed; returns the parsed answers in order."""
    data = {s: b"" for s in conns}
    done = {}
    deadline = time.monotonic() + limit_s * SLOW
    while len(done) < len(conns) and time.monotonic() < deadline:
        for s in conns:
            if s not in done and not data[s]:
                try:
                    s.send(b"y")
                except OSError:
                    pass
        live = [s for s in conns if s not in done]
        ready, _, _ = select.select(live, [], [], TRICKLE_S)
        for s in ready:
            try:
                chunk = s.recv(65536)
            except OSError:
                chunk = b""
            data[s] += chunk
            if not chunk:
                done[s] = True
    assert len(done) == len(conns), "slow writers not cut within %ss" % limit_s
    out = []
    for s in conns:
        got, _ = parse_responses(data[s])
        assert len(got) == 1, data[s]
        out.append(got[0])
        s.close()
    return out


def test_slow_tenant_holds_only_its_share_and_is_cut(node_factory):
    n = node_factory(SHARES)
    a = mint_token(n.wall_dir, *WRITE, "--tenant", "a")
    b = mint_token(n.wall_dir, *WRITE, "--tenant", "b")
    m0 = n.metrics()
    slow = open_slow(n, a, 2)
    try:
        # tenant a holds its two slots: its next upload is refused, retryable,
        # naming the share; the table (4) is not full
        r, n503 = wait_share_full(n, a)
        assert_envelope(r, 503, "unavailable", retryable=True)
        assert r.json()["message"] == ("too many uploads open for this tenant "
                                       "(storage.max_uploads_per_tenant)")
        assert r.header("Retry-After") == "1"
        # another tenant still writes, twice over, while the slow ones hold theirs
        for body in (b"tenant b writes", b"and again"):
            r = put_once(n, b, body)
            assert r.status == 201, r
            assert r.json()["cid"] == b3sum_cid(body)
        m = n.metrics()
        assert m.sum("rejected_total", reason="503") - m0.sum("rejected_total", reason="503") \
            == n503
        # the slow writers are cut by the rate rule (not the 5 s read deadline:
        # they send a byte every 0.25 s) with a 408 that names it
        for r in trickle_until_answered(slow, 15):
            assert_envelope(r, 408, "timeout", retryable=True)
            assert r.json()["message"] == "request body arrived slower than limits.min_body_rate"
            assert r.header("Connection") == "close"
        assert n.metrics().sum("rejected_total", reason="timeout") - \
            m0.sum("rejected_total", reason="timeout") == 2
        # their slots came back: tenant a writes again
        r = put_once(n, a, b"tenant a again")
        assert r.status == 201, r
    finally:
        for s in slow:
            s.close()
    refusals = [x for x in n.log_records() if x.get("msg") == "upload refused: share full"]
    assert refusals and all(x["share"] == "tenant" and x["tenant"] == "t:a" and
                            x["peer"] == "ip:127.0.0.1" for x in refusals), refusals


def test_slow_address_holds_only_its_share(node_factory):
    """One address's share (storage.max_uploads_per_peer): another tenant
    from the same address is refused; from another address it writes."""
    n = node_factory({"storage": {"max_uploads": 4, "max_uploads_per_tenant": 0,
                                  "max_uploads_per_peer": 2},
                      "limits": {"min_body_rate": "0"}})
    a = mint_token(n.wall_dir, *WRITE, "--tenant", "a")
    b = mint_token(n.wall_dir, *WRITE, "--tenant", "b")
    slow = open_slow(n, a, 2)
    try:
        r, _ = wait_share_full(n, a)
        r = put_once(n, b, b"same address")
        assert_envelope(r, 503, "unavailable", retryable=True)
        assert r.json()["message"] == ("too many uploads open from this address "
                                       "(storage.max_uploads_per_peer)")
        r = put_once(n, b, b"another address", src="127.0.0.2")
        assert r.status == 201, r
        # min_body_rate 0: the rule is off, the slow writers still hold on
        # (the read deadline is 5 s; they sent their bytes just now)
        r = put_once(n, b, b"still full")
        assert r.status == 503, r
    finally:
        for s in slow:
            s.close()
    # their connections gone, the slots come back
    wait_until(lambda: put_once(n, b, b"free again").status == 201, 10 * SLOW,
               what="the slots to come back")


@pytest.fixture
def share_onode(node_factory, pki):
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    cfg = {"storage": {"max_uploads": 4, "max_uploads_per_tenant": 1, "max_uploads_per_peer": 0},
           "limits": {"min_body_rate": "1KiB"}, "timeouts": {"body_grace": "1s", "read": "5s"}}
    return oap_node(node_factory, pki, cfg)


def oap_recv_for(c, corr, limit_s):
    """The next frame on corr (others are kept out of the way: none expected)."""
    deadline = time.monotonic() + limit_s * SLOW
    while time.monotonic() < deadline:
        f = c.recv_frame()
        assert f is not None, "connection closed"
        if f.corr == corr:
            return f
    raise AssertionError("no answer on corr %d" % corr)


def test_oap_trickling_put_refused_and_slot_released(share_onode):
    n = share_onode
    m0 = n.metrics()
    c = OapConn(n.oap_port, timeout=15.0)
    try:
        c.hello()
        # stream 10 holds the anonymous tenant's one slot (ip:127.0.0.1)
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=10, payload=b"{}") +
               oap_frame(OAP_REQ, corr=10, payload=b"x" * 10))
        # a second PUT of the same tenant is refused at once, naming the share
        body = b"second"
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=11, payload=b"{}") +
               oap_frame(OAP_REQ | OAP_END, corr=11, payload=body))
        f = oap_recv_for(c, 11, 10)
        assert (f.code, f.flags & (OAP_RESP | OAP_START | OAP_END)) == (
            503, OAP_RESP | OAP_START | OAP_END), f
        assert f.json()["code"] == "unavailable" and f.json()["retryable"] is True
        assert f.json()["message"] == ("too many uploads open for this tenant "
                                       "(storage.max_uploads_per_tenant)")
        # stream 10 trickles a byte every 0.25 s: the frame and idle deadlines
        # never fire, the rate rule does
        c.sock.settimeout(TRICKLE_S)
        got = None
        deadline = time.monotonic() + 15 * SLOW
        while got is None and time.monotonic() < deadline:
            c.send(oap_frame(OAP_REQ, corr=10, payload=b"y"))
            try:
                got = c.recv_frame()
            except socket.timeout:
                pass
        c.sock.settimeout(10 * SLOW)
        assert got is not None and got.corr == 10, got
        assert (got.code, got.flags & (OAP_RESP | OAP_START | OAP_END)) == (
            408, OAP_RESP | OAP_START | OAP_END), got
        assert got.json()["code"] == "timeout" and got.json()["retryable"] is True
        assert got.json()["message"] == "request body arrived slower than limits.min_body_rate"
        assert n.metrics().sum("oap_rejected_total", reason="timeout") - \
            m0.sum("oap_rejected_total", reason="timeout") == 1
        # the stream's upload went back at once, though its END has not come:
        # the tenant writes again on the same connection
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=12, payload=b"{}") +
               oap_frame(OAP_REQ | OAP_END, corr=12, payload=body))
        f = oap_recv_for(c, 12, 10)
        assert f.code == 201 and f.json()["cid"] == b3sum_cid(body), f
        # the refused stream's late frames are dropped; the connection serves on
        c.send(oap_frame(OAP_REQ, corr=10, payload=b"z") + oap_frame(OAP_REQ | OAP_END, corr=10))
        c.send_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_PING, corr=13, payload=b"{}")
        f = c.recv_frame()
        assert (f.corr, f.code) == (13, 200), f
    finally:
        c.close()
