#include "chat/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat/auth.h"
#include "chat/irc.h"
#include "chat/passwd.h"
#include "core/admin.h"
#include "core/page.h"
#include "core/clock.h"
#include "core/lifecycle.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"

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
	uint64_t mark; /* send_to_peers: already sent in round `mark` */
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
	const char *path;
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
	struct lifecycle *life;
	struct admin *admin;
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
	uint64_t round;     /* send_to_peers rounds */
	bool draining;
	int status;
	char created[32];
	uint64_t lines_in, msgs_out, dropped_sendq, dropped_flood, refused, logins_failed;
	uint64_t logins_busy;
	struct minutes per_minute; /* lines from clients, for the status page */
	struct log_rate rate;
};

static void client_close(struct client *c, const char *reason);
static void client_quit(struct client *c, const char *reason);
static void chat_reap(struct chat *ch);
static int chat_load_accounts(struct chat *ch);
static void check_wait_drop(struct client *c);

/* ---- the memory budget ---- */

/* Every change of a client's input or output buffer moves ch->held. Once it is back under
 * 7/8 of the budget, the clients paused at the budget are read again (from the loop). */
static void held_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	struct chat *ch = arg;

	ch->held += info->n_added;
	ch->held -= info->n_deleted;
	if (ch->waiting != NULL && info->n_deleted > 0 &&
	    ch->held <= ch->cfg->memory_budget - ch->cfg->memory_budget / 8)
		event_active(ch->resume_ev, EV_TIMEOUT, 0);
}

/* At the budget: c is not read until the bytes held go down. Returns true if it waits. */
static bool budget_full(struct client *c)
{
	struct chat *ch = c->ch;

	if (ch->held < ch->cfg->memory_budget)
		return false;
	if (!c->budget_wait) {
		c->budget_wait = true;
		c->wait_next = ch->waiting;
		ch->waiting = c;
		ch->budget_waits++;
		bufferevent_disable(c->bev, EV_READ);
		log_limited(&ch->rate, LOG_WARN, "event=budget_full held=%llu budget=%llu",
			    (unsigned long long)ch->held,
			    (unsigned long long)ch->cfg->memory_budget);
	}
	return true;
}

static void budget_unlink(struct client *c)
{
	for (struct client **p = &c->ch->waiting; *p != NULL; p = &(*p)->wait_next) {
		if (*p == c) {
			*p = c->wait_next;
			break;
		}
	}
	c->budget_wait = false;
}

static void chat_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chat *ch = arg;
	struct client *c;

	while (ch->held < ch->cfg->memory_budget && (c = ch->waiting) != NULL) {
		ch->waiting = c->wait_next;
		c->budget_wait = false;
		if (c->closing || c->auth_wait)
			continue;
		bufferevent_enable(c->bev, EV_READ);
		bufferevent_trigger(c->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
	}
}

/* Counts c's partly gathered line (kept outside its input buffer) in ch->held. */
static void held_partial(struct client *c)
{
	size_t now = c->lines.acc.len;

	c->ch->held += now;
	c->ch->held -= c->partial;
	c->partial = now;
}

/* ---- output ---- */

/* Queues bytes to c, dropping c (not the server) when its send queue is over the limit.
 * Returns -1 if c was closed. */
static int client_write(struct client *c, const void *p, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->closing)
		return 0;
	if (evbuffer_get_length(out) + n > c->ch->cfg->sendq) {
		c->ch->dropped_sendq++;
		client_quit(c, "SendQ exceeded");
		return -1;
	}
	evbuffer_add(out, p, n);
	return 0;
}

/* Formats one line into ch->scratch. params are NULL-terminated varargs. */
static void fmt_line(struct chat *ch, const char *prefix, const char *cmd, bool trailing,
		     va_list ap)
{
	const char *params[IRC_PARAMS_MAX];
	unsigned n = 0;
	const char *p;

	while (n < IRC_PARAMS_MAX && (p = va_arg(ap, const char *)) != NULL)
		params[n++] = p;
	ch->scratch.off = ch->scratch.len = 0;
	irc_format(&ch->scratch, prefix, cmd, params, n, trailing);
}

/* Sends one line to c: prefix (NULL: the server), command, parameters, NULL. The last
 * parameter is written as a trailing one. */
static int sendf(struct client *c, const char *prefix, const char *cmd, ...)
{
	va_list ap;

	va_start(ap, cmd);
	fmt_line(c->ch, prefix ? prefix : c->ch->cfg->server_name, cmd, true, ap);
	va_end(ap);
	return client_write(c, buf_head(&c->ch->scratch), c->ch->scratch.len);
}

/* A numeric reply: ":server NNN nick params... :last". */
static int numeric(struct client *c, const char *num, ...)
{
	const char *params[IRC_PARAMS_MAX];
	unsigned n = 0;
	const char *p;
	va_list ap;
	struct chat *ch = c->ch;

	params[n++] = c->nick[0] ? c->nick : "*";
	va_start(ap, num);
	while (n < IRC_PARAMS_MAX && (p = va_arg(ap, const char *)) != NULL)
		params[n++] = p;
	va_end(ap);
	ch->scratch.off = ch->scratch.len = 0;
	irc_format(&ch->scratch, ch->cfg->server_name, num, params, n, true);
	return client_write(c, buf_head(&ch->scratch), ch->scratch.len);
}

static void prefix_of(const struct client *c, char *out, size_t len)
{
	snprintf(out, len, "%s!%s@%s", c->nick, c->user[0] ? c->user : "~u", c->host);
}

/* ---- channels ---- */

static struct channel *chan_find(struct chat *ch, const char *name)
{
	char f[IRC_CHANNEL_MAX + 1];

	irc_casefold(f, name, sizeof(f));
	for (size_t i = 0; i < ch->nchans; i++)
		if (strcmp(ch->chans[i]->folded, f) == 0)
			return ch->chans[i];
	return NULL;
}

static ssize_t chan_index(const struct channel *k, const struct client *c)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->members[i] == c)
			return (ssize_t)i;
	return -1;
}

static bool chan_is_op(const struct channel *k, const struct client *c)
{
	ssize_t i = chan_index(k, c);

	return c->oper || (i >= 0 && k->ops[i]);
}

static void chan_free(struct channel *k)
{
	for (size_t i = 0; i < k->blen; i++)
		free(k->backlog[i]);
	free(k->backlog);
	free(k->members);
	free(k->ops);
	free(k);
}

/* Takes an emptied k out of the channel list; the reaper frees it once control is back in
 * the loop, so a command that still holds k (PART, KICK, JOIN 0) never sees it freed. */
static void chan_retire(struct chat *ch, struct channel *k)
{
	for (size_t i = 0; i < ch->nchans; i++) {
		if (ch->chans[i] == k) {
			ch->chans[i] = ch->chans[--ch->nchans];
			break;
		}
	}
	k->dead_next = ch->dead;
	ch->dead = k;
	event_active(ch->reap_ev, EV_TIMEOUT, 0);
}

/* Sends the line in ch->scratch to every member of k except skip. Members whose queue
 * overflows are dropped; they are closed after the loop, not during it. */
static void chan_send(struct channel *k, const struct client *skip)
{
	struct chat *ch = skip != NULL ? skip->ch : k->members[0]->ch;
	size_t len = ch->scratch.len;
	char *line = xmalloc(len ? len : 1);
	struct client **over = NULL;
	size_t nover = 0;

	memcpy(line, buf_head(&ch->scratch), len);
	for (size_t i = 0; i < k->n; i++) {
		struct client *m = k->members[i];
		struct evbuffer *out = bufferevent_get_output(m->bev);
		if (m == skip || m->closing)
			continue;
		if (evbuffer_get_length(out) + len > ch->cfg->sendq) {
			struct client **p = xrealloc(over, (nover + 1) * sizeof(*over));
			over = p;
			over[nover++] = m;
			continue;
		}
		evbuffer_add(out, line, len);
		ch->msgs_out++;
	}
	free(line);
	for (size_t i = 0; i < nover; i++) {
		ch->dropped_sendq++;
		client_quit(over[i], "SendQ exceeded");
	}
	free(over);
}

static void chan_remember(struct chat *ch, struct channel *k)
{
	char *line;

	if (ch->cfg->backlog == 0)
		return;
	line = xstrndup((const char *)buf_head(&ch->scratch), ch->scratch.len);
	if (k->backlog == NULL) {
		k->backlog = xcalloc(ch->cfg->backlog, sizeof(*k->backlog));
	}
	if (k->blen < ch->cfg->backlog) {
		k->backlog[k->blen++] = line;
	} else {
		free(k->backlog[k->bhead]);
		k->backlog[k->bhead] = line;
		k->bhead = (k->bhead + 1) % k->blen;
	}
}

/* Takes c out of k (and k out of c's list); an emptied k is retired (freed later). */
static void chan_leave(struct chat *ch, struct channel *k, struct client *c)
{
	ssize_t i = chan_index(k, c);

	if (i >= 0) {
		k->members[i] = k->members[k->n - 1];
		k->ops[i] = k->ops[k->n - 1];
		k->n--;
	}
	for (size_t j = 0; j < c->nchans; j++) {
		if (c->chans[j] == k) {
			c->chans[j] = c->chans[--c->nchans];
			break;
		}
	}
	if (k->n == 0)
		chan_retire(ch, k);
}

/* Sends the line in ch->scratch once to every client sharing a channel with c (and to c
 * itself when self is true): each recipient is marked with the round, so one who shares
 * several channels gets it once. Costs the members of c's channels, not all clients. */
