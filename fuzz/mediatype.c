/*
 * mediatype.c — libFuzzer target: arbitrary Content-Type values and
 * download names (core/objects/mediatype.h).
 *
 * Checked invariants: a parsed type is NUL-terminated within
 * MEDIATYPE_MAX, holds only tchar, '/', ';', ' ' and '=' (nothing a
 * header or a JSON string would need to escape), and parses again to
 * itself (the normal form is a fixed point); a name mediatype_filename_ok
 * accepts has no byte outside [A-Za-z0-9._ -] and no "..". The input is
 * handed over in a copy of exactly its size (ASan catches a read past it).
 *
 * Run: build-fuzz/fuzz/fuzz_mediatype -max_len=1024 fuzz/corpus/mediatype
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/objects/mediatype.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_safe_byte(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~/;= ", c));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[MEDIATYPE_MAX], again[MEDIATYPE_MAX];
	char *v = malloc(size ? size : 1);

	if (!v)
		return 0;
	memcpy(v, data, size);
	if (mediatype_parse(v, size, out) == 0) {
		size_t n = strnlen(out, sizeof out);

		if (n == 0 || n >= sizeof out)
			abort();
		for (size_t i = 0; i < n; i++)
			if (!fuzz_safe_byte((unsigned char)out[i]))
				abort();
		if (mediatype_parse(out, n, again) != 0 || strcmp(out, again) != 0)
			abort();
	}
	if (mediatype_filename_ok(v, size)) {
		for (size_t i = 0; i < size; i++)
			if (!(isalnum((unsigned char)v[i]) || (v[i] && strchr("._- ", v[i]))))
				abort();
		if (memmem(v, size, "..", 2))
			abort();
	}
	free(v);
	return 0;
}
