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

enum { OVL_PING = 1, OVL_FETCH = 2, OVL_VERB_LAST = OVL_FETCH };
/* FETCH's mode byte. */
typedef enum ovl_mode { OVL_MODE_CACHE = 0, OVL_MODE_PIN = 1, OVL_MODE_LAST = OVL_MODE_PIN } ovl_mode;
#define OVL_FETCH_REQ_LEN 33u        /* cid[32], mode */

/* ---- messages (both ends) ---- */
const char *ovl_msg_verb_name(uint16_t verb);
/* The request payload of FETCH: exactly a cid and a known mode. 0/-1. */
__attribute__((warn_unused_result))
int ovl_msg_req_check(uint16_t verb, const uint8_t *p, size_t n);
/* Encode a reply: 200 → len; else message (cut to fit). Returns bytes or -1. */
__attribute__((warn_unused_result))
ssize_t ovl_msg_rep_encode(uint16_t verb, uint16_t status, uint64_t len, const char *message,
                           uint8_t *buf, size_t cap);
/* Decode a reply. 0/-1 (not exactly that reply). */
__attribute__((warn_unused_result))
int ovl_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                       uint64_t *len, char message[OVL_MSG_TEXT_MAX]);

/* ---- client ---- */
typedef struct ovl_client ovl_client;
typedef struct rpc_call ovl_call;
/* status: 200 (len valid) or an error with message (borrowed for the call). */
typedef void (*ovl_fetch_cb)(int status, uint64_t len, const char *message, void *arg);

/* The client of cfg's overlay.sock (config_socket_path). NULL on failure. */
ovl_client *ovl_client_new(struct event_base *base, const mn_config *cfg);
void ovl_client_free(ovl_client *c);       /* NULL ok; pending callbacks dropped */
bool ovl_client_ready(const ovl_client *c);
/* Ask for cid to be fetched into local storage, as a cache copy or owned
 * (mode). Handle for ovl_call_cancel, or NULL when it could not be queued
 * (cb still runs later with 503). */
ovl_call *ovl_fetch(ovl_client *c, const uint8_t cid[32], ovl_mode mode, ovl_fetch_cb cb,
                    void *arg);
void ovl_call_cancel(ovl_call *call);      /* only before cb ran; NULL ok */

#endif
