/* The IRC client protocol's lines: parsing in place, serializing replies, the
 * line splitter, name rules and rfc1459 case mapping. Nothing here allocates
 * except the splitter's one buffer. */
#include "chat/irc.h"

#include <string.h>

#include "core/utf8.h"

static bool is_letter(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* A command is letters (any number, at least one) or exactly three digits. */
static bool command_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 3 && is_digit((unsigned char)s[0]) && is_digit((unsigned char)s[1]) &&
	    is_digit((unsigned char)s[2]))
		return true;
	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		if (!is_letter((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Returns the first byte at or after p (before end) that is not a space. */
static char *skip_spaces(char *p, const char *end)
{
	while (p < end && *p == ' ')
		p++;
	return p;
}

/* Returns the first space at or after p, or end. */
static char *find_space(char *p, const char *end)
{
	char *s = memchr(p, ' ', (size_t)(end - p));

	return s != NULL ? s : (char *)end;
}

/* Parses one line in place. The tags part ('@' to its space, both counted) is
 * bounded by IRC_TAGS_MAX and the rest by IRC_LINE_MAX - 2 (the CR LF is
 * already gone); both checks come before any other work on that part. line[len]
 * is written (the last token's NUL). */
int irc_parse(char *line, size_t len, struct irc_msg *m, const char **err)
{
	char *p = line, *end = line + len, *s;
	size_t i;

	memset(m, 0, sizeof(*m));
	if (len == 0) {
		*err = "empty line";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		*err = "NUL in line";
		return -1;
	}
	if (*p == '@') {
		s = memchr(p, ' ', len);
		if ((s != NULL ? (size_t)(s - p) + 1 : len) > IRC_TAGS_MAX) {
			*err = "tags too long";
			return -1;
		}
		if (s == NULL) {
			*err = "no command";
			return -1;
		}
		*s = '\0';
		m->tags = p + 1;
		p = s + 1;
	}
	if ((size_t)(end - p) > IRC_LINE_MAX - 2) {
		*err = "line too long";
		return -1;
	}
	p = skip_spaces(p, end);
	if (p == end) {
		*err = m->tags != NULL ? "no command" : "empty line";
		return -1;
	}
	if (*p == ':') {
		s = find_space(p, end);
		m->prefix = p + 1;
		p = skip_spaces(s, end);
		*s = '\0'; /* s < p here, or s == end: line[len] is the caller's spare byte
			    */
		if (p == end) {
			*err = "no command";
			return -1;
		}
	}
	s = find_space(p, end);
	if (!command_valid(p, (size_t)(s - p))) {
		*err = "bad command";
		return -1;
	}
	m->command = p;
	for (i = 0; p + i < s; i++) {
		if (p[i] >= 'a' && p[i] <= 'z')
			p[i] = (char)(p[i] - 'a' + 'A');
	}
	p = skip_spaces(s, end);
	*s = '\0';
	while (p < end) {
		if (*p == ':' || m->nparams == IRC_PARAMS_MAX - 1) {
			/* the trailing parameter, or the 15th, which takes the rest as it is */
			if (*p == ':') {
				p++;
				m->trailing = true;
			}
			m->params[m->nparams++] = p;
			*end = '\0';
			break;
		}
		s = find_space(p, end);
		m->params[m->nparams++] = p;
		p = skip_spaces(s, end);
		*s = '\0';
	}
	return 0;
}

/* Unescapes an IRCv3 tag value of n bytes into out (outlen > 0),
 * NUL-terminated, cut to outlen - 1 bytes. */
static void tag_unescape(const char *v, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < outlen; i++) {
		char c = v[i];

		if (c == '\\') {
			if (++i == n)
				break; /* a trailing lone backslash is dropped */
			switch (v[i]) {
			case ':':
				c = ';';
				break;
			case 's':
				c = ' ';
				break;
			case 'r':
				c = '\r';
				break;
			case 'n':
				c = '\n';
				break;
			default:
				c = v[i]; /* "\\" is a backslash, any other "\x" is x */
				break;
			}
		}
		out[o++] = c;
	}
	out[o] = '\0';
}

/* Looks key up in raw tags. A key given more than once takes its last value, as
 * the message-tags specification says. */
int irc_tag_get(const char *tags, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = tags, *val = NULL;
	size_t vlen = 0;
	int found = 0;

	if (tags == NULL || klen == 0)
		return 0;
	while (*p != '\0') {
		size_t tlen = strcspn(p, ";");
		const char *eq = memchr(p, '=', tlen);
		size_t nlen = eq != NULL ? (size_t)(eq - p) : tlen;

		if (nlen == klen && memcmp(p, key, klen) == 0) {
			found = 1;
			val = eq != NULL ? eq + 1 : p + tlen;
			vlen = eq != NULL ? tlen - nlen - 1 : 0;
		}
		p += tlen;
		if (*p == ';')
			p++;
	}
	if (found && outlen > 0)
		tag_unescape(val, vlen, out, outlen);
	return found;
}

/* Appends s to the line being built in line[*n..), turning CR and LF into
 * spaces. It keeps at most IRC_LINE_MAX - 1 bytes: one more than a line may
 * hold before its CR LF, so that the caller sees the first byte that did not
 * fit. */
static void line_put(char *line, size_t *n, const char *s)
{
	for (; *s != '\0' && *n < IRC_LINE_MAX - 1; s++)
		line[(*n)++] = (*s == '\r' || *s == '\n') ? ' ' : *s;
}

size_t irc_format(struct buf *out, const char *prefix, const char *command,
		  const char *const *params, unsigned n, bool trailing)
{
	char line[IRC_LINE_MAX];
	size_t len = 0;
	unsigned i;

	if (prefix != NULL) {
		line_put(line, &len, ":");
		line_put(line, &len, prefix);
		line_put(line, &len, " ");
	}
	line_put(line, &len, command);
	for (i = 0; i < n; i++) {
		const char *p = params[i];

		line_put(line, &len, " ");
		if (i == n - 1 &&
		    (trailing || p[0] == '\0' || p[0] == ':' || strchr(p, ' ') != NULL))
			line_put(line, &len, ":");
		line_put(line, &len, p);
	}
	if (len > IRC_LINE_MAX - 2) {
		/* line[len] is the first byte left out: while it continues a UTF-8
		 * character, leave out that character's earlier bytes too (three at most;
		 * more is not UTF-8, and then the plain cut stands) */
		size_t keep = IRC_LINE_MAX - 2;

		len = keep;
		while (keep > 0 && keep + 3 > IRC_LINE_MAX - 2 &&
		       ((unsigned char)line[keep] & 0xC0) == 0x80)
			keep--;
		if (((unsigned char)line[keep] & 0xC0) != 0x80)
			len = keep;
	}
	line[len++] = '\r';
	line[len++] = '\n';
	buf_append(out, line, len);
	return len;
}

void irc_lines_init(struct irc_lines *l, size_t max)
{
	memset(l, 0, sizeof(*l));
	l->max = max;
}

void irc_lines_free(struct irc_lines *l)
{
	buf_free(&l->acc);
	l->skipping = false;
	l->ready = false;
}

/* The splitter keeps at most max + 1 bytes of a line (the last may be the CR of
 * its CR LF), and a NUL after them. */
void irc_lines_trim(struct irc_lines *l)
{
	if (l->ready) {
		buf_consume(&l->acc, l->acc.len);
		l->ready = false;
	}
	if (l->acc.len == 0)
		buf_release(&l->acc);
}

enum irc_line_result irc_lines_feed(struct irc_lines *l, const char *p, size_t n, size_t *used,
				    char **line, size_t *len)
{
	size_t done = 0;

	if (l->ready) {
		buf_consume(&l->acc, l->acc.len);
		l->ready = false;
	}
	*line = NULL;
	*len = 0;
	for (;;) {
		const char *lf = memchr(p + done, '\n', n - done);
		size_t k = lf != NULL ? (size_t)(lf - (p + done)) : n - done;
		size_t have = l->acc.len + k;
		uint8_t *t;

		if (l->skipping) {
			if (lf == NULL) {
				*used = n;
				return IRC_LINE_MORE;
			}
			l->skipping = false;
			done += k + 1;
			continue;
		}
		if (lf == NULL) {
			if (have > l->max + 1) {
				buf_consume(&l->acc, l->acc.len);
				l->skipping = true;
				*used = n;
				return IRC_LINE_TOO_LONG;
			}
			buf_append(&l->acc, p + done, k);
			*used = n;
			return IRC_LINE_MORE;
		}
		*used = done + k + 1;
		if (k > 0 && p[done + k - 1] == '\r')
			have--;
		else if (k == 0 && l->acc.len > 0 && buf_head(&l->acc)[l->acc.len - 1] == '\r')
			have--;
		if (have > l->max) {
			buf_consume(&l->acc, l->acc.len);
			return IRC_LINE_TOO_LONG;
		}
		buf_append(&l->acc, p + done, k);
		l->acc.len = have; /* the CR, if any, is dropped */
		t = buf_tail(&l->acc, 1);
		*t = '\0';
		l->ready = true;
		*line = (char *)buf_head(&l->acc);
		*len = have;
		return IRC_LINE_OK;
	}
}

static bool nick_special(unsigned char c)
{
	return c != '\0' && strchr("[]\\`_^{|}", c) != NULL;
}

bool irc_nick_valid(const char *nick)
{
	size_t i;

	if (nick == NULL || nick[0] == '\0')
		return false;
	if (!is_letter((unsigned char)nick[0]) && !nick_special((unsigned char)nick[0]))
		return false;
	for (i = 1; nick[i] != '\0'; i++) {
		unsigned char c = (unsigned char)nick[i];

		if (i >= IRC_NICK_MAX)
			return false;
		if (!is_letter(c) && !is_digit(c) && !nick_special(c) && c != '-')
			return false;
	}
	return true;
}

/* Channel names: besides the ASCII controls, DEL and the C1 controls
 * (U+0080..U+009F) count as control characters. */
bool irc_channel_valid(const char *name)
{
	const unsigned char *s = (const unsigned char *)name;
	size_t n, i = 1;

	if (name == NULL || (name[0] != '#' && name[0] != '&'))
		return false;
	n = strlen(name);
	if (n < 2 || n > IRC_CHANNEL_MAX)
		return false;
	while (i < n) {
		uint32_t cp;
		size_t k = utf8_seq(s + i, n - i, &cp);

		if (k == 0 || cp < 0x20 || cp == ' ' || cp == ',' || cp == ':' || cp == 0x7F ||
		    (cp >= 0x80 && cp <= 0x9F))
			return false;
		i += k;
	}
	return true;
}

static unsigned char fold(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	switch (c) {
	case '[':
		return '{';
	case ']':
		return '}';
	case '\\':
		return '|';
	case '~':
		return '^';
	default:
		return c;
	}
}

void irc_casefold(char *dst, const char *src, size_t dstlen)
{
	size_t i;

	if (dstlen == 0)
		return;
	for (i = 0; src[i] != '\0' && i + 1 < dstlen; i++)
		dst[i] = (char)fold((unsigned char)src[i]);
	dst[i] = '\0';
}

int irc_casecmp(const char *a, const char *b)
{
	const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;

	while (*x != '\0' && fold(*x) == fold(*y)) {
		x++;
		y++;
	}
	return (int)fold(*x) - (int)fold(*y);
}
