/* The intake's message browser (intake/browse.h).
 *
 * Security: every value is HTML-escaped (browse_page.c); every answer forbids scripts,
 * frames, caching and referrers (BROWSE_HEADERS); GET never changes anything. The replay
 * is a POST that must carry the page's anti-forgery value, HMAC-SHA256 keyed with the
 * admin token that signed the page in, over the message id: a page of another site cannot
 * know it, even when the browser adds the cached Basic credentials to its forged POST.
 * Origin and Sec-Fetch-Site, when the browser sends them, must also say the same site.
 * Every page, a GET too, is refused to a page of another site (browse_not_cross_site): a
 * view is recorded under the signed-in label, and another site must not write that record.
 *
 * HEAD is refused (405): a view that shows nothing would still be one to record.
 *
 * The store: the loop thread (where the admin listener answers) checks what is asked and
 * answers what needs no store (errors, the empty form) at once; the rest is a job for the
 * browser's worker thread (intake/browse_worker.c) with its own store connection, and the
 * listener holds the request until its answer comes back (admin_defer). A store that does
 * not answer holds the browser's pages, never the senders' ACKs: docs/architecture.md. */
#include "intake/browse.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/num.h"
#include "core/page.h"
#include "core/xalloc.h"
#include "intake/browse_page.h"
#include "intake/browse_worker.h"
#include "intake/search_terms.h"
#include "intake/state.h"
#include "intake/store.h"

#define BROWSE_HEADERS                                                                     \
	"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "         \
	"form-action 'self'; frame-ancestors 'none'\r\n"                                  \
	"X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"                        \
	"X-Content-Type-Options: nosniff\r\n"

#define BROWSE_RETRY_AFTER 5 /* seconds, in the 503 of a page the busy worker cannot take */

/* The search terms a query may carry, in the form's order. */
enum browse_term {
	T_PATIENT = 0, T_NAME, T_ORDER, T_CONTROL_ID, T_SENDER, T_TYPE, T_STATE, T_DATE,
	T_SINCE, T_UNTIL, T_BEFORE, T_LIMIT, T_REASON, BROWSE_NTERMS
};

static const char *const browse_names[BROWSE_NTERMS] = {
	"patient", "name", "order", "control_id", "sender", "type", "state", "date",
	"since", "until", "before", "limit", "reason",
};

/* The form's labels, by term. */
static const char *const browse_labels[BROWSE_NTERMS] = {
	"patient ID (PID-3)", "family name (PID-5)", "order (ORC-2/3)", "control ID (MSH-10)",
	"sender (APP[/FACILITY])", "type (RDE^O11, RDE)", "state", "message date (MSH-7)",
	"received since (UTC)", "received until (UTC)", "before id", "per page", "reason",
};

/* Decoded name=value pairs of a query or a form body, each value at most BROWSE_TERM_MAX
 * bytes; an empty value is as if absent (a form sends every field). */
struct browse_terms {
	char v[BROWSE_NTERMS][BROWSE_TERM_MAX + 1];
	bool set[BROWSE_NTERMS];
};

/* A plain-text answer (an error); returns 1, the route's "answered". */
static int browse_text(struct admin_resp *resp, int code, const char *reason, const char *msg)
{
	resp->code = code;
	resp->reason = reason;
	resp->type = "text/plain; charset=utf-8";
	snprintf(resp->headers, sizeof(resp->headers), "%s", BROWSE_HEADERS);
	evbuffer_drain(resp->body, evbuffer_get_length(resp->body));
	evbuffer_add_printf(resp->body, "%s\n", msg);
	return 1;
}

static void browse_html(struct admin_resp *resp)
{
	resp->code = 200;
	resp->reason = "OK";
	resp->type = "text/html; charset=utf-8";
	snprintf(resp->headers, sizeof(resp->headers), "%s", BROWSE_HEADERS);
}

/* p[0..n) form-decoded ('+' a space, %XX a byte) into out (cap bytes with its NUL).
 * Returns the length, or -1 when malformed, holding a NUL, or longer than cap - 1. */
static int browse_decode(const char *p, size_t n, char *out, size_t cap)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		int ch = (unsigned char)p[i];

		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%') {
			int hi = i + 2 < n ? num_hexdigit(p[i + 1]) : -1;
			int lo = hi >= 0 ? num_hexdigit(p[i + 2]) : -1;

			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (ch == 0 || k + 1 >= cap)
			return -1;
		out[k++] = (char)ch;
	}
	out[k] = '\0';
	return (int)k;
}

