/*
 * search_msg.h — the search service's messages (docs/internal.md
 * "Search"): one OAP/1 frame per datagram on <runtime_dir>/search.sock,
 * app_proto_id SEARCH_APP_PROTO, the request's `code` its verb, the
 * reply's its status. Fields are lib/wire.h integers, a fixed 32-byte id,
 * bounded strings and one bounded blob. Both ends are this binary: a
 * message that does not decode is a bug, fatal to its receiver.
 *
 *   PING   (1)  empty → 200 empty
 *   INDEX  (2)  id, size u64, ctype str, text blob → 200 empty (queued),
 *               503 (queue full: dropped, counted)
 *   QUERY  (3)  limit u16, query str → 200: partial u8, n u16,
 *               n × (id, name str, meta u8, [size u64, ctype str when
 *               meta]); 400 (the query names the problem), 503 (busy).
 *               name "" for an object's own row; a name's row has meta 0
 *               when the object itself is not indexed (size/ctype unknown)
 *   NAME   (4)  name str, id, seq u64 → 200 empty (queued), 503 (queue
 *               full): a name published through the gateway now points at
 *               id (the record's seq: a lower one than held is ignored)
 *   error  any verb, 400..599: message str
 */
#ifndef MN_CORE_SEARCH_SEARCH_MSG_H
#define MN_CORE_SEARCH_SEARCH_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/dht/name.h"

#define SEARCH_APP_PROTO   0x0900u
#define SEARCH_SOCKET      "search.sock"
#define SEARCH_CTYPE_MAX   128u          /* NUL included (STOR_CTYPE_MAX) */
#define SEARCH_QUERY_MAX   512u          /* NUL included: search.max_query's ceiling */
#define SEARCH_TEXT_MAX    (256u * 1024u) /* search.max_text's ceiling */
#define SEARCH_HITS_MAX    100u          /* search.max_limit's ceiling */
#define SEARCH_MSG_TEXT_MAX 192u         /* an error message, NUL included */
/* The largest payload: an INDEX with the longest text (under the 1 MiB frame). */
#define SEARCH_MSG_MAX     (32u + 8u + 2u + SEARCH_CTYPE_MAX + 4u + SEARCH_TEXT_MAX)

enum {
	SEARCH_PING = 1, SEARCH_INDEX = 2, SEARCH_QUERY = 3, SEARCH_NAME = 4,
	SEARCH_VERB_LAST = SEARCH_NAME
};

typedef struct search_doc {
	uint8_t        id[32];
	uint64_t       size;
	char           ctype[SEARCH_CTYPE_MAX];   /* "" when none recorded */
	const uint8_t *text;                      /* borrowed; NULL when len 0 */
	size_t         text_len;                  /* ≤ SEARCH_TEXT_MAX */
} search_doc;

/* A name now pointing at id (NAME): name passes core/dht/name.h. */
typedef struct search_name {
	char     name[NAME_MAX_LEN + 1];
	uint8_t  id[32];
	uint64_t seq;                             /* the record's, 1.. */
} search_name;

typedef struct search_hit {
	uint8_t  id[32];
	char     name[NAME_MAX_LEN + 1];          /* "" for the object's own row */
	bool     meta;                            /* size and ctype known */
	uint64_t size;                            /* 0 unless meta */
	char     ctype[SEARCH_CTYPE_MAX];         /* "" unless meta */
} search_hit;

typedef struct search_hits {
	bool       partial;
	uint16_t   n;
	search_hit hit[SEARCH_HITS_MAX];
} search_hits;

const char *search_msg_verb_name(uint16_t verb);
/* Encoders: payload length, or -1 (a bug of the caller: too long a field). */
ssize_t search_msg_index_encode(const search_doc *d, uint8_t *buf, size_t cap);
ssize_t search_msg_name_encode(const search_name *nm, uint8_t *buf, size_t cap);
ssize_t search_msg_query_encode(const char *q, uint16_t limit, uint8_t *buf, size_t cap);
ssize_t search_msg_hits_encode(const search_hits *h, uint8_t *buf, size_t cap);
ssize_t search_msg_err_encode(const char *message, uint8_t *buf, size_t cap);
/* Decoders: 0, or -1 when p[0..n) is not exactly such a message. d->text
 * borrows p. */
int search_msg_index_decode(const uint8_t *p, size_t n, search_doc *d);
/* A name that breaks core/dht/name.h's rules, or seq 0, does not decode. */
int search_msg_name_decode(const uint8_t *p, size_t n, search_name *nm);
int search_msg_query_decode(const uint8_t *p, size_t n, char q[SEARCH_QUERY_MAX], uint16_t *limit);
int search_msg_hits_decode(const uint8_t *p, size_t n, search_hits *h);
int search_msg_err_decode(const uint8_t *p, size_t n, char msg[SEARCH_MSG_TEXT_MAX]);
/* rpc_server's check: is p[0..n) exactly a request of verb? 0/-1. */
int search_msg_req_check(uint16_t verb, const uint8_t *p, size_t n);
/* rpc_client's check of a reply. 0/-1. */
int search_msg_rep_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds);

#endif
