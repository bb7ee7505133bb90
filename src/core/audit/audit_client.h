/*
 * audit_client.h — the audit service's verbs and the client every process
 * of the node sends audit entries with (docs/audit.md "The service").
 * Transport: core/proto/rpc_client.h on <runtime_dir>/audit.sock,
 * app_proto_id AUDIT_APP_PROTO (docs/internal.md "Audit").
 *
 * Messages (lib/wire.h, big-endian):
 *   PING        request empty; reply 200 empty
 *   APPEND      request stream:str kind:str reason:str writer_id:str ts_ms:u64
 *               actor:blob subject:blob attrs:blob (each the JSON text of an
 *               object, "" = {}); reply 200 empty once the entry is ON
 *               DISK (the fsync of its batch returned; in amnesia, in the RAM
 *               log), 422 when it could not be made a record (counted by the
 *               service), 500 when its batch was not written, 503 when the
 *               queue is full (the service counts and later records the drop)
 *   CHECKPOINT  request empty; reply 200 line:blob — the newest checkpoint's
 *               canonical JSON; 404 when none was made yet
 *   PROOF       request stream:str seq:u64; reply 200 json:blob — {record,
 *               index, leaf, path, checkpoint}; 404 not in the log, 409 not
 *               covered by a checkpoint yet, 503 busy or rate-limited
 *   RECENT      request stream:str n:u16 (stream "" = every stream; n in
 *               1..AUDIT_RECENT_MAX); reply 200 json:blob — {records:[{index,
 *               record}] newest first, size, omitted, stream, checkpoint (the
 *               newest, or null)}: at most AUDIT_REPLY_MAX,
 *               records that would not fit are left out and counted in
 *               omitted; 503 busy or rate-limited
 *   (error)     message:str (< AUDIT_MSG_TEXT_MAX)
 *
 * The client is fire-and-forget for entries: audit_emit encodes, hands the
 * frame to the rpc_client (at most AUDIT_CLIENT_PENDING unanswered: the
 * bounded local buffer) and returns; nobody waits for the fsync. An entry
 * that cannot be sent is dropped and counted (audit_dropped_total{reason=
 * client_busy|unavailable|too_large}); the next entry the service takes is
 * followed by one record saying how many this writer dropped.
 * audit_count aggregates a refusal flood: one record per (stream, kind,
 * reason, key) and second, with the count, from a table of
 * AUDIT_AGG_SLOTS (the rest are counted in one overflow record).
 */
#ifndef MN_CORE_AUDIT_CLIENT_H
#define MN_CORE_AUDIT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "core/config/config.h"

struct event_base;

#define AUDIT_APP_PROTO       0x0500u
#define AUDIT_SOCKET          "audit.sock"
#define AUDIT_MSG_TEXT_MAX    128u             /* an error message, NUL included */
#define AUDIT_WRITER_MAX      64u              /* bytes of a writer id */
#define AUDIT_KIND_MAX        64u              /* bytes of a kind or reason */
#define AUDIT_JSON_MAX        8192u            /* bytes of actor, subject or attrs text */
#define AUDIT_REQ_MAX         (4u * 256u + 8u + 3u * (4u + AUDIT_JSON_MAX))
#define AUDIT_REPLY_MAX       (60u * 1024u)    /* under the internal frame cap */
#define AUDIT_CLIENT_PENDING  256u             /* entries a sender may have unanswered */
#define AUDIT_CALL_TIMEOUT_MS 30000u           /* above the service's proof deadline */
#define AUDIT_AGG_SLOTS       64u              /* distinct aggregated keys per second */
#define AUDIT_AGG_WINDOW_MS   1000u
#define AUDIT_AGG_KEY_MAX     96u

enum { AUDIT_PING = 1, AUDIT_APPEND = 2, AUDIT_CHECKPOINT = 3, AUDIT_PROOF = 4,
       AUDIT_RECENT = 5, AUDIT_VERB_LAST = AUDIT_RECENT };

/* ---- messages (both ends) ---- */

/* An APPEND as it travels (strings NUL-terminated, JSON texts borrowed). */
typedef struct audit_msg_entry {
	char           stream[65];
	char           kind[AUDIT_KIND_MAX];
	char           reason[AUDIT_KIND_MAX];
	char           writer_id[AUDIT_WRITER_MAX];
	uint64_t       ts_ms;
	const uint8_t *actor, *subject, *attrs;
	size_t         actor_len, subject_len, attrs_len;
} audit_msg_entry;

