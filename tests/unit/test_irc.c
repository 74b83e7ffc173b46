/* Unit tests for chat/irc: line parsing, tags, formatting, the line splitter,
 * name rules and rfc1459 case mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/irc.h"

/* Room for the longest line the tests build, tags included, and its spare byte.
 */
static char line_buf[IRC_TAGS_MAX + IRC_LINE_MAX + 64];

/* Parses a copy of n bytes of s (so the spare byte after it is ours). */
static int parse_n(const char *s, size_t n, struct irc_msg *m, const char **err)
{
	assert_true(n < sizeof(line_buf));
	memcpy(line_buf, s, n);
	line_buf[n] = 'X'; /* not a NUL: the parser must not rely on one */
	*err = NULL;
	return irc_parse(line_buf, n, m, err);
}

static int parse(const char *s, struct irc_msg *m, const char **err)
{
	return parse_n(s, strlen(s), m, err);
}

static void expect_error(const char *s, size_t n, const char *reason)
{
	struct irc_msg m;
	const char *err;

	if (parse_n(s, n, &m, &err) != -1)
		fail_msg("parsed '%.*s'", (int)(n > 60 ? 60 : n), s);
	assert_string_equal(err, reason);
}

static void test_parse_plain(void **state)
{
	struct irc_msg m;
	const char *err;

	assert_int_equal(parse("privmsg #room :hello there", &m, &err), 0);
	assert_null(m.tags);
	assert_null(m.prefix);
	assert_string_equal(m.command, "PRIVMSG");
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[0], "#room");
	assert_string_equal(m.params[1], "hello there");
	assert_true(m.trailing);

	assert_int_equal(parse("PING", &m, &err), 0);
	assert_string_equal(m.command, "PING");
	assert_int_equal(m.nparams, 0);
	assert_false(m.trailing);

	assert_int_equal(parse("NICK alice", &m, &err), 0);
	assert_int_equal(m.nparams, 1);
	assert_string_equal(m.params[0], "alice");
	assert_false(m.trailing);
}

static void test_parse_tags_prefix(void **state)
{
	struct irc_msg m;
	const char *err;

	assert_int_equal(
		parse("@time=2024-01-01T00:00:00Z;+x=y :nick!u@h PrivMsg #a :hi", &m, &err), 0);
	assert_string_equal(m.tags, "time=2024-01-01T00:00:00Z;+x=y");
	assert_string_equal(m.prefix, "nick!u@h");
	assert_string_equal(m.command, "PRIVMSG");
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[1], "hi");

	assert_int_equal(parse(":server 001 alice :Welcome", &m, &err), 0);
	assert_null(m.tags);
	assert_string_equal(m.prefix, "server");
	assert_string_equal(m.command, "001");
	assert_int_equal(m.nparams, 2);

	assert_int_equal(parse("@a QUIT", &m, &err), 0);
	assert_string_equal(m.tags, "a");
	assert_null(m.prefix);
	assert_string_equal(m.command, "QUIT");
}

static void test_parse_spaces(void **state)
{
	struct irc_msg m;
	const char *err;

	assert_int_equal(parse("   :pfx    MODE   #c   +o    bob   ", &m, &err), 0);
	assert_string_equal(m.prefix, "pfx");
	assert_string_equal(m.command, "MODE");
	assert_int_equal(m.nparams, 3);
	assert_string_equal(m.params[0], "#c");
	assert_string_equal(m.params[1], "+o");
	assert_string_equal(m.params[2], "bob");
	assert_false(m.trailing);

	/* the trailing parameter keeps its spaces, and its colons */
	assert_int_equal(parse("PRIVMSG  #c   :  two  spaces : x  ", &m, &err), 0);
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[1], "  two  spaces : x  ");

	/* an empty trailing parameter is a parameter */
	assert_int_equal(parse("TOPIC #c :", &m, &err), 0);
	assert_int_equal(m.nparams, 2);
	assert_string_equal(m.params[1], "");
	assert_true(m.trailing);

	/* a colon inside a middle parameter is part of it */
	assert_int_equal(parse("X a:b :c", &m, &err), 0);
	assert_string_equal(m.params[0], "a:b");
	assert_string_equal(m.params[1], "c");
}

