/*
 * ctl.c — libFuzzer target: arbitrary datagrams on the control channel.
 *
 * Each input is one datagram as ctl_recv would read it. It goes through the
 * frame check (ctl_parse) twice — without a descriptor and with one (a
 * number only: no reader touches the descriptor) — and, when the frame is
 * well formed, through every typed reader. Checked invariants: at most the
 * reader of the message's own type accepts it; an accepted HELLO has a
 * non-empty build id, an accepted CONFIG a NUL-terminated JSON of the stated
 * length, an accepted POLICY carries the descriptor exactly when present.
 *
 * Run: build-fuzz/fuzz/fuzz_ctl -max_len=256 fuzz/corpus/ctl
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/proto/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_FAKE_FD 1000

static ctl_msg fuzz_msg;  /* 64 KiB: not on the fuzzer's stack */

static void fuzz_readers(const ctl_msg *m)
{
	ctl_hello h;
	ctl_deps d;
	ctl_config c;
	ctl_policy p;
	int ok = 0;

	if (ctl_read_hello(m, &h) == 0) {
		ok++;
		if (m->type != CTL_HELLO || !h.build_id[0])
			abort();
	}
	if (ctl_read_ready(m) == 0 && (++ok, m->type != CTL_READY || m->len))
		abort();
	if (ctl_read_drain(m) == 0 && (++ok, m->type != CTL_DRAIN || m->len))
		abort();
	if (ctl_read_deps(m, &d) == 0) {
		ok++;
		if (m->type != CTL_DEPS || d.dep >= CTL_DEP_COUNT || d.state > CTL_DEP_DEGRADED)
			abort();
	}
	if (ctl_read_config(m, &c) == 0) {
		ok++;
		if (m->type != CTL_CONFIG || c.len == 0 || strlen(c.json) != c.len)
			abort();
	}
	if (ctl_read_policy(m, &p) == 0) {
		ok++;
		if (m->type != CTL_POLICY || p.present != (m->fd >= 0) || p.fd != m->fd)
			abort();
	}
	if (ok > 1)
		abort();
	(void)ctl_type_name(m->type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int fds[2] = { -1, FUZZ_FAKE_FD };

	for (size_t i = 0; i < 2; i++) {
		if (ctl_parse(data, size, fds[i], &fuzz_msg) != 0)
			continue;
		if (fuzz_msg.len != size - CTL_HDR_LEN || fuzz_msg.body[fuzz_msg.len] != '\0')
			abort();
		fuzz_readers(&fuzz_msg);
	}
	return 0;
}
