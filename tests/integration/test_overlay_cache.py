"""Fetched copies are a cache (docs/network.md "Fetched copies are a cache"):
what the overlay fetches on a local miss is evictable past
storage.cache_bytes, oldest fetched first; what a client PUT here, and what
a REPLICATE asked this node to keep, is owned and never evicted.

Two real nodes on loopback (gateway, storage, omnigate, dht, overlay), B
bootstrapping from A's DHT port, B with storage.cache_bytes = 250000 and
objects of 100000 bytes (two cache copies fit, three do not):
- an object fetched on B, then REPLICATEd to B over the peer plane: promoted
  (no longer counted as cache);
- three misses on B: the third evicts the first (its blob is gone, a GET
  fetches it again, storage_cache_evictions_total counts it); the copies
  still cached, the object PUT on B and the replicated one stay.
"""
import os
import subprocess

import pytest

from conftest import wait_for as wait_until
from conftest import (OAP_END, OAP_REQ, OAP_START, SLOW, OapConn, blob_file, free_ports,
                      oap_json, oap_tls_context, raw_connect, run_cli, stored)

BOOT_S = 20.0 * SLOW
PEER_SNI = "peer.macronode.invalid"
OBJ = 100000
CACHE = 250000


def net_config(udp, oap, bootstrap=(), cache=None):
    cfg = {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
           "oap": {"addr": "127.0.0.1:%d" % oap},
           "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                   "lookup_timeout": "2s"},
           "overlay": {"fetch_timeout": "10s"},
           "storage": {"replicas": 1}}   # no repair: only our REPLICATE pins
    if cache is not None:
        cfg["storage"]["cache_bytes"] = cache
    return cfg


def node_id(node):
    return node.get("/version").json()["node_id"]


def providers(node, cid):
    p = run_cli(["find", cid, "--config", node.config_path], timeout=20)
    return p.stdout if p.returncode == 0 else ""


class PeerConn(OapConn):
    """An OAP/1 connection on the peer plane: SNI peer.macronode.invalid and
    a self-signed Ed25519 client certificate (a node identity)."""

    def __init__(self, port, cert, key, timeout=20.0):
        ctx = oap_tls_context()
        ctx.load_cert_chain(cert, key)
        self.raw = raw_connect(port)
        self.sock = ctx.wrap_socket(self.raw, server_hostname=PEER_SNI)
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""


def peer_cert(d):
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ed25519", "-nodes",
                        "-keyout", "peer.key", "-out", "peer.pem", "-subj", "/CN=peer",
                        "-days", "2"], cwd=d, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return os.path.join(d, "peer.pem"), os.path.join(d, "peer.key")


def replicate(node, cid, cert):
    port = int(node.config["oap"]["addr"].rsplit(":", 1)[1])
    c = PeerConn(port, *cert)
    try:
        c.hello()
        c.send_frame(OAP_REQ | OAP_START | OAP_END, code=6, corr=7, payload=oap_json({"cid": cid}))
        return c.recv_frame()
    finally:
        c.close()


@pytest.fixture
def pair(node_factory):
    udp = free_ports(2)
    oap = free_ports(2)
    a = node_factory(config=net_config(udp[0], oap[0]))
    b = node_factory(config=net_config(udp[1], oap[1], ["127.0.0.1:%d" % udp[0]], CACHE))
    for n in (a, b):
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, BOOT_S,
                   "a routing table on " + n.tag)
    return a, b


def fetches(node):
    """Objects fetched from a provider (FETCH answers from a local copy count
    in overlay_fetches_total too, not here)."""
    return node.metrics().get("peer_fetch_total", outcome="ok") or 0


def cache_state(node):
    m = node.metrics()
    return (m.get("storage_cache_objects"), m.get("storage_cache_bytes"),
            m.get("storage_cache_evictions_total") or 0)


def test_cache_evicts_oldest_fetched_never_owned(pair, tmp_dir):
    a, b = pair
    aid = node_id(a)
    owned = os.urandom(OBJ)
    owned_cid = stored(b, owned)                     # PUT on B: owned
    objs = [os.urandom(OBJ) for _ in range(4)]
    cids = [stored(a, d) for d in objs]
    for cid in cids:
        wait_until(lambda cid=cid: aid in providers(b, cid), 20 * SLOW, "A announced " + cid)

    # R: fetched on a miss (cached), then REPLICATEd here: promoted to owned
    r_cid, x_cids = cids[0], cids[1:]
    r = b.gw("GET", "/o/" + r_cid)
    assert r.status == 200 and r.body == objs[0], r
    assert cache_state(b) == (1, OBJ, 0)
    f = replicate(b, r_cid, peer_cert(tmp_dir))
    assert f is not None and f.code == 200, f
    assert cache_state(b) == (0, 0, 0)
    assert fetches(b) == 1                           # pinned where it was, no second fetch

    # three misses: two fit, the third evicts the oldest fetched
    for i, cid in enumerate(x_cids[:2]):
        r = b.gw("GET", "/o/" + cid)
        assert r.status == 200 and r.body == objs[1 + i], r
    assert cache_state(b) == (2, 2 * OBJ, 0)
    assert os.path.exists(blob_file(b, x_cids[0]))
    r = b.gw("GET", "/o/" + x_cids[2])
    assert r.status == 200 and r.body == objs[3], r
    assert cache_state(b) == (2, 2 * OBJ, 1)
    assert not os.path.exists(blob_file(b, x_cids[0]))
    assert os.path.exists(blob_file(b, x_cids[1]))
    assert os.path.exists(blob_file(b, x_cids[2]))

    # owned and replicated copies: still here, served without a fetch
    before = fetches(b)
    for cid, data in ((owned_cid, owned), (r_cid, objs[0]), (x_cids[2], objs[3])):
        r = b.gw("GET", "/o/" + cid)
        assert r.status == 200 and r.body == data, (cid, r)
    assert fetches(b) == before
    assert os.path.exists(blob_file(b, owned_cid)) and os.path.exists(blob_file(b, r_cid))

    # the evicted one is a miss again: fetched once more (and evicts x1)
    r = b.gw("GET", "/o/" + x_cids[0])
    assert r.status == 200 and r.body == objs[1], r
    assert fetches(b) == before + 1
    assert cache_state(b) == (2, 2 * OBJ, 2)
    assert not os.path.exists(blob_file(b, x_cids[1]))

    # the accounting is durable: a restart of B reads the same totals
    b.stop()
    b.start()
    wait_until(lambda: cache_state(b)[:2] == (2, 2 * OBJ), 10 * SLOW, "cache totals after restart")
    for cid in (owned_cid, r_cid):
        assert os.path.exists(blob_file(b, cid))
