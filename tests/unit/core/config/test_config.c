/*
 * test_config.c — the configuration model: table sanity, every type, strict
 * file errors with exact messages, precedence, validation, secrets, output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config/config.h"
#include "core/config/config_test.h"
#include "mn_build.h"

#define EXAMPLE_FILE MN_TEST_VECTORS "/../../deploy/macronode.example.json"
#define DOCS_FILE    MN_TEST_VECTORS "/../../docs/config.md"
#define TOKEN        "0123456789abcdef-secret-token"

static char err[CONFIG_ERR_MAX];

/* Loads json over a fresh default config; returns the load result. */
static int load(mn_config *c, const char *json)
{
	config_defaults(c);
	err[0] = '\0';
	return config_load_string(c, json, "t.json", err, sizeof err);
}

static void load_fails(const char *json, const char *want)
{
	mn_config c;
	assert_int_equal(load(&c, json), -1);
	assert_string_equal(err, want);
}

static void load_ok(mn_config *c, const char *json)
{
	int rc = load(c, json);
	if (rc != 0)
		fail_msg("unexpected error: %s", err);
}

/* A temp file holding content with the given mode; path written to buf. */
static void temp_file(char *buf, size_t len, const char *content, mode_t mode)
{
	snprintf(buf, len, "/tmp/test_config.XXXXXX");
	int fd = mkstemp(buf);
	assert_true(fd >= 0);
	size_t n = strlen(content);
	assert_int_equal(write(fd, content, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1u << 20);
	*len = fread(buf, 1, (1u << 20) - 1, f);
	fclose(f);
	return buf;
}

static char *print_to_string(const mn_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(config_print(c, f), 0);
	fclose(f);
	return buf;
}

/* ---- table and defaults ------------------------------------------------ */

static void test_table_sane(void **state)
{
	(void)state;
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		assert_true(strlen(k->key) < CONFIG_KEY_MAX);
		assert_true(k->min <= k->max);
		assert_non_null(k->help);
		if (k->type == CONFIG_T_U32 || k->type == CONFIG_T_SERVICES)
			assert_int_equal(k->size, sizeof(uint32_t));
		if (k->type == CONFIG_T_U32)
			assert_true(k->max <= UINT32_MAX);
		if (k->type == CONFIG_T_DURATION || k->type == CONFIG_T_SIZE)
			assert_int_equal(k->size, sizeof(uint64_t));
		assert_int_equal(k->secret, k->type == CONFIG_T_SECRET);
		for (size_t j = i + 1; j < config_table_len; j++) {
			assert_string_not_equal(k->key, config_table[j].key);
			if (k->env && config_table[j].env)
				assert_string_not_equal(k->env, config_table[j].env);
		}
	}
}

static void test_defaults(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	assert_string_equal(c.admin_addr, "127.0.0.1:9600");
	assert_string_equal(c.admin_token_file, "");
	assert_null(c.admin_token);
	assert_string_equal(c.gateway_addr, "127.0.0.1:9080");
	assert_int_equal(c.gateway_workers, 0);
	assert_string_equal(c.data_dir, "./var");
	assert_string_equal(c.runtime_dir, "");
	assert_int_equal(c.log_level, LOG_LEVEL_INFO);
	assert_int_equal(c.log_format, LOG_FORMAT_JSON);
	assert_int_equal(c.read_timeout_ms, 5000);
	assert_int_equal(c.write_timeout_ms, 5000);
	assert_int_equal(c.idle_timeout_ms, 60000);
	assert_int_equal(c.header_timeout_ms, 5000);
	assert_int_equal(c.drain_deadline_ms, 3000);
	assert_int_equal(c.max_body_bytes, 128u << 10);
	assert_int_equal(c.max_header_bytes, 16u << 10);
	assert_int_equal(c.max_inflight, 512);
	assert_int_equal(c.requests_per_second, 500);
	assert_int_equal(c.max_connections, 1024);
	assert_int_equal(c.services, CONFIG_SVC_GATEWAY | CONFIG_SVC_STORAGE | CONFIG_SVC_AUDIT);
	assert_int_equal(c.audit_fsync_interval_ms, 100);
	assert_int_equal(c.audit_checkpoint_interval_ms, 60000);
	assert_int_equal(c.audit_max_age_ms, 0);
	assert_int_equal(c.audit_max_bytes, 1ull << 30);
	assert_int_equal(c.audit_segment_max, 64u << 20);
	assert_int_equal(c.audit_queue_max, 8192);
	assert_int_equal(c.audit_ram_bytes, 16u << 20);
	assert_false(c.gateway_allow_plaintext);
	assert_int_equal(c.storage_max_object_bytes, 1u << 30);   /* 1 GiB: an object, not a frame */
	assert_int_equal(c.storage_max_uploads, 64);
	assert_int_equal(c.storage_max_uploads_per_tenant, 16);
	assert_int_equal(c.storage_max_uploads_per_peer, 16);
	assert_int_equal(c.min_body_rate, 1024);
	assert_int_equal(c.body_grace_ms, 5000);
	assert_int_equal(c.tls_handshake_timeout_ms, 5000);
	assert_string_equal(c.tls_cert_pin, "");
	assert_false(c.amnesia);
	assert_string_equal(c.tls_cert_file, "");
	assert_string_equal(c.policy_pubkey_file, "");
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
}

/* ---- every type from the file ------------------------------------------ */

