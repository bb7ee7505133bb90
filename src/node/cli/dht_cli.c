/*
 * dht_cli.c — `macronode peers` and `macronode find b3:CID`: ask the running
 * node's dht service over <runtime_dir>/dht.sock (the same client the
 * services use, core/dht/dht_client.h, on a loop of its own) and print the
 * answer. Only the node's own uid may connect (SO_PEERCRED).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/dht/dht_client.h"
#include "core/identity/identity.h"
#include "lib/b3.h"
#include "node/node.h"

#define DHT_CLI_GRACE_MS 2000u   /* beyond dht.lookup_timeout before giving up */

typedef struct dht_cli {
	struct event_base *base;
	int                rc;      /* exit code */
	bool               done;
	uint8_t            cid[32];
} dht_cli;

static void cli_done(dht_cli *x, int rc)
{
	x->rc = rc;
	x->done = true;
	event_base_loopbreak(x->base);
}

static int cli_fail(const char *what, int status, const char *message)
{
	fprintf(stderr, "macronode %s: dht service: %d %s\n", what, status, message);
	return 1;
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void on_peers(int status, const char *message, const dht_rep_peers *p, void *arg)
{
	dht_cli *x = arg;
	char id[2 * DHT_NODE_ID_LEN + 1];

	if (status != 200) {
		cli_done(x, cli_fail("peers", status, message));
		return;
	}
	printf("routing table: %u nodes (%u good, %u dubious)\n", p->good + p->dubious, p->good,
	       p->dubious);
	for (size_t i = 0; i < p->n; i++) {
		hex_of(p->p[i].id, DHT_NODE_ID_LEN, id);
		printf("%s  %s\n", id, p->p[i].addr);
	}
	cli_done(x, 0);
}

static void on_providers(int status, const char *message, const dht_found *p, size_t n,
                         void *arg)
{
	dht_cli *x = arg;
	char cid[B3_CID_LEN + 1], id[IDENTITY_ID_TEXT], when[32];

	if (status != 200) {
		cli_done(x, cli_fail("find", status, message));
		return;
	}
	b3_cid_format(x->cid, cid);
	if (n == 0) {
		fprintf(stderr, "macronode find: no provider of %s found\n", cid);
		cli_done(x, 1);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		time_t t = (time_t)p[i].expires;
		struct tm tm;
		identity_id_format(p[i].node_id, id);
		if (!gmtime_r(&t, &tm) || !strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
			snprintf(when, sizeof when, "%llu", (unsigned long long)p[i].expires);
		printf("%s  %s%s%s  expires %s\n", id, p[i].oap_addr,
		       p[i].oap_addr[0] && p[i].onion[0] ? " " : "", p[i].onion, when);
	}
	cli_done(x, 0);
}

static void on_give_up(evutil_socket_t fd, short what, void *arg)
{
	(void)fd; (void)what;
	fprintf(stderr, "macronode: the dht service did not answer in time\n");
	cli_done(arg, 1);
}

/* Run one call (start) against the node's dht.sock. */
static int dht_cli_run(const mn_config *cfg, const char *what, dht_cli *x,
                       dht_call *(*start)(dht_client *, dht_cli *))
{
	char path[CONFIG_PATH_MAX + 16];
	uint64_t ms = cfg->dht_lookup_timeout_ms + DHT_CLI_GRACE_MS;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	if (config_socket_path(cfg, NODE_DHT_SOCKET, path, sizeof path) != 0) {
		fprintf(stderr, "macronode %s: paths.runtime_dir: too long\n", what);
		return 2;
	}
	if (access(path, F_OK) != 0) {
		fprintf(stderr, "macronode %s: no dht service at %s (is the node running with "
		        "\"dht\" in services?%s)\n", what, path,
		        cfg->amnesia ? " an amnesia node needs paths.runtime_dir set" : "");
		return 1;
	}
	x->base = event_base_new();
	dht_client *c = x->base ? dht_client_new(x->base, path) : NULL;
	struct event *t = x->base ? evtimer_new(x->base, on_give_up, x) : NULL;
	x->rc = 1;
	if (c && t && evtimer_add(t, &tv) == 0) {
		(void)start(c, x);
		while (!x->done && event_base_loop(x->base, EVLOOP_ONCE) == 0)
			;
	}
	if (t)
		event_free(t);
	dht_client_free(c);
	if (x->base)
		event_base_free(x->base);
	return x->rc;
}

static dht_call *start_peers(dht_client *c, dht_cli *x)
{
	return dht_peers(c, on_peers, x);
}

static dht_call *start_find(dht_client *c, dht_cli *x)
{
	return dht_find_providers(c, x->cid, on_providers, x);
}

int dht_cli_peers(const mn_config *cfg)
{
	dht_cli x = { .rc = 1 };

	return dht_cli_run(cfg, "peers", &x, start_peers);
}

int dht_cli_find(const mn_config *cfg, const char *cid)
{
	dht_cli x = { .rc = 1 };

	if (b3_cid_parse(cid, strlen(cid), x.cid) != 0) {
		fprintf(stderr, "macronode find: not a content id: expected b3:<64 lowercase hex>\n");
		return 2;
	}
	return dht_cli_run(cfg, "find", &x, start_find);
}
