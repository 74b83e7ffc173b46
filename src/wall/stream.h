/* A stream's bytes (stream.c): a local socket pumped to and from its HTTP/2 stream. The
 * tunnel that carries it calls these; gateway.c and agent.c only connect and refuse. */
#ifndef NETWALL_STREAM_H
#define NETWALL_STREAM_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct tstream;
struct tstream_sink;

/* Traffic counters, summed over every stream of a process. */
struct tstream_stats {
	uint64_t streams_open;
	uint64_t streams_peak; /* high-water mark of streams_open since the last heap trim */
	uint64_t streams_total;
	uint64_t bytes_in;  /* read from local sockets (visitors, targets) */
	uint64_t bytes_out; /* written to local sockets */
	uint64_t resets;    /* streams ended by a reset, either way */
	uint64_t idle_timeouts; /* streams reset for carrying nothing for idle_timeout */
};
extern struct tstream_stats tstream_stats;

/* What a daemon's local sockets are, for the help of the byte counters. */
enum tstream_local { TSTREAM_VISITORS = 0, TSTREAM_TARGETS };

/* Registers the tstream_stats table into m (core/metrics.h): streams open and opened, bytes
 * to and from the local sockets, resets and idle timeouts. */
struct metrics;
void tstream_register_metrics(struct metrics *m, enum tstream_local local);

/* Called by the tunnel that carries the stream (tunnel.c, session.c). */
struct tstream *tstream_new(struct tstream_sink *t);
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
void tstream_expire_idle(struct tstream_sink *t, double now);
void tstream_window_opened(struct tstream *s);
/* Gateway: hold the stream to its service's buckets and, if visitor_rate is not 0, to
 * buckets of its own of that many bytes a second (rate.h). */
struct rate_share;
void tstream_set_rate(struct tstream *s, struct rate_share *service, uint64_t visitor_rate);
/* Gateway: bytes read from the visitor before the stream existed go first; their budget
 * count (taken by the reader) becomes the stream's, given back as they are framed. */
void tstream_preload(struct tstream *s, const uint8_t *p, size_t n);

/* Agent side of a stream: connect it to a target. */
struct tstream_target {
	const struct sockaddr *sa; /* TCP target, or NULL for a Unix socket */
	socklen_t salen;
	const char *unix_path;
	SSL_CTX *tls; /* non-NULL: originate TLS to the target */
	const char *tls_name; /* SNI and verified name, or NULL */
	double connect_timeout;
	/* Optional: told when the connect or the TLS handshake fails before a byte went to the
	 * target (refused, unreachable, timed out, TLS failed), with key handed back. On the
	 * stream's first connect next is non-NULL: a callee that fills it in and returns true
	 * has the stream dial that target instead (once); otherwise the stream is reset. Not
	 * called for a failure that is this process's own (sock_local_error): the stream is
	 * reset. */
	bool (*failed)(void *arg, uint64_t key, struct tstream_target *next);
	/* Optional: told, with the key, when the stream reached its target (connected and
	 * handshaken); never after failed. */
	void (*reached)(void *arg, uint64_t key);
	void *failed_arg;
	uint64_t failed_key;
};
void tstream_connect(struct tstream *s, const struct tstream_target *target);
/* Agent: refuse the stream (REFUSED_STREAM); the gateway closes the visitor. */
void tstream_refuse(struct tstream *s);

#endif
