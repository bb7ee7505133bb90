/*
 * policy.c — ron-policy v1 bundles: strict parse, evaluation, and loading a
 * signed bundle (the node's path; keygen and signing are in policy_sign.c).
 *
 * The bundle is untrusted until its signature verifies, and the parser runs
 * on it anyway in `policy eval` without --pub and under the fuzzer, so every
 * field is type- and range-checked and nothing outside the schema is let
 * through: a field we do not understand could be a condition the author
 * meant to restrict access, and ignoring it would open what they closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/policy.h"
#include "core/auth/policy_int.h"
#include "core/keys/keyfile.h"
#include "lib/b3.h"
#include "lib/util.h"

#define POLICY_MAX_METHOD 16u   /* longest registered HTTP method is 17; ours are short */
#define POLICY_PATH_MAX   96u   /* JSON path in error messages */

typedef struct {
	const char *id;
	const char *method;          /* NULL or "*" = any method; upper case (method_buf) */
	const char *region;          /* NULL = any region */
	const char *tenant;          /* NULL or "*" = any tenant */
	const char *reason;          /* NULL = the decision has no reason (as the reference) */
	char method_buf[POLICY_MAX_METHOD + 1];
	json_t *tags;                /* borrowed from root; NULL = no tag condition */
	bool has_max;
	uint64_t max_body;
	policy_decision action;
} policy_rule;

struct policy {
	json_t *root;                /* owns every string the rules borrow */
	uint64_t version;
	bool has_max;
	uint64_t max_body;
	policy_decision dflt;
	policy_rule *rules;
	size_t nrules;
};

/* ---- errors ------------------------------------------------------------ */

/* "<where>: <what>", where is a JSON path or a file name. */
int (policy_perr)(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (err && errlen)
		snprintf(err, errlen, "%s: %s", path, msg);
	return -1;
}

/* A key from the input, made safe to print: at most 32 printable bytes. */
static void safe_key(const char *k, char out[40])
{
	size_t o = 0;

	for (size_t i = 0; k[i] && o < 32; i++)
		out[o++] = (k[i] >= 0x20 && k[i] < 0x7f) ? k[i] : '?';
	if (k[0] && strlen(k) > 32 && o == 32)
		out[o++] = '.', out[o++] = '.', out[o++] = '.';
	out[o] = '\0';
}

/* Paths are bounded by the schema's depth; a cut one only shortens a message. */
__attribute__((format(printf, 2, 3)))
static void path_fmt(char out[POLICY_PATH_MAX], const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, POLICY_PATH_MAX, fmt, ap);
	va_end(ap);
}

static void path_join(char out[POLICY_PATH_MAX], const char *base, const char *key)
{
	path_fmt(out, "%s.%s", base, key);
}

/* ---- typed field access -------------------------------------------------- */

static int check_fields(json_t *obj, const char *path, const char *const *allowed,
                        char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		bool ok = false;

		(void)v;
		for (size_t i = 0; allowed[i]; i++)
			ok = ok || strcmp(k, allowed[i]) == 0;
		if (!ok) {
			char sk[40];

			safe_key(k, sk);
			return policy_perr(err, errlen, path, "unknown field \"%s\"", sk);
		}
	}
	return 0;
}

static bool str_is_clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* A non-empty printable string of at most max bytes. */
static int want_str(json_t *v, const char *path, size_t max, const char **out,
                    char *err, size_t errlen)
{
	if (!json_is_string(v))
		return policy_perr(err, errlen, path, "expected a string");
	size_t n = json_string_length(v);
	if (n == 0)
		return policy_perr(err, errlen, path, "must not be empty");
	if (n > max)
		return policy_perr(err, errlen, path, "longer than %zu bytes", max);
	if (!str_is_clean(json_string_value(v)))
		return policy_perr(err, errlen, path, "contains a control character");
	*out = json_string_value(v);
	return 0;
}

