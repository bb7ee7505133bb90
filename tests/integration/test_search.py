"""The Search facet: the search service indexes what the gateway stores
(metadata, and the text of text/* objects) and GET /search answers FTS5
queries, refusing bad or too-broad ones with a 400 that names the problem,
and degrading to "partial" past its deadline (docs/search.md). Names
published through the gateway (PUT /n/{name}) are indexed too: a word of
the name finds the named cid, the latest publish wins."""
import os
import socket
import threading
import urllib.parse

from conftest import (DEFAULT_BUNDLE, SLOW, assert_envelope, b3sum_cid, install_wall, mint_token,
                      parse_responses, put_object, stored, wait_until)
from test_media import PNG
from test_names import put_name

SVC = ["gateway", "storage", "audit", "search"]


def search(node, q=None, limit=None, raw=None):
    if raw is not None:
        return node.gw("GET", "/search" + raw)
    params = {}
    if q is not None:
        params["q"] = q
    if limit is not None:
        params["limit"] = str(limit)
    return node.gw("GET", "/search?" + urllib.parse.urlencode(params))


def hits(node, q, limit=None):
    r = search(node, q, limit)
    assert r.status == 200, r
    return r.json()


def wait_indexed(node, n):
    wait_until(lambda: (node.metrics().get("search_documents") or 0) >= n, 10 * SLOW,
               what="%d documents indexed" % n)


def search_node(node_factory, **cfg):
    c = {"services": SVC}
    c.update(cfg)
    return node_factory(config=c)


def test_text_and_metadata_are_indexed(node_factory):
    n = search_node(node_factory)
    a = stored(n, b"the quick brown fox jumps over the lazy dog\n",
               headers={"Content-Type": "text/plain"})
    b = stored(n, b"a lazy afternoon in the garden\n", headers={"Content-Type": "text/markdown"})
    c = stored(n, PNG)   # sniffed image/png, no text
    wait_indexed(n, 3)
    j = hits(n, "lazy")
    assert j["partial"] is False
    assert [h["cid"] for h in j["results"]] == [b, a]   # newest first
    assert j["count"] == 2
    assert j["results"][1] == {"cid": a, "content_type": "text/plain", "size": 44}
    assert [h["cid"] for h in hits(n, "fox AND dog")["results"]] == [a]
    assert [h["cid"] for h in hits(n, "fox NOT lazy")["results"]] == []
    assert [h["cid"] for h in hits(n, '"lazy dog"')["results"]] == [a]
    assert [h["cid"] for h in hits(n, "gard*")["results"]] == [b]
    assert [h["cid"] for h in hits(n, "ctype:png")["results"]] == [c]
    assert [h["cid"] for h in hits(n, "(fox OR garden) AND lazy")["results"]] == [b, a]
    assert len(hits(n, "lazy", limit=1)["results"]) == 1
    m = n.metrics()
    assert m.get("search_indexed_total") == 3
    assert m.get("facet_latency_seconds_count", facet="search") == 8
    assert m.get("search_queries_total", result="ok") == 8


def test_text_cut_at_max_text(node_factory):
    n = search_node(node_factory, search={"max_text": 1024})
    body = b"early " * 100 + b" " * 2000 + b"lateword\n"
    stored(n, body, headers={"Content-Type": "text/plain"})
    wait_indexed(n, 1)
    assert hits(n, "early")["count"] == 1
    assert hits(n, "lateword")["count"] == 0


