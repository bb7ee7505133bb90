#!/usr/bin/env python3
"""A private Tor network on loopback, and two macronode nodes on it
(`make tor-test`; docs/tor.md "Testing").

The network is built the way Chutney builds one, from Debian's tor alone:
  - AUTHS directory authorities: identity and signing keys made with
    tor-gencert, relay fingerprints read with `tor --list-fingerprint`, one
    DirAuthority line each; they are relays too;
  - RELAYS more relays (guard, middle, exit to loopback, HSDir: the
    TestingDirAuthVote* options vote every flag at once);
  - TestingTorNetwork 1 and short voting intervals everywhere, so a
    consensus exists within tens of seconds instead of an hour.
Then node A and node B (gateway, storage, omnigate, dht, overlay) each run
their own tor (tor.launch) whose torrc %include's the network's
DirAuthority lines, with tor.only: their DHT records carry only their
onion addresses. B joins A's DHT (UDP on loopback: the DHT is not carried
by Tor, docs/tor.md), A stores an object, and B's GET of it misses, finds
A's onion in the DHT and fetches it through its tor's SOCKS port, over a
rendezvous circuit of the private network, verified group by group.

Printed at the end (and to --json FILE): the network's set-up time
(authorities + relays until a consensus lists them all; then the nodes'
tors bootstrapped and A's onion reachable) and the fetch's throughput.
Every process started here is stopped at the end, pass or fail.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("MACRONODE_BIN") or os.path.join(REPO, "build", "macronode")
# Run as root (make tor-test on a test machine, no "macronode" user), the
# node would refuse to start (node.user, docs/operations.md "Privileges").
if os.geteuid() == 0:
    os.environ.setdefault("RON_ALLOW_ROOT", "true")
TOR = shutil.which("tor") or "/usr/sbin/tor"
GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"

COMMON = """TestingTorNetwork 1
RunAsDaemon 0
ConnLimit 60
ShutdownWaitLength 0
SafeLogging 0
ProtocolWarnings 1
LogTimeGranularity 1
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
TestingClientConsensusDownloadInitialDelay 0
TestingServerConsensusDownloadInitialDelay 0
TestingClientDownloadInitialDelay 0
TestingServerDownloadInitialDelay 0
TestingBridgeDownloadInitialDelay 0
"""

AUTH = """AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ContactInfo auth@macronode.invalid
TestingV3AuthInitialVotingInterval 5
V3AuthVotingInterval 10
TestingV3AuthInitialVoteDelay 2
V3AuthVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthDistDelay 2
TestingV3AuthVotingStartOffset 0
"""

RELAY = """SocksPort 0
Address 127.0.0.1
ExitRelay 1
ExitPolicyRejectPrivate 0
ExitPolicy accept 127.0.0.0/8:*
ExitPolicy reject *:*
"""


_HANDED_OUT = set()  # ports already given out: bind(0) can repeat one once closed


def free_port():
    """A loopback port no earlier call in this process returned."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def log(msg, t0):
    print("[%7.1fs] %s" % (time.monotonic() - t0, msg), flush=True)


