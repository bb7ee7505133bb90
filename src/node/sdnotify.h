/*
 * sdnotify.h — the supervisor's messages to systemd (Type=notify), through
 * libsystemd's sd_notify (sdnotify.c). Nothing happens unless the service
 * manager set $NOTIFY_SOCKET; children never see it (the supervisor alone
 * speaks for the node).
 *
 *   READY=1      the first time /readyz would answer 200 (ready or degraded)
 *   RELOADING=1  + MONOTONIC_USEC when a reload begins, READY=1 when it ended;
 *                only once the first READY=1 went out: a reload while the
 *                start job still waits (e.g. SIGHUP after installing the
 *                policy) must not end it before /readyz serves
 *   STOPPING=1   when the drain begins
 *   WATCHDOG=1   every supervisor tick while $WATCHDOG_USEC is set (the tick
 *                must come well inside it: WatchdogSec ≥ 3 s)
 *   STATUS=      readiness in words with each of them
 */
#ifndef MN_NODE_SDNOTIFY_H
#define MN_NODE_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Owned by the supervisor (node.h: supervisor.sd); loop thread only. */
typedef struct sd_state {
	bool     on;            /* $NOTIFY_SOCKET was set at start */
	bool     ready_sent;
	uint64_t watchdog_usec; /* 0: no watchdog asked for */
} sd_state;

/* Read the manager's environment, then remove NOTIFY_SOCKET, WATCHDOG_USEC
 * and WATCHDOG_PID from it so no child inherits them. */
void sdn_init(sd_state *sd);
/* A readiness verdict was computed: READY=1 the first time it serves;
 * WATCHDOG=1 when watchdog is true. status: readiness in words. */
void sdn_readiness(sd_state *sd, bool serving, const char *status, bool watchdog);
/* Around a reload; nothing before the first READY=1 (see above). */
void sdn_reloading(sd_state *sd);
void sdn_reloaded(sd_state *sd, bool ok);
void sdn_stopping(sd_state *sd, const char *why);

#endif
