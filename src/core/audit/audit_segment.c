/*
 * audit_segment.c — chain state, segment headers, names and line reading
 * (see audit_segment.h).
 */
#include "core/audit/audit_segment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/audit/audit_json.h"
#include "lib/util.h"

#define HEADER_TYPE "ron-audit-segment"

void audit_state_init(audit_state *s)
{
	memset(s, 0, sizeof *s);
	audit_merkle_init(&s->tree);
}

/* Binary search; *at = where stream is or would go. */
static bool state_find(const audit_state *s, const char *stream, unsigned *at)
{
	unsigned lo = 0, hi = s->nstreams;

	*at = 0;
	if (!stream)
		return false;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		int c = strcmp(s->heads[mid].stream, stream);
		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return false;
}

const audit_head *audit_state_head(const audit_state *s, const char *stream)
{
	unsigned at;

	return state_find(s, stream, &at) ? &s->heads[at] : NULL;
}

int audit_state_check(const audit_state *s, const audit_record *r, char *err, size_t errlen)
{
	const audit_head *h;
	uint64_t want;

	if (!s || !r)
		return util_fail(err, errlen, "no chain state");
	h = audit_state_head(s, r->stream);
	want = h ? h->next_seq : 0;
	if (!h && s->nstreams >= AUDIT_MAX_STREAMS)
		return util_fail(err, errlen, "more than %u streams", AUDIT_MAX_STREAMS);
	if (r->seq != want)
		return util_fail(err, errlen, "seq %" PRIu64 " where seq %" PRIu64 " was due "
		                "(a record removed, duplicated or reordered)", r->seq, want);
	if (h && (r->genesis || !b3_equal(r->prev, h->prev)))
		return util_fail(err, errlen, "prev does not link to seq %" PRIu64 "'s self_hash",
		                want - 1);
	if (s->tree.size == UINT64_MAX)
		return util_fail(err, errlen, "the tree is full");
	return 0;
}

int audit_state_apply(audit_state *s, const audit_record *r, const char *line, size_t n,
                      char *err, size_t errlen)
{
	uint8_t leaf[B3_OUT_LEN];
	unsigned at;

	if (audit_state_check(s, r, err, errlen) != 0)
		return -1;
	if (!state_find(s, r->stream, &at)) {
		memmove(&s->heads[at + 1], &s->heads[at], (s->nstreams - at) * sizeof s->heads[0]);
		memset(&s->heads[at], 0, sizeof s->heads[at]);
		snprintf(s->heads[at].stream, sizeof s->heads[at].stream, "%s", r->stream);
		s->nstreams++;
	}
	s->heads[at].next_seq = r->seq + 1;
	memcpy(s->heads[at].prev, r->self_hash, B3_OUT_LEN);
	audit_merkle_leaf(line, n, leaf);
	return audit_merkle_push(&s->tree, leaf);
}

bool audit_state_equal(const audit_state *a, const audit_state *b)
{
	if (!audit_merkle_equal(&a->tree, &b->tree) || a->nstreams != b->nstreams)
		return false;
	for (unsigned i = 0; i < a->nstreams; i++)
		if (strcmp(a->heads[i].stream, b->heads[i].stream) != 0 ||
		    a->heads[i].next_seq != b->heads[i].next_seq ||
		    memcmp(a->heads[i].prev, b->heads[i].prev, B3_OUT_LEN) != 0)
			return false;
	return true;
}

