/* One value per signer (src/core/dht/dht_value.h): the value id is
 * BLAKE3(domain || kind || signer || key)[0..8) little-endian and changes
 * with each input; a storing node keeps a value only when it verifies,
 * belongs under the InfoHash and carries its signer's id, and replaces one
 * only by the same signer's newer value (a higher name seq, a later
 * provider expiry); a reader keeps each signer's newest, and for names the
 * highest seq survives a flood of other signers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/dht/dht_value.h"
#include "core/dht/name_record.h"
#include "core/dht/prov_record.h"
#include "lib/b3.h"

#define NOW  1700000000u
#define TTL  3600u

static node_identity A, B;

static int setup(void **state)
{
	char err[128];

	(void)state;
	assert_int_equal(identity_generate(&A, err, sizeof err), 0);
	assert_int_equal(identity_generate(&B, err, sizeof err), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	identity_free(&A);
	identity_free(&B);
	return 0;
}

static const uint8_t CID[32] = { 1, 2, 3 };

static size_t name_rec(uint8_t *buf, const node_identity *id, const char *name, uint64_t seq)
{
	name_record r;

	assert_int_equal(name_record_make(&r, name, strlen(name), CID, seq, NOW, id), 0);
	ssize_t n = name_record_encode(&r, buf, NAME_RECORD_MAX);
	assert_true(n > 0);
	return (size_t)n;
}

static size_t prov_rec(uint8_t *buf, const node_identity *id, uint64_t now)
{
	prov_record r;

	assert_int_equal(prov_record_sign(&r, id, CID, "127.0.0.1:9443", now, TTL), 0);
	ssize_t n = prov_record_encode(&r, buf, PROV_RECORD_MAX);
	assert_true(n > 0);
	return (size_t)n;
}

static void test_id_derivation(void **state)
{
	uint8_t key[32], buf[128], out[B3_OUT_LEN];
	size_t d = strlen(DHT_VALUE_ID_DOMAIN);
	uint64_t want = 0;

	(void)state;
	prov_record_key(CID, key);
	/* the documented formula, computed here by hand */
	memcpy(buf, DHT_VALUE_ID_DOMAIN, d);
	buf[d] = DHT_KIND_PROVIDER;
	memcpy(buf + d + 1, A.pk, 32);
	memcpy(buf + d + 33, key, 32);
	b3_hash(buf, d + 65, out);
	for (unsigned i = 0; i < 8; i++)
		want |= (uint64_t)out[i] << (8 * i);
	uint64_t id = dht_value_derive_id(DHT_KIND_PROVIDER, A.pk, key);
	assert_true(want != 0);
	assert_true(id == want);
	assert_true(id == dht_value_derive_id(DHT_KIND_PROVIDER, A.pk, key));   /* stable */
	/* each input changes it: the kind, the signer, the key */
	assert_true(id != dht_value_derive_id(DHT_KIND_NAME, A.pk, key));
	assert_true(id != dht_value_derive_id(DHT_KIND_PROVIDER, B.pk, key));
	key[31] ^= 1;
	assert_true(id != dht_value_derive_id(DHT_KIND_PROVIDER, A.pk, key));
}

static void test_id_of_a_record(void **state)
{
	uint8_t rec[NAME_RECORD_MAX], key[32];
	size_t n = name_rec(rec, &A, "alice/x", 1);

	(void)state;
	name_record_key("alice/x", 7, key);
	uint64_t id = dht_value_id_of(DHT_KIND_NAME, rec, n);
	assert_true(id == dht_value_derive_id(DHT_KIND_NAME, A.pk, key));
	/* a later seq of the same name by the same signer: the same id */
	n = name_rec(rec, &A, "alice/x", 7);
	assert_true(dht_value_id_of(DHT_KIND_NAME, rec, n) == id);
	/* another name, another signer: other ids */
	n = name_rec(rec, &A, "alice/y", 1);
	assert_true(dht_value_id_of(DHT_KIND_NAME, rec, n) != id);
	n = name_rec(rec, &B, "alice/x", 1);
	assert_true(dht_value_id_of(DHT_KIND_NAME, rec, n) != id);
	/* not a record of the kind: 0 */
	assert_true(dht_value_id_of(DHT_KIND_NAME, (const uint8_t *)"junk", 4) == 0);
	assert_true(dht_value_id_of(DHT_KIND_PROVIDER, rec, n) == 0);
}

