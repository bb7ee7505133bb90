"""Storage service: crash safety under kill -9, outage answers (503 fast,
readiness), amnesia leaves nothing, disk layout and persistence (issue 3); a
malformed internal request is fatal to storage (issue 10)."""
import http.client
import os
import random
import signal
import socket
import struct
import threading
import time

from conftest import (SLOW, all_ready, b3sum_cid, b3sum_file, blob_file, obj_path,
                      parse_responses, pid_alive, put_object, raw_connect, recv_all, storage_pid,
                      stored, upload_begun, wait_until)

KiB = 1024
GROUP = 64 * KiB


def readyz(node):
    r = node.get("/readyz")
    return r, r.json()


def test_default_services_in_status_and_readyz(node):
    kids = node.children()
    assert sorted(c["service"] for c in kids) == ["audit", "gateway", "storage"], kids
    assert all(c["state"] == "ready" and c["pid"] > 0 for c in kids), kids
    r, j = readyz(node)
    assert r.status == 200 and j["status"] == "ready", j
    assert set(j["deps"]["services"]) == {"audit", "gateway", "storage"}, j
    st = j["deps"]["services"]["storage"]
    assert st["state"] == "ready" and st["required"] is True, st


def test_kill9_storage_during_put_stream(node):
    wait_until(lambda: all_ready(node), 5 * SLOW, what="all children ready")
    old = storage_pid(node)
    rnd = random.Random(4242)
    results = []            # (data, status or None, Resp or exception, seconds)

    def writer():
        for _ in range(200):
            data = rnd.randbytes(rnd.randint(0, 256 * KiB))
            t0 = time.monotonic()
            try:
                r = put_object(node, data, timeout=10)
                results.append((data, r.status, r, time.monotonic() - t0))
            except (OSError, http.client.HTTPException) as e:
                results.append((data, None, e, time.monotonic() - t0))

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    wait_until(lambda: len(results) >= 50, 60 * SLOW, what="50 PUTs done")
    os.kill(old, signal.SIGKILL)
    # readiness reports the storage service down, then recovers
    def not_ready():
        r = node.get("/readyz")
        return r if r.status == 503 else None

    r = wait_until(not_ready, 2 * SLOW, interval=0.005, what="/readyz 503 while storage is down")
    j = r.json()
    assert j["ready"] is False and j["status"] == "not_ready", j
    assert j["deps"]["services"]["storage"]["state"] in ("down", "crashloop"), j
    assert any(x.startswith("storage:") for x in j["reasons"]), j
    assert r.header("Retry-After") == "1"
    th.join(120 * SLOW)
    assert not th.is_alive(), "PUT stream did not finish"
    wait_until(lambda: node.get("/readyz").status == 200, 10 * SLOW, what="/readyz 200 again")
    new = storage_pid(node)
    assert new not in (0, old) and pid_alive(new) and not pid_alive(old)
    m = node.metrics()
    assert m.get("service_restarts_total", service="storage") == 1
    assert m.sum("service_restarts_total", service="gateway") == 0
    assert len(results) == 200
    ok = [x for x in results if x[1] in (200, 201)]
    bad = [x for x in results if x[1] not in (200, 201)]
    assert len(ok) >= 100, [(x[1], x[2]) for x in bad][:5]
    for data, status, resp, secs in bad:
        assert status == 503, (status, resp)
        assert resp.header("Retry-After") is not None, resp
        j = resp.json()
        assert j["retryable"] is True and j["code"] == "unavailable", j
        assert secs < 1.0 * SLOW, "503 took %.2fs" % secs
    # every 2xx is readable and byte-identical
    for data, status, resp, _ in ok:
        cid = b3sum_cid(data)
        assert resp.json() == {"cid": cid}
        g = node.gw("GET", obj_path(cid), timeout=10)
        assert g.status == 200 and g.body == data, (cid, g.status, len(g.body), len(data))
    # nothing half-written is ever served
    for data, _, _, _ in bad:
        g = node.gw("GET", obj_path(b3sum_cid(data)), timeout=10)
        assert g.status in (200, 404), g
        if g.status == 200:
            assert g.body == data
    # every blob on disk hashes to its name, and no temporary file is left over
    objs = os.path.join(node.data_dir, "objects")
    n = 0
    for d, _, files in os.walk(objs):
        for f in files:
            if f.endswith(".ob"):
                continue
            assert b3sum_file(os.path.join(d, f)) == "b3:" + f, f
            n += 1
    assert n >= len({b3sum_cid(x[0]) for x in ok})
    tmp = os.path.join(node.data_dir, "tmp")
    if os.path.isdir(tmp):
        assert os.listdir(tmp) == []
    # and the store takes new objects
    stored(node, b"after the crash")


