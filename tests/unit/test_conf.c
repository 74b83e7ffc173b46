/* Unit tests for core/conf: INI loading with file:line errors, paths, lists, names, booleans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"

/* A temporary directory per test, holding the config files it writes. */
struct fixture {
	char dir[64];
	char paths[8][128];
	int npaths;
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/netwall-conf-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	for (int i = 0; i < fx->npaths; i++)
		unlink(fx->paths[i]);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Writes n bytes (or the whole string when n is 0) to DIR/name and returns the path. */
static const char *fx_write(struct fixture *fx, const char *name, const char *text, size_t n)
{
	char tmp[sizeof(fx->paths[0])], *path;
	FILE *f;

	assert_true(fx->npaths < 8);
	snprintf(tmp, sizeof(tmp), "%s/%s", fx->dir, name);
	path = fx->paths[fx->npaths++];
	memcpy(path, tmp, sizeof(tmp));
	f = fopen(path, "w");
	assert_non_null(f);
	if (n == 0)
		n = strlen(text);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

/* Records every call the loader makes, one line each. */
struct rec {
	char log[16384];
	size_t len;
	char last_section[256];
};

static void rec_add(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rec_add(struct rec *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->log + r->len, sizeof(r->log) - r->len, fmt, ap);
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(r->log) - r->len);
	r->len += (size_t)n;
}

static void rec_section(struct conf *c, const char *section)
{
	struct rec *r = c->user;

	rec_add(r, "%d [%s]\n", c->line, section);
	snprintf(r->last_section, sizeof(r->last_section), "%s", section);
}

static void rec_key(struct conf *c, const char *section, const char *key, const char *value)
{
	struct rec *r = c->user;

	rec_add(r, "%d %s.%s=%s\n", c->line, section, key, value);
	if (strcmp(key, "bad") == 0)
		conf_error(c, "unknown key '%s' in [%s]", key, section);
	if (strcmp(key, "twice") == 0) {
		conf_error(c, "first problem");
		conf_error(c, "second problem");
	}
}

/* Loads path with the recorders; returns conf_load's result. msgs is copied out as a string. */
static int load(const char *path, struct rec *r, char *msgs, size_t msgslen, int *errors)
{
	struct conf c = { .file = path, .user = r, .on_section = rec_section, .on_key = rec_key };
	int rc;

	memset(r, 0, sizeof(*r));
	rc = conf_load(&c);
	if (c.msgs.len > 0)
		snprintf(msgs, msgslen, "%.*s", (int)c.msgs.len, (const char *)buf_head(&c.msgs));
	else
		msgs[0] = '\0';
	if (errors != NULL)
		*errors = c.errors;
	assert_true((rc == 0) == (c.errors == 0));
	conf_done(&c);
	assert_null(c.msgs.data);
	return rc;
}

static void test_load_sections_and_keys(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "a.ini",
				 "; comment\n"
				 "# comment too\n"
				 "\n"
				 "[gateway]\n"
				 "listen = 0.0.0.0:7443\n"
				 "cert=gw.crt\n"
				 "\n"
				 "[service web]\n"
				 "allow = 10.0.0.0/8, 192.168.0.0/16\n",
				 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(msgs, "");
	assert_string_equal(r.log, "4 [gateway]\n"
				   "5 gateway.listen=0.0.0.0:7443\n"
				   "6 gateway.cert=gw.crt\n"
				   "8 [service web]\n"
				   "9 service web.allow=10.0.0.0/8, 192.168.0.0/16\n");
}

static void test_load_empty_sections_reported(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p =
		fx_write(fx, "e.ini", "[agent a]\n[agent b]\n\n[gateway]\nk = v\n[last]\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 [agent a]\n"
				   "2 [agent b]\n"
				   "4 [gateway]\n"
				   "5 gateway.k=v\n"
				   "6 [last]\n");
}

static void test_load_repeated_keys(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "r.ini",
				 "[service s]\n"
				 "listen = 1.1.1.1:1\n"
				 "listen = 2.2.2.2:2\n"
				 "listen=3.3.3.3:3\n"
				 "[service s]\n"
				 "listen = 4.4.4.4:4\n",
				 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 [service s]\n"
				   "2 service s.listen=1.1.1.1:1\n"
				   "3 service s.listen=2.2.2.2:2\n"
				   "4 service s.listen=3.3.3.3:3\n"
				   "5 [service s]\n"
				   "6 service s.listen=4.4.4.4:4\n");
}

