#include "core/daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/clock.h"
#include "core/filter.h"
#include "core/handover.h"
#include "core/lifecycle.h"
#include "core/listener.h"
#include "core/loop.h"
#include "core/notify.h"
#include "core/tokens.h"
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
	tokens_free(d->admin_tokens);
	d->admin_tokens = NULL;
}

void daemon_conf_free(struct daemon_conf *d)
{
	daemon_token_free(d);
	free(d->user);
	d->user = NULL;
	free(d->handover);
	d->handover = NULL;
}

/* Reads the admin tokens from path. */
static struct tokens *daemon_read_tokens(struct conf *cf, const char *path)
{
	char err[PATH_MAX + 128];
	struct tokens *t = tokens_read(path, ADMIN_TOKEN_MIN, ADMIN_TOKEN_MAX, err, sizeof(err));

	if (t == NULL)
		conf_error(cf, "admin_token_file: %s", err);
	return t;
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
		d->admin_tokens = v[0] ? daemon_read_tokens(cf, path) : NULL;
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

/* ---- the role (daemon.h) ---- */

struct daemon {
	const struct daemon_role *r;
	const char *file;
	struct event_base *base;
	void *d;
	struct admin *admin;
	struct lifecycle *life;
	struct handover *ho;   /* listening for a process that takes over, or NULL */
	int take_conn;         /* taking over: the old process's connection, else -1 */
	struct event *take_ev; /* ... the check for ready */
	double take_deadline;
	int ready_fd; /* --detach: the waiting parent's pipe, told once we serve; else -1 */
	double taken_at; /* the old process: when the new one took the sockets */
};

/* The admin listener as the config says (off, an address, a token). */
static int daemon_admin(struct daemon *dm, const struct daemon_conf *c)
{
	char err[256];

	if (dm->admin == NULL && !c->admin_on)
		return 0;
	return admin_reconfigure(&dm->admin, dm->base, c->admin_on ? &c->admin : NULL,
				 c->admin_tokens, dm->r->admin, dm->d, err, sizeof(err));
}

static void daemon_reload(void *arg)
{
	struct daemon *dm = arg;
	char *msgs = NULL, *save = NULL, line[LOG_VALUE_SIZE(200)];
	void *cfg = dm->r->load(dm->file, &msgs);
	struct daemon_conf c;

	if (cfg == NULL) {
		/* the file's lines may quote anything it holds: escaped like a peer's value */
		for (char *l = msgs ? strtok_r(msgs, "\n", &save) : NULL; l;
		     l = strtok_r(NULL, "\n", &save))
			log_error("event=reload_failed error=%s", log_value(line, sizeof(line), l));
		free(msgs);
		if (dm->r->refresh != NULL)
			dm->r->refresh(dm->d);
		return;
	}
	/* apply may free cfg: what follows it is copied first */
	c = *dm->r->conf(cfg);
	c.admin_tokens = tokens_copy(c.admin_tokens);
	c.user = NULL;
	if (dm->r->apply(dm->d, cfg) == -1) {
		log_error("event=reload_failed error=\"kept the running configuration\"");
		dm->r->cfg_free(cfg);
	} else {
		/* only a reload applied whole moves the log level and the admin listener */
		log_set_level(c.log_level);
		daemon_admin(dm, &c); /* a failure is logged and leaves the admin listener off */
	}
	tokens_free(c.admin_tokens);
}

static double daemon_drain(void *arg)
{
	struct daemon *dm = arg;

	return dm->r->drain(dm->d);
}

static bool daemon_idle(void *arg)
{
	struct daemon *dm = arg;

	return dm->r->idle(dm->d);
}

static void daemon_housekeeping(void *arg)
{
	struct daemon *dm = arg;

	if (dm->r->housekeeping != NULL)
		dm->r->housekeeping(dm->d);
}

static const struct lifecycle_ops daemon_lifecycle_ops = {
	.reload = daemon_reload,
	.drain = daemon_drain,
	.idle = daemon_idle,
	.housekeeping = daemon_housekeeping,
};

#ifdef NETWALL_TEST_HOOKS
static void daemon_probe_cb(evutil_socket_t sig, short what, void *arg)
{
	const char *call = arg;

	log_warn("event=test_probe call=%s", call);
	filter_probe(call);
	log_warn("event=test_probe_returned call=%s", call);
}

/* Test build only: with NETWALL_TEST_FORBIDDEN_CALL=exec (or write), SIGUSR2 makes that call
 * (filter_probe): the test that the filter kills. The release binary has no such hook. */
static struct event *daemon_probe(struct event_base *base)
{
	const char *e = getenv("NETWALL_TEST_FORBIDDEN_CALL");
	struct event *ev;