def test_storage_restart_mid_upload_503(node):
    """Storage dies while a body is still arriving (PUT_BEGIN done, PUT_COMMIT not yet):
    the upload is lost with the old process, so the answer is 503 unavailable
    (retry), never 404, and nothing is stored."""
    data = random.Random(77).randbytes(200000)
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(data) + data[:100000])
        wait_until(lambda: upload_begun(node), 10 * SLOW, what="the gateway has begun the upload")
        old = storage_pid(node)
        os.kill(old, signal.SIGKILL)
        wait_until(lambda: storage_pid(node) not in (0, old) and all_ready(node), 10 * SLOW,
                   what="storage restarted")
        s.sendall(data[100000:])
        raw, _ = recv_all(s, timeout=10, until=lambda b: b"\r\n\r\n" in b and b.endswith(b"}"))
    finally:
        s.close()
    rs, _ = parse_responses(raw)
    assert len(rs) == 1, raw[:300]
    r = rs[0]
    assert r.status == 503, r
    assert r.header("Retry-After") == "1"
    assert r.json()["code"] == "unavailable" and r.json()["retryable"] is True, r
    g = node.gw("GET", obj_path(b3sum_cid(data)))
    assert g.status == 404, g
    # a retry succeeds
    r = put_object(node, data)
    assert r.status == 201 and r.json() == {"cid": b3sum_cid(data)}, r


def test_no_storage_service_503_fast(node_factory):
    """Gateway without a storage process: object routes answer 503 + Retry-After at once."""
    n = node_factory({"services": ["gateway"]})
    cid = b3sum_cid(b"x")
    for i in range(6):
        for method, path, body in (("GET", obj_path(cid), None), ("POST", "/o", b"x"),
                                   ("HEAD", obj_path(cid), None)):
            t0 = time.monotonic()
            r = n.gw(method, path, body=body)
            took = time.monotonic() - t0
            assert r.status == 503, (i, method, r)
            assert r.header("Retry-After") is not None and int(r.header("Retry-After")) >= 1, r
            assert took < 1.0 * SLOW, "%s %s took %.2fs" % (method, path, took)
            if method != "HEAD":
                j = r.json()
                assert j["retryable"] is True and j["code"] == "unavailable", j
    assert n.gw("GET", "/healthz").status == 200


def test_hung_storage_breaker_opens(node):
    """A storage process that stops answering: calls time out (5 s, STOR_CALL_TIMEOUT_MS)
    with 503; after 3 consecutive failures the breaker opens and calls get 503 at once;
    /readyz says why; after SIGCONT the gateway recovers (trial call after 1 s)."""
    data = b"before the hang"
    cid = stored(node, data)
    pid = storage_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        slow = 0
        for i in range(4):
            t0 = time.monotonic()
            r = node.gw("GET", obj_path(cid), timeout=15)
            took = time.monotonic() - t0
            assert r.status == 503 and r.header("Retry-After") == "1", (i, r)
            assert r.json()["code"] == "unavailable"
            if took < 0.5 * SLOW:
                break
            assert took < 7 * SLOW, took
            slow += 1
        assert slow == 3, "breaker opened after %d slow calls, want 3" % slow
        # breaker open: fast refusals, also for uploads
        for method, body in (("GET", None), ("POST", b"new bytes")):
            t0 = time.monotonic()
            r = node.gw(method, obj_path(cid) if method == "GET" else "/o", body=body)
            assert r.status == 503 and r.header("Retry-After") == "1", r
            assert time.monotonic() - t0 < 0.5 * SLOW
        # readiness says why
        j = node.get("/readyz").json()
        assert any("storage" in x for x in j["reasons"]), j
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: node.gw("GET", obj_path(cid)).status == 200, 10 * SLOW,
               interval=0.2, what="gateway serves again after SIGCONT")
    assert node.gw("GET", obj_path(cid)).body == data
    wait_until(lambda: node.get("/readyz").json()["reasons"] == [], 5 * SLOW,
               what="/readyz clean again")


