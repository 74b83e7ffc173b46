/* Fuzz target for chat/irc: lines as a client sends them. What parses is formatted back
 * and parsed again, and its tags are read; the line splitter must give the same lines
 * however the stream is cut and whether or not it is trimmed between reads; irc_format on
 * pieces of the input writes what the rules say, cut on a character boundary; the name
 * rules and the case mapping hold for the input and every parameter.
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line through the same checks. */
#include <stdbool.h>

#include "chat/irc.h"
#include "common.h"
#include "core/buf.h"

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
static void split(const uint8_t *data, size_t size, size_t max, const size_t *cuts, size_t ncuts,
		  bool trim, struct buf *rec)
{
	struct irc_lines l;
	size_t from = 0;

	irc_lines_init(&l, max);
	for (size_t i = 0; i < ncuts; i++) {
		if (trim && i > 0) {
			irc_lines_trim(&l);
			check(l.ready == false);
			check(l.acc.len > 0 || l.acc.data == NULL);
		}
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
	struct buf one = {0}, two = {0}, every = {0};
	size_t max, cuts[2], *each;

	if (size < 2)
		return;
	max = 1 + data[0] % 64;
	if (data[0] & 0x80)
		max = IRC_LINE_MAX + IRC_TAGS_MAX;
	cuts[0] = (data[1] * 131u + data[size - 1]) % (size + 1);
	cuts[1] = size;
	split(data, size, max, cuts + 1, 1, false, &one);
	split(data, size, max, cuts, 2, true, &two);
	check(one.len == two.len);
	check(one.len == 0 || memcmp(buf_head(&one), buf_head(&two), one.len) == 0);
	each = malloc(size * sizeof(*each));
	check(each != NULL);
	for (size_t i = 0; i < size; i++)
		each[i] = i + 1;
	split(data, size, max, each, size, (data[1] & 1) != 0, &every);
	check(one.len == every.len);
	check(one.len == 0 || memcmp(buf_head(&one), buf_head(&every), one.len) == 0);
	free(each);
	buf_free(&one);
	buf_free(&two);
	buf_free(&every);
}

/* irc_format on pieces of the input split at NUL bytes: prefix (none when empty), command,
 * parameters; the first byte says whether the last is trailing. Parameters other than the
 * last are made what the caller must give (non-empty, no space, no leading ':'). The line
 * is exactly what the rules say when it fits, and otherwise cut at 510 bytes or up to three
 * before, never inside a UTF-8 character. */
static void check_format(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data + 1, size - 1, 1), *piece[2 + IRC_PARAMS_MAX];
	const char *params[IRC_PARAMS_MAX];
	struct buf out = {0}, want = {0};
	size_t n = 0, len, cut;
	bool trailing = data[0] & 1;
	const uint8_t *o, *w;

	s[size - 1] = '\0';
	for (char *p = s; n < 2 + IRC_PARAMS_MAX; p += strlen(p) + 1) {
		piece[n++] = p;
		if (p + strlen(p) >= s + size - 1)
			break;
	}
	if (n < 2 || piece[1][0] == '\0')
		goto out;
	for (size_t i = 2; i + 1 < n; i++) {
		char *p = piece[i];

		if (p[0] == '\0' || p[0] == ':')
			p = piece[i] = (char *)"x";
		for (; *p != '\0'; p++)
			if (*p == ' ')
				*p = '_';
	}
	for (size_t i = 2; i < n; i++)
		params[i - 2] = piece[i];
	len = irc_format(&out, piece[0][0] ? piece[0] : NULL, piece[1], params, (unsigned)(n - 2),
			 trailing);
	check(len == out.len && len >= 2 && len <= IRC_LINE_MAX);
	o = buf_head(&out);
	check(o[len - 2] == '\r' && o[len - 1] == '\n');
	check(memchr(o, '\r', len - 2) == NULL && memchr(o, '\n', len - 2) == NULL);
	/* the line the rules give, uncut */
	if (piece[0][0]) {
		buf_append(&want, ":", 1);
		buf_append(&want, piece[0], strlen(piece[0]));
		buf_append(&want, " ", 1);
	}
	buf_append(&want, piece[1], strlen(piece[1]));
	for (size_t i = 2; i < n; i++) {
		const char *p = piece[i];

		buf_append(&want, " ", 1);
		if (i == n - 1 && (trailing || p[0] == '\0' || p[0] == ':' || strchr(p, ' ')))
			buf_append(&want, ":", 1);
		buf_append(&want, p, strlen(p));
	}
	w = buf_head(&want);
	for (size_t i = 0; i < want.len; i++)
		if (w[i] == '\r' || w[i] == '\n')
			((uint8_t *)w)[i] = ' ';
	cut = len - 2;
	if (want.len <= IRC_LINE_MAX - 2) {
		check(cut == want.len);
	} else {
		check(cut >= IRC_LINE_MAX - 2 - 3 && cut <= IRC_LINE_MAX - 2);
		/* only a character's earlier bytes are left out with it */
		for (size_t i = cut; i < IRC_LINE_MAX - 2; i++)
			check((w[i + 1] & 0xc0) == 0x80);
		if (utf8_valid(w, want.len))
			check(utf8_valid(o, cut));
	}
	check(cut == 0 || memcmp(o, w, cut) == 0);
out:
	buf_free(&out);
	buf_free(&want);
	free(s);
}

