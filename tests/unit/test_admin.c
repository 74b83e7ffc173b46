/* Unit tests for the admin listener's pieces: the bearer/Basic token check, the status
 * page's per-minute counts and escaping, and the keys every daemon shares (core/daemon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/admin.h"
#include "core/daemon.h"
#include "core/page.h"

#define TOKEN "s3cret-token-0123456789"

/* admin_authorized against a token file that holds text (NULL: no file). */
static bool authorized(const char *auth, const char *text)
{
	char err[256];
	struct tokens *t = NULL;
	bool ok;

	if (text != NULL) {
		t = tokens_parse("t", text, strlen(text), 1, ADMIN_TOKEN_MAX, err, sizeof(err));
		assert_non_null(t);
	}
	ok = admin_authorized(auth, t, NULL);
	tokens_free(t);
	return ok;
}

static void test_bearer(void **state)
{
	assert_true(authorized(NULL, NULL));
	assert_true(authorized("anything", NULL));
	assert_true(authorized("Bearer " TOKEN, TOKEN));
	assert_true(authorized("bearer  " TOKEN, TOKEN));
	assert_false(authorized(NULL, TOKEN));
	assert_false(authorized("", TOKEN));
	assert_false(authorized("Bearer", TOKEN));
	assert_false(authorized("Bearer ", TOKEN));
	assert_false(authorized("Bearer " TOKEN "x", TOKEN));
	assert_false(authorized("Bearer s3cret-token-012345678", TOKEN));
	assert_false(authorized("Bearer S3CRET-TOKEN-0123456789", TOKEN));
	assert_false(authorized(TOKEN, TOKEN));
	assert_false(authorized("Token " TOKEN, TOKEN));
}

static void test_basic(void **state)
{
	/* base64("ops:s3cret-token-0123456789"), base64(":..."), base64("ops:wrong") */
	assert_true(authorized("Basic b3BzOnMzY3JldC10b2tlbi0wMTIzNDU2Nzg5", TOKEN));
	assert_true(authorized("Basic OnMzY3JldC10b2tlbi0wMTIzNDU2Nzg5", TOKEN));
	assert_false(authorized("Basic b3BzOndyb25n", TOKEN));
	/* no colon, bad base64, wrong length, empty */
	assert_false(authorized("Basic czNjcmV0LXRva2VuLTAxMjM0NTY3ODk=", TOKEN));
	assert_false(authorized("Basic !!!!", TOKEN));
	assert_false(authorized("Basic b3BzOnMzY3JldC10b2tlbi0wMTIzNDU2Nzg", TOKEN));
	assert_false(authorized("Basic ", TOKEN));
	/* the token followed by more: refused */
	assert_false(authorized("Basic b3BzOnMzY3JldC10b2tlbi0wMTIzNDU2Nzg5eA==", TOKEN));
}

/* The longest token a token file may hold also logs in through Basic, with a long user. */
static void test_basic_longest_token(void **state)
{
	char token[ADMIN_TOKEN_MAX + 1], plain[255 + 1 + ADMIN_TOKEN_MAX + 1];
	unsigned char b64[4 * sizeof(plain) / 3 + 8];
	char auth[sizeof(b64) + 8];
	int n;

	memset(token, 'k', ADMIN_TOKEN_MAX);
	token[ADMIN_TOKEN_MAX] = '\0';
	memset(plain, 'u', 255);
	plain[255] = ':';
	memcpy(plain + 256, token, ADMIN_TOKEN_MAX + 1);
	n = EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
	assert_true(n > 0);
	snprintf(auth, sizeof(auth), "Basic %s", (const char *)b64);
	assert_true(authorized(auth, token));
	auth[strlen(auth) - 5] ^= 1; /* one bit off */
	assert_false(authorized(auth, token));
}

