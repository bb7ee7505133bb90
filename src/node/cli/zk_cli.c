/*
 * zk_cli.c — `macronode zk keygen|params|pin|prove` and the holder-key
 * helpers of `token mint --holder-key` and `put`/`get --holder-key`
 * (docs/zk.md).
 *
 * Holder key files: FILE holds the secret scalar as 64 hex characters and a
 * newline, mode 0600, and is refused when group or others may read it;
 * FILE.pub holds the public key the same way, mode 0644. The secret is read
 * into sodium secure memory and wiped after use; nothing prints it, and no
 * proof is printed except by `zk prove`, whose output is the proof.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/auth/wall.h"
#include "lib/b3.h"
#include "lib/util.h"
#include "mn_build.h"
#include "node/node.h"

#if MN_WITH_ZK
#include "core/auth/zkproof.h"
#include "core/keys/zkpin.h"
#endif

#define ZK_EXIT_OK    0
#define ZK_EXIT_FAIL  1
#define ZK_EXIT_USAGE 2
#define ZK_KEY_TEXT   (2 * 32 + 1)      /* 64 hex + newline */
#define ZK_PUB_SUFFIX ".pub"

#if MN_WITH_ZK
static const char usage_zk[] =
	"usage: macronode zk keygen FILE\n"
	"       macronode zk params\n"
	"       macronode zk pin [--hash b3:HEX] [--force] [--config FILE] [--data-dir DIR]\n"
	"       macronode zk prove --holder-key FILE --method M --path P --aud A\n"
	"                          [--body FILE | --body-b3 b3:HEX] [--ts UNIX]\n"
	"\n"
	"keygen  a holder key pair: the secret in FILE (mode 0600), the public key\n"
	"        in FILE.pub; mint a token bound to it with\n"
	"        `macronode token mint ... --holder-key FILE`\n"
	"params  the verifier parameter bundle this build uses, and its BLAKE3\n"
	"pin     seal the bundle's BLAKE3 (or --hash) into zk.params_pin_file under\n"
	"        the node's KEK; with zk.enabled a node refuses to start or reload\n"
	"        when the pin is not its bundle (zk_param_mismatch)\n"
	"prove   print a Ron-Proof value for one request (for curl and scripts);\n"
	"        the body digest is BLAKE3 of --body, --body-b3, or of no bytes\n"
	"\n"
	"docs/zk.md has the proof format and the transcript.\n";
#endif

/* ---- key files ------------------------------------------------------------ */

/* 64 hex (+ newline) from path into out; secret: the file must not be
 * readable by group or others. 0 or -1 with err naming the file. */
static int read_hex32(const char *path, bool secret, uint8_t out[32], char *err, size_t errlen)
{
	char buf[ZK_KEY_TEXT + 2];
	struct stat st;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fstat(fd, &st) != 0) {
		snprintf(err, errlen, "holder key %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (secret && (st.st_mode & 077))) {
		close(fd);
		snprintf(err, errlen, "holder key %s: %s", path, !S_ISREG(st.st_mode) ?
		         "not a regular file" : "group or others may read it (chmod 600)");
		return -1;
	}
	n = read(fd, buf, sizeof buf);
	close(fd);
	size_t len = n > 0 ? (size_t)n : 0;
	if (len && buf[len - 1] == '\n')
		len--;
	int rc = len == 64 && util_hex_decode(buf, 32, out) == 0 ? 0 : -1;
	sodium_memzero(buf, sizeof buf);
	if (rc != 0)
		snprintf(err, errlen, "holder key %s: want 64 hex characters", path);
	return rc;
}

int zk_cli_read_public(const char *file, uint8_t pk[32], char *err, size_t errlen)
{
	char path[CONFIG_PATH_MAX];
	size_t n = strlen(file), s = sizeof ZK_PUB_SUFFIX - 1;
	bool is_pub = n > s && strcmp(file + n - s, ZK_PUB_SUFFIX) == 0;

	if (snprintf(path, sizeof path, "%s%s", file, is_pub ? "" : ZK_PUB_SUFFIX) >=
	    (int)sizeof path) {
		snprintf(err, errlen, "holder key %s: path too long", file);
		return -1;
	}
	if (read_hex32(path, false, pk, err, errlen) != 0)
		return -1;
	if (sodium_is_zero(pk, 32) || !crypto_core_ristretto255_is_valid_point(pk)) {
		snprintf(err, errlen, "holder key %s: not a Ristretto255 public key", path);
		return -1;
	}
	return 0;
}

#if MN_WITH_ZK

