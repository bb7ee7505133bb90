"""The Tor transport (docs/tor.md), fast: the node's control-port client and
its SOCKS5 dialer against small fakes speaking the real protocols
(tests/integration/tor_fakes.py) for the edges, and against Debian's real
`tor` where it is installed (skipped, with the reason, where it is not).
The private Tor network on loopback is `make tor-test` (tests/tor/).

- the onion service is added with the node's own sealed key, through cookie
  authentication, and its address shows in /version, /api/v1/status and
  `macronode id`; deps.tor follows the bootstrap; nothing secret is logged;
- a refused authentication, garbage, a missing ServiceID, an overlong line,
  tor gone: degraded with the reason and counted, never a crash, and the
  session comes back when tor does;
- amnesia: an ephemeral key (NEW:ED25519-V3, Flags=DiscardPK);
- misconfiguration refuses to start, naming the key;
- DHT provider records carry the onion beside the IP (tor.only: instead of
  it), and a node with Tor dials an onion provider through SOCKS5 (a domain
  name, never resolved here) with the node-id pin on top;
- `macronode get --socks`: through the proxy, refusals and a wrong pin.
"""
import base64
import json
import os
import shutil
import signal
import subprocess

import pytest

from conftest import (BIN, SLOW, b3sum_cid, free_port, free_ports, proc_scan, run_cli,
                      run_env, stored, unseal, wait_for)
from tor_fakes import FakeControl, FakeSocks, ed25519_scalar_base, onion_name

TOR = shutil.which("tor") or (os.path.exists("/usr/sbin/tor") and "/usr/sbin/tor")
AAD_ONION = "macronode/onion/v1"
T = 15.0 * SLOW


def tor_config(control, oap, socks="127.0.0.1:9", extra=None):
    cfg = {"services": ["gateway", "storage", "omnigate"],
           "oap": {"addr": "127.0.0.1:%d" % oap},
           "tor": {"enabled": True, "control": control, "socks": socks}}
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    return cfg


def readyz(node):
    return node.get("/readyz").json()


def tor_dep(node):
    return readyz(node)["deps"].get("tor")


def log_has_no(node, *secrets):
    text = node.log()
    for s in secrets:
        assert s not in text, "a secret in the node's log"


# ---------------------------------------------------------------- control port

def test_onion_published_with_sealed_key(node_factory, tmp_path):
    fake = FakeControl(str(tmp_path))
    oap = free_port()
    n = node_factory(config=tor_config(fake.addr, oap))
    try:
        wait_for(lambda: n.get("/version").json()["onion"], T, "the onion in /version")
        key_arg, name = fake.added[-1]
        onion = "%s.onion:%d" % (name, oap)
        v = n.get("/version").json()
        assert v["onion"] == onion and v["features"]["arti"] is True
        assert n.status().get("onion") == onion
        # cookie authentication with the cookie tor names, then ADD_ONION with
        # the node's key, port oap.addr's, forwarded to oap.addr
        assert "AUTHENTICATE " + fake.cookie.hex() in fake.commands
        assert key_arg.startswith("ED25519-V3:")
        add = [c for c in fake.commands if c.startswith("ADD_ONION")][-1]
        assert add.endswith("Port=%d,127.0.0.1:%d" % (oap, oap)), add
        assert "DiscardPK" not in add
        # the key is sealed on disk like the node's other keys, and is the one used
        kpath = os.path.join(n.data_dir, "node", "onion.key")
        assert os.stat(kpath).st_mode & 0o777 == 0o600
        blob = open(kpath, "rb").read()
        sk = base64.b64decode(key_arg[len("ED25519-V3:"):])
        assert sk not in blob and key_arg.encode() not in blob
        assert unseal(blob, n.data_dir + ".kek", AAD_ONION) == sk
        assert onion_name(ed25519_scalar_base(sk[:32])) == name
        # bootstrapping: degraded, named; 100 %: ready. The onion is known
        # from ADD_ONION's answer; the first GETINFO status/bootstrap-phase
        # comes after it, on the next tick.
        d = wait_for(lambda: (tor_dep(n) or {}).get("bootstrapped") and tor_dep(n), T,
                     "the first bootstrap answer")
        assert d["state"] == "bootstrapping" and d["bootstrapped"] == 10 and d["onion"] == onion
        r = readyz(n)
        assert r["status"] == "degraded" and r["ready"] is True
        assert any(x.startswith("tor: bootstrapping (10%") for x in r["reasons"]), r["reasons"]
        fake.progress, fake.tag = 100, "done"
        wait_for(lambda: tor_dep(n)["state"] == "up", T, "deps.tor up")
        assert readyz(n)["status"] == "ready"
        m = n.metrics()
        assert m.get("tor_up") == 1 and m.get("tor_bootstrap_percent") == 100
        # macronode id prints it too
        p = run_cli(["id", "--config", n.config_path], timeout=20)
        assert p.returncode == 0 and p.stdout.splitlines()[1] == "onion " + onion, p
        log_has_no(n, fake.cookie.hex(), key_arg[len("ED25519-V3:"):len("ED25519-V3:") + 40])
        # the same key, so the same onion, after a restart
        n.stop()
        n.start()
        wait_for(lambda: n.get("/version").json()["onion"] == onion, T, "the same onion")
        assert fake.added[-1][0] == key_arg
    finally:
        fake.close()


