/*
 * onion.h — v3 onion addresses and onion service keys (docs/tor.md).
 *
 * A v3 onion name is 56 base32 characters of pk[32] | checksum[2] |
 * version[1] = 3, then ".onion". The checksum is SHA3-256 and is tor's to
 * check: BLAKE3 is the only hash in this code, so onion_name_is_v3 checks
 * the shape and the version, and onion_name_pubkey takes the key out, and
 * tor refuses a name whose checksum is wrong (SOCKS reply 0xF6).
 *
 * An onion service key is tor's "expanded" Ed25519 secret: a clamped
 * scalar a[32] and a signing prefix[32], the form ADD_ONION takes as
 * ED25519-V3:<base64>. onion_key_generate makes one from the CSPRNG (no
 * seed, so no SHA-512 either); the public key is a·B.
 */
#ifndef MN_CORE_TOR_ONION_H
#define MN_CORE_TOR_ONION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ONION_NAME_B32     56u                  /* base32 characters */
#define ONION_NAME_LEN     (ONION_NAME_B32 + 6u)  /* with ".onion" */
#define ONION_ADDR_MAX     (ONION_NAME_LEN + 6u)  /* with ":65535" */
#define ONION_KEY_LEN      64u                  /* expanded secret key */
#define ONION_KEY_B64_MAX  96u                  /* base64 of it, with NUL */
#define ONION_PK_LEN       32u
/* The onion service key at rest: <data_dir>/ONION_KEY_FILE, sealed under the
 * KEK with this AAD (node/sup_tor.c makes it; `key rekey` re-seals it). */
#define ONION_KEY_FILE     "node/onion.key"
#define ONION_KEY_AAD      "macronode/onion/v1"

/* "<56 base32>.onion" of version 3 (lower case only). */
bool onion_name_is_v3(const char *name, size_t len);
/* The Ed25519 public key inside a v3 name. 0, or -1 (not a v3 name). */
int onion_name_pubkey(const char *name, size_t len, uint8_t pk[ONION_PK_LEN]);
/* Is host (a bare host name, no port) in the .onion domain: "onion" or
 * "*.onion", any case, with or without a trailing dot? Such a name is
 * tor's alone: never given to the system resolver (docs/tor.md). */
bool onion_host_is_onion(const char *host);
/* "<v3 name>:port" (port 1..65535) into name (cap ≥ ONION_NAME_LEN + 1)
 * and *port. 0, or -1. */
int onion_addr_split(const char *addr, char *name, size_t cap, uint16_t *port);

/* A fresh expanded key (sk in sodium memory is the caller's choice). */
void onion_key_generate(uint8_t sk[ONION_KEY_LEN]);
/* Its public key a·B. 0, or -1 (a is not a usable scalar). */
int onion_key_pubkey(const uint8_t sk[ONION_KEY_LEN], uint8_t pk[ONION_PK_LEN]);
/* ADD_ONION's key argument "ED25519-V3:<base64>" into out (≥ 12 +
 * ONION_KEY_B64_MAX). The caller wipes out. 0, or -1. */
int onion_key_arg(const uint8_t sk[ONION_KEY_LEN], char *out, size_t cap);

#endif
