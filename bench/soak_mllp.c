/*
 * soak_mllp: the MLLP sender of bench/soak.sh. Keeps sending HL7 v2 RDE^O11 orders at a fixed
 * modest rate for a while, through a wall that is being restarted under it, and never gives up
 * on a message: a message whose ACK does not come (connection refused, closed, reset, timed
 * out, or answered AE) is sent again, byte for byte, on a new connection after a backoff, until
 * it is acknowledged AA. The intake answers a retransmission with the original ACK.
 *
 *   soak_mllp -p PORT [-h HOST] [-c CONNS] [-r RATE] [-d SECONDS] [-g GRACE] [-t ACK_TIMEOUT]
 *             [-i RUN_ID] -o ACKED_FILE [-e EVENTS_FILE]
 *
 * CONNS connections (default 4), one message in flight on each, share RATE messages a second
 * (default 200). New messages are started for SECONDS (default 60); after that only the
 * messages in hand are finished, for at most GRACE more seconds (default 60). Control IDs are
 * RUN_ID (default from the clock), two digits of connection and seven of sequence: unique.
 *
 * Every control ID acknowledged AA goes to ACKED_FILE, one a line, as soon as it is known.
 * EVENTS_FILE (default stderr) gets one line per failure (wall-clock time, connection, control
 * ID, what) and a progress line every 10 s. At the end one line goes to stdout:
 *   sent=.. acked=.. unacked=.. rejected=.. attempts=.. resends=.. reconnects=..
 *   connect_failures=.. closed=.. timeouts=.. ae=.. bad_acks=.. behind_s=.. p50_ms=..
 *   p99_ms=.. max_ms=..
 * sent counts distinct messages, attempts every transmission; unacked are sent and never
 * acknowledged (their IDs are listed in EVENTS_FILE); rejected were answered AR/CR (not
 * resent). Exit status: 0 when every message sent was acknowledged, 1 otherwise, 2 on usage.
 *
 * Build: cc -O2 -Wall -pthread -o soak_mllp soak_mllp.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SB 0x0b
#define EB 0x1c
#define CR 0x0d
#define FRAME_MAX 4096
#define REPLY_MAX 8192
#define LAT_CHUNK 65536

struct sender {
	pthread_t thread;
	int idx;
	int fd;
	long seq;             /* next new message */
	double next_due;      /* monotonic time the next new message is due */
	double backoff;
	uint64_t rng;
	/* counters */
	long sent, acked, rejected, attempts, resends, reconnects, connect_failures, closed,
		timeouts, ae, bad_acks;
	double behind;        /* seconds of schedule skipped because a message took long */
	char unacked[40];     /* the message in hand at the end, if not acknowledged */
	double *lat;
	long nlat, caplat;
};

static const char *host = "127.0.0.1", *port;
static int nconns = 4;
static double rate = 200, duration = 60, grace = 60, ack_timeout = 5;
static char run_id[12];
static FILE *acked_f, *events_f;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop_new;
static double t_start, t_stop_new, t_give_up;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(double s)
{
	struct timespec ts;
	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void event(const struct sender *s, const char *ctrl, const char *fmt, ...)
{
	char when[40], msg[300];
	struct timeval tv;
	struct tm tm;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_lock);
	fprintf(events_f, "%s.%03ld epoch=%ld.%03ld conn=%d ctrl=%s %s\n", when,
		(long)tv.tv_usec / 1000, (long)tv.tv_sec, (long)tv.tv_usec / 1000, s ? s->idx : -1,
		ctrl ? ctrl : "-", msg);
	fflush(events_f);
	pthread_mutex_unlock(&out_lock);
}

