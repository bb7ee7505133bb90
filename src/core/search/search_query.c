/*
 * search_query.c — the accepted FTS5 query syntax (see search_query.h): a
 * tokenizer and a recursive-descent checker over its tokens; depth and
 * term count are bounded, so the work is linear in the query's bytes.
 */
#include "core/search/search_query.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef enum { TK_END, TK_TERM, TK_PHRASE, TK_AND, TK_OR, TK_NOT, TK_LP, TK_RP, TK_COL } tk_kind;

typedef struct qp {
	const char *start, *p, *end;
	tk_kind     kind;
	size_t      at;           /* offset of the token */
	size_t      prefix_len;   /* a term/phrase with '*': chars before it; else 0 */
	bool        prefix;
	unsigned    terms;        /* terms and phrases seen */
	unsigned    depth;
	char       *msg;
	size_t      cap;
	bool        failed;
	bool        broad;
} qp;

static bool qp_is_word(unsigned char c)
{
	return isalnum(c) || c == '_' || c >= 0x80;
}

static void qp_fail(qp *s, const char *what)
{
	if (!s->failed)
		snprintf(s->msg, s->cap, "bad query at byte %zu: %s", s->at, what);
	s->failed = true;
}

static void qp_word(qp *s, const char *b)
{
	size_t n;

	while (s->p < s->end && qp_is_word((unsigned char)*s->p))
		s->p++;
	n = (size_t)(s->p - b);
	if (s->p < s->end && *s->p == ':') {
		s->p++;
		if (!((n == 4 && memcmp(b, "body", 4) == 0) || (n == 5 && memcmp(b, "ctype", 5) == 0) ||
		      (n == 4 && memcmp(b, "name", 4) == 0)))
			qp_fail(s, "unknown column (want body:, ctype: or name:)");
		s->kind = TK_COL;
		return;
	}
	if (n == 3 && memcmp(b, "AND", 3) == 0) { s->kind = TK_AND; return; }
	if (n == 2 && memcmp(b, "OR", 2) == 0)   { s->kind = TK_OR; return; }
	if (n == 3 && memcmp(b, "NOT", 3) == 0)  { s->kind = TK_NOT; return; }
	if (n == 4 && memcmp(b, "NEAR", 4) == 0) { qp_fail(s, "NEAR is not supported"); return; }
	s->kind = TK_TERM;
	s->prefix_len = n;
}

static void qp_phrase(qp *s)
{
	const char *b = ++s->p;

	while (s->p < s->end && *s->p != '"') {
		if ((unsigned char)*s->p < 0x20 || *s->p == 0x7f) {
			qp_fail(s, "control character in a phrase");
			return;
		}
		s->p++;
	}
	if (s->p >= s->end) {
		qp_fail(s, "unterminated phrase (missing '\"')");
		return;
	}
	s->prefix_len = (size_t)(s->p - b);
	s->p++;
	s->kind = TK_PHRASE;
	if (s->prefix_len == 0)
		qp_fail(s, "empty phrase");
}

/* The next token into s->kind. */
static void qp_next(qp *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
		s->p++;
	s->at = (size_t)(s->p - s->start);
	s->prefix = false;
	s->prefix_len = 0;
	if (s->p >= s->end) { s->kind = TK_END; return; }
	if (*s->p == '(') { s->p++; s->kind = TK_LP; return; }
	if (*s->p == ')') { s->p++; s->kind = TK_RP; return; }
	if (*s->p == '"')
		qp_phrase(s);
	else if (qp_is_word((unsigned char)*s->p))
		qp_word(s, s->p);
	else {
		qp_fail(s, *s->p == '*' ? "'*' must follow a term" :
		        "unexpected character (terms are letters, digits, '_'; see docs/search.md)");
		s->kind = TK_END;
		return;
	}
	if ((s->kind == TK_TERM || s->kind == TK_PHRASE) && s->p < s->end && *s->p == '*') {
		s->p++;
		s->prefix = true;
	}
}

static void qp_or(qp *s);

static void qp_prim(qp *s)
{
	if (s->failed)
		return;
	if (s->kind == TK_COL)
		qp_next(s);
	switch (s->kind) {
	case TK_TERM:
	case TK_PHRASE:
		if (++s->terms > SEARCH_TERMS_MAX) {
			qp_fail(s, "too many terms");
			return;
		}
		if (s->prefix && s->prefix_len < SEARCH_PREFIX_MIN)
			s->broad = true;   /* "a*": every token of the index that starts with a */
		qp_next(s);
		return;
	case TK_LP:
		if (++s->depth > SEARCH_DEPTH_MAX) {
			qp_fail(s, "parentheses nested too deep");
			return;
		}
		qp_next(s);
		qp_or(s);
		if (!s->failed && s->kind != TK_RP) {
			qp_fail(s, "missing ')'");
			return;
		}
		s->depth--;
		qp_next(s);
		return;
	case TK_END:
		qp_fail(s, "a term is missing");
		return;
	default:
		qp_fail(s, "an operator or ')' where a term belongs");
		return;
	}
}

static void qp_not(qp *s)
{
	qp_prim(s);
	while (!s->failed && s->kind == TK_NOT) {
		qp_next(s);
		qp_prim(s);
	}
}

static bool qp_starts_prim(const qp *s)
{
	return s->kind == TK_TERM || s->kind == TK_PHRASE || s->kind == TK_LP || s->kind == TK_COL;
}

static void qp_and(qp *s)
{
	qp_not(s);
	while (!s->failed && (s->kind == TK_AND || qp_starts_prim(s))) {
		if (s->kind == TK_AND)
			qp_next(s);
		qp_not(s);
	}
}

static void qp_or(qp *s)
{
	qp_and(s);
	while (!s->failed && s->kind == TK_OR) {
		qp_next(s);
		qp_and(s);
	}
}

search_q_status search_query_check(const char *q, size_t n, char *msg, size_t cap)
{
	qp s = { .start = q, .p = q, .end = q + n, .msg = msg, .cap = cap };

	if (cap)
		msg[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (q[i] == '\0') {
			snprintf(msg, cap, "bad query: NUL byte");
			return SEARCH_Q_SYNTAX;
		}
	qp_next(&s);
	if (!s.failed && s.kind == TK_END) {
		snprintf(msg, cap, "empty query: it would match everything");
		return SEARCH_Q_TOO_BROAD;
	}
	qp_or(&s);
	if (!s.failed && s.kind != TK_END)
		qp_fail(&s, s.kind == TK_RP ? "unbalanced ')'" : "unexpected token");
	if (s.failed)
		return SEARCH_Q_SYNTAX;
	if (s.broad) {
		snprintf(msg, cap, "query too broad: prefixes need at least %u characters before '*'",
		         SEARCH_PREFIX_MIN);
		return SEARCH_Q_TOO_BROAD;
	}
	return SEARCH_Q_OK;
}
