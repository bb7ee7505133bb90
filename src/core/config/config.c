/*
 * config.c — the configuration model, driven by config_table.c.
 *
 * Values enter through one door per form: value_set_string() (defaults,
 * environment, flags) and value_set_json() (the file), both ending in
 * text_store()/number_store(), which hold every check. config_validate()
 * re-runs the same checks on the merged struct, then does the cross-field
 * and file-system checks. Nothing is half-applied: a failing load or env pass
 * leaves the config as it was.
 */
#include "core/config/config.h"
#include "core/config/config_test.h"
#include "core/config/config_int.h"
#include "lib/b3.h"
#include "lib/util.h"
#include "mn_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CONFIG_ECHO_MAX    "64"  /* longest user text echoed in an error */
#define CONFIG_PORT_MAX    65535u
#define CONFIG_SECURE_MODE 077u  /* token file bits that must be clear */
/* A token file holds the token plus an optional "\r\n". */
#define CONFIG_TOKEN_FILE_MAX (CONFIG_TOKEN_MAX + 2)

_Static_assert(sizeof(log_level) == sizeof(int), "log_level stored as int");
_Static_assert(sizeof(log_format) == sizeof(int), "log_format stored as int");

typedef struct config_unit {
	const char *name;
	uint64_t    mul;
} config_unit;

/* Largest first: formatting picks the first unit that divides exactly. */
static const config_unit duration_units[] = {
	{ "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 }, { NULL, 0 },
};
static const config_unit size_units[] = {
	{ "TiB", 1ull << 40 }, { "GiB", 1ull << 30 }, { "MiB", 1ull << 20 }, { "KiB", 1ull << 10 },
	{ "TB", 1000000000000ull }, { "GB", 1000000000ull }, { "MB", 1000000ull }, { "KB", 1000ull },
	{ "B", 1 }, { "", 1 }, { NULL, 0 },
};

/* ---- table access ---------------------------------------------------- */

static const config_key *table_find(const char *key)
{
	for (size_t i = 0; i < config_table_len; i++)
		if (strcmp(config_table[i].key, key) == 0)
			return &config_table[i];
	return NULL;
}

/* True if some key lives under "path." (path is a section object). */
static bool table_has_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < config_table_len; i++)
		if (strncmp(config_table[i].key, path, n) == 0 && config_table[i].key[n] == '.')
			return true;
	return false;
}

static void *field(mn_config *c, const config_key *k)
{
	return (char *)c + k->offset;
}

const void *config_cfield(const mn_config *c, const config_key *k)
{
	return (const char *)c + k->offset;
}

bool config_type_is_text(config_type t)
{
	return t == CONFIG_T_STRING || t == CONFIG_T_ADDR || t == CONFIG_T_PATH;
}

uint64_t config_number_get(const mn_config *c, const config_key *k)
{
	if (k->size == sizeof(uint64_t)) {
		uint64_t v;
		memcpy(&v, config_cfield(c, k), sizeof v);
		return v;
	}
	uint32_t w;
	memcpy(&w, config_cfield(c, k), sizeof w);
	return w;
}

int config_int_get(const mn_config *c, const config_key *k)
{
	int v;
	memcpy(&v, config_cfield(c, k), sizeof v);
	return v;
}

const char *config_enum_label(const config_key *k, int value)
{
	for (const config_enum_name *n = k->names; n->name; n++)
		if (!n->alias && n->value == value)
			return n->name;
	return NULL;
}

/* "a, b, c" of the non-alias names, for messages and docs. */
void config_names_list(const config_key *k, char *buf, size_t len)
{
	size_t o = 0;
	buf[0] = '\0';
	for (const config_enum_name *n = k->names; n->name && o < len; n++) {
		if (n->alias)
			continue;
		int w = snprintf(buf + o, len - o, "%s%s", o ? ", " : "", n->name);
		if (w < 0)
			return;
		o += (size_t)w;
	}
}

/* ---- numbers, durations, sizes --------------------------------------- */

/* Leading decimal digits of s into *v; *end points past them. NULL or why. */
static const char *digits_parse(const char *s, uint64_t *v, const char **end)
{
	uint64_t n = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return "must start with a digit";
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - d) / 10)
			return "number too large";
		n = n * 10 + d;
	}
	*v = n;
	*end = p;
	return NULL;
}

static const char *scaled_parse(const char *s, const config_unit *units, uint64_t *out)
{
	uint64_t n;
	const char *u;
	const char *why = digits_parse(s, &n, &u);
	if (why)
		return why;
	for (const config_unit *x = units; x->name; x++) {
		if (strcmp(u, x->name) != 0)
			continue;
		if (n > UINT64_MAX / x->mul)
			return "value too large";
		*out = n * x->mul;
		return NULL;
	}
	return "unknown unit";
}

static const char *duration_parse(const char *s, uint64_t *ms)
{
	const char *p = s;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p != s && *p == '\0')
		return "a bare number is ambiguous: add a unit";
	return scaled_parse(s, duration_units, ms);
}

int config_parse_duration_ms(const char *s, uint64_t *ms)
{
	return s && duration_parse(s, ms) == NULL ? 0 : -1;
}

int config_parse_size(const char *s, uint64_t *bytes)
{
	return s && scaled_parse(s, size_units, bytes) == NULL ? 0 : -1;
}

static void scaled_format(uint64_t v, const config_unit *units, const char *zero,
                          char *buf, size_t len)
{
	if (v == 0) {
		snprintf(buf, len, "%s", zero);
		return;
	}
	for (const config_unit *x = units; x->name; x++) {
		if (v % x->mul == 0) {
			snprintf(buf, len, "%llu%s", (unsigned long long)(v / x->mul), x->name);
			return;
		}
	}
}

