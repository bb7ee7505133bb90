"""
Every kind of record issue 15 requires, found in the audit log itself (not
only in the node's stderr), and the log verifying offline afterwards
(docs/audit.md "Streams and records"): admin shutdown, a flood of refused
admin calls (aggregated), policy refused and withdrawn, a crash loop, key
withdrawal (the key set after a retire), capability refusals and
decompression bombs on OAP/1 (aggregated), overlay peer failures.
test_audit_service.py covers reload, policy load ok, the HTTP capability
flood, restarts, integrity, quarantine, HTTP decompression and key refusals.
"""
import json
import os
import signal
import subprocess

import pytest

from conftest import (B3SUM, OAP_COMP, OAP_END, OAP_PUT, OAP_REQ, OAP_START, OPENSSL,
                      OPEN_BUNDLE, SLOW, ZSTD, OapConn, deep_merge, free_ports, oap_frame,
                      oap_node, stored, wait_until, write_bundle)
from test_audit_service import FAST, find, records, verify_log

pytestmark = pytest.mark.skipif(B3SUM is None, reason="b3sum not installed")

MIB = 1 << 20


def counted(recs):
    return sum(r["attrs"]["count"] for r in recs)


def test_admin_shutdown_and_a_refused_flood_are_in_the_log(node_factory):
    """POST /api/v1/shutdown is recorded with its result; 200 refused admin
    calls from one peer become a few aggregated records carrying the count
    (one per action, peer and second), not 200."""
    n = node_factory(config=FAST)
    flood = 200
    for _ in range(flood):
        r = n.post("/api/v1/reload", headers={"Origin": "http://evil.example"})
        assert r.status == 401, r
    assert n.metrics().sum("config_reloads_total") in (None, 0)
    r = n.post("/api/v1/shutdown")
    assert r.status == 202, r
    assert n.wait_exit(10 * SLOW) == 0
    verify_log(n)
    recs = records(n)
    shut = find(recs, "admin", "shutdown", "accepted")
    assert len(shut) == 1 and shut[0]["actor"]["peer"].startswith("127.0.0.1:"), shut
    assert find(recs, "supervisor", "shutdown")
    refused = find(recs, "admin", "reload", "unauthorized")
    assert counted(refused) == flood, refused
    assert len(refused) <= 10 * SLOW, "a refused flood must be aggregated: %d records" % \
        len(refused)
    assert all(r["subject"]["key"] == "ip:127.0.0.1" for r in refused), refused
    assert all(r["attrs"]["window_ms"] == 1000 for r in refused), refused
    # Nothing was dropped for it.
    assert not find(recs, "audit", "dropped")


def test_policy_refused_and_withdrawn_are_in_the_log(node_factory):
    n = node_factory(config=FAST)
    write_bundle(n.wall_dir, dict(OPEN_BUNDLE, version=2))
    assert n.post("/api/v1/reload").status == 202
    # An older bundle is a rollback: refused, v2 stays in force.
    write_bundle(n.wall_dir, dict(OPEN_BUNDLE, version=1))
    r = n.post("/api/v1/reload")
    assert r.status == 422 and "rollback" in r.json()["message"], r
    # No bundle at all: withdrawn (deny all), not refused.
    os.unlink(os.path.join(n.wall_dir, "policy", "policy.json"))
    assert n.post("/api/v1/reload").status == 202
    wait_until(lambda: n.metrics().sum("policy_reloads_total", result="withdrawn") == 1,
               5 * SLOW, what="the withdrawal counted")
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    ok = find(recs, "policy", "policy_load", "ok")
    assert any(r["attrs"].get("version") == 2 for r in ok), ok
    refused = find(recs, "policy", "policy_load", "refused")
    assert len(refused) == 1, refused
    assert "rollback" in refused[0]["attrs"]["error"], refused
    assert refused[0]["attrs"]["version"] == 2, refused      # what stays in force
    assert refused[0]["actor"]["trigger"] == "POST /api/v1/reload", refused
    gone = find(recs, "policy", "policy_load", "withdrawn")
    assert len(gone) == 1 and "policy.json: no such file" in gone[0]["attrs"]["error"], gone
    assert "version" not in gone[0]["attrs"], gone                # nothing in force
    # In the order they happened.
    order = [r["reason"] for r in recs if r["stream"] == "policy"]
    assert order.index("refused") < order.index("withdrawn"), order


def test_crash_loop_is_in_the_log(node_factory):
    n = node_factory(config=FAST)
    for i in range(5):      # CRASHLOOP_COUNT exits within the window
        old = [c for c in n.children() if c["service"] == "gateway"][0]
        os.kill(old["pid"], signal.SIGKILL)

        def replaced():
            c = [c for c in n.children() if c["service"] == "gateway"][0]
            return c if c["pid"] not in (0, old["pid"]) and c["state"] == "ready" else None
        wait_until(replaced, 10 * SLOW, interval=0.01, what="gateway replaced %d" % i)
    assert n.metrics().get("service_crashloop", service="gateway") == 1
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    loop = find(recs, "supervisor", "crashloop", "gateway")
    assert len(loop) == 1, loop
    assert loop[0]["subject"]["service"] == "gateway" and loop[0]["attrs"]["status"] == "signal 9"
    restarts = [r for r in find(recs, "supervisor", "restart", "signal")
                if r["subject"]["service"] == "gateway"]
    assert len(restarts) == 5, restarts


