/*
 * node_record.c — node records: encode, sign, decode, verify (see
 * node_record.h). The signed bytes are hashed with their own domain prefix,
 * so a node record's signature is never valid as a provider or name record.
 */
#include "core/dht/node_record.h"

#include <string.h>
#include <sys/socket.h>

#include "core/config/config.h"
#include "lib/b3.h"
#include "lib/wire.h"

#define NODE_SIGNED_MAX (NODE_RECORD_MAX - IDENTITY_SIG_LEN)
#define NODE_DOMAIN_MAX 32u

static void node_hash(const char *domain, const uint8_t *p, size_t n, uint8_t out[B3_OUT_LEN])
{
	uint8_t buf[NODE_DOMAIN_MAX + NODE_SIGNED_MAX];
	size_t d = strlen(domain);

	memcpy(buf, domain, d);
	if (n)
		memcpy(buf + d, p, n);
	b3_hash(buf, d + n, out);
}

void node_record_key(uint8_t key[32])
{
	node_hash(NODE_KEY_DOMAIN, NULL, 0, key);
}

static unsigned node_version_of(const node_record *r)
{
	return r->onion[0] ? NODE_RECORD_ONION : NODE_RECORD_VERSION;
}

static bool node_life_ok(uint64_t issued, uint64_t expires)
{
	return expires > issued && expires - issued <= NODE_TTL_MAX_S;
}

static void node_put_signed(wire_w *w, const node_record *r)
{
	unsigned v = node_version_of(r);

	if (!prov_addrs_ok(v, r->oap_addr, r->onion) || !node_life_ok(r->issued, r->expires)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, (uint8_t)v);
	wire_put_raw(w, r->node_pk, IDENTITY_PK_LEN);
	wire_put_str(w, r->oap_addr);
	if (v == NODE_RECORD_ONION)
		wire_put_str(w, r->onion);
	wire_put_u64(w, r->issued);
	wire_put_u64(w, r->expires);
}

int node_record_sign(node_record *r, const node_identity *id, const char *oap_addr,
                     uint64_t now_s, uint64_t ttl_s)
{
	return node_record_sign_onion(r, id, oap_addr, NULL, now_s, ttl_s);
}

int node_record_sign_onion(node_record *r, const node_identity *id, const char *oap_addr,
                           const char *onion, uint64_t now_s, uint64_t ttl_s)
{
	uint8_t buf[NODE_SIGNED_MAX], digest[B3_OUT_LEN];
	wire_w w;

	memset(r, 0, sizeof *r);
	if (!onion)
		onion = "";
	if (!prov_addrs_ok(onion[0] ? NODE_RECORD_ONION : NODE_RECORD_VERSION, oap_addr, onion) ||
	    ttl_s == 0 || ttl_s > NODE_TTL_MAX_S)
		return -1;
	memcpy(r->node_pk, id->pk, IDENTITY_PK_LEN);
	memcpy(r->oap_addr, oap_addr, strlen(oap_addr) + 1);
	memcpy(r->onion, onion, strlen(onion) + 1);
	r->issued = now_s;
	r->expires = now_s + ttl_s;
	wire_w_init(&w, buf, sizeof buf);
	node_put_signed(&w, r);
	if (wire_w_ok(&w) != 0)
		return -1;
	node_hash(NODE_SIG_DOMAIN, buf, w.len, digest);
	return identity_sign(id, digest, sizeof digest, r->sig);
}

ssize_t node_record_encode(const node_record *r, uint8_t *buf, size_t cap)
{
	wire_w w;

	wire_w_init(&w, buf, cap);
	node_put_signed(&w, r);
	wire_put_raw(&w, r->sig, IDENTITY_SIG_LEN);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

prov_verdict node_record_decode(const uint8_t *p, size_t n, node_record *r)
{
	wire_r rd;

	memset(r, 0, sizeof *r);
	if (n > NODE_RECORD_MAX)
		return PROV_E_OVERSIZED;
	wire_r_init(&rd, p, n);
	unsigned v = wire_get_u8(&rd);
	if (v != NODE_RECORD_VERSION && v != NODE_RECORD_ONION)
		rd.bad = true;
	wire_get_raw(&rd, r->node_pk, IDENTITY_PK_LEN);
	wire_get_str(&rd, r->oap_addr, sizeof r->oap_addr);
	if (v == NODE_RECORD_ONION)
		wire_get_str(&rd, r->onion, sizeof r->onion);
	r->issued = wire_get_u64(&rd);
	r->expires = wire_get_u64(&rd);
	wire_get_raw(&rd, r->sig, IDENTITY_SIG_LEN);
	if (wire_end(&rd) != 0 || !prov_addrs_ok(v, r->oap_addr, r->onion) ||
	    !node_life_ok(r->issued, r->expires)) {
		memset(r, 0, sizeof *r);
		return PROV_E_MALFORMED;
	}
	return PROV_OK;
}

static prov_verdict node_refuse(node_record *r, prov_verdict v)
{
	memset(r, 0, sizeof *r);
	return v;
}

prov_verdict node_record_verify(const uint8_t *p, size_t n, const uint8_t *key, uint64_t now_s,
                                node_record *r)
{
	uint8_t digest[B3_OUT_LEN], k[32];
	prov_verdict v = node_record_decode(p, n, r);

	if (v != PROV_OK)
		return v;
	if (r->issued > now_s + PROV_CLOCK_SKEW_S)
		return node_refuse(r, PROV_E_MALFORMED);
	if (r->expires <= now_s)
		return node_refuse(r, PROV_E_EXPIRED);
	node_record_key(k);
	if (key && memcmp(k, key, sizeof k) != 0)
		return node_refuse(r, PROV_E_WRONG_CID);
	node_hash(NODE_SIG_DOMAIN, p, n - IDENTITY_SIG_LEN, digest);
	if (!identity_verify(r->node_pk, digest, sizeof digest, r->sig))
		return node_refuse(r, PROV_E_SIGNATURE);
	return PROV_OK;
}