static json_t *header_build(const audit_state *s)
{
	json_t *o = json_object(), *fr = json_array(), *st = json_object();
	char hex[B3_HEX_LEN + 1], cid[B3_CID_LEN + 1];
	int bad = !o || !fr || !st;

	for (unsigned k = 0; !bad && k < AUDIT_MERKLE_MAX_DEPTH; k++) {
		unsigned h = AUDIT_MERKLE_MAX_DEPTH - 1u - k;    /* largest subtree first */
		if (!(s->tree.size & ((uint64_t)1 << h)))
			continue;
		b3_hex(s->tree.sub[h], hex);
		bad |= json_array_append_new(fr, json_string(hex));
	}
	for (unsigned i = 0; !bad && i < s->nstreams; i++) {
		b3_cid_format(s->heads[i].prev, cid);
		bad |= json_object_set_new(st, s->heads[i].stream,
		                           json_pack("{s:I,s:s}", "next_seq",
		                                     (json_int_t)s->heads[i].next_seq, "prev", cid));
	}
	if (!bad) {
		bad |= json_object_set_new(o, "first_index", json_integer((json_int_t)s->tree.size));
		bad |= json_object_set(o, "frontier", fr);
		bad |= json_object_set(o, "streams", st);
		bad |= json_object_set_new(o, "type", json_string(HEADER_TYPE));
		bad |= json_object_set_new(o, "v", json_integer(AUDIT_VERSION));
	}
	json_decref(fr);
	json_decref(st);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int audit_header_encode(const audit_state *s, char *out, size_t cap, size_t *len)
{
	json_t *o = header_build(s);
	audit_buf b = { .data = out, .cap = cap };
	int r;

	if (!o || s->tree.size > INT64_MAX) {
		json_decref(o);
		return -1;
	}
	r = audit_json_encode(o, AUDIT_JSON_STRICT, &b, NULL, 0);
	json_decref(o);
	*len = b.len;
	return r;
}

static int header_frontier(const json_t *fr, uint64_t size, audit_state *s, char *err,
                           size_t errlen)
{
	size_t i = 0;

	if (!json_is_array(fr) || json_array_size(fr) != (size_t)__builtin_popcountll(size))
		return util_fail(err, errlen, "frontier does not fit first_index");
	for (unsigned k = 0; k < AUDIT_MERKLE_MAX_DEPTH; k++) {
		unsigned h = AUDIT_MERKLE_MAX_DEPTH - 1u - k;
		if (!(size & ((uint64_t)1 << h)))
			continue;
		const json_t *e = json_array_get(fr, i++);
		if (!json_is_string(e) ||
		    b3_hex_parse(json_string_value(e), json_string_length(e), s->tree.sub[h]) != 0)
			return util_fail(err, errlen, "frontier entry is not 64 hex");
	}
	s->tree.size = size;
	return 0;
}

static int header_streams(const json_t *st, audit_state *s, char *err, size_t errlen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(st) || json_object_size(st) > AUDIT_MAX_STREAMS)
		return util_fail(err, errlen, "streams is not an object of at most %u",
		                AUDIT_MAX_STREAMS);
	json_object_foreach((json_t *)st, k, v) {     /* canonical: already sorted */
		audit_head *h = &s->heads[s->nstreams];
		const json_t *ns = json_object_get(v, "next_seq"), *pv = json_object_get(v, "prev");
		if (!audit_stream_is_valid(k, strlen(k)) || json_object_size(v) != 2 ||
		    !json_is_integer(ns) || json_integer_value(ns) < 1 || !json_is_string(pv) ||
		    b3_cid_parse(json_string_value(pv), json_string_length(pv), h->prev) != 0)
			return util_fail(err, errlen, "stream \"%s\" head is malformed", k);
		snprintf(h->stream, sizeof h->stream, "%s", k);
		h->next_seq = (uint64_t)json_integer_value(ns);
		s->nstreams++;
	}
	for (unsigned i = 1; i < s->nstreams; i++)   /* jansson's iteration order is its own */
		for (unsigned j = i; j > 0 && strcmp(s->heads[j - 1].stream, s->heads[j].stream) > 0; j--) {
			audit_head t = s->heads[j];
			s->heads[j] = s->heads[j - 1];
			s->heads[j - 1] = t;
		}
	return 0;
}

