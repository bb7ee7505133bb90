/*
 * stor_client_test.h — the PING verb for the unit tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only the module and tests/
 * include this.
 */
#ifndef MN_CORE_OBJECTS_STOR_CLIENT_TEST_H
#define MN_CORE_OBJECTS_STOR_CLIENT_TEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/objects/stor_client.h"

/* PING: storage answers 200 with nothing (liveness of the link). */
stor_call *stor_ping(stor_client *c, stor_cb cb, void *arg);

#endif
