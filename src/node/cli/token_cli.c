/*
 * token_cli.c — `macronode token mint|attenuate|inspect`.
 *
 * Keys are read only from files (never flags, so they stay out of `ps` and
 * shell history) into sodium secure memory. A TOKEN argument of "-" is read
 * from stdin for the same reason. inspect prints the decoded claims and at
 * most the first 8 hex characters of the mac; it never needs or shows a key.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/auth/captoken.h"
#include "lib/util.h"
#include "core/keys/kek.h"
#include "node/node.h"

#define TOKEN_EXIT_OK    0
#define TOKEN_EXIT_FAIL  1
#define TOKEN_EXIT_USAGE 2


static const char usage_token[] =
	"usage: macronode token mint --key FILE --kid KID [--tid ID] [--prefix P]\n"
	"                            [--method M]... [--max-bytes N] [caveats]\n"
	"       macronode token attenuate TOKEN --key FILE [caveats]\n"
	"       macronode token inspect TOKEN\n"
	"\n"
	"TOKEN may be '-' to read it from stdin. FILE is a key file as `macronode\n"
	"init` or `macronode key rotate` write it (sealed under the node's KEK,\n"
	"docs/keys.md; or 64 hex characters from earlier versions), mode 0600 or\n"
	"stricter. The KEK is found as `run` finds it (RON_CONFIG, RON_KEK_FILE).\n"
	"\n"
	"attenuate: with this MAC design (a BLAKE3-keyed chain that is not\n"
	"re-keyed per link) appending a caveat needs the ROOT key the token was\n"
	"minted with; the token's MAC is checked with it first.\n"
	"\n"
	"caveats (each narrows the token; repeatable where it makes sense):\n"
	"  --aud A            Aud: only nodes whose auth.audience is A\n"
	"  --ttl DUR          Exp = now + DUR (60s, 5m, 2h, 1d or seconds)\n"
	"  --exp UNIX         Exp at an absolute time\n"
	"  --nbf UNIX         Nbf: not valid before (60 s skew)\n"
	"  --tenant T         Tenant\n"
	"  --ip CIDR          IpCidr (v4 or v6, e.g. 10.0.0.0/8, 2001:db8::/32)\n"
	"  --bytes-le N       BytesLe: request body at most N bytes\n"
	"  --path-prefix P    PathPrefix\n"
	"  --allow-method M   Method caveat (repeat for several methods)\n"
	"  --rate PER_S:BURST Rate for the quota step\n"
	"  --amnesia BOOL     Amnesia: only on nodes whose amnesia mode is BOOL\n"
	"  --gov-digest D     GovPolicyDigest\n"
	"  --holder-key FILE  bind the token to a holder key (FILE.pub, or FILE when it\n"
	"                     ends in .pub; `macronode zk keygen`): every request\n"
	"                     must then carry a proof of the key (docs/zk.md)\n"
	"  --custom NS:NAME:HEX  Custom caveat; HEX is the CBOR value itself (one\n"
	"                     item, e.g. f5 for true). No node acts on a namespace\n"
	"                     yet, so a node refuses such a token (403).\n";

enum {
	OPT_KEY = 256, OPT_KID, OPT_TID, OPT_PREFIX, OPT_METHOD, OPT_MAX_BYTES,
	OPT_AUD, OPT_TTL, OPT_EXP, OPT_NBF, OPT_TENANT, OPT_IP, OPT_BYTES_LE,
	OPT_PATH_PREFIX, OPT_ALLOW_METHOD, OPT_RATE, OPT_AMNESIA, OPT_GOV, OPT_CUSTOM, OPT_HOLDER, OPT_HELP,
};

static const struct option token_opts[] = {
	{ "key", required_argument, NULL, OPT_KEY },
	{ "kid", required_argument, NULL, OPT_KID },
	{ "tid", required_argument, NULL, OPT_TID },
	{ "prefix", required_argument, NULL, OPT_PREFIX },
	{ "method", required_argument, NULL, OPT_METHOD },
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },
	{ "aud", required_argument, NULL, OPT_AUD },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "exp", required_argument, NULL, OPT_EXP },
	{ "nbf", required_argument, NULL, OPT_NBF },
	{ "tenant", required_argument, NULL, OPT_TENANT },
	{ "ip", required_argument, NULL, OPT_IP },
	{ "bytes-le", required_argument, NULL, OPT_BYTES_LE },
	{ "path-prefix", required_argument, NULL, OPT_PATH_PREFIX },
	{ "custom", required_argument, NULL, OPT_CUSTOM },
	{ "allow-method", required_argument, NULL, OPT_ALLOW_METHOD },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "amnesia", required_argument, NULL, OPT_AMNESIA },
	{ "gov-digest", required_argument, NULL, OPT_GOV },
	{ "holder-key", required_argument, NULL, OPT_HOLDER },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

typedef struct {
	const char *key_file, *kid, *tid, *prefix;
	captoken_method methods[CAPTOKEN_MAX_METHODS];
	size_t nmethods;
	bool has_max_bytes;
	uint64_t max_bytes;
	captoken_caveat cav[CAPTOKEN_MAX_CAVEATS];
	size_t ncav;
	captoken_caveat *method_cav;   /* --allow-method accumulates here */
	bool help;
} token_args;

