"""Logs: JSON lines with the required fields; level is honoured."""
import json
import os
import re
import signal

from conftest import SLOW, wait_until

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def records(node):
    out = []
    for line in node.log().splitlines():
        assert line.startswith("{"), "not a JSON log line: %r" % line
        out.append(json.loads(line))
    return out


def test_every_line_is_json_with_required_fields(node):
    node.get("/nope")
    node.post("/api/v1/reload")
    assert node.stop() == 0
    recs = records(node)
    assert recs
    for r in recs:
        assert {"ts", "level", "service", "msg"} <= set(r), r
        assert TS.match(r["ts"]), r["ts"]
        assert r["level"] in ("debug", "info", "warn", "error"), r
        assert r["service"] in ("macronode", "gateway", "storage", "audit"), r
    msgs = [r["msg"] for r in recs]
    assert "node started" in msgs and "node stopped" in msgs
    # supervisor lines about a child name it by `role` (their `service` is the supervisor's)
    ready = [r for r in recs if r["msg"] == "service ready"]
    assert sorted(r["role"] for r in ready) == ["audit", "gateway", "storage"], ready
    assert all(r["service"] == "macronode" for r in ready), ready
    started_kids = [r for r in recs if r["msg"] == "service started"]
    assert sorted(r["role"] for r in started_kids) == ["audit", "gateway", "storage"], started_kids
    assert all(r["service"] == "macronode" for r in started_kids), started_kids
    started = next(r for r in recs if r["msg"] == "node started")
    assert started["admin"] == node.admin_addr and started["gateway"] == node.gateway_addr
    assert any(r["service"] == "gateway" for r in recs), "no record from the worker"
    assert any(r["service"] == "storage" for r in recs), "no record from storage"


def test_log_level_warn_hides_info(node_factory):
    n = node_factory(args=["--log-level", "warn"])
    n.get("/healthz")
    pid = [c["pid"] for c in n.children() if c["service"] == "gateway"][0]
    os.kill(pid, signal.SIGKILL)     # "service exited; restarting" is a warn record

    def gw_replaced():
        gw = [c for c in n.children() if c["service"] == "gateway"]
        return [c["state"] for c in gw] == ["ready"] and gw[0]["pid"] not in (0, pid)

    # wait for the replacement to be ready (it has its config, hence its level)
    wait_until(gw_replaced, 5 * SLOW, what="replacement ready")
    assert n.stop() == 0
    recs = records(n)
    assert any(r["msg"] == "service exited; restarting" and r["level"] == "warn"
               and r["role"] == "gateway" for r in recs), recs
    assert all(r["level"] in ("warn", "error") for r in recs), \
        [r for r in recs if r["level"] not in ("warn", "error")]


def test_log_level_from_env(node_factory):
    n = node_factory(env={"RON_LOG": "error"})
    n.write_config({"bogus": 1})
    n.send_signal(signal.SIGHUP)          # a refused reload logs at error
    wait_until(lambda: n.metrics().get("config_reloads_total", result="refused") == 1,
               5 * SLOW, what="refused reload")
    assert n.stop() == 0
    recs = records(n)
    assert [r["msg"] for r in recs] == ["config reload refused; old config kept"], recs

