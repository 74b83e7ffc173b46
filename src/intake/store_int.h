/* Inside the message store: the table of operations each backend (store_sqlite.c,
 * store_pg.c) fills, and the helpers they share from store.c. Not for other modules. */
#ifndef NETWALL_STORE_INT_H
#define NETWALL_STORE_INT_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store.h"

/* Bumped when the schema changes; kept in SQLite's user_version and in PostgreSQL's
 * netwall_meta table. */
#define STORE_SCHEMA_VERSION 2 /* 2: digest, reused_control_id; key + digest unique */

/* One backend. Every function gets a connection its own open function made; the
 * arguments were checked by store.c (n > 0, pointers set). */
struct store_ops {
	const char *kind;
	void (*close)(struct store *s);
	int (*put)(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen);
	int (*claim)(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms,
		     size_t max, struct store_job **jobs, char *err, size_t errlen);
	int (*finish)(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		      char *err, size_t errlen);
	int (*list)(struct store *s, const struct store_filter *f, struct store_row **rows,
		    char *err, size_t errlen);
	int (*get)(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen);
	int (*counts)(struct store *s, struct store_count **out, char *err, size_t errlen);
	int (*queue_depth)(struct store *s, uint64_t *n, char *err, size_t errlen);
	int (*count_states)(struct store *s, uint64_t out[STORE_NSTATES], char *err,
			    size_t errlen);
	int (*relax)(struct store *s, char *err, size_t errlen);
	int (*release)(struct store *s, const char *owner, const int64_t *ids, size_t n,
		       char *err, size_t errlen);
	int (*replay)(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		      char *err, size_t errlen);
};

/* The first member of every backend's connection. */
struct store {
	const struct store_ops *ops;
};

/* Open a backend connection, creating the schema if missing; NULL with err filled. */
struct store *store_sqlite_open(const char *path, char *err, size_t errlen);
struct store *store_pg_open(const char *url, char *err, size_t errlen);

/* snprintf into err (when err is not NULL). */
void store_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Copies at most cap - 1 bytes of n from src and terminates; src may be NULL. */
void store_copy(char *dst, size_t cap, const void *src, size_t n);
/* malloc / calloc / strndup that abort on out-of-memory. */
void *store_alloc(size_t n);
void *store_zalloc(size_t nmemb, size_t size);
char *store_strndup(const void *p, size_t n);
/* Wipes and frees n bytes at p (raw messages, ACKs). Accepts NULL. */
void store_wipe_free(void *p, size_t n);

#endif
