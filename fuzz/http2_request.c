/*
 * http2_request.c — libFuzzer target: the HTTP/2 request path. The harness
 * of http_request.c (routes, gate, tickets, loop) with the connection
 * handed to the HTTP/2 codec; the input is the client's frame stream after
 * the preface (see http_request.c).
 *
 * Run:
 *   build-fuzz/fuzz/fuzz_http2_request -max_len=65536 -timeout=10 fuzz/corpus/http2_request
 */
#define FZ_H2 1
#include "http_request.c"
