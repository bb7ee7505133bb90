"""`macronode config validate` and `config print`: strictness and precedence."""
import json
import os
import re

import pytest

from conftest import free_ports, run_cli

FULL = {
    "admin": {"addr": "127.0.0.1:9600", "token_file": ""},
    "gateway": {"addr": "127.0.0.1:9080", "workers": 0, "allow_plaintext": False},
    "storage": {"max_object": "1MiB", "max_uploads": 64, "max_uploads_per_tenant": 16,
                "max_uploads_per_peer": 16},
    "paths": {"data_dir": "./var", "runtime_dir": ""},
    "log": {"level": "info", "format": "json"},
    "timeouts": {"read": "5s", "write": "5s", "idle": "60s", "header": "5s"},
    "limits": {"max_body": "1MiB", "max_header_bytes": "16KiB", "max_inflight": 512,
               "requests_per_second": 500, "max_connections": 1024},
    "drain": {"deadline": "3s"},
    "services": ["gateway", "storage"],
    "amnesia": False,
    "tls": {"cert_file": "", "key_file": "", "client_ca_file": "", "cert_pin": "",
            "handshake_timeout": "5s"},
    "policy": {"bundle_file": "", "pubkey_file": ""},
}


def write(tmp_dir, text, name="c.json"):
    p = os.path.join(tmp_dir, name)
    with open(p, "w") as f:
        f.write(text if isinstance(text, str) else json.dumps(text))
    return p


def test_validate_full_file_ok(tmp_dir):
    p = write(tmp_dir, FULL)
    r = run_cli(["config", "validate", p])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%s: ok\n" % p
    assert r.stderr == ""


def test_validate_empty_object_ok(tmp_dir):
    p = write(tmp_dir, "{}")
    r = run_cli(["config", "validate", p])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("doc,key", [
    ({"bogus": 1}, "bogus"),
    ({"limits": {"max_bodyy": "1MiB"}}, "limits.max_bodyy"),
    ({"timeouts": {"read": "5s", "connect": "1s"}}, "timeouts.connect"),
    ({"log": {"level": "info", "colour": True}}, "log.colour"),
    ({"limits.max_body": "1MiB"}, "limits.max_body"),       # dotted name is not a path
])
def test_validate_unknown_key_named(tmp_dir, doc, key):
    p = write(tmp_dir, doc)
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2, r.stdout
    assert r.stdout == ""
    assert "%s: %s: unknown key" % (p, key) in r.stderr, r.stderr


@pytest.mark.parametrize("doc,key", [
    ({"limits": {"max_inflight": "lots"}}, "limits.max_inflight"),
    ({"gateway": {"workers": "two"}}, "gateway.workers"),
    ({"amnesia": "yes"}, "amnesia"),
    ({"timeouts": {"read": 5}}, "timeouts.read"),               # bare number: no unit
    ({"limits": {"max_body": "1 parsec"}}, "limits.max_body"),
    ({"log": {"level": "loud"}}, "log.level"),
    ({"services": ["gateway", "teapot"]}, "services"),
    ({"admin": {"addr": "localhost:9600"}}, "admin.addr"),      # numeric only
    ({"limits": 5}, "limits"),                                  # section must be an object
])
def test_validate_bad_type_named(tmp_dir, doc, key):
    p = write(tmp_dir, doc)
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2, r.stdout
    assert "%s: %s:" % (p, key) in r.stderr, r.stderr


@pytest.mark.parametrize("doc,key", [
    ({"limits": {"max_inflight": 0}}, "limits.max_inflight"),
    ({"limits": {"max_inflight": 65537}}, "limits.max_inflight"),
    ({"drain": {"deadline": "10s"}}, "drain.deadline"),
    ({"timeouts": {"idle": "5ms"}}, "timeouts.idle"),
    ({"limits": {"max_header_bytes": "512"}}, "limits.max_header_bytes"),
    ({"gateway": {"workers": 257}}, "gateway.workers"),
    ({"admin": {"addr": "127.0.0.1:70000"}}, "admin.addr"),
])
def test_validate_out_of_range_named(tmp_dir, doc, key):
    p = write(tmp_dir, doc)
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2, r.stdout
    assert key in r.stderr, r.stderr
    assert p in r.stderr, r.stderr


def test_validate_cross_field_same_addr(tmp_dir):
    p = write(tmp_dir, {"admin": {"addr": "127.0.0.1:9700"}, "gateway": {"addr": "127.0.0.1:9700"}})
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "gateway.addr: must differ from admin.addr" in r.stderr, r.stderr


def test_validate_syntax_error_line_col(tmp_dir):
    p = write(tmp_dir, '{\n  "log": {"level": "info",}\n}\n')
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert re.search(re.escape(p) + r":2:\d+: parse error", r.stderr), r.stderr


