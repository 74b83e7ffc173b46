/* Unit tests for core/proxy: PROXY protocol v1/v2 headers per haproxy's proxy-protocol.txt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/proxy.h"

static const uint8_t sig[12] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
				 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a };

static void make_v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
}

static void make_v6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
}

static const struct sockaddr *sa(const struct sockaddr_storage *ss)
{
	return (const struct sockaddr *)ss;
}

static size_t sa_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void assert_same_end(const struct sockaddr_storage *got, const struct sockaddr_storage *want)
{
	assert_int_equal(got->ss_family, want->ss_family);
	assert_memory_equal(got, want, sa_len(want));
}

/* Decodes exactly n bytes from a heap copy of that size, so reading past the end is caught
 * by the sanitizers. */
static int decode_exact(const void *p, size_t n, struct sockaddr_storage *src,
			struct sockaddr_storage *dst)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	assert_non_null(copy);
	if (n)
		memcpy(copy, p, n);
	rc = proxy_decode(copy, n, src, dst);
	free(copy);
	return rc;
}

/* The v2 vectors of the tests below: 1.2.3.4:1111 -> 5.6.7.8:2222, and
 * 2001:db8::1:1111 -> 2001:db8::2:2222. */
static const uint8_t v2_tcp4[28] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, /* signature */
	0x21, /* version 2, PROXY */
	0x11, /* TCP over IPv4 */
	0x00, 0x0c, /* 12 bytes follow */
	1, 2, 3, 4, /* source */
	5, 6, 7, 8, /* destination */
	0x04, 0x57, /* 1111 */
	0x08, 0xae, /* 2222 */
};

static const uint8_t v2_tcp6[52] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	0x21,
	0x21, /* TCP over IPv6 */
	0x00, 0x24, /* 36 bytes follow */
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
	0x04, 0x57,
	0x08, 0xae,
};

static const uint8_t v2_local[16] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	0x20, /* version 2, LOCAL */
	0x00, /* UNSPEC */
	0x00, 0x00,
};

/* TCP4 followed by a 7-byte TLV area (PP2_TYPE_AUTHORITY "a.b" and a NOOP). */
static const uint8_t v2_tcp4_tlv[35] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	0x21, 0x11, 0x00, 0x13, /* 12 + 7 */
	1, 2, 3, 4, 5, 6, 7, 8, 0x04, 0x57, 0x08, 0xae,
	0x02, 0x00, 0x03, 'a', '.', 'b', /* PP2_TYPE_AUTHORITY */
	0x04, /* PP2_TYPE_NOOP, cut: TLVs are not ours to parse */
};

static const char v1_tcp4[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n";
static const char v1_tcp6[] = "PROXY TCP6 2001:db8::1 2001:db8::2 1111 2222\r\n";
static const char v1_unknown[] = "PROXY UNKNOWN\r\n";
static const char v1_longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
				 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

/* Encoding */

static void test_v1_encode_tcp4(void **state)
{
	struct sockaddr_storage s, d;
	char buf[PROXY_V1_MAX + 1];

	make_v4(&s, "1.2.3.4", 1111);
	make_v4(&d, "5.6.7.8", 2222);
	assert_int_equal(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)),
			 (int)strlen(v1_tcp4));
	assert_string_equal(buf, v1_tcp4);
}

static void test_v1_encode_tcp6(void **state)
{
	struct sockaddr_storage s, d;
	char buf[PROXY_V1_MAX + 1];

	make_v6(&s, "2001:db8::1", 1111);
	make_v6(&d, "2001:db8::2", 2222);
	assert_int_equal(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)),
			 (int)strlen(v1_tcp6));
	assert_string_equal(buf, v1_tcp6);

	make_v6(&s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	make_v6(&d, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_int_equal(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)),
			 (int)strlen(v1_longest));
	assert_string_equal(buf, v1_longest);
	assert_true(strlen(v1_longest) <= PROXY_V1_MAX);
}

static void test_v1_encode_mixed_and_mapped(void **state)
{
	struct sockaddr_storage s, d;
	char buf[PROXY_V1_MAX + 1];

	/* mixed families: IPv6 with the IPv4 side mapped */
	make_v4(&s, "1.2.3.4", 1);
	make_v6(&d, "2001:db8::2", 2);
	assert_true(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)) > 0);
	assert_string_equal(buf, "PROXY TCP6 ::ffff:1.2.3.4 2001:db8::2 1 2\r\n");
	/* both mapped: plain IPv4 */
	make_v6(&s, "::ffff:1.2.3.4", 1111);
	make_v6(&d, "::ffff:5.6.7.8", 2222);
	assert_true(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)) > 0);
	assert_string_equal(buf, v1_tcp4);
	/* one mapped, one IPv4: IPv4 too */
	make_v4(&d, "5.6.7.8", 2222);
	assert_true(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)) > 0);
	assert_string_equal(buf, v1_tcp4);
}

