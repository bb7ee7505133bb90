"""Shared by bench/chaos.py and bench/soak.py: one node with every service
(gateway over HTTPS, storage, omnigate) on free loopback ports in a temp
directory, a bounded mixed load against it, and cleanup of everything started.

Standard library only (Debian's /usr/bin/python3); the node's own CLI does
init (key, signed policy, write token) and the OAP/1 client side (put/get).
"""
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("MACRONODE_BIN", os.path.join(ROOT, "build", "macronode"))
# Benchmarks run as root on a throwaway machine with no "macronode" user:
# the node would refuse (node.user, docs/operations.md "Privileges").
if os.geteuid() == 0:
    os.environ.setdefault("RON_ALLOW_ROOT", "true")


def log(msg):
    print(msg, flush=True)


_HANDED_OUT = set()  # ports already given out: bind(0) can repeat one once closed


def free_port():
    """A loopback port no earlier call in this process returned."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class Node:
    """macronode run with gateway (HTTPS, 2 workers), storage and omnigate."""

    def __init__(self, workers=2, log_level="warn", extra=None, services=None):
        self.tmp = tempfile.mkdtemp(prefix="mn-bench-")
        self.data = os.path.join(self.tmp, "var")
        self.aport, self.gport, self.oport = free_port(), free_port(), free_port()
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        self.proc = None
        self.logf = None
        self.workers = workers
        self.log_level = log_level
        self.extra = extra or {}
        self.services = services or ["gateway", "storage", "omnigate"]

    def _cert(self):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-keyout", self.key,
                        "-out", self.cert, "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)
        os.chmod(self.key, 0o600)

    def start(self):
        self._cert()
        os.mkdir(self.data, 0o700)
        out = subprocess.run([BIN, "init", "--data-dir", self.data], check=True,
                             capture_output=True, text=True).stdout
        lines = out.splitlines()
        i = next(i for i, l in enumerate(lines) if l.startswith("Write token"))
        self.token = lines[i + 1].split()[0]
        cfg = {
            "admin": {"addr": "127.0.0.1:%d" % self.aport},
            "gateway": {"addr": "127.0.0.1:%d" % self.gport, "workers": self.workers},
            "oap": {"addr": "127.0.0.1:%d" % self.oport},
            "services": self.services,
            "paths": {"data_dir": self.data},
            "log": {"level": self.log_level},
            "quota": {"requests_per_second": 0},
            "limits": {"requests_per_second": 0},
            "tls": {"cert_file": self.cert, "key_file": self.key},
        }
        for section, keys in self.extra.items():   # one level deep, as the config is
            cfg.setdefault(section, {}).update(keys)
        path = os.path.join(self.tmp, "node.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.logf = open(os.path.join(self.tmp, "node.log"), "ab")
        self.proc = subprocess.Popen([BIN, "run", "--config", path], stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("node exited with %s; log: %s" % (self.proc.returncode,
                                                                    self.log_tail()))
            if self.readyz()[0] == 200:
                return self
            time.sleep(0.1)
        raise RuntimeError("node not ready within 20 s; log: %s" % self.log_tail())

    def log_tail(self, n=20):
        try:
            with open(os.path.join(self.tmp, "node.log"), "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def admin(self, method, path):
        c = http.client.HTTPConnection("127.0.0.1", self.aport, timeout=5)
        try:
            c.request(method, path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def readyz(self):
        try:
            st, body = self.admin("GET", "/readyz")
            return st, json.loads(body).get("status", "?")
        except (OSError, ValueError, http.client.HTTPException):
            return 0, "unreachable"

    def children(self):
        st, body = self.admin("GET", "/api/v1/status")
        return json.loads(body)["children"] if st == 200 else []

    def pids(self):
        """{(service, worker): pid} of live children, plus ("supervisor", 0)."""
        out = {("supervisor", 0): self.proc.pid}
        for c in self.children():
            if c["pid"] > 0:
                out[(c["service"], c["worker"])] = c["pid"]
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.logf:
            self.logf.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Load:
    """Bounded mixed load: writes (POST /o), reads, ranges over HTTPS, and
    OAP/1 get/put through the node's own client. Every acknowledged write is
    remembered with its bytes so that nothing acknowledged can be lost
    unnoticed. Bounded: at most MAX_OBJECTS remembered, at most `threads`
    requests in flight, each with a timeout."""

    MAX_OBJECTS = 2000

    def __init__(self, node, threads=4, oap_every=0.5):
        self.node = node
        self.threads = threads
        self.oap_every = oap_every
        self.lock = threading.Lock()
        self.acked = {}            # cid -> bytes
        self.ok = {}               # kind -> count
        self.failed = {}           # kind -> count
        self.stop_ev = threading.Event()
        self.run_ev = threading.Event()   # cleared: workers hold still (soak samples)
        self.run_ev.set()
        self.workers = []
        self.tls = ssl.create_default_context(cafile=node.cert)

    def _count(self, kind, good):
        with self.lock:
            d = self.ok if good else self.failed
            d[kind] = d.get(kind, 0) + 1

    def _https(self, method, path, body=None, headers=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.node.gport, timeout=5,
                                        context=self.tls)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def _pick(self):
        with self.lock:
            if not self.acked:
                return None, None
            cid = random.choice(list(self.acked))
            return cid, self.acked[cid]

    def _remember(self, cid, data):
        with self.lock:
            if len(self.acked) < self.MAX_OBJECTS:
                self.acked[cid] = data

    def write(self):
        data = os.urandom(random.randint(1, 64 * 1024))
        st, body = self._https("POST", "/o", data,
                               {"Authorization": "Bearer " + self.node.token})
        if st == 201:
            self._remember(json.loads(body)["cid"], data)
        return st == 201

    def read(self):
        cid, data = self._pick()
        if not cid:
            return self.write()
        st, body = self._https("GET", "/o/" + cid)
        return st == 200 and body == data

    def range(self):
        cid, data = self._pick()
        if not cid:
            return self.write()
        a = random.randrange(len(data))
        b = random.randrange(a, len(data))
        st, body = self._https("GET", "/o/" + cid, headers={"Range": "bytes=%d-%d" % (a, b)})
        return st == 206 and body == data[a:b + 1]

    def oap(self):
        peer = ["--peer", "127.0.0.1:%d" % self.node.oport, "--ca", self.node.cert]
        if random.random() < 0.5:
            cid, data = self._pick()
            if cid:
                out = os.path.join(self.node.tmp, "oap-%d.out" % threading.get_ident())
                p = subprocess.run([BIN, "get", cid] + peer + ["-o", out], capture_output=True,
                                   timeout=10)
                good = p.returncode == 0 and open(out, "rb").read() == data
                if os.path.exists(out):
                    os.unlink(out)
                return good
        src = os.path.join(self.node.tmp, "oap-%d.in" % threading.get_ident())
        data = os.urandom(random.randint(1, 32 * 1024))
        with open(src, "wb") as f:
            f.write(data)
        env = dict(os.environ, RON_TOKEN=self.node.token)
        p = subprocess.run([BIN, "put", src] + peer, capture_output=True, timeout=10, env=env)
        cid = p.stdout.decode().strip().split()[-1] if p.returncode == 0 and p.stdout else ""
        if cid.startswith("b3:"):
            self._remember(cid, data)
            return True
        return False

    def _run(self, kinds):
        while not self.stop_ev.is_set():
            if not self.run_ev.wait(0.5):
                continue
            kind = random.choice(kinds)
            try:
                good = getattr(self, kind)()
            except (OSError, http.client.HTTPException, ValueError, KeyError,
                    subprocess.SubprocessError):
                good = False
            self._count(kind, good)
            if kind == "oap":
                self.stop_ev.wait(self.oap_every)

    def start(self):
        mix = ["write", "read", "read", "range"]
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(mix,), daemon=True)
            t.start()
            self.workers.append(t)
        t = threading.Thread(target=self._run, args=(["oap"],), daemon=True)
        t.start()
        self.workers.append(t)
        return self

    def pause(self, on):
        """Hold the workers still (on) or let them go; a request already
        started finishes either way."""
        if on:
            self.run_ev.clear()
        else:
            self.run_ev.set()

    def stop(self):
        self.stop_ev.set()
        self.run_ev.set()
        for t in self.workers:
            t.join(timeout=15)

    def verify_acked(self):
        """(checked, lost): every acknowledged write read back over HTTPS."""
        lost = []
        with self.lock:
            items = list(self.acked.items())
        for cid, data in items:
            try:
                st, body = self._https("GET", "/o/" + cid)
            except (OSError, http.client.HTTPException):
                st, body = 0, b""
            if st != 200 or body != data:
                lost.append((cid, st))
        return len(items), lost

    def totals(self):
        with self.lock:
            return dict(self.ok), dict(self.failed)

    def report(self, checked, lost):
        """The request counts by kind and the acknowledged-writes verdict."""
        ok, failed = self.totals()
        log("requests: " + ", ".join("%s %d ok / %d failed" % (k, ok.get(k, 0), failed.get(k, 0))
                                     for k in sorted(set(ok) | set(failed))))
        log("acknowledged writes: %d checked, %d lost" % (checked, len(lost)))
        for cid, st in lost[:10]:
            log("  LOST %s (status %s)" % (cid, st))


class ReadyWatch:
    """Samples /readyz every `period` s and keeps the transitions."""

    def __init__(self, node, period=0.05):
        self.node = node
        self.period = period
        self.transitions = []      # (t, from, to)
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        last = None
        while not self.stop_ev.is_set():
            _, state = self.node.readyz()
            if state != last:
                if last is not None:
                    self.transitions.append((time.time(), last, state))
                last = state
            self.stop_ev.wait(self.period)

    def start(self):
        self.t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        self.t.join(timeout=5)

    def summary(self):
        counts = {}
        for _, a, b in self.transitions:
            counts["%s->%s" % (a, b)] = counts.get("%s->%s" % (a, b), 0) + 1
        return counts
