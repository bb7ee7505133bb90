#!/usr/bin/env python3
"""console_screenshot.py [OUT.png] — the picture in docs/console.md: a node
(storage, two gateway workers, audit) under ~40 s of mixed load (reads,
misses, refused writes), its web console in headless Chromium (loopback only), an
object looked up, then a screenshot. Needs `make build` and the browser
packages of scripts/deps.sh. Uses the integration tests' node fixture code.
"""
import os
import sys
import tempfile
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("MACRONODE_BIN", os.path.join(ROOT, "build", "macronode"))

from conftest import Node, http_request, mint_token   # noqa: E402
from selenium import webdriver                         # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By            # noqa: E402

LOAD_S = 40


def load(n, cid, stop):
    i = 0
    while not stop.is_set():
        i += 1
        try:
            if i % 7 == 0:
                http_request(n.gateway_port, "GET", "/o/b3:" + "0" * 64)
            elif i % 11 == 0:
                http_request(n.gateway_port, "POST", "/o", body=b"x",
                             headers={"Authorization": "Bearer not-a-token"})
            else:
                http_request(n.gateway_port, "GET", "/o/" + cid)
        except OSError:
            pass
        time.sleep(0.004 if (i // 400) % 2 else 0.012)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "console.png")
    tmp = tempfile.mkdtemp(prefix="mn-shot-")
    n = Node(tmp, "shot-" + uuid.uuid4().hex, workers=2,
             env={"RON_ADMIN_TOKEN": "console-shot-admin-token-0123456789"})
    origin = "http://127.0.0.1:%d" % n.admin_port
    n.write_config({"gateway": {"workers": 2, "cors_origins": [origin]},
                    "audit": {"checkpoint_interval": "5s"}})   # the Audit box has one
    n.start()
    stop = threading.Event()
    threads = []
    d = None
    try:
        tok = mint_token(n.wall_dir, "--prefix", "/o", "--method", "POST")
        cid = http_request(n.gateway_port, "POST", "/o", body=os.urandom(200000),
                           headers={"Authorization": "Bearer " + tok}).json()["cid"]
        threads = [threading.Thread(target=load, args=(n, cid, stop)) for _ in range(2)]
        for t in threads:
            t.start()
        o = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1750",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--user-data-dir=" + os.path.join(tmp, "chromium")):
            o.add_argument(a)
        d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        d.get(origin + "/ui/")
        time.sleep(LOAD_S)
        d.find_element(By.ID, "cid").send_keys(cid)
        d.find_element(By.CSS_SELECTOR, "#lookup button").click()
        time.sleep(2.5)
        d.save_screenshot(out)
        print(out)
    finally:
        stop.set()
        for t in threads:
            t.join()
        if d:
            d.quit()
        problems = n.cleanup()
        if problems:
            sys.exit("\n".join(problems))


if __name__ == "__main__":
    main()
