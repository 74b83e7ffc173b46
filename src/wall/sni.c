/* The names a visitor's first bytes carry (see sni.h). */
#include "wall/sni.h"

#include <string.h>

#define SNI_HS_CLIENT_HELLO 1   /* HandshakeType client_hello */
#define SNI_CT_HANDSHAKE 22     /* ContentType handshake */
#define SNI_EXT_SERVER_NAME 0   /* ExtensionType server_name (RFC 6066 3) */
#define SNI_HOST_NAME 0         /* NameType host_name */
#define SNI_METHOD_MAX 32       /* the longest request method we take for HTTP */

const char *const sni_result_names[] = { "need_more", "name", "none", "bad", "too_big" };

/* A bounds-checked reader over a byte range. */
struct sni_rd {
	const uint8_t *p;
	size_t left;
};

static int rd_skip(struct sni_rd *r, size_t n)
{
	if (r->left < n)
		return -1;
	r->p += n;
	r->left -= n;
	return 0;
}

static int rd_u8(struct sni_rd *r, size_t *v)
{
	if (r->left < 1)
		return -1;
	*v = r->p[0];
	return rd_skip(r, 1);
}

static int rd_u16(struct sni_rd *r, size_t *v)
{
	if (r->left < 2)
		return -1;
	*v = (size_t)r->p[0] << 8 | r->p[1];
	return rd_skip(r, 2);
}

/* A vector with a length prefix of w bytes: *sub is its body, r moves past it. */
static int rd_vec(struct sni_rd *r, int w, struct sni_rd *sub)
{
	size_t n;

	if ((w == 1 ? rd_u8(r, &n) : rd_u16(r, &n)) == -1 || r->left < n)
		return -1;
	sub->p = r->p;
	sub->left = n;
	return rd_skip(r, n);
}

static unsigned char sni_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* Copies a name a peer sent, lower-cased: 1..SNI_NAME_MAX bytes, none a control byte, a
 * space or DEL (other bytes pass as they are: an IDN's raw bytes are just bytes). */
static int sni_take_name(const uint8_t *p, size_t n, char name[SNI_NAME_MAX + 1])
{
	if (n == 0 || n > SNI_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] <= 0x20 || p[i] == 0x7f)
			return -1;
		name[i] = (char)sni_lower(p[i]);
	}
	name[n] = '\0';
	return 0;
}

/* The server_name extension's body: one host_name (RFC 6066 3: no two of a type). */
static enum sni_result sni_server_name(struct sni_rd ext, char name[SNI_NAME_MAX + 1])
{
	struct sni_rd list, host;
	bool found = false;
	size_t type;

	if (rd_vec(&ext, 2, &list) == -1 || ext.left != 0 || list.left == 0)
		return SNI_BAD;
	while (list.left > 0) {
		if (rd_u8(&list, &type) == -1 || rd_vec(&list, 2, &host) == -1)
			return SNI_BAD;
		if (type != SNI_HOST_NAME)
			continue;
		if (found || sni_take_name(host.p, host.left, name) == -1)
			return SNI_BAD;
		found = true;
	}
	return found ? SNI_NAME : SNI_NONE;
}

/* A whole ClientHello's body (after the handshake header). */
static enum sni_result sni_hello_body(struct sni_rd r, char name[SNI_NAME_MAX + 1])
{
	struct sni_rd v, exts, ext;
	enum sni_result res = SNI_NONE;
	size_t type;
	bool seen = false;

	/* legacy_version, random, legacy_session_id, cipher_suites, compression_methods */
	if (rd_skip(&r, 2 + 32) == -1 || rd_vec(&r, 1, &v) == -1 || v.left > 32 ||
	    rd_vec(&r, 2, &v) == -1 || v.left < 2 || rd_vec(&r, 1, &v) == -1 || v.left < 1)
		return SNI_BAD;
	if (r.left == 0)
		return SNI_NONE; /* no extensions at all (before TLS 1.2, allowed) */
	if (rd_vec(&r, 2, &exts) == -1 || r.left != 0)
		return SNI_BAD;
	while (exts.left > 0) {
		if (rd_u16(&exts, &type) == -1 || rd_vec(&exts, 2, &ext) == -1)
			return SNI_BAD;
		if (type != SNI_EXT_SERVER_NAME)
			continue;
		if (seen)
			return SNI_BAD; /* an extension twice (RFC 8446 4.2) */
		seen = true;
		res = sni_server_name(ext, name);
		if (res == SNI_BAD)
			return res;
	}
	return res;
}

