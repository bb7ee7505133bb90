"""Keys at rest (docs/keys.md): the KEK, sealed key files, rotation and
retirement of capability keys, clear-text files of earlier versions, key
age on /metrics and /readyz, the post-quantum posture on /version."""
import os
import re
import time

from conftest import (AAD_CAP, AAD_IDENTITY, AAD_POLICY, SLOW, put_object, read_kek, run_cli,
                      unseal, wait_until)


def init(node):
    p = run_cli(["init", "--config", node.config_path])
    assert p.returncode == 0, (p.stdout, p.stderr)
    return p


def keys_dir(n):
    return os.path.join(n.data_dir, "auth", "keys")


def kek_of(n):
    return n.data_dir + ".kek"


def identity_file(n):
    return os.path.join(n.data_dir, "node", "identity.key")


def key(n, *args):
    return run_cli(["key"] + list(args) + ["--config", n.config_path])


def mint(n, kid):
    """A write token for /o signed with capability key kid (the CLI finds the
    node's KEK through RON_CONFIG)."""
    p = run_cli(["token", "mint", "--key", os.path.join(keys_dir(n), kid + ".key"),
                 "--kid", kid, "--prefix", "/o", "--method", "POST", "--ttl", "1h"],
                env={"RON_CONFIG": n.config_path})
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def put_with(n, tok, body):
    return put_object(n, body, headers={"Authorization": "Bearer " + tok})


def reload(n):
    """Reload and wait until the supervisor counts it done (202 is only
    the start)."""
    before = n.metrics().sum("config_reloads_total") or 0
    r = n.post("/api/v1/reload")
    assert r.status == 202, r
    wait_until(lambda: (n.metrics().sum("config_reloads_total") or 0) > before, 10 * SLOW,
               what="the reload done")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def secrets_of(n):
    """Every secret of the node as hex (and raw) needles: KEK, capability
    keys, identity, policy signing key."""
    out = [read_kek(kek_of(n))]
    for name in os.listdir(keys_dir(n)):
        if name.endswith(".key"):
            out.append(unseal(read(os.path.join(keys_dir(n), name)), kek_of(n),
                              AAD_CAP + name[:-4]))
    out.append(unseal(read(identity_file(n)), kek_of(n), AAD_IDENTITY))
    out.append(unseal(read(os.path.join(n.data_dir, "policy", "signing.key")), kek_of(n),
                      AAD_POLICY))
    return out


def assert_no_secret_in(text, secrets):
    for s in secrets:
        assert s.hex() not in text and s.hex().upper() not in text, "key bytes in output"
        assert s[:12].hex() not in text


def test_init_seals_everything_and_node_runs_on_it(node_factory):
    n = node_factory(start=False, wall=None)
    p = init(n)
    kek = kek_of(n)
    assert os.stat(kek).st_mode & 0o7777 == 0o400
    assert "KEK                 %s (created beside the data dir" % kek in p.stdout
    ident = read(identity_file(n))
    assert ident[:5] == b"RKMS\x01" and len(ident) == 25 + 64 + 16
    sk = unseal(ident, kek, AAD_IDENTITY)
    # the identity's secret half never lies on disk in any form
    assert sk not in ident and sk.hex().encode() not in ident
    n.start()
    node_id = n.get("/version").json()["node_id"]
    tok = mint(n, "k1")
    r = put_with(n, tok, b"sealed keys, first run\n")
    assert r.status == 201, r
    assert n.stop() == 0
    # a restart unseals the same keys: the old token and identity still hold
    n.start()
    assert n.get("/version").json()["node_id"] == node_id
    r = put_with(n, tok, b"sealed keys, second run\n")
    assert r.status == 201, r
    p = run_cli(["id", "--config", n.config_path])
    assert p.returncode == 0 and p.stdout.strip() == node_id, p
    secrets = secrets_of(n)
    assert n.stop() == 0
    assert_no_secret_in(n.log() + p.stdout + p.stderr, secrets)


