/*
 * search_query.h — the FTS5 query syntax the search facet accepts
 * (docs/search.md), checked before SQLite sees a byte, so a bad query is a
 * 400 naming the problem and never an SQLite error (a 500).
 *
 * Grammar (a subset of FTS5's, https://sqlite.org/fts5.html §3):
 *   query  := or
 *   or     := and ( "OR" and )*
 *   and    := not ( ["AND"] not )*
 *   not    := prim ( "NOT" prim )*
 *   prim   := [ column ":" ] ( term | phrase | "(" or ")" )
 *   term   := 1*( ALNUM / "_" / byte ≥ 0x80 ) [ "*" ]
 *   phrase := '"' 1*( any byte but '"' and controls ) '"' [ "*" ]
 *   column := "body" / "ctype"
 * NEAR, "^", "+", "-" and "{...}" column sets are refused, and so is a
 * query that would scan everything: empty, only a prefix shorter than
 * SEARCH_PREFIX_MIN characters ("a*"), or more than SEARCH_TERMS_MAX
 * terms or SEARCH_DEPTH_MAX nested parentheses.
 */
#ifndef MN_CORE_SEARCH_SEARCH_QUERY_H
#define MN_CORE_SEARCH_SEARCH_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#define SEARCH_PREFIX_MIN 2u
#define SEARCH_TERMS_MAX  16u
#define SEARCH_DEPTH_MAX  4u

typedef enum search_q_status {
	SEARCH_Q_OK = 0,
	SEARCH_Q_SYNTAX,     /* 400 bad_query: the message says where and what */
	SEARCH_Q_TOO_BROAD,  /* 400 query_too_broad: would scan everything */
} search_q_status;

/* q[0..n): SEARCH_Q_OK, or the problem in msg (cap bytes; never echoes
 * more than a few bytes of q, and only printable ASCII of it). */
search_q_status search_query_check(const char *q, size_t n, char *msg, size_t cap);

#endif
