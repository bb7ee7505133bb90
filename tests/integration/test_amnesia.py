"""Amnesia, proven (issue 15; docs/amnesia.md).

1. test_amnesia_run_leaves_nothing: every writable location the node could
   use is listed (path, type, mode, size, mtime, inode) before an amnesia run
   with every service, which stores objects, publishes names, takes tokens
   minted from two capability keys (a rotation in the provisioned keys
   directory, picked up by a reload), reads everything back and is stopped
   with SIGTERM; the listings after must equal the ones before.
2. test_no_secret_in_environ_cmdline_or_open_files: no process of the node
   (supervisor and every service, found through the process tree) carries
   a secret in /proc/PID/environ, cmdline or an open file; every one has a
   core limit of 0 and is not dumpable.

Where the shared directories come from. /dev/shm, /var/tmp and /tmp are
written all the time by whatever else runs on the host (other tests, other
nodes), so a listing of the real ones cannot prove who made an entry, and
filtering them by "names the node might use" would assume the answer. The
node therefore runs in a mount namespace of its own (unshare -m) where
/dev/shm, /var/tmp and /tmp are bind mounts of fresh directories the test
made on the same file systems (/dev/shm/mn-amnesia-*, /var/tmp/mn-amnesia-*,
/tmp/mn-amnesia-*). Nothing but the node's process tree sees them, so every
difference in them is the node's: no filter at all. The test's own
directories under /tmp (the node's config and log, the provisioned keys)
are bound back into the private /tmp at their usual paths. That the node
really writes through these mounts is checked while it runs: its runtime
directory (/dev/shm/macronode-<pid>) shows up in the private /dev/shm.
$TMPDIR and $HOME are fresh directories of their own inside the node's test
directory, which is listed as a whole (its working directory too).

Amnesia and keys. The capability keys of an amnesia node are an input the
operator provisions (auth.keys_dir, outside the data dir, sealed under a KEK
named by keys.kek_file / RON_KEK_FILE). `macronode key rotate` with the
node's amnesia config writes the new sealed key there and nowhere else: it
refuses a keys dir under the data dir and never creates a KEK (asserted
below). The node loads the new key at its next reload into locked memory
only and itself never writes to the directory (its listing is compared). The node identity is made in
memory at every start (test_identity.py proves it differs per run); here
its absence from every listing is part of the empty difference.
"""
import gzip
import http.client
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile

import pytest

from conftest import (AAD_CAP, AAD_IDENTITY, AAD_POLICY, BIN, b3sum_cid, free_ports, open_fds,
                      read_kek, run_cli, unseal, wait_until, SLOW)

SERVICES = ["gateway", "storage", "index", "omnigate", "dht", "overlay", "audit"]
ADMIN_TOKEN = "amnesia-admin-token-" + os.urandom(12).hex()
WRITE = ("--prefix", "/", "--ttl", "1h")           # every method, every path
SETPRIV = shutil.which("setpriv")
UNSHARE = shutil.which("unshare")
# The node and the dumpable probe run without CAP_SYS_PTRACE in their
# bounding set (see probe_dumpable); the node never needs it.
NO_PTRACE = [SETPRIV, "--bounding-set", "-sys_ptrace", "--"] if SETPRIV else []


# ---------------------------------------------------------------- listings

def listing(root, skip=()):
    """{relative path: (type, mode, size, mtime_ns, inode)} of root and
    everything beneath it, symlinks not followed. skip: relative paths whose
    size and mtime are not compared (still their existence, type, inode)."""
    out = {}

    def one(rel, path):
        st = os.lstat(path)
        kind = stat.S_IFMT(st.st_mode)
        if rel in skip:
            out[rel] = (kind, st.st_mode, None, None, st.st_ino)
        else:
            out[rel] = (kind, st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino)
        return stat.S_ISDIR(st.st_mode)

    if not os.path.lexists(root):
        return out
    if one(".", root):
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                p = os.path.join(dirpath, name)
                one(os.path.relpath(p, root), p)
    return out


def diff(before, after):
    """Human-readable differences between two listings (empty = same)."""
    out = []
    for k in sorted(set(before) | set(after)):
        if k not in after:
            out.append("removed %s" % k)
        elif k not in before:
            out.append("created %s %r" % (k, after[k]))
        elif before[k] != after[k]:
            out.append("changed %s %r -> %r" % (k, before[k], after[k]))
    return out


