#include "core/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/num.h"

/* AES-128-GCM first: with AES-NI it is the cheapest AEAD per byte relayed. */
#define TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

static void tls_err(char *err, size_t errlen, const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char ebuf[160] = "";

	if (e != 0)
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
	snprintf(err, errlen, "%s %s%s%s", what, file, e ? ": " : "", ebuf);
	ERR_clear_error();
}

static SSL_CTX *tls_ctx_new(const SSL_METHOD *m, const char *cert, const char *key, char *err,
			    size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(m);

	if (ctx == NULL) {
		tls_err(err, errlen, "cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_ciphersuites(ctx, TLS_SUITES);
	/* Tunnels are few and busy: keep OpenSSL's buffers rather than freeing them after every
	 * record. The caller's BIO does the socket reads, in large chunks. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_err(err, errlen, "cannot load certificate", cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_err(err, errlen, "cannot load private key", key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_err(err, errlen, "private key does not match certificate", cert);
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_ctx_server(const char *cert, const char *key, char *err, size_t errlen)
{
	return tls_ctx_new(TLS_server_method(), cert, key, err, errlen);
}

SSL_CTX *tls_ctx_client(const char *cert, const char *key, char *err, size_t errlen)
{
	return tls_ctx_new(TLS_client_method(), cert, key, err, errlen);
}

SSL_CTX *tls_ctx_target(const char *ca, bool verify, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		tls_err(err, errlen, "cannot create TLS context", "");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* Many servers close without close_notify: that is their EOF, not a reset. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	if (verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (ca != NULL ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
			       : SSL_CTX_set_default_verify_paths(ctx) != 1) {
			tls_err(err, errlen, "cannot load CA bundle", ca ? ca : "(system)");
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	return ctx;
}

int tls_ctx_load_ca(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
	if (SSL_CTX_load_verify_locations(ctx, file, NULL) != 1) {
		tls_err(err, errlen, "cannot load CA bundle", file);
		return -1;
	}
	return 0;
}

int tls_ctx_load_crl(SSL_CTX *ctx, const char *file, char *err, size_t errlen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509_LOOKUP *lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());

	ERR_clear_error();
	if (lookup == NULL || X509_load_crl_file(lookup, file, X509_FILETYPE_PEM) < 1) {
		tls_err(err, errlen, "cannot load CRL", file);
		return -1;
	}
	/* the whole chain: an intermediate CA revoked by its issuer signs no more peers */
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	return 0;
}

int tls_fingerprint(X509 *x, uint8_t out[TLS_FP_LEN])
{
	unsigned int n = 0;

	if (X509_digest(x, EVP_sha256(), out, &n) != 1 || n != TLS_FP_LEN)
		return -1;
	return 0;
}

int tls_fingerprint_parse(const char *s, uint8_t out[TLS_FP_LEN])
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int v;
		if (*s == ':')
			continue;
		v = num_hexdigit((unsigned char)*s);
		if (v < 0 || n == TLS_FP_LEN)
			return -1;
		if (hi < 0) {
			hi = v;
		} else {
			out[n++] = (uint8_t)(hi << 4 | v);
			hi = -1;
		}
	}
	return n == TLS_FP_LEN && hi < 0 ? 0 : -1;
}

void tls_fingerprint_hex(const uint8_t fp[TLS_FP_LEN], char out[TLS_FP_HEXLEN])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < TLS_FP_LEN; i++) {
		out[2 * i] = hex[fp[i] >> 4];
		out[2 * i + 1] = hex[fp[i] & 15];
	}
	out[2 * TLS_FP_LEN] = '\0';
}

int tls_fingerprint_file(const char *file, uint8_t out[TLS_FP_LEN], char *err, size_t errlen)
{
	FILE *f = fopen(file, "r");
	X509 *x;
	int rc;

	if (f == NULL) {
		snprintf(err, errlen, "cannot open %s: %s", file, strerror(errno));
		return -1;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		tls_err(err, errlen, "no PEM certificate in", file);
		return -1;
	}
	rc = tls_fingerprint(x, out);
	X509_free(x);
	if (rc == -1)
		snprintf(err, errlen, "cannot hash certificate %s", file);
	return rc;
}

