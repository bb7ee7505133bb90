/*
 * prov_record.c — provider records: encode, sign, decode, verify (see
 * prov_record.h). The signed bytes are the encoding up to the signature,
 * hashed with a domain prefix so that a signature over a provider record can
 * never be replayed as any other message of the node key.
 */
#include "core/dht/prov_record.h"

#include <string.h>
#include <sys/socket.h>

#include "core/config/config.h"
#include "core/tor/onion.h"
#include "lib/b3.h"
#include "lib/wire.h"

#define PROV_SIGNED_MAX (PROV_RECORD_MAX - IDENTITY_SIG_LEN)
#define PROV_DOMAIN_MAX 32u

const char *prov_verdict_name(prov_verdict v)
{
	static const char *const names[] = {
		[PROV_OK] = "ok", [PROV_E_OVERSIZED] = "oversized", [PROV_E_MALFORMED] = "malformed",
		[PROV_E_EXPIRED] = "expired", [PROV_E_WRONG_CID] = "wrong_key",
		[PROV_E_SIGNATURE] = "bad_signature",
	};
	return (size_t)v < sizeof names / sizeof names[0] ? names[v] : "malformed";
}

/* BLAKE3(domain || p[0..n)). */
static void prov_hash(const char *domain, const uint8_t *p, size_t n, uint8_t out[B3_OUT_LEN])
{
	uint8_t buf[PROV_DOMAIN_MAX + PROV_SIGNED_MAX];
	size_t d = strlen(domain);

	memcpy(buf, domain, d);
	memcpy(buf + d, p, n);
	b3_hash(buf, d + n, out);
}

void prov_record_key(const uint8_t cid[PROV_CID_LEN], uint8_t key[32])
{
	prov_hash(PROV_KEY_DOMAIN, cid, PROV_CID_LEN, key);
}

/* A numeric address with a port, short enough for the record. */
static bool prov_addr_ok(const char *s)
{
	struct sockaddr_storage ss;
	unsigned len;
	bool lo;
	size_t n = strnlen(s, PROV_ADDR_MAX + 1);

	return n >= 1 && n <= PROV_ADDR_MAX && config_parse_addr(s, &ss, &len, &lo) == 0;
}

static bool prov_onion_ok(const char *s)
{
	char name[ONION_NAME_LEN + 1];
	uint16_t port;

	return strnlen(s, PROV_ONION_MAX + 1) <= PROV_ONION_MAX &&
	       onion_addr_split(s, name, sizeof name, &port) == 0;
}

bool prov_addrs_ok(unsigned v, const char *oap_addr, const char *onion)
{
	if (v == PROV_RECORD_VERSION)
		return prov_addr_ok(oap_addr) && onion[0] == '\0';
	return v == PROV_RECORD_ONION && prov_onion_ok(onion) &&
	       (oap_addr[0] == '\0' || prov_addr_ok(oap_addr));
}

const char *prov_pick_addr(bool tor, bool tor_only, const char *oap_addr, const char *onion)
{
	if (tor && onion[0])
		return onion;
	return oap_addr[0] && !(tor && tor_only) ? oap_addr : NULL;
}

static unsigned prov_version_of(const prov_record *r)
{
	return r->onion[0] ? PROV_RECORD_ONION : PROV_RECORD_VERSION;
}

static bool prov_life_ok(uint64_t issued, uint64_t expires)
{
	return expires > issued && expires - issued <= PROV_TTL_MAX_S;
}

/* Every field before the signature. */
static void prov_put_signed(wire_w *w, const prov_record *r)
{
	unsigned v = prov_version_of(r);

	if (!prov_addrs_ok(v, r->oap_addr, r->onion) || !prov_life_ok(r->issued, r->expires)) {
		w->bad = true;
		return;
	}
	wire_put_u8(w, (uint8_t)v);
	wire_put_raw(w, r->cid, PROV_CID_LEN);
	wire_put_raw(w, r->node_pk, IDENTITY_PK_LEN);
	wire_put_str(w, r->oap_addr);
	if (v == PROV_RECORD_ONION)
		wire_put_str(w, r->onion);
	wire_put_u64(w, r->issued);
	wire_put_u64(w, r->expires);
}

int prov_record_sign(prov_record *r, const node_identity *id, const uint8_t cid[PROV_CID_LEN],
                     const char *oap_addr, uint64_t now_s, uint64_t ttl_s)
{
	return prov_record_sign_onion(r, id, cid, oap_addr, NULL, now_s, ttl_s);
}

