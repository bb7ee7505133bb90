"""Graph and feed (issue 17): the social service and the /g and /feed facet
routes on the gateway.

Every route, every refusal (with its counter), cursors (paging, foreign and
forged ones), fanout to every follower exactly once, and crash recovery: the
social process killed with SIGKILL mid-fanout finishes the fanout after its
restart, and every follower then holds the post exactly once. Large
follower sets are made over the service's own socket (the internal OAP/1
verbs, docs/internal.md "Social"), which is what a token per follower would
cost minutes to do over HTTP; everything a client sees goes over HTTP."""
import json
import os
import signal
import socket
import struct

import pytest

from test_sandbox import landlock_enabled
from conftest import (OAP_HDR, OAP_REQ, SLOW, assert_envelope, mint_token, oap_frame,
                      service_children, stored, wait_until)

SOCIAL = {"services": ["gateway", "storage", "social"]}
APP = 0x0800
FOLLOW, UNFOLLOW, LIST, POST, FEED = 1, 2, 3, 4, 5


# ---------------------------------------------------------------- helpers

def tok(n, tenant):
    return mint_token(n.wall_dir, "--tenant", tenant, "--ttl", "1h")


def hdr(token=None):
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    return h


def gw(n, method, path, token=None, body=None, headers=None):
    h = hdr(token)
    h.update(headers or {})
    return n.gw(method, path, body=body, headers=h)


def rejected(n, reason):
    return n.metrics().get("social_rejected_total", reason=reason) or 0


