/* The intake's shared state: the daemon, its connections, the frames they sent and the
 * messages of those frames, as the rooms of the intake (intake.c: life, conn.c:
 * connections, budget.c: the memory budget, pipeline.c: frame to ACK, status.c: admin)
 * see them. Internal: nothing outside src/intake includes it. */
#ifndef NETWALL_INTAKE_STATE_H
#define NETWALL_INTAKE_STATE_H
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/buf.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/page.h"
#include "hl7/mllp.h"
#include "intake/commit.h"
#include "intake/deliver.h"
#include "intake/intake_config.h"
#include "intake/prune.h"

#define INTAKE_READ_CHUNK 65536        /* bytes fed to the framer per step */
#define INTAKE_READ_MAX 16384          /* bytes one socket read may add to a connection's input;
					* reading is on only while this much fits the budget */
#define INTAKE_OUT_MAX (1024 * 1024)   /* unread ACK bytes before we stop reading */
#define INTAKE_KEY_MAX 63              /* MSH-3, MSH-4, MSH-10 bytes (the dedupe key) */
#define INTAKE_BATCH_MAX 4096          /* messages in one batch frame; more: AR for the batch */
#define INTAKE_INFLIGHT_MSGS 4096      /* messages awaiting their answer per connection */
#define INTAKE_INFLIGHT_BYTES (4u << 20) /* frame bytes awaiting their answer per connection,
					   * at least one max_message */
#define INTAKE_FRAMER_KEPT 65536      /* a framer buffer larger than this is freed as soon as
				       * its frame is copied into its job */
#define INTAKE_OVERDRAFT_SLACK 65536  /* past memory_budget + max_message for the one
				       * connection read past the budget: its unframed input
				       * and the records of its frame */
#define INTAKE_CLOSE_GRACE 5.0         /* seconds a closing connection gets to take its ACKs */
#define INTAKE_STALL_LOOK 1.0          /* seconds between looks for stalled partial frames while
					* reading is stopped at memory_budget */
#define INTAKE_ERRORS_KEPT 20         /* last errors on the status page */

/* ACK latency histogram bounds, seconds. */
static const double intake_buckets[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					 0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
					 1,      2.5,     5 };
#define INTAKE_NBUCKETS (sizeof(intake_buckets) / sizeof(*intake_buckets))

/* Why a message or a connection was refused; labels of netwall_intake_rejected_total. */
enum intake_reason {
	R_PARSE = 0, /* not a parsable HL7 message */
	R_HEADER,    /* MSH-9/10/11/12 missing or unsupported */
	R_ROUTE,     /* routing says reject */
	R_TOO_BIG,   /* frame over max_message */
	R_ACK_INPUT, /* an acknowledgement sent to us */
	R_STORE,     /* the store failed: AE */
	R_NREASONS,
	R_REUSED = R_NREASONS, /* status page only: a control ID reused for another message */
};
static const char *const intake_reason_names[] = { "parse",   "header",    "route",
						   "too_big", "ack_input", "store",
						   "reused_control_id" };

/* What was read leniently (a tolerance applied to take a message real senders send);
 * labels of netwall_intake_warnings_total, and the names stored with the message. */
enum intake_warning {
	W_BOM = 0,    /* a UTF-8 byte order mark before MSH, skipped */
	W_MSH11,      /* MSH-11 missing: taken as P */
	W_MSH12,      /* MSH-12 missing: the version is unknown */
	W_LF,         /* segments ended by LF */
	W_CRLF,       /* segments ended by CR LF */
	W_MIXED,      /* segments ended by more than one of CR, LF, CR LF */
	W_NWARNINGS,
};
static const char *const intake_warning_names[] = { "bom",
						    "msh11_missing",
						    "msh12_missing",
						    "lf_terminators",
						    "crlf_terminators",
						    "mixed_terminators" };
/* The names of every warning, comma-separated, and the NUL. */
#define INTAKE_WARNINGS_LEN 96

struct intake_stats {
	uint64_t frames, received, accepted, ignored, rejected_stored, duplicates;
	uint64_t warned;                  /* messages stored with at least one warning */
	uint64_t warnings[W_NWARNINGS];   /* messages stored with each warning */
	uint64_t reused; /* stored (or, with reject, refused) with a reused control ID */
	uint64_t reasons[R_NREASONS];
	uint64_t conns_total, conns_refused, junk_bytes;
	uint64_t memory_waits; /* times reading stopped at memory_budget */
	uint64_t stalled;      /* partial frames closed at the budget, their senders silent */
	uint64_t hist[INTAKE_NBUCKETS + 1];
	double hist_sum;
	uint64_t hist_count;
};

/* An error for the status page: control IDs, peers and reasons, never message content. */
struct intake_err {
	double at; /* wall clock; 0: empty slot */
	const char *reason;
	char ctrl[LOG_VALUE_SIZE(INTAKE_KEY_MAX)]; /* made log-safe; "" when unknown */
	char peer[ADDR_STRLEN];
	char detail[96];
};


struct browse_worker;
struct conn;
struct job;

