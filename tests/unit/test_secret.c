/* core/secret: token files. What is not a regular file is refused at once (a FIFO used to
 * block the daemon's loop in open() until a writer came), and no byte of a token reaches
 * an error message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/secret.h"

static char dir[] = "/tmp/netwall-secret-XXXXXX";

static const char *path_of(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void put(const char *name, const char *text)
{
	FILE *f = fopen(path_of(name), "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_token_read_and_trimmed(void **state)
{
	char err[256] = "";
	char *t;

	(void)state;
	put("ok", "  abcdefghijklmnop\n");
	t = secret_read_token(path_of("ok"), 16, 64, err, sizeof(err));
	assert_non_null(t);
	assert_string_equal(t, "abcdefghijklmnop");
	secret_free(t);
}

static void test_fifo_refused_without_blocking(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(mkfifo(path_of("fifo"), 0600), 0);
	assert_null(secret_read_token(path_of("fifo"), 16, 64, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_directory_and_device_refused(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(secret_read_token(dir, 16, 64, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
	assert_null(secret_read_token("/dev/zero", 16, 64, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));
}

static void test_bad_token_not_quoted(void **state)
{
	char err[256] = "";

	(void)state;
	put("spaces", "secret-part one-more-secret-part\n");
	assert_null(secret_read_token(path_of("spaces"), 16, 64, err, sizeof(err)));
	assert_null(strstr(err, "secret-part"));
	put("short", "tiny-secret\n");
	assert_null(secret_read_token(path_of("short"), 16, 64, err, sizeof(err)));
	assert_null(strstr(err, "tiny-secret"));
	assert_non_null(strstr(err, "want a token of 16 to 64 characters"));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path_of("ok"));
	unlink(path_of("fifo"));
	unlink(path_of("spaces"));
	unlink(path_of("short"));
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_read_and_trimmed),
		cmocka_unit_test(test_fifo_refused_without_blocking),
		cmocka_unit_test(test_directory_and_device_refused),
		cmocka_unit_test(test_bad_token_not_quoted),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
