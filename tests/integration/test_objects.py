"""Gateway object routes: POST/PUT /o, PUT/GET/HEAD /o/{b3}, ranges, 304,
compressed uploads, size caps, verify-before-serve (issue 3)."""
import gzip
import os
import random
import subprocess
import time

import pytest

from conftest import (CURL, SANITIZED, SLOW, ZSTD, assert_envelope, b3sum_cid, blob_file, cid_hex, flip_byte,
                      gateway_pids, obj_path, parse_responses, put_object, raw_connect, recv_all,
                      run_tool, stored, vm_rss_kib, wait_until)

KiB = 1024
MiB = 1024 * 1024
GROUP = 64 * KiB
SIZES = [0, 1, 1023, 1024, 1025, 65535, 65536, 65537, MiB]
BIG = {"storage": {"max_object": "64MiB"}}
CACHE_CONTROL = "public, max-age=31536000, immutable"


def data_of(size, seed):
    return random.Random(seed).randbytes(size)


def envelope(r, status, code=None):
    return assert_envelope(r, status, code, retryable=None)


def assert_object_headers(r, cid, length):
    assert r.header("Content-Length") == str(length), r
    assert r.header("ETag") == '"%s"' % cid_hex(cid), r
    assert r.header("Accept-Ranges") == "bytes", r
    assert r.header("Cache-Control") == CACHE_CONTROL, r


def get_ok(node, cid, data, timeout=30.0):
    r = node.gw("GET", obj_path(cid), timeout=timeout)
    assert r.status == 200, r
    assert_object_headers(r, cid, len(data))
    assert r.body == data, "GET body differs from the uploaded bytes (%d vs %d bytes)" % (
        len(r.body), len(data))
    return r


def curl(*args, data_file=None, timeout=60.0):
    argv = [CURL, "-sS", "--max-time", str(int(timeout * SLOW))] + list(args)
    return run_tool(argv, timeout=timeout + 10)


def metric(node, name, **labels):
    return node.metrics().sum(name, **labels)


# ---------------------------------------------------------------- round trips

def test_roundtrip_python_sizes(node):
    for i, size in enumerate(SIZES):
        data = data_of(size, i)
        method = "POST" if i % 2 == 0 else "PUT"
        r = put_object(node, data, method=method)
        assert r.status == 201, (size, r)
        assert r.header("Content-Type") == "application/json"
        cid = b3sum_cid(data)
        assert r.json() == {"cid": cid}, (size, r)
        assert r.header("Location") == obj_path(cid), r
        get_ok(node, cid, data)
        # the same bytes again: already there → 200 and the same id, by either method
        r2 = put_object(node, data, method="PUT" if method == "POST" else "POST")
        assert r2.status == 200, (size, r2)
        assert r2.json() == {"cid": cid}
        assert r2.header("Location") is None, r2
    m = node.metrics()
    assert m.sum("integrity_fail_total") == 0


def test_roundtrip_curl_sizes(node, tmp_dir):
    if not CURL:
        pytest.skip("curl not installed")
    for i, size in enumerate(SIZES):
        data = data_of(size, 100 + i)
        src = os.path.join(tmp_dir, "in-%d" % size)
        with open(src, "wb") as f:
            f.write(data)
        url = "http://%s/o" % node.gateway_addr
        p = curl("-o", os.path.join(tmp_dir, "put-%d" % size), "-w", "%{http_code}",
                 "-H", "Content-Type: application/octet-stream", "--data-binary", "@" + src,
                 "-X", "POST" if i % 2 else "PUT", url)
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"201", (size, p.stdout)
        cid = b3sum_cid(data)
        with open(os.path.join(tmp_dir, "put-%d" % size), "rb") as f:
            assert f.read() == b'{"cid":"%s"}' % cid.encode(), size
        out = os.path.join(tmp_dir, "out-%d" % size)
        p = curl("-o", out, "-w", "%{http_code} %{size_download}",
                 "http://%s%s" % (node.gateway_addr, obj_path(cid)))
        assert p.returncode == 0, p.stderr
        assert p.stdout == b"200 %d" % size, (size, p.stdout)
        with open(out, "rb") as f:
            assert f.read() == data, size


