/* The JSON form of a parsed HL7 v2 message: what the EMAR's API receives from the delivery
 * worker (deliver.h). One object, keys always present:
 *
 *   {
 *     "id": 42,                          the store's message id
 *     "control_id": "EF0100...",         MSH-10
 *     "type": "RDE^O11",                 MSH-9.1 "^" MSH-9.2 (MSH-9.1 alone without a trigger)
 *     "message_type": "RDE",             MSH-9.1
 *     "trigger": "O11",                  MSH-9.2
 *     "structure": "RDE_O11",            MSH-9.3
 *     "sending_application": "...",      MSH-3.1
 *     "sending_facility": "...",         MSH-4.1
 *     "receiving_application": "...",    MSH-5.1
 *     "receiving_facility": "...",       MSH-6.1
 *     "datetime": "20101217181500",      MSH-7.1
 *     "version": "2.5.1",                MSH-12.1
 *     "charset": "",                     MSH-18, first repetition
 *     "patient": {                       from the first PID segment; null without one
 *       "identifiers": [                 one per PID-3 repetition (the first
 *                                          HL7JSON_MAX_PARTS)
 *         {"id": CX.1, "authority": CX.4.1 (CX.4.2 when CX.4.1 is empty), "type": CX.5}
 *       ],
 *       "name": {"family": PID-5.1.1, "given": PID-5.2, "middle": PID-5.3},
 *       "birth_date": PID-7.1,
 *       "sex": PID-8
 *     },
 *     "segments": [                      every segment after MSH, in order
 *       {"name": "PID", "fields": [F1, F2, ...]}   fields[0] is field 1 (PID-1)
 *     ],
 *     "raw": "MSH|^~\\&|...\r..."        the message text as received (segments end in CR)
 *   }
 *
 * Scalar values above are strings: "" when absent or empty, JSON null for the HL7 explicit
 * null "" (two double quotes). Each field F in "segments" is
 *
 *   value                          when the field has one repetition (or none: "")
 *   {"repetitions": [value, ...]}  when it has two or more
 *   {"raw": string}                when it has more than HL7JSON_MAX_PARTS parts: the
 *                                  field whole, as received (not split, not decoded,
 *                                  made UTF-8 like "raw" below)
 *
 *   value     = string | null | [component, ...]   an array as soon as the repetition
 *                                                  holds a component or subcomponent
 *                                                  separator
 *   component = string | null | [string|null, ...] an array of subcomponents as soon as
 *                                                  it holds a subcomponent separator
 *
 * so "a^b&c~d" is {"repetitions": [["a", ["b", "c"]], "d"]}. Every string is decoded with
 * hl7_unescape (\F\ -> the field separator, \X41\ -> "A", ...), except the "raw" ones.
 *
 * Building it walks each field once (hl7_iter): time and output are linear in the message.
 *
 * Characters: JSON is UTF-8. When MSH-18 is "8859/1" (ISO IR100) the bytes are read as
 * Latin-1 and converted; otherwise they are taken as UTF-8 (ASCII, MSH-18 "UNICODE UTF-8")
 * and every byte that is not part of a valid UTF-8 sequence becomes U+FFFD, so the output
 * is always valid JSON. This applies to "raw" as well. */
#ifndef NETWALL_HL7JSON_H
#define NETWALL_HL7JSON_H
#include <stddef.h>
#include <stdint.h>

#include "hl7/hl7.h"

/* Most parts a field is split into: a field with more repetition, component and
 * subcomponent separators than HL7JSON_MAX_PARTS - 1 (counted together) is given whole,
 * as {"raw": text}, and patient.identifiers holds at most the first HL7JSON_MAX_PARTS
 * repetitions of PID-3. Far above any real field (a CX has 10 components, an XAD 14, a
 * long TX report some hundred repetitions); it keeps a peer's 500,000-part field from
 * becoming 500,000 JSON values for the EMAR to take apart. */
#define HL7JSON_MAX_PARTS 4096

/* Sets jansson's allocator, process-wide, to one that wipes every block before freeing it
 * (jansson's copies of strings hold patient data wherever a program reads or prints message
 * JSON with it; hl7json_message itself does not use jansson). Idempotent; hl7json_message
 * calls it, but a program with threads should call it once at start, before any uses
 * jansson. */
void hl7json_init(void);

/* Builds the JSON text (compact, NUL-terminated) of the parsed message m, whose bytes
 * m->data stay the caller's. Returns a malloc'd string with its length in *len; the caller
 * owns it and releases it with hl7json_free (it holds patient data). Returns NULL only
 * for a message without MSH, which hl7_parse never yields; out of memory aborts. Time and
 * memory are linear in the message: the text is at most about 12 times m->len (a control
 * character is 6 bytes escaped, and the message is there twice at most, as "raw" and in
 * its fields), about 4 times for a field of separators only, plus at most 4096
 * identifiers of some 40 bytes each. */
char *hl7json_message(const struct hl7_msg *m, int64_t id, size_t *len);

/* Wipes and frees a string from hl7json_message. NULL is fine. */
void hl7json_free(char *json, size_t len);

/* Writes to out (outcap >= 3 * len) the UTF-8 form of p[0..len): Latin-1 converted when
 * latin1, otherwise invalid UTF-8 bytes replaced by U+FFFD. Returns the bytes written. */
size_t hl7json_utf8(const char *p, size_t len, int latin1, char *out, size_t outcap);

#endif
