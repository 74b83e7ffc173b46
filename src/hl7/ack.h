/* Acknowledgements: building the ACK for a received message, in original mode (MSA-1
 * AA/AE/AR) or, when the message carries MSH-15 or MSH-16, enhanced mode (CA/CE/CR accept
 * acknowledgements, sent or not as MSH-15 asks: AL always, NE never, ER only on error,
 * SU only on success; an empty MSH-15 in enhanced mode means AL).
 *
 * The ACK's MSH: the sender's own delimiters, MSH-3/4 <- received MSH-5/6 and MSH-5/6 <-
 * received MSH-3/4, MSH-7 the current time, MSH-9 "ACK^<trigger>^ACK", MSH-10 the caller's
 * new unique control ID, MSH-11 and MSH-12 copied. MSA-1 the code, MSA-2 the received
 * MSH-10, MSA-3 a short content-free text on errors. Every error adds an ERR segment: for
 * MSH-12 before 2.5, ERR-1 "SEG^seq^field^code&text&HL70357"; from 2.5, ERR-2 the location
 * "SEG^seq^field", ERR-3 "code^text^HL70357", ERR-4 severity "E". Segments end with CR. No message content is copied except the header fields above. */
#ifndef NETWALL_ACK_H
#define NETWALL_ACK_H
#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "core/buf.h"
#include "hl7/hl7.h"

enum ack_code {
	ACK_ACCEPT = 0, /* AA or CA */
	ACK_ERROR,      /* AE or CE: we could not process it; the sender may retry */
	ACK_REJECT,     /* AR or CR: the message is unacceptable; do not retry as is */
};

/* True if m asks for enhanced-mode acknowledgement (MSH-15 or MSH-16 valued). */
bool ack_enhanced(const struct hl7_msg *m);

/* True if an ACK with this code is to be sent for m (always in original mode; per MSH-15
 * in enhanced mode). Never true for a message that is itself an ACK. */
bool ack_wanted(const struct hl7_msg *m, enum ack_code code);

/* Appends the ACK for m to out (no MLLP framing). m is a parsed message or, for bytes
 * hl7_parse refused, the header hl7_parse_header read: the refusal then still names the
 * message (MSA-2, MSH-3..6, MSH-11, MSH-12) in the delimiters it was read with. err is NULL
 * for ACK_ACCEPT and required otherwise. control_id is the ACK's own MSH-10 (unique; at most 20 characters for old
 * versions). now is the time for MSH-7. Returns 0, or -1 if m is an ACK (nothing written). */
int ack_build(struct buf *out, const struct hl7_msg *m, enum ack_code code,
	      const struct hl7_error *err, const char *control_id, time_t now);

/* For bytes that are not a message even as far as hl7_parse_header reads (no MSH, a
 * malformed MSH-1): appends an AR with default delimiters, empty MSA-2 and an ERR segment
 * for err. */
void ack_build_unparsed(struct buf *out, const struct hl7_error *err, const char *control_id,
			time_t now);

/* Reads an ACK: the MSA-1 code ("AA", "CE", ...) into code[3] and MSA-2 into ctrl
 * (NUL-terminated, truncated). Returns 0, or -1 if data is not a parsable ACK. */
int ack_parse(const char *data, size_t len, char code[3], char *ctrl, size_t ctrllen);

#endif
