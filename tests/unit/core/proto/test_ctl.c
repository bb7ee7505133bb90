/* ctl: the typed control messages, over a real SOCK_SEQPACKET socketpair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/proto/ctl.h"
#include "lib/ipc.h"
#include "lib/wire.h"

static ctl_msg M;   /* 64 KiB: not on the test's stack */

static int pair[2];

static int setup(void **st)
{
	(void)st;
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair);
}

static int teardown(void **st)
{
	(void)st;
	close(pair[0]);
	close(pair[1]);
	return 0;
}

static void recv_one(void)
{
	assert_int_equal(ctl_recv(pair[1], &M), 1);
}

/* A raw datagram: header {type, len} then body, as a buggy peer might send. */
static void send_raw(uint32_t type, uint32_t len, const void *body, size_t n, int fd)
{
	uint8_t buf[CTL_HDR_LEN + 64];
	wire_w w;

	wire_w_init(&w, buf, sizeof buf);
	wire_put_u32(&w, type);
	wire_put_u32(&w, len);
	wire_put_raw(&w, body, n);
	assert_int_equal(wire_w_ok(&w), 0);
	assert_int_equal(ipc_send(pair[0], buf, w.len, fd >= 0 ? &fd : NULL, fd >= 0), 0);
}

static void test_header_is_big_endian(void **st)
{
	uint8_t raw[16];

	(void)st;
	assert_int_equal(ctl_compose_ready(pair[0]), 0);
	assert_int_equal(recv(pair[1], raw, sizeof raw, 0), 8);
	static const uint8_t want[8] = { 0, 0, 0, CTL_READY, 0, 0, 0, 0 };
	assert_memory_equal(raw, want, 8);
}

static void test_hello_ready_drain(void **st)
{
	ctl_hello h;

	(void)st;
	assert_int_equal(ctl_compose_hello(pair[0], ctl_build_id()), 0);
	recv_one();
	assert_int_equal(M.type, CTL_HELLO);
	assert_int_equal(ctl_read_hello(&M, &h), 0);
	assert_string_equal(h.build_id, ctl_build_id());
	assert_int_equal(ctl_read_ready(&M), -1);  /* the wrong reader refuses */

	assert_int_equal(ctl_compose_ready(pair[0]), 0);
	recv_one();
	assert_int_equal(ctl_read_ready(&M), 0);
	assert_int_equal(ctl_read_drain(&M), -1);

	assert_int_equal(ctl_compose_drain(pair[0]), 0);
	recv_one();
	assert_int_equal(ctl_read_drain(&M), 0);
	assert_string_equal(ctl_type_name(M.type), "DRAIN");
}

static void test_deps(void **st)
{
	ctl_deps d;

	(void)st;
	assert_int_equal(ctl_compose_deps(pair[0], CTL_DEP_CAPACITY, CTL_DEP_DEGRADED), 0);
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), 0);
	assert_int_equal(d.dep, CTL_DEP_CAPACITY);
	assert_int_equal(d.state, CTL_DEP_DEGRADED);
	assert_string_equal(ctl_dep_name(d.dep), "capacity");

	assert_int_equal(ctl_compose_deps(pair[0], CTL_DEP_STORAGE, CTL_DEP_DOWN), 0);
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), 0);
	assert_int_equal(d.dep, CTL_DEP_STORAGE);
	assert_int_equal(d.state, CTL_DEP_DOWN);

	/* out of range dependency or state */
	send_raw(CTL_DEPS, 2, (uint8_t[]){ CTL_DEP_COUNT, 0 }, 2, -1);
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), -1);
	send_raw(CTL_DEPS, 2, (uint8_t[]){ 0, 3 }, 2, -1);
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), -1);
}

static void test_config(void **st)
{
	static const char json[] = "{\"log\":{\"level\":\"debug\"}}";
	ctl_config c;

	(void)st;
	assert_int_equal(ctl_compose_config(pair[0], json, strlen(json)), 0);
	recv_one();
	assert_int_equal(ctl_read_config(&M, &c), 0);
	assert_int_equal(c.len, strlen(json));
	assert_string_equal(c.json, json);  /* NUL-terminated in place */

	/* a NUL inside, or nothing at all, is not a config */
	assert_int_equal(ctl_compose_config(pair[0], "{\0}", 3), 0);
	recv_one();
	assert_int_equal(ctl_read_config(&M, &c), -1);
	assert_int_equal(ctl_compose_config(pair[0], "", 0), 0);
	recv_one();
	assert_int_equal(ctl_read_config(&M, &c), -1);
	/* over the body cap: refused by the composer */
	static char big[CTL_MAX_BODY];
	memset(big, 'x', sizeof big);
	assert_int_equal(ctl_compose_config(pair[0], big, sizeof big), -1);
	assert_int_equal(errno, EMSGSIZE);
}

