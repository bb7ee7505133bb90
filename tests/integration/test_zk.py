"""Holder-bound tokens and proofs of possession (docs/zk.md, docs/auth.md), end
to end on the real binary: `zk keygen|pin|prove`, `token mint --holder-key`,
the wall's proof step on HTTP and OAP/1 (batched), the parameter pin at start
and reload, and the drill (bad proof -> 401, zk_verify_fail_total, no witness
anywhere).
"""
import json
import os
import time

from conftest import (DEFAULT_BUNDLE, OAP_END, OAP_GET, OAP_PUT, OAP_REQ, OAP_RESP,
                      OAP_START, SLOW, OapConn, b3sum_cid, install_wall, mint_token,
                      oap_frame, oap_json, oap_node, run_cli)

AUD = "node-zk"
WRITE = ("--prefix", "/o", "--method", "GET", "--method", "HEAD", "--method", "PUT",
         "--method", "POST", "--aud", AUD, "--ttl", "1h")
EMPTY_B3 = "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"


# ---------------------------------------------------------------- helpers

def zk_config(extra=None):
    cfg = {"auth": {"audience": AUD}, "zk": {"enabled": True}}
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    return cfg


def pin(n, *args):
    p = run_cli(["zk", "pin", "--config", n.config_path] + list(args))
    assert p.returncode == 0, p.stderr
    return p


def armed(n, start=True, do_pin=True):
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    if do_pin:
        pin(n)
    if start:
        n.start()
    return n


def zk_node(node_factory, config=None, start=True, do_pin=True, **kw):
    n = node_factory(zk_config(config), start=False, wall=None, **kw)
    return armed(n, start, do_pin)


def keygen(tmp, name="holder"):
    path = os.path.join(tmp, name)
    p = run_cli(["zk", "keygen", path])
    assert p.returncode == 0, p.stderr
    return path


def holder_token(n, key, *extra):
    return mint_token(n.data_dir, *WRITE, "--holder-key", key, *extra)


def prove(key, method, path, body=None, aud=AUD, ts=None, body_b3=None):
    args = ["zk", "prove", "--holder-key", key, "--method", method, "--path", path, "--aud", aud]
    if body is not None:
        f = key + ".body"
        with open(f, "wb") as fh:
            fh.write(body)
        args += ["--body", f]
    if body_b3 is not None:
        args += ["--body-b3", body_b3]
    if ts is not None:
        args += ["--ts", str(ts)]
    p = run_cli(args)
    assert p.returncode == 0, p.stderr
    proof = p.stdout.strip()
    assert len(proof) == 140, proof
    return proof


def hdrs(tok, proof=None):
    h = {"Authorization": "Bearer " + tok, "Content-Type": "application/octet-stream"}
    if proof:
        h["Ron-Proof"] = proof
    return h


def fails(n, reason):
    return n.metrics().sum("zk_verify_fail_total", reason=reason)


def refused(r, reason):
    assert r.status == 401, r
    j = r.json()
    assert j["code"] == "unauthenticated" and "holder proof refused (%s)" % reason in j["message"], j


def flip(s, i):
    c = s[i]
    return s[:i] + ("A" if c != "A" else "B") + s[i + 1:]


def secret_hex(key):
    with open(key) as f:
        return f.read().strip()


def tree_bytes(root):
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            try:
                with open(p, "rb") as fh:
                    out.append((p, fh.read()))
            except OSError:
                pass
    return out


def raw(proof):
    import base64
    return base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4))


def assert_nowhere(n, needles):
    """No witness: not in the log (where audit records and refusals go too),
    not anywhere in the data dir (objects, audit segments, keys, pins)."""
    log = n.log().encode()
    for s in needles:
        b = s.encode() if isinstance(s, str) else s
        assert b not in log, "a secret or proof reached the log"
        for p, data in tree_bytes(n.data_dir):
            assert b not in data, "a secret or proof reached %s" % p


# ---------------------------------------------------------------- HTTP

