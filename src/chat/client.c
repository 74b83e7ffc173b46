/* netwall chat connect: the built-in terminal client. One libevent loop: the server
 * connection (TLS by default, verified against a pinned fingerprint or a CA) and the
 * keyboard. On a terminal the prompt line is ours: a message that arrives is written above
 * it, and the prompt with the half-typed text is drawn again, so typing is never garbled.
 * The connection comes back by itself (backoff), rejoining the channels. */
#include "chat/client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "chat/irc.h"
#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/sock.h"
#include "core/tls.h"
#include "core/xalloc.h"

#define CLIENT_INPUT_MAX 400 /* bytes of one typed line */
#define CLIENT_CHANS_MAX 16

struct client_ui {
	struct event_base *base;
	const struct chat_client_opts *o;
	struct addrinfo *ai;
	SSL_CTX *tls;
	struct bufferevent *bev;
	struct event *stdin_ev, *retry_ev, *sig_ev;
	struct irc_lines lines;
	struct backoff backoff;
	bool tty, registered, quitting;
	struct termios saved;
	char nick[IRC_NICK_MAX + 1];
	char input[CLIENT_INPUT_MAX + 1];
	size_t inlen;
	char target[IRC_CHANNEL_MAX + 1]; /* where plain text goes */
	char chans[CLIENT_CHANS_MAX][IRC_CHANNEL_MAX + 1];
	size_t nchans;
	int status;
	char fatal[256]; /* why the client gave up (a certificate for another name) */
};

static void ui_connect(struct client_ui *u);

/* ---- the screen ---- */

static void ui_prompt(struct client_ui *u)
{
	if (!u->tty)
		return;
	printf("\r\033[K[%s] %.*s", u->target[0] ? u->target : u->nick, (int)u->inlen, u->input);
	fflush(stdout);
}

