"""Admin plane routes: status, headers, bodies; 404/405; keep-alive; pipelining; metrics."""
import json
import re
import os
import stat
import subprocess

import pytest

from conftest import (SLOW, assert_envelope, parse_responses, pid_alive, proc_cmdline,
                      raw_connect, recv_all, run_cli, wait_until)

JSON = "application/json"
METRICS_CT = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"]


def test_healthz(node):
    r = node.get("/healthz")
    assert r.status == 200
    assert r.header("Content-Type") == JSON
    assert r.body == b'{"status":"ok"}'
    assert r.header("Content-Length") == str(len(r.body))
    assert r.header("Date")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/version", "/metrics", "/api/v1/status"])
def test_head_has_headers_no_body(node, path):
    g = node.get(path)
    h = node.head(path)
    assert h.status == g.status == 200
    assert h.body == b""
    assert h.header("Content-Type") == g.header("Content-Type")
    cl = int(h.header("Content-Length"))
    # bodies of status/metrics change between calls; lengths must be plausible
    if path in ("/healthz", "/version"):
        assert cl == len(g.body)
    else:
        assert cl > 0


def test_head_sends_no_body_bytes_on_the_wire(node):
    """HEAD then GET pipelined on one connection: the GET status line must
    follow the HEAD headers immediately (a body would sit in between)."""
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"HEAD /version HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data, eof = recv_all(s)
    finally:
        s.close()
    assert eof
    rs, rest = parse_responses(data, head_flags=[True, False])
    assert [r.status for r in rs] == [200, 200], data
    assert int(rs[0].header("Content-Length")) > 0
    assert rs[1].body == b'{"status":"ok"}'
    assert rest == b""


def test_readyz_ready_body(node):
    r = node.get("/readyz")
    assert r.status == 200
    assert r.header("Content-Type") == JSON
    assert r.header("Retry-After") is None
    j = r.json()
    assert set(j) == {"status", "ready", "deps", "reasons"}
    assert j["status"] == "ready"
    assert j["ready"] is True
    assert j["reasons"] == []
    d = j["deps"]
    assert set(d) == {"config", "listeners", "entropy", "version_parity", "policy", "services",
                      "keys"}
    assert d["keys"]["state"] == "ok" and d["keys"]["minting"] == "k1", d["keys"]
    assert d["config"] == {"state": "ok", "last_reload_error": ""}
    assert d["listeners"] == {"state": "ok", "admin": node.admin_addr, "gateway": node.gateway_addr}
    assert d["entropy"]["state"] == "ok" and d["entropy"]["bits"] >= 128
    assert d["entropy"]["source"] == "entropy_avail"     # /proc/sys readable here
    v = node.get("/version").json()
    assert d["version_parity"] == {"state": "ok", "build_id": v["build_id"], "mismatched": 0}
    assert d["services"] == {
        "audit": {"state": "ready", "required": True, "workers": 1, "ready_workers": 1,
                  "crashloop": False, "restarts": 0},
        "gateway": {"state": "ready", "required": True, "workers": 1, "ready_workers": 1,
                    "crashloop": False, "restarts": 0},
        "storage": {"state": "ready", "required": True, "workers": 1, "ready_workers": 1,
                    "crashloop": False, "restarts": 0}}


def test_readyz_two_workers(node_factory):
    n = node_factory(workers=2)
    svcs = n.get("/readyz").json()["deps"]["services"]
    assert set(svcs) == {"audit", "gateway", "storage"}
    g = svcs["gateway"]
    assert g["workers"] == 2
    # ready as soon as one worker is; the second follows within moments
    assert g["ready_workers"] in (1, 2)
    # gateway.workers does not multiply storage: always one storage process
    assert svcs["storage"] == {"state": "ready", "required": True, "workers": 1,
                               "ready_workers": 1, "crashloop": False, "restarts": 0}
    kids = n.children()
    assert len(kids) == 4, kids   # two gateway workers, storage, audit
    assert sorted(c["worker"] for c in kids if c["service"] == "gateway") == [0, 1]
    assert [c["worker"] for c in kids if c["service"] == "storage"] == [0]


def test_version_body(node):
    r = node.get("/version")
    assert r.status == 200
    assert r.header("Content-Type") == JSON
    j = r.json()
    assert set(j) >= {"service", "version", "git_sha", "build_ts", "build_id", "features",
                      "amnesia", "api"}
    assert j["service"] == "macronode"
    # features: what the build supports; zk (-Dzk) and arti, the Tor
    # transport (-Dtor), are built in by default (docs/api.md)
    assert j["features"] == {"zk": True, "arti": True, "amnesia": True, "pq": False}
    assert j["zk"] is False          # zk.enabled is off by default
    assert j["onion"] == ""          # tor.enabled is off by default
    assert j["amnesia"] is False
    assert j["api"] == {"admin": "v1"}
    cli = json.loads(run_cli(["version", "--json"]).stdout)
    for k in ("version", "git_sha", "build_ts"):
        assert j[k] == cli[k], k
    assert j["version"] in j["build_id"] and j["git_sha"] in j["build_id"]


