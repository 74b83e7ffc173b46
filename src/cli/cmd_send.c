/* netwall send: an MLLP client. Reads HL7 v2 messages from files or stdin, sends each in an
 * MLLP frame over one or more connections (plain TCP or TLS), waits for its ACK before
 * sending the next on that connection, and prints the ACK code of every message.
 *
 * One thread per connection with blocking semantics built from non-blocking sockets and
 * poll() deadlines; the threads take the next message from a shared index, so a slow
 * connection does not hold back the others. Message text never reaches the terminal or the
 * log: only sources, positions, MSH-10 control IDs, ACK codes and timings. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "cli/cli.h"
#include "cli/send.h"
#include "core/addr.h"
#include "core/clock.h"
#include "core/num.h"
#include "core/xalloc.h"

static const char send_usage[] =
	"usage: netwall send [OPTIONS] HOST:PORT [FILE...|-]\n"
	"\n"
	"Sends HL7 v2 messages over MLLP and prints one line per message:\n"
	"  SOURCE:N MSH-10 CODE\n"
	"where CODE is the ACK's MSA-1 (AA CA AE CE AR CR) or, when no usable ACK came,\n"
	"timeout, closed (connection lost), noconn (cannot connect) or badack (the answer is\n"
	"not an ACK); sent when the message's MSH-15 asks for no accept ACK (NE, or ER and\n"
	"none came within a second). A summary goes to stderr. Exit status: 0 if every\n"
	"message got AA or CA (or was sent as its MSH-15 asked), 1 otherwise, 2 for usage\n"
	"errors.\n"
	"\n"
	"Each FILE (or stdin, for - or no FILE) holds one or more messages: a message starts at\n"
	"each line beginning with MSH; a file starting with FHS or BHS is one batch, sent as one\n"
	"frame. LF and CRLF line ends become CR; blank lines are ignored. HOST is a name, an\n"
	"IPv4 address or a bracketed IPv6 address ([::1]:2575).\n"
	"\n"
	"  -c, --connections N    connections in parallel (default 1); each waits for an\n"
	"                         ACK before sending its next message\n"
	"  --timeout SECONDS      wait this long for each ACK (default 30)\n"
	"  --retry-for SECONDS    on a lost connection, a missing ACK or AE/CE, reconnect\n"
	"                         with backoff and resend until accepted or SECONDS pass\n"
	"                         without an accepted message (default 0: no retries)\n"
	"  --tls                  speak TLS (1.3 preferred, 1.2 allowed); the server is\n"
	"                         verified against the system CAs unless --ca or\n"
	"                         --fingerprint says otherwise\n"
	"  --ca FILE              verify the server with this PEM CA bundle\n"
	"  --cert FILE --key FILE present this client certificate\n"
	"  --server-name NAME     expected server name (SNI and verification; default HOST)\n"
	"  --fingerprint SHA256   pin the server certificate (then CAs are not consulted\n"
	"                         unless --ca is given too)\n"
	"  --json                 print one JSON object per message instead\n"
	"  -q, --quiet            print only messages not accepted; no summary, no progress\n"
	"  -v, --verbose          print every message even while a progress bar is shown\n"
	"  -h, --help             this text\n";

/* --- setup --------------------------------------------------------------------------- */

static SSL_CTX *send_tls_ctx(struct send *s)
{
	char err[512];
	SSL_CTX *ctx;

	if (s->o.fingerprint != NULL && tls_fingerprint_parse(s->o.fingerprint, s->pin) == -1) {
		fprintf(stderr, "netwall send: --fingerprint wants 64 hex digits (SHA-256)\n");
		return NULL;
	}
	s->verify = s->o.fingerprint == NULL || s->o.ca != NULL;
	ctx = tls_ctx_target(s->o.ca, s->verify, err, sizeof(err));
	if (ctx == NULL) {
		fprintf(stderr, "netwall send: %s\n", err);
		return NULL;
	}
	if (s->o.cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, s->o.cert) != 1) {
			fprintf(stderr, "netwall send: %s: cannot load certificate\n", s->o.cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, s->o.key, SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "netwall send: %s: cannot load private key\n", s->o.key);
			goto fail;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			fprintf(stderr, "netwall send: %s does not match %s\n", s->o.key,
				s->o.cert);
			goto fail;
		}
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static int send_resolve(struct send *s)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", s->port);
	rc = getaddrinfo(s->host, port, &hints, &s->ai);
	if (rc != 0) {
		fprintf(stderr, "netwall send: cannot resolve %s: %s\n", s->host, gai_strerror(rc));
		return 1;
	}
	return 0;
}