def test_key_withdrawal_is_in_the_log(node_factory):
    """A rotation and a retire: each reload records the key set in force, so
    the record after the retire no longer lists the withdrawn kid."""
    from test_keys import init, key, reload
    n = node_factory(config=FAST, start=False, wall=None)
    init(n)
    n.start()
    assert key(n, "rotate", "--kid", "k2").returncode == 0
    reload(n)
    p = key(n, "retire", "--kid", "k1")
    assert p.returncode == 0, p.stderr
    reload(n)
    assert n.stop() == 0
    verify_log(n)
    sets = [(r["attrs"]["kids"], r["attrs"]["minting"])
            for r in find(records(n), "keys", "keys_loaded", "changed")]
    assert sets == [(["k1"], "k1"), (["k1", "k2"], "k2"), (["k2"], "k2")], sets


def audited_oap_node(node_factory, pki):
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    n = oap_node(node_factory, pki, deep_merge(FAST, {"storage": {"max_object": "80MiB"}}),
                 start=False)
    n.config["services"] = ["gateway", "storage", "omnigate", "audit"]
    n.write_config(n.config, merge=False)
    return n.start()


def oap_put(c, corr, cap=b"", body=b"x", comp=False):
    c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=corr, cap=cap, payload=b"{}") +
           oap_frame(OAP_REQ | OAP_END | (OAP_COMP if comp else 0), corr=corr, payload=body))
    f = c.recv_frame()
    assert f is not None and f.corr == corr, f
    return f


def test_oap_refusals_are_in_the_log(node_factory, pki):
    """Capability refusals and decompression bombs on OAP/1: aggregated per
    tenant or peer and second, like on HTTP, written by omnigate."""
    if not ZSTD:
        pytest.skip("zstd CLI not installed")
    n = audited_oap_node(node_factory, pki)
    bomb = subprocess.run([ZSTD, "-q", "-c", "-19"], input=b"\0" * (9 * MIB),
                          capture_output=True, check=True).stdout
    assert len(bomb) < 4096
    flood, bombs = 30, 3
    c = OapConn(n.oap_port)
    try:
        c.hello()
        for i in range(flood):
            f = oap_put(c, 10 + i, cap=b"not-a-token")
            assert f.code == 401, f
        for i in range(bombs):
            f = oap_put(c, 100 + i, body=bomb, comp=True)
            assert f.code == 413, f
    finally:
        c.close()
    assert n.metrics().sum("oap_rejected_total", reason="decompress") == bombs
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    refused = [r for r in find(recs, "ingress", "capability_refused")
               if r["writer_id"] == "omnigate"]
    assert counted(refused) == flood, refused
    assert len(refused) <= 5 * SLOW, "aggregated: %d records" % len(refused)
    assert all(r["subject"]["key"] == "ip:127.0.0.1" for r in refused), refused
    dec = find(recs, "ingress", "decompression_refused")
    assert dec and all(r["writer_id"] == "omnigate" for r in dec), dec
    assert counted(dec) == bombs and len(dec) <= bombs, dec
    assert all(r["reason"] == "comp_caps" and r["subject"]["key"] == "ip:127.0.0.1"
               for r in dec), dec


def test_http_decompression_bombs_aggregate_per_peer(node_factory):
    """Bombs on separate connections from one address are one peer: a few
    aggregated records (key ip:<addr>, no port), counts adding up."""
    import gzip
    from conftest import put_object
    n = node_factory(config=FAST)
    bomb = gzip.compress(b"\0" * (1 << 20))            # ratio ~1000: refused
    bombs = 12
    for _ in range(bombs):
        r = put_object(n, bomb, headers={"Content-Encoding": "gzip"})
        assert r.status == 413, r
    assert n.stop() == 0
    verify_log(n)
    dec = find(records(n), "ingress", "decompression_refused")
    assert counted(dec) == bombs, dec
    assert len(dec) <= 3 * SLOW, "aggregated per peer: %d records" % len(dec)
    assert {r["subject"]["key"] for r in dec} == {"ip:127.0.0.1"}, dec