int audit_header_parse(const char *line, size_t n, audit_state *s, char *err, size_t errlen)
{
	json_t *o = audit_json_parse(line, n, AUDIT_HEADER_MAX, err, errlen);
	const json_t *t, *fi;
	int r = -1;

	audit_state_init(s);
	if (!o)
		return -1;
	t = json_object_get(o, "type");
	fi = json_object_get(o, "first_index");
	if (json_object_size(o) != 5 || !json_is_string(t) ||
	    strcmp(json_string_value(t), HEADER_TYPE) != 0 ||
	    !json_is_integer(json_object_get(o, "v")) ||
	    json_integer_value(json_object_get(o, "v")) != AUDIT_VERSION ||
	    !json_is_integer(fi) || json_integer_value(fi) < 0)
		util_fail(err, errlen, "not a ron-audit v1 segment header");
	else if (header_frontier(json_object_get(o, "frontier"), (uint64_t)json_integer_value(fi),
	                         s, err, errlen) == 0 &&
	         header_streams(json_object_get(o, "streams"), s, err, errlen) == 0)
		r = 0;
	json_decref(o);
	return r;
}

void audit_segment_name(uint64_t first, char out[AUDIT_SEG_NAME_LEN + 1])
{
	snprintf(out, AUDIT_SEG_NAME_LEN + 1, AUDIT_SEG_PREFIX "%020" PRIu64 AUDIT_SEG_SUFFIX, first);
}

bool audit_segment_parse_name(const char *name, uint64_t *first)
{
	char digits[21];

	if (strlen(name) != AUDIT_SEG_NAME_LEN || strncmp(name, AUDIT_SEG_PREFIX, 4) != 0 ||
	    strcmp(name + 24, AUDIT_SEG_SUFFIX) != 0)
		return false;
	memcpy(digits, name + 4, 20);
	digits[20] = '\0';
	return util_parse_u64(digits, first) == 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int audit_segment_list(const char *dir, uint64_t **firsts, size_t *n, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t *a = NULL, first;
	size_t cnt = 0, cap = 0;

	*firsts = NULL;
	*n = 0;
	if (!d)
		return util_fail(err, errlen, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (!audit_segment_parse_name(e->d_name, &first))
			continue;
		if (cnt == AUDIT_MAX_SEGMENTS) {
			free(a);
			closedir(d);
			return util_fail(err, errlen, "%s: more than %u segments", dir, AUDIT_MAX_SEGMENTS);
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			uint64_t *na = realloc(a, ncap * sizeof *na);
			if (!na) {
				free(a);
				closedir(d);
				return util_fail(err, errlen, "out of memory");
			}
			a = na;
			cap = ncap;
		}
		a[cnt++] = first;
	}
	closedir(d);
	if (cnt)
		qsort(a, cnt, sizeof *a, u64_cmp);
	*firsts = a;
	*n = cnt;
	return 0;
}

void audit_lines_init(audit_lines *l, int fd)
{
	l->fd = fd;
	l->base = 0;
	l->start = l->end = 0;
}

audit_line_status audit_lines_next(audit_lines *l, const char **line, size_t *len,
                                   uint64_t *off)
{
	for (;;) {
		char *nl = memchr(l->buf + l->start, '\n', l->end - l->start);
		ssize_t got;

		if (nl) {
			*line = l->buf + l->start;
			*len = (size_t)(nl - (l->buf + l->start));
			*off = l->base + l->start;
			l->start += *len + 1;
			return AUDIT_LINE_OK;
		}
		if (l->start > 0) {              /* keep the partial line at the front */
			memmove(l->buf, l->buf + l->start, l->end - l->start);
			l->base += l->start;
			l->end -= l->start;
			l->start = 0;
		}
		*off = l->base;
		*len = l->end;
		*line = l->buf;
		if (l->end == sizeof l->buf)
			return AUDIT_LINE_TOO_LONG;
		do
			got = read(l->fd, l->buf + l->end, sizeof l->buf - l->end);
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return AUDIT_LINE_ERROR;
		if (got == 0)
			return l->end ? AUDIT_LINE_TORN : AUDIT_LINE_EOF;
		l->end += (size_t)got;
	}
}

int audit_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}
