/*
 * audit_cli.c — `macronode audit verify|tail|pubkey` (docs/audit.md).
 *
 *   audit verify DIR [--pubkey FILE] [--from-zero] [--checkpoint FILE]
 *                                      check a copied audit log offline (and
 *                                      that it reaches a checkpoint got apart)
 *   audit tail [DIR] [--from-start] [--count N] [--interval MS] [--config FILE]
 *                                      print records as they are written
 *   audit pubkey [KEYFILE] [--kek FILE] [--config FILE] [--data-dir DIR]
 *                                      the public key (64 hex) of a node
 *                                      identity key file, for --pubkey
 *   audit selftest-write DIR N [--key FILE] [--segment-max BYTES]
 *                          [--checkpoint-every K] [--seed S]
 *                                      (hidden, for tests) write N records
 *                                      with the library the service uses
 *
 * Exit codes: 0 good, 1 runtime failure, 2 usage, 3 the log does not verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/audit/audit_checkpoint.h"
#include "core/audit/audit_log.h"
#include "core/audit/audit_verify.h"
#include "core/identity/identity.h"
#include "core/keys/kek.h"
#include "lib/util.h"
#include "node/node.h"

#define AUDIT_CLI_OK        0
#define AUDIT_CLI_RUNTIME   1
#define AUDIT_CLI_USAGE     2
#define AUDIT_CLI_BAD_LOG   3
#define AUDIT_CLI_TAIL_MS   200u      /* poll interval of tail */
#define AUDIT_CLI_TAIL_MAX_MS 60000u
#define AUDIT_CLI_CKPT_FILE_MAX 4096u   /* bytes of a --checkpoint file */

static const char audit_cli_usage[] =
	"usage: macronode audit verify DIR [--pubkey FILE] [--from-zero] [--checkpoint FILE]\n"
	"       macronode audit tail [DIR] [--from-start] [--count N] [--interval MS]\n"
	"                            [--config FILE]\n"
	"       macronode audit pubkey [KEYFILE] [--kek FILE] [--config FILE] [--data-dir DIR]\n"
	"\n"
	"verify checks a copied audit log offline: every record canonical, every self_hash,\n"
	"prev link and seq per stream, every segment header, every checkpoint signature\n"
	"(--pubkey FILE: 64 hex; default DIR/node.pub) and root. It prints a summary and\n"
	"exits 0, or names the first bad record or checkpoint and exits 3. --from-zero also\n"
	"refuses a log whose oldest segments are gone (which retention does too).\n"
	"--checkpoint FILE (a checkpoint as GET /api/v1/audit/checkpoint serves it, got\n"
	"apart from the copy) also refuses a log that does not reach its size or whose\n"
	"first records do not have its root: records cut after the newest stored checkpoint.\n"
	"tail prints records as the audit service writes them (newest segment, polled);\n"
	"DIR defaults to <paths.data_dir>/audit of the config (--config, RON_CONFIG).\n"
	"pubkey prints the public key of a node identity key file (for --pubkey; default\n"
	"node.identity_file, <paths.data_dir>/node/identity.key unless set). It unseals\n"
	"the file with --kek FILE, else\n"
	"KEYFILE.kek when it exists, else the node's KEK found as `run` finds it\n"
	"(keys.kek_file, RON_KEK_FILE, $CREDENTIALS_DIRECTORY/macronode.kek, else\n"
	"<data_dir>.kek) from the config (--config, RON_CONFIG; --data-dir DIR).\n";

static int audit_usage(const char *what)
{
	if (what)
		fprintf(stderr, "macronode audit: %s\n", what);
	fputs(audit_cli_usage, what ? stderr : stdout);
	return what ? AUDIT_CLI_USAGE : AUDIT_CLI_OK;
}

static void print_failure(const audit_verify_report *r)
{
	fprintf(stderr, "macronode audit verify: FAILED");
	if (strcmp(r->file, AUDIT_VERIFY_XCKPT) == 0)
		fprintf(stderr, " against --checkpoint");
	else if (r->file[0])
		fprintf(stderr, " at %s offset %" PRIu64, r->file, r->offset);
	if (r->has_index)
		fprintf(stderr, ": record %" PRIu64, r->index);
	if (r->stream[0])
		fprintf(stderr, " (stream %s, seq %" PRIu64 ")", r->stream, r->seq);
	fprintf(stderr, ": %s\n", r->what);
	fprintf(stderr, "checked before it: %" PRIu64 " records, %" PRIu64 " checkpoints\n",
	        r->records, r->checkpoints);
}