/* Prints one line above the prompt, then draws the prompt again. */
static void ui_print(struct client_ui *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ui_print(struct client_ui *u, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (char *p = line; *p; p++) /* no terminal control from the network */
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (u->tty)
		printf("\r\033[K%s\r\n", line);
	else
		printf("%s\n", line);
	ui_prompt(u);
	fflush(stdout);
}

static void ui_send(struct client_ui *u, const char *cmd, const char *const *params, unsigned n)
{
	struct buf out = { 0 };

	if (u->bev == NULL) {
		ui_print(u, "-- not connected");
		return;
	}
	irc_format(&out, NULL, cmd, params, n, n > 0 && strchr(params[n - 1], ' ') != NULL);
	bufferevent_write(u->bev, buf_head(&out), out.len);
	buf_free(&out);
}

/* ---- what the server says ---- */

static void nick_of(const char *prefix, char *out, size_t len)
{
	size_t n = strcspn(prefix ? prefix : "", "!");

	snprintf(out, len, "%.*s", (int)n, prefix ? prefix : "");
}

static void ui_remember(struct client_ui *u, const char *chan, bool in)
{
	for (size_t i = 0; i < u->nchans; i++) {
		if (irc_casecmp(u->chans[i], chan) == 0) {
			if (!in)
				memcpy(u->chans[i], u->chans[--u->nchans], sizeof(u->chans[0]));
			return;
		}
	}
	if (in && u->nchans < CLIENT_CHANS_MAX)
		snprintf(u->chans[u->nchans++], sizeof(u->chans[0]), "%s", chan);
}

static void ui_server_line(struct client_ui *u, char *line, size_t len)
{
	struct irc_msg m;
	const char *err;
	char who[IRC_NICK_MAX + 1];
	const char *cmd, *last;

	if (irc_parse(line, len, &m, &err) == -1)
		return;
	cmd = m.command;
	last = m.nparams > 0 ? m.params[m.nparams - 1] : "";
	nick_of(m.prefix, who, sizeof(who));
	if (strcmp(cmd, "PING") == 0) {
		const char *p[1] = { last };
		ui_send(u, "PONG", p, 1);
	} else if (strcmp(cmd, "001") == 0) {
		u->registered = true;
		backoff_reset(&u->backoff);
		if (m.nparams > 0)
			snprintf(u->nick, sizeof(u->nick), "%s", m.params[0]);
		ui_print(u, "-- connected as %s; /help lists the commands", u->nick);
		for (size_t i = 0; i < u->nchans; i++) { /* back after a reconnect */
			const char *p[1] = { u->chans[i] };
			ui_send(u, "JOIN", p, 1);
		}
	} else if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
		const char *to = m.nparams > 0 ? m.params[0] : "";
		if (to[0] == '#' || to[0] == '&')
			ui_print(u, "[%s] <%s> %s", to, who, last);
		else
			ui_print(u, "*%s* %s", who, last);
	} else if (strcmp(cmd, "JOIN") == 0 && m.nparams > 0) {
		if (irc_casecmp(who, u->nick) == 0) {
			ui_remember(u, m.params[0], true);
			snprintf(u->target, sizeof(u->target), "%s", m.params[0]);
		}
		ui_print(u, "-- %s joined %s", who, m.params[0]);
	} else if (strcmp(cmd, "PART") == 0 && m.nparams > 0) {
		if (irc_casecmp(who, u->nick) == 0) {
			ui_remember(u, m.params[0], false);
			if (irc_casecmp(u->target, m.params[0]) == 0)
				snprintf(u->target, sizeof(u->target), "%s",
					 u->nchans > 0 ? u->chans[0] : "");
		}
		ui_print(u, "-- %s left %s%s%s", who, m.params[0], m.nparams > 1 ? ": " : "",
			 m.nparams > 1 ? last : "");
	} else if (strcmp(cmd, "QUIT") == 0) {
		ui_print(u, "-- %s quit (%s)", who, last);
	} else if (strcmp(cmd, "NICK") == 0) {
		if (irc_casecmp(who, u->nick) == 0)
			snprintf(u->nick, sizeof(u->nick), "%s", last);
		ui_print(u, "-- %s is now %s", who, last);
	} else if (strcmp(cmd, "TOPIC") == 0 || strcmp(cmd, "332") == 0) {
		ui_print(u, "-- topic of %s: %s", m.params[m.nparams > 2 ? 1 : 0], last);
	} else if (strcmp(cmd, "KICK") == 0 && m.nparams > 1) {
		if (irc_casecmp(m.params[1], u->nick) == 0)
			ui_remember(u, m.params[0], false);
		ui_print(u, "-- %s was kicked from %s by %s (%s)", m.params[1], m.params[0], who,
			 last);
	} else if (strcmp(cmd, "353") == 0) {
		ui_print(u, "-- in %s: %s", m.nparams > 2 ? m.params[2] : "", last);
	} else if (strcmp(cmd, "ERROR") == 0) {
		ui_print(u, "-- server: %s", last);
	} else if (strcmp(cmd, "422") == 0) {
		/* no message of the day: nothing to show */
	} else if (cmd[0] >= '4' && cmd[0] <= '5' && strlen(cmd) == 3) {
		ui_print(u, "-- error %s: %s", cmd, last);
		if (strcmp(cmd, "464") == 0)
			u->quitting = true; /* a wrong password does not get better by retrying */
	} else if (strcmp(cmd, "366") != 0 && strcmp(cmd, "005") != 0 &&
		   strcmp(cmd, "004") != 0) {
		if (cmd[0] >= '0' && cmd[0] <= '9')
			ui_print(u, "-- %s", last);
	}
}

/* ---- the connection ---- */

static void ui_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	ui_connect(arg);
}

static void ui_lost(struct client_ui *u, const char *why)
{
	struct timeval tv;
	double delay;

	if (u->bev != NULL) {
		bufferevent_free(u->bev);
		u->bev = NULL;
	}
	u->registered = false;
	if (u->quitting) {
		event_base_loopexit(u->base, NULL);
		return;
	}
	delay = backoff_next(&u->backoff, (double)(rand() % 1000) / 1000.0);
	ui_print(u, "-- connection lost (%s); again in %.1f s", why, delay);
	tv = clock_tv(delay);
	evtimer_add(u->retry_ev, &tv);
}

static void ui_read_cb(struct bufferevent *bev, void *arg)
{
	struct client_ui *u = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	while (evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t used, len;
		char *line;
		enum irc_line_result r;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		r = irc_lines_feed(&u->lines, v.iov_base, v.iov_len, &used, &line, &len);
		evbuffer_drain(in, used);
		if (r == IRC_LINE_OK)
			ui_server_line(u, line, len);
	}
}