static void send_to_peers(struct client *c, bool self)
{
	struct chat *ch = c->ch;
	size_t len = ch->scratch.len;
	char *line = xmalloc(len ? len : 1);
	uint64_t round = ++ch->round;
	struct client **over = NULL;
	size_t nover = 0;

	memcpy(line, buf_head(&ch->scratch), len);
	c->mark = round;
	if (self && !c->closing)
		evbuffer_add(bufferevent_get_output(c->bev), line, len);
	/* whoever overflows is dropped after the loops: dropping changes the member lists */
	for (size_t i = 0; i < c->nchans; i++) {
		struct channel *k = c->chans[i];
		for (size_t j = 0; j < k->n; j++) {
			struct client *o = k->members[j];
			struct evbuffer *out = bufferevent_get_output(o->bev);
			if (o->mark == round || o->closing)
				continue;
			o->mark = round;
			if (evbuffer_get_length(out) + len > ch->cfg->sendq) {
				struct client **p = xrealloc(over, (nover + 1) * sizeof(*over));
				over = p;
				over[nover++] = o;
				continue;
			}
			evbuffer_add(out, line, len);
		}
	}
	free(line);
	for (size_t i = 0; i < nover; i++) {
		ch->dropped_sendq++;
		client_quit(over[i], "SendQ exceeded");
	}
	free(over);
}

/* ---- clients ---- */

static struct client *client_by_nick(struct chat *ch, const char *nick)
{
	for (struct client *o = ch->clients; o != NULL; o = o->next)
		if (o->nick[0] != '\0' && !o->closing && irc_casecmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

/* Marks c dead: from now on nothing is sent to it or read from it, and nothing is freed.
 * Safe inside any command or callback; the reaper, run from the loop, takes c out of its
 * channels (telling the others) and closes it. reason is a server constant. */
static void client_quit(struct client *c, const char *reason)
{
	struct chat *ch = c->ch;

	if (c->closing)
		return;
	c->closing = true;
	snprintf(c->why, sizeof(c->why), "%s", reason);
	bufferevent_disable(c->bev, EV_READ);
	c->reap_next = ch->reap;
	c->queued = true;
	ch->reap = c;
	event_active(ch->reap_ev, EV_TIMEOUT, 0);
}

/* The reaper's part for one client: leaves every channel telling the others, then closes.
 * Runs only from the loop (chat_reap), when no command holds c or its channels. */
static void client_reap(struct client *c)
{
	struct chat *ch = c->ch;
	char pfx[128], why[160];

	if (c->registered && c->nchans > 0) {
		prefix_of(c, pfx, sizeof(pfx));
		snprintf(why, sizeof(why), "Quit: %s", c->said[0] ? c->said : c->why);
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[1] = { why };
			irc_format(&ch->scratch, pfx, "QUIT", p, 1, true);
		}
		send_to_peers(c, false); /* c is closing: not to itself */
	}
	while (c->nchans > 0)
		chan_leave(ch, c->chans[0], c);
	client_close(c, c->why);
}

/* Reaps every client marked dead (reaping one can overflow, and so mark, others: they are
 * reaped in the same pass), then frees the emptied channels. Called from the loop only. */
static void chat_reap(struct chat *ch)
{
	struct client *c;
	struct channel *k;

	while ((c = ch->reap) != NULL) {
		ch->reap = c->reap_next;
		c->reap_next = NULL;
		c->queued = false;
		client_reap(c);
	}
	while ((k = ch->dead) != NULL) {
		ch->dead = k->dead_next;
		chan_free(k);
	}
}

static void chat_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	chat_reap(arg);
}

static void client_timer_arm(struct client *c, double seconds)
{
	struct timeval tv = clock_tv(seconds);

	evtimer_add(c->timer, &tv);
}

/* Ends the connection: an ERROR line is flushed (within CHAT_CLOSE_GRACE), then freed by
 * the write or timer callback. Frees nothing itself: safe inside a command. */
static void client_close(struct client *c, const char *reason)
{
	struct chat *ch = c->ch;
	char line[256], nick[LOG_VALUE_SIZE(IRC_NICK_MAX)];
	int n;

	if (c->flushing)
		return;
	n = snprintf(line, sizeof(line), "ERROR :Closing Link: %s (%s)\r\n", c->host, reason);
	evbuffer_add(bufferevent_get_output(c->bev), line, (size_t)n);
	c->closing = c->flushing = true;
	bufferevent_disable(c->bev, EV_READ);
	/* reason is a server constant: a QUIT's own text is never logged */
	log_limited(&ch->rate, LOG_INFO, "event=closed peer=%s nick=%s reason=\"%s\"", c->host,
		    c->nick[0] ? log_value(nick, sizeof(nick), c->nick) : "-", reason);
	client_timer_arm(c, CHAT_CLOSE_GRACE);
}

/* Frees c. From the loop only (write, event and timer callbacks, chat_free): a client
 * still queued for the reaper is reaped first. */
static void client_free(struct client *c)
{
	struct chat *ch = c->ch;

	if (c->queued) /* closed directly after it was marked: reaped first all the same */
		chat_reap(ch);
	if (c->auth_wait)
		ch->auth_waiting--;
	check_wait_drop(c);
	while (c->nchans > 0)
		chan_leave(ch, c->chans[0], c);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ch->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	ch->nclients--;
	listener_set_release(ch->accepted, c->src_count);
	if (c->budget_wait)
		budget_unlink(c);
	loop_free_event(&c->timer);
	evbuffer_remove_cb(bufferevent_get_input(c->bev), held_cb, ch);
	evbuffer_remove_cb(bufferevent_get_output(c->bev), held_cb, ch);
	ch->held -= evbuffer_get_length(bufferevent_get_input(c->bev)) +
		    evbuffer_get_length(bufferevent_get_output(c->bev)) + c->partial;
	bufferevent_free(c->bev);
	irc_lines_free(&c->lines);
	if (c->pass != NULL)
		explicit_bzero(c->pass, c->passlen);
	free(c->pass);
	free(c->chans);
	free(c);
}

/* ---- registration ---- */

static bool is_operator(const struct chat *ch, const char *account)
{
	for (size_t i = 0; i < ch->cfg->noperators; i++)
		if (irc_casecmp(ch->cfg->operators[i], account) == 0)
			return true;
	return false;
}

static void welcome(struct client *c)
{
	struct chat *ch = c->ch;
	char text[256], pfx[128], n1[16], n2[16], n3[16], n4[16];
	char lnick[LOG_VALUE_SIZE(IRC_NICK_MAX)], lacc[LOG_VALUE_SIZE(IRC_NICK_MAX)];

	c->registered = true;
	if (c->pass != NULL)
		explicit_bzero(c->pass, c->passlen);
	free(c->pass);
	c->pass = NULL;
	c->passlen = 0;
	c->oper = c->account[0] != '\0' && is_operator(ch, c->account);
	prefix_of(c, pfx, sizeof(pfx));
	snprintf(text, sizeof(text), "Welcome to the netwall chat %s", pfx);
	numeric(c, "001", text, NULL);
	snprintf(text, sizeof(text), "Your host is %s, running netwall", ch->cfg->server_name);
	numeric(c, "002", text, NULL);
	snprintf(text, sizeof(text), "This server was created %s", ch->created);
	numeric(c, "003", text, NULL);
	numeric(c, "004", ch->cfg->server_name, "netwall", "io", "bnot", NULL);
	snprintf(n1, sizeof(n1), "NICKLEN=%d", IRC_NICK_MAX);
	snprintf(n2, sizeof(n2), "CHANNELLEN=%d", IRC_CHANNEL_MAX);
	snprintf(n3, sizeof(n3), "TOPICLEN=%d", CHAT_TOPIC_MAX);
	snprintf(n4, sizeof(n4), "CHANLIMIT=#&:%llu", (unsigned long long)ch->cfg->max_channels);
	numeric(c, "005", "CASEMAPPING=rfc1459", "CHANTYPES=#&", "PREFIX=(o)@", "CHANMODES=b,,,nt",
		n1, n2, n3, n4, "NETWORK=netwall", "are supported by this server", NULL);
	numeric(c, "422", "MOTD File is missing", NULL);
	if (c->oper)
		numeric(c, "381", "You are now an IRC operator", NULL);
	log_info("event=registered peer=%s nick=%s account=%s", c->host,
		 log_value(lnick, sizeof(lnick), c->nick),
		 c->account[0] ? log_value(lacc, sizeof(lacc), c->account) : "-");
	client_timer_arm(c, ch->cfg->ping_interval);
}

/* ---- password checks (on the worker, see auth.h) ---- */

/* Holds c while its check or the answer to a failure is pending: it is not read, so none of
 * its commands run meanwhile. Releasing reads what arrived in the meantime. */
