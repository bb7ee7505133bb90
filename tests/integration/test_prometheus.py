"""The operator's monitoring kit against the real programs (issue 18):
Debian's prometheus scrapes a node with deploy/prometheus.yml and evaluates
deploy/alerts.yml; promtool checks and unit-tests the rules; every query of
the Grafana dashboard names a metric the node exports."""
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from conftest import SLOW, free_port, http_request, stored, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
N_RULES = 12   # the alerts in deploy/alerts.yml
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")

# Everything every service writes: the dashboard's DHT and overlay panels
# name families those services export.
ALL = {"services": ["storage", "gateway", "omnigate", "overlay", "dht", "index"]}

needs_prom = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                reason="prometheus/promtool not installed (scripts/deps.sh)")


def families(text):
    """Metric family names of an exposition (HELP/TYPE lines and samples)."""
    out = set()
    for line in text.splitlines():
        if line.startswith("# TYPE ") or line.startswith("# HELP "):
            out.add(line.split()[2])
        elif line and not line.startswith("#"):
            out.add(re.split(r"[{ ]", line, 1)[0])
    return out


PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "changes", "by", "without",
    "on", "ignoring", "or", "and", "unless", "histogram_quantile", "label_values", "le", "bool",
    "topk", "bottomk", "abs", "delta", "deriv", "offset",
}


def metric_names(expr):
    """The metric names an expression reads: identifiers outside label
    matchers, grouping clauses, ranges and strings, minus PromQL's words."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # strings
    e = re.sub(r"\{[^}]*\}", "", e)                        # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                       # ranges
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", e)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", e))
    return {n for n in names if n not in PROMQL_WORDS and not n.startswith("__")}


def exported(name, fams):
    for suffix in ("", "_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[:len(name) - len(suffix)] in fams:
            return True
    return False


@needs_prom
def test_alert_rules_check_and_unit_tests():
    p = subprocess.run([PROMTOOL, "check", "rules", "alerts.yml"], cwd=DEPLOY,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "%d rules found" % N_RULES in p.stdout, p.stdout
    p = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=DEPLOY,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    # Every alert the issue names has its rule, and every rule a test.
    rules = open(os.path.join(DEPLOY, "alerts.yml")).read()
    tests = open(os.path.join(DEPLOY, "alerts.test.yml")).read()
    for alert in re.findall(r"- alert: (\w+)", rules):
        assert "alertname: %s\n" % alert in tests, "no promtool test for " + alert
    for metric in ("ready_state", "service_crashloop", "integrity_fail_total", "policy_version",
                   "rejected_total{reason=\"quota\"}", "key_age_seconds", "dht_missing_records"):
        assert metric in rules, metric


def test_grafana_dashboard_queries_name_exported_metrics(node_factory):
    d = json.load(open(os.path.join(DEPLOY, "grafana", "macronode.json")))
    assert d["uid"] == "macronode" and d["panels"]
    exprs = [t["expr"] for p in d["panels"] for t in p["targets"]]
    names = set()
    for e in exprs:
        found = metric_names(e)
        assert found, "a query that names no metric: " + e
        names |= found
    n = node_factory(ALL)
    fams = families(n.get("/metrics").body.decode())
    missing = sorted(m for m in names if not exported(m, fams))
    assert not missing, "dashboard queries name metrics the node does not export: %s" % missing
    # The panels the issue lists are there.
    for m in ("http_requests_total", "rejected_total", "request_latency_seconds_bucket",
              "http_bytes_out_total", "integrity_fail_total", "service_restarts_total",
              "ready_state", "quota_evictions_total", "dht_lookups_total",
              "overlay_fetches_total"):
        assert m in names, m
    # and the instance variable reads a family every node has
    assert "build_info" in fams


def prom_query(port, q):
    r = http_request(port, "GET", "/api/v1/query?query=" + urllib.parse.quote(q), timeout=5.0)
    assert r.status == 200, r
    j = json.loads(r.body)
    assert j["status"] == "success", j
    return j["data"]["result"]


def prom_value(port, q):
    res = prom_query(port, q)
    return float(res[0]["value"][1]) if res else None


@needs_prom
def test_prometheus_scrapes_the_node_and_loads_the_rules(node_factory, tmp_path):
    n = node_factory(ALL)
    cid = stored(n, b"scraped" * 100)
    # deploy/prometheus.yml as shipped, with the test's address and a short
    # interval; the rule file beside it.
    cfg = open(os.path.join(DEPLOY, "prometheus.yml")).read()
    assert '"127.0.0.1:9600"' in cfg and "alerts.yml" in cfg
    cfg = cfg.replace('"127.0.0.1:9600"', '"%s"' % n.admin_addr)
    cfg = cfg.replace("scrape_interval: 15s", "scrape_interval: 1s")
    cfg = "global:\n  evaluation_interval: 1s\n" + cfg
    (tmp_path / "prometheus.yml").write_text(cfg)
    shutil.copy(os.path.join(DEPLOY, "alerts.yml"), tmp_path / "alerts.yml")
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")
    p = subprocess.Popen([PROMETHEUS, "--config.file", str(tmp_path / "prometheus.yml"),
                          "--storage.tsdb.path", str(tmp_path / "tsdb"),
                          "--web.listen-address", "127.0.0.1:%d" % port, "--log.level", "warn"],
                         stdout=log, stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        wait_until(lambda: http_request(port, "GET", "/-/ready").status == 200, 60 * SLOW,
                   what="prometheus ready")
        wait_until(lambda: prom_value(port, 'up{job="macronode"}') == 1, 60 * SLOW,
                   what="the node scraped: up == 1")
        before = prom_value(port, 'sum(http_requests_total{job="macronode"})') or 0
        for _ in range(20):
            assert n.gw("GET", "/o/" + cid).status == 200
        # a counter moves under load, seen through two or more scrapes
        wait_until(lambda: (prom_value(port, 'sum(http_requests_total{job="macronode"})') or 0)
                   >= before + 20, 30 * SLOW, what="http_requests_total grew by 20")
        assert prom_value(port, 'ready_state{job="macronode",state="ready"}') == 1
        assert prom_value(port, 'sum(service_up{job="macronode"})') >= 6
        assert prom_value(port, 'count(build_info{job="macronode"})') == 1
        wait_until(lambda: (prom_value(port, 'sum(request_latency_seconds_count{job="macronode"})')
                            or 0) >= 20, 30 * SLOW, what="latency histogram counted the GETs")
        assert prom_value(port, 'sum(verified_cache_lookups_total{job="macronode"})') >= 1
        # the rules loaded, evaluate cleanly, and nothing fires on a healthy node
        def rules_ok():
            r = http_request(port, "GET", "/api/v1/rules")
            groups = json.loads(r.body)["data"]["groups"]
            rs = [x for g in groups for x in g["rules"]]
            return len(rs) == N_RULES and all(x["health"] == "ok" for x in rs) and rs
        rs = wait_until(rules_ok, 30 * SLOW,
                        what="%d rules loaded and evaluated (health ok)" % N_RULES)
        firing = [x["name"] for x in rs if x["state"] == "firing"]
        assert not firing, firing
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
