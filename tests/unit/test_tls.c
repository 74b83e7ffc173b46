/* Unit tests for core/tls: fingerprints, key generation, contexts and failure reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/tls.h"

/* One directory for the whole run, with a server and a client identity made by tls_keygen. */
static char dir[64];
static char srv_crt[128], srv_key[128], cli_crt[128], cli_key[128];
static uint8_t srv_fp[TLS_FP_LEN], cli_fp[TLS_FP_LEN];

static void path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int group_setup(void **state)
{
	char err[512];

	snprintf(dir, sizeof(dir), "/tmp/netwall-tls-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	if (tls_keygen(dir, "server", srv_fp, err, sizeof(err)) != 0 ||
	    tls_keygen(dir, "client", cli_fp, err, sizeof(err)) != 0) {
		fprintf(stderr, "keygen: %s\n", err);
		return -1;
	}
	path_of(srv_crt, sizeof(srv_crt), "server.crt");
	path_of(srv_key, sizeof(srv_key), "server.key");
	path_of(cli_crt, sizeof(cli_crt), "client.crt");
	path_of(cli_key, sizeof(cli_key), "client.key");
	return 0;
}

static int group_teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(dir);
	return 0;
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	return x;
}

static void read_all(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Fingerprint text */

static const char fp_hex[] = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

static void test_fp_parse_hex_round_trip(void **state)
{
	uint8_t fp[TLS_FP_LEN];
	char hex[TLS_FP_HEXLEN];

	assert_int_equal(tls_fingerprint_parse(fp_hex, fp), 0);
	assert_int_equal(fp[0], 0x00);
	assert_int_equal(fp[1], 0x11);
	assert_int_equal(fp[15], 0xff);
	assert_int_equal(fp[31], 0x10);
	tls_fingerprint_hex(fp, hex);
	assert_string_equal(hex, fp_hex);
	assert_int_equal(strlen(hex), 64);
}

static void test_fp_parse_forms(void **state)
{
	uint8_t a[TLS_FP_LEN], b[TLS_FP_LEN];
	char colons[128], upper[TLS_FP_HEXLEN];
	size_t n = 0;

	assert_int_equal(tls_fingerprint_parse(fp_hex, a), 0);
	/* colon-separated, as certificate viewers print it */
	for (size_t i = 0; i < 64; i += 2)
		n += (size_t)snprintf(colons + n, sizeof(colons) - n, "%s%.2s", i ? ":" : "",
				      fp_hex + i);
	assert_int_equal(tls_fingerprint_parse(colons, b), 0);
	assert_memory_equal(a, b, TLS_FP_LEN);
	/* any case */
	for (size_t i = 0; i < 65; i++)
		upper[i] = (char)(fp_hex[i] >= 'a' && fp_hex[i] <= 'f' ? fp_hex[i] - 'a' + 'A'
								      : fp_hex[i]);
	memset(b, 0, sizeof(b));
	assert_int_equal(tls_fingerprint_parse(upper, b), 0);
	assert_memory_equal(a, b, TLS_FP_LEN);
}

static void test_fp_parse_rejects(void **state)
{
	uint8_t fp[TLS_FP_LEN];
	char s[80];

	assert_int_equal(tls_fingerprint_parse("", fp), -1);
	memcpy(s, fp_hex, 63); /* 63 digits */
	s[63] = '\0';
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	memcpy(s, fp_hex, 62); /* 31 bytes */
	s[62] = '\0';
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	snprintf(s, sizeof(s), "%s0", fp_hex); /* 65 digits */
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	snprintf(s, sizeof(s), "%s00", fp_hex); /* 33 bytes */
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	snprintf(s, sizeof(s), "%s", fp_hex);
	s[10] = 'g';
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	s[10] = ' ';
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
	snprintf(s, sizeof(s), "sha256:%s", fp_hex);
	assert_int_equal(tls_fingerprint_parse(s, fp), -1);
}

static void test_fp_hex_all_bytes(void **state)
{
	uint8_t fp[TLS_FP_LEN], back[TLS_FP_LEN];
	char hex[TLS_FP_HEXLEN];

	for (int base = 0; base < 256; base += TLS_FP_LEN) {
		for (int i = 0; i < TLS_FP_LEN; i++)
			fp[i] = (uint8_t)(base + i);
		tls_fingerprint_hex(fp, hex);
		assert_int_equal(strlen(hex), 64);
		assert_int_equal(strspn(hex, "0123456789abcdef"), 64);
		assert_int_equal(tls_fingerprint_parse(hex, back), 0);
		assert_memory_equal(fp, back, TLS_FP_LEN);
	}
}

/* Key generation */

static void test_keygen_files_match_fingerprint(void **state)
{
	uint8_t fp[TLS_FP_LEN];
	char err[512] = "";
	struct stat st;
	X509 *x;

	assert_int_equal(tls_fingerprint_file(srv_crt, fp, err, sizeof(err)), 0);
	assert_memory_equal(fp, srv_fp, TLS_FP_LEN);
	assert_int_equal(tls_fingerprint_file(cli_crt, fp, err, sizeof(err)), 0);
	assert_memory_equal(fp, cli_fp, TLS_FP_LEN);
	assert_memory_not_equal(srv_fp, cli_fp, TLS_FP_LEN);
	/* tls_fingerprint on the parsed certificate agrees */
	x = read_cert(srv_crt);
	assert_int_equal(tls_fingerprint(x, fp), 0);
	assert_memory_equal(fp, srv_fp, TLS_FP_LEN);
	X509_free(x);
	/* the private key is for its owner only */
	assert_int_equal(stat(srv_key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(stat(srv_crt, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_keygen_certificate_contents(void **state)
{
	X509 *x = read_cert(srv_crt);
	EVP_PKEY *pub = X509_get0_pubkey(x);
	char cn[64] = "";
	GENERAL_NAMES *sans;
	BASIC_CONSTRAINTS *bc;
	time_t in_9y = time(NULL) + 9L * 365 * 24 * 3600;

	assert_true(X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
					      sizeof(cn)) > 0);
	assert_string_equal(cn, "server");
	/* self-signed */
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);
	assert_int_equal(X509_verify(x, pub), 1);
	/* P-256 */
	assert_int_equal(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(pub), 256);
	/* the name as a DNS subjectAltName */
	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(sans);
	assert_int_equal(sk_GENERAL_NAME_num(sans), 1);
	{
		GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, 0);
		assert_int_equal(g->type, GEN_DNS);
		assert_int_equal(ASN1_STRING_length(g->d.dNSName), 6);
		assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName), "server", 6);
	}
	GENERAL_NAMES_free(sans);
	/* not a CA */
	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	/* valid now, and for years */
	assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
	assert_true(X509_cmp_time(X509_get0_notAfter(x), &in_9y) > 0);
	X509_free(x);
}

static void test_keygen_refuses_overwrite(void **state)
{
	uint8_t fp[TLS_FP_LEN], again[TLS_FP_LEN];
	char err[512] = "", key_before[4096], key_after[4096];

	read_all(srv_key, key_before, sizeof(key_before));
	assert_int_equal(tls_keygen(dir, "server", fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "server.key"));
	assert_non_null(strstr(err, "exists"));
	/* both files are as they were */
	read_all(srv_key, key_after, sizeof(key_after));
	assert_string_equal(key_before, key_after);
	assert_int_equal(tls_fingerprint_file(srv_crt, again, err, sizeof(err)), 0);
	assert_memory_equal(again, srv_fp, TLS_FP_LEN);
}

static void test_keygen_refuses_existing_cert(void **state)
{
	char err[512] = "", crt[128], key[128], text[64];
	uint8_t fp[TLS_FP_LEN];

	path_of(crt, sizeof(crt), "only-crt.crt");
	path_of(key, sizeof(key), "only-crt.key");
	write_text(crt, "keep me\n");
	assert_int_equal(tls_keygen(dir, "only-crt", fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "only-crt.crt"));
	/* no half pair is left behind, and the existing file is untouched */
	assert_int_equal(access(key, F_OK), -1);
	read_all(crt, text, sizeof(text));
	assert_string_equal(text, "keep me\n");
}

static void test_keygen_bad_dir_and_name(void **state)
{
	char err[512] = "", name[400];
	uint8_t fp[TLS_FP_LEN];

	assert_int_equal(tls_keygen("/nonexistent/netwall-test", "x", fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/netwall-test/x.key"));
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	err[0] = '\0';
	assert_int_equal(tls_keygen(dir, name, fp, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
}

static void test_keygen_fresh_keys(void **state)
{
	char err[512] = "";
	uint8_t a[TLS_FP_LEN], b[TLS_FP_LEN];

	assert_int_equal(tls_keygen(dir, "fresh-a", a, err, sizeof(err)), 0);
	assert_int_equal(tls_keygen(dir, "fresh-b", b, err, sizeof(err)), 0);
	assert_memory_not_equal(a, b, TLS_FP_LEN);
}

static void test_fingerprint_file_errors(void **state)
{
	char err[512] = "", path[128];
	uint8_t fp[TLS_FP_LEN];

	path_of(path, sizeof(path), "absent.crt");
	assert_int_equal(tls_fingerprint_file(path, fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	path_of(path, sizeof(path), "garbage.crt");
	write_text(path, "not a certificate\n");
	err[0] = '\0';
	assert_int_equal(tls_fingerprint_file(path, fp, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	/* a key is not a certificate */
	err[0] = '\0';
	assert_int_equal(tls_fingerprint_file(srv_key, fp, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	assert_int_equal(ERR_peek_error(), 0); /* the error queue is left clean */
}

/* Contexts */

static void test_ctx_server_loads_keygen_output(void **state)
{
	char err[512] = "";
	SSL_CTX *ctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	uint8_t fp[TLS_FP_LEN];

	if (ctx == NULL)
		fail_msg("tls_ctx_server: %s", err);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(SSL_CTX_get_max_proto_version(ctx), TLS1_3_VERSION);
	assert_int_equal(tls_fingerprint(SSL_CTX_get0_certificate(ctx), fp), 0);
	assert_memory_equal(fp, srv_fp, TLS_FP_LEN);
	SSL_CTX_free(ctx);
	ctx = tls_ctx_client(cli_crt, cli_key, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("tls_ctx_client: %s", err);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_3_VERSION);
	SSL_CTX_free(ctx);
}

static void test_ctx_errors(void **state)
{
	char err[512] = "", path[128];

	path_of(path, sizeof(path), "absent.crt");
	assert_null(tls_ctx_server(path, srv_key, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	err[0] = '\0';
	path_of(path, sizeof(path), "absent.key");
	assert_null(tls_ctx_server(srv_crt, path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
	err[0] = '\0';
	/* a key that is not the certificate's: refused, naming the key */
	assert_null(tls_ctx_server(srv_crt, cli_key, err, sizeof(err)));
	assert_non_null(strstr(err, cli_key));
	assert_non_null(strstr(err, "mismatch"));
	err[0] = '\0';
	assert_null(tls_ctx_client(cli_crt, srv_key, err, sizeof(err)));
	assert_non_null(strstr(err, srv_key));
	assert_int_equal(ERR_peek_error(), 0);
}

static void test_ctx_load_ca(void **state)
{
	char err[512] = "", path[128];
	SSL_CTX *ctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));

	assert_non_null(ctx);
	assert_int_equal(tls_ctx_load_ca(ctx, cli_crt, err, sizeof(err)), 0);
	path_of(path, sizeof(path), "absent-ca.pem");
	assert_int_equal(tls_ctx_load_ca(ctx, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	SSL_CTX_free(ctx);
}

/* Writes DIR/NAME: a CRL issued by the server identity (which signs it), revoking nothing. */
static void write_crl(const char *name, char *path, size_t len)
{
	FILE *f;
	X509 *issuer;
	EVP_PKEY *key;
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();

	path_of(path, len, name);
	f = fopen(srv_crt, "r");
	assert_non_null(f);
	issuer = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	f = fopen(srv_key, "r");
	assert_non_null(f);
	key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(issuer);
	assert_non_null(key);
	assert_non_null(crl);
	assert_int_equal(X509_CRL_set_version(crl, 1), 1);
	assert_int_equal(X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)), 1);
	X509_gmtime_adj(t, -3600);
	assert_int_equal(X509_CRL_set1_lastUpdate(crl, t), 1);
	X509_gmtime_adj(t, 86400);
	assert_int_equal(X509_CRL_set1_nextUpdate(crl, t), 1);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509_CRL(f, crl), 1);
	fclose(f);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
	X509_free(issuer);
}

static bool crl_check_on(SSL_CTX *ctx)
{
	X509_VERIFY_PARAM *p = X509_STORE_get0_param(SSL_CTX_get_cert_store(ctx));

	return (X509_VERIFY_PARAM_get_flags(p) & X509_V_FLAG_CRL_CHECK) != 0;
}

/* A PEM CRL loads and turns the check on; a missing file, or one with no CRL in it, is an
 * error naming the file that leaves the context as it was and the error queue empty. */
static void test_ctx_load_crl(void **state)
{
	char err[512] = "", path[128];
	SSL_CTX *ctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));

	assert_non_null(ctx);
	path_of(path, sizeof(path), "absent.crl");
	assert_int_equal(tls_ctx_load_crl(ctx, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, path));
	assert_int_equal(tls_ctx_load_crl(ctx, srv_crt, err, sizeof(err)), -1);
	assert_non_null(strstr(err, srv_crt));
	assert_false(crl_check_on(ctx));
	assert_int_equal(ERR_peek_error(), 0);

	write_crl("server.crl", path, sizeof(path));
	assert_int_equal(tls_ctx_load_crl(ctx, path, err, sizeof(err)), 0);
	assert_true(crl_check_on(ctx));
	SSL_CTX_free(ctx);
}

/* The CRL check covers the whole chain, not the leaf alone: an intermediate CA revoked by
 * its root's CRL must not go on signing agents (every CA in the chain then needs a CRL). */
static void test_ctx_load_crl_checks_every_ca(void **state)
{
	char err[512] = "", path[128];
	SSL_CTX *ctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	X509_VERIFY_PARAM *p;

	assert_non_null(ctx);
	write_crl("server-all.crl", path, sizeof(path));
	assert_int_equal(tls_ctx_load_crl(ctx, path, err, sizeof(err)), 0);
	p = X509_STORE_get0_param(SSL_CTX_get_cert_store(ctx));
	assert_true((X509_VERIFY_PARAM_get_flags(p) & X509_V_FLAG_CRL_CHECK_ALL) != 0);
	SSL_CTX_free(ctx);
}

static void test_ctx_target(void **state)
{
	char err[512] = "", path[128];
	SSL_CTX *ctx;

	ctx = tls_ctx_target(srv_crt, true, err, sizeof(err));
	if (ctx == NULL)
		fail_msg("tls_ctx_target: %s", err);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	SSL_CTX_free(ctx);
	ctx = tls_ctx_target(NULL, false, err, sizeof(err));
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
	SSL_CTX_free(ctx);
	path_of(path, sizeof(path), "absent-ca.pem");
	assert_null(tls_ctx_target(path, true, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

/* Handshakes in memory, through a BIO pair */

struct pair {
	SSL *cl, *sv;
};

static void pair_new(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx)
{
	BIO *bc = NULL, *bs = NULL;

	p->cl = SSL_new(cctx);
	p->sv = SSL_new(sctx);
	assert_non_null(p->cl);
	assert_non_null(p->sv);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(p->cl, bc, bc);
	SSL_set_bio(p->sv, bs, bs);
	SSL_set_connect_state(p->cl);
	SSL_set_accept_state(p->sv);
}

static void pair_free(struct pair *p)
{
	SSL_free(p->cl);
	SSL_free(p->sv);
}

/* Returns 0 when both sides complete, or -1 as soon as the server side fails (its error
 * left in the queue for tls_failure_reason). */
static int pair_handshake(struct pair *p)
{
	bool cdone = false, sdone = false;

	for (int i = 0; i < 50 && !(cdone && sdone); i++) {
		int rc;
		if (!sdone) {
			rc = SSL_do_handshake(p->sv);
			if (rc == 1)
				sdone = true;
			else if (SSL_get_error(p->sv, rc) != SSL_ERROR_WANT_READ &&
				 SSL_get_error(p->sv, rc) != SSL_ERROR_WANT_WRITE)
				return -1;
		}
		if (!cdone) {
			ERR_set_mark();
			rc = SSL_do_handshake(p->cl);
			if (rc == 1)
				cdone = true;
			/* a client failure shows up as an alert the server reads next */
			ERR_pop_to_mark();
		}
	}
	return cdone && sdone ? 0 : -1;
}

static int accept_any(int preverify, X509_STORE_CTX *x)
{
	return 1; /* pinning is the caller's policy; here any certificate will do */
}

static void test_handshake_tls13_mutual(void **state)
{
	char err[512] = "";
	SSL_CTX *sctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	SSL_CTX *cctx = tls_ctx_client(cli_crt, cli_key, err, sizeof(err));
	struct pair p;
	uint8_t fp[TLS_FP_LEN];
	X509 *peer;

	assert_non_null(sctx);
	assert_non_null(cctx);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, accept_any);
	pair_new(&p, cctx, sctx);
	assert_int_equal(pair_handshake(&p), 0);
	assert_int_equal(SSL_version(p.cl), TLS1_3_VERSION);
	assert_int_equal(SSL_version(p.sv), TLS1_3_VERSION);
	/* each side sees the other's keygen fingerprint */
	peer = SSL_get1_peer_certificate(p.sv);
	assert_non_null(peer);
	assert_int_equal(tls_fingerprint(peer, fp), 0);
	assert_memory_equal(fp, cli_fp, TLS_FP_LEN);
	X509_free(peer);
	peer = SSL_get1_peer_certificate(p.cl);
	assert_non_null(peer);
	assert_int_equal(tls_fingerprint(peer, fp), 0);
	assert_memory_equal(fp, srv_fp, TLS_FP_LEN);
	X509_free(peer);
	pair_free(&p);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void assert_detail_token(const char *detail)
{
	assert_true(strlen(detail) > 0);
	assert_null(strchr(detail, ' '));
	assert_null(strchr(detail, '"'));
}

static void test_failure_reason_empty_queue(void **state)
{
	char detail[256] = "junk";

	ERR_clear_error();
	assert_string_equal(tls_failure_reason(detail, sizeof(detail)), "tls_error");
	assert_string_equal(detail, "");
}

static void test_failure_reason_not_tls(void **state)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	char err[512] = "", detail[256];
	SSL_CTX *sctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	BIO *bc = NULL, *bs = NULL;
	SSL *sv;

	ERR_clear_error();
	assert_non_null(sctx);
	sv = SSL_new(sctx);
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(sv, bs, bs);
	SSL_set_accept_state(sv);
	assert_int_equal(BIO_write(bc, http, (int)strlen(http)), (int)strlen(http));
	assert_true(SSL_do_handshake(sv) <= 0);
	assert_string_equal(tls_failure_reason(detail, sizeof(detail)), "not_tls");
	assert_detail_token(detail);
	assert_int_equal(ERR_peek_error(), 0);
	SSL_free(sv);
	BIO_free(bc);
	SSL_CTX_free(sctx);
}

static void test_failure_reason_old_protocol(void **state)
{
	char err[512] = "", detail[256];
	SSL_CTX *sctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct pair p;

	ERR_clear_error();
	assert_non_null(sctx);
	assert_non_null(cctx);
	SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
	pair_new(&p, cctx, sctx);
	assert_int_equal(pair_handshake(&p), -1);
	assert_string_equal(tls_failure_reason(detail, sizeof(detail)), "unsupported_protocol");
	assert_detail_token(detail);
	pair_free(&p);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void test_failure_reason_no_certificate(void **state)
{
	char err[512] = "", detail[256];
	SSL_CTX *sctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct pair p;

	ERR_clear_error();
	assert_non_null(sctx);
	assert_non_null(cctx);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any);
	pair_new(&p, cctx, sctx);
	assert_int_equal(pair_handshake(&p), -1);
	assert_string_equal(tls_failure_reason(detail, sizeof(detail)), "no_certificate");
	assert_detail_token(detail);
	pair_free(&p);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

static void test_failure_reason_bad_certificate(void **state)
{
	char err[512] = "", detail[256];
	SSL_CTX *sctx = tls_ctx_server(srv_crt, srv_key, err, sizeof(err));
	SSL_CTX *cctx = tls_ctx_client(cli_crt, cli_key, err, sizeof(err));
	struct pair p;

	ERR_clear_error();
	assert_non_null(sctx);
	assert_non_null(cctx);
	/* OpenSSL's own verification: a self-signed client certificate does not chain */
	SSL_CTX_set_verify(sctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, accept_any);
	pair_new(&p, cctx, sctx);
	assert_int_equal(pair_handshake(&p), -1);
	assert_string_equal(tls_failure_reason(detail, sizeof(detail)), "bad_certificate");
	assert_detail_token(detail);
	pair_free(&p);
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fp_parse_hex_round_trip),
		cmocka_unit_test(test_fp_parse_forms),
		cmocka_unit_test(test_fp_parse_rejects),
		cmocka_unit_test(test_fp_hex_all_bytes),
		cmocka_unit_test(test_keygen_files_match_fingerprint),
		cmocka_unit_test(test_keygen_certificate_contents),
		cmocka_unit_test(test_keygen_refuses_overwrite),
		cmocka_unit_test(test_keygen_refuses_existing_cert),
		cmocka_unit_test(test_ctx_load_crl),
		cmocka_unit_test(test_keygen_bad_dir_and_name),
		cmocka_unit_test(test_keygen_fresh_keys),
		cmocka_unit_test(test_fingerprint_file_errors),
		cmocka_unit_test(test_ctx_server_loads_keygen_output),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_ctx_load_ca),
		cmocka_unit_test(test_ctx_target),
		cmocka_unit_test(test_handshake_tls13_mutual),
		cmocka_unit_test(test_ctx_load_crl_checks_every_ca),
		cmocka_unit_test(test_failure_reason_empty_queue),
		cmocka_unit_test(test_failure_reason_not_tls),
		cmocka_unit_test(test_failure_reason_old_protocol),
		cmocka_unit_test(test_failure_reason_no_certificate),
		cmocka_unit_test(test_failure_reason_bad_certificate),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
