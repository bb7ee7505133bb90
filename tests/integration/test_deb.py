"""`make deb` (scripts/mkdeb.py): the package is built with dpkg-deb from the
binary under test and installed with dpkg into a throwaway root
(--root, maintainer scripts chrootless with DPKG_ROOT): the files are
there, the user and the KEK are made, the binary runs, purge cleans up;
and docs/packaging.md's first start, walked without systemd: the installed
unit's ExecStartPre/ExecStart lines as the package's user with the
credential, up to READY=1 and a token that writes."""
import gzip
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import uuid

import pytest

from conftest import (BIN, REPO, SLOW, TAG_VAR, free_ports, http_request, proc_scan,
                      sanitizer_report, wait_until)
import shutil

MKDEB = os.path.join(REPO, "scripts", "mkdeb.py")
needs = pytest.mark.skipif(not (shutil.which("dpkg-deb") and shutil.which("dpkg")),
                           reason="dpkg-deb not installed")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)


def build_deb(tmp_path):
    """The package of BIN, built by scripts/mkdeb.py: its path."""
    p = run(["/usr/bin/python3", MKDEB, BIN, str(tmp_path / "out")])
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().splitlines()[-1]


def install(root, deb):
    """deb installed into the throwaway root: the dpkg argv that did it."""
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    dpkg = ["dpkg", "--root=%s" % root, "--force-script-chrootless", "--force-depends",
            "--log=/dev/null"]
    p = run(dpkg + ["-i", deb])
    assert p.returncode == 0, p.stdout + p.stderr
    return dpkg


@needs
def test_deb_builds_installs_and_purges(tmp_path):
    deb = build_deb(tmp_path)
    assert re.search(r"/macronode_[0-9.]+_[a-z0-9]+\.deb$", deb), deb
    info = run(["dpkg-deb", "-I", deb]).stdout
    depends = re.search(r"^ Depends: (.*)$", info, re.M).group(1)
    for pkg in ("libssl3", "libsodium23", "libevent-core-2.1-7", "libc6"):
        assert re.search(r"\b%s \(>= " % re.escape(pkg), depends), (pkg, depends)
    files = run(["dpkg-deb", "-c", deb]).stdout
    for f in ("./usr/bin/macronode", "./lib/systemd/system/macronode.service",
              "./usr/share/man/man8/macronode.8.gz", "./usr/share/man/man5/macronode.json.5.gz",
              "./etc/macronode/macronode.json", "./usr/lib/sysusers.d/macronode.conf",
              "./usr/share/bash-completion/completions/macronode"):
        assert f in files, f

    root = tmp_path / "root"
    dpkg = install(root, deb)
    st = run(["dpkg", "--root=%s" % root, "-s", "macronode"]).stdout
    assert "Status: install ok installed" in st, st
    assert "/etc/macronode/macronode.json" in (root / "var/lib/dpkg/info/macronode.conffiles").read_text()
    # prerm stops the service on removal; without systemd (here) it does nothing
    prerm = (root / "var/lib/dpkg/info/macronode.prerm").read_text()
    assert "systemctl stop macronode.service" in prerm and "/run/systemd/system" in prerm
    # the files
    exe = root / "usr/bin/macronode"
    assert os.access(exe, os.X_OK)
    v = run([str(exe), "--version"])
    assert v.returncode == 0 and v.stdout.startswith("macronode "), v
    unit = (root / "lib/systemd/system/macronode.service").read_text()
    assert "ExecStart=/usr/bin/macronode run --config /etc/macronode/macronode.json" in unit
    assert "User=macronode" in unit
    for name, sect in (("macronode.8", "man8"), ("macronode.json.5", "man5")):
        got = gzip.decompress((root / "usr/share/man" / sect / (name + ".gz")).read_bytes())
        assert got == open(os.path.join(REPO, "docs", "man", name), "rb").read()
    cfg = (root / "etc/macronode/macronode.json").read_text()
    assert '"/var/lib/macronode"' in cfg
    c = run([str(exe), "config", "validate", str(root / "etc/macronode/macronode.json")])
    assert c.returncode == 0, c.stderr
    # postinst: the user and the KEK the unit loads as a credential
    assert re.search(r"^macronode:x:\d+:\d+:[^:]*:/var/lib/macronode:/usr/sbin/nologin$",
                     (root / "etc/passwd").read_text(), re.M)
    kek = root / "etc/macronode/macronode.kek"
    assert kek.stat().st_size == 32 and (kek.stat().st_mode & 0o777) == 0o400
    first = kek.read_bytes()
    # reinstall keeps the KEK (sealed keys stay readable)
    p = run(dpkg + ["-i", deb])
    assert p.returncode == 0, p.stderr
    assert kek.read_bytes() == first
    # purge removes what postinst made
    p = run(dpkg + ["--purge", "macronode"])
    assert p.returncode == 0, p.stderr
    assert not kek.exists() and not exe.exists()


