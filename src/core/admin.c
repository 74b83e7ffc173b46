#include "core/admin.h"

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/page.h"
#include "core/sock.h"

#define ADMIN_TIMEOUT 10         /* seconds a scrape may take */
#define ADMIN_MAX_HEADERS 8192   /* request header bytes */
#define ADMIN_MAX_BODY 0         /* GET only */
#define ADMIN_BASIC_MAX (4 * ((255 + 1 + DAEMON_TOKEN_MAX + 2) / 3)) /* base64 of user:token */

struct admin {
	struct evhttp *http;
	struct addr addr;
	const struct admin_ops *ops;
	void *arg;
	char *token;
};

static double admin_started; /* when the first listener of the process began */

/* A copy of the token; out of memory must not leave the listener open to all. */
static char *admin_strdup(const char *token)
{
	char *t;

	if (token == NULL)
		return NULL;
	t = strdup(token);
	if (t == NULL)
		abort();
	return t;
}

static bool admin_same(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	/* the length is no secret; the bytes are compared in constant time */
	return alen == blen && CRYPTO_memcmp(a, b, blen) == 0;
}

bool admin_authorized(const char *auth, const char *token)
{
	/* a user name of up to 255 bytes, ':', the longest token */
	unsigned char dec[3 * ADMIN_BASIC_MAX / 4 + 4];
	size_t len, pad = 0;
	int n;
	const char *colon;

	if (token == NULL)
		return true;
	if (auth == NULL)
		return false;
	if (strncasecmp(auth, "Bearer ", 7) == 0) {
		auth += 7;
		while (*auth == ' ')
			auth++;
		return admin_same(auth, strlen(auth), token);
	}
	if (strncasecmp(auth, "Basic ", 6) != 0)
		return false;
	auth += 6;
	while (*auth == ' ')
		auth++;
	len = strlen(auth);
	if (len == 0 || len % 4 != 0 || len > ADMIN_BASIC_MAX)
		return false;
	n = EVP_DecodeBlock(dec, (const unsigned char *)auth, (int)len);
	if (n < 0)
		return false;
	pad = (auth[len - 1] == '=') + (auth[len - 2] == '=');
	n -= (int)pad;
	colon = memchr(dec, ':', (size_t)n);
	if (colon == NULL)
		return false;
	return admin_same(colon + 1, (size_t)n - (size_t)(colon + 1 - (const char *)dec), token);
}

static bool admin_is_loopback(const struct addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)&a->ss)->sin_addr.s_addr) >> 24) == 127;
	if (a->ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr);
	return false;
}

static void admin_reply(struct evhttp_request *req, int code, const char *reason,
			const char *type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

static void admin_handle(struct evhttp_request *req, void *arg)
{
	struct admin *adm = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body = evbuffer_new();
	char why[256] = "";

	if (body == NULL)
		abort();
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
	    evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
		evbuffer_add_printf(body, "method not allowed\n");
		admin_reply(req, 405, "Method Not Allowed", "text/plain", body);
	} else if (strcmp(uri, "/healthz") != 0 &&
		   !admin_authorized(evhttp_find_header(evhttp_request_get_input_headers(req),
							"Authorization"),
				     adm->token)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Basic realm=\"netwall\", charset=\"UTF-8\"");
		evbuffer_add_printf(body, "unauthorized: send Authorization: Bearer TOKEN "
					  "(the token in admin_token_file)\n");
		admin_reply(req, 401, "Unauthorized", "text/plain", body);
	} else if (strcmp(uri, "/") == 0 && adm->ops->page != NULL) {
		page_begin(body, adm->ops->role, clock_mono() - admin_started);
		adm->ops->page(body, adm->arg);
		page_end(body);
		admin_reply(req, 200, "OK", "text/html; charset=utf-8", body);
	} else if (strcmp(uri, "/healthz") == 0) {
		if (adm->ops->health == NULL || adm->ops->health(why, sizeof(why), adm->arg) == 0) {
			evbuffer_add_printf(body, "ok\n");
			admin_reply(req, 200, "OK", "text/plain", body);
		} else {
			evbuffer_add_printf(body, "unhealthy: %s\n", why);
			admin_reply(req, 503, "Service Unavailable", "text/plain", body);
		}
	} else if (strcmp(uri, "/metrics") == 0) {
		adm->ops->metrics(body, adm->arg);
		admin_reply(req, 200, "OK", "text/plain; version=0.0.4", body);
	} else if (strcmp(uri, "/status") == 0 && adm->ops->status != NULL) {
		adm->ops->status(body, adm->arg);
		admin_reply(req, 200, "OK", "application/json", body);
	} else {
		evbuffer_add_printf(body, "not found: try /, /healthz, /metrics, /status\n");
		admin_reply(req, 404, "Not Found", "text/plain", body);
	}
	evbuffer_free(body);
}

struct admin *admin_new(struct event_base *base, const struct addr *a, const char *token,
			const struct admin_ops *ops, void *arg, char *err, size_t errlen)
{
	struct admin *adm = calloc(1, sizeof(*adm));
	int fd;

	if (adm == NULL)
		abort();
	if (admin_started == 0)
		admin_started = clock_mono();
	adm->ops = ops;
	adm->arg = arg;
	adm->addr = *a;
	adm->token = admin_strdup(token);
	if (token == NULL && !admin_is_loopback(a)) {
		char where[ADDR_STRLEN];
		addr_format((const struct sockaddr *)&a->ss, where, sizeof(where));
		log_warn("event=admin_exposed addr=%s (not loopback and no admin_token_file: "
			 "whoever reaches it reads the status)",
			 where);
	}
	fd = sock_listen(a, err, errlen);
	if (fd == -1)
		goto fail;
	adm->http = evhttp_new(base);
	if (adm->http == NULL || evhttp_accept_socket(adm->http, fd) == -1) {
		snprintf(err, errlen, "cannot serve admin HTTP");
		close(fd);
		goto fail;
	}
	evhttp_set_timeout(adm->http, ADMIN_TIMEOUT);
	evhttp_set_max_headers_size(adm->http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(adm->http, ADMIN_MAX_BODY);
	evhttp_set_allowed_methods(adm->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(adm->http, admin_handle, adm);
	return adm;
fail:
	admin_free(adm);
	return NULL;
}

void admin_free(struct admin *adm)
{
	if (adm == NULL)
		return;
	if (adm->http != NULL)
		evhttp_free(adm->http);
	if (adm->token != NULL)
		OPENSSL_cleanse(adm->token, strlen(adm->token));
	free(adm->token);
	free(adm);
}

int admin_reconfigure(struct admin **adm, struct event_base *base, const struct addr *a,
		      const char *token, const struct admin_ops *ops, void *arg, char *err,
		      size_t errlen)
{
	if (*adm != NULL && a != NULL && addr_equal(&(*adm)->addr, a)) {
		if ((*adm)->token != NULL)
			OPENSSL_cleanse((*adm)->token, strlen((*adm)->token));
		free((*adm)->token);
		(*adm)->token = admin_strdup(token);
		return 0;
	}
	admin_free(*adm);
	*adm = NULL;
	if (a == NULL)
		return 0;
	*adm = admin_new(base, a, token, ops, arg, err, errlen);
	if (*adm == NULL) {
		log_error("event=admin_failed error=\"%s\"", err);
		return -1;
	}
	return 0;
}

void admin_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void admin_sample(struct evbuffer *out, const char *name, const char *labels, uint64_t value)
{
	if (labels[0])
		evbuffer_add_printf(out, "%s{%s} %" PRIu64 "\n", name, labels, value);
	else
		evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}