/* The pinned fingerprint, if one was given, decides; otherwise OpenSSL's verification. */
static int ui_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct client_ui *u = SSL_get_app_data(ssl);
	uint8_t fp[TLS_FP_LEN], want[TLS_FP_LEN];

	if (u->o->fingerprint == NULL)
		return ok;
	if (X509_STORE_CTX_get_error_depth(x) != 0)
		return 1;
	if (tls_fingerprint(X509_STORE_CTX_get_current_cert(x), fp) == -1 ||
	    tls_fingerprint_parse(u->o->fingerprint, want) == -1)
		return 0;
	return memcmp(fp, want, TLS_FP_LEN) == 0;
}

/* True for an address literal: checked against the certificate's IP names, sent no SNI. */
static bool ui_is_ip(const char *host)
{
	unsigned char a[16];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The name the certificate must carry: --server-name, else the host given. */
static const char *ui_server_name(const struct client_ui *u)
{
	return u->o->server_name != NULL ? u->o->server_name : u->o->host;
}

/* A certificate from a trusted CA but for another name does not get better by retrying:
 * the client ends, saying so (chat_client_run returns it as its error). */
static bool ui_name_mismatch(struct client_ui *u, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	long v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;

	if (v != X509_V_ERR_HOSTNAME_MISMATCH && v != X509_V_ERR_IP_ADDRESS_MISMATCH)
		return false;
	snprintf(u->fatal, sizeof(u->fatal),
		 "%s:%u: certificate name mismatch: the server's certificate is not for %s "
		 "(--server-name gives the name to expect)",
		 u->o->host, u->o->port, ui_server_name(u));
	u->quitting = true;
	ERR_clear_error();
	ui_lost(u, "certificate name mismatch");
	return true;
}

/* Unless a fingerprint is pinned, the certificate must name the server: a host name (the
 * --server-name, else the host given) as a DNS name, an address literal as an IP address.
 * SNI carries the host name; an address is not sent. */
static void ui_tls_names(struct client_ui *u, SSL *ssl)
{
	const char *name = ui_server_name(u);
	bool ip = ui_is_ip(name);

	if (!ip)
		SSL_set_tlsext_host_name(ssl, name);
	if (u->o->fingerprint != NULL)
		return;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1
	       : SSL_set1_host(ssl, name) != 1)
		/* a name inet_pton accepted, or any string: only memory fails */
		xalloc_fail("TLS host name");
}

static void ui_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client_ui *u = arg;

	if (what & BEV_EVENT_CONNECTED) {
		const char *user[4] = { u->nick, "0", "*", "netwall chat" };
		const char *nick[1] = { u->nick };
		if (u->o->password != NULL) {
			const char *p[1] = { u->o->password };
			struct buf out = { 0 };
			irc_format(&out, NULL, "PASS", p, 1, true);
			bufferevent_write(u->bev, buf_head(&out), out.len);
			buf_free(&out);
		}
		ui_send(u, "NICK", nick, 1);
		ui_send(u, "USER", user, 4);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		char detail[256] = "";
		const char *why = (what & BEV_EVENT_EOF) ? "closed" : "error";
		if (u->tls != NULL && ui_name_mismatch(u, bev))
			return;
		if (u->tls != NULL && bufferevent_get_openssl_error(bev) != 0)
			why = tls_failure_reason(detail, sizeof(detail));
		ui_lost(u, why);
	}
}

