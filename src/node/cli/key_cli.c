/*
 * key_cli.c — `macronode key list|rotate|retire|seal` (docs/keys.md) and the
 * KEK look-up every CLI command that reads or writes a key file shares.
 *
 * Capability keys live in <keys_dir>/<kid>.key, sealed under the KEK.
 * rotate adds a key and makes it the minting one (<keys_dir>/minting); every
 * other key gets <kid>.expires = now + keys.grace and stops verifying then
 * (rotate --retire removes the previous minting key at once as well).
 * retire removes a key at once. The running node sees any of it at its next
 * reload (SIGHUP or POST /api/v1/reload). Key material is never printed.
 *
 * Exit codes: 0 done, 1 refused or failed, 2 usage or config error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/auth/captoken.h"
#include "core/auth/policy.h"
#include "core/auth/policy_sign.h"
#include "core/keys/keyfile.h"
#include "core/keys/zkpin.h"
#include "core/tor/onion.h"
#include "lib/util.h"
#include "node/node.h"

#define KEY_EXIT_FAIL  1
#define KEY_EXIT_USAGE 2
#define KEY_ERR_LEN    (CONFIG_ERR_MAX + 2 * CONFIG_PATH_MAX)
#define KEY_FILE_MODE  0600

static const char key_usage[] =
	"usage: macronode key COMMAND [--kid KID] [--retire] [--new-kek FILE] [--config FILE]\n"
	"                     [--data-dir DIR]\n"
	"\n"
	"  list              capability keys: kid, which one mints, age, sealed, until when\n"
	"                    it verifies\n"
	"  rotate --kid NEW  add capability key NEW (sealed) and make it the minting one;\n"
	"                    the others keep verifying for keys.grace, or until retired\n"
	"  rotate --kid NEW --retire  the same, and retire the previous minting key at\n"
	"                    once (a suspected leak)\n"
	"  retire --kid OLD  remove capability key OLD: tokens of that kid are refused\n"
	"                    (401) once the node reloads\n"
	"  seal              seal every clear-text key file of an earlier version in place\n"
	"                    (capability keys, node identity, policy signing key)\n"
	"  rekey --new-kek FILE  re-seal every key file under the KEK in FILE (KEK\n"
	"                    rotation); then point keys.kek_file at FILE and restart\n"
	"\n"
	"The KEK is found as `run` finds it (keys.kek_file, RON_KEK_FILE,\n"
	"$CREDENTIALS_DIRECTORY/macronode.kek, else <data_dir>.kek, which rotate and\n"
	"seal create when missing). Reload the node afterwards: kill -HUP, or\n"
	"POST /api/v1/reload. In amnesia mode only rotate and retire run, on an\n"
	"auth.keys_dir outside the data dir, with a KEK that exists. docs/keys.md.\n";

/* ----------------------------------------------------------- KEK look-up */

kek *cli_kek_obtain(const mn_config *c, const char *prog, bool create, bool *created,
                    char *path, size_t pathlen)
{
	char err[KEY_ERR_LEN];
	kek_source src;
	struct stat st;
	kek *k;

	*created = false;
	if (kek_path(c, path, pathlen, &src) != 0) {
		fprintf(stderr, "%s: keys.kek_file: path too long\n", prog);
		return NULL;
	}
	if (lstat(path, &st) != 0 && errno == ENOENT && create && src == KEK_SRC_BESIDE) {
		if (kek_create(path, err, sizeof err) != 0) {
			fprintf(stderr, "%s: %s (set keys.kek_file or RON_KEK_FILE to a place you "
			        "can write)\n", prog, err);
			return NULL;
		}
		*created = true;
	}
	if (!(k = kek_load_from(path, src, err, sizeof err)))
		fprintf(stderr, "%s: %s\n", prog, err);
	return k;
}