static void test_load_values(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "v.ini",
				 "[s]\n"
				 "empty =\n"
				 "eq = a=b\n"
				 "spaced   =   x y  \n"
				 "comment = v ; trailing comment\n"
				 "colon: c\n",
				 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 [s]\n"
				   "2 s.empty=\n"
				   "3 s.eq=a=b\n"
				   "4 s.spaced=x y\n"
				   "5 s.comment=v\n"
				   "6 s.colon=c\n");
}

static void test_load_keys_before_any_section(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "n.ini", "k = v\n[s]\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 .k=v\n2 [s]\n");
}

static void test_syntax_error_file_line(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], want[1024];
	int errors = 0;
	const char *p = fx_write(fx, "s.ini", "[a]\nk = v\n\nthis is not a key\nk2 = v2\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), &errors), -1);
	assert_int_equal(errors, 1);
	snprintf(want, sizeof(want), "%s:4: syntax error (want [section] or key = value)\n", p);
	assert_string_equal(msgs, want);
	/* the rest of the file is still read */
	assert_non_null(strstr(r.log, "5 a.k2=v2\n"));
}

static void test_unclosed_section_error(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], want[1024];
	const char *p = fx_write(fx, "u.ini", "[a]\nk = v\n[broken\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), -1);
	snprintf(want, sizeof(want), "%s:3: syntax error (want [section] or key = value)\n", p);
	assert_string_equal(msgs, want);
}

static void test_handler_errors_file_line(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], want[1024];
	int errors = 0;
	const char *p =
		fx_write(fx, "h.ini", "[a]\nok = 1\n\nbad = 2\n[b]\n; c\ntwice = 3\nbad=4\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), &errors), -1);
	assert_int_equal(errors, 4);
	snprintf(want, sizeof(want),
		 "%s:4: unknown key 'bad' in [a]\n"
		 "%s:7: first problem\n"
		 "%s:7: second problem\n"
		 "%s:8: unknown key 'bad' in [b]\n",
		 p, p, p, p);
	assert_string_equal(msgs, want);
}

static void test_long_line_error(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], prefix[256], text[4096];
	int errors = 0;
	const char *p;
	size_t n = 0;

	n += (size_t)snprintf(text + n, sizeof(text) - n, "[a]\nshort = 1\nlong = ");
	memset(text + n, 'x', 1000);
	n += 1000;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "\nafter = 2\n");
	p = fx_write(fx, "l.ini", text, n);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), &errors), -1);
	assert_int_equal(errors, 1);
	snprintf(prefix, sizeof(prefix), "%s:3: line too long", p);
	if (strncmp(msgs, prefix, strlen(prefix)) != 0)
		fail_msg("got \"%s\", want it to start \"%s\"", msgs, prefix);
	assert_int_equal(strchr(msgs, '\n') - msgs + 1, (long)strlen(msgs)); /* one line */
	/* nothing of the long line reaches the handler; the next line does, numbered right */
	assert_string_equal(r.log, "1 [a]\n2 a.short=1\n4 a.after=2\n");
}

static void test_long_line_at_end_of_file(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], prefix[256], text[1024];
	const char *p;

	memcpy(text, "[a]\nk = ", 8);
	memset(text + 8, 'y', 600); /* no newline at all */
	p = fx_write(fx, "le.ini", text, 608);
	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), -1);
	snprintf(prefix, sizeof(prefix), "%s:2: line too long", p);
	assert_memory_equal(msgs, prefix, strlen(prefix));
	assert_string_equal(r.log, "1 [a]\n");
}