@pytest.mark.parametrize("mode,reason", [
    ("auth_fail", "auth"), ("garbage", "protocol"), ("no_serviceid", "onion"),
    ("long_line", "protocol"),
])
def test_bad_control_port_degrades(node_factory, tmp_path, mode, reason):
    fake = FakeControl(str(tmp_path), mode=mode)
    n = node_factory(config=tor_config(fake.addr, free_port()))
    try:
        wait_for(lambda: (n.metrics().get("tor_control_failures_total", reason=reason) or 0) >= 2,
                 T, "failures counted (%s), retried" % reason)
        r = readyz(n)
        assert r["ready"] is True and r["status"] == "degraded"
        d = r["deps"]["tor"]
        assert d["state"] == "down" and d["onion"] == "" and d["last_error"].startswith(reason + ":")
        assert any(x.startswith("tor: no control session (" + reason) for x in r["reasons"])
        assert n.get("/version").json()["onion"] == ""
        assert n.metrics().get("tor_up") == 0
        # still serving
        cid = stored(n, b"served without tor")
        assert n.gw("GET", "/o/" + cid).body == b"served without tor"
        assert n.running()
        log_has_no(n, fake.cookie.hex())
    finally:
        fake.close()


def test_service_of_another_key_refused(node_factory, tmp_path):
    fake = FakeControl(str(tmp_path), mode="wrong_key")
    n = node_factory(config=tor_config(fake.addr, free_port()))
    try:
        wait_for(lambda: (n.metrics().get("tor_control_failures_total", reason="onion") or 0) >= 1,
                 T, "the other key's service refused")
        d = tor_dep(n)
        assert d["state"] == "down" and d["onion"] == ""
        assert d["last_error"].startswith("onion: tor answered with the service of another key")
        assert n.get("/version").json()["onion"] == ""
    finally:
        fake.close()


def test_tor_down_then_back(node_factory, tmp_path):
    port = free_port()
    n = node_factory(config=tor_config("127.0.0.1:%d" % port, free_port()))
    wait_for(lambda: (n.metrics().get("tor_control_failures_total", reason="connect") or 0) >= 1,
             T, "connect failures counted")
    d = tor_dep(n)
    assert d["state"] == "down" and d["last_error"].startswith("connect:")
    assert readyz(n)["status"] == "degraded"
    fake = FakeControl(str(tmp_path), port=port)
    try:
        wait_for(lambda: n.get("/version").json()["onion"], T, "the onion once tor is there")
        fake.progress, fake.tag = 100, "done"
        wait_for(lambda: readyz(n)["status"] == "ready", T, "ready")
        first = n.get("/version").json()["onion"]
        # tor restarts: the control connection drops; the node adds the
        # service again on the next session, same key, same name
        adds = len(fake.added)
        fake.drop_all()
        wait_for(lambda: len(fake.added) > adds, T, "ADD_ONION again")
        assert fake.added[-1][0] == fake.added[0][0]
        wait_for(lambda: tor_dep(n)["state"] == "up", T, "up again")
        assert n.get("/version").json()["onion"] == first
    finally:
        fake.close()


