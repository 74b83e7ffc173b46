/* The PostgreSQL backend's connection: error text from the SQLSTATE class only (the
 * server's own message can quote values, and values here are patient data), the session
 * of every (re)connection, a broken connection reset and the call retried once, and the
 * pipeline that sends a batch's statements in one round trip and one transaction. */
#include "intake/store_pg_conn.h"

#include <string.h>

#include "intake/store_pg_sql.h"

/* Content-free error text for result r (NULL: the connection broke). */
void store_pg_conn_fail(struct pg_store *p, const PGresult *r, const char *what, char *err,
			size_t errlen)
{
	const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	if (PQstatus(p->conn) == CONNECTION_BAD)
		err_set(err, errlen, "postgresql: %s: connection lost", what);
	else
		err_set(err, errlen, "postgresql: %s: %s (SQLSTATE %s)", what,
			store_pg_sql_class(code), code ? code : "none");
}

bool store_pg_conn_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

void store_pg_conn_interrupt(struct store *s)
{
	struct pg_store *p = (struct pg_store *)s;
	char why[256];

	atomic_store(&p->stopping, true);
	pthread_mutex_lock(&p->cancel_mu);
	if (p->cancel != NULL)
		PQcancel(p->cancel, why, sizeof(why)); /* a failure: the statement runs to its bound */
	pthread_mutex_unlock(&p->cancel_mu);
}

/* Checks r (a result the caller no longer needs): 0, or -1 with err about what. */
static int conn_done(struct pg_store *p, PGresult *r, const char *what, char *err,
		     size_t errlen)
{
	int rc = 0;

	if (!store_pg_conn_ok(r)) {
		store_pg_conn_fail(p, r, what, err, errlen);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/* Session settings and prepared statements, after every (re)connection. */
int store_pg_conn_session(struct pg_store *p, char *err, size_t errlen)
{
	/* a statement that runs 30 s (a server that hangs) fails, and the sender gets AE */
	PGresult *r;

	/* the server process changes with every connection: so does what cancels it */
	pthread_mutex_lock(&p->cancel_mu);
	PQfreeCancel(p->cancel);
	p->cancel = PQgetCancel(p->conn);
	pthread_mutex_unlock(&p->cancel_mu);
	r = PQexec(p->conn, p->relaxed ? "SET synchronous_commit = off; "
						    "SET statement_timeout = 30000"
						  : "SET synchronous_commit = on; "
						    "SET statement_timeout = 30000");

	if (conn_done(p, r, "session", err, errlen) == -1)
		return -1;
	for (size_t i = 0; i < store_pg_sql_nstmts; i++) {
		r = PQprepare(p->conn, store_pg_sql_stmts[i].name, store_pg_sql_stmts[i].sql, 0,
			      NULL);
		if (conn_done(p, r, "prepare", err, errlen) == -1)
			return -1;
	}
	return 0;
}

int store_pg_conn_relax(struct store *s, char *err, size_t errlen)
{
	struct pg_store *p = (struct pg_store *)s;
	PGresult *r;

	p->relaxed = true;
	r = PQexec(p->conn, "SET synchronous_commit = off");
	return conn_done(p, r, "relax", err, errlen);
}

int store_pg_conn_reconnect(struct pg_store *p, char *err, size_t errlen)
{
	PQreset(p->conn);
	if (PQstatus(p->conn) != CONNECTION_OK) {
		err_set(err, errlen, "postgresql: reconnect failed");
		return -1;
	}
	return store_pg_conn_session(p, err, errlen);
}

/* Before a call: a connection known to be broken is reset (that is the call's one
 * reconnect, recorded in *used). */
int store_pg_conn_begin(struct pg_store *p, bool *used, char *err, size_t errlen)
{
	*used = false;
	if (atomic_load(&p->stopping)) {
		err_set(err, errlen, "postgresql: stopping");
		return -1;
	}
	if (PQstatus(p->conn) == CONNECTION_OK)
		return 0;
	*used = true;
	return store_pg_conn_reconnect(p, err, errlen);
}

/* After a failed call: true when the connection broke, had not been reset in this call,
 * and is back; the call runs once more. */
bool store_pg_conn_again(struct pg_store *p, bool *used, char *err, size_t errlen)
{
	if (*used || PQstatus(p->conn) != CONNECTION_BAD)
		return false;
	*used = true;
	return store_pg_conn_reconnect(p, err, errlen) == 0;
}

/* Sends calls[0..n) as one pipeline and collects one result each into res (the caller
 * PQclears them, even on failure; missing ones are NULL). Without an explicit BEGIN, the
 * pipeline is one transaction, committed at its Sync. Returns 0 when every statement
 * succeeded, -1 with err otherwise (then nothing was committed). */
int store_pg_conn_pipeline(struct pg_store *p, const struct pg_call *calls, size_t n,
			   PGresult **res, const char *what, char *err, size_t errlen)
{
	PGconn *c = p->conn;
	int rc = 0;
	size_t got = 0;

	memset(res, 0, n * sizeof(*res));
	if (PQenterPipelineMode(c) != 1) {
		store_pg_conn_fail(p, NULL, what, err, errlen);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!PQsendQueryPrepared(c, calls[i].stmt, calls[i].nparams, calls[i].values,
					 calls[i].lengths, calls[i].formats, 1))
			goto broken;
	}
	if (!PQpipelineSync(c) || PQflush(c) == -1)
		goto broken;
	for (; got < n; got++) {
		PGresult *r = PQgetResult(c);

		if (r == NULL)
			goto broken;
		res[got] = r;
		if (rc == 0 && !store_pg_conn_ok(r)) {
			if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED)
				err_set(err, errlen, "postgresql: %s: aborted", what);
			else
				store_pg_conn_fail(p, r, what, err, errlen);
			rc = -1;
		}
		/* the end of this statement's results */
		while ((r = PQgetResult(c)) != NULL) {
			PQclear(r);
			if (PQstatus(c) == CONNECTION_BAD)
				goto broken;
		}
	}
	for (;;) {
		PGresult *r = PQgetResult(c);
		ExecStatusType st;

		if (r == NULL) {
			if (PQstatus(c) == CONNECTION_BAD)
				goto broken;
			continue;
		}
		st = PQresultStatus(r);
		PQclear(r);
		if (st == PGRES_PIPELINE_SYNC)
			break;
		if (PQstatus(c) == CONNECTION_BAD)
			goto broken;
	}
	if (PQexitPipelineMode(c) != 1)
		goto broken;
	return rc;
broken:
	err_set(err, errlen, "postgresql: %s: connection lost", what);
	/* a connection in an unknown state is not reused: a broken one is reset by the
	 * caller's retry, one that still looks fine is reset here */
	if (PQstatus(c) != CONNECTION_BAD)
		store_pg_conn_reconnect(p, NULL, 0);
	return -1;
}