class Places:
    """Every writable place of one node run, listed by name."""

    def __init__(self):
        self.roots = {}       # name -> (path, skip)

    def add(self, name, path, skip=()):
        self.roots[name] = (path, frozenset(skip))

    def snapshot(self):
        return {name: listing(p, skip) for name, (p, skip) in self.roots.items()}

    @staticmethod
    def assert_same(before, after, what):
        problems = []
        for name in before:
            problems += ["%s: %s" % (name, d) for d in diff(before[name], after[name])]
        assert not problems, "%s:\n%s" % (what, "\n".join(problems))


# ---------------------------------------------------------------- the private namespace

class PrivateShared:
    """Fresh stand-ins for /dev/shm, /var/tmp and /tmp, each on the file
    system of the real one, bound over it in the node's mount namespace."""

    def __init__(self):
        self.shm = tempfile.mkdtemp(prefix="mn-amnesia-", dir="/dev/shm")
        self.var_tmp = tempfile.mkdtemp(prefix="mn-amnesia-", dir="/var/tmp")
        self.tmp = tempfile.mkdtemp(prefix="mn-amnesia-", dir="/tmp")
        self.exposed = []

    def expose(self, path):
        """Keep the test's directory `path` (under /tmp) reachable at its path."""
        path = os.path.realpath(path)
        assert os.path.dirname(path) == "/tmp", path
        os.mkdir(os.path.join(self.tmp, os.path.basename(path)), 0o700)   # the mount point
        self.exposed.append(path)

    def wrap(self, argv):
        q = shlex.quote
        script = ["set -e",
                  "mount --bind %s /dev/shm" % q(self.shm),
                  "mount --bind %s /var/tmp" % q(self.var_tmp)]
        script += ["mount --bind %s %s" % (q(p), q(os.path.join(self.tmp, os.path.basename(p))))
                   for p in self.exposed]
        script += ["mount --rbind %s /tmp" % q(self.tmp), 'exec "$@"']
        return [UNSHARE, "--mount", "--propagation", "private", "--", "sh", "-c",
                "\n".join(script), "sh"] + argv

    def add_to(self, places):
        # One trace is allowed, and only this one: the mtime of /dev/shm
        # itself moves, because the runtime dir (/dev/shm/macronode-<pid>,
        # sockets only) is made at start and removed at exit; the test sees
        # it there while the node runs and gone after (a directory's mtime
        # says that something was made or removed in it, and when, nothing
        # more). Every entry beneath is compared in full.
        places.add("/dev/shm", self.shm, skip={"."})
        places.add("/var/tmp", self.var_tmp)
        # The mount points of the exposed directories are listed as what they
        # are outside the namespace: empty directories the test made.
        places.add("/tmp", self.tmp)

    def cleanup(self):
        for d in (self.shm, self.var_tmp, self.tmp):
            shutil.rmtree(d, ignore_errors=True)


def can_unshare():
    if not UNSHARE or not SETPRIV:
        return False
    p = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "--", "sh", "-c",
                        "mount -t tmpfs none /mnt"], capture_output=True, timeout=10)
    return p.returncode == 0


needs_ns = pytest.mark.skipif(not can_unshare(), reason="needs unshare -m and setpriv (root)")


@pytest.fixture
def private_shared():
    ps = PrivateShared()
    yield ps
    ps.cleanup()


def wrap_argv(n, prefix_fn):
    """Start the node n through prefix_fn(argv) (the supervisor keeps the pid:
    unshare, sh and setpriv each exec the next)."""
    plain = n.argv
    n.argv = lambda: prefix_fn(plain())


# ---------------------------------------------------------------- provisioning

def operator(node_factory):
    """What an operator provisions for an amnesia node: `macronode init` on a
    config that is not in amnesia mode gives a KEK, sealed capability key k1,
    a signed policy bundle (writes need a token) and its public key. The
    amnesia node reads them as inputs; it is the operator who rotates."""
    src = node_factory(start=False, wall=None)
    p = run_cli(["init", "--config", src.config_path])
    assert p.returncode == 0, (p.stdout, p.stderr)
    return src


def keys_dir(src):
    return os.path.join(src.data_dir, "auth", "keys")


def kek_file(src):
    return src.data_dir + ".kek"


