/*
 * zkpin.c — the sealed pin of the ZK parameter bundle (see zkpin.h).
 */
#include "core/keys/zkpin.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "core/keys/keyfile.h"
#include "lib/b3.h"
#include "lib/util.h"

int zkpin_read(const char *path, const kek *k, uint8_t pin[ZKPIN_LEN], char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;

	if (util_read_file(path, ZKPIN_FILE_MAX, &buf, &len) != 0) {
		snprintf(err, errlen, "zk.params_pin_file %s: %s (create it with `macronode zk pin`)",
		         path, strerror(errno));
		return -1;
	}
	int rc = keyfile_unseal((const uint8_t *)buf, len, k, ZKPIN_AAD, pin, ZKPIN_LEN, NULL, path,
	                        err, errlen);
	free(buf);
	if (rc == KEYFILE_CLEAR) {
		snprintf(err, errlen, "zk.params_pin_file %s: not sealed (write it with `macronode zk "
		         "pin`)", path);
		return -1;
	}
	return rc == 0 ? 0 : -1;
}

int zkpin_write(const char *path, const kek *k, const uint8_t pin[ZKPIN_LEN], bool replace,
                char *err, size_t errlen)
{
	char dir[CONFIG_PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!k) {
		snprintf(err, errlen, "zk.params_pin_file %s: no KEK to seal it with", path);
		return -1;
	}
	if (slash && slash != path) {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir) {
			snprintf(err, errlen, "zk.params_pin_file: path too long");
			return -1;
		}
		memcpy(dir, path, n);
		dir[n] = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "zk.params_pin_file %s: cannot create %s: %s", path, dir,
			         strerror(errno));
			return -1;
		}
	}
	return keyfile_write(path, k, ZKPIN_AAD, pin, ZKPIN_LEN, 0600,
	                     replace ? 0u : UTIL_WRITE_NOREPLACE, err, errlen);
}

int zkpin_check(const mn_config *c, const kek *k, const uint8_t bundle[ZKPIN_LEN], char *err,
                size_t errlen)
{
	char path[CONFIG_PATH_MAX], why[CONFIG_ERR_MAX], want[B3_CID_LEN + 1], have[B3_CID_LEN + 1];
	uint8_t pin[ZKPIN_LEN];

	if (!c->zk_enabled)
		return 0;
	if (config_zk_pin_file(c, path, sizeof path) != 0) {
		snprintf(err, errlen, "zk.params_pin_file: path too long");
		return -1;
	}
	if (!k) {
		snprintf(err, errlen, "zk_param_mismatch: zk.params_pin_file %s: no KEK to open the "
		         "pin with (zk.enabled needs the key store)", path);
		return -1;
	}
	if (zkpin_read(path, k, pin, why, sizeof why) != 0) {
		snprintf(err, errlen, "zk_param_mismatch: %s", why);
		return -1;
	}
	if (sodium_memcmp(pin, bundle, ZKPIN_LEN) != 0) {
		b3_cid_format(pin, have);
		b3_cid_format(bundle, want);
		snprintf(err, errlen, "zk_param_mismatch: zk.params_pin_file %s pins %s but this "
		         "build verifies with the parameter bundle %s (zk.enabled)", path, have, want);
		return -1;
	}
	return 0;
}
