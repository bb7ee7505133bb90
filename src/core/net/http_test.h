/*
 * http_test.h — what the unit tests observe or drive in the HTTP core that
 * no handler of the node uses today. Only the core's own files and tests/
 * include this; a handler that needs one of these moves it back to http.h.
 */
#ifndef MN_CORE_NET_HTTP_TEST_H
#define MN_CORE_NET_HTTP_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/net/http.h"

struct event_base *http_req_base(const http_req *r);
/* Buffered body of a non-streaming route (NUL-terminated for convenience; len excludes it). */
const uint8_t *http_req_body(const http_req *r, size_t *len);
/* Backpressure on the request body: stop/start reading from the socket. */
void http_req_pause_body(http_req *r);
void http_req_resume_body(http_req *r);
size_t http_server_connections(const http_server *srv);
size_t http_server_inflight(const http_server *srv);
/* Response bytes queued in memory over all connections (memory_budget). */
uint64_t http_server_queued(const http_server *srv);

#endif
