"""Mailbox (issue 17): the mailbox service and the /mb/ routes on the gateway.

Send (text, bytes, cid), idempotency, receive with a visibility lease,
ack, nack with backoff, the dead-letter queue and requeue, per-recipient
quotas, the owner check, every refusal with its counter, and crash
recovery: kill -9 of the mailbox service during a stream of sends and
receives loses nothing acknowledged and delivers nothing acked."""
import base64
import json
import os
import signal
import time

import pytest

from conftest import assert_envelope, mint_token, wait_until, SLOW

MB = {"services": ["gateway", "storage", "mailbox"],
      "mailbox": {"nack_backoff": "100ms", "nack_backoff_max": "200ms", "max_deliveries": 3,
                  "quota_count": 20, "quota_bytes": "4KiB"}}
TOKEN_ARGS = ("--ttl", "1h")


@pytest.fixture
def mb_node(node_factory):
    return node_factory(config=MB)


def tok(n, tenant):
    return mint_token(n.wall_dir, "--tenant", tenant, *TOKEN_ARGS)


def send(n, to, doc, token=None, key=None, raw=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    if key is not None:
        h["Idempotency-Key"] = key
    body = raw if raw is not None else json.dumps(doc).encode()
    return n.gw("POST", "/mb/" + to, body=body, headers=h)


def call(n, method, path, token):
    return n.gw(method, path, headers={"Authorization": "Bearer " + token})


def recv(n, me, token, query="max=10&lease=30s"):
    r = call(n, "GET", "/mb/%s?%s" % (me, query), token)
    assert r.status == 200, r
    return r.json()["messages"]


def refused(n, reason):
    return n.metrics().get("mailbox_refused_total", reason=reason) or 0


def test_send_receive_ack_nack(mb_node):
    n = mb_node
    bob = tok(n, "bob")
    r = send(n, "bob", {"body": "hello bob"}, token=tok(n, "alice"))
    assert r.status == 201, r
    first = r.json()
    assert first["recipient"] == "bob" and len(first["id"]) == 16
    r = send(n, "bob", {"body_b64": base64.b64encode(b"\x00\xffbin").decode()})
    assert r.status == 201, r
    cid = "b3:" + "ab" * 32
    assert send(n, "bob", {"cid": cid}).status == 201
    msgs = recv(n, "bob", bob)
    assert [m.get("body") for m in msgs] == ["hello bob", None, None]
    assert msgs[0]["from"] == "t:alice" and msgs[0]["deliveries"] == 1
    assert base64.b64decode(msgs[1]["body_b64"]) == b"\x00\xffbin"
    assert msgs[2]["cid"] == cid
    assert msgs[0]["lease_until_ms"] > msgs[0]["sent_ms"]
    # leased: invisible to a second receive
    assert recv(n, "bob", bob) == []
    assert n.metrics().get("mailbox_depth") == 3
    # ack: gone for good
    r = call(n, "POST", "/mb/bob/%s/ack" % msgs[0]["id"], bob)
    assert r.status == 200 and r.json() == {"id": msgs[0]["id"], "state": "acked"}, r
    assert_envelope(call(n, "POST", "/mb/bob/%s/ack" % msgs[0]["id"], bob), 404, "not_found")
    # nack: back after the backoff (100 ms)
    r = call(n, "POST", "/mb/bob/%s/nack" % msgs[1]["id"], bob)
    assert r.status == 200 and r.json()["dlq"] is False, r
    again = wait_until(lambda: recv(n, "bob", bob), 5 * SLOW, what="nacked message again")
    assert [m["id"] for m in again] == [msgs[1]["id"]] and again[0]["deliveries"] == 2
    m = settled_metrics(n, "bob", bob)   # the gauges are set after the reply
    assert m.get("mailbox_depth") == 2
    assert m.get("mailbox_sends_total", result="created") == 3
    # the sandbox profile is enough: the mailbox ran confined, never restarted
    assert not m.get("sandbox_violations_total", role="mailbox")
    assert not m.get("service_restarts_total", service="mailbox")
    assert any(r.get("msg") == "sandbox entered" and r.get("profile") == "mailbox"
               for r in n.log_records()), [r for r in n.log_records() if "sandbox" in r.get("msg", "")][:5]


def test_lease_timeout_dlq_requeue(mb_node):
    n = mb_node
    me = tok(n, "carol")
    r = send(n, "carol", {"body": "x"})
    mid = r.json()["id"]
    for i in range(3):   # max_deliveries = 3: three leases run out
        got = wait_until(lambda: recv(n, "carol", me, "lease=100ms"), 5 * SLOW, what="redelivery")
        assert got[0]["id"] == mid and got[0]["deliveries"] == i + 1
    # the third lease runs out: into the DLQ (the sweep moves it) instead
    wait_until(lambda: counter(n, "mailbox_dlq_total") == 1, 10 * SLOW,
               what="the last lease's end moving the message to the DLQ")
    assert recv(n, "carol", me, "lease=100ms") == []
    m = settled_metrics(n, "carol", me)   # counts are published after a reply
    assert m.get("mailbox_visibility_timeout_total") >= 3
    assert m.get("mailbox_dlq_total") == 1 and m.get("mailbox_dlq_depth") == 1
    r = call(n, "GET", "/mb/carol/dlq", me)
    assert r.status == 200 and [x["id"] for x in r.json()["messages"]] == [mid], r
    assert_envelope(call(n, "POST", "/mb/carol/%s/ack" % mid, me), 409, "in_dlq")
    r = call(n, "POST", "/mb/carol/dlq/%s/requeue" % mid, me)
    assert r.status == 200 and r.json()["state"] == "requeued", r
    got = recv(n, "carol", me)
    assert got[0]["id"] == mid and got[0]["deliveries"] == 1
    # nack at the last delivery moves it at once
    for _ in range(2):
        assert call(n, "POST", "/mb/carol/%s/nack" % mid, me).status == 200
        got = wait_until(lambda: recv(n, "carol", me), 5 * SLOW, what="redelivery")
    r = call(n, "POST", "/mb/carol/%s/nack" % mid, me)
    assert r.status == 200 and r.json()["dlq"] is True, r
    assert settled_metrics(n, "carol", me).get("mailbox_dlq_total") == 2


def counter(n, name):
    return n.metrics().get(name) or 0


def settled_metrics(n, me, token):
    """/metrics once every answer the mailbox gave before has published its
    counts: a DLQ listing (no change) is answered after them, in order."""
    assert call(n, "GET", "/mb/%s/dlq" % me, token).status == 200
    return n.metrics()


def test_lease_expiry_counted_without_receive(mb_node):
    """A lease that runs out is noticed by the service's sweep, not by the
    next receive: the counter moves with nobody receiving, the message is
    visible again, and the receive that follows does not count it twice.
    An ack after the lease ended still settles the message."""
    n = mb_node
    me = tok(n, "dave")
    mid = send(n, "dave", {"body": "d"}).json()["id"]
    got = recv(n, "dave", me, "lease=1s")
    assert [x["id"] for x in got] == [mid] and got[0]["deliveries"] == 1
    # no receive from here on until the counter moved
    wait_until(lambda: counter(n, "mailbox_visibility_timeout_total") == 1, 10 * SLOW,
               what="the lease's end counted without a receive")
    m = settled_metrics(n, "dave", me)
    assert m.get("mailbox_depth") == 1 and (m.get("mailbox_dlq_total") or 0) == 0
    got = recv(n, "dave", me, "lease=30s")
    assert [x["id"] for x in got] == [mid] and got[0]["deliveries"] == 2
    m = settled_metrics(n, "dave", me)
    assert m.get("mailbox_visibility_timeout_total") == 1   # not a second time
    # an ack after the lease ended (and the sweep saw it) still settles
    other = send(n, "dave", {"body": "o"}).json()["id"]
    assert [x["id"] for x in recv(n, "dave", me, "lease=1s")] == [other]
    wait_until(lambda: counter(n, "mailbox_visibility_timeout_total") == 2, 10 * SLOW,
               what="the second message's lease end")
    r = call(n, "POST", "/mb/dave/%s/ack" % other, me)
    assert r.status == 200 and r.json()["state"] == "acked", r
    assert recv(n, "dave", me) == []   # the first is still leased, the other gone
    r = call(n, "POST", "/mb/dave/%s/ack" % mid, me)
    assert r.status == 200, r
    m = settled_metrics(n, "dave", me)
    assert m.get("mailbox_visibility_timeout_total") == 2
    assert m.get("mailbox_depth") == 0


def test_last_lease_expiry_moves_to_dlq_without_receive(mb_node):
    """The last delivery's lease (max_deliveries = 3) runs out: the sweep
    moves the message to the DLQ then, counted once in each counter."""
    n = mb_node
    me = tok(n, "erin")
    mid = send(n, "erin", {"body": "e"}).json()["id"]
    for i in range(3):
        got = wait_until(lambda: recv(n, "erin", me, "lease=300ms"), 10 * SLOW,
                         what="delivery %d" % (i + 1))
        assert [x["id"] for x in got] == [mid] and got[0]["deliveries"] == i + 1
    # no receive from here on until it is a dead letter
    wait_until(lambda: counter(n, "mailbox_dlq_total") == 1, 10 * SLOW,
               what="the last lease's end moving the message to the DLQ")
    m = settled_metrics(n, "erin", me)
    assert m.get("mailbox_dlq_depth") == 1 and m.get("mailbox_depth") == 0
    assert m.get("mailbox_visibility_timeout_total") == 3   # each lease once
    r = call(n, "GET", "/mb/erin/dlq", me)
    assert r.status == 200 and [x["id"] for x in r.json()["messages"]] == [mid], r
    assert_envelope(call(n, "POST", "/mb/erin/%s/ack" % mid, me), 409, "in_dlq")
    assert recv(n, "erin", me, "lease=300ms") == []
    m = settled_metrics(n, "erin", me)
    assert m.get("mailbox_dlq_total") == 1 and m.get("mailbox_visibility_timeout_total") == 3


def test_idempotency(mb_node):
    n = mb_node
    a = tok(n, "alice")
    r1 = send(n, "dave", {"body": "once"}, token=a, key="k-1")
    r2 = send(n, "dave", {"body": "once"}, token=a, key="k-1")
    assert r1.status == 201 and r2.status == 201
    assert r2.json() == r1.json() and r2.header("Idempotent-Replayed") == "true"
    # another sender's same key is another message
    r3 = send(n, "dave", {"body": "once"}, token=tok(n, "eve"), key="k-1")
    assert r3.json()["id"] != r1.json()["id"]
    # the same key with another body is refused
    assert_envelope(send(n, "dave", {"body": "twice"}, token=a, key="k-1"), 422,
                    "idempotency_conflict")
    assert refused(n, "idempotency_conflict") == 1
    msgs = recv(n, "dave", tok(n, "dave"))
    assert len(msgs) == 2
    assert n.metrics().get("mailbox_sends_total", result="replay") == 1


def test_owner_and_refusals(mb_node):
    n = mb_node
    bob = tok(n, "bob")
    assert_envelope(call(n, "GET", "/mb/alice", bob), 403, "forbidden")
    assert_envelope(n.gw("GET", "/mb/alice"), 403, "forbidden")   # anonymous
    assert_envelope(call(n, "GET", "/mb/alice/dlq", bob), 403, "forbidden")
    assert refused(n, "not_owner") == 3
    cases = [
        (send(n, "bob", {"body": "x", "extra": 1}), 400, "bad_json"),
        (send(n, "bob", {"bodyy": "x"}), 400, "bad_json"),
        (send(n, "bob", None, raw=b"not json"), 400, "bad_json"),
        (send(n, "bob", {"cid": "b3:00"}), 400, "bad_json"),
        (send(n, "bob", {"body": "x" * 65537}), 413, "too_large"),
        (send(n, "bob", {"body_b64": base64.b64encode(b"y" * 65537).decode()}), 413,
         "too_large"),
        (send(n, "bob", None, raw=b"{" + b" " * 90000 + b"}"), 413, "too_large"),
        (send(n, "b@d", {"body": "x"}), 400, "bad_name"),
        (send(n, "bob", {"body": "x"}, key="has space"), 400, "bad_idempotency_key"),
        (call(n, "POST", "/mb/bob/xyz/ack", bob), 400, "bad_id"),
        (call(n, "POST", "/mb/bob/%016x/ack" % 0, bob), 400, "bad_id"),
        (call(n, "GET", "/mb/bob?lease=forever", bob), 400, "bad_lease"),
        (call(n, "GET", "/mb/bob?lease=13h", bob), 400, "bad_lease"),
        (call(n, "GET", "/mb/bob?max=0", bob), 400, "bad_max"),
        (call(n, "GET", "/mb/bob?max=101", bob), 400, "bad_max"),
        (call(n, "GET", "/mb/bob?color=red", bob), 400, "bad_query"),
        (call(n, "POST", "/mb/bob/x/y/z/w", bob), 404, "bad_route"),
    ]
    for r, status, reason in cases:
        assert r.status == status, (reason, r)
        assert r.json()["message"], r
    m = n.metrics()
    for reason in {c[2] for c in cases}:
        assert m.get("mailbox_refused_total", reason=reason) >= 1, reason
    assert_envelope(call(n, "POST", "/mb/bob/%016x/ack" % 12345, bob), 404, "not_found")
    mid = send(n, "bob", {"body": "never received"}).json()["id"]
    assert_envelope(call(n, "POST", "/mb/bob/%s/ack" % mid, bob), 409, "not_delivered")
    assert_envelope(call(n, "POST", "/mb/bob/dlq/%s/requeue" % mid, bob), 404, "not_found")


def test_64k_body(node_factory):
    """A body of exactly 64 KiB (text and bytes) goes through and comes back
    byte for byte; its memfd is sealed on the way."""
    n = node_factory(config={"services": ["gateway", "storage", "mailbox"]})
    big = bytes(range(256)) * 256
    assert len(big) == 65536
    assert send(n, "big", {"body_b64": base64.b64encode(big).decode()}).status == 201
    assert send(n, "big", {"body": "t" * 65536}).status == 201
    msgs = recv(n, "big", tok(n, "big"))
    assert base64.b64decode(msgs[0]["body_b64"]) == big
    assert msgs[1]["body"] == "t" * 65536


def test_quotas(mb_node):
    n = mb_node
    for i in range(20):
        assert send(n, "frank", {"body": "%d" % i}).status == 201
    r = send(n, "frank", {"body": "one more"})
    assert_envelope(r, 429, "quota_count", retryable=True)
    assert r.header("Retry-After")
    assert refused(n, "quota_count") == 1
    r = send(n, "gina", {"body": "y" * 4000})
    assert r.status == 201, r
    assert_envelope(send(n, "gina", {"body": "y" * 200}), 429, "quota_bytes", retryable=True)
    assert refused(n, "quota_bytes") == 1
    # an ack frees room
    g = tok(n, "gina")
    mid = recv(n, "gina", g)[0]["id"]
    assert call(n, "POST", "/mb/gina/%s/ack" % mid, g).status == 200
    assert send(n, "gina", {"body": "y" * 200}).status == 201


def attempt(fn, *a, **kw):
    """A request that may meet a process being killed: None for a reset."""
    try:
        return fn(*a, **kw)
    except (ConnectionError, OSError):
        return None


def service_pid(n, service):
    kids = [c for c in n.children() if c.get("service") == service]
    assert kids, n.children()
    return kids[0]["pid"]


def test_kill9_loses_nothing_acknowledged(mb_node):
    """kill -9 of the mailbox (and later of the gateway worker) during a
    stream of sends and receives: every message answered 201 is delivered
    after the restarts unless acked, no message answered acked is ever
    delivered again, and a message delivered twice is one whose ack did not
    get a 200 (the documented at-least-once window)."""
    n = mb_node
    me = tok(n, "h")
    sent, acked, ack_failed, delivered = set(), set(), set(), []
    pids = {"mailbox": service_pid(n, "mailbox"), "gateway": service_pid(n, "gateway")}
    kills = {120: "mailbox", 220: "gateway"}
    for i in range(300):
        if i in kills:
            os.kill(pids[kills[i]], signal.SIGKILL)
        r = attempt(send, n, "h", {"body": "m%d" % i}, key="s%d" % i)
        if r is not None and r.status == 201:
            sent.add(r.json()["id"])
        else:
            assert r is None or r.status in (503, 504), r
        if i % 3:
            continue
        r = attempt(call, n, "GET", "/mb/h?max=5&lease=5s", me)
        if r is None or r.status != 200:
            assert r is None or r.status in (503, 504), r
            continue
        for m in r.json()["messages"]:
            assert m["id"] not in acked, "delivered after ack: %s" % m
            if m["id"] in delivered:
                assert m["id"] in ack_failed, "delivered twice, never nacked: %s" % m
            delivered.append(m["id"])
            a = attempt(call, n, "POST", "/mb/h/%s/ack" % m["id"], me)
            if a is not None and a.status == 200:
                acked.add(m["id"])
            else:
                assert a is None or a.status in (503, 504), a
                ack_failed.add(m["id"])
    for svc, pid in pids.items():
        wait_until(lambda: service_pid(n, svc) not in (0, pid), 10 * SLOW,
                   what="%s restarted" % svc)
    wait_until(lambda: attempt(call, n, "GET", "/mb/h?max=1&lease=1ms", me) is not None,
               10 * SLOW, what="mailbox serving again")
    # everything sent comes at least once (leases of 5 s may have to end).
    # An ack whose answer was lost in a kill may have been committed: that
    # message is gone, but it was delivered (it is in `delivered`).
    left = set()
    deadline = time.monotonic() + 20 * SLOW
    while time.monotonic() < deadline and (sent - acked - ack_failed) - left:
        r = call(n, "GET", "/mb/h?max=100&lease=1ms", me)
        if r.status == 200:
            for m in r.json()["messages"]:
                assert m["id"] not in acked, "delivered after ack: %s" % m
                left.add(m["id"])
        time.sleep(0.05)
    assert sent - set(delivered) - left == set(), "acknowledged sends lost"
    assert (sent - acked - ack_failed) - left == set(), "unacked messages not redelivered"
    assert len(sent) > 200 and len(acked) > 50
    m = n.metrics()
    assert m.get("service_restarts_total", service="mailbox") >= 1


def test_whole_node_kill9_and_restart(node_factory):
    """SIGKILL of the supervisor (its children go with it): after a restart
    on the same data every acknowledged message is there, acked ones are
    not, and an Idempotency-Key still answers the first result."""
    n = node_factory(config=MB)
    me = tok(n, "k")
    ids = [send(n, "k", {"body": "p%d" % i}, key="q%d" % i).json()["id"] for i in range(10)]
    got = recv(n, "k", me, "max=4&lease=1ms")
    for x in got[:2]:
        assert call(n, "POST", "/mb/k/%s/ack" % x["id"], me).status == 200
    n.stop(signal.SIGKILL)
    wait_until(lambda: not n.tagged_pids(), 10 * SLOW, what="children gone")
    n.start()
    r = send(n, "k", {"body": "p3"}, key="q3")
    assert r.status == 201 and r.json()["id"] == ids[3] and r.header("Idempotent-Replayed")
    back = recv(n, "k", tok(n, "k"), "max=100")
    assert sorted(x["id"] for x in back) == sorted(set(ids) - {x["id"] for x in got[:2]})
    # the deliveries before the crash were kept: 2 for the leased ones
    assert {x["id"]: x["deliveries"] for x in back}[got[2]["id"]] == 2
    # a new message never reuses an id
    assert send(n, "k", {"body": "new"}).json()["id"] not in ids


def probe_mailbox(node_factory, tmp_dir, what, config=None):
    from conftest import deep_merge
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes, exist_ok=True)
    with open(os.path.join(probes, "mailbox"), "w") as f:
        f.write(what)
    n = node_factory(config=deep_merge(MB, config or {}), env={"MN_TEST_SANDBOX_PROBE": probes})
    assert not os.path.exists(os.path.join(probes, "mailbox"))   # it probed, once
    return n


