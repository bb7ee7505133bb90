/*
 * objcache_test.h — test hook of objcache.c (unit tests only).
 */
#ifndef MN_CORE_OBJCACHE_TEST_H
#define MN_CORE_OBJCACHE_TEST_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/objects/objcache.h"

/* For a cache made with objcache_new(NULL): use *epoch (borrowed, the
 * test's memory) as storage's removal epoch; NULL: none. */
void objcache_test_watch(objcache *c, const _Atomic uint64_t *epoch);

#endif
