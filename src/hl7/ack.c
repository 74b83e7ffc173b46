/* Acknowledgements: the ACK we answer with, and reading the ACK a peer answers with. */
#include "hl7/ack.h"

#include <stdio.h>
#include <string.h>

/* How the ERR segment is written, from MSH-12. */
enum err_style {
	ERR_OLD = 0, /* before 2.5: ERR-1 only */
	ERR_NEW,     /* 2.5 and later: ERR-2, ERR-3, ERR-4 */
	ERR_BOTH,    /* version unknown: both, which 2.5 still allows */
};

static bool str_is(struct hl7_str v, const char *s)
{
	size_t n = strlen(s);

	return v.len == n && memcmp(v.p, s, n) == 0;
}

bool ack_enhanced(const struct hl7_msg *m)
{
	struct hl7_str v;

	return hl7_get(m, "MSH-15", &v) == 1 || hl7_get(m, "MSH-16", &v) == 1;
}

bool ack_wanted(const struct hl7_msg *m, enum ack_code code)
{
	struct hl7_str v;

	if (hl7_is_ack(m))
		return false;
	if (!ack_enhanced(m))
		return true;
	if (hl7_get(m, "MSH-15", &v) != 1 || str_is(v, "AL"))
		return true;
	if (str_is(v, "NE"))
		return false;
	if (str_is(v, "ER"))
		return code != ACK_ACCEPT;
	if (str_is(v, "SU"))
		return code == ACK_ACCEPT;
	return true; /* an unknown value: answer rather than leave the sender waiting */
}

static void put(struct buf *out, const char *s, size_t n)
{
	buf_append(out, s, n);
}

static void puts_(struct buf *out, const char *s)
{
	buf_append(out, s, strlen(s));
}

static void putc_(struct buf *out, char c)
{
	buf_append(out, &c, 1);
}

/* Appends s escaped for the delimiters d. Without an escape character a delimiter cannot
 * be written, so it is dropped. */
static void put_escaped(struct buf *out, const struct hl7_delims *d, const char *s)
{
	for (; *s != '\0'; s++) {
		char e = 0;

		if (*s == d->field)
			e = 'F';
		else if (*s == d->comp)
			e = 'S';
		else if (*s == d->rep)
			e = 'R';
		else if (d->esc && *s == d->esc)
			e = 'E';
		else if (d->sub && *s == d->sub)
			e = 'T';
		else if (d->trunc && *s == d->trunc)
			e = 'P';
		else if (*s == '\r' || *s == '\n')
			continue;
		if (e == 0) {
			putc_(out, *s);
		} else if (d->esc) {
			char seq[3] = {d->esc, e, d->esc};

			put(out, seq, 3);
		}
	}
}

static void put_field(struct buf *out, const struct hl7_msg *m, unsigned f)
{
	struct hl7_str v;

	if (hl7_field(m, 0, f, &v))
		put(out, v.p, v.len);
}

/* MSH-1 and MSH-2 from the delimiters: for a parsed message the sender's own bytes again;
 * for a header read past a malformed MSH-2 (hl7_parse_header) the ones it was read with,
 * never the malformed bytes. */
static void put_delims(struct buf *out, const struct hl7_delims *d)
{
	putc_(out, d->field);
	putc_(out, d->comp);
	putc_(out, d->rep);
	if (d->esc)
		putc_(out, d->esc);
	if (d->sub)
		putc_(out, d->sub);
	if (d->trunc)
		putc_(out, d->trunc);
}

static bool is_delim(const struct hl7_delims *d, char c)
{
	return c == d->field || c == d->comp || c == d->rep || (d->esc && c == d->esc) ||
	       (d->sub && c == d->sub) || (d->trunc && c == d->trunc);
}

/* MSH-7 in UTC. A sender whose delimiters include '+' gets the time without its offset:
 * an escaped sign would not read as a time anywhere. */
static void put_time(struct buf *out, const struct hl7_delims *d, time_t now)
{
	struct tm tm;
	char ts[32];
	size_t n;

	if (gmtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	n = strftime(ts, sizeof(ts), is_delim(d, '+') ? "%Y%m%d%H%M%S" : "%Y%m%d%H%M%S+0000", &tm);
	put(out, ts, n);
}

static enum err_style err_style(const struct hl7_msg *m)
{
	struct hl7_str v;
	unsigned major = 0, minor = 0;
	size_t i = 0;

	if (m == NULL || hl7_get(m, "MSH-12.1", &v) != 1)
		return ERR_BOTH;
	while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && major < 100)
		major = major * 10 + (unsigned)(v.p[i++] - '0');
	if (i == 0 || i >= v.len || v.p[i++] != '.')
		return ERR_BOTH;
	if (i >= v.len || v.p[i] < '0' || v.p[i] > '9')
		return ERR_BOTH;
	while (i < v.len && v.p[i] >= '0' && v.p[i] <= '9' && minor < 100)
		minor = minor * 10 + (unsigned)(v.p[i++] - '0');
	return major < 2 || (major == 2 && minor < 5) ? ERR_OLD : ERR_NEW;
}

static unsigned err_code(const struct hl7_error *err)
{
	return err->code == HL7_OK ? HL7_INTERNAL : (unsigned)err->code;
}

