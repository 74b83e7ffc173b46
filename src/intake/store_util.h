/* What every part of the message store shares, the front (store.c) and the backends
 * (store_sqlite.c, store_pg.c) alike: the records (a message to store, a claimed job, an
 * outcome, a stored row), the state names, the digest, freeing what the store handed out,
 * and the backends' helpers (error text, copies, text made safe for both databases).
 * Users of the store include intake/store.h, which includes this. */
#ifndef NETWALL_STORE_UTIL_H
#define NETWALL_STORE_UTIL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum store_state {
	STORE_RECEIVED = 0, /* accepted, waiting for its first delivery */
	STORE_FAILED,       /* a delivery attempt failed; another is scheduled */
	STORE_DELIVERED,    /* the EMAR API answered 2xx */
	STORE_DEAD,         /* dead-lettered: 4xx, or out of attempts */
	STORE_IGNORED,      /* acknowledged and recorded, not for delivery (routing) */
	STORE_REJECTED,     /* answered AR/CR by routing, recorded */
	STORE_NSTATES
};

/* "received", "failed", "delivered", "dead", "ignored", "rejected". */
const char *store_state_name(enum store_state s);
int store_state_parse(const char *name, enum store_state *out);

#define STORE_DIGEST_LEN 32 /* SHA-256 */

/* The digest a message is stored and deduplicated by: SHA-256 of its bytes exactly as
 * received (no normalisation: a retransmission is the same bytes; a sender that changes
 * any byte sends a different message, which is stored, never dropped). Linear in len. */
void store_digest(const void *raw, size_t len, uint8_t out[STORE_DIGEST_LEN]);

/* What a stored message is found by (schema 3): read from its bytes when it is stored
 * (store_index.c), kept in the table message_keys in the same transaction. */
enum store_key_kind {
	STORE_KEY_PATIENT = 0, /* a PID-3 identifier (CX.1), with its authority and type */
	STORE_KEY_NAME,        /* a PID-5 family name (XPN.1.1), ASCII letters upper-cased */
	STORE_KEY_ORDER,       /* ORC-2 or ORC-3 (EI.1): the placer's or the filler's number */
	STORE_KEY_CONTROL,     /* MSH-10 as stored (not decoded): written by the backends */
	STORE_KEY_NKINDS
};

#define STORE_KEYS_MAX 32 /* keys of one message; the ones after are not indexed */
#define STORE_KEY_LEN 128 /* bytes of a decoded value; a longer one is not indexed */

struct store_key {
	enum store_key_kind kind;
	char value[STORE_KEY_LEN + 1]; /* decoded (escapes undone), clean text */
	char authority[64];            /* PATIENT: CX.4 (its namespace ID, else its universal ID) */
	char id_type[16];              /* PATIENT: CX.5, e.g. MR; "" when absent */
};

struct store_index {
	char date[32]; /* MSH-7 as sent (a DTM: 20261122101500+0100), clean; "" if absent */
	struct store_key *keys; /* owned (store_index_clear), distinct */
	size_t nkeys;
};

/* "patient", "name", "order": the kind column's text. */
const char *store_key_kind_name(enum store_key_kind k);

/* One message to store. The strings are NUL-terminated header values as received (still
 * escaped), so a retransmission's key matches byte for byte.
 *
 * Dedupe: a message whose key (MSH-3, MSH-4, MSH-10) and digest are both stored is a
 * duplicate (nothing written; the original's id and ACK come back). A message whose key
 * is stored only with other digests reuses the control ID: it is stored as a message of
 * its own, flagged reused, or, when reuse_ack is set (on_reused_control_id = reject),
 * stored REJECTED with reuse_ack as its ACK and no delivery job. */
struct store_msg {
	const char *app;        /* MSH-3 */
	const char *facility;   /* MSH-4 */
	const char *control_id; /* MSH-10 */
	const char *type;       /* "RDE^O11" */
	const char *version;    /* MSH-12 */
	const char *peer;       /* "address:port" of the sender */
	enum store_state state; /* RECEIVED (also creates the delivery job), IGNORED or REJECTED */
	const void *raw;
	size_t raw_len;
	const void *ack;
	size_t ack_len;
	const void *reuse_ack; /* NULL: a reused key is stored as state says */
	size_t reuse_ack_len;
	uint8_t digest[STORE_DIGEST_LEN]; /* store_digest(raw); store_put fills it unless */
	bool digest_set;                  /* the caller did (off the committer's thread) */
	int64_t received_ms;
	/* the tolerances the intake applied to read it (a BOM stripped, MSH-11 taken as P,
	 * ...): comma-separated names, or NULL for none; stored with the message (schema 3) */
	const char *warnings;
	/* what it is found by; NULL: store_put reads it from raw */
	const struct store_index *index;
	/* results */
	bool duplicate;      /* the key and digest were already stored: nothing written */
	bool reused;         /* stored, and the key was already stored with another digest */
	int64_t id;          /* the row of the new message, or of the original */
	size_t keys;         /* keys written with it (pending: store_merge_keys) */
	struct buf orig_ack; /* for a duplicate: the ACK stored with the original (caller frees) */
};

/* A claimed delivery job. */
struct store_job {
	int64_t id;         /* message id */
	unsigned attempts;  /* attempts made before this one */
	char type[32];      /* "RDE^O11" */
	char control_id[64];
	char app[64];
	char facility[64];
	bool reused; /* its key was stored before for another message */
	uint8_t digest[STORE_DIGEST_LEN];
	char *raw; /* owned; wiped on free */
	size_t raw_len;
};

