#!/usr/bin/python3
"""bench/ttfb.py — time to first byte of one GET, measured at the socket.

curl's time_starttransfer carries about a millisecond of curl's own loop on
this kind of box (nginx's answer reads ~1 ms through curl and ~0.1 ms at
the socket), which hides the server's part. This opens a fresh connection
per run (TCP, or TCP + TLS 1.3 without certificate checks: the bench's
self-signed certificate), sends the request, and times from the request's
last byte to the answer's first byte; the connection and handshake are
measured apart. Prints two numbers in milliseconds: the median TTFB after
the request was sent, and the median including connect (and handshake).

usage: ttfb.py URL RUNS [RANGE]      e.g. ttfb.py http://127.0.0.1:8080/o/b3:… 9 0-1023
Exits 1 if an answer is not 200/206.
"""
import socket
import ssl
import statistics
import sys
import time
from urllib.parse import urlsplit


def one(u, rng, ctx):
    t0 = time.perf_counter()
    s = socket.create_connection((u.hostname, u.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx:
        s = ctx.wrap_socket(s, server_hostname=u.hostname)
    req = "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n" % (
        u.path, u.netloc, "Range: bytes=%s\r\n" % rng if rng else "")
    s.sendall(req.encode())
    t1 = time.perf_counter()
    first = s.recv(65536)
    t2 = time.perf_counter()
    status = first.split(b" ", 2)[1] if first.startswith(b"HTTP/1.1 ") else b"?"
    while s.recv(1 << 20):
        pass
    s.close()
    if status not in (b"200", b"206"):
        sys.exit("ttfb.py: %s answered %r" % (u.geturl(), status))
    return (t2 - t1) * 1000, (t2 - t0) * 1000


def main():
    u = urlsplit(sys.argv[1])
    runs = int(sys.argv[2])
    rng = sys.argv[3] if len(sys.argv) > 3 else None
    ctx = None
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    for _ in range(6):   # warm-up, discarded: every gateway worker opens the object once
        one(u, rng, ctx)
    ts = [one(u, rng, ctx) for _ in range(runs)]
    print("%.3f %.3f" % (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts)))


if __name__ == "__main__":
    main()
