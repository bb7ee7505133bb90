"""systemd integration (issue 18): Type=notify messages checked with a
notify socket of the test's own, the node under the real service manager
with systemd-run where systemd is PID 1 (skipped where it is not, as on the
CI machines), and the unit's `systemd-analyze security` exposure."""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import (BIN, OPEN_BUNDLE, REPO, SLOW, free_ports, http_request, install_wall, wait_until)

ANALYZE = shutil.which("systemd-analyze")
SYSTEMD_RUN = shutil.which("systemd-run")
SYSTEMD_PID1 = os.path.isdir("/run/systemd/system")


class Notify:
    """An AF_UNIX datagram socket standing in for the service manager."""

    def __init__(self, path):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(path)
        self.s.settimeout(0.05)
        self.msgs = []

    def poll(self):
        while True:
            try:
                d = self.s.recv(4096)
            except socket.timeout:
                return self.msgs
            self.msgs.append(dict(l.split("=", 1) for l in d.decode().splitlines() if "=" in l))

    def seen(self, key, value=None, after=0):
        self.poll()
        return [m for m in self.msgs[after:] if key in m and (value is None or m[key] == value)]

    def close(self):
        self.s.close()


def test_type_notify_messages(node_factory, tmp_path):
    n_sock = Notify(str(tmp_path / "notify.sock"))
    try:
        n = node_factory({}, env={"NOTIFY_SOCKET": n_sock.path, "WATCHDOG_USEC": "3000000"})
        # READY=1 once /readyz serves (node_factory waited for it)
        wait_until(lambda: n_sock.seen("READY", "1"), 10 * SLOW, what="READY=1")
        first = n_sock.seen("READY", "1")[0]
        assert first.get("STATUS") in ("ready", "degraded"), first
        assert n.get("/readyz").status == 200
        assert len(n_sock.seen("READY", "1")) == 1        # once, not every tick
        # WATCHDOG=1 from the supervisor's tick (1 s) while WATCHDOG_USEC is set
        wait_until(lambda: len(n_sock.seen("WATCHDOG", "1")) >= 2, 5 * SLOW, what="WATCHDOG=1 x2")
        # only the supervisor speaks: no child has the variables
        for pid in n.child_pids():
            env = open("/proc/%d/environ" % pid, "rb").read()
            assert b"NOTIFY_SOCKET=" not in env and b"WATCHDOG_USEC=" not in env
        # reload: RELOADING=1 with MONOTONIC_USEC, then READY=1
        mark = len(n_sock.poll())
        os.kill(n.proc.pid, signal.SIGHUP)
        wait_until(lambda: n_sock.seen("READY", "1", after=mark), 10 * SLOW, what="READY=1 after reload")
        rel = n_sock.seen("RELOADING", "1", after=mark)
        assert rel and re.fullmatch(r"\d+", rel[0]["MONOTONIC_USEC"]), n_sock.msgs[mark:]
        i_rel = n_sock.msgs.index(rel[0])
        i_ready = n_sock.msgs.index(n_sock.seen("READY", "1", after=mark)[0])
        assert i_rel < i_ready
        assert abs(int(rel[0]["MONOTONIC_USEC"]) / 1e6 - time.monotonic()) < 30
        # drain: STOPPING=1
        mark = len(n_sock.poll())
        os.kill(n.proc.pid, signal.SIGTERM)
        wait_until(lambda: n_sock.seen("STOPPING", "1", after=mark), 10 * SLOW, what="STOPPING=1")
        assert "SIGTERM" in n_sock.seen("STOPPING", "1", after=mark)[0].get("STATUS", "")
        n.proc.wait(timeout=30 * SLOW)
    finally:
        n_sock.close()


