"""The Media facet: GET/HEAD /media/{cid} serves an object with the
Content-Type recorded at upload (given, or sniffed with libmagic), ranges,
Content-Disposition on ?download=, the same verification as /o; and every
refusal (docs/media.md). Objects stored without a type (over OAP/1) are
sniffed on their first read and the type recorded; an upload's type is
never replaced; the parts of a multi-range answer carry the type."""
import http.client
import os
import random
import re
import signal
import ssl

import pytest

from conftest import (OPENSSL, SLOW, Resp, assert_envelope, b3sum_cid, blob_file, flip_byte,
                      mn_client, oap_node, storage_pid, stored, wait_for)

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
    # Fixed bytes, not os.urandom: 1 in 65536 random buffers starts "MZ"
    # and is sniffed as application/x-dosexec (seen on CI), and others
    # match other magic numbers.
    data = random.Random(3000).randbytes(3000)
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
    # Warm until the worker keeps the handle. The first read asks storage
    # for its removal epoch (WATCH) and nothing is kept until that answer is
    # in; on a loaded machine it can come after the second read (seen on the
    # CI machine). A handle hit means the epoch was known when this read
    # asked META_GET, so its type is remembered too.
    def hits():
        return node.metrics().get("object_handle_lookups_total", result="hit") or 0
    before = hits()
    wait_for(lambda: media(node, hot).status == 200 and hits() > before, 10 * SLOW,
             "the worker keeps the hot object's handle")
    pid = storage_pid(node)
    os.kill(pid, signal.SIGSTOP)
    try:
        r = media(node, hot)
        assert r.status == 200 and r.header("Content-Type") == "text/plain"
        assert r.body == b"hot bytes\n" * 100
    finally:
        os.kill(pid, signal.SIGCONT)
    assert media(node, cold).header("Content-Type") == "text/plain"


# ------------------------------------------------ objects stored without a type

