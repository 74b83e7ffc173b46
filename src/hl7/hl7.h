/* The HL7 v2 parser: one pass over a message indexes its segments and fields as offsets into
 * the caller's bytes (zero-copy; the bytes must outlive the struct hl7_msg views). The
 * index arrays belong to the struct and are reused from message to message, so parsing
 * allocates only when a message is larger than any before it; never per field.
 *
 * Repetitions, components and subcomponents are found on demand inside a field view;
 * escape sequences are decoded on demand by hl7_unescape. Views are never NUL-terminated.
 *
 * Numbering follows the standard: fields are 1-based (MSH-1 is the field separator itself,
 * MSH-2 the encoding characters, so MSH-9 is the message type as everywhere else);
 * repetitions, components and subcomponents are 1-based; segment occurrences are 1-based.
 *
 * Error text never contains message content (it may be patient data): only segment names,
 * positions and the HL7 table 0357 code. */
#ifndef NETWALL_HL7_H
#define NETWALL_HL7_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HL7_MAX_SEGMENTS 65536 /* per message; more is an error */
#define HL7_MAX_FIELDS 1024    /* per segment; more is an error */

/* A view into the message bytes. */
struct hl7_str {
	const char *p;
	size_t len;
};

/* Delimiters from MSH-1 and MSH-2. trunc is the v2.7 truncation character, 0 if absent. */
struct hl7_delims {
	char field; /* MSH-1, usually '|' */
	char comp;  /* '^' */
	char rep;   /* '~' */
	char esc;   /* '\\', 0 if MSH-2 omits it (then nothing is an escape) */
	char sub;   /* '&', 0 if MSH-2 omits it */
	char trunc; /* '#', 0 if absent */
};

/* HL7 table 0357, message error condition codes. */
enum hl7_code {
	HL7_OK = 0,
	HL7_SEGMENT_SEQUENCE = 100, /* e.g. the message does not start with MSH */
	HL7_REQUIRED_FIELD = 101,   /* e.g. MSH-9, MSH-10, MSH-12 missing */
	HL7_DATA_TYPE = 102,        /* e.g. a malformed MSH-2 */
	HL7_TABLE_VALUE = 103,
	HL7_UNSUPPORTED_TYPE = 200,
	HL7_UNSUPPORTED_EVENT = 201,
	HL7_UNSUPPORTED_PROCESSING_ID = 202,
	HL7_UNSUPPORTED_VERSION = 203,
	HL7_UNKNOWN_KEY = 204,
	HL7_DUPLICATE_KEY = 205,
	HL7_RECORD_LOCKED = 206,
	HL7_INTERNAL = 207,
};

/* Where and what went wrong, for the ERR segment and the log. No message content. */
struct hl7_error {
	enum hl7_code code;
	char segment[4]; /* "MSH", "" if none */
	unsigned seq;    /* segment sequence in the message, 1-based; 0 if none */
	unsigned field;  /* field position, 0 if none */
	char text[96];   /* e.g. "MSH-2 encoding characters malformed" */
};

struct hl7_seg {
	uint32_t off;    /* of the segment's first byte (its name) */
	uint32_t len;    /* without the terminator */
	uint32_t field0; /* index in hl7_msg.fields of this segment's field 1 */
	uint32_t nfields;
	char name[4]; /* NUL-terminated copy of the 3-character segment ID */
};

/* What hl7_parse read beyond the standard's letter (bits of struct hl7_msg.quirks): the
 * parser takes these as real senders write them; a receiver that must refuse them asks. */
#define HL7_QUIRK_BOM  0x1u /* a UTF-8 byte order mark before MSH, skipped */
#define HL7_QUIRK_CR   0x2u /* a segment ended by CR alone (the standard's terminator) */
#define HL7_QUIRK_LF   0x4u /* a segment ended by LF alone */
#define HL7_QUIRK_CRLF 0x8u /* a segment ended by CR LF */

struct hl7_msg {
	const char *data; /* the message, not owned */
	size_t len;
	struct hl7_delims d;
	unsigned quirks; /* HL7_QUIRK_* bits */
	struct hl7_str charset; /* MSH-18, first repetition; len 0 if absent */
	/* Segment and field index, reused between parses. fields[] hold offsets and lengths;
	 * field 1 of MSH is the field separator (len 1), field 2 the encoding characters. */
	struct hl7_seg *segs;
	uint32_t nsegs, segcap;
	struct hl7_fld {
		uint32_t off, len;
	} *fields;
	uint32_t nfields, fieldcap;
};

void hl7_msg_init(struct hl7_msg *m);
void hl7_msg_free(struct hl7_msg *m);

/* Parses one message (starting with MSH; for batches use hl7_batch_next first) from
 * data[0..len). A UTF-8 byte order mark at data[0] is skipped (the views never include
 * it); segments end at CR, LF or CRLF, each noted in m->quirks; empty lines are skipped; a
 * trailing terminator is optional. Fills m, which then points into data. Returns 0, or -1 with err
 * filled (code, segment, position, a content-free text). A malformed MSH-2 (fewer than
 * 2 or repeated or alphanumeric encoding characters, a delimiter equal to another) is an
 * error, not a guess. */
int hl7_parse(struct hl7_msg *m, const char *data, size_t len, struct hl7_error *err);
/* Errors: no MSH first -> HL7_SEGMENT_SEQUENCE; MSH-1 absent -> HL7_REQUIRED_FIELD; bad
 * MSH-1 or MSH-2 -> HL7_DATA_TYPE; a segment name that is not 3 of [A-Z0-9] or more than
 * HL7_MAX_SEGMENTS segments -> HL7_SEGMENT_SEQUENCE; more than HL7_MAX_FIELDS fields in a
 * segment -> HL7_DATA_TYPE. Leading CR/LF and lines of blanks only are skipped. After a
 * failure m holds no segments. err may be NULL. */