def test_holder_token_needs_a_proof_bound_to_each_request(node_factory, tmp_dir):
    n = zk_node(node_factory)
    key = keygen(tmp_dir)
    tok = holder_token(n, key)
    body = b"proof of possession"
    cid = b3sum_cid(body)
    # the token alone (a stolen bearer token) is useless
    r = n.gw("POST", "/o", body=body, headers=hdrs(tok))
    refused(r, "missing")
    # POST /o with a proof bound to this body → stored under the proven digest
    r = n.gw("POST", "/o", body=body, headers=hdrs(tok, prove(key, "POST", "/o", body)))
    assert r.status == 201 and r.json()["cid"] == cid, r
    # GET with a proof for this path
    r = n.gw("GET", "/o/" + cid, headers=hdrs(tok, prove(key, "GET", "/o/" + cid)))
    assert r.status == 200 and r.body == body, r
    # a proof made for another method, path or audience does not verify
    for p in (prove(key, "HEAD", "/o/" + cid), prove(key, "GET", "/o/" + EMPTY_B3),
              prove(key, "GET", "/o/" + cid, aud="node-other")):
        refused(n.gw("GET", "/o/" + cid, headers=hdrs(tok, p)), "bad_proof")
    # another key's proof for the same request
    other = keygen(tmp_dir, "other")
    refused(n.gw("GET", "/o/" + cid, headers=hdrs(tok, prove(other, "GET", "/o/" + cid))),
            "bad_proof")
    m = n.metrics()
    assert m.sum("zk_verify_success_total") >= 2
    assert m.sum("zk_verify_fail_total", reason="bad_proof") >= 4
    assert m.sum("zk_verify_fail_total", reason="missing") >= 1


def test_drill_bad_proof_rejected_counted_no_witness(node_factory, tmp_dir):
    """The seed's drill: ZK bad proof → reject; zk_verify_fail_total
    increments; no witness in logs (nor anywhere on disk)."""
    n = zk_node(node_factory, {"log": {"level": "debug"}})
    key = keygen(tmp_dir)
    tok = holder_token(n, key)
    good = prove(key, "GET", "/o/" + EMPTY_B3)
    before = fails(n, "bad_proof")
    # every position of the proof's signature part (R and s) flipped: refused
    bad = [flip(good, i) for i in (60, 80, 100, 120, 139)]
    for p in bad:
        r = n.gw("GET", "/o/" + EMPTY_B3, headers=hdrs(tok, p))
        assert r.status == 401, r
        assert p.encode() not in r.body
        assert r.json()["message"].startswith("holder proof refused (")
    after = n.metrics()
    assert after.sum("zk_verify_fail_total") - before >= len(bad)
    assert after.sum("rejected_total", reason="unauth") >= len(bad)
    # the good one still works (the refusals did not consume it)
    r = n.gw("GET", "/o/" + EMPTY_B3, headers=hdrs(tok, good))
    assert r.status in (200, 404), r
    n.stop()
    sk = secret_hex(key)
    assert_nowhere(n, [sk, bytes.fromhex(sk), good, raw(good)[41:], tok] + bad)


def binding_refusals(n):
    """The audit log's ingress/capability_refused records of reason
    proof_binding (a body that did not hash to what its proof bound)."""
    from test_audit_service import find, records
    return find(records(n), "ingress", "capability_refused", "proof_binding")


