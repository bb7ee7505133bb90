/*
 * captoken_test.h — choosing the minting key of a keyring, for tests.
 *
 * Production code does not call these; the unit tests do (they observe
 * state the module otherwise keeps to itself). Only captoken_keys.c and tests/ include this.
 */
#ifndef MN_CORE_CAPTOKEN_TEST_H
#define MN_CORE_CAPTOKEN_TEST_H

#include "core/auth/captoken.h"

/* Designates kid for minting. -1 if absent. */
__attribute__((warn_unused_result))
int captoken_keyring_set_mint(captoken_keyring *kr, const char *kid);
/* The mint kid (the only key when none was designated), or NULL. */
const char *captoken_keyring_mint_kid(const captoken_keyring *kr);

#endif
