/* The PostgreSQL backend's SQL: the schema it creates (and checks the version of), the
 * statements it prepares on every connection, and the reading of their results (binary
 * columns, SQLSTATE classes made into content-free text). */
#include "intake/store_pg_sql.h"

#include <stdio.h>
#include <string.h>

#include "intake/store_util.h"

/* One simple query, so one transaction; the advisory lock (any constant) serialises
 * schema creation between processes starting together. */
const char store_pg_sql_schema[] =
	"SELECT pg_advisory_xact_lock(1853321265);"
	"CREATE TABLE IF NOT EXISTS netwall_meta (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE TABLE IF NOT EXISTS messages ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" sending_app text NOT NULL,"
	" sending_facility text NOT NULL,"
	" control_id text NOT NULL,"
	" type text NOT NULL,"
	" version text NOT NULL,"
	" peer text NOT NULL,"
	" state text NOT NULL,"
	" received_ms bigint NOT NULL,"
	" updated_ms bigint NOT NULL,"
	" size bigint NOT NULL,"
	" raw bytea NOT NULL,"
	" ack bytea NOT NULL,"
	" attempts integer NOT NULL DEFAULT 0,"
	" http_status integer NOT NULL DEFAULT 0,"
	" detail text,"
	" digest bytea NOT NULL,"
	" reused_control_id boolean NOT NULL DEFAULT false,"
	" CONSTRAINT messages_key_digest UNIQUE (sending_app, sending_facility, control_id,"
	" digest));"
	"CREATE INDEX IF NOT EXISTS messages_state ON messages (state, id);"
	"CREATE TABLE IF NOT EXISTS deliveries ("
	" message_id bigint PRIMARY KEY REFERENCES messages (id),"
	" next_ms bigint NOT NULL,"
	" lease_owner text,"
	" lease_until bigint NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (next_ms, message_id);"
	"INSERT INTO netwall_meta VALUES ('schema_version', '2') ON CONFLICT DO NOTHING;"
	/* version 1 to 2: the digest of every stored message (the same SHA-256 of the bytes
	 * as received that store_digest computes), the flag, and the unique key (key, digest)
	 * in place of the unique key */
	"DO $$ DECLARE r record; BEGIN"
	" IF (SELECT value FROM netwall_meta WHERE key = 'schema_version') = '1' THEN"
	"  ALTER TABLE messages ADD COLUMN digest bytea,"
	"   ADD COLUMN reused_control_id boolean NOT NULL DEFAULT false;"
	"  UPDATE messages SET digest = sha256(raw);"
	"  ALTER TABLE messages ALTER COLUMN digest SET NOT NULL;"
	"  FOR r IN SELECT conname FROM pg_constraint WHERE conrelid = 'messages'::regclass"
	"   AND contype = 'u' LOOP"
	"   EXECUTE format('ALTER TABLE messages DROP CONSTRAINT %I', r.conname);"
	"  END LOOP;"
	"  ALTER TABLE messages ADD CONSTRAINT messages_key_digest UNIQUE (sending_app,"
	"   sending_facility, control_id, digest);"
	"  UPDATE netwall_meta SET value = '2' WHERE key = 'schema_version';"
	" END IF; END $$;"
	"SELECT value FROM netwall_meta WHERE key = 'schema_version';";


