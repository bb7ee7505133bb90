/*
 * identity.c — the node's Ed25519 identity (see identity.h).
 */
#include "core/identity/identity.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/keys/keyfile.h"
#include "core/keys/seal.h"
#include "lib/b3.h"
#include "lib/util.h"

#define IDENTITY_HEX_LEN (2u * IDENTITY_SK_LEN)   /* 128, then "\n" */
#define IDENTITY_FILE_MAX (IDENTITY_HEX_LEN + 1)  /* the larger form; sealed is 105 */

void identity_id_of(const uint8_t pk[IDENTITY_PK_LEN], uint8_t id[IDENTITY_ID_LEN])
{
	b3_hash(pk, IDENTITY_PK_LEN, id);
}

void identity_id_format(const uint8_t id[IDENTITY_ID_LEN], char out[IDENTITY_ID_TEXT])
{
	memcpy(out, "b3:", 3);
	util_hex_encode(id, IDENTITY_ID_LEN, out + 3);
	out[IDENTITY_ID_TEXT - 1] = '\0';
}

int identity_id_parse(const char *text, uint8_t id[IDENTITY_ID_LEN])
{
	if (!text || strncmp(text, "b3:", 3) != 0 || strlen(text) != IDENTITY_ID_TEXT - 1)
		return -1;
	for (const char *p = text + 3; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return -1;
	return util_hex_decode(text + 3, IDENTITY_ID_LEN, id);
}

/* Take ownership of sk (sodium memory holding seed || pk); freeze it. */
static void identity_adopt(node_identity *out, uint8_t *sk)
{
	memset(out, 0, sizeof *out);
	memcpy(out->pk, sk + IDENTITY_SEED_LEN, IDENTITY_PK_LEN);
	identity_id_of(out->pk, out->id);
	identity_id_format(out->id, out->id_text);
	sodium_mprotect_readonly(sk);
	out->sk = sk;
}

static uint8_t *sk_alloc(void)
{
	return sodium_init() < 0 ? NULL : sodium_malloc(IDENTITY_SK_LEN);
}

int identity_from_seed(node_identity *out, const uint8_t seed[IDENTITY_SEED_LEN],
                       char *err, size_t errlen)
{
	uint8_t pk[IDENTITY_PK_LEN];
	uint8_t *sk = sk_alloc();

	memset(out, 0, sizeof *out);
	if (!sk)
		return util_fail(err, errlen, "identity: cannot allocate secure memory");
	if (crypto_sign_seed_keypair(pk, sk, seed) != 0) {
		sodium_free(sk);
		return util_fail(err, errlen, "identity: key derivation failed");
	}
	identity_adopt(out, sk);
	return 0;
}

int identity_generate(node_identity *out, char *err, size_t errlen)
{
	uint8_t pk[IDENTITY_PK_LEN];
	uint8_t *sk = sk_alloc();

	memset(out, 0, sizeof *out);
	if (!sk)
		return util_fail(err, errlen, "identity: cannot allocate secure memory");
	crypto_sign_keypair(pk, sk);
	identity_adopt(out, sk);
	return 0;
}

/* The clear-text form of earlier versions: 128 lowercase hex and a newline. */
static int id_parse_hex(const char *hex, size_t size, uint8_t *sk)
{
	if ((size != IDENTITY_HEX_LEN && !(size == IDENTITY_HEX_LEN + 1 && hex[IDENTITY_HEX_LEN] == '\n')) ||
	    util_hex_decode(hex, IDENTITY_SK_LEN, sk) != 0)
		return -1;
	return 0;
}

/* The public half must be the one the seed makes: a file edited by hand
 * or cut from two keys would sign with one key and claim another. */
static bool id_halves_match(const uint8_t *sk)
{
	uint8_t pk[IDENTITY_PK_LEN], check[IDENTITY_SK_LEN];

	crypto_sign_seed_keypair(pk, check, sk);
	bool same = sodium_memcmp(pk, sk + IDENTITY_SEED_LEN, IDENTITY_PK_LEN) == 0;
	sodium_memzero(check, sizeof check);
	return same;
}

static int id_open(const char *path, int *fd, struct stat *st, char *err, size_t errlen)
{
	switch (util_file_open(path, IDENTITY_FILE_MAX, UTIL_FILE_SECRET | UTIL_FILE_NOFOLLOW, fd, st)) {
	case UTIL_FILE_OK:
		return 0;
	case UTIL_FILE_ERRNO:
		return util_fail(err, errlen, "%s: cannot open identity key: %s", path, strerror(errno));
	case UTIL_FILE_NOT_REGULAR:
		return util_fail(err, errlen, "%s: identity key is %s", path, "not a regular file");
	case UTIL_FILE_TOO_OPEN:
		return util_fail(err, errlen, "%s: identity key is %s", path,
		               "readable by group or others (chmod 600)");
	case UTIL_FILE_TOO_BIG:
		break;
	}
	return util_fail(err, errlen, "%s: %s", path,
	               "not an identity key (128 lowercase hex characters)");
}

int identity_load_ex(node_identity *out, const char *path, const kek *k, bool *clear,
                     char *err, size_t errlen)
{
	struct stat st;
	int fd = -1;
	char *buf = NULL;
	uint8_t *sk = NULL;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (id_open(path, &fd, &st, err, errlen) != 0)
		return -1;
	buf = sodium_init() < 0 ? NULL : sodium_malloc(IDENTITY_FILE_MAX);
	sk = sk_alloc();
	if (!buf || !sk) {
		util_fail(err, errlen, "%s: %s", path, "cannot allocate secure memory");
		goto out;
	}
	size_t size = (size_t)st.st_size;
	if (util_read_full(fd, buf, size) != 0) {
		util_fail(err, errlen, "%s: read failed: %s", path, strerror(errno));
		goto out;
	}
	int u = keyfile_unseal((const uint8_t *)buf, size, k, KEYFILE_AAD_IDENTITY, sk,
	                       IDENTITY_SK_LEN, NULL, path, err, errlen);
	if (u < 0)
		goto out;
	if (u == KEYFILE_CLEAR && id_parse_hex(buf, size, sk) != 0) {
		util_fail(err, errlen, "%s: %s", path, "not an identity key (128 lowercase hex characters)");
		goto out;
	}
	if (!id_halves_match(sk)) {
		util_fail(err, errlen, "%s: %s", path, "identity key's public half does not match its seed");
		goto out;
	}
	if (u == KEYFILE_CLEAR)
		keyfile_warn_clear(path);
	if (clear)
		*clear = u == KEYFILE_CLEAR;
	identity_adopt(out, sk);
	sk = NULL;
	rc = 0;
out:
	sodium_free(buf);   /* sodium_free wipes */
	sodium_free(sk);
	close(fd);
	return rc;
}

int identity_load(node_identity *out, const char *path, const kek *k, char *err, size_t errlen)
{
	return identity_load_ex(out, path, k, NULL, err, errlen);
}

/* Seal sk at path, never replacing unless replace. */
static int id_write(const char *path, const kek *k, const uint8_t *sk, bool replace,
                    char *err, size_t errlen)
{
	char why[PATH_MAX + 128];

	if (keyfile_write(path, k, KEYFILE_AAD_IDENTITY, sk, IDENTITY_SK_LEN, IDENTITY_FILE_MODE,
	                  replace ? 0 : UTIL_WRITE_NOREPLACE, why, sizeof why) == 0)
		return 0;
	if (!replace && errno == EEXIST)
		return util_fail(err, errlen, "%s: %s", path, "identity key already exists; never replaced");
	return util_fail(err, errlen, "cannot write identity key: %s", why);
}

int identity_seal_file(const char *path, const kek *k, char *err, size_t errlen)
{
	node_identity id;
	bool clear = false;

	if (keyfile_path_is_sealed(path) == 1)
		return 1;
	if (identity_load_ex(&id, path, k, &clear, err, errlen) != 0)
		return -1;
	int rc = 1;
	if (clear) {
		rc = id_write(path, k, id.sk, true, err, errlen);
	}
	identity_free(&id);
	return rc;
}

int identity_create_file(const char *path, const kek *k, char *err, size_t errlen)
{
	char dir[PATH_MAX], why[PATH_MAX + 128];
	const char *slash = strrchr(path, '/');
	uint8_t pk[IDENTITY_PK_LEN];
	uint8_t *sk = sk_alloc();
	int rc = -1;

	if (!k || !k->key) {
		util_fail(err, errlen, "%s: no KEK to seal a new identity key with", path);
		goto out;
	}
	if (!sk) {
		util_fail(err, errlen, "%s: %s", path, "cannot allocate secure memory");
		goto out;
	}
	if (slash && slash != path) {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir) {
			util_fail(err, errlen, "%s: %s", path, "path too long");
			goto out;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
		if (util_ensure_dir(dir, 0700, why, sizeof why) != 0) {
			util_fail(err, errlen, "%s", why);
			goto out;
		}
	}
	crypto_sign_keypair(pk, sk);
	rc = id_write(path, k, sk, false, err, errlen);
out:
	sodium_free(sk);
	return rc;
}

int identity_load_or_create(node_identity *out, const char *path, const kek *k, bool *created,
                            char *err, size_t errlen)
{
	struct stat st;

	if (created)
		*created = false;
	if (lstat(path, &st) != 0 && errno == ENOENT) {
		if (identity_create_file(path, k, err, errlen) != 0)
			return -1;
		if (created)
			*created = true;
	}
	return identity_load(out, path, k, err, errlen);
}

void identity_seed(const node_identity *id, uint8_t seed[IDENTITY_SEED_LEN])
{
	memcpy(seed, id->sk, IDENTITY_SEED_LEN);
}

void identity_free(node_identity *id)
{
	if (!id)
		return;
	if (id->sk) {
		sodium_mprotect_readwrite(id->sk);
		sodium_free(id->sk);   /* wipes */
	}
	memset(id, 0, sizeof *id);
}

int identity_sign(const node_identity *id, const void *msg, size_t n,
                  uint8_t sig[IDENTITY_SIG_LEN])
{
	if (!id || !id->sk)
		return -1;
	return crypto_sign_detached(sig, NULL, msg, n, id->sk) == 0 ? 0 : -1;
}

bool identity_verify(const uint8_t pk[IDENTITY_PK_LEN], const void *msg, size_t n,
                     const uint8_t sig[IDENTITY_SIG_LEN])
{
	return sodium_init() >= 0 && crypto_sign_verify_detached(sig, msg, n, pk) == 0;
}