static void test_parse_many_params(void **state)
{
	struct irc_msg m;
	const char *err;

	assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", &m, &err), 0);
	assert_int_equal(m.nparams, 15);
	assert_string_equal(m.params[14], "15");
	assert_false(m.trailing);

	/* the 15th takes the rest of the line, spaces and all */
	assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16  17 ", &m, &err), 0);
	assert_int_equal(m.nparams, 15);
	assert_string_equal(m.params[13], "14");
	assert_string_equal(m.params[14], "15 16  17 ");
	assert_false(m.trailing);

	assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 14 :15 16", &m, &err), 0);
	assert_int_equal(m.nparams, 15);
	assert_string_equal(m.params[14], "15 16");
	assert_true(m.trailing);

	assert_int_equal(parse("X 1 2 3 4 5 6 7 8 9 10 11 12 13 :14 15 16", &m, &err), 0);
	assert_int_equal(m.nparams, 14);
	assert_string_equal(m.params[13], "14 15 16");
}

static void test_parse_commands(void **state)
{
	struct irc_msg m;
	const char *err;

	assert_int_equal(parse("433 * bob :in use", &m, &err), 0);
	assert_string_equal(m.command, "433");
	assert_int_equal(parse("who", &m, &err), 0);
	assert_string_equal(m.command, "WHO");

	expect_error("12 x", 4, "bad command");
	expect_error("1234 x", 6, "bad command");
	expect_error("12a x", 5, "bad command");
	expect_error("PRIV_MSG x", 10, "bad command");
	expect_error("PRIVMSG1 x", 10, "bad command");
	expect_error("\xc3\xa9T x", 5, "bad command");
	expect_error(":pfx :x", 7, "bad command");
	expect_error(":pfx", 4, "no command");
	expect_error(":pfx   ", 7, "no command");
	expect_error("@a=b", 4, "no command");
	expect_error("@a=b   ", 7, "no command");
	expect_error("@a=b :pfx", 9, "no command");
	expect_error("", 0, "empty line");
	expect_error("    ", 4, "empty line");
	expect_error("PING\0x", 6, "NUL in line");
	expect_error("\0", 1, "NUL in line");
	expect_error("@a=\0 PING", 9, "NUL in line");
}

static void test_parse_limits(void **state)
{
	static char s[IRC_TAGS_MAX + IRC_LINE_MAX + 16];
	struct irc_msg m;
	const char *err;
	size_t body = IRC_LINE_MAX - 2, n;

	/* the line without tags: 510 bytes pass, 511 do not */
	memset(s, 'a', sizeof(s));
	memcpy(s, "PRIVMSG #c :", 12);
	assert_int_equal(parse_n(s, body, &m, &err), 0);
	assert_int_equal(strlen(m.params[1]), body - 12);
	expect_error(s, body + 1, "line too long");

	/* the tags: '@' to the space, both counted, 8191 bytes pass, 8192 do not */
	s[0] = '@';
	memset(s + 1, 'k', IRC_TAGS_MAX - 2);
	s[IRC_TAGS_MAX - 1] = ' ';
	memcpy(s + IRC_TAGS_MAX, "PRIVMSG #c :", 12);
	memset(s + IRC_TAGS_MAX + 12, 'a', body - 12);
	n = IRC_TAGS_MAX + body;
	assert_int_equal(parse_n(s, n, &m, &err), 0);
	assert_int_equal(strlen(m.tags), IRC_TAGS_MAX - 2);
	assert_int_equal(strlen(m.params[1]), body - 12);
	/* and the rest is still bounded by itself */
	expect_error(s, n + 1, "line too long");

	memset(s + 1, 'k', IRC_TAGS_MAX - 1);
	s[IRC_TAGS_MAX] = ' ';
	memcpy(s + IRC_TAGS_MAX + 1, "PING", 4);
	expect_error(s, IRC_TAGS_MAX + 5, "tags too long");
	/* tags without an end are too long too, when they are */
	expect_error(s, IRC_TAGS_MAX + 1, "tags too long");
}