__attribute__((format(printf, 1, 2)))
static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fputs("macronode token: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return TOKEN_EXIT_USAGE;
}

static int parse_dur(const char *s, uint64_t *out)
{
	char num[32];
	size_t n = strlen(s);
	uint64_t mul = 1;

	if (n == 0 || n >= sizeof num)
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 's': mul = 1; num[--n] = '\0'; break;
	case 'm': mul = 60; num[--n] = '\0'; break;
	case 'h': mul = 3600; num[--n] = '\0'; break;
	case 'd': mul = 86400; num[--n] = '\0'; break;
	default: break;
	}
	if (util_parse_u64(num, out) < 0 || *out > UINT64_MAX / mul / 2)
		return -1;
	*out *= mul;
	return 0;
}

static captoken_caveat *next_cav(token_args *a, captoken_cav_kind k)
{
	if (a->ncav >= CAPTOKEN_MAX_CAVEATS)
		return NULL;
	captoken_caveat *c = &a->cav[a->ncav++];
	memset(c, 0, sizeof *c);
	c->kind = k;
	return c;
}

static int add_text(token_args *a, captoken_cav_kind k, const char *s)
{
	captoken_caveat *c = next_cav(a, k);

	return c ? captoken_caveat_set_text(c, k, s) : -1;
}

static int add_uint(token_args *a, captoken_cav_kind k, uint64_t v)
{
	captoken_caveat *c = next_cav(a, k);

	if (!c)
		return -1;
	c->u = v;
	return 0;
}

static int add_rate(token_args *a, const char *s)
{
	char buf[64];
	const char *colon = strchr(s, ':');
	uint64_t ps, burst;

	if (!colon || (size_t)(colon - s) >= sizeof buf)
		return -1;
	memcpy(buf, s, (size_t)(colon - s));
	buf[colon - s] = '\0';
	if (util_parse_u64(buf, &ps) < 0 || util_parse_u64(colon + 1, &burst) < 0)
		return -1;
	captoken_caveat *c = next_cav(a, CAPTOKEN_CAV_RATE);
	if (!c)
		return -1;
	c->u = ps;
	c->u2 = burst;
	return 0;
}

static int add_allow_method(token_args *a, const char *m)
{
	if (!a->method_cav && !(a->method_cav = next_cav(a, CAPTOKEN_CAV_METHOD)))
		return -1;
	captoken_caveat *c = a->method_cav;
	if (c->nmethods >= CAPTOKEN_MAX_METHODS)
		return -1;
	return captoken_method_set(&c->methods[c->nmethods++], m);
}

static int add_amnesia(token_args *a, const char *s)
{
	bool v;

	if (strcmp(s, "true") == 0)
		v = true;
	else if (strcmp(s, "false") == 0)
		v = false;
	else
		return -1;
	captoken_caveat *c = next_cav(a, CAPTOKEN_CAV_AMNESIA);
	if (!c)
		return -1;
	c->b = v;
	return 0;
}

/* NS:NAME:HEX — a Custom caveat whose value is the CBOR item in HEX (the
 * encoder checks it is exactly one well-formed item). */