static const char all_keys[] =
	"{\"admin\":{\"addr\":\"[::1]:9601\",\"token_file\":\"\"},"
	"\"gateway\":{\"addr\":\"127.0.0.2:8080\",\"workers\":4},"
	"\"paths\":{\"data_dir\":\"/srv/mn\",\"runtime_dir\":\"/run/mn\"},"
	"\"log\":{\"level\":\"trace\",\"format\":\"text\"},"
	"\"timeouts\":{\"read\":\"250ms\",\"write\":\"1m\",\"idle\":\"1h\",\"header\":\"2s\"},"
	"\"limits\":{\"max_body\":\"2GiB\",\"max_header_bytes\":4096,\"max_inflight\":7,"
	"\"requests_per_second\":0,\"max_connections\":9},"
	"\"drain\":{\"deadline\":\"0s\"},\"services\":[\"gateway\"],\"amnesia\":true,"
	"\"tls\":{\"cert_file\":\"c.pem\",\"key_file\":\"k.pem\",\"client_ca_file\":\"ca.pem\"},"
	"\"policy\":{\"bundle_file\":\"p.json\",\"pubkey_file\":\"p.pub\"}}";

static void test_every_type(void **state)
{
	(void)state;
	mn_config c;
	load_ok(&c, all_keys);
	assert_string_equal(c.admin_addr, "[::1]:9601");
	assert_string_equal(c.gateway_addr, "127.0.0.2:8080");
	assert_int_equal(c.gateway_workers, 4);
	assert_string_equal(c.data_dir, "/srv/mn");
	assert_string_equal(c.runtime_dir, "/run/mn");
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c.log_format, LOG_FORMAT_TEXT);
	assert_int_equal(c.read_timeout_ms, 250);
	assert_int_equal(c.write_timeout_ms, 60000);
	assert_int_equal(c.idle_timeout_ms, 3600000);
	assert_int_equal(c.header_timeout_ms, 2000);
	assert_int_equal(c.max_body_bytes, 2ull << 30);
	assert_int_equal(c.max_header_bytes, 4096);
	assert_int_equal(c.max_inflight, 7);
	assert_int_equal(c.requests_per_second, 0);
	assert_int_equal(c.max_connections, 9);
	assert_int_equal(c.drain_deadline_ms, 0);
	assert_int_equal(c.services, CONFIG_SVC_GATEWAY);
	assert_true(c.amnesia);
	assert_string_equal(c.tls_client_ca_file, "ca.pem");
	assert_string_equal(c.policy_bundle_file, "p.json");
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	/* services may be empty; absent keys keep their value */
	load_ok(&c, "{\"services\":[]}");
	assert_int_equal(c.services, 0);
	assert_int_equal(c.max_inflight, 512);
}

/* ---- strict file errors -------------------------------------------------- */

static void test_unknown_keys(void **state)
{
	(void)state;
	load_fails("{\"bogus\":1}", "t.json: bogus: unknown key");
	load_fails("{\"limits\":{\"max_bodyy\":\"1MiB\"}}", "t.json: limits.max_bodyy: unknown key");
	load_fails("{\"limitz\":{}}", "t.json: limitz: unknown key");
	load_fails("{\"limits.max_body\":\"1MiB\"}", "t.json: limits.max_body: unknown key");
	load_fails("{\"log\":{\"level\":{\"x\":1}}}",
	           "t.json: log.level: expected a string, got object");
	load_fails("{\"limits\":5}", "t.json: limits: expected an object, got integer");
	load_fails("{\"admin\":{\"token\":\"" TOKEN "\"}}",
	           "t.json: admin.token: secrets are not accepted in the config file "
	           "(use RON_ADMIN_TOKEN or admin.token_file)");
}

static void test_wrong_types(void **state)
{
	(void)state;
	load_fails("{\"limits\":{\"max_inflight\":\"512\"}}",
	           "t.json: limits.max_inflight: expected an integer, got string");
	load_fails("{\"limits\":{\"max_inflight\":1.5}}",
	           "t.json: limits.max_inflight: expected an integer, got number with a fraction");
	load_fails("{\"amnesia\":\"true\"}", "t.json: amnesia: expected true or false, got string");
	load_fails("{\"timeouts\":{\"read\":5}}",
	           "t.json: timeouts.read: expected a duration string with a unit, e.g. \"5s\", "
	           "got integer: a bare number is ambiguous, add a unit (ms, s, m, h)");
	load_fails("{\"services\":\"gateway\"}",
	           "t.json: services: expected an array of service names, got string");
	load_fails("{\"services\":[1]}",
	           "t.json: services: expected an array of service names (strings)");
	load_fails("{\"services\":[\"gateway\",\"gateway\"]}",
	           "t.json: services: service \"gateway\" is listed twice");
	load_fails("{\"services\":[\"nosuch\"]}",
	           "t.json: services: unknown service \"nosuch\" (known: gateway, storage, omnigate, dht, index, overlay, audit, social, mailbox, search)");
	load_fails("{\"log\":{\"level\":\"loud\"}}",
	           "t.json: log.level: invalid value \"loud\" (expected one of: debug, info, warn, error)");
	load_fails("{\"paths\":{\"data_dir\":\"\"}}", "t.json: paths.data_dir: must not be empty");
	load_fails("{\"paths\":{\"data_dir\":\"a\\nb\"}}",
	           "t.json: paths.data_dir: must not contain control characters");
	load_fails("{\"limits\":{\"max_body\":-1}}",
	           "t.json: limits.max_body: -1 is out of range (must not be negative)");
	load_fails("{\"gateway\":{\"addr\":\"localhost:80\"}}",
	           "t.json: gateway.addr: invalid address \"localhost:80\": host must be a "
	           "numeric IP address (no DNS names)");
}

