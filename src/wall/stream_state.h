/* The state of a stream, shared by stream.c (its bytes) and share.c (the window and budget
 * it waits for), and read by the tunnel that carries it (tunnel.c, session.c). */
#ifndef NETWALL_STREAM_STATE_H
#define NETWALL_STREAM_STATE_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/proxy.h"

/* Limits, each a ceiling on memory a peer can make us hold. */
#define STREAM_IN_CAP (512 * 1024)      /* bytes read from a socket, not yet framed */
#define STREAM_WINDOW_FIRST (16 * 1024) /* a stream's first receive window (SETTINGS say 0) */
#define STREAM_WINDOW_LEAST (2 * 1024)  /* ... the first window once a quarter of the
					 * budget is window: more streams, each slower */
#define STREAM_READ_CHUNK (256 * 1024)  /* largest read from a socket */
#define STREAM_READ_MIN (16 * 1024)     /* smallest read from a socket */
#define STREAM_HDR_MAX 256              /* a header value we keep (service, address) */
#define STREAM_SHARE_DIV 16             /* a source network's streams together hold at most
					 * 1/16 of the budget as window (an eighth of the
					 * window half), or one STREAM_WINDOW_FIRST */
#define STREAM_SHARE_V4 32              /* a source network: IPv4 /32, IPv6 /64 (the */
#define STREAM_SHARE_V6 64              /* ... defaults of max_per_source) */

enum {
	STREAM_WANT_READ = 1,  /* to read its socket again */
	STREAM_WANT_GRANT = 2, /* its first window */
};

struct tstream;

/* What a stream needs of the tunnel that carries it. The tunnel embeds one and fills in
 * the top half; stream.c keeps the streams' lists in the bottom half. A stream reaches its
 * tunnel only through this, so stream.c knows nothing of tunnels. */
struct tstream_sink {
	struct event_base *base;
	nghttp2_session *h2;    /* the HTTP/2 session; NULL until the TLS handshake is done */
	struct buf *plain;      /* HTTP/2 output not yet encrypted: DATA frames go here */
	uint32_t stream_window; /* the most a stream's receive window grows to */
	bool agent;             /* HTTP/2 server: a stream is granted window when it starts */
	void *arg;              /* the tunnel, handed to the calls below */
	void (*flush)(void *arg);  /* flush the tunnel's output at the end of this turn */
	void (*busy)(void *arg);   /* hold the tunnel over an event handler of a stream ... */
	void (*unbusy)(void *arg); /* ... and let go: a tunnel closed meanwhile is freed now */
	void (*done)(void *arg, void *owner); /* a stream that carried a socket has ended */
	void (*emptied)(void *arg);           /* the last stream has gone */
	/* kept by stream.c */
	struct tstream *streams;
	size_t nstreams;
	struct tstream *dirty; /* streams with bytes for their socket; the tunnel takes them
				* off and calls tstream_flush on each */
};

/* Agent side: what the request headers said, kept until the stream is dispatched. */
struct tstream_req {
	char method[16];
	char path[32];
	char service[STREAM_HDR_MAX];
	char src[STREAM_HDR_MAX];
	char dst[STREAM_HDR_MAX];
	char proxy[4];
	uint8_t hdr[PROXY_V2_MAX]; /* PROXY header to write once connected */
	size_t hdrlen;
	char tls_name[STREAM_HDR_MAX];
};

struct rate_pace; /* rate.c: a stream's rate limits */
struct tshare; /* share.c: the window held by one source network's streams */
struct tstream_target;

struct tstream {
	struct tstream_sink *t; /* its tunnel, as far as a stream sees it */
	int32_t id;
	int fd;
	SSL *ssl;
	struct event *rev, *wev, *tmo;
	struct evbuffer *in;  /* socket -> tunnel */
	struct evbuffer *out; /* tunnel -> socket */
	void *owner;
	struct tstream_req *req;
	uint32_t rhint; /* next read size */
	double idle_limit; /* seconds; 0: no idle timeout */
	double last_io;    /* monotonic time of the last byte either way */
	uint64_t *bytes;   /* per-service counters (tunnel_visit.bytes), or NULL */
	uint32_t win;      /* receive window granted to the peer, held against the budget */
	uint32_t drained;  /* bytes written to the socket since the window last could grow */
	size_t in_held;    /* bytes of in held against the budget (all of them) */
	unsigned wants;    /* STREAM_WANT_*: what it waits for while on the budget's queue */
	struct tshare *share; /* its source network's share, or NULL (tstream_set_source) */
	struct rate_pace *pace; /* gateway: its rate limits (rate.h), or NULL */
	/* agent: tstream_target's, while connecting */
	bool (*failed)(void *arg, uint64_t key, struct tstream_target *next);
	void (*reached)(void *arg, uint64_t key);
	void *failed_arg;
	uint64_t failed_key;
	struct tstream *prev, *next, *dirty_next, *wait_prev, *wait_next;
	struct tstream *park_prev, *park_next; /* on its share's list, waiting for a grant */
	bool connecting, handshaking, rd_eof, rd_err, eof_sent, remote_eof, wr_shut;
	bool h2_closed, deferred, reading, writing, dirty, provider, counted, aborted;
	bool waiting; /* on the budget's queue */
	bool blocked; /* the socket said EAGAIN since drained last started from 0 */
	bool win_blocked; /* stopped reading until the peer's window opens */
	bool parked;      /* waits for its share to have room for a first window */
	bool peer_ready;  /* gateway: the agent answered 200, after granting window if it could */
	bool peer_opened; /* the peer has given the stream window at least once */
	bool redialled;   /* agent: its first target refused it, it dialled another */
};

#endif