def wait(pred, timeout, what, step=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise TimeoutError("timed out after %.0fs waiting for %s" % (timeout, what))


class Net:
    def __init__(self, root, auths, relays):
        self.root = root
        self.nodes = []       # dicts: nick, dir, orport, dirport, auth
        self.procs = []
        for i in range(auths + relays):
            nick = "test%03d%s" % (i, "a" if i < auths else "r")
            self.nodes.append({"nick": nick, "dir": os.path.join(root, nick),
                               "orport": free_port(), "dirport": free_port(),
                               "auth": i < auths})

    def keys(self):
        lines = []
        for n in self.nodes:
            os.makedirs(os.path.join(n["dir"], "keys"), mode=0o700)
            if n["auth"]:
                k = os.path.join(n["dir"], "keys")
                subprocess.run([GENCERT, "--create-identity-key", "--passphrase-fd", "0",
                                "-i", k + "/authority_identity_key",
                                "-s", k + "/authority_signing_key",
                                "-c", k + "/authority_certificate", "-m", "12",
                                "-a", "127.0.0.1:%d" % n["dirport"]],
                               input=b"\n", check=True, capture_output=True, timeout=60)
                with open(k + "/authority_certificate") as f:
                    n["v3ident"] = [l.split()[1] for l in f if l.startswith("fingerprint ")][0]
            subprocess.run([TOR, "--list-fingerprint", "--DataDirectory", n["dir"],
                            "--ORPort", str(n["orport"]), "--Nickname", n["nick"],
                            "--DirAuthority", "x 127.0.0.1:1 " + "f" * 40,
                            "--Log", "err stderr"], check=True, capture_output=True, timeout=60)
            with open(os.path.join(n["dir"], "fingerprint")) as f:
                n["fpr"] = f.read().split()[1]
            if n["auth"]:
                lines.append("DirAuthority %s orport=%d no-v2 v3ident=%s 127.0.0.1:%d %s"
                             % (n["nick"], n["orport"], n["v3ident"], n["dirport"], n["fpr"]))
        self.dirauth = "\n".join(lines) + "\n"

    def torrc(self, n):
        text = COMMON + self.dirauth + (AUTH if n["auth"] else "") + RELAY
        text += ("DataDirectory %s\nNickname %s\nORPort %d\nDirPort %d\n"
                 "Log notice file %s/notice.log\n__OwningControllerProcess %d\n"
                 % (n["dir"], n["nick"], n["orport"], n["dirport"], n["dir"], os.getpid()))
        path = os.path.join(n["dir"], "torrc")
        with open(path, "w") as f:
            f.write(text)
        return path

    def client_include(self):
        """The fragment a node's own tor %include's: the network, as a client."""
        path = os.path.join(self.root, "client.torrc")
        with open(path, "w") as f:
            f.write(COMMON + self.dirauth)
        return path

    def start(self):
        for n in self.nodes:
            self.procs.append(subprocess.Popen([TOR, "-f", self.torrc(n), "--defaults-torrc",
                                                "/dev/null"], stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))

    def consensus_relays(self):
        """Relays in the newest consensus the first authority serves (0: none yet)."""
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.nodes[0]["dirport"], timeout=3)
            c.request("GET", "/tor/status-vote/current/consensus")
            r = c.getresponse()
            body = r.read().decode(errors="replace")
            return sum(1 for l in body.splitlines() if l.startswith("r ")) if r.status == 200 else 0
        except OSError:
            return 0

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


