/*
 * zkpin.h — the pin of the ZK verifier parameter bundle in the key store
 * (docs/zk.md "Parameters and the pin").
 *
 * The pin is the BLAKE3 of the parameter bundle (core/auth/zkproof.h),
 * sealed under the KEK like every other key file (keyfile.h) with the AAD
 * below, at zk.params_pin_file (default <data_dir>/zk/params.pin, mode
 * 0600). With zk.enabled the node refuses to start or reload when the pin
 * is missing, does not unseal, or names another bundle than the one this
 * build verifies with: the error starts "zk_param_mismatch" and names the
 * key zk.params_pin_file. Digests are public; nothing here is secret but
 * the KEK, which this module only borrows.
 */
#ifndef MN_CORE_ZKPIN_H
#define MN_CORE_ZKPIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config/config.h"
#include "core/keys/kek.h"

#define ZKPIN_AAD  "macronode/zk-params-pin/v1"
#define ZKPIN_LEN  32
#define ZKPIN_FILE_MAX 256

/* Read and unseal the pin at path. 0, or -1 with err naming the file. */
__attribute__((warn_unused_result))
int zkpin_read(const char *path, const kek *k, uint8_t pin[ZKPIN_LEN], char *err, size_t errlen);

/* Seal pin under k and write it at path (mode 0600, its directory made
 * 0700 when missing); replace = false refuses an existing file. 0 or -1. */
__attribute__((warn_unused_result))
int zkpin_write(const char *path, const kek *k, const uint8_t pin[ZKPIN_LEN], bool replace,
                char *err, size_t errlen);

/* With c->zk_enabled: the pin must exist, unseal with k and equal bundle
 * (the bundle's BLAKE3). 0 (also when ZK is off), or -1 with err. */
__attribute__((warn_unused_result))
int zkpin_check(const mn_config *c, const kek *k, const uint8_t bundle[ZKPIN_LEN], char *err,
                size_t errlen);

#endif
