"""
Integration test harness for macronode: start the real binary on free
loopback ports, talk to it with real clients, clean up every process and
file.

Environment:
  MACRONODE_BIN   absolute path of the binary (default: build/macronode)
  MN_SANITIZED    set to 1 when the binary is an ASan/UBSan build: time
                  bounds are multiplied and node stderr is checked for
                  sanitizer reports at teardown.

Every process a test starts carries MN_TEST_TAG=<unique> in its
environment (children inherit it), so leftovers are found by a /proc scan
even when they were re-parented to init.
"""
import contextlib
import copy
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.abspath(os.environ.get("MACRONODE_BIN") or os.path.join(REPO, "build", "macronode"))
SANITIZED = os.environ.get("MN_SANITIZED", "") not in ("", "0")
# Multiplier for time bounds under ASan/UBSan (slower start, slower everything).
SLOW = 3.0 if SANITIZED else 1.0
READY_TIMEOUT = 30.0 if SANITIZED else 10.0
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")
TAG_VAR = "MN_TEST_TAG"


# ---------------------------------------------------------------- helpers

# Ports this test process has handed out. The kernel may give the same
# ephemeral port to two bind(0) calls once the first socket is closed, so a
# test that picks its OAP port before node_factory picks the admin and
# gateway ports could get one twice (seen on the CI machine: "oap.addr: must
# differ from admin.addr"). A port is handed out at most once per session.
_HANDED_OUT = set()


def _bindable(port):
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port():
    """A loopback port free for TCP and UDP that no earlier call returned."""
    for _ in range(1000):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if port not in _HANDED_OUT and _bindable(port):
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free loopback port after 1000 tries")


def free_ports(n):
    return [free_port() for _ in range(n)]


def port_listening(port, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def sanitizer_report(text):
    for m in SANITIZER_MARKERS:
        if m in text:
            i = text.index(m)
            return text[max(0, i - 200): i + 2000]
    return None


def base_env():
    """The test runner's environment without any RON_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RON_")}
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    return env


def run_env():
    """What `macronode run` needs on top of base_env. Started as root (CI),
    the node would become node.user "macronode", which a test machine does
    not have: tests run it as root on purpose (test_privileges.py tests the
    drop itself)."""
    return {"RON_ALLOW_ROOT": "true"} if os.geteuid() == 0 else {}


def run_cli(args, env=None, timeout=None, cwd=None):
    """Run the binary to completion; returns CompletedProcess (text)."""
    e = base_env()
    if args and args[0] == "run":
        e.update(run_env())
    if env:
        e.update(env)
    p = subprocess.run([BIN] + list(args), env=e, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout or 20 * SLOW)
    rep = sanitizer_report(p.stderr)
    assert rep is None, "sanitizer report from %r:\n%s" % (args, rep)
    return p


def proc_scan(tag):
    """PIDs of live (non-zombie) processes whose environment carries MN_TEST_TAG=tag."""
    needle = ("%s=%s" % (TAG_VAR, tag)).encode() + b"\0"
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % d, "rb") as f:
                envb = f.read() + b"\0"
            if needle not in envb:
                continue
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            state = st[st.rindex(")") + 2]
            if state in "ZX":
                continue
            out.append(int(d))
        except (OSError, ValueError):
            continue
    return sorted(out)


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        return st[st.rindex(")") + 2] not in "ZX"
    except OSError:
        return False


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def wait_until(fn, timeout, interval=0.02, what="condition"):
    """Poll fn() until it returns a truthy value; return it, or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
        except (OSError, http.client.HTTPException) as e:
            last = None
            err = e
        else:
            err = None
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r %r)"
                                 % (timeout, what, last, err))
        time.sleep(interval)


def wait_for(pred, timeout, what, interval=0.2):
    """wait_until with `what` third, as the multi-node tests (DHT, overlay,
    replication) call it: they poll /metrics and the CLI, so 0.2 s apart."""
    return wait_until(pred, timeout, interval=interval, what=what)


