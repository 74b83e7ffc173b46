/* The one acceptor: listening sockets that accept in batches, rest when descriptors run out,
 * and admit a connection only within its set's limits (max_connections, a cap per source
 * network, a CIDR allowlist), logging each refusal with its reason at a limited rate.
 *
 * A listener_set is the admission state that the listeners of one service share (the
 * gateway's service, the tunnel listener, the intake, the chat, an admin listener): its
 * limits, the connections open, and the count per source network (an IPv4 /32 and an IPv6
 * /64 by default, so a host with a /64 of its own cannot walk around the cap). Each admitted
 * connection holds a reference to its source's count, which the owner gives back with
 * listener_set_release() when the connection ends; the set must outlive every connection
 * it admitted. */
#ifndef NETWALL_LISTENER_H
#define NETWALL_LISTENER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/addr.h"
#include "core/log.h"

#define LISTENER_BATCH 64       /* connections taken per wake-up, so a flood cannot starve */
#define LISTENER_PAUSE 0.1      /* seconds a listener rests when accept() runs out of fds */
#define LISTENER_ALLOW_MAX 64   /* CIDR entries in one allowlist */
#define LISTENER_V4_PREFIX 32   /* default source network for the per-source cap */
#define LISTENER_V6_PREFIX 64

enum listener_reason {
	LISTENER_NOT_ALLOWED = 0, /* source outside the allowlist */
	LISTENER_MAX_CONNECTIONS, /* the set is full */
	LISTENER_MAX_PER_SOURCE,  /* the source network holds its share */
	LISTENER_REFUSED_BY_OWNER,
	LISTENER_FIRST_BYTE_TIMEOUT, /* admitted, but sent nothing within first_byte_timeout */
	LISTENER_REASONS
};

extern const char *const listener_reason_names[LISTENER_REASONS];

struct listener_limits {
	unsigned max_connections; /* 0: no cap */
	unsigned max_per_source;  /* 0: no cap */
	unsigned v4_prefix;       /* 0 means LISTENER_V4_PREFIX */
	unsigned v6_prefix;       /* 0 means LISTENER_V6_PREFIX */
	const struct addr_cidr *allow; /* copied; nallow == 0 admits every source */
	size_t nallow;
	/* > 0: a connection is handed over only once its first byte arrives (for protocols
	 * where the client speaks first); one silent for this many seconds is closed. It
	 * counts against the limits while it waits. */
	double first_byte_timeout;
};

struct listener_stats {
	uint64_t accepted;
	uint64_t refused[LISTENER_REASONS];
	uint64_t paused; /* times accept() ran out of descriptors */
	unsigned open;   /* admitted and not yet released */
	unsigned sources; /* source networks with a connection open */
};

struct listener_set;
struct listener_src; /* a source network's count; held by each connection from it */
struct listener;

/* A connection admitted (and, with first_byte_timeout, readable: its first bytes or its EOF
 * have come): ownership of fd (non-blocking, close-on-exec) passes to the callee,
 * which must call listener_set_release(set, src) when the connection ends, or
 * listener_set_refuse() if it turns it away at once. The callee must not free the listener. */
typedef void listener_accept_fn(void *arg, int fd, const struct sockaddr *sa,
				struct listener_src *src);
/* A connection refused by the set, before its fd is closed: for the owner's own records
 * (the status page's list of refused sources). May be NULL. */
typedef void listener_refuse_fn(void *arg, const struct sockaddr *sa, enum listener_reason r);

/* A refusal is logged as "event=EVENT NAME peer=... reason=...": event is a static string
 * ("refused", "visitor_rejected"), name the fields that say where ("service=web"; copied). */
struct listener_set *listener_set_new(const char *event, const char *name,
				     const struct listener_limits *lim);
/* Applies new limits (a reload). Connections already open stay; a changed prefix applies
 * to sources that connect from now on. */
void listener_set_limits(struct listener_set *set, const struct listener_limits *lim);
void listener_set_free(struct listener_set *set);
/* Admits a connection from sa by the set's limits (for an address learnt after accept, as
 * from a PROXY header): its source's count with this connection counted, to be released
 * with listener_set_release(), or NULL with *why set (and counted) when it is refused. */
struct listener_src *listener_set_admit(struct listener_set *set, const struct sockaddr *sa,
				       enum listener_reason *why);
/* The connection holding src has ended. */
void listener_set_release(struct listener_set *set, struct listener_src *src);
/* The owner refused a connection the set admitted (releases src, counts, logs). */
void listener_set_refuse(struct listener_set *set, struct listener_src *src,
			 const struct sockaddr *sa, const char *why);
const struct listener_stats *listener_set_stats(const struct listener_set *set);
/* Connections open from the source network of src. */
unsigned listener_src_count(const struct listener_src *src);

/* Listens on a and admits connections into set: on a socket adopted for a (below) if there
 * is one, else on one bound now. Returns NULL with err filled if a cannot be bound. The
 * listener starts enabled. */
struct listener *listener_new(struct event_base *base, const struct addr *a,
			      struct listener_set *set, listener_accept_fn *accept,
			      listener_refuse_fn *refuse, void *arg, char *err, size_t errlen);
/* Stops or resumes accepting (a drain, a pause); connections in the backlog wait. */
void listener_enable(struct listener *l, bool on);
void listener_free(struct listener *l);
const struct addr *listener_addr(const struct listener *l);
/* Bound to 0.0.0.0 or [::]: the address a visitor reached must be read from its socket. */
bool listener_wildcard(const struct listener *l);

/* ---- sockets handed over by the process this one replaces (core/handover.c) ----
 * Adopted sockets wait here until listener_new() asks for their address; the rest are
 * closed by listener_adopted_close() once the daemon is built. */
#define LISTENER_ADOPT_MAX 4096 /* sockets one process may hand over */

/* Takes ownership of fd, a listening TCP socket: its address is read from the socket
 * itself. Returns 0, or -1 (fd closed) if it is not one or the table is full. */
int listener_adopt(int fd);
/* Closes the adopted sockets no listener took; returns how many. */
size_t listener_adopted_close(void);
/* Calls fn for every listener of the process with its socket (for handing them over). */
void listener_each(void (*fn)(void *arg, int fd, const struct addr *a), void *arg);

#endif
