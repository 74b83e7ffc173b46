/* The system call filter (seccomp, through libseccomp): once installed, every thread of the
 * daemon may make only the calls listed in filter.c; any other call logs its number and kills
 * the process with SIGSYS. */
#ifndef NETWALL_FILTER_H
#define NETWALL_FILTER_H

#include <stddef.h>

/* Installs the filter for role ("gateway", "agent", "intake", "chat") on every thread. Returns
 * 0, or -1 with err filled. */
int filter_install(const char *role, char *err, size_t errlen);

/* Makes a call no role allows (execve of /bin/true): for the test that the filter kills. */
void filter_probe(void);

#endif