static void test_moderate_line_ok(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], text[512], want[512];
	const char *p;

	/* a realistic long value: a fingerprint with colons (95 bytes) */
	snprintf(text, sizeof(text),
		 "[agent a]\nfingerprint = %s\n",
		 "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
		 "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
	p = fx_write(fx, "m.ini", text, 0);
	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	snprintf(want, sizeof(want), "1 [agent a]\n2 agent a.fingerprint=%s\n",
		 "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:"
		 "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
	assert_string_equal(r.log, want);
}

static void test_missing_file(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], path[128];
	int errors = 0;

	snprintf(path, sizeof(path), "%s/absent.ini", fx->dir);
	assert_int_equal(load(path, &r, msgs, sizeof(msgs), &errors), -1);
	assert_int_equal(errors, 1);
	assert_memory_equal(msgs, path, strlen(path));
	assert_non_null(strstr(msgs, "cannot open"));
	assert_non_null(strstr(msgs, "No such file"));
	assert_string_equal(r.log, "");
}

/* Every key is reported under the section the loader last announced: the two views of the
 * file must agree, whatever the layout. */
static void test_indented_section_header(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "i.ini", "[a]\nk = v\n  [b]\nx = 1\n", 0);

	(void)load(p, &r, msgs, sizeof(msgs), NULL);
	assert_string_equal(r.log, "1 [a]\n2 a.k=v\n3 [b]\n4 b.x=1\n");
	assert_string_equal(msgs, "");
}

static void test_indented_keys(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "k.ini", "[a]\n  k = v\n  k2 = w\n\tk3 = z\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 [a]\n2 a.k=v\n3 a.k2=w\n4 a.k3=z\n");
}

static void test_long_section_name_reaches_keys(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024], text[512], name[CONF_NAME_MAX + 1], want[512];
	const char *p;

	/* the longest name conf_name_ok allows, in a "kind name" header */
	memset(name, 'n', CONF_NAME_MAX);
	name[CONF_NAME_MAX] = '\0';
	assert_true(conf_name_ok(name));
	snprintf(text, sizeof(text), "[service %s]\nlisten = 1.2.3.4:5\n", name);
	p = fx_write(fx, "ls.ini", text, 0);
	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	snprintf(want, sizeof(want), "1 [service %s]\n2 service %s.listen=1.2.3.4:5\n", name, name);
	assert_string_equal(r.log, want);
}

static void test_bom_first_line(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "b.ini", "\xef\xbb\xbf[a]\nk = v\n", 0);

	(void)load(p, &r, msgs, sizeof(msgs), NULL);
	assert_string_equal(r.log, "1 [a]\n2 a.k=v\n");
	assert_string_equal(msgs, "");
}

static void test_crlf_lines(void **state)
{
	struct fixture *fx = *state;
	struct rec r;
	char msgs[1024];
	const char *p = fx_write(fx, "w.ini", "[a]\r\nk = v\r\n\r\n[b]\r\nx=1\r\n", 0);

	assert_int_equal(load(p, &r, msgs, sizeof(msgs), NULL), 0);
	assert_string_equal(r.log, "1 [a]\n2 a.k=v\n4 [b]\n5 b.x=1\n");
}

static void test_dir_and_paths(void **state)
{
	struct fixture *fx = *state;
	struct rec r = { .len = 0 };
	struct conf c = { .on_section = rec_section, .on_key = rec_key, .user = &r };
	char want[256], *s;
	const char *p = fx_write(fx, "d.ini", "[a]\n", 0);

	c.file = p;
	assert_int_equal(conf_load(&c), 0);
	assert_string_equal(c.dir, fx->dir);
	s = conf_path(&c, "certs/gw.crt");
	snprintf(want, sizeof(want), "%s/certs/gw.crt", fx->dir);
	assert_string_equal(s, want);
	free(s);
	s = conf_path(&c, "/etc/ssl/x.pem");
	assert_string_equal(s, "/etc/ssl/x.pem");
	free(s);
	conf_done(&c);
}