/* Reads q ("a=1&b=2") into t by names[0..n). Returns 0, or -1 with why. */
static int browse_terms_parse(const char *q, const char *const *names, size_t n,
			      struct browse_terms *t, char *why, size_t whylen)
{
	memset(t, 0, sizeof(*t));
	while (*q != '\0') {
		const char *amp = strchr(q, '&'), *eq;
		size_t len = amp != NULL ? (size_t)(amp - q) : strlen(q), k;
		char name[32];

		eq = memchr(q, '=', len);
		if (len == 0)
			goto next;
		if (eq == NULL || browse_decode(q, (size_t)(eq - q), name, sizeof(name)) == -1)
			goto bad;
		for (k = 0; k < n && strcmp(name, names[k]) != 0; k++)
			;
		if (k == n) {
			snprintf(why, whylen, "unknown search term '%.31s'", name);
			return -1;
		}
		if (t->set[k]) {
			snprintf(why, whylen, "%s: given twice", names[k]);
			return -1;
		}
		if (browse_decode(eq + 1, len - (size_t)(eq + 1 - q), t->v[k], sizeof(t->v[k])) ==
		    -1) {
			snprintf(why, whylen, "%s: malformed, or longer than %d bytes", names[k],
				 BROWSE_TERM_MAX);
			return -1;
		}
		t->set[k] = t->v[k][0] != '\0';
		if (t->set[k] && !store_text_is_clean(t->v[k])) {
			snprintf(why, whylen, "%s: not UTF-8 text", names[k]);
			return -1;
		}
	next:
		q = amp != NULL ? amp + 1 : q + len;
	}
	return 0;
bad:
	snprintf(why, whylen, "a malformed query");
	return -1;
}

