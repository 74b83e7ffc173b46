/* The state of a tunnel, shared by tunnel.c (its lifetime and I/O) and session.c (its
 * HTTP/2 session). */
#ifndef NETWALL_TUNNEL_STATE_H
#define NETWALL_TUNNEL_STATE_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "core/addr.h"
#include "core/buf.h"
#include "wall/pipe.h"
#include "wall/stream_state.h"
#include "wall/tunnel_types.h"

/* Limits, each a ceiling on memory a peer can make us hold. */
#define TUNNEL_PLAIN_HIGH (256 * 1024)  /* HTTP/2 bytes queued for TLS */
#define TUNNEL_RBUF 65536               /* one SSL_read */
#define TUNNEL_READ_BUDGET (4u << 20)   /* bytes decrypted per turn before others run */
#define TUNNEL_FLUSH_EVERY (256u << 10) /* decrypted bytes between flushes within a turn */
#define TUNNEL_FRAME_MAX 65536          /* SETTINGS_MAX_FRAME_SIZE we accept */
#define TUNNEL_HEADERS_MAX 8192         /* SETTINGS_MAX_HEADER_LIST_SIZE we accept */
#define TUNNEL_CONN_WINDOW (1 << 30)    /* connection window: never the binding one; the
					 * stream windows, held against the budget, are */
#define TUNNEL_MAX_STREAMS 100000       /* SETTINGS_MAX_CONCURRENT_STREAMS */
#define TUNNEL_RETIRE_ID (1 << 30)      /* gateway: stream ID past which a tunnel retires */
#define TUNNEL_RETIRE_STAGGER (1 << 26) /* ... plus this much per agent slot */
#define TUNNEL_RETIRE_GRACE (1 << 24)   /* IDs a retiring tunnel may still use, if it must */
#define TUNNEL_RETIRE_WAIT 2.0          /* seconds after GOAWAY before an empty one closes */

enum tunnel_state {
	TUNNEL_HANDSHAKE = 0,
	TUNNEL_HELLO, /* gateway: waiting for hello's answer; agent: for the gateway's SETTINGS */
	TUNNEL_UP,
	TUNNEL_DRAIN, /* GOAWAY sent or received */
};

struct tunnel {
	struct event_base *base;
	enum tunnel_role role;
	const struct tunnel_ops *ops;
	void *arg;
	void *user;
	struct tunnel_params p;
	struct pipe pipe;        /* the TLS connection: socket, SSL, records both ways */
	struct tstream_sink sink; /* what its streams see of it: the HTTP/2 session (sink.h2),
				   * the output, the streams themselves */
	struct event *rev, *wev, *timer, *flush_ev;
	enum tunnel_state state;
	struct buf plain;  /* HTTP/2 output not yet encrypted */
	uint8_t *rbuf;
	double t0, last_rx, last_ping, retire_at;
	double probe_at, probe_within; /* gateway: superseded, PING sent then; dead past within */
	int32_t hello_id;
	unsigned ticks;
	int busy;
	bool dead, established, wev_on, flush_on, retire_sent, read_blocked;
	bool retire_forced; /* gateway: retired by a handover, not for want of stream IDs */
	bool moved;         /* TUNNEL_PING_MOVE sent (gateway) or heard (agent) */
	bool hello_answered; /* agent: the gateway knows our services (it routes to us) */
	bool superseded;    /* gateway: another instance of its agent said hello */
	const char *close_reason;
	char peer[64];
	char reject[32];
	char addr[ADDR_STRLEN];
	struct sockaddr_storage peer_ss;
	char instance[33];
	unsigned slot;
	char *services;
	char hello_status[4];
};

#endif