static void print_summary(const audit_verify_report *r)
{
	char root[B3_CID_LEN + 1];
	uint64_t total = r->first_index + r->records;

	b3_cid_format(r->root, root);
	printf("ok: %" PRIu64 " segments, %" PRIu64 " records (index %" PRIu64 "..%" PRIu64 "), "
	       "%u streams\n", r->segments, r->records, r->first_index, total ? total - 1 : 0,
	       r->streams);
	printf("checkpoints: %" PRIu64 " verified against the records, %" PRIu64
	       " signed over records retention removed\n", r->checkpoints, r->checkpoints_pruned);
	printf("root: %s (%" PRIu64 " records)\n", root, total);
	if (r->checkpoints == 0)
		printf("warning: no checkpoint covers these records: the chain holds, but nothing "
		       "signed proves the log was not cut or rewritten as a whole\n");
	else if (r->last_ckpt_size < total)
		printf("note: the last %" PRIu64 " records come after the newest checkpoint "
		       "(chained, not yet signed)\n", total - r->last_ckpt_size);
}

/* A checkpoint file: the canonical line the admin plane serves (a trailing
 * newline allowed), or the same object reformatted (e.g. by jq): re-encoded
 * compact with sorted keys, then parsed strictly. 0, or -1 with err. */
static int load_given_checkpoint(const char *path, audit_checkpoint *c, char *err, size_t len)
{
	char *buf = NULL, *canon = NULL;
	size_t n = 0;
	json_t *o;
	int r = -1;

	if (util_read_file(path, AUDIT_CLI_CKPT_FILE_MAX, &buf, &n) != 0)
		return util_fail(err, len, "--checkpoint %s: cannot read (at most %u bytes): %s", path,
		                 AUDIT_CLI_CKPT_FILE_MAX, strerror(errno));
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	if (audit_checkpoint_parse(buf, n, c, err, len) == 0) {
		free(buf);
		return 0;
	}
	o = json_loadb(buf, n, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_object(o) && (canon = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) != NULL &&
	    audit_checkpoint_parse(canon, strlen(canon), c, err, len) == 0)
		r = 0;
	else
		(void)util_fail(err, len, "--checkpoint %s: not a checkpoint (%s)", path,
		                o ? "wrong keys or values" : "not JSON");
	free(canon);
	json_decref(o);
	free(buf);
	return r;
}

static int cmd_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pubkey", required_argument, NULL, 'p' },
		{ "from-zero", no_argument, NULL, 'z' },
		{ "checkpoint", required_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pubkey = NULL, *given_path = NULL;
	audit_checkpoint given = { 0 };
	bool from_zero = false;
	uint8_t pk[IDENTITY_PK_LEN];
	audit_verify_report rep;
	char err[AUDIT_ERR_MAX];
	int c;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return audit_usage(NULL);
		if (c == 'z')
			from_zero = true;
		else if (c == 'p')
			pubkey = optarg;
		else if (c == 'k')
			given_path = optarg;
		else
			return audit_usage("unknown or incomplete option");
	}
	if (optind + 1 != argc)
		return audit_usage("verify takes one directory");
	if (pubkey && audit_pubkey_load(pubkey, pk, err, sizeof err) != 0) {
		fprintf(stderr, "macronode audit verify: %s\n", err);
		return AUDIT_CLI_USAGE;
	}
	if (given_path && load_given_checkpoint(given_path, &given, err, sizeof err) != 0) {
		fprintf(stderr, "macronode audit verify: %s\n", err);
		return AUDIT_CLI_USAGE;
	}
	if (audit_verify_dir_against(argv[optind], pubkey ? pk : NULL, given_path ? &given : NULL,
	                             &rep) != 0) {
		print_failure(&rep);
		return AUDIT_CLI_BAD_LOG;
	}
	if (from_zero && rep.first_index != 0) {
		/* Removing the oldest whole segments looks exactly like retention. */
		fprintf(stderr, "macronode audit verify: FAILED: the log starts at record %" PRIu64
		        ", not 0 (its oldest segments were removed: retention, or by hand)\n",
		        rep.first_index);
		return AUDIT_CLI_BAD_LOG;
	}
	print_summary(&rep);
	if (given_path && rep.given_checked)
		printf("given checkpoint: size %" PRIu64 ", signed, and the log's first %" PRIu64
		       " records have its root\n", given.size, given.size);
	return AUDIT_CLI_OK;
}

/* The newest segment's first index; -1 when there is none. */
static int newest_segment(const char *dir, uint64_t *first)
{
	uint64_t *f = NULL;
	size_t n = 0;
	char err[AUDIT_ERR_MAX];

	if (audit_segment_list(dir, &f, &n, err, sizeof err) != 0 || n == 0) {
		free(f);
		return -1;
	}
	*first = f[n - 1];
	free(f);
	return 0;
}

