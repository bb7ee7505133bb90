"""HTTP/2 on the gateway's TLS listener (issue 14): ALPN, the same routes,
wall and verification as HTTP/1.1 through curl --http2, and the attacks of
RFC 9113's era sent as raw frames: rapid reset (CVE-2023-44487),
CONTINUATION flood, SETTINGS and PING floods, HPACK bombs, zero-window
stalls, per-connection request rate, protocol errors. Each must end in a
clear refusal (GOAWAY / RST_STREAM / an error envelope) and a counter in
rejected_total{reason}, never a crash (docs/http2.md)."""
import contextlib
import os
import shutil
import signal
import socket
import ssl
import struct
import time

import pytest

from conftest import (CURL, DEFAULT_BUNDLE, SLOW, b3sum_cid, blob_file, flip_byte, install_wall, mint_token, run_tool,
                      storage_pid, wait_until)

NGHTTP = shutil.which("nghttp")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, REFUSED_STREAM, CANCEL, \
    ENHANCE_YOUR_CALM = (0, 1, 2, 3, 7, 8, 11)
SETTINGS_INITIAL_WINDOW_SIZE = 4


# ------------------------------------------------------------------ raw frames

def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_int(v, bits, first=0):
    top = (1 << bits) - 1
    if v < top:
        return bytes([first | v])
    out = [first | top]
    v -= top
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def hpack_lit(name, value, index=False):
    """A literal field with a new name: without indexing, or (index=True)
    with incremental indexing (it enters the dynamic table)."""
    first = b"\x40" if index else b"\x00"
    return first + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def req_block(method=b"GET", path=b"/healthz", extra=()):
    b = (hpack_lit(b":method", method) + hpack_lit(b":scheme", b"https") +
         hpack_lit(b":path", path) + hpack_lit(b":authority", b"localhost"))
    for n, v in extra:
        b += hpack_lit(n, v)
    return b


def settings(**kv):
    ids = {"initial_window_size": SETTINGS_INITIAL_WINDOW_SIZE}
    return b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items())


