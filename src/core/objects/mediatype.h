/*
 * mediatype.h — the Content-Type an object is served with (docs/media.md):
 * the grammar a recorded type must follow, libmagic sniffing of an
 * upload's first bytes, and the filename of a Content-Disposition.
 *
 * A recorded type is never the uploader's bytes: mediatype_parse reads
 * `type "/" subtype *( OWS ";" OWS parameter )` (RFC 9110 §8.3.1, tokens
 * of tchar only), lowercases type and subtype, keeps one `charset`
 * parameter whose value is a token (lowercased; a quoted value is
 * unquoted when it is a plain token) and drops every other parameter.
 * The result is at most MEDIATYPE_MAX - 1 bytes of tchar, '/', ';', ' '
 * and '=' — safe to put in a header as it is.
 */
#ifndef MN_CORE_OBJECTS_MEDIATYPE_H
#define MN_CORE_OBJECTS_MEDIATYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEDIATYPE_MAX        128u    /* a recorded type, NUL included */
#define MEDIATYPE_INPUT_MAX  512u    /* a Content-Type field read at all */
#define MEDIATYPE_DEFAULT    "application/octet-stream"
/* Bytes of an upload libmagic looks at (its own default reads 1 MiB; the
 * first 4 KiB hold every signature of the types we serve). */
#define MEDIATYPE_SNIFF_MAX  4096u
/* A Content-Disposition filename: bytes, NUL included. */
#define MEDIATYPE_FILENAME_MAX 128u

/* in[0..n) → out (normalised, NUL-terminated). 0, or -1 (malformed,
 * too long, empty). out untouched on -1. */
__attribute__((warn_unused_result))
int mediatype_parse(const char *in, size_t n, char out[MEDIATYPE_MAX]);

/* Is t (a parsed type) text/…? */
bool mediatype_is_text(const char *t);

/* A filename fit for `attachment; filename="…"`: 1..MEDIATYPE_FILENAME_MAX-1
 * bytes of [A-Za-z0-9._-] (plus ' ' inside), not starting with '.', no
 * "..". Query values are not decoded: what is asked is what is checked. */
bool mediatype_filename_ok(const char *name, size_t n);

/* A libmagic cookie, loaded once (before the sandbox: it maps the
 * database file). NULL when libmagic cannot load its database (then
 * nothing is sniffed and uploads without a type are served as
 * MEDIATYPE_DEFAULT). Owner: the caller; mediatype_sniffer_free(NULL) ok. */
typedef struct mediatype_sniffer mediatype_sniffer;
mediatype_sniffer *mediatype_sniffer_new(void);
void mediatype_sniffer_free(mediatype_sniffer *s);
/* The type of p[0..n) (n ≤ MEDIATYPE_SNIFF_MAX is looked at) into out:
 * 0, or -1 when libmagic has no answer or only MEDIATYPE_DEFAULT. CPU
 * only, bounded by the byte cap and libmagic's own recursion limits. */
__attribute__((warn_unused_result))
int mediatype_sniff(mediatype_sniffer *s, const uint8_t *p, size_t n, char out[MEDIATYPE_MAX]);

#endif
