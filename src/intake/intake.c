/* The intake's life: start (TLS, the store check, the committer, the delivery worker,
 * the listeners), a reloaded config applied, drain, housekeeping and free, as the role
 * core/daemon.c runs (it owns the signals and the admin listener). The rooms it
 * starts: conn.c (connections), budget.c (the memory budget), pipeline.c (frame to ACK),
 * status.c (admin). */
#include "intake/intake.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/tls.h"
#include "core/xalloc.h"
#include "intake/browse_worker.h"
#include "intake/budget.h"
#include "intake/commit.h"
#include "intake/conn.h"
#include "intake/deliver.h"
#include "intake/state.h"
#include "intake/pipeline.h"
#include "intake/prune.h"
#include "intake/status.h"
#include "intake/store.h"

static void intake_listeners_free(struct intake *in)
{
	for (size_t i = 0; i < in->nls; i++)
		listener_free(in->ls[i]);
	free(in->ls);
	in->ls = NULL;
	in->nls = 0;
}

/* Applies a reloaded config, which it owns from then on: routing, limits and timeouts
 * apply at once (the runner has set the log level and moved the admin listener already);
 * listeners, TLS, store and delivery settings need a restart. Never refuses: 0. */
static int intake_apply(struct intake *in, struct intake_config *cfg)
{
	struct listener_limits lim;

	in->cfg->nrules = 0;
	free(in->cfg->rules);
	in->cfg->rules = cfg->rules;
	in->cfg->nrules = cfg->nrules;
	cfg->rules = NULL;
	in->cfg->default_action = cfg->default_action;
	in->cfg->max_connections = cfg->max_connections;
	in->cfg->max_inflight = cfg->max_inflight;
	in->cfg->idle_timeout = cfg->idle_timeout;
	in->cfg->frame_timeout = cfg->frame_timeout;
	in->cfg->write_timeout = cfg->write_timeout;
	memcpy(in->cfg->processing_ids, cfg->processing_ids, sizeof(cfg->processing_ids));
	in->cfg->nallow = cfg->nallow;
	memcpy(in->cfg->allow, cfg->allow, sizeof(cfg->allow));
	in->cfg->d.log_level = cfg->d.log_level;
	in->cfg->max_message = cfg->max_message; /* for connections accepted from now on */
	in->cfg->max_per_source = cfg->max_per_source;
	in->cfg->source_prefix_v4 = cfg->source_prefix_v4;
	in->cfg->source_prefix_v6 = cfg->source_prefix_v6;
	in->cfg->memory_budget = cfg->memory_budget;
	conn_limits(in->cfg, true, &lim);
	listener_set_limits(in->accepted, &lim);
	conn_limits(in->cfg, false, &lim);
	listener_set_limits(in->sources, &lim);
	in->cfg->reuse_reject = cfg->reuse_reject;
	in->cfg->strict = cfg->strict;
	in->cfg->browse = cfg->browse; /* its thread starts on the first page */
	in->cfg->drain_timeout = cfg->drain_timeout;
	in->cfg->retain_days = cfg->retain_days;
	in->cfg->retain_bytes = cfg->retain_bytes;
	prune_set(in->prune, cfg->retain_days, cfg->retain_bytes); /* a pass at once */
	log_info("event=reloaded file=%s rules=%zu", cfg->file, in->cfg->nrules);
	intake_config_free(cfg);
	return 0;
}

static double intake_drain(void *arg)
{
	struct intake *in = arg;

	in->draining = true;
	intake_listeners_free(in);
	log_info("event=draining connections=%llu", (unsigned long long)in->nconns);
	/* every connection answers what it has read, writes it out, and closes */
	for (struct conn *c = in->conns, *next; c != NULL; c = next) {
		next = c->next;
		conn_finish(c, "draining");
	}
	return in->cfg->drain_timeout;
}

static bool intake_idle(void *arg)
{
	struct intake *in = arg;

	return in->conns == NULL && commit_pending(in->commit) == 0;
}

static void intake_housekeeping(void *arg)
{
	struct intake *in = arg;

	for (struct conn *c = in->conns; c != NULL; c = c->next) {
		if (c->jobs == 0) {
			mllp_trim(&c->f);
			budget_account(c);
		}
	}
	loop_trim(in->nconns, &in->peak);
}