static void test_tag_get(void **state)
{
	const char *tags = "a=1;b;c=;esc=x\\:y\\sz\\\\w\\r\\n;odd=\\q\\;lone=ab\\;+vendor.org/k=v;"
			   "dup=first;dup=last";
	char out[64];

	assert_int_equal(irc_tag_get(tags, "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
	assert_int_equal(irc_tag_get(tags, "b", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(irc_tag_get(tags, "c", out, sizeof(out)), 1);
	assert_string_equal(out, "");
	assert_int_equal(irc_tag_get(tags, "esc", out, sizeof(out)), 1);
	assert_string_equal(out, "x;y z\\w\r\n");
	assert_int_equal(irc_tag_get(tags, "odd", out, sizeof(out)), 1);
	assert_string_equal(out, "q");
	assert_int_equal(irc_tag_get(tags, "lone", out, sizeof(out)), 1);
	assert_string_equal(out, "ab");
	assert_int_equal(irc_tag_get(tags, "+vendor.org/k", out, sizeof(out)), 1);
	assert_string_equal(out, "v");
	assert_int_equal(irc_tag_get(tags, "dup", out, sizeof(out)), 1);
	assert_string_equal(out, "last");

	strcpy(out, "untouched");
	assert_int_equal(irc_tag_get(tags, "d", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get(tags, "es", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get(tags, "esc=", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get(tags, "", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get("", "a", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get(NULL, "a", out, sizeof(out)), 0);
	assert_int_equal(irc_tag_get(";;a=2;", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "2");

	/* cut to outlen - 1, an escape never half written */
	assert_int_equal(irc_tag_get("k=abcdef", "k", out, 4), 1);
	assert_string_equal(out, "abc");
	assert_int_equal(irc_tag_get("k=\\s\\s\\s\\s", "k", out, 3), 1);
	assert_string_equal(out, "  ");
	assert_int_equal(irc_tag_get("k=abc", "k", out, 1), 1);
	assert_string_equal(out, "");
	assert_int_equal(irc_tag_get("k=abc", "k", NULL, 0), 1);
	/* a value that holds '=' */
	assert_int_equal(irc_tag_get("k=a=b", "k", out, sizeof(out)), 1);
	assert_string_equal(out, "a=b");
}

/* Formats, checks the CR LF ending and the bound, and returns the line
 * (static). */
static const char *format(const char *prefix, const char *command, const char *const *params,
			  unsigned n, bool trailing, size_t *outlen)
{
	static char s[IRC_LINE_MAX + 1];
	struct buf b = {0};
	size_t len = irc_format(&b, prefix, command, params, n, trailing);

	assert_int_equal(len, b.len);
	assert_true(len >= 2 && len <= IRC_LINE_MAX);
	memcpy(s, buf_head(&b), len);
	s[len] = '\0';
	assert_string_equal(s + len - 2, "\r\n");
	assert_null(memchr(s, '\r', len - 2));
	assert_null(memchr(s, '\n', len - 2));
	buf_free(&b);
	if (outlen != NULL)
		*outlen = len;
	return s;
}

static void test_format_colon_rule(void **state)
{
	const char *p1[] = {"#c", "hello"};
	const char *p2[] = {"#c", "two words"};
	const char *p3[] = {"#c", ""};
	const char *p4[] = {"#c", ":smile"};
	const char *p5[] = {"alice"};

	assert_string_equal(format("srv", "PRIVMSG", p1, 2, false, NULL),
			    ":srv PRIVMSG #c hello\r\n");
	assert_string_equal(format("srv", "PRIVMSG", p1, 2, true, NULL),
			    ":srv PRIVMSG #c :hello\r\n");
	assert_string_equal(format(NULL, "PRIVMSG", p2, 2, false, NULL),
			    "PRIVMSG #c :two words\r\n");
	assert_string_equal(format(NULL, "TOPIC", p3, 2, false, NULL), "TOPIC #c :\r\n");
	assert_string_equal(format(NULL, "PRIVMSG", p4, 2, false, NULL), "PRIVMSG #c ::smile\r\n");
	assert_string_equal(format("a!b@c", "NICK", p5, 1, false, NULL), ":a!b@c NICK alice\r\n");
	assert_string_equal(format(NULL, "PING", NULL, 0, true, NULL), "PING\r\n");
}

static void test_format_injection(void **state)
{
	const char *p[] = {"#c", "hi\r\nQUIT :bye\nx\ry"};
	const char *s = format(NULL, "PRIVMSG", p, 2, false, NULL);

	assert_string_equal(s, "PRIVMSG #c :hi  QUIT :bye x y\r\n");
	/* in the prefix and command too */
	p[1] = "ok";
	s = format("evil\r\nKILL", "PRIVMSG", p, 2, false, NULL);
	assert_string_equal(s, ":evil  KILL PRIVMSG #c ok\r\n");
}

static void test_format_round_trip(void **state)
{
	const char *const cases[][4] = {
		{"#c", "hello world", NULL},	  {"#c", "", NULL},   {"#c", ":x", NULL},
		{"a", "b", "  lead and trail  "}, {"*", "one", NULL},
	};
	char copy[IRC_LINE_MAX + 1];
	struct irc_msg m;
	const char *err;
	size_t len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned n = 0;

		while (n < 4 && cases[i][n] != NULL)
			n++;
		for (int tr = 0; tr < 2; tr++) {
			const char *s = format("pfx", "NOTICE", cases[i], n, tr, &len);

			memcpy(copy, s, len - 2);
			assert_int_equal(irc_parse(copy, len - 2, &m, &err), 0);
			assert_string_equal(m.prefix, "pfx");
			assert_string_equal(m.command, "NOTICE");
			assert_int_equal(m.nparams, n);
			for (unsigned j = 0; j < n; j++)
				assert_string_equal(m.params[j], cases[i][j]);
		}
	}
}

static void test_format_truncation(void **state)
{
	static char text[2000];
	const char *p[] = {"#c", text};
	const char *s;
	size_t len, head = strlen("PRIVMSG #c :");

	/* exactly fits: 510 bytes and CR LF */
	memset(text, 'a', sizeof(text));
	text[IRC_LINE_MAX - 2 - head] = '\0';
	s = format(NULL, "PRIVMSG", p, 2, true, &len);
	assert_int_equal(len, IRC_LINE_MAX);
	/* one more is cut, CR LF kept */
	text[IRC_LINE_MAX - 2 - head] = 'b';
	text[IRC_LINE_MAX - 1 - head] = '\0';
	s = format(NULL, "PRIVMSG", p, 2, true, &len);
	assert_int_equal(len, IRC_LINE_MAX);
	assert_int_equal(s[IRC_LINE_MAX - 3], 'a');

	/* a character across the cut is left out whole */
	for (size_t off = 0; off < 4; off++) {
		static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};

		for (size_t c = 0; c < 3; c++) {
			size_t clen = strlen(chars[c]), start = IRC_LINE_MAX - 2 - head - off;

			memset(text, 'a', sizeof(text));
			memcpy(text + start, chars[c], clen);
			text[start + clen + 5] = '\0';
			s = format(NULL, "PRIVMSG", p, 2, true, &len);
			if (off >= clen) {
				/* the character fits before the cut */
				assert_int_equal(len, IRC_LINE_MAX);
				assert_memory_equal(s + head + start, chars[c], clen);
			} else {
				assert_int_equal(len, head + start + 2);
			}
			assert_string_equal(s + len - 2, "\r\n");
		}
	}
	/* not UTF-8 at all: continuation bytes only, the plain cut stands */
	memset(text, 0x80, sizeof(text));
	text[sizeof(text) - 1] = '\0';
	s = format(NULL, "PRIVMSG", p, 2, true, &len);
	assert_int_equal(len, IRC_LINE_MAX);
	/* a huge prefix is cut as well */
	memset(text, 'p', sizeof(text));
	text[sizeof(text) - 1] = '\0';
	s = format(text, "PING", NULL, 0, false, &len);
	assert_int_equal(len, IRC_LINE_MAX);
}

/* Feeds the whole of p in pieces cut at a and b (a <= b), and records each
 * result: "OK:<line>" or "LONG", joined by '|'. */
static void feed_split(const char *p, size_t n, size_t a, size_t b, size_t max, char *rec,
		       size_t reclen)
{
	struct irc_lines l;
	size_t cuts[3] = {a, b, n}, from = 0;

	irc_lines_init(&l, max);
	rec[0] = '\0';
	for (int i = 0; i < 3; i++) {
		while (from < cuts[i]) {
			size_t used = 0, len;
			char *line;
			enum irc_line_result r =
				irc_lines_feed(&l, p + from, cuts[i] - from, &used, &line, &len);

			assert_true(used > 0 && used <= cuts[i] - from);
			from += used;
			if (r == IRC_LINE_OK) {
				assert_int_equal(line[len], '\0');
				assert_true(len <= max);
				snprintf(rec + strlen(rec), reclen - strlen(rec), "OK:%.*s|",
					 (int)len, line);
			} else if (r == IRC_LINE_TOO_LONG) {
				snprintf(rec + strlen(rec), reclen - strlen(rec), "LONG|");
			} else {
				assert_int_equal(from, cuts[i]);
			}
			assert_true(l.acc.len <= max + 1);
		}
	}
	irc_lines_free(&l);
}

static void test_lines_every_split(void **state)
{
	static const struct {
		const char *in;
		const char *want;
	} cases[] = {
		{"NICK a\r\nUSER b 0 * :c d\r\n", "OK:NICK a|OK:USER b 0 * :c d|"},
		{"PING 1\nPING 2\n\nPING 3", "OK:PING 1|OK:PING 2|OK:|"},
		{"A\r\r\nB\rC\n", "OK:A\r|OK:B\rC|"},
		/* max is 16: 17 bytes are too long, 16 with a CR are not */
		{"12345678901234567\r\nok\r\n", "LONG|OK:ok|"},
		{"1234567890123456\r\nok\n", "OK:1234567890123456|OK:ok|"},
		{"123456789012345678901234567890\nok\n", "LONG|OK:ok|"},
		{"123456789012345678901234567890\r\n12345678901234567\nx\r\n", "LONG|LONG|OK:x|"},
		{"\r\n\n", "OK:|OK:|"},
	};
	char want[256], got[256];

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t n = strlen(cases[c].in);

		snprintf(want, sizeof(want), "%s", cases[c].want);
		for (size_t a = 0; a <= n; a++) {
			for (size_t b = a; b <= n; b++) {
				feed_split(cases[c].in, n, a, b, 16, got, sizeof(got));
				if (strcmp(got, want) != 0)
					fail_msg("case %zu cut %zu/%zu: got '%s' want '%s'", c, a,
						 b, got, want);
			}
		}
	}
}

static void test_lines_one_call_per_line(void **state)
{
	struct irc_lines l;
	const char *in = "A\nB\nCC";
	size_t used, len;
	char *line;

	irc_lines_init(&l, 16);
	assert_int_equal(irc_lines_feed(&l, in, 6, &used, &line, &len), IRC_LINE_OK);
	assert_int_equal(used, 2);
	assert_string_equal(line, "A");
	assert_int_equal(irc_lines_feed(&l, in + 2, 4, &used, &line, &len), IRC_LINE_OK);
	assert_int_equal(used, 2);
	assert_string_equal(line, "B");
	assert_int_equal(irc_lines_feed(&l, in + 4, 2, &used, &line, &len), IRC_LINE_MORE);
	assert_int_equal(used, 2);
	assert_int_equal(irc_lines_feed(&l, "\r\n", 2, &used, &line, &len), IRC_LINE_OK);
	assert_string_equal(line, "CC");
	assert_int_equal(len, 2);
	irc_lines_free(&l);
	irc_lines_free(&l);

	/* a too-long line reported once however many pieces it comes in */
	irc_lines_init(&l, 4);
	assert_int_equal(irc_lines_feed(&l, "abcdef", 6, &used, &line, &len), IRC_LINE_TOO_LONG);
	for (int i = 0; i < 5; i++)
		assert_int_equal(irc_lines_feed(&l, "ghij", 4, &used, &line, &len), IRC_LINE_MORE);
	assert_int_equal(irc_lines_feed(&l, "k\nPING\n", 7, &used, &line, &len), IRC_LINE_OK);
	assert_int_equal(used, 7);
	assert_string_equal(line, "PING");
	irc_lines_free(&l);
}

static void test_nick_rules(void **state)
{
	static const char *const good[] = {"a",
					   "Alice",
					   "[bot]",
					   "\\o",
					   "`x",
					   "_x_",
					   "^^",
					   "{a}",
					   "|",
					   "x-1",
					   "a1234567890123456789012345678a"};
	static const char *const bad[] = {"",	  "1abc",  "-x",
					  "a b",  "a,b",   "a!b",
					  "a@b",  "#chan", "\xc3\xa9t\xc3\xa9",
					  "a.b",  "a:b",   "a1234567890123456789012345678ab",
					  "a\tb", "*"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!irc_nick_valid(good[i]))
			fail_msg("rejected nick '%s'", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (irc_nick_valid(bad[i]))
			fail_msg("accepted nick '%s'", bad[i]);
	}
	assert_false(irc_nick_valid(NULL));
}

static void test_channel_rules(void **state)
{
	static const char *const good[] = {"#a",
					   "&local",
					   "#caf\xc3\xa9",
					   "#\xe2\x82\xac\xf0\x9f\x98\x80",
					   "#a.b-c_d[]{}",
					   "##",
					   "#1234567890123456789012345678901234567890123456789"};
	static const char *const bad[] = {
		"",
		"#",
		"a",
		"+modeless",
		"!abcde",
		"# a",
		"#a,b",
		"#a\x07",
		"#a:b",
		"#a\x01",
		"#a\x7f",
		"#a\xc2\x85", /* C1 control NEL */
		"#\xc3",
		"#\xc3(",
		"#\xc0\xaf",	     /* overlong '/' */
		"#\xed\xa0\x80",     /* surrogate */
		"#\xf4\x90\x80\x80", /* above U+10FFFF */
		"#\x80",
		"#12345678901234567890123456789012345678901234567890",
		"#a\tb",
	};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!irc_channel_valid(good[i]))
			fail_msg("rejected channel '%s'", good[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (irc_channel_valid(bad[i]))
			fail_msg("accepted channel '%s'", bad[i]);
	}
	assert_false(irc_channel_valid(NULL));
}

static void test_case_mapping(void **state)
{
	char out[32];

	irc_casefold(out, "Nick[]\\~", sizeof(out));
	assert_string_equal(out, "nick{}|^");
	assert_int_equal(irc_casecmp("Nick[]\\~", "nick{}|^"), 0);
	assert_int_equal(irc_casecmp("NICK[1]", "nick{1}"), 0);
	assert_true(irc_casecmp("a", "b") < 0);
	assert_true(irc_casecmp("b", "A") > 0);
	assert_true(irc_casecmp("nick", "nicky") < 0);
	assert_true(irc_casecmp("nicky", "NICK") > 0);
	assert_true(irc_casecmp("\xc3\x89", "\xc3\xa9") != 0); /* only ASCII folds */
	/* '_' and '^' are different letters under rfc1459 */
	assert_true(irc_casecmp("a_", "a^") != 0);

	irc_casefold(out, "ABCDEF", 4);
	assert_string_equal(out, "abc");
	out[0] = 'z';
	irc_casefold(out, "ABC", 0);
	assert_int_equal(out[0], 'z');
	irc_casefold(out, "", sizeof(out));
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_plain),
		cmocka_unit_test(test_parse_tags_prefix),
		cmocka_unit_test(test_parse_spaces),
		cmocka_unit_test(test_parse_many_params),
		cmocka_unit_test(test_parse_commands),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_tag_get),
		cmocka_unit_test(test_format_colon_rule),
		cmocka_unit_test(test_format_injection),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_format_truncation),
		cmocka_unit_test(test_lines_every_split),
		cmocka_unit_test(test_lines_one_call_per_line),
		cmocka_unit_test(test_nick_rules),
		cmocka_unit_test(test_channel_rules),
		cmocka_unit_test(test_case_mapping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
