/* Unit tests for core/handover: the new process taking sockets from an old one that may
 * send anything (a wrong count, a socket that does not listen, extra descriptors, a short
 * message), and the uid check. The old process is played by a thread of the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/handover.h"
#include "core/listener.h"

/* The message as core/handover.c lays it out. */
struct msg {
	char magic[8];
	uint32_t type;
	uint32_t count;
	char role[16];
};

enum { HELLO = 1, SOCKET = 2, END = 3 };

enum script {
	GOOD = 0,    /* one listening socket, END 1 */
	BAD_COUNT,   /* one socket, END 2 */
	NOT_LISTENING, /* a connected socket, END 1 */
	THREE_FDS,   /* three listening sockets in one message, END 1 */
	SHORT,       /* 5 bytes */
};

struct old {
	int lfd;
	enum script script;
	char role[16];
};

static int tcp_listener(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

static void send_msg(int s, uint32_t type, uint32_t count, const int *fds, int nfds)
{
	struct msg m;
	struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&m, 0, sizeof(m));
	memcpy(m.magic, "netwall1", 8);
	m.type = type;
	m.count = count;
	if (nfds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	sendmsg(s, &mh, MSG_NOSIGNAL);
}

static void *old_process(void *arg)
{
	struct old *o = arg;
	struct msg hello;
	int s = accept(o->lfd, NULL, NULL), fds[3], pair[2];

	if (s == -1 || recv(s, &hello, sizeof(hello), 0) != (ssize_t)sizeof(hello))
		return NULL;
	memcpy(o->role, hello.role, sizeof(o->role));
	switch (o->script) {
	case GOOD:
	case BAD_COUNT:
		fds[0] = tcp_listener();
		send_msg(s, SOCKET, 0, fds, 1);
		close(fds[0]);
		send_msg(s, END, o->script == GOOD ? 1 : 2, NULL, 0);
		break;
	case NOT_LISTENING:
		socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
		send_msg(s, SOCKET, 0, pair, 1);
		close(pair[0]);
		close(pair[1]);
		send_msg(s, END, 1, NULL, 0);
		break;
	case THREE_FDS:
		for (int i = 0; i < 3; i++)
			fds[i] = tcp_listener();
		send_msg(s, SOCKET, 0, fds, 3);
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		send_msg(s, END, 1, NULL, 0);
		break;
	case SHORT:
		send(s, "short", 5, MSG_NOSIGNAL);
		break;
	}
	/* hold the connection until the new process has read everything */
	recv(s, &hello, sizeof(hello), 0);
	close(s);
	return NULL;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* Runs a takeover against a scripted old process; returns handover_take's result and
 * the sockets it adopted (then closed). */
static int take(enum script script, size_t *adopted)
{
	char path[] = "/tmp/netwall-unit-handover-XXXXXX";
	char sock[sizeof(path) + 8], err[256];
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct old o = { .script = script };
	pthread_t th;
	int conn, rc;

	assert_non_null(mkdtemp(path));
	snprintf(sock, sizeof(sock), "%s/s", path);
	memcpy(sun.sun_path, sock, strlen(sock));
	o.lfd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_int_equal(bind(o.lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(o.lfd, 1), 0);
	assert_int_equal(pthread_create(&th, NULL, old_process, &o), 0);
	rc = handover_take(sock, "gateway", &conn, err, sizeof(err));
	if (rc == 1)
		close(conn);
	pthread_join(th, NULL);
	assert_string_equal(o.role, "gateway");
	*adopted = listener_adopted_close();
	close(o.lfd);
	unlink(sock);
	rmdir(path);
	return rc;
}

static void test_takes_a_listening_socket(void **state)
{
	size_t n;
	int before = open_fds();

	(void)state;
	assert_int_equal(take(GOOD, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(open_fds(), before);
}

static void test_a_wrong_count_fails_and_keeps_nothing(void **state)
{
	size_t n;
	int before = open_fds();

	(void)state;
	assert_int_equal(take(BAD_COUNT, &n), -1);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
}

static void test_a_socket_that_does_not_listen_is_closed(void **state)
{
	size_t n;
	int before = open_fds();

	(void)state;
	assert_int_equal(take(NOT_LISTENING, &n), 1);
	assert_int_equal(n, 0);
	assert_int_equal(open_fds(), before);
}

static void test_extra_descriptors_in_a_message_are_closed(void **state)
{
	size_t n;
	int before = open_fds();

	(void)state;
	assert_int_equal(take(THREE_FDS, &n), 1);
	assert_int_equal(n, 1);
	assert_int_equal(open_fds(), before);
}

static void test_a_short_message_fails(void **state)
{
	size_t n;

	(void)state;
	assert_int_equal(take(SHORT, &n), -1);
	assert_int_equal(n, 0);
}

static void test_nobody_there_is_a_fresh_start_and_a_long_path_an_error(void **state)
{
	char err[256], longpath[200];
	int conn;

	(void)state;
	assert_int_equal(handover_take("/tmp/netwall-unit-handover-none/s", "gateway", &conn, err,
				       sizeof(err)),
			 0);
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(handover_take(longpath, "gateway", &conn, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "path"));
}

static void test_uid_allowed(void **state)
{
	(void)state;
	assert_true(handover_uid_allowed(1000, 1000));
	assert_true(handover_uid_allowed(0, 1000));
	assert_false(handover_uid_allowed(1001, 1000));
	assert_false(handover_uid_allowed(65534, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_takes_a_listening_socket),
		cmocka_unit_test(test_a_wrong_count_fails_and_keeps_nothing),
		cmocka_unit_test(test_a_socket_that_does_not_listen_is_closed),
		cmocka_unit_test(test_extra_descriptors_in_a_message_are_closed),
		cmocka_unit_test(test_a_short_message_fails),
		cmocka_unit_test(test_nobody_there_is_a_fresh_start_and_a_long_path_an_error),
		cmocka_unit_test(test_uid_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
