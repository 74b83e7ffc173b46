/* The chat server's admin and life: start (listeners, accounts, the password worker),
 * reload, drain, the status page and metrics, and the end: the role the daemon runner
 * (core/daemon.h) runs. The rooms it runs: link.c (connections), peer.c (output, close),
 * channel.c, login.c (registration), command.c. */
#include "chat/server.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat/channel.h"
#include "chat/link.h"
#include "chat/login.h"
#include "chat/peer.h"
#include "chat/state.h"
#include "core/admin.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/page.h"
#include "core/tls.h"
#include "core/xalloc.h"

/* One request's sample of the counters and gauges, all as uint64_t for the registry. */
struct chat_sample {
	uint64_t clients, channels, lines_in, msgs_out;
	uint64_t dropped[2]; /* chat_drop_reasons */
	uint64_t refused, logins_failed, held, budget, budget_waits, logins_pending;
	uint64_t logins_busy;
};

static const char *const chat_drop_reasons[] = { "sendq", "flood" };

static const struct metric chat_metric_table[] = {
	{ "netwall_chat_clients", METRIC_GAUGE, "connected clients",
	  METRIC_FIELD(struct chat_sample, clients) },
	{ "netwall_chat_channels", METRIC_GAUGE, "channels",
	  METRIC_FIELD(struct chat_sample, channels) },
	{ "netwall_chat_lines_received_total", METRIC_COUNTER, "lines from clients",
	  METRIC_FIELD(struct chat_sample, lines_in) },
	{ "netwall_chat_messages_delivered_total", METRIC_COUNTER,
	  "messages queued to recipients", METRIC_FIELD(struct chat_sample, msgs_out) },
	{ "netwall_chat_dropped_total", METRIC_COUNTER, "clients dropped, by reason", "reason",
	  METRIC_FIELDS(struct chat_sample, dropped, chat_drop_reasons, 2) },
	{ "netwall_chat_refused_total", METRIC_COUNTER, "connections refused",
	  METRIC_FIELD(struct chat_sample, refused) },
	{ "netwall_chat_logins_failed_total", METRIC_COUNTER, "failed logins",
	  METRIC_FIELD(struct chat_sample, logins_failed) },
	{ "netwall_chat_memory_held_bytes", METRIC_GAUGE,
	  "bytes held for clients: queues, input read ahead, partial lines",
	  METRIC_FIELD(struct chat_sample, held) },
	{ "netwall_chat_memory_budget_bytes", METRIC_GAUGE, "memory_budget",
	  METRIC_FIELD(struct chat_sample, budget) },
	{ "netwall_chat_memory_waits_total", METRIC_COUNTER,
	  "times a client was not read because the bytes held reached the budget",
	  METRIC_FIELD(struct chat_sample, budget_waits) },
	{ "netwall_chat_logins_pending", METRIC_GAUGE,
	  "clients whose password check (waiting, queued or running), or the delayed answer to "
	  "it, is pending",
	  METRIC_FIELD(struct chat_sample, logins_pending) },
	{ "netwall_chat_logins_busy_total", METRIC_COUNTER,
	  "logins not checked by their registration deadline, and REGISTERs refused at a full "
	  "password queue",
	  METRIC_FIELD(struct chat_sample, logins_busy) },
};

static void chat_register_metrics(struct metrics *m, void *arg)
{
	struct chat *ch = arg;
	struct chat_sample *s = metrics_scratch(m, sizeof(*s));

	*s = (struct chat_sample){
		.clients = ch->nclients,
		.channels = ch->nchans,
		.lines_in = ch->lines_in,
		.msgs_out = ch->msgs_out,
		.dropped = { ch->dropped_sendq, ch->dropped_flood },
		.refused = ch->refused,
		.logins_failed = ch->logins_failed,
		.held = ch->held,
		.budget = ch->cfg->memory_budget,
		.budget_waits = ch->budget_waits,
		.logins_pending = ch->auth_waiting,
		.logins_busy = ch->logins_busy,
	};
	metrics_add(m, chat_metric_table, sizeof(chat_metric_table) / sizeof(chat_metric_table[0]),
		    s);
}

/* The chat's part of /status: how many clients and channels. */
static json_t *chat_status_json(void *arg)
{
	struct chat *ch = arg;

	return json_pack("{s:I,s:I}", "clients", (json_int_t)ch->nclients, "channels",
			 (json_int_t)ch->nchans);
}

/* The tiles keep their ids (the page's tests and screenshots read them), then the rooms and
 * the lines per minute. */