def assert_mailbox_serves(n):
    assert send(n, "z", {"body": "still"}).status == 201
    assert recv(n, "z", tok(n, "z"))[0]["body"] == "still"


def test_mailbox_sandbox_exec_kills_and_restarts(node_factory, tmp_dir):
    n = probe_mailbox(node_factory, tmp_dir, "exec")
    wait_until(lambda: n.metrics().get("service_restarts_total", service="mailbox"), 10 * SLOW,
               what="the mailbox restarted")
    assert n.metrics().get("sandbox_violations_total", role="mailbox") == 1
    wait_until(lambda: getattr(attempt(send, n, "w", {"body": "x"}), "status", 0) == 201,
               10 * SLOW, what="serving again")
    assert_mailbox_serves(n)


@pytest.mark.parametrize("what,config", [("open", None), ("write", None),
                                         ("write", {"amnesia": True})])
def test_mailbox_sandbox_refuses_files(node_factory, tmp_dir, what, config):
    from test_sandbox import landlock_enabled
    if not landlock_enabled():
        pytest.skip("kernel without Landlock")
    n = probe_mailbox(node_factory, tmp_dir, what, config)

    def refused():
        return [r.get("error") for r in n.log_records() if r.get("service") == "mailbox"
                and r.get("msg") == "sandbox probe refused"]
    wait_until(lambda: refused(), 10 * SLOW, what="the mailbox probe's record")
    assert refused() == ["Permission denied"]
    m = n.metrics()
    assert m.get("sandbox_violations_total", role="mailbox") is None
    assert m.get("service_restarts_total", service="mailbox") is None
    assert_mailbox_serves(n)


def test_amnesia_mode(node_factory):
    n = node_factory(config=dict(MB, amnesia=True))
    assert send(n, "ivy", {"body": "ram"}).status == 201
    msgs = recv(n, "ivy", tok(n, "ivy"))
    assert msgs[0]["body"] == "ram"
    assert not os.path.exists(os.path.join(n.data_dir, "mailbox"))


def test_no_mailbox_service(node_factory):
    n = node_factory()
    assert_envelope(n.gw("GET", "/mb/x"), 404, "not_found")
