"""Mutual TLS as an identity for the wall: auth.mtls_tenants_file maps the
BLAKE3 of a verified client certificate's DER to a tenant, which the policy
sees as the tag "tenant:<t>" and the quota step as the tenant key."""
import json
import os
import subprocess

import http.client

from conftest import (B3SUM, OPENSSL, SLOW, install_wall, mint_token, run_tool)
from test_tls import ctx_for

import pytest

pytestmark = pytest.mark.skipif(not (OPENSSL and B3SUM), reason="needs openssl and b3sum")

# Tenant alice may write without a token; anyone may read.
BUNDLE = {"version": 1, "defaults": {"default_action": "deny"},
          "rules": [{"id": "read", "when": {"method": "GET"}, "action": "allow"},
                    {"id": "alice-writes", "when": {"method": "POST",
                                                    "require_tags_all": ["core", "tenant:alice"]},
                     "action": "allow"}]}


def https(node, pki, method, path, body=None, headers=None, client=None):
    """One request over TLS: (status, headers, body, connection kept open)."""
    c = http.client.HTTPSConnection("127.0.0.1", node.gateway_port, timeout=5 * SLOW,
                                    context=ctx_for(pki, client))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, dict(r.getheaders()), data, c.sock is not None
    finally:
        c.close()


def cert_id(pki, name):
    der = subprocess.run([OPENSSL, "x509", "-in", pki.path(name + ".pem"), "-outform", "DER"],
                         capture_output=True, check=True).stdout
    out = run_tool([B3SUM, "--no-names"], input=der).stdout.decode().strip()
    return "b3:" + out


def write_map(path, mapping):
    with open(path + ".tmp", "w") as f:
        json.dump(mapping, f)
    os.replace(path + ".tmp", path)


def mtls_node(node_factory, pki, tmp_dir):
    """A TLS node requiring client certificates; pki's client.pem is alice."""
    tenants = os.path.join(tmp_dir, "tenants.json")
    write_map(tenants, {cert_id(pki, "client"): "alice"})
    cfg = pki.tls_config(client_ca=True)
    cfg["auth"] = {"mtls_tenants_file": tenants}
    n = node_factory(cfg, wall=None, start=False)
    install_wall(n.data_dir, BUNDLE)
    return n.start(), tenants


def test_client_certificate_names_the_tenant(node_factory, pki, tmp_dir):
    n, tenants = mtls_node(node_factory, pki, tmp_dir)

    st, hdrs, body, _ = https(n, pki, "POST", "/o", body=b"from alice", client="client")
    assert st == 201, body
    cid = json.loads(body)["cid"]
    st, _, body, _ = https(n, pki, "GET", "/o/" + cid, client="client")
    assert st == 200 and body == b"from alice"

    # The same certificate mapped to another tenant: no longer allowed to write.
    write_map(tenants, {cert_id(pki, "client"): "bob"})
    assert n.post("/api/v1/reload").status in (200, 202)
    st, hdrs, body, _ = https(n, pki, "POST", "/o", body=b"x", client="client")
    assert st == 401, body
    assert hdrs.get("WWW-Authenticate", "").startswith("Bearer")
    # A token still works for bob's connection (Auth: token, tenant from mTLS).
    tok = mint_token(n.data_dir, "--prefix", "/o", "--method", "POST")
    bundle = dict(BUNDLE, version=2, rules=BUNDLE["rules"] + [
        {"id": "tokens", "when": {"method": "*", "require_tags_all": ["token"]}, "action": "allow"}])
    install_wall(n.data_dir, bundle, keys=False)
    assert n.post("/api/v1/reload").status in (200, 202)
    st, _, body, _ = https(n, pki, "POST", "/o", body=b"y", client="client",
                              headers={"Authorization": "Bearer " + tok})
    assert st == 201, body
    # A token whose Tenant caveat disagrees with the certificate's tenant: 403.
    tok = mint_token(n.data_dir, "--prefix", "/o", "--method", "POST", "--tenant", "carol")
    st, _, body, _ = https(n, pki, "POST", "/o", body=b"z", client="client",
                              headers={"Authorization": "Bearer " + tok})
    assert st == 403, body


def test_bad_tenant_map_keeps_the_old_one(node_factory, pki, tmp_dir):
    n, tenants = mtls_node(node_factory, pki, tmp_dir)
    with open(tenants, "w") as f:
        f.write('{"not-an-id": "x"}')
    assert n.post("/api/v1/reload").status in (200, 202)
    st, _, body, _ = https(n, pki, "POST", "/o", body=b"still alice", client="client")
    assert st == 201, body
    assert "tenants.json" in n.log()
