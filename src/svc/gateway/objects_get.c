/*
 * objects_get.c — GET/HEAD /o/{b3}: serve an object, never a byte that does
 * not match its id.
 *
 * Verify before serve: OPEN hands us the blob and its outboard (one BLAKE3
 * chaining value per 64 KiB group). The blob's size is checked against the
 * stored length and the whole outboard against the id (b3tree_outboard_ok:
 * O(groups) compressions, no blob bytes read) once per handle; the worker
 * keeps the handle (blob fd + the checked outboard) for the next requests
 * (core/objects/objcache.h: bounded, dropped when storage's removal epoch
 * moves), so a hot object costs no storage round trip. On every request,
 * before the status line the first group the response needs is read and
 * checked against the outboard, and every further group is read into a
 * pooled 64 KiB buffer and checked before any of its bytes are written —
 * then that very buffer is handed to the socket (evbuffer_add_reference),
 * never copied again. So a 1 MiB range from the middle of a 1 GiB object
 * costs 17 group reads and hashes once its handle is open.
 *
 * Memory per request: the group buffers queued in its output (at most the
 * output high-water mark, 256 KiB, plus one).
 *
 * A mismatch before the status line → 502 envelope "integrity"; after it →
 * http_resp_abort (the client sees a short body, never a wrong one). Either
 * way the object is quarantined in storage, so the next request gets 502 at
 * once, and integrity_fail_total{object="blob"} / rejected_total
 * {reason="integrity"} count it.
 *
 * HEAD and 304 answers need no bytes: they use STAT, which still answers 502
 * for a quarantined object.
 *
 * /media of an object with no recorded type (as.sniff) opens it even for
 * HEAD: once the handle is checked, the first group is loaded and
 * verified, its first bytes go to the sniff thread (sniff.h), the type
 * libmagic names is recorded as a read's (META_SET, storage keeps an
 * upload's over it) and the answer — headers, or the parts of a multipart
 * answer — carries the type in force. Only then does serving go on as
 * below.
 *
 * Two or more ranges (after range_parse merged the overlapping and adjacent
 * ones; at most gateway.max_ranges asked) are one 206 multipart/byteranges
 * answer whose framing objects_multi.c lays out: the parts go ascending,
 * each part's head is written only once its first group checked out, and
 * each of its groups is checked before its bytes are written, exactly as
 * for one range. A group that ends one part and starts the next is read
 * and checked once (copied into the output rather than handed over, so it
 * stays held). More ranges than the cap → 416, counted.
 *
 * A miss with the overlay running asks it for the object (FETCH: fetched,
 * verified, stored, then opened here like any stored object) — or, for a
 * GET with one closed Range (bytes=S-E) of at most overlay.range_fetch_max
 * bytes, for just the groups the range needs (FETCH_RANGE: a sparse memfd
 * and the outboard, verified by the overlay, served through the same
 * verified path as storage's fds, never stored). 501 (no provider serves
 * ranges) falls back to FETCH.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics/facet.h"
#include "core/metrics/metrics.h"
#include "core/objects/mediatype.h"
#include "core/objects/objstore.h"
#include "core/net/range.h"
#include "lib/b3.h"
#include "lib/b3tree.h"
#include "lib/log.h"
#include "lib/util.h"
#include "svc/gateway/media.h"
#include "svc/gateway/objects.h"
#include "svc/gateway/sniff.h"

#define OBJ_CACHE_CONTROL "public, max-age=31536000, immutable"

/* What the answer needs from storage. */
typedef enum obj_get_mode {
	GET_BODY = 0,        /* OPEN: 200/206/416 with verified bytes */
	GET_HEAD,            /* STAT: 200 headers only */
	GET_NOT_MODIFIED,    /* STAT: 304 */
} obj_get_mode;

