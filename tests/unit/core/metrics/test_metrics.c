/*
 * test_metrics.c — shared metrics registry: values, histogram buckets,
 * rendering (checked by promtool when installed), sharing across fork, and
 * the failure paths (unknown family, long labels, full table, stuck slot).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/metrics/metrics.h"
#include "core/metrics/metrics_test.h"

#define PROMTOOL "/usr/bin/promtool"
#define LAT_LABELS "service=\"gw\",route=\"/o\",method=\"GET\""

static int setup(void **state)
{
	(void)state;
	metrics_detach();   /* each test starts on a fresh private region */
	return 0;
}

static char *render(void)
{
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(&out, &len), 0);
	assert_non_null(out);
	assert_int_equal(strlen(out), len);   /* no embedded NUL */
	return out;
}

/* Number of times needle occurs in hay. */
static int count_of(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static void assert_rendered(const char *needle)
{
	char *out = render();

	if (count_of(out, needle) != 1)
		fail_msg("expected once in /metrics: <%s>\n---\n%s", needle, out);
	free(out);
}

static uint64_t bug_count(void)
{
	return metrics_value(metrics_get("bug_total", ""));
}

static void test_counter(void **state)
{
	(void)state;
	metrics_series *s = metrics_get("http_requests_total",
	    "service=\"gw\",route=\"/o\",code=\"200\"");

	assert_non_null(s);
	assert_int_equal(metrics_value(s), 0);
	metrics_inc(s, 1);
	metrics_inc(s, 4);
	assert_int_equal(metrics_value(s), 5);
	assert_ptr_equal(metrics_get("http_requests_total",
	    "service=\"gw\",route=\"/o\",code=\"200\""), s);
	metrics_count("http_requests_total", "service=\"gw\",route=\"/o\",code=\"200\"", 2);
	assert_int_equal(metrics_value(s), 7);
	/* Same labels, other family: a different series. */
	assert_ptr_not_equal(metrics_get("rejected_total",
	    "service=\"gw\",route=\"/o\",code=\"200\""), s);
	assert_rendered("\nhttp_requests_total{service=\"gw\",route=\"/o\",code=\"200\"} 7\n");
}

static void test_gauge(void **state)
{
	(void)state;
	metrics_series *g = metrics_get("open_connections", "");

	assert_non_null(g);
	metrics_gauge_set(g, 7);
	assert_int_equal((int64_t)metrics_value(g), 7);
	metrics_gauge_add(g, -10);
	assert_int_equal((int64_t)metrics_value(g), -3);
	metrics_gauge_add(g, 1);
	assert_int_equal((int64_t)metrics_value(g), -2);
	assert_rendered("\nopen_connections -2\n");
	metrics_gauge_set(g, -9000000000);
	assert_rendered("\nopen_connections -9000000000\n");
}

static void test_histogram(void **state)
{
	(void)state;
	metrics_series *h = metrics_get("request_latency_seconds", LAT_LABELS);
	char *out;

	assert_non_null(h);
	metrics_observe(h, 0);        /* le 0.005 */
	metrics_observe(h, 0.005);    /* exactly on the bound: le 0.005 */
	metrics_observe(h, 0.0051);   /* le 0.01 */
	metrics_observe(h, 5);        /* exactly the last bound: le 5 */
	metrics_observe(h, 5.1);      /* +Inf only */
	metrics_observe(h, -1);       /* clock bug: counted as 0 */
	assert_int_equal(metrics_value(h), 6);
	out = render();
	const char *want =
	    "# HELP request_latency_seconds Request latency by service, route template and method.\n"
	    "# TYPE request_latency_seconds histogram\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.005\"} 3\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.01\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.025\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.05\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.1\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.25\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"0.5\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"1\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"2.5\"} 4\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"5\"} 5\n"
	    "request_latency_seconds_bucket{" LAT_LABELS ",le=\"+Inf\"} 6\n"
	    "request_latency_seconds_sum{" LAT_LABELS "} 10.110100000\n"
	    "request_latency_seconds_count{" LAT_LABELS "} 6\n"
	    "# HELP http_requests_total ";
	if (strncmp(out, want, strlen(want)) != 0)
		fail_msg("histogram rendering:\n%s", out);
	free(out);
}

static void test_histogram_no_labels_and_bounds(void **state)
{
	(void)state;
	static const double bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };
	metrics_series *h = metrics_get("request_latency_seconds", "");

	for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
		metrics_observe(h, bounds[i]);   /* one in each bucket */
	assert_rendered("\nrequest_latency_seconds_bucket{le=\"0.025\"} 3\n");
	assert_rendered("\nrequest_latency_seconds_bucket{le=\"2.5\"} 9\n");
	assert_rendered("\nrequest_latency_seconds_bucket{le=\"+Inf\"} 10\n");
	assert_rendered("\nrequest_latency_seconds_sum 9.440000000\n");
	assert_rendered("\nrequest_latency_seconds_count 10\n");
}

