/*
 * sup_keys.c — the supervisor's side of keys at rest (docs/keys.md): it
 * finds (and, beside the data dir, creates) the KEK, hands it to the
 * services that unseal capability keys, and watches the capability keys'
 * ages for /readyz and key_age_seconds{kid}.
 *
 * Ages come from the seal headers (the sealing time is readable without the
 * KEK; clear-text files of earlier versions: their mtime), read at start
 * and at every reload, so /readyz and /metrics never touch the disk.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/audit/audit_client.h"
#include "core/auth/captoken.h"
#include "core/keys/keyfile.h"
#include "core/keys/seal.h"
#include "core/metrics/metrics.h"
#include "lib/log.h"
#include "lib/util.h"
#include "node/node.h"
#include "mn_build.h"
#if MN_WITH_ZK
#include "core/auth/zkproof.h"
#include "core/keys/zkpin.h"
#endif

#define SUP_KEY_HEAD_MAX (SEAL_OVERHEAD + CAPTOKEN_KEY_LEN)

int sup_keys_kek(supervisor *s, char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX];
	kek_source src;
	struct stat st;

	if (kek_path(&s->cfg, path, sizeof path, &src) != 0) {
		snprintf(err, errlen, "keys.kek_file: path too long");
		return -1;
	}
	bool absent = lstat(path, &st) != 0 && errno == ENOENT;
	if (absent && s->cfg.amnesia) {
		/* Amnesia writes nothing: no KEK unless one is provided. */
		log_kv(LOG_LEVEL_INFO, "no KEK; only clear-text key files can be read", "kek", path,
		       LOG_END);
		return 0;
	}
	if (absent && src != KEK_SRC_BESIDE) {
		snprintf(err, errlen, "KEK file %s (%s): does not exist", path, kek_source_name(src));
		return -1;
	}
	if (absent) {
		if (kek_create(path, err, errlen) != 0)
			return -1;
		log_kv(LOG_LEVEL_WARN, "created a KEK beside the data dir; it protects only against a "
		       "copy of the data dir alone (docs/keys.md)", "kek", path, LOG_END);
	}
	if (!(s->kek = kek_load_from(path, src, err, errlen)))
		return -1;
	log_kv(LOG_LEVEL_INFO, "KEK loaded", "kek", path, "source", kek_source_name(src), LOG_END);
	return 0;
}

/* The sealing time of one key file (its mtime when clear text). */
static int key_created(const char *path, int64_t *ms)
{
	uint8_t buf[SUP_KEY_HEAD_MAX];
	struct stat st;
	int fd;

	if (util_file_open(path, SUP_KEY_HEAD_MAX, UTIL_FILE_SECRET | UTIL_FILE_NOFOLLOW, &fd,
	                   &st) != UTIL_FILE_OK)
		return -1;
	size_t n = (size_t)st.st_size;
	int r = util_read_full(fd, buf, n);
	close(fd);
	if (r != 0)
		return -1;
	if (keyfile_sealed_at(buf, n, ms) != 0)
		*ms = (int64_t)st.st_mtime * 1000;
	return 0;
}

static void read_minting(const char *dir, char *kid, size_t len)
{
	char path[CONFIG_PATH_MAX + 16];
	FILE *f;

	kid[0] = '\0';
	if (snprintf(path, sizeof path, "%s/" CAPTOKEN_MINTING_FILE, dir) >= (int)sizeof path ||
	    !(f = fopen(path, "re")))
		return;
	if (!fgets(kid, (int)len, f))
		kid[0] = '\0';
	fclose(f);
	kid[strcspn(kid, "\r\n")] = '\0';
}

/* One record whenever the set of capability keys (or the minting one)
 * differs from the last one audited: a key added, rotated or retired. */
static void sup_keys_audit(supervisor *s)
{
	const sup_keys *k = &s->keys;
	char now[sizeof s->keys_audited];
	size_t off = 0;
	json_t *kids;

	if (!s->audit)
		return;
	now[0] = '\0';
	for (size_t i = 0; i < k->n && off < sizeof now; i++)
		off += (size_t)snprintf(now + off, sizeof now - off, "%s%s,", (int)i == k->mint ? "*" : "",
		                        k->kid[i]);
	if (strcmp(now, s->keys_audited) == 0)
		return;
	memcpy(s->keys_audited, now, sizeof now);
	kids = json_array();
	for (size_t i = 0; kids && i < k->n; i++)
		(void)json_array_append_new(kids, json_string(k->kid[i]));
	audit_emit(s->audit, "keys", "keys_loaded", k->n ? "changed" : "none", NULL, NULL,
	           json_pack("{s:o, s:s}", "kids", kids ? kids : json_array(),
	                     "minting", k->mint >= 0 ? k->kid[k->mint] : ""));
}

