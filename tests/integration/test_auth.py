"""Admin token: bearer auth on mutating routes, no token in logs, public bind refused."""
import os
import time

from conftest import SLOW, free_ports, port_listening, run_cli

TOKEN = "Tok3n-under-test-7c1f0e9a2b6d"
WRONG = "Wr0ng-token-guess-55aa99cc33ee"


def assert_401(r):
    assert r.status == 401, r
    assert r.header("WWW-Authenticate") == "Bearer"
    j = r.json()
    assert set(j) == {"code", "message", "retryable", "corr_id"}
    assert j["code"] == "unauthorized" and j["retryable"] is False
    assert TOKEN not in r.body.decode() and WRONG not in r.body.decode()


def test_bearer_token_required(node_factory):
    n = node_factory(env={"RON_ADMIN_TOKEN": TOKEN})
    bad = [
        {},
        {"Authorization": "Bearer " + WRONG},
        {"Authorization": "Bearer " + TOKEN[:-1]},
        {"Authorization": "Bearer " + TOKEN + "x"},
        {"Authorization": "Basic " + TOKEN},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ]
    for h in bad:
        assert_401(n.post("/api/v1/reload", headers=h))
    assert_401(n.post("/api/v1/shutdown", headers={"Authorization": "Bearer " + WRONG}))
    assert n.running()
    m = n.metrics()
    assert m.get("rejected_total", reason="unauth") == len(bad) + 1
    assert m.sum("config_reloads_total") == 0
    # read-only routes need no token
    assert n.get("/metrics").status == 200
    assert n.get("/api/v1/status").status == 200
    r = n.post("/api/v1/reload", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 202, r
    assert n.metrics().get("config_reloads_total", result="ok") == 1
    r = n.post("/api/v1/shutdown", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 202
    assert n.wait_exit(5 * SLOW) == 0
    log = n.log()
    assert TOKEN not in log, "admin token in the log"
    assert WRONG not in log, "presented (wrong) token in the log"
    assert TOKEN[:-1] not in log
    refused = [x for x in n.log_records() if x.get("kind") == "admin_refused"]
    assert len(refused) == len(bad) + 1
    assert all(x["reason"] == "bad or missing admin token" for x in refused)


def test_token_file(node_factory, tmp_dir):
    tok = os.path.join(tmp_dir, "admin.token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    n = node_factory({"admin": {"token_file": tok}})
    assert_401(n.post("/api/v1/reload", headers={"Authorization": "Bearer " + WRONG}))
    r = n.post("/api/v1/reload", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 202, r
    assert n.stop() == 0
    assert TOKEN not in n.log() and WRONG not in n.log()


def test_public_admin_without_token_refused(tmp_dir):
    a, g = free_ports(2)
    t0 = time.monotonic()
    p = run_cli(["run", "--http-addr", "0.0.0.0:%d" % a, "--gateway-addr", "127.0.0.1:%d" % g,
                 "--data-dir", os.path.join(tmp_dir, "d")], timeout=10 * SLOW)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert time.monotonic() - t0 < 3 * SLOW
    assert "admin.addr: non-loopback admin address requires an admin" in p.stderr, p.stderr
    assert not port_listening(a) and not port_listening(g)
    assert not os.path.exists(os.path.join(tmp_dir, "d"))


def test_admin_token_leaves_the_environment(node_factory):
    """`run` moves RON_ADMIN_TOKEN into secure memory and wipes it from its
    environment block (what /proc/PID/environ and a core would show); no
    process of the node carries it, and a reload still knows the token."""
    import signal
    n = node_factory(env={"RON_ADMIN_TOKEN": TOKEN})
    pids = n.tagged_pids()
    assert n.proc.pid in pids and len(pids) >= 3, pids
    for pid in pids:
        with open("/proc/%d/environ" % pid, "rb") as f:
            env = f.read()
        assert TOKEN.encode() not in env, "token in /proc/%d/environ" % pid
    n.send_signal(signal.SIGHUP)
    deadline = time.time() + 5 * SLOW
    while n.metrics().get("config_reloads_total", result="ok") != 1:
        assert time.time() < deadline, n.log()
        time.sleep(0.05)
    assert_401(n.post("/api/v1/reload", headers={"Authorization": "Bearer " + WRONG}))
    r = n.post("/api/v1/reload", headers={"Authorization": "Bearer " + TOKEN})
    assert r.status == 202, r
    assert n.metrics().get("config_reloads_total", result="ok") == 2
