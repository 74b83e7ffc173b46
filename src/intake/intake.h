/* The intake daemon: MLLP listeners (plain or TLS), and for every message, in order:
 * frame, parse, validate the header, route, store with its delivery job in one group-
 * committed transaction (deduplicating on sending application, facility and MSH-10), then
 * acknowledge; a delivery worker posts stored messages to the EMAR's API. */
#ifndef NETWALL_INTAKE_H
#define NETWALL_INTAKE_H
#include "core/daemon.h"

/* The intake as core/daemon.c runs it: netwall intake -c FILE is daemon_run(&intake_role,
 * FILE). A reload applies routing, limits and timeouts; listeners, TLS, store and delivery
 * settings need a restart. The admin views are status.c's. */
extern const struct daemon_role intake_role;

#endif
