/*
 * social_cursor.h — page cursors the social service issues (private to
 * src/svc/social). A cursor is opaque to clients: base64url (no padding) of
 *
 *   kind (1) | poslen (1) | pos (poslen) | mac (16)
 *
 * with mac = the first 16 bytes of BLAKE3 keyed by the service's cursor key
 * over "macronode/social/cursor/v1" | kind | user length | user | poslen |
 * pos. The MAC binds the cursor to its list (kind) and its user, so a
 * cursor of another list or user, a forged or edited one, or one from
 * another node is refused as not ours (400 bad_cursor) — nothing in it is
 * trusted before the MAC checks. The key lives in the table (meta), so a
 * cursor survives a restart; in amnesia it is new at every start.
 */
#ifndef MN_SVC_SOCIAL_CURSOR_H
#define MN_SVC_SOCIAL_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/social/social_msg.h"

#define SOCIAL_CURSOR_KEY_LEN 32u
#define SOCIAL_CURSOR_MAC_LEN 16u
#define SOCIAL_CURSOR_POS_MAX SOCIAL_USER_MAX   /* a user name, or a post id (8) */

/* The list a cursor belongs to. */
#define SOCIAL_CURSOR_FOLLOWERS 'r'
#define SOCIAL_CURSOR_FOLLOWING 'g'
#define SOCIAL_CURSOR_FEED      'f'

/* Write the cursor text (NUL-terminated) into out (SOCIAL_CURSOR_MAX + 1).
 * 0, or -1: pos too long (a bug). */
int social_cursor_make(const uint8_t key[SOCIAL_CURSOR_KEY_LEN], char kind, const char *user,
                       const void *pos, size_t poslen, char out[SOCIAL_CURSOR_MAX + 1]);
/* Open text issued for (kind, user): pos into out (SOCIAL_CURSOR_POS_MAX
 * bytes), its length into *poslen. 0, or -1: not a cursor we issued for it. */
int social_cursor_open(const uint8_t key[SOCIAL_CURSOR_KEY_LEN], char kind, const char *user,
                       const char *text, uint8_t out[SOCIAL_CURSOR_POS_MAX], size_t *poslen);

#endif
