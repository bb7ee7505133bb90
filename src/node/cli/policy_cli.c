/*
 * policy_cli.c — `macronode policy keygen|sign|verify|eval`.
 *
 * Exit codes: 0 success (eval: allow), 1 refused or failed (eval: deny;
 * verify: the bundle or its signature is refused), 2 usage error (eval: also
 * a bundle that cannot be loaded). Key material is never printed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth/policy.h"
#include "core/auth/policy_sign.h"
#include "lib/util.h"
#include "node/node.h"

#define PCLI_EXIT_FAIL  1
#define PCLI_EXIT_USAGE 2
#define PCLI_ERR_LEN    512

static const char policy_usage[] =
	"usage: macronode policy COMMAND [options]\n"
	"\n"
	"  keygen --out PREFIX          write PREFIX.key (secret, sealed under the KEK,\n"
	"                               0600) and PREFIX.pub\n"
	"  sign BUNDLE --key FILE       write BUNDLE.sig (Ed25519 over BLAKE3 of BUNDLE)\n"
	"  verify BUNDLE --pub FILE     check BUNDLE.sig and the bundle schema\n"
	"  eval BUNDLE [--pub FILE] --method M [--region R] [--bytes N]\n"
	"       [--tag T]... [--tenant T]\n"
	"                               print the decision, reason, rule and trace;\n"
	"                               without --pub the signature is NOT checked\n"
	"\n"
	"exit: 0 ok/allow, 1 refused/deny, 2 usage or unloadable bundle\n"
	"The KEK is found as `run` finds it (RON_CONFIG, RON_KEK_FILE; docs/keys.md).\n"
	"File formats: docs/policy.md.\n";

static int pcli_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "macronode policy: %s%s%s\n(see `macronode policy --help`)\n",
	        msg, arg ? " " : "", arg ? arg : "");
	return PCLI_EXIT_USAGE;
}

static int pcli_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' }, { NULL, 0, NULL, 0 },
	};
	char err[PCLI_ERR_LEN];
	const char *out = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'o')
			return pcli_usage("keygen: bad option", NULL);
		out = optarg;
	}
	if (!out || optind != argc)
		return pcli_usage("keygen: need --out PREFIX and nothing else", NULL);
	bool failed;
	kek *k = cli_kek_lookup("macronode policy keygen", &failed);
	int r = failed ? -1 : policy_keygen_files(out, k, err, sizeof err);
	kek_free(k);
	if (failed)
		return PCLI_EXIT_FAIL;
	if (r != 0) {
		fprintf(stderr, "macronode policy keygen: %s\n", err);
		return PCLI_EXIT_FAIL;
	}
	printf("wrote %s.key (secret, sealed, 0600) and %s.pub\n", out, out);
	return 0;
}

static int pcli_sign(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "key", required_argument, NULL, 'k' }, { NULL, 0, NULL, 0 },
	};
	char err[PCLI_ERR_LEN];
	const char *key = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return pcli_usage("sign: bad option", NULL);
		key = optarg;
	}
	if (!key || optind != argc - 1)
		return pcli_usage("sign: need BUNDLE --key FILE", NULL);
	bool failed;
	kek *k = cli_kek_lookup("macronode policy sign", &failed);
	int r = failed ? -1 : policy_sign_file(argv[optind], key, k, err, sizeof err);
	kek_free(k);
	if (failed)
		return PCLI_EXIT_FAIL;
	if (r != 0) {
		fprintf(stderr, "macronode policy sign: %s\n", err);
		return PCLI_EXIT_FAIL;
	}
	printf("wrote %s%s\n", argv[optind], POLICY_SIG_SUFFIX);
	return 0;
}

static int pcli_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pub", required_argument, NULL, 'p' }, { NULL, 0, NULL, 0 },
	};
	char err[PCLI_ERR_LEN];
	const char *pub = NULL;
	policy *p;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'p')
			return pcli_usage("verify: bad option", NULL);
		pub = optarg;
	}
	if (!pub || optind != argc - 1)
		return pcli_usage("verify: need BUNDLE --pub FILE", NULL);
	if (policy_load(argv[optind], pub, 0, &p, err, sizeof err) != 0) {
		fprintf(stderr, "macronode policy verify: %s\n", err);
		return PCLI_EXIT_FAIL;
	}
	printf("ok: %s version %" PRIu64 ", %zu rules, signature valid\n",
	       argv[optind], policy_version(p), policy_rule_count(p));
	policy_free(p);
	return 0;
}

typedef struct {
	const char *tags[POLICY_MAX_TAGS];
	policy_ctx ctx;
	const char *pub;
	const char *bundle;
} eval_args;

static int eval_parse(int argc, char **argv, eval_args *a)
{
	static const struct option opts[] = {
		{ "pub", required_argument, NULL, 'p' }, { "method", required_argument, NULL, 'm' },
		{ "region", required_argument, NULL, 'r' }, { "bytes", required_argument, NULL, 'b' },
		{ "tag", required_argument, NULL, 't' }, { "tenant", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': a->pub = optarg; break;
		case 'm': a->ctx.method = optarg; break;
		case 'r': a->ctx.region = optarg; break;
		case 'T': a->ctx.tenant = optarg; break;
		case 'b':
			if (util_parse_u64(optarg, &a->ctx.body_bytes) != 0)
				return pcli_usage("eval: --bytes wants a non-negative integer, got", optarg);
			break;
		case 't':
			if (a->ctx.ntags == POLICY_MAX_TAGS)
				return pcli_usage("eval: too many --tag", NULL);
			a->tags[a->ctx.ntags++] = optarg;
			break;
		default:
			return pcli_usage("eval: bad option", NULL);
		}
	}
	if (!a->ctx.method || optind != argc - 1)
		return pcli_usage("eval: need BUNDLE --method M", NULL);
	a->ctx.tags = a->tags;
	a->bundle = argv[optind];
	return 0;
}

static policy *eval_load(const eval_args *a)
{
	char err[PCLI_ERR_LEN];
	policy *p = NULL;

	if (a->pub) {
		if (policy_load(a->bundle, a->pub, 0, &p, err, sizeof err) != 0)
			fprintf(stderr, "macronode policy eval: %s\n", err);
		return p;
	}
	fprintf(stderr, "macronode policy eval: warning: no --pub, signature not checked\n");
	char *buf;
	size_t len;
	if (util_read_file(a->bundle, POLICY_MAX_BYTES, &buf, &len) != 0) {
		fprintf(stderr, "macronode policy eval: %s: %s\n", a->bundle, strerror(errno));
		return NULL;
	}
	if (!(p = policy_parse(buf, len, err, sizeof err)))
		fprintf(stderr, "macronode policy eval: %s: %s\n", a->bundle, err);
	free(buf);
	return p;
}

static void on_trace(void *arg, const char *rule_id, const char *outcome)
{
	(void)arg;
	if (!rule_id)
		printf("trace: defaults.max_body_bytes: %s\n", outcome);
	else
		printf("trace: rule %s: %s\n", rule_id, outcome);
}

static int pcli_eval(int argc, char **argv)
{
	eval_args a;
	policy_result res;
	policy *p;

	memset(&a, 0, sizeof a);
	if (eval_parse(argc, argv, &a) != 0)
		return PCLI_EXIT_USAGE;
	if (!(p = eval_load(&a)))
		return PCLI_EXIT_USAGE;
	policy_eval(p, &a.ctx, &res, on_trace, NULL);
	printf("decision: %s\nreason: %s\nrule: %s\n", policy_decision_name(res.decision),
	       res.reason ? res.reason : "(none)", res.rule_id ? res.rule_id : "(none)");
	policy_free(p);
	return res.decision == POLICY_ALLOW ? 0 : PCLI_EXIT_FAIL;
}


/* argv[0] is "policy", argv[1] the subcommand. */
int policy_cli_main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
		{ "keygen", pcli_keygen }, { "sign", pcli_sign },
		{ "verify", pcli_verify }, { "eval", pcli_eval },
	};

	if (argc < 2)
		return pcli_usage("missing command", NULL);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(policy_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		if (strcmp(argv[1], cmds[i].name) == 0) {
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	return pcli_usage("unknown command", argv[1]);
}