typedef struct obj_get {
	objects       *o;
	http_req      *req;       /* NULL once the client is gone (orphan) */
	stor_call     *call;      /* OPEN/STAT in flight, when cancellable */
	ovl_call      *ocall;     /* the overlay's FETCH in flight, when cancellable */
	bool           fetched;   /* the overlay was asked once already */
	bool           ranged;    /* v holds a FETCH_RANGE result, not storage's fds */
	bool           range_slot; /* counted in o->range_held until freed */
	bool           awaiting;  /* a storage callback is still to come */
	objcache_stamp stamp;     /* taken before OPEN: may its answer be kept */
	obj_get_mode   mode;
	uint8_t        id[B3_OUT_LEN];
	char           etag[OBJECTS_ETAG_LEN + 1];
	objv           v;         /* blob, outboard and the group buffer */
	uint64_t       len;
	uint64_t       next, end; /* bytes still to send: [next, end] inclusive */
	objects_multi *multi;     /* several ranges: the parts, or NULL */
	bool           sending;   /* status line written */
	bool           pushed;    /* the first bytes were pushed out */
	/* /media/{cid} (media.c): the recorded type, a Content-Disposition,
	 * and the facet's latency from start_ns; /o: octet-stream, none. */
	bool           media;
	uint64_t       start_ns;
	char           ctype[MEDIATYPE_MAX];
	char           disp[MEDIATYPE_FILENAME_MAX + 32];
	/* /media without a recorded type: sniff before the answer (OPEN even
	 * for HEAD), the job while the sniff thread has it, and the stamp
	 * before META_SET (may its answer be remembered, media.h). */
	bool           sniff;
	sniff_job     *sjob;
	objcache_stamp asked;
} obj_get;

/* ---- request state ------------------------------------------------------ */

static void get_free(obj_get *g)
{
	if (g->call)
		stor_call_cancel(g->call);
	if (g->ocall)
		ovl_call_cancel(g->ocall);
	sniff_job_cancel(g->sjob);
	objv_close(&g->v);   /* the handle stays in the cache if it is kept there */
	objects_multi_free(g->multi);
	if (g->range_slot)
		g->o->range_held--;
	if (g->media)
		facet_observe(FACET_MEDIA, (double)(util_now_ns() - g->start_ns) / 1e9);
	free(g);
}

/* The client went away before the response ended. A call that could not
 * be queued has no handle to cancel: its callback still comes, and frees. */
static void get_on_close(http_req *r, void *arg)
{
	obj_get *g = arg;

	(void)r;
	g->req = NULL;
	if (g->awaiting && !g->call && !g->ocall)
		return;
	get_free(g);
}

/* The blob does not match its id: count, log, quarantine, then 502 or cut. */
static void get_integrity_fail(obj_get *g, const char *what)
{
	http_req *r = g->req;

	/* A range result is the overlay's memfd, checked there group by group:
	 * not storage's object, nothing to quarantine, and a bug if it fails. */
	if (g->ranged) {
		(void)BUG("a range fetched by the overlay failed verification");
		log_kv(LOG_LEVEL_ERROR, "overlay range result refused", "reason", what, "corr_id",
		       http_req_corr_id(r), LOG_END);
	} else {
		objcache_forget(g->o->cache, g->id);
		objstore_integrity_fail(g->o->stor, g->o->audit, g->id, what, http_req_corr_id(r));
	}
	if (g->sending)
		http_resp_abort(r);
	else
		(void)http_reply_error(r, 502, "integrity", "object failed verification", false, 0);
	get_free(g);
}

/* ---- conditional requests --------------------------------------------- */

static bool get_is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* If-None-Match: "*" or a list of entity-tags, weak comparison (RFC 9110
 * §13.1.2). Elements are split at commas (our tags contain none). v is the
 * header value, never NULL (the caller checks). */
static bool get_inm_matches(const char *v, const char *etag)
{
	size_t elen = strlen(etag);

	while (*v) {
		const char *b = v, *e;
		size_t n;

		while (get_is_ows(*b) || *b == ',')
			b++;
		for (e = b; *e && *e != ','; e++)
			;
		v = e;
		n = (size_t)(e - b);
		while (n && get_is_ows(b[n - 1]))
			n--;
		if (n == 1 && b[0] == '*')
			return true;
		if (n >= 2 && b[0] == 'W' && b[1] == '/') {
			b += 2;
			n -= 2;
		}
		if (n == elen && memcmp(b, etag, elen) == 0)
			return true;
	}
	return false;
}