def test_amnesia_ephemeral_key(node_factory, tmp_path):
    fake = FakeControl(str(tmp_path))
    n = node_factory(config=tor_config(fake.addr, free_port(), extra={"amnesia": True}))
    try:
        wait_for(lambda: n.get("/version").json()["onion"], T, "an onion")
        add = [c for c in fake.commands if c.startswith("ADD_ONION")][-1]
        assert add.startswith("ADD_ONION NEW:ED25519-V3 Flags=DiscardPK Port="), add
        assert n.get("/version").json()["onion"].startswith(fake.added[-1][1] + ".onion:")
        assert not os.path.exists(os.path.join(n.data_dir, "node", "onion.key"))
    finally:
        fake.close()


def test_null_auth_accepted(node_factory, tmp_path):
    fake = FakeControl(str(tmp_path), mode="null_auth")
    n = node_factory(config=tor_config(fake.addr, free_port()))
    try:
        wait_for(lambda: n.get("/version").json()["onion"], T, "an onion")
        assert "AUTHENTICATE" in fake.commands
    finally:
        fake.close()


@pytest.mark.parametrize("tor,key", [
    ({"only": True}, "tor.only"),
    ({"launch": True}, "tor.launch"),
    ({"enabled": True, "control": "nonsense"}, "tor.control"),
    ({"enabled": True, "socks": "10.0.0.1:9050"}, "tor.socks"),
    ({"enabled": True, "launch": True}, "tor.control"),   # control must be empty
    ({"enabled": True, "torrc_include": "/etc/hostname"}, "tor.torrc_include"),
])
def test_misconfiguration_refused(tmp_path, tor, key):
    cfg = {"services": ["gateway", "storage", "omnigate"], "paths": {"data_dir": str(tmp_path / "d")},
           "tor": tor}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    p = run_cli(["config", "validate", str(path)], timeout=20)
    assert p.returncode == 2 and key + ":" in p.stderr, p
    p = run_cli(["run", "--config", str(path)], timeout=20)
    assert p.returncode == 2 and key + ":" in p.stderr, p


@pytest.mark.parametrize("dht,services,key", [
    ({"addr": "0.0.0.0:4222"}, None, "dht.addr"),          # every interface
    ({"addr": "192.0.2.7:4222"}, None, "dht.addr"),        # a public address
    ({"addr": "[::]:4222"}, None, "dht.addr"),
    ({"addr": "[2001:db8::7]:4222"}, None, "dht.addr"),
    ({"addr": "10.1.2.3:4222", "bootstrap": ["10.1.2.4:4222", "198.51.100.9:4222"]}, None,
     "dht.bootstrap"),
    ({"addr": "127.0.0.1:4222"}, None, None),              # loopback: allowed
    ({"addr": "10.1.2.3:4222", "bootstrap": ["172.16.0.9:4222", "192.168.1.2:4222"]}, None,
     None),                                                # a private DHT: allowed
    ({"addr": "[fd00::7]:4222", "bootstrap": ["[fe80::1]:4222"]}, None, None),
    ({"addr": "0.0.0.0:4222"}, ["gateway", "storage", "omnigate"], None),   # no dht service
])
def test_tor_only_keeps_the_dht_private(tmp_path, dht, services, key):
    """tor.only: no IP of the node in anything it publishes, and the DHT's
    UDP shows the node's address to every participant: it must be bound to
    a loopback or private address and joined through such, or be off."""
    cfg = {"services": services or ["gateway", "storage", "omnigate", "dht"],
           "paths": {"data_dir": str(tmp_path / "d")}, "dht": dht,
           "tor": {"enabled": True, "only": True, "control": "127.0.0.1:9051"}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg))
    p = run_cli(["config", "validate", str(path)], timeout=20)
    if key is None:
        assert p.returncode == 0, p
        return
    assert p.returncode == 2 and key + ": with tor.only" in p.stderr, p
    assert "loopback or private" in p.stderr, p
    # without tor.only the same DHT is allowed (its records carry the IP anyway)
    cfg["tor"]["only"] = False
    path.write_text(json.dumps(cfg))
    assert run_cli(["config", "validate", str(path)], timeout=20).returncode == 0