/* For bytes hl7_parse refused: reads only the header, splitting the first line at MSH-1
 * alone, so that an answer can still name the message it refuses (MSH-3..6, MSH-10..12).
 * Skips a byte order mark and leading CR/LF as hl7_parse does. Fills m with one segment,
 * MSH, whose fields (at most HL7_MAX_FIELDS) are views into data; m->d are MSH-2's
 * delimiters when MSH-2 is well formed, else the standard's ^~\& with MSH-1 as the field
 * separator (one of them equal to MSH-1 is replaced by '|'). Returns 0, or -1 (m holds no
 * segment) when the bytes do not start with MSH and a valid MSH-1. Linear in the first
 * line; never allocates more than hl7_parse would. */
int hl7_parse_header(struct hl7_msg *m, const char *data, size_t len);

/* Index of the n-th (1-based) segment named name, or -1. */
int hl7_seg_find(const struct hl7_msg *m, const char *name, unsigned n);

/* Field f (1-based) of segment index si. Returns true and the raw (still escaped) view if
 * present; false (and an empty view) if the segment has fewer fields. */
bool hl7_field(const struct hl7_msg *m, unsigned si, unsigned f, struct hl7_str *out);

/* Within a field view: repetition r, component c, subcomponent s (1-based). Return false
 * and an empty view when absent; an empty input has no parts, a non-empty one has one more
 * part than it has delimiters (some may be empty). Callers must not split MSH-1 and MSH-2
 * (hl7_get does not). Without a subcomponent separator, s == 1 is the whole view. */
bool hl7_rep(const struct hl7_delims *d, struct hl7_str field, unsigned r, struct hl7_str *out);
bool hl7_comp(const struct hl7_delims *d, struct hl7_str rep, unsigned c, struct hl7_str *out);
bool hl7_sub(const struct hl7_delims *d, struct hl7_str comp, unsigned s, struct hl7_str *out);
/* Number of repetitions in a field (0 for an empty field). */
unsigned hl7_reps(const struct hl7_delims *d, struct hl7_str field);

/* Walking all parts in order: hl7_rep/comp/sub rescan from the start, so a loop over them
 * costs O(n^2) in the parts; the iterator is linear. It yields exactly the parts those
 * functions number 1, 2, ... (none for an empty view). delim is d->rep, d->comp or d->sub
 * (0: the whole view is one part). The iterator holds views into v only. */
struct hl7_iter {
	const char *p, *end;
	char delim;
	bool done;
};
void hl7_iter_init(struct hl7_iter *it, struct hl7_str v, char delim);
bool hl7_iter_next(struct hl7_iter *it, struct hl7_str *out);

/* Looks up a path: SEG[(occ)]-F[\[rep\]][.C[.S]], e.g. "MSH-9.1", "PID-3[2].1",
 * "OBX(2)-5", "PID-5.1.1". Without [rep] the first repetition is used (except MSH-1/2,
 * returned whole; any index past 1 under them is absent). Numbers are 1 to 999999 without
 * leading zeros. Returns 1 and the raw view when present and not empty, 0 when absent or
 * empty (HL7's "not valued"; "" is valued, see hl7_is_null), -1 for a malformed path. */
int hl7_get(const struct hl7_msg *m, const char *path, struct hl7_str *out);

/* True for the explicit null "" (two double quotes). */
bool hl7_is_null(struct hl7_str v);

/* Decodes escape sequences in v into out (outlen >= v.len always suffices; the decoded
 * form is never longer; with less room the output is cut at outlen): \F\ \S\ \T\ \R\ \E\
 * (and v2.7's \P\ when MSH-2 has a truncation character) give the delimiters, \Xhh..\ the bytes,
 * \.br\ and \.sp\ a line feed, other formatting (\H\ \N\ \.in\ \.ti\ \.sk\ \.ce\ \.fi\
 * \.nf\) and character-set escapes (\C..\ \M..\ \Z..\) are dropped; an unterminated or
 * unknown escape is copied literally. Returns the decoded length. */
size_t hl7_unescape(const struct hl7_delims *d, struct hl7_str v, char *out, size_t outlen);

/* Copies the decoded value into out as a NUL-terminated string, truncated to outlen-1.
 * Returns the full decoded length. Convenience for header fields. */
size_t hl7_copy(const struct hl7_delims *d, struct hl7_str v, char *out, size_t outlen);

/* Batches: true if data begins with FHS or BHS. */
bool hl7_is_batch(const char *data, size_t len);
/* Iterates the messages of a batch (or of a plain run of messages): starting at *pos,
 * skips FHS/BHS/BTS/FTS segments and empty lines and returns in *msg the next span that
 * starts with MSH and ends before the next MSH, FHS, BHS, BTS, FTS or the end. Stray
 * segments outside a message come out as a span of their own (not starting with MSH), so
 * that hl7_parse rejects them instead of them vanishing unanswered. Returns 1 with *pos
 * advanced, 0 when no message is left. */
int hl7_batch_next(const char *data, size_t len, size_t *pos, struct hl7_str *msg);

/* True if MSH-9.1 is ACK (we never acknowledge an acknowledgement). */
bool hl7_is_ack(const struct hl7_msg *m);

#endif