class H2:
    """A bare HTTP/2 client: preface, frames out, frames in (no HPACK
    decoding: tests look at frame types, error codes and DATA bodies)."""

    def __init__(self, node, pki, client_settings=b"", timeout=5.0):
        ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", node.gateway_port), timeout=timeout * SLOW)
        self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.s.selected_alpn_protocol() == "h2"
        self.buf = b""
        self.eof = False
        self.send(PREFACE + frame(SETTINGS, 0, 0, client_settings))

    def send(self, data):
        """True when sent; False when the server had closed (floods)."""
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return False

    def _fill(self, n, deadline):
        while len(self.buf) < n and not self.eof:
            self.s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        return len(self.buf) >= n

    def recv_frame(self, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        if not self._fill(9, deadline):
            return None
        n = int.from_bytes(self.buf[:3], "big")
        if not self._fill(9 + n, deadline):
            return None
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        if f[0] == SETTINGS and not f[1] & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        return f

    def until(self, pred, timeout=5.0):
        """Frames until pred(frame) holds (returned last) or the connection
        ends / times out."""
        got = []
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            f = self.recv_frame(timeout=deadline - time.monotonic())
            if f is None:
                break
            got.append(f)
            if pred(f):
                break
        return got

    def goaway(self, timeout=5.0):
        """The GOAWAY error code the server sent, or None."""
        for f in self.until(lambda f: f[0] == GOAWAY, timeout):
            if f[0] == GOAWAY:
                return int.from_bytes(f[3][4:8], "big")
        return None

    def response(self, sid, timeout=5.0):
        """(DATA bytes, frames) of stream sid up to its END_STREAM or RST."""
        frames = self.until(lambda f: f[2] == sid and (f[0] == RST_STREAM or
                                                       (f[1] & END_STREAM and f[0] in (DATA, HEADERS))),
                            timeout)
        body = b"".join(f[3] for f in frames if f[0] == DATA and f[2] == sid)
        return body, frames

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def rejected(n, reason):
    return n.metrics().get("rejected_total", reason=reason) or 0


# ------------------------------------------------------------------ fixtures

@pytest.fixture
def h2_node(node_factory, pki):
    return node_factory(pki.tls_config())


def curl(pki, *args, timeout=60):
    return run_tool([CURL, "-sS", "--cacert", pki.path("ca.pem")] + list(args), timeout=timeout)


def url(n, path):
    return "https://localhost:%d%s" % (n.gateway_port, path)


def h2_store(n, pki, tmp_dir, data):
    """POST data over h2 with curl; returns its cid (checked)."""
    src = os.path.join(tmp_dir, "src")
    with open(src, "wb") as f:
        f.write(data)
    cid = b3sum_cid(data)
    p = curl(pki, "--http2", "-X", "POST", "--data-binary", "@" + src, url(n, "/o"))
    assert cid.encode() in p.stdout, p
    return cid


# ------------------------------------------------------------------ the same routes

@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_h2_curl_objects_ranges_and_verification(h2_node, pki, tmp_dir):
    n = h2_node
    data = os.urandom(3 * 1024 * 1024 + 123)
    src = os.path.join(tmp_dir, "src")
    with open(src, "wb") as f:
        f.write(data)
    cid = b3sum_cid(data)
    p = curl(pki, "--http2", "-X", "POST", "--data-binary", "@" + src, "-H",
             "Content-Type: application/octet-stream", "-w", "\n%{http_version} %{http_code}",
             url(n, "/o"))
    body, _, tail = p.stdout.rpartition(b"\n")
    assert p.returncode == 0 and tail == b"2 201", p
    assert cid.encode() in body
    out = os.path.join(tmp_dir, "out")
    p = curl(pki, "--http2", "-o", out, "-w", "%{http_version} %{http_code}", url(n, "/o/" + cid))
    assert p.stdout == b"2 200", p
    with open(out, "rb") as f:
        assert f.read() == data
    # a range, and HEAD's length
    p = curl(pki, "--http2", "-r", "1000-70999", "-o", out, "-w", "%{http_version} %{http_code}",
             url(n, "/o/" + cid))
    assert p.stdout == b"2 206", p
    with open(out, "rb") as f:
        assert f.read() == data[1000:71000]
    # several ranges: one multipart/byteranges answer, each part verified
    p = curl(pki, "--http2", "-r", "0-9,2000000-2000099", "-D", "-", url(n, "/o/" + cid))
    assert p.returncode == 0 and b"HTTP/2 206" in p.stdout, p
    assert b"multipart/byteranges" in p.stdout
    assert data[0:10] in p.stdout and data[2000000:2000100] in p.stdout
    p = curl(pki, "--http2", "-I", url(n, "/o/" + cid))

    assert b"HTTP/2 200" in p.stdout and \
        ("content-length: %d" % len(data)).encode() in p.stdout.lower(), p.stdout
    # CORS on h2 as on HTTP/1.1: the gate's headers reach the HEADERS frame
    p = curl(pki, "--http2", "-I", "-H", "Origin: https://page.example", url(n, "/o/" + cid))
    assert b"access-control-allow-origin: *" in p.stdout.lower(), p.stdout
    assert b"access-control-expose-headers:" in p.stdout.lower()
    # HTTP/1.1 still on offer through the same listener
    p = curl(pki, "--http1.1", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
             url(n, "/o/" + cid))
    assert p.stdout == b"1.1 200", p
    # unknown route, wrong method: the same answers as HTTP/1.1
    p = curl(pki, "--http2", "-o", "/dev/null", "-w", "%{http_code}", url(n, "/nope"))
    assert p.stdout == b"404"
    # verify before serve holds on h2: a flipped byte is a 502, never the bytes
    flip_byte(blob_file(n, cid), 10)
    p = curl(pki, "--http2", "-o", out, "-w", "%{http_code}", url(n, "/o/" + cid))
    assert p.stdout == b"502", p
    wait_until(lambda: rejected(n, "integrity") >= 1, 5 * SLOW, what="integrity refusal counted")


def test_h2_alpn_offered_and_switchable(node_factory, pki):
    on = node_factory(pki.tls_config())
    c = H2(on, pki)
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, req_block()))
    body, frames = c.response(1)
    assert b'"status":"ok"' in body, frames
    c.close()
    off = node_factory(deep({"http2": {"enabled": False}}, pki.tls_config()))
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", off.gateway_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "http/1.1"