void config_number_format(const config_key *k, uint64_t v, char *buf, size_t len)
{
	if (k->type == CONFIG_T_DURATION)
		scaled_format(v, duration_units, "0s", buf, len);
	else if (k->type == CONFIG_T_SIZE)
		scaled_format(v, size_units, "0", buf, len);
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

static int range_check(const config_key *k, uint64_t v, char *why, size_t wl)
{
	if (v >= k->min && v <= k->max)
		return 0;
	char got[CONFIG_VALUE_MAX], lo[CONFIG_VALUE_MAX], hi[CONFIG_VALUE_MAX];
	config_number_format(k, v, got, sizeof got);
	config_number_format(k, k->min, lo, sizeof lo);
	config_number_format(k, k->max, hi, sizeof hi);
	return util_fail(why, wl, "%s is out of range (%s..%s)", got, lo, hi);
}

static int number_store(mn_config *c, const config_key *k, uint64_t v, char *why, size_t wl)
{
	if (range_check(k, v, why, wl) != 0)
		return -1;
	if (k->size == sizeof(uint64_t)) {
		memcpy(field(c, k), &v, sizeof v);
	} else {
		uint32_t w = (uint32_t)v;  /* table max <= UINT32_MAX (unit test) */
		memcpy(field(c, k), &w, sizeof w);
	}
	return 0;
}

static int number_set_string(mn_config *c, const config_key *k, const char *s,
                             char *why, size_t wl)
{
	uint64_t v = 0;
	const char *e = "", *r;
	if (k->type == CONFIG_T_DURATION) {
		if ((r = duration_parse(s, &v)) != NULL)
			return util_fail(why, wl, "invalid duration \"%." CONFIG_ECHO_MAX "s\": %s "
			            "(use an integer and ms, s, m or h, e.g. \"5s\")", s, r);
	} else if (k->type == CONFIG_T_SIZE) {
		if ((r = scaled_parse(s, size_units, &v)) != NULL)
			return util_fail(why, wl, "invalid size \"%." CONFIG_ECHO_MAX "s\": %s "
			            "(use bytes or KiB, MiB, GiB, TiB, KB, MB, GB, TB, e.g. \"1MiB\")", s, r);
	} else if (digits_parse(s, &v, &e) != NULL || *e != '\0') {
		return util_fail(why, wl, "invalid number \"%." CONFIG_ECHO_MAX "s\": expected a non-negative integer", s);
	}
	return number_store(c, k, v, why, wl);
}

/* ---- addresses ------------------------------------------------------- */

static const char *port_parse(const char *s, in_port_t *port)
{
	uint64_t v;
	const char *e;
	if (digits_parse(s, &v, &e) != NULL || *e != '\0' || v > CONFIG_PORT_MAX)
		return "port must be a number 0..65535";
	*port = htons((uint16_t)v);
	return NULL;
}

static const char *addr6_parse(const char *s, struct sockaddr_storage *ss, unsigned *len, bool *lo)
{
	char host[INET6_ADDRSTRLEN];
	const char *close = strchr(s, ']');
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	if (!close || close[1] != ':')
		return "expected \"[ipv6]:port\"";
	size_t n = (size_t)(close - (s + 1));
	if (n == 0 || n >= sizeof host)
		return "host must be a numeric IP address (no DNS names)";
	memcpy(host, s + 1, n);
	host[n] = '\0';
	if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
		return "host must be a numeric IP address (no DNS names)";
	a->sin6_family = AF_INET6;
	*len = sizeof *a;
	*lo = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr) ||
	      (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr) && a->sin6_addr.s6_addr[12] == 127);
	return port_parse(close + 2, &a->sin6_port);
}

static const char *addr4_parse(const char *s, struct sockaddr_storage *ss, unsigned *len, bool *lo)
{
	char host[INET_ADDRSTRLEN];
	const char *colon = strchr(s, ':');
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	if (!colon)
		return "expected \"host:port\"";
	if (strchr(colon + 1, ':'))
		return "an IPv6 address must be in brackets: \"[::1]:port\"";
	size_t n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof host)
		return "host must be a numeric IP address (no DNS names)";
	memcpy(host, s, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
		return "host must be a numeric IP address (no DNS names)";
	a->sin_family = AF_INET;
	*len = sizeof *a;
	*lo = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	return port_parse(colon + 1, &a->sin_port);
}

static const char *addr_parse(const char *s, struct sockaddr_storage *ss, unsigned *len, bool *lo)
{
	memset(ss, 0, sizeof *ss);
	*lo = false;
	return s[0] == '[' ? addr6_parse(s, ss, len, lo) : addr4_parse(s, ss, len, lo);
}

int config_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *sslen, bool *is_loopback)
{
	if (!s || !ss || !sslen || !is_loopback)
		return -1;
	return addr_parse(s, ss, sslen, is_loopback) == NULL ? 0 : -1;
}

/* ---- text, enums, booleans, services ---------------------------------- */

static int text_check(const config_key *k, const char *s, char *why, size_t wl)
{
	size_t n = strlen(s);
	if (n < k->min)
		return util_fail(why, wl, "must not be empty");
	if (n > k->max)
		return util_fail(why, wl, "too long (%zu bytes, at most %llu)", n, (unsigned long long)k->max);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return util_fail(why, wl, "must not contain control characters");
	/* print/to_json must be able to emit it; jansson refuses bad UTF-8. */
	json_t *probe = json_string(s);
	if (!probe)
		return util_fail(why, wl, "must be valid UTF-8");
	json_decref(probe);
	if (k->type == CONFIG_T_ADDR) {
		struct sockaddr_storage ss;
		unsigned len;
		bool lo;
		const char *r = addr_parse(s, &ss, &len, &lo);
		if (r)
			return util_fail(why, wl, "invalid address \"%." CONFIG_ECHO_MAX "s\": %s", s, r);
	}
	return 0;
}

static int text_store(mn_config *c, const config_key *k, const char *s, char *why, size_t wl)
{
	if (text_check(k, s, why, wl) != 0)
		return -1;
	char *dst = field(c, k);
	size_t n = strlen(s);       /* < k->size: text_check bounded it by max */
	memcpy(dst, s, n + 1);
	return 0;
}

static int enum_set(mn_config *c, const config_key *k, const char *s, char *why, size_t wl)
{
	for (const config_enum_name *n = k->names; n->name; n++) {
		if (strcmp(n->name, s) == 0) {
			memcpy(field(c, k), &n->value, sizeof n->value);
			return 0;
		}
	}
	char names[CONFIG_ERR_MAX / 2];
	config_names_list(k, names, sizeof names);
	return util_fail(why, wl, "invalid value \"%." CONFIG_ECHO_MAX "s\" (expected one of: %s)", s, names);
}

