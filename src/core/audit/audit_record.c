/*
 * audit_record.c — ron-audit v1 records (see audit_record.h).
 */
#include "core/audit/audit_record.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit/audit_json.h"
#include "lib/util.h"

/* The keys of a stored record, sorted (the canonical order). */
static const char *const rec_keys[] = {
	"actor", "attrs", "kind", "prev", "reason", "self_hash", "seq", "stream",
	"subject", "ts_ms", "v", "writer_id",
};
#define REC_NKEYS (sizeof rec_keys / sizeof rec_keys[0])

bool audit_stream_is_valid(const char *s, size_t n)
{
	if (n == 0 || n > AUDIT_STREAM_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

static json_t *rec_obj(const json_t *o)
{
	return o ? json_deep_copy(o) : json_object();
}

/* The record of e without self_hash, as a jansson object (caller decrefs). */
static json_t *rec_build(const audit_entry *e, uint64_t seq, const uint8_t *prev,
                         char *err, size_t errlen)
{
	char prevtext[B3_CID_LEN + 1];
	json_t *o;

	if (!e->stream || !audit_stream_is_valid(e->stream, strlen(e->stream))) {
		util_fail(err, errlen, "bad stream name (1..%u of [A-Za-z0-9._:@-])", AUDIT_STREAM_MAX);
		return NULL;
	}
	if (seq > INT64_MAX || e->ts_ms > INT64_MAX || (seq == 0) != (prev == NULL)) {
		util_fail(err, errlen, "seq/ts_ms out of range or prev does not fit seq");
		return NULL;
	}
	if ((e->actor && !json_is_object(e->actor)) || (e->subject && !json_is_object(e->subject)) ||
	    (e->attrs && !json_is_object(e->attrs))) {
		util_fail(err, errlen, "actor, subject and attrs must be objects");
		return NULL;
	}
	if (prev)
		b3_cid_format(prev, prevtext);
	else
		snprintf(prevtext, sizeof prevtext, "%s", AUDIT_GENESIS_PREV);
	o = json_object();
	if (!o)
		return NULL;
	if (json_object_set_new(o, "v", json_integer(AUDIT_VERSION)) != 0 ||
	    json_object_set_new(o, "stream", json_string(e->stream)) != 0 ||
	    json_object_set_new(o, "seq", json_integer((json_int_t)seq)) != 0 ||
	    json_object_set_new(o, "ts_ms", json_integer((json_int_t)e->ts_ms)) != 0 ||
	    json_object_set_new(o, "kind", json_string(e->kind ? e->kind : "")) != 0 ||
	    json_object_set_new(o, "writer_id", json_string(e->writer_id ? e->writer_id : "")) != 0 ||
	    json_object_set_new(o, "reason", json_string(e->reason ? e->reason : "")) != 0 ||
	    json_object_set_new(o, "actor", rec_obj(e->actor)) != 0 ||
	    json_object_set_new(o, "subject", rec_obj(e->subject)) != 0 ||
	    json_object_set_new(o, "attrs", rec_obj(e->attrs)) != 0 ||
	    json_object_set_new(o, "prev", json_string(prevtext)) != 0) {
		json_decref(o);
		util_fail(err, errlen, "kind, writer_id and reason must be UTF-8 (or out of memory)");
		return NULL;
	}
	return o;
}

int audit_record_canonical(const audit_entry *e, uint64_t seq, const uint8_t *prev,
                           char *out, size_t cap, size_t *len, char *err, size_t errlen)
{
	json_t *o = rec_build(e, seq, prev, err, errlen);
	audit_buf b = { .data = out, .cap = cap < AUDIT_RECORD_MAX ? cap : AUDIT_RECORD_MAX };
	int r;

	if (!o)
		return -1;
	r = audit_json_encode(o, AUDIT_JSON_NORMALIZE, &b, err, errlen);
	json_decref(o);
	*len = b.len;
	return r;
}

int audit_record_encode(const audit_entry *e, uint64_t seq, const uint8_t *prev,
                        char *out, size_t cap, size_t *len, uint8_t self_hash[B3_OUT_LEN],
                        char *err, size_t errlen)
{
	json_t *o = rec_build(e, seq, prev, err, errlen);
	audit_buf b = { .data = out, .cap = cap < AUDIT_RECORD_MAX ? cap : AUDIT_RECORD_MAX };
	char hash[B3_CID_LEN + 1];
	int r;

	if (!o)
		return -1;
	r = audit_json_encode(o, AUDIT_JSON_NORMALIZE, &b, err, errlen);
	if (r == 0) {
		b3_hash(b.data, b.len, self_hash);
		b3_cid_format(self_hash, hash);
		b.len = 0;
		if (json_object_set_new(o, "self_hash", json_string(hash)) != 0)
			r = util_fail(err, errlen, "out of memory");
		else
			r = audit_json_encode(o, AUDIT_JSON_NORMALIZE, &b, err, errlen);
	}
	json_decref(o);
	*len = b.len;
	return r;
}

/* A string member of o, or NULL. */
static const char *rec_str(const json_t *o, const char *key, size_t *n)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_string(v))
		return NULL;
	*n = json_string_length(v);
	return json_string_value(v);
}