static void auth_hold(struct client *c, bool on)
{
	struct chat *ch = c->ch;

	if (c->auth_wait == on)
		return;
	c->auth_wait = on;
	if (on) {
		ch->auth_waiting++;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	ch->auth_waiting--;
	if (c->closing || c->budget_wait)
		return;
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}

/* The record of key (made, or the oldest replaced, if absent); its count restarts after
 * CHAT_FAIL_FORGET. A linear walk of CHAT_FAIL_SLOTS, once per failed login. */
static struct fail_rec *fail_find(struct chat *ch, const char *key, double now)
{
	struct fail_rec *old = &ch->fails[0];

	for (size_t i = 0; i < CHAT_FAIL_SLOTS; i++) {
		struct fail_rec *r = &ch->fails[i];
		if (strcmp(r->key, key) == 0) {
			if (now - r->last > CHAT_FAIL_FORGET)
				r->n = 0;
			return r;
		}
		if (r->last < old->last)
			old = r;
	}
	snprintf(old->key, sizeof(old->key), "%s", key);
	old->n = 0;
	return old;
}

/* Counts a failed login of c's address and of account; returns the delay before its
 * answer: CHAT_FAIL_DELAY doubled for each earlier failure of either, at most
 * CHAT_FAIL_DELAY_MAX. */
static double fail_count(struct client *c, const char *account)
{
	struct chat *ch = c->ch;
	double now = clock_mono(), delay = CHAT_FAIL_DELAY;
	char key[CHAT_FAIL_KEY];
	struct fail_rec *src, *acc;
	unsigned n;

	snprintf(key, sizeof(key), "s:%s", c->host);
	src = fail_find(ch, key, now);
	src->n++;
	src->last = now;
	key[0] = 'a';
	irc_casefold(key + 2, account, sizeof(key) - 2);
	acc = fail_find(ch, key, now);
	acc->n++;
	acc->last = now;
	n = src->n > acc->n ? src->n : acc->n;
	while (--n > 0 && delay < CHAT_FAIL_DELAY_MAX)
		delay *= 2;
	return delay < CHAT_FAIL_DELAY_MAX ? delay : CHAT_FAIL_DELAY_MAX;
}

/* The answer to a failed login, the same for every cause (unknown account, wrong or no
 * password, malformed SASL) so that accounts cannot be told apart. PASS: 464 and the end
 * of the connection; SASL: 904, and the end after CHAT_LOGIN_TRIES failures. */
static void login_refuse(struct client *c, enum auth_kind kind)
{
	struct chat *ch = c->ch;
	double left = ch->cfg->register_timeout - (clock_mono() - c->started);

	ch->logins_failed++;
	c->fails++;
	auth_hold(c, false);
	if (kind == AUTH_PASS) {
		numeric(c, "464", "Password incorrect", NULL);
		client_close(c, "Bad password");
		return;
	}
	numeric(c, "904", "SASL authentication failed", NULL);
	if (c->fails >= CHAT_LOGIN_TRIES)
		client_close(c, "Too many failed logins");
	else if (!c->closing) /* the answer's delay used the registration timer */
		client_timer_arm(c, left > 0.01 ? left : 0.01);
}

/* A check failed: logged, counted, answered after the delay (c stays held meanwhile). */
static void login_failed(struct client *c, enum auth_kind kind, const char *account)
{
	char acc[LOG_VALUE_SIZE(IRC_NICK_MAX)];
	double delay = fail_count(c, account);

	log_limited(&c->ch->rate, LOG_WARN,
		    "event=login_failed peer=%s account=%s via=%s delay=%.2f", c->host,
		    log_value(acc, sizeof(acc), account), kind == AUTH_PASS ? "pass" : "sasl",
		    delay);
	c->answer = kind;
	c->answer_due = true;
	auth_hold(c, true);
	client_timer_arm(c, delay);
}

/* Where the checks go. The worker has AUTH_QUEUE_MAX places; ch->checks records the source
 * of each job queued or running. A job may start when (1) its source network (the
 * configured source_prefix_v4/v6, as everywhere else in the chat) has fewer than
 * CHAT_CHECKS_PER_SOURCE jobs, (2) there is a free place, and (3) unless it is a known
 * account's check, fewer than AUTH_QUEUE_MAX - CHAT_CHECKS_KNOWN jobs are not known
 * accounts': a flood of decoys (unknown accounts) cannot take the places of real logins,
 * and the worker runs known accounts' checks ahead of the rest (auth_submit). A login
 * that cannot start waits, held and not read, on ch->check_wait, and starts when a place
 * frees: the waiting known accounts first, then the source networks with the fewest jobs,
 * the oldest first (one busy network cannot starve another). A login still waiting, or
 * still being checked, at its registration deadline is told the server is busy. */

/* Jobs of c's source network queued or running; sets *free_slot (AUTH_QUEUE_MAX if none)
 * and *unknown, the jobs for unknown accounts. A walk of AUTH_QUEUE_MAX. */
static unsigned checks_count(struct client *c, size_t *free_slot, unsigned *unknown)
{
	struct chat *ch = c->ch;
	unsigned n = 0;

	*free_slot = AUTH_QUEUE_MAX;
	*unknown = 0;
	for (size_t i = 0; i < AUTH_QUEUE_MAX; i++) {
		if (ch->checks[i].id == 0) {
			*free_slot = *free_slot < AUTH_QUEUE_MAX ? *free_slot : i;
			continue;
		}
		*unknown += !ch->checks[i].known;
		n += addr_same_net((const struct sockaddr *)&ch->checks[i].src,
				   (const struct sockaddr *)&c->src,
				   (unsigned)ch->cfg->source_prefix_v4,
				   (unsigned)ch->cfg->source_prefix_v6);
	}
	return n;
}

/* May c's job start now (rules above)? Returns its place in ch->checks, or -1; *n is the
 * jobs of its source network. */
static int checks_fit(struct client *c, bool known, unsigned *n)
{
	size_t slot;
	unsigned unknown;

	*n = checks_count(c, &slot, &unknown);
	if (*n >= CHAT_CHECKS_PER_SOURCE || slot == AUTH_QUEUE_MAX)
		return -1;
	if (!known && unknown >= AUTH_QUEUE_MAX - CHAT_CHECKS_KNOWN)
		return -1;
	return (int)slot;
}

/* Records j in ch->checks at slot and hands it to the worker (which takes ownership). */
static void checks_submit(struct client *c, struct auth_job *j, size_t slot)
{
	struct chat *ch = c->ch;

	ch->checks[slot].src = c->src;
	ch->checks[slot].id = c->id;
	ch->checks[slot].known = j->known;
	if (auth_submit(ch->auth, j) == -1) /* ch->checks mirrors the worker's queue */
		abort();
}

static void check_wait_unlink(struct client *c)
{
	struct chat *ch = c->ch;

	if (c->check_prev != NULL)
		c->check_prev->check_next = c->check_next;
	else
		ch->check_wait = c->check_next;
	if (c->check_next != NULL)
		c->check_next->check_prev = c->check_prev;
	else
		ch->check_wait_tail = c->check_prev;
	c->check_prev = c->check_next = NULL;
	ch->held -= sizeof(*c->check_job);
}

/* c leaves the wait list, its job wiped and dropped (c closed, or at its deadline). */
static void check_wait_drop(struct client *c)
{
	if (c->check_job == NULL)
		return;
	check_wait_unlink(c);
	auth_job_free(c->check_job);
	c->check_job = NULL;
}

/* Starts the waiting logins that fit, best first: known accounts, then the fewest jobs
 * from the same source network, then the oldest. A walk of the wait list (at most
 * max_clients entries, AUTH_QUEUE_MAX comparisons each) per start, run only when a check
 * ends (each check is an scrypt, about a tenth of a second). */
static void checks_next(struct chat *ch)
{
	for (;;) {
		struct client *best = NULL;
		unsigned best_n = 0;
		int best_slot = -1;

		for (struct client *w = ch->check_wait; w != NULL; w = w->check_next) {
			unsigned n;
			int slot = checks_fit(w, w->check_job->known, &n);

			if (slot == -1 || w->closing)
				continue;
			if (best == NULL || (w->check_job->known && !best->check_job->known) ||
			    (w->check_job->known == best->check_job->known && n < best_n)) {
				best = w;
				best_n = n;
				best_slot = slot;
				if (w->check_job->known && n == 0)
					break; /* none can be better */
			}
		}
		if (best == NULL)
			return;
		check_wait_unlink(best);
		checks_submit(best, best->check_job, (size_t)best_slot);
		best->check_job = NULL;
	}
}

static void checks_release(struct chat *ch, uint64_t id)
{
	for (size_t i = 0; i < AUTH_QUEUE_MAX; i++)
		if (ch->checks[i].id == id)
			ch->checks[i].id = 0;
	checks_next(ch);
}

/* Hands a check to the worker and holds c until its answer. encoded NULL: a decoy of the
 * same cost (an unknown account). A login that cannot start (see above) waits for a place,
 * held; a REGISTER is answered TEMPORARILY_UNAVAILABLE at once instead (the client is
 * registered or may retry). */
static void auth_start(struct client *c, enum auth_kind kind, const char *name,
		       const char *password, size_t len, const char *encoded)
{
	struct chat *ch = c->ch;
	struct auth_job *j = auth_job_new();
	unsigned n;
	int slot;

	j->id = c->id;
	j->kind = kind;
	j->known = encoded != NULL && kind != AUTH_REGISTER;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->len = len < PASSWD_MAX_LEN ? len : PASSWD_MAX_LEN;
	memcpy(j->password, password, j->len);
	snprintf(j->encoded, sizeof(j->encoded), "%s", encoded != NULL ? encoded : ch->decoy);
	j->file = ch->cfg->accounts;
	slot = checks_fit(c, j->known, &n);
	if (slot != -1) {
		checks_submit(c, j, (size_t)slot);
	} else if (kind == AUTH_REGISTER) {
		auth_job_free(j);
		ch->logins_busy++;
		log_limited(&ch->rate, LOG_WARN, "event=login_busy peer=%s", c->host);
		sendf(c, NULL, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", "*",
		      "Busy, try again", NULL);
		return;
	} else {
		c->check_job = j;
		c->check_prev = ch->check_wait_tail;
		if (ch->check_wait_tail != NULL)
			ch->check_wait_tail->check_next = c;
		else
			ch->check_wait = c;
		ch->check_wait_tail = c;
		ch->held += sizeof(*j);
	}
	auth_hold(c, true);
}

static struct client *client_by_id(struct chat *ch, uint64_t id)
{
	for (struct client *o = ch->clients; o != NULL; o = o->next)
		if (o->id == id)
			return o;
	return NULL;
}

static void register_done(struct client *c, struct auth_job *j)
{
	struct chat *ch = c->ch;
	char nick[LOG_VALUE_SIZE(IRC_NICK_MAX)];

	auth_hold(c, false);
	if (j->result == AUTH_EXISTS) {
		sendf(c, NULL, "FAIL", "REGISTER", "ACCOUNT_EXISTS", j->name,
		      "Account already exists", NULL);
	} else if (j->result != AUTH_OK) {
		log_error("event=register_failed nick=%s error=\"%s\"",
			  log_value(nick, sizeof(nick), j->name), j->err);
		sendf(c, NULL, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", j->name,
		      "The account could not be stored", NULL);
	} else {
		snprintf(c->account, sizeof(c->account), "%s", j->name);
		log_info("event=account_registered peer=%s nick=%s", c->host,
			 log_value(nick, sizeof(nick), j->name));
		sendf(c, NULL, "REGISTER", "SUCCESS", j->name, "Account created", NULL);
	}
	(void)ch;
}

static void login_done(struct client *c, struct auth_job *j)
{
	char pfx[128];

	if (j->result != AUTH_OK) {
		login_failed(c, j->kind, j->name);
		return;
	}
	auth_hold(c, false);
	snprintf(c->account, sizeof(c->account), "%s", j->name);
	if (j->kind == AUTH_PASS) {
		welcome(c);
		return;
	}
	prefix_of(c, pfx, sizeof(pfx));
	numeric(c, "900", pfx, c->account, "You are now logged in", NULL);
	numeric(c, "903", "SASL authentication successful", NULL);
}

/* A finished job, on the loop: a REGISTER's new accounts are taken whoever asked; the
 * client, if still there, gets its answer. */
static void auth_done(struct auth_job *j, void *arg)
{
	struct chat *ch = arg;
	struct client *c = client_by_id(ch, j->id);

	checks_release(ch, j->id);
	if (j->kind == AUTH_REGISTER && j->result == AUTH_OK) {
		if (ch->accounts != NULL)
			explicit_bzero(ch->accounts, ch->naccounts * sizeof(*ch->accounts));
		free(ch->accounts);
		ch->accounts = j->accounts;
		ch->naccounts = j->naccounts;
		j->accounts = NULL;
	}
	if (c != NULL && !c->closing) {
		if (j->kind == AUTH_REGISTER)
			register_done(c, j);
		else
			login_done(c, j);
	}
	auth_job_free(j);
}

/* NICK and USER known and CAP not open: check the password (on the worker), then
 * welcome. Without open_registration a nickname without an account is checked against a
 * decoy, so that it fails like a wrong password, as slowly. */
static void try_register(struct client *c)
{
	struct chat *ch = c->ch;
	const struct passwd_account *a;

	if (c->registered || c->cap_open || c->auth_wait || c->nick[0] == '\0' ||
	    c->user[0] == '\0')
		return;
	if (c->account[0] == '\0') {
		a = passwd_find(ch->accounts, ch->naccounts, c->nick);
		if (a != NULL || !ch->cfg->open_registration) {
			auth_start(c, AUTH_PASS, a != NULL ? a->name : c->nick,
				   c->pass != NULL ? c->pass : "", c->passlen,
				   a != NULL ? a->encoded : NULL);
			return;
		}
	} else if (irc_casecmp(c->account, c->nick) != 0 &&
		   passwd_find(ch->accounts, ch->naccounts, c->nick) != NULL) {
		/* logged in by SASL as someone else, asking for another account's nickname */
		numeric(c, "433", c->nick, "Nickname belongs to another account", NULL);
		c->nick[0] = '\0';
		return;
	}
	welcome(c);
}

static void cmd_cap(struct client *c, struct irc_msg *m)
{
	const char *sub = m->nparams > 0 ? m->params[0] : "";

	if (strcmp(sub, "LS") == 0) {
		if (!c->registered)
			c->cap_open = true;
		sendf(c, NULL, "CAP", c->nick[0] ? c->nick : "*", "LS", "sasl", NULL);
	} else if (strcmp(sub, "LIST") == 0) {
		sendf(c, NULL, "CAP", c->nick[0] ? c->nick : "*", "LIST", "", NULL);
	} else if (strcmp(sub, "REQ") == 0 && m->nparams > 1) {
		bool ok = strcmp(m->params[1], "sasl") == 0;
		if (!c->registered)
			c->cap_open = true;
		sendf(c, NULL, "CAP", c->nick[0] ? c->nick : "*", ok ? "ACK" : "NAK", m->params[1],
		      NULL);
	} else if (strcmp(sub, "END") == 0) {
		c->cap_open = false;
		try_register(c);
	} else {
		numeric(c, "410", sub, "Invalid CAP command", NULL);
	}
}

static void cmd_authenticate(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *arg = m->nparams > 0 ? m->params[0] : "";
	unsigned char raw[CHAT_SASL_MAX];
	const struct passwd_account *a;
	const char *authc, *pw;
	size_t len, n;
	int dec;

	if (c->registered) {
		numeric(c, "907", "You have already authenticated", NULL);
		return;
	}
	if (!c->sasl_wait) {
		if (strcmp(arg, "PLAIN") != 0) {
			numeric(c, "908", "PLAIN", "are available SASL mechanisms", NULL);
			numeric(c, "904", "SASL authentication failed", NULL);
			return;
		}
		c->sasl_wait = true;
		client_write(c, "AUTHENTICATE +\r\n", 16);
		return;
	}
	c->sasl_wait = false;
	len = strlen(arg);
	if (len == 0 || len > (sizeof(raw) / 3) * 4 || strcmp(arg, "*") == 0) {
		numeric(c, "906", "SASL authentication aborted", NULL);
		return;
	}
	dec = EVP_DecodeBlock(raw, (const unsigned char *)arg, (int)len);
	if (dec < 0) {
		login_refuse(c, AUTH_SASL);
		return;
	}
	n = (size_t)dec;
	while (n > 0 && len > 0 && arg[len - 1] == '=') { /* padding decoded as zero bytes */
		n--;
		len--;
	}
	/* authzid NUL authcid NUL password */
	authc = memchr(raw, 0, n);
	pw = authc != NULL ? memchr(authc + 1, 0, n - (size_t)((const unsigned char *)authc + 1 - raw))
			   : NULL;
	if (authc == NULL || pw == NULL) {
		explicit_bzero(raw, sizeof(raw));
		login_refuse(c, AUTH_SASL);
		return;
	}
	authc++;
	pw++;
	/* authc ends at the NUL before pw: a C string */
	a = passwd_find(ch->accounts, ch->naccounts, authc);
	auth_start(c, AUTH_SASL, a != NULL ? a->name : authc, pw,
		   n - (size_t)((const unsigned char *)pw - raw), a != NULL ? a->encoded : NULL);
	explicit_bzero(raw, sizeof(raw));
}

static void cmd_nick(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *nick = m->nparams > 0 ? m->params[0] : "";
	struct client *o;
	char pfx[128];

	if (nick[0] == '\0') {
		numeric(c, "431", "No nickname given", NULL);
		return;
	}
	if (!irc_nick_valid(nick)) {
		numeric(c, "432", nick, "Erroneous nickname", NULL);
		return;
	}
	o = client_by_nick(ch, nick);
	if (o != NULL && o != c) {
		numeric(c, "433", nick, "Nickname is already in use", NULL);
		return;
	}
	if (c->registered) {
		const struct passwd_account *a = passwd_find(ch->accounts, ch->naccounts, nick);
		if (a != NULL && irc_casecmp(a->name, c->account) != 0) {
			numeric(c, "433", nick, "Nickname belongs to an account", NULL);
			return;
		}
		prefix_of(c, pfx, sizeof(pfx));
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[1] = { nick };
			irc_format(&ch->scratch, pfx, "NICK", p, 1, false);
		}
		send_to_peers(c, true);
		snprintf(c->nick, sizeof(c->nick), "%s", nick);
		return;
	}
	snprintf(c->nick, sizeof(c->nick), "%s", nick);
	try_register(c);
}