/* Prepared on every (re)connection. */
const struct store_pg_stmt store_pg_sql_stmts[] = {
	/* the batch's keys, hashed, sorted and distinct: locked in that order, so two
	 * batches never wait for each other in a cycle */
	{"lock", "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k"},
	/* prior: the row with this key and digest if there is one, else the key's first row.
	 * Columns out: id, duplicate, the original's ACK, reused */
	{"put",
	 "WITH prior AS (SELECT id, ack, digest = $12::bytea AS same FROM messages WHERE "
	 "sending_app = $1::text AND sending_facility = $2::text AND control_id = $3::text "
	 "ORDER BY digest = $12::bytea DESC, id LIMIT 1), "
	 "ins AS (INSERT INTO messages (sending_app, sending_facility, control_id, type, "
	 "version, peer, state, received_ms, updated_ms, size, raw, ack, digest, "
	 "reused_control_id, warnings, message_date) SELECT $1::text, $2::text, $3::text, "
	 "$4::text, $5::text, $6::text, "
	 "CASE WHEN p.id IS NOT NULL AND $13::bytea IS NOT NULL THEN 'rejected' ELSE $7::text "
	 "END, $8::bigint, $8::bigint, $9::bigint, $10::bytea, "
	 "CASE WHEN p.id IS NOT NULL AND $13::bytea IS NOT NULL THEN $13::bytea ELSE $11::bytea "
	 "END, $12::bytea, p.id IS NOT NULL, $14::text, $15::text FROM (SELECT 1) AS one "
	 "LEFT JOIN prior p ON true "
	 "WHERE p.same IS NOT TRUE ON CONFLICT (sending_app, sending_facility, control_id, "
	 "digest) DO NOTHING RETURNING id, state, reused_control_id), "
	 "job AS (INSERT INTO deliveries (message_id, next_ms) SELECT id, $8::bigint FROM ins "
	 "WHERE state = 'received'), "
	 "keys AS (INSERT INTO message_keys_pending (kind, value, authority, id_type, "
	 "message_id) SELECT k.kind, k.value, k.authority, k.id_type, ins.id FROM ins, "
	 "unnest($16::text[], $17::text[], $18::text[], $19::text[]) AS k (kind, value, "
	 "authority, id_type)) "
	 "SELECT id, 0::int4, NULL::bytea, reused_control_id FROM ins UNION ALL "
	 "SELECT id, 1::int4, ack, false FROM prior WHERE same"},
	/* the oldest pending keys, at least $1 with every key of the last message, moved in
	 * key order; rows another merge holds are left to it */
	{"merge_keys",
	 "WITH upto AS (SELECT max(message_id) AS id FROM (SELECT message_id FROM "
	 "message_keys_pending ORDER BY message_id LIMIT $1::bigint) AS f), "
	 "moved AS (DELETE FROM message_keys_pending WHERE ctid = ANY (ARRAY(SELECT ctid FROM "
	 "message_keys_pending WHERE message_id <= (SELECT id FROM upto) FOR UPDATE SKIP LOCKED)) "
	 "RETURNING kind, value, authority, id_type, message_id), "
	 "ins AS (INSERT INTO message_keys (kind, value, authority, id_type, message_id) "
	 "SELECT * FROM moved ORDER BY kind, value, message_id, authority, id_type "
	 "ON CONFLICT DO NOTHING) "
	 "SELECT count(*) FROM moved"},
	{"lookup", "SELECT id, 1::int4, ack, false FROM messages WHERE sending_app = $1::text AND "
		   "sending_facility = $2::text AND control_id = $3::text AND digest = $4::bytea"},
	{"claim",
	 "WITH c AS (SELECT message_id FROM deliveries WHERE next_ms <= $2::bigint AND "
	 "(lease_owner IS NULL OR lease_until <= $2::bigint) ORDER BY next_ms, message_id "
	 "LIMIT $4::bigint FOR UPDATE SKIP LOCKED), "
	 "u AS (UPDATE deliveries d SET lease_owner = $1::text, lease_until = $2::bigint + "
	 "$3::bigint FROM c WHERE d.message_id = c.message_id RETURNING d.message_id, d.next_ms) "
	 "SELECT m.id, m.attempts, m.type, m.control_id, m.sending_app, m.sending_facility, m.raw, "
	 "m.reused_control_id, m.digest FROM u JOIN messages m ON m.id = u.message_id ORDER BY u.next_ms, u.message_id"},
	{"finish",
	 "WITH j AS (SELECT message_id FROM deliveries WHERE message_id = $1::bigint AND "
	 "lease_owner = $2::text FOR UPDATE), "
	 "m AS (UPDATE messages SET attempts = attempts + 1, state = $3::text, http_status = "
	 "$4::int4, detail = $5::text, updated_ms = $6::bigint WHERE id IN (SELECT message_id "
	 "FROM j) RETURNING id), "
	 "d AS (DELETE FROM deliveries WHERE message_id IN (SELECT id FROM m) AND $3::text <> "
	 "'failed'), "
	 "r AS (UPDATE deliveries SET next_ms = $7::bigint, lease_owner = NULL, lease_until = 0 "
	 "WHERE message_id IN (SELECT id FROM m) AND $3::text = 'failed') "
	 "SELECT count(*) FROM m"},
	{"get", "SELECT " ROW_COLS ", raw, ack FROM messages WHERE id = $1::bigint"},
	{"counts", "SELECT state, type, count(*), count(*) FILTER (WHERE reused_control_id) "
		   "FROM messages GROUP BY state, type ORDER BY state, type"},
	{"depth", "SELECT count(*) FROM deliveries"},
	{"states", "SELECT state, count(*) FROM messages GROUP BY state"},
	{"replay_jobs",
	 "INSERT INTO deliveries (message_id, next_ms, lease_owner, lease_until) "
	 "SELECT id, $1::bigint, NULL, 0 FROM messages WHERE " REPLAY_WHERE
	 " ON CONFLICT (message_id) DO UPDATE SET next_ms = excluded.next_ms"},
	{"replay_msgs",
	 "UPDATE messages SET state = 'received', attempts = 0, http_status = 0, detail = NULL, "
	 "updated_ms = $1::bigint WHERE " REPLAY_WHERE},
};