	if (e == NULL || (strcmp(e, "exec") != 0 && strcmp(e, "write") != 0))
		return NULL;
	ev = evsignal_new(base, SIGUSR2, daemon_probe_cb, (void *)e);
	if (ev == NULL || evsignal_add(ev, NULL) == -1)
		xalloc_fail("event");
	return ev;
}
#else
static struct event *daemon_probe(struct event_base *base)
{
	(void)base;
	return NULL;
}
#endif

/* Loads the file and checks who runs it; the config, or NULL once the reason is printed.
 * What confining needs after binding (the user, the filter) is copied into run. */
static void *daemon_load(const struct daemon_role *r, const char *file, struct daemon_conf *run)
{
	char *msgs = NULL, err[256];
	void *cfg = r->load(file, &msgs);
	const struct daemon_conf *c;

	if (cfg == NULL) {
		fputs(msgs != NULL ? msgs : "out of memory\n", stderr);
		free(msgs);
		return NULL;
	}
	c = r->conf(cfg);
	log_set_level(c->log_level);
	if (daemon_check(c, err, sizeof(err)) == -1) {
		log_error("event=start_failed error=\"%s\"", err);
		r->cfg_free(cfg);
		return NULL;
	}
	*run = *c;
	run->admin_tokens = NULL;
	run->user = xstrdup(c->user); /* never stay root for want of memory */
	run->handover = c->handover != NULL ? xstrdup(c->handover) : NULL;
	return cfg;
}

/* ---- handover (core/handover.h) ---- */

/* Old process: the new one polls every socket. */
static void daemon_ho_taken(void *arg, size_t sockets)
{
	struct daemon *dm = arg;

	dm->taken_at = clock_mono();
	log_info("event=handover_started sockets=%zu", sockets);
	if (dm->r->handover_taken != NULL)
		dm->r->handover_taken(dm->d);
}

/* Old process: the new one serves; this one stops answering its admin address (the new
 * one holds the same socket) and drains as on SIGTERM. */
static void daemon_ho_serving(void *arg)
{
	struct daemon *dm = arg;

	admin_free(dm->admin);
	dm->admin = NULL;
	log_info("event=handover_done took_s=%.3f", clock_mono() - dm->taken_at);
	lifecycle_drain(dm->life, "reason=handover");
}

static void daemon_ho_aborted(void *arg, const char *why)
{
	struct daemon *dm = arg;

	log_warn("event=handover_aborted reason=%s (serving on as before)", why);
	if (dm->r->handover_aborted != NULL)
		dm->r->handover_aborted(dm->d);
}

static const struct handover_ops daemon_handover_ops = {
	.taken = daemon_ho_taken,
	.serving = daemon_ho_serving,
	.aborted = daemon_ho_aborted,
};

/* We serve: the service manager and a waiting parent (--detach) hear it. */
static void daemon_serving(struct daemon *dm)
{
	char state[64];

	snprintf(state, sizeof(state), "MAINPID=%ld\nREADY=1", (long)getpid());
	if (notify_send(state) == -1)
		log_warn("event=notify_failed error=\"%s\"", strerror(errno));
	if (dm->ready_fd != -1) {
		(void)!write(dm->ready_fd, "S", 1);
		close(dm->ready_fd);
		dm->ready_fd = -1;
	}
}

/* New process: serves once the role is ready, or HANDOVER_WAIT after taking over. */
static void daemon_take_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *dm = arg;
	struct timeval tv = clock_tv(LIFECYCLE_DRAIN_TICK);
	bool ready = dm->r->handover_ready == NULL || dm->r->handover_ready(dm->d);

	(void)fd;
	(void)what;
	if (!ready && clock_mono() < dm->take_deadline) {
		evtimer_add(dm->take_ev, &tv);
		return;
	}
	if (dm->r->handover_serve != NULL)
		dm->r->handover_serve(dm->d);
	daemon_serving(dm); /* the manager's main process changes before the old one goes */
	if (dm->ho != NULL)
		handover_pause(dm->ho, false); /* ours to hand over from now on */
	if (handover_send_serving(dm->take_conn) == -1)
		log_warn("event=takeover_serving ready=%s error=\"the old process did not hear it\"",
			 ready ? "yes" : "timeout");
	else
		log_info("event=takeover_serving ready=%s", ready ? "yes" : "timeout");
	dm->take_conn = -1;
}

/* New process, with --takeover: takes the old process's sockets. 0 (also when nobody
 * listens: a fresh start), or -1 once the reason is logged. */
static int daemon_take(struct daemon *dm, const struct daemon_conf *run)
{
	char err[256];
	int rc;

	if (run->handover == NULL) {
		log_error("event=start_failed error=\"--takeover needs handover = PATH\"");
		return -1;
	}
	rc = handover_take(run->handover, dm->r->name, &dm->take_conn, err, sizeof(err));
	if (rc == -1)
		log_error("event=start_failed error=\"%s\"", err);
	else if (rc == 0)
		log_info("event=takeover_none (nobody listens on the handover socket: a fresh "
			 "start)");
	return rc == -1 ? -1 : 0;
}

