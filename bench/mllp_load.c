/*
 * mllp_load: a small MLLP load generator for bench/intake.sh.
 *
 *   mllp_load -h HOST -p PORT -c CONNS -n TOTAL [-d DUP_PERCENT] [-s SIZE_HINT]
 *             [-r RUN_ID] [-t ACK_TIMEOUT_S]
 *
 * Opens CONNS connections and sends TOTAL RDE^O11 pharmacy orders over them (MSH, PID, PV1,
 * ORC, RXE, RXR, TQ1 and an NTE that pads the message to about SIZE_HINT bytes, default
 * 1024). MLLP allows one message in flight per connection: each connection sends a message,
 * waits for its ACK, checks that MSA-1 is AA and MSA-2 is the message's MSH-10, then sends
 * the next. Every MSH-10 is unique across runs (it starts with the run id); DUP_PERCENT of
 * the messages of each connection are retransmissions of one of its earlier messages (the
 * same bytes, the same MSH-10), which a receiver answers with the original ACK.
 *
 * Prints one line on stdout:
 *   msgs=N secs=S rate=R p50_ms=.. p99_ms=.. errors=E unique=U dups=D
 * msgs counts the acknowledged messages (retransmissions included), secs runs from the moment
 * every connection is open to the last ACK, latencies are from the first byte sent to the
 * last byte of the ACK read. The exit status is 1 on any error (a refused connection, a lost
 * connection, a timeout, an ACK other than AA or for another control ID), 2 on usage errors.
 *
 * Build: cc -O2 -pthread -o mllp_load mllp_load.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define VT 0x0b
#define FS 0x1c
#define CR 0x0d

#define RECENT 64           /* a retransmission repeats one of the last RECENT messages */
#define MSG_MAX 65536
#define ACK_MAX 65536

struct conn {
	pthread_t thread;
	int idx;
	int fd;
	long count;          /* messages to send on this connection */
	long dups;           /* how many of them are retransmissions */
	long sent_ok;        /* messages acknowledged with AA for the right control ID */
	long dups_sent;
	long errors;
	double *lat_ms;      /* one per acknowledged message */
	uint64_t rng;
	char msg[MSG_MAX];
	char ack[ACK_MAX];
	size_t ack_len;
	char errmsg[256];
};

static const char *opt_host = "127.0.0.1";
static const char *opt_port;
static int opt_conns = 1;
static long opt_total = 1000;
static double opt_dup;
static int opt_size = 1024;
static double opt_timeout = 30;
static char run_id[16];
static char msh7[32];        /* MSH-7, one per run: a retransmission stays byte-identical */