static void test_render_sorted_and_empty(void **state)
{
	(void)state;
	char *out;

	metrics_count("rejected_total", "reason=\"b\"", 2);
	metrics_count("rejected_total", "reason=\"a\"", 1);
	metrics_count("rejected_total", "reason=\"c\"", 3);
	metrics_count("tls_handshake_failures_total", "", 4);
	out = render();
	assert_non_null(strstr(out,
	    "# HELP rejected_total Requests or connections refused, by reason.\n"
	    "# TYPE rejected_total counter\n"
	    "rejected_total{reason=\"a\"} 1\n"
	    "rejected_total{reason=\"b\"} 2\n"
	    "rejected_total{reason=\"c\"} 3\n"
	    "# HELP service_restarts_total "));
	/* A family with no series: HELP and TYPE only. */
	assert_non_null(strstr(out,
	    "# TYPE bus_lagged_total counter\n# HELP integrity_fail_total "));
	assert_non_null(strstr(out, "\ntls_handshake_failures_total 4\n"));
	assert_non_null(strstr(out, "\nmetrics_dropped_series_total 0\n"));
	free(out);
}

static void test_unknown_family(void **state)
{
	(void)state;
	assert_int_equal(bug_count(), 0);
	assert_null(metrics_get("no_such_family_total", ""));
	assert_int_equal(bug_count(), 1);
	assert_null(metrics_get(NULL, ""));
	/* Rendered from the header, so not a slot family. */
	assert_null(metrics_get("metrics_dropped_series_total", ""));
	assert_int_equal(bug_count(), 3);
	metrics_count("nope", "", 1);
	assert_int_equal(bug_count(), 4);
	assert_rendered("\nbug_total 4\n");
}

static void test_wrong_type(void **state)
{
	(void)state;
	metrics_series *c = metrics_get("rejected_total", "reason=\"t\"");
	metrics_series *h = metrics_get("request_latency_seconds", "");

	metrics_observe(c, 1.0);
	metrics_gauge_set(c, 9);
	metrics_gauge_add(c, 9);
	metrics_inc(h, 1);
	assert_int_equal(metrics_value(c), 0);
	assert_int_equal(metrics_value(h), 0);
	assert_int_equal(bug_count(), 4);
	/* NULL series are accepted everywhere (the full-table path). */
	metrics_inc(NULL, 1);
	metrics_gauge_set(NULL, 1);
	metrics_gauge_add(NULL, 1);
	metrics_observe(NULL, 1.0);
	assert_int_equal(metrics_value(NULL), 0);
}

static void test_bad_labels(void **state)
{
	(void)state;
	char labels[METRICS_MAX_LABELS + 1];

	memset(labels, 'a', sizeof labels);
	labels[METRICS_MAX_LABELS] = '\0';
	assert_null(metrics_get("rejected_total", labels));
	labels[METRICS_MAX_LABELS - 1] = '\0';   /* longest that fits */
	assert_non_null(metrics_get("rejected_total", labels));
	/* A raw newline would inject a line into /metrics. */
	assert_null(metrics_get("rejected_total", "reason=\"a\nb\""));
	assert_rendered("\nmetrics_dropped_series_total 2\n");
	assert_non_null(metrics_get("rejected_total", NULL));   /* NULL = "" */
}

static void test_table_full(void **state)
{
	(void)state;
	char labels[32];
	metrics_series *first = NULL;

	for (int i = 0; i < METRICS_MAX_SERIES; i++) {
		snprintf(labels, sizeof labels, "reason=\"r%d\"", i);
		metrics_series *s = metrics_get("rejected_total", labels);
		assert_non_null(s);
		if (!first)
			first = s;
	}
	assert_null(metrics_get("rejected_total", "reason=\"one-more\""));
	assert_null(metrics_get("open_connections", ""));
	/* Existing series are still found in a full table. */
	assert_ptr_equal(metrics_get("rejected_total", "reason=\"r0\""), first);
	snprintf(labels, sizeof labels, "reason=\"r%d\"", METRICS_MAX_SERIES - 1);
	assert_non_null(metrics_get("rejected_total", labels));
	assert_rendered("\nmetrics_dropped_series_total 2\n");
	assert_rendered("\nrejected_total{reason=\"r4095\"} 0\n");
}

/* A slot left CLAIMING by a killed writer: lookups give up on it after a
 * bounded wait and use another slot; render skips it, then (if it turns
 * READY after all) sums the duplicate instead of repeating a series. */
