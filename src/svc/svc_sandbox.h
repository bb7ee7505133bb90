/*
 * svc_sandbox.h — the sandbox profile of each role (named in the role table,
 * node/roles.c) and how a service process enters it (svc_sandbox_enter in
 * svc.h). The mechanism is lib/sandbox.c; what each profile allows is
 * documented in docs/operations.md ("Sandboxes").
 */
#ifndef MN_SVC_SVC_SANDBOX_H
#define MN_SVC_SVC_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config/config.h"
#include "lib/sandbox.h"

/* Room for the paths a profile derives from the config (≤ SANDBOX_MAX_PATHS). */
typedef struct svc_sandbox_paths {
	sandbox_path rule[SANDBOX_MAX_PATHS];
	char         buf[SANDBOX_MAX_PATHS][CONFIG_PATH_MAX];
	size_t       n;
} svc_sandbox_paths;

typedef struct svc_sandbox_profile {
	const char        *name;       /* "front", "store" */
	const char *const *syscalls;   /* allowed beyond the common set; NULL-terminated */
	bool               open_write; /* openat may write (else read-only opens only) */
	bool               threads;    /* may start threads (after entering) */
	bool               tcp_connect; /* may dial TCP (Landlock ABI ≥ 4 refuses it otherwise) */
	/* Its own directory beneath paths.data_dir, read and written (none in
	 * amnesia mode), or NULL. */
	const char        *data_subdir;
	/* Any other directories it keeps under cfg (borrowed), into out; NULL: none. */
	void (*paths)(const mn_config *cfg, svc_sandbox_paths *out);
} svc_sandbox_profile;

/* gateway and omnigate: the inherited listener and accepted sockets, the
 * storage socket, read-only the key, certificate and mTLS files reload reads. */
extern const svc_sandbox_profile svc_sandbox_front;
/* gateway: the front's, and threads of its own (libmagic's sniff thread). */
extern const svc_sandbox_profile svc_sandbox_gateway;
/* storage: its data directories read/write (none in amnesia mode). */
extern const svc_sandbox_profile svc_sandbox_store;
/* dht: no file system at all; OpenDHT's threads and its one UDP socket. */
extern const svc_sandbox_profile svc_sandbox_dht;
/* index: its LMDB directory (<data_dir>/index, none in amnesia mode), opened
 * before the sandbox; a writer thread that fsyncs. */
extern const svc_sandbox_profile svc_sandbox_index;
/* mailbox: its LMDB directory (<data_dir>/mailbox, none in amnesia mode),
 * opened before the sandbox; a writer thread that fsyncs; memfds. */
extern const svc_sandbox_profile svc_sandbox_mailbox;
/* overlay: no file system (upload files arrive as fds); TCP to peers, its sockets. */
extern const svc_sandbox_profile svc_sandbox_overlay;
/* audit: its log directory (<data_dir>/audit, none in amnesia mode) read/write,
 * fsync, renames and unlinks for retention; one proof thread. */
extern const svc_sandbox_profile svc_sandbox_audit;
/* social: its LMDB directory (<data_dir>/social; in amnesia a memfd opened
 * before the sandbox), a writer thread. */
extern const svc_sandbox_profile svc_sandbox_social;

/* search: its SQLite directory (<data_dir>/search, none in amnesia mode),
 * opened before the sandbox; one worker thread (WAL writes, fsync). */
extern const svc_sandbox_profile svc_sandbox_search;
/* The paths profile p keeps under cfg (for tests and the docs). */
void svc_sandbox_paths_of(const svc_sandbox_profile *p, const mn_config *cfg,
                          svc_sandbox_paths *out);
/* Build p's seccomp filter (enforce: kill, else log; see lib/sandbox.h).
 * Caller frees. NULL on failure. */
sandbox_filter *svc_sandbox_filter(const svc_sandbox_profile *p, bool enforce);
/* True in an ASan/UBSan build: seccomp runs in log mode there (see
 * docs/operations.md) and /proc stays readable for the sanitizer runtime. */
bool svc_sandbox_is_sanitized(void);

/*
 * Test hook, inert unless the environment variable MN_TEST_SANDBOX_PROBE names
 * a directory: at start-up a process of role R that finds the file <dir>/R,
 * and is the one that removes it, performs the forbidden act the file names
 * ("open": read /etc/passwd; "write": create a file in /tmp; "exec": execve
 * /bin/true) right after entering its sandbox. The integration test of the
 * sandboxes uses it to prove each profile bites.
 */
typedef enum {
	SVC_PROBE_NONE = 0,
	SVC_PROBE_OPEN,
	SVC_PROBE_WRITE,
	SVC_PROBE_EXEC,
} svc_sandbox_probe;

svc_sandbox_probe svc_sandbox_probe_arm(const char *role);
/* Perform it: returns only if the sandbox refused it (or probe is NONE). */
void svc_sandbox_probe_run(svc_sandbox_probe probe);

#endif