static SSL_CTX *intake_tls(const struct intake_config *cfg)
{
	char err[512];
	SSL_CTX *ctx = tls_ctx_server(cfg->cert, cfg->key, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=tls_failed error=\"%s\"", err);
		return NULL;
	}
	/* pharmacy systems lag behind: TLS 1.2 is allowed unless tls_min says 1.3 */
	SSL_CTX_set_min_proto_version(ctx, cfg->tls_min == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	if (cfg->client_certs != INTAKE_CERTS_OFF) {
		if (tls_ctx_load_ca(ctx, cfg->client_ca, err, sizeof(err)) == -1) {
			log_error("event=tls_failed error=\"%s\"", err);
			SSL_CTX_free(ctx);
			return NULL;
		}
		SSL_CTX_set_verify(ctx,
				   SSL_VERIFY_PEER | (cfg->client_certs == INTAKE_CERTS_REQUIRED
							      ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
							      : 0),
				   NULL);
	}
	return ctx;
}

static void intake_kick(void *arg)
{
	struct intake *in = arg;

	if (in->deliver != NULL)
		deliver_kick(in->deliver);
}

static int intake_listen(struct intake *in)
{
	struct listener_limits lim;
	char err[300], a[ADDR_STRLEN];

	conn_limits(in->cfg, true, &lim);
	in->accepted = listener_set_new("refused", "listener=mllp", &lim);
	conn_limits(in->cfg, false, &lim);
	in->sources = listener_set_new("refused", "listener=mllp", &lim);
	in->ls = xcalloc(in->cfg->nlisten, sizeof(*in->ls));
	for (size_t i = 0; i < in->cfg->nlisten; i++) {
		struct listener *l = listener_new(in->base, &in->cfg->listen[i], in->accepted,
						  conn_accept, conn_refused, in, err,
						  sizeof(err));
		addr_format((const struct sockaddr *)&in->cfg->listen[i].ss, a, sizeof(a));
		if (l == NULL) {
			log_error("event=listen_failed addr=%s error=\"%s\"", a, err);
			return -1;
		}
		in->ls[in->nls++] = l;
		log_info("event=listening what=mllp addr=%s tls=%s proxy=%s", a,
			 in->tls ? "on" : "off", in->cfg->proxy ? "on" : "off");
	}
	return 0;
}

/* Starts the delivery worker (cfg->url is set). Returns 0, or -1 with the reason logged. */
static int intake_deliver_start(struct intake *in)
{
	const struct intake_config *cfg = in->cfg;
	struct deliver_conf dc;
	char err[512];

	dc = (struct deliver_conf){
		.store = cfg->store,
		.url = cfg->url,
		.token_file = cfg->token_file,
		.ca_file = cfg->deliver_ca,
		.timeout = cfg->deliver_timeout,
		.connect_timeout = cfg->connect_timeout,
		.max_attempts = (unsigned)cfg->max_attempts,
		.backoff_min = cfg->backoff_min,
		.backoff_max = cfg->backoff_max,
		.concurrency = (unsigned)cfg->concurrency,
		/* the delivery worker's share of the budget: bodies in flight */
		.body_budget = (size_t)(cfg->memory_budget / 4),
		.poll = cfg->poll,
		.owner = in->owner,
	};
	in->deliver = deliver_new(&dc, err, sizeof(err));
	if (in->deliver == NULL) {
		log_error("event=deliver_failed error=\"%s\"", err);
		return -1;
	}
	return 0;
}

/* Closes every connection, stops the committer (which stores what is queued) and the
 * delivery worker, and frees the config with the rest. Accepts NULL. */
static void intake_free(struct intake *in)
{
	if (in == NULL)
		return;
	intake_listeners_free(in);
	if (in->scratch != NULL)
		evbuffer_free(in->scratch);
	while (in->conns != NULL)
		conn_close(in->conns, "shutdown");
	listener_set_free(in->accepted); /* every connection gave its count back */
	listener_set_free(in->sources);
	browse_worker_free(in->browser); /* after admin_free: its answers find no connection */
	prune_free(in->prune);
	commit_free(in->commit); /* runs the last done callbacks: their jobs are orphans now */
	loop_free_event(&in->resume_ev);
	loop_free_event(&in->stall_ev);
	if (in->deliver != NULL)
		deliver_free(in->deliver, 2.0);
	SSL_CTX_free(in->tls);
	intake_config_free(in->cfg);
	free(in);
}

