/*
 * audit_selftest.c — `macronode audit selftest-write DIR N [options]`, a
 * hidden test helper (not in --help; docs/audit.md "Testing"): it writes N
 * records into DIR through the same library calls the audit service makes
 * (open with recovery, append, sync per batch, checkpoint, retention), so
 * tests/integration/test_audit_verify.py can build real logs and damage
 * them. Records go round-robin to the streams admin, ingress and policy;
 * --seed changes their content (two logs with the same key but different
 * roots); a checkpoint is signed every K records and at the end.
 *
 *   --key FILE            identity key file (created 0600 when missing);
 *                         default: a fresh identity for this run
 *   --segment-max BYTES   rotate segments past this (>= 65536)
 *   --checkpoint-every K  default 10
 *   --seed S              default 0
 *   --batch B             records per sync (1..1024, default 7)
 *   --retain-bytes B      call retention with this size limit at the end
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "core/audit/audit_log.h"
#include "core/keys/kek.h"
#include "lib/util.h"
#include "node/node.h"

#define SELFTEST_MAX_RECORDS 1000000u
#define SELFTEST_TS0         1700000000000ull

typedef struct selftest_opts {
	const char *dir;
	const char *key;
	uint64_t    n, segmax, every, seed, batch, retain;
} selftest_opts;

static int selftest_parse(int argc, char **argv, selftest_opts *o)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' },
		{ "segment-max", required_argument, NULL, 'm' },
		{ "checkpoint-every", required_argument, NULL, 'c' },
		{ "seed", required_argument, NULL, 's' },
		{ "batch", required_argument, NULL, 'b' },
		{ "retain-bytes", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (selftest_opts){ .every = 10, .batch = 7 };
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		uint64_t *dst = c == 'm' ? &o->segmax : c == 'c' ? &o->every : c == 's' ? &o->seed
		              : c == 'b' ? &o->batch : c == 'r' ? &o->retain : NULL;
		if (c == 'k')
			o->key = optarg;
		else if (!dst || util_parse_u64(optarg, dst) != 0)
			return -1;
	}
	if (optind + 2 != argc || util_parse_u64(argv[optind + 1], &o->n) != 0 ||
	    o->n > SELFTEST_MAX_RECORDS || o->every == 0 || o->batch == 0 ||
	    o->batch > AUDIT_BATCH_MAX_RECORDS)
		return -1;
	o->dir = argv[optind];
	return 0;
}

/* The KEK beside a test key file: "<key>.kek", created when missing. */
static int selftest_kek(const char *key, kek **out, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if ((size_t)snprintf(path, sizeof path, "%s.kek", key) >= sizeof path) {
		snprintf(err, errlen, "%s: path too long", key);
		return -1;
	}
	if (access(path, F_OK) != 0 && kek_create(path, err, errlen) != 0)
		return -1;
	*out = kek_load(path, err, errlen);
	return *out ? 0 : -1;
}

static int selftest_append(audit_log *l, const selftest_opts *o, uint64_t i, char *err,
                           size_t errlen)
{
	static const char *const streams[] = { "admin", "ingress", "policy" };
	json_t *attrs = json_pack("{s:I,s:I,s:s}", "i", (json_int_t)i, "seed", (json_int_t)o->seed,
	                          "note", "caf\xc3\xa9 \"quoted\"\n");
	json_t *actor = json_pack("{s:s}", "cap_id", "cap-selftest");
	audit_entry e = { .stream = streams[i % 3], .kind = "selftest", .writer_id = "cli@selftest",
	                  .reason = "ok", .ts_ms = SELFTEST_TS0 + i, .actor = actor, .attrs = attrs };
	audit_append_result r = audit_log_append(l, &e, NULL, NULL, err, errlen);

	json_decref(attrs);
	json_decref(actor);
	return r == AUDIT_LOG_OK ? 0 : -1;
}

static int selftest_run(audit_log *l, const selftest_opts *o, uint64_t start, char *err,
                        size_t errlen)
{
	audit_retain_report rr;

	for (uint64_t i = start; i < start + o->n; i++) {
		if (selftest_append(l, o, i, err, errlen) != 0)
			return -1;
		if (audit_log_pending(l) >= o->batch && audit_log_sync(l, err, errlen) != 0)
			return -1;
		if ((i + 1) % o->every == 0 &&
		    audit_log_checkpoint(l, SELFTEST_TS0 + i, NULL, err, errlen) != 0)
			return -1;
	}
	if (audit_log_checkpoint(l, SELFTEST_TS0 + start + o->n, NULL, err, errlen) != 0)
		return -1;
	if (o->retain && audit_log_retain(l, 0, 0, o->retain, &rr, err, errlen) != 0)
		return -1;
	return 0;
}

int audit_selftest_write(int argc, char **argv)
{
	selftest_opts o;
	node_identity id;
	audit_recovery rec;
	audit_log *l;
	char err[512];
	int r;

	if (selftest_parse(argc, argv, &o) != 0) {
		fprintf(stderr, "usage: macronode audit selftest-write DIR N [--key FILE] "
		        "[--segment-max BYTES] [--checkpoint-every K] [--seed S] [--batch B] "
		        "[--retain-bytes B]\n");
		return 2;
	}
	/* A key file is sealed (docs/keys.md) under "<key>.kek", made beside
	 * it (mode 0400) when missing: a test helper's convention, never the
	 * node's. */
	kek *k = NULL;
	if (o.key && selftest_kek(o.key, &k, err, sizeof err) != 0) {
		fprintf(stderr, "macronode audit selftest-write: %s\n", err);
		return 1;
	}
	int lr = o.key ? identity_load_or_create(&id, o.key, k, NULL, err, sizeof err)
	               : identity_generate(&id, err, sizeof err);
	kek_free(k);
	if (lr != 0) {
		fprintf(stderr, "macronode audit selftest-write: %s\n", err);
		return 1;
	}
	audit_log_opts lo = { .dir = o.dir, .segment_max = o.segmax, .id = &id };
	l = audit_log_open(&lo, &rec, err, sizeof err);
	r = l ? selftest_run(l, &o, rec.records, err, sizeof err) : -1;
	if (r == 0)
		printf("wrote %" PRIu64 " records (%" PRIu64 " in all)%s\n", o.n, audit_log_size(l),
		       rec.torn_bytes ? ", after cutting a torn record" : "");
	else
		fprintf(stderr, "macronode audit selftest-write: %s\n", err);
	audit_log_free(l);
	identity_free(&id);
	return r == 0 ? 0 : 1;
}