def test_replayed_stale_and_wrongly_bound_proofs(node_factory, tmp_dir):
    n = zk_node(node_factory, {"zk": {"skew": "30s"}})
    key = keygen(tmp_dir)
    tok = holder_token(n, key, "--tenant", "zkt")
    path = "/o/" + EMPTY_B3
    p = prove(key, "GET", path)
    assert n.gw("GET", path, headers=hdrs(tok, p)).status == 404
    refused(n.gw("GET", path, headers=hdrs(tok, p)), "replay")
    now = int(time.time())
    refused(n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path, ts=now - 120))), "stale")
    refused(n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path, ts=now + 120))), "stale")
    # within the window: accepted
    assert n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path, ts=now - 10))).status == 404
    # a GET proof that claims a body digest other than the empty body's
    refused(n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path, body=b"x"))), "binding")
    # PUT /o/{id}: the proof must carry the id the path names
    body = b"bound body"
    cid = b3sum_cid(body)
    r = n.gw("PUT", "/o/" + cid, body=body,
             headers=hdrs(tok, prove(key, "PUT", "/o/" + cid, body=b"other body")))
    refused(r, "binding")
    # POST /o and PUT /o whose body is not what the proof bound: the body is
    # judged at its end (storage hashes it), 401 binding, never a success
    plain = mint_token(n.data_dir, *WRITE)
    for method in ("POST", "PUT"):
        body = ("%s body" % method).encode()
        cid = b3sum_cid(body)
        ok = n.metrics().sum("zk_verify_success_total")
        binding = fails(n, "binding")
        r = n.gw(method, "/o", body=body, headers=hdrs(tok, prove(key, method, "/o", b"other")))
        refused(r, "binding")
        assert "invalid_token" in (r.header("WWW-Authenticate") or ""), r.headers
        assert n.metrics().sum("zk_verify_success_total") == ok, method
        assert fails(n, "binding") == binding + 1, method
        assert n.gw("GET", "/o/" + cid, headers=hdrs(plain)).status == 404   # nothing stored
        # the same body, rightly bound: stored, and its success counted now
        r = n.gw(method, "/o", body=body, headers=hdrs(tok, prove(key, method, "/o", body)))
        assert r.status in (200, 201) and r.json()["cid"] == cid, r
        assert n.metrics().sum("zk_verify_success_total") == ok + 1, method
    # malformed, and a proof sent with a token that names no holder key
    refused(n.gw("GET", path, headers=hdrs(tok, "A" * 139)), "malformed")
    refused(n.gw("GET", path, headers=hdrs(plain, prove(key, "GET", path))), "unbound")
    m = n.metrics()
    for reason in ("replay", "stale", "binding", "malformed", "unbound"):
        assert m.sum("zk_verify_fail_total", reason=reason) >= 1, reason
    # The two bodies refused 401 binding are capability refusals in the
    # audit log like the wall's own, keyed by the ticket's tenant.
    assert n.stop() == 0
    bound = binding_refusals(n)
    assert sum(r["attrs"]["count"] for r in bound) == 2, bound
    assert {r["subject"]["key"] for r in bound} == {"t:zkt"}, bound
    assert {r["writer_id"] for r in bound} == {"gateway/0"}, bound


def test_zk_off_refuses_holder_tokens_and_version_says_so(node_factory, tmp_dir):
    n = node_factory({"auth": {"audience": AUD}}, start=False, wall=None)
    armed(n, do_pin=False)
    key = keygen(tmp_dir)
    tok = holder_token(n, key)
    path = "/o/" + EMPTY_B3
    refused(n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path))), "disabled")
    v = n.get("/version").json()
    assert v["zk"] is False and v["features"]["zk"] is True   # built in, not on
    assert fails(n, "disabled") >= 1


def test_version_reports_zk_when_enabled(node_factory):
    n = zk_node(node_factory)
    v = n.get("/version").json()
    assert v["zk"] is True and v["features"]["zk"] is True


# ---------------------------------------------------------------- fail closed

def test_pin_missing_or_mismatched_refuses_start_naming_the_key(node_factory):
    n = zk_node(node_factory, start=False, do_pin=False)
    n.spawn()
    assert n.wait_exit(20 * SLOW) == 1
    assert "zk_param_mismatch" in n.log() and "zk.params_pin_file" in n.log()
    pin(n, "--hash", "b3:" + "ab" * 32)
    n.spawn()
    assert n.wait_exit(20 * SLOW) == 1
    log = n.log()
    assert "zk_param_mismatch" in log and "pins b3:" + "ab" * 32 in log
    # `macronode check` says the same before any start
    p = run_cli(["check", "--config", n.config_path])
    assert p.returncode != 0 and "zk_param_mismatch" in p.stdout
    # the right pin: starts
    pin(n, "--force")
    n.start()


