/*
 * tbucket.c — token bucket (see tbucket.h).
 */
#include "lib/tbucket.h"

#include <math.h>

/* NaN and negatives collapse to 0 so a bad config value can only tighten. */
static double tbucket_sane(double v)
{
	return v > 0 ? v : 0;
}

/* Fill level at now_ms without mutating the bucket. */
static double tbucket_level(const tbucket *b, uint64_t now_ms)
{
	double t;

	if (now_ms <= b->last_ms)
		return b->tokens;
	t = b->tokens + (double)(now_ms - b->last_ms) * b->rate / 1000.0;
	return t < b->burst ? t : b->burst;
}

void tbucket_init(tbucket *b, double rate_per_s, double burst, uint64_t now_ms)
{
	b->rate = tbucket_sane(rate_per_s);
	b->burst = tbucket_sane(burst);
	b->tokens = b->burst;
	b->last_ms = now_ms;
}

bool tbucket_take(tbucket *b, double n, uint64_t now_ms)
{
	b->tokens = tbucket_level(b, now_ms);
	if (now_ms > b->last_ms)
		b->last_ms = now_ms;
	if (!(n > 0))
		return true;
	if (b->tokens < n)
		return false;
	b->tokens -= n;
	return true;
}

unsigned tbucket_retry_after_s(const tbucket *b, double n, uint64_t now_ms)
{
	double deficit = n - tbucket_level(b, now_ms);
	double s;

	if (!(deficit > 0))
		return 1;
	if (!(b->rate > 0) || n > b->burst)
		return TBUCKET_RETRY_MAX_S;
	s = ceil(deficit / b->rate);
	if (s < 1)
		return 1;
	if (s > TBUCKET_RETRY_MAX_S)
		return TBUCKET_RETRY_MAX_S;
	return (unsigned)s;
}
