/*
 * name.c — the name rules (see name.h), on libunistring: u8_check for
 * well-formed UTF-8 (no overlong forms, no surrogates, nothing past
 * U+10FFFF), the general categories of its Unicode tables for the charset,
 * u8_normalize(UNINORM_NFC) for the normal form.
 */
#include "core/dht/name.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

static const char *const name_rule_names[NAME_RULE_COUNT] = {
	[NAME_OK] = "ok",
	[NAME_EMPTY] = "empty",
	[NAME_TOO_LONG] = "too_long",
	[NAME_BAD_UTF8] = "bad_utf8",
	[NAME_EMPTY_SEGMENT] = "empty_segment",
	[NAME_DOT_SEGMENT] = "dot_segment",
	[NAME_BAD_CHAR] = "bad_char",
	[NAME_NOT_NFC] = "not_nfc",
};

const char *name_rule_name(name_rule r)
{
	return (unsigned)r < NAME_RULE_COUNT ? name_rule_names[r] : "unknown";
}

/* "bad name (<rule>): <what>", cut to the smaller of msglen and NAME_MSG_MAX. */
__attribute__((format(printf, 4, 5)))
static name_rule name_refuse(char *msg, size_t msglen, name_rule r, const char *fmt, ...)
{
	size_t cap = msglen < NAME_MSG_MAX ? msglen : NAME_MSG_MAX;
	va_list ap;
	int n;

	if (!msg || cap == 0)
		return r;
	n = snprintf(msg, cap, "bad name (%s): ", name_rule_name(r));
	if (n < 0 || (size_t)n >= cap)
		return r;
	va_start(ap, fmt);
	vsnprintf(msg + n, cap - (size_t)n, fmt, ap);
	va_end(ap);
	return r;
}

/* Segments: split at '/', none empty, "." or "..". */
static name_rule name_check_segments(const char *s, size_t n, char *msg, size_t msglen)
{
	size_t start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		size_t len = i - start;
		if (len == 0)
			return name_refuse(msg, msglen, NAME_EMPTY_SEGMENT,
			                   "empty segment at byte %zu (no leading, trailing or doubled '/')",
			                   start);
		if ((len == 1 && s[start] == '.') || (len == 2 && s[start] == '.' && s[start + 1] == '.'))
			return name_refuse(msg, msglen, NAME_DOT_SEGMENT,
			                   "segment \"%.*s\" at byte %zu (\".\" and \"..\" are not names)",
			                   (int)len, s + start, start);
		start = i + 1;
	}
	return NAME_OK;
}

static bool name_is_base(ucs4_t c)
{
	return uc_is_general_category(c, UC_CATEGORY_L) || uc_is_general_category(c, UC_CATEGORY_Nd);
}

/* The charset: letters, digits, marks after a letter/digit/mark of the same
 * segment, '-', '.', '_' and the separator. */
static name_rule name_check_chars(const uint8_t *s, size_t n, char *msg, size_t msglen)
{
	bool after_base = false;

	for (size_t i = 0; i < n;) {
		ucs4_t c;
		int len = u8_mbtouc(&c, s + i, n - i);   /* well-formed: u8_check passed */

		if (c == '/' || c == '-' || c == '.' || c == '_') {
			after_base = false;
		} else if (name_is_base(c)) {
			after_base = true;
		} else if (uc_is_general_category(c, UC_CATEGORY_M)) {
			if (!after_base)
				return name_refuse(msg, msglen, NAME_BAD_CHAR,
				                   "U+%04X at byte %zu: a combining mark must follow a "
				                   "letter or digit", (unsigned)c, i);
		} else {
			return name_refuse(msg, msglen, NAME_BAD_CHAR,
			                   "U+%04X at byte %zu is not allowed (letters, digits, combining "
			                   "marks, '-', '.', '_' and '/' only)", (unsigned)c, i);
		}
		i += (size_t)len;
	}
	return NAME_OK;
}

/* NFC: the name must already be its own normal form. libunistring's buffer
 * is our only allocation and does not outlive the call. */
static name_rule name_check_nfc(const uint8_t *s, size_t n, char *msg, size_t msglen)
{
	size_t outlen = 0;
	uint8_t *nfc = u8_normalize(UNINORM_NFC, s, n, NULL, &outlen);
	bool same;

	if (!nfc)
		return name_refuse(msg, msglen, NAME_NOT_NFC, "cannot normalize (out of memory)");
	same = outlen == n && memcmp(nfc, s, n) == 0;
	free(nfc);
	if (!same)
		return name_refuse(msg, msglen, NAME_NOT_NFC,
		                   "the name is not in Unicode NFC; normalize it (NFC) before "
		                   "publishing, it is not rewritten for you");
	return NAME_OK;
}

name_rule name_check(const char *s, size_t n, char *msg, size_t msglen)
{
	const uint8_t *u = (const uint8_t *)s;
	const uint8_t *bad;
	name_rule r;

	if (msg && msglen)
		msg[0] = '\0';
	if (n == 0)
		return name_refuse(msg, msglen, NAME_EMPTY, "a name has at least one character");
	if (n > NAME_MAX_LEN)
		return name_refuse(msg, msglen, NAME_TOO_LONG, "%zu bytes; at most %u bytes of UTF-8",
		                   n, NAME_MAX_LEN);
	if ((bad = u8_check(u, n)) != NULL)
		return name_refuse(msg, msglen, NAME_BAD_UTF8, "byte %zu is not well-formed UTF-8",
		                   (size_t)(bad - u));
	if ((r = name_check_segments(s, n, msg, msglen)) != NAME_OK ||
	    (r = name_check_chars(u, n, msg, msglen)) != NAME_OK)
		return r;
	return name_check_nfc(u, n, msg, msglen);
}