def test_tor_needs_omnigate(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"services": ["gateway", "storage"], "tor": {"enabled": True}}))
    p = run_cli(["config", "validate", str(path)], timeout=20)
    assert p.returncode == 2 and "tor.enabled:" in p.stderr and "omnigate" in p.stderr, p


# ---------------------------------------------------------------- SOCKS5

def test_get_through_socks(node_factory):
    a = node_factory(config={"services": ["gateway", "storage", "omnigate"],
                             "oap": {"addr": "127.0.0.1:%d" % free_port()}})
    oap = int(a.config["oap"]["addr"].rsplit(":", 1)[1])
    name = onion_name(ed25519_scalar_base(os.urandom(32))) + ".onion"
    socks = FakeSocks({name: ("127.0.0.1", oap)})
    try:
        data = os.urandom(3 * 65536 + 7)
        cid = stored(a, data)
        nid = a.get("/version").json()["node_id"]
        out = os.path.join(a.tmp, "got")
        p = run_cli(["get", cid, "--peer", "%s:%d" % (name, oap), "--pin-node", nid,
                     "--socks", socks.addr, "-o", out, "--timeout", "10"], timeout=40)
        assert p.returncode == 0, p
        assert open(out, "rb").read() == data
        # by name (ATYP 3), never resolved here
        assert socks.requests[-1] == (3, name, oap)
        # the pin holds on top of the onion: another node id is refused
        other = "b3:" + "00" * 32
        p = run_cli(["get", cid, "--peer", "%s:%d" % (name, oap), "--pin-node", other,
                     "--socks", socks.addr, "--timeout", "10"], timeout=40)
        assert p.returncode == 1 and "pin" in p.stderr, p
        # tor's refusal, in words
        unknown = onion_name(ed25519_scalar_base(os.urandom(32))) + ".onion"
        p = run_cli(["get", cid, "--peer", "%s:%d" % (unknown, oap), "--pin-node", nid,
                     "--socks", socks.addr, "--timeout", "10"], timeout=40)
        assert p.returncode == 1 and "onion descriptor not found (0xf0)" in p.stderr, p
        # an onion without --socks is refused before any connection
        p = run_cli(["get", cid, "--peer", "%s:%d" % (name, oap), "--pin-node", nid], timeout=20)
        assert p.returncode == 2 and "no tor SOCKS port" in p.stderr, p
    finally:
        socks.close()
    noauth = FakeSocks(mode="no_auth")
    try:
        p = run_cli(["get", cid, "--peer", "%s:%d" % (name, oap), "--pin-node", nid,
                     "--socks", noauth.addr, "--timeout", "10"], timeout=40)
        assert p.returncode == 1 and "tor socks: auth" in p.stderr, p
    finally:
        noauth.close()


