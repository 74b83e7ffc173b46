#include "core/filter.h"

#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <fcntl.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* The calls every daemon makes: memory, threads (the intake's committer, census and
 * delivery worker, libcurl's resolver), the event loop, sockets, reading files (configs and
 * certificates reread on SIGHUP), time and randomness. What is missing is the point: no
 * execve, no ptrace, no mount, no new namespaces, no kernel modules, no raw or packet
 * sockets (socket() is also held to the families below); and only the daemons that write
 * files may write, sync, rename or remove them (filter_writers). */
static const char *const filter_common[] = {
	/* memory */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise",
	/* threads and signals */
	"futex", "set_robust_list", "get_robust_list", "rseq",
	"set_tid_address", "exit", "exit_group", "gettid", "getpid", "getppid", "tgkill",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall",
	"sched_yield", "sched_getaffinity",
	/* the event loop */
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "poll", "ppoll", "select", "pselect6", "eventfd2", "pipe", "pipe2",
	/* sockets */
	"socketpair", "connect", "accept", "accept4", "bind", "listen", "getsockname",
	"getpeername", "setsockopt", "getsockopt", "shutdown", "sendto", "recvfrom", "sendmsg",
	"recvmsg", "sendmmsg", "recvmmsg",
	/* descriptors and files */
	"read", "write", "readv", "writev", "pread64", "preadv", "close", "stat",
	"fstat", "lstat", "newfstatat", "statx", "lseek", "fcntl", "dup", "dup2", "dup3",
	"access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getcwd",
	"statfs", "fstatfs",
	/* time, randomness, identity, limits */
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	"getrandom", "uname", "sysinfo", "getrlimit", "prlimit64", "getuid", "geteuid",
	"getgid", "getegid", "getresuid", "getresgid", "getgroups",
};

/* The intake's store (SQLite's database, WAL and shared memory) and the chat's accounts
 * file (rewritten by REGISTER: a temporary file, fsync, rename): the two daemons that write
 * files. The gateway and the agent only ever read them. */
static const char *const filter_writers[] = {
	"open", "openat", "pwrite64", "pwritev", "fsync", "fdatasync", "ftruncate", "fallocate", "unlink",
	"unlinkat", "rename", "renameat", "renameat2", "fchown", "fchmod", "umask", "flock",
};

/* What AddressSanitizer's runtime adds: at exit, LeakSanitizer stops the world with a
 * tracer thread. */
static const char *const filter_sanitizer[] = {
	"ptrace", "wait4", "waitid", "mincore", "getdents", "process_vm_readv", "sched_setaffinity", "prctl",
};

#if defined(__SANITIZE_ADDRESS__)
#define FILTER_SANITIZED true
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FILTER_SANITIZED true
#endif
#endif
#ifndef FILTER_SANITIZED
#define FILTER_SANITIZED false
#endif

/* socket(): stream and datagram sockets of these families (the resolver's UDP), and
 * netlink for routes only (getaddrinfo's AI_ADDRCONFIG). No raw or packet sockets. */
static const int filter_families[] = { AF_UNIX, AF_INET, AF_INET6 };
static const int filter_types[] = { SOCK_STREAM, SOCK_DGRAM };

/* ioctl(): what the libraries ask of descriptors, and a socket's unsent bytes (sock_unsent);
 * nothing that reaches a terminal's input (TIOCSTI) or a device. */
static const unsigned long filter_ioctls[] = { FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TCGETS,
						TIOCGWINSZ, SIOCOUTQNSD };

/* Threads, not processes in new namespaces: clone without CLONE_NEW*; clone3 (whose flags
 * sit in memory a filter cannot read) answers ENOSYS, and glibc falls back to clone. */
#define FILTER_CLONE_NS                                                                           \
	(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |               \
	 CLONE_NEWUTS | CLONE_NEWCGROUP)

