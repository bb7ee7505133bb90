"""`macronode token mint|attenuate|inspect` on the real binary (ron-auth v1)."""
import json
import os

from conftest import run_cli

# Vector A (tests/vectors/README.md §3)
VECTOR_A = ("pWN0aWRkdGVzdGNraWRiazFlc2NvcGWjZnByZWZpeGcvaW5kZXgvZ21ldGhvZHOBY0dFVGltYXhfYnl0ZXP2"
            "Z2NhdmVhdHOFomF0Y0F1ZGF2aGF1ZC1kZW1vomF0alBhdGhQcmVmaXhhdmcvaW5kZXgvomF0Zk1ldGhvZGF2"
            "gWNHRVSiYXRmVGVuYW50YXZkdGVzdKJhdGNFeHBhdhplU_IsY21hY1ggI5-hnX8okqQKezhMA2VI6nuI3SuOm"
            "uFWEPRYfFD86PU")
KEY_A = b"0123456789abcdef0123456789abcdef".hex()


def key_file(tmp_dir, name, hexkey, mode=0o600):
    p = os.path.join(tmp_dir, name + ".key")
    with open(p, "w") as f:
        f.write(hexkey)
    os.chmod(p, mode)
    return p


def test_inspect_vector_a_shows_fields_never_the_mac():
    p = run_cli(["token", "inspect", VECTOR_A])
    assert p.returncode == 0, p
    j = json.loads(p.stdout)
    assert j["tid"] == "test" and j["kid"] == "k1"
    assert j["scope"] == {"prefix": "/index/", "methods": ["GET"], "max_bytes": None}
    assert [c["t"] for c in j["caveats"]] == ["Aud", "PathPrefix", "Method", "Tenant", "Exp"]
    full_mac = "239fa19d7f2892a40a7b384c036548ea7b88dd2b8e9ae15610f4587c50fce8f5"
    assert full_mac not in p.stdout


def test_attenuate_checks_the_mac_first(tmp_dir):
    k = key_file(tmp_dir, "k1", KEY_A)
    ok = run_cli(["token", "attenuate", VECTOR_A, "--key", k, "--allow-method", "GET"])
    assert ok.returncode == 0, ok
    assert ok.stdout.strip() != VECTOR_A and len(ok.stdout.strip()) > len(VECTOR_A)
    # one character of the MAC changed: refused, and nothing minted
    i = len(VECTOR_A) - 5
    bad = VECTOR_A[:i] + ("A" if VECTOR_A[i] != "A" else "B") + VECTOR_A[i + 1:]
    p = run_cli(["token", "attenuate", bad, "--key", k, "--allow-method", "GET"])
    assert p.returncode != 0 and p.stdout.strip() == "", p
    assert KEY_A not in p.stderr


def test_mint_then_inspect_round_trip(tmp_dir):
    k = key_file(tmp_dir, "k1", os.urandom(32).hex())
    p = run_cli(["token", "mint", "--key", k, "--kid", "k1", "--tid", "t1", "--prefix", "/o/",
                 "--method", "GET", "--aud", "node-a", "--ttl", "60s"])
    assert p.returncode == 0, p
    tok = p.stdout.strip()
    with open(k) as f:
        assert f.read() not in p.stdout + p.stderr   # the key never leaves the file
    j = json.loads(run_cli(["token", "inspect", tok]).stdout)
    assert j["tid"] == "t1" and j["scope"]["prefix"] == "/o/" and j["scope"]["methods"] == ["GET"]
    assert {"t": "Aud", "v": "node-a"} in j["caveats"]
    assert any(c["t"] == "Exp" for c in j["caveats"])


def test_key_file_must_be_private(tmp_dir):
    k = key_file(tmp_dir, "k1", KEY_A, mode=0o644)
    p = run_cli(["token", "mint", "--key", k, "--kid", "k1"])
    assert p.returncode != 0, p
    assert k in p.stderr, p.stderr
    assert KEY_A not in p.stderr and KEY_A not in p.stdout
