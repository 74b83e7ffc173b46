/* The one acceptor (see listener.h). */
#include "core/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/loop.h"
#include "core/sock.h"
#include "core/xalloc.h"

#define LISTENER_BUCKETS_MIN 64

const char *const listener_reason_names[LISTENER_REASONS] = {
	"not_allowed", "max_connections", "max_per_source", "refused", "first_byte_timeout"
};

struct listener_src {
	struct listener_src *next; /* in its bucket */
	uint8_t key[17];           /* family, then the network's bytes (host bits zero) */
	unsigned count;
};

struct listener_set {
	const char *event; /* a static string */
	char *name;
	struct listener_limits lim;
	struct addr_cidr allow[LISTENER_ALLOW_MAX];
	struct listener_src **buckets;
	size_t nbuckets; /* a power of two */
	struct listener_stats st;
	struct log_rate rate;
};

/* An admitted connection waiting for its first byte (first_byte_timeout). */
struct listener_wait {
	struct listener *l;
	struct listener_wait *prev, *next;
	struct event *ev;
	int fd;
	struct sockaddr_storage ss;
	struct listener_src *src;
};

struct listener {
	struct event_base *base;
	struct listener_wait *waits;
	struct listener_set *set;
	listener_accept_fn *accept;
	listener_refuse_fn *refuse;
	void *arg;
	struct addr a;
	int fd;
	bool on;
	struct event *ev, *pause;
	struct listener *prev_all, *next_all; /* every listener of the process */
};

/* Every listener of the process, for listener_each(); adopted sockets not yet taken. */
static struct listener *listener_all;
static struct listener_adopted {
	int fd;
	struct addr a;
} listener_adopted[LISTENER_ADOPT_MAX];
static size_t listener_nadopted;

/* ---- the per-source table ---- */

/* The source network of sa as a key: IPv4 (also IPv4-mapped IPv6) cut to v4 bits, IPv6 to
 * v6 bits. */
static void listener_key(const struct listener_set *set, const struct sockaddr *sa,
			 uint8_t key[17])
{
	const uint8_t *p;
	unsigned bits, len;

	memset(key, 0, 17);
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(in6)) {
			p = in6->s6_addr + 12;
			len = 4;
		} else {
			p = in6->s6_addr;
			len = 16;
		}
	} else if (sa->sa_family == AF_INET) {
		p = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else {
		return; /* Unix sockets: one source */
	}
	bits = len == 4 ? set->lim.v4_prefix : set->lim.v6_prefix;
	key[0] = (uint8_t)len;
	for (unsigned i = 0; i < len && bits > 0; i++, bits = bits > 8 ? bits - 8 : 0)
		key[1 + i] = bits >= 8 ? p[i] : (uint8_t)(p[i] & (0xff00u >> bits));
}

/* FNV-1a over the key: sources are peer-chosen, but a bucket's chain is bounded by the
 * set's connections, so a crafted collision costs a scan of at most max_connections. */
static size_t listener_hash(const uint8_t key[17], size_t nbuckets)
{
	uint32_t h = 2166136261u;

	for (int i = 0; i < 17; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (nbuckets - 1);
}

static void listener_grow(struct listener_set *set)
{
	size_t n = set->nbuckets * 2;
	struct listener_src **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < set->nbuckets; i++) {
		struct listener_src *s = set->buckets[i], *next;
		for (; s != NULL; s = next) {
			size_t h = listener_hash(s->key, n);
			next = s->next;
			s->next = b[h];
			b[h] = s;
		}
	}
	free(set->buckets);
	set->buckets = b;
	set->nbuckets = n;
}

