/* The delivery worker (contract in deliver.h).
 *
 * One thread owns everything here except the counters and two flags: its store connection,
 * a libcurl multi handle and the transfers in it. Each turn it
 *   1. claims due jobs when transfer slots are free and a scan is due (after a kick, after
 *      a claim that filled every slot, or every `poll` seconds when the queue was empty);
 *   2. turns each job into a transfer: parse the stored message, build its JSON, POST it;
 *   3. lets libcurl progress and collects finished transfers as outcomes;
 *   4. records outcomes in one store transaction per batch: DELIVER_BATCH outcomes, or the
 *      oldest waited DELIVER_BATCH_WAIT, or nothing else is in flight;
 *   5. sleeps in curl_multi_poll until a socket, a libcurl timer, the next scan, the batch
 *      deadline, or curl_multi_wakeup (deliver_kick, deliver_free).
 * Leases cover the transfer timeout plus DELIVER_LEASE_MARGIN, so a job is never posted by
 * two workers at once, and one that a crashed worker held is claimed again once its lease
 * expires. The EMAR sees each message at least once; the Idempotency-Key header lets it
 * drop a repeat.
 *
 * Memory per transfer is bounded: the request body (the message's JSON), DELIVER_RESP_MAX
 * bytes of response, fixed headers; and the bodies in flight together by body_budget: a
 * transfer starts only while the bodies already in flight are under it (one always may),
 * so eight transfers of wide messages cannot hold eight bodies of several MiB each.
 * Bodies hold patient data and are wiped before free. */
#include <stddef.h> /* deliver.h uses size_t without including it */

#include "intake/deliver.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "core/secret.h"
#include "hl7/hl7.h"
#include "hl7/hl7json.h"
#include "intake/store.h"

#define DELIVER_LEASE_MARGIN 15.0   /* seconds of lease beyond the transfer timeout */
#define DELIVER_PREFETCH 2          /* jobs claimed ahead, in rounds of `concurrency`: one
				     * claim (one transaction) feeds several rounds */
#define DELIVER_BATCH 64            /* outcomes recorded in one transaction at most */
#define DELIVER_BATCH_WAIT 0.005    /* seconds an outcome waits for others to share a commit */
#define DELIVER_PENDING_MAX 1024    /* outcomes kept while the store is failing */
#define DELIVER_STORE_RETRY 1.0     /* seconds before using the store again after an error */
#define DELIVER_RESP_MAX 200        /* response bytes kept, for the dead-letter detail */
#define DELIVER_CONCURRENCY_MAX 256 /* transfers in flight, whatever the config says */
#define DELIVER_TOKEN_MAX 4096      /* bytes of bearer token file */
#define DELIVER_KEY_MAX 720 /* Idempotency-Key header: 3 x 63 bytes percent-encoded, "|" and
			     * the 64 hex digits of the digest */

/* One POST in flight. */
struct xfer {
	struct deliver *d;
	CURL *easy;
	int64_t id;
	unsigned attempts;      /* made before this one */
	char control_id[LOG_VALUE_SIZE(63)]; /* log_value()'d, for the log */
	char type[LOG_VALUE_SIZE(31)];       /* log_value()'d, for the log */
	char *body;             /* the JSON; patient data */
	size_t body_len;
	char resp[DELIVER_RESP_MAX];
	size_t resp_len;
	char errbuf[CURL_ERROR_SIZE];
	char key[DELIVER_KEY_MAX];
	char msgid[48];
	struct curl_slist hdr[5]; /* ours, not curl_slist_append's: libcurl only reads them */
};

/* An outcome waiting for its batch. */
struct pending {
	struct store_outcome o;
	char detail[DELIVER_RESP_MAX + 32];
};

struct deliver {
	char *url, *ca_file, *owner;
	char *auth; /* "Authorization: Bearer <token>", or NULL; wiped on free */
	size_t auth_len;
	double timeout, connect_timeout, backoff_min, backoff_max, poll;
	unsigned max_attempts, concurrency;
	size_t body_budget; /* 0: unbounded */
	size_t body_bytes;  /* request bodies of the transfers in flight */
	bool budget_full;   /* body_bytes at body_budget when last looked */

