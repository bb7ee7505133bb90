"""Privilege drop (issue 18; docs/operations.md "Privileges"): started as
root, the supervisor binds its ports (one below 1024 here), then it and
every service run as node.user, with no capability and no way back to
root; node.user root or a user that does not exist is refused unless
node.allow_root is set; a data directory the user does not own is refused
with the chown that fixes it. Runs only as root, with the system's `nobody`."""
import os
import pwd
import signal
import socket
import subprocess

import pytest

from conftest import SLOW, run_cli, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the drop is from root)")

NOBODY = pwd.getpwnam("nobody") if "nobody" in [p.pw_name for p in pwd.getpwall()] else None


def low_port():
    """A free loopback port below 1024 (binding it needs root)."""
    for port in range(1000, 900, -1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.skip("no free port below 1024")


def status_of(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def chown_tree(top, uid, gid):
    os.chown(top, uid, gid)
    for d, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(d, name), uid, gid)


def as_nobody_node(node_factory, config=None):
    n = node_factory(dict({"node": {"user": "nobody"}}, **(config or {})), start=False,
                     env={"RON_ALLOW_ROOT": ""})
    chown_tree(n.tmp, NOBODY.pw_uid, NOBODY.pw_gid)
    return n


@pytest.mark.skipif(NOBODY is None, reason="no 'nobody' user")
def test_root_binds_a_low_port_then_every_process_runs_as_node_user(node_factory):
    port = low_port()
    n = as_nobody_node(node_factory, {"gateway": {"addr": "127.0.0.1:%d" % port, "workers": 2}})
    n.gateway_port = port
    n.start()
    assert n.gw("GET", "/healthz").status == 200
    pids = [n.proc.pid] + n.child_pids()
    assert len(pids) >= 4, pids   # supervisor, audit, storage, 2 gateways
    for pid in pids:
        st = status_of(pid)
        assert st["Uid"] == [str(NOBODY.pw_uid)] * 4, (pid, st["Uid"])
        assert st["Gid"] == [str(NOBODY.pw_gid)] * 4, (pid, st["Gid"])
        assert "0" not in st.get("Groups", []), (pid, st.get("Groups"))
        assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0, (pid, st)
    assert "running as node.user" in n.log()
    # what it writes belongs to the user
    assert os.stat(os.path.join(n.data_dir, "run")).st_uid == NOBODY.pw_uid
    # a restarted service is the user's too (the supervisor is no longer root)
    victim = [c for c in n.children() if c["service"] == "storage"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    new = wait_until(lambda: [c["pid"] for c in n.children()
                              if c["service"] == "storage" and c["pid"] not in (0, victim)
                              and c["state"] == "ready"], 20 * SLOW, what="storage back")
    assert status_of(new[0])["Uid"][0] == str(NOBODY.pw_uid)


def refused(node_factory, config, env=None):
    n = node_factory(config, start=False, env=dict({"RON_ALLOW_ROOT": ""}, **(env or {})))
    p = run_cli(["run", "--config", n.config_path], env=n.extra_env, timeout=30)
    assert p.returncode != 0, p
    return p.stderr


def test_root_user_refused_without_allow_root(node_factory):
    err = refused(node_factory, {"node": {"user": "root"}})
    assert "node.user 'root' is root" in err and "node.allow_root" in err, err


def test_missing_user_refused_with_the_fix(node_factory):
    err = refused(node_factory, {"node": {"user": "mn-no-such-user"}})
    assert "node.user 'mn-no-such-user' does not exist" in err, err
    assert "useradd --system mn-no-such-user" in err, err


def test_allow_root_runs_as_root_with_a_warning(node_factory):
    n = node_factory({"node": {"user": "mn-no-such-user", "allow_root": True}})
    assert status_of(n.proc.pid)["Uid"][0] == "0"
    assert "running every service as root (node.allow_root)" in n.log()


@pytest.mark.skipif(NOBODY is None, reason="no 'nobody' user")
def test_data_dir_of_another_user_refused_with_the_chown(node_factory):
    n = node_factory({"node": {"user": "nobody"}}, start=False, env={"RON_ALLOW_ROOT": ""})
    os.makedirs(n.data_dir, mode=0o700)   # root's
    p = run_cli(["run", "--config", n.config_path], env=n.extra_env, timeout=30)
    assert p.returncode != 0
    assert "paths.data_dir %s is not a directory of node.user nobody" % n.data_dir in p.stderr, \
        p.stderr
    assert "chown -R nobody: %s" % n.data_dir in p.stderr, p.stderr


def test_not_root_ignores_node_user(node_factory):
    """Started by an unprivileged user (as systemd's User= does), node.user
    is not used: the node runs as whoever started it."""
    if NOBODY is None:
        pytest.skip("no 'nobody' user")
    n = as_nobody_node(node_factory, {"node": {"user": "mn-no-such-user"}})
    n.proc = subprocess.Popen(n.argv(), env=dict(os.environ, **n.extra_env), cwd=n.tmp,
                              stdin=subprocess.DEVNULL, stdout=open(n.log_path, "ab"),
                              stderr=subprocess.STDOUT, user=NOBODY.pw_uid,
                              group=NOBODY.pw_gid, extra_groups=[])
    n.wait_ready()
    assert status_of(n.proc.pid)["Uid"][0] == str(NOBODY.pw_uid)
    assert "node.allow_root" not in n.log()
