/*
 * torctl.c — one session with tor's control port. See torctl.h.
 */
#include "core/tor/torctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config/config.h"
#include "core/tor/onion.h"

#define TORCTL_CMD_MAX   512u   /* ADD_ONION with its key is the longest */
#define TORCTL_PATH_MAX  CONFIG_PATH_MAX

typedef enum {
	TC_CONNECTING = 0, TC_PROTOCOLINFO, TC_AUTH, TC_ADD_ONION, TC_IDLE, TC_GETINFO, TC_DEAD,
} tc_state;

struct torctl {
	struct event_base  *base;
	struct bufferevent *bev;
	struct event       *deadline, *poll, *down;
	tc_state            state;
	torctl_cbs          cbs;
	void               *arg;
	uint64_t            timeout_ms, poll_ms;
	char                control[TORCTL_PATH_MAX];
	char                cookie_file[TORCTL_PATH_MAX];  /* "" = as tor says */
	char               *key_arg;       /* sodium memory, or NULL: NEW */
	uint16_t            virt_port;
	char                target[CONFIG_ADDR_MAX];
	/* the reply being read */
	char                lines[TORCTL_REPLY_LINES][TORCTL_LINE_MAX + 1];
	unsigned            nlines;
	bool                in_data;       /* inside a "250+" data block */
	int                 code;          /* of the reply's lines */
	torctl_fail         why;           /* once DEAD: reported by the down event */
	char                detail[TORCTL_DETAIL_MAX];
	struct sockaddr_storage ss;        /* the control port */
	unsigned            sslen;
};

static const char *const tc_fail_names[] = {
	[TORCTL_F_CONNECT] = "connect", [TORCTL_F_PROTOCOL] = "protocol",
	[TORCTL_F_AUTH] = "auth", [TORCTL_F_ONION] = "onion", [TORCTL_F_TIMEOUT] = "timeout",
};

const char *torctl_fail_name(torctl_fail f)
{
	return (unsigned)f < TORCTL_F_COUNT ? tc_fail_names[f] : "unknown";
}

/* ---- parsers -------------------------------------------------------------- */

/* A QuotedString of the control protocol (after the opening quote): \\ and
 * \" escapes. The length consumed with the closing quote, or -1. */
static int tc_unquote(const char *p, char *out, size_t cap)
{
	size_t o = 0;
	const char *s = p;

	for (; *s && *s != '"'; s++) {
		if (*s == '\\' && s[1])
			s++;
		if (o + 1 >= cap)
			return -1;
		out[o++] = *s;
	}
	if (*s != '"')
		return -1;
	out[o] = '\0';
	return (int)(s - p + 1);
}

static unsigned tc_method_bit(const char *m, size_t n)
{
	static const struct { const char *name; unsigned bit; } tab[] = {
		{ "NULL", TORCTL_AUTH_NULL }, { "COOKIE", TORCTL_AUTH_COOKIE },
		{ "SAFECOOKIE", TORCTL_AUTH_SAFE }, { "HASHEDPASSWORD", TORCTL_AUTH_PASS },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strlen(tab[i].name) == n && memcmp(tab[i].name, m, n) == 0)
			return tab[i].bit;
	return 0;
}

int torctl_parse_auth(const char *line, unsigned *methods, char *cookie, size_t cap)
{
	const char *p = line + strlen("AUTH METHODS=");
	const char *end;

	*methods = 0;
	cookie[0] = '\0';
	if (strncmp(line, "AUTH METHODS=", strlen("AUTH METHODS=")) != 0)
		return -1;
	end = p + strcspn(p, " ");
	while (p < end) {
		size_t n = strcspn(p, ",");
		if (p + n > end)
			n = (size_t)(end - p);
		*methods |= tc_method_bit(p, n);
		p += n + (p + n < end);
	}
	p = strstr(end, " COOKIEFILE=\"");
	if (p && tc_unquote(p + strlen(" COOKIEFILE=\""), cookie, cap) < 0)
		return -1;
	return *methods ? 0 : -1;
}

