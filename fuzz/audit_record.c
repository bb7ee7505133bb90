/*
 * audit_record.c — libFuzzer target for the audit log's parsers and its
 * offline verifier (src/core/audit/): what `macronode audit verify` reads
 * from a copied, possibly hostile, directory.
 *
 * The first byte picks the mode, the rest is the input:
 *   0  a stored record        audit_record_parse
 *   1  a checkpoint line      audit_checkpoint_parse
 *   2  a segment header line  audit_header_parse
 *   3  a whole segment        audit_verify_segment_bytes (header, records,
 *                             chains, tree)
 *   4  any canonical JSON     audit_json_parse
 *   5  an inclusion proof     audit_merkle_verify on raw bytes
 * Run:
 *   build-fuzz/fuzz/fuzz_audit_record -max_len=20000 fuzz/corpus/audit_record
 *
 * Invariants (abort on violation, so libFuzzer reports them):
 *   - whatever is accepted re-encodes to exactly the input (canonical form
 *     is the only form), and never holds a raw newline;
 *   - an accepted record's self_hash is BLAKE3 of the input without it
 *     (checked by re-encoding through the writer's path);
 *   - error messages are NUL-terminated within their buffers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit/audit_checkpoint.h"
#include "core/audit/audit_json.h"
#include "core/audit/audit_merkle.h"
#include "core/audit/audit_record.h"
#include "core/audit/audit_segment.h"
#include "core/audit/audit_verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_out[AUDIT_LINE_MAX + 1];

static void fz_same(const char *in, size_t n, const char *out, size_t outn)
{
	if (outn != n || memcmp(in, out, n) != 0 || memchr(in, '\n', n))
		abort();
}

static void fz_record(const char *s, size_t n)
{
	char err[AUDIT_ERR_MAX];
	audit_record r;

	if (audit_record_parse(s, n, &r, err, sizeof err) != 0) {
		if (!memchr(err, '\0', sizeof err))
			abort();
		return;
	}
	json_t *v = audit_json_parse(s, n, AUDIT_RECORD_MAX, NULL, 0);
	audit_buf b = { .data = fz_out, .cap = sizeof fz_out };
	if (!v || audit_json_encode(v, AUDIT_JSON_STRICT, &b, NULL, 0) != 0)
		abort();
	json_decref(v);
	fz_same(s, n, fz_out, b.len);
}

static void fz_checkpoint(const char *s, size_t n)
{
	audit_checkpoint c;
	size_t len = 0;

	if (audit_checkpoint_parse(s, n, &c, NULL, 0) != 0)
		return;
	if (audit_checkpoint_encode(&c, fz_out, sizeof fz_out, &len) != 0)
		abort();
	fz_same(s, n, fz_out, len);
}

static void fz_header(const char *s, size_t n)
{
	static audit_state st;
	size_t len = 0;

	if (audit_header_parse(s, n, &st, NULL, 0) != 0)
		return;
	if (audit_header_encode(&st, fz_out, sizeof fz_out, &len) != 0)
		abort();
	fz_same(s, n, fz_out, len);
}

static void fz_json(const char *s, size_t n)
{
	json_t *v = audit_json_parse(s, n, AUDIT_RECORD_MAX, NULL, 0);
	audit_buf b = { .data = fz_out, .cap = sizeof fz_out };

	if (!v)
		return;
	if (audit_json_encode(v, AUDIT_JSON_STRICT, &b, NULL, 0) != 0)
		abort();
	json_decref(v);
	fz_same(s, n, fz_out, b.len);
}

static void fz_proof(const uint8_t *p, size_t n)
{
	static audit_proof pr;
	uint8_t leaf[B3_OUT_LEN] = { 0 }, root[B3_OUT_LEN] = { 0 };

	memset(&pr, 0, sizeof pr);
	memcpy(&pr, p, n < sizeof pr ? n : sizeof pr);
	pr.len %= AUDIT_MERKLE_MAX_DEPTH + 2;        /* also one past the cap */
	(void)audit_merkle_verify(leaf, &pr, root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static audit_verify_report rep;
	const char *s = (const char *)data + 1;
	size_t n;
	int judged;

	if (size < 1)
		return 0;
	n = size - 1;
	switch (data[0] % 6) {
	case 0: fz_record(s, n); break;
	case 1: fz_checkpoint(s, n); break;
	case 2: fz_header(s, n); break;
	case 3:
		judged = audit_verify_segment_bytes(s, n, &rep);
		if (judged != 0 && !memchr(rep.what, '\0', sizeof rep.what))
			abort();
		break;
	case 4: fz_json(s, n); break;
	default: fz_proof(data + 1, n); break;
	}
	return 0;
}