static void test_stuck_slot(void **state)
{
	(void)state;
	metrics_series *s = metrics_get("rejected_total", "reason=\"x\"");
	metrics_series *s2;

	metrics_inc(s, 3);
	metrics_test_set_state(s, 1);
	s2 = metrics_get("rejected_total", "reason=\"x\"");
	assert_non_null(s2);
	assert_ptr_not_equal(s2, s);
	assert_ptr_equal(metrics_get("rejected_total", "reason=\"x\""), s2);
	metrics_inc(s2, 5);
	assert_rendered("\nrejected_total{reason=\"x\"} 5\n");
	metrics_test_set_state(s, 2);
	assert_rendered("\nrejected_total{reason=\"x\"} 8\n");
	/* An out-of-range state is never taken for READY. */
	metrics_test_set_state(s, 77);
	assert_rendered("\nrejected_total{reason=\"x\"} 5\n");
}

static void test_label_escape(void **state)
{
	(void)state;
	char buf[32];

	assert_int_equal(metrics_label_escape(buf, sizeof buf, "a\\b\"c\nd"), 0);
	assert_string_equal(buf, "a\\\\b\\\"c\\nd");
	assert_int_equal(metrics_label_escape(buf, sizeof buf, ""), 0);
	assert_string_equal(buf, "");
	assert_int_equal(metrics_label_escape(buf, 4, "abc"), 0);   /* exact fit */
	assert_string_equal(buf, "abc");
	assert_int_equal(metrics_label_escape(buf, 3, "abc"), -1);
	assert_int_equal(metrics_label_escape(buf, 3, "a\""), -1);  /* needs 4 */
	assert_int_equal(metrics_label_escape(buf, 0, ""), -1);
}

/* Child: map the supervisor's region by fd number alone, as an exec'd
 * service would, and count into it. */
static int child_attach_and_count(int fd)
{
	metrics_detach();
	if (metrics_attach(fd) != 0)
		return 10;
	metrics_count("service_restarts_total", "service=\"gw\"", 2);
	metrics_count("service_restarts_total", "service=\"store\"", 7);
	return 0;
}

static void test_shared_across_fork(void **state)
{
	(void)state;
	/* A series cached before create keeps its pointer and its count. */
	metrics_series *s = metrics_get("service_restarts_total", "service=\"gw\"");
	int fd, status;
	pid_t pid;

	metrics_inc(s, 1);
	fd = metrics_create(0);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	assert_int_equal(metrics_value(s), 1);
	metrics_inc(s, 1);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_attach_and_count(fd));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(metrics_value(s), 4);
	assert_int_equal(metrics_value(metrics_get("service_restarts_total",
	    "service=\"store\"")), 7);
	assert_int_equal(metrics_create(0), -1);   /* only once */
	metrics_detach();
	close(fd);
}

static void test_create_then_attach_fresh(void **state)
{
	(void)state;
	int fd = metrics_create(0);

	assert_true(fd >= 0);
	metrics_count("bus_lagged_total", "service=\"idx\"", 9);
	metrics_detach();
	/* The region outlives the mapping while the fd is open. */
	assert_int_equal(metrics_attach(fd), 0);
	assert_int_equal(metrics_value(metrics_get("bus_lagged_total",
	    "service=\"idx\"")), 9);
	metrics_detach();
	close(fd);
}

/* A child maps the annex too: what one process writes there the other reads. */
static int child_annex(int fd)
{
	size_t len;
	unsigned char *p;

	metrics_detach();
	if (metrics_attach(fd) != 0)
		return 10;
	p = metrics_annex(&len);
	if (!p || len != 5000 || p[0] != 0xab || p[4999] != 0)
		return 11;
	p[4999] = 0xcd;
	return 0;
}

