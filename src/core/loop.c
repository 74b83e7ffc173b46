#include "core/loop.h"

#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

#include "core/log.h"

struct event_base *loop_new(void)
{
	struct event_config *ec = event_config_new();
	struct event_base *base;
	struct rlimit rl;

	signal(SIGPIPE, SIG_IGN);
	/* Every visitor costs a descriptor on each side: use all the kernel allows us. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* Buffers come and go with every burst of traffic; left to itself glibc gives the top of
	 * the heap back and takes it again many times a second (brk and page faults on the hot
	 * path). Keep it, and give memory back from the housekeeping timer (loop_trim). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	if (ec == NULL)
		log_fatal("event=startup_failed error=\"cannot create event config\"");
	/* millisecond timers are plenty, and spare a timerfd_settime() per turn; the changelist
	 * folds a turn's interest changes per fd into at most one epoll_ctl (a stream that stops
	 * waiting for its connect and starts reading costs one call, not two). netwall never
	 * dup()s a socket it watches, which is the changelist's one caveat. */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (base == NULL)
		log_fatal("event=startup_failed error=\"cannot create event loop\"");
	return base;
}

void loop_free_event(struct event **ev)
{
	if (*ev != NULL)
		event_free(*ev);
	*ev = NULL;
}

void loop_trim(uint64_t live, uint64_t *peak)
{
	if (*peak >= 16 && live < *peak / 2) {
		malloc_trim(0);
		*peak = live;
	}
}
