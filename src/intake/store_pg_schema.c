/* The PostgreSQL backend's schema: created by one simple query when missing (at version 2,
 * and migrated from version 1 there), then brought to version 3 here: the new columns,
 * tables and indexes, and the index of every stored message read from its bytes, in one
 * transaction; then to version 4. Processes starting together take turns on an advisory lock; the one that
 * comes second finds the work done. The version is kept in netwall_meta, and read first:
 * a store at this version runs none of these statements (they lock the tables, and would
 * wait for every open write on them while the writes that come after wait too). */
#include "intake/store_pg_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "intake/store_index.h"
#include "intake/store_pg_conn.h"
#include "intake/store_pg_sql.h"

/* The same constant as the schema query's lock: creating and migrating take turns. */
#define SCHEMA_LOCK "SELECT pg_advisory_xact_lock(1853321265)"
/* The backfill reads 1000 messages a step (backfill_select). */

/* Version 2 to 3 (see store_sqlite_schema.c): text compared by byte where a search takes a
 * range of it (a type family, a date prefix), whatever the database's collation; every
 * index a search walks holds the id, so the ids it picks come from the index alone (as
 * SQLite's indexes hold the rowid). The audit trail refuses UPDATE, DELETE and TRUNCATE
 * by trigger. */
static const char upgrade_v3_sql[] =
	"ALTER TABLE messages ADD COLUMN message_date text NOT NULL DEFAULT '',"
	" ADD COLUMN warnings text;"
	"CREATE TABLE message_keys ("
	" kind text NOT NULL,"
	" value text NOT NULL,"
	" message_id bigint NOT NULL REFERENCES messages (id),"
	" authority text NOT NULL DEFAULT '',"
	" id_type text NOT NULL DEFAULT '',"
	" PRIMARY KEY (kind, value, message_id, authority, id_type));"
	"CREATE INDEX message_keys_message ON message_keys (message_id);"
	"CREATE INDEX messages_control ON messages (control_id);"
	"CREATE INDEX messages_type ON messages ((type COLLATE \"C\"), id);"
	"CREATE INDEX messages_sender ON messages (sending_app, id);"
	"CREATE INDEX messages_received ON messages (received_ms, id);"
	"CREATE INDEX messages_date ON messages ((message_date COLLATE \"C\"), id);"
	"CREATE TABLE audit ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" at_ms bigint NOT NULL,"
	" who text NOT NULL,"
	" via text NOT NULL,"
	" action text NOT NULL,"
	" what text NOT NULL,"
	" message_ids text NOT NULL,"
	" messages bigint NOT NULL,"
	" reason text);"
	"CREATE OR REPLACE FUNCTION netwall_audit_append_only() RETURNS trigger"
	" LANGUAGE plpgsql AS $$ BEGIN"
	" RAISE EXCEPTION 'audit records cannot be changed or deleted'; END $$;"
	"CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit"
	" FOR EACH ROW EXECUTE FUNCTION netwall_audit_append_only();"
	"CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
	" FOR EACH STATEMENT EXECUTE FUNCTION netwall_audit_append_only();";

/* Version 3 to 4: the keys store_put writes, appended (a heap with one index, on the
 * message id, which only grows), until the intake merges them into message_keys in bulk.
 * message_keys loses its foreign key: its per-row check cost more than the insert, and
 * the keys only ever come from the message's own insert or from the merge. The sender's
 * index compares by byte: the dedupe lookup (sending_app, sending_facility, control_id)
 * must find its unique index in every plan, and a cached generic plan made on an empty
 * table picked the sender's index instead and read every message of the sender. The
 * control ID is found as a key, as on SQLite. */
static const char upgrade_v4_sql[] =
	"CREATE TABLE message_keys_pending ("
	" kind text NOT NULL,"
	" value text NOT NULL,"
	" authority text NOT NULL DEFAULT '',"
	" id_type text NOT NULL DEFAULT '',"
	" message_id bigint NOT NULL);"
	"CREATE INDEX message_keys_pending_message ON message_keys_pending (message_id);"
	"ALTER TABLE message_keys DROP CONSTRAINT IF EXISTS message_keys_message_id_fkey;"
	"DROP INDEX messages_sender;"
	"DROP INDEX messages_control;"
	"INSERT INTO message_keys (kind, value, authority, id_type, message_id)"
	" SELECT 'control', control_id, '', '', id FROM messages ORDER BY control_id, id"
	" ON CONFLICT DO NOTHING;"
	"CREATE INDEX messages_sender ON messages ((sending_app COLLATE \"C\"), id);";

