/* The admin listener: a small HTTP/1.1 responder of our own on loopback by default with
 * / (an HTML status page), /healthz, /metrics (Prometheus text format) and /status (JSON).
 * The daemon supplies its views (struct admin_ops): its metric tables (core/metrics.h),
 * from which /metrics, the "metrics" of /status and the page's tiles are rendered, the
 * page's body, its own part of /status, its health, and optionally pages of its own
 * (route). This module owns the socket, the limits, and the optional bearer tokens (asked
 * of everything but /healthz; core/tokens.h), whose label reaches the daemon's pages. */
#ifndef NETWALL_ADMIN_H
#define NETWALL_ADMIN_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/tokens.h"

#define ADMIN_TOKEN_MIN 16   /* admin token bytes, at least */
#define ADMIN_TOKEN_MAX 1024 /* and at most */
#define ADMIN_MAX_TARGET 2048 /* request target bytes (path and query); more: 414 */
#define ADMIN_MAX_BODY 1024   /* a POST's body bytes (Content-Length); more: 413 */
#define ADMIN_LATER_TIMEOUT 90 /* seconds a deferred request waits for its answer (admin_defer):
				* past the store's own bounds (PostgreSQL's statement_timeout,
				* 30 s; its keepalives, about a minute) */
#define ADMIN_ROUTE_LATER 2    /* admin_ops.route's "answered later" (admin_defer) */
#define ADMIN_LATER_BYTES (16 * 1024 * 1024) /* bytes all deferred answers of the process
					      * may hold, awaited (as reserved) or being
					      * written out; past it admin_defer refuses */

struct admin_conn;

/* A request for one of the daemon's own pages; every string is valid for the call only. */
struct admin_req {
	const char *method;        /* "GET", "HEAD" or "POST" */
	const char *path;          /* the target before '?' */
	const char *query;         /* after '?', "" when none (still percent-encoded) */
	const struct token *token; /* the token that authenticated it; NULL when none asked */
	const char *host, *origin, *fetch_site, *content_type; /* headers; NULL when absent */
	const char *body;          /* a POST's body (NUL-terminated), "" when none */
	size_t body_len;
	struct admin_conn *conn;   /* the listener's, for admin_defer */
};

/* The answer to it: body (created by the listener, empty) is filled by the daemon. */
struct admin_resp {
	int code;
	const char *reason;  /* "OK" */
	const char *type;    /* the Content-Type */
	char headers[512];   /* more header lines, each ending in CRLF */
	struct evbuffer *body;
};

struct admin;

struct metrics;

struct admin_ops {
	const char *role; /* "gateway", "agent", "intake", "chat": the page's title */
	/* Registers the daemon's metric tables (core/metrics.h) into m, which lives for one
	 * request: a snapshot taken now can be registered from metrics_scratch memory. The
	 * registry renders /metrics, the "metrics" object of /status and the page's tiles. */
	void (*register_metrics)(struct metrics *m, void *arg);
	/* Appends the status page's body (inside page_begin/page_end) to out; m is the
	 * request's registry, for metrics_tiles. */
	void (*page_body)(struct evbuffer *out, const struct metrics *m, void *arg);
	/* The daemon's own part of /status (tunnels, services, ...): an object whose keys join
	 * "role" and "metrics", or NULL. */
	json_t *(*status_json)(void *arg);
	/* Returns 0 when healthy; fills why otherwise. */
	int (*health)(char *why, size_t len, void *arg);
	/* The daemon's own pages, asked (authenticated) for any path the listener does not
	 * serve itself: returns 1 with resp filled, 0 when path is none of them (404), or
	 * ADMIN_ROUTE_LATER after admin_defer. Runs on the loop thread. May be NULL: then only
	 * GET and HEAD are taken. */
	int (*route)(const struct admin_req *req, struct admin_resp *resp, void *arg);
};

/* Starts serving on a; one of tokens (copied) is then required, unless NULL. Returns NULL
 * with err filled if the address cannot be bound. */
struct admin *admin_new(struct event_base *base, const struct addr *a,
			const struct tokens *tokens,
			const struct admin_ops *ops, void *arg, char *err, size_t errlen);
void admin_free(struct admin *adm);

/* Makes *adm serve on a (or nothing when a is NULL) with tokens, keeping the running
 * listener when the address is unchanged. Returns -1, logged and with err filled, if a new
 * address cannot be bound; *adm is then NULL. */
int admin_reconfigure(struct admin **adm, struct event_base *base, const struct addr *a,
		      const struct tokens *tokens, const struct admin_ops *ops, void *arg,
		      char *err, size_t errlen);

/* A request answered later: the daemon's work for it runs elsewhere (a thread with a
 * blocking store) and its answer comes back to the loop. */
struct admin_later;

/* From route only, for req: the request is to be answered by admin_later_answer, and
 * route returns ADMIN_ROUTE_LATER. reserve is the most the answer will hold (its header
 * lines and body): it counts against ADMIN_LATER_BYTES until the answer comes, then the
 * answer's own size does, until it is written out. Returns NULL, nothing changed, when
 * that would pass ADMIN_LATER_BYTES: the route answers now (503). The connection then
 * waits up to ADMIN_LATER_TIMEOUT, reading nothing more (the end of its input, a client
 * that half-closed, is no reason to go); if it fails or times out first it is freed (on
 * the loop, as ever) and the handle merely marked, so the answer is dropped. The daemon
 * owns the handle and must pass it to admin_later_answer exactly once, even after
 * admin_free. */
struct admin_later *admin_defer(const struct admin_req *req, size_t reserve);

/* Sends resp (nothing of it is taken: the caller frees resp->body) on the request's
 * connection if it is still open, or a 503 when resp is NULL, and frees l. Loop thread. */
void admin_later_answer(struct admin_later *l, const struct admin_resp *resp);

/* Whether the Authorization header value auth carries one of tokens: "Bearer TOKEN", or
 * "Basic" with TOKEN as the password (any user name), so a browser's login prompt opens
 * the page. *by (when by is not NULL) is the token that matched, NULL when tokens is NULL
 * (nothing asked). */
bool admin_authorized(const char *auth, const struct tokens *tokens, const struct token **by);

#endif
