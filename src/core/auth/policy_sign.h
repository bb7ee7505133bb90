/*
 * policy_sign.h — making policy signing keys and signatures (the operator's
 * side: `macronode policy keygen|sign` and `macronode init`). The node only
 * verifies (policy.h); it never holds a signing key.
 *
 * File formats are in docs/policy.md. Both return 0, or -1 with err naming
 * the file and the problem; never key material.
 */
#ifndef MN_CORE_POLICY_SIGN_H
#define MN_CORE_POLICY_SIGN_H

#include <stddef.h>

#include "core/keys/kek.h"

/* Create PREFIX.key (0600, sealed under k) and PREFIX.pub (0644); refuses to
 * overwrite either, and to run without a KEK. */
__attribute__((warn_unused_result))
int policy_keygen_files(const char *prefix, const kek *k, char *err, size_t errlen);

/* Sign the bundle file with the secret key file (sealed under k, or clear
 * text of an earlier version with a warning); writes "<bundle>.sig"
 * atomically (replacing an older signature). The key file must not be
 * accessible to group or others. */
__attribute__((warn_unused_result))
int policy_sign_file(const char *bundle_path, const char *sk_path, const kek *k,
                     char *err, size_t errlen);

/* Seal a clear-text secret key file in place (crash-safe): 0 sealed, 1
 * already sealed, -1 with err. */
__attribute__((warn_unused_result))
int policy_seal_key_file(const char *sk_path, const kek *k, char *err, size_t errlen);

#endif