@pytest.mark.parametrize("host", ["%s.onion", "%s.ONION.", "www.%s.onion", "onion"])
def test_onion_never_resolved_outside_tor(tmp_path, host):
    """No DNS outside tor: an onion host with --ca or --insecure (the client
    plane, which resolves names) or in `name --gateway` is refused before
    any lookup, naming the way through tor."""
    name = host % onion_name(ed25519_scalar_base(os.urandom(32))) if "%s" in host else host
    peer = "%s:443" % name
    src = tmp_path / "f"
    src.write_bytes(b"x")
    cid = b3sum_cid(b"x")
    for args in (["get", cid, "--peer", peer, "--insecure"],
                 ["get", cid, "--peer", peer, "--ca", str(src)],
                 ["put", str(src), "--peer", peer, "--insecure"]):
        p = run_cli(args + ["--timeout", "5"], timeout=20)
        assert p.returncode == 2, p
        assert "an onion address is reached only through tor" in p.stderr, p
        assert "--socks" in p.stderr, p
    p = run_cli(["name", "resolve", "example", "--gateway", peer], timeout=20)
    assert p.returncode == 2 and "does not go through tor" in p.stderr, p


# ---------------------------------------------------------------- DHT records and the overlay

def dht_tor_config(udp, oap, control, socks, boot=(), only=False):
    return {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
            "oap": {"addr": "127.0.0.1:%d" % oap},
            "dht": {"addr": "127.0.0.1:%d" % udp, "bootstrap": list(boot), "lookup_timeout": "2s"},
            "overlay": {"fetch_timeout": "20s"},
            "storage": {"replicas": 1},
            "tor": {"enabled": True, "control": control, "socks": socks, "only": only}}


@pytest.mark.parametrize("only", [False, True])
def test_records_carry_onion_and_fetch_goes_through_socks(node_factory, tmp_path, only):
    udp = free_ports(2)
    oap = free_ports(2)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fa = FakeControl(str(tmp_path / "a"))
    fb = FakeControl(str(tmp_path / "b"))
    socks = FakeSocks()
    try:
        a = node_factory(config=dht_tor_config(udp[0], oap[0], fa.addr, socks.addr, only=only))
        b = node_factory(config=dht_tor_config(udp[1], oap[1], fb.addr, socks.addr,
                                               boot=["127.0.0.1:%d" % udp[0]], only=only))
        for n in (a, b):
            wait_for(lambda n=n: n.get("/version").json()["onion"], T, "onion on " + n.tag)
            wait_for(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, 20 * SLOW,
                     "a routing table on " + n.tag)
        a_onion = a.get("/version").json()["onion"]
        socks.routes[a_onion.rsplit(":", 1)[0]] = ("127.0.0.1", oap[0])
        data = os.urandom(2 * 65536 + 99)
        cid = stored(a, data)

        def found():
            p = run_cli(["find", cid, "--config", b.config_path], timeout=20)
            return p.stdout if p.returncode == 0 and a_onion in p.stdout else ""
        line = wait_for(found, 20 * SLOW, "A's record with its onion")
        # beside the IP, or (tor.only) instead of it: no IP of A published
        assert ("127.0.0.1:%d" % oap[0] in line) is (not only), line
        # B fetches on a miss: through SOCKS5, by name, verified
        r = b.gw("GET", "/o/" + cid)
        assert r.status == 200 and r.body == data and b3sum_cid(r.body) == cid
        assert (3, a_onion.rsplit(":", 1)[0], oap[0]) in socks.requests
        assert b.metrics().get("overlay_fetches_total", status="200") == 1
    finally:
        for f in (fa, fb, socks):
            f.close()


# ---------------------------------------------------------------- the real tor

def node_with_own_tor(node_factory, tmp_path, torrc_extra):
    """A node whose supervisor launches the real tor (tor.launch) with
    torrc_extra included: (node, its OAP/1 port, tor's SOCKS port, the
    included file)."""
    inc = tmp_path / "torrc.inc"
    inc.write_text(torrc_extra)
    oap, socks = free_ports(2)
    n = node_factory(config={"services": ["gateway", "storage", "omnigate"],
                             "oap": {"addr": "127.0.0.1:%d" % oap},
                             "tor": {"enabled": True, "launch": True, "control": "",
                                     "socks": "127.0.0.1:%d" % socks,
                                     "torrc_include": str(inc)}})
    return n, oap, socks, inc