/* "SEG^seq^field", empty parts for what is unknown. */
static void put_location(struct buf *out, const struct hl7_delims *d, const struct hl7_error *err)
{
	char num[16];
	int n;

	if (err->segment[0] != '\0')
		put_escaped(out, d, err->segment);
	putc_(out, d->comp);
	if (err->seq) {
		n = snprintf(num, sizeof(num), "%u", err->seq);
		put(out, num, (size_t)n);
	}
	putc_(out, d->comp);
	if (err->field) {
		n = snprintf(num, sizeof(num), "%u", err->field);
		put(out, num, (size_t)n);
	}
}

static void put_err(struct buf *out, const struct hl7_delims *d, const struct hl7_error *err,
		    enum err_style style)
{
	char code[8];
	int n = snprintf(code, sizeof(code), "%03u", err_code(err));

	puts_(out, "ERR");
	putc_(out, d->field);
	if (style != ERR_NEW) {
		/* ERR-1 (ELD): SEG^seq^field^code&text&HL70357 */
		put_location(out, d, err);
		putc_(out, d->comp);
		put(out, code, (size_t)n);
		if (d->sub) {
			putc_(out, d->sub);
			put_escaped(out, d, err->text);
			putc_(out, d->sub);
			puts_(out, "HL70357");
		}
	}
	if (style != ERR_OLD) {
		/* ERR-2 (ERL) location, ERR-3 (CWE) code, ERR-4 severity */
		putc_(out, d->field);
		if (err->segment[0] != '\0')
			put_location(out, d, err);
		putc_(out, d->field);
		put(out, code, (size_t)n);
		putc_(out, d->comp);
		put_escaped(out, d, err->text);
		putc_(out, d->comp);
		puts_(out, "HL70357");
		putc_(out, d->field);
		putc_(out, 'E');
	}
	putc_(out, '\r');
}

static const char *msa_code(bool enhanced, enum ack_code code)
{
	static const char *const orig[] = {"AA", "AE", "AR"};
	static const char *const enh[] = {"CA", "CE", "CR"};
	unsigned i = code <= ACK_REJECT ? (unsigned)code : (unsigned)ACK_REJECT;

	return enhanced ? enh[i] : orig[i];
}

int ack_build(struct buf *out, const struct hl7_msg *m, enum ack_code code,
	      const struct hl7_error *err, const char *control_id, time_t now)
{
	const struct hl7_delims *d = &m->d;
	struct hl7_str v;

	if (hl7_is_ack(m))
		return -1;
	/* MSH: our side becomes the sender */
	puts_(out, "MSH");
	put_delims(out, d);
	putc_(out, d->field);
	put_field(out, m, 5);
	putc_(out, d->field);
	put_field(out, m, 6);
	putc_(out, d->field);
	put_field(out, m, 3);
	putc_(out, d->field);
	put_field(out, m, 4);
	putc_(out, d->field);
	put_time(out, d, now);
	putc_(out, d->field); /* MSH-8 security stays empty */
	putc_(out, d->field);
	puts_(out, "ACK");
	if (hl7_get(m, "MSH-9.2", &v) == 1) {
		putc_(out, d->comp);
		put(out, v.p, v.len);
		putc_(out, d->comp);
		puts_(out, "ACK");
	}
	putc_(out, d->field);
	put_escaped(out, d, control_id);
	putc_(out, d->field);
	put_field(out, m, 11);
	putc_(out, d->field);
	put_field(out, m, 12);
	putc_(out, '\r');

	/* MSA-1 code, MSA-2 the received MSH-10, MSA-3 a content-free text */
	puts_(out, "MSA");
	putc_(out, d->field);
	puts_(out, msa_code(ack_enhanced(m), code));
	putc_(out, d->field);
	put_field(out, m, 10);
	if (code != ACK_ACCEPT && err != NULL && err->text[0] != '\0') {
		putc_(out, d->field);
		put_escaped(out, d, err->text);
	}
	putc_(out, '\r');
	if (code != ACK_ACCEPT && err != NULL)
		put_err(out, d, err, err_style(m));
	return 0;
}

void ack_build_unparsed(struct buf *out, const struct hl7_error *err, const char *control_id,
			time_t now)
{
	static const struct hl7_delims d = {'|', '^', '~', '\\', '&', 0};

	puts_(out, "MSH|^~\\&|||||");
	put_time(out, &d, now);
	puts_(out, "||ACK|");
	put_escaped(out, &d, control_id);
	puts_(out, "|P|2.5\rMSA|AR|");
	if (err->text[0] != '\0') {
		putc_(out, '|');
		put_escaped(out, &d, err->text);
	}
	putc_(out, '\r');
	put_err(out, &d, err, ERR_BOTH);
}

int ack_parse(const char *data, size_t len, char code[3], char *ctrl, size_t ctrllen)
{
	static const char *const codes[] = {"AA", "AE", "AR", "CA", "CE", "CR"};
	struct hl7_msg m;
	struct hl7_str v;
	int rc = -1;

	hl7_msg_init(&m);
	if (hl7_parse(&m, data, len, NULL) == -1)
		goto out;
	if (hl7_get(&m, "MSA-1", &v) != 1 || v.len != 2)
		goto out;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (memcmp(v.p, codes[i], 2) == 0) {
			rc = 0;
			break;
		}
	}
	if (rc == -1)
		goto out;
	memcpy(code, v.p, 2);
	code[2] = '\0';
	hl7_get(&m, "MSA-2", &v);
	if (ctrllen > 0)
		hl7_copy(&m.d, v, ctrl, ctrllen);
out:
	hl7_msg_free(&m);
	return rc;
}
