/*
 * identity.h — the node's Ed25519 identity.
 *
 * One keypair per node: it signs provider and name records and is the key of
 * the node's TLS certificate on the peer plane (core/tls.h), so a peer is
 * authenticated by its node id, not by a CA. The node id is "b3:" + the hex
 * BLAKE3 of the 32-byte public key.
 *
 * The key file (<data>/node/identity.key; `macronode init` or the first
 * `run` creates it) is the 64-byte libsodium secret key (seed || public key)
 * sealed under the KEK (core/keys/keyfile.h, docs/keys.md), mode 0600 or
 * stricter. Files of earlier versions hold it as 128 lowercase hex
 * characters and a newline: still read, with a warning, and sealed in place
 * by identity_seal_file (`macronode key seal`). In amnesia mode the identity
 * is made in memory at every start and never written.
 *
 * The secret key lives in sodium secure memory (guarded, locked, read-only
 * except while signing) and is wiped by identity_free. Nothing here logs;
 * error messages name files, never bytes of a key.
 */
#ifndef MN_CORE_IDENTITY_H
#define MN_CORE_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/keys/kek.h"

#define IDENTITY_SEED_LEN 32u
#define IDENTITY_SK_LEN   64u
#define IDENTITY_PK_LEN   32u
#define IDENTITY_SIG_LEN  64u
#define IDENTITY_ID_LEN   32u                     /* BLAKE3 of the public key */
#define IDENTITY_ID_TEXT  (3u + 2u * IDENTITY_ID_LEN + 1u) /* "b3:<64 hex>" + NUL */
#define IDENTITY_FILE_MODE 0600

typedef struct node_identity {
	uint8_t *sk;                       /* sodium memory, IDENTITY_SK_LEN; NULL = none */
	uint8_t  pk[IDENTITY_PK_LEN];
	uint8_t  id[IDENTITY_ID_LEN];
	char     id_text[IDENTITY_ID_TEXT];
} node_identity;

/* A fresh identity in memory (amnesia, tests). 0, or -1 with err. */
__attribute__((warn_unused_result))
int identity_generate(node_identity *out, char *err, size_t errlen);

/* The identity of a 32-byte seed (a child receives the seed from the
 * supervisor). 0, or -1 with err. */
__attribute__((warn_unused_result))
int identity_from_seed(node_identity *out, const uint8_t seed[IDENTITY_SEED_LEN],
                       char *err, size_t errlen);

/* Read the key file: a regular file, mode 0600 or stricter, sealed under k
 * (or clear text of an earlier version, with a warning), whose public half
 * matches its seed. k may be NULL (then only clear text loads). 0, or -1
 * with err naming path and what is wrong, never a byte of a key. */
__attribute__((warn_unused_result))
int identity_load(node_identity *out, const char *path, const kek *k, char *err, size_t errlen);
/* The same; *clear (may be NULL) says whether the file was clear text. */
__attribute__((warn_unused_result))
int identity_load_ex(node_identity *out, const char *path, const kek *k, bool *clear,
                     char *err, size_t errlen);

/* Create the key file (and its directory, mode 0700) with a new identity
 * sealed under k; never replaces one (EEXIST is an error naming the file).
 * 0, or -1. */
__attribute__((warn_unused_result))
int identity_create_file(const char *path, const kek *k, char *err, size_t errlen);

/* identity_load, creating the file first when it does not exist. *created
 * says which happened (may be NULL). */
__attribute__((warn_unused_result))
int identity_load_or_create(node_identity *out, const char *path, const kek *k, bool *created,
                            char *err, size_t errlen);

/* Seal a clear-text key file in place (temp file, fsync, rename, dir
 * fsync): 0 sealed, 1 already sealed, -1 with err. */
__attribute__((warn_unused_result))
int identity_seal_file(const char *path, const kek *k, char *err, size_t errlen);

/* Copy the seed out (to hand to a child); the caller wipes it. */
void identity_seed(const node_identity *id, uint8_t seed[IDENTITY_SEED_LEN]);

/* Wipe and free the secret key; the struct is zeroed. NULL ok. */
void identity_free(node_identity *id);

/* Ed25519 detached signature over msg[0..n). 0, or -1 (no key). */
__attribute__((warn_unused_result))
int identity_sign(const node_identity *id, const void *msg, size_t n,
                  uint8_t sig[IDENTITY_SIG_LEN]);

/* Does sig verify over msg with public key pk? */
bool identity_verify(const uint8_t pk[IDENTITY_PK_LEN], const void *msg, size_t n,
                     const uint8_t sig[IDENTITY_SIG_LEN]);

/* The node id of a public key: BLAKE3(pk). */
void identity_id_of(const uint8_t pk[IDENTITY_PK_LEN], uint8_t id[IDENTITY_ID_LEN]);

/* "b3:<64 lowercase hex>" → 32 bytes. 0, or -1 when not exactly that form. */
__attribute__((warn_unused_result))
int identity_id_parse(const char *text, uint8_t id[IDENTITY_ID_LEN]);

/* 32 bytes → "b3:<hex>" (out has IDENTITY_ID_TEXT bytes). */
void identity_id_format(const uint8_t id[IDENTITY_ID_LEN], char out[IDENTITY_ID_TEXT]);

#endif
