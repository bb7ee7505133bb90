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
                      run_cli, stored, wait_until, SLOW)

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


# ---------------------------------------------------------------- ?fetch=1

def test_fetch_serves_the_verified_object(names_node):
    from conftest import blob_file, flip_byte
    n = names_node
    data = bytes(range(256)) * 700          # three 64 KiB groups
    cid = stored(n, data)
    assert put_name(n, "site/index.html", cid).status == 201
    r = n.gw("GET", npath("site/index.html", "fetch=1"))
    assert r.status == 200, r
    assert r.body == data
    assert r.header("ETag") == '"%s"' % cid[3:]
    assert r.header("Content-Type") == "application/octet-stream"
    # a range, as GET /o/{cid} serves it
    r = n.gw("GET", npath("site/index.html", "fetch=1"), headers={"Range": "bytes=70000-70009"})
    assert r.status == 206 and r.body == data[70000:70010], r
    assert n.gw("HEAD", npath("site/index.html", "fetch=1")).status == 200
    # a name whose object this node does not hold: the miss hook's 404
    absent = b3sum_cid(b"never stored here")
    assert put_name(n, "site/missing", absent).status == 201
    r = n.gw("GET", npath("site/missing", "fetch=1"))
    j = assert_envelope(r, 404, "not_found")
    assert "not held on this node" in j["message"], j
    # verify before serve: a flipped byte is a 502, never the bytes
    flip_byte(blob_file(n, cid), 5)
    r = n.gw("GET", npath("site/index.html", "fetch=1"))
    assert_envelope(r, 502, "integrity")
    assert n.metrics().sum("integrity_fail_total") >= 1
    # unknown names and queries
    assert_envelope(n.gw("GET", npath("nope", "fetch=1")), 404, "not_found")
    for q in ("fetch=0", "fetch=1&history=1", "x=1", "history"):
        j = assert_envelope(n.gw("GET", npath("site/index.html", q)), 400, "bad_request")
        assert "?fetch=1 or ?history=1" in j["message"], (q, j)


# ---------------------------------------------------------------- bad names and bodies

BAD_NAMES = [
    ("a" * 256, "too_long"),
    ("cafe\u0301", "not_nfc"),               # NFD "é": e + COMBINING ACUTE ACCENT
    ("alice/../bob", "dot_segment"),
    ("..", "dot_segment"),
    ("alice/./x", "dot_segment"),
    ("alice//x", "empty_segment"),
    ("alice/", "empty_segment"),
    ("a\tb", "bad_char"),
    ("a\x7fb", "bad_char"),
    ("a\x00b", "bad_char"),
    ("a b", "bad_char"),
    ("a\u200bb", "bad_char"),                 # zero width space
    ("bad:colon", "bad_char"),
    (b"\xff\xfe", "bad_utf8"),
]


def test_bad_names_are_400_naming_the_rule(names_node):
    n = names_node
    cid = stored(n, b"x")
    before = n.metrics().sum("rejected_total", reason="bad_request")
    for name, rule in BAD_NAMES:
        for method in ("PUT", "GET"):
            r = put_name(n, name, cid) if method == "PUT" else n.gw("GET", npath(name))
            j = assert_envelope(r, 400, "bad_name")
            assert "(%s)" % rule in j["message"], (name, rule, j)
    # the NFC form of the same name is fine
    assert put_name(n, "caf\u00e9", cid).status == 201
    assert n.gw("GET", npath("caf\u00e9")).json()["name"] == "caf\u00e9"
    # an encoded '/' and broken percent-encoding
    for raw in ("/n/alice%2Fx", "/n/alice%2fx", "/n/a%zz", "/n/a%4"):
        r = n.gw("GET", raw)
        j = assert_envelope(r, 400, "bad_name")
    assert "%2F" in assert_envelope(n.gw("GET", "/n/alice%2Fx"), 400, "bad_name")["message"]
    assert_envelope(n.gw("GET", "/n/"), 400, "bad_name")
    after = n.metrics().sum("rejected_total", reason="bad_request")
    assert after - before == 2 * len(BAD_NAMES) + 6
    assert n.metrics().sum("index_publishes_total") == 1


