"""Range fetches on a miss (docs/network.md "Range fetch on miss"): a GET with
one closed Range of an object this node does not hold fetches only the 64 KiB
groups the range needs (and the outboard), each verified against the cid,
serves them through the gateway's verified path, and stores nothing.

Real nodes on loopback (gateway, storage, omnigate, dht, overlay), B
bootstrapping from A's DHT port:
- 8 MiB on A, a 200 KB range from the middle on B: 206 with the right bytes,
  a handful of groups fetched (B's counter, A's bytes out), nothing stored;
- a range past the end: 416 from the outboard's length, nothing stored;
- a range over overlay.range_fetch_max: the whole object, fetched and stored;
- a provider flipping a byte inside the range: detected, 502, nothing served;
  then an honest provider serves the range;
- a provider that does not serve ranges: the whole object instead (501 → FETCH).
"""
import json
import os

import pytest

from conftest import (OAP_APP_HELLO, OAP_GET, OAP_HELLO_REPLY, OAP_RESP, SLOW, blob_file,
                      free_ports, oap_frame, stored)
from test_overlay import (BOOT_S, FlippingProvider, a_udp, net_config, node_id, providers,
                          wait_until)

MIB = 1 << 20
G = 65536
RANGE_MAX = 4 * MIB


def range_config(udp, oap, bootstrap=()):
    c = net_config(udp, oap, bootstrap)
    c["storage"]["max_object"] = "16MiB"
    c["limits"] = {"max_body": "16MiB"}
    c["overlay"]["range_fetch_max"] = "4MiB"
    return c


@pytest.fixture
def pair(node_factory):
    udp = free_ports(2)
    oap = free_ports(2)
    a = node_factory(config=range_config(udp[0], oap[0]))
    b = node_factory(config=range_config(udp[1], oap[1], ["127.0.0.1:%d" % udp[0]]))
    for n in (a, b):
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, BOOT_S,
                   "a routing table on " + n.tag)
    return a, b


def get_range(node, cid, s, e):
    return node.gw("GET", "/o/" + cid, headers={"Range": "bytes=%d-%d" % (s, e)}, timeout=30)


def group_bytes(s, e, length):
    first, last = s // G, min(e, length - 1) // G
    return min((last + 1) * G, length) - first * G


def test_range_miss_fetches_only_its_groups(pair):
    a, b = pair
    data = os.urandom(8 * MIB)
    cid = stored(a, data, timeout=60)
    wait_until(lambda: node_id(a) in providers(b, cid), 20 * SLOW, "A announced")
    out_before = a.metrics().get("oap_bytes_out_total") or 0

    s, e = 3_000_000, 3_200_000          # 201 KB across groups 45..48
    r = get_range(b, cid, s, e)
    assert r.status == 206, (r, [l for l in b.log().splitlines() if "overlay" in l][-5:])
    assert r.body == data[s:e + 1]
    assert r.header("Content-Range") == "bytes %d-%d/%d" % (s, e, len(data))
    m = b.metrics()
    assert m.get("overlay_range_fetches_total", status="200") == 1
    want = group_bytes(s, e, len(data))
    assert want == 4 * G
    assert m.get("overlay_range_fetch_bytes_total") == want
    assert m.get("overlay_fetches_total", status="200") in (None, 0)
    assert m.get("peer_fetch_total", outcome="ok") == 1
    # A sent the groups and the outboard (4 KiB), not the object
    sent = (a.metrics().get("oap_bytes_out_total") or 0) - out_before
    assert want <= sent < want + 64 * 1024, sent
    # nothing stored on B: not on disk, and no copy announced
    assert not os.path.exists(blob_file(b, cid))

    # the same bytes again: fetched again (never cached), still not stored
    r = get_range(b, cid, s + 10, e - 10)
    assert r.status == 206 and r.body == data[s + 10:e - 9]
    assert b.metrics().get("overlay_range_fetches_total", status="200") == 2
    assert not os.path.exists(blob_file(b, cid))

    # past the end: the outboard's length answers 416, still nothing stored
    r = get_range(b, cid, len(data) + 5, len(data) + 100)
    assert r.status == 416, r
    assert r.header("Content-Range") == "bytes */%d" % len(data)
    assert b.metrics().get("overlay_range_fetch_bytes_total") == 2 * want
    assert not os.path.exists(blob_file(b, cid))

    # the last bytes (a partial last group) are a range like any other
    r = get_range(b, cid, len(data) - 70000, len(data) + 1000)
    assert r.status == 206 and r.body == data[-70000:]

    # over overlay.range_fetch_max: the whole object, fetched, stored, served
    s, e = 100, 100 + RANGE_MAX      # one byte more than the bound
    r = get_range(b, cid, s, e)
    assert r.status == 206 and r.body == data[s:e + 1], r
    m = b.metrics()
    assert m.get("overlay_fetches_total", status="200") == 1
    assert m.get("overlay_fetch_bytes_total") == len(data)
    assert os.path.exists(blob_file(b, cid))
    assert m.get("overlay_range_fetches_total", status="200") == 4


