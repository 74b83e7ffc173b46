/* Handing listening sockets to the process that replaces this one (see handover.h). */
#include "core/handover.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"

#define HANDOVER_MAGIC "netwall1"
#define HANDOVER_ROLE_MAX 16
#define HANDOVER_FDS_MAX 4 /* descriptors read from one message; all but one are refused */

enum handover_type {
	HANDOVER_NONE = 0,
	HANDOVER_HELLO,   /* new -> old: role */
	HANDOVER_SOCKET,  /* old -> new: one listening socket (SCM_RIGHTS) */
	HANDOVER_END,     /* old -> new: count = sockets sent */
	HANDOVER_TAKEN,   /* new -> old: it polls them */
	HANDOVER_SERVING, /* new -> old: it serves everything */
};

/* One message; the same process image (or its next version) on the same host reads it. */
struct handover_msg {
	char magic[8];
	uint32_t type;
	uint32_t count;
	char role[HANDOVER_ROLE_MAX];
};

enum handover_state {
	HANDOVER_IDLE = 0, /* listening */
	HANDOVER_HELLO_WAIT,
	HANDOVER_TAKEN_WAIT,
	HANDOVER_SERVING_WAIT,
	HANDOVER_DONE, /* given way: listens no more */
};

struct handover {
	struct event_base *base;
	const struct handover_ops *ops;
	void *arg;
	const char *role;
	int lfd, cfd;
	struct event *lev, *cev;
	enum handover_state state;
	size_t sent;
	struct log_rate rate;
};

/* The handover socket a takeover brought, for handover_new() to listen on. */
static int handover_inherited = -1;

bool handover_uid_allowed(uid_t peer, uid_t self)
{
	return peer == self || peer == 0;
}

static void handover_msg_init(struct handover_msg *m, enum handover_type type, uint32_t count,
			      const char *role)
{
	memset(m, 0, sizeof(*m));
	memcpy(m->magic, HANDOVER_MAGIC, sizeof(m->magic));
	m->type = type;
	m->count = count;
	if (role != NULL)
		snprintf(m->role, sizeof(m->role), "%s", role);
}