/* The headers every 200/206/304/HEAD answer carries. */
static int get_cache_headers(obj_get *g)
{
	if (http_resp_header(g->req, "ETag", g->etag) < 0 ||
	    http_resp_header(g->req, "Cache-Control", OBJ_CACHE_CONTROL) < 0)
		return -1;
	return 0;
}

static int get_full_headers(obj_get *g, const char *content_type)
{
	if (get_cache_headers(g) < 0 ||
	    http_resp_header(g->req, "Accept-Ranges", "bytes") < 0 ||
	    http_resp_header(g->req, "Content-Type", content_type) < 0)
		return -1;
	if (g->disp[0] && http_resp_header(g->req, "Content-Disposition", g->disp) < 0)
		return -1;
	/* A recorded type is the uploader's word: never let a browser guess
	 * past it. */
	if (g->media && http_resp_header(g->req, "X-Content-Type-Options", "nosniff") < 0)
		return -1;
	return 0;
}

/* HEAD, or a 304: no bytes needed, STAT said the object exists and is not
 * quarantined. */
static void get_answer_headless(obj_get *g, uint64_t len, bool not_modified)
{
	http_req *r = g->req;
	int rc;

	if (not_modified)
		rc = get_cache_headers(g) < 0 ? -1 : http_resp_start(r, 304, -1);
	else
		rc = get_full_headers(g, g->ctype) < 0 ? -1 : http_resp_start(r, 200, (int64_t)len);
	if (rc == 0)
		(void)http_resp_end(r);
	else
		(void)http_reply_error(r, 500, "internal", "cannot build the response", false, 0);
	get_free(g);
}

/* ---- verified streaming ------------------------------------------------ */

/* What the reader said: 0, or -1 when answered (502 or cut for integrity,
 * else 500: stat, map and buffer all come before the status line). */
static int get_verdict(obj_get *g, objv_result rc, const char *const *why)
{
	switch (rc) {
	case OBJV_OK:
		return 0;
	case OBJV_INTEGRITY:
		get_integrity_fail(g, *why);
		break;
	default:
		(void)http_reply_error(g->req, 500, "internal", *why, true, 0);
		get_free(g);
		break;
	}
	return -1;
}

static void get_pump(http_req *r, void *arg);

/* Multipart: the next part, if any, becomes [next, end]. */
static bool get_next_part(obj_get *g)
{
	objects_multi *m = g->multi;

	if (!m || m->part + 1 >= m->n)
		return false;
	m->part++;
	m->head_sent = false;
	g->next = m->spans[m->part].start;
	g->end = m->spans[m->part].end;
	return true;
}

/* Multipart: the current part's delimiter and headers, or the close
 * delimiter once all parts are out (copied into the output). 0/-1. */
static int get_write_frame(obj_get *g, bool tail)
{
	char buf[OBJECTS_PART_HEAD_MAX];
	size_t n = tail ? objects_multi_tail(g->multi, buf)
	                : objects_multi_head(g->multi, g->multi->part, buf);

	g->multi->head_sent = true;
	return n ? http_resp_write(g->req, buf, n) : -1;
}

/* Does the part being sent end in the held group, and the next one start
 * there? Then the group stays held (its bytes are copied, not handed
 * over) and the next part needs no second read. */
static bool get_keeps_group(const obj_get *g, size_t n)
{
	const objects_multi *m = g->multi;

	if (!m || m->part + 1 >= m->n || g->next + n <= g->end)
		return false;
	return m->spans[m->part + 1].start / B3TREE_GROUP_LEN == g->end / B3TREE_GROUP_LEN;
}

/* Write what the verified group holds of [next, end]; *n: how many. 0/-1
 * (-1: the connection is gone or the write failed: abort). */