static int filter_rules(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const scmp_datum_t type_mask = ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC) & 0xffffffff;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < sizeof(filter_families) / sizeof(filter_families[0]);
	     i++)
		for (size_t t = 0; rc == 0 && t < sizeof(filter_types) / sizeof(filter_types[0]);
		     t++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
					      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)filter_families[i]),
					      SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask,
						      (scmp_datum_t)filter_types[t]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK),
				      SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)NETLINK_ROUTE));
	for (size_t i = 0; rc == 0 && i < sizeof(filter_ioctls) / sizeof(filter_ioctls[0]); i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
				      SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)filter_ioctls[i]));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
				      SCMP_A0(SCMP_CMP_MASKED_EQ, FILTER_CLONE_NS, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: argument rules: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

static void filter_put(char *p, size_t *at, size_t cap, const char *s)
{
	while (*s && *at < cap)
		p[(*at)++] = *s++;
}

/* SIGSYS from the filter: one line naming the call (async-signal-safe: no stdio), then the
 * default action, which ends the process, even from a thread that blocks every signal. */
static void filter_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char line[128], num[16];
	size_t at = 0, n = 0;
	sigset_t set;
	unsigned v = si->si_syscall >= 0 ? (unsigned)si->si_syscall : 0;

	(void)uctx;
	do
		num[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0 && n < sizeof(num));
	filter_put(line, &at, sizeof(line), "level=error event=forbidden_syscall nr=");
	while (n > 0 && at < sizeof(line))
		line[at++] = num[--n];
	filter_put(line, &at, sizeof(line), " action=kill\n");
	(void)!write(STDERR_FILENO, line, at);
	sigemptyset(&set);
	sigaddset(&set, sig);
	signal(sig, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
}

static int filter_allow(scmp_filter_ctx ctx, const char *const *names, size_t n, char *err,
			size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		int rc;

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a call on this architecture */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp: cannot allow %s: %s", names[i],
				 strerror(-rc));
			return -1;
		}
	}
	return 0;
}

/* open and openat for reading only: no O_WRONLY, O_RDWR, O_CREAT or O_TRUNC. */
static int filter_read_only_opens(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	const scmp_datum_t w = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
				  SCMP_A2(SCMP_CMP_MASKED_EQ, w, 0));

	if (rc == 0 && seccomp_syscall_resolve_name("open") != __NR_SCMP_ERROR)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1,
				      SCMP_A1(SCMP_CMP_MASKED_EQ, w, 0));
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: open rule: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

int filter_install(const char *role, char *err, size_t errlen)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	int rc = -1;
	bool writer = strcmp(role, "intake") == 0 || strcmp(role, "chat") == 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = filter_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		snprintf(err, errlen, "seccomp: SIGSYS handler: %s", strerror(errno));
		return -1;
	}
	ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp: cannot start a filter");
		return -1;
	}
	if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) < 0) {
		snprintf(err, errlen, "seccomp: cannot apply the filter to every thread");
		goto out;
	}
	if (filter_allow(ctx, filter_common, sizeof(filter_common) / sizeof(filter_common[0]),
			 err, errlen) == -1)
		goto out;
	if (writer &&
	    filter_allow(ctx, filter_writers, sizeof(filter_writers) / sizeof(filter_writers[0]),
			 err, errlen) == -1)
		goto out;
	if (!writer && filter_read_only_opens(ctx, err, errlen) == -1)
		goto out;
	if (FILTER_SANITIZED &&
	    filter_allow(ctx, filter_sanitizer,
			 sizeof(filter_sanitizer) / sizeof(filter_sanitizer[0]), err, errlen) == -1)
		goto out;
	if (filter_rules(ctx, err, errlen) == -1)
		goto out;
	rc = seccomp_load(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp: cannot load the filter: %s", strerror(-rc));
		rc = -1;
	}
out:
	seccomp_release(ctx);
	return rc;
}

#ifdef NETWALL_TEST_HOOKS
void filter_probe(const char *what)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };

	if (strcmp(what, "write") == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd != -1)
			close(fd);
		return;
	}
	execve("/bin/true", argv, envp);
}
#endif
