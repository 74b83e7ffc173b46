/* netwall send: what the user sees: one line (or JSON object) per message,
 * connection problems once each, the progress bar and the summary. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/send.h"
#include "core/clock.h"

const char *const send_outcome_names[SEND_NOUTCOMES] = {
	"AA", "CA", "AE", "CE", "AR", "CR", "timeout", "closed", "noconn", "badack", "sent",
};

/* --- output -------------------------------------------------------------------------- */

static void send_json_str(FILE *f, const char *v)
{
	putc('"', f);
	for (; *v; v++) {
		unsigned char c = (unsigned char)*v;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
	}
	putc('"', f);
}

/* Clears the progress bar line, if one is on the screen. Under s->lock. */
static void send_bar_clear(struct send *s)
{
	if (s->bar_drawn) {
		fputs("\r\033[K", stderr);
		s->bar_drawn = false;
	}
}

void send_bar_draw(struct send *s)
{
	enum { WIDTH = 30 };
	double t = clock_mono() - s->start;
	size_t fill = s->nmsgs ? s->done * WIDTH / s->nmsgs : WIDTH;
	unsigned bad = 0;
	char bar[WIDTH + 1];

	for (int i = 0; i < SEND_NOUTCOMES; i++)
		bad += send_accepted((enum send_outcome)i) ? 0 : s->counts[i];
	for (size_t i = 0; i < WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu %3.0f%% %6.0f msg/s  not accepted %u\033[K", bar, s->done,
		s->nmsgs, s->nmsgs ? 100.0 * (double)s->done / (double)s->nmsgs : 100.0,
		t > 0 ? (double)s->done / t : 0.0, bad);
	s->bar_drawn = true;
}

/* Records m's outcome and prints its line. Takes s->lock. */
void send_report(struct send *s, const struct send_msg *m)
{
	bool show;

	pthread_mutex_lock(&s->lock);
	s->counts[m->out]++;
	s->done++;
	show = !send_accepted(m->out) || (!s->o.quiet && (!s->bar || s->o.verbose));
	if (show) {
		if (s->out_tty)
			send_bar_clear(s);
		if (s->o.json) {
			fputs("{\"source\":", stdout);
			send_json_str(stdout, m->src->name);
			printf(",\"n\":%u,\"control_id\":", m->n);
			send_json_str(stdout, m->ctrl);
			printf(",\"code\":\"%s\",\"latency_ms\":%.3f}\n",
			       send_outcome_names[m->out], m->latency * 1e3);
		} else {
			printf("%s:%u %s %s\n", m->src->name, m->n, m->ctrl,
			       send_outcome_names[m->out]);
		}
	}
	if (s->done == s->nmsgs)
		pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

/* Prints a connection-level problem on stderr, unless it repeats the last one printed. */
void send_problem(struct send *s, const char *fmt, ...)
{
	char line[sizeof(s->last_err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&s->lock);
	if (strcmp(line, s->last_err) != 0) {
		memcpy(s->last_err, line, sizeof(line));
		send_bar_clear(s);
		fprintf(stderr, "netwall send: %s\n", line);
	}
	pthread_mutex_unlock(&s->lock);
}

void send_summary(struct send *s, double seconds)
{
	const unsigned *n = s->counts;
	unsigned none = n[SEND_TIMEOUT] + n[SEND_CLOSED] + n[SEND_NOCONN] + n[SEND_BADACK];

	fprintf(stderr,
		"sent %zu, accepted %u (AA/CA), errors %u (AE/CE), rejected %u (AR/CR), "
		"no answer %u, no ACK requested %u in %.2f s (%.0f msg/s)\n",
		s->nmsgs, n[SEND_AA] + n[SEND_CA], n[SEND_AE] + n[SEND_CE],
		n[SEND_AR] + n[SEND_CR], none, n[SEND_SENT], seconds,
		seconds > 0 ? (double)s->nmsgs / seconds : 0.0);
}
