/*
 * test_svc_sandbox.c — the role profiles (src/svc/svc_sandbox.c) over the
 * mechanism (src/lib/sandbox.c): which directories each keeps under a
 * config, and, in forked children, that the filters kill what they must
 * (execve, a write-open in a front, a new process) and let through what the
 * services need, and that Landlock refuses a path outside the rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/config/config.h"
#include "lib/sandbox.h"
#include "svc/svc_sandbox.h"

#define CHILD_OK       0
#define CHILD_FAILED   1    /* the act the test expected to work did not */
#define CHILD_ESCAPED  2    /* the act the test expected to be stopped was not */

static size_t proc_rules(void)
{
	return svc_sandbox_is_sanitized() ? 1 : 0;   /* /proc, for the sanitizer runtime */
}

static void test_front_paths(void **st)
{
	svc_sandbox_paths sp;
	mn_config c;

	(void)st;
	config_defaults(&c);
	snprintf(c.data_dir, sizeof c.data_dir, "/srv/mn");
	snprintf(c.tls_cert_file, sizeof c.tls_cert_file, "/etc/mn-test-nowhere/cert.pem");
	snprintf(c.tls_key_file, sizeof c.tls_key_file, "/etc/mn-test-nowhere/private/key.pem");
	svc_sandbox_paths_of(&svc_sandbox_front, &c, &sp);
	assert_int_equal(sp.n, 3 + proc_rules());
	assert_string_equal(sp.rule[0].dir, "/srv/mn/auth/keys");
	assert_int_equal(sp.rule[0].access, SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS);
	assert_string_equal(sp.rule[1].dir, "/etc/mn-test-nowhere");
	assert_int_equal(sp.rule[1].access, SANDBOX_FS_READ_FILES);
	assert_string_equal(sp.rule[2].dir, "/etc/mn-test-nowhere/private");
	assert_int_equal(sp.rule[2].access, SANDBOX_FS_READ_FILES);
	for (size_t i = 0; i < sp.n; i++)
		assert_false(sp.rule[i].access & SANDBOX_FS_WRITE);
}

static void test_store_paths(void **st)
{
	static const char *const want[] = { "/srv/mn/objects", "/srv/mn/tmp", "/srv/mn/meta" };
	svc_sandbox_paths sp;
	mn_config c;

	(void)st;
	config_defaults(&c);
	snprintf(c.data_dir, sizeof c.data_dir, "/srv/mn");
	svc_sandbox_paths_of(&svc_sandbox_store, &c, &sp);
	assert_int_equal(sp.n, 3 + proc_rules());
	for (size_t i = 0; i < 3; i++) {
		assert_string_equal(sp.rule[i].dir, want[i]);
		assert_int_equal(sp.rule[i].access,
		                 SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS | SANDBOX_FS_WRITE);
	}
	c.amnesia = true;   /* nothing on disk: no path at all */
	svc_sandbox_paths_of(&svc_sandbox_store, &c, &sp);
	assert_int_equal(sp.n, proc_rules());
}

/* A profile with a data_subdir keeps that one directory, read and write;
 * in amnesia none. */
static void test_data_subdir_paths(void **st)
{
	static const struct { const svc_sandbox_profile *p; const char *dir; } cases[] = {
		{ &svc_sandbox_index, "/srv/mn/index" },     { &svc_sandbox_audit, "/srv/mn/audit" },
		{ &svc_sandbox_mailbox, "/srv/mn/mailbox" }, { &svc_sandbox_social, "/srv/mn/social" },
		{ &svc_sandbox_search, "/srv/mn/search" },
	};
	svc_sandbox_paths sp;
	mn_config c;

	(void)st;
	config_defaults(&c);
	snprintf(c.data_dir, sizeof c.data_dir, "/srv/mn");
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		c.amnesia = false;
		svc_sandbox_paths_of(cases[i].p, &c, &sp);
		assert_int_equal(sp.n, 1 + proc_rules());
		assert_string_equal(sp.rule[0].dir, cases[i].dir);
		assert_int_equal(sp.rule[0].access,
		                 SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS | SANDBOX_FS_WRITE);
		c.amnesia = true;
		svc_sandbox_paths_of(cases[i].p, &c, &sp);
		assert_int_equal(sp.n, proc_rules());
	}
	svc_sandbox_paths_of(&svc_sandbox_dht, &c, &sp);   /* no path, no data_subdir */
	assert_int_equal(sp.n, proc_rules());
}

