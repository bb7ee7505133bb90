/*
 * cli.c — the `macronode` command line.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage or config error. An
 * unknown word is a usage error and never starts a node.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/config/config.h"
#include "core/auth/policy.h"
#include "core/proto/ctl.h"
#include "core/tls.h"
#include "lib/util.h"
#include "mn_build.h"
#include "mn_git.h"
#include "mn_git_ts.h"
#include "node/cli/client.h"
#include "node/node.h"
#include "svc/svc.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

static const char usage_main[] =
	"usage: macronode COMMAND [options]\n"
	"\n"
	"commands:\n"
	"  run              run the node (supervisor, admin plane, services)\n"
	"  check            can the node start here? (config, ports, data dir, entropy)\n"
	"  config print     print the effective config (file, env, flags; secrets redacted)\n"
	"  config validate FILE   judge FILE + RON_* environment as run would\n"
	"  config docs      print the config reference (docs/config.md)\n"
	"  config diff FILE what a reload with FILE would change (live or restart, per key)\n"
	"  config man       print macronode.json(5) (docs/man/)\n"
	"  doctor           ask a running node what is wrong\n"
	"  put FILE --peer HOST:PORT     store a file on a node over OAP/1 (TLS), print its id\n"
	"  get b3:ID --peer HOST:PORT    fetch and verify an object over OAP/1 (TLS)\n"
	"  name publish|resolve NAME ... --gateway HOST:PORT   names → objects (docs/names.md)\n"
	"  version          print version and build\n"
	"  id               print this node's id (b3:<hex> of its Ed25519 identity)\n"
	"  peers            the running node's DHT routing table (known nodes)\n"
	"  find b3:ID       providers of an object in the DHT (node id, OAP address, expiry)\n"
	"  init                             first run: capability key, signed default policy, a write token\n"
	"  policy keygen|sign|verify|eval   signed policy bundles (docs/policy.md)\n"
	"  token mint|attenuate|inspect     capability tokens (appending caveats needs the root key)\n"
	"  key list|rotate|retire|seal|rekey  capability key rotation, sealing keys at rest (docs/keys.md)\n"
	"  zk keygen|params|pin|prove       holder keys and proofs of possession (docs/zk.md)\n"
	"  audit verify DIR [--pubkey FILE] check a copied audit log offline (docs/audit.md)\n"
	"  audit tail [DIR]                 print audit records as they are written\n"
	"  audit pubkey [KEYFILE] [--kek FILE]  print a node identity's public key (for --pubkey)\n"
	"  completion bash  print the bash completion script\n"
	"  help             this text\n"
	"\n"
	"Run `macronode COMMAND --help` for a command's options.\n";

static const char usage_node_flags[] =
	"  --config FILE        JSON config file (env RON_CONFIG)\n"
	"  --http-addr ADDR     admin plane address, e.g. 127.0.0.1:9600 (env RON_HTTP_ADDR)\n"
	"  --gateway-addr ADDR  public gateway address (env RON_GATEWAY_ADDR)\n"
	"  --oap-addr ADDR      OAP/1 listener of the omnigate service (env RON_OAP_ADDR)\n"
	"  --data-dir DIR       data directory (env RON_DATA_DIR)\n"
	"  --log-level LEVEL    debug|info|warn|error (env RON_LOG)\n"
	"  --amnesia            RAM-only mode: nothing written to disk (env RON_AMNESIA)\n"
	"  -h, --help           this text\n";

static void usage_cmd(FILE *f, const char *cmd, const char *what)
{
	fprintf(f, "usage: macronode %s [options]\n\n%s\n\noptions:\n%s", cmd, what, usage_node_flags);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "macronode: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see `macronode --help`)\n");
	return EXIT_USAGE;
}

/* Parse the flags shared by run, check, config print and doctor. */
static int parse_node_flags(int argc, char **argv, node_opts *o, const char *cmd, const char *what)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "http-addr", required_argument, NULL, 'a' },
		{ "gateway-addr", required_argument, NULL, 'g' },
		{ "oap-addr", required_argument, NULL, 'o' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "amnesia", no_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct { int flag; const char *key; } keys[] = {
		{ 'a', "admin.addr" }, { 'g', "gateway.addr" }, { 'o', "oap.addr" },
		{ 'd', "paths.data_dir" },
		{ 'l', "log.level" }, { 'm', "amnesia" },
	};
	int c;

	memset(o, 0, sizeof *o);
	o->config_path = getenv("RON_CONFIG");
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (c == 'h') {
			usage_cmd(stdout, cmd, what);
			return 1;
		}
		if (c == 'c') {
			o->config_path = optarg;
			continue;
		}
		bool known = false;
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
			if (keys[i].flag != c || o->nov >= NODE_MAX_OVERRIDES)
				continue;
			o->ov[o->nov].key = keys[i].key;
			o->ov[o->nov++].value = c == 'm' ? "true" : optarg;
			known = true;
		}
		if (!known)
			return -usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
	}
	if (optind != argc)
		return -usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* `config validate FILE` judges what `run --config FILE` would: defaults <
 * file < RON_* environment, then every cross-key rule and the files the
 * config names. Which variables took part is said either way. */