def test_rotate_then_retire(node_factory):
    n = node_factory(start=False, wall=None)
    init(n)
    n.start()
    t1 = mint(n, "k1")
    p = key(n, "rotate", "--kid", "k2")
    assert p.returncode == 0, p.stderr
    assert "k2 now mints" in p.stdout
    assert "k1 keeps verifying until" in p.stdout
    blob = read(os.path.join(keys_dir(n), "k2.key"))
    assert blob[:5] == b"RKMS\x01"
    # a second rotate to an existing kid is refused
    assert key(n, "rotate", "--kid", "k2").returncode == 1
    p = key(n, "list")
    assert p.returncode == 0, p.stderr
    rows = {line.split()[0]: line.split() for line in p.stdout.splitlines()[1:]}
    assert rows["k2"][1] == "yes" and rows["k1"][1] == "-", p.stdout
    assert rows["k1"][3] == "yes" and rows["k2"][3] == "yes"       # sealed
    assert rows["k1"][4] == "until" and rows["k2"][4] == "yes", p.stdout
    reload(n)
    t2 = mint(n, "k2")
    assert put_with(n, t1, b"old kid in grace\n").status == 201
    assert put_with(n, t2, b"new kid\n").status == 201
    m = n.metrics()
    assert m.get("key_age_seconds", kid="k1") is not None
    assert m.get("key_age_seconds", kid="k2") is not None
    # the minting key cannot be retired; the old one can
    p = key(n, "retire", "--kid", "k2")
    assert p.returncode == 1 and "minting key" in p.stderr, p
    p = key(n, "retire", "--kid", "k1")
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(keys_dir(n))) == ["k2.key", "minting"]
    reload(n)
    r = put_with(n, t1, b"retired kid\n")
    assert r.status == 401, r
    assert put_with(n, t2, b"new kid still\n").status == 201
    # a sealed key renamed to another kid does not unseal: the reload is
    # refused and counted, the keys in force stay
    import shutil
    shutil.copy2(os.path.join(keys_dir(n), "k2.key"), os.path.join(keys_dir(n), "k3.key"))
    n.post("/api/v1/reload")
    # the reload is asynchronous (202): wait for its refusal to be counted
    wait_until(lambda: (n.metrics().get("key_load_refused_total", reason="unseal") or 0) >= 1,
               10 * SLOW, what="the refused key load counted")
    assert put_with(n, t2, b"kept after a refused load\n").status == 201
    wait_until(lambda: "k3.key" in n.log() and "does not unseal" in n.log(), 5 * SLOW,
               what="the refusal logged")


def test_rotate_with_retire_removes_the_previous_minting_key_at_once(node_factory):
    """`key rotate --kid NEW --retire`: NEW mints and the key that minted
    before is gone (not in grace); other keys keep their grace."""
    n = node_factory(start=False, wall=None)
    init(n)
    n.start()
    t1 = mint(n, "k1")
    assert key(n, "rotate", "--kid", "k2").returncode == 0       # k1 in grace
    p = key(n, "rotate", "--kid", "k3", "--retire")
    assert p.returncode == 0, p.stderr
    assert "k3 now mints" in p.stdout and "retired k2" in p.stdout, p.stdout
    assert "k2 keeps verifying" not in p.stdout, p.stdout
    assert sorted(os.listdir(keys_dir(n))) == ["k1.expires", "k1.key", "k3.key", "minting"]
    reload(n)
    assert put_with(n, t1, b"k1 still in its grace\n").status == 201
    t3 = mint(n, "k3")
    assert put_with(n, t3, b"new kid\n").status == 201
    # At once, not after a grace: the previous minting key's tokens are refused.
    p = key(n, "rotate", "--kid", "k4", "--retire")
    assert p.returncode == 0 and "retired k3" in p.stdout, p
    reload(n)
    assert put_with(n, t3, b"retired with the rotation\n").status == 401
    assert put_with(n, mint(n, "k4"), b"newest kid\n").status == 201
    assert sorted(os.listdir(keys_dir(n))) == ["k1.expires", "k1.key", "k4.key", "minting"]
    p = key(n, "list")
    rows = {line.split()[0]: line.split() for line in p.stdout.splitlines()[1:]}
    assert set(rows) == {"k1", "k4"} and rows["k4"][1] == "yes", p.stdout
    # --retire goes with rotate only; retire --kid OLD stays the way for any key.
    p = key(n, "retire", "--kid", "k1", "--retire")
    assert p.returncode == 2 and "--retire goes with rotate" in p.stderr, p
    assert key(n, "retire", "--kid", "k1").returncode == 0
    reload(n)
    assert put_with(n, t1, b"retired\n").status == 401


def test_grace_ends_verification_without_retire(node_factory):
    # The grace runs from the rotate (k1.expires = now + grace); the CLI, the
    # reload and the PUT must fit in it, so it is scaled for slow builds.
    grace = int(SLOW * 2)
    n = node_factory({"keys": {"grace": "%ds" % grace}}, start=False, wall=None)
    init(n)
    n.start()
    t1 = mint(n, "k1")
    assert key(n, "rotate", "--kid", "k2").returncode == 0
    reload(n)
    assert put_with(n, t1, b"within grace\n").status == 201
    # past its grace the old key stops verifying by itself (no reload)
    wait_until(lambda: put_with(n, t1, b"past grace\n").status == 401, grace + 5 * SLOW,
               interval=0.2, what="k1 refused once its grace is over")
    assert put_with(n, mint(n, "k2"), b"new key\n").status == 201


