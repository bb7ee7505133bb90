/*
 * log.c — JSON-lines logging (see log.h).
 */
#include "lib/log.h"
#include "lib/util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX   4096  /* one record; longer values are truncated */
#define LOG_SERVICE_MAX  32

/*
 * The process-wide logger. Owned by this module; written once by log_init()
 * at start-up (and by log_set_level on reload) from the event-loop thread.
 */
struct log_state {
	char       service[LOG_SERVICE_MAX];
	log_level  min;
	log_format format;
	int        fd;
	void     (*bug_hook)(void);
};
static struct log_state g_log = { "macronode", LOG_LEVEL_INFO, LOG_FORMAT_JSON, 2, NULL };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *service, log_level min, int fd)
{
	if (service) {
		size_t n = strnlen(service, LOG_SERVICE_MAX - 1);
		memcpy(g_log.service, service, n);
		g_log.service[n] = '\0';
	}
	g_log.min = min;
	g_log.fd = fd;
}

void log_set_level(log_level min) { g_log.min = min; }
void log_set_format(log_format fmt) { g_log.format = fmt; }
log_level log_get_level(void) { return g_log.min; }

const char *log_level_name(log_level l)
{
	return (unsigned)l < 4 ? level_names[l] : "info";
}

int log_level_parse(const char *s, log_level *out)
{
	if (!s)
		return -1;
	if (strcmp(s, "trace") == 0) {
		*out = LOG_LEVEL_DEBUG;
		return 0;
	}
	for (unsigned i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (log_level)i;
			return 0;
		}
	}
	return -1;
}

size_t log_json_escape(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;

	if (dstlen == 0)
		return 0;
	for (const unsigned char *p = (const unsigned char *)src; p && *p; p++) {
		char esc[7];
		size_t n;
		unsigned char ch = *p;

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\'; esc[1] = (char)ch; n = 2;
		} else if (ch == '\n') {
			esc[0] = '\\'; esc[1] = 'n'; n = 2;
		} else if (ch == '\r') {
			esc[0] = '\\'; esc[1] = 'r'; n = 2;
		} else if (ch == '\t') {
			esc[0] = '\\'; esc[1] = 't'; n = 2;
		} else if (ch < 0x20 || ch == 0x7f) {
			esc[0] = '\\'; esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
			util_hex_encode(&ch, 1, esc + 4); n = 6;
		} else {
			esc[0] = (char)ch; n = 1;
		}
		if (o + n >= dstlen)
			break;
		memcpy(dst + o, esc, n);
		o += n;
	}
	dst[o] = '\0';
	return o;
}

/* Appends s to line at *o, bounded; keeps room for the closing "}\n". */
static void put(char *line, size_t *o, const char *s)
{
	size_t n = strlen(s);
	if (*o + n > LOG_LINE_MAX - 3)
		n = LOG_LINE_MAX - 3 - *o;
	memcpy(line + *o, s, n);
	*o += n;
}

static void put_field(char *line, size_t *o, const char *key, const char *val)
{
	char esc[LOG_LINE_MAX];

	put(line, o, ",\"");
	log_json_escape(esc, sizeof esc, key);
	put(line, o, esc);
	put(line, o, "\":\"");
	log_json_escape(esc, sizeof esc, val ? val : "");
	put(line, o, esc);
	put(line, o, "\"");
}

static void format_ts(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void write_all(int fd, const char *buf, size_t len)
{
	if (util_write_all(fd, buf, len) != 0)
		return;   /* nowhere to report a failing log fd: the line is dropped */
}

static void emit(log_level lvl, const char *msg, va_list *ap)
{
	char line[LOG_LINE_MAX];
	char ts[40];
	size_t o = 0;

	format_ts(ts, sizeof ts);
	if (g_log.format == LOG_FORMAT_TEXT) {
		int n = snprintf(line, sizeof line - 2, "%s %-5s %s: %s", ts, log_level_name(lvl),
		                 g_log.service, msg);
		o = n < 0 ? 0 : ((size_t)n > sizeof line - 3 ? sizeof line - 3 : (size_t)n);
		for (const char *k; ap && (k = va_arg(*ap, const char *)) != NULL;) {
			const char *v = va_arg(*ap, const char *);
			char esc[LOG_LINE_MAX];
			log_json_escape(esc, sizeof esc, v ? v : "");
			put(line, &o, " ");
			put(line, &o, k);
			put(line, &o, "=");
			put(line, &o, esc);
		}
		line[o++] = '\n';
		write_all(g_log.fd, line, o);
		return;
	}
	put(line, &o, "{\"ts\":\"");
	put(line, &o, ts);
	put(line, &o, "\"");
	put_field(line, &o, "level", log_level_name(lvl));
	put_field(line, &o, "service", g_log.service);
	put_field(line, &o, "msg", msg);
	for (const char *k; ap && (k = va_arg(*ap, const char *)) != NULL;) {
		const char *v = va_arg(*ap, const char *);
		put_field(line, &o, k, v);
	}
	line[o++] = '}';
	line[o++] = '\n';
	write_all(g_log.fd, line, o);
}

void log_kvv(log_level lvl, const char *msg, va_list ap)
{
	va_list cp;

	if (lvl < g_log.min)
		return;
	va_copy(cp, ap);
	emit(lvl, msg, &cp);
	va_end(cp);
}

void log_kv(log_level lvl, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_kvv(lvl, msg, ap);
	va_end(ap);
}

void log_fatalx(const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	log_kvv(LOG_LEVEL_ERROR, msg, ap);
	va_end(ap);
	_exit(1);
}

void log_set_bug_hook(void (*hook)(void)) { g_log.bug_hook = hook; }

int log_bug(const char *file, int line, const char *what)
{
	char where[256];

	snprintf(where, sizeof where, "%s:%d", file, line);
	log_kv(LOG_LEVEL_ERROR, "BUG", "where", where, "what", what, LOG_END);
	if (g_log.bug_hook)
		g_log.bug_hook();
	return -1;
}
