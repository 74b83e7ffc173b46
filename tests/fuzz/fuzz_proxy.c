/* Fuzz target for proxy_decode: PROXY v1/v2 headers as a peer sends them.
 * Built by `make fuzz`; with -DFUZZ_STANDALONE it is a plain program that runs
 * the files named on its command line through the same checks. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

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

/* Decodes from a copy of exactly len bytes, so a read past the end is caught. */
static int decode_copy(const uint8_t *data, size_t len, struct sockaddr_storage *src,
		       struct sockaddr_storage *dst)
{
	uint8_t *p = malloc(len ? len : 1);
	int rc;

	check(p != NULL);
	if (len)
		memcpy(p, data, len);
	rc = proxy_decode(p, len, src, dst);
	free(p);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage src, dst, src2, dst2;
	struct end a, b;
	uint8_t v2[PROXY_V2_MAX];
	char v1[PROXY_V1_MAX + 1];
	int n, m;

	n = decode_copy(data, size, &src, &dst);
	check(n >= -1);
	if (n == 0) {
		/* waiting is bounded: a header never needs more than the v2 maximum */
		check(size < PROXY_V2_MAX);
		return 0;
	}
	if (n == -1)
		return 0;
	check((size_t)n <= size && n <= PROXY_V2_MAX);
	/* any shorter part of the header is a wait, and more bytes after it change nothing */
	check(decode_copy(data, (size_t)n - 1, &src2, &dst2) == 0);
	check(decode_copy(data, (size_t)n / 2, &src2, &dst2) == 0);
	check(decode_copy(data, (size_t)n, &src2, &dst2) == n);
	check(src2.ss_family == src.ss_family && dst2.ss_family == dst.ss_family);
	if (src.ss_family == AF_UNSPEC) {
		check(dst.ss_family == AF_UNSPEC);
		return 0;
	}
	check(src.ss_family == AF_INET || src.ss_family == AF_INET6);
	check(dst.ss_family == src.ss_family);
	/* what was read can be written again, in both versions, and reads back the same */
	m = proxy_v1_encode(v1, sizeof(v1), (struct sockaddr *)&src, (struct sockaddr *)&dst);
	check(m > 0 && m <= PROXY_V1_MAX);
	check(decode_copy((const uint8_t *)v1, (size_t)m, &src2, &dst2) == m);
	a = end_of(&src);
	b = end_of(&src2);
	check(memcmp(&a, &b, sizeof(a)) == 0);
	a = end_of(&dst);
	b = end_of(&dst2);
	check(memcmp(&a, &b, sizeof(a)) == 0);
	m = proxy_v2_encode(v2, sizeof(v2), (struct sockaddr *)&src, (struct sockaddr *)&dst);
	check(m > 0);
	check(decode_copy(v2, (size_t)m, &src2, &dst2) == m);
	a = end_of(&src);
	b = end_of(&src2);
	check(memcmp(&a, &b, sizeof(a)) == 0);
	a = end_of(&dst);
	b = end_of(&dst2);
	check(memcmp(&a, &b, sizeof(a)) == 0);
	return 0;
}

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif
