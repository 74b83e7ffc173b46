/* Connections: accept, read, timers, the memory budget and the reaper (see link.c).
 * Private to the chat server's rooms. */
#ifndef NETWALL_CHAT_LINK_H
#define NETWALL_CHAT_LINK_H
#include "chat/state.h"

/* ch->resume_ev: reads the clients paused at the memory budget again, while under it. */
void link_resume_cb(evutil_socket_t fd, short what, void *arg);
/* Reaps every client marked dead, then frees the emptied channels. From the loop only. */
void link_reap(struct chat *ch);
/* ch->reap_ev: link_reap from the loop. */
void link_reap_cb(evutil_socket_t fd, short what, void *arg);
/* Frees c (reaped first if still queued). From the loop only. */
void link_free(struct client *c);
/* The listeners' callbacks (core/listener.h); arg is a struct chat_listener. */
void link_refused(void *arg, const struct sockaddr *sa, enum listener_reason r);
void link_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src);

#endif