def deep(a, b):
    out = dict(a)
    out.update(b)
    return out


def test_h2_upload_in_one_write(h2_node, pki):
    """HEADERS and every DATA frame of several uploads in one write: the
    bytes that arrive before a head is admitted wait for their handler,
    and an empty body sent with END_STREAM on HEADERS still ends."""
    n = h2_node
    c = H2(n, pki)
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
    bodies = {1: os.urandom(100000), 3: os.urandom(5000), 5: b""}
    out = b""
    for sid, body in bodies.items():
        hdr = req_block(b"POST", b"/o", extra=[(b"content-type", b"application/octet-stream"),
                                               (b"content-length", b"%d" % len(body))])
        if not body:
            out += frame(HEADERS, END_HEADERS | END_STREAM, sid, hdr)
            continue
        out += frame(HEADERS, END_HEADERS, sid, hdr)
        for off in range(0, len(body), 16384):
            chunk = body[off:off + 16384]
            out += frame(DATA, END_STREAM if off + 16384 >= len(body) else 0, sid, chunk)
    c.send(out)
    ended, got = set(), {sid: b"" for sid in bodies}
    for f in c.until(lambda f: f[1] & END_STREAM and f[0] == DATA and
                     len(ended | {f[2]}) == len(bodies), 10):
        if f[0] == DATA and f[2] in got:
            got[f[2]] += f[3]
            if f[1] & END_STREAM:
                ended.add(f[2])
    for sid, body in bodies.items():
        assert b3sum_cid(body).encode() in got[sid], (sid, got)
    c.close()


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_h2_token_byte_limit_holds_for_data_sent_with_the_head(node_factory, pki):
    """DATA in the same write as its HEADERS arrives before the wall has
    read the token; a BytesLe cap the wall sets then must still hold: 413,
    nothing stored (found by fuzz/http2_request.c)."""
    n = node_factory(pki.tls_config(), start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    tok = mint_token(n.data_dir, "--prefix", "/o", "--method", "POST", "--bytes-le", "100")
    c = H2(n, pki)
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
    body = os.urandom(5000)
    hdr = req_block(b"POST", b"/o", extra=[(b"content-type", b"application/octet-stream"),
                                           (b"authorization", b"Bearer " + tok.encode())])
    before = rejected(n, "413")
    c.send(frame(HEADERS, END_HEADERS, 1, hdr) + frame(DATA, END_STREAM, 1, body))
    got, frames = c.response(1, 10)
    assert any(f[0] in (HEADERS, RST_STREAM) and f[2] == 1 for f in frames), frames
    assert b3sum_cid(body).encode() not in got
    c.close()
    assert rejected(n, "413") == before + 1
    p = curl(pki, "-o", "/dev/null", "-w", "%{http_code}", url(n, "/o/" + b3sum_cid(body)))
    assert p.stdout == b"404", "a body over the cap was stored"


def test_h2_json_body_over_limits_max_body_413(node_factory, pki):
    """limits.max_body holds on HTTP/2 too, also for DATA that arrives with
    the head (before the route, and so the cap, is known); an object upload
    over it, under storage.max_object, is stored."""
    n = node_factory(deep({"services": ["gateway", "storage", "audit", "index"],
                           "limits": {"max_body": "512B"}}, pki.tls_config()))
    c = H2(n, pki)
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
    doc = b'{"cid":"b3:' + b"0" * 64 + b'"}' + b" " * 700        # 774 bytes: < 1024, > 512
    before = rejected(n, "413")
    hdr = req_block(b"PUT", b"/n/capped", extra=[(b"content-type", b"application/json")])
    c.send(frame(HEADERS, END_HEADERS, 1, hdr) + frame(DATA, END_STREAM, 1, doc))
    got, frames = c.response(1, 10)
    assert b"exceeds 512 bytes (limits.max_body)" in got, frames
    up = os.urandom(3000)
    c.send(upload_head(3, len(up)) + data_frames(3, up))
    got, frames = c.response(3, 10)
    assert b3sum_cid(up).encode() in got, frames
    c.close()
    assert rejected(n, "413") == before + 1


def test_h2_concurrent_streams_and_the_stream_cap(node_factory, pki):
    n = node_factory(deep({"http2": {"max_streams": 4}}, pki.tls_config()))
    c = H2(n, pki)
    # wait for the server's SETTINGS to be acknowledged both ways
    c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
    # 4 at once are served; all of them answered on one connection
    c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, req_block())
                    for sid in (1, 3, 5, 7)))
    done = set()
    for f in c.until(lambda f: False, 2):
        if f[0] == DATA and f[1] & END_STREAM:
            done.add(f[2])
    assert done == {1, 3, 5, 7}, done
    # a 5th open stream beyond the acknowledged cap breaks the protocol
    # (RFC 9113 §5.1.2): nghttp2 ends the connection, and it is counted
    c.send(b"".join(frame(HEADERS, END_HEADERS, sid, req_block(b"POST", b"/o"))
                    for sid in (9, 11, 13, 15, 17)))
    gone = [f for f in c.until(lambda f: f[0] == GOAWAY, 5) if f[0] == GOAWAY]
    assert gone and int.from_bytes(gone[0][3][4:8], "big") == PROTOCOL_ERROR, gone
    assert b"max concurrent streams" in gone[0][3]
    c.close()
    wait_until(lambda: rejected(n, "h2_protocol") == 1, 5 * SLOW, what="h2_protocol counted")


