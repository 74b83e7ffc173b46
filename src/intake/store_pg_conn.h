/* The PostgreSQL backend's connection (store_pg_conn.c), shared by its rooms: the
 * connection, content-free error text, the session set up on every (re)connection, one
 * reset and retry of a call whose connection broke, pipelines of prepared statements and
 * single statements. store_pg.c opens it and writes; store_pg_read.c reads;
 * store_pg_schema.c creates and migrates the schema. Not for other modules. */
#ifndef NETWALL_STORE_PG_CONN_H
#define NETWALL_STORE_PG_CONN_H
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "intake/store_int.h"

struct pg_store {
	struct store base;
	PGconn *conn;
	bool relaxed; /* synchronous_commit off (store_relax), kept across reconnects */
	atomic_bool stopping; /* store_interrupt: no statement is sent any more */
	pthread_mutex_t cancel_mu; /* guards cancel: made by the owner, used by any thread */
	PGcancel *cancel;          /* for the connection's present server process */
};

/* One statement of a pipeline: a prepared statement and its parameters (text, except
 * where formats says 1: binary). */
struct pg_call {
	const char *stmt;
	int nparams;
	const char *const *values;
	const int *lengths;
	const int *formats;
};

/* Content-free error text for result r (NULL: the connection broke). */
void store_pg_conn_fail(struct pg_store *p, const PGresult *r, const char *what, char *err,
			size_t errlen);
/* True for a result that succeeded (rows or a command). */
bool store_pg_conn_ok(const PGresult *r);
/* store_interrupt: stopping set, and the running statement cancelled (PQcancel, safe
 * from any thread). */
void store_pg_conn_interrupt(struct store *s);
/* Session settings and prepared statements, after every (re)connection. Returns 0 or -1. */
int store_pg_conn_session(struct pg_store *p, char *err, size_t errlen);
/* store_relax: synchronous_commit off, now and after every reconnection. */
int store_pg_conn_relax(struct store *s, char *err, size_t errlen);
/* Resets the connection and sets the session up again. Returns 0 or -1 with err. */
int store_pg_conn_reconnect(struct pg_store *p, char *err, size_t errlen);
/* Before a call: a connection known to be broken is reset (that is the call's one
 * reconnect, recorded in *used). After a failed call, again is true when the connection
 * broke, had not been reset in this call, and is back: the call runs once more. */
int store_pg_conn_begin(struct pg_store *p, bool *used, char *err, size_t errlen);
bool store_pg_conn_again(struct pg_store *p, bool *used, char *err, size_t errlen);
/* Sends calls[0..n) as one pipeline, one transaction committed at its Sync, and collects
 * one result each into res (the caller clears them with store_pg_conn_clear, even on
 * failure; missing ones are NULL). Returns 0 when every statement succeeded, -1 with err
 * otherwise (then nothing was committed). */
int store_pg_conn_pipeline(struct pg_store *p, const struct pg_call *calls, size_t n,
			   PGresult **res, const char *what, char *err, size_t errlen);
void store_pg_conn_clear(PGresult **res, size_t n);
/* One statement (text sql, or the prepared statement stmt) outside a pipeline, with a
 * broken connection reset and retried once; binary results. Returns the result (the
 * caller clears it) or NULL with err. */
PGresult *store_pg_conn_exec(struct pg_store *p, const char *sql, int nparams,
			     const char *const *values, const char *what, char *err, size_t errlen);
PGresult *store_pg_conn_prepared(struct pg_store *p, const char *stmt, int nparams,
				 const char *const *values, char *err, size_t errlen);

#endif