def s16(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


class Sock:
    """The social service's socket: pipelined internal requests."""

    def __init__(self, n):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(30)
        self.s.connect(os.path.join(n.data_dir, "run", "social.sock"))
        self.corr = 0

    def close(self):
        self.s.close()

    def calls(self, verb, payloads, window=128):
        """Send every payload (at most window unanswered); [(status, body)] in order."""
        out, sent, pending = {}, 0, 0
        first = self.corr + 1
        while len(out) < len(payloads):
            while sent < len(payloads) and pending < window:
                self.corr += 1
                self.s.send(oap_frame(OAP_REQ, code=verb, app=APP, corr=self.corr,
                                      payload=payloads[sent]))
                sent += 1
                pending += 1
            data = self.s.recv(1 << 16)
            h = OAP_HDR.unpack(data[:OAP_HDR.size])
            assert h[4] == APP, h
            out[h[7]] = (h[3], data[OAP_HDR.size + h[6]:])
            pending -= 1
        return [out[first + i] for i in range(len(payloads))]

    def follow_all(self, users, other):
        res = self.calls(FOLLOW, [s16(u) + s16(other) for u in users])
        assert all(st == 200 for st, _ in res), res[:3]

    def feeds(self, users, limit=10):
        """{user: [post ids]} of each user's first feed page."""
        res = self.calls(FEED, [s16(u) + s16("") + struct.pack(">H", limit) for u in users])
        out = {}
        for u, (st, p) in zip(users, res):
            assert st == 200, (u, st, p)
            (cnt,) = struct.unpack(">H", p[:2])
            off, posts = 2, []
            for _ in range(cnt):
                post, _ts = struct.unpack(">QQ", p[off:off + 16])
                (alen,) = struct.unpack(">H", p[off + 16:off + 18])
                off += 18 + alen + 32
                posts.append(post)
            out[u] = posts
        return out


@pytest.fixture
def social_node(node_factory):
    return node_factory(config=SOCIAL)


def social_pid(n):
    kids = service_children(n, "social")
    assert len(kids) == 1, n.children()
    return kids[0]["pid"]


# ---------------------------------------------------------------- graph

def test_follow_unfollow_lists(social_node):
    n = social_node
    bob, carol = tok(n, "bob"), tok(n, "carol")
    r = gw(n, "PUT", "/g/bob/follows/alice", bob)
    assert r.status == 201, r
    assert r.json() == {"user": "bob", "follows": "alice", "created": True}
    r = gw(n, "PUT", "/g/bob/follows/alice", bob)          # again: nothing changes
    assert r.status == 200 and r.json()["created"] is False, r
    assert gw(n, "PUT", "/g/carol/follows/alice", carol).status == 201
    assert gw(n, "PUT", "/g/bob/follows/carol", bob).status == 201
    r = gw(n, "GET", "/g/alice/followers")
    assert r.status == 200, r
    assert r.json() == {"user": "alice", "followers": ["bob", "carol"], "next_cursor": None}
    r = gw(n, "GET", "/g/bob/following")
    assert r.json() == {"user": "bob", "following": ["alice", "carol"], "next_cursor": None}
    r = gw(n, "DELETE", "/g/bob/follows/alice", bob)
    assert r.status == 204, r
    assert_envelope(gw(n, "DELETE", "/g/bob/follows/alice", bob), 404, "not_found")
    assert gw(n, "GET", "/g/alice/followers").json()["followers"] == ["carol"]
    assert gw(n, "GET", "/g/bob/following").json()["following"] == ["carol"]
    assert gw(n, "GET", "/g/nobody/followers").json()["followers"] == []
    m = n.metrics()
    assert m.get("facet_latency_seconds_count", facet="graph") >= 10
    assert m.get("http_requests_total", service="gateway", route="/g/{user}/...",
                 code="201") == 3


def test_graph_refusals(node_factory):
    n = node_factory(config=dict(SOCIAL, social={"max_following": 2}))
    bob = tok(n, "bob")
    before = {k: rejected(n, k) for k in ("not_owner", "self_follow", "too_large",
                                           "bad_request", "too_many_follows")}
    # another tenant's edges, or no tenant at all: 403
    assert_envelope(gw(n, "PUT", "/g/alice/follows/bob", bob), 403, "not_owner")
    assert_envelope(gw(n, "DELETE", "/g/alice/follows/bob", bob), 403, "not_owner")
    assert_envelope(gw(n, "PUT", "/g/bob/follows/alice"), 403, "not_owner")
    notenant = mint_token(n.wall_dir, "--ttl", "1h")
    assert_envelope(gw(n, "PUT", "/g/bob/follows/alice", notenant), 403, "not_owner")
    # following yourself
    assert_envelope(gw(n, "PUT", "/g/bob/follows/bob", bob), 400, "self_follow")
    # bad users, bodies, queries, routes, methods
    assert_envelope(gw(n, "PUT", "/g/bob/follows/a%20b", bob), 400, "bad_user")
    assert_envelope(gw(n, "PUT", "/g/" + "x" * 65 + "/follows/a", bob), 400, "bad_user")
    assert_envelope(gw(n, "PUT", "/g/bob/follows/alice", bob, body=b"{}"), 413,
                    "payload_too_large")
    assert_envelope(gw(n, "PUT", "/g/bob/follows/alice?x=1", bob), 400, "bad_request")
    assert_envelope(gw(n, "GET", "/g/bob/friends"), 404, "not_found")
    assert_envelope(gw(n, "POST", "/g/bob/followers"), 405, "method_not_allowed")
    assert_envelope(gw(n, "GET", "/g/bob/follows/alice"), 405, "method_not_allowed")
    # too many follows
    assert gw(n, "PUT", "/g/bob/follows/a1", bob).status == 201
    assert gw(n, "PUT", "/g/bob/follows/a2", bob).status == 201
    r = gw(n, "PUT", "/g/bob/follows/a3", bob)
    assert_envelope(r, 409, "too_many_follows")
    assert "max_following" in r.json()["message"]
    assert gw(n, "PUT", "/g/bob/follows/a1", bob).status == 200   # held already: fine
    assert gw(n, "GET", "/g/bob/following").json()["following"] == ["a1", "a2"]
    after = {k: rejected(n, k) for k in before}
    assert after["not_owner"] - before["not_owner"] == 4
    assert after["self_follow"] - before["self_follow"] == 1
    assert after["too_large"] - before["too_large"] == 1
    assert after["bad_request"] - before["bad_request"] == 3   # 2 bad users, 1 query
    assert after["too_many_follows"] - before["too_many_follows"] == 1


def test_pages_and_cursors(node_factory):
    n = node_factory(config=dict(SOCIAL, social={"page_max": 10}))
    users = ["f%02d" % i for i in range(25)]
    s = Sock(n)
    try:
        s.follow_all(users, "star")
        s.follow_all(["star"], "f00")
    finally:
        s.close()
    got, cursor, pages = [], None, 0
    while True:
        q = "limit=10" + ("&cursor=" + cursor if cursor else "")
        r = gw(n, "GET", "/g/star/followers?" + q)
        assert r.status == 200, r
        got += r.json()["followers"]
        cursor = r.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert got == users and pages == 3
    # the default page is 50, capped by social.page_max (10 here)
    r = gw(n, "GET", "/g/star/followers")
    assert len(r.json()["followers"]) == 10
    c = r.json()["next_cursor"]
    assert gw(n, "GET", "/g/star/followers?cursor=" + c + "&limit=3").json()["followers"] == \
        ["f10", "f11", "f12"]
    before = {k: rejected(n, k) for k in ("bad_cursor", "bad_limit", "bad_request")}
    # a cursor of another list, of another user, edited, or made up: 400 bad_cursor
    assert_envelope(gw(n, "GET", "/g/star/following?cursor=" + c), 400, "bad_cursor")
    assert_envelope(gw(n, "GET", "/g/f00/followers?cursor=" + c), 400, "bad_cursor")
    edited = c[:-2] + ("AA" if c[-2:] != "AA" else "BB")
    assert_envelope(gw(n, "GET", "/g/star/followers?cursor=" + edited), 400, "bad_cursor")
    assert_envelope(gw(n, "GET", "/g/star/followers?cursor=ZjAw"), 400, "bad_cursor")
    assert_envelope(gw(n, "GET", "/g/star/followers?cursor=a%2Bb"), 400, "bad_cursor")
    assert_envelope(gw(n, "GET", "/g/star/followers?cursor=" + "A" * 129), 400, "bad_cursor")
    assert_envelope(gw(n, "GET", "/g/star/followers?cursor="), 400, "bad_cursor")
    # limits out of range, unknown or repeated parameters
    for q in ("limit=0", "limit=11", "limit=abc", "limit=-1", "limit=", "limit=1000000"):
        r = gw(n, "GET", "/g/star/followers?" + q)
        assert_envelope(r, 400, "bad_limit")
        assert "1..10" in r.json()["message"]
    for q in ("order=asc", "limit=2&limit=3", "cursor"):
        assert_envelope(gw(n, "GET", "/g/star/followers?" + q), 400, "bad_request")
    after = {k: rejected(n, k) for k in before}
    assert after["bad_cursor"] - before["bad_cursor"] == 7
    assert after["bad_limit"] - before["bad_limit"] == 6
    assert after["bad_request"] - before["bad_request"] == 3


# ---------------------------------------------------------------- feed

def test_post_fans_out_once_newest_first(social_node):
    n = social_node
    alice, f1 = tok(n, "alice"), tok(n, "u0001")
    users = ["u%04d" % i for i in range(1, 301)]
    s = Sock(n)
    try:
        s.follow_all(users, "alice")
        a = stored(n, b"alice's first post\n")
        b = stored(n, b"alice's second post\n")
        r = gw(n, "POST", "/feed", alice, body=json.dumps({"cid": a}).encode())
        assert r.status == 202, r
        p1 = r.json()
        assert p1["author"] == "alice" and p1["cid"] == a and p1["post"] >= 1
        r = gw(n, "POST", "/feed", alice, body=json.dumps({"cid": b}).encode())
        p2 = r.json()
        assert r.status == 202 and p2["post"] > p1["post"], r
        wait_until(lambda: (n.metrics().get("social_fanout_jobs") or 0) == 0, 30 * SLOW,
                   what="fanout done")
        feeds = s.feeds(users + ["alice", "stranger"])
    finally:
        s.close()
    for u in users:   # every follower, each post exactly once, newest first
        assert feeds[u] == [p2["post"], p1["post"]], (u, feeds[u])
    assert feeds["alice"] == [] and feeds["stranger"] == []
    m = n.metrics()
    assert m.get("social_fanout_deliveries_total") == 600
    assert m.get("social_posts_total") == 2
    assert m.get("social_fanout_seconds_count") == 2
    # the tenant's own feed over HTTP, a page at a time
    r = gw(n, "GET", "/feed?limit=1", f1)
    assert r.status == 200, r
    j = r.json()
    assert j["user"] == "u0001" and len(j["items"]) == 1
    assert j["items"][0] == {"post": p2["post"], "author": "alice", "cid": b,
                             "ts_ms": p2["ts_ms"]}
    r = gw(n, "GET", "/feed?limit=1&cursor=" + j["next_cursor"], f1)
    assert [i["post"] for i in r.json()["items"]] == [p1["post"]]
    assert r.json()["next_cursor"] is None
    # a feed cursor is the user's own: another tenant's is foreign
    other = tok(n, "u0002")
    assert_envelope(gw(n, "GET", "/feed?cursor=" + j["next_cursor"], other), 400, "bad_cursor")
    assert m.get("facet_latency_seconds_count", facet="feed") >= 2


def test_feed_refusals(social_node):
    n = social_node
    alice = tok(n, "alice")
    cid = stored(n, b"a stored object\n")
    before = {k: rejected(n, k) for k in ("bad_body", "too_large", "not_stored", "not_owner",
                                           "bad_request")}

    def post(body, token=alice, **kw):
        return gw(n, "POST", "/feed", token, body=body, **kw)

    assert_envelope(post(json.dumps({"cid": cid, "extra": 1}).encode()), 400, "bad_request")
    r = post(json.dumps({"cid": cid, "text": "hi"}).encode())
    assert "unknown field" in r.json()["message"]
    assert_envelope(post(b"not json"), 400, "bad_request")
    assert_envelope(post(b"{}"), 400, "bad_request")
    assert_envelope(post(json.dumps({"cid": "b3:XYZ"}).encode()), 400, "bad_request")
    assert_envelope(post(json.dumps({"cid": cid, "cid2": cid}).encode()), 400, "bad_request")
    assert_envelope(post(b'{"cid":"' + b"x" * 2000 + b'"}'), 413, "payload_too_large")
    unknown = "b3:" + "ab" * 32
    r = post(json.dumps({"cid": unknown}).encode())
    assert_envelope(r, 422, "not_stored")
    assert_envelope(post(json.dumps({"cid": cid}).encode(), token=None), 403, "not_owner")
    assert_envelope(gw(n, "GET", "/feed"), 403, "not_owner")
    assert_envelope(post(json.dumps({"cid": cid}).encode(),
                         headers={"Content-Encoding": "gzip"}), 415)
    assert_envelope(gw(n, "POST", "/feed?x=1", alice, body=b"{}"), 400, "bad_request")
    assert_envelope(gw(n, "GET", "/feed?limit=500", alice), 400, "bad_limit")
    assert_envelope(gw(n, "DELETE", "/feed", alice), 405)
    after = {k: rejected(n, k) for k in before}
    assert after["bad_body"] - before["bad_body"] == 6
    assert after["too_large"] - before["too_large"] == 1
    assert after["not_stored"] - before["not_stored"] == 1
    assert after["not_owner"] - before["not_owner"] == 2
    assert after["bad_request"] - before["bad_request"] == 2   # the gzip body, the query
    assert n.metrics().get("social_posts_total") == 0


def test_no_social_service(node_factory):
    n = node_factory(config={"services": ["gateway", "storage"]})
    r = gw(n, "GET", "/g/alice/followers")
    assert_envelope(r, 404, "not_found")
    assert "social" in r.json()["message"]


# ---------------------------------------------------------------- crash recovery

def test_kill9_mid_fanout_finishes_once(node_factory):
    """4000 followers, fanout 1 feed per commit (4000 commits, a window
    wide enough to be caught by polling on a fast machine too): SIGKILL
    the social process while the post is part way out. After the restart
    the job resumes from its stored cursor; every follower holds the post
    exactly once."""
    batch = 1
    n = node_factory(config=dict(SOCIAL, social={"fanout_batch": batch}))
    alice = tok(n, "alice")
    users = ["k%05d" % i for i in range(4000)]
    s = Sock(n)
    try:
        s.follow_all(users, "alice")
    finally:
        s.close()
    cid = stored(n, b"the post that survives a crash\n")
    pid = social_pid(n)
    r = gw(n, "POST", "/feed", alice, body=json.dumps({"cid": cid}).encode())
    assert r.status == 202, r
    post = r.json()["post"]
    wait_until(lambda: (n.metrics().get("social_fanout_deliveries_total") or 0) > 0, 30 * SLOW,
               interval=0.005, what="fanout started")
    os.kill(pid, signal.SIGKILL)
    at_kill = n.metrics().get("social_fanout_deliveries_total")
    assert at_kill < len(users), "the fanout ended before the kill: nothing was tested"
    wait_until(lambda: social_pid(n) not in (0, pid), 30 * SLOW, what="social restarted")
    wait_until(lambda: (n.metrics().get("social_fanout_jobs") or 0) == 0 and
               (n.metrics().get("social_fanout_resumed_total") or 0) >= 1, 60 * SLOW,
               what="fanout resumed and done")
    s = Sock(n)
    try:
        feeds = s.feeds(users)
    finally:
        s.close()
    missing = [u for u in users if feeds[u] != [post]]
    assert not missing, (len(missing), missing[:5], [feeds[u] for u in missing[:5]])
    # the counter follows the commits the loop saw: a batch committed just
    # before the kill may go uncounted (one batch), a batch redone counts again
    assert n.metrics().get("social_fanout_deliveries_total") >= len(users) - batch


# ---------------------------------------------------------------- amnesia

def test_amnesia_keeps_graph_and_feeds_in_memory_only(node_factory):
    n = node_factory(config=dict(SOCIAL, amnesia=True))
    alice, bob, carol = tok(n, "alice"), tok(n, "bob"), tok(n, "carol")
    assert gw(n, "PUT", "/g/bob/follows/alice", bob).status == 201
    assert gw(n, "PUT", "/g/carol/follows/alice", carol).status == 201
    cid = stored(n, b"said in amnesia\n")
    r = gw(n, "POST", "/feed", alice, body=json.dumps({"cid": cid}).encode())
    assert r.status == 202, r
    post = r.json()["post"]
    for t in (bob, carol):
        wait_until(lambda: [i["post"] for i in gw(n, "GET", "/feed", t).json()["items"]] ==
                   [post], 10 * SLOW, what="the post in the feed")
    r = gw(n, "GET", "/g/alice/followers?limit=1")
    assert r.json()["followers"] == ["bob"]
    assert gw(n, "GET", "/g/alice/followers?cursor=" + r.json()["next_cursor"]).json() == \
        {"user": "alice", "followers": ["carol"], "next_cursor": None}
    assert not os.path.exists(os.path.join(n.data_dir, "social"))
    n.stop()
    n.start()
    assert gw(n, "GET", "/g/alice/followers").json()["followers"] == []
    assert gw(n, "GET", "/feed", bob).json()["items"] == []


# ---------------------------------------------------------------- sandbox

@pytest.mark.parametrize("what", ["exec", "write"])
def test_sandbox_confines_social(node_factory, tmp_dir, what):
    """Profile `social` (docs/operations.md "Sandboxes"): exec kills it
    (SIGSYS, counted, restarted); a file written outside <data_dir>/social
    is refused by Landlock (where the kernel has it)."""
    if what == "write" and not landlock_enabled():
        pytest.skip("kernel without Landlock")
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes, exist_ok=True)
    with open(os.path.join(probes, "social"), "w") as f:
        f.write(what)
    n = node_factory(config=SOCIAL, env={"MN_TEST_SANDBOX_PROBE": probes})
    wait_until(lambda: not os.path.exists(os.path.join(probes, "social")), 10 * SLOW, what="probe")
    bob = tok(n, "bob")
    wait_until(lambda: gw(n, "PUT", "/g/bob/follows/alice", bob).status in (200, 201), 20 * SLOW,
               what="social serving after the probe")
    m = n.metrics()
    refused = [r for r in n.log_records() if r.get("msg") == "sandbox probe refused"]
    if what == "exec":   # seccomp kills it
        assert m.get("sandbox_violations_total", role="social") == 1
        assert m.get("service_restarts_total", service="social") == 1
    else:                # Landlock refuses it
        assert [r.get("error") for r in refused] == ["Permission denied"]
        assert m.get("sandbox_violations_total", role="social") is None
        assert m.get("sandbox_landlock_active", role="social") == 1
    assert not os.path.exists("/tmp/macronode-sandbox-probe")


