/* Agent authentication on the gateway: the TLS context the tunnel listeners use, the verify
 * callback that names each agent from its pinned fingerprint or (CA mode) its certificate's
 * CN, and the re-verification of established tunnels when a reload brings a new CA or CRL. */
#include "wall/gateway_auth.h"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/tls.h"
#include "wall/gateway_state.h"

#define GW_AGENT_CN_MAX 64      /* CA mode: an agent's CN, bytes (RFC 5280 ub-common-name);
				 * longer is refused, not cut */
#define GW_CN_SHOWN 128         /* a refused CN reaches the log escaped in the room of this
				 * many bytes of it, then "%.." */

/* The agent name a CA-signed certificate carries: its subject must have exactly one CN, of
 * at most GW_AGENT_CN_MAX bytes and with no NUL. Returns NULL with the name in name, or
 * what is wrong ("cn_missing", "cn_unreadable", "cn_twice", "cn_nul", "cn_too_long");
 * shown gets the first CN escaped for the log either way. */
static const char *gw_agent_cn(X509 *leaf, char name[GW_AGENT_CN_MAX + 1], char *shown,
			       size_t shownlen)
{
	X509_NAME *subj = X509_get_subject_name(leaf);
	int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	const char *problem = NULL;
	unsigned char *utf8 = NULL;
	int n;

	snprintf(shown, shownlen, "-");
	if (i < 0)
		return "cn_missing";
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (n < 0)
		return "cn_unreadable";
	log_valuen(shown, shownlen, (const char *)utf8, (size_t)n); /* NULs too */
	if (X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
		problem = "cn_twice";
	else if (memchr(utf8, '\0', (size_t)n) != NULL)
		problem = "cn_nul";
	else if (n > GW_AGENT_CN_MAX)
		problem = "cn_too_long";
	else {
		memcpy(name, utf8, (size_t)n);
		name[n] = '\0';
	}
	OPENSSL_free(utf8);
	return problem;
}

static int gw_verify(X509_STORE_CTX *xs, void *arg)
{
	struct gateway *gw = arg;
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct tunnel *t = tunnel_from_ssl(ssl);
	X509 *leaf = X509_STORE_CTX_get0_cert(xs);
	const struct config_gateway *cfg = gw->cfg;
	const char *reason = "unknown_certificate";
	uint8_t fp[TLS_FP_LEN];

	if (leaf == NULL || tls_fingerprint(leaf, fp) == -1)
		goto reject;
	for (size_t i = 0; i < cfg->nagents; i++) {
		if (cfg->agents[i].has_fp && memcmp(cfg->agents[i].fp, fp, TLS_FP_LEN) == 0) {
			tunnel_set_peer(t, cfg->agents[i].name);
			return 1;
		}
	}
	if (cfg->c.ca != NULL) {
		char cn[GW_AGENT_CN_MAX + 1], shown[LOG_VALUE_SIZE(GW_CN_SHOWN)];
		const struct config_agent *ag;
		const char *problem;
		if (X509_verify_cert(xs) != 1) {
			int err = X509_STORE_CTX_get_error(xs);
			if (err == X509_V_ERR_CERT_REVOKED)
				reason = "revoked";
			log_limited(&gw->rate_reject, LOG_INFO,
				    "event=agent_certificate_refused peer=%s error=\"%s\"",
				    tunnel_peer_addr(t), X509_verify_cert_error_string(err));
			goto reject;
		}
		problem = gw_agent_cn(leaf, cn, shown, sizeof(shown));
		if (problem != NULL) {
			log_limited(&gw->rate_reject, LOG_WARN,
				    "event=agent_name_refused peer=%s problem=%s cn=%s",
				    tunnel_peer_addr(t), problem, shown);
			reason = "bad_agent_name";
			goto reject;
		}
		ag = config_find_agent(cfg, cn);
		if (ag != NULL && !ag->has_fp) {
			tunnel_set_peer(t, ag->name);
			return 1;
		}
	}
reject:
	tunnel_set_reject(t, reason);
	X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
	return 0;
}

/* CA mode, on reload: does t's agent certificate still verify against ctx (its CRL
 * included)? Returns 0, or the X509_V_ERR_* that now fails it. */
int gateway_auth_reverify(SSL_CTX *ctx, const struct tunnel *t)
{
	X509 *leaf = tunnel_peer_cert(t);
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	int err = X509_V_ERR_UNSPECIFIED;

	if (leaf != NULL && xs != NULL &&
	    X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(ctx), leaf, tunnel_peer_chain(t)) == 1 &&
	    X509_STORE_CTX_set_default(xs, "ssl_client") == 1)
		err = X509_verify_cert(xs) == 1 ? 0 : X509_STORE_CTX_get_error(xs);
	X509_STORE_CTX_free(xs);
	ERR_clear_error();
	return err;
}

/* The listeners' context: see gateway_auth.h. */
SSL_CTX *gateway_auth_ctx(struct gateway *gw, const struct config_gateway *cfg)
{
	char err[512];
	SSL_CTX *ctx = tls_ctx_server(cfg->c.cert, cfg->c.key, err, sizeof(err));

	if (ctx == NULL) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		return NULL;
	}
	if ((cfg->c.ca != NULL && tls_ctx_load_ca(ctx, cfg->c.ca, err, sizeof(err)) == -1) ||
	    (cfg->crl != NULL && tls_ctx_load_crl(ctx, cfg->crl, err, sizeof(err)) == -1)) {
		log_error("event=tls_setup_failed error=\"%s\"", err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, gw_verify, gw);
	return ctx;
}
