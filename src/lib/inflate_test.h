/*
 * inflate_test.h — inflate stream counters for tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only inflate.c and tests/ include this.
 */
#ifndef MN_LIB_INFLATE_TEST_H
#define MN_LIB_INFLATE_TEST_H

#include <stdint.h>

#include "lib/inflate.h"

uint64_t inflate_stream_total_in(const inflate_stream *s);
uint64_t inflate_stream_total_out(const inflate_stream *s);

#endif
