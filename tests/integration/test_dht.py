"""The dht service (src/svc/dht, docs/network.md): three real nodes on
loopback, each with its own UDP port; B and C bootstrap from A.

- an object put on A is found from C (`macronode find`): A's node id and
  OAP address, within the lookup deadline;
- a node whose records carry a bad signature (the test hook
  MN_TEST_DHT_BAD_SIGNATURE, honoured only by the dht service) is ignored by
  the others and the refusal is counted;
- the dht process, killed, is restarted by the supervisor and republishes;
- `macronode peers` lists the routing table; /readyz shows the dht state.
"""
import os
import signal
import time

import pytest

from conftest import wait_for as wait_until
from conftest import free_ports, run_cli, service_children, stored, SLOW
from test_sandbox import landlock_enabled

LOOKUP_S = 5.0          # dht.lookup_timeout (the default)
BOOT_S = 20.0 * SLOW    # time for a routing table to fill on loopback


def dht_config(udp, oap, bootstrap=()):
    return {"services": ["gateway", "storage", "dht"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(bootstrap),
                    "lookup_timeout": "%ds" % LOOKUP_S}}


def node_cli(node, *args, timeout=30):
    return run_cli(list(args) + ["--config", node.config_path], timeout=timeout)


def routing_nodes(node):
    return node.metrics().sum("dht_routing_nodes")


def find(node, cid):
    p = node_cli(node, "find", cid, timeout=LOOKUP_S + 10)
    return p


@pytest.fixture
def trio(node_factory):
    """A, then B and C bootstrapping from A (B may get env for the hook)."""
    def make(b_env=None):
        udp = free_ports(3)
        oap = free_ports(3)
        a = node_factory(config=dht_config(udp[0], oap[0]))
        boot = ["127.0.0.1:%d" % udp[0]]
        b = node_factory(config=dht_config(udp[1], oap[1], boot), env=b_env)
        c = node_factory(config=dht_config(udp[2], oap[2], boot))
        for n in (a, b, c):
            wait_until(lambda n=n: routing_nodes(n) >= 1, BOOT_S, "a routing table on " + n.tag)
        return a, b, c, oap
    return make


def test_find_from_another_node(trio):
    a, b, c, oap = trio()
    a_id = node_cli(a, "id").stdout.strip()
    data = os.urandom(3000)
    cid = stored(a, data)
    # storage announced it (fire and forget); C finds A within the deadline
    def found():
        t0 = time.monotonic()
        p = find(c, cid)
        took = time.monotonic() - t0
        assert took < LOOKUP_S + 3, "find took %.1fs" % took
        return p.stdout if p.returncode == 0 else None
    out = wait_until(found, 30 * SLOW, "C to find A's record")
    line = [l for l in out.splitlines() if l.startswith(a_id)]
    assert line, out
    assert "127.0.0.1:%d" % oap[0] in line[0]
    assert "expires " in line[0]
    # the admin plane answers the same (the console's object box asks it)
    r = c.get("/api/v1/providers/" + cid)
    assert r.status == 200, r
    provs = r.json()["providers"]
    assert r.json()["cid"] == cid
    assert any(p["node_id"] == a_id and p["addr"] == "127.0.0.1:%d" % oap[0] and p["expires"] > 0
               for p in provs), provs
    # A counts its announce when the whole put is done; the record can be
    # found on C before the last store reply reaches A.
    wait_until(lambda: (a.metrics().get("dht_announces_total", result="ok") or 0) >= 1,
               10 * SLOW, "dht_announces_total{result=ok} on A")
    assert c.metrics().sum("dht_lookups_total", result="found") >= 1
    # an object nobody announced: no provider (exit 1), after at most the deadline
    t0 = time.monotonic()
    p = find(c, "b3:" + "ab" * 32)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "no provider" in p.stderr
    assert time.monotonic() - t0 < LOOKUP_S + 3
    # peers: the routing table of C names A's UDP address
    p = node_cli(c, "peers")
    assert p.returncode == 0, p.stderr
    assert "routing table:" in p.stdout
    # readiness: dht bootstrapped, visible in /readyz
    r = c.get("/readyz").json()
    assert r["deps"]["services"]["dht"]["state"] == "ready", r
    assert r["deps"]["dht"]["bootstrapped"] is True, r
    assert r["deps"]["dht"]["routing_nodes"] >= 1, r


def test_bad_signature_is_refused_and_counted(trio):
    a, b, c, oap = trio(b_env={"MN_TEST_DHT_BAD_SIGNATURE": "1"})
    data = os.urandom(2000)
    cid = stored(b, data)      # B announces a record whose signature is corrupted
    time.sleep(1.0)
    # a lookup from C sees B's record, refuses it and counts it; no provider
    def refused():
        p = find(c, cid)
        assert p.returncode == 1, (p.stdout, p.stderr)
        return c.metrics().get("dht_records_rejected_total", reason="bad_signature")
    assert wait_until(refused, 30 * SLOW, "C to refuse B's record") >= 1
    # the same object put on A as well: C finds A, and only A
    a_id = node_cli(a, "id").stdout.strip()
    b_id = node_cli(b, "id").stdout.strip()
    stored(a, data)
    out = wait_until(lambda: (lambda p: p.stdout if p.returncode == 0 else None)(find(c, cid)),
                     30 * SLOW, "C to find A")
    assert a_id in out and b_id not in out, out


