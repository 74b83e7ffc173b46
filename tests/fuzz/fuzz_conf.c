/* Fuzz target for conf_load: the input is written to a temporary file and loaded with
 * handlers that accept everything, passing what they see through the other helpers.
 * Built by `make fuzz`; with -DFUZZ_STANDALONE it is a plain program that runs
 * the files named on its command line. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static char path[64];
static int fd = -1;

static void cleanup(void)
{
	if (fd != -1)
		unlink(path);
}

struct seen {
	int lines;    /* lines in the input */
	int sections;
	int keys;
};

static int accept_item(const char *item, void *arg)
{
	check(item[0] != '\0');
	check(strcspn(item, ", \t") == strlen(item));
	(*(int *)arg)++;
	return 0;
}

static void on_section(struct conf *c, const char *section)
{
	struct seen *s = c->user;
	char kind[32];
	const char *name;

	check(c->line >= 1 && c->line <= s->lines);
	s->sections++;
	conf_section_split(section, kind, sizeof(kind), &name);
	check(strlen(kind) < sizeof(kind));
	check(name >= section && name <= section + strlen(section));
	(void)conf_name_ok(name);
}

static void on_key(struct conf *c, const char *section, const char *key, const char *value)
{
	struct seen *s = c->user;
	bool b;
	int items = 0;
	char *p;

	check(c->line >= 1 && c->line <= s->lines);
	check(section != NULL && key != NULL && value != NULL);
	s->keys++;
	(void)conf_list(value, accept_item, &items);
	(void)conf_bool(value, &b);
	p = conf_path(c, value);
	check(p != NULL);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen s = { .lines = 1 };
	struct conf c;
	const char *m;
	int rc, nl = 0;

	if (fd == -1) {
		snprintf(path, sizeof(path), "/tmp/netwall-fuzz-conf-XXXXXX");
		fd = mkstemp(path);
		check(fd != -1);
		atexit(cleanup);
	}
	check(ftruncate(fd, 0) == 0);
	check(pwrite(fd, data, size, 0) == (ssize_t)size);
	for (size_t i = 0; i < size; i++)
		s.lines += data[i] == '\n';

	memset(&c, 0, sizeof(c));
	c.file = path;
	c.user = &s;
	c.on_section = on_section;
	c.on_key = on_key;
	rc = conf_load(&c);
	/* the result agrees with the messages: one "file:line: text" line per error */
	check((rc == 0) == (c.errors == 0));
	m = c.msgs.len > 0 ? (const char *)buf_head(&c.msgs) : "";
	for (size_t i = 0; i < c.msgs.len; i++)
		nl += m[i] == '\n';
	check(nl == c.errors);
	for (size_t off = 0; off < c.msgs.len;) {
		const char *line = m + off, *end = memchr(line, '\n', c.msgs.len - off);
		check(end != NULL);
		check(strncmp(line, path, strlen(path)) == 0 && line[strlen(path)] == ':');
		off = (size_t)(end - m) + 1;
	}
	conf_done(&c);
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