static int bool_set(mn_config *c, const config_key *k, const char *s, char *why, size_t wl)
{
	bool v;
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		v = true;
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		v = false;
	else
		return util_fail(why, wl, "invalid boolean \"%." CONFIG_ECHO_MAX "s\" (expected true, false, 1 or 0)", s);
	memcpy(field(c, k), &v, sizeof v);
	return 0;
}

static uint32_t services_known(const config_key *k)
{
	uint32_t all = 0;
	for (const config_enum_name *n = k->names; n->name; n++)
		all |= (uint32_t)n->value;
	return all;
}

/* Add service `name` (length len) to *bits; unknown or repeated names fail. */
static int services_add(const config_key *k, const char *name, size_t len, uint32_t *bits,
                        char *why, size_t wl)
{
	for (const config_enum_name *n = k->names; n->name; n++) {
		if (strlen(n->name) != len || memcmp(n->name, name, len) != 0)
			continue;
		if (*bits & (uint32_t)n->value)
			return util_fail(why, wl, "service \"%s\" is listed twice", n->name);
		*bits |= (uint32_t)n->value;
		return 0;
	}
	char names[CONFIG_ERR_MAX / 2];
	config_names_list(k, names, sizeof names);
	int shown = len > 64 ? 64 : (int)len;
	return util_fail(why, wl, "unknown service \"%.*s\" (known: %s)", shown, name, names);
}

/* Comma-separated list ("gateway,storage"); "" is the empty set. */
static int services_set_string(mn_config *c, const config_key *k, const char *s,
                               char *why, size_t wl)
{
	uint32_t bits = 0;
	for (const char *p = s; *s != '\0';) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (services_add(k, p, len, &bits, why, wl) != 0)
			return -1;
		if (!comma)
			break;
		p = comma + 1;
	}
	memcpy(field(c, k), &bits, sizeof bits);
	return 0;
}

static int services_set_json(mn_config *c, const config_key *k, json_t *v, char *why, size_t wl)
{
	uint32_t bits = 0;
	size_t i;
	json_t *item;
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return util_fail(why, wl, "expected an array of service names (strings)");
		if (services_add(k, json_string_value(item), json_string_length(item),
		                 &bits, why, wl) != 0)
			return -1;
	}
	memcpy(field(c, k), &bits, sizeof bits);
	return 0;
}

/* ---- lists (addresses, origins) ----------------------------------------- */

/* One entry of an address list: a numeric address with a port. */
static int addr_list_entry(const char *s, size_t len, char *why, size_t wl)
{
	char one[CONFIG_ADDR_MAX];
	struct sockaddr_storage ss;
	unsigned sslen;
	bool lo;
	const char *r;

	if (len == 0)
		return util_fail(why, wl, "empty address in the list");
	if (len >= sizeof one)
		return util_fail(why, wl, "an address is longer than %d bytes", CONFIG_ADDR_MAX - 1);
	memcpy(one, s, len);
	one[len] = '\0';
	if ((r = addr_parse(one, &ss, &sslen, &lo)) != NULL)
		return util_fail(why, wl, "invalid address \"%." CONFIG_ECHO_MAX "s\": %s", one, r);
	return 0;
}

/* The host of an origin: a bracketed IPv6 literal, or lowercase letters,
 * digits, '-' and '.' (a name or an IPv4 address). NULL: fine. */
static const char *origin_host_error(const char *h, size_t n)
{
	if (n == 0)
		return "no host";
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return "an IPv6 host must be in brackets";
		for (size_t i = 1; i + 1 < n; i++)
			if (!strchr("0123456789abcdef:.", h[i]))
				return "invalid character in an IPv6 host (lowercase hex, ':' and '.')";
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (h[i] >= 'A' && h[i] <= 'Z')
			return "uppercase host: browsers send origins in lowercase";
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= '0' && h[i] <= '9') ||
		      h[i] == '-' || h[i] == '.'))
			return "invalid character in the host";
	}
	return NULL;
}

/* The port of an origin (after ':'): 1..65535, no leading zero, and not the
 * scheme's default (a browser never sends that, so it could never match). */
static const char *origin_port_error(const char *p, size_t n, bool https)
{
	unsigned long v = 0;

	if (memchr(p, '/', n))
		return "an origin has no path";
	if (n == 0 || n > 5 || p[0] == '0')
		return "invalid port";
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return "invalid port";
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return "invalid port";
	if (v == (https ? 443u : 80u))
		return "the default port is never sent by browsers: leave it out";
	return NULL;
}

/* Bytes of the host at the start of h (len bytes, not NUL-terminated). */
static size_t origin_host_len(const char *h, size_t len)
{
	const char *e;

	if (len && h[0] == '[')
		return (e = memchr(h, ']', len)) ? (size_t)(e - h) + 1 : len;
	for (size_t i = 0; i < len; i++)
		if (h[i] == ':' || h[i] == '/')
			return i;
	return len;
}

/* One web origin, exactly as a browser serializes it (RFC 6454 §6.2):
 * "http://" or "https://", host, optional ":port"; no path, no "*". */
static int origin_entry(const char *s, size_t len, char *why, size_t wl)
{
	bool https = len >= 8 && memcmp(s, "https://", 8) == 0;
	size_t skip = https ? 8 : 7, hl;
	const char *h, *err;

	if (len == 0)
		return util_fail(why, wl, "empty origin in the list");
	if (len >= CONFIG_ORIGIN_MAX)
		return util_fail(why, wl, "an origin is longer than %d bytes", CONFIG_ORIGIN_MAX - 1);
	if (memchr(s, '*', len))
		return util_fail(why, wl, "\"*\" is not an origin: writes are allowed to exact origins only");
	if (!https && !(len >= 7 && memcmp(s, "http://", 7) == 0))
		return util_fail(why, wl, "origin \"%.*s\" must start with http:// or https://",
		            (int)(len < 64 ? len : 64), s);
	h = s + skip;
	len -= skip;
	hl = origin_host_len(h, len);
	err = origin_host_error(h, hl);
	if (!err && hl < len)
		err = h[hl] == ':' ? origin_port_error(h + hl + 1, len - hl - 1, https)
		                   : "an origin has no path";
	if (err)
		return util_fail(why, wl, "invalid origin \"%.*s\": %s", (int)(skip + len < 64 ? skip + len : 64),
		            s, err);
	return 0;
}

