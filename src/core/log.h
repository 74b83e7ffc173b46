/* One logging module: key=value lines to stderr, levels, the role in every line. */
#ifndef NETWALL_LOG_H
#define NETWALL_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* A token bucket for lines a peer can trigger: at most LOG_RATE_BURST per second per bucket. */
struct log_rate {
	double window;
	unsigned count;
	unsigned suppressed;
};

void log_init(const char *role, enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
int log_level_parse(const char *s, enum log_level *out);

/* Writes "ts=... level=... role=... " followed by the formatted text and a newline.
 * errno is preserved. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like log_msg, but drops the line when the bucket is over its rate; the next line
 * that passes carries suppressed=N. */
void log_limited(struct log_rate *r, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The one escape for a value that came from a peer (a control ID, an account or nick, a
 * service or host name) before it reaches a log line: printable ASCII other than space,
 * '"', '\\', '%' and '=' is kept; every other byte becomes %XX, so no value can end its
 * field or forge another, and the original bytes can be read back. The result is cut at
 * a whole escape to fit len (len >= 1); a cut value ends in "%.." . Returns out. */
const char *log_value(char *out, size_t len, const char *in);
/* The same for the n bytes at in, which may hold NULs (each becomes %00). */
const char *log_valuen(char *out, size_t len, const char *in, size_t n);

/* Room for an escaped copy of a peer value of up to n bytes. */
#define LOG_VALUE_SIZE(n) (3 * (n) + 4)

/* Logs at error level and exits(1). For start-up failures and broken invariants only. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_enabled(LOG_DEBUG))                                                        \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                           \
	} while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
