/*
 * keyfile.h — secret key files sealed under the KEK (seal.h, kek.h).
 *
 * A sealed key file is exactly one seal blob whose plaintext is the raw key
 * and whose caller AAD names the key's purpose (and kid), so a file moved to
 * another role or renamed to another kid does not unseal. A file that does
 * not start with the seal magic is a clear-text key of an earlier version:
 * the caller parses it in its old form and warns (keyfile_warn_clear);
 * `macronode key seal` converts it.
 *
 * The callers open and read their files (each keeps its own checks and
 * messages); this module only unseals and writes. Nothing here logs a key.
 */
#ifndef MN_CORE_KEYFILE_H
#define MN_CORE_KEYFILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/keys/kek.h"

#define KEYFILE_AAD_IDENTITY  "macronode/identity/v1"
#define KEYFILE_AAD_POLICY    "macronode/policy-signing-key/v1"
#define KEYFILE_AAD_CAP       "macronode/capability-key/v1/"   /* + kid */
#define KEYFILE_AAD_MAX       96u
#define KEYFILE_CLEAR         1    /* keyfile_unseal: not sealed, parse the old form */

/*
 * buf[0..len) as read from path. Sealed: opened with k and aad into
 * out[0..n) (the plaintext must be exactly n bytes) → 0, and *ts_ms (may be
 * NULL) gets the sealing time. Not sealed → KEYFILE_CLEAR. Otherwise -1 with
 * err naming path (no KEK, wrong KEK or altered, wrong size).
 */
__attribute__((warn_unused_result))
int keyfile_unseal(const uint8_t *buf, size_t len, const kek *k, const char *aad,
                   uint8_t *out, size_t n, int64_t *ts_ms, const char *path,
                   char *err, size_t errlen);

/* Seal key[0..n) with k and aad, stamped now, and publish it at path with
 * util_write_atomic (temp file, fsync, rename or link, dir fsync). 0, or -1. */
__attribute__((warn_unused_result))
int keyfile_write(const char *path, const kek *k, const char *aad, const uint8_t *key,
                  size_t n, mode_t mode, unsigned flags, char *err, size_t errlen);

/* The same, stamped ts_ms (unix ms): `key seal` keeps a converted key's age. */
__attribute__((warn_unused_result))
int keyfile_write_at(const char *path, const kek *k, const char *aad, const uint8_t *key,
                     size_t n, int64_t ts_ms, mode_t mode, unsigned flags, char *err,
                     size_t errlen);

/* The AAD of capability key kid. 0, or -1 (too long). */
__attribute__((warn_unused_result))
int keyfile_cap_aad(char *out, size_t len, const char *kid);

/* The sealing time of a sealed file's bytes, without the KEK (the header is
 * readable; it is authenticated only by keyfile_unseal). 0, or -1. */
__attribute__((warn_unused_result))
int keyfile_sealed_at(const uint8_t *buf, size_t len, int64_t *ts_ms);

/* Re-seal a sealed key file of n key bytes from KEK `from` to KEK `to` in
 * place (temp file, fsync, rename, dir fsync), keeping its sealing time and
 * mode: 0 re-sealed, 1 already under `to`, -1 with err (clear text, opens
 * with neither, I/O). */
__attribute__((warn_unused_result))
int keyfile_reseal(const char *path, const kek *from, const kek *to, const char *aad, size_t n,
                   char *err, size_t errlen);

/* Does the file at path start with the seal magic? 1, 0, or -1 (errno).
 * Lets `key seal` skip a sealed file without unsealing it (it may be
 * sealed under another KEK, e.g. an operator's signing key). */
int keyfile_path_is_sealed(const char *path);

/* Log once per load that path is clear text and how to seal it. */
void keyfile_warn_clear(const char *path);

#endif
