/* The SQL of a list or a search (store_query.c), for both backends: one text with its
 * parameters in order, in SQLite's (?N) or PostgreSQL's ($N::type) form. */
#ifndef NETWALL_STORE_QUERY_H
#define NETWALL_STORE_QUERY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intake/store_util.h"

#define STORE_QUERY_PARAMS 16

struct store_param {
	bool is_num;
	int64_t num;
	const char *text; /* the filter's, or made[] */
};

struct store_query {
	char sql[4096];
	int nparams;
	struct store_param params[STORE_QUERY_PARAMS];
	char made[3][STORE_KEY_LEN + 8]; /* bounds made from the filter's values */
	char num[STORE_QUERY_PARAMS][24]; /* PostgreSQL: the numbers as text */
	char ph[24];                      /* the last placeholder made */
};

/* Builds the SELECT of f into q: the columns cols (the backend's row columns), then the
 * keys when f->with_keys; the conditions; newest first; the limit. pg picks PostgreSQL's form.
 * Returns 0, or -1 when a value is longer than a stored one can be (nothing can match). */
int store_query_list(struct store_query *q, const struct store_filter *f, const char *cols,
		     bool pg);

#endif