static int get_write_group(obj_get *g, size_t *n)
{
	const uint8_t *p = objv_bytes(&g->v, g->next, g->end - g->next + 1, n);

	if (get_keeps_group(g, *n))
		return http_resp_write(g->req, p, *n);
	/* The verified buffer itself goes to the socket (no copy). */
	p = objv_take(&g->v, g->next, g->end - g->next + 1, n);
	if (http_resp_write_ref(g->req, p, *n, objcache_buf_release, objv_cache(&g->v)) < 0) {
		objcache_buf_release(p, *n, objv_cache(&g->v));   /* not taken */
		return -1;
	}
	return 0;
}

/* Write what the loaded group holds of [next, end] (and of the parts after
 * it); load the following groups until the output is above the high-water
 * mark or all is sent. */
static void get_pump(http_req *r, void *arg)
{
	obj_get *g = arg;
	const char *why = NULL;

	while (g->len && (g->next <= g->end || get_next_part(g))) {
		size_t n;

		if (http_resp_pending(r) >= HTTP_OUT_HIGH_WATER) {
			http_req_on_drain(r, get_pump, g);
			return;
		}
		if (get_verdict(g, objv_load(&g->v, g->next, &why), &why) < 0)
			return;
		/* A part's head leaves only once its first group checked out. */
		if ((g->multi && !g->multi->head_sent && get_write_frame(g, false) < 0) ||
		    get_write_group(g, &n) < 0) {
			http_resp_abort(r);  /* no-op if the write already aborted it */
			get_free(g);
			return;
		}
		g->next += n;
		/* The status line and the first group leave now, before the
		 * next groups are read: the time to the first byte is one
		 * group's read and hash, not a high-water mark's. */
		if (!g->pushed) {
			g->pushed = true;
			if (!http_resp_push(r) && g->next <= g->end) {
				/* TLS: let the loop write it before reading on */
				http_req_after_write(r, get_pump, g);
				return;
			}
		}
	}
	if (g->multi && get_write_frame(g, true) < 0)
		http_resp_abort(r);
	else
		(void)http_resp_end(r);
	get_free(g);
}

/* 416: no range of the set names a byte, or more ranges than the cap. */
static void get_refuse_range(obj_get *g, range_result rr)
{
	char cr[48], msg[64];

	snprintf(cr, sizeof cr, "bytes */%" PRIu64, g->len);
	(void)http_resp_header(g->req, "Content-Range", cr);
	if (rr == RANGE_TOO_MANY) {
		metrics_count("range_refused_total", "reason=\"too_many\"", 1);
		snprintf(msg, sizeof msg, "more than %" PRIu32 " ranges", g->o->max_ranges);
	} else {
		metrics_count("range_refused_total", "reason=\"unsatisfiable\"", 1);
		snprintf(msg, sizeof msg, "range outside the object");
	}
	(void)http_reply_error(g->req, 416, "range_not_satisfiable", msg, false, 0);
	get_free(g);
}

/* The answer's framing for the ranges picked: Content-Range for one, the
 * parts for several. 0/-1 (out of memory). */
static int get_frame_ranges(obj_get *g, range_result rr, const range_span *sp, size_t n)
{
	char cr[80];

	if (rr == RANGE_MULTI) {
		g->multi = objects_multi_new(sp, n, g->len, g->ctype);
		if (!g->multi)
			return -1;
		metrics_count("range_multipart_total", "", 1);
	} else {
		snprintf(cr, sizeof cr, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, sp[0].start,
		         sp[0].end, g->len);
		if (http_resp_header(g->req, "Content-Range", cr) < 0)
			return -1;
	}
	g->next = sp[0].start;
	g->end = sp[0].end;
	return 0;
}

/* Range and If-Range → status and [next, end] (the first part's, with
 * several). -1 when answered (416, 500). */
