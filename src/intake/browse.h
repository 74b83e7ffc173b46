/* The intake's message browser on its admin listener (browse = on, admin_token_file
 * required): /messages (a search form and its results, newest first, paged),
 * /messages/ID (one message field by field, its ACK and delivery record) and POST
 * /messages/ID/replay (a dead or failed message back in the queue). Every page of message
 * content and every replay is first recorded in the store's audit trail (who: the label of
 * the admin token; via: "browser"); a page whose record cannot be written is refused. */
#ifndef NETWALL_BROWSE_H
#define NETWALL_BROWSE_H
#include <stddef.h>

#include "core/admin.h"

#define BROWSE_QUERY_MAX 1024 /* bytes of a query string; more: 414 */
#define BROWSE_TERM_MAX 128   /* bytes of one decoded search term; more: 400 */
#define BROWSE_PAGE_MAX 200   /* results on one page (limit); default BROWSE_PAGE_DEFAULT */
#define BROWSE_PAGE_DEFAULT 50
/* Bytes of one answer of the browser: a message page stops listing fields short of it (a
 * 1 MiB message of one-byte components would make a page of 29 MB). Each page waited for
 * holds this much of the admin listener's ADMIN_LATER_BYTES until it is made; then its
 * size, until it is written out. */
#define BROWSE_ANSWER_MAX (3 * 1024 * 1024)

struct intake;
struct store;

/* admin_ops.route for the intake (arg: the struct intake): 1 with resp filled, 0 when the
 * path is not the browser's or browse is off (404). Runs on the loop thread and uses the
 * browser's own store connection (browse_open). */
int browse_route(const struct admin_req *req, struct admin_resp *resp, void *arg);

/* The anti-forgery value of the replay form of message id for token secret (HMAC-SHA256,
 * in hex, 64 characters and a NUL in out). */
void browse_csrf(const char *secret, size_t len, long long id, char out[65]);

#endif