static int add_custom(token_args *a, const char *v)
{
	const char *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	char ns[CAPTOKEN_MAX_TEXT + 1], name[CAPTOKEN_MAX_TEXT + 1];
	size_t hexlen = c2 ? strlen(c2 + 1) : 0;

	if (!c2 || c1 == v || c2 == c1 + 1 || hexlen == 0 || hexlen % 2 ||
	    hexlen / 2 > CAPTOKEN_MAX_CUSTOM || (size_t)(c1 - v) > CAPTOKEN_MAX_TEXT ||
	    (size_t)(c2 - c1 - 1) > CAPTOKEN_MAX_TEXT)
		return -1;
	snprintf(ns, sizeof ns, "%.*s", (int)(c1 - v), v);
	snprintf(name, sizeof name, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
	captoken_caveat *c = next_cav(a, CAPTOKEN_CAV_CUSTOM);
	if (!c || captoken_caveat_set_text(c, CAPTOKEN_CAV_CUSTOM, ns) != 0 ||
	    snprintf(c->text2, sizeof c->text2, "%s", name) < 0 ||
	    util_hex_decode(c2 + 1, hexlen / 2, c->bytes) != 0)
		return -1;
	c->nbytes = hexlen / 2;
	return 0;
}

/* --holder-key FILE: the macronode:holder Custom caveat (docs/auth.md). */
static int add_holder(token_args *a, const char *file)
{
	uint8_t pk[CAPTOKEN_HOLDER_LEN];
	char err[CONFIG_ERR_MAX];
	captoken_caveat *c;

	if (zk_cli_read_public(file, pk, err, sizeof err) != 0) {
		fprintf(stderr, "macronode token: %s\n", err);
		return -1;
	}
	if (!(c = next_cav(a, CAPTOKEN_CAV_CUSTOM)))
		return -1;
	captoken_caveat_set_holder(c, pk);
	return 0;
}

/* One caveat flag. 0, -1 (bad value) or 1 (not a caveat flag). */
static int opt_caveat(token_args *a, int c, const char *v)
{
	uint64_t u;

	switch (c) {
	case OPT_AUD: return add_text(a, CAPTOKEN_CAV_AUD, v);
	case OPT_TENANT: return add_text(a, CAPTOKEN_CAV_TENANT, v);
	case OPT_IP: return add_text(a, CAPTOKEN_CAV_IP_CIDR, v);
	case OPT_PATH_PREFIX: return add_text(a, CAPTOKEN_CAV_PATH_PREFIX, v);
	case OPT_GOV: return add_text(a, CAPTOKEN_CAV_GOV_POLICY_DIGEST, v);
	case OPT_ALLOW_METHOD: return add_allow_method(a, v);
	case OPT_RATE: return add_rate(a, v);
	case OPT_AMNESIA: return add_amnesia(a, v);
	case OPT_CUSTOM: return add_custom(a, v);
	case OPT_HOLDER: return add_holder(a, v);
	case OPT_TTL:
		return parse_dur(v, &u) < 0 ? -1 : add_uint(a, CAPTOKEN_CAV_EXP, (uint64_t)time(NULL) + u);
	case OPT_EXP: case OPT_NBF: case OPT_BYTES_LE:
		if (util_parse_u64(v, &u) < 0)
			return -1;
		return add_uint(a, c == OPT_EXP ? CAPTOKEN_CAV_EXP :
		                   c == OPT_NBF ? CAPTOKEN_CAV_NBF : CAPTOKEN_CAV_BYTES_LE, u);
	default:
		return 1;
	}
}

/* Scope and identity flags (mint only). 0, -1 or 1 (not one of these). */
static int opt_mint(token_args *a, int c, const char *v)
{
	switch (c) {
	case OPT_KID: a->kid = v; return 0;
	case OPT_TID: a->tid = v; return 0;
	case OPT_PREFIX: a->prefix = v; return 0;
	case OPT_METHOD:
		if (a->nmethods >= CAPTOKEN_MAX_METHODS)
			return -1;
		return captoken_method_set(&a->methods[a->nmethods++], v);
	case OPT_MAX_BYTES:
		a->has_max_bytes = true;
		return util_parse_u64(v, &a->max_bytes);
	default:
		return 1;
	}
}

static int parse_args(int argc, char **argv, bool mint, token_args *a)
{
	int c;

	memset(a, 0, sizeof *a);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", token_opts, NULL)) != -1) {
		int r = 1;
		if (c == OPT_HELP) {
			a->help = true;
			return 0;
		}
		if (c == OPT_KEY) {
			a->key_file = optarg;
			continue;
		}
		if (mint)
			r = opt_mint(a, c, optarg);
		if (r == 1)
			r = opt_caveat(a, c, optarg);
		if (r == 1)
			return usage_err("unknown or misplaced option '%s'", argv[optind - 1]);
		if (r < 0)
			return usage_err("bad value '%s' (or too many caveats)", optarg);
	}
	if (!a->key_file)
		return usage_err("%s needs --key FILE", argv[0]);
	return 0;
}

