"""CORS on the gateway (src/svc/gateway/cors.c, docs/api.md "CORS"), with raw
requests: public reads answer `Access-Control-Allow-Origin: *`, writes only
to the origins of `gateway.cors_origins`, preflights need no token but pay
the rate cap, and every refused Origin is a 403 counted in
rejected_total{reason="cors_origin"}.

The nodes here run init's default bundle (anonymous reads, writes need a
token): a preflight passing proves it skipped the wall, not that the policy
let it through.
"""
import json
import os

import pytest

from conftest import (CURL, DEFAULT_BUNDLE, assert_envelope, b3sum_cid, install_wall,
                      mint_token, obj_path, parse_responses, raw_connect, raw_exchange,
                      recv_all, run_tool,
                      wait_until)

ALLOWED = "http://127.0.0.1:9999"
OTHER = "https://console.example"
EXPOSE_READ = "ETag, Content-Range, Content-Length, Accept-Ranges"
WRITE_HEADERS = "Authorization, Content-Type, Content-Encoding, Idempotency-Key"
OCTETS = {"Content-Type": "application/octet-stream"}
WRITE = ("--prefix", "/", "--method", "GET", "--method", "HEAD", "--method", "PUT",
         "--method", "POST")


def cors_node(node_factory, origins=(ALLOWED,), config=None):
    cfg = {"gateway": {"cors_origins": list(origins)}}
    cfg.update(config or {})
    n = node_factory(cfg, start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    n.token = mint_token(n.data_dir, *WRITE)
    return n


def refused(n):
    return n.metrics().sum("rejected_total", reason="cors_origin")


def preflight(n, path, origin, method="PUT", headers="authorization,content-type"):
    h = {"Access-Control-Request-Method": method}
    if origin is not None:
        h["Origin"] = origin
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return n.gw("OPTIONS", path, headers=h)


def put(n, body, origin=None, token=True):
    h = dict(OCTETS)
    if token:
        h["Authorization"] = "Bearer " + n.token
    if origin:
        h["Origin"] = origin
    return n.gw("POST", "/o", body=body, headers=h)


def test_reads_are_public_with_exposed_headers(node_factory):
    """GET/HEAD of an object (and its 404, and a bad id's 400) carry ACAO *
    and the exposed headers, whatever the Origin or none; no Vary needed."""
    n = cors_node(node_factory)
    body = b"public and immutable\n" * 10
    r = put(n, body)
    assert r.status == 201, r
    cid = r.json()["cid"]
    for origin in (None, OTHER, "null"):
        h = {"Origin": origin} if origin else {}
        for method in ("GET", "HEAD"):
            r = n.gw(method, obj_path(cid), headers=h)
            assert r.status == 200, r
            assert r.header_all("Access-Control-Allow-Origin") == ["*"], r
            assert r.header("Access-Control-Expose-Headers") == EXPOSE_READ, r
            assert r.header("Vary") is None, r
            assert r.header("ETag") == '"%s"' % cid[3:], r
    r = n.gw("GET", obj_path(cid), headers={"Origin": OTHER, "Range": "bytes=2-9"})
    assert (r.status, r.body) == (206, body[2:10]), r
    assert r.header("Access-Control-Allow-Origin") == "*", r
    assert r.header("Content-Range") == "bytes 2-9/%d" % len(body), r
    r = n.gw("GET", obj_path("b3:" + "0" * 64), headers={"Origin": OTHER})
    assert r.status == 404 and r.header("Access-Control-Allow-Origin") == "*", r
    r = n.gw("GET", "/o/B3:nope", headers={"Origin": OTHER})
    assert r.status == 400 and r.header("Access-Control-Allow-Origin") == "*", r


def test_preflight_for_a_write_from_an_allowed_origin(node_factory):
    """204 with the origin echoed, Vary: Origin, the route's methods, the
    write headers and a Max-Age; no token sent, the default policy denies
    anonymous OPTIONS, so the preflight skipped the wall."""
    n = cors_node(node_factory, origins=(OTHER, ALLOWED))
    before = refused(n)
    for path, methods in (("/o", "POST, PUT, OPTIONS"),
                          (obj_path(b3sum_cid(b"x")), "GET, HEAD, PUT, OPTIONS"),
                          ("/n/alice/site", "GET, HEAD, PUT, OPTIONS")):
        r = preflight(n, path, ALLOWED)
        assert r.status == 204, r
        assert r.body == b"" and r.header("Content-Length") is None, r
        assert r.header_all("Access-Control-Allow-Origin") == [ALLOWED], r
        assert r.header("Vary") == "Origin", r
        assert r.header("Access-Control-Allow-Methods") == methods, r
        assert r.header("Access-Control-Allow-Headers") == WRITE_HEADERS, r
        assert r.header("Access-Control-Max-Age") == "600", r
        assert r.header("WWW-Authenticate") is None, r
    assert refused(n) == before


def test_write_from_an_allowed_origin_carries_the_origin(node_factory):
    """The actual write: 201, ACAO = the origin, Vary: Origin, Location
    exposed; without an Origin (curl) no CORS header at all."""
    n = cors_node(node_factory)
    body = b"uploaded from a page\n"
    r = put(n, body, origin=ALLOWED)
    assert r.status == 201, r
    assert r.json()["cid"] == b3sum_cid(body)
    assert r.header_all("Access-Control-Allow-Origin") == [ALLOWED], r
    assert r.header("Vary") == "Origin", r
    assert "Location" in r.header("Access-Control-Expose-Headers"), r
    r = put(n, b"from curl\n")
    assert r.status == 201, r
    assert r.header("Access-Control-Allow-Origin") is None and r.header("Vary") is None, r
    # The wall's refusals carry CORS too: the page can read why it failed.
    r = n.gw("POST", "/o", body=b"no token", headers=dict(OCTETS, Origin=ALLOWED))
    assert_envelope(r, 401, "unauthenticated")
    assert r.header_all("Access-Control-Allow-Origin") == [ALLOWED], r
    assert r.header("Vary") == "Origin", r
    r = n.gw("GET", obj_path(b3sum_cid(body)),
             headers={"Origin": OTHER, "Authorization": "Basic eDp5"})
    assert_envelope(r, 401, "unauthenticated")
    assert r.header_all("Access-Control-Allow-Origin") == ["*"], r


def test_forged_origin_preflight_and_write_are_403_and_counted(node_factory):
    """An Origin not listed: the preflight and the write itself (a token
    does not help: mTLS certificates ride along on their own) are 403
    cors_origin_refused, naming the origin, counted; nothing is stored."""
    n = cors_node(node_factory)
    before = refused(n)
    for origin in (OTHER, "null", ALLOWED + "/", ALLOWED.upper(), "http://127.0.0.1:99999"):
        r = preflight(n, "/o", origin)
        j = assert_envelope(r, 403, "cors_origin_refused")
        assert "gateway.cors_origins" in j["message"] and origin[:20] in j["message"], j
        assert r.header("Access-Control-Allow-Origin") is None, r
    body = b"a forged origin's upload\n"
    r = put(n, body, origin=OTHER)
    j = assert_envelope(r, 403, "cors_origin_refused")
    assert "Origin" in j["message"], j
    assert r.header("Access-Control-Allow-Origin") is None, r
    r = n.gw("PUT", "/n/alice/x", body=json.dumps({"cid": b3sum_cid(body)}),
             headers={"Origin": OTHER, "Authorization": "Bearer " + n.token})
    assert_envelope(r, 403, "cors_origin_refused")
    assert refused(n) == before + 7
    assert n.gw("GET", obj_path(b3sum_cid(body))).status == 404


def test_two_origin_fields_are_refused(node_factory):
    """Two Origin fields are ambiguous: refused even if one is listed."""
    n = cors_node(node_factory)
    before = refused(n)
    s = raw_connect(n.gateway_port)
    try:
        s.sendall(("OPTIONS /o HTTP/1.1\r\nHost: t\r\nOrigin: %s\r\nOrigin: %s\r\n"
                   "Access-Control-Request-Method: POST\r\n\r\n" % (ALLOWED, OTHER)).encode())
        data, _ = recv_all(s, timeout=5, until=lambda d: bool(parse_responses(d)[0]))
    finally:
        s.close()
    rs, _ = parse_responses(data)
    assert rs and rs[0].status == 403, data[:300]
    assert refused(n) == before + 1


def test_no_origins_configured_means_no_cross_origin_writes(node_factory):
    """The default (empty list): every write preflight is refused, a read
    preflight from anywhere is answered with *."""
    n = cors_node(node_factory, origins=())
    r = preflight(n, "/o", ALLOWED)
    assert_envelope(r, 403, "cors_origin_refused")
    r = preflight(n, obj_path(b3sum_cid(b"x")), OTHER, method="GET", headers="range")
    assert r.status == 204, r
    assert r.header("Access-Control-Allow-Origin") == "*", r
    assert r.header("Access-Control-Allow-Methods") == "GET, HEAD", r
    assert "Range" in r.header("Access-Control-Allow-Headers"), r
    # A plain OPTIONS (no Origin): the methods, no CORS headers.
    r = n.gw("OPTIONS", "/o")
    assert r.status == 204 and r.header("Allow") == "POST, PUT, OPTIONS", r
    assert r.header("Access-Control-Allow-Origin") is None, r


def test_origins_reload_live(node_factory):
    """gateway.cors_origins is live: after a reload the new origin passes."""
    n = cors_node(node_factory, origins=())
    assert preflight(n, "/o", OTHER).status == 403
    n.write_config({"gateway": {"cors_origins": [OTHER]}})
    r = n.post("/api/v1/reload")
    assert r.status == 202, r
    wait_until(lambda: preflight(n, "/o", OTHER).status == 204, 10, what="reload applied")


def test_preflights_pay_the_rate_cap_and_never_a_body(node_factory):
    """Token-free is not free: preflights count against limits.requests_per_second
    (429), and an OPTIONS with a body is 413 (the gate admits no body)."""
    n = cors_node(node_factory, config={"limits": {"requests_per_second": 5}})
    s = raw_connect(n.gateway_port)
    req = ("OPTIONS /o HTTP/1.1\r\nHost: t\r\nOrigin: %s\r\n"
           "Access-Control-Request-Method: POST\r\n\r\n" % ALLOWED).encode()
    try:
        s.sendall(req * 20)
        data, _ = recv_all(s, timeout=5, until=lambda b: b.count(b"HTTP/1.1 ") >= 20)
    finally:
        s.close()
    rs, _ = parse_responses(data)
    codes = [r.status for r in rs]
    assert 204 in codes and 429 in codes, codes
    assert set(codes) <= {204, 429}, codes
    wait_until(lambda: preflight(n, "/o", ALLOWED).status == 204, 5, what="bucket refilled")
    r = n.gw("OPTIONS", "/o", body=b"x" * 10,
             headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST"})
    assert r.status == 413, r


# ---------------------------------------------------------------- core refusals

def raw(port, data):
    return raw_exchange(port, data, timeout=5)[0]


def acao(r):
    return r.header_all("Access-Control-Allow-Origin")


def test_core_refusals_before_the_gate_are_readable_cross_origin(node_factory):
    """What the HTTP core refuses before the gate has seen the request
    (malformed, limits, unknown path, deadlines, shedding, the connection
    cap) carries Access-Control-Allow-Origin: * on the gateway, once, so a
    page can read why; the admin plane's refusals carry none."""
    n = cors_node(node_factory, config={"storage": {"max_object": "4KiB"},
                                        "timeouts": {"header": "300ms"}})
    o = b"Origin: " + OTHER.encode() + b"\r\n"
    cases = {
        400: b"GET /o HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        431: b"GET /o/x HTTP/1.1\r\nHost: t\r\n" + o + b"X-Big: " + b"b" * 20000 + b"\r\n\r\n",
        413: b"POST /o HTTP/1.1\r\nHost: t\r\n" + o + b"Content-Length: 4097\r\n\r\n",
        404: b"GET /nowhere HTTP/1.1\r\nHost: t\r\n" + o + b"\r\n",
        405: b"DELETE /o HTTP/1.1\r\nHost: t\r\n" + o + b"\r\n",
        408: b"GET /o/x HTTP/1.1\r\nHost: t\r\n" + o,          # the rest never comes
    }
    for status, req in cases.items():
        rs = raw(n.gateway_port, req)
        assert len(rs) == 1 and rs[0].status == status, (status, rs)
        assert rs[0].json()["code"], rs[0]
        assert acao(rs[0]) == ["*"], (status, rs[0])
    # the admin plane is not a public content gateway
    for req in (cases[431], cases[404], b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\n"
                b"Content-Length: 999999\r\n\r\n"):
        rs = raw(n.admin_port, req)
        assert len(rs) == 1 and rs[0].status in (404, 413, 431), rs
        assert acao(rs[0]) == [], rs[0]
    # after the gate, CORS stays the gate's: a forged origin's write gets none
    r = put(n, b"forged\n", origin=OTHER)
    assert_envelope(r, 403, "cors_origin_refused")
    assert acao(r) == [], r
    # and a public read's refusal by the wall carries one ACAO, not two
    r = n.gw("GET", obj_path(b3sum_cid(b"x")), headers={"Origin": OTHER,
                                                       "Authorization": "Basic eDp5"})
    assert_envelope(r, 401, "unauthenticated")
    assert acao(r) == ["*"], r


def test_shedding_refusals_are_readable_cross_origin(node_factory):
    """The node-wide rate cap's 429 (an unknown path pays it before routing)
    and the connection cap's canned 503 carry ACAO * too."""
    n = cors_node(node_factory, config={"limits": {"max_connections": 2,
                                                   "requests_per_second": 5}})
    rs = raw(n.gateway_port, b"".join(b"GET /nowhere%d HTTP/1.1\r\nHost: t\r\n\r\n" % i
                                      for i in range(12)))
    limited = [r for r in rs if r.status == 429]
    assert limited, [r.status for r in rs]
    assert all(acao(r) == ["*"] for r in rs), rs
    held = []
    try:
        for _ in range(2):
            s = raw_connect(n.gateway_port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            recv_all(s, timeout=3, until=lambda b: b.endswith(b"}"))
            held.append(s)
        rs = raw(n.gateway_port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        assert [r.status for r in rs] == [503], rs
        assert rs[0].json()["code"] == "overloaded"
        assert acao(rs[0]) == ["*"], rs[0]
    finally:
        for s in held:
            s.close()


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_core_refusals_over_h2_are_readable_cross_origin(node_factory, pki, tmp_dir):
    """The same over HTTP/2: a stream's 404, 413 and 431 answered by the
    core carry access-control-allow-origin: *."""
    cfg = dict(pki.tls_config(), storage={"max_object": "4KiB"})
    n = cors_node(node_factory, config=cfg)
    base = "https://localhost:%d" % n.gateway_port
    big = os.path.join(tmp_dir, "big")
    with open(big, "wb") as f:
        f.write(b"z" * 5000)
    cases = [
        (404, [base + "/nowhere"]),
        (413, ["-X", "POST", "--data-binary", "@" + big, base + "/o"]),
        (431, ["-H", "X-Big: " + "b" * 20000, base + "/o/x"]),
    ]
    for status, args in cases:
        p = run_tool([CURL, "-sS", "--http2", "--cacert", pki.path("ca.pem"), "-o", "/dev/null",
                      "-D", "-", "-H", "Origin: " + OTHER] + args)
        head = p.stdout.decode("latin-1").lower()
        assert head.startswith("http/2 %d" % status), (status, head)
        assert head.count("access-control-allow-origin: *\r\n") == 1, (status, head)