static int list_entry(const config_key *k, const char *s, size_t len, char *why, size_t wl)
{
	return k->type == CONFIG_T_ORIGIN_LIST ? origin_entry(s, len, why, wl)
	                                       : addr_list_entry(s, len, why, wl);
}

static size_t list_cap(const config_key *k)
{
	return k->type == CONFIG_T_ORIGIN_LIST ? CONFIG_ORIGIN_LIST_N : CONFIG_ADDR_LIST_N;
}

/* "a,b" (no spaces): every entry valid, at most list_cap(k) of them. */
static int addr_list_check(const config_key *k, const char *s, char *why, size_t wl)
{
	size_t n = 0;

	if (strlen(s) > k->max)
		return util_fail(why, wl, "too long (at most %llu bytes)", (unsigned long long)k->max);
	if (!*s)
		return 0;
	for (const char *p = s;;) {
		size_t len = strcspn(p, ",");
		if (++n > list_cap(k))
			return util_fail(why, wl, "more than %zu %s", list_cap(k),
			            k->type == CONFIG_T_ORIGIN_LIST ? "origins" : "addresses");
		if (list_entry(k, p, len, why, wl) != 0)
			return -1;
		if (!p[len])
			break;
		p += len + 1;
	}
	return 0;
}

static int addr_list_set_string(mn_config *c, const config_key *k, const char *s,
                                char *why, size_t wl)
{
	if (addr_list_check(k, s, why, wl) != 0)
		return -1;
	memcpy(field(c, k), s, strlen(s) + 1);
	return 0;
}

/* The larger of the list fields, and room for one more entry's test. */
#define CONFIG_LIST_BUF (CONFIG_ORIGIN_LIST_MAX > CONFIG_ADDR_LIST_MAX ? \
                         CONFIG_ORIGIN_LIST_MAX + 1 : CONFIG_ADDR_LIST_MAX + 1)

/* A JSON array of strings, joined with commas. */
static int addr_list_set_json(mn_config *c, const config_key *k, json_t *v, char *why, size_t wl)
{
	char buf[CONFIG_LIST_BUF];
	size_t o = 0, i;
	json_t *item;

	buf[0] = '\0';
	json_array_foreach(v, i, item) {
		if (!json_is_string(item))
			return util_fail(why, wl, "expected an array of %s strings",
			            k->type == CONFIG_T_ORIGIN_LIST ? "origin" : "address");
		size_t len = json_string_length(item);
		if (o + len + 1 >= sizeof buf || o + len + 1 > k->size)
			return util_fail(why, wl, "too long (at most %llu bytes)", (unsigned long long)k->max);
		if (memchr(json_string_value(item), ',', len) || len == 0)
			return list_entry(k, json_string_value(item), len, why, wl) != 0 ? -1 :
			       util_fail(why, wl, "an entry must not contain a comma");
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%s", o ? "," : "",
		                      json_string_value(item));
	}
	return addr_list_set_string(c, k, buf, why, wl);
}

/* ---- secrets ----------------------------------------------------------- */

static int secure_init(void)
{
	return sodium_init() < 0 ? -1 : 0;  /* idempotent: 1 means already done */
}

/* Never echoes the value, only what is wrong with it. */
static int secret_check(const char *s, size_t n, char *why, size_t wl)
{
	if (n == 0)
		return util_fail(why, wl, "admin token is empty");
	if (n < CONFIG_TOKEN_MIN)
		return util_fail(why, wl, "admin token must be at least %d characters", CONFIG_TOKEN_MIN);
	if (n > CONFIG_TOKEN_MAX)
		return util_fail(why, wl, "admin token must be at most %d characters", CONFIG_TOKEN_MAX);
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return util_fail(why, wl, "admin token must be printable ASCII without spaces");
	return 0;
}

static void secret_free(char **p)
{
	if (!*p)
		return;
	sodium_mprotect_readwrite(*p);
	sodium_memzero(*p, strlen(*p));
	sodium_free(*p);
	*p = NULL;
}

/* Take ownership of buf (sodium memory holding a checked token); freeze it. */
static void secret_adopt(char **slot, char *buf)
{
	secret_free(slot);
	sodium_mprotect_readonly(buf);
	*slot = buf;
}

static int secret_set(char **slot, const char *s, char *why, size_t wl)
{
	size_t n = strlen(s);
	if (secret_check(s, n, why, wl) != 0)
		return -1;
	char *buf = secure_init() == 0 ? sodium_malloc(n + 1) : NULL;
	if (!buf)
		return util_fail(why, wl, "cannot allocate secure memory");
	memcpy(buf, s, n + 1);
	secret_adopt(slot, buf);
	return 0;
}

/* ---- setting one value ------------------------------------------------ */

static int value_set_string(mn_config *c, const config_key *k, const char *s, char *why, size_t wl)
{
	switch (k->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_ADDR:
	case CONFIG_T_PATH:
		return text_store(c, k, s, why, wl);
	case CONFIG_T_DURATION:
	case CONFIG_T_SIZE:
	case CONFIG_T_U32:
		return number_set_string(c, k, s, why, wl);
	case CONFIG_T_BOOL:
		return bool_set(c, k, s, why, wl);
	case CONFIG_T_ENUM:
		return enum_set(c, k, s, why, wl);
	case CONFIG_T_SERVICES:
		return services_set_string(c, k, s, why, wl);
	case CONFIG_T_SECRET:
		return secret_set((char **)field(c, k), s, why, wl);
	case CONFIG_T_ADDR_LIST:
	case CONFIG_T_ORIGIN_LIST:
		return addr_list_set_string(c, k, s, why, wl);
	}
	return util_fail(why, wl, "unsupported type");
}