static void chat_page(struct evbuffer *out, const struct metrics *m, void *arg)
{
	struct chat *ch = arg;

	(void)m;
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
	.register_metrics = chat_register_metrics,
	.page_body = chat_page,
	.status_json = chat_status_json,
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

/* A reload: the log level and the admin listener followed the file already (the runner);
 * listeners and limits need a restart, so the new cfg is only read for that and freed. The
 * accounts file changes with `netwall chat passwd`: read it again. Returns -1 with cfg the
 * caller's when the accounts cannot be read (the old ones stay). */
/* SIGHUP with a chat.ini that does not load: the accounts file changes with `netwall chat
 * passwd` and is read again all the same. */
static void chat_refresh(void *d)
{
	struct chat *ch = d;

	if (chat_load_accounts(ch) == 0)
		log_info("event=reloaded accounts=%zu", ch->naccounts);
}

static int chat_apply(void *d, void *cfg)
{
	struct chat *ch = d;

	if (chat_load_accounts(ch) == -1)
		return -1;
	chat_config_free(cfg);
	log_info("event=reloaded accounts=%zu", ch->naccounts);
	return 0;
}

static double chat_drain(void *arg)
{
	struct chat *ch = arg;

	ch->draining = true;
	chat_listeners_free(ch);
	for (struct client *c = ch->clients, *next; c != NULL; c = next) {
		next = c->next;
		peer_close(c, "Server shutting down");
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

static int chat_listen(struct chat *ch, const struct addr *a, bool tls)
{
	char err[300], s[ADDR_STRLEN];
	struct chat_listener *l = xcalloc(1, sizeof(*l));

	addr_format((const struct sockaddr *)&a->ss, s, sizeof(s));
	l->ch = ch;
	l->tls = tls;
	l->l = listener_new(ch->base, a, ch->accepted, link_accept, link_refused, l, err,
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

static void chat_free(struct chat *ch);

/* Takes ownership of cfg; binds the listeners and loads the accounts. NULL, logged, on
 * failure. */
static struct chat *chat_new(struct event_base *base, struct chat_config *cfg)
{
	struct chat *ch = xcalloc(1, sizeof(*ch));
	char err[512];
	time_t now = time(NULL);
	struct tm tm;

	ch->base = base;
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
		/* Clients are many and mostly idle: OpenSSL's read and write buffers (about
		 * 34 KiB a connection) go back to the heap whenever no record is in flight */
		SSL_CTX_set_mode(ch->tls, SSL_MODE_RELEASE_BUFFERS);
	}
	if (chat_load_accounts(ch) == -1)
		goto fail;
	if (chat_decoy(ch) == -1)
		goto fail;
	ch->auth = auth_new(base, login_auth_done, ch, err, sizeof(err));
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
	ch->reap_ev = event_new(base, -1, 0, link_reap_cb, ch);
	ch->resume_ev = event_new(base, -1, 0, link_resume_cb, ch);
	if (ch->reap_ev == NULL || ch->resume_ev == NULL)
		xalloc_fail("event");
	log_info("event=started accounts=%zu open_registration=%s", ch->naccounts,
		 cfg->open_registration ? "on" : "off");
	return ch;
fail:
	chat_free(ch);
	return NULL;
}

static void chat_free(struct chat *ch)
{
	if (ch == NULL)
		return;
	chat_listeners_free(ch);
	auth_free(ch->auth); /* the worker first: it may finish a job, never deliver it */
	while (ch->clients != NULL)
		link_free(ch->clients);
	link_reap(ch);
	listener_set_free(ch->accepted); /* every client gave its count back */
	loop_free_event(&ch->reap_ev);
	loop_free_event(&ch->resume_ev);
	for (size_t i = 0; i < ch->nchans; i++)
		channel_free(ch->chans[i]);
	free(ch->chans);
	if (ch->accounts != NULL)
		explicit_bzero(ch->accounts, ch->naccounts * sizeof(*ch->accounts));
	free(ch->accounts);
	buf_free(&ch->scratch);
	SSL_CTX_free(ch->tls);
	chat_config_free(ch->cfg);
	free(ch);
}

static void *chat_load(const char *file, char **msgs)
{
	return chat_config_load(file, msgs);
}

static struct daemon_conf *chat_conf(void *cfg)
{
	return &((struct chat_config *)cfg)->d;
}

static void chat_cfg_free(void *cfg)
{
	chat_config_free(cfg);
}

static void *chat_role_new(struct event_base *base, void *cfg)
{
	return chat_new(base, cfg);
}

static void chat_role_free(void *d)
{
	chat_free(d);
}

const struct daemon_role chat_role = {
	.name = "chat",
	.load = chat_load,
	.conf = chat_conf,
	.cfg_free = chat_cfg_free,
	.new = chat_role_new,
	.apply = chat_apply,
	.refresh = chat_refresh,
	.drain = chat_drain,
	.idle = chat_idle,
	.housekeeping = chat_housekeeping,
	.free = chat_role_free,
	.admin = &chat_admin_ops,
};
