/*
 * range.c — Range header parsing (see range.h for the accepted grammar and
 * the meaning of each result).
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

static range_result range_judge(const range_spec *rs, uint64_t len,
                                uint64_t *start, uint64_t *end)
{
	if (len == 0)
		return RANGE_UNSATISFIABLE;
	if (rs->suffix) {
		if (rs->first == 0)
			return RANGE_UNSATISFIABLE;
		*start = rs->first >= len ? 0 : len - rs->first;
		*end = len - 1;
		return RANGE_ONE;
	}
	if (rs->first >= len)
		return RANGE_UNSATISFIABLE;
	*start = rs->first;
	*end = rs->has_last && rs->last < len - 1 ? rs->last : len - 1;
	return RANGE_ONE;
}

range_result range_parse(const char *value, size_t vlen, uint64_t len,
                         uint64_t *start, uint64_t *end)
{
	range_spec one = { 0 }, rs;
	size_t i, count = 0;

	if (!value)
		return RANGE_NONE;
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
		if (count++ == 0)
			one = rs;
	}
	if (count == 0)
		return RANGE_MALFORMED;
	if (count > 1)
		return RANGE_MULTI;
	return range_judge(&one, len, start, end);
}
