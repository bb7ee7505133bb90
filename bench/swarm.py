"""bench/swarm.py (run through bench/swarm.sh or `make swarm`): a swarm of
SWARM_NODES macronode nodes on this machine's loopback, each with gateway
(1 worker), storage, omnigate, dht and overlay, amnesia mode (RAM store, no
disk), the first SWARM_BOOTSTRAP nodes as the others' DHT bootstrap.

It measures and prints:
- bootstrap: time from the first node's spawn until every node's DHT routing
  table holds a node (dht_routing_nodes > 0 on every /metrics);
- DHT lookup latency: FIND (docs/internal.md "DHT") on a node's dht.sock of
  an object held by another node, timed around the call; the same lookups as
  the dht services saw them (dht_lookup_seconds{verb="find"} histogram
  deltas, interpolated within its buckets); and a few `macronode find` runs
  (CLI process start included);
- fetch on miss: GET /o/{cid} on a node that does not hold the object (DHT
  lookup + verified peer fetch + store + serve), bytes compared with what
  was uploaded: MB/s and per-request latency p50/p95, one at a time and
  SWARM_PARALLEL at once on different nodes;
- memory per node: the sum of RssAnon of the supervisor and all of its
  descendants (objects live in memfds in amnesia mode: shared memory, not
  counted), mean and max over the nodes;
- replication: time until every node's repair loop reports each object it
  holds at storage.replicas live copies (rf_observed), then the time to heal
  after SIGKILL of SWARM_KILL_PCT (10) % of the nodes (never a bootstrap
  node): from the kill until every surviving node has finished two repair
  passes since and reports rf_observed >= the target again; the REPLICATE
  requests and bytes that took.

Standard library only. Exits non-zero only when the swarm cannot be set up
(a node does not start, an upload fails), never because of a number. Every
process started here (each node in its own session) and the temp directory
are removed at exit, on failure, Ctrl-C and SIGTERM alike.
"""
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, log  # noqa: E402

N = int(os.environ.get("SWARM_NODES", "50"))
NBOOT = max(1, min(int(os.environ.get("SWARM_BOOTSTRAP", "2")), N))
OBJECTS = int(os.environ.get("SWARM_OBJECTS", "3"))            # per node
OBJ_KIB = int(os.environ.get("SWARM_OBJ_KIB", "1024"))
LOOKUPS = int(os.environ.get("SWARM_LOOKUPS", "100"))
FETCHES = int(os.environ.get("SWARM_FETCHES", "50"))
PARALLEL = int(os.environ.get("SWARM_PARALLEL", "4"))
START_BATCH = int(os.environ.get("SWARM_START_BATCH", "5"))      # nodes spawned before a wait
KEEP = os.environ.get("SWARM_KEEP") == "1"
REPLICAS = int(os.environ.get("SWARM_REPLICAS", "3"))
REPAIR_S = int(os.environ.get("SWARM_REPAIR_S", "5"))             # overlay.repair_interval
KILL_PCT = int(os.environ.get("SWARM_KILL_PCT", "10"))
HEAL_TIMEOUT_S = int(os.environ.get("SWARM_HEAL_TIMEOUT_S", "300"))
SERVICES = ["gateway", "storage", "omnigate", "dht", "overlay"]
BOOT_TIMEOUT_S = 120
ANNOUNCE_TIMEOUT_S = 90


class Fatal(Exception):
    pass


def on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


# ------------------------------------------------------------------ ports

def free_ports(n):
    """n port numbers free for TCP and UDP on 127.0.0.1, all distinct (every
    probe socket is held until the whole set is chosen)."""
    held, out = [], []
    try:
        while len(out) < n:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            held.append(t)
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                u.close()
                continue
            held.append(u)
            out.append(port)
    finally:
        for s in held:
            s.close()
    return out


# ------------------------------------------------------------------ nodes