const size_t store_pg_sql_nstmts = sizeof(store_pg_sql_stmts) / sizeof(store_pg_sql_stmts[0]);

/* Content-free text for a SQLSTATE, by its class: the server's message can quote values. */
const char *store_pg_sql_class(const char *sqlstate)
{
	static const struct {
		const char *cls, *text;
	} classes[] = {
		{"08", "connection lost"},
		{"53", "insufficient resources (disk full or out of memory)"},
		{"57", "server shutting down or statement cancelled"},
		{"40", "transaction rolled back (serialization failure or deadlock)"},
		{"23", "integrity constraint violated"},
		{"22", "invalid data"},
		{"42", "schema or permission problem"},
		{"25", "invalid transaction state"},
		{"P0", "raised by a trigger or function"},
		{"XX", "internal error"},
	};

	if (sqlstate == NULL)
		return "failed";
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (strncmp(sqlstate, classes[i].cls, 2) == 0)
			return classes[i].text;
	}
	return "failed";
}


/* A binary integer column (int4, int8) of row; 0 when NULL or malformed. */
int64_t store_pg_sql_int(const PGresult *r, int row, int col)
{
	const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
	int len = PQgetlength(r, row, col);
	uint64_t x = 0;

	if (PQgetisnull(r, row, col) || len < 1 || len > 8)
		return 0;
	for (int i = 0; i < len; i++)
		x = x << 8 | v[i];
	if (len < 8 && (v[0] & 0x80))
		x |= ~(uint64_t)0 << (len * 8);
	return (int64_t)x;
}


/* A text column of row into dst, cut to cap - 1 bytes and terminated. */
void store_pg_sql_text(char *dst, size_t cap, const PGresult *r, int row, int col)
{
	store_copy(dst, cap, PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}


/* A column of row in memory of its own (the caller frees), its length in *len if not NULL. */
char *store_pg_sql_dup(const PGresult *r, int row, int col, size_t *len)
{
	size_t n = (size_t)PQgetlength(r, row, col);

	if (len != NULL)
		*len = n;
	return store_strndup(PQgetvalue(r, row, col), n);
}


void store_pg_sql_array_add(struct buf *b, const char *s, bool first)
{
	if (!first)
		buf_append(b, ",", 1);
	buf_append(b, "\"", 1);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_append(b, "\\", 1);
		buf_append(b, s, 1);
	}
	buf_append(b, "\"", 1);
}

