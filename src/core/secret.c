#include "core/secret.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"

static bool secret_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The token in raw[0..len), or NULL with the reason in err. */
static char *secret_parse(const char *path, char *raw, size_t len, size_t min, size_t max,
			  char *err, size_t errlen)
{
	size_t a = 0;

	while (len > 0 && secret_space(raw[len - 1]))
		len--;
	while (a < len && secret_space(raw[a]))
		a++;
	if (len - a < min || len - a > max) {
		snprintf(err, errlen, "'%s': want a token of %zu to %zu characters", path, min, max);
		return NULL;
	}
	for (size_t i = a; i < len; i++) {
		if (raw[i] <= ' ' || raw[i] > '~') {
			snprintf(err, errlen, "'%s': the token must be one line of printable ASCII "
					      "without spaces", path);
			return NULL;
		}
	}
	return xstrndup(raw + a, len - a);
}

char *secret_read_file(const char *path, size_t cap, size_t *len, char *err, size_t errlen)
{
	char *raw;
	ssize_t n = 0;
	struct stat st;
	/* non-blocking: a FIFO must not hold the loop in open() until a writer comes */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	*len = 0;
	if (fd == -1) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "'%s': not a regular file", path);
		close(fd);
		return NULL;
	}
	raw = xmalloc(cap);
	while (*len < cap &&
	       ((n = read(fd, raw + *len, cap - *len)) > 0 || (n == -1 && errno == EINTR)))
		*len += n > 0 ? (size_t)n : 0;
	close(fd);
	if (n == -1 || *len == cap) {
		if (n == -1)
			snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		else
			snprintf(err, errlen, "'%s': longer than %zu bytes", path, cap - 1);
		explicit_bzero(raw, cap);
		free(raw);
		return NULL;
	}
	return raw;
}

char *secret_read_token(const char *path, size_t min, size_t max, char *err, size_t errlen)
{
	size_t cap = max + 4096, len; /* room for surrounding white space, and to see more */
	char *raw = secret_read_file(path, cap, &len, err, errlen), *tok;

	if (raw == NULL)
		return NULL;
	tok = secret_parse(path, raw, len, min, max, err, errlen);
	explicit_bzero(raw, cap);
	free(raw);
	return tok;
}

void secret_free(char *token)
{
	if (token == NULL)
		return;
	explicit_bzero(token, strlen(token));
	free(token);
}