	struct store *store;
	CURLM *multi;
	pthread_t thread;
	bool started;
	double grace; /* written before stop is set */
	atomic_bool stop;
	atomic_bool kicked;
	_Atomic uint64_t n_attempts, n_delivered, n_failures, n_dead, n_in_flight, n_body_bytes;

	/* worker thread only */
	struct hl7_msg msg;
	struct xfer **xfers;
	unsigned nxfers;
	struct pending *pend;
	size_t npend;
	struct store_job *ready; /* claimed, not started yet: ready[ready_off .. nready) */
	size_t nready, ready_off;
	double pend_since, store_ok_at, next_scan;
	uint64_t rng;
	struct log_rate retry_rate, store_rate;
};

/* xorshift64*: jitter only, nothing secret. */
static double deliver_rand01(struct deliver *d)
{
	d->rng ^= d->rng >> 12;
	d->rng ^= d->rng << 25;
	d->rng ^= d->rng >> 27;
	return (double)((d->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

/* Copies s into out as printable ASCII ('?' for anything else), NUL-terminated. */
static void deliver_printable(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i < n && i + 1 < outlen; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

/* Appends s to out at *o, percent-encoding '%', '|', space and every byte outside
 * printable ASCII, so the three parts of the key stay apart and the header stays one line. */
static void deliver_key_part(const char *s, char *out, size_t outlen, size_t *o)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c > 0x20 && c < 0x7f && c != '%' && c != '|') {
			if (*o + 1 < outlen)
				out[(*o)++] = (char)c;
		} else if (*o + 3 < outlen) {
			out[(*o)++] = '%';
			out[(*o)++] = hex[c >> 4];
			out[(*o)++] = hex[c & 15];
		}
	}
	out[*o] = '\0';
}

/* Reads the bearer token (secret.h) into d->auth. The token never reaches the log or err. */
static int deliver_read_token(struct deliver *d, const char *path, char *err, size_t errlen)
{
	static const char prefix[] = "Authorization: Bearer ";
	char why[PATH_MAX + 128];
	char *tok = secret_read_token(path, 1, DELIVER_TOKEN_MAX, why, sizeof(why));
	size_t n;

	if (tok == NULL) {
		snprintf(err, errlen, "token_file: %s", why);
		return -1;
	}
	n = strlen(tok);
	d->auth_len = sizeof(prefix) - 1 + n;
	d->auth = xcalloc(1, d->auth_len + 1);
	memcpy(d->auth, prefix, sizeof(prefix) - 1);
	memcpy(d->auth + sizeof(prefix) - 1, tok, n);
	secret_free(tok);
	return 0;
}

static int deliver_check_url(const char *url, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if (u == NULL)
		xalloc_fail("curl url");
	if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK) {
		snprintf(err, errlen, "url: not a valid URL");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		snprintf(err, errlen, "url: must be http:// or https://");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		snprintf(err, errlen, "url: no host");
		goto out;
	}
	rc = 0;
out:
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return rc;
}

static size_t deliver_on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb, room = sizeof(x->resp) - x->resp_len;

	/* keep the head, drop the rest: the transfer timeout bounds the time spent */
	if (room > 0) {
		size_t k = n < room ? n : room;

		memcpy(x->resp + x->resp_len, p, k);
		x->resp_len += k;
	}
	return n;
}

static void deliver_xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	if (x->body != NULL)
		hl7json_free(x->body, x->body_len);
	explicit_bzero(x->resp, sizeof(x->resp));
	free(x);
}

/* Queues an outcome for the next batch. detail may be NULL. */
static void deliver_record(struct deliver *d, int64_t id, enum store_state state,
			   double retry_in, int http_status, const char *detail)
{
	struct pending *p;
	int64_t now = clock_wall_ms();

	if (d->npend == DELIVER_PENDING_MAX) {
		/* the store has been failing for a while: the lease expires and the job is
		 * delivered again */
		log_limited(&d->store_rate, LOG_ERROR, "event=delivery_outcome_dropped id=%" PRId64
			    " reason=store_backlog", id);
		return;
	}
	if (d->npend == 0)
		d->pend_since = clock_mono();
	p = &d->pend[d->npend++];
	memset(p, 0, sizeof(*p));
	p->o.id = id;
	p->o.state = state;
	p->o.at_ms = now;
	p->o.next_ms = now + (int64_t)(retry_in * 1000);
	p->o.http_status = http_status;
	snprintf(p->detail, sizeof(p->detail), "%s", detail != NULL ? detail : "");
}