@pytest.mark.skipif(not TOR, reason="tor is not installed (Debian package tor; scripts/deps.sh)")
def test_real_tor_launched(node_factory, tmp_path):
    """The supervisor's own tor (tor.launch), kept off any network
    (DisableNetwork 1: ADD_ONION works, bootstrap stays at 0): the onion is
    added through the real control socket with cookie authentication, tor
    is restarted when it dies, and goes when the node does."""
    n, oap, socks, inc = node_with_own_tor(node_factory, tmp_path, "DisableNetwork 1\n")
    wait_for(lambda: n.get("/version").json()["onion"], 30 * SLOW, "the onion from the real tor")
    onion = n.get("/version").json()["onion"]
    assert onion.endswith(".onion:%d" % oap) and len(onion.split(".")[0]) == 56
    d = tor_dep(n)
    assert d["state"] == "bootstrapping" and d["launched"] is True
    assert readyz(n)["status"] == "degraded"
    torrc = open(os.path.join(n.data_dir, "run", "tor", "torrc")).read()
    assert "CookieAuthentication 1" in torrc and "%include " + str(inc) in torrc
    # the name is the sealed key's: checked by the node against tor's answer
    blob = open(os.path.join(n.data_dir, "node", "onion.key"), "rb").read()
    sk = unseal(blob, n.data_dir + ".kek", AAD_ONION)
    assert onion_name(ed25519_scalar_base(sk[:32]))[:51] == onion[:51]
    # tor dies: restarted, the service added again, the same name
    pids = [p for p in proc_scan(n.tag) if "tor" == os.path.basename(
        open("/proc/%d/cmdline" % p, "rb").read().split(b"\0")[0].decode() or "x")]
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    wait_for(lambda: (n.metrics().get("tor_restarts_total") or 0) >= 1, T, "tor restarted")
    wait_for(lambda: (n.metrics().get("tor_control_failures_total", reason="connect") or 0) >= 1 or
             n.metrics().get("tor_up") == 1, T, "a new session")
    wait_for(lambda: n.metrics().get("tor_up") == 1, 30 * SLOW, "the session back")
    assert n.get("/version").json()["onion"] == onion
    n.stop()
    wait_for(lambda: not [p for p in proc_scan(n.tag)], 10, "tor gone with the node")


# A tor that never reaches a network and never idles on one: a test network
# whose only directory authority is a dead port on loopback, no fallback
# directories. Its SOCKS port is open at once and judges an onion address
# without a descriptor fetch.
OFFLINE_TORRC = """TestingTorNetwork 1
UseDefaultFallbackDirs 0
DirAuthority dead orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s
"""


@pytest.mark.skipif(not TOR, reason="tor is not installed (Debian package tor; scripts/deps.sh)")
def test_real_tor_socks(node_factory, tmp_path):
    """The SOCKS5 dialer against the real tor the supervisor launches: the
    greeting and method negotiation pass, CONNECT goes by name, and tor's
    refusal comes back named by its extended code (the generated torrc asks
    for ExtendedErrors; without it tor says only 'general failure')."""
    dead = free_ports(2)
    n, oap, socks, _ = node_with_own_tor(node_factory, tmp_path, OFFLINE_TORRC % (
        dead[0], "A" * 40, dead[1], "F" * 40))
    torrc = open(os.path.join(n.data_dir, "run", "tor", "torrc")).read()
    assert "SocksPort 127.0.0.1:%d ExtendedErrors\n" % socks in torrc, torrc
    wait_for(lambda: n.metrics().get("tor_up") == 1, 30 * SLOW, "a control session with tor")
    nid = n.get("/version").json()["node_id"]
    # a v3 name with a wrong checksum: tor refuses it without any circuit
    name = onion_name(ed25519_scalar_base(os.urandom(32))) + ".onion"
    cid = b3sum_cid(b"never fetched")
    p = run_cli(["get", cid, "--peer", "%s:1" % name, "--pin-node", nid,
                 "--socks", "127.0.0.1:%d" % socks, "--timeout", "10"], timeout=40)
    assert p.returncode == 1, p
    assert "tor socks" in p.stderr and "onion address invalid (0xf6)" in p.stderr, p
    assert "tor socks: auth" not in p.stderr and "tor socks: protocol" not in p.stderr, p
    # tor saw the name (by name, ATYP 3: it judged the onion itself)
    log = os.path.join(n.data_dir, "run", "tor", "tor.log")
    wait_for(lambda: "Invalid onion hostname" in open(log).read(), T, "tor's own refusal")
    n.stop()
    wait_for(lambda: not [p for p in proc_scan(n.tag)], 10, "tor gone with the node")


