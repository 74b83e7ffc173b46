#include "core/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>

#define SOCK_BACKLOG 4096 /* the kernel clamps this to net.core.somaxconn */

int sock_listen(const struct addr *a, char *err, size_t errlen)
{
	char name[ADDR_STRLEN];
	int one = 1;
	int fd;

	addr_format((const struct sockaddr *)&a->ss, name, sizeof(name));
	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1 ||
	    listen(fd, SOCK_BACKLOG) == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

void sock_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int sock_connect_any(int family, const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int saved;

	if (fd == -1)
		return -1;
	if (family != AF_UNIX)
		sock_nodelay(fd);
	if (connect(fd, sa, len) == 0) {
		errno = 0;
		return fd;
	}
	if (errno != EINPROGRESS) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int sock_connect(const struct sockaddr *sa, socklen_t len)
{
	return sock_connect_any(sa->sa_family, sa, len);
}

int sock_connect_unix(const char *path)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	return sock_connect_any(AF_UNIX, (const struct sockaddr *)&sun, sizeof(sun));
}

bool sock_local_error(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

int sock_error(int fd)
{
	int e = 0;
	socklen_t len = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
		return errno;
	return e;
}

void sock_abort(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

uint32_t sock_unsent(int fd)
{
	int n = 0;

	if (ioctl(fd, SIOCOUTQNSD, &n) == -1 || n < 0)
		return 0;
	return (uint32_t)n;
}