static const char *json_type_name(const json_t *v)
{
	if (!v)
		return "nothing";
	switch (json_typeof(v)) {
	case JSON_OBJECT:  return "object";
	case JSON_ARRAY:   return "array";
	case JSON_STRING:  return "string";
	case JSON_INTEGER: return "integer";
	case JSON_REAL:    return "number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:   return "boolean";
	case JSON_NULL:    return "null";
	}
	return "value";
}

static const char *type_expected(config_type t)
{
	switch (t) {
	case CONFIG_T_STRING:   return "a string";
	case CONFIG_T_ADDR:     return "an address string \"ip:port\"";
	case CONFIG_T_PATH:     return "a path string";
	case CONFIG_T_DURATION: return "a duration string with a unit, e.g. \"5s\"";
	case CONFIG_T_SIZE:     return "a size (integer bytes or a string such as \"1MiB\")";
	case CONFIG_T_U32:      return "an integer";
	case CONFIG_T_BOOL:     return "true or false";
	case CONFIG_T_ENUM:     return "a string";
	case CONFIG_T_SERVICES: return "an array of service names";
	case CONFIG_T_SECRET:   return "a string";
	case CONFIG_T_ADDR_LIST: return "an array of address strings \"ip:port\"";
	case CONFIG_T_ORIGIN_LIST: return "an array of origin strings \"scheme://host[:port]\"";
	}
	return "a value";
}

static int value_set_integer(mn_config *c, const config_key *k, json_t *v, char *why, size_t wl)
{
	json_int_t i = json_integer_value(v);
	if (i < 0)
		return util_fail(why, wl, "%lld is out of range (must not be negative)", (long long)i);
	return number_store(c, k, (uint64_t)i, why, wl);
}

static int value_set_json(mn_config *c, const config_key *k, json_t *v, char *why, size_t wl)
{
	switch (k->type) {
	case CONFIG_T_BOOL:
		if (json_is_boolean(v))
			return bool_set(c, k, json_is_true(v) ? "true" : "false", why, wl);
		break;
	case CONFIG_T_U32:
		if (json_is_integer(v))
			return value_set_integer(c, k, v, why, wl);
		break;
	case CONFIG_T_SIZE:
		if (json_is_integer(v))
			return value_set_integer(c, k, v, why, wl);
		if (json_is_string(v))
			return value_set_string(c, k, json_string_value(v), why, wl);
		break;
	case CONFIG_T_SERVICES:
		if (json_is_array(v))
			return services_set_json(c, k, v, why, wl);
		break;
	case CONFIG_T_ADDR_LIST:
	case CONFIG_T_ORIGIN_LIST:
		if (json_is_array(v))
			return addr_list_set_json(c, k, v, why, wl);
		break;
	case CONFIG_T_DURATION:
		if (json_is_integer(v))
			return util_fail(why, wl, "expected %s, got integer: a bare number is ambiguous, "
			            "add a unit (ms, s, m, h)", type_expected(k->type));
		__attribute__((fallthrough));
	default:
		if (json_is_string(v))
			return value_set_string(c, k, json_string_value(v), why, wl);
		break;
	}
	return util_fail(why, wl, "expected %s, got %s", type_expected(k->type), json_type_name(v));
}

/* ---- defaults, copy, free --------------------------------------------- */

void config_defaults(mn_config *c)
{
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		char why[CONFIG_ERR_MAX];
		if (k->def && value_set_string(c, k, k->def, why, sizeof why) != 0)
			(void)BUG(k->key);  /* a table default that fails its own checks */
	}
}

void config_free(mn_config *c)
{
	if (c)
		secret_free(&c->admin_token);
}

int config_copy(mn_config *dst, const mn_config *src)
{
	*dst = *src;
	dst->admin_token = NULL;
	if (!src->admin_token)
		return 0;
	return secret_set(&dst->admin_token, src->admin_token, NULL, 0);
}

/* ---- the file --------------------------------------------------------- */

static int json_walk(mn_config *c, json_t *obj, const char *prefix, const char *src,
                     char *err, size_t errlen);

static int json_member(mn_config *c, const char *path, json_t *v, const char *src,
                       char *err, size_t errlen)
{
	const config_key *k = table_find(path);
	char why[CONFIG_ERR_MAX];
	if (k && k->secret)
		return util_fail(err, errlen, "%s: %s: secrets are not accepted in the config file "
		            "(use %s or admin.token_file)", src, path, k->env);
	if (k) {
		if (value_set_json(c, k, v, why, sizeof why) != 0)
			return util_fail(err, errlen, "%s: %s: %s", src, path, why);
		return 0;
	}
	if (!table_has_section(path))
		return util_fail(err, errlen, "%s: %s: unknown key", src, path);
	if (!json_is_object(v))
		return util_fail(err, errlen, "%s: %s: expected an object, got %s", src, path,
		            json_type_name(v));
	return json_walk(c, v, path, src, err, errlen);
}

static int json_walk(mn_config *c, json_t *obj, const char *prefix, const char *src,
                     char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v) {
		char path[CONFIG_KEY_MAX];
		int n = snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", name);
		/* A dot inside a name would let {"limits.max_body": ..} alias a nested key. */
		if (n < 0 || (size_t)n >= sizeof path || strchr(name, '.') || *name == '\0')
			return util_fail(err, errlen, "%s: %s%s%." CONFIG_ECHO_MAX "s: unknown key", src,
			            prefix, *prefix ? "." : "", name);
		if (json_member(c, path, v, src, err, errlen) != 0)
			return -1;
	}
	return 0;
}

static int load_buffer(mn_config *c, const char *buf, size_t len, const char *name,
                       char *err, size_t errlen)
{
	json_error_t je;
	if (len > CONFIG_FILE_MAX)
		return util_fail(err, errlen, "%s: file is larger than %u bytes", name, CONFIG_FILE_MAX);
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return util_fail(err, errlen, "%s:%d:%d: parse error: %s", name, je.line, je.column, je.text);
	if (!json_is_object(root)) {
		json_decref(root);
		return util_fail(err, errlen, "%s: the top level must be a JSON object", name);
	}
	mn_config tmp = *c;  /* applied whole or not at all; no secrets are touched */
	int rc = json_walk(&tmp, root, "", name, err, errlen);
	json_decref(root);
	if (rc == 0)
		*c = tmp;
	return rc;
}