def test_roundtrip_big_objects(node_factory, tmp_dir):
    """storage.max_object raised: 5 MiB + 17 and 64 MiB, python and curl."""
    n = node_factory(BIG)
    for size, seed in ((5 * MiB + 17, 1), (64 * MiB, 2)):
        data = data_of(size, seed)
        cid = b3sum_cid(data)
        r = put_object(n, data, timeout=120)
        assert r.status == 201 and r.json() == {"cid": cid}, r
        get_ok(n, cid, data, timeout=120)
        if CURL:
            out = os.path.join(tmp_dir, "out")
            p = curl("-o", out, "-w", "%{http_code} %{size_download}",
                     "http://%s%s" % (n.gateway_addr, obj_path(cid)), timeout=120)
            assert p.stdout == b"200 %d" % size, (p.stdout, p.stderr)
            assert b3sum_cid(open(out, "rb").read()) == cid
            os.unlink(out)
    # curl upload of a fresh 5 MiB + 17 object (curl sends Expect: 100-continue)
    if CURL:
        data = data_of(5 * MiB + 17, 3)
        src = os.path.join(tmp_dir, "big-in")
        with open(src, "wb") as f:
            f.write(data)
        p = curl("-w", "\n%{http_code}", "-H", "Content-Type: application/octet-stream",
                 "--data-binary", "@" + src, "http://%s/o" % n.gateway_addr, timeout=120)
        body, _, code = p.stdout.rpartition(b"\n")
        assert code == b"201", (p.stdout, p.stderr)
        assert body == b'{"cid":"%s"}' % b3sum_cid(data).encode()
        get_ok(n, b3sum_cid(data), data, timeout=120)


def test_put_with_id(node):
    data = data_of(70000, 7)
    cid = b3sum_cid(data)
    r = put_object(node, data, method="PUT", path=obj_path(cid))
    assert r.status == 201 and r.json() == {"cid": cid}, r
    r = put_object(node, data, method="PUT", path=obj_path(cid))
    assert r.status == 200 and r.json() == {"cid": cid}, r
    get_ok(node, cid, data)


def test_put_with_id_mismatch_422_nothing_stored(node):
    body = data_of(3000, 8)
    other = data_of(3000, 9)
    wrong = b3sum_cid(other)
    r = put_object(node, body, method="PUT", path=obj_path(wrong))
    envelope(r, 422, "hash_mismatch")
    # neither the claimed id nor the body's real id was stored
    envelope(node.gw("GET", obj_path(wrong)), 404, "not_found")
    envelope(node.gw("GET", obj_path(b3sum_cid(body))), 404, "not_found")
    if os.path.isdir(os.path.join(node.data_dir, "objects")):
        for d, _, files in os.walk(os.path.join(node.data_dir, "objects")):
            assert files == [], (d, files)


# ---------------------------------------------------------------- statuses and headers

@pytest.mark.parametrize("ident", [
    "b3:" + "A" * 64,                      # uppercase
    "b3:" + "ab" * 31 + "aB",              # one uppercase digit
    "b3:" + "a" * 63,                      # short
    "b3:" + "a" * 65,                      # long
    "b3:" + "g" * 64,                      # not hex
    "b3:",
    "sha256:" + "a" * 64,
    "B3:" + "a" * 64,
])
def test_malformed_id_400(node, ident):
    for method in ("GET", "HEAD"):
        r = node.gw(method, "/o/" + ident)
        assert r.status == 400, (ident, method, r)
        if method == "GET":
            envelope(r, 400, "bad_request")
        else:
            assert r.body == b""


def test_unknown_id_404(node):
    cid = b3sum_cid(b"never stored")
    envelope(node.gw("GET", obj_path(cid)), 404, "not_found")
    r = node.gw("HEAD", obj_path(cid))
    assert r.status == 404 and r.body == b"", r