AAD_ONION = "macronode/onion/v1"
AAD_ZKPIN = "macronode/zk-params-pin/v1"


def seal(plain, kek_path, aad):
    """The ron-kms soft seal (docs/keys.md), made independently of the binary."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    head = b"RKMS\x01" + int(time.time() * 1000).to_bytes(8, "big") + os.urandom(12)
    return head + ChaCha20Poly1305(read_kek(kek_path)).encrypt(head[13:], plain,
                                                               head + aad.encode())


def write_mode(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    os.chmod(path, mode)


def test_clear_text_keys_read_with_warning_then_sealed(node_factory):
    """Files of an earlier version: read with a warning naming the file;
    `key seal` converts them in place and the node keeps its keys."""
    n = node_factory(start=False, wall=None)
    init(n)
    kek = kek_of(n)
    raw = os.urandom(32)
    legacy_key = os.path.join(keys_dir(n), "k1.key")
    write_mode(legacy_key, (raw.hex() + "\n").encode(), 0o600)
    sk = unseal(read(identity_file(n)), kek, AAD_IDENTITY)
    write_mode(identity_file(n), (sk.hex() + "\n").encode(), 0o600)
    n.start()
    node_id = n.get("/version").json()["node_id"]
    tok = mint(n, "k1")
    assert put_with(n, tok, b"clear-text key\n").status == 201
    warned = [r for r in n.log_records() if "clear-text key file" in r.get("msg", "")]
    files = {r.get("file") for r in warned}
    assert legacy_key in files and identity_file(n) in files, warned
    p = key(n, "list")
    assert re.search(r"^k1\s+\S+\s+\S+\s+NO\s", p.stdout, re.M), p.stdout
    assert n.stop() == 0
    p = key(n, "seal")
    assert p.returncode == 0, p.stderr
    assert "sealed %s" % legacy_key in p.stdout
    assert "sealed %s" % identity_file(n) in p.stdout
    for path in (legacy_key, identity_file(n)):
        data = read(path)
        assert data[:5] == b"RKMS\x01", path
        assert raw not in data and raw.hex().encode() not in data
        assert sk not in data and sk.hex().encode() not in data
        assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    assert unseal(read(legacy_key), kek, AAD_CAP + "k1") == raw
    # sealing again finds nothing to do
    p = key(n, "seal")
    assert p.returncode == 0 and "0 file(s) sealed" in p.stdout, p
    n.start()
    assert n.get("/version").json()["node_id"] == node_id
    assert put_with(n, tok, b"after seal\n").status == 201
    assert n.stop() == 0
    assert_no_secret_in(n.log(), [raw, sk, read_kek(kek)])


def test_kek_readable_by_others_refused(node_factory):
    n = node_factory(start=False, wall=None)
    init(n)
    os.chmod(kek_of(n), 0o644)
    p = run_cli(["run", "--config", n.config_path], timeout=30)
    assert p.returncode == 1, p
    assert "KEK file %s: mode 0644 lets group or others read it" % kek_of(n) in p.stderr, p.stderr
    p = run_cli(["check", "--config", n.config_path])
    assert p.returncode != 0
    assert re.search(r"^FAIL\s+kek\s+KEK file .*0644", p.stdout, re.M), p.stdout
    p = key(n, "list")
    assert p.returncode == 1 and "0644" in p.stderr


def test_wrong_kek_names_the_file_never_the_key(node_factory):
    n = node_factory(start=False, wall=None)
    init(n)
    old = read_kek(kek_of(n))
    os.chmod(kek_of(n), 0o600)
    other = os.urandom(32)
    write_mode(kek_of(n), (other.hex() + "\n").encode(), 0o400)
    p = run_cli(["run", "--config", n.config_path], timeout=30)
    assert p.returncode == 1, p
    assert identity_file(n) in p.stderr, p.stderr
    assert "wrong KEK" in p.stderr and kek_of(n) in p.stderr, p.stderr
    for k in (old, other):
        assert k.hex() not in p.stderr + p.stdout
    p = run_cli(["token", "mint", "--key", os.path.join(keys_dir(n), "k1.key"), "--kid", "k1"],
                env={"RON_CONFIG": n.config_path})
    assert p.returncode == 1 and "wrong KEK" in p.stderr, p
    # the capability key is bound to its kid: the right KEK, the wrong kid
    os.chmod(kek_of(n), 0o600)
    write_mode(kek_of(n), (old.hex() + "\n").encode(), 0o400)
    p = run_cli(["token", "mint", "--key", os.path.join(keys_dir(n), "k1.key"), "--kid", "k9"],
                env={"RON_CONFIG": n.config_path})
    assert p.returncode == 1 and "does not unseal" in p.stderr, p


def test_kek_from_environment_and_missing_file(node_factory, tmp_dir):
    kek = os.path.join(tmp_dir, "elsewhere.kek")
    write_mode(kek, (os.urandom(32).hex() + "\n").encode(), 0o400)
    n = node_factory(start=False, wall=None, env={"RON_KEK_FILE": kek})
    p = run_cli(["init", "--config", n.config_path], env={"RON_KEK_FILE": kek})
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(kek_of(n))           # none made beside the data dir
    assert "KEK                 %s (existing" % kek in p.stdout
    unseal(read(identity_file(n)), kek, AAD_IDENTITY)
    n.start()
    assert n.stop() == 0
    p = run_cli(["check", "--config", n.config_path], env={"RON_KEK_FILE": kek})
    assert re.search(r"^ok\s+kek\s+%s \(keys.kek_file\)" % re.escape(kek), p.stdout, re.M), p.stdout
    p = run_cli(["run", "--config", n.config_path], env={"RON_KEK_FILE": kek + ".gone"},
                timeout=30)
    assert p.returncode == 1 and "%s.gone (keys.kek_file): does not exist" % kek in p.stderr, p


def test_kek_credential_may_be_group_readable(node_factory, tmp_dir):
    """systemd >= 254 gives a unit with User= its credentials mode 0440 (+ an
    ACL): a KEK from $CREDENTIALS_DIRECTORY may have the group read bit; the
    same mode from keys.kek_file is still refused, as is any other bit, and
    so is the credential when its directory is not private."""
    cred = os.path.join(tmp_dir, "creds")
    os.mkdir(cred, 0o500)
    kek = os.path.join(cred, "macronode.kek")
    write_mode(kek, (os.urandom(32).hex() + "\n").encode(), 0o440)
    env = {"CREDENTIALS_DIRECTORY": cred}
    n = node_factory(start=False, wall=None, env=env)
    p = run_cli(["init", "--if-needed", "--config", n.config_path], env=env)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(kek_of(n))
    unseal(read(identity_file(n)), kek, AAD_IDENTITY)
    p = run_cli(["check", "--config", n.config_path], env=env)
    assert re.search(r"^ok\s+kek\s+%s \(systemd credential\)" % re.escape(kek), p.stdout,
                     re.M), p.stdout
    n.start()
    assert any(r.get("msg") == "KEK loaded" and r.get("source") == "systemd credential"
               for r in n.log_records()), n.log()
    assert n.stop() == 0
    p = run_cli(["run", "--config", n.config_path], env={"RON_KEK_FILE": kek}, timeout=30)
    assert p.returncode == 1 and "mode 0440 lets group or others read it" in p.stderr, p
    os.chmod(kek, 0o444)
    p = run_cli(["run", "--config", n.config_path], env=env, timeout=30)
    assert p.returncode == 1 and "mode 0444 lets group or others read it" in p.stderr, p
    # The exception holds only in a directory as private as systemd makes it.
    os.chmod(kek, 0o440)
    os.chmod(cred, 0o755)
    p = run_cli(["run", "--config", n.config_path], env=env, timeout=30)
    assert p.returncode == 1 and "mode 0755 lets group write or others in" in p.stderr, p
    os.chmod(cred, 0o700)


def test_readyz_degraded_past_max_age(node_factory):
    n = node_factory({"keys": {"max_age": "10ms"}}, start=False, wall=None)
    init(n)
    n.start()
    time.sleep(0.1)
    r = n.get("/readyz")
    assert r.status == 200, r
    body = r.json()
    assert body["status"] == "degraded", body
    assert any("k1" in x and "keys.max_age" in x for x in body["reasons"]), body
    assert body["deps"]["keys"]["state"] == "old" and body["deps"]["keys"]["minting"] == "k1"
    n.write_config({"keys": {"max_age": "720h"}})
    reload(n)
    body = n.get("/readyz").json()
    assert body["status"] == "ready" and body["deps"]["keys"]["state"] == "ok", body


def test_version_and_check_say_pq_false(node_factory):
    n = node_factory(start=False, wall=None)
    init(n)
    n.start()
    v = n.get("/version").json()
    assert v["pq"] is False and v["features"]["pq"] is False
    assert "ML-KEM" in v["pq_reason"] and "OpenSSL" in v["pq_reason"], v
    p = run_cli(["check", "--config", n.config_path])
    assert re.search(r"^info\s+pq\s+pq: false: .*ML-KEM", p.stdout, re.M), p.stdout
    assert re.search(r"^warn\s+kek\s+.*protects only against a copy of the data dir",
                     p.stdout, re.M), p.stdout


def test_amnesia_uses_sealed_keys_and_writes_no_kek(node_factory):
    """Amnesia reads sealed keys with a provided KEK, keeps them in memory
    only, and neither creates a KEK nor touches its data dir."""
    src = node_factory(start=False, wall=None)
    init(src)
    tok = mint(src, "k1")
    env = {"RON_KEK_FILE": kek_of(src),
           "RON_AUTH_KEYS_DIR": keys_dir(src),
           "RON_POLICY_FILE": os.path.join(src.data_dir, "policy", "policy.json"),
           "RON_POLICY_PUBKEY": os.path.join(src.data_dir, "policy", "signing.pub")}
    n = node_factory(args=["--amnesia"], wall=None, env=env)
    assert put_with(n, tok, b"amnesia, sealed key\n").status == 201
    r = put_object(n, b"no token\n")
    assert r.status == 401, r
    assert n.stop() == 0
    assert not os.path.exists(n.data_dir)
    assert not os.path.exists(kek_of(n))
    # without any KEK the sealed key is refused, naming the file: no token verifies
    env.pop("RON_KEK_FILE")
    m = node_factory(args=["--amnesia"], wall=None, env=env)
    assert put_with(m, tok, b"no KEK\n").status == 401
    assert "k1.key is sealed but no KEK is loaded" in m.log()
    assert not os.path.exists(kek_of(m))


def test_rekey_moves_every_file_to_a_new_kek(node_factory, tmp_dir):
    n = node_factory(start=False, wall=None)
    init(n)
    old = kek_of(n)
    n.start()
    node_id = n.get("/version").json()["node_id"]
    tok = mint(n, "k1")
    assert n.stop() == 0
    new = os.path.join(tmp_dir, "new.kek")
    write_mode(new, os.urandom(32), 0o400)                 # raw 32 bytes
    # Sealed under the same KEK though not keys of the wall: a Tor node's
    # onion key and the ZK parameter pin (made here as those features would).
    onion, zkpin = os.path.join(n.data_dir, "node", "onion.key"), \
        os.path.join(n.data_dir, "zk", "params.pin")
    os.makedirs(os.path.dirname(zkpin), mode=0o700)
    write_mode(onion, seal(os.urandom(64), old, AAD_ONION), 0o600)
    write_mode(zkpin, seal(os.urandom(32), old, AAD_ZKPIN), 0o600)
    files = ((os.path.join(keys_dir(n), "k1.key"), AAD_CAP + "k1"),
             (identity_file(n), AAD_IDENTITY),
             (os.path.join(n.data_dir, "policy", "signing.key"), AAD_POLICY),
             (onion, AAD_ONION), (zkpin, AAD_ZKPIN))
    before = {f: (unseal(read(f), old, aad), read(f)[5:13]) for f, aad in files}
    p = key(n, "rekey", "--new-kek", new)
    assert p.returncode == 0, p.stderr
    assert "5 file(s) re-sealed under %s" % new in p.stdout, p.stdout
    for f, aad in files:
        blob = read(f)
        assert (unseal(blob, new, aad), blob[5:13]) == before[f], f   # same key, same age
        assert os.stat(f).st_mode & 0o777 == 0o600
    # a rerun finds everything under the new KEK already
    p = key(n, "rekey", "--new-kek", new)
    assert p.returncode == 0 and "0 file(s) re-sealed" in p.stdout, p
    # the old KEK no longer opens anything; the new one runs the same node
    p = run_cli(["run", "--config", n.config_path], timeout=30)
    assert p.returncode == 1 and "wrong KEK" in p.stderr, p
    n.extra_env["RON_KEK_FILE"] = new
    n.start()
    assert n.get("/version").json()["node_id"] == node_id
    assert put_with(n, tok, b"after rekey\n").status == 201
    # a KEK readable by others is refused as the target too
    os.chmod(new, 0o644)
    p = run_cli(["key", "rekey", "--new-kek", new, "--config", n.config_path],
                env={"RON_KEK_FILE": new})
    assert p.returncode == 1 and "0644" in p.stderr, p
