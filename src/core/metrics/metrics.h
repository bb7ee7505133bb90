/*
 * metrics.h — process-shared metrics registry and Prometheus text rendering.
 *
 * The supervisor creates one shared memory region (memfd) before it forks any
 * service; every child maps the same fd (passed at exec) and writes its
 * counters there with atomic operations, so a counter survives the restart of
 * the process that bumped it. The supervisor renders the region for /metrics.
 *
 * Layout: a fixed header plus METRICS_MAX_SERIES series slots in an
 * open-addressed table keyed by (family, label string). A slot is claimed
 * once with a CAS and never freed, so label values must come from bounded
 * sets (route templates, status codes, service names, refusal reasons —
 * never ids or raw paths). When the table is full new series are dropped and
 * metrics_dropped_series_total counts them.
 *
 * Families are declared once in metrics.c (name, type, help); using an
 * undeclared family is a BUG() and returns NULL.
 *
 * Annex: the region may carry an annex of fixed size, set by the supervisor at
 * creation, for other node-wide state that every child shares (the quota
 * table, core/auth/quota.h). This module only maps it; its layout and its
 * locking belong to its user.
 *
 * State: before metrics_create()/metrics_attach() is called the module works
 * on a process-private region (for unit tests and CLI tools); the mapping is
 * owned by this module (struct metrics_state in metrics.c).
 */
#ifndef MN_CORE_METRICS_H
#define MN_CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_SERIES   4096
#define METRICS_MAX_LABELS   160   /* bytes of the rendered label string */
#define METRICS_HIST_BUCKETS 10    /* DESIGN §5: 0.005 … 5 s */
/* Bound of the annex: quota.max_tenants at its maximum needs ~110 MiB. */
#define METRICS_ANNEX_MAX    (UINT64_C(256) * 1024 * 1024)

typedef struct metrics_series metrics_series; /* opaque slot in shared memory */

/* Supervisor: create and map the shared region, with an annex of annex_len
 * bytes (0 = none; zero-filled; at most METRICS_ANNEX_MAX). Returns the memfd
 * (>= 0, to be inherited by children; not CLOEXEC) or -1. */
__attribute__((warn_unused_result)) int metrics_create(size_t annex_len);
/* Child: map a region created by the supervisor, annex included. 0 or -1. */
__attribute__((warn_unused_result)) int metrics_attach(int fd);
/* The annex mapped by metrics_create/metrics_attach and its length; NULL
 * (and *len 0) when there is none. Borrowed: valid until metrics_detach. */
void *metrics_annex(size_t *len);
/* Unmap, annex included (tests). */
void metrics_detach(void);
/* Changes whenever the mapping does (attach, detach, first use): a cache of
 * series pointers is valid while this stays the same. */
unsigned metrics_generation(void);

/*
 * Find or create the series for family + labels. labels is the inside of the
 * braces already rendered, e.g. `service="gateway",route="/healthz",code="200"`
 * or "" for none. Label values must already be valid Prometheus label values
 * (use metrics_label_escape for anything not a literal). Returns a pointer
 * that stays valid for the life of the mapping (cache it), or NULL when the
 * family is unknown, labels too long, or the table is full.
 */
metrics_series *metrics_get(const char *family, const char *labels);

void metrics_inc(metrics_series *s, uint64_t n);        /* counter; NULL ok */
void metrics_gauge_set(metrics_series *s, int64_t v);   /* gauge; NULL ok */
void metrics_gauge_add(metrics_series *s, int64_t d);   /* gauge; NULL ok */
void metrics_observe(metrics_series *s, double seconds); /* histogram; NULL ok */
uint64_t metrics_value(const metrics_series *s);        /* counter/gauge value; histogram count */

/* Convenience: metrics_get + metrics_inc. */
void metrics_count(const char *family, const char *labels, uint64_t n);

/* Escape a label value (\\, \", \n) into dst. Returns 0 or -1 if too long. */
int metrics_label_escape(char *dst, size_t dstlen, const char *value);


/*
 * Render every family in Prometheus text format 0.0.4 (# HELP, # TYPE, then
 * series; histograms as _bucket{le=...} cumulative, _sum, _count). Families
 * with no series are rendered with HELP/TYPE only. Appends to a malloc'd
 * buffer: *out (caller frees), *outlen. 0 or -1.
 */
__attribute__((warn_unused_result))
int metrics_render(char **out, size_t *outlen);

#endif