/* The frame (SB message EB CR) of message seq of connection idx; same bytes every time. */
static size_t frame(char *f, size_t cap, int idx, long seq, char *ctrl, size_t ctrlcap)
{
	static const char *const meds[] = { "Amoxicillin 500 mg capsule", "Metformin 850 mg tablet",
					    "Enoxaparin 40 mg/0.4 mL syringe",
					    "Pantoprazole 40 mg tablet", "Ondansetron 4 mg tablet" };
	uint64_t h = 0x9e3779b97f4a7c15ULL * (uint64_t)(seq + 1) + (uint64_t)idx;
	unsigned a = (unsigned)xorshift(&h), b = (unsigned)xorshift(&h);
	int n;

	snprintf(ctrl, ctrlcap, "%s%02d%07ld", run_id, idx, seq);
	n = snprintf(f, cap,
		     "%cMSH|^~\\&|SOAK|SOAK-PHARMACY|EMAR|WARD-%d|20260101120000||RDE^O11^RDE_O11|%s|P|2.5.1\r"
		     "PID|1||%u^^^SOAK^MR||SOAK^PATIENT%u||19%02u0101|%c\r"
		     "PV1|1|I|WARD-%d^%u^A\r"
		     "ORC|NW|%s^SOAK|||||^^^20260101^^R\r"
		     "RXE|1^BID^HL70335|%u^%s^NDC|%u||mg|TAB^tablet^HL70292|||30|TAB|2\r"
		     "RXR|PO^Oral^HL70162\r"
		     "NTE|1|P|soak connection %d message %ld\r%c%c",
		     SB, idx, ctrl, 100000 + a % 900000, b % 1000, 30 + a % 70, (b & 1) ? 'F' : 'M',
		     idx, 100 + b % 300, ctrl, 10000 + b % 90000, meds[a % 5], 1 + b % 500, idx, seq,
		     EB, CR);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int dial(struct sender *s)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	struct timeval tv = { .tv_sec = (time_t)ack_timeout,
			      .tv_usec = (suseconds_t)((ack_timeout - (double)(time_t)ack_timeout) * 1e6) };
	int one = 1, fd = -1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	s->fd = fd;
	return fd < 0 ? -1 : 0;
}

