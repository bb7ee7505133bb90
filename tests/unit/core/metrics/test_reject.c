/*
 * test_reject.c — the node's refusal reasons (core/metrics/reject.c): the
 * label values on /metrics, which family counts which reason, series made
 * once and reused, and the cache following the metrics mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/metrics/metrics.h"
#include "core/metrics/reject.h"
#include "core/metrics/reject_test.h"

static int setup(void **state)
{
	(void)state;
	metrics_detach();   /* each test starts on a fresh private region */
	return 0;
}

static uint64_t value(const char *family, const char *reason)
{
	char labels[64];

	snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
	return metrics_value(metrics_get(family, labels));
}

static bool rendered(const char *needle)
{
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(metrics_render(&out, &len), 0);
	bool found = strstr(out, needle) != NULL;
	free(out);
	return found;
}

/* The label values are the interface (docs/metrics.md): every one spelled
 * here once, and never "none" for a real reason. */
static void test_names(void **state)
{
	static const char *const want[REJECT_COUNT] = {
		"none", "413", "414", "415", "429", "431", "503", "501", "timeout", "conn_cap",
		"bad_request", "unauth", "forbidden", "quota", "decompress", "integrity",
		"peercred", "malformed", "too_large", "protocol", "hello", "inflight",
		"h2_protocol", "h2_flood", "h2_rate", "h2_stall", "cors_origin",
	};

	(void)state;
	for (int r = 0; r < REJECT_COUNT; r++)
		assert_string_equal(reject_name((reject_reason)r), want[r]);
	assert_string_equal(reject_name(REJECT_COUNT), "none");
	assert_string_equal(reject_name((reject_reason)-1), "none");
}

static void test_families(void **state)
{
	(void)state;
	reject_count(REJECT_FAMILY_NODE, REJECT_UNAUTH);
	reject_count(REJECT_FAMILY_NODE, REJECT_UNAUTH);
	reject_count(REJECT_FAMILY_OAP, REJECT_UNAUTH);
	assert_int_equal(value("rejected_total", "unauth"), 2);
	assert_int_equal(value("oap_rejected_total", "unauth"), 1);
	assert_int_equal(reject_value(REJECT_FAMILY_NODE, REJECT_UNAUTH), 2);
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_UNAUTH), 1);
	/* HTTP-only and OAP-only reasons stay in their own family; NONE counts
	 * nowhere; out-of-range input is ignored. */
	reject_count(REJECT_FAMILY_OAP, REJECT_431);
	reject_count(REJECT_FAMILY_NODE, REJECT_HELLO);
	reject_count(REJECT_FAMILY_NODE, REJECT_NONE);
	reject_count(REJECT_FAMILY_NODE, REJECT_COUNT);
	reject_count(REJECT_FAMILIES, REJECT_413);
	assert_false(rendered("oap_rejected_total{reason=\"431\"}"));
	assert_false(rendered("\nrejected_total{reason=\"hello\"}"));
	assert_false(rendered("reason=\"none\""));
	assert_int_equal(reject_value(REJECT_FAMILY_OAP, REJECT_431), 0);
}

/* A rejected_total series exists only once its reason was counted (as
 * before the table); reject_prepare puts a family's every reason on
 * /metrics at 0 (OAP/1's start-up). */
static void test_lazy_and_prepare(void **state)
{
	(void)state;
	assert_false(rendered("\nrejected_total{reason=\"quota\"}"));
	reject_count(REJECT_FAMILY_NODE, REJECT_QUOTA);
	assert_true(rendered("\nrejected_total{reason=\"quota\"} 1\n"));
	assert_false(rendered("oap_rejected_total{reason=\"hello\"}"));
	reject_prepare(REJECT_FAMILY_OAP);
	assert_true(rendered("\noap_rejected_total{reason=\"hello\"} 0\n"));
	assert_true(rendered("\noap_rejected_total{reason=\"413\"} 0\n"));
	assert_false(rendered("oap_rejected_total{reason=\"503\"}"));
	assert_false(rendered("\nrejected_total{reason=\"hello\"}"));
}

/* Cached slots belong to one mapping: after the region changes, counting
 * goes to the new one, never through a stale pointer. */
static void test_cache_follows_mapping(void **state)
{
	(void)state;
	reject_count(REJECT_FAMILY_NODE, REJECT_413);
	assert_int_equal(value("rejected_total", "413"), 1);
	metrics_detach();
	reject_count(REJECT_FAMILY_NODE, REJECT_413);
	assert_int_equal(value("rejected_total", "413"), 1);
	assert_int_equal(reject_value(REJECT_FAMILY_NODE, REJECT_413), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup(test_families, setup),
		cmocka_unit_test_setup(test_lazy_and_prepare, setup),
		cmocka_unit_test_setup(test_cache_follows_mapping, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
