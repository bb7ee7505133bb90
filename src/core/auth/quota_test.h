/*
 * quota_test.h — quota table introspection for tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only quota.c and tests/ include this.
 */
#ifndef MN_CORE_QUOTA_TEST_H
#define MN_CORE_QUOTA_TEST_H

#include <stddef.h>

#include "core/auth/quota.h"

/* Tenants currently remembered. */
size_t quota_tenants(const quota_table *q);
/* Take the lock of key's group and keep it (a test then dies holding it).
 * 0 or -1. */
int quota_test_hold(quota_table *q, const char *key);

#endif
