/*
 * wbio.h — a write BIO for server TLS connections that sends the records
 * of one pass of the loop with one send() (wbio.c).
 *
 * libevent's OpenSSL bufferevent calls SSL_write once per 16 KiB extent of
 * its output and OpenSSL's socket BIO makes each record its own write():
 * a 1 MiB answer was 64 system calls, each pushing one small TCP segment
 * through the stack (half of an HTTP/2 worker's time at 1 MiB GETs went to
 * write and what it triggers, perf). With this BIO as the SSL's wbio the
 * records gather (at most WBIO_CAP bytes) and leave together at the end of
 * the callback that made them.
 *
 * The socket stays the bufferevent's (BIO_C_GET_FD answers it; this BIO
 * never closes it). Unsent bytes are the connection's output too:
 * wbio_pending() must be empty before a connection counts as flushed, and
 * the callback says when it becomes empty (or the socket failed or stayed
 * full past the write deadline). Loop thread only.
 */
#ifndef MN_CORE_NET_WBIO_H
#define MN_CORE_NET_WBIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/bio.h>

#define WBIO_CAP (256u * 1024u)   /* record bytes gathered before a send is forced */

struct event_base;

/* failed: the socket errored or stayed full for the write deadline. */
typedef void (*wbio_cb)(void *arg, bool failed);

/* A BIO for fd (borrowed), or NULL (allocation). write_ms: how long unsent
 * bytes may wait for the socket. */
BIO *wbio_new(struct event_base *base, int fd, uint64_t write_ms);
void wbio_set_cb(BIO *b, wbio_cb cb, void *arg);
/* Bytes gathered and not yet sent. */
size_t wbio_pending(BIO *b);

#endif
