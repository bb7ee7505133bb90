/*
 * policy_int.h — what policy.c lends policy_sign.c; not for other modules.
 *
 * Both files read the same key, signature and bundle files and word their
 * errors the same way ("<file or JSON path>: <problem>", never key material).
 */
#ifndef MN_CORE_POLICY_INT_H
#define MN_CORE_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "<where>: <what>" into err (may be NULL). Always returns -1. */
__attribute__((format(printf, 4, 5)))
int policy_perr(char *err, size_t errlen, const char *where, const char *fmt, ...);
#ifdef __clang_analyzer__
/* The static analyzer (make lint) does not inline variadic calls: show it the
 * -1. policy.c names the definition (policy_perr) so the macro leaves it be. */
#define policy_perr(...) ({ (void)policy_perr(__VA_ARGS__); -1; })
#endif

/* out = base + suffix; -1 (err) when it does not fit. */
__attribute__((warn_unused_result))
int policy_path_with(char *out, size_t outlen, const char *base, const char *suffix,
                     char *err, size_t errlen);

/*
 * n bytes from a file of 2n lowercase hex digits and an optional newline.
 * buf (2n + 1 bytes, the caller's: sodium memory for a secret) is wiped
 * before return. secret refuses a file group or others may access; what
 * names the file's role in the error ("public key").
 */
__attribute__((warn_unused_result))
int policy_read_hex(const char *path, uint8_t *out, size_t n, bool secret, char *buf,
                    const char *what, char *err, size_t errlen);

/* A secret key file: sealed under k (AAD KEYFILE_AAD_POLICY) or, from
 * earlier versions, 2n lowercase hex (*clear set, a warning logged). buf as
 * for policy_read_hex. 0, or -1 with err naming the file. */
struct kek;
__attribute__((warn_unused_result))
int policy_read_secret(const char *path, uint8_t *out, size_t n, const struct kek *k,
                       bool *clear, char *buf, char *err, size_t errlen);

/* The bundle file (≤ POLICY_MAX_BYTES) into *buf (malloc'd, caller frees). */
__attribute__((warn_unused_result))
int policy_read_bundle(const char *path, char **buf, size_t *len, char *err, size_t errlen);

#endif
