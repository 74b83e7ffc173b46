/* What every part of the message store shares: state names, the digest, freeing what the
 * store handed out, and the backends' helpers (error text, copies, text made safe for both
 * databases). Calls nothing of the store's front or backends. */
#include "intake/store_util.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "core/xalloc.h"

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

const char *store_key_kind_name(enum store_key_kind k)
{
	static const char *const names[STORE_KEY_NKINDS] = {
		[STORE_KEY_PATIENT] = "patient", [STORE_KEY_NAME] = "name", [STORE_KEY_ORDER] = "order",
		[STORE_KEY_CONTROL] = "control",
	};

	return (unsigned)k < STORE_KEY_NKINDS ? names[k] : "unknown";
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

char *store_strndup(const void *p, size_t n)
{
	char *s = xmalloc(n + 1);

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

bool store_text_is_clean(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);

	while (left) {
		size_t n = utf8_seq(p, left, NULL);

		if (n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)))
			return false;
		p += n;
		left -= n;
	}
	return true;
}

/* A copy of s with every byte that is not valid UTF-8, and every control character,
 * written as \xHH, so the text is the same in SQLite and PostgreSQL (whose text type
 * refuses invalid UTF-8) and the same key always maps to the same row. */
char *store_text_clean(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p = (const unsigned char *)s;
	size_t left = strlen(s);
	char *out = xmalloc(left * 4 + 1);
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

void store_jobs_free(struct store_job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		store_wipe_free(jobs[i].raw, jobs[i].raw_len);
	explicit_bzero(jobs, n * sizeof(*jobs));
	free(jobs);
}

void store_row_clear(struct store_row *row)
{
	if (row == NULL)
		return;
	free(row->detail);
	free(row->warnings);
	if (row->patients != NULL)
		store_wipe_free(row->patients, strlen(row->patients));
	if (row->names != NULL)
		store_wipe_free(row->names, strlen(row->names));
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

void store_audit_rows_free(struct store_audit_row *rows, size_t n)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < n; i++) {
		struct store_audit_row *r = &rows[i];
		char *f[6] = {r->who, r->via, r->action, r->what, r->reason, r->message_ids};

		for (int k = 0; k < 6; k++)
			if (f[k] != NULL)
				store_wipe_free(f[k], strlen(f[k]));
	}
	free(rows);
}