static void cmd_user(struct client *c, struct irc_msg *m)
{
	if (c->registered) {
		numeric(c, "462", "You may not reregister", NULL);
		return;
	}
	if (m->nparams < 4) {
		numeric(c, "461", "USER", "Not enough parameters", NULL);
		return;
	}
	snprintf(c->user, sizeof(c->user), "%s", m->params[0]);
	for (char *p = c->user; *p; p++)
		if (*p == '@' || *p == '!' || (unsigned char)*p < 0x21)
			*p = '_';
	snprintf(c->real, sizeof(c->real), "%s", m->params[3]);
	try_register(c);
}

static void cmd_pass(struct client *c, struct irc_msg *m)
{
	size_t n;

	if (c->registered) {
		numeric(c, "462", "You may not reregister", NULL);
		return;
	}
	if (m->nparams < 1) {
		numeric(c, "461", "PASS", "Not enough parameters", NULL);
		return;
	}
	n = strlen(m->params[0]);
	if (n > PASSWD_MAX_LEN)
		n = PASSWD_MAX_LEN;
	if (c->pass != NULL)
		explicit_bzero(c->pass, c->passlen);
	free(c->pass);
	c->pass = xmalloc(n + 1);
	memcpy(c->pass, m->params[0], n);
	c->pass[n] = '\0';
	c->passlen = n;
	explicit_bzero(m->params[0], strlen(m->params[0]));
}