def test_h2_streams_over_an_unacknowledged_cap_refused(node_factory, pki):
    """Before the client has acknowledged the server's SETTINGS, the cap is
    not yet in force for nghttp2's connection-error check: the streams
    over it are refused one by one (RST_STREAM REFUSED_STREAM), the
    connection lives on (http_h2.c, docs/http2.md)."""
    n = node_factory(deep({"http2": {"max_streams": 4}}, pki.tls_config()))
    c = H2(n, pki)
    # no frame read yet, so no SETTINGS ACK sent: 4 uploads held open, a 5th
    c.send(b"".join(upload_head(sid) for sid in (1, 3, 5, 7, 9)))
    frames = c.until(lambda f: f[0] in (RST_STREAM, GOAWAY) and f[2] in (0, 9), 5)
    rst = [f for f in frames if f[0] == RST_STREAM and f[2] == 9]
    assert rst and int.from_bytes(rst[0][3], "big") == REFUSED_STREAM, frames
    assert not any(f[0] == GOAWAY for f in frames), frames
    c.send(frame(PING, 0, 0, b"12345678"))
    frames = c.until(lambda f: f[0] in (GOAWAY, PING), 5)
    assert frames and frames[-1][:2] == (PING, ACK), frames
    c.close()


# ------------------------------------------------------------------ flow-control windows

def server_preamble(c):
    """The server's first SETTINGS (as {id: value}) and the increment of its
    connection WINDOW_UPDATE (0 if none), read up to the ACK of ours."""
    got = c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
    sets = [f for f in got if f[0] == SETTINGS and not f[1] & ACK]
    assert sets, got
    vals = {}
    for off in range(0, len(sets[0][3]), 6):
        k, v = struct.unpack(">HI", sets[0][3][off:off + 6])
        vals[k] = v
    inc = sum(int.from_bytes(f[3], "big") & 0x7fffffff for f in got
              if f[0] == WINDOW_UPDATE and f[2] == 0)
    return vals, inc


def data_frames(sid, body, last=True, size=16384):
    out = b""
    for off in range(0, len(body), size):
        end = last and off + size >= len(body)
        out += frame(DATA, END_STREAM if end else 0, sid, body[off:off + size])
    return out


def upload_head(sid, n=None):
    extra = [(b"content-type", b"application/octet-stream")]
    if n is not None:
        extra.append((b"content-length", b"%d" % n))
    return frame(HEADERS, END_HEADERS, sid, req_block(b"POST", b"/o", extra=extra))


