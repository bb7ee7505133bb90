#!/usr/bin/python3
"""Write the SPDX 2.3 SBOM of a macronode binary from what the system says,
not from a list kept by hand (`make sbom`, docs/sbom.md):

  - every shared library the binary loads (`ldd`), mapped to the Debian
    package that owns it (`dpkg -S`), with its version and source package
    (`dpkg-query`) and the licenses of its `Files: *` stanza in
    /usr/share/doc/<package>/copyright (DEP-5);
  - the BLAKE3 sources compiled into the binary (DESIGN.md §7), from the
    package that installs them (librust-blake3-dev).

usage: sbom.py BINARY OUT.json [--allow FILE]
With --allow, exits 1 naming every package whose declared license has a
term outside the allow-list (one SPDX identifier per line; # comments).
"""
import json
import os
import re
import subprocess
import sys

BLAKE3_SRC = "/usr/share/cargo/registry"

# Debian's DEP-5 short names → SPDX identifiers (the ones our libraries use).
SPDX = {
    "expat": "MIT", "mit": "MIT", "bsd-3-clause": "BSD-3-Clause", "bsd-3": "BSD-3-Clause",
    "bsd-2-clause": "BSD-2-Clause", "isc": "ISC", "zlib": "Zlib", "apache-2.0": "Apache-2.0",
    "cc0-1.0": "CC0-1.0", "cc0": "CC0-1.0", "public-domain": "LicenseRef-public-domain",
    "openldap-2.8": "OLDAP-2.8", "oldap-2.8": "OLDAP-2.8",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later", "lgpl-2+": "LGPL-2.0-or-later",
    "lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later",
    "gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later", "gpl-3": "GPL-3.0-only",
    "gpl-3+": "GPL-3.0-or-later",
    "gpl-3+ with gcc-runtime-library exception": "GPL-3.0-or-later WITH GCC-exception-3.1",
    "gpl-3-with-openssl-exception": "GPL-3.0-only WITH LicenseRef-openssl-exception",
    "gnuallpermissive": "FSFAP",
}


def run(*argv):
    return subprocess.run(argv, capture_output=True, text=True, check=False).stdout


def linked(binary):
    """[(soname, path)] of what the binary loads, in ldd's order."""
    out = []
    for line in run("ldd", binary).splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+(/\S+)", line)
        if m:
            out.append((m.group(1), m.group(2)))
        else:
            m = re.match(r"\s*(/\S+)\s+\(", line)   # the dynamic loader
            if m:
                out.append((os.path.basename(m.group(1)), m.group(1)))
    return out


def candidates(path):
    """The names dpkg may know path by (merged /usr: both ways)."""
    real = os.path.realpath(path)
    out = [path, real]
    for p in (path, real):
        if p.startswith("/lib"):
            out.append("/usr" + p)
        elif p.startswith("/usr/lib"):
            out.append(p[len("/usr"):])
    return list(dict.fromkeys(out))


def owners(paths):
    """{path: Debian package} for the paths dpkg knows, one dpkg -S call."""
    cands = {c: p for p in paths for c in candidates(p)}
    found = {}
    for line in run("dpkg", "-S", *cands).splitlines():
        m = re.match(r"([^:,\s]+)(?::[a-z0-9]+)?: (/\S+)$", line)
        if m and m.group(2) in cands:
            found.setdefault(cands[m.group(2)], m.group(1))
    return found


def pkg_infos(pkgs):
    """{package: (version, source, arch)}, one dpkg-query call."""
    out = {}
    fmt = "${Package}\t${Version}\t${source:Package}\t${Architecture}\n"
    for line in run("dpkg-query", "-W", "-f=" + fmt, *pkgs).splitlines():
        f = line.split("\t")
        if len(f) == 4:
            out[f[0]] = (f[1], f[2] or f[0], f[3])
    return out


# Copyright files that are not DEP-5 (glibc, gcc's runtime, gnutls...):
# the first license statement in the text, earliest match wins.
PROSE = [
    (r"GCC RUNTIME LIBRARY EXCEPTION|GCC Runtime Library Exception", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    (r"GNU Lesser General Public\s+License.{0,200}?version 2\.1.{0,80}?any\s+later", "LGPL-2.1-or-later"),
    (r"GNU Lesser General Public\s+License.{0,200}?version 3.{0,80}?any\s+later", "LGPL-3.0-or-later"),
    (r"GNU General Public\s+License.{0,200}?version 3.{0,80}?any\s+later", "GPL-3.0-or-later"),
    (r"GNU General Public\s+License.{0,200}?version 2.{0,80}?any\s+later", "GPL-2.0-or-later"),
]


def spdx_term(name):
    key = name.strip().lower()
    return SPDX.get(key, "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]", "-", name.strip()))


