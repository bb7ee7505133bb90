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

/* Create PREFIX.key (0600) and PREFIX.pub (0644); refuses to overwrite either. */
__attribute__((warn_unused_result))
int policy_keygen_files(const char *prefix, char *err, size_t errlen);

/* Sign the bundle file with the secret key file; writes "<bundle>.sig"
 * atomically (replacing an older signature). The key file must not be
 * accessible to group or others. */
__attribute__((warn_unused_result))
int policy_sign_file(const char *bundle_path, const char *sk_path, char *err, size_t errlen);

#endif