def test_posts_fanning_out_are_bounded(node_factory):
    """social.max_jobs: one post fanning out (2000 followers, one feed per
    commit) and the next POST is 503 busy, counted as the feed facet's."""
    n = node_factory(config=dict(SOCIAL, social={"max_jobs": 1, "fanout_batch": 1}))
    alice = tok(n, "alice")
    s = Sock(n)
    try:
        s.follow_all(["b%05d" % i for i in range(2000)], "alice")
    finally:
        s.close()
    cid = stored(n, b"one at a time\n")
    body = json.dumps({"cid": cid}).encode()
    assert gw(n, "POST", "/feed", alice, body=body).status == 202
    r = gw(n, "POST", "/feed", alice, body=body)
    assert_envelope(r, 503, "busy", retryable=True)
    assert r.header("Retry-After") == "1"
    m = n.metrics()
    assert m.get("facet_busy_total", facet="feed") == 1
    assert m.get("social_rejected_total", reason="busy") == 1
    wait_until(lambda: (n.metrics().get("social_fanout_jobs") or 0) == 0, 60 * SLOW, what="fanout done")
    assert gw(n, "POST", "/feed", alice, body=body).status == 202


def test_stuck_service_is_a_deadline_timeout(social_node):
    """The social process stopped (SIGSTOP): the gateway's call passes its
    deadline (2 s), the client gets 504, counted as the facet's deadline
    timeout; once it runs again the route answers."""
    n = social_node
    pid = social_pid(n)
    before = n.metrics().get("facet_deadline_timeouts_total", facet="graph") or 0
    os.kill(pid, signal.SIGSTOP)
    try:
        r = gw(n, "GET", "/g/alice/followers")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert_envelope(r, 504, "timeout", retryable=True)
    assert n.metrics().get("facet_deadline_timeouts_total", facet="graph") == before + 1
    wait_until(lambda: gw(n, "GET", "/g/alice/followers").status == 200, 10 * SLOW,
               what="graph answering again")


