"""The web console (GET /ui/ on the admin plane, src/node/admin_ui.c,
src/node/ui/, docs/console.md) in a real browser: headless Chromium from
Debian driven through chromedriver (python3-selenium), loopback only.

One node with an admin token and `gateway.cors_origins` = the admin plane's
origin; the page must list the real services, plot live numbers that follow
/metrics, upload a file to the gateway (cross-origin, with a capability
token) and show its cid, reload the node with the admin token, and never
put a token in storage or a cookie.

Skipped when chromium, chromedriver or selenium are missing
(scripts/deps.sh installs them). Set MN_CONSOLE_SCREENSHOT=path to save a
screenshot (docs/console.png is made that way).
"""
import base64
import os
import re
import shutil
import time

import pytest

from conftest import (OPEN_BUNDLE, SLOW, b3sum_cid, http_request, install_wall, mint_token,
                      obj_path, wait_until, write_bundle)

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:   # pragma: no cover - depends on the host
    webdriver = None

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ADMIN_TOKEN = "console-test-admin-token-0123456789"
CID_RE = re.compile(r"^b3:[0-9a-f]{64}$")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self' http://127.0.0.1:%d; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'none'")


@pytest.fixture
def browser(tmp_dir):
    if webdriver is None or not CHROMIUM or not CHROMEDRIVER:
        pytest.skip("chromium, chromedriver or python3-selenium not installed")
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,1500", "--no-first-run", "--disable-sync",
              "--disable-background-networking", "--disable-component-update",
              "--disable-default-apps", "--disable-extensions", "--proxy-server=direct://",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",   # loopback only
              "--user-data-dir=" + os.path.join(tmp_dir, "chromium")):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)
    d.set_page_load_timeout(20 * SLOW)
    try:
        yield d
    finally:
        d.quit()


def console_node(node_factory):
    n = node_factory(start=False, env={"RON_ADMIN_TOKEN": ADMIN_TOKEN})
    n.origin = "http://127.0.0.1:%d" % n.admin_port
    n.write_config({"gateway": {"cors_origins": [n.origin]}})
    return n.start()


def txt(d, elem_id):
    return d.find_element(By.ID, elem_id).text.strip()


def gateway_requests(n):
    return int(n.metrics().sum("http_requests_total", service="gateway"))


