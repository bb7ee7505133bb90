/*
 * search_query.c — libFuzzer target: arbitrary search queries
 * (core/search/search_query.h) and search messages (search_msg.h).
 *
 * The first byte picks what the rest is: a query for search_query_check
 * (the message must be a NUL-terminated string within its buffer, and a
 * query it accepts must also encode into a QUERY message and decode back
 * to itself when it fits), or a request / reply payload for the decoders
 * (which must accept exactly what re-encodes to the same bytes). Inputs
 * are copies of exactly their size (ASan catches a read past them).
 *
 * Run: build-fuzz/fuzz/fuzz_search_query -max_len=2048 fuzz/corpus/search_query
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/search/search_msg.h"
#include "core/search/search_query.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_query(const char *q, size_t n)
{
	char msg[160], back[SEARCH_QUERY_MAX];
	uint8_t buf[SEARCH_QUERY_MAX + 8];
	uint16_t limit;
	search_q_status st = search_query_check(q, n, msg, sizeof msg);
	ssize_t len;

	if (st != SEARCH_Q_OK && st != SEARCH_Q_SYNTAX && st != SEARCH_Q_TOO_BROAD)
		abort();
	if (!memchr(msg, '\0', sizeof msg) || (st != SEARCH_Q_OK && !msg[0]))
		abort();
	if (st != SEARCH_Q_OK || n >= SEARCH_QUERY_MAX || memchr(q, '\0', n))
		return;
	memcpy(back, q, n);
	back[n] = '\0';
	if ((len = search_msg_query_encode(back, 7, buf, sizeof buf)) < 0)
		abort();
	if (search_msg_query_decode(buf, (size_t)len, back, &limit) != 0 || limit != 7 ||
	    strlen(back) != n || memcmp(back, q, n) != 0)
		abort();
}

static void fuzz_msgs(const uint8_t *p, size_t n)
{
	static uint8_t buf[SEARCH_MSG_MAX];
	static search_hits h;
	search_doc d;
	search_name nm;
	ssize_t len;

	if (search_msg_index_decode(p, n, &d) == 0 &&
	    ((len = search_msg_index_encode(&d, buf, sizeof buf)) < 0 || (size_t)len != n ||
	     memcmp(buf, p, n) != 0))
		abort();
	if (search_msg_name_decode(p, n, &nm) == 0 &&
	    ((len = search_msg_name_encode(&nm, buf, sizeof buf)) < 0 || (size_t)len != n ||
	     memcmp(buf, p, n) != 0))
		abort();
	if (search_msg_hits_decode(p, n, &h) == 0 &&
	    ((len = search_msg_hits_encode(&h, buf, sizeof buf)) < 0 || (size_t)len != n ||
	     memcmp(buf, p, n) != 0))
		abort();
	(void)search_msg_rep_check(SEARCH_QUERY, 200, p, n, 0);
	(void)search_msg_rep_check(SEARCH_QUERY, 400, p, n, 0);
	(void)search_msg_req_check(SEARCH_QUERY, p, n);
	(void)search_msg_req_check(SEARCH_NAME, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *v;

	if (size < 1)
		return 0;
	v = malloc(size - 1 ? size - 1 : 1);
	if (!v)
		return 0;
	memcpy(v, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_msgs(v, size - 1);
	else
		fuzz_query((const char *)v, size - 1);
	free(v);
	return 0;
}