def test_ready_held_back_while_not_ready(node_factory, tmp_path):
    """No policy: the node is up (/healthz 200) but /readyz 503, so no
    READY=1 (the start job must keep waiting) through several supervisor
    ticks (WATCHDOG=1 each) and a reload (no RELOADING=1/READY=1 pair
    either: it would end the start job); once a policy is in force, READY=1."""
    n_sock = Notify(str(tmp_path / "notify.sock"))
    try:
        n = node_factory({}, start=False, wall=None,
                         env={"NOTIFY_SOCKET": n_sock.path, "WATCHDOG_USEC": "3000000"})
        n.spawn()
        wait_until(lambda: n.get("/healthz").status == 200, 10 * SLOW, what="/healthz")

        def not_ready():
            r = n.get("/readyz")
            return r.status == 503 and any(x.startswith("policy: no valid bundle")
                                           for x in r.json()["reasons"])
        # every tick computes the verdict and pets the watchdog: three of them
        # with /readyz 503 around them, and never a READY=1
        assert not_ready()
        wait_until(lambda: len(n_sock.seen("WATCHDOG", "1")) >= 3, 10 * SLOW, what="3 ticks")
        assert not_ready()
        r = n.post("/api/v1/reload")                    # synchronous: done when it answers
        assert r.status == 202 and r.json() == {"status": "reloaded"}, r   # no policy: not a refusal
        mark = len(n_sock.poll())
        wait_until(lambda: len(n_sock.seen("WATCHDOG", "1", after=mark)) >= 2, 10 * SLOW,
                   what="2 ticks after the reload")
        assert not_ready()
        assert not n_sock.seen("READY") and not n_sock.seen("RELOADING"), n_sock.msgs
        # a policy, a reload: the next verdict serves and READY=1 goes out once
        install_wall(n.data_dir, OPEN_BUNDLE)
        assert n.post("/api/v1/reload").status == 202
        wait_until(lambda: n_sock.seen("READY", "1"), 10 * SLOW, what="READY=1")
        assert n.get("/readyz").status == 200
        ready = n_sock.seen("READY", "1")
        assert len(ready) == 1 and ready[0].get("STATUS") in ("ready", "degraded"), n_sock.msgs
        assert not n_sock.seen("RELOADING"), n_sock.msgs
    finally:
        n_sock.close()


UNSHARE = shutil.which("unshare")
# A shell that remounts /proc the way the unit's ProcSubset=pid does (only
# the process directories: no /proc/sys), then runs its arguments.
PROC_SUBSET_PID = ["-m", "--propagation", "private", "sh", "-c",
                   'mount -t proc -o subset=pid proc /proc && exec "$@"', "sh"]


def proc_subset_pid_works():
    if not UNSHARE:
        return False
    p = subprocess.run([UNSHARE] + PROC_SUBSET_PID + ["sh", "-c",
                       "test -d /proc/self && test ! -e /proc/sys/kernel/random/entropy_avail"],
                       capture_output=True, timeout=30)
    return p.returncode == 0


@pytest.mark.skipif(not proc_subset_pid_works(),
                    reason="cannot mount /proc with subset=pid in a mount namespace here")
def test_ready_under_proc_subset_pid(node_factory, tmp_path):
    """The unit's ProcSubset=pid hides /proc/sys (no entropy_avail): the
    node still becomes ready, deciding entropy from getrandom(GRND_NONBLOCK),
    says so in /readyz, and sends READY=1; `macronode check` agrees."""
    n_sock = Notify(str(tmp_path / "notify.sock"))
    try:
        n = node_factory({}, start=False, env={"NOTIFY_SOCKET": n_sock.path})
        argv = n.argv
        n.argv = lambda: [UNSHARE] + PROC_SUBSET_PID + argv()
        n.start()
        d = n.get("/readyz").json()
        assert d["status"] in ("ready", "degraded"), d
        assert d["deps"]["entropy"] == {"state": "ok", "bits": -1, "source": "getrandom"}, d
        wait_until(lambda: n_sock.seen("READY", "1"), 10 * SLOW, what="READY=1")
        p = subprocess.run([UNSHARE] + PROC_SUBSET_PID + [BIN, "check", "--config", n.config_path],
                           capture_output=True, text=True, timeout=60 * SLOW,
                           env=dict(os.environ, **n.extra_env))
        assert re.search(r"^ok\s+entropy\s+CRNG initialised \(getrandom\)$", p.stdout, re.M), \
            p.stdout + p.stderr
    finally:
        n_sock.close()