def test_tor_only_never_dials_an_ip(node_factory, tmp_path):
    """B with tor.only meets a provider that publishes only an IP: it is
    skipped and counted (no_onion), never dialed in the clear."""
    udp = free_ports(2)
    oap = free_ports(2)
    fb = FakeControl(str(tmp_path))
    socks = FakeSocks()
    try:
        plain = {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
                 "oap": {"addr": "127.0.0.1:%d" % oap[0]},
                 "dht": {"addr": "127.0.0.1:%d" % udp[0], "lookup_timeout": "2s"},
                 "storage": {"replicas": 1}}
        a = node_factory(config=plain)
        b = node_factory(config=dht_tor_config(udp[1], oap[1], fb.addr, socks.addr,
                                               boot=["127.0.0.1:%d" % udp[0]], only=True))
        for n in (a, b):
            wait_for(lambda n=n: n.metrics().sum("dht_routing_nodes") >= 1, 20 * SLOW,
                     "a routing table on " + n.tag)
        cid = stored(a, b"only an IP here")
        wait_for(lambda: "127.0.0.1:%d" % oap[0] in run_cli(
            ["find", cid, "--config", b.config_path], timeout=20).stdout, 20 * SLOW,
            "A's record (IP only)")
        r = b.gw("GET", "/o/" + cid)
        assert r.status == 404, r
        assert (b.metrics().get("overlay_peer_failures_total", reason="no_onion") or 0) >= 1
        assert socks.requests == []
        assert a.metrics().sum("oap_requests_total") == 0
    finally:
        fb.close()
        socks.close()


MIN_BIN = os.path.join(os.path.dirname(BIN), os.pardir, "build-min", "macronode")


@pytest.mark.skipif(not os.path.exists(MIN_BIN),
                    reason="no -Dtor=disabled build (make unit-min makes build-min/)")
def test_disabled_build(tmp_path):
    """-Dtor=disabled: features.arti false, tor.enabled refused naming the key."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"services": ["gateway", "storage", "omnigate"],
                                "tor": {"enabled": True}}))
    p = subprocess.run([MIN_BIN, "config", "validate", str(path)], capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 2 and "tor.enabled: this build has no Tor transport" in p.stderr, p
    admin, gw = free_ports(2)
    path.write_text(json.dumps({"admin": {"addr": "127.0.0.1:%d" % admin},
                                "gateway": {"addr": "127.0.0.1:%d" % gw},
                                "paths": {"data_dir": str(tmp_path / "d")}, "amnesia": True}))
    proc = subprocess.Popen([MIN_BIN, "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, **run_env()))
    try:
        def version():
            try:
                import http.client
                c = http.client.HTTPConnection("127.0.0.1", admin, timeout=2)
                c.request("GET", "/version")
                return json.loads(c.getresponse().read())
            except OSError:
                return None
        v = wait_for(version, T, "the -Dtor=disabled node's /version")
        assert v["features"]["arti"] is False and v["onion"] == ""
        assert v["features"]["zk"] is False and v["zk"] is False   # -Dzk=disabled too
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