def test_reload_refused_when_the_pin_changes(node_factory):
    n = zk_node(node_factory)
    pin(n, "--force", "--hash", "b3:" + "cd" * 32)
    r = n.post("/api/v1/reload")
    assert r.status != 200, r
    assert "zk_param_mismatch" in r.body.decode()
    m = n.metrics()
    assert m.sum("config_reloads_total", result="refused") >= 1
    assert m.sum("zk_param_mismatch_total") >= 1
    pin(n, "--force")
    assert n.post("/api/v1/reload").status == 202


def test_config_check_names_the_key(node_factory):
    n = node_factory({"zk": {"enabled": True}}, start=False, wall=None)
    p = run_cli(["config", "validate", n.config_path])
    assert p.returncode != 0 and "zk.enabled" in p.stderr + p.stdout
    assert "auth.audience" in p.stderr + p.stdout
    p = run_cli(["config", "print"], env={"RON_ZK": "1", "RON_AUDIENCE": AUD})
    assert p.returncode == 0 and '"enabled": true' in p.stdout


# ---------------------------------------------------------------- CLI

def test_keygen_modes_and_mint_binds_the_public_key(node_factory, tmp_dir):
    key = keygen(tmp_dir)
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert os.stat(key + ".pub").st_mode & 0o777 == 0o644
    assert run_cli(["zk", "keygen", key]).returncode != 0   # never overwrites
    n = node_factory(zk_config(), start=False, wall=None)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    tok = holder_token(n, key)
    j = json.loads(run_cli(["token", "inspect", tok]).stdout)
    pub = open(key + ".pub").read().strip()
    holder = [c for c in j["caveats"] if c["t"] == "Custom"]
    assert holder and holder[0]["v"]["ns"] == "macronode" and holder[0]["v"]["name"] == "holder"
    assert pub in json.dumps(holder[0])                     # the public key, bound
    assert secret_hex(key) not in json.dumps(j)
    # a secret others may read is refused when proving
    os.chmod(key, 0o644)
    p = run_cli(["zk", "prove", "--holder-key", key, "--method", "GET", "--path", "/o",
                 "--aud", AUD])
    assert p.returncode != 0 and "chmod 600" in p.stderr


def test_replay_table_failure_degrades_and_refuses(node_factory, tmp_dir):
    """A worker that cannot use the replay table (the test hook stands for a
    broken annex) fails closed: /readyz degraded naming why, holder-bound
    tokens 401 unavailable, counted; plain tokens still served."""
    n = zk_node(node_factory, env={"MN_TEST_ZK_REPLAY_FAIL": "1"})
    r = n.get("/readyz").json()
    assert r["status"] == "degraded", r
    assert r["deps"]["services"]["gateway"]["state"] == "degraded", r
    assert "gateway: holder proofs unavailable (zk replay table) on 1 of 1 workers: " \
           "holder-bound tokens refused" in r["reasons"], r
    key = keygen(tmp_dir)
    tok = holder_token(n, key)
    path = "/o/" + EMPTY_B3
    # a good proof is of no use: no table to catch its replay, so no entry
    refused(n.gw("GET", path, headers=hdrs(tok, prove(key, "GET", path))), "unavailable")
    refused(n.gw("GET", path, headers=hdrs(tok)), "unavailable")
    assert fails(n, "unavailable") == 2
    assert n.metrics().sum("zk_verify_success_total") == 0
    # a plain bearer token is not the protection asked for: served as ever
    assert n.gw("GET", path, headers=hdrs(mint_token(n.data_dir, *WRITE))).status == 404
    assert "test hook: the zk replay table cannot be opened" in n.log()


# ---------------------------------------------------------------- OAP/1

