/*
 * range.h — an HTTP Range header value (RFC 9110 §14.1.2) against a
 * representation of len bytes: one range or a set of them.
 *
 * Accepted: a comma-separated list of `S-E`, `S-` and `-N` after `bytes=`
 * (the unit is case-insensitive). Optional whitespace (SP/HTAB) is allowed
 * around list elements, and empty list elements are ignored (RFC 9110
 * §5.6.1), so `bytes=0-1,` is one range.
 *
 * The set the caller gets: every satisfiable range-spec judged against len
 * (end clamped to len - 1, a suffix longer than the object is the whole
 * object), unsatisfiable ones dropped (RFC 9110 §14.1.1: the set is
 * satisfiable when one of them is), then sorted by start and coalesced where
 * they overlap or touch (§14.3 allows coalescing "regardless of the order";
 * sorted, the parts come ascending rather than in the order asked — §14.6's
 * SHOULD — so that each 64 KiB group is read and verified at most once
 * however the client orders them). The result is ascending, disjoint and
 * never adjacent.
 *
 * Results, and what the gateway answers:
 *   RANGE_NONE          no header → 200, whole object
 *   RANGE_MALFORMED     not a valid byte-ranges-specifier (another unit,
 *                       E < S, stray characters) → ignored per RFC 9110
 *                       §14.2 ("MAY ignore") → 200, whole object
 *   RANGE_ONE           the set is one range, out[0] (*n == 1; inclusive)
 *                       → 206 with Content-Range
 *   RANGE_MULTI         two or more ranges, out[0..*n) → 206
 *                       multipart/byteranges
 *   RANGE_UNSATISFIABLE no range-spec names a byte: S >= len, `-0`, or any
 *                       range of an empty object (Content-Range cannot
 *                       express an empty selection) → 416
 *   RANGE_TOO_MANY      a well-formed header with more than max range-specs
 *                       (counted as sent: before dropping or coalescing) →
 *                       416 (RFC 9110 §14.2 and §15.5.17 allow rejecting "an
 *                       excessive request of small or overlapping ranges":
 *                       thousands of ranges are a broken client or an
 *                       attack, and refusing costs no read)
 *
 * Numbers longer than 20 digits or above UINT64_MAX saturate to UINT64_MAX
 * rather than being refused: a huge first-pos is simply unsatisfiable, a
 * huge last-pos or suffix length means "to the end".
 *
 * Cost: one linear pass over the value (which the HTTP header cap bounds)
 * with no allocation — the satisfiable ranges go to the caller's array of
 * max entries, never more — then an insertion sort of at most max entries
 * (O(max²), max <= RANGE_MAX_SPANS) and one coalescing pass. Never reads
 * past vlen.
 */
#ifndef MN_CORE_RANGE_H
#define MN_CORE_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* The largest max any caller may pass (gateway.max_ranges' upper bound):
 * it bounds the sort and a caller's array on the stack (16 bytes each). */
#define RANGE_MAX_SPANS 256u

typedef enum range_result {
	RANGE_NONE = 0,
	RANGE_MALFORMED,
	RANGE_ONE,
	RANGE_MULTI,
	RANGE_UNSATISFIABLE,
	RANGE_TOO_MANY,
} range_result;

/* One range, both ends inclusive: start <= end < len. */
typedef struct range_span {
	uint64_t start;
	uint64_t end;
} range_span;

/* value: the header value (vlen bytes, borrowed; NULL = no header).
 * out: the caller's array of max entries (1 <= max <= RANGE_MAX_SPANS);
 * out[0..*n) is written for RANGE_ONE and RANGE_MULTI, *n is 0 otherwise.
 * Its contents are scratch for the other results. */
__attribute__((warn_unused_result))
range_result range_parse(const char *value, size_t vlen, uint64_t len,
                         range_span *out, size_t max, size_t *n);

#endif
