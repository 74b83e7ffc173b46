/* Handing a daemon's listening sockets to the process that replaces it (an upgrade or a
 * restart), so that no connection is refused while one process gives way to the other.
 *
 * The running daemon listens on a Unix socket (the `handover` key; mode 0600, and only a
 * peer of the daemon's own uid, or root, is served: SO_PEERCRED). A new process started
 * with --takeover connects before it binds anything, says hello with its role, and
 * receives every listening socket of the old one, each in a message of its own
 * (SCM_RIGHTS), then the count. It builds itself on them (core/listener.c adopts a socket
 * by the address it is bound to; unclaimed ones are closed) and says TAKEN; once it can
 * serve everything it says SERVING. The old process acts on each (the role's hooks in
 * core/daemon.c): on SERVING it drains and exits; if the new process goes away before
 * SERVING, the old resumes as before.
 *
 * The socket is SOCK_SEQPACKET: each message arrives whole or not at all; a message of
 * another size, magic or type, or a role that is not ours, ends the connection. */
#ifndef NETWALL_HANDOVER_H
#define NETWALL_HANDOVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define HANDOVER_TIMEOUT 5.0 /* seconds a takeover may take between its messages */
#define HANDOVER_WAIT 10.0   /* seconds a new process waits to be ready before serving anyway */

/* What the old process does at each step (arg: the caller's). */
struct handover_ops {
	void (*taken)(void *arg, size_t sockets); /* the new process polls the sockets now */
	void (*serving)(void *arg);               /* ... and serves everything: give way */
	void (*aborted)(void *arg, const char *why); /* it went away before serving */
};

struct handover;

/* Listens on path for a process that takes over, on the socket a takeover handed this
 * process if there is one, else on a new one (a stale socket file is removed; one that
 * answers is another daemon's: refused). role is a static string ("gateway", "agent").
 * Returns NULL with err filled. */
struct handover *handover_new(struct event_base *base, const char *path, const char *role,
			      const struct handover_ops *ops, void *arg, char *err,
			      size_t errlen);
/* Also closes a handover socket a takeover brought that no handover_new() took. */
void handover_free(struct handover *ho);
/* Paused, the socket is not polled: a takeover waits in its backlog (a process that is
 * itself still taking over). */
void handover_pause(struct handover *ho, bool paused);

/* ---- the new process ----
 * Connects to path and takes every socket the old process holds (the listening TCP
 * sockets go to core/listener.c's adopted table). Returns 1 with *conn, the connection
 * to tell the old process the next steps on; 0 if nobody listens there (start afresh);
 * -1 with err filled. Blocking: called before the loop runs. */
int handover_take(const char *path, const char *role, int *conn, char *err, size_t errlen);
/* Tells the old process we poll its sockets (TAKEN), or that we serve (SERVING; closes
 * conn). Returns 0 or -1. */
int handover_send_taken(int conn);
int handover_send_serving(int conn);

/* The uid check of a peer (SO_PEERCRED): our own effective uid, or root. */
bool handover_uid_allowed(uid_t peer, uid_t self);

#endif
