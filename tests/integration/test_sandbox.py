"""Sandboxes per role (docs/operations.md "Sandboxes"): once started, each
service process is confined by Landlock (its files) and a seccomp allow list
(its system calls; anything else kills it with SIGSYS). The supervisor counts
such a death in sandbox_violations_total{role} and restarts the service.

The forbidden acts are performed on demand through the test hook
MN_TEST_SANDBOX_PROBE=<dir> (svc/svc_sandbox.h): a process of role R that
finds <dir>/R removes it and, right after entering its sandbox, does what the
file says: "open" (read /etc/passwd), "write" (create a file in /tmp) or
"exec" (execve /bin/true). The hook does nothing unless the variable is set.
"""
import ctypes
import http.client
import os
import platform
import ssl

import pytest

from conftest import OPENSSL, SLOW, mn_client, oap_node

ROLES = ("storage", "gateway", "omnigate")
SIGSYS = 31
LANDLOCK_SYSCALL = {"x86_64": 444, "aarch64": 444}   # landlock_create_ruleset


def landlock_enabled():
    """The kernel offers Landlock: landlock_create_ruleset(NULL, 0, VERSION) > 0."""
    if platform.machine() not in LANDLOCK_SYSCALL:
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(LANDLOCK_SYSCALL[platform.machine()], None, 0, 1) > 0


needs_landlock = pytest.mark.skipif(not landlock_enabled(), reason="kernel without Landlock")


def probe_node(node_factory, pki, tmp_dir, role, what, config=None):
    """A gateway+storage+omnigate node whose first `role` process probes `what`."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    probes = os.path.join(tmp_dir, "probes")
    os.makedirs(probes, exist_ok=True)
    with open(os.path.join(probes, role), "w") as f:
        f.write(what)
    n = oap_node(node_factory, pki, config, start=False,
                 env={"MN_TEST_SANDBOX_PROBE": probes})
    n.start()
    return n, os.path.join(probes, role)


def role_records(n, role):
    return [r for r in n.log_records() if r.get("service") == role or r.get("role") == role]


def assert_serves(n, pki, tmp_dir):
    """Ready, and an object goes in through omnigate and storage and comes
    back out through the gateway."""
    assert n.get("/readyz").status == 200
    src = os.path.join(tmp_dir, "object")
    with open(src, "wb") as f:
        f.write(b"sandboxed and serving")
    p = mn_client(["put", src, "--peer", n.oap_peer, "--ca", pki.path("ca.pem")])
    assert p.returncode == 0, p.stderr
    cid = p.stdout.decode().strip()
    ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
    c = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, timeout=5 * SLOW, context=ctx)
    try:
        c.request("GET", "/o/" + cid)
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"sandboxed and serving")
    finally:
        c.close()


def assert_killed_and_restarted(n, pki, tmp_dir, probe, role):
    assert not os.path.exists(probe)              # one process probed, once
    m = n.metrics()
    assert m.get("sandbox_violations_total", role=role) == 1
    assert m.get("service_restarts_total", service=role) == 1
    for other in ROLES:
        if other != role:
            assert m.get("sandbox_violations_total", role=other) is None
    killed = [r for r in n.log_records() if r.get("msg") == "service exited; restarting"]
    assert [(r["role"], r["status"]) for r in killed] == [(role, "signal %d" % SIGSYS)]
    assert any(r.get("msg") == "service killed by its sandbox (SIGSYS)" and r.get("role") == role
               for r in n.log_records())
    assert_serves(n, pki, tmp_dir)


@pytest.mark.parametrize("role", ROLES)
def test_exec_kills_every_role(node_factory, pki, tmp_dir, role):
    n, probe = probe_node(node_factory, pki, tmp_dir, role, "exec")
    assert_killed_and_restarted(n, pki, tmp_dir, probe, role)


@pytest.mark.parametrize("role", ("gateway", "omnigate"))
def test_front_roles_die_on_a_write_open(node_factory, pki, tmp_dir, role):
    # The fronts may open files for reading only (reload: keys, certificates).
    n, probe = probe_node(node_factory, pki, tmp_dir, role, "write")
    assert_killed_and_restarted(n, pki, tmp_dir, probe, role)
    assert not os.path.exists("/tmp/macronode-sandbox-probe")


def assert_refused(n, pki, tmp_dir, probe, role):
    assert not os.path.exists(probe)
    recs = role_records(n, role)
    refused = [r for r in recs if r.get("msg") == "sandbox probe refused"]
    assert [r.get("error") for r in refused] == ["Permission denied"]
    assert not [r for r in recs if "forbidden file was" in r.get("msg", "")]
    m = n.metrics()
    assert m.get("sandbox_violations_total", role=role) is None
    assert m.get("service_restarts_total", service=role) is None  # kept serving
    assert_serves(n, pki, tmp_dir)


@needs_landlock
@pytest.mark.parametrize("role", ROLES)
def test_landlock_refuses_files_outside_the_role(node_factory, pki, tmp_dir, role):
    n, probe = probe_node(node_factory, pki, tmp_dir, role, "open")
    assert_refused(n, pki, tmp_dir, probe, role)
    assert n.metrics().get("sandbox_landlock_active", role=role) == 1


@needs_landlock
def test_storage_writes_only_its_data_dirs(node_factory, pki, tmp_dir):
    # Storage may create files, but only under objects/, tmp/ and meta/.
    n, probe = probe_node(node_factory, pki, tmp_dir, "storage", "write")
    assert_refused(n, pki, tmp_dir, probe, "storage")
    assert not os.path.exists("/tmp/macronode-sandbox-probe")


@needs_landlock
def test_amnesia_storage_has_no_file_system(node_factory, pki, tmp_dir):
    n, probe = probe_node(node_factory, pki, tmp_dir, "storage", "write", {"amnesia": True})
    assert_refused(n, pki, tmp_dir, probe, "storage")


def test_sandbox_can_be_turned_off(node_factory, pki, tmp_dir):
    # sandbox.enabled = false: the exec goes through (the process becomes
    # /bin/true and exits 0), nothing is counted as a violation.
    n, probe = probe_node(node_factory, pki, tmp_dir, "gateway", "exec",
                          {"sandbox": {"enabled": False}})
    assert not os.path.exists(probe)
    m = n.metrics()
    assert m.get("sandbox_violations_total", role="gateway") is None
    assert m.get("service_restarts_total", service="gateway") == 1
    assert m.get("sandbox_landlock_active", role="gateway") == 0
    killed = [r for r in n.log_records() if r.get("msg") == "service exited; restarting"]
    assert [(r["role"], r["status"]) for r in killed] == [("gateway", "exit 0")]
    assert_serves(n, pki, tmp_dir)