static void hang_up(struct sender *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Waits the backoff (0.1 s doubling to 2 s, 50-100 % jitter), bounded by the give-up time. */
static void back_off(struct sender *s)
{
	double d = s->backoff * (0.5 + (double)(xorshift(&s->rng) % 1000) / 2000.0);
	if (mono() + d > t_give_up)
		d = t_give_up - mono();
	nap(d);
	s->backoff = s->backoff * 2 > 2.0 ? 2.0 : s->backoff * 2;
}

enum outcome { OK_AA, GOT_AE, GOT_AR, NO_ACK };

/*
 * One transmission of the frame on the open connection; reads the one reply frame. MSA-1 and
 * MSA-2 decide; an answer for another control ID is a bad ACK.
 */
static enum outcome transmit(struct sender *s, const char *f, size_t flen, const char *ctrl)
{
	char r[REPLY_MAX], code[8] = "", id[64] = "";
	size_t have = 0, off = 0;
	const char *msa, *p, *q;

	while (off < flen) {
		ssize_t w = send(s->fd, f + off, flen - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			s->closed++;
			event(s, ctrl, "send failed: %s", strerror(errno));
			return NO_ACK;
		}
		off += (size_t)w;
	}
	for (;;) {
		ssize_t n = recv(s->fd, r + have, sizeof(r) - 1 - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			s->timeouts++;
			event(s, ctrl, "no ACK within %.1f s", ack_timeout);
			return NO_ACK;
		}
		if (n <= 0) {
			s->closed++;
			event(s, ctrl, "connection %s before the ACK", n == 0 ? "closed" : strerror(errno));
			return NO_ACK;
		}
		have += (size_t)n;
		r[have] = '\0';
		if (have >= 2 && r[have - 2] == EB && r[have - 1] == CR)
			break;
		if (have >= sizeof(r) - 1) {
			s->bad_acks++;
			event(s, ctrl, "reply larger than %d bytes", REPLY_MAX);
			return NO_ACK;
		}
	}
	msa = strstr(r, "\rMSA|");
	if (r[0] != SB || msa == NULL) {
		s->bad_acks++;
		event(s, ctrl, "reply is not an ACK frame");
		return NO_ACK;
	}
	p = msa + 5;
	q = p + strcspn(p, "|\r");
	snprintf(code, sizeof(code), "%.*s", (int)(q - p), p);
	if (*q == '|') {
		p = q + 1;
		q = p + strcspn(p, "|\r");
		snprintf(id, sizeof(id), "%.*s", (int)(q - p), p);
	}
	if (strcmp(id, ctrl) != 0) {
		s->bad_acks++;
		event(s, ctrl, "ACK for another message (MSA-2 %s)", id);
		return NO_ACK;
	}
	if (strcmp(code, "AA") == 0 || strcmp(code, "CA") == 0)
		return OK_AA;
	if (strcmp(code, "AR") == 0 || strcmp(code, "CR") == 0) {
		s->rejected++;
		event(s, ctrl, "answered %s", code);
		return GOT_AR;
	}
	s->ae++;
	event(s, ctrl, "answered %s", code);
	return GOT_AE;
}

static void add_latency(struct sender *s, double ms)
{
	if (s->nlat == s->caplat) {
		s->caplat += LAT_CHUNK;
		s->lat = realloc(s->lat, (size_t)s->caplat * sizeof(double));
		if (s->lat == NULL)
			abort();
	}
	s->lat[s->nlat++] = ms;
}

static void *run(void *arg)
{
	struct sender *s = arg;
	double per = (double)nconns / rate;
	char f[FRAME_MAX], ctrl[40];

	s->fd = -1;
	s->backoff = 0.1;
	s->next_due = t_start + per * (double)s->idx / (double)nconns;
	for (;;) {
		double now = mono(), first;
		size_t flen;
		int done = 0, tries = 0;

		if (stop_new || now >= t_stop_new)
			break;
		if (now < s->next_due) {
			nap(s->next_due - now);
			continue;
		}
		if (now - s->next_due > 1.0) {   /* a long outage: do not burst to catch up */
			s->behind += now - s->next_due;
			s->next_due = now;
		}
		s->next_due += per;
		flen = frame(f, sizeof(f), s->idx, s->seq++, ctrl, sizeof(ctrl));
		if (flen == 0)
			abort();
		s->sent++;
		first = mono();
		while (!done) {
			if (mono() >= t_give_up) {
				snprintf(s->unacked, sizeof(s->unacked), "%s", ctrl);
				event(s, ctrl, "given up: never acknowledged");
				goto out;
			}
			if (s->fd < 0) {
				if (dial(s) == -1) {
					s->connect_failures++;
					if (s->connect_failures % 50 == 1)
						event(s, ctrl, "cannot connect: %s (failure %ld)",
						      strerror(errno), s->connect_failures);
					back_off(s);
					continue;
				}
				s->reconnects++;
			}
			s->attempts++;
			if (tries++ > 0)
				s->resends++;
			switch (transmit(s, f, flen, ctrl)) {
			case OK_AA:
				add_latency(s, (mono() - first) * 1000.0);
				s->acked++;
				s->backoff = 0.1;
				pthread_mutex_lock(&out_lock);
				fprintf(acked_f, "%s\n", ctrl);
				fflush(acked_f);
				pthread_mutex_unlock(&out_lock);
				done = 1;
				break;
			case GOT_AR:
				done = 1;
				break;
			case GOT_AE:   /* stored nothing: the same connection may try again */
				back_off(s);
				break;
			case NO_ACK:
				hang_up(s);
				back_off(s);
				break;
			}
		}
	}
out:
	hang_up(s);
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void on_signal(int sig)
{
	(void)sig;
	stop_new = 1;
}

int main(int argc, char **argv)
{
	struct sender *ss;
	const char *acked_path = NULL, *events_path = NULL;
	long tot[11] = { 0 }, nlat = 0, k = 0;
	double behind = 0, *all, next_progress;
	int opt, all_done, *joined;
	struct sigaction sa = { .sa_handler = on_signal };

	while ((opt = getopt(argc, argv, "h:p:c:r:d:g:t:i:o:e:")) != -1) {
		switch (opt) {
		case 'h': host = optarg; break;
		case 'p': port = optarg; break;
		case 'c': nconns = atoi(optarg); break;
		case 'r': rate = atof(optarg); break;
		case 'd': duration = atof(optarg); break;
		case 'g': grace = atof(optarg); break;
		case 't': ack_timeout = atof(optarg); break;
		case 'i': snprintf(run_id, sizeof(run_id), "%.8s", optarg); break;
		case 'o': acked_path = optarg; break;
		case 'e': events_path = optarg; break;
		default: goto usage;
		}
	}
	if (optind != argc || port == NULL || acked_path == NULL || nconns < 1 || nconns > 99 ||
	    rate <= 0 || duration <= 0 || grace < 0 || ack_timeout <= 0)
		goto usage;
	if (run_id[0] == '\0') {
		uint64_t v = (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
		for (int i = 0; i < 8; i++, v /= 36)
			run_id[i] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
	}
	acked_f = fopen(acked_path, "a");
	events_f = events_path ? fopen(events_path, "a") : stderr;
	if (acked_f == NULL || events_f == NULL) {
		perror("soak_mllp: open");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	t_start = mono();
	t_stop_new = t_start + duration;
	t_give_up = t_stop_new + grace;
	ss = calloc((size_t)nconns, sizeof(*ss));
	joined = calloc((size_t)nconns, sizeof(*joined));
	if (ss == NULL || joined == NULL)
		abort();
	for (int i = 0; i < nconns; i++) {
		ss[i].idx = i;
		ss[i].rng = 0x853c49e6748fea9bULL + (uint64_t)i * 0x9e3779b97f4a7c15ULL;
		if (pthread_create(&ss[i].thread, NULL, run, &ss[i]) != 0) {
			fprintf(stderr, "soak_mllp: pthread_create failed\n");
			return 1;
		}
	}
	/* progress every 10 s until every sender is done (they end by themselves) */
	next_progress = t_start + 10;
	do {
		long sent = 0, acked = 0, resends = 0, reconnects = 0;
		nap(0.2);
		all_done = 1;
		for (int i = 0; i < nconns; i++) {
			if (!joined[i] && pthread_tryjoin_np(ss[i].thread, NULL) == 0)
				joined[i] = 1;
			all_done &= joined[i];
		}
		if (mono() >= next_progress && !all_done) {
			next_progress += 10;
			for (int i = 0; i < nconns; i++) {
				sent += ss[i].sent;
				acked += ss[i].acked;
				resends += ss[i].resends;
				reconnects += ss[i].reconnects;
			}
			event(NULL, NULL, "progress t=%.0f sent=%ld acked=%ld resends=%ld reconnects=%ld",
			      mono() - t_start, sent, acked, resends, reconnects);
		}
	} while (!all_done);

	for (int i = 0; i < nconns; i++) {
		struct sender *s = &ss[i];
		long v[11] = { s->sent, s->acked, s->rejected, s->attempts, s->resends, s->reconnects,
			       s->connect_failures, s->closed, s->timeouts, s->ae, s->bad_acks };
		for (int j = 0; j < 11; j++)
			tot[j] += v[j];
		behind += s->behind;
		nlat += s->nlat;
		if (s->unacked[0])
			event(s, s->unacked, "unacknowledged at the end");
	}
	all = malloc(((size_t)nlat + 1) * sizeof(double));
	if (all == NULL)
		abort();
	for (int i = 0; i < nconns; i++)
		for (long j = 0; j < ss[i].nlat; j++)
			all[k++] = ss[i].lat[j];
	qsort(all, (size_t)nlat, sizeof(double), cmp);
	printf("sent=%ld acked=%ld unacked=%ld rejected=%ld attempts=%ld resends=%ld reconnects=%ld "
	       "connect_failures=%ld closed=%ld timeouts=%ld ae=%ld bad_acks=%ld behind_s=%.1f "
	       "p50_ms=%.2f p99_ms=%.2f max_ms=%.1f run_id=%s\n",
	       tot[0], tot[1], tot[0] - tot[1] - tot[2], tot[2], tot[3], tot[4], tot[5], tot[6],
	       tot[7], tot[8], tot[9], tot[10], behind, nlat ? all[nlat / 2] : 0.0,
	       nlat ? all[(long)((double)nlat * 0.99)] : 0.0, nlat ? all[nlat - 1] : 0.0, run_id);
	fflush(stdout);
	fclose(acked_f);
	return tot[0] == tot[1] ? 0 : 1;

usage:
	fprintf(stderr, "usage: soak_mllp -p PORT [-h HOST] [-c CONNS] [-r RATE] [-d SECONDS] "
			"[-g GRACE] [-t ACK_TIMEOUT] [-i RUN_ID] -o ACKED_FILE [-e EVENTS_FILE]\n");
	return 2;
}
