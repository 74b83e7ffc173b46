/* The PostgreSQL backend's SQL and the reading of its results (store_pg_sql.c), for
 * store_pg.c. */
#ifndef NETWALL_STORE_PG_SQL_H
#define NETWALL_STORE_PG_SQL_H
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "intake/store_util.h"

#define ROW_COLS                                                                                   \
	"id, state, sending_app, sending_facility, control_id, type, version, peer, "           \
	"received_ms, updated_ms, attempts, http_status, detail, reused_control_id, "           \
	"message_date, warnings"
#define REPLAYABLE "('dead', 'failed', 'delivered')"
#define REPLAY_WHERE                                                                               \
	"($2::bigint <> 0 AND id = $2::bigint AND state IN " REPLAYABLE ") OR "                   \
	"($2::bigint = 0 AND state = $3::text)"


struct store_pg_stmt {
	const char *name;
	const char *sql;
};


/* One simple query that creates what is missing and answers the schema version. */
extern const char store_pg_sql_schema[];
/* Prepared on every (re)connection. */
extern const struct store_pg_stmt store_pg_sql_stmts[];
extern const size_t store_pg_sql_nstmts;

const char *store_pg_sql_class(const char *sqlstate);
int64_t store_pg_sql_int(const PGresult *r, int row, int col);
void store_pg_sql_text(char *dst, size_t cap, const PGresult *r, int row, int col);
char *store_pg_sql_dup(const PGresult *r, int row, int col, size_t *len);
/* Appends an audit record: at_ms, who, via, action, what, message_ids, messages, reason. */
#define STORE_PG_AUDIT_INSERT                                                                      \
	"INSERT INTO audit (at_ms, who, via, action, what, message_ids, messages, reason) "      \
	"VALUES ($1::bigint, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint, "     \
	"$8::text)"

/* Appends s to the text form of a PostgreSQL array being built in b ("{" first, "}" and
 * a NUL last, by the caller): a comma unless first, then s quoted. s is clean text. */
void store_pg_sql_array_add(struct buf *b, const char *s, bool first);
/* The four text arrays of the keys of ix (kind, value, authority, type), as parameters of
 * the statements that insert them; with ids (NULL: none) an array of id, once per key;
 * without ids, a control ID (NULL: none) first, as a key of its own. */
void store_pg_sql_keys(const struct store_index *ix, size_t n, const int64_t *ids,
		       const char *control, struct buf arr[5]);
/* Wipes a column of every row (raw messages) before the result is freed. */
void store_pg_sql_wipe(PGresult *r, int col);
int store_pg_sql_row(const PGresult *r, int i, struct store_row *row, bool with_body);

#endif
