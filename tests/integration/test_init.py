"""`macronode init`: first-run capability key, signed default policy and one
write token; refuses to overwrite and in amnesia mode; a node started on the
result serves anonymous reads and token-holder writes (docs/auth.md)."""
import calendar
import json
import os
import re
import stat
import time

from conftest import AAD_CAP, AAD_POLICY, DEFAULT_BUNDLE, obj_path, put_object, run_cli, unseal

DAY = 86400
TTL = 30 * DAY
EXPIRES_RE = re.compile(r"^Write token \(shown once, not stored; expires "
                        r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\):$")


class Layout:
    """Where init puts things under a data dir (the defaults)."""

    def __init__(self, data_dir):
        self.data = data_dir
        self.keys = os.path.join(data_dir, "auth", "keys")
        self.key = os.path.join(self.keys, "k1.key")
        self.policy = os.path.join(data_dir, "policy")
        self.bundle = os.path.join(self.policy, "policy.json")
        self.sig = self.bundle + ".sig"
        self.signing_key = os.path.join(self.policy, "signing.key")
        self.signing_pub = os.path.join(self.policy, "signing.pub")

    def files(self):
        return [self.key, self.bundle, self.sig, self.signing_key, self.signing_pub]

    def snapshot(self):
        """Every file under the data dir: path -> (bytes, mode, mtime_ns, inode)."""
        out = {}
        for root, _, names in os.walk(self.data):
            for n in names:
                p = os.path.join(root, n)
                st = os.lstat(p)
                if not stat.S_ISREG(st.st_mode):     # a stopped node's sockets
                    out[p] = (None, st.st_mode, None, None)
                    continue
                with open(p, "rb") as f:
                    out[p] = (f.read(), st.st_mode, st.st_mtime_ns, st.st_ino)
        return out


def mode(path):
    return os.stat(path).st_mode & 0o7777


def init(node, *args, env=None):
    return run_cli(["init", "--config", node.config_path] + list(args), env=env)


def token_of(stdout):
    lines = stdout.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("Write token"))
    tok = lines[i + 1].strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,4096}", tok), lines[i + 1]
    return tok, EXPIRES_RE.match(lines[i]).group(1)


def inspect(token):
    p = run_cli(["token", "inspect", token])
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def caveats(claims):
    return {c["t"]: c["v"] for c in claims["caveats"]}


def initialised(node_factory, config=None):
    """A node (not started) whose data dir was set up by a successful init
    (wall=None: the harness installs nothing of its own)."""
    n = node_factory(config, start=False, wall=None)
    p = init(n)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return n, p


def test_init_creates_key_policy_and_token(node_factory):
    t0 = int(time.time())
    n, p = initialised(node_factory)
    lay = Layout(n.data_dir)
    # files, modes, nothing else (no temp file left behind)
    assert sorted(os.listdir(lay.keys)) == ["k1.key"]
    assert sorted(os.listdir(lay.policy)) == ["policy.json", "policy.json.sig",
                                              "signing.key", "signing.pub"]
    for d in (lay.data, lay.keys, lay.policy):
        assert mode(d) == 0o700, d
    assert mode(lay.key) == 0o600
    assert mode(lay.signing_key) == 0o600
    assert mode(lay.bundle) == 0o644
    # sealed under the KEK init made beside the data dir (mode 0400)
    kek = n.data_dir + ".kek"
    assert mode(kek) == 0o400
    with open(lay.key, "rb") as f:
        blob = f.read()
    assert blob[:5] == b"RKMS\x01" and len(blob) == 25 + 32 + 16
    raw = unseal(blob, kek, AAD_CAP + "k1")
    key_hex = raw.hex()
    assert raw not in blob and key_hex.encode() not in blob
    with open(lay.signing_key, "rb") as f:
        sk = unseal(f.read(), kek, AAD_POLICY)
    assert len(sk) == 64
    with open(lay.bundle) as f:
        assert json.load(f) == DEFAULT_BUNDLE
    v = run_cli(["policy", "verify", lay.bundle, "--pub", lay.signing_pub])
    assert v.returncode == 0, v.stderr
    assert v.stdout.strip() == "ok: %s version 1, 5 rules, signature valid" % lay.bundle
    # the token: claims, expiry, and where it is (and is not) printed
    tok, expires = token_of(p.stdout)
    claims = inspect(tok)
    assert claims["kid"] == "k1"
    assert re.fullmatch(r"[0-9a-f]{32}", claims["tid"]), claims
    assert claims["scope"] == {"prefix": "/o", "methods": ["GET", "HEAD", "PUT", "POST"],
                               "max_bytes": None}
    cav = caveats(claims)
    assert set(cav) == {"Exp", "Tenant"}, claims     # no auth.audience: no Aud caveat
    assert cav["Tenant"] == "owner"
    assert t0 + TTL <= cav["Exp"] <= int(time.time()) + TTL
    assert calendar.timegm(time.strptime(expires, "%Y-%m-%dT%H:%M:%SZ")) == cav["Exp"]
    out = p.stdout.splitlines()
    assert out[0] == "macronode init: created %s" % n.data_dir
    assert "  capability key      %s (kid k1)" % lay.key in out
    assert "  policy signing key  %s" % lay.signing_key in out
    assert ("  policy              %s (version 1, signed): anonymous GET/HEAD of objects; "
            "writes need a token" % lay.bundle) in out
    assert ("  curl -H 'Authorization: Bearer %s' --data-binary @FILE http://%s/o"
            % (tok, n.gateway_addr)) in out
    assert p.stdout.count(tok) == 2          # the token line and the curl line, nothing else
    assert p.stderr == ""
    assert tok not in p.stderr and key_hex not in p.stderr and key_hex not in p.stdout
    assert sk.hex() not in p.stdout + p.stderr
    assert "  KEK                 %s (created beside the data dir, mode 0400" % kek in p.stdout
    # the token is not stored anywhere under the data dir
    for data, _, _, _ in Layout(n.data_dir).snapshot().values():
        assert tok.encode() not in data