@pytest.fixture
def onode(node_factory, pki):
    """Gateway, storage and omnigate; the gateway speaks TLS (the PKI's
    certificate), so its requests go through an HTTPS client here."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    n = oap_node(node_factory, pki)
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))

    def gw(method, path, body=None, headers=None, timeout=5.0):
        c = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, context=ctx,
                                        timeout=timeout * SLOW)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return Resp(r.status, r.reason, r.getheaders(), r.read())
        finally:
            c.close()

    n.gw = gw
    return n


def oap_put(n, pki, tmp_dir, data, name):
    """Store data over OAP/1 (`macronode put` through omnigate): no type."""
    path = os.path.join(tmp_dir, name)
    with open(path, "wb") as f:
        f.write(data)
    p = mn_client(["put", path, "--peer", n.oap_peer, "--ca", pki.path("ca.pem")])
    assert p.returncode == 0, p.stderr
    cid = p.stdout.decode().strip()
    assert cid == b3sum_cid(data)
    return cid


def read_sniffs(n, **labels):
    return n.metrics().sum("media_read_sniff_total", **labels)


def test_untyped_object_is_sniffed_once_and_recorded(onode, pki, tmp_dir):
    cid = oap_put(onode, pki, tmp_dir, PNG, "pixel.png")
    assert read_sniffs(onode) == 0
    r = media(onode, cid)
    assert r.status == 200, r
    assert r.header("Content-Type") == "image/png"
    assert r.header("X-Content-Type-Options") == "nosniff"
    assert r.body == PNG
    assert read_sniffs(onode, result="recorded") == 1
    # recorded: further reads (GET and HEAD) find it and sniff nothing
    for method in ("GET", "HEAD", "GET"):
        r = media(onode, cid, method=method)
        assert r.status == 200 and r.header("Content-Type") == "image/png", r
    assert read_sniffs(onode) == 1
    # /o has no type semantics: still octet-stream
    assert onode.gw("GET", "/o/" + cid).header("Content-Type") == "application/octet-stream"
    # recorded in storage, not in the worker's memory: a restarted node
    # serves it without sniffing again
    onode.stop()
    onode.start()
    before = read_sniffs(onode)
    assert media(onode, cid).header("Content-Type") == "image/png"
    assert read_sniffs(onode) == before


def test_untyped_head_sniffs_and_unknown_bytes_stay_octet_stream(onode, pki, tmp_dir):
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
    cid = oap_put(onode, pki, tmp_dir, pdf, "doc.pdf")
    r = media(onode, cid, method="HEAD")   # the first read is a HEAD
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/pdf"
    assert r.header("Content-Length") == str(len(pdf))
    assert r.body == b""
    assert read_sniffs(onode, result="recorded") == 1
    r = media(onode, cid)
    assert r.header("Content-Type") == "application/pdf" and r.body == pdf
    assert read_sniffs(onode) == 1
    # bytes libmagic cannot name: octet-stream, counted, nothing recorded
    # (an upload may still give a type)
    noise = os.urandom(3000)
    cid = oap_put(onode, pki, tmp_dir, noise, "noise.bin")
    for _ in range(2):
        r = media(onode, cid)
        assert r.header("Content-Type") == "application/octet-stream" and r.body == noise
    assert read_sniffs(onode, result="default") == 2
    stored(onode, noise, headers={"Content-Type": "application/x-noise"})
    assert media(onode, cid).header("Content-Type") == "application/x-noise"
    assert read_sniffs(onode, result="default") == 2


def test_uploaders_type_is_never_replaced(onode, pki, tmp_dir):
    # given at upload: a read never sniffs, whatever libmagic would say
    cid = stored(onode, PNG, headers={"Content-Type": "application/x-custom"})
    for method in ("GET", "HEAD"):
        assert media(onode, cid, method=method).header("Content-Type") == "application/x-custom"
    assert read_sniffs(onode) == 0
    # a read's sniff is a guess: the first upload's type replaces it, and
    # that one then stays against later uploads and reads
    data = PNG + b"\0" * 64
    cid = oap_put(onode, pki, tmp_dir, data, "later.png")
    assert media(onode, cid).header("Content-Type") == "image/png"
    assert read_sniffs(onode, result="recorded") == 1
    stored(onode, data, headers={"Content-Type": "image/x-given"})
    assert media(onode, cid).header("Content-Type") == "image/x-given"
    stored(onode, data, headers={"Content-Type": "text/plain"})
    for _ in range(3):
        assert media(onode, cid).header("Content-Type") == "image/x-given"
    assert read_sniffs(onode) == 1


def multipart_types(r, data):
    """The Content-Type of each part of a multipart/byteranges answer, the
    bytes of each checked against data."""
    assert r.status == 206, r
    m = re.fullmatch(r"multipart/byteranges; boundary=([0-9a-f]{32})", r.header("Content-Type"))
    assert m, r.headers
    delim = b"\r\n--" + m.group(1).encode()
    body = b"\r\n" + r.body
    assert body.endswith(delim + b"--\r\n")
    types = []
    for chunk in body[:-len(delim) - 4].split(delim + b"\r\n")[1:]:
        head, _, payload = chunk.partition(b"\r\n\r\n")
        hdrs = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        s, e, total = map(int, re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)",
                                            hdrs["Content-Range"]).groups())
        assert total == len(data) and payload == data[s:e + 1]
        types.append(hdrs["Content-Type"])
    return types


def test_multirange_parts_carry_the_type(onode, pki, tmp_dir):
    rng = {"Range": "bytes=0-7,70000-70009,-4"}
    # sniffed on this very (first) read
    data = PNG + os.urandom(150000)
    cid = oap_put(onode, pki, tmp_dir, data, "big.png")
    assert multipart_types(media(onode, cid, headers=rng), data) == ["image/png"] * 3
    assert multipart_types(media(onode, cid, headers=rng), data) == ["image/png"] * 3
    assert read_sniffs(onode) == 1
    # given at upload
    video = os.urandom(200000)
    vid = stored(onode, video, headers={"Content-Type": "video/mp4"})
    assert multipart_types(media(onode, vid, headers=rng), video) == ["video/mp4"] * 3
    # /o knows no type: its parts stay octet-stream
    r = onode.gw("GET", "/o/" + vid, headers=rng)
    assert multipart_types(r, video) == ["application/octet-stream"] * 3