void sup_keys_scan(supervisor *s)
{
	char dir[CONFIG_PATH_MAX], path[CONFIG_PATH_MAX + CAPTOKEN_MAX_KID + 8];
	char mint[CAPTOKEN_MAX_KID + 2];
	sup_keys *k = &s->keys;
	struct dirent *de;
	DIR *d;

	memset(k, 0, sizeof *k);
	k->mint = -1;
	if (!roles_want_policy(&s->cfg) || config_keys_dir(&s->cfg, dir, sizeof dir) != 0 ||
	    !(d = opendir(dir)))
		return;
	read_minting(dir, mint, sizeof mint);
	while ((de = readdir(d)) != NULL && k->n < CAPTOKEN_MAX_KEYS) {
		size_t n = strlen(de->d_name), sl = strlen(".key");
		if (de->d_name[0] == '.' || n <= sl || n - sl > CAPTOKEN_MAX_KID ||
		    strcmp(de->d_name + n - sl, ".key") != 0)
			continue;
		if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, de->d_name) >= sizeof path ||
		    key_created(path, &k->created_ms[k->n]) != 0)
			continue;
		memcpy(k->kid[k->n], de->d_name, n - sl);
		k->kid[k->n][n - sl] = '\0';
		if (strcmp(k->kid[k->n], mint) == 0)
			k->mint = (int)k->n;
		k->n++;
	}
	closedir(d);
	/* No designation: the youngest key is the one an operator mints with. */
	if (k->mint < 0 && k->n > 0) {
		size_t young = 0;
		for (size_t i = 1; i < k->n; i++)
			if (k->created_ms[i] > k->created_ms[young])
				young = i;
		k->mint = (int)young;
	}
	sup_keys_audit(s);
}

void sup_keys_gauges(const supervisor *s)
{
	int64_t now = (int64_t)util_wall_ms();
	char labels[CAPTOKEN_MAX_KID * 2 + 16], esc[CAPTOKEN_MAX_KID * 2 + 1];

	for (size_t i = 0; i < s->keys.n; i++) {
		int64_t age = now > s->keys.created_ms[i] ? (now - s->keys.created_ms[i]) / 1000 : 0;
		if (metrics_label_escape(esc, sizeof esc, s->keys.kid[i]) != 0)
			continue;
		snprintf(labels, sizeof labels, "kid=\"%s\"", esc);
		metrics_gauge_set(metrics_get("key_age_seconds", labels), age);
	}
}

json_t *sup_keys_eval(const supervisor *s, json_t *reasons, ready_verdict *v)
{
	const sup_keys *k = &s->keys;
	char buf[CAPTOKEN_MAX_KID + 160];

	sup_keys_gauges(s);
	if (k->n == 0 || k->mint < 0)
		return NULL;
	int64_t now = (int64_t)util_wall_ms(), born = k->created_ms[(size_t)k->mint];
	uint64_t age_ms = now > born ? (uint64_t)(now - born) : 0;
	bool old = age_ms > s->cfg.keys_max_age_ms;
	if (old) {
		snprintf(buf, sizeof buf, "keys: minting capability key %s is %llu days old, past "
		         "keys.max_age (rotate: macronode key rotate)", k->kid[(size_t)k->mint],
		         (unsigned long long)(age_ms / 86400000u));
		json_array_append_new(reasons, json_string(buf));
		if (*v < READY_DEGRADED)
			*v = READY_DEGRADED;
	}
	return json_pack("{s:s, s:s, s:I, s:i}", "state", old ? "old" : "ok", "minting",
	                 k->kid[(size_t)k->mint], "age_seconds", (json_int_t)(age_ms / 1000),
	                 "keys", (int)k->n);
}

/* Post-quantum posture, said as it is: the peer plane and the gateway
 * negotiate classical key exchange only. Whether the linked OpenSSL could
 * do ML-KEM is probed, not assumed (3.0 on Debian 12 cannot). */
bool node_pq_posture(char *reason, size_t len)
{
	EVP_KEM *kem = EVP_KEM_fetch(NULL, "ML-KEM-768", NULL);
	const char *ver = OpenSSL_version(OPENSSL_VERSION);

	if (kem) {
		EVP_KEM_free(kem);
		snprintf(reason, len, "%s offers ML-KEM, but macronode negotiates classical key "
		         "exchange only (X25519/ECDHE); no hybrid group is configured", ver);
	} else {
		snprintf(reason, len, "%s has no ML-KEM (post-quantum KEMs need OpenSSL 3.5 or "
		         "later); TLS uses classical key exchange (X25519/ECDHE) and Ed25519 "
		         "signatures, so recorded traffic is not protected against a future "
		         "quantum computer", ver);
	}
	return false;
}

/* zk.enabled: the parameter bundle this build verifies with must be the one
 * pinned in the key store (docs/zk.md). Start and reload refuse otherwise;
 * every refusal is counted. Without ZK in the build config_validate has
 * already refused zk.enabled. */
int node_zk_pin_check(const mn_config *c, const kek *k, char *err, size_t errlen)
{
#if MN_WITH_ZK
	uint8_t bundle[ZK_DIGEST_LEN];

	zkproof_params_hash(bundle);
	if (zkpin_check(c, k, bundle, err, errlen) != 0) {
		metrics_count("zk_param_mismatch_total", "", 1);
		return -1;
	}
	return 0;
#else
	(void)c; (void)k; (void)err; (void)errlen;
	return 0;
#endif
}