kek *cli_kek_from(const mn_config *c, const char *prog, bool *failed)
{
	char err[KEY_ERR_LEN], path[CONFIG_PATH_MAX];
	kek_source src;
	struct stat st;
	kek *k = NULL;

	*failed = false;
	if (kek_path(c, path, sizeof path, &src) == 0 &&
	    !(lstat(path, &st) != 0 && errno == ENOENT) &&
	    !(k = kek_load_from(path, src, err, sizeof err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		*failed = true;
	}
	return k;
}

kek *cli_kek_lookup(const char *prog, bool *failed)
{
	char err[KEY_ERR_LEN];
	node_opts o = { .config_path = getenv("RON_CONFIG") };
	mn_config c;

	if (node_load_config(&o, &c, err, sizeof err) != 0) {
		/* Not a node's host, perhaps: defaults and RON_* only. */
		config_free(&c);
		config_defaults(&c);
		if (config_apply_env(&c, err, sizeof err) != 0)
			fprintf(stderr, "%s: %s\n", prog, err);
	}
	kek *k = cli_kek_from(&c, prog, failed);
	config_free(&c);
	return k;
}

/* ------------------------------------------------------------- commands */

typedef struct {
	const char *kid;
	const char *new_kek;        /* rekey */
	bool        retire;         /* rotate --retire: the previous minting key goes now */
	node_opts   o;
	mn_config   c;
	char        dir[CONFIG_PATH_MAX];
} key_args;

static int key_usage_err(const char *what, const char *arg)
{
	fprintf(stderr, "macronode key: %s%s%s\n(see `macronode key --help`)\n", what,
	        arg ? " " : "", arg ? arg : "");
	return KEY_EXIT_USAGE;
}

static int parse(int argc, char **argv, key_args *a)
{
	static const struct option opts[] = {
		{ "kid", required_argument, NULL, 'k' },
		{ "config", required_argument, NULL, 'c' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "new-kek", required_argument, NULL, 'n' },
		{ "retire", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	char err[KEY_ERR_LEN];
	int ch;

	memset(a, 0, sizeof *a);
	a->o.config_path = getenv("RON_CONFIG");
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch == 'k')
			a->kid = optarg;
		else if (ch == 'c')
			a->o.config_path = optarg;
		else if (ch == 'n')
			a->new_kek = optarg;
		else if (ch == 'r')
			a->retire = true;
		else if (ch == 'd' && a->o.nov < NODE_MAX_OVERRIDES)
			a->o.ov[a->o.nov++] = (node_override){ "paths.data_dir", optarg };
		else
			return key_usage_err("unknown or incomplete option", argv[optind - 1]);
	}
	if (optind != argc)
		return key_usage_err("unexpected argument", argv[optind]);
	if (a->kid && !captoken_kid_valid(a->kid, strlen(a->kid)))
		return key_usage_err("--kid must be 1..64 of [A-Za-z0-9._-], not starting with '.':",
		                     a->kid);
	if (node_load_config(&a->o, &a->c, err, sizeof err) != 0) {
		fprintf(stderr, "macronode key: config error: %s\n", err);
		config_free(&a->c);
		return KEY_EXIT_USAGE;
	}
	if (config_keys_dir(&a->c, a->dir, sizeof a->dir) != 0) {
		config_free(&a->c);
		return key_usage_err("auth.keys_dir: path too long", NULL);
	}
	return 0;
}

static kek *need_kek(const key_args *a, bool create)
{
	char path[CONFIG_PATH_MAX];
	bool created;
	kek *k = cli_kek_obtain(&a->c, "macronode key", create, &created, path, sizeof path);

	if (k && created)
		printf("created KEK %s (mode 0400, beside the data dir: it protects only against a "
		       "copy of the data dir alone; docs/keys.md)\n", path);
	return k;
}

/* The ring of keys_dir unsealed with k (NULL: clear text only). */
static captoken_keyring *load_ring(const key_args *a, const kek *k)
{
	char err[KEY_ERR_LEN];
	captoken_keyring *kr = captoken_keyring_new();

	if (!kr)
		return NULL;
	captoken_keyring_set_kek(kr, k);
	int r = captoken_keyring_load_dir(kr, a->dir, err, sizeof err);
	if (r == 0 || r == CAPTOKEN_KEYS_NONE)
		return kr;
	fprintf(stderr, "macronode key: %s\n", err);
	captoken_keyring_free(kr);
	return NULL;
}

static void fmt_age(int64_t ms, char *out, size_t len)
{
	int64_t s = ms > 0 ? ms / 1000 : 0;

	snprintf(out, len, "%" PRId64 "d%02" PRId64 "h%02" PRId64 "m", s / 86400, s / 3600 % 24,
	         s / 60 % 60);
}

static void fmt_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, len, "?");
}