static struct listener_src *listener_src_find(struct listener_set *set, const uint8_t key[17],
					      bool create)
{
	size_t h = listener_hash(key, set->nbuckets);
	struct listener_src *s;

	for (s = set->buckets[h]; s != NULL; s = s->next)
		if (memcmp(s->key, key, 17) == 0)
			return s;
	if (!create)
		return NULL;
	if (set->st.sources >= set->nbuckets) {
		listener_grow(set);
		h = listener_hash(key, set->nbuckets);
	}
	s = xcalloc(1, sizeof(*s));
	memcpy(s->key, key, 17);
	s->next = set->buckets[h];
	set->buckets[h] = s;
	set->st.sources++;
	return s;
}

static void listener_src_drop(struct listener_set *set, struct listener_src *src)
{
	size_t h = listener_hash(src->key, set->nbuckets);
	struct listener_src **pp = &set->buckets[h];

	while (*pp != NULL && *pp != src)
		pp = &(*pp)->next;
	if (*pp == NULL)
		abort(); /* broken invariant: a reference to a source the set does not hold */
	*pp = src->next;
	set->st.sources--;
	free(src);
}

/* ---- sets ---- */

struct listener_set *listener_set_new(const char *event, const char *name,
				     const struct listener_limits *lim)
{
	struct listener_set *set = xcalloc(1, sizeof(*set));

	set->name = xstrdup(name);
	set->event = event;
	set->nbuckets = LISTENER_BUCKETS_MIN;
	set->buckets = xcalloc(set->nbuckets, sizeof(*set->buckets));
	listener_set_limits(set, lim);
	return set;
}

void listener_set_limits(struct listener_set *set, const struct listener_limits *lim)
{
	size_t n = lim->nallow < LISTENER_ALLOW_MAX ? lim->nallow : LISTENER_ALLOW_MAX;

	set->lim = *lim;
	if (set->lim.v4_prefix == 0 || set->lim.v4_prefix > 32)
		set->lim.v4_prefix = LISTENER_V4_PREFIX;
	if (set->lim.v6_prefix == 0 || set->lim.v6_prefix > 128)
		set->lim.v6_prefix = LISTENER_V6_PREFIX;
	if (n > 0)
		memcpy(set->allow, lim->allow, n * sizeof(*lim->allow));
	set->lim.allow = set->allow;
	set->lim.nallow = n;
}

void listener_set_free(struct listener_set *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->nbuckets; i++) {
		struct listener_src *s = set->buckets[i], *next;
		for (; s != NULL; s = next) {
			next = s->next;
			free(s);
		}
	}
	free(set->buckets);
	free(set->name);
	free(set);
}

void listener_set_release(struct listener_set *set, struct listener_src *src)
{
	if (src == NULL)
		return;
	if (src->count == 0 || set->st.open == 0)
		abort(); /* released twice */
	set->st.open--;
	if (--src->count == 0)
		listener_src_drop(set, src);
}

static void listener_log_refusal(struct listener_set *set, const struct sockaddr *sa,
				 const char *why)
{
	char peer[ADDR_STRLEN];

	addr_format(sa, peer, sizeof(peer));
	log_limited(&set->rate, LOG_WARN, "event=%s %s peer=%s reason=%s", set->event, set->name,
		    peer, why);
}

void listener_set_refuse(struct listener_set *set, struct listener_src *src,
			 const struct sockaddr *sa, const char *why)
{
	set->st.refused[LISTENER_REFUSED_BY_OWNER]++;
	set->st.accepted--;
	listener_set_release(set, src);
	listener_log_refusal(set, sa, why);
}

const struct listener_stats *listener_set_stats(const struct listener_set *set)
{
	return &set->st;
}

unsigned listener_src_count(const struct listener_src *src)
{
	return src->count;
}

struct listener_src *listener_set_admit(struct listener_set *set, const struct sockaddr *sa,
				       enum listener_reason *why)
{
	const struct listener_limits *lim = &set->lim;
	uint8_t key[17];
	struct listener_src *src;
	bool allowed = lim->nallow == 0;

