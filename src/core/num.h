/* The one strict number parser: whole string, base 10, range checked. */
#ifndef NETWALL_NUM_H
#define NETWALL_NUM_H

#include <stdint.h>

/* Parses s as an unsigned decimal in [min, max]. Returns 0, or -1 on anything else
 * (empty, sign, trailing bytes, overflow, out of range). */
int num_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses a non-negative decimal number of seconds such as "2" or "0.25" in [min, max]. */
int num_seconds(const char *s, double min, double max, double *out);
/* The value of hex digit c (either case), or -1. */
int num_hexdigit(int c);

#endif
