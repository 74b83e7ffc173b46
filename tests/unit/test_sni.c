/* Unit tests for wall/sni: the server_name of ClientHellos (real ones from OpenSSL, and
 * made by hand where a peer lies), the Host of HTTP/1.x request heads, and name matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wall/sni.h"

#define HELLO_MAX (64 * 1024)

/* A real ClientHello as OpenSSL's client sends it (TLS 1.2 and 1.3 offered), naming name
 * (NULL: no server_name). Returns its length. */
static size_t real_hello(const char *name, uint8_t *out, size_t cap)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n;

	assert_non_null(ssl);
	SSL_set_bio(ssl, rb, wb);
	if (name != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, name), 1);
	assert_int_equal(SSL_connect(ssl), -1); /* waits for the ServerHello */
	n = BIO_read(wb, out, (int)cap);
	assert_true(n > 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

static void put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* A ClientHello record by hand, with the given extensions block (its body), or none when
 * ext is NULL. */
static size_t hand_hello(const uint8_t *ext, size_t next, uint8_t *out)
{
	size_t n = 9;

	out[0] = 22, out[1] = 3, out[2] = 1;
	out[5] = 1;
	out[n++] = 3, out[n++] = 3;
	memset(out + n, 0xab, 32), n += 32;
	out[n++] = 0;                                /* session id */
	put16(out + n, 2), n += 2, out[n++] = 0x13, out[n++] = 0x01; /* one suite */
	out[n++] = 1, out[n++] = 0;                  /* compression: null */
	if (ext != NULL) {
		put16(out + n, next), n += 2;
		memcpy(out + n, ext, next), n += next;
	}
	put16(out + 3, n - 5);
	out[6] = (uint8_t)((n - 9) >> 16), put16(out + 7, n - 9);
	return n;
}

/* A server_name extension (type, length, list) with the given entries' bytes. */
static size_t sn_ext(const uint8_t *entries, size_t n, uint8_t *out)
{
	put16(out, 0);
	put16(out + 2, n + 2);
	put16(out + 4, n);
	memcpy(out + 6, entries, n);
	return n + 6;
}

static size_t host_entry(const char *name, uint8_t *out)
{
	size_t n = strlen(name);

	out[0] = 0;
	put16(out + 1, n);
	memcpy(out + 3, name, n);
	return n + 3;
}

/* Reads p[0..n) from a heap copy of exactly n bytes. */
static enum sni_result hello(const uint8_t *p, size_t n, char *name, size_t *need)
{
	uint8_t *c = calloc(1, n ? n : 1);
	enum sni_result r;

	if (n > 0)
		memcpy(c, p, n);
	r = sni_client_hello(c, n, SNI_HELLO_CAP, name, need);
	free(c);
	return r;
}

/* Every prefix of p[0..n) waits, for no more than the whole; the whole gives want. */
static void every_prefix(const uint8_t *p, size_t n, enum sni_result want, const char *wname)
{
	char name[SNI_NAME_MAX + 1];
	size_t need = 0;

	for (size_t k = 0; k < n; k++) {
		assert_int_equal(hello(p, k, name, &need), SNI_NEED_MORE);
		assert_true(need > k && need <= n);
	}
	assert_int_equal(hello(p, n, name, &need), want);
	if (wname != NULL)
		assert_string_equal(name, wname);
}

/* The handshake bytes of the record p re-cut into records of at most size bytes. */
static size_t recut(const uint8_t *p, size_t n, size_t size, uint8_t *out)
{
	size_t o = 0;

	for (size_t i = 5; i < n; i += size) {
		size_t k = n - i < size ? n - i : size;
		out[o] = 22, out[o + 1] = 3, out[o + 2] = 1;
		put16(out + o + 3, k);
		memcpy(out + o + 5, p + i, k);
		o += 5 + k;
	}
	return o;
}

static void test_real_hello(void **state)
{
	static uint8_t h[HELLO_MAX], r[HELLO_MAX * 6];
	size_t n = real_hello("App.Example.TEST", h, sizeof(h)), m;

	(void)state;
	every_prefix(h, n, SNI_NAME, "app.example.test");
	/* bytes after the ClientHello change nothing */
	memcpy(r, h, n);
	memset(r + n, 0x17, 100);
	every_prefix(r, n, SNI_NAME, "app.example.test");
	/* the same handshake over records of 1, 7 and 100 bytes */
	for (size_t i = 0; i < 3; i++) {
		m = recut(h, n, (size_t[]){ 1, 7, 100 }[i], r);
		if (m <= SNI_HELLO_CAP)
			every_prefix(r, m, SNI_NAME, "app.example.test");
	}
}

static void test_no_name(void **state)
{
	static uint8_t h[HELLO_MAX];
	size_t n = real_hello(NULL, h, sizeof(h));

	(void)state;
	every_prefix(h, n, SNI_NONE, NULL);
	n = hand_hello(NULL, 0, h); /* no extensions at all */
	every_prefix(h, n, SNI_NONE, NULL);
}

static void test_hand_names(void **state)
{
	uint8_t e[1024], x[1200], h[2048];
	char name[SNI_NAME_MAX + 1];
	size_t n, k, need;

	(void)state;
	/* an IDN: its bytes as they come, ASCII upper case lowered */
	k = host_entry("CAF\xc3\xa9.xn--bcher-kva.Example", e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	every_prefix(h, n, SNI_NAME, "caf\xc3\xa9.xn--bcher-kva.example");
	/* two host names: malformed (RFC 6066 3) */
	k = host_entry("a.example", e);
	k += host_entry("b.example", e + k);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	/* another name type only: no host name */
	k = host_entry("a.example", e);
	e[0] = 7;
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_NONE);
	/* a name with a space, an empty name, a name of 256 bytes */
	k = host_entry("a b", e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	k = host_entry("", e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	memset(x, 'a', 256);
	x[256] = '\0';
	k = host_entry((char *)x, e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	/* 255 bytes is a name */
	memset(x, 'a', 255);
	x[255] = '\0';
	k = host_entry((char *)x, e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_NAME);
	assert_int_equal(strlen(name), 255);
	/* server_name twice */
	k = host_entry("a.example", e);
	n = sn_ext(e, k, x);
	memcpy(x + n, x, n);
	n = hand_hello(x, 2 * n, h);
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
}

static void test_lies(void **state)
{
	uint8_t e[64], x[128], h[256], big[SNI_HELLO_CAP + 64];
	char name[SNI_NAME_MAX + 1];
	size_t n, k, need;

	(void)state;
	k = host_entry("a.example", e);
	n = hand_hello(x, sn_ext(e, k, x), h);
	assert_int_equal(hello(h, n, name, &need), SNI_NAME);
	/* a host name longer than its list */
	h[n - 10]++;
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	h[n - 10]--;
	/* the extensions' length past the end of the hello */
	h[n - 21 + 1] += 1;
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	h[n - 21 + 1] -= 1;
	/* a session id of 33 bytes */
	h[9 + 34] = 33;
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	h[9 + 34] = 0;
	/* a handshake shorter than its fields: the record and handshake cut */
	assert_int_equal(hello(h, n, name, &need), SNI_NAME);
	/* not a ClientHello, not a handshake record, not TLS 1.x, an empty record */
	h[5] = 2;
	assert_int_equal(hello(h, n, name, &need), SNI_BAD);
	h[5] = 1;
	h[0] = 23;
	assert_int_equal(hello(h, 1, name, &need), SNI_BAD);
	h[0] = 22;
	h[1] = 2;
	assert_int_equal(hello(h, 5, name, &need), SNI_BAD);
	h[1] = 3;
	memcpy(big, "\x16\x03\x01\x00\x00", 5);
	assert_int_equal(hello(big, 5, name, &need), SNI_BAD);
	/* a record of SNI_RECORD_MAX + 1 bytes: too big, as soon as its header is in */
	put16(big + 3, SNI_RECORD_MAX + 1);
	assert_int_equal(hello(big, 5, name, &need), SNI_TOO_BIG);
	/* a handshake that says it is longer than the cap can hold */
	put16(big + 3, SNI_RECORD_MAX);
	memcpy(big + 5, "\x01\x00\x40\x00", 4);
	assert_int_equal(hello(big, 9, name, &need), SNI_TOO_BIG);
	/* a handshake that fits one full record, cut into records whose headers push it past
	 * the cap */
	memcpy(big + 5, "\x01\x00\x3f\xfc", 4); /* 4 + 16380 = 16384 bytes */
	assert_int_equal(hello(big, 9, name, &need), SNI_NEED_MORE);
	assert_int_equal(need, 5 + 16384);
	put16(big + 3, 8000);
	assert_int_equal(hello(big, 9, name, &need), SNI_NEED_MORE);
	memset(big + 9, 0, 8000 - 4);
	memcpy(big + 5 + 8000, "\x16\x03\x01\x20\x00", 5); /* 8192 more: 16192 so far */
	assert_int_equal(hello(big, 5 + 8000 + 5, name, &need), SNI_NEED_MORE);
	memcpy(big + 5 + 8000 + 5 + 8192, "\x16\x03\x01\x00\xc0", 5); /* header: over */
	memset(big + 5 + 8000 + 5, 0, 8192);
	assert_int_equal(hello(big, 5 + 8000 + 5 + 8192 + 5, name, &need), SNI_TOO_BIG);
	/* garbage */
	assert_int_equal(hello((const uint8_t *)"GET / HTTP/1.1\r\n", 16, name, &need), SNI_BAD);
	assert_int_equal(hello((const uint8_t *)"\x80\x2e\x01", 3, name, &need), SNI_BAD);
	assert_int_equal(hello(NULL, 0, name, &need), SNI_NEED_MORE);
	assert_int_equal(need, 5);
}

/* The head p, fed one byte at a time with from kept, and whole from 0, gives want. */
static void http_each(const char *p, enum sni_result want, const char *wname)
{
	char name[SNI_NAME_MAX + 1] = "";
	size_t n = strlen(p), from = 0;
	enum sni_result r = SNI_NEED_MORE;

	for (size_t k = 0; k <= n && r == SNI_NEED_MORE; k++)
		r = sni_http_host((const uint8_t *)p, k, SNI_HTTP_CAP, name, &from);
	assert_int_equal(r, want);
	from = 0;
	name[0] = '\0';
	assert_int_equal(sni_http_host((const uint8_t *)p, n, SNI_HTTP_CAP, name, &from), want);
	if (wname != NULL)
		assert_string_equal(name, wname);
}

static void test_http(void **state)
{
	static char big[SNI_HTTP_CAP + 64];
	char name[SNI_NAME_MAX + 1];
	size_t from = 0, n;

	(void)state;
	http_each("GET / HTTP/1.1\r\nHost: App.Example.test:8080\r\n\r\n", SNI_NAME,
		  "app.example.test");
	http_each("GET /x HTTP/1.0\nAccept: */*\nhOsT:\tb.example \n\n", SNI_NAME, "b.example");
	http_each("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", SNI_NAME, "::1");
	http_each("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", SNI_NAME, "127.0.0.1");
	http_each("GET / HTTP/1.1\r\nUser-Agent: x\r\n\r\n", SNI_NONE, NULL);
	http_each("GET / HTTP/1.1\r\nHost: \r\n\r\n", SNI_BAD, NULL);
	/* two Host lines: a backend might read either (RFC 9112 3.2) */
	http_each("GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nhost: b\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/2.0\r\nHost: a\r\n\r\n", SNI_BAD, NULL);
	http_each("GET /HTTP/1.1\r\nHost: a\r\n\r\n", SNI_BAD, NULL);
	http_each("\x16\x03\x01\x02\x00\x01", SNI_BAD, NULL);
	http_each("get / HTTP/1.1\r\n", SNI_BAD, NULL);
	/* what a backend might read as another Host (RFC 9112 5.1, 5.2), a trailing dot */
	http_each("GET / HTTP/1.1\r\nHost:\r\n a.example\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost: a\r\n\tb\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\n Host: b\r\nHost: a\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nNoColon\r\nHost: a\r\n\r\n", SNI_BAD, NULL);
	http_each("GET / HTTP/1.1\r\nHost: A.Example.:80\r\n\r\n", SNI_NAME, "a.example");
	/* a head that does not end within the cap */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: ");
	memset(big + n, 'a', sizeof(big) - n - 1);
	name[0] = '\0';
	assert_int_equal(sni_http_host((const uint8_t *)big, SNI_HTTP_CAP - 1, SNI_HTTP_CAP, name,
				       &from),
			 SNI_NEED_MORE);
	assert_int_equal(sni_http_host((const uint8_t *)big, SNI_HTTP_CAP, SNI_HTTP_CAP, name,
				       &from),
			 SNI_TOO_BIG);
	/* a head with its Host that ends at the cap's last byte is read; a byte more and the
	 * head does not end within the cap */
	n = SNI_HTTP_CAP - strlen("\r\nHost: h\r\n\r\n");
	memcpy(big + n, "\r\nHost: h\r\n\r\n", strlen("\r\nHost: h\r\n\r\n"));
	from = 0;
	name[0] = '\0';
	assert_int_equal(sni_http_host((const uint8_t *)big, sizeof(big), SNI_HTTP_CAP, name,
				       &from),
			 SNI_NAME);
	assert_string_equal(name, "h");
	memset(big, 'a', sizeof(big) - 1);
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: ");
	big[n] = 'a';
	n = SNI_HTTP_CAP + 1 - strlen("\r\nHost: h\r\n\r\n");
	memcpy(big + n, "\r\nHost: h\r\n\r\n", strlen("\r\nHost: h\r\n\r\n"));
	from = 0;
	name[0] = '\0';
	assert_int_equal(sni_http_host((const uint8_t *)big, sizeof(big), SNI_HTTP_CAP, name,
				       &from),
			 SNI_TOO_BIG);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(sni_match("app.example.org", "app.example.org"));
	assert_false(sni_match("app.example.org", "x.app.example.org"));
	assert_true(sni_match("*.clinic.example", "a.clinic.example"));
	assert_false(sni_match("*.clinic.example", "b.a.clinic.example"));
	assert_false(sni_match("*.clinic.example", "clinic.example"));
	assert_false(sni_match("*.clinic.example", ".clinic.example"));
	assert_false(sni_match("*.clinic.example", "aclinic.example"));
	assert_true(sni_name_ok("App.example-1.org", false));
	assert_true(sni_name_ok("*.clinic.example", true));
	assert_false(sni_name_ok("*.clinic.example", false));
	assert_false(sni_name_ok("*", true));
	assert_false(sni_name_ok("a..b", false));
	assert_false(sni_name_ok("a.b.", false));
	assert_false(sni_name_ok("a.*.b", true));
	assert_false(sni_name_ok("", false));
	assert_false(sni_name_ok("a b", false));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hello), cmocka_unit_test(test_no_name),
		cmocka_unit_test(test_hand_names), cmocka_unit_test(test_lies),
		cmocka_unit_test(test_http),       cmocka_unit_test(test_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
