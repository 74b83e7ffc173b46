/* The PostgreSQL backend (being written). */
#include "hl7/store_int.h"

struct store *store_pg_open(const char *url, char *err, size_t errlen)
{
	store_err(err, errlen, "postgresql: not built yet");
	return NULL;
}