static int get_pick_range(obj_get *g, int *status)
{
	http_req *r = g->req;
	const char *rh = http_req_header(r, "Range");
	const char *ir = http_req_header(r, "If-Range");
	range_span sp[RANGE_MAX_SPANS];   /* 4 KiB */
	size_t n = 0;
	range_result rr;

	/* If-Range: the range only if the (strong) validator is ours; a date
	 * never matches, we send no Last-Modified. */
	if (ir && strcmp(ir, g->etag) != 0)
		rh = NULL;
	rr = range_parse(rh, rh ? strlen(rh) : 0, g->len, sp, g->o->max_ranges, &n);
	if (rr == RANGE_UNSATISFIABLE || rr == RANGE_TOO_MANY) {
		get_refuse_range(g, rr);
		return -1;
	}
	if (rr == RANGE_ONE || rr == RANGE_MULTI) {
		if (get_frame_ranges(g, rr, sp, n) < 0) {
			(void)http_reply_error(r, 500, "internal", "cannot build the response", false, 0);
			get_free(g);
			return -1;
		}
		*status = 206;
		return 0;
	}
	if (rr == RANGE_MALFORMED)   /* ignored (RFC 9110 §14.2) */
		metrics_count("range_refused_total", "reason=\"malformed\"", 1);
	*status = 200;
	g->next = 0;
	g->end = g->len ? g->len - 1 : 0;
	return 0;
}

/* Headers and status line: the body is one range, or the multipart
 * framing around several (its length known before a byte is sent). */
static int get_start(obj_get *g, int status)
{
	char ct[OBJECTS_BOUNDARY_LEN + 64];
	int64_t clen = g->len ? (int64_t)(g->end - g->next + 1) : 0;

	if (!g->multi)
		return get_full_headers(g, g->ctype) < 0 ? -1 : http_resp_start(g->req, status, clen);
	clen = objects_multi_body_len(g->multi);
	objects_multi_content_type(g->multi, ct, sizeof ct);
	if (clen < 0 || get_full_headers(g, ct) < 0)
		return -1;
	return http_resp_start(g->req, status, clen);
}

static void get_sniff(obj_get *g);

static void get_serve(obj_get *g)
{
	http_req *r = g->req;
	const char *why = NULL;
	int status;

	/* Sizes and the outboard against the id, once per handle: a range
	 * result is the overlay's private memfd, never kept. */
	if (!objv_is_open(&g->v) &&
	    get_verdict(g, objv_open(&g->v, g->ranged ? NULL : &g->stamp, g->id, g->len, &why),
	                &why) < 0)
		return;
	if (g->sniff) {
		get_sniff(g);   /* comes back here with the type */
		return;
	}
	if (g->mode != GET_BODY) {   /* a HEAD that opened the object to sniff it */
		get_answer_headless(g, g->len, false);
		return;
	}
	if (get_pick_range(g, &status) < 0)
		return;
	/* The first group the answer needs, checked before the status line
	 * (for the empty object: its one empty group, against the id). */
	if (get_verdict(g, objv_load(&g->v, g->next, &why), &why) < 0)
		return;
	if (get_start(g, status) < 0) {
		(void)http_reply_error(r, 500, "internal", "cannot build the response", false, 0);
		get_free(g);
		return;
	}
	g->sending = true;
	get_pump(r, g);
}

/* ---- a type sniffed on read (/media, docs/media.md) --------------------- */

/* Storage recorded the sniffed type, or holds one already (the uploader's,
 * or another read's: that one is served), or could not (the sniffed one is
 * served all the same). */
static void get_on_recorded(const stor_result *res, void *arg)
{
	obj_get *g = arg;

	g->call = NULL;
	g->awaiting = false;
	media_type_recorded(g->o, g->id, res, &g->asked, g->ctype);
	if (!g->req) {
		get_free(g);
		return;
	}
	get_serve(g);
}

/* libmagic's reading, from the sniff thread: record it (the first recorded
 * stays) before the answer names it. */
static void get_on_sniffed(const char *ctype, void *arg)
{
	obj_get *g = arg;

	g->sjob = NULL;
	if (!ctype[0]) {
		media_type_read_count("default");
		get_serve(g);
		return;
	}
	snprintf(g->ctype, sizeof g->ctype, "%s", ctype);
	g->awaiting = true;
	g->asked = objcache_stamp_now(g->o->cache);
	g->call = stor_meta_set(g->o->stor, g->id, g->ctype, true, get_on_recorded, g);
}

/* Only bytes that passed verification are looked at: the first group,
 * checked against the outboard (itself checked against the id). An empty
 * object, or a range the overlay fetched without the first group, is not
 * sniffed. Nothing free on the sniff pool → octet-stream now, counted; the
 * next read tries again. */
