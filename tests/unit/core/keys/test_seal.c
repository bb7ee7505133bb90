/* Unit tests for core/keys: the soft-seal vector, tamper and truncation
 * refusals, the KEK file rules and sealed key files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/keys/kek.h"
#include "core/keys/keyfile.h"
#include "core/keys/seal.h"
#include "lib/util.h"

typedef struct {
	uint8_t key[32], nonce[12], blob[256];
	char aad[64], pt[64];
	int64_t ts;
	size_t bloblen;
} vec;

static char dir[64];

/* tests/vectors/kms_seal.txt: key=value lines. */
static void load_vector(vec *v)
{
	char line[512];
	FILE *f = fopen(MN_TEST_VECTORS "/kms_seal.txt", "r");

	assert_non_null(f);
	memset(v, 0, sizeof *v);
	while (fgets(line, sizeof line, f)) {
		char *eq = strchr(line, '=');
		if (line[0] == '#' || !eq)
			continue;
		*eq++ = '\0';
		eq[strcspn(eq, "\n")] = '\0';
		size_t hl = strlen(eq);
		if (strcmp(line, "key") == 0)
			assert_int_equal(util_hex_decode(eq, 32, v->key), 0);
		else if (strcmp(line, "nonce") == 0)
			assert_int_equal(util_hex_decode(eq, 12, v->nonce), 0);
		else if (strcmp(line, "ts_ms") == 0)
			v->ts = strtoll(eq, NULL, 10);
		else if (strcmp(line, "aad") == 0)
			snprintf(v->aad, sizeof v->aad, "%.60s", eq);
		else if (strcmp(line, "plaintext") == 0)
			snprintf(v->pt, sizeof v->pt, "%.60s", eq);
		else if (strcmp(line, "blob") == 0) {
			v->bloblen = hl / 2;
			assert_int_equal(util_hex_decode(eq, v->bloblen, v->blob), 0);
		}
	}
	fclose(f);
	assert_int_equal(v->bloblen, 6 + SEAL_OVERHEAD);
}

static void test_vector_byte_exact(void **state)
{
	vec v;
	uint8_t out[256], pt[64];
	size_t n = 0, pn = 0;
	seal_header h;

	(void)state;
	load_vector(&v);
	assert_int_equal(seal_close(v.key, v.ts, v.nonce, v.aad, strlen(v.aad), v.pt, strlen(v.pt),
	                            out, sizeof out, &n), SEAL_OK);
	assert_int_equal(n, v.bloblen);
	assert_memory_equal(out, v.blob, n);
	assert_int_equal(seal_open(v.key, v.blob, v.bloblen, v.aad, strlen(v.aad), pt, sizeof pt,
	                           &pn, &h), SEAL_OK);
	assert_int_equal(pn, strlen(v.pt));
	assert_memory_equal(pt, v.pt, pn);
	assert_int_equal(h.ts_ms, v.ts);
	assert_memory_equal(h.nonce, v.nonce, 12);
}

/* Every byte of every field, flipped, must be refused, and nothing written. */
static void test_tamper_each_byte(void **state)
{
	vec v;
	uint8_t bad[256], pt[64];
	size_t pn;

	(void)state;
	load_vector(&v);
	for (size_t i = 0; i < v.bloblen; i++) {
		for (uint8_t bit = 1; bit; bit = (uint8_t)(bit << 1)) {
			memcpy(bad, v.blob, v.bloblen);
			bad[i] ^= bit;
			memset(pt, 0xee, sizeof pt);
			pn = 0;
			seal_result r = seal_open(v.key, bad, v.bloblen, v.aad, strlen(v.aad), pt,
			                          sizeof pt, &pn, NULL);
			assert_int_not_equal(r, SEAL_OK);
			if (i < 4)
				assert_int_equal(r, SEAL_ERR_MAGIC);
			else if (i == 4)
				assert_int_equal(r, SEAL_ERR_VERSION);
			else
				assert_int_equal(r, SEAL_ERR_AUTH);   /* ts, nonce, ciphertext, tag */
			assert_int_equal(pn, 0);
			assert_memory_not_equal(pt, v.pt, strlen(v.pt));   /* never released */
		}
	}
}