@contextlib.contextmanager
def storage_stopped(n):
    """Storage stopped (SIGSTOP): an upload's handler waits for its upload
    file and takes no body byte, so a stream's window cannot reopen however
    the server's reads fall (without this, a server that reads one TLS
    record at a time may hand each record to the handler, and reopen the
    window, before the next one arrives)."""
    pid = storage_pid(n)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def stored_h2(n, pki, data):
    """Whether storage holds data, asked over h2 (HEAD /o/<cid>): True on 200,
    False on 404. Anything else (a 503 while storage comes back from SIGSTOP)
    proves nothing either way, so it is asked again, and never taken as
    "not stored"."""
    def ask():
        c = H2(n, pki)
        c.until(lambda f: f[0] == SETTINGS and f[1] & ACK, 5)
        c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                     req_block(b"HEAD", ("/o/" + b3sum_cid(data)).encode())))
        _, frames = c.response(1, 10)
        c.close()
        heads = [f for f in frames if f[0] == HEADERS and f[2] == 1]
        # HPACK static index 8 is ":status 200", 13 ":status 404"
        status = heads[0][3][:1] if heads else None
        return status if status in (b"\x88", b"\x8d") else None
    return wait_until(ask, 30, what="a 200 or 404 for HEAD over h2") == b"\x88"


def test_h2_stream_window_announced_and_enforced(node_factory, pki):
    """http2.stream_window is SETTINGS_INITIAL_WINDOW_SIZE, and it is a bound:
    a stream that sends past it without waiting for WINDOW_UPDATE is reset
    FLOW_CONTROL_ERROR and counted; nothing of it is stored. A client that
    keeps to the window uploads the same body (the window reopens)."""
    n = node_factory(deep({"http2": {"stream_window": "16KiB"}}, pki.tls_config()))
    c = H2(n, pki)
    vals, _ = server_preamble(c)
    assert vals.get(SETTINGS_INITIAL_WINDOW_SIZE) == 0x4000, vals
    body = os.urandom(200000)
    before = rejected(n, "h2_protocol")
    with storage_stopped(n):
        c.send(upload_head(1) + data_frames(1, body))
        frames = c.until(lambda f: f[2] == 1 and (f[0] == RST_STREAM or f[1] & END_STREAM) or
                         f[0] == GOAWAY, 10)
    rst = [f for f in frames if f[0] == RST_STREAM and f[2] == 1]
    assert rst and int.from_bytes(rst[0][3], "big") == FLOW_CONTROL_ERROR, frames
    assert not any(f[0] == DATA and b3sum_cid(body).encode() in f[3] for f in frames), frames
    # the connection lives on: another stream on it is answered
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, req_block()))
    got, _ = c.response(3, 5)
    assert b'"status":"ok"' in got, got
    c.close()
    wait_until(lambda: rejected(n, "h2_protocol") == before + 1, 5 * SLOW,
               what="the overrun counted as h2_protocol")
    assert not stored_h2(n, pki, body), "a stream past its window was stored"
    # within the window, waiting for WINDOW_UPDATE: the whole body goes through
    c = H2(n, pki)
    server_preamble(c)
    c.send(upload_head(1, len(body)))
    sent, window = 0, 0x4000
    while sent < len(body):
        if window == 0:
            for f in c.until(lambda f: f[0] == WINDOW_UPDATE and f[2] == 1, 10):
                if f[0] == WINDOW_UPDATE and f[2] == 1:
                    window += int.from_bytes(f[3], "big") & 0x7fffffff
            assert window > 0, "the stream window never reopened"
        piece = body[sent:sent + min(window, 16384)]
        c.send(frame(DATA, END_STREAM if sent + len(piece) == len(body) else 0, 1, piece))
        sent += len(piece)
        window -= len(piece)
    got, frames = c.response(1, 10)
    assert b3sum_cid(body).encode() in got, frames
    c.close()
    assert rejected(n, "h2_protocol") == before + 1


def test_h2_conn_window_bounds_all_streams_together(node_factory, pki):
    """http2.conn_window bounds what all streams of a connection send ahead
    together: two streams each within http2.stream_window but past the
    connection window together end the connection (GOAWAY
    FLOW_CONTROL_ERROR), counted; one of them alone is taken."""
    n = node_factory(deep({"http2": {"stream_window": "64KiB", "conn_window": "96KiB"}},
                          pki.tls_config()))
    a, b = os.urandom(57344), os.urandom(57344)       # each < 64 KiB; together > 96 KiB
    c = H2(n, pki)
    vals, inc = server_preamble(c)
    assert vals.get(SETTINGS_INITIAL_WINDOW_SIZE) == 65536, vals
    assert 65535 + inc == 96 * 1024, inc              # the connection window, raised
    before = rejected(n, "h2_protocol")
    with storage_stopped(n):
        c.send(upload_head(1) + upload_head(3) + data_frames(1, a) + data_frames(3, b))
        gone = [f for f in c.until(lambda f: f[0] == GOAWAY, 10) if f[0] == GOAWAY]
    assert gone and int.from_bytes(gone[0][3][4:8], "big") == FLOW_CONTROL_ERROR, gone
    c.close()
    wait_until(lambda: rejected(n, "h2_protocol") == before + 1, 5 * SLOW,
               what="the overrun counted as h2_protocol")
    # the same body alone, on a fresh connection: within both windows
    c = H2(n, pki)
    server_preamble(c)
    c.send(upload_head(1, len(a)) + data_frames(1, a))
    got, frames = c.response(1, 10)
    assert b3sum_cid(a).encode() in got, frames
    c.close()
    assert not stored_h2(n, pki, b)


