/* The names a visitor's first bytes carry, for a gateway listener shared by several
 * services: the server_name of a TLS ClientHello (RFC 8446 4.1.2, RFC 6066 3), the Host
 * header of an HTTP/1.x request (RFC 9112 3.2), and the match of a name against a service's
 * names (exact, or "*.suffix" for exactly one label more). Pure functions over byte buffers:
 * no I/O, no allocation. */
#ifndef NETWALL_SNI_H
#define NETWALL_SNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNI_NAME_MAX 255              /* a DNS name's bytes (RFC 1035 2.3.4) */
#define SNI_RECORD_MAX 16384          /* a TLS plaintext record's body (RFC 8446 5.1) */
#define SNI_HELLO_CAP (16 * 1024 + 5) /* bytes held before a ClientHello is whole */
#define SNI_HTTP_CAP (8 * 1024)       /* bytes of a request's head before its Host line */

enum sni_result {
	SNI_NEED_MORE = 0, /* a prefix: wait until *need bytes are there */
	SNI_NAME,          /* name holds the name, in lower case */
	SNI_NONE,          /* a whole ClientHello or request head that names nothing */
	SNI_BAD,           /* not TLS (not HTTP/1.x), or malformed */
	SNI_TOO_BIG,       /* runs past the cap, or a TLS record over SNI_RECORD_MAX */
};

extern const char *const sni_result_names[];

/* Reads the ClientHello at the start of p[0..n): the records' handshake bytes are joined,
 * so a ClientHello may span records, and any prefix is SNI_NEED_MORE with *need, the length
 * at which a new try can tell more (the caller need not try before). Bytes past the
 * ClientHello are ignored. At most cap bytes (records' headers included) are ever read:
 * a ClientHello that needs more is SNI_TOO_BIG. Two host_name entries are SNI_BAD. */
enum sni_result sni_client_hello(const uint8_t *p, size_t n, size_t cap,
				 char name[SNI_NAME_MAX + 1], size_t *need);

/* Reads an HTTP/1.x request head at the start of p[0..n) to its end: SNI_NAME with its Host
 * in lower case, its port (and an IPv6 literal's brackets) taken off; SNI_NONE when the
 * head has none; SNI_BAD for an empty Host or a second Host line (a backend might read either: RFC 9112
 * 3.2). *from is where the next try starts (the first line not yet whole) and name what
 * the head named so far: 0 and "" at first, then left as this call sets them, so that
 * bytes that come one at a time are scanned once. A head that does not end within cap
 * bytes is SNI_TOO_BIG; a request line that is not "METHOD TARGET HTTP/1.x" is SNI_BAD. */
enum sni_result sni_http_host(const uint8_t *p, size_t n, size_t cap,
			      char name[SNI_NAME_MAX + 1], size_t *from);

/* Whether name (lower case) matches pattern (lower case): equal, or pattern "*.suffix" and
 * name one label (not empty, without '.') followed by ".suffix". */
bool sni_match(const char *pattern, const char *name);

/* Whether s is a name or pattern a config may give: 1..SNI_NAME_MAX bytes, labels of
 * letters, digits, '-' and '_' (other bytes above 0x7f too, an IDN's raw UTF-8), no empty
 * label; a pattern may start with "*." followed by at least one label. */
bool sni_name_ok(const char *s, bool pattern);

#endif
