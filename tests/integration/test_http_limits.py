"""HTTP core limits on the real node: body, header, deadlines, connection cap."""
import socket
import threading
import time

import pytest

from conftest import (SANITIZED, SLOW, parse_responses, raw_connect, raw_exchange, recv_all, vm_rss_kib,
                      wait_until)

TWO_MIB = 2 * 1024 * 1024


class Sender(threading.Thread):
    """Send chunks on a socket in the background, swallowing the errors a
    server that refuses mid-upload legitimately causes (EPIPE, RST)."""

    def __init__(self, sock, chunks):
        super().__init__(daemon=True)
        self.sock, self.chunks, self.sent, self.error = sock, chunks, 0, None

    def run(self):
        try:
            for c in self.chunks:
                self.sock.sendall(c)
                self.sent += len(c)
        except OSError as e:
            self.error = e


def exchange(port, head, body_chunks=(), timeout=10.0):
    """Send head (+ body chunks in the background); read until close.
    Returns (responses, eof, sender)."""
    s = raw_connect(port)
    try:
        s.sendall(head)
        snd = Sender(s, body_chunks)
        snd.start()
        data, eof = recv_all(s, timeout=timeout)
        snd.join(10)
    finally:
        s.close()
    rs, _ = parse_responses(data)
    return rs, eof, snd


def rejected(node, reason):
    return node.metrics().sum("rejected_total", reason=reason)


def body_chunks(total, size=64 * 1024):
    blob = b"x" * size
    n = total
    while n > 0:
        yield blob[:min(size, n)]
        n -= size


def chunked_chunks(total, size=8192):
    piece = b"%x\r\n" % size + b"y" * size + b"\r\n"
    for _ in range(total // size):
        yield piece
    yield b"0\r\n\r\n"


def warm_up(node):
    # Touch the code paths once so first-use allocations are not counted.
    assert node.get("/healthz").status == 200
    rs, _, _ = exchange(node.admin_port, b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\n"
                        b"Content-Length: 200000\r\n\r\n", [b"z" * 100])
    assert rs and rs[0].status == 413


RSS_SLACK_KIB = 4096 if SANITIZED else 1024   # ASan quarantines freed memory


def test_2mib_body_413_without_buffering(node):
    warm_up(node)
    before_rej = rejected(node, "413")
    pid = node.proc.pid
    rss0 = vm_rss_kib(pid)
    head = (b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % TWO_MIB)
    rs, eof, snd = exchange(node.admin_port, head, body_chunks(TWO_MIB))
    rss1 = vm_rss_kib(pid)
    assert len(rs) == 1, rs
    r = rs[0]
    assert r.status == 413
    assert r.header("Connection").lower() == "close"
    assert r.json()["code"] == "payload_too_large"
    assert eof, "connection not closed after 413"
    assert rss1 - rss0 < RSS_SLACK_KIB, "supervisor RSS grew %d KiB" % (rss1 - rss0)
    assert rejected(node, "413") == before_rej + 1
    # the refusal is logged with the corr_id the client saw
    corr = r.json()["corr_id"]
    assert any(x.get("msg") == "http refused" and x.get("reason") == "413"
               and x.get("corr_id") == corr for x in node.log_records()), corr
    # the reload handler never ran
    assert node.metrics().sum("config_reloads_total") == 0
    assert node.get("/healthz").status == 200


def test_413_answered_before_body_is_sent(node):
    """The cap is decided from Content-Length: the answer comes without a body byte."""
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                  % TWO_MIB)
        data, _ = recv_all(s, timeout=3, until=lambda b: b"\r\n\r\n" in b and b"}" in b)
    finally:
        s.close()
    rs, _ = parse_responses(data)
    assert len(rs) == 1 and rs[0].status == 413, data
    # api.md: the message names the limit at fault: on the admin plane the
    # smaller of 4 KiB and limits.max_body (128 KiB by default)
    assert "4096 bytes (the admin plane's body cap)" in rs[0].json()["message"], rs[0].json()