/* If argv[*i] is the option name, sets *val to its value, given as the next argument or
 * after '=', and returns 1; returns 0 for another argument and -1 if the value is missing. */
static int send_opt(int argc, char **argv, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc)
		return -1;
	*val = argv[++*i];
	return 1;
}

/* Sets option valued[k] (see send_args) to val. Returns 0, or -1 after saying what is wrong. */
static int send_opt_set(struct send *s, size_t k, const char *val)
{
	uint64_t v;

	switch (k) {
	case 0:
	case 1:
		if (num_u64(val, 1, SEND_MAX_CONNS, &v) == -1) {
			fprintf(stderr, "netwall send: -c wants 1 to %u\n", SEND_MAX_CONNS);
			return -1;
		}
		s->o.conns = (unsigned)v;
		return 0;
	case 2:
		if (num_seconds(val, 0.001, 86400, &s->o.timeout) == -1) {
			fputs("netwall send: --timeout wants seconds, more than 0\n", stderr);
			return -1;
		}
		return 0;
	case 3:
		if (num_seconds(val, 0, 30 * 86400, &s->o.retry_for) == -1) {
			fputs("netwall send: --retry-for wants seconds\n", stderr);
			return -1;
		}
		return 0;
	case 4:
		s->o.ca = val;
		return 0;
	case 5:
		s->o.cert = val;
		return 0;
	case 6:
		s->o.key = val;
		return 0;
	case 7:
		s->o.server_name = val;
		return 0;
	default:
		s->o.fingerprint = val;
		return 0;
	}
}

/* The options together: a target, cert with key, TLS options only with --tls. Returns 0,
 * or -1 after saying what is wrong. */
static int send_args_check(struct send *s)
{
	if (s->target == NULL) {
		fputs("netwall send: HOST:PORT is required (see netwall send --help)\n", stderr);
		return -1;
	}
	if (addr_split(s->target, s->host, sizeof(s->host), &s->port) == -1) {
		fprintf(stderr, "netwall send: '%s' is not HOST:PORT (e.g. 127.0.0.1:2575, "
				"[::1]:2575, emar.example:2575)\n",
			s->target);
		return -1;
	}
	if ((s->o.cert == NULL) != (s->o.key == NULL)) {
		fputs("netwall send: --cert and --key go together\n", stderr);
		return -1;
	}
	if (!s->o.tls && (s->o.ca || s->o.cert || s->o.server_name || s->o.fingerprint)) {
		fputs("netwall send: --ca, --cert, --key, --server-name and --fingerprint need "
		      "--tls\n",
		      stderr);
		return -1;
	}
	return 0;
}

/* Parses the command line into s and the list of inputs. Returns 0, or the exit status. */
static int send_args(struct send *s, int argc, char **argv, const char ***files, size_t *nfiles)
{
	static const char *const valued[] = {"-c", "--connections", "--timeout", "--retry-for",
					     "--ca", "--cert", "--key", "--server-name",
					     "--fingerprint"};
	bool opts = true, stdin_seen = false;

	*files = xcalloc((size_t)argc + 1, sizeof(**files));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		size_t k;
		int r = 0;

		if (!opts || a[0] != '-' || a[1] == '\0') {
			if (s->target == NULL) {
				s->target = a;
			} else {
				if (strcmp(a, "-") == 0) {
					if (stdin_seen) {
						fputs("netwall send: - given twice\n", stderr);
						return 2;
					}
					stdin_seen = true;
				}
				(*files)[(*nfiles)++] = a;
			}
			continue;
		}
		if (strcmp(a, "--") == 0) {
			opts = false;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(send_usage, stdout);
			return -1;
		} else if (strcmp(a, "--tls") == 0) {
			s->o.tls = true;
		} else if (strcmp(a, "--json") == 0) {
			s->o.json = true;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			s->o.quiet = true;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			s->o.verbose = true;
		} else {
			for (k = 0; k < sizeof(valued) / sizeof(valued[0]); k++) {
				r = send_opt(argc, argv, &i, valued[k], &val);
				if (r != 0)
					break;
			}
			if (r == -1) {
				fprintf(stderr, "netwall send: %s needs a value\n", a);
				return 2;
			}
			if (r == 0) {
				fprintf(stderr, "netwall send: unknown option '%s'\n%s", a,
					send_usage);
				return 2;
			}
			if (send_opt_set(s, k, val) == -1)
				return 2;
		}
	}
	if (send_args_check(s) == -1)
		return 2;
	if (*nfiles == 0)
		(*files)[(*nfiles)++] = "-";
	return 0;
}

