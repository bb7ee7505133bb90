/*
 * cors.c — CORS on the gateway (see cors.h): the origin list, the gate's
 * decision, the headers of reads and writes, and the answer to OPTIONS.
 *
 * Origins are compared byte for byte with the configured list: the config
 * accepts only origins as browsers serialize them (lowercase, no default
 * port, no path; core/config), so an exact match is the right test and
 * nothing here parses an Origin.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/metrics/reject.h"
#include "svc/gateway/cors.h"

/* Readable by any page: a read's answer is public and immutable. */
#define CORS_EXPOSE_READ    "ETag, Content-Range, Content-Length, Accept-Ranges"
/* A write's answer: where the object went (Location) and its tag. */
#define CORS_EXPOSE_WRITE   "Location, ETag"
/* Request headers a preflight admits: writes carry a token, a body type,
 * an idempotency key and maybe an encoding; reads a range or a validator. */
#define CORS_HEADERS_WRITE  "Authorization, Content-Type, Content-Encoding, Idempotency-Key"
#define CORS_HEADERS_READ   "Authorization, Range, If-None-Match, If-Range"
#define CORS_METHODS_MAX    64   /* "GET, HEAD, POST, PUT, DELETE, OPTIONS" */
#define CORS_ECHO_MAX       96   /* bytes of a refused Origin quoted back */

void cors_configure(cors *c, const mn_config *cfg)
{
	snprintf(c->origins, sizeof c->origins, "%s", cfg->gateway_cors_origins);
}

bool cors_origin_allowed(const cors *c, const char *origin)
{
	size_t n = strlen(origin);

	if (n == 0)
		return false;
	for (const char *p = c->origins; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && memcmp(p, origin, n) == 0)
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

static bool cors_is_write(unsigned m)
{
	return (m & (HTTP_M_POST | HTTP_M_PUT | HTTP_M_DELETE | HTTP_M_PATCH)) != 0;
}

/* The request's Origin, if it has exactly one; *many when it has more. */
static const char *cors_origin(const http_req *r, bool *many)
{
	*many = http_req_header_count(r, "Origin") > 1;
	return http_req_header(r, "Origin");
}

cors_verdict cors_gate(const cors *c, http_req *r)
{
	unsigned m = http_req_method_bit(r);
	bool many;
	const char *origin;

	if (m == HTTP_M_OPTIONS)
		return CORS_PREFLIGHT;
	if (!cors_is_write(m)) {
		cors_public(r);     /* reads are public */
		return CORS_PASS;
	}
	if (!(origin = cors_origin(r, &many)))
		return CORS_PASS;   /* no Origin: not a browser's request */
	if (many || !cors_origin_allowed(c, origin))
		return CORS_REFUSE;
	cors_write(r, c);
	return CORS_PASS;
}

void cors_public(http_req *r)
{
	(void)http_resp_header(r, "Access-Control-Allow-Origin", "*");
	(void)http_resp_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_READ);
}

void cors_write(http_req *r, const cors *c)
{
	bool many;
	const char *origin = cors_origin(r, &many);

	if (!origin || many || !cors_origin_allowed(c, origin))
		return;
	(void)http_resp_header(r, "Access-Control-Allow-Origin", origin);
	(void)http_resp_header(r, "Access-Control-Expose-Headers", CORS_EXPOSE_WRITE);
	(void)http_resp_header(r, "Vary", "Origin");
}

/* "GET, HEAD, PUT" from a mask, in the core's order. */
static void cors_methods(char *dst, size_t len, unsigned mask)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS",
	                                     "PATCH" };
	size_t o = 0;

	dst[0] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int n;

		if (!(mask & (1u << i)))
			continue;
		n = snprintf(dst + o, len - o, "%s%s", o ? ", " : "", names[i]);
		if (n < 0 || (size_t)n >= len - o)
			return;
		o += (size_t)n;
	}
}

/* The method a preflight asks for, as a bit (0: unknown). */
static unsigned cors_method_bit(const char *m)
{
	static const struct { const char *name; unsigned bit; } tab[] = {
		{ "GET", HTTP_M_GET }, { "HEAD", HTTP_M_HEAD }, { "POST", HTTP_M_POST },
		{ "PUT", HTTP_M_PUT }, { "DELETE", HTTP_M_DELETE }, { "PATCH", HTTP_M_PATCH },
	};

	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(m, tab[i].name) == 0)   /* methods are case-sensitive */
			return tab[i].bit;
	return 0;
}

static void cors_refuse(http_req *r, const char *origin, bool many)
{
	char msg[CORS_ECHO_MAX + 96];

	reject_count(REJECT_FAMILY_NODE, REJECT_CORS_ORIGIN);
	if (many)
		snprintf(msg, sizeof msg, "more than one Origin field: refused");
	else
		snprintf(msg, sizeof msg, "Origin \"%.*s\" is not in gateway.cors_origins: "
		         "cross-origin writes refused", CORS_ECHO_MAX, origin);
	(void)http_reply_error(r, 403, CORS_REFUSE_CODE, msg, false, 0);
}

/* Headers shared by every CORS preflight answer. */
static void cors_preflight_headers(http_req *r, const char *origin, const char *methods,
                                   const char *headers)
{
	(void)http_resp_header(r, "Access-Control-Allow-Origin", origin);
	(void)http_resp_header(r, "Access-Control-Allow-Methods", methods);
	(void)http_resp_header(r, "Access-Control-Allow-Headers", headers);
	(void)http_resp_header(r, "Access-Control-Max-Age", CORS_MAX_AGE_S);
	(void)http_resp_header(r, "Vary", "Origin");
}

void cors_preflight(http_req *r, const cors *c, unsigned methods)
{
	char allow[CORS_METHODS_MAX];
	bool many;
	const char *origin = cors_origin(r, &many);
	const char *want = http_req_header(r, "Access-Control-Request-Method");
	unsigned bit = want ? cors_method_bit(want) : 0;

	cors_methods(allow, sizeof allow, methods | HTTP_M_OPTIONS);
	if (!origin || !want) {   /* a plain OPTIONS, not a browser's preflight */
		(void)http_resp_header(r, "Allow", allow);
		(void)http_reply(r, 204, NULL, NULL, 0);
		return;
	}
	if ((bit & (HTTP_M_GET | HTTP_M_HEAD)) && (methods & bit) && !many) {
		cors_methods(allow, sizeof allow, methods & (HTTP_M_GET | HTTP_M_HEAD));
		cors_preflight_headers(r, "*", allow, CORS_HEADERS_READ);
		(void)http_reply(r, 204, NULL, NULL, 0);
		return;
	}
	if (many || !cors_origin_allowed(c, origin)) {
		cors_refuse(r, origin, many);
		return;
	}
	cors_preflight_headers(r, origin, allow, CORS_HEADERS_WRITE);
	(void)http_reply(r, 204, NULL, NULL, 0);
}
