/*
 * keyfile.c — sealed key files (see keyfile.h).
 */
#include "core/keys/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/keys/seal.h"
#include "lib/log.h"
#include "lib/util.h"

int keyfile_cap_aad(char *out, size_t len, const char *kid)
{
	int n = snprintf(out, len, "%s%s", KEYFILE_AAD_CAP, kid);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

int keyfile_sealed_at(const uint8_t *buf, size_t len, int64_t *ts_ms)
{
	seal_header h;

	if (seal_parse(buf, len, &h) != SEAL_OK)
		return -1;
	*ts_ms = h.ts_ms;
	return 0;
}

int keyfile_unseal(const uint8_t *buf, size_t len, const kek *k, const char *aad,
                   uint8_t *out, size_t n, int64_t *ts_ms, const char *path,
                   char *err, size_t errlen)
{
	seal_header h;
	size_t got = 0;
	seal_result r;

	if (!seal_is_sealed(buf, len))
		return KEYFILE_CLEAR;
	if (!k || !k->key) {
		snprintf(err, errlen, "key file %s is sealed but no KEK is loaded (keys.kek_file, "
		         "RON_KEK_FILE or $CREDENTIALS_DIRECTORY/" KEK_CRED_NAME ")", path);
		return -1;
	}
	if ((r = seal_parse(buf, len, &h)) != SEAL_OK || h.plain_len != n) {
		snprintf(err, errlen, "key file %s: %s", path,
		         r != SEAL_OK ? seal_result_str(r) : "sealed key has the wrong length");
		return -1;
	}
	r = seal_open(k->key, buf, len, aad, strlen(aad), out, n, &got, &h);
	if (r != SEAL_OK) {
		snprintf(err, errlen, "key file %s: %s%s%s", path, seal_result_str(r),
		         k->path[0] ? "; KEK " : "", k->path);
		return -1;
	}
	if (ts_ms)
		*ts_ms = h.ts_ms;
	return 0;
}

int keyfile_write(const char *path, const kek *k, const char *aad, const uint8_t *key,
                  size_t n, mode_t mode, unsigned flags, char *err, size_t errlen)
{
	return keyfile_write_at(path, k, aad, key, n, (int64_t)util_wall_ms(), mode, flags, err,
	                        errlen);
}

int keyfile_write_at(const char *path, const kek *k, const char *aad, const uint8_t *key,
                     size_t n, int64_t ts_ms, mode_t mode, unsigned flags, char *err,
                     size_t errlen)
{
	uint8_t blob[SEAL_MAX_BLOB];
	size_t blen = 0;
	int rc = -1;

	if (!k || !k->key) {
		snprintf(err, errlen, "key file %s: no KEK to seal it with", path);
		return -1;
	}
	if (seal_close(k->key, ts_ms, NULL, aad, strlen(aad), key, n, blob,
	               sizeof blob, &blen) != SEAL_OK) {
		snprintf(err, errlen, "key file %s: cannot seal", path);
		return -1;
	}
	switch (util_write_atomic(path, blob, blen, mode, flags)) {
	case UTIL_WRITE_OK:
		rc = 0;
		break;
	case UTIL_WRITE_EPUBLISH:
		snprintf(err, errlen, "key file %s: %s", path, errno == EEXIST ?
		         "already exists; never replaced" : strerror(errno));
		break;
	case UTIL_WRITE_ESYNC:
		if (flags & UTIL_WRITE_NOREPLACE)
			(void)unlink(path);   /* ours alone: a rerun must not find it */
		__attribute__((fallthrough));
	case UTIL_WRITE_ETMP:
		snprintf(err, errlen, "key file %s: write failed: %s", path, strerror(errno));
		break;
	}
	sodium_memzero(blob, sizeof blob);
	return rc;
}

/* The file's bytes (a secret file: regular, no group/other bits, no link). */
static int reseal_read(const char *path, uint8_t *buf, size_t cap, size_t *n, struct stat *st,
                       char *err, size_t errlen)
{
	int fd;

	if (util_file_open(path, cap, UTIL_FILE_SECRET | UTIL_FILE_NOFOLLOW, &fd, st) != UTIL_FILE_OK) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "key file %s: cannot open it as a secret file (mode 0600, "
		         "regular, not too large)", path);
		return -1;
	}
	*n = (size_t)st->st_size;
	int r = util_read_full(fd, buf, *n);
	close(fd);
	if (r != 0)
		snprintf(err, errlen, "key file %s: read failed: %s", path, strerror(errno));
	return r;
}

int keyfile_reseal(const char *path, const kek *from, const kek *to, const char *aad, size_t n,
                   char *err, size_t errlen)
{
	uint8_t buf[SEAL_MAX_BLOB], *key = sodium_malloc(SEAL_MAX_PLAIN);
	struct stat st;
	size_t len = 0;
	int64_t ts = 0;
	int r = -1;

	if (!key) {
		snprintf(err, errlen, "key file %s: out of secure memory", path);
		return -1;
	}
	if (reseal_read(path, buf, sizeof buf, &len, &st, err, errlen) != 0)
		goto out;
	if (!seal_is_sealed(buf, len)) {
		snprintf(err, errlen, "key file %s is clear text: `macronode key seal` it first", path);
		goto out;
	}
	r = keyfile_unseal(buf, len, from, aad, key, n, &ts, path, err, errlen);
	if (r != 0) {
		/* Under the new KEK already (a rerun after a crash): nothing to do. */
		r = keyfile_unseal(buf, len, to, aad, key, n, NULL, path, err, errlen) == 0 ? 1 : -1;
		if (r < 0)
			snprintf(err, errlen, "key file %s opens with neither the old nor the new KEK", path);
		goto out;
	}
	r = keyfile_write_at(path, to, aad, key, n, ts, st.st_mode & 0777, 0, err, errlen);
out:
	sodium_memzero(buf, sizeof buf);
	sodium_free(key);
	return r;
}

int keyfile_path_is_sealed(const char *path)
{
	char head[SEAL_MAGIC_LEN];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0)
		return -1;
	ssize_t n = read(fd, head, sizeof head);
	close(fd);
	return n < 0 ? -1 : seal_is_sealed(head, (size_t)n);
}

void keyfile_warn_clear(const char *path)
{
	log_kv(LOG_LEVEL_WARN, "clear-text key file from an earlier version; seal it with "
	       "`macronode key seal`", "file", path, LOG_END);
}
