/*
 * captoken_keys.c — the MAC key ring of capability tokens: keys by kid,
 * loaded from <keys_dir>/<kid>.key files (64 hex chars, mode 0600 or
 * stricter), held read-only in libsodium secure memory, one designated for
 * minting. Errors name the file, never its content.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/auth/captoken_test.h"
#include "lib/util.h"

#define CAPTOKEN_KEYFILE_MAX 66    /* 64 hex + "\r\n" at most */
#define CAPTOKEN_KEY_SUFFIX ".key"

/* -------------------------------------------------------------- key ring */

struct captoken_keyring {
	size_t n;
	int mint;                       /* index, -1: none designated */
	struct {
		char kid[CAPTOKEN_MAX_KID + 1];
		uint8_t *key;           /* sodium_malloc, read-only */
	} e[CAPTOKEN_MAX_KEYS];
};

captoken_keyring *captoken_keyring_new(void)
{
	captoken_keyring *kr;

	if (sodium_init() < 0 || !(kr = calloc(1, sizeof *kr)))
		return NULL;
	kr->mint = -1;
	return kr;
}

void captoken_keyring_free(captoken_keyring *kr)
{
	if (!kr)
		return;
	for (size_t i = 0; i < kr->n; i++)
		sodium_free(kr->e[i].key);  /* wipes */
	free(kr);
}

static int ring_index(const captoken_keyring *kr, const char *kid)
{
	for (size_t i = 0; kr && kid && i < kr->n; i++)
		if (strcmp(kr->e[i].kid, kid) == 0)
			return (int)i;
	return -1;
}

int captoken_keyring_add(captoken_keyring *kr, const char *kid, const uint8_t key[CAPTOKEN_KEY_LEN])
{
	size_t kn = strlen(kid);

	if (!captoken_kid_valid(kid, kn) || ring_index(kr, kid) >= 0 || kr->n >= CAPTOKEN_MAX_KEYS)
		return -1;
	uint8_t *k = sodium_malloc(CAPTOKEN_KEY_LEN);
	if (!k)
		return -1;
	memcpy(k, key, CAPTOKEN_KEY_LEN);
	sodium_mprotect_readonly(k);
	memcpy(kr->e[kr->n].kid, kid, kn + 1);
	kr->e[kr->n++].key = k;
	return 0;
}

const uint8_t *captoken_keyring_find(const captoken_keyring *kr, const char *kid)
{
	int i = ring_index(kr, kid);

	return i < 0 ? NULL : kr->e[i].key;
}

size_t captoken_keyring_count(const captoken_keyring *kr)
{
	return kr ? kr->n : 0;
}

int captoken_keyring_set_mint(captoken_keyring *kr, const char *kid)
{
	int i = ring_index(kr, kid);

	if (i < 0)
		return -1;
	kr->mint = i;
	return 0;
}

const char *captoken_keyring_mint_kid(const captoken_keyring *kr)
{
	if (kr && kr->mint >= 0)
		return kr->e[kr->mint].kid;
	return kr && kr->n == 1 ? kr->e[0].kid : NULL;
}

/* Why util_file_open refused a key file, in this module's words. */
static void key_open_err(util_file_status why, const char *path, const struct stat *st,
                         char *err, size_t errlen)
{
	if (why == UTIL_FILE_ERRNO)
		snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
	else if (why == UTIL_FILE_NOT_REGULAR)
		snprintf(err, errlen, "key file %s: not a regular file", path);
	else if (why == UTIL_FILE_TOO_OPEN)
		snprintf(err, errlen, "key file %s: mode %04o is too open (need 0600 or stricter)",
		         path, (unsigned)(st->st_mode & 07777));
	else
		snprintf(err, errlen, "key file %s: must hold exactly %d hex characters", path,
		         2 * CAPTOKEN_KEY_LEN);
}

/* Opens path and checks it may hold a secret: ours, regular, 0600 or less.
 * Returns the fd and the file's size, or -1 with err. */
