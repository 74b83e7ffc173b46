/* What every daemon's main section shares ([gateway], [agent], [intake], [chat]): its admin
 * listener, its log level, and how it runs: the user it switches to after binding, whether it
 * may stay root, and its system call filter. */
#ifndef NETWALL_DAEMON_H
#define NETWALL_DAEMON_H

#include <stdbool.h>

#include "core/addr.h"
#include "core/conf.h"
#include "core/log.h"

#define DAEMON_TOKEN_MIN 16   /* admin token bytes, at least */
#define DAEMON_TOKEN_MAX 1024 /* and at most */

struct daemon_conf {
	bool admin_on;
	struct addr admin;
	char *admin_token; /* the token from admin_token_file, or NULL: no token asked */
	enum log_level log_level;
	char *user;      /* switch to this user once bound; NULL: stay as started */
	bool allow_root; /* may run as root without user (also NETWALL_ALLOW_ROOT=1) */
	bool seccomp;    /* install the system call filter (default yes) */
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

#endif
