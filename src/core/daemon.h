/* What every daemon's main section shares ([gateway], [agent], [intake], [chat]): its admin
 * listener, its log level, and how it runs: the user it switches to after binding, whether it
 * may stay root, and its system call filter. */
#ifndef NETWALL_DAEMON_H
#define NETWALL_DAEMON_H

#include <stdbool.h>

#include "core/addr.h"
#include "core/admin.h"
#include "core/conf.h"
#include "core/log.h"

struct daemon_conf {
	bool admin_on;
	struct addr admin;
	struct tokens *admin_tokens; /* from admin_token_file (core/tokens.h), or NULL: none asked */
	enum log_level log_level;
	char *user;      /* switch to this user once bound; NULL: stay as started */
	bool allow_root; /* may run as root without user (also NETWALL_ALLOW_ROOT=1) */
	bool seccomp;    /* install the system call filter (default yes) */
	char *handover;  /* the handover socket's path (core/handover.h), or NULL: none */
};

/* Defaults: admin on admin_addr (a literal that parses), log level info, seccomp on. */
void daemon_conf_defaults(struct daemon_conf *d, const char *admin_addr);
void daemon_conf_free(struct daemon_conf *d);

/* Handles the shared keys: admin, admin_token_file, log_level, user, allow_root, seccomp.
 * Returns 1 if key was one of them (errors reported through conf_error), else 0. */
int daemon_conf_key(struct conf *cf, struct daemon_conf *d, const char *key, const char *v);

/* Before binding: refuses root without user or allow_root, and resolves user. Returns 0, or
 * -1 with a one-line reason in err. */
int daemon_check(const struct daemon_conf *d, char *err, size_t errlen);

/* After binding and opening files: switches to d->user (groups, gid, uid, no way back) and
 * installs the system call filter for role ("gateway", "agent", "intake", "chat"). Returns
 * 0, or -1 with err filled. */
int daemon_confine(const struct daemon_conf *d, const char *role, char *err, size_t errlen);

/* ---- the role ----
 * What differs between the four daemons; daemon_run does the rest, the same for all: load
 * the file, refuse root, build the daemon, serve its admin listener, confine the process,
 * run the loop, reload on SIGHUP (the role applies the file; only then do the log level
 * and the admin listener follow it), drain on SIGTERM/SIGINT, free. */
struct daemon_role {
	const char *name; /* "gateway", "agent", "intake", "chat": log role and filter role */
	/* Loads file: the config, or NULL with one message per line in *msgs (malloc'd). */
	void *(*load)(const char *file, char **msgs);
	struct daemon_conf *(*conf)(void *cfg); /* the config's shared part */
	void (*cfg_free)(void *cfg);
	/* Builds the daemon on base from cfg, which it owns from then on, even on failure, and
	 * keeps while it runs; NULL once the reason is logged. */
	void *(*new)(struct event_base *base, void *cfg);
	/* Applies a reloaded cfg: 0 once the daemon owns it, -1 (reason logged) when the
	 * running configuration stays and cfg is the caller's. The log level and the admin
	 * listener follow the new file only after apply returns 0. */
	int (*apply)(void *d, void *cfg);
	/* On SIGHUP with a file that does not load: rereads what lives outside the file (the
	 * chat's accounts); may be NULL. */
	void (*refresh)(void *d);
	/* Stops taking new work; returns how long the work in hand may take, in seconds. */
	double (*drain)(void *d);
	bool (*idle)(void *d);             /* nothing left to finish */
	void (*housekeeping)(void *d);     /* every LOOP_HOUSEKEEPING seconds; may be NULL */
	int (*status)(void *d);            /* the exit status once the loop ends; may be NULL */
	void (*free)(void *d);
	const struct admin_ops *admin;     /* the admin listener's views (arg: the daemon) */
	/* Handover (core/handover.h); NULL where the step needs nothing of the role. The old
	 * process: the new one polls every socket now (taken), or went away before it served
	 * (aborted: take everything back). The new process, built on the sockets it took:
	 * hold (take no visitors yet), ready (polled until true or HANDOVER_WAIT), serve. */
	void (*handover_taken)(void *d);
	void (*handover_aborted)(void *d);
	void (*handover_hold)(void *d);
	bool (*handover_ready)(void *d);
	void (*handover_serve)(void *d);
};

enum daemon_flags {
	DAEMON_TAKEOVER = 1 << 0, /* first take the sockets of the daemon on the handover path */
	DAEMON_DETACH = 1 << 1,   /* run in a child; return once it serves (systemd ExecReload) */
};

/* Runs role r from config file to exit (flags: enum daemon_flags). Tells the service
 * manager when it serves (core/notify.h: READY=1, and MAINPID after a takeover). Returns
 * the exit status. */
int daemon_run(const struct daemon_role *r, const char *file, unsigned flags);

#endif
