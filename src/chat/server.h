/* The chat server: TLS (and, if configured, plain) listeners speaking the IRC client
 * protocol: registration (CAP, SASL PLAIN, PASS, NICK, USER) against the accounts file,
 * channels with join/part/quit notices, topics and a short backlog, private messages,
 * operators who kick and ban, flood control and per-client limits. docs/chat.md lists what
 * is supported. */
#ifndef NETWALL_CHAT_SERVER_H
#define NETWALL_CHAT_SERVER_H
#include "core/daemon.h"

/* The chat daemon for daemon_run: config, start, reload (the accounts file), drain, admin
 * views. */
extern const struct daemon_role chat_role;

#endif