static int key_open(const char *path, size_t *size, char *err, size_t errlen)
{
	struct stat st;
	int fd;
	util_file_status why = util_file_open(path, CAPTOKEN_KEYFILE_MAX,
	                                      UTIL_FILE_SECRET | UTIL_FILE_NOFOLLOW, &fd, &st);

	if (why == UTIL_FILE_OK && st.st_size < 2 * CAPTOKEN_KEY_LEN)
		why = UTIL_FILE_TOO_BIG;   /* the same words: not exactly the right size */
	if (why == UTIL_FILE_OK && st.st_uid != geteuid()) {
		snprintf(err, errlen, "key file %s: not owned by uid %u", path, (unsigned)geteuid());
		close(fd);
		return -1;
	}
	if (why != UTIL_FILE_OK) {
		if (fd >= 0)
			close(fd);
		key_open_err(why, path, &st, err, errlen);
		return -1;
	}
	*size = (size_t)st.st_size;
	return fd;
}

uint8_t *captoken_key_read(const char *path, char *err, size_t errlen)
{
	char *hex;
	uint8_t *key;
	size_t got = 0, size = 0, binlen = 0;
	const char *end = NULL;
	int fd;

	if (sodium_init() < 0 || (fd = key_open(path, &size, err, errlen)) < 0)
		return NULL;
	hex = sodium_malloc(CAPTOKEN_KEYFILE_MAX + 1);
	key = sodium_malloc(CAPTOKEN_KEY_LEN);
	if (hex && key && util_read_full(fd, hex, size) == 0)
		got = size;
	close(fd);
	while (got > 0 && (hex[got - 1] == '\n' || hex[got - 1] == '\r'))
		got--;
	if (!hex || !key || got != 2 * CAPTOKEN_KEY_LEN ||
	    sodium_hex2bin(key, CAPTOKEN_KEY_LEN, hex, got, NULL, &binlen, &end) != 0 ||
	    binlen != CAPTOKEN_KEY_LEN || end != hex + got) {
		snprintf(err, errlen, "key file %s: must hold exactly %d hex characters",
		         path, 2 * CAPTOKEN_KEY_LEN);
		sodium_free(hex);
		sodium_free(key);
		return NULL;
	}
	sodium_free(hex);
	return key;
}

int captoken_keyring_load_file(captoken_keyring *kr, const char *path, const char *kid,
                               char *err, size_t errlen)
{
	if (!captoken_kid_valid(kid, strlen(kid))) {
		snprintf(err, errlen, "key file %s: kid is not [A-Za-z0-9._-]{1,%d}", path,
		         CAPTOKEN_MAX_KID);
		return -1;
	}
	uint8_t *key = captoken_key_read(path, err, errlen);
	if (!key)
		return -1;
	int r = captoken_keyring_add(kr, kid, key);
	sodium_free(key);
	if (r < 0)
		snprintf(err, errlen, "key file %s: duplicate kid or more than %d keys", path,
		         CAPTOKEN_MAX_KEYS);
	return r;
}

int captoken_keyring_load_dir(captoken_keyring *kr, const char *dir, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t sl = strlen(CAPTOKEN_KEY_SUFFIX);
	int rc = 0;

	if (!d) {
		int e = errno;
		snprintf(err, errlen, "keys dir %s: %s", dir, strerror(e));
		return e == ENOENT ? CAPTOKEN_KEYS_NONE : -1;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		char kid[CAPTOKEN_MAX_KID + 1], path[4096];
		if (de->d_name[0] == '.' || n <= sl || n - sl > CAPTOKEN_MAX_KID ||
		    strcmp(de->d_name + n - sl, CAPTOKEN_KEY_SUFFIX) != 0)
			continue;
		memcpy(kid, de->d_name, n - sl);
		kid[n - sl] = '\0';
		if (snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= (int)sizeof path) {
			snprintf(err, errlen, "keys dir %s: path too long", dir);
			rc = -1;
		} else {
			rc = captoken_keyring_load_file(kr, path, kid, err, errlen);
		}
	}
	closedir(d);
	if (rc == 0 && kr->n == 0) {
		snprintf(err, errlen, "keys dir %s: no <kid>%s file", dir, CAPTOKEN_KEY_SUFFIX);
		rc = CAPTOKEN_KEYS_NONE;
	}
	return rc;
}