def test_get_head_headers_and_304(node):
    data = data_of(100000, 11)
    cid = stored(node, data)
    r = get_ok(node, cid, data)
    etag = r.header("ETag")
    h = node.gw("HEAD", obj_path(cid))
    assert h.status == 200 and h.body == b"", h
    assert_object_headers(h, cid, len(data))
    for inm in (etag, '"%s", %s' % ("0" * 64, etag), "W/" + etag, "*"):
        r = node.gw("GET", obj_path(cid), headers={"If-None-Match": inm})
        assert r.status == 304, (inm, r)
        assert r.body == b""
        assert r.header("ETag") == etag
        assert r.header("Cache-Control") == CACHE_CONTROL
    # a different tag: the full object
    r = node.gw("GET", obj_path(cid), headers={"If-None-Match": '"%s"' % ("0" * 64)})
    assert r.status == 200 and r.body == data
    # If-None-Match wins over Range
    r = node.gw("GET", obj_path(cid), headers={"If-None-Match": etag, "Range": "bytes=0-9"})
    assert r.status == 304 and r.body == b"", r


def test_ranges_at_group_boundaries(node):
    n = 3 * GROUP + 1000                  # four groups, the last one short
    data = data_of(n, 12)
    cid = stored(node, data)
    cases = [
        ("bytes=65535-65536", 65535, 65536),     # straddles groups 0|1
        ("bytes=65536-131071", 65536, 131071),   # exactly group 1
        ("bytes=-1", n - 1, n - 1),              # last byte (suffix)
        ("bytes=0-0", 0, 0),                     # first byte
        ("bytes=%d-" % (n - 1), n - 1, n - 1),   # S- at the last byte
        ("bytes=0-", 0, n - 1),
        ("bytes=-%d" % (n + 5), 0, n - 1),       # suffix longer than the object
        ("bytes=131000-%d" % (10 * n), 131000, n - 1),  # end clamped
        ("bytes=196607-196608", 196607, 196608),  # groups 2|3
    ]
    for rng, s, e in cases:
        r = node.gw("GET", obj_path(cid), headers={"Range": rng})
        assert r.status == 206, (rng, r)
        assert r.header("Content-Range") == "bytes %d-%d/%d" % (s, e, n), (rng, r.headers)
        assert r.header("Content-Length") == str(e - s + 1), (rng, r.headers)
        assert r.header("ETag") == '"%s"' % cid_hex(cid)
        assert r.body == data[s:e + 1], rng
    # Range is defined for GET only: HEAD ignores it (RFC 9110 §14.2)
    h = node.gw("HEAD", obj_path(cid), headers={"Range": "bytes=65535-65536"})
    assert h.status == 200 and h.body == b"", h
    assert_object_headers(h, cid, n)
    assert h.header("Content-Range") is None
    # a malformed Range is ignored: the whole object
    for bad in ("bytes=5-2", "items=0-1", "bytes=abc"):
        r = node.gw("GET", obj_path(cid), headers={"Range": bad})
        assert r.status == 200 and r.body == data, (bad, r.status)
    # If-Range: the exact ETag keeps the range, anything else drops it
    etag = '"%s"' % cid_hex(cid)
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-0", "If-Range": etag})
    assert r.status == 206 and r.body == data[:1], r
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-0",
                                               "If-Range": '"%s"' % ("1" * 64)})
    assert r.status == 200 and r.body == data, r.status


@pytest.mark.parametrize("rng", [
    "bytes=%d-" % (3 * GROUP + 1000),              # starts at len
    "bytes=%d-%d" % (10 ** 9, 10 ** 9 + 5),
    "bytes=%d-,%d-" % (10 ** 6, 10 ** 7),          # several, none satisfiable
    "bytes=-0",                                    # empty suffix
])
def test_range_416(node, rng):
    n = 3 * GROUP + 1000
    cid = stored(node, data_of(n, 12))
    r = node.gw("GET", obj_path(cid), headers={"Range": rng})
    envelope(r, 416, "range_not_satisfiable")
    assert r.header("Content-Range") == "bytes */%d" % n, r.headers


