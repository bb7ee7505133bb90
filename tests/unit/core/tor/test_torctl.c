/* tor control-port parsers (src/core/tor/torctl.h): PROTOCOLINFO's AUTH
 * line (methods, a quoted and escaped COOKIEFILE) and the bootstrap phase,
 * with the malformed forms refused. The session itself runs against a
 * fake and a real tor in tests/integration/test_tor.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "core/tor/torctl.h"

static void test_auth(void **state)
{
	unsigned m;
	char path[64];

	(void)state;
	assert_int_equal(torctl_parse_auth("AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="
	                                   "\"/run/tor/control.authcookie\"", &m, path, sizeof path), 0);
	assert_int_equal(m, TORCTL_AUTH_COOKIE | TORCTL_AUTH_SAFE);
	assert_string_equal(path, "/run/tor/control.authcookie");
	assert_int_equal(torctl_parse_auth("AUTH METHODS=NULL", &m, path, sizeof path), 0);
	assert_int_equal(m, TORCTL_AUTH_NULL);
	assert_string_equal(path, "");
	assert_int_equal(torctl_parse_auth("AUTH METHODS=HASHEDPASSWORD,COOKIE COOKIEFILE="
	                                   "\"/a \\\"b\\\\c\"", &m, path, sizeof path), 0);
	assert_int_equal(m, TORCTL_AUTH_PASS | TORCTL_AUTH_COOKIE);
	assert_string_equal(path, "/a \"b\\c");
	/* unknown methods only, an unterminated quote, a path too long, not AUTH */
	assert_int_equal(torctl_parse_auth("AUTH METHODS=MAGIC", &m, path, sizeof path), -1);
	assert_int_equal(torctl_parse_auth("AUTH METHODS=COOKIE COOKIEFILE=\"/x", &m, path,
	                                   sizeof path), -1);
	assert_int_equal(torctl_parse_auth("AUTH METHODS=COOKIE COOKIEFILE=\"/0123456789\"", &m,
	                                   path, 8), -1);
	assert_int_equal(torctl_parse_auth("VERSION Tor=\"0.4.9\"", &m, path, sizeof path), -1);
}

static void test_bootstrap(void **state)
{
	unsigned pct;
	char tag[16];

	(void)state;
	assert_int_equal(torctl_parse_bootstrap("status/bootstrap-phase=NOTICE BOOTSTRAP "
	                                        "PROGRESS=100 TAG=done SUMMARY=\"Done\"", &pct, tag,
	                                        sizeof tag), 0);
	assert_int_equal(pct, 100);
	assert_string_equal(tag, "done");
	assert_int_equal(torctl_parse_bootstrap("status/bootstrap-phase=NOTICE BOOTSTRAP "
	                                        "PROGRESS=14 TAG=handshake", &pct, tag, sizeof tag), 0);
	assert_int_equal(pct, 14);
	const char *bad[] = {
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=101 TAG=done",
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=1000 TAG=done",
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS= TAG=done",
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=5x TAG=done",
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=5",
		"status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=5 TAG=averyveryverylongtag",
		"version=0.4.9 PROGRESS=5 TAG=x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(torctl_parse_bootstrap(bad[i], &pct, tag, sizeof tag), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_bootstrap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
