/* The window and the budget a stream waits for (share.c).
 *
 * Shares: once the windows granted pass a quarter of the budget, the streams of one source
 * network (the visitor's address, IPv4 /32, IPv6 /64; the agent reads it from
 * x-netwall-src) hold together at most 1/STREAM_SHARE_DIV of the budget as window, or one
 * STREAM_WINDOW_FIRST. Its streams past that are parked on the share, oldest first, and
 * granted as its own streams give window back, so one source whose visitors never read
 * cannot take the window every other visitor needs. */
#ifndef NETWALL_SHARE_H
#define NETWALL_SHARE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct tstream;

/* stream.c: how the budget's queue starts a stream reading again once there is room;
 * read_again returns false if the stream may not read. Set before any stream waits. */
void share_set_reader(bool (*read_again)(struct tstream *s));

/* Queues s for the budget (want: STREAM_WANT_*); each time it joins counts as one wait. */
void share_wait(struct tstream *s, unsigned want);

/* Gives bytes read and window back to the budget; the queue runs on the next turn. */
void share_give(uint64_t in, uint64_t win);

/* Takes inc more window for s from the budget and its share, if both have room; true if
 * taken (s->win is the caller's to raise). */
bool share_widen(struct tstream *s, uint32_t inc);

/* s ends: it leaves the queue and its share's parked streams and gives back the window and
 * bytes it holds, which may go to the next stream parked on its share. */
void share_release(struct tstream *s);

/* Attaches s to the share of source sa (once, before its first grant). */
void tstream_set_source(struct tstream *s, const struct sockaddr *sa);

/* Grants the peer the stream's first window, or parks the stream until its share has room,
 * or queues it until the budget has. The stream must already exist in the HTTP/2 session. */
void tstream_grant(struct tstream *s);

/* A reload raised memory_budget: wakes the streams waiting for it (call after
 * budget_set_limit). */
void tstream_budget_raised(void);

#endif
