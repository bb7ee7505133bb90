"""The man pages (docs/man/): macronode.json(5) is generated from the config
table and must match `macronode config man`; macronode(8) must name every
command of `macronode --help`, every flag of every command's and
subcommand's --help, and every RON_* variable the config table knows; both
are mandoc -Tlint clean."""
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


FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b")


def command_words():
    """Each command of `macronode help` and its subcommands (`policy
    keygen|sign|...`, `audit verify`, `audit tail`, ...)."""
    out = {}
    for cmd, rest in re.findall(r"^  ([a-z]+)(.*)$", run_cli(["help"]).stdout, re.M):
        subs = out.setdefault(cmd, [])
        m = re.match(r" ([a-z]+(?:\|[a-z]+)*)\b", rest)
        if m and (cmd != "name" and cmd != "find" or "|" in m.group(1)):
            subs += [x for x in m.group(1).split("|") if x not in subs]
    return out


def help_flags(cmd, subs):
    """Every --flag (and -x) the help of cmd and of each `cmd sub` names."""
    texts = [run_cli([cmd, "--help"])] + [run_cli([cmd, s, "--help"]) for s in subs]
    flags = set()
    for p in texts:
        assert p.returncode == 0, (cmd, subs, p.stdout, p.stderr)
        flags |= set(FLAG.findall(p.stdout))
    return flags - {"-h", "--help"}    # DESCRIPTION: every command takes --help


def command_blocks(text):
    """The .It Cm <command> items of COMMANDS: command -> its mdoc text."""
    body = text.split(".Sh COMMANDS", 1)[1].split("\n.Sh ", 1)[0]
    blocks, cur = {}, None
    depth = 0
    for line in body.splitlines():
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        m = re.match(r"\.It Cm (\S+)", line)
        if m and depth == 1:
            cur = m.group(1)
        if cur:
            blocks[cur] = blocks.get(cur, "") + line + "\n"
    return blocks


def test_node_page_documents_every_flag():
    """Every flag of every command's --help (and its subcommands') is an
    .Fl in that command's item of macronode(8). A flag added to the CLI
    without a line here fails this test: add `.It Fl -flag Ar ARG` to the
    command's option list (the message below gives a stub)."""
    text = page("macronode.8")
    blocks = command_blocks(text)
    node_opts = text.split("\n.Sh NODE OPTIONS\n", 1)[1].split("\n.Sh ", 1)[0]
    fl = re.compile(r"\bFl (-?-?[a-z][a-z0-9-]*)")
    missing = []
    for cmd, subs in sorted(command_words().items()):
        if cmd == "help":
            continue
        block = blocks.get(cmd, "")
        have = set(fl.findall(block))
        if "Sx NODE OPTIONS" in block:      # "takes the NODE OPTIONS"
            have |= set(fl.findall(node_opts))
        for f in sorted(help_flags(cmd, subs)):
            if f[1:] not in have:          # --flag is ".Fl -flag", -o ".Fl o"
                missing.append("%s: .It Fl %s" % (cmd, f[1:]))
    assert len(command_words()) > 15
    assert not missing, "undocumented in docs/man/macronode.8:\n" + "\n".join(missing)


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
