"""The Search facet: the search service indexes what the gateway stores
(metadata, and the text of text/* objects) and GET /search answers FTS5
queries, refusing bad or too-broad ones with a 400 that names the problem,
and degrading to "partial" past its deadline (docs/search.md)."""
import os
import threading
import time
import urllib.parse

from conftest import assert_envelope, put_object, stored, wait_until
from test_media import PNG

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
    wait_until(lambda: (node.metrics().get("search_documents") or 0) >= n, 10,
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


def test_partial_past_deadline(node_factory):
    # A 1 ms deadline, counted from the query's arrival, while the worker
    # indexes batches of 16 KiB texts: queries that waited or ran past it
    # answer 200 with what they found and "partial": true, never an error.
    n = search_node(node_factory, search={"deadline": "1ms", "max_limit": 100})
    for i in range(50):
        stored(n, ("common seed%d\n" % i).encode(), headers={"Content-Type": "text/plain"})
    wait_indexed(n, 50)
    words = " ".join("w%d" % i for i in range(2500)).encode()[:16000]
    done = []

    def writer():
        for i in range(300):
            stored(n, b"common " + words + b" doc%d" % i, headers={"Content-Type": "text/plain"})
        done.append(True)

    t = threading.Thread(target=writer)
    t.start()
    partial = answered = 0
    try:
        while not done and answered < 2000:
            r = search(n, "common", limit=100)
            assert r.status == 200, r
            j = r.json()
            assert len(j["results"]) == j["count"] <= 100
            partial += j["partial"]
            answered += 1
            time.sleep(0.01)   # under the node's request rate
    finally:
        t.join()
    assert partial > 0, answered
    m = n.metrics()
    assert m.get("facet_deadline_timeouts_total", facet="search") == partial
    assert m.get("search_queries_total", result="partial") == partial


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
    wait_until(lambda: (n.metrics().get("search_queue_depth") or 0) == 0, 10, what="queue drained")
    m = n.metrics()
    full = m.get("search_index_dropped_total", reason="queue_full") or 0
    lost = m.get("search_index_dropped_total", reason="notify") or 0
    assert full > 0
    # each document was indexed or counted as dropped
    assert m.get("search_indexed_total") + full + lost == 320, (m.get("search_indexed_total"), full, lost)
    assert m.get("search_documents") == m.get("search_indexed_total")


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
    wait_until(lambda: n.metrics().get("service_restarts_total", service="search") == 1, 10,
               what="search restarted")
    assert n.metrics().get("sandbox_violations_total", role="search") == 1
    cid = stored(n, b"after the restart\n", headers={"Content-Type": "text/plain"})
    wait_until(lambda: search(n, "restart").status == 200 and
               [h["cid"] for h in search(n, "restart").json()["results"]] == [cid], 10,
               what="indexed after restart")