# ------------------------------------------------------------------ attacks

def test_h2_rapid_reset(h2_node, pki):
    """CVE-2023-44487: streams opened and cancelled at once, to get past
    the concurrency cap. The connection is told to calm down and closed;
    the node keeps serving."""
    n = h2_node
    c = H2(n, pki)
    batch = b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, req_block(path=b"/o/b3:" + b"0" * 64)) +
                     frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
                     for sid in range(1, 2 * 3000, 2))
    c.send(batch)
    assert c.goaway(10) == ENHANCE_YOUR_CALM
    c.close()
    wait_until(lambda: rejected(n, "h2_flood") + rejected(n, "h2_rate") >= 1, 5 * SLOW,
               what="rapid reset counted")
    c = H2(n, pki)
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, req_block()))
    assert b'"status":"ok"' in c.response(1)[0]
    c.close()


def test_h2_request_rate_per_connection(node_factory, pki):
    n = node_factory(deep({"http2": {"requests_per_second": 10}}, pki.tls_config()))
    c = H2(n, pki)
    c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid, req_block())
                    for sid in range(1, 80, 2)))
    assert c.goaway(5) == ENHANCE_YOUR_CALM
    c.close()
    wait_until(lambda: rejected(n, "h2_rate") == 1, 5 * SLOW, what="h2_rate counted once")


def test_h2_continuation_flood(h2_node, pki):
    """A header block that never ends: CONTINUATION after CONTINUATION."""
    n = h2_node
    c = H2(n, pki)
    ok = c.send(frame(HEADERS, 0, 1, req_block()))
    for i in range(200):
        ok = ok and c.send(frame(CONTINUATION, 0, 1, hpack_lit(b"x-c%d" % i, b"v" * 40)))
    assert c.goaway(5) is not None or c.eof
    c.close()
    wait_until(lambda: rejected(n, "h2_flood") >= 1, 5 * SLOW, what="continuation flood counted")
    # empty CONTINUATION frames carry nothing and are stopped the same way
    c = H2(n, pki)
    ok = c.send(frame(HEADERS, 0, 1, req_block()))
    for _ in range(200):
        ok = ok and c.send(frame(CONTINUATION, 0, 1, b""))
    assert c.goaway(5) is not None or c.eof
    c.close()
    wait_until(lambda: rejected(n, "h2_flood") >= 2, 5 * SLOW, what="empty continuations counted")


@pytest.mark.parametrize("kind", ["settings", "ping"])
def test_h2_control_frame_floods(h2_node, pki, kind):
    n = h2_node
    c = H2(n, pki)
    f = frame(SETTINGS, 0, 0) if kind == "settings" else frame(PING, 0, 0, b"12345678")
    c.send(f * 2000)
    assert c.goaway(5) == ENHANCE_YOUR_CALM
    c.close()
    wait_until(lambda: rejected(n, "h2_flood") == 1, 5 * SLOW, what="%s flood counted" % kind)