static int want_u64(json_t *v, const char *path, uint64_t min, uint64_t *out,
                    char *err, size_t errlen)
{
	if (!json_is_integer(v))
		return policy_perr(err, errlen, path, "expected an integer");
	json_int_t i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min)
		return policy_perr(err, errlen, path, "must be at least %llu",
		                   (unsigned long long)min);
	*out = (uint64_t)i;
	return 0;
}

static int want_action(json_t *v, const char *path, policy_decision *out,
                       char *err, size_t errlen)
{
	const char *s;

	if (want_str(v, path, POLICY_MAX_STR, &s, err, errlen) != 0)
		return -1;
	if (strcmp(s, "allow") == 0)
		*out = POLICY_ALLOW;
	else if (strcmp(s, "deny") == 0)
		*out = POLICY_DENY;
	else
		return policy_perr(err, errlen, path, "expected \"allow\" or \"deny\"");
	return 0;
}

/* "*" or letters; methods compare case-insensitively, as in the reference
 * (it upper-cases them): kept upper-cased in out. */
static bool method_normalize(const char *m, char out[POLICY_MAX_METHOD + 1])
{
	size_t i = 0;

	if (strcmp(m, "*") == 0) {
		memcpy(out, "*", 2);
		return true;
	}
	for (; m[i]; i++) {
		char c = m[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) || i >= POLICY_MAX_METHOD)
			return false;
		out[i] = (char)(c & ~0x20);
	}
	out[i] = '\0';
	return i > 0;
}

/* ---- schema ---------------------------------------------------------------- */