def test_overlay_peer_failure_is_in_the_log(node_factory):
    """The only provider of an object is gone: the fetching node's overlay
    records the failure, keyed by the provider's address."""
    from test_overlay import BOOT_S, net_config, node_id, providers
    udp, oap = free_ports(2), free_ports(2)
    a = node_factory(config=net_config(udp[0], oap[0]))
    cfg = deep_merge(net_config(udp[1], oap[1], ["127.0.0.1:%d" % udp[0]]), FAST)
    cfg["services"] = cfg["services"] + ["audit"]
    c = node_factory(config=cfg)
    for x in (a, c):
        wait_until(lambda x=x: x.metrics().sum("dht_routing_nodes") >= 1, BOOT_S,
                   what="a routing table on " + x.tag)
    cid = stored(a, os.urandom(100000))
    wait_until(lambda: node_id(a) in providers(c, cid), 20 * SLOW, what="A announced")
    a.stop()
    r = c.gw("GET", "/o/" + cid)
    assert r.status in (502, 504), r
    failures = c.metrics().sum("overlay_peer_failures_total")
    assert failures >= 1
    assert c.stop() == 0
    verify_log(c)
    recs = find(records(c), "overlay", "peer_failure")
    assert recs and all(r["writer_id"] == "overlay" for r in recs), recs
    assert counted(recs) == failures, (recs, failures)
    assert {r["subject"]["key"] for r in recs} == {a.config["oap"]["addr"]}, recs


def test_acknowledged_means_on_disk_and_a_crash_loss_is_counted(node_factory):
    """An APPEND is answered once its batch is fsynced. Entries still queued
    when the audit service is SIGKILLed are lost, but never silently: their
    senders were not answered, count them (audit_dropped_total{reason=
    "unavailable"}) and say so in an audit/client_dropped record once the
    service is back. A record the log holds after its batch (seen through
    /api/v1/audit/recent, which reads only synced records) survives a
    SIGKILL."""
    from test_audit_service import audit_child
    # No periodic turn for 10 s after the service starts: what the reload
    # emits is still queued when the service is killed.
    n = node_factory(config={"audit": {"fsync_interval": "10s", "checkpoint_interval": "1s"}})

    def written(**stream):
        return n.metrics().sum("audit_records_total", **stream) or 0
    # On a slow machine the periodic turn may come between the start and the
    # kill: then the step is taken again, right after that turn (a whole
    # interval ahead), and the expectations follow what was written.
    for _ in range(5):
        w0 = written()
        before = n.metrics().sum("config_reloads_total") or 0
        assert n.post("/api/v1/reload").status == 202
        wait_until(lambda: (n.metrics().sum("config_reloads_total") or 0) > before, 5 * SLOW,
                   what="the reload done")
        admin_written, start_written = written(stream="admin"), written(stream="supervisor")
        old = audit_child(n)
        if written() == w0:
            break
    else:
        pytest.fail("a turn of the audit service came before each kill")
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: audit_child(n)["pid"] not in (0, old["pid"]) and
               audit_child(n)["state"] == "ready", 10 * SLOW, what="audit restarted")
    assert n.metrics().sum("audit_dropped_total", reason="unavailable") >= 1
    # The supervisor's client opened its breaker when the connection was lost
    # (entries meanwhile are dropped and counted too); once a probe closed it,
    # the next entry is acknowledged and followed by the report.
    # (It opens after 3 failures: with fewer lost, it never opened.)
    wait_until(lambda: n.log().count("audit reachable again; breaker closed") >=
               n.log().count("audit unreachable; breaker open"), 10 * SLOW,
               what="the supervisor's audit client back")
    assert n.post("/api/v1/reload").status == 202

    def reported():
        r = n.get("/api/v1/audit/recent?stream=audit&n=20")
        if r.status != 200:
            return None
        recs = [json.loads(x["record"]) for x in r.json()["records"]]
        return [x for x in recs if x["kind"] == "client_dropped" and
                x["writer_id"] == "supervisor"]
    # Two turns of the new service: the one that acknowledges the
    # supervisor's next entry, the one that writes its report.
    got = wait_until(reported, 40 * SLOW, interval=0.5, what="the supervisor's loss report")
    # On disk now: a SIGKILL loses nothing of it.
    old = audit_child(n)
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: audit_child(n)["pid"] not in (0, old["pid"]) and
               audit_child(n)["state"] == "ready", 10 * SLOW, what="audit restarted again")
    assert n.stop() == 0
    verify_log(n)
    recs = records(n)
    assert [r for r in find(recs, "audit", "client_dropped")
            if r["writer_id"] == "supervisor"][:1] == got[-1:], got
    # What the supervisor sent before the kill never reached the disk (its
    # batch was not due) — supervisor/start, policy/policy_load at start and
    # at the reload, keys/keys_loaded, admin/reload (only the last two when
    # a turn came first) — and each is counted.
    reloads = find(recs, "admin", "reload", "ok")
    # Those written before the kill, then the one after the restart only.
    assert len(reloads) == admin_written + 1, (reloads, admin_written)
    assert got[-1]["reason"] == "unsent", got
    if not start_written:
        assert not find(recs, "supervisor", "start"), recs
        assert got[-1]["attrs"]["count"] >= 5, got
    else:
        assert got[-1]["attrs"]["count"] >= 2, got