def test_refusals_name_the_problem(node_factory):
    n = search_node(node_factory)
    syntax = ['"open phrase', "fox AND", "(fox", "fox)", "NEAR(a b)", "title:fox", "fox -dog",
              "*", "fox ^", "AND"]
    for q in syntax:
        r = search(n, q)
        j = assert_envelope(r, 400, "bad_query")
        assert "query" in j["message"], (q, j)
    broad = ["", "   ", "a*", "fox a*"]
    for q in broad:
        assert_envelope(search(n, q), 400, "query_too_broad")
    assert_envelope(search(n, raw=""), 400, "query_too_broad")
    assert_envelope(search(n, "fox", limit=0), 400, "bad_request")
    assert_envelope(search(n, "fox", limit=51), 400, "bad_request")
    assert_envelope(search(n, raw="?q=fox&limit=x"), 400, "bad_request")
    assert_envelope(search(n, raw="?q=fox&page=2"), 400, "bad_request")
    assert_envelope(search(n, raw="?q=fox&q=dog"), 400, "bad_request")
    assert_envelope(search(n, raw="?q=%zz"), 400, "bad_request")
    assert_envelope(search(n, "x" * 300), 400, "bad_request")
    m = n.metrics()
    assert m.get("search_refused_total", reason="syntax") == len(syntax)
    assert m.get("search_refused_total", reason="too_broad") == len(broad) + 1
    assert m.get("search_refused_total", reason="limit") == 3
    assert m.get("search_refused_total", reason="query") == 3
    assert m.get("search_refused_total", reason="too_long") == 1
    # the service itself never saw them, and nothing was a 500
    assert (m.get("search_queries_total", result="bad") or 0) == 0
    assert m.sum("http_requests_total", code="500") == 0
    r = n.gw("POST", "/search?q=fox", body=b"")
    assert r.status == 405


def search_burst(node, q, limit, n):
    """n GET /search on n connections, opened first and then written in
    one tight loop, so the queries reach the search service together.
    Returns the n responses."""
    path = "/search?" + urllib.parse.urlencode({"q": q, "limit": str(limit)})
    req = ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode()
    socks = [socket.create_connection(("127.0.0.1", node.gateway_port), timeout=10 * SLOW)
             for _ in range(n)]
    try:
        for s in socks:
            s.sendall(req)
        out = []
        for s in socks:
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            rs, _ = parse_responses(data)
            assert len(rs) == 1, data[:200]
            out.append(rs[0])
        return out
    finally:
        for s in socks:
            s.close()


def test_partial_past_deadline(node_factory):
    # A 1 ms deadline, counted from the query's arrival at the search
    # service, and one query thread: of 64 queries that arrive together,
    # each returning 100 hits, the later ones wait past the deadline behind
    # the earlier ones. They answer 200 with what they found (nothing, or
    # a part) and "partial": true, never an error. (Queries sent one at a
    # time finish inside 1 ms on a fast machine: the test must not depend
    # on the machine's speed, only on queueing.)
    n = search_node(node_factory, search={"deadline": "1ms", "max_limit": 100, "readers": 1},
                    limits={"requests_per_second": 0})
    for i in range(150):
        stored(n, ("common seed%d\n" % i).encode(), headers={"Content-Type": "text/plain"})
    wait_indexed(n, 150)
    partial = answered = 0
    for _ in range(5):
        for r in search_burst(n, "common", 100, 64):
            assert r.status == 200, r
            j = r.json()
            assert len(j["results"]) == j["count"] <= 100
            assert j["partial"] or j["count"] == 100, j["count"]
            partial += j["partial"]
            answered += 1
        if partial:
            break
    assert partial > 0, answered
    m = n.metrics()
    assert m.get("facet_deadline_timeouts_total", facet="search") == partial
    assert m.get("search_queries_total", result="partial") == partial
    assert (m.get("search_queries_total", result="ok") or 0) == answered - partial
    assert m.sum("http_requests_total", code="500") == 0


def test_index_survives_restart(node_factory):
    n = search_node(node_factory)
    cid = stored(n, b"persistent words live here\n", headers={"Content-Type": "text/plain"})
    wait_indexed(n, 1)
    n.stop()
    n.start()
    assert [h["cid"] for h in hits(n, "persistent")["results"]] == [cid]
    assert n.metrics().get("search_documents") == 1


def test_amnesia_keeps_the_index_in_memory(node_factory):
    n = search_node(node_factory, amnesia=True)
    cid = stored(n, b"ephemeral words\n", headers={"Content-Type": "text/plain"})
    wait_indexed(n, 1)
    assert [h["cid"] for h in hits(n, "ephemeral")["results"]] == [cid]
    import os
    assert not os.path.exists(os.path.join(n.data_dir, "search"))