def test_console_in_a_browser(node_factory, browser, tmp_dir):
    t0 = time.monotonic()
    n = console_node(node_factory)
    d = browser

    # The headers a browser enforces: CSP (gateway origin in connect-src), nosniff.
    for path in ("/ui/", "/ui/console.js", "/ui/console.css"):
        r = n.get(path)
        assert r.status == 200, r
        assert r.header("Content-Security-Policy") == CSP % n.gateway_port, r
        assert r.header("X-Content-Type-Options") == "nosniff", r
    assert n.get("/ui/console.js").header("Content-Type") == "text/javascript; charset=utf-8"
    assert n.get("/ui/nope.js").status == 404
    r = n.get("/ui")
    assert r.status == 308 and r.header("Location") == "/ui/", r
    cfg = n.get("/ui/config.json").json()
    assert cfg["gateway_origin"] == "http://127.0.0.1:%d" % n.gateway_port
    assert cfg["cors_origins"] == [n.origin] and cfg["admin_token_required"] is True

    d.get(n.origin + "/ui/")
    # The service table lists the real services, one row per child.
    want = sorted((c["service"], str(c["pid"])) for c in n.children())

    def table():
        rows = d.find_elements(By.CSS_SELECTOR, "#services tbody tr")
        return sorted((r.find_elements(By.TAG_NAME, "td")[0].text,
                       r.find_elements(By.TAG_NAME, "td")[2].text) for r in rows)
    wait_until(lambda: table() == want, 10 * SLOW, what="service table = /api/v1/status")
    assert {s for s, _ in want} >= {"gateway", "storage"}
    assert txt(d, "ready-status") == "ready"

    # Live numbers: the request counter beside the plot follows /metrics.
    wait_until(lambda: txt(d, "req-total").isdigit(), 10 * SLOW, what="a first sample")
    for _ in range(7):
        assert n.gw("GET", "/healthz").status == 200
    floor = gateway_requests(n)
    wait_until(lambda: txt(d, "req-total").isdigit() and int(txt(d, "req-total")) >= floor,
               10 * SLOW, what="the readout to reach /metrics' count")
    assert int(txt(d, "req-total")) <= gateway_requests(n)
    wait_until(lambda: re.fullmatch(r"\d+\.\d", txt(d, "rate-now")), 10 * SLOW,
               what="a request rate")
    inked = d.execute_script(
        "const c = document.getElementById('plot-rate');"
        "const p = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < p.length; i += 4) if (p[i]) n++; return n;")
    assert inked > 100, inked

    # Upload through the page: a capability token typed in, the file given to
    # the <input type=file>, the cid shown; fetched back from the gateway.
    data = os.urandom(300 * 1024)
    path = os.path.join(tmp_dir, "upload.bin")
    with open(path, "wb") as f:
        f.write(data)
    tok = mint_token(n.wall_dir, "--prefix", "/o", "--method", "POST", "--method", "PUT")
    assert not d.find_element(By.ID, "cors-note").is_displayed()
    d.find_element(By.ID, "cap-token").send_keys(tok)
    d.find_element(By.ID, "file").send_keys(path)
    wait_until(lambda: CID_RE.match(txt(d, "up-cid")), 15 * SLOW,
               what="the cid on the page (status: %s)" % txt(d, "up-status"))
    cid = txt(d, "up-cid")
    assert cid == b3sum_cid(data)
    assert d.find_element(By.ID, "up-progress").get_attribute("value") == "100"
    r = n.gw("GET", obj_path(cid))
    assert r.status == 200 and r.body == data

    # The object box: HEAD on the gateway → size and a download link.
    d.find_element(By.CSS_SELECTOR, "#lookup button").click()
    wait_until(lambda: d.find_element(By.ID, "object-info").is_displayed(), 10 * SLOW,
               what="object info")
    assert "(%d bytes)" % len(data) in txt(d, "obj-size")
    assert d.find_element(By.ID, "obj-link").get_attribute("href") == \
        "http://127.0.0.1:%d%s" % (n.gateway_port, obj_path(cid))
    # providers come from the admin plane's DHT lookup: this node runs no
    # dht service, and the page says so rather than hanging
    wait_until(lambda: "dht service is not enabled" in txt(d, "obj-prov"), 10 * SLOW,
               what="the providers line (%r)" % txt(d, "obj-prov"))

    # State changes need the admin token, which stays in page memory.
    assert not d.find_element(By.ID, "btn-reload").is_enabled()
    before = n.status()["reloads"]["ok"]
    d.find_element(By.ID, "admin-token").send_keys(ADMIN_TOKEN)
    d.find_element(By.ID, "admin-use").click()
    assert d.find_element(By.ID, "admin-token").get_attribute("value") == ""
    d.find_element(By.ID, "btn-reload").click()
    wait_until(lambda: n.status()["reloads"]["ok"] == before + 1, 10 * SLOW,
               what="the reload the page asked for")
    held = d.execute_script(
        "return [localStorage.length, sessionStorage.length, document.cookie,"
        " location.href.indexOf('token')]")
    assert held == [0, 0, "", -1], held

    # No script or style was refused by the CSP, and nothing else went wrong.
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    shot = os.environ.get("MN_CONSOLE_SCREENSHOT")
    if shot:
        d.find_element(By.ID, "admin-note")   # header present
        d.save_screenshot(shot)
    assert time.monotonic() - t0 < 60 * SLOW


def test_admin_posts_refuse_other_origins_without_a_token(node_factory):
    """No admin token configured: a loopback POST is accepted, but not when a
    browser says it comes from another origin's page (cross-site POST)."""
    n = node_factory()
    before = n.metrics().sum("rejected_total", reason="unauth")
    r = http_request(n.admin_port, "POST", "/api/v1/reload",
                     headers={"Origin": "http://evil.example"})
    assert r.status == 401 and "own origin" in r.json()["message"], r
    assert n.metrics().sum("rejected_total", reason="unauth") == before + 1
    r = http_request(n.admin_port, "POST", "/api/v1/reload",
                     headers={"Origin": "http://127.0.0.1:%d" % n.admin_port})
    assert r.status == 202, r
    r = http_request(n.admin_port, "POST", "/api/v1/reload")
    assert r.status == 202, r
    assert n.get("/ui/config.json").json()["admin_token_required"] is False


def audit_rows(d, with_index=False):
    """The audit table's rows (redrawn every poll: read in one script)."""
    rows = d.execute_script(
        "return Array.from(document.querySelectorAll('#audit-records tbody tr'), (r) =>"
        " [r.dataset.index].concat(Array.from(r.cells, (c) => c.textContent)));")
    return [tuple(r) if with_index else tuple(r[1:]) for r in rows]