def test_killed_dht_restarts_and_republishes(trio):
    # B: a node with dht.bootstrap, as most are; its restarted dht service
    # rejoins through A (an island root relearns peers only when they call).
    a, b, c, oap = trio()
    cid = stored(b, os.urandom(1000))
    wait_until(lambda: find(c, cid).returncode == 0, 30 * SLOW, "C to find B's record")
    ok0 = b.metrics().get("dht_announces_total", result="ok") or 0
    pid = service_children(b, "dht")[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    def restarted():
        kids = service_children(b, "dht")
        return kids and kids[0]["pid"] not in (0, pid) and kids[0]["state"] == "ready"
    wait_until(restarted, 20 * SLOW, "the dht service to restart")
    # the new process rejoins through A and republishes what B holds
    wait_until(lambda: (b.metrics().get("dht_announces_total", result="ok") or 0) > ok0,
               30 * SLOW, "a republished announce")
    recs = wait_until(lambda: [r for r in b.log_records() if r.get("msg") == "republish pass done"],
                      10 * SLOW, "the republish pass to end")
    assert int(recs[-1]["objects"]) >= 1, recs
    assert b.metrics().sum("service_restarts_total", service="dht") >= 1
    assert find(c, cid).returncode == 0

def test_dht_sandbox(node_factory, tmp_dir):
    """Profile dht: no file at all (an open is refused), no write open, no
    exec (killed by SIGSYS, counted, restarted, serving again)."""
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes)
    udp, oap = free_ports(2)
    cases = (("open", False), ("write", True)) if landlock_enabled() else (("write", True),)
    for what, killed in cases:
        with open(os.path.join(probes, "dht"), "w") as f:
            f.write(what)
        n = node_factory(config=dht_config(udp, oap), env={"MN_TEST_SANDBOX_PROBE": probes},
                         start=False)
        n.start()
        if killed:
            wait_until(lambda: n.metrics().get("sandbox_violations_total", role="dht") == 1,
                       10 * SLOW, "the dht service killed by its sandbox")
            wait_until(lambda: service_children(n, "dht")[0]["state"] == "ready", 10 * SLOW,
                       "the dht service back")
        else:
            # dht readiness is not part of the node's start, so the probe's
            # record may come after start() returns: wait for it.
            def refused():
                return [r.get("error") for r in n.log_records() if r.get("service") == "dht"
                        and r.get("msg") == "sandbox probe refused"]
            wait_until(lambda: refused(), 10 * SLOW, "the dht probe's record")
            assert refused() == ["Permission denied"], n.log()
            assert n.metrics().get("sandbox_violations_total", role="dht") is None
        assert node_cli(n, "peers").returncode == 0
        n.stop()


def stored_values(node):
    return node.metrics().get("dht_stored_values")


def find_expires(node, cid, who):
    """The expiry `node`'s find reports for provider `who` (one line per
    provider): ISO 8601 UTC, so later compares greater."""
    p = find(node, cid)
    if p.returncode != 0:
        return None
    lines = [l for l in p.stdout.splitlines() if l.startswith(who)]
    assert len(lines) <= 1, p.stdout
    return lines[0].split("expires ")[1].strip() if lines else None


def restart_dht(node):
    pid = service_children(node, "dht")[0]["pid"]
    passes = len([r for r in node.log_records() if r.get("msg") == "republish pass done"])
    os.kill(pid, signal.SIGKILL)
    def restarted():
        kids = service_children(node, "dht")
        return kids and kids[0]["pid"] not in (0, pid) and kids[0]["state"] == "ready"
    wait_until(restarted, 20 * SLOW, "the dht service to restart")
    wait_until(lambda: len([r for r in node.log_records()
                            if r.get("msg") == "republish pass done"]) > passes,
               30 * SLOW, "the republish pass to end")


def test_republish_replaces_the_record(trio):
    """A republished provider record carries the publisher's value id, so
    the nodes storing it replace the old one (a later expiry) instead of
    keeping both: one value per provider, however often it republishes."""
    a, b, c, oap = trio()
    b_id = node_cli(b, "id").stdout.strip()
    cid = stored(b, os.urandom(1500))
    exp0 = wait_until(lambda: find_expires(c, cid, b_id), 30 * SLOW, "C to find B's record")
    # A (B's bootstrap node) stores B's one record and nothing else (it
    # holds no object); C may have joined after B's put went out
    wait_until(lambda: stored_values(a) == 1, 10 * SLOW, "B's record stored on A")
    assert (stored_values(c) or 0) <= 1
    prev = exp0
    for _ in range(2):
        time.sleep(1.1)          # a later second: a later expiry
        restart_dht(b)           # the restarted service republishes at once
        newer = wait_until(lambda: (lambda e: e if e and e > prev else None)(
            find_expires(c, cid, b_id)), 20 * SLOW, "C to see the republished record")
        prev = newer
        time.sleep(2.0)          # the gauges are read every second
        # replaced where it was held, not added beside it
        assert stored_values(a) == 1 and (stored_values(c) or 0) <= 1, \
            (stored_values(a), stored_values(c))
    assert prev > exp0
    # nothing refused along the way: every republish was an accepted edit
    for n in (a, c):
        m = n.metrics()
        assert m.get("dht_records_rejected_total", reason="stale") is None, n.tag
        assert m.get("dht_records_rejected_total", reason="wrong_id") is None, n.tag