static void test_minutes(void **state)
{
	struct minutes m = { 0 };
	uint32_t s[PAGE_MINUTES];
	double t0 = 1700000000.0 - 1700000000 % 60; /* the start of a minute */

	minutes_series(&m, t0, s);
	for (int i = 0; i < PAGE_MINUTES; i++)
		assert_int_equal(s[i], 0);
	minutes_add(&m, t0, 2);
	minutes_add(&m, t0 + 59, 3);
	minutes_add(&m, t0 + 60, 7);
	minutes_series(&m, t0 + 60, s);
	assert_int_equal(s[PAGE_MINUTES - 1], 7);
	assert_int_equal(s[PAGE_MINUTES - 2], 5);
	assert_int_equal(s[PAGE_MINUTES - 3], 0);
	/* 59 minutes on, the first minute is the oldest shown; one more and it is gone */
	minutes_series(&m, t0 + 59 * 60, s);
	assert_int_equal(s[0], 5);
	assert_int_equal(s[1], 7);
	minutes_series(&m, t0 + 60 * 60, s);
	assert_int_equal(s[0], 7);
	/* a gap longer than the hour clears everything; a slot is reused cleanly */
	minutes_add(&m, t0 + 3 * 3600, 1);
	minutes_series(&m, t0 + 3 * 3600, s);
	for (int i = 0; i < PAGE_MINUTES - 1; i++)
		assert_int_equal(s[i], 0);
	assert_int_equal(s[PAGE_MINUTES - 1], 1);
	/* a time before the hour kept is dropped, within it counted */
	minutes_add(&m, t0, 100);
	minutes_add(&m, t0 + 3 * 3600 - 120, 4);
	minutes_series(&m, t0 + 3 * 3600, s);
	assert_int_equal(s[PAGE_MINUTES - 3], 4);
	assert_int_equal(s[PAGE_MINUTES - 1], 1);
}

