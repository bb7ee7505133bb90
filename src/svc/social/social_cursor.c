/*
 * social_cursor.c — MAC'd page cursors (see social_cursor.h).
 */
#include "svc/social/social_cursor.h"

#include <string.h>

#include <sodium.h>

#include "lib/b3.h"

#define CURSOR_DOMAIN  "macronode/social/cursor/v1"
#define CURSOR_RAW_MAX (2u + SOCIAL_CURSOR_POS_MAX + SOCIAL_CURSOR_MAC_LEN)

_Static_assert(sodium_base64_ENCODED_LEN(CURSOR_RAW_MAX,
               sodium_base64_VARIANT_URLSAFE_NO_PADDING) <= SOCIAL_CURSOR_MAX + 1,
               "the longest cursor fits SOCIAL_CURSOR_MAX");

static void cursor_mac(const uint8_t key[SOCIAL_CURSOR_KEY_LEN], char kind, const char *user,
                       const uint8_t *pos, size_t poslen, uint8_t mac[SOCIAL_CURSOR_MAC_LEN])
{
	uint8_t buf[sizeof CURSOR_DOMAIN + 3 + SOCIAL_USER_MAX + SOCIAL_CURSOR_POS_MAX];
	uint8_t out[B3_OUT_LEN];
	size_t ulen = strnlen(user, SOCIAL_USER_MAX), n = 0;

	memcpy(buf, CURSOR_DOMAIN, sizeof CURSOR_DOMAIN - 1);
	n = sizeof CURSOR_DOMAIN - 1;
	buf[n++] = (uint8_t)kind;
	buf[n++] = (uint8_t)ulen;
	memcpy(buf + n, user, ulen);
	n += ulen;
	buf[n++] = (uint8_t)poslen;
	memcpy(buf + n, pos, poslen);
	n += poslen;
	b3_keyed_hash(key, buf, n, out);
	memcpy(mac, out, SOCIAL_CURSOR_MAC_LEN);
}

int social_cursor_make(const uint8_t key[SOCIAL_CURSOR_KEY_LEN], char kind, const char *user,
                       const void *pos, size_t poslen, char out[SOCIAL_CURSOR_MAX + 1])
{
	uint8_t raw[CURSOR_RAW_MAX];

	if (poslen > SOCIAL_CURSOR_POS_MAX)
		return -1;
	raw[0] = (uint8_t)kind;
	raw[1] = (uint8_t)poslen;
	memcpy(raw + 2, pos, poslen);
	cursor_mac(key, kind, user, raw + 2, poslen, raw + 2 + poslen);
	sodium_bin2base64(out, SOCIAL_CURSOR_MAX + 1, raw, 2 + poslen + SOCIAL_CURSOR_MAC_LEN,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

int social_cursor_open(const uint8_t key[SOCIAL_CURSOR_KEY_LEN], char kind, const char *user,
                       const char *text, uint8_t out[SOCIAL_CURSOR_POS_MAX], size_t *poslen)
{
	uint8_t raw[CURSOR_RAW_MAX], mac[SOCIAL_CURSOR_MAC_LEN];
	size_t tlen = strnlen(text, SOCIAL_CURSOR_MAX + 1), n = 0;
	const char *end = NULL;

	if (tlen == 0 || tlen > SOCIAL_CURSOR_MAX ||
	    sodium_base642bin(raw, sizeof raw, text, tlen, NULL, &n, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != text + tlen)
		return -1;
	if (n < 2 + SOCIAL_CURSOR_MAC_LEN || raw[0] != (uint8_t)kind ||
	    raw[1] > SOCIAL_CURSOR_POS_MAX || n != 2u + raw[1] + SOCIAL_CURSOR_MAC_LEN)
		return -1;
	cursor_mac(key, kind, user, raw + 2, raw[1], mac);
	if (sodium_memcmp(mac, raw + 2 + raw[1], SOCIAL_CURSOR_MAC_LEN) != 0)
		return -1;
	memcpy(out, raw + 2, raw[1]);
	*poslen = raw[1];
	return 0;
}