def test_range_on_empty_object_416(node):
    cid = stored(node, b"")
    for rng in ("bytes=0-0", "bytes=0-", "bytes=-1"):
        r = node.gw("GET", obj_path(cid), headers={"Range": rng})
        envelope(r, 416, "range_not_satisfiable")
        assert r.header("Content-Range") == "bytes */0"
    get_ok(node, cid, b"")


def test_pipelined_gets_keep_alive(node):
    a, b = data_of(5000, 21), data_of(GROUP + 3, 22)
    ca, cb = stored(node, a), stored(node, b)
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % obj_path(c).encode()
                           for c in (ca, cb, ca)) +
                  b"HEAD %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % obj_path(cb).encode())
        raw, eof = recv_all(s, timeout=10)
    finally:
        s.close()
    rs, rest = parse_responses(raw, head_flags=[False, False, False, True])
    assert [r.status for r in rs] == [200, 200, 200, 200] and rest == b"" and eof, rs
    assert [r.body for r in rs] == [a, b, a, b""]


# ---------------------------------------------------------------- caps and encodings

def test_default_cap_takes_a_real_file(node):
    """The default storage.max_object is 1 GiB (the 1 MiB of the spec is the
    OAP frame cap): a 3 MB file right after start is stored, not refused."""
    data = data_of(3 * MiB + 7, 29)
    r = put_object(node, data)
    assert r.status == 201 and r.json() == {"cid": b3sum_cid(data)}, r
    get_ok(node, b3sum_cid(data), data)


def test_oversize_413(node_factory):
    node = node_factory({"storage": {"max_object": "1MiB"}})
    before = metric(node, "rejected_total", reason="413")
    r = put_object(node, b"z" * (MiB + 1))
    envelope(r, 413, "payload_too_large")
    # chunked upload passing the cap
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"POST /o HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n" % (64 * KiB) + b"q" * (64 * KiB) + b"\r\n"
        try:
            for _ in range(17):
                s.sendall(piece)
            s.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        raw, _ = recv_all(s, timeout=10)
    finally:
        s.close()
    rs, _ = parse_responses(raw)
    assert len(rs) == 1 and rs[0].status == 413, raw[:300]
    assert metric(node, "rejected_total", reason="413") == before + 2
    # exactly the cap is fine
    stored(node, b"z" * MiB)


def test_max_object_live_reload(node_factory):
    node = node_factory({"storage": {"max_object": "1MiB"}})
    data = data_of(MiB + 10, 31)
    envelope(put_object(node, data), 413, "payload_too_large")
    node.write_config({"storage": {"max_object": "2MiB"}})
    assert node.post("/api/v1/reload").status == 202
    wait_until(lambda: put_object(node, data).status == 201, 5 * SLOW,
               what="2 MiB cap applied")
    get_ok(node, b3sum_cid(data), data)


def test_gzip_upload(node):
    data = data_of(200 * KiB, 41) + b"abc" * 1000
    cid = b3sum_cid(data)
    r = put_object(node, gzip.compress(data), headers={"Content-Encoding": "gzip"})
    assert r.status == 201 and r.json() == {"cid": cid}, r
    get_ok(node, cid, data)


def test_zstd_upload(node):
    if not ZSTD:
        pytest.skip("zstd CLI not installed")
    data = data_of(150 * KiB, 42) + b"xyz" * 3000
    comp = subprocess.run([ZSTD, "-q", "-c", "-"], input=data, capture_output=True,
                          check=True).stdout
    cid = b3sum_cid(data)
    r = put_object(node, comp, headers={"Content-Encoding": "zstd"})
    assert r.status == 201 and r.json() == {"cid": cid}, r
    get_ok(node, cid, data)


