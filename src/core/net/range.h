/*
 * range.h — one HTTP Range header value (RFC 9110 §14.1.2) against a
 * representation of len bytes.
 *
 * Accepted: `bytes=S-E`, `bytes=S-`, `bytes=-N` (the unit is
 * case-insensitive). Optional whitespace (SP/HTAB) is allowed around list
 * elements, and empty list elements are ignored (RFC 9110 §5.6.1), so
 * `bytes=0-1,` is one range.
 *
 * Results, and what the gateway answers:
 *   RANGE_NONE          no header → 200, whole object
 *   RANGE_MALFORMED     not a valid byte-ranges-specifier (another unit,
 *                       E < S, stray characters) → ignored per RFC 9110
 *                       §14.2 ("MAY ignore") → 200, whole object
 *   RANGE_ONE           one satisfiable range; start and end are inclusive,
 *                       end clamped to len - 1 → 206
 *   RANGE_UNSATISFIABLE S >= len, `-0`, or any range of an empty object
 *                       (no byte can be named, and Content-Range cannot
 *                       express an empty selection) → 416
 *   RANGE_MULTI         more than one well-formed range → 416 (multipart
 *                       responses are not served)
 *
 * Numbers longer than 20 digits or above UINT64_MAX saturate to UINT64_MAX
 * rather than being refused: a huge first-pos is simply unsatisfiable, a
 * huge last-pos or suffix length means "to the end". Parsing is one linear
 * pass with no allocation; it never reads past vlen.
 */
#ifndef MN_CORE_RANGE_H
#define MN_CORE_RANGE_H

#include <stddef.h>
#include <stdint.h>

typedef enum range_result {
	RANGE_NONE = 0,
	RANGE_MALFORMED,
	RANGE_ONE,
	RANGE_UNSATISFIABLE,
	RANGE_MULTI,
} range_result;

/* value: the header value (vlen bytes, borrowed; NULL = no header).
 * start/end written only for RANGE_ONE. */
__attribute__((warn_unused_result))
range_result range_parse(const char *value, size_t vlen, uint64_t len,
                         uint64_t *start, uint64_t *end);

#endif
