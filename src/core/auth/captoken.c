/*
 * captoken.c — ron-auth v1 capability tokens: strict decoding, canonical
 * encoding, the BLAKE3-keyed MAC chain and the check of a request against
 * a token's scope and caveats, and the key ring (kept here because only this
 * module may touch MAC keys; it is the first thing to split out).
 *
 * Untrusted bytes go through three gates before any field is trusted:
 * base64url with zero pad bits (libsodium), a structural pre-scan that bounds
 * depth and every length by the bytes left and refuses indefinite lengths,
 * non-shortest heads, tags, floats and negative ints (so libcbor never sees a
 * length it would allocate for blindly), then the schema walk. At the end the
 * canonical re-encoding must equal the input byte for byte.
 */
#include <arpa/inet.h>
#include <cbor.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "lib/b3.h"

/* Largest decoded CBOR: CAPTOKEN_MAX_TOKEN base64 characters. */
#define CAPTOKEN_MAX_CBOR  (CAPTOKEN_MAX_TOKEN / 4 * 3)

static const struct { const char *name; captoken_cav_kind kind; } cav_names[] = {
	{ "Exp", CAPTOKEN_CAV_EXP }, { "Nbf", CAPTOKEN_CAV_NBF },
	{ "Aud", CAPTOKEN_CAV_AUD }, { "Method", CAPTOKEN_CAV_METHOD },
	{ "PathPrefix", CAPTOKEN_CAV_PATH_PREFIX }, { "IpCidr", CAPTOKEN_CAV_IP_CIDR },
	{ "BytesLe", CAPTOKEN_CAV_BYTES_LE }, { "Rate", CAPTOKEN_CAV_RATE },
	{ "Tenant", CAPTOKEN_CAV_TENANT }, { "Amnesia", CAPTOKEN_CAV_AMNESIA },
	{ "GovPolicyDigest", CAPTOKEN_CAV_GOV_POLICY_DIGEST }, { "Custom", CAPTOKEN_CAV_CUSTOM },
};
#define N_CAV_NAMES (sizeof cav_names / sizeof cav_names[0])

const char *captoken_cav_name(captoken_cav_kind k)
{
	for (size_t i = 0; i < N_CAV_NAMES; i++)
		if (cav_names[i].kind == k)
			return cav_names[i].name;
	return "?";
}

const char *captoken_result_name(captoken_result r)
{
	static const char *const names[] = {
		"ok", "malformed", "unknown_caveat", "unknown_kid", "bad_mac",
		"expired", "not_yet_valid", "audience", "scope_method", "scope_path",
		"scope_bytes", "ip", "tenant", "amnesia", "gov_policy", "custom",
		"internal", "holder",
	};
	if ((size_t)r < sizeof names / sizeof names[0])
		return names[r];
	return "unknown";
}

captoken *captoken_new(void)
{
	return calloc(1, sizeof(captoken));
}

void captoken_free(captoken *t)
{
	if (!t)
		return;
	sodium_memzero(t->mac, sizeof t->mac);
	free(t);
}

/* ---------------------------------------------------------------- text */

static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;

		if (c == 0)
			return false;
		if (c < 0x80) { i++; continue; }
		if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
		else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
		else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
		else return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* kids name files and appear in logs: a short, boring alphabet. */
