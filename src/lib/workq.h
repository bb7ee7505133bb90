/*
 * workq.h — a small fixed pool of worker threads behind a bounded job queue,
 * for blocking work (hashing a large file, fsync) that must not run on an
 * event loop.
 *
 * One owner thread (the event loop) submits jobs and reaps them; nothing
 * else touches the queue's API. A job's run() executes on some worker
 * thread, and then its done() on the owner thread, inside workq_reap().
 * Workers tell the owner that jobs have finished by making workq_fd()
 * readable (an eventfd): the owner watches it and calls workq_reap(). No
 * libevent here, so the pool is usable and testable anywhere.
 *
 * Bounds: at most max_jobs jobs are in the pool at once, counting from
 * workq_submit() to the return of their done(); workq_submit() refuses
 * more (the caller answers "busy") instead of queueing without limit.
 *
 * Jobs are intrusive: the caller embeds a workq_job in its own struct and
 * keeps that struct alive (and leaves it alone) until done() is called.
 * While a job is in the pool, run() may touch only what the job owns and
 * what its author documents as safe to use from another thread.
 */
#ifndef MN_LIB_WORKQ_H
#define MN_LIB_WORKQ_H

#include <stdbool.h>
#include <stddef.h>

/* Thread and queue limits the pool accepts (a misconfigured caller gets NULL). */
#define WORKQ_MAX_THREADS 16u
#define WORKQ_MAX_JOBS    4096u

typedef struct workq workq;
typedef struct workq_job workq_job;

struct workq_job {
	/* On a worker thread. */
	void (*run)(workq_job *job);
	/* On the owner thread, once per submitted job. ran is false for a job
	 * workq_free() dropped before any worker had started it. */
	void (*done)(workq_job *job, bool ran);
	workq_job *next;          /* the pool's own link; leave it alone */
};

/* nthreads workers (1..WORKQ_MAX_THREADS), max_jobs in the pool at once
 * (1..WORKQ_MAX_JOBS). NULL on a bad argument or if threads, the eventfd or
 * memory cannot be had. Worker threads block every signal. */
workq *workq_new(unsigned nthreads, size_t max_jobs);
/* Readable (level-triggered) while finished jobs wait for workq_reap(). */
int workq_fd(const workq *q);
/* Queue job (borrowed until its done() runs). -1, job untouched, when
 * max_jobs are already in the pool or the pool is closing. */
__attribute__((warn_unused_result))
int workq_submit(workq *q, workq_job *job);
/* Jobs submitted whose done() has not yet returned. */
size_t workq_pending(const workq *q);
/* Call done() of every finished job, in the order they finished; done()
 * may submit new jobs. Returns how many were reaped. */
size_t workq_reap(workq *q);
/* Drop the jobs no worker has started (done(job, false)), wait for the
 * running ones to finish and reap them (done(job, true)), join the threads,
 * free. Nothing is left half-run. NULL ok. Owner thread only, and not from
 * inside a done(). */
void workq_free(workq *q);

#endif
