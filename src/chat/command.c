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

static void cmd_notice(struct client *c, struct irc_msg *m)
{
	cmd_privmsg(c, m, true);
}

static void cmd_message(struct client *c, struct irc_msg *m)
{
	cmd_privmsg(c, m, false);
}

static void cmd_ping(struct client *c, struct irc_msg *m)
{
	peer_send(c, NULL, "PONG", c->ch->cfg->server_name, m->nparams > 0 ? m->params[0] : "",
		  NULL);
}

static void cmd_pong(struct client *c, struct irc_msg *m)
{
	c->ping_sent = false;
}

static void cmd_quit(struct client *c, struct irc_msg *m)
{
	if (m->nparams > 0) /* for the peers' QUIT line only: free text is never logged */
		snprintf(c->said, sizeof(c->said), "%s", m->params[0]);
	peer_quit(c, "Client Quit");
}

static void cmd_motd(struct client *c, struct irc_msg *m)
{
	peer_numeric(c, "422", "MOTD File is missing", NULL);
}

/* Who may send a command. */
enum cmd_when {
	CMD_ANY = 0,      /* before and after registration */
	CMD_REGISTERED,   /* after: before it, 451 */
	CMD_UNREGISTERED, /* before: after it, 462 */
};

struct cmd {
	const char *name; /* upper case, as irc_parse leaves a command */
	void (*run)(struct client *c, struct irc_msg *m);
	unsigned min; /* parameters; fewer: 461, and run is not called */
	enum cmd_when when;
};

/* Every command the server knows. A minimum of 0 where the command answers a missing
 * parameter its own way: NICK (431), PRIVMSG (411), REGISTER (DISALLOWED on a closed
 * server before 461). Scanned once per line: a couple of dozen string compares. */
static const struct cmd cmds[] = {
	{ "PING", cmd_ping, 0, CMD_ANY },
	{ "PONG", cmd_pong, 0, CMD_ANY },
	{ "QUIT", cmd_quit, 0, CMD_ANY },
	{ "CAP", login_cap, 0, CMD_ANY },
	{ "AUTHENTICATE", login_authenticate, 0, CMD_ANY },
	{ "PASS", login_pass, 1, CMD_UNREGISTERED },
	{ "NICK", login_nick, 0, CMD_ANY },
	{ "USER", login_user, 4, CMD_UNREGISTERED },
	{ "REGISTER", login_register, 0, CMD_ANY },
	{ "JOIN", channel_join, 1, CMD_REGISTERED },
	{ "PART", channel_part, 1, CMD_REGISTERED },
	{ "PRIVMSG", cmd_message, 0, CMD_REGISTERED },
	{ "NOTICE", cmd_notice, 0, CMD_REGISTERED },
	{ "TOPIC", channel_topic, 1, CMD_REGISTERED },
	{ "NAMES", channel_names, 0, CMD_REGISTERED },
	{ "WHO", cmd_who, 0, CMD_REGISTERED },
	{ "WHOIS", cmd_whois, 0, CMD_REGISTERED },
	{ "LIST", cmd_list, 0, CMD_REGISTERED },
	{ "MODE", channel_mode, 1, CMD_REGISTERED },
	{ "KICK", channel_kick, 2, CMD_REGISTERED },
	{ "MOTD", cmd_motd, 0, CMD_REGISTERED },
};

static const struct cmd *cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(cmds[i].name, name) == 0)
			return &cmds[i];
	return NULL;
}

/* Runs m's command for c, after the checks every command shares: registration first
 * (451 before it, 462 after it for PASS and USER), then the parameter count (461). An
 * unknown command is 451 before registration, 421 after. */
static void command_run(struct client *c, struct irc_msg *m)
{
	const struct cmd *k = cmd_find(m->command);

	if (k == NULL) {
		if (!c->registered)
			peer_numeric(c, "451", "You have not registered", NULL);
		else
			peer_numeric(c, "421", m->command, "Unknown command", NULL);
		return;
	}
	if (k->when == CMD_REGISTERED && !c->registered) {
		peer_numeric(c, "451", "You have not registered", NULL);
		return;
	}
	if (k->when == CMD_UNREGISTERED && c->registered) {
		peer_numeric(c, "462", "You may not reregister", NULL);
		return;
	}
	if (m->nparams < k->min) {
		peer_numeric(c, "461", k->name, "Not enough parameters", NULL);
		return;
	}
	k->run(c, m);
}

/* One line from c. */
void command_line(struct client *c, char *line, size_t len)
{
	struct chat *ch = c->ch;
	struct irc_msg m;
	const char *err;

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
	command_run(c, &m);
}