/* The key of kid from path; a sealed file is opened with the node's KEK
 * (docs/keys.md: keys.kek_file, RON_KEK_FILE, ...), bound to that kid. */
static uint8_t *load_key(const char *path, const char *kid)
{
	char err[1024];
	bool failed = false;
	kek *k = cli_kek_lookup("macronode token", &failed);
	uint8_t *key = failed ? NULL : captoken_key_read(path, k, kid, NULL, err, sizeof err);

	if (!key && !failed)
		fprintf(stderr, "macronode token: %s\n", err);
	kek_free(k);
	return key;
}

static int fill_mint(const token_args *a, captoken *t)
{
	char rnd[17];
	uint8_t rb[8];

	if (!a->tid) {
		randombytes_buf(rb, sizeof rb);
		sodium_bin2hex(rnd, sizeof rnd, rb, sizeof rb);
	}
	if (strlen(a->kid) > CAPTOKEN_MAX_KID)
		return -1;
	memcpy(t->kid, a->kid, strlen(a->kid) + 1);
	const char *tid = a->tid ? a->tid : rnd;
	if (strlen(tid) > CAPTOKEN_MAX_TEXT)
		return -1;
	memcpy(t->tid, tid, strlen(tid) + 1);
	if (a->prefix) {
		if (strlen(a->prefix) > CAPTOKEN_MAX_TEXT)
			return -1;
		t->has_prefix = true;
		memcpy(t->prefix, a->prefix, strlen(a->prefix) + 1);
	}
	memcpy(t->methods, a->methods, sizeof a->methods);
	t->nmethods = a->nmethods;
	t->has_max_bytes = a->has_max_bytes;
	t->max_bytes = a->max_bytes;
	memcpy(t->caveats, a->cav, a->ncav * sizeof a->cav[0]);
	t->ncaveats = a->ncav;
	return 0;
}

static int cmd_mint(int argc, char **argv)
{
	static token_args a;
	static char out[CAPTOKEN_MAX_TOKEN + 1];
	int r = parse_args(argc, argv, true, &a);

	if (r || a.help) {
		if (a.help)
			fputs(usage_token, stdout);
		return r;
	}
	if (!a.kid)
		return usage_err("%s needs --kid KID", "mint");
	if (optind != argc)
		return usage_err("mint: unexpected argument '%s'", argv[optind]);
	uint8_t *key = load_key(a.key_file, a.kid);
	if (!key)
		return TOKEN_EXIT_FAIL;
	captoken *t = captoken_new();
	r = TOKEN_EXIT_FAIL;
	if (t && fill_mint(&a, t) == 0 && captoken_mint(t, key, out, sizeof out) == 0) {
		puts(out);
		r = TOKEN_EXIT_OK;
	} else {
		fputs("macronode token: mint failed: a field is invalid or the token "
		      "would exceed 4096 characters\n", stderr);
	}
	sodium_free(key);
	sodium_memzero(out, sizeof out);
	captoken_free(t);
	return r;
}

/* TOKEN argument, or stdin for "-". Into buf; NULL on error. */
static const char *token_arg(const char *arg, char *buf, size_t cap, size_t *len)
{
	if (strcmp(arg, "-") != 0) {
		*len = strlen(arg);
		return arg;
	}
	size_t n = fread(buf, 1, cap - 1, stdin);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int decode_arg(const char *arg, captoken **t)
{
	static char buf[CAPTOKEN_MAX_TOKEN + 2];
	size_t n;
	const char *s = token_arg(arg, buf, sizeof buf, &n);
	captoken_result r = captoken_decode(s, n, t);

	sodium_memzero(buf, sizeof buf);
	if (r != CAPTOKEN_OK) {
		fprintf(stderr, "macronode token: cannot decode token: %s\n", captoken_result_name(r));
		return -1;
	}
	return 0;
}

static int cmd_attenuate(int argc, char **argv)
{
	static token_args a;
	static char out[CAPTOKEN_MAX_TOKEN + 1];
	captoken *t;
	int r = parse_args(argc, argv, false, &a);

	if (r || a.help) {
		if (a.help)
			fputs(usage_token, stdout);
		return r;
	}
	if (optind != argc - 1)
		return usage_err("%s needs exactly one TOKEN", "attenuate");
	if (a.ncav == 0)
		return usage_err("%s needs at least one caveat flag", "attenuate");
	if (decode_arg(argv[optind], &t) < 0)
		return TOKEN_EXIT_FAIL;
	uint8_t *key = load_key(a.key_file, t->kid);
	captoken_result cr = key ? captoken_attenuate(t, a.cav, a.ncav, key, out, sizeof out)
	                         : CAPTOKEN_INTERNAL;
	if (cr == CAPTOKEN_OK)
		puts(out);
	else if (key)
		fprintf(stderr, "macronode token: attenuate refused: %s%s\n", captoken_result_name(cr),
		        cr == CAPTOKEN_BAD_MAC ? " (is --key the root key of this token's kid?)" : "");
	sodium_free(key);
	sodium_memzero(out, sizeof out);
	captoken_free(t);
	return cr == CAPTOKEN_OK ? TOKEN_EXIT_OK : TOKEN_EXIT_FAIL;
}

static json_t *json_methods(const captoken_method *m, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(m[i].s));
	return a;
}