int zk_cli_proof(const char *keyfile, const char *method, const char *path, const char *aud,
                 const uint8_t body[32], char *out, char *err,
                 size_t errlen)
{
	uint8_t *sk = sodium_init() < 0 ? NULL : sodium_malloc(ZK_SCALAR_LEN), rnd[32];
	zk_request rq = { method, path, aud };
	zk_proof p;
	int rc = -1;

	if (!sk) {
		snprintf(err, errlen, "out of secure memory");
		return -1;
	}
	randombytes_buf(rnd, sizeof rnd);
	if (read_hex32(keyfile, true, sk, err, errlen) == 0) {
		if (zkproof_prove(sk, &rq, body, (uint64_t)time(NULL), rnd, &p) == 0) {
			zkproof_format(&p, out);
			rc = 0;
		} else {
			snprintf(err, errlen, "holder key %s: not a valid secret, or the request is too "
			         "long to prove (method, path, audience)", keyfile);
		}
	}
	sodium_free(sk);
	return rc;
}

/* Write text to path, created exclusively with mode. 0 or -1. */
static int write_new(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t n = strlen(text);

	if (fd < 0) {
		fprintf(stderr, "macronode zk: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (write(fd, text, n) != (ssize_t)n || fsync(fd) != 0 || close(fd) != 0) {
		fprintf(stderr, "macronode zk: %s: %s\n", path, strerror(errno));
		(void)unlink(path);
		return -1;
	}
	return 0;
}

static int cmd_keygen(int argc, char **argv)
{
	char pub[CONFIG_PATH_MAX], *hex;
	uint8_t *sk, pk[ZK_POINT_LEN];
	int rc = ZK_EXIT_FAIL;

	if (argc != 2)
		return fprintf(stderr, "macronode zk keygen: want exactly one FILE\n"), ZK_EXIT_USAGE;
	if (snprintf(pub, sizeof pub, "%s%s", argv[1], ZK_PUB_SUFFIX) >= (int)sizeof pub)
		return fprintf(stderr, "macronode zk keygen: path too long\n"), ZK_EXIT_USAGE;
	sk = sodium_malloc(ZK_SCALAR_LEN);
	hex = sodium_malloc(ZK_KEY_TEXT + 1);
	if (sk && hex && zkproof_keygen(sk, pk) == 0) {
		util_hex_encode(sk, ZK_SCALAR_LEN, hex);
		hex[64] = '\n';
		hex[65] = '\0';
		if (write_new(argv[1], hex, 0600) == 0) {
			util_hex_encode(pk, ZK_POINT_LEN, hex);
			hex[64] = '\n';
			hex[65] = '\0';
			if (write_new(pub, hex, 0644) == 0) {
				printf("holder key: secret %s (mode 0600), public %s\n", argv[1], pub);
				rc = ZK_EXIT_OK;
			} else {
				(void)unlink(argv[1]);
			}
		}
	}
	sodium_free(sk);
	sodium_free(hex);
	return rc;
}

static int cmd_params(void)
{
	size_t len;
	const uint8_t *b = zkproof_params(&len);
	uint8_t h[ZK_DIGEST_LEN];
	char cid[B3_CID_LEN + 1];

	zkproof_params_hash(h);
	b3_cid_format(h, cid);
	fwrite(b, 1, len, stdout);
	printf("b3=%s\n", cid);
	return ZK_EXIT_OK;
}

static int cmd_pin(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "data-dir", required_argument, NULL, 'd' },
		{ "hash", required_argument, NULL, 'x' }, { "force", no_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	node_opts o = { .config_path = getenv("RON_CONFIG") };
	char err[CONFIG_ERR_MAX], path[CONFIG_PATH_MAX], kpath[CONFIG_PATH_MAX], cid[B3_CID_LEN + 1];
	uint8_t pin[ZKPIN_LEN];
	bool force = false, created = false;
	mn_config c;
	int ch;

	zkproof_params_hash(pin);
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (ch == 'c')
			o.config_path = optarg;
		else if (ch == 'd' && o.nov < NODE_MAX_OVERRIDES)
			o.ov[o.nov++] = (node_override){ "paths.data_dir", optarg };
		else if (ch == 'f')
			force = true;
		else if (ch == 'x' && b3_cid_parse(optarg, strlen(optarg), pin) == 0)
			continue;
		else
			return fprintf(stderr, "macronode zk pin: bad option %s\n", argv[optind - 1]),
			       ZK_EXIT_USAGE;
	}
	if (node_load_config(&o, &c, err, sizeof err) != 0) {
		fprintf(stderr, "macronode zk pin: config error: %s\n", err);
		config_free(&c);
		return ZK_EXIT_USAGE;
	}
	int rc = ZK_EXIT_FAIL;
	kek *k = NULL;
	if (config_zk_pin_file(&c, path, sizeof path) != 0)
		fprintf(stderr, "macronode zk pin: zk.params_pin_file: path too long\n");
	else if (!(k = cli_kek_obtain(&c, "macronode zk pin", !c.amnesia, &created, kpath, sizeof kpath)))
		;   /* cli_kek_obtain said why */
	else if (zkpin_write(path, k, pin, force, err, sizeof err) != 0)
		fprintf(stderr, "macronode zk pin: %s\n", err);
	else {
		b3_cid_format(pin, cid);
		printf("pinned %s in %s\n", cid, path);
		rc = ZK_EXIT_OK;
	}
	kek_free(k);
	config_free(&c);
	return rc;
}

