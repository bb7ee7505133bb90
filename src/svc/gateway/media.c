/*
 * media.c — GET/HEAD /media/{cid}: an object served with the Content-Type
 * recorded at upload (docs/media.md), ranges and, when asked with
 * ?download=<name>, `Content-Disposition: attachment; filename="<name>"`.
 *
 * The bytes go through the very path of /o/{b3} (objects_get.c: verified
 * group by group before a byte is written, 502 or a cut on mismatch); only
 * the headers differ. The type comes from storage's record (META_GET), one
 * round trip before the OPEN. An object without a record (stored over
 * OAP/1, fetched from a peer, stored before types were recorded) has its
 * first verified bytes sniffed off the loop (objects_get.c, sniff.h) and
 * the result recorded with META_SET (the first recorded stays), so each
 * such object is sniffed once. A facet route (HTTP_ROUTE_FACET): shed first
 * under load; its latency is facet_latency_seconds{facet="media"}.
 *
 * The query is strict: only `download`, once, with a name that
 * mediatype_filename_ok accepts; anything else is a 400 naming it
 * (media_refused_total{reason}). Nothing from the request reaches a
 * header but a name that passed that check.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/facet.h"
#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/objects/mediatype.h"
#include "lib/b3.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/gateway/media.h"

#define MEDIA_PREFIX     "/media/"
#define MEDIA_DOWNLOAD   "download="
#define MEDIA_M          (HTTP_M_GET | HTTP_M_HEAD)

typedef struct media_type_slot {
	uint8_t id[B3_OUT_LEN];
	char    ctype[MEDIATYPE_MAX];   /* "" empty slot */
} media_type_slot;

struct media_types {
	objcache       *cache;          /* borrowed: its stamp */
	objcache_stamp  at;             /* the slots hold what was true then */
	media_type_slot slot[MEDIA_TYPES_SLOTS];
};

media_types *media_types_new(objcache *cache)
{
	media_types *t = cache ? calloc(1, sizeof *t) : NULL;

	if (t)
		t->cache = cache;
	return t;
}

void media_types_free(media_types *t)
{
	free(t);
}

static bool media_stamp_eq(const objcache_stamp *a, const objcache_stamp *b)
{
	return a->ok && b->ok && a->gen == b->gen && a->epoch == b->epoch;
}

/* May the slots be used now? Forgets them when storage removed anything
 * or restarted since they were filled; false when there is no epoch. */
static bool media_types_fresh(media_types *t)
{
	objcache_stamp now = objcache_stamp_now(t->cache);

	if (!now.ok)
		return false;
	if (!media_stamp_eq(&now, &t->at)) {
		memset(t->slot, 0, sizeof t->slot);
		t->at = now;
	}
	return true;
}

/* The id is a BLAKE3 output: its first bytes are already uniform. */
static media_type_slot *media_types_slot(media_types *t, const uint8_t id[B3_OUT_LEN])
{
	return &t->slot[((unsigned)id[0] | (unsigned)id[1] << 8) % MEDIA_TYPES_SLOTS];
}

void media_types_put(media_types *t, const uint8_t id[32], const char *ctype,
                     const objcache_stamp *asked)
{
	media_type_slot *s;
	size_t n = strlen(ctype);

	if (!t || n == 0 || n >= MEDIATYPE_MAX || !media_types_fresh(t) ||
	    !media_stamp_eq(asked, &t->at))
		return;
	s = media_types_slot(t, id);
	memcpy(s->id, id, B3_OUT_LEN);
	memcpy(s->ctype, ctype, n + 1);
}

/* The remembered type of id, or NULL. */
static const char *media_types_get(media_types *t, const uint8_t id[B3_OUT_LEN])
{
	media_type_slot *s;

	if (!t || !media_types_fresh(t))
		return NULL;
	s = media_types_slot(t, id);
	return s->ctype[0] && memcmp(s->id, id, B3_OUT_LEN) == 0 ? s->ctype : NULL;
}

void media_type_read_count(const char *result)
{
	char l[48];

	snprintf(l, sizeof l, "result=\"%s\"", result);
	metrics_count("media_read_sniff_total", l, 1);
}

void media_type_recorded(objects *o, const uint8_t id[32], const stor_result *res,
                         const objcache_stamp *asked, char ctype[MEDIATYPE_MAX])
{
	if (res->status != 200 || !res->ctype || !res->ctype[0]) {
		media_type_read_count("unrecorded");
		log_kv(LOG_LEVEL_WARN, "sniffed media type not recorded", "status_msg",
		       res->message ? res->message : "", LOG_END);
		return;
	}
	media_type_read_count(res->ctype_by_read && strcmp(res->ctype, ctype) == 0 ? "recorded"
	                                                                           : "kept");
	snprintf(ctype, MEDIATYPE_MAX, "%s", res->ctype);
	if (!res->ctype_by_read)   /* a read's type may yet give way to an upload's */
		media_types_put(o->types, id, ctype, asked);
}

