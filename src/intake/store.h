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
#include "intake/store_util.h"

struct store;

/* Opens (creating the schema if missing). Returns NULL with err filled. */
struct store *store_open(const char *spec, char *err, size_t errlen);
void store_close(struct store *s);
/* "sqlite" or "postgresql". */
const char *store_kind(const struct store *s);
/* From any thread, for a stop: the call running on s fails soon, and so does every later
 * one (SQLite: the statement interrupted, a wait for the lock cut short; PostgreSQL: the
 * running statement cancelled, no other sent). s is then only to be closed, by its own
 * thread once that call has returned. Safe to call more than once. */
void store_interrupt(struct store *s);

/* Stores n messages in ONE transaction, in order: each is inserted (with its delivery job
 * when RECEIVED, due now) unless its key exists, in which case it is marked duplicate and
 * the original's id and ACK are returned. Duplicates within the batch see the earlier
 * rows. Returns 0 once the commit is durable; -1 with err filled when nothing was stored
 * (the whole transaction rolled back: disk full, database down, ...). */
int store_put(struct store *s, struct store_msg *msgs, size_t n, char *err, size_t errlen);

/* Claims up to max jobs that are due (next attempt <= now) and not leased (or whose lease
 * expired), leasing them to owner until now + lease_ms. On PostgreSQL the candidate rows
 * are locked FOR UPDATE SKIP LOCKED, so concurrent claimers, in this or other processes,
 * never get the same job. Returns the number claimed with *jobs malloc'd (free with
 * store_jobs_free; NULL when none), or -1 with err. */
int store_claim(struct store *s, const char *owner, int64_t now_ms, int64_t lease_ms, size_t max,
		struct store_job **jobs, char *err, size_t errlen);

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

/* Newest first. Returns the number of rows with *rows malloc'd (NULL when none), or -1
 * with err. */
int store_list(struct store *s, const struct store_filter *f, struct store_row **rows,
	       char *err, size_t errlen);
/* Returns 1 and fills row, 0 if there is no such id, -1 with err. */
int store_get(struct store *s, int64_t id, struct store_row *row, char *err, size_t errlen);

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

/* When the oldest message still to be delivered (its job waiting, due or not, leased or
 * not) was received, Unix ms; 0 when the queue is empty. "Oldest" is the job of the lowest
 * message id, read through the job table's key (one row, whatever the backlog); ids follow
 * the order of commits, which is the order of arrival to within a transaction. A replayed
 * message counts from when it was first received. Returns 0 or -1. */
int store_oldest_undelivered(struct store *s, int64_t *received_ms, char *err, size_t errlen);

/* Puts messages back in the delivery queue, due now with attempts reset to 0: message id,
 * or with id 0 every message in state from (DEAD or FAILED). Only DEAD, FAILED and
 * DELIVERED messages can be replayed. Returns the number replayed or -1 with err. */
int store_replay(struct store *s, int64_t id, enum store_state from, char *err, size_t errlen);

/* Moves the keys of the oldest messages whose keys are pending (store_put appends them to
 * a table in message order, which costs a commit a page or two however random the
 * values) into the sorted index that searches walk, in one transaction, in key order: at
 * least max keys when that many are pending, with every key of the last message taken.
 * A search reads both tables, so a message is found by its keys from its commit on; the
 * move only makes the pending table, which a search scans, short again. Returns the number
 * moved (0: none pending), or -1 with err. */
int store_merge_keys(struct store *s, size_t max, char *err, size_t errlen);

/* Appends a record to the audit trail, in the store's database, durable before it returns
 * (a look at patient data is recorded before the data is shown). Nothing in netwall
 * changes or deletes a record; the schema's triggers refuse to. Text is stored clean.
 * Returns 0 or -1 with err. */
int store_audit_add(struct store *s, const struct store_audit *a, char *err, size_t errlen);

/* The audit trail, newest first: records with id < before_id (0: no bound), at most limit
 * (0: no limit). Returns the number with *rows malloc'd (store_audit_rows_free; NULL when
 * none), or -1 with err. */
int store_audit_list(struct store *s, int64_t before_id, size_t limit,
		     struct store_audit_row **rows, char *err, size_t errlen);

/* Removes the messages p selects (at most p->max, see struct store_prune) in ONE
 * transaction, with their search keys and any delivery job, and appends a (clean) copy of
 * the audit record a naming them in that same transaction (a's ids are not read); nothing
 * is appended when nothing was removed. Audit records are never removed. Returns the number
 * removed (0: none left to remove) with *bytes their stored sizes, or -1 with err. */
int store_prune(struct store *s, const struct store_prune *p, const struct store_audit *a,
		uint64_t *bytes, char *err, size_t errlen);

/* Takes (take) or gives back the store's pruning turn, which one connection of all the
 * processes sharing the store holds at a time, for a whole retention pass (whose excess
 * over retain_bytes, read at its start, would otherwise be removed once by each).
 * PostgreSQL: a session advisory lock (lost with the connection, if that breaks mid-pass);
 * SQLite: always given, one process writes a SQLite store. Returns 1 taken, 0 held by
 * another (nothing to give back), or -1 with err; giving back returns 0 or -1. */
int store_prune_turn(struct store *s, bool take, char *err, size_t errlen);

/* The stored size of every message (their raw bytes), read through the indexes where they
 * can answer. Returns 0 or -1 with err. */
int store_bytes(struct store *s, uint64_t *bytes, char *err, size_t errlen);

/* Gives the space of removed messages back: SQLite checkpoints its write-ahead log so the
 * file truncated by the incremental vacuum of each prune shrinks on disk (a file made
 * before auto_vacuum = INCREMENTAL only reuses the space); PostgreSQL: nothing to do, its
 * autovacuum follows. Returns 0 or -1 with err. */
int store_compact(struct store *s, char *err, size_t errlen);

#endif
