/*
 * config_test.h — the value parsers behind the config table, for tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only config.c and tests/ include this.
 */
#ifndef MN_CORE_CONFIG_TEST_H
#define MN_CORE_CONFIG_TEST_H

#include <stdint.h>

/* Helpers. "5s","250ms","1m","1h","500us"? -> ms. Integer-only, bounded. 0/-1. */
__attribute__((warn_unused_result)) int config_parse_duration_ms(const char *s, uint64_t *ms);
/* "1MiB","64KiB","1GiB","1024","1MB"(=10^6) -> bytes. 0/-1. */
__attribute__((warn_unused_result)) int config_parse_size(const char *s, uint64_t *bytes);

#endif
