/*
 * init_cli.c — `macronode init`: the first run of a new operator.
 *
 * Creates what the wall needs before the node can take a write: one
 * capability MAC key (kid k1), a policy signing keypair and a signed default
 * bundle (anonymous GET/HEAD of objects, everything else needs a token), and
 * prints one write token. It never overwrites: an existing key or bundle is a
 * refusal naming the file, and every new file is published with link(2),
 * which fails if the name exists, so a file that appeared after the check is
 * not clobbered either.
 *
 * Crash safety: each file is written under a dot-name in its directory,
 * fsync'd, linked to its final name, and the directory fsync'd, so a reader
 * sees the whole file or none. A failure part-way removes what this run
 * created, so the operator can simply run init again.
 *
 * Secrets: the MAC key and the token live in sodium secure memory and are
 * wiped; the token goes to stdout only (written with write(2), not through a
 * stdio buffer), never to stderr. Error messages name files, never content.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/config/config.h"
#include "core/auth/policy.h"
#include "core/auth/policy_sign.h"
#include "core/identity/identity.h"
#include "lib/util.h"
#include "core/keys/keyfile.h"
#include "node/node.h"

#define INIT_EXIT_FAIL   1
#define INIT_EXIT_USAGE  2
#define INIT_ERR_LEN     (CONFIG_ERR_MAX + PATH_MAX)
#define INIT_KID         "k1"
#define INIT_TENANT      "owner"
#define INIT_PREFIX      "/o"
#define INIT_TOKEN_TTL_S (30u * 86400u)   /* a month: long enough to set up real tokens */
#define INIT_TID_BYTES   16
#define INIT_MAX_CREATED 8
#define INIT_KEY_SUFFIX  ".key"
#define INIT_DIR_MODE    0700
#define INIT_KEY_MODE    0600
#define INIT_BUNDLE_MODE 0644

static const char init_usage[] =
	"usage: macronode init [--config FILE] [--data-dir DIR] [--if-needed]\n"
	"\n"
	"First run of a new node. Creates, and never overwrites:\n"
	"  <data_dir>.kek                     the key-encryption key, mode 0400, unless\n"
	"                                     keys.kek_file / RON_KEK_FILE or a systemd\n"
	"                                     credential names one (docs/keys.md)\n"
	"  <keys_dir>/k1.key                  capability MAC key, kid k1 (sealed, 0600)\n"
	"  <data_dir>/policy/signing.key|.pub policy signing keypair (key sealed, 0600)\n"
	"  <bundle> and <bundle>.sig          the default policy, signed: anyone may GET\n"
	"                                     or HEAD objects, everything else needs a token\n"
	"  <data_dir>/node/identity.key       the node's Ed25519 identity (sealed, 0600; kept\n"
	"                                     when a first run already made it)\n"
	"and prints one write token (expires in 30 days; shown once, not stored).\n"
	"Refused when a key or the bundle already exists, when policy.pubkey_file\n"
	"names a key init does not create, and in amnesia mode.\n"
	"\n"
	"options:\n"
	"  --config FILE   JSON config file (env RON_CONFIG); RON_* variables apply as for run\n"
	"  --data-dir DIR  data directory (env RON_DATA_DIR)\n"
	"  --amnesia       amnesia mode (env RON_AMNESIA): init refuses it\n"
	"  --if-needed     unattended (the unit's ExecStartPre): initialise only when nothing\n"
	"                  of the node exists, without printing a token (stdout may be a\n"
	"                  log; mint one with `macronode token mint`); exit 0 doing nothing\n"
	"                  when it is initialised, in amnesia mode, when policy.pubkey_file\n"
	"                  is the operator's, or when it is partly set up (/readyz says what\n"
	"                  it lacks)\n"
	"  -h, --help      this text\n"
	"\n"
	"exit: 0 created (or, with --if-needed, nothing to do), 1 refused or failed,\n"
	"2 usage or config error\n";

/*
 * The default bundle. The wall tags every request to an object route "core"
 * and every request with a verified capability token "token"; a deny of a
 * request without a token is answered 401, so anonymous writers are told to
 * authenticate rather than that they are forbidden.
 */
