/* Parser throughput: loads every tests/data/*.hl7 sample (batches split into their
 * messages) and parses them over and over for a while, in two modes:
 *   index       hl7_parse only: every segment and field indexed
 *   components  hl7_parse, then every repetition and component of every field visited
 *               (with hl7_iter, as a converter walking a whole message would)
 * Prints MB/s of message bytes for each mode. Then the JSON body (hl7json_message, what
 * the delivery worker builds; parse included) on three inputs, MB/s of message bytes, the
 * median of five runs:
 *   samples     the same samples (ordinary messages)
 *   wide        a 1 MiB message whose Z segment has one field of 500,000 components
 *               (over HL7JSON_MAX_PARTS: the field goes out whole, as {"raw": ...})
 *   split       a 1 MiB message whose Z segment has 128 fields of 4096 components each
 *               (at HL7JSON_MAX_PARTS: every field split, the most JSON values per byte)
 * Usage: parse [seconds per mode] [data dir] */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "hl7/hl7.h"
#include "hl7/hl7json.h"

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

/* MB/s of building the JSON of msgs[0..n) (parse included) for about secs. */
static double json_run(struct hl7_msg *m, const struct sample *msgs, size_t n, double secs,
		       size_t *sink)
{
	double t0 = now(), t;
	size_t bytes = 0;

	do {
		for (size_t i = 0; i < n; i++) {
			size_t len;
			char *j;

			if (hl7_parse(m, msgs[i].data, msgs[i].len, NULL) != 0)
				abort();
			j = hl7json_message(m, 1, &len);
			if (j == NULL)
				abort();
			*sink += len;
			hl7json_free(j, len);
			bytes += msgs[i].len;
		}
		t = now() - t0;
	} while (t < secs);
	return (double)bytes / t / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of five json_run of secs / 5 each. */
static double json_median(struct hl7_msg *m, const struct sample *msgs, size_t n, double secs,
			  size_t *sink)
{
	double r[5];

	for (int i = 0; i < 5; i++)
		r[i] = json_run(m, msgs, n, secs / 5, sink);
	qsort(r, 5, sizeof(r[0]), cmp_double);
	return r[2];
}

/* A message with a ZRX segment of nf fields, each "x^" per times and "x". */
static struct sample wide_msg(size_t nf, size_t per)
{
	static const char head[] = "MSH|^~\\&|APP|FAC|EMAR|WARD|20260101120000||RDE^O11^RDE_O11|"
				   "B1|P|2.5.1\rPID|1||123^^^HOSP^MR||DOE^JOHN||19700101|F\rZRX";
	size_t cap = sizeof(head) + nf * (2 * per + 2) + 2;
	struct sample w = { malloc(cap), 0 };

	if (w.data == NULL)
		abort();
	memcpy(w.data, head, sizeof(head) - 1);
	w.len = sizeof(head) - 1;
	for (size_t f = 0; f < nf; f++) {
		w.data[w.len++] = '|';
		for (size_t i = 0; i < per; i++) {
			w.data[w.len++] = 'x';
			w.data[w.len++] = '^';
		}
		w.data[w.len++] = 'x';
	}
	w.data[w.len++] = '\r';
	return w;
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
	{
		struct sample wide = wide_msg(1, 500000), split = wide_msg(128, HL7JSON_MAX_PARTS - 1);
		double js, jw, jp;
		struct rusage ru;

		hl7json_init();
		json_run(&m, samples, nsamples, 0.2, &sink); /* warm up */
		js = json_median(&m, samples, nsamples, secs, &sink);
		jw = json_median(&m, &wide, 1, secs, &sink);
		jp = json_median(&m, &split, 1, secs, &sink);
		getrusage(RUSAGE_SELF, &ru);
		printf("hl7 json (median of 5): samples %.0f MB/s, wide %zu bytes (1 field of 500000 "
		       "components) %.0f MB/s, split %zu bytes (128 fields of %d components) %.0f "
		       "MB/s; peak RSS %ld MiB (one core)\n",
		       js, wide.len, jw, split.len, HL7JSON_MAX_PARTS, jp, ru.ru_maxrss / 1024);
		free(wide.data);
		free(split.data);
	}
	hl7_msg_free(&m);
	return sink == 0;
}