static int key_list(key_args *a)
{
	bool failed;
	kek *k = cli_kek_from(&a->c, "macronode key", &failed);
	captoken_keyring *kr = failed ? NULL : load_ring(a, k);
	int64_t now = (int64_t)util_wall_ms();
	captoken_key_meta m;
	const char *kid;

	if (!kr) {
		kek_free(k);
		return KEY_EXIT_FAIL;
	}
	const char *mint = captoken_keyring_mint_kid(kr);
	printf("%-20s %-5s %-12s %-6s %s\n", "KID", "MINTS", "AGE", "SEALED", "VERIFIES");
	for (size_t i = 0; (kid = captoken_keyring_kid(kr, i, &m)) != NULL; i++) {
		char age[32], until[48] = "yes";
		fmt_age(now - m.created_ms, age, sizeof age);
		if (m.not_after_ms > 0) {
			char t[32];
			fmt_time(m.not_after_ms, t, sizeof t);
			snprintf(until, sizeof until, "%s %s", m.not_after_ms > now ? "until" : "expired", t);
		}
		printf("%-20s %-5s %-12s %-6s %s\n", kid, mint && strcmp(mint, kid) == 0 ? "yes" : "-",
		       age, m.sealed ? "yes" : "NO", until);
	}
	if (captoken_keyring_count(kr) == 0)
		printf("(no capability key in %s)\n", a->dir);
	captoken_keyring_free(kr);
	kek_free(k);
	return 0;
}

/* Small non-secret file, published atomically (0600: it sits among keys). */
static int put_small(const char *path, const char *text)
{
	if (util_write_atomic(path, text, strlen(text), KEY_FILE_MODE, 0) == UTIL_WRITE_OK)
		return 0;
	fprintf(stderr, "macronode key: %s: %s\n", path, strerror(errno));
	return -1;
}

