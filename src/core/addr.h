/* Socket addresses: "HOST:PORT" parsing and printing, CIDR allowlists. */
#ifndef NETWALL_ADDR_H
#define NETWALL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_STRLEN 64 /* "[ffff:...:ffff]:65535" with room to spare */

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

struct addr_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t net[16];
	unsigned prefix;
};

/* Parses "1.2.3.4:80", "[::1]:80" or "name:80". Names are resolved with getaddrinfo (blocking:
 * call it while loading config, not from the event loop); the first result wins.
 * Fills err on failure. */
int addr_parse(const char *s, struct addr *out, char *err, size_t errlen);

/* Like addr_parse, but gives every address the name resolves to (at most max, in the
 * resolver's order, no repeats): several gateways behind one name. Returns how many there
 * are, which is more than max when some did not fit (their repeats beyond max are counted). */
int addr_resolve(const char *s, struct addr *out, size_t max, char *err, size_t errlen);

/* Like addr_parse, but the host must be a numeric address: for peer-supplied text. */
int addr_parse_numeric(const char *s, struct addr *out);

/* Splits "HOST:PORT" into its host (brackets removed) and port; host must hold 256 bytes. */
int addr_split(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Formats sa as "1.2.3.4:80" or "[::1]:80" into buf (ADDR_STRLEN bytes suffice). */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Formats only the host part ("1.2.3.4", "::1"); IPv4-mapped IPv6 prints as IPv4. */
void addr_format_host(const struct sockaddr *sa, char *buf, size_t len);

uint16_t addr_port(const struct sockaddr *sa);
bool addr_equal(const struct addr *a, const struct addr *b);
/* A total order of addresses (family, address, port), for qsort of struct addr. */
int addr_cmp(const void *a, const void *b);
/* True if a and b are in the same network: their first v4_bits (IPv4) or v6_bits (IPv6)
 * bits agree. Ports are ignored; IPv4-mapped IPv6 counts as IPv4. 32/128 compare hosts. */
bool addr_same_net(const struct sockaddr *a, const struct sockaddr *b, unsigned v4_bits,
		   unsigned v6_bits);

/* Parses "10.0.0.0/8", "2001:db8::/32" or a single address (a /32 or /128). Host bits
 * beyond the prefix must be zero. */
int addr_cidr_parse(const char *s, struct addr_cidr *out);

/* True if sa lies in c. IPv4-mapped IPv6 addresses match IPv4 ranges. */
bool addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa);

#endif