def test_amnesia_leaves_data_dir_empty(node_factory):
    n = node_factory(args=["--amnesia"])
    assert n.status()["amnesia"] is True
    objs = [random.Random(i).randbytes(s) for i, s in enumerate((0, 10, GROUP + 1, 300 * KiB))]
    for data in objs:
        cid = stored(n, data)
        g = n.gw("GET", obj_path(cid))
        assert g.status == 200 and g.body == data
    # during the run too: nothing under the data directory
    assert not os.path.exists(n.data_dir) or os.listdir(n.data_dir) == [], \
        os.listdir(n.data_dir)
    assert n.stop() == 0
    assert not os.path.exists(n.data_dir) or os.listdir(n.data_dir) == [], \
        os.listdir(n.data_dir)
    # "wall" holds the key and policy the harness installed (input, not output).
    assert sorted(os.listdir(n.tmp)) == ["node.json", "node.log", "wall"]


def test_disk_mode_layout_and_persistence(node):
    sizes = (0, 1, GROUP, GROUP + 1, 200000)
    objs = [random.Random(100 + i).randbytes(s) for i, s in enumerate(sizes)]
    cids = [stored(node, d) for d in objs]
    for data, cid in zip(objs, cids):
        p = blob_file(node, cid)
        assert os.path.isfile(p), p
        with open(p, "rb") as f:
            assert f.read() == data
        assert os.path.isfile(p + ".ob"), p + ".ob"
        assert not (os.stat(p).st_mode & 0o022), oct(os.stat(p).st_mode)
    # outboard: 32 bytes per 64 KiB group (docs/internal.md)
    assert os.path.getsize(blob_file(node, cids[4]) + ".ob") == 32 * 4
    meta = os.path.join(node.data_dir, "meta")
    assert os.path.isdir(meta) and os.listdir(meta), meta
    assert node.stop() == 0
    assert os.path.isdir(os.path.join(node.data_dir, "objects"))
    assert os.path.isdir(meta)
    # a new run over the same data directory serves the same objects
    node.start()
    for data, cid in zip(objs, cids):
        g = node.gw("GET", obj_path(cid))
        assert g.status == 200 and g.body == data, (cid, g)
    r = put_object(node, objs[2])
    assert r.status == 200 and r.json() == {"cid": cids[2]}, r


def _storage_frame(verb, payload, corr=1, flags=0x01, app=0x0100):
    """One OAP/1 frame (header layout: docs/oap.md) carrying a storage request."""
    hdr = struct.pack(">IHHHH16sHQ", 38 + len(payload), 1, flags, verb, app, b"\0" * 16, 0, corr)
    return hdr + payload


def test_malformed_internal_request_is_fatal_to_storage(node):
    """docs/internal.md: only this binary reaches storage.sock (0600 in a 0700
    dir, SO_PEERCRED), so a request that does not decode is a bug: storage
    logs one error line naming the verb and exits 1; the supervisor restarts
    it and readiness recovers. A well-formed request is answered as before."""
    wait_until(lambda: all_ready(node), 5 * SLOW, what="all children ready")
    cid = stored(node, b"survives the restart")
    path = os.path.join(node.data_dir, "run", "storage.sock")
    old = storage_pid(node)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(5 * SLOW)
        s.connect(path)
        s.send(_storage_frame(1, b""))                      # PING: answered 200
        resp = s.recv(256)
        assert struct.unpack(">H", resp[8:10])[0] == 200, resp
        assert struct.unpack(">Q", resp[30:38])[0] == 1, resp
        s.send(_storage_frame(5, b"\0" * 17 + b"junk", corr=2))   # PUT_COMMIT, 4 bytes too many
        assert s.recv(256) == b"", "storage answered a malformed request"
    wait_until(lambda: not pid_alive(old), 5 * SLOW, what="storage exits")
    recs = [r for r in node.log_records() if r.get("msg") == "storage request does not decode; exiting"]
    assert len(recs) == 1, recs
    assert recs[0]["level"] == "error" and recs[0]["verb"] == "PUT_COMMIT", recs[0]
    wait_until(lambda: storage_pid(node) not in (0, old) and all_ready(node), 10 * SLOW,
               what="storage restarted")
    wait_until(lambda: node.get("/readyz").status == 200, 10 * SLOW, what="/readyz 200 again")
    assert node.metrics().get("service_restarts_total", service="storage") == 1
    wait_until(lambda: node.gw("GET", obj_path(cid)).status == 200, 10 * SLOW, interval=0.2,
               what="gateway serves again")
