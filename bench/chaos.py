#!/usr/bin/python3
"""make chaos: kill -9 each service in turn, many times, under a steady mixed
load (writes, reads, ranges over HTTPS; OAP/1 get/put), and report

  - the median (and max) time from the kill to the replacement being ready,
  - requests that failed (by kind; failures while a service is down are
    expected and only reported),
  - acknowledged writes lost (read back at the end; must be 0),
  - the /readyz transitions seen.

Exit status 1 when an acknowledged write is lost, a killed service is not
replaced and ready within RESTART_TIMEOUT, or the supervisor dies; never
because of a duration. Env: CHAOS_ROUNDS (default 10: each round kills the
gateway worker 0, storage and omnigate once), MACRONODE_BIN.
"""
import os
import signal
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Load, Node, ReadyWatch, log  # noqa: E402

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "10"))
RESTART_TIMEOUT = 10.0
SETTLE = 1.0           # steady load between two kills
VICTIMS = [("gateway", 0), ("storage", 0), ("omnigate", 0)]


def wait_replaced(node, key, old_pid):
    """Seconds until (service, worker) runs under a new pid and is ready."""
    t0 = time.time()
    while time.time() - t0 < RESTART_TIMEOUT:
        for c in node.children():
            if (c["service"], c["worker"]) == key and c["pid"] > 0 and \
                    c["pid"] != old_pid and c["state"] == "ready":
                return time.time() - t0
        time.sleep(0.01)
    return None


def main():
    node = Node().start()
    load = Load(node).start()
    watch = ReadyWatch(node).start()
    restarts, missing = {}, []
    try:
        time.sleep(2)                               # some objects exist before the first kill
        for r in range(ROUNDS):
            for key in VICTIMS:
                pid = node.pids().get(key)
                if not pid:
                    missing.append((r, key, "no pid before the kill"))
                    continue
                os.kill(pid, signal.SIGKILL)
                dt = wait_replaced(node, key, pid)
                if dt is None:
                    missing.append((r, key, "not ready again within %.0f s" % RESTART_TIMEOUT))
                else:
                    restarts.setdefault(key[0], []).append(dt)
                if node.proc.poll() is not None:
                    missing.append((r, key, "the supervisor exited"))
                    break
                time.sleep(SETTLE)
            log("round %d/%d done" % (r + 1, ROUNDS))
        time.sleep(SETTLE)
    finally:
        load.stop()
        watch.stop()
    checked, lost = load.verify_acked()
    node.stop()

    log("# chaos: %d rounds, kill -9 of %s each round" %
        (ROUNDS, ", ".join("%s[%d]" % k for k in VICTIMS)))
    log("%-10s %6s %12s %12s" % ("service", "kills", "median_ms", "max_ms"))
    for svc, xs in sorted(restarts.items()):
        log("%-10s %6d %12.0f %12.0f" % (svc, len(xs), statistics.median(xs) * 1000,
                                          max(xs) * 1000))
    load.report(checked, lost)
    log("readyz transitions: %d %s" % (len(watch.transitions), watch.summary()))
    for m in missing:
        log("  FAULT round %d %s[%d]: %s" % (m[0], m[1][0], m[1][1], m[2]))
    bad = bool(lost) or bool(missing)
    log("chaos: %s" % ("FAILED" if bad else "ok"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
