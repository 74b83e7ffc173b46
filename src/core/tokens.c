/* Admin token files: one bare token, or labelled lines (core/tokens.h). */
#include "core/tokens.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/secret.h"
#include "core/xalloc.h"

static bool tokens_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool tokens_label_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* One line's parts: label[0..llen) (llen 0: a bare token) and tok[0..tlen). */
struct tokens_line {
	const char *label, *tok;
	size_t llen, tlen;
	unsigned no;
};

/* Checks line's token; fills err naming where ("'path'" or "'path' line N"). */
static int tokens_check(const char *path, const struct tokens_line *l, bool bare, size_t min,
			size_t max, char *err, size_t errlen)
{
	char where[64];

	if (bare)
		snprintf(where, sizeof(where), "%s", "");
	else
		snprintf(where, sizeof(where), " line %u", l->no);
	if (!bare && (l->llen > TOKENS_LABEL_MAX)) {
		snprintf(err, errlen, "'%s'%s: a label is 1 to %d characters", path, where,
			 TOKENS_LABEL_MAX);
		return -1;
	}
	for (size_t i = 0; i < l->llen; i++) {
		if (!tokens_label_char(l->label[i])) {
			snprintf(err, errlen, "'%s'%s: a label holds only A-Z a-z 0-9 . _ -", path,
				 where);
			return -1;
		}
	}
	if (l->tlen < min || l->tlen > max) {
		snprintf(err, errlen, "'%s'%s: want a token of %zu to %zu characters", path, where,
			 min, max);
		return -1;
	}
	for (size_t i = 0; i < l->tlen; i++) {
		if (l->tok[i] <= ' ' || l->tok[i] > '~') {
			snprintf(err, errlen,
				 bare ? "'%s'%s: the token must be one line of printable ASCII "
					"without spaces"
				      : "'%s'%s: want LABEL TOKEN, the token printable ASCII "
					"without spaces",
				 path, where);
			return -1;
		}
	}
	return 0;
}

/* Splits text into its non-blank lines (at most TOKENS_MAX + 1 kept, to tell there are
 * more); returns how many, or -1 with err when there are more than TOKENS_MAX. */
static int tokens_lines(const char *path, const char *text, size_t len,
			struct tokens_line *lines, char *err, size_t errlen)
{
	size_t n = 0, a = 0;
	unsigned no = 0;

	while (a < len) {
		const char *nl = memchr(text + a, '\n', len - a);
		size_t e = nl != NULL ? (size_t)(nl - text) : len, b = a, s;
		struct tokens_line *l = &lines[n];

		no++;
		a = e + 1;
		while (b < e && tokens_space(text[b]))
			b++;
		while (e > b && tokens_space(text[e - 1]))
			e--;
		if (b == e)
			continue;
		if (n == TOKENS_MAX) {
			snprintf(err, errlen, "'%s': more than %d tokens", path, TOKENS_MAX);
			return -1;
		}
		for (s = b; s < e && !tokens_space(text[s]) && text[s] != '\0'; s++)
			;
		l->no = no;
		if (s == e || text[s] == '\0') { /* no white space: a bare token */
			l->label = NULL;
			l->llen = 0;
			l->tok = text + b;
			l->tlen = e - b;
		} else {
			l->label = text + b;
			l->llen = s - b;
			while (s < e && tokens_space(text[s]))
				s++;
			l->tok = text + s;
			l->tlen = e - s;
		}
		n++;
	}
	return (int)n;
}

/* Distinct labels and distinct tokens; 0 or -1 with err. */
static int tokens_distinct(const char *path, const struct tokens_line *lines, int n,
			   char *err, size_t errlen)
{
	for (int i = 1; i < n; i++) {
		for (int j = 0; j < i; j++) {
			if (lines[i].llen == lines[j].llen &&
			    memcmp(lines[i].label, lines[j].label, lines[i].llen) == 0) {
				snprintf(err, errlen, "'%s' line %u: the label of line %u again", path,
					 lines[i].no, lines[j].no);
				return -1;
			}
			if (lines[i].tlen == lines[j].tlen &&
			    CRYPTO_memcmp(lines[i].tok, lines[j].tok, lines[i].tlen) == 0) {
				snprintf(err, errlen, "'%s' line %u: the token of line %u again", path,
					 lines[i].no, lines[j].no);
				return -1;
			}
		}
	}
	return 0;
}

struct tokens *tokens_parse(const char *path, const char *text, size_t len, size_t min,
			    size_t max, char *err, size_t errlen)
{
	struct tokens_line lines[TOKENS_MAX];
	struct tokens *t;
	int n = tokens_lines(path, text, len, lines, err, errlen);

	if (n == -1)
		return NULL;
	if (n == 0) {
		snprintf(err, errlen, "'%s': want a token of %zu to %zu characters", path, min, max);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		bool bare = lines[i].llen == 0;

		if (bare && n > 1) {
			snprintf(err, errlen, "'%s' line %u: want LABEL TOKEN (a bare token only "
					      "alone in the file)", path, lines[i].no);
			return NULL;
		}
		if (tokens_check(path, &lines[i], bare, min, max, err, errlen) == -1)
			return NULL;
	}
	if (tokens_distinct(path, lines, n, err, errlen) == -1)
		return NULL;
	t = xcalloc(1, sizeof(*t) + (size_t)n * sizeof(t->t[0]));
	t->n = (size_t)n;
	for (int i = 0; i < n; i++) {
		struct token *k = &t->t[i];

		if (lines[i].llen == 0)
			snprintf(k->label, sizeof(k->label), "%s", TOKENS_BARE_LABEL);
		else
			memcpy(k->label, lines[i].label, lines[i].llen);
		k->secret = xstrndup(lines[i].tok, lines[i].tlen);
		k->len = lines[i].tlen;
	}
	return t;
}

struct tokens *tokens_read(const char *path, size_t min, size_t max, char *err, size_t errlen)
{
	/* every line at its longest with room for white space, and a byte to see more */
	size_t cap = TOKENS_MAX * (TOKENS_LABEL_MAX + 1 + max + 1) + 4096, len;
	char *raw = secret_read_file(path, cap, &len, err, errlen);
	struct tokens *t;

	if (raw == NULL)
		return NULL;
	t = tokens_parse(path, raw, len, min, max, err, errlen);
	explicit_bzero(raw, cap);
	free(raw);
	return t;
}

struct tokens *tokens_copy(const struct tokens *t)
{
	struct tokens *c;

	if (t == NULL)
		return NULL;
	c = xcalloc(1, sizeof(*c) + t->n * sizeof(c->t[0]));
	c->n = t->n;
	for (size_t i = 0; i < t->n; i++) {
		c->t[i] = t->t[i];
		c->t[i].secret = xstrndup(t->t[i].secret, t->t[i].len);
	}
	return c;
}

void tokens_free(struct tokens *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++) {
		OPENSSL_cleanse(t->t[i].secret, t->t[i].len);
		free(t->t[i].secret);
	}
	free(t);
}

const struct token *tokens_match(const struct tokens *t, const char *cand, size_t len)
{
	const struct token *hit = NULL;

	if (t == NULL)
		return NULL;
	/* no early exit: the time taken does not tell which token matched, or how far */
	for (size_t i = 0; i < t->n; i++) {
		const struct token *k = &t->t[i];
		int same = k->len == len && CRYPTO_memcmp(cand, k->secret, len) == 0;

		hit = same ? k : hit;
	}
	return hit;
}
