/*
 * audit_checkpoint.c — signed tree heads (see audit_checkpoint.h).
 */
#include "core/audit/audit_checkpoint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/audit/audit_json.h"
#include "lib/util.h"

#define CKPT_SIG_HEX (2u * IDENTITY_SIG_LEN)
#define CKPT_TBS_MAX (sizeof AUDIT_CKPT_CONTEXT + AUDIT_CKPT_MAX)

/* The object without "sig" (with_sig false) or with it. */
static json_t *ck_build(const audit_checkpoint *c, bool with_sig)
{
	char id[B3_CID_LEN + 1], root[B3_CID_LEN + 1], sig[CKPT_SIG_HEX + 1];
	json_t *o;

	if (c->size > INT64_MAX || c->time_ms > INT64_MAX)
		return NULL;
	b3_cid_format(c->node_id, id);
	b3_cid_format(c->root, root);
	o = json_pack("{s:s,s:s,s:I,s:I,s:i}", "node_id", id, "root", root,
	              "size", (json_int_t)c->size, "time_ms", (json_int_t)c->time_ms,
	              "v", 1);
	if (o && with_sig) {
		util_hex_encode(c->sig, IDENTITY_SIG_LEN, sig);
		if (json_object_set_new(o, "sig", json_string(sig)) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* AUDIT_CKPT_CONTEXT || canonical JSON without sig. */
static int ck_tbs(const audit_checkpoint *c, char *out, size_t cap, size_t *len)
{
	size_t pre = sizeof AUDIT_CKPT_CONTEXT - 1;
	json_t *o = ck_build(c, false);
	audit_buf b = { .data = out + pre, .cap = cap - pre };
	int r;

	if (!o)
		return -1;
	memcpy(out, AUDIT_CKPT_CONTEXT, pre);
	r = audit_json_encode(o, AUDIT_JSON_STRICT, &b, NULL, 0);
	json_decref(o);
	*len = pre + b.len;
	return r;
}

int audit_checkpoint_sign(audit_checkpoint *c, const node_identity *id)
{
	char tbs[CKPT_TBS_MAX];
	size_t n;

	memcpy(c->node_id, id->id, IDENTITY_ID_LEN);
	if (ck_tbs(c, tbs, sizeof tbs, &n) != 0)
		return -1;
	return identity_sign(id, tbs, n, c->sig);
}

int audit_checkpoint_encode(const audit_checkpoint *c, char *out, size_t cap, size_t *len)
{
	json_t *o = ck_build(c, true);
	audit_buf b = { .data = out, .cap = cap };
	int r;

	if (!o)
		return -1;
	r = audit_json_encode(o, AUDIT_JSON_STRICT, &b, NULL, 0);
	json_decref(o);
	*len = b.len;
	return r;
}

static int ck_cid(const json_t *o, const char *key, uint8_t out[B3_OUT_LEN])
{
	const json_t *v = json_object_get(o, key);

	return json_is_string(v) ? b3_cid_parse(json_string_value(v), json_string_length(v), out)
	                         : -1;
}

static int ck_uint(const json_t *o, const char *key, uint64_t *out)
{
	const json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int audit_checkpoint_parse(const char *s, size_t n, audit_checkpoint *c, char *err,
                           size_t errlen)
{
	json_t *o = audit_json_parse(s, n, AUDIT_CKPT_MAX, err, errlen);
	const json_t *sig;
	uint64_t v = 0;
	int r = -1;

	memset(c, 0, sizeof *c);
	if (!o)
		return -1;
	sig = json_object_get(o, "sig");
	if (!json_is_object(o) || json_object_size(o) != 6 || ck_uint(o, "v", &v) != 0 || v != 1)
		util_fail(err, errlen, "not a v1 checkpoint (keys node_id, root, sig, size, time_ms, v)");
	else if (ck_cid(o, "node_id", c->node_id) != 0 || ck_cid(o, "root", c->root) != 0)
		util_fail(err, errlen, "node_id and root must be b3 ids");
	else if (ck_uint(o, "size", &c->size) != 0 || ck_uint(o, "time_ms", &c->time_ms) != 0)
		util_fail(err, errlen, "size and time_ms must be unsigned integers");
	else if (!json_is_string(sig) || json_string_length(sig) != CKPT_SIG_HEX ||
	         util_hex_decode(json_string_value(sig), IDENTITY_SIG_LEN, c->sig) != 0)
		util_fail(err, errlen, "sig must be %u lowercase hex", CKPT_SIG_HEX);
	else
		r = 0;
	json_decref(o);
	return r;
}

int audit_checkpoint_verify(const audit_checkpoint *c, const uint8_t pk[IDENTITY_PK_LEN],
                            char *err, size_t errlen)
{
	uint8_t id[IDENTITY_ID_LEN];
	char tbs[CKPT_TBS_MAX];
	size_t n;

	identity_id_of(pk, id);
	if (!b3_equal(id, c->node_id))
		return util_fail(err, errlen, "signed by another node (node_id is not the key's)");
	if (ck_tbs(c, tbs, sizeof tbs, &n) != 0 || !identity_verify(pk, tbs, n, c->sig))
		return util_fail(err, errlen, "signature does not verify");
	return 0;
}

int audit_pubkey_load(const char *path, uint8_t pk[IDENTITY_PK_LEN], char *err, size_t errlen)
{
	char *text = NULL;
	size_t n = 0;
	int r;

	if (util_read_file(path, 2u * IDENTITY_PK_LEN + 1u, &text, &n) != 0)
		return util_fail(err, errlen, "%s: cannot read a public key file", path);
	if (n == 2u * IDENTITY_PK_LEN + 1u && text[n - 1] == '\n')
		n--;
	r = n == 2u * IDENTITY_PK_LEN ? util_hex_decode(text, IDENTITY_PK_LEN, pk) : -1;
	free(text);
	if (r != 0)
		return util_fail(err, errlen, "%s: not 64 lowercase hex (an Ed25519 public key)", path);
	return 0;
}
