/* Fuzz target for the PROXY protocol: proxy_decode on v1/v2 headers as a peer sends them,
 * and the encoders on addresses taken from the input.
 *
 * - A header that decodes is as long as its own length says (v1 ends in CR LF, v2 is 16 +
 *   its length field), any shorter part of it is a wait, bytes after it change nothing,
 *   and its addresses written again in v1 and in v2 decode to the same endpoints.
 * - Two endpoints built from the input (IPv4, IPv6 or IPv4-mapped, any mix) encode in both
 *   versions and decode back; a buffer one byte too short is refused without being overrun;
 *   an endpoint that is not IP is refused.
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line through the same checks. */
#include <netinet/in.h>
#include <sys/un.h>

#include "common.h"
#include "core/proxy.h"

/* An endpoint as 16 address bytes (IPv4 mapped) and a port, so that encodings that differ
 * only in how an IPv4 address is carried compare equal. */
struct end {
	uint8_t ip[16];
	uint16_t port;
};

static struct end end_of(const struct sockaddr_storage *ss)
{
	struct end e;

	memset(&e, 0, sizeof(e));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		e.ip[10] = e.ip[11] = 0xff;
		memcpy(e.ip + 12, &s4->sin_addr, 4);
		e.port = s4->sin_port;
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		check(ss->ss_family == AF_INET6);
		memcpy(e.ip, &s6->sin6_addr, 16);
		e.port = s6->sin6_port;
	}
	return e;
}

static void same_end(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct end x = end_of(a), y = end_of(b);

	check(memcmp(&x, &y, sizeof(x)) == 0);
}

/* Decodes from a copy of exactly len bytes, so a read past the end is caught. */
static int decode_copy(const uint8_t *data, size_t len, struct sockaddr_storage *src,
		       struct sockaddr_storage *dst)
{
	uint8_t *p = fuzz_dup(data, len, 0);
	int rc = proxy_decode(p, len, src, dst);

	free(p);
	return rc;
}

/* src and dst written in both versions, into buffers of exactly the room asked, decode to
 * the same endpoints; one byte less room is refused. */
static void encode_round_trip(const struct sockaddr_storage *src,
			      const struct sockaddr_storage *dst)
{
	struct sockaddr_storage s2, d2;
	char v1[PROXY_V1_MAX + 1];
	uint8_t v2[PROXY_V2_MAX];
	char *c;
	uint8_t *u;
	int m, k;

	m = proxy_v1_encode(v1, sizeof(v1), (const struct sockaddr *)src,
			    (const struct sockaddr *)dst);
	check(m > 0 && m <= PROXY_V1_MAX);
	check(memcmp(v1, "PROXY TCP", 9) == 0 && memcmp(v1 + m - 2, "\r\n", 2) == 0);
	check(decode_copy((const uint8_t *)v1, (size_t)m, &s2, &d2) == m);
	check(s2.ss_family == d2.ss_family);
	same_end(src, &s2);
	same_end(dst, &d2);
	/* snprintf needs room for its NUL too */
	c = malloc((size_t)m + 1);
	check(c != NULL);
	check(proxy_v1_encode(c, (size_t)m + 1, (const struct sockaddr *)src,
			      (const struct sockaddr *)dst) == m);
	check(memcmp(c, v1, (size_t)m) == 0);
	check(proxy_v1_encode(c, (size_t)m, (const struct sockaddr *)src,
			      (const struct sockaddr *)dst) == -1);
	free(c);

	m = proxy_v2_encode(v2, sizeof(v2), (const struct sockaddr *)src,
			    (const struct sockaddr *)dst);
	check(m == 16 + 12 || m == 16 + 36);
	check(decode_copy(v2, (size_t)m, &s2, &d2) == m);
	check(s2.ss_family == d2.ss_family && (s2.ss_family == AF_INET) == (m == 16 + 12));
	same_end(src, &s2);
	same_end(dst, &d2);
	u = malloc((size_t)m);
	check(u != NULL);
	check(proxy_v2_encode(u, (size_t)m, (const struct sockaddr *)src,
			      (const struct sockaddr *)dst) == m);
	check(memcmp(u, v2, (size_t)m) == 0);
	k = proxy_v2_encode(u, (size_t)m - 1, (const struct sockaddr *)src,
			    (const struct sockaddr *)dst);
	check(k == -1);
	free(u);
}

/* An endpoint from 19 input bytes: a kind (IPv4, IPv6, IPv4-mapped IPv6, or not IP at
 * all), 16 address bytes and a port. */
static void end_from(const uint8_t *p, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (p[0] % 4 == 3) {
		ss->ss_family = AF_UNIX;
	} else if (p[0] % 4 == 0) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, p + 1, 4);
		memcpy(&s4->sin_port, p + 17, 2);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, p + 1, 16);
		if (p[0] % 4 == 2) {
			memset(&s6->sin6_addr, 0, 10);
			s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
		}
		memcpy(&s6->sin6_port, p + 17, 2);
	}
}

static void decoded(const uint8_t *data, size_t size)
{
	struct sockaddr_storage src, dst, src2, dst2;
	int n;

	n = decode_copy(data, size, &src, &dst);
	check(n >= -1);
	if (n == 0) {
		/* waiting is bounded: a header never needs more than the v2 maximum */
		check(size < PROXY_V2_MAX);
		return;
	}
	if (n == -1)
		return;
	check((size_t)n <= size && n <= PROXY_V2_MAX);
	if (data[0] == 'P')
		check(n <= PROXY_V1_MAX && data[n - 2] == '\r' && data[n - 1] == '\n');
	else
		check(n >= 16 && (size_t)n == 16 + ((size_t)data[14] << 8 | data[15]));
	/* any shorter part of the header is a wait, and more bytes after it change nothing */
	check(decode_copy(data, (size_t)n - 1, &src2, &dst2) == 0);
	check(decode_copy(data, (size_t)n / 2, &src2, &dst2) == 0);
	check(decode_copy(data, (size_t)n, &src2, &dst2) == n);
	check(src2.ss_family == src.ss_family && dst2.ss_family == dst.ss_family);
	if (src.ss_family == AF_UNSPEC) {
		check(dst.ss_family == AF_UNSPEC);
		return;
	}
	check(src.ss_family == AF_INET || src.ss_family == AF_INET6);
	check(dst.ss_family == src.ss_family);
	same_end(&src, &src2);
	same_end(&dst, &dst2);
	/* what was read can be written again, in both versions, and reads back the same */
	encode_round_trip(&src, &dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decoded(data, size);
	if (size >= 38) {
		struct sockaddr_storage src, dst;

		end_from(data + size - 38, &src);
		end_from(data + size - 19, &dst);
		if (src.ss_family != AF_UNIX && dst.ss_family != AF_UNIX) {
			encode_round_trip(&src, &dst);
		} else {
			char v1[PROXY_V1_MAX + 1];
			uint8_t v2[PROXY_V2_MAX];

			check(proxy_v1_encode(v1, sizeof(v1), (const struct sockaddr *)&src,
					      (const struct sockaddr *)&dst) == -1);
			check(proxy_v2_encode(v2, sizeof(v2), (const struct sockaddr *)&src,
					      (const struct sockaddr *)&dst) == -1);
		}
	}
	return 0;
}