static json_t *json_caveat_value(const captoken_caveat *c)
{
	char hex[2 * CAPTOKEN_MAX_CUSTOM + 1];

	switch (c->kind) {
	case CAPTOKEN_CAV_EXP: case CAPTOKEN_CAV_NBF: case CAPTOKEN_CAV_BYTES_LE:
		return json_integer((json_int_t)c->u);
	case CAPTOKEN_CAV_METHOD:
		return json_methods(c->methods, c->nmethods);
	case CAPTOKEN_CAV_RATE:
		return json_pack("{s:I,s:I}", "per_s", (json_int_t)c->u, "burst", (json_int_t)c->u2);
	case CAPTOKEN_CAV_AMNESIA:
		return json_boolean(c->b);
	case CAPTOKEN_CAV_CUSTOM:
		sodium_bin2hex(hex, sizeof hex, c->bytes, c->nbytes);
		return json_pack("{s:s,s:s,s:s}", "ns", c->text, "name", c->text2, "cbor_hex", hex);
	default:
		return json_string(c->text);
	}
}

static int cmd_inspect(int argc, char **argv)
{
	captoken *t;
	char mac8[9];

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		fputs(usage_token, stdout);
		return TOKEN_EXIT_OK;
	}
	if (argc != 2)
		return usage_err("%s needs exactly one TOKEN", "inspect");
	if (decode_arg(argv[1], &t) < 0)
		return TOKEN_EXIT_FAIL;
	json_t *cav = json_array();
	for (size_t i = 0; i < t->ncaveats; i++)
		json_array_append_new(cav, json_pack("{s:s,s:o}", "t",
		    captoken_cav_name(t->caveats[i].kind), "v", json_caveat_value(&t->caveats[i])));
	sodium_bin2hex(mac8, sizeof mac8, t->mac, 4);
	json_t *scope = json_pack("{s:o,s:o,s:o}",
	    "prefix", t->has_prefix ? json_string(t->prefix) : json_null(),
	    "methods", json_methods(t->methods, t->nmethods),
	    "max_bytes", t->has_max_bytes ? json_integer((json_int_t)t->max_bytes) : json_null());
	json_t *o = json_pack("{s:s,s:s,s:o,s:o,s:s,s:b}", "tid", t->tid, "kid", t->kid,
	    "scope", scope, "caveats", cav, "mac_prefix", mac8, "verified", 0);
	captoken_free(t);
	if (!o)
		return TOKEN_EXIT_FAIL;
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputs("\n", stdout);
	json_decref(o);
	return TOKEN_EXIT_OK;
}

int token_cli_main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_token, stderr);
		return TOKEN_EXIT_USAGE;
	}
	const char *w = argv[1];
	if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0 || strcmp(w, "help") == 0) {
		fputs(usage_token, stdout);
		return TOKEN_EXIT_OK;
	}
	if (sodium_init() < 0) {
		fputs("macronode token: libsodium failed to initialise\n", stderr);
		return TOKEN_EXIT_FAIL;
	}
	if (strcmp(w, "mint") == 0)
		return cmd_mint(argc - 1, argv + 1);
	if (strcmp(w, "attenuate") == 0)
		return cmd_attenuate(argc - 1, argv + 1);
	if (strcmp(w, "inspect") == 0)
		return cmd_inspect(argc - 1, argv + 1);
	return usage_err("unknown subcommand '%s'", w);
}
