/* The process hardening every macronode command runs first (cli.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "node/node.h"

static void test_harden_process(void **st)
{
	struct rlimit rl;
	(void)st;
	/* The test runner may leave cores on; the call must turn them off. */
	assert_int_equal(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
	cli_harden_process();
	assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
	assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
	assert_true(rl.rlim_cur == 0 && rl.rlim_max == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_harden_process),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