def test_status_body(node):
    r = node.get("/api/v1/status")
    assert r.status == 200
    assert r.header("Content-Type") == JSON
    j = r.json()
    v = node.get("/version").json()
    assert j["version"] == v["build_id"]
    assert j["state"] == "ready"
    assert j["pid"] == node.proc.pid
    assert isinstance(j["uptime_ms"], int) and j["uptime_ms"] >= 0
    assert j["amnesia"] is False
    assert j["admin_addr"] == node.admin_addr
    assert j["gateway_addr"] == node.gateway_addr
    assert j["data_dir"] == node.data_dir
    assert j["runtime_dir"] == os.path.join(node.data_dir, "run")
    assert j["reloads"] == {"ok": 0, "refused": 0, "last_error": ""}
    for d in (j["data_dir"], j["runtime_dir"]):
        st = os.stat(d)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700, d
    kids = j["children"]
    assert len(kids) == 3, kids
    # the audit service, one gateway worker and the storage process, each exactly once
    assert sorted((c["service"], c["worker"]) for c in kids) == [("audit", 0), ("gateway", 0),
                                                                  ("storage", 0)]
    assert len({c["pid"] for c in kids}) == 3, kids
    for c in kids:
        assert set(c) == {"service", "worker", "pid", "state", "restarts", "crashloop",
                          "storage_reachable", "build_id", "uptime_ms"}
        assert c["storage_reachable"] is True
        assert c["worker"] == 0
        assert c["state"] == "ready" and c["restarts"] == 0 and c["crashloop"] is False, c
        assert c["build_id"] == v["build_id"]
        assert isinstance(c["uptime_ms"], int) and 0 <= c["uptime_ms"] <= j["uptime_ms"], c
        assert pid_alive(c["pid"])
        argv = proc_cmdline(c["pid"])
        assert argv[1:5] == [b"__service", c["service"].encode(), b"--worker", b"0"], argv
        # the gateway gets the TCP listener, storage its UNIX socket (both as fd 5)
        assert b"--listen" in argv, argv
        with open("/proc/%d/stat" % c["pid"]) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        assert ppid == node.proc.pid


def test_404_envelope(node):
    r = node.get("/nope")
    j = assert_envelope(r, 404, "not_found")
    r2 = node.get("/healthz/extra?x=1")
    assert_envelope(r2, 404, "not_found")
    assert r2.json()["corr_id"] != j["corr_id"]


@pytest.mark.parametrize("method,path,allow", [
    ("POST", "/healthz", {"GET", "HEAD"}),
    ("DELETE", "/readyz", {"GET", "HEAD"}),
    ("PUT", "/metrics", {"GET", "HEAD"}),
    ("GET", "/api/v1/reload", {"POST"}),
    ("HEAD", "/api/v1/shutdown", {"POST"}),
])
def test_405_with_allow(node, method, path, allow):
    from conftest import http_request
    r = http_request(node.admin_port, method, path)
    assert r.status == 405, r
    got = {m.strip() for m in (r.header("Allow") or "").split(",")}
    assert got == allow, r.header("Allow")
    if method != "HEAD":
        assert_envelope(r, 405, "method_not_allowed")
    else:
        assert r.body == b""


def test_keepalive_reuses_connection(node):
    s = raw_connect(node.admin_port)
    try:
        for i in range(5):
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            data, eof = recv_all(s, until=lambda b: b.endswith(b'{"status":"ok"}'))
            assert not eof, "server closed a keep-alive connection after request %d" % i
            rs, rest = parse_responses(data)
            assert len(rs) == 1 and rs[0].status == 200 and rest == b""
            assert (rs[0].header("Connection") or "").lower() != "close"
    finally:
        s.close()


def test_pipelining_in_order(node):
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                  b"GET /version HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data, eof = recv_all(s)
    finally:
        s.close()
    assert eof
    rs, rest = parse_responses(data)
    assert [r.status for r in rs] == [200, 404, 200], data
    assert rs[0].body == b'{"status":"ok"}'
    assert rs[1].json()["code"] == "not_found"
    assert rs[2].json()["service"] == "macronode"
    assert rs[2].header("Connection").lower() == "close"
    assert rest == b""


def test_http10_closes(node):
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        data, eof = recv_all(s)
    finally:
        s.close()
    assert eof, "HTTP/1.0 request without keep-alive must be answered and closed"
    rs, _ = parse_responses(data)
    assert len(rs) == 1 and rs[0].status == 200 and rs[0].body == b'{"status":"ok"}'