def deep_merge(a, b):
    out = copy.deepcopy(a)
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


ENVELOPE = {"code", "message", "retryable", "corr_id"}


def assert_envelope(r, status, code=None, retryable=False):
    """An error response in the JSON envelope (docs/api.md): exact fields, a
    message, a 16-hex corr_id; code and retryable checked unless None."""
    assert r.status == status, r
    assert r.header("Content-Type") == "application/json", r
    j = r.json()
    assert set(j) == ENVELOPE, j
    if code is not None:
        assert j["code"] == code, j
    if retryable is not None:
        assert j["retryable"] is retryable, j
    assert isinstance(j["message"], str) and j["message"], j
    assert re.fullmatch(r"[0-9a-f]{16}", j["corr_id"]), j
    return j


class Resp:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body                # bytes

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body.decode())

    def __repr__(self):
        return "Resp(%d, %r, %r)" % (self.status, self.headers, self.body[:300])


def http_request(port, method, path, body=None, headers=None, timeout=5.0, host="127.0.0.1"):
    c = http.client.HTTPConnection(host, port, timeout=timeout * SLOW)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return Resp(r.status, r.reason, r.getheaders(), data)
    finally:
        c.close()


def parse_responses(data, head_flags=None):
    """Parse concatenated HTTP/1.1 responses (Content-Length framed) from raw bytes.
    head_flags[i] True means the i-th response answers a HEAD (no body).
    Returns (list of Resp, leftover bytes)."""
    out = []
    i = 0
    while True:
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            break
        head = data[i:end].decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", head[0])
        assert m, "bad status line %r" % head[0]
        hdrs = []
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs.append((k.strip(), v.strip()))
        r = Resp(int(m.group(1)), m.group(2), hdrs, b"")
        is_head = bool(head_flags and len(out) < len(head_flags) and head_flags[len(out)])
        clen = r.header("Content-Length")
        n = 0 if (is_head or clen is None) else int(clen)
        if end + 4 + n > len(data):
            break
        r.body = data[end + 4:end + 4 + n]
        out.append(r)
        i = end + 4 + n
    return out, data[i:]