bool captoken_kid_valid(const char *s, size_t n)
{
	if (n == 0 || n > CAPTOKEN_MAX_KID || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int set_text(char *dst, size_t max, const char *s)
{
	size_t n = strlen(s);

	if (n > max || !utf8_valid((const uint8_t *)s, n))
		return -1;
	memcpy(dst, s, n + 1);
	return 0;
}

int captoken_caveat_set_text(captoken_caveat *c, captoken_cav_kind k, const char *s)
{
	memset(c, 0, sizeof *c);
	c->kind = k;
	return set_text(c->text, CAPTOKEN_MAX_TEXT, s);
}

int captoken_method_set(captoken_method *m, const char *s)
{
	return s[0] ? set_text(m->s, CAPTOKEN_MAX_METHOD, s) : -1;
}

void captoken_caveat_set_holder(captoken_caveat *c, const uint8_t pk[CAPTOKEN_HOLDER_LEN])
{
	memset(c, 0, sizeof *c);
	c->kind = CAPTOKEN_CAV_CUSTOM;
	memcpy(c->text, CAPTOKEN_HOLDER_NS, sizeof CAPTOKEN_HOLDER_NS);
	memcpy(c->text2, CAPTOKEN_HOLDER_NAME, sizeof CAPTOKEN_HOLDER_NAME);
	c->bytes[0] = 0x58;                       /* byte string, 1-byte length */
	c->bytes[1] = CAPTOKEN_HOLDER_LEN;
	memcpy(c->bytes + 2, pk, CAPTOKEN_HOLDER_LEN);
	c->nbytes = 2 + CAPTOKEN_HOLDER_LEN;
}

bool captoken_caveat_holder(const captoken_caveat *c, uint8_t pk[CAPTOKEN_HOLDER_LEN],
                            bool *well_formed)
{
	if (c->kind != CAPTOKEN_CAV_CUSTOM || strcmp(c->text, CAPTOKEN_HOLDER_NS) != 0 ||
	    strcmp(c->text2, CAPTOKEN_HOLDER_NAME) != 0)
		return false;
	*well_formed = c->nbytes == 2 + CAPTOKEN_HOLDER_LEN && c->bytes[0] == 0x58 &&
	               c->bytes[1] == CAPTOKEN_HOLDER_LEN;
	if (*well_formed)
		memcpy(pk, c->bytes + 2, CAPTOKEN_HOLDER_LEN);
	return true;
}

/* ------------------------------------------------------------- encoding */

static int scan_item(const uint8_t **pp, const uint8_t *end, int depth);

/* A Custom caveat's value is exactly one well-formed item of the subset. */
static bool custom_value_valid(const captoken_caveat *c)
{
	const uint8_t *p = c->bytes, *end = c->bytes + c->nbytes;
	return c->nbytes > 0 && c->nbytes <= CAPTOKEN_MAX_CUSTOM &&
	       scan_item(&p, end, 1) == 0 && p == end;
}

typedef struct {
	uint8_t *p;
	size_t cap, len;
	bool err;
} wbuf;

static void w_put(wbuf *w, size_t n)
{
	if (n == 0)
		w->err = true;
	w->len += n;
}

static void w_uint(wbuf *w, uint64_t v)
{
	if (!w->err)
		w_put(w, cbor_encode_uint(v, w->p + w->len, w->cap - w->len));
}

static void w_head(wbuf *w, size_t (*fn)(size_t, unsigned char *, size_t), size_t n)
{
	if (!w->err)
		w_put(w, fn(n, w->p + w->len, w->cap - w->len));
}

static void w_raw(wbuf *w, const void *d, size_t n)
{
	if (w->err || w->cap - w->len < n) {
		w->err = true;
		return;
	}
	memcpy(w->p + w->len, d, n);
	w->len += n;
}

static void w_text(wbuf *w, const char *s)
{
	size_t n = strlen(s);

	w_head(w, cbor_encode_string_start, n);
	w_raw(w, s, n);
}

static void w_null(wbuf *w)
{
	if (!w->err)
		w_put(w, cbor_encode_null(w->p + w->len, w->cap - w->len));
}

static void w_methods(wbuf *w, const captoken_method *m, size_t n)
{
	w_head(w, cbor_encode_array_start, n);
	for (size_t i = 0; i < n; i++)
		w_text(w, m[i].s);
}

static void w_scope(wbuf *w, const captoken *t)
{
	w_head(w, cbor_encode_map_start, 3);
	w_text(w, "prefix");
	if (t->has_prefix)
		w_text(w, t->prefix);
	else
		w_null(w);
	w_text(w, "methods");
	w_methods(w, t->methods, t->nmethods);
	w_text(w, "max_bytes");
	if (t->has_max_bytes)
		w_uint(w, t->max_bytes);
	else
		w_null(w);
}

static void w_caveat_value(wbuf *w, const captoken_caveat *c)
{
	switch (c->kind) {
	case CAPTOKEN_CAV_EXP: case CAPTOKEN_CAV_NBF: case CAPTOKEN_CAV_BYTES_LE:
		w_uint(w, c->u);
		break;
	case CAPTOKEN_CAV_METHOD:
		w_methods(w, c->methods, c->nmethods);
		break;
	case CAPTOKEN_CAV_RATE:
		w_head(w, cbor_encode_map_start, 2);
		w_text(w, "per_s");
		w_uint(w, c->u);
		w_text(w, "burst");
		w_uint(w, c->u2);
		break;
	case CAPTOKEN_CAV_AMNESIA:
		if (!w->err)
			w_put(w, cbor_encode_bool(c->b, w->p + w->len, w->cap - w->len));
		break;
	case CAPTOKEN_CAV_CUSTOM:
		w_head(w, cbor_encode_map_start, 3);
		w_text(w, "ns");
		w_text(w, c->text);
		w_text(w, "name");
		w_text(w, c->text2);
		w_text(w, "cbor");
		if (!custom_value_valid(c))
			w->err = true;
		w_raw(w, c->bytes, c->nbytes);  /* the CBOR value itself, as the reference */
		break;
	default: /* the text-valued caveats */
		w_text(w, c->text);
		break;
	}
}

static void w_caveat(wbuf *w, const captoken_caveat *c)
{
	w_head(w, cbor_encode_map_start, 2);
	w_text(w, "t");
	w_text(w, captoken_cav_name(c->kind));
	w_text(w, "v");
	w_caveat_value(w, c);
}

int captoken_init_cbor(const captoken *t, uint8_t *buf, size_t cap, size_t *len)
{
	wbuf w = { buf, cap, 0, false };

	w_head(&w, cbor_encode_array_start, 3);
	w_text(&w, t->tid);
	w_text(&w, t->kid);
	w_scope(&w, t);
	*len = w.len;
	return w.err ? -1 : 0;
}

int captoken_caveat_cbor(const captoken_caveat *c, uint8_t *buf, size_t cap, size_t *len)
{
	wbuf w = { buf, cap, 0, false };

	w_caveat(&w, c);
	*len = w.len;
	return w.err ? -1 : 0;
}

static int encode_token(const captoken *t, uint8_t *buf, size_t cap, size_t *len)
{
	wbuf w = { buf, cap, 0, false };

	w_head(&w, cbor_encode_map_start, 5);
	w_text(&w, "tid");
	w_text(&w, t->tid);
	w_text(&w, "kid");
	w_text(&w, t->kid);
	w_text(&w, "scope");
	w_scope(&w, t);
	w_text(&w, "caveats");
	w_head(&w, cbor_encode_array_start, t->ncaveats);
	for (size_t i = 0; i < t->ncaveats; i++)
		w_caveat(&w, &t->caveats[i]);
	w_text(&w, "mac");
	w_head(&w, cbor_encode_bytestring_start, CAPTOKEN_MAC_LEN);
	w_raw(&w, t->mac, CAPTOKEN_MAC_LEN);
	*len = w.len;
	return w.err ? -1 : 0;
}

int captoken_compute_mac(const captoken *t, const uint8_t key[CAPTOKEN_KEY_LEN],
                         uint8_t out[CAPTOKEN_MAC_LEN])
{
	/* tag || CBOR(caveat); a caveat never exceeds the whole token. */
	uint8_t buf[CAPTOKEN_MAC_LEN + CAPTOKEN_MAX_CBOR];
	size_t n;

	if (t->ncaveats > CAPTOKEN_MAX_CAVEATS ||
	    captoken_init_cbor(t, buf, sizeof buf, &n) < 0)
		return -1;
	b3_keyed_hash(key, buf, n, out);
	for (size_t i = 0; i < t->ncaveats; i++) {
		memcpy(buf, out, CAPTOKEN_MAC_LEN);
		if (captoken_caveat_cbor(&t->caveats[i], buf + CAPTOKEN_MAC_LEN,
		                         sizeof buf - CAPTOKEN_MAC_LEN, &n) < 0) {
			sodium_memzero(out, CAPTOKEN_MAC_LEN);
			return -1;
		}
		b3_keyed_hash(key, buf, CAPTOKEN_MAC_LEN + n, out);
	}
	sodium_memzero(buf, CAPTOKEN_MAC_LEN);
	return 0;
}

int captoken_mint(captoken *t, const uint8_t key[CAPTOKEN_KEY_LEN], char *out, size_t cap)
{
	uint8_t cb[CAPTOKEN_MAX_CBOR];
	size_t n;

	if (!captoken_kid_valid(t->kid, strlen(t->kid)) || t->nmethods > CAPTOKEN_MAX_METHODS ||
	    captoken_compute_mac(t, key, t->mac) < 0 ||
	    encode_token(t, cb, sizeof cb, &n) < 0)
		return -1;
	size_t need = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (need > cap || need - 1 > CAPTOKEN_MAX_TOKEN)
		return -1;
	sodium_bin2base64(out, cap, cb, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return 0;
}

/* ------------------------------------------------------------- pre-scan */

/*
 * Well-formedness of one item for this schema's CBOR subset. Every length is
 * bounded by the bytes left, so a 5-byte head cannot make anyone allocate
 * gigabytes; depth is bounded, so recursion is too.
 */
static int scan_item(const uint8_t **pp, const uint8_t *end, int depth)
{
	static const uint64_t min_for[4] = { 24, 0x100, 0x10000, 0x100000000ull };
	const uint8_t *p = *pp;
	uint64_t v;

	if (depth > CAPTOKEN_MAX_DEPTH || p >= end)
		return -1;
	uint8_t ib = *p++, major = ib >> 5, ai = ib & 31;
	if (ai < 24) {
		v = ai;
	} else if (ai <= 27) {
		size_t w = (size_t)1 << (ai - 24);
		if ((size_t)(end - p) < w)
			return -1;
		v = 0;
		for (size_t i = 0; i < w; i++)
			v = (v << 8) | *p++;
		if (v < min_for[ai - 24])
			return -1;        /* non-shortest head */
	} else {
		return -1;                /* reserved or indefinite */
	}
	size_t left = (size_t)(end - p);
	switch (major) {
	case 0: case 1:                   /* unsigned and negative integers */
		break;
	case 2: case 3:
		if (v > left)
			return -1;
		p += v;
		break;
	case 4: case 5:
		if (v > left / (major == 5 ? 2 : 1))
			return -1;
		for (uint64_t i = 0; i < v * (major == 5 ? 2 : 1); i++)
			if (scan_item(&p, end, depth + 1) < 0)
				return -1;
		break;
	case 7:
		if (ai < 20 || ai > 22)   /* only false, true, null */
			return -1;
		break;
	default:                          /* tags */
		return -1;
	}
	*pp = p;
	return 0;
}

/* ---------------------------------------------------------- schema walk */

static bool is_key(const cbor_item_t *k, const char *name)
{
	size_t n = strlen(name);

	return cbor_isa_string(k) && cbor_string_is_definite(k) &&
	       cbor_string_length(k) == n && memcmp(cbor_string_handle(k), name, n) == 0;
}

static int get_text(const cbor_item_t *it, char *out, size_t max)
{
	if (!cbor_isa_string(it) || !cbor_string_is_definite(it))
		return -1;
	size_t n = cbor_string_length(it);
	const uint8_t *s = cbor_string_handle(it);
	if (n > max || (n && !utf8_valid(s, n)))
		return -1;
	if (n)
		memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static int get_uint(const cbor_item_t *it, uint64_t *out)
{
	if (!cbor_isa_uint(it))
		return -1;
	*out = cbor_get_int(it);
	return 0;
}

/* A definite map of exactly n pairs whose keys are names[0..n-1] in order. */
static struct cbor_pair *get_map(const cbor_item_t *it, const char *const *names, size_t n)
{
	if (!cbor_isa_map(it) || !cbor_map_is_definite(it) || cbor_map_size(it) != n)
		return NULL;
	struct cbor_pair *p = cbor_map_handle(it);
	for (size_t i = 0; i < n; i++)
		if (!is_key(p[i].key, names[i]))
			return NULL;
	return p;
}

static int get_methods(const cbor_item_t *it, captoken_method *m, size_t *n)
{
	if (!cbor_isa_array(it) || !cbor_array_is_definite(it) ||
	    cbor_array_size(it) > CAPTOKEN_MAX_METHODS)
		return -1;
	cbor_item_t **a = cbor_array_handle(it);
	*n = cbor_array_size(it);
	for (size_t i = 0; i < *n; i++)
		if (get_text(a[i], m[i].s, CAPTOKEN_MAX_METHOD) < 0 || m[i].s[0] == '\0')
			return -1;
	return 0;
}

static int get_scope(const cbor_item_t *it, captoken *t)
{
	static const char *const k[] = { "prefix", "methods", "max_bytes" };
	struct cbor_pair *p = get_map(it, k, 3);

	if (!p)
		return -1;
	t->has_prefix = !cbor_is_null(p[0].value);
	if (t->has_prefix && get_text(p[0].value, t->prefix, CAPTOKEN_MAX_TEXT) < 0)
		return -1;
	if (get_methods(p[1].value, t->methods, &t->nmethods) < 0)
		return -1;
	t->has_max_bytes = !cbor_is_null(p[2].value);
	return t->has_max_bytes ? get_uint(p[2].value, &t->max_bytes) : 0;
}

static int get_custom(const cbor_item_t *v, captoken_caveat *c)
{
	static const char *const k[] = { "ns", "name", "cbor" };
	struct cbor_pair *p = get_map(v, k, 3);

	if (!p || get_text(p[0].value, c->text, CAPTOKEN_MAX_TEXT) < 0 ||
	    get_text(p[1].value, c->text2, CAPTOKEN_MAX_TEXT) < 0)
		return -1;
	/* "cbor" is any CBOR value (the reference embeds it, not a byte string
	 * wrapping it). scan_item already held it to canonical, definite form, so
	 * re-serialising gives back its bytes; 0 means it is over the bound. */
	c->nbytes = cbor_serialize(p[2].value, c->bytes, CAPTOKEN_MAX_CUSTOM);
	return c->nbytes ? 0 : -1;
}

static int get_caveat_value(const cbor_item_t *v, captoken_caveat *c)
{
	static const char *const rk[] = { "per_s", "burst" };
	struct cbor_pair *p;

	switch (c->kind) {
	case CAPTOKEN_CAV_EXP: case CAPTOKEN_CAV_NBF: case CAPTOKEN_CAV_BYTES_LE:
		return get_uint(v, &c->u);
	case CAPTOKEN_CAV_METHOD:
		return get_methods(v, c->methods, &c->nmethods);
	case CAPTOKEN_CAV_RATE:
		p = get_map(v, rk, 2);
		return p && get_uint(p[0].value, &c->u) == 0 ? get_uint(p[1].value, &c->u2) : -1;
	case CAPTOKEN_CAV_AMNESIA:
		if (!cbor_is_bool(v))
			return -1;
		c->b = cbor_get_bool(v);
		return 0;
	case CAPTOKEN_CAV_CUSTOM:
		return get_custom(v, c);
	default:
		return get_text(v, c->text, CAPTOKEN_MAX_TEXT);
	}
}

static captoken_result get_caveat(const cbor_item_t *it, captoken_caveat *c)
{
	static const char *const k[] = { "t", "v" };
	char name[32];
	struct cbor_pair *p = get_map(it, k, 2);
	size_t i;

	if (!p || get_text(p[0].value, name, sizeof name - 1) < 0)
		return CAPTOKEN_MALFORMED;
	for (i = 0; i < N_CAV_NAMES; i++)
		if (strcmp(name, cav_names[i].name) == 0)
			break;
	if (i == N_CAV_NAMES)
		return CAPTOKEN_UNKNOWN_CAVEAT;
	c->kind = cav_names[i].kind;
	return get_caveat_value(p[1].value, c) < 0 ? CAPTOKEN_MALFORMED : CAPTOKEN_OK;
}

static captoken_result get_token(const cbor_item_t *root, captoken *t)
{
	static const char *const k[] = { "tid", "kid", "scope", "caveats", "mac" };
	struct cbor_pair *p = get_map(root, k, 5);

	if (!p || get_text(p[0].value, t->tid, CAPTOKEN_MAX_TEXT) < 0 ||
	    get_text(p[1].value, t->kid, CAPTOKEN_MAX_KID) < 0 ||
	    !captoken_kid_valid(t->kid, strlen(t->kid)) || get_scope(p[2].value, t) < 0)
		return CAPTOKEN_MALFORMED;
	const cbor_item_t *cav = p[3].value;
	if (!cbor_isa_array(cav) || !cbor_array_is_definite(cav) ||
	    cbor_array_size(cav) > CAPTOKEN_MAX_CAVEATS)
		return CAPTOKEN_MALFORMED;
	t->ncaveats = cbor_array_size(cav);
	for (size_t i = 0; i < t->ncaveats; i++) {
		/* Cleared here, not up front: a reused token pays for the caveats
		 * it has, not for all 64 (captoken_decode_into). */
		memset(&t->caveats[i], 0, sizeof t->caveats[i]);
		captoken_result r = get_caveat(cbor_array_handle(cav)[i], &t->caveats[i]);
		if (r != CAPTOKEN_OK)
			return r;
	}
	const cbor_item_t *mac = p[4].value;
	if (!cbor_isa_bytestring(mac) || !cbor_bytestring_is_definite(mac) ||
	    cbor_bytestring_length(mac) != CAPTOKEN_MAC_LEN)
		return CAPTOKEN_MALFORMED;
	memcpy(t->mac, cbor_bytestring_handle(mac), CAPTOKEN_MAC_LEN);
	return CAPTOKEN_OK;
}

static captoken_result decode_cbor(const uint8_t *b, size_t n, captoken *t)
{
	const uint8_t *p = b;
	struct cbor_load_result lr;
	uint8_t re[CAPTOKEN_MAX_CBOR];
	size_t rn;

	if (scan_item(&p, b + n, 0) < 0 || p != b + n)
		return CAPTOKEN_MALFORMED;
	cbor_item_t *root = cbor_load(b, n, &lr);
	if (!root)
		return lr.error.code == CBOR_ERR_MEMERROR ? CAPTOKEN_INTERNAL : CAPTOKEN_MALFORMED;
	captoken_result r = lr.read == n ? get_token(root, t) : CAPTOKEN_MALFORMED;
	cbor_decref(&root);
	/* One meaning, one spelling: anything not canonical is refused. */
	if (r == CAPTOKEN_OK &&
	    (encode_token(t, re, sizeof re, &rn) < 0 || rn != n || memcmp(re, b, n) != 0))
		r = CAPTOKEN_MALFORMED;
	return r;
}

/* Base64url (no padding, canonical) into bin; OK or MALFORMED. */
static captoken_result token_b64(const char *s, size_t len, uint8_t *bin, size_t cap, size_t *n)
{
	const char *end;

	if (!s || len == 0 || len > CAPTOKEN_MAX_TOKEN)
		return CAPTOKEN_MALFORMED;
	/* libsodium's decoder takes every byte >= 0x80 for '_' (found by
	 * fuzz/zk_proof.c): the alphabet is checked first, or one token would
	 * have 129 spellings per '_'. */
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return CAPTOKEN_MALFORMED;
	/* libsodium refuses non-zero pad bits, so each string has one decoding. */
	if (sodium_base642bin(bin, cap, s, len, NULL, n, &end,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || end != s + len)
		return CAPTOKEN_MALFORMED;
	return CAPTOKEN_OK;
}

captoken_result captoken_decode(const char *s, size_t len, captoken **out)
{
	uint8_t bin[CAPTOKEN_MAX_CBOR];
	size_t n;

	*out = NULL;
	captoken_result r = token_b64(s, len, bin, sizeof bin, &n);
	if (r != CAPTOKEN_OK)
		return r;
	captoken *t = captoken_new();
	if (!t)
		return CAPTOKEN_INTERNAL;
	r = decode_cbor(bin, n, t);
	if (r != CAPTOKEN_OK) {
		captoken_free(t);
		return r;
	}
	*out = t;
	return CAPTOKEN_OK;
}

captoken_result captoken_decode_into(const char *s, size_t len, captoken *t)
{
	uint8_t bin[CAPTOKEN_MAX_CBOR];
	size_t n;

	/* Everything but the caveat array, which the decoder clears entry by
	 * entry: caveats past ncaveats are never read. */
	memset(t, 0, offsetof(captoken, caveats));
	t->ncaveats = 0;
	memset(t->mac, 0, sizeof t->mac);
	captoken_result r = token_b64(s, len, bin, sizeof bin, &n);
	return r == CAPTOKEN_OK ? decode_cbor(bin, n, t) : r;
}

/* ----------------------------------------------------------------- check */

/* A request path the prefix test can trust: absolute, no dot segments. */
static bool path_clean(const char *p)
{
	if (!p || p[0] != '/')
		return false;
	for (const char *s = p; *s; ) {
		s++;                               /* past '/' */
		size_t n = strcspn(s, "/");
		if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
	}
	return true;
}

static bool method_in(const captoken_method *m, size_t n, const char *method)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].s, method) == 0)
			return true;
	return false;
}

/* "a.b.c.d[/n]" or "v6[/n]" → family, 16 address bytes, prefix bits. */
static int cidr_parse(const char *s, int *fam, uint8_t addr[16], unsigned *bits)
{
	char host[64];
	const char *slash = strchr(s, '/');
	size_t hn = slash ? (size_t)(slash - s) : strlen(s);

	if (hn == 0 || hn >= sizeof host)
		return -1;
	memcpy(host, s, hn);
	host[hn] = '\0';
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, host, addr) == 1)
		*fam = AF_INET;
	else if (inet_pton(AF_INET6, host, addr) == 1)
		*fam = AF_INET6;
	else
		return -1;
	unsigned max = *fam == AF_INET ? 32 : 128;
	*bits = max;
	if (!slash)
		return 0;
	const char *d = slash + 1;
	size_t dn = strlen(d);
	if (dn == 0 || dn > 3 || (dn > 1 && d[0] == '0') || strspn(d, "0123456789") != dn)
		return -1;
	*bits = (unsigned)atoi(d);
	return *bits <= max ? 0 : -1;
}

