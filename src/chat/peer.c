/* One client as the rest of the server sees it: the lines sent to it (its send queue,
 * dropped at sendq), finding it by nickname, marking it dead and closing it. */
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "chat/peer.h"
#include "core/clock.h"
#include "core/log.h"

/* Queues bytes to c, dropping c (not the server) when its send queue is over the limit.
 * Returns -1 if c was closed. */
int peer_write(struct client *c, const void *p, size_t n)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->closing)
		return 0;
	if (evbuffer_get_length(out) + n > c->ch->cfg->sendq) {
		c->ch->dropped_sendq++;
		peer_quit(c, "SendQ exceeded");
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
int peer_send(struct client *c, const char *prefix, const char *cmd, ...)
{
	va_list ap;

	va_start(ap, cmd);
	fmt_line(c->ch, prefix ? prefix : c->ch->cfg->server_name, cmd, true, ap);
	va_end(ap);
	return peer_write(c, buf_head(&c->ch->scratch), c->ch->scratch.len);
}

/* A numeric reply: ":server NNN nick params... :last". */
int peer_numeric(struct client *c, const char *num, ...)
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
	return peer_write(c, buf_head(&ch->scratch), ch->scratch.len);
}

void peer_prefix(const struct client *c, char *out, size_t len)
{
	snprintf(out, len, "%s!%s@%s", c->nick, c->user[0] ? c->user : "~u", c->host);
}

struct client *peer_by_nick(struct chat *ch, const char *nick)
{
	for (struct client *o = ch->clients; o != NULL; o = o->next)
		if (o->nick[0] != '\0' && !o->closing && irc_casecmp(o->nick, nick) == 0)
			return o;
	return NULL;
}

/* Marks c dead: from now on nothing is sent to it or read from it, and nothing is freed.
 * Safe inside any command or callback; the reaper, run from the loop, takes c out of its
 * channels (telling the others) and closes it. reason is a server constant. */
void peer_quit(struct client *c, const char *reason)
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

void peer_timer_arm(struct client *c, double seconds)
{
	struct timeval tv = clock_tv(seconds);

	evtimer_add(c->timer, &tv);
}

/* Ends the connection: an ERROR line is flushed (within CHAT_CLOSE_GRACE), then freed by
 * the write or timer callback. Frees nothing itself: safe inside a command. */
void peer_close(struct client *c, const char *reason)
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
	peer_timer_arm(c, CHAT_CLOSE_GRACE);
}