static int cmd_config_validate(const char *path)
{
	node_opts o = { .config_path = path };
	mn_config c;
	char err[CONFIG_ERR_MAX], env[512];
	int bad = node_load_config(&o, &c, err, sizeof err) != 0;

	config_free(&c);
	config_env_names(env, sizeof env);
	if (bad) {
		fprintf(stderr, "macronode: config error: %s\n", err);
		fprintf(stderr, "macronode: judged as `run` would: defaults < %s < environment (%s)\n",
		        path, env[0] ? env : "no RON_* variables set");
		return EXIT_USAGE;
	}
	printf("%s: ok%s%s%s\n", path, env[0] ? " (with environment: " : "", env, env[0] ? ")" : "");
	return 0;
}

/* Parse flags and load config; returns 0, or the exit code to use (>0). */
static int load_for(int argc, char **argv, const char *cmd, const char *what, node_opts *o,
                    mn_config *c, const config_env_kept *kept)
{
	char err[CONFIG_ERR_MAX];
	int r = parse_node_flags(argc, argv, o, cmd, what);

	if (r != 0)
		return r > 0 ? 0x100 : EXIT_USAGE; /* 0x100: --help printed */
	o->kept = kept;
	if (node_load_config(o, c, err, sizeof err) != 0) {
		fprintf(stderr, "macronode: config error: %s\n", err);
		config_free(c);
		return EXIT_USAGE;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	config_env_kept kept;
	char err[CONFIG_ERR_MAX];

	/* The admin token leaves the environment before anything else runs: it
	 * lives in sodium memory for as long as the node does (reloads read it). */
	if (config_env_take(&kept, err, sizeof err) != 0) {
		fprintf(stderr, "macronode: config error: %s\n", err);
		return EXIT_USAGE;
	}
	int r = load_for(argc, argv, "run", "Run the node in the foreground.", &o, &c, &kept);

	if (r == 0)
		r = supervisor_run(&o, &c);
	else if (r == 0x100)
		r = 0;
	config_env_kept_free(&kept);
	return r;
}

static int cmd_version(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: macronode version [--json]\n");
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "--json") == 0 && argc == 2) {
		printf("{\"service\":\"macronode\",\"version\":\"%s\",\"git_sha\":\"%s\",\"build_ts\":\"%s\"}\n",
		       MN_VERSION, MN_GIT_SHA, MN_BUILD_TS);
		return 0;
	}
	if (argc > 1)
		return usage_error("version: unexpected argument '%s'", argv[1]);
	printf("macronode %s (git %s, built %s)\n", MN_VERSION, MN_GIT_SHA, MN_BUILD_TS);
	return 0;
}

static int check_line(bool ok, const char *what, const char *detail)
{
	printf("%-5s %-10s %s\n", ok ? "ok" : "FAIL", what, detail);
	return ok ? 0 : 1;
}

static int check_port(const char *what, const char *addr)
{
	struct sockaddr_storage ss;
	unsigned len;
	bool lo;
	char err[256];

	if (config_parse_addr(addr, &ss, &len, &lo) != 0)
		return check_line(false, what, addr);
	int fd = util_listen((struct sockaddr *)&ss, (socklen_t)len, 1, err, sizeof err);
	if (fd < 0)
		return check_line(false, what, err);
	close(fd);
	return check_line(true, what, addr);
}