def mint(src, kid, *args):
    p = run_cli(["token", "mint", "--key", os.path.join(keys_dir(src), kid + ".key"),
                 "--kid", kid] + list(args or WRITE), env={"RON_KEK_FILE": kek_file(src)})
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def amnesia_node(node_factory, src, extra_env=None, config=None):
    udp, oap = free_ports(2)
    tmp_env = {}
    n = node_factory(start=False, wall=None, config=dict({
        "amnesia": True, "services": SERVICES,
        "audit": {"checkpoint_interval": "1s"},
        "oap": {"addr": "127.0.0.1:%d" % oap},
        "dht": {"addr": "127.0.0.1:%d" % udp}}, **(config or {})))
    for name, var in (("home", "HOME"), ("tmpdir", "TMPDIR")):
        d = os.path.join(n.tmp, name)
        os.mkdir(d, 0o700)
        tmp_env[var] = d
    n.extra_env.update(tmp_env)
    n.extra_env.update({
        "RON_KEK_FILE": kek_file(src),
        "RON_AUTH_KEYS_DIR": keys_dir(src),
        "RON_POLICY_FILE": os.path.join(src.data_dir, "policy", "policy.json"),
        "RON_POLICY_PUBKEY": os.path.join(src.data_dir, "policy", "signing.pub")})
    n.extra_env.update(extra_env or {})
    # The log is the harness's capture of the node's stderr (a file the test
    # opens and hands over as fd 2), made now so the listing before has it.
    open(n.log_path, "ab").close()
    return n


# ---------------------------------------------------------------- the workload
# Each step is one function of (node, state); a new kind of record the node
# keeps is one more step (the audit records: receives_audit_records).

def gw(n, method, path, body=None, token=None, ctype="application/octet-stream"):
    h = {"Content-Type": ctype}
    if token:
        h["Authorization"] = "Bearer " + token
    return n.gw(method, path, body=body, headers=h, timeout=30.0)


def stores_objects(n, st):
    """PUT objects (one empty, one of several 64 KiB groups, one under its id)."""
    for data in (b"", b"amnesia object\n", os.urandom(300 * 1024 + 7)):
        r = gw(n, "PUT", "/o", data, st["tokens"][0])
        assert r.status == 201, r
        st["objects"][r.json()["cid"]] = data
    data = b"stored under a known id\n"
    cid = b3sum_cid(data)
    r = gw(n, "PUT", "/o/" + cid, data, st["tokens"][0])
    assert r.status == 201, r
    st["objects"][cid] = data
    # a chunked upload (size unknown up front) and a gzip one (decoded on the way in)
    data = os.urandom(200 * 1024)
    c = http.client.HTTPConnection("127.0.0.1", n.gateway_port, timeout=30 * SLOW)
    try:
        c.request("PUT", "/o", body=iter([data[:70000], data[70000:]]), encode_chunked=True,
                  headers={"Authorization": "Bearer " + st["tokens"][0],
                           "Content-Type": "application/octet-stream"})
        r = c.getresponse()
        assert r.status == 201, (r.status, r.read())
        st["objects"][json.loads(r.read())["cid"]] = data
    finally:
        c.close()
    data = os.urandom(20000).hex().encode()          # about 2:1, under the bomb ratio
    r = n.gw("PUT", "/o", body=gzip.compress(data), timeout=30.0, headers={
        "Authorization": "Bearer " + st["tokens"][0], "Content-Encoding": "gzip",
        "Content-Type": "application/octet-stream"})
    assert r.status == 201 and r.json()["cid"] == b3sum_cid(data), r
    st["objects"][r.json()["cid"]] = data
    assert gw(n, "PUT", "/o", b"no token\n").status == 401


def writes_names(n, st):
    """PUT /n/{name} twice (seq 2 signed by the run's identity), and history."""
    cids = sorted(c for c in st["objects"])
    for i, cid in enumerate(cids[:2]):
        r = gw(n, "PUT", "/n/amnesia/home", ('{"cid":"%s"}' % cid).encode(), st["tokens"][0],
               "application/json")
        assert r.status == (200 if i else 201) and r.json()["seq"] == i + 1, r
        st["names"]["amnesia/home"] = cid