/* Once built: closes what the new config does not listen on, holds, tells the old process
 * TAKEN; then listens for the next takeover. 0, or -1 once the reason is logged. */
static int daemon_handover(struct daemon *dm, const struct daemon_conf *run)
{
	char err[256];
	struct timeval tv = clock_tv(LIFECYCLE_DRAIN_TICK);

	if (dm->take_conn != -1) {
		size_t unused = listener_adopted_close();
		if (dm->r->handover_hold != NULL)
			dm->r->handover_hold(dm->d);
		if (handover_send_taken(dm->take_conn) == -1) {
			log_error("event=start_failed error=\"handover: the old process went away\"");
			return -1;
		}
		log_info("event=takeover_taken unused_closed=%zu", unused);
		dm->take_deadline = clock_mono() + HANDOVER_WAIT;
		dm->take_ev = evtimer_new(dm->base, daemon_take_tick, dm);
		if (dm->take_ev == NULL || evtimer_add(dm->take_ev, &tv) == -1)
			xalloc_fail("event");
	}
	if (run->handover == NULL)
		return 0;
	dm->ho = handover_new(dm->base, run->handover, dm->r->name, &daemon_handover_ops, dm,
			      err, sizeof(err));
	if (dm->ho == NULL) {
		log_error("event=start_failed error=\"%s\"", err);
		return -1;
	}
	if (dm->take_conn != -1)
		handover_pause(dm->ho, true);
	return 0;
}

/* Runs the loop of a daemon built and served; returns its exit status. */
static int daemon_loop(struct daemon *dm, const struct daemon_conf *run)
{
	char err[256];
	struct event *probe;
	int rc;

	if (daemon_confine(run, dm->r->name, err, sizeof(err)) == -1) {
		log_error("event=start_failed error=\"%s\"", err);
		return 1;
	}
	log_info("event=confined user=%s seccomp=%s", run->user ? run->user : "(unchanged)",
		 run->seccomp ? "on" : "off");
	probe = daemon_probe(dm->base);
	dm->life = lifecycle_new(dm->base, &daemon_lifecycle_ops, dm);
	if (dm->take_conn == -1)
		daemon_serving(dm);
	event_base_dispatch(dm->base);
	rc = dm->r->status != NULL ? dm->r->status(dm->d) : 0;
	if (probe != NULL)
		event_free(probe);
	return rc;
}

/* --detach: the parent waits for the child to serve (exit 0) or fail (exit 1); the child
 * returns with dm->ready_fd to tell it. Before anything else is opened. */
static int daemon_detach(struct daemon *dm)
{
	int p[2];
	char c = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1 || (pid = fork()) == -1) {
		fprintf(stderr, "netwall: cannot detach: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		close(p[0]);
		dm->ready_fd = p[1];
		return -1;
	}
	close(p[1]);
	do
		n = read(p[0], &c, 1);
	while (n == -1 && errno == EINTR);
	return n == 1 && c == 'S' ? 0 : 1;
}

int daemon_run(const struct daemon_role *r, const char *file, unsigned flags)
{
	struct daemon dm = { .r = r, .file = file, .take_conn = -1, .ready_fd = -1 };
	struct daemon_conf run = { 0 };
	void *cfg;
	int rc = 1;

	if ((flags & DAEMON_DETACH) && (rc = daemon_detach(&dm)) != -1)
		return rc;
	rc = 1;
	log_init(r->name, LOG_INFO);
	dm.base = loop_new();
	cfg = daemon_load(r, file, &run);
	if (cfg != NULL && (flags & DAEMON_TAKEOVER) && daemon_take(&dm, &run) == -1) {
		r->cfg_free(cfg);
		cfg = NULL;
	}
	/* the daemon keeps its config while it runs: its shared part stays readable */
	if (cfg != NULL && (dm.d = r->new(dm.base, cfg)) != NULL &&
	    daemon_admin(&dm, r->conf(cfg)) == 0 && daemon_handover(&dm, &run) == 0)
		rc = daemon_loop(&dm, &run);
	listener_adopted_close();
	loop_free_event(&dm.take_ev);
	if (dm.take_conn != -1)
		close(dm.take_conn);
	handover_free(dm.ho);
	if (dm.ready_fd != -1)
		close(dm.ready_fd);
	admin_free(dm.admin);
	lifecycle_free(dm.life);
	if (dm.d != NULL)
		r->free(dm.d);
	daemon_conf_free(&run);
	event_base_free(dm.base);
	return rc;
}
