/* netwall send: the inputs, read whole and split into messages at each MSH
 * (a file starting with FHS or BHS is one batch), with MSH-10 and MSH-15 noted. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/send.h"
#include "core/xalloc.h"

/* --- input --------------------------------------------------------------------------- */

static int send_read_all(int fd, struct buf *b, char *err, size_t errlen)
{
	for (;;) {
		ssize_t n;

		if (b->len >= SEND_MAX_INPUT) {
			snprintf(err, errlen, "larger than %u MiB", SEND_MAX_INPUT >> 20);
			return -1;
		}
		n = read(fd, buf_tail(b, 65536), 65536);
		if (n == 0)
			return 0;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s", strerror(errno));
			return -1;
		}
		buf_commit(b, (size_t)n);
	}
}

static bool send_seg_is(const uint8_t *p, size_t len, const char *name)
{
	return len >= 3 && memcmp(p, name, 3) == 0;
}

/* Copies field `want` (10 for MSH-10) of the MSH segment at p[0..len) into out, printable:
 * a byte that is not visible ASCII becomes '?'; an empty or absent field leaves out as it
 * was. */
static void send_msh_field(const uint8_t *p, size_t len, unsigned want, char *out,
			   size_t outlen)
{
	size_t i, k = 0;
	unsigned field = 1; /* "MSH" is field 0; p[3] separates it from MSH-2 */
	uint8_t sep;

	if (len < 4)
		return;
	sep = p[3];
	for (i = 3; i < len && field < want; i++) {
		if (p[i] == sep)
			field++;
	}
	if (field < want)
		return;
	/* i is now just past the separator before the field (MSH-1 counts as field 1) */
	for (; i < len && p[i] != sep && p[i] != MLLP_CR && k + 1 < outlen; i++)
		out[k++] = (p[i] > 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	if (k > 0)
		out[k] = '\0';
}

static void send_msg_add(struct send *s, struct send_src *src, size_t off, unsigned n)
{
	struct send_msg *m;

	if (s->nmsgs == s->msgcap) {
		size_t cap = s->msgcap ? s->msgcap * 2 : 64;
		s->msgs = xreallocarray(s->msgs, cap, sizeof(*s->msgs));
		s->msgcap = cap;
	}
	m = &s->msgs[s->nmsgs++];
	memset(m, 0, sizeof(*m));
	m->src = src;
	m->off = off;
	m->n = n;
}

/* Ends the message being built (the last in s->msgs) at the end of src->text and reads its
 * control ID from its first MSH segment. */
static void send_msg_end(struct send *s, struct send_src *src)
{
	struct send_msg *m = &s->msgs[s->nmsgs - 1];
	const uint8_t *p = buf_head(&src->text) + m->off;
	size_t pos = 0;

	m->len = src->text.len - m->off;
	memcpy(m->ctrl, "-", 2);
	while (pos < m->len) {
		const uint8_t *cr = memchr(p + pos, MLLP_CR, m->len - pos);
		size_t seglen = (size_t)(cr - (p + pos)); /* every segment ends with CR here */

		if (send_seg_is(p + pos, seglen, "MSH")) {
			send_msh_field(p + pos, seglen, 10, m->ctrl, sizeof(m->ctrl));
			/* a batch is always answered (by a batch): its MSH-15s do not count */
			if (!send_seg_is(p, m->len, "FHS") && !send_seg_is(p, m->len, "BHS"))
				send_msh_field(p + pos, seglen, 15, m->accept, sizeof(m->accept));
			break;
		}
		pos += seglen + 1;
	}
}

/* Refuses bytes that would break the framing (<VT>, <FS>) or that no HL7 text holds (NUL),
 * naming the line of the first. Lines end as send_split sees them: LF, CR or CRLF. */
static int send_check_bytes(const uint8_t *raw, size_t len, char *err, size_t errlen)
{
	static const uint8_t bad[] = {MLLP_VT, MLLP_FS, 0};
	size_t at = len;
	unsigned line = 1;

	for (size_t i = 0; i < sizeof(bad); i++) {
		const uint8_t *p = memchr(raw, bad[i], at);

		if (p != NULL)
			at = (size_t)(p - raw);
	}
	if (at == len)
		return 0;
	for (size_t i = 0; i < at; i++) {
		if (raw[i] == '\n' || (raw[i] == '\r' && (i + 1 == len || raw[i + 1] != '\n')))
			line++;
	}
	snprintf(err, errlen, "line %u: byte 0x%02x cannot be sent over MLLP", line, raw[at]);
	return -1;
}

/* Splits the bytes of one input into messages (see the usage text), appending them to
 * s->msgs with their text in src->text. Returns 0, or -1 with err filled ("LINE: why"). */
static int send_split(struct send *s, struct send_src *src, const uint8_t *raw, size_t len,
		      char *err, size_t errlen)
{
	size_t pos = 0, first = s->nmsgs;
	unsigned line = 0, n = 0;
	bool batch = false, any = false;

	if (send_check_bytes(raw, len, err, errlen) == -1)
		return -1;
	if (len >= 3 && memcmp(raw, "\xef\xbb\xbf", 3) == 0)
		pos = 3; /* a UTF-8 byte order mark */
	while (pos < len) {
		const uint8_t *p = raw + pos;
		size_t end = pos, blank = 0, seglen;

		line++;
		for (; end < len && raw[end] != '\n' && raw[end] != '\r'; end++) {
			if (raw[end] == ' ' || raw[end] == '\t')
				blank++;
		}
		seglen = end - pos;

		pos = end;
		if (pos < len && raw[pos] == '\r' && pos + 1 < len && raw[pos + 1] == '\n')
			pos++;
		if (pos < len)
			pos++;
		if (blank == seglen)
			continue;
		if (!any) {
			batch = send_seg_is(p, seglen, "FHS") || send_seg_is(p, seglen, "BHS");
			if (!batch && !send_seg_is(p, seglen, "MSH")) {
				snprintf(err, errlen, "line %u: a message must start with MSH "
					 "(a batch with FHS or BHS)", line);
				goto fail;
			}
		}
		if (!any || (!batch && send_seg_is(p, seglen, "MSH"))) {
			if (any)
				send_msg_end(s, src);
			send_msg_add(s, src, src->text.len, ++n);
		}
		any = true;
		buf_append(&src->text, p, seglen);
		buf_append(&src->text, "\r", 1);
	}
	if (!any) {
		snprintf(err, errlen, "no HL7 message in it");
		goto fail;
	}
	send_msg_end(s, src);
	return 0;
fail:
	s->nmsgs = first;
	return -1;
}

int send_load(struct send *s, const char *name)
{
	struct send_src *src;
	struct buf raw = {0};
	char err[256];
	int fd = 0, rc = -1;

	if (strcmp(name, "-") != 0) {
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd == -1) {
			fprintf(stderr, "netwall send: %s: %s\n", name, strerror(errno));
			return -1;
		}
	}
	src = &s->srcs[s->nsrcs++];
	src->name = name;
	if (send_read_all(fd, &raw, err, sizeof(err)) == -1 ||
	    send_split(s, src, buf_head(&raw), raw.len, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall send: %s: %s\n", name, err);
		goto out;
	}
	rc = 0;
out:
	buf_free(&raw);
	if (fd > 0)
		close(fd);
	return rc;
}