static void test_v1_encode_errors(void **state)
{
	struct sockaddr_storage s, d;
	char buf[PROXY_V1_MAX + 1];
	size_t n = strlen(v1_tcp4);

	make_v4(&s, "1.2.3.4", 1111);
	make_v4(&d, "5.6.7.8", 2222);
	/* the line and its NUL must fit */
	assert_int_equal(proxy_v1_encode(buf, n, sa(&s), sa(&d)), -1);
	assert_int_equal(proxy_v1_encode(buf, n + 1, sa(&s), sa(&d)), (int)n);
	assert_int_equal(proxy_v1_encode(buf, 0, sa(&s), sa(&d)), -1);
	/* only IP families */
	memset(&d, 0, sizeof(d));
	d.ss_family = AF_UNIX;
	assert_int_equal(proxy_v1_encode(buf, sizeof(buf), sa(&s), sa(&d)), -1);
	assert_int_equal(proxy_v1_encode(buf, sizeof(buf), sa(&d), sa(&s)), -1);
}

static void test_v2_encode_tcp4_bytes(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t buf[PROXY_V2_MAX];

	make_v4(&s, "1.2.3.4", 1111);
	make_v4(&d, "5.6.7.8", 2222);
	assert_int_equal(proxy_v2_encode(buf, sizeof(buf), sa(&s), sa(&d)), 28);
	assert_memory_equal(buf, sig, 12);
	assert_int_equal(buf[12], 0x21);
	assert_int_equal(buf[13], 0x11);
	assert_int_equal(buf[14], 0x00);
	assert_int_equal(buf[15], 12);
	assert_memory_equal(buf, v2_tcp4, sizeof(v2_tcp4));
}

static void test_v2_encode_tcp6_bytes(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t buf[PROXY_V2_MAX];

	make_v6(&s, "2001:db8::1", 1111);
	make_v6(&d, "2001:db8::2", 2222);
	assert_int_equal(proxy_v2_encode(buf, sizeof(buf), sa(&s), sa(&d)), 52);
	assert_memory_equal(buf, sig, 12);
	assert_int_equal(buf[12], 0x21);
	assert_int_equal(buf[13], 0x21);
	assert_int_equal(buf[14], 0x00);
	assert_int_equal(buf[15], 36);
	assert_memory_equal(buf, v2_tcp6, sizeof(v2_tcp6));
}

static void test_v2_encode_mixed(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t buf[PROXY_V2_MAX];
	static const uint8_t mapped_src[16] = { 0, 0, 0, 0, 0,    0,    0, 0,
						0, 0, 0xff, 0xff, 9, 8, 7, 6 };

	make_v4(&s, "9.8.7.6", 5);
	make_v6(&d, "2001:db8::2", 6);
	assert_int_equal(proxy_v2_encode(buf, sizeof(buf), sa(&s), sa(&d)), 52);
	assert_int_equal(buf[13], 0x21);
	assert_memory_equal(buf + 16, mapped_src, 16);
	assert_memory_equal(buf + 32, v2_tcp6 + 32, 16);
	assert_int_equal(buf[48], 0);
	assert_int_equal(buf[49], 5);
	assert_int_equal(buf[50], 0);
	assert_int_equal(buf[51], 6);
}

static void test_v2_encode_errors(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t buf[PROXY_V2_MAX];

	make_v4(&s, "1.2.3.4", 1111);
	make_v4(&d, "5.6.7.8", 2222);
	assert_int_equal(proxy_v2_encode(buf, 27, sa(&s), sa(&d)), -1);
	assert_int_equal(proxy_v2_encode(buf, 28, sa(&s), sa(&d)), 28);
	make_v6(&s, "::1", 1);
	make_v6(&d, "::1", 2);
	assert_int_equal(proxy_v2_encode(buf, 51, sa(&s), sa(&d)), -1);
	assert_int_equal(proxy_v2_encode(buf, 52, sa(&s), sa(&d)), 52);
	memset(&d, 0, sizeof(d));
	d.ss_family = AF_UNIX;
	assert_int_equal(proxy_v2_encode(buf, sizeof(buf), sa(&s), sa(&d)), -1);
}

