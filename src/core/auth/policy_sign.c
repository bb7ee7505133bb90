/*
 * policy_sign.c — policy signing keys and signatures (see policy_sign.h).
 *
 * Only the operator's tools get here: the node verifies with the public key
 * and never sees a secret one. The secret key lives in sodium memory from
 * the moment it is made or read until it is wiped; on disk it is sealed
 * under the KEK (core/keys/keyfile.h); files are published with
 * util_write_atomic, so a crash leaves the old file or the whole new one.
 */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/auth/policy.h"
#include "core/auth/policy_int.h"
#include "core/auth/policy_sign.h"
#include "core/keys/keyfile.h"
#include "lib/b3.h"
#include "lib/util.h"

#define POLICY_KEY_MODE 0600
#define POLICY_PUB_MODE 0644
#define POLICY_SIG_MODE 0644

/* Signature over BLAKE3(data[0..len)) with the 64-byte libsodium secret key. */
static int sign_create(const void *data, size_t len, const uint8_t sk[POLICY_SK_LEN],
                       uint8_t sig[POLICY_SIG_LEN])
{
	uint8_t digest[B3_OUT_LEN];

	b3_hash(data, len, digest);
	return crypto_sign_detached(sig, NULL, digest, sizeof digest, sk) == 0 ? 0 : -1;
}

/* The secret key file into sodium memory (caller sodium_free's *sk). */
static int sign_read_sk(const char *path, const kek *k, bool *clear, uint8_t **sk,
                        char *err, size_t errlen)
{
	char *buf = sodium_malloc(2 * POLICY_SK_LEN + 1);
	uint8_t *key = sodium_malloc(POLICY_SK_LEN);

	if (!buf || !key) {
		sodium_free(buf);
		sodium_free(key);
		return policy_perr(err, errlen, path, "out of secure memory");
	}
	int r = policy_read_secret(path, key, POLICY_SK_LEN, k, clear, buf, err, errlen);
	sodium_free(buf);
	if (r != 0) {
		sodium_free(key);
		return -1;
	}
	*sk = key;
	return 0;
}

/* n bytes as hex and a newline at path, published with util_write_atomic. */
static int sign_write_hex(const char *path, const uint8_t *data, size_t n, char *hex,
                          mode_t mode, unsigned flags, char *err, size_t errlen)
{
	util_hex_encode(data, n, hex);
	hex[2 * n] = '\n';
	switch (util_write_atomic(path, hex, 2 * n + 1, mode, flags)) {
	case UTIL_WRITE_OK:
		return 0;
	case UTIL_WRITE_EPUBLISH:
		return policy_perr(err, errlen, path, "%s", strerror(errno));
	case UTIL_WRITE_ESYNC:
		if (flags & UTIL_WRITE_NOREPLACE)
			(void)unlink(path);   /* ours alone: a rerun must not find it */
		break;
	case UTIL_WRITE_ETMP:
		break;
	}
	return policy_perr(err, errlen, path, "write failed: %s", strerror(errno));
}

int policy_keygen_files(const char *prefix, const kek *k, char *err, size_t errlen)
{
	char kpath[PATH_MAX], ppath[PATH_MAX], phex[2 * POLICY_PK_LEN + 1];
	uint8_t pk[POLICY_PK_LEN], *sk;
	int r = -1;

	if (policy_path_with(kpath, sizeof kpath, prefix, ".key", err, errlen) != 0 ||
	    policy_path_with(ppath, sizeof ppath, prefix, ".pub", err, errlen) != 0)
		return -1;
	if (sodium_init() < 0)
		return policy_perr(err, errlen, kpath, "libsodium failed to initialise");
	if (!k || !k->key)
		return policy_perr(err, errlen, kpath, "no KEK to seal the signing key with "
		                   "(keys.kek_file or RON_KEK_FILE; docs/keys.md)");
	sk = sodium_malloc(POLICY_SK_LEN);
	if (!sk) {
		policy_perr(err, errlen, kpath, "out of secure memory");
		goto out;
	}
	crypto_sign_keypair(pk, sk);
	/* NOREPLACE: a second keygen must not destroy the key bundles are signed with. */
	if (keyfile_write(kpath, k, KEYFILE_AAD_POLICY, sk, POLICY_SK_LEN, POLICY_KEY_MODE,
	                  UTIL_WRITE_NOREPLACE, err, errlen) != 0)
		goto out;
	if (sign_write_hex(ppath, pk, POLICY_PK_LEN, phex, POLICY_PUB_MODE, UTIL_WRITE_NOREPLACE,
	                   err, errlen) != 0) {
		unlink(kpath);
		goto out;
	}
	r = 0;
out:
	sodium_free(sk);
	return r;
}

int policy_sign_file(const char *bundle_path, const char *sk_path, const kek *k,
                     char *err, size_t errlen)
{
	char spath[PATH_MAX], hex[2 * POLICY_SIG_LEN + 1];
	uint8_t sig[POLICY_SIG_LEN], *sk = NULL;
	char *buf;
	size_t len;
	int r;

	if (policy_path_with(spath, sizeof spath, bundle_path, POLICY_SIG_SUFFIX, err, errlen) != 0)
		return -1;
	if (sodium_init() < 0)
		return policy_perr(err, errlen, sk_path, "libsodium failed to initialise");
	if (policy_read_bundle(bundle_path, &buf, &len, err, errlen) != 0)
		return -1;
	bool clear;
	if (sign_read_sk(sk_path, k, &clear, &sk, err, errlen) != 0) {
		free(buf);
		return -1;
	}
	r = sign_create(buf, len, sk, sig);
	sodium_free(sk);
	free(buf);
	if (r != 0)
		return policy_perr(err, errlen, bundle_path, "signing failed");
	return sign_write_hex(spath, sig, sizeof sig, hex, POLICY_SIG_MODE, 0, err, errlen);
}

int policy_seal_key_file(const char *sk_path, const kek *k, char *err, size_t errlen)
{
	uint8_t *sk = NULL;
	bool clear = false;

	if (sodium_init() < 0)
		return policy_perr(err, errlen, sk_path, "libsodium failed to initialise");
	if (keyfile_path_is_sealed(sk_path) == 1)
		return 1;
	if (sign_read_sk(sk_path, k, &clear, &sk, err, errlen) != 0)
		return -1;
	int r = clear ? keyfile_write(sk_path, k, KEYFILE_AAD_POLICY, sk, POLICY_SK_LEN,
	                              POLICY_KEY_MODE, 0, err, errlen) : 1;
	sodium_free(sk);
	return r;
}
