#!/usr/bin/python3
"""Build the Debian package of a macronode binary with Debian's own
dpkg-deb (`make deb`, docs/packaging.md).

usage: mkdeb.py BINARY OUTDIR

The package installs the binary, the systemd unit, both man pages, the
example config as a conffile and a sysusers.d entry for the `macronode`
user; postinst creates the user (systemd-sysusers, or useradd) and the KEK
the unit loads as a credential, both honouring $DPKG_ROOT; prerm stops the
service on removal (a no-op without systemd). The unit's ExecStartPre
(`init --if-needed`) initialises the node on its first start. Depends is
computed from what the binary links: each library's Debian package
(scripts/sbom.py's mapping) at the installed version or later.
"""
import gzip
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbom  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

POSTINST = r"""#!/bin/sh
# macronode postinst: the service user and the key-encryption key.
# Honours DPKG_ROOT (dpkg --root with --force-script-chrootless).
set -e
ROOT="${DPKG_ROOT:-}"
if [ "$1" = configure ]; then
    if ! grep -q '^macronode:' "$ROOT/etc/passwd" 2>/dev/null; then
        if command -v systemd-sysusers >/dev/null 2>&1; then
            # the name alone: looked up in usr/lib/sysusers.d under the root
            systemd-sysusers --root="${ROOT:-/}" macronode.conf
        else
            useradd --root "${ROOT:-/}" --system --user-group --home-dir /var/lib/macronode \
                --shell /usr/sbin/nologin macronode
        fi
    fi
    # the service user reads its config here; only root the KEK (0400)
    install -d -m 0750 "$ROOT/etc/macronode"
    gid=$(awk -F: '$1 == "macronode" { print $3 }' "$ROOT/etc/group")
    if [ -n "$gid" ]; then chgrp "$gid" "$ROOT/etc/macronode"; fi
    if [ ! -e "$ROOT/etc/macronode/macronode.kek" ]; then
        umask 0377
        head -c 32 /dev/urandom > "$ROOT/etc/macronode/macronode.kek"
    fi
    if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
        # an upgrade: the running node picks up the new binary (a no-op when stopped)
        systemctl try-restart macronode.service >/dev/null 2>&1 || true
    fi
fi
exit 0
"""

PRERM = r"""#!/bin/sh
# macronode prerm: stop the service before its files go. A no-op without
# systemd as PID 1 (a chroot, a container, dpkg --root).
set -e
ROOT="${DPKG_ROOT:-}"
case "$1" in
    remove|deconfigure)
        if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
            systemctl stop macronode.service >/dev/null 2>&1 || true
        fi
        ;;
esac
exit 0
"""

POSTRM = r"""#!/bin/sh
# macronode postrm: purge removes the KEK and the state directory.
set -e
ROOT="${DPKG_ROOT:-}"
if [ "$1" = purge ]; then
    rm -f "$ROOT/etc/macronode/macronode.kek"
    rm -rf "$ROOT/var/lib/macronode"
fi
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
"""

SYSUSERS = "# macronode's service user (docs/packaging.md)\nu macronode - \"macronode node\" /var/lib/macronode /usr/sbin/nologin\n"


def run(*argv, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if p.returncode != 0:
        raise SystemExit("mkdeb: %s failed: %s" % (" ".join(argv), p.stderr.strip()))
    return p.stdout


def depends(binary):
    libs = sbom.linked(binary)
    own = sbom.owners([p for _, p in libs])
    info = sbom.pkg_infos(sorted(set(own.values())))
    deps = []
    for pkg in sorted(set(own.values())):
        version = info.get(pkg, ("",))[0]
        deps.append("%s (>= %s)" % (pkg, version) if version else pkg)
    return ", ".join(deps)


def gz(src, dst):
    with open(src, "rb") as f, gzip.GzipFile(dst, "wb", mtime=0) as g:
        g.write(f.read())


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    binary, outdir = argv[1], argv[2]
    version = run(binary, "--version").split()[1]
    arch = run("dpkg", "--print-architecture").strip()
    root = tempfile.mkdtemp(prefix="mkdeb-")
    os.chmod(root, 0o755)
    try:
        def path(p):
            full = os.path.join(root, p.lstrip("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            return full

        shutil.copy(binary, path("/usr/bin/macronode"))
        run("strip", "--strip-unneeded", path("/usr/bin/macronode"))
        os.chmod(path("/usr/bin/macronode"), 0o755)
        unit = open(os.path.join(REPO, "deploy", "macronode.service")).read()
        unit = unit.replace("/usr/local/bin/macronode", "/usr/bin/macronode")
        open(path("/lib/systemd/system/macronode.service"), "w").write(unit)
        gz(os.path.join(REPO, "docs", "man", "macronode.8"), path("/usr/share/man/man8/macronode.8.gz"))
        gz(os.path.join(REPO, "docs", "man", "macronode.json.5"),
           path("/usr/share/man/man5/macronode.json.5.gz"))
        # the unit's StateDirectory= and RuntimeDirectory= (/run/macronode: sockets)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "RON_DATA_DIR": "/var/lib/macronode",
               "RON_RUNTIME_DIR": "/run/macronode"}
        cfg = run(binary, "config", "print", env=env)
        open(path("/etc/macronode/macronode.json"), "w").write(cfg)
        open(path("/usr/lib/sysusers.d/macronode.conf"), "w").write(SYSUSERS)
        open(path("/usr/share/bash-completion/completions/macronode"), "w").write(
            run(binary, "completion", "bash"))
        doc = path("/usr/share/doc/macronode/copyright")
        open(doc, "w").write(
            "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
            "Upstream-Name: macronode\n\nFiles: *\nCopyright: the macronode authors\n"
            "License: NOASSERTION\n Linked libraries and their licenses: docs/sbom.md.\n")
        shutil.copy(os.path.join(REPO, "docs", "sbom", "macronode.spdx.json"),
                    path("/usr/share/doc/macronode/macronode.spdx.json"))
        os.makedirs(os.path.join(root, "DEBIAN"))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) // 1024
        control = ("Package: macronode\nVersion: %s\nArchitecture: %s\n"
                   "Maintainer: macronode authors <macronode@invalid>\nSection: net\nPriority: optional\n"
                   "Installed-Size: %d\nDepends: %s\n"
                   "Description: hardened host node of a content-addressed overlay network\n"
                   " Serves objects addressed by their BLAKE3 hash and checks every byte\n"
                   " against its address before serving it (HTTP/1.1, HTTP/2, OAP/1 over TLS 1.3).\n"
                   % (version, arch, size, depends(binary)))
        open(os.path.join(root, "DEBIAN", "control"), "w").write(control)
        open(os.path.join(root, "DEBIAN", "conffiles"), "w").write("/etc/macronode/macronode.json\n")
        for name, text in (("postinst", POSTINST), ("prerm", PRERM), ("postrm", POSTRM)):
            f = os.path.join(root, "DEBIAN", name)
            open(f, "w").write(text)
            os.chmod(f, 0o755)
        for d, dirs, files in os.walk(root):
            for x in dirs:
                os.chmod(os.path.join(d, x), 0o755)
            for x in files:
                full = os.path.join(d, x)
                if not os.access(full, os.X_OK):
                    os.chmod(full, 0o644)
        os.makedirs(outdir, exist_ok=True)
        out = os.path.join(outdir, "macronode_%s_%s.deb" % (version, arch))
        run("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, out)
        print(out)
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
