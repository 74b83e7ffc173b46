/* The message store's front: argument checks, header text made safe for both databases,
 * and dispatch to the backend the spec names, through its table of operations (as
 * OpenSMTPD's queue_backend.c picks a queue backend by name). */
#include "intake/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/xalloc.h"
#include "intake/store_index.h"
#include "intake/store_int.h"

/* The backends by the spec's scheme, first match; the last, without one, takes a path. */
static const struct {
	const char *scheme;
	const struct store_ops *ops;
} store_backends[] = {
	{ "postgresql://", &store_pg_ops },
	{ "postgres://", &store_pg_ops },
	{ "", &store_sqlite_ops },
};

struct store *store_open(const char *spec, char *err, size_t errlen)
{
	if (spec == NULL || spec[0] == '\0') {
		err_set(err, errlen, "empty store spec");
		return NULL;
	}
	for (size_t i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++) {
		const char *scheme = store_backends[i].scheme;

		if (strncmp(spec, scheme, strlen(scheme)) == 0)
			return store_backends[i].ops->open(spec, err, errlen);
	}
	abort(); /* a broken invariant: the last entry matches every spec */
}

void store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

void store_interrupt(struct store *s)
{
	s->ops->interrupt(s);
}

const char *store_kind(const struct store *s)
{
	return s->ops->kind;
}

#define PUT_FIELDS 7

/* The header fields of m, by address, so they can be checked and swapped in a loop. */
static void put_fields(struct store_msg *m, const char **f[PUT_FIELDS])
{
	f[0] = &m->app;
	f[1] = &m->facility;
	f[2] = &m->control_id;
	f[3] = &m->type;
	f[4] = &m->version;
	f[5] = &m->peer;
	f[6] = &m->warnings;
}

/* Reads the index of every message that came without one (on the committer's thread: one
 * more parse of each message, a few microseconds) into made[]. Returns made, or NULL
 * when every message had its index. */
static struct store_index *put_index(struct store_msg *msgs, size_t n)
{
	struct store_index *made = NULL;

	for (size_t i = 0; i < n; i++) {
		if (msgs[i].index != NULL)
			continue;
		if (made == NULL)
			made = xcalloc(n, sizeof(*made));
		store_index_read(&made[i], msgs[i].raw, msgs[i].raw_len);
		msgs[i].index = &made[i];
	}
	return made;
}

static void put_index_free(struct store_msg *msgs, size_t n, struct store_index *made)
{
	if (made == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].index != &made[i])
			continue;
		store_index_clear(&made[i]);
		msgs[i].index = NULL;
	}
	free(made);
}

int store_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen)
{
	char **made = NULL; /* cleaned copies, PUT_FIELDS per message, NULL where unchanged */
	const char **saved = NULL;
	struct store_index *index;
	int rc;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct store_msg *m = &msgs[i];
		const char **f[PUT_FIELDS];

		m->duplicate = false;
		m->reused = false;
		m->id = 0;
		m->keys = 0;
		if (m->state != STORE_RECEIVED && m->state != STORE_IGNORED &&
		    m->state != STORE_REJECTED) {
			err_set(err, errlen, "message %zu: cannot store in state %s", i,
				  store_state_name(m->state));
			return -1;
		}
		if (m->raw == NULL && m->raw_len) {
			err_set(err, errlen, "message %zu: no raw bytes", i);
			return -1;
		}
		if (!m->digest_set) {
			store_digest(m->raw, m->raw_len, m->digest);
			m->digest_set = true;
		}
		put_fields(m, f);
		for (size_t k = 0; k < PUT_FIELDS; k++) {
			if (*f[k] == NULL)
				*f[k] = ""; /* an absent field is stored empty */
			if (store_text_is_clean(*f[k]))
				continue;
			if (made == NULL) {
				made = xcalloc(n * PUT_FIELDS, sizeof(*made));
				saved = xcalloc(n * PUT_FIELDS, sizeof(*saved));
			}
			saved[i * PUT_FIELDS + k] = *f[k];
			made[i * PUT_FIELDS + k] = store_text_clean(*f[k]);
			*f[k] = made[i * PUT_FIELDS + k];
		}
	}
	index = put_index(msgs, n);
	rc = s->ops->put(s, msgs, n, err, errlen);
	for (size_t i = 0; i < n; i++)
		msgs[i].keys = rc == 0 && !msgs[i].duplicate ? msgs[i].index->nkeys + 1 : 0;
	put_index_free(msgs, n, index);
	if (made == NULL)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const char **f[PUT_FIELDS];

		put_fields(&msgs[i], f);
		for (size_t k = 0; k < PUT_FIELDS; k++) {
			char *c = made[i * PUT_FIELDS + k];

			if (c == NULL)
				continue;
			*f[k] = saved[i * PUT_FIELDS + k];
			store_wipe_free(c, strlen(c));
		}
	}
	free(made);
	free(saved);
	return rc;
}

