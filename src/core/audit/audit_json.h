/*
 * audit_json.h — the canonical JSON of ron-audit v1 (docs/audit.md).
 *
 * Canonical form: compact (no whitespace), object keys sorted bytewise at
 * every level and unique, strings in Unicode NFC, integers only (no floats,
 * no exponent, no "-0", within int64), strings escaped as serde_json does
 * (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx lowercase, every
 * other byte raw UTF-8). A canonical text therefore never holds a raw
 * newline, which is what lets a segment keep one record per line.
 *
 * Two directions:
 *  - audit_json_encode(..., AUDIT_JSON_NORMALIZE) turns a value a writer built
 *    (any key order, strings in any normal form) into canonical bytes;
 *  - audit_json_parse is strict: it accepts only bytes that are already the
 *    canonical encoding of their value (parse, then re-encode, then compare
 *    byte for byte), so parse → encode is the identity on every accepted
 *    input. Duplicate keys, floats, bad UTF-8, non-NFC strings, nesting deeper
 *    than AUDIT_JSON_MAX_DEPTH and anything longer than the caller's cap are
 *    refused with a message saying which.
 *
 * Values are jansson trees (json_t); the caller owns what it passes and
 * frees what audit_json_parse returns (json_decref).
 */
#ifndef MN_CORE_AUDIT_JSON_H
#define MN_CORE_AUDIT_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define AUDIT_JSON_MAX_DEPTH 8u     /* nested objects/arrays below the top level */
#define AUDIT_JSON_MAX_KEYS  256u   /* keys in one object */
#define AUDIT_JSON_ERR_MAX   160u

/* A bounded output buffer: encode never writes past cap. */
typedef struct audit_buf {
	char  *data;     /* borrowed storage of cap bytes */
	size_t len;
	size_t cap;
} audit_buf;

typedef enum {
	AUDIT_JSON_STRICT = 0,     /* a non-NFC string is an error */
	AUDIT_JSON_NORMALIZE = 1,  /* strings and keys are NFC-normalised */
} audit_json_mode;

/* Append the canonical encoding of v to out. 0, or -1 with err (too large,
 * a float, bad UTF-8, a non-NFC string in STRICT mode, too deep, duplicate
 * keys after normalisation). On -1 out->len is unspecified. */
__attribute__((warn_unused_result))
int audit_json_encode(const json_t *v, audit_json_mode mode, audit_buf *out, char *err,
                      size_t errlen);

/* Strictly parse n bytes that must be canonical JSON (see above) of at most
 * max bytes. Returns a new reference (caller json_decref's), or NULL with err. */
json_t *audit_json_parse(const char *s, size_t n, size_t max, char *err, size_t errlen);

/* Is s[0..n) valid UTF-8 in NFC? */
bool audit_json_is_nfc(const char *s, size_t n);

#endif
