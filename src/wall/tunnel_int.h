/* Private to tunnel.c and stream.c: the structures they share. */
#ifndef NETWALL_TUNNEL_INT_H
#define NETWALL_TUNNEL_INT_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/proxy.h"
#include "wall/tunnel.h"

/* Limits, each a ceiling on memory a peer can make us hold. */
#define TUNNEL_PLAIN_HIGH (256 * 1024)  /* HTTP/2 bytes queued for TLS */
#define TUNNEL_CIPHER_HIGH (256 * 1024) /* TLS records queued for the socket */
#define TUNNEL_RBUF 65536               /* one SSL_read */
#define TUNNEL_RAW_CHUNK (256 * 1024)   /* one read() of TLS records from the socket */
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
	int fd;
	SSL *ssl;
	struct event *rev, *wev, *timer, *flush_ev;
	nghttp2_session *h2;
	enum tunnel_state state;
	struct buf plain;  /* HTTP/2 output not yet encrypted */
	struct buf cipher; /* TLS output not yet written */
	struct buf cin;    /* TLS input not yet decrypted */
	uint8_t *rbuf;
	double t0, last_rx, last_ping, retire_at;
	struct tstream *streams;
	size_t nstreams;
	struct tstream *dirty; /* streams with bytes for their socket */
	int32_t hello_id;
	unsigned ticks;
	int busy;
	bool dead, established, wev_on, flush_on, sock_eof, retire_sent, read_blocked;
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

struct tshare; /* stream.c: the window held by one source network's streams */

struct tstream {
	struct tunnel *t;
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
};

/* stream.c, called by tunnel.c */
struct tstream *tstream_new(struct tunnel *t);
void tstream_start(struct tstream *s);
void tstream_free(struct tstream *s);
void tstream_kill(struct tstream *s);
ssize_t tstream_provide(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
			uint32_t *flags, nghttp2_data_source *src, void *user);
int tstream_send_data(struct tstream *s, const uint8_t *framehd, size_t length);
void tstream_on_data(struct tstream *s, const uint8_t *data, size_t len);
void tstream_flush(struct tstream *s);
void tstream_remote_eof(struct tstream *s);
void tstream_h2_closed(struct tstream *s, uint32_t code);
void tstream_on_response(struct tstream *s, const char *status);
void tstream_expire_idle(struct tunnel *t, double now);
void tstream_grant(struct tstream *s);
void tstream_window_opened(struct tstream *s);
void tstream_set_source(struct tstream *s, const struct sockaddr *sa);

/* tunnel.c, called by stream.c */
void tunnel_schedule_flush(struct tunnel *t);
void tunnel_busy(struct tunnel *t);
void tunnel_unbusy(struct tunnel *t);
void tunnel_mark_dirty(struct tunnel *t, struct tstream *s);

#endif