int store_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms, size_t max,
		struct store_job **jobs, char *err, size_t errlen)
{
	*jobs = NULL;
	if (owner == NULL || owner[0] == '\0' || lease_ms <= 0) {
		err_set(err, errlen, "claim needs an owner and a positive lease");
		return -1;
	}
	if (max == 0)
		return 0;
	if (max > 100000)
		max = 100000;
	return s->ops->claim(s, owner, now_ms, lease_ms, max, jobs, err, errlen);
}

int store_finish(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		 char *err, size_t errlen)
{
	if (owner == NULL || owner[0] == '\0') {
		err_set(err, errlen, "finish needs an owner");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (o[i].state != STORE_DELIVERED && o[i].state != STORE_FAILED &&
		    o[i].state != STORE_DEAD) {
			err_set(err, errlen, "outcome %zu: state %s is not an outcome", i,
				  store_state_name(o[i].state));
			return -1;
		}
	}
	if (n == 0)
		return 0;
	return s->ops->finish(s, owner, o, n, err, errlen);
}

/* The values a search compares, by address: made clean as the stored ones were. */
#define SEARCH_FIELDS 8

static void search_fields(struct store_filter *f, const char **v[SEARCH_FIELDS])
{
	v[0] = &f->patient;
	v[1] = &f->name;
	v[2] = &f->order;
	v[3] = &f->control_id;
	v[4] = &f->app;
	v[5] = &f->facility;
	v[6] = &f->date;
	v[7] = &f->type;
}

int store_list(struct store *s, const struct store_filter *f, struct store_row **rows, char *err,
	       size_t errlen)
{
	struct store_filter any = {.state = -1}, g;
	const char **v[SEARCH_FIELDS];
	char *made[SEARCH_FIELDS] = {NULL};
	int rc;

	*rows = NULL;
	if (f == NULL)
		f = &any;
	if (f->state < -1 || f->state >= STORE_NSTATES) {
		err_set(err, errlen, "bad state filter");
		return -1;
	}
	g = *f;
	search_fields(&g, v);
	for (size_t k = 0; k < SEARCH_FIELDS; k++) {
		if (*v[k] == NULL || (k != 1 && store_text_is_clean(*v[k])))
			continue;
		made[k] = store_text_is_clean(*v[k]) ? xstrdup(*v[k]) : store_text_clean(*v[k]);
		if (k == 1)
			store_index_fold(made[k]); /* names are kept upper-cased */
		*v[k] = made[k];
	}
	rc = s->ops->list(s, &g, rows, err, errlen);
	for (size_t k = 0; k < SEARCH_FIELDS; k++)
		if (made[k] != NULL)
			store_wipe_free(made[k], strlen(made[k]));
	return rc;
}

int store_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen)
{
	memset(row, 0, sizeof(*row));
	return s->ops->get(s, id, row, err, errlen);
}

int store_counts(struct store *s, struct store_count **out, char *err, size_t errlen)
{
	*out = NULL;
	return s->ops->counts(s, out, err, errlen);
}

int store_release(struct store *s, const char *owner, const int64_t *ids, size_t n, char *err,
		  size_t errlen)
{
	if (n == 0)
		return 0;
	return s->ops->release(s, owner, ids, n, err, errlen);
}

int store_relax(struct store *s, char *err, size_t errlen)
{
	return s->ops->relax(s, err, errlen);
}

int store_count_states(struct store *s, uint64_t out[STORE_NSTATES], char *err, size_t errlen)
{
	memset(out, 0, STORE_NSTATES * sizeof(out[0]));
	return s->ops->count_states(s, out, err, errlen);
}

int store_queue_depth(struct store *s, uint64_t *n, char *err, size_t errlen)
{
	return s->ops->queue_depth(s, n, err, errlen);
}

int store_oldest_undelivered(struct store *s, int64_t *received_ms, char *err, size_t errlen)
{
	*received_ms = 0;
	return s->ops->oldest_undelivered(s, received_ms, err, errlen);
}

