/* The chat server's shared state, private to its rooms (server.c, link.c, peer.c, channel.c,
 * login.c, command.c): its limits and the structures they share. */
#ifndef NETWALL_CHAT_STATE_H
#define NETWALL_CHAT_STATE_H
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "chat/auth.h"
#include "chat/chat_config.h"
#include "chat/irc.h"
#include "chat/passwd.h"
#include "core/addr.h"
#include "core/buf.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/page.h"

#define CHAT_LINE_MAX (IRC_TAGS_MAX + IRC_LINE_MAX) /* bytes of one received line */
#define CHAT_TOPIC_MAX 390                          /* TOPICLEN we announce */
#define CHAT_BANS_MAX 64                            /* per channel */
#define CHAT_PARTS_PER_TURN 64                      /* lines handled per read event */
#define CHAT_CLOSE_GRACE 2.0                        /* seconds to flush an ERROR */
#define CHAT_SASL_MAX 400                           /* bytes of an AUTHENTICATE payload */
#define CHAT_READ_AHEAD 16384 /* bytes read from a client before its lines are taken */
#define CHAT_LOGIN_TRIES 3       /* failed logins on one connection before it is closed */
/* password checks one source network (source_prefix_v4/v6) may have queued or running;
 * its other logins wait */
#define CHAT_CHECKS_PER_SOURCE 4
/* of the AUTH_QUEUE_MAX checks, kept for known accounts: decoys (unknown accounts) and
 * REGISTERs take at most the rest */
#define CHAT_CHECKS_KNOWN 8
#define CHAT_BUSY "Server busy, try again" /* a login not checked by its deadline */
#define CHAT_FAIL_SLOTS 1024     /* sources and accounts whose failed logins are remembered */
#define CHAT_FAIL_KEY (ADDR_STRLEN + 2) /* "s:" address or "a:" account */
#define CHAT_FAIL_DELAY 0.25     /* seconds before answering a first failure; doubles */
#define CHAT_FAIL_DELAY_MAX 4.0  /* ... up to this */
#define CHAT_FAIL_FORGET 900.0   /* seconds without a failure after which the count restarts */

struct chat;
struct channel;

struct client {
	struct chat *ch;
	struct client *prev, *next;
	struct bufferevent *bev;
	struct event *timer;
	struct irc_lines lines;
	struct sockaddr_storage src;
	struct listener_src *src_count; /* its source's count in ch->accepted */
	char host[ADDR_STRLEN]; /* the address, shown as the host part of the prefix */
	char nick[IRC_NICK_MAX + 1];
	char user[16];
	char real[64];
	char account[IRC_NICK_MAX + 1]; /* logged in as (SASL or PASS), "" if none */
	char *pass; /* from PASS, wiped and freed at registration */
	size_t passlen;
	/* closing: found dead (skipped by every sender, reads off), queued on ch->reap until
	 * the loop takes it out of its channels; flushing: reaped, its ERROR line on the way,
	 * freed when that is written or the grace timer fires */
	bool tls_ready, registered, cap_open, sasl_wait, oper, closing, flushing, ping_sent;
	struct client *reap_next;
	bool queued; /* on ch->reap */
	uint64_t id; /* names the client in password jobs (a pointer may be freed meanwhile) */
	bool auth_wait;        /* a password check or its answer is pending: not read */
	enum auth_kind answer; /* with answer_due: the failure to answer when the timer fires */
	bool answer_due;
	/* waiting for a free check (on ch->check_wait, held): the job to submit (owned) */
	struct auth_job *check_job;
	struct client *check_prev, *check_next;
	unsigned fails; /* failed logins on this connection */
	bool budget_wait;         /* not read until the bytes held fall under the budget */
	struct client *wait_next; /* on ch->waiting */
	size_t partial;           /* bytes of a partly gathered line counted in ch->held */
	char why[64];   /* the reason of a quit, a server constant */
	char said[128]; /* a QUIT's own text, for the peers only (never logged) */
	double started, last_rx;
	double tokens, tokens_at;
	struct channel **chans;
	size_t nchans;
	uint64_t mark; /* channel_send_peers: already sent in round `mark` */
};

struct channel {
	char name[IRC_CHANNEL_MAX + 1];
	char folded[IRC_CHANNEL_MAX + 1];
	char topic[CHAT_TOPIC_MAX + 1];
	char topic_by[IRC_NICK_MAX + 1];
	struct client **members;
	bool *ops; /* parallel to members */
	size_t n, cap;
	char bans[CHAT_BANS_MAX][IRC_NICK_MAX + 1]; /* folded nicknames */
	size_t nbans;
	char **backlog; /* ring of formatted lines */
	size_t blen, bhead;
	struct channel *dead_next; /* emptied, waiting to be freed by the reaper */
};

/* Failed logins of one source address or one account, for the delay before answering. */
struct fail_rec {
	char key[CHAT_FAIL_KEY];
	unsigned n;
	double last;
};

struct chat_listener {
	struct chat *ch;
	struct listener *l;
	bool tls;
};

struct chat {
	struct event_base *base;
	struct chat_config *cfg;
	SSL_CTX *tls;
	struct passwd_account *accounts;
	size_t naccounts;
	struct chat_listener **ls;
	size_t nls;
	struct listener_set *accepted; /* max_clients, max_per_source (core/listener) */
	struct client *clients;
	uint64_t nclients, peak;
	struct channel **chans;
	size_t nchans;
	struct buf scratch; /* one formatted line */
	struct client *reap;   /* marked dead inside a command or callback */
	struct channel *dead;  /* emptied channels, freed by the reaper */
	struct event *reap_ev; /* a zero-timeout event: the reaper runs from the loop */
	struct auth *auth;     /* the password worker */
	uint64_t next_id;
	size_t auth_waiting;   /* clients with auth_wait */
	char decoy[PASSWD_ENCODED_MAX]; /* verified for unknown accounts: the same cost */
	struct fail_rec fails[CHAT_FAIL_SLOTS];
	/* the source of every job queued or running (its client may be gone meanwhile) */
	struct {
		struct sockaddr_storage src;
		uint64_t id; /* 0: free */
		bool known;  /* a known account's check (may use the reserve) */
	} checks[AUTH_QUEUE_MAX];
	/* logins waiting for a free check, oldest first: at most one per client, so bounded by
	 * max_clients (each holds one struct auth_job, counted in held) */
	struct client *check_wait, *check_wait_tail;
	uint64_t held;           /* bytes in every client's input and output buffers and lines */
	struct client *waiting;  /* not read: the budget was reached */
	struct event *resume_ev; /* reads again, from the loop, once under the budget */
	uint64_t budget_waits;
	uint64_t round;     /* channel_send_peers rounds */
	bool draining;
	char created[32];
	uint64_t lines_in, msgs_out, dropped_sendq, dropped_flood, refused, logins_failed;
	uint64_t logins_busy;
	struct minutes per_minute; /* lines from clients, for the status page */
	struct log_rate rate;
};

#endif