static void send_names(struct client *c, struct channel *k)
{
	struct chat *ch = c->ch;
	struct buf names = { 0 };

	for (size_t i = 0; i <= k->n; i++) {
		if (i == k->n || names.len > 400) {
			buf_append(&names, "", 1);
			numeric(c, "353", "=", k->name, (const char *)buf_head(&names), NULL);
			names.off = names.len = 0;
			if (i == k->n)
				break;
		}
		if (names.len > 0)
			buf_append(&names, " ", 1);
		if (k->ops[i])
			buf_append(&names, "@", 1);
		buf_append(&names, k->members[i]->nick, strlen(k->members[i]->nick));
	}
	buf_free(&names);
	numeric(c, "366", k->name, "End of /NAMES list", NULL);
	(void)ch;
}

static void join_one(struct client *c, const char *name)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128], folded[IRC_NICK_MAX + 1];

	if (!irc_channel_valid(name)) {
		numeric(c, "403", name, "No such channel", NULL);
		return;
	}
	k = chan_find(ch, name);
	if (k != NULL && chan_index(k, c) >= 0)
		return;
	if (c->nchans >= ch->cfg->max_channels) {
		numeric(c, "405", name, "You have joined too many channels", NULL);
		return;
	}
	irc_casefold(folded, c->nick, sizeof(folded));
	for (size_t i = 0; k != NULL && i < k->nbans; i++) {
		if (strcmp(k->bans[i], folded) == 0 && !c->oper) {
			numeric(c, "474", k->name, "Cannot join channel (+b)", NULL);
			return;
		}
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof(*k));
		snprintf(k->name, sizeof(k->name), "%s", name);
		irc_casefold(k->folded, name, sizeof(k->folded));
		ch->chans = xrealloc(ch->chans, (ch->nchans + 1) * sizeof(*ch->chans));
		ch->chans[ch->nchans++] = k;
	}
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 8;
		k->members = realloc(k->members, k->cap * sizeof(*k->members));
		k->ops = realloc(k->ops, k->cap * sizeof(*k->ops));
		if (k->members == NULL || k->ops == NULL)
			abort();
	}
	k->members[k->n] = c;
	k->ops[k->n] = k->n == 0; /* who opens a channel runs it */
	k->n++;
	c->chans = xrealloc(c->chans, (c->nchans + 1) * sizeof(*c->chans));
	c->chans[c->nchans++] = k;
	prefix_of(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[1] = { k->name };
		irc_format(&ch->scratch, pfx, "JOIN", p, 1, false);
	}
	chan_send(k, NULL);
	if (c->closing)
		return;
	if (k->topic[0] != '\0')
		numeric(c, "332", k->name, k->topic, NULL);
	send_names(c, k);
	for (size_t i = 0; i < k->blen; i++) { /* the backlog, oldest first */
		const char *line = k->backlog[(k->bhead + i) % k->blen];
		if (client_write(c, line, strlen(line)) == -1)
			return;
	}
}

static void cmd_join(struct client *c, struct irc_msg *m)
{
	char *save = NULL, *name;

	if (m->nparams < 1) {
		numeric(c, "461", "JOIN", "Not enough parameters", NULL);
		return;
	}
	if (strcmp(m->params[0], "0") == 0) {
		while (c->nchans > 0 && !c->closing) {
			struct channel *k = c->chans[0];
			char pfx[128];
			prefix_of(c, pfx, sizeof(pfx));
			c->ch->scratch.off = c->ch->scratch.len = 0;
			{
				const char *p[2] = { k->name, "Left all channels" };
				irc_format(&c->ch->scratch, pfx, "PART", p, 2, true);
			}
			chan_send(k, NULL);
			chan_leave(c->ch, k, c);
		}
		return;
	}
	for (name = strtok_r(m->params[0], ",", &save); name != NULL && !c->closing;
	     name = strtok_r(NULL, ",", &save))
		join_one(c, name);
}

static void cmd_part(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	char *save = NULL, *name, pfx[128];
	const char *why = m->nparams > 1 ? m->params[1] : "";

	if (m->nparams < 1) {
		numeric(c, "461", "PART", "Not enough parameters", NULL);
		return;
	}
	for (name = strtok_r(m->params[0], ",", &save); name != NULL && !c->closing;
	     name = strtok_r(NULL, ",", &save)) {
		struct channel *k = chan_find(ch, name);
		if (k == NULL) {
			numeric(c, "403", name, "No such channel", NULL);
			continue;
		}
		if (chan_index(k, c) < 0) {
			numeric(c, "442", k->name, "You're not on that channel", NULL);
			continue;
		}
		prefix_of(c, pfx, sizeof(pfx));
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[2] = { k->name, why };
			irc_format(&ch->scratch, pfx, "PART", p, why[0] ? 2 : 1, why[0] != '\0');
		}
		chan_send(k, NULL);
		chan_leave(ch, k, c);
	}
}

static void cmd_privmsg(struct client *c, struct irc_msg *m, bool notice)
{
	struct chat *ch = c->ch;
	const char *cmd = notice ? "NOTICE" : "PRIVMSG";
	char *save = NULL, *target, pfx[128];

	if (m->nparams < 1) {
		if (!notice)
			numeric(c, "411", "No recipient given (PRIVMSG)", NULL);
		return;
	}
	if (m->nparams < 2 || m->params[1][0] == '\0') {
		if (!notice)
			numeric(c, "412", "No text to send", NULL);
		return;
	}
	prefix_of(c, pfx, sizeof(pfx));
	for (target = strtok_r(m->params[0], ",", &save); target != NULL && !c->closing;
	     target = strtok_r(NULL, ",", &save)) {
		const char *p[2] = { target, m->params[1] };
		if (target[0] == '#' || target[0] == '&') {
			struct channel *k = chan_find(ch, target);
			if (k == NULL || chan_index(k, c) < 0) {
				if (!notice)
					numeric(c, "404", target, "Cannot send to channel", NULL);
				continue;
			}
			p[0] = k->name;
			ch->scratch.off = ch->scratch.len = 0;
			irc_format(&ch->scratch, pfx, cmd, p, 2, true);
			chan_send(k, c);
			if (!notice)
				chan_remember(ch, k);
		} else {
			struct client *o = client_by_nick(ch, target);
			if (o == NULL || !o->registered) {
				if (!notice)
					numeric(c, "401", target, "No such nick/channel", NULL);
				continue;
			}
			ch->scratch.off = ch->scratch.len = 0;
			irc_format(&ch->scratch, pfx, cmd, p, 2, true);
			if (client_write(o, buf_head(&ch->scratch), ch->scratch.len) == 0)
				ch->msgs_out++;
		}
	}
}

static void cmd_topic(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128];

	if (m->nparams < 1) {
		numeric(c, "461", "TOPIC", "Not enough parameters", NULL);
		return;
	}
	k = chan_find(ch, m->params[0]);
	if (k == NULL || chan_index(k, c) < 0) {
		numeric(c, "442", m->params[0], "You're not on that channel", NULL);
		return;
	}
	if (m->nparams < 2) {
		if (k->topic[0] == '\0')
			numeric(c, "331", k->name, "No topic is set", NULL);
		else
			numeric(c, "332", k->name, k->topic, NULL);
		return;
	}
	if (!chan_is_op(k, c)) {
		numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	snprintf(k->topic, sizeof(k->topic), "%s", m->params[1]);
	snprintf(k->topic_by, sizeof(k->topic_by), "%s", c->nick);
	prefix_of(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[2] = { k->name, k->topic };
		irc_format(&ch->scratch, pfx, "TOPIC", p, 2, true);
	}
	chan_send(k, NULL);
}

static void cmd_names(struct client *c, struct irc_msg *m)
{
	struct channel *k = m->nparams > 0 ? chan_find(c->ch, m->params[0]) : NULL;

	if (k != NULL)
		send_names(c, k);
	else
		numeric(c, "366", m->nparams > 0 ? m->params[0] : "*", "End of /NAMES list", NULL);
}

static void who_line(struct client *c, const char *chan, const struct client *o, bool op)
{
	char flags[4] = "H";

	if (op)
		flags[1] = '@';
	{
		char trail[96];
		snprintf(trail, sizeof(trail), "0 %s", o->real);
		numeric(c, "352", chan, o->user[0] ? o->user : "~u", o->host, c->ch->cfg->server_name,
			o->nick, flags, trail, NULL);
	}
}

static void cmd_who(struct client *c, struct irc_msg *m)
{
	const char *mask = m->nparams > 0 ? m->params[0] : "*";
	struct channel *k = chan_find(c->ch, mask);

	if (k != NULL) {
		for (size_t i = 0; i < k->n && !c->closing; i++)
			who_line(c, k->name, k->members[i], k->ops[i]);
	} else {
		struct client *o = client_by_nick(c->ch, mask);
		if (o != NULL && o->registered)
			who_line(c, "*", o, false);
	}
	numeric(c, "315", mask, "End of /WHO list", NULL);
}

