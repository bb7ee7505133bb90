/*
 * fuzz/policy.c — arbitrary bytes as a policy bundle: the strict parser must
 * refuse or accept without crashing, and an accepted bundle must evaluate
 * one fixed request to a decision with a non-NULL reason; and the limit
 * policy_body_limit claims for a body of unknown size must agree with
 * policy_eval at a few sizes up to it and just past it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/auth/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void check_body_limit(const policy *p, const policy_ctx *base)
{
	policy_ctx c = *base;
	policy_result res;
	uint64_t limit;

	if (!policy_body_limit(p, base, &limit)) {
		c.body_bytes = 0;
		policy_eval(p, &c, &res, NULL, NULL);
		if (res.decision != POLICY_DENY)
			abort();
		return;
	}
	const uint64_t probe[] = { 0, limit / 2, limit };
	for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++) {
		c.body_bytes = probe[i];
		policy_eval(p, &c, &res, NULL, NULL);
		if (res.decision != POLICY_ALLOW)
			abort();
	}
	if (limit != UINT64_MAX) {
		c.body_bytes = limit + 1;
		policy_eval(p, &c, &res, NULL, NULL);
		if (res.decision != POLICY_DENY)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const char *const tags[] = { "paid", "verified" };
	const policy_ctx ctx = {
		.method = "PUT", .region = "EU", .body_bytes = 512,
		.tags = tags, .ntags = 2, .tenant = "t1",
	};
	policy_result res;
	char err[256];
	policy *p = policy_parse(d, n, err, sizeof err);

	if (!p)
		return 0;
	policy_eval(p, &ctx, &res, NULL, NULL);
	/* No reason only when a rule without one decided (as the reference). */
	if ((!res.reason && !res.rule_id) ||
	    (res.decision != POLICY_ALLOW && res.decision != POLICY_DENY))
		abort();
	check_body_limit(p, &ctx);
	policy_free(p);
	return 0;
}
