/*
 * ctl.c — supervisor ↔ child control messages (see ctl.h).
 */
#include "core/proto/ctl.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "lib/ipc.h"
#include "mn_build.h"

#define CTL_HDR_LEN 8u

int ctl_send(int fd, ctl_type type, const void *body, size_t len)
{
	return ctl_send_fd(fd, type, body, len, -1);
}

int ctl_send_fd(int fd, ctl_type type, const void *body, size_t len, int pass_fd)
{
	char buf[CTL_HDR_LEN + CTL_MAX_BODY];
	uint32_t hdr[2] = { (uint32_t)type, (uint32_t)len };

	if (len > CTL_MAX_BODY) {
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(buf, hdr, CTL_HDR_LEN);
	if (len)
		memcpy(buf + CTL_HDR_LEN, body, len);
	return ipc_send(fd, buf, CTL_HDR_LEN + len, pass_fd >= 0 ? &pass_fd : NULL,
	                pass_fd >= 0 ? 1 : 0);
}

int ctl_recv(int fd, ctl_msg *msg)
{
	char buf[CTL_HDR_LEN + CTL_MAX_BODY];
	uint32_t hdr[2];
	int fds[IPC_MAX_FDS];
	size_t nfds = 0;
	ssize_t r = ipc_recv(fd, buf, sizeof buf, fds, &nfds);

	msg->fd = -1;
	for (size_t i = 1; i < nfds; i++)
		close(fds[i]);
	if (r == 0 || r < (ssize_t)CTL_HDR_LEN) {
		if (nfds)
			close(fds[0]);
		return r == 0 ? 0 : -1;
	}
	memcpy(hdr, buf, CTL_HDR_LEN);
	if (hdr[1] != (uint32_t)r - CTL_HDR_LEN) {
		if (nfds)
			close(fds[0]);
		return -1;
	}
	msg->fd = nfds ? fds[0] : -1;
	msg->type = hdr[0];
	msg->len = hdr[1];
	memcpy(msg->body, buf + CTL_HDR_LEN, msg->len);
	msg->body[msg->len] = '\0';
	return 1;
}

const char *ctl_build_id(void)
{
	return MN_VERSION "+" MN_GIT_SHA "+" MN_BUILD_TS;
}
