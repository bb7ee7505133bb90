/*
 * range.c — Range header parsing: one range or a set, sorted and coalesced
 * (see range.h for the accepted grammar and the meaning of each result).
 */
#include "core/net/range.h"

#include <stdbool.h>
#include <strings.h>

#define RANGE_UNIT     "bytes"
#define RANGE_UNIT_LEN 5u

/* One range-spec, before it is judged against the length. */
typedef struct range_spec {
	bool     suffix;   /* "-N" */
	bool     has_last; /* "S-E" rather than "S-" */
	uint64_t first;    /* S, or N for a suffix */
	uint64_t last;     /* E */
} range_spec;

static bool range_is_ows(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Digits at *p (at least one), saturating at UINT64_MAX. -1 if none. */
static int range_number(const char *s, size_t n, size_t *p, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = *p;

	if (i >= n || s[i] < '0' || s[i] > '9')
		return -1;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		uint64_t d = (uint64_t)(s[i] - '0');

		v = v > (UINT64_MAX - d) / 10u ? UINT64_MAX : v * 10u + d;
	}
	*p = i;
	*out = v;
	return 0;
}

/* Parse exactly s[0..n) as one range-spec. 0/-1. */
static int range_spec_parse(const char *s, size_t n, range_spec *rs)
{
	size_t p = 0;

	*rs = (range_spec){ 0 };
	if (n && s[0] == '-') {
		p = 1;
		rs->suffix = true;
		return range_number(s, n, &p, &rs->first) == 0 && p == n ? 0 : -1;
	}
	if (range_number(s, n, &p, &rs->first) < 0 || p >= n || s[p] != '-')
		return -1;
	p++;
	if (p == n)
		return 0;
	rs->has_last = true;
	if (range_number(s, n, &p, &rs->last) < 0 || p != n)
		return -1;
	return rs->last < rs->first ? -1 : 0;  /* RFC 9110: an invalid int-range */
}

/* Judge one range-spec against len: false when it names no byte. */
static bool range_judge(const range_spec *rs, uint64_t len, range_span *out)
{
	if (len == 0)
		return false;
	if (rs->suffix) {
		if (rs->first == 0)
			return false;
		out->start = rs->first >= len ? 0 : len - rs->first;
		out->end = len - 1;
		return true;
	}
	if (rs->first >= len)
		return false;
	out->start = rs->first;
	out->end = rs->has_last && rs->last < len - 1 ? rs->last : len - 1;
	return true;
}

/* Sort out[0..n) by start (insertion sort: n <= RANGE_MAX_SPANS), then
 * merge the ranges that overlap or touch. Returns the new count. */
static size_t range_coalesce(range_span *out, size_t n)
{
	size_t i, k = 0;

	for (i = 1; i < n; i++) {
		range_span x = out[i];
		size_t j = i;

		for (; j > 0 && out[j - 1].start > x.start; j--)
			out[j] = out[j - 1];
		out[j] = x;
	}
	for (i = 1; i < n; i++) {
		/* end <= len - 1 < UINT64_MAX: end + 1 cannot wrap */
		if (out[i].start <= out[k].end + 1) {
			if (out[i].end > out[k].end)
				out[k].end = out[i].end;
		} else {
			out[++k] = out[i];
		}
	}
	return n ? k + 1 : 0;
}

range_result range_parse(const char *value, size_t vlen, uint64_t len,
                         range_span *out, size_t max, size_t *n)
{
	range_spec rs;
	size_t i, count = 0, kept = 0;

	*n = 0;
	if (!value)
		return RANGE_NONE;
	if (max > RANGE_MAX_SPANS)
		max = RANGE_MAX_SPANS;
	if (vlen <= RANGE_UNIT_LEN || strncasecmp(value, RANGE_UNIT, RANGE_UNIT_LEN) != 0 ||
	    value[RANGE_UNIT_LEN] != '=')
		return RANGE_MALFORMED;
	i = RANGE_UNIT_LEN + 1;
	while (i <= vlen) {
		size_t b, e;

		/* One list element: [i, comma or end), trimmed of OWS. */
		for (e = i; e < vlen && value[e] != ','; e++)
			;
		for (b = i; b < e && range_is_ows(value[b]); b++)
			;
		i = e + 1;
		while (e > b && range_is_ows(value[e - 1]))
			e--;
		if (b == e)
			continue;  /* empty list element */
		if (range_spec_parse(value + b, e - b, &rs) < 0)
			return RANGE_MALFORMED;
		/* Past max only the syntax is still checked: a malformed header
		 * is ignored whatever its length, a well-formed one refused. */
		if (++count <= max && range_judge(&rs, len, &out[kept]))
			kept++;
	}
	if (count == 0)
		return RANGE_MALFORMED;
	if (count > max)
		return RANGE_TOO_MANY;
	if (kept == 0)
		return RANGE_UNSATISFIABLE;
	*n = range_coalesce(out, kept);
	return *n == 1 ? RANGE_ONE : RANGE_MULTI;
}
