/* The message store: SQLite (a file path; WAL, synchronous=FULL) or PostgreSQL (a
 * postgresql:// or postgres:// URL; libpq, synchronous_commit on) behind one interface,
 * with the same schema in both:
 *
 *   messages   one row per (sending application, sending facility, MSH-10, digest): the
 *              raw message, its SHA-256, the ACK that was sent for it, its state and
 *              delivery record, and whether its key was already stored for another
 *              message (reused_control_id)
 *   deliveries one row per message still to be delivered (the job), with its lease
 *
 * A struct store is one connection, used by one thread at a time. Error text never holds
 * message content. Times are Unix milliseconds. */
#ifndef NETWALL_STORE_H
#define NETWALL_STORE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

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
	/* results */
	bool duplicate;      /* the key and digest were already stored: nothing written */
	bool reused;         /* stored, and the key was already stored with another digest */
	int64_t id;          /* the row of the new message, or of the original */
	struct buf orig_ack; /* for a duplicate: the ACK stored with the original (caller frees) */
};

struct store;

/* Opens (creating the schema if missing). Returns NULL with err filled. */
struct store *store_open(const char *spec, char *err, size_t errlen);
void store_close(struct store *s);
/* "sqlite" or "postgresql". */
const char *store_kind(const struct store *s);

/* Stores n messages in ONE transaction, in order: each is inserted (with its delivery job
 * when RECEIVED, due now) unless its key exists, in which case it is marked duplicate and
 * the original's id and ACK are returned. Duplicates within the batch see the earlier
 * rows. Returns 0 once the commit is durable; -1 with err filled when nothing was stored
 * (the whole transaction rolled back: disk full, database down, ...). */
int store_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen);

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

/* Claims up to max jobs that are due (next attempt <= now) and not leased (or whose lease
 * expired), leasing them to owner until now + lease_ms. On PostgreSQL the candidate rows
 * are locked FOR UPDATE SKIP LOCKED, so concurrent claimers, in this or other processes,
 * never get the same job. Returns the number claimed with *jobs malloc'd (free with
 * store_jobs_free; NULL when none), or -1 with err. */
int store_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms, size_t max,
		struct store_job **jobs, char *err, size_t errlen);
void store_jobs_free(struct store_job *jobs, size_t n);

/* The outcome of one delivery attempt. */
struct store_outcome {
	int64_t id;
	enum store_state state; /* DELIVERED, FAILED (retry at next_ms) or DEAD */
	int64_t next_ms;
	int64_t at_ms;
	int http_status;    /* 0 when no HTTP answer (network error, timeout) */
	const char *detail; /* short: the response excerpt or the transfer error */
};

/* Records n outcomes in one transaction: attempts + 1, state, status, detail; the job row
 * is deleted for DELIVERED and DEAD and rescheduled for FAILED. Only jobs still leased by
 * owner are touched (a lease that expired and was claimed elsewhere is left alone).
 * Returns 0 or -1 with err. */
int store_finish(struct store *s, const char *owner, const struct store_outcome *o, size_t n,
		 char *err, size_t errlen);

/* Gives back the leases owner holds on jobs ids[0..n) that were claimed but never tried
 * (a worker that stops), so another worker can take them at once. Attempts are untouched.
 * Returns 0 or -1 with err. */
int store_release(struct store *s, const char *owner, const int64_t *ids, size_t n, char *err,
		  size_t errlen);

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
};

/* Newest first. Returns the number of rows with *rows malloc'd (NULL when none), or -1
 * with err. */
int store_list(struct store *s, const struct store_filter *f, struct store_row **rows,
	       char *err, size_t errlen);
/* Returns 1 and fills row, 0 if there is no such id, -1 with err. */
int store_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen);
void store_row_clear(struct store_row *row);
void store_rows_free(struct store_row *rows, size_t n);

struct store_count {
	enum store_state state;
	char type[32];
	uint64_t n;
	uint64_t reused; /* of n, flagged reused_control_id */
};
/* Message counts grouped by state and type. Returns the number of groups, *out malloc'd. */
int store_counts(struct store *s, struct store_count **out, char *err, size_t errlen);

/* Makes this connection's own commits cheap rather than durable at once: SQLite
 * synchronous=NORMAL (in WAL mode: nothing is lost when the process dies, only at a power
 * cut or kernel crash, and the next durable commit of any connection carries it), and
 * PostgreSQL synchronous_commit=off (the same). For the delivery worker, whose claims and
 * outcomes can only ever be lost into a repeated delivery, never a lost message. Returns
 * 0 or -1 with err. */
int store_relax(struct store *s, char *err, size_t errlen);

/* Messages by state, indexed by enum store_state: a scan of the state index only (the
 * messages themselves are not read). Returns 0 or -1. */
int store_count_states(struct store *s, uint64_t out[STORE_NSTATES], char *err, size_t errlen);

/* Jobs waiting (due or not, leased or not). Returns 0 or -1. */
int store_queue_depth(struct store *s, uint64_t *n, char *err, size_t errlen);

/* Puts messages back in the delivery queue, due now with attempts reset to 0: message id,
 * or with id 0 every message in state from (DEAD or FAILED). Only DEAD, FAILED and
 * DELIVERED messages can be replayed. Returns the number replayed or -1 with err. */
int store_replay(struct store *s, int64_t id, enum store_state from, char *err, size_t errlen);

#endif