static pthread_barrier_t start_barrier;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng_next(uint64_t *s)
{
	/* splitmix64 */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void conn_error(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	c->errors++;
	if (c->errmsg[0] != '\0')
		return;   /* keep the first */
	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
}

static void control_id(char *out, size_t n, int conn, long seq)
{
	snprintf(out, n, "%s%02d%07ld", run_id, conn, seq);
}

/* Appends to a buffer with a bound; returns the new length. */
static size_t put(char *b, size_t len, size_t cap, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (len >= cap)
		return len;
	va_start(ap, fmt);
	w = vsnprintf(b + len, cap - len, fmt, ap);
	va_end(ap);
	if (w < 0)
		return len;
	return (size_t)w >= cap - len ? cap - 1 : len + (size_t)w;
}

static const char *const given[] = { "JANE", "JOHN", "MARIA", "AHMED", "LI", "OLGA", "PETER",
				     "FATIMA", "JOSE", "ANNA", "KWAME", "SOFIA" };
static const char *const family[] = { "DOE", "SMITH", "GARCIA", "KHAN", "CHEN", "IVANOVA",
				      "MUELLER", "OKAFOR", "SILVA", "NOWAK", "MENSAH", "ROSSI" };
static const char *const drugs[][3] = {
	{ "00093-7146", "Metoprolol tartrate 25 mg tablet", "25" },
	{ "00378-0018", "Furosemide 40 mg tablet", "40" },
	{ "00904-5853", "Acetaminophen 500 mg tablet", "500" },
	{ "00409-4888", "Heparin sodium 5000 units/mL injection", "5000" },
	{ "00071-0155", "Atorvastatin calcium 20 mg tablet", "20" },
	{ "00006-0749", "Lisinopril 10 mg tablet", "10" },
};

/*
 * The message for (conn, seq): deterministic, so a retransmission is the same bytes.
 * Segments end with CR. Returns the length, not counting the MLLP frame.
 */
static size_t build_message(char *b, size_t cap, int conn, long seq)
{
	char ctrl[40];
	uint64_t h = ((uint64_t)conn << 40) ^ (uint64_t)seq ^ 0x5bd1e995ULL;
	unsigned r1 = (unsigned)rng_next(&h), r2 = (unsigned)rng_next(&h), r3 = (unsigned)rng_next(&h);
	const char *const *d = drugs[r1 % (sizeof(drugs) / sizeof(drugs[0]))];
	unsigned mrn = 100000 + (r2 % 900000);
	size_t len = 0;

	control_id(ctrl, sizeof(ctrl), conn, seq);
	len = put(b, len, cap,
		  "MSH|^~\\&|PHARMACY|ST-MARY-HOSP|EMAR|WARD-3|%s||RDE^O11^RDE_O11|%s|P|2.5.1\r", msh7,
		  ctrl);
	len = put(b, len, cap,
		  "PID|1||%u^^^ST-MARY^MR~%09u^^^USSSA^SS||%s^%s^Q^^^^L||19%02u%02u%02u|%c|||"
		  "%u MAIN ST^APT %u^SPRINGFIELD^IL^62704^USA^H||^PRN^PH^^1^217^555%04u|||M|||%09u\r",
		  mrn, r3 % 1000000000u, family[r2 % 12], given[r3 % 12], 30 + r1 % 70,
		  1 + r2 % 12, 1 + r3 % 28, (r1 & 1) ? 'F' : 'M', 10 + r2 % 9000, 1 + r3 % 300,
		  r1 % 10000, 100000000u + r2 % 800000000u);
	len = put(b, len, cap,
		  "PV1|1|I|3WEST^%u^%c^ST-MARY||||%u^HOUSE^GREGORY^^^DR^MD|||MED||||1|||%u^WILSON^"
		  "JAMES^^^DR^MD|IN||||||||||||||||||||||||||%s\r",
		  300 + r1 % 40, 'A' + (char)(r2 % 2), 1000 + r3 % 9000, 1000 + r1 % 9000, msh7);
	len = put(b, len, cap,
		  "ORC|NW|%s^PHARMACY|F%07ld^EMAR||||^^^%s^^R||%s|%u^NURSE^ALICE^^^^RN||%u^HOUSE^"
		  "GREGORY^^^DR^MD|3WEST^%u\r",
		  ctrl, seq, msh7, msh7, 2000 + r2 % 7000, 1000 + r3 % 9000, 300 + r1 % 40);
	len = put(b, len, cap,
		  "RXE|1^BID^HL70335^%s|%s^%s^NDC|%s||mg^milligram^UCUM|TAB^tablet^HL70292|"
		  "Take with food. Hold if systolic BP < 100 or heart rate < 60.|||60|TAB^tablet^"
		  "HL70292|3||%u^HOUSE^GREGORY^^^DR^MD|RX%08u|||||||||||||||%s\r",
		  msh7, d[0], d[1], d[2], 1000 + r3 % 9000, r2 % 100000000u, msh7);
	len = put(b, len, cap, "RXR|PO^Oral^HL70162|MTH^Mouth^HL70550\r");
	len = put(b, len, cap, "TQ1|1||0800,2000^BID&Twice a day&HL70335|||30^d|%s|%s||R^Routine\r",
		  msh7, msh7);
	if (len + 32 < (size_t)opt_size && len < cap) {
		size_t want = (size_t)opt_size - len - 10;  /* "NTE|1|P|" + text + CR */
		len = put(b, len, cap, "NTE|1|P|");
		for (size_t i = 0; i < want && len + 2 < cap; i++)
			b[len++] = "Patient counselled on dosing and side effects. "[i % 47];
		b[len++] = '\r';
		b[len] = '\0';
	}
	return len;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Reads one MLLP frame into c->ack (content only, NUL-terminated). Bytes after the frame
 * (there should be none: one message in flight) are an error. Returns 0, or -1 with a reason.
 */
static int read_ack(struct conn *c, const char **why)
{
	size_t have = 0;
	char *start;

	for (;;) {
		ssize_t r = recv(c->fd, c->ack + have, ACK_MAX - 1 - have, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			*why = (errno == EAGAIN || errno == EWOULDBLOCK) ? "ACK timeout" : strerror(errno);
			return -1;
		}
		if (r == 0) {
			*why = "connection closed by the server";
			return -1;
		}
		have += (size_t)r;
		c->ack[have] = '\0';
		if (have >= 2 && c->ack[have - 2] == FS && c->ack[have - 1] == CR)
			break;
		if (have >= ACK_MAX - 1) {
			*why = "ACK too large";
			return -1;
		}
	}
	start = memchr(c->ack, VT, have);
	if (start == NULL) {
		*why = "answer is not an MLLP frame";
		return -1;
	}
	c->ack_len = (size_t)(c->ack + have - 2 - (start + 1));
	memmove(c->ack, start + 1, c->ack_len);
	c->ack[c->ack_len] = '\0';
	return 0;
}

/* Field n (1-based) of the first segment named seg, copied into out; -1 if absent. */
static int ack_field(const char *ack, const char *seg, int n, char *out, size_t cap)
{
	const char *p = ack;
	char fs = '|';

	if (strncmp(ack, "MSH", 3) == 0 && ack[3] != '\0')
		fs = ack[3];
	while (*p) {
		const char *end = p + strcspn(p, "\r\n");
		if (end - p >= 3 && strncmp(p, seg, 3) == 0 && (p + 3 == end || p[3] == fs)) {
			const char *f = p + 3;
			size_t len;
			for (int i = 0; i < n; i++) {
				if (f >= end)
					return -1;
				f++;   /* past the separator before field i + 1 */
				if (i < n - 1) {
					const char *q = memchr(f, fs, (size_t)(end - f));
					f = q ? q : end;
				}
			}
			const char *q = memchr(f, fs, (size_t)(end - f));
			len = (size_t)((q ? q : end) - f);
			if (len >= cap)
				len = cap - 1;
			memcpy(out, f, len);
			out[len] = '\0';
			return 0;
		}
		p = end;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	return -1;
}

static int connect_to(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res, *ai;
	int fd = -1, rc, one = 1;

	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "%s:%s: %s", host, port, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "connect %s:%s: %s", host, port, strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0) {
		struct timeval tv = { .tv_sec = (time_t)opt_timeout,
				      .tv_usec = (suseconds_t)((opt_timeout - (time_t)opt_timeout) * 1e6) };
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	long recent[RECENT];
	long nrecent = 0, next_seq = 0, dups_left = c->dups;
	char err[200] = "";

	c->fd = connect_to(opt_host, opt_port, err, sizeof(err));
	pthread_barrier_wait(&start_barrier);
	if (c->fd < 0) {
		conn_error(c, "connection %d: %s", c->idx, err);
		c->errors += c->count - 1;
		return NULL;
	}
	for (long i = 0; i < c->count; i++) {
		long slots_left = c->count - i, seq;
		char want[40], msa1[16], msa2[80];
		const char *why = NULL;
		size_t len;
		double t0;
		int dup = nrecent > 0 && dups_left > 0 &&
			  (long)(rng_next(&c->rng) % (uint64_t)slots_left) < dups_left;

		if (dup) {
			seq = recent[rng_next(&c->rng) % (uint64_t)(nrecent < RECENT ? nrecent : RECENT)];
			dups_left--;
		} else {
			seq = next_seq++;
			recent[nrecent % RECENT] = seq;
			nrecent++;
		}
		c->msg[0] = VT;
		len = build_message(c->msg + 1, MSG_MAX - 3, c->idx, seq);
		c->msg[1 + len] = FS;
		c->msg[2 + len] = CR;
		control_id(want, sizeof(want), c->idx, seq);

		t0 = now_s();
		if (send_all(c->fd, c->msg, len + 3) == -1) {
			conn_error(c, "connection %d: send %s: %s", c->idx, want, strerror(errno));
			c->errors += c->count - i - 1;
			break;
		}
		if (read_ack(c, &why) == -1) {
			conn_error(c, "connection %d: message %s: %s", c->idx, want, why);
			c->errors += c->count - i - 1;
			break;
		}
		if (ack_field(c->ack, "MSA", 1, msa1, sizeof(msa1)) == -1 ||
		    ack_field(c->ack, "MSA", 2, msa2, sizeof(msa2)) == -1) {
			conn_error(c, "connection %d: message %s: the answer has no MSA-1/MSA-2",
				   c->idx, want);
			continue;
		}
		if (strcmp(msa1, "AA") != 0) {
			char text[80] = "";
			ack_field(c->ack, "MSA", 3, text, sizeof(text));
			conn_error(c, "connection %d: message %s%s: MSA-1 %s (%s)", c->idx, want,
				   dup ? " (retransmission)" : "", msa1, text);
			continue;
		}
		if (strcmp(msa2, want) != 0) {
			conn_error(c, "connection %d: message %s: MSA-2 is %s", c->idx, want, msa2);
			continue;
		}
		c->lat_ms[c->sent_ok++] = (now_s() - t0) * 1000.0;
		if (dup)
			c->dups_sent++;
	}
	close(c->fd);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double percentile(const double *v, long n, double p)
{
	long i;

	if (n == 0)
		return 0;
	i = (long)(p * (double)n + 0.999999) - 1;   /* nearest rank */
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mllp_load -h HOST -p PORT -c CONNS -n TOTAL [-d DUP_PERCENT] [-s SIZE_HINT]\n"
		"                 [-r RUN_ID] [-t ACK_TIMEOUT_S]\n"
		"Sends TOTAL RDE^O11 messages over CONNS MLLP connections, one in flight per\n"
		"connection, DUP_PERCENT of them retransmissions (default 0), each about SIZE_HINT\n"
		"bytes (default 1024); checks every ACK is AA for the message's MSH-10. Prints\n"
		"msgs=N secs=S rate=R p50_ms=.. p99_ms=.. errors=E unique=U dups=D\n"
		"RUN_ID (up to 8 letters and digits) starts every MSH-10; default from the clock.\n");
}

int main(int argc, char **argv)
{
	struct conn **conns;
	double *all, secs;
	long total_ok = 0, errors = 0, dups = 0, n = 0, per, rest;
	int opt;
	struct timespec wall;
	struct tm tm;
	double t0;

	while ((opt = getopt(argc, argv, "h:p:c:n:d:s:r:t:")) != -1) {
		switch (opt) {
		case 'h': opt_host = optarg; break;
		case 'p': opt_port = optarg; break;
		case 'c': opt_conns = atoi(optarg); break;
		case 'n': opt_total = atol(optarg); break;
		case 'd': opt_dup = atof(optarg); break;
		case 's': opt_size = atoi(optarg); break;
		case 'r':
			if (strlen(optarg) == 0 || strlen(optarg) > 8 ||
			    strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789") != strlen(optarg)) {
				fprintf(stderr, "mllp_load: -r wants 1 to 8 letters and digits\n");
				return 2;
			}
			snprintf(run_id, sizeof(run_id), "%s", optarg);
			break;
		case 't': opt_timeout = atof(optarg); break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || opt_port == NULL || opt_conns < 1 || opt_conns > 99 || opt_total < 1 ||
	    opt_dup < 0 || opt_dup > 50 || opt_size < 256 || opt_size > MSG_MAX / 2 ||
	    opt_timeout <= 0) {
		usage(stderr);
		fprintf(stderr, "(CONNS 1..99, TOTAL >= 1, DUP_PERCENT 0..50, SIZE_HINT 256..%d)\n",
			MSG_MAX / 2);
		return 2;
	}
	clock_gettime(CLOCK_REALTIME, &wall);
	if (run_id[0] == '\0') {
		/* base 36 of the time in centiseconds, mixed with the PID: unique across runs */
		uint64_t v = ((uint64_t)wall.tv_sec * 100 + (uint64_t)wall.tv_nsec / 10000000) ^
			     ((uint64_t)getpid() << 20);
		char tmp[16];
		int i = 0;
		while (i < 8) {
			tmp[i++] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[v % 36];
			v /= 36;
		}
		for (int j = 0; j < 8; j++)
			run_id[j] = tmp[7 - j];
		run_id[8] = '\0';
	}
	gmtime_r(&wall.tv_sec, &tm);
	strftime(msh7, sizeof(msh7), "%Y%m%d%H%M%S", &tm);

	conns = calloc((size_t)opt_conns, sizeof(*conns));
	if (conns == NULL)
		abort();
	per = opt_total / opt_conns;
	rest = opt_total % opt_conns;
	pthread_barrier_init(&start_barrier, NULL, (unsigned)opt_conns + 1);
	for (int i = 0; i < opt_conns; i++) {
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		c->idx = i;
		c->count = per + (i < rest);
		c->dups = (long)((double)c->count * opt_dup / 100.0 + 0.5);
		if (c->count > 0 && c->dups >= c->count)
			c->dups = c->count - 1;
		c->lat_ms = calloc((size_t)c->count + 1, sizeof(double));
		c->rng = 0x243f6a8885a308d3ULL ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL) ^ wall.tv_nsec;
		if (c->lat_ms == NULL)
			abort();
		conns[i] = c;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			fprintf(stderr, "mllp_load: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&start_barrier);
	t0 = now_s();
	for (int i = 0; i < opt_conns; i++)
		pthread_join(conns[i]->thread, NULL);
	secs = now_s() - t0;

	for (int i = 0; i < opt_conns; i++) {
		total_ok += conns[i]->sent_ok;
		errors += conns[i]->errors;
		dups += conns[i]->dups_sent;
		if (conns[i]->errmsg[0] != '\0')
			fprintf(stderr, "mllp_load: %s (%ld error(s) on this connection)\n",
				conns[i]->errmsg, conns[i]->errors);
	}
	all = malloc(((size_t)total_ok + 1) * sizeof(double));
	if (all == NULL)
		abort();
	for (int i = 0; i < opt_conns; i++) {
		memcpy(all + n, conns[i]->lat_ms, (size_t)conns[i]->sent_ok * sizeof(double));
		n += conns[i]->sent_ok;
	}
	qsort(all, (size_t)n, sizeof(double), cmp_double);
	printf("msgs=%ld secs=%.3f rate=%.0f p50_ms=%.3f p99_ms=%.3f errors=%ld unique=%ld dups=%ld\n",
	       total_ok, secs, secs > 0 ? (double)total_ok / secs : 0.0, percentile(all, n, 0.50),
	       percentile(all, n, 0.99), errors, total_ok - dups, dups);
	fflush(stdout);
	return errors > 0 || total_ok != opt_total ? 1 : 0;
}