def recv_all(sock, timeout=5.0, until=None):
    """Read until EOF (or until(data) is true, or timeout). Returns (data, eof)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout * SLOW
    buf = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
        if until and until(buf):
            return buf, False
    return buf, False


def raw_connect(port, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=5 * SLOW)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_exchange(port, data, timeout=3):
    """Send data on a new connection, read until the peer closes or goes
    quiet for timeout: (the parsed responses, whether it closed)."""
    s = raw_connect(port)
    try:
        s.sendall(data)
        got, eof = recv_all(s, timeout=timeout)
    finally:
        s.close()
    rs, _ = parse_responses(got)
    return rs, eof


# ---------------------------------------------------------------- metrics

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Parsed Prometheus text: samples as (name, labels dict, value)."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(None, 3)
                self.types[name] = typ
                continue
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, "unparsable metrics line %r" % line
            labels = dict(_LABEL.findall(m.group(3) or ""))
            self.samples.append((m.group(1), labels, float(m.group(4))))

    def get(self, name, **labels):
        """Value of the series with exactly this label set, or None."""
        for n, l, v in self.samples:
            if n == name and l == labels:
                return v
        return None

    def sum(self, name, **labels):
        """Sum over series whose labels include the given ones (0 if none)."""
        return sum(v for n, l, v in self.samples
                   if n == name and all(l.get(k) == x for k, x in labels.items()))

    def series(self, name):
        return [(l, v) for n, l, v in self.samples if n == name]


# ---------------------------------------------------------------- the node

# ---------------------------------------------------------------- the wall
# Every node starts behind the wall (deny by default). Tests of other planes
# get an "open" wall: a capability key k1 and a signed policy that allows
# every request, so they exercise their plane, not the policy. Tests of the
# wall pass wall=None (nothing installed) or their own bundle.

OPEN_BUNDLE = {"version": 1, "defaults": {"default_action": "deny"},
               "rules": [{"id": "tests-open", "when": {"method": "*"}, "action": "allow",
                          "reason": "integration tests of other planes"}]}
WALL_KID = "k1"
# The bundle `macronode init` writes (docs/policy.md): anonymous reads of
# objects, writes need a token. src/node/cli/init_cli.c holds the same text.
DEFAULT_BUNDLE = {
    "version": 1,
    "defaults": {"default_action": "deny"},
    "rules": [
        {"id": "anonymous-get", "when": {"method": "GET", "require_tags_all": ["core"]},
         "action": "allow", "reason": "objects are public to read"},
        {"id": "anonymous-head", "when": {"method": "HEAD", "require_tags_all": ["core"]},
         "action": "allow", "reason": "objects are public to read"},
        {"id": "token-holders", "when": {"method": "*", "require_tags_all": ["core", "token"]},
         "action": "allow", "reason": "capability token presented"},
        {"id": "facet-token-holders", "when": {"method": "*", "require_tags_all": ["facet", "token"]},
         "action": "allow", "reason": "the facets (graph, feed, media, search) for token holders"},
        {"id": "peer-replicate", "when": {"method": "POST", "require_tags_all": ["core", "peer"]},
         "action": "allow", "reason": "other nodes on the peer plane ask for copies (REPLICATE)"},
    ],
}
_wall_cache = {}
_kek_cache = {}


def session_kek():
    """A KEK file (mode 0400) for operator commands run outside a node's
    data dir: `policy keygen|sign` seal and unseal the signing key with it."""
    if not _kek_cache:
        d = tempfile.mkdtemp(prefix="mn-kek-")
        import atexit
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "session.kek")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        os.write(fd, (os.urandom(32).hex() + "\n").encode())
        os.close(fd)
        _kek_cache["path"] = path
    return _kek_cache["path"]


def kek_env():
    """The environment of run_cli with RON_KEK_FILE = session_kek()."""
    return {"RON_KEK_FILE": session_kek()}


SEAL_HEADER = 25   # "RKMS" | 0x01 | ts_ms i64 BE | nonce[12] (docs/keys.md)
AAD_CAP = "macronode/capability-key/v1/"
AAD_IDENTITY = "macronode/identity/v1"
AAD_POLICY = "macronode/policy-signing-key/v1"


def read_kek(path):
    """The 32 KEK bytes of a KEK file (raw, or 64 hex and a newline)."""
    with open(path, "rb") as f:
        data = f.read()
    return data if len(data) == 32 else bytes.fromhex(data.decode().strip())


def unseal(blob, kek_path, aad):
    """Open a sealed key file independently of the binary (the `cryptography`
    package's ChaCha20-Poly1305): AAD = the 25 header bytes + aad."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    assert blob[:5] == b"RKMS\x01", blob[:5]
    nonce = blob[13:25]
    return ChaCha20Poly1305(read_kek(kek_path)).decrypt(nonce, blob[SEAL_HEADER:],
                                                        blob[:SEAL_HEADER] + aad.encode())


def identity_seed(key_path):
    """The 32-byte Ed25519 seed of a node's identity.key (<data>/node/identity.key):
    sealed under the node's KEK beside its data dir (<data>.kek), or the clear
    hex of an earlier version."""
    with open(key_path, "rb") as f:
        blob = f.read()
    if blob[:4] == b"RKMS":
        data_dir = os.path.dirname(os.path.dirname(key_path))
        return unseal(blob, data_dir + ".kek", AAD_IDENTITY)[:32]
    return bytes.fromhex(blob.decode().strip())[:32]


def _wall_material():
    """One signing keypair and one MAC key per test session (copied per node)."""
    if not _wall_cache:
        d = tempfile.mkdtemp(prefix="mn-wall-")
        import atexit
        atexit.register(shutil.rmtree, d, True)
        r = subprocess.run([BIN, "policy", "keygen", "--out", os.path.join(d, "signing")],
                           capture_output=True, timeout=30, env=dict(base_env(), **kek_env()))
        assert r.returncode == 0, r.stderr
        key = os.path.join(d, WALL_KID + ".key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (os.urandom(32).hex() + "\n").encode())
        os.close(fd)
        _wall_cache["dir"] = d
    return _wall_cache["dir"]


def install_wall(data_dir, bundle=OPEN_BUNDLE, sign=True, keys=True):
    """Put a MAC key and a signed bundle where the node looks by default:
    <data>/auth/keys/k1.key, <data>/policy/policy.json(.sig), signing.pub."""
    src = _wall_material()
    kdir = os.path.join(data_dir, "auth", "keys")
    pdir = os.path.join(data_dir, "policy")
    os.makedirs(kdir, mode=0o700, exist_ok=True)
    os.makedirs(pdir, mode=0o700, exist_ok=True)
    if keys:
        shutil.copy2(os.path.join(src, WALL_KID + ".key"), os.path.join(kdir, WALL_KID + ".key"))
    for f in ("signing.pub", "signing.key"):
        shutil.copy2(os.path.join(src, f), os.path.join(pdir, f))
    if bundle is not None:
        write_bundle(data_dir, bundle, sign=sign)


def write_bundle(data_dir, bundle, sign=True, raw=None):
    """Write (and sign with the session key) <data>/policy/policy.json."""
    path = os.path.join(data_dir, "policy", "policy.json")
    text = raw if raw is not None else json.dumps(bundle, indent=1)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    if sign:
        r = subprocess.run([BIN, "policy", "sign", path, "--key",
                            os.path.join(data_dir, "policy", "signing.key")],
                           capture_output=True, timeout=30, env=dict(base_env(), **kek_env()))
        assert r.returncode == 0, r.stderr
    return path


def wall_env(d):
    """RON_* variables pointing a node at a wall installed under d."""
    return {"RON_AUTH_KEYS_DIR": os.path.join(d, "auth", "keys"),
            "RON_POLICY_FILE": os.path.join(d, "policy", "policy.json"),
            "RON_POLICY_PUBKEY": os.path.join(d, "policy", "signing.pub")}


def mint_token(data_dir, *args):
    """macronode token mint with the node's k1 key; returns the token string."""
    r = subprocess.run([BIN, "token", "mint", "--key",
                        os.path.join(data_dir, "auth", "keys", WALL_KID + ".key"),
                        "--kid", WALL_KID] + list(args), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


class Node:
    def __init__(self, tmp, tag, config=None, use_flags=False, args=(), env=None,
                 workers=1, config_file=True, wall="open"):
        self.tmp = tmp
        self.tag = tag
        self.admin_port, self.gateway_port = free_ports(2)
        self.admin_addr = "127.0.0.1:%d" % self.admin_port
        self.gateway_addr = "127.0.0.1:%d" % self.gateway_port
        self.data_dir = os.path.join(tmp, "data")
        self.config_path = os.path.join(tmp, "node.json")
        self.log_path = os.path.join(tmp, "node.log")
        self.use_flags = use_flags
        # Per-tenant quotas off unless a test sets them: many tests send
        # bursts from one address (the anonymous tenant "ip:127.0.0.1").
        base = {"gateway": {"workers": workers}, "quota": {"requests_per_second": 0}}
        if not use_flags:
            base = deep_merge(base, {"admin": {"addr": self.admin_addr},
                                     "gateway": {"addr": self.gateway_addr},
                                     "paths": {"data_dir": self.data_dir}})
        self.base_config = base
        self.config = deep_merge(base, config or {})
        self.has_config = config_file
        if config_file:
            self.write_config(self.config, merge=False)
        self.args = list(args)
        self.extra_env = {}
        # The open wall lives beside the data dir (amnesia tests need the data
        # dir untouched) and is found through the environment, so it applies
        # to nodes configured by file, flags or env alike.
        self.wall_dir = None
        if wall == "open":
            self.wall_dir = os.path.join(tmp, "wall")
            install_wall(self.wall_dir)
            self.extra_env.update(wall_env(self.wall_dir))
        self.extra_env.update(env or {})
        self.proc = None
        self.exit_code = None
        self._logf = None

    # -- config
    def write_config(self, cfg, merge=True, raw=None):
        """Write the node's config file (merged over the base: addresses, data dir)."""
        if raw is not None:
            text = raw
        else:
            text = json.dumps(deep_merge(self.base_config, cfg) if merge else cfg, indent=1)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- process
    def argv(self):
        a = [BIN, "run"]
        if self.has_config:
            a += ["--config", self.config_path]
        if self.use_flags:
            a += ["--http-addr", self.admin_addr, "--gateway-addr", self.gateway_addr,
                  "--data-dir", self.data_dir]
        return a + self.args

    def spawn(self):
        env = base_env()
        env[TAG_VAR] = self.tag
        env.update(run_env())
        env.update(self.extra_env)
        self._logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(), env=env, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf, cwd=self.tmp)
        return self

    def start(self, timeout=READY_TIMEOUT):
        self.spawn()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError("node exited with %d before ready; log:\n%s" % (rc, self.log()))
            try:
                last = http_request(self.admin_port, "GET", "/readyz", timeout=1.0)
                if last.status == 200:
                    return last
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("node not ready after %.0fs (last: %r); log:\n%s"
                             % (timeout, last, self.log()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.exit_code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Send sig and wait; returns the exit code (negative = killed by signal)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.wait_exit(timeout or 10 * SLOW)
        assert rc is not None, "node did not exit within %ss of signal %d" % (timeout, sig)
        return rc

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_records(self):
        recs = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                try:
                    recs.append(json.loads(line))
                except ValueError:
                    pass
        return recs

    def tagged_pids(self):
        return proc_scan(self.tag)

    # -- HTTP
    def get(self, path, **kw):
        return http_request(self.admin_port, "GET", path, **kw)

    def head(self, path, **kw):
        return http_request(self.admin_port, "HEAD", path, **kw)

    def post(self, path, body=b"", **kw):
        return http_request(self.admin_port, "POST", path, body=body, **kw)

    def gw(self, method, path, **kw):
        return http_request(self.gateway_port, method, path, **kw)

    def status(self):
        r = self.get("/api/v1/status")
        assert r.status == 200, r
        return r.json()

    def metrics(self):
        r = self.get("/metrics")
        assert r.status == 200, r
        return Metrics(r.body.decode())

    def children(self):
        return self.status()["children"]

    def child_pids(self):
        return [c["pid"] for c in self.children() if c["pid"] > 0]

    # -- teardown
    def cleanup(self):
        """Stop everything this node started. Returns a list of problems."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                problems.append("node ignored SIGTERM for %ss; SIGKILLed" % (10 * SLOW))
                self.proc.kill()
                self.proc.wait(timeout=10)
        # Children exit with the supervisor (PDEATHSIG / control channel).
        deadline = time.monotonic() + 5 * SLOW
        left = self.tagged_pids()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self.tagged_pids()
        if left:
            problems.append("processes left after the node exited: %s" %
                            [(p, b" ".join(proc_cmdline(p))) for p in left])
            for p in left:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
        if self._logf:
            self._logf.close()
            self._logf = None
        rep = sanitizer_report(self.log())
        if rep:
            problems.append("sanitizer report in node log:\n" + rep)
        return problems


@pytest.fixture
def tmp_dir():
    d = tempfile.mkdtemp(prefix="mn-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def node_factory(request):
    """node_factory(config=None, start=True, use_flags=False, args=(), env=None, workers=1)."""
    nodes = []
    dirs = []

    def make(config=None, start=True, **kw):
        tmp = tempfile.mkdtemp(prefix="mn-it-")
        dirs.append(tmp)
        n = Node(tmp, "%s-%s" % (os.getpid(), uuid.uuid4().hex), config=config, **kw)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    problems = []
    for n in nodes:
        problems += n.cleanup()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    if problems:
        pytest.fail("teardown: " + "\n".join(problems), pytrace=False)


@pytest.fixture
def node(node_factory):
    """A running node: one gateway worker, config file with the addresses."""
    return node_factory()


# ---------------------------------------------------------------- content plane helpers
# (objects, storage, TLS). Paths follow docs/internal.md and the storage layout
# <data_dir>/objects/<first 2 hex>/<64 hex> (+ ".ob" outboard), <data_dir>/meta/.

B3SUM = shutil.which("b3sum")
OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")
ZSTD = shutil.which("zstd")
CID_RE = re.compile(r"^b3:[0-9a-f]{64}$")


def b3sum_cid(data):
    """'b3:<hex>' of data, computed by the b3sum CLI (an independent implementation)."""
    assert B3SUM, "b3sum not installed"
    p = subprocess.run([B3SUM, "--no-names"], input=data, capture_output=True, check=True)
    hexd = p.stdout.decode().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", hexd), p.stdout
    return "b3:" + hexd


def b3sum_file(path):
    """'b3:<hex>' of a file (b3sum CLI)."""
    with open(path, "rb") as f:
        return b3sum_cid(f.read())


def cid_hex(cid):
    assert CID_RE.match(cid), cid
    return cid[3:]


def obj_path(cid):
    """Request path of an object: /o/b3:<hex>."""
    return "/o/" + cid


def blob_file(node, cid):
    """Where disk-mode storage keeps the blob of cid."""
    h = cid_hex(cid)
    return os.path.join(node.data_dir, "objects", h[:2], h)


def flip_byte(path, offset):
    """Flip one bit of the byte at offset, in place (same inode, so open fds see it)."""
    st = os.stat(path)
    os.chmod(path, st.st_mode | 0o200)
    try:
        with open(path, "r+b") as f:
            f.seek(offset)
            b = f.read(1)
            assert len(b) == 1, "offset %d past the end of %s" % (offset, path)
            f.seek(offset)
            f.write(bytes([b[0] ^ 0x01]))
            f.flush()
            os.fsync(f.fileno())
    finally:
        os.chmod(path, st.st_mode)


def service_children(node, service):
    return [c for c in node.children() if c.get("service") == service]


def storage_pid(node):
    """PID of the storage process (from /api/v1/status children), or 0 if down."""
    kids = service_children(node, "storage")
    assert len(kids) == 1, node.children()
    return kids[0]["pid"]


def gateway_pids(node):
    return [c["pid"] for c in service_children(node, "gateway") if c["pid"] > 0]


def open_fds(pid):
    """(fd, target) of each open file of pid, as /proc shows it; fds that
    close while being read are left out. OSError when pid is gone."""
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out.append((fd, os.readlink("/proc/%d/fd/%s" % (pid, fd))))
        except OSError:
            continue
    return out


def upload_begun(node):
    """Has a gateway process an upload's temp file open (storage answered
    PUT_BEGIN with its fd, <data_dir>/tmp/...)? The deterministic sign that
    a body is being stored, for tests that act in the middle of one."""
    tmp = os.path.realpath(os.path.join(node.data_dir, "tmp")) + "/"
    for pid in gateway_pids(node):
        try:
            if any(target.startswith(tmp) for _, target in open_fds(pid)):
                return True
        except OSError:
            continue
    return False


def all_ready(node):
    kids = node.children()
    return bool(kids) and all(c["state"] == "ready" and c["pid"] > 0 for c in kids)


def put_object(node, data, method="POST", path="/o", headers=None, timeout=30.0):
    h = {"Content-Type": "application/octet-stream"}
    h.update(headers or {})
    return node.gw(method, path, body=data, headers=h, timeout=timeout)


def stored(node, data, **kw):
    """PUT data; assert 201/200 and the b3sum id; return the cid."""
    r = put_object(node, data, **kw)
    assert r.status in (200, 201), r
    cid = r.json()["cid"]
    assert cid == b3sum_cid(data), (cid, r)
    return cid


def run_tool(argv, input=None, timeout=30.0, env=None):
    """Run a client tool (curl, openssl); returns CompletedProcess (bytes)."""
    e = base_env()
    if env:
        e.update(env)
    return subprocess.run(argv, input=input, capture_output=True, timeout=timeout * SLOW, env=e)


def _openssl(args, cwd):
    p = subprocess.run([OPENSSL] + args, cwd=cwd, capture_output=True, timeout=30)
    assert p.returncode == 0, (args, p.stderr.decode(errors="replace"))
    return p


class Pki:
    """A throwaway CA with server and client certificates (openssl CLI, EC P-256).

    Files in dir: ca.pem/ca.key, server.pem/server.key (CN=localhost, SAN
    DNS:localhost + IP:127.0.0.1, serial 0x1001), server2.* (CN=localhost-2,
    serial 0x2002, same SANs), client.pem/client.key (clientAuth, serial
    0x3003), and a second CA other-ca.* with other-client.* that the node
    must not trust. Every key is mode 0600."""

    def __init__(self, d):
        self.dir = d
        os.makedirs(d, exist_ok=True)
        self._ca("ca", "/CN=macronode test CA")
        self._ca("other-ca", "/CN=someone else's CA")
        san = "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
        self._leaf("server", "/CN=localhost", "ca", "0x1001", san)
        self._leaf("server2", "/CN=localhost-2", "ca", "0x2002", san)
        cli = "extendedKeyUsage=clientAuth\n"
        self._leaf("client", "/CN=test client", "ca", "0x3003", cli)
        self._leaf("other-client", "/CN=stranger", "other-ca", "0x4004", cli)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _key(self, name):
        _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-out", name + ".key"], self.dir)
        os.chmod(self.path(name + ".key"), 0o600)

    def _ca(self, name, subj):
        self._key(name)
        _openssl(["req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem",
                  "-days", "2", "-subj", subj,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)

    def _leaf(self, name, subj, ca, serial, ext):
        self._key(name)
        with open(self.path(name + ".ext"), "w") as f:
            f.write(ext)
        _openssl(["req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", subj],
                 self.dir)
        _openssl(["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
                  "-set_serial", serial, "-days", "2", "-out", name + ".pem",
                  "-extfile", name + ".ext"], self.dir)

    def tls_config(self, name="server", client_ca=False, **extra):
        cfg = {"cert_file": self.path(name + ".pem"), "key_file": self.path(name + ".key")}
        if client_ca:
            cfg["client_ca_file"] = self.path("ca.pem")
        cfg.update(extra)
        return {"tls": cfg}


@pytest.fixture(scope="module")
def pki():
    """Module-wide throwaway PKI (see Pki); removed afterwards."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    d = tempfile.mkdtemp(prefix="mn-pki-")
    try:
        yield Pki(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- OAP/1 helpers
# (docs/oap.md). A node with the omnigate service, a raw frame codec over TLS
# for protocol tests, and the `macronode put/get` client.

OAP_HDR = struct.Struct(">IHHHH16sHQ")   # len ver flags code app tenant cap_len corr
OAP_HDR_LEN = OAP_HDR.size               # 38
OAP_MAX_FRAME = 1 << 20
OAP_REQ, OAP_RESP, OAP_EVENT, OAP_START, OAP_END, OAP_ACK_REQ, OAP_COMP, OAP_APP_E2E = (
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80)
OAP_APP_HELLO, OAP_APP_OBJECTS = 0, 1
OAP_PING, OAP_STAT, OAP_GET, OAP_PUT = 1, 2, 3, 4
OAP_HELLO_REPLY = (b'{"max_frame":1048576,"max_inflight":64,"flags_supported":255,'
                   b'"versions":[1],"transports":["tcp+tls"]}')


def oap_frame(flags, code=0, app=OAP_APP_OBJECTS, corr=0, payload=b"", cap=b"",
              tenant=b"\0" * 16, ver=1, length=None):
    """Encode one frame; length overrides the len field (for lies)."""
    n = OAP_HDR_LEN + len(cap) + len(payload) if length is None else length
    return OAP_HDR.pack(n, ver, flags, code, app, tenant, len(cap), corr) + cap + payload


def oap_json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class OapFrame:
    def __init__(self, hdr, cap, payload):
        (self.len, self.ver, self.flags, self.code, self.app, self.tenant, self.cap_len,
         self.corr) = hdr
        self.cap = cap
        self.payload = payload

    def json(self):
        return json.loads(self.payload.decode())

    def __repr__(self):
        return "OapFrame(flags=0x%02x code=%d app=%d corr=%d len=%d payload=%r)" % (
            self.flags, self.code, self.app, self.corr, self.len, self.payload[:200])


def oap_tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


class OapConn:
    """One TLS connection to omnigate speaking raw frames."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1"):
        self.raw = raw_connect(port, host)
        self.sock = oap_tls_context().wrap_socket(self.raw, server_hostname="localhost")
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, flags, **kw):
        self.send(oap_frame(flags, **kw))

    def _fill(self, n):
        """Read until buf holds n bytes; False on EOF/reset."""
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self.buf)))
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def recv_frame(self):
        """The next frame, or None on EOF (socket.timeout propagates)."""
        if not self._fill(OAP_HDR_LEN):
            assert not self.buf, "EOF inside a frame header: %r" % self.buf
            return None
        hdr = OAP_HDR.unpack(self.buf[:OAP_HDR_LEN])
        n = hdr[0]
        assert OAP_HDR_LEN <= n <= OAP_MAX_FRAME, hdr
        assert self._fill(n), "EOF inside a frame of %d bytes" % n
        f = OapFrame(hdr, self.buf[OAP_HDR_LEN:OAP_HDR_LEN + hdr[6]],
                     self.buf[OAP_HDR_LEN + hdr[6]:n])
        self.buf = self.buf[n:]
        return f

    def hello(self, corr=1, tenant=b"\0" * 16):
        self.send_frame(OAP_REQ, app=OAP_APP_HELLO, corr=corr, tenant=tenant,
                        payload=b'{"ua":"macronode-tests"}')
        f = self.recv_frame()
        assert f is not None and f.code == 200 and f.corr == corr, f
        return f

    def closed_within(self, timeout):
        """True if the peer closes (EOF or reset) within timeout seconds;
        frames that arrive first are kept in self.frames_before_close."""
        self.frames_before_close = []
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                f = self.recv_frame()
            except socket.timeout:
                return False
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
                return True
            if f is None:
                return True
            self.frames_before_close.append(f)
        return False

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()


def oap_node(node_factory, pki, config=None, start=True, **kw):
    """A node running gateway, storage and omnigate, TLS from the module PKI;
    n.oap_port / n.oap_peer is the OAP/1 listener."""
    base = deep_merge({"services": ["gateway", "storage", "omnigate"]}, pki.tls_config())
    n = node_factory(deep_merge(base, config or {}), start=False, **kw)
    port = free_port()
    n.oap_port = port
    n.oap_peer = "127.0.0.1:%d" % port
    n.config = deep_merge(n.config, {"oap": {"addr": n.oap_peer}})
    n.write_config(n.config, merge=False)
    if start:
        n.start()
    return n


def mn_client(args, timeout=120.0, input=None, env=None):
    """Run `macronode put/get ...`; returns CompletedProcess with bytes output."""
    e = base_env()
    e.update(env or {})
    p = subprocess.run([BIN] + list(args), input=input, capture_output=True,
                       env=e, timeout=timeout * SLOW)
    rep = sanitizer_report(p.stderr.decode("utf-8", "replace"))
    assert rep is None, "sanitizer report from %r:\n%s" % (args, rep)
    return p
