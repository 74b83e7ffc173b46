/* Password checks off the event loop: scrypt (a login's verification, REGISTER's hashing
 * and the rewrite of the accounts file) runs on one worker thread fed by a bounded queue.
 * The loop submits a job and gets it back, done, through an eventfd; a job names its client
 * by id, never by pointer, so a client that left meanwhile is simply not found. */
#ifndef NETWALL_CHAT_AUTH_H
#define NETWALL_CHAT_AUTH_H
#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/passwd.h"

#define AUTH_QUEUE_MAX 32 /* jobs queued or running; a login beyond it waits (chat/login.c) */

enum auth_kind {
	AUTH_PASS = 0, /* PASS at registration: verify */
	AUTH_SASL,     /* AUTHENTICATE PLAIN: verify */
	AUTH_REGISTER, /* REGISTER: add the account to the file, read the file again */
};

enum auth_result {
	AUTH_OK = 0,
	AUTH_FAILED, /* wrong password, unknown account */
	AUTH_EXISTS, /* REGISTER: the account is there already */
	AUTH_ERROR,  /* REGISTER: the file could not be written or read */
};

struct auth_job {
	uint64_t id; /* the client's id */
	enum auth_kind kind;
	bool known; /* a known account's check: run first (and places are kept for these) */
	char name[sizeof(((struct passwd_account *)0)->name)];
	char password[PASSWD_MAX_LEN + 1];
	size_t len;
	char encoded[PASSWD_ENCODED_MAX]; /* verify: the stored hash, or a decoy's */
	const char *file;                 /* register: the accounts file (outlives the job) */
	/* filled by the worker */
	enum auth_result result;
	struct passwd_account *accounts; /* register: the file read again (owned by the job) */
	size_t naccounts;
	char err[256];
	struct auth_job *next;
};

struct auth;

/* Starts the worker. done(job, arg) runs on the loop for every finished job and takes
 * ownership of it (auth_job_free). NULL, err filled, on failure. */
struct auth *auth_new(struct event_base *base, void (*done)(struct auth_job *, void *), void *arg,
		      char *err, size_t errlen);
/* Queues job (ownership passes to the queue): a known account's check (job->known) runs
 * before every other job queued. Returns 0, or -1 when AUTH_QUEUE_MAX jobs are queued or
 * running: the job stays the caller's. Never blocks on a check. */
int auth_submit(struct auth *a, struct auth_job *job);
/* Jobs queued or running. */
size_t auth_pending(const struct auth *a);
/* Stops the worker after its current job; unfinished jobs are wiped and dropped. */
void auth_free(struct auth *a);
/* A zeroed job (aborts when out of memory). */
struct auth_job *auth_job_new(void);
/* Wipes the password and frees the job and its accounts. Accepts NULL. */
void auth_job_free(struct auth_job *job);

#endif