static void test_syntax_errors(void **state)
{
	(void)state;
	mn_config c;
	assert_int_equal(load(&c, "{\n  \"amnesia\": }"), -1);
	assert_string_equal(err, "t.json:2:14: parse error: unexpected token near '}'");
	assert_int_equal(load(&c, "{\"amnesia\":true,\"amnesia\":false}"), -1);
	assert_int_equal(strncmp(err, "t.json:1:", 9), 0);
	assert_non_null(strstr(err, "parse error: duplicate object key"));
	load_fails("[]", "t.json: the top level must be a JSON object");
	load_fails("\"x\"", "t.json:1:3: parse error: '[' or '{' expected near '\"x\"'");
}

/* A failed load leaves every key as it was. */
static void test_load_is_atomic(void **state)
{
	(void)state;
	mn_config c;
	assert_int_equal(load(&c, "{\"amnesia\":true,\"limits\":{\"max_inflight\":0}}"), -1);
	assert_false(c.amnesia);
	assert_int_equal(c.max_inflight, 512);
}

struct edge {
	const char *json;
	const char *err;  /* NULL = accepted */
};

static void test_range_edges(void **state)
{
	(void)state;
	static const struct edge edges[] = {
		{ "{\"limits\":{\"max_inflight\":1}}", NULL },
		{ "{\"limits\":{\"max_inflight\":65536}}", NULL },
		{ "{\"limits\":{\"max_inflight\":0}}", "t.json: limits.max_inflight: 0 is out of range (1..65536)" },
		{ "{\"limits\":{\"max_inflight\":65537}}", "t.json: limits.max_inflight: 65537 is out of range (1..65536)" },
		{ "{\"limits\":{\"max_inflight\":4294967296}}", "t.json: limits.max_inflight: 4294967296 is out of range (1..65536)" },
		{ "{\"timeouts\":{\"read\":\"10ms\"}}", NULL },
		{ "{\"timeouts\":{\"read\":\"1h\"}}", NULL },
		{ "{\"timeouts\":{\"read\":\"9ms\"}}", "t.json: timeouts.read: 9ms is out of range (10ms..1h)" },
		{ "{\"timeouts\":{\"header\":\"3600001ms\"}}", "t.json: timeouts.header: 3600001ms is out of range (10ms..1h)" },
		{ "{\"drain\":{\"deadline\":\"0ms\"}}", NULL },
		{ "{\"drain\":{\"deadline\":\"5s\"}}", NULL },
		{ "{\"drain\":{\"deadline\":\"5001ms\"}}", "t.json: drain.deadline: 5001ms is out of range (0s..5s)" },
		{ "{\"limits\":{\"max_header_bytes\":\"1KiB\"}}", NULL },
		{ "{\"limits\":{\"max_header_bytes\":\"1MiB\"}}", NULL },
		{ "{\"limits\":{\"max_header_bytes\":1023}}", "t.json: limits.max_header_bytes: 1023B is out of range (1KiB..1MiB)" },
		{ "{\"limits\":{\"max_header_bytes\":\"1048577\"}}", "t.json: limits.max_header_bytes: 1048577B is out of range (1KiB..1MiB)" },
		{ "{\"limits\":{\"max_body\":1}}", NULL },
		{ "{\"limits\":{\"max_body\":\"1TiB\"}}", NULL },
		{ "{\"limits\":{\"max_body\":0}}", "t.json: limits.max_body: 0 is out of range (1B..1TiB)" },
		{ "{\"limits\":{\"max_body\":\"1025GiB\"}}", "t.json: limits.max_body: 1025GiB is out of range (1B..1TiB)" },
		{ "{\"limits\":{\"requests_per_second\":0}}", NULL },
		{ "{\"limits\":{\"requests_per_second\":1000000}}", NULL },
		{ "{\"limits\":{\"requests_per_second\":1000001}}", "t.json: limits.requests_per_second: 1000001 is out of range (0..1000000)" },
		{ "{\"limits\":{\"max_connections\":0}}", "t.json: limits.max_connections: 0 is out of range (1..1000000)" },
		{ "{\"limits\":{\"max_connections\":1000000}}", NULL },
		{ "{\"gateway\":{\"workers\":256}}", NULL },
		{ "{\"gateway\":{\"workers\":257}}", "t.json: gateway.workers: 257 is out of range (0..256)" },
	};
	for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
		mn_config c;
		if (edges[i].err)
			load_fails(edges[i].json, edges[i].err);
		else
			load_ok(&c, edges[i].json);
	}
}

/* ---- parsers --------------------------------------------------------- */