static const char init_bundle[] =
	"{\n"
	"  \"version\": 1,\n"
	"  \"defaults\": {\"default_action\": \"deny\"},\n"
	"  \"rules\": [\n"
	"    {\"id\": \"anonymous-get\", \"when\": {\"method\": \"GET\", \"require_tags_all\": [\"core\"]},\n"
	"     \"action\": \"allow\", \"reason\": \"objects are public to read\"},\n"
	"    {\"id\": \"anonymous-head\", \"when\": {\"method\": \"HEAD\", \"require_tags_all\": [\"core\"]},\n"
	"     \"action\": \"allow\", \"reason\": \"objects are public to read\"},\n"
	"    {\"id\": \"token-holders\", \"when\": {\"method\": \"*\", \"require_tags_all\": [\"core\", \"token\"]},\n"
	"     \"action\": \"allow\", \"reason\": \"capability token presented\"},\n"
	"    {\"id\": \"facet-token-holders\", \"when\": {\"method\": \"*\", \"require_tags_all\": [\"facet\", \"token\"]},\n"
	"     \"action\": \"allow\", \"reason\": \"the facets (graph, feed, media, search) for token holders\"},\n"
	"    {\"id\": \"peer-replicate\", \"when\": {\"method\": \"POST\", \"require_tags_all\": [\"core\", \"peer\"]},\n"
	"     \"action\": \"allow\", \"reason\": \"other nodes on the peer plane ask for copies (REPLICATE)\"}\n"
	"  ]\n"
	"}\n";

static const char *const init_methods[] = { "GET", "HEAD", "PUT", "POST" };

/* Every path init touches, resolved once from the effective config. */
typedef struct {
	char keys_dir[PATH_MAX];
	char key_file[PATH_MAX];       /* <keys_dir>/k1.key */
	char policy_dir[PATH_MAX];     /* directory of the signing key */
	char signing_prefix[PATH_MAX]; /* <policy_dir>/signing */
	char signing_key[PATH_MAX];
	char signing_pub[PATH_MAX];
	char pubkey[PATH_MAX];         /* the public key the node will trust */
	char bundle[PATH_MAX];
	char bundle_dir[PATH_MAX];
	char bundle_sig[PATH_MAX];
} init_paths;

/* Files this run created, removed again if a later step fails. */
typedef struct {
	const char *path[INIT_MAX_CREATED];
	size_t n;
} init_created;

/* Secrets of one run, all in sodium secure memory (the KEK: kek.h). */
typedef struct {
	uint8_t *key;     /* CAPTOKEN_KEY_LEN bytes */
	char    *token;   /* CAPTOKEN_MAX_TOKEN + 1 */
	kek     *kek;     /* seals every key file init writes */
	bool     kek_created;
	char     kek_path[CONFIG_PATH_MAX];
} init_secrets;

static int fmt_path(char *out, size_t len, const char *a, const char *b)
{
	int n = snprintf(out, len, "%s%s", a, b);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* out = the directory part of path ("." when there is none). */
static int dir_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;

	if (slash && n == 0)
		n = 1;   /* "/file": the root */
	if (!slash)
		return fmt_path(out, len, ".", "");
	if (n >= len)
		return -1;
	memcpy(out, path, n);
	out[n] = '\0';
	return 0;
}

static int resolve_paths(const mn_config *c, init_paths *p)
{
	size_t n;

	if (config_keys_dir(c, p->keys_dir, sizeof p->keys_dir) != 0 ||
	    config_policy_file(c, p->bundle, sizeof p->bundle) != 0 ||
	    config_policy_signing_key(c, p->signing_key, sizeof p->signing_key) != 0 ||
	    config_policy_pubkey(c, p->pubkey, sizeof p->pubkey) != 0)
		return -1;
	n = strlen(p->signing_key) - strlen(INIT_KEY_SUFFIX);
	memcpy(p->signing_prefix, p->signing_key, n);
	p->signing_prefix[n] = '\0';
	if (fmt_path(p->key_file, sizeof p->key_file, p->keys_dir, "/" INIT_KID INIT_KEY_SUFFIX) != 0 ||
	    fmt_path(p->signing_pub, sizeof p->signing_pub, p->signing_prefix, ".pub") != 0 ||
	    fmt_path(p->bundle_sig, sizeof p->bundle_sig, p->bundle, POLICY_SIG_SUFFIX) != 0 ||
	    dir_of(p->signing_key, p->policy_dir, sizeof p->policy_dir) != 0)
		return -1;
	return dir_of(p->bundle, p->bundle_dir, sizeof p->bundle_dir);
}

