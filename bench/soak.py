#!/usr/bin/python3
"""make soak SOAK_MINUTES=30: a bounded mixed load with faults for SOAK_MINUTES,
sampling the open descriptors and the resident memory of every node process
(supervisor and each child) every SAMPLE seconds.

Each sample is taken with the load held still for QUIET seconds, so it
measures what the processes keep rather than buffers of requests in flight.
Fails (exit 1) when, after the warm-up (a fifth of the run, at least 60 s):
  - a process's descriptor count grows by more than FD_SLACK (the load's own
    connections come and go, so a few are noise; a leak only grows),
  - a process's anonymous RSS varies by more than 5 % (max/min - 1),
  - a process was replaced (it crashed), or an acknowledged write was lost.

Faults mixed into the load: malformed request lines, oversized headers, bad
tokens, uploads cut off mid-body, plaintext and garbage sent to the TLS port,
unsatisfiable ranges, unknown ids. Env: SOAK_MINUTES (30), SOAK_SAMPLE (10),
MACRONODE_BIN.
"""
import os
import random
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Load, Node, log  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "10"))
FD_SLACK = 12
# Seconds the load and the faults hold still before each sample: longer than
# the node's own 5 s deadlines (timeouts.*, body_grace), so connections a
# fault left hanging (an upload cut off mid-body) have been reaped and their
# buffers freed; what is measured is what the processes keep.
QUIET = 6.0
RSS_VARIANCE = 0.05


def proc_fds(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def proc_rss_kib(pid):
    """Anonymous resident memory (heap, stacks): file-backed pages, LMDB's map
    above all, grow with the data set and belong to the page cache."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Faults:
    """One thread sending bad input, bounded: one fault at a time, 5 s timeouts."""

    def __init__(self, node):
        self.node = node
        self.sent = 0
        self.stop_ev = threading.Event()
        self.run_ev = threading.Event()
        self.run_ev.set()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.tls = ssl.create_default_context(cafile=node.cert)

    def _tls(self):
        raw = socket.create_connection(("127.0.0.1", self.node.gport), timeout=5)
        return self.tls.wrap_socket(raw, server_hostname="localhost")

    def _send(self, data, tls=True, read=True):
        s = self._tls() if tls else socket.create_connection(("127.0.0.1", self.node.gport),
                                                             timeout=5)
        try:
            s.sendall(data)
            if read:
                s.recv(65536)
        finally:
            s.close()

    def one(self):
        kind = random.randrange(8)
        if kind == 0:
            self._send(b"GARBAGE / HTTP/9.9\r\n\r\n")
        elif kind == 1:
            self._send(b"GET /o HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        elif kind == 2:
            self._send(b"POST /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer nottoken\r\n"
                       b"Content-Length: 3\r\n\r\nabc")
        elif kind == 3:                           # an upload cut off mid-body
            tok = self.node.token.encode()
            self._send(b"POST /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
                       b"\r\nContent-Length: 100000\r\n\r\n" + os.urandom(5000), read=False)
        elif kind == 4:                           # plaintext HTTP to the TLS port
            self._send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", tls=False)
        elif kind == 5:                           # TLS garbage
            self._send(os.urandom(600), tls=False)
        elif kind == 6:
            self._send(b"GET /o/b3:" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\n"
                       b"Range: bytes=999999999-\r\n\r\n")
        else:
            self._send(b"GET /o/b3:XYZ HTTP/1.1\r\nHost: x\r\n\r\n")

    def _run(self):
        while not self.stop_ev.is_set():
            if not self.run_ev.wait(0.5):
                continue
            try:
                self.one()
            except (OSError, ssl.SSLError):
                pass
            self.sent += 1
            self.stop_ev.wait(0.05)

    def start(self):
        self.t.start()
        return self

    def pause(self, on):
        if on:
            self.run_ev.clear()
        else:
            self.run_ev.set()

    def stop(self):
        self.stop_ev.set()
        self.run_ev.set()
        self.t.join(timeout=10)


def judge(samples, warm_index):
    """Problems found in {key: [(t, pid, fds, rss)]} after the warm-up."""
    problems = []
    for key, rows in sorted(samples.items()):
        rows = rows[warm_index:]
        if len(rows) < 2:
            continue
        pids = {r[1] for r in rows}
        if len(pids) > 1:
            problems.append("%s[%d] was replaced (pids %s)" % (key[0], key[1], sorted(pids)))
            continue
        fds = [r[2] for r in rows if r[2] is not None]
        rss = [r[3] for r in rows if r[3] is not None]
        if fds and fds[-1] - fds[0] > FD_SLACK:
            problems.append("%s[%d] descriptors grew %d -> %d" % (key[0], key[1], fds[0], fds[-1]))
        if rss and max(rss) > min(rss) * (1 + RSS_VARIANCE):
            problems.append("%s[%d] RSS varied %d..%d KiB (> %d %%)" %
                            (key[0], key[1], min(rss), max(rss), RSS_VARIANCE * 100))
    return problems


def main():
    node = Node().start()
    load = Load(node).start()
    faults = Faults(node).start()
    samples = {}
    t_end = time.time() + MINUTES * 60
    warm = max(60.0, MINUTES * 60 / 5)
    n = 0
    warm_index = None
    t0 = time.time()
    try:
        while time.time() < t_end:
            # Sample a quiet node: the load holds still for QUIET seconds, so
            # what is measured is what the processes keep, not the buffers of
            # requests in flight (those come and go by a few 64 KiB chunks).
            load.pause(True)
            faults.pause(True)
            time.sleep(QUIET)
            for key, pid in node.pids().items():
                samples.setdefault(key, []).append((time.time(), pid, proc_fds(pid),
                                                    proc_rss_kib(pid)))
            load.pause(False)
            faults.pause(False)
            n += 1
            if warm_index is None and time.time() - t0 >= warm:
                warm_index = n - 1
            if node.proc.poll() is not None:
                break
            time.sleep(SAMPLE)
    finally:
        faults.stop()
        load.stop()
    checked, lost = load.verify_acked()
    node.stop()

    log("# soak: %.1f min, sample every %.0f s, warm-up %.0f s, %d samples" %
        (MINUTES, SAMPLE, warm, n))
    log("%-14s %6s %10s %10s %12s %12s" % ("process", "pid", "fds_first", "fds_last",
                                           "rss_min_kib", "rss_max_kib"))
    for key, rows in sorted(samples.items()):
        rows = rows[warm_index or 0:]
        fds = [r[2] for r in rows if r[2] is not None] or [0]
        rss = [r[3] for r in rows if r[3] is not None] or [0]
        log("%-14s %6d %10d %10d %12d %12d" % ("%s[%d]" % key, rows[-1][1], fds[0], fds[-1],
                                                min(rss), max(rss)))
    for key, rows in sorted(samples.items()):       # the series, to tell growth from churn
        rows = rows[warm_index or 0:]
        log("rss_kib %-12s %s" % ("%s[%d]" % key, " ".join(str(r[3]) for r in rows)))
    load.report(checked, lost)
    log("faults sent: %d" % faults.sent)
    problems = judge(samples, warm_index) if warm_index is not None else \
        ["run shorter than the warm-up (%.0f s): nothing judged" % warm]
    if lost:
        problems.append("%d acknowledged writes lost" % len(lost))
    if node.proc.returncode not in (None, 0):
        problems.append("supervisor exited with %s" % node.proc.returncode)
    for p in problems:
        log("  PROBLEM " + p)
    log("soak: %s" % ("FAILED" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
