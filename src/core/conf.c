#include "core/conf.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/num.h"
#include "core/xalloc.h"

struct conf_reader {
	struct conf *c;
	FILE *f;
	/* The section being read, in full: inih cuts section names at 49 bytes. */
	char section[256];
};

/* inih reads line by line through this, so the line number is known in the handler,
 * and section headers are seen even when a section has no keys. Leading blanks are
 * dropped before inih sees a line: it would take an indented line after a key as more
 * of that key's value, and a section header there would be announced here but not
 * applied by inih. */
static char *conf_read_line(char *str, int num, void *stream)
{
	struct conf_reader *r = stream;
	char *p, *end;
	int ch = EOF, len = 0;
	bool nul = false, too_long = false;

	/* byte by byte rather than fgets: a NUL inside a line must not hide the rest of it */
	while (len < num - 2 && (ch = getc(r->f)) != EOF && ch != '\n') {
		if (ch == '\0')
			nul = true;
		else
			str[len++] = (char)ch;
	}
	if (len == num - 2 && ch != '\n' && ch != EOF) {
		ch = getc(r->f);
		if (ch != '\n' && ch != EOF) {
			too_long = true;
			while ((ch = getc(r->f)) != EOF && ch != '\n')
				;
		}
	}
	if (ch == EOF && len == 0 && !nul && !too_long)
		return NULL;
	r->c->line++;
	if (too_long || nul) {
		if (too_long)
			conf_error(r->c, "line too long (limit %d bytes)", num - 2);
		else
			conf_error(r->c, "NUL byte in line");
		str[0] = '\0';
		return str;
	}
	if (ch == '\n')
		str[len++] = '\n';
	str[len] = '\0';
	p = str;
	if (r->c->line == 1 && strncmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3; /* a UTF-8 byte order mark */
	while (isspace((unsigned char)*p))
		p++;
	if (p != str)
		memmove(str, p, strlen(p) + 1);
	if (str[0] == '[' && (end = strchr(str, ']')) != NULL) {
		size_t n = (size_t)(end - str - 1);
		if (n >= sizeof(r->section))
			n = sizeof(r->section) - 1;
		memcpy(r->section, str + 1, n);
		r->section[n] = '\0';
		if (r->c->on_section != NULL)
			r->c->on_section(r->c, r->section);
	}
	return str;
}

static int conf_on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct conf_reader *r = user;

	(void)section; /* possibly cut short: r->section has it whole */
	if (name == NULL)
		return 1;
	r->c->on_key(r->c, r->section, name, value ? value : "");
	return 1;
}

int conf_load(struct conf *c)
{
	struct conf_reader r = { .c = c };
	const char *slash;
	int rc;

	c->line = 0;
	slash = strrchr(c->file, '/');
	if (slash == NULL)
		snprintf(c->dir, sizeof(c->dir), ".");
	else
		snprintf(c->dir, sizeof(c->dir), "%.*s", (int)(slash - c->file + (slash == c->file)),
			 c->file);
	r.f = fopen(c->file, "r");
	if (r.f == NULL) {
		conf_error(c, "cannot open: %s", strerror(errno));
		return -1;
	}
	rc = ini_parse_stream(conf_read_line, &r, conf_on_ini, &r);
	fclose(r.f);
	if (rc > 0) {
		c->line = rc;
		conf_error(c, "syntax error (want [section] or key = value)");
	}
	return c->errors ? -1 : 0;
}

void conf_done(struct conf *c)
{
	buf_free(&c->msgs);
}

void conf_error(struct conf *c, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	n = snprintf(line, sizeof(line), "%s:%d: ", c->file, c->line);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	buf_append(&c->msgs, line, strlen(line));
	buf_append(&c->msgs, "\n", 1);
	c->errors++;
}

char *conf_path(const struct conf *c, const char *value)
{
	char *p;

	if (value[0] == '/' || strcmp(c->dir, ".") == 0)
		p = strdup(value);
	else if (asprintf(&p, "%s%s%s", c->dir, strcmp(c->dir, "/") == 0 ? "" : "/", value) == -1)
		p = NULL;
	if (p == NULL)
		xalloc_fail("conf_path");
	return p;
}

int conf_list(const char *value, int (*fn)(const char *item, void *arg), void *arg)
{
	char item[256];
	const char *p = value;

	while (*p) {
		size_t n = strcspn(p, ", \t");
		if (n > 0) {
			if (n >= sizeof(item))
				return -1;
			memcpy(item, p, n);
			item[n] = '\0';
			if (fn(item, arg) == -1)
				return -1;
		}
		p += n;
		p += strspn(p, ", \t");
	}
	return 0;
}

bool conf_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONF_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
			return false;
	return true;
}

void conf_section_split(const char *section, char *kind, size_t kindlen, const char **name)
{
	size_t n = strcspn(section, " \t"), k = n < kindlen ? n : kindlen - 1;

	memcpy(kind, section, k);
	kind[k] = '\0';
	section += n;
	section += strspn(section, " \t");
	*name = section;
}

int conf_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "1" };
	static const char *const no[] = { "off", "no", "false", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

void conf_seconds(struct conf *c, const char *key, const char *v, double min, double max,
		  double *out)
{
	if (num_seconds(v, min, max, out) == -1)
		conf_error(c, "%s: want seconds between %g and %g, got '%s'", key, min, max, v);
}

void conf_count(struct conf *c, const char *key, const char *v, uint64_t min, uint64_t max,
		uint64_t *out)
{
	if (num_u64(v, min, max, out) == -1)
		conf_error(c, "%s: want a whole number between %llu and %llu, got '%s'", key,
			   (unsigned long long)min, (unsigned long long)max, v);
}
