/*
 * social_msg.h — the social service's verbs (docs/internal.md "Social"),
 * shared by the service (src/svc/social) and its typed client
 * (core/social/social_client.h). Transport: OAP/1 frames over
 * <runtime_dir>/social.sock (app_proto_id SOCIAL_APP_PROTO); a request's
 * frame code is its verb, a reply's its status.
 *
 *   PING                          → 200, empty
 *   FOLLOW    user, other         → 200 created (u8: the edge is new)
 *   UNFOLLOW  user, other         → 200 removed (u8: the edge existed)
 *   LIST      kind, user, cursor, limit → 200 names, next cursor ("" = end)
 *   POST      author, cid         → 202-style 200: post id, ts_ms (fanout queued)
 *   FEED      user, cursor, limit → 200 items newest first, next cursor
 *   any verb                      → 4xx/5xx: code, message
 *
 * Encoding: lib/wire.h. A user is 1..SOCIAL_USER_MAX bytes of
 * [A-Za-z0-9._-] (social_user_check); a cursor is opaque text the service
 * issued, at most SOCIAL_CURSOR_MAX bytes. Peers are this binary: a message
 * that does not decode is a bug, fatal to the receiver.
 */
#ifndef MN_CORE_SOCIAL_MSG_H
#define MN_CORE_SOCIAL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/proto/oap.h"

#define SOCIAL_APP_PROTO   0x0800u
#define SOCIAL_USER_MAX    64u      /* bytes of a user name (a tenant) */
#define SOCIAL_CURSOR_MAX  128u     /* characters of a cursor we issue */
#define SOCIAL_CODE_MAX    32u
#define SOCIAL_MESSAGE_MAX 200u
/* Entries of one page. A FEED page of 256 items is under 30 KiB: it fits
 * the internal frame (OAP_INTERNAL_MAX_FRAME, 64 KiB). */
#define SOCIAL_PAGE_MAX    256u
#define SOCIAL_MSG_MAX     (OAP_INTERNAL_MAX_FRAME - OAP_HDR_LEN)

enum {
	SOCIAL_PING = 0,
	SOCIAL_FOLLOW = 1,
	SOCIAL_UNFOLLOW = 2,
	SOCIAL_LIST = 3,
	SOCIAL_POST = 4,
	SOCIAL_FEED = 5,
	SOCIAL_NVERBS
};

typedef enum social_list_kind {
	SOCIAL_FOLLOWERS = 0,
	SOCIAL_FOLLOWING = 1,
} social_list_kind;

typedef struct social_req {
	uint16_t verb;
	char     user[SOCIAL_USER_MAX + 1];     /* FOLLOW/UNFOLLOW/LIST/FEED; POST: the author */
	char     other[SOCIAL_USER_MAX + 1];    /* FOLLOW, UNFOLLOW */
	uint8_t  kind;                          /* LIST: social_list_kind */
	char     cursor[SOCIAL_CURSOR_MAX + 1]; /* LIST, FEED: "" = from the start */
	uint16_t limit;                         /* LIST, FEED: 1..SOCIAL_PAGE_MAX */
	uint8_t  cid[32];                       /* POST */
} social_req;

typedef struct social_item {
	uint64_t post;
	uint64_t ts_ms;
	char     author[SOCIAL_USER_MAX + 1];
	uint8_t  cid[32];
} social_item;

typedef struct social_rep {
	uint16_t verb;
	uint16_t status;                        /* 200, or an error */
	char     code[SOCIAL_CODE_MAX + 1];     /* error: the envelope code ("bad_cursor") */
	char     message[SOCIAL_MESSAGE_MAX + 1];
	bool     flag;                          /* FOLLOW: created; UNFOLLOW: removed */
	uint64_t post, ts_ms;                   /* POST */
	uint16_t n;                             /* LIST, FEED: entries */
	char     names[SOCIAL_PAGE_MAX][SOCIAL_USER_MAX + 1];   /* LIST */
	social_item items[SOCIAL_PAGE_MAX];     /* FEED */
	char     next[SOCIAL_CURSOR_MAX + 1];   /* LIST, FEED: "" = no more */
} social_rep;

/* Is s[0..n) a user name (1..SOCIAL_USER_MAX of [A-Za-z0-9._-])? */
bool social_user_check(const char *s, size_t n);
const char *social_msg_verb_name(uint16_t verb);

/* Encode into buf (SOCIAL_MSG_MAX is enough). Length, or -1: a field out of
 * its bounds (a caller's bug). */
ssize_t social_msg_req_encode(const social_req *q, uint8_t *buf, size_t cap);
ssize_t social_msg_rep_encode(const social_rep *p, uint8_t *buf, size_t cap);
/* Decode exactly one message of verb. 0, or -1: it does not decode. */
int social_msg_req_decode(uint16_t verb, const uint8_t *p, size_t n, social_req *out);
int social_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                          social_rep *out);
/* rpc_server's check: is p[0..n) exactly a request of verb? */
int social_msg_req_check(uint16_t verb, const uint8_t *p, size_t n);
/* An error reply (code and message cut to fit). */
void social_msg_rep_err(social_rep *p, uint16_t verb, uint16_t status, const char *code,
                        const char *message);

#endif