static void cmd_whois(struct client *c, struct irc_msg *m)
{
	const char *nick = m->nparams > 1 ? m->params[1] : m->nparams > 0 ? m->params[0] : "";
	struct client *o = client_by_nick(c->ch, nick);

	if (o == NULL || !o->registered) {
		numeric(c, "401", nick, "No such nick/channel", NULL);
	} else {
		struct buf chans = { 0 };
		numeric(c, "311", o->nick, o->user, o->host, "*", o->real, NULL);
		numeric(c, "312", o->nick, c->ch->cfg->server_name, "netwall", NULL);
		for (size_t i = 0; i < o->nchans; i++) {
			if (chans.len > 0)
				buf_append(&chans, " ", 1);
			if (chan_is_op(o->chans[i], o))
				buf_append(&chans, "@", 1);
			buf_append(&chans, o->chans[i]->name, strlen(o->chans[i]->name));
		}
		buf_append(&chans, "", 1);
		if (o->nchans > 0)
			numeric(c, "319", o->nick, (const char *)buf_head(&chans), NULL);
		buf_free(&chans);
		if (o->account[0] != '\0')
			numeric(c, "330", o->nick, o->account, "is logged in as", NULL);
		if (o->oper)
			numeric(c, "313", o->nick, "is an IRC operator", NULL);
	}
	numeric(c, "318", nick, "End of /WHOIS list", NULL);
}

static void cmd_list(struct client *c, struct irc_msg *m)
{
	numeric(c, "321", "Channel", "Users  Name", NULL);
	for (size_t i = 0; i < c->ch->nchans && !c->closing; i++) {
		char n[16];
		snprintf(n, sizeof(n), "%zu", c->ch->chans[i]->n);
		numeric(c, "322", c->ch->chans[i]->name, n, c->ch->chans[i]->topic, NULL);
	}
	numeric(c, "323", "End of /LIST", NULL);
}

static void cmd_mode(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128];

	if (m->nparams < 1) {
		numeric(c, "461", "MODE", "Not enough parameters", NULL);
		return;
	}
	if (m->params[0][0] != '#' && m->params[0][0] != '&') {
		if (irc_casecmp(m->params[0], c->nick) != 0)
			numeric(c, "502", "Cannot change mode for other users", NULL);
		else
			numeric(c, "221", c->oper ? "+io" : "+i", NULL);
		return;
	}
	k = chan_find(ch, m->params[0]);
	if (k == NULL) {
		numeric(c, "403", m->params[0], "No such channel", NULL);
		return;
	}
	if (m->nparams < 2) {
		numeric(c, "324", k->name, "+nt", NULL);
		return;
	}
	if (strcmp(m->params[1], "b") == 0 || strcmp(m->params[1], "+b") == 0) {
		if (m->nparams < 3) { /* the ban list */
			for (size_t i = 0; i < k->nbans; i++)
				numeric(c, "367", k->name, k->bans[i], NULL);
			numeric(c, "368", k->name, "End of channel ban list", NULL);
			return;
		}
	}
	if (!chan_is_op(k, c)) {
		numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	if (m->nparams >= 3 && (strcmp(m->params[1], "+o") == 0 || strcmp(m->params[1], "-o") == 0)) {
		struct client *o = client_by_nick(ch, m->params[2]);
		ssize_t i = o != NULL ? chan_index(k, o) : -1;
		if (i < 0) {
			numeric(c, "441", m->params[2], k->name, "They aren't on that channel", NULL);
			return;
		}
		k->ops[i] = m->params[1][0] == '+';
	} else if (m->nparams >= 3 &&
		   (strcmp(m->params[1], "+b") == 0 || strcmp(m->params[1], "-b") == 0)) {
		char f[IRC_NICK_MAX + 1];
		char *bang = strchr(m->params[2], '!');
		if (bang != NULL)
			*bang = '\0'; /* nick!*@* masks ban by nickname */
		irc_casefold(f, m->params[2], sizeof(f));
		if (m->params[1][0] == '+' && k->nbans < CHAT_BANS_MAX) {
			snprintf(k->bans[k->nbans++], sizeof(k->bans[0]), "%s", f);
		} else if (m->params[1][0] == '-') {
			for (size_t i = 0; i < k->nbans; i++)
				if (strcmp(k->bans[i], f) == 0)
					memcpy(k->bans[i], k->bans[--k->nbans], sizeof(k->bans[0]));
		}
	} else {
		numeric(c, "472", m->params[1], "is unknown mode char to me", NULL);
		return;
	}
	prefix_of(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[3] = { k->name, m->params[1], m->params[2] };
		irc_format(&ch->scratch, pfx, "MODE", p, 3, false);
	}
	chan_send(k, NULL);
}

static void cmd_kick(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	struct client *o;
	char pfx[128];
	const char *why;

	if (m->nparams < 2) {
		numeric(c, "461", "KICK", "Not enough parameters", NULL);
		return;
	}
	k = chan_find(ch, m->params[0]);
	if (k == NULL) {
		numeric(c, "403", m->params[0], "No such channel", NULL);
		return;
	}
	if (!chan_is_op(k, c)) {
		numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	o = client_by_nick(ch, m->params[1]);
	if (o == NULL || chan_index(k, o) < 0) {
		numeric(c, "441", m->params[1], k->name, "They aren't on that channel", NULL);
		return;
	}
	why = m->nparams > 2 ? m->params[2] : c->nick;
	prefix_of(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[3] = { k->name, o->nick, why };
		irc_format(&ch->scratch, pfx, "KICK", p, 3, true);
	}
	chan_send(k, NULL);
	chan_leave(ch, k, o);
}

/* REGISTER <account> <email|*> <password> (IRCv3 account-registration): with
 * open_registration, a client creates an account for its nickname ("*" or the nickname
 * itself); from then on the nickname needs the password. Over TLS only, so the password
 * never crosses the network in clear (plaintext listeners are for loopback and tunnels:
 * those may register too). */
static void cmd_register(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *name;
	size_t n;

	if (!ch->cfg->open_registration || ch->cfg->accounts == NULL) {
		sendf(c, NULL, "FAIL", "REGISTER", "DISALLOWED", "*", "Registration is closed here",
		      NULL);
		return;
	}
	if (m->nparams < 3) {
		numeric(c, "461", "REGISTER", "Not enough parameters", NULL);
		return;
	}
	if (c->nick[0] == '\0' || c->account[0] != '\0') {
		sendf(c, NULL, "FAIL", "REGISTER", "ALREADY_AUTHENTICATED", "*",
		      "Choose a nickname first, and do not log in", NULL);
		return;
	}
	name = strcmp(m->params[0], "*") == 0 ? c->nick : m->params[0];
	if (irc_casecmp(name, c->nick) != 0) {
		sendf(c, NULL, "FAIL", "REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", name,
		      "The account is named after your nickname", NULL);
		return;
	}
	if (passwd_find(ch->accounts, ch->naccounts, name) != NULL) {
		sendf(c, NULL, "FAIL", "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists",
		      NULL);
		return;
	}
	n = strlen(m->params[2]);
	if (n < PASSWD_MIN_LEN || n > PASSWD_MAX_LEN) {
		explicit_bzero(m->params[2], n);
		sendf(c, NULL, "FAIL", "REGISTER", "WEAK_PASSWORD", name,
		      "The password must have 8 to 256 characters", NULL);
		return;
	}
	/* hashing, storing and reading the file again happen on the worker */
	auth_start(c, AUTH_REGISTER, name, m->params[2], n, NULL);
	explicit_bzero(m->params[2], n);
}

/* One line from c. */
static void client_line(struct client *c, char *line, size_t len)
{
	struct chat *ch = c->ch;
	struct irc_msg m;
	const char *err;
	const char *cmd;

	ch->lines_in++;
	minutes_add(&ch->per_minute, clock_wall(), 1);
	if (irc_parse(line, len, &m, &err) == -1) {
		if (strcmp(err, "empty line") == 0)
			return;
		log_limited(&ch->rate, LOG_INFO, "event=bad_line peer=%s error=\"%s\"", c->host, err);
		if (strcmp(err, "NUL in line") == 0) {
			client_quit(c, "Malformed line");
			return;
		}
		numeric(c, "421", "*", "Malformed line", NULL);
		return;
	}
	cmd = m.command;
	if (strcmp(cmd, "PING") == 0) {
		sendf(c, NULL, "PONG", ch->cfg->server_name, m.nparams > 0 ? m.params[0] : "", NULL);
	} else if (strcmp(cmd, "PONG") == 0) {
		c->ping_sent = false;
	} else if (strcmp(cmd, "QUIT") == 0) {
		if (m.nparams > 0) /* for the peers' QUIT line only: free text is never logged */
			snprintf(c->said, sizeof(c->said), "%s", m.params[0]);
		client_quit(c, "Client Quit");
	} else if (strcmp(cmd, "CAP") == 0) {
		cmd_cap(c, &m);
	} else if (strcmp(cmd, "AUTHENTICATE") == 0) {
		cmd_authenticate(c, &m);
	} else if (strcmp(cmd, "PASS") == 0) {
		cmd_pass(c, &m);
	} else if (strcmp(cmd, "NICK") == 0) {
		cmd_nick(c, &m);
	} else if (strcmp(cmd, "USER") == 0) {
		cmd_user(c, &m);
	} else if (strcmp(cmd, "REGISTER") == 0) {
		cmd_register(c, &m);
	} else if (!c->registered) {
		numeric(c, "451", "You have not registered", NULL);
	} else if (strcmp(cmd, "JOIN") == 0) {
		cmd_join(c, &m);
	} else if (strcmp(cmd, "PART") == 0) {
		cmd_part(c, &m);
	} else if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
		cmd_privmsg(c, &m, cmd[0] == 'N');
	} else if (strcmp(cmd, "TOPIC") == 0) {
		cmd_topic(c, &m);
	} else if (strcmp(cmd, "NAMES") == 0) {
		cmd_names(c, &m);
	} else if (strcmp(cmd, "WHO") == 0) {
		cmd_who(c, &m);
	} else if (strcmp(cmd, "WHOIS") == 0) {
		cmd_whois(c, &m);
	} else if (strcmp(cmd, "LIST") == 0) {
		cmd_list(c, &m);
	} else if (strcmp(cmd, "MODE") == 0) {
		cmd_mode(c, &m);
	} else if (strcmp(cmd, "KICK") == 0) {
		cmd_kick(c, &m);
	} else if (strcmp(cmd, "MOTD") == 0) {
		numeric(c, "422", "MOTD File is missing", NULL);
	} else {
		numeric(c, "421", cmd, "Unknown command", NULL);
	}
}

