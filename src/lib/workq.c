/*
 * workq.c — worker threads behind a bounded job queue (see workq.h).
 *
 * One mutex guards the two FIFO lists (todo: submitted, not started; done:
 * finished, not reaped) and the closing flag; a condition variable wakes
 * idle workers. `pending` belongs to the owner thread alone (submit adds,
 * reap subtracts), so the bound needs no lock.
 *
 * Wake-ups: a worker appends to done and then adds 1 to the eventfd; the
 * owner reads (resets) the eventfd before it takes the done list, so a job
 * finishing in between is either taken now or leaves the fd readable for
 * the next reap. Never lost, at worst one empty reap.
 */
#include "lib/workq.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WORKQ_THREAD_NAME "mn-workq"   /* shown by top -H, ps -L */

struct workq {
	pthread_mutex_t mu;
	pthread_cond_t  cv;           /* todo became non-empty, or closing */
	workq_job      *todo, *todo_tail;
	workq_job      *done, *done_tail;
	bool            closing;      /* under mu */
	size_t          pending;      /* owner thread only */
	size_t          max_jobs;
	int             efd;
	unsigned        nthreads;     /* started */
	pthread_t       th[WORKQ_MAX_THREADS];
};

static void workq_push(workq_job **head, workq_job **tail, workq_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* Tell the owner: an eventfd write of 1 never blocks (the counter would
 * have to reach 2^64 - 2 first) and is safe from any thread. */
static void workq_signal(workq *q)
{
	uint64_t one = 1;

	while (write(q->efd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

static void *workq_main(void *arg)
{
	workq *q = arg;

	/* Named by itself: prctl(PR_SET_NAME), which a sandbox that allows
	 * threads allows (lib/sandbox.c), where naming another thread opens
	 * /proc/self/task/N/comm for writing, which a front's filter kills. */
	(void)pthread_setname_np(pthread_self(), WORKQ_THREAD_NAME);
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->closing && !q->todo)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->closing)
			break;
		workq_job *j = q->todo;
		q->todo = j->next;
		if (!q->todo)
			q->todo_tail = NULL;
		pthread_mutex_unlock(&q->mu);
		j->run(j);
		pthread_mutex_lock(&q->mu);
		workq_push(&q->done, &q->done_tail, j);
		workq_signal(q);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* Workers block all signals: they belong to the loop thread (libevent's
 * signal events), and a worker must not be interrupted mid-fsync by one. */
static int workq_start_threads(workq *q, unsigned n)
{
	sigset_t all, old;

	sigfillset(&all);
	if (pthread_sigmask(SIG_SETMASK, &all, &old) != 0)
		return -1;
	for (; q->nthreads < n; q->nthreads++) {
		if (pthread_create(&q->th[q->nthreads], NULL, workq_main, q) != 0)
			break;
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	return q->nthreads == n ? 0 : -1;
}

workq *workq_new(unsigned nthreads, size_t max_jobs)
{
	workq *q;

	if (nthreads == 0 || nthreads > WORKQ_MAX_THREADS || max_jobs == 0 || max_jobs > WORKQ_MAX_JOBS)
		return NULL;
	if (!(q = calloc(1, sizeof *q)))
		return NULL;
	q->max_jobs = max_jobs;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0 || pthread_mutex_init(&q->mu, NULL) != 0) {
		if (q->efd >= 0)
			close(q->efd);
		free(q);
		return NULL;
	}
	if (pthread_cond_init(&q->cv, NULL) != 0) {
		pthread_mutex_destroy(&q->mu);
		close(q->efd);
		free(q);
		return NULL;
	}
	if (workq_start_threads(q, nthreads) != 0) {
		workq_free(q);
		return NULL;
	}
	return q;
}

int workq_fd(const workq *q)
{
	return q->efd;
}

size_t workq_pending(const workq *q)
{
	return q->pending;
}

int workq_submit(workq *q, workq_job *job)
{
	int rc = -1;

	if (q->pending >= q->max_jobs)
		return -1;
	pthread_mutex_lock(&q->mu);
	if (!q->closing) {
		workq_push(&q->todo, &q->todo_tail, job);
		pthread_cond_signal(&q->cv);
		q->pending++;
		rc = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return rc;
}

size_t workq_reap(workq *q)
{
	uint64_t n;
	size_t reaped = 0;

	ssize_t r = read(q->efd, &n, sizeof n);   /* EAGAIN: nothing signalled; fine */

	(void)r;
	pthread_mutex_lock(&q->mu);
	workq_job *j = q->done;
	q->done = q->done_tail = NULL;
	pthread_mutex_unlock(&q->mu);
	while (j) {
		workq_job *next = j->next;
		q->pending--;
		j->done(j, true);
		reaped++;
		j = next;
	}
	return reaped;
}

void workq_free(workq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	q->closing = true;
	workq_job *dropped = q->todo;
	q->todo = q->todo_tail = NULL;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->th[i], NULL);
	(void)workq_reap(q);
	while (dropped) {
		workq_job *next = dropped->next;
		q->pending--;
		dropped->done(dropped, false);
		dropped = next;
	}
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	close(q->efd);
	free(q);
}