def test_malformed_request_400(node):
    s = raw_connect(node.admin_port)
    try:
        s.sendall(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
        data, eof = recv_all(s)
    finally:
        s.close()
    assert eof
    rs, _ = parse_responses(data)
    assert len(rs) == 1 and rs[0].status == 400, data
    assert rs[0].json()["code"] == "bad_request"


def test_metrics_content_type_and_promtool(node):
    node.gw("GET", "/healthz")
    node.get("/nope")
    r = node.get("/metrics")
    assert r.status == 200
    assert r.header("Content-Type") == METRICS_CT
    p = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)


def every_service():
    """Every service the config table knows (`config docs`: the services row)."""
    docs = run_cli(["config", "docs"]).stdout
    row = re.search(r"^\| `services` \| list \| [^|]* \| ([a-z, ]+) \|", docs, re.M)
    names = [x.strip() for x in row.group(1).split(",")]
    assert {"gateway", "storage", "audit", "dht", "overlay", "omnigate"} <= set(names), names
    return names


def test_promtool_on_an_every_service_node(node_factory):
    """promtool check metrics on a node running every service: each
    service's families (histograms, labels, HELP/TYPE) are well formed,
    not only the default three's."""
    names = every_service()
    n = node_factory({"services": names})
    n.gw("GET", "/healthz")
    n.get("/nope")

    def all_up():
        m = n.metrics()
        return {l["service"] for l, v in m.series("service_up") if v == 1} == set(names)
    # the services /readyz does not wait for (search, ...) come up on their own time
    wait_until(all_up, 20 * SLOW, what="every service up")
    r = n.get("/metrics")
    assert r.status == 200
    p = subprocess.run(["promtool", "check", "metrics"], input=r.body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_metrics_families_and_values(node):
    for _ in range(3):
        assert node.get("/healthz").status == 200
    assert node.get("/nope").status == 404
    assert node.gw("GET", "/healthz").status == 200
    m = node.metrics()
    for fam, typ in [("service_restarts_total", "counter"), ("http_requests_total", "counter"),
                     ("request_latency_seconds", "histogram"), ("rejected_total", "counter"),
                     ("ready_state", "gauge"), ("config_reloads_total", "counter"),
                     ("build_info", "gauge"), ("process_start_time_seconds", "gauge"),
                     ("open_connections", "gauge"), ("service_up", "gauge")]:
        assert m.types.get(fam) == typ, (fam, m.types.get(fam))
    assert m.get("http_requests_total", service="admin", route="/healthz", code="200") == 3
    assert m.get("http_requests_total", service="admin", route="unmatched", code="404") == 1
    assert m.get("http_requests_total", service="gateway", route="/healthz", code="200") == 1
    # route labels are templates, never raw paths
    routes = {l.get("route") for l, _ in m.series("http_requests_total")}
    assert "/nope" not in routes
    les = [l["le"] for l, _ in m.series("request_latency_seconds_bucket")
           if l.get("service") == "admin" and l.get("route") == "/healthz"
           and l.get("method") == "GET"]
    assert les == BUCKETS, les
    assert m.get("request_latency_seconds_count", service="admin", route="/healthz",
                 method="GET") == 3
    assert m.get("request_latency_seconds_bucket", service="admin", route="/healthz",
                 method="GET", le="+Inf") == 3
    assert m.get("ready_state", state="ready") == 1
    assert m.get("ready_state", state="degraded") == 0
    assert m.get("ready_state", state="not_ready") == 0
    assert m.get("service_up", service="gateway") == 1
    v = node.get("/version").json()
    assert m.get("build_info", version=v["version"], git_sha=v["git_sha"]) == 1
    assert m.sum("rejected_total") == 0


def test_metrics_route_label_for_405(node):
    node.post("/healthz")
    m = node.metrics()
    assert m.get("http_requests_total", service="admin", route="/healthz", code="405") == 1


def test_reload_from_loopback_without_token(node):
    r = node.post("/api/v1/reload")
    assert r.status == 202, r
    assert r.header("Content-Type") == JSON
    assert r.json() == {"status": "reloaded"}
    assert node.metrics().get("config_reloads_total", result="ok") == 1
    audit = [x for x in node.log_records() if x.get("msg") == "audit"]
    assert any(x.get("action") == "reload" and x.get("result") == "ok"
               and x.get("peer", "").startswith("127.0.0.1") for x in audit), audit


def test_providers_route_without_dht(node):
    """GET /api/v1/providers/{b3}: a bad cid is a 400 naming the form; with
    no dht service the answer says so (no providers, "dht": "disabled"),
    never a hang."""
    r = node.get("/api/v1/providers/b3:nothex")
    assert r.status == 400 and r.json()["code"] == "bad_cid", r
    r = node.get("/api/v1/providers/b3:" + "ab" * 32)
    assert r.status == 200 and r.json() == {"cid": "b3:" + "ab" * 32, "providers": [],
                                            "dht": "disabled"}, r
