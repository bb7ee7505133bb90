/*
 * zkproof.c — Schnorr proof of possession over Ristretto255 (see zkproof.h,
 * docs/zk.md). libsodium does the group arithmetic; BLAKE3 is the hash.
 */
#include "core/auth/zkproof.h"

#include <string.h>

#include <sodium.h>

#include "lib/b3.h"

#define ZK_WIDE          64   /* XOF bytes reduced to a scalar */
#define ZK_WEIGHT_LEN    16   /* 128-bit batch weights */
#define ZK_NONCE_TAG     "macronode/zk-pop/v1/nonce"

/* The verifier parameter bundle: these exact bytes are what the key store
 * pins (their BLAKE3). The generator is Ristretto255's standard base point
 * (a unit test checks it is 1·G). */
static const char zk_params_text[] =
	"macronode-zk-params\n"
	"group=ristretto255\n"
	"generator=e2f2ae0a6abc4e71a884a961c500515f58e30b6aa582dd8db6a65945e08d2d76\n"
	"dst=" ZK_DST "\n"
	"version=1\n";

const uint8_t *zkproof_params(size_t *len)
{
	*len = sizeof zk_params_text - 1;
	return (const uint8_t *)zk_params_text;
}

void zkproof_params_hash(uint8_t out[ZK_DIGEST_LEN])
{
	b3_hash(zk_params_text, sizeof zk_params_text - 1, out);
}

bool zkproof_key_valid(const uint8_t pk[ZK_POINT_LEN])
{
	return !sodium_is_zero(pk, ZK_POINT_LEN) && crypto_core_ristretto255_is_valid_point(pk);
}

/* Canonical (< L) and non-zero. */
static bool scalar_ok(const uint8_t s[ZK_SCALAR_LEN])
{
	uint8_t r[ZK_WIDE] = { 0 }, red[ZK_SCALAR_LEN];

	memcpy(r, s, ZK_SCALAR_LEN);
	crypto_core_ristretto255_scalar_reduce(red, r);
	bool ok = sodium_memcmp(red, s, ZK_SCALAR_LEN) == 0 && !sodium_is_zero(s, ZK_SCALAR_LEN);
	sodium_memzero(r, sizeof r);
	sodium_memzero(red, sizeof red);
	return ok;
}

int zkproof_public(const uint8_t sk[ZK_SCALAR_LEN], uint8_t pk[ZK_POINT_LEN])
{
	if (!scalar_ok(sk))
		return -1;
	return crypto_scalarmult_ristretto255_base(pk, sk) == 0 ? 0 : -1;
}

int zkproof_keygen(uint8_t sk[ZK_SCALAR_LEN], uint8_t pk[ZK_POINT_LEN])
{
	crypto_core_ristretto255_scalar_random(sk);
	return zkproof_public(sk, pk);
}

/* ---- transcript ---------------------------------------------------------- */

typedef struct {
	uint8_t *p;
	size_t cap, len;
	bool err;
} tbuf;

static void t_raw(tbuf *t, const void *d, size_t n)
{
	if (n == 0)
		return;
	if (t->err || !d || t->cap - t->len < n) {
		t->err = true;
		return;
	}
	memcpy(t->p + t->len, d, n);
	t->len += n;
}

static void t_u16(tbuf *t, size_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	t_raw(t, b, 2);
}

static void t_str(tbuf *t, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (n > max) {
		t->err = true;
		return;
	}
	t_u16(t, n);
	t_raw(t, s, n);
}

int zkproof_transcript(const uint8_t pk[ZK_POINT_LEN], const uint8_t R[ZK_POINT_LEN],
                       const zk_request *rq, const uint8_t body[ZK_DIGEST_LEN], uint64_t ts,
                       uint8_t *out, size_t cap, size_t *len)
{
	tbuf t = { .p = out, .cap = cap };
	uint8_t ph[ZK_DIGEST_LEN], tsb[8], ver = ZK_VERSION;

	zkproof_params_hash(ph);
	for (int i = 0; i < 8; i++)
		tsb[i] = (uint8_t)(ts >> (56 - 8 * i));
	t_str(&t, ZK_DST, 64);
	t_raw(&t, &ver, 1);
	t_raw(&t, ph, sizeof ph);
	t_raw(&t, pk, ZK_POINT_LEN);
	t_raw(&t, R, ZK_POINT_LEN);
	t_str(&t, rq->method, ZK_METHOD_MAX);
	t_str(&t, rq->path, ZK_PATH_MAX);
	t_str(&t, rq->audience, ZK_AUD_MAX);
	t_raw(&t, body, ZK_DIGEST_LEN);
	t_raw(&t, tsb, sizeof tsb);
	if (t.err || !rq->method || !rq->path)
		return -1;
	*len = t.len;
	return 0;
}