def test_h2_header_lists_431_and_hpack_bomb(h2_node, pki):
    n = h2_node
    c = H2(n, pki)
    # just over limits.max_header_bytes (16 KiB decoded): 431 on the stream,
    # the connection lives on
    big = [(b"x-big-%d" % i, b"v" * 4000) for i in range(5)]
    blk = req_block(extra=big)
    c.send(frame(HEADERS, END_STREAM, 1, blk[:12000]) +
           frame(CONTINUATION, END_HEADERS, 1, blk[12000:]))
    body, frames = c.response(1)
    assert b"header_too_large" in body, frames
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, req_block()))
    assert b'"status":"ok"' in c.response(3)[0]
    wait_until(lambda: rejected(n, "431") == 1, 5 * SLOW, what="431 counted")
    # the bomb: one 4000-byte field entered in the dynamic table, then
    # referenced 3000 times with one byte each (~12 MB decoded from 7 KB)
    bomb = req_block() + hpack_lit(b"x-bomb", b"b" * 4000, index=True) + b"\xbe" * 3000
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 5, bomb))
    assert c.goaway(5) == ENHANCE_YOUR_CALM
    c.close()
    wait_until(lambda: rejected(n, "h2_flood") == 1, 5 * SLOW, what="hpack bomb counted")


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_h2_zero_window_stall(node_factory, pki, tmp_dir):
    """A client that opens no flow-control window: the answer waits
    timeouts.write, then the stream is reset and counted; the connection
    and the node carry on."""
    n = node_factory(deep({"timeouts": {"write": "1s"}}, pki.tls_config()))
    cid = h2_store(n, pki, tmp_dir, os.urandom(300000))
    c = H2(n, pki, client_settings=settings(initial_window_size=0))
    c.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, req_block(path=b"/o/" + cid.encode())))
    body, frames = c.response(1, timeout=8)
    assert body == b"" and frames and frames[-1][0] == RST_STREAM and frames[-1][2] == 1, frames
    wait_until(lambda: rejected(n, "h2_stall") == 1, 5 * SLOW, what="h2_stall counted")
    c.send(frame(PING, 0, 0, b"abcdefgh"))
    assert any(f[0] == PING and f[1] & ACK for f in c.until(lambda f: f[0] == PING, 3))
    c.close()


@pytest.mark.skipif(not CURL, reason="curl not installed")
def test_h2_client_gone_mid_answers(node_factory, pki, tmp_dir):
    """A client that sends FIN with answers still queued (h2load -D ends so)
    is gone: the connection is freed at once, not after a write deadline
    it may never reach."""
    n = node_factory(deep({"timeouts": {"write": "30s"}}, pki.tls_config()))
    cid = h2_store(n, pki, tmp_dir, os.urandom(300000))
    c = H2(n, pki)
    c.send(b"".join(frame(HEADERS, END_HEADERS | END_STREAM, sid,
                          req_block(path=b"/o/" + cid.encode())) for sid in range(1, 40, 2)))
    c.recv_frame()
    c.s.shutdown(socket.SHUT_WR)          # FIN, no close_notify, nothing more read,
    c.close()                             # then gone, as a process exiting
    gw = lambda: n.metrics().get("open_connections", service="gateway")
    wait_until(lambda: gw() == 0, 3 * SLOW, what="the connection freed on the client's FIN")


def test_h2_protocol_errors(h2_node, pki):
    n = h2_node
    c = H2(n, pki)
    c.send(frame(DATA, 0, 0, b"x"))          # DATA on stream 0: connection error
    assert c.goaway(5) == PROTOCOL_ERROR
    c.close()
    wait_until(lambda: rejected(n, "h2_protocol") == 1, 5 * SLOW, what="h2_protocol counted")
    # not HTTP/2 at all after ALPN h2
    c = H2.__new__(H2)
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", n.gateway_port), timeout=5)
    c.s = ctx.wrap_socket(raw, server_hostname="localhost")
    c.buf, c.eof = b"", False
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    c.until(lambda f: False, 3)
    assert c.eof
    c.close()
    wait_until(lambda: rejected(n, "h2_protocol") == 2, 5 * SLOW, what="bad preface counted")


@pytest.mark.skipif(not NGHTTP, reason="nghttp (nghttp2-client) not installed")
def test_h2_nghttp_multiplexed(h2_node, pki):
    """Debian's nghttp client: many streams on one connection, every answer whole."""
    n = h2_node
    p = run_tool([NGHTTP, "-n", "-s", "-m", "50", url(n, "/healthz")], timeout=30)
    assert p.returncode == 0, p
    assert p.stdout.count(b"/healthz") >= 50 or b"200" in p.stdout, p.stdout[-500:]
