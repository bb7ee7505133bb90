"""
The audit service (docs/audit.md "The service"): a running node writes its
audit log, the offline verifier accepts it with the node's pinned key, the
admin plane serves the newest checkpoint and inclusion proofs that verify
here independently (BLAKE3 via b3sum, Ed25519 via `cryptography`), a full
queue is counted and recorded, a killed audit service is restarted and the
log reopens, and amnesia keeps the log in RAM only.
"""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (B3SUM, OPEN_BUNDLE, SLOW, blob_file, cid_hex, flip_byte, obj_path, run_cli,
                      stored, wait_until, write_bundle)

CKPT_CONTEXT = b"ron-audit-checkpoint-v1\n"

pytestmark = pytest.mark.skipif(B3SUM is None, reason="b3sum not installed")


def b3(data):
    r = subprocess.run([B3SUM, "--no-names"], input=data, capture_output=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return bytes.fromhex(r.stdout.decode().split()[0])


def unhex(b3text):
    assert b3text.startswith("b3:"), b3text
    return bytes.fromhex(b3text[3:])


def verify_path(leaf, index, size, path):
    """RFC 9162 §2.1.3.2 with BLAKE3 node hashes (0x01 || left || right)."""
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = b3(b"\x01" + p + r)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = b3(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def node_pubkey(n):
    r = run_cli(["audit", "pubkey", os.path.join(n.data_dir, "node", "identity.key"),
                 "--kek", n.data_dir + ".kek"])
    assert r.returncode == 0, r.stderr
    pub = r.stdout.strip()
    assert len(pub) == 64, pub
    path = os.path.join(n.tmp, "audit.pub")
    with open(path, "w") as f:
        f.write(pub + "\n")
    return path, bytes.fromhex(pub)


def verify_log(n):
    path, _ = node_pubkey(n)
    r = run_cli(["audit", "verify", os.path.join(n.data_dir, "audit"), "--pubkey", path,
                 "--from-zero"])
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def records(n):
    out = []
    for seg in sorted(glob.glob(os.path.join(n.data_dir, "audit", "seg-*.log"))):
        with open(seg) as f:
            lines = f.read().splitlines()
        out += [json.loads(x) for x in lines[1:]]
    return out


def find(recs, stream, kind, reason=None):
    return [r for r in recs if r["stream"] == stream and r["kind"] == kind and
            (reason is None or r["reason"] == reason)]


def check_checkpoint(ckpt, pub):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    body = {k: v for k, v in ckpt.items() if k != "sig"}
    msg = CKPT_CONTEXT + json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    Ed25519PublicKey.from_public_bytes(pub).verify(bytes.fromhex(ckpt["sig"]), msg)
    assert ckpt["node_id"] == "b3:" + b3(pub).hex()


def proof_when_covered(n, stream, seq, timeout=15):
    """The proof of stream/seq once it is synced (404 until then) and a
    checkpoint covers it (409 until then)."""
    got = {}

    def ready():
        r = n.get("/api/v1/audit/proof?stream=%s&seq=%d" % (stream, seq))
        got["r"] = r
        if r.status in (404, 409):
            return False
        got["r"] = r
        return True
    try:
        wait_until(ready, timeout * SLOW, interval=0.2,
                   what="a checkpoint covering %s/%d" % (stream, seq))
    except AssertionError:
        pass   # the caller asserts on the last answer
    return got["r"]


def audit_child(n):
    return [c for c in n.children() if c["service"] == "audit"][0]


def limited_burst(get):
    """Sequential reads against a bucket of 10 refilled at 10 per second:
    read until ten are refused (at most 300 reads), and check that no more
    were admitted than the bucket allows in the time taken (10 + 10 per
    elapsed second, +1 for the service's millisecond clock). A fixed count
    of 30 assumed the reads fit in one second, which an ASan build on a
    loaded machine does not promise. Returns the statuses."""
    statuses = []
    t0 = time.monotonic()
    while len(statuses) < 300 and statuses.count(503) < 10:
        statuses.append(get())
    elapsed = time.monotonic() - t0
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 10, statuses
    assert statuses.count(200) <= 10 + 10 * elapsed + 1, (statuses.count(200), elapsed)
    return statuses


FAST = {"audit": {"checkpoint_interval": "1s", "fsync_interval": "20ms"}}


def test_audit_log_of_a_running_node_verifies(node_factory):
    n = node_factory(config=FAST)
    assert n.post("/api/v1/reload").status == 202
    # A flood of refused capability tokens: aggregated per tenant, reason, second.
    flood = 60
    for _ in range(flood):
        r = n.gw("PUT", "/o", body=b"x", headers={"Authorization": "Bearer not-a-token"})
        assert r.status == 401, r
    # A policy change.
    write_bundle(n.wall_dir, dict(OPEN_BUNDLE, version=2))
    assert n.post("/api/v1/reload").status == 202

    # The admin plane: the newest checkpoint, signed by the node identity.
    _, pub = node_pubkey(n)
    r = proof_when_covered(n, "admin", 1)
    assert r.status == 200, r
    p = r.json()
    ck = n.get("/api/v1/audit/checkpoint")
    assert ck.status == 200, ck
    check_checkpoint(ck.json(), pub)
    check_checkpoint(p["checkpoint"], pub)
    assert json.loads(p["checkpoint_line"]) == p["checkpoint"]
    rec = json.loads(p["record"])
    assert (rec["stream"], rec["seq"], rec["kind"], rec["reason"]) == ("admin", 1, "reload", "ok")
    leaf = b3(b"\x00" + p["record"].encode())
    assert "b3:" + leaf.hex() == p["leaf"]
    root = verify_path(leaf, p["index"], p["tree_size"], [unhex(h) for h in p["path"]])
    assert root is not None and "b3:" + root.hex() == p["checkpoint"]["root"]
    assert p["tree_size"] == p["checkpoint"]["size"]
    # A changed record does not verify against the same path.
    bad = b3(b"\x00" + p["record"].replace('"ok"', '"no"').encode())
    assert verify_path(bad, p["index"], p["tree_size"],
                       [unhex(h) for h in p["path"]]) != root
    # Refusals: bad query, unknown record; counted by result.
    assert n.get("/api/v1/audit/proof?stream=admin").status == 400
    assert n.get("/api/v1/audit/proof?stream=a%20b&seq=1").status == 400
    r = n.get("/api/v1/audit/proof?stream=admin&seq=999")
    assert r.status == 404 and r.json()["code"] == "not_found", r
    m = n.metrics()
    assert m.get("audit_proofs_total", result="ok") >= 1
    assert m.get("audit_proofs_total", result="not_found") == 1
    assert m.get("audit_checkpoints_total") >= 1
    assert m.get("audit_records_total", stream="admin") >= 2
    # A reload by SIGHUP is an admin action too.
    before = m.get("config_reloads_total", result="ok")
    n.send_signal(signal.SIGHUP)
    wait_until(lambda: n.metrics().get("config_reloads_total", result="ok") == before + 1,
               5 * SLOW, what="the SIGHUP reload")

    assert n.stop() == 0
    out = verify_log(n)
    assert "OK" in out or "ok" in out, out
    recs = records(n)
    assert find(recs, "admin", "reload", "ok")
    assert any(r["actor"].get("signal") == "SIGHUP" for r in find(recs, "admin", "reload", "ok"))
    pol = find(recs, "policy", "policy_load", "ok")
    assert any(r["attrs"].get("version") == 2 for r in pol), pol
    refused = find(recs, "ingress", "capability_refused")
    assert sum(r["attrs"]["count"] for r in refused) == flood, refused
    assert len(refused) <= 10 * SLOW, "a flood must be aggregated: %d records" % len(refused)
    assert all(r["subject"]["key"].startswith("ip:") for r in refused), refused
    assert find(recs, "supervisor", "start")
    assert find(recs, "supervisor", "shutdown", "SIGTERM")
    assert find(recs, "keys", "keys_loaded")
    assert find(recs, "audit", "opened", "disk")
    # The shutdown checkpoint covers every record.
    with open(os.path.join(n.data_dir, "audit", "checkpoints.log")) as f:
        last = json.loads(f.read().splitlines()[-1])
    assert last["size"] == len(recs)


def test_full_queue_is_counted_and_recorded(node_factory):
    n = node_factory(config={"audit": {"queue_max": 1, "fsync_interval": "1500ms",
                                       "checkpoint_interval": "1s"}})
    for _ in range(6):
        assert n.post("/api/v1/reload").status == 202

    # The entries are sent fire-and-forget and the audit service counts a
    # refusal when it reads one, after the 202s; a sync turn (every
    # fsync_interval) can empty the queue mid-burst on a slow machine. Poll,
    # one more reload per poll while fewer than five were refused.
    def refused():
        d = n.metrics().get("audit_dropped_total", reason="queue_full") or 0
        if d < 5:
            assert n.post("/api/v1/reload").status == 202
        return d if d >= 5 else None
    dropped = wait_until(refused, 10 * SLOW, interval=0.1, what="five entries refused (queue_full)")
    # Once the queue drains, one record says how many were refused.
    wait_until(lambda: find(records(n), "audit", "dropped", "queue_full"), 10 * SLOW,
               interval=0.2, what="the drop record")
    assert n.stop() == 0
    verify_log(n)
    recs = find(records(n), "audit", "dropped", "queue_full")
    assert sum(r["attrs"]["count"] for r in recs) >= dropped, recs


def test_killed_audit_service_restarts_and_reopens(node_factory):
    n = node_factory(config=FAST)
    assert n.post("/api/v1/reload").status == 202
    # Acknowledged before the kill (an entry still queued would die with it).
    assert proof_when_covered(n, "admin", 0).status == 200
    c = audit_child(n)
    os.kill(c["pid"], signal.SIGKILL)
    wait_until(lambda: audit_child(n)["pid"] not in (0, c["pid"]) and
               audit_child(n)["state"] == "ready", 10 * SLOW, what="audit restarted")
    assert n.post("/api/v1/reload").status == 202
    r = proof_when_covered(n, "admin", 1)
    assert r.status == 200, r
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    assert len(find(recs, "audit", "opened")) == 2
    restarts = find(recs, "supervisor", "restart", "signal")
    assert any(r["subject"]["service"] == "audit" for r in restarts), restarts
    assert len(find(recs, "admin", "reload", "ok")) == 2


def test_amnesia_keeps_the_log_in_memory(node_factory):
    n = node_factory(config=dict(FAST, amnesia=True))
    assert n.post("/api/v1/reload").status == 202
    r = proof_when_covered(n, "admin", 0)
    assert r.status == 200, r
    p = r.json()
    leaf = b3(b"\x00" + p["record"].encode())
    root = verify_path(leaf, p["index"], p["tree_size"], [unhex(h) for h in p["path"]])
    assert "b3:" + root.hex() == p["checkpoint"]["root"]
    assert n.get("/api/v1/audit/checkpoint").status == 200
    # The newest records come out of the RAM log too.
    r = n.get("/api/v1/audit/recent?stream=admin&n=1")
    assert r.status == 200, r
    assert [x["record"] for x in r.json()["records"]] == [p["record"]]
    assert not os.path.exists(n.data_dir)
    assert n.stop() == 0
    assert not os.path.exists(n.data_dir)
    assert sorted(os.listdir(n.tmp)) == ["node.json", "node.log", "wall"]


def test_without_the_audit_service(node_factory):
    n = node_factory(config={"services": ["gateway", "storage"]})
    for path in ("/api/v1/audit/checkpoint", "/api/v1/audit/proof?stream=admin&seq=0",
                 "/api/v1/audit/recent?n=5"):
        r = n.get(path)
        assert r.status == 404 and r.json()["code"] == "audit_disabled", r
    assert n.post("/api/v1/reload").status == 202
    assert n.stop() == 0
    assert not os.path.exists(os.path.join(n.data_dir, "audit"))


@pytest.mark.parametrize("cfg,key", [
    ({"segment_max": "1KiB"}, "audit.segment_max"),
    ({"fsync_interval": "1ms"}, "audit.fsync_interval"),
    ({"checkpoint_interval": "10ms"}, "audit.checkpoint_interval"),
    ({"queue_max": 0}, "audit.queue_max"),
    ({"ram_bytes": "1MiB"}, "audit.ram_bytes"),
])
def test_audit_config_is_validated(tmp_dir, cfg, key):
    path = os.path.join(tmp_dir, "bad.json")
    with open(path, "w") as f:
        json.dump({"audit": cfg}, f)
    r = run_cli(["config", "validate", path])
    assert r.returncode != 0 and key in r.stderr and "out of range" in r.stderr, r.stderr


def test_torn_write_is_recovered_reported_and_audited(node_factory):
    n = node_factory(config=FAST)
    assert n.stop() == 0
    segs = sorted(glob.glob(os.path.join(n.data_dir, "audit", "seg-*.log")))
    torn = b'{"actor":{},"attrs":{},"kind":"cut-by-a-crash'
    with open(segs[-1], "ab") as f:
        f.write(torn)
    n.start()
    assert n.metrics().get("audit_recovered_torn_bytes") == len(torn)
    assert n.stop() == 0
    verify_log(n)
    rec = find(records(n), "audit", "recovered", "torn_write")
    assert len(rec) == 1, rec
    assert rec[0]["attrs"]["bytes"] == len(torn)
    assert rec[0]["attrs"]["file"] == os.path.basename(segs[-1])
    assert any(x.get("msg") == "audit log recovered a torn write" for x in n.log_records())


def test_proofs_are_bounded_and_counted(node_factory):
    n = node_factory(config=FAST)
    assert n.post("/api/v1/reload").status == 202
    assert proof_when_covered(n, "admin", 0).status == 200
    m0 = n.metrics()
    statuses = limited_burst(lambda: n.get("/api/v1/audit/proof?stream=admin&seq=0").status)
    refused = statuses.count(503)    # 10 per second, a burst of 10
    m = n.metrics()
    counted = sum((m.get("audit_proofs_total", result=r) or 0) -
                  (m0.get("audit_proofs_total", result=r) or 0) for r in ("limited", "busy"))
    assert counted == refused, (counted, refused)
    assert m.get("audit_proofs_total", result="limited") >= 1


def test_integrity_failure_and_quarantine_are_audited(node_factory):
    n = node_factory(config=FAST)
    data = os.urandom(5000)
    cid = stored(n, data)
    flip_byte(blob_file(n, cid), 1234)
    for _ in range(3):
        assert n.gw("GET", obj_path(cid)).status == 502
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    fail = find(recs, "storage", "integrity_fail_quarantine")
    assert len(fail) == 1 and fail[0]["subject"]["key"] == "b3:" + cid_hex(cid), fail
    assert fail[0]["attrs"]["count"] == 1
    q = find(recs, "storage", "quarantined", "requested")
    assert len(q) == 1 and q[0]["writer_id"] == "storage", q


def test_damage_storage_finds_itself_is_audited(node_factory):
    """A blob cut short on disk: storage sees the wrong size when it opens
    it (no hash needed), quarantines it and records that in the log."""
    n = node_factory(config=FAST)
    cid = stored(n, os.urandom(5000))
    os.truncate(blob_file(n, cid), 100)
    assert n.gw("GET", obj_path(cid)).status in (404, 410, 502)
    assert n.stop() == 0
    verify_log(n)
    fail = find(records(n), "storage", "integrity_fail_quarantine", "blob")
    assert len(fail) == 1 and fail[0]["subject"]["key"] == "b3:" + cid_hex(cid), fail


def test_key_refusals_and_decompression_bombs_are_recorded(node_factory):
    """A capability key file the workers cannot load (kept: the old keys stay
    in force) and a decompression bomb are both audited."""
    import gzip
    from conftest import put_object
    n = node_factory(config={"storage": {"max_object": "64MiB"}})
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024))   # ~40 KiB that decode to 40 MiB
    r = put_object(n, bomb, headers={"Content-Encoding": "gzip"})
    assert r.status == 413 and "compress" in r.json()["message"], r
    keys = n.extra_env["RON_AUTH_KEYS_DIR"]
    bad = os.path.join(keys, "k9.key")
    with open(bad, "w") as f:
        f.write("not a key file\n")
    os.chmod(bad, 0o600)
    assert n.post("/api/v1/reload").status == 202
    wait_until(lambda: n.metrics().sum("key_load_refused_total") >= 1, 10 * SLOW,
               what="the workers refused k9.key")
    os.unlink(bad)
    assert n.stop() == 0
    recs = records(n)
    bombs = find(recs, "ingress", "decompression_refused")
    assert bombs and sum(r["attrs"]["count"] for r in bombs) == 1, bombs
    refused = find(recs, "keys", "key_load_refused", "file")
    assert refused, [(r["stream"], r["kind"]) for r in recs]
    assert all("k9.key" in r["attrs"]["error"] for r in refused), refused
    assert {r["writer_id"].split("/")[0] for r in refused} >= {"gateway"}, refused


