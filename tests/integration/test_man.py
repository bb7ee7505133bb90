"""The man pages (docs/man/): macronode.json(5) is generated from the config
table and must match `macronode config man`; macronode(8) must name every
command of `macronode --help` and every RON_* variable the config table
knows; both are mandoc -Tlint clean."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import REPO, run_cli

MAN = os.path.join(REPO, "docs", "man")
MANDOC = shutil.which("mandoc")
# Cross-references between our own pages: mandoc looks them up in the
# system's manual database, where an uninstalled tree is not.
OWN_XR = re.compile(r"STYLE: referenced manual not found: Xr macronode(\.json)? [58]\b")


def page(name):
    return open(os.path.join(MAN, name)).read()


def test_config_page_is_generated_from_the_table():
    p = run_cli(["config", "man"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == page("macronode.json.5"), "run `make man` and commit docs/man/macronode.json.5"
    keys = re.findall(r"^\| `([a-z0-9_.]+)` \|", run_cli(["config", "docs"]).stdout, re.M)
    assert len(keys) > 40
    for k in keys:
        assert ".It Cm %s Pq " % k in p.stdout, k


def test_node_page_names_every_command_and_variable():
    text = page("macronode.8")
    items = re.findall(r"^\.It Cm (\S+)", text, re.M)
    helped = re.findall(r"^  ([a-z]+)\b", run_cli(["help"]).stdout, re.M)
    assert len(helped) > 10
    assert set(helped) == set(items), ("--help vs macronode(8)", sorted(set(helped) ^ set(items)))
    # the config subcommands
    sub = run_cli(["config", "--help"]).stdout
    for s in re.findall(r"macronode config (\w+)", sub):
        assert re.search(r"^\.It Cm config Cm .*\b%s\b" % s, text, re.M), "config " + s
    # the environment: every variable of the config table, and the client's token
    env = set(re.findall(r"`(RON_[A-Z_]+)`", run_cli(["config", "docs"]).stdout)) | {"RON_TOKEN"}
    documented = set(re.findall(r"\bRON_[A-Z_]+\b", " ".join(
        l for l in text.splitlines() if l.startswith(".It Ev"))))
    assert env == documented, ("RON_* in the config table vs macronode(8) ENVIRONMENT",
                               sorted(env ^ documented))


@pytest.mark.skipif(not MANDOC, reason="mandoc not installed (scripts/deps.sh)")
@pytest.mark.parametrize("name", ["macronode.8", "macronode.json.5"])
def test_mandoc_lint_clean(name):
    p = subprocess.run([MANDOC, "-Tlint", os.path.join(MAN, name)], capture_output=True,
                       text=True, timeout=60)
    problems = [l for l in (p.stdout + p.stderr).splitlines() if l and not OWN_XR.search(l)]
    assert not problems, problems
    # and it renders
    r = subprocess.run([MANDOC, "-Tutf8", os.path.join(MAN, name)], capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and len(r.stdout) > 2000