def test_init_puts_audience_in_token(node_factory):
    n, p = initialised(node_factory, {"auth": {"audience": "node-a"}})
    cav = caveats(inspect(token_of(p.stdout)[0]))
    assert set(cav) == {"Exp", "Aud", "Tenant"}
    assert cav["Aud"] == "node-a"


def test_second_init_refuses_and_changes_nothing(node_factory):
    n, _ = initialised(node_factory)
    lay = Layout(n.data_dir)
    before = lay.snapshot()
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert "refusing: %s already exists" % lay.key in p.stderr, p.stderr
    assert lay.snapshot() == before
    # the bundle alone is enough to refuse (keys moved away)
    os.rename(lay.key, lay.key + ".moved")
    before = lay.snapshot()
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "refusing: %s already exists" % lay.bundle in p.stderr, p.stderr
    assert lay.snapshot() == before


def test_init_if_needed(node_factory):
    """--if-needed (the unit's ExecStartPre): initialises without printing a
    token, then does nothing and changes nothing; a half-initialised node is
    left as it is; the node starts on what it made."""
    n = node_factory({}, start=False, wall=None)
    lay = Layout(n.data_dir)
    p = init(n, "--if-needed")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "unattended: no token printed" in p.stdout, p.stdout
    assert "Write token" not in p.stdout and "Bearer" not in p.stdout, p.stdout
    rest = re.sub(r"b3:[0-9a-f]{64}", "", p.stdout.replace(lay.data, ""))   # the node id
    assert not re.search(r"[A-Za-z0-9_-]{40,}", rest), p.stdout
    assert all(os.path.exists(f) for f in lay.files())
    before = lay.snapshot()
    p = init(n, "--if-needed")
    assert p.returncode == 0 and "nothing to do" in p.stdout, (p.stdout, p.stderr)
    assert lay.snapshot() == before
    n.start()
    assert n.get("/readyz").json()["deps"]["policy"]["state"] == "ok"
    n.stop()
    # the bundle gone, a key still there (an interrupted or hand-made set-up):
    # --if-needed touches nothing and lets the start go on (exit 0), naming the
    # file it found; a plain init still refuses
    os.rename(lay.bundle, lay.bundle + ".moved")
    before = lay.snapshot()
    p = init(n, "--if-needed")
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert "not fully set up" in p.stdout and "nothing done" in p.stdout, p.stdout
    assert lay.sig in p.stdout, p.stdout   # the first file of the node found
    assert lay.snapshot() == before
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)


def test_init_if_needed_never_blocks_an_operators_node(node_factory, tmp_path):
    """The unit runs init --if-needed before every start: a node that init
    does not set up (amnesia; a policy signed by the operator's own key) must
    start anyway, so --if-needed exits 0 there and writes nothing."""
    n = node_factory({"amnesia": True}, start=False, wall=None)
    p = init(n, "--if-needed")
    assert p.returncode == 0 and "amnesia" in p.stdout, (p.stdout, p.stderr)
    assert not os.path.exists(Layout(n.data_dir).key)
    assert init(n).returncode == 1          # plain init still refuses amnesia
    pub = tmp_path / "operator.pub"
    pub.write_text("not used by init\n")
    n = node_factory({"policy": {"pubkey_file": str(pub),
                                 "bundle_file": str(tmp_path / "operator.json")}},
                     start=False, wall=None)
    lay = Layout(n.data_dir)
    p = init(n, "--if-needed")
    assert p.returncode == 0 and "operator's key" in p.stdout, (p.stdout, p.stderr)
    assert not any(os.path.exists(f) for f in lay.files())
    assert init(n).returncode == 1          # plain init refuses to sign for it