static const char backfill_select[] =
	"SELECT id, raw FROM messages WHERE id > $1::bigint ORDER BY id LIMIT 1000";
static const char backfill_dates[] =
	"UPDATE messages m SET message_date = u.d FROM unnest($1::bigint[], $2::text[]) AS "
	"u (id, d) WHERE m.id = u.id";
static const char backfill_keys[] =
	"INSERT INTO message_keys (kind, value, authority, id_type, message_id) SELECT * FROM "
	"unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[]) "
	"ON CONFLICT DO NOTHING";

/* Runs sql (no parameters) on the connection as it is; 0 or -1 with err. */
static int run(struct pg_store *p, const char *sql, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(p->conn, sql);
	int rc = store_pg_conn_ok(r) ? 0 : -1;

	if (rc == -1)
		store_pg_conn_fail(p, r, what, err, errlen);
	PQclear(r);
	return rc;
}

/* Writes the dates and keys of n messages read by one step. Returns 0 or -1 with err. */
static int backfill_write(struct pg_store *p, const int64_t *ids, struct store_index *ix,
			  size_t n, char *err, size_t errlen)
{
	struct buf keys[5] = {{0}}, dates[2] = {{0}};
	const char *v[5];
	PGresult *r;
	int rc;

	store_pg_sql_keys(ix, n, ids, NULL, keys);
	buf_append(&dates[0], "{", 1);
	buf_append(&dates[1], "{", 1);
	for (size_t i = 0; i < n; i++) {
		char id[24];

		snprintf(id, sizeof(id), "%lld", (long long)ids[i]);
		store_pg_sql_array_add(&dates[0], id, i == 0);
		store_pg_sql_array_add(&dates[1], ix[i].date, i == 0);
	}
	buf_append(&dates[0], "}", 2);
	buf_append(&dates[1], "}", 2);
	for (int a = 0; a < 2; a++)
		v[a] = (const char *)buf_head(&dates[a]);
	r = PQexecParams(p->conn, backfill_dates, 2, NULL, v, NULL, NULL, 0);
	rc = store_pg_conn_ok(r) ? 0 : -1;
	if (rc == -1)
		store_pg_conn_fail(p, r, "schema: index the stored messages", err, errlen);
	PQclear(r);
	for (int a = 0; a < 5; a++)
		v[a] = (const char *)buf_head(&keys[a]);
	if (rc == 0) {
		r = PQexecParams(p->conn, backfill_keys, 5, NULL, v, NULL, NULL, 0);
		rc = store_pg_conn_ok(r) ? 0 : -1;
		if (rc == -1)
			store_pg_conn_fail(p, r, "schema: index the stored messages", err, errlen);
		PQclear(r);
	}
	for (int a = 0; a < 5; a++)
		buf_free(&keys[a]);
	buf_free(&dates[0]);
	buf_free(&dates[1]);
	return rc;
}

/* Indexes the messages after *after, 1000 at most, moving *after. Returns the
 * number indexed (0: none left) or -1 with err. */
