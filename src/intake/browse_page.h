/* The message browser's HTML (intake/browse.c serves it): the shell every page shares and
 * one stored message, field by field, with its ACK and delivery record. Every value is
 * HTML-escaped; nothing here reads the store or writes the audit trail. */
#ifndef NETWALL_BROWSE_PAGE_H
#define NETWALL_BROWSE_PAGE_H
#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>

#include "intake/store_util.h"

/* The document's head and header (no refresh, no scripts); title is plain text. */
void browse_page_begin(struct evbuffer *out, const char *title, const char *who);
void browse_page_end(struct evbuffer *out);

/* Appends p[0..n) HTML-escaped (control bytes '?'). */
void browse_page_esc(struct evbuffer *out, const char *p, size_t n);

/* Row r (from store_get: raw and ack filled) as a page: its header fields, every valued
 * field of every segment with its number (PID-3[2].1) and its decoded value, the ACK
 * segment by segment, and, when csrf is not NULL, the replay form carrying it. Linear in
 * the message. Appends at most about max bytes (out being empty but for the page's head,
 * and max at least 64 KiB): past 16 KiB short of it the fields are no longer listed and a
 * note (id "truncated") says so; one byte of a sender's becomes up to six escaped. */
void browse_page_message(struct evbuffer *out, const struct store_row *r, const char *csrf,
			 size_t max);

#endif
