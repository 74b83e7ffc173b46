/* The SQLite backend's schema: the tables and indexes of a new file, the migrations from
 * older versions (kept in SQLite's user_version), and the SQL functions they use. */
#include "intake/store_sqlite_schema.h"

#include <stdio.h>
#include <string.h>

#include "intake/store_sqlite_conn.h"

#define MESSAGES_COLUMNS                                                                           \
	" id INTEGER PRIMARY KEY,"                                                                 \
	" sending_app TEXT NOT NULL,"                                                              \
	" sending_facility TEXT NOT NULL,"                                                         \
	" control_id TEXT NOT NULL,"                                                               \
	" type TEXT NOT NULL,"                                                                     \
	" version TEXT NOT NULL,"                                                                  \
	" peer TEXT NOT NULL,"                                                                     \
	" state TEXT NOT NULL,"                                                                    \
	" received_ms INTEGER NOT NULL,"                                                           \
	" updated_ms INTEGER NOT NULL,"                                                            \
	" size INTEGER NOT NULL,"                                                                  \
	" raw BLOB NOT NULL,"                                                                      \
	" ack BLOB NOT NULL,"                                                                      \
	" attempts INTEGER NOT NULL DEFAULT 0,"                                                    \
	" http_status INTEGER NOT NULL DEFAULT 0,"                                                 \
	" detail TEXT,"                                                                            \
	" digest BLOB NOT NULL,"                                                                   \
	" reused_control_id INTEGER NOT NULL DEFAULT 0,"                                           \
	" UNIQUE (sending_app, sending_facility, control_id, digest)"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS messages (" MESSAGES_COLUMNS ");"
    "CREATE INDEX IF NOT EXISTS messages_state ON messages (state, id);"
    "CREATE TABLE IF NOT EXISTS deliveries ("
    " message_id INTEGER PRIMARY KEY REFERENCES messages (id),"
    " next_ms INTEGER NOT NULL,"
    " lease_owner TEXT,"
    " lease_until INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_ms, message_id);";

/* Version 1 to 2: the table is rebuilt (SQLite cannot drop a UNIQUE constraint) with the
 * digest of every stored message, so the old rows dedupe their retransmissions as before.
 * Runs with foreign keys off, inside the schema transaction; the deliveries rows keep
 * their message ids. */
static const char migrate_v1_sql[] =
    "CREATE TABLE messages_v2 (" MESSAGES_COLUMNS ");"
    "INSERT INTO messages_v2 (id, sending_app, sending_facility, control_id, type, version,"
    " peer, state, received_ms, updated_ms, size, raw, ack, attempts, http_status, detail,"
    " digest, reused_control_id) SELECT id, sending_app, sending_facility, control_id, type,"
    " version, peer, state, received_ms, updated_ms, size, raw, ack, attempts, http_status,"
    " detail, netwall_sha256(raw), 0 FROM messages;"
    "DROP TABLE messages;"
    "ALTER TABLE messages_v2 RENAME TO messages;"
    "CREATE INDEX messages_state ON messages (state, id);";

/* SQL function netwall_sha256(blob): store_digest, for the schema migration. */
static void sq_sha256(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	uint8_t d[STORE_DIGEST_LEN];
	const void *p = sqlite3_value_blob(argv[0]);

	(void)argc;
	store_digest(p, p != NULL ? (size_t)sqlite3_value_bytes(argv[0]) : 0, d);
	sqlite3_result_blob(ctx, d, STORE_DIGEST_LEN, SQLITE_TRANSIENT);
}

/* Creates the tables on a new file, refuses a file from a newer program. */
static int schema(struct sqlite_store *q, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc, version;

	rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "schema", err, errlen);
	rc = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = SQLITE_OK;
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		goto fail;
	if (version > STORE_SCHEMA_VERSION) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		err_set(err, errlen, "sqlite: schema version %d is newer than this program's %d",
			version, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < STORE_SCHEMA_VERSION) {
		char sql[64];

		rc = sqlite3_exec(q->db, version == 1 ? migrate_v1_sql : schema_sql, NULL, NULL,
				  NULL);
		if (rc != SQLITE_OK)
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
		rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			goto fail;
	}
	rc = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	return 0;
fail:
	store_sqlite_conn_fail(q, rc, "schema", err, errlen);
	if (!sqlite3_get_autocommit(q->db))
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int store_sqlite_schema_open(struct sqlite_store *q, char *err, size_t errlen)
{
	int rc =
	    sqlite3_create_function(q->db, "netwall_sha256", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				    NULL, sq_sha256, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_sqlite_conn_fail(q, rc, "create function", err, errlen);
	return schema(q, err, errlen);
}
