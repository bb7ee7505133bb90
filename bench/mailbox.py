#!/usr/bin/python3
"""bench/mailbox.py — the mailbox drill: producers and consumers on one node.

One node (gateway over HTTPS, storage, mailbox; harness.Node) and, for
DURATION seconds, PRODUCERS threads sending BODY-byte messages (each with
its own Idempotency-Key) to RECIPIENTS mailboxes while CONSUMERS threads
receive (max=10, lease=30s) and ack every message they get. Then the
consumers drain what is left. Prints p50/p95/p99 of each operation (send,
receive, ack), the rates, and the checks of the run: messages acknowledged
to their sender but never delivered (must be 0; a message whose ack's answer
was lost in a kill counts as delivered: that ack may have been committed)
and messages delivered after their ack (must be 0). With KILL=1 the mailbox service is killed
(SIGKILL) in the middle of the run and the same checks hold.

Every send and ack is an fsynced LMDB commit before its answer, so the
figures are those of the disk under the data directory (tmpfs under /tmp
on some machines: say which when you quote them).

usage: bench/mailbox.py        Env: MACRONODE_BIN, DURATION (10), PRODUCERS (4),
                               CONSUMERS (4), RECIPIENTS (4), BODY (1024), KILL (0)
Exits non-zero when a check fails or the node does not start — never on a figure.
"""
import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DURATION = float(os.environ.get("DURATION", "10"))
PRODUCERS = int(os.environ.get("PRODUCERS", "4"))
CONSUMERS = int(os.environ.get("CONSUMERS", "4"))
RECIPIENTS = int(os.environ.get("RECIPIENTS", "4"))
BODY = int(os.environ.get("BODY", "1024"))
KILL = os.environ.get("KILL", "0") == "1"
CTX = ssl._create_unverified_context()


def mint(node, tenant):
    env = dict(os.environ, RON_KEK_FILE=node.data + ".kek")
    r = subprocess.run([harness.BIN, "token", "mint", "--key",
                        os.path.join(node.data, "auth", "keys", "k1.key"), "--kid", "k1",
                        "--tenant", tenant, "--ttl", "1h"], capture_output=True, text=True,
                       env=env, check=True)
    return r.stdout.strip()


class Client:
    def __init__(self, node, token):
        self.node, self.token, self.conn = node, token, None

    def req(self, method, path, body=None, headers=None):
        h = {"Authorization": "Bearer " + self.token}
        h.update(headers or {})
        for _ in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPSConnection("127.0.0.1", self.node.gport,
                                                            timeout=30, context=CTX)
                t0 = time.perf_counter()
                self.conn.request(method, path, body=body, headers=h)
                r = self.conn.getresponse()
                data = r.read()
                return r.status, data, time.perf_counter() - t0
            except (OSError, http.client.HTTPException):
                self.conn = None
        return 0, b"", 0.0


class Run:
    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.lat = {"send": [], "recv": [], "ack": []}
        self.sent, self.acked, self.delivered_after_ack = set(), set(), 0
        self.delivered = set()
        self.errors = {}
        self.stop = threading.Event()
        self.tokens = {r: mint(node, "r%d" % r) for r in range(RECIPIENTS)}
        self.sender = mint(node, "producer")

    def note(self, op, status, dt):
        with self.lock:
            if status in (200, 201):
                self.lat[op].append(dt)
            else:
                self.errors[(op, status)] = self.errors.get((op, status), 0) + 1

    def produce(self, k):
        c = Client(self.node, self.sender)
        body = json.dumps({"body": "x" * BODY})
        i = 0
        while not self.stop.is_set():
            to = "r%d" % ((k + i) % RECIPIENTS)
            st, data, dt = c.req("POST", "/mb/" + to, body, {"Idempotency-Key": "p%d-%d" % (k, i),
                                                              "Content-Type": "application/json"})
            self.note("send", st, dt)
            if st == 201:
                with self.lock:
                    self.sent.add((to, json.loads(data)["id"]))
            elif st == 429:
                time.sleep(0.01)
            i += 1

    def consume_once(self, c, me):
        st, data, dt = c.req("GET", "/mb/%s?max=10&lease=30s" % me)
        self.note("recv", st, dt)
        if st != 200:
            return 0
        msgs = json.loads(data)["messages"]
        for m in msgs:
            with self.lock:
                if (me, m["id"]) in self.acked:
                    self.delivered_after_ack += 1
                self.delivered.add((me, m["id"]))
            st, _, dt = c.req("POST", "/mb/%s/%s/ack" % (me, m["id"]))
            self.note("ack", st, dt)
            if st == 200:
                with self.lock:
                    self.acked.add((me, m["id"]))
        return len(msgs)

    def consume(self, k):
        me = "r%d" % (k % RECIPIENTS)
        c = Client(self.node, self.tokens[k % RECIPIENTS])
        while not self.stop.is_set():
            if self.consume_once(c, me) == 0:
                time.sleep(0.005)

    def drain(self):
        """Receive until every acknowledged send was delivered at least
        once and acked, or delivered and its ack's answer was lost (that
        ack may have been committed: the message is gone), at most 60 s;
        leases of messages whose ack failed end within 30 s."""
        clients = [Client(self.node, self.tokens[r]) for r in range(RECIPIENTS)]
        deadline = time.time() + 60
        while time.time() < deadline and self.sent - self.acked - self.delivered:
            if not sum(self.consume_once(c, "r%d" % r) for r, c in enumerate(clients)):
                time.sleep(0.2)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))] * 1000 if xs else float("nan")


def main():
    node = harness.Node(workers=2, services=["gateway", "storage", "mailbox"],
                        extra={"mailbox": {"quota_count": 100000}}).start()
    try:
        run = Run(node)
        threads = [threading.Thread(target=run.produce, args=(k,)) for k in range(PRODUCERS)]
        threads += [threading.Thread(target=run.consume, args=(k,)) for k in range(CONSUMERS)]
        t0 = time.time()
        for t in threads:
            t.start()
        if KILL:
            time.sleep(DURATION / 2)
            pid = next(c["pid"] for c in node.children() if c["service"] == "mailbox")
            os.kill(pid, signal.SIGKILL)
            harness.log("killed the mailbox service (pid %d) at %.1f s" % (pid, DURATION / 2))
            time.sleep(DURATION / 2)
        else:
            time.sleep(DURATION)
        run.stop.set()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        run.drain()
        lost = run.sent - run.delivered
        harness.log("mailbox drill: %d producers, %d consumers, %d mailboxes, %d-byte bodies, "
                    "%.0f s%s" % (PRODUCERS, CONSUMERS, RECIPIENTS, BODY, DURATION,
                                  ", mailbox killed mid-run" if KILL else ""))
        harness.log("%-6s %8s %8s %8s %8s %10s" % ("op", "count", "p50 ms", "p95 ms", "p99 ms",
                                                  "per s"))
        for op, xs in run.lat.items():
            harness.log("%-6s %8d %8.2f %8.2f %8.2f %10.0f" % (op, len(xs), pct(xs, 50),
                                                              pct(xs, 95), pct(xs, 99),
                                                              len(xs) / elapsed))
        harness.log("refusals/failures: %s" % (run.errors or "none"))
        harness.log("CHECK acknowledged but never delivered: %d" % len(lost))
        harness.log("CHECK delivered after ack: %d" % run.delivered_after_ack)
        return 1 if lost or run.delivered_after_ack else 0
    finally:
        node.stop()


if __name__ == "__main__":
    sys.exit(main())
