/* Error text for a caller's buffer: the convention of every function that takes
 * (char *err, size_t errlen) and fills it with one line when it fails. */
#ifndef NETWALL_ERR_H
#define NETWALL_ERR_H

#include <stddef.h>

/* snprintf into err, when err is not NULL and errlen not 0. */
void err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
