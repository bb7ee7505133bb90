/*
 * audit_json.c — canonical JSON for ron-audit v1 (see audit_json.h).
 *
 * jansson reads the text (refusing duplicate keys and bad UTF-8); this file
 * writes the one canonical spelling and the strict parser compares the two,
 * so "accepted" and "already canonical" are the same thing by construction.
 */
#include "core/audit/audit_json.h"
#include "lib/util.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uninorm.h>
#include <unistr.h>

static int aj_put(audit_buf *b, const void *p, size_t n)
{
	if (n > b->cap - b->len)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

static bool aj_is_ascii(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 0x80)
			return false;
	return true;
}

bool audit_json_is_nfc(const char *s, size_t n)
{
	const uint8_t *u = (const uint8_t *)s;
	size_t outlen = 0;
	uint8_t *nfc;
	bool same;

	if (aj_is_ascii(u, n))
		return true;              /* ASCII is its own NFC */
	if (u8_check(u, n) != NULL)
		return false;
	nfc = u8_normalize(UNINORM_NFC, u, n, NULL, &outlen);
	if (!nfc)
		return false;
	same = outlen == n && memcmp(nfc, u, n) == 0;
	free(nfc);
	return same;
}

/* serde_json's escaping: the short forms, \u00xx for other controls. */
static int aj_put_escaped(audit_buf *b, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	if (aj_put(b, "\"", 1) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		char esc[6] = { '\\', 0, 0, 0, 0, 0 };
		size_t el = 2;

		switch (c) {
		case '"':  esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			if (c >= 0x20) {
				if (aj_put(b, &c, 1) != 0)
					return -1;
				continue;
			}
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			el = 6;
		}
		if (aj_put(b, esc, el) != 0)
			return -1;
	}
	return aj_put(b, "\"", 1);
}

/* A string in canonical form: valid UTF-8, NFC (normalised or refused). */
static int aj_put_string(audit_buf *b, const char *s, size_t n, audit_json_mode mode,
                         char *err, size_t errlen)
{
	const uint8_t *u = (const uint8_t *)s;
	uint8_t *nfc;
	size_t outlen = 0;
	int r;

	if (aj_is_ascii(u, n))
		return aj_put_escaped(b, u, n) == 0 ? 0 : util_fail(err, errlen, "record too large");
	if (u8_check(u, n) != NULL)
		return util_fail(err, errlen, "a string is not valid UTF-8");
	nfc = u8_normalize(UNINORM_NFC, u, n, NULL, &outlen);
	if (!nfc)
		return util_fail(err, errlen, "cannot normalise a string (out of memory)");
	if (mode == AUDIT_JSON_STRICT && (outlen != n || memcmp(nfc, u, n) != 0)) {
		free(nfc);
		return util_fail(err, errlen, "a string is not in Unicode NFC");
	}
	r = aj_put_escaped(b, nfc, outlen);
	free(nfc);
	return r == 0 ? 0 : util_fail(err, errlen, "record too large");
}

typedef struct aj_member {
	const char   *key;     /* points at jansson's key or at nfc */
	size_t        len;
	uint8_t      *nfc;     /* owned normalised key, or NULL */
	const json_t *val;
} aj_member;

static int aj_member_cmp(const void *a, const void *b)
{
	const aj_member *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static void aj_members_free(aj_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].nfc);
	free(m);
}

/* The members of o, keys normalised (NORMALIZE) and sorted bytewise. */
static aj_member *aj_members(const json_t *o, audit_json_mode mode, size_t *count,
                             char *err, size_t errlen)
{
	size_t n = json_object_size(o), i = 0;
	aj_member *m;
	const char *k;
	json_t *v;

	if (n > AUDIT_JSON_MAX_KEYS) {
		util_fail(err, errlen, "an object has more than %u keys", AUDIT_JSON_MAX_KEYS);
		return NULL;
	}
	m = calloc(n ? n : 1, sizeof *m);
	if (!m) {
		util_fail(err, errlen, "out of memory");
		return NULL;
	}
	json_object_foreach((json_t *)o, k, v) {
		m[i].key = k;
		m[i].len = strlen(k);
		m[i].val = v;
		if (mode == AUDIT_JSON_NORMALIZE && !aj_is_ascii((const uint8_t *)k, m[i].len) &&
		    u8_check((const uint8_t *)k, m[i].len) == NULL) {
			size_t outlen = 0;
			m[i].nfc = u8_normalize(UNINORM_NFC, (const uint8_t *)k, m[i].len, NULL, &outlen);
			if (!m[i].nfc) {
				aj_members_free(m, i + 1);
				util_fail(err, errlen, "cannot normalise a key (out of memory)");
				return NULL;
			}
			m[i].key = (const char *)m[i].nfc;
			m[i].len = outlen;
		}
		i++;
	}
	qsort(m, n, sizeof *m, aj_member_cmp);
	for (i = 1; i < n; i++) {
		if (aj_member_cmp(&m[i - 1], &m[i]) == 0) {
			aj_members_free(m, n);
			util_fail(err, errlen, "duplicate key after NFC normalisation");
			return NULL;
		}
	}
	*count = n;
	return m;
}