typedef struct media_get {
	objects  *o;
	http_req *req;            /* NULL once the client is gone */
	stor_call *call;
	uint8_t   id[B3_OUT_LEN];
	uint64_t  start_ns;
	objcache_stamp asked;     /* before META_GET: may its answer be remembered */
	char      filename[MEDIATYPE_FILENAME_MAX];
	bool      download;
} media_get;

static void media_refuse(http_req *r, const char *reason, const char *msg, uint64_t t0)
{
	char l[48];

	snprintf(l, sizeof l, "reason=\"%s\"", reason);
	metrics_count("media_refused_total", l, 1);
	reject_count(REJECT_FAMILY_NODE, REJECT_BAD_REQUEST);
	(void)http_reply_error(r, 400, "bad_request", msg, false, 0);
	facet_observe(FACET_MEDIA, (double)(util_now_ns() - t0) / 1e9);
}

/* The query: "" or download=<name>. 0, or -1 with *why set. */
static int media_query(const char *q, media_get *m, const char **reason, const char **why)
{
	size_t n;

	if (!q[0])
		return 0;
	if (strncmp(q, MEDIA_DOWNLOAD, strlen(MEDIA_DOWNLOAD)) != 0 || strchr(q, '&')) {
		*reason = "query";
		*why = "unknown query parameter: only download=<name> is accepted";
		return -1;
	}
	q += strlen(MEDIA_DOWNLOAD);
	n = strlen(q);
	if (!mediatype_filename_ok(q, n)) {
		*reason = "filename";
		*why = "bad download name: want 1-127 bytes of [A-Za-z0-9._-], not starting with '.', no '..'";
		return -1;
	}
	memcpy(m->filename, q, n + 1);
	m->download = true;
	return 0;
}

static void media_on_close(http_req *r, void *arg)
{
	media_get *m = arg;

	(void)r;
	m->req = NULL;
	if (m->call) {
		stor_call_cancel(m->call);
		free(m);
	}
}

static void media_on_meta(const stor_result *res, void *arg)
{
	media_get *m = arg;
	http_req *r = m->req;

	m->call = NULL;
	if (!r) {
		free(m);
		return;
	}
	http_req_on_close(r, NULL, NULL);
	if (res->status != 200) {
		objects_reply_stor_error(r, res);
		facet_observe(FACET_MEDIA, (double)(util_now_ns() - m->start_ns) / 1e9);
		free(m);
		return;
	}
	if (!res->ctype_by_read)   /* a read's type may yet give way to an upload's */
		media_types_put(m->o->types, m->id, res->ctype, &m->asked);
	objects_as as = { .ctype = res->ctype, .filename = m->download ? m->filename : NULL,
	                  .media = true, .start_ns = m->start_ns, .sniff = !res->ctype[0] };
	objects_get_as(r, m->o, m->id, &as);
	free(m);
}

static void media_on_get(http_req *r, void *arg)
{
	const char *rest = http_req_path(r) + strlen(MEDIA_PREFIX);
	const char *reason = NULL, *why = NULL;
	uint64_t t0 = util_now_ns();
	media_get *m;

	if (!(m = calloc(1, sizeof *m))) {
		(void)http_reply_error(r, 503, "unavailable", "out of memory", true, 1);
		return;
	}
	m->o = arg;
	m->req = r;
	m->start_ns = t0;
	if (b3_cid_parse(rest, strlen(rest), m->id) < 0) {
		free(m);
		media_refuse(r, "cid", "malformed object id: want b3:<64 lowercase hex>", t0);
		return;
	}
	if (media_query(http_req_query(r), m, &reason, &why) < 0) {
		free(m);
		media_refuse(r, reason, why, t0);
		return;
	}
	const char *known = media_types_get(m->o->types, m->id);
	if (known) {
		objects_as as = { .ctype = known, .filename = m->download ? m->filename : NULL,
		                  .media = true, .start_ns = t0 };
		objects_get_as(r, m->o, m->id, &as);
		free(m);
		return;
	}
	http_req_on_close(r, media_on_close, m);
	if (m->o->cache)
		m->asked = objcache_stamp_now(m->o->cache);
	m->call = stor_meta_get(m->o->stor, m->id, media_on_meta, m);
}

void media_routes(objects *o, http_route out[MEDIA_NROUTES])
{
	out[0] = (http_route){ MEDIA_M, MEDIA_PREFIX, "/media/{cid}",
	                       HTTP_ROUTE_PREFIX | HTTP_ROUTE_STREAM_BODY | HTTP_ROUTE_FACET,
	                       media_on_get, o };
}