int config_load_string(mn_config *c, const char *json, const char *name, char *err, size_t errlen)
{
	name = name ? name : "<string>";
	if (!json)
		return util_fail(err, errlen, "%s: no JSON text", name);
	return load_buffer(c, json, strlen(json), name, err, errlen);
}

int config_load_file(mn_config *c, const char *path, char *err, size_t errlen)
{
	char *buf;
	size_t len;

	if (util_read_file(path, CONFIG_FILE_MAX, &buf, &len) != 0) {
		if (errno == EFBIG)
			return util_fail(err, errlen, "%s: file is larger than %u bytes", path, CONFIG_FILE_MAX);
		return util_fail(err, errlen, "%s: cannot read config: %s", path,
		            errno == EINVAL ? "not a regular file" : strerror(errno));
	}
	int rc = load_buffer(c, buf, len, path, err, errlen);
	free(buf);
	return rc;
}

/* ---- environment and flags -------------------------------------------- */

static const char *kept_value(const config_env_kept *kept, const char *env)
{
	for (size_t i = 0; kept && i < kept->n; i++)
		if (strcmp(kept->env[i], env) == 0)
			return kept->val[i];
	return NULL;
}

int config_env_take(config_env_kept *kept, char *err, size_t errlen)
{
	char why[CONFIG_ERR_MAX];

	memset(kept, 0, sizeof *kept);
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		char *v = k->type == CONFIG_T_SECRET && k->env ? getenv(k->env) : NULL;
		if (!v)
			continue;
		if (*v != '\0') {
			if (kept->n == CONFIG_ENV_KEPT_MAX)
				return util_fail(err, errlen, "%s: too many secret variables", k->env);
			char *slot = NULL;
			if (secret_set(&slot, v, why, sizeof why) != 0) {
				explicit_bzero(v, strlen(v));
				(void)unsetenv(k->env);
				config_env_kept_free(kept);
				return util_fail(err, errlen, "%s: %s: %s", k->env, k->key, why);
			}
			kept->env[kept->n] = k->env;
			kept->val[kept->n++] = slot;
		}
		explicit_bzero(v, strlen(v));  /* the bytes the environment block holds */
		(void)unsetenv(k->env);
	}
	return 0;
}

void config_env_kept_free(config_env_kept *kept)
{
	for (size_t i = 0; i < kept->n; i++)
		secret_free(&kept->val[i]);
	kept->n = 0;
}

int config_apply_env(mn_config *c, char *err, size_t errlen)
{
	return config_apply_env_kept(c, NULL, err, errlen);
}

int config_apply_env_kept(mn_config *c, const config_env_kept *kept, char *err, size_t errlen)
{
	mn_config tmp = *c;
	const config_key *secret = NULL;
	const char *secret_val = NULL;
	char why[CONFIG_ERR_MAX];
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		const char *v = k->env ? getenv(k->env) : NULL;
		if ((!v || *v == '\0') && k->env && k->type == CONFIG_T_SECRET)
			v = kept_value(kept, k->env);
		if (!v || *v == '\0')  /* empty counts as unset (compose files set FOO=) */
			continue;
		if (k->type == CONFIG_T_SECRET) {
			if (secret_check(v, strlen(v), why, sizeof why) != 0)
				return util_fail(err, errlen, "%s: %s: %s", k->env, k->key, why);
			secret = k;
			secret_val = v;
		} else if (value_set_string(&tmp, k, v, why, sizeof why) != 0) {
			return util_fail(err, errlen, "%s: %s: %s", k->env, k->key, why);
		}
	}
	*c = tmp;  /* the secret slot was not touched in tmp */
	if (secret && secret_set((char **)field(c, secret), secret_val, why, sizeof why) != 0)
		return util_fail(err, errlen, "%s: %s: %s", secret->env, secret->key, why);
	return 0;
}

void config_env_names(char *out, size_t outlen)
{
	size_t used = 0;
	if (outlen == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < config_table_len; i++) {
		const char *env = config_table[i].env, *v = env ? getenv(env) : NULL;
		if (!v || *v == '\0')
			continue;
		int n = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", env);
		if (n < 0 || (size_t)n >= outlen - used) {
			out[used] = '\0';  /* cut at a whole name */
			return;
		}
		used += (size_t)n;
	}
}

int config_set(mn_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	const config_key *k = key ? table_find(key) : NULL;
	char why[CONFIG_ERR_MAX];
	if (!k)
		return util_fail(err, errlen, "%." CONFIG_ECHO_MAX "s: unknown key", key ? key : "(null)");
	if (k->secret)  /* a flag would put it in /proc/PID/cmdline */
		return util_fail(err, errlen, "%s: cannot be set on the command line (use %s or "
		            "admin.token_file)", key, k->env);
	if (!value || value_set_string(c, k, value, why, sizeof why) != 0)
		return util_fail(err, errlen, "%s: %s", key, value ? why : "missing value");
	return 0;
}

/* ---- validation -------------------------------------------------------- */

/* Re-checks one field as it stands (fields may have been set directly). */
static int row_check(const mn_config *c, const config_key *k, char *why, size_t wl)
{
	uint32_t bits;
	const char *tok;
	switch (k->type) {
	case CONFIG_T_STRING:
	case CONFIG_T_ADDR:
	case CONFIG_T_PATH:
		if (strnlen(config_cfield(c, k), k->size) == k->size)
			return util_fail(why, wl, "not NUL-terminated");
		return text_check(k, config_cfield(c, k), why, wl);
	case CONFIG_T_DURATION:
	case CONFIG_T_SIZE:
	case CONFIG_T_U32:
		return range_check(k, config_number_get(c, k), why, wl);
	case CONFIG_T_BOOL:
		return 0;
	case CONFIG_T_ENUM:
		return config_enum_label(k, config_int_get(c, k)) ? 0 : util_fail(why, wl, "invalid value %d", config_int_get(c, k));
	case CONFIG_T_SERVICES:
		memcpy(&bits, config_cfield(c, k), sizeof bits);
		return (bits & ~services_known(k)) ? util_fail(why, wl, "unknown service bits") : 0;
	case CONFIG_T_SECRET:
		memcpy(&tok, config_cfield(c, k), sizeof tok);
		return tok ? secret_check(tok, strlen(tok), why, wl) : 0;
	case CONFIG_T_ADDR_LIST:
	case CONFIG_T_ORIGIN_LIST:
		if (strnlen(config_cfield(c, k), k->size) == k->size)
			return util_fail(why, wl, "not NUL-terminated");
		return addr_list_check(k, config_cfield(c, k), why, wl);
	}
	return 0;
}

