/*
 * ctl.h — the control channel between the supervisor and each child.
 *
 * A SOCK_SEQPACKET socketpair made by the supervisor before fork; the child
 * gets its end as fd CTL_CHILD_FD. Each datagram is one message: an 8-byte
 * header {u32 type, u32 len} (host order: both ends are the same binary on
 * the same machine) followed by len bytes of body, at most CTL_MAX_BODY.
 *
 *   child → supervisor: CTL_HELLO  body = build id ("<version>+<git sha>+<build ts>")
 *                       CTL_READY  body = empty (service is serving)
 *                       CTL_STATS  body = "<connections> <inflight>"
 *                       CTL_DEPS   body = "<dependency>=up" | "<dependency>=down"
 *   supervisor → child: CTL_CONFIG body = effective config as JSON (no secrets)
 *                       CTL_DRAIN  body = empty (stop accepting, finish, exit 0)
 *                       CTL_POLICY body = "<version> <b3 digest>" with a sealed memfd
 *                                  holding the verified bundle, or "none" without
 *                                  an fd (no valid bundle: deny every request)
 *
 * A child that reads EOF on the channel exits: the supervisor is gone.
 */
#ifndef MN_CORE_CTL_H
#define MN_CORE_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_MAX_BODY   (64u * 1024u)
#define CTL_CHILD_FD   3   /* control socket in the child */
#define CTL_METRICS_FD 4   /* metrics memfd in the child */
#define CTL_LISTEN_FD  5   /* first listener fd in the child, if any */

typedef enum {
	CTL_HELLO  = 1,
	CTL_READY  = 2,
	CTL_STATS  = 3,
	CTL_DEPS   = 4,
	CTL_CONFIG = 16,
	CTL_DRAIN  = 17,
	CTL_POLICY = 18,
} ctl_type;

typedef struct ctl_msg {
	uint32_t type;
	uint32_t len;
	int      fd;                     /* a passed descriptor (the receiver owns it), or -1 */
	char     body[CTL_MAX_BODY + 1]; /* NUL-terminated for convenience */
} ctl_msg;

__attribute__((warn_unused_result))
int ctl_send(int fd, ctl_type type, const void *body, size_t len);
/* The same, passing descriptor pass_fd (a duplicate arrives) along. */
__attribute__((warn_unused_result))
int ctl_send_fd(int fd, ctl_type type, const void *body, size_t len, int pass_fd);
/* Returns 1 with a message, 0 on EOF, -1 on error or a malformed message.
 * At most one descriptor is kept (msg->fd); any more are closed. */
__attribute__((warn_unused_result))
int ctl_recv(int fd, ctl_msg *msg);
/* The build id every process of this binary reports (version parity). */
const char *ctl_build_id(void);

#endif