def unit_commands(unit_text, key):
    """The command lines of `key=` in the unit's [Service] section."""
    return [shlex.split(l.split("=", 1)[1]) for l in unit_text.splitlines() if l.startswith(key + "=")]


def user_ids(root, name):
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == name:
            return int(f[2]), int(f[3])
    raise AssertionError("no user %s in %s/etc/passwd" % (name, root))


@needs
@pytest.mark.skipif(os.geteuid() != 0, reason="runs the unit's commands as the package's user")
def test_deb_documented_first_start(tmp_path):
    """docs/packaging.md's steps without systemd: the installed unit's
    ExecStartPre and ExecStart command lines run as the package's macronode
    user, with the state and runtime directories systemd would make and the
    KEK credential copied into a CREDENTIALS_DIRECTORY as systemd does. The
    node initialises itself (no token in its output: that is the journal),
    becomes ready (READY=1 to a notify socket), a second start finds it
    initialised, and the operator's documented `token mint` with the KEK
    in /etc gives a token the node accepts."""
    top = tempfile.mkdtemp(prefix="mn-it-deb-")   # the user must traverse it: not under tmp_path
    os.chmod(top, 0o755)
    tag = "%s-%s" % (os.getpid(), uuid.uuid4().hex)
    proc = None
    try:
        root = tmp_path.__class__(top) / "root"
        root.mkdir()
        install(root, build_deb(tmp_path))
        uid, gid = user_ids(root, "macronode")
        assert uid != 0 and gid != 0
        unit = (root / "lib/systemd/system/macronode.service").read_text()
        m = re.search(r"^StateDirectory=(\S+)$", unit, re.M)
        state = root / "var/lib" / m.group(1)
        m = re.search(r"^RuntimeDirectory=(\S+)$", unit, re.M)
        runtime = root / "run" / m.group(1)
        cfg_path = root / "etc/macronode/macronode.json"
        cfg = json.loads(cfg_path.read_text())
        # the packaged config uses exactly the unit's directories
        assert cfg["paths"]["data_dir"] == "/var/lib/macronode" == "/" + str(state.relative_to(root))
        assert cfg["paths"]["runtime_dir"] == "/run/macronode" == "/" + str(runtime.relative_to(root))
        # what systemd makes before ExecStartPre: StateDirectory/RuntimeDirectory
        # owned by User=, mode 0700, and the credential (a copy, the user's, 0400)
        for d in (state, runtime):
            d.mkdir(parents=True)
            os.chown(d, uid, gid)
            os.chmod(d, 0o700)
        creds = pathlib_dir(top, "credentials", uid, gid)
        shutil.copy(root / "etc/macronode/macronode.kek", creds / "macronode.kek")
        os.chown(creds / "macronode.kek", uid, gid)
        os.chmod(creds / "macronode.kek", 0o400)
        os.chmod(creds, 0o500)
        # the same config, moved into the throwaway root and onto free ports
        admin, gw, oap = free_ports(3)
        cfg["paths"] = {"data_dir": str(state), "runtime_dir": str(runtime)}
        cfg["admin"]["addr"] = "127.0.0.1:%d" % admin
        cfg["gateway"]["addr"] = "127.0.0.1:%d" % gw
        if "oap" in cfg:
            cfg["oap"]["addr"] = "127.0.0.1:%d" % oap
        cfg_path.write_text(json.dumps(cfg))
        # the service user reads its config (/etc/macronode is 0750 root:macronode)
        etc = root / "etc/macronode"
        assert etc.stat().st_gid == gid and (etc.stat().st_mode & 0o777) == 0o750

        def rooted(argv):
            return [str(root) + a if a.startswith("/") and (root / a.lstrip("/")).exists() else a
                    for a in argv]
        env = {"PATH": "/usr/bin:/bin", "CREDENTIALS_DIRECTORY": str(creds), TAG_VAR: tag}
        as_user = dict(user=uid, group=gid, extra_groups=[], env=env, cwd="/")
        pre = unit_commands(unit, "ExecStartPre")
        assert [a for a in pre[0] if "init" in a or "if-needed" in a] == ["init", "--if-needed"], pre
        for i in range(2):
            for argv in pre:
                p = subprocess.run(rooted(argv), capture_output=True, text=True, timeout=60 * SLOW,
                                   **as_user)
                assert p.returncode == 0, p.stdout + p.stderr
                assert sanitizer_report(p.stderr) is None, p.stderr
                if i == 0:
                    assert "unattended: no token printed" in p.stdout, p.stdout
                    assert "Write token" not in p.stdout and "Bearer" not in p.stdout, p.stdout
                else:
                    assert "nothing to do" in p.stdout, p.stdout
        assert (state / "policy/policy.json").exists() and (state / "auth/keys/k1.key").exists()
        assert not (root / "var/lib/macronode.kek").exists()   # sealed with the credential
        assert (state / "auth/keys/k1.key").stat().st_uid == uid
        # ExecStart, Type=notify: READY=1 once /readyz serves
        sock_path = os.path.join(top, "notify.sock")
        ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        ns.bind(sock_path)
        os.chmod(sock_path, 0o777)
        ns.settimeout(0.1)
        msgs = []
        (start,) = unit_commands(unit, "ExecStart")
        log = open(os.path.join(top, "node.log"), "wb")
        proc = subprocess.Popen(rooted(start), stdout=log, stderr=log,
                                **dict(as_user, env=dict(env, NOTIFY_SOCKET=sock_path)))

        def ready():
            assert proc.poll() is None, open(os.path.join(top, "node.log")).read()
            try:
                msgs.append(ns.recv(4096).decode())
            except socket.timeout:
                pass
            return any("READY=1" in x for x in msgs)
        wait_until(ready, 30 * SLOW, what="READY=1")
        r = http_request(admin, "GET", "/readyz")
        assert r.status == 200, r
        assert r.json()["deps"]["policy"]["state"] == "ok", r.json()
        # the operator's step (docs/packaging.md): `systemd-run -p User=macronode
        # -p LoadCredential=macronode.kek:... macronode token mint`, i.e. as the
        # user with the credential
        t = subprocess.run([str(root / "usr/bin/macronode"), "token", "mint", "--key",
                            str(state / "auth/keys/k1.key"), "--kid", "k1", "--ttl", "1h"],
                           capture_output=True, text=True, timeout=60 * SLOW, **as_user)
        assert t.returncode == 0, t.stderr
        token = t.stdout.strip()
        r = http_request(gw, "POST", "/o", body=b"first object",
                         headers={"Authorization": "Bearer " + token})
        assert r.status == 201, r
        r = http_request(gw, "POST", "/o", body=b"first object")
        assert r.status in (401, 403), r
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30 * SLOW) == 0
        log.close()
        assert sanitizer_report(open(os.path.join(top, "node.log")).read()) is None
        ns.close()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for pid in proc_scan(tag):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        shutil.rmtree(top, ignore_errors=True)


def pathlib_dir(top, name, uid, gid):
    import pathlib
    d = pathlib.Path(top) / name
    d.mkdir()
    os.chown(d, uid, gid)
    return d
