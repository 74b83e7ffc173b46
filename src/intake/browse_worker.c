/* The message browser's worker thread (intake/browse_worker.h). */
#include "intake/browse_worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "intake/store.h"

#define BROWSE_WORKER_NUDGE_MS 100 /* between interrupts of a stopping worker's store */

struct browse_worker {
	char *spec;
	struct store *store; /* the thread's; set under lock, for browse_worker_free's interrupt */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_cond_t gone; /* the thread is leaving (exited) */
	bool exited;
	/* under lock */
	struct browse_job *queue, *queue_tail; /* submitted, not yet taken */
	struct browse_job *done, *done_tail;   /* run (or skipped), done not yet called */
	size_t queued;
	bool stop;

	int efd;
	struct event *ev;
};

/* The worker's connection, opened now if it is not open (worker thread). */
static struct store *browse_worker_store(struct browse_worker *w)
{
	char err[512], line[LOG_VALUE_SIZE(200)];

	struct store *s;

	if (w->store == NULL) {
		s = store_open(w->spec, err, sizeof(err));
		if (s == NULL)
			log_warn("event=browse_failed what=open error=%s",
				 log_value(line, sizeof(line), err));
		pthread_mutex_lock(&w->lock);
		w->store = s;
		pthread_mutex_unlock(&w->lock);
	}
	return w->store;
}

static void *browse_worker_main(void *arg)
{
	struct browse_worker *w = arg;
	struct browse_job *j;
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->queue == NULL && !w->stop)
			pthread_cond_wait(&w->wake, &w->lock);
		if (w->stop)
			break; /* what is still queued is answered by browse_worker_free */
		j = w->queue;
		w->queue = j->next;
		if (w->queue == NULL)
			w->queue_tail = NULL;
		w->queued--;
		pthread_mutex_unlock(&w->lock);
		/* a job that waited past its requester's patience is not worth the store's time */
		j->ran = clock_mono() - j->queued_at <= j->max_wait;
		if (j->ran)
			j->run(j, browse_worker_store(w));
		pthread_mutex_lock(&w->lock);
		j->next = NULL;
		if (w->done_tail != NULL)
			w->done_tail->next = j;
		else
			w->done = j;
		w->done_tail = j;
		while (write(w->efd, &one, sizeof(one)) == -1 && errno == EINTR)
			; /* EAGAIN: the counter is far from zero, the loop will wake */
	}
	w->exited = true;
	pthread_cond_signal(&w->gone);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/* Calls the done callback of every finished job, in order (loop thread). */
static void browse_worker_run_done(struct browse_worker *w)
{
	struct browse_job *j, *next;

	pthread_mutex_lock(&w->lock);
	j = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	for (; j != NULL; j = next) {
		next = j->next; /* done frees j */
		j->done(j, j->ran);
	}
}

static void browse_worker_on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t v;

	(void)what;
	while (read(fd, &v, sizeof(v)) == -1 && errno == EINTR)
		;
	browse_worker_run_done(arg);
}

struct browse_worker *browse_worker_new(struct event_base *base, const char *spec, char *err,
					size_t errlen)
{
	struct browse_worker *w = xcalloc(1, sizeof(*w));
	pthread_condattr_t mono;
	sigset_t all, old;
	int rc;

	w->spec = xstrdup(spec);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, browse_worker_on_eventfd, w);
	if (w->ev == NULL || event_add(w->ev, NULL) == -1) {
		snprintf(err, errlen, "cannot watch the browser's eventfd");
		goto fail;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	pthread_condattr_init(&mono);
	pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
	pthread_cond_init(&w->gone, &mono);
	pthread_condattr_destroy(&mono);
	/* signals stay with the loop thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, browse_worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "browser thread: %s", strerror(rc));
		pthread_cond_destroy(&w->gone);
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		goto fail;
	}
	return w;
fail:
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->efd != -1)
		close(w->efd);
	free(w->spec);
	free(w);
	return NULL;
}

bool browse_worker_full(struct browse_worker *w)
{
	bool full;

	pthread_mutex_lock(&w->lock);
	full = w->queued >= BROWSE_WORKER_QUEUE;
	pthread_mutex_unlock(&w->lock);
	return full;
}

int browse_worker_submit(struct browse_worker *w, struct browse_job *j)
{
	int rc = -1;

	j->next = NULL;
	j->ran = false;
	j->queued_at = clock_mono();
	pthread_mutex_lock(&w->lock);
	if (w->queued < BROWSE_WORKER_QUEUE) {
		if (w->queue_tail != NULL)
			w->queue_tail->next = j;
		else
			w->queue = j;
		w->queue_tail = j;
		w->queued++;
		pthread_cond_signal(&w->wake);
		rc = 0;
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void browse_worker_free(struct browse_worker *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	/* a job on a store that does not answer would hold the stop to the store's own bound
	 * (PostgreSQL's statement_timeout, 30 s): its call is interrupted, and again each
	 * BROWSE_WORKER_NUDGE_MS in case the next call had not begun */
	while (!w->exited) {
		struct timespec ts;

		if (w->store != NULL)
			store_interrupt(w->store);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += BROWSE_WORKER_NUDGE_MS * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&w->gone, &w->lock, &ts);
	}
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	/* the jobs never taken join the finished ones, unrun */
	if (w->queue != NULL) {
		if (w->done_tail != NULL)
			w->done_tail->next = w->queue;
		else
			w->done = w->queue;
		w->done_tail = w->queue_tail;
		w->queue = w->queue_tail = NULL;
	}
	browse_worker_run_done(w);
	event_free(w->ev);
	close(w->efd);
	store_close(w->store);
	pthread_cond_destroy(&w->gone);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w->spec);
	free(w);
}
