/* Unit tests for core/identity: key file form, modes, node id, signatures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/identity/identity.h"
#include "core/keys/seal.h"
#include "lib/b3.h"
#include "lib/util.h"

static char dir[64];

/* The KEK every sealed file of these tests uses (freed at exit by the OS). */
static kek *test_kek(void)
{
	static kek *k;
	uint8_t b[KEK_LEN];

	if (!k) {
		memset(b, 0x5a, sizeof b);
		k = kek_from_bytes(b);
	}
	return k;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/mn-identity-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_create_load_roundtrip(void **state)
{
	char path[128], err[256];
	node_identity a, b;
	bool created;
	struct stat st;

	(void)state;
	snprintf(path, sizeof path, "%s/node/identity.key", dir);
	assert_int_equal(identity_load_or_create(&a, path, test_kek(), &created, err, sizeof err), 0);
	assert_true(created);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, IDENTITY_SK_LEN + SEAL_OVERHEAD);   /* sealed */
	assert_int_equal(identity_load_or_create(&b, path, test_kek(), &created, err, sizeof err), 0);
	assert_false(created);
	assert_memory_equal(a.pk, b.pk, IDENTITY_PK_LEN);
	assert_string_equal(a.id_text, b.id_text);
	/* node id = "b3:" + hex BLAKE3(pk) */
	uint8_t h[B3_OUT_LEN];
	char want[IDENTITY_ID_TEXT];
	b3_hash(a.pk, sizeof a.pk, h);
	identity_id_format(h, want);
	assert_string_equal(a.id_text, want);
	assert_int_equal(strlen(a.id_text), 67);
	/* never replaced */
	assert_int_equal(identity_create_file(path, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "already exists"));
	identity_free(&a);
	identity_free(&b);
	assert_null(a.sk);
}

static void test_refusals(void **state)
{
	char path[128], err[256], hex[130];
	node_identity id;

	(void)state;
	snprintf(path, sizeof path, "%s/bad.key", dir);
	memset(hex, 'a', 128);
	hex[128] = '\n';
	hex[129] = '\0';
	write_file(path, hex, 0644);
	assert_int_equal(identity_load(&id, path, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "group or others"));
	/* mode fine, but the public half is not the seed's */
	write_file(path, hex, 0600);
	assert_int_equal(identity_load(&id, path, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "does not match"));
	assert_null(strstr(err, "aaaa"));   /* never echoes key bytes */
	write_file(path, "short\n", 0600);
	assert_int_equal(identity_load(&id, path, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "128 lowercase hex"));
	snprintf(path, sizeof path, "%s/missing.key", dir);
	assert_int_equal(identity_load(&id, path, test_kek(), err, sizeof err), -1);
	assert_non_null(strstr(err, "missing.key"));
}

/* A clear-text key of an earlier version still loads; sealing it in place
 * keeps the same identity and leaves no key byte in the file. */
static void test_legacy_clear_and_seal(void **state)
{
	char path[128], err[256], hex[2 * IDENTITY_SK_LEN + 2];
	node_identity a, b;
	bool clear = false;
	char *buf;
	size_t n;

	(void)state;
	assert_int_equal(identity_generate(&a, err, sizeof err), 0);
	util_hex_encode(a.sk, IDENTITY_SK_LEN, hex);
	hex[2 * IDENTITY_SK_LEN] = '\n';
	hex[2 * IDENTITY_SK_LEN + 1] = '\0';
	snprintf(path, sizeof path, "%s/old.key", dir);
	write_file(path, hex, 0600);
	assert_int_equal(identity_load_ex(&b, path, NULL, &clear, err, sizeof err), 0);
	assert_true(clear);
	assert_string_equal(a.id_text, b.id_text);
	identity_free(&b);
	/* Without a KEK it cannot be sealed. */
	assert_int_equal(identity_seal_file(path, NULL, err, sizeof err), -1);
	assert_int_equal(identity_seal_file(path, test_kek(), err, sizeof err), 0);
	assert_int_equal(identity_seal_file(path, test_kek(), err, sizeof err), 1);   /* already */
	assert_int_equal(util_read_file(path, 4096, &buf, &n), 0);
	assert_int_equal(n, IDENTITY_SK_LEN + SEAL_OVERHEAD);
	assert_null(memmem(buf, n, a.sk, IDENTITY_SEED_LEN));
	assert_null(memmem(buf, n, hex, 16));
	free(buf);
	assert_int_equal(identity_load_ex(&b, path, test_kek(), &clear, err, sizeof err), 0);
	assert_false(clear);
	assert_string_equal(a.id_text, b.id_text);
	identity_free(&b);
	/* A sealed identity without its KEK, or with another: a clear error. */
	assert_int_equal(identity_load(&b, path, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "no KEK"));
	uint8_t other[KEK_LEN] = { 1 };
	kek *k2 = kek_from_bytes(other);
	assert_int_equal(identity_load(&b, path, k2, err, sizeof err), -1);
	assert_non_null(strstr(err, "wrong KEK"));
	assert_non_null(strstr(err, path));
	kek_free(k2);
	identity_free(&a);
}

static void test_sign_verify_and_seed(void **state)
{
	char err[256];
	node_identity a, b;
	uint8_t sig[IDENTITY_SIG_LEN], seed[IDENTITY_SEED_LEN];
	static const char msg[] = "provider record";

	(void)state;
	assert_int_equal(identity_generate(&a, err, sizeof err), 0);
	assert_int_equal(identity_sign(&a, msg, sizeof msg, sig), 0);
	assert_true(identity_verify(a.pk, msg, sizeof msg, sig));
	sig[5] ^= 1;
	assert_false(identity_verify(a.pk, msg, sizeof msg, sig));
	identity_seed(&a, seed);
	assert_int_equal(identity_from_seed(&b, seed, err, sizeof err), 0);
	assert_memory_equal(a.pk, b.pk, IDENTITY_PK_LEN);
	assert_string_equal(a.id_text, b.id_text);
	identity_free(&a);
	identity_free(&b);
	assert_int_equal(identity_sign(&a, msg, sizeof msg, sig), -1);
}

static void test_id_parse(void **state)
{
	uint8_t id[IDENTITY_ID_LEN], back[IDENTITY_ID_LEN];
	char text[IDENTITY_ID_TEXT];

	(void)state;
	for (size_t i = 0; i < sizeof id; i++)
		id[i] = (uint8_t)(i * 7);
	identity_id_format(id, text);
	assert_int_equal(identity_id_parse(text, back), 0);
	assert_memory_equal(id, back, sizeof id);
	text[10] = 'A';   /* upper case is not the canonical form */
	assert_int_equal(identity_id_parse(text, back), -1);
	assert_int_equal(identity_id_parse("b3:00", back), -1);
	assert_int_equal(identity_id_parse("sha:0000", back), -1);
	assert_int_equal(identity_id_parse(NULL, back), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_load_roundtrip),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_legacy_clear_and_seal),
		cmocka_unit_test(test_sign_verify_and_seed),
		cmocka_unit_test(test_id_parse),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
