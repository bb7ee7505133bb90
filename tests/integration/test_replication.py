"""Replication (docs/network.md "Replication"): every object written on a node
is kept at storage.replicas distinct nodes by the overlay's repair loop, which
finds peers through signed node records in the DHT and asks them to
REPLICATE (OAP/1, peer plane only) — and heals the count when a holder goes.

Four real nodes on loopback (gateway, storage, omnigate, dht, overlay), B, C
and D bootstrapping from A's DHT port, a repair pass every 2 s:
- put on A with replicas 3: within a deadline the DHT names 3 distinct
  providers, each of which serves the object;
- one holder (not A) killed: the loop heals back to 3 on the remaining node;
- REPLICATE from a client that is not a node (no peer certificate) is 403.
"""
import os

import pytest

from conftest import wait_for as wait_until
from conftest import (OAP_END, OAP_REQ, OAP_START, SLOW, OapConn, b3sum_cid, free_ports,
                      oap_json, run_cli, stored)

BOOT_S = 20.0 * SLOW
HEAL_S = 25.0 * SLOW


def net_config(udp, oap, bootstrap=()):
    return {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                    "lookup_timeout": "2s"},
            "storage": {"replicas": 3},
            "overlay": {"fetch_timeout": "10s", "repair_interval": "2s"}}


def node_id(node):
    return node.get("/version").json()["node_id"]


def holders(asker, nodes, cid):
    p = run_cli(["find", cid, "--config", asker.config_path], timeout=20)
    out = p.stdout if p.returncode == 0 else ""
    return [n for n in nodes if n.nid in out]


@pytest.fixture
def quad(node_factory):
    udp = free_ports(4)
    oap = free_ports(4)
    a = node_factory(config=net_config(udp[0], oap[0]))
    boot = ["127.0.0.1:%d" % udp[0]]
    rest = [node_factory(config=net_config(udp[i], oap[i], boot)) for i in (1, 2, 3)]
    nodes = [a] + rest
    for n in nodes:
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, BOOT_S,
                   "a routing table on " + n.tag)
        n.nid = node_id(n)
    # every node has published its node record and seen its peers alive
    for n in nodes:
        wait_until(lambda n=n: n.metrics().sum("repair_peers_alive") >= 3, BOOT_S,
                   "three live peers seen by " + n.tag)
    return nodes


def test_three_copies_and_heal(quad):
    a, b, c, d = quad
    assert a.metrics().get("rf_target") == 3
    data = os.urandom(3 * 65536 + 77)
    cid = stored(a, data)
    got = wait_until(lambda: len(holders(b, quad, cid)) >= 3 and holders(b, quad, cid),
                     HEAL_S, "three providers")
    assert a in got, [n.tag for n in got]
    for n in got:
        m = n.metrics()
        # held locally: served without a fetch on miss
        before = m.sum("overlay_fetches_total")
        r = n.gw("GET", "/o/" + cid)
        assert r.status == 200 and r.body == data, (n.tag, r)
        assert n.metrics().sum("overlay_fetches_total") == before
    # A holder announces its copy before it answers REPLICATE, and A counts
    # the request when that answer is in: the providers can be seen first.
    def replicated():
        m = a.metrics()
        return ((m.get("repair_requests_total", result="stored") or 0) >= 2
                and (m.get("repair_bytes_total") or 0) >= 2 * len(data))
    wait_until(replicated, HEAL_S, "two copies pushed by A (repair_requests_total{result=stored}, "
               "repair_bytes_total)")
    # one holder other than A goes; the one node left without a copy gets it
    victim = next(n for n in got if n is not a)
    spare = next(n for n in quad if n not in got)
    victim.stop()
    wait_until(lambda: spare in holders(a, quad, cid), HEAL_S, "a copy on the spare node")
    # counted when the copy is pinned and answered, after it was announced
    wait_until(lambda: (spare.metrics().get("oap_replicate_total", result="stored") or 0) >= 1,
               HEAL_S, "oap_replicate_total{result=stored} on the spare node")
    r = spare.gw("GET", "/o/" + cid)
    assert r.status == 200 and r.body == data
    # the next passes see three live copies again
    wait_until(lambda: a.metrics().get("rf_observed") == 3, HEAL_S, "rf_observed back to 3")


def test_replicate_needs_the_peer_plane(quad):
    a = quad[0]
    port = int(a.config["oap"]["addr"].rsplit(":", 1)[1])
    c = OapConn(port)
    try:
        c.hello()
        cid = b3sum_cid(b"not asked by a node")
        c.send_frame(OAP_REQ | OAP_START | OAP_END, code=6, corr=7,
                     payload=oap_json({"cid": cid}))
        f = c.recv_frame()
        assert f is not None and f.code == 403, f
        assert b"peer plane" in f.payload, f.payload
    finally:
        c.close()
    assert a.metrics().get("oap_replicate_total", result="not_peer") == 1