class Node:
    def __init__(self, root, name, include, boot=None):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.admin, self.gw, self.oap, self.udp, self.socks = (free_port() for _ in range(5))
        self.config = os.path.join(self.dir, "node.json")
        cfg = {"services": ["gateway", "storage", "omnigate", "dht", "overlay"],
               "admin": {"addr": "127.0.0.1:%d" % self.admin},
               "gateway": {"addr": "127.0.0.1:%d" % self.gw, "workers": 1},
               "oap": {"addr": "127.0.0.1:%d" % self.oap},
               "paths": {"data_dir": os.path.join(self.dir, "data")},
               "dht": {"addr": "127.0.0.1:%d" % self.udp,
                       "bootstrap": ["127.0.0.1:%d" % boot] if boot else [],
                       "lookup_timeout": "5s"},
               "overlay": {"fetch_timeout": "120s"},
               "storage": {"replicas": 1, "max_object": "64MiB"},
               "limits": {"max_body": "64MiB"},
               "quota": {"requests_per_second": 0},
               "tor": {"enabled": True, "launch": True, "control": "", "only": True,
                       "socks": "127.0.0.1:%d" % self.socks, "torrc_include": include}}
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        p = subprocess.run([BIN, "init", "--config", self.config], check=True,
                           capture_output=True, text=True, timeout=60)
        out = (p.stdout + p.stderr).splitlines()
        self.token = [out[i + 1].strip() for i, l in enumerate(out)
                      if l.startswith("Write token")][0]
        self.logf = open(os.path.join(self.dir, "node.log"), "ab")
        self.proc = subprocess.Popen([BIN, "run", "--config", self.config],
                                     stdout=self.logf, stderr=self.logf)

    def req(self, port, method, path, body=None, headers=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()

    def admin_json(self, path):
        try:
            s, b = self.req(self.admin, "GET", path)
            return json.loads(b) if s == 200 else None
        except (OSError, ValueError):
            return None

    def tor(self):
        r = self.admin_json("/readyz")
        return (r or {}).get("deps", {}).get("tor", {})

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.logf.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--auths", type=int, default=3)
    ap.add_argument("--relays", type=int, default=5)
    ap.add_argument("--size", type=int, default=8 << 20, help="object bytes")
    ap.add_argument("--json", help="write the figures here too")
    ap.add_argument("--keep", action="store_true", help="keep the directory (logs)")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="mn-tornet-")
    t0 = time.monotonic()
    net, nodes, figures = Net(root, a.auths, a.relays), [], {}
    ok = False
    try:
        net.keys()
        log("keys for %d authorities and %d relays (tor-gencert, --list-fingerprint)"
            % (a.auths, a.relays), t0)
        net.start()
        total = a.auths + a.relays
        wait(lambda: net.consensus_relays() >= total, 300, "a consensus with every relay")
        figures["consensus_s"] = round(time.monotonic() - t0, 1)
        log("consensus lists all %d relays" % total, t0)
        inc = net.client_include()
        na = Node(root, "A", inc)
        nodes.append(na)
        nb = Node(root, "B", inc, boot=na.udp)
        nodes.append(nb)
        for n, name in ((na, "A"), (nb, "B")):
            wait(lambda n=n: n.tor().get("state") == "up", 300, "node %s's tor at 100%%" % name)
            log("node %s: tor bootstrapped, onion %s" % (name, n.tor().get("onion")), t0)
        figures["tor_bootstrapped_s"] = round(time.monotonic() - t0, 1)
        a_onion = na.tor()["onion"]
        data = os.urandom(a.size)
        s, body = na.req(na.gw, "POST", "/o", body=data, timeout=60,
                         headers={"Authorization": "Bearer " + na.token})
        assert s in (200, 201), (s, body)
        cid = json.loads(body)["cid"]
        log("A stored %s (%d bytes)" % (cid, len(data)), t0)

        def a_announced():
            p = subprocess.run([BIN, "find", cid, "--config", nb.config], capture_output=True,
                               text=True, timeout=30)
            return p.stdout if p.returncode == 0 and a_onion in p.stdout else ""
        line = wait(a_announced, 120, "A's provider record with its onion, seen from B")
        assert "127.0.0.1:%d" % na.oap not in line, "tor.only: A's IP published: " + line
        log("B finds A in the DHT by onion only: %s" % line.strip(), t0)
        # The first GET: the onion service must be reachable (descriptor
        # published, introduction and rendezvous); a miss that fails early
        # (502/504) is retried until the service answers.
        tf = time.monotonic()
        got = None
        while time.monotonic() - tf < 300:
            t1 = time.monotonic()
            s, body = nb.req(nb.gw, "GET", "/o/" + cid, timeout=180)
            t2 = time.monotonic()
            if s == 200:
                got = body
                break
            log("B's GET: %d (the onion not reachable yet); again" % s, t0)
            time.sleep(2)
        assert got == data, "B did not get A's bytes through Tor"
        figures["setup_s"] = round(t1 - t0, 1)
        figures["first_fetch_s"] = round(t2 - t1, 2)
        figures["first_fetch_MiB_s"] = round(len(data) / (t2 - t1) / (1 << 20), 2)
        log("B fetched %d bytes from A's onion in %.2fs (%.2f MiB/s), verified"
            % (len(data), t2 - t1, figures["first_fetch_MiB_s"]), t0)
        # The tunnel alone (circuits warm): the CLI through B's tor's SOCKS port
        nid = na.admin_json("/version")["node_id"]
        out = os.path.join(root, "cli.out")
        t3 = time.monotonic()
        p = subprocess.run([BIN, "get", cid, "--peer", a_onion, "--pin-node", nid, "--socks",
                            "127.0.0.1:%d" % nb.socks, "-o", out, "--timeout", "120"],
                           capture_output=True, text=True, timeout=300)
        t4 = time.monotonic()
        assert p.returncode == 0, p.stderr
        with open(out, "rb") as f:
            assert f.read() == data
        figures["cli_fetch_s"] = round(t4 - t3, 2)
        figures["cli_fetch_MiB_s"] = round(len(data) / (t4 - t3) / (1 << 20), 2)
        log("macronode get --socks through B's tor: %.2fs (%.2f MiB/s)"
            % (t4 - t3, figures["cli_fetch_MiB_s"]), t0)
        s, _ = nb.req(nb.gw, "GET", "/o/" + cid)
        assert s == 200
        m = nb.req(nb.admin, "GET", "/metrics")[1].decode()
        assert 'overlay_fetches_total{status="200"} 1' in m
        figures.update({"auths": a.auths, "relays": a.relays, "object_bytes": a.size})
        ok = True
    finally:
        for n in nodes:
            n.stop()
        net.stop()
        print(json.dumps(figures), flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f, indent=1)
        if a.keep or not ok:
            print("logs kept in " + root, flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)
    log("tor-test: passed" if ok else "tor-test: FAILED", t0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
