/* An admin token file: one bare token (its label "admin"), or several lines "LABEL TOKEN",
 * so each operator or program holds a token of its own and the label of the one that
 * authenticated a request names who made it (the intake's audit trail). Read, compared and
 * wiped without the bytes ever reaching a log line or an error message. */
#ifndef NETWALL_TOKENS_H
#define NETWALL_TOKENS_H

#include <stddef.h>

#define TOKENS_MAX 64           /* tokens in one file */
#define TOKENS_LABEL_MAX 64     /* label characters: A-Z a-z 0-9 . _ - */
#define TOKENS_BARE_LABEL "admin" /* the label of a file's one bare token */

struct token {
	char label[TOKENS_LABEL_MAX + 1];
	char *secret; /* owned, wiped on free */
	size_t len;
};

struct tokens {
	size_t n;
	struct token t[]; /* n of them, in the file's order */
};

/* Parses a token file's text[0..len): blank lines and white space around a line are
 * ignored; either one bare token alone, or lines "LABEL TOKEN" (white space between) with
 * distinct labels and distinct tokens, at most TOKENS_MAX. A token is printable ASCII
 * without spaces, min to max characters. Returns the tokens (tokens_free), or NULL with
 * err naming what (path and the line number), never the bytes. */
struct tokens *tokens_parse(const char *path, const char *text, size_t len, size_t min,
			    size_t max, char *err, size_t errlen);

/* Reads and parses the file at path (a regular file only); every byte read is wiped. */
struct tokens *tokens_read(const char *path, size_t min, size_t max, char *err, size_t errlen);

/* A copy of t (NULL for NULL). */
struct tokens *tokens_copy(const struct tokens *t);

/* Wipes and frees. Accepts NULL. */
void tokens_free(struct tokens *t);

/* The token equal to cand[0..len), or NULL. Every token is compared, each in constant
 * time for its length, whichever matches. */
const struct token *tokens_match(const struct tokens *t, const char *cand, size_t len);

#endif
