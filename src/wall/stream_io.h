/* A stream's socket I/O (stream_io.c), plain or TLS: what stream.c reads and writes with. */
#ifndef NETWALL_STREAM_IO_H
#define NETWALL_STREAM_IO_H

#include <sys/types.h>

struct tstream;

/* Reads at most room bytes from s's socket into s->in. Returns bytes read, 0 at EOF, -1
 * with errno (EAGAIN: wait for the socket; ECONNRESET for any TLS failure). */
ssize_t stream_io_read(struct tstream *s, size_t room);
/* Writes at most max bytes of s->out to s's socket, draining what went. Returns bytes
 * written, 0 if s->out is empty (TLS), -1 with errno (EAGAIN: wait; EPIPE for TLS). */
ssize_t stream_io_write(struct tstream *s, size_t max);

#endif