def test_without_search_service(node):
    r = search(node, "fox")
    assert_envelope(r, 503, "unavailable", retryable=True)
    # a PUT is unaffected
    stored(node, b"no search here", headers={"Content-Type": "text/plain"})


def test_full_queue_drops_never_blocks(node_factory):
    # queue 1, eight clients uploading 16 KiB texts at once: documents
    # arrive faster than one worker indexes them, the extra ones are
    # dropped and counted, and every PUT still answers 201.
    n = search_node(node_factory, search={"queue": 1, "max_text": "16KiB"},
                    limits={"requests_per_second": 0})
    pad = b"z" * 16000
    codes = []

    def client(k):
        for i in range(40):
            r = put_object(n, b"burst %d %d " % (k, i) + pad, headers={"Content-Type": "text/plain"})
            codes.append(r.status)

    ts = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert codes == [201] * 320
    # Each document is indexed or counted as dropped. The notifications are
    # sent after the 201s, search_queue_depth falls to 0 when the last batch
    # is handed to the writer thread, and search_indexed_total and
    # search_documents are counted when that batch is done: poll the sum.
    def settled():
        m = n.metrics()
        done = ((m.get("search_indexed_total") or 0)
                + (m.get("search_index_dropped_total", reason="queue_full") or 0)
                + (m.get("search_index_dropped_total", reason="notify") or 0))
        return m if done == 320 and m.get("search_documents") == m.get("search_indexed_total") else None
    m = wait_until(settled, 10 * SLOW, interval=0.05,
                   what="all 320 indexed or dropped, search_documents == search_indexed_total")
    assert (m.get("search_queue_depth") or 0) == 0
    assert (m.get("search_index_dropped_total", reason="queue_full") or 0) > 0


def test_sandbox_bites(node_factory, tmp_dir):
    # The search role's profile: an exec kills it (SIGSYS), the supervisor
    # restarts it, and the index it had is served again.
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes)
    with open(os.path.join(probes, "search"), "w") as f:
        f.write("exec")
    n = node_factory(config={"services": SVC}, start=False, env={"MN_TEST_SANDBOX_PROBE": probes})
    n.start()
    assert not os.path.exists(os.path.join(probes, "search"))
    wait_until(lambda: n.metrics().get("service_restarts_total", service="search") == 1, 10 * SLOW,
               what="search restarted")
    assert n.metrics().get("sandbox_violations_total", role="search") == 1
    cid = stored(n, b"after the restart\n", headers={"Content-Type": "text/plain"})
    wait_until(lambda: search(n, "restart").status == 200 and
               [h["cid"] for h in search(n, "restart").json()["results"]] == [cid], 10 * SLOW,
               what="indexed after restart")


# ---------------------------------------------------------------- names

NAMES_SVC = SVC + ["index"]


def wait_names(node, n):
    """n names indexed anew (new or re-pointed) since the node started."""
    wait_until(lambda: (node.metrics().get("search_names_indexed_total") or 0) >= n, 10 * SLOW,
               what="%d names indexed" % n)


