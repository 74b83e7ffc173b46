/* netwall send, an MLLP client (cmd_send.c): the messages, connections and outcomes its
 * rooms share. send_input.c reads and splits the inputs, send_conn.c runs one connection
 * thread, send_report.c prints outcomes, problems, the progress bar and the summary. */
#ifndef NETWALL_CLI_SEND_H
#define NETWALL_CLI_SEND_H

#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/tls.h"
#include "hl7/mllp.h"

/* Limits. */
#define SEND_MAX_INPUT (1024u << 20) /* bytes read from one file or from stdin */
#define SEND_MAX_ACK (1u << 20)      /* an ACK frame; a longer answer is not an ACK */
#define SEND_MAX_CONNS 1024          /* -c */
#define SEND_CTRL_MAX 64             /* MSH-10 as printed, NUL included; longer is cut */
#define SEND_BAR_MIN 20              /* more messages than this get a progress bar */
#define SEND_BAR_TICK 0.1            /* seconds between progress bar updates */
#define SEND_BACKOFF_FIRST 0.1       /* --retry-for: first delay, doubling ... */
#define SEND_BACKOFF_MAX 2.0         /* ... up to this */

enum send_outcome {
	SEND_AA = 0,
	SEND_CA,
	SEND_AE,
	SEND_CE,
	SEND_AR,
	SEND_CR,
	SEND_TIMEOUT, /* no ACK within --timeout */
	SEND_CLOSED,  /* the connection failed or closed before the ACK */
	SEND_NOCONN,  /* no connection (refused, unreachable, TLS handshake failed) */
	SEND_BADACK,  /* the answer was not a parsable ACK, or over SEND_MAX_ACK */
	SEND_SENT,    /* sent; MSH-15 asked for no accept ACK (NE), or only on error (ER) and
		       * none came within SEND_ER_WAIT */
	SEND_NOUTCOMES,
};

extern const char *const send_outcome_names[SEND_NOUTCOMES];

#define SEND_ER_WAIT 1.0 /* seconds an MSH-15 ER message waits for an error ACK */

/* Accepted, or sent as the message itself asked (no accept ACK wanted). */
static inline bool send_accepted(enum send_outcome o)
{
	return o == SEND_AA || o == SEND_CA || o == SEND_SENT;
}

static inline bool send_rejected(enum send_outcome o)
{
	return o == SEND_AR || o == SEND_CR;
}

static inline bool send_errored(enum send_outcome o)
{
	return o == SEND_AE || o == SEND_CE;
}

struct send_opts {
	unsigned conns;
	double timeout, retry_for;
	bool tls, json, quiet, verbose;
	const char *ca, *cert, *key, *server_name, *fingerprint;
};

/* One input (a file or stdin): its messages, normalised to CR-terminated segments. */
struct send_src {
	const char *name;
	struct buf text;
};

struct send_msg {
	const struct send_src *src;
	size_t off, len; /* in src->text */
	unsigned n;      /* 1-based position in its source */
	char ctrl[SEND_CTRL_MAX];
	char accept[3]; /* MSH-15 (accept acknowledgment type): "NE", "ER", ... or "" */
	enum send_outcome out;
	double latency; /* seconds from sending (the last attempt) to its ACK */
};

struct send {
	struct send_opts o;
	const char *target;
	char host[256];
	uint16_t port;
	struct addrinfo *ai;
	SSL_CTX *tls;
	bool verify;
	uint8_t pin[TLS_FP_LEN];

	struct send_src *srcs;
	size_t nsrcs;
	struct send_msg *msgs;
	size_t nmsgs, msgcap;

	/* Shared between the connection threads, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t next, done;
	unsigned counts[SEND_NOUTCOMES];
	bool bar, bar_drawn;
	bool out_tty; /* stdout is a terminal too: clear the bar before a message line */
	char last_err[256];
	double start;
};

struct send_conn {
	struct send *s;
	pthread_t thread;
	int fd;
	SSL *ssl;
	struct mllp mllp;
	struct buf out;
	uint8_t in[16384];
	size_t inoff, inlen;
	double fail_since; /* start of the current run without an accepted message, or -1 */
	struct backoff backoff;
	uint64_t rng;
};

/* send_input.c: reads the file name (or "-" for stdin) into a new source and its messages.
 * Returns 0, or -1 after printing why. */
int send_load(struct send *s, const char *name);

/* send_report.c */
void send_report(struct send *s, const struct send_msg *m);
void send_problem(struct send *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void send_bar_draw(struct send *s);
void send_summary(struct send *s, double seconds);

/* send_conn.c: the thread of one connection (arg: its struct send_conn). */
void *conn_main(void *arg);

#endif
