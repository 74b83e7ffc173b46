/* Password checks on a worker thread: one thread, at most AUTH_QUEUE_MAX jobs in two FIFOs
 * (known accounts' checks first, then the rest), finished jobs handed back to the loop
 * through an eventfd. */
#include "chat/auth.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/xalloc.h"

struct auth {
	struct event_base *base;
	void (*done)(struct auth_job *, void *);
	void *arg;
	int efd;
	struct event *ev;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct auth_job *first, *first_tail; /* under lock: known accounts' checks, run first */
	struct auth_job *todo, *todo_tail;   /* under lock: the others (decoys, REGISTER) */
	struct auth_job *finished;           /* under lock, newest first */
	bool stop;                           /* under lock */
	size_t pending;                      /* loop thread only: submitted, not yet done */
};

struct auth_job *auth_job_new(void)
{
	struct auth_job *j = xcalloc(1, sizeof(*j));

	return j;
}

void auth_job_free(struct auth_job *job)
{
	if (job == NULL)
		return;
	free(job->accounts);
	OPENSSL_cleanse(job, sizeof(*job));
	free(job);
}

/* REGISTER on the worker: refuse an existing account, store the new one, read the file
 * again for the loop. The worker is the only writer of the file in the server. */
static void run_register(struct auth_job *j)
{
	struct passwd_account *list = NULL;
	size_t n = 0;

	if (passwd_load(j->file, &list, &n, j->err, sizeof(j->err)) == -1) {
		j->result = AUTH_ERROR;
		return;
	}
	if (passwd_find(list, n, j->name) != NULL) {
		free(list);
		j->result = AUTH_EXISTS;
		return;
	}
	free(list);
	if (passwd_set(j->file, j->name, j->password, j->len, j->err, sizeof(j->err)) == -1 ||
	    passwd_load(j->file, &j->accounts, &j->naccounts, j->err, sizeof(j->err)) == -1) {
		j->result = AUTH_ERROR;
		return;
	}
	j->result = AUTH_OK;
}

static void run_job(struct auth_job *j)
{
	if (j->kind == AUTH_REGISTER)
		run_register(j);
	else
		j->result = passwd_verify(j->password, j->len, j->encoded) ? AUTH_OK : AUTH_FAILED;
	OPENSSL_cleanse(j->password, sizeof(j->password));
}

static void *auth_main(void *arg)
{
	struct auth *a = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct auth_job *j;

		while (a->first == NULL && a->todo == NULL && !a->stop)
			pthread_cond_wait(&a->wake, &a->lock);
		if (a->stop)
			break;
		if (a->first != NULL) {
			j = a->first;
			a->first = j->next;
			if (a->first == NULL)
				a->first_tail = NULL;
		} else {
			j = a->todo;
			a->todo = j->next;
			if (a->todo == NULL)
				a->todo_tail = NULL;
		}
		pthread_mutex_unlock(&a->lock);
		run_job(j);
		pthread_mutex_lock(&a->lock);
		j->next = a->finished;
		a->finished = j;
		if (write(a->efd, &one, sizeof(one)) == -1 && errno != EAGAIN)
			abort(); /* an eventfd write fails only when the counter is full */
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* On the loop: hands the finished jobs, oldest first, to done. */
static void auth_on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	struct auth *a = arg;
	struct auth_job *list, *rev = NULL;
	uint64_t n;

	if (read(a->efd, &n, sizeof(n)) == -1 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&a->lock);
	list = a->finished;
	a->finished = NULL;
	pthread_mutex_unlock(&a->lock);
	while (list != NULL) {
		struct auth_job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev != NULL) {
		struct auth_job *next = rev->next;
		a->pending--;
		rev->next = NULL;
		a->done(rev, a->arg);
		rev = next;
	}
}

struct auth *auth_new(struct event_base *base, void (*done)(struct auth_job *, void *), void *arg,
		      char *err, size_t errlen)
{
	struct auth *a = xcalloc(1, sizeof(*a));
	sigset_t all, old;
	int rc;

	a->base = base;
	a->done = done;
	a->arg = arg;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd == -1) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		free(a);
		return NULL;
	}
	a->ev = event_new(base, a->efd, EV_READ | EV_PERSIST, auth_on_eventfd, a);
	if (a->ev == NULL || event_add(a->ev, NULL) == -1)
		xalloc_fail("event"); /* a new event on a new eventfd: only memory fails */
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	sigfillset(&all); /* signals stay with the loop thread */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a->thread, NULL, auth_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "password thread: %s", strerror(rc));
		event_free(a->ev);
		close(a->efd);
		pthread_cond_destroy(&a->wake);
		pthread_mutex_destroy(&a->lock);
		free(a);
		return NULL;
	}
	return a;
}

int auth_submit(struct auth *a, struct auth_job *job)
{
	if (a->pending >= AUTH_QUEUE_MAX)
		return -1;
	a->pending++;
	job->next = NULL;
	pthread_mutex_lock(&a->lock);
	if (job->known) {
		if (a->first_tail != NULL)
			a->first_tail->next = job;
		else
			a->first = job;
		a->first_tail = job;
	} else {
		if (a->todo_tail != NULL)
			a->todo_tail->next = job;
		else
			a->todo = job;
		a->todo_tail = job;
	}
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	return 0;
}

size_t auth_pending(const struct auth *a)
{
	return a != NULL ? a->pending : 0;
}

static void drop_list(struct auth_job *j)
{
	while (j != NULL) {
		struct auth_job *next = j->next;
		auth_job_free(j);
		j = next;
	}
}

void auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	pthread_mutex_lock(&a->lock);
	a->stop = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);
	drop_list(a->first);
	drop_list(a->todo);
	drop_list(a->finished);
	event_free(a->ev);
	close(a->efd);
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	free(a);
}