/* Decoding valid headers */

static void test_decode_v1_tcp4(void **state)
{
	struct sockaddr_storage s, d, ws, wd;
	char in[128];

	make_v4(&ws, "1.2.3.4", 1111);
	make_v4(&wd, "5.6.7.8", 2222);
	/* the payload after the header is not consumed */
	snprintf(in, sizeof(in), "%sGET / HTTP/1.1\r\n", v1_tcp4);
	assert_int_equal(decode_exact(in, strlen(in), &s, &d), (int)strlen(v1_tcp4));
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
	assert_int_equal(decode_exact(v1_tcp4, strlen(v1_tcp4), &s, &d), (int)strlen(v1_tcp4));
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
}

static void test_decode_v1_tcp6(void **state)
{
	struct sockaddr_storage s, d, ws, wd;

	make_v6(&ws, "2001:db8::1", 1111);
	make_v6(&wd, "2001:db8::2", 2222);
	assert_int_equal(decode_exact(v1_tcp6, strlen(v1_tcp6), &s, &d), (int)strlen(v1_tcp6));
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
	make_v6(&ws, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
	assert_int_equal(decode_exact(v1_longest, strlen(v1_longest), &s, &d),
			 (int)strlen(v1_longest));
	assert_same_end(&s, &ws);
	assert_same_end(&d, &ws);
}

static void test_decode_v1_ports_edges(void **state)
{
	static const char in[] = "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n";
	struct sockaddr_storage s, d, ws, wd;

	make_v4(&ws, "0.0.0.0", 0);
	make_v4(&wd, "255.255.255.255", 65535);
	assert_int_equal(decode_exact(in, strlen(in), &s, &d), (int)strlen(in));
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
}

static void test_decode_v1_unknown(void **state)
{
	static const char with_addrs[] = "PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\nrest";
	struct sockaddr_storage s, d;

	memset(&s, 0xaa, sizeof(s));
	memset(&d, 0xaa, sizeof(d));
	assert_int_equal(decode_exact(v1_unknown, strlen(v1_unknown), &s, &d), 15);
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
	assert_int_equal(decode_exact(with_addrs, strlen(with_addrs), &s, &d),
			 (int)strlen(with_addrs) - 4);
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
}

static void test_decode_v1_unknown_ignores_rest_of_line(void **state)
{
	/* "the receiver must ignore anything presented before the CRLF is found" */
	static const char in[] = "PROXY UNKNOWN what ever the sender put here is ignored\r\n";
	struct sockaddr_storage s, d;

	assert_int_equal(decode_exact(in, strlen(in), &s, &d), (int)strlen(in));
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
}

static void test_decode_v1_length_limit(void **state)
{
	char in[PROXY_V1_MAX + 16];
	struct sockaddr_storage s, d;
	size_t fill;

	/* a line of exactly PROXY_V1_MAX bytes, CRLF included, is accepted */
	strcpy(in, "PROXY UNKNOWN ");
	fill = PROXY_V1_MAX - strlen(in) - 2;
	memset(in + strlen(in), 'x', fill);
	in[PROXY_V1_MAX - 2] = '\r';
	in[PROXY_V1_MAX - 1] = '\n';
	assert_int_equal(decode_exact(in, PROXY_V1_MAX, &s, &d), PROXY_V1_MAX);
	/* one byte more and it is not a header */
	memset(in + 14, 'x', fill + 1);
	in[PROXY_V1_MAX - 1] = '\r';
	in[PROXY_V1_MAX] = '\n';
	assert_int_equal(decode_exact(in, PROXY_V1_MAX + 1, &s, &d), -1);
	/* and no line end within the bound is an error, not a wait */
	memset(in + 6, 'x', sizeof(in) - 6);
	assert_int_equal(decode_exact(in, PROXY_V1_MAX, &s, &d), -1);
	assert_int_equal(decode_exact(in, PROXY_V1_MAX - 1, &s, &d), 0);
}

static void test_decode_v2_tcp4(void **state)
{
	struct sockaddr_storage s, d, ws, wd;
	uint8_t in[64];

	make_v4(&ws, "1.2.3.4", 1111);
	make_v4(&wd, "5.6.7.8", 2222);
	assert_int_equal(decode_exact(v2_tcp4, sizeof(v2_tcp4), &s, &d), 28);
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
	memcpy(in, v2_tcp4, sizeof(v2_tcp4));
	memcpy(in + sizeof(v2_tcp4), "payload", 7);
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4) + 7, &s, &d), 28);
	assert_same_end(&s, &ws);
}

