/*
 * backoff.c — restart backoff and crash-loop detection (see backoff.h).
 */
#include "lib/backoff.h"

uint32_t backoff_delay_ms(unsigned attempt, uint32_t rnd)
{
	uint32_t span = BACKOFF_MAX_JITTER_MS - BACKOFF_MIN_MS + 1;
	uint64_t d = BACKOFF_MIN_MS + rnd % span;

	for (unsigned i = 0; i < attempt && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	return d > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : (uint32_t)d;
}

bool crashwin_is_looping(const crashwin *w, uint64_t now_ms)
{
	if (w->n < CRASHLOOP_COUNT)
		return false;
	/* head points at the oldest of the last CRASHLOOP_COUNT entries */
	uint64_t oldest = w->at[w->head];
	return now_ms - oldest <= CRASHLOOP_WINDOW_MS;
}

bool crashwin_record(crashwin *w, uint64_t now_ms)
{
	w->at[w->head] = now_ms;
	w->head = (w->head + 1) % CRASHLOOP_COUNT;
	if (w->n < CRASHLOOP_COUNT)
		w->n++;
	return crashwin_is_looping(w, now_ms);
}