class RangeDouble(FlippingProvider):
    """The lying provider of test_overlay, made to honour GET ranges (206,
    exactly the span asked) — with one byte flipped in the middle of the span
    when flip — or, with ranges=False, to ignore them and answer the whole
    object (200) honestly, as a peer without range support would."""

    def __init__(self, *args, flip=True, ranges=True):
        super().__init__(*args)
        self.flip, self.ranges = flip, ranges
        self.asked = []

    def serve(self, s):
        for flags, code, app, corr, payload in self.frames(s):
            if app == OAP_APP_HELLO:
                s.sendall(oap_frame(OAP_RESP, 200, OAP_APP_HELLO, corr, OAP_HELLO_REPLY))
            elif code == 5:
                meta = json.dumps({"len": len(self.blob),
                                   "groups": len(self.outboard) // 32}).encode()
                self.answer(s, corr, meta, self.outboard)
            elif code == OAP_GET:
                self.served += 1
                params = json.loads(payload)
                rs, re_ = params.get("range", [0, len(self.blob) - 1])
                self.asked.append(params.get("range"))
                if not self.ranges:
                    rs, re_ = 0, len(self.blob) - 1
                body = bytearray(self.blob[rs:re_ + 1])
                if self.flip:
                    body[len(body) // 2] ^= 0x01
                meta = json.dumps({"len": len(self.blob), "start": rs, "end": re_}).encode()
                self.answer_status(s, corr, meta, bytes(body),
                                   206 if self.ranges and "range" in params else 200)

    def answer_status(self, s, corr, meta, body, status):
        from conftest import OAP_APP_OBJECTS, OAP_END, OAP_START
        s.sendall(oap_frame(OAP_RESP | OAP_START, status, OAP_APP_OBJECTS, corr, meta))
        for i in range(0, len(body), 65536):
            last = i + 65536 >= len(body)
            s.sendall(oap_frame(OAP_RESP | (OAP_END if last else 0), status, OAP_APP_OBJECTS,
                                corr, body[i:i + 65536]))


def double_for(node_factory, a, b, data, **kw):
    """A node M that stores data and announces it, then is replaced on its
    address by a RangeDouble with M's identity."""
    udp, oap = free_ports(2)
    m = node_factory(config=range_config(udp, oap, ["127.0.0.1:%d" % a_udp(a)]))
    wait_until(lambda: m.metrics().sum("dht_routing_nodes") >= 1, BOOT_S, "M's routing table")
    cid = stored(m, data, timeout=60)
    wait_until(lambda: node_id(m) in providers(b, cid), 20 * SLOW, "M announced")
    outboard = open(blob_file(m, cid) + ".ob", "rb").read()
    key = os.path.join(m.data_dir, "node", "identity.key")
    addr = m.config["oap"]["addr"]
    m.stop()
    d = RangeDouble(addr, key, data, outboard, m.tmp, **kw)
    d.start()
    return cid, d


def test_flip_inside_the_range_is_detected_then_an_honest_provider_serves(node_factory, pair):
    a, b = pair
    data = os.urandom(2 * MIB + 999)
    cid, double = double_for(node_factory, a, b, data, flip=True)
    try:
        s, e = 700_000, 900_000
        r = get_range(b, cid, s, e)
        assert r.status == 502, r
        assert r.body != data[s:e + 1]
        assert double.asked == [[s // G * G, (e // G + 1) * G - 1]]   # only the groups
        m = b.metrics()
        assert m.get("overlay_peer_failures_total", reason="bad_bytes") == 1
        assert m.get("overlay_range_fetches_total", status="502") == 1
        assert m.get("overlay_range_fetch_bytes_total") in (None, 0)
        assert m.get("overlay_fetches_total", status="502") in (None, 0)   # no fallback
        assert not os.path.exists(blob_file(b, cid))
        # an honest copy on A: the liar (scored down) goes last, A serves the range
        stored(a, data, timeout=60)
        wait_until(lambda: node_id(a) in providers(b, cid), 20 * SLOW, "A announced")
        r = get_range(b, cid, s, e)
        assert r.status == 206 and r.body == data[s:e + 1], r
        assert double.served == 1
        assert b.metrics().get("overlay_range_fetches_total", status="200") == 1
        assert not os.path.exists(blob_file(b, cid))
    finally:
        double.stop()


def test_provider_without_ranges_serves_the_whole_object_instead(node_factory, pair):
    a, b = pair
    data = os.urandom(MIB + 4321)
    cid, double = double_for(node_factory, a, b, data, flip=False, ranges=False)
    try:
        s, e = 300_000, 300_099
        r = get_range(b, cid, s, e)
        assert r.status == 206 and r.body == data[s:e + 1], (
            r, [l for l in b.log().splitlines() if "overlay" in l][-5:])
        assert double.served == 2            # the ranged GET, then the whole one
        assert double.asked == [[s // G * G, (e // G + 1) * G - 1], None]
        m = b.metrics()
        assert m.get("peer_fetch_total", outcome="no_range") == 1
        assert m.get("overlay_peer_failures_total", reason="no_range") == 1
        assert m.get("overlay_range_fetches_total", status="501") == 1
        assert m.get("overlay_fetches_total", status="200") == 1
        assert os.path.exists(blob_file(b, cid))   # the whole fetch stores, as always
    finally:
        double.stop()


def test_range_results_held_per_worker_are_bounded(pair):
    """Each range result a worker holds is memfd memory (up to the range plus
    two groups) until its response ends: clients that do not read must not
    pin an unbounded amount. Past OBJECTS_RANGE_HELD_MAX (8) held, a missed
    range is fetched whole (stored, disk-backed) and still answered."""
    import socket
    a, b = pair
    data, data2 = os.urandom(8 * MIB), os.urandom(2 * MIB)
    cid, cid2 = stored(a, data, timeout=60), stored(a, data2, timeout=60)
    wait_until(lambda: node_id(a) in providers(b, cid) and node_id(a) in providers(b, cid2),
               20 * SLOW, "A announced")
    s, e = 0, RANGE_MAX - 1            # 4 MiB: more than the socket buffers take
    held = []
    try:
        for _ in range(8):
            c = socket.socket()
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.connect(("127.0.0.1", b.gateway_port))
            c.sendall(("GET /o/%s HTTP/1.1\r\nHost: x\r\nRange: bytes=%d-%d\r\n\r\n"
                       % (cid, s, e)).encode())
            held.append(c)
        # every one of them is being answered (and none has read its body):
        # the overlay counts one answer per waiter, each of which took its
        # slot before it asked
        wait_until(lambda: (b.metrics().get("overlay_range_fetches_total", status="200") or 0)
                   >= 8, 20 * SLOW, "the range fetched for all eight")
        assert b.metrics().get("range_fetch_fallback_total", reason="held") is None
        r = get_range(b, cid, 100, 200)   # the ninth: fetched whole, still right
        assert r.status == 206 and r.body == data[100:201]
        m = b.metrics()
        assert m.get("range_fetch_fallback_total", reason="held") == 1
        assert m.get("overlay_fetches_total", status="200") == 1
    finally:
        for c in held:
            c.close()
    # the slots come back once those responses end (a request's slot is
    # freed before its connection is counted gone): a range of another
    # missed object is fetched by its groups again
    wait_until(lambda: b.metrics().get("open_connections", service="gateway") == 0, 10 * SLOW,
               "the held responses ended (open_connections{gateway} == 0)")
    before = b.metrics().get("overlay_range_fetches_total", status="200")   # one per waiter
    r = get_range(b, cid2, 70000, 70100)
    assert r.status == 206 and r.body == data2[70000:70101]
    m = b.metrics()
    assert m.get("overlay_range_fetches_total", status="200") == before + 1
    assert m.get("range_fetch_fallback_total", reason="held") == 1


def test_multi_range_miss_fetches_whole_object(pair):
    """Several ranges on a miss: the whole object (FETCH, stored), then one
    multipart answer; closed ranges that merge into one are still a range
    fetch of their groups."""
    from test_ranges import expected_body, boundary_of
    a, b = pair
    data = os.urandom(2 * MIB)
    cid = stored(a, data, timeout=60)
    wait_until(lambda: node_id(a) in providers(b, cid), 20 * SLOW, "A announced")
    # 0-9 and 5-99 merge into 0-99: one closed range, its group only
    r = b.gw("GET", "/o/" + cid, headers={"Range": "bytes=5-99,0-9"}, timeout=30)
    assert r.status == 206 and r.body == data[:100], r
    assert r.header("Content-Range") == "bytes 0-99/%d" % len(data)
    assert b.metrics().get("overlay_range_fetches_total", status="200") == 1
    assert not os.path.exists(blob_file(b, cid))
    # two ranges: fetched whole and stored, served as multipart
    spans = [(10, 20), (MIB, MIB + 70000)]
    r = b.gw("GET", "/o/" + cid, headers={"Range": "bytes=%d-%d,10-20" % spans[1]}, timeout=30)
    assert r.status == 206, r
    assert r.body == expected_body(boundary_of(r), spans, data)
    m = b.metrics()
    assert m.get("overlay_fetches_total", status="200") == 1
    assert m.get("overlay_range_fetches_total", status="200") == 1
    assert m.get("range_multipart_total") == 1
    assert os.path.exists(blob_file(b, cid))
