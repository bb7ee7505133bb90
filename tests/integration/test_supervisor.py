"""Supervisor: restarts, crash-loop, drain on SIGTERM/shutdown, reload, orphan handling."""
import os
import signal
import statistics
import time

import pytest

from conftest import (SLOW, free_ports, parse_responses, pid_alive, port_listening, raw_connect,
                      recv_all, wait_until)


def test_kill9_worker_ten_times(node):
    times = []
    for i in range(10):
        kids = node.children()
        assert len(kids) == 1
        old = kids[0]
        assert old["state"] == "ready" and old["pid"] > 0, old
        t0 = time.monotonic()
        os.kill(old["pid"], signal.SIGKILL)

        def replaced():
            c = node.children()[0]
            return c if c["pid"] not in (0, old["pid"]) and c["state"] == "ready" else None

        c = wait_until(replaced, 10 * SLOW, interval=0.01, what="worker %d replaced" % i)
        times.append(time.monotonic() - t0)
        assert c["restarts"] == i + 1, c
        assert pid_alive(c["pid"])
        assert not pid_alive(old["pid"])
    med = statistics.median(times)
    assert med < (3.0 if SLOW > 1 else 1.0), "median restart %.3fs (%s)" % (med, times)
    # the gateway serves again
    r = node.gw("GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok", "service": "gateway", "worker": 0}
    m = node.metrics()
    assert m.get("service_restarts_total", service="gateway") == 10
    # 10 exits in well under 60 s: crash-looping, required → not ready
    r = node.get("/readyz")
    assert r.status == 503, r
    assert r.header("Retry-After") == "1"
    j = r.json()
    assert j["status"] == "not_ready" and j["ready"] is False
    g = j["deps"]["services"]["gateway"]
    assert g["state"] == "crashloop" and g["crashloop"] is True and g["restarts"] == 10
    assert "gateway: crash-looping (1 of 1 workers)" in j["reasons"]
    assert node.metrics().get("service_crashloop", service="gateway") == 1
    # the flag clears after 10 s of stability
    t_ready = time.monotonic()
    wait_until(lambda: node.get("/readyz").status == 200, 30, interval=0.2,
               what="/readyz back to 200")
    took = time.monotonic() - t_ready
    assert took >= 8.5, "crash-loop cleared after only %.1fs of stability" % took
    j = node.get("/readyz").json()
    assert j["status"] == "ready" and j["reasons"] == []
    assert j["deps"]["services"]["gateway"]["crashloop"] is False
    m = node.metrics()
    assert m.get("service_crashloop", service="gateway") == 0
    assert m.get("service_restarts_total", service="gateway") == 10
    assert m.get("ready_state", state="ready") == 1


def test_one_of_two_workers_down_is_degraded(node_factory):
    n = node_factory(workers=2)
    wait_until(lambda: all(c["state"] == "ready" for c in n.children()), 5 * SLOW,
               what="both workers ready")
    # stop one worker: SIGSTOP would not be seen; kill and look during the backoff window
    pid = n.children()[1]["pid"]
    os.kill(pid, signal.SIGKILL)

    def degraded():
        r = n.get("/readyz")
        return r if r.json()["status"] == "degraded" else None

    r = wait_until(degraded, 2 * SLOW, interval=0.005, what="degraded readiness")
    assert r.status == 200
    j = r.json()
    assert j["ready"] is True
    assert "gateway: 1 of 2 workers serving" in j["reasons"]
    wait_until(lambda: n.get("/readyz").json()["status"] == "ready", 5 * SLOW,
               what="ready again")


def test_sigterm_with_request_in_flight(node):
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"POST /api/v1/reload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        time.sleep(0.3)
        t0 = time.monotonic()
        node.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert node.running(), "node exited with a request in flight"
        s.sendall(b"67890")
        data, eof = recv_all(s, timeout=5)
    finally:
        s.close()
    rs, rest = parse_responses(data)
    assert len(rs) == 1, data
    assert rs[0].status == 202, rs[0]
    assert rs[0].json() == {"status": "reloaded"}
    assert rs[0].header("Connection").lower() == "close"
    assert eof
    rc = node.wait_exit(5 * SLOW)
    took = time.monotonic() - t0
    assert rc == 0, "exit code %r; log:\n%s" % (rc, node.log()[-3000:])
    assert took < 5.0 * SLOW
    wait_until(lambda: node.tagged_pids() == [], 2 * SLOW, what="no children left")
    assert not port_listening(node.admin_port) and not port_listening(node.gateway_port)


