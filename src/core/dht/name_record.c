/*
 * name_record.c — encode, decode, sign and verify name records (see
 * name_record.h). The signed message is the BLAKE3 of the domain string
 * followed by the encoded record up to its signature, so one put/get pair
 * of field lists is both the wire form and the signed form.
 */
#include "core/dht/name_record.h"

#include <string.h>

#include <blake3.h>

#include "lib/b3.h"
#include "lib/wire.h"

static const char *const name_rec_names[NAME_REC_RESULT_COUNT] = {
	[NAME_REC_OK] = "ok",
	[NAME_REC_MALFORMED] = "malformed",
	[NAME_REC_OVERSIZED] = "oversized",
	[NAME_REC_BAD_VERSION] = "bad_version",
	[NAME_REC_BAD_NAME] = "bad_name",
	[NAME_REC_BAD_SIG] = "bad_sig",
	[NAME_REC_WRONG_NAME] = "wrong_name",
	[NAME_REC_STALE_SEQ] = "stale_seq",
};

const char *name_rec_result_name(name_rec_result r)
{
	return (unsigned)r < NAME_REC_RESULT_COUNT ? name_rec_names[r] : "unknown";
}

void name_record_key(const char *name, size_t n, uint8_t key[NAME_RECORD_KEY_LEN])
{
	blake3_hasher h;

	blake3_hasher_init(&h);
	blake3_hasher_update(&h, NAME_RECORD_KEY_DOMAIN, sizeof NAME_RECORD_KEY_DOMAIN - 1);
	blake3_hasher_update(&h, name, n);
	blake3_hasher_finalize(&h, key, NAME_RECORD_KEY_LEN);
}

/* ---- fields ------------------------------------------------------------- */

/* Everything before the signature: what is signed. */
static void name_record_put_body(wire_w *w, const name_record *r)
{
	wire_put_u8(w, NAME_RECORD_VERSION);
	wire_put_u16(w, (uint16_t)r->name_len);
	wire_put_raw(w, r->name, r->name_len);
	wire_put_raw(w, r->cid, NAME_RECORD_CID_LEN);
	wire_put_u64(w, r->seq);
	wire_put_raw(w, r->node_pk, IDENTITY_PK_LEN);
	wire_put_u64(w, r->issued);
}

/* The 32-byte digest the signature covers. */
static int name_record_digest(const name_record *r, uint8_t digest[B3_OUT_LEN])
{
	uint8_t body[NAME_RECORD_MAX];
	blake3_hasher h;
	wire_w w;

	wire_w_init(&w, body, sizeof body);
	name_record_put_body(&w, r);
	if (wire_w_ok(&w) != 0)
		return -1;
	blake3_hasher_init(&h);
	blake3_hasher_update(&h, NAME_RECORD_SIG_DOMAIN, sizeof NAME_RECORD_SIG_DOMAIN - 1);
	blake3_hasher_update(&h, body, w.len);
	blake3_hasher_finalize(&h, digest, B3_OUT_LEN);
	return 0;
}

/* A record this node would sign or send: a valid name, NUL-terminated at
 * name_len, seq in 1..NAME_RECORD_SEQ_MAX. */
static bool name_record_is_sound(const name_record *r)
{
	return r->name_len <= NAME_MAX_LEN && r->name[r->name_len] == '\0' && r->seq >= 1 &&
	       r->seq <= NAME_RECORD_SEQ_MAX &&
	       name_check(r->name, r->name_len, NULL, 0) == NAME_OK;
}

/* ---- making and encoding ------------------------------------------------- */