	for (size_t i = 0; i < lim->nallow && !allowed; i++)
		allowed = addr_cidr_match(&lim->allow[i], sa);
	if (!allowed) {
		*why = LISTENER_NOT_ALLOWED;
		goto refused;
	}
	if (lim->max_connections != 0 && set->st.open >= lim->max_connections) {
		*why = LISTENER_MAX_CONNECTIONS;
		goto refused;
	}
	listener_key(set, sa, key);
	src = listener_src_find(set, key, lim->max_per_source == 0);
	if (src != NULL && lim->max_per_source != 0 && src->count >= lim->max_per_source) {
		*why = LISTENER_MAX_PER_SOURCE;
		goto refused;
	}
	if (src == NULL)
		src = listener_src_find(set, key, true);
	src->count++;
	set->st.open++;
	set->st.accepted++;
	return src;
refused:
	set->st.refused[*why]++;
	return NULL;
}

/* ---- listeners ---- */

static void listener_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	if (l->on)
		event_add(l->ev, NULL);
}

static void listener_wait_free(struct listener_wait *w)
{
	struct listener *l = w->l;

	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		l->waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	loop_free_event(&w->ev);
	free(w);
}

/* The first byte came (or the peer's EOF, which the owner sees on its first read), or the
 * timeout did. */
static void listener_on_first(evutil_socket_t fd, short what, void *arg)
{
	struct listener_wait *w = arg;
	struct listener *l = w->l;
	struct listener_set *set = l->set;
	struct sockaddr_storage ss = w->ss;
	struct listener_src *src = w->src;

	listener_wait_free(w);
	if (what & EV_TIMEOUT) {
		set->st.accepted--;
		set->st.refused[LISTENER_FIRST_BYTE_TIMEOUT]++;
		listener_set_release(set, src);
		if (l->refuse != NULL)
			l->refuse(l->arg, (struct sockaddr *)&ss, LISTENER_FIRST_BYTE_TIMEOUT);
		listener_log_refusal(set, (struct sockaddr *)&ss,
				     listener_reason_names[LISTENER_FIRST_BYTE_TIMEOUT]);
		close(fd);
		return;
	}
	l->accept(l->arg, fd, (struct sockaddr *)&ss, src);
}

/* Holds an admitted connection until its first byte (first_byte_timeout). */
static void listener_wait(struct listener *l, int fd, const struct sockaddr_storage *ss,
			  struct listener_src *src)
{
	struct listener_wait *w = xcalloc(1, sizeof(*w));
	struct timeval tv = clock_tv(l->set->lim.first_byte_timeout);

	w->l = l;
	w->fd = fd;
	w->ss = *ss;
	w->src = src;
	w->ev = event_new(l->base, fd, EV_READ, listener_on_first, w);
	if (w->ev == NULL || event_add(w->ev, &tv) == -1)
		xalloc_fail("event");
	w->next = l->waits;
	if (w->next != NULL)
		w->next->prev = w;
	l->waits = w;
}

static void listener_on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct listener_set *set = l->set;

	(void)what;
	for (int i = 0; i < LISTENER_BATCH && l->on; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		enum listener_reason why;
		struct listener_src *src;

		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* out of descriptors: rest instead of spinning on the backlog */
				struct timeval tv = clock_tv(LISTENER_PAUSE);
				set->st.paused++;
				log_limited(&set->rate, LOG_WARN,
					    "event=accept_paused %s error=\"%s\"", set->name,
					    strerror(errno));
				event_del(l->ev);
				evtimer_add(l->pause, &tv);
			} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
				log_limited(&set->rate, LOG_WARN,
					    "event=accept_failed %s error=\"%s\"", set->name,
					    strerror(errno));
			}
			return;
		}
		src = listener_set_admit(set, (struct sockaddr *)&ss, &why);
		if (src == NULL) {
			if (l->refuse != NULL)
				l->refuse(l->arg, (struct sockaddr *)&ss, why);
			listener_log_refusal(set, (struct sockaddr *)&ss, listener_reason_names[why]);
			close(fd); /* a clean close: the peer reads EOF */
			continue;
		}
		if (set->lim.first_byte_timeout > 0) {
			listener_wait(l, fd, &ss, src);
			continue;
		}
		/* The callee must not free this listener; it may disable it (l->on). */
		l->accept(l->arg, fd, (struct sockaddr *)&ss, src);
	}
}

