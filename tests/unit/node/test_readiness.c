/*
 * readiness.c against the SPIN model (models/readiness.pml): every state of
 * the model's table (tests/vectors/readiness_table.txt, which `make models`
 * regenerates from the model and diffs) is built as a supervisor and walked
 * through readiness_report; the C verdict must be the model's on every row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "node/node.h"
#include "node/roles.h"

#define TABLE MN_TEST_VECTORS "/readiness_table.txt"
#define GW_TOTAL 2     /* as the model */

enum { F_GW_UP, F_GW_LOOP, F_GW_CUT, F_LOAD, F_ST_UP, F_ST_LOOP, F_POLICY, F_DRAINING,
       F_PARITY, F_ENTROPY, F_DHT, F_VERDICT, F_COUNT };
enum { DHT_OFF, DHT_DOWN, DHT_LOOP, DHT_BOOT, DHT_UP };   /* as the model */

static supervisor S;
static int entropy_bits;

static int probe(void)
{
	return entropy_bits;
}

static sup_child *add_child(const char *role_name, int worker, bool up)
{
	sup_child *c = &S.child[S.nchild++];

	c->role = role_find(role_name);
	c->worker = worker;
	c->pid = 100 + (pid_t)S.nchild;      /* forked: starting or serving */
	c->state = up ? CHILD_READY : CHILD_STARTING;
	snprintf(c->build_id, sizeof c->build_id, "%s", ctl_build_id());
	c->sup = &S;
	return c;
}

/* The supervisor a model state describes. */
static void build(const int f[F_COUNT])
{
	config_free(&S.cfg);
	memset(&S, 0, sizeof S);
	config_defaults(&S.cfg);
	S.cfg.services = CONFIG_SVC_GATEWAY | CONFIG_SVC_STORAGE;
	S.entropy_probe = probe;
	entropy_bits = f[F_ENTROPY] ? 256 : 64;
	S.policy.fd = f[F_POLICY] ? 0 : -1;
	S.draining = f[F_DRAINING];
	sup_child *st = add_child("storage", 0, f[F_ST_UP]);
	st->crashloop = f[F_ST_LOOP];
	for (int i = 0; i < GW_TOTAL; i++) {
		bool up = i < f[F_GW_UP];
		sup_child *gw = add_child("gateway", i, up);
		gw->crashloop = f[F_GW_LOOP] && i == 0;
		/* the first gw_cut serving workers have their storage circuit open */
		if (up && i < f[F_GW_CUT])
			gw->dep[CTL_DEP_STORAGE] = CTL_DEP_DOWN;
		/* load at the facet threshold: every serving worker sheds */
		if (up && f[F_LOAD] >= 3)
			gw->dep[CTL_DEP_CAPACITY] = CTL_DEP_DEGRADED;
	}
	if (!f[F_PARITY])
		snprintf(st->build_id, sizeof st->build_id, "0.0.0+other");
	if (f[F_DHT] != DHT_OFF) {
		/* serving when bootstrapping or up; reporting CTL_DEP_DHT degraded
		 * while its routing table is empty */
		S.cfg.services |= CONFIG_SVC_DHT;
		sup_child *dht = add_child("dht", 0, f[F_DHT] >= DHT_BOOT);
		dht->crashloop = f[F_DHT] == DHT_LOOP;
		if (f[F_DHT] == DHT_BOOT)
			dht->dep[CTL_DEP_DHT] = CTL_DEP_DEGRADED;
	}
}

static void test_model_table(void **state)
{
	FILE *fp = fopen(TABLE, "r");
	char line[256];
	size_t rows = 0, seen[3] = { 0 };

	(void)state;
	assert_non_null(fp);
	while (fgets(line, sizeof line, fp)) {
		int f[F_COUNT];
		if (line[0] == '#')
			continue;
		assert_int_equal(sscanf(line, "%d %d %d %d %d %d %d %d %d %d %d %d", &f[0], &f[1], &f[2],
		                        &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10],
		                        &f[11]),
		                 F_COUNT);
		build(f);
		ready_verdict v;
		free(readiness_report(&S, &v));
		if ((int)v != f[F_VERDICT])
			fail_msg("model and readiness.c disagree on row %zu: %s(model %d, C %d)",
			         rows + 1, line, f[F_VERDICT], (int)v);
		seen[v]++;
		rows++;
	}
	fclose(fp);
	/* The whole table, and every verdict reached. */
	assert_int_equal(rows, 3840 * 5);
	assert_true(seen[READY_OK] > 0 && seen[READY_DEGRADED] > 0 && seen[READY_NOT] > 0);
	config_free(&S.cfg);
	memset(&S, 0, sizeof S);
}

/* Outside the model: a front whose holder-proof replay table failed
 * (CTL_DEP_ZK, docs/zk.md) degrades the node and says why; the others
 * serving keep it ready. */
static void test_zk_dep_degrades(void **state)
{
	const int ok[F_COUNT] = { [F_GW_UP] = GW_TOTAL, [F_ST_UP] = 1, [F_POLICY] = 1,
	                          [F_PARITY] = 1, [F_ENTROPY] = 1 };
	ready_verdict v;
	char *r;

	(void)state;
	build(ok);
	free(readiness_report(&S, &v));
	assert_int_equal(v, READY_OK);
	for (size_t i = 0; i < S.nchild; i++)
		if (S.child[i].role == role_find("gateway") && S.child[i].worker == 1)
			S.child[i].dep[CTL_DEP_ZK] = CTL_DEP_DEGRADED;
	r = readiness_report(&S, &v);
	assert_int_equal(v, READY_DEGRADED);
	assert_non_null(strstr(r, "gateway: holder proofs unavailable (zk replay table) on 1 of 2 "
	                          "workers: holder-bound tokens refused"));
	free(r);
	config_free(&S.cfg);
	memset(&S, 0, sizeof S);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_table),
		cmocka_unit_test(test_zk_dep_degrades),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
