/*
 * kek.h — the key-encryption key that seals every secret the node keeps on
 * disk (seal.h, keyfile.h; docs/keys.md).
 *
 * Where it comes from, first match wins: keys.kek_file / RON_KEK_FILE; under
 * systemd $CREDENTIALS_DIRECTORY/macronode.kek (LoadCredential=) when that
 * file exists; else "<data_dir>.kek" beside the data dir, which init (or the
 * first run) creates with mode 0400. The last only protects against a copy
 * of the data dir alone, and `check` says so.
 *
 * The file holds the 32 bytes raw or as 64 hex characters (and a newline);
 * it must be a regular file without group or other permission bits — but a
 * systemd credential may be group-readable (0440: systemd >= 254 gives a
 * unit with User= its credentials so, with an ACL; the directory is private
 * to the unit), so kek_load_from allows that bit for KEK_SRC_CREDENTIALS — and
 * only when the directory is private as systemd makes it (0500, or 0550 with
 * User=: the group bits are then the ACL mask; owned by root or by us):
 * any group write or other bit, or another owner, refuses the credential,
 * since $CREDENTIALS_DIRECTORY is only an environment variable. The key
 * lives in sodium_malloc memory (guarded, mlock'ed, read-only) and is wiped
 * by kek_free. Errors name the file, never a byte of it.
 */
#ifndef MN_CORE_KEK_H
#define MN_CORE_KEK_H

#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"

#define KEK_LEN          32u
#define KEK_FILE_MODE    0400
#define KEK_CRED_NAME    "macronode.kek"
#define KEK_BESIDE_SUFFIX ".kek"
#define KEK_CRED_DIR_REFUSED 0027   /* credentials dir: group write, any other bit */

typedef enum {
	KEK_SRC_CONFIG = 0,    /* keys.kek_file or RON_KEK_FILE */
	KEK_SRC_CREDENTIALS,   /* $CREDENTIALS_DIRECTORY/macronode.kek */
	KEK_SRC_BESIDE,        /* <data_dir>.kek: the default init creates */
} kek_source;

typedef struct kek {
	uint8_t *key;                       /* sodium_malloc, KEK_LEN, read-only */
	char     path[CONFIG_PATH_MAX];     /* where it was read ("" = handed over) */
} kek;

/* The KEK path for c and where the choice came from. 0, or -1 (too long). */
__attribute__((warn_unused_result))
int kek_path(const mn_config *c, char *out, size_t len, kek_source *src);
const char *kek_source_name(kek_source s);

/* Read and check the KEK file. NULL with err naming the file and what is
 * wrong (missing, mode too open, not 32 bytes / 64 hex). Caller kek_free's. */
kek *kek_load(const char *path, char *err, size_t errlen);
/* kek_load of the file kek_path chose: a credential may be mode 0440, and
 * its directory must be private (above). */
kek *kek_load_from(const char *path, kek_source src, char *err, size_t errlen);

/* A new random KEK at path (64 hex + newline, mode 0400, never replacing).
 * 0, or -1 with err. */
__attribute__((warn_unused_result))
int kek_create(const char *path, char *err, size_t errlen);

/* A KEK from raw bytes (a service receives it from the supervisor). */
kek *kek_from_bytes(const uint8_t key[KEK_LEN]);

/* Wipe and free. NULL ok. */
void kek_free(kek *k);

#endif