static int side_path(char *out, size_t len, const char *dir, const char *kid, const char *sfx)
{
	int n = snprintf(out, len, "%s/%s%s", dir, kid, sfx);

	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* Every other key without an expiry stops verifying after keys.grace (also
 * quiet, the one rotate --retire removes next: a crash before it goes leaves
 * it in its grace, not verifying forever). */
static int expire_others(const key_args *a, const captoken_keyring *kr, int64_t now,
                         const char *quiet)
{
	char path[CONFIG_PATH_MAX + 96], text[32], when[32];
	captoken_key_meta m;
	const char *kid;

	if (a->c.keys_grace_ms == 0)
		return 0;
	int64_t until = now + (int64_t)a->c.keys_grace_ms;
	snprintf(text, sizeof text, "%" PRId64 "\n", until);
	fmt_time(until, when, sizeof when);
	for (size_t i = 0; (kid = captoken_keyring_kid(kr, i, &m)) != NULL; i++) {
		if (m.not_after_ms > 0)
			continue;
		if (side_path(path, sizeof path, a->dir, kid, CAPTOKEN_EXPIRES_SUFFIX) != 0 ||
		    put_small(path, text) != 0)
			return -1;
		if (!quiet || strcmp(quiet, kid) != 0)
			printf("%s keeps verifying until %s (keys.grace), or `macronode key retire --kid "
			       "%s`\n", kid, when, kid);
	}
	return 0;
}

/*
 * Amnesia writes nothing of its own: rotate and retire may act for an
 * amnesia node only on keys provisioned outside its data dir (auth.keys_dir),
 * never creating the data dir or a KEK beside it. 0 go on, -1 refused.
 */
static int amnesia_refuses(const key_args *a)
{
	size_t n = strlen(a->c.data_dir);

	while (n > 1 && a->c.data_dir[n - 1] == '/')
		n--;
	if (!a->c.amnesia)
		return 0;
	if (strncmp(a->dir, a->c.data_dir, n) == 0 && (a->dir[n] == '/' || a->dir[n] == '\0')) {
		fprintf(stderr, "macronode key: refusing in amnesia mode: the keys directory %s is "
		        "under the data dir, which amnesia never writes; set auth.keys_dir to the "
		        "keys you provision for the node\n", a->dir);
		return -1;
	}
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = fd >= 0 && fsync(fd) == 0 ? 0 : -1;

	if (fd >= 0)
		close(fd);
	return r;
}

/* Remove kid's key file and its .expires, then fsync the directory. */
static int retire_files(const key_args *a, const char *kid)
{
	char path[CONFIG_PATH_MAX + 96];

	if (side_path(path, sizeof path, a->dir, kid, ".key") != 0 || unlink(path) != 0) {
		fprintf(stderr, "macronode key: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (side_path(path, sizeof path, a->dir, kid, CAPTOKEN_EXPIRES_SUFFIX) == 0)
		(void)unlink(path);
	if (fsync_dir(a->dir) != 0)
		fprintf(stderr, "macronode key: %s: fsync: %s\n", a->dir, strerror(errno));
	printf("retired %s: its tokens are refused once the node reloads (kill -HUP or POST "
	       "/api/v1/reload)\n", kid);
	return 0;
}

static int key_rotate(key_args *a)
{
	char path[CONFIG_PATH_MAX + 96], aad[KEYFILE_AAD_MAX], err[KEY_ERR_LEN];
	char mint[CAPTOKEN_MAX_KID + 2], prev[CAPTOKEN_MAX_KID + 1] = "";
	uint8_t *key = NULL;
	int r = KEY_EXIT_FAIL;

	if (!a->kid)
		return key_usage_err("rotate needs --kid NEW", NULL);
	if (amnesia_refuses(a) != 0)
		return KEY_EXIT_FAIL;
	kek *k = need_kek(a, !a->c.amnesia);   /* amnesia: a configured KEK, never a new one */
	captoken_keyring *kr = k ? load_ring(a, k) : NULL;
	if (!kr)
		goto out;
	if (captoken_keyring_find(kr, a->kid)) {
		fprintf(stderr, "macronode key: refusing: kid %s already exists\n", a->kid);
		goto out;
	}
	if (a->retire && captoken_keyring_mint_kid(kr))
		snprintf(prev, sizeof prev, "%s", captoken_keyring_mint_kid(kr));
	if (util_ensure_dir(a->dir, 0700, err, sizeof err) != 0 ||
	    side_path(path, sizeof path, a->dir, a->kid, ".key") != 0 ||
	    keyfile_cap_aad(aad, sizeof aad, a->kid) != 0 || !(key = sodium_malloc(CAPTOKEN_KEY_LEN))) {
		fprintf(stderr, "macronode key: %s\n", err[0] ? err : "path too long or no memory");
		goto out;
	}
	randombytes_buf(key, CAPTOKEN_KEY_LEN);
	int64_t now = (int64_t)util_wall_ms();
	if (keyfile_write_at(path, k, aad, key, CAPTOKEN_KEY_LEN, now, KEY_FILE_MODE,
	                     UTIL_WRITE_NOREPLACE, err, sizeof err) != 0) {
		fprintf(stderr, "macronode key: %s\n", err);
		goto out;
	}
	printf("added %s (sealed)\n", path);
	snprintf(mint, sizeof mint, "%s\n", a->kid);
	/* Crash-safe order: the new key (fsynced), the others' expiries, the
	 * minting file (atomic), and only then the retired key's files. */
	if (expire_others(a, kr, now, prev) != 0 ||
	    side_path(path, sizeof path, a->dir, CAPTOKEN_MINTING_FILE, "") != 0 ||
	    put_small(path, mint) != 0)
		goto out;
	printf("%s now mints; reload the node to load it (kill -HUP or POST /api/v1/reload)\n",
	       a->kid);
	if (a->retire && !prev[0])
		printf("no previous minting key to retire\n");
	if (prev[0] && retire_files(a, prev) != 0)
		goto out;
	r = 0;
out:
	sodium_free(key);
	captoken_keyring_free(kr);
	kek_free(k);
	return r;
}

static int key_retire(key_args *a)
{
	bool failed;

	if (!a->kid)
		return key_usage_err("retire needs --kid OLD", NULL);
	if (amnesia_refuses(a) != 0)
		return KEY_EXIT_FAIL;
	kek *k = cli_kek_from(&a->c, "macronode key", &failed);
	captoken_keyring *kr = failed ? NULL : load_ring(a, k);
	int r = KEY_EXIT_FAIL;
	const char *mint = kr ? captoken_keyring_mint_kid(kr) : NULL;

	if (!kr)
		goto out;
	if (!captoken_keyring_find(kr, a->kid)) {
		fprintf(stderr, "macronode key: no capability key %s in %s\n", a->kid, a->dir);
		goto out;
	}
	if (mint && strcmp(mint, a->kid) == 0) {
		fprintf(stderr, "macronode key: refusing: %s is the minting key; rotate to a new "
		        "one first (macronode key rotate --kid NEW)\n", a->kid);
		goto out;
	}
	if (retire_files(a, a->kid) != 0)
		goto out;
	r = 0;
out:
	captoken_keyring_free(kr);
	kek_free(k);
	return r;
}

/* One capability key file: sealed in place when clear text. */
static int seal_cap_key(const char *path, const char *kid, const kek *k, unsigned *n)
{
	char err[KEY_ERR_LEN], aad[KEYFILE_AAD_MAX];
	captoken_key_meta m;

	if (keyfile_path_is_sealed(path) == 1)
		return 0;
	uint8_t *key = captoken_key_read(path, k, kid, &m, err, sizeof err);
	int r = -1;

	if (!key) {
		fprintf(stderr, "macronode key: %s\n", err);
		return -1;
	}
	if (m.sealed) {
		r = 0;
	} else if (keyfile_cap_aad(aad, sizeof aad, kid) == 0 &&
	           keyfile_write_at(path, k, aad, key, CAPTOKEN_KEY_LEN, m.created_ms, KEY_FILE_MODE,
	                            0, err, sizeof err) == 0) {
		printf("sealed %s\n", path);
		(*n)++;
		r = 0;
	} else {
		fprintf(stderr, "macronode key: %s\n", err);
	}
	sodium_free(key);
	return r;
}

/* The kids of the <kid>.key files in the keys dir (at most CAPTOKEN_MAX_KEYS
 * more are ignored: the ring refuses them anyway). -1 when the dir cannot be
 * read; 0 kids when it does not exist. */
static int cap_kids(const key_args *a, char kids[][CAPTOKEN_MAX_KID + 1], size_t *nk)
{
	DIR *d = opendir(a->dir);
	struct dirent *de;

	*nk = 0;
	if (!d)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL && *nk < CAPTOKEN_MAX_KEYS) {
		size_t len = strlen(de->d_name), sl = strlen(".key");
		if (de->d_name[0] == '.' || len <= sl || len - sl > CAPTOKEN_MAX_KID ||
		    strcmp(de->d_name + len - sl, ".key") != 0)
			continue;
		memcpy(kids[*nk], de->d_name, len - sl);
		kids[(*nk)++][len - sl] = '\0';
	}
	closedir(d);
	return 0;
}

static int seal_cap_keys(const key_args *a, const kek *k, unsigned *n)
{
	char path[CONFIG_PATH_MAX + 96], kids[CAPTOKEN_MAX_KEYS][CAPTOKEN_MAX_KID + 1];
	size_t nk;
	int r = cap_kids(a, kids, &nk);

	for (size_t i = 0; r == 0 && i < nk; i++)
		r = side_path(path, sizeof path, a->dir, kids[i], ".key") != 0 ? -1 :
		    seal_cap_key(path, kids[i], k, n);
	return r;
}

/* 0 sealed or nothing to do, -1 failed. */
static int seal_one(const char *what, const char *path, int rc, const char *err, unsigned *n)
{
	if (rc < 0) {
		fprintf(stderr, "macronode key: %s: %s\n", what, err);
		return -1;
	}
	if (rc == 0) {
		printf("sealed %s\n", path);
		(*n)++;
	}
	return 0;
}

static int key_seal(key_args *a)
{
	char path[CONFIG_PATH_MAX], err[KEY_ERR_LEN];
	unsigned n = 0;
	int bad = 0;

	if (a->kid)
		return key_usage_err("seal takes no --kid", NULL);
	if (a->c.amnesia) {
		fputs("macronode key: refusing in amnesia mode: it writes nothing to disk\n", stderr);
		return KEY_EXIT_FAIL;
	}
	kek *k = need_kek(a, true);

	if (!k)
		return KEY_EXIT_FAIL;
	bad |= seal_cap_keys(a, k, &n);
	if (config_identity_file(&a->c, path, sizeof path) == 0 && access(path, F_OK) == 0)
		bad |= seal_one("identity", path, identity_seal_file(path, k, err, sizeof err), err, &n);
	if (config_policy_signing_key(&a->c, path, sizeof path) == 0 && access(path, F_OK) == 0)
		bad |= seal_one("policy signing key", path,
		                policy_seal_key_file(path, k, err, sizeof err), err, &n);
	kek_free(k);
	printf("%u file(s) sealed%s\n", n, bad ? "; some could not be (see above)" : "");
	return bad ? KEY_EXIT_FAIL : 0;
}

/* One sealed file from the old KEK to the new: 0 done or already, -1. */
static int rekey_one(const char *path, const kek *from, const kek *to, const char *aad,
                     size_t n, unsigned *done)
{
	char err[KEY_ERR_LEN];
	int r = keyfile_reseal(path, from, to, aad, n, err, sizeof err);

	if (r < 0) {
		fprintf(stderr, "macronode key: %s\n", err);
		return -1;
	}
	if (r == 0) {
		printf("re-sealed %s\n", path);
		(*done)++;
	}
	return 0;
}

static int rekey_all(const key_args *a, const kek *from, const kek *to, unsigned *done)
{
	char path[CONFIG_PATH_MAX + 96], aad[KEYFILE_AAD_MAX];
	char kids[CAPTOKEN_MAX_KEYS][CAPTOKEN_MAX_KID + 1];
	size_t nk;
	int bad = cap_kids(a, kids, &nk);

	for (size_t i = 0; i < nk; i++)
		bad |= side_path(path, sizeof path, a->dir, kids[i], ".key") != 0 ||
		       keyfile_cap_aad(aad, sizeof aad, kids[i]) != 0 ? -1 :
		       rekey_one(path, from, to, aad, CAPTOKEN_KEY_LEN, done);
	if (config_identity_file(&a->c, path, sizeof path) == 0 && access(path, F_OK) == 0)
		bad |= rekey_one(path, from, to, KEYFILE_AAD_IDENTITY, IDENTITY_SK_LEN, done);
	if (config_policy_signing_key(&a->c, path, sizeof path) == 0 && access(path, F_OK) == 0)
		bad |= rekey_one(path, from, to, KEYFILE_AAD_POLICY, POLICY_SK_LEN, done);
	/* Not keys of ours to rotate, but sealed under the same KEK: after the
	 * old KEK is destroyed they must open with the new one. */
	int n = snprintf(path, sizeof path, "%s/%s", a->c.data_dir, ONION_KEY_FILE);
	if (n > 0 && (size_t)n < sizeof path && access(path, F_OK) == 0)
		bad |= rekey_one(path, from, to, ONION_KEY_AAD, ONION_KEY_LEN, done);
	if (config_zk_pin_file(&a->c, path, sizeof path) == 0 && access(path, F_OK) == 0)
		bad |= rekey_one(path, from, to, ZKPIN_AAD, ZKPIN_LEN, done);
	return bad;
}

/* KEK rotation: every key file from the configured KEK to --new-kek. */
static int key_rekey(key_args *a)
{
	char err[KEY_ERR_LEN];
	unsigned done = 0;

	if (!a->new_kek || a->kid)
		return key_usage_err("rekey needs --new-kek FILE (and no --kid)", NULL);
	if (a->c.amnesia) {
		fputs("macronode key: refusing in amnesia mode: it writes nothing to disk\n", stderr);
		return KEY_EXIT_FAIL;
	}
	kek *from = need_kek(a, false), *to = NULL;
	if (from && !(to = kek_load(a->new_kek, err, sizeof err)))
		fprintf(stderr, "macronode key: %s\n", err);
	if (from && to && sodium_memcmp(from->key, to->key, KEK_LEN) == 0) {
		fprintf(stderr, "macronode key: %s holds the KEK in use already\n", a->new_kek);
		kek_free(to);
		to = NULL;
	}
	int bad = from && to ? rekey_all(a, from, to, &done) : -1;
	if (from && to)
		printf("%u file(s) re-sealed under %s%s\n", done, a->new_kek, bad ?
		       "; some could not be (see above): fix them and run rekey again" :
		       "; now point keys.kek_file (RON_KEK_FILE, or the systemd credential) at it, "
		       "restart the node, and destroy the old KEK");
	kek_free(from);
	kek_free(to);
	return bad ? KEY_EXIT_FAIL : 0;
}

int key_cli_main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(key_args *); } cmds[] = {
		{ "list", key_list }, { "rotate", key_rotate }, { "retire", key_retire },
		{ "seal", key_seal }, { "rekey", key_rekey },
	};
	key_args a;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		fputs(key_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? KEY_EXIT_USAGE : 0;
	}
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		int r = parse(argc - 1, argv + 1, &a);
		if (r != 0)
			return r;
		if (a.retire && cmds[i].fn != key_rotate) {
			config_free(&a.c);
			return key_usage_err("--retire goes with rotate (to retire a given key: "
			                     "key retire --kid OLD)", NULL);
		}
		r = cmds[i].fn(&a);
		config_free(&a.c);
		return r;
	}
	return key_usage_err("unknown command", argv[1]);
}
