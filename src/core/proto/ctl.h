/*
 * ctl.h — the control channel between the supervisor and each child.
 *
 * A SOCK_SEQPACKET socketpair made by the supervisor before fork; the child
 * gets its end as fd CTL_CHILD_FD. Each datagram is one message: an 8-byte
 * big-endian header {u32 type, u32 len} followed by len bytes of body, at
 * most CTL_MAX_BODY, encoded with lib/wire.h. Every message type has one
 * struct, one compose function (build and send) and one reader (the receiver
 * checks the type first, then calls the reader of that type):
 *
 *   child → supervisor: CTL_HELLO  str build id ("<version>+<git sha>+<build ts>")
 *                       CTL_READY  empty (the service is serving)
 *                       CTL_DEPS   u8 dependency (ctl_dep), u8 state (ctl_dep_state)
 *   supervisor → child: CTL_CONFIG blob: effective config as JSON (no secrets;
 *                                  parsed by the strict config parser)
 *                       CTL_DRAIN  empty (stop accepting, finish, exit 0)
 *                       CTL_POLICY u8 present, u64 version, str "b3:<hex>" digest,
 *                                  with a sealed memfd holding the verified
 *                                  bundle when present; absent = no valid
 *                                  bundle (deny every request), no fd
 *                       CTL_KEK      raw 32-byte key-encryption key
 *                                  (core/keys/kek.h), sent before CONFIG
 *                                  to roles that load sealed key files
 *                                  (roles.h `policy`); both ends wipe it
 *                       CTL_IDENTITY raw 32-byte Ed25519 seed of the node
 *                                  identity (core/identity), sent before
 *                                  CONFIG to the roles that sign or pin
 *                                  (roles.h `identity`); both ends wipe it
 *                       CTL_ONION    str the node's onion address or "" (roles
 *                                  with `identity`; again whenever it changes)
 *
 * Only CTL_POLICY carries a descriptor; any other message with one is
 * malformed. Both ends are the same binary, so a malformed message or an
 * unknown type is a bug: fatal to a child that receives one; the supervisor
 * kills the child that sent one (docs/internal.md).
 *
 * A child that reads EOF on the channel exits: the supervisor is gone.
 */
#ifndef MN_CORE_CTL_H
#define MN_CORE_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CTL_HDR_LEN      8u
#define CTL_MAX_BODY     (64u * 1024u)
#define CTL_BUILD_ID_MAX 128   /* with the NUL */
#define CTL_DIGEST_MAX   80    /* "b3:<64 hex>" with the NUL */
#define CTL_CHILD_FD     3     /* control socket in the child */
#define CTL_METRICS_FD   4     /* metrics memfd in the child */
#define CTL_LISTEN_FD    5     /* first listener fd in the child, if any */

/* Wire values: never reuse a retired number (3 was a load report). */
typedef enum {
	CTL_HELLO  = 1,
	CTL_READY  = 2,
	CTL_DEPS   = 4,
	CTL_CONFIG = 16,
	CTL_DRAIN  = 17,
	CTL_POLICY = 18,
	CTL_IDENTITY = 19,
	CTL_KEK = 20,
	CTL_ONION = 24,
} ctl_type;

/* Dependencies a service reports on (wire values; also array indexes). */
typedef enum {
	CTL_DEP_STORAGE = 0,   /* the storage service, through the client's breaker */
	CTL_DEP_CAPACITY,      /* the service's own headroom: not up while it sheds load */
	CTL_DEP_DHT,           /* the DHT: up once bootstrapped (or an island by design) */
	CTL_DEP_ZK,            /* zk.enabled, but the holder-proof replay table cannot be used */
	CTL_DEP_COUNT
} ctl_dep;

typedef enum {
	CTL_DEP_UP = 0,
	CTL_DEP_DOWN,
	CTL_DEP_DEGRADED,
} ctl_dep_state;

/* One received message. The body is followed by a NUL (not part of len). */
typedef struct ctl_msg {
	uint32_t type;
	uint32_t len;
	int      fd;                     /* a passed descriptor (the receiver owns it), or -1 */
	uint8_t  body[CTL_MAX_BODY + 1];
} ctl_msg;

typedef struct ctl_hello {
	char build_id[CTL_BUILD_ID_MAX];
} ctl_hello;

typedef struct ctl_deps {
	ctl_dep       dep;
	ctl_dep_state state;
} ctl_deps;

typedef struct ctl_config {
	const char *json;   /* borrows the message body; NUL-terminated, no NUL inside */
	size_t      len;
} ctl_config;

