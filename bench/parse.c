/* Parser throughput: loads every tests/data/*.hl7 sample (batches split into their
 * messages) and parses them over and over for a while, in two modes:
 *   index       hl7_parse only: every segment and field indexed
 *   components  hl7_parse, then every repetition and component of every field visited
 *               (with hl7_iter, as a converter walking a whole message would)
 * Prints MB/s of message bytes for each mode. Usage: parse [seconds per mode] [data dir] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hl7/hl7.h"

struct sample {
	char *data;
	size_t len;
};

static struct sample *samples;
static size_t nsamples, total;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void add(const char *p, size_t len)
{
	samples = realloc(samples, (nsamples + 1) * sizeof(*samples));
	if (samples == NULL)
		abort();
	samples[nsamples].data = malloc(len);
	if (samples[nsamples].data == NULL)
		abort();
	memcpy(samples[nsamples].data, p, len);
	samples[nsamples].len = len;
	nsamples++;
	total += len;
}

static int load(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (d == NULL) {
		perror(dir);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char path[1024];
		size_t n = strlen(de->d_name), len, pos = 0;
		struct hl7_str msg;
		char *buf;
		FILE *f;
		long sz;

		if (n < 4 || strcmp(de->d_name + n - 4, ".hl7") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "rb");
		if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0) {
			perror(path);
			return -1;
		}
		rewind(f);
		buf = malloc((size_t)sz + 1);
		len = buf ? fread(buf, 1, (size_t)sz, f) : 0;
		fclose(f);
		while (hl7_batch_next(buf, len, &pos, &msg) == 1)
			add(msg.p, msg.len);
		free(buf);
	}
	closedir(d);
	return nsamples ? 0 : -1;
}

/* Visits every repetition and component; returns a count so the work is not optimized out. */
static size_t walk(const struct hl7_msg *m)
{
	size_t n = 0;

	for (unsigned si = 0; si < m->nsegs; si++) {
		struct hl7_str f, r, c;

		for (unsigned fi = 1; hl7_field(m, si, fi, &f); fi++) {
			if (si == 0 && fi <= 2)
				continue;
			struct hl7_iter ri, ci;

			hl7_iter_init(&ri, f, m->d.rep);
			while (hl7_iter_next(&ri, &r)) {
				hl7_iter_init(&ci, r, m->d.comp);
				while (hl7_iter_next(&ci, &c))
					n += c.len + 1;
			}
		}
	}
	return n;
}

static double run(struct hl7_msg *m, double secs, int components, size_t *sink)
{
	double t0 = now(), t;
	size_t bytes = 0;

	do {
		for (int k = 0; k < 64; k++) {
			for (size_t i = 0; i < nsamples; i++) {
				if (hl7_parse(m, samples[i].data, samples[i].len, NULL) != 0)
					abort();
				*sink += m->nfields;
				if (components)
					*sink += walk(m);
			}
			bytes += total;
		}
		t = now() - t0;
	} while (t < secs);
	return (double)bytes / t / 1e6;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	const char *dir = argc > 2 ? argv[2] : "tests/data";
	struct hl7_msg m;
	size_t sink = 0;
	double idx, comp;

	if (load(dir) == -1) {
		fprintf(stderr, "parse: no samples in %s\n", dir);
		return 1;
	}
	hl7_msg_init(&m);
	run(&m, 0.2, 0, &sink); /* warm up */
	idx = run(&m, secs, 0, &sink);
	comp = run(&m, secs, 1, &sink);
	printf("hl7 parse: %zu messages, %zu bytes; index %.0f MB/s, index+components %.0f MB/s "
	       "(one core)\n",
	       nsamples, total, idx, comp);
	hl7_msg_free(&m);
	return sink == 0;
}
