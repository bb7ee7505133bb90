"""`macronode put|get` behind the wall: the token rides in the START frame's
cap field (--token-file or RON_TOKEN, never argv); anonymous requests get
what the node's policy allows."""
import os

from conftest import (DEFAULT_BUNDLE, gateway_pids, install_wall, mint_token, mn_client,
                      oap_node, storage_pid)


def test_put_needs_a_token_get_does_not(node_factory, pki, tmp_dir):
    n = oap_node(node_factory, pki, wall=None, start=False)
    install_wall(n.data_dir, DEFAULT_BUNDLE)
    n.start()
    src = os.path.join(tmp_dir, "obj")
    with open(src, "wb") as f:
        f.write(os.urandom(200000))
    peer = ["--peer", n.oap_peer, "--ca", pki.path("ca.pem")]

    p = mn_client(["put", src] + peer)
    assert p.returncode != 0
    assert b"401" in p.stderr, p.stderr

    tok = mint_token(n.data_dir, "--prefix", "/o", "--method", "PUT", "--method", "GET")
    p = mn_client(["put", src] + peer, env={"RON_TOKEN": tok})
    assert p.returncode == 0, p.stderr
    cid = p.stdout.decode().strip()
    assert tok.encode() not in p.stdout + p.stderr

    tf = os.path.join(tmp_dir, "token")
    with open(tf, "w") as f:
        f.write(tok + "\n")
    p = mn_client(["put", src, "--token-file", tf] + peer)
    assert p.returncode == 0 and p.stdout.decode().strip() == cid, p.stderr

    out = os.path.join(tmp_dir, "back")
    p = mn_client(["get", cid, "-o", out] + peer)      # anonymous read
    assert p.returncode == 0, p.stderr
    assert open(out, "rb").read() == open(src, "rb").read()

    # A read-only token cannot write: 403 from the scope, not 401.
    ro = mint_token(n.data_dir, "--prefix", "/o", "--method", "GET")
    p = mn_client(["put", src] + peer, env={"RON_TOKEN": ro})
    assert p.returncode != 0 and b"403" in p.stderr, p.stderr
    assert tok not in n.log() and ro not in n.log()


def test_services_write_no_core_files(node):
    """Service processes hold bearer tokens in request buffers: their core
    file limit is 0 (soft and hard), so a crash leaves no dump of them."""
    for pid in gateway_pids(node) + [storage_pid(node)]:
        with open("/proc/%d/limits" % pid) as f:
            line = next(l for l in f if l.startswith("Max core file size"))
        assert line.split()[4:6] == ["0", "0"], line
