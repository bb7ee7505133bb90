"""The wall: Auth -> Policy -> Quota on every public route (src/core/auth/wall.h,
docs/auth.md, docs/policy.md, docs/oap.md), end to end on the real binary.

Every node here is started with wall=None and gets its own MAC key (k1) and
signed bundle at the default paths under its data dir (install_wall). Tests
that present tokens finish with assert_no_secrets: no token, MAC key or
bundle signature may reach the node's log.
"""
import base64
import copy
import http.client
import json
import os
import re
import shutil
import signal
import time

import pytest

from conftest import (DEFAULT_BUNDLE, assert_envelope, OAP_END, OAP_GET, OAP_PUT, OAP_REQ, OAP_RESP, OAP_START, OPENSSL, SLOW,
                      WALL_KID, OapConn, b3sum_cid, install_wall, mint_token, oap_frame,
                      oap_json, oap_node, oap_tls_context, obj_path, parse_responses,
                      raw_connect, recv_all, run_cli, upload_begun, wait_until, write_bundle)

CHALLENGE = 'Bearer realm="macronode"'
CHALLENGE_INVALID = 'Bearer realm="macronode", error="invalid_token"'
MISSING = "b3:" + "0" * 64
OCTETS = {"Content-Type": "application/octet-stream"}
WRITE = ("--prefix", "/o", "--method", "GET", "--method", "HEAD", "--method", "PUT",
         "--method", "POST")


# ---------------------------------------------------------------- helpers

def bundle_v(version, base=DEFAULT_BUNDLE, rules=None):
    b = copy.deepcopy(base)
    b["version"] = version
    if rules is not None:
        b["rules"] = rules
    return b


def paths(n):
    pdir = os.path.join(n.data_dir, "policy")
    return {"key": os.path.join(n.data_dir, "auth", "keys", WALL_KID + ".key"),
            "bundle": os.path.join(pdir, "policy.json"),
            "sig": os.path.join(pdir, "policy.json.sig")}


def read(path):
    with open(path) as f:
        return f.read().strip()


def remember_sig(n):
    """Every signature (and MAC key) a node has seen is a secret the log must
    not carry."""
    if os.path.exists(paths(n)["key"]):
        n.wall_keys.add(read(paths(n)["key"]))
    p = paths(n)["sig"]
    if os.path.exists(p):
        n.wall_sigs.add(read(p))


def arm(n, bundle, start):
    """Install key k1 + `bundle` (None: no policy) under the node's data dir."""
    install_wall(n.data_dir, bundle)
    n.minted, n.wall_sigs, n.wall_keys = [], set(), set()
    remember_sig(n)
    if start:
        n.start()
    return n


def wall_node(node_factory, bundle=DEFAULT_BUNDLE, config=None, start=True, **kw):
    """A node (one gateway worker) behind its own wall."""
    return arm(node_factory(config, start=False, wall=None, **kw), bundle, start)


def wall_oap_node(node_factory, pki, bundle=DEFAULT_BUNDLE, config=None, start=True):
    """gateway + storage + omnigate (TLS from the module PKI) behind its own wall."""
    if not OPENSSL:
        pytest.skip("openssl CLI not installed")
    return arm(oap_node(node_factory, pki, config, start=False, wall=None), bundle, start)


def mint(n, *args):
    tok = mint_token(n.data_dir, *args)
    n.minted.append(tok)
    return tok


def resign(n, bundle, raw=None):
    write_bundle(n.data_dir, bundle, raw=raw)
    remember_sig(n)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


def post(n, body, tok=None, headers=None):
    h = dict(OCTETS)
    if tok:
        h.update(bearer(tok))
    h.update(headers or {})
    return n.gw("POST", "/o", body=body, headers=h)


