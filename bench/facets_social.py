#!/usr/bin/python3
"""bench/facets_social.py — the Graph and Feed drills of bench/facets.sh.

  setup  SOCK AUTHOR N            N followers f000000.. of AUTHOR, over the
                                  social service's socket (internal FOLLOW
                                  verbs, pipelined: a token per follower over
                                  HTTP would cost minutes at 100k)
  feed   GW SOCK AUTHOR N RUNS CID TOKEN_AUTHOR TOKEN_LAST
                                  RUNS posts by AUTHOR (POST /feed over HTTP);
                                  each timed from just before the POST until
                                  the last follower's feed (GET /feed over
                                  HTTP, the last follower's token) shows it.
                                  The fanout writes followers in name order,
                                  each commit atomic, so when the last one
                                  has it every one has. After the runs every
                                  follower's feed is checked over the socket:
                                  each post exactly once.
  paths  GW USER PAGES LIMIT OUT  the paths of PAGES follower pages (with
                                  their cursors) for wrk (facets_graph.lua)

Prints `DRILL <name> <p50_ms> <p95_ms> <p99_ms> <n>` lines (and progress on
stderr). Exits non-zero only when the node does not answer as it should."""
import http.client
import json
import socket
import struct
import sys
import time

APP = 0x0800
HDR = struct.Struct(">IHHHH16sHQ")
FOLLOW, FEED = 1, 5


def s16(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def follower(i):
    return "f%06d" % i


class Sock:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(60)
        self.s.connect(path)
        self.corr = 0

    def calls(self, verb, payloads, window=200):
        out, sent, pending, first = {}, 0, 0, self.corr + 1
        while len(out) < len(payloads):
            while sent < len(payloads) and pending < window:
                self.corr += 1
                p = payloads[sent]
                self.s.send(HDR.pack(HDR.size + len(p), 1, 1, verb, APP, b"\0" * 16, 0,
                                     self.corr) + p)
                sent += 1
                pending += 1
            d = self.s.recv(1 << 16)
            h = HDR.unpack(d[:HDR.size])
            out[h[7]] = (h[3], d[HDR.size + h[6]:])
            pending -= 1
        return [out[first + i] for i in range(len(payloads))]


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def drill(name, ms):
    print("DRILL %s %.3f %.3f %.3f %d" % (name, pct(ms, 50), pct(ms, 95), pct(ms, 99), len(ms)))
    sys.stdout.flush()


def setup(sock, author, n):
    s = Sock(sock)
    t0 = time.monotonic()
    step = 10000
    for a in range(0, n, step):
        users = [follower(i) for i in range(a, min(n, a + step))]
        res = s.calls(FOLLOW, [s16(u) + s16(author) for u in users])
        bad = [r for r in res if r[0] != 200]
        if bad:
            sys.exit("setup: FOLLOW refused: %r" % (bad[:3],))
    print("setup: %d followers of %s in %.1f s" % (n, author, time.monotonic() - t0),
          file=sys.stderr)


def http_conn(gw):
    host, port = gw.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


def req(c, method, path, token, body=None):
    h = {"Authorization": "Bearer " + token}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read()


def check_feeds(sock, n, posts):
    """Every follower holds each post exactly once."""
    s = Sock(sock)
    want = sorted(posts, reverse=True)
    for a in range(0, n, 10000):
        users = [follower(i) for i in range(a, min(n, a + 10000))]
        res = s.calls(FEED, [s16(u) + s16("") + struct.pack(">H", 256) for u in users])
        for u, (st, p) in zip(users, res):
            (cnt,) = struct.unpack(">H", p[:2])
            off, got = 2, []
            for _ in range(cnt):
                post = struct.unpack(">Q", p[off:off + 8])[0]
                (alen,) = struct.unpack(">H", p[off + 16:off + 18])
                off += 18 + alen + 32
                got.append(post)
            got = [g for g in got if g in posts]
            if st != 200 or got != want:
                sys.exit("feed check: %s has %r, want %r" % (u, got, want))


def feed(gw, sock, author, n, runs, cid, tok_author, tok_last):
    c_post, c_poll = http_conn(gw), http_conn(gw)
    ms, posts = [], []
    body = json.dumps({"cid": cid})
    for i in range(runs):
        t0 = time.monotonic()
        st, b = req(c_post, "POST", "/feed", tok_author, body)
        if st != 202:
            sys.exit("feed: POST /feed answered %d %r" % (st, b[:200]))
        post = json.loads(b)["post"]
        while True:
            st, b = req(c_poll, "GET", "/feed?limit=1", tok_last)
            if st != 200:
                sys.exit("feed: GET /feed answered %d %r" % (st, b[:200]))
            items = json.loads(b)["items"]
            if items and items[0]["post"] >= post:
                break
            time.sleep(0.0005)
        ms.append((time.monotonic() - t0) * 1000.0)
        posts.append(post)
        time.sleep(0.05)
    check_feeds(sock, n, set(posts))
    print("feed: %d followers x %d posts, every feed checked: each post once" % (n, runs),
          file=sys.stderr)
    drill("feed-fanout-%dk" % (n // 1000), ms)


def paths(gw, user, pages, limit, out):
    c = http_conn(gw)
    res, cursor = [], None
    while len(res) < pages:
        p = "/g/%s/followers?limit=%d" % (user, limit) + ("&cursor=" + cursor if cursor else "")
        c.request("GET", p)
        r = c.getresponse()
        b = r.read()
        if r.status != 200:
            sys.exit("paths: %s answered %d %r" % (p, r.status, b[:200]))
        res.append(p)
        cursor = json.loads(b)["next_cursor"]
        if not cursor:
            cursor = None
    with open(out, "w") as f:
        f.write("\n".join(res) + "\n")


def main(argv):
    cmd = argv[1]
    if cmd == "setup":
        setup(argv[2], argv[3], int(argv[4]))
    elif cmd == "feed":
        feed(argv[2], argv[3], argv[4], int(argv[5]), int(argv[6]), argv[7], argv[8], argv[9])
    elif cmd == "paths":
        paths(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
