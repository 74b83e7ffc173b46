#include "chat/chat_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/irc.h"
#include "core/conf.h"
#include "core/num.h"
#include "core/xalloc.h"

struct chat_load {
	struct chat_config *c;
	bool seen_chat;
	int chat_line;
	char section[64];
};

static void chat_defaults(struct chat_config *c)
{

	snprintf(c->server_name, sizeof(c->server_name), "netwall");
	c->max_clients = 10000;
	c->max_per_source = 16;
	c->source_prefix_v4 = 32;
	c->source_prefix_v6 = 64;
	c->sendq = 256 * 1024;
	c->memory_budget = 64u << 20; /* a small VM's share for the chat */
	c->max_channels = 20;
	c->backlog = 20;
	c->flood_rate = 2;
	c->flood_burst = 10;
	c->register_timeout = 20;
	c->ping_interval = 120;
	c->ping_timeout = 60;
	daemon_conf_defaults(&c->d, "127.0.0.1:9103");
	c->drain_timeout = 5;
}

struct listen_arg {
	struct conf *cf;
	struct addr *list;
	size_t *n;
	const char *key;
};

static int chat_listen_item(const char *item, void *arg)
{
	struct listen_arg *la = arg;
	char err[300];

	if (*la->n == CHAT_MAX_LIST) {
		conf_error(la->cf, "%s: more than %d addresses", la->key, CHAT_MAX_LIST);
		return -1;
	}
	if (addr_parse(item, &la->list[*la->n], err, sizeof(err)) == -1) {
		conf_error(la->cf, "%s: %s", la->key, err);
		return -1;
	}
	(*la->n)++;
	return 0;
}

static void chat_file(struct conf *cf, const char *key, const char *v, char **out, int *line)
{
	if (v[0] == '\0') {
		conf_error(cf, "%s: empty value (want a file path)", key);
		return;
	}
	free(*out);
	*out = conf_path(cf, v);
	if (line != NULL)
		*line = cf->line;
}

static void chat_on_section(struct conf *cf, const char *section)
{
	struct chat_load *l = cf->user;
	char kind[32];
	const char *name;

	snprintf(l->section, sizeof(l->section), "%s", section);
	conf_section_split(section, kind, sizeof(kind), &name);
	if (strcmp(section, "chat") == 0) {
		l->seen_chat = true;
		l->chat_line = cf->line;
	} else if (strcmp(kind, "operator") == 0) {
		struct chat_config *c = l->c;
		if (!irc_nick_valid(name))
			conf_error(cf, "[operator %s]: not a valid nickname", name);
		else if (c->noperators == CHAT_MAX_LIST)
			conf_error(cf, "more than %d operators", CHAT_MAX_LIST);
		else
			snprintf(c->operators[c->noperators++], sizeof(c->operators[0]), "%s", name);
	} else {
		conf_error(cf, "unknown section [%s] (want [chat] or [operator NAME])", section);
	}
}