/* A token bucket per client: flood_rate lines a second on average, flood_burst at once. */
static bool client_flooding(struct client *c, double now)
{
	const struct chat_config *cfg = c->ch->cfg;

	c->tokens += (now - c->tokens_at) * cfg->flood_rate;
	if (c->tokens > cfg->flood_burst)
		c->tokens = cfg->flood_burst;
	c->tokens_at = now;
	if (c->tokens < 1)
		return true;
	c->tokens -= 1;
	return false;
}

static void client_read_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	double now = clock_mono();

	c->last_rx = now;
	c->ping_sent = false;
	for (int turn = 0; turn < CHAT_PARTS_PER_TURN && !c->closing && !c->auth_wait; turn++) {
		struct evbuffer_iovec v;
		size_t used, len;
		char *line, lnick[LOG_VALUE_SIZE(IRC_NICK_MAX)];
		enum irc_line_result r;

		if (budget_full(c) || evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			break;
		r = irc_lines_feed(&c->lines, v.iov_base, v.iov_len, &used, &line, &len);
		evbuffer_drain(in, used);
		if (r == IRC_LINE_MORE)
			continue;
		if (client_flooding(c, now)) {
			c->ch->dropped_flood++;
			log_limited(&c->ch->rate, LOG_WARN, "event=flood peer=%s nick=%s", c->host,
				    c->nick[0] ? log_value(lnick, sizeof(lnick), c->nick) : "-");
			client_quit(c, "Excess Flood");
			break;
		}
		if (r == IRC_LINE_TOO_LONG)
			numeric(c, "417", "Input line was too long", NULL);
		else
			client_line(c, line, len);
	}
	if (!c->closing && !c->auth_wait && !c->budget_wait && evbuffer_get_length(in) > 0) {
		/* more than a turn's worth: continue on the next loop turn, others first */
		bufferevent_trigger(bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
	} else if (!c->closing && evbuffer_get_length(in) == 0) {
		irc_lines_trim(&c->lines); /* an idle client holds no line buffer */
	}
	held_partial(c);
}

static void client_write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (c->flushing)
		client_free(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_ready = true;
		return;
	}
	if (!c->flushing)
		client_quit(c, (what & BEV_EVENT_EOF) ? "Connection closed" : "Connection error");
	client_free(c); /* reaps c first: from here no write can reach the peer */
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	const struct chat_config *cfg = c->ch->cfg;
	double now = clock_mono();

	if (c->flushing) {
		client_free(c);
		return;
	}
	if (c->closing) /* the reaper closes it */
		return;
	if (c->answer_due) { /* the delayed answer to a failed login */
		c->answer_due = false;
		login_refuse(c, c->answer);
		return;
	}
	if (!c->registered && c->auth_wait) { /* its check waits, or is not done yet */
		c->ch->logins_busy++;
		log_limited(&c->ch->rate, LOG_WARN, "event=login_busy peer=%s", c->host);
		check_wait_drop(c);
		client_close(c, CHAT_BUSY);
		return;
	}
	if (!c->registered) {
		client_close(c, "Registration timeout");
		return;
	}
	if (c->budget_wait) { /* not read by our choice: its silence means nothing */
		client_timer_arm(c, cfg->ping_interval);
		return;
	}
	if (c->ping_sent) {
		client_quit(c, "Ping timeout");
		return;
	}
	if (now - c->last_rx >= cfg->ping_interval) {
		sendf(c, NULL, "PING", cfg->server_name, NULL);
		c->ping_sent = true;
		client_timer_arm(c, cfg->ping_timeout);
	} else {
		client_timer_arm(c, cfg->ping_interval - (now - c->last_rx));
	}
}

static void chat_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct chat_listener *l = arg;

	(void)sa;
	(void)r;
	l->ch->refused++;
}