def unit_props(unit, *props):
    p = subprocess.run(["systemctl", "show", unit, "-p", ",".join(props)], capture_output=True,
                       text=True, timeout=30)
    return dict(l.split("=", 1) for l in p.stdout.splitlines() if "=" in l)


UNIT = os.path.join(REPO, "deploy", "macronode.service")
# [Service] keys the transient unit cannot take verbatim, and what it gets:
# the command (systemd-run's arguments), the user (a test machine has no
# macronode user: root with RON_ALLOW_ROOT unless it has one), the unit's
# directories and credential renamed to the test's own.
RENAMED = {"ExecStart", "ExecStartPre", "User", "Group", "StateDirectory", "RuntimeDirectory",
           "ReadWritePaths", "LoadCredential"}


def service_lines(text):
    """(key, value) of every setting in the unit's [Service] section."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            k, v = line.split("=", 1)
            out.append((k, v))
    return out


def transient_unit(lines, name, kek, config, binary, user=None):
    """systemd-run -p properties for every [Service] line, and the command:
    paths and names of the shipped unit replaced by the test's."""
    def sub(v):
        return (v.replace("/usr/local/bin/macronode", binary).replace("/usr/bin/macronode", binary)
                .replace("/etc/macronode/macronode.json", config)
                .replace("/etc/macronode/macronode.kek", kek)
                .replace("/var/lib/macronode", "/var/lib/" + name))
    props, cmd = [], None
    for k, v in lines:
        if k == "ExecStart":
            cmd = shlex.split(sub(v))
        elif k in ("User", "Group"):
            if user:
                props.append("%s=%s" % (k, v))
        elif k in ("StateDirectory", "RuntimeDirectory"):
            props.append("%s=%s" % (k, name))
        else:
            props.append("%s=%s" % (k, sub(v)))
    return props, cmd


def test_transient_unit_takes_every_service_line():
    """The systemd-run test below applies the unit as shipped: every
    [Service] line becomes a property (only the ones in RENAMED are
    rewritten, and they keep their keys)."""
    lines = service_lines(open(UNIT).read())
    props, cmd = transient_unit(lines, "mn-x", "/k", "/c.json", "/bin/mn", user="macronode")
    assert cmd[:2] == ["/bin/mn", "run"] and "/c.json" in cmd, cmd
    keys = [k for k, _ in lines]
    assert [p.split("=", 1)[0] for p in props] == [k for k in keys if k != "ExecStart"]
    verbatim = ["%s=%s" % kv for kv in lines if kv[0] not in RENAMED]
    assert [p for p in props if p.split("=", 1)[0] not in RENAMED] == verbatim
    for must in ("ProcSubset=pid", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateUsers=yes",
                 "ProtectProc=invisible", "MemoryDenyWriteExecute=yes", "NoNewPrivileges=yes"):
        assert must in props, must
    assert "LoadCredential=macronode.kek:/k" in props
    assert any(p.startswith("ExecStartPre=/bin/mn init --if-needed") for p in props), props
    assert "StateDirectory=mn-x" in props and "ReadWritePaths=/var/lib/mn-x" in props


def have_user(name):
    return subprocess.run(["id", name], capture_output=True).returncode == 0