/* Sends a message, with fd attached unless it is -1. */
static int handover_send(int s, enum handover_type type, uint32_t count, const char *role, int fd)
{
	struct handover_msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	handover_msg_init(&m, type, count, role);
	if (fd != -1) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	return sendmsg(s, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* Receives one whole message into m and at most one descriptor into *fd (-1 if none; any
 * more are closed). Returns 0, or -1 on EOF, an error, or a message of the wrong shape. */
static int handover_recv(int s, struct handover_msg *m, int *fd, int flags)
{
	struct iovec iov = { .iov_base = m, .iov_len = sizeof(*m) };
	union {
		char buf[CMSG_SPACE(HANDOVER_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t n = recvmsg(s, &mh, flags | MSG_CMSG_CLOEXEC);
	int rc = n == (ssize_t)sizeof(*m) && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
			 memcmp(m->magic, HANDOVER_MAGIC, sizeof(m->magic)) == 0 &&
			 memchr(m->role, '\0', sizeof(m->role)) != NULL
		 ? 0
		 : -1;

	*fd = -1;
	for (struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; c != NULL;
	     c = CMSG_NXTHDR(&mh, c)) {
		size_t k = c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS
				   ? (c->cmsg_len - CMSG_LEN(0)) / sizeof(int)
				   : 0;
		for (size_t i = 0; i < k; i++) {
			int x;
			memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd == -1 && rc == 0)
				*fd = x;
			else
				close(x);
		}
	}
	if (n == 0)
		errno = ECONNRESET;
	else if (n > 0 && rc == -1)
		errno = EPROTO;
	return rc;
}

/* The socket's directory must be writable by no one but its owner: in one that others may
 * write to (/tmp, even with its sticky bit), another user could put a socket of their own at
 * the path before the daemon binds it, and a --takeover would talk to them. */
static int handover_dir_ok(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &st) == -1) {
		if (errno == ENOENT) /* nobody can be there; a bind says so itself */
			return 0;
		snprintf(err, errlen, "handover: %s: %s", dir, strerror(errno));
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "handover: %s is writable by others (mode %04o): put the "
			 "socket in a directory only its owner may write to", dir,
			 (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static int handover_addr(const char *path, struct sockaddr_un *sun, char *err, size_t errlen)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun->sun_path)) {
		snprintf(err, errlen, "handover: the path must be 1..%zu bytes",
			 sizeof(sun->sun_path) - 1);
		return -1;
	}
	memcpy(sun->sun_path, path, strlen(path));
	return handover_dir_ok(path, err, errlen);
}

/* ---- the old process ---- */

static void handover_on_conn(evutil_socket_t fd, short what, void *arg);

/* Waits for the next message on the connection, for at most timeout seconds (0: none). */
static void handover_wait(struct handover *ho, enum handover_state st, double timeout)
{
	struct timeval tv = clock_tv(timeout);

	ho->state = st;
	loop_free_event(&ho->cev);
	ho->cev = event_new(ho->base, ho->cfd, EV_READ, handover_on_conn, ho);
	if (ho->cev == NULL || event_add(ho->cev, timeout > 0 ? &tv : NULL) == -1)
		xalloc_fail("event");
}

/* Ends the connection and listens for the next takeover; if the old process had acted on
 * TAKEN, it is told to resume. */
static void handover_end(struct handover *ho, const char *why)
{
	bool acted = ho->state == HANDOVER_SERVING_WAIT;

	loop_free_event(&ho->cev);
	close(ho->cfd);
	ho->cfd = -1;
	ho->state = HANDOVER_IDLE;
	event_add(ho->lev, NULL);
	if (acted)
		ho->ops->aborted(ho->arg, why);
}

/* The new process serves: this one listens no more (the new one holds the socket). */
static void handover_given(struct handover *ho)
{
	loop_free_event(&ho->cev);
	loop_free_event(&ho->lev);
	close(ho->cfd);
	close(ho->lfd);
	ho->cfd = ho->lfd = -1;
	ho->state = HANDOVER_DONE;
	ho->ops->serving(ho->arg);
}

static double handover_timeout(enum handover_state st)
{
	return st == HANDOVER_SERVING_WAIT ? HANDOVER_TIMEOUT + HANDOVER_WAIT : HANDOVER_TIMEOUT;
}

static void handover_send_one(void *arg, int fd, const struct addr *a)
{
	struct handover *ho = arg;

	(void)a;
	if (ho->sent != SIZE_MAX && handover_send(ho->cfd, HANDOVER_SOCKET, 0, NULL, fd) == 0)
		ho->sent++;
	else
		ho->sent = SIZE_MAX;
}

/* A valid hello: every listening socket, our own handover socket last, then the count. */
static void handover_give(struct handover *ho)
{
	ho->sent = 0;
	listener_each(handover_send_one, ho);
	handover_send_one(ho, ho->lfd, NULL);
	if (ho->sent == SIZE_MAX ||
	    handover_send(ho->cfd, HANDOVER_END, (uint32_t)ho->sent, ho->role, -1) == -1) {
		log_warn("event=handover_failed step=sockets error=\"%s\"", strerror(errno));
		handover_end(ho, "sockets");
		return;
	}
	handover_wait(ho, HANDOVER_TAKEN_WAIT, handover_timeout(HANDOVER_TAKEN_WAIT));
}

static void handover_on_conn(evutil_socket_t fd, short what, void *arg)
{
	struct handover *ho = arg;
	struct handover_msg m;
	int extra;

	(void)fd;
	if (what & EV_TIMEOUT) {
		if (ho->state == HANDOVER_HELLO_WAIT)
			log_limited(&ho->rate, LOG_WARN, "event=handover_refused reason=timeout");
		handover_end(ho, "timeout");
		return;
	}
	if (handover_recv(ho->cfd, &m, &extra, MSG_DONTWAIT) == -1) {
		if (errno == EAGAIN || errno == EINTR) {
			handover_wait(ho, ho->state, handover_timeout(ho->state));
			return;
		}
		if (ho->state == HANDOVER_HELLO_WAIT)
			log_limited(&ho->rate, LOG_WARN, "event=handover_refused reason=garbage");
		handover_end(ho, errno == EPROTO ? "garbage" : "closed");
		return;
	}
	if (extra != -1)
		close(extra);
	if (ho->state == HANDOVER_HELLO_WAIT && m.type == HANDOVER_HELLO &&
	    strcmp(m.role, ho->role) == 0) {
		handover_give(ho);
	} else if (ho->state == HANDOVER_TAKEN_WAIT && m.type == HANDOVER_TAKEN) {
		handover_wait(ho, HANDOVER_SERVING_WAIT, handover_timeout(HANDOVER_SERVING_WAIT));
		ho->ops->taken(ho->arg, ho->sent);
	} else if (ho->state == HANDOVER_SERVING_WAIT && m.type == HANDOVER_SERVING) {
		handover_given(ho);
	} else {
		log_limited(&ho->rate, LOG_WARN, "event=handover_refused reason=%s",
			    m.type == HANDOVER_HELLO ? "role" : "garbage");
		handover_end(ho, "garbage");
	}
}

static void handover_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct handover *ho = arg;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval tv = clock_tv(HANDOVER_TIMEOUT);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

	(void)what;
	if (fd == -1)
		return;
	if (ho->state != HANDOVER_IDLE) {
		log_limited(&ho->rate, LOG_WARN, "event=handover_refused reason=busy");
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    !handover_uid_allowed(cred.uid, geteuid())) {
		log_limited(&ho->rate, LOG_WARN, "event=handover_refused reason=uid uid=%ld",
			    (long)cred.uid);
		close(fd);
		return;
	}
	/* blocking, with a deadline: the sockets go out in one turn of the loop */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ho->cfd = fd;
	event_del(ho->lev); /* one takeover at a time */
	handover_wait(ho, HANDOVER_HELLO_WAIT, handover_timeout(HANDOVER_HELLO_WAIT));
}

/* A listening socket on path: a stale file is removed, a live one refused. */
static int handover_bind(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, probe;

	if (handover_addr(path, &sun, err, errlen) == -1)
		return -1;
	/* non-blocking: a daemon in its handover may have a full queue (EAGAIN), which is
	 * still a daemon that runs, not a reason to hang at start */
	probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (probe != -1 && (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
			    errno == EAGAIN || errno == EINPROGRESS)) {
		close(probe);
		snprintf(err, errlen, "handover: %s answers: a daemon runs; start with --takeover",
			 path);
		return -1;
	}
	if (probe != -1)
		close(probe);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	old = umask(0177); /* mode 0600 from the start */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(fd, 4) == -1)
		goto fail;
	return fd;
fail:
	snprintf(err, errlen, "handover: cannot listen on %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

struct handover *handover_new(struct event_base *base, const char *path, const char *role,
			      const struct handover_ops *ops, void *arg, char *err,
			      size_t errlen)
{
	struct handover *ho;
	int fd = handover_inherited;

	handover_inherited = -1;
	if (fd == -1 && (fd = handover_bind(path, err, errlen)) == -1)
		return NULL;
	ho = xcalloc(1, sizeof(*ho));
	ho->base = base;
	ho->ops = ops;
	ho->arg = arg;
	ho->role = role;
	ho->lfd = fd;
	ho->cfd = -1;
	ho->lev = event_new(base, fd, EV_READ | EV_PERSIST, handover_on_accept, ho);
	if (ho->lev == NULL || event_add(ho->lev, NULL) == -1)
		xalloc_fail("event");
	return ho;
}

void handover_free(struct handover *ho)
{
	if (handover_inherited != -1) { /* taken over, but never listened on */
		close(handover_inherited);
		handover_inherited = -1;
	}
	if (ho == NULL)
		return;
	loop_free_event(&ho->cev);
	loop_free_event(&ho->lev);
	if (ho->cfd != -1)
		close(ho->cfd);
	if (ho->lfd != -1)
		close(ho->lfd);
	free(ho);
}

void handover_pause(struct handover *ho, bool paused)
{
	if (ho->state != HANDOVER_IDLE || ho->lev == NULL)
		return;
	if (paused)
		event_del(ho->lev);
	else
		event_add(ho->lev, NULL);
}

/* ---- the new process ---- */

/* A socket received: ours to listen for the next takeover, or a listener's. */
static int handover_keep(int fd, const struct sockaddr_un *want)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(sun);
	int type = 0;
	socklen_t tl = sizeof(type);

	memset(&sun, 0, sizeof(sun));
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == 0 && sun.sun_family == AF_UNIX) {
		if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1 ||
		    type != SOCK_SEQPACKET || handover_inherited != -1 ||
		    strcmp(sun.sun_path, want->sun_path) != 0) {
			close(fd);
			return -1;
		}
		handover_inherited = fd;
		return 0;
	}
	return listener_adopt(fd);
}