/*
 * init can only sign with the key it creates; a bundle signed by it would be
 * refused by a node that trusts another public key.
 */
static int check_pubkey(const init_paths *p)
{
	if (strcmp(p->pubkey, p->signing_pub) == 0)
		return 0;
	fprintf(stderr, "macronode init: refusing: policy.pubkey_file is %s, but init creates "
	        "its signing key at %s and cannot sign for a key it does not hold; sign the "
	        "bundle with your own key (`macronode policy sign`, docs/policy.md) or unset "
	        "policy.pubkey_file\n", p->pubkey, p->signing_key);
	return -1;
}

static int refuse_existing(const char *path)
{
	fprintf(stderr, "macronode init: refusing: %s already exists; this node looks "
	        "initialised and init never overwrites (docs/auth.md)\n", path);
	return -1;
}

/* -1 (message printed) when path exists or cannot be checked. */
static int check_absent(const char *path)
{
	struct stat st;

	if (lstat(path, &st) == 0)
		return refuse_existing(path);
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	fprintf(stderr, "macronode init: %s: %s\n", path, strerror(errno));
	return -1;
}

static bool has_key_suffix(const char *name)
{
	size_t n = strlen(name), sl = strlen(INIT_KEY_SUFFIX);

	return n > sl && strcmp(name + n - sl, INIT_KEY_SUFFIX) == 0;
}

/* Any <kid>.key in the keys dir means capability keys are already set up. */
static int check_no_keys(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);
	int r = 0;

	if (!d && (errno == ENOENT || errno == ENOTDIR))
		return check_absent(dir);   /* absent is fine; a file in its place is not */
	if (!d) {
		fprintf(stderr, "macronode init: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (!has_key_suffix(de->d_name))
			continue;
		int n = snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		r = refuse_existing(n < 0 || (size_t)n >= sizeof path ? dir : path);
	}
	closedir(d);
	return r;
}

/* Whether dir holds a <kid>.key. */
static bool keys_dir_has_key(const char *dir)
{
	struct dirent *de;
	bool key = false;
	DIR *d = opendir(dir);

	if (!d)
		return false;
	while (!key && (de = readdir(d)) != NULL)
		key = has_key_suffix(de->d_name);
	closedir(d);
	return key;
}

/* The bundle is there and the keys dir holds a capability key. */
static bool initialised(const init_paths *p)
{
	struct stat st;

	return lstat(p->bundle, &st) == 0 && keys_dir_has_key(p->keys_dir);
}

static int check_fresh(const init_paths *p)
{
	if (check_no_keys(p->keys_dir) != 0)
		return -1;
	const char *files[] = { p->bundle, p->bundle_sig, p->signing_key, p->signing_pub };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (check_absent(files[i]) != 0)
			return -1;
	return 0;
}