static void chat_on_key(struct conf *cf, const char *section, const char *key, const char *v)
{
	struct chat_load *l = cf->user;
	struct chat_config *c = l->c;

	if (strncmp(section, "operator", 8) == 0) {
		conf_error(cf, "unknown key '%s' in [%s] (operators are named by the section; "
			       "they log in with their account)", key, section);
		return;
	}
	if (strcmp(section, "chat") != 0) {
		if (section[0] == '\0')
			conf_error(cf, "key '%s' outside a section", key);
		return;
	}
	if (strcmp(key, "listen") == 0) {
		struct listen_arg la = { cf, c->tls_listen, &c->ntls, key };
		conf_list(v, chat_listen_item, &la);
	} else if (strcmp(key, "plain_listen") == 0) {
		struct listen_arg la = { cf, c->plain_listen, &c->nplain, key };
		conf_list(v, chat_listen_item, &la);
	} else if (strcmp(key, "cert") == 0) {
		chat_file(cf, key, v, &c->cert, &c->cert_line);
	} else if (strcmp(key, "key") == 0) {
		chat_file(cf, key, v, &c->key, &c->key_line);
	} else if (strcmp(key, "accounts") == 0) {
		chat_file(cf, key, v, &c->accounts, NULL);
	} else if (strcmp(key, "open_registration") == 0) {
		if (conf_bool(v, &c->open_registration) == -1)
			conf_error(cf, "open_registration: want on or off, got '%s'", v);
	} else if (strcmp(key, "server_name") == 0) {
		size_t n = strlen(v);
		bool ok = n > 0 && n < sizeof(c->server_name);
		for (size_t i = 0; ok && i < n; i++)
			ok = (v[i] >= 'a' && v[i] <= 'z') || (v[i] >= 'A' && v[i] <= 'Z') ||
			     (v[i] >= '0' && v[i] <= '9') || v[i] == '-' || v[i] == '.';
		if (!ok)
			conf_error(cf, "server_name: want 1..63 of letters, digits, '-' and '.', "
				       "got '%s'", v);
		else
			snprintf(c->server_name, sizeof(c->server_name), "%s", v);
	} else if (strcmp(key, "max_clients") == 0) {
		conf_count(cf, key, v, 1, 1000000, &c->max_clients);
	} else if (strcmp(key, "max_per_source") == 0) {
		conf_count(cf, key, v, 1, 1000000, &c->max_per_source);
	} else if (strcmp(key, "source_prefix_v4") == 0) {
		conf_count(cf, key, v, 8, 32, &c->source_prefix_v4);
	} else if (strcmp(key, "source_prefix_v6") == 0) {
		conf_count(cf, key, v, 16, 128, &c->source_prefix_v6);
	} else if (strcmp(key, "sendq") == 0) {
		conf_count(cf, key, v, 4096, 64u << 20, &c->sendq);
	} else if (strcmp(key, "memory_budget") == 0) {
		conf_count(cf, key, v, 65536, (uint64_t)1 << 40, &c->memory_budget);
	} else if (strcmp(key, "max_channels") == 0) {
		conf_count(cf, key, v, 1, 1000, &c->max_channels);
	} else if (strcmp(key, "backlog") == 0) {
		conf_count(cf, key, v, 0, 1000, &c->backlog);
	} else if (strcmp(key, "flood_rate") == 0) {
		conf_seconds(cf, key, v, 0.1, 10000, &c->flood_rate);
	} else if (strcmp(key, "flood_burst") == 0) {
		conf_seconds(cf, key, v, 1, 100000, &c->flood_burst);
	} else if (strcmp(key, "register_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 3600, &c->register_timeout);
	} else if (strcmp(key, "ping_interval") == 0) {
		conf_seconds(cf, key, v, 0.1, 86400, &c->ping_interval);
	} else if (strcmp(key, "ping_timeout") == 0) {
		conf_seconds(cf, key, v, 0.1, 86400, &c->ping_timeout);
	} else if (daemon_conf_key(cf, &c->d, key, v)) {
		/* admin, admin_token_file, log_level, user, allow_root, seccomp */
	} else if (strcmp(key, "drain_timeout") == 0) {
		conf_seconds(cf, key, v, 0, 3600, &c->drain_timeout);
	} else {
		conf_error(cf, "unknown key '%s' in [chat]", key);
	}
}

struct chat_config *chat_config_load(const char *file, char **msgs)
{
	struct chat_config *c = xcalloc(1, sizeof(*c));
	struct chat_load l = { .c = c };
	struct conf cf = { .file = file, .user = &l, .on_section = chat_on_section,
			   .on_key = chat_on_key };

	chat_defaults(c);
	conf_load(&cf);
	if (cf.errors == 0) {
		cf.line = l.seen_chat ? l.chat_line : 1;
		if (!l.seen_chat)
			conf_error(&cf, "missing [chat] section");
		else if (c->ntls == 0 && c->nplain == 0)
			conf_error(&cf, "[chat]: no listener (want 'listen' for TLS and/or "
					"'plain_listen')");
		else if (c->ntls > 0 && (c->cert == NULL || c->key == NULL))
			conf_error(&cf, "[chat]: 'listen' is TLS and needs 'cert' and 'key'");
		else if (c->accounts == NULL && !c->open_registration)
			conf_error(&cf, "[chat]: no 'accounts' file and open_registration off: "
					"nobody could log in");
	}
	if (cf.errors) {
		if (msgs != NULL)
			*msgs = xstrndup((const char *)buf_head(&cf.msgs), cf.msgs.len);
		conf_done(&cf);
		chat_config_free(c);
		return NULL;
	}
	conf_done(&cf);
	return c;
}

void chat_config_free(struct chat_config *c)
{
	if (c == NULL)
		return;
	free(c->cert);
	free(c->key);
	free(c->accounts);
	daemon_conf_free(&c->d);
	free(c);
}