def test_bad_gzip_400(node):
    r = put_object(node, b"\x1f\x8b\x08\x00garbage-not-deflate" * 10,
                   headers={"Content-Encoding": "gzip"})
    envelope(r, 400, "bad_request")
    # truncated stream: not stored
    data = data_of(50 * KiB, 43)
    r = put_object(node, gzip.compress(data)[:-100], headers={"Content-Encoding": "gzip"})
    envelope(r, 400, "bad_request")
    # trailing bytes after the gzip member
    r = put_object(node, gzip.compress(data) + b"extra", headers={"Content-Encoding": "gzip"})
    envelope(r, 400, "bad_request")
    assert node.gw("GET", obj_path(b3sum_cid(data))).status == 404


def test_unknown_content_encoding_415(node):
    r = put_object(node, b"hello", headers={"Content-Encoding": "br"})
    envelope(r, 415, "unsupported_media_type")
    assert r.header("Accept-Encoding") == "gzip, zstd", r
    assert metric(node, "rejected_total", reason="415") == 1
    assert node.gw("GET", obj_path(b3sum_cid(b"hello"))).status == 404
    # identity is fine
    r = put_object(node, b"hello", headers={"Content-Encoding": "identity"})
    assert r.status == 201 and r.json() == {"cid": b3sum_cid(b"hello")}, r


def bombs():
    zeros = bytes(32 * MiB)
    out = [("gzip", gzip.compress(zeros, 9))]
    if ZSTD:
        out.append(("zstd", subprocess.run([ZSTD, "-q", "-19", "-c", "-"], input=zeros,
                                           capture_output=True, check=True).stdout))
    return out


def test_decompression_bomb_413(node_factory):
    # max_object raised so that only the decompression caps can refuse
    n = node_factory(BIG)
    k = 0
    for enc, comp in bombs():
        assert len(comp) < 64 * KiB, (enc, len(comp))
        t0 = time.monotonic()
        r = put_object(n, comp, headers={"Content-Encoding": enc})
        envelope(r, 413, "payload_too_large")
        assert "compress" in r.json()["message"], r.json()
        assert time.monotonic() - t0 < 5 * SLOW
        k += 1
        assert metric(n, "rejected_total", reason="decompress") == k
    assert n.metrics().sum("http_requests_total", code="201") == 0
    # nothing was stored
    objs = os.path.join(n.data_dir, "objects")
    if os.path.isdir(objs):
        assert [f for _, _, fs in os.walk(objs) for f in fs] == []


def test_decompress_absolute_cap_32mib(node_factory):
    """Ratio ~3:1 (below 10×) but 40 MiB decoded > 32 MiB → 413 decompress."""
    n = node_factory(BIG)
    raw = os.urandom(40 * MiB).translate(bytes(b"ACGT"[i & 3] for i in range(256)))
    comp = gzip.compress(raw, 1)
    assert len(comp) * 10 > len(raw), len(comp)
    r = put_object(n, comp, headers={"Content-Encoding": "gzip"}, timeout=60)
    envelope(r, 413, "payload_too_large")
    assert metric(n, "rejected_total", reason="decompress") == 1


# ---------------------------------------------------------------- verify before serve

def stream_get(port, path, timeout=20.0):
    """GET over a raw socket, reading until EOF. Returns (status, headers dict, body, eof)."""
    s = raw_connect(port)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        raw, eof = recv_all(s, timeout=timeout)
    finally:
        s.close()
    end = raw.find(b"\r\n\r\n")
    assert end > 0, raw[:200]
    head = raw[:end].decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return int(head[0].split()[1]), hdrs, raw[end + 4:], eof


