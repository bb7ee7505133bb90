/*
 * audit_checkpoint.h — signed tree heads over the audit log
 * (docs/audit.md "Checkpoints").
 *
 * A checkpoint is one line of <audit dir>/checkpoints.log, canonical JSON:
 *   {"node_id":"b3:…","root":"b3:…","sig":"<128 hex>","size":N,"time_ms":T,"v":1}
 * root is the Merkle root (audit_merkle.h) of the first size records. The
 * Ed25519 signature (the node identity, core/identity) covers
 *   AUDIT_CKPT_CONTEXT || canonical JSON of the same object without "sig"
 * — the context string keeps a checkpoint signature from ever being valid as
 * a provider or name record signature made with the same key, and back.
 */
#ifndef MN_CORE_AUDIT_CHECKPOINT_H
#define MN_CORE_AUDIT_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/identity/identity.h"
#include "lib/b3.h"

#define AUDIT_CKPT_CONTEXT "ron-audit-checkpoint-v1\n"
#define AUDIT_CKPT_MAX     512u             /* bytes of a checkpoint line */
#define AUDIT_CKPT_FILE    "checkpoints.log"
#define AUDIT_PUBKEY_FILE  "node.pub"       /* 64 hex of the signer's public key + '\n' */

typedef struct audit_checkpoint {
	uint64_t size;
	uint64_t time_ms;
	uint8_t  root[B3_OUT_LEN];
	uint8_t  node_id[IDENTITY_ID_LEN];
	uint8_t  sig[IDENTITY_SIG_LEN];
} audit_checkpoint;

/* Set node_id from id and sign size/time_ms/root. 0, or -1 (no key). */
__attribute__((warn_unused_result))
int audit_checkpoint_sign(audit_checkpoint *c, const node_identity *id);
/* The line (no newline) into out[0..cap). 0/-1. */
__attribute__((warn_unused_result))
int audit_checkpoint_encode(const audit_checkpoint *c, char *out, size_t cap, size_t *len);
/* Strict parse (canonical, exactly the six keys, v 1). 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_checkpoint_parse(const char *s, size_t n, audit_checkpoint *c, char *err,
                           size_t errlen);
/* node_id is BLAKE3(pk) and sig verifies under pk? 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_checkpoint_verify(const audit_checkpoint *c, const uint8_t pk[IDENTITY_PK_LEN],
                            char *err, size_t errlen);

/* A public key file: 64 lowercase hex and an optional '\n'. 0, or -1 with err. */
__attribute__((warn_unused_result))
int audit_pubkey_load(const char *path, uint8_t pk[IDENTITY_PK_LEN], char *err, size_t errlen);

#endif
