/*
 * name.h — what a name is (docs/names.md "What a name is"): the one check
 * every place that takes a name applies — the gateway before it asks the
 * index, the index messages' decoder, and the name record decoder for
 * records that come from the network.
 *
 * A name is 1..NAME_MAX_LEN bytes of UTF-8 in Unicode NFC, made of segments
 * separated by '/'. No segment is empty, "." or "..". Every character is a
 * letter (general category L), a combining mark (M) that follows a letter,
 * digit or mark of its segment, a decimal digit (Nd), or one of '-', '.',
 * '_'. Nothing else: no control character, no whitespace, no other
 * punctuation or symbol, no unassigned code point. A name that is not
 * already NFC is refused, never rewritten: the name a tenant signs is the
 * name everyone resolves, byte for byte.
 *
 * Names are compared as bytes: case matters ("Alice" is not "alice").
 * Confusable characters across scripts are not judged here.
 *
 * Pure functions: nothing here allocates for long (libunistring's NFC
 * buffer is freed before return), logs or keeps state.
 */
#ifndef MN_CORE_DHT_NAME_H
#define MN_CORE_DHT_NAME_H

#include <stddef.h>

#define NAME_MAX_LEN  255u   /* bytes of UTF-8 */
#define NAME_MSG_MAX  160u   /* a refusal message, NUL included */

/* Which rule a name breaks; the names of the values (name_rule_name) are
 * part of the interface: they appear in 400 messages and in docs/names.md. */
typedef enum name_rule {
	NAME_OK = 0,
	NAME_EMPTY,          /* "empty": no bytes */
	NAME_TOO_LONG,       /* "too_long": more than NAME_MAX_LEN bytes */
	NAME_BAD_UTF8,       /* "bad_utf8": not well-formed UTF-8 */
	NAME_EMPTY_SEGMENT,  /* "empty_segment": leading, trailing or doubled '/' */
	NAME_DOT_SEGMENT,    /* "dot_segment": a segment "." or ".." */
	NAME_BAD_CHAR,       /* "bad_char": a character outside the charset */
	NAME_NOT_NFC,        /* "not_nfc": not in Unicode Normalization Form C */
	NAME_RULE_COUNT,
} name_rule;

/* "empty", "too_long", …; "ok" for NAME_OK, "unknown" out of range. */
const char *name_rule_name(name_rule r);

/*
 * Check s[0..n) (need not be NUL-terminated). NAME_OK, or the first rule
 * broken, in the order of the enum. msg (msglen bytes, may be NULL) gets a
 * sentence that names the rule and, for a character, its byte offset and
 * code point — never more than NAME_MSG_MAX - 1 bytes, and never the name
 * itself (it may be hostile bytes).
 */
name_rule name_check(const char *s, size_t n, char *msg, size_t msglen);

#endif
