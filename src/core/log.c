/* Logging: one line per event, key=value, to stderr. Never pass keys, passwords or message
 * bodies to these functions. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_RATE_BURST 10 /* peer-triggered lines per second per bucket */

static const char *log_role = "netwall";
static enum log_level log_min = LOG_INFO;
static const char *const log_names[] = { "debug", "info", "warn", "error" };

void log_init(const char *role, enum log_level level)
{
	log_role = role;
	log_min = level;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void log_set_level(enum log_level level)
{
	log_min = level;
}

bool log_enabled(enum log_level level)
{
	return level >= log_min;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_vmsg(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int saved = errno;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s role=%s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_names[level], log_role);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	fprintf(stderr, "%s%s\n", line, suffix);
	errno = saved;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fmt);
	log_vmsg(level, "", fmt, ap);
	va_end(ap);
}

void log_limited(struct log_rate *r, enum log_level level, const char *fmt, ...)
{
	struct timespec ts;
	char suffix[48] = "";
	va_list ap;
	double now;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (now - r->window >= 1.0) {
		r->window = now;
		r->count = 0;
	}
	if (r->count >= LOG_RATE_BURST) {
		r->suppressed++;
		return;
	}
	r->count++;
	if (r->suppressed) {
		snprintf(suffix, sizeof(suffix), " suppressed=%u", r->suppressed);
		r->suppressed = 0;
	}
	va_start(ap, fmt);
	log_vmsg(level, suffix, fmt, ap);
	va_end(ap);
}

const char *log_value(char *out, size_t len, const char *in)
{
	return log_valuen(out, len, in, strlen(in));
}

const char *log_valuen(char *out, size_t len, const char *in, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *end = in + n;
	size_t o = 0;

	for (; in < end; in++) {
		unsigned char ch = (unsigned char)*in;
		bool keep = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' && ch != '%' &&
			    ch != '=';
		size_t need = keep ? 1 : 3;

		if (o + need + 1 > len) {
			/* Mark the cut where there is room for it, never inside an escape
			 * ('%' is only ever written as the start of one). */
			while (o > 0 && (o + 4 > len || out[o - 1] == '%' ||
					 (o >= 2 && out[o - 2] == '%')))
				o--;
			if (o + 4 <= len) {
				memcpy(out + o, "%..", 3);
				o += 3;
			}
			break;
		}
		if (keep) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return out;
}

void log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, "", fmt, ap);
	va_end(ap);
	exit(1);
}