/* The outcome of one delivery attempt. */
struct store_outcome {
	int64_t id;
	enum store_state state; /* DELIVERED, FAILED (retry at next_ms) or DEAD */
	int64_t next_ms;
	int64_t at_ms;
	int http_status;    /* 0 when no HTTP answer (network error, timeout) */
	const char *detail; /* short: the response excerpt or the transfer error */
};

/* One stored message, for listing and showing. */
struct store_row {
	int64_t id;
	enum store_state state;
	char app[64], facility[64], control_id[64], type[32], version[16], peer[64];
	int64_t received_ms, updated_ms;
	unsigned attempts;
	int http_status;
	bool reused; /* reused_control_id: its key was stored before for another message */
	char *detail; /* owned, may be NULL */
	char *warnings; /* owned, may be NULL: store_msg.warnings as stored */
	char message_date[32]; /* MSH-7 as sent, "" when absent */
	/* with store_filter.with_keys (owned, NULL when none): the patient identifiers, each
	 * "ID" US "authority" US "type", and the family names, each joined by RS (the ASCII
	 * unit and record separators, which clean text never holds) */
	char *patients;
	char *names;
	char *raw;    /* owned; only filled by store_get */
	size_t raw_len;
	char *ack; /* owned; only filled by store_get */
	size_t ack_len;
};

struct store_filter {
	int state;        /* an enum store_state, or -1 for any */
	const char *type; /* exact "RDE^O11", a prefix "RDE", or NULL */
	int64_t before_id; /* rows with id < before_id; 0 for no bound */
	size_t limit;     /* 0 for no limit */
	bool reused_only; /* only rows flagged reused_control_id */
	/* the search (schema 3): each one given must hold; NULL (0) for any */
	const char *patient;    /* a PID-3 identifier (CX.1), exact */
	const char *name;       /* a PID-5 family name, exact, ASCII case ignored */
	const char *order;      /* ORC-2 or ORC-3 (EI.1), exact */
	const char *control_id; /* MSH-10, exact */
	const char *app;        /* MSH-3, exact */
	const char *facility;   /* MSH-4, exact */
	const char *date;       /* MSH-7 begins with this: "20261122", "2026112210" */
	int64_t since_ms;       /* received at or after; 0 for no bound */
	int64_t until_ms;       /* received before; 0 for no bound */
	bool with_keys;         /* fill store_row.patients and .names */
};

struct store_count {
	enum store_state state;
	char type[32];
	uint64_t n;
	uint64_t reused; /* of n, flagged reused_control_id */
};

/* One look at message content, for the audit trail (schema 3). */
struct store_audit {
	int64_t at_ms;      /* 0: now */
	const char *who;    /* the OS user running the CLI; the admin token's label on the page */
	const char *via;    /* "cli" */
	const char *action; /* "show", "search", "replay" */
	const char *what;   /* what was asked: "show 42 --raw", a search's criteria */
	const int64_t *ids; /* the messages whose content was read (or replayed) */
	size_t nids;
	const char *reason; /* why, as given (--reason), or NULL */
};

/* A record of the audit trail as stored; the strings are owned (reason may be NULL). */
struct store_audit_row {
	int64_t id;
	int64_t at_ms;
	uint64_t messages; /* how many ids message_ids holds */
	char *who, *via, *action, *what, *reason;
	char *message_ids; /* "12,13,40" */
};

/* What store_prune removes in one transaction: retention (the intake's pruning thread) and
 * netwall messages purge. Received and failed messages (still to be delivered) are never
 * removed, whatever is asked. */
struct store_prune {
	int64_t id;        /* this message alone (delivered, ignored, rejected or dead); 0: by state */
	int state;         /* -1: delivered, ignored and rejected, the least recently changed
			    * first (retention); or one of those or dead, lowest id first */
	int64_t before_ms; /* those last changed (updated_ms) before this; 0: no bound by age */
	uint64_t excess;   /* with state -1: also the least recently changed whatever their
			    * age, while the sizes taken so far are under this; 0: none */
	size_t max;        /* messages at most */
};
/* The stored bytes of one store_prune transaction at most (a message larger alone): by
 * count only, 200 messages of 64 MiB would be one 12.8 GB transaction. */
#define STORE_PRUNE_BYTES (16ULL * 1024 * 1024)

/* Frees what store_claim, store_list and store_get handed out (raw bytes wiped). */
void store_jobs_free(struct store_job *jobs, size_t n);
void store_row_clear(struct store_row *row);
void store_rows_free(struct store_row *rows, size_t n);
void store_audit_rows_free(struct store_audit_row *rows, size_t n);

/* Copies at most cap - 1 bytes of n from src and terminates; src may be NULL. */
void store_copy(char *dst, size_t cap, const void *src, size_t n);
/* n bytes of p and a terminating NUL, in memory of its own (aborts on out-of-memory). */
char *store_strndup(const void *p, size_t n);
/* Wipes and frees n bytes at p (raw messages, ACKs). Accepts NULL. */
void store_wipe_free(void *p, size_t n);
/* True if s is valid UTF-8 without control characters. */
bool store_text_is_clean(const char *s);
/* A copy of s (the caller frees) with every byte that is not valid UTF-8, and every
 * control character, written as \xHH. */
char *store_text_clean(const char *s);

#endif