/* Records the pending outcomes, DELIVER_BATCH per transaction. Keeps them on failure. */
static void deliver_flush(struct deliver *d)
{
	char err[256];
	size_t done = 0;

	while (done < d->npend) {
		size_t n = d->npend - done;
		struct store_outcome o[DELIVER_BATCH];

		if (n > DELIVER_BATCH)
			n = DELIVER_BATCH;
		for (size_t i = 0; i < n; i++) {
			o[i] = d->pend[done + i].o;
			o[i].detail = d->pend[done + i].detail;
		}
		if (store_finish(d->store, d->owner, o, n, err, sizeof(err)) == -1) {
			log_limited(&d->store_rate, LOG_ERROR,
				    "event=delivery_store_failed op=finish n=%zu error=\"%s\"", n, err);
			d->store_ok_at = clock_mono() + DELIVER_STORE_RETRY;
			break;
		}
		done += n;
	}
	if (done > 0) {
		memmove(d->pend, d->pend + done, (d->npend - done) * sizeof(*d->pend));
		d->npend -= done;
		d->pend_since = clock_mono();
	}
}

static void deliver_log_dead(struct deliver *d, int64_t id, const char *control_id,
			     const char *type, int status, unsigned attempts, const char *reason)
{
	log_warn("event=delivery_dead id=%" PRId64 " control_id=%s type=%s status=%d "
		 "attempts=%u reason=%s",
		 id, control_id, type, status, attempts, reason);
}

/* True for an answer that says the message itself is wrong: 4xx, except 408 Request
 * Timeout, 425 Too Early and 429 Too Many Requests, which say "not now" and are retried. */
static bool deliver_rejected(long status)
{
	return status >= 400 && status < 500 && status != 408 && status != 425 && status != 429;
}

/* Decides what a finished transfer means: 2xx delivered; a rejection (see above) dead at
 * once; anything else (5xx, 3xx, timeouts, network errors) retried after a backoff, or
 * dead once this was attempt max_attempts. */
static void deliver_done(struct deliver *d, struct xfer *x, CURLcode rc)
{
	long status = 0;
	unsigned attempt = x->attempts + 1;
	char detail[DELIVER_RESP_MAX + 32];
	struct backoff b;
	double delay;

	atomic_fetch_add(&d->n_attempts, 1);
	if (rc == CURLE_OK)
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc == CURLE_OK && status >= 200 && status < 300) {
		atomic_fetch_add(&d->n_delivered, 1);
		deliver_record(d, x->id, STORE_DELIVERED, 0, (int)status, NULL);
		log_debug("event=delivered id=%" PRId64 " control_id=%s type=%s status=%ld",
			  x->id, x->control_id, x->type, status);
		return;
	}
	atomic_fetch_add(&d->n_failures, 1);
	if (rc != CURLE_OK) {
		const char *e = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);

		deliver_printable(e, strlen(e), detail, sizeof(detail));
	} else if (x->resp_len > 0)
		deliver_printable(x->resp, x->resp_len, detail, sizeof(detail));
	else
		snprintf(detail, sizeof(detail), "HTTP %ld", status);
	if (rc == CURLE_OK && deliver_rejected(status)) {
		atomic_fetch_add(&d->n_dead, 1);
		deliver_record(d, x->id, STORE_DEAD, 0, (int)status, detail);
		deliver_log_dead(d, x->id, x->control_id, x->type, (int)status, attempt, "rejected");
		goto out;
	}
	if (attempt >= d->max_attempts) {
		atomic_fetch_add(&d->n_dead, 1);
		deliver_record(d, x->id, STORE_DEAD, 0, (int)status, detail);
		deliver_log_dead(d, x->id, x->control_id, x->type, (int)status, attempt,
				 "attempts_exhausted");
		goto out;
	}
	b = (struct backoff){ .initial = d->backoff_min, .max = d->backoff_max, .attempt = x->attempts };
	delay = backoff_next(&b, deliver_rand01(d));
	deliver_record(d, x->id, STORE_FAILED, delay, (int)status, detail);
	if (rc != CURLE_OK)
		log_limited(&d->retry_rate, LOG_INFO,
			    "event=delivery_retry id=%" PRId64 " control_id=%s type=%s attempts=%u "
			    "in=%.1fs error=\"%s\"",
			    x->id, x->control_id, x->type, attempt, delay, detail);
	else
		log_limited(&d->retry_rate, LOG_INFO,
			    "event=delivery_retry id=%" PRId64 " control_id=%s type=%s attempts=%u "
			    "in=%.1fs status=%ld",
			    x->id, x->control_id, x->type, attempt, delay, status);