/* Takes ownership of cfg. Opens the store, binds the listeners, starts the committer and
 * the delivery worker. Returns NULL, with the reason logged, on failure. */
static struct intake *intake_new(struct event_base *base, struct intake_config *cfg)
{
	struct intake *in = xcalloc(1, sizeof(*in));
	struct store *reader;
	char err[512], host[64] = "host", t[16], p[8];

	in->base = base;
	in->up = &conn_upcalls;
	in->cfg = cfg;
	pipeline_base36(t, 6, (uint64_t)time(NULL));
	pipeline_base36(p, 5, (uint64_t)getpid());
	memcpy(in->ack_prefix, t, 6);
	memcpy(in->ack_prefix + 6, p, 6);
	gethostname(host, sizeof(host) - 1);
	snprintf(in->owner, sizeof(in->owner), "%s:%d:%s", host, (int)getpid(), t);
	if (cfg->tls && (in->tls = intake_tls(cfg)) == NULL)
		goto fail;
	/* the committer opens its own connection; this one checks the store (and creates the
	 * schema) before anything is listening, then goes */
	reader = store_open(cfg->store, err, sizeof(err));
	if (reader == NULL) {
		log_error("event=store_failed store=%s error=\"%s\"",
			  strncmp(cfg->store, "postgres", 8) == 0 ? "postgresql" : cfg->store, err);
		goto fail;
	}
	in->store_kind = store_kind(reader);
	store_close(reader);
	in->commit = commit_new(base, cfg->store, intake_kick, in, err, sizeof(err));
	if (in->commit == NULL) {
		log_error("event=store_failed error=\"%s\"", err);
		goto fail;
	}
	if (cfg->url != NULL && intake_deliver_start(in) == -1)
		goto fail;
	in->prune = prune_new(cfg->store, cfg->retain_days, cfg->retain_bytes, err, sizeof(err));
	if (in->prune == NULL) {
		log_error("event=store_failed what=prune error=\"%s\"", err);
		goto fail;
	}
	in->resume_ev = event_new(base, -1, 0, budget_resume_cb, in);
	if (in->resume_ev == NULL)
		xalloc_fail("event");
	in->stall_ev = evtimer_new(base, budget_stall_cb, in);
	if (in->stall_ev == NULL)
		xalloc_fail("event");
	in->scratch = evbuffer_new();
	if (in->scratch == NULL)
		xalloc_fail("evbuffer");
	if (intake_listen(in) == -1)
		goto fail;
	log_info("event=started store=%s deliver=%s rules=%zu", in->store_kind,
		 cfg->url != NULL ? "on" : "off", cfg->nrules);
	return in;
fail:
	intake_free(in);
	return NULL;
}

/* ---- the role: daemon_run's view of the intake (void * for the config and the daemon) ---- */

static void *intake_role_load(const char *file, char **msgs)
{
	return intake_config_load(file, msgs);
}

static struct daemon_conf *intake_role_conf(void *cfg)
{
	return &((struct intake_config *)cfg)->d;
}

static void intake_role_cfg_free(void *cfg)
{
	intake_config_free(cfg);
}

static void *intake_role_new(struct event_base *base, void *cfg)
{
	return intake_new(base, cfg);
}

static int intake_role_apply(void *in, void *cfg)
{
	return intake_apply(in, cfg);
}

static void intake_role_free(void *in)
{
	intake_free(in);
}

const struct daemon_role intake_role = {
	.name = "intake",
	.load = intake_role_load,
	.conf = intake_role_conf,
	.cfg_free = intake_role_cfg_free,
	.new = intake_role_new,
	.apply = intake_role_apply,
	.drain = intake_drain,
	.idle = intake_idle,
	.housekeeping = intake_housekeeping,
	.free = intake_role_free,
	.admin = &status_admin_ops,
};
