/* Socket helpers: non-blocking listeners and connects, options, abortive close. */
#ifndef NETWALL_SOCK_H
#define NETWALL_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"

/* A non-blocking, close-on-exec listening socket on a (IPv6 sockets are v6-only, so
 * 0.0.0.0 and [::] can be listed side by side). Returns the fd, or -1 with err filled. */
int sock_listen(const struct addr *a, char *err, size_t errlen);

/* Starts a non-blocking TCP connect (TCP_NODELAY set). Returns the fd, or -1 with errno set.
 * On success errno is 0 if the connection is already made (as on loopback), or EINPROGRESS:
 * then completion is signalled by writability, and sock_error() tells the result. */
int sock_connect(const struct sockaddr *sa, socklen_t len);
/* The same for a Unix stream socket at path. */
int sock_connect_unix(const char *path);

/* True if err, from a connect, is this process's own shortage (descriptors, buffers,
 * memory), which says nothing about the peer: EMFILE, ENFILE, ENOBUFS, ENOMEM. */
bool sock_local_error(int err);
/* Returns the pending SO_ERROR of fd (0 if none). */
int sock_error(int fd);
void sock_nodelay(int fd);
/* Closes fd so the peer sees a reset (SO_LINGER 0), for carrying a reset end to end. */
void sock_abort(int fd);
/* Bytes the kernel holds for a TCP socket and has not sent yet (0 for other sockets). */
uint32_t sock_unsent(int fd);

#endif
