/*
 * sniff.c — libmagic on worker threads (see sniff.h).
 */
#include "svc/gateway/sniff.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/workq.h"

struct sniffq {
	workq             *wq;          /* NULL until started */
	struct event      *ev;          /* workq_fd readable → reap */
	pthread_mutex_t    mu;          /* guards free[], nfree */
	mediatype_sniffer *cookie[SNIFF_THREADS];
	mediatype_sniffer *free[SNIFF_THREADS];
	unsigned           ncookies, nfree;
};

struct sniff_job {
	workq_job job;                  /* first: run/done get it */
	sniffq   *q;
	sniff_cb  cb;                   /* NULL once cancelled */
	void     *arg;
	size_t    n;
	uint8_t   bytes[MEDIATYPE_SNIFF_MAX];
	char      ctype[MEDIATYPE_MAX]; /* written by run() */
};

sniffq *sniffq_new(unsigned nthreads)
{
	sniffq *q;

	if (nthreads == 0 || nthreads > SNIFF_THREADS || !(q = calloc(1, sizeof *q)))
		return NULL;
	if (pthread_mutex_init(&q->mu, NULL) != 0) {
		free(q);
		return NULL;
	}
	for (; q->ncookies < nthreads; q->ncookies++) {
		if (!(q->cookie[q->ncookies] = mediatype_sniffer_new())) {
			sniffq_free(q);
			return NULL;
		}
		q->free[q->nfree++] = q->cookie[q->ncookies];
	}
	return q;
}

static void sniffq_on_done_ev(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	(void)workq_reap(arg);
}

int sniffq_start(sniffq *q, struct event_base *base, size_t max_jobs)
{
	if (!q || q->wq)
		return -1;
	if (!(q->wq = workq_new(q->ncookies, max_jobs)))
		return -1;
	q->ev = event_new(base, workq_fd(q->wq), EV_READ | EV_PERSIST, sniffq_on_done_ev, q->wq);
	if (!q->ev || event_add(q->ev, NULL) != 0) {
		workq_free(q->wq);
		q->wq = NULL;
		return -1;
	}
	return 0;
}

void sniffq_free(sniffq *q)
{
	if (!q)
		return;
	workq_free(q->wq);   /* every job's done() runs here, then no thread is left */
	if (q->ev)
		event_free(q->ev);
	for (unsigned i = 0; i < q->ncookies; i++)
		mediatype_sniffer_free(q->cookie[i]);
	pthread_mutex_destroy(&q->mu);
	free(q);
}

/* A worker thread: borrow a cookie, look, give it back. */
static void sniff_run(workq_job *wj)
{
	sniff_job *j = (sniff_job *)wj;
	sniffq *q = j->q;
	mediatype_sniffer *s = NULL;

	pthread_mutex_lock(&q->mu);
	if (q->nfree)
		s = q->free[--q->nfree];
	pthread_mutex_unlock(&q->mu);
	j->ctype[0] = '\0';
	if (!s)   /* cannot be: no more jobs run than there are cookies */
		return;
	if (mediatype_sniff(s, j->bytes, j->n, j->ctype) < 0)
		j->ctype[0] = '\0';
	pthread_mutex_lock(&q->mu);
	q->free[q->nfree++] = s;
	pthread_mutex_unlock(&q->mu);
}

/* The loop: hand the answer over, unless the asker went away. */
static void sniff_done(workq_job *wj, bool ran)
{
	sniff_job *j = (sniff_job *)wj;

	if (!ran)
		j->ctype[0] = '\0';
	if (j->cb)
		j->cb(j->ctype, j->arg);
	free(j);
}

sniff_job *sniffq_submit(sniffq *q, const uint8_t *p, size_t n, sniff_cb cb, void *arg)
{
	sniff_job *j;

	if (!q || !q->wq || !p || n == 0 || !(j = malloc(sizeof *j)))
		return NULL;
	j->job = (workq_job){ .run = sniff_run, .done = sniff_done };
	j->q = q;
	j->cb = cb;
	j->arg = arg;
	j->n = n < MEDIATYPE_SNIFF_MAX ? n : MEDIATYPE_SNIFF_MAX;
	memcpy(j->bytes, p, j->n);
	if (workq_submit(q->wq, &j->job) < 0) {
		free(j);
		return NULL;
	}
	return j;
}

void sniff_job_cancel(sniff_job *j)
{
	if (j)
		j->cb = NULL;
}
