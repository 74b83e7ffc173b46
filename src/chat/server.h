/* The chat server: TLS (and, if configured, plain) listeners speaking the IRC client
 * protocol: registration (CAP, SASL PLAIN, PASS, NICK, USER) against the accounts file,
 * channels with join/part/quit notices, topics and a short backlog, private messages,
 * operators who kick and ban, flood control and per-client limits. docs/chat.md lists what
 * is supported. */
#ifndef NETWALL_CHAT_SERVER_H
#define NETWALL_CHAT_SERVER_H
#include <event2/event.h>

#include "chat/chat_config.h"

struct chat;

/* Takes ownership of cfg; binds the listeners and loads the accounts. NULL, logged, on
 * failure. */
struct chat *chat_new(struct event_base *base, const char *path, struct chat_config *cfg);
/* Runs the loop until SIGTERM/SIGINT has drained the server. Returns the exit status. */
int chat_run(struct chat *ch);
void chat_free(struct chat *ch);

#endif