void store_pg_conn_clear(PGresult **res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		PQclear(res[i]);
}

/* One statement outside a pipeline, with a broken connection reset and retried once. */
PGresult *store_pg_conn_exec(struct pg_store *p, const char *sql, int nparams,
			     const char *const *values, const char *what, char *err, size_t errlen)
{
	PGresult *r = NULL;
	bool used;

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return NULL;
	do {
		PQclear(r);
		r = PQexecParams(p->conn, sql, nparams, NULL, values, NULL, NULL, 1);
		if (store_pg_conn_ok(r))
			return r;
		store_pg_conn_fail(p, r, what, err, errlen);
	} while (store_pg_conn_again(p, &used, err, errlen));
	PQclear(r);
	return NULL;
}

PGresult *store_pg_conn_prepared(struct pg_store *p, const char *stmt, int nparams,
				 const char *const *values, char *err, size_t errlen)
{
	PGresult *r = NULL;
	bool used;

	if (store_pg_conn_begin(p, &used, err, errlen) == -1)
		return NULL;
	do {
		PQclear(r);
		r = PQexecPrepared(p->conn, stmt, nparams, values, NULL, NULL, 1);
		if (store_pg_conn_ok(r))
			return r;
		store_pg_conn_fail(p, r, stmt, err, errlen);
	} while (store_pg_conn_again(p, &used, err, errlen));
	PQclear(r);
	return NULL;
}