/*
 * captoken_keys.c — the MAC key ring of capability tokens: keys by kid,
 * loaded from <keys_dir>/<kid>.key files (sealed under the KEK, or 64 hex
 * chars from earlier versions; mode 0600 or stricter), held read-only in
 * libsodium secure memory (mlock'ed; wiped when the ring is freed: on
 * reload, rotation and exit), one designated for minting. A key rotated out
 * carries <kid>.expires (unix ms) and stops verifying then. Errors name the
 * file, never its content. docs/keys.md.
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
#include "core/keys/keyfile.h"
#include "core/keys/seal.h"
#include "lib/log.h"
#include "lib/util.h"

#define CAPTOKEN_HEXFILE_MAX 66    /* clear text: 64 hex + "\r\n" at most */
#define CAPTOKEN_KEYFILE_MAX (SEAL_OVERHEAD + CAPTOKEN_KEY_LEN)   /* 73: sealed */
#define CAPTOKEN_KEY_SUFFIX ".key"
#define CAPTOKEN_EXPIRES_MAX 24    /* decimal unix ms and a newline */

/* -------------------------------------------------------------- key ring */

struct captoken_keyring {
	size_t n;
	int mint;                       /* index, -1: none designated */
	const kek *kek;                 /* borrowed: unseals key files; NULL = clear text only */
	struct {
		char kid[CAPTOKEN_MAX_KID + 1];
		uint8_t *key;           /* sodium_malloc, read-only */
		captoken_key_meta meta;
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

const uint8_t *captoken_keyring_find_at(const captoken_keyring *kr, const char *kid,
                                        uint64_t now_s)
{
	int i = ring_index(kr, kid);

	if (i < 0)
		return NULL;
	int64_t na = kr->e[i].meta.not_after_ms;
	if (na > 0 && (int64_t)(now_s * 1000u) >= na)
		return NULL;   /* rotated out and past its grace */
	return kr->e[i].key;
}

void captoken_keyring_set_kek(captoken_keyring *kr, const kek *k)
{
	if (kr)
		kr->kek = k;
}

const char *captoken_keyring_kid(const captoken_keyring *kr, size_t i, captoken_key_meta *meta)
{
	if (!kr || i >= kr->n)
		return NULL;
	if (meta)
		*meta = kr->e[i].meta;
	return kr->e[i].kid;
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
static int key_open(const char *path, size_t *size, int64_t *mtime_ms, char *err, size_t errlen)
{
	struct stat st;
	int fd;
	util_file_status why = util_file_open(path, CAPTOKEN_KEYFILE_MAX,
	                                      UTIL_FILE_SECRET | UTIL_FILE_NOFOLLOW, &fd, &st);

	if (why == UTIL_FILE_OK && st.st_size > CAPTOKEN_HEXFILE_MAX &&
	    st.st_size != CAPTOKEN_KEYFILE_MAX)
		why = UTIL_FILE_TOO_BIG;   /* neither clear text nor one sealed key */

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
	*mtime_ms = (int64_t)st.st_mtime * 1000;
	return fd;
}

/* The clear-text form of earlier versions: 64 hex, optional EOL. */
static int key_parse_hex(const char *hex, size_t got, uint8_t *key)
{
	size_t binlen = 0;
	const char *end = NULL;

	while (got > 0 && (hex[got - 1] == '\n' || hex[got - 1] == '\r'))
		got--;
	return got == 2 * CAPTOKEN_KEY_LEN &&
	       sodium_hex2bin(key, CAPTOKEN_KEY_LEN, hex, got, NULL, &binlen, &end) == 0 &&
	       binlen == CAPTOKEN_KEY_LEN && end == hex + got ? 0 : -1;
}

uint8_t *captoken_key_read(const char *path, const kek *k, const char *kid,
                           captoken_key_meta *meta, char *err, size_t errlen)
{
	char aad[KEYFILE_AAD_MAX];
	uint8_t *buf, *key;
	size_t size = 0;
	int64_t mtime = 0;
	int fd, r = -1;

	if (sodium_init() < 0 || keyfile_cap_aad(aad, sizeof aad, kid) != 0 ||
	    (fd = key_open(path, &size, &mtime, err, errlen)) < 0)
		return NULL;
	buf = sodium_malloc(CAPTOKEN_KEYFILE_MAX + 1);
	key = sodium_malloc(CAPTOKEN_KEY_LEN);
	if (meta)
		memset(meta, 0, sizeof *meta);
	if (buf && key && util_read_full(fd, buf, size) == 0) {
		r = keyfile_unseal(buf, size, k, aad, key, CAPTOKEN_KEY_LEN,
		                   meta ? &meta->created_ms : NULL, path, err, errlen);
		if (r == 0 && meta)
			meta->sealed = true;
		if (r == KEYFILE_CLEAR) {
			r = key_parse_hex((const char *)buf, size, key);
			if (r != 0)
				snprintf(err, errlen, "key file %s: must hold exactly %d hex characters",
				         path, 2 * CAPTOKEN_KEY_LEN);
			else if (meta)
				meta->created_ms = mtime;
			if (r == 0)
				keyfile_warn_clear(path);
		}
	} else {
		snprintf(err, errlen, "key file %s: cannot read it", path);
	}
	close(fd);
	sodium_free(buf);   /* wipes */
	if (r != 0) {
		sodium_free(key);
		return NULL;
	}
	return key;
}

/* <dir>/<kid>.expires: when a rotated-out key stops verifying. 0 = none. */
static int64_t key_expires(const char *keypath)
{
	char path[4096], buf[CAPTOKEN_EXPIRES_MAX + 1];
	size_t n = strlen(keypath), sl = strlen(CAPTOKEN_KEY_SUFFIX);
	int fd;
	struct stat st;

	if (n <= sl || n - sl + sizeof CAPTOKEN_EXPIRES_SUFFIX > sizeof path)
		return 0;
	memcpy(path, keypath, n - sl);
	memcpy(path + n - sl, CAPTOKEN_EXPIRES_SUFFIX, sizeof CAPTOKEN_EXPIRES_SUFFIX);
	if (util_file_open(path, CAPTOKEN_EXPIRES_MAX, UTIL_FILE_NOFOLLOW, &fd, &st) != UTIL_FILE_OK)
		return 0;
	size_t len = (size_t)st.st_size;
	int rr = util_read_full(fd, buf, len);
	close(fd);
	if (rr != 0)
		return 0;
	buf[len] = '\0';
	char *end;
	long long v = strtoll(buf, &end, 10);
	return end != buf && v > 0 ? (int64_t)v : 0;
}

int captoken_keyring_load_file(captoken_keyring *kr, const char *path, const char *kid,
                               char *err, size_t errlen)
{
	if (!captoken_kid_valid(kid, strlen(kid))) {
		snprintf(err, errlen, "key file %s: kid is not [A-Za-z0-9._-]{1,%d}", path,
		         CAPTOKEN_MAX_KID);
		return -1;
	}
	captoken_key_meta meta;
	uint8_t *key = captoken_key_read(path, kr->kek, kid, &meta, err, errlen);
	if (!key)
		return -1;
	meta.not_after_ms = key_expires(path);
	int r = captoken_keyring_add(kr, kid, key);
	sodium_free(key);
	if (r == 0)
		kr->e[kr->n - 1].meta = meta;
	if (r < 0)
		snprintf(err, errlen, "key file %s: duplicate kid or more than %d keys", path,
		         CAPTOKEN_MAX_KEYS);
	return r;
}

/* <dir>/minting names the kid `token mint` and `key list` treat as the
 * minting one (written by `macronode key rotate`); absent = the only key. */
static void ring_read_minting(captoken_keyring *kr, const char *dir)
{
	char path[4096], kid[CAPTOKEN_MAX_KID + 2];
	struct stat st;
	int fd;

	if (snprintf(path, sizeof path, "%s/" CAPTOKEN_MINTING_FILE, dir) >= (int)sizeof path ||
	    util_file_open(path, CAPTOKEN_MAX_KID + 1, UTIL_FILE_NOFOLLOW, &fd, &st) != UTIL_FILE_OK)
		return;
	size_t n = (size_t)st.st_size;
	int r = util_read_full(fd, kid, n);
	close(fd);
	if (r != 0)
		return;
	while (n > 0 && (kid[n - 1] == '\n' || kid[n - 1] == '\r'))
		n--;
	kid[n] = '\0';
	if (captoken_keyring_set_mint(kr, kid) != 0)
		log_kv(LOG_LEVEL_WARN, "minting file names no loaded key", "file", path, LOG_END);
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
	if (rc == 0)
		ring_read_minting(kr, dir);
	if (rc == 0 && kr->n == 0) {
		snprintf(err, errlen, "keys dir %s: no <kid>%s file", dir, CAPTOKEN_KEY_SUFFIX);
		rc = CAPTOKEN_KEYS_NONE;
	}
	return rc;
}
