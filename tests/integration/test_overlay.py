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
import base64
import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import threading

import pytest

from conftest import wait_for as wait_until
from conftest import (OAP_APP_HELLO, OAP_APP_OBJECTS, OAP_END, OAP_GET, OAP_HDR, OAP_HDR_LEN,
                      OAP_HELLO_REPLY, OAP_RESP, OAP_START, SLOW, b3sum_cid, free_ports,
                      blob_file, identity_seed, oap_frame, run_cli, stored)

BOOT_S = 20.0 * SLOW


def net_config(udp, oap, bootstrap=()):
    return {"services": ["gateway", "storage", "omnigate", "dht", "overlay", "index"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                    "lookup_timeout": "2s"},
            "overlay": {"fetch_timeout": "10s"},
            "storage": {"replicas": 1}}   # no repair copies: these tests count fetches


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


def a_udp(node):
    return int(node.config["dht"]["addr"].rsplit(":", 1)[1])


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


def test_name_on_a_fetched_through_the_network_on_c(trio):
    """GET /n/{name}?fetch=1 on a node that holds neither the name nor the
    object: the index resolves the name in the DHT, the overlay fetches the
    object, verified, and it is served."""
    a, b, c = trio
    data = os.urandom(200000)
    cid = stored(a, data)
    r = a.gw("PUT", "/n/team/report", body=json.dumps({"cid": cid}).encode(),
             headers={"Content-Type": "application/json"})
    assert r.status in (200, 201), r
    wait_until(lambda: node_id(a) in providers(c, cid), 20 * SLOW, "A announced")
    r = wait_until(lambda: (lambda x: x if x.status == 200 else None)(
        c.gw("GET", "/n/team/report?fetch=1")), 20 * SLOW, "the name resolved and fetched on C")
    assert r.body == data
    assert c.metrics().get("overlay_fetches_total", status="200") == 1


def test_unknown_object_is_404(trio):
    a, b, c = trio
    cid = b3sum_cid(b"nobody holds this " + os.urandom(8))
    r = c.gw("GET", "/o/" + cid)
    assert r.status == 404, r
    assert "no provider" in r.json()["message"]
    assert c.metrics().get("overlay_fetches_total", status="404") == 1


# ---------------------------------------------------------------- a lying provider

ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")


class FlippingProvider(threading.Thread):
    """Speaks OAP/1 on a node's former omnigate address with that node's
    identity certificate (made from its identity.key), answers OUTBOARD
    honestly (the stored outboard) and GET with one byte flipped: a provider
    whose record in the DHT is genuine but whose bytes are not."""

    def __init__(self, addr, identity_key, blob, outboard, tmp):
        super().__init__(daemon=True)
        self.blob, self.outboard = blob, outboard
        seed = identity_seed(identity_key)   # sealed under the node's KEK (docs/keys.md)
        key = os.path.join(tmp, "double.key")
        cert = os.path.join(tmp, "double.crt")
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n"
                    % base64.b64encode(ED25519_PKCS8_PREFIX + seed).decode())
        subprocess.run(["openssl", "req", "-x509", "-new", "-key", key, "-subj", "/CN=double",
                        "-days", "2", "-out", cert], check=True, capture_output=True)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_cert_chain(cert, key)
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_server((host, int(port)))
        self.sock.settimeout(0.5)
        self.stop_ev = threading.Event()
        self.served = 0

    def run(self):
        while not self.stop_ev.is_set():
            try:
                raw, _ = self.sock.accept()
            except OSError:
                continue
            try:
                self.serve(self.ctx.wrap_socket(raw, server_side=True))
            except (OSError, ssl.SSLError, ValueError):
                pass
            finally:
                raw.close()

    def frames(self, s):
        buf = b""
        while True:
            while len(buf) < OAP_HDR_LEN or len(buf) < OAP_HDR.unpack(buf[:OAP_HDR_LEN])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    return
                buf += chunk
            n, _, flags, code, app, _, cap, corr = OAP_HDR.unpack(buf[:OAP_HDR_LEN])
            yield flags, code, app, corr, buf[OAP_HDR_LEN + cap:n]
            buf = buf[n:]

    def answer(self, s, corr, meta, body):
        app = OAP_APP_OBJECTS
        if not body:
            s.sendall(oap_frame(OAP_RESP | OAP_START | OAP_END, 200, app, corr, meta))
            return
        s.sendall(oap_frame(OAP_RESP | OAP_START, 200, app, corr, meta))
        for i in range(0, len(body), 65536):
            last = i + 65536 >= len(body)
            s.sendall(oap_frame(OAP_RESP | (OAP_END if last else 0), 200, app, corr,
                                body[i:i + 65536]))

    def serve(self, s):
        for flags, code, app, corr, payload in self.frames(s):
            if app == OAP_APP_HELLO:
                s.sendall(oap_frame(OAP_RESP, 200, OAP_APP_HELLO, corr, OAP_HELLO_REPLY))
            elif code == 5:    # OUTBOARD: honest
                meta = json.dumps({"len": len(self.blob),
                                   "groups": len(self.outboard) // 32}).encode()
                self.answer(s, corr, meta, self.outboard)
            elif code == OAP_GET:
                self.served += 1
                bad = bytearray(self.blob)
                bad[len(bad) // 2] ^= 0x01
                meta = json.dumps({"len": len(bad), "start": 0, "end": len(bad) - 1}).encode()
                self.answer(s, corr, meta, bytes(bad))

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=5)
        self.sock.close()


def test_flipping_provider_is_detected_counted_and_passed_over(node_factory, trio):
    a, b, c = trio
    udp, oap = free_ports(2)
    m = node_factory(config=net_config(udp, oap, ["127.0.0.1:%d" % a_udp(a)]))
    wait_until(lambda: m.metrics().sum("dht_routing_nodes") >= 1, BOOT_S, "M's routing table")
    data = os.urandom(4 * 65536 + 77)
    cid = stored(m, data)
    wait_until(lambda: node_id(m) in providers(c, cid), 20 * SLOW, "M announced")
    blob = blob_file(m, cid)
    outboard = open(blob + ".ob", "rb").read()
    key = os.path.join(m.data_dir, "node", "identity.key")
    addr = m.config["oap"]["addr"]
    m.stop()
    double = FlippingProvider(addr, key, data, outboard, m.tmp)
    double.start()
    try:
        # the only provider lies: detected, counted, nothing stored or served
        r = c.gw("GET", "/o/" + cid)
        assert r.status == 502, r
        assert double.served == 1
        mc = c.metrics()
        assert mc.get("overlay_peer_failures_total", reason="bad_bytes") == 1
        assert mc.get("peer_fetch_total", outcome="bad_bytes") == 1
        assert mc.get("overlay_fetch_bytes_total") in (None, 0)
        # an honest copy appears on A: the liar (scored down) goes last, A serves
        stored(a, data)
        wait_until(lambda: node_id(a) in providers(c, cid), 20 * SLOW, "A announced")
        r = c.gw("GET", "/o/" + cid)
        assert r.status == 200 and r.body == data, r
        assert double.served == 1
    finally:
        double.stop()
