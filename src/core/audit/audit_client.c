/*
 * audit_client.c — the audit service's messages and client (see
 * audit_client.h).
 */
#include "core/audit/audit_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/audit/audit_record.h"
#include "core/metrics/metrics.h"
#include "core/proto/rpc_client.h"
#include "lib/log.h"
#include "lib/util.h"
#include "lib/wire.h"

typedef struct audit_agg {
	char     stream[16];
	char     kind[AUDIT_KIND_MAX];
	char     reason[AUDIT_KIND_MAX];
	char     key[AUDIT_AGG_KEY_MAX + 1];
	uint64_t count;
} audit_agg;

struct audit_client {
	rpc_client   *rpc;
	struct event *agg_ev;             /* flushes the aggregates once a second */
	char          writer[AUDIT_WRITER_MAX];
	uint64_t      dropped;            /* since made */
	uint64_t      unreported;         /* dropped, not yet said in a record */
	audit_agg     agg[AUDIT_AGG_SLOTS];
	size_t        nagg;
	uint64_t      agg_overflow;       /* events with no slot this second */
	metrics_series *m_busy, *m_unavail, *m_large;
};

typedef struct audit_ctx {
	audit_text_cb cb;                 /* a query, or NULL for APPEND */
	void         *arg;
	audit_client *c;
} audit_ctx;

_Static_assert(sizeof(audit_ctx) <= RPC_CALL_CTX_MAX, "context fits the call");

/* ---- messages ------------------------------------------------------------ */

const char *audit_msg_verb_name(uint16_t verb)
{
	switch (verb) {
	case AUDIT_PING:       return "PING";
	case AUDIT_APPEND:     return "APPEND";
	case AUDIT_CHECKPOINT: return "CHECKPOINT";
	case AUDIT_PROOF:      return "PROOF";
	case AUDIT_RECENT:     return "RECENT";
	default:               return "unknown";
	}
}

int audit_msg_req_check(uint16_t verb, const uint8_t *p, size_t n)
{
	audit_msg_entry e;
	char stream[65];
	uint64_t seq;
	unsigned cnt;

	switch (verb) {
	case AUDIT_PING:
	case AUDIT_CHECKPOINT: return n == 0 ? 0 : -1;
	case AUDIT_APPEND:     return audit_msg_append_decode(p, n, &e);
	case AUDIT_PROOF:      return audit_msg_proof_decode(p, n, stream, &seq);
	case AUDIT_RECENT:     return audit_msg_recent_decode(p, n, stream, &cnt);
	default:               return -1;
	}
}

