#include "core/addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/num.h"

int addr_split(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *hend;
	uint64_t p;

	if (s[0] == '[') {
		hend = strchr(s, ']');
		if (hend == NULL || hend[1] != ':')
			return -1;
		colon = hend + 1;
		s++;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1; /* bare IPv6 needs brackets */
		hend = colon;
	}
	if (hend == s || (size_t)(hend - s) >= hostlen)
		return -1;
	if (num_u64(colon + 1, 1, 65535, &p) == -1)
		return -1;
	memcpy(host, s, (size_t)(hend - s));
	host[hend - s] = '\0';
	*port = (uint16_t)p;
	return 0;
}

/* Resolves s ("HOST:PORT") into at most max addresses, in the resolver's order and without
 * repeats. Returns how many there are (more than max when max were too few), or -1 with
 * err filled. */
int addr_resolve(const char *s, struct addr *out, size_t max, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char host[256];
	uint16_t port;
	size_t n = 0;
	int rc;

	if (addr_split(s, host, sizeof(host), &port) == -1) {
		snprintf(err, errlen, "bad address '%s' (want HOST:PORT or [IPV6]:PORT)", s);
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc == EAI_NONAME) {
		hints.ai_flags = AI_ADDRCONFIG;
		rc = getaddrinfo(host, NULL, &hints, &res);
	}
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
		return -1;
	}
	for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		struct addr x, *a = n < max ? &out[n] : &x;
		bool seen = false;
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(a->ss))
			continue;
		memset(a, 0, sizeof(*a));
		memcpy(&a->ss, ai->ai_addr, ai->ai_addrlen);
		a->len = ai->ai_addrlen;
		if (a->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
		for (size_t k = 0; k < n && k < max && !seen; k++)
			seen = addr_equal(&out[k], a);
		if (!seen)
			n++;
	}
	freeaddrinfo(res);
	if (n == 0) {
		snprintf(err, errlen, "cannot resolve '%s': no IPv4 or IPv6 address", host);
		return -1;
	}
	return (int)n;
}

int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
{
	return addr_resolve(s, out, 1, err, errlen) == -1 ? -1 : 0;
}

int addr_parse_numeric(const char *s, struct addr *out)
{
	char host[256];
	uint16_t port;

	if (addr_split(s, host, sizeof(host), &port) == -1)
		return -1;
	memset(out, 0, sizeof(*out));
	if (strchr(host, ':') == NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&out->ss;
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return -1;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		out->len = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->ss;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return -1;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		out->len = sizeof(*s6);
	}
	return 0;
}

/* If sa is IPv4-mapped IPv6, returns its IPv4 part; else NULL. */
static const uint8_t *addr_mapped_v4(const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return &s6->sin6_addr.s6_addr[12];
	return NULL;
}

void addr_format_host(const struct sockaddr *sa, char *buf, size_t len)
{
	const uint8_t *v4 = addr_mapped_v4(sa);
	const char *s = buf;

	if (sa->sa_family == AF_INET)
		s = inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
			      (socklen_t)len);
	else if (v4 != NULL)
		s = inet_ntop(AF_INET, v4, buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		s = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
			      (socklen_t)len);
	else if (sa->sa_family == AF_UNIX)
		snprintf(buf, len, "unix");
	else
		snprintf(buf, len, "?");
	if (s == NULL && len > 0)
		buf[0] = '\0'; /* inet_ntop leaves buf untouched when it does not fit */
}

uint16_t addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

void addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	addr_format_host(sa, host, sizeof(host));
	if (sa->sa_family == AF_INET6 && addr_mapped_v4(sa) == NULL)
		snprintf(buf, len, "[%s]:%u", host, addr_port(sa));
	else if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		snprintf(buf, len, "%s:%u", host, addr_port(sa));
	else
		snprintf(buf, len, "%s", host);
}

int addr_cmp(const void *pa, const void *pb)
{
	const struct sockaddr_storage *a = &((const struct addr *)pa)->ss;
	const struct sockaddr_storage *b = &((const struct addr *)pb)->ss;
	const void *xa, *xb;
	size_t n;
	int c;

	if (a->ss_family != b->ss_family)
		return a->ss_family < b->ss_family ? -1 : 1;
	if (a->ss_family == AF_INET) {
		xa = &((const struct sockaddr_in *)a)->sin_addr;
		xb = &((const struct sockaddr_in *)b)->sin_addr;
		n = 4;
	} else if (a->ss_family == AF_INET6) {
		xa = &((const struct sockaddr_in6 *)a)->sin6_addr;
		xb = &((const struct sockaddr_in6 *)b)->sin6_addr;
		n = 16;
	} else {
		return 0;
	}
	if ((c = memcmp(xa, xb, n)) != 0)
		return c;
	return (int)addr_port((const struct sockaddr *)a) - (int)addr_port((const struct sockaddr *)b);
}

bool addr_equal(const struct addr *a, const struct addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static bool addr_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	return rest == 0 || ((a[full] ^ b[full]) & (uint8_t)(0xffu << (8 - rest))) == 0;
}

bool addr_same_net(const struct sockaddr *a, const struct sockaddr *b, unsigned v4_bits,
		   unsigned v6_bits)
{
	const uint8_t *a4 = addr_mapped_v4(a), *b4 = addr_mapped_v4(b);

	if (a->sa_family == AF_INET)
		a4 = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
	if (b->sa_family == AF_INET)
		b4 = (const uint8_t *)&((const struct sockaddr_in *)b)->sin_addr;
	if (a4 != NULL || b4 != NULL)
		return a4 != NULL && b4 != NULL && addr_prefix_equal(a4, b4, v4_bits > 32 ? 32 : v4_bits);
	if (a->sa_family != AF_INET6 || b->sa_family != AF_INET6)
		return false;
	return addr_prefix_equal(((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr,
				 ((const struct sockaddr_in6 *)b)->sin6_addr.s6_addr,
				 v6_bits > 128 ? 128 : v6_bits);
}

int addr_cidr_parse(const char *s, struct addr_cidr *out)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char host[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t hlen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned maxbits;
	uint64_t prefix;

	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, out->net) == 1) {
		out->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, host, out->net) == 1) {
		out->family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}
	prefix = maxbits;
	if (slash != NULL && num_u64(slash + 1, 0, maxbits, &prefix) == -1)
		return -1;
	out->prefix = (unsigned)prefix;
	for (unsigned bit = out->prefix; bit < maxbits; bit++) {
		if (out->net[bit / 8] & (0x80u >> (bit % 8)))
			return -1; /* host bits set: almost always a typo */
	}
	/* "::ffff:10.0.0.0/104" names IPv4 peers, and those match as IPv4 (see below) */
	if (out->family == AF_INET6 && out->prefix >= 96 && memcmp(out->net, mapped, 12) == 0) {
		memmove(out->net, out->net + 12, 4);
		memset(out->net + 4, 0, 12);
		out->family = AF_INET;
		out->prefix -= 96;
	}
	return 0;
}

bool addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	unsigned full, rest;

	if (c->family == AF_INET) {
		a = addr_mapped_v4(sa);
		if (a == NULL && sa->sa_family == AF_INET)
			a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	} else {
		a = sa->sa_family == AF_INET6 && addr_mapped_v4(sa) == NULL
			    ? ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr
			    : NULL;
	}
	if (a == NULL)
		return false;
	full = c->prefix / 8;
	rest = c->prefix % 8;
	if (memcmp(a, c->net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ c->net[full]) & (uint8_t)(0xffu << (8 - rest))) == 0;
}