/* The body digest of `zk prove`: --body FILE, --body-b3, or no bytes. */
static int prove_body(const char *file, const char *b3, uint8_t out[32])
{
	char *buf = NULL;
	size_t len = 0;

	if (b3)
		return b3_cid_parse(b3, strlen(b3), out);
	if (!file) {
		b3_hash("", 0, out);
		return 0;
	}
	if (util_read_file(file, (size_t)1 << 30, &buf, &len) != 0)
		return -1;
	b3_hash(buf, len, out);
	free(buf);
	return 0;
}

static int cmd_prove(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "holder-key", required_argument, NULL, 'k' }, { "method", required_argument, NULL, 'm' },
		{ "path", required_argument, NULL, 'p' }, { "aud", required_argument, NULL, 'a' },
		{ "body", required_argument, NULL, 'b' }, { "body-b3", required_argument, NULL, 'B' },
		{ "ts", required_argument, NULL, 't' }, { NULL, 0, NULL, 0 },
	};
	const char *key = NULL, *method = NULL, *path = NULL, *aud = NULL, *body = NULL, *bb3 = NULL;
	char out[ZK_PROOF_TEXT_MAX + 1], err[512];
	uint8_t digest[32];
	uint64_t ts = 0;
	int ch;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': key = optarg; break;
		case 'm': method = optarg; break;
		case 'p': path = optarg; break;
		case 'a': aud = optarg; break;
		case 'b': body = optarg; break;
		case 'B': bb3 = optarg; break;
		case 't':
			if (util_parse_u64(optarg, &ts) != 0)
				return fprintf(stderr, "macronode zk prove: bad --ts\n"), ZK_EXIT_USAGE;
			break;
		default:
			return fprintf(stderr, "macronode zk prove: bad option %s\n", argv[optind - 1]),
			       ZK_EXIT_USAGE;
		}
	}
	if (!key || !method || !path || !aud || (body && bb3))
		return fprintf(stderr, "macronode zk prove: needs --holder-key, --method, --path, "
		               "--aud (and at most one of --body, --body-b3)\n"), ZK_EXIT_USAGE;
	if (prove_body(body, bb3, digest) != 0)
		return fprintf(stderr, "macronode zk prove: cannot read the body\n"), ZK_EXIT_FAIL;
	if (ts) {
		/* An explicit timestamp (tests of the skew window): prove by hand. */
		uint8_t *sk = sodium_malloc(ZK_SCALAR_LEN);
		zk_request rq = { method, path, aud };
		zk_proof p;
		int rc = sk && read_hex32(key, true, sk, err, sizeof err) == 0 &&
		         zkproof_prove(sk, &rq, digest, ts, NULL, &p) == 0 ? 0 : -1;
		sodium_free(sk);
		if (rc != 0)
			return fprintf(stderr, "macronode zk prove: cannot prove with %s\n", key),
			       ZK_EXIT_FAIL;
		zkproof_format(&p, out);
	} else if (zk_cli_proof(key, method, path, aud, digest, out, err, sizeof err) != 0) {
		return fprintf(stderr, "macronode zk prove: %s\n", err), ZK_EXIT_FAIL;
	}
	printf("%s\n", out);
	return ZK_EXIT_OK;
}

int zk_cli_main(int argc, char **argv)
{
	if (sodium_init() < 0) {
		fprintf(stderr, "macronode zk: libsodium does not initialise\n");
		return ZK_EXIT_FAIL;
	}
	if (argc < 2) {
		fputs(usage_zk, stderr);
		return ZK_EXIT_USAGE;
	}
	const char *w = argv[1];
	if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0 || strcmp(w, "help") == 0) {
		fputs(usage_zk, stdout);
		return ZK_EXIT_OK;
	}
	if (strcmp(w, "keygen") == 0)
		return cmd_keygen(argc - 1, argv + 1);
	if (strcmp(w, "params") == 0)
		return cmd_params();
	if (strcmp(w, "pin") == 0)
		return cmd_pin(argc - 1, argv + 1);
	if (strcmp(w, "prove") == 0)
		return cmd_prove(argc - 1, argv + 1);
	fprintf(stderr, "macronode zk: unknown command '%s'\n%s", w, usage_zk);
	return ZK_EXIT_USAGE;
}

#else /* !MN_WITH_ZK */

int zk_cli_proof(const char *keyfile, const char *method, const char *path, const char *aud,
                 const uint8_t body[32], char *out, char *err,
                 size_t errlen)
{
	(void)keyfile; (void)method; (void)path; (void)aud; (void)body; (void)out;
	snprintf(err, errlen, "--holder-key: this build has no ZK support (-Dzk=disabled)");
	return -1;
}

int zk_cli_main(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "macronode zk: this build has no ZK support (-Dzk=disabled)\n");
	return ZK_EXIT_FAIL;
}

#endif
