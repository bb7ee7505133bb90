/*
 * kek.c — finding, reading and making the key-encryption key (see kek.h).
 */
#include "core/keys/kek.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"

#define KEK_HEX_LEN  (2u * KEK_LEN)
#define KEK_FILE_MAX (KEK_HEX_LEN + 2u)   /* 64 hex + "\r\n" at most */

static int path_fmt(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s%s", a, b);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int kek_path(const mn_config *c, char *out, size_t len, kek_source *src)
{
	const char *cred = getenv("CREDENTIALS_DIRECTORY");
	char dir[CONFIG_PATH_MAX];
	struct stat st;

	if (c->keys_kek_file[0]) {
		*src = KEK_SRC_CONFIG;
		return path_fmt(out, len, c->keys_kek_file, "");
	}
	if (cred && cred[0] && path_fmt(out, len, cred, "/" KEK_CRED_NAME) == 0 &&
	    stat(out, &st) == 0) {
		*src = KEK_SRC_CREDENTIALS;
		return 0;
	}
	/* Beside the data dir: "<data_dir>.kek", trailing slashes dropped. */
	*src = KEK_SRC_BESIDE;
	if (path_fmt(dir, sizeof dir, c->data_dir, "") != 0)
		return -1;
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	return path_fmt(out, len, dir, KEK_BESIDE_SUFFIX);
}

const char *kek_source_name(kek_source s)
{
	switch (s) {
	case KEK_SRC_CONFIG:      return "keys.kek_file";
	case KEK_SRC_CREDENTIALS: return "systemd credential";
	case KEK_SRC_BESIDE:      return "beside the data dir";
	}
	return "?";
}

static kek *kek_alloc(void)
{
	kek *k;

	if (sodium_init() < 0 || !(k = calloc(1, sizeof *k)))
		return NULL;
	/* sodium_malloc guards the page and mlock()s it: never swapped out. */
	if (!(k->key = sodium_malloc(KEK_LEN))) {
		free(k);
		return NULL;
	}
	return k;
}

kek *kek_from_bytes(const uint8_t key[KEK_LEN])
{
	kek *k = kek_alloc();

	if (!k)
		return NULL;
	memcpy(k->key, key, KEK_LEN);
	sodium_mprotect_readonly(k->key);
	return k;
}

void kek_free(kek *k)
{
	if (!k)
		return;
	if (k->key) {
		sodium_mprotect_readwrite(k->key);
		sodium_memzero(k->key, KEK_LEN);
		sodium_free(k->key);
	}
	free(k);
}

static int open_err(util_file_status why, const char *path, const struct stat *st,
                    char *err, size_t errlen)
{
	if (why == UTIL_FILE_ERRNO)
		snprintf(err, errlen, "KEK file %s: %s", path, strerror(errno));
	else if (why == UTIL_FILE_NOT_REGULAR)
		snprintf(err, errlen, "KEK file %s: not a regular file", path);
	else if (why == UTIL_FILE_TOO_OPEN)
		snprintf(err, errlen, "KEK file %s: mode %04o lets group or others read it "
		         "(chmod 400)", path, (unsigned)(st->st_mode & 07777));
	else
		snprintf(err, errlen, "KEK file %s: must hold 32 bytes or 64 hex characters", path);
	return -1;
}

/* buf[0..n) → k->key: exactly 32 raw bytes, or 64 hex and optional EOL. */
static int kek_decode(const char *buf, size_t n, uint8_t *key)
{
	size_t got = n, bin = 0;
	const char *end = NULL;

	if (n == KEK_LEN) {
		memcpy(key, buf, KEK_LEN);
		return 0;
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	if (got != KEK_HEX_LEN ||
	    sodium_hex2bin(key, KEK_LEN, buf, got, NULL, &bin, &end) != 0 ||
	    bin != KEK_LEN || end != buf + got)
		return -1;
	return 0;
}

static kek *kek_read(const char *path, unsigned flags, char *err, size_t errlen)
{
	struct stat st;
	int fd = -1;
	util_file_status why = util_file_open(path, KEK_FILE_MAX, flags, &fd, &st);
	kek *k = NULL;
	char *buf = NULL;

	if (why != UTIL_FILE_OK) {
		if (fd >= 0)
			close(fd);
		open_err(why, path, &st, err, errlen);
		return NULL;
	}
	size_t n = (size_t)st.st_size;
	if (!(k = kek_alloc()) || !(buf = sodium_malloc(KEK_FILE_MAX))) {
		snprintf(err, errlen, "KEK file %s: out of secure memory", path);
		goto fail;
	}
	if (util_read_full(fd, buf, n) != 0) {
		snprintf(err, errlen, "KEK file %s: read failed: %s", path, strerror(errno));
		goto fail;
	}
	if (kek_decode(buf, n, k->key) != 0) {
		open_err(UTIL_FILE_TOO_BIG, path, &st, err, errlen);
		goto fail;
	}
	sodium_free(buf);   /* wipes */
	close(fd);
	sodium_mprotect_readonly(k->key);
	snprintf(k->path, sizeof k->path, "%s", path);
	return k;
fail:
	sodium_free(buf);
	kek_free(k);
	close(fd);
	return NULL;
}

kek *kek_load(const char *path, char *err, size_t errlen)
{
	return kek_read(path, UTIL_FILE_SECRET, err, errlen);
}

/* The directory of a credential must be what systemd makes it: a directory
 * of root's or ours, nothing for others, no group write (0500; 0550 with
 * User=, the group bits then being the ACL mask). Otherwise the 0440
 * exception would trust whoever set $CREDENTIALS_DIRECTORY. 0/-1 with err. */
static int kek_cred_dir_check(const char *path, char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	struct stat st;
	int fd, rc = -1;

	if (n == 0)
		n = slash ? 1 : 0;
	if (n == 0 || n >= sizeof dir) {
		snprintf(err, errlen, "KEK credential %s: no credentials directory", path);
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0)
		snprintf(err, errlen, "KEK credentials directory %s: %s", dir, strerror(errno));
	else if ((st.st_mode & (KEK_CRED_DIR_REFUSED)) != 0)
		snprintf(err, errlen, "KEK credentials directory %s: mode %04o lets group write or "
		         "others in (systemd makes it 0500, or 0550 with User=); refusing the "
		         "credential", dir, (unsigned)(st.st_mode & 07777));
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		snprintf(err, errlen, "KEK credentials directory %s: owned by uid %u, neither root "
		         "nor this process; refusing the credential", dir, (unsigned)st.st_uid);
	else
		rc = 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

kek *kek_load_from(const char *path, kek_source src, char *err, size_t errlen)
{
	if (src == KEK_SRC_CREDENTIALS && kek_cred_dir_check(path, err, errlen) != 0)
		return NULL;
	return kek_read(path, UTIL_FILE_SECRET |
	                (src == KEK_SRC_CREDENTIALS ? UTIL_FILE_GROUP_READ : 0u), err, errlen);
}

int kek_create(const char *path, char *err, size_t errlen)
{
	uint8_t *key = sodium_init() < 0 ? NULL : sodium_malloc(KEK_LEN);
	char *hex = key ? sodium_malloc(KEK_HEX_LEN + 1) : NULL;
	int rc = -1;

	if (!key || !hex) {
		snprintf(err, errlen, "KEK file %s: out of secure memory", path);
		goto out;
	}
	randombytes_buf(key, KEK_LEN);
	util_hex_encode(key, KEK_LEN, hex);
	hex[KEK_HEX_LEN] = '\n';
	switch (util_write_atomic(path, hex, KEK_HEX_LEN + 1, KEK_FILE_MODE, UTIL_WRITE_NOREPLACE)) {
	case UTIL_WRITE_OK:
		rc = 0;
		break;
	case UTIL_WRITE_ESYNC:
		(void)unlink(path);   /* ours alone: a rerun must not find half a key */
		__attribute__((fallthrough));
	default:
		snprintf(err, errlen, "KEK file %s: cannot create: %s", path, strerror(errno));
		break;
	}
out:
	sodium_free(key);
	sodium_free(hex);
	return rc;
}
