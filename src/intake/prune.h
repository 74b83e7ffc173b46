/* Retention (prune.c): a thread with its own store connection that removes delivered,
 * ignored and rejected messages past retain_days, and the oldest of them while the stored
 * messages pass retain_bytes, in small transactions, each with its audit record (who
 * "intake", action "prune"). Received, failed and dead messages stay. */
#ifndef NETWALL_PRUNE_H
#define NETWALL_PRUNE_H
#include <stddef.h>
#include <stdint.h>

#include "core/metrics.h"

struct prune;

/* Opens its own connection to spec and starts the thread, which makes a first pass at
 * once. retain_days 0 and retain_bytes 0: keep everything (the thread idles). Returns NULL
 * with err filled. */
struct prune *prune_new(const char *spec, double retain_days, uint64_t retain_bytes, char *err,
			size_t errlen);
/* New settings (a reload): a pass starts at once with them. */
void prune_set(struct prune *p, double retain_days, uint64_t retain_bytes);
/* Registers netwall_intake_pruned_total and _bytes_total, read now, into m. */
void prune_metrics_add(struct prune *p, struct metrics *m);
/* Stops the thread (a transaction under way is finished), closes, frees. Accepts NULL. */
void prune_free(struct prune *p);

#endif