def req(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def parse_metrics(text):
    """[(name, {label: value}, float)] of a Prometheus text page."""
    out = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return out


class SwarmNode:
    def __init__(self, root, i, ports, wall, bootstrap):
        self.i = i
        self.dir = os.path.join(root, "n%03d" % i)
        os.mkdir(self.dir, 0o700)
        self.aport, self.gport, self.oport, self.uport = ports
        self.config_path = os.path.join(self.dir, "node.json")
        self.log_path = os.path.join(self.dir, "node.log")
        self.proc = None
        self.logf = None
        self.node_id = None
        cfg = {
            "amnesia": True,
            "services": SERVICES,
            "admin": {"addr": "127.0.0.1:%d" % self.aport},
            "gateway": {"addr": "127.0.0.1:%d" % self.gport, "workers": 1},
            "oap": {"addr": "127.0.0.1:%d" % self.oport},
            "dht": {"addr": "127.0.0.1:%d" % self.uport, "bootstrap": bootstrap},
            "paths": {"data_dir": os.path.join(self.dir, "data"),
                      "runtime_dir": os.path.join(self.dir, "run")},
            "auth": {"keys_dir": os.path.join(wall, "auth", "keys")},
            "policy": {"bundle_file": os.path.join(wall, "policy", "policy.json"),
                       "pubkey_file": os.path.join(wall, "policy", "signing.pub")},
            "storage": {"max_object": "%dKiB" % max(OBJ_KIB, 1024), "replicas": REPLICAS},
            "overlay": {"repair_interval": "%ds" % REPAIR_S},
            "limits": {"requests_per_second": 0, "max_body": "%dKiB" % max(OBJ_KIB, 1024)},
            "quota": {"requests_per_second": 0},
            "log": {"level": "warn"},
        }
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)

    def spawn(self):
        self.logf = open(self.log_path, "ab")
        # Own session: the node and every service it forks form one process
        # group that cleanup can signal by its id.
        self.proc = subprocess.Popen([BIN, "run", "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self.logf,
                                     stderr=self.logf, cwd=self.dir, start_new_session=True)

    def log_tail(self, n=15):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def wait_admin(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise Fatal("node %d exited with %s:\n%s" % (self.i, self.proc.returncode,
                                                           self.log_tail()))
            try:
                st, body = req(self.aport, "GET", "/version", timeout=2)
                if st == 200:
                    self.node_id = json.loads(body).get("node_id")
                    return
            except (OSError, http.client.HTTPException, ValueError):
                pass
            time.sleep(0.1)
        raise Fatal("node %d: admin plane not up within %ds:\n%s" % (self.i, timeout,
                                                                    self.log_tail()))

    def metrics(self):
        st, body = req(self.aport, "GET", "/metrics", timeout=5)
        if st != 200:
            raise Fatal("node %d: /metrics %d" % (self.i, st))
        return parse_metrics(body.decode())

    def metric_sum(self, name, m=None, **labels):
        m = m if m is not None else self.metrics()
        return sum(v for n, lab, v in m if n == name
                   and all(lab.get(k) == val for k, val in labels.items()))

    def pids(self):
        """The supervisor and every descendant (by /proc ppid links)."""
        if not self.proc or self.proc.poll() is not None:
            return []
        parent = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                parent[int(d)] = int(st[st.rindex(")") + 2:].split()[1])
            except (OSError, ValueError):
                pass
        out, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            p = frontier.pop()
            kids = [c for c, pp in parent.items() if pp == p]
            out += kids
            frontier += kids
        return out

    def rss_anon_kib(self):
        total = 0
        for p in self.pids():
            try:
                with open("/proc/%d/status" % p) as f:
                    for line in f:
                        if line.startswith("RssAnon:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def kill(self):
        """SIGKILL the node and all of its services at once (a machine lost)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except OSError:
                pass


def stop_all(nodes):
    for n in nodes:
        n.stop()
    end = time.monotonic() + 10
    for n in nodes:
        if n.proc is None:
            continue
        try:
            n.proc.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # The group is the session the node was started in: its services too.
        try:
            os.killpg(n.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if n.proc.poll() is None:
            n.proc.wait()
        if n.logf:
            n.logf.close()


# ------------------------------------------------------------------ figures

def pct(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def hist_pct(buckets, p):
    """Percentile from cumulative (le, count) buckets, linear within a bucket."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = p / 100.0 * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def find_hist(nodes):
    """Cumulative dht_lookup_seconds{verb="find"} buckets summed over nodes."""
    acc = {}
    for n in nodes:
        for name, lab, v in n.metrics():
            if name == "dht_lookup_seconds_bucket" and lab.get("verb") == "find":
                le = float("inf") if lab["le"] == "+Inf" else float(lab["le"])
                acc[le] = acc.get(le, 0.0) + v
    return acc


def ms(x):
    return "%.1f" % (x * 1000.0)


# ------------------------------------------------------------------ phases

def start_swarm(root, wall):
    ports = free_ports(4 * N)
    nodes = []
    boot = []
    for i in range(N):
        p = ports[4 * i:4 * i + 4]
        nodes.append(SwarmNode(root, i, p, wall, list(boot) if i > 0 else []))
        if i < NBOOT:
            boot.append("127.0.0.1:%d" % p[3])
    return nodes


def phase_boot(nodes):
    t0 = time.monotonic()
    for k in range(0, N, START_BATCH):
        batch = nodes[k:k + START_BATCH]
        for n in batch:
            n.spawn()
        for n in batch:            # pace the spawns on a shared 2-core box
            n.wait_admin()
    t_spawned = time.monotonic() - t0
    pending = set(range(N))
    while pending:
        if time.monotonic() - t0 > BOOT_TIMEOUT_S:
            raise Fatal("%d node(s) with an empty routing table after %ds: %s"
                        % (len(pending), BOOT_TIMEOUT_S, sorted(pending)[:10]))
        for i in list(pending):
            try:
                if nodes[i].metric_sum("dht_routing_nodes") > 0:
                    pending.discard(i)
            except (OSError, http.client.HTTPException):
                pass
        if pending:
            time.sleep(0.25)
    t_boot = time.monotonic() - t0
    sizes = [n.metric_sum("dht_routing_nodes") for n in nodes]
    return t_spawned, t_boot, sizes


def phase_store(nodes, token):
    """OBJECTS random objects per node; {cid: (holder index, bytes)}."""
    objs = {}
    for n in nodes:
        for _ in range(OBJECTS):
            data = os.urandom(OBJ_KIB * 1024)
            st, body = req(n.gport, "POST", "/o", data,
                           {"Authorization": "Bearer " + token,
                            "Content-Type": "application/octet-stream"})
            if st not in (200, 201):
                raise Fatal("node %d: POST /o -> %d %s" % (n.i, st, body[:200]))
            objs[json.loads(body)["cid"]] = (n.i, data)
    t0 = time.monotonic()
    want = N * OBJECTS
    while True:
        ok = sum(n.metric_sum("dht_announces_total", result="ok") for n in nodes)
        if ok >= want or time.monotonic() - t0 > ANNOUNCE_TIMEOUT_S:
            break
        time.sleep(0.5)
    return objs, ok, time.monotonic() - t0


OAP_HDR = struct.Struct(">IHHHH16sHQ")   # len ver flags code app tenant cap_len corr
OAP_REQ = 0x01
DHT_APP, DHT_FIND = 0x0200, 3               # docs/internal.md "DHT"


def rf_state(nodes):
    """{node index: (rf_observed, repair_passes_total)} of the live nodes."""
    out = {}
    for n in nodes:
        if n.proc.poll() is not None:
            continue
        try:
            m = n.metrics()
        except (OSError, http.client.HTTPException, Fatal):
            continue
        out[n.i] = (n.metric_sum("rf_observed", m), n.metric_sum("repair_passes_total", m))
    return out


def wait_rf(nodes, since_passes, target, timeout):
    """Seconds until every live node finished two repair passes after
    since_passes and reports rf_observed >= target; None on timeout, with the
    laggards."""
    t0 = time.monotonic()
    while True:
        st = rf_state(nodes)
        lag = [i for i, (rf, passes) in st.items()
               if rf < target or passes < since_passes.get(i, 0) + 2]
        if not lag:
            return time.monotonic() - t0, []
        if time.monotonic() - t0 > timeout:
            return None, lag
        time.sleep(0.5)


def replicate_stats(nodes):
    """(REPLICATE copies stored, bytes of them) summed over the live nodes."""
    alive = [n for n in nodes if n.proc.poll() is None]
    return (sum(n.metric_sum("repair_requests_total", result="stored") for n in alive),
            sum(n.metric_sum("repair_bytes_total") for n in alive))


def phase_replicate(nodes):
    """Right after the uploads: until every node reports each object it owns
    at REPLICAS live copies."""
    t, lag = wait_rf(nodes, {}, REPLICAS, HEAL_TIMEOUT_S)
    copies, nbytes = replicate_stats(nodes)
    if t is None:
        log("replication: %d node(s) still below rf %d after %d s: %s" %
            (len(lag), REPLICAS, HEAL_TIMEOUT_S, lag[:10]))
        return
    log("replication: every node at rf_observed >= %d %.1f s after the last upload "
        "(overlay.repair_interval %d s); %d REPLICATE copies stored, %.1f MiB"
        % (REPLICAS, t, REPAIR_S, copies, nbytes / 1048576.0))


def phase_heal(nodes):
    k = max(1, N * KILL_PCT // 100)
    victims = random.sample(nodes[NBOOT:], min(k, len(nodes) - NBOOT))
    for v in victims:              # their counters go with them: read them first
        v.dead_stats = replicate_stats([v])
    before = {i: passes for i, (rf, passes) in rf_state(nodes).items()}
    copies0, bytes0 = replicate_stats(nodes)
    copies0 -= sum(v.dead_stats[0] for v in victims)
    bytes0 -= sum(v.dead_stats[1] for v in victims)
    for v in victims:
        v.kill()
    t, lag = wait_rf(nodes, before, REPLICAS, HEAL_TIMEOUT_S)
    copies1, bytes1 = replicate_stats(nodes)
    names = sorted(v.i for v in victims)
    if t is None:
        log("replication heal: killed %d node(s) %s; %d node(s) still below rf %d after %d s: %s"
            % (len(victims), names, len(lag), REPLICAS, HEAL_TIMEOUT_S, lag[:10]))
        return
    log("replication heal: SIGKILL of %d node(s) (%d %%) %s; every survivor back at "
        "rf_observed >= %d (two repair passes each since) %.1f s later; %d REPLICATE copies, "
        "%.1f MiB re-replicated" % (len(victims), KILL_PCT, names, REPLICAS, t,
                                    copies1 - copies0, (bytes1 - bytes0) / 1048576.0))
    return victims


def dht_find(node, cid_hex):
    """One FIND on the node's dht.sock (what the overlay and the CLI send):
    (status, [oap_addr of each verified provider])."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(30)
    try:
        s.connect(os.path.join(node.dir, "run", "dht.sock"))
        payload = bytes.fromhex(cid_hex)
        s.send(OAP_HDR.pack(OAP_HDR.size + len(payload), 1, OAP_REQ, DHT_FIND, DHT_APP,
                            b"\0" * 16, 0, 1) + payload)
        data = s.recv(1 << 16)
    finally:
        s.close()
    hdr = OAP_HDR.unpack(data[:OAP_HDR.size])
    body = data[OAP_HDR.size + hdr[6]:]
    if hdr[3] != 200:
        return hdr[3], []
    addrs, off = [], 1
    for _ in range(body[0]):
        off += 32
        (alen,) = struct.unpack(">H", body[off:off + 2])
        addrs.append(body[off + 2:off + 2 + alen].decode())
        off += 2 + alen + 8
    return 200, addrs


def phase_lookups(nodes, objs):
    """LOOKUPS FINDs, each on a random node of a random object it does not
    hold, timed around the call on dht.sock (connect, request, reply); the
    same lookups as the dht services' histogram sees them; and 20 through
    the CLI (`macronode find`, process start included)."""
    cids = list(objs)
    before = find_hist(nodes)
    lat, found = [], 0
    for _ in range(LOOKUPS):
        cid = random.choice(cids)
        holder = nodes[objs[cid][0]]
        asker = random.choice([n for n in nodes if n is not holder])
        t = time.monotonic()
        st, addrs = dht_find(asker, cid[3:])
        lat.append(time.monotonic() - t)
        if st == 200 and "127.0.0.1:%d" % holder.oport in addrs:
            found += 1
    after = find_hist(nodes)
    buckets = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
    cli = []
    for _ in range(min(20, LOOKUPS)):
        cid = random.choice(cids)
        asker = random.choice([n for n in nodes if n.i != objs[cid][0]])
        t = time.monotonic()
        subprocess.run([BIN, "find", cid, "--config", asker.config_path],
                       capture_output=True, timeout=30)
        cli.append(time.monotonic() - t)
    return lat, found, buckets, cli


def fetch_one(nodes, objs, pair):
    ni, cid = pair
    t = time.monotonic()
    st, body = req(nodes[ni].gport, "GET", "/o/" + cid, timeout=60)
    dt = time.monotonic() - t
    return st == 200 and body == objs[cid][1], len(body) if st == 200 else 0, dt, st


def phase_fetch(nodes, objs, count, parallel, used):
    """count GETs of (node, cid) pairs never used before, the node not a holder."""
    cids = list(objs)
    pairs = []
    tries = 0
    while len(pairs) < count and tries < count * 100:
        tries += 1
        cid = random.choice(cids)
        ni = random.randrange(N)
        if ni == objs[cid][0] or (ni, cid) in used:
            continue
        used.add((ni, cid))
        pairs.append((ni, cid))
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(parallel) as ex:
        res = list(ex.map(lambda p: fetch_one(nodes, objs, p), pairs))
    wall = time.monotonic() - t0
    return res, wall


def report_fetch(label, res, wall):
    good = [r for r in res if r[0]]
    bad = {}
    for r in res:
        if not r[0]:
            bad[r[3]] = bad.get(r[3], 0) + 1
    nbytes = sum(r[1] for r in good)
    lat = [r[2] for r in good]
    line = "%-28s %3d/%-3d ok  %8.1f MB/s" % (label, len(good), len(res),
                                              nbytes / 1e6 / wall if wall > 0 else 0)
    if lat:
        line += "   latency p50 %s ms  p95 %s ms" % (ms(pct(lat, 50)), ms(pct(lat, 95)))
    if bad:
        line += "   failed by status: %s" % bad
    log(line)


def main():
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGHUP, on_sigterm)
    if not os.access(BIN, os.X_OK):
        raise Fatal("no binary at %s (make build)" % BIN)
    root = tempfile.mkdtemp(prefix="mn-swarm-")
    nodes = []
    failed = True
    try:
        wall = os.path.join(root, "wall")
        out = subprocess.run([BIN, "init", "--data-dir", wall], check=True,
                             capture_output=True, text=True).stdout
        lines = out.splitlines()
        token = lines[next(i for i, l in enumerate(lines) if l.startswith("Write token")) + 1]
        token = token.split()[0]

        log("# swarm: %d nodes on 127.0.0.1 loopback (no netem), amnesia, services %s, "
            "gateway.workers 1; %d bootstrap node(s); %d object(s) of %d KiB per node; "
            "%d CPUs" % (N, ",".join(SERVICES), NBOOT, OBJECTS, OBJ_KIB, os.cpu_count()))
        nodes = start_swarm(root, wall)
        t_spawned, t_boot, sizes = phase_boot(nodes)
        log("bootstrap: all %d admin planes up in %.1f s (spawned %d at a time); every "
            "routing table non-empty %.1f s after the first spawn (%.1f s after the last "
            "admin plane was up)" % (N, t_spawned, START_BATCH, t_boot, t_boot - t_spawned))
        log("routing table size at that moment: min %d  mean %.1f  max %d"
            % (min(sizes), statistics.mean(sizes), max(sizes)))

        objs, announced, t_ann = phase_store(nodes, token)
        log("stored %d objects (%d KiB each); %d/%d announces confirmed (%.1f s after the "
            "last upload)" % (len(objs), OBJ_KIB, announced, N * OBJECTS, t_ann))
        phase_replicate(nodes)
        sizes = [n.metric_sum("dht_routing_nodes") for n in nodes]
        log("routing table size now: min %d  mean %.1f  max %d"
            % (min(sizes), statistics.mean(sizes), max(sizes)))

        lat, found, buckets, cli = phase_lookups(nodes, objs)
        log("DHT lookup (FIND on dht.sock of an object held elsewhere, %d lookups, holder "
            "among the providers in %d): p50 %s ms  p95 %s ms  max %s ms"
            % (len(lat), found, ms(pct(lat, 50)), ms(pct(lat, 95)), ms(max(lat))))
        h50, h95 = hist_pct(buckets, 50), hist_pct(buckets, 95)
        hn = buckets[-1][1] if buckets else 0
        if h50 is not None:
            log("DHT lookup (dht_lookup_seconds{verb=find} on the nodes, %d lookups, "
                "interpolated in buckets 5/10/25/50/100/250 ms...): p50 %s ms  p95 %s ms"
                % (hn, ms(h50), ms(h95)))
        log("DHT lookup as `macronode find` (CLI process start included, %d runs): "
            "p50 %s ms  p95 %s ms" % (len(cli), ms(pct(cli, 50)), ms(pct(cli, 95))))

        # Baseline: the same kind of GET on a node that holds the object.
        local = [(objs[c][0], c) for c in random.sample(list(objs), min(FETCHES, len(objs)))]
        t0 = time.monotonic()
        res = [fetch_one(nodes, objs, p) for p in local]
        report_fetch("local GET (baseline)", res, time.monotonic() - t0)
        used = set()
        res, wall_s = phase_fetch(nodes, objs, FETCHES, 1, used)
        report_fetch("fetch on miss, 1 at a time", res, wall_s)
        if PARALLEL > 1:
            res, wall_s = phase_fetch(nodes, objs, FETCHES, PARALLEL, used)
            report_fetch("fetch on miss, %d at once" % PARALLEL, res, wall_s)
        fetched = sum(n.metric_sum("overlay_fetches_total", status="200") for n in nodes)
        pfail = sum(n.metric_sum("overlay_peer_failures_total") for n in nodes)
        log("overlay: %d fetches stored, %d failed provider attempts" % (fetched, pfail))

        mem = [n.rss_anon_kib() for n in nodes]
        nproc = statistics.mean(len(n.pids()) for n in nodes)
        log("memory per node (RssAnon of supervisor + %.0f services): mean %.1f MiB  "
            "max %.1f MiB" % (nproc - 1, statistics.mean(mem) / 1024, max(mem) / 1024))
        victims = phase_heal(nodes) or []
        dead = [n.i for n in nodes if n.proc.poll() is not None and n not in victims]
        if dead:
            log("WARNING: node(s) exited during the run: %s" % dead)
        failed = False
        return 0
    except Fatal as e:
        log("swarm: %s" % e)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not cut the cleanup short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(nodes)
        if KEEP and failed:
            log("swarm: logs kept in %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