static void test_decode_v2_tcp6(void **state)
{
	struct sockaddr_storage s, d, ws, wd;

	make_v6(&ws, "2001:db8::1", 1111);
	make_v6(&wd, "2001:db8::2", 2222);
	assert_int_equal(decode_exact(v2_tcp6, sizeof(v2_tcp6), &s, &d), 52);
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
}

static void test_decode_v2_tlvs_skipped(void **state)
{
	struct sockaddr_storage s, d, ws, wd;

	make_v4(&ws, "1.2.3.4", 1111);
	make_v4(&wd, "5.6.7.8", 2222);
	assert_int_equal(decode_exact(v2_tcp4_tlv, sizeof(v2_tcp4_tlv), &s, &d), 35);
	assert_same_end(&s, &ws);
	assert_same_end(&d, &wd);
}

static void test_decode_v2_local(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t in[28];

	assert_int_equal(decode_exact(v2_local, sizeof(v2_local), &s, &d), 16);
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
	/* LOCAL with addresses: skipped, and still no addresses */
	memcpy(in, v2_tcp4, sizeof(in));
	in[12] = 0x20;
	assert_int_equal(decode_exact(in, sizeof(in), &s, &d), 28);
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
}

static void test_decode_v2_unspec_family(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t in[20];

	memcpy(in, v2_local, 16);
	in[12] = 0x21; /* PROXY, but AF_UNSPEC: no addresses to report */
	in[15] = 4;
	memset(in + 16, 0x55, 4);
	assert_int_equal(decode_exact(in, sizeof(in), &s, &d), 20);
	assert_int_equal(s.ss_family, AF_UNSPEC);
	assert_int_equal(d.ss_family, AF_UNSPEC);
}

static void test_decode_v2_size_limit(void **state)
{
	uint8_t *in = calloc(1, PROXY_V2_MAX + 1);
	struct sockaddr_storage s, d;
	size_t body = PROXY_V2_MAX - 16;

	assert_non_null(in);
	memcpy(in, v2_tcp4, sizeof(v2_tcp4));
	in[14] = (uint8_t)(body >> 8);
	in[15] = (uint8_t)body;
	/* the largest header we take, complete: accepted */
	assert_int_equal(decode_exact(in, PROXY_V2_MAX, &s, &d), PROXY_V2_MAX);
	assert_int_equal(s.ss_family, AF_INET);
	/* incomplete: wait */
	assert_int_equal(decode_exact(in, PROXY_V2_MAX - 1, &s, &d), 0);
	/* one byte larger: refused as soon as the length is known */
	body++;
	in[14] = (uint8_t)(body >> 8);
	in[15] = (uint8_t)body;
	assert_int_equal(decode_exact(in, 16, &s, &d), -1);
	assert_int_equal(decode_exact(in, PROXY_V2_MAX + 1, &s, &d), -1);
	in[14] = 0xff;
	in[15] = 0xff;
	assert_int_equal(decode_exact(in, 16, &s, &d), -1);
	free(in);
}

/* Round trips */

static void round_trip(const struct sockaddr_storage *s, const struct sockaddr_storage *d)
{
	struct sockaddr_storage gs, gd;
	char v1[PROXY_V1_MAX + 1];
	uint8_t v2[PROXY_V2_MAX];
	int n;

	n = proxy_v1_encode(v1, sizeof(v1), sa(s), sa(d));
	assert_true(n > 0 && n <= PROXY_V1_MAX);
	assert_int_equal(decode_exact(v1, (size_t)n, &gs, &gd), n);
	assert_same_end(&gs, s);
	assert_same_end(&gd, d);
	n = proxy_v2_encode(v2, sizeof(v2), sa(s), sa(d));
	assert_true(n > 0);
	assert_int_equal(decode_exact(v2, (size_t)n, &gs, &gd), n);
	assert_same_end(&gs, s);
	assert_same_end(&gd, d);
}

