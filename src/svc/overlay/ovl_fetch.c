/*
 * ovl_fetch.c — the overlay's fetch coordinator (see ovl_fetch.h).
 */
#include "svc/overlay/ovl_fetch.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/util.h"

typedef enum { FETCH_FINDING, FETCH_TRYING } fetch_state;

struct ovl_waiter {
	struct ovl_fetch *f;
	ovl_done_fn       done;      /* NULL: free slot or cancelled */
	void             *arg;
};

typedef struct ovl_fetch {
	ovl_table     *t;
	uint8_t        cid[OVL_ID_LEN];
	bool           ranged;
	ovl_span       span;                      /* when ranged */
	void          *got;                       /* a range result, until answered */
	fetch_state    state;
	void          *op;                        /* the running find or fetch */
	struct event  *deadline;
	ovl_provider   prov[OVL_MAX_PROVIDERS];
	size_t         nprov, next;
	unsigned       tally[OVL_TRY_COUNT];
	uint64_t       len;                       /* of the stored copy */
	ovl_waiter     w[OVL_MAX_WAITERS];
	size_t         nw;                        /* slots used (cancelled ones included) */
} ovl_fetch;

typedef struct ovl_peer {
	uint8_t  node_id[OVL_ID_LEN];
	unsigned score;
	uint64_t last_ms;                         /* 0: free */
} ovl_peer;

struct ovl_table {
	struct event_base *base;
	const ovl_ops     *ops;
	void              *ctx;
	uint8_t            self[OVL_ID_LEN];
	uint64_t           deadline_ms;
	ovl_fetch         *f[OVL_MAX_FETCHES];
	ovl_peer           peer[OVL_MAX_PEERS];
};

const char *ovl_try_name(ovl_try t)
{
	static const char *const names[OVL_TRY_COUNT] = {
		[OVL_TRY_OK] = "ok", [OVL_TRY_NOT_FOUND] = "not_found",
		[OVL_TRY_REFUSED] = "refused", [OVL_TRY_BAD_BYTES] = "bad_bytes",
		[OVL_TRY_STALLED] = "stalled", [OVL_TRY_PIN] = "pin",
		[OVL_TRY_CONNECT] = "connect", [OVL_TRY_TOO_LARGE] = "too_large",
		[OVL_TRY_STORE] = "store", [OVL_TRY_NO_RANGE] = "no_range",
	};
	return (unsigned)t < OVL_TRY_COUNT ? names[t] : "unknown";
}

/* ---- peer scores ----------------------------------------------------------- */

static unsigned score_now(const ovl_peer *p, uint64_t now)
{
	uint64_t halves = (now - p->last_ms) / OVL_SCORE_HALF_LIFE_MS;
	return halves >= 32 ? 0 : p->score >> halves;
}

static ovl_peer *peer_find(ovl_table *t, const uint8_t id[OVL_ID_LEN])
{
	for (size_t i = 0; i < OVL_MAX_PEERS; i++)
		if (t->peer[i].last_ms && memcmp(t->peer[i].node_id, id, OVL_ID_LEN) == 0)
			return &t->peer[i];
	return NULL;
}

unsigned ovl_peer_score(const ovl_table *t, const uint8_t node_id[OVL_ID_LEN])
{
	const ovl_peer *p = peer_find((ovl_table *)t, node_id);
	return p ? score_now(p, util_now_ms()) : 0;
}

/* Charge a failure; a full table forgets the peer that failed longest ago. */
static void peer_penalise(ovl_table *t, const uint8_t id[OVL_ID_LEN], unsigned penalty)
{
	uint64_t now = util_now_ms();
	ovl_peer *p = peer_find(t, id);

	if (!p) {
		p = &t->peer[0];
		for (size_t i = 0; i < OVL_MAX_PEERS && p->last_ms; i++)
			if (!t->peer[i].last_ms || t->peer[i].last_ms < p->last_ms)
				p = &t->peer[i];
		memcpy(p->node_id, id, OVL_ID_LEN);
		p->score = 0;
	} else {
		p->score = score_now(p, now);
	}
	p->score = p->score > 1u << 20 ? p->score : p->score + penalty;
	p->last_ms = now ? now : 1;
}

/* ---- fetches ------------------------------------------------------------- */

static bool fetch_is(const ovl_fetch *f, const uint8_t cid[OVL_ID_LEN], const ovl_span *span)
{
	if (memcmp(f->cid, cid, OVL_ID_LEN) != 0 || f->ranged != (span != NULL))
		return false;
	return !span || (f->span.start == span->start && f->span.end == span->end);
}

static ovl_fetch *fetch_of(ovl_table *t, const uint8_t cid[OVL_ID_LEN], const ovl_span *span)
{
	for (size_t i = 0; i < OVL_MAX_FETCHES; i++)
		if (t->f[i] && fetch_is(t->f[i], cid, span))
			return t->f[i];
	return NULL;
}