static int rec_uint(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int rec_check_shape(const json_t *o, char *err, size_t errlen)
{
	uint64_t v;
	size_t n;

	if (!json_is_object(o))
		return util_fail(err, errlen, "not a JSON object");
	for (size_t i = 0; i < REC_NKEYS; i++)
		if (!json_object_get(o, rec_keys[i]))
			return util_fail(err, errlen, "missing key \"%s\"", rec_keys[i]);
	if (json_object_size(o) != REC_NKEYS)
		return util_fail(err, errlen, "unknown keys (a v1 record has exactly %zu)", REC_NKEYS);
	if (rec_uint(o, "v", &v) != 0 || v != AUDIT_VERSION)
		return util_fail(err, errlen, "\"v\" is not 1");
	if (!rec_str(o, "kind", &n) || !rec_str(o, "writer_id", &n) || !rec_str(o, "reason", &n))
		return util_fail(err, errlen, "kind, writer_id and reason must be strings");
	if (!json_is_object(json_object_get(o, "actor")) ||
	    !json_is_object(json_object_get(o, "subject")) ||
	    !json_is_object(json_object_get(o, "attrs")))
		return util_fail(err, errlen, "actor, subject and attrs must be objects");
	return 0;
}

static int rec_chain_fields(const json_t *o, audit_record *r, char *err, size_t errlen)
{
	const char *s;
	size_t n;

	s = rec_str(o, "stream", &n);
	if (!s || !audit_stream_is_valid(s, n))
		return util_fail(err, errlen, "bad stream name");
	memcpy(r->stream, s, n);
	r->stream[n] = '\0';
	if (rec_uint(o, "seq", &r->seq) != 0 || rec_uint(o, "ts_ms", &r->ts_ms) != 0)
		return util_fail(err, errlen, "seq and ts_ms must be unsigned integers");
	s = rec_str(o, "prev", &n);
	if (!s)
		return util_fail(err, errlen, "prev must be a string");
	r->genesis = n == 4 && memcmp(s, AUDIT_GENESIS_PREV, 4) == 0;
	if (!r->genesis && b3_cid_parse(s, n, r->prev) != 0)
		return util_fail(err, errlen, "prev is neither \"b3:0\" nor a b3 id");
	if (r->genesis != (r->seq == 0))
		return util_fail(err, errlen, "prev \"b3:0\" belongs to seq 0 and only to it");
	s = rec_str(o, "self_hash", &n);
	if (!s || b3_cid_parse(s, n, r->self_hash) != 0)
		return util_fail(err, errlen, "self_hash is not a b3 id");
	return 0;
}

/* self_hash must be BLAKE3 of the canonical record without it. */
static int rec_check_hash(json_t *o, const audit_record *r, size_t n, char *err, size_t errlen)
{
	char *buf = malloc(n ? n : 1);
	audit_buf b = { .data = buf, .cap = n };
	uint8_t h[B3_OUT_LEN];
	int rc;

	if (!buf)
		return util_fail(err, errlen, "out of memory");
	if (json_object_del(o, "self_hash") != 0 ||
	    audit_json_encode(o, AUDIT_JSON_STRICT, &b, err, errlen) != 0) {
		free(buf);
		return util_fail(err, errlen, "cannot re-encode the record");
	}
	b3_hash(b.data, b.len, h);
	free(buf);
	rc = b3_equal(h, r->self_hash) ? 0 : -1;
	return rc == 0 ? 0 : util_fail(err, errlen, "self_hash does not match the record's bytes");
}

int audit_record_parse(const char *s, size_t n, audit_record *out, char *err, size_t errlen)
{
	json_t *o = audit_json_parse(s, n, AUDIT_RECORD_MAX, err, errlen);
	int r;

	memset(out, 0, sizeof *out);
	if (!o)
		return -1;
	r = rec_check_shape(o, err, errlen);
	if (r == 0)
		r = rec_chain_fields(o, out, err, errlen);
	if (r == 0)
		r = rec_check_hash(o, out, n, err, errlen);
	json_decref(o);
	return r;
}
