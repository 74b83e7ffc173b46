/* Unit tests for core/listener: admission by a set's limits, source networks, release. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/listener.h"

static struct sockaddr_storage sa_of(const char *host)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(host, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, host, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, host, &s4->sin_addr), 1);
	}
	return ss;
}

static struct listener_src *admit(struct listener_set *set, const char *host,
				  enum listener_reason *why)
{
	struct sockaddr_storage ss = sa_of(host);

	return listener_set_admit(set, (struct sockaddr *)&ss, why);
}

static void test_per_source_v4_host(void **state)
{
	struct listener_limits lim = { .max_connections = 20, .max_per_source = 4 };
	struct listener_set *set = listener_set_new("refused", "service=t", &lim);
	struct listener_src *held[4];
	enum listener_reason why;

	for (int i = 0; i < 4; i++)
		assert_non_null(held[i] = admit(set, "127.0.0.1", &why));
	/* just over the cap: refused, while another host is admitted */
	assert_null(admit(set, "127.0.0.1", &why));
	assert_int_equal(why, LISTENER_MAX_PER_SOURCE);
	assert_non_null(admit(set, "127.0.0.2", &why));
	/* IPv4-mapped IPv6 is the same IPv4 host */
	assert_null(admit(set, "::ffff:127.0.0.1", &why));
	assert_int_equal(listener_src_count(held[0]), 4);
	listener_set_release(set, held[0]);
	assert_non_null(admit(set, "::ffff:127.0.0.1", &why));
	assert_int_equal(listener_set_stats(set)->open, 5);
	assert_int_equal(listener_set_stats(set)->refused[LISTENER_MAX_PER_SOURCE], 2);
	listener_set_free(set);
}

static void test_per_source_v6_by_64(void **state)
{
	struct listener_limits lim = { .max_per_source = 2 };
	struct listener_set *set = listener_set_new("refused", "service=t", &lim);
	enum listener_reason why;

	assert_non_null(admit(set, "2001:db8:1:2::1", &why));
	assert_non_null(admit(set, "2001:db8:1:2:ffff::7", &why));
	/* a third address of the same /64 */
	assert_null(admit(set, "2001:db8:1:2:dead:beef:0:1", &why));
	assert_int_equal(why, LISTENER_MAX_PER_SOURCE);
	/* the next /64 is another source */
	assert_non_null(admit(set, "2001:db8:1:3::1", &why));
	/* counted by /128 when configured so */
	lim.v6_prefix = 128;
	listener_set_limits(set, &lim);
	assert_non_null(admit(set, "2001:db8:1:2::99", &why));
	listener_set_free(set);
}

static void test_max_connections_and_allow(void **state)
{
	struct addr_cidr allow[1];
	struct listener_limits lim = { .max_connections = 3, .allow = allow, .nallow = 1 };
	struct listener_set *set;
	struct listener_src *a, *b;
	enum listener_reason why;

	assert_int_equal(addr_cidr_parse("10.0.0.0/8", &allow[0]), 0);
	set = listener_set_new("refused", "service=t", &lim);
	assert_null(admit(set, "192.0.2.1", &why));
	assert_int_equal(why, LISTENER_NOT_ALLOWED);
	assert_non_null(a = admit(set, "10.0.0.1", &why));
	assert_non_null(b = admit(set, "10.0.0.2", &why));
	assert_non_null(admit(set, "10.0.0.3", &why));
	assert_null(admit(set, "10.0.0.4", &why));
	assert_int_equal(why, LISTENER_MAX_CONNECTIONS);
	listener_set_release(set, a);
	listener_set_release(set, b);
	assert_int_equal(listener_set_stats(set)->sources, 1);
	assert_non_null(admit(set, "10.0.0.4", &why));
	listener_set_free(set);
}

static void test_many_sources_grow(void **state)
{
	struct listener_limits lim = { .max_per_source = 1 };
	struct listener_set *set = listener_set_new("refused", "service=t", &lim);
	struct listener_src *held[5000];
	enum listener_reason why;
	char host[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(host, sizeof(host), "10.%d.%d.1", i / 256, i % 256);
		assert_non_null(held[i] = admit(set, host, &why));
	}
	assert_int_equal(listener_set_stats(set)->sources, 5000);
	for (int i = 0; i < 5000; i++) {
		snprintf(host, sizeof(host), "10.%d.%d.1", i / 256, i % 256);
		assert_null(admit(set, host, &why));
	}
	for (int i = 0; i < 5000; i++)
		listener_set_release(set, held[i]);
	assert_int_equal(listener_set_stats(set)->sources, 0);
	assert_int_equal(listener_set_stats(set)->open, 0);
	listener_set_free(set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_source_v4_host),
		cmocka_unit_test(test_per_source_v6_by_64),
		cmocka_unit_test(test_max_connections_and_allow),
		cmocka_unit_test(test_many_sources_grow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
