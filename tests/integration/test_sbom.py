"""The SBOM (`make sbom`, scripts/sbom.py, docs/sbom.md): generated from
ldd, dpkg -S and dpkg-query for the binary under test; every library it
links is listed with its Debian package, version and license; a license
outside deploy/sbom-licenses.allow fails; the committed
docs/sbom/macronode.spdx.json names the same packages."""
import json
import os
import re
import subprocess

import pytest

from conftest import BIN, REPO

SBOM = os.path.join(REPO, "scripts", "sbom.py")
ALLOW = os.path.join(REPO, "deploy", "sbom-licenses.allow")
COMMITTED = os.path.join(REPO, "docs", "sbom", "macronode.spdx.json")
SANITIZER = re.compile(r"^lib(asan|ubsan|lsan|tsan)\d*$")


def generate(out, allow=ALLOW):
    return subprocess.run(["/usr/bin/python3", SBOM, BIN, str(out), "--allow", allow],
                          capture_output=True, text=True, timeout=120)


def linked_sonames():
    out = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=30).stdout
    names = []
    for line in out.splitlines():
        m = re.match(r"\s*(\S+)\s+=>\s+/", line)
        if m:
            names.append(m.group(1))
    return names


@pytest.fixture(scope="module")
def sbom(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbom") / "sbom.json"
    p = generate(out)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(out.read_text())


def test_sbom_lists_every_linked_library(sbom):
    doc = sbom
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    me = doc["packages"][0]
    assert me["name"] == "macronode"
    assert re.fullmatch(r"[0-9a-f]{64}", me["checksums"][0]["checksumValue"])
    assert me["checksums"][0]["algorithm"] == "BLAKE3"
    libs = doc["packages"][1:]
    comments = " ".join(p.get("comment", "") for p in libs)
    sonames = linked_sonames()
    assert len(sonames) >= 10
    for so in sonames:
        assert re.search(r"\b%s\b" % re.escape(so), comments), "linked %s missing from the SBOM" % so
    q = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Version}\\n"] + [p["name"] for p in libs],
                       capture_output=True, text=True, timeout=60).stdout
    installed = dict(l.split(" ", 1) for l in q.splitlines() if " " in l)
    for p in libs:
        assert p["versionInfo"], p
        assert p["licenseDeclared"] != "NOASSERTION", p["name"]
        purl = p["externalRefs"][0]["referenceLocator"]
        assert purl.startswith("pkg:deb/debian/%s@" % p["name"]), purl
        assert installed.get(p["name"]) == p["versionInfo"], (p["name"], installed.get(p["name"]))
    names = {p["name"] for p in libs}
    for must in ("libssl3", "libsodium23", "libevent-core-2.1-7", "librust-blake3-dev"):
        assert must in names, must
    rel = {(r["relatedSpdxElement"], r["relationshipType"]) for r in doc["relationships"]}
    assert all((p["SPDXID"], "DEPENDS_ON") in rel or (p["SPDXID"], "STATIC_LINK") in rel
               for p in libs)


def test_sbom_refuses_a_license_outside_the_allow_list(tmp_path):
    allow = tmp_path / "allow"
    allow.write_text("\n".join(l for l in open(ALLOW).read().splitlines()
                               if l.strip() != "OLDAP-2.8") + "\n")
    p = generate(tmp_path / "sbom.json", str(allow))
    assert p.returncode == 1
    assert "liblmdb0: OLDAP-2.8" in p.stderr, p.stderr


def test_committed_sbom_names_the_same_packages(sbom):
    fresh = {p["name"] for p in sbom["packages"][1:]}
    fresh = {n for n in fresh if not SANITIZER.match(n.split(":")[0])}
    committed = {p["name"] for p in json.load(open(COMMITTED))["packages"][1:]}
    assert fresh == committed, ("run `make sbom` and commit docs/sbom/macronode.spdx.json",
                                sorted(fresh ^ committed))