static void test_policy_with_fd(void **st)
{
	ctl_policy p = { .present = true, .version = 42, .digest = "b3:abcd" };
	ctl_policy got;
	char buf[8] = "";

	(void)st;
	p.fd = memfd_create("t", MFD_CLOEXEC);
	assert_true(p.fd >= 0);
	assert_int_equal(write(p.fd, "bundle", 6), 6);
	assert_int_equal(ctl_compose_policy(pair[0], &p), 0);
	recv_one();
	assert_int_equal(ctl_read_policy(&M, &got), 0);
	assert_true(got.present);
	assert_int_equal(got.version, 42);
	assert_string_equal(got.digest, "b3:abcd");
	assert_true(got.fd >= 0 && got.fd != p.fd);
	assert_int_equal(pread(got.fd, buf, 6, 0), 6);
	assert_memory_equal(buf, "bundle", 6);
	close(got.fd);
	close(p.fd);

	/* none: no fd travels; a stale version or digest is ignored */
	ctl_policy none = { .present = false, .version = 7, .digest = "b3:old", .fd = -1 };
	assert_int_equal(ctl_compose_policy(pair[0], &none), 0);
	recv_one();
	assert_int_equal(M.fd, -1);
	assert_int_equal(ctl_read_policy(&M, &got), 0);
	assert_false(got.present);
	assert_int_equal(got.version, 0);
	assert_string_equal(got.digest, "");
}

static void test_policy_fd_rules(void **st)
{
	uint8_t body[1 + 8 + 2 + 4];
	ctl_policy got;
	wire_w w;

	(void)st;
	/* present without the memfd */
	wire_w_init(&w, body, sizeof body);
	wire_put_u8(&w, 1);
	wire_put_u64(&w, 1);
	wire_put_str(&w, "b3:a");
	assert_int_equal(wire_w_ok(&w), 0);
	send_raw(CTL_POLICY, (uint32_t)w.len, body, w.len, -1);
	recv_one();
	assert_int_equal(ctl_read_policy(&M, &got), -1);
	/* absent with an fd: refused; the fd is still the message owner's */
	wire_w_init(&w, body, sizeof body);
	wire_put_u8(&w, 0);
	wire_put_u64(&w, 0);
	wire_put_str(&w, "");
	send_raw(CTL_POLICY, (uint32_t)w.len, body, w.len, pair[0]);
	recv_one();
	assert_true(M.fd >= 0);
	assert_int_equal(ctl_read_policy(&M, &got), -1);
	close(M.fd);
	/* a descriptor on a message that carries none */
	send_raw(CTL_READY, 0, NULL, 0, pair[0]);
	recv_one();
	assert_true(M.fd >= 0);
	assert_int_equal(ctl_read_ready(&M), -1);
	close(M.fd);
}

static void test_identity(void **st)
{
	uint8_t seed[CTL_SEED_LEN], got[CTL_SEED_LEN];

	(void)st;
	for (size_t i = 0; i < sizeof seed; i++)
		seed[i] = (uint8_t)(0xa0 + i);
	assert_int_equal(ctl_compose_identity(pair[0], seed), 0);
	recv_one();
	assert_int_equal(M.type, CTL_IDENTITY);
	assert_string_equal(ctl_type_name(M.type), "IDENTITY");
	assert_int_equal(ctl_read_identity(&M, got), 0);
	assert_memory_equal(seed, got, sizeof seed);
	/* exactly 32 bytes, no descriptor */
	send_raw(CTL_IDENTITY, 31, seed, 31, -1);
	recv_one();
	assert_int_equal(ctl_read_identity(&M, got), -1);
	send_raw(CTL_IDENTITY, 33, (uint8_t[33]){ 0 }, 33, -1);
	recv_one();
	assert_int_equal(ctl_read_identity(&M, got), -1);
	send_raw(CTL_IDENTITY, 32, seed, 32, 0);
	recv_one();
	assert_int_equal(ctl_read_identity(&M, got), -1);
	if (M.fd >= 0)
		close(M.fd);
}

static void test_kek(void **st)
{
	uint8_t kek[CTL_KEK_LEN], got[CTL_KEK_LEN];

	(void)st;
	for (size_t i = 0; i < sizeof kek; i++)
		kek[i] = (uint8_t)(0x10 + i);
	assert_int_equal(ctl_compose_kek(pair[0], kek), 0);
	recv_one();
	assert_int_equal(M.type, CTL_KEK);
	assert_string_equal(ctl_type_name(M.type), "KEK");
	assert_int_equal(ctl_read_kek(&M, got), 0);
	assert_memory_equal(kek, got, sizeof kek);
	/* an identity message is not a KEK, nor is a short one */
	assert_int_equal(ctl_compose_identity(pair[0], kek), 0);
	recv_one();
	assert_int_equal(ctl_read_kek(&M, got), -1);
	send_raw(CTL_KEK, 31, kek, 31, -1);
	recv_one();
	assert_int_equal(ctl_read_kek(&M, got), -1);
}

