"""Multi-range GETs of /o/{b3} (issue 14): 206 multipart/byteranges (RFC 9110
§14.6) with every part compared to the original bytes, overlapping and
adjacent ranges merged, gateway.max_ranges (more → 416, counted), thousands
of ranges in one header, a corrupt blob (the answer is cut, never wrong),
keep-alive after a multipart body, and curl as an independent client."""
import os
import random
import re

import pytest

from conftest import (CURL, SLOW, assert_envelope, blob_file, flip_byte, obj_path,
                      parse_responses, raw_connect, recv_all, run_tool, stored, wait_until)

KiB = 1024
MiB = 1024 * 1024
GROUP = 64 * KiB
CT_RE = re.compile(r"^multipart/byteranges; boundary=([0-9a-f]{32})$")


def data_of(size, seed):
    return random.Random(seed).randbytes(size)


def metric(node, name, **labels):
    return node.metrics().sum(name, **labels)


def boundary_of(r):
    m = CT_RE.match(r.header("Content-Type") or "")
    assert m, r.headers
    return m.group(1)


def expected_body(boundary, spans, data):
    """The exact multipart body for spans [(s, e)] (inclusive) of data."""
    out = b""
    for i, (s, e) in enumerate(spans):
        out += b"%s--%s\r\nContent-Type: application/octet-stream\r\n" \
               b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (
                   b"\r\n" if i else b"", boundary.encode(), s, e, len(data))
        out += data[s:e + 1]
    return out + b"\r\n--%s--\r\n" % boundary.encode()


def parse_multipart(body, boundary):
    """An independent reading of a multipart/byteranges body (RFC 2046
    §5.1.1): split at the delimiters, each part's headers and bytes.
    Returns [(content_type, (s, e, total), bytes)]."""
    delim = b"--" + boundary.encode()
    assert body.startswith(delim + b"\r\n"), body[:80]
    assert body.endswith(b"\r\n" + delim + b"--\r\n"), body[-80:]
    inner = body[len(delim) + 2:-(len(delim) + 6)]
    parts = []
    for chunk in inner.split(b"\r\n" + delim + b"\r\n"):
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        assert sep, chunk[:200]
        hdrs = {}
        for line in head.decode("latin-1").split("\r\n"):
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        assert set(hdrs) == {"content-type", "content-range"}, hdrs
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", hdrs["content-range"])
        assert m, hdrs
        parts.append((hdrs["content-type"], tuple(int(x) for x in m.groups()), payload))
    return parts


def get_multi(node, cid, data, rng, spans, **kw):
    """GET with Range rng; assert a multipart answer whose parts are exactly
    spans (ascending, merged), each equal to the original bytes."""
    r = node.gw("GET", obj_path(cid), headers={"Range": rng}, **kw)
    assert r.status == 206, r
    assert r.header("Content-Range") is None, r.headers
    assert r.header("Accept-Ranges") == "bytes"
    assert r.header("ETag") == '"%s"' % cid[3:]
    assert int(r.header("Content-Length")) == len(r.body)
    b = boundary_of(r)
    parts = parse_multipart(r.body, b)
    assert [(p[1][0], p[1][1]) for p in parts] == spans, (rng, [p[1] for p in parts])
    for ct, (s, e, total), payload in parts:
        assert ct == "application/octet-stream"
        assert total == len(data)
        assert payload == data[s:e + 1], "part %d-%d differs from the object" % (s, e)
    assert r.body == expected_body(b, spans, data)
    return r


def test_multipart_parts_match(node):
    n = 3 * GROUP + 1000
    data = data_of(n, 1)
    cid = stored(node, data)
    before = metric(node, "range_multipart_total")
    r = get_multi(node, cid, data, "bytes=0-1,5-9", [(0, 1), (5, 9)])
    # group edges, two parts in one group, a part over three groups, a suffix
    get_multi(node, cid, data, "bytes=65530-65540, 65545-65550,131070-150000,-5",
              [(65530, 65540), (65545, 65550), (131070, 150000), (n - 5, n - 1)])
    get_multi(node, cid, data, "bytes=%d-,0-0" % (n - 1), [(0, 0), (n - 1, n - 1)])
    assert metric(node, "range_multipart_total") == before + 3
    # a fresh boundary for every answer
    r2 = get_multi(node, cid, data, "bytes=0-1,5-9", [(0, 1), (5, 9)])
    assert boundary_of(r) != boundary_of(r2)


def test_multipart_large_parts_backpressure(node):
    """Parts past the output's high-water mark (256 KiB): drained and resumed."""
    n = MiB + 12345
    data = data_of(n, 2)
    cid = stored(node, data)
    spans = [(0, 400000), (400002, 900000), (1000000, n - 1)]
    get_multi(node, cid, data, "bytes=1000000-,0-400000,400002-900000", spans, timeout=30)


