"""The search service's catch-up from storage (docs/search.md "Catch-up"):
objects the gateway did not tell it of — stored over OAP/1, stored while
search was off, dropped from a full queue — are found by walking the store
at start and every search.sweep_interval, checked against their id before
their text is indexed, and sniffed when no type was recorded."""
import http.client
import json
import os
import ssl
import urllib.parse

from conftest import (SLOW, blob_file, flip_byte, mn_client, oap_node, stored, wait_until)
from test_names import put_name
from test_search import NAMES_SVC, SVC, hits, wait_indexed

WORDS = " ".join("word%d" % i for i in range(40000)).encode()   # ~ 350 KiB


def sweeps_done(n):
    return n.metrics().get("search_sweeps_total", result="done") or 0


def swept(n, result):
    return n.metrics().get("search_sweep_objects_total", result=result) or 0


def test_sweep_at_start_indexes_what_was_stored_without_search(node_factory):
    # search off: the gateway stores and tells no one
    n = node_factory(config={"services": [s for s in SVC if s != "search"]})
    small = stored(n, b"an alpaca grazes quietly\n", headers={"Content-Type": "text/plain"})
    big = stored(n, b"zebra " + WORDS, headers={"Content-Type": "text/plain"})
    png = stored(n, b"\x89PNG\r\n\x1a\n" + b"\0" * 64, headers={"Content-Type": "image/png"})
    bad_small = stored(n, b"a damaged walrus\n", headers={"Content-Type": "text/plain"})
    bad_big = stored(n, b"damaged narwhal " + WORDS, headers={"Content-Type": "text/plain"})
    n.stop()
    # two blobs changed on disk: one of one group (its id checks every
    # byte), one of several (the outboard, then group 0)
    flip_byte(blob_file(n, bad_small), 3)
    flip_byte(blob_file(n, bad_big), 5)
    n.write_config({"services": SVC})
    n.start()
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="a finished sweep")
    wait_indexed(n, 3)
    assert swept(n, "queued") == 3
    assert swept(n, "unverified") == 2
    assert [h["cid"] for h in hits(n, "alpaca")["results"]] == [small]
    # the text of a multi-group object is its first search.max_text bytes, checked
    assert [h["cid"] for h in hits(n, "zebra AND word10")["results"]] == [big]
    assert hits(n, "word39999")["count"] == 0   # past search.max_text
    assert hits(n, "walrus")["count"] == 0
    assert hits(n, "narwhal")["count"] == 0
    j = hits(n, "png")
    assert [(h["cid"], h["content_type"]) for h in j["results"]] == [(png, "image/png")]
    # a second start finds nothing new: nothing is indexed twice
    n.stop()
    n.start()
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="a finished sweep")
    assert n.metrics().get("search_documents") == 3
    assert swept(n, "queued") == 0   # the two damaged ones are looked at again, never queued
    assert swept(n, "unverified") == 2


def https_get(n, pki, path):
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    c = http.client.HTTPSConnection("localhost", n.gateway_port, context=ctx, timeout=5 * SLOW)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_sweep_indexes_objects_stored_over_oap_and_sniffs_their_type(node_factory, pki, tmp_dir):
    # an OAP/1 upload records no type: the sweep sniffs one, but leaves a
    # blob written less than a minute ago (search.sweep_interval if shorter)
    # for the next walk, in case it is a gateway upload between its commit
    # and its type
    svcs = ["gateway", "storage", "omnigate", "search"]
    n = oap_node(node_factory, pki, {"services": svcs})
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="the first sweep")
    src = os.path.join(tmp_dir, "note.txt")
    with open(src, "wb") as f:
        f.write(b"The capybara sat by the river.\n")
    p = mn_client(["put", src, "--peer", n.oap_peer, "--ca", pki.path("ca.pem")])
    assert p.returncode == 0, p
    n.stop()
    n.start()   # the walk at start: too young (the settle time is 60 s)
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="a sweep at start")
    assert swept(n, "young") == 1
    assert (n.metrics().get("search_documents") or 0) == 0
    n.stop()
    n.config["search"] = {"sweep_interval": "1s"}   # the settle time is 1 s now
    n.write_config(n.config, merge=False)
    n.start()
    wait_until(lambda: (n.metrics().get("search_documents") or 0) == 1, 20 * SLOW,
               what="the OAP object indexed by a sweep")
    status, body = https_get(n, pki, "/search?" + urllib.parse.urlencode({"q": "capybara"}))
    assert status == 200, body
    res = json.loads(body)["results"]
    assert len(res) == 1 and res[0]["content_type"].startswith("text/plain"), res
    assert res[0]["size"] == 31
    assert swept(n, "queued") == 1


def test_sweep_off(node_factory):
    n = node_factory(config={"services": [s for s in SVC if s != "search"]})
    stored(n, b"an ocelot\n", headers={"Content-Type": "text/plain"})
    n.stop()
    n.write_config({"services": SVC, "search": {"sweep_interval": "0s"}})
    n.start()
    # a positive signal first: a new upload is indexed (by the gateway's
    # notice); a sweep, had one run at start, would be done by then
    stored(n, b"a margay\n", headers={"Content-Type": "text/plain"})
    wait_indexed(n, 1)
    stored(n, b"a serval\n", headers={"Content-Type": "text/plain"})
    wait_indexed(n, 2)
    assert hits(n, "margay")["count"] == 1
    assert hits(n, "ocelot")["count"] == 0
    m = n.metrics()
    assert (m.get("search_sweeps_total", result="done") or 0) == 0
    assert (m.get("search_sweeps_total", result="failed") or 0) == 0
    assert m.get("search_documents") == 2


def test_sweep_indexes_names_the_index_holds(node_factory):
    # names published while search was off: the index service holds them,
    # the search index never heard of them
    n = node_factory(config={"services": [s for s in NAMES_SVC if s != "search"]})
    a = stored(n, b"a quiet object\n", headers={"Content-Type": "text/plain"})
    for i in range(70):   # more than one LIST page (64)
        assert put_name(n, "carol/album-%d" % i, a).status == 201
    assert put_name(n, "dave/kestrel", a).status == 201
    assert put_name(n, "dave/kestrel", a).status == 200   # seq 2
    n.stop()
    n.write_config({"services": NAMES_SVC})
    n.start()
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="a finished sweep")
    m = n.metrics()
    assert m.get("search_sweep_names_total", result="queued") == 71
    wait_until(lambda: (n.metrics().get("search_names") or 0) == 71, 10 * SLOW,
               what="71 names indexed")
    j = hits(n, "kestrel")
    assert [(h["cid"], h["name"]) for h in j["results"]] == [(a, "dave/kestrel")]
    assert hits(n, "album", limit=50)["count"] == 50
    # the next walk finds them all indexed at their seq
    n.stop()
    n.start()
    wait_until(lambda: sweeps_done(n) >= 1, 20 * SLOW, what="a finished sweep")
    assert (n.metrics().get("search_sweep_names_total", result="queued") or 0) == 0
    assert n.metrics().get("search_names") == 71