static void test_store_policy(void **state)
{
	uint8_t rec[PROV_RECORD_MAX], key[32], other[32], big[DHT_VALUE_MAX + 1] = { 0 };
	size_t n = prov_rec(rec, &A, NOW);
	dht_meta m;

	(void)state;
	prov_record_key(CID, key);
	uint64_t id = dht_value_derive_id(DHT_KIND_PROVIDER, A.pk, key);
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, key, id, rec, n, NOW, &m),
	                 DHT_REJECT_NONE);
	assert_memory_equal(m.signer, A.pk, 32);
	assert_true(m.order == NOW + TTL);
	/* B's id on A's record: a squatter's */
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, key,
	                                 dht_value_derive_id(DHT_KIND_PROVIDER, B.pk, key),
	                                 rec, n, NOW, NULL), DHT_REJECT_WRONG_ID);
	/* under another InfoHash */
	memcpy(other, key, 32);
	other[0] ^= 1;
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, other, id, rec, n, NOW, NULL),
	                 DHT_REJECT_WRONG_KEY);
	/* expired, a flipped signature bit, oversized, not the kind's encoding */
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, key, id, rec, n, NOW + TTL, NULL),
	                 DHT_REJECT_EXPIRED);
	rec[n - 1] ^= 1;
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, key, id, rec, n, NOW, NULL),
	                 DHT_REJECT_SIGNATURE);
	assert_int_equal(dht_value_judge(DHT_KIND_PROVIDER, key, id, big, sizeof big, NOW, NULL),
	                 DHT_REJECT_OVERSIZED);
	assert_int_equal(dht_value_judge(DHT_KIND_NAME, key, id, rec, n, NOW, NULL),
	                 DHT_REJECT_MALFORMED);
	assert_int_equal(dht_value_judge((dht_kind)9, key, id, rec, n, NOW, NULL),
	                 DHT_REJECT_UNVERIFIABLE);
}

static void test_edit_policy_names(void **state)
{
	uint8_t r1[NAME_RECORD_MAX], r2[NAME_RECORD_MAX], rb[NAME_RECORD_MAX], key[32];
	size_t n1 = name_rec(r1, &A, "alice/x", 1), n2 = name_rec(r2, &A, "alice/x", 2);
	size_t nb = name_rec(rb, &B, "alice/x", 9);

	(void)state;
	name_record_key("alice/x", 7, key);
	uint64_t id = dht_value_derive_id(DHT_KIND_NAME, A.pk, key);
	uint64_t idb = dht_value_derive_id(DHT_KIND_NAME, B.pk, key);
	/* a higher seq replaces; the same or a lower one does not (no rollback) */
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, r1, n1, r2, n2, NOW),
	                 DHT_REJECT_NONE);
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, r2, n2, r1, n1, NOW),
	                 DHT_REJECT_STALE);
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, r2, n2, r2, n2, NOW),
	                 DHT_REJECT_STALE);
	/* another signer never replaces A's value: not with A's id ... */
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, r1, n1, rb, nb, NOW),
	                 DHT_REJECT_WRONG_ID);
	/* ... nor with its own */
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, idb, r1, n1, rb, nb, NOW),
	                 DHT_REJECT_WRONG_ID);
	/* a replacement that does not verify */
	r2[n2 - 1] ^= 1;
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, r1, n1, r2, n2, NOW),
	                 DHT_REJECT_SIGNATURE);
	/* a held value that is not a record: any valid value replaces it */
	assert_int_equal(dht_value_judge_edit(DHT_KIND_NAME, key, id, (const uint8_t *)"x", 1,
	                                      r1, n1, NOW), DHT_REJECT_NONE);
}

