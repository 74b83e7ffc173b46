/* The types a tunnel's daemon (gateway.c, agent.c) and the tunnel's rooms (tunnel.c,
 * session.c) share: what the daemon asks of a tunnel, and what the tunnel tells it. */
#ifndef NETWALL_TUNNEL_TYPES_H
#define NETWALL_TUNNEL_TYPES_H

#include <stdint.h>
#include <sys/socket.h>

enum tunnel_role {
	TUNNEL_GATEWAY = 0, /* TLS server, HTTP/2 client */
	TUNNEL_AGENT,       /* TLS client, HTTP/2 server */
};

struct tunnel_params {
	double ping_interval;     /* seconds between PINGs on a quiet tunnel */
	double peer_timeout;      /* seconds of silence after which the peer is dead */
	double handshake_timeout; /* TLS handshake (and hello) must finish within this */
	uint32_t stream_window;   /* the most a stream's receive window grows to */
};

/* What a visitor's stream carries to the agent. */
struct rate_share;

struct tunnel_visit {
	const char *service;
	struct sockaddr_storage src; /* the visitor */
	struct sockaddr_storage dst; /* the gateway address it reached */
	int proxy;                   /* 0, 1 or 2: PROXY header version to write to the target */
	double idle_timeout;         /* gateway: seconds without traffic before reset; 0: none */
	uint64_t *bytes;             /* gateway: [0] read from, [1] written to the visitor; the
				      * counters outlive the stream (the service holds them) */
	struct rate_share *rate;     /* gateway: the service's rate buckets (they outlive the
				      * stream too), or NULL */
	uint64_t visitor_rate;       /* gateway: bytes a second each way for this visitor; 0: none */
	/* gateway: bytes already read from the visitor (the ClientHello or request head that
	 * named its service), sent before any read from its socket. They were taken from the
	 * memory budget by the reader; a stream opened takes over that count (tunnel_open
	 * returns 0), else it stays the caller's. */
	const uint8_t *early;
	size_t nearly;
};

struct tunnel;
struct tstream;

struct tunnel_ops {
	/* Gateway: the agent answered hello (first time or again). Agent: TLS is up. */
	void (*up)(struct tunnel *t, void *arg);
	/* The peer sent GOAWAY: no new streams; existing ones go on. (Gateway: the agent is
	 * draining. Agent: the gateway retires this tunnel, so dial a replacement.) Agent
	 * also: the gateway sent TUNNEL_PING_MOVE, so dial a replacement, which lands on the
	 * process taking over, and keep this one, which goes on carrying streams until the
	 * gateway closes it. */
	void (*draining)(struct tunnel *t, void *arg);
	/* The tunnel is gone; all its streams are already closed. t is freed after this. */
	void (*down)(struct tunnel *t, const char *reason, void *arg);
	/* Agent: a visitor's stream arrived. The callee must call tstream_connect or
	 * tstream_refuse on s before returning. */
	void (*visit)(struct tunnel *t, struct tstream *s, const struct tunnel_visit *v, void *arg);
	/* A stream that carried a socket has ended; owner is what tunnel_open set. */
	void (*stream_done)(struct tunnel *t, void *owner, void *arg);
};

/* The payload of the agent's PING that asks for a new hello (tunnel.h). */
#define TUNNEL_PING_REHELLO "nw-hello"
/* Gateway to agent, in a handover: dial a replacement for this tunnel's slot, keep this. */
#define TUNNEL_PING_MOVE "nw-move!"

#endif