def test_put_body_is_strict(names_node):
    n = names_node
    cid = stored(n, b"y")
    cases = [
        (b"", "JSON object"), (b"[]", "JSON object"), (b"{", "JSON object"),
        (b'{"cid":"%s","x":1}' % cid.encode(), "unknown field"),
        (b'{"cid":"%s","cid":"%s"}' % (cid.encode(), cid.encode()), "JSON object"),
        (b'{}', "missing"), (b'{"cid":1}', "cid"), (b'{"cid":"B3:%s"}' % cid[3:].encode(), "cid"),
        (b'{"cid":"%s"}' % cid.upper().encode(), "cid"), (b'{"cid":"b3:00"}', "cid"),
    ]
    for body, words in cases:
        j = assert_envelope(put_name(n, "alice/x", cid, body=body), 400, "bad_request")
        assert words in j["message"], (body, j)
    r = put_name(n, "alice/x", cid, body=b'{"cid":"%s"}' % cid.encode() + b" " * 2000)
    assert_envelope(r, 413, "payload_too_large")
    r = put_name(n, "alice/x", cid, headers={"Content-Encoding": "gzip"})
    assert_envelope(r, 415)
    assert_envelope(n.gw("PUT", npath("alice/x", "fetch=1"), body=b"{}"), 400, "bad_request")
    assert_envelope(n.gw("GET", npath("alice/x")), 404, "not_found")   # nothing was published
    assert n.gw("POST", npath("alice/x"), body=b"").status == 405


# ---------------------------------------------------------------- the wall: tenants own prefixes