static void test_annex_shared(void **state)
{
	(void)state;
	int fd = metrics_create(5000), status, bad;
	unsigned char *p;
	size_t len = 1;
	off_t size;
	pid_t pid;

	assert_true(fd >= 0);
	p = metrics_annex(&len);
	assert_non_null(p);
	assert_int_equal(len, 5000);
	assert_int_equal(p[4999], 0);          /* zero-filled */
	p[0] = 0xab;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_annex(fd));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(p[4999], 0xcd);
	/* A file whose size does not match the annex the header declares. */
	size = lseek(fd, 0, SEEK_END);
	bad = memfd_create("t", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(bad, size + 4096), 0);
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, bad, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(pread(fd, p, (size_t)size, 0), size);
	munmap(p, (size_t)size);
	assert_int_equal(fcntl(bad, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	metrics_detach();
	assert_null(metrics_annex(&len));
	assert_int_equal(len, 0);
	assert_int_equal(metrics_attach(bad), -1);
	close(bad);
	assert_int_equal(metrics_attach(fd), 0);
	assert_non_null(metrics_annex(&len));
	assert_int_equal(len, 5000);
	metrics_detach();
	close(fd);
	/* No annex: none mapped; an oversized one is refused. */
	fd = metrics_create(0);
	assert_true(fd >= 0);
	assert_null(metrics_annex(&len));
	metrics_detach();
	close(fd);
	assert_int_equal(metrics_create((size_t)METRICS_ANNEX_MAX + 1), -1);
	metrics_detach();
}

static void test_attach_refuses(void **state)
{
	(void)state;
	int fd = metrics_create(0);
	off_t size;
	int bad;
	void *p;

	assert_true(fd >= 0);
	size = lseek(fd, 0, SEEK_END);
	metrics_detach();
	assert_int_equal(metrics_attach(-1), -1);
	/* Wrong size. */
	bad = memfd_create("t", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(bad, size - 1), 0);
	assert_int_equal(fcntl(bad, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	assert_int_equal(metrics_attach(bad), -1);
	close(bad);
	/* Right size and sealed, but zero magic. */
	bad = memfd_create("t", MFD_ALLOW_SEALING);
	assert_int_equal(ftruncate(bad, size), 0);
	assert_int_equal(fcntl(bad, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	assert_int_equal(metrics_attach(bad), -1);
	close(bad);
	/* Right contents but shrinkable: a child could SIGBUS the supervisor. */
	bad = memfd_create("t", 0);
	assert_int_equal(ftruncate(bad, size), 0);
	p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, bad, 0);
	assert_true(p != MAP_FAILED);
	assert_int_equal(pread(fd, p, (size_t)size, 0), size);
	munmap(p, (size_t)size);
	assert_int_equal(metrics_attach(bad), -1);
	close(bad);
	assert_int_equal(metrics_attach(fd), 0);
	metrics_detach();
	close(fd);
}

static void test_promtool(void **state)
{
	(void)state;
	char *out;
	FILE *p;
	int st;

	if (access(PROMTOOL, X_OK) != 0)
		skip();
	metrics_observe(metrics_get("request_latency_seconds", LAT_LABELS), 0.2);
	metrics_observe(metrics_get("request_latency_seconds",
	    "service=\"gw\",route=\"/b3/{addr}\",method=\"GET\""), 7);
	metrics_count("http_requests_total", "service=\"gw\",route=\"/o\",code=\"200\"", 3);
	metrics_count("rejected_total", "reason=\"quota\"", 1);
	metrics_gauge_set(metrics_get("ready_state", "state=\"ready\""), 1);
	metrics_gauge_set(metrics_get("build_info",
	    "version=\"0.1.0\",git_sha=\"abc\""), 1);
	metrics_gauge_set(metrics_get("process_start_time_seconds", ""), 1700000000);
	metrics_gauge_add(metrics_get("open_connections", ""), -1);
	metrics_count("config_reloads_total", "result=\"ok\"", 1);
	metrics_gauge_set(metrics_get("service_up", "service=\"gw\""), 1);
	metrics_gauge_set(metrics_get("service_crashloop", "service=\"gw\""), 0);
	metrics_count("bug_total", "", 1);
	metrics_count("integrity_fail_total", "object=\"chunk\"", 1);
	assert_null(metrics_get("rejected_total", "reason=\"a\nb\""));
	out = render();
	p = popen(PROMTOOL " check metrics", "w");
	assert_non_null(p);
	assert_int_equal(fwrite(out, 1, strlen(out), p), strlen(out));
	st = pclose(p);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("promtool rejected:\n%s", out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_counter, setup),
		cmocka_unit_test_setup(test_gauge, setup),
		cmocka_unit_test_setup(test_histogram, setup),
		cmocka_unit_test_setup(test_histogram_no_labels_and_bounds, setup),
		cmocka_unit_test_setup(test_render_sorted_and_empty, setup),
		cmocka_unit_test_setup(test_unknown_family, setup),
		cmocka_unit_test_setup(test_wrong_type, setup),
		cmocka_unit_test_setup(test_bad_labels, setup),
		cmocka_unit_test_setup(test_table_full, setup),
		cmocka_unit_test_setup(test_stuck_slot, setup),
		cmocka_unit_test_setup(test_label_escape, setup),
		cmocka_unit_test_setup(test_shared_across_fork, setup),
		cmocka_unit_test_setup(test_create_then_attach_fresh, setup),
		cmocka_unit_test_setup(test_attach_refuses, setup),
		cmocka_unit_test_setup(test_annex_shared, setup),
		cmocka_unit_test_setup(test_promtool, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