static int parse_defaults(policy *p, json_t *d, char *err, size_t errlen)
{
	static const char *const fields[] = { "max_body_bytes", "default_action", NULL };
	char path[POLICY_PATH_MAX];
	json_t *v;

	if (!json_is_object(d))
		return policy_perr(err, errlen, "$.defaults", "expected an object");
	if (check_fields(d, "$.defaults", fields, err, errlen) != 0)
		return -1;
	if ((v = json_object_get(d, "max_body_bytes"))) {
		path_join(path, "$.defaults", "max_body_bytes");
		if (want_u64(v, path, 0, &p->max_body, err, errlen) != 0)
			return -1;
		p->has_max = true;
	}
	if ((v = json_object_get(d, "default_action"))) {
		path_join(path, "$.defaults", "default_action");
		if (want_action(v, path, &p->dflt, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static int parse_tags(policy_rule *r, json_t *v, const char *path, char *err, size_t errlen)
{
	char ep[POLICY_PATH_MAX];
	const char *s;
	json_t *t;
	size_t i;

	if (!json_is_array(v))
		return policy_perr(err, errlen, path, "expected an array of strings");
	if (json_array_size(v) > POLICY_MAX_TAGS)
		return policy_perr(err, errlen, path, "more than %u tags", POLICY_MAX_TAGS);
	json_array_foreach(v, i, t) {
		path_fmt(ep, "%s[%zu]", path, i);
		if (want_str(t, ep, POLICY_MAX_STR, &s, err, errlen) != 0)
			return -1;
	}
	r->tags = v;
	return 0;
}

static int parse_when(policy_rule *r, json_t *w, const char *base, char *err, size_t errlen)
{
	static const char *const fields[] = { "tenant", "method", "region", "max_body_bytes",
	                                      "require_tags_all", NULL };
	char path[POLICY_PATH_MAX];
	json_t *v;

	if (!json_is_object(w))
		return policy_perr(err, errlen, base, "expected an object");
	if (check_fields(w, base, fields, err, errlen) != 0)
		return -1;
	if ((v = json_object_get(w, "method"))) {
		path_join(path, base, "method");
		if (want_str(v, path, POLICY_MAX_METHOD, &r->method, err, errlen) != 0)
			return -1;
		if (!method_normalize(r->method, r->method_buf))
			return policy_perr(err, errlen, path, "expected \"*\" or a method (letters)");
		r->method = r->method_buf;
	}
	if ((v = json_object_get(w, "tenant"))) {
		path_join(path, base, "tenant");
		if (want_str(v, path, POLICY_MAX_STR, &r->tenant, err, errlen) != 0)
			return -1;
	}
	if ((v = json_object_get(w, "region"))) {
		path_join(path, base, "region");
		if (want_str(v, path, POLICY_MAX_STR, &r->region, err, errlen) != 0)
			return -1;
	}
	if ((v = json_object_get(w, "max_body_bytes"))) {
		path_join(path, base, "max_body_bytes");
		if (want_u64(v, path, 0, &r->max_body, err, errlen) != 0)
			return -1;
		r->has_max = true;
	}
	if ((v = json_object_get(w, "require_tags_all"))) {
		path_join(path, base, "require_tags_all");
		if (parse_tags(r, v, path, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* A map of string to string, at most max entries (meta, obligation params). */
static int parse_str_map(json_t *m, const char *path, size_t max, char *err, size_t errlen)
{
	char ep[POLICY_PATH_MAX];
	const char *k, *s;
	json_t *v;

	if (!json_is_object(m))
		return policy_perr(err, errlen, path, "expected an object of strings");
	if (json_object_size(m) > max)
		return policy_perr(err, errlen, path, "more than %zu entries", max);
	json_object_foreach(m, k, v) {
		path_join(ep, path, k);
		if (strlen(k) > POLICY_MAX_STR)
			return policy_perr(err, errlen, path, "a key is longer than %u bytes",
			                   POLICY_MAX_STR);
		if (want_str(v, ep, POLICY_MAX_STR, &s, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/*
 * rules[].obligations: [{"kind": string, "params": {string: string}}], as
 * the reference's model. Parsed strictly and kept in the bundle; this node
 * acts on none of them yet (docs/policy.md), so they change no decision.
 */
static int parse_obligations(json_t *a, const char *path, char *err, size_t errlen)
{
	static const char *const fields[] = { "kind", "params", NULL };
	char base[POLICY_PATH_MAX], ep[POLICY_PATH_MAX];
	const char *s;
	json_t *o, *v;
	size_t i;

	if (!json_is_array(a))
		return policy_perr(err, errlen, path, "expected an array");
	if (json_array_size(a) > POLICY_MAX_OBLIGATIONS)
		return policy_perr(err, errlen, path, "more than %u obligations",
		                   POLICY_MAX_OBLIGATIONS);
	json_array_foreach(a, i, o) {
		path_fmt(base, "%s[%zu]", path, i);
		if (!json_is_object(o))
			return policy_perr(err, errlen, base, "expected an object");
		if (check_fields(o, base, fields, err, errlen) != 0)
			return -1;
		path_join(ep, base, "kind");
		if (!(v = json_object_get(o, "kind")))
			return policy_perr(err, errlen, ep, "missing");
		if (want_str(v, ep, POLICY_MAX_STR, &s, err, errlen) != 0)
			return -1;
		path_join(ep, base, "params");
		if ((v = json_object_get(o, "params")) &&
		    parse_str_map(v, ep, POLICY_MAX_PARAMS, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static int parse_rule(policy_rule *r, json_t *o, size_t idx, char *err, size_t errlen)
{
	static const char *const fields[] = { "id", "when", "action", "obligations", "reason", NULL };
	char base[POLICY_PATH_MAX], path[POLICY_PATH_MAX];
	json_t *v;

	path_fmt(base, "$.rules[%zu]", idx);
	if (!json_is_object(o))
		return policy_perr(err, errlen, base, "expected an object");
	if (check_fields(o, base, fields, err, errlen) != 0)
		return -1;
	path_join(path, base, "id");
	if (!(v = json_object_get(o, "id")))
		return policy_perr(err, errlen, path, "missing");
	if (want_str(v, path, POLICY_MAX_STR, &r->id, err, errlen) != 0)
		return -1;
	path_join(path, base, "when");
	if (!(v = json_object_get(o, "when")))
		return policy_perr(err, errlen, path, "missing");
	if (parse_when(r, v, path, err, errlen) != 0)
		return -1;
	path_join(path, base, "action");
	if (!(v = json_object_get(o, "action")))
		return policy_perr(err, errlen, path, "missing");
	if (want_action(v, path, &r->action, err, errlen) != 0)
		return -1;
	if ((v = json_object_get(o, "reason"))) {
		path_join(path, base, "reason");
		if (want_str(v, path, POLICY_MAX_STR, &r->reason, err, errlen) != 0)
			return -1;
	}
	path_join(path, base, "obligations");
	if ((v = json_object_get(o, "obligations")) &&
	    parse_obligations(v, path, err, errlen) != 0)
		return -1;
	return 0;
}

static int parse_rules(policy *p, json_t *a, char *err, size_t errlen)
{
	json_t *o;
	size_t i;

	if (!json_is_array(a))
		return policy_perr(err, errlen, "$.rules", "expected an array");
	if (json_array_size(a) > POLICY_MAX_RULES)
		return policy_perr(err, errlen, "$.rules", "more than %u rules", POLICY_MAX_RULES);
	if (json_array_size(a) == 0)
		return 0;
	p->rules = calloc(json_array_size(a), sizeof *p->rules);
	if (!p->rules)
		return policy_perr(err, errlen, "$.rules", "out of memory");
	json_array_foreach(a, i, o) {
		if (parse_rule(&p->rules[i], o, i, err, errlen) != 0)
			return -1;
		/* Quadratic, but bounded by POLICY_MAX_RULES and run once per load. */
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->rules[j].id, p->rules[i].id) == 0) {
				char path[POLICY_PATH_MAX];

				path_fmt(path, "$.rules[%zu].id", i);
				return policy_perr(err, errlen, path, "duplicate id (also $.rules[%zu])",
				                   j);
			}
		p->nrules = i + 1;
	}
	return 0;
}

static int parse_root(policy *p, char *err, size_t errlen)
{
	static const char *const fields[] = { "version", "meta", "defaults", "rules", NULL };
	json_t *v;

	if (!json_is_object(p->root))
		return policy_perr(err, errlen, "$", "expected an object");
	if (check_fields(p->root, "$", fields, err, errlen) != 0)
		return -1;
	if (!(v = json_object_get(p->root, "version")))
		return policy_perr(err, errlen, "$.version", "missing");
	if (want_u64(v, "$.version", 1, &p->version, err, errlen) != 0)
		return -1;
	if ((v = json_object_get(p->root, "meta")) &&
	    parse_str_map(v, "$.meta", POLICY_MAX_META, err, errlen) != 0)
		return -1;
	if ((v = json_object_get(p->root, "defaults")) && parse_defaults(p, v, err, errlen) != 0)
		return -1;
	if (!(v = json_object_get(p->root, "rules")))
		return policy_perr(err, errlen, "$.rules", "missing");
	return parse_rules(p, v, err, errlen);
}

policy *policy_parse(const void *data, size_t len, char *err, size_t errlen)
{
	json_error_t jerr;
	policy *p;

	if (len > POLICY_MAX_BYTES) {
		policy_perr(err, errlen, "$", "bundle is %zu bytes, more than %u", len,
		            POLICY_MAX_BYTES);
		return NULL;
	}
	if (!(p = calloc(1, sizeof *p))) {
		policy_perr(err, errlen, "$", "out of memory");
		return NULL;
	}
	p->dflt = POLICY_DENY;
	p->root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!p->root) {
		policy_perr(err, errlen, "$", "invalid JSON at line %d column %d: %s",
		            jerr.line, jerr.column, jerr.text);
		policy_free(p);
		return NULL;
	}
	if (parse_root(p, err, errlen) != 0) {
		policy_free(p);
		return NULL;
	}
	return p;
}

void policy_free(policy *p)
{
	if (!p)
		return;
	json_decref(p->root);
	free(p->rules);
	free(p);
}

uint64_t policy_version(const policy *p)
{
	return p->version;
}

size_t policy_rule_count(const policy *p)
{
	return p->nrules;
}

/* ---- evaluation -------------------------------------------------------------- */

const char *policy_decision_name(policy_decision d)
{
	return d == POLICY_ALLOW ? "allow" : "deny";
}

static bool ctx_has_tag(const policy_ctx *ctx, const char *tag)
{
	for (size_t i = 0; i < ctx->ntags; i++)
		if (ctx->tags[i] && strcasecmp(ctx->tags[i], tag) == 0)   /* the reference lower-cases */
			return true;
	return false;
}

/* NULL when every condition holds, else the name of the first that fails. */
static const char *rule_fails(const policy_rule *r, const policy_ctx *ctx)
{
	json_t *t;
	size_t i;

	if (r->tenant && strcmp(r->tenant, "*") != 0 &&
	    (!ctx->tenant || strcmp(r->tenant, ctx->tenant) != 0))
		return "tenant";
	if (r->region && (!ctx->region || strcmp(r->region, ctx->region) != 0))
		return "region";
	if (r->has_max && ctx->body_bytes > r->max_body)
		return "max_body_bytes";
	if (r->tags)
		json_array_foreach(r->tags, i, t)
			if (!ctx_has_tag(ctx, json_string_value(t)))
				return "require_tags_all";
	return NULL;
}

static bool rule_is_any_method(const policy_rule *r)
{
	return !r->method || strcmp(r->method, "*") == 0;
}

/* One pass over the rules: exact-method rules (any = false) or the rest. */
static const policy_rule *eval_pass(const policy *p, const policy_ctx *ctx, bool any,
                                    policy_trace_fn trace, void *arg)
{
	for (size_t i = 0; i < p->nrules; i++) {
		const policy_rule *r = &p->rules[i];
		const char *why;

		if (rule_is_any_method(r) != any)
			continue;
		if (!any && (!ctx->method || strcasecmp(r->method, ctx->method) != 0))
			why = "method";
		else
			why = rule_fails(r, ctx);
		if (trace)
			trace(arg, r->id, why ? why : "match");
		if (!why)
			return r;
	}
	return NULL;
}

/* Sizes 0..m that rule r decides for ctx (all its other conditions hold), or
 * false when it decides none. */
static bool rule_covers(const policy_rule *r, const policy_ctx *ctx, bool any, uint64_t *m)
{
	if (rule_is_any_method(r) != any)
		return false;
	if (!any && (!ctx->method || strcasecmp(r->method, ctx->method) != 0))
		return false;
	if (rule_fails(r, ctx))
		return false;
	*m = r->has_max ? r->max_body : UINT64_MAX;
	return true;
}

/*
 * Every rule's body condition is a prefix of sizes (body <= max), so walking
 * the rules in evaluation order, the sizes decided so far are always 0..done
 * and each rule decides (done, m]. The allowed prefix ends at the first
 * size range a deny decides.
 */
bool policy_body_limit(const policy *p, const policy_ctx *ctx, uint64_t *out)
{
	policy_ctx c = *ctx;
	uint64_t limit = p->has_max ? p->max_body : UINT64_MAX;
	uint64_t m, done = 0;
	bool any_done = false;

	c.body_bytes = 0;   /* body conditions are what this walk works out */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < p->nrules; i++) {
			if (!rule_covers(&p->rules[i], &c, pass == 1, &m) || (any_done && m <= done))
				continue;
			if (p->rules[i].action != POLICY_ALLOW) {
				if (!any_done)
					return false;          /* even an empty body is denied */
				*out = done < limit ? done : limit;
				return true;
			}
			done = m;
			any_done = true;
			if (done == UINT64_MAX)
				goto decided;
		}
	if (p->dflt != POLICY_ALLOW) {
		if (!any_done)
			return false;
		*out = done < limit ? done : limit;
		return true;
	}
decided:
	*out = limit;
	return true;
}

void policy_eval(const policy *p, const policy_ctx *ctx, policy_result *out,
                 policy_trace_fn trace, void *arg)
{
	const policy_rule *r;

	out->rule_id = NULL;
	if (p->has_max) {
		bool big = ctx->body_bytes > p->max_body;

		if (trace)
			trace(arg, NULL, big ? "body too large" : "ok");
		if (big) {
			out->decision = POLICY_DENY;
			out->reason = POLICY_REASON_BODY;
			return;
		}
	}
	r = eval_pass(p, ctx, false, trace, arg);
	if (!r)
		r = eval_pass(p, ctx, true, trace, arg);
	if (!r) {
		out->decision = p->dflt;
		out->reason = POLICY_REASON_DEFAULT;
		return;
	}
	out->decision = r->action;
	out->reason = r->reason;   /* none without one, as the reference */
	out->rule_id = r->id;
}

/* ---- signatures ------------------------------------------------------------------ */

int policy_sig_verify(const void *data, size_t len, const uint8_t sig[POLICY_SIG_LEN],
                      const uint8_t pk[POLICY_PK_LEN])
{
	uint8_t digest[B3_OUT_LEN];

	if (sodium_init() < 0)
		return -1;
	b3_hash(data, len, digest);
	return crypto_sign_verify_detached(sig, digest, sizeof digest, pk) == 0 ? 0 : -1;
}

/* ---- files ---------------------------------------------------------------------- */

int policy_path_with(char *out, size_t outlen, const char *base, const char *suffix,
                     char *err, size_t errlen)
{
	if ((size_t)snprintf(out, outlen, "%s%s", base, suffix) >= outlen)
		return policy_perr(err, errlen, base, "path too long");
	return 0;
}

/*
 * Open a regular file of at most max bytes; secret files must not be
 * accessible to group or others (util_file_open checks the open descriptor,
 * so a rename between check and read cannot swap the file).
 */
static int open_checked(const char *path, size_t max, bool secret, size_t *size,
                        char *err, size_t errlen)
{
	struct stat st;
	int fd;

	switch (util_file_open(path, max, secret ? UTIL_FILE_SECRET : 0, &fd, &st)) {
	case UTIL_FILE_OK:
		*size = (size_t)st.st_size;
		return fd;
	case UTIL_FILE_NOT_REGULAR:
		return policy_perr(err, errlen, path, "not a regular file");
	case UTIL_FILE_TOO_OPEN:
		return policy_perr(err, errlen, path, "mode %04o: a secret key file must be 0600",
		                   (unsigned)(st.st_mode & 07777));
	case UTIL_FILE_TOO_BIG:
		return policy_perr(err, errlen, path, "%lld bytes, more than %zu",
		                   (long long)st.st_size, max);
	case UTIL_FILE_ERRNO:
		break;
	}
	return policy_perr(err, errlen, path, "%s", strerror(errno));
}

int policy_read_hex(const char *path, uint8_t *out, size_t n, bool secret, char *buf,
                    const char *what, char *err, size_t errlen)
{
	size_t size;
	int fd = open_checked(path, 2 * n + 1, secret, &size, err, errlen);
	int r;

	if (fd < 0)
		return -1;
	r = util_read_full(fd, buf, size);
	close(fd);
	if (r != 0)
		return policy_perr(err, errlen, path, "read failed");
	if (size == 2 * n + 1 && buf[2 * n] != '\n')
		size = 0;
	if (size < 2 * n || util_hex_decode(buf, n, out) != 0) {
		sodium_memzero(buf, 2 * n + 1);
		return policy_perr(err, errlen, path, "not a %s (%zu lowercase hex characters)",
		                   what, 2 * n);
	}
	sodium_memzero(buf, 2 * n + 1);
	return 0;
}

int policy_read_secret(const char *path, uint8_t *out, size_t n, const kek *k, bool *clear,
                       char *buf, char *err, size_t errlen)
{
	size_t size;
	int fd = open_checked(path, 2 * n + 1, true, &size, err, errlen);
	int r;

	if (fd < 0)
		return -1;
	r = util_read_full(fd, buf, size);
	close(fd);
	if (r != 0)
		return policy_perr(err, errlen, path, "read failed");
	r = keyfile_unseal((const uint8_t *)buf, size, k, KEYFILE_AAD_POLICY, out, n, NULL, path,
	                   err, errlen);
	*clear = r == KEYFILE_CLEAR;
	if (r == KEYFILE_CLEAR) {
		if (size == 2 * n + 1 && buf[2 * n] != '\n')
			size = 0;
		r = size < 2 * n || util_hex_decode(buf, n, out) != 0 ? -1 : 0;
		if (r != 0)
			(void)policy_perr(err, errlen, path, "not a secret key (sealed, or %zu lowercase "
			                  "hex characters)", 2 * n);
		else
			keyfile_warn_clear(path);
	}
	sodium_memzero(buf, 2 * n + 1);
	return r;
}

int policy_read_bundle(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open_checked(path, POLICY_MAX_BYTES, false, len, err, errlen);

	if (fd < 0)
		return -1;
	*buf = malloc(*len ? *len : 1);
	if (!*buf) {
		close(fd);
		return policy_perr(err, errlen, path, "out of memory");
	}
	if (util_read_full(fd, *buf, *len) != 0) {
		close(fd);
		free(*buf);
		return policy_perr(err, errlen, path, "short read");
	}
	close(fd);
	return 0;
}

static int load_verified(const char *bundle_path, const char *pubkey_path, char **buf,
                         size_t *len, char *err, size_t errlen)
{
	char spath[PATH_MAX];
	uint8_t pk[POLICY_PK_LEN], sig[POLICY_SIG_LEN];

	char pkhex[2 * POLICY_PK_LEN + 1], sighex[2 * POLICY_SIG_LEN + 1];

	if (policy_path_with(spath, sizeof spath, bundle_path, POLICY_SIG_SUFFIX, err, errlen) != 0 ||
	    policy_read_hex(pubkey_path, pk, POLICY_PK_LEN, false, pkhex, "public key", err,
	                    errlen) != 0 ||
	    policy_read_hex(spath, sig, POLICY_SIG_LEN, false, sighex, "signature", err,
	                    errlen) != 0 ||
	    policy_read_bundle(bundle_path, buf, len, err, errlen) != 0)
		return -1;
	if (policy_sig_verify(*buf, *len, sig, pk) != 0) {
		free(*buf);
		return policy_perr(err, errlen, bundle_path,
		                   "signature %s does not verify with key %s",
		                   spath, pubkey_path);
	}
	return 0;
}

int policy_load_bytes(const char *bundle_path, const char *pubkey_path, uint64_t min_version,
                      policy **out, char **bytes, size_t *nbytes, char *err, size_t errlen)
{
	char perrbuf[256];
	char *buf;
	size_t len;
	policy *p;

	if (load_verified(bundle_path, pubkey_path, &buf, &len, err, errlen) != 0)
		return -1;
	p = policy_parse(buf, len, perrbuf, sizeof perrbuf);
	if (!p) {
		free(buf);
		return policy_perr(err, errlen, bundle_path, "%s", perrbuf);
	}
	if (p->version < min_version) {
		policy_perr(err, errlen, bundle_path,
		            "version %llu is lower than %llu (rollback refused)",
		            (unsigned long long)p->version, (unsigned long long)min_version);
		policy_free(p);
		free(buf);
		return -1;
	}
	if (bytes) {
		*bytes = buf;
		*nbytes = len;
	} else {
		free(buf);
	}
	*out = p;
	return 0;
}

int policy_load(const char *bundle_path, const char *pubkey_path, uint64_t min_version,
                policy **out, char *err, size_t errlen)
{
	return policy_load_bytes(bundle_path, pubkey_path, min_version, out, NULL, NULL, err, errlen);
}
