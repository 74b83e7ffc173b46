/* Fuzz target for the names of a shared listener (wall/sni.h): a ClientHello's server_name
 * and an HTTP request head's Host, as a visitor sends them.
 *
 * - sni_client_hello never reads past the bytes it is given (a heap copy of exactly their
 *   size) nor past the cap; a wait names a length past what it has, and the input fed in
 *   the pieces its waits ask for gives what the whole gives; a name is lower case, 1..255
 *   bytes without control bytes or spaces.
 * - sni_http_host fed one byte at a time (its resume offset and name kept) gives what the whole
 *   gives, with the same name; the cap holds.
 * - sni_match: a name matches itself, and "*." before it matches one label more.
 * Built by scripts/fuzz.sh; with -DFUZZ_STANDALONE a plain program over the files named. */
#include "common.h"
#include "wall/sni.h"

static void name_ok(const char *name)
{
	size_t n = strlen(name);

	check(n >= 1 && n <= SNI_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];
		check(c > 0x20 && c != 0x7f && !(c >= 'A' && c <= 'Z'));
	}
}

static enum sni_result hello_copy(const uint8_t *data, size_t n, char *name, size_t *need)
{
	uint8_t *p = fuzz_dup(data, n, 0);
	enum sni_result r = sni_client_hello(p, n, SNI_HELLO_CAP, name, need);

	free(p);
	return r;
}

static void hello(const uint8_t *data, size_t size)
{
	char name[SNI_NAME_MAX + 1], name2[SNI_NAME_MAX + 1];
	size_t need = 0, n = 0, need2;
	enum sni_result whole = hello_copy(data, size, name, &need), r;

	if (whole == SNI_NEED_MORE)
		check(need > size && need <= SNI_HELLO_CAP);
	if (whole == SNI_NAME) {
		name_ok(name);
		check(sni_match(name, name));
	}
	/* fed as its waits ask (what it has, when it asks for more than there is) */
	for (;;) {
		r = hello_copy(data, n, name2, &need2);
		if (r != SNI_NEED_MORE || n == size)
			break;
		check(need2 > n);
		n = need2 < size ? need2 : size;
	}
	check(r == whole);
	if (r == SNI_NAME)
		check(strcmp(name, name2) == 0);
}

static void http(const uint8_t *data, size_t size)
{
	char name[SNI_NAME_MAX + 1] = "", name2[SNI_NAME_MAX + 1] = "";
	size_t from = 0, lim = size < SNI_HTTP_CAP + 16 ? size : SNI_HTTP_CAP + 16;
	uint8_t *p = fuzz_dup(data, lim, 0);
	enum sni_result whole = sni_http_host(p, lim, SNI_HTTP_CAP, name, &from), r = SNI_NEED_MORE;

	check(from <= lim && from <= SNI_HTTP_CAP);
	if (whole == SNI_NAME)
		name_ok(name);
	if (whole == SNI_NEED_MORE)
		check(lim < SNI_HTTP_CAP);
	from = 0;
	for (size_t k = 0; k <= lim && r == SNI_NEED_MORE; k++)
		r = sni_http_host(p, k, SNI_HTTP_CAP, name2, &from);
	check(r == whole);
	if (r == SNI_NAME)
		check(strcmp(name, name2) == 0);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	hello(data, size);
	http(data, size);
	if (size > 0 && size < 64 && memchr(data, '\0', size) == NULL) {
		char name[64], star[80], one[80], two[80];

		for (size_t i = 0; i < size; i++)
			name[i] = (char)(data[i] >= 'A' && data[i] <= 'Z' ? data[i] + 32 : data[i]);
		name[size] = '\0';
		snprintf(star, sizeof(star), "*.%s", name);
		snprintf(one, sizeof(one), "x.%s", name);
		snprintf(two, sizeof(two), "y.x.%s", name);
		check(sni_match(name, name));
		if (sni_name_ok(name, false)) {
			check(sni_name_ok(star, true) && !sni_name_ok(star, false));
			check(sni_match(star, one) && !sni_match(star, two) && !sni_match(star, name));
		}
	}
	return 0;
}
