#include "core/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/addr.h"
#include "core/num.h"

static const uint8_t proxy_sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

/* Normalised view of one endpoint: 4 or 16 address bytes and a port (network order). */
struct proxy_end {
	int family;
	uint8_t ip[16];
	uint16_t port;
};

static int proxy_end_get(const struct sockaddr *sa, struct proxy_end *e)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		e->family = AF_INET;
		memcpy(e->ip, &s4->sin_addr, 4);
		e->port = s4->sin_port;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			e->family = AF_INET;
			memcpy(e->ip, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			e->family = AF_INET6;
			memcpy(e->ip, &s6->sin6_addr, 16);
		}
		e->port = s6->sin6_port;
		return 0;
	}
	return -1;
}

static void proxy_end_to_v6(struct proxy_end *e)
{
	if (e->family == AF_INET6)
		return;
	memmove(e->ip + 12, e->ip, 4);
	memset(e->ip, 0, 10);
	e->ip[10] = e->ip[11] = 0xff;
	e->family = AF_INET6;
}

static int proxy_ends(const struct sockaddr *src, const struct sockaddr *dst, struct proxy_end *s,
		      struct proxy_end *d)
{
	if (proxy_end_get(src, s) == -1 || proxy_end_get(dst, d) == -1)
		return -1;
	if (s->family != d->family) {
		proxy_end_to_v6(s);
		proxy_end_to_v6(d);
	}
	return 0;
}

int proxy_v1_encode(char *buf, size_t len, const struct sockaddr *src, const struct sockaddr *dst)
{
	char sh[INET6_ADDRSTRLEN], dh[INET6_ADDRSTRLEN];
	struct proxy_end s, d;
	int n;

	if (proxy_ends(src, dst, &s, &d) == -1)
		return -1;
	inet_ntop(s.family, s.ip, sh, sizeof(sh));
	inet_ntop(d.family, d.ip, dh, sizeof(dh));
	n = snprintf(buf, len, "PROXY %s %s %s %u %u\r\n", s.family == AF_INET ? "TCP4" : "TCP6", sh,
		     dh, ntohs(s.port), ntohs(d.port));
	if (n < 0 || (size_t)n >= len)
		return -1;
	return n;
}

int proxy_v2_encode(uint8_t *buf, size_t len, const struct sockaddr *src,
		    const struct sockaddr *dst)
{
	struct proxy_end s, d;
	size_t alen, total;
	uint8_t *p;

	if (proxy_ends(src, dst, &s, &d) == -1)
		return -1;
	alen = s.family == AF_INET ? 4 : 16;
	total = 16 + 2 * alen + 4;
	if (len < total)
		return -1;
	memcpy(buf, proxy_sig, sizeof(proxy_sig));
	buf[12] = 0x21; /* version 2, command PROXY */
	buf[13] = s.family == AF_INET ? 0x11 : 0x21; /* TCP over IPv4 / IPv6 */
	buf[14] = (uint8_t)((total - 16) >> 8);
	buf[15] = (uint8_t)(total - 16);
	p = buf + 16;
	memcpy(p, s.ip, alen);
	memcpy(p + alen, d.ip, alen);
	memcpy(p + 2 * alen, &s.port, 2);
	memcpy(p + 2 * alen + 2, &d.port, 2);
	return (int)total;
}

static void proxy_fill(struct sockaddr_storage *ss, int family, const uint8_t *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ip, 4);
		s4->sin_port = port;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, ip, 16);
		s6->sin6_port = port;
	}
}

static int proxy_decode_v2(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
			   struct sockaddr_storage *dst)
{
	size_t body, alen;
	uint16_t sp, dp;

	if (len < 16)
		return 0;
	if ((buf[12] & 0xf0) != 0x20)
		return -1; /* version */
	body = ((size_t)buf[14] << 8) | buf[15];
	if (16 + body > PROXY_V2_MAX)
		return -1;
	if (len < 16 + body)
		return 0;
	switch (buf[12] & 0x0f) {
	case 0x0: /* LOCAL: health checks from the proxy itself */
		return (int)(16 + body);
	case 0x1:
		break;
	default:
		return -1;
	}
	switch (buf[13]) {
	case 0x11:
		alen = 4;
		break;
	case 0x21:
		alen = 16;
		break;
	case 0x00: /* UNSPEC */
		return (int)(16 + body);
	default:
		return -1; /* UDP and AF_UNIX are not ours to carry */
	}
	if (body < 2 * alen + 4)
		return -1;
	memcpy(&sp, buf + 16 + 2 * alen, 2);
	memcpy(&dp, buf + 16 + 2 * alen + 2, 2);
	proxy_fill(src, alen == 4 ? AF_INET : AF_INET6, buf + 16, sp);
	proxy_fill(dst, alen == 4 ? AF_INET : AF_INET6, buf + 16 + alen, dp);
	return (int)(16 + body);
}

static int proxy_decode_v1(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
			   struct sockaddr_storage *dst)
{
	char line[PROXY_V1_MAX + 1], *tok[6], *next;
	const uint8_t *crlf = NULL;
	uint8_t sip[16], dip[16];
	uint64_t sp, dp;
	int family, n = 0;

	for (size_t i = 0; i + 1 < len && i + 1 < PROXY_V1_MAX; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n') {
			crlf = buf + i;
			break;
		}
	}
	if (crlf == NULL)
		return len >= PROXY_V1_MAX ? -1 : 0;
	memcpy(line, buf, (size_t)(crlf - buf));
	line[crlf - buf] = '\0';
	/* UNKNOWN: "the receiver must ignore anything presented before the CRLF is found" */
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == ' ' || line[13] == '\0'))
		return (int)(crlf - buf + 2);
	/* six fields, separated by exactly one space each */
	for (char *t = line; t != NULL; t = next) {
		next = strchr(t, ' ');
		if (next != NULL)
			*next++ = '\0';
		if (n == 6 || *t == '\0')
			return -1;
		tok[n++] = t;
	}
	if (n != 6)
		return -1;
	if (strcmp(tok[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(tok[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return -1;
	if (inet_pton(family, tok[2], sip) != 1 || inet_pton(family, tok[3], dip) != 1 ||
	    num_u64(tok[4], 0, 65535, &sp) == -1 || num_u64(tok[5], 0, 65535, &dp) == -1)
		return -1;
	proxy_fill(src, family, sip, htons((uint16_t)sp));
	proxy_fill(dst, family, dip, htons((uint16_t)dp));
	return (int)(crlf - buf + 2);
}

int proxy_decode(const uint8_t *buf, size_t len, struct sockaddr_storage *src,
		 struct sockaddr_storage *dst)
{
	size_t cmp = len < sizeof(proxy_sig) ? len : sizeof(proxy_sig);

	src->ss_family = AF_UNSPEC;
	dst->ss_family = AF_UNSPEC;
	if (memcmp(buf, proxy_sig, cmp) == 0)
		return len < sizeof(proxy_sig) ? 0 : proxy_decode_v2(buf, len, src, dst);
	cmp = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", cmp) == 0)
		return len < 6 ? 0 : proxy_decode_v1(buf, len, src, dst);
	return -1;
}
