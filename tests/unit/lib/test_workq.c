/*
 * test_workq.c — the worker pool (src/lib/workq.h): run() on a worker and
 * done() on the owner thread, completion through the eventfd, a blocked
 * job not holding up the others, the max_jobs bound, and workq_free
 * finishing a running job while dropping the ones never started.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "lib/workq.h"

#define WAIT_MS   5000
#define RELEASE_DELAY_US 100000   /* the releaser thread's head start for workq_free */

typedef struct tjob {
	workq_job job;             /* first */
	int       gate;            /* run() waits for a byte here; -1: does not wait */
	int       started;         /* run() writes a byte here when it begins; -1: no */
	pthread_t run_thread;
	bool      ran;             /* done()'s flag */
	int       done_calls;
	int       order;           /* reap order */
} tjob;

static int reaped;

static void tjob_run(workq_job *j)
{
	tjob *t = (tjob *)j;
	char b = 0;

	/* not cmocka's asserts: they longjmp, and this is another thread */
	t->run_thread = pthread_self();
	if (t->started >= 0 && write(t->started, &b, 1) != 1)
		abort();
	if (t->gate >= 0 && read(t->gate, &b, 1) != 1)
		abort();
}

static void tjob_done(workq_job *j, bool ran)
{
	tjob *t = (tjob *)j;

	t->ran = ran;
	t->done_calls++;
	t->order = reaped++;
}

static void tjob_init(tjob *t, int gate, int started)
{
	*t = (tjob){ .job = { .run = tjob_run, .done = tjob_done }, .gate = gate, .started = started };
}

/* Wait for the eventfd, then reap; until want jobs have been reaped. */
static void reap_until(workq *q, int want)
{
	struct pollfd p = { .fd = workq_fd(q), .events = POLLIN };

	while (reaped < want) {
		assert_true(poll(&p, 1, WAIT_MS) == 1);
		(void)workq_reap(q);
	}
}

static void test_bad_args(void **state)
{
	(void)state;
	assert_null(workq_new(0, 4));
	assert_null(workq_new(WORKQ_MAX_THREADS + 1, 4));
	assert_null(workq_new(1, 0));
	assert_null(workq_new(1, WORKQ_MAX_JOBS + 1));
	workq_free(NULL);
}

static void test_run_off_thread_done_on_owner(void **state)
{
	workq *q = workq_new(2, 8);
	tjob t[8];

	(void)state;
	reaped = 0;
	assert_non_null(q);
	for (int i = 0; i < 8; i++) {
		tjob_init(&t[i], -1, -1);
		assert_int_equal(workq_submit(q, &t[i].job), 0);
	}
	assert_int_equal(workq_pending(q), 8);
	reap_until(q, 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(t[i].done_calls, 1);
		assert_true(t[i].ran);
		assert_false(pthread_equal(t[i].run_thread, pthread_self()));
	}
	assert_int_equal(workq_pending(q), 0);
	assert_int_equal(workq_reap(q), 0);   /* nothing more */
	workq_free(q);
}

/* A job stuck on a worker: the other worker's jobs are reaped meanwhile,
 * and the bound counts the stuck one until it is reaped. */
static void test_blocked_job_and_bound(void **state)
{
	int gate[2], started[2];
	workq *q = workq_new(2, 3);
	tjob slow, fast, extra, more;
	char b = 0;

	(void)state;
	reaped = 0;
	assert_int_equal(pipe(gate), 0);
	assert_int_equal(pipe(started), 0);
	tjob_init(&slow, gate[0], started[1]);
	tjob_init(&fast, -1, -1);
	tjob_init(&extra, gate[0], -1);
	tjob_init(&more, -1, -1);
	assert_int_equal(workq_submit(q, &slow.job), 0);
	assert_int_equal(read(started[0], &b, 1), 1);   /* slow holds one worker */
	assert_int_equal(workq_submit(q, &fast.job), 0);
	reap_until(q, 1);
	assert_int_equal(fast.done_calls, 1);
	assert_int_equal(slow.done_calls, 0);
	assert_int_equal(workq_submit(q, &extra.job), 0);   /* takes the other worker */
	assert_int_equal(workq_submit(q, &more.job), 0);    /* queued: 3 in the pool */
	tjob refused;
	tjob_init(&refused, -1, -1);
	assert_int_equal(workq_submit(q, &refused.job), -1);
	assert_int_equal(workq_pending(q), 3);
	assert_int_equal(write(gate[1], "xx", 2), 2);
	reap_until(q, 4);
	assert_int_equal(slow.done_calls + extra.done_calls + more.done_calls, 3);
	assert_int_equal(refused.done_calls, 0);
	assert_int_equal(workq_submit(q, &refused.job), 0);   /* room again */
	reap_until(q, 5);
	workq_free(q);
	close(gate[0]); close(gate[1]); close(started[0]); close(started[1]);
}

static void *release_later(void *arg)
{
	int fd = *(int *)arg;

	usleep(RELEASE_DELAY_US);
	if (write(fd, "x", 1) != 1)
		abort();
	return NULL;
}

/* workq_free waits for the running job (done with ran) and drops the queued
 * ones (done without ran); every done() exactly once. */
static void test_free_waits_and_drops(void **state)
{
	int gate[2], started[2];
	workq *q = workq_new(1, 4);
	tjob running, queued[2];
	pthread_t th;
	char b = 0;

	(void)state;
	reaped = 0;
	assert_int_equal(pipe(gate), 0);
	assert_int_equal(pipe(started), 0);
	tjob_init(&running, gate[0], started[1]);
	tjob_init(&queued[0], -1, -1);
	tjob_init(&queued[1], -1, -1);
	assert_int_equal(workq_submit(q, &running.job), 0);
	assert_int_equal(read(started[0], &b, 1), 1);
	assert_int_equal(workq_submit(q, &queued[0].job), 0);
	assert_int_equal(workq_submit(q, &queued[1].job), 0);
	assert_int_equal(pthread_create(&th, NULL, release_later, &gate[1]), 0);
	workq_free(q);   /* returns only once running has finished */
	assert_int_equal(running.done_calls, 1);
	assert_true(running.ran);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(queued[i].done_calls, 1);
		assert_false(queued[i].ran);
	}
	pthread_join(th, NULL);
	close(gate[0]); close(gate[1]); close(started[0]); close(started[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_run_off_thread_done_on_owner),
		cmocka_unit_test(test_blocked_job_and_bound),
		cmocka_unit_test(test_free_waits_and_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
