/* Config file loading on libinih, with file:line errors. Each daemon's config module
 * supplies the section and key handlers; this module supplies lines, paths and lists. */
#ifndef NETWALL_CONF_H
#define NETWALL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define CONF_NAME_MAX 63 /* section names: agents, services */

struct conf {
	const char *file;
	char dir[4096]; /* the file's directory, for relative paths */
	int line;       /* the line being handled */
	int errors;
	struct buf msgs; /* "file:line: message\n" for every error */
	void *user;
	/* Called for every "[section]" header, even an empty one. */
	void (*on_section)(struct conf *c, const char *section);
	/* Called for every key; reports problems through conf_error. */
	void (*on_key)(struct conf *c, const char *section, const char *key, const char *value);
};

/* Reads c->file, calling the handlers. Returns 0 if no error was reported, else -1;
 * c->msgs holds the messages. Free with conf_done. */
int conf_load(struct conf *c);
void conf_done(struct conf *c);

/* Records "file:line: message" for the current line. */
void conf_error(struct conf *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns a malloc'd path: value itself if absolute, else relative to the config's directory. */
char *conf_path(const struct conf *c, const char *value);

/* Calls fn for every item of a comma- or space-separated list; stops at the first -1. */
int conf_list(const char *value, int (*fn)(const char *item, void *arg), void *arg);

/* True if s is a valid section name: 1..CONF_NAME_MAX of [A-Za-z0-9._-]. */
bool conf_name_ok(const char *s);

/* Splits "service web" into kind "service" and name "web"; name is "" when absent. */
void conf_section_split(const char *section, char *kind, size_t kindlen, const char **name);

/* Reads seconds (num_seconds) or a whole number (num_u64) within [min, max] into *out, or
 * records "KEY: want ... between MIN and MAX, got 'V'" for the current line. */
void conf_seconds(struct conf *c, const char *key, const char *v, double min, double max,
		  double *out);
void conf_count(struct conf *c, const char *key, const char *v, uint64_t min, uint64_t max,
		uint64_t *out);

/* Parses on/off, yes/no, true/false, 1/0. */
int conf_bool(const char *v, bool *out);

#endif
