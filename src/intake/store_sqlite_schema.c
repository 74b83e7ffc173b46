/* The SQLite backend's schema: the tables and indexes of a new file, the migrations from
 * older versions (kept in SQLite's user_version), and the SQL functions they use. */
#include "intake/store_sqlite_schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "intake/store_index.h"
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

/* Version 2 to 3 (and a new file, made at version 2 first): the message date and the
 * warnings; the index (message_keys: patient identifiers, family names, order numbers);
 * the indexes a search walks, each ending in id where results come newest first; and the
 * audit trail, which nothing in netwall updates or deletes and triggers refuse to. */
static const char upgrade_v3_sql[] =
	"ALTER TABLE messages ADD COLUMN message_date TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE messages ADD COLUMN warnings TEXT;"
	"CREATE TABLE message_keys ("
	" kind TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" message_id INTEGER NOT NULL REFERENCES messages (id),"
	" authority TEXT NOT NULL DEFAULT '',"
	" id_type TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY (kind, value, message_id, authority, id_type)) WITHOUT ROWID;"
	"CREATE INDEX message_keys_message ON message_keys (message_id);"
	"CREATE INDEX messages_control ON messages (control_id);"
	"CREATE INDEX messages_type ON messages (type, id);"
	"CREATE INDEX messages_sender ON messages (sending_app, id);"
	"CREATE INDEX messages_received ON messages (received_ms);"
	"CREATE INDEX messages_date ON messages (message_date);"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY,"
	" at_ms INTEGER NOT NULL,"
	" who TEXT NOT NULL,"
	" via TEXT NOT NULL,"
	" action TEXT NOT NULL,"
	" what TEXT NOT NULL,"
	" message_ids TEXT NOT NULL,"
	" messages INTEGER NOT NULL,"
	" reason TEXT);"
	"CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'audit records cannot be changed'); END;"
	"CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'audit records cannot be deleted'); END;";

/* Version 3 to 4: the keys store_put writes, appended in message order, until the intake
 * merges them into message_keys in bulk (store_merge_keys); the control ID is found as a
 * key (its own index cost each commit a page per sender), every stored one moved in key
 * order. */
static const char upgrade_v4_sql[] =
	"CREATE TABLE message_keys_pending ("
	" message_id INTEGER NOT NULL REFERENCES messages (id),"
	" kind TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" authority TEXT NOT NULL DEFAULT '',"
	" id_type TEXT NOT NULL DEFAULT '',"
	" PRIMARY KEY (message_id, kind, value, authority, id_type)) WITHOUT ROWID;"
	"DROP INDEX messages_control;"
	"INSERT INTO message_keys (kind, value, message_id, authority, id_type)"
	" SELECT 'control', control_id, id, '', '' FROM messages ORDER BY control_id, id;";

/* Messages indexed per step of the version 3 backfill: read, then written, so the
 * statement that reads is done before the table changes. */
#define BACKFILL_STEP 512

/* Indexes messages id > *after, at most BACKFILL_STEP of them, moving *after. Returns the
 * number indexed (0: none left), or -1 with err. */
static int backfill_step(struct sqlite_store *q, sqlite3_stmt *sel, sqlite3_stmt *date,
			 sqlite3_stmt *keys, int64_t *after, char *err, size_t errlen)
{
	struct store_index *ix = xcalloc(BACKFILL_STEP, sizeof(*ix));
	int64_t ids[BACKFILL_STEP];
	int n = 0, rc = SQLITE_OK;

	sqlite3_bind_int64(sel, 1, *after);
	while (n < BACKFILL_STEP && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		ids[n] = sqlite3_column_int64(sel, 0);
		store_index_read(&ix[n], sqlite3_column_blob(sel, 1),
				 (size_t)sqlite3_column_bytes(sel, 1));
		n++;
	}
	sqlite3_reset(sel);
	if (n < BACKFILL_STEP && rc != SQLITE_DONE)
		goto fail;
	for (int i = 0; i < n; i++) {
		sqlite3_bind_text(date, 1, ix[i].date, -1, SQLITE_STATIC);
		sqlite3_bind_int64(date, 2, ids[i]);
		rc = store_sqlite_conn_run(q, date);
		if (rc == SQLITE_OK)
			rc = store_sqlite_conn_keys(q, keys, ids[i], &ix[i], NULL);
		if (rc != SQLITE_OK)
			goto fail;
	}
	if (n > 0)
		*after = ids[n - 1];
	for (int i = 0; i < n; i++)
		store_index_clear(&ix[i]);
	free(ix);
	return n;
fail:
	for (int i = 0; i < n; i++)
		store_index_clear(&ix[i]);
	free(ix);
	return store_sqlite_conn_fail(q, rc, "schema: index the stored messages", err, errlen);
}

/* Version 2 to 3: the tables, then the index of every stored message from its bytes. */
static int upgrade_v3(struct sqlite_store *q, char *err, size_t errlen)
{
	sqlite3_stmt *st[3] = {NULL, NULL, NULL};
	static const char *const sql[3] = {
		"SELECT id, raw FROM messages WHERE id > ?1 ORDER BY id",
		"UPDATE messages SET message_date = ?1 WHERE id = ?2",
		STORE_SQLITE_KEY_INSERT,
	};
	int64_t after = 0;
	int rc = sqlite3_exec(q->db, upgrade_v3_sql, NULL, NULL, NULL), n;

	for (int i = 0; i < 3 && rc == SQLITE_OK; i++)
		rc = sqlite3_prepare_v2(q->db, sql[i], -1, &st[i], NULL);
	if (rc != SQLITE_OK) {
		n = store_sqlite_conn_fail(q, rc, "schema", err, errlen);
		goto out;
	}
	do
		n = backfill_step(q, st[0], st[1], st[2], &after, err, errlen);
	while (n > 0);
out:
	for (int i = 0; i < 3; i++)
		sqlite3_finalize(st[i]);
	return n;
}

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

		if (version < 2) {
			rc = sqlite3_exec(q->db, version == 1 ? migrate_v1_sql : schema_sql, NULL,
					  NULL, NULL);
			if (rc != SQLITE_OK)
				goto fail;
		}
		if (version < 3 && upgrade_v3(q, err, errlen) == -1) {
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		rc = sqlite3_exec(q->db, upgrade_v4_sql, NULL, NULL, NULL);
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