def licenses(pkg):
    """The license expression of the package's copyright file: the
    License: lines of its DEP-5 `Files: *` stanza (alternatives in one line
    → OR, several lines → AND), or the first license statement of a prose
    copyright file; NOASSERTION if neither can be read."""
    path = "/usr/share/doc/%s/copyright" % pkg
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        return "NOASSERTION"
    chosen = [st for st in re.split(r"\n\s*\n", text) if re.search(r"^Files:\s*\*\s*$", st, re.M)]
    groups = []
    for st in chosen:
        for m in re.finditer(r"^License:\s*(.+)$", st, re.M):
            alts = [spdx_term(a) for a in re.split(r"\s+or\s+|\s*\|\s*", m.group(1).strip(), flags=re.I)]
            expr = alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"
            if expr not in groups:
                groups.append(expr)
    if not groups:
        if re.search(PROSE[0][0], text):   # the runtime exception qualifies the GPL it follows
            return PROSE[0][1]
        best = None
        for rx, spdx in PROSE:
            m = re.search(rx, text, re.S)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), spdx)
        return best[1] if best else "NOASSERTION"
    return groups[0] if len(groups) == 1 else "(" + " AND ".join(groups) + ")"


def spdx_id(name):
    return "SPDXRef-Package-" + re.sub(r"[^A-Za-z0-9.-]", "-", name)


def checksum(path):
    """SPDX allows BLAKE3 (2.3 §7.10): the only hash this project uses."""
    p = subprocess.run(["b3sum", "--no-names", path], capture_output=True, text=True, check=False)
    return p.stdout.strip() if p.returncode == 0 else None


def deb_package(pkg, info, comment):
    """The SPDX package entry of an installed Debian package."""
    version, source, arch = info.get(pkg, ("", pkg, ""))
    return {"SPDXID": spdx_id(pkg), "name": pkg, "versionInfo": version,
            "supplier": "Organization: Debian", "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False, "licenseConcluded": "NOASSERTION",
            "licenseDeclared": licenses(pkg), "copyrightText": "NOASSERTION",
            "sourceInfo": "Debian source package " + source,
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": "pkg:deb/debian/%s@%s?arch=%s" % (pkg, version, arch)}],
            "comment": comment}


def build(binary):
    pkgs, rels, seen = [], [], {}
    words = run(binary, "--version").split() if os.access(binary, os.X_OK) else []
    version = words[1] if len(words) > 1 else ""
    me = {"SPDXID": "SPDXRef-Package-macronode", "name": "macronode", "versionInfo": version or "NOASSERTION",
          "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
          "licenseConcluded": "NOASSERTION", "licenseDeclared": "NOASSERTION",
          "copyrightText": "NOASSERTION", "primaryPackagePurpose": "APPLICATION"}
    b3 = checksum(binary)
    if b3:
        me["checksums"] = [{"algorithm": "BLAKE3", "checksumValue": b3}]
    pkgs.append(me)
    libs = linked(binary)
    own = owners([path for _, path in libs])
    b3pkg = "librust-blake3-dev"
    info = pkg_infos(sorted(set(own.values())) + [b3pkg])
    for soname, path in libs:
        pkg = own.get(path)
        if not pkg:
            raise SystemExit("sbom: no Debian package owns %s (%s)" % (path, soname))
        if pkg in seen:
            seen[pkg]["comment"] += ", " + soname
            continue
        entry = deb_package(pkg, info, "links " + soname)
        seen[pkg] = entry
        pkgs.append(entry)
        rels.append({"spdxElementId": me["SPDXID"], "relationshipType": "DEPENDS_ON",
                     "relatedSpdxElement": entry["SPDXID"]})
    # BLAKE3: compiled in from the official C sources Debian ships.
    if info.get(b3pkg, ("",))[0]:
        entry = deb_package(b3pkg, info, "BLAKE3 C sources compiled into the binary (statically)")
        pkgs.append(entry)
        rels.append({"spdxElementId": me["SPDXID"], "relationshipType": "STATIC_LINK",
                     "relatedSpdxElement": entry["SPDXID"]})
    rels.insert(0, {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                    "relatedSpdxElement": me["SPDXID"]})
    stamp = os.environ.get("SOURCE_DATE_EPOCH")
    created = run("date", "-u", "-d", "@" + stamp, "+%Y-%m-%dT%H:%M:%SZ").strip() if stamp else \
        run("date", "-u", "+%Y-%m-%dT%H:%M:%SZ").strip()
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": "macronode " + (version or ""),
        "documentNamespace": "https://macronode.invalid/spdx/macronode-%s-%s" % (me["versionInfo"], (b3 or "0")[:16]),
        "creationInfo": {"created": created, "creators": ["Tool: macronode scripts/sbom.py"]},
        "packages": pkgs, "relationships": rels,
    }


def terms(expr):
    """Every license term of an expression (each alternative too: the
    allow-list must accept all of them, whichever one applies)."""
    return [t for t in re.split(r"\s+AND\s+|\s+OR\s+|[()]", expr) if t.strip()]


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    doc = build(argv[1])
    os.makedirs(os.path.dirname(os.path.abspath(argv[2])), exist_ok=True)
    with open(argv[2] + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(argv[2] + ".tmp", argv[2])
    bad = []
    if "--allow" in argv:
        allow = {l.split("#")[0].strip() for l in open(argv[argv.index("--allow") + 1])} - {""}
        for p in doc["packages"][1:]:
            for t in terms(p["licenseDeclared"]):
                if t not in allow:
                    bad.append("%s: %s" % (p["name"], t))
    print("sbom: %s: %d packages" % (argv[2], len(doc["packages"]) - 1))
    for b in bad:
        print("sbom: license outside the allow-list: " + b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
