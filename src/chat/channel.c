/* Channels: join, part, kick, topic, names, modes and bans, the backlog, and sending
 * one line to a channel or to everyone who shares one with a client. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/channel.h"
#include "chat/peer.h"
#include "core/xalloc.h"

struct channel *channel_find(struct chat *ch, const char *name)
{
	char f[IRC_CHANNEL_MAX + 1];

	irc_casefold(f, name, sizeof(f));
	for (size_t i = 0; i < ch->nchans; i++)
		if (strcmp(ch->chans[i]->folded, f) == 0)
			return ch->chans[i];
	return NULL;
}

ssize_t channel_index(const struct channel *k, const struct client *c)
{
	for (size_t i = 0; i < k->n; i++)
		if (k->members[i] == c)
			return (ssize_t)i;
	return -1;
}

bool channel_is_op(const struct channel *k, const struct client *c)
{
	ssize_t i = channel_index(k, c);

	return c->oper || (i >= 0 && k->ops[i]);
}

void channel_free(struct channel *k)
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
void channel_send(struct channel *k, const struct client *skip)
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
		peer_quit(over[i], "SendQ exceeded");
	}
	free(over);
}

void channel_remember(struct chat *ch, struct channel *k)
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
void channel_leave(struct chat *ch, struct channel *k, struct client *c)
{
	ssize_t i = channel_index(k, c);

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
void channel_send_peers(struct client *c, bool self)
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
		peer_quit(over[i], "SendQ exceeded");
	}
	free(over);
}

static void send_names(struct client *c, struct channel *k)
{
	struct chat *ch = c->ch;
	struct buf names = { 0 };

	for (size_t i = 0; i <= k->n; i++) {
		if (i == k->n || names.len > 400) {
			buf_append(&names, "", 1);
			peer_numeric(c, "353", "=", k->name, (const char *)buf_head(&names), NULL);
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
	peer_numeric(c, "366", k->name, "End of /NAMES list", NULL);
	(void)ch;
}

static void join_one(struct client *c, const char *name)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128], folded[IRC_NICK_MAX + 1];

	if (!irc_channel_valid(name)) {
		peer_numeric(c, "403", name, "No such channel", NULL);
		return;
	}
	k = channel_find(ch, name);
	if (k != NULL && channel_index(k, c) >= 0)
		return;
	if (c->nchans >= ch->cfg->max_channels) {
		peer_numeric(c, "405", name, "You have joined too many channels", NULL);
		return;
	}
	irc_casefold(folded, c->nick, sizeof(folded));
	for (size_t i = 0; k != NULL && i < k->nbans; i++) {
		if (strcmp(k->bans[i], folded) == 0 && !c->oper) {
			peer_numeric(c, "474", k->name, "Cannot join channel (+b)", NULL);
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
		k->members = xreallocarray(k->members, k->cap, sizeof(*k->members));
		k->ops = xreallocarray(k->ops, k->cap, sizeof(*k->ops));
	}
	k->members[k->n] = c;
	k->ops[k->n] = k->n == 0; /* who opens a channel runs it */
	k->n++;
	c->chans = xrealloc(c->chans, (c->nchans + 1) * sizeof(*c->chans));
	c->chans[c->nchans++] = k;
	peer_prefix(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[1] = { k->name };
		irc_format(&ch->scratch, pfx, "JOIN", p, 1, false);
	}
	channel_send(k, NULL);
	if (c->closing)
		return;
	if (k->topic[0] != '\0')
		peer_numeric(c, "332", k->name, k->topic, NULL);
	send_names(c, k);
	for (size_t i = 0; i < k->blen; i++) { /* the backlog, oldest first */
		const char *line = k->backlog[(k->bhead + i) % k->blen];
		if (peer_write(c, line, strlen(line)) == -1)
			return;
	}
}

void channel_join(struct client *c, struct irc_msg *m)
{
	char *save = NULL, *name;

	if (strcmp(m->params[0], "0") == 0) {
		while (c->nchans > 0 && !c->closing) {
			struct channel *k = c->chans[0];
			char pfx[128];
			peer_prefix(c, pfx, sizeof(pfx));
			c->ch->scratch.off = c->ch->scratch.len = 0;
			{
				const char *p[2] = { k->name, "Left all channels" };
				irc_format(&c->ch->scratch, pfx, "PART", p, 2, true);
			}
			channel_send(k, NULL);
			channel_leave(c->ch, k, c);
		}
		return;
	}
	for (name = strtok_r(m->params[0], ",", &save); name != NULL && !c->closing;
	     name = strtok_r(NULL, ",", &save))
		join_one(c, name);
}