typedef struct tail_state {
	const char  *dir;
	int          fd;
	uint64_t     first;
	bool         header;        /* the next line is a header */
	audit_lines *lr;
} tail_state;

static int tail_open(tail_state *t, uint64_t first, bool from_start)
{
	char name[AUDIT_SEG_NAME_LEN + 1], path[4096];
	off_t end = 0;

	if (t->fd >= 0)
		close(t->fd);
	audit_segment_name(first, name);
	snprintf(path, sizeof path, "%s/%s", t->dir, name);
	t->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (t->fd < 0)
		return -1;
	t->first = first;
	t->header = from_start;
	if (!from_start && (end = lseek(t->fd, 0, SEEK_END)) < 0)
		return -1;
	audit_lines_init(t->lr, t->fd);
	t->lr->base = (uint64_t)end;
	return 0;
}

/* Print what is there; 1 when count lines were printed. */
static int tail_drain(tail_state *t, uint64_t *left)
{
	const char *line;
	size_t n;
	uint64_t off;

	while (audit_lines_next(t->lr, &line, &n, &off) == AUDIT_LINE_OK) {
		if (t->header) {
			t->header = false;
			continue;
		}
		fwrite(line, 1, n, stdout);
		fputc('\n', stdout);
		if (*left && --*left == 0)
			return 1;
	}
	fflush(stdout);
	return 0;
}

static int tail_loop(tail_state *t, bool from_start, uint64_t count, uint64_t interval_ms)
{
	struct timespec ts = { (time_t)(interval_ms / 1000u), (long)(interval_ms % 1000u) * 1000000L };
	uint64_t first, left = count;

	while (newest_segment(t->dir, &first) != 0)
		nanosleep(&ts, NULL);
	if (tail_open(t, first, from_start) != 0)
		return AUDIT_CLI_RUNTIME;
	for (;;) {
		if (tail_drain(t, &left) == 1)
			return AUDIT_CLI_OK;
		if (newest_segment(t->dir, &first) == 0 && first != t->first) {
			if (tail_drain(t, &left) == 1)   /* the rest of the old one first */
				return AUDIT_CLI_OK;
			if (tail_open(t, first, true) != 0)
				return AUDIT_CLI_RUNTIME;
			continue;
		}
		nanosleep(&ts, NULL);
	}
}

/* <data_dir>/audit of the node's config (--config, RON_CONFIG, else the
 * default), as the other commands read it. 0, or an exit code. */
static int tail_dir_of_config(const char *config, char *out, size_t len)
{
	node_opts o = { .config_path = config };
	char err[CONFIG_ERR_MAX];
	mn_config cfg;
	int r = 0;

	if (node_load_config(&o, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "macronode audit tail: config error: %s\n", err);
		r = AUDIT_CLI_USAGE;
	} else if (cfg.amnesia) {
		fputs("macronode audit tail: this node runs in amnesia mode: its audit log is kept "
		      "in memory only; read it with GET /api/v1/audit/recent on the admin plane\n",
		      stderr);
		r = AUDIT_CLI_RUNTIME;
	} else if ((size_t)snprintf(out, len, "%s/audit", cfg.data_dir) >= len) {
		fputs("macronode audit tail: paths.data_dir: too long\n", stderr);
		r = AUDIT_CLI_USAGE;
	}
	config_free(&cfg);
	return r;
}

static int cmd_tail(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from-start", no_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t count = 0, interval = AUDIT_CLI_TAIL_MS;
	bool from_start = false;
	tail_state t = { .fd = -1 };
	const char *config = getenv("RON_CONFIG");
	char dir[CONFIG_PATH_MAX + 8];
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h')
			return audit_usage(NULL);
		if (c == 's')
			from_start = true;
		else if (c == 'n' && util_parse_u64(optarg, &count) == 0)
			continue;
		else if (c == 'i' && util_parse_u64(optarg, &interval) == 0 && interval >= 1 &&
		         interval <= AUDIT_CLI_TAIL_MAX_MS)
			continue;
		else if (c == 'c')
			config = optarg;
		else
			return audit_usage("bad option (--count N, --interval 1..60000 ms, --config FILE)");
	}
	if (optind + 1 < argc)
		return audit_usage("tail takes at most one directory");
	if (optind < argc)
		t.dir = argv[optind];
	else if ((r = tail_dir_of_config(config, dir, sizeof dir)) != 0)
		return r;
	else
		t.dir = dir;
	t.lr = malloc(sizeof *t.lr);
	if (!t.lr)
		return AUDIT_CLI_RUNTIME;
	r = tail_loop(&t, from_start, count, interval);
	if (t.fd >= 0)
		close(t.fd);
	free(t.lr);
	return r;
}