/* c = reduce(BLAKE3-XOF-64(T)). -1 when the transcript cannot be built. */
static int challenge(const uint8_t pk[ZK_POINT_LEN], const uint8_t R[ZK_POINT_LEN],
                     const zk_request *rq, const uint8_t body[ZK_DIGEST_LEN], uint64_t ts,
                     uint8_t c[ZK_SCALAR_LEN])
{
	uint8_t tr[ZK_TRANSCRIPT_MAX], wide[ZK_WIDE];
	size_t n;

	if (zkproof_transcript(pk, R, rq, body, ts, tr, sizeof tr, &n) != 0)
		return -1;
	b3_xof(tr, n, wide, sizeof wide);
	crypto_core_ristretto255_scalar_reduce(c, wide);
	return 0;
}

/* ---- proving ------------------------------------------------------------- */

/* r = reduce(BLAKE3-keyed-XOF-64(sk, tag | rand | T with R = 0)). */
static int nonce(const uint8_t sk[ZK_SCALAR_LEN], const uint8_t pk[ZK_POINT_LEN],
                 const zk_request *rq, const uint8_t body[ZK_DIGEST_LEN], uint64_t ts,
                 const uint8_t *rand32, uint8_t r[ZK_SCALAR_LEN])
{
	static const uint8_t zero[ZK_POINT_LEN];
	uint8_t buf[sizeof ZK_NONCE_TAG + 32 + ZK_TRANSCRIPT_MAX], wide[ZK_WIDE];
	size_t off = sizeof ZK_NONCE_TAG - 1, n;

	memcpy(buf, ZK_NONCE_TAG, off);
	if (rand32)
		memcpy(buf + off, rand32, 32);
	else
		memset(buf + off, 0, 32);
	off += 32;
	if (zkproof_transcript(pk, zero, rq, body, ts, buf + off, sizeof buf - off, &n) != 0)
		return -1;
	b3_keyed_xof(sk, buf, off + n, wide, sizeof wide);
	crypto_core_ristretto255_scalar_reduce(r, wide);
	sodium_memzero(wide, sizeof wide);
	sodium_memzero(buf, off);
	return sodium_is_zero(r, ZK_SCALAR_LEN) ? -1 : 0;
}

int zkproof_prove(const uint8_t sk[ZK_SCALAR_LEN], const zk_request *rq,
                  const uint8_t body[ZK_DIGEST_LEN], uint64_t ts, const uint8_t *rand32,
                  zk_proof *out)
{
	uint8_t pk[ZK_POINT_LEN], r[ZK_SCALAR_LEN], c[ZK_SCALAR_LEN], cx[ZK_SCALAR_LEN];
	int rc = -1;

	memset(out, 0, sizeof *out);
	out->version = ZK_VERSION;
	out->ts = ts;
	memcpy(out->body, body, ZK_DIGEST_LEN);
	if (zkproof_public(sk, pk) == 0 && nonce(sk, pk, rq, body, ts, rand32, r) == 0 &&
	    crypto_scalarmult_ristretto255_base(out->R, r) == 0 &&
	    challenge(pk, out->R, rq, body, ts, c) == 0) {
		crypto_core_ristretto255_scalar_mul(cx, c, sk);
		crypto_core_ristretto255_scalar_add(out->s, r, cx);
		rc = 0;
	}
	sodium_memzero(r, sizeof r);
	sodium_memzero(cx, sizeof cx);
	return rc;
}

/* ---- wire ---------------------------------------------------------------- */

static void put_u64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

/* The base64url alphabet, checked before decoding: libsodium's decoder
 * takes some bytes >= 0x80 as digits (found by fuzz/zk_proof.c), which
 * would give one proof several spellings and several replay fingerprints. */
