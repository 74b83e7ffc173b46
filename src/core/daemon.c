#include "core/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/filter.h"
#include "core/secret.h"
#include "core/xalloc.h"

void daemon_conf_defaults(struct daemon_conf *d, const char *admin_addr)
{
	char err[128];

	memset(d, 0, sizeof(*d));
	d->admin_on = true;
	addr_parse(admin_addr, &d->admin, err, sizeof(err));
	d->log_level = LOG_INFO;
	d->seccomp = true;
}

static void daemon_token_free(struct daemon_conf *d)
{
	secret_free(d->admin_token);
	d->admin_token = NULL;
}

void daemon_conf_free(struct daemon_conf *d)
{
	daemon_token_free(d);
	free(d->user);
	d->admin_token = NULL;
	d->user = NULL;
}

/* Reads the admin token from path. */
static char *daemon_read_token(struct conf *cf, const char *path)
{
	char err[PATH_MAX + 128];
	char *tok = secret_read_token(path, DAEMON_TOKEN_MIN, DAEMON_TOKEN_MAX, err, sizeof(err));

	if (tok == NULL)
		conf_error(cf, "admin_token_file: %s", err);
	return tok;
}

int daemon_conf_key(struct conf *cf, struct daemon_conf *d, const char *key, const char *v)
{
	char err[300];

	if (strcmp(key, "admin") == 0) {
		d->admin_on = strcmp(v, "off") != 0;
		if (d->admin_on && addr_parse(v, &d->admin, err, sizeof(err)) == -1)
			conf_error(cf, "admin: %s", err);
	} else if (strcmp(key, "admin_token_file") == 0) {
		char *path = conf_path(cf, v);
		daemon_token_free(d);
		d->admin_token = v[0] ? daemon_read_token(cf, path) : NULL;
		if (v[0] == '\0')
			conf_error(cf, "admin_token_file: empty value (want a file path)");
		free(path);
	} else if (strcmp(key, "log_level") == 0) {
		if (log_level_parse(v, &d->log_level) == -1)
			conf_error(cf, "log_level: want debug, info, warn or error, got '%s'", v);
	} else if (strcmp(key, "user") == 0) {
		free(d->user);
		d->user = NULL;
		if (v[0] == '\0' || strlen(v) > 32)
			conf_error(cf, "user: want a user name, got '%s'", v);
		else
			d->user = xstrdup(v);
	} else if (strcmp(key, "allow_root") == 0) {
		if (conf_bool(v, &d->allow_root) == -1)
			conf_error(cf, "allow_root: want yes or no, got '%s'", v);
	} else if (strcmp(key, "seccomp") == 0) {
		if (conf_bool(v, &d->seccomp) == -1)
			conf_error(cf, "seccomp: want yes or no, got '%s'", v);
	} else {
		return 0;
	}
	return 1;
}

static bool daemon_env_allows_root(void)
{
	const char *e = getenv("NETWALL_ALLOW_ROOT");

	return e != NULL && strcmp(e, "1") == 0;
}

int daemon_check(const struct daemon_conf *d, char *err, size_t errlen)
{
	struct passwd *pw;

	if (d->user == NULL) {
		if (geteuid() == 0 && !d->allow_root && !daemon_env_allows_root()) {
			snprintf(err, errlen,
				 "refusing to run as root: set user = NAME to switch to after "
				 "binding, or allow_root = yes");
			return -1;
		}
		return 0;
	}
	errno = 0;
	pw = getpwnam(d->user);
	if (pw == NULL) {
		snprintf(err, errlen, "user: no such user '%s'", d->user);
		return -1;
	}
	if (geteuid() != 0 && geteuid() != pw->pw_uid) {
		snprintf(err, errlen, "user = %s: switching users needs to be started as root",
			 d->user);
		return -1;
	}
	if (pw->pw_uid == 0 && !d->allow_root && !daemon_env_allows_root()) {
		snprintf(err, errlen, "user = %s is root: set allow_root = yes to run as root",
			 d->user);
		return -1;
	}
	return 0;
}

static int daemon_switch_user(const char *name, char *err, size_t errlen)
{
	struct passwd *pw = getpwnam(name);

	if (pw == NULL) {
		snprintf(err, errlen, "user: no such user '%s'", name);
		return -1;
	}
	if (geteuid() == pw->pw_uid && getuid() == pw->pw_uid)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		snprintf(err, errlen, "user = %s: cannot switch: %s", name, strerror(errno));
		return -1;
	}
	/* no way back */
	if (pw->pw_uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
		snprintf(err, errlen, "user = %s: root could be regained", name);
		return -1;
	}
	return 0;
}

int daemon_confine(const struct daemon_conf *d, const char *role, char *err, size_t errlen)
{
	if (d->user != NULL && daemon_switch_user(d->user, err, errlen) == -1)
		return -1;
	if (d->seccomp && filter_install(role, err, errlen) == -1)
		return -1;
	return 0;
}
