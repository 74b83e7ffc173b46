/* What every fuzz target shares: check(), which aborts with the failed condition so that
 * libFuzzer records the input, a copy of the input in a heap block of exactly its size (a
 * read past the end is then caught by AddressSanitizer), and, with -DFUZZ_STANDALONE, a main
 * that runs the files named on its command line through the target without libFuzzer. */
#ifndef NETWALL_FUZZ_COMMON_H
#define NETWALL_FUZZ_COMMON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A malloc'd copy of p[0..len) in a block of exactly len bytes (one byte when len is 0),
 * plus extra writable bytes after it when extra > 0. */
static inline void *fuzz_dup(const void *p, size_t len, size_t extra)
{
	void *q = malloc(len + extra ? len + extra : 1);

	check(q != NULL);
	if (len)
		memcpy(q, p, len);
	return q;
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static inline bool utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], need, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, cp = c & 0x07;
		else
			return false;
		if (n - i - 1 < need)
			return false;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* A private temporary directory under $TMPDIR (else /tmp), made once per process and
 * removed at exit (with the files named through fuzz_path), so that relative paths in an
 * input resolve inside it. */
const char *fuzz_dir(void);
/* The path of name inside fuzz_dir(); the file is removed at exit. At most 8 names. */
const char *fuzz_path(const char *name);
/* Writes data to fuzz_path("input") and returns that path. For the parsers that read
 * files. */
const char *fuzz_file(const uint8_t *data, size_t size);

#ifdef FUZZ_FILE_IMPL
#include <fcntl.h>
#include <unistd.h>

static char fuzz_dirname[256];
static char fuzz_paths[8][300];
static int fuzz_npaths, fuzz_fd = -1;

static void fuzz_cleanup(void)
{
	for (int i = 0; i < fuzz_npaths; i++)
		unlink(fuzz_paths[i]);
	if (fuzz_dirname[0] != '\0')
		rmdir(fuzz_dirname);
}

const char *fuzz_dir(void)
{
	if (fuzz_dirname[0] == '\0') {
		const char *tmp = getenv("TMPDIR");

		if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) > 200)
			tmp = "/tmp";
		snprintf(fuzz_dirname, sizeof(fuzz_dirname), "%s/netwall-fuzz-XXXXXX", tmp);
		check(mkdtemp(fuzz_dirname) != NULL);
		atexit(fuzz_cleanup);
	}
	return fuzz_dirname;
}

const char *fuzz_path(const char *name)
{
	char p[300];

	check((size_t)snprintf(p, sizeof(p), "%s/%s", fuzz_dir(), name) < sizeof(p));
	for (int i = 0; i < fuzz_npaths; i++)
		if (strcmp(fuzz_paths[i], p) == 0)
			return fuzz_paths[i];
	check(fuzz_npaths < 8);
	memcpy(fuzz_paths[fuzz_npaths], p, sizeof(p));
	return fuzz_paths[fuzz_npaths++];
}

const char *fuzz_file(const uint8_t *data, size_t size)
{
	const char *path = fuzz_path("input");

	if (fuzz_fd == -1) {
		fuzz_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		check(fuzz_fd != -1);
	}
	check(ftruncate(fuzz_fd, 0) == 0);
	check(size == 0 || pwrite(fuzz_fd, data, size, 0) == (ssize_t)size);
	return path;
}
#endif

#ifdef FUZZ_STANDALONE
int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	return 0;
}
#endif

#endif
