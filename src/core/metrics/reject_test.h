/*
 * reject_test.h — refusal counts for the unit tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only the module and tests/
 * include this.
 */
#ifndef MN_CORE_METRICS_REJECT_TEST_H
#define MN_CORE_METRICS_REJECT_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/metrics/reject.h"

/* The count so far; 0 for a reason f does not carry. */
uint64_t reject_value(reject_family f, reject_reason r);

#endif
