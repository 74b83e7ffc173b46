/* Inside the message store: the table of operations each backend (store_sqlite.c,
 * store_pg.c) fills, which is all the front (store.c) knows of them. The backends'
 * shared helpers are in store_util.h. Not for other modules. */
#ifndef NETWALL_STORE_INT_H
#define NETWALL_STORE_INT_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_util.h"

/* Bumped when the schema changes; kept in SQLite's user_version and in PostgreSQL's
 * netwall_meta table. */
#define STORE_SCHEMA_VERSION 4 /* 2: digest, reused_control_id; key + digest unique;
				 * 3: message_date, warnings, message_keys, audit;
				 * 4: message_keys_pending */

/* One backend. Every function gets a connection its own open function made; the
 * arguments were checked by store.c (n > 0, pointers set). */
struct store_ops {
	const char *kind;
	/* Opens a connection to spec, creating the schema if missing; NULL with err filled. */
	struct store *(*open)(const char *spec, char *err, size_t errlen);
	void (*close)(struct store *s);
	/* from another thread: store_interrupt */
	void (*interrupt)(struct store *s);
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
	int (*oldest_undelivered)(struct store *s, int64_t *received_ms, char *err,
				  size_t errlen);
	int (*count_states)(struct store *s, uint64_t out[STORE_NSTATES], char *err,
			    size_t errlen);
	int (*relax)(struct store *s, char *err, size_t errlen);
	int (*release)(struct store *s, const char *owner, const int64_t *ids, size_t n,
		       char *err, size_t errlen);
	int (*replay)(struct store *s, int64_t id, enum store_state from, int64_t now_ms,
		      char *err, size_t errlen);
	int (*merge_keys)(struct store *s, size_t max, char *err, size_t errlen);
	/* r's strings are clean text; its id is not read */
	int (*audit_add)(struct store *s, const struct store_audit_row *r, char *err,
			 size_t errlen);
	int (*audit_list)(struct store *s, int64_t before_id, size_t limit,
			  struct store_audit_row **rows, char *err, size_t errlen);
	/* a: clean text, the record to append with the ids removed (its id, ids and count
	 * are the backend's to fill) */
	int (*prune)(struct store *s, const struct store_prune *p, const struct store_audit_row *a,
		     uint64_t *bytes, char *err, size_t errlen);
	int (*bytes)(struct store *s, uint64_t *bytes, char *err, size_t errlen);
	int (*compact)(struct store *s, char *err, size_t errlen);
	int (*prune_turn)(struct store *s, bool take, char *err, size_t errlen);
};

/* The first member of every backend's connection. */
struct store {
	const struct store_ops *ops;
};

/* The backends, for store.c's table. */
extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

#endif