def test_token_prefix_scopes_names(node_factory):
    n = node_factory(config=NAMES, start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    cid = stored_with(n, mint_token(n.data_dir, "--prefix", "/o", "--method", "POST"), b"z")
    alice = mint_token(n.data_dir, "--prefix", "/n/alice/", "--method", "PUT", "--method", "GET",
                       "--ttl", "1h")
    objects_only = mint_token(n.data_dir, "--prefix", "/o", "--method", "PUT", "--ttl", "1h")
    m0 = n.metrics()
    assert put_name(n, "alice/blog", cid, token=alice).status == 201
    assert put_name(n, "alice/deep/er/path", cid, token=alice).status == 201
    forbidden = [put_name(n, "bob/blog", cid, token=alice),
                 put_name(n, "alice", cid, token=alice),          # "/n/alice" is not under "/n/alice/"
                 put_name(n, "alicex/y", cid, token=alice),
                 put_name(n, "alice/blog", cid, token=objects_only)]
    for r in forbidden:
        j = assert_envelope(r, 403, "forbidden")
        assert "scope" in j["message"], j
    # an encoded slash cannot smuggle a name past the prefix
    r = n.gw("PUT", "/n/alice%2F..%2Fbob", body=b'{"cid":"%s"}' % cid.encode(),
             headers={"Authorization": "Bearer " + alice})
    assert r.status in (400, 403), r
    # anonymous: reads are public (the default policy), writes need a token
    r = put_name(n, "alice/blog", cid)
    assert_envelope(r, 401, "unauthenticated")
    r = n.gw("GET", npath("alice/blog"))
    assert r.status == 200 and r.json()["seq"] == 1, r
    assert n.gw("GET", npath("bob/blog")).status == 404   # never written
    m1 = n.metrics()
    assert m1.sum("rejected_total", reason="forbidden") - m0.sum("rejected_total", reason="forbidden") >= 4
    assert m1.sum("rejected_total", reason="unauth") - m0.sum("rejected_total", reason="unauth") == 1
    assert m1.sum("index_publishes_total", result="created") == 2


def stored_with(n, tok, data):
    r = n.gw("POST", "/o", body=data, headers={"Authorization": "Bearer " + tok})
    assert r.status in (200, 201), r
    return r.json()["cid"]


# ---------------------------------------------------------------- records from elsewhere

def index_call(n, verb, payload, corr=7):
    """One request on the index service's socket; (status, payload)."""
    from conftest import OAP_HDR, OAP_REQ, oap_frame
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    try:
        s.connect(os.path.join(n.data_dir, "run", "index.sock"))
        s.send(oap_frame(OAP_REQ, code=verb, app=0x0300, corr=corr, payload=payload))
        data = s.recv(1 << 16)
    finally:
        s.close()
    hdr = OAP_HDR.unpack(data[:OAP_HDR.size])
    assert hdr[4] == 0x0300 and hdr[7] == corr, hdr
    return hdr[3], data[OAP_HDR.size + hdr[6]:]


def err_message(payload):
    (mlen,) = struct.unpack(">H", payload[2:4])
    return payload[4:4 + mlen].decode()


def b3(data):
    return bytes.fromhex(b3sum_cid(data)[3:])


class Signer:
    """A node identity outside the node (Python's Ed25519, b3sum's BLAKE3):
    records made from docs/names.md alone."""

    def __init__(self):
        ed = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
        ser = pytest.importorskip("cryptography.hazmat.primitives.serialization")
        self.sk = ed.Ed25519PrivateKey.generate()
        self.pk = self.sk.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        self.node_id = "b3:" + b3(self.pk).hex()

    def record(self, name, cid, seq, issued=1700000000):
        nb = name.encode()
        body = (b"\x01" + struct.pack(">H", len(nb)) + nb + bytes.fromhex(cid[3:]) +
                struct.pack(">Q", seq) + self.pk + struct.pack(">Q", issued))
        return body + self.sk.sign(b3(b"macronode/name/v1" + body))


def import_record(n, rec):
    return index_call(n, 5, struct.pack(">I", len(rec)) + rec)


def test_records_from_elsewhere_no_rollback(names_node):
    n = names_node
    other = Signer()
    c1, c2, c3 = (b3sum_cid(b"v%d" % i) for i in (1, 2, 3))
    # a name this node does not hold: kept in the network cache
    status, _ = import_record(n, other.record("remote/site", c1, 5))
    assert status == 200
    r = n.gw("GET", npath("remote/site"))
    assert r.json() == {"name": "remote/site", "cid": c1, "seq": 5, "node_id": other.node_id}, r
    # lower or equal seq: refused (409), counted, nothing changes
    for seq in (5, 4, 1):
        status, p = import_record(n, other.record("remote/site", c2, seq))
        assert status == 409 and "stale_seq" in err_message(p), (seq, status)
    assert n.gw("GET", npath("remote/site")).json()["cid"] == c1
    status, _ = import_record(n, other.record("remote/site", c2, 6))
    assert status == 200
    assert n.gw("GET", npath("remote/site")).json()["seq"] == 6
    # a bad signature, a record for a name that breaks the rules, garbage
    rec = bytearray(other.record("remote/site", c3, 9))
    rec[-1] ^= 1
    status, p = import_record(n, bytes(rec))
    assert status == 400 and "bad_sig" in err_message(p)
    status, p = import_record(n, other.record("a/../b", c3, 9))
    assert status == 400 and "bad_name" in err_message(p)
    status, p = import_record(n, b"\x01garbage")
    assert status == 400 and "malformed" in err_message(p)
    # a name this node publishes: a higher seq from elsewhere becomes current
    # (and stays in the history); a local publish continues above it
    assert put_name(n, "shared/x", c1).json()["seq"] == 1
    status, _ = import_record(n, other.record("shared/x", c2, 10))
    assert status == 200
    assert n.gw("GET", npath("shared/x")).json() == {
        "name": "shared/x", "cid": c2, "seq": 10, "node_id": other.node_id}
    status, p = import_record(n, other.record("shared/x", c3, 10))
    assert status == 409
    r = put_name(n, "shared/x", c3)
    assert r.status == 200 and r.json()["seq"] == 11 and r.json()["node_id"] == node_id(n), r
    # publishing a name known only from the network: above the cached seq
    r = put_name(n, "remote/site", c3)
    assert r.status == 201 and r.json()["seq"] == 7, r
    hist = n.gw("GET", npath("shared/x", "history=1")).json()["records"]
    assert [h["seq"] for h in hist] == [1, 10, 11]
    m = n.metrics()
    assert m.sum("index_records_rejected_total", reason="stale_seq") == 4
    assert m.sum("index_records_rejected_total", reason="bad_sig") == 1
    assert m.sum("index_records_rejected_total", reason="bad_name") == 1
    assert m.sum("index_records_rejected_total", reason="malformed") == 1
    assert m.get("index_names") == 2
    assert m.get("index_cache_names") == 0


def test_history_is_bounded_and_survives_restart(node_factory):
    n = node_factory(config={"services": ["gateway", "storage", "index"], "index": {"history": 3}})
    cids = [b3sum_cid(b"h%d" % i) for i in range(6)]
    for i, c in enumerate(cids):
        assert put_name(n, "h", c).json()["seq"] == i + 1
    hist = n.gw("GET", npath("h", "history=1")).json()["records"]
    assert [(x["seq"], x["cid"]) for x in hist] == [(4, cids[3]), (5, cids[4]), (6, cids[5])]
    assert os.path.isdir(os.path.join(n.data_dir, "index"))
    n.stop()
    n.start()
    assert n.gw("GET", npath("h")).json()["seq"] == 6
    assert put_name(n, "h", cids[0]).json()["seq"] == 7   # never a seq signed twice


def test_index_full_is_507(node_factory):
    n = node_factory(config={"services": ["gateway", "storage", "index"],
                             "index": {"max_names": 2}})
    c = b3sum_cid(b"f")
    assert put_name(n, "one", c).status == 201
    assert put_name(n, "two", c).status == 201
    r = put_name(n, "three", c)
    j = assert_envelope(r, 507, "insufficient_storage")
    assert "index.max_names" in j["message"], j
    assert put_name(n, "one", c).status == 200   # a held name still moves
    assert n.metrics().sum("index_publishes_total", result="full") == 1


def test_amnesia_keeps_names_in_memory_only(node_factory):
    n = node_factory(config={"services": ["gateway", "storage", "index"], "amnesia": True})
    c = b3sum_cid(b"a")
    assert put_name(n, "mem/x", c).status == 201
    assert put_name(n, "mem/x", c).json()["seq"] == 2
    assert n.gw("GET", npath("mem/x", "history=1")).status == 200
    assert not os.path.exists(os.path.join(n.data_dir, "index"))
    n.stop()
    n.start()
    assert n.gw("GET", npath("mem/x")).status == 404


def test_without_the_index_service_names_are_404(node):
    r = node.gw("GET", npath("alice/home"))
    j = assert_envelope(r, 404, "not_found")
    assert "index service" in j["message"], j


# ---------------------------------------------------------------- CLI

def test_cli_publish_and_resolve(node_factory, tmp_dir):
    n = node_factory(config=NAMES, start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    cid = stored_with(n, mint_token(n.data_dir, "--prefix", "/o", "--method", "POST"), b"cli")
    tok = mint_token(n.data_dir, "--prefix", "/n/alice/", "--method", "PUT", "--ttl", "1h")
    tf = os.path.join(tmp_dir, "tok")
    with open(tf, "w") as f:
        f.write(tok + "\n")
    os.chmod(tf, 0o600)
    gw = ["--gateway", n.gateway_addr]
    p = run_cli(["name", "publish", "alice/caf\u00e9", cid] + gw + ["--token-file", tf])
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out == {"name": "alice/caf\u00e9", "cid": cid, "seq": 1, "node_id": node_id(n)}
    p = run_cli(["name", "publish", "alice/caf\u00e9", cid] + gw, env={"RON_TOKEN": tok})
    assert p.returncode == 0 and json.loads(p.stdout)["seq"] == 2, p.stderr
    p = run_cli(["name", "resolve", "alice/caf\u00e9"] + gw)
    assert p.returncode == 0 and json.loads(p.stdout)["seq"] == 2, p.stderr
    p = run_cli(["name", "resolve", "alice/caf\u00e9", "--history"] + gw)
    assert p.returncode == 0, p.stderr
    assert [r["seq"] for r in json.loads(p.stdout)["records"]] == [1, 2]
    # refusals: the node's (403, 401, 404: exit 1), the name's (exit 2, nothing sent)
    p = run_cli(["name", "publish", "bob/x", cid] + gw + ["--token-file", tf])
    assert p.returncode == 1 and "403 forbidden" in p.stderr, p.stderr
    p = run_cli(["name", "publish", "alice/x", cid] + gw)
    assert p.returncode == 1 and "401" in p.stderr, p.stderr
    p = run_cli(["name", "resolve", "alice/none"] + gw)
    assert p.returncode == 1 and "404 not_found" in p.stderr, p.stderr
    p = run_cli(["name", "publish", "cafe\u0301", cid] + gw + ["--token-file", tf])
    assert p.returncode == 2 and "not_nfc" in p.stderr, p.stderr
    p = run_cli(["name", "publish", "alice/x", "b3:00"] + gw)
    assert p.returncode == 2 and "b3:" in p.stderr, p.stderr
    p = run_cli(["name", "publish", "alice/x", cid, "--token", tok] + gw)
    assert p.returncode == 2 and "--token-file" in p.stderr, p.stderr
    assert tok not in p.stderr and tok not in n.log()
    p = run_cli(["name", "resolve", "alice/x"])
    assert p.returncode == 2 and "--gateway" in p.stderr


# ---------------------------------------------------------------- the index's sandbox

def probe_index(node_factory, tmp_dir, what, config=None):
    """A names node whose index process probes `what` right after entering
    its sandbox (MN_TEST_SANDBOX_PROBE, see test_sandbox.py)."""
    from conftest import deep_merge
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes, exist_ok=True)
    with open(os.path.join(probes, "index"), "w") as f:
        f.write(what)
    n = node_factory(config=deep_merge(NAMES, config or {}),
                     env={"MN_TEST_SANDBOX_PROBE": probes})
    assert not os.path.exists(os.path.join(probes, "index"))   # the index probed, once
    return n


def assert_names_serve(n):
    c = b3sum_cid(b"still serving")
    wait_until(lambda: put_name(n, "probe/x", c).status in (200, 201), 10, what="index serving")
    assert n.gw("GET", npath("probe/x")).json()["cid"] == c


def test_index_sandbox_exec_kills_and_restarts(node_factory, tmp_dir):
    n = probe_index(node_factory, tmp_dir, "exec")
    m = n.metrics()
    assert m.get("sandbox_violations_total", role="index") == 1
    assert m.get("service_restarts_total", service="index") == 1
    assert_names_serve(n)


@pytest.mark.parametrize("what,config", [("open", None), ("write", None),
                                         ("write", {"amnesia": True})])
def test_index_sandbox_refuses_files(node_factory, tmp_dir, what, config):
    from test_sandbox import landlock_enabled
    if not landlock_enabled():
        pytest.skip("kernel without Landlock")
    n = probe_index(node_factory, tmp_dir, what, config)

    def refused():
        return [r.get("error") for r in n.log_records() if r.get("service") == "index"
                and r.get("msg") == "sandbox probe refused"]
    wait_until(lambda: refused(), 10 * SLOW, what="the index probe's record")   # logs come by pipe
    assert refused() == ["Permission denied"]
    m = n.metrics()
    assert m.get("sandbox_violations_total", role="index") is None
    assert m.get("service_restarts_total", service="index") is None
    assert m.get("sandbox_landlock_active", role="index") == 1
    assert not os.path.exists("/tmp/macronode-sandbox-probe")
    assert_names_serve(n)


# ---------------------------------------------------------------- two nodes: names through the DHT

def dht_names_config(udp, oap, bootstrap=()):
    return {"services": ["gateway", "storage", "index", "dht"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                    "lookup_timeout": "5s"}}


def test_publish_on_b_resolve_on_d(node_factory):
    from conftest import SLOW, free_ports
    import time
    udp, oap = free_ports(2), free_ports(2)
    b = node_factory(config=dht_names_config(udp[0], oap[0]))
    d = node_factory(config=dht_names_config(udp[1], oap[1], ["127.0.0.1:%d" % udp[0]]))
    for n in (b, d):
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, 20 * SLOW,
                   what="a routing table on " + n.tag)
    data = b"published on B, resolved on D\n"
    cid = stored(b, data)
    assert put_name(b, "alice/site", b3sum_cid(b"an older version")).json()["seq"] == 1
    assert put_name(b, "alice/site", cid).json()["seq"] == 2
    wait_until(lambda: (b.metrics().get("index_dht_requests_total", op="put", result="ok") or 0)
               >= 2, 20 * SLOW, what="B's records in the DHT")
    # D holds nothing: it asks the DHT, checks every value, keeps the highest seq
    want = {"name": "alice/site", "cid": cid, "seq": 2, "node_id": node_id(b)}

    def resolved():
        r = d.gw("GET", npath("alice/site"), timeout=15)
        return r.json() if r.status == 200 else None
    assert wait_until(resolved, 30 * SLOW, what="D to resolve B's name") == want
    m = d.metrics()
    assert m.sum("index_lookups_total", result="found") >= 1
    assert m.get("index_cache_names") == 1
    assert m.sum("index_records_rejected_total") == 0
    # now held in D's cache: answered without the network
    r = d.gw("GET", npath("alice/site"))
    assert r.status == 200 and r.json() == want
    assert d.metrics().sum("index_lookups_total") == m.sum("index_lookups_total")
    assert d.gw("GET", npath("alice/site", "history=1")).json()["records"] == [
        {"cid": cid, "seq": 2, "node_id": node_id(b)}]
    # D does not hold the object: the miss hook (fetching is the overlay's)
    j = assert_envelope(d.gw("GET", npath("alice/site", "fetch=1")), 404, "not_found")
    assert "not held on this node" in j["message"], j
    # a name nobody published: 404 once the lookup ends, within its deadline
    t0 = time.monotonic()
    r = d.gw("GET", npath("nobody/anywhere"), timeout=15)
    assert_envelope(r, 404, "not_found")
    assert time.monotonic() - t0 < 5 + 3 * SLOW
    assert d.metrics().sum("index_lookups_total", result="not_found") >= 1
    # D publishes over B's name: its own record, above the seq it has seen
    r = put_name(d, "alice/site", cid)
    assert r.status == 201 and r.json()["seq"] == 3 and r.json()["node_id"] == node_id(d), r


