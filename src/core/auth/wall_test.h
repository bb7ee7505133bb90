/*
 * wall_test.h — the wall's state for the unit tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only the module and tests/
 * include this.
 */
#ifndef MN_CORE_AUTH_WALL_TEST_H
#define MN_CORE_AUTH_WALL_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "core/auth/wall.h"

bool wall_has_policy(const wall *w);
size_t wall_key_count(const wall *w);
/* Tickets handed out and not yet ended (leak checks). */
size_t wall_tickets_out(const wall *w);

#endif
