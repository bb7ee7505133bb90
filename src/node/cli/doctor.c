/*
 * doctor.c — `macronode doctor`: ask a running node (its admin plane) what
 * is wrong, in words an operator can act on. Blocking I/O with short
 * timeouts: this is a CLI tool, not part of any event loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "core/config/config.h"
#include "node/node.h"

#define DOCTOR_TIMEOUT_S   2
#define DOCTOR_MAX_REPLY   (256u * 1024u)
#define DOCTOR_STATUS_MIN  100   /* a status outside these is no HTTP answer */
#define DOCTOR_STATUS_MAX  599

/* GET path from addr; returns the status code (body in *body, caller frees) or -1. */
static int doctor_get(const char *addr, const char *path, char **body, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned len;
	bool lo;
	struct timeval tv = { DOCTOR_TIMEOUT_S, 0 };
	char req[256];

	if (config_parse_addr(addr, &ss, &len, &lo) != 0) {
		snprintf(err, errlen, "%s: not an address", addr);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&ss, (socklen_t)len) != 0) {
		snprintf(err, errlen, "cannot reach the admin plane at %s: %s", addr, strerror(errno));
		close(fd);
		return -1;
	}
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: doctor\r\nConnection: close\r\n\r\n", path);
	char *buf = malloc(DOCTOR_MAX_REPLY + 1);
	size_t got = 0;
	if (!buf || write(fd, req, (size_t)n) != n) {
		snprintf(err, errlen, "%s: cannot send request", addr);
		free(buf);
		close(fd);
		return -1;
	}
	for (ssize_t r; got < DOCTOR_MAX_REPLY && (r = read(fd, buf + got, DOCTOR_MAX_REPLY - got)) > 0;)
		got += (size_t)r;
	close(fd);
	buf[got] = '\0';
	int status = 0;
	char *sep = strstr(buf, "\r\n\r\n");
	/* A negative status would read as "not reachable" and leak the body. */
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || !sep ||
	    status < DOCTOR_STATUS_MIN || status > DOCTOR_STATUS_MAX) {
		snprintf(err, errlen, "%s: no HTTP answer (timed out or not a macronode admin plane)", addr);
		free(buf);
		return -1;
	}
	*body = strdup(sep + 4);
	free(buf);
	if (!*body) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return status;
}

int doctor_run(const mn_config *cfg)
{
	char err[512];
	char *body = NULL;
	int status;

	if (cfg->admin_tls) {
		/* The doctor speaks plain HTTP only; say how to look instead. */
		printf("node at %s: admin.tls is on; doctor does not speak TLS: try\n"
		       "  curl --cacert <your CA> https://%s/readyz\n", cfg->admin_addr, cfg->admin_addr);
		return 2;
	}
	status = doctor_get(cfg->admin_addr, "/readyz", &body, err, sizeof err);

	if (status < 0) {
		printf("node at %s: NOT REACHABLE\n  %s\n  is it running? try `macronode check` and "
		       "`macronode run`\n", cfg->admin_addr, err);
		return 1;
	}
	json_error_t je;
	json_t *j = json_loads(body, 0, &je);
	free(body);
	const char *state = json_string_value(json_object_get(j, "status"));
	printf("node at %s: %s (HTTP %d)\n", cfg->admin_addr, state ? state : "unknown", status);
	json_t *reasons = json_object_get(j, "reasons");
	size_t i;
	json_t *v;
	json_array_foreach(reasons, i, v)
		printf("  - %s\n", json_string_value(v));
	if (json_array_size(reasons) == 0 && status == 200)
		printf("  nothing wrong\n");
	json_decref(j);
	return status == 200 ? 0 : 1;
}