static void ui_connect(struct client_ui *u)
{
	int fd = -1;

	for (struct addrinfo *a = u->ai; a != NULL && fd == -1; a = a->ai_next)
		fd = sock_connect(a->ai_addr, a->ai_addrlen);
	if (fd == -1) {
		ui_lost(u, strerror(errno));
		return;
	}
	if (u->tls != NULL) {
		SSL *ssl = SSL_new(u->tls);
		if (ssl == NULL)
			xalloc_fail("SSL");
		SSL_set_app_data(ssl, u);
		ui_tls_names(u, ssl);
		u->bev = bufferevent_openssl_socket_new(u->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
							BEV_OPT_CLOSE_ON_FREE);
	} else {
		u->bev = bufferevent_socket_new(u->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (u->bev == NULL)
		xalloc_fail("bufferevent");
	bufferevent_setcb(u->bev, ui_read_cb, NULL, ui_event_cb, u);
	bufferevent_enable(u->bev, EV_READ);
	if (u->tls == NULL) /* plain TCP: "connected" now, or when the connect completes */
		bufferevent_socket_connect(u->bev, NULL, 0);
	/* the connect above re-checks the socket; with TLS the handshake says it */
}

/* ---- the keyboard ---- */

static const char client_help[] =
	"commands: /join #room, /part [#room], /msg NICK TEXT, /me TEXT, /nick NAME,\n"
	"          /topic [TEXT], /names, /switch #room, /quit [TEXT], /help;\n"
	"          other text goes to the current room";

static void ui_command(struct client_ui *u, char *line)
{
	char *cmd = line + 1, *arg = strchr(cmd, ' ');

	if (arg != NULL)
		*arg++ = '\0';
	else
		arg = cmd + strlen(cmd);
	if (strcmp(cmd, "join") == 0 && arg[0]) {
		const char *p[1] = { arg };
		ui_send(u, "JOIN", p, 1);
	} else if (strcmp(cmd, "part") == 0) {
		const char *p[1] = { arg[0] ? arg : u->target };
		ui_send(u, "PART", p, 1);
	} else if (strcmp(cmd, "msg") == 0 && strchr(arg, ' ') != NULL) {
		char *text = strchr(arg, ' ');
		*text++ = '\0';
		const char *p[2] = { arg, text };
		ui_send(u, "PRIVMSG", p, 2);
		ui_print(u, "-> *%s* %s", arg, text);
	} else if (strcmp(cmd, "me") == 0 && u->target[0]) {
		char act[CLIENT_INPUT_MAX + 16];
		snprintf(act, sizeof(act), "\001ACTION %s\001", arg);
		const char *p[2] = { u->target, act };
		ui_send(u, "PRIVMSG", p, 2);
		ui_print(u, "[%s] * %s %s", u->target, u->nick, arg);
	} else if (strcmp(cmd, "nick") == 0 && arg[0]) {
		const char *p[1] = { arg };
		ui_send(u, "NICK", p, 1);
	} else if (strcmp(cmd, "topic") == 0 && u->target[0]) {
		const char *p[2] = { u->target, arg };
		ui_send(u, "TOPIC", p, arg[0] ? 2 : 1);
	} else if (strcmp(cmd, "names") == 0 && u->target[0]) {
		const char *p[1] = { u->target };
		ui_send(u, "NAMES", p, 1);
	} else if (strcmp(cmd, "switch") == 0 && arg[0]) {
		snprintf(u->target, sizeof(u->target), "%s", arg);
		ui_prompt(u);
	} else if (strcmp(cmd, "quit") == 0) {
		const char *p[1] = { arg[0] ? arg : "leaving" };
		u->quitting = true;
		ui_send(u, "QUIT", p, 1);
		if (u->bev == NULL)
			event_base_loopexit(u->base, NULL);
	} else {
		ui_print(u, "%s", "-- unknown command or missing argument");
		for (const char *h = client_help; *h;) {
			size_t n = strcspn(h, "\n");
			ui_print(u, "%.*s", (int)n, h);
			h += n + (h[n] == '\n');
		}
	}
}

static void ui_enter(struct client_ui *u)
{
	char line[CLIENT_INPUT_MAX + 1];

	memcpy(line, u->input, u->inlen);
	line[u->inlen] = '\0';
	u->inlen = 0;
	if (line[0] == '\0') {
		ui_prompt(u);
		return;
	}
	if (line[0] == '/') {
		ui_command(u, line);
	} else if (u->target[0] == '\0') {
		ui_print(u, "-- no room yet: /join #room first");
	} else {
		const char *p[2] = { u->target, line };
		ui_send(u, "PRIVMSG", p, 2);
		ui_print(u, "[%s] <%s> %s", u->target, u->nick, line);
	}
	ui_prompt(u);
}

static void ui_stdin_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client_ui *u = arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n <= 0) { /* end of input: leave */
		const char *p[1] = { "leaving" };
		u->quitting = true;
		event_del(u->stdin_ev);
		if (u->bev != NULL)
			ui_send(u, "QUIT", p, 1);
		else
			event_base_loopexit(u->base, NULL);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch == '\r' || ch == '\n') {
			ui_enter(u);
		} else if (ch == 0x7f || ch == 0x08) {
			while (u->inlen > 0 && ((unsigned char)u->input[u->inlen - 1] & 0xc0) == 0x80)
				u->inlen--; /* a whole UTF-8 character */
			if (u->inlen > 0)
				u->inlen--;
			ui_prompt(u);
		} else if (ch == 0x15) { /* Ctrl-U */
			u->inlen = 0;
			ui_prompt(u);
		} else if (ch == 0x03 || ch == 0x04) { /* Ctrl-C, Ctrl-D */
			const char *p[1] = { "leaving" };
			u->quitting = true;
			if (u->bev != NULL)
				ui_send(u, "QUIT", p, 1);
			else
				event_base_loopexit(u->base, NULL);
		} else if (ch >= 0x20 && u->inlen < CLIENT_INPUT_MAX) {
			u->input[u->inlen++] = (char)ch;
			if (u->tty) {
				putchar(ch);
				fflush(stdout);
			}
		}
	}
}