const char *audit_msg_verb_name(uint16_t verb);
/* Is p[0..n) exactly a request of verb? 0/-1. */
__attribute__((warn_unused_result))
int audit_msg_req_check(uint16_t verb, const uint8_t *p, size_t n);
__attribute__((warn_unused_result))
ssize_t audit_msg_append_encode(const audit_msg_entry *e, uint8_t *buf, size_t cap);
/* Decode APPEND (JSON texts borrow p). 0/-1. */
__attribute__((warn_unused_result))
int audit_msg_append_decode(const uint8_t *p, size_t n, audit_msg_entry *e);
__attribute__((warn_unused_result))
ssize_t audit_msg_proof_encode(const char *stream, uint64_t seq, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
int audit_msg_proof_decode(const uint8_t *p, size_t n, char stream[65], uint64_t *seq);
/* RECENT: stream "" (every stream) or a valid name, n in 1..AUDIT_RECENT_MAX. */
__attribute__((warn_unused_result))
ssize_t audit_msg_recent_encode(const char *stream, unsigned n, uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
int audit_msg_recent_decode(const uint8_t *p, size_t n, char stream[65], unsigned *count);
/* A reply: 200 → body[0..len) as a blob for CHECKPOINT/PROOF/RECENT, nothing for
 * PING/APPEND; else body is the message (cut to fit). Bytes or -1. */
__attribute__((warn_unused_result))
ssize_t audit_msg_rep_encode(uint16_t verb, uint16_t status, const char *body, size_t len,
                             uint8_t *buf, size_t cap);
/* Decode a reply: *body borrows p (not NUL-terminated). 0/-1. */
__attribute__((warn_unused_result))
int audit_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                         const uint8_t **body, size_t *len);

/* ---- client ---- */
typedef struct audit_client audit_client;
typedef struct rpc_call audit_call;
/* status 200: text is the JSON answer; else text is the reason. text is
 * borrowed for the call and not NUL-terminated. */
typedef void (*audit_text_cb)(int status, const char *text, size_t len, void *arg);

/* The client of cfg's audit.sock, writing as writer_id (copied, e.g.
 * "supervisor", "gateway/2"). NULL when `services` does not list audit (every
 * call then takes a NULL client: entries are dropped uncounted, queries
 * answer 503) or on failure. */
audit_client *audit_client_new(struct event_base *base, const mn_config *cfg,
                               const char *writer_id);
/* The same on the socket at path (the supervisor's runtime directory). */
audit_client *audit_client_new_at(struct event_base *base, const char *path,
                                  const char *writer_id);
void audit_client_free(audit_client *c);      /* NULL ok; pending calls dropped */
/* Entries this client dropped (never sent) since it was made. */
uint64_t audit_client_dropped(const audit_client *c);

/* Send one entry (fire-and-forget). actor, subject and attrs are objects or
 * NULL ({}); their references are TAKEN (decref'd here), so call sites may
 * pass json_pack(...) directly. c may be NULL. */
void audit_emit(audit_client *c, const char *stream, const char *kind, const char *reason,
                json_t *actor, json_t *subject, json_t *attrs);
/* Count one event in the current second's aggregate of (stream, kind,
 * reason, key): the client emits {"count":N,"window_ms":1000} with subject
 * {"key":key} once per second per key (bytes of key outside printable ASCII
 * become '?'; cut at AUDIT_AGG_KEY_MAX). c may be NULL. */
void audit_count(audit_client *c, const char *stream, const char *kind, const char *reason,
                 const char *key);

/* A serving process refused to (re)load its capability keys or mTLS map
 * (err: the wall's message, which names files and reasons, never key
 * bytes): one "keys"/"key_load_refused" record, reason "unseal" (the KEK
 * does not open a file) or "file". c may be NULL. */
void audit_key_refusal(audit_client *c, const char *err);

/* Emit the aggregates of the current second now (a service that begins to
 * drain: the entries leave at once, while the audit service, drained after
 * the front services and 50 ms after the rest, still takes them). c may be
 * NULL. */
void audit_client_flush(audit_client *c);

/* The newest checkpoint (CHECKPOINT) and an inclusion proof (PROOF). NULL
 * handle when it could not be queued (cb still runs later with 503); c NULL:
 * cb runs never — check the client first. */
audit_call *audit_get_checkpoint(audit_client *c, audit_text_cb cb, void *arg);
audit_call *audit_get_proof(audit_client *c, const char *stream, uint64_t seq,
                            audit_text_cb cb, void *arg);
/* The newest n records (of stream; NULL or "" = all), RECENT. As above. */
audit_call *audit_get_recent(audit_client *c, const char *stream, unsigned n,
                             audit_text_cb cb, void *arg);
void audit_call_cancel(audit_call *call);     /* only before cb ran; NULL ok */

#endif
