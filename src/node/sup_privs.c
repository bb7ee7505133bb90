/*
 * sup_privs.c — started as root, the node runs as node.user (issue 18;
 * docs/operations.md "Privileges"). The supervisor resolves the user before
 * it binds anything, binds its TCP listeners (ports below 1024 need root),
 * makes the data and runtime directories the user's if it creates them,
 * then gives up root for good: supplementary groups, gid, uid, in that
 * order, checked by trying to get root back. Everything after — keys, the
 * identity, the policy, UNIX sockets, every service process — runs as the
 * user, so no process of the node keeps root or a capability.
 *
 * Not root: nothing to do (systemd's User=/DynamicUser= or a plain user
 * started it). node.user naming root, or a user that does not exist, is
 * refused unless node.allow_root is set; then every process runs as root,
 * with a warning.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/log.h"
#include "node/node.h"

#define PRIVS_PWBUF 16384   /* getpwnam_r's scratch: enough for any passwd line */

int sup_privs_resolve(supervisor *s, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[PRIVS_PWBUF];
	const char *name = s->cfg.node_user;
	int rc;

	s->privs.drop = false;
	if (geteuid() != 0)
		return 0;
	rc = getpwnam_r(name, &pw, buf, sizeof buf, &res);
	if (res && pw.pw_uid != 0) {
		s->privs.drop = true;
		s->privs.uid = pw.pw_uid;
		s->privs.gid = pw.pw_gid;
		return 0;
	}
	if (s->cfg.node_allow_root) {
		log_kv(LOG_LEVEL_WARN, "running every service as root (node.allow_root)", "node.user",
		       name, LOG_END);
		return 0;
	}
	if (res)
		snprintf(err, errlen, "started as root and node.user '%s' is root: set node.user to an "
		         "unprivileged user, or node.allow_root to run as root", name);
	else
		snprintf(err, errlen, "started as root and node.user '%s' %s: create it (useradd "
		         "--system %s) or set node.user; node.allow_root runs as root",
		         name, rc ? strerror(rc) : "does not exist", name);
	return -1;
}

/* dir exists and belongs to the user, or is made for it now (0700). */
static int privs_own_dir(const supervisor *s, const char *key, const char *dir, char *err,
                         size_t errlen)
{
	struct stat st;

	if (lstat(dir, &st) != 0) {
		if (errno != ENOENT || mkdir(dir, 0700) != 0 ||
		    lchown(dir, s->privs.uid, s->privs.gid) != 0) {
			snprintf(err, errlen, "%s %s: cannot make it for node.user %s: %s", key, dir,
			         s->cfg.node_user, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != s->privs.uid) {
		snprintf(err, errlen, "%s %s is not a directory of node.user %s (uid %u): "
		         "chown -R %s: %s", key, dir, s->cfg.node_user, (unsigned)s->privs.uid,
		         s->cfg.node_user, dir);
		return -1;
	}
	return 0;
}

int sup_privs_drop(supervisor *s, char *err, size_t errlen)
{
	if (!s->privs.drop)
		return 0;
	if (!s->cfg.amnesia && privs_own_dir(s, "paths.data_dir", s->cfg.data_dir, err, errlen) != 0)
		return -1;
	/* An amnesia runtime directory of our own is made after the drop. */
	if (!s->own_runtime_dir &&
	    privs_own_dir(s, "paths.runtime_dir", s->runtime_dir, err, errlen) != 0)
		return -1;
	if (initgroups(s->cfg.node_user, s->privs.gid) != 0 || setgid(s->privs.gid) != 0 ||
	    setuid(s->privs.uid) != 0) {
		snprintf(err, errlen, "cannot become node.user %s: %s", s->cfg.node_user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0 || geteuid() == 0 || getegid() != s->privs.gid) {
		snprintf(err, errlen, "root could be regained after becoming node.user %s",
		         s->cfg.node_user);
		return -1;
	}
	/* Every service is this binary again, exec'd by the user now. */
	if (access(s->exe, X_OK) != 0) {
		snprintf(err, errlen, "node.user %s cannot run %s (%s): install the binary where it can "
		         "(e.g. /usr/bin)", s->cfg.node_user, s->exe, strerror(errno));
		return -1;
	}
	char uid[16];
	snprintf(uid, sizeof uid, "%u", (unsigned)s->privs.uid);
	log_kv(LOG_LEVEL_INFO, "running as node.user", "user", s->cfg.node_user, "uid", uid, LOG_END);
	return 0;
}