int torctl_parse_bootstrap(const char *line, unsigned *pct, char *tag, size_t cap)
{
	const char *p = strstr(line, " PROGRESS="), *t = strstr(line, " TAG=");
	unsigned long v = 0;
	size_t n, i;

	if (strncmp(line, "status/bootstrap-phase=", strlen("status/bootstrap-phase=")) != 0 ||
	    !p || !t)
		return -1;
	p += strlen(" PROGRESS=");
	for (i = 0; i < 3 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10u + (unsigned long)(p[i] - '0');
	if (i == 0 || v > 100u || (p[i] != ' ' && p[i] != '\0'))
		return -1;
	t += strlen(" TAG=");
	n = strcspn(t, " ");
	if (n == 0 || n >= cap)
		return -1;
	memcpy(tag, t, n);
	tag[n] = '\0';
	*pct = (unsigned)v;
	return 0;
}

/* ---- session -------------------------------------------------------------- */

static void tc_down(torctl *t, torctl_fail why, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The end. on_down runs from its own event, where nothing of ours is on
 * the stack, so the owner may free t there. */
static void tc_down(torctl *t, torctl_fail why, const char *fmt, ...)
{
	va_list ap;

	if (t->state == TC_DEAD)
		return;
	t->state = TC_DEAD;
	t->why = why;
	va_start(ap, fmt);
	vsnprintf(t->detail, sizeof t->detail, fmt, ap);
	va_end(ap);
	event_del(t->deadline);
	event_del(t->poll);
	if (t->bev)
		bufferevent_disable(t->bev, EV_READ | EV_WRITE);
	event_active(t->down, EV_TIMEOUT, 1);
}

static void on_tc_down(evutil_socket_t fd, short what, void *arg)
{
	torctl *t = arg;

	(void)fd;
	(void)what;
	t->cbs.on_down(t->arg, t->why, t->detail);
}

static void tc_arm(torctl *t)
{
	struct timeval tv = { (time_t)(t->timeout_ms / 1000u),
	                      (suseconds_t)((t->timeout_ms % 1000u) * 1000u) };
	(void)event_add(t->deadline, &tv);
}

/* Send one command line (CRLF added) and wait for its reply. The buffer is
 * wiped: AUTHENTICATE and ADD_ONION carry secrets. */
static void tc_send(torctl *t, tc_state next, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tc_send(torctl *t, tc_state next, const char *fmt, ...)
{
	char cmd[TORCTL_CMD_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof cmd - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof cmd - 2) {
		sodium_memzero(cmd, sizeof cmd);
		tc_down(t, TORCTL_F_PROTOCOL, "a command too long to send");
		return;
	}
	memcpy(cmd + n, "\r\n", 2);
	t->nlines = 0;
	t->in_data = false;
	t->state = next;
	if (bufferevent_write(t->bev, cmd, (size_t)n + 2) != 0) {
		sodium_memzero(cmd, sizeof cmd);
		tc_down(t, TORCTL_F_CONNECT, "cannot queue a command");
		return;
	}
	sodium_memzero(cmd, sizeof cmd);
	tc_arm(t);
}

/* The line of a reply starting with key (after "250-"/"250 "), or NULL. */
static const char *tc_find(const torctl *t, const char *key)
{
	for (unsigned i = 0; i < t->nlines; i++)
		if (strncmp(t->lines[i] + 4, key, strlen(key)) == 0)
			return t->lines[i] + 4;
	return NULL;
}

/* The cookie's 32 bytes. A regular file of exactly that size: a 32-byte
 * local read (tor's own file beside its control socket), not a wait on
 * the network. */
static int tc_read_cookie(const char *path, uint8_t cookie[TORCTL_COOKIE_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	uint8_t extra;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, cookie, TORCTL_COOKIE_LEN);
	if (n != (ssize_t)TORCTL_COOKIE_LEN || read(fd, &extra, 1) != 0) {
		close(fd);
		sodium_memzero(cookie, TORCTL_COOKIE_LEN);
		return -1;
	}
	close(fd);
	return 0;
}

static void tc_on_protocolinfo(torctl *t)
{
	const char *auth = tc_find(t, "AUTH ");
	char path[TORCTL_PATH_MAX];
	uint8_t cookie[TORCTL_COOKIE_LEN];
	char hex[2 * TORCTL_COOKIE_LEN + 1];
	unsigned m;

	if (!auth || torctl_parse_auth(auth, &m, path, sizeof path) != 0) {
		tc_down(t, TORCTL_F_PROTOCOL, "PROTOCOLINFO without an AUTH line we understand");
		return;
	}
	if (m & TORCTL_AUTH_NULL) {
		tc_send(t, TC_AUTH, "AUTHENTICATE");
		return;
	}
	if (!(m & TORCTL_AUTH_COOKIE)) {
		tc_down(t, TORCTL_F_AUTH, "tor offers no COOKIE authentication (set "
		        "CookieAuthentication 1; SAFECOOKIE and passwords are not used)");
		return;
	}
	if (t->cookie_file[0])
		snprintf(path, sizeof path, "%s", t->cookie_file);
	if (!path[0] || tc_read_cookie(path, cookie) != 0) {
		tc_down(t, TORCTL_F_AUTH, "cannot read tor's 32-byte auth cookie %s", path);
		return;
	}
	sodium_bin2hex(hex, sizeof hex, cookie, sizeof cookie);
	sodium_memzero(cookie, sizeof cookie);
	tc_send(t, TC_AUTH, "AUTHENTICATE %s", hex);
	sodium_memzero(hex, sizeof hex);
}

static void tc_add_onion(torctl *t)
{
	if (t->key_arg)
		tc_send(t, TC_ADD_ONION, "ADD_ONION %s Port=%u,%s", t->key_arg, (unsigned)t->virt_port,
		        t->target);
	else
		tc_send(t, TC_ADD_ONION, "ADD_ONION NEW:ED25519-V3 Flags=DiscardPK Port=%u,%s",
		        (unsigned)t->virt_port, t->target);
}

static void tc_on_add_onion(torctl *t)
{
	const char *id = tc_find(t, "ServiceID=");
	char name[ONION_NAME_LEN + 1];

	if (t->code != 250) {
		tc_down(t, TORCTL_F_ONION, "ADD_ONION refused (%d)", t->code);
		return;
	}
	if (!id || strlen(id + strlen("ServiceID=")) != ONION_NAME_B32) {
		tc_down(t, TORCTL_F_ONION, "ADD_ONION answered without a v3 ServiceID");
		return;
	}
	snprintf(name, sizeof name, "%s.onion", id + strlen("ServiceID="));
	if (!onion_name_is_v3(name, strlen(name))) {
		tc_down(t, TORCTL_F_ONION, "ADD_ONION answered without a v3 ServiceID");
		return;
	}
	t->state = TC_IDLE;
	event_active(t->poll, EV_TIMEOUT, 1);   /* the first poll at once */
	t->cbs.on_onion(t->arg, id + strlen("ServiceID="));
}

static void tc_on_getinfo(torctl *t)
{
	const char *line = tc_find(t, "status/bootstrap-phase=");
	char tag[TORCTL_TAG_MAX];
	unsigned pct;
	struct timeval tv = { (time_t)(t->poll_ms / 1000u), (suseconds_t)((t->poll_ms % 1000u) * 1000u) };

	if (t->code != 250 || !line || torctl_parse_bootstrap(line, &pct, tag, sizeof tag) != 0) {
		tc_down(t, TORCTL_F_PROTOCOL, "GETINFO status/bootstrap-phase: no answer we understand");
		return;
	}
	t->state = TC_IDLE;
	(void)event_add(t->poll, &tv);
	t->cbs.on_bootstrap(t->arg, pct, tag);
}

/* A whole reply is in: what it means depends on what we asked. */
static void tc_on_reply(torctl *t)
{
	event_del(t->deadline);
	switch (t->state) {
	case TC_PROTOCOLINFO:
		if (t->code != 250)
			tc_down(t, TORCTL_F_PROTOCOL, "PROTOCOLINFO refused (%d)", t->code);
		else
			tc_on_protocolinfo(t);
		break;
	case TC_AUTH:
		if (t->code != 250)
			tc_down(t, TORCTL_F_AUTH, "tor refused our authentication (%d)", t->code);
		else
			tc_add_onion(t);
		break;
	case TC_ADD_ONION: tc_on_add_onion(t); break;
	case TC_GETINFO:   tc_on_getinfo(t); break;
	default:
		tc_down(t, TORCTL_F_PROTOCOL, "a reply nobody asked for");
		break;
	}
}

/* One line: "NNN-" mid-reply, "NNN+" a data block to its ".", "NNN " the
 * end. Asynchronous 6xx events are not subscribed to, and skipped. 1: the
 * reply is complete, 0: more, -1: the session ended. */
static int tc_line(torctl *t, const char *line, size_t n)
{
	int code;

	if (t->in_data) {
		t->in_data = !(n == 1 && line[0] == '.');
		return 0;
	}
	if (n < 4 || line[0] < '1' || line[0] > '6' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9' || (line[3] != '-' && line[3] != '+' && line[3] != ' ')) {
		tc_down(t, TORCTL_F_PROTOCOL, "not a control-protocol line");
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (line[0] == '6')
		return 0;
	if (t->nlines >= TORCTL_REPLY_LINES) {
		tc_down(t, TORCTL_F_PROTOCOL, "a reply of more than %u lines", TORCTL_REPLY_LINES);
		return -1;
	}
	memcpy(t->lines[t->nlines], line, n + 1);
	t->nlines++;
	t->code = code;
	t->in_data = line[3] == '+';
	return line[3] == ' ';
}

static void on_tc_read(struct bufferevent *bev, void *arg)
{
	torctl *t = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (t->state != TC_DEAD) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		int r;

		if (!line) {
			if (evbuffer_get_length(in) > TORCTL_LINE_MAX)
				tc_down(t, TORCTL_F_PROTOCOL, "a line over %u bytes", TORCTL_LINE_MAX);
			return;
		}
		if (n > TORCTL_LINE_MAX || memchr(line, '\0', n)) {
			free(line);
			tc_down(t, TORCTL_F_PROTOCOL, "a line over %u bytes", TORCTL_LINE_MAX);
			return;
		}
		r = tc_line(t, line, n);
		free(line);
		if (r < 0)
			return;
		if (r == 1) {
			if (t->state == TC_IDLE || t->state == TC_CONNECTING) {
				tc_down(t, TORCTL_F_PROTOCOL, "a reply nobody asked for");
				return;
			}
			tc_on_reply(t);   /* may end the session: the loop re-checks */
		}
	}
}

static void on_tc_event(struct bufferevent *bev, short what, void *arg)
{
	torctl *t = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		tc_send(t, TC_PROTOCOLINFO, "PROTOCOLINFO 1");
		return;
	}
	if (what & BEV_EVENT_EOF)
		tc_down(t, TORCTL_F_CONNECT, "tor closed the control connection");
	else
		tc_down(t, TORCTL_F_CONNECT, "control port %s: %s", t->control,
		        evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void on_tc_deadline(evutil_socket_t fd, short what, void *arg)
{
	torctl *t = arg;

	(void)fd;
	(void)what;
	tc_down(t, TORCTL_F_TIMEOUT, "no answer from tor's control port within %llu ms",
	        (unsigned long long)t->timeout_ms);
}

static void on_tc_poll(evutil_socket_t fd, short what, void *arg)
{
	torctl *t = arg;

	(void)fd;
	(void)what;
	if (t->state == TC_CONNECTING) {
		/* Out of torctl_new, so that a refusal reports through on_down. */
		if (bufferevent_socket_connect(t->bev, (struct sockaddr *)&t->ss, (int)t->sslen) != 0)
			tc_down(t, TORCTL_F_CONNECT, "control port %s: %s", t->control, strerror(errno));
		return;
	}
	if (t->state == TC_IDLE)
		tc_send(t, TC_GETINFO, "GETINFO status/bootstrap-phase");
}

/* The control address as a sockaddr: a path (UNIX) or numeric ip:port. */
static int tc_sockaddr(const char *control, struct sockaddr_storage *ss, unsigned *len)
{
	bool lo;

	if (control[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		if (strlen(control) >= sizeof un->sun_path)
			return -1;
		memset(un, 0, sizeof *un);
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, control, strlen(control) + 1);
		*len = (unsigned)sizeof *un;
		return 0;
	}
	return config_parse_addr(control, ss, len, &lo);
}

torctl *torctl_new(struct event_base *base, const torctl_opts *o, const torctl_cbs *cbs,
                   void *arg, char *err, size_t errlen)
{
	torctl *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->base = base;
	t->cbs = *cbs;
	t->arg = arg;
	t->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000u;
	t->poll_ms = o->poll_ms ? o->poll_ms : 5000u;
	t->virt_port = o->virt_port;
	snprintf(t->control, sizeof t->control, "%s", o->control);
	snprintf(t->cookie_file, sizeof t->cookie_file, "%s", o->cookie_file ? o->cookie_file : "");
	snprintf(t->target, sizeof t->target, "%s", o->target);
	if (o->key_arg) {
		size_t kl = strlen(o->key_arg) + 1;
		if (!(t->key_arg = sodium_malloc(kl))) {
			torctl_free(t);
			snprintf(err, errlen, "out of secure memory");
			return NULL;
		}
		memcpy(t->key_arg, o->key_arg, kl);
	}
	if (tc_sockaddr(o->control, &t->ss, &t->sslen) != 0) {
		torctl_free(t);
		snprintf(err, errlen, "%s: not a control socket path or numeric ip:port", o->control);
		return NULL;
	}
	t->deadline = evtimer_new(base, on_tc_deadline, t);
	t->poll = evtimer_new(base, on_tc_poll, t);
	t->down = evtimer_new(base, on_tc_down, t);
	t->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!t->deadline || !t->poll || !t->down || !t->bev) {
		torctl_free(t);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	bufferevent_setcb(t->bev, on_tc_read, NULL, on_tc_event, t);
	bufferevent_setwatermark(t->bev, EV_READ, 0, TORCTL_LINE_MAX * 2u);
	bufferevent_enable(t->bev, EV_READ | EV_WRITE);
	t->state = TC_CONNECTING;
	tc_arm(t);
	event_active(t->poll, EV_TIMEOUT, 1);   /* connects from the loop */
	return t;
}

void torctl_free(torctl *t)
{
	if (!t)
		return;
	if (t->bev)
		bufferevent_free(t->bev);
	if (t->deadline)
		event_free(t->deadline);
	if (t->poll)
		event_free(t->poll);
	if (t->down)
		event_free(t->down);
	sodium_free(t->key_arg);
	sodium_memzero(t->lines, sizeof t->lines);
	free(t);
}
