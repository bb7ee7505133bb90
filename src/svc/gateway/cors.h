/*
 * cors.h — Cross-Origin Resource Sharing on the gateway (private to
 * src/svc/gateway). Behaviour: docs/api.md "CORS".
 *
 * Reads are public: GET/HEAD on the object and name routes answer
 * `Access-Control-Allow-Origin: *` whatever the Origin (content is
 * content-addressed and immutable; no credential is ever honoured by a
 * wildcard answer), with the headers a page may read exposed.
 *
 * Writes are not: a preflight OPTIONS for a write, or a write itself, that
 * carries an Origin must name one of `gateway.cors_origins` exactly;
 * anything else is 403 `cors_origin_refused`, counted in
 * rejected_total{reason="cors_origin"}. Refusing the write itself (not
 * only its preflight) matters for "simple" requests a browser sends without
 * a preflight, and for mutual TLS, whose client certificate a browser
 * attaches on its own (a CSRF vector that a bearer token is not).
 *
 * Preflights carry no token (browsers send none): the gate admits them
 * without the wall, with no body, and they still pay the rate and
 * in-flight caps.
 */
#ifndef MN_SVC_GATEWAY_CORS_H
#define MN_SVC_GATEWAY_CORS_H

#include <stdbool.h>

#include "core/config/config.h"
#include "core/net/http.h"

#define CORS_MAX_AGE_S "600"   /* browsers cap it anyway (Chromium: 2 h) */

/* One per worker; outlives every request. */
typedef struct cors {
	char origins[CONFIG_ORIGIN_LIST_MAX];   /* gateway.cors_origins, comma-joined */
} cors;

typedef enum cors_verdict {
	CORS_PASS = 0,     /* not a CORS matter the gate decides: on to the wall */
	CORS_PREFLIGHT,    /* an OPTIONS: admitted without the wall, no body */
	CORS_REFUSE,       /* a write from an Origin not listed: 403 */
} cors_verdict;

/* Take gateway.cors_origins (start-up and live reload). */
void cors_configure(cors *c, const mn_config *cfg);
/* Is origin (a request's Origin value) exactly one of the listed? */
bool cors_origin_allowed(const cors *c, const char *origin);
/* The gate's decision, before the wall. A request it passes gets its CORS
 * headers here (cors_public, cors_write), so that every answer to it
 * carries them — the wall's 401/403, the caps' 429/503 and the handler's —
 * and a page can read why it was refused. */
cors_verdict cors_gate(const cors *c, http_req *r);
/* The gate's refusal message for CORS_REFUSE (static). */
#define CORS_REFUSE_CODE    "cors_origin_refused"
#define CORS_REFUSE_MESSAGE "cross-origin write refused: the Origin is not in gateway.cors_origins"

/* GET/HEAD: the public headers. Before the response starts. */
void cors_public(http_req *r);
/* A write: an allowed Origin is echoed (with Vary); nothing otherwise. */
void cors_write(http_req *r, const cors *c);
/* Answer an OPTIONS on a route accepting `methods` (HTTP_M_* mask). */
void cors_preflight(http_req *r, const cors *c, unsigned methods);

#endif