int store_replay(struct store *s, int64_t id, enum store_state from, char *err, size_t errlen)
{
	if (id < 0 || (id == 0 && from != STORE_DEAD && from != STORE_FAILED)) {
		err_set(err, errlen, "only dead or failed messages can be replayed in bulk");
		return -1;
	}
	return s->ops->replay(s, id, from, clock_wall_ms(), err, errlen);
}

/* s, made clean text in memory of its own; "" for NULL when empty_ok, else NULL. */
static char *audit_text(const char *s, bool empty_ok)
{
	if (s == NULL)
		return empty_ok ? xstrdup("") : NULL;
	return store_text_is_clean(s) ? xstrdup(s) : store_text_clean(s);
}

int store_merge_keys(struct store *s, size_t max, char *err, size_t errlen)
{
	if (max == 0 || max > INT32_MAX) {
		err_set(err, errlen, "keys to merge: %zu is out of range", max);
		return -1;
	}
	return s->ops->merge_keys(s, max, err, errlen);
}

/* r made from a: clean copies of its text (audit_row_clear frees them), its ids joined. */
static void audit_row_make(const struct store_audit *a, struct store_audit_row *r)
{
	struct buf ids = {0};

	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < a->nids; i++) {
		char num[24];
		int n = snprintf(num, sizeof(num), "%s%lld", i ? "," : "", (long long)a->ids[i]);

		buf_append(&ids, num, (size_t)n);
	}
	buf_append(&ids, "", 1);
	r->at_ms = a->at_ms > 0 ? a->at_ms : clock_wall_ms();
	r->messages = a->nids;
	r->who = audit_text(a->who, true);
	r->via = audit_text(a->via, true);
	r->action = audit_text(a->action, true);
	r->what = audit_text(a->what, true);
	r->reason = a->reason != NULL && a->reason[0] != '\0' ? audit_text(a->reason, false) : NULL;
	r->message_ids = xstrdup((const char *)buf_head(&ids));
	buf_free(&ids);
}

static void audit_row_clear(struct store_audit_row *r)
{
	free(r->who);
	free(r->via);
	free(r->action);
	store_wipe_free(r->what, strlen(r->what));
	if (r->reason != NULL)
		store_wipe_free(r->reason, strlen(r->reason));
	free(r->message_ids);
}

int store_audit_add(struct store *s, const struct store_audit *a, char *err, size_t errlen)
{
	struct store_audit_row r;
	int rc;

	if (a->who == NULL || a->action == NULL || a->via == NULL) {
		err_set(err, errlen, "an audit record needs who, via and action");
		return -1;
	}
	audit_row_make(a, &r);
	rc = s->ops->audit_add(s, &r, err, errlen);
	audit_row_clear(&r);
	return rc;
}

int store_prune(struct store *s, const struct store_prune *p, const struct store_audit *a,
		uint64_t *bytes, char *err, size_t errlen)
{
	struct store_audit_row r;
	struct store_audit none = *a;
	int rc;

	*bytes = 0;
	if (a->who == NULL || a->action == NULL || a->via == NULL) {
		err_set(err, errlen, "an audit record needs who, via and action");
		return -1;
	}
	if (p->id < 0 || p->state < -1 || p->state >= STORE_NSTATES ||
	    (p->id == 0 && p->state != -1 && p->state != STORE_DELIVERED &&
	     p->state != STORE_IGNORED && p->state != STORE_REJECTED && p->state != STORE_DEAD)) {
		err_set(err, errlen, "received and failed messages are still to be delivered: "
				     "they are never removed");
		return -1;
	}
	if (p->max == 0 || (p->id == 0 && p->state == -1 && p->before_ms == 0 && p->excess == 0))
		return 0;
	none.ids = NULL; /* the backend names what it removed */
	none.nids = 0;
	audit_row_make(&none, &r);
	rc = s->ops->prune(s, p, &r, bytes, err, errlen);
	audit_row_clear(&r);
	return rc;
}

int store_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen)
{
	*bytes = 0;
	return s->ops->bytes(s, bytes, err, errlen);
}

int store_prune_turn(struct store *s, bool take, char *err, size_t errlen)
{
	return s->ops->prune_turn(s, take, err, errlen);
}

int store_compact(struct store *s, char *err, size_t errlen)
{
	return s->ops->compact(s, err, errlen);
}

int store_audit_list(struct store *s, int64_t before_id, size_t limit,
		     struct store_audit_row **rows, char *err, size_t errlen)
{
	*rows = NULL;
	return s->ops->audit_list(s, before_id, limit, rows, err, errlen);
}
