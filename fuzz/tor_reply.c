/*
 * tor_reply.c — libFuzzer target for what tor sends the node: SOCKS5
 * answers (src/core/tor/socks5.h) and control-port lines (torctl.h).
 *   build-fuzz/fuzz/fuzz_tor_reply -max_len=512 fuzz/corpus/tor_reply
 *
 * The first byte picks the parser; the rest is its input. Invariants
 * (abort on violation):
 *   - a SOCKS5 reply taken is exactly the bytes given, with REP 0;
 *     a method answer taken is 2 bytes;
 *   - an AUTH line taken names at least one method; a bootstrap line
 *     taken has 0..100 % and a tag without spaces.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/tor/socks5.h"
#include "core/tor/torctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_LINE_MAX 512u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[FZ_LINE_MAX + 1], out[64];
	size_t used, n;
	uint8_t rep;
	unsigned m;

	if (size < 1)
		return 0;
	n = size - 1 < FZ_LINE_MAX ? size - 1 : FZ_LINE_MAX;
	switch (data[0] & 3u) {
	case 0:
		if (socks5_parse_method(data + 1, size - 1) == SOCKS5_OK && size - 1 != 2)
			abort();
		break;
	case 1:
		if (socks5_parse_reply(data + 1, size - 1, &used, &rep) == SOCKS5_OK &&
		    (used != size - 1 || rep != 0))
			abort();
		break;
	case 2:
		memcpy(line, data + 1, n);
		line[n] = '\0';   /* the control client never hands over a NUL */
		if (torctl_parse_auth(line, &m, out, sizeof out) == 0 && m == 0)
			abort();
		break;
	default:
		memcpy(line, data + 1, n);
		line[n] = '\0';
		if (torctl_parse_bootstrap(line, &m, out, sizeof out) == 0 &&
		    (m > 100 || !out[0] || strchr(out, ' ')))
			abort();
		break;
	}
	return 0;
}
