#include "core/lifecycle.h"

#include <signal.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/xalloc.h"

struct lifecycle {
	struct event_base *base;
	const struct lifecycle_ops *ops;
	void *arg;
	struct event *sig_term, *sig_int, *sig_hup, *drain_ev, *housekeeping;
	double deadline;
	bool draining;
};

static void lifecycle_on_drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct lifecycle *lc = arg;
	struct timeval tv = clock_tv(LIFECYCLE_DRAIN_TICK);
	bool idle = lc->ops->idle(lc->arg);

	(void)fd;
	(void)what;
	if (idle || clock_mono() >= lc->deadline) {
		log_info("event=stopped drained=%s", idle ? "yes" : "timeout");
		event_base_loopbreak(lc->base);
		return;
	}
	evtimer_add(lc->drain_ev, &tv);
}

void lifecycle_drain(struct lifecycle *lc, const char *why)
{
	double timeout;

	if (lc->draining)
		return;
	lc->draining = true;
	timeout = lc->ops->drain(lc->arg);
	log_info("event=draining %s timeout_s=%g", why, timeout);
	lc->deadline = clock_mono() + timeout;
	lifecycle_on_drain_tick(-1, 0, lc);
}

static void lifecycle_on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct lifecycle *lc = arg;

	(void)what;
	if (sig == SIGHUP) {
		if (lc->draining)
			log_warn("event=reload_ignored reason=draining");
		else
			lc->ops->reload(lc->arg);
		return;
	}
	lifecycle_drain(lc, sig == SIGTERM ? "signal=TERM" : "signal=INT");
}

static void lifecycle_on_housekeeping(evutil_socket_t fd, short what, void *arg)
{
	struct lifecycle *lc = arg;

	(void)fd;
	(void)what;
	if (lc->ops->housekeeping != NULL)
		lc->ops->housekeeping(lc->arg);
}

struct lifecycle *lifecycle_new(struct event_base *base, const struct lifecycle_ops *ops,
				void *arg)
{
	struct lifecycle *lc = xcalloc(1, sizeof(*lc));
	struct timeval tv = clock_tv(LOOP_HOUSEKEEPING);

	lc->base = base;
	lc->ops = ops;
	lc->arg = arg;
	lc->sig_term = evsignal_new(base, SIGTERM, lifecycle_on_signal, lc);
	lc->sig_int = evsignal_new(base, SIGINT, lifecycle_on_signal, lc);
	lc->sig_hup = evsignal_new(base, SIGHUP, lifecycle_on_signal, lc);
	lc->drain_ev = evtimer_new(base, lifecycle_on_drain_tick, lc);
	lc->housekeeping = event_new(base, -1, EV_PERSIST, lifecycle_on_housekeeping, lc);
	if (!lc->sig_term || !lc->sig_int || !lc->sig_hup || !lc->drain_ev || !lc->housekeeping)
		xalloc_fail("event");
	event_add(lc->sig_term, NULL);
	event_add(lc->sig_int, NULL);
	event_add(lc->sig_hup, NULL);
	event_add(lc->housekeeping, &tv);
	return lc;
}

void lifecycle_free(struct lifecycle *lc)
{
	if (lc == NULL)
		return;
	loop_free_event(&lc->sig_term);
	loop_free_event(&lc->sig_int);
	loop_free_event(&lc->sig_hup);
	loop_free_event(&lc->drain_ev);
	loop_free_event(&lc->housekeeping);
	free(lc);
}

bool lifecycle_draining(const struct lifecycle *lc)
{
	return lc != NULL && lc->draining;
}