static void test_wrong_key_and_aad(void **state)
{
	vec v;
	uint8_t pt[64];
	size_t pn = 0;

	(void)state;
	load_vector(&v);
	v.key[31] ^= 1;
	assert_int_equal(seal_open(v.key, v.blob, v.bloblen, v.aad, strlen(v.aad), pt, sizeof pt,
	                           &pn, NULL), SEAL_ERR_AUTH);
	v.key[31] ^= 1;
	assert_int_equal(seal_open(v.key, v.blob, v.bloblen, "ctX", 3, pt, sizeof pt, &pn, NULL),
	                 SEAL_ERR_AUTH);
	assert_int_equal(seal_open(v.key, v.blob, v.bloblen, NULL, 0, pt, sizeof pt, &pn, NULL),
	                 SEAL_ERR_AUTH);
}

static void test_truncated_and_extended(void **state)
{
	vec v;
	uint8_t pt[64], longer[300];
	size_t pn = 0;

	(void)state;
	load_vector(&v);
	for (size_t n = 0; n < v.bloblen; n++) {
		seal_result r = seal_open(v.key, v.blob, n, v.aad, strlen(v.aad), pt, sizeof pt, &pn,
		                          NULL);
		assert_int_equal(r, n < SEAL_OVERHEAD ? SEAL_ERR_SHORT : SEAL_ERR_AUTH);
	}
	memcpy(longer, v.blob, v.bloblen);
	longer[v.bloblen] = 0;
	assert_int_equal(seal_open(v.key, longer, v.bloblen + 1, v.aad, strlen(v.aad), pt,
	                           sizeof pt, &pn, NULL), SEAL_ERR_AUTH);
	/* A plaintext buffer too small is refused before anything is written. */
	assert_int_equal(seal_open(v.key, v.blob, v.bloblen, v.aad, strlen(v.aad), pt, 5, &pn,
	                           NULL), SEAL_ERR_SIZE);
}

static void test_random_nonce_differs(void **state)
{
	uint8_t key[32] = { 1 }, a[64], b[64];
	size_t na, nb;

	(void)state;
	assert_int_equal(seal_close(key, 1, NULL, "x", 1, "k", 1, a, sizeof a, &na), SEAL_OK);
	assert_int_equal(seal_close(key, 1, NULL, "x", 1, "k", 1, b, sizeof b, &nb), SEAL_OK);
	assert_int_equal(na, nb);
	assert_memory_not_equal(a + 13, b + 13, 12);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-seal-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_kek_file_rules(void **state)
{
	char path[128], err[512];
	kek *k;

	(void)state;
	snprintf(path, sizeof path, "%s/a.kek", dir);
	assert_int_equal(kek_create(path, err, sizeof err), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0400);
	assert_int_not_equal(kek_create(path, err, sizeof err), 0);   /* never replaced */
	assert_non_null(k = kek_load(path, err, sizeof err));
	kek_free(k);

	snprintf(path, sizeof path, "%s/open.kek", dir);
	write_file(path, "0123456789abcdef0123456789abcdef", 32, 0644);
	assert_null(kek_load(path, err, sizeof err));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "0644"));
	assert_null(strstr(err, "0123456789abcdef"));   /* never the key */
	assert_int_equal(chmod(path, 0600), 0);
	assert_non_null(k = kek_load(path, err, sizeof err));   /* 32 raw bytes */
	assert_memory_equal(k->key, "0123456789abcdef0123456789abcdef", 32);
	kek_free(k);

	snprintf(path, sizeof path, "%s/short.kek", dir);
	write_file(path, "abcd\n", 5, 0600);
	assert_null(kek_load(path, err, sizeof err));
	assert_non_null(strstr(err, "32 bytes or 64 hex"));
	snprintf(path, sizeof path, "%s/absent.kek", dir);
	assert_null(kek_load(path, err, sizeof err));
	assert_non_null(strstr(err, path));
}

/* A systemd credential may be 0440 (systemd >= 254 with User=): allowed for
 * KEK_SRC_CREDENTIALS only; other bits, and 0440 from any other source, not. */
