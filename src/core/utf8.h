/* UTF-8 as the strict decoders (PostgreSQL, jansson, IRC clients) see it. */
#ifndef NETWALL_UTF8_H
#define NETWALL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed UTF-8 sequence at p, at most n bytes (n >= 1), or 0
 * if it is not one: overlong forms, surrogates, code points above U+10FFFF, bytes
 * 0xC0, 0xC1 and 0xF5..0xFF, and sequences cut by n are not. Its code point goes to *cp
 * when cp is not NULL. */
size_t utf8_seq(const unsigned char *p, size_t n, uint32_t *cp);

/* Is all of p[0..n) well-formed UTF-8? */
bool utf8_valid(const void *p, size_t n);

#endif