int name_record_make(name_record *r, const char *name, size_t n, const uint8_t cid[32],
                     uint64_t seq, uint64_t issued, const node_identity *id)
{
	uint8_t digest[B3_OUT_LEN];

	memset(r, 0, sizeof *r);
	if (!id || !id->sk || n > NAME_MAX_LEN || seq == 0 || seq > NAME_RECORD_SEQ_MAX)
		return -1;
	memcpy(r->name, name, n);
	r->name_len = n;
	memcpy(r->cid, cid, NAME_RECORD_CID_LEN);
	r->seq = seq;
	memcpy(r->node_pk, id->pk, IDENTITY_PK_LEN);
	r->issued = issued;
	if (!name_record_is_sound(r) || name_record_digest(r, digest) != 0 ||
	    identity_sign(id, digest, sizeof digest, r->sig) != 0) {
		memset(r, 0, sizeof *r);
		return -1;
	}
	return 0;
}

ssize_t name_record_encode(const name_record *r, uint8_t *buf, size_t cap)
{
	wire_w w;

	if (!name_record_is_sound(r))
		return -1;
	wire_w_init(&w, buf, cap);
	name_record_put_body(&w, r);
	wire_put_raw(&w, r->sig, IDENTITY_SIG_LEN);
	return wire_w_ok(&w) == 0 ? (ssize_t)w.len : -1;
}

/* ---- decoding ------------------------------------------------------------ */

/* The fields in order; the name's rules are judged after the structure. */
static name_rec_result name_record_get(wire_r *rd, name_record *r)
{
	if (wire_get_u8(rd) != NAME_RECORD_VERSION)
		return rd->bad ? NAME_REC_MALFORMED : NAME_REC_BAD_VERSION;
	r->name_len = wire_get_u16(rd);
	if (r->name_len > NAME_MAX_LEN)
		return NAME_REC_MALFORMED;   /* cannot fit: the total is at most NAME_RECORD_MAX */
	wire_get_raw(rd, r->name, r->name_len);
	wire_get_raw(rd, r->cid, NAME_RECORD_CID_LEN);
	r->seq = wire_get_u64(rd);
	wire_get_raw(rd, r->node_pk, IDENTITY_PK_LEN);
	r->issued = wire_get_u64(rd);
	wire_get_raw(rd, r->sig, IDENTITY_SIG_LEN);
	if (wire_end(rd) != 0 || r->seq == 0 || r->seq > NAME_RECORD_SEQ_MAX)
		return NAME_REC_MALFORMED;
	if (name_check(r->name, r->name_len, NULL, 0) != NAME_OK)
		return NAME_REC_BAD_NAME;    /* a NUL inside is a bad_char: refused here */
	return NAME_REC_OK;
}

name_rec_result name_record_decode(const uint8_t *p, size_t n, name_record *out)
{
	name_rec_result res;
	wire_r rd;

	memset(out, 0, sizeof *out);
	if (n > NAME_RECORD_MAX)
		return NAME_REC_OVERSIZED;
	wire_r_init(&rd, p, n);
	res = name_record_get(&rd, out);
	if (res != NAME_REC_OK)
		memset(out, 0, sizeof *out);
	return res;
}

name_rec_result name_record_verify(const name_record *r)
{
	uint8_t digest[B3_OUT_LEN];

	if (!name_record_is_sound(r) || name_record_digest(r, digest) != 0 ||
	    !identity_verify(r->node_pk, digest, sizeof digest, r->sig))
		return NAME_REC_BAD_SIG;
	return NAME_REC_OK;
}

name_rec_result name_record_check(const uint8_t *p, size_t n, const uint8_t *key,
                                  name_record *out)
{
	uint8_t want[NAME_RECORD_KEY_LEN];
	name_rec_result res = name_record_decode(p, n, out);

	if (res == NAME_REC_OK && key) {
		name_record_key(out->name, out->name_len, want);
		if (!b3_equal(want, key))
			res = NAME_REC_WRONG_NAME;
	}
	if (res == NAME_REC_OK)
		res = name_record_verify(out);
	if (res != NAME_REC_OK)
		memset(out, 0, sizeof *out);
	return res;
}

void name_record_node_id(const name_record *r, char out[IDENTITY_ID_TEXT])
{
	uint8_t id[IDENTITY_ID_LEN];

	identity_id_of(r->node_pk, id);
	identity_id_format(id, out);
}
