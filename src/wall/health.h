/* The health of an agent's targets (health.c): every target of a service whose
 * health_check is on is checked on the agent's loop (a TCP connect, or an HTTP/1.1 GET whose
 * status line must say 2xx or 3xx), taken out after health_fall failures in a row and taken
 * back after health_rise successes; new streams go round robin over the targets known up,
 * or, when none is, over those not checked yet. A target starts unknown and counts as up
 * for its service's announcement; its first result decides at once. */
#ifndef NETWALL_HEALTH_H
#define NETWALL_HEALTH_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wall/config.h"

#define HEALTH_ANSWER_MAX 4096 /* bytes of an answer read for its status line */

struct health;
struct metrics;

/* changed(arg) is called after any target changed state (the set of services with a target
 * up may have changed). */
struct health *health_new(struct event_base *base, void (*changed)(void *arg), void *arg);
/* Follows cfg (which must outlive the next apply or free) and tls (cfg->targets[i]'s
 * context or NULL, likewise): a target that stays (same service, same address) keeps its
 * state and counts; its check in flight starts over. Others start unknown. */
void health_apply(struct health *h, const struct config_agentd *cfg, SSL_CTX *const *tls);
void health_free(struct health *h);

/* The target of cfg->targets[svc] a new stream goes to, other than the one avoid names
 * (0: none): round robin over those known up, else over those not checked yet (unknown). Returns its index in ep[] and sets *key (for
 * health_connect_failed), or -1 if there is none. */
int health_pick(struct health *h, size_t svc, uint64_t avoid, uint64_t *key);
/* True if cfg->targets[svc] is announced: withdrawn as soon as every target is down,
 * announced again once a target has been back for max(1 s, health_interval *
 * health_rise) with no change in between. */
bool health_service_up(const struct health *h, size_t svc);
/* A visitor's connect (or TLS handshake) to the target key names failed: counted as a
 * failed check when its service is checked, and a check is made now; health_fall of them
 * with no stream reaching the target in between take it down even if its checks pass.
 * Returns the index of its service, or -1 if the target is gone (a reload). */
int health_connect_failed(struct health *h, uint64_t key);
/* A visitor's stream reached the target key names (connected, handshaken). */
void health_stream_ok(struct health *h, uint64_t key);

/* Per service and target: up, streams, check results (core/metrics.h). */
void health_register_metrics(struct metrics *m, struct health *h);
/* {"service": [{"target": "HOST:PORT", "state": "up", ...}, ...], ...}: a new reference. */
json_t *health_json(const struct health *h);
/* The status page's table of targets. */
void health_page(struct evbuffer *out, const struct health *h);

#endif
