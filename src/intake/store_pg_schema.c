/* The PostgreSQL backend's schema: created by one simple query when missing (and
 * migrated from version 1 there), its version kept in netwall_meta. */
#include "intake/store_pg_schema.h"

#include <stdlib.h>

#include "intake/store_pg_conn.h"
#include "intake/store_pg_sql.h"

int store_pg_schema_open(struct pg_store *p, char *err, size_t errlen)
{
	PGresult *r = PQexec(p->conn, store_pg_sql_schema);
	long version;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
		store_pg_conn_fail(p, r, "schema", err, errlen);
		PQclear(r);
		return -1;
	}
	version = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	if (version != STORE_SCHEMA_VERSION) {
		err_set(err, errlen, "postgresql: schema version %ld is not this program's %d",
			version, STORE_SCHEMA_VERSION);
		return -1;
	}
	return 0;
}
