/*
 * dht_verify.c — the table of verifiers by kind (see dht_verify.h).
 */
#include "core/dht/dht_verify.h"

#include <string.h>

#include "core/dht/name_record.h"
#include "core/dht/node_record.h"
#include "core/dht/prov_record.h"

typedef struct dht_verifier {
	dht_reject (*verify)(const uint8_t key[DHT_KEY_LEN], const uint8_t *v, size_t n,
	                     uint64_t now_s);
	uint64_t   (*expires)(const uint8_t *v, size_t n);
	int        (*meta)(const uint8_t *v, size_t n, dht_meta *m);
} dht_verifier;

static dht_reject reject_of(prov_verdict pv)
{
	switch (pv) {
	case PROV_OK:          return DHT_REJECT_NONE;
	case PROV_E_OVERSIZED: return DHT_REJECT_OVERSIZED;
	case PROV_E_EXPIRED:   return DHT_REJECT_EXPIRED;
	case PROV_E_WRONG_CID: return DHT_REJECT_WRONG_KEY;
	case PROV_E_SIGNATURE: return DHT_REJECT_SIGNATURE;
	default:               return DHT_REJECT_MALFORMED;
	}
}

static dht_reject provider_verify(const uint8_t key[DHT_KEY_LEN], const uint8_t *v, size_t n,
                                  uint64_t now_s)
{
	prov_record r;

	return reject_of(prov_record_verify(v, n, key, NULL, now_s, &r));
}

static uint64_t provider_expires(const uint8_t *v, size_t n)
{
	prov_record r;

	return prov_record_decode(v, n, &r) == PROV_OK ? r.expires : 0;
}

static int provider_meta(const uint8_t *v, size_t n, dht_meta *m)
{
	prov_record r;

	if (prov_record_decode(v, n, &r) != PROV_OK)
		return -1;
	memcpy(m->signer, r.node_pk, sizeof m->signer);
	m->order = r.expires;
	prov_record_key(r.cid, m->key);
	return 0;
}

/* NAME: a signed name record (core/dht/name_record.h, the index service's),
 * for the name whose key it is stored under. Names do not expire: a newer
 * record supersedes an older one by seq, which the index judges. */
static dht_reject name_verify(const uint8_t key[DHT_KEY_LEN], const uint8_t *v, size_t n,
                              uint64_t now_s)
{
	name_record r;

	(void)now_s;
	switch (name_record_check(v, n, key, &r)) {
	case NAME_REC_OK:         return DHT_REJECT_NONE;
	case NAME_REC_OVERSIZED:  return DHT_REJECT_OVERSIZED;
	case NAME_REC_BAD_SIG:    return DHT_REJECT_SIGNATURE;
	case NAME_REC_WRONG_NAME: return DHT_REJECT_WRONG_KEY;
	default:                  return DHT_REJECT_MALFORMED;
	}
}

/* One signer's name records are ordered by seq (no rollback, docs/names.md). */
static int name_meta(const uint8_t *v, size_t n, dht_meta *m)
{
	name_record r;

	if (name_record_decode(v, n, &r) != NAME_REC_OK)
		return -1;
	memcpy(m->signer, r.node_pk, sizeof m->signer);
	m->order = r.seq;
	name_record_key(r.name, r.name_len, m->key);
	return 0;
}

/* NODE: a signed node record (core/dht/node_record.h) under the one
 * well-known key; expired ones are refused. */
static dht_reject node_verify(const uint8_t key[DHT_KEY_LEN], const uint8_t *v, size_t n,
                              uint64_t now_s)
{
	node_record r;

	return reject_of(node_record_verify(v, n, key, now_s, &r));
}

static uint64_t node_expires(const uint8_t *v, size_t n)
{
	node_record r;

	return node_record_decode(v, n, &r) == PROV_OK ? r.expires : 0;
}

static int node_meta(const uint8_t *v, size_t n, dht_meta *m)
{
	node_record r;

	if (node_record_decode(v, n, &r) != PROV_OK)
		return -1;
	memcpy(m->signer, r.node_pk, sizeof m->signer);
	m->order = r.expires;
	node_record_key(m->key);
	return 0;
}

static const dht_verifier dht_verifiers[DHT_KIND_LAST + 1] = {
	[DHT_KIND_PROVIDER] = { provider_verify, provider_expires, provider_meta },
	[DHT_KIND_NAME]     = { name_verify, NULL, name_meta },
	[DHT_KIND_NODE]     = { node_verify, node_expires, node_meta },
};

const char *dht_reject_name(dht_reject r)
{
	static const char *const names[DHT_REJECT_COUNT] = {
		[DHT_REJECT_NONE] = "none", [DHT_REJECT_OVERSIZED] = "oversized",
		[DHT_REJECT_MALFORMED] = "malformed", [DHT_REJECT_EXPIRED] = "expired",
		[DHT_REJECT_WRONG_KEY] = "wrong_key", [DHT_REJECT_SIGNATURE] = "bad_signature",
		[DHT_REJECT_UNVERIFIABLE] = "unverifiable", [DHT_REJECT_WRONG_ID] = "wrong_id",
		[DHT_REJECT_STALE] = "stale",
	};
	return (size_t)r < DHT_REJECT_COUNT ? names[r] : "malformed";
}

static const dht_verifier *verifier_of(dht_kind kind)
{
	if (kind < DHT_KIND_PROVIDER || kind > DHT_KIND_LAST)
		return NULL;
	return dht_verifiers[kind].verify ? &dht_verifiers[kind] : NULL;
}

dht_reject dht_verify(dht_kind kind, const uint8_t key[DHT_KEY_LEN], const uint8_t *v,
                      size_t n, uint64_t now_s)
{
	const dht_verifier *vf = verifier_of(kind);

	if (!vf)
		return DHT_REJECT_UNVERIFIABLE;
	if (n > DHT_VALUE_MAX)
		return DHT_REJECT_OVERSIZED;
	return vf->verify(key, v, n, now_s);
}

uint64_t dht_verify_expires(dht_kind kind, const uint8_t *v, size_t n)
{
	const dht_verifier *vf = verifier_of(kind);

	return vf && vf->expires ? vf->expires(v, n) : 0;
}

int dht_verify_meta(dht_kind kind, const uint8_t *v, size_t n, dht_meta *m)
{
	const dht_verifier *vf = verifier_of(kind);

	memset(m, 0, sizeof *m);
	if (!vf || !vf->meta || n > DHT_VALUE_MAX)
		return -1;
	return vf->meta(v, n, m);
}