def test_coalescing(node):
    n = 200000
    data = data_of(n, 3)
    cid = stored(node, data)
    path = obj_path(cid)
    before = metric(node, "range_multipart_total")
    # overlapping, adjacent, duplicate, covered: one range → a plain 206
    for rng, (s, e) in [("bytes=0-9,5-19", (0, 19)), ("bytes=10-19,0-4,3-9", (0, 19)),
                        ("bytes=" + ",".join(["7-7"] * 16), (7, 7)),
                        ("bytes=0-,100-200,-5", (0, n - 1)), ("bytes=-10,%d-%d" % (n - 8, n - 3),
                                                              (n - 10, n - 1)),
                        ("bytes=0-1,%d-" % (10 * n), (0, 1))]:   # the unsatisfiable one dropped
        r = node.gw("GET", path, headers={"Range": rng})
        assert r.status == 206, (rng, r)
        assert r.header("Content-Range") == "bytes %d-%d/%d" % (s, e, n), (rng, r.headers)
        assert r.header("Content-Type") == "application/octet-stream"
        assert r.body == data[s:e + 1], rng
    assert metric(node, "range_multipart_total") == before
    # merged where they touch, the rest ascending whatever the order asked
    get_multi(node, cid, data, "bytes=100-199,0-9,50-59,10-19,55-70,150-250",
              [(0, 19), (50, 70), (100, 250)])
    assert metric(node, "range_multipart_total") == before + 1


def test_head_and_if_range_ignore_ranges(node):
    n = 5000
    data = data_of(n, 4)
    cid = stored(node, data)
    h = node.gw("HEAD", obj_path(cid), headers={"Range": "bytes=0-1,5-9"})
    assert h.status == 200 and h.body == b"", h
    assert h.header("Content-Length") == str(n)
    assert h.header("Content-Type") == "application/octet-stream"
    assert h.header("Content-Range") is None
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-1,5-9",
                                               "If-Range": '"%s"' % ("1" * 64)})
    assert r.status == 200 and r.body == data, r
    get_multi(node, cid, data, "bytes=0-1,5-9", [(0, 1), (5, 9)])


def test_unsatisfiable_and_malformed_counted(node):
    n = 5000
    data = data_of(n, 5)
    cid = stored(node, data)
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=6000-,7000-7010"})
    assert_envelope(r, 416, "range_not_satisfiable", retryable=None)
    assert r.header("Content-Range") == "bytes */%d" % n
    assert metric(node, "range_refused_total", reason="unsatisfiable") == 1
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-1,5-x"})
    assert r.status == 200 and r.body == data, r
    assert metric(node, "range_refused_total", reason="malformed") == 1
    assert metric(node, "range_refused_total", reason="too_many") == 0


def many_ranges(count, limit=15000):
    """'bytes=0-0,2-2,...' with count tiny ranges (well-formed)."""
    v = "bytes=" + ",".join("%d-%d" % (2 * i, 2 * i) for i in range(count))
    assert len(v) < limit, len(v)
    return v


def test_max_ranges_cap_and_reload(node_factory):
    node = node_factory({"gateway": {"max_ranges": 4}})
    n = 5000
    data = data_of(n, 6)
    cid = stored(node, data)
    get_multi(node, cid, data, "bytes=0-0,2-2,4-4,6-6", [(0, 0), (2, 2), (4, 4), (6, 6)])
    # five range-specs, even ones that would merge into one: refused as sent
    for rng in ("bytes=0-0,2-2,4-4,6-6,8-8", "bytes=" + ",".join(["0-0"] * 5)):
        r = node.gw("GET", obj_path(cid), headers={"Range": rng})
        j = assert_envelope(r, 416, "range_not_satisfiable", retryable=None)
        assert "more than 4 ranges" in j["message"], j
        assert r.header("Content-Range") == "bytes */%d" % n
    assert metric(node, "range_refused_total", reason="too_many") == 2
    # live reload raises the cap
    node.write_config({"gateway": {"max_ranges": 8}})
    assert node.post("/api/v1/reload").status == 202
    spans = [(2 * i, 2 * i) for i in range(5)]
    wait_until(lambda: node.gw("GET", obj_path(cid),
                               headers={"Range": "bytes=0-0,2-2,4-4,6-6,8-8"}).status == 206,
               5 * SLOW, what="max_ranges 8 applied")
    get_multi(node, cid, data, "bytes=0-0,2-2,4-4,6-6,8-8", spans)


def test_out_of_bounds_max_ranges_refused(node_factory):
    for bad in (0, 257):
        node = node_factory({"gateway": {"max_ranges": bad}}, start=False)
        node.spawn()
        assert node.wait_exit(10 * SLOW) == 2   # a config error
        assert "gateway.max_ranges" in node.log()


