/*
 * sniff.h — libmagic off the event loop (private to src/svc/gateway): a
 * small pool of worker threads (lib/workq) that reads an object's first
 * bytes and names their media type, for uploads without a type
 * (objects_put.c) and for /media reads of objects with none recorded
 * (objects_get.c, docs/media.md).
 *
 * Why a thread: libmagic walks its whole rule database over the bytes, and
 * hostile bytes choose how far it goes; the loop serves every other
 * request of the worker meanwhile. The pool is bounded (SNIFF_JOBS_MAX
 * jobs from submit to callback): when it is full sniffq_submit refuses at
 * once and the caller serves application/octet-stream (counted) — the loop
 * never waits for a sniff.
 *
 * A magic_t cookie is not safe to share between threads: there is one
 * cookie per worker thread, handed out under a mutex to the job that runs
 * (at most SNIFF_THREADS run at once, so one is always free).
 *
 * Life: sniffq_new loads the cookies (libmagic maps its database: before
 * the sandbox); sniffq_start makes the threads once the sandbox is entered
 * (Landlock binds only threads made after it).
 */
#ifndef MN_SVC_GATEWAY_SNIFF_H
#define MN_SVC_GATEWAY_SNIFF_H

#include <stddef.h>
#include <stdint.h>

#include "core/objects/mediatype.h"

struct event_base;

#define SNIFF_THREADS  1u     /* per gateway worker process (N processes) */
#define SNIFF_JOBS_MAX 64u    /* in the pool at once, per worker process */

typedef struct sniffq sniffq;
typedef struct sniff_job sniff_job;

/* On the loop: ctype is the sniffed type (mediatype_parse's grammar), or
 * "" when libmagic had no answer (or the pool closed before the job ran).
 * Borrowed for the call. */
typedef void (*sniff_cb)(const char *ctype, void *arg);

/* nthreads cookies (1..SNIFF_THREADS); NULL when libmagic cannot load its
 * database or out of memory. sniffq_free(NULL) ok. */
sniffq *sniffq_new(unsigned nthreads);
/* The threads and the loop's event. 0/-1 (-1: the pool stays closed and
 * every submit is refused). */
__attribute__((warn_unused_result))
int sniffq_start(sniffq *q, struct event_base *base, size_t max_jobs);
/* Jobs not yet run are dropped (their callbacks get ""); NULL ok. */
void sniffq_free(sniffq *q);

/* Sniff p[0..n) (at most MEDIATYPE_SNIFF_MAX bytes are copied; p borrowed
 * for the call). The job, or NULL — q NULL or not started, the pool full,
 * out of memory — and then cb is never called. */
sniff_job *sniffq_submit(sniffq *q, const uint8_t *p, size_t n, sniff_cb cb, void *arg);
/* The callback will not be called (the job is freed when it comes back). */
void sniff_job_cancel(sniff_job *j);

#endif