static void test_round_trip(void **state)
{
	static const struct {
		const char *s, *d;
		uint16_t sp, dp;
	} cases[] = {
		{ "1.2.3.4", "5.6.7.8", 1111, 2222 },
		{ "0.0.0.0", "255.255.255.255", 0, 65535 },
		{ "192.0.2.1", "192.0.2.1", 65535, 1 },
		{ "2001:db8::1", "2001:db8::2", 1111, 2222 },
		{ "::", "::1", 0, 65535 },
		{ "fe80::1:2:3:4", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 80, 443 },
		{ "::192.0.2.1", "2001:db8::", 1, 2 }, /* v4-compatible is IPv6 */
	};
	struct sockaddr_storage s, d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (strchr(cases[i].s, ':') == NULL) {
			make_v4(&s, cases[i].s, cases[i].sp);
			make_v4(&d, cases[i].d, cases[i].dp);
		} else {
			make_v6(&s, cases[i].s, cases[i].sp);
			make_v6(&d, cases[i].d, cases[i].dp);
		}
		round_trip(&s, &d);
	}
}

static void test_round_trip_mixed(void **state)
{
	struct sockaddr_storage s, d, ms, gs, gd;
	char v1[PROXY_V1_MAX + 1];
	uint8_t v2[PROXY_V2_MAX];
	int n;

	/* an IPv4 side of a mixed pair comes back as its mapped form */
	make_v4(&s, "198.51.100.7", 4000);
	make_v6(&d, "2001:db8::9", 443);
	make_v6(&ms, "::ffff:198.51.100.7", 4000);
	n = proxy_v1_encode(v1, sizeof(v1), sa(&s), sa(&d));
	assert_int_equal(decode_exact(v1, (size_t)n, &gs, &gd), n);
	assert_same_end(&gs, &ms);
	assert_same_end(&gd, &d);
	n = proxy_v2_encode(v2, sizeof(v2), sa(&s), sa(&d));
	assert_int_equal(decode_exact(v2, (size_t)n, &gs, &gd), n);
	assert_same_end(&gs, &ms);
	assert_same_end(&gd, &d);
}

/* Partial input */

static void all_prefixes_wait(const void *p, size_t n)
{
	struct sockaddr_storage s, d;

	for (size_t k = 0; k < n; k++) {
		int rc = decode_exact(p, k, &s, &d);
		if (rc != 0)
			fail_msg("prefix of %zu of %zu bytes returned %d, want 0", k, n, rc);
	}
	assert_int_equal(decode_exact(p, n, &s, &d), (int)n);
}

static void test_truncated_prefixes_wait(void **state)
{
	all_prefixes_wait(v1_tcp4, strlen(v1_tcp4));
	all_prefixes_wait(v1_tcp6, strlen(v1_tcp6));
	all_prefixes_wait(v1_unknown, strlen(v1_unknown));
	all_prefixes_wait(v1_longest, strlen(v1_longest));
	all_prefixes_wait(v2_tcp4, sizeof(v2_tcp4));
	all_prefixes_wait(v2_tcp6, sizeof(v2_tcp6));
	all_prefixes_wait(v2_local, sizeof(v2_local));
	all_prefixes_wait(v2_tcp4_tlv, sizeof(v2_tcp4_tlv));
}

/* Corrupt input */

static void test_decode_v1_corrupt(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP5 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 3333\r\n",
		"PROXY TCP4 1.2.3.256 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 ::1 ::1 1111 2222\r\n",
		"PROXY TCP6 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 -1\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 +2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 22x\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2222\r\n",
		"PROXY tcp4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		/* "exactly one space" between fields */
		"PROXY TCP4  1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY  TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222 \r\n",
		"PROXY TCP4 1.2.3.4\t5.6.7.8 1111 2222\r\n",
		"PROXY UNKNOWNX\r\n",
		"PROXY\r\n",
		"PROXY \r\n",
		"PROXY TCP4\r\n",
		"proxy TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"PROXYTCP4 1.2.3.4 5.6.7.8 1111 2222\r\n",
		"GET / HTTP/1.1\r\n",
	};
	struct sockaddr_storage s, d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = decode_exact(bad[i], strlen(bad[i]), &s, &d);
		if (rc != -1)
			fail_msg("decode of \"%.*s\" returned %d, want -1",
				 (int)strcspn(bad[i], "\r"), bad[i], rc);
	}
}

static void test_decode_v1_nul_in_line(void **state)
{
	static const char in[] = "PROXY TCP4 1.2.3.4\0005.6.7.8 1111 2222\r\n";
	struct sockaddr_storage s, d;

	assert_int_equal(decode_exact(in, sizeof(in) - 1, &s, &d), -1);
}

