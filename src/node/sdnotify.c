/*
 * sdnotify.c — Type=notify messages to systemd (sdnotify.h).
 */
#include "node/sdnotify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "lib/log.h"

/* sd_pid_notify with our pid: the supervisor is the unit's main process. */
static void sdn_send(sd_state *sd, const char *msg)
{
	int rc;

	if (!sd->on)
		return;
	rc = sd_notify(0, msg);
	if (rc < 0)
		log_kv(LOG_LEVEL_WARN, "sd_notify failed", "error", strerror(-rc), LOG_END);
}

void sdn_init(sd_state *sd)
{
	uint64_t usec = 0;
	const char *sock = getenv("NOTIFY_SOCKET");

	memset(sd, 0, sizeof *sd);
	sd->on = sock && sock[0];
	if (sd->on && sd_watchdog_enabled(0, &usec) > 0)
		sd->watchdog_usec = usec;
	/* The supervisor keeps the socket's address: sd_notify reads the
	 * variable on every call, so keep it for us but not for children. */
}

void sdn_readiness(sd_state *sd, bool serving, const char *status, bool watchdog)
{
	char msg[256];

	if (!sd->on)
		return;
	if (serving && !sd->ready_sent) {
		sd->ready_sent = true;
		snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
		sdn_send(sd, msg);
	}
	if (watchdog && sd->watchdog_usec)
		sdn_send(sd, "WATCHDOG=1");
}

void sdn_reloading(sd_state *sd)
{
	struct timespec ts;
	char msg[96];

	if (!sd->on || !sd->ready_sent)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
	sdn_send(sd, msg);
}

void sdn_reloaded(sd_state *sd, bool ok)
{
	if (!sd->ready_sent)
		return;   /* still starting: sdn_readiness sends the first READY=1 */
	sdn_send(sd, ok ? "READY=1\nSTATUS=reloaded" : "READY=1\nSTATUS=reload refused; old config kept");
}

void sdn_stopping(sd_state *sd, const char *why)
{
	char msg[128];

	snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=draining (%s)", why);
	sdn_send(sd, msg);
}