/* Sets a number term (before, limit) in [min, max]; 0 or -1 with why. */
static int browse_number(const struct browse_terms *t, enum browse_term k, uint64_t min,
			 uint64_t max, uint64_t *out, char *why, size_t whylen)
{
	if (!t->set[k])
		return 0;
	if (num_u64(t->v[k], min, max, out) == -1) {
		snprintf(why, whylen, "%s: want a number from %llu to %llu", browse_names[k],
			 (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	return 0;
}

/* The store filter t asks for, checked as netwall messages search checks its options
 * (intake/search_terms.c). app and date hold what f points to. Returns 0 or -1 with why. */
static int browse_filter(struct browse_terms *t, struct store_filter *f, char *app,
			 size_t applen, char *date, size_t datelen, char *why, size_t whylen)
{
	enum store_state st;
	uint64_t before = 0, limit = BROWSE_PAGE_DEFAULT;

	memset(f, 0, sizeof(*f));
	f->state = -1;
	f->with_keys = true;
	f->patient = t->set[T_PATIENT] ? t->v[T_PATIENT] : NULL;
	f->name = t->set[T_NAME] ? t->v[T_NAME] : NULL;
	f->order = t->set[T_ORDER] ? t->v[T_ORDER] : NULL;
	f->control_id = t->set[T_CONTROL_ID] ? t->v[T_CONTROL_ID] : NULL;
	f->type = t->set[T_TYPE] ? t->v[T_TYPE] : NULL;
	if (t->set[T_SENDER])
		search_terms_sender(f, t->v[T_SENDER], app, applen);
	if (t->set[T_STATE]) {
		if (store_state_parse(t->v[T_STATE], &st) == -1) {
			snprintf(why, whylen, "state: want received, failed, delivered, dead, "
					      "ignored or rejected");
			return -1;
		}
		f->state = (int)st;
	}
	if (t->set[T_DATE] && search_terms_date(t->v[T_DATE], date, datelen) == -1) {
		snprintf(why, whylen, "date: want a date as MSH-7 begins (2026-11-22, 2026112210)");
		return -1;
	}
	f->date = t->set[T_DATE] ? date : NULL;
	if ((t->set[T_SINCE] && search_terms_when(t->v[T_SINCE], false, &f->since_ms) == -1) ||
	    (t->set[T_UNTIL] && search_terms_when(t->v[T_UNTIL], true, &f->until_ms) == -1)) {
		snprintf(why, whylen, "since, until: want an ISO date (2026-11-22) or date and "
				      "time (2026-11-22T10:15:00Z), UTC");
		return -1;
	}
	if (browse_number(t, T_BEFORE, 1, INT64_MAX, &before, why, whylen) == -1 ||
	    browse_number(t, T_LIMIT, 1, BROWSE_PAGE_MAX, &limit, why, whylen) == -1)
		return -1;
	f->before_id = (int64_t)before;
	f->limit = (size_t)limit;
	return 0;
}

/* What the browser is asked to do on the store, checked on the loop. */
enum browse_kind { B_SEARCH = 0, B_SHOW, B_REPLAY };

/* One page for the worker (intake/browse_worker.c): what was asked, the token that signed
 * the request in (copied: a reload may free the listener's), and the answer the worker
 * makes. Lives from browse_route to its done callback on the loop. */
struct browse_req {
	struct browse_job job; /* first: the worker's view of it */
	enum browse_kind kind;
	int64_t id;
	struct token who; /* secret owned, wiped */
	struct browse_terms t;
	struct store_filter f; /* points into t, app and date */
	char app[BROWSE_TERM_MAX + 1], date[32];
	struct admin_resp resp;
	struct admin_later *later;
};

static void browse_run(struct browse_job *j, struct store *s);
static void browse_done(struct browse_job *j, bool ran);

static struct browse_req *browse_req_new(const struct admin_req *req, enum browse_kind kind,
					 int64_t id)
{
	struct browse_req *r = xcalloc(1, sizeof(*r));

	r->job.run = browse_run;
	r->job.done = browse_done;
	r->job.max_wait = ADMIN_LATER_TIMEOUT;
	r->kind = kind;
	r->id = id;
	memcpy(r->who.label, req->token->label, sizeof(r->who.label));
	r->who.secret = xmalloc(req->token->len + 1);
	memcpy(r->who.secret, req->token->secret, req->token->len);
	r->who.secret[req->token->len] = '\0';
	r->who.len = req->token->len;
	r->resp = (struct admin_resp){.code = 500, .reason = "Internal Server Error",
				      .type = "text/plain"};
	r->resp.body = evbuffer_new();
	if (r->resp.body == NULL)
		xalloc_fail("evbuffer");
	return r;
}

/* Wipes (the token, the search terms: patient identifiers) and frees. */
static void browse_req_free(struct browse_req *r)
{
	OPENSSL_cleanse(r->who.secret, r->who.len);
	free(r->who.secret);
	evbuffer_free(r->resp.body);
	OPENSSL_cleanse(r, sizeof(*r));
	free(r);
}

/* Hands r to the browser's worker (started on the first page) and has the listener wait
 * for its answer: ADMIN_ROUTE_LATER; or, when the worker cannot take it, answers now. */
static int browse_submit(struct intake *in, const struct admin_req *req,
			 struct admin_resp *resp, struct browse_req *r)
{
	char err[256];

	if (in->browser == NULL &&
	    (in->browser = browse_worker_new(in->base, in->cfg->store, err, sizeof(err))) == NULL)
		log_limited(&in->rate, LOG_WARN, "event=browse_failed what=thread error=\"%s\"",
			    err);
	/* the queue's room first: then a page the listener takes is always queued */
	if (in->browser == NULL || browse_worker_full(in->browser) ||
	    (r->later = admin_defer(req, BROWSE_ANSWER_MAX)) == NULL) {
		browse_req_free(r);
		if (in->browser != NULL)
			log_limited(&in->rate, LOG_WARN, "event=browse_busy waiting=%d",
				    BROWSE_WORKER_QUEUE);
		browse_text(resp, 503, "Service Unavailable",
			    "the message browser is busy: try again shortly");
		snprintf(resp->headers, sizeof(resp->headers), "%sRetry-After: %d\r\n",
			 BROWSE_HEADERS, BROWSE_RETRY_AFTER);
		return 1;
	}
	/* the worker never reads later: done (loop) does */
	if (browse_worker_submit(in->browser, &r->job) == -1)
		abort(); /* a broken invariant: only this thread queues, and there was room */
	return ADMIN_ROUTE_LATER;
}

/* Appends the audit record; -1 (logged) when it cannot be written: show nothing. */
static int browse_audit(struct store *s, const struct token *who, const char *action,
			const char *what, const int64_t *ids, size_t n, const char *reason)
{
	char err[512], line[LOG_VALUE_SIZE(200)];
	struct store_audit a = {.who = who->label, .via = "browser", .action = action,
				.what = what, .ids = ids, .nids = n, .reason = reason};

	if (store_audit_add(s, &a, err, sizeof(err)) == -1) {
		log_warn("event=browse_failed what=audit action=%s error=%s", action,
			 log_value(line, sizeof(line), err));
		return -1;
	}
	log_info("event=browse action=%s who=%s messages=%zu", action, who->label, n);
	return 0;
}


/* Appends v form-encoded (what is not A-Z a-z 0-9 - . _ ~ as %XX). */
static void browse_urlenc(struct evbuffer *out, const char *v)
{
	for (; *v != '\0'; v++) {
		unsigned char ch = (unsigned char)*v;

		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '.' || ch == '_' || ch == '~')
			evbuffer_add(out, v, 1);
		else
			evbuffer_add_printf(out, "%%%02X", ch);
	}
}

/* The search form, filled with t. */
static void browse_form(struct evbuffer *out, const struct browse_terms *t)
{
	evbuffer_add_printf(out, "<form class=\"search\" method=\"get\" action=\"/messages\" "
				 "id=\"search\">\n");
	for (int k = 0; k < BROWSE_NTERMS; k++) {
		if (k == T_BEFORE)
			continue; /* paging only */
		evbuffer_add_printf(out, "<label>%s<input name=\"%s\" maxlength=\"%d\" value=\"",
				    browse_labels[k], browse_names[k], BROWSE_TERM_MAX);
		if (t->set[k])
			browse_page_esc(out, t->v[k], strlen(t->v[k]));
		evbuffer_add_printf(out, "\"></label>\n");
	}
	evbuffer_add_printf(out, "<button type=\"submit\">Search</button></form>\n");
}

/* The first record of a keys column (US/RS-joined, see store_row.patients), escaped. */
static void browse_key(struct evbuffer *out, const char *keys)
{
	size_t n;

	if (keys == NULL || keys[0] == '\0') {
		evbuffer_add_printf(out, "-");
		return;
	}
	n = strcspn(keys, "\x1e\x1f");
	browse_page_esc(out, keys, n);
	if (strchr(keys, '\x1e') != NULL)
		evbuffer_add_printf(out, " &hellip;");
}

/* The results, newest first, and the link to the next (older) page when this one is full. */
static void browse_results(struct evbuffer *out, const struct browse_terms *t,
			   const struct store_filter *f, const struct store_row *rows, int n)
{
	evbuffer_add_printf(out, "<table id=\"results\"><tr><th>id</th><th>received (UTC)</th>"
				 "<th>state</th><th>type</th><th>control ID</th><th>sender</th>"
				 "<th>patient</th><th>name</th></tr>\n");
	for (int i = 0; i < n; i++) {
		const struct store_row *r = &rows[i];
		char when[32];

		page_time(when, sizeof(when), (double)r->received_ms / 1000);
		evbuffer_add_printf(out, "<tr><td><a href=\"/messages/%lld\">%lld</a></td><td>%s"
					 "</td><td>%s</td><td>",
				    (long long)r->id, (long long)r->id, when, store_state_name(r->state));
		browse_page_esc(out, r->type, strlen(r->type));
		evbuffer_add_printf(out, "</td><td>");
		browse_page_esc(out, r->control_id, strlen(r->control_id));
		evbuffer_add_printf(out, "</td><td>");
		browse_page_esc(out, r->app, strlen(r->app));
		if (r->facility[0] != '\0') {
			evbuffer_add_printf(out, "/");
			browse_page_esc(out, r->facility, strlen(r->facility));
		}
		evbuffer_add_printf(out, "</td><td>");
		browse_key(out, r->patients);
		evbuffer_add_printf(out, "</td><td>");
		browse_key(out, r->names);
		evbuffer_add_printf(out, "</td></tr>\n");
	}
	if (n == 0)
		evbuffer_add_printf(out, "<tr><td colspan=\"8\" class=\"none\">no message matches"
					 "</td></tr>\n");
	evbuffer_add_printf(out, "</table>\n");
	if (n > 0 && (size_t)n == f->limit) {
		evbuffer_add_printf(out, "<p><a id=\"older\" href=\"/messages?");
		for (int k = 0; k < BROWSE_NTERMS; k++) {
			if (!t->set[k] || k == T_BEFORE)
				continue;
			evbuffer_add_printf(out, "%s=", browse_names[k]);
			browse_urlenc(out, t->v[k]);
			evbuffer_add_printf(out, "&amp;");
		}
		evbuffer_add_printf(out, "before=%lld\">older &rarr;</a></p>\n",
				    (long long)rows[n - 1].id);
	}
}

/* The search (worker thread): the results, recorded before they are shown. */
static void browse_search_run(struct browse_req *r, struct store *s)
{
	struct browse_terms *t = &r->t;
	struct store_row *rows = NULL;
	char what[1024], err[512], line[LOG_VALUE_SIZE(200)];
	int64_t *ids;
	int n;

	n = store_list(s, &r->f, &rows, err, sizeof(err));
	if (n == -1) {
		log_warn("event=browse_failed what=search error=%s",
			 log_value(line, sizeof(line), err));
		browse_text(&r->resp, 503, "Service Unavailable", "the search failed");
		return;
	}
	ids = xcalloc((size_t)n + 1, sizeof(*ids));
	for (int i = 0; i < n; i++)
		ids[i] = rows[i].id;
	snprintf(what, sizeof(what), "search");
	search_terms_describe(&r->f, t->set[T_SENDER] ? t->v[T_SENDER] : NULL, what + 6,
			      sizeof(what) - 6);
	if (browse_audit(s, &r->who, "search", what, ids, (size_t)n,
			 t->set[T_REASON] ? t->v[T_REASON] : NULL) == -1) {
		browse_text(&r->resp, 503, "Service Unavailable",
			    "the audit record could not be written, so nothing is shown");
	} else {
		browse_html(&r->resp);
		browse_page_begin(r->resp.body, "Messages", r->who.label);
		browse_form(r->resp.body, t);
		browse_results(r->resp.body, t, &r->f, rows, n);
		browse_page_end(r->resp.body);
	}
	free(ids);
	store_rows_free(rows, (size_t)n);
}

/* GET /messages (loop thread): the terms checked as netwall messages search checks them;
 * the form alone at once, a search by the worker. */
static int browse_search(struct intake *in, const struct admin_req *req,
			 struct admin_resp *resp)
{
	struct browse_req *r;
	char why[256];
	bool asked = false;

	if (strlen(req->query) > BROWSE_QUERY_MAX)
		return browse_text(resp, 414, "URI Too Long", "the query is too long");
	r = browse_req_new(req, B_SEARCH, 0);
	if (browse_terms_parse(req->query, browse_names, BROWSE_NTERMS, &r->t, why,
			       sizeof(why)) == -1 ||
	    browse_filter(&r->t, &r->f, r->app, sizeof(r->app), r->date, sizeof(r->date), why,
			  sizeof(why)) == -1) {
		browse_req_free(r);
		return browse_text(resp, 400, "Bad Request", why);
	}
	for (int k = 0; k <= T_UNTIL; k++)
		asked |= r->t.set[k];
	if (asked)
		return browse_submit(in, req, resp, r);
	browse_html(resp);
	browse_page_begin(resp->body, "Messages", req->token->label);
	browse_form(resp->body, &r->t);
	evbuffer_add_printf(resp->body, "<p class=\"none\">Give at least one term; every "
				       "search is recorded in the audit trail.</p>\n");
	browse_page_end(resp->body);
	browse_req_free(r);
	return 1;
}

void browse_csrf(const char *secret, size_t len, long long id, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[64];
	int n = snprintf(msg, sizeof(msg), "netwall replay %lld", id);

	if (HMAC(EVP_sha256(), secret, (int)len, (const unsigned char *)msg, (size_t)n, mac,
		 &maclen) == NULL || maclen != 32)
		xalloc_fail("hmac");
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	OPENSSL_cleanse(mac, sizeof(mac));
}

/* The message of path "/ID" (rest of "/messages/ID"), and what follows its digits. */
static int64_t browse_id(const char *p, const char **tail)
{
	int64_t id = 0;
	int digits = 0;

	if (*p++ != '/')
		return 0;
	for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++)
		id = id * 10 + (*p - '0');
	*tail = p;
	return digits > 0 && !(*p >= '0' && *p <= '9') ? id : 0;
}

/* Reads message id into row (1), or answers 404/503 in r (-1). Worker thread. */
static int browse_get(struct browse_req *r, struct store *s, struct store_row *row)
{
	char err[512], line[LOG_VALUE_SIZE(200)];
	int rc = store_get(s, r->id, row, err, sizeof(err));

	if (rc == 0)
		browse_text(&r->resp, 404, "Not Found", "no message with that id");
	if (rc == -1) {
		log_warn("event=browse_failed what=show error=%s", log_value(line, sizeof(line), err));
		browse_text(&r->resp, 503, "Service Unavailable", "the store failed");
	}
	return rc == 1 ? 1 : -1;
}

static bool browse_replayable(enum store_state st)
{
	return st == STORE_DEAD || st == STORE_FAILED;
}

/* GET /messages/ID (worker thread): the message, recorded before it is shown. */
static void browse_show_run(struct browse_req *r, struct store *s)
{
	struct store_row row;
	char what[64], csrf[65] = "", title[64];

	if (browse_get(r, s, &row) == -1)
		return;
	snprintf(what, sizeof(what), "show %lld", (long long)r->id);
	if (browse_audit(s, &r->who, "show", what, &row.id, 1, NULL) == -1) {
		store_row_clear(&row);
		browse_text(&r->resp, 503, "Service Unavailable",
			    "the audit record could not be written, so nothing is shown");
		return;
	}
	if (browse_replayable(row.state))
		browse_csrf(r->who.secret, r->who.len, (long long)r->id, csrf);
	snprintf(title, sizeof(title), "Message %lld", (long long)r->id);
	browse_html(&r->resp);
	browse_page_begin(r->resp.body, title, r->who.label);
	browse_page_message(r->resp.body, &row, browse_replayable(row.state) ? csrf : NULL,
			    BROWSE_ANSWER_MAX - 1024); /* the header lines and the end */
	browse_page_end(r->resp.body);
	store_row_clear(&row);
	OPENSSL_cleanse(csrf, sizeof(csrf));
}

/* Whether origin (an Origin header) is this listener's: the scheme, http or https (behind
 * a proxy that ends TLS), then exactly host (the Host header). */
static bool browse_origin_ok(const char *origin, const char *host)
{
	if (host == NULL)
		return false;
	if (strncmp(origin, "https://", 8) == 0)
		origin += 8;
	else if (strncmp(origin, "http://", 7) == 0)
		origin += 7;
	else
		return false;
	return strcmp(origin, host) == 0;
}

/* Whether the browser, when it says, says the request is not another site's: every
 * /messages page is refused to a page of another site, even a GET, which records a view
 * under the signed-in label (an <img> of another site carries the browser's saved Basic
 * credentials). Sec-Fetch-Site same-origin or none (typed, a bookmark), and an Origin
 * naming this listener; a client that sends neither (curl, a script) is taken. */
static bool browse_not_cross_site(const struct admin_req *req)
{
	if (req->fetch_site != NULL && strcmp(req->fetch_site, "same-origin") != 0 &&
	    strcmp(req->fetch_site, "none") != 0)
		return false;
	return req->origin == NULL || browse_origin_ok(req->origin, req->host);
}

/* Whether a POST comes from a page of this listener: Sec-Fetch-Site (when sent) says
 * same-origin, Origin (when sent) is this host, and the form carries the anti-forgery
 * value of this message for the token that signed it in. The value is the defence; the
 * headers, which browsers send and forgers' pages cannot set, are a second one. */
static bool browse_same_site(const struct admin_req *req, int64_t id)
{
	static const char *const names[] = {"csrf"};
	struct browse_terms t;
	char why[128], want[65];
	bool ok;

	if (req->fetch_site != NULL && strcmp(req->fetch_site, "same-origin") != 0)
		return false;
	if (!browse_not_cross_site(req))
		return false;
	if (browse_terms_parse(req->body, names, 1, &t, why, sizeof(why)) == -1 || !t.set[0] ||
	    strlen(t.v[0]) != 64)
		return false;
	browse_csrf(req->token->secret, req->token->len, (long long)id, want);
	ok = CRYPTO_memcmp(t.v[0], want, 64) == 0;
	OPENSSL_cleanse(want, sizeof(want));
	return ok;
}

/* POST /messages/ID/replay (worker thread, the form checked on the loop): a dead or failed
 * message back in the delivery queue, recorded first; then back to its page (303). */
static void browse_replay_run(struct browse_req *r, struct store *s)
{
	struct store_row row;
	enum store_state st;
	char what[64], err[512], line[LOG_VALUE_SIZE(200)];

	if (browse_get(r, s, &row) == -1)
		return;
	st = row.state;
	store_row_clear(&row);
	if (!browse_replayable(st)) {
		browse_text(&r->resp, 409, "Conflict", "only a dead or failed message can be replayed");
		return;
	}
	snprintf(what, sizeof(what), "replay %lld", (long long)r->id);
	if (browse_audit(s, &r->who, "replay", what, &r->id, 1, NULL) == -1) {
		browse_text(&r->resp, 503, "Service Unavailable",
			    "the audit record could not be written, so nothing was replayed");
		return;
	}
	if (store_replay(s, r->id, st, err, sizeof(err)) == -1) {
		log_warn("event=browse_failed what=replay error=%s",
			 log_value(line, sizeof(line), err));
		browse_text(&r->resp, 503, "Service Unavailable", "the replay failed");
		return;
	}
	browse_text(&r->resp, 303, "See Other", "replayed");
	snprintf(r->resp.headers, sizeof(r->resp.headers), "%sLocation: /messages/%lld\r\n",
		 BROWSE_HEADERS, (long long)r->id);
}

/* The worker's part of a page (browse_job.run). */
static void browse_run(struct browse_job *j, struct store *s)
{
	struct browse_req *r = (struct browse_req *)j;

	if (s == NULL)
		browse_text(&r->resp, 503, "Service Unavailable", "the store is unavailable");
	else if (r->kind == B_SEARCH)
		browse_search_run(r, s);
	else if (r->kind == B_SHOW)
		browse_show_run(r, s);
	else
		browse_replay_run(r, s);
}

/* Back on the loop (browse_job.done): the answer to its connection, if still open. */
static void browse_done(struct browse_job *j, bool ran)
{
	struct browse_req *r = (struct browse_req *)j;

	if (!ran)
		browse_text(&r->resp, 503, "Service Unavailable",
			    "the message browser did not get to it: try again");
	admin_later_answer(r->later, &r->resp);
	browse_req_free(r);
}

/* A 405 naming what the path takes. */
static int browse_method(struct admin_resp *resp, const char *allow)
{
	browse_text(resp, 405, "Method Not Allowed", "method not allowed here");
	snprintf(resp->headers, sizeof(resp->headers), "%sAllow: %s\r\n", BROWSE_HEADERS, allow);
	return 1;
}

int browse_route(const struct admin_req *req, struct admin_resp *resp, void *arg)
{
	struct intake *in = arg;
	const char *rest = req->path + 9, *tail = "";
	bool post = strcmp(req->method, "POST") == 0;
	int64_t id = 0;

	if (!in->cfg->browse || strncmp(req->path, "/messages", 9) != 0)
		return 0;
	if (*rest != '\0' && (id = browse_id(rest, &tail)) == 0)
		return 0;
	if (*tail != '\0' && strcmp(tail, "/replay") != 0)
		return 0;
	if (req->token == NULL) /* the configuration asks for a token file; never served open */
		return browse_text(resp, 403, "Forbidden", "browse needs admin_token_file");
	if (!browse_not_cross_site(req)) /* before anything is read or recorded */
		return browse_text(resp, 403, "Forbidden", "refused: asked by a page of another "
				   "site");
	if (strcmp(tail, "/replay") == 0) {
		if (!post)
			return browse_method(resp, "POST");
		if (!browse_same_site(req, id))
			return browse_text(resp, 403, "Forbidden", "refused: not sent by this "
				"message's page (anti-forgery check)");
		return browse_submit(in, req, resp, browse_req_new(req, B_REPLAY, id));
	}
	/* HEAD would be a view that shows nothing: refused before the store, never recorded */
	if (strcmp(req->method, "GET") != 0)
		return browse_method(resp, "GET");
	if (id == 0)
		return browse_search(in, req, resp);
	return browse_submit(in, req, resp, browse_req_new(req, B_SHOW, id));
}