/* Run act in a child under profile p's filter; its wait status. */
static int run_filtered(const svc_sandbox_profile *p, bool enforce, int (*act)(void))
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		sandbox_filter *f = svc_sandbox_filter(p, enforce);
		char err[128];
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !f ||
		    sandbox_filter_load(f, err, sizeof err) != 0)
			_exit(CHILD_FAILED);
		_exit(act());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static int act_exec(void)
{
	char *const argv[] = { (char *)"true", NULL };

	execv("/bin/true", argv);
	return CHILD_ESCAPED;   /* refused but not killed */
}

static int act_read_open(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return CHILD_FAILED;
	close(fd);
	return CHILD_OK;
}

static int act_write_open(void)
{
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return CHILD_ESCAPED;
}

static int act_fork(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return CHILD_ESCAPED;
}

static void *thread_main(void *arg)
{
	return arg;
}

/* As a lib/workq thread starts: naming itself (prctl PR_SET_NAME). */
static void *thread_named_main(void *arg)
{
	(void)arg;
	return pthread_setname_np(pthread_self(), "mn-test") == 0 ? NULL : (void *)1;
}

static int act_thread_named(void)
{
	pthread_t t;
	void *rc = (void *)1;

	if (pthread_create(&t, NULL, thread_named_main, NULL) != 0 || pthread_join(t, &rc) != 0)
		return CHILD_FAILED;
	return rc == NULL ? CHILD_OK : CHILD_FAILED;
}

static int act_thread(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, thread_main, NULL) != 0)
		return CHILD_FAILED;
	return pthread_join(t, NULL) == 0 ? CHILD_OK : CHILD_FAILED;
}

static void assert_killed(int status)
{
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static void assert_exited_ok(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CHILD_OK);
}

static void test_filters_bite(void **st)
{
	bool enforce = !svc_sandbox_is_sanitized();

	(void)st;
	/* In both modes: no other program, no write-open in a front. */
	for (int log_mode = 0; log_mode < 2; log_mode++) {
		bool e = log_mode ? false : enforce;
		assert_killed(run_filtered(&svc_sandbox_front, e, act_exec));
		assert_killed(run_filtered(&svc_sandbox_store, e, act_exec));
		assert_killed(run_filtered(&svc_sandbox_front, e, act_write_open));
		assert_killed(run_filtered(&svc_sandbox_gateway, e, act_exec));
		assert_killed(run_filtered(&svc_sandbox_gateway, e, act_write_open));
		assert_exited_ok(run_filtered(&svc_sandbox_front, e, act_read_open));
		assert_exited_ok(run_filtered(&svc_sandbox_store, e, act_read_open));
	}
	/* Storage starts its commit threads inside the sandbox, the gateway its
	 * sniff thread; omnigate may not, and no role may start a process
	 * (glibc's fork is clone without CLONE_THREAD: only the enforcing
	 * filter stops it). */
	assert_exited_ok(run_filtered(&svc_sandbox_store, enforce, act_thread));
	assert_exited_ok(run_filtered(&svc_sandbox_gateway, enforce, act_thread));
	assert_exited_ok(run_filtered(&svc_sandbox_gateway, enforce, act_thread_named));
	if (!enforce)
		return;
	assert_killed(run_filtered(&svc_sandbox_front, true, act_thread));
	assert_killed(run_filtered(&svc_sandbox_front, true, act_fork));
	assert_killed(run_filtered(&svc_sandbox_gateway, true, act_fork));
	assert_killed(run_filtered(&svc_sandbox_store, true, act_fork));
}

static void test_landlock_confines(void **st)
{
	char dir[] = "/tmp/mn-sandbox-XXXXXX";
	int abi = sandbox_landlock_abi();

	(void)st;
	if (abi < 2)
		skip();
	assert_non_null(mkdtemp(dir));
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		sandbox_path p = { dir, SANDBOX_FS_READ_FILES | SANDBOX_FS_LIST_DIRS | SANDBOX_FS_WRITE };
		char err[128], file[64];
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    sandbox_landlock(&p, 1, abi, false, err, sizeof err) != 0)
			_exit(CHILD_FAILED);
		snprintf(file, sizeof file, "%s/f", dir);
		int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			_exit(CHILD_FAILED);
		close(fd);
		if (unlink(file) != 0)
			_exit(CHILD_FAILED);
		fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
		_exit(fd < 0 && errno == EACCES ? CHILD_OK : CHILD_ESCAPED);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	rmdir(dir);
	assert_exited_ok(status);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_front_paths),
		cmocka_unit_test(test_store_paths),
		cmocka_unit_test(test_data_subdir_paths),
		cmocka_unit_test(test_filters_bite),
		cmocka_unit_test(test_landlock_confines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