@pytest.mark.skipif(not (SYSTEMD_RUN and SYSTEMD_PID1), reason="systemd is not PID 1 here")
def test_under_systemd_run(tmp_path):
    """systemd-run with every [Service] line of deploy/macronode.service
    (ExecStartPre init --if-needed on a fresh state directory, the KEK as a
    credential, ProcSubset=pid, the whole sandbox): the start job completes
    only on READY=1, the node serves its policy, a reload (SIGHUP) and a
    stop end cleanly."""
    name = "macronode-test-%d" % os.getpid()
    unit = name + ".service"
    admin, gw, oap = free_ports(3)
    # PrivateTmp hides the test's /tmp from the unit: its config lives in /run
    conf_dir = "/run/%s.conf" % name
    os.makedirs(conf_dir, mode=0o755)
    config = os.path.join(conf_dir, "macronode.json")
    kek = os.path.join(conf_dir, "macronode.kek")
    with open(config, "w") as f:
        json.dump({"admin": {"addr": "127.0.0.1:%d" % admin},
                   "gateway": {"addr": "127.0.0.1:%d" % gw}, "oap": {"addr": "127.0.0.1:%d" % oap},
                   "paths": {"data_dir": "/var/lib/" + name, "runtime_dir": "/run/" + name}}, f)
    os.chmod(config, 0o644)
    fd = os.open(kek, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
    os.write(fd, os.urandom(32))
    os.close(fd)
    # and so is a binary under /tmp (a CI clone) or a home directory (ProtectHome)
    binary = os.path.join(conf_dir, "macronode")
    shutil.copy(BIN, binary)
    os.chmod(binary, 0o755)
    user = "macronode" if have_user("macronode") else None
    props, cmd = transient_unit(service_lines(open(UNIT).read()), name, kek, config, binary, user)
    argv = [SYSTEMD_RUN, "--unit", name, "--collect"]
    for p in props:
        argv += ["-p", p]
    if not user:
        argv.append("--setenv=RON_ALLOW_ROOT=true")
    try:
        p = subprocess.run(argv + cmd, capture_output=True, text=True, timeout=90 * SLOW)
        assert p.returncode == 0, p.stderr   # returns once the job is done: READY=1 arrived
        st = unit_props(unit, "ActiveState", "SubState", "WatchdogUSec")
        assert st["ActiveState"] == "active" and st["SubState"] == "running", st
        r = http_request(admin, "GET", "/readyz")
        assert r.status == 200, r
        d = r.json()["deps"]
        assert d["policy"]["state"] == "ok" and d["entropy"]["source"] == "getrandom", d
        subprocess.run(["systemctl", "kill", "-s", "HUP", unit], check=True, timeout=30)
        wait_until(lambda: http_request(admin, "GET", "/readyz").status == 200, 10 * SLOW,
                   what="ready after SIGHUP")
        assert unit_props(unit, "ActiveState")["ActiveState"] == "active"
        subprocess.run(["systemctl", "stop", unit], check=True, timeout=60 * SLOW)
        assert unit_props(unit, "Result").get("Result", "success") == "success"
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=60)
        shutil.rmtree(conf_dir, ignore_errors=True)
        shutil.rmtree("/var/lib/" + name, ignore_errors=True)
        shutil.rmtree("/var/lib/private/" + name, ignore_errors=True)


@pytest.mark.skipif(not ANALYZE, reason="systemd-analyze not installed")
def test_unit_security_exposure():
    p = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager",
                        os.path.join(REPO, "deploy", "macronode.service")],
                       capture_output=True, text=True, timeout=120)
    m = re.search(r"Overall exposure level for macronode\.service: ([0-9.]+)", p.stdout + p.stderr)
    assert m, p.stdout + p.stderr
    assert float(m.group(1)) <= 2.5, p.stdout       # docs/operations.md quotes the figure
    unit = open(os.path.join(REPO, "deploy", "macronode.service")).read()
    for line in ("Type=notify", "WatchdogSec=", "NotifyAccess=main", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "SystemCallFilter=@system-service",
                 "CapabilityBoundingSet=", "LoadCredential=macronode.kek:", "StateDirectory=macronode",
                 "RuntimeDirectory=macronode"):
        assert line in unit, line
