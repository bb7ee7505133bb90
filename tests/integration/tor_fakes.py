"""Small stand-ins for tor's control port and SOCKS5 port (tests/integration/
test_tor.py): real sockets speaking the real protocols, with switches for
the edges (a refused authentication, garbage, a closed connection, a SOCKS
refusal), and a record of what the node sent them.

The control port computes an onion name from the key the node gives it the
way tor does (the Ed25519 public key a·B of the expanded key's scalar), so a
test can check that the node used its own sealed key. The name's two
checksum bytes are zero: tor's checksum is SHA3-256, which the node does not
compute (docs/tor.md), so a fake name is good enough for it.
"""
import base64
import os
import socket
import struct
import threading

from conftest import free_port

# ---- Ed25519 a·B, enough for names (RFC 8032 arithmetic) -----------------
_P = 2 ** 255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _add(p, q):
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = t1 * 2 * _D * t2 % _P
    d = z1 * 2 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _base():
    y = 4 * pow(5, _P - 2, _P) % _P
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    if x & 1:
        x = _P - x
    return (x, y, 1, x * y % _P)


def ed25519_scalar_base(scalar_bytes):
    s = int.from_bytes(scalar_bytes, "little") & ((1 << 255) - 1)
    r, q = (0, 1, 1, 0), _base()
    while s:
        if s & 1:
            r = _add(r, q)
        q = _add(q, q)
        s >>= 1
    zi = pow(r[2], _P - 2, _P)
    x, y = r[0] * zi % _P, r[1] * zi % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def onion_name(pk):
    return base64.b32encode(pk + b"\0\0\x03").decode().lower()


# ---- the control port ----------------------------------------------------

class FakeControl:
    """mode: good | auth_fail | garbage | no_serviceid | long_line | null_auth |
    wrong_key (answers with the service of a key of its own)."""

    def __init__(self, tmp, mode="good", port=None):
        self.mode = mode
        self.cookie = os.urandom(32)
        self.cookie_path = os.path.join(tmp, "control.authcookie")
        with open(self.cookie_path, "wb") as f:
            f.write(self.cookie)
        self.progress, self.tag = 10, "conn"
        self.commands = []          # every line received, in order
        self.added = []             # (key argument, name) of each ADD_ONION
        self.conns = []
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # never bind(0): the kernel may hand out a port a test picked with
        # free_port but has not bound yet (CI: "cannot listen: Address
        # already in use" on a node's OAP port)
        self.srv.bind(("127.0.0.1", port or free_port()))
        self.srv.listen(8)
        self.port = self.srv.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def drop_all(self):
        """Close every control connection (tor restarting, as the node sees it)."""
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []

    def close(self):
        self.stopped = True
        self.srv.close()
        self.drop_all()

    def _reply(self, c, line):
        if self.mode == "garbage":
            c.sendall(b"HELLO FROM NOT TOR\r\n")
            return
        if self.mode == "long_line":
            c.sendall(b"250-" + b"x" * 9000)
            return
        if line.startswith("PROTOCOLINFO"):
            methods = "NULL" if self.mode == "null_auth" else "COOKIE,SAFECOOKIE"
            c.sendall(('250-PROTOCOLINFO 1\r\n250-AUTH METHODS=%s COOKIEFILE="%s"\r\n'
                       '250-VERSION Tor="0.4.9.11"\r\n250 OK\r\n'
                       % (methods, self.cookie_path.replace("\\", "\\\\"))).encode())
        elif line.startswith("AUTHENTICATE"):
            ok = (self.mode == "null_auth" and line == "AUTHENTICATE") or \
                 (self.mode != "auth_fail" and line == "AUTHENTICATE " + self.cookie.hex())
            c.sendall(b"250 OK\r\n" if ok else b"515 Authentication failed: Wrong length on authentication cookie.\r\n")
        elif line.startswith("ADD_ONION"):
            key = line.split()[1]
            if key.startswith("ED25519-V3:") and self.mode != "wrong_key":
                sk = base64.b64decode(key[len("ED25519-V3:"):])
                name = onion_name(ed25519_scalar_base(sk[:32]))
            else:
                name = onion_name(ed25519_scalar_base(os.urandom(32)))
            self.added.append((key, name))
            if self.mode == "no_serviceid":
                c.sendall(b"250 OK\r\n")
            else:
                c.sendall(("250-ServiceID=%s\r\n250 OK\r\n" % name).encode())
        elif line.startswith("GETINFO status/bootstrap-phase"):
            c.sendall(('250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=%d TAG=%s '
                       'SUMMARY="fake"\r\n250 OK\r\n' % (self.progress, self.tag)).encode())
        else:
            c.sendall(b"510 Unrecognized command\r\n")

    def _serve(self, c):
        buf = b""
        try:
            while True:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    text = line.decode()
                    self.commands.append(text)
                    self._reply(c, text)
        except OSError:
            return


# ---- the SOCKS5 port -----------------------------------------------------

class FakeSocks:
    """A SOCKS5 server that relays CONNECTs for names in `routes` (name ->
    (host, port)) and answers others with `refuse_code` (tor's 0xF0:
    descriptor not found). mode "no_auth": refuses every method."""

    def __init__(self, routes=None, mode="relay", refuse_code=0xF0):
        self.routes = dict(routes or {})
        self.mode = mode
        self.refuse_code = refuse_code
        self.requests = []           # (atyp, host, port) of each CONNECT
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", free_port()))   # not 0: see FakeControl
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.srv.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c, n):
        b = b""
        while len(b) < n:
            d = c.recv(n - len(b))
            if not d:
                raise OSError("closed")
            b += d
        return b

    def _serve(self, c):
        try:
            ver, nm = self._read(c, 2)
            methods = self._read(c, nm)
            if ver != 5 or self.mode == "no_auth" or 0 not in methods:
                c.sendall(b"\x05\xff")
                return
            c.sendall(b"\x05\x00")
            ver, cmd, _, atyp = self._read(c, 4)
            if atyp == 3:
                host = self._read(c, self._read(c, 1)[0]).decode()
            elif atyp == 1:
                host = socket.inet_ntoa(self._read(c, 4))
            else:
                host = socket.inet_ntop(socket.AF_INET6, self._read(c, 16))
            port = struct.unpack(">H", self._read(c, 2))[0]
            self.requests.append((atyp, host, port))
            target = self.routes.get(host)
            if cmd != 1 or target is None:
                c.sendall(bytes([5, self.refuse_code, 0, 1, 0, 0, 0, 0, 0, 0]))
                return
            up = socket.create_connection(target, timeout=10)
            c.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
            self._pipe(c, up)
        except OSError:
            pass
        finally:
            c.close()

    @staticmethod
    def _pipe(a, b):
        def one(src, dst):
            try:
                while True:
                    d = src.recv(65536)
                    if not d:
                        break
                    dst.sendall(d)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
        t = threading.Thread(target=one, args=(b, a), daemon=True)
        t.start()
        one(a, b)
        t.join(5)
        b.close()
