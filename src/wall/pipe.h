/* The TLS pipe under a tunnel: TLS records between one socket and two buffers. OpenSSL
 * writes its records into cipher, which pipe_send() writes to the socket in large chunks,
 * and reads them from cin, which pipe_fill() tops up with large read()s. The pipe knows
 * nothing of HTTP/2; its caller decides what a failure costs. */
#ifndef NETWALL_PIPE_H
#define NETWALL_PIPE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core/buf.h"

/* Limits, each a ceiling on memory a peer can make us hold. */
#define PIPE_CIPHER_HIGH (256 * 1024) /* TLS records queued for the socket */
#define PIPE_RAW_CHUNK (256 * 1024)   /* one read() of TLS records from the socket */

struct pipe {
	int fd;
	SSL *ssl;
	struct buf cipher; /* TLS output not yet written */
	struct buf cin;    /* TLS input not yet decrypted */
	bool sock_eof;     /* the socket said EOF or failed: the BIO reports EOF */
};

/* What pipe_read() found when it returned no bytes. */
enum pipe_end {
	PIPE_AGAIN = 0,  /* nothing more to read now */
	PIPE_BLOCKED,    /* OpenSSL must write (a KeyUpdate) but cipher is full */
	PIPE_EOF,        /* the peer closed */
	PIPE_FAILED,     /* TLS error: reason and detail say which */
};

/* Takes fd and ssl (both are the pipe's from now on, freed by pipe_free) and puts the
 * pipe's buffers under ssl. */
void pipe_init(struct pipe *p, int fd, SSL *ssl);
void pipe_free(struct pipe *p);

/* One read() from the socket into cin. Returns 1 if bytes came, 0 if none are ready, -1 at
 * EOF or on an error (sock_eof is then set, and the BIO reports EOF). */
int pipe_fill(struct pipe *p);

/* Encrypts plain into cipher until plain is empty or cipher is full. Returns 1 if bytes
 * moved, 0 if none could, -1 on a TLS error. */
int pipe_encrypt(struct pipe *p, struct buf *plain);

/* One write() of cipher to the socket. Returns 1 on progress, 0 if the socket is full (or
 * nothing is queued), -1 on an error with *reason set ("reset", "write_error"). */
int pipe_send(struct pipe *p, const char **reason);

/* Decrypts up to len bytes into out, reading the socket as OpenSSL needs. Returns the bytes
 * decrypted, or 0 with *end set; on PIPE_FAILED *reason and detail say why. */
size_t pipe_read(struct pipe *p, uint8_t *out, size_t len, enum pipe_end *end,
		 const char **reason, char *detail, size_t dlen);

/* Sorts out a failed SSL_do_handshake() (rc its return): 0 if it only waits for the socket,
 * else -1 with *reason set: reject (a verify callback's reason) when given, "eof", or what
 * OpenSSL said (with detail). */
int pipe_handshake_result(struct pipe *p, int rc, const char *reject, const char **reason,
			  char *detail, size_t dlen);

#endif