int prov_record_sign_onion(prov_record *r, const node_identity *id,
                           const uint8_t cid[PROV_CID_LEN], const char *oap_addr,
                           const char *onion, uint64_t now_s, uint64_t ttl_s)
{
	uint8_t buf[PROV_SIGNED_MAX], digest[B3_OUT_LEN];
	wire_w w;

	memset(r, 0, sizeof *r);
	if (!onion)
		onion = "";
	if (!prov_addrs_ok(onion[0] ? PROV_RECORD_ONION : PROV_RECORD_VERSION, oap_addr, onion) ||
	    ttl_s == 0 || ttl_s > PROV_TTL_MAX_S)
		return -1;
	memcpy(r->cid, cid, PROV_CID_LEN);
	memcpy(r->node_pk, id->pk, IDENTITY_PK_LEN);
	memcpy(r->oap_addr, oap_addr, strlen(oap_addr) + 1);
	memcpy(r->onion, onion, strlen(onion) + 1);
	r->issued = now_s;
	r->expires = now_s + ttl_s;
	wire_w_init(&w, buf, sizeof buf);
	prov_put_signed(&w, r);
	if (wire_w_ok(&w) != 0)
		return -1;
	prov_hash(PROV_SIG_DOMAIN, buf, w.len, digest);
	return identity_sign(id, digest, sizeof digest, r->sig);
}

ssize_t prov_record_encode(const prov_record *r, uint8_t *buf, size_t cap)
{
	wire_w w;

	wire_w_init(&w, buf, cap);
	prov_put_signed(&w, r);
	wire_put_raw(&w, r->sig, IDENTITY_SIG_LEN);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

prov_verdict prov_record_decode(const uint8_t *p, size_t n, prov_record *r)
{
	wire_r rd;

	memset(r, 0, sizeof *r);
	if (n > PROV_RECORD_MAX)
		return PROV_E_OVERSIZED;
	wire_r_init(&rd, p, n);
	unsigned v = wire_get_u8(&rd);
	if (v != PROV_RECORD_VERSION && v != PROV_RECORD_ONION)
		rd.bad = true;
	wire_get_raw(&rd, r->cid, PROV_CID_LEN);
	wire_get_raw(&rd, r->node_pk, IDENTITY_PK_LEN);
	wire_get_str(&rd, r->oap_addr, sizeof r->oap_addr);
	if (v == PROV_RECORD_ONION)
		wire_get_str(&rd, r->onion, sizeof r->onion);
	r->issued = wire_get_u64(&rd);
	r->expires = wire_get_u64(&rd);
	wire_get_raw(&rd, r->sig, IDENTITY_SIG_LEN);
	if (wire_end(&rd) != 0 || !prov_addrs_ok(v, r->oap_addr, r->onion) ||
	    !prov_life_ok(r->issued, r->expires)) {
		memset(r, 0, sizeof *r);
		return PROV_E_MALFORMED;
	}
	return PROV_OK;
}

static prov_verdict prov_refuse(prov_record *r, prov_verdict v)
{
	memset(r, 0, sizeof *r);
	return v;
}

prov_verdict prov_record_verify(const uint8_t *p, size_t n, const uint8_t *key,
                                const uint8_t *want_cid, uint64_t now_s, prov_record *r)
{
	uint8_t digest[B3_OUT_LEN], k[32];
	prov_verdict v = prov_record_decode(p, n, r);

	if (v != PROV_OK)
		return v;
	if (r->issued > now_s + PROV_CLOCK_SKEW_S)
		return prov_refuse(r, PROV_E_MALFORMED);
	if (r->expires <= now_s)
		return prov_refuse(r, PROV_E_EXPIRED);
	prov_record_key(r->cid, k);
	if ((key && memcmp(k, key, sizeof k) != 0) ||
	    (want_cid && memcmp(r->cid, want_cid, PROV_CID_LEN) != 0))
		return prov_refuse(r, PROV_E_WRONG_CID);
	prov_hash(PROV_SIG_DOMAIN, p, n - IDENTITY_SIG_LEN, digest);
	if (!identity_verify(r->node_pk, digest, sizeof digest, r->sig))
		return prov_refuse(r, PROV_E_SIGNATURE);
	return PROV_OK;
}
