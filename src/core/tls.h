/* TLS plumbing on OpenSSL 3: TLS 1.3-only contexts, certificate fingerprints, key
 * generation, and handshake failure reasons. Peer policy (who is allowed) is the caller's. */
#ifndef NETWALL_TLS_H
#define NETWALL_TLS_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TLS_FP_LEN 32     /* SHA-256 */
#define TLS_FP_HEXLEN 65  /* 64 hex digits and NUL */

/* TLS 1.3-only contexts presenting cert/key (PEM files; cert may hold a chain).
 * Return NULL and fill err on failure. The caller sets the verification policy. */
SSL_CTX *tls_ctx_server(const char *cert, const char *key, char *err, size_t errlen);
SSL_CTX *tls_ctx_client(const char *cert, const char *key, char *err, size_t errlen);

/* A context for originating TLS to a private target (TLS 1.2 or 1.3, no client certificate).
 * ca: PEM bundle to verify with, or NULL for the system store; verify false skips checks. */
SSL_CTX *tls_ctx_target(const char *ca, bool verify, char *err, size_t errlen);

/* Loads a PEM CA bundle into ctx's trust store. */
int tls_ctx_load_ca(SSL_CTX *ctx, const char *file, char *err, size_t errlen);

/* Loads the CRLs of a PEM file (at least one) into ctx's trust store and checks every
 * certificate of a peer's chain against them from then on (X509_V_FLAG_CRL_CHECK and
 * X509_V_FLAG_CRL_CHECK_ALL): a certificate whose issuer has no current CRL there fails
 * verification, so every CA in the chain needs one. */
int tls_ctx_load_crl(SSL_CTX *ctx, const char *file, char *err, size_t errlen);

/* SHA-256 of the certificate's DER encoding. */
int tls_fingerprint(X509 *x, uint8_t out[TLS_FP_LEN]);
/* Parses 64 hex digits, optionally colon-separated, any case. */
int tls_fingerprint_parse(const char *s, uint8_t out[TLS_FP_LEN]);
void tls_fingerprint_hex(const uint8_t fp[TLS_FP_LEN], char out[TLS_FP_HEXLEN]);
/* Fingerprint of the first certificate in a PEM file. */
int tls_fingerprint_file(const char *file, uint8_t out[TLS_FP_LEN], char *err, size_t errlen);

/* Writes DIR/NAME.key (0600, P-256) and DIR/NAME.crt (self-signed, CN=NAME, 10 years) and
 * returns the certificate's fingerprint. Refuses to overwrite existing files. */
int tls_keygen(const char *dir, const char *name, uint8_t fp[TLS_FP_LEN], char *err,
	       size_t errlen);

/* Names the reason a handshake failed, from the OpenSSL error queue (which it clears):
 * "not_tls", "unsupported_protocol", "no_certificate", "bad_certificate", or "tls_error".
 * detail receives OpenSSL's own words. */
const char *tls_failure_reason(char *detail, size_t len);

#endif
