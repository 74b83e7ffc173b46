/* One line from a client: parsed and dispatched to its command; the commands that
 * belong to no other room (PRIVMSG, NOTICE, WHO, WHOIS, LIST, PING, QUIT, ...). */
#include <stdio.h>
#include <string.h>

#include "chat/channel.h"
#include "chat/command.h"
#include "chat/login.h"
#include "chat/peer.h"
#include "core/clock.h"
#include "core/log.h"

static void cmd_privmsg(struct client *c, struct irc_msg *m, bool notice)
{
	struct chat *ch = c->ch;
	const char *cmd = notice ? "NOTICE" : "PRIVMSG";
	char *save = NULL, *target, pfx[128];

	if (m->nparams < 1) {
		if (!notice)
			peer_numeric(c, "411", "No recipient given (PRIVMSG)", NULL);
		return;
	}
	if (m->nparams < 2 || m->params[1][0] == '\0') {
		if (!notice)
			peer_numeric(c, "412", "No text to send", NULL);
		return;
	}
	peer_prefix(c, pfx, sizeof(pfx));
	for (target = strtok_r(m->params[0], ",", &save); target != NULL && !c->closing;
	     target = strtok_r(NULL, ",", &save)) {
		const char *p[2] = { target, m->params[1] };
		if (target[0] == '#' || target[0] == '&') {
			struct channel *k = channel_find(ch, target);
			if (k == NULL || channel_index(k, c) < 0) {
				if (!notice)
					peer_numeric(c, "404", target, "Cannot send to channel", NULL);
				continue;
			}
			p[0] = k->name;
			ch->scratch.off = ch->scratch.len = 0;
			irc_format(&ch->scratch, pfx, cmd, p, 2, true);
			channel_send(k, c);
			if (!notice)
				channel_remember(ch, k);
		} else {
			struct client *o = peer_by_nick(ch, target);
			if (o == NULL || !o->registered) {
				if (!notice)
					peer_numeric(c, "401", target, "No such nick/channel", NULL);
				continue;
			}
			ch->scratch.off = ch->scratch.len = 0;
			irc_format(&ch->scratch, pfx, cmd, p, 2, true);
			if (peer_write(o, buf_head(&ch->scratch), ch->scratch.len) == 0)
				ch->msgs_out++;
		}
	}
}

static void who_line(struct client *c, const char *chan, const struct client *o, bool op)
{
	char flags[4] = "H";

	if (op)
		flags[1] = '@';
	{
		char trail[96];
		snprintf(trail, sizeof(trail), "0 %s", o->real);
		peer_numeric(c, "352", chan, o->user[0] ? o->user : "~u", o->host, c->ch->cfg->server_name,
			o->nick, flags, trail, NULL);
	}
}

static void cmd_who(struct client *c, struct irc_msg *m)
{
	const char *mask = m->nparams > 0 ? m->params[0] : "*";
	struct channel *k = channel_find(c->ch, mask);

	if (k != NULL) {
		for (size_t i = 0; i < k->n && !c->closing; i++)
			who_line(c, k->name, k->members[i], k->ops[i]);
	} else {
		struct client *o = peer_by_nick(c->ch, mask);
		if (o != NULL && o->registered)
			who_line(c, "*", o, false);
	}
	peer_numeric(c, "315", mask, "End of /WHO list", NULL);
}

static void cmd_whois(struct client *c, struct irc_msg *m)
{
	const char *nick = m->nparams > 1 ? m->params[1] : m->nparams > 0 ? m->params[0] : "";
	struct client *o = peer_by_nick(c->ch, nick);

	if (o == NULL || !o->registered) {
		peer_numeric(c, "401", nick, "No such nick/channel", NULL);
	} else {
		struct buf chans = { 0 };
		peer_numeric(c, "311", o->nick, o->user, o->host, "*", o->real, NULL);
		peer_numeric(c, "312", o->nick, c->ch->cfg->server_name, "netwall", NULL);
		for (size_t i = 0; i < o->nchans; i++) {
			if (chans.len > 0)
				buf_append(&chans, " ", 1);
			if (channel_is_op(o->chans[i], o))
				buf_append(&chans, "@", 1);
			buf_append(&chans, o->chans[i]->name, strlen(o->chans[i]->name));
		}
		buf_append(&chans, "", 1);
		if (o->nchans > 0)
			peer_numeric(c, "319", o->nick, (const char *)buf_head(&chans), NULL);
		buf_free(&chans);
		if (o->account[0] != '\0')
			peer_numeric(c, "330", o->nick, o->account, "is logged in as", NULL);
		if (o->oper)
			peer_numeric(c, "313", o->nick, "is an IRC operator", NULL);
	}
	peer_numeric(c, "318", nick, "End of /WHOIS list", NULL);
}