out:
	explicit_bzero(detail, sizeof(detail));
}

/* x's request headers: the idempotency key (the message's key and its digest: the same
 * message sent again has the same key; another under its control ID, a sender's reset
 * counter, another, even once the first was pruned and nothing stored says the ID was
 * used), the message id, the bearer token. */
static void deliver_headers(struct deliver *d, struct xfer *x, const struct store_job *job)
{
	size_t o = 0;
	char *p;

	p = x->key;
	o = (size_t)snprintf(p, sizeof(x->key), "Idempotency-Key: ");
	deliver_key_part(job->app, p, sizeof(x->key), &o);
	if (o + 1 < sizeof(x->key))
		p[o++] = '|';
	deliver_key_part(job->facility, p, sizeof(x->key), &o);
	if (o + 1 < sizeof(x->key))
		p[o++] = '|';
	deliver_key_part(job->control_id, p, sizeof(x->key), &o);
	if (o + 1 < sizeof(x->key))
		p[o++] = '|';
	for (size_t i = 0; i < STORE_DIGEST_LEN && o + 2 < sizeof(x->key); i++) {
		static const char hex[] = "0123456789abcdef";

		p[o++] = hex[job->digest[i] >> 4];
		p[o++] = hex[job->digest[i] & 15];
	}
	p[o] = '\0';
	snprintf(x->msgid, sizeof(x->msgid), "X-Netwall-Message-Id: %" PRId64, job->id);
	x->hdr[0].data = (char *)"Content-Type: application/json";
	x->hdr[1].data = (char *)"Expect:";
	x->hdr[2].data = x->key;
	x->hdr[3].data = x->msgid;
	x->hdr[4].data = d->auth;
	for (int i = 0; i < 4; i++)
		x->hdr[i].next = (i == 3 && d->auth == NULL) ? NULL : &x->hdr[i + 1];
	x->hdr[4].next = NULL;
}

/* Turns a claimed job into a transfer in the multi handle, or records it dead when the
 * stored message no longer parses. */
static void deliver_start(struct deliver *d, const struct store_job *job)
{
	struct hl7_error perr;
	struct xfer *x;

	x = xcalloc(1, sizeof(*x));
	x->d = d;
	x->id = job->id;
	x->attempts = job->attempts;
	/* peer values: escaped once here, so every log line below carries them safely */
	log_value(x->control_id, sizeof(x->control_id), job->control_id);
	log_value(x->type, sizeof(x->type), job->type);
	if (hl7_parse(&d->msg, job->raw, job->raw_len, &perr) == -1 ||
	    (x->body = hl7json_message(&d->msg, job->id, &x->body_len)) == NULL) {
		atomic_fetch_add(&d->n_dead, 1);
		deliver_record(d, job->id, STORE_DEAD, 0, 0, "unparsable");
		deliver_log_dead(d, job->id, x->control_id, x->type, 0, job->attempts + 1,
				 "unparsable");
		deliver_xfer_free(x);
		return;
	}

	deliver_headers(d, x, job);

	x->easy = curl_easy_init();
	if (x->easy == NULL)
		xalloc_fail("curl handle");
	curl_easy_setopt(x->easy, CURLOPT_URL, d->url);
	curl_easy_setopt(x->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, x->body);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, &x->hdr[0]);
	curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "netwall");
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, deliver_on_body);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)(d->timeout * 1000));
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(d->connect_timeout * 1000));
	curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	if (d->ca_file != NULL)
		curl_easy_setopt(x->easy, CURLOPT_CAINFO, d->ca_file);
	if (curl_multi_add_handle(d->multi, x->easy) != CURLM_OK)
		log_fatal("event=delivery_curl_failed op=add_handle");
	d->xfers[d->nxfers++] = x;
	d->body_bytes += x->body_len;
	atomic_store(&d->n_in_flight, d->nxfers);
	atomic_store(&d->n_body_bytes, d->body_bytes);
}

