/* What is sent to one client, and the end of it (see peer.c). Private to the chat
 * server's rooms. */
#ifndef NETWALL_CHAT_PEER_H
#define NETWALL_CHAT_PEER_H
#include <stddef.h>

#include "chat/state.h"

/* Queues n bytes to c; a client whose send queue would pass sendq is marked dead instead.
 * Returns -1 if c was marked, 0 otherwise (also when c was already closing). */
int peer_write(struct client *c, const void *p, size_t n);
/* One line to c: prefix (NULL: the server), command, parameters, NULL; the last parameter
 * is written as a trailing one. Returns as peer_write. */
int peer_send(struct client *c, const char *prefix, const char *cmd, ...);
/* A numeric reply ":server NNN nick params... :last", parameters NULL-terminated. */
int peer_numeric(struct client *c, const char *num, ...);
/* c's "nick!user@host" into out. */
void peer_prefix(const struct client *c, char *out, size_t len);
/* The live client using nick (compared as RFC 1459 folds it), or NULL. */
struct client *peer_by_nick(struct chat *ch, const char *nick);
/* Marks c dead; the reaper (link.c) takes it out of its channels and closes it from the
 * loop. Safe inside any command or callback. reason is a server constant. */
void peer_quit(struct client *c, const char *reason);
/* (Re)arms c's one timer (link.c's timer callback) for seconds from now. */
void peer_timer_arm(struct client *c, double seconds);
/* Sends ERROR and ends the connection within CHAT_CLOSE_GRACE; frees nothing itself. */
void peer_close(struct client *c, const char *reason);

#endif