def test_sigterm_closes_idle_keepalive_connections(node):
    conns = []
    try:
        for port in (node.admin_port, node.gateway_port):
            s = raw_connect(port)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data, eof = recv_all(s, timeout=3, until=lambda b: b.endswith(b"}"))
            assert not eof
            conns.append(s)
        t0 = time.monotonic()
        node.send_signal(signal.SIGTERM)
        rc = node.wait_exit(5 * SLOW)
        took = time.monotonic() - t0
        assert rc == 0
        # idle connections are closed at once, not after the drain deadline (3 s)
        assert took < 2.0 * SLOW, "exit took %.2fs with idle keep-alive connections" % took
        for s in conns:
            data, eof = recv_all(s, timeout=1)
            assert eof and data == b""
    finally:
        for s in conns:
            s.close()
    wait_until(lambda: node.tagged_pids() == [], 2 * SLOW, what="no children left")


def test_sigint_exits_0(node):
    assert node.stop(signal.SIGINT, timeout=5 * SLOW) == 0
    wait_until(lambda: node.tagged_pids() == [], 2 * SLOW, what="no children left")


def test_post_shutdown(node):
    t0 = time.monotonic()
    r = node.post("/api/v1/shutdown")
    assert r.status == 202, r
    assert r.json() == {"status": "draining"}
    rc = node.wait_exit(5 * SLOW)
    assert rc == 0, rc
    assert time.monotonic() - t0 < 5 * SLOW
    wait_until(lambda: node.tagged_pids() == [], 2 * SLOW, what="no children left")
    recs = node.log_records()
    assert any(x.get("msg") == "audit" and x.get("action") == "shutdown"
               and x.get("result") == "accepted" for x in recs)
    assert any(x.get("msg") == "node stopped" for x in recs)


def headers_of(size):
    return {"X-Pad": "h" * size}


def test_sighup_valid_config_applies_live_keys(node):
    # before: a 2 KiB header is fine on both planes
    assert node.get("/healthz", headers=headers_of(2048)).status == 200
    assert node.gw("GET", "/healthz", headers=headers_of(2048)).status == 200
    assert not [x for x in node.log_records() if x.get("msg") == "http request"]
    node.write_config({"gateway": {"workers": 1}, "log": {"level": "debug"},
                       "limits": {"max_header_bytes": "1KiB"}})
    node.send_signal(signal.SIGHUP)
    wait_until(lambda: node.metrics().get("config_reloads_total", result="ok") == 1, 5 * SLOW,
               what="config_reloads_total{result=ok} == 1")
    st = node.status()
    assert st["reloads"] == {"ok": 1, "refused": 0, "last_error": ""}
    assert node.get("/healthz", headers=headers_of(2048)).status == 431
    wait_until(lambda: node.gw("GET", "/healthz", headers=headers_of(2048)).status == 431,
               3 * SLOW, what="gateway applies the new header cap")
    assert node.get("/readyz").status == 200
    recs = node.log_records()
    assert any(x.get("msg") == "config reloaded" and x.get("trigger") == "SIGHUP" for x in recs)
    assert node.metrics().sum("config_reloads_total", result="refused") == 0
    # log.level is live in the supervisor and in the worker: debug access records appear
    a = node.get("/nope").json()["corr_id"]
    g = node.gw("GET", "/nope").json()["corr_id"]

    def access(corr, service):
        return [x for x in node.log_records() if x.get("msg") == "http request"
                and x.get("corr_id") == corr and x.get("service") == service
                and x.get("level") == "debug"]

    wait_until(lambda: access(a, "macronode") and access(g, "gateway"), 2 * SLOW,
               what="debug access records from supervisor and worker")
    rec = access(a, "macronode")[0]
    assert rec["route"] == "unmatched" and rec["code"] == "404" and rec["method"] == "GET"


def test_sighup_invalid_config_keeps_old(node):
    node.write_config({"gateway": {"workers": 1},
                       "limits": {"max_header_bytes": "1KiB", "max_bodyy": "1MiB"}})
    node.send_signal(signal.SIGHUP)
    wait_until(lambda: node.metrics().get("config_reloads_total", result="refused") == 1,
               5 * SLOW, what="config_reloads_total{result=refused} == 1")
    m = node.metrics()
    assert m.sum("config_reloads_total", result="ok") == 0
    # nothing half-applied: the valid key in the refused file did not take effect
    assert node.get("/healthz", headers=headers_of(2048)).status == 200
    assert node.gw("GET", "/healthz", headers=headers_of(2048)).status == 200
    r = node.get("/readyz")
    assert r.status == 200
    assert "limits.max_bodyy" in r.json()["deps"]["config"]["last_reload_error"]
    st = node.status()
    assert st["reloads"]["ok"] == 0 and st["reloads"]["refused"] == 1
    assert "limits.max_bodyy" in st["reloads"]["last_error"]
    errs = [x for x in node.log_records() if x.get("msg") == "config reload refused; old config kept"]
    assert len(errs) == 1, errs
    assert errs[0]["level"] == "error" and errs[0]["trigger"] == "SIGHUP"
    assert "limits.max_bodyy" in errs[0]["error"]
    # syntax error: refused too, with line:col
    node.write_config(None, raw='{"limits": {"max_body": "1MiB",}}')
    node.send_signal(signal.SIGHUP)
    wait_until(lambda: node.metrics().get("config_reloads_total", result="refused") == 2,
               5 * SLOW, what="second refusal counted")
    assert "parse error" in node.status()["reloads"]["last_error"]
    # fixed file: applied, error cleared
    node.write_config({"gateway": {"workers": 1}})
    node.send_signal(signal.SIGHUP)
    wait_until(lambda: node.metrics().get("config_reloads_total", result="ok") == 1, 5 * SLOW,
               what="reload ok after fix")
    st = node.status()
    assert st["reloads"] == {"ok": 1, "refused": 2, "last_error": ""}
    assert node.get("/readyz").json()["deps"]["config"]["last_reload_error"] == ""
    assert node.running()


