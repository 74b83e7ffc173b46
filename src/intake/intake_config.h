/* The intake's configuration: [intake] (listeners, TLS, limits, store), [route] (which
 * message types are accepted, ignored or rejected) and [deliver] (the EMAR API).
 * docs/config.md documents every key. */
#ifndef NETWALL_INTAKE_CONFIG_H
#define NETWALL_INTAKE_CONFIG_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/addr.h"
#include "core/daemon.h"
#include "core/log.h"

#define INTAKE_MAX_LIST 64   /* listeners, allow entries, route patterns per list */
#define INTAKE_PATTERN_MAX 16 /* "RDE^O11", "ADT", "*" */

enum intake_action { INTAKE_ACCEPT = 0, INTAKE_IGNORE, INTAKE_REJECT };
enum intake_client_certs { INTAKE_CERTS_OFF = 0, INTAKE_CERTS_OPTIONAL, INTAKE_CERTS_REQUIRED };

struct intake_rule {
	char pattern[INTAKE_PATTERN_MAX + 1]; /* "TYPE^TRIGGER", "TYPE" (any trigger) or "*" */
	enum intake_action action;
};

struct intake_config {
	char *file; /* the file it was loaded from: the reload's log line names it */
	struct addr listen[INTAKE_MAX_LIST];
	size_t nlisten;
	bool tls;
	char *cert, *key, *client_ca;
	int cert_line, key_line, ca_line;
	enum intake_client_certs client_certs;
	int tls_min; /* 12 or 13 */
	bool proxy;  /* a PROXY v1/v2 header is required at the start of every connection */
	struct addr_cidr proxy_from[INTAKE_MAX_LIST]; /* who may send a PROXY header */
	size_t nproxy_from;
	struct addr_cidr allow[INTAKE_MAX_LIST];
	size_t nallow;
	uint64_t max_per_source;  /* connections from one source, 0: no limit */
	uint64_t source_prefix_v4, source_prefix_v6; /* bits that make one source (32, 64) */
	uint64_t memory_budget;   /* bytes all connections may make the intake hold */
	bool reuse_reject; /* on_reused_control_id = reject: AR 205 instead of storing */
	char *store;
	uint64_t max_message;     /* bytes per MLLP frame */
	uint64_t max_connections; /* in all */
	uint64_t max_inflight;    /* frames read ahead of their ACK per connection */
	double idle_timeout;      /* no frame started for this long: close */
	double frame_timeout;     /* a frame partly received for this long: close */
	double write_timeout;     /* ACKs waiting and none taken by the peer for this long: close */
	char processing_ids[8];   /* accepted MSH-11.1 values, e.g. "PTD" */
	bool strict; /* refuse what is read leniently (a byte order mark, MSH-11 or MSH-12
		      * missing) with the AR it got before those were tolerated */
	/* routing: first matching rule wins; else default_action */
	struct intake_rule *rules;
	size_t nrules;
	enum intake_action default_action;
	/* delivery */
	char *url;
	char *token_file;
	char *deliver_ca;
	double deliver_timeout, connect_timeout, backoff_min, backoff_max, poll;
	uint64_t max_attempts, concurrency;
	bool browse; /* the message browser on the admin listener (intake/browse.c) */
	/* retention: delivered, ignored and rejected messages last changed longer ago than
	 * retain_days (0: kept), and the oldest of them while the stored messages' bytes pass
	 * retain_bytes (0: no bound), are removed by the pruning thread */
	double retain_days;
	uint64_t retain_bytes;
	struct daemon_conf d; /* admin, log level, user, filter */
	double drain_timeout;
};

/* Loads and validates. On error returns NULL and, if msgs is non-NULL, hands over a
 * malloc'd string of "file:line: message" lines. */
struct intake_config *intake_config_load(const char *file, char **msgs);
void intake_config_free(struct intake_config *c);

/* What the rules say about a message of type "TYPE^TRIGGER" (trigger may be empty). */
enum intake_action intake_config_route(const struct intake_config *c, const char *type,
				       const char *trigger);

/* Loads the TLS material as the daemon will. Returns 0, or -1 with msgs set. */
int intake_config_check_tls(const char *file, const struct intake_config *c, char **msgs);

#endif