static void get_sniff(obj_get *g)
{
	const char *why = NULL;
	const uint8_t *p;
	size_t n = 0;

	g->sniff = false;
	if (g->len == 0 || g->ranged) {
		get_serve(g);
		return;
	}
	if (get_verdict(g, objv_load(&g->v, 0, &why), &why) < 0)
		return;
	p = objv_bytes(&g->v, 0, MEDIATYPE_SNIFF_MAX, &n);
	if (!(g->sjob = sniffq_submit(g->o->sniff, p, n, get_on_sniffed, g))) {
		media_type_read_count(g->o->sniff ? "busy" : "default");
		get_serve(g);
	}
}

static void get_on_stor(const stor_result *res, void *arg);

/* Ask storage (again): OPEN for bytes (and for a type to sniff), STAT for
 * headers only. */
static void get_ask_storage(obj_get *g)
{
	stor_client *stor = g->o->stor;

	g->awaiting = true;
	g->stamp = objcache_stamp_now(g->o->cache);
	g->call = g->mode == GET_BODY || g->sniff ? stor_open(stor, g->id, get_on_stor, g)
	                                          : stor_stat(stor, g->id, get_on_stor, g);
}

/* The overlay fetched the object into storage (200), or says why not. */
static void get_on_fetched(int status, uint64_t len, const char *message, void *arg)
{
	obj_get *g = arg;

	(void)len;
	g->ocall = NULL;
	g->awaiting = false;
	if (!g->req) {
		get_free(g);
		return;
	}
	if (status != 200) {
		objects_reply_ovl_error(g->req, status, message);
		get_free(g);
		return;
	}
	get_ask_storage(g);   /* served from storage like any local object, verified */
}

/* The overlay's groups of a range (200: two memfds, ours), or 501: no
 * provider serves ranges, so ask for the whole object. */
static void get_on_range(int status, uint64_t len, int blob_fd, int ob_fd, const char *message,
                         void *arg)
{
	obj_get *g = arg;

	g->ocall = NULL;
	g->awaiting = false;
	objv_adopt(&g->v, blob_fd, ob_fd);
	if (!g->req) {
		get_free(g);   /* orphan: closes the fds */
		return;
	}
	if (status == 501) {
		g->awaiting = true;
		g->ocall = ovl_fetch(g->o->ovl, g->id, OVL_MODE_CACHE, get_on_fetched, g);
		return;
	}
	if (status != 200) {
		objects_reply_ovl_error(g->req, status, message);
		get_free(g);
		return;
	}
	g->ranged = true;
	g->len = len;
	get_serve(g);   /* the same verified path as a stored object */
}

/* A single closed range (bytes=S-E, both ends named, so it does not depend
 * on the length we do not know yet; or closed ranges that merge into one) of at most range_fetch_max bytes, that
 * If-Range does not void: [*s, *e]. Parsed against two lengths: an open or
 * suffix range would come out differently. */
static bool get_range_wanted(const obj_get *g, uint64_t *s, uint64_t *e)
{
	const char *rh = http_req_header(g->req, "Range");
	const char *ir = http_req_header(g->req, "If-Range");
	range_span a[RANGE_MAX_SPANS], b[RANGE_MAX_SPANS];   /* 8 KiB */
	size_t na, nb;

	if (!rh || (ir && strcmp(ir, g->etag) != 0) || g->o->range_fetch_max == 0)
		return false;
	/* Several ranges that merge into one closed range qualify too; a
	 * set of several is fetched whole. */
	if (range_parse(rh, strlen(rh), UINT64_MAX, a, g->o->max_ranges, &na) != RANGE_ONE ||
	    range_parse(rh, strlen(rh), UINT64_MAX - 1, b, g->o->max_ranges, &nb) != RANGE_ONE ||
	    a[0].start != b[0].start || a[0].end != b[0].end)
		return false;
	*s = a[0].start;
	*e = a[0].end;
	return *e - *s < g->o->range_fetch_max;
}

