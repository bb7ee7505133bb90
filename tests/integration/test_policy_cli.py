"""`macronode policy keygen|sign|verify|eval` on the real binary (docs/policy.md)."""
import json
import os
import shutil

from conftest import AAD_POLICY, kek_env, run_cli, session_kek, unseal

VECTORS = os.path.join(os.path.dirname(__file__), "..", "vectors", "policy")


def signed_bundle(tmp_dir, name="method_matrix"):
    b = os.path.join(tmp_dir, name + ".json")
    shutil.copy(os.path.join(VECTORS, name + ".json"), b)
    k = os.path.join(tmp_dir, "k-" + name)
    assert run_cli(["policy", "keygen", "--out", k], env=kek_env()).returncode == 0
    assert os.stat(k + ".key").st_mode & 0o077 == 0
    assert run_cli(["policy", "sign", b, "--key", k + ".key"], env=kek_env()).returncode == 0
    return b, k + ".pub", k + ".key"


def test_keygen_never_overwrites(tmp_dir):
    k = os.path.join(tmp_dir, "k")
    assert run_cli(["policy", "keygen", "--out", k], env=kek_env()).returncode == 0
    with open(k + ".key", "rb") as f:
        first = f.read()
    assert run_cli(["policy", "keygen", "--out", k], env=kek_env()).returncode != 0
    with open(k + ".key", "rb") as f:
        assert f.read() == first


def test_sign_verify_eval(tmp_dir):
    b, pub, _ = signed_bundle(tmp_dir)
    p = run_cli(["policy", "verify", b, "--pub", pub])
    assert p.returncode == 0 and "signature valid" in p.stdout, p
    p = run_cli(["policy", "eval", b, "--pub", pub, "--method", "GET"])
    assert p.returncode == 0 and "decision: allow" in p.stdout and "reason: get ok" in p.stdout, p
    p = run_cli(["policy", "eval", b, "--pub", pub, "--method", "PUT"])
    assert p.returncode == 1 and "decision: deny" in p.stdout, p
    assert "reason: put blocked" in p.stdout and "rule: deny-put" in p.stdout, p
    p = run_cli(["policy", "eval", b, "--pub", pub, "--method", "POST"])
    assert p.returncode == 1 and "reason: default" in p.stdout, p


def test_tampered_bundle_and_wrong_key_refused(tmp_dir):
    b, pub, _ = signed_bundle(tmp_dir)
    with open(b, "rb") as f:
        data = bytearray(f.read())
    data[data.index(b"GET")] = ord("P")   # one byte changed
    with open(b, "wb") as f:
        f.write(bytes(data))
    p = run_cli(["policy", "verify", b, "--pub", pub])
    assert p.returncode == 1, p
    assert b in p.stderr or "signature" in p.stderr, p
    other = os.path.join(tmp_dir, "other")
    assert run_cli(["policy", "keygen", "--out", other], env=kek_env()).returncode == 0
    b2, _, _ = signed_bundle(os.path.join(tmp_dir), "eu_only")
    p = run_cli(["policy", "verify", b2, "--pub", other + ".pub"])
    assert p.returncode == 1, p


def test_signing_key_must_be_private(tmp_dir):
    b, _, key = signed_bundle(tmp_dir)
    os.chmod(key, 0o644)
    p = run_cli(["policy", "sign", b, "--key", key], env=kek_env())
    assert p.returncode != 0, p
    assert "0600" in p.stderr or "mode" in p.stderr or "readable" in p.stderr, p.stderr
    # the key's bytes never reach the output
    with open(key, "rb") as f:
        secret = unseal(f.read(), session_kek(), AAD_POLICY).hex()
    assert secret not in p.stderr and secret not in p.stdout


def test_unknown_field_named_by_path(tmp_dir):
    b = os.path.join(tmp_dir, "bad.json")
    with open(os.path.join(VECTORS, "method_matrix.json")) as f:
        doc = json.load(f)
    doc["rules"][0]["when"]["tenants"] = "x"       # "tenant" is the reference's; this is not
    with open(b, "w") as f:
        json.dump(doc, f)
    p = run_cli(["policy", "eval", b, "--method", "GET"])
    assert p.returncode == 2, p
    assert 'rules[0].when: unknown field "tenants"' in p.stderr, p.stderr


def test_reference_bundle_accepted_and_tenant_applies(tmp_dir):
    """A bundle written for the reference (meta, obligations, when.tenant,
    a lower-case method, a tag in another case, a rule without reason)
    parses; `policy eval` shows when.tenant deciding and no reason where the
    rule gave none."""
    doc = {"version": 1, "meta": {"owner": "ops"},
           "defaults": {"default_action": "deny"},
           "rules": [{"id": "acme", "when": {"tenant": "acme", "method": "get"},
                      "action": "allow", "obligations": [{"kind": "log-audit", "params": {}}]},
                     {"id": "tagged", "when": {"require_tags_all": ["Paid"]}, "action": "allow",
                      "reason": "paid"}]}
    b = os.path.join(tmp_dir, "ref.json")
    with open(b, "w") as f:
        json.dump(doc, f)
    p = run_cli(["policy", "eval", b, "--method", "GET", "--tenant", "acme"])
    assert p.returncode == 0, p.stderr
    assert "decision: allow\nreason: (none)\nrule: acme" in p.stdout, p.stdout
    p = run_cli(["policy", "eval", b, "--method", "GET", "--tenant", "other"])
    assert p.returncode != 0 and "decision: deny\nreason: default" in p.stdout, p.stdout
    p = run_cli(["policy", "eval", b, "--method", "GET", "--tag", "paid"])
    assert p.returncode == 0 and "rule: tagged" in p.stdout, p.stdout
