"""The Media facet: GET/HEAD /media/{cid} serves an object with the
Content-Type recorded at upload (given, or sniffed with libmagic), ranges,
Content-Disposition on ?download=, the same verification as /o; and every
refusal (docs/media.md)."""
import os
import signal

from conftest import (assert_envelope, b3sum_cid, blob_file, flip_byte, storage_pid,
                      stored)

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01"
       b"\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00"
       b"\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


def media(node, cid, query="", method="GET", headers=None):
    return node.gw(method, "/media/%s%s" % (cid, query), headers=headers or {})


def test_given_type_is_recorded_and_served(node):
    data = b"hello media\n"
    cid = stored(node, data, headers={"Content-Type": "Text/Plain; Charset=UTF-8; format=flowed"})
    r = media(node, cid)
    assert r.status == 200, r
    assert r.body == data
    # normalised: lowercase type, only the charset parameter kept
    assert r.header("Content-Type") == "text/plain; charset=utf-8"
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.header("ETag") == '"%s"' % cid[3:]
    assert r.header("Content-Disposition") is None
    # /o stays octet-stream
    assert node.gw("GET", "/o/" + cid).header("Content-Type") == "application/octet-stream"
    assert node.metrics().get("media_type_total", source="given") >= 1


def test_sniffed_when_none_or_octet_stream(node):
    cid = stored(node, PNG)   # put_object sends application/octet-stream
    r = media(node, cid)
    assert r.status == 200, r
    assert r.header("Content-Type") == "image/png"
    assert r.body == PNG
    r = node.gw("POST", "/o", body=b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", headers={})
    assert r.status == 201, r
    assert media(node, r.json()["cid"]).header("Content-Type") == "application/pdf"
    assert node.metrics().get("media_type_total", source="sniffed") >= 2


def test_malformed_type_is_sniffed_not_echoed(node):
    data = b"<html><body>x</body></html>\n"
    cid = stored(node, data, headers={"Content-Type": "text/html\"><script>"})
    r = media(node, cid)
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/html")
    assert "<script>" not in r.header("Content-Type")
    assert node.metrics().get("media_type_total", source="malformed") == 1


def test_first_recorded_type_stays(node):
    data = b"first type wins"
    cid = stored(node, data, headers={"Content-Type": "text/csv"})
    stored(node, data, headers={"Content-Type": "image/gif"})
    assert media(node, cid).header("Content-Type") == "text/csv"


def test_unknown_bytes_default_to_octet_stream(node):
    data = os.urandom(3000)
    cid = stored(node, data)
    r = media(node, cid)
    assert r.status == 200
    assert r.header("Content-Type") == "application/octet-stream"
    assert node.metrics().get("media_type_total", source="default") >= 1


def test_ranges_and_head(node):
    data = bytes(range(256)) * 1024   # 256 KiB, several groups
    cid = stored(node, data, headers={"Content-Type": "video/mp4"})
    r = media(node, cid, headers={"Range": "bytes=70000-140000"})
    assert r.status == 206, r
    assert r.body == data[70000:140001]
    assert r.header("Content-Range") == "bytes 70000-140000/%d" % len(data)
    assert r.header("Content-Type") == "video/mp4"
    r = media(node, cid, headers={"Range": "bytes=%d-" % (len(data) + 5)})
    assert r.status == 416
    r = media(node, cid, method="HEAD")
    assert r.status == 200
    assert r.header("Content-Type") == "video/mp4"
    assert r.header("Content-Length") == str(len(data))
    assert r.body == b""
    r = media(node, cid, headers={"If-None-Match": '"%s"' % cid[3:]})
    assert r.status == 304


def test_download_disposition(node):
    cid = stored(node, b"a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    r = media(node, cid, "?download=report-2026.csv")
    assert r.status == 200
    assert r.header("Content-Disposition") == 'attachment; filename="report-2026.csv"'
    assert r.header("Content-Type") == "text/csv"


def test_refusals(node):
    cid = stored(node, b"refuse me")
    before = node.metrics()
    cases = [
        ("/media/b3:XYZ", "cid"),
        ("/media/%s?download=..%%2Fetc" % cid, "filename"),
        ("/media/%s?download=.hidden" % cid, "filename"),
        ("/media/%s?download=a%%22b" % cid, "filename"),
        ("/media/%s?download=" % cid, "filename"),
        ("/media/%s?download=%s" % (cid, "x" * 200), "filename"),
        ("/media/%s?inline=1" % cid, "query"),
        ("/media/%s?download=a.txt&x=1" % cid, "query"),
    ]
    for path, reason in cases:
        r = node.gw("GET", path)
        assert_envelope(r, 400, "bad_request")
        assert "filename=" not in (r.header("Content-Disposition") or "")
    m = node.metrics()
    for reason in ("cid", "filename", "query"):
        want = sum(1 for _, x in cases if x == reason)
        got = m.get("media_refused_total", reason=reason) - (before.get("media_refused_total", reason=reason) or 0)
        assert got == want, (reason, got, want)
    r = node.gw("GET", "/media/" + b3sum_cid(b"never stored"))
    assert_envelope(r, 404, "not_found")
    r = node.gw("PUT", "/media/" + cid, body=b"x")
    assert r.status == 405


def test_same_verification_as_o(node):
    data = b"integrity " * 10000
    cid = stored(node, data, headers={"Content-Type": "text/plain"})
    flip_byte(blob_file(node, cid), 5)
    r = media(node, cid)
    assert_envelope(r, 502, "integrity", retryable=False)
    assert node.metrics().sum("integrity_fail_total") >= 1


def test_facet_latency_and_amnesia(node_factory):
    n = node_factory(config={"amnesia": True})
    cid = stored(n, PNG)
    assert media(n, cid).header("Content-Type") == "image/png"
    cid2 = stored(n, b"plain words\n", headers={"Content-Type": "text/plain"})
    assert media(n, cid2).header("Content-Type") == "text/plain"
    m = n.metrics()
    assert m.get("facet_latency_seconds_count", facet="media") >= 2


def test_type_survives_restart(node_factory):
    n = node_factory()
    cid = stored(n, b"persisted type", headers={"Content-Type": "application/json"})
    n.stop()
    n.start()
    assert media(n, cid).header("Content-Type") == "application/json"


def test_hot_object_needs_no_storage_round_trip(node):
    # The worker remembers the recorded type and keeps the open handle:
    # with storage stopped, a hot object is still served (verified from
    # the kept handle) — without the remembered type its META_GET would
    # wait for storage. A cold one is served once storage runs again.
    hot = stored(node, b"hot bytes\n" * 100, headers={"Content-Type": "text/plain"})
    cold = stored(node, b"cold bytes\n" * 100, headers={"Content-Type": "text/plain"})
    assert media(node, hot).status == 200
    assert media(node, hot).status == 200
    pid = storage_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        r = media(node, hot)
        assert r.status == 200 and r.header("Content-Type") == "text/plain"
        assert r.body == b"hot bytes\n" * 100
    finally:
        os.kill(pid, signal.SIGCONT)
    assert media(node, cold).header("Content-Type") == "text/plain"