/* Runs the connection threads and, on a terminal, the progress bar until every message has
 * an outcome. Returns 0, or -1 if no thread could be started. */
static int send_run(struct send *s)
{
	unsigned nconn = s->o.conns < s->nmsgs ? s->o.conns : (unsigned)s->nmsgs;
	struct send_conn *conns = xcalloc(nconn, sizeof(*conns));
	pthread_condattr_t ca;
	unsigned started = 0;
	int rc = 0;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	s->start = clock_mono();
	for (unsigned i = 0; i < nconn; i++) {
		struct send_conn *c = &conns[i];

		c->s = s;
		c->fd = -1;
		c->fail_since = -1;
		c->backoff.initial = SEND_BACKOFF_FIRST;
		c->backoff.max = SEND_BACKOFF_MAX;
		c->rng = ((uint64_t)getpid() << 32) ^ (uint64_t)(s->start * 1e9);
		c->rng ^= (uint64_t)(i + 1) * 0x9e3779b97f4a7c15u;
		c->rng |= 1;
		mllp_init(&c->mllp, SEND_MAX_ACK);
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			fprintf(stderr, "netwall send: cannot start connection thread %u\n", i + 1);
			mllp_free(&c->mllp);
			break;
		}
		started++;
	}
	if (started == 0) {
		rc = -1;
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	while (s->done < s->nmsgs) {
		struct timespec ts;

		if (s->bar)
			send_bar_draw(s);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)(SEND_BAR_TICK * 1e9);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	if (s->bar) {
		send_bar_draw(s);
		fputc('\n', stderr);
		s->bar_drawn = false;
	}
	pthread_mutex_unlock(&s->lock);
out:
	for (unsigned i = 0; i < started; i++)
		pthread_join(conns[i].thread, NULL);
	pthread_cond_destroy(&s->cond);
	free(conns);
	return rc;
}

int cmd_send_main(int argc, char **argv)
{
	struct send s;
	const char **files = NULL;
	size_t nfiles = 0;
	int rc;

	memset(&s, 0, sizeof(s));
	s.o.conns = 1;
	s.o.timeout = 30;
	pthread_mutex_init(&s.lock, NULL);
	rc = send_args(&s, argc, argv, &files, &nfiles);
	if (rc != 0) {
		rc = rc == -1 ? 0 : rc;
		goto out;
	}
	rc = 1;
	s.srcs = xcalloc(nfiles, sizeof(*s.srcs));
	for (size_t i = 0; i < nfiles; i++) {
		if (send_load(&s, files[i]) == -1)
			rc = -1; /* go on, so every bad file is named at once */
	}
	if (rc == -1) {
		rc = 1;
		goto out;
	}
	rc = send_resolve(&s);
	if (rc != 0)
		goto out;
	rc = 1;
	if (s.o.tls && (s.tls = send_tls_ctx(&s)) == NULL)
		goto out;
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	s.bar = !s.o.quiet && s.nmsgs > SEND_BAR_MIN && isatty(STDERR_FILENO);
	s.out_tty = isatty(STDOUT_FILENO);
	if (send_run(&s) == -1)
		goto out;
	fflush(stdout);
	if (!s.o.quiet)
		send_summary(&s, clock_mono() - s.start);
	rc = s.counts[SEND_AA] + s.counts[SEND_CA] + s.counts[SEND_SENT] == s.nmsgs ? 0 : 1;
out:
	fflush(stdout);
	for (size_t i = 0; i < s.nsrcs; i++)
		buf_free(&s.srcs[i].text);
	free(s.srcs);
	free(s.msgs);
	free(files);
	if (s.ai != NULL)
		freeaddrinfo(s.ai);
	SSL_CTX_free(s.tls);
	pthread_mutex_destroy(&s.lock);
	return rc;
}