/* Opens path for writing with mode, refusing to replace an existing file. */
static FILE *tls_create(const char *path, mode_t mode, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	FILE *f;

	if (fd == -1) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

static int tls_add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL)
		return -1;
	rc = X509_add_ext(x, ext, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ext);
	return rc;
}

int tls_keygen(const char *dir, const char *name, uint8_t fp[TLS_FP_LEN], char *err,
	       size_t errlen)
{
	char keypath[4096], crtpath[4096], san[300];
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	FILE *kf = NULL, *cf = NULL;
	int rc = -1;

	if (snprintf(keypath, sizeof(keypath), "%s/%s.key", dir, name) >= (int)sizeof(keypath) ||
	    snprintf(crtpath, sizeof(crtpath), "%s/%s.crt", dir, name) >= (int)sizeof(crtpath) ||
	    snprintf(san, sizeof(san), "DNS:%s", name) >= (int)sizeof(san)) {
		snprintf(err, errlen, "path or name too long");
		return -1;
	}
	pkey = EVP_EC_gen("P-256");
	x = X509_new();
	if (pkey == NULL || x == NULL) {
		tls_err(err, errlen, "cannot generate key", "");
		goto out;
	}
	X509_set_version(x, 2);
	{
		uint8_t serial[16];
		BIGNUM *bn;
		if (RAND_bytes(serial, sizeof(serial)) != 1)
			goto fail_ssl;
		serial[0] &= 0x7f;
		bn = BN_bin2bn(serial, sizeof(serial), NULL);
		if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
			BN_free(bn);
			goto fail_ssl;
		}
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 24 * 3600);
	X509_set_pubkey(x, pkey);
	if (X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    tls_add_ext(x, NID_subject_alt_name, san) == -1 ||
	    tls_add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    X509_sign(x, pkey, EVP_sha256()) == 0)
		goto fail_ssl;
	kf = tls_create(keypath, 0600, err, errlen);
	if (kf == NULL)
		goto out;
	cf = tls_create(crtpath, 0644, err, errlen);
	if (cf == NULL) {
		fclose(kf);
		kf = NULL;
		unlink(keypath);
		goto out;
	}
	if (PEM_write_PrivateKey(kf, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    PEM_write_X509(cf, x) != 1 || tls_fingerprint(x, fp) == -1) {
		tls_err(err, errlen, "cannot write key pair in", dir);
		goto out;
	}
	rc = 0;
	goto out;
fail_ssl:
	tls_err(err, errlen, "cannot build certificate for", name);
out:
	if (kf != NULL && fclose(kf) != 0)
		rc = -1;
	if (cf != NULL && fclose(cf) != 0)
		rc = -1;
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

const char *tls_failure_reason(char *detail, size_t len)
{
	unsigned long e = ERR_peek_error();
	const char *reason = "tls_error";

	if (len > 0)
		detail[0] = '\0';
	if (e == 0) {
		ERR_clear_error();
		return reason;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(e)) {
		case SSL_R_WRONG_VERSION_NUMBER:
		case SSL_R_HTTP_REQUEST:
		case SSL_R_HTTPS_PROXY_REQUEST:
		case SSL_R_UNKNOWN_PROTOCOL:
		case SSL_R_PACKET_LENGTH_TOO_LONG:
		case SSL_R_RECORD_LENGTH_MISMATCH:
		case SSL_R_LENGTH_TOO_SHORT:
		case SSL_R_UNEXPECTED_MESSAGE:
		case SSL_R_BAD_PACKET_LENGTH:
		case SSL_R_UNEXPECTED_RECORD:
			reason = "not_tls";
			break;
		case SSL_R_UNSUPPORTED_PROTOCOL:
		case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
			reason = "unsupported_protocol";
			break;
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
			reason = "no_certificate";
			break;
		case SSL_R_CERTIFICATE_VERIFY_FAILED:
		case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
		case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
			reason = "bad_certificate";
			break;
		default:
			break;
		}
	}
	ERR_error_string_n(e, detail, len);
	/* keep detail a single token for key=value logs */
	for (char *p = detail; *p; p++)
		if (*p == ' ' || *p == '"')
			*p = '_';
	ERR_clear_error();
	return reason;
}
