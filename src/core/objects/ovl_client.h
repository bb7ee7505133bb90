/*
 * ovl_client.h — the overlay service's verbs and their asynchronous client
 * (gateway and omnigate ask it to fetch an object that is not stored here).
 * Transport: core/proto/rpc_client.h on <runtime_dir>/overlay.sock,
 * app_proto_id OVL_APP_PROTO (docs/internal.md "Overlay").
 *
 * Messages (lib/wire.h, big-endian):
 *   PING   request empty; reply 200 empty
 *   FETCH  request cid[32], u8 mode (OVL_MODE_CACHE: a local miss, the copy
 *          is a cache copy, evictable; OVL_MODE_PIN: a REPLICATE, the copy
 *          is owned, and one already cached here is promoted); reply 200:
 *          u64 length of the object, now stored locally; an error status (404 no provider, 502 every provider
 *          failed, 503 unavailable or over a bound, 504 deadline): str message
 *   FETCH_RANGE  request cid[32] u64 start u64 end (inclusive, start <= end,
 *          at most OVL_RANGE_MAX bytes); reply 200: u64 length of the object
 *          and two fds (SCM_RIGHTS): a sealed sparse memfd of that length
 *          holding every verified 64 KiB group the range touches (the rest
 *          holes), and a sealed memfd of its outboard (checked against the
 *          cid). Nothing is stored. A start at or past the object's end is
 *          still 200 (no group written): the caller answers 416. Errors as
 *          FETCH, and 501 when no provider serves ranges (fetch it whole).
 * The decoders are strict; a reply that does not decode is fatal to the
 * client process (rpc_client).
 */
#ifndef MN_CORE_OBJECTS_OVL_CLIENT_H
#define MN_CORE_OBJECTS_OVL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/config/config.h"

struct event_base;

#define OVL_APP_PROTO     0x0400u
#define OVL_SOCKET        "overlay.sock"
#define OVL_MSG_TEXT_MAX  128u       /* an error message, NUL included */
#define OVL_MSG_MAX       (2u + OVL_MSG_TEXT_MAX)
/* Above overlay.fetch_timeout's ceiling: the service answers first. */
#define OVL_CALL_TIMEOUT_MS 125000u
#define OVL_MAX_PENDING   512u

/* The largest range FETCH_RANGE takes (overlay.range_fetch_max's ceiling,
 * CONFIG_OVERLAY_RANGE_MAX): bounds the memfd a range fetch fills (plus the
 * two groups at its edges). */
#define OVL_RANGE_MAX     (32u * 1024u * 1024u)
#define OVL_RANGE_REQ_LEN 48u        /* cid[32] start:u64 end:u64 */

enum { OVL_PING = 1, OVL_FETCH = 2, OVL_FETCH_RANGE = 3, OVL_VERB_LAST = OVL_FETCH_RANGE };
/* FETCH's mode byte. */
typedef enum ovl_mode { OVL_MODE_CACHE = 0, OVL_MODE_PIN = 1, OVL_MODE_LAST = OVL_MODE_PIN } ovl_mode;
#define OVL_FETCH_REQ_LEN 33u        /* cid[32], mode */

/* ---- messages (both ends) ---- */
const char *ovl_msg_verb_name(uint16_t verb);
/* The request payload: FETCH exactly a cid and a known mode; FETCH_RANGE as
 * ovl_msg_range_decode takes it. 0/-1. */
__attribute__((warn_unused_result))
int ovl_msg_req_check(uint16_t verb, const uint8_t *p, size_t n);
/* FETCH_RANGE's request. Encode: bytes (OVL_RANGE_REQ_LEN) or -1 (a span
 * that is empty, reversed or over OVL_RANGE_MAX). Decode: 0/-1, the same
 * rules, exactly OVL_RANGE_REQ_LEN bytes. */
__attribute__((warn_unused_result))
ssize_t ovl_msg_range_encode(const uint8_t cid[32], uint64_t start, uint64_t end,
                             uint8_t *buf, size_t cap);
__attribute__((warn_unused_result))
int ovl_msg_range_decode(const uint8_t *p, size_t n, uint8_t cid[32], uint64_t *start,
                         uint64_t *end);
/* Encode a reply: 200 → len; else message (cut to fit). Returns bytes or -1. */
__attribute__((warn_unused_result))
ssize_t ovl_msg_rep_encode(uint16_t verb, uint16_t status, uint64_t len, const char *message,
                           uint8_t *buf, size_t cap);
/* Decode a reply. 0/-1 (not exactly that reply). */
__attribute__((warn_unused_result))
int ovl_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                       uint64_t *len, char message[OVL_MSG_TEXT_MAX]);
/* The fds a reply must carry: 2 for FETCH_RANGE's 200, else 0. */
size_t ovl_msg_rep_fds(uint16_t verb, uint16_t status);

/* ---- client ---- */
typedef struct ovl_client ovl_client;
typedef struct rpc_call ovl_call;
/* status: 200 (len valid) or an error with message (borrowed for the call). */
typedef void (*ovl_fetch_cb)(int status, uint64_t len, const char *message, void *arg);
/* The same for FETCH_RANGE; on 200 blob_fd and ob_fd are the callback's to
 * close (else -1). */
typedef void (*ovl_range_cb)(int status, uint64_t len, int blob_fd, int ob_fd,
                             const char *message, void *arg);

/* The client of cfg's overlay.sock (config_socket_path). NULL on failure. */
ovl_client *ovl_client_new(struct event_base *base, const mn_config *cfg);
void ovl_client_free(ovl_client *c);       /* NULL ok; pending callbacks dropped */
bool ovl_client_ready(const ovl_client *c);
/* Ask for cid to be fetched into local storage, as a cache copy or owned
 * (mode). Handle for ovl_call_cancel, or NULL when it could not be queued
 * (cb still runs later with 503). */
ovl_call *ovl_fetch(ovl_client *c, const uint8_t cid[32], ovl_mode mode, ovl_fetch_cb cb,
                    void *arg);
/* Ask for the groups of cid that bytes [start, end] need, verified, as
 * memfds (nothing stored). The span must satisfy ovl_msg_range_encode (else
 * cb runs with 500). Handle and NULL as ovl_fetch. */
ovl_call *ovl_fetch_range(ovl_client *c, const uint8_t cid[32], uint64_t start, uint64_t end,
                          ovl_range_cb cb, void *arg);
void ovl_call_cancel(ovl_call *call);      /* only before cb ran; NULL ok */

#endif
