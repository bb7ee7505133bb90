#!/usr/bin/python3
"""make drills: the seed's red-team drills, end to end against a fresh node,
one line per drill with its verdict (PASS / FAIL / SKIP and why).

  oap_2mib_frame     a 2 MiB OAP/1 frame header: 413 on its stream, the
                     connection closed, omnigate's memory does not grow
  decompression_bomb 9 MiB of zeros gzip-compressed to a few KiB: 413, counted
                     as rejected_total{reason="decompress"}, nothing stored
  quota_storm        one tenant far over its rate: 429 with Retry-After, while
                     the admin plane answers every request
  inflight_flood     the in-flight cap reached: /readyz says degraded (still
                     ready), the admin plane answers
  policy_outage      the bundle withdrawn: every public request denied,
                     /readyz 503 naming the policy; restored: ready again
  uds_peercred       storage.sock is 0600 in a 0700 directory; another uid
                     cannot connect, and one let through the file modes is
                     refused by SO_PEERCRED
  facet_slo          not here: bench/facets.sh runs the facets' SLO drills,
                     under storms too (drill storm)

Exit 1 when any drill fails. Needs root for uds_peercred (else SKIP).
Env: MACRONODE_BIN.
"""
import gzip
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Node, log  # noqa: E402

MIB = 1 << 20
OAP_HDR = struct.Struct(">IHHHH16sHQ")
OAP_REQ, OAP_RESP, OAP_START, OAP_END = 0x01, 0x02, 0x08, 0x10
OAP_APP_HELLO, OAP_APP_OBJECTS, OAP_PUT = 0, 1, 4


def oap_frame(flags, code=0, app=OAP_APP_OBJECTS, corr=0, payload=b"", length=None):
    n = OAP_HDR.size + len(payload) if length is None else length
    return OAP_HDR.pack(n, 1, flags, code, app, b"\0" * 16, 0, corr) + payload


class Oap:
    def __init__(self, node):
        ctx = ssl.create_default_context(cafile=node.cert)
        raw = socket.create_connection(("127.0.0.1", node.oport), timeout=5)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""

    def frame(self):
        """(code, corr) of the next frame, or None at EOF."""
        while True:
            if len(self.buf) >= OAP_HDR.size:
                n, _, _, code, _, _, _, corr = OAP_HDR.unpack(self.buf[:OAP_HDR.size])
                if len(self.buf) >= n:
                    self.buf = self.buf[n:]
                    return code, corr
            try:
                d = self.s.recv(65536)
            except (OSError, ssl.SSLError):
                return None
            if not d:
                return None
            self.buf += d

    def hello(self):
        self.s.sendall(oap_frame(OAP_REQ, app=OAP_APP_HELLO, payload=b'{"ua":"drills"}'))
        return self.frame()

    def close(self):
        self.s.close()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def child_pid(node, service):
    return next(c["pid"] for c in node.children() if c["service"] == service and c["pid"] > 0)


def metric_sum(node, name, label):
    _, body = node.admin("GET", "/metrics")
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def https(node, method, path, body=None, headers=None):
    ctx = ssl.create_default_context(cafile=node.cert)
    c = http.client.HTTPSConnection("127.0.0.1", node.gport, timeout=10, context=ctx)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def drill_oap_2mib_frame(node):
    for _ in range(3):                     # first-connection allocations are not measured
        c = Oap(node)
        c.hello()
        c.close()
    pid = child_pid(node, "omnigate")
    before = rss_kib(pid)
    for i in range(10):
        c = Oap(node)
        c.hello()
        hdr = oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=100 + i, length=2 * MIB)
        c.s.sendall(hdr + b"\0" * (64 * 1024 - len(hdr)))
        got = c.frame()
        eof = c.frame() is None
        c.close()
        if got != (413, 100 + i) or not eof:
            return False, "frame %d: got %r, closed %s" % (i, got, eof)
    grown = rss_kib(pid) - before
    return grown < 1024, "10 frames: 413 and closed; omnigate RSS grew %d KiB" % grown