static bool addr_is_any(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static in_port_t addr_port(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port
	                               : ((const struct sockaddr_in6 *)a)->sin6_port;
}

/* Would binding both collide? Port 0 (kernel picks) never does. */
static bool addr_overlaps(const struct sockaddr_storage *a, unsigned alen,
                          const struct sockaddr_storage *b, unsigned blen)
{
	if (addr_port(a) == 0 || addr_port(a) != addr_port(b))
		return false;
	if (addr_is_any(a) || addr_is_any(b))
		return true;  /* a wildcard and a specific address share the port */
	return alen == blen && memcmp(a, b, alen) == 0;
}

static int pairs_check(const mn_config *c, char *err, size_t errlen)
{
	if (!c->tls_cert_file[0] != !c->tls_key_file[0])
		return util_fail(err, errlen, "%s: tls.cert_file and tls.key_file must be set together",
		            c->tls_cert_file[0] ? "tls.key_file" : "tls.cert_file");
	if (c->tls_client_ca_file[0] && !c->tls_cert_file[0])
		return util_fail(err, errlen, "tls.client_ca_file: requires tls.cert_file and tls.key_file");
	if (c->admin_tls && !c->tls_cert_file[0])
		return util_fail(err, errlen, "admin.tls: requires tls.cert_file and tls.key_file");
	if (c->admin_client_ca_file[0] && !c->admin_tls)
		return util_fail(err, errlen, "admin.client_ca_file: requires admin.tls");
	if (!c->policy_bundle_file[0] != !c->policy_pubkey_file[0])
		return util_fail(err, errlen, "%s: policy.bundle_file and policy.pubkey_file must be set together",
		            c->policy_bundle_file[0] ? "policy.pubkey_file" : "policy.bundle_file");
	return 0;
}

/* The gateway speaks plaintext only on loopback unless the operator says so;
 * a pin must be a well-formed content id. Omnigate needs no certificate
 * file: without one it serves the node identity's (core/tls.h). */
static int tls_check(const mn_config *c, bool gateway_loopback, char *err, size_t errlen)
{
	const char *pin = c->tls_cert_pin;

	if ((c->services & CONFIG_SVC_GATEWAY) && !gateway_loopback && !c->tls_cert_file[0] &&
	    !c->gateway_allow_plaintext)
		return util_fail(err, errlen, "gateway.addr: a non-loopback gateway needs TLS "
		            "(tls.cert_file, tls.key_file) or gateway.allow_plaintext: true");
	if (!pin[0])
		return 0;
	if (!c->tls_cert_file[0])
		return util_fail(err, errlen, "tls.cert_pin: requires tls.cert_file");
	uint8_t digest[B3_OUT_LEN];
	bool ok = b3_cid_parse(pin, strlen(pin), digest) == 0;
	return ok ? 0 : util_fail(err, errlen, "tls.cert_pin: expected \"b3:\" and 64 lowercase hex digits");
}

/* Opens the token file: regular, at most CONFIG_TOKEN_FILE_MAX bytes, not
 * accessible by group or others. The fd, or -1 with why. */
static int token_file_open(const char *path, struct stat *st, char *why, size_t wl)
{
	int fd;

	switch (util_file_open(path, CONFIG_TOKEN_FILE_MAX, UTIL_FILE_SECRET, &fd, st)) {
	case UTIL_FILE_OK:
		return fd;
	case UTIL_FILE_NOT_REGULAR:
		return util_fail(why, wl, "not a regular file");
	case UTIL_FILE_TOO_OPEN:
		return util_fail(why, wl, "is accessible by group or others (mode %04o); run chmod 600",
		            (unsigned)(st->st_mode & 07777));
	case UTIL_FILE_TOO_BIG:
		return util_fail(why, wl, "is larger than %d bytes", CONFIG_TOKEN_FILE_MAX);
	case UTIL_FILE_ERRNO:
		break;
	}
	return util_fail(why, wl, "%s", strerror(errno));
}

/* Reads the token file into sodium memory. */
static int token_file_load(mn_config *c, const char *path, char *why, size_t wl)
{
	struct stat st;
	int fd = token_file_open(path, &st, why, wl);
	if (fd < 0)
		return -1;
	size_t n = (size_t)st.st_size;
	char *buf = secure_init() == 0 ? sodium_malloc(CONFIG_TOKEN_FILE_MAX + 2) : NULL;
	int rc = buf ? util_read_full(fd, buf, n) : -1;
	int e = errno;
	close(fd);
	if (!buf)
		return util_fail(why, wl, "cannot allocate secure memory");
	if (rc != 0) {
		sodium_free(buf);
		return util_fail(why, wl, "read failed: %s", strerror(e));
	}
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	if (secret_check(buf, n, why, wl) != 0) {
		sodium_free(buf);  /* wipes */
		return -1;
	}
	secret_adopt(&c->admin_token, buf);
	return 0;
}

static int token_check(mn_config *c, bool admin_loopback, char *err, size_t errlen)
{
	char why[CONFIG_ERR_MAX];
	if (!c->admin_token && c->admin_token_file[0] &&
	    token_file_load(c, c->admin_token_file, why, sizeof why) != 0)
		return util_fail(err, errlen, "admin.token_file: %s: %s", c->admin_token_file, why);
	if (!c->admin_token && !admin_loopback)
		return util_fail(err, errlen, "admin.addr: non-loopback admin address requires an admin "
		            "token (RON_ADMIN_TOKEN or admin.token_file)");
	if (!c->admin_tls && !admin_loopback)
		return util_fail(err, errlen, "admin.addr: non-loopback admin address requires admin.tls "
		            "(TLS 1.3 with tls.cert_file and tls.key_file)");
	return 0;
}

/* A tag list: comma-separated tags of 1..CONFIG_TAG_MAX of [A-Za-z0-9._:-],
 * at most CONFIG_TAGS_MAX of them; "" is an empty list. */
static int tags_check(const char *key, const char *list, char *err, size_t errlen)
{
	size_t n = 0, len = 0;

	if (!list[0])
		return 0;
	for (const char *p = list;; p++) {
		if (*p == ',' || *p == '\0') {
			if (len == 0)
				return util_fail(err, errlen, "%s: empty tag in \"%s\"", key, list);
			if (++n > CONFIG_TAGS_MAX)
				return util_fail(err, errlen, "%s: more than %u tags", key, CONFIG_TAGS_MAX);
			len = 0;
			if (*p == '\0')
				return 0;
			continue;
		}
		bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		          (*p >= '0' && *p <= '9') || strchr("._:-", *p);
		if (!ok)
			return util_fail(err, errlen, "%s: tags use only A-Z a-z 0-9 . _ : - (got '%c')",
			            key, *p);
		if (++len > CONFIG_TAG_MAX)
			return util_fail(err, errlen, "%s: a tag is longer than %u bytes", key, CONFIG_TAG_MAX);
	}
}

static int under_data_dir(const mn_config *c, const char *set, const char *rel,
                          char *out, size_t len)
{
	int n = set[0] ? snprintf(out, len, "%s", set)
	               : snprintf(out, len, "%s/%s", c->data_dir, rel);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int config_keys_dir(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, c->auth_keys_dir, "auth/keys", out, len);
}

int config_policy_file(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, c->policy_bundle_file, "policy/policy.json", out, len);
}

