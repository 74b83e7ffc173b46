/* Secrets kept in files (admin tokens, the EMAR's bearer token): read, checked and copied
 * without the bytes ever reaching a log line or an error message. */
#ifndef NETWALL_SECRET_H
#define NETWALL_SECRET_H

#include <stddef.h>

/* Reads the token in the file at path: one line of printable ASCII without spaces, from
 * min to max characters, surrounding white space ignored. Returns a copy (free with
 * secret_free), or NULL with a message naming path, never the bytes, in err. Only a
 * regular file is read (a FIFO or a device is refused at once, never waited on). Every
 * byte read is wiped. */
char *secret_read_token(const char *path, size_t min, size_t max, char *err, size_t errlen);

/* Reads the whole file at path into cap bytes of memory of its own (the caller wipes all
 * cap bytes and frees it), its length in *len; a file of cap bytes or more is refused. Only
 * a regular file is read. Returns NULL with err naming path, never the bytes. */
char *secret_read_file(const char *path, size_t cap, size_t *len, char *err, size_t errlen);

/* Wipes and frees a copy from secret_read_token. Accepts NULL. */
void secret_free(char *token);

#endif
