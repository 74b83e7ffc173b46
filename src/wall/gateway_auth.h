/* Agent authentication on the gateway (gateway_auth.c). */
#ifndef NETWALL_GATEWAY_AUTH_H
#define NETWALL_GATEWAY_AUTH_H

#include <openssl/ssl.h>

#include "wall/config.h"
#include "wall/tunnel.h"

struct gateway;

/* The tunnel listeners' TLS context for cfg: the gateway's certificate, the CA and CRL in CA
 * mode, and a verify callback that names each agent (tunnel_set_peer) or says why it was
 * refused (tunnel_set_reject) against gw's running config. NULL once the reason is logged. */
SSL_CTX *gateway_auth_ctx(struct gateway *gw, const struct config_gateway *cfg);

/* CA mode, on reload: does t's agent certificate still verify against ctx (its CRL
 * included)? Returns 0, or the X509_V_ERR_* that now fails it. */
int gateway_auth_reverify(SSL_CTX *ctx, const struct tunnel *t);

#endif
