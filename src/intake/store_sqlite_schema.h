/* The SQLite backend's schema (store_sqlite_schema.c): created on a new file, migrated on
 * an old one, refused from a newer program. */
#ifndef NETWALL_STORE_SQLITE_SCHEMA_H
#define NETWALL_STORE_SQLITE_SCHEMA_H
#include <stddef.h>

struct sqlite_store;

/* Registers the SQL functions the migrations use, then creates or migrates the schema in
 * one transaction. Runs before foreign keys are on (a migration rebuilds the messages
 * table). Returns 0 or -1 with err. */
int store_sqlite_schema_open(struct sqlite_store *q, char *err, size_t errlen);

#endif
