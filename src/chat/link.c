/* Connections: accept, reading and splitting lines (flood control, bounded work per
 * turn), the timers, the memory budget, and the reaper that frees dead clients from
 * the loop. */
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <stdlib.h>
#include <string.h>

#include "chat/channel.h"
#include "chat/command.h"
#include "chat/link.h"
#include "chat/login.h"
#include "chat/peer.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/sock.h"
#include "core/xalloc.h"

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

void link_resume_cb(evutil_socket_t fd, short what, void *arg)
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

/* The reaper's part for one client: leaves every channel telling the others, then closes.
 * Runs only from the loop (link_reap), when no command holds c or its channels. */
static void client_reap(struct client *c)
{
	struct chat *ch = c->ch;
	char pfx[128], why[160];

	if (c->registered && c->nchans > 0) {
		peer_prefix(c, pfx, sizeof(pfx));
		snprintf(why, sizeof(why), "Quit: %s", c->said[0] ? c->said : c->why);
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[1] = { why };
			irc_format(&ch->scratch, pfx, "QUIT", p, 1, true);
		}
		channel_send_peers(c, false); /* c is closing: not to itself */
	}
	while (c->nchans > 0)
		channel_leave(ch, c->chans[0], c);
	peer_close(c, c->why);
}

/* Reaps every client marked dead (reaping one can overflow, and so mark, others: they are
 * reaped in the same pass), then frees the emptied channels. Called from the loop only. */
void link_reap(struct chat *ch)
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
		channel_free(k);
	}
}

void link_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	link_reap(arg);
}

/* Frees c. From the loop only (write, event and timer callbacks, chat_free): a client
 * still queued for the reaper is reaped first. */
void link_free(struct client *c)
{
	struct chat *ch = c->ch;

	if (c->queued) /* closed directly after it was marked: reaped first all the same */
		link_reap(ch);
	if (c->auth_wait)
		ch->auth_waiting--;
	login_check_drop(c);
	while (c->nchans > 0)
		channel_leave(ch, c->chans[0], c);
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
			peer_quit(c, "Excess Flood");
			break;
		}
		if (r == IRC_LINE_TOO_LONG)
			peer_numeric(c, "417", "Input line was too long", NULL);
		else
			command_line(c, line, len);
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
		link_free(c);
}

static void client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		c->tls_ready = true;
		return;
	}
	if (!c->flushing)
		peer_quit(c, (what & BEV_EVENT_EOF) ? "Connection closed" : "Connection error");
	link_free(c); /* reaps c first: from here no write can reach the peer */
}

static void client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	const struct chat_config *cfg = c->ch->cfg;
	double now = clock_mono();

	if (c->flushing) {
		link_free(c);
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
		login_check_drop(c);
		peer_close(c, CHAT_BUSY);
		return;
	}
	if (!c->registered) {
		peer_close(c, "Registration timeout");
		return;
	}
	if (c->budget_wait) { /* not read by our choice: its silence means nothing */
		peer_timer_arm(c, cfg->ping_interval);
		return;
	}
	if (c->ping_sent) {
		peer_quit(c, "Ping timeout");
		return;
	}
	if (now - c->last_rx >= cfg->ping_interval) {
		peer_send(c, NULL, "PING", cfg->server_name, NULL);
		c->ping_sent = true;
		peer_timer_arm(c, cfg->ping_timeout);
	} else {
		peer_timer_arm(c, cfg->ping_interval - (now - c->last_rx));
	}
}

void link_refused(void *arg, const struct sockaddr *sa, enum listener_reason r)
{
	struct chat_listener *l = arg;

	(void)sa;
	(void)r;
	l->ch->refused++;
}

/* A connection the listener admitted: fd is ours, src its count in ch->accepted. */
void link_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src)
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
			xalloc_fail("SSL");
		c->bev = bufferevent_openssl_socket_new(ch->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
							BEV_OPT_CLOSE_ON_FREE);
	} else {
		c->bev = bufferevent_socket_new(ch->base, fd, BEV_OPT_CLOSE_ON_FREE);
		c->tls_ready = true;
	}
	if (c->bev == NULL)
		xalloc_fail("bufferevent");
	c->timer = evtimer_new(ch->base, client_timer_cb, c);
	if (c->timer == NULL)
		xalloc_fail("event");
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
	peer_timer_arm(c, ch->cfg->register_timeout);
}