enum sni_result sni_client_hello(const uint8_t *p, size_t n, size_t cap,
				 char name[SNI_NAME_MAX + 1], size_t *need)
{
	uint8_t hs[SNI_HELLO_CAP]; /* the handshake bytes of the records so far, joined */
	size_t nhs = 0, want = 0, off = 0;

	if (cap > SNI_HELLO_CAP)
		cap = SNI_HELLO_CAP;
	if (n > cap)
		n = cap;
	for (;;) {
		size_t len, body, used = 0, lack;

		if (n - off < 5) {
			if (n > off && p[off] != SNI_CT_HANDSHAKE)
				return SNI_BAD;
			*need = off + 5;
			break;
		}
		len = (size_t)p[off + 3] << 8 | p[off + 4];
		if (p[off] != SNI_CT_HANDSHAKE || p[off + 1] != 3 || len == 0)
			return SNI_BAD;
		if (len > SNI_RECORD_MAX)
			return SNI_TOO_BIG;
		body = n - off - 5 < len ? n - off - 5 : len;
		while (used < body) {
			size_t k = want != 0 ? want - nhs : 4 - nhs;
			if (k > body - used)
				k = body - used;
			memcpy(hs + nhs, p + off + 5 + used, k);
			nhs += k;
			used += k;
			if (want == 0 && nhs == 4) {
				if (hs[0] != SNI_HS_CLIENT_HELLO)
					return SNI_BAD;
				want = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
				if (want > cap - 5)
					return SNI_TOO_BIG;
			}
			if (want != 0 && nhs == want)
				return sni_hello_body((struct sni_rd){ hs + 4, want - 4 }, name);
		}
		if (body < len) {
			/* of this record, only what the handshake still lacks is needed */
			lack = want != 0 ? want - nhs : 4 - nhs;
			*need = off + 5 + used + (lack < len - used ? lack : len - used);
			break;
		}
		off += 5 + len;
	}
	return *need > cap ? SNI_TOO_BIG : SNI_NEED_MORE;
}

/* ---- HTTP/1.x ---- */

static bool sni_tchar_upper(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

/* "METHOD SP TARGET SP HTTP/1.d" (RFC 9112 3). */
static bool sni_request_line(const uint8_t *l, size_t n)
{
	size_t i = 0, t;

	while (i < n && i <= SNI_METHOD_MAX && sni_tchar_upper(l[i]))
		i++;
	if (i == 0 || i > SNI_METHOD_MAX || i == n || l[i] != ' ')
		return false;
	t = ++i;
	while (i < n && l[i] > 0x20 && l[i] != 0x7f)
		i++;
	return i > t && n - i == 9 && memcmp(l + i, " HTTP/1.", 8) == 0 && l[n - 1] >= '0' &&
	       l[n - 1] <= '9';
}

/* A start of a request that cannot become a request line: a method that is not one. */
static bool sni_request_start_bad(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == ' ')
			return i == 0;
		if (!sni_tchar_upper(p[i]) || i >= SNI_METHOD_MAX)
			return true;
	}
	return false;
}

/* A header line "name:value" whose name has no whitespace: not an obs-fold, not
 * "Host :" (RFC 9112 5.1, 5.2), which a backend might read as a Host we did not. */
static bool sni_field_line(const uint8_t *l, size_t n)
{
	const uint8_t *colon = memchr(l, ':', n);

	if (colon == NULL || colon == l)
		return false;
	for (const uint8_t *c = l; c < colon; c++)
		if (*c == ' ' || *c == '\t')
			return false;
	return true;
}

