/* The SQLite backend's connection (store_sqlite_conn.c), shared by its rooms: the
 * connection and its prepared statements, content-free error text, the writer lock and
 * transactions, and reading columns. store_sqlite.c opens it and writes; store_sqlite_read.c
 * reads; store_sqlite_schema.c creates and migrates the schema. Not for other modules. */
#ifndef NETWALL_STORE_SQLITE_CONN_H
#define NETWALL_STORE_SQLITE_CONN_H
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_int.h"

/* The columns store_sqlite_read.c reads into a struct store_row, in its order. */
#define ROW_COLS                                                                                   \
	"id, state, sending_app, sending_facility, control_id, type, version, peer, "              \
	"received_ms, updated_ms, attempts, http_status, detail, reused_control_id, "           \
	"message_date, warnings"

/* Inserts one key of a message: kind, value, message id, authority, type. */
#define STORE_SQLITE_KEY_INSERT                                                                    \
	"INSERT OR IGNORE INTO message_keys (kind, value, message_id, authority, id_type) "     \
	"VALUES (?1, ?2, ?3, ?4, ?5)"

/* Appends one key of a message to the pending keys (store_put): same parameters. */
#define STORE_SQLITE_PENDING_INSERT                                                                \
	"INSERT OR IGNORE INTO message_keys_pending (kind, value, message_id, authority, "      \
	"id_type) VALUES (?1, ?2, ?3, ?4, ?5)"

/* The statements prepared at open (store_sqlite.c has their text). */
enum {
	ST_BEGIN = 0,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT,
	ST_LOOKUP,
	ST_JOB,
	ST_KEY,
	ST_MERGE_UPTO,
	ST_MERGE_COPY,
	ST_MERGE_DROP,
	ST_CLAIM_SELECT,
	ST_CLAIM_LEASE,
	ST_FINISH_MSG,
	ST_FINISH_RETRY,
	ST_FINISH_DONE,
	ST_RELEASE,
	ST_GET,
	ST_COUNTS,
	ST_DEPTH,
	ST_STATES,
	ST_REPLAY_JOBS,
	ST_REPLAY_MSGS,
	ST_N
};

struct sqlite_store {
	struct store base;
	sqlite3 *db;
	long busy_us; /* waited so far for the current lock */
	bool writing; /* holds the process's writer ticket */
	atomic_bool stopping; /* store_interrupt: no more waiting, no more statements */
	sqlite3_stmt *st[ST_N];
};

/* Fills err with the generic text of rc (or of the connection's last error when rc is a
 * success code) for what; returns -1. */
int store_sqlite_conn_fail(struct sqlite_store *q, int rc, const char *what, char *err,
			   size_t errlen);
/* The busy handler (sqlite3_busy_handler) for a connection q: gives up at once once q is
 * stopping. */
int store_sqlite_conn_busy(void *arg, int count);
/* The progress handler (sqlite3_progress_handler): a statement begun after
 * sqlite3_interrupt, which only stops those running, stops as well. */
int store_sqlite_conn_progress(void *arg);
/* Runs a statement that returns no rows and resets it; SQLITE_OK or the error code. */
int store_sqlite_conn_run(struct sqlite_store *q, sqlite3_stmt *st);
/* A write transaction: begin takes the process's writer ticket, then BEGIN IMMEDIATE;
 * commit and rollback give the ticket back. Both return 0 or -1 with err. */
int store_sqlite_conn_begin(struct sqlite_store *q, char *err, size_t errlen);
int store_sqlite_conn_commit(struct sqlite_store *q, char *err, size_t errlen);
void store_sqlite_conn_rollback(struct sqlite_store *q);
/* A text column into dst, cut to cap - 1 bytes and terminated. */
void store_sqlite_conn_text(char *dst, size_t cap, sqlite3_stmt *st, int col);
/* A malloc'd copy of a BLOB column, *len set; never NULL. */
char *store_sqlite_conn_blob(sqlite3_stmt *st, int col, size_t *len);
/* Inserts the keys of ix for message id with ins (a prepared STORE_SQLITE_KEY_INSERT or
 * STORE_SQLITE_PENDING_INSERT), and its control ID as a key unless control is NULL.
 * Returns SQLITE_OK or the error code. */
int store_sqlite_conn_keys(struct sqlite_store *q, sqlite3_stmt *ins, int64_t id,
			   const struct store_index *ix, const char *control);
/* Runs a PRAGMA that answers with one text value and checks it is want (NULL: any).
 * Returns 0 or -1 with err. */
int store_sqlite_conn_pragma(struct sqlite_store *q, const char *sql, const char *want, char *err,
			     size_t errlen);

#endif