/* Whether another transfer may start: a free slot, and the bodies in flight under their
 * budget (or nothing in flight). */
static bool deliver_room(const struct deliver *d)
{
	return d->nxfers < d->concurrency &&
	       (d->nxfers == 0 || d->body_budget == 0 || d->body_bytes < d->body_budget);
}

/* Starts claimed jobs while there is room. */
static void deliver_fill(struct deliver *d)
{
	while (deliver_room(d) && d->ready_off < d->nready)
		deliver_start(d, &d->ready[d->ready_off++]);
	if (d->ready != NULL && d->ready_off == d->nready) {
		store_jobs_free(d->ready, d->nready);
		d->ready = NULL;
		d->nready = d->ready_off = 0;
	}
}

/* Claims due jobs, DELIVER_PREFETCH rounds of them, so claims (each a transaction) come
 * one per several rounds of transfers; the lease covers the rounds a job may wait here. */
static void deliver_claim(struct deliver *d, double now)
{
	struct store_job *jobs = NULL;
	size_t want = (size_t)d->concurrency * (DELIVER_PREFETCH + 1) - d->nxfers;
	double lease = (d->timeout + d->connect_timeout) * (DELIVER_PREFETCH + 1) +
		       DELIVER_LEASE_MARGIN;
	char err[256];
	int n;

	n = store_claim(d->store, d->owner, clock_wall_ms(), (int64_t)(lease * 1000), want,
			&jobs, err, sizeof(err));
	if (n == -1) {
		log_limited(&d->store_rate, LOG_ERROR, "event=delivery_store_failed op=claim error=\"%s\"",
			    err);
		d->next_scan = now + DELIVER_STORE_RETRY;
		return;
	}
	log_debug("event=delivery_claimed jobs=%d want=%zu in_flight=%u", n, want, d->nxfers);
	d->ready = jobs;
	d->nready = (size_t)n;
	d->ready_off = 0;
	deliver_fill(d);
	/* a full claim means more may be waiting: scan again as soon as slots free up */
	d->next_scan = (size_t)n == want ? now : now + d->poll;
}

/* Collects finished transfers. */
static void deliver_reap(struct deliver *d)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		struct xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		deliver_done(d, x, m->data.result);
		curl_multi_remove_handle(d->multi, x->easy);
		for (unsigned i = 0; i < d->nxfers; i++) {
			if (d->xfers[i] == x) {
				d->xfers[i] = d->xfers[--d->nxfers];
				break;
			}
		}
		d->body_bytes -= x->body_len;
		atomic_store(&d->n_in_flight, d->nxfers);
		atomic_store(&d->n_body_bytes, d->body_bytes);
		deliver_xfer_free(x);
	}
}

static long deliver_ms_until(double t, double now)
{
	double ms = (t - now) * 1000;

	if (ms <= 0)
		return 0;
	if (ms > 60000)
		return 60000;
	return (long)ms + 1;
}

/* True when enough slots are free to claim: a quarter of them, so claims come in batches,
 * or any when nothing is in flight. */
static bool deliver_slots(const struct deliver *d)
{
	unsigned min_free = d->nxfers == 0 ? 1 : (d->concurrency + 3) / 4;

	return d->ready == NULL && d->concurrency - d->nxfers >= min_free && deliver_room(d);
}

/* Logs (debug) when the bodies in flight reach their budget, once until they fall under. */
static void deliver_note_budget(struct deliver *d)
{
	bool full = d->nxfers > 0 && d->body_budget != 0 && d->body_bytes >= d->body_budget;

	if (full && !d->budget_full)
		log_debug("event=delivery_waiting reason=body_budget in_flight=%u body_bytes=%zu",
			  d->nxfers, d->body_bytes);
	d->budget_full = full;
}