/* A local miss with the overlay running: fetch it from the network once
 * (only the range's groups when that is all the answer needs). */
static bool get_try_overlay(obj_get *g, const stor_result *res)
{
	objects *o = g->o;
	uint64_t s, e;

	if (res->status != 404 || !o->ovl || !o->fetch_on_miss || g->fetched)
		return false;
	g->fetched = true;
	g->awaiting = true;
	if (g->mode == GET_BODY && get_range_wanted(g, &s, &e)) {
		if (o->range_held < OBJECTS_RANGE_HELD_MAX) {
			o->range_held++;
			g->range_slot = true;
			g->ocall = ovl_fetch_range(o->ovl, g->id, s, e, get_on_range, g);
			return true;
		}
		metrics_count("range_fetch_fallback_total", "reason=\"held\"", 1);
	}
	g->ocall = ovl_fetch(o->ovl, g->id, OVL_MODE_CACHE, get_on_fetched, g);
	return true;
}

static void get_on_stor(const stor_result *res, void *arg)
{
	obj_get *g = arg;
	http_req *r = g->req;
	bool headless = g->mode != GET_BODY && !g->sniff;
	int blob = headless ? -1 : res->fds[0], ob = headless ? -1 : res->fds[1];

	g->call = NULL;
	g->awaiting = false;
	objv_adopt(&g->v, blob, ob);
	if (!r) {
		get_free(g);  /* orphan: closes the fds */
		return;
	}
	if (res->status != 200) {
		if (get_try_overlay(g, res))
			return;
		objects_reply_stor_error(r, res);
		get_free(g);
		return;
	}
	g->len = res->len;
	if (headless) {
		get_answer_headless(g, res->len, g->mode == GET_NOT_MODIFIED);
		return;
	}
	if (blob < 0 || ob < 0) {
		(void)BUG("storage OPEN answered 200 without two fds");
		(void)http_reply_error(r, 500, "internal", "storage error", true, 0);
		get_free(g);
		return;
	}
	get_serve(g);
}

void objects_get_as(http_req *r, objects *o, const uint8_t id[32], const objects_as *as)
{
	obj_get *g = calloc(1, sizeof *g);
	const char *inm = http_req_header(r, "If-None-Match");
	objh *h;

	if (!g) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return;
	}
	g->o = o;
	g->req = r;
	snprintf(g->ctype, sizeof g->ctype, "%s", as && as->ctype && as->ctype[0] ? as->ctype
	                                                                         : OBJECTS_CONTENT_TYPE);
	if (as && as->filename)
		snprintf(g->disp, sizeof g->disp, "attachment; filename=\"%s\"", as->filename);
	if (as && as->media) {
		g->media = true;
		g->start_ns = as->start_ns;
		g->sniff = as->sniff;
	}
	objv_init(&g->v, o->cache);
	memcpy(g->id, id, B3_OUT_LEN);
	objects_etag(id, g->etag);
	/* A matching If-None-Match (GET or HEAD) and HEAD need no bytes: STAT.
	 * Range is ignored on HEAD (RFC 9110 §14.2: defined for GET only). */
	if (inm && get_inm_matches(inm, g->etag))
		g->mode = GET_NOT_MODIFIED;
	else if (http_req_method_bit(r) == HTTP_M_HEAD)
		g->mode = GET_HEAD;
	else
		g->mode = GET_BODY;
	if (g->mode == GET_NOT_MODIFIED)
		g->sniff = false;   /* a 304 names no type */
	http_req_on_close(r, get_on_close, g);
	/* An open handle answers without storage: the object was servable when
	 * it was opened and no removal happened since (objcache.h). */
	if ((h = objcache_find(o->cache, id))) {
		g->len = h->len;
		if (g->mode != GET_BODY && !g->sniff) {
			objh_unref(h);
			get_answer_headless(g, g->len, g->mode == GET_NOT_MODIFIED);
			return;
		}
		objv_attach(&g->v, h);
		get_serve(g);
		return;
	}
	get_ask_storage(g);
}

void objects_get(http_req *r, objects *o, const uint8_t id[32])
{
	objects_get_as(r, o, id, NULL);
}