static bool ip_in_cidr(const struct sockaddr *peer, const char *cidr)
{
	int fam;
	uint8_t net[16], ip[16];
	unsigned bits;

	if (!peer || cidr_parse(cidr, &fam, net, &bits) < 0)
		return false;
	if (peer->sa_family == AF_INET) {
		if (fam != AF_INET)
			return false;
		memcpy(ip, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
	} else if (peer->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
		if (fam == AF_INET && IN6_IS_ADDR_V4MAPPED(a))
			memcpy(ip, a->s6_addr + 12, 4);
		else if (fam == AF_INET6)
			memcpy(ip, a->s6_addr, 16);
		else
			return false;
	} else {
		return false;
	}
	size_t full = bits / 8;
	if (memcmp(ip, net, full) != 0)
		return false;
	if (bits % 8 == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));
	return (ip[full] & mask) == (net[full] & mask);
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static captoken_result check_scope(const captoken *t, const captoken_ctx *ctx)
{
	if (!ctx->method || (t->nmethods && !method_in(t->methods, t->nmethods, ctx->method)))
		return CAPTOKEN_SCOPE_METHOD;
	if (!path_clean(ctx->path) ||
	    (t->has_prefix && strncmp(ctx->path, t->prefix, strlen(t->prefix)) != 0))
		return CAPTOKEN_SCOPE_PATH;
	if (t->has_max_bytes && ctx->body_bytes > t->max_bytes)
		return CAPTOKEN_SCOPE_BYTES;
	return CAPTOKEN_OK;
}

static captoken_result check_tenant(const captoken_caveat *c, const captoken_ctx *ctx,
                                    captoken_info *info)
{
	/* The request's tenant (mTLS) must match; all Tenant caveats must agree. */
	if (ctx->tenant && strcmp(ctx->tenant, c->text) != 0)
		return CAPTOKEN_TENANT;
	if (info->tenant[0] && strcmp(info->tenant, c->text) != 0)
		return CAPTOKEN_TENANT;
	memcpy(info->tenant, c->text, strlen(c->text) + 1);
	return CAPTOKEN_OK;
}

static void take_rate(const captoken_caveat *c, captoken_info *info)
{
	/* Attenuation only narrows: the tightest of each number wins. */
	if (!info->has_rate || c->u < info->rate_per_s)
		info->rate_per_s = c->u;
	if (!info->has_rate || c->u2 < info->rate_burst)
		info->rate_burst = c->u2;
	info->has_rate = true;
}

/* macronode:holder is allow-listed: it records the key the wall must see
 * proven; several must name the same key. Any other Custom is refused. */
static captoken_result check_holder(const captoken_caveat *c, captoken_info *info)
{
	uint8_t pk[CAPTOKEN_HOLDER_LEN];
	bool ok = false;

	if (!captoken_caveat_holder(c, pk, &ok))
		return CAPTOKEN_CUSTOM;
	if (!ok || (info->has_holder && memcmp(info->holder, pk, sizeof pk) != 0))
		return CAPTOKEN_HOLDER;
	memcpy(info->holder, pk, sizeof pk);
	info->has_holder = true;
	return CAPTOKEN_OK;
}

static captoken_result check_caveat(const captoken_caveat *c, const captoken_ctx *ctx,
                                    captoken_info *info)
{
	switch (c->kind) {
	case CAPTOKEN_CAV_EXP:
		return ctx->now > c->u && ctx->now - c->u > CAPTOKEN_SKEW_S ?
		       CAPTOKEN_EXPIRED : CAPTOKEN_OK;
	case CAPTOKEN_CAV_NBF:
		return c->u > ctx->now && c->u - ctx->now > CAPTOKEN_SKEW_S ?
		       CAPTOKEN_NOT_YET : CAPTOKEN_OK;
	case CAPTOKEN_CAV_AUD:
		return streq(ctx->audience, c->text) ? CAPTOKEN_OK : CAPTOKEN_AUDIENCE;
	case CAPTOKEN_CAV_METHOD:
		return ctx->method && method_in(c->methods, c->nmethods, ctx->method) ?
		       CAPTOKEN_OK : CAPTOKEN_SCOPE_METHOD;
	case CAPTOKEN_CAV_PATH_PREFIX:
		return path_clean(ctx->path) && strncmp(ctx->path, c->text, strlen(c->text)) == 0 ?
		       CAPTOKEN_OK : CAPTOKEN_SCOPE_PATH;
	case CAPTOKEN_CAV_IP_CIDR:
		return ip_in_cidr(ctx->peer, c->text) ? CAPTOKEN_OK : CAPTOKEN_IP;
	case CAPTOKEN_CAV_BYTES_LE:
		return ctx->body_bytes <= c->u ? CAPTOKEN_OK : CAPTOKEN_SCOPE_BYTES;
	case CAPTOKEN_CAV_RATE:
		take_rate(c, info);
		return CAPTOKEN_OK;
	case CAPTOKEN_CAV_TENANT:
		return check_tenant(c, ctx, info);
	case CAPTOKEN_CAV_AMNESIA:
		return ctx->amnesia == c->b ? CAPTOKEN_OK : CAPTOKEN_AMNESIA;
	case CAPTOKEN_CAV_GOV_POLICY_DIGEST:
		return streq(ctx->gov_policy_digest, c->text) ? CAPTOKEN_OK : CAPTOKEN_GOV_POLICY;
	case CAPTOKEN_CAV_CUSTOM:
		return check_holder(c, info);  /* the one allow-listed Custom caveat */
	}
	return CAPTOKEN_INTERNAL;
}

static bool captoken_cav_is_time(captoken_cav_kind k)
{
	return k == CAPTOKEN_CAV_EXP || k == CAPTOKEN_CAV_NBF;
}

static captoken_result check_mac(const captoken *t, const uint8_t *key)
{
	uint8_t mac[CAPTOKEN_MAC_LEN];
	captoken_result r = CAPTOKEN_BAD_MAC;

	if (captoken_compute_mac(t, key, mac) < 0)
		return CAPTOKEN_MALFORMED;
	if (sodium_memcmp(mac, t->mac, CAPTOKEN_MAC_LEN) == 0)
		r = CAPTOKEN_OK;
	sodium_memzero(mac, sizeof mac);
	return r;
}

captoken_result captoken_check(const captoken *t, const captoken_keyring *kr,
                               const captoken_ctx *ctx, captoken_info *info)
{
	captoken_info scratch;
	captoken_result r;

	if (!info)
		info = &scratch;
	memset(info, 0, sizeof *info);
	memcpy(info->tid, t->tid, sizeof info->tid);
	memcpy(info->kid, t->kid, sizeof info->kid);
	const uint8_t *key = captoken_keyring_find_at(kr, t->kid, ctx->now);
	if (!key)
		return CAPTOKEN_UNKNOWN_KID;
	if ((r = check_mac(t, key)) != CAPTOKEN_OK)
		return r;
	/* Time first, as the reference: an expired token is 401 "expired" even
	 * outside its scope, so a client learns to refresh rather than to widen. */
	for (size_t i = 0; i < t->ncaveats; i++)
		if (captoken_cav_is_time(t->caveats[i].kind) &&
		    (r = check_caveat(&t->caveats[i], ctx, info)) != CAPTOKEN_OK)
			return r;
	if ((r = check_scope(t, ctx)) != CAPTOKEN_OK)
		return r;
	for (size_t i = 0; i < t->ncaveats; i++)
		if ((r = check_caveat(&t->caveats[i], ctx, info)) != CAPTOKEN_OK)
			return r;
	if (ctx->tenant && !info->tenant[0])
		(void)set_text(info->tenant, CAPTOKEN_MAX_TEXT, ctx->tenant);
	return CAPTOKEN_OK;
}

captoken_result captoken_verify(const char *s, size_t len, const captoken_keyring *kr,
                                const captoken_ctx *ctx, captoken_info *info)
{
	captoken *t;
	captoken_result r = captoken_decode(s, len, &t);

	if (info)
		memset(info, 0, sizeof *info);
	if (r != CAPTOKEN_OK)
		return r;
	r = captoken_check(t, kr, ctx, info);
	captoken_free(t);
	return r;
}

captoken_result captoken_attenuate(captoken *t, const captoken_caveat *add, size_t n,
                                   const uint8_t key[CAPTOKEN_KEY_LEN], char *out, size_t cap)
{
	captoken_result r = check_mac(t, key);

	if (r != CAPTOKEN_OK)
		return r;
	if (n > CAPTOKEN_MAX_CAVEATS - t->ncaveats)
		return CAPTOKEN_MALFORMED;
	memcpy(&t->caveats[t->ncaveats], add, n * sizeof *add);
	t->ncaveats += n;
	return captoken_mint(t, key, out, cap) == 0 ? CAPTOKEN_OK : CAPTOKEN_MALFORMED;
}