def drill_decompression_bomb(node):
    before = metric_sum(node, "rejected_total", 'reason="decompress"')
    bomb = gzip.compress(b"\0" * (9 * MIB), 9)
    st, _, body = https(node, "POST", "/o", bomb, {"Authorization": "Bearer " + node.token,
                                                   "Content-Encoding": "gzip"})
    after = metric_sum(node, "rejected_total", 'reason="decompress"')
    ok = st == 413 and after == before + 1
    return ok, "%d-byte gzip of 9 MiB: status %d, rejected_total{decompress} +%d" % (
        len(bomb), st, after - before)


def drill_quota_storm(node):
    codes, retry, admin_bad = {}, [], [0]
    stop = threading.Event()

    def admin_poll():
        while not stop.is_set():
            try:
                st, _ = node.admin("GET", "/healthz")
            except OSError:
                st = 0
            if st != 200:
                admin_bad[0] += 1
            stop.wait(0.02)

    t = threading.Thread(target=admin_poll, daemon=True)
    t.start()
    ctx = ssl.create_default_context(cafile=node.cert)
    c = http.client.HTTPSConnection("127.0.0.1", node.gport, timeout=10, context=ctx)
    for _ in range(200):
        c.request("GET", "/o/b3:" + "0" * 64, headers={"Authorization": "Bearer " + node.token})
        r = c.getresponse()
        r.read()
        codes[r.status] = codes.get(r.status, 0) + 1
        if r.status == 429:
            retry.append(r.getheader("Retry-After"))
        if r.getheader("Connection", "").lower() == "close":
            c.close()
            c = http.client.HTTPSConnection("127.0.0.1", node.gport, timeout=10, context=ctx)
    c.close()
    stop.set()
    t.join()
    ok = codes.get(429, 0) > 0 and all(r and int(r) >= 1 for r in retry) and admin_bad[0] == 0
    return ok, "200 requests over a 20/s quota: %s; Retry-After %s; admin failures %d" % (
        codes, sorted(set(retry)), admin_bad[0])


