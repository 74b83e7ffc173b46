/* Unit tests for hl7/intake_config: defaults, routing rules, and file:line errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "core/listener.h"
#include "intake/intake_config.h"

/* Writes text to a temporary file and loads it; *msgs gets the errors. */
static struct intake_config *load(const char *text, char **msgs)
{
	char path[] = "/tmp/netwall-intake-XXXXXX";
	int fd = mkstemp(path);
	struct intake_config *c;

	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	*msgs = NULL;
	c = intake_config_load(path, msgs);
	unlink(path);
	return c;
}

#define BASE "[intake]\nlisten = 127.0.0.1:2575\nstore = /tmp/x.db\n" /* lines 1-3 */

static void test_defaults_accept_pharmacy_and_adt(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE, &msgs);

	assert_non_null(c);
	assert_int_equal(c->nlisten, 1);
	assert_int_equal(c->max_message, 1024 * 1024);
	assert_int_equal(intake_config_route(c, "RDE", "O11"), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "RAS", "O17"), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "ADT", "A08"), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "ADT", ""), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "ORU", "R01"), INTAKE_IGNORE);
	assert_null(c->url);
	intake_config_free(c);
}

static void test_rules_first_match_wins(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE "[route]\n"
					    "reject = ADT^A04\n"
					    "accept = ADT, RDE^O11\n"
					    "ignore = *\n",
				       &msgs);

	assert_non_null(c);
	assert_int_equal(intake_config_route(c, "ADT", "A04"), INTAKE_REJECT);
	assert_int_equal(intake_config_route(c, "ADT", "A01"), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "RDE", "O11"), INTAKE_ACCEPT);
	assert_int_equal(intake_config_route(c, "RDE", "O25"), INTAKE_IGNORE);
	/* no [route] defaults are added when the section exists */
	assert_int_equal(intake_config_route(c, "RAS", "O17"), INTAKE_IGNORE);
	intake_config_free(c);
}

static void test_default_action(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE "[route]\naccept = RDE\ndefault = reject\n", &msgs);

	assert_non_null(c);
	assert_int_equal(intake_config_route(c, "ORM", "O01"), INTAKE_REJECT);
	assert_int_equal(intake_config_route(c, "RDEX", "O01"), INTAKE_REJECT);
	intake_config_free(c);
}

static void expect_error(const char *text, const char *where, const char *what)
{
	char *msgs;
	struct intake_config *c = load(text, &msgs);

	assert_null(c);
	assert_non_null(msgs);
	if (strstr(msgs, where) == NULL || strstr(msgs, what) == NULL)
		fail_msg("want '%s' ... '%s' in: %s", where, what, msgs);
	free(msgs);
}

static void test_errors_name_file_and_line(void **state)
{
	expect_error(BASE "max_message = 10\n", ":4: ", "max_message");
	expect_error(BASE "max_message = 67108865\n", ":4: ", "max_message");
	expect_error(BASE "frobnicate = 1\n", ":4: ", "unknown key 'frobnicate'");
	expect_error(BASE "[route]\naccept = RDE^O1\n", ":5: ", "RDE^O1");
	expect_error(BASE "[route]\naccept = rde\n", ":5: ", "rde");
	expect_error(BASE "[route]\nsend = RDE\n", ":5: ", "unknown key 'send'");
	expect_error(BASE "[route]\ndefault = drop\n", ":5: ", "default");
	expect_error(BASE "[deliver]\nurl = ftp://x\n", ":5: ", "url");
	expect_error(BASE "[deliver]\nmax_attempts = 0\n", ":5: ", "max_attempts");
	expect_error(BASE "[wall]\n", ":4: ", "unknown section");
	expect_error(BASE "processing_ids = PX\n", ":4: ", "processing_ids");
	expect_error(BASE "allow = 10.0.0.0/33\n", ":4: ", "allow");
	expect_error("[intake]\nstore = x.db\n", ":1: ", "listen");
	expect_error("[intake]\nlisten = 127.0.0.1:1\n", ":1: ", "store");
	expect_error(BASE "tls = on\n", ":1: ", "cert");
	expect_error(BASE "client_certs = required\n", ":1: ", "client_ca");
	expect_error("[route]\naccept = RDE\n", ":1: ", "missing [intake]");
	expect_error("", ":1: ", "missing [intake]");
}

static void test_repeatable_and_store_kinds(void **state)
{
	char *msgs;
	struct intake_config *c = load("[intake]\nlisten = 127.0.0.1:1\nlisten = [::1]:1, "
				       "127.0.0.1:2\nstore = postgresql://u@h/db\n"
				       "allow = 10.0.0.0/8\nallow = ::1\n",
				       &msgs);

	assert_non_null(c);
	assert_int_equal(c->nlisten, 3);
	assert_int_equal(c->nallow, 2);
	assert_string_equal(c->store, "postgresql://u@h/db");
	intake_config_free(c);
	c = load("[intake]\nlisten = 127.0.0.1:1\nstore = rel.db\n", &msgs);
	assert_non_null(c);
	assert_string_equal(c->store, "/tmp/rel.db"); /* relative to the config's directory */
	intake_config_free(c);
}


