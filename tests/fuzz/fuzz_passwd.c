/* Fuzz target for the chat accounts file (chat/passwd): the input is written to a temporary
 * file and loaded with passwd_load, which must give a list of valid, distinct accounts that
 * passwd_find finds (under rfc1459 case mapping), or an error naming the file and line and
 * no list. The stored hashes, and the input's first line read as one, are checked with
 * passwd_verify when their scrypt parameters are cheap (the expensive ones are bounded by
 * the parser and would only slow the fuzzer): for r = 8 and p = 1 the answer must be what
 * hashing the password again with the same N and salt says.
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line through the same checks. */
#define FUZZ_FILE_IMPL
#include <openssl/evp.h>

#include "chat/irc.h"
#include "chat/passwd.h"
#include "common.h"

#define PW "correct horse"
#define PWLEN (sizeof(PW) - 1)

/* Verifies PW against enc when its N * r * p is small; with r = 8, p = 1 and a salt of the
 * right length, compares with hashing PW again under the same N and salt. */
static void verify(const char *enc)
{
	unsigned long long n, r, p;
	const char *salt64;
	char again[PASSWD_ENCODED_MAX], err[128];
	uint8_t salt[18];
	bool ok;

	if (sscanf(enc, "scrypt$%llu$%llu$%llu$", &n, &r, &p) != 3)
		return;
	if (n == 0 || n > 1024 || r == 0 || r > 16 || p == 0 || p > 4 || n * r * p > 4096)
		return;
	ok = passwd_verify(PW, PWLEN, enc);
	check(!passwd_verify(PW, PASSWD_MIN_LEN - 1, enc));
	if (r != 8 || p != 1 || (n & (n - 1)) != 0 || n < 2)
		return;
	salt64 = enc;
	for (int i = 0; i < 4 && salt64 != NULL; i++) {
		salt64 = strchr(salt64, '$');
		if (salt64 != NULL)
			salt64++;
	}
	if (salt64 == NULL || strcspn(salt64, "$") != 24 ||
	    EVP_DecodeBlock(salt, (const unsigned char *)salt64, 24) != 18)
		return;
	check(passwd_hash_params(PW, PWLEN, n, salt, again, err, sizeof(err)) == 0);
	check(ok == (strcmp(again, enc) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	struct passwd_account *list = (struct passwd_account *)1;
	size_t n = 99, verified = 0;
	char err[256] = "", first[PASSWD_ENCODED_MAX + 40];
	const uint8_t *nl;
	size_t k;

	if (passwd_load(path, &list, &n, err, sizeof(err)) == 0) {
		check(err[0] == '\0');
		check(n == 0 || list != NULL);
		for (size_t i = 0; i < n; i++) {
			const struct passwd_account *a = &list[i];
			char folded[sizeof(a->name)];

			check(memchr(a->name, '\0', sizeof(a->name)) != NULL);
			check(memchr(a->encoded, '\0', sizeof(a->encoded)) != NULL);
			check(irc_nick_valid(a->name));
			check(strncmp(a->encoded, "scrypt$", 7) == 0);
			check(passwd_find(list, n, a->name) == a);
			irc_casefold(folded, a->name, sizeof(folded));
			check(passwd_find(list, n, folded) == a);
			if (verified < 4) {
				verify(a->encoded);
				verified++;
			}
		}
		check(passwd_find(list, n, "") == NULL);
		free(list);
	} else {
		check(list == NULL && n == 0);
		check(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
	}
	/* the first line as an encoded hash */
	nl = memchr(data, '\n', size);
	k = nl != NULL ? (size_t)(nl - data) : size;
	k = k < sizeof(first) - 1 ? k : sizeof(first) - 1;
	memcpy(first, data, k);
	first[k] = '\0';
	verify(first);
	return 0;
}
