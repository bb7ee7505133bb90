"""`make deb` (scripts/mkdeb.py): the package is built with dpkg-deb from the
binary under test and installed with dpkg into a throwaway root
(--root, maintainer scripts chrootless with DPKG_ROOT): the files are
there, the user and the KEK are made, the binary runs, purge cleans up."""
import gzip
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, REPO

MKDEB = os.path.join(REPO, "scripts", "mkdeb.py")
needs = pytest.mark.skipif(not (shutil.which("dpkg-deb") and shutil.which("dpkg")),
                           reason="dpkg-deb not installed")


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)


@needs
def test_deb_builds_installs_and_purges(tmp_path):
    p = run(["/usr/bin/python3", MKDEB, BIN, str(tmp_path / "out")])
    assert p.returncode == 0, p.stderr
    deb = p.stdout.strip().splitlines()[-1]
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
    for d in ("var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / "etc/group").write_text("root:x:0:\n")
    dpkg = ["dpkg", "--root=%s" % root, "--force-script-chrootless", "--force-depends",
            "--log=/dev/null"]
    p = run(dpkg + ["-i", deb])
    assert p.returncode == 0, p.stdout + p.stderr
    st = run(["dpkg", "--root=%s" % root, "-s", "macronode"]).stdout
    assert "Status: install ok installed" in st, st
    assert "/etc/macronode/macronode.json" in (root / "var/lib/dpkg/info/macronode.conffiles").read_text()
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