static char *drain(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

static void test_escape_and_tiles(void **state)
{
	struct evbuffer *b = evbuffer_new();
	char *s;
	char big[32];

	page_esc(b, "<a href=\"x\">'&'</a>\x01\x7f\xc3\xa9");
	s = drain(b);
	assert_string_equal(s, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;??\xc3\xa9");
	free(s);
	page_tile(b, "received", "received", 10);
	s = drain(b);
	assert_string_equal(s, "<div class=\"tile\" id=\"received\"><b>10</b>received</div>");
	free(s);
	page_bytes(big, sizeof(big), 1023);
	assert_string_equal(big, "1023 B");
	page_bytes(big, sizeof(big), 3 * 1024 * 1024 + 512 * 1024);
	assert_string_equal(big, "3.5 MiB");
	evbuffer_free(b);
}

/* ---- the shared keys ---- */

struct keys {
	struct daemon_conf d;
	int seen;
};

static void on_key(struct conf *c, const char *section, const char *key, const char *value)
{
	struct keys *k = c->user;

	if (daemon_conf_key(c, &k->d, key, value))
		k->seen++;
	else
		conf_error(c, "unknown key '%s'", key);
}

/* Loads text as a config; returns the number of errors, messages in msgs. */
static int load(const char *text, struct keys *k, char *msgs, size_t len)
{
	char path[] = "/tmp/test_admin_XXXXXX";
	int fd = mkstemp(path);
	struct conf c = { 0 };
	int errors;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	memset(k, 0, sizeof(*k));
	daemon_conf_defaults(&k->d, "127.0.0.1:9102");
	c.file = path;
	c.user = k;
	c.on_key = on_key;
	conf_load(&c);
	errors = c.errors;
	snprintf(msgs, len, "%.*s", (int)c.msgs.len, c.msgs.len ? (const char *)buf_head(&c.msgs) : "");
	conf_done(&c);
	unlink(path);
	return errors;
}

static void test_shared_keys(void **state)
{
	struct keys k;
	char msgs[1024], text[512];
	char tok[] = "/tmp/test_admin_tok_XXXXXX";
	int fd = mkstemp(tok);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "  " TOKEN " \n", strlen(TOKEN) + 4), (ssize_t)strlen(TOKEN) + 4);
	close(fd);
	assert_int_equal(load("[x]\n", &k, msgs, sizeof(msgs)), 0);
	assert_true(k.d.seccomp);
	assert_false(k.d.allow_root);
	assert_null(k.d.user);
	assert_null(k.d.admin_tokens);
	assert_true(k.d.admin_on);
	snprintf(text, sizeof(text),
		 "[x]\nuser = nobody\nallow_root = yes\nseccomp = no\nadmin_token_file = %s\n"
		 "admin = off\nlog_level = warn\n",
		 tok);
	assert_int_equal(load(text, &k, msgs, sizeof(msgs)), 0);
	assert_int_equal(k.seen, 6);
	assert_string_equal(k.d.user, "nobody");
	assert_true(k.d.allow_root);
	assert_false(k.d.seccomp);
	assert_false(k.d.admin_on);
	assert_int_equal(k.d.admin_tokens->n, 1);
	assert_string_equal(k.d.admin_tokens->t[0].secret, TOKEN);
	assert_string_equal(k.d.admin_tokens->t[0].label, "admin");
	assert_int_equal(k.d.log_level, LOG_WARN);
	daemon_conf_free(&k.d);
	/* a short token, a missing file, a token with a space, bad booleans */
	fd = open(tok, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "short\n", 6), 6);
	close(fd);
	snprintf(text, sizeof(text), "[x]\nadmin_token_file = %s\n", tok);
	assert_int_equal(load(text, &k, msgs, sizeof(msgs)), 1);
	assert_non_null(strstr(msgs, ":2: admin_token_file:"));
	assert_non_null(strstr(msgs, "want a token of 16 to 1024 characters"));
	fd = open(tok, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "0123456789abcdefghij\x01\n", 22), 22);
	close(fd);
	assert_int_equal(load(text, &k, msgs, sizeof(msgs)), 1);
	assert_non_null(strstr(msgs, "one line of printable ASCII"));
	unlink(tok);
	assert_int_equal(load(text, &k, msgs, sizeof(msgs)), 1);
	assert_non_null(strstr(msgs, "cannot read"));
	assert_int_equal(load("[x]\nallow_root = maybe\nseccomp = 2\nuser =\n", &k, msgs,
			      sizeof(msgs)),
			 3);
	assert_non_null(strstr(msgs, ":2: allow_root: want yes or no, got 'maybe'"));
	assert_non_null(strstr(msgs, ":3: seccomp: want yes or no, got '2'"));
	assert_non_null(strstr(msgs, ":4: user: want a user name"));
	daemon_conf_free(&k.d);
}

static void test_check_root(void **state)
{
	struct daemon_conf d;
	char err[256];

	daemon_conf_defaults(&d, "127.0.0.1:9102");
	unsetenv("NETWALL_ALLOW_ROOT");
	if (geteuid() == 0) {
		assert_int_equal(daemon_check(&d, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "refusing to run as root"));
		setenv("NETWALL_ALLOW_ROOT", "1", 1);
		assert_int_equal(daemon_check(&d, err, sizeof(err)), 0);
		unsetenv("NETWALL_ALLOW_ROOT");
		d.allow_root = true;
		assert_int_equal(daemon_check(&d, err, sizeof(err)), 0);
		d.allow_root = false;
	} else {
		assert_int_equal(daemon_check(&d, err, sizeof(err)), 0);
	}
	d.user = strdup("no-such-user-here");
	assert_int_equal(daemon_check(&d, err, sizeof(err)), -1);
	assert_string_equal(err, "user: no such user 'no-such-user-here'");
	daemon_conf_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bearer),          cmocka_unit_test(test_basic),
		cmocka_unit_test(test_basic_longest_token),
		cmocka_unit_test(test_minutes),         cmocka_unit_test(test_escape_and_tiles),
		cmocka_unit_test(test_shared_keys),     cmocka_unit_test(test_check_root),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