def recent(n, query):
    r = n.get("/api/v1/audit/recent" + query)
    assert r.status == 200, r
    return r.json()


def test_recent_records_newest_first(node_factory):
    n = node_factory(config=FAST)
    for _ in range(3):
        assert n.post("/api/v1/reload").status == 202
    assert proof_when_covered(n, "admin", 2).status == 200

    # Every stream, newest first: consecutive indexes ending at the log's size
    # (fewer than 20 records yet: all of them).
    j = recent(n, "?n=20")
    idx = [x["index"] for x in j["records"]]
    assert 10 <= j["size"] < 20 and j["omitted"] == 0, j
    assert idx == list(range(j["size"] - 1, -1, -1)), idx
    assert j["stream"] is None
    for _ in range(12):   # more than 20 now
        assert n.post("/api/v1/reload").status == 202
    assert proof_when_covered(n, "admin", 14).status == 200
    j = recent(n, "?n=20")
    idx = [x["index"] for x in j["records"]]
    assert idx == list(range(j["size"] - 1, j["size"] - 21, -1)), idx
    assert [x["index"] for x in recent(n, "")["records"]][:1] == [j["size"] - 1]
    assert len(recent(n, "")["records"]) == 10   # the default n
    assert len(recent(n, "?n=1")["records"]) == 1
    # With the newest checkpoint, signed by the node, over the records read.
    _, pub = node_pubkey(n)
    check_checkpoint(j["checkpoint"], pub)
    assert 15 <= j["checkpoint"]["size"] <= j["size"], j

    # One stream: the three reloads, newest first, each the very record (and
    # index) a proof returns.
    j = recent(n, "?stream=admin&n=3")
    assert j["stream"] == "admin"
    recs = [json.loads(x["record"]) for x in j["records"]]
    assert [(r["stream"], r["seq"], r["kind"], r["reason"]) for r in recs] == \
        [("admin", s, "reload", "ok") for s in (14, 13, 12)], recs
    assert [r["seq"] for r in map(json.loads, (x["record"] for x in
            recent(n, "?stream=admin&n=20")["records"]))] == list(range(14, -1, -1))
    for x, rec in zip(j["records"], recs):
        p = n.get("/api/v1/audit/proof?stream=admin&seq=%d" % rec["seq"]).json()
        assert (p["record"], p["index"]) == (x["record"], x["index"])
    assert recent(n, "?stream=no.such.stream&n=5")["records"] == []

    # Bad parameters: 400 naming the parameter, counted.
    before = n.metrics().sum("rejected_total", reason="bad_request")
    bad = {"?n=0": "n:", "?n=21": "n:", "?n=x": "n:", "?n=5&n=6": "n:",
           "?stream=a%20b": "stream:", "?stream=": "stream:", "?seq=1": "seq: unknown"}
    for q, why in bad.items():
        r = n.get("/api/v1/audit/recent" + q)
        assert r.status == 400 and r.json()["code"] == "bad_query", (q, r)
        assert r.json()["message"].startswith(why), (q, r.json())
    assert n.metrics().sum("rejected_total", reason="bad_request") == before + len(bad)
    assert n.metrics().get("audit_recent_total", result="ok") >= 5

    # Rate-limited like proofs: a burst past 10 per second is refused, counted.
    statuses = limited_burst(lambda: n.get("/api/v1/audit/recent?n=1").status)
    m = n.metrics()
    assert (m.get("audit_recent_total", result="limited") or 0) + \
        (m.get("audit_recent_total", result="busy") or 0) == statuses.count(503)

    # The same bytes as the log on disk, which the verifier accepts.
    time.sleep(1.1)   # the bucket refills
    last = recent(n, "?n=20")
    assert n.stop() == 0
    verify_log(n)
    ondisk = records(n)
    for x in last["records"]:
        assert json.loads(x["record"]) == ondisk[x["index"]], x


