/*
 * store_test.h — upload slot counts for the unit tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only the module and tests/
 * include this.
 */
#ifndef MN_SVC_STORAGE_STORE_TEST_H
#define MN_SVC_STORAGE_STORE_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "svc/storage/store.h"

/* Uploads open now. */
size_t store_uploads_open(const store *st);

#endif
