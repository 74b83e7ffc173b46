/* Unit tests for admin token files (core/tokens.c): one bare token, labelled lines, and
 * input just over each limit (label length, token length, number of tokens). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/tokens.h"

#define MIN ADMIN_TOKEN_MIN
#define MAX ADMIN_TOKEN_MAX

static char err[512];

static struct tokens *parse(const char *text)
{
	err[0] = '\0';
	return tokens_parse("tok", text, strlen(text), MIN, MAX, err, sizeof(err));
}

static void test_bare_token(void **state)
{
	struct tokens *t = parse("\n  bare-token-0123456789 \r\n\n");

	assert_non_null(t);
	assert_int_equal(t->n, 1);
	assert_string_equal(t->t[0].label, "admin");
	assert_string_equal(t->t[0].secret, "bare-token-0123456789");
	assert_ptr_equal(tokens_match(t, "bare-token-0123456789", 21), &t->t[0]);
	assert_null(tokens_match(t, "bare-token-012345678", 20));
	assert_null(tokens_match(t, "bare-token-0123456780", 21));
	tokens_free(t);
	assert_null(parse(""));
	assert_non_null(strstr(err, "'tok': want a token of 16 to 1024 characters"));
	assert_null(parse("short\n"));
	assert_non_null(strstr(err, "'tok': want a token of 16 to 1024 characters"));
}

static void test_labelled_tokens(void **state)
{
	struct tokens *t = parse("alice  alice-token-0123456789\n\n"
				 "ops.night_2-b\tnight-token-0123456789\r\n");
	struct tokens *c;

	assert_non_null(t);
	assert_int_equal(t->n, 2);
	assert_string_equal(t->t[0].label, "alice");
	assert_string_equal(t->t[1].label, "ops.night_2-b");
	assert_string_equal(tokens_match(t, "night-token-0123456789", 22)->label,
			    "ops.night_2-b");
	assert_string_equal(tokens_match(t, "alice-token-0123456789", 22)->label, "alice");
	assert_null(tokens_match(t, "alice", 5));
	c = tokens_copy(t);
	tokens_free(t);
	assert_string_equal(tokens_match(c, "alice-token-0123456789", 22)->label, "alice");
	tokens_free(c);
	assert_null(tokens_copy(NULL));
	assert_null(tokens_match(NULL, "x", 1));
	tokens_free(NULL);
}

static void test_refused_files(void **state)
{
	/* a bare token among labelled ones */
	assert_null(parse("alice alice-token-0123456789\nbare-token-0123456789\n"));
	assert_non_null(strstr(err, "'tok' line 2: want LABEL TOKEN"));
	/* a label character outside the set; a third part */
	assert_null(parse("al/ice alice-token-0123456789\n"));
	assert_non_null(strstr(err, "line 1: a label holds only A-Z a-z 0-9 . _ -"));
	assert_null(parse("alice alice-token-0123456789 more\n"));
	assert_non_null(strstr(err, "line 1: want LABEL TOKEN, the token printable ASCII"));
	/* the same label, the same token */
	assert_null(parse("a aaaa-token-0123456789\nb bbbb-token-0123456789\n"
			  "a cccc-token-0123456789\n"));
	assert_non_null(strstr(err, "line 3: the label of line 1 again"));
	assert_null(parse("a aaaa-token-0123456789\nb aaaa-token-0123456789\n"));
	assert_non_null(strstr(err, "line 2: the token of line 1 again"));
	/* no secret ever in the message */
	assert_null(strstr(err, "aaaa-token"));
}

static void test_limits(void **state)
{
	char label[TOKENS_LABEL_MAX + 2], tok[MAX + 2], *text;
	struct tokens *t;
	size_t cap = (TOKENS_MAX + 1) * 64, used = 0;

	/* a label of 64 characters is taken, 65 is not */
	memset(label, 'L', sizeof(label));
	label[TOKENS_LABEL_MAX] = '\0';
	text = malloc(cap > 2 * MAX + 256 ? cap : 2 * MAX + 256);
	assert_non_null(text);
	sprintf(text, "%s label-token-0123456789\n", label);
	t = parse(text);
	assert_non_null(t);
	assert_string_equal(t->t[0].label, label);
	tokens_free(t);
	label[TOKENS_LABEL_MAX] = 'L';
	label[TOKENS_LABEL_MAX + 1] = '\0';
	sprintf(text, "%s label-token-0123456789\n", label);
	assert_null(parse(text));
	assert_non_null(strstr(err, "line 1: a label is 1 to 64 characters"));
	/* a labelled token of 16 and of 1024 characters is taken; 15 and 1025 are not */
	memset(tok, 'k', sizeof(tok));
	tok[MIN] = '\0';
	sprintf(text, "a %s\n", tok);
	t = parse(text);
	assert_non_null(t);
	tokens_free(t);
	tok[MIN - 1] = '\0';
	sprintf(text, "a %s\n", tok);
	assert_null(parse(text));
	assert_non_null(strstr(err, "line 1: want a token of 16 to 1024 characters"));
	memset(tok, 'k', sizeof(tok));
	tok[MAX] = '\0';
	sprintf(text, "a %s\n", tok);
	t = parse(text);
	assert_non_null(t);
	assert_int_equal(t->t[0].len, MAX);
	tokens_free(t);
	tok[MAX] = 'k';
	tok[MAX + 1] = '\0';
	sprintf(text, "a %s\n", tok);
	assert_null(parse(text));
	assert_non_null(strstr(err, "want a token of 16 to 1024 characters"));
	/* 64 tokens are taken, 65 are not */
	for (int i = 0; i < TOKENS_MAX; i++)
		used += (size_t)sprintf(text + used, "u%d token-%d-0123456789abcdef\n", i, i);
	t = parse(text);
	assert_non_null(t);
	assert_int_equal(t->n, TOKENS_MAX);
	assert_string_equal(tokens_match(t, "token-63-0123456789abcdef", 25)->label, "u63");
	tokens_free(t);
	sprintf(text + used, "u64 token-64-0123456789abcdef\n");
	assert_null(parse(text));
	assert_non_null(strstr(err, "more than 64 tokens"));
	free(text);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/test_tokens_XXXXXX";
	int fd = mkstemp(path);
	const char *text = "ops ops-token-0123456789abcdef\nbot bot-token-0123456789abcdef\n";
	struct tokens *t;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	t = tokens_read(path, MIN, MAX, err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(t->n, 2);
	assert_string_equal(t->t[1].label, "bot");
	/* admin_authorized hands back the token that matched */
	{
		const struct token *by = NULL;

		assert_true(admin_authorized("Bearer bot-token-0123456789abcdef", t, &by));
		assert_non_null(by);
		assert_string_equal(by->label, "bot");
		assert_false(admin_authorized("Bearer ops-token-0123456789abcdeX", t, &by));
		assert_null(by);
	}
	tokens_free(t);
	unlink(path);
	assert_null(tokens_read(path, MIN, MAX, err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bare_token),    cmocka_unit_test(test_labelled_tokens),
		cmocka_unit_test(test_refused_files), cmocka_unit_test(test_limits),
		cmocka_unit_test(test_read_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