def test_post_reload_restart_class_change_422(node):
    new_gw, new_admin = free_ports(2)
    changes = [
        ({"gateway": {"addr": "127.0.0.1:%d" % new_gw}}, "gateway.addr"),
        ({"gateway": {"workers": 2}}, "gateway.workers"),
        ({"admin": {"addr": "127.0.0.1:%d" % new_admin}}, "admin.addr"),
        ({"paths": {"data_dir": node.data_dir + "2"}}, "paths.data_dir"),
        ({"limits": {"max_bodyy": "1MiB"}}, "limits.max_bodyy"),
    ]
    for i, (cfg, key) in enumerate(changes):
        node.write_config(cfg)
        r = node.post("/api/v1/reload")
        assert r.status == 422, (key, r)
        j = r.json()
        assert set(j) == {"code", "message", "retryable", "corr_id"}
        assert j["code"] == "config_invalid" and j["retryable"] is False
        assert key in j["message"], (key, j["message"])
        assert node.metrics().get("config_reloads_total", result="refused") == i + 1
    # nothing moved
    assert node.gw("GET", "/healthz").status == 200
    assert not port_listening(new_gw) and not port_listening(new_admin)
    assert len(node.children()) == 1
    assert not os.path.exists(node.data_dir + "2")
    assert node.get("/readyz").status == 200
    # restoring the original file makes reload succeed
    node.write_config({})
    r = node.post("/api/v1/reload")
    assert r.status == 202
    audit = [x for x in node.log_records() if x.get("msg") == "audit" and x.get("action") == "reload"]
    assert [x["result"] for x in audit] == ["refused"] * len(changes) + ["ok"]


def test_children_exit_when_supervisor_sigkilled(node_factory):
    n = node_factory(workers=2)
    wait_until(lambda: len(n.child_pids()) == 2, 5 * SLOW, what="two workers")
    kids = n.child_pids()
    n.proc.kill()
    n.proc.wait(5)
    wait_until(lambda: not any(pid_alive(p) for p in kids), 5 * SLOW,
               what="workers exit after the supervisor died")
    assert n.tagged_pids() == []
    assert not port_listening(n.gateway_port)


def test_worker_sigterm_is_restarted(node):
    """A worker that exits cleanly on its own is still restarted (it is required)."""
    old = node.children()[0]["pid"]
    os.kill(old, signal.SIGTERM)
    c = wait_until(lambda: (lambda c: c if c["pid"] not in (0, old) and c["state"] == "ready"
                            else None)(node.children()[0]), 10 * SLOW, what="restart")
    assert c["restarts"] == 1
    assert node.metrics().get("service_restarts_total", service="gateway") == 1


@pytest.mark.parametrize("how", ["flag", "env"])
def test_amnesia_leaves_no_data_dir(node_factory, how):
    kw = {"args": ["--amnesia"]} if how == "flag" else {"env": {"RON_AMNESIA": "1"}}
    n = node_factory(**kw)
    st = n.status()
    assert st["amnesia"] is True
    assert n.get("/version").json()["amnesia"] is True
    rd = st["runtime_dir"]
    assert rd.startswith("/dev/shm/"), rd
    assert os.path.isdir(rd) and (os.stat(rd).st_mode & 0o777) == 0o700
    assert not os.path.exists(n.data_dir)
    assert n.stop() == 0
    assert not os.path.exists(n.data_dir), os.listdir(n.data_dir)
    assert not os.path.exists(rd), "amnesia runtime dir left behind: %s" % rd
    assert sorted(os.listdir(n.tmp)) == ["node.json", "node.log"]


def test_non_amnesia_creates_data_dir(node):
    assert os.path.isdir(node.data_dir)
    assert (os.stat(node.data_dir).st_mode & 0o777) == 0o700