/* The Host header's value v[0..n): its host, without port or brackets, or the trailing
 * dot of a fully qualified name (RFC 3986 3.2.2: "a.example." is "a.example"). */
static enum sni_result sni_host_value(const uint8_t *v, size_t n, char name[SNI_NAME_MAX + 1])
{
	size_t end, i, skip = 0;

	while (n > 0 && (v[0] == ' ' || v[0] == '\t'))
		v++, n--;
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 0)
		return SNI_NONE;
	if (v[0] == '[') {
		const uint8_t *close = memchr(v, ']', n);
		if (close == NULL)
			return SNI_BAD;
		end = (size_t)(close - v) + 1;
		if (end < n && v[end] != ':')
			return SNI_BAD;
		i = end;
		skip = 1;
		end -= 1;
	} else {
		const uint8_t *colon = memrchr(v, ':', n);
		end = colon != NULL ? (size_t)(colon - v) : n;
		i = end;
		if (end > 1 && v[end - 1] == '.')
			end--;
	}
	if (i < n) { /* ":port": digits only, or nothing */
		if (n - i - 1 > 5)
			return SNI_BAD;
		for (size_t k = i + 1; k < n; k++)
			if (v[k] < '0' || v[k] > '9')
				return SNI_BAD;
	}
	return sni_take_name(v + skip, end - skip, name) == -1 ? SNI_BAD : SNI_NAME;
}

enum sni_result sni_http_host(const uint8_t *p, size_t n, size_t cap,
			      char name[SNI_NAME_MAX + 1], size_t *from)
{
	size_t off = *from, lim = n < cap ? n : cap;

	for (;;) {
		const uint8_t *nl = off < lim ? memchr(p + off, '\n', lim - off) : NULL;
		size_t len;

		if (nl == NULL) {
			*from = off;
			if (off == 0 && sni_request_start_bad(p, lim))
				return SNI_BAD;
			return lim >= cap ? SNI_TOO_BIG : SNI_NEED_MORE;
		}
		len = (size_t)(nl - (p + off));
		if (len > 0 && p[off + len - 1] == '\r')
			len--;
		if (off == 0) {
			if (!sni_request_line(p, len))
				return SNI_BAD;
		} else if (len == 0) {
			return name[0] != '\0' ? SNI_NAME : SNI_NONE; /* the head ends */
		} else if (!sni_field_line(p + off, len)) {
			return SNI_BAD;
		} else if (len >= 5 && strncasecmp((const char *)p + off, "host:", 5) == 0) {
			size_t next = (size_t)(nl - p) + 1;
			if (name[0] != '\0')
				return SNI_BAD; /* a second Host */
			if (next == lim) { /* the next line's first byte tells an obs-fold */
				*from = off;
				return lim >= cap ? SNI_TOO_BIG : SNI_NEED_MORE;
			}
			if (p[next] == ' ' || p[next] == '\t')
				return SNI_BAD;
			if (sni_host_value(p + off + 5, len - 5, name) != SNI_NAME) {
				name[0] = '\0';
				return SNI_BAD; /* an empty Host is no name to route by either */
			}
		}
		off = (size_t)(nl - p) + 1;
	}
}

/* ---- names ---- */

bool sni_match(const char *pattern, const char *name)
{
	size_t pl, nl;

	if (pattern[0] != '*' || pattern[1] != '.')
		return strcmp(pattern, name) == 0;
	pl = strlen(pattern + 1); /* ".suffix" */
	nl = strlen(name);
	return nl > pl && memcmp(name + nl - pl, pattern + 1, pl) == 0 &&
	       memchr(name, '.', nl - pl) == NULL;
}

bool sni_name_ok(const char *s, bool pattern)
{
	size_t n = strlen(s), label = 0;

	if (pattern && s[0] == '*' && s[1] == '.') {
		s += 2;
		n -= 2;
	}
	if (n == 0 || n > SNI_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c >= 0x80))
			return false;
		label++;
	}
	return label > 0;
}