static void test_dir_relative_file(void **state)
{
	struct rec r = { .len = 0 };
	struct conf c = { .on_section = rec_section, .on_key = rec_key, .user = &r };
	char *s;

	/* a bare file name: paths stay relative to the working directory */
	c.file = "netwall-absent-test.ini";
	assert_int_equal(conf_load(&c), -1);
	assert_string_equal(c.dir, ".");
	s = conf_path(&c, "gw.crt");
	assert_string_equal(s, "gw.crt");
	free(s);
	conf_done(&c);

	memset(&c, 0, sizeof(c));
	c.on_key = rec_key;
	c.user = &r;
	c.file = "conf.d/netwall-absent-test.ini";
	assert_int_equal(conf_load(&c), -1);
	assert_string_equal(c.dir, "conf.d");
	s = conf_path(&c, "gw.crt");
	assert_string_equal(s, "conf.d/gw.crt");
	free(s);
	conf_done(&c);
}

static void test_dir_root(void **state)
{
	struct rec r = { .len = 0 };
	struct conf c = { .on_section = rec_section, .on_key = rec_key, .user = &r };
	char *s;

	c.file = "/netwall-absent-test.ini";
	assert_int_equal(conf_load(&c), -1);
	assert_string_equal(c.dir, "/");
	s = conf_path(&c, "gw.crt");
	assert_string_equal(s, "/gw.crt");
	free(s);
	conf_done(&c);
}

static void test_conf_error_format(void **state)
{
	struct conf c = { .file = "x.ini", .line = 12 };

	conf_error(&c, "bad value '%s'", "zz");
	c.line = 13;
	conf_error(&c, "%d problems", 2);
	assert_int_equal(c.errors, 2);
	assert_int_equal(c.msgs.len, strlen("x.ini:12: bad value 'zz'\nx.ini:13: 2 problems\n"));
	assert_memory_equal(buf_head(&c.msgs), "x.ini:12: bad value 'zz'\nx.ini:13: 2 problems\n",
			    c.msgs.len);
	conf_done(&c);
}

/* conf_list */

struct items {
	char got[1024];
	int calls;
	int stop_at;
};

static int collect(const char *item, void *arg)
{
	struct items *it = arg;
	size_t n = strlen(it->got);

	it->calls++;
	snprintf(it->got + n, sizeof(it->got) - n, "<%s>", item);
	return it->calls == it->stop_at ? -1 : 0;
}

static void test_list_split(void **state)
{
	struct items it = { .stop_at = -1 };

	assert_int_equal(conf_list("a, b  c,,d\te", collect, &it), 0);
	assert_string_equal(it.got, "<a><b><c><d><e>");
	assert_int_equal(it.calls, 5);
	memset(&it, 0, sizeof(it));
	it.stop_at = -1;
	assert_int_equal(conf_list(" ,lead and trail, ", collect, &it), 0);
	assert_string_equal(it.got, "<lead><and><trail>");
	memset(&it, 0, sizeof(it));
	it.stop_at = -1;
	assert_int_equal(conf_list("single", collect, &it), 0);
	assert_string_equal(it.got, "<single>");
}

static void test_list_empty(void **state)
{
	struct items it = { .stop_at = -1 };

	assert_int_equal(conf_list("", collect, &it), 0);
	assert_int_equal(conf_list(" , ,\t", collect, &it), 0);
	assert_int_equal(it.calls, 0);
}

static void test_list_stops_on_error(void **state)
{
	struct items it = { .stop_at = 2 };

	assert_int_equal(conf_list("a b c d", collect, &it), -1);
	assert_int_equal(it.calls, 2);
	assert_string_equal(it.got, "<a><b>");
}

static void test_list_long_item(void **state)
{
	struct items it = { .stop_at = -1 };
	char v[600];

	memset(v, 'x', 255);
	v[255] = '\0';
	assert_int_equal(conf_list(v, collect, &it), 0);
	assert_int_equal(it.calls, 1);
	assert_int_equal(strlen(it.got), 257);
	memset(&it, 0, sizeof(it));
	it.stop_at = -1;
	strcpy(v, "first ");
	memset(v + 6, 'y', 256);
	v[262] = '\0';
	assert_int_equal(conf_list(v, collect, &it), -1);
}