static int check_data_dir(const mn_config *c)
{
	struct stat st;
	char msg[CONFIG_PATH_MAX + 64];

	if (c->amnesia)
		return check_line(true, "data_dir", "amnesia: nothing is written to disk");
	if (stat(c->data_dir, &st) != 0) {
		snprintf(msg, sizeof msg, "%s: will be created (mode 0700)", c->data_dir);
		return check_line(errno == ENOENT, "data_dir", errno == ENOENT ? msg : strerror(errno));
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || access(c->data_dir, W_OK | X_OK) != 0) {
		snprintf(msg, sizeof msg, "%s: not a directory this user owns and can write", c->data_dir);
		return check_line(false, "data_dir", msg);
	}
	snprintf(msg, sizeof msg, "%s%s", c->data_dir,
	         (st.st_mode & 077) ? " (group/world bits will be removed at start)" : "");
	return check_line(true, "data_dir", msg);
}

/* Keys and policy: a node without them starts, but denies every public
 * request (fail secure), so these are warnings, not failures. */
/* The KEK: a refused one fails `check` (run would refuse to start); one
 * beside the data dir is a warning: a copy of the data dir alone cannot be
 * unsealed, but whoever can read the disk has both. */
static int check_kek(const mn_config *c, kek **out)
{
	char path[CONFIG_PATH_MAX], err[CONFIG_ERR_MAX + CONFIG_PATH_MAX];
	char detail[sizeof err + 256];
	kek_source src;
	struct stat st;

	*out = NULL;
	if (kek_path(c, path, sizeof path, &src) != 0)
		return check_line(false, "kek", "keys.kek_file: path too long");
	if (lstat(path, &st) != 0 && errno == ENOENT) {
		if (src != KEK_SRC_BESIDE && !c->amnesia) {
			snprintf(detail, sizeof detail, "%s (%s): does not exist", path, kek_source_name(src));
			return check_line(false, "kek", detail);
		}
		snprintf(detail, sizeof detail, "%s: none yet; %s", path, c->amnesia ?
		         "amnesia: only clear-text key files can be read" :
		         "init (or the first run) creates it beside the data dir, where it protects "
		         "only against a copy of the data dir alone (docs/keys.md)");
		printf("%-5s %-10s %s\n", "warn", "kek", detail);
		return 0;
	}
	if (!(*out = kek_load_from(path, src, err, sizeof err)))
		return check_line(false, "kek", err);
	if (src == KEK_SRC_BESIDE) {
		snprintf(detail, sizeof detail, "%s: beside the data dir: protects only against a copy "
		         "of the data dir alone; keep it elsewhere (keys.kek_file, RON_KEK_FILE or "
		         "systemd LoadCredential=macronode.kek; docs/keys.md)", path);
		printf("%-5s %-10s %s\n", "warn", "kek", detail);
		return 0;
	}
	snprintf(detail, sizeof detail, "%s (%s)", path, kek_source_name(src));
	return check_line(true, "kek", detail);
}

static void check_pq(void)
{
	char why[NODE_PQ_REASON_MAX];
	bool pq = node_pq_posture(why, sizeof why);

	printf("%-5s %-10s pq: %s: %s\n", pq ? "ok" : "info", "pq", pq ? "true" : "false", why);
}