def drill_inflight_flood(node):
    """Hold slow uploads open until the in-flight cap is reached."""
    socks, states = [], set()
    ctx = ssl.create_default_context(cafile=node.cert)
    try:
        for _ in range(8):
            raw = socket.create_connection(("127.0.0.1", node.gport), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"POST /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      node.token.encode() + b"\r\nContent-Length: 1000000\r\n\r\nabc")
            socks.append(s)
        deadline = time.time() + 3
        while time.time() < deadline:
            st, state = node.readyz()
            states.add((st, state))
            if state == "degraded":
                break
            time.sleep(0.05)
        admin_st, _ = node.admin("GET", "/healthz")
    finally:
        for s in socks:
            s.close()
    ok = (200, "degraded") in states and admin_st == 200
    return ok, "8 slow uploads against max_inflight 4: readyz %s, admin %d" % (
        sorted(states), admin_st)


def drill_policy_outage(node):
    pol = os.path.join(node.data, "policy", "policy.json")
    saved = pol + ".drill"
    os.rename(pol, saved)
    try:
        node.admin("POST", "/api/v1/reload")
        st_ready, body = node.admin("GET", "/readyz")
        reasons = json.loads(body).get("reasons", [])
        st_get, _, _ = https(node, "GET", "/o/b3:" + "0" * 64)
    finally:
        os.rename(saved, pol)
    node.admin("POST", "/api/v1/reload")
    back, _ = node.admin("GET", "/readyz")
    named = any("policy" in r for r in reasons)
    ok = st_ready == 503 and named and st_get == 403 and back == 200
    return ok, "withdrawn: readyz %d (policy named: %s), GET %d; restored: readyz %d" % (
        st_ready, named, st_get, back)


def unix_connect(path):
    """Connect to a UNIX socket of either type (storage.sock is SEQPACKET)."""
    for kind in (socket.SOCK_SEQPACKET, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_UNIX, kind)
        s.settimeout(3)
        try:
            s.connect(path)
            return s
        except OSError as e:
            s.close()
            if e.errno != 91:                   # EPROTOTYPE: try the other type
                raise
    raise OSError(91, "no socket type fits")


def connect_as(uid, path):
    """In a child with uid: connect to path, send a frame and read.
    'refused:<errno>', 'closed' or 'answered'."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out = b"?"
        try:
            os.setgid(uid)
            os.setuid(uid)
            s = unix_connect(path)
            s.sendall(oap_frame(OAP_REQ, app=OAP_APP_HELLO, payload=b"{}"))
            out = b"answered" if s.recv(64) else b"closed"
        except ConnectionError:
            out = b"closed"
        except OSError as e:
            out = ("refused:%s" % (e.errno,)).encode()
        finally:
            os.write(w, out)
            os._exit(0)
    os.close(w)
    out = os.read(r, 64).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return out


def drill_uds_peercred(node):
    if os.geteuid() != 0:
        return None, "needs root to try another uid"
    rundir = os.path.join(node.data, "run")
    sock = os.path.join(rundir, "storage.sock")
    dmode, smode = os.stat(rundir).st_mode & 0o777, os.stat(sock).st_mode & 0o777
    first = connect_as(65534, sock)
    # Open every mode on the way (the temp dir and data dir are 0700 too), so
    # that only the server's SO_PEERCRED check stands between the uid and it.
    opened = [(p, os.stat(p).st_mode & 0o777) for p in (node.tmp, node.data, rundir, sock)]
    for p, _ in opened:
        os.chmod(p, 0o777 if p == sock else 0o755)
    before = metric_sum(node, "rejected_total", 'reason="peercred"')
    try:
        second = connect_as(65534, sock)
        time.sleep(0.2)
        counted = metric_sum(node, "rejected_total", 'reason="peercred"') - before
    finally:
        for p, mode in opened:
            os.chmod(p, mode)
    ok = dmode == 0o700 and smode == 0o600 and first.startswith("refused") and \
        second == "closed" and counted == 1
    return ok, ("modes %o/%o; uid 65534: %s; with the modes opened: %s, "
                "rejected_total{peercred} +%d" % (dmode, smode, first, second, counted))


def main():
    results = []

    def run(name, node, fn):
        try:
            ok, why = fn(node)
        except Exception as e:  # a drill that crashes is a failed drill
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
        results.append(verdict)
        log("%-20s %s  %s" % (name, verdict, why))

    log("# drills against %s" % os.environ.get("MACRONODE_BIN", "build/macronode"))
    node = Node(workers=1, extra={"storage": {"max_object": "64MiB"}}).start()
    try:
        for name, fn in [("oap_2mib_frame", drill_oap_2mib_frame),
                         ("decompression_bomb", drill_decompression_bomb),
                         ("policy_outage", drill_policy_outage),
                         ("uds_peercred", drill_uds_peercred)]:
            run(name, node, fn)
    finally:
        node.stop()
    node = Node(workers=1, extra={"quota": {"requests_per_second": 20, "burst": 20},
                                  "limits": {"max_inflight": 4}}).start()
    try:
        run("inflight_flood", node, drill_inflight_flood)   # before the storm spends the quota
        run("quota_storm", node, drill_quota_storm)
    finally:
        node.stop()
    log("%-20s %s  %s" % ("facet_slo", "SKIP", "see bench/facets.sh (drills graph, feed, "
                                                   "media, search, storm)"))
    bad = results.count("FAIL")
    log("drills: %d passed, %d failed, %d skipped" % (results.count("PASS"), bad,
                                                      results.count("SKIP") + 1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
