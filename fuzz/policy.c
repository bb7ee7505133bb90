/*
 * fuzz/policy.c — arbitrary bytes as a policy bundle: the strict parser must
 * refuse or accept without crashing, and an accepted bundle must evaluate
 * one fixed request to a decision with a non-NULL reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

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
	if (!res.reason || (res.decision != POLICY_ALLOW && res.decision != POLICY_DENY))
		abort();
	policy_free(p);
	return 0;
}