def test_chunked_2mib_413(node):
    warm_up(node)
    before_rej = rejected(node, "413")
    rss0 = vm_rss_kib(node.proc.pid)
    head = (b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    rs, eof, _ = exchange(node.admin_port, head, chunked_chunks(TWO_MIB))
    rss1 = vm_rss_kib(node.proc.pid)
    assert len(rs) == 1, rs
    assert rs[0].status == 413
    assert rs[0].json()["code"] == "payload_too_large"
    assert eof
    assert rss1 - rss0 < RSS_SLACK_KIB, "supervisor RSS grew %d KiB" % (rss1 - rss0)
    assert rejected(node, "413") == before_rej + 1
    assert node.metrics().sum("config_reloads_total") == 0


def test_64kib_headers_431(node):
    before = rejected(node, "431")
    pad = b"a" * 4000
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, pad) for i in range(17)) + b"\r\n"
    assert len(head) > 64 * 1024
    rs, eof, _ = exchange(node.admin_port, head[:100], [head[100:]])
    assert len(rs) == 1, rs
    assert rs[0].status == 431
    assert rs[0].json()["code"] == "header_too_large"
    assert eof
    assert rejected(node, "431") == before + 1


def test_too_many_header_fields_431(node):
    before = rejected(node, "431")
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-H-%d: 1\r\n" % i for i in range(120)) + b"\r\n"
    assert len(head) < 4096
    rs, eof, _ = exchange(node.admin_port, head)
    assert len(rs) == 1 and rs[0].status == 431, rs
    assert eof
    assert rejected(node, "431") == before + 1


def test_header_just_under_cap_ok(node):
    head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"b" * 12000 + \
        b"\r\nConnection: close\r\n\r\n"
    rs, eof, _ = exchange(node.admin_port, head)
    assert len(rs) == 1 and rs[0].status == 200, rs


def test_uri_too_long_414(node):
    before = rejected(node, "414")
    head = b"GET /" + b"u" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
    rs, eof, _ = exchange(node.admin_port, head)
    assert len(rs) == 1 and rs[0].status == 414, rs
    assert rs[0].json()["code"] == "uri_too_long"
    assert rejected(node, "414") == before + 1


def slow_client(port, interval=1.0, limit=12.0):
    """Send a request header one byte per `interval` s; return (seconds until
    the server closed, bytes received). limit bounds the test."""
    req = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"s" * 64 + b"\r\n\r\n"
    s = raw_connect(port)
    s.settimeout(interval)
    t0 = time.monotonic()
    got = b""
    i = 0
    try:
        while time.monotonic() - t0 < limit:
            try:
                s.send(req[i:i + 1])
                i += 1
            except OSError:
                break
            try:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            except socket.timeout:
                continue
            except OSError:
                break
        return time.monotonic() - t0, got
    finally:
        s.close()


@pytest.mark.parametrize("plane", ["admin", "gateway"])
def test_slowloris_cut_off_by_header_deadline(node_factory, plane):
    n = node_factory({"timeouts": {"header": "2s"}})
    before = rejected(n, "timeout")
    port = n.admin_port if plane == "admin" else n.gateway_port
    took, got = slow_client(port)
    assert 1.5 <= took <= 2.0 + 2.0 * SLOW, "closed after %.2fs" % took
    rs, _ = parse_responses(got)
    # api.md: connection closed, 408 if nothing was sent yet
    assert [r.status for r in rs] == [408], got
    wait_until(lambda: rejected(n, "timeout") == before + 1, 2 * SLOW,
               what="rejected_total{reason=timeout} += 1")


def test_stalled_body_cut_off_by_read_timeout(node_factory):
    n = node_factory({"timeouts": {"read": "1s"}})
    before = rejected(n, "timeout")
    s = raw_connect(n.admin_port)
    t0 = time.monotonic()
    try:
        s.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        data, eof = recv_all(s, timeout=6)
    finally:
        s.close()
    took = time.monotonic() - t0
    assert eof, "stalled body never cut off"
    assert 0.8 <= took <= 1.0 + 2.0 * SLOW, took
    assert n.metrics().sum("config_reloads_total") == 0
    wait_until(lambda: rejected(n, "timeout") == before + 1, 2 * SLOW,
               what="rejected_total{reason=timeout} += 1")