static void test_decode_not_proxy_fails_fast(void **state)
{
	struct sockaddr_storage s, d;

	/* a client speaking something else is refused from its first byte */
	assert_int_equal(decode_exact("G", 1, &s, &d), -1);
	assert_int_equal(decode_exact("\x16\x03\x01", 3, &s, &d), -1); /* TLS */
	assert_int_equal(decode_exact("PRX", 3, &s, &d), -1);
	assert_int_equal(decode_exact("\r\n\r\n\x01", 5, &s, &d), -1);
	/* and nothing yet is a wait */
	assert_int_equal(decode_exact("", 0, &s, &d), 0);
}

static void test_decode_v2_corrupt(void **state)
{
	struct sockaddr_storage s, d;
	uint8_t in[64];

	/* every byte of the signature matters */
	for (size_t i = 0; i < 12; i++) {
		memcpy(in, v2_tcp4, sizeof(v2_tcp4));
		in[i] ^= 0x40;
		if (decode_exact(in, sizeof(v2_tcp4), &s, &d) != -1)
			fail_msg("signature byte %zu flipped was accepted", i);
	}
	/* versions other than 2 */
	memcpy(in, v2_tcp4, sizeof(v2_tcp4));
	in[12] = 0x11;
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4), &s, &d), -1);
	in[12] = 0x31;
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4), &s, &d), -1);
	in[12] = 0x01;
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4), &s, &d), -1);
	/* the version is known from 16 bytes on: no need to wait for the body */
	assert_int_equal(decode_exact(in, 16, &s, &d), -1);
	/* commands other than LOCAL and PROXY */
	in[12] = 0x22;
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4), &s, &d), -1);
	in[12] = 0x2f;
	assert_int_equal(decode_exact(in, sizeof(v2_tcp4), &s, &d), -1);
	/* UDP, AF_UNIX and unknown families */
	static const uint8_t fams[] = { 0x12, 0x22, 0x31, 0x32, 0x10, 0x20, 0x41, 0x01, 0xff };
	for (size_t i = 0; i < sizeof(fams); i++) {
		memcpy(in, v2_tcp4, sizeof(v2_tcp4));
		in[13] = fams[i];
		if (decode_exact(in, sizeof(v2_tcp4), &s, &d) != -1)
			fail_msg("family byte 0x%02x was accepted", fams[i]);
	}
	/* body too short for its addresses */
	memcpy(in, v2_tcp4, sizeof(v2_tcp4));
	in[15] = 11;
	assert_int_equal(decode_exact(in, 27, &s, &d), -1);
	in[15] = 0;
	assert_int_equal(decode_exact(in, 16, &s, &d), -1);
	memcpy(in, v2_tcp6, sizeof(v2_tcp6));
	in[15] = 35;
	assert_int_equal(decode_exact(in, 51, &s, &d), -1);
	in[15] = 12; /* long enough for IPv4, not for IPv6 */
	assert_int_equal(decode_exact(in, 28, &s, &d), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_encode_tcp4),
		cmocka_unit_test(test_v1_encode_tcp6),
		cmocka_unit_test(test_v1_encode_mixed_and_mapped),
		cmocka_unit_test(test_v1_encode_errors),
		cmocka_unit_test(test_v2_encode_tcp4_bytes),
		cmocka_unit_test(test_v2_encode_tcp6_bytes),
		cmocka_unit_test(test_v2_encode_mixed),
		cmocka_unit_test(test_v2_encode_errors),
		cmocka_unit_test(test_decode_v1_tcp4),
		cmocka_unit_test(test_decode_v1_tcp6),
		cmocka_unit_test(test_decode_v1_ports_edges),
		cmocka_unit_test(test_decode_v1_unknown),
		cmocka_unit_test(test_decode_v1_unknown_ignores_rest_of_line),
		cmocka_unit_test(test_decode_v1_length_limit),
		cmocka_unit_test(test_decode_v2_tcp4),
		cmocka_unit_test(test_decode_v2_tcp6),
		cmocka_unit_test(test_decode_v2_tlvs_skipped),
		cmocka_unit_test(test_decode_v2_local),
		cmocka_unit_test(test_decode_v2_unspec_family),
		cmocka_unit_test(test_decode_v2_size_limit),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_round_trip_mixed),
		cmocka_unit_test(test_truncated_prefixes_wait),
		cmocka_unit_test(test_decode_v1_corrupt),
		cmocka_unit_test(test_decode_v1_nul_in_line),
		cmocka_unit_test(test_decode_not_proxy_fails_fast),
		cmocka_unit_test(test_decode_v2_corrupt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