int handover_take(const char *path, const char *role, int *conn, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct timeval tv = clock_tv(HANDOVER_TIMEOUT);
	struct handover_msg m;
	struct ucred cred = { .uid = (uid_t)-1 };
	socklen_t credlen = sizeof(cred);
	size_t got = 0;
	int s, fd;

	*conn = -1;
	if (handover_addr(path, &sun, err, errlen) == -1)
		return -1;
	s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s == -1)
		goto fail;
	if (connect(s, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			close(s);
			return 0;
		}
		goto fail;
	}
	/* the old daemon must be ours too: whoever answers on the path hands us listeners */
	if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == -1 ||
	    !handover_uid_allowed(cred.uid, geteuid())) {
		snprintf(err, errlen, "handover: %s is answered by uid %ld, not ours", path,
			 (long)cred.uid);
		close(s);
		return -1;
	}
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    handover_send(s, HANDOVER_HELLO, 0, role, -1) == -1)
		goto fail;
	for (;;) {
		if (handover_recv(s, &m, &fd, 0) == -1)
			goto fail;
		if (m.type == HANDOVER_END && m.count == got && fd == -1)
			break;
		if (m.type != HANDOVER_SOCKET || fd == -1 || got > LISTENER_ADOPT_MAX) {
			if (fd != -1)
				close(fd);
			errno = EPROTO;
			goto fail;
		}
		got++;
		if (handover_keep(fd, &sun) == -1)
			log_warn("event=handover_socket_refused (not a listening socket)");
	}
	*conn = s;
	return 1;
fail:
	snprintf(err, errlen, "handover: taking over from %s: %s", path,
		 errno == EAGAIN ? "no answer" : strerror(errno));
	if (s != -1)
		close(s);
	listener_adopted_close();
	if (handover_inherited != -1)
		close(handover_inherited);
	handover_inherited = -1;
	return -1;
}

int handover_send_taken(int conn)
{
	return handover_send(conn, HANDOVER_TAKEN, 0, NULL, -1);
}

int handover_send_serving(int conn)
{
	int rc = handover_send(conn, HANDOVER_SERVING, 0, NULL, -1);

	close(conn);
	return rc;
}