/* One message of a frame, and its store request. */
struct jmsg {
	struct commit_req req;
	struct job *job;
	bool stored;     /* goes to the store (else the ack is final) */
	char peer[ADDR_STRLEN]; /* for the store: the connection may be gone by then */
	bool want;       /* an ACK is to be sent for it */
	bool want_accept, want_error; /* MSH-15 asks for an accept / an error answer (a
				       * duplicate is answered as its stored ACK's MSA-1 says) */
	bool enhanced;   /* the sender asked for enhanced mode */
	struct buf ack;  /* the ACK built for it */
	struct buf reuse_ack; /* on_reused_control_id = reject: the AR 205 sent instead */
	bool want_reuse;      /* an ACK is to be sent for the AR 205 */
	size_t raw_off;  /* the message within the job's frame */
	size_t raw_len;
	char app[INTAKE_KEY_MAX + 1], fac[INTAKE_KEY_MAX + 1], ctrl[INTAKE_KEY_MAX + 1];
	char type[8], version[16];
	unsigned warn;                         /* 1 << enum intake_warning, for each applied */
	char warnings[INTAKE_WARNINGS_LEN];    /* their names, for the store */
};

/* One frame: answered when all its messages are. */
struct job {
	struct conn *c; /* NULL once the connection is gone */
	struct job *next;
	uint8_t *frame;
	size_t len;
	struct intake *in;
	bool batch;
	unsigned n, pending;
	size_t held; /* bytes counted against memory_budget: frame, ACKs, message records */
	double t0;
	struct jmsg *msgs;
};

/* One MLLP connection (conn.c). */
struct conn {
	struct intake *in;
	struct conn *prev, *next;
	struct bufferevent *bev; /* NULL while pre reads a PROXY header before TLS */
	struct event *pre;
	int fd;
	struct event *timer;
	struct mllp f;
	char peer[ADDR_STRLEN];
	struct sockaddr_storage src;
	struct listener_src *sock_src;  /* its count in in->accepted (the socket's address) */
	struct listener_src *proxy_src; /* behind a proxy: in->sources (the header's address) */
	bool proxy_done;
	bool tls_ready; /* the handshake is done (at once for plain TCP) */
	bool eof;
	struct job *head, *tail; /* frames in arrival order, answered in that order */
	unsigned jobs;
	size_t inflight_msgs, inflight_bytes;
	size_t jobs_held; /* the held bytes of the jobs in head..tail */
	double frame_start;  /* when the frame in progress began */
	size_t stall_len;    /* the partial frame's length at the last look that found its
			      * sender silent (0: not found so), see intake_stall_cb */
	double last_frame;   /* when the last frame completed (or the connection came) */
	double started;      /* accept time: TLS handshake and PROXY header must finish in time */
	size_t held;         /* bytes counted against memory_budget (conn_account) */
	bool starved;        /* not read: its next bytes do not fit memory_budget */
	struct event *closed_ev; /* while not read for the budget: the peer's close */
	double out_progress; /* when the peer last took ACK bytes, or they began waiting */
	bool closing;        /* answering what it has, then closed */
	bool shut;           /* FIN sent after the last answer; waiting for the peer's */
	const char *close_reason;
};

/* What the budget and the pipeline ask of the connections they serve. The calls go
 * through this table, set by intake_new to conn.c's functions, so that conn.c calls down
 * into budget.c and pipeline.c and they never call back into it by name. */
struct intake_upcalls {
	void (*pump)(struct conn *c);                     /* feed what was read, if it may */
	void (*close)(struct conn *c, const char *reason); /* close at once */
	void (*maybe_close)(struct conn *c);              /* a closing one: go if all is written */
};

/* The intake daemon. */
struct intake {
	struct event_base *base;
	const struct intake_upcalls *up;
	struct intake_config *cfg;
	struct minutes per_minute;                    /* messages received, for the page */
	struct intake_err errs[INTAKE_ERRORS_KEPT]; /* a ring, newest at errs_next - 1 */
	size_t errs_next;
	SSL_CTX *tls;
	struct listener **ls;
	/* Admission (core/listener): the sockets accepted, by max_connections and, without a
	 * proxy, allow and max_per_source; behind a proxy the addresses its headers name, by
	 * allow and max_per_source. */
	struct listener_set *accepted, *sources;
	size_t nls;
	struct commit *commit;
	struct deliver *deliver;
	struct prune *prune; /* retention (prune.c) */
	const char *store_kind; /* "sqlite" or "postgresql" */
	struct browse_worker *browser; /* the message browser's thread, from its first page */
	struct conn *conns;
	uint64_t nconns;
	uint64_t peak;
	bool draining;
	char ack_prefix[12]; /* 11 characters */
	uint64_t ack_seq;
	char owner[128];
	struct intake_stats st;
	struct log_rate rate;
	struct evbuffer *scratch; /* ACKs on their way to a socket (loop thread) */
	/* memory_budget: bytes peers made the intake hold, over all connections (partial
	 * frames, unfed input, messages awaiting answers, unread ACKs) and the jobs of closed
	 * connections still being stored. At the budget nothing is read until bytes go. */
	size_t held;
	size_t orphans_held;
	bool paused;              /* reading stopped on every connection for the budget */
	size_t nstarved;          /* connections whose next bytes do not fit the budget */
	struct event *resume_ev;  /* run from the loop once bytes were released */
	struct event *stall_ev;   /* while paused: looks for stalled partial frames */
	/* The one connection that may read past the budget, by at most its max_message plus
	 * INTAKE_OVERDRAFT_SLACK, until its frame is whole: at the budget, the oldest partial
	 * frame. Without it, connections that all hold a partial frame none of whose next
	 * bytes fit would wait for one another until frame_timeout. */
	struct conn *overdraft;
	bool pick; /* the resume event is to choose the overdraft connection */
};

/* Ready: the TLS handshake and the PROXY header (whichever apply) are done. */
static inline bool conn_ready(const struct conn *c)
{
	return c->tls_ready && (!c->in->cfg->proxy || c->proxy_done);
}

#endif