static void check_wall(const mn_config *c, const kek *k)
{
	char dir[CONFIG_PATH_MAX], bundle[CONFIG_PATH_MAX], pub[CONFIG_PATH_MAX];
	char err[CONFIG_ERR_MAX], detail[2 * CONFIG_PATH_MAX + 128];
	policy *p = NULL;

	if (!(c->services & (CONFIG_SVC_GATEWAY | CONFIG_SVC_OMNIGATE)) ||
	    config_keys_dir(c, dir, sizeof dir) != 0 || config_policy_file(c, bundle, sizeof bundle) != 0 ||
	    config_policy_pubkey(c, pub, sizeof pub) != 0)
		return;
	captoken_keyring *kr = captoken_keyring_new();
	captoken_keyring_set_kek(kr, k);
	if (kr && captoken_keyring_load_dir(kr, dir, err, sizeof err) == 0) {
		snprintf(detail, sizeof detail, "%zu capability key(s) in %s", captoken_keyring_count(kr), dir);
		(void)check_line(true, "keys", detail);
	} else {
		snprintf(detail, sizeof detail, "%s: every token will be refused (macronode init creates one)",
		         kr ? err : "out of memory");
		printf("%-5s %-10s %s\n", "warn", "keys", detail);
	}
	captoken_keyring_free(kr);
	if (policy_load(bundle, pub, 0, &p, err, sizeof err) == 0) {
		snprintf(detail, sizeof detail, "%s: version %llu, signature verified", bundle,
		         (unsigned long long)policy_version(p));
		(void)check_line(true, "policy", detail);
		policy_free(p);
	} else {
		snprintf(detail, sizeof detail, "%s: every public request will be denied and /readyz not "
		         "ready (macronode init creates a default)", err);
		printf("%-5s %-10s %s\n", "warn", "policy", detail);
	}
}

static int cmd_check(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	int r = load_for(argc, argv, "check", "Check that the node can start here.", &o, &c, NULL);
	int bad = 0;
	char bits[32];

	if (r)
		return r == 0x100 ? 0 : r;
	bad |= check_line(true, "config", o.config_path ? o.config_path : NODE_DEFAULT_CONFIG_NAME);
	bad |= check_port("admin", c.admin_addr);
	if (c.services & CONFIG_SVC_GATEWAY)
		bad |= check_port("gateway", c.gateway_addr);
	bad |= check_data_dir(&c);
	int nbits;
	const char *src;
	bool eok = util_entropy_sufficient(128, &nbits, &src);
	if (nbits >= 0)
		snprintf(bits, sizeof bits, "%d bits", nbits);
	else
		snprintf(bits, sizeof bits, "%s", eok ? "CRNG initialised (getrandom)" : "CRNG not initialised");
	bad |= check_line(eok, "entropy", bits);
	kek *k = NULL;
	bad |= check_kek(&c, &k);
	check_wall(&c, k);
	if (c.zk_enabled) {
		char zerr[CONFIG_ERR_MAX];
		int zrc = node_zk_pin_check(&c, k, zerr, sizeof zerr);
		bad |= check_line(zrc == 0, "zk", zrc == 0 ? "parameter bundle matches the pin" : zerr);
	}
	kek_free(k);
	check_pq();
	config_free(&c);
	return bad ? EXIT_RUNTIME : 0;
}

/* `config diff FILE [run's options]`: the config `run` would load now
 * (same flags, environment and config file resolution) against the same
 * with FILE as the config file. */
static int cmd_config_diff(int argc, char **argv)
{
	node_opts o, no;
	mn_config cur, nw;
	char err[CONFIG_ERR_MAX];
	size_t restart = 0;
	int n, r;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: macronode config diff FILE [--config CURRENT] [options]\n\n"
		       "Show what reloading the node with FILE would change: one line per key,\n"
		       "\"key: OLD -> NEW (live|restart)\". CURRENT is the config `run` would load\n"
		       "now (--config, RON_CONFIG or ./macronode.json, then the environment);\n"
		       "FILE is judged with the same environment. A reload (SIGHUP, POST\n"
		       "/api/v1/reload) applies `live` keys and is refused while any `restart`\n"
		       "key differs. Exit 0, or 2 when either config does not load.\n");
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
		return usage_error("config diff: %s", "FILE expected");
	r = load_for(argc - 1, argv + 1, "config diff", "Show what a reload with FILE changes.", &o,
	             &cur, NULL);
	if (r)
		return r == 0x100 ? 0 : r;
	no = o;
	no.config_path = argv[1];
	if (node_load_config(&no, &nw, err, sizeof err) != 0) {
		fprintf(stderr, "macronode: config error: %s\n", err);
		config_free(&cur);
		config_free(&nw);
		return EXIT_USAGE;
	}
	n = config_diff(&cur, &nw, stdout, &restart);
	if (n == 0)
		printf("no change: a reload with %s changes nothing\n", argv[1]);
	else if (restart == 0)
		printf("%d key%s differ: a reload applies %s\n", n, n == 1 ? "" : "s",
		       n == 1 ? "it" : "them all");
	else
		printf("%d key%s differ, %zu need%s a restart: a reload with %s would be refused\n", n,
		       n == 1 ? "" : "s", restart, restart == 1 ? "s" : "", argv[1]);
	config_free(&cur);
	config_free(&nw);
	return 0;
}