typedef struct ctl_policy {
	bool     present;                /* a verified bundle is in force */
	uint64_t version;                /* 0 when absent */
	char     digest[CTL_DIGEST_MAX]; /* "" when absent */
	int      fd;                     /* the sealed memfd (borrowed), or -1 when absent */
} ctl_policy;

#define CTL_SEED_LEN 32u
#define CTL_KEK_LEN  32u
#define CTL_ONION_MAX 80u   /* "<v3 name>.onion:port" with the NUL (ONION_ADDR_MAX + 1) */

/* Compose and send one message on sock. 0, or -1 (errno set). */
__attribute__((warn_unused_result)) int ctl_compose_hello(int sock, const char *build_id);
__attribute__((warn_unused_result)) int ctl_compose_ready(int sock);
__attribute__((warn_unused_result))
int ctl_compose_deps(int sock, ctl_dep dep, ctl_dep_state state);
__attribute__((warn_unused_result))
int ctl_compose_config(int sock, const char *json, size_t len);
__attribute__((warn_unused_result)) int ctl_compose_drain(int sock);
/* The identity seed; the message buffer is wiped after sending. */
__attribute__((warn_unused_result))
int ctl_compose_identity(int sock, const uint8_t seed[CTL_SEED_LEN]);
/* The KEK; the message buffer is wiped after sending. */
__attribute__((warn_unused_result))
int ctl_compose_kek(int sock, const uint8_t kek[CTL_KEK_LEN]);
/* The node's onion address "<name>.onion:port", or "" (none yet, or tor
 * down): roles with `identity` publish it (docs/tor.md). */
__attribute__((warn_unused_result)) int ctl_compose_onion(int sock, const char *addr);
/* Passes p->fd (a duplicate arrives) when p->present. */
__attribute__((warn_unused_result)) int ctl_compose_policy(int sock, const ctl_policy *p);

/*
 * Receive one message. Returns 1 with a message, 0 on EOF, -1 on error:
 * errno EAGAIN/EINTR (try later), EBADMSG (a malformed frame: too short,
 * truncated, or a length that disagrees with the datagram), or another
 * socket error. At most one descriptor is kept (msg->fd); any more, and any
 * that came with a refused frame, are closed.
 */
__attribute__((warn_unused_result)) int ctl_recv(int sock, ctl_msg *msg);
/* The frame check of ctl_recv on a datagram already read (fuzzing, tests):
 * 0, or -1 when malformed. fd is stored in msg->fd as is. */
__attribute__((warn_unused_result))
int ctl_parse(const void *buf, size_t len, int fd, ctl_msg *msg);

/* Readers: 0, or -1 when the message is not exactly a well-formed message of
 * that type (wrong type, short or extended body, a value out of range, a
 * descriptor where none belongs or none where one must be). */
__attribute__((warn_unused_result)) int ctl_read_hello(const ctl_msg *m, ctl_hello *out);
__attribute__((warn_unused_result)) int ctl_read_ready(const ctl_msg *m);
__attribute__((warn_unused_result)) int ctl_read_deps(const ctl_msg *m, ctl_deps *out);
__attribute__((warn_unused_result)) int ctl_read_config(const ctl_msg *m, ctl_config *out);
__attribute__((warn_unused_result)) int ctl_read_drain(const ctl_msg *m);
/* Copies the seed out; the caller wipes both it and m->body. */
__attribute__((warn_unused_result))
int ctl_read_identity(const ctl_msg *m, uint8_t seed[CTL_SEED_LEN]);
/* Copies the KEK out; the caller wipes both it and m->body. */
__attribute__((warn_unused_result))
int ctl_read_kek(const ctl_msg *m, uint8_t kek[CTL_KEK_LEN]);
/* addr gets CTL_ONION_MAX bytes at most. */
__attribute__((warn_unused_result)) int ctl_read_onion(const ctl_msg *m, char addr[CTL_ONION_MAX]);
/* out->fd borrows m->fd: the message's owner still closes it. */
__attribute__((warn_unused_result)) int ctl_read_policy(const ctl_msg *m, ctl_policy *out);

/* "HELLO", …, or "unknown" (log lines). */
const char *ctl_type_name(uint32_t type);
/* "storage", "capacity", "dht", or "unknown". */
const char *ctl_dep_name(ctl_dep dep);
/* The build id every process of this binary reports (version parity). */
const char *ctl_build_id(void);

#endif