static int backfill_step(struct pg_store *p, int64_t *after, char *err, size_t errlen)
{
	char from[24];
	const char *v[1] = {from};
	PGresult *r;
	struct store_index *ix;
	int64_t *ids;
	int n, rc;

	snprintf(from, sizeof(from), "%lld", (long long)*after);
	r = PQexecParams(p->conn, backfill_select, 1, NULL, v, NULL, NULL, 1);
	if (!store_pg_conn_ok(r)) {
		store_pg_conn_fail(p, r, "schema: read the stored messages", err, errlen);
		PQclear(r);
		return -1;
	}
	n = PQntuples(r);
	ix = xcalloc((size_t)n + 1, sizeof(*ix));
	ids = xcalloc((size_t)n + 1, sizeof(*ids));
	for (int i = 0; i < n; i++) {
		ids[i] = store_pg_sql_int(r, i, 0);
		store_index_read(&ix[i], PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
	}
	store_pg_sql_wipe(r, 1);
	PQclear(r);
	rc = n > 0 ? backfill_write(p, ids, ix, (size_t)n, err, errlen) : 0;
	if (n > 0)
		*after = ids[n - 1];
	for (int i = 0; i < n; i++)
		store_index_clear(&ix[i]);
	free(ix);
	free(ids);
	return rc == -1 ? -1 : n;
}

/* From version from to from + 1 in one transaction (sql, then for version 3 the index of
 * every stored message), unless another process did it first. */
static int upgrade(struct pg_store *p, long from, const char *sql, char *err, size_t errlen)
{
	char done[80], was[8];
	PGresult *r;
	int64_t after = 0;
	int n = 0;

	if (run(p, "BEGIN", "schema", err, errlen) == -1)
		return -1;
	if (run(p, SCHEMA_LOCK, "schema", err, errlen) == -1)
		goto fail;
	r = PQexec(p->conn, "SELECT value FROM netwall_meta WHERE key = 'schema_version'");
	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		store_pg_conn_fail(p, r, "schema", err, errlen);
		PQclear(r);
		goto fail;
	}
	snprintf(was, sizeof(was), "%ld", from);
	n = strcmp(PQgetvalue(r, 0, 0), was);
	PQclear(r);
	if (n != 0)
		return run(p, "COMMIT", "schema", err, errlen); /* done by another */
	if (run(p, sql, "schema: upgrade", err, errlen) == -1)
		goto fail;
	if (from == 2) {
		do
			n = backfill_step(p, &after, err, errlen);
		while (n > 0);
	}
	snprintf(done, sizeof(done),
		 "UPDATE netwall_meta SET value = '%ld' WHERE key = 'schema_version'", from + 1);
	if (n == -1 || run(p, done, "schema", err, errlen) == -1 ||
	    run(p, "COMMIT", "schema", err, errlen) == -1)
		goto fail;
	return 0;
fail:
	PQclear(PQexec(p->conn, "ROLLBACK"));
	return -1;
}

/* The version the store is at, read without a lock on any table but netwall_meta (which
 * nothing but the schema's own statements write): *version 0 when it or the row is missing
 * (a new database). Returns 0 or -1 with err. */
static int schema_version(struct pg_store *p, long *version, char *err, size_t errlen)
{
	PGresult *r = PQexec(p->conn, "SELECT value FROM netwall_meta WHERE key = 'schema_version'");
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	int rc = 0;

	*version = 0;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		*version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK &&
		 (code == NULL || strcmp(code, "42P01") != 0)) { /* 42P01: no such table */
		store_pg_conn_fail(p, r, "schema", err, errlen);
		rc = -1;
	}
	PQclear(r);
	return rc;
}

/* Creates the schema at version 2, or brings version 1 there: the schema query, whose
 * CREATE ... IF NOT EXISTS locks the tables even when they exist, so it runs only when the
 * store is new or that old. Returns 0 or -1 with err. */
static int schema_create(struct pg_store *p, long *version, char *err, size_t errlen)
{
	PGresult *r = PQexec(p->conn, store_pg_sql_schema);

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		store_pg_conn_fail(p, r, "schema", err, errlen);
		PQclear(r);
		return -1;
	}
	*version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

int store_pg_schema_open(struct pg_store *p, char *err, size_t errlen)
{
	long version;

	/* a store at this version is opened without a lock that waits for its writers */
	if (schema_version(p, &version, err, errlen) == -1)
		return -1;
	if (version < 2 && schema_create(p, &version, err, errlen) == -1)
		return -1;
	if (version == 2) {
		if (upgrade(p, 2, upgrade_v3_sql, err, errlen) == -1)
			return -1;
		version = 3;
	}
	if (version == 3) {
		if (upgrade(p, 3, upgrade_v4_sql, err, errlen) == -1)
			return -1;
		version = 4;
	}
	if (version != STORE_SCHEMA_VERSION) {
		err_set(err, errlen, "postgresql: schema version %ld is not this program's %d",
			version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}