def test_names_are_indexed_latest_wins_and_persist(node_factory):
    n = node_factory(config={"services": NAMES_SVC})
    a = stored(n, b"plain words of the first object\n", headers={"Content-Type": "text/plain"})
    absent = b3sum_cid(b"an object this node never stored")
    wait_indexed(n, 1)
    assert put_name(n, "alice/holiday-photos", a).status == 201
    assert put_name(n, "bob/tax_notes", absent).status == 201
    wait_names(n, 2)
    # a word of the name: the named cid, the name, the object's own size and type
    j = hits(n, "holiday")
    assert j["results"] == [{"cid": a, "name": "alice/holiday-photos",
                             "content_type": "text/plain", "size": 32}], j
    # an object the index does not hold: type and size are null
    assert hits(n, "notes")["results"] == [{"cid": absent, "name": "bob/tax_notes",
                                            "content_type": None, "size": None}]
    assert [h.get("name") for h in hits(n, "alice OR bob")["results"]] == \
        ["bob/tax_notes", "alice/holiday-photos"]   # newest first
    assert [h["cid"] for h in hits(n, "name:photos")["results"]] == [a]
    assert hits(n, "body:holiday")["count"] == 0   # the name is not the object's text
    # the object's own row carries no name
    assert hits(n, "plain")["results"] == [{"cid": a, "content_type": "text/plain", "size": 32}]

    # re-pointed: the new cid, not the old
    b = stored(n, b"the second object\n", headers={"Content-Type": "text/plain"})
    assert put_name(n, "alice/holiday-photos", b).status == 200
    wait_names(n, 3)
    assert hits(n, "holiday")["results"] == [{"cid": b, "name": "alice/holiday-photos",
                                              "content_type": "text/plain", "size": 18}]
    # the same cid again (seq 3): nothing to re-index, still one row
    assert put_name(n, "alice/holiday-photos", b).status == 200
    assert [h["cid"] for h in hits(n, "holiday")["results"]] == [b]
    m = n.metrics()
    assert m.get("search_names") == 2
    assert (m.get("search_index_dropped_total", reason="notify") or 0) == 0

    # restart: still found, still the latest
    n.stop()
    n.start()
    assert hits(n, "holiday")["results"] == [{"cid": b, "name": "alice/holiday-photos",
                                              "content_type": "text/plain", "size": 18}]
    assert [h["cid"] for h in hits(n, "notes")["results"]] == [absent]
    assert n.metrics().get("search_names") == 2


def test_only_published_names_are_indexed(node_factory):
    # Behind the default wall: a name published with a tenant's token is
    # indexed; one the wall or the name rules refused (4xx) never is.
    n = node_factory(config={"services": NAMES_SVC}, start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    up = mint_token(n.data_dir, "--prefix", "/o", "--method", "POST", "--ttl", "1h")
    alice = mint_token(n.data_dir, "--prefix", "/n/alice/", "--method", "PUT", "--ttl", "1h")
    finder = mint_token(n.data_dir, "--prefix", "/search", "--method", "GET", "--ttl", "1h")
    r = n.gw("POST", "/o", body=b"garden diary\n", headers={"Authorization": "Bearer " + up})
    assert r.status in (200, 201), r
    cid = r.json()["cid"]
    assert put_name(n, "alice/garden-diary", cid, token=alice).status == 201
    assert_envelope(put_name(n, "bob/garden-secret", cid, token=alice), 403, "forbidden")
    assert_envelope(put_name(n, "alice/garden-secret", cid), 401, "unauthenticated")
    r = n.gw("PUT", "/n/alice/garden%20plot", body=b'{"cid":"%s"}' % cid.encode(),
             headers={"Authorization": "Bearer " + alice, "Content-Type": "application/json"})
    assert_envelope(r, 400, "bad_name")
    assert_envelope(put_name(n, "alice/garden-bad", cid, token=alice, body=b'{"cid":"b3:00"}'),
                    400, "bad_request")
    wait_names(n, 1)
    r = n.gw("GET", "/search?q=name%3Agarden", headers={"Authorization": "Bearer " + finder})
    assert r.status == 200, r
    assert [(h["cid"], h.get("name")) for h in r.json()["results"]] == \
        [(cid, "alice/garden-diary")]
    assert n.metrics().get("search_names") == 1
    # without a token, /search is refused by the policy (a facet route)
    assert n.gw("GET", "/search?q=garden").status in (401, 403)


def test_amnesia_keeps_names_in_memory(node_factory):
    n = node_factory(config={"services": NAMES_SVC, "amnesia": True})
    cid = b3sum_cid(b"elsewhere")
    assert put_name(n, "carol/ephemeral-name", cid).status == 201
    wait_names(n, 1)
    assert [(h["cid"], h["name"]) for h in hits(n, "ephemeral")["results"]] == \
        [(cid, "carol/ephemeral-name")]
    assert not os.path.exists(os.path.join(n.data_dir, "search"))
