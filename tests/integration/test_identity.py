"""Node identity (issue 12): created on first run or by init, mode 0600, the
same id in /version, /api/v1/status and `macronode id`, kept across restarts;
amnesia makes a fresh one per run and writes nothing."""
import os
import re
import stat

from conftest import AAD_IDENTITY, run_cli, unseal

ID_RE = re.compile(r"^b3:[0-9a-f]{64}$")


def test_first_run_creates_identity_and_reports_it(node_factory):
    n = node_factory()
    path = os.path.join(n.data_dir, "node", "identity.key")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_size == 25 + 64 + 16          # sealed under the KEK (docs/keys.md)
    v = n.get("/version").json()
    assert ID_RE.match(v["node_id"]), v
    assert n.status()["node_id"] == v["node_id"]
    r = run_cli(["id", "--data-dir", n.data_dir])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == v["node_id"]
    with open(path, "rb") as f:
        blob = f.read()
    assert blob[:5] == b"RKMS\x01"
    key = unseal(blob, n.data_dir + ".kek", AAD_IDENTITY).hex()
    assert key not in n.log()
    n.stop()
    n.start()
    assert n.get("/version").json()["node_id"] == v["node_id"]


def test_identity_file_refusals_name_the_file(node_factory):
    n = node_factory(start=False)
    path = os.path.join(n.data_dir, "node", "identity.key")
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("a" * 128 + "\n")
    os.chmod(path, 0o644)
    r = run_cli(["id", "--data-dir", n.data_dir])
    assert r.returncode != 0 and path in r.stderr and "group or others" in r.stderr
    os.chmod(path, 0o600)
    r = run_cli(["run", "--config", n.config_path], env=n.extra_env)
    assert r.returncode != 0
    assert path in r.stderr and "does not match" in r.stderr
    assert "aaaa" not in r.stderr


def test_id_without_identity_says_how_to_make_one(tmp_dir):
    r = run_cli(["id", "--data-dir", os.path.join(tmp_dir, "empty")])
    assert r.returncode != 0
    assert "no identity" in r.stderr and "macronode init" in r.stderr


def test_amnesia_identity_is_fresh_and_never_written(node_factory):
    n = node_factory(args=["--amnesia"])
    first = n.get("/version").json()["node_id"]
    assert ID_RE.match(first)
    n.stop()
    n.start()
    second = n.get("/version").json()["node_id"]
    assert ID_RE.match(second) and second != first
    assert not os.path.exists(os.path.join(n.data_dir, "node"))
    r = run_cli(["id", "--amnesia", "--data-dir", n.data_dir])
    assert r.returncode != 0 and "amnesia" in r.stderr