def oap_zk_node(node_factory, pki, config=None):
    n = oap_node(node_factory, pki, zk_config(config), start=False, wall=None)
    return armed(n)


def test_put_get_cli_with_holder_key(node_factory, pki, tmp_dir):
    n = oap_zk_node(node_factory, pki)
    key = keygen(tmp_dir)
    tok_file = os.path.join(tmp_dir, "tok")
    with open(tok_file, "w") as f:
        f.write(holder_token(n, key))
    src = os.path.join(tmp_dir, "obj")
    with open(src, "wb") as f:
        f.write(os.urandom(200000))
    cid = b3sum_cid(open(src, "rb").read())
    common = ["--peer", n.oap_peer, "--ca", pki.path("ca.pem"), "--token-file", tok_file]
    p = run_cli(["put", src] + common)
    assert p.returncode != 0 and "holder proof refused (missing)" in p.stderr, p
    p = run_cli(["put", src] + common + ["--holder-key", key, "--aud", AUD])
    assert p.returncode == 0 and p.stdout.strip() == cid, p
    out = os.path.join(tmp_dir, "back")
    p = run_cli(["get", cid, "-o", out] + common + ["--holder-key", key],
                env={"RON_AUDIENCE": AUD})
    assert p.returncode == 0, p
    assert open(out, "rb").read() == open(src, "rb").read()
    n.stop()
    assert_nowhere(n, [secret_hex(key), bytes.fromhex(secret_hex(key))])


def test_oap_put_wrongly_bound_is_401_binding(node_factory, pki, tmp_dir):
    """OAP/1 PUT without "expect": the proof's digest is the upload's; a
    body that does not hash to it is the proof's failure (401 binding,
    counted, and audited as a capability refusal), not a 422 counted as a
    verified proof."""
    cfg = dict(zk_config(), services=["gateway", "storage", "omnigate", "audit"])
    n = armed(oap_node(node_factory, pki, cfg, start=False, wall=None))
    key = keygen(tmp_dir)
    tok = holder_token(n, key, "--tenant", "zkt").encode()
    body = b"what was sent"
    c = OapConn(n.oap_port)
    try:
        c.hello()
        ok = n.metrics().sum("zk_verify_success_total")
        put = oap_json({"proof": prove(key, "PUT", "/o", b"what was proved")})
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=1, cap=tok, payload=put) +
               oap_frame(OAP_REQ | OAP_END, corr=1, payload=body))
        f = c.recv_frame()
        assert f.code == 401 and f.json()["code"] == "unauthenticated", f.payload
        assert "holder proof refused (binding)" in f.json()["message"], f.payload
        m = n.metrics()
        assert m.sum("zk_verify_success_total") == ok
        assert m.sum("zk_verify_fail_total", reason="binding") == 1
        assert m.sum("oap_rejected_total", reason="unauth") >= 1
        # rightly bound: stored, one success
        put = oap_json({"proof": prove(key, "PUT", "/o", body)})
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=3, cap=tok, payload=put) +
               oap_frame(OAP_REQ | OAP_END, corr=3, payload=body))
        f = c.recv_frame()
        assert f.code == 201 and f.json()["cid"] == b3sum_cid(body), f.payload
        assert n.metrics().sum("zk_verify_success_total") == ok + 1
    finally:
        c.close()
    assert n.stop() == 0
    bound = binding_refusals(n)
    assert sum(r["attrs"]["count"] for r in bound) == 1, bound
    assert {r["subject"]["key"] for r in bound} == {"t:zkt"}, bound
    assert {r["writer_id"] for r in bound} == {"omnigate"}, bound