/* How long the worker may sleep on its sockets: until curl's next timeout, the next
 * claim, the pending outcomes' flush or the end of the grace, a second at most. */
static long deliver_wait_ms(const struct deliver *d, double now, bool stopping, double deadline)
{
	long wait, ct = -1;

	wait = 1000;
	if (curl_multi_timeout(d->multi, &ct) == CURLM_OK && ct >= 0 && ct < wait)
		wait = ct;
	if (!stopping && deliver_slots(d)) {
		double at = d->next_scan > d->store_ok_at ? d->next_scan : d->store_ok_at;
		long w = deliver_ms_until(at, now);

		if (w < wait)
			wait = w;
	}
	if (d->npend > 0) {
		double at = d->pend_since + DELIVER_BATCH_WAIT;
		long w;

		if (at < d->store_ok_at)
			at = d->store_ok_at;
		w = deliver_ms_until(at, now);
		if (w < wait)
			wait = w;
	}
	if (stopping) {
		long w = deliver_ms_until(deadline, now);

		if (w < wait)
			wait = w;
	}
	return wait;
}

/* The worker stops: transfers still running are dropped (their leases expire), jobs
 * claimed and never started are given back, pending outcomes are written. */
static void deliver_wind_down(struct deliver *d)
{
	/* what did not finish within the grace keeps its lease, which expires */
	for (unsigned i = 0; i < d->nxfers; i++) {
		curl_multi_remove_handle(d->multi, d->xfers[i]->easy);
		deliver_xfer_free(d->xfers[i]);
	}
	d->nxfers = 0;
	d->body_bytes = 0;
	atomic_store(&d->n_in_flight, 0);
	atomic_store(&d->n_body_bytes, 0);
	/* claimed but never started: their leases are given back, so another worker (or
	 * this intake restarted) takes them at once; if that fails, the leases expire */
	if (d->ready != NULL) {
		size_t left = d->nready - d->ready_off;
		int64_t *ids = xcalloc(left ? left : 1, sizeof(*ids));
		char err[256];
		for (size_t i = 0; i < left; i++)
			ids[i] = d->ready[d->ready_off + i].id;
		if (store_release(d->store, d->owner, ids, left, err, sizeof(err)) == -1)
			log_warn("event=delivery_store_failed op=release error=\"%s\"", err);
		free(ids);
		store_jobs_free(d->ready, d->nready);
	}
	d->ready = NULL;
	if (d->npend > 0) {
		d->store_ok_at = 0;
		deliver_flush(d);
	}
}

static void *deliver_main(void *arg)
{
	struct deliver *d = arg;
	double deadline = 0;
	int running;

	for (;;) {
		double now = clock_mono();
		bool stopping = atomic_load(&d->stop);
		long wait;

		if (stopping && deadline == 0)
			deadline = now + d->grace;
		if (atomic_exchange(&d->kicked, false))
			d->next_scan = now;
		deliver_note_budget(d);
		if (!stopping && deliver_slots(d) && now >= d->next_scan && now >= d->store_ok_at)
			deliver_claim(d, now);
		curl_multi_perform(d->multi, &running);
		deliver_reap(d);
		/* start claimed jobs in the slots that freed; a fast API can answer them within
		 * the same perform, so reap again before sleeping on sockets that are idle */
		while (!stopping && d->ready != NULL && deliver_room(d)) {
			deliver_fill(d);
			curl_multi_perform(d->multi, &running);
			deliver_reap(d);
		}

		now = clock_mono();
		if (d->npend > 0 && now >= d->store_ok_at &&
		    (d->npend >= DELIVER_BATCH || now - d->pend_since >= DELIVER_BATCH_WAIT ||
		     d->nxfers == 0 || stopping))
			deliver_flush(d);
		if (stopping && (d->nxfers == 0 || now >= deadline))
			break;

		wait = deliver_wait_ms(d, now, stopping, deadline);
		curl_multi_poll(d->multi, NULL, 0, (int)wait, NULL);
	}

	deliver_wind_down(d);
	return NULL;
}

static pthread_once_t deliver_curl_once = PTHREAD_ONCE_INIT;

static void deliver_curl_init(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		log_fatal("curl_global_init failed");
}