static size_t fetches_ranged(const ovl_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < OVL_MAX_FETCHES; i++)
		n += t->f[i] && t->f[i]->ranged;
	return n;
}

/* 200, or what the attempts say: any peer that answered wrongly makes it
 * 502, peers that only stalled 504, none that had it 404. */
static int fetch_status(const ovl_fetch *f)
{
	if (f->tally[OVL_TRY_OK])
		return 200;
	if (f->tally[OVL_TRY_NO_RANGE])   /* it may still serve the whole object */
		return 501;
	if (f->tally[OVL_TRY_REFUSED] || f->tally[OVL_TRY_BAD_BYTES] || f->tally[OVL_TRY_PIN] ||
	    f->tally[OVL_TRY_CONNECT] || f->tally[OVL_TRY_TOO_LARGE] || f->tally[OVL_TRY_STORE])
		return 502;
	if (f->tally[OVL_TRY_STALLED])
		return 504;
	return 404;
}

/* Answer every waiter and free the fetch. */
static void fetch_finish(ovl_fetch *f, int status)
{
	ovl_table *t = f->t;

	for (size_t i = 0; i < OVL_MAX_FETCHES; i++)
		if (t->f[i] == f)
			t->f[i] = NULL;
	if (f->op)
		t->ops->cancel(t->ctx, f->op);
	if (f->deadline)
		event_free(f->deadline);
	for (size_t i = 0; i < f->nw; i++)
		if (f->w[i].done)
			f->w[i].done(f->w[i].arg, status, status == 200 ? f->len : 0,
			             status == 200 ? f->got : NULL);
	if (f->got && t->ops->drop)
		t->ops->drop(t->ctx, f->got);
	free(f);
}

static void fetch_try_next(ovl_fetch *f);

static void on_tried(void *arg, ovl_try result, uint64_t bytes, void *got)
{
	ovl_fetch *f = arg;
	const ovl_provider *p = &f->prov[f->next - 1];
	ovl_table *t = f->t;

	f->op = NULL;
	f->tally[(unsigned)result < OVL_TRY_COUNT ? result : OVL_TRY_REFUSED]++;
	if (result == OVL_TRY_OK) {
		f->len = bytes;
		f->got = got;
		if (t->ops->stored && !f->ranged)
			t->ops->stored(t->ctx, f->cid, bytes);
		fetch_finish(f, 200);
		return;
	}
	if (got && t->ops->drop)   /* not the ops' contract; never leak it */
		t->ops->drop(t->ctx, got);
	/* An honest peer that only lacks ranges is not penalised. */
	if (result != OVL_TRY_NOT_FOUND && result != OVL_TRY_STORE && result != OVL_TRY_NO_RANGE)
		peer_penalise(t, p->node_id,
		              result == OVL_TRY_BAD_BYTES || result == OVL_TRY_PIN ?
		              OVL_PENALTY_BAD : OVL_PENALTY_OTHER);
	if (t->ops->failed)
		t->ops->failed(t->ctx, p, result);
	if (result == OVL_TRY_STORE) {   /* no other provider can help with that */
		fetch_finish(f, 502);
		return;
	}
	fetch_try_next(f);
}

static void fetch_try_next(ovl_fetch *f)
{
	if (f->next >= f->nprov) {
		fetch_finish(f, fetch_status(f));
		return;
	}
	f->state = FETCH_TRYING;
	const ovl_provider *p = &f->prov[f->next++];
	f->op = f->t->ops->fetch(f->t->ctx, f->cid, f->ranged ? &f->span : NULL, p, on_tried, f);
	if (!f->op)
		on_tried(f, OVL_TRY_STORE, 0, NULL);
}

/* Keep providers that are not us, at most OVL_MAX_PROVIDERS, ordered by
 * score (stable: equal scores keep the DHT's order). */
static void fetch_take_providers(ovl_fetch *f, const ovl_provider *p, size_t n)
{
	uint64_t now = util_now_ms();
	unsigned score[OVL_MAX_PROVIDERS];

	f->nprov = 0;
	for (size_t i = 0; i < n && f->nprov < OVL_MAX_PROVIDERS; i++) {
		if (memcmp(p[i].node_id, f->t->self, OVL_ID_LEN) == 0)
			continue;
		const ovl_peer *pe = peer_find(f->t, p[i].node_id);
		unsigned s = pe ? score_now(pe, now) : 0;
		size_t j = f->nprov++;
		while (j > 0 && score[j - 1] > s) {
			f->prov[j] = f->prov[j - 1];
			score[j] = score[j - 1];
			j--;
		}
		f->prov[j] = p[i];
		f->prov[j].addr[OVL_ADDR_MAX - 1] = '\0';
		score[j] = s;
	}
}

