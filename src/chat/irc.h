/* The IRC client protocol's lines (RFC 1459 / 2812, IRCv3 message tags): parsing one line
 * in place into tags, prefix, command and parameters; serializing a reply; the rules for
 * nicknames and channel names; and rfc1459 case mapping, under which "Nick[1]" and
 * "nick{1}" are the same name. Nothing here allocates. */
#ifndef NETWALL_IRC_H
#define NETWALL_IRC_H
#include <stdbool.h>
#include <stddef.h>
#include "core/buf.h"

#define IRC_LINE_MAX 512    /* RFC 1459: a line with its CR LF, tags not counted */
#define IRC_TAGS_MAX 8191   /* IRCv3: the tags part, '@' and the space included */
#define IRC_PARAMS_MAX 15   /* RFC 2812 */
#define IRC_NICK_MAX 30     /* NICKLEN we announce */
#define IRC_CHANNEL_MAX 50  /* CHANNELLEN we announce */

/* One parsed line. The strings point into the caller's line, NUL-terminated in place. */
struct irc_msg {
	char *tags;    /* without '@'; NULL if none (raw, still escaped: irc_tag_get) */
	char *prefix;  /* without ':'; NULL if none */
	char *command; /* as sent; irc_parse upper-cases letters in place */
	char *params[IRC_PARAMS_MAX];
	unsigned nparams;
	bool trailing; /* the last parameter was given with ':' (may be empty or hold spaces) */
};

/* Parses one line (its CR LF already removed; len bytes, no NUL needed) in place; the
 * byte line[len] must be writable, as it may receive the last string's NUL (irc_lines
 * gives such lines). Returns 0, or -1 with *err a short reason ("empty line", "no command",
 * "bad command", "tags too long", "line too long", "NUL in line"). A command is letters,
 * or exactly three digits. More than IRC_PARAMS_MAX parameters: the 15th takes the rest
 * of the line (a leading ':' of it dropped), as RFC 2812 says. */
int irc_parse(char *line, size_t len, struct irc_msg *m, const char **err);

/* Looks up key in a raw tags string and unescapes its value (\: ; \s space, \\, \r, \n;
 * other \x is x; a trailing lone \ dropped) into out, NUL-terminated, truncated to
 * outlen-1. Returns 1 when present (a key without '=' has the value ""), 0 when absent. */
int irc_tag_get(const char *tags, const char *key, char *out, size_t outlen);

/* Appends ":prefix COMMAND p1 p2 ... :last\r\n" to out (prefix NULL: none). The last
 * parameter is written with ':' when it is empty, holds a space or starts with ':', or
 * when trailing is true. Parameters other than the last must be non-empty and free of
 * spaces (the caller's contract). CR, LF and NUL inside parameters become spaces. The line
 * is cut so that it is at most IRC_LINE_MAX bytes with its CR LF (the cut falls on a UTF-8
 * character boundary). Returns the number of bytes appended. */
size_t irc_format(struct buf *out, const char *prefix, const char *command,
		  const char *const *params, unsigned n, bool trailing);

/* A line splitter over a byte stream: lines end at LF, a CR before it is dropped. A line
 * longer than max (without its end) is not kept: its first max bytes are discarded with
 * the rest, up to its LF, and it is reported once as too long. */
enum irc_line_result { IRC_LINE_MORE = 0, IRC_LINE_OK, IRC_LINE_TOO_LONG };
struct irc_lines {
	size_t max;
	struct buf acc;  /* the line being gathered */
	bool skipping;   /* inside a line that is too long */
	bool ready;      /* a line was returned; it is dropped at the next call */
};
void irc_lines_init(struct irc_lines *l, size_t max);
void irc_lines_free(struct irc_lines *l);
/* Consumes bytes up to and including the end of the first complete line and returns
 * IRC_LINE_OK (the line in *line, *len, valid until the next call; NUL-terminated) or
 * IRC_LINE_TOO_LONG; *used says how much of p it took. IRC_LINE_MORE: all of p was used. */
enum irc_line_result irc_lines_feed(struct irc_lines *l, const char *p, size_t n, size_t *used,
				    char **line, size_t *len);

/* Frees the line buffer's memory when no line is partly gathered (the last line returned
 * is dropped): an idle client then holds none. */
void irc_lines_trim(struct irc_lines *l);

/* RFC 2812 nickname: a letter or one of []\`_^{|} first, then letters, digits, those
 * specials and '-'; 1..IRC_NICK_MAX bytes. */
bool irc_nick_valid(const char *nick);
/* Channel: '#' or '&' then 1..IRC_CHANNEL_MAX-1 bytes, none of space, comma, BEL, ':' or a
 * control character; valid UTF-8. */
bool irc_channel_valid(const char *name);

/* rfc1459 case mapping: A-Z to a-z and []\~ to {}|^. Writes the folded form of src into
 * dst (dstlen >= strlen(src)+1, or it is cut). */
void irc_casefold(char *dst, const char *src, size_t dstlen);
/* Compares under rfc1459 case mapping, like strcmp. */
int irc_casecmp(const char *a, const char *b);

#endif
