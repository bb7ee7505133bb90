/*
 * ipc.h — message passing with file descriptors over SOCK_SEQPACKET UNIX
 * sockets (one message per datagram; SCM_RIGHTS for fds).
 */
#ifndef MN_LIB_IPC_H
#define MN_LIB_IPC_H

#include <stddef.h>
#include <sys/types.h>

#define IPC_MAX_FDS 4

/* Send one message with up to IPC_MAX_FDS fds. Returns 0, or -1 (errno set). */
__attribute__((warn_unused_result))
int ipc_send(int sock, const void *buf, size_t len, const int *fds, size_t nfds);

/*
 * Receive one message into buf (cap bytes). Received fds (cloexec) are stored
 * in fds (room for IPC_MAX_FDS), their number in *nfds. Returns the message
 * length, 0 on EOF, or -1 (errno set; EMSGSIZE if the message was truncated,
 * in which case any received fds are closed).
 */
__attribute__((warn_unused_result))
ssize_t ipc_recv(int sock, void *buf, size_t cap, int *fds, size_t *nfds);

#endif