static void ui_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct client_ui *u = arg;

	u->quitting = true;
	event_base_loopexit(u->base, NULL);
}

int chat_client_run(const struct chat_client_opts *o, char *err, size_t errlen)
{
	struct client_ui u = { 0 };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
	char port[8];
	int rc;

	u.o = o;
	u.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	snprintf(u.nick, sizeof(u.nick), "%s", o->nick);
	snprintf(port, sizeof(port), "%u", o->port);
	rc = getaddrinfo(o->host, port, &hints, &u.ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", o->host, gai_strerror(rc));
		return -1;
	}
	if (o->tls) {
		u.tls = tls_ctx_target(o->ca, o->fingerprint == NULL, err, errlen);
		if (u.tls == NULL) {
			freeaddrinfo(u.ai);
			return -1;
		}
		SSL_CTX_set_verify(u.tls, SSL_VERIFY_PEER, ui_verify_cb);
	}
	u.base = event_base_new();
	if (u.base == NULL)
		xalloc_fail("event base");
	irc_lines_init(&u.lines, IRC_TAGS_MAX + IRC_LINE_MAX);
	u.backoff = (struct backoff){ .initial = 0.5, .max = 10 };
	if (u.tty) {
		struct termios raw;
		tcgetattr(STDIN_FILENO, &u.saved);
		raw = u.saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO | ISIG);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	u.stdin_ev = event_new(u.base, STDIN_FILENO, EV_READ | EV_PERSIST, ui_stdin_cb, &u);
	u.retry_ev = evtimer_new(u.base, ui_retry_cb, &u);
	u.sig_ev = evsignal_new(u.base, SIGTERM, ui_signal_cb, &u);
	if (u.stdin_ev == NULL || u.retry_ev == NULL || u.sig_ev == NULL)
		xalloc_fail("event");
	event_add(u.stdin_ev, NULL);
	event_add(u.sig_ev, NULL);
	signal(SIGPIPE, SIG_IGN);
	ui_print(&u, "-- connecting to %s:%u as %s (%s)", o->host, o->port, o->nick,
		 o->tls ? "TLS" : "plain TCP");
	ui_connect(&u);
	event_base_dispatch(u.base);
	if (u.tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &u.saved);
		printf("\r\033[K");
	}
	if (u.fatal[0] != '\0')
		snprintf(err, errlen, "%s", u.fatal);
	else
		printf("-- bye\n");
	if (u.bev != NULL)
		bufferevent_free(u.bev);
	event_free(u.stdin_ev);
	event_free(u.retry_ev);
	event_free(u.sig_ev);
	irc_lines_free(&u.lines);
	event_base_free(u.base);
	SSL_CTX_free(u.tls);
	freeaddrinfo(u.ai);
	return u.fatal[0] != '\0' ? -1 : 0;
}
