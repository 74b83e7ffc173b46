/* The PostgreSQL backend's schema (store_pg_schema.c): created when missing, migrated
 * from older versions, refused from another program's version. */
#ifndef NETWALL_STORE_PG_SCHEMA_H
#define NETWALL_STORE_PG_SCHEMA_H
#include <stddef.h>

struct pg_store;

/* Creates or migrates the schema; processes starting together take turns. Returns 0 or
 * -1 with err. */
int store_pg_schema_open(struct pg_store *p, char *err, size_t errlen);

#endif