static bool b64url_only(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

zk_result zkproof_parse(const char *s, size_t len, zk_proof *out)
{
	uint8_t bin[ZK_PROOF_BIN_LEN];
	size_t n = 0;

	if (len != ZK_PROOF_TEXT_LEN || !b64url_only(s, len) ||
	    sodium_base642bin(bin, sizeof bin, s, len, NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    n != ZK_PROOF_BIN_LEN || bin[0] != ZK_VERSION)
		return ZK_MALFORMED;
	out->version = bin[0];
	out->ts = get_u64(bin + 1);
	memcpy(out->body, bin + 9, ZK_DIGEST_LEN);
	memcpy(out->R, bin + 41, ZK_POINT_LEN);
	memcpy(out->s, bin + 73, ZK_SCALAR_LEN);
	if (!zkproof_key_valid(out->R) || !scalar_ok(out->s))
		return ZK_MALFORMED;
	return ZK_OK;
}

void zkproof_format(const zk_proof *p, char out[ZK_PROOF_TEXT_LEN + 1])
{
	uint8_t bin[ZK_PROOF_BIN_LEN];

	bin[0] = p->version;
	put_u64(bin + 1, p->ts);
	memcpy(bin + 9, p->body, ZK_DIGEST_LEN);
	memcpy(bin + 41, p->R, ZK_POINT_LEN);
	memcpy(bin + 73, p->s, ZK_SCALAR_LEN);
	sodium_bin2base64(out, ZK_PROOF_TEXT_LEN + 1, bin, sizeof bin,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* ---- verifying ----------------------------------------------------------- */

zk_result zkproof_verify(const uint8_t pk[ZK_POINT_LEN], const zk_request *rq,
                         const zk_proof *p)
{
	uint8_t c[ZK_SCALAR_LEN], sG[ZK_POINT_LEN], cP[ZK_POINT_LEN], rhs[ZK_POINT_LEN];

	if (p->version != ZK_VERSION || !zkproof_key_valid(pk) || !zkproof_key_valid(p->R) ||
	    !scalar_ok(p->s))
		return ZK_MALFORMED;
	if (challenge(pk, p->R, rq, p->body, p->ts, c) != 0)
		return ZK_MALFORMED;
	/* s·G == R + c·P; c·P is never the identity for a valid P and c ≠ 0,
	 * and c = 0 (negligible) fails closed. */
	if (crypto_scalarmult_ristretto255_base(sG, p->s) != 0 ||
	    crypto_scalarmult_ristretto255(cP, c, pk) != 0 ||
	    crypto_core_ristretto255_add(rhs, p->R, cP) != 0)
		return ZK_BAD_PROOF;
	return sodium_memcmp(sG, rhs, ZK_POINT_LEN) == 0 ? ZK_OK : ZK_BAD_PROOF;
}

/* Σ z_i·s_i·G == Σ z_i·R_i + Σ_P (Σ_{i: P_i = P} z_i·c_i)·P. */
static bool batch_combined(zk_batch_item *it, size_t n)
{
	uint8_t z[ZK_BATCH_MAX][ZK_SCALAR_LEN], c[ZK_SCALAR_LEN], t[ZK_SCALAR_LEN];
	uint8_t ssum[ZK_SCALAR_LEN] = { 0 }, lhs[ZK_POINT_LEN], rhs[ZK_POINT_LEN], pt[ZK_POINT_LEN];
	uint8_t pc[ZK_BATCH_MAX][ZK_SCALAR_LEN];  /* merged c weight per first item of a key */
	bool lead[ZK_BATCH_MAX], have = false;

	for (size_t i = 0; i < n; i++) {
		memset(z[i], 0, ZK_SCALAR_LEN);
		randombytes_buf(z[i], ZK_WEIGHT_LEN);
		z[i][0] |= 1;   /* never zero */
		memset(pc[i], 0, ZK_SCALAR_LEN);
		lead[i] = true;
	}
	for (size_t i = 0; i < n; i++) {
		if (challenge(it[i].pk, it[i].p->R, &it[i].rq, it[i].p->body, it[i].p->ts, c) != 0)
			return false;
		crypto_core_ristretto255_scalar_mul(t, z[i], it[i].p->s);
		crypto_core_ristretto255_scalar_add(ssum, ssum, t);
		size_t k = i;   /* the first item holding the same key */
		for (size_t j = 0; j < i; j++)
			if (lead[j] && memcmp(it[j].pk, it[i].pk, ZK_POINT_LEN) == 0) {
				k = j;
				break;
			}
		lead[i] = k == i;
		crypto_core_ristretto255_scalar_mul(t, z[i], c);
		crypto_core_ristretto255_scalar_add(pc[k], pc[k], t);
	}
	if (crypto_scalarmult_ristretto255_base(lhs, ssum) != 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (crypto_scalarmult_ristretto255(pt, z[i], it[i].p->R) != 0)
			return false;
		if (!have)
			memcpy(rhs, pt, sizeof pt);
		else if (crypto_core_ristretto255_add(rhs, rhs, pt) != 0)
			return false;
		have = true;
		if (!lead[i])
			continue;
		if (crypto_scalarmult_ristretto255(pt, pc[i], it[i].pk) != 0 ||
		    crypto_core_ristretto255_add(rhs, rhs, pt) != 0)
			return false;
	}
	return sodium_memcmp(lhs, rhs, ZK_POINT_LEN) == 0;
}

size_t zkproof_verify_batch(zk_batch_item *items, size_t n)
{
	size_t good = 0, m = 0;
	zk_batch_item *valid[ZK_BATCH_MAX];
	zk_batch_item packed[ZK_BATCH_MAX];

	if (n > ZK_BATCH_MAX)
		n = ZK_BATCH_MAX;
	/* Structurally bad items never enter the combination. */
	for (size_t i = 0; i < n; i++) {
		items[i].ok = false;
		if (items[i].p->version == ZK_VERSION && zkproof_key_valid(items[i].pk) &&
		    zkproof_key_valid(items[i].p->R) && scalar_ok(items[i].p->s)) {
			valid[m] = &items[i];
			packed[m++] = items[i];
		}
	}
	if (m > 1 && batch_combined(packed, m)) {
		for (size_t i = 0; i < m; i++)
			valid[i]->ok = true;
		return m;
	}
	for (size_t i = 0; i < m; i++) {
		valid[i]->ok = zkproof_verify(valid[i]->pk, &valid[i]->rq, valid[i]->p) == ZK_OK;
		good += valid[i]->ok;
	}
	return good;
}