/* The node's config for pubkey: --config / RON_CONFIG and --data-dir; with
 * neither given and no config file, the defaults and RON_* (as `key`). */
static int pubkey_config(node_opts *o, bool explicit, mn_config *c)
{
	char err[CONFIG_ERR_MAX + 2 * CONFIG_PATH_MAX];

	if (node_load_config(o, c, err, sizeof err) == 0)
		return 0;
	config_free(c);
	if (explicit) {
		fprintf(stderr, "macronode audit pubkey: config error: %s\n", err);
		return -1;
	}
	config_defaults(c);
	if (config_apply_env(c, err, sizeof err) != 0) {
		fprintf(stderr, "macronode audit pubkey: %s\n", err);
		config_free(c);
		return -1;
	}
	return 0;
}

/* The KEK the identity is sealed with: --kek FILE; else "<KEYFILE>.kek"
 * when it exists (selftest-write's); else the node's, found as `run` and
 * `key` find it (keys.kek_file, RON_KEK_FILE, $CREDENTIALS_DIRECTORY/
 * macronode.kek, <data_dir>.kek). NULL and *failed false: none exists (a
 * clear-text key file still loads). */
static kek *pubkey_kek(const char *kek_file, const char *keyfile, const mn_config *c,
                       bool *failed)
{
	char err[256], kpath[PATH_MAX];
	kek *k;

	*failed = false;
	if (!kek_file && (size_t)snprintf(kpath, sizeof kpath, "%s.kek", keyfile) < sizeof kpath &&
	    access(kpath, F_OK) == 0)
		kek_file = kpath;
	if (!kek_file)
		return cli_kek_from(c, "macronode audit pubkey", failed);
	if (!(k = kek_load(kek_file, err, sizeof err))) {
		fprintf(stderr, "macronode audit pubkey: %s\n", err);
		*failed = true;
	}
	return k;
}

static int cmd_pubkey(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kek", required_argument, NULL, 'k' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	node_opts o = { .config_path = getenv("RON_CONFIG") };
	bool explicit = o.config_path != NULL, failed;
	const char *kek_file = NULL;
	char err[256], hex[2 * IDENTITY_PK_LEN + 1], keyfile[CONFIG_PATH_MAX + 32];
	node_identity id;
	mn_config cfg;
	kek *k;
	int c, lr;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'k')
			kek_file = optarg;
		else if (c == 'c')
			o.config_path = optarg, explicit = true;
		else if (c == 'd' && o.nov < NODE_MAX_OVERRIDES)
			o.ov[o.nov++] = (node_override){ "paths.data_dir", optarg }, explicit = true;
		else
			return audit_usage("bad option (--kek FILE, --config FILE, --data-dir DIR)");
	}
	if (optind + 1 < argc)
		return audit_usage("pubkey takes at most one identity key file");
	if (pubkey_config(&o, explicit, &cfg) != 0)
		return AUDIT_CLI_RUNTIME;
	if (optind < argc)
		snprintf(keyfile, sizeof keyfile, "%s", argv[optind]);
	else if (config_identity_file(&cfg, keyfile, sizeof keyfile) != 0) {
		fputs("macronode audit pubkey: node.identity_file: path too long\n", stderr);
		config_free(&cfg);
		return AUDIT_CLI_RUNTIME;
	}
	k = pubkey_kek(kek_file, keyfile, &cfg, &failed);
	config_free(&cfg);
	if (failed)
		return AUDIT_CLI_RUNTIME;
	lr = identity_load(&id, keyfile, k, err, sizeof err);
	kek_free(k);
	if (lr != 0) {
		fprintf(stderr, "macronode audit pubkey: %s\n", err);
		return AUDIT_CLI_RUNTIME;
	}
	util_hex_encode(id.pk, IDENTITY_PK_LEN, hex);
	identity_free(&id);
	printf("%s\n", hex);
	return AUDIT_CLI_OK;
}

int audit_cli_main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return audit_usage(argc < 2 ? "which one: verify, tail or pubkey?" : NULL);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "tail") == 0)
		return cmd_tail(argc - 1, argv + 1);
	if (strcmp(argv[1], "pubkey") == 0)
		return cmd_pubkey(argc - 1, argv + 1);
	if (strcmp(argv[1], "selftest-write") == 0)
		return audit_selftest_write(argc - 1, argv + 1);
	return audit_usage("unknown audit command");
}
