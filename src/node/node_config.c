/*
 * node_config.c — the effective config of `run` (and of `check`, `config
 * validate`, `config print` and every reload): defaults < file < RON_*
 * environment < command-line overrides, then every cross-key rule and the
 * files the config names. One function, so that what `config validate`
 * accepts is exactly what `run` would.
 */
#include <stdio.h>

#include "core/config/config.h"
#include "core/tls.h"
#include "node/node.h"

/*
 * Checks that need the files a key names: whatever `run` would refuse,
 * `config validate` and `check` refuse too. Building the TLS context once
 * proves the certificate, key (permissions included), CA and pin.
 */
static int node_check_files(const mn_config *c, char *err, size_t errlen)
{
	if (!c->tls_cert_file[0])
		return 0;
	tls_server *t = tls_server_new(c, err, errlen);
	if (!t)
		return -1;
	tls_server_free(t);
	return 0;
}

int node_load_config(const node_opts *o, mn_config *out, char *err, size_t errlen)
{
	config_defaults(out);
	if (o->config_path && config_load_file(out, o->config_path, err, errlen) != 0)
		return -1;
	if (config_apply_env_kept(out, o->kept, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < o->nov; i++) {
		char e[CONFIG_ERR_MAX];
		if (config_set(out, o->ov[i].key, o->ov[i].value, e, sizeof e) != 0) {
			snprintf(err, errlen, "command line: %s", e);
			return -1;
		}
	}
	if (config_validate(out, err, errlen) != 0)
		return -1;
	return node_check_files(out, err, errlen);
}