def test_replay_table_failure_on_omnigate(node_factory, pki, tmp_dir):
    """The same fail-closed rule on OAP/1: omnigate degrades /readyz and
    refuses the holder-bound START."""
    n = oap_node(node_factory, pki, zk_config(), start=False, wall=None,
                 env={"MN_TEST_ZK_REPLAY_FAIL": "1"})
    armed(n)
    r = n.get("/readyz").json()
    assert r["status"] == "degraded", r
    assert any(x.startswith("omnigate: holder proofs unavailable (zk replay table)")
               for x in r["reasons"]), r
    key = keygen(tmp_dir)
    tok = holder_token(n, key).encode()
    c = OapConn(n.oap_port)
    try:
        c.hello()
        c.send(oap_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_GET, corr=1, cap=tok,
                         payload=oap_json({"cid": EMPTY_B3,
                                           "proof": prove(key, "GET", "/o/" + EMPTY_B3)})))
        f = c.recv_frame()
        assert f.code == 401 and "holder proof refused (unavailable)" in f.json()["message"]
    finally:
        c.close()


def test_oap_pipelined_proofs_are_batch_verified(node_factory, pki, tmp_dir):
    n = oap_zk_node(node_factory, pki)
    key = keygen(tmp_dir)
    tok = holder_token(n, key).encode()
    body = b"batch me"
    cid = b3sum_cid(body)
    c = OapConn(n.oap_port)
    try:
        c.hello()
        put = oap_json({"expect": cid, "proof": prove(key, "PUT", "/o", body)})
        c.send(oap_frame(OAP_REQ | OAP_START, code=OAP_PUT, corr=1, cap=tok, payload=put) +
               oap_frame(OAP_REQ | OAP_END, corr=1, payload=body))
        f = c.recv_frame()
        assert f.code == 201, f.payload
        # ten GETs in one write: nine good proofs and one tampered one
        proofs = [prove(key, "GET", "/o/" + cid) for _ in range(10)]
        proofs[4] = flip(proofs[4], 100)
        data = b"".join(
            oap_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_GET, corr=10 + i, cap=tok,
                      payload=oap_json({"cid": cid, "proof": p})) for i, p in enumerate(proofs))
        c.send(data)
        status = {}
        while len(status) < 10:
            f = c.recv_frame()
            assert f is not None
            if f.flags & OAP_START and f.flags & OAP_RESP:
                status[f.corr] = f.code
                if f.code == 401:
                    assert "holder proof refused (bad_proof)" in f.json()["message"]
        assert status[14] == 401
        assert all(status[10 + i] == 200 for i in range(10) if i != 4), status
        # the same proofs again: every one a replay now (node-wide cache)
        c.send(oap_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_GET, corr=40, cap=tok,
                         payload=oap_json({"cid": cid, "proof": proofs[0]})))
        while True:
            f = c.recv_frame()
            if f.corr == 40 and f.flags & OAP_START:
                break
        assert f.code == 401 and "(replay)" in f.json()["message"]
    finally:
        c.close()
    m = n.metrics()
    assert m.sum("zk_batch_proofs_total") >= 2
    assert m.sum("zk_verify_success_total") >= 10
    assert m.sum("zk_verify_fail_total", reason="bad_proof") >= 1


def test_replay_caught_across_http_and_oap(node_factory, pki, tmp_dir):
    """The replay table is node-wide: a proof used on one protocol (and
    worker) is a replay on another."""
    n = oap_zk_node(node_factory, pki, {"gateway": {"workers": 2}})
    key = keygen(tmp_dir)
    tok = holder_token(n, key)
    path = "/o/" + EMPTY_B3
    p = prove(key, "GET", path)
    c = OapConn(n.oap_port)
    try:
        c.hello()
        c.send(oap_frame(OAP_REQ | OAP_START | OAP_END, code=OAP_GET, corr=1, cap=tok.encode(),
                         payload=oap_json({"cid": EMPTY_B3, "proof": p})))
        f = c.recv_frame()
        assert f.code == 404, f.payload
    finally:
        c.close()
    import http.client
    from conftest import oap_tls_context
    hc = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, timeout=5 * SLOW,
                                     context=oap_tls_context())
    try:
        hc.request("GET", path, headers=hdrs(tok, p))
        r = hc.getresponse()
        body = r.read()
        assert r.status == 401 and b"(replay)" in body, body
    finally:
        hc.close()
