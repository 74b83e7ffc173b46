/* Unit tests for core/addr: HOST:PORT parsing and printing, CIDR parsing and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "core/addr.h"

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

/* addr_split */

static void test_split_ipv4(void **state)
{
	char host[256];
	uint16_t port = 0;

	assert_int_equal(addr_split("1.2.3.4:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "1.2.3.4");
	assert_int_equal(port, 80);
}

static void test_split_ipv6_brackets(void **state)
{
	char host[256];
	uint16_t port = 0;

	assert_int_equal(addr_split("[2001:db8::1]:443", host, sizeof(host), &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 443);
	assert_int_equal(addr_split("[::]:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "::");
	assert_int_equal(port, 1);
}

static void test_split_name_and_port_range(void **state)
{
	char host[256];
	uint16_t port = 0;

	assert_int_equal(addr_split("example.org:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "example.org");
	assert_int_equal(port, 65535);
	assert_int_equal(addr_split("h:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "h");
	assert_int_equal(port, 1);
}

static void test_split_rejects(void **state)
{
	static const char *const bad[] = {
		"1.2.3.4",         /* no port */
		"1.2.3.4:",        /* empty port */
		":80",             /* empty host */
		"1.2.3.4:0",       /* port 0 */
		"1.2.3.4:65536",   /* port too large */
		"1.2.3.4:-1",      /* sign */
		"1.2.3.4:+80",     /* sign */
		"1.2.3.4: 80",     /* space */
		"1.2.3.4:80 ",     /* trailing space */
		"1.2.3.4:80x",     /* trailing junk */
		"1.2.3.4:0x50",    /* hex */
		"::1:80",          /* bare IPv6 needs brackets */
		"[::1]",           /* bracketed, no port */
		"[::1]80",         /* no colon after bracket */
		"[::1:80",         /* unclosed bracket */
		"[]:80",           /* empty bracketed host */
		"",                /* nothing */
	};
	char host[256];
	uint16_t port;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_split(bad[i], host, sizeof(host), &port) != -1)
			fail_msg("addr_split accepted '%s'", bad[i]);
	}
}

static void test_split_host_buffer_bound(void **state)
{
	char host[4];
	uint16_t port = 0;

	/* "abc" and its NUL fit exactly in 4 bytes; "abcd" does not */
	assert_int_equal(addr_split("abc:80", host, sizeof(host), &port), 0);
	assert_string_equal(host, "abc");
	assert_int_equal(addr_split("abcd:80", host, sizeof(host), &port), -1);
	assert_int_equal(addr_split("[abcd]:80", host, sizeof(host), &port), -1);
}

/* addr_parse */

static void test_parse_ipv4(void **state)
{
	struct addr a;
	char err[256] = "";
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a.ss;
	uint8_t want[4] = { 127, 0, 0, 1 };

	assert_int_equal(addr_parse("127.0.0.1:8080", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET);
	assert_int_equal(a.len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(s4->sin_port), 8080);
	assert_memory_equal(&s4->sin_addr, want, 4);
	assert_int_equal(addr_port(sa(&a.ss)), 8080);
}

static void test_parse_ipv6(void **state)
{
	struct addr a;
	char err[256] = "";
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a.ss;
	struct in6_addr want;

	assert_int_equal(addr_parse("[2001:db8::1]:443", &a, err, sizeof(err)), 0);
	assert_int_equal(a.ss.ss_family, AF_INET6);
	assert_int_equal(a.len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(s6->sin6_port), 443);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &want), 1);
	assert_memory_equal(&s6->sin6_addr, &want, sizeof(want));
}

static void test_parse_bad_syntax_fills_err(void **state)
{
	struct addr a;
	char err[256] = "";

	assert_int_equal(addr_parse("1.2.3.4", &a, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'1.2.3.4'"));
	err[0] = '\0';
	assert_int_equal(addr_parse("::1:80", &a, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
}

static void test_parse_format_round_trip(void **state)
{
	static const char *const in[] = { "1.2.3.4:80", "0.0.0.0:7443", "[2001:db8::1]:443",
					  "[::]:7443", "[::1]:1", "255.255.255.255:65535" };
	struct addr a;
	char err[256], out[ADDR_STRLEN];

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		assert_int_equal(addr_parse(in[i], &a, err, sizeof(err)), 0);
		addr_format(sa(&a.ss), out, sizeof(out));
		assert_string_equal(out, in[i]);
	}
}

/* addr_resolve: a numeric address is one address with its port; a name that does not
 * resolve fills err. (A name with two addresses: test_gateways.py, with its own hosts.) */
static void test_resolve(void **state)
{
	struct addr a[4];
	char err[256] = "";

	assert_int_equal(addr_resolve("127.0.0.1:7443", a, 4, err, sizeof(err)), 1);
	assert_int_equal(addr_port(sa(&a[0].ss)), 7443);
	assert_int_equal(addr_resolve("[::1]:1", a, 4, err, sizeof(err)), 1);
	assert_int_equal(a[0].ss.ss_family, AF_INET6);
	assert_int_equal(addr_resolve("no-such-host.invalid:80", a, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-host.invalid"));
	assert_int_equal(addr_resolve("nonsense", a, 4, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'nonsense'"));
}

static void test_parse_numeric(void **state)
{
	struct addr a, b;
	char err[256];

	assert_int_equal(addr_parse_numeric("192.0.2.1:80", &a), 0);
	assert_int_equal(addr_parse("192.0.2.1:80", &b, err, sizeof(err)), 0);
	assert_true(addr_equal(&a, &b));
	assert_int_equal(addr_parse_numeric("[2001:db8::5]:65535", &a), 0);
	assert_int_equal(addr_parse("[2001:db8::5]:65535", &b, err, sizeof(err)), 0);
	assert_true(addr_equal(&a, &b));
	/* names are never resolved for peer-supplied text */
	assert_int_equal(addr_parse_numeric("localhost:80", &a), -1);
	assert_int_equal(addr_parse_numeric("example.org:80", &a), -1);
	assert_int_equal(addr_parse_numeric("192.0.2.256:80", &a), -1);
	assert_int_equal(addr_parse_numeric("[2001:db8::g]:80", &a), -1);
	assert_int_equal(addr_parse_numeric("192.0.2.1", &a), -1);
	assert_int_equal(addr_parse_numeric("192.0.2.1:0", &a), -1);
}

static void test_equal(void **state)
{
	struct addr a, b, c, d;
	char err[256];

	assert_int_equal(addr_parse("10.0.0.1:80", &a, err, sizeof(err)), 0);
	assert_int_equal(addr_parse("10.0.0.1:80", &b, err, sizeof(err)), 0);
	assert_int_equal(addr_parse("10.0.0.1:81", &c, err, sizeof(err)), 0);
	assert_int_equal(addr_parse("[::ffff:10.0.0.1]:80", &d, err, sizeof(err)), 0);
	assert_true(addr_equal(&a, &b));
	assert_false(addr_equal(&a, &c));
	assert_false(addr_equal(&a, &d)); /* different families are different sockets */
}

/* addr_format and addr_format_host */

static void test_format(void **state)
{
	struct sockaddr_storage ss;
	char out[ADDR_STRLEN];

	make_v4(&ss, "1.2.3.4", 80);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "1.2.3.4:80");
	addr_format_host(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "1.2.3.4");

	make_v6(&ss, "2001:db8::1", 443);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "[2001:db8::1]:443");
	addr_format_host(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "2001:db8::1");

	make_v6(&ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535");
}

static void test_format_mapped_as_ipv4(void **state)
{
	struct sockaddr_storage ss;
	char out[ADDR_STRLEN];

	make_v6(&ss, "::ffff:192.0.2.7", 8080);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "192.0.2.7:8080");
	addr_format_host(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "192.0.2.7");
	/* v4-compatible (not mapped) stays IPv6 */
	make_v6(&ss, "::192.0.2.7", 80);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "[::192.0.2.7]:80");
}

static void test_format_other_families(void **state)
{
	struct sockaddr_storage ss;
	char out[ADDR_STRLEN];

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "unix");
	assert_int_equal(addr_port(sa(&ss)), 0);
	ss.ss_family = AF_UNSPEC;
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "?");
}

static void test_format_truncates(void **state)
{
	struct sockaddr_storage ss;
	char out[8];

	make_v4(&ss, "1.2.3.4", 8080);
	addr_format(sa(&ss), out, sizeof(out));
	assert_string_equal(out, "1.2.3.4"); /* cut, but a string */
}

static void test_format_host_small_buffer_terminated(void **state)
{
	struct sockaddr_storage ss;
	char out[8];

	/* too long for the buffer: the result must still be a NUL-terminated string */
	make_v6(&ss, "2001:db8:1:2:3:4:5:6", 1);
	memset(out, 'X', sizeof(out));
	addr_format_host(sa(&ss), out, sizeof(out));
	assert_non_null(memchr(out, '\0', sizeof(out)));
	make_v4(&ss, "255.255.255.255", 1);
	memset(out, 'X', sizeof(out));
	addr_format_host(sa(&ss), out, sizeof(out));
	assert_non_null(memchr(out, '\0', sizeof(out)));
}

static void test_port(void **state)
{
	struct sockaddr_storage ss;

	make_v4(&ss, "1.2.3.4", 1);
	assert_int_equal(addr_port(sa(&ss)), 1);
	make_v6(&ss, "::1", 65535);
	assert_int_equal(addr_port(sa(&ss)), 65535);
}

/* addr_cidr_parse */

static void test_cidr_parse_valid(void **state)
{
	struct addr_cidr c;
	uint8_t want4[4] = { 10, 0, 0, 0 };
	uint8_t want6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	uint8_t host4[4] = { 192, 168, 1, 1 };

	assert_int_equal(addr_cidr_parse("10.0.0.0/8", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 8);
	assert_memory_equal(c.net, want4, 4);

	assert_int_equal(addr_cidr_parse("2001:db8::/32", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 32);
	assert_memory_equal(c.net, want6, 16);

	assert_int_equal(addr_cidr_parse("192.168.1.1", &c), 0);
	assert_int_equal(c.family, AF_INET);
	assert_int_equal(c.prefix, 32);
	assert_memory_equal(c.net, host4, 4);

	assert_int_equal(addr_cidr_parse("::1", &c), 0);
	assert_int_equal(c.family, AF_INET6);
	assert_int_equal(c.prefix, 128);

	assert_int_equal(addr_cidr_parse("0.0.0.0/0", &c), 0);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(addr_cidr_parse("::/0", &c), 0);
	assert_int_equal(c.prefix, 0);
	assert_int_equal(addr_cidr_parse("1.2.3.4/32", &c), 0);
	assert_int_equal(addr_cidr_parse("2001:db8::1/128", &c), 0);
}

static void test_cidr_parse_host_bits(void **state)
{
	struct addr_cidr c;

	assert_int_equal(addr_cidr_parse("10.128.0.0/9", &c), 0);
	assert_int_equal(addr_cidr_parse("10.128.0.0/8", &c), -1);
	assert_int_equal(addr_cidr_parse("10.0.0.1/8", &c), -1);
	assert_int_equal(addr_cidr_parse("10.0.0.1/31", &c), -1);
	assert_int_equal(addr_cidr_parse("10.0.0.2/31", &c), 0);
	assert_int_equal(addr_cidr_parse("2001:db8:8000::/33", &c), 0);
	assert_int_equal(addr_cidr_parse("2001:db8:8000::/32", &c), -1);
	assert_int_equal(addr_cidr_parse("::1/127", &c), -1);
	assert_int_equal(addr_cidr_parse("1.0.0.0/0", &c), -1);
}

static void test_cidr_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/8x", "10.0.0.0/ 8", "10.0.0.0//8", "10.0.0/8", "10.0.0.256", "abc",
		"example.org/8", " 10.0.0.0/8", "10.0.0.0 /8", "10.0.0.0/8/8", "2001:db8::/3a",
		"2001:db8:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0:0/32", /* over-long */
	};
	struct addr_cidr c;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (addr_cidr_parse(bad[i], &c) != -1)
			fail_msg("addr_cidr_parse accepted '%s'", bad[i]);
	}
}

/* addr_cidr_match */

static bool match4(const char *cidr, const char *ip)
{
	struct addr_cidr c;
	struct sockaddr_storage ss;

	assert_int_equal(addr_cidr_parse(cidr, &c), 0);
	make_v4(&ss, ip, 1234);
	return addr_cidr_match(&c, sa(&ss));
}

static bool match6(const char *cidr, const char *ip)
{
	struct addr_cidr c;
	struct sockaddr_storage ss;

	assert_int_equal(addr_cidr_parse(cidr, &c), 0);
	make_v6(&ss, ip, 1234);
	return addr_cidr_match(&c, sa(&ss));
}

static void test_cidr_match_ipv4(void **state)
{
	assert_true(match4("10.0.0.0/8", "10.0.0.0"));
	assert_true(match4("10.0.0.0/8", "10.255.255.255"));
	assert_false(match4("10.0.0.0/8", "11.0.0.0"));
	assert_false(match4("10.0.0.0/8", "9.255.255.255"));
	/* a prefix that does not end on a byte boundary */
	assert_true(match4("172.16.0.0/12", "172.16.0.1"));
	assert_true(match4("172.16.0.0/12", "172.31.255.255"));
	assert_false(match4("172.16.0.0/12", "172.32.0.0"));
	assert_false(match4("172.16.0.0/12", "172.15.255.255"));
	assert_true(match4("192.168.1.128/25", "192.168.1.200"));
	assert_false(match4("192.168.1.128/25", "192.168.1.127"));
	/* single addresses and everything */
	assert_true(match4("127.0.0.1", "127.0.0.1"));
	assert_false(match4("127.0.0.1", "127.0.0.2"));
	assert_true(match4("0.0.0.0/0", "203.0.113.9"));
	assert_true(match4("0.0.0.0/0", "0.0.0.0"));
	assert_true(match4("10.0.0.2/31", "10.0.0.3"));
	assert_false(match4("10.0.0.2/31", "10.0.0.4"));
}

static void test_cidr_match_ipv6(void **state)
{
	assert_true(match6("2001:db8::/32", "2001:db8::1"));
	assert_true(match6("2001:db8::/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
	assert_false(match6("2001:db8::/32", "2001:db9::"));
	assert_true(match6("2001:db8:8000::/33", "2001:db8:ffff::1"));
	assert_false(match6("2001:db8:8000::/33", "2001:db8:7fff::1"));
	assert_true(match6("::1", "::1"));
	assert_false(match6("::1", "::2"));
	assert_true(match6("::/0", "fe80::1"));
	assert_true(match6("2001:db8::fffe/127", "2001:db8::ffff"));
	assert_false(match6("2001:db8::fffe/127", "2001:db8::1:0"));
}

static void test_cidr_match_mapped(void **state)
{
	/* IPv4-mapped IPv6 peers (from a dual-stack listener) match IPv4 ranges */
	assert_true(match6("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_false(match6("10.0.0.0/8", "::ffff:11.1.2.3"));
	assert_true(match6("127.0.0.1", "::ffff:127.0.0.1"));
	assert_true(match6("0.0.0.0/0", "::ffff:1.2.3.4"));
	/* v4-compatible addresses and ordinary IPv6 are not IPv4 */
	assert_false(match6("10.0.0.0/8", "::10.1.2.3"));
	assert_false(match6("0.0.0.0/0", "2001:db8::1"));
	assert_false(match6("0.0.0.0/0", "::"));
	/* and a mapped peer is treated as IPv4, not as an IPv6 address */
	assert_false(match6("::/0", "::ffff:1.2.3.4"));
}

static void test_cidr_match_mapped_range(void **state)
{
	/* A range written in the mapped form must match the IPv4 peers it names, whether they
	 * arrive as IPv4 or as mapped IPv6; it parses, so it must not silently match nothing. */
	assert_true(match6("::ffff:10.0.0.0/104", "::ffff:10.1.2.3"));
	assert_true(match4("::ffff:10.0.0.0/104", "10.1.2.3"));
	assert_false(match4("::ffff:10.0.0.0/104", "11.1.2.3"));
	assert_true(match4("::ffff:192.0.2.7", "192.0.2.7"));
	assert_false(match4("::ffff:192.0.2.7", "192.0.2.8"));
	assert_true(match4("::ffff:0.0.0.0/96", "198.51.100.1"));
}

static void test_cidr_match_family_mismatch(void **state)
{
	struct addr_cidr c;
	struct sockaddr_storage ss;

	assert_false(match6("2001:db8::/32", "::ffff:32.1.13.184"));
	assert_int_equal(addr_cidr_parse("::/0", &c), 0);
	make_v4(&ss, "1.2.3.4", 1);
	assert_false(addr_cidr_match(&c, sa(&ss)));
	/* non-IP peers match nothing */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	assert_false(addr_cidr_match(&c, sa(&ss)));
	assert_int_equal(addr_cidr_parse("0.0.0.0/0", &c), 0);
	assert_false(addr_cidr_match(&c, sa(&ss)));
}

/* addr_same_net */

#define addr_same_host(a, b) addr_same_net(a, b, 32, 128)

static void test_same_net_prefixes(void **state)
{
	struct sockaddr_storage a, b;

	(void)state;
	make_v4(&a, "203.0.113.7", 1);
	make_v4(&b, "203.0.113.200", 2);
	assert_true(addr_same_net(sa(&a), sa(&b), 24, 64));
	make_v4(&b, "203.0.114.7", 2);
	assert_false(addr_same_net(sa(&a), sa(&b), 24, 64));
	assert_true(addr_same_net(sa(&a), sa(&b), 22, 64));
	make_v6(&a, "2001:db8:1:2::1", 1);
	make_v6(&b, "2001:db8:1:2:ffff::9", 1);
	assert_true(addr_same_net(sa(&a), sa(&b), 24, 64));
	make_v6(&b, "2001:db8:1:3::1", 1);
	assert_false(addr_same_net(sa(&a), sa(&b), 24, 64));
}

static void test_same_host(void **state)
{
	struct sockaddr_storage a, b, m;

	(void)state;
	make_v4(&a, "127.0.0.2", 1000);
	make_v4(&b, "127.0.0.2", 2000);
	assert_true(addr_same_host(sa(&a), sa(&b)));       /* ports do not matter */
	make_v4(&b, "127.0.0.20", 1000);
	assert_false(addr_same_host(sa(&a), sa(&b)));      /* no prefix matching */
	make_v6(&m, "::ffff:127.0.0.2", 5);
	assert_true(addr_same_host(sa(&a), sa(&m)));       /* mapped equals IPv4 */
	assert_true(addr_same_host(sa(&m), sa(&a)));
	make_v6(&a, "2001:db8::1", 1);
	make_v6(&b, "2001:db8::1", 2);
	assert_true(addr_same_host(sa(&a), sa(&b)));
	make_v6(&b, "2001:db8::2", 1);
	assert_false(addr_same_host(sa(&a), sa(&b)));
	assert_false(addr_same_host(sa(&a), sa(&m)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_ipv4),
		cmocka_unit_test(test_split_ipv6_brackets),
		cmocka_unit_test(test_split_name_and_port_range),
		cmocka_unit_test(test_split_rejects),
		cmocka_unit_test(test_split_host_buffer_bound),
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_bad_syntax_fills_err),
		cmocka_unit_test(test_parse_format_round_trip),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_parse_numeric),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_mapped_as_ipv4),
		cmocka_unit_test(test_format_other_families),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_format_host_small_buffer_terminated),
		cmocka_unit_test(test_port),
		cmocka_unit_test(test_cidr_parse_valid),
		cmocka_unit_test(test_cidr_parse_host_bits),
		cmocka_unit_test(test_cidr_parse_rejects),
		cmocka_unit_test(test_cidr_match_ipv4),
		cmocka_unit_test(test_cidr_match_ipv6),
		cmocka_unit_test(test_cidr_match_mapped),
		cmocka_unit_test(test_cidr_match_mapped_range),
		cmocka_unit_test(test_cidr_match_family_mismatch),
		cmocka_unit_test(test_same_host),
		cmocka_unit_test(test_same_net_prefixes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