def test_flipped_byte_small_object_502(node):
    data = data_of(5000, 51)
    cid = stored(node, data)
    get_ok(node, cid, data)
    flip_byte(blob_file(node, cid), 1234)
    r = node.gw("GET", obj_path(cid))
    j = envelope(r, 502, "integrity")
    assert j["retryable"] is False
    assert data not in r.body
    wait_until(lambda: metric(node, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="integrity_fail_total{object=blob} == 1")
    # quarantined: the next request is refused at once, no second mismatch counted
    t0 = time.monotonic()
    envelope(node.gw("GET", obj_path(cid)), 502, "integrity")
    assert time.monotonic() - t0 < 0.5 * SLOW
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-0"})
    assert r.status == 502, r
    assert metric(node, "integrity_fail_total", object="blob") == 1
    assert metric(node, "rejected_total", reason="integrity") == 1
    assert cid_hex(cid) in node.log()
    # other objects are still served
    other = data_of(4000, 52)
    get_ok(node, stored(node, other), other)


def test_verified_groups_served_from_ram(node_factory):
    """Groups that passed their check are served again from the worker's RAM
    (hits, no read); a write to the blob is noticed on the next request; with
    gateway.verified_cache 0 every request reads and checks (no lookups)."""
    n = node_factory({"storage": {"max_object": "4MiB"}, "gateway": {"workers": 1}})
    size = 3 * 64 * 1024 + 100                            # four groups
    data = data_of(size, 57)
    cid = stored(n, data)
    # Groups are kept only for a listed handle, and a handle is listed only
    # once storage's removal epoch (WATCH) is known; on a loaded machine that
    # answer can come after any fixed number of reads. Read until one read is
    # served wholly from RAM (all four groups hit), then count.
    def hits():
        return metric(n, "verified_cache_lookups_total", result="hit") or 0

    def warm():
        before = hits()
        get_ok(n, cid, data)
        return hits() >= before + 4
    wait_until(warm, 10 * SLOW, interval=0.05, what="a read served all four groups from RAM")
    hits0 = hits()
    for _ in range(3):
        get_ok(n, cid, data)
    assert hits() >= hits0 + 12
    assert metric(n, "verified_cache_bytes") >= size
    time.sleep(0.05)                                      # another clock tick for the file's times
    flip_byte(blob_file(n, cid), 2 * 64 * 1024 + 7)
    status, _, body, _ = stream_get(n.gateway_port, obj_path(cid))
    assert status == 200 and len(body) < size             # cut before the bad group, never
    assert body == data[:len(body)]                       # the kept bytes as if nothing happened
    wait_until(lambda: metric(n, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="the write was noticed: integrity_fail_total{object=blob} == 1")
    envelope(n.gw("GET", obj_path(cid)), 502, "integrity")   # quarantined
    assert (metric(n, "verified_cache_bytes") or 0) == 0   # and its groups dropped

    off = node_factory({"gateway": {"workers": 1, "verified_cache": 0}})
    small = data_of(5000, 58)
    cid2 = stored(off, small)
    for _ in range(3):
        get_ok(off, cid2, small)
    assert not metric(off, "verified_cache_lookups_total", result="hit")
    assert not metric(off, "verified_cache_lookups_total", result="miss")


def test_flipped_byte_large_object_cuts_connection(node_factory):
    n = node_factory({"storage": {"max_object": "4MiB"}})
    size = 3 * MiB
    data = data_of(size, 53)
    cid = stored(n, data)
    get_ok(n, cid, data)
    flip_byte(blob_file(n, cid), size - 10)          # in the last group
    # a range that does not touch the bad group is verified and served
    r = n.gw("GET", obj_path(cid), headers={"Range": "bytes=0-65535"})
    assert r.status == 206 and r.body == data[:GROUP], r
    assert metric(n, "integrity_fail_total", object="blob") == 0
    # the whole object: 200 starts, the body is never completed
    status, hdrs, body, eof = stream_get(n.gateway_port, obj_path(cid))
    assert status == 200, hdrs
    assert hdrs["content-length"] == str(size)
    assert eof, "connection not closed after the bad group"
    assert len(body) < size, "a body of full length was served for a corrupt object"
    assert body == data[:len(body)], "bytes served before the cut differ from the object"
    assert len(body) <= size - (size % GROUP or GROUP), len(body)   # bad group never sent
    wait_until(lambda: metric(n, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="integrity_fail_total{object=blob} == 1")
    # quarantined: 502 before the status line, at once
    t0 = time.monotonic()
    envelope(n.gw("GET", obj_path(cid)), 502, "integrity")
    assert time.monotonic() - t0 < 0.5 * SLOW
    assert metric(n, "integrity_fail_total", object="blob") == 1
    assert metric(n, "rejected_total", reason="integrity") == 1


def test_flipped_byte_in_range_group_502(node):
    """A range whose first group is corrupt fails before the status line."""
    n_ = 2 * GROUP + 10
    data = data_of(n_, 54)
    cid = stored(node, data)
    flip_byte(blob_file(node, cid), GROUP + 5)
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=%d-%d" % (GROUP, GROUP + 99)})
    envelope(r, 502, "integrity")
    wait_until(lambda: metric(node, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="integrity_fail_total == 1")


def test_get_64mib_memory_bounded(node_factory):
    env = None
    if SANITIZED:
        # ASan keeps freed blocks in a quarantine (256 MiB by default): every
        # output buffer the server frees would count as growth. Measure the
        # live heap instead.
        opts = os.environ.get("ASAN_OPTIONS", "")
        env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=0"}
    # The verified groups the worker keeps (gateway.verified_cache) are held
    # to their bound: 4 MiB of them count against the limit below.
    n = node_factory({"storage": {"max_object": "64MiB"}, "gateway": {"verified_cache": "4MiB"}},
                     env=env)
    data = data_of(64 * MiB, 61)
    cid = stored(n, data, timeout=120)
    warm = data_of(MiB, 62)
    get_ok(n, stored(n, warm), warm)                       # first-use allocations
    pids = gateway_pids(n)
    assert len(pids) == 1

    def rss():
        return sum(vm_rss_kib(p) for p in pids)

    base = rss()
    peak = base
    s = raw_connect(n.gateway_port)
    got = 0
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % obj_path(cid).encode())
        s.settimeout(30 * SLOW)
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        got = len(head) - head.index(b"\r\n\r\n") - 4
        last_sample = 0
        while True:
            chunk = s.recv(256 * KiB)
            if not chunk:
                break
            got += len(chunk)
            if got - last_sample >= MiB:
                last_sample = got
                peak = max(peak, rss())
                time.sleep(0.002)         # a slowish reader: the server must not buffer ahead
    finally:
        s.close()
    assert got == 64 * MiB
    limit = (16 if SANITIZED else 8) * 1024 + 4 * 1024
    assert peak - base < limit, "gateway RSS grew %d KiB while serving 64 MiB" % (peak - base)
    assert metric(n, "verified_cache_bytes") <= 4 * MiB


def test_keepalive_idle_deadline_after_object_get(node_factory):
    """timeouts.idle applies after an object answer exactly as after /healthz."""
    n = node_factory({"timeouts": {"idle": "500ms"}})
    cid = stored(n, b"x" * 100)
    for path in ("/healthz", obj_path(cid)):
        s = raw_connect(n.gateway_port)
        try:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
            t0 = time.monotonic()
            data, eof = recv_all(s, timeout=5)
            took = time.monotonic() - t0
        finally:
            s.close()
        rs, rest = parse_responses(data)
        assert [r.status for r in rs] == [200] and rest == b"", (path, data[:200])
        assert eof, "%s: idle keep-alive connection not closed after 500ms" % path
        assert 0.4 < took < 2.0 * SLOW, (path, took)


def test_shutdown_not_held_by_idle_keepalive_after_get(node):
    cid = stored(node, b"y" * 100)
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % obj_path(cid).encode())
        data, _ = recv_all(s, timeout=3, until=lambda b: b.endswith(b"y" * 100))
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        t0 = time.monotonic()
        assert node.stop() == 0
        took = time.monotonic() - t0
    finally:
        s.close()
    # an idle keep-alive connection is closed at once on drain (docs/api.md)
    assert took < 1.0 * SLOW, "shutdown took %.2fs with one idle keep-alive connection" % took
    assert "drain deadline reached" not in node.log()
