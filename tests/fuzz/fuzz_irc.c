/* Fuzz target for chat/irc: lines as a client sends them. What parses is formatted back
 * and parsed again; the line splitter must give the same lines however the stream is cut.
 * Built by `make fuzz`; with -DFUZZ_STANDALONE it is a plain program that runs the files
 * named on its command line through the same checks. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/irc.h"
#include "core/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Parses a heap copy of exactly len bytes and the spare byte, so overreads are caught. */
static char *parse_copy(const void *p, size_t len, struct irc_msg *m, int *rc)
{
	char *s = malloc(len + 1);
	const char *err = NULL;

	check(s != NULL);
	if (len)
		memcpy(s, p, len);
	*rc = irc_parse(s, len, m, &err);
	check(*rc == 0 || (*rc == -1 && err != NULL));
	return s;
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* The length irc_format should write before CR LF, with no cut. */
static size_t format_len(const struct irc_msg *m)
{
	size_t n = strlen(m->command);

	if (m->prefix != NULL)
		n += strlen(m->prefix) + 2;
	for (unsigned i = 0; i < m->nparams; i++) {
		const char *p = m->params[i];

		n += 1 + strlen(p);
		if (i == m->nparams - 1 &&
		    (m->trailing || p[0] == '\0' || p[0] == ':' || strchr(p, ' ') != NULL))
			n++;
	}
	return n;
}

static void check_round_trip(const uint8_t *data, size_t size, const struct irc_msg *m)
{
	struct buf out = {0};
	struct irc_msg m2;
	size_t len, want = format_len(m);
	bool crlf = memchr(data, '\r', size) != NULL || memchr(data, '\n', size) != NULL;
	char *copy;
	int rc;

	check(m->nparams <= IRC_PARAMS_MAX);
	check(m->command != NULL && m->command[0] != '\0');
	len = irc_format(&out, m->prefix, m->command, (const char *const *)m->params, m->nparams,
			 m->trailing);
	check(len == out.len && len >= 2 && len <= IRC_LINE_MAX);
	check(memcmp(buf_head(&out) + len - 2, "\r\n", 2) == 0);
	check(memchr(buf_head(&out), '\r', len - 2) == NULL);
	check(memchr(buf_head(&out), '\n', len - 2) == NULL);
	if (want <= IRC_LINE_MAX - 2)
		check(len == want + 2);
	else
		check(len > IRC_LINE_MAX - 2 - 4);
	if (crlf || want > IRC_LINE_MAX - 2) {
		buf_free(&out);
		return;
	}
	copy = parse_copy(buf_head(&out), len - 2, &m2, &rc);
	check(rc == 0);
	check(str_eq(m->prefix, m2.prefix));
	check(strcmp(m->command, m2.command) == 0);
	check(m->nparams == m2.nparams);
	for (unsigned i = 0; i < m->nparams; i++)
		check(strcmp(m->params[i], m2.params[i]) == 0);
	if (m->trailing)
		check(m2.trailing);
	free(copy);
	buf_free(&out);
}

/* Runs the splitter over data cut at the given points, and appends to rec one record per
 * result: 'O', the length (8 bytes) and the line, or 'L' for a line too long. */
static void split(const uint8_t *data, size_t size, size_t max, const size_t *cuts, int ncuts,
		  struct buf *rec)
{
	struct irc_lines l;
	size_t from = 0;

	irc_lines_init(&l, max);
	for (int i = 0; i < ncuts; i++) {
		while (from < cuts[i]) {
			size_t used = 0, len = 0;
			char *line = NULL;
			enum irc_line_result r = irc_lines_feed(&l, (const char *)data + from,
								cuts[i] - from, &used, &line, &len);

			check(used > 0 && used <= cuts[i] - from);
			from += used;
			check(l.acc.len <= max + 1);
			if (r == IRC_LINE_OK) {
				check(len <= max && line[len] == '\0');
				check(memchr(line, '\n', len) == NULL);
				buf_append(rec, "O", 1);
				buf_append(rec, &len, sizeof(len));
				buf_append(rec, line, len);
			} else if (r == IRC_LINE_TOO_LONG) {
				buf_append(rec, "L", 1);
			} else {
				check(r == IRC_LINE_MORE && from == cuts[i]);
			}
		}
	}
	irc_lines_free(&l);
}

static void check_splitter(const uint8_t *data, size_t size)
{
	struct buf one = {0}, two = {0};
	size_t max, cuts[2];

	if (size < 2)
		return;
	max = 1 + data[0] % 64;
	cuts[0] = (data[1] * 131u + data[size - 1]) % (size + 1);
	cuts[1] = size;
	split(data, size, max, cuts + 1, 1, &one);
	split(data, size, max, cuts, 2, &two);
	check(one.len == two.len);
	check(one.len == 0 || memcmp(buf_head(&one), buf_head(&two), one.len) == 0);
	buf_free(&one);
	buf_free(&two);
}

static void check_names(const uint8_t *data, size_t size)
{
	char s[128], f[128];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;

	memcpy(s, data, n);
	s[n] = '\0';
	(void)irc_nick_valid(s);
	(void)irc_channel_valid(s);
	irc_casefold(f, s, sizeof(f));
	check(irc_casecmp(s, f) == 0);
	check(strlen(f) == strlen(s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct irc_msg m;
	char *copy;
	int rc;

	copy = parse_copy(data, size, &m, &rc);
	if (rc == 0) {
		check_round_trip(data, size, &m);
		if (m.tags != NULL) {
			char key[64], out[16];
			size_t k = strcspn(m.tags, "=;");

			if (k > 0 && k < sizeof(key)) {
				memcpy(key, m.tags, k);
				key[k] = '\0';
				check(irc_tag_get(m.tags, key, out, sizeof(out)) == 1);
				check(strlen(out) < sizeof(out));
			}
		}
	}
	free(copy);
	check_splitter(data, size);
	check_names(data, size);
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
