/*
 * dht_value.c — value ids, the storing nodes' judgement, the readers'
 * choice (see dht_value.h).
 */
#include "core/dht/dht_value.h"

#include <string.h>

#include "lib/b3.h"

uint64_t dht_value_derive_id(dht_kind kind, const uint8_t signer[32], const uint8_t key[DHT_KEY_LEN])
{
	uint8_t buf[sizeof DHT_VALUE_ID_DOMAIN - 1 + 1 + 32 + DHT_KEY_LEN], out[B3_OUT_LEN];
	size_t d = sizeof DHT_VALUE_ID_DOMAIN - 1;
	uint64_t id = 0;

	memcpy(buf, DHT_VALUE_ID_DOMAIN, d);
	buf[d] = (uint8_t)kind;
	memcpy(buf + d + 1, signer, 32);
	memcpy(buf + d + 1 + 32, key, DHT_KEY_LEN);
	b3_hash(buf, sizeof buf, out);
	for (unsigned i = 0; i < 8; i++)
		id |= (uint64_t)out[i] << (8u * i);
	return id ? id : 1u;   /* 0 is OpenDHT's invalid id; 1 in 2^64 */
}

uint64_t dht_value_id_of(dht_kind kind, const uint8_t *v, size_t n)
{
	dht_meta m;

	if (dht_verify_meta(kind, v, n, &m) != 0)
		return 0;
	return dht_value_derive_id(kind, m.signer, m.key);
}

dht_reject dht_value_judge(dht_kind kind, const uint8_t ih[DHT_VALUE_IH_LEN], uint64_t id,
                           const uint8_t *v, size_t n, uint64_t now_s, dht_meta *out)
{
	dht_meta m;
	dht_reject why;

	if (n > DHT_VALUE_MAX)
		return DHT_REJECT_OVERSIZED;
	if (dht_verify_meta(kind, v, n, &m) != 0)
		return kind < DHT_KIND_PROVIDER || kind > DHT_KIND_LAST ? DHT_REJECT_UNVERIFIABLE
		                                                       : DHT_REJECT_MALFORMED;
	/* The record names its own key; it is put under the InfoHash cut from it. */
	if (memcmp(m.key, ih, DHT_VALUE_IH_LEN) != 0)
		return DHT_REJECT_WRONG_KEY;
	if ((why = dht_verify(kind, m.key, v, n, now_s)) != DHT_REJECT_NONE)
		return why;
	/* Ids are public: without this a stranger could take a signer's id
	 * first, and the signer's own values would be refused as edits. */
	if (id != dht_value_derive_id(kind, m.signer, m.key))
		return DHT_REJECT_WRONG_ID;
	if (out)
		*out = m;
	return DHT_REJECT_NONE;
}

dht_reject dht_value_judge_edit(dht_kind kind, const uint8_t ih[DHT_VALUE_IH_LEN], uint64_t id,
                                const uint8_t *old, size_t oldn, const uint8_t *v, size_t n,
                                uint64_t now_s)
{
	dht_meta m, was;
	dht_reject why = dht_value_judge(kind, ih, id, v, n, now_s, &m);

	if (why != DHT_REJECT_NONE)
		return why;
	if (dht_verify_meta(kind, old, oldn, &was) != 0)
		return DHT_REJECT_NONE;    /* nothing to defend: not a record of ours */
	if (memcmp(was.signer, m.signer, sizeof m.signer) != 0)
		return DHT_REJECT_WRONG_ID;
	return m.order > was.order ? DHT_REJECT_NONE : DHT_REJECT_STALE;
}

void dht_keep_init(dht_keep *k, int evict_when_full)
{
	memset(k, 0, sizeof *k);
	k->evict = evict_when_full ? 1 : 0;
}

static int keep_oldest(const dht_keep *k)
{
	size_t o = 0;

	for (size_t i = 1; i < k->n; i++)
		if (k->slot[i].order < k->slot[o].order)
			o = i;
	return (int)o;
}

int dht_keep_offer(dht_keep *k, const uint8_t signer[32], uint64_t order)
{
	int at = -1;

	for (size_t i = 0; i < k->n; i++) {
		if (memcmp(k->slot[i].signer, signer, 32) == 0) {
			if (order <= k->slot[i].order)
				return -1;
			k->slot[i].order = order;
			return (int)i;
		}
	}
	if (k->n < DHT_GET_MAX) {
		at = (int)k->n++;
	} else if (k->evict) {
		at = keep_oldest(k);
		if (order <= k->slot[at].order)
			return -1;
	} else {
		return -1;
	}
	memcpy(k->slot[at].signer, signer, 32);
	k->slot[at].order = order;
	return at;
}