/* A connection the listener admitted: fd is ours, src its count in ch->accepted. */
static void chat_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
{
	struct chat_listener *l = arg;
	struct chat *ch = l->ch;
	struct client *c;

	sock_nodelay(fd);
	c = xcalloc(1, sizeof(*c));
	c->ch = ch;
	c->id = ++ch->next_id;
	c->src_count = src;
	memcpy(&c->src, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						      : sizeof(struct sockaddr_in));
	addr_format_host(sa, c->host, sizeof(c->host)); /* the host part of prefixes */
	irc_lines_init(&c->lines, CHAT_LINE_MAX);
	c->started = c->last_rx = c->tokens_at = clock_mono();
	c->tokens = ch->cfg->flood_burst;
	if (l->tls) {
		SSL *ssl = SSL_new(ch->tls);
		if (ssl == NULL)
			abort();
		c->bev = bufferevent_openssl_socket_new(ch->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(ch->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->tls_ready = true;
	}
	if (c->bev == NULL)
		abort();
	c->timer = evtimer_new(ch->base, client_timer_cb, c);
	evbuffer_add_cb(bufferevent_get_input(c->bev), held_cb, ch);
	evbuffer_add_cb(bufferevent_get_output(c->bev), held_cb, ch);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CHAT_READ_AHEAD);
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
	c->next = ch->clients;
	if (ch->clients != NULL)
		ch->clients->prev = c;
	ch->clients = c;
	ch->nclients++;
	if (ch->nclients > ch->peak)
		ch->peak = ch->nclients;
	client_timer_arm(c, ch->cfg->register_timeout);
}

/* ---- admin and life ---- */

static void chat_metrics(struct evbuffer *out, void *arg)
{
	struct chat *ch = arg;

	admin_family(out, "netwall_chat_clients", "gauge", "connected clients");
	admin_sample(out, "netwall_chat_clients", "", ch->nclients);
	admin_family(out, "netwall_chat_channels", "gauge", "channels");
	admin_sample(out, "netwall_chat_channels", "", ch->nchans);
	admin_family(out, "netwall_chat_lines_received_total", "counter", "lines from clients");
	admin_sample(out, "netwall_chat_lines_received_total", "", ch->lines_in);
	admin_family(out, "netwall_chat_messages_delivered_total", "counter",
		     "messages queued to recipients");
	admin_sample(out, "netwall_chat_messages_delivered_total", "", ch->msgs_out);
	admin_family(out, "netwall_chat_dropped_total", "counter", "clients dropped, by reason");
	admin_sample(out, "netwall_chat_dropped_total", "reason=\"sendq\"", ch->dropped_sendq);
	admin_sample(out, "netwall_chat_dropped_total", "reason=\"flood\"", ch->dropped_flood);
	admin_family(out, "netwall_chat_refused_total", "counter", "connections refused");
	admin_sample(out, "netwall_chat_refused_total", "", ch->refused);
	admin_metric(out, "netwall_chat_logins_failed_total", "counter",
		     "failed logins", ch->logins_failed);
	admin_metric(out, "netwall_chat_memory_held_bytes", "gauge",
		     "bytes held for clients: queues, input read ahead, partial lines", ch->held);
	admin_metric(out, "netwall_chat_memory_budget_bytes", "gauge",
		     "memory_budget", ch->cfg->memory_budget);
	admin_metric(out, "netwall_chat_memory_waits_total", "counter",
		     "times a client was not read because the bytes held reached the budget",
		     ch->budget_waits);
	admin_metric(out, "netwall_chat_logins_pending", "gauge",
		     "clients whose password check (waiting, queued or running), or the delayed "
		     "answer to it, is pending", ch->auth_waiting);
	admin_metric(out, "netwall_chat_logins_busy_total", "counter",
		     "logins not checked by their registration deadline, and REGISTERs refused "
		     "at a full password queue", ch->logins_busy);
}

static void chat_status(struct evbuffer *out, void *arg)
{
	struct chat *ch = arg;

	evbuffer_add_printf(out, "{\"role\":\"chat\",\"clients\":%llu,\"channels\":%zu}\n",
			    (unsigned long long)ch->nclients, ch->nchans);
}

static void chat_page(struct evbuffer *out, void *arg)
{
	struct chat *ch = arg;

	evbuffer_add_printf(out, "<div class=\"tiles\">");
	page_tile_text(out, "state", "state", ch->draining ? "closing" : "serving");
	page_tile(out, "clients", "clients", ch->nclients);
	page_tile(out, "channels", "rooms", ch->nchans);
	page_tile(out, "lines", "lines received", ch->lines_in);
	page_tile(out, "delivered", "messages delivered", ch->msgs_out);
	page_tile(out, "dropped", "clients dropped (sendq, flood)",
		  ch->dropped_sendq + ch->dropped_flood);
	page_tile(out, "refused", "connections refused", ch->refused);
	page_tile(out, "logins_failed", "failed logins", ch->logins_failed);
	evbuffer_add_printf(out, "</div>\n<h2>Rooms</h2><table id=\"rooms\"><tr><th>room</th>"
				 "<th>members</th></tr>\n");
	for (size_t i = 0; i < ch->nchans; i++) {
		evbuffer_add_printf(out, "<tr><td>");
		page_esc(out, ch->chans[i]->name);
		evbuffer_add_printf(out, "</td><td class=\"n\">%zu</td></tr>\n", ch->chans[i]->n);
	}
	if (ch->nchans == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"2\" class=\"none\">none</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
	page_chart(out, "lines_chart", "Lines per minute", &ch->per_minute, clock_wall());
}

static int chat_health(char *why, size_t len, void *arg)
{
	struct chat *ch = arg;

	if (ch->draining) {
		snprintf(why, len, "draining");
		return -1;
	}
	return 0;
}

static const struct admin_ops chat_admin_ops = {
	.role = "chat",
	.page = chat_page,
	.metrics = chat_metrics,
	.status = chat_status,
	.health = chat_health,
};

static void chat_listeners_free(struct chat *ch)
{
	for (size_t i = 0; i < ch->nls; i++) {
		listener_free(ch->ls[i]->l);
		free(ch->ls[i]);
	}
	free(ch->ls);
	ch->ls = NULL;
	ch->nls = 0;
}

static int chat_load_accounts(struct chat *ch)
{
	char err[512];
	struct passwd_account *a = NULL;
	size_t n = 0;

	if (ch->cfg->accounts == NULL)
		return 0;
	if (passwd_load(ch->cfg->accounts, &a, &n, err, sizeof(err)) == -1) {
		log_error("event=accounts_failed error=\"%s\"", err);
		return -1;
	}
	if (ch->accounts != NULL)
		explicit_bzero(ch->accounts, ch->naccounts * sizeof(*ch->accounts));
	free(ch->accounts);
	ch->accounts = a;
	ch->naccounts = n;
	return 0;
}

static void chat_reload(void *arg)
{
	struct chat *ch = arg;
	char *msgs = NULL, err[256];
	struct chat_config *cfg = chat_config_load(ch->path, &msgs);

	/* the log level and the admin listener (address, token) follow the file; listeners and
	 * limits need a restart */
	if (cfg == NULL) {
		log_error("event=reload_failed file=%s (keeping the running config)", ch->path);
		fputs(msgs, stderr);
		free(msgs);
	} else {
		log_set_level(cfg->d.log_level);
		admin_reconfigure(&ch->admin, ch->base, cfg->d.admin_on ? &cfg->d.admin : NULL,
				  cfg->d.admin_token, &chat_admin_ops, ch, err, sizeof(err));
		chat_config_free(cfg);
	}
	/* the accounts file changes with `netwall chat passwd`: read it again */
	if (chat_load_accounts(ch) == 0)
		log_info("event=reloaded accounts=%zu", ch->naccounts);
}

static double chat_drain(void *arg)
{
	struct chat *ch = arg;

	ch->draining = true;
	chat_listeners_free(ch);
	for (struct client *c = ch->clients, *next; c != NULL; c = next) {
		next = c->next;
		client_close(c, "Server shutting down");
	}
	return ch->cfg->drain_timeout;
}

static bool chat_idle(void *arg)
{
	return ((struct chat *)arg)->clients == NULL;
}

static void chat_housekeeping(void *arg)
{
	struct chat *ch = arg;

	loop_trim(ch->nclients, &ch->peak);
}

static const struct lifecycle_ops chat_lifecycle_ops = {
	.reload = chat_reload,
	.drain = chat_drain,
	.idle = chat_idle,
	.housekeeping = chat_housekeeping,
};

static int chat_listen(struct chat *ch, const struct addr *a, bool tls)
{
	char err[300], s[ADDR_STRLEN];
	struct chat_listener *l = xcalloc(1, sizeof(*l));

	addr_format((const struct sockaddr *)&a->ss, s, sizeof(s));
	l->ch = ch;
	l->tls = tls;
	l->l = listener_new(ch->base, a, ch->accepted, chat_accept, chat_refused, l, err,
			    sizeof(err));
	if (l->l == NULL) {
		log_error("event=listen_failed addr=%s error=\"%s\"", s, err);
		free(l);
		return -1;
	}
	ch->ls = xrealloc(ch->ls, (ch->nls + 1) * sizeof(*ch->ls));
	ch->ls[ch->nls++] = l;
	log_info("event=listening what=irc addr=%s tls=%s", s, tls ? "on" : "off");
	return 0;
}

/* The decoy hash verified for an unknown account: a random password's, at the default cost,
 * so that its check takes as long as a real one. */
static int chat_decoy(struct chat *ch)
{
	unsigned char pw[24];
	char err[256];
	int rc;

	if (RAND_bytes(pw, sizeof(pw)) != 1)
		return -1;
	rc = passwd_hash((const char *)pw, sizeof(pw), ch->decoy, err, sizeof(err));
	OPENSSL_cleanse(pw, sizeof(pw));
	if (rc == -1)
		log_error("event=decoy_failed error=\"%s\"", err);
	return rc;
}

struct chat *chat_new(struct event_base *base, const char *path, struct chat_config *cfg)
{
	struct chat *ch = xcalloc(1, sizeof(*ch));
	char err[512];
	time_t now = time(NULL);
	struct tm tm;

	ch->base = base;
	ch->path = path;
	ch->cfg = cfg;
	gmtime_r(&now, &tm);
	strftime(ch->created, sizeof(ch->created), "%Y-%m-%d %H:%M:%S UTC", &tm);
	if (cfg->ntls > 0) {
		ch->tls = tls_ctx_server(cfg->cert, cfg->key, err, sizeof(err));
		if (ch->tls == NULL) {
			log_error("event=tls_failed error=\"%s\"", err);
			goto fail;
		}
		/* IRC clients are often older than TLS 1.3 */
		SSL_CTX_set_min_proto_version(ch->tls, TLS1_2_VERSION);
	}
	if (chat_load_accounts(ch) == -1)
		goto fail;
	if (chat_decoy(ch) == -1)
		goto fail;
	ch->auth = auth_new(base, auth_done, ch, err, sizeof(err));
	if (ch->auth == NULL) {
		log_error("event=auth_failed error=\"%s\"", err);
		goto fail;
	}
	ch->accepted = listener_set_new("refused", "listener=irc",
					&(struct listener_limits){
						.max_connections = (unsigned)cfg->max_clients,
						.max_per_source = (unsigned)cfg->max_per_source,
						.v4_prefix = cfg->source_prefix_v4,
						.v6_prefix = cfg->source_prefix_v6,
					});
	for (size_t i = 0; i < cfg->ntls; i++)
		if (chat_listen(ch, &cfg->tls_listen[i], true) == -1)
			goto fail;
	for (size_t i = 0; i < cfg->nplain; i++)
		if (chat_listen(ch, &cfg->plain_listen[i], false) == -1)
			goto fail;
	if (cfg->d.admin_on) {
		ch->admin = admin_new(base, &cfg->d.admin, cfg->d.admin_token, &chat_admin_ops, ch, err, sizeof(err));
		if (ch->admin == NULL) {
			log_error("event=admin_failed error=\"%s\"", err);
			goto fail;
		}
	}
	ch->reap_ev = event_new(base, -1, 0, chat_reap_cb, ch);
	ch->resume_ev = event_new(base, -1, 0, chat_resume_cb, ch);
	if (ch->reap_ev == NULL || ch->resume_ev == NULL)
		abort();
	ch->life = lifecycle_new(base, &chat_lifecycle_ops, ch);
	log_info("event=started accounts=%zu open_registration=%s", ch->naccounts,
		 cfg->open_registration ? "on" : "off");
	return ch;
fail:
	chat_free(ch);
	return NULL;
}

int chat_run(struct chat *ch)
{
	event_base_dispatch(ch->base);
	return ch->status;
}

void chat_free(struct chat *ch)
{
	if (ch == NULL)
		return;
	chat_listeners_free(ch);
	auth_free(ch->auth); /* the worker first: it may finish a job, never deliver it */
	while (ch->clients != NULL)
		client_free(ch->clients);
	chat_reap(ch);
	listener_set_free(ch->accepted); /* every client gave its count back */
	loop_free_event(&ch->reap_ev);
	loop_free_event(&ch->resume_ev);
	for (size_t i = 0; i < ch->nchans; i++)
		chan_free(ch->chans[i]);
	free(ch->chans);
	if (ch->accounts != NULL)
		explicit_bzero(ch->accounts, ch->naccounts * sizeof(*ch->accounts));
	free(ch->accounts);
	buf_free(&ch->scratch);
	admin_free(ch->admin);
	lifecycle_free(ch->life);
	SSL_CTX_free(ch->tls);
	chat_config_free(ch->cfg);
	free(ch);
}