static void deliver_destroy(struct deliver *d)
{
	if (d->multi != NULL)
		curl_multi_cleanup(d->multi);
	store_close(d->store);
	hl7_msg_free(&d->msg);
	if (d->auth != NULL)
		explicit_bzero(d->auth, d->auth_len);
	free(d->auth);
	free(d->url);
	free(d->ca_file);
	free(d->owner);
	free(d->xfers);
	if (d->pend != NULL)
		explicit_bzero(d->pend, DELIVER_PENDING_MAX * sizeof(*d->pend));
	free(d->pend);
	free(d);
}

struct deliver *deliver_new(const struct deliver_conf *c, char *err, size_t errlen)
{
	struct deliver *d;
	sigset_t all, old;
	char serr[256];
	int rc;

	pthread_once(&deliver_curl_once, deliver_curl_init);
	hl7json_init();
	if (c->store == NULL) {
		snprintf(err, errlen, "store: not set");
		return NULL;
	}
	if (deliver_check_url(c->url, err, errlen) == -1)
		return NULL;
	if (!(c->timeout > 0) || !(c->connect_timeout > 0) || !(c->backoff_min > 0) ||
	    c->backoff_max < c->backoff_min || !(c->poll > 0)) {
		snprintf(err, errlen, "timeouts, backoff and poll must be positive, "
				      "backoff_max >= backoff_min");
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	d->url = xstrdup(c->url);
	d->ca_file = xstrdup(c->ca_file);
	if (c->owner != NULL) {
		d->owner = xstrdup(c->owner);
	} else {
		char host[128] = "localhost", own[256];

		gethostname(host, sizeof(host) - 1);
		snprintf(own, sizeof(own), "%s:%d:%p", host, (int)getpid(), (void *)d);
		d->owner = xstrdup(own);
	}
	d->timeout = c->timeout;
	d->connect_timeout = c->connect_timeout;
	d->backoff_min = c->backoff_min;
	d->backoff_max = c->backoff_max;
	d->poll = c->poll;
	d->max_attempts = c->max_attempts > 0 ? c->max_attempts : 1;
	d->concurrency = c->concurrency > 0 ? c->concurrency : 1;
	d->body_budget = c->body_budget;
	if (d->concurrency > DELIVER_CONCURRENCY_MAX)
		d->concurrency = DELIVER_CONCURRENCY_MAX;
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng))
		d->rng = (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32);
	d->rng |= 1;
	hl7_msg_init(&d->msg);
	d->xfers = xcalloc(d->concurrency, sizeof(*d->xfers));
	d->pend = xcalloc(DELIVER_PENDING_MAX, sizeof(*d->pend));
	if (c->token_file != NULL && deliver_read_token(d, c->token_file, err, errlen) == -1)
		goto fail;
	d->store = store_open(c->store, serr, sizeof(serr));
	if (d->store == NULL || store_relax(d->store, serr, sizeof(serr)) == -1) {
		snprintf(err, errlen, "store: %s", serr);
		goto fail;
	}
	d->multi = curl_multi_init();
	if (d->multi == NULL)
		xalloc_fail("curl multi");

	/* the worker takes no signals: the daemon's loop handles them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&d->thread, NULL, deliver_main, d);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "thread: %s", strerror(rc));
		goto fail;
	}
	d->started = true;
	return d;
fail:
	deliver_destroy(d);
	return NULL;
}

void deliver_kick(struct deliver *d)
{
	atomic_store(&d->kicked, true);
	curl_multi_wakeup(d->multi);
}

void deliver_stats(struct deliver *d, struct deliver_stats *out)
{
	out->attempts = atomic_load(&d->n_attempts);
	out->delivered = atomic_load(&d->n_delivered);
	out->failures = atomic_load(&d->n_failures);
	out->dead = atomic_load(&d->n_dead);
	out->in_flight = atomic_load(&d->n_in_flight);
	out->body_bytes = atomic_load(&d->n_body_bytes);
}

void deliver_free(struct deliver *d, double grace)
{
	if (d == NULL)
		return;
	d->grace = grace > 0 ? grace : 0;
	atomic_store(&d->stop, true);
	curl_multi_wakeup(d->multi);
	if (d->started)
		pthread_join(d->thread, NULL);
	deliver_destroy(d);
}
