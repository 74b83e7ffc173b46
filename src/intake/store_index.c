/* What a message is found by: one parse of its bytes at store time, and the identifiers a
 * search asks for, decoded so that a search finds the value the sender meant (an escaped
 * \T\ in an order number is the &), and cleaned as every text the store keeps. The keys
 * are few (STORE_KEYS_MAX) and short (STORE_KEY_LEN): a message with ten thousand
 * identifiers costs the index no more than one with thirty-two. */
#include "intake/store_index.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "hl7/hl7.h"

/* Decodes v into out (cap bytes) as clean text. Returns false when v is empty, null, or
 * too long for out once decoded and cleaned. */
static bool key_text(const struct hl7_delims *d, struct hl7_str v, char *out, size_t cap)
{
	char tmp[STORE_KEY_LEN * 4 + 1];
	size_t n;

	if (v.len == 0 || hl7_is_null(v) || v.len >= sizeof(tmp))
		return false;
	n = hl7_unescape(d, v, tmp, sizeof(tmp));
	tmp[n] = '\0';
	if (n == 0 || n >= cap || strlen(tmp) != n)
		return false; /* empty, too long, or holding a NUL (\X00\) */
	if (store_text_is_clean(tmp)) {
		memcpy(out, tmp, n + 1);
	} else {
		char *c = store_text_clean(tmp);
		size_t cl = strlen(c);
		bool fits = cl < cap;

		if (fits)
			memcpy(out, c, cl + 1);
		store_wipe_free(c, cl);
		if (!fits)
			return false;
	}
	return true;
}

/* The next free key of ix, or NULL when ix is full. */
static struct store_key *key_new(struct store_index *ix, enum store_key_kind kind)
{
	struct store_key *k;

	if (ix->nkeys == STORE_KEYS_MAX)
		return NULL;
	if (ix->keys == NULL)
		ix->keys = xcalloc(STORE_KEYS_MAX, sizeof(*ix->keys));
	k = &ix->keys[ix->nkeys];
	memset(k, 0, sizeof(*k));
	k->kind = kind;
	return k;
}

/* Keeps the key key_new gave, unless the same one is there already. */
static void key_keep(struct store_index *ix, const struct store_key *k)
{
	for (size_t i = 0; i < ix->nkeys; i++) {
		const struct store_key *o = &ix->keys[i];

		if (o->kind == k->kind && strcmp(o->value, k->value) == 0 &&
		    strcmp(o->authority, k->authority) == 0 && strcmp(o->id_type, k->id_type) == 0)
			return;
	}
	ix->nkeys++;
}

/* PID-3: one identifier (CX) per repetition: CX.1, CX.4 (HD: its namespace ID, else its
 * universal ID), CX.5. */
static void read_patient_ids(struct store_index *ix, const struct hl7_msg *m, unsigned si)
{
	struct hl7_str f, rep, c;
	struct hl7_iter it;

	if (!hl7_field(m, si, 3, &f))
		return;
	hl7_iter_init(&it, f, m->d.rep);
	while (hl7_iter_next(&it, &rep)) {
		struct store_key *k = key_new(ix, STORE_KEY_PATIENT);
		struct hl7_str hd, part;

		if (k == NULL)
			return;
		hl7_comp(&m->d, rep, 1, &c);
		if (!key_text(&m->d, c, k->value, sizeof(k->value)))
			continue;
		if (hl7_comp(&m->d, rep, 4, &hd)) {
			hl7_sub(&m->d, hd, 1, &part);
			if (!key_text(&m->d, part, k->authority, sizeof(k->authority))) {
				hl7_sub(&m->d, hd, 2, &part);
				key_text(&m->d, part, k->authority, sizeof(k->authority));
			}
		}
		if (hl7_comp(&m->d, rep, 5, &c))
			key_text(&m->d, c, k->id_type, sizeof(k->id_type));
		key_keep(ix, k);
	}
}

/* PID-5: the family name (XPN.1, its first subcomponent: the surname) of each repetition
 * (the legal name, an alias, a maiden name). */
static void read_names(struct store_index *ix, const struct hl7_msg *m, unsigned si)
{
	struct hl7_str f, rep, c, s;
	struct hl7_iter it;

	if (!hl7_field(m, si, 5, &f))
		return;
	hl7_iter_init(&it, f, m->d.rep);
	while (hl7_iter_next(&it, &rep)) {
		struct store_key *k = key_new(ix, STORE_KEY_NAME);

		if (k == NULL)
			return;
		hl7_comp(&m->d, rep, 1, &c);
		hl7_sub(&m->d, c, 1, &s);
		if (!key_text(&m->d, s, k->value, sizeof(k->value)))
			continue;
		store_index_fold(k->value);
		key_keep(ix, k);
	}
}

/* ORC-2 (placer order number) and ORC-3 (filler order number): EI.1 of the first
 * repetition (the fields do not repeat). */
static void read_orders(struct store_index *ix, const struct hl7_msg *m, unsigned si)
{
	for (unsigned fno = 2; fno <= 3; fno++) {
		struct hl7_str f, rep, c;
		struct store_key *k = key_new(ix, STORE_KEY_ORDER);

		if (k == NULL)
			return;
		if (!hl7_field(m, si, fno, &f))
			continue;
		hl7_rep(&m->d, f, 1, &rep);
		hl7_comp(&m->d, rep, 1, &c);
		if (key_text(&m->d, c, k->value, sizeof(k->value)))
			key_keep(ix, k);
	}
}

void store_index_read(struct store_index *ix, const void *raw, size_t len)
{
	struct hl7_msg m;
	struct hl7_str v, c;

	ix->date[0] = '\0';
	ix->nkeys = 0;
	hl7_msg_init(&m);
	if (raw == NULL || hl7_parse(&m, raw, len, NULL) == -1)
		goto out;
	/* MSH-7: a DTM (v2.5 on), or a TS whose first component is one (earlier versions) */
	if (hl7_field(&m, 0, 7, &v) && hl7_comp(&m.d, v, 1, &c))
		key_text(&m.d, c, ix->date, sizeof(ix->date));
	for (unsigned si = 0; si < m.nsegs; si++) {
		const char *name = m.segs[si].name;

		if (strcmp(name, "PID") == 0) {
			read_patient_ids(ix, &m, si);
			read_names(ix, &m, si);
		} else if (strcmp(name, "ORC") == 0) {
			read_orders(ix, &m, si);
		}
	}
out:
	hl7_msg_free(&m);
}

void store_index_clear(struct store_index *ix)
{
	if (ix->keys != NULL) {
		explicit_bzero(ix->keys, STORE_KEYS_MAX * sizeof(*ix->keys));
		free(ix->keys);
	}
	explicit_bzero(ix, sizeof(*ix));
}

void store_index_fold(char *s)
{
	for (; *s != '\0'; s++) {
		if (*s >= 'a' && *s <= 'z')
			*s = (char)(*s - 'a' + 'A');
	}
}