/* The onion address (docs/tor.md): a str, "" allowed, bounded. */
static void test_onion(void **st)
{
	static const char addr[] = "xbny7krpr3tthw7zvfmbz6w4tbnhreijdehujpxqpzlgiw7h3i3maxqd.onion:9443";
	char got[CTL_ONION_MAX], big[CTL_ONION_MAX + 1];

	(void)st;
	assert_int_equal(ctl_compose_onion(pair[0], addr), 0);
	recv_one();
	assert_int_equal(M.type, CTL_ONION);
	assert_string_equal(ctl_type_name(M.type), "ONION");
	assert_int_equal(ctl_read_onion(&M, got), 0);
	assert_string_equal(got, addr);
	assert_int_equal(ctl_compose_onion(pair[0], ""), 0);
	recv_one();
	assert_int_equal(ctl_read_onion(&M, got), 0);
	assert_string_equal(got, "");
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	assert_int_equal(ctl_compose_onion(pair[0], big), -1);   /* too long to send */
	send_raw(CTL_ONION, 1, "\0", 1, -1);                      /* a short str */
	recv_one();
	assert_int_equal(ctl_read_onion(&M, got), -1);
	assert_int_equal(ctl_compose_kek(pair[0], (const uint8_t *)big), 0);  /* not ONION */
	recv_one();
	assert_int_equal(ctl_read_onion(&M, got), -1);
}

static void test_truncated_and_extended(void **st)
{
	ctl_hello h;
	ctl_deps d;

	(void)st;
	send_raw(CTL_DEPS, 1, "\0", 1, -1);            /* one byte short */
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), -1);
	send_raw(CTL_DEPS, 3, "\0\0\0", 3, -1);        /* one byte extra */
	recv_one();
	assert_int_equal(ctl_read_deps(&M, &d), -1);
	send_raw(CTL_READY, 1, "x", 1, -1);            /* an empty message with a body */
	recv_one();
	assert_int_equal(ctl_read_ready(&M), -1);
	send_raw(CTL_HELLO, 3, "\0\5a", 3, -1);        /* string length past the end */
	recv_one();
	assert_int_equal(ctl_read_hello(&M, &h), -1);
	send_raw(CTL_HELLO, 2, "\0\0", 2, -1);         /* an empty build id */
	recv_one();
	assert_int_equal(ctl_read_hello(&M, &h), -1);
}

static void test_bad_frames(void **st)
{
	(void)st;
	/* the header's length disagrees with the datagram */
	send_raw(CTL_READY, 4, "ab", 2, -1);
	assert_int_equal(ctl_recv(pair[1], &M), -1);
	assert_int_equal(errno, EBADMSG);
	/* shorter than a header; the fd that came with it is closed */
	int fd = pair[0];
	assert_int_equal(ipc_send(pair[0], "abc", 3, &fd, 1), 0);
	assert_int_equal(ctl_recv(pair[1], &M), -1);
	assert_int_equal(errno, EBADMSG);
	assert_int_equal(M.fd, -1);
	/* and the channel still works */
	assert_int_equal(ctl_compose_drain(pair[0]), 0);
	recv_one();
	assert_int_equal(ctl_read_drain(&M), 0);
	/* EOF */
	close(pair[0]);
	pair[0] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	assert_int_equal(ctl_recv(pair[1], &M), 0);
}

static void test_unknown_type(void **st)
{
	ctl_hello h;
	ctl_deps d;
	ctl_config c;
	ctl_policy p;

	(void)st;
	send_raw(3, 0, NULL, 0, -1);  /* the retired load report */
	recv_one();
	assert_int_equal(M.type, 3);
	assert_string_equal(ctl_type_name(M.type), "unknown");
	assert_int_equal(ctl_read_hello(&M, &h), -1);
	assert_int_equal(ctl_read_ready(&M), -1);
	assert_int_equal(ctl_read_deps(&M, &d), -1);
	assert_int_equal(ctl_read_config(&M, &c), -1);
	assert_int_equal(ctl_read_drain(&M), -1);
	assert_int_equal(ctl_read_policy(&M, &p), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_header_is_big_endian, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_ready_drain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_with_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_fd_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_onion, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_and_extended, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_frames, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_type, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
