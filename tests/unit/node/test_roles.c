/* roles: the table of services is consistent, and readiness reads the
 * dependency reports through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "core/config/config.h"
#include "node/node.h"
#include "node/roles.h"

static void test_names_and_entry_points(void **st)
{
	(void)st;
	assert_true(roles_count > 0 && roles_count <= ROLES_MAX);
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];
		assert_non_null(r->name);
		assert_true(r->name[0]);
		/* `macronode __service <name>` reaches this service's ops */
		assert_non_null(r->ops);
		assert_string_equal(r->ops->role, r->name);
		assert_non_null(r->ops->start);
		assert_ptr_equal(role_find(r->name), r);
		assert_non_null(r->sandbox);
		for (size_t j = 0; j < i; j++) {
			assert_string_not_equal(roles[j].name, r->name);
			assert_int_not_equal(roles[j].service_bit, r->service_bit);
		}
	}
	assert_null(role_find("nope"));
}

/* The `services` config list names each role, and names exactly its bit. */
static void test_services_list(void **st)
{
	(void)st;
	for (size_t i = 0; i < roles_count; i++) {
		char json[96], err[CONFIG_ERR_MAX];
		mn_config c;
		config_defaults(&c);
		snprintf(json, sizeof json, "{\"services\":[\"%s\"]}", roles[i].name);
		assert_int_equal(config_load_string(&c, json, "t", err, sizeof err), 0);
		assert_int_equal(c.services, roles[i].service_bit);
		assert_true(role_is_enabled(&roles[i], &c));
		for (size_t j = 0; j < roles_count; j++)
			assert_true(j == i || !role_is_enabled(&roles[j], &c));
		config_free(&c);
	}
}

/* Every tier is a valid one; the services others reach over a UNIX socket
 * drain after every service with a public listener (in-flight requests
 * still need them). */
static void test_drain_tiers_ordered(void **st)
{
	bool front = false;

	(void)st;
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];
		assert_true(r->tier >= 0 && r->tier < ROLE_TIERS);
		front |= r->tier == ROLE_TIER_FRONT;
		if (!r->socket)
			continue;
		for (size_t j = 0; j < roles_count; j++)
			if (roles[j].listen != ROLE_LISTEN_NONE)
				assert_true(roles[j].tier < r->tier);
	}
	assert_true(front);
}

static void test_listeners_and_instances(void **st)
{
	mn_config c;

	(void)st;
	config_defaults(&c);
	c.gateway_workers = 3;
	for (size_t i = 0; i < roles_count; i++) {
		const role *r = &roles[i];
		/* one fd is handed over: a listener or a socket, not both */
		assert_false(r->listen != ROLE_LISTEN_NONE && r->socket);
		assert_true((role_listen_addr(r, &c) != NULL) == (r->listen != ROLE_LISTEN_NONE));
		for (size_t j = 0; j < i; j++)
			assert_true(!r->socket || !roles[j].socket || strcmp(r->socket, roles[j].socket));
		unsigned n = role_instances(r, &c);
		assert_int_equal(n, r->instances == ROLE_INSTANCES_WORKERS ? 3u : r->instances);
		assert_true(n >= 1);
	}
	c.gateway_workers = 0;  /* one per CPU */
	assert_true(role_instances(role_find("gateway"), &c) >= 1);
	assert_string_equal(role_listen_addr(role_find("gateway"), &c), c.gateway_addr);
	assert_string_equal(role_listen_addr(role_find("omnigate"), &c), c.oap_addr);
	assert_true(roles_want_policy(&c));  /* the gateway takes the policy */
	c.services = CONFIG_SVC_STORAGE;
	assert_false(roles_want_policy(&c));
	assert_false(roles_listen_enabled(&c, ROLE_LISTEN_GATEWAY));
	config_free(&c);
}

/* ---- readiness through the rules --------------------------------------- */

static supervisor S;

static void sup_reset(void)
{
	config_free(&S.cfg);
	memset(&S, 0, sizeof S);
	config_defaults(&S.cfg);
	S.cfg.services = CONFIG_SVC_GATEWAY | CONFIG_SVC_STORAGE;
	S.policy.fd = 0;  /* "a bundle is in force": keeps the policy reason out */
	const role *st = role_find("storage"), *gw = role_find("gateway");
	const role *rows[3] = { st, gw, gw };
	for (int i = 0; i < 3; i++) {
		sup_child *c = &S.child[S.nchild++];
		c->role = rows[i];
		c->worker = i == 2;
		c->pid = 100 + i;
		c->state = CHILD_READY;
		c->sup = &S;
	}
}

/* The reasons of /readyz as one string, joined by '|'; the verdict. */
static char *reasons(ready_verdict *v, char *gw_state, size_t len)
{
	static char out[512];
	char *txt = readiness_report(&S, v);
	json_t *j = json_loads(txt, 0, NULL);
	json_t *rs = json_object_get(j, "reasons"), *x;
	size_t i;

	assert_non_null(j);
	out[0] = '\0';
	json_array_foreach(rs, i, x) {
		if (strcmp(json_string_value(x), "entropy: fewer than 128 bits available") == 0)
			continue;  /* a property of the build machine, not of the rules */
		strncat(out, i ? "|" : "", sizeof out - strlen(out) - 1);
		strncat(out, json_string_value(x), sizeof out - strlen(out) - 1);
	}
	snprintf(gw_state, len, "%s", json_string_value(json_object_get(json_object_get(
		json_object_get(json_object_get(j, "deps"), "services"), "gateway"), "state")));
	json_decref(j);
	free(txt);
	return out;
}

static void test_readiness_rules(void **st)
{
	ready_verdict v;
	char gst[16];

	(void)st;
	sup_reset();
	assert_string_equal(reasons(&v, gst, sizeof gst), "");
	assert_string_equal(gst, "ready");

	S.child[1].dep[CTL_DEP_STORAGE] = CTL_DEP_DOWN;
	assert_string_equal(reasons(&v, gst, sizeof gst),
	                    "gateway: storage unreachable from 1 of 2 workers (circuit open)");
	assert_string_equal(gst, "degraded");

	S.child[2].dep[CTL_DEP_STORAGE] = CTL_DEP_DOWN;
	assert_string_equal(reasons(&v, gst, sizeof gst),
	                    "gateway: storage unreachable from 2 of 2 workers (circuit open)");
	assert_string_equal(gst, "down");
	assert_int_equal(v, READY_NOT);

	S.child[1].dep[CTL_DEP_STORAGE] = CTL_DEP_UP;
	S.child[2].dep[CTL_DEP_STORAGE] = CTL_DEP_UP;
	S.child[2].dep[CTL_DEP_CAPACITY] = CTL_DEP_DEGRADED;
	assert_string_equal(reasons(&v, gst, sizeof gst), "gateway: shedding load on 1 of 2 workers");
	assert_string_equal(gst, "degraded");

	/* a worker that is not serving counts for neither rule */
	S.child[2].state = CHILD_STARTING;
	assert_string_equal(reasons(&v, gst, sizeof gst), "gateway: 1 of 2 workers serving");
	/* a dependency the role has no rule for changes nothing */
	S.child[0].dep[CTL_DEP_STORAGE] = CTL_DEP_DOWN;
	assert_string_equal(reasons(&v, gst, sizeof gst), "gateway: 1 of 2 workers serving");
	config_free(&S.cfg);
	memset(&S, 0, sizeof S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_and_entry_points),
		cmocka_unit_test(test_services_list),
		cmocka_unit_test(test_drain_tiers_ordered),
		cmocka_unit_test(test_listeners_and_instances),
		cmocka_unit_test(test_readiness_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