def test_console_audit_box(node_factory, browser):
    """With the audit service the Audit box shows the newest checkpoint and
    the record of a reload this test makes; without it the box is hidden."""
    n = node_factory(config={"audit": {"checkpoint_interval": "1s", "fsync_interval": "20ms"}})
    origin = "http://127.0.0.1:%d" % n.admin_port
    d = browser
    d.get(origin + "/ui/")
    wait_until(lambda: d.find_element(By.ID, "audit-box").is_displayed(), 10 * SLOW,
               what="the audit box")
    assert n.post("/api/v1/reload").status == 202
    # The reload's record, newest first among the rows, and a checkpoint
    # covering it: the same the admin plane gives.
    def reload_row():
        return [r for r in audit_rows(d) if r[1:] == ("admin", "0", "reload", "ok")]
    wait_until(reload_row, 15 * SLOW, what="the reload's record (rows: %r)" % audit_rows(d))
    ck = {}

    def covered():
        r = n.get("/api/v1/audit/recent?stream=admin&n=1").json()
        ck.update(r["checkpoint"] or {})
        return ck and txt(d, "audit-size") == str(ck["size"]) and \
            r["records"][0]["index"] < ck["size"]
    wait_until(covered, 15 * SLOW, interval=0.5,
               what="the page's checkpoint (%s) to cover the reload" % txt(d, "audit-size"))
    assert txt(d, "audit-root") == ck["root"][:19] + "…"
    assert txt(d, "audit-node") == ck["node_id"][:19] + "…"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", txt(d, "audit-time"))
    rows = audit_rows(d, with_index=True)
    idx = [int(r[0]) for r in rows]
    assert 1 <= len(rows) <= 10 and idx == sorted(idx, reverse=True), (rows, idx)
    assert not d.find_element(By.ID, "audit-note").is_displayed()
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
    assert n.stop() == 0

    # A node without the audit service: the box stays hidden.
    m = node_factory(config={"services": ["gateway", "storage"]})
    d.get("http://127.0.0.1:%d/ui/" % m.admin_port)
    wait_until(lambda: d.find_elements(By.CSS_SELECTOR, "#services tbody tr"), 10 * SLOW,
               what="the service table")
    assert txt(d, "ready-status") == "ready"
    assert not d.find_element(By.ID, "audit-box").is_displayed()
    assert audit_rows(d) == []


def reason_lines(d):
    # one script call: the page replaces the list on every poll, so element
    # handles taken one by one could go stale between two reads
    return d.execute_script("return Array.from(document.querySelectorAll('#ready-reasons li'),"
                            " (li) => li.textContent.trim());")


def test_console_readiness_reasons(node_factory, browser):
    """The readiness box lists /readyz's reasons, one line each, and follows
    them: a node without a policy bundle is not ready and says why; once a
    bundle is loaded (reload) the page says ready and lists nothing."""
    n = node_factory(start=False, wall=None, env={"RON_ADMIN_TOKEN": ADMIN_TOKEN})
    install_wall(n.data_dir, bundle=None)      # keys, but no policy bundle
    n.spawn()
    origin = "http://127.0.0.1:%d" % n.admin_port

    def readyz():
        try:
            return http_request(n.admin_port, "GET", "/readyz", timeout=1.0)
        except OSError:
            return None
    wait_until(lambda: readyz() is not None and readyz().status == 503, 20 * SLOW,
               what="the admin plane answering not ready")
    want = readyz().json()
    assert any(r.startswith("policy: no valid bundle") for r in want["reasons"]), want
    d = browser
    d.get(origin + "/ui/")
    wait_until(lambda: reason_lines(d) == readyz().json()["reasons"], 10 * SLOW,
               what="the page's reasons = /readyz's (%r)" % reason_lines(d))
    assert txt(d, "ready-status") == want["status"] != "ready"
    write_bundle(n.data_dir, OPEN_BUNDLE)
    r = http_request(n.admin_port, "POST", "/api/v1/reload",
                     headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert r.status == 202, r
    n.wait_ready()
    wait_until(lambda: txt(d, "ready-status") == "ready" and reason_lines(d) == [], 10 * SLOW,
               what="the page to say ready without reasons (%r)" % reason_lines(d))


DROP_JS = """
const [b64, name] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const dt = new DataTransfer();
dt.items.add(new File([bytes], name, {type: "application/octet-stream"}));
const zone = document.getElementById("drop");
zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
const over = zone.classList.contains("over");
const ev = new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true});
zone.dispatchEvent(ev);
return [over, ev.defaultPrevented, zone.classList.contains("over")];
"""


def test_console_drag_and_drop_upload(node_factory, browser):
    """A file dropped on the drop zone (a real DragEvent carrying a
    DataTransfer, as a browser makes for a file dragged in) is uploaded with
    the capability token typed in; the page shows its cid, the gateway
    serves the same bytes."""
    n = console_node(node_factory)
    d = browser
    d.get(n.origin + "/ui/")
    wait_until(lambda: txt(d, "ready-status") == "ready", 10 * SLOW, what="the page loaded")
    tok = mint_token(n.wall_dir, "--prefix", "/o", "--method", "POST", "--method", "PUT")
    d.find_element(By.ID, "cap-token").send_keys(tok)
    data = os.urandom(96 * 1024)
    over, prevented, still_over = d.execute_script(
        DROP_JS, base64.b64encode(data).decode(), "dropped.bin")
    assert over and prevented and not still_over, (over, prevented, still_over)
    wait_until(lambda: CID_RE.match(txt(d, "up-cid")), 15 * SLOW,
               what="the cid on the page (status: %s)" % txt(d, "up-status"))
    assert txt(d, "up-cid") == b3sum_cid(data)
    assert d.find_element(By.ID, "up-progress").get_attribute("value") == "100"
    r = n.gw("GET", obj_path(b3sum_cid(data)))
    assert r.status == 200 and r.body == data
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors
