/* BLAKE3 outboard: the id from the outboard and from the streaming builder
 * must equal whole-object BLAKE3 (b3_hash, and b3sum as an independent
 * implementation) at every tree edge; a corrupted group or outboard byte must
 * be caught, and only where it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/b3tree.h"
#include "lib/b3tree_test.h"

#define KIB               1024u
#define MIB               (1024u * 1024u)
#define GROUP             B3TREE_GROUP_LEN
#define RANDOM_SIZES      24
#define RANDOM_SIZE_MAX   (8u * MIB)
#define PIECE_MAX         (2u * MIB)

/* splitmix64: deterministic, so a failure names a reproducible size. */
static uint64_t prng_state;

static uint64_t prng_next(void)
{
	uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static uint8_t *make_object(size_t len, uint64_t seed)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	prng_state = seed;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)prng_next();
	return p;
}

/* Outboard built group by group with b3tree_group_cv. Caller frees. */
static uint8_t *outboard_of(const uint8_t *data, uint64_t len)
{
	size_t n = b3tree_groups(len);
	uint8_t *ob = malloc(b3tree_outboard_len(len));

	assert_non_null(ob);
	for (size_t g = 0; g < n; g++) {
		int64_t glen = b3tree_group_len(len, g);
		assert_true(glen >= 0);
		assert_int_equal(b3tree_group_cv(data + (size_t)g * GROUP, (size_t)glen,
		                                 g, ob + g * B3TREE_CV_LEN), 0);
	}
	return ob;
}

/* The outboard's id equals b3_hash, every group verifies, and the builder fed
 * in random pieces produces the same outboard bytes and id. */
static void check_size(size_t len)
{
	uint8_t *data = make_object(len, len * 7919u + 1);
	uint8_t id[B3_OUT_LEN], root[B3_OUT_LEN];
	size_t n = b3tree_groups(len);
	uint8_t *ob = outboard_of(data, len);

	b3_hash(data, len, id);
	if (n >= 2) {
		assert_int_equal(b3tree_root_from_outboard(ob, n, len, root), 0);
		assert_memory_equal(root, id, B3_OUT_LEN);
	} else {
		assert_int_equal(b3tree_root_from_outboard(ob, n, len, root), -1);
	}
	assert_true(b3tree_outboard_ok(ob, len, id));
	for (size_t g = 0; g < n; g++)
		assert_true(b3tree_group_ok(data + g * GROUP,
		                            (size_t)b3tree_group_len(len, g), g, len, ob, id));

	uint8_t *ob2 = malloc(b3tree_outboard_len(len));
	b3tree_builder *b = b3tree_builder_new(ob2, b3tree_outboard_len(len));
	assert_non_null(b);
	for (size_t off = 0; off < len;) {
		uint64_t r = prng_next();
		size_t piece = (r & 3) == 0 ? 1 + (size_t)(r >> 8) % 64 :
		               (r & 3) == 1 ? GROUP : 1 + (size_t)(r >> 8) % PIECE_MAX;
		if (piece > len - off)
			piece = len - off;
		assert_int_equal(b3tree_builder_update(b, data + off, piece), 0);
		off += piece;
	}
	assert_int_equal(b3tree_builder_finish(b, root), 0);
	assert_memory_equal(root, id, B3_OUT_LEN);
	assert_int_equal(b3tree_builder_len(b), len);
	assert_memory_equal(ob2, ob, b3tree_outboard_len(len));
	b3tree_builder_free(b);
	free(ob2);
	free(ob);
	free(data);
}

static void test_edge_sizes(void **st)
{
	static const size_t sizes[] = {
		0, 1, 63, 64, 65, 1023, 1024, 1025, 2048, 4097,
		GROUP - 1, GROUP, GROUP + 1, GROUP + 1023, GROUP + 1024, GROUP + 1025,
		GROUP + 3 * KIB + 7, GROUP + 37 * KIB + 5, 2 * GROUP - 1, 2 * GROUP,
		2 * GROUP + 1, 3 * GROUP + 5, 4 * GROUP, 4 * GROUP + 1, 5 * GROUP,
		7 * GROUP + 63 * KIB, 8 * GROUP, 9 * GROUP - 1, 5 * MIB + 17,
	};
	(void)st;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		check_size(sizes[i]);
}

static void test_random_sizes(void **st)
{
	(void)st;
	for (int i = 0; i < RANDOM_SIZES; i++) {
		prng_state = 0xB3B3B3B3ull + (uint64_t)i;
		check_size((size_t)(prng_next() % (RANDOM_SIZE_MAX + 1)));
	}
}

/* Independent of this code and of b3_hash: input i % 251 over 102400 bytes
 * (two groups, the official BLAKE3 test-vector input), id checked with b3sum. */
static void test_known_vector(void **st)
{
	static const char want[] =
		"bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085";
	enum { LEN = 102400 };
	uint8_t *data = malloc(LEN), ob[2 * B3TREE_CV_LEN], root[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1];
	(void)st;
	assert_non_null(data);
	for (size_t i = 0; i < LEN; i++)
		data[i] = (uint8_t)(i % 251);
	assert_int_equal(b3tree_outboard_len(LEN), sizeof ob);
	assert_int_equal(b3tree_group_cv(data, GROUP, 0, ob), 0);
	assert_int_equal(b3tree_group_cv(data + GROUP, LEN - GROUP, 1, ob + 32), 0);
	assert_int_equal(b3tree_root_from_outboard(ob, 2, LEN, root), 0);
	b3_hex(root, hex);
	assert_string_equal(hex, want);
	free(data);
}

/* b3sum's id for the bytes, or skip if b3sum is absent. */
static int b3sum_hex(const uint8_t *data, size_t len, char out[B3_HEX_LEN + 1])
{
	const char *b3sum = getenv("MN_B3SUM");
	char path[] = "/tmp/mn-b3tree-XXXXXX", cmd[512], line[128] = "";

	if (!b3sum || !*b3sum)
		b3sum = "/usr/bin/b3sum";
	if (access(b3sum, X_OK) != 0)
		return -1;
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof cmd, "%s --no-names %s", b3sum, path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof line, p));
	pclose(p);
	unlink(path);
	memcpy(out, line, B3_HEX_LEN);
	out[B3_HEX_LEN] = '\0';
	return 0;
}

static void test_against_b3sum(void **st)
{
	static const size_t sizes[] = { 0, 1025, GROUP, GROUP + 1, 3 * GROUP + 5,
	                                MIB + 7 };
	(void)st;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t len = sizes[i];
		uint8_t *data = make_object(len, 42 + i), root[B3_OUT_LEN];
		uint8_t *ob = malloc(b3tree_outboard_len(len));
		char want[B3_HEX_LEN + 1], got[B3_HEX_LEN + 1];
		b3tree_builder *b = b3tree_builder_new(ob, b3tree_outboard_len(len));

		assert_non_null(b);
		if (b3sum_hex(data, len, want) != 0) {
			b3tree_builder_free(b);
			free(ob);
			free(data);
			skip();
			return;   /* skip() longjmps; the static analyzer cannot see it */
		}
		assert_int_equal(b3tree_builder_update(b, data, len), 0);
		assert_int_equal(b3tree_builder_finish(b, root), 0);
		b3_hex(root, got);
		assert_string_equal(got, want);
		b3tree_builder_free(b);
		free(ob);
		free(data);
	}
}

/* Which groups pass after data[pos] is flipped: exactly all but pos's. */
static void check_flip(uint8_t *data, size_t len, const uint8_t *ob,
                       const uint8_t id[B3_OUT_LEN], size_t pos)
{
	size_t n = b3tree_groups(len);

	data[pos] ^= 0x01;
	for (size_t g = 0; g < n; g++) {
		bool ok = b3tree_group_ok(data + g * GROUP,
		                          (size_t)b3tree_group_len(len, g), g, len, ob, id);
		assert_int_equal(ok, g != pos / GROUP);
	}
	data[pos] ^= 0x01;
}

static void test_flip_group_bytes(void **st)
{
	const size_t len = 5 * GROUP + 1500;
	uint8_t *data = make_object(len, 99), id[B3_OUT_LEN];
	uint8_t *ob = outboard_of(data, len);
	(void)st;
	b3_hash(data, len, id);
	assert_true(b3tree_outboard_ok(ob, len, id));
	for (size_t g = 0; g < b3tree_groups(len); g++) {
		size_t base = g * GROUP, glen = (size_t)b3tree_group_len(len, g);
		size_t picks[] = { 0, 1, 63, 64, 1023, 1024, glen / 2, glen - 1,
		                   (size_t)(prng_next() % glen) };
		for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++)
			if (picks[i] < glen)
				check_flip(data, len, ob, id, base + picks[i]);
	}
	/* Every byte of the short last group (two chunks: full + partial). */
	for (size_t pos = 5 * GROUP; pos < len; pos++)
		check_flip(data, len, ob, id, pos);
	free(ob);
	free(data);
}

static void test_flip_outboard_and_id(void **st)
{
	const size_t len = 6 * GROUP + 17;
	uint8_t *data = make_object(len, 7), id[B3_OUT_LEN];
	uint8_t *ob = outboard_of(data, len);
	size_t oblen = b3tree_outboard_len(len);
	(void)st;
	b3_hash(data, len, id);
	assert_true(b3tree_outboard_ok(ob, len, id));
	for (size_t i = 0; i < oblen; i++) {
		ob[i] ^= 0x80;
		assert_false(b3tree_outboard_ok(ob, len, id));
		ob[i] ^= 0x80;
	}
	for (size_t i = 0; i < B3_OUT_LEN; i++) {
		id[i] ^= 0x01;
		assert_false(b3tree_outboard_ok(ob, len, id));
		id[i] ^= 0x01;
	}
	/* A length with another group count is refused by the outboard alone. */
	assert_false(b3tree_outboard_ok(ob, len - 17, id));
	uint8_t *longer = calloc(1, oblen + B3TREE_CV_LEN);
	assert_non_null(longer);
	memcpy(longer, ob, oblen);
	assert_false(b3tree_outboard_ok(longer, len + GROUP, id));
	free(longer);
	/* A length off inside the last group is not (the outboard holds no
	 * lengths, see b3tree.h): the last group's check catches it. */
	assert_true(b3tree_outboard_ok(ob, len - 1, id));
	assert_false(b3tree_group_ok(data + 6 * GROUP, 16, 6, len - 1, ob, id));
	uint8_t tail[18] = { 0 };
	memcpy(tail, data + 6 * GROUP, 17);
	assert_false(b3tree_group_ok(tail, 18, 6, len + 1, ob, id));
	assert_true(b3tree_group_ok(data + 6 * GROUP, 17, 6, len, ob, id));
	free(ob);
	free(data);
}

/* One group, including the empty object: bytes against the id directly. */
static void test_single_group(void **st)
{
	static const size_t sizes[] = { 0, 1, 1023, 1024, 1025, 1500, GROUP - 1, GROUP };
	(void)st;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		size_t len = sizes[i];
		uint8_t *data = make_object(len, 5 + i), id[B3_OUT_LEN];
		uint8_t *ob = outboard_of(data, len);

		assert_int_equal(b3tree_groups(len), 1);
		b3_hash(data, len, id);
		assert_true(b3tree_outboard_ok(ob, len, id));
		assert_true(b3tree_group_ok(data, len, 0, len, ob, id));
		assert_true(b3tree_group_ok(data, len, 0, len, NULL, id));
		/* The outboard entry is the non-root CV, never the id. */
		assert_memory_not_equal(ob, id, B3_OUT_LEN);
		id[31] ^= 0x01;
		assert_false(b3tree_group_ok(data, len, 0, len, ob, id));
		id[31] ^= 0x01;
		if (len > 0 && len <= 2 * KIB) {
			for (size_t pos = 0; pos < len; pos++) {
				data[pos] ^= 0x40;
				assert_false(b3tree_group_ok(data, len, 0, len, ob, id));
				data[pos] ^= 0x40;
			}
		}
		if (len > 0)
			assert_false(b3tree_group_ok(data, len - 1, 0, len, ob, id));
		free(ob);
		free(data);
	}
	static const char empty[] =
		"af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";
	uint8_t ob[B3TREE_CV_LEN], root[B3_OUT_LEN];
	char hex[B3_HEX_LEN + 1];
	b3tree_builder *b = b3tree_builder_new(ob, sizeof ob);
	assert_non_null(b);
	assert_int_equal(b3tree_builder_finish(b, root), 0);
	b3_hex(root, hex);
	assert_string_equal(hex, empty);
	b3tree_builder_free(b);
}

