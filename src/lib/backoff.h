/*
 * backoff.h — restart backoff schedule and crash-loop window.
 *
 * Delay for restart attempt n (0-based, consecutive crashes):
 *   base = uniform jitter in [BACKOFF_MIN_MS, BACKOFF_MAX_JITTER_MS]
 *   delay = min(base * 2^n, BACKOFF_CAP_MS)
 * so the first restart waits 100–500 ms and later ones double up to 5 s.
 * Jitter keeps N workers that die together from restarting in lockstep.
 *
 * Crash loop: CRASHLOOP_COUNT exits within CRASHLOOP_WINDOW_MS.
 */
#ifndef MN_LIB_BACKOFF_H
#define MN_LIB_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

#define BACKOFF_MIN_MS         100u
#define BACKOFF_MAX_JITTER_MS  500u
#define BACKOFF_CAP_MS         5000u
#define CRASHLOOP_COUNT        5u
#define CRASHLOOP_WINDOW_MS    60000u

/* rnd: any uniformly random 32-bit value (injected for tests). */
uint32_t backoff_delay_ms(unsigned attempt, uint32_t rnd);

typedef struct crashwin {
	uint64_t at[CRASHLOOP_COUNT]; /* ring of the last exits, ms monotonic */
	unsigned n;                   /* total recorded (saturating) */
	unsigned head;
} crashwin;

/* Record an exit at now_ms; true if this makes CRASHLOOP_COUNT exits within the window. */
bool crashwin_record(crashwin *w, uint64_t now_ms);
/* True if the last CRASHLOOP_COUNT exits all fall within the window ending at now_ms. */
bool crashwin_is_looping(const crashwin *w, uint64_t now_ms);

#endif