def test_newest_seq_everywhere_one_value_per_name(node_factory):
    """B publishes each name five times (seq 1..5): the nodes storing the
    name key replace B's record each time (its value id is B's for the key),
    so they hold one value per name, and A and C, which hold nothing,
    resolve seq 5 every time."""
    from conftest import free_ports
    udp, oap = free_ports(3), free_ports(3)
    b = node_factory(config=dht_names_config(udp[0], oap[0]))
    boot = ["127.0.0.1:%d" % udp[0]]
    a = node_factory(config=dht_names_config(udp[1], oap[1], boot))
    c = node_factory(config=dht_names_config(udp[2], oap[2], boot))
    for n in (a, b, c):
        wait_until(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, 20 * SLOW,
                   what="a routing table on " + n.tag)
    names = ["carol/one", "carol/two", "carol/three"]
    cids = {}
    for name in names:
        for seq in range(1, 6):
            cids[name] = b3sum_cid(("%s %d" % (name, seq)).encode())
            r = put_name(b, name, cids[name])
            assert r.status in (200, 201) and r.json()["seq"] == seq, r
    wait_until(lambda: (b.metrics().get("index_dht_requests_total", op="put", result="ok") or 0)
               >= 5 * len(names), 20 * SLOW, what="B's records in the DHT")
    # one value per name on every node (B keeps its own too), not five
    for n in (a, b, c):
        wait_until(lambda n=n: n.metrics().get("dht_stored_values") == len(names), 10 * SLOW,
                   what="one value per name on " + n.tag)
    for n in (a, c):
        for name in names:
            r = n.gw("GET", npath(name), timeout=15)
            assert r.status == 200, r
            assert r.json() == {"name": name, "cid": cids[name], "seq": 5,
                                "node_id": node_id(b)}, (n.tag, r.json())
    for n in (a, c):
        m = n.metrics()
        assert m.sum("index_records_rejected_total") == 0, n.tag
        assert n.metrics().get("dht_stored_values") == len(names), n.tag
        assert m.get("dht_records_rejected_total", reason="stale") is None, n.tag
