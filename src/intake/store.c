/* The message store's front: state names, argument checks, header text made safe for
 * both databases, and dispatch to the backend the spec names. */
#include "intake/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/utf8.h"
#include "intake/store_int.h"

static const char *const state_names[STORE_NSTATES] = {
	[STORE_RECEIVED] = "received", [STORE_FAILED] = "failed", [STORE_DELIVERED] = "delivered",
	[STORE_DEAD] = "dead",         [STORE_IGNORED] = "ignored", [STORE_REJECTED] = "rejected",
};

const char *store_state_name(enum store_state s)
{
	if ((unsigned)s >= STORE_NSTATES)
		return "unknown";
	return state_names[s];
}

int store_state_parse(const char *name, enum store_state *out)
{
	if (name == NULL)
		return -1;
	for (unsigned i = 0; i < STORE_NSTATES; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum store_state)i;
			return 0;
		}
	}
	return -1;
}

void store_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void store_copy(char *dst, size_t cap, const void *src, size_t n)
{
	if (cap == 0)
		return;
	if (src == NULL)
		n = 0;
	if (n > cap - 1)
		n = cap - 1;
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

void *store_alloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		log_fatal("event=oom bytes=%zu", n);
	return p;
}

void *store_zalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		log_fatal("event=oom bytes=%zu", nmemb * size);
	return p;
}

char *store_strndup(const void *p, size_t n)
{
	char *s = store_alloc(n + 1);

	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

void store_wipe_free(void *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

void store_digest(const void *raw, size_t len, uint8_t out[STORE_DIGEST_LEN])
{
	unsigned n = 0;

	if (EVP_Digest(len ? raw : "", len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != STORE_DIGEST_LEN)
		log_fatal("event=digest_failed what=sha256"); /* a broken invariant: libcrypto */
}

static int text_is_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		size_t n = utf8_seq(p, left, NULL);

		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)))
			return 0;
		p += n;
		left -= n;
	}
	return 1;
}

/* A copy of s with every byte that is not valid UTF-8, and every control character,
 * written as \xHH, so the text is the same in SQLite and PostgreSQL (whose text type
 * refuses invalid UTF-8) and the same key always maps to the same row. */
static char *text_clean(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	char *out = store_alloc(left * 4 + 1);
	size_t o = 0;

	while (left) {
		size_t n = utf8_seq(p, left, NULL);

		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f))) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
			n = 1;
		} else {
			memcpy(out + o, p, n);
			o += n;
		}
		p += n;
		left -= n;
	}
	out[o] = '\0';
	return out;
}

struct store *store_open(const char *spec, char *err, size_t errlen)
{
	if (spec == NULL || spec[0] == '\0') {
		store_err(err, errlen, "empty store spec");
		return NULL;
	}
	if (strncmp(spec, "postgresql://", 13) == 0 || strncmp(spec, "postgres://", 11) == 0)
		return store_pg_open(spec, err, errlen);
	return store_sqlite_open(spec, err, errlen);
}

void store_close(struct store *s)
{
	if (s != NULL)
		s->ops->close(s);
}

const char *store_kind(const struct store *s)
{
	return s->ops->kind;
}

#define PUT_FIELDS 6

/* The header fields of m, by address, so they can be checked and swapped in a loop. */
static void put_fields(struct store_msg *m, const char **f[PUT_FIELDS])
{
	f[0] = &m->app;
	f[1] = &m->facility;
	f[2] = &m->control_id;
	f[3] = &m->type;
	f[4] = &m->version;
	f[5] = &m->peer;
}

int store_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen)
{
	char **made = NULL; /* cleaned copies, PUT_FIELDS per message, NULL where unchanged */
	const char **saved = NULL;
	int rc;

	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		struct store_msg *m = &msgs[i];
		const char **f[PUT_FIELDS];

		m->duplicate = false;
		m->reused = false;
		m->id = 0;
		if (m->state != STORE_RECEIVED && m->state != STORE_IGNORED &&
		    m->state != STORE_REJECTED) {
			store_err(err, errlen, "message %zu: cannot store in state %s", i,
				  store_state_name(m->state));
			return -1;
		}
		if (m->raw == NULL && m->raw_len) {
			store_err(err, errlen, "message %zu: no raw bytes", i);
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
			if (text_is_clean(*f[k]))
				continue;
			if (made == NULL) {
				made = store_zalloc(n * PUT_FIELDS, sizeof(*made));
				saved = store_zalloc(n * PUT_FIELDS, sizeof(*saved));
			}
			saved[i * PUT_FIELDS + k] = *f[k];
			made[i * PUT_FIELDS + k] = text_clean(*f[k]);
			*f[k] = made[i * PUT_FIELDS + k];
		}
	}
	rc = s->ops->put(s, msgs, n, err, errlen);
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
		store_err(err, errlen, "claim needs an owner and a positive lease");
		return -1;
	}
	if (max == 0)
		return 0;
	if (max > 100000)
		max = 100000;
	return s->ops->claim(s, owner, now_ms, lease_ms, max, jobs, err, errlen);
}

void store_jobs_free(struct store_job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_wipe_free(jobs[i].raw, jobs[i].raw_len);
	explicit_bzero(jobs, n * sizeof(*jobs));
	free(jobs);
}

int store_finish(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		 char *err, size_t errlen)
{
	if (owner == NULL || owner[0] == '\0') {
		store_err(err, errlen, "finish needs an owner");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (o[i].state != STORE_DELIVERED && o[i].state != STORE_FAILED &&
		    o[i].state != STORE_DEAD) {
			store_err(err, errlen, "outcome %zu: state %s is not an outcome", i,
				  store_state_name(o[i].state));
			return -1;
		}
	}
	if (n == 0)
		return 0;
	return s->ops->finish(s, owner, o, n, err, errlen);
}

int store_list(struct store *s, const struct store_filter *f, struct store_row **rows, char *err,
	       size_t errlen)
{
	struct store_filter any = {.state = -1};

	*rows = NULL;
	if (f == NULL)
		f = &any;
	if (f->state < -1 || f->state >= STORE_NSTATES) {
		store_err(err, errlen, "bad state filter");
		return -1;
	}
	return s->ops->list(s, f, rows, err, errlen);
}

int store_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen)
{
	memset(row, 0, sizeof(*row));
	return s->ops->get(s, id, row, err, errlen);
}

void store_row_clear(struct store_row *row)
{
	if (row == NULL)
		return;
	free(row->detail);
	store_wipe_free(row->raw, row->raw_len);
	store_wipe_free(row->ack, row->ack_len);
	explicit_bzero(row, sizeof(*row));
}

void store_rows_free(struct store_row *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_row_clear(&rows[i]);
	free(rows);
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

int store_replay(struct store *s, int64_t id, enum store_state from, char *err, size_t errlen)
{
	if (id < 0 || (id == 0 && from != STORE_DEAD && from != STORE_FAILED)) {
		store_err(err, errlen, "only dead or failed messages can be replayed in bulk");
		return -1;
	}
	return s->ops->replay(s, id, from, clock_wall_ms(), err, errlen);
}
