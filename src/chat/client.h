/* netwall chat connect: the built-in terminal client (see client.c). */
#ifndef NETWALL_CHAT_CLIENT_H
#define NETWALL_CHAT_CLIENT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct chat_client_opts {
	const char *host;
	uint16_t port;
	bool tls;                /* on unless --plain */
	const char *ca;          /* CA bundle to verify the server with; NULL: the system's */
	const char *fingerprint; /* pinned SHA-256 of the server certificate, or NULL */
	const char *server_name; /* the certificate's name, and SNI; NULL: host */
	const char *nick;
	const char *password;    /* sent as PASS, or NULL */
};

/* Runs until /quit, end of input or SIGTERM. Returns 0, or -1 with err filled when it
 * cannot start (an unknown host, bad TLS material). */
int chat_client_run(const struct chat_client_opts *o, char *err, size_t errlen);

#endif
