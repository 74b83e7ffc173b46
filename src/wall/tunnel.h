/* A tunnel: one TLS 1.3 connection between agent and gateway carrying an HTTP/2 session
 * (nghttp2). The agent dials and plays the HTTP/2 server; the gateway opens one CONNECT
 * stream per visitor. This module owns the TLS record I/O, the HTTP/2 session, liveness
 * (PING) and the hello exchange; stream.c owns the bytes of each stream.
 *
 * Hello: the gateway's first request (GET /netwall/hello) is answered by the agent with
 * x-netwall-instance (random per agent process), x-netwall-slot (which of its tunnels) and
 * x-netwall-services (the services it can reach). When its services change, the agent sends
 * a PING whose payload is TUNNEL_PING_REHELLO and the gateway asks again. */
#ifndef NETWALL_TUNNEL_H
#define NETWALL_TUNNEL_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "wall/tunnel_types.h"

/* Counters, summed over every tunnel of a process (the streams' are tstream_stats). */
struct tunnel_stats {
	uint64_t handshake_failures;
};
extern struct tunnel_stats tunnel_stats;

/* Registers the tunnel_stats table into m (core/metrics.h). */
struct metrics;
void tunnel_register_metrics(struct metrics *m);

/* A daemon's housekeeping turn (daemon_role.housekeeping): gives heap back after a burst
 * of streams. */
void tunnel_housekeeping(void *unused);


/* Takes ownership of fd (a connected TCP socket) and starts the TLS handshake.
 * ctx must already hold the verification policy; a verify callback may call
 * tunnel_set_peer() to name the peer, or tunnel_set_reject() to say why it refused. */
struct tunnel *tunnel_new(struct event_base *base, enum tunnel_role role, int fd, SSL_CTX *ctx,
			  const struct tunnel_params *p, const struct tunnel_ops *ops, void *arg);

/* Closes now: every stream is reset, ops->down is called, t is freed. */
void tunnel_close(struct tunnel *t, const char *reason);

/* Agent: GOAWAY, then close once the streams have ended (or at deadline). */
void tunnel_drain(struct tunnel *t);

/* Gateway, a handover: asks the agent to dial a replacement for this tunnel's slot
 * (TUNNEL_PING_MOVE), which lands on the process taking over, while this one goes on
 * carrying streams, new ones too, until we close it. */
void tunnel_move(struct tunnel *t);
bool tunnel_is_moved(const struct tunnel *t);

/* Gateway: retires the tunnel now (GOAWAY): no new streams unless nothing else can take
 * them; it closes once its streams are done. (A moved tunnel whose replacement came back
 * to us: the process taking over went away.) */
void tunnel_retire(struct tunnel *t);

/* Gateway: another instance of the tunnel's agent said hello (a new process replacing
 * this one). Visitors go to other tunnels from now on; a PING asks whether this one
 * lives, and without an answer within `within` seconds it closes with reason "replaced"
 * (a restarted agent's stale tunnel). */
void tunnel_supersede(struct tunnel *t, double within);

/* Agent: what hello answers. services is copied; a change on an up tunnel triggers a
 * re-hello. */
void tunnel_set_hello(struct tunnel *t, const char *instance, unsigned slot, const char *services);

/* Gateway: opens a CONNECT stream for visitor socket fd (ownership passes to the tunnel,
 * which closes it when the stream ends). owner is handed back to ops->stream_done.
 * Returns 0, or -1 if the tunnel cannot take a stream (fd is then still the caller's). */
int tunnel_open(struct tunnel *t, int fd, const struct tunnel_visit *v, void *owner);

/* Agent: SNI and (in CA mode) the name the gateway certificate must carry. Call right after
 * tunnel_new, before the loop runs again. */
void tunnel_set_server_name(struct tunnel *t, const char *name);

/* SHA-256 of the peer's certificate; -1 if none. */
int tunnel_peer_fingerprint(const struct tunnel *t, uint8_t fp[32]);

/* The peer's certificate and the chain it sent (without the leaf on the gateway), or NULL;
 * both are the tunnel's, valid while it lives. */
X509 *tunnel_peer_cert(const struct tunnel *t);
STACK_OF(X509) *tunnel_peer_chain(const struct tunnel *t);

/* Accessors. */
struct tunnel *tunnel_from_ssl(SSL *ssl);
void tunnel_set_peer(struct tunnel *t, const char *name);
void tunnel_set_reject(struct tunnel *t, const char *reason);
const char *tunnel_peer(const struct tunnel *t);      /* verified peer name, or "" */
const char *tunnel_peer_addr(const struct tunnel *t); /* "1.2.3.4:5678" */
const struct sockaddr_storage *tunnel_peer_sockaddr(const struct tunnel *t);
const char *tunnel_instance(const struct tunnel *t);  /* gateway: from hello */
unsigned tunnel_slot(const struct tunnel *t);
const char *tunnel_services(const struct tunnel *t);  /* gateway: from hello, comma list */
bool tunnel_serves(const struct tunnel *t, const char *service); /* ... names service */
bool tunnel_is_up(const struct tunnel *t);            /* hello done, not draining */
bool tunnel_is_established(const struct tunnel *t);   /* TLS handshake done */
bool tunnel_hello_answered(const struct tunnel *t);   /* agent: the gateway heard our hello,
						       * with the services last set */
double tunnel_age(const struct tunnel *t);            /* seconds since accepted or dialled */
/* Gateway: it said GOAWAY and has no stream left. nghttp2 reads nothing more on such a
 * session (want_read is 0), so a stream opened there would hang: it takes none. */
bool tunnel_is_spent(const struct tunnel *t);
bool tunnel_is_retiring(const struct tunnel *t);      /* gateway: stream IDs nearly used up,
						       * a handover, or superseded */
size_t tunnel_nstreams(const struct tunnel *t);
void *tunnel_user(const struct tunnel *t);
void tunnel_set_user(struct tunnel *t, void *user);

#endif