/* An existing bundle directory outside the data dir is the operator's: leave its mode. */
static int ensure_dirs(const mn_config *c, const init_paths *p)
{
	const char *dirs[] = { c->data_dir, p->keys_dir, p->policy_dir };
	char err[INIT_ERR_LEN];
	struct stat st;

	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (util_ensure_dir(dirs[i], INIT_DIR_MODE, err, sizeof err) != 0)
			goto fail;
	if (stat(p->bundle_dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (util_ensure_dir(p->bundle_dir, INIT_DIR_MODE, err, sizeof err) == 0)
		return 0;
fail:
	fprintf(stderr, "macronode init: %s\n", err);
	return -1;
}

/*
 * Publish data at path atomically and without replacing anything
 * (UTIL_WRITE_NOREPLACE: link(2) fails with EEXIST where rename(2) would
 * silently overwrite).
 */
static int write_atomic(const char *path, const void *data, size_t len, mode_t mode,
                        init_created *cr)
{
	char tmp[PATH_MAX];

	if (util_tmp_name(path, tmp, sizeof tmp) != 0) {
		fprintf(stderr, "macronode init: %s: path too long\n", path);
		return -1;
	}
	switch (util_write_atomic(path, data, len, mode, UTIL_WRITE_NOREPLACE)) {
	case UTIL_WRITE_OK:
		cr->path[cr->n++] = path;
		return 0;
	case UTIL_WRITE_ETMP:
		fprintf(stderr, "macronode init: %s: cannot write: %s\n", tmp, strerror(errno));
		return -1;
	case UTIL_WRITE_EPUBLISH:
		fprintf(stderr, "macronode init: %s: %s\n", path,
		        errno == EEXIST ? "appeared while init ran; not overwritten" : strerror(errno));
		return -1;
	case UTIL_WRITE_ESYNC:
		break;
	}
	cr->path[cr->n++] = path;   /* ours: the rollback removes it */
	fprintf(stderr, "macronode init: %s: fsync of its directory: %s\n", path, strerror(errno));
	return -1;
}

static void rollback(init_created *cr)
{
	while (cr->n > 0) {
		const char *p = cr->path[--cr->n];
		if (unlink(p) == 0)
			fprintf(stderr, "macronode init: removed %s\n", p);
	}
}

static int secrets_new(init_secrets *s)
{
	s->key = sodium_malloc(CAPTOKEN_KEY_LEN);
	s->token = sodium_malloc(CAPTOKEN_MAX_TOKEN + 1);
	if (!s->key || !s->token) {
		fputs("macronode init: out of secure memory\n", stderr);
		return -1;
	}
	randombytes_buf(s->key, CAPTOKEN_KEY_LEN);
	return 0;
}

/* sodium_free wipes; NULL is a no-op. */
static void secrets_free(init_secrets *s)
{
	sodium_free(s->key);
	sodium_free(s->token);
	kek_free(s->kek);
}

static int add_caveat_text(captoken *t, captoken_cav_kind k, const char *s)
{
	captoken_caveat *c = &t->caveats[t->ncaveats++];

	c->kind = k;
	return captoken_caveat_set_text(c, k, s);
}

/* Scope /o, the four object methods, Exp, Aud (when the node has one), Tenant. */
static int fill_token(captoken *t, const mn_config *c, uint64_t exp)
{
	uint8_t tid[INIT_TID_BYTES];

	randombytes_buf(tid, sizeof tid);
	sodium_bin2hex(t->tid, sizeof t->tid, tid, sizeof tid);
	memcpy(t->kid, INIT_KID, sizeof INIT_KID);
	t->has_prefix = true;
	memcpy(t->prefix, INIT_PREFIX, sizeof INIT_PREFIX);
	for (size_t i = 0; i < sizeof init_methods / sizeof init_methods[0]; i++)
		if (captoken_method_set(&t->methods[t->nmethods++], init_methods[i]) != 0)
			return -1;
	t->caveats[t->ncaveats].kind = CAPTOKEN_CAV_EXP;
	t->caveats[t->ncaveats++].u = exp;
	if (c->auth_audience[0] && add_caveat_text(t, CAPTOKEN_CAV_AUD, c->auth_audience) != 0)
		return -1;
	return add_caveat_text(t, CAPTOKEN_CAV_TENANT, INIT_TENANT);
}

static int mint_token(const mn_config *c, init_secrets *s, uint64_t exp)
{
	captoken *t = captoken_new();
	int r = -1;

	if (t && fill_token(t, c, exp) == 0)
		r = captoken_mint(t, s->key, s->token, CAPTOKEN_MAX_TOKEN + 1);
	captoken_free(t);
	if (r != 0)
		fputs("macronode init: cannot mint the write token (auth.audience too long?)\n", stderr);
	return r;
}

/*
 * Sanity: the node will load what was written. The key ring is read back from
 * the keys dir and must accept the token for a write to /o; the bundle must
 * verify with the public key the node is configured to trust.
 */
static int verify_written(const mn_config *c, const init_paths *p, const init_secrets *s)
{
	char err[INIT_ERR_LEN];
	captoken_keyring *kr = captoken_keyring_new();
	captoken_ctx ctx = {
		.now = (uint64_t)time(NULL), .audience = c->auth_audience, .method = "POST",
		.path = INIT_PREFIX,
	};
	policy *pol = NULL;
	int r = -1;

	captoken_keyring_set_kek(kr, s->kek);
	if (!kr || captoken_keyring_load_dir(kr, p->keys_dir, err, sizeof err) != 0)
		fprintf(stderr, "macronode init: reading the key back: %s\n", kr ? err : "no memory");
	else if (captoken_verify(s->token, strlen(s->token), kr, &ctx, NULL) != CAPTOKEN_OK)
		fputs("macronode init: the new token does not verify with the new key\n", stderr);
	else if (policy_load(p->bundle, p->pubkey, 0, &pol, err, sizeof err) != 0)
		fprintf(stderr, "macronode init: the new policy does not load: %s\n", err);
	else
		r = 0;
	policy_free(pol);
	captoken_keyring_free(kr);
	return r;
}

static int write_policy(const init_paths *p, const kek *k, init_created *cr)
{
	char err[INIT_ERR_LEN];

	if (policy_keygen_files(p->signing_prefix, k, err, sizeof err) != 0) {
		fprintf(stderr, "macronode init: %s\n", err);
		return -1;
	}
	cr->path[cr->n++] = p->signing_key;
	cr->path[cr->n++] = p->signing_pub;
	if (write_atomic(p->bundle, init_bundle, sizeof init_bundle - 1, INIT_BUNDLE_MODE, cr) != 0)
		return -1;
	if (policy_sign_file(p->bundle, p->signing_key, k, err, sizeof err) != 0) {
		fprintf(stderr, "macronode init: %s\n", err);
		return -1;
	}
	/* keygen and sign publish with util_write_atomic: their directories are synced. */
	cr->path[cr->n++] = p->bundle_sig;
	return 0;
}

/* The token bypasses stdio so no copy of it is left in a heap buffer. */
static int print_token_line(const char *token)
{
	if (fflush(stdout) != 0 ||
	    util_write_all(STDOUT_FILENO, "  ", 2) != 0 ||
	    util_write_all(STDOUT_FILENO, token, strlen(token)) != 0 ||
	    util_write_all(STDOUT_FILENO, "\n", 1) != 0) {
		fprintf(stderr, "macronode init: cannot write the token to stdout: %s\n",
		        strerror(errno));
		return -1;
	}
	return 0;
}

/* --if-needed: what was made, no token (stdout may be the journal): the one
 * minted checked the key and is wiped unseen. */
static int print_quiet_report(const mn_config *c, const init_paths *p, const init_secrets *s,
                              const char *node_id)
{
	printf("macronode init: created %s (unattended: no token printed)\n"
	       "  capability key      %s (kid " INIT_KID ")\n"
	       "  policy              %s (version 1, signed): anonymous GET/HEAD of objects; "
	       "writes need a token\n"
	       "  node identity       %s\n"
	       "  KEK                 %s\n"
	       "Mint a write token with `macronode token mint --key %s --kid " INIT_KID "` and "
	       "the same KEK (docs/packaging.md)\n",
	       c->data_dir, p->key_file, p->bundle, node_id, s->kek_path, p->key_file);
	return fflush(stdout) == 0 ? 0 : -1;
}

static int print_report(const mn_config *c, const init_paths *p, const init_secrets *s,
                        const char *node_id, uint64_t exp)
{
	char when[32];
	struct tm tm;
	time_t t = (time_t)exp;
	const char *scheme = c->tls_cert_file[0] ? "https" : "http";

	if (!gmtime_r(&t, &tm) || strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return -1;
	printf("macronode init: created %s\n"
	       "  capability key      %s (kid " INIT_KID ")\n"
	       "  policy signing key  %s\n"
	       "  policy              %s (version 1, signed): anonymous GET/HEAD of objects; "
	       "writes need a token\n"
	       "  node identity       %s\n"
	       "  KEK                 %s (%s)\n"
	       "\n"
	       "Write token (shown once, not stored; expires %s):\n",
	       c->data_dir, p->key_file, p->signing_key, p->bundle, node_id, s->kek_path,
	       s->kek_created ? "created beside the data dir, mode 0400: every key above is "
	       "sealed with it; it protects only against a copy of the data dir alone. Back it "
	       "up apart from the data dir, or move it off this disk (keys.kek_file, systemd "
	       "LoadCredential; docs/keys.md)" : "existing; every key above is sealed with it",
	       when);
	const char *token = s->token;
	if (print_token_line(token) != 0)
		return -1;
	printf("\nStore an object:\n  curl -H 'Authorization: Bearer ");
	if (fflush(stdout) != 0 || util_write_all(STDOUT_FILENO, token, strlen(token)) != 0)
		return -1;
	printf("' --data-binary @FILE %s://%s" INIT_PREFIX "\n", scheme, c->gateway_addr);
	return fflush(stdout) == 0 ? 0 : -1;
}

/* The node identity: created unless a first `run` already made it (it is
 * not a wall key, so an existing one is kept, not a refusal). out says
 * which, for the report. */
static int init_identity(const mn_config *c, const kek *k, char *out, size_t outlen)
{
	char path[CONFIG_PATH_MAX], err[CONFIG_ERR_MAX + CONFIG_PATH_MAX];
	node_identity id;
	bool created;

	if (config_identity_file(c, path, sizeof path) != 0) {
		fputs("macronode init: node.identity_file: path too long\n", stderr);
		return -1;
	}
	if (identity_load_or_create(&id, path, k, &created, err, sizeof err) != 0) {
		fprintf(stderr, "macronode init: %s\n", err);
		return -1;
	}
	snprintf(out, outlen, "%s (%s%s)", path, created ? "" : "kept; ", id.id_text);
	identity_free(&id);
	return 0;
}

/* Key and token in memory first: a failure there leaves nothing on disk. */
static int init_create(const mn_config *c, const init_paths *p, bool quiet)
{
	init_secrets s = { NULL, NULL, NULL, false, "" };
	char err[INIT_ERR_LEN], aad[KEYFILE_AAD_MAX];
	init_created cr = { { NULL }, 0 };
	char node_id[IDENTITY_ID_TEXT + CONFIG_PATH_MAX + 16];
	uint64_t exp = (uint64_t)time(NULL) + INIT_TOKEN_TTL_S;
	int r = -1;

	if (secrets_new(&s) != 0 || mint_token(c, &s, exp) != 0 || ensure_dirs(c, p) != 0)
		goto out;
	s.kek = cli_kek_obtain(c, "macronode init", true, &s.kek_created, s.kek_path,
	                       sizeof s.kek_path);
	if (!s.kek)
		goto out;
	if (s.kek_created)
		cr.path[cr.n++] = s.kek_path;
	if (keyfile_cap_aad(aad, sizeof aad, INIT_KID) != 0 ||
	    keyfile_write(p->key_file, s.kek, aad, s.key, CAPTOKEN_KEY_LEN, INIT_KEY_MODE,
	                  UTIL_WRITE_NOREPLACE, err, sizeof err) != 0) {
		fprintf(stderr, "macronode init: %s\n", err);
		rollback(&cr);
		goto out;
	}
	cr.path[cr.n++] = p->key_file;
	if (write_policy(p, s.kek, &cr) != 0 || verify_written(c, p, &s) != 0 ||
	    init_identity(c, s.kek, node_id, sizeof node_id) != 0) {
		rollback(&cr);
		goto out;
	}
	if (quiet) {
		r = print_quiet_report(c, p, &s, node_id) == 0 ? 0 : INIT_EXIT_FAIL;
		goto out;
	}
	r = print_report(c, p, &s, node_id, exp);
	if (r != 0)
		fprintf(stderr, "macronode init: the node is set up but the token was not shown; "
		        "mint one with `macronode token mint --key %s --kid " INIT_KID "`\n",
		        p->key_file);
out:
	secrets_free(&s);
	return r == 0 ? 0 : INIT_EXIT_FAIL;
}

/* The first file of the node's keys or policy that exists (NULL: none). */
static const char *first_present(const init_paths *p)
{
	const char *files[] = { p->bundle, p->bundle_sig, p->signing_key, p->signing_pub };
	struct stat st;

	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
		if (lstat(files[i], &st) == 0)
			return files[i];
	if (lstat(p->keys_dir, &st) == 0 &&
	    (!S_ISDIR(st.st_mode) || keys_dir_has_key(p->keys_dir)))
		return p->keys_dir;
	return NULL;
}

/*
 * --if-needed (the unit's ExecStartPre, docs/packaging.md) sets the node up
 * only when nothing of it exists yet; anything else is left as it is and
 * the start goes on, so this step never blocks a node an operator set up
 * by hand: one initialised, a policy signed by the operator's own key, or
 * a half-done set-up (the node's /readyz then names what it lacks).
 * Amnesia is answered before the paths (init_cli_main). True (said why):
 * nothing to do.
 */
static bool nothing_to_do(const mn_config *c, const init_paths *p)
{
	const char *have;

	if (initialised(p))
		printf("macronode init: %s is initialised (%s, keys in %s); nothing to do\n",
		       c->data_dir, p->bundle, p->keys_dir);
	else if (strcmp(p->pubkey, p->signing_pub) != 0)
		printf("macronode init: policy.pubkey_file %s is the operator's key; nothing to do\n",
		       p->pubkey);
	else if ((have = first_present(p)) != NULL)
		printf("macronode init: %s exists but the node is not fully set up (set up by hand, "
		       "or an init was interrupted); nothing done: /readyz names what is missing "
		       "(docs/packaging.md, \"Recovery\")\n", have);
	else
		return false;
	return true;
}

static int init_usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "macronode init: %s '%s'\n\n%s", what, arg, init_usage);
	return INIT_EXIT_USAGE;
}

/* Same flags, precedence and config loading as `run`. 0, 0x100 (--help), or an exit code. */
static int parse_flags(int argc, char **argv, node_opts *o, bool *if_needed)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "amnesia", no_argument, NULL, 'm' },
		{ "if-needed", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof *o);
	o->config_path = getenv("RON_CONFIG");
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		if (ch == 'h')
			return 0x100;
		if (ch == 'c')
			o->config_path = optarg;
		else if (ch == 'n')
			*if_needed = true;
		else if ((ch == 'd' || ch == 'm') && o->nov < NODE_MAX_OVERRIDES)
			o->ov[o->nov++] = (node_override){ ch == 'd' ? "paths.data_dir" : "amnesia",
			                                   ch == 'd' ? optarg : "true" };
		else
			return init_usage_error("unknown or incomplete option", argv[optind - 1]);
	}
	if (optind != argc)
		return init_usage_error("unexpected argument", argv[optind]);
	return 0;
}

