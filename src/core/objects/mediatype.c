/*
 * mediatype.c — recorded Content-Types, sniffing, download names (see
 * mediatype.h).
 */
#include "core/objects/mediatype.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <magic.h>

struct mediatype_sniffer {
	magic_t cookie;
};

/* RFC 9110 §5.6.2 tchar. */
static bool mt_is_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool mt_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

typedef struct mt_cur {
	const char *p, *end;
} mt_cur;

static void mt_skip_ows(mt_cur *c)
{
	while (c->p < c->end && mt_is_ows(*c->p))
		c->p++;
}

/* A token: its length (0: none). */
static size_t mt_token(mt_cur *c, const char **start)
{
	*start = c->p;
	while (c->p < c->end && mt_is_tchar((unsigned char)*c->p))
		c->p++;
	return (size_t)(c->p - *start);
}

/* A quoted-string (RFC 9110 §5.6.4) copied unquoted into val (cap bytes):
 * 0, 1 when its content is not a plain token (kept out), -1 malformed. */
static int mt_quoted(mt_cur *c, char *val, size_t cap)
{
	size_t n = 0;
	bool plain = true;

	c->p++;   /* the opening quote */
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p;

		if (ch == '\\') {
			if (++c->p >= c->end)
				return -1;
			ch = (unsigned char)*c->p;
		}
		if (ch < 0x20 && ch != '\t')
			return -1;
		if (ch == 0x7f)
			return -1;
		if (!mt_is_tchar(ch) || n + 1 >= cap)
			plain = false;
		else
			val[n++] = (char)tolower(ch);
		c->p++;
	}
	if (c->p >= c->end)
		return -1;
	c->p++;
	val[n] = '\0';
	return plain && n ? 0 : 1;
}

/* One `name=value` (the ';' read); a charset token is copied to charset. */
static int mt_param(mt_cur *c, char *charset, size_t cap)
{
	const char *name, *v;
	size_t nl = mt_token(c, &name), vl;
	char val[MEDIATYPE_MAX];
	int q = 0;

	if (nl == 0)
		return c->p == c->end || *c->p == ';' || mt_is_ows(*c->p) ? 0 : -1;   /* empty */
	if (c->p >= c->end || *c->p != '=')
		return -1;
	c->p++;
	if (c->p < c->end && *c->p == '"') {
		if ((q = mt_quoted(c, val, sizeof val)) < 0)
			return -1;
	} else {
		if ((vl = mt_token(c, &v)) == 0 || vl >= sizeof val)
			return -1;
		for (size_t i = 0; i < vl; i++)
			val[i] = (char)tolower((unsigned char)v[i]);
		val[vl] = '\0';
	}
	if (q == 0 && nl == 7 && strncasecmp(name, "charset", 7) == 0 && strlen(val) < cap)
		memcpy(charset, val, strlen(val) + 1);
	return 0;
}

int mediatype_parse(const char *in, size_t n, char out[MEDIATYPE_MAX])
{
	mt_cur c = { in, in + n };
	const char *t, *s;
	size_t tl, sl;
	char charset[48] = "", buf[MEDIATYPE_MAX];
	int len;

	if (!in || n == 0 || n > MEDIATYPE_INPUT_MAX || memchr(in, '\0', n))
		return -1;
	mt_skip_ows(&c);
	if ((tl = mt_token(&c, &t)) == 0 || c.p >= c.end || *c.p++ != '/' ||
	    (sl = mt_token(&c, &s)) == 0)
		return -1;
	for (;;) {
		mt_skip_ows(&c);
		if (c.p == c.end)
			break;
		if (*c.p++ != ';')
			return -1;
		mt_skip_ows(&c);
		if (mt_param(&c, charset, sizeof charset) < 0)
			return -1;
	}
	len = snprintf(buf, sizeof buf, "%.*s/%.*s%s%s", (int)tl, t, (int)sl, s,
	               charset[0] ? "; charset=" : "", charset);
	if (len < 0 || (size_t)len >= sizeof buf)
		return -1;
	for (int i = 0; i < len && buf[i] != ';'; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	memcpy(out, buf, (size_t)len + 1);
	return 0;
}

bool mediatype_is_text(const char *t)
{
	return strncmp(t, "text/", 5) == 0;
}

bool mediatype_filename_ok(const char *name, size_t n)
{
	if (n == 0 || n >= MEDIATYPE_FILENAME_MAX || name[0] == '.' || name[0] == ' ' ||
	    name[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (!(isalnum(ch) || ch == '.' || ch == '_' || ch == '-' || ch == ' '))
			return false;
		if (ch == '.' && i + 1 < n && name[i + 1] == '.')
			return false;
	}
	return true;
}

mediatype_sniffer *mediatype_sniffer_new(void)
{
	mediatype_sniffer *s = calloc(1, sizeof *s);

	if (!s)
		return NULL;
	/* No decompression, no ELF section walking: sniffing stays a few
	 * signature reads over at most MEDIATYPE_SNIFF_MAX bytes. */
	s->cookie = magic_open(MAGIC_MIME | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF |
	                       MAGIC_NO_CHECK_TAR | MAGIC_NO_CHECK_CDF | MAGIC_ERROR);
	if (!s->cookie || magic_load(s->cookie, NULL) != 0) {
		mediatype_sniffer_free(s);
		return NULL;
	}
	return s;
}

void mediatype_sniffer_free(mediatype_sniffer *s)
{
	if (!s)
		return;
	if (s->cookie)
		magic_close(s->cookie);
	free(s);
}

int mediatype_sniff(mediatype_sniffer *s, const uint8_t *p, size_t n, char out[MEDIATYPE_MAX])
{
	const char *m;
	char t[MEDIATYPE_MAX];

	if (!s || !p || n == 0)
		return -1;
	if (n > MEDIATYPE_SNIFF_MAX)
		n = MEDIATYPE_SNIFF_MAX;
	if (!(m = magic_buffer(s->cookie, p, n)) || mediatype_parse(m, strlen(m), t) < 0)
		return -1;
	/* A charset libmagic guessed means something for text only, and
	 * "binary" never. */
	char *b = strstr(t, "; charset=");
	if (b && (!mediatype_is_text(t) || strcmp(b, "; charset=binary") == 0))
		*b = '\0';
	if (strcmp(t, MEDIATYPE_DEFAULT) == 0)
		return -1;
	memcpy(out, t, strlen(t) + 1);
	return 0;
}
