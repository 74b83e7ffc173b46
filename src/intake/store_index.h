/* What a message is found by, read from its bytes (store_index.c): its patient
 * identifiers, the patient's family names, its order numbers and its date, for the
 * store's index (schema 3). */
#ifndef NETWALL_STORE_INDEX_H
#define NETWALL_STORE_INDEX_H
#include <stddef.h>

#include "intake/store_util.h"

/* Fills ix (which the caller zeroed or cleared) from the message raw[0..len): every PID-3
 * repetition's identifier with its assigning authority and type, every PID-5
 * repetition's family name (ASCII letters upper-cased), ORC-2 and ORC-3 of every ORC, and
 * MSH-7. Values are decoded (escapes undone) and made clean text; empty and null ("")
 * values, values over STORE_KEY_LEN bytes and keys past STORE_KEYS_MAX are left out, and
 * a key already taken is not taken twice. A message that does not parse has an empty
 * index. Linear in len. */
void store_index_read(struct store_index *ix, const void *raw, size_t len);
/* Frees what store_index_read allocated (the values wiped) and empties ix. */
void store_index_clear(struct store_index *ix);
/* Upper-cases the ASCII letters of s in place: names are indexed and searched this way. */
void store_index_fold(char *s);

#endif