def chunked_post(n, body, tok=None, size=50):
    """POST /o with Transfer-Encoding: chunked (no Content-Length); returns the
    first response parsed from the wire."""
    s = raw_connect(n.gateway_port)
    try:
        h = b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
        if tok:
            h += b"Authorization: Bearer " + tok.encode() + b"\r\n"
        chunks = b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                          for i in range(0, len(body), size))
        s.sendall(h + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        data, _ = recv_all(s, timeout=5, until=lambda d: bool(parse_responses(d)[0]))
    finally:
        s.close()
    got, _ = parse_responses(data)
    assert got, "no response to a chunked POST: %r" % data[:300]
    return got[0]


def get(n, cid=MISSING, tok=None, method="GET", headers=None):
    h = bearer(tok) if tok else {}
    h.update(headers or {})
    return n.gw(method, obj_path(cid), headers=h)


def envelope(r, status, code, retryable=False):
    return assert_envelope(r, status, code, retryable)


def rejected(n, reason):
    return n.metrics().sum("rejected_total", reason=reason)


def reload(n):
    return n.post("/api/v1/reload")


def policy_audits(n, result=None):
    return [x for x in n.log_records()
            if x.get("msg") == "audit" and x.get("kind") == "policy_reload"
            and (result is None or x.get("result") == result)]


def supervisor_pid(n):
    return n.status()["pid"]


def tamper_b64(tok):
    """Flip one bit of the token's last byte (inside the MAC): still well formed."""
    raw = bytearray(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
    raw[-1] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")


def foreign_token(tmp, kid, *args):
    """A token MACed with a key the node does not hold."""
    k = os.path.join(tmp, "foreign-%s.key" % kid)
    if not os.path.exists(k):
        fd = os.open(k, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (os.urandom(32).hex() + "\n").encode())
        os.close(fd)
    p = run_cli(["token", "mint", "--key", k, "--kid", kid] + list(args))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def assert_no_secrets(n, extra=()):
    """No token, MAC key or policy signature in the node's log."""
    remember_sig(n)
    log = n.log()
    assert log, "empty node log"
    if os.path.exists(paths(n)["key"]):
        n.wall_keys.add(read(paths(n)["key"]))
    assert n.wall_keys, "no MAC key to look for"
    secrets = [("MAC key", k) for k in n.wall_keys]
    secrets += [("policy signature", s) for s in n.wall_sigs]
    secrets += [("token", t) for t in list(n.minted) + list(extra)]
    for what, s in secrets:
        assert s and s not in log, "%s found in the node log" % what
        # a token cut at a line end or quoted in part is still a leak
        if what == "token" and len(s) > 48:
            assert s[:48] not in log and s[-48:] not in log, "part of a token in the node log"


def not_ready_reason(n):
    r = n.get("/readyz")
    if r.status != 503:
        return None
    j = r.json()
    pol = [x for x in j["reasons"] if x.startswith("policy:")]
    return (j, pol) if j["ready"] is False and pol else None


# ---------------------------------------------------------------- auth

def test_default_policy_anonymous_reads_token_writes(node_factory):
    """init's bundle: anonymous GET/HEAD pass the wall, an anonymous write is
    401 with a plain Bearer challenge, the same write with a token is 201."""
    n = wall_node(node_factory)
    tok = mint(n, *WRITE)
    body = b"behind the wall\n"
    assert get(n).status == 404                        # passed the wall, no such object
    assert get(n, method="HEAD").status == 404
    before = rejected(n, "unauth")
    r = post(n, body)
    j = envelope(r, 401, "unauthenticated")
    assert r.header_all("WWW-Authenticate") == [CHALLENGE], r
    assert "anonymous" in j["message"], j
    r = n.gw("PUT", obj_path(b3sum_cid(body)), body=body, headers=OCTETS)
    envelope(r, 401, "unauthenticated")
    assert rejected(n, "unauth") == before + 2
    r = post(n, body, tok)
    assert r.status == 201, r
    cid = r.json()["cid"]
    assert cid == b3sum_cid(body)
    r = get(n, cid)                                    # anonymous read of what the token wrote
    assert (r.status, r.body) == (200, body), r
    r = get(n, cid, method="HEAD")
    assert r.status == 200 and r.header("Content-Length") == str(len(body)), r
    # PUT by id with the token
    body2 = b"second object"
    r = n.gw("PUT", obj_path(b3sum_cid(body2)), body=body2, headers=dict(OCTETS, **bearer(tok)))
    assert r.status in (200, 201), r
    assert get(n, b3sum_cid(body2)).body == body2
    assert_no_secrets(n)


def test_credentials_other_than_bearer_are_401(node_factory):
    """Authorization in a form the node does not take is refused even where an
    anonymous request would pass (GET): credentials are never ignored."""
    n = wall_node(node_factory)
    before = rejected(n, "unauth")
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Token abc", "bearerabc"):
        for r in (post(n, b"x", headers={"Authorization": value}),
                  get(n, headers={"Authorization": value})):
            j = envelope(r, 401, "unauthenticated")
            assert (r.header("WWW-Authenticate") or "").startswith("Bearer realm=\"macronode\""), r
            assert "Bearer" in j["message"], j
    assert rejected(n, "unauth") == before + 10
    # the scheme is case-insensitive: "bearer <token>" is a token
    tok = mint(n, *WRITE)
    r = post(n, b"lower-case scheme", headers={"Authorization": "bearer " + tok})
    assert r.status == 201, r
    # two Authorization fields are ambiguous: refused, whichever comes first
    for second in ("Basic x", "Bearer " + tok):
        s = raw_connect(n.gateway_port)
        try:
            s.sendall(("POST /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                       "Authorization: %s\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
                       % (tok, second)).encode())
            data, _ = recv_all(s)
        finally:
            s.close()
        resps, _ = parse_responses(data)
        assert resps and resps[0].status == 401, data
    assert_no_secrets(n)


def test_bad_tokens_are_401_invalid_token(node_factory, tmp_dir):
    """Garbage, a flipped MAC bit, a foreign key, an unknown kid, expired, not
    yet valid, another audience: 401 invalid_token naming the check, on a
    write and on an otherwise anonymous-allowed read; the token is never
    echoed."""
    n = wall_node(node_factory, config={"auth": {"audience": "node-a"}})
    now = int(time.time())
    good = mint(n, *WRITE, "--aud", "node-a", "--ttl", "1h")
    assert post(n, b"good token", good).status == 201
    bad = {
        "malformed": "not-a-token-at-all",
        "bad_mac": tamper_b64(good),
        "bad_mac ": foreign_token(tmp_dir, WALL_KID, *WRITE, "--aud", "node-a"),
        "unknown_kid": foreign_token(tmp_dir, "k9", *WRITE, "--aud", "node-a"),
        "expired": mint(n, *WRITE, "--aud", "node-a", "--exp", str(now - 3600)),
        "not_yet_valid": mint(n, *WRITE, "--aud", "node-a", "--nbf", str(now + 3600)),
        "audience": mint(n, *WRITE, "--aud", "node-b"),
    }
    assert len(set(bad.values())) == len(bad)
    before = rejected(n, "unauth")
    for check, tok in bad.items():
        for r in (post(n, b"bad token", tok), get(n, tok=tok)):
            j = envelope(r, 401, "unauthenticated")
            assert r.header_all("WWW-Authenticate") == [CHALLENGE_INVALID], (check, r)
            assert check.strip() in j["message"], (check, j)
            assert tok.encode() not in r.body, check
            assert tok not in json.dumps(r.headers), check
    assert rejected(n, "unauth") == before + 2 * len(bad)
    # Exp/Nbf within the 60 s skew still pass
    ok = [mint(n, *WRITE, "--aud", "node-a", "--exp", str(now - 20)),
          mint(n, *WRITE, "--aud", "node-a", "--nbf", str(now + 20))]
    for tok in ok:
        assert get(n, tok=tok).status == 404
    assert_no_secrets(n, extra=list(bad.values()))


def test_scope_and_caveats_that_exclude_the_request_are_403(node_factory):
    """Authentic tokens whose scope or caveats do not cover the request:
    method, prefix, PathPrefix, Method caveat, IpCidr, conflicting Tenant."""
    n = wall_node(node_factory)
    cases = [
        ("scope_method", mint(n, "--prefix", "/o", "--method", "GET"), "POST"),
        ("scope_path", mint(n, "--prefix", "/elsewhere", "--method", "POST"), "POST"),
        ("scope_path", mint(n, *WRITE, "--path-prefix", "/o/b3:ff"), "GET"),
        ("scope_method", mint(n, *WRITE, "--allow-method", "GET"), "POST"),
        ("ip", mint(n, *WRITE, "--ip", "10.0.0.0/8"), "GET"),
        ("ip", mint(n, *WRITE, "--ip", "2001:db8::/32"), "POST"),
        ("tenant", mint(n, *WRITE, "--tenant", "a", "--tenant", "b"), "GET"),
        ("amnesia", mint(n, *WRITE, "--amnesia", "true"), "POST"),
        ("gov_policy", mint(n, *WRITE, "--gov-digest", MISSING), "GET"),
    ]
    before_f, before_u = rejected(n, "forbidden"), rejected(n, "unauth")
    for check, tok, method in cases:
        r = post(n, b"x", tok) if method == "POST" else get(n, tok=tok)
        j = envelope(r, 403, "forbidden")
        assert r.header("WWW-Authenticate") is None, r
        assert check in j["message"], (check, j)
    assert rejected(n, "forbidden") == before_f + len(cases)
    assert rejected(n, "unauth") == before_u
    # the same kinds of caveat, satisfied, admit
    for tok in (mint(n, *WRITE, "--ip", "127.0.0.0/8"), mint(n, *WRITE, "--allow-method", "POST"),
                mint(n, *WRITE, "--path-prefix", "/o"), mint(n, *WRITE, "--tenant", "a"),
                mint(n, *WRITE, "--amnesia", "false")):
        assert post(n, b"caveat satisfied", tok).status in (200, 201)
    # a token for GET only can still read
    assert get(n, tok=cases[0][1]).status == 404
    assert_no_secrets(n)


def test_token_byte_limit_is_413(node_factory):
    """A body larger than the token's max_bytes / BytesLe, declared by
    Content-Length, is 413 before any byte is stored; up to the limit is fine."""
    n = wall_node(node_factory)
    for flag in ("--max-bytes", "--bytes-le"):
        tok = mint(n, *WRITE, flag, "100")
        ok = os.urandom(100)
        r = post(n, ok, tok)
        assert r.status == 201, (flag, r)
        before = rejected(n, "413")
        over = os.urandom(101)
        r = post(n, over, tok)
        j = envelope(r, 413, "payload_too_large")
        assert "100" in j["message"] or "byte limit" in j["message"], j
        assert rejected(n, "413") == before + 1, flag
        assert get(n, b3sum_cid(over)).status == 404, "a refused body was stored"
        r = n.gw("PUT", obj_path(b3sum_cid(over)), body=over, headers=dict(OCTETS, **bearer(tok)))
        envelope(r, 413, "payload_too_large")
        assert get(n, b3sum_cid(ok)).body == ok
    assert_no_secrets(n)


def test_token_byte_limit_applies_to_chunked_bodies(node_factory):
    """No Content-Length to judge by: the limit is counted as the chunks arrive."""
    n = wall_node(node_factory)
    tok = mint(n, *WRITE, "--max-bytes", "100")
    r = chunked_post(n, b"c" * 100, tok)
    assert r.status == 201, r
    r = chunked_post(n, b"d" * 200, tok)
    assert r.status == 413, r
    assert get(n, b3sum_cid(b"d" * 200)).status == 404, "a body over the limit was stored"
    assert_no_secrets(n)


# ---------------------------------------------------------------- policy

LEGAL_BUNDLE = {
    "version": 1, "defaults": {"default_action": "deny"},
    "rules": [
        {"id": "legal-hold", "when": {"method": "PUT"}, "action": "deny", "reason": "LEGAL"},
        {"id": "no-posts", "when": {"method": "POST", "require_tags_all": ["tenant:mallory"]},
         "action": "deny", "reason": "posts closed for this tenant"},
        {"id": "acme-writes",
         "when": {"method": "POST", "require_tags_all": ["core", "tenant:acme"]}, "action": "allow", "reason": "acme may write"},
        {"id": "token-reads", "when": {"method": "GET", "require_tags_all": ["core", "token"]},
         "action": "allow", "reason": "token holders read"},
    ],
}


def test_policy_deny_is_403_with_token_451_for_legal_401_anonymous(node_factory):
    n = wall_node(node_factory, LEGAL_BUNDLE)
    acme = mint(n, *WRITE, "--tenant", "acme")
    other = mint(n, *WRITE, "--tenant", "other")
    mallory = mint(n, *WRITE, "--tenant", "mallory")
    plain = mint(n, *WRITE)
    # the Tenant caveat becomes the tag tenant:<t> the policy matches on
    r = post(n, b"acme object", acme)
    assert r.status == 201, r
    cid = r.json()["cid"]
    before = rejected(n, "forbidden")
    for tok in (other, plain):
        j = envelope(post(n, b"not acme", tok), 403, "forbidden")
        assert "default" in j["message"], j
    j = envelope(post(n, b"mallory", mallory), 403, "forbidden")
    assert "no-posts" in j["message"], j
    # reason "LEGAL" → 451, with a token and without one
    for tok in (acme, None):
        h = dict(OCTETS, **bearer(tok)) if tok else dict(OCTETS)
        r = n.gw("PUT", obj_path(b3sum_cid(b"held")), body=b"held", headers=h)
        j = envelope(r, 451, "unavailable_for_legal_reasons")
        assert "legal-hold" in j["message"], j
        assert r.header("WWW-Authenticate") is None, r
    assert rejected(n, "forbidden") == before + 5
    # reads: a token passes, anonymous is denied → 401 (a token might be allowed)
    assert get(n, cid, tok=plain).body == b"acme object"
    r = get(n, cid)
    envelope(r, 401, "unauthenticated")
    assert r.header("WWW-Authenticate") == CHALLENGE
    assert_no_secrets(n)


def test_no_policy_denies_everything_and_is_not_ready(node_factory):
    """No bundle at start: fail secure. 403 policy_unavailable for anonymous
    and token requests alike, /readyz 503 naming the policy, probes answer."""
    n = wall_node(node_factory, bundle=None, start=False)
    assert not os.path.exists(paths(n)["bundle"])
    tok = mint(n, *WRITE)
    n.spawn()
    j, pol = wait_until(lambda: not_ready_reason(n), 10 * SLOW, what="/readyz 503 (policy)")
    assert j["status"] == "not_ready" and j["deps"]["policy"]["state"] == "none", j
    assert "policy.json" in pol[0], pol
    wait_until(lambda: n.gw("GET", "/healthz").status == 200, 10 * SLOW, what="gateway up")
    before = rejected(n, "forbidden")
    for r in (get(n), get(n, method="HEAD"), get(n, tok=tok), post(n, b"x"), post(n, b"x", tok)):
        assert r.status == 403, r
        if r.body:                                       # HEAD carries no body
            j = envelope(r, 403, "policy_unavailable")
            assert "policy" in j["message"], j
        assert r.header("WWW-Authenticate") is None, r
    assert rejected(n, "forbidden") == before + 5
    # Auth comes first: a bad token is 401 whatever the policy (or its absence)
    r = get(n, tok=tamper_b64(tok))
    envelope(r, 401, "unauthenticated")
    assert r.header("WWW-Authenticate") == CHALLENGE_INVALID, r
    # the admin plane is never gated
    assert n.get("/healthz").status == 200
    m = n.metrics()
    assert m.get("policy_version") == 0, m.series("policy_version")
    assert_no_secrets(n)


def test_bad_signature_at_start_fails_secure_until_fixed(node_factory):
    """A bundle signed and then edited is refused at start (deny all, not
    ready); a correctly signed bundle + reload brings the node up, same pid."""
    n = wall_node(node_factory, start=False)
    with open(paths(n)["bundle"], "a") as f:
        f.write("\n")                                    # one byte after signing
    n.spawn()
    j, pol = wait_until(lambda: not_ready_reason(n), 10 * SLOW, what="/readyz 503 (policy)")
    assert "signature" in pol[0], pol
    wait_until(lambda: n.gw("GET", "/healthz").status == 200, 10 * SLOW, what="gateway up")
    envelope(get(n), 403, "policy_unavailable")
    assert policy_audits(n, "refused"), n.log()[-2000:]
    pid = supervisor_pid(n)
    resign(n, DEFAULT_BUNDLE)
    r = reload(n)
    assert r.status == 202, r
    wait_until(lambda: n.get("/readyz").status == 200, 5 * SLOW, what="/readyz 200")
    wait_until(lambda: get(n).status == 404, 5 * SLOW, what="anonymous GET allowed")
    assert supervisor_pid(n) == pid
    assert n.metrics().get("policy_version") == 1
    assert_no_secrets(n)


# ---------------------------------------------------------------- reload

def reload_node(node_factory):
    """A node with bundle v2 (init's rules) in force."""
    n = wall_node(node_factory, bundle_v(2))
    m = n.metrics()
    assert m.get("policy_version") == 2, m.series("policy_version")
    return n


CLOSED_RULES = [r for r in DEFAULT_BUNDLE["rules"] if r["id"] == "token-holders"]


def assert_refused_reload(n, what, before_refused, version=2):
    r = reload(n)
    j = envelope(r, 422, r.json().get("code", "?"))
    assert what in j["message"], (what, j)
    # the old bundle (v2: anonymous reads allowed) is still in force
    assert get(n).status == 404
    envelope(post(n, b"x"), 401, "unauthenticated")
    m = n.metrics()
    assert m.get("policy_version") == version
    assert m.sum("policy_reloads_total", result="refused") == before_refused + 1
    assert n.get("/readyz").status == 200
    recs = policy_audits(n, "refused")
    assert recs and recs[-1].get("trigger") == "POST /api/v1/reload", recs
    assert what in recs[-1].get("error", ""), recs[-1]
    assert recs[-1].get("version") == str(version), recs[-1]
    return j


def test_reload_with_bad_signature_is_refused_old_bundle_stays(node_factory):
    n = reload_node(node_factory)
    before = n.metrics().sum("policy_reloads_total", result="refused")
    resign(n, bundle_v(3, rules=CLOSED_RULES))
    sig = paths(n)["sig"]
    s = read(sig)
    with open(sig, "w") as f:                            # flip one hex digit
        f.write(s[:10] + ("0" if s[10] != "0" else "1") + s[11:] + "\n")
    n.wall_sigs.add(read(sig))
    assert_refused_reload(n, "signature", before)
    # signed, then edited: refused too
    resign(n, bundle_v(3, rules=CLOSED_RULES))
    with open(paths(n)["bundle"], "a") as f:
        f.write(" ")
    assert_refused_reload(n, "signature", before + 1)
    assert_no_secrets(n)


def test_reload_with_parse_error_is_refused(node_factory):
    n = reload_node(node_factory)
    before = n.metrics().sum("policy_reloads_total", result="refused")
    resign(n, None, raw='{"version": 3, "rules": [')        # correctly signed, not JSON
    assert_refused_reload(n, "policy.json", before)
    bad = bundle_v(3)
    bad["rules"][0]["when"]["tenants"] = "acme"            # unknown field
    resign(n, bad)
    assert_refused_reload(n, "tenants", before + 1)
    assert_no_secrets(n)


def test_reload_rollback_is_refused(node_factory):
    n = reload_node(node_factory)
    before = n.metrics().sum("policy_reloads_total", result="refused")
    resign(n, bundle_v(1, rules=CLOSED_RULES))             # validly signed, older
    j = assert_refused_reload(n, "rollback", before)
    assert "version 1 is lower than 2" in j["message"], j
    assert_no_secrets(n)


def test_rollback_is_refused_across_a_restart(node_factory):
    """The version floor survives a restart (<data_dir>/policy-floor): an
    older signed bundle put in place while the node was down is refused at
    start (deny all, not ready); a garbage floor file refuses every bundle."""
    n = reload_node(node_factory)
    floor = os.path.join(n.data_dir, "policy-floor")
    assert open(floor).read() == "2\n"
    assert n.stop() == 0
    resign(n, bundle_v(1))                                  # validly signed, older
    n.spawn()
    wait_until(lambda: n.get("/readyz").status == 503, 10 * SLOW, what="not ready")
    j = n.get("/readyz").json()
    assert any(r.startswith("policy:") and "rollback" in r for r in j["reasons"]), j
    envelope(get(n), 403, "policy_unavailable")
    assert n.metrics().get("policy_version") == 0
    resign(n, bundle_v(3))
    assert reload(n).status == 202
    wait_until(lambda: n.get("/readyz").status == 200, 10 * SLOW, what="ready with v3")
    assert open(floor).read() == "3\n"
    assert n.stop() == 0
    with open(floor, "w") as f:
        f.write("three\n")
    n.spawn()
    wait_until(lambda: n.get("/readyz").status == 503, 10 * SLOW, what="not ready")
    j = n.get("/readyz").json()
    assert any("policy-floor" in r for r in j["reasons"]), j


def test_reload_applies_new_bundle_live_http_and_sighup(node_factory):
    n = reload_node(node_factory)
    tok = mint(n, *WRITE)
    pid = supervisor_pid(n)
    ok0 = n.metrics().sum("policy_reloads_total", result="ok")
    # v3 closes anonymous reads
    resign(n, bundle_v(3, rules=CLOSED_RULES))
    r = reload(n)
    assert r.status == 202, r
    wait_until(lambda: get(n).status == 401, 5 * SLOW, what="anonymous GET denied by v3")
    assert get(n, tok=tok).status == 404
    m = n.metrics()
    assert m.get("policy_version") == 3
    assert m.sum("policy_reloads_total", result="ok") == ok0 + 1
    recs = policy_audits(n, "ok")
    assert recs[-1].get("version") == "3" and recs[-1].get("digest", "").startswith("b3:"), recs
    # re-deploying the same version is accepted (equal versions are not a rollback)
    r = reload(n)
    assert r.status == 202, r
    assert n.metrics().get("policy_version") == 3
    # v4 by SIGHUP opens them again
    resign(n, bundle_v(4))
    n.send_signal(signal.SIGHUP)
    wait_until(lambda: get(n).status == 404, 5 * SLOW, what="anonymous GET allowed by v4")
    wait_until(lambda: n.metrics().get("policy_version") == 4, 5 * SLOW, what="policy_version 4")
    assert any(x.get("trigger") == "SIGHUP" for x in policy_audits(n, "ok"))
    assert supervisor_pid(n) == pid
    assert_no_secrets(n)


def test_withdrawn_policy_denies_all_until_restored(node_factory):
    n = reload_node(node_factory)
    tok = mint(n, *WRITE)
    pid = supervisor_pid(n)
    os.unlink(paths(n)["bundle"])
    r = reload(n)
    assert r.status == 202, r                          # withdrawal is not a refusal
    wait_until(lambda: not_ready_reason(n), 5 * SLOW, what="/readyz 503 after withdrawal")
    envelope(get(n), 403, "policy_unavailable")
    envelope(post(n, b"x", tok), 403, "policy_unavailable")
    m = n.metrics()
    assert m.get("policy_version") == 0
    assert m.sum("policy_reloads_total", result="withdrawn") == 1
    assert policy_audits(n, "withdrawn")
    assert n.get("/healthz").status == 200
    # an older bundle is still a rollback after a withdrawal
    resign(n, bundle_v(1))
    r = reload(n)
    assert r.status == 422 and "rollback" in r.json()["message"], r
    assert not_ready_reason(n)
    envelope(get(n), 403, "policy_unavailable")
    # a valid bundle at the floor version restores service, no restart
    resign(n, bundle_v(2))
    r = reload(n)
    assert r.status == 202, r
    wait_until(lambda: n.get("/readyz").status == 200, 5 * SLOW, what="/readyz 200 restored")
    assert get(n).status == 404
    assert post(n, b"after restore", tok).status == 201
    assert n.metrics().get("policy_version") == 2
    assert supervisor_pid(n) == pid
    assert_no_secrets(n)


def test_gov_policy_digest_caveat_follows_the_bundle_in_force(node_factory):
    """A GovPolicyDigest token is good only while that exact bundle is in
    force: the supervisor hands the workers the digest of the verified bytes."""
    n = reload_node(node_factory)
    with open(paths(n)["bundle"], "rb") as f:
        digest = b3sum_cid(f.read())
    tok = mint(n, *WRITE, "--gov-digest", digest)
    assert post(n, b"under v2", tok).status == 201
    assert policy_audits(n, "ok")[-1].get("digest") == digest
    resign(n, bundle_v(3))
    assert reload(n).status == 202
    j = envelope(post(n, b"under v3", tok), 403, "forbidden")
    assert "gov_policy" in j["message"], j
    with open(paths(n)["bundle"], "rb") as f:
        tok3 = mint(n, *WRITE, "--gov-digest", b3sum_cid(f.read()))
    assert post(n, b"under v3", tok3).status == 201
    assert_no_secrets(n)


def test_capability_keys_rotate_on_reload(node_factory, tmp_dir):
    """auth.keys_dir is reloaded live: a new kid is accepted after reload, a
    removed one refused; a key file that cannot be loaded keeps the ring."""
    n = wall_node(node_factory)
    t1 = mint(n, *WRITE)
    t2 = foreign_token(tmp_dir, "k2", *WRITE)
    n.minted.append(t2)
    kdir = os.path.join(n.data_dir, "auth", "keys")
    j = envelope(post(n, b"k2", t2), 401, "unauthenticated")
    assert "unknown_kid" in j["message"], j
    shutil.copy2(os.path.join(tmp_dir, "foreign-k2.key"), os.path.join(kdir, "k2.key"))
    assert reload(n).status == 202
    wait_until(lambda: post(n, b"k2", t2).status == 201, 3 * SLOW, what="k2 accepted")
    assert post(n, b"k1", t1).status == 201          # both kids valid during rotation
    remember_sig(n)
    os.unlink(os.path.join(kdir, "k1.key"))
    assert reload(n).status == 202
    r = wait_until(lambda: (lambda r: r if r.status == 401 else None)(post(n, b"k1 gone", t1)),
                   3 * SLOW, what="k1 refused")
    assert "unknown_kid" in r.json()["message"], r
    # a key file the node must refuse (mode 0644): the ring in force stays
    n.wall_keys.add(read(os.path.join(kdir, "k2.key")))  # the k2 key is a secret too
    os.chmod(os.path.join(kdir, "k2.key"), 0o644)
    assert reload(n).status == 202
    wait_until(lambda: any("k2.key" in x.get("error", "") for x in n.log_records()),
               3 * SLOW, what="the refused key file logged by name")
    assert post(n, b"k2 still", t2).status == 201
    assert_no_secrets(n)


# ---------------------------------------------------------------- body sizes
# The policy and the byte quota judge a request's body size. A chunked body
# (HTTP) or an OAP PUT declares none up front; an unknown size must not be
# judged as 0 bytes.

SIZE_BUNDLE = {
    "version": 1, "defaults": {"default_action": "deny", "max_body_bytes": 100},
    "rules": [
        {"id": "small-anonymous-posts", "when": {"method": "POST", "max_body_bytes": 10},
         "action": "allow", "reason": "tiny anonymous notes"},
        {"id": "token-holders", "when": {"method": "*", "require_tags_all": ["core", "token"]},
         "action": "allow", "reason": "capability token presented"},
    ],
}


def test_policy_body_limits_hold_for_chunked_bodies(node_factory):
    n = wall_node(node_factory, SIZE_BUNDLE)
    tok = mint(n, *WRITE)
    # with Content-Length the limits hold
    assert post(n, b"0123456789", None).status == 201          # rule: anonymous <= 10
    envelope(post(n, b"x" * 50), 401, "unauthenticated")        # anonymous, 11..100: default
    assert post(n, b"y" * 100, tok).status == 201
    envelope(post(n, b"z" * 1000, tok), 403, "forbidden")     # defaults.max_body_bytes
    # the same bodies chunked
    big_tok, big_anon = os.urandom(1000), os.urandom(1000)
    got = {"token, 1000 B chunked": chunked_post(n, big_tok, tok).status,
           "anonymous, 1000 B chunked": chunked_post(n, big_anon).status}
    stored = {k: get(n, b3sum_cid(b), tok=tok).status == 200
              for k, b in (("token, 1000 B chunked", big_tok),
                           ("anonymous, 1000 B chunked", big_anon))}
    assert all(s in (401, 403, 413) for s in got.values()) and not any(stored.values()), (
        "policy body limits (defaults.max_body_bytes 100, rule max_body_bytes 10) bypassed "
        "by Transfer-Encoding: chunked: statuses %r, stored %r" % (got, stored))
    assert_no_secrets(n)


def test_byte_quota_counts_chunked_bodies(node_factory):
    n = wall_node(node_factory, config={"quota": {"requests_per_second": 0,
                                                  "bytes_per_second": 100, "bytes_burst": 100}})
    a, b = mint(n, *WRITE), mint(n, *WRITE)
    # Content-Length: the first 1000 B upload is admitted into debt, the next waits
    assert post(n, os.urandom(1000), a).status == 201
    r = post(n, os.urandom(1000), a)
    j = envelope(r, 429, "quota_exceeded", retryable=True)
    assert "bytes" in j["message"], j
    assert int(r.header("Retry-After")) >= 1
    # chunked, another tenant (token b): the same two uploads
    got = [chunked_post(n, os.urandom(1000), b).status for _ in range(2)]
    assert got == [201, 429], (
        "quota.bytes_per_second not charged for chunked bodies: statuses %r" % got)
    # in byte debt, requests without a body still pass (a GET is not a body)
    assert get(n, tok=b).status == 404
    assert get(n, tok=a).status == 404
    assert_no_secrets(n)


def test_byte_quota_reserves_for_concurrent_chunked_bodies(node_factory):
    """A body of unknown size reserves what it may carry (here the object
    cap, 4 KiB) at admission: concurrent chunked uploads cannot outrun the
    bucket; the unused part is refunded when each ends."""
    n = wall_node(node_factory, config={"storage": {"max_object": "4KiB"},
                                        "quota": {"requests_per_second": 0,
                                                  "bytes_per_second": 100, "bytes_burst": 100}})
    tok = mint(n, *WRITE)
    s = raw_connect(n.gateway_port)
    try:
        s.sendall(("POST /o HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/octet-stream\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" % tok).encode())
        wait_until(lambda: upload_begun(n), 10 * SLOW,   # admitted, body still open
                   what="the first upload admitted and begun")
        r = chunked_post(n, b"second", tok)          # concurrent: the reservation holds
        envelope(r, 429, "quota_exceeded", retryable=True)
    finally:
        s.close()
    assert_no_secrets(n)


# ---------------------------------------------------------------- quota

def test_tenant_quota_429_per_tenant_key(node_factory):
    """Buckets per tenant key: Tenant caveat (t:<t>, shared by its tokens),
    else the token id, else the client address."""
    burst = 3
    n = wall_node(node_factory, config={"quota": {"requests_per_second": 1, "burst": burst}})
    a1 = mint(n, *WRITE, "--tenant", "a")
    a2 = mint(n, *WRITE, "--tenant", "a")
    b = mint(n, *WRITE, "--tenant", "b")
    t1 = mint(n, *WRITE)
    t2 = mint(n, *WRITE)
    before = rejected(n, "quota")
    refused = 0

    def drain(tokens):
        """burst requests admitted (404), the next one 429."""
        nonlocal refused
        t0 = time.monotonic()
        got = [get(n, tok=tokens[i % len(tokens)]).status for i in range(burst)]
        r = get(n, tok=tokens[-1])
        if time.monotonic() - t0 >= 0.9:
            pytest.skip("too slow to exhaust a 1 rps bucket")
        assert got == [404] * burst, got
        j = envelope(r, 429, "quota_exceeded", retryable=True)
        assert re.fullmatch(r"[1-9][0-9]*", r.header("Retry-After") or ""), r
        assert "quota" in j["message"], j
        refused += 1

    drain([None])          # anonymous: ip:127.0.0.1
    drain([a1, a2])        # two tokens, one tenant: one bucket
    drain([b])             # another tenant: its own bucket
    drain([t1])            # no tenant: keyed by token id ...
    drain([t2])            # ... so another token has its own
    # a token's Rate caveat lowers its bucket below the node's
    rated = mint(n, *WRITE, "--rate", "1:1")
    assert get(n, tok=rated).status == 404
    envelope(get(n, tok=rated), 429, "quota_exceeded", retryable=True)
    refused += 1
    assert rejected(n, "quota") == before + refused
    # writes are charged to the same bucket
    envelope(post(n, b"x", a1), 429, "quota_exceeded", retryable=True)
    # the bucket refills at 1 request per second
    wait_until(lambda: get(n, tok=a2).status == 404, 3 * SLOW, interval=0.2, what="refill")
    assert_no_secrets(n)


# ---------------------------------------------------------------- overload

def slow_upload(n, tok, total=400000, sent=10):
    s = raw_connect(n.gateway_port)
    s.sendall(b"POST /o HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\n"
              b"Authorization: Bearer " + tok.encode() + b"\r\n"
              b"Content-Length: %d\r\n\r\n" % total + b"s" * sent)
    return s


def test_overload_sheds_object_routes_admin_still_answers(node_factory):
    cap = 4
    n = wall_node(node_factory, config={"limits": {"max_inflight": cap},
                                        "timeouts": {"read": "60s"},
                                        "storage": {"max_object": "1MiB"}})
    tok = mint(n, *WRITE)
    socks = []
    try:
        for _ in range(cap):
            socks.append(slow_upload(n, tok))

        def shed():
            r = get(n)
            return r if r.status == 503 else None
        r = wait_until(shed, 5 * SLOW, what="503 once %d uploads are in flight" % cap)
        envelope(r, 503, "overloaded", retryable=True)
        envelope(post(n, b"x", tok), 503, "overloaded", retryable=True)
        # the admin plane (and the gateway's own probe) still answer
        assert n.get("/healthz").status == 200
        assert n.get("/metrics").status == 200
        assert n.gw("GET", "/healthz").status == 200

        def degraded():
            get(n)                                   # keep the worker shedding
            r = n.get("/readyz")
            j = r.json()
            if r.status == 200 and j["ready"] is True and j["status"] == "degraded":
                return j
            return None
        j = wait_until(degraded, 1.5 * SLOW, interval=0.05, what="/readyz degraded")
        assert any("shedding" in x for x in j["reasons"]), j
        # the slow uploads are still alive (not cut by the read timeout)
        for s in socks:
            s.sendall(b"s" * 10)
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: get(n).status == 404, 5 * SLOW, what="requests admitted again")
    wait_until(lambda: n.get("/readyz").json()["status"] == "ready", 5 * SLOW,
               what="/readyz ready again")
    assert_no_secrets(n)


# ---------------------------------------------------------------- OAP/1

def oap_start(c, verb, corr, cap=b"", payload=b"{}", body=None):
    flags = OAP_REQ | OAP_START
    if body is None:
        c.send(oap_frame(flags | OAP_END, code=verb, corr=corr, cap=cap, payload=payload))
    else:
        c.send(oap_frame(flags, code=verb, corr=corr, cap=cap, payload=payload) +
               oap_frame(OAP_REQ | OAP_END, corr=corr, payload=body))
    f = c.recv_frame()
    assert f is not None and f.corr == corr and (f.flags & OAP_RESP), f
    return f


def oap_read_rest(c, first):
    data = b""
    f = first
    while not (f.flags & OAP_END):
        f = c.recv_frame()
        assert f is not None and f.corr == first.corr, f
        data += f.payload
    return data


def test_oap_start_frames_carry_the_token(node_factory, pki):
    n = wall_oap_node(node_factory, pki)
    writer = mint(n, *WRITE)
    reader = mint(n, "--prefix", "/o", "--method", "GET")
    small = mint(n, *WRITE, "--bytes-le", "8")
    body = b"oap behind the wall"
    cid = b3sum_cid(body)
    c = OapConn(n.oap_port)
    try:
        c.hello()
        # PUT without a token: the policy denies it anonymously → 401
        f = oap_start(c, OAP_PUT, 1, body=body)
        assert f.code == 401 and f.json()["code"] == "unauthenticated", f
        # a bad token in the cap field → 401 naming the check, not echoing it
        bad = tamper_b64(writer)
        f = oap_start(c, OAP_PUT, 2, cap=bad.encode(), body=body)
        assert f.code == 401 and "bad_mac" in f.json()["message"], f
        assert bad.encode() not in f.payload
        # a GET-only token doing PUT → 403
        f = oap_start(c, OAP_PUT, 3, cap=reader.encode(), body=body)
        assert f.code == 403 and f.json()["code"] == "forbidden", f
        # the body over the token's byte limit → 413
        f = oap_start(c, OAP_PUT, 4, cap=small.encode(), body=body)
        assert f.code == 413, f
        # with the write token in the cap field → stored
        f = oap_start(c, OAP_PUT, 5, cap=writer.encode(), body=body)
        assert f.code == 201 and f.json()["cid"] == cid, f
        # GET: anonymous (allowed by the policy) and with the reader token
        for corr, cap in ((6, b""), (7, reader.encode())):
            f = oap_start(c, OAP_GET, corr, cap=cap, payload=oap_json({"cid": cid}))
            assert f.code == 200, f
            assert oap_read_rest(c, f) == body
    finally:
        c.close()
    # the HTTPS gateway serves what OAP stored; the refusals were counted
    hc = http.client.HTTPSConnection("127.0.0.1", n.gateway_port, timeout=5 * SLOW,
                                     context=oap_tls_context())
    try:
        hc.request("GET", obj_path(cid))
        r = hc.getresponse()
        assert (r.status, r.read()) == (200, body)
    finally:
        hc.close()
    m = n.metrics()
    assert m.sum("rejected_total", reason="unauth") >= 2
    assert m.sum("rejected_total", reason="forbidden") >= 1
    assert_no_secrets(n, extra=[bad])


def test_oap_without_policy_denies(node_factory, pki):
    n = wall_oap_node(node_factory, pki, None, start=False)
    tok = mint(n, *WRITE)
    n.spawn()
    wait_until(lambda: not_ready_reason(n), 10 * SLOW, what="/readyz 503 (policy)")

    def hello():
        c = OapConn(n.oap_port)
        c.hello()
        return c
    c = wait_until(hello, 10 * SLOW, what="omnigate up")
    try:
        f = oap_start(c, OAP_PUT, 1, cap=tok.encode(), body=b"no policy")
        assert f.code == 403 and f.json()["code"] == "policy_unavailable", f
        f = oap_start(c, OAP_GET, 2, payload=oap_json({"cid": MISSING}))
        assert f.code == 403 and f.json()["code"] == "policy_unavailable", f
    finally:
        c.close()
    assert_no_secrets(n)


def test_oap_quota_429(node_factory, pki):
    n = wall_oap_node(node_factory, pki, config={"quota": {"requests_per_second": 1, "burst": 2}})
    c = OapConn(n.oap_port)
    try:
        c.hello()
        t0 = time.monotonic()
        got = [oap_start(c, OAP_GET, 10 + i, payload=oap_json({"cid": MISSING})) for i in range(3)]
        if time.monotonic() - t0 >= 0.9:
            pytest.skip("too slow to exhaust a 1 rps bucket")
        assert [f.code for f in got] == [404, 404, 429], got
        j = got[2].json()
        assert j["code"] == "quota_exceeded" and j["retryable"] is True, j
        assert "retry after" in j["message"], j
    finally:
        c.close()
    assert n.metrics().sum("rejected_total", reason="quota") >= 1


def test_oap_policy_body_limit_holds_for_put(node_factory, pki):
    """An OAP PUT declares no size at START: the policy's max_body_bytes must
    still hold for the body that follows."""
    n = wall_oap_node(node_factory, pki, SIZE_BUNDLE)
    tok = mint(n, *WRITE)
    c = OapConn(n.oap_port)
    try:
        c.hello()
        f = oap_start(c, OAP_PUT, 1, cap=tok.encode(), body=b"s" * 100)
        assert f.code == 201, f
        f = oap_start(c, OAP_PUT, 2, cap=tok.encode(), body=os.urandom(1000))
        assert f.code in (403, 413), (
            "defaults.max_body_bytes 100 bypassed by an OAP PUT of 1000 B: %r" % f)
    finally:
        c.close()
    assert_no_secrets(n)


def test_oap_byte_quota_counts_put_bodies(node_factory, pki):
    """quota.bytes_per_second must charge OAP PUT bodies as it charges HTTP
    bodies with a Content-Length (first upload into debt, the next waits)."""
    n = wall_oap_node(node_factory, pki, config={"quota": {
        "requests_per_second": 0, "bytes_per_second": 100, "bytes_burst": 100}})
    tok = mint(n, *WRITE)
    c = OapConn(n.oap_port)
    try:
        c.hello()
        got = [oap_start(c, OAP_PUT, i, cap=tok.encode(), body=os.urandom(1000)).code
               for i in (1, 2)]
    finally:
        c.close()
    assert got == [201, 429], "quota.bytes_per_second not charged for OAP PUT bodies: %r" % got
    assert_no_secrets(n)


# ---------------------------------------------------------------- secrets

def test_no_secret_in_debug_log(node_factory, tmp_dir):
    """At log level debug, after good, bad, refused and attenuated tokens on
    every path and a policy reload: no token, key or signature is logged."""
    n = wall_node(node_factory, bundle_v(2), config={"log": {"level": "debug"}})
    tok = mint(n, *WRITE, "--tenant", "owner")
    p = run_cli(["token", "attenuate", tok, "--key", paths(n)["key"], "--allow-method", "GET"])
    assert p.returncode == 0, p.stderr
    att = p.stdout.strip()
    n.minted.append(att)
    extra = [tamper_b64(tok), foreign_token(tmp_dir, "k7")]
    cid = post(n, b"secret-free", tok).json()["cid"]
    assert get(n, cid, tok=att).status == 200
    envelope(post(n, b"x", att), 403, "forbidden")
    for t in extra:
        envelope(get(n, tok=t), 401, "unauthenticated")
    resign(n, bundle_v(3))
    assert reload(n).status == 202
    sig = paths(n)["sig"]
    s = read(sig)
    with open(sig, "w") as f:
        f.write(s[::-1] + "\n")
    n.wall_sigs.add(read(sig))
    assert reload(n).status == 422
    assert len(n.log()) > 1000, "debug log unexpectedly short"
    assert_no_secrets(n, extra=extra)


# ----------------------------------------------- byte limits on decoded bytes
# An encoded body (Content-Encoding) is judged by what it decodes to: the
# token's byte limit, the policy's max_body_bytes and the tenant's byte
# bucket all count decoded bytes, decoding stops as soon as a limit is
# passed, and the 413 names the limit.

def gz(data):
    import gzip
    return gzip.compress(data, 9)


def two_symbols(n):
    """n bytes of one bit of entropy each: gzip gets ~7x, under the 10x
    decompression ratio cap, so only the byte limits under test can refuse."""
    import random
    rnd = random.Random(n)                      # fixed per size: fixed wire sizes
    return bytes(rnd.choice(b"ab") for _ in range(n))


def test_token_byte_limit_counts_decoded_bytes(node_factory):
    n = wall_node(node_factory)
    tok = mint(n, *WRITE, "--max-bytes", "1000")
    small = gz(two_symbols(1000))               # decodes to exactly the limit
    assert post(n, small, tok, {"Content-Encoding": "gzip"}).status == 201
    plain = two_symbols(5000)
    bomb = gz(plain)                            # under 1000 wire bytes, 5000 decoded
    assert len(bomb) < 1000, len(bomb)
    before = rejected(n, "413")
    r = post(n, bomb, tok, {"Content-Encoding": "gzip"})
    j = envelope(r, 413, "payload_too_large")
    assert "1000" in j["message"] and "capability or policy" in j["message"], j
    assert rejected(n, "413") == before + 1
    assert get(n, b3sum_cid(plain), tok=tok).status == 404, "an over-limit body was stored"
    assert_no_secrets(n)


def test_policy_body_limit_counts_decoded_bytes(node_factory):
    n = wall_node(node_factory, SIZE_BUNDLE)
    tok = mint(n, *WRITE)
    assert post(n, gz(two_symbols(100)), tok, {"Content-Encoding": "gzip"}).status == 201
    plain = two_symbols(300)
    wire = gz(plain)
    assert len(wire) <= 100, len(wire)          # within defaults.max_body_bytes on the wire
    r = post(n, wire, tok, {"Content-Encoding": "gzip"})
    assert r.status in (403, 413), r
    assert get(n, b3sum_cid(plain), tok=tok).status == 404
    assert_no_secrets(n)


def test_byte_quota_charges_decoded_bytes(node_factory):
    n = wall_node(node_factory, config={"quota": {"requests_per_second": 0,
                                                  "bytes_per_second": 100, "bytes_burst": 1000}})
    tok = mint(n, *WRITE)
    # ~700 wire bytes (within the 1000 burst) that decode to 5000: the bucket
    # is charged 5000, so the tenant's next upload waits.
    wire = gz(two_symbols(5000))
    assert len(wire) < 1000, len(wire)
    assert post(n, wire, tok, {"Content-Encoding": "gzip"}).status == 201
    r = post(n, b"tiny", tok)
    j = envelope(r, 429, "quota_exceeded", retryable=True)
    assert "bytes" in j["message"], j
    assert_no_secrets(n)