/* conf_name_ok */

static void test_name_ok(void **state)
{
	char name[CONF_NAME_MAX + 2];

	assert_true(conf_name_ok("web"));
	assert_true(conf_name_ok("a.b_c-D9"));
	assert_true(conf_name_ok("x"));
	memset(name, 'a', CONF_NAME_MAX);
	name[CONF_NAME_MAX] = '\0';
	assert_true(conf_name_ok(name));
	name[CONF_NAME_MAX] = 'a';
	name[CONF_NAME_MAX + 1] = '\0';
	assert_false(conf_name_ok(name));
	assert_false(conf_name_ok(""));
	assert_false(conf_name_ok("a b"));
	assert_false(conf_name_ok("a/b"));
	assert_false(conf_name_ok("a:b"));
	assert_false(conf_name_ok("a\tb"));
	assert_false(conf_name_ok("caf\xc3\xa9"));
	assert_false(conf_name_ok("[a]"));
}

/* conf_section_split */

static void test_section_split(void **state)
{
	char kind[32];
	const char *name = NULL;

	conf_section_split("service web", kind, sizeof(kind), &name);
	assert_string_equal(kind, "service");
	assert_string_equal(name, "web");
	conf_section_split("gateway", kind, sizeof(kind), &name);
	assert_string_equal(kind, "gateway");
	assert_string_equal(name, "");
	conf_section_split("agent \t  edge-1", kind, sizeof(kind), &name);
	assert_string_equal(kind, "agent");
	assert_string_equal(name, "edge-1");
	conf_section_split("", kind, sizeof(kind), &name);
	assert_string_equal(kind, "");
	assert_string_equal(name, "");
	/* only the first word is the kind: the rest is the name, for conf_name_ok to judge */
	conf_section_split("service web extra", kind, sizeof(kind), &name);
	assert_string_equal(kind, "service");
	assert_string_equal(name, "web extra");
}

static void test_section_split_small_kind(void **state)
{
	char kind[4];
	const char *name = NULL;

	/* a kind too long for the buffer is cut, but the name is still the second word */
	conf_section_split("service web", kind, sizeof(kind), &name);
	assert_string_equal(kind, "ser");
	assert_string_equal(name, "web");
}

/* conf_bool */

static void test_bool(void **state)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };
	static const char *const bad[] = { "", "On", "YES", "2", "yes ", " no", "enable", "t" };
	bool v;

	for (size_t i = 0; i < 4; i++) {
		v = false;
		assert_int_equal(conf_bool(yes[i], &v), 0);
		assert_true(v);
		v = true;
		assert_int_equal(conf_bool(no[i], &v), 0);
		assert_false(v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (conf_bool(bad[i], &v) != -1)
			fail_msg("conf_bool accepted '%s'", bad[i]);
	}
}

#define fx_test(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		fx_test(test_load_sections_and_keys),
		fx_test(test_load_empty_sections_reported),
		fx_test(test_load_repeated_keys),
		fx_test(test_load_values),
		fx_test(test_load_keys_before_any_section),
		fx_test(test_syntax_error_file_line),
		fx_test(test_unclosed_section_error),
		fx_test(test_handler_errors_file_line),
		fx_test(test_long_line_error),
		fx_test(test_long_line_at_end_of_file),
		fx_test(test_moderate_line_ok),
		fx_test(test_missing_file),
		fx_test(test_indented_section_header),
		fx_test(test_indented_keys),
		fx_test(test_long_section_name_reaches_keys),
		fx_test(test_bom_first_line),
		fx_test(test_crlf_lines),
		fx_test(test_dir_and_paths),
		cmocka_unit_test(test_dir_relative_file),
		cmocka_unit_test(test_dir_root),
		cmocka_unit_test(test_conf_error_format),
		cmocka_unit_test(test_list_split),
		cmocka_unit_test(test_list_empty),
		cmocka_unit_test(test_list_stops_on_error),
		cmocka_unit_test(test_list_long_item),
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_section_split),
		cmocka_unit_test(test_section_split_small_kind),
		cmocka_unit_test(test_bool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
