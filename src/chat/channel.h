/* Channels and what is sent to them (see channel.c). Private to the chat server's rooms. */
#ifndef NETWALL_CHAT_CHANNEL_H
#define NETWALL_CHAT_CHANNEL_H
#include <stdbool.h>
#include <sys/types.h>

#include "chat/state.h"

/* The channel named name (compared folded), or NULL. */
struct channel *channel_find(struct chat *ch, const char *name);
/* c's place among k's members, or -1. */
ssize_t channel_index(const struct channel *k, const struct client *c);
/* Whether c may run k: an operator of k, or a server operator. */
bool channel_is_op(const struct channel *k, const struct client *c);
/* Frees k, its members list and its backlog (not the members). */
void channel_free(struct channel *k);
/* The line in ch->scratch to every member of k but skip; who overflows is marked dead. */
void channel_send(struct channel *k, const struct client *skip);
/* Keeps the line in ch->scratch in k's backlog (at most the configured lines). */
void channel_remember(struct chat *ch, struct channel *k);
/* Takes c out of k; an emptied k is retired and freed later by the reaper. */
void channel_leave(struct chat *ch, struct channel *k, struct client *c);
/* The line in ch->scratch once to everyone sharing a channel with c (and c if self). */
void channel_send_peers(struct client *c, bool self);
/* The commands of this room, for command.c's table (which checks registration and the
 * minimum parameters before calling them). */
void channel_join(struct client *c, struct irc_msg *m);
void channel_part(struct client *c, struct irc_msg *m);
void channel_topic(struct client *c, struct irc_msg *m);
void channel_names(struct client *c, struct irc_msg *m);
void channel_mode(struct client *c, struct irc_msg *m);
void channel_kick(struct client *c, struct irc_msg *m);

#endif