def refused_from(n, src):
    """One PUT with a bad token to the gateway from source address src (any
    127/8 address is ours on loopback): refused 401, keyed ip:<src>."""
    import socket
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.settimeout(10 * SLOW)
        s.bind((src, 0))
        s.connect(("127.0.0.1", n.gateway_port))
        s.sendall(b"PUT /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer not-a-token\r\n"
                  b"Content-Length: 1\r\nConnection: close\r\n\r\nx")
        got = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 401"), got[:200]


def test_a_long_fsync_interval_does_not_make_senders_drop(node_factory):
    """A sender may have 256 entries unanswered, and entries are answered
    only after their batch's fsync: with fsync_interval 10 s a refusal flood
    from many peers (64 aggregates a second, one process) would reach that
    window before the periodic turn. The service starts a turn as soon as
    128 entries are queued, so nothing is dropped as client_busy."""
    n = node_factory(config={"audit": {"fsync_interval": "10s", "checkpoint_interval": "1s"}})
    peers = ["127.0.%d.%d" % (1 + i // 250, 1 + i % 250) for i in range(70)]
    sent = 0

    def written():
        return n.metrics().sum("audit_records_total", stream="ingress") or 0
    def busy():
        return n.metrics().sum("audit_dropped_total", reason="client_busy")
    # Rounds of 70 distinct peers: each second's 64 keys (+ one overflow
    # record) leave the gateway as 65 entries, until more than a sender's
    # window was written or a sender dropped.
    for _ in range(int(400 * SLOW)):
        for p in peers:
            refused_from(n, p)
            sent += 1
        if written() > 300 or busy():
            break
        time.sleep(0.1)
    m = n.metrics()
    assert not m.sum("audit_dropped_total", reason="client_busy"), m.sum("audit_dropped_total")
    assert written() > 256, "the flood never produced a window's worth of records"
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    refused = find(recs, "ingress", "capability_refused")
    over = [r for r in find(recs, "audit", "aggregate_overflow") if
            r["writer_id"].startswith("gateway")]
    assert sum(r["attrs"]["count"] for r in refused + over) == sent, (len(refused), sent)
    assert not find(recs, "audit", "client_dropped")


def test_pubkey_finds_the_kek_as_run_does(node_factory):
    """`audit pubkey` unseals the identity with the KEK `run` uses: from the
    config (--config or --data-dir: <data_dir>.kek), and a systemd
    credential ($CREDENTIALS_DIRECTORY/macronode.kek) first — a packaged
    node's identity opens without --kek. --kek still wins."""
    n = node_factory(config=FAST)
    _, pub = node_pubkey(n)   # --kek
    assert n.stop() == 0
    keyfile = os.path.join(n.data_dir, "node", "identity.key")
    for args in (["--config", n.config_path], ["--data-dir", n.data_dir],
                 [keyfile, "--data-dir", n.data_dir]):
        r = run_cli(["audit", "pubkey"] + args)
        assert r.returncode == 0 and r.stdout.strip() == pub.hex(), (args, r.stderr)
    # The default key file is the config's node.identity_file.
    moved = os.path.join(n.tmp, "elsewhere.key")
    os.rename(keyfile, moved)
    cfg = json.load(open(n.config_path))
    cfg.setdefault("node", {})["identity_file"] = moved
    moved_cfg = os.path.join(n.tmp, "moved.json")
    with open(moved_cfg, "w") as f:
        json.dump(cfg, f)
    r = run_cli(["audit", "pubkey", "--config", moved_cfg])
    assert r.returncode == 0 and r.stdout.strip() == pub.hex(), r.stderr
    os.rename(moved, keyfile)
    # Without the KEK beside the data dir, only a credential opens it.
    creds = os.path.join(n.tmp, "creds")
    os.mkdir(creds, 0o700)
    os.rename(n.data_dir + ".kek", os.path.join(creds, "macronode.kek"))
    r = run_cli(["audit", "pubkey", "--config", n.config_path])
    assert r.returncode == 1 and "macronode audit pubkey:" in r.stderr, r
    r = run_cli(["audit", "pubkey", "--config", n.config_path],
                env={"CREDENTIALS_DIRECTORY": creds})
    assert r.returncode == 0 and r.stdout.strip() == pub.hex(), r.stderr
    r = run_cli(["audit", "pubkey", keyfile, "--kek", os.path.join(creds, "macronode.kek")])
    assert r.returncode == 0 and r.stdout.strip() == pub.hex(), r.stderr
    r = run_cli(["audit", "pubkey", "--bogus"])
    assert r.returncode == 2 and "--kek FILE" in r.stderr, r
    r = run_cli(["audit", "--help"])
    assert "pubkey [KEYFILE] [--kek FILE] [--config FILE] [--data-dir DIR]" in r.stdout, r


def test_a_failed_write_after_an_early_sync_loses_only_the_rest(node_factory):
    """A batch that fills is synced at once; its entries are on disk, so they
    are answered 200 then. When the turn's closing write fails afterwards
    (test hooks: batches of 4 records, the first such closing write fails),
    only the entries after that sync are answered 500 and counted lost by
    their senders (audit_dropped_total{reason="unavailable"}) — not the
    whole turn."""
    n = node_factory(config={"audit": {"fsync_interval": "2s", "checkpoint_interval": "1s"}},
                     env={"MN_TEST_AUDIT_BATCH": "4", "MN_TEST_AUDIT_FAIL_AFTER_FULL": "1"})
    for _ in range(3):   # > 4 entries in the next turn, whatever the start left
        assert n.post("/api/v1/reload").status == 202

    def failed():
        return [r for r in n.log_records() if r.get("msg") == "audit log write failed; reopening"]
    got = wait_until(failed, 20 * SLOW, interval=0.2, what="the hook's failed write")
    assert len(got) == 1, got
    acked, lost = int(got[0]["acknowledged"]), int(got[0]["lost"])
    assert acked >= 4 and 1 <= lost <= 4, got
    # The senders count exactly the entries answered 500 (before the fix:
    # the whole turn, acked + lost).
    wait_until(lambda: n.metrics().sum("audit_dropped_total", reason="unavailable") >= lost,
               10 * SLOW, what="the senders' count")
    assert n.metrics().sum("audit_dropped_total", reason="unavailable") == lost
    # The service reopened the log itself (inside its sandbox, which allows
    # no mkdir or chmod: once it was killed for it), and what was
    # acknowledged is in it.
    def reopened():
        after = failed()[0]["ts"]
        return [r for r in n.log_records() if r.get("msg") == "audit log open" and
                r["ts"] >= after]
    again = wait_until(reopened, 10 * SLOW, what="the log reopened")
    assert int(again[0]["records"]) >= acked, (again, acked)
    assert "killed by its sandbox" not in n.log()
    m = n.metrics()
    assert not m.sum("service_restarts_total", service="audit"), m.series("service_restarts_total")
    assert not m.sum("sandbox_violations_total")
    assert n.stop() == 0
    verify_log(n)
