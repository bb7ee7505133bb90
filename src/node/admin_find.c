/*
 * admin_find.c — GET /api/v1/providers/b3:<hex> on the admin plane: the
 * providers the DHT names for a cid (the console's object box, and any
 * operator's curl). Read-only, so no admin token; asked of the dht service
 * over <runtime_dir>/dht.sock with the services' own client
 * (core/dht/dht_client.h), made on first use and kept.
 *
 * Bounded: at most ADMIN_FIND_MAX lookups at once (more → 503, counted as
 * rejected_total{reason="503"}); each ends by the dht service's
 * dht.lookup_timeout or the client's own deadline. A caller that goes away
 * cancels its lookup. Without the dht service: 200, no providers,
 * "dht":"disabled"; a lookup the dht service could not make: 503/504.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/dht/dht_client.h"
#include "core/identity/identity.h"
#include "core/metrics/reject.h"
#include "core/net/http.h"
#include "lib/b3.h"
#include "node/node.h"

#define ADMIN_FIND_PREFIX "/api/v1/providers/"
#define ADMIN_FIND_MAX    8u

typedef struct admin_find {
	supervisor *s;
	http_req   *r;
	dht_call   *call;
	uint8_t     cid[B3_OUT_LEN];
} admin_find;

static void find_end(admin_find *f)
{
	f->s->admin_finds--;
	free(f);
}

static void on_found(int status, const char *message, const dht_found *p, size_t n, void *arg)
{
	admin_find *f = arg;
	char cid[B3_CID_LEN + 1], id[IDENTITY_ID_TEXT];
	json_t *body, *list;
	char *txt;

	f->call = NULL;
	if (!f->r) {          /* the caller left while no handle could cancel this */
		find_end(f);
		return;
	}
	if (status != 200) {
		(void)http_reply_error(f->r, status == 504 ? 504 : 503, "dht_unavailable",
		                       message && message[0] ? message : "dht lookup failed", true, 1);
		find_end(f);
		return;
	}
	b3_cid_format(f->cid, cid);
	body = json_pack("{s:s, s:[]}", "cid", cid, "providers");
	list = body ? json_object_get(body, "providers") : NULL;
	for (size_t i = 0; list && i < n; i++) {
		identity_id_format(p[i].node_id, id);
		(void)json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:I}", "node_id", id,
		                                            "addr", p[i].oap_addr, "onion", p[i].onion,
		                                            "expires", (json_int_t)p[i].expires));
	}
	txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (txt)
		(void)http_reply_json(f->r, 200, txt);
	else
		(void)http_reply_error(f->r, 500, "internal", "cannot render body", true, 0);
	free(txt);
	find_end(f);
}

static void on_gone(http_req *r, void *arg)
{
	admin_find *f = arg;

	(void)r;
	f->r = NULL;
	if (!f->call)
		return;                     /* a call without a handle: on_found ends it */
	dht_call_cancel(f->call);       /* its callback does not run */
	find_end(f);
}

void admin_on_providers(http_req *r, void *arg)
{
	supervisor *s = arg;
	const char *path = http_req_path(r) + strlen(ADMIN_FIND_PREFIX);
	char sock[CONFIG_PATH_MAX + 16];
	uint8_t cid[B3_OUT_LEN];
	admin_find *f;

	if (b3_cid_parse(path, strlen(path), cid) != 0) {
		(void)http_reply_error(r, 400, "bad_cid", "expected /api/v1/providers/b3:<64 hex>",
		                       false, 0);
		return;
	}
	if (!(s->cfg.services & CONFIG_SVC_DHT)) {
		/* Not an error: this node simply knows no providers. */
		char body[B3_CID_LEN + 64], txt[B3_CID_LEN + 1];
		b3_cid_format(cid, txt);
		snprintf(body, sizeof body, "{\"cid\":\"%s\",\"providers\":[],\"dht\":\"disabled\"}", txt);
		(void)http_reply_json(r, 200, body);
		return;
	}
	if (s->admin_finds >= ADMIN_FIND_MAX) {
		reject_count(REJECT_FAMILY_NODE, REJECT_503);
		(void)http_reply_error(r, 503, "overloaded", "too many provider lookups at once",
		                       true, 1);
		return;
	}
	if (!s->admin_dht) {
		snprintf(sock, sizeof sock, "%s/%s", s->runtime_dir, DHT_SOCKET);
		s->admin_dht = dht_client_new(s->base, sock);
	}
	if (!s->admin_dht || !(f = calloc(1, sizeof *f))) {
		(void)http_reply_error(r, 500, "internal", "out of memory", true, 0);
		return;
	}
	f->s = s;
	f->r = r;
	memcpy(f->cid, cid, sizeof cid);
	s->admin_finds++;
	http_req_on_close(r, on_gone, f);
	f->call = dht_find_providers(s->admin_dht, cid, on_found, f);
	/* NULL: no memory for the call; on_found still runs (503) and ends it. */
}