static void test_durations(void **state)
{
	(void)state;
	uint64_t ms = 99;
	assert_int_equal(config_parse_duration_ms("5s", &ms), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(config_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(config_parse_duration_ms("1m", &ms), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(config_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(config_parse_duration_ms("0s", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(config_parse_duration_ms("18446744073709551615ms", &ms), 0);
	assert_int_equal(ms, UINT64_MAX);
	static const char *const bad[] = {
		"0", "5", "-5s", "+5s", "5x", "", "s", "5 s", " 5s", "5s ", "5.5s", "5S", "500us",
		"18446744073709551616ms", "18446744073709551615s", "5124095576030432h",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (config_parse_duration_ms(bad[i], &ms) != -1)
			fail_msg("duration \"%s\" accepted", bad[i]);
	assert_int_equal(config_parse_duration_ms(NULL, &ms), -1);
	/* the bare-number refusal says why */
	mn_config c;
	config_defaults(&c);
	assert_int_equal(config_set(&c, "timeouts.idle", "30", err, sizeof err), -1);
	assert_string_equal(err, "timeouts.idle: invalid duration \"30\": a bare number is "
	                    "ambiguous: add a unit (use an integer and ms, s, m or h, e.g. \"5s\")");
}

static void test_sizes(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t v; } good[] = {
		{ "1MiB", 1u << 20 }, { "64KiB", 64u << 10 }, { "1GiB", 1u << 30 },
		{ "1TiB", 1ull << 40 }, { "1KB", 1000 }, { "1MB", 1000000 }, { "1GB", 1000000000 },
		{ "1024", 1024 }, { "0", 0 }, { "7B", 7 }, { "18446744073709551615", UINT64_MAX },
		{ "16777215TiB", 16777215ull << 40 },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		uint64_t v = 0;
		assert_int_equal(config_parse_size(good[i].s, &v), 0);
		assert_int_equal(v, good[i].v);
	}
	static const char *const bad[] = {
		"-1", "1XB", "", "MiB", "1 MiB", "1mib", "1.5MiB", "0x10", "18446744073709551616",
		"17179869184GiB", "16777216TiB",
	};
	uint64_t v;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (config_parse_size(bad[i], &v) != -1)
			fail_msg("size \"%s\" accepted", bad[i]);
}

static void test_addrs(void **state)
{
	(void)state;
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool lo = false;
	assert_int_equal(config_parse_addr("127.0.0.1:9600", &ss, &len, &lo), 0);
	assert_true(lo);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(config_parse_addr("127.9.9.9:1", &ss, &len, &lo), 0);
	assert_true(lo);
	assert_int_equal(config_parse_addr("[::1]:80", &ss, &len, &lo), 0);
	assert_true(lo);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(config_parse_addr("[::ffff:127.0.0.1]:80", &ss, &len, &lo), 0);
	assert_true(lo);
	assert_int_equal(config_parse_addr("10.0.0.1:0", &ss, &len, &lo), 0);
	assert_false(lo);
	assert_int_equal(config_parse_addr("[2001:db8::1]:65535", &ss, &len, &lo), 0);
	assert_false(lo);
	static const char *const bad[] = {
		"localhost:80", "1.2.3.4", "1.2.3.4:65536", "1.2.3.4:", "1.2.3.4:+80", "::1:80",
		"[::1]", "[::1]80", "[fe80::1%eth0]:80", "127.1:80", ":80", "[]:80", "1.2.3.4:80x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (config_parse_addr(bad[i], &ss, &len, &lo) != -1)
			fail_msg("address \"%s\" accepted", bad[i]);
}

/* ---- precedence, env, flags ---------------------------------------------- */

/* dht.bootstrap: a JSON array of numeric addresses (comma-joined inside),
 * comma-separated from flags; printed back as an array. */
static void test_addr_list(void **state)
{
	mn_config c;
	char e2[CONFIG_ERR_MAX];

	(void)state;
	load_ok(&c, "{\"dht\": {\"bootstrap\": [\"127.0.0.1:4222\", \"[::1]:4223\"]}}");
	assert_string_equal(c.dht_bootstrap, "127.0.0.1:4222,[::1]:4223");
	char *json = config_to_json(&c, false);
	assert_non_null(strstr(json, "\"bootstrap\":[\"127.0.0.1:4222\",\"[::1]:4223\"]"));
	free(json);
	load_ok(&c, "{\"dht\": {\"bootstrap\": []}}");
	assert_string_equal(c.dht_bootstrap, "");
	load_fails("{\"dht\": {\"bootstrap\": [\"example.org:4222\"]}}",
	           "t.json: dht.bootstrap: invalid address \"example.org:4222\": "
	           "host must be a numeric IP address (no DNS names)");
	load_fails("{\"dht\": {\"bootstrap\": \"127.0.0.1:1\"}}",
	           "t.json: dht.bootstrap: expected an array of address strings \"ip:port\", got string");
	load_fails("{\"dht\": {\"bootstrap\": [1]}}",
	           "t.json: dht.bootstrap: expected an array of address strings");
	config_defaults(&c);
	assert_int_equal(config_set(&c, "dht.bootstrap", "127.0.0.1:1,127.0.0.2:2", e2, sizeof e2), 0);
	assert_string_equal(c.dht_bootstrap, "127.0.0.1:1,127.0.0.2:2");
	assert_int_equal(config_set(&c, "dht.bootstrap", "127.0.0.1:1,", e2, sizeof e2), -1);
	char many[CONFIG_ADDR_LIST_MAX];
	size_t o = 0;
	for (int i = 0; i <= CONFIG_ADDR_LIST_N; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "%s10.0.0.%d:1", i ? "," : "", i);
	assert_int_equal(config_set(&c, "dht.bootstrap", many, e2, sizeof e2), -1);
	assert_non_null(strstr(e2, "more than 16 addresses"));
	/* republishing must come before records expire */
	load_ok(&c, "{\"dht\": {\"republish\": \"24h\"}}");
	assert_int_equal(config_validate(&c, e2, sizeof e2), -1);
	assert_non_null(strstr(e2, "dht.republish: must be shorter than dht.record_ttl"));
	config_free(&c);
}

/* gateway.cors_origins: exact origins as browsers send them; no "*", no
 * path, no default port, lowercase; live reload. */
static void test_origin_list(void **state)
{
	mn_config c;
	char e2[CONFIG_ERR_MAX];
	static const struct { const char *in, *why; } bad[] = {
		{ "*", "\"*\" is not an origin" },
		{ "https://*.example", "\"*\" is not an origin" },
		{ "http://a.example/", "an origin has no path" },
		{ "http://a.example:8080/x", "an origin has no path" },
		{ "a.example", "must start with http:// or https://" },
		{ "ftp://a.example", "must start with http:// or https://" },
		{ "http://A.example", "uppercase host" },
		{ "https://a.example:443", "the default port is never sent" },
		{ "http://a.example:80", "the default port is never sent" },
		{ "http://a.example:0", "invalid port" },
		{ "http://a.example:65536", "invalid port" },
		{ "http://a.example:", "invalid port" },
		{ "http://", "no host" },
		{ "http://[::1", "IPv6 host must be in brackets" },
		{ "http://user@a.example", "invalid character in the host" },
		{ "http://a.example,", "empty origin" },
	};

	(void)state;
	load_ok(&c, "{\"gateway\": {\"cors_origins\": [\"https://app.example\", "
	            "\"http://127.0.0.1:9600\", \"http://[::1]:8080\"]}}");
	assert_string_equal(c.gateway_cors_origins,
	                    "https://app.example,http://127.0.0.1:9600,http://[::1]:8080");
	char *json = config_to_json(&c, false);
	assert_non_null(strstr(json, "\"cors_origins\":[\"https://app.example\",\"http://127.0.0.1:9600\""));
	free(json);
	config_defaults(&c);
	assert_string_equal(c.gateway_cors_origins, "");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (config_set(&c, "gateway.cors_origins", bad[i].in, e2, sizeof e2) != -1 ||
		    !strstr(e2, bad[i].why))
			fail_msg("%s: got \"%s\", want \"%s\"", bad[i].in, e2, bad[i].why);
	}
	load_fails("{\"gateway\": {\"cors_origins\": \"https://a.example\"}}",
	           "t.json: gateway.cors_origins: expected an array of origin strings "
	           "\"scheme://host[:port]\", got string");
	char many[CONFIG_ORIGIN_LIST_MAX];
	size_t o = 0;
	for (int i = 0; i <= CONFIG_ORIGIN_LIST_N; i++)
		o += (size_t)snprintf(many + o, sizeof many - o, "%shttp://h%d", i ? "," : "", i);
	assert_int_equal(config_set(&c, "gateway.cors_origins", many, e2, sizeof e2), -1);
	assert_non_null(strstr(e2, "more than 16 origins"));
	config_free(&c);
}

static void test_precedence(void **state)
{
	(void)state;
	mn_config c;
	load_ok(&c, "{\"log\":{\"level\":\"warn\"},\"paths\":{\"data_dir\":\"/file\"},"
	            "\"gateway\":{\"addr\":\"127.0.0.1:1\"}}");
	assert_int_equal(c.log_level, LOG_LEVEL_WARN);
	setenv("RON_LOG", "error", 1);
	setenv("RON_DATA_DIR", "/env", 1);
	setenv("RON_GATEWAY_ADDR", "", 1);  /* empty = unset */
	assert_int_equal(config_apply_env(&c, err, sizeof err), 0);
	assert_int_equal(c.log_level, LOG_LEVEL_ERROR);
	assert_string_equal(c.data_dir, "/env");
	assert_string_equal(c.gateway_addr, "127.0.0.1:1");
	assert_int_equal(config_set(&c, "log.level", "debug", err, sizeof err), 0);
	assert_int_equal(c.log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(c.data_dir, "/env");
	unsetenv("RON_LOG");
	unsetenv("RON_DATA_DIR");
	unsetenv("RON_GATEWAY_ADDR");
}

static void test_env_errors(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	setenv("RON_HTTP_ADDR", "[::]:9700", 1);
	setenv("RON_AMNESIA", "maybe", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), -1);
	assert_string_equal(err, "RON_AMNESIA: amnesia: invalid boolean \"maybe\" "
	                    "(expected true, false, 1 or 0)");
	assert_string_equal(c.admin_addr, "127.0.0.1:9600");  /* nothing applied */
	setenv("RON_AMNESIA", "1", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), 0);
	assert_true(c.amnesia);
	assert_string_equal(c.admin_addr, "[::]:9700");
	unsetenv("RON_HTTP_ADDR");
	unsetenv("RON_AMNESIA");
	setenv("RON_LOG_FORMAT", "xml", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), -1);
	assert_string_equal(err, "RON_LOG_FORMAT: log.format: invalid value \"xml\" "
	                    "(expected one of: json, text)");
	unsetenv("RON_LOG_FORMAT");
}

static void test_env_token(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	setenv("RON_ADMIN_TOKEN", "short", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), -1);
	assert_string_equal(err, "RON_ADMIN_TOKEN: admin.token: admin token must be at least "
	                    "16 characters");
	assert_null(strstr(err, "short"));
	setenv("RON_ADMIN_TOKEN", "0123456789abcde f", 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), -1);
	assert_string_equal(err, "RON_ADMIN_TOKEN: admin.token: admin token must be printable "
	                    "ASCII without spaces");
	setenv("RON_ADMIN_TOKEN", TOKEN, 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), 0);
	assert_string_equal(c.admin_token, TOKEN);
	/* applying twice replaces, copy duplicates into its own secure memory */
	assert_int_equal(config_apply_env(&c, err, sizeof err), 0);
	mn_config d;
	assert_int_equal(config_copy(&d, &c), 0);
	assert_ptr_not_equal(d.admin_token, c.admin_token);
	assert_string_equal(d.admin_token, TOKEN);
	config_free(&d);
	assert_null(d.admin_token);
	config_free(&c);
	assert_null(c.admin_token);
	config_free(&c);  /* idempotent */
	unsetenv("RON_ADMIN_TOKEN");
}

/* tor.*: fails closed, naming the key; a build with -Dtor=disabled
 * refuses tor.enabled itself (docs/tor.md). */
static void test_tor_keys(void **state)
{
	mn_config c;

	(void)state;
	config_defaults(&c);
	assert_false(c.tor_enabled);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tor.only", "true", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "tor.only: needs tor.enabled: true");
	assert_int_equal(config_set(&c, "tor.enabled", "true", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "services", "gateway,storage,omnigate", err, sizeof err), 0);
	if (!MN_TOR) {
		assert_int_equal(config_validate(&c, err, sizeof err), -1);
		assert_string_equal(err, "tor.enabled: this build has no Tor transport "
		                    "(built with -Dtor=disabled)");
		config_free(&c);
		return;
	}
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tor.control", "/run/tor/control", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tor.control", "localhost:9051", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_true(strncmp(err, "tor.control: ", 13) == 0);
	assert_int_equal(config_set(&c, "tor.control", "", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tor.launch", "true", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tor.socks", "192.0.2.1:9050", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_true(strncmp(err, "tor.socks: ", 11) == 0);
	assert_int_equal(config_set(&c, "tor.socks", "127.0.0.1:9050", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "services", "gateway,storage", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_true(strncmp(err, "tor.enabled: needs the omnigate service", 39) == 0);
	config_free(&c);
}

static void test_config_set(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	assert_int_equal(config_set(&c, "limits.max_bodyy", "1", err, sizeof err), -1);
	assert_string_equal(err, "limits.max_bodyy: unknown key");
	assert_int_equal(config_set(&c, "limits", "1", err, sizeof err), -1);
	assert_string_equal(err, "limits: unknown key");
	assert_int_equal(config_set(&c, "admin.token", TOKEN, err, sizeof err), -1);
	assert_string_equal(err, "admin.token: cannot be set on the command line "
	                    "(use RON_ADMIN_TOKEN or admin.token_file)");
	assert_int_equal(config_set(&c, "limits.max_inflight", "12", err, sizeof err), 0);
	assert_int_equal(c.max_inflight, 12);
	assert_int_equal(config_set(&c, "limits.max_inflight", "12k", err, sizeof err), -1);
	assert_string_equal(err, "limits.max_inflight: invalid number \"12k\": expected a "
	                    "non-negative integer");
	assert_int_equal(config_set(&c, "limits.max_body", "64KiB", err, sizeof err), 0);
	assert_int_equal(c.max_body_bytes, 64u << 10);
	assert_int_equal(config_set(&c, "services", "", err, sizeof err), 0);
	assert_int_equal(c.services, 0);
	assert_int_equal(config_set(&c, "services", "gateway", err, sizeof err), 0);
	assert_int_equal(c.services, CONFIG_SVC_GATEWAY);
	assert_int_equal(config_set(&c, "services", "gateway,", err, sizeof err), -1);
	assert_string_equal(err, "services: unknown service \"\" (known: gateway, storage, omnigate, dht, index, overlay, audit, social, mailbox, search)");
	assert_int_equal(config_set(&c, "amnesia", "true", err, sizeof err), 0);
	assert_true(c.amnesia);
}

/* ---- reload ------------------------------------------------------------ */

static void test_reload_check(void **state)
{
	(void)state;
	mn_config a, b;
	config_defaults(&a);
	config_defaults(&b);
	assert_int_equal(config_reload_check(&a, &b, err, sizeof err), 0);
	assert_int_equal(config_set(&b, "log.level", "debug", err, sizeof err), 0);
	assert_int_equal(config_set(&b, "timeouts.read", "1s", err, sizeof err), 0);
	assert_int_equal(config_set(&b, "limits.max_body", "2MiB", err, sizeof err), 0);
	assert_int_equal(config_reload_check(&a, &b, err, sizeof err), 0);
	assert_int_equal(config_set(&b, "gateway.addr", "127.0.0.1:9081", err, sizeof err), 0);
	assert_int_equal(config_reload_check(&a, &b, err, sizeof err), -1);
	assert_string_equal(err, "gateway.addr: changing this key requires a restart (reload refused)");
	config_defaults(&b);
	b.amnesia = true;
	assert_int_equal(config_reload_check(&a, &b, err, sizeof err), -1);
	assert_string_equal(err, "amnesia: changing this key requires a restart (reload refused)");
}

/* ---- validate and the token --------------------------------------------- */

/* zk.enabled fails closed: refused without an audience, and in a build
 * without ZK (-Dzk=disabled, `make nofeat`), naming the key. */
static void test_validate_zk(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	assert_false(c.zk_enabled);
	assert_int_equal(c.zk_skew_ms, 60000);
	assert_int_equal(config_set(&c, "zk.enabled", "true", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	if (MN_WITH_ZK)
		assert_string_equal(err, "zk.enabled: needs auth.audience (every proof is bound to the "
		                    "node's audience)");
	else
		assert_non_null(strstr(err, "zk.enabled: this build has no ZK support"));
	assert_int_equal(config_set(&c, "auth.audience", "node-a", err, sizeof err), 0);
	if (MN_WITH_ZK) {
		assert_int_equal(config_validate(&c, err, sizeof err), 0);
	} else {
		assert_int_equal(config_validate(&c, err, sizeof err), -1);
		assert_non_null(strstr(err, "zk.enabled: this build has no ZK support (built with "
		                        "-Dzk=disabled)"));
	}
	assert_int_equal(config_set(&c, "zk.skew", "0s", err, sizeof err), -1);
	assert_int_equal(config_set(&c, "zk.replay_cache", "10", err, sizeof err), -1);
	config_free(&c);
}

static void test_validate_gateway_tls(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	assert_int_equal(config_set(&c, "gateway.addr", "0.0.0.0:9080", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "gateway.addr: a non-loopback gateway needs TLS (tls.cert_file, "
	                    "tls.key_file) or gateway.allow_plaintext: true");
	assert_int_equal(config_set(&c, "gateway.allow_plaintext", "true", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	/* without a gateway there is nothing to refuse */
	config_defaults(&c);
	assert_int_equal(config_set(&c, "gateway.addr", "0.0.0.0:9080", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "services", "storage", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	/* a pin needs a certificate and the content-id shape */
	config_defaults(&c);
	assert_int_equal(config_set(&c, "tls.cert_pin", "b3:00", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "tls.cert_pin: requires tls.cert_file");
	assert_int_equal(config_set(&c, "tls.cert_file", "c.pem", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.key_file", "k.pem", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "tls.cert_pin: expected \"b3:\" and 64 lowercase hex digits");
	assert_int_equal(config_set(&c, "tls.cert_pin",
	    "b3:AF1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_int_equal(config_set(&c, "tls.cert_pin",
	    "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	/* omnigate needs no certificate file (it serves the node identity's),
	 * and its address is its own */
	config_defaults(&c);
	assert_int_equal(config_set(&c, "services", "gateway,storage,omnigate", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.cert_file", "c.pem", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.key_file", "k.pem", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_int_equal(config_set(&c, "oap.addr", "127.0.0.1:9080", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "oap.addr: must differ from admin.addr and gateway.addr");
	config_free(&c);
}

static void test_validate_addrs(void **state)
{
	(void)state;
	mn_config c;
	config_defaults(&c);
	assert_int_equal(config_set(&c, "admin.addr", "0.0.0.0:9600", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "admin.addr: non-loopback admin address requires an admin token "
	                    "(RON_ADMIN_TOKEN or admin.token_file)");
	setenv("RON_ADMIN_TOKEN", TOKEN, 1);
	assert_int_equal(config_apply_env(&c, err, sizeof err), 0);
	unsetenv("RON_ADMIN_TOKEN");
	/* a token is not enough: the admin plane must run TLS too */
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "admin.addr: non-loopback admin address requires admin.tls "
	                    "(TLS 1.3 with tls.cert_file and tls.key_file)");
	assert_int_equal(config_set(&c, "admin.tls", "true", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "admin.tls: requires tls.cert_file and tls.key_file");
	assert_int_equal(config_set(&c, "tls.cert_file", "c.pem", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.key_file", "k.pem", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	/* the wildcard overlaps any address on the same port */
	assert_int_equal(config_set(&c, "gateway.addr", "127.0.0.1:9600", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "gateway.addr: must differ from admin.addr "
	                    "(127.0.0.1:9600 vs 0.0.0.0:9600)");
	config_free(&c);
	config_defaults(&c);
	assert_int_equal(config_set(&c, "gateway.addr", "127.0.0.1:9600", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	/* fields set directly are re-checked */
	config_defaults(&c);
	c.drain_deadline_ms = 6000;
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "drain.deadline: 6s is out of range (0s..5s)");
	config_defaults(&c);
	assert_int_equal(config_set(&c, "tls.cert_file", "c.pem", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "tls.key_file: tls.cert_file and tls.key_file must be set together");
}

static void test_token_file(void **state)
{
	(void)state;
	char path[64], want[CONFIG_ERR_MAX];
	mn_config c;
	temp_file(path, sizeof path, TOKEN "\n", 0644);
	config_defaults(&c);
	assert_int_equal(config_set(&c, "admin.addr", "0.0.0.0:9600", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "admin.tls", "true", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.cert_file", "c.pem", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "tls.key_file", "k.pem", err, sizeof err), 0);
	assert_int_equal(config_set(&c, "admin.token_file", path, err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	snprintf(want, sizeof want, "admin.token_file: %s: is accessible by group or others "
	         "(mode 0644); run chmod 600", path);
	assert_string_equal(err, want);
	assert_null(c.admin_token);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	assert_non_null(c.admin_token);
	assert_string_equal(c.admin_token, TOKEN);  /* newline stripped */
	char *out = print_to_string(&c);
	assert_null(strstr(out, TOKEN));
	assert_null(strstr(out, "\"token\""));
	assert_non_null(strstr(out, path));        /* the path is printable */
	free(out);
	out = config_to_json(&c, true);
	assert_non_null(out);
	assert_null(strstr(out, TOKEN));
	free(out);
	config_free(&c);
	unlink(path);

	temp_file(path, sizeof path, "\n", 0600);
	config_defaults(&c);
	assert_int_equal(config_set(&c, "admin.token_file", path, err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	snprintf(want, sizeof want, "admin.token_file: %s: admin token is empty", path);
	assert_string_equal(err, want);
	unlink(path);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	snprintf(want, sizeof want, "admin.token_file: %s: No such file or directory", path);
	assert_string_equal(err, want);
	assert_int_equal(config_set(&c, "admin.token_file", "/tmp", err, sizeof err), 0);
	assert_int_equal(config_validate(&c, err, sizeof err), -1);
	assert_string_equal(err, "admin.token_file: /tmp: not a regular file");
}

/* ---- files and output -------------------------------------------------- */

static void test_load_file(void **state)
{
	(void)state;
	char path[64];
	mn_config c;
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, "/nonexistent/m.json", err, sizeof err), -1);
	assert_string_equal(err, "/nonexistent/m.json: cannot read config: No such file or directory");
	char *big = malloc(CONFIG_FILE_MAX + 2);
	memset(big, ' ', CONFIG_FILE_MAX + 1);
	big[0] = '{';
	big[CONFIG_FILE_MAX] = '}';
	big[CONFIG_FILE_MAX + 1] = '\0';
	temp_file(path, sizeof path, big, 0600);
	free(big);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	char want[CONFIG_ERR_MAX];
	snprintf(want, sizeof want, "%s: file is larger than 1048576 bytes", path);
	assert_string_equal(err, want);
	unlink(path);
	temp_file(path, sizeof path, "{\"log\":\n {\"levl\": \"info\"}}\n", 0644);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s: log.levl: unknown key", path);
	assert_string_equal(err, want);
	unlink(path);
}

static void test_print_round_trip(void **state)
{
	(void)state;
	mn_config a, b;
	load_ok(&a, all_keys);
	assert_int_equal(config_set(&a, "limits.max_body", "1000001", err, sizeof err), 0);
	char *printed = print_to_string(&a);
	config_defaults(&b);
	if (config_load_string(&b, printed, "printed", err, sizeof err) != 0)
		fail_msg("%s\n%s", err, printed);
	char *ja = config_to_json(&a, false), *jb = config_to_json(&b, false);
	assert_string_equal(ja, jb);
	assert_int_equal(b.max_body_bytes, 1000001);
	assert_int_equal(b.read_timeout_ms, 250);
	assert_int_equal(config_reload_check(&a, &b, err, sizeof err), 0);
	free(printed);
	free(ja);
	free(jb);
	/* the compact form loads too (what a child receives) */
	config_defaults(&a);
	ja = config_to_json(&a, true);
	assert_int_equal(config_load_string(&b, ja, "child", err, sizeof err), 0);
	free(ja);
}

static void test_example_file(void **state)
{
	(void)state;
	mn_config c, d;
	config_defaults(&c);
	config_defaults(&d);
	c.amnesia = true;  /* the file must set it back */
	if (config_load_file(&c, EXAMPLE_FILE, err, sizeof err) != 0)
		fail_msg("%s", err);
	assert_int_equal(config_validate(&c, err, sizeof err), 0);
	char *jc = config_to_json(&c, false), *jd = config_to_json(&d, false);
	assert_string_equal(jc, jd);  /* every key at its default */
	free(jc);
	free(jd);
	/* and every key is present: printing the defaults gives the file */
	size_t len = 0;
	char *file = slurp(EXAMPLE_FILE, &len);
	assert_non_null(file);
	char *printed = print_to_string(&d);
	assert_string_equal(file, printed);
	free(file);
	free(printed);
}

/* docs/config.md is generated; this fails when the table moves without it. */
static void test_docs_current(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_int_equal(config_write_docs(f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "| `limits.max_body` | size | `128KiB` | 1B..1TiB | live |  | "));
	assert_non_null(strstr(buf, "| `admin.addr` | addr | `\"127.0.0.1:9600\"` |"));
	size_t flen = 0;
	char *file = slurp(DOCS_FILE, &flen);
	if (getenv("MN_REGEN_DOCS")) {
		FILE *w = fopen(DOCS_FILE, "w");
		assert_non_null(w);
		fputs(buf, w);
		fclose(w);
	} else {
		assert_non_null(file);
		assert_string_equal(file, buf);
	}
	free(file);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_sane),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_type),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_load_is_atomic),
		cmocka_unit_test(test_range_edges),
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_addrs),
		cmocka_unit_test(test_addr_list),
		cmocka_unit_test(test_precedence),
		cmocka_unit_test(test_env_errors),
		cmocka_unit_test(test_env_token),
		cmocka_unit_test(test_config_set),
		cmocka_unit_test(test_tor_keys),
		cmocka_unit_test(test_reload_check),
		cmocka_unit_test(test_validate_addrs),
		cmocka_unit_test(test_validate_gateway_tls),
		cmocka_unit_test(test_origin_list),
		cmocka_unit_test(test_token_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_print_round_trip),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_docs_current),
		cmocka_unit_test(test_validate_zk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