def test_validate_top_level_not_object(tmp_dir):
    p = write(tmp_dir, '["gateway"]')
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "%s: the top level must be a JSON object" % p in r.stderr, r.stderr


def test_validate_missing_file(tmp_dir):
    p = os.path.join(tmp_dir, "nope.json")
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "%s: cannot read config" % p in r.stderr, r.stderr


def test_validate_secret_in_file_refused_and_not_echoed(tmp_dir):
    secret = "file-secret-0123456789-abcdef"
    p = write(tmp_dir, {"admin": {"token": secret}})
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "admin.token" in r.stderr, r.stderr
    assert secret not in r.stderr + r.stdout


def test_validate_non_loopback_admin_needs_token(tmp_dir):
    p = write(tmp_dir, {"admin": {"addr": "0.0.0.0:9600"}})
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "admin.addr: non-loopback admin address requires an admin" in r.stderr, r.stderr


def test_validate_token_file_world_readable_refused(tmp_dir):
    tok = os.path.join(tmp_dir, "token")
    with open(tok, "w") as f:
        f.write("token-in-a-file-0123456789\n")
    os.chmod(tok, 0o644)
    p = write(tmp_dir, {"admin": {"token_file": tok}})
    r = run_cli(["config", "validate", p])
    assert r.returncode == 2
    assert "admin.token_file" in r.stderr
    assert "token-in-a-file" not in r.stderr
    os.chmod(tok, 0o600)
    r = run_cli(["config", "validate", p])
    assert r.returncode == 0, r.stderr


def print_cfg(args=(), env=None):
    r = run_cli(["config", "print"] + list(args), env=env)
    assert r.returncode == 0, r.stderr
    return r, json.loads(r.stdout)


def test_print_has_file_shape():
    _, j = print_cfg()
    assert set(j) >= set(FULL), set(FULL) - set(j)
    for section in ("admin", "gateway", "storage", "paths", "log", "timeouts", "limits", "drain",
                    "tls", "policy"):
        assert set(j[section]) >= set(FULL[section]), section
    assert j["timeouts"]["read"] == "5s"
    assert j["timeouts"]["idle"] == "1m"
    assert j["limits"]["max_body"] == "128KiB"
    assert j["limits"]["max_inflight"] == 512
    assert j["limits"]["requests_per_second"] == 500
    assert j["drain"]["deadline"] == "3s"
    assert j["services"] == ["gateway", "storage", "audit"]
    assert j["audit"] == {"fsync_interval": "100ms", "checkpoint_interval": "1m", "max_age": "0s",
                          "max_bytes": "1GiB", "segment_max": "64MiB", "queue_max": 8192,
                          "ram_bytes": "16MiB"}
    assert j["storage"] == {"max_object": "1GiB", "max_uploads": 64, "replicas": 3, "cache_bytes": "1GiB",
                            "max_uploads_per_tenant": 16, "max_uploads_per_peer": 16}
    assert j["gateway"]["allow_plaintext"] is False
    assert j["amnesia"] is False


def test_print_output_validates(tmp_dir):
    """What `config print` emits is itself a valid config file."""
    r, _ = print_cfg()
    p = write(tmp_dir, r.stdout)
    v = run_cli(["config", "validate", p])
    assert v.returncode == 0, v.stderr


def test_print_precedence_default_file_env_flag(tmp_dir):
    p = write(tmp_dir, {"log": {"level": "warn"}, "admin": {"addr": "127.0.0.1:9601"}})
    _, j = print_cfg()
    assert j["log"]["level"] == "info"
    _, j = print_cfg(["--config", p])
    assert j["log"]["level"] == "warn"
    _, j = print_cfg(["--config", p], env={"RON_LOG": "error"})
    assert j["log"]["level"] == "error"
    _, j = print_cfg(["--config", p, "--log-level", "debug"], env={"RON_LOG": "error"})
    assert j["log"]["level"] == "debug"
    # RON_CONFIG names the file; --config wins over it
    _, j = print_cfg(env={"RON_CONFIG": p})
    assert j["log"]["level"] == "warn"
    assert j["admin"]["addr"] == "127.0.0.1:9601"
    other = write(tmp_dir, {"log": {"level": "error"}}, "other.json")
    _, j = print_cfg(["--config", other], env={"RON_CONFIG": p})
    assert j["log"]["level"] == "error"
    assert j["admin"]["addr"] == "127.0.0.1:9600"


def test_print_precedence_addresses(tmp_dir):
    a1, a2, a3 = free_ports(3)
    p = write(tmp_dir, {"admin": {"addr": "127.0.0.1:%d" % a1}})
    _, j = print_cfg(["--config", p])
    assert j["admin"]["addr"] == "127.0.0.1:%d" % a1
    _, j = print_cfg(["--config", p], env={"RON_HTTP_ADDR": "127.0.0.1:%d" % a2})
    assert j["admin"]["addr"] == "127.0.0.1:%d" % a2
    _, j = print_cfg(["--config", p, "--http-addr", "127.0.0.1:%d" % a3],
                     env={"RON_HTTP_ADDR": "127.0.0.1:%d" % a2})
    assert j["admin"]["addr"] == "127.0.0.1:%d" % a3