static int cmd_config(int argc, char **argv)
{
	mn_config c;

	static const char usage_config[] =
		"usage: macronode config print [options]     effective config, secrets redacted\n"
		"       macronode config validate FILE       check a config file\n"
		"       macronode config docs                the config reference (markdown)\n"
		"       macronode config diff FILE [options] what a reload with FILE would change\n"
		"       macronode config man                 macronode.json(5), mdoc\n";

	if (argc < 2)
		return usage_error("config: missing subcommand (%s)", "print|validate|docs");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(usage_config, stdout);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "docs") == 0 &&
	    (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		printf("usage: macronode config docs\n\nPrint the reference of every config key "
		       "(markdown, as in docs/config.md).\n");
		return 0;
	}
	if (strcmp(argv[1], "validate") == 0) {
		if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
			printf("usage: macronode config validate FILE\n");
			return 0;
		}
		if (argc != 3)
			return usage_error("config validate: %s", "exactly one FILE expected");
		return cmd_config_validate(argv[2]);
	}
	if (strcmp(argv[1], "print") == 0) {
		node_opts o;
		int r = load_for(argc - 1, argv + 1, "config print",
		                 "Print the effective config (secrets redacted).", &o, &c, NULL);
		if (r)
			return r == 0x100 ? 0 : r;
		r = config_print(&c, stdout) == 0 ? 0 : EXIT_RUNTIME;
		config_free(&c);
		return r;
	}
	if (strcmp(argv[1], "docs") == 0 && argc == 2)
		return config_write_docs(stdout) == 0 ? 0 : EXIT_RUNTIME;
	if (strcmp(argv[1], "man") == 0 && argc == 3 &&
	    (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
		printf("usage: macronode config man\n\nPrint macronode.json(5) in mdoc "
		       "(docs/man/macronode.json.5).\n");
		return 0;
	}
	if (strcmp(argv[1], "man") == 0 && argc == 2)
		return config_write_man(stdout) == 0 ? 0 : EXIT_RUNTIME;
	if (strcmp(argv[1], "diff") == 0)
		return cmd_config_diff(argc - 1, argv + 1);
	return usage_error("config: unknown subcommand '%s'", argv[1]);
}

static int cmd_doctor(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	int r = load_for(argc, argv, "doctor", "Ask a running node what is wrong.", &o, &c, NULL);

	if (r)
		return r == 0x100 ? 0 : r;
	r = doctor_run(&c);
	config_free(&c);
	return r;
}

/* With tor.enabled, `macronode id` adds "onion <name>.onion:port", as the
 * node last published it (<data_dir>/node/onion.hostname, written by the
 * supervisor once tor added the service; docs/tor.md). */
static void print_onion(const char *path)
{
	char *buf = NULL;
	size_t n = 0;

	if (!path[0])
		return;
	if (util_read_file(path, 128, &buf, &n) != 0) {
		fprintf(stderr, "macronode id: no onion address yet (%s): the node publishes one "
		        "once tor has added its onion service\n", path);
		return;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	printf("onion %.*s\n", (int)n, buf);
	free(buf);
}

/* `macronode id`: the node id of this node's identity file. */
static int cmd_id(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	node_identity id;
	char path[CONFIG_PATH_MAX], err[CONFIG_ERR_MAX + CONFIG_PATH_MAX];
	int r = load_for(argc, argv, "id",
	                 "Print this node's id (b3:<hex> of its Ed25519 public key).", &o, &c, NULL);

	if (r)
		return r == 0x100 ? 0 : r;
	if (c.amnesia) {
		fprintf(stderr, "macronode id: amnesia mode makes a fresh identity at every start; "
		        "ask the running node (GET /version on the admin plane)\n");
		config_free(&c);
		return EXIT_RUNTIME;
	}
	if (config_identity_file(&c, path, sizeof path) != 0) {
		fprintf(stderr, "macronode id: node.identity_file: path too long\n");
		config_free(&c);
		return EXIT_USAGE;
	}
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		fprintf(stderr, "macronode id: no identity at %s yet; `macronode init` or the "
		        "first `macronode run` creates it\n", path);
		config_free(&c);
		return EXIT_RUNTIME;
	}
	bool failed;
	char onion_path[CONFIG_PATH_MAX + 32] = "";
	if (c.tor_enabled)
		snprintf(onion_path, sizeof onion_path, "%s/node/onion.hostname", c.data_dir);
	kek *k = cli_kek_from(&c, "macronode id", &failed);
	config_free(&c);
	if (failed)
		return EXIT_RUNTIME;
	int lr = identity_load(&id, path, k, err, sizeof err);
	kek_free(k);
	if (lr != 0) {
		fprintf(stderr, "macronode id: %s\n", err);
		return EXIT_RUNTIME;
	}
	printf("%s\n", id.id_text);
	identity_free(&id);
	print_onion(onion_path);
	return 0;
}

