/*
 * log.h — JSON-lines logging.
 *
 * One JSON object per line on the log fd (stderr by default):
 *   {"ts":"2026-11-28T11:34:03.123Z","level":"info","service":"gateway","msg":"...", ...}
 * Extra fields are string key/value pairs passed as a NULL-terminated list.
 * Values are JSON-escaped; keys must be literal identifiers.
 *
 * Secrets policy: there is deliberately no way to log a request header or a
 * config value wholesale. Callers pass only fields they name. Never pass a
 * token, key, credential or witness as a value (a test greps the logs).
 *
 * State: one process-wide logger (service name, level, fd) owned by this
 * module and set once at start-up by log_init(); see struct log_state in
 * log.c.
 */
#ifndef MN_LIB_LOG_H
#define MN_LIB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
} log_level;

typedef enum {
	LOG_FORMAT_JSON = 0,
	LOG_FORMAT_TEXT,
} log_format;

/* Sets the service name (copied, max 31 chars), minimum level and fd. */
void log_init(const char *service, log_level min, int fd);
void log_set_level(log_level min);
void log_set_format(log_format fmt);
log_level log_get_level(void);

/* "debug"|"info"|"warn"|"error" (also "trace" → debug). 0 or -1. */
__attribute__((warn_unused_result))
int log_level_parse(const char *s, log_level *out);
const char *log_level_name(log_level l);

/* The end of a key/value list: a typed null pointer (a bare NULL may be a
 * plain 0 in a variadic call, which is undefined for a pointer sentinel). */
#define LOG_END ((const char *)NULL)

/* Message plus fields: log_kv(LOG_LEVEL_WARN, "refused", "route", "/o", "reason", "413", LOG_END). */
void log_kv(log_level lvl, const char *msg, ...) __attribute__((sentinel));
void log_kvv(log_level lvl, const char *msg, va_list ap);

/*
 * BUG(): a broken invariant that can be survived (CONVENTIONS tier 3): logs
 * file:line, bumps bug_total on /metrics (when metrics are attached) and
 * evaluates to -1 so callers can `return BUG("...")`.
 */
int log_bug(const char *file, int line, const char *what);
#define BUG(what) log_bug(__FILE__, __LINE__, (what))
/*
 * log_fatalx(): an internal message from a peer of the same binary that does
 * not decode (CONVENTIONS "Processes and messages"): a bug, not input.
 * Logs msg and the fields once at error level, then _exit(1) — the
 * supervisor restarts the process. No abort(): a core file would hold the
 * process's secrets (services run with RLIMIT_CORE 0 anyway).
 */
void log_fatalx(const char *msg, ...) __attribute__((noreturn, sentinel));
/* Called by log_bug after logging (metrics registers a bug_total counter here). */
void log_set_bug_hook(void (*hook)(void));

/* JSON string escaping into dst (always NUL-terminated, truncates). Returns bytes written. */
size_t log_json_escape(char *dst, size_t dstlen, const char *src);

#endif
