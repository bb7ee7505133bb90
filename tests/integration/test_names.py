"""Names (issue 12): the index service and PUT/GET /n/{name} on the gateway.

One node: publish, resolve, republish (seq + 1), history, ?fetch=1 serves the
object's verified bytes, token prefix scoping through the wall, bad names
refused with 400 naming the rule, the records' signatures checked from the
outside, metrics. The index runs opt-in (`services` lists "index")."""
import json
import os
import socket
import struct
import urllib.parse

import pytest

from conftest import (DEFAULT_BUNDLE, assert_envelope, b3sum_cid, install_wall, mint_token,
                      run_cli, stored, wait_until)

NAMES = {"services": ["gateway", "storage", "index"]}
WRITE_N = ("--prefix", "/n/", "--method", "GET", "--method", "HEAD", "--method", "PUT",
           "--ttl", "1h")


def npath(name, query=""):
    """The request path of a name: UTF-8, percent-encoded but for the
    characters a name keeps literally (letters/digits of ASCII, - . _ /)."""
    p = "/n/" + urllib.parse.quote(name.encode() if isinstance(name, str) else name,
                                   safe="/-._")
    return p + ("?" + query if query else "")


def put_name(node, name, cid, token=None, body=None, headers=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    if body is None:
        body = json.dumps({"cid": cid}).encode()
    return node.gw("PUT", npath(name), body=body, headers=h)


def node_id(node):
    r = node.get("/version")
    assert r.status == 200, r
    return r.json()["node_id"]


@pytest.fixture
def names_node(node_factory):
    return node_factory(config=NAMES)


def test_publish_resolve_republish_history(names_node):
    n = names_node
    me = node_id(n)
    a = stored(n, b"first version\n")
    b = stored(n, b"second version\n")

    r = put_name(n, "alice/home", a)
    assert r.status == 201, r
    assert r.json() == {"name": "alice/home", "cid": a, "seq": 1, "node_id": me}
    r = n.gw("GET", npath("alice/home"))
    assert r.status == 200, r
    assert r.json() == {"name": "alice/home", "cid": a, "seq": 1, "node_id": me}
    assert r.header("Cache-Control") == "no-cache"
    # republish: the next seq, 200 (the name was held)
    r = put_name(n, "alice/home", b)
    assert r.status == 200, r
    assert r.json() == {"name": "alice/home", "cid": b, "seq": 2, "node_id": me}
    r = put_name(n, "alice/home", b)   # the same cid again is still a new record
    assert r.status == 200 and r.json()["seq"] == 3, r
    assert n.gw("GET", npath("alice/home")).json()["seq"] == 3
    # history, oldest first
    r = n.gw("GET", npath("alice/home", "history=1"))
    assert r.status == 200, r
    assert r.json() == {"name": "alice/home", "records": [
        {"cid": a, "seq": 1, "node_id": me}, {"cid": b, "seq": 2, "node_id": me},
        {"cid": b, "seq": 3, "node_id": me}]}
    # unknown names
    r = n.gw("GET", npath("nobody/here"))
    assert_envelope(r, 404, "not_found")
    assert_envelope(n.gw("GET", npath("nobody/here", "history=1")), 404, "not_found")
    assert n.gw("HEAD", npath("alice/home")).status == 200
    m = n.metrics()
    assert m.get("index_names") == 1
    assert m.sum("index_publishes_total", result="created") == 1
    assert m.sum("index_publishes_total", result="updated") == 2