static struct sockaddr_storage sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
	}
	return ss;
}

/* Whether the listener's per-source count, with the config's prefixes, takes a and b for
 * one source: with a share of one, b is refused after a. */
static bool same(const struct intake_config *c, const char *a, const char *b)
{
	struct sockaddr_storage x = sa(a), y = sa(b);
	struct listener_limits lim = { .max_per_source = 1,
				       .v4_prefix = (unsigned)c->source_prefix_v4,
				       .v6_prefix = (unsigned)c->source_prefix_v6 };
	struct listener_set *set = listener_set_new("refused", "test", &lim);
	enum listener_reason why;
	bool one;

	assert_non_null(listener_set_admit(set, (struct sockaddr *)&x, &why));
	one = listener_set_admit(set, (struct sockaddr *)&y, &why) == NULL;
	listener_set_free(set);
	return one;
}

/* max_per_source counts an IPv6 /64 (one host's usual share) and an IPv4 address by
 * default; the prefixes are keys. */
static void test_source_prefixes(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE, &msgs);

	assert_non_null(c);
	assert_int_equal(c->source_prefix_v4, 32);
	assert_int_equal(c->source_prefix_v6, 64);
	assert_true(same(c, "fd00:1:2:3::1", "fd00:1:2:3:ffff:ffff:ffff:ffff"));
	assert_false(same(c, "fd00:1:2:3::1", "fd00:1:2:4::1"));
	assert_true(same(c, "192.0.2.1", "::ffff:192.0.2.1")); /* v4-mapped is v4 */
	assert_false(same(c, "192.0.2.1", "192.0.2.2"));
	assert_false(same(c, "192.0.2.1", "fd00::1"));
	intake_config_free(c);

	c = load(BASE "source_prefix_v4 = 24\nsource_prefix_v6 = 128\n", &msgs);
	assert_non_null(c);
	assert_true(same(c, "192.0.2.1", "192.0.2.254"));
	assert_false(same(c, "192.0.2.1", "192.0.3.1"));
	assert_false(same(c, "fd00::1", "fd00::2"));
	assert_true(same(c, "fd00::1", "fd00::1"));
	intake_config_free(c);

	assert_null(load(BASE "source_prefix_v6 = 129\n", &msgs));
	assert_non_null(strstr(msgs, ":4: source_prefix_v6"));
	free(msgs);
	assert_null(load(BASE "source_prefix_v4 = 7\n", &msgs));
	free(msgs);
}

/* memory_budget: 64 MiB, or 4 x max_message when that is more; set lower than that, an
 * error; on_reused_control_id: store (default) or reject. */
static void test_budget_and_reuse(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE, &msgs);

	assert_non_null(c);
	assert_int_equal(c->memory_budget, 64u << 20);
	assert_false(c->reuse_reject);
	intake_config_free(c);
	c = load(BASE "max_message = 67108864\non_reused_control_id = reject\n", &msgs);
	assert_non_null(c);
	assert_int_equal(c->memory_budget, 256u << 20);
	assert_true(c->reuse_reject);
	intake_config_free(c);
	assert_null(load(BASE "max_message = 4194304\nmemory_budget = 16777215\n", &msgs));
	assert_non_null(strstr(msgs, "memory_budget"));
	free(msgs);
	assert_null(load(BASE "memory_budget = 1048575\n", &msgs));
	free(msgs);
	assert_null(load(BASE "on_reused_control_id = drop\n", &msgs));
	assert_non_null(strstr(msgs, ":4: on_reused_control_id"));
	free(msgs);
}

static void test_write_timeout(void **state)
{
	char *msgs;
	struct intake_config *c = load(BASE, &msgs);

	assert_non_null(c);
	assert_true(c->write_timeout == 30);
	intake_config_free(c);
	c = load(BASE "write_timeout = 2.5\n", &msgs);
	assert_non_null(c);
	assert_true(c->write_timeout == 2.5);
	intake_config_free(c);
	/* just outside 0.1 .. 3600, and not a number */
	assert_null(load(BASE "write_timeout = 0.09\n", &msgs));
	assert_non_null(strstr(msgs, ":4: write_timeout"));
	free(msgs);
	assert_null(load(BASE "write_timeout = 3601\n", &msgs));
	assert_non_null(strstr(msgs, "write_timeout"));
	free(msgs);
	assert_null(load(BASE "write_timeout = 5s\n", &msgs));
	free(msgs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_accept_pharmacy_and_adt),
		cmocka_unit_test(test_rules_first_match_wins),
		cmocka_unit_test(test_default_action),
		cmocka_unit_test(test_errors_name_file_and_line),
		cmocka_unit_test(test_repeatable_and_store_kinds),
		cmocka_unit_test(test_source_prefixes),
		cmocka_unit_test(test_budget_and_reuse),
		cmocka_unit_test(test_write_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