static int aj_encode(const json_t *v, audit_json_mode mode, audit_buf *b, unsigned depth,
                     char *err, size_t errlen);

static int aj_encode_object(const json_t *v, audit_json_mode mode, audit_buf *b, unsigned depth,
                            char *err, size_t errlen)
{
	size_t n = 0;
	aj_member *m = aj_members(v, mode, &n, err, errlen);
	int r = 0;

	if (!m)
		return -1;
	if (aj_put(b, "{", 1) != 0)
		r = util_fail(err, errlen, "record too large");
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (i > 0 && aj_put(b, ",", 1) != 0)
			r = util_fail(err, errlen, "record too large");
		else if (aj_put_string(b, m[i].key, m[i].len, mode, err, errlen) != 0)
			r = -1;
		else if (aj_put(b, ":", 1) != 0)
			r = util_fail(err, errlen, "record too large");
		else
			r = aj_encode(m[i].val, mode, b, depth + 1, err, errlen);
	}
	if (r == 0 && aj_put(b, "}", 1) != 0)
		r = util_fail(err, errlen, "record too large");
	aj_members_free(m, n);
	return r;
}

static int aj_encode_array(const json_t *v, audit_json_mode mode, audit_buf *b, unsigned depth,
                           char *err, size_t errlen)
{
	size_t i;
	json_t *e;

	if (aj_put(b, "[", 1) != 0)
		return util_fail(err, errlen, "record too large");
	json_array_foreach((json_t *)v, i, e) {
		if (i > 0 && aj_put(b, ",", 1) != 0)
			return util_fail(err, errlen, "record too large");
		if (aj_encode(e, mode, b, depth + 1, err, errlen) != 0)
			return -1;
	}
	return aj_put(b, "]", 1) == 0 ? 0 : util_fail(err, errlen, "record too large");
}

static int aj_encode(const json_t *v, audit_json_mode mode, audit_buf *b, unsigned depth,
                     char *err, size_t errlen)
{
	char num[24];
	int n;

	if (depth > AUDIT_JSON_MAX_DEPTH)
		return util_fail(err, errlen, "nested deeper than %u levels", AUDIT_JSON_MAX_DEPTH);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return aj_encode_object(v, mode, b, depth, err, errlen);
	case JSON_ARRAY:
		return aj_encode_array(v, mode, b, depth, err, errlen);
	case JSON_STRING:
		return aj_put_string(b, json_string_value(v), json_string_length(v), mode, err, errlen);
	case JSON_INTEGER:
		n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if (n <= 0 || aj_put(b, num, (size_t)n) != 0)
			return util_fail(err, errlen, "record too large");
		return 0;
	case JSON_REAL:
		return util_fail(err, errlen, "a number is not an integer (floats are not allowed)");
	case JSON_TRUE:
		return aj_put(b, "true", 4) == 0 ? 0 : util_fail(err, errlen, "record too large");
	case JSON_FALSE:
		return aj_put(b, "false", 5) == 0 ? 0 : util_fail(err, errlen, "record too large");
	case JSON_NULL:
		return aj_put(b, "null", 4) == 0 ? 0 : util_fail(err, errlen, "record too large");
	}
	return util_fail(err, errlen, "unknown JSON type");
}

int audit_json_encode(const json_t *v, audit_json_mode mode, audit_buf *out, char *err,
                      size_t errlen)
{
	if (!v)
		return util_fail(err, errlen, "no value");
	return aj_encode(v, mode, out, 0, err, errlen);
}

/* The first byte where s and the canonical form part, for the message. */
static size_t aj_diff_at(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0;

	while (i < an && i < bn && a[i] == b[i])
		i++;
	return i;
}

json_t *audit_json_parse(const char *s, size_t n, size_t max, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v;
	audit_buf b;
	char *canon;

	if (n > max) {
		util_fail(err, errlen, "%zu bytes, more than the %zu allowed", n, max);
		return NULL;
	}
	v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!v) {
		util_fail(err, errlen, "not JSON: %s at byte %d", je.text, je.position);
		return NULL;
	}
	canon = malloc(n ? n : 1);
	if (!canon) {
		json_decref(v);
		util_fail(err, errlen, "out of memory");
		return NULL;
	}
	b = (audit_buf){ .data = canon, .cap = n };
	if (audit_json_encode(v, AUDIT_JSON_STRICT, &b, err, errlen) != 0) {
		if (b.len == b.cap && strstr(err ? err : "", "too large"))
			util_fail(err, errlen, "not canonical JSON from byte %zu",
			        aj_diff_at(s, n, canon, b.len));
		free(canon);
		json_decref(v);
		return NULL;
	}
	if (b.len != n || memcmp(canon, s, n) != 0) {
		util_fail(err, errlen, "not canonical JSON from byte %zu (whitespace, key order, "
		        "escapes or number form)", aj_diff_at(s, n, canon, b.len));
		free(canon);
		json_decref(v);
		return NULL;
	}
	free(canon);
	return v;
}