def test_thousands_of_ranges(node):
    n = 64 * KiB
    data = data_of(n, 7)
    cid = stored(node, data)
    big = many_ranges(1500)
    # on a kept-alive connection: the refusal, then the object, then a
    # maximal multipart answer (16 ranges, the default cap)
    spans = [(2 * i, 2 * i) for i in range(16)]
    reqs = [big, None, ",".join(["bytes=0-0"] + ["%d-%d" % s for s in spans[1:]])]
    s = raw_connect(node.gateway_port)
    try:
        s.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
            obj_path(cid).encode(), b"Range: %s\r\n" % v.encode() if v else b"") for v in reqs) +
            b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % obj_path(cid).encode())
        raw, eof = recv_all(s, timeout=10 * SLOW)
    finally:
        s.close()
    rs, rest = parse_responses(raw)
    assert [r.status for r in rs] == [416, 200, 206, 200] and rest == b"" and eof, rs
    assert rs[0].header("Content-Range") == "bytes */%d" % n
    assert b"more than 16 ranges" in rs[0].body
    assert rs[1].body == data and rs[3].body == data
    assert rs[2].body == expected_body(boundary_of(rs[2]), spans, data)
    assert metric(node, "range_refused_total", reason="too_many") == 1
    # a malformed one among thousands: ignored (whole object), counted as such
    r = node.gw("GET", obj_path(cid), headers={"Range": big[:-3] + "x-1"})
    assert r.status == 200 and r.body == data, r
    assert metric(node, "range_refused_total", reason="malformed") == 1
    assert metric(node, "range_refused_total", reason="too_many") == 1
    # past the header cap: 431 from the HTTP layer, as for any header
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=" + "0-0," * 5000})
    assert r.status == 431, r
    assert node.running()


def stream_get(port, path, rng, timeout=20.0):
    s = raw_connect(port)
    try:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nRange: %s\r\nConnection: close\r\n\r\n" % (
            path.encode(), rng.encode()))
        raw, eof = recv_all(s, timeout=timeout * SLOW)
    finally:
        s.close()
    end = raw.find(b"\r\n\r\n")
    assert end > 0, raw[:200]
    head = raw[:end].decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    return int(head[0].split()[1]), hdrs, raw[end + 4:], eof


def test_corrupt_group_cuts_multipart(node):
    """A part in a corrupt group: the parts before it are served whole and
    right, the bad part's head and bytes never leave, the connection is cut,
    the object is quarantined and the mismatch counted."""
    n = 3 * MiB
    data = data_of(n, 8)
    cid = stored(node, data)
    bad = 20 * GROUP + 77
    flip_byte(blob_file(node, cid), bad)
    spans = [(0, 99), (5 * GROUP, 6 * GROUP + 10), (bad - 10, bad + 10), (30 * GROUP, 30 * GROUP + 5)]
    rng = "bytes=" + ",".join("%d-%d" % s for s in spans)
    status, hdrs, body, eof = stream_get(node.gateway_port, obj_path(cid), rng)
    assert status == 206, hdrs
    m = CT_RE.match(hdrs["content-type"])
    assert m, hdrs
    want = expected_body(m.group(1), spans, data)
    assert hdrs["content-length"] == str(len(want))
    assert eof, "connection not closed after the bad group"
    assert len(body) < len(want), "a full-length body was served for a corrupt object"
    assert body == want[:len(body)], "bytes served before the cut differ from the object"
    # the bad part's delimiter is never sent: it follows only a verified group
    bad_head = want.index(b"Content-Range: bytes %d-" % spans[2][0])
    assert len(body) <= want.rindex(b"\r\n--", 0, bad_head), (len(body), bad_head)
    wait_until(lambda: metric(node, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="integrity_fail_total{object=blob} == 1")
    assert metric(node, "rejected_total", reason="integrity") == 1
    # quarantined: 502 before any status line, for multipart too
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=0-1,5-9"})
    assert_envelope(r, 502, "integrity", retryable=None)
    assert metric(node, "integrity_fail_total", object="blob") == 1


def test_corrupt_first_group_502(node):
    n = 3 * GROUP
    data = data_of(n, 9)
    cid = stored(node, data)
    flip_byte(blob_file(node, cid), GROUP + 3)
    r = node.gw("GET", obj_path(cid), headers={"Range": "bytes=%d-%d,%d-" % (GROUP, GROUP + 5,
                                                                             2 * GROUP)})
    assert_envelope(r, 502, "integrity", retryable=None)
    assert data[GROUP:GROUP + 6] not in r.body
    wait_until(lambda: metric(node, "integrity_fail_total", object="blob") == 1, 2 * SLOW,
               what="integrity_fail_total == 1")


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_curl_multi_range(node, tmp_dir):
    n = 100000
    data = data_of(n, 10)
    cid = stored(node, data)
    out = os.path.join(tmp_dir, "body")
    hdr = os.path.join(tmp_dir, "headers")
    p = run_tool([CURL, "-sS", "--max-time", str(int(30 * SLOW)), "-r", "0-1,5-9,99990-",
                  "-D", hdr, "-o", out,
                  "http://127.0.0.1:%d%s" % (node.gateway_port, obj_path(cid))], timeout=60)
    assert p.returncode == 0, p.stderr
    head = open(hdr, "rb").read().decode("latin-1")
    assert head.startswith("HTTP/1.1 206"), head
    m = re.search(r"(?im)^content-type: (.*?)\r?$", head)
    b = CT_RE.match(m.group(1)).group(1)
    body = open(out, "rb").read()
    parts = parse_multipart(body, b)
    assert [p_[1][:2] for p_ in parts] == [(0, 1), (5, 9), (99990, n - 1)]
    for _, (s, e, _), payload in parts:
        assert payload == data[s:e + 1]