/* argv[0] is "init". */
int init_cli_main(int argc, char **argv)
{
	char err[CONFIG_ERR_MAX];
	node_opts o;
	mn_config c;
	init_paths p;
	bool if_needed = false;
	int r = parse_flags(argc, argv, &o, &if_needed);

	if (r == 0x100)
		fputs(init_usage, stdout);
	if (r != 0)
		return r == 0x100 ? 0 : r;
	if (node_load_config(&o, &c, err, sizeof err) != 0) {
		fprintf(stderr, "macronode init: config error: %s\n", err);
		config_free(&c);
		return INIT_EXIT_USAGE;
	}
	r = INIT_EXIT_FAIL;
	if (c.amnesia && if_needed) {
		puts("macronode init: amnesia mode keeps nothing on disk; nothing to do");
		r = 0;
	} else if (c.amnesia)
		fputs("macronode init: refusing in amnesia mode: amnesia keeps nothing on disk, so "
		      "there is nowhere to keep a key or a policy; provide auth.keys_dir, "
		      "policy.bundle_file and policy.pubkey_file yourself (docs/auth.md)\n", stderr);
	else if (resolve_paths(&c, &p) != 0)
		fputs("macronode init: a configured path is too long\n", stderr);
	else if (sodium_init() < 0)
		fputs("macronode init: libsodium failed to initialise\n", stderr);
	else if (if_needed && nothing_to_do(&c, &p))
		r = 0;
	else if (check_pubkey(&p) == 0 && check_fresh(&p) == 0)
		r = init_create(&c, &p, if_needed);
	config_free(&c);
	return r;
}