/* `macronode peers`: the routing table of the running node's DHT. */
static int cmd_peers(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	int r = load_for(argc, argv, "peers",
	                 "Print the running node's DHT routing table: node counts and known nodes.",
	                 &o, &c, NULL);

	if (r)
		return r == 0x100 ? 0 : r;
	r = dht_cli_peers(&c);
	config_free(&c);
	return r;
}

/* `macronode find b3:CID [options]`: providers of an object, from the DHT. */
static int cmd_find(int argc, char **argv)
{
	node_opts o;
	mn_config c;
	const char *what = "Find providers of b3:CID in the DHT (node id, OAP address, expiry), "
	                   "through the running node.";
	int r;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("usage: macronode find b3:CID [options]\n\n%s\n\noptions:\n%s", what,
		       usage_node_flags);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-')
		return usage_error("find: expected a content id b3:<hex> first");
	if ((r = load_for(argc - 1, argv + 1, "find", what, &o, &c, NULL)))
		return r == 0x100 ? 0 : r;
	r = dht_cli_find(&c, argv[1]);
	config_free(&c);
	return r;
}

/*
 * Every macronode process may hold a secret: the supervisor the admin token,
 * services bearer tokens in their request buffers, the CLI keys it mints or
 * signs with. None of them writes a core file (RLIMIT_CORE 0/0) and none is
 * dumpable (PR_SET_DUMPABLE 0: no core, no ptrace attach by the same user,
 * /proc/<pid>/mem and environ owned by root). Set before anything is read,
 * and inherited by the children across fork + exec (exec of a binary the user
 * resets dumpable, and every child passes through cli_main again).
 */
void cli_harden_process(void)
{
	struct rlimit nocore = { 0, 0 };
	(void)setrlimit(RLIMIT_CORE, &nocore);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

/* `completion bash`: the completion script, made from usage_main so that
 * it lists exactly the commands and subcommands --help lists: a line's
 * first word is a command, its second a subcommand when it is lowercase
 * letters (alternatives joined by '|'). */
#define COMP_CMDS_MAX 48
#define COMP_SUBS_MAX 256

static bool comp_word(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || p[i] == '|'))
			return false;
	return n > 0;
}

