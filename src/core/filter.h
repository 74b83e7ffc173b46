/* The system call filter (seccomp, through libseccomp): once installed, every thread of the
 * daemon may make only the calls listed in filter.c; any other call logs its number and kills
 * the process with SIGSYS. */
#ifndef NETWALL_FILTER_H
#define NETWALL_FILTER_H

#include <stddef.h>

/* Installs the filter for role ("gateway", "agent", "intake", "chat") on every thread. Returns
 * 0, or -1 with err filled. */
int filter_install(const char *role, char *err, size_t errlen);

/* For the test that the filter kills: what "exec" runs execve of /bin/true, which no role
 * may; "write" opens /dev/null for writing, which only the intake and the chat may. */
#ifdef NETWALL_TEST_HOOKS
void filter_probe(const char *what);
#endif

#endif