def rotates_keys(n, st):
    """`macronode key rotate` on the amnesia node's own config writes the new
    sealed key into the provisioned keys dir only; the node reloads it. The
    same command refuses what would write the node's own places: a keys dir
    under the data dir, or a KEK it would have to create beside it."""
    src = st["src"]
    amn = {"RON_KEK_FILE": kek_file(src), "RON_AUTH_KEYS_DIR": keys_dir(src)}
    p = run_cli(["key", "rotate", "--kid", "k2", "--config", n.config_path],
                env={"RON_KEK_FILE": kek_file(src)})
    assert p.returncode == 1 and "refusing in amnesia mode" in p.stderr, p.stderr
    p = run_cli(["key", "rotate", "--kid", "k2", "--config", n.config_path],
                env={"RON_AUTH_KEYS_DIR": keys_dir(src)})
    assert p.returncode == 1 and "KEK" in p.stderr, p.stderr
    assert not os.path.exists(n.data_dir) and not os.path.exists(n.data_dir + ".kek")
    assert not os.path.exists(os.path.join(keys_dir(src), "k2.key"))
    p = run_cli(["key", "rotate", "--kid", "k2", "--config", n.config_path], env=amn)
    assert p.returncode == 0, p.stderr
    st["inputs_after_rotate"] = st["places_inputs"].snapshot()
    k2 = mint(src, "k2")
    assert gw(n, "PUT", "/o", b"k2 before the reload\n", k2).status == 401
    r = n.post("/api/v1/reload", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert r.status == 202, r
    wait_until(lambda: n.metrics().get("config_reloads_total", result="ok") == 1, 10 * SLOW,
               what="the reload")
    st["tokens"].append(k2)
    for kid, tok in zip(("k1", "k2"), st["tokens"]):   # k1 verifies through its grace
        body = b"written with a token of " + kid.encode() + b"\n"
        r = gw(n, "PUT", "/o", body, tok)
        assert r.status == 201, r
        st["objects"][r.json()["cid"]] = body


def reads_back(n, st):
    for cid, data in st["objects"].items():
        r = gw(n, "GET", "/o/" + cid)
        assert r.status == 200 and r.body == data, (cid, r)
    for name, cid in st["names"].items():
        r = gw(n, "GET", "/n/" + name)
        assert r.status == 200 and r.json()["cid"] == cid and r.json()["seq"] == 2, r
        r = gw(n, "GET", "/n/" + name + "?history=1")
        assert r.status == 200, r
        r = gw(n, "GET", "/n/" + name + "?fetch=1")
        assert r.status == 200 and r.body == st["objects"][cid], r


def receives_audit_records(n, st):
    """The audit service (RAM in amnesia) takes the records of this run (the
    reload above, the refused upload, the start) and proves them under a
    signed checkpoint, all in memory."""
    def covered():
        r = n.get("/api/v1/audit/proof?stream=admin&seq=0")
        return r if r.status == 200 else None
    r = wait_until(covered, 30 * SLOW, what="a checkpoint covering admin seq 0 (the reload)")
    p = r.json()
    assert json.loads(p["record"])["kind"] == "reload", p["record"]
    assert p["checkpoint"]["size"] >= 2
    ck = n.get("/api/v1/audit/checkpoint")
    assert ck.status == 200 and ck.json()["size"] >= p["checkpoint"]["size"], ck
    assert n.metrics().sum("audit_records_total") >= 2


WORKLOAD = (stores_objects, writes_names, rotates_keys, reads_back, receives_audit_records)


# ---------------------------------------------------------------- 1. nothing left

@needs_ns
def test_amnesia_run_leaves_nothing(node_factory, private_shared):
    src = operator(node_factory)
    n = amnesia_node(node_factory, src, {"RON_ADMIN_TOKEN": ADMIN_TOKEN})
    private_shared.expose(n.tmp)
    private_shared.expose(src.tmp)
    # A checkout under /tmp (CI clones there): the binary must stay
    # reachable in the namespace, whose /tmp is the fresh one.
    bin_parts = os.path.realpath(BIN).split(os.sep)
    if len(bin_parts) > 3 and bin_parts[1] == "tmp":
        private_shared.expose(os.sep.join(bin_parts[:3]))
    wrap_argv(n, lambda argv: private_shared.wrap(NO_PTRACE + argv))

    places = Places()
    # The node's own directory: config, log (size/mtime move: it is the
    # node's stderr), the data dir it must never create, $HOME, $TMPDIR, and
    # its working directory.
    places.add("node", n.tmp, skip={"node.log"})
    private_shared.add_to(places)
    inputs = Places()                 # what the operator provisioned
    inputs.add("operator", src.tmp)
    before, inputs_before = places.snapshot(), inputs.snapshot()
    assert not os.path.exists(n.data_dir)

    n.start()
    pid = n.proc.pid
    status = n.status()
    assert status["amnesia"] is True
    rd = status["runtime_dir"]
    assert rd == "/dev/shm/macronode-%d" % pid, rd
    # The node writes through the private mounts: its runtime dir is there.
    assert os.path.isdir(os.path.join(private_shared.shm, os.path.basename(rd)))
    assert not os.path.exists(rd), "the real /dev/shm holds the node's runtime dir"
    v = n.get("/version").json()
    assert v["amnesia"] is True and v["pq"] is False and "ML-KEM" in v["pq_reason"], v
    Places.assert_same(inputs_before, inputs.snapshot(), "the node wrote to its inputs")

    st = {"src": src, "tokens": [mint(src, "k1")], "objects": {}, "names": {},
          "places_inputs": inputs}
    for step in WORKLOAD:
        step(n, st)

    assert n.stop(signal.SIGTERM) == 0, n.log()
    Places.assert_same(before, places.snapshot(), "an amnesia run left something behind")
    Places.assert_same(st["inputs_after_rotate"], inputs.snapshot(),
                       "the amnesia node wrote to its provisioned inputs")
    log = n.log()
    for tok in st["tokens"] + [ADMIN_TOKEN]:
        assert tok not in log


# ---------------------------------------------------------------- 2. secrets

def process_tree(root):
    """root and every descendant (from /proc/*/stat parent links)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return sorted(out)


def needles(secrets):
    """Every form a secret could take in a byte string: raw, lower and upper
    hex, base64url (tokens are text already)."""
    import base64
    out = []
    for s in secrets:
        if isinstance(s, str):
            out.append(s.encode())
            continue
        out += [s, s.hex().encode(), s.hex().upper().encode(),
                base64.urlsafe_b64encode(s).rstrip(b"=")[:40], base64.b64encode(s)[:40]]
    return out


FD_READ_MAX = 64 << 20


def fd_findings(pid, secret_paths, ns, scanned):
    """Open files of pid that are secret files, or whose bytes hold a secret.
    scanned[0] counts the bytes read (the test asserts it is not zero)."""
    bad = []
    fd_dir = "/proc/%d/fd" % pid
    for fd, target in open_fds(pid):
        if target in secret_paths:
            bad.append("fd %s -> %s (a secret file)" % (fd, target))
            continue
        # regular files and memfds (objects, the metrics region): read them
        if target.startswith(("socket:", "pipe:", "anon_inode:", "/dev/")):
            continue
        try:
            with open(os.path.join(fd_dir, fd), "rb") as f:
                data = f.read(FD_READ_MAX)
        except OSError:
            continue
        scanned[0] += len(data)
        bad += ["fd %s -> %s holds a secret" % (fd, target) for s in ns if s in data]
    return bad


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4:6]
    raise AssertionError("no core limit for %d" % pid)


def probe_dumpable(pid):
    """True if pid is dumpable. /proc has no dumpable field, and root with
    CAP_SYS_PTRACE may read any process; a prober of the same uid without
    CAP_SYS_PTRACE (and no more capabilities than its target) may open
    /proc/PID/mem only of a dumpable process (ptrace_may_access)."""
    p = subprocess.run(NO_PTRACE + ["python3", "-c",
                                    "open('/proc/%d/mem', 'rb')" % pid],
                       capture_output=True, timeout=10)
    if p.returncode == 0:
        return True
    assert b"PermissionError" in p.stderr, p.stderr
    return False


@pytest.mark.skipif(not SETPRIV, reason="needs setpriv")
@pytest.mark.parametrize("mode", ["amnesia", "disk"])
def test_no_secret_in_environ_cmdline_or_open_files(node_factory, tmp_dir, mode):
    """The KEK (RON_KEK_FILE, or a systemd credential), the capability MAC
    keys, tokens, the admin token (RON_ADMIN_TOKEN, or admin.token_file) and
    (disk mode) the identity seed and policy signing key: none of them in
    any process's environ, cmdline or open files; no core dumps."""
    src = operator(node_factory)
    secret_paths = {kek_file(src)}
    if mode == "amnesia":
        tf = os.path.join(tmp_dir, "admin.token")
        fd = os.open(tf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (ADMIN_TOKEN + "\n").encode())
        os.close(fd)
        secret_paths.add(tf)
        n = amnesia_node(node_factory, src, config={"admin": {"token_file": tf}})
    else:
        # the disk node is the operator's own: init'd data dir, the KEK as a
        # systemd credential, the admin token through the environment
        cred = os.path.join(tmp_dir, "creds")
        os.mkdir(cred, 0o700)
        shutil.copy2(kek_file(src), os.path.join(cred, "macronode.kek"))
        os.unlink(kek_file(src))     # only the credential can be the KEK now
        secret_paths = {os.path.join(cred, "macronode.kek")}
        n = src
        n.extra_env.update({"CREDENTIALS_DIRECTORY": cred, "RON_ADMIN_TOKEN": ADMIN_TOKEN})
    kek_path = next(p for p in secret_paths if p.endswith(".kek"))
    kek = read_kek(kek_path)
    wrap_argv(n, lambda argv: NO_PTRACE + argv)
    n.start()
    if mode == "disk":
        p = run_cli(["key", "rotate", "--kid", "k2", "--config", n.config_path],
                    env={"CREDENTIALS_DIRECTORY": cred})
    else:
        p = run_cli(["key", "rotate", "--kid", "k2", "--config", src.config_path])
    assert p.returncode == 0, p.stderr
    r = n.post("/api/v1/reload", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert r.status == 202, r
    wait_until(lambda: n.metrics().get("config_reloads_total", result="ok") == 1, 10 * SLOW,
               what="the reload")

    secrets = [kek, ADMIN_TOKEN]
    for name in sorted(os.listdir(keys_dir(src))):
        if name.endswith(".key"):
            path = os.path.join(keys_dir(src), name)
            secret_paths.add(path)
            with open(path, "rb") as f:
                secrets.append(unseal(f.read(), kek_path, AAD_CAP + name[:-4]))
    if mode == "disk":
        for rel, aad in (("node/identity.key", AAD_IDENTITY), ("policy/signing.key", AAD_POLICY)):
            path = os.path.join(n.data_dir, rel)
            secret_paths.add(path)
            with open(path, "rb") as f:
                secrets.append(unseal(f.read(), kek_path, aad)[:32])
    tokens = []
    for kid in ("k1", "k2"):
        tok = _mint_with(src, kid, secret_paths, cred if mode == "disk" else None)
        tokens.append(tok)
        secrets.append(tok)
        # tokens in use: each stores an object, so the services have held them
        r = gw(n, "PUT", "/o", ("object of %s\n" % kid).encode(), tok)
        assert r.status == 201, r
        assert gw(n, "GET", "/o/" + r.json()["cid"]).status == 200
    ns = needles(secrets)

    pids = process_tree(n.proc.pid)
    roles = {c["pid"]: c["service"] for c in n.children()}
    assert set(roles) <= set(pids), (roles, pids)
    assert set(SERVICES if mode == "amnesia" else ["gateway", "storage"]) <= set(roles.values())
    assert len(pids) == len(roles) + 1, (pids, roles)
    problems, scanned = [], [0]
    for pid in pids:
        who = "%d (%s)" % (pid, roles.get(pid, "supervisor"))
        for f in ("environ", "cmdline"):
            with open("/proc/%d/%s" % (pid, f), "rb") as fh:
                data = fh.read()
            problems += ["%s: %s holds a secret" % (who, f) for s in ns if s in data]
        problems += ["%s: %s" % (who, x) for x in fd_findings(pid, secret_paths, ns, scanned)]
        if core_limit(pid) != ["0", "0"]:
            problems.append("%s: core limit %r" % (who, core_limit(pid)))
        if probe_dumpable(pid):
            problems.append("%s: dumpable" % who)
    assert not problems, "\n".join(problems)
    assert scanned[0] > 0, "no open file was read: the fd scan saw nothing"
    # The probe tells the two apart: a process of the same kind that is
    # dumpable is seen as dumpable.
    control = subprocess.Popen(NO_PTRACE + ["sleep", "30"])
    try:
        assert probe_dumpable(control.pid)
    finally:
        control.kill()
        control.wait()
    for tok in tokens:
        assert tok not in n.log()


def _mint_with(src, kid, secret_paths, cred):
    env = {"CREDENTIALS_DIRECTORY": cred, "RON_CONFIG": src.config_path} if cred else \
        {"RON_KEK_FILE": kek_file(src)}
    p = run_cli(["token", "mint", "--key", os.path.join(keys_dir(src), kid + ".key"),
                 "--kid", kid] + list(WRITE), env=env)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()