static int cmd_completion(int argc, char **argv)
{
	char cmds[COMP_CMDS_MAX][24], subs[COMP_CMDS_MAX][COMP_SUBS_MAX];
	size_t ncmd = 0;

	if (argc != 2 || strcmp(argv[1], "bash") != 0) {
		if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			printf("usage: macronode completion bash\n\nPrint a bash completion script "
			       "(source it, or install it as\n/usr/share/bash-completion/completions/macronode).\n");
			return 0;
		}
		return usage_error("completion: %s", "only `bash` is supported");
	}
	for (const char *l = strstr(usage_main, "commands:\n"); l && *l; l = strchr(l, '\n')) {
		const char *w, *e;
		size_t n, i;

		l++;
		if (strncmp(l, "  ", 2) != 0 || l[2] == ' ')
			continue;
		w = l + 2;
		n = strcspn(w, " \n");
		if (!comp_word(w, n) || n >= sizeof cmds[0])
			continue;
		for (i = 0; i < ncmd && !(strlen(cmds[i]) == n && strncmp(cmds[i], w, n) == 0); i++)
			;
		if (i == ncmd) {
			if (ncmd == COMP_CMDS_MAX)
				break;
			snprintf(cmds[ncmd], sizeof cmds[0], "%.*s", (int)n, w);
			subs[ncmd++][0] = '\0';
		}
		if (w[n] != ' ')
			continue;
		e = w + n + 1;
		n = strcspn(e, " \n");
		if (!comp_word(e, n))
			continue;
		for (const char *a = e; a < e + n;) {   /* one alternative at a time */
			size_t m = strcspn(a, "| \n");
			size_t used = strlen(subs[i]);

			if (m && used + m + 2 < sizeof subs[0])
				snprintf(subs[i] + used, sizeof subs[0] - used, "%s%.*s", used ? " " : "",
				         (int)m, a);
			a += m + (a[m] == '|');
		}
	}
	printf("# bash completion for macronode: made by `macronode completion bash`\n"
	       "_macronode() {\n"
	       "  local cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
	       "  COMPREPLY=()\n"
	       "  if [ \"$COMP_CWORD\" -eq 1 ]; then\n"
	       "    COMPREPLY=( $(compgen -W \"");
	for (size_t i = 0; i < ncmd; i++)
		printf("%s%s", i ? " " : "", cmds[i]);
	printf("\" -- \"$cur\") )\n"
	       "    return\n"
	       "  fi\n"
	       "  if [ \"$COMP_CWORD\" -eq 2 ]; then\n"
	       "    case \"${COMP_WORDS[1]}\" in\n");
	for (size_t i = 0; i < ncmd; i++)
		if (subs[i][0])
			printf("      %s) COMPREPLY=( $(compgen -W \"%s\" -- \"$cur\") ); return ;;\n",
			       cmds[i], subs[i]);
	printf("    esac\n"
	       "  fi\n"
	       "  case \"$cur\" in\n"
	       "    -*) COMPREPLY=( $(compgen -W \"--help --config\" -- \"$cur\") ) ;;\n"
	       "    *) COMPREPLY=( $(compgen -f -- \"$cur\") ) ;;\n"
	       "  esac\n"
	       "}\n"
	       "complete -F _macronode macronode\n");
	return 0;
}

/* `macronode CMD SUB --help` where SUB would take --help for an argument
 * (`zk keygen --help` would write a key file named "--help", `audit pubkey`
 * read one) or refuse it: the command's own usage instead. */
static bool sub_help(int argc, char **argv)
{
	static const char *const cmds[] = { "policy", "key", "zk", "audit", "completion" };

	if (argc != 4 || (strcmp(argv[3], "--help") != 0 && strcmp(argv[3], "-h") != 0))
		return false;
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i]) == 0)
			return true;
	return false;
}

int cli_main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
		{ "run", cmd_run }, { "check", cmd_check }, { "config", cmd_config },
		{ "doctor", cmd_doctor }, { "version", cmd_version },
		{ "put", client_put_main }, { "get", client_get_main },
		{ "policy", policy_cli_main },
		{ "token", token_cli_main },
		{ "init", init_cli_main },
		{ "key", key_cli_main },
		{ "zk", zk_cli_main },
		{ "id", cmd_id }, { "peers", cmd_peers }, { "find", cmd_find },
		{ "name", name_cli_main },
		{ "audit", audit_cli_main },
		{ "completion", cmd_completion },
	};

	cli_harden_process();
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *w = argv[1];
	if (strcmp(w, "help") == 0 || strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (strcmp(w, "--version") == 0)
		return cmd_version(1, argv + 1);
	if (strcmp(w, "__service") == 0 && argc >= 3) {
		const role *r = role_find(argv[2]);
		return svc_main(r ? r->ops : NULL, r ? r->sandbox : NULL, argc - 2, argv + 2);
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (strcmp(w, cmds[i].name) != 0)
			continue;
		if (sub_help(argc, argv)) {
			char help[] = "--help";
			char *hv[] = { argv[1], help, NULL };
			return cmds[i].fn(2, hv);
		}
		return cmds[i].fn(argc - 1, argv + 1);
	}
	return usage_error("unknown command '%s'", w);
}
