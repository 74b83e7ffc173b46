/* PROXY protocol v1 (text) and v2 (binary) headers, as haproxy's proxy-protocol.txt defines
 * them: written by the agent towards targets, read by the intake behind the wall. */
#ifndef NETWALL_PROXY_H
#define NETWALL_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107 /* the spec's bound for a v1 line, CRLF included */
#define PROXY_V2_MAX 536 /* header we accept: 16 + addresses + TLVs, the spec's suggested bound */

/* Writes a v1 or v2 header for a TCP connection from src to dst into buf.
 * Mixed families are written as IPv6 with the IPv4 side mapped.
 * Returns the header length, or -1 if buf is too small or a family is not IP. */
int proxy_v1_encode(char *buf, size_t len, const struct sockaddr *src, const struct sockaddr *dst);
int proxy_v2_encode(uint8_t *buf, size_t len, const struct sockaddr *src,
		    const struct sockaddr *dst);

/* Reads a v1 or v2 header at the start of buf. Returns the number of bytes it used (the
 * payload starts there), 0 if more bytes are needed, -1 if the bytes are not a valid header.
 * src and dst are filled for PROXY TCP4/TCP6; for LOCAL or UNKNOWN their family is AF_UNSPEC. */
int proxy_decode(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
		 struct sockaddr_storage *dst);

#endif