/* The adopted socket listening on a, which the caller now owns, or -1. */
static int listener_take_adopted(const struct addr *a)
{
	for (size_t i = 0; i < listener_nadopted; i++) {
		int fd = listener_adopted[i].fd;
		if (addr_equal(&listener_adopted[i].a, a)) {
			listener_adopted[i] = listener_adopted[--listener_nadopted];
			return fd;
		}
	}
	return -1;
}

int listener_adopt(int fd)
{
	struct listener_adopted *x = &listener_adopted[listener_nadopted];
	int type = 0, on = 0;
	socklen_t tl = sizeof(type), ol = sizeof(on);

	x->a.len = sizeof(x->a.ss);
	memset(&x->a.ss, 0, sizeof(x->a.ss));
	if (listener_nadopted == LISTENER_ADOPT_MAX ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == -1 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == -1 || !on ||
	    getsockname(fd, (struct sockaddr *)&x->a.ss, &x->a.len) == -1 ||
	    (x->a.ss.ss_family != AF_INET && x->a.ss.ss_family != AF_INET6)) {
		close(fd);
		return -1;
	}
	x->fd = fd;
	listener_nadopted++;
	return 0;
}

size_t listener_adopted_close(void)
{
	size_t n = listener_nadopted;

	while (listener_nadopted > 0)
		close(listener_adopted[--listener_nadopted].fd);
	return n;
}

void listener_each(void (*fn)(void *arg, int fd, const struct addr *a), void *arg)
{
	for (struct listener *l = listener_all; l != NULL; l = l->next_all)
		fn(arg, l->fd, &l->a);
}

struct listener *listener_new(struct event_base *base, const struct addr *a,
			      struct listener_set *set, listener_accept_fn *accept,
			      listener_refuse_fn *refuse, void *arg, char *err, size_t errlen)
{
	struct listener *l;
	int fd = listener_take_adopted(a);

	if (fd == -1 && (fd = sock_listen(a, err, errlen)) == -1)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->base = base;
	l->set = set;
	l->accept = accept;
	l->refuse = refuse;
	l->arg = arg;
	l->a = *a;
	l->fd = fd;
	l->ev = event_new(base, fd, EV_READ | EV_PERSIST, listener_on_accept, l);
	l->pause = evtimer_new(base, listener_on_resume, l);
	if (l->ev == NULL || l->pause == NULL)
		xalloc_fail("event");
	l->next_all = listener_all;
	if (listener_all != NULL)
		listener_all->prev_all = l;
	listener_all = l;
	listener_enable(l, true);
	return l;
}

void listener_enable(struct listener *l, bool on)
{
	l->on = on;
	if (on) {
		if (!evtimer_pending(l->pause, NULL))
			event_add(l->ev, NULL);
	} else {
		event_del(l->ev);
	}
}

void listener_free(struct listener *l)
{
	if (l == NULL)
		return;
	while (l->waits != NULL) { /* still silent: closed, their counts given back */
		struct listener_wait *w = l->waits;
		listener_set_release(l->set, w->src);
		close(w->fd);
		listener_wait_free(w);
	}
	loop_free_event(&l->ev);
	loop_free_event(&l->pause);
	if (l->prev_all != NULL)
		l->prev_all->next_all = l->next_all;
	else
		listener_all = l->next_all;
	if (l->next_all != NULL)
		l->next_all->prev_all = l->prev_all;
	close(l->fd);
	free(l);
}

const struct addr *listener_addr(const struct listener *l)
{
	return &l->a;
}

bool listener_wildcard(const struct listener *l)
{
	const struct sockaddr_storage *ss = &l->a.ss;

	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