void channel_part(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	char *save = NULL, *name, pfx[128];
	const char *why = m->nparams > 1 ? m->params[1] : "";

	for (name = strtok_r(m->params[0], ",", &save); name != NULL && !c->closing;
	     name = strtok_r(NULL, ",", &save)) {
		struct channel *k = channel_find(ch, name);
		if (k == NULL) {
			peer_numeric(c, "403", name, "No such channel", NULL);
			continue;
		}
		if (channel_index(k, c) < 0) {
			peer_numeric(c, "442", k->name, "You're not on that channel", NULL);
			continue;
		}
		peer_prefix(c, pfx, sizeof(pfx));
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[2] = { k->name, why };
			irc_format(&ch->scratch, pfx, "PART", p, why[0] ? 2 : 1, why[0] != '\0');
		}
		channel_send(k, NULL);
		channel_leave(ch, k, c);
	}
}

void channel_topic(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128];

	k = channel_find(ch, m->params[0]);
	if (k == NULL || channel_index(k, c) < 0) {
		peer_numeric(c, "442", m->params[0], "You're not on that channel", NULL);
		return;
	}
	if (m->nparams < 2) {
		if (k->topic[0] == '\0')
			peer_numeric(c, "331", k->name, "No topic is set", NULL);
		else
			peer_numeric(c, "332", k->name, k->topic, NULL);
		return;
	}
	if (!channel_is_op(k, c)) {
		peer_numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	snprintf(k->topic, sizeof(k->topic), "%s", m->params[1]);
	snprintf(k->topic_by, sizeof(k->topic_by), "%s", c->nick);
	peer_prefix(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[2] = { k->name, k->topic };
		irc_format(&ch->scratch, pfx, "TOPIC", p, 2, true);
	}
	channel_send(k, NULL);
}

void channel_names(struct client *c, struct irc_msg *m)
{
	struct channel *k = m->nparams > 0 ? channel_find(c->ch, m->params[0]) : NULL;

	if (k != NULL)
		send_names(c, k);
	else
		peer_numeric(c, "366", m->nparams > 0 ? m->params[0] : "*", "End of /NAMES list", NULL);
}

void channel_mode(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	char pfx[128];

	if (m->params[0][0] != '#' && m->params[0][0] != '&') {
		if (irc_casecmp(m->params[0], c->nick) != 0)
			peer_numeric(c, "502", "Cannot change mode for other users", NULL);
		else
			peer_numeric(c, "221", c->oper ? "+io" : "+i", NULL);
		return;
	}
	k = channel_find(ch, m->params[0]);
	if (k == NULL) {
		peer_numeric(c, "403", m->params[0], "No such channel", NULL);
		return;
	}
	if (m->nparams < 2) {
		peer_numeric(c, "324", k->name, "+nt", NULL);
		return;
	}
	if (strcmp(m->params[1], "b") == 0 || strcmp(m->params[1], "+b") == 0) {
		if (m->nparams < 3) { /* the ban list */
			for (size_t i = 0; i < k->nbans; i++)
				peer_numeric(c, "367", k->name, k->bans[i], NULL);
			peer_numeric(c, "368", k->name, "End of channel ban list", NULL);
			return;
		}
	}
	if (!channel_is_op(k, c)) {
		peer_numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	if (m->nparams >= 3 && (strcmp(m->params[1], "+o") == 0 || strcmp(m->params[1], "-o") == 0)) {
		struct client *o = peer_by_nick(ch, m->params[2]);
		ssize_t i = o != NULL ? channel_index(k, o) : -1;
		if (i < 0) {
			peer_numeric(c, "441", m->params[2], k->name, "They aren't on that channel", NULL);
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
		peer_numeric(c, "472", m->params[1], "is unknown mode char to me", NULL);
		return;
	}
	peer_prefix(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[3] = { k->name, m->params[1], m->params[2] };
		irc_format(&ch->scratch, pfx, "MODE", p, 3, false);
	}
	channel_send(k, NULL);
}

void channel_kick(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	struct channel *k;
	struct client *o;
	char pfx[128];
	const char *why;

	k = channel_find(ch, m->params[0]);
	if (k == NULL) {
		peer_numeric(c, "403", m->params[0], "No such channel", NULL);
		return;
	}
	if (!channel_is_op(k, c)) {
		peer_numeric(c, "482", k->name, "You're not channel operator", NULL);
		return;
	}
	o = peer_by_nick(ch, m->params[1]);
	if (o == NULL || channel_index(k, o) < 0) {
		peer_numeric(c, "441", m->params[1], k->name, "They aren't on that channel", NULL);
		return;
	}
	why = m->nparams > 2 ? m->params[2] : c->nick;
	peer_prefix(c, pfx, sizeof(pfx));
	ch->scratch.off = ch->scratch.len = 0;
	{
		const char *p[3] = { k->name, o->nick, why };
		irc_format(&ch->scratch, pfx, "KICK", p, 3, true);
	}
	channel_send(k, NULL);
	channel_leave(ch, k, o);
}
