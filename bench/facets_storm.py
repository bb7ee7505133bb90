#!/usr/bin/python3
"""bench/facets_storm.py — the storm drill of bench/facets.sh (issue 17):
the facet drills' requests while the node is under a storm, to show that
facets are shed first and the core routes and the admin plane still answer.

  run GW APORT PHASE SECONDS WRK_CONNS WRK_PATH WRK_TOKEN FACET_PATH FACET_TOKEN
      CORE_PATH CORE_TOKEN

While the storm runs for SECONDS, three samplers, each one keep-alive connection at about 50 requests per
second, measure: a facet route (FACET_PATH with FACET_TOKEN), a core route
(CORE_PATH with CORE_TOKEN) and the admin plane (/healthz). PHASE names
the storm in the output:

  quota     wrk (WRK_CONNS connections, WRK_TOKEN) hammers WRK_PATH: the
            storm tenant far over quota.requests_per_second gets 429s; the
            others' requests must keep their latency
  overload  uploads held open, added in RAMP steps up to WRK_CONNS: each
            POSTs WRK_PATH with a 1 MB Content-Length, sends 10 bytes and
            stops, so its request stays in flight: past 3/4 of
            limits.max_inflight facet routes are refused (503), core
            routes only at the cap, and the admin plane answers
            throughout. Each step is sampled for SECONDS / steps and named
            overload@<uploads>. WRK_TOKEN may be several tokens, comma-
            separated (tenants, so no upload share stops the ramp). Slow
            readers of large objects do not make a node shed: it streams
            an object as the client takes it, so they hold neither a
            request in flight nor queued memory.

Prints one line per sampler and one for the storm (overload: the
connections held, with no statuses):

  STORM <phase> <class> <n> <2xx> <429> <503> <other> <p50_ms> <p95_ms>

Exits non-zero only when a sampler could not talk to the node at all."""
import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time

WRK = shutil.which("wrk")
PAUSE = 0.02          # between a sampler's requests (about 50 per second)


class Sampler(threading.Thread):
    def __init__(self, name, port, path, token, stop):
        super().__init__(daemon=True)
        self.name_, self.port, self.path, self.stop = name, port, path, stop
        self.headers = {"Authorization": "Bearer " + token} if token else {}
        self.codes, self.lat, self.errors = {}, [], 0

    def _conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def run(self):
        c = self._conn()
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                c.request("GET", self.path, headers=self.headers)
                r = c.getresponse()
                r.read()
                st = r.status
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = self._conn()
            except (OSError, http.client.HTTPException):
                st = 0
                self.errors += 1
                c.close()
                c = self._conn()
            self.lat.append((time.monotonic() - t0) * 1000.0)
            self.codes[st] = self.codes.get(st, 0) + 1
            self.stop.wait(PAUSE)
        c.close()


def pct(xs, q):
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def line(phase, cls, codes, lat):
    n = sum(codes.values())
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    c429, c503 = codes.get(429, 0), codes.get(503, 0)
    print("STORM %s %s %d %d %d %d %d %.3f %.3f" % (phase, cls, n, ok, c429, c503,
                                                     n - ok - c429 - c503, pct(lat, 0.5),
                                                     pct(lat, 0.95)), flush=True)


def wrk_codes(out):
    """Status counts from facets_codes.lua's CODE lines."""
    codes = {}
    for l in out.splitlines():
        f = l.split()
        if len(f) == 3 and f[0] == "CODE":
            codes[int(f[1])] = int(f[2])
    return codes


def sample(gport, aport, fpath, ftok, cpath, ctok, stop):
    samplers = [Sampler("facet", gport, fpath, ftok, stop),
                Sampler("core", gport, cpath, ctok, stop),
                Sampler("admin", aport, "/healthz", "", stop)]
    for s in samplers:
        s.start()
    return samplers


def finish(phase, samplers, stop):
    stop.set()
    for s in samplers:
        s.join(timeout=15)
    for s in samplers:
        line(phase, s.name_, s.codes, s.lat)
    if any(sum(s.codes.values()) == s.errors for s in samplers):
        sys.exit("a sampler never reached the node")


RAMP = 8     # steps of the overload phase


def overload(host, gport, aport, phase, secs, conns, wpath, wtok, fpath, ftok, cpath, ctok):
    toks = wtok.split(",")
    held = []
    step = max(1, conns // RAMP)
    per = max(1.0, secs / (RAMP + 1))
    try:
        for level in range(0, conns + 1, step):
            while len(held) < level:
                s = socket.create_connection((host, gport))
                s.sendall(("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                           "Content-Type: application/octet-stream\r\n"
                           "Content-Length: 1000000\r\n\r\n" %
                           (wpath, host, toks[len(held) % len(toks)])).encode() + b"x" * 10)
                held.append(s)
            time.sleep(0.5)                   # let them be admitted
            stop = threading.Event()
            samplers = sample(gport, aport, fpath, ftok, cpath, ctok, stop)
            time.sleep(per)
            finish("%s@%d" % (phase, level), samplers, stop)
    finally:
        for s in held:
            s.close()


def main():
    if len(sys.argv) != 13 or sys.argv[1] != "run":
        sys.exit(__doc__)
    (gw, aport, phase, secs, conns, wpath, wtok, fpath, ftok, cpath,
     ctok) = sys.argv[2:]
    if not WRK:
        sys.exit("wrk not installed")
    host, gport = gw.rsplit(":", 1)
    secs, gport, aport = int(secs), int(gport), int(aport)
    if phase == "overload":
        return overload(host, gport, aport, phase, secs, int(conns), wpath, wtok, fpath, ftok,
                        cpath, ctok)
    lua = __file__.rsplit("/", 1)[0] + "/facets_codes.lua"
    storm = subprocess.Popen([WRK, "-t2", "-c%s" % conns, "-d%ds" % secs, "--latency",
                              "-s", lua, "-H", "Authorization: Bearer " + wtok,
                              "http://%s:%d%s" % (host, gport, wpath)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(min(2.0, secs / 4))          # let the storm build up first
    stop = threading.Event()
    samplers = sample(gport, aport, fpath, ftok, cpath, ctok, stop)
    out, _ = storm.communicate(timeout=secs + 60)
    finish(phase, samplers, stop)
    wl = [l for l in out.splitlines() if l.startswith("LAT ")]
    p50 = p95 = float("nan")
    if wl:
        f = wl[0].split()
        p50, p95 = float(f[1]), float(f[2])
    codes = wrk_codes(out)
    n = sum(codes.values())
    ok = sum(v for k, v in codes.items() if 200 <= k < 300)
    print("STORM %s storm %d %d %d %d %d %.3f %.3f" % (phase, n, ok, codes.get(429, 0),
                                                       codes.get(503, 0),
                                                       n - ok - codes.get(429, 0) -
                                                       codes.get(503, 0), p50, p95),
          flush=True)


if __name__ == "__main__":
    main()