def test_facet_routes_are_shed_first(node_factory):
    """limits.max_inflight 4: with 3 uploads in flight the graph and feed
    routes get 503 (facets shed at 3/4 of the cap) while an object route
    still answers (core routes shed only at the cap itself)."""
    from conftest import raw_connect
    n = node_factory(config=dict(SOCIAL, limits={"max_inflight": 4}))
    cid = stored(n, b"still served while facets are shed\n")
    bob = tok(n, "bob")
    held = []
    try:
        for _ in range(3):   # uploads that have sent half their body
            s = raw_connect(n.gateway_port)
            s.sendall(b"POST /o HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                      b"Content-Length: 1000\r\n\r\n" + b"x" * 10)
            held.append(s)
        wait_until(lambda: gw(n, "GET", "/g/alice/followers").status == 503, 10 * SLOW,
                   what="facet shed")
        r = gw(n, "PUT", "/g/bob/follows/alice", bob)
        assert_envelope(r, 503, retryable=True)
        assert r.header("Retry-After")
        assert gw(n, "GET", "/feed", bob).status == 503
        assert n.gw("GET", "/o/" + cid).status == 200     # core: admitted
    finally:
        for s in held:
            s.close()
    wait_until(lambda: gw(n, "PUT", "/g/bob/follows/alice", bob).status == 201, 10 * SLOW,
               what="facets back")