def test_idle_keepalive_closed(node_factory):
    n = node_factory({"timeouts": {"idle": "1s"}})
    s = raw_connect(n.admin_port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        data, eof = recv_all(s, timeout=3, until=lambda b: b.endswith(b"}"))
        assert not eof and parse_responses(data)[0][0].status == 200
        t0 = time.monotonic()
        data, eof = recv_all(s, timeout=6)
        took = time.monotonic() - t0
    finally:
        s.close()
    assert eof and data == b""
    assert 0.8 <= took <= 1.0 + 2.0 * SLOW, took


def test_connection_cap_gateway(node_factory):
    n = node_factory({"limits": {"max_connections": 2}}, workers=1)
    before = rejected(n, "conn_cap")
    held = []
    try:
        for _ in range(2):
            s = raw_connect(n.gateway_port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data, eof = recv_all(s, timeout=3, until=lambda b: b.endswith(b"}"))
            assert not eof and parse_responses(data)[0][0].status == 200
            held.append(s)
        s3 = raw_connect(n.gateway_port)
        try:
            s3.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data, eof = recv_all(s3, timeout=5)
        finally:
            s3.close()
        rs, _ = parse_responses(data)
        assert [r.status for r in rs] == [503], data
        assert rs[0].header("Retry-After") == "1"
        assert rs[0].header("Connection").lower() == "close"
        assert rs[0].json()["code"] == "overloaded" and rs[0].json()["retryable"] is True
        assert eof, "over-cap connection not closed"
        assert rejected(n, "conn_cap") == before + 1
        # held connections still work
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        data, eof = recv_all(held[0], timeout=3, until=lambda b: b.endswith(b"}"))
        assert parse_responses(data)[0][0].status == 200
    finally:
        for s in held:
            s.close()
    # a slot frees up once a held connection is gone
    wait_until(lambda: n.gw("GET", "/healthz").status == 200, 3 * SLOW,
               what="gateway accepts again after connections closed")


def test_rate_cap_gateway_429(node_factory):
    """Unmatched paths pay the rate cap (a 404 flood is not free); probes do not."""
    n = node_factory({"limits": {"requests_per_second": 5}}, workers=1)
    before = rejected(n, "429")
    s = raw_connect(n.gateway_port)
    try:
        # 20 pipelined requests in one write: the bucket holds 5 (burst = rate).
        t0 = time.monotonic()
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n" * 20)
        data, _ = recv_all(s, timeout=5 * SLOW, until=lambda b: b.count(b"HTTP/1.1 ") >= 20)
        elapsed = time.monotonic() - t0
    finally:
        s.close()
    rs, _ = parse_responses(data)
    codes = [r.status for r in rs]
    assert len(codes) == 20, codes
    assert 404 in codes and 429 in codes, codes
    # 5 of burst, plus the refill (5/s) while they were handled, plus one
    # for the clock's granularity
    assert codes.count(404) <= 5 + 5 * elapsed + 1, (codes, elapsed)
    limited = [r for r in rs if r.status == 429][0]
    assert int(limited.header("Retry-After")) >= 1
    j = limited.json()
    assert j["code"] == "too_many_requests" and j["retryable"] is True
    assert rejected(n, "429") == before + codes.count(429)
    # the probe route is exempt and still answers while the bucket is empty
    assert n.gw("GET", "/healthz").status == 200


def test_gateway_body_cap_is_storage_max_object(node_factory):
    """The gateway's body cap is storage.max_object, not limits.max_body (api.md)."""
    n = node_factory({"limits": {"max_body": "1KiB"}, "storage": {"max_object": "4KiB"}})
    # 3 KiB: over limits.max_body, under storage.max_object → stored
    r = n.gw("POST", "/o", body=b"q" * 3072)
    assert r.status == 201, r
    cid = r.json()["cid"]
    assert r.header("Location") == "/o/" + cid
    g = n.gw("GET", "/o/" + cid)
    assert g.status == 200 and g.body == b"q" * 3072
    # exactly the cap is accepted
    r = n.gw("PUT", "/o", body=b"w" * 4096)
    assert r.status == 201, r
    # one byte over: 413 from Content-Length, before any body byte is sent
    before = rejected(n, "413")
    s = raw_connect(n.gateway_port)
    try:
        s.sendall(b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Length: 4097\r\n\r\n")
        data, eof = recv_all(s, timeout=3)
    finally:
        s.close()
    rs, _ = parse_responses(data)
    assert len(rs) == 1 and rs[0].status == 413, data
    j = rs[0].json()
    assert j["code"] == "payload_too_large" and j["retryable"] is False
    assert "4096" in j["message"], j
    assert rs[0].header("Connection").lower() == "close"
    assert eof
    assert rejected(n, "413") == before + 1


def test_limits_max_body_caps_json_and_admin_bodies(node_factory):
    """limits.max_body is the cap of every body that is not an object upload:
    the gateway's JSON routes (under their own smaller caps) and the admin
    plane's POSTs; an object upload over it is still taken (storage.max_object).
    Live on reload."""
    cfg = {"services": ["gateway", "storage", "audit", "index"],
           "limits": {"max_body": "512B"}, "storage": {"max_object": "4KiB"}}
    n = node_factory(cfg)
    doc = b'{"cid":"b3:' + b"0" * 64 + b'"}'
    padded = doc + b" " * (800 - len(doc))     # under NAMES_BODY_MAX (1024), over 512
    before = rejected(n, "413")
    # a gateway JSON route, Content-Length over the cap: 413 before a byte is read
    rs, eof = raw_exchange(n.gateway_port, b"PUT /n/capped HTTP/1.1\r\nHost: t\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 800\r\n\r\n")
    assert len(rs) == 1 and rs[0].status == 413, rs
    j = rs[0].json()
    assert j["code"] == "payload_too_large" and j["retryable"] is False, j
    assert "exceeds 512 bytes (limits.max_body)" in j["message"], j
    assert rs[0].header("Connection").lower() == "close" and eof
    # chunked: cut as soon as the count passes the cap
    rs, eof = raw_exchange(n.gateway_port, b"PUT /n/capped HTTP/1.1\r\nHost: t\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n"
                           b"320\r\n" + padded + b"\r\n0\r\n\r\n")
    assert len(rs) == 1 and rs[0].status == 413, rs
    assert "(limits.max_body)" in rs[0].json()["message"]
    # POST /feed (route cap 1024) is held to the smaller cap too
    r = n.gw("POST", "/feed", body=padded, headers={"Content-Type": "application/json"})
    assert r.status == 413 and "limits.max_body" in r.json()["message"], r
    # the admin plane: a POST body over limits.max_body
    rs, eof = raw_exchange(n.admin_port, b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\n"
                           b"Content-Length: 513\r\n\r\n")
    assert len(rs) == 1 and rs[0].status == 413, rs
    assert "exceeds 512 bytes (limits.max_body)" in rs[0].json()["message"]
    assert n.metrics().sum("config_reloads_total") == 0     # the handler never ran
    assert rejected(n, "413") == before + 4
    # under the cap the route's handler has the body (not a 413)
    r = n.gw("PUT", "/n/capped", body=doc, headers={"Content-Type": "application/json"})
    assert r.status == 201 and r.json()["seq"] == 1, r
    # an object upload over limits.max_body, under storage.max_object: stored
    r = n.gw("PUT", "/o", body=b"u" * 3000)
    assert r.status == 201, r
    # live: raise the cap, reload, the same JSON body reaches its handler,
    # and the route's own cap (1024) still holds above it
    cfg["limits"]["max_body"] = "64KiB"
    n.write_config(cfg)
    assert n.post("/api/v1/reload").status == 202
    r = n.gw("PUT", "/n/capped", body=padded, headers={"Content-Type": "application/json"})
    assert r.status == 200 and r.json()["seq"] == 2, r
    r = n.gw("PUT", "/n/capped", body=padded + b" " * 300,
             headers={"Content-Type": "application/json"})
    assert r.status == 413 and "1024" in r.json()["message"], r
    # the admin plane keeps its own 4 KiB above a raised limits.max_body:
    # its routes read no body, and bodies come before the token check
    rs, eof = raw_exchange(n.admin_port, b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\n"
                           b"Content-Length: 4097\r\n\r\n")
    assert len(rs) == 1 and rs[0].status == 413, rs
    assert "exceeds 4096 bytes (the admin plane's body cap)" in rs[0].json()["message"]