void store_pg_sql_keys(const struct store_index *ix, size_t n, const int64_t *ids,
		       const char *control, struct buf arr[5])
{
	bool first = true;

	for (int a = 0; a < 5; a++)
		buf_append(&arr[a], "{", 1);
	if (control != NULL) {
		store_pg_sql_array_add(&arr[0], store_key_kind_name(STORE_KEY_CONTROL), true);
		store_pg_sql_array_add(&arr[1], control, true);
		store_pg_sql_array_add(&arr[2], "", true);
		store_pg_sql_array_add(&arr[3], "", true);
		first = false;
	}
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < ix[i].nkeys; j++) {
			const struct store_key *k = &ix[i].keys[j];
			char id[24];

			store_pg_sql_array_add(&arr[0], store_key_kind_name(k->kind), first);
			store_pg_sql_array_add(&arr[1], k->value, first);
			store_pg_sql_array_add(&arr[2], k->authority, first);
			store_pg_sql_array_add(&arr[3], k->id_type, first);
			if (ids != NULL) {
				snprintf(id, sizeof(id), "%lld", (long long)ids[i]);
				store_pg_sql_array_add(&arr[4], id, first);
			}
			first = false;
		}
	}
	for (int a = 0; a < 5; a++)
		buf_append(&arr[a], "}", 2); /* with the NUL */
}

/* Wipes a column of every row (raw messages) before the result is freed. */
void store_pg_sql_wipe(PGresult *r, int col)
{
	if (r == NULL || col >= PQnfields(r))
		return;
	for (int i = 0; i < PQntuples(r); i++)
		explicit_bzero(PQgetvalue(r, i, col), (size_t)PQgetlength(r, i, col));
}


/* Reads row i of a ROW_COLS result (and raw, ack after it when with_body) into row.
 * Returns 0, or -1 for a state this program does not know. */
int store_pg_sql_row(const PGresult *r, int i, struct store_row *row, bool with_body)
{
	char state[16];

	memset(row, 0, sizeof(*row));
	row->id = store_pg_sql_int(r, i, 0);
	store_pg_sql_text(state, sizeof(state), r, i, 1);
	if (store_state_parse(state, &row->state) == -1)
		return -1;
	store_pg_sql_text(row->app, sizeof(row->app), r, i, 2);
	store_pg_sql_text(row->facility, sizeof(row->facility), r, i, 3);
	store_pg_sql_text(row->control_id, sizeof(row->control_id), r, i, 4);
	store_pg_sql_text(row->type, sizeof(row->type), r, i, 5);
	store_pg_sql_text(row->version, sizeof(row->version), r, i, 6);
	store_pg_sql_text(row->peer, sizeof(row->peer), r, i, 7);
	row->received_ms = store_pg_sql_int(r, i, 8);
	row->updated_ms = store_pg_sql_int(r, i, 9);
	row->attempts = (unsigned)store_pg_sql_int(r, i, 10);
	row->http_status = (int)store_pg_sql_int(r, i, 11);
	if (!PQgetisnull(r, i, 12))
		row->detail = store_pg_sql_dup(r, i, 12, NULL);
	row->reused = store_pg_sql_int(r, i, 13) != 0;
	store_pg_sql_text(row->message_date, sizeof(row->message_date), r, i, 14);
	if (!PQgetisnull(r, i, 15))
		row->warnings = store_pg_sql_dup(r, i, 15, NULL);
	if (with_body) {
		row->raw = store_pg_sql_dup(r, i, 16, &row->raw_len);
		row->ack = store_pg_sql_dup(r, i, 17, &row->ack_len);
	}
	return 0;
}