static void on_found(void *arg, int status, const ovl_provider *p, size_t n)
{
	ovl_fetch *f = arg;

	f->op = NULL;
	if (status != 200 && status != 404) {
		fetch_finish(f, status == 504 ? 504 : 503);   /* the DHT itself failed */
		return;
	}
	fetch_take_providers(f, p, status == 200 ? n : 0);
	if (f->nprov == 0) {
		fetch_finish(f, 404);
		return;
	}
	fetch_try_next(f);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	ovl_fetch *f = arg;

	(void)fd; (void)what;
	fetch_finish(f, 504);
}

typedef struct refusal {
	ovl_done_fn done;
	void       *arg;
} refusal;

static void on_refusal(evutil_socket_t fd, short what, void *arg)
{
	refusal r = *(refusal *)arg;

	(void)fd; (void)what;
	free(arg);
	r.done(r.arg, 503, 0, NULL);
}

/* 503 from the loop, as promised. */
static ovl_waiter *refuse_later(ovl_table *t, ovl_done_fn done, void *arg)
{
	refusal *r = malloc(sizeof *r);

	if (r) {
		r->done = done;
		r->arg = arg;
		if (event_base_once(t->base, -1, EV_TIMEOUT, on_refusal, r, NULL) == 0)
			return NULL;
		free(r);
	}
	return NULL;   /* out of memory even for that: nothing can be promised */
}

static ovl_fetch *fetch_start(ovl_table *t, const uint8_t cid[OVL_ID_LEN], const ovl_span *span)
{
	size_t slot = OVL_MAX_FETCHES;

	for (size_t i = 0; i < OVL_MAX_FETCHES && slot == OVL_MAX_FETCHES; i++)
		if (!t->f[i])
			slot = i;
	if (slot == OVL_MAX_FETCHES || (span && fetches_ranged(t) >= OVL_MAX_RANGE_FETCHES))
		return NULL;
	ovl_fetch *f = calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->t = t;
	memcpy(f->cid, cid, OVL_ID_LEN);
	if (span) {
		f->ranged = true;
		f->span = *span;
	}
	f->state = FETCH_FINDING;
	struct timeval tv = { (time_t)(t->deadline_ms / 1000),
	                      (suseconds_t)((t->deadline_ms % 1000) * 1000) };
	if (!(f->deadline = evtimer_new(t->base, on_deadline, f)) ||
	    evtimer_add(f->deadline, &tv) != 0 ||
	    !(f->op = t->ops->find(t->ctx, cid, on_found, f))) {
		if (f->deadline)
			event_free(f->deadline);
		free(f);
		return NULL;
	}
	t->f[slot] = f;
	return f;
}

static ovl_waiter *request(ovl_table *t, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
                           ovl_done_fn done, void *arg)
{
	ovl_fetch *f = fetch_of(t, cid, span);

	if (!f && !(f = fetch_start(t, cid, span)))
		return refuse_later(t, done, arg);
	if (f->nw == OVL_MAX_WAITERS)
		return refuse_later(t, done, arg);
	ovl_waiter *w = &f->w[f->nw++];
	w->f = f;
	w->done = done;
	w->arg = arg;
	return w;
}

ovl_waiter *ovl_request(ovl_table *t, const uint8_t cid[OVL_ID_LEN], ovl_done_fn done, void *arg)
{
	return request(t, cid, NULL, done, arg);
}

ovl_waiter *ovl_request_range(ovl_table *t, const uint8_t cid[OVL_ID_LEN], const ovl_span *span,
                              ovl_done_fn done, void *arg)
{
	return request(t, cid, span, done, arg);
}

void ovl_waiter_cancel(ovl_waiter *w)
{
	if (!w)
		return;
	w->done = NULL;
	ovl_fetch *f = w->f;
	for (size_t i = 0; i < f->nw; i++)
		if (f->w[i].done)
			return;
	/* Nobody waits: a fetch that is only finding stops; one that is
	 * already moving bytes finishes for the cache (a range fetch has no
	 * cache to fill: it stops too). */
	if (f->state == FETCH_FINDING || f->ranged)
		fetch_finish(f, 499);
}

size_t ovl_table_active(const ovl_table *t)
{
	size_t n = 0;

	for (size_t i = 0; i < OVL_MAX_FETCHES; i++)
		n += t->f[i] != NULL;
	return n;
}

ovl_table *ovl_table_new(struct event_base *base, const ovl_ops *ops, void *ctx,
                         const uint8_t self[OVL_ID_LEN], uint64_t deadline_ms)
{
	ovl_table *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->base = base;
	t->ops = ops;
	t->ctx = ctx;
	memcpy(t->self, self, OVL_ID_LEN);
	t->deadline_ms = deadline_ms;
	return t;
}

void ovl_table_free(ovl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < OVL_MAX_FETCHES; i++) {
		ovl_fetch *f = t->f[i];
		if (!f)
			continue;
		for (size_t j = 0; j < f->nw; j++)
			f->w[j].done = NULL;
		fetch_finish(f, 503);
	}
	free(t);
}
