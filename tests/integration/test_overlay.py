"""The overlay service (src/svc/overlay, docs/network.md): a GET of an object
this node does not hold fetches it from the providers the DHT names, over the
pinned peer plane, verified group by group before a byte is stored or served.

Three real nodes on loopback (gateway, storage, omnigate, dht, overlay),
B and C bootstrapping from A's DHT port:
- put on A, GET on C: the bytes, stored on C and announced;
- concurrent misses for one object share one fetch;
- the only provider gone: a clean 502/504, never bytes;
- an object nobody holds: 404.
"""
import concurrent.futures
import os
import time

import pytest

from conftest import b3sum_cid, free_ports, run_cli, stored, SLOW

BOOT_S = 20.0 * SLOW


def net_config(udp, oap, bootstrap=()):
    return {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                    "lookup_timeout": "2s"},
            "overlay": {"fetch_timeout": "10s"}}


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


def providers(node, cid):
    p = run_cli(["find", cid, "--config", node.config_path], timeout=20)
    return p.stdout if p.returncode == 0 else ""


@pytest.fixture
def trio(node_factory):
    udp = free_ports(3)
    oap = free_ports(3)
    a = node_factory(config=net_config(udp[0], oap[0]))
    boot = ["127.0.0.1:%d" % udp[0]]
    b = node_factory(config=net_config(udp[1], oap[1], boot))
    c = node_factory(config=net_config(udp[2], oap[2], boot))
    for n in (a, b, c):
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, BOOT_S,
                   "a routing table on " + n.tag)
    return a, b, c


def node_id(node):
    return node.get("/version").json()["node_id"]


def test_put_on_a_get_on_c(trio):
    a, b, c = trio
    data = os.urandom(5 * 65536 + 123)      # six groups: the outboard proves them
    cid = stored(a, data)
    wait_until(lambda: node_id(a) in providers(b, cid), 20 * SLOW, "A announced")
    r = c.gw("GET", "/o/" + cid)
    assert r.status == 200, (r, [l for l in c.log().splitlines() if "overlay" in l][-5:])
    assert r.body == data and b3sum_cid(r.body) == cid
    m = c.metrics()
    assert m.get("overlay_fetches_total", status="200") == 1
    assert m.get("overlay_fetch_bytes_total") == len(data)
    # now local: served without the network
    r = c.gw("GET", "/o/" + cid, headers={"Range": "bytes=70000-70009"})
    assert r.status == 206 and r.body == data[70000:70010]
    assert c.metrics().get("overlay_fetches_total", status="200") == 1
    # C announced its copy: B now finds two providers
    wait_until(lambda: node_id(c) in providers(b, cid), 20 * SLOW, "C announced its copy")


def test_concurrent_misses_share_one_fetch(trio):
    a, b, c = trio
    data = os.urandom(300000)
    cid = stored(a, data)
    wait_until(lambda: node_id(a) in providers(c, cid), 20 * SLOW, "A announced")
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: c.gw("GET", "/o/" + cid), range(8)))
    assert all(r.status == 200 and r.body == data for r in got), [r.status for r in got]
    m = c.metrics()
    assert m.get("peer_fetch_total", outcome="ok") == 1, m.text if hasattr(m, "text") else m
    assert m.get("overlay_fetch_bytes_total") == len(data)


def test_only_provider_gone_is_a_clean_error(trio):
    a, b, c = trio
    data = os.urandom(100000)
    cid = stored(a, data)
    wait_until(lambda: node_id(a) in providers(c, cid), 20 * SLOW, "A announced")
    a.stop()
    r = c.gw("GET", "/o/" + cid)
    assert r.status in (502, 504), r
    assert r.body != data
    j = r.json()
    assert j["code"] in ("bad_gateway", "gateway_timeout") and j["retryable"] is True
    m = c.metrics()
    assert m.sum("overlay_peer_failures_total") >= 1
    assert m.get("overlay_fetches_total", status=str(r.status)) == 1
    # nothing unverified was stored: still a miss
    assert c.gw("GET", "/o/" + cid).status in (502, 504)


def test_unknown_object_is_404(trio):
    a, b, c = trio
    cid = b3sum_cid(b"nobody holds this " + os.urandom(8))
    r = c.gw("GET", "/o/" + cid)
    assert r.status == 404, r
    assert "no provider" in r.json()["message"]
    assert c.metrics().get("overlay_fetches_total", status="404") == 1
