/*
 * metrics_test.h — a claim-state hook for the unit tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only the module and tests/
 * include this.
 */
#ifndef MN_CORE_METRICS_METRICS_TEST_H
#define MN_CORE_METRICS_METRICS_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics/metrics.h"

/* Force a slot's claim state (0 empty, 1 claiming, 2 ready) to simulate a
 * writer killed mid-claim. */
void metrics_test_set_state(metrics_series *s, int state);

#endif
