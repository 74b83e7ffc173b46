/* The process's memory budget: one ceiling on every byte a peer can make the gateway or the
 * agent hold. Counted against it: the bytes read from local sockets and not yet framed for
 * the tunnel, and the receive window granted to the tunnel's peer on each stream (which
 * covers the bytes received and not yet written to the local socket, plus those the peer
 * may still send). At the budget the daemon stops reading sockets and stops granting
 * window; it never grows past it. Single-threaded, like the loop that uses it. */
#ifndef NETWALL_BUDGET_H
#define NETWALL_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;

/* Sets the ceiling (bytes). Lowering it below what is held takes nothing back: the
 * holders release as they drain, and nothing new is taken until held is under it. */
void budget_set_limit(uint64_t limit);
uint64_t budget_limit(void);
uint64_t budget_held(void);
uint64_t budget_window(void); /* the part of held that is window (budget_take_window) */

/* Bytes that may still be taken (0 when at or over the budget). */
uint64_t budget_room(void);

/* Takes n bytes if they fit (returns true) or takes nothing (false). */
bool budget_take(uint64_t n);

/* Gives back n bytes taken earlier. */
void budget_give(uint64_t n);

/* The same for receive window granted to peers, which may take at most half the budget:
 * the other half stays for bytes read from sockets, so that a daemon whose peers hold
 * window they never use can still read its sockets (and see them close). */
bool budget_take_window(uint64_t n);
void budget_give_window(uint64_t n);

/* Counts one wait: a stream that stopped reading or went without window for lack of room. */
void budget_note_wait(void);

/* Registers the netwall_memory_* table into m (core/metrics.h). */
struct metrics;
void budget_register_metrics(struct metrics *m);

#endif
