/*
 * tbucket.h — token bucket (request rate caps, per-tenant quotas).
 *
 * The clock is passed in (monotonic milliseconds) so callers decide where
 * time comes from and tests can step it. The bucket starts full. Not
 * thread-safe: one owner (an event loop) per bucket.
 */
#ifndef MN_LIB_TBUCKET_H
#define MN_LIB_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

/* Upper bound of tbucket_retry_after_s: a bucket that can never satisfy a
 * request (rate 0, or n > burst) still yields a finite Retry-After. */
#define TBUCKET_RETRY_MAX_S 3600u

typedef struct tbucket {
	double   rate;    /* tokens added per second (>= 0) */
	double   burst;   /* capacity (>= 0) */
	double   tokens;  /* current fill, 0 .. burst */
	uint64_t last_ms; /* clock of the last refill */
} tbucket;

/* Negative or NaN rate/burst are taken as 0. */
void tbucket_init(tbucket *b, double rate_per_s, double burst, uint64_t now_ms);
/* Take n tokens if available (true), else take nothing (false). n <= 0 → true.
 * A clock that goes backwards adds nothing. */
bool tbucket_take(tbucket *b, double n, uint64_t now_ms);
/* Whole seconds until n tokens would be available, rounded up, at least 1
 * and at most TBUCKET_RETRY_MAX_S. Does not modify the bucket. */
unsigned tbucket_retry_after_s(const tbucket *b, double n, uint64_t now_ms);

#endif
