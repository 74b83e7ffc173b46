/* Connections: accept, read, timers, the memory budget and the reaper (see conn.c).
 * Private to the chat server's rooms. */
#ifndef NETWALL_CHAT_CONN_H
#define NETWALL_CHAT_CONN_H
#include "chat/state.h"

/* ch->resume_ev: reads the clients paused at the memory budget again, while under it. */
void conn_resume_cb(evutil_socket_t fd, short what, void *arg);
/* Reaps every client marked dead, then frees the emptied channels. From the loop only. */
void conn_reap(struct chat *ch);
/* ch->reap_ev: conn_reap from the loop. */
void conn_reap_cb(evutil_socket_t fd, short what, void *arg);
/* Frees c (reaped first if still queued). From the loop only. */
void conn_free(struct client *c);
/* The listeners' callbacks (core/listener.h); arg is a struct chat_listener. */
void conn_refused(void *arg, const struct sockaddr *sa, enum listener_reason r);
void conn_accept(void *arg, int fd, const struct sockaddr *sa, struct listener_src *src);

#endif