int config_policy_pubkey(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, c->policy_pubkey_file, "policy/signing.pub", out, len);
}

int config_socket_path(const mn_config *c, const char *name, char *out, size_t len)
{
	int n = c->runtime_dir[0] ? snprintf(out, len, "%s/%s", c->runtime_dir, name)
	                          : snprintf(out, len, "%s/run/%s", c->data_dir, name);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int config_identity_file(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, c->identity_file, "node/identity.key", out, len);
}

int config_policy_signing_key(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, "", "policy/signing.key", out, len);
}

int config_zk_pin_file(const mn_config *c, char *out, size_t len)
{
	return under_data_dir(c, c->zk_params_pin_file, "zk/params.pin", out, len);
}

/* Holder proofs: fail closed on what would leave them unverifiable. */
static int zk_check(const mn_config *c, char *err, size_t errlen)
{
	if (!c->zk_enabled)
		return 0;
	if (!MN_WITH_ZK)
		return util_fail(err, errlen, "zk.enabled: this build has no ZK support (built with "
		                 "-Dzk=disabled); set zk.enabled to false or rebuild");
	if (!c->auth_audience[0])
		return util_fail(err, errlen, "zk.enabled: needs auth.audience (every proof is bound "
		                 "to the node's audience)");
	return 0;
}

int config_validate(mn_config *c, char *err, size_t errlen)
{
	char why[CONFIG_ERR_MAX];
	for (size_t i = 0; i < config_table_len; i++)
		if (row_check(c, &config_table[i], why, sizeof why) != 0)
			return util_fail(err, errlen, "%s: %s", config_table[i].key, why);
	struct sockaddr_storage admin, gw;
	unsigned alen = 0, glen = 0;
	bool alo = false, glo = false;
	/* Both parse: row_check ran text_check on them. */
	if (addr_parse(c->admin_addr, &admin, &alen, &alo) != NULL ||
	    addr_parse(c->gateway_addr, &gw, &glen, &glo) != NULL)
		return util_fail(err, errlen, "admin.addr: invalid address");
	if (addr_overlaps(&admin, alen, &gw, glen))
		return util_fail(err, errlen, "gateway.addr: must differ from admin.addr (%s vs %s)",
		            c->gateway_addr, c->admin_addr);
	if (c->services & CONFIG_SVC_OMNIGATE) {
		struct sockaddr_storage oap;
		unsigned olen = 0;
		bool olo = false;
		if (addr_parse(c->oap_addr, &oap, &olen, &olo) != NULL)
			return util_fail(err, errlen, "oap.addr: invalid address");
		if (addr_overlaps(&oap, olen, &admin, alen) || addr_overlaps(&oap, olen, &gw, glen))
			return util_fail(err, errlen, "oap.addr: must differ from admin.addr and gateway.addr");
	}
	if (c->dht_republish_ms >= c->dht_record_ttl_ms)
		return util_fail(err, errlen, "dht.republish: must be shorter than dht.record_ttl "
		            "(records would expire before they are republished)");
	if (pairs_check(c, err, errlen) != 0 || tls_check(c, glo, err, errlen) != 0 ||
	    config_tor_check(c, err, errlen) != 0 ||
	    tags_check("policy.tags_core", c->policy_tags_core, err, errlen) != 0 ||
	    tags_check("policy.tags_facet", c->policy_tags_facet, err, errlen) != 0 ||
	    zk_check(c, err, errlen) != 0)
		return -1;
	return token_check(c, alo, err, errlen);
}

static bool row_equal(const mn_config *a, const mn_config *b, const config_key *k)
{
	if (config_type_is_text(k->type) || k->type == CONFIG_T_ADDR_LIST ||
	    k->type == CONFIG_T_ORIGIN_LIST)
		return strncmp(config_cfield(a, k), config_cfield(b, k), k->size) == 0;
	if (k->type == CONFIG_T_SECRET)
		return true;  /* never compared: tokens rotate on reload (live) */
	return memcmp(config_cfield(a, k), config_cfield(b, k), k->size) == 0;
}

int config_reload_check(const mn_config *old, const mn_config *nw, char *err, size_t errlen)
{
	for (size_t i = 0; i < config_table_len; i++) {
		const config_key *k = &config_table[i];
		if (k->reload == CONFIG_RELOAD_RESTART && !row_equal(old, nw, k))
			return util_fail(err, errlen, "%s: changing this key requires a restart "
			            "(reload refused)", k->key);
	}
	return 0;
}