/* A name's rules, and the case mapping: folding twice is folding once, equal names fold
 * alike, and comparing is antisymmetric. */
static void check_name(const char *s, const char *other)
{
	char f[128], ff[128], g[128];
	int a, b;

	if (irc_nick_valid(s))
		check(strlen(s) <= IRC_NICK_MAX && strpbrk(s, " ,:#") == NULL);
	if (irc_channel_valid(s))
		check((s[0] == '#' || s[0] == '&') && strlen(s) <= IRC_CHANNEL_MAX &&
		      strpbrk(s, " ,:\a") == NULL && utf8_valid((const uint8_t *)s, strlen(s)));
	f[0] = 'x';
	irc_casefold(f, s, 0); /* no room: nothing written */
	check(f[0] == 'x');
	irc_casefold(f, s, sizeof(f));
	check(strlen(f) == (strlen(s) < sizeof(f) ? strlen(s) : sizeof(f) - 1));
	irc_casefold(ff, f, sizeof(ff));
	check(strcmp(f, ff) == 0);
	if (strlen(s) < sizeof(f))
		check(irc_casecmp(s, f) == 0);
	a = irc_casecmp(s, other);
	b = irc_casecmp(other, s);
	check((a < 0 && b > 0) || (a > 0 && b < 0) || (a == 0 && b == 0));
	irc_casefold(g, other, sizeof(g));
	if (a == 0 && strlen(s) < sizeof(f) && strlen(other) < sizeof(g))
		check(strcmp(f, g) == 0);
}

static void check_names(const uint8_t *data, size_t size)
{
	char s[128], t[128];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1, h = n / 2;

	memcpy(s, data, n);
	s[n] = '\0';
	memcpy(t, data + h, n - h);
	t[n - h] = '\0';
	check_name(s, t);
}

/* Every tag of the line: found, and a short buffer gets a prefix of the value. */
static void check_tags(const char *tags)
{
	for (const char *p = tags; *p != '\0';) {
		size_t tlen = strcspn(p, ";"), k = strcspn(p, "=;");
		char key[64], big[600], small[4];

		if (k > 0 && k < sizeof(key)) {
			memcpy(key, p, k);
			key[k] = '\0';
			check(irc_tag_get(tags, key, big, sizeof(big)) == 1);
			check(strlen(big) < sizeof(big) && strlen(big) <= strlen(tags));
			check(irc_tag_get(tags, key, small, sizeof(small)) == 1);
			check(strncmp(small, big, sizeof(small) - 1) == 0);
		}
		p += tlen;
		if (*p == ';')
			p++;
	}
	check(irc_tag_get(tags, "", NULL, 0) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct irc_msg m;
	char *copy;
	int rc;

	copy = parse_copy(data, size, &m, &rc);
	if (rc == 0) {
		check_round_trip(data, size, &m);
		if (m.tags != NULL)
			check_tags(m.tags);
		for (unsigned i = 0; i < m.nparams; i++)
			check_name(m.params[i], m.command);
	}
	free(copy);
	check_splitter(data, size);
	check_names(data, size);
	if (size >= 1)
		check_format(data, size);
	return 0;
}