def test_print_bad_env_names_variable():
    r = run_cli(["config", "print"], env={"RON_LOG": "shouty"})
    assert r.returncode == 2
    assert "RON_LOG" in r.stderr and "log.level" in r.stderr, r.stderr


def test_print_never_shows_admin_token():
    token = "print-me-not-0123456789-ABCDEF"
    r = run_cli(["config", "print"], env={"RON_ADMIN_TOKEN": token})
    assert r.returncode == 0, r.stderr
    assert token not in r.stdout and token not in r.stderr
    json.loads(r.stdout)


def test_short_admin_token_refused():
    r = run_cli(["config", "print"], env={"RON_ADMIN_TOKEN": "short-token"})
    assert r.returncode == 2
    assert "RON_ADMIN_TOKEN" in r.stderr
    assert "short-token" not in r.stderr


def test_docs_lists_every_key():
    r = run_cli(["config", "docs"])
    assert r.returncode == 0
    for key in ("admin.addr", "gateway.workers", "limits.max_body", "timeouts.header",
                "drain.deadline", "log.level", "amnesia", "tls.cert_file"):
        assert "`%s`" % key in r.stdout or key in r.stdout, key


def test_validate_judges_file_plus_environment(tmp_dir, pki):
    """`config validate` judges what `run` would: the file plus RON_* variables.
    A non-loopback admin address (with admin.tls) is refused on its own and
    accepted when RON_ADMIN_TOKEN supplies the token; the messages say which
    variables took part and never echo the token."""
    secret = "env-admin-token-0123456789-abcdef"
    p = write(tmp_dir, {"admin": {"addr": "0.0.0.0:9600", "tls": True},
                        "tls": {"cert_file": pki.path("server.pem"),
                                "key_file": pki.path("server.key")}})
    r = run_cli(["config", "validate", p], env={"RON_ADMIN_TOKEN": ""})
    assert r.returncode == 2, r.stderr
    assert "no RON_* variables set" in r.stderr, r.stderr
    r = run_cli(["config", "validate", p], env={"RON_ADMIN_TOKEN": secret})
    assert r.returncode == 0, r.stderr
    assert "(with environment: RON_ADMIN_TOKEN)" in r.stdout, r.stdout
    assert secret not in r.stdout + r.stderr
    # A bad value from the environment is refused, naming the variable.
    r = run_cli(["config", "validate", p], env={"RON_ADMIN_TOKEN": secret, "RON_LOG": "loud"})
    assert r.returncode == 2
    assert "RON_LOG" in r.stderr, r.stderr
    assert secret not in r.stdout + r.stderr


def test_config_diff_says_what_a_reload_would_do(node, tmp_path):
    """`config diff FILE` names each changed key as live or restart, and the
    running node's reload agrees: live-only → applied, a restart key →
    refused."""
    from conftest import deep_merge
    old = tmp_path / "old.json"
    old.write_text(open(node.config_path).read())

    def diff(cfg):
        f = tmp_path / "new.json"
        f.write_text(json.dumps(deep_merge(node.base_config, cfg)))
        return run_cli(["config", "diff", str(f), "--config", str(old)])

    p = run_cli(["config", "diff", str(old), "--config", str(old)])
    assert p.returncode == 0 and "no change" in p.stdout, p.stdout + p.stderr

    p = diff({"gateway": {"max_ranges": 4}, "log": {"level": "debug"}})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "gateway.max_ranges: 16 -> 4 (live)" in lines, p.stdout
    assert 'log.level: "info" -> "debug" (live)' in lines, p.stdout
    assert lines[-1] == "2 keys differ: a reload applies them all", p.stdout
    node.write_config({"gateway": {"max_ranges": 4}, "log": {"level": "debug"}})
    assert node.post("/api/v1/reload").status == 202          # {"status":"reloaded"}

    p = diff({"gateway": {"workers": 2, "max_ranges": 4}, "log": {"level": "debug"}})
    assert p.returncode == 0, p.stderr
    assert "gateway.workers: 1 -> 2 (restart)" in p.stdout.splitlines(), p.stdout
    assert "would be refused" in p.stdout.splitlines()[-1], p.stdout
    node.write_config({"gateway": {"workers": 2, "max_ranges": 4}, "log": {"level": "debug"}})
    assert node.post("/api/v1/reload").status == 422

    p = run_cli(["config", "diff", str(tmp_path / "missing.json"), "--config", str(old)])
    assert p.returncode == 2 and "missing.json" in p.stderr, p.stderr
    p = run_cli(["config", "diff"])
    assert p.returncode == 2 and "FILE expected" in p.stderr
