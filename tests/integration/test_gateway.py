"""Gateway workers: routes, shared metrics that survive restarts."""
import os
import signal

from conftest import SLOW, parse_responses, pid_alive, raw_connect, recv_all, wait_until

UNKNOWN_ID = "b3:" + "0" * 64      # well formed, never stored


def gw_children(node):
    """The gateway workers among the node's children (storage runs beside them)."""
    return [c for c in node.children() if c["service"] == "gateway"]


def gw_pids(node):
    return [c["pid"] for c in gw_children(node) if c["pid"] > 0]


def allow_set(r):
    return {m.strip() for m in (r.header("Allow") or "").split(",")}


def test_gateway_healthz(node):
    r = node.gw("GET", "/healthz")
    assert r.status == 200
    assert r.header("Content-Type") == "application/json"
    assert r.json() == {"status": "ok", "service": "gateway", "worker": 0}
    h = node.gw("HEAD", "/healthz")
    assert h.status == 200 and h.body == b""
    assert int(h.header("Content-Length")) == len(r.body)


def test_gateway_404_405(node):
    envelope = {"code", "message", "retryable", "corr_id"}
    r = node.gw("GET", "/nope")
    assert r.status == 404
    j = r.json()
    assert set(j) == envelope and j["code"] == "not_found"
    r = node.gw("POST", "/healthz", body=b"")
    assert r.status == 405
    assert allow_set(r) == {"GET", "HEAD"}
    assert r.json()["code"] == "method_not_allowed"
    # the object routes: /o takes POST and PUT, /o/{b3} GET, HEAD and PUT; both OPTIONS (CORS)
    r = node.gw("DELETE", "/o")
    assert r.status == 405, r
    assert allow_set(r) == {"POST", "PUT", "OPTIONS"}, r
    j = r.json()
    assert set(j) == envelope and j["code"] == "method_not_allowed" and j["retryable"] is False
    r = node.gw("DELETE", "/o/" + UNKNOWN_ID)
    assert r.status == 405, r
    assert allow_set(r) == {"GET", "HEAD", "PUT", "OPTIONS"}, r
    j = r.json()
    assert set(j) == envelope and j["code"] == "method_not_allowed" and j["retryable"] is False
    # /o/{b3} is a known route: a malformed id is 400, an unknown well-formed one 404
    r = node.gw("GET", "/o/xyz")
    assert r.status == 400, r
    j = r.json()
    assert set(j) == envelope and j["code"] == "bad_request"
    r = node.gw("GET", "/o/" + UNKNOWN_ID)
    assert r.status == 404, r
    j = r.json()
    assert set(j) == envelope and j["code"] == "not_found"
    m = node.metrics()
    assert m.get("http_requests_total", service="gateway", route="unmatched", code="404") == 1
    assert m.get("http_requests_total", service="gateway", route="/healthz", code="405") == 1
    assert m.get("http_requests_total", service="gateway", route="/o", code="405") == 1
    assert m.get("http_requests_total", service="gateway", route="/o/{b3}", code="405") == 1
    assert m.get("http_requests_total", service="gateway", route="/o/{b3}", code="400") == 1
    assert m.get("http_requests_total", service="gateway", route="/o/{b3}", code="404") == 1


def test_gateway_pipelining(node):
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" * 2 +
                  b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data, eof = recv_all(s)
    finally:
        s.close()
    rs, rest = parse_responses(data)
    assert [r.status for r in rs] == [200, 200, 404] and rest == b"" and eof


def test_counters_survive_worker_restart(node):
    for _ in range(3):
        assert node.gw("GET", "/healthz").status == 200
    old = gw_pids(node)
    assert len(old) == 1, node.children()
    storage = [c for c in node.children() if c["service"] == "storage"]
    os.kill(old[0], signal.SIGKILL)
    wait_until(lambda: [c["state"] for c in gw_children(node)] == ["ready"]
               and gw_pids(node) != old, 10 * SLOW, what="replacement ready")
    for _ in range(2):
        assert node.gw("GET", "/healthz").status == 200
    m = node.metrics()
    assert m.get("http_requests_total", service="gateway", route="/healthz", code="200") == 5
    assert m.get("request_latency_seconds_count", service="gateway", route="/healthz",
                 method="GET") == 5
    assert m.get("service_restarts_total", service="gateway") == 1
    # storage was not touched by a gateway restart
    assert m.sum("service_restarts_total", service="storage") == 0
    assert [(c["pid"], c["restarts"], c["state"]) for c in node.children()
            if c["service"] == "storage"] == [(storage[0]["pid"], 0, "ready")]


def test_open_connections_gauge(node):
    held = []
    try:
        for _ in range(3):
            s = raw_connect(node.gateway_port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            recv_all(s, timeout=3, until=lambda b: b.endswith(b"}"))
            held.append(s)
        wait_until(lambda: node.metrics().get("open_connections", service="gateway") == 3,
                   2 * SLOW, what="open_connections{gateway} == 3")
    finally:
        for s in held:
            s.close()
    wait_until(lambda: node.metrics().get("open_connections", service="gateway") == 0,
               2 * SLOW, what="open_connections{gateway} back to 0")


def test_workers_share_the_listener(node_factory):
    n = node_factory(workers=2)
    wait_until(lambda: [c["state"] for c in gw_children(n)] == ["ready", "ready"], 5 * SLOW,
               what="two workers ready")
    # kill worker 0: worker 1 keeps answering on the same port meanwhile
    w0 = [c for c in gw_children(n) if c["worker"] == 0][0]["pid"]
    os.kill(w0, signal.SIGKILL)
    wait_until(lambda: not pid_alive(w0), 2 * SLOW, what="worker 0 gone")
    for _ in range(5):
        r = n.gw("GET", "/healthz")
        assert r.status == 200
    wait_until(lambda: [c["state"] for c in gw_children(n)] == ["ready", "ready"], 5 * SLOW,
               what="worker 0 back")