static void test_edit_policy_providers(void **state)
{
	uint8_t old[PROV_RECORD_MAX], young[PROV_RECORD_MAX], key[32];
	size_t no = prov_rec(old, &A, NOW), ny = prov_rec(young, &A, NOW + 60);

	(void)state;
	prov_record_key(CID, key);
	uint64_t id = dht_value_derive_id(DHT_KIND_PROVIDER, A.pk, key);
	/* a republish (a later expiry) replaces; the earlier record does not */
	assert_int_equal(dht_value_judge_edit(DHT_KIND_PROVIDER, key, id, old, no, young, ny,
	                                      NOW + 60), DHT_REJECT_NONE);
	assert_int_equal(dht_value_judge_edit(DHT_KIND_PROVIDER, key, id, young, ny, old, no,
	                                      NOW + 60), DHT_REJECT_STALE);
}

static void signer_of(uint8_t s[32], unsigned i)
{
	memset(s, 0, 32);
	s[0] = (uint8_t)i;
	s[1] = (uint8_t)(i >> 8);
	s[31] = 0xaa;
}

static void test_keep_newest_per_signer(void **state)
{
	dht_keep k;
	uint8_t s1[32], s2[32];

	(void)state;
	signer_of(s1, 1);
	signer_of(s2, 2);
	dht_keep_init(&k, 0);
	assert_int_equal(dht_keep_offer(&k, s1, 3), 0);
	assert_int_equal(dht_keep_offer(&k, s2, 1), 1);
	assert_int_equal(dht_keep_offer(&k, s1, 2), -1);   /* older: dropped */
	assert_int_equal(dht_keep_offer(&k, s1, 3), -1);   /* the same: dropped */
	assert_int_equal(dht_keep_offer(&k, s1, 5), 0);    /* newer: its own slot */
	assert_int_equal((int)k.n, 2);
	assert_true(k.slot[0].order == 5 && k.slot[1].order == 1);
}

static void test_keep_when_full(void **state)
{
	dht_keep first, names;
	uint8_t s[32];

	(void)state;
	dht_keep_init(&first, 0);
	dht_keep_init(&names, 1);
	for (unsigned i = 0; i < DHT_GET_MAX; i++) {
		signer_of(s, i);
		assert_int_equal(dht_keep_offer(&first, s, 10 + i), (int)i);
		assert_int_equal(dht_keep_offer(&names, s, 10 + i), (int)i);
	}
	signer_of(s, 100);
	assert_int_equal(dht_keep_offer(&first, s, 1000), -1);   /* providers: first come */
	assert_int_equal(dht_keep_offer(&names, s, 5), -1);      /* lower than every kept */
	assert_int_equal(dht_keep_offer(&names, s, 1000), 0);    /* displaces seq 10 */
	assert_int_equal((int)names.n, DHT_GET_MAX);
	/* the highest survives a flood of lower seqs from strangers */
	for (unsigned i = 200; i < 1200; i++) {
		signer_of(s, i);
		(void)dht_keep_offer(&names, s, 500);
	}
	uint64_t best = 0;
	for (size_t i = 0; i < names.n; i++)
		best = names.slot[i].order > best ? names.slot[i].order : best;
	assert_true(best == 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_derivation),
		cmocka_unit_test(test_id_of_a_record),
		cmocka_unit_test(test_store_policy),
		cmocka_unit_test(test_edit_policy_names),
		cmocka_unit_test(test_edit_policy_providers),
		cmocka_unit_test(test_keep_newest_per_signer),
		cmocka_unit_test(test_keep_when_full),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