static void cmd_list(struct client *c, struct irc_msg *m)
{
	peer_numeric(c, "321", "Channel", "Users  Name", NULL);
	for (size_t i = 0; i < c->ch->nchans && !c->closing; i++) {
		char n[16];
		snprintf(n, sizeof(n), "%zu", c->ch->chans[i]->n);
		peer_numeric(c, "322", c->ch->chans[i]->name, n, c->ch->chans[i]->topic, NULL);
	}
	peer_numeric(c, "323", "End of /LIST", NULL);
}

/* One line from c. */
void command_line(struct client *c, char *line, size_t len)
{
	struct chat *ch = c->ch;
	struct irc_msg m;
	const char *err;
	const char *cmd;

	ch->lines_in++;
	minutes_add(&ch->per_minute, clock_wall(), 1);
	if (irc_parse(line, len, &m, &err) == -1) {
		if (strcmp(err, "empty line") == 0)
			return;
		log_limited(&ch->rate, LOG_INFO, "event=bad_line peer=%s error=\"%s\"", c->host, err);
		if (strcmp(err, "NUL in line") == 0) {
			peer_quit(c, "Malformed line");
			return;
		}
		peer_numeric(c, "421", "*", "Malformed line", NULL);
		return;
	}
	cmd = m.command;
	if (strcmp(cmd, "PING") == 0) {
		peer_send(c, NULL, "PONG", ch->cfg->server_name, m.nparams > 0 ? m.params[0] : "", NULL);
	} else if (strcmp(cmd, "PONG") == 0) {
		c->ping_sent = false;
	} else if (strcmp(cmd, "QUIT") == 0) {
		if (m.nparams > 0) /* for the peers' QUIT line only: free text is never logged */
			snprintf(c->said, sizeof(c->said), "%s", m.params[0]);
		peer_quit(c, "Client Quit");
	} else if (strcmp(cmd, "CAP") == 0) {
		login_cap(c, &m);
	} else if (strcmp(cmd, "AUTHENTICATE") == 0) {
		login_authenticate(c, &m);
	} else if (strcmp(cmd, "PASS") == 0) {
		login_pass(c, &m);
	} else if (strcmp(cmd, "NICK") == 0) {
		login_nick(c, &m);
	} else if (strcmp(cmd, "USER") == 0) {
		login_user(c, &m);
	} else if (strcmp(cmd, "REGISTER") == 0) {
		login_register(c, &m);
	} else if (!c->registered) {
		peer_numeric(c, "451", "You have not registered", NULL);
	} else if (strcmp(cmd, "JOIN") == 0) {
		channel_join(c, &m);
	} else if (strcmp(cmd, "PART") == 0) {
		channel_part(c, &m);
	} else if (strcmp(cmd, "PRIVMSG") == 0 || strcmp(cmd, "NOTICE") == 0) {
		cmd_privmsg(c, &m, cmd[0] == 'N');
	} else if (strcmp(cmd, "TOPIC") == 0) {
		channel_topic(c, &m);
	} else if (strcmp(cmd, "NAMES") == 0) {
		channel_names(c, &m);
	} else if (strcmp(cmd, "WHO") == 0) {
		cmd_who(c, &m);
	} else if (strcmp(cmd, "WHOIS") == 0) {
		cmd_whois(c, &m);
	} else if (strcmp(cmd, "LIST") == 0) {
		cmd_list(c, &m);
	} else if (strcmp(cmd, "MODE") == 0) {
		channel_mode(c, &m);
	} else if (strcmp(cmd, "KICK") == 0) {
		channel_kick(c, &m);
	} else if (strcmp(cmd, "MOTD") == 0) {
		peer_numeric(c, "422", "MOTD File is missing", NULL);
	} else {
		peer_numeric(c, "421", cmd, "Unknown command", NULL);
	}
}