static void test_kek_credential_group_read(void **state)
{
	char path[128], err[512];
	kek *k;

	(void)state;
	snprintf(path, sizeof path, "%s/" KEK_CRED_NAME, dir);
	write_file(path, "0123456789abcdef0123456789abcdef", 32, 0440);
	assert_non_null(k = kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
	assert_memory_equal(k->key, "0123456789abcdef0123456789abcdef", 32);
	kek_free(k);
	assert_null(kek_load_from(path, KEK_SRC_CONFIG, err, sizeof err));
	assert_non_null(strstr(err, "0440"));
	assert_null(kek_load_from(path, KEK_SRC_BESIDE, err, sizeof err));
	assert_null(kek_load(path, err, sizeof err));
	const mode_t refused[] = { 0460, 0444, 0450, 0404 };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		assert_int_equal(chmod(path, refused[i]), 0);
		assert_null(kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
		assert_non_null(strstr(err, "lets group or others read it"));
	}
	assert_int_equal(chmod(path, 0400), 0);
	assert_non_null(k = kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
	kek_free(k);
}

/* $CREDENTIALS_DIRECTORY is only an environment variable: its directory
 * must be private as systemd makes it (0500; 0550 with User=, the group
 * bits being the ACL mask), else the credential is refused, 0400 or 0440. */
static void test_kek_credential_dir_private(void **state)
{
	char path[128], err[512];
	kek *k;

	(void)state;
	snprintf(path, sizeof path, "%s/" KEK_CRED_NAME, dir);
	write_file(path, "0123456789abcdef0123456789abcdef", 32, 0440);
	const mode_t ok[] = { 0500, 0550, 0700, 0750 };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		assert_int_equal(chmod(dir, ok[i]), 0);
		assert_non_null(k = kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
		kek_free(k);
	}
	const mode_t refused[] = { 0755, 0770, 0701, 0705, 0570, 0777 };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		assert_int_equal(chmod(dir, refused[i]), 0);
		assert_null(kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
		assert_non_null(strstr(err, "lets group write or others in"));
		assert_non_null(strstr(err, dir));
		/* Not a credential: the directory is none of its business. */
		assert_int_equal(chmod(path, 0400), 0);
		assert_non_null(k = kek_load_from(path, KEK_SRC_CONFIG, err, sizeof err));
		kek_free(k);
		assert_null(kek_load_from(path, KEK_SRC_CREDENTIALS, err, sizeof err));
		assert_int_equal(chmod(path, 0440), 0);
	}
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(unlink(path), 0);
}

static void test_kek_path_sources(void **state)
{
	mn_config c;
	char out[CONFIG_PATH_MAX];
	kek_source src;

	(void)state;
	memset(&c, 0, sizeof c);
	snprintf(c.data_dir, sizeof c.data_dir, "/var/lib/mn/");
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(kek_path(&c, out, sizeof out, &src), 0);
	assert_string_equal(out, "/var/lib/mn.kek");
	assert_int_equal(src, KEK_SRC_BESIDE);
	/* A credentials dir counts only when it holds the file. */
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	assert_int_equal(kek_path(&c, out, sizeof out, &src), 0);
	assert_int_equal(src, KEK_SRC_BESIDE);
	char cred[128];
	snprintf(cred, sizeof cred, "%s/" KEK_CRED_NAME, dir);
	write_file(cred, "0123456789abcdef0123456789abcdef", 32, 0400);
	assert_int_equal(kek_path(&c, out, sizeof out, &src), 0);
	assert_string_equal(out, cred);
	assert_int_equal(src, KEK_SRC_CREDENTIALS);
	snprintf(c.keys_kek_file, sizeof c.keys_kek_file, "/etc/x.kek");
	assert_int_equal(kek_path(&c, out, sizeof out, &src), 0);
	assert_string_equal(out, "/etc/x.kek");
	assert_int_equal(src, KEK_SRC_CONFIG);
	unsetenv("CREDENTIALS_DIRECTORY");
}

static void test_keyfile_roundtrip_and_refusals(void **state)
{
	uint8_t kb[KEK_LEN], key[32], out[32];
	char path[128], err[512], aad[KEYFILE_AAD_MAX];
	uint8_t *buf;
	size_t n;
	int64_t ts = 0;

	(void)state;
	memset(kb, 7, sizeof kb);
	randombytes_buf(key, sizeof key);
	kek *k = kek_from_bytes(kb);
	assert_non_null(k);
	snprintf(path, sizeof path, "%s/k1.key", dir);
	assert_int_equal(keyfile_cap_aad(aad, sizeof aad, "k1"), 0);
	assert_int_equal(keyfile_write(path, k, aad, key, sizeof key, 0600, UTIL_WRITE_NOREPLACE,
	                               err, sizeof err), 0);
	assert_int_equal(util_read_file(path, 4096, (char **)&buf, &n), 0);
	assert_int_equal(n, sizeof key + SEAL_OVERHEAD);
	assert_null(memmem(buf, n, key, sizeof key));   /* no clear key on disk */
	assert_int_equal(keyfile_unseal(buf, n, k, aad, out, sizeof out, &ts, path, err,
	                                sizeof err), 0);
	assert_memory_equal(out, key, sizeof key);
	assert_true(ts > 1700000000000);
	/* Another kid's AAD (a renamed file) does not unseal. */
	char aad2[KEYFILE_AAD_MAX];
	assert_int_equal(keyfile_cap_aad(aad2, sizeof aad2, "k2"), 0);
	assert_int_equal(keyfile_unseal(buf, n, k, aad2, out, sizeof out, NULL, path, err,
	                                sizeof err), -1);
	assert_non_null(strstr(err, path));
	/* Wrong KEK: names the file, never a key byte. */
	kb[0] ^= 1;
	kek *wrong = kek_from_bytes(kb);
	assert_int_equal(keyfile_unseal(buf, n, wrong, aad, out, sizeof out, NULL, path, err,
	                                sizeof err), -1);
	assert_non_null(strstr(err, "wrong KEK"));
	/* No KEK at all. */
	assert_int_equal(keyfile_unseal(buf, n, NULL, aad, out, sizeof out, NULL, path, err,
	                                sizeof err), -1);
	assert_non_null(strstr(err, "no KEK"));
	/* Wrong expected size. */
	assert_int_equal(keyfile_unseal(buf, n, k, aad, out, 16, NULL, path, err, sizeof err), -1);
	/* Clear text is reported as such, for the caller's old parser. */
	assert_int_equal(keyfile_unseal((const uint8_t *)"00ff", 4, k, aad, out, sizeof out, NULL,
	                                path, err, sizeof err), KEYFILE_CLEAR);
	free(buf);
	kek_free(wrong);
	kek_free(k);
}

/* KEK rotation of one file: time and mode kept, a rerun is a no-op, a
 * third KEK and clear text are refused. */
static void test_keyfile_reseal(void **state)
{
	uint8_t a[KEK_LEN], b[KEK_LEN], key[64], out[64];
	char path[128], err[512];
	uint8_t *buf;
	size_t n;
	int64_t ts = 0;
	struct stat st;

	(void)state;
	memset(a, 1, sizeof a);
	memset(b, 2, sizeof b);
	randombytes_buf(key, sizeof key);
	kek *ka = kek_from_bytes(a), *kb = kek_from_bytes(b);
	snprintf(path, sizeof path, "%s/id.key", dir);
	assert_int_equal(keyfile_write_at(path, ka, KEYFILE_AAD_IDENTITY, key, sizeof key, 4242,
	                                  0400, 0, err, sizeof err), 0);
	assert_int_equal(keyfile_reseal(path, ka, kb, KEYFILE_AAD_IDENTITY, sizeof key, err,
	                                sizeof err), 0);
	assert_int_equal(util_read_file(path, 4096, (char **)&buf, &n), 0);
	assert_int_equal(keyfile_unseal(buf, n, kb, KEYFILE_AAD_IDENTITY, out, sizeof out, &ts, path,
	                                err, sizeof err), 0);
	assert_memory_equal(out, key, sizeof key);
	assert_int_equal(ts, 4242);
	assert_int_equal(keyfile_unseal(buf, n, ka, KEYFILE_AAD_IDENTITY, out, sizeof out, NULL, path,
	                                err, sizeof err), -1);
	free(buf);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0400);
	assert_int_equal(keyfile_reseal(path, ka, kb, KEYFILE_AAD_IDENTITY, sizeof key, err,
	                                sizeof err), 1);
	uint8_t c[KEK_LEN];
	memset(c, 3, sizeof c);
	kek *kc = kek_from_bytes(c);
	assert_int_equal(keyfile_reseal(path, kc, ka, KEYFILE_AAD_IDENTITY, sizeof key, err,
	                                sizeof err), -1);
	assert_non_null(strstr(err, "neither"));
	snprintf(path, sizeof path, "%s/clear.key", dir);
	write_file(path, "00112233", 8, 0600);
	assert_int_equal(keyfile_reseal(path, ka, kb, KEYFILE_AAD_IDENTITY, sizeof key, err,
	                                sizeof err), -1);
	assert_non_null(strstr(err, "clear text"));
	kek_free(ka);
	kek_free(kb);
	kek_free(kc);
}

/* kek_free(NULL) is a no-op. (The wipe itself cannot be observed: after
 * sodium_free the guarded page is unmapped.) */
static void test_kek_free_null(void **state)
{
	(void)state;
	kek_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vector_byte_exact),
		cmocka_unit_test(test_tamper_each_byte),
		cmocka_unit_test(test_wrong_key_and_aad),
		cmocka_unit_test(test_truncated_and_extended),
		cmocka_unit_test(test_random_nonce_differs),
		cmocka_unit_test_setup_teardown(test_kek_file_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kek_credential_group_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kek_credential_dir_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kek_path_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_roundtrip_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keyfile_reseal, setup, teardown),
		cmocka_unit_test(test_kek_free_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