ssize_t audit_msg_append_encode(const audit_msg_entry *e, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (e->actor_len > AUDIT_JSON_MAX || e->subject_len > AUDIT_JSON_MAX ||
	    e->attrs_len > AUDIT_JSON_MAX)
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_str(&w, e->stream);
	wire_put_str(&w, e->kind);
	wire_put_str(&w, e->reason);
	wire_put_str(&w, e->writer_id);
	wire_put_u64(&w, e->ts_ms);
	wire_put_blob(&w, e->actor, e->actor_len);
	wire_put_blob(&w, e->subject, e->subject_len);
	wire_put_blob(&w, e->attrs, e->attrs_len);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int audit_msg_append_decode(const uint8_t *p, size_t n, audit_msg_entry *e)
{
	wire_r r;

	memset(e, 0, sizeof *e);
	wire_r_init(&r, p, n);
	wire_get_str(&r, e->stream, sizeof e->stream);
	wire_get_str(&r, e->kind, sizeof e->kind);
	wire_get_str(&r, e->reason, sizeof e->reason);
	wire_get_str(&r, e->writer_id, sizeof e->writer_id);
	e->ts_ms = wire_get_u64(&r);
	wire_get_blob(&r, &e->actor, &e->actor_len, AUDIT_JSON_MAX);
	wire_get_blob(&r, &e->subject, &e->subject_len, AUDIT_JSON_MAX);
	wire_get_blob(&r, &e->attrs, &e->attrs_len, AUDIT_JSON_MAX);
	return wire_end(&r);
}

ssize_t audit_msg_proof_encode(const char *stream, uint64_t seq, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (strlen(stream) > 64)
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_str(&w, stream);
	wire_put_u64(&w, seq);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int audit_msg_proof_decode(const uint8_t *p, size_t n, char stream[65], uint64_t *seq)
{
	wire_r r;

	wire_r_init(&r, p, n);
	wire_get_str(&r, stream, 65);
	*seq = wire_get_u64(&r);
	return wire_end(&r);
}

static bool recent_ok(const char *stream, unsigned n)
{
	size_t sl = strlen(stream);

	return n >= 1 && n <= AUDIT_RECENT_MAX && (sl == 0 || audit_stream_is_valid(stream, sl));
}

ssize_t audit_msg_recent_encode(const char *stream, unsigned n, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (strlen(stream) > 64 || !recent_ok(stream, n))
		return -1;
	wire_w_init(&w, buf, cap);
	wire_put_str(&w, stream);
	wire_put_u16(&w, (uint16_t)n);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int audit_msg_recent_decode(const uint8_t *p, size_t n, char stream[65], unsigned *count)
{
	wire_r r;

	wire_r_init(&r, p, n);
	wire_get_str(&r, stream, 65);
	*count = wire_get_u16(&r);
	if (wire_end(&r) != 0)
		return -1;
	return recent_ok(stream, *count) ? 0 : -1;
}

static bool audit_has_body(uint16_t verb)
{
	return verb == AUDIT_CHECKPOINT || verb == AUDIT_PROOF || verb == AUDIT_RECENT;
}

ssize_t audit_msg_rep_encode(uint16_t verb, uint16_t status, const char *body, size_t len,
                             uint8_t *buf, size_t cap)
{
	char msg[AUDIT_MSG_TEXT_MAX];
	wire_w w;

	wire_w_init(&w, buf, cap);
	if (status == 200) {
		if (audit_has_body(verb))
			wire_put_blob(&w, body, len);
	} else if (status >= 400 && status <= 599) {
		snprintf(msg, sizeof msg, "%.*s", (int)(len < sizeof msg ? len : sizeof msg - 1),
		         body ? body : "");
		wire_put_str(&w, msg);
	} else {
		return -1;
	}
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

int audit_msg_rep_decode(uint16_t verb, uint16_t status, const uint8_t *p, size_t n,
                         const uint8_t **body, size_t *len)
{
	wire_r r;
	uint16_t sl;

	*body = NULL;
	*len = 0;
	if (verb < AUDIT_PING || verb > AUDIT_VERB_LAST)
		return -1;
	wire_r_init(&r, p, n);
	if (status == 200) {
		if (audit_has_body(verb))
			wire_get_blob(&r, body, len, AUDIT_REPLY_MAX);
	} else if (status >= 400 && status <= 599) {
		if (n < 2)
			return -1;
		sl = wire_get_u16(&r);         /* a str: borrowed in place */
		if (sl >= AUDIT_MSG_TEXT_MAX || (size_t)sl > n - 2)
			return -1;
		*body = p + 2;
		*len = sl;
		return n == 2u + sl && !memchr(p + 2, 0, sl) ? 0 : -1;
	} else {
		return -1;
	}
	return wire_end(&r);
}

static int audit_check(uint16_t verb, uint16_t status, const uint8_t *p, size_t n, size_t nfds)
{
	const uint8_t *b;
	size_t len;

	return nfds == 0 ? audit_msg_rep_decode(verb, status, p, n, &b, &len) : -1;
}

/* ---- client ---------------------------------------------------------------- */

static void on_agg_tick(evutil_socket_t fd, short what, void *arg);

audit_client *audit_client_new(struct event_base *base, const mn_config *cfg,
                               const char *writer_id)
{
	char path[1024];

	if (!(cfg->services & CONFIG_SVC_AUDIT) ||
	    config_socket_path(cfg, AUDIT_SOCKET, path, sizeof path) != 0)
		return NULL;
	return audit_client_new_at(base, path, writer_id);
}

audit_client *audit_client_new_at(struct event_base *base, const char *path,
                                  const char *writer_id)
{
	static const rpc_client_opts o = {
		.name = "audit", .app_proto = AUDIT_APP_PROTO, .call_timeout_ms = AUDIT_CALL_TIMEOUT_MS,
		.max_pending = AUDIT_CLIENT_PENDING, .breaker_failures = 3, .breaker_open_ms = 1000,
		.ping_verb = AUDIT_PING, .max_request = AUDIT_REQ_MAX, .check = audit_check,
		.verb_name = audit_msg_verb_name,
	};
	audit_client *c;

	if (!(c = calloc(1, sizeof *c)))
		return NULL;
	snprintf(c->writer, sizeof c->writer, "%s", writer_id);
	if (!(c->rpc = rpc_client_new(base, path, &o)) ||
	    !(c->agg_ev = event_new(base, -1, 0, on_agg_tick, c))) {
		audit_client_free(c);
		return NULL;
	}
	c->m_busy = metrics_get("audit_dropped_total", "reason=\"client_busy\"");
	c->m_unavail = metrics_get("audit_dropped_total", "reason=\"unavailable\"");
	c->m_large = metrics_get("audit_dropped_total", "reason=\"too_large\"");
	return c;
}

void audit_client_free(audit_client *c)
{
	if (!c)
		return;
	if (c->agg_ev)
		event_free(c->agg_ev);
	rpc_client_free(c->rpc);
	free(c);
}

uint64_t audit_client_dropped(const audit_client *c)
{
	return c ? c->dropped : 0;
}

static void client_drop(audit_client *c, metrics_series *m)
{
	c->dropped++;
	c->unreported++;
	metrics_inc(m, 1);
}

static void on_append(const rpc_reply *r, void *arg)
{
	const audit_ctx *x = r->ctx;
	audit_client *c = x->c;

	(void)arg;
	if (r->fail == RPC_FAIL_BUSY) {
		client_drop(c, c->m_busy);
	} else if (r->fail != RPC_FAIL_NONE || r->status == 500) {
		/* Unreachable, or lost unanswered (the service died with the entry
		 * queued), or its batch was not written: never acknowledged. */
		client_drop(c, c->m_unavail);
	} else if (r->status == 200 && c->unreported) {
		/* The service takes entries again: say what it never saw. */
		uint64_t n = c->unreported;

		c->unreported = 0;
		audit_emit(c, "audit", "client_dropped", "unsent", NULL, NULL,
		           json_pack("{s:I, s:I}", "count", (json_int_t)n,
		                     "total", (json_int_t)c->dropped));
	}
	/* 503 from the service: its queue was full; it counted and records it. */
}

/* The JSON text of o (NULL → ""), into a new string or NULL. */
static char *json_text(const json_t *o, size_t *len)
{
	char *t = o ? json_dumps(o, JSON_COMPACT) : strdup("");

	*len = t ? strlen(t) : 0;
	return t;
}

void audit_emit(audit_client *c, const char *stream, const char *kind, const char *reason,
                json_t *actor, json_t *subject, json_t *attrs)
{
	audit_msg_entry e = { .ts_ms = util_wall_ms() };
	audit_ctx x = { .c = c };
	char *ta = NULL, *ts = NULL, *tt = NULL;
	uint8_t *buf = NULL;
	ssize_t n = -1;

	if (!c)
		goto out;
	snprintf(e.stream, sizeof e.stream, "%s", stream);
	snprintf(e.kind, sizeof e.kind, "%s", kind);
	snprintf(e.reason, sizeof e.reason, "%s", reason ? reason : "");
	snprintf(e.writer_id, sizeof e.writer_id, "%s", c->writer);
	ta = json_text(actor, &e.actor_len);
	ts = json_text(subject, &e.subject_len);
	tt = json_text(attrs, &e.attrs_len);
	e.actor = (const uint8_t *)ta;
	e.subject = (const uint8_t *)ts;
	e.attrs = (const uint8_t *)tt;
	if (ta && ts && tt && (buf = malloc(AUDIT_REQ_MAX)))
		n = audit_msg_append_encode(&e, buf, AUDIT_REQ_MAX);
	if (n < 0)
		client_drop(c, c->m_large);
	else   /* NULL: on_append still runs, with RPC_FAIL_NOMEM */
		(void)rpc_call_start_ctx(c->rpc, AUDIT_APPEND, buf, (size_t)n, on_append, NULL,
		                         &x, sizeof x);
out:
	free(buf);
	free(ta);
	free(ts);
	free(tt);
	json_decref(actor);
	json_decref(subject);
	json_decref(attrs);
}

static void agg_key(char *dst, const char *key)
{
	size_t i = 0;

	for (; key && key[i] && i < AUDIT_AGG_KEY_MAX; i++)
		dst[i] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
	dst[i] = '\0';
}

void audit_count(audit_client *c, const char *stream, const char *kind, const char *reason,
                 const char *key)
{
	char k[AUDIT_AGG_KEY_MAX + 1];
	audit_agg *a;

	if (!c)
		return;
	agg_key(k, key);
	for (size_t i = 0; i < c->nagg; i++) {
		a = &c->agg[i];
		if (strcmp(a->key, k) == 0 && strcmp(a->reason, reason) == 0 &&
		    strcmp(a->kind, kind) == 0 && strcmp(a->stream, stream) == 0) {
			a->count++;
			return;
		}
	}
	if (!c->nagg && !c->agg_overflow) {
		struct timeval tv = { .tv_sec = AUDIT_AGG_WINDOW_MS / 1000u };
		event_add(c->agg_ev, &tv);
	}
	if (c->nagg >= AUDIT_AGG_SLOTS) {
		c->agg_overflow++;
		return;
	}
	a = &c->agg[c->nagg++];
	snprintf(a->stream, sizeof a->stream, "%s", stream);
	snprintf(a->kind, sizeof a->kind, "%s", kind);
	snprintf(a->reason, sizeof a->reason, "%s", reason);
	memcpy(a->key, k, sizeof a->key);
	a->count = 1;
}

static void on_agg_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	audit_client_flush(arg);
}

void audit_client_flush(audit_client *c)
{
	if (!c)
		return;
	event_del(c->agg_ev);
	for (size_t i = 0; i < c->nagg; i++) {
		audit_agg *a = &c->agg[i];
		audit_emit(c, a->stream, a->kind, a->reason, NULL, json_pack("{s:s}", "key", a->key),
		           json_pack("{s:I, s:I}", "count", (json_int_t)a->count,
		                     "window_ms", (json_int_t)AUDIT_AGG_WINDOW_MS));
	}
	if (c->agg_overflow)
		audit_emit(c, "audit", "aggregate_overflow", "too_many_keys", NULL, NULL,
		           json_pack("{s:I, s:I}", "count", (json_int_t)c->agg_overflow,
		                     "window_ms", (json_int_t)AUDIT_AGG_WINDOW_MS));
	c->nagg = 0;
	c->agg_overflow = 0;
}

static void on_query(const rpc_reply *r, void *arg)
{
	const audit_ctx *x = r->ctx;
	const uint8_t *body = NULL;
	size_t len = 0;

	(void)arg;
	if (r->fail != RPC_FAIL_NONE) {
		static const char why[] = "audit service unavailable";
		x->cb(r->status, why, sizeof why - 1, x->arg);
		return;
	}
	if (audit_msg_rep_decode(r->verb, (uint16_t)r->status, r->payload, r->len, &body, &len) != 0)
		(void)BUG("audit reply passed the check but does not decode");
	x->cb(r->status, (const char *)body, len, x->arg);
}

audit_call *audit_get_checkpoint(audit_client *c, audit_text_cb cb, void *arg)
{
	audit_ctx x = { .cb = cb, .arg = arg, .c = c };

	return c ? rpc_call_start_ctx(c->rpc, AUDIT_CHECKPOINT, NULL, 0, on_query, NULL, &x,
	                              sizeof x) : NULL;
}

audit_call *audit_get_proof(audit_client *c, const char *stream, uint64_t seq,
                            audit_text_cb cb, void *arg)
{
	audit_ctx x = { .cb = cb, .arg = arg, .c = c };
	uint8_t buf[80];
	ssize_t n = audit_msg_proof_encode(stream, seq, buf, sizeof buf);

	if (!c)
		return NULL;
	/* A stream name over 64 bytes: the request is over max_request, so the
	 * call fails with 500 from the loop. */
	if (n < 0)
		return rpc_call_start_ctx(c->rpc, AUDIT_PROOF, NULL, AUDIT_REQ_MAX + 1, on_query, NULL,
		                          &x, sizeof x);
	return rpc_call_start_ctx(c->rpc, AUDIT_PROOF, buf, (size_t)n, on_query, NULL, &x, sizeof x);
}

audit_call *audit_get_recent(audit_client *c, const char *stream, unsigned n,
                             audit_text_cb cb, void *arg)
{
	audit_ctx x = { .cb = cb, .arg = arg, .c = c };
	uint8_t buf[80];
	ssize_t len = audit_msg_recent_encode(stream ? stream : "", n, buf, sizeof buf);

	if (!c)
		return NULL;
	/* A bad request (the caller checks first): over max_request, 500. */
	if (len < 0)
		return rpc_call_start_ctx(c->rpc, AUDIT_RECENT, NULL, AUDIT_REQ_MAX + 1, on_query, NULL,
		                          &x, sizeof x);
	return rpc_call_start_ctx(c->rpc, AUDIT_RECENT, buf, (size_t)len, on_query, NULL, &x,
	                          sizeof x);
}

void audit_call_cancel(audit_call *call)
{
	rpc_call_cancel(call);
}

void audit_key_refusal(audit_client *c, const char *err)
{
	const char *why = strstr(err, "unseal") || strstr(err, "KEK") ? "unseal" : "file";

	audit_emit(c, "keys", "key_load_refused", why, NULL, NULL, json_pack("{s:s}", "error", err));
}
