/*
 * ctl.c — supervisor ↔ child control messages (see ctl.h).
 */
#include "core/proto/ctl.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "lib/wire.h"
#include "mn_build.h"
#include "mn_git.h"
#include "mn_git_ts.h"

/* One message being composed: header then body in one buffer. The buffer is
 * on the stack of the compose call (64 KiB; every caller is a main loop). */
typedef struct ctl_out {
	uint8_t buf[CTL_HDR_LEN + CTL_MAX_BODY];
	wire_w  w;
} ctl_out;

static void ctl_begin(ctl_out *o, ctl_type type)
{
	wire_w_init(&o->w, o->buf, sizeof o->buf);
	wire_put_u32(&o->w, (uint32_t)type);
	wire_put_u32(&o->w, 0);  /* the length, patched by ctl_finish */
}

/* Patch the length in and send, passing fd when >= 0. */
static int ctl_finish(int sock, ctl_out *o, int fd)
{
	wire_w len;

	if (wire_w_ok(&o->w) != 0) {
		errno = EMSGSIZE;
		return -1;
	}
	wire_w_init(&len, o->buf + 4, 4);
	wire_put_u32(&len, (uint32_t)(o->w.len - CTL_HDR_LEN));
	return ipc_send(sock, o->buf, o->w.len, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
}

int ctl_compose_hello(int sock, const char *build_id)
{
	ctl_out o;

	ctl_begin(&o, CTL_HELLO);
	wire_put_str(&o.w, build_id);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_ready(int sock)
{
	ctl_out o;

	ctl_begin(&o, CTL_READY);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_deps(int sock, ctl_dep dep, ctl_dep_state state)
{
	ctl_out o;

	ctl_begin(&o, CTL_DEPS);
	wire_put_u8(&o.w, (uint8_t)dep);
	wire_put_u8(&o.w, (uint8_t)state);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_config(int sock, const char *json, size_t len)
{
	ctl_out o;

	ctl_begin(&o, CTL_CONFIG);
	wire_put_blob(&o.w, json, len);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_drain(int sock)
{
	ctl_out o;

	ctl_begin(&o, CTL_DRAIN);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_identity(int sock, const uint8_t seed[CTL_SEED_LEN])
{
	ctl_out o;

	ctl_begin(&o, CTL_IDENTITY);
	wire_put_raw(&o.w, seed, CTL_SEED_LEN);
	int rc = ctl_finish(sock, &o, -1);
	explicit_bzero(o.buf, o.w.len);
	return rc;
}

int ctl_compose_onion(int sock, const char *addr)
{
	ctl_out o;

	if (strlen(addr) >= CTL_ONION_MAX)
		return -1;
	ctl_begin(&o, CTL_ONION);
	wire_put_str(&o.w, addr);
	return ctl_finish(sock, &o, -1);
}

int ctl_compose_kek(int sock, const uint8_t kek[CTL_KEK_LEN])
{
	ctl_out o;

	ctl_begin(&o, CTL_KEK);
	wire_put_raw(&o.w, kek, CTL_KEK_LEN);
	int rc = ctl_finish(sock, &o, -1);
	explicit_bzero(o.buf, o.w.len);
	return rc;
}

int ctl_compose_policy(int sock, const ctl_policy *p)
{
	ctl_out o;

	ctl_begin(&o, CTL_POLICY);
	wire_put_u8(&o.w, p->present);
	wire_put_u64(&o.w, p->present ? p->version : 0);
	wire_put_str(&o.w, p->present ? p->digest : "");
	return ctl_finish(sock, &o, p->present ? p->fd : -1);
}

int ctl_parse(const void *buf, size_t len, int fd, ctl_msg *msg)
{
	wire_r r;

	msg->type = 0;
	msg->len = 0;
	msg->fd = fd;
	msg->body[0] = '\0';
	if (len < CTL_HDR_LEN || len - CTL_HDR_LEN > CTL_MAX_BODY)
		return -1;
	wire_r_init(&r, buf, CTL_HDR_LEN);
	uint32_t type = wire_get_u32(&r);
	uint32_t blen = wire_get_u32(&r);
	if (wire_end(&r) != 0 || blen != len - CTL_HDR_LEN)
		return -1;
	msg->type = type;
	msg->len = blen;
	memcpy(msg->body, (const uint8_t *)buf + CTL_HDR_LEN, blen);
	msg->body[blen] = '\0';
	return 0;
}

int ctl_recv(int sock, ctl_msg *msg)
{
	uint8_t buf[CTL_HDR_LEN + CTL_MAX_BODY];
	int fds[IPC_MAX_FDS];
	size_t nfds = 0;
	ssize_t r = ipc_recv(sock, buf, sizeof buf, fds, &nfds);

	msg->type = 0;  /* "unknown" in the log line of a refused frame */
	msg->fd = -1;
	for (size_t i = 1; i < nfds; i++)
		close(fds[i]);
	if (r < 0 && errno == EMSGSIZE)
		errno = EBADMSG;  /* ipc_recv closed the descriptors of a truncated datagram */
	if (r <= 0)
		return r == 0 ? 0 : -1;
	if (ctl_parse(buf, (size_t)r, nfds ? fds[0] : -1, msg) != 0) {
		if (nfds)
			close(fds[0]);
		msg->fd = -1;
		errno = EBADMSG;
		return -1;
	}
	return 1;
}

/* A reader over the body of a message of the expected type that carries a
 * descriptor exactly when it must. */
static void ctl_reader(wire_r *r, const ctl_msg *m, ctl_type want, bool want_fd)
{
	wire_r_init(r, m->body, m->len);
	if (m->type != (uint32_t)want || (m->fd >= 0) != want_fd)
		r->bad = true;
}

int ctl_read_hello(const ctl_msg *m, ctl_hello *out)
{
	wire_r r;

	ctl_reader(&r, m, CTL_HELLO, false);
	wire_get_str(&r, out->build_id, sizeof out->build_id);
	return out->build_id[0] ? wire_end(&r) : -1;
}

int ctl_read_ready(const ctl_msg *m)
{
	wire_r r;

	ctl_reader(&r, m, CTL_READY, false);
	return wire_end(&r);
}

int ctl_read_deps(const ctl_msg *m, ctl_deps *out)
{
	wire_r r;

	ctl_reader(&r, m, CTL_DEPS, false);
	uint8_t dep = wire_get_u8(&r);
	uint8_t state = wire_get_u8(&r);
	if (dep >= CTL_DEP_COUNT || state > CTL_DEP_DEGRADED)
		return -1;
	out->dep = (ctl_dep)dep;
	out->state = (ctl_dep_state)state;
	return wire_end(&r);
}

/* The JSON is the last field, so it ends where the body ends: the NUL that
 * ctl_parse put after the body terminates it. */
int ctl_read_config(const ctl_msg *m, ctl_config *out)
{
	wire_r r;
	const uint8_t *p;
	size_t n;

	ctl_reader(&r, m, CTL_CONFIG, false);
	wire_get_blob(&r, &p, &n, CTL_MAX_BODY);
	if (wire_end(&r) != 0 || n == 0 || memchr(p, 0, n))
		return -1;
	out->json = (const char *)p;
	out->len = n;
	return 0;
}

int ctl_read_drain(const ctl_msg *m)
{
	wire_r r;

	ctl_reader(&r, m, CTL_DRAIN, false);
	return wire_end(&r);
}

int ctl_read_identity(const ctl_msg *m, uint8_t seed[CTL_SEED_LEN])
{
	wire_r r;

	ctl_reader(&r, m, CTL_IDENTITY, false);
	wire_get_raw(&r, seed, CTL_SEED_LEN);
	return wire_end(&r);
}

int ctl_read_onion(const ctl_msg *m, char addr[CTL_ONION_MAX])
{
	wire_r r;

	ctl_reader(&r, m, CTL_ONION, false);
	wire_get_str(&r, addr, CTL_ONION_MAX);
	return wire_end(&r);
}

int ctl_read_kek(const ctl_msg *m, uint8_t kek[CTL_KEK_LEN])
{
	wire_r r;

	ctl_reader(&r, m, CTL_KEK, false);
	wire_get_raw(&r, kek, CTL_KEK_LEN);
	return wire_end(&r);
}

int ctl_read_policy(const ctl_msg *m, ctl_policy *out)
{
	wire_r r;

	wire_r_init(&r, m->body, m->len);
	out->present = wire_get_bool(&r);
	out->version = wire_get_u64(&r);
	wire_get_str(&r, out->digest, sizeof out->digest);
	out->fd = m->fd;
	if (m->type != CTL_POLICY || wire_end(&r) != 0)
		return -1;
	/* Present: a digest and the memfd. Absent: nothing at all. */
	if (out->present)
		return out->digest[0] && m->fd >= 0 ? 0 : -1;
	return out->version == 0 && !out->digest[0] && m->fd < 0 ? 0 : -1;
}

const char *ctl_type_name(uint32_t type)
{
	switch (type) {
	case CTL_HELLO:  return "HELLO";
	case CTL_READY:  return "READY";
	case CTL_DEPS:   return "DEPS";
	case CTL_CONFIG: return "CONFIG";
	case CTL_DRAIN:  return "DRAIN";
	case CTL_POLICY: return "POLICY";
	case CTL_IDENTITY: return "IDENTITY";
	case CTL_KEK: return "KEK";
	case CTL_ONION: return "ONION";
	default:         return "unknown";
	}
}

const char *ctl_dep_name(ctl_dep dep)
{
	switch (dep) {
	case CTL_DEP_STORAGE:  return "storage";
	case CTL_DEP_CAPACITY: return "capacity";
	case CTL_DEP_DHT:      return "dht";
	case CTL_DEP_ZK:       return "zk";
	default:               return "unknown";
	}
}

const char *ctl_build_id(void)
{
	return MN_VERSION "+" MN_GIT_SHA "+" MN_BUILD_TS;
}