def test_existing_bundle_refused_before_anything_is_written(node_factory):
    n = node_factory(start=False, wall=None)
    lay = Layout(n.data_dir)
    os.makedirs(lay.policy)
    with open(lay.bundle, "w") as f:
        f.write('{"version": 7, "rules": []}\n')
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "refusing: %s already exists" % lay.bundle in p.stderr, p.stderr
    assert not os.path.exists(lay.keys)
    assert sorted(os.listdir(lay.policy)) == ["policy.json"]
    with open(lay.bundle) as f:
        assert f.read() == '{"version": 7, "rules": []}\n'


def test_init_refuses_amnesia(node_factory):
    n = node_factory(start=False, wall=None)
    for args, env in ((["--amnesia"], None), ([], {"RON_AMNESIA": "1"})):
        p = init(n, *args, env=env)
        assert p.returncode == 1, (args, env, p.stdout, p.stderr)
        assert "refusing in amnesia mode" in p.stderr, p.stderr
        assert p.stdout == ""
        assert not os.path.exists(n.data_dir)


def test_init_refuses_foreign_pubkey(node_factory, tmp_dir):
    pub = os.path.join(tmp_dir, "other.pub")
    bundle = os.path.join(tmp_dir, "policy.json")
    n = node_factory({"policy": {"pubkey_file": pub, "bundle_file": bundle}}, start=False,
                     wall=None)
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert "policy.pubkey_file is %s" % pub in p.stderr, p.stderr
    assert "cannot sign for a key it does not hold" in p.stderr
    assert not os.path.exists(n.data_dir)
    assert sorted(os.listdir(tmp_dir)) == []


def test_failed_init_removes_what_it_created(node_factory):
    """A bundle path nobody can write (under /proc, even for root) fails after the
    key and signing keypair exist: they are removed, and a fixed init succeeds."""
    n = node_factory(start=False, wall=None)
    lay = Layout(n.data_dir)
    n.write_config({"policy": {"bundle_file": "/proc/policy.json",
                               "pubkey_file": lay.signing_pub}})
    p = init(n)
    assert p.returncode == 1, (p.stdout, p.stderr)
    assert p.stdout == ""
    assert "/proc/.policy.json.tmp: cannot write" in p.stderr, p.stderr
    for f in (lay.signing_pub, lay.signing_key, lay.key):
        assert "removed %s" % f in p.stderr, p.stderr
    assert os.listdir(lay.keys) == [] and os.listdir(lay.policy) == []
    n.write_config({})
    p = init(n)
    assert p.returncode == 0, (p.stdout, p.stderr)
    assert all(os.path.exists(f) for f in lay.files())


def test_init_usage(tmp_dir):
    p = run_cli(["init", "--help"])
    assert p.returncode == 0 and p.stdout.startswith("usage: macronode init"), p
    p = run_cli(["init", "--data-dir", os.path.join(tmp_dir, "d"), "--bogus"])
    assert p.returncode == 2, p
    assert "unknown or incomplete option '--bogus'" in p.stderr
    assert "usage: macronode init" in p.stderr
    p = run_cli(["init", "--data-dir", os.path.join(tmp_dir, "d"), "extra"])
    assert p.returncode == 2, p
    assert not os.path.exists(os.path.join(tmp_dir, "d"))


def test_node_on_initialised_data_dir(node_factory):
    """Anonymous reads pass the default policy; writes need the printed token."""
    n, p = initialised(node_factory)
    tok, _ = token_of(p.stdout)
    n.start()
    missing = "b3:" + "0" * 64
    r = n.gw("GET", obj_path(missing))
    assert r.status == 404, r
    body = b"stored by the first operator\n"
    r = put_object(n, body)
    assert r.status == 401, r
    assert (r.header("WWW-Authenticate") or "").startswith("Bearer"), r
    r = put_object(n, body, headers={"Authorization": "Bearer " + tok})
    assert r.status == 201, r
    cid = r.json()["cid"]
    r = n.gw("GET", obj_path(cid))
    assert r.status == 200, r
    assert r.body == body
    assert tok not in n.log(), "the write token reached the node log"
