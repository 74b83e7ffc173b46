/* The intake daemon: MLLP listeners (plain or TLS), and for every message, in order:
 * frame, parse, validate the header, route, store with its delivery job in one group-
 * committed transaction (deduplicating on sending application, facility and MSH-10), then
 * acknowledge; a delivery worker posts stored messages to the EMAR's API. */
#ifndef NETWALL_INTAKE_H
#define NETWALL_INTAKE_H
#include <event2/event.h>

#include "intake/intake_config.h"

struct intake;

/* Takes ownership of cfg. Opens the store, binds the listeners, starts the committer and
 * the delivery worker. Returns NULL, with the reason logged, on failure. */
struct intake *intake_new(struct event_base *base, const char *path, struct intake_config *cfg);
/* Runs the loop until SIGTERM/SIGINT has drained the intake. Returns the exit status. */
int intake_run(struct intake *in);
void intake_free(struct intake *in);

#endif