/* One byte at a time over three groups and a bit: the buffering edges. */
static void test_builder_bytewise(void **st)
{
	const size_t len = 3 * GROUP + 300;
	uint8_t *data = make_object(len, 3), id[B3_OUT_LEN], root[B3_OUT_LEN];
	uint8_t *ob = outboard_of(data, len), ob2[4 * B3TREE_CV_LEN];
	b3tree_builder *b = b3tree_builder_new(ob2, sizeof ob2);
	(void)st;
	assert_non_null(b);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(b3tree_builder_update(b, data + i, 1), 0);
	assert_int_equal(b3tree_builder_update(b, data, 0), 0);
	assert_int_equal(b3tree_builder_finish(b, root), 0);
	b3_hash(data, len, id);
	assert_memory_equal(root, id, B3_OUT_LEN);
	assert_memory_equal(ob2, ob, sizeof ob2);
	/* Finished: no more input, no second finish. */
	assert_int_equal(b3tree_builder_update(b, data, 1), -1);
	assert_int_equal(b3tree_builder_finish(b, root), -1);
	b3tree_builder_free(b);
	free(ob);
	free(data);
}

static void test_builder_capacity(void **st)
{
	uint8_t *data = make_object(2 * GROUP + 1, 11), ob[2 * B3TREE_CV_LEN];
	uint8_t root[B3_OUT_LEN];
	b3tree_builder *b = b3tree_builder_new(ob, sizeof ob);
	(void)st;
	assert_non_null(b);
	assert_int_equal(b3tree_builder_update(b, data, 2 * GROUP), 0);
	/* A third group does not fit: refused, and the builder stays failed. */
	assert_int_equal(b3tree_builder_update(b, data + 2 * GROUP, 1), -1);
	assert_int_equal(b3tree_builder_len(b), 2 * GROUP);
	assert_int_equal(b3tree_builder_finish(b, root), -1);
	b3tree_builder_free(b);
	b3tree_builder_free(NULL);
	b = b3tree_builder_new(NULL, 0);
	assert_non_null(b);
	assert_int_equal(b3tree_builder_update(b, data, 1), -1);
	b3tree_builder_free(b);
	free(data);
}

static void test_bad_arguments(void **st)
{
	uint8_t buf[GROUP + 1] = { 0 }, cv[B3TREE_CV_LEN], ob[2 * B3TREE_CV_LEN] = { 0 };
	(void)st;
	assert_int_equal(b3tree_groups(0), 1);
	assert_int_equal(b3tree_groups(1), 1);
	assert_int_equal(b3tree_groups(GROUP), 1);
	assert_int_equal(b3tree_groups(GROUP + 1), 2);
	assert_int_equal(b3tree_groups(B3TREE_MAX_LEN), B3TREE_MAX_LEN / GROUP);
	assert_int_equal(b3tree_groups(B3TREE_MAX_LEN + 1), 0);
	assert_int_equal(b3tree_outboard_len(5 * MIB + 17), 81 * B3TREE_CV_LEN);
	assert_int_equal(b3tree_group_len(0, 0), 0);
	assert_int_equal(b3tree_group_len(0, 1), -1);
	assert_int_equal(b3tree_group_len(GROUP + 5, 1), 5);
	assert_int_equal(b3tree_group_len(GROUP + 5, 2), -1);
	assert_int_equal(b3tree_group_cv(buf, GROUP + 1, 0, cv), -1);
	assert_int_equal(b3tree_group_cv(buf, 0, 1, cv), -1);
	assert_int_equal(b3tree_group_cv(NULL, 1, 0, cv), -1);
	assert_int_equal(b3tree_group_cv(buf, 1, B3TREE_MAX_LEN / GROUP, cv), -1);
	/* ngroups must match len. */
	assert_int_equal(b3tree_root_from_outboard(ob, 2, GROUP, cv), -1);
	assert_int_equal(b3tree_root_from_outboard(ob, 3, 2 * GROUP, cv), -1);
	assert_int_equal(b3tree_root_from_outboard(ob, 2, 2 * GROUP, cv), 0);
	/* Wrong group length or index for the object. */
	assert_false(b3tree_group_ok(buf, GROUP - 1, 0, GROUP + 5, ob, cv));
	assert_false(b3tree_group_ok(buf, 5, 2, GROUP + 5, ob, cv));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edge_sizes),
		cmocka_unit_test(test_random_sizes),
		cmocka_unit_test(test_known_vector),
		cmocka_unit_test(test_against_b3sum),
		cmocka_unit_test(test_flip_group_bytes),
		cmocka_unit_test(test_flip_outboard_and_id),
		cmocka_unit_test(test_single_group),
		cmocka_unit_test(test_builder_bytewise),
		cmocka_unit_test(test_builder_capacity),
		cmocka_unit_test(test_bad_arguments),
	};
	return cmocka_run_group_tests_name("b3tree", tests, NULL, NULL);
}
