/* The chat server's configuration: [chat] (listeners, TLS, accounts, limits) and
 * [operator NAME] sections. docs/config.md documents every key. */
#ifndef NETWALL_CHAT_CONFIG_H
#define NETWALL_CHAT_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/daemon.h"
#include "core/log.h"

#define CHAT_MAX_LIST 64 /* listeners, operators */

struct chat_config {
	struct addr tls_listen[CHAT_MAX_LIST];
	size_t ntls;
	struct addr plain_listen[CHAT_MAX_LIST]; /* only if configured; loopback is advised */
	size_t nplain;
	char *cert, *key;
	int cert_line, key_line;
	char *accounts;          /* the accounts file (netwall chat passwd) */
	bool open_registration;  /* unknown nicknames may connect without an account */
	char server_name[64];    /* the prefix of server messages */
	char operators[CHAT_MAX_LIST][31];
	size_t noperators;
	uint64_t max_clients;     /* in all */
	uint64_t max_per_source;  /* connections from one source network */
	uint64_t source_prefix_v4, source_prefix_v6; /* what a source network is (32, 64) */
	uint64_t sendq;           /* bytes queued to a client before it is dropped */
	uint64_t memory_budget;   /* bytes held for all clients (queues, input); then no reads */
	uint64_t max_channels;    /* joined per client */
	uint64_t backlog;         /* lines replayed to who joins a channel */
	double flood_rate;        /* lines per second allowed on average */
	double flood_burst;       /* lines allowed at once */
	double register_timeout;  /* seconds to complete registration */
	double ping_interval;     /* seconds of silence before we PING */
	double ping_timeout;      /* seconds after a PING without an answer: dropped */
	struct daemon_conf d; /* admin, log level, user, filter */
	double drain_timeout;
};

/* Loads and validates; NULL with msgs ("file:line: message" lines, malloc'd) on error. */
struct chat_config *chat_config_load(const char *file, char **msgs);
void chat_config_free(struct chat_config *c);

#endif
