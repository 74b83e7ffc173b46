/* Account passwords, stored as salted slow hashes: scrypt from OpenSSL (EVP_PBE_scrypt),
 * encoded "scrypt$N$r$p$<salt base64>$<hash base64>" with N = 2^15, r = 8, p = 1, a
 * 16-byte random salt and a 32-byte hash. Verification recomputes with the parameters in
 * the stored string and compares in constant time. The accounts file holds one account per
 * line, "name:encoded", with '#' comments; it is rewritten atomically (a temporary file
 * renamed over it, mode 0600). Passwords are wiped from memory after use. */
#ifndef NETWALL_PASSWD_H
#define NETWALL_PASSWD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PASSWD_ENCODED_MAX 160 /* bytes of an encoded hash, NUL included */
#define PASSWD_MIN_LEN 8       /* a shorter password is refused */
#define PASSWD_MAX_LEN 256

/* Hashes password[0..len) with a fresh salt into out. Returns 0, or -1 with err filled
 * (too short or too long, OpenSSL failure). */
int passwd_hash(const char *password, size_t len, char out[PASSWD_ENCODED_MAX], char *err,
		size_t errlen);
/* Test hook: the same with explicit scrypt N (a power of two) and salt, so unit tests run
 * fast and can compare against known answers. */
int passwd_hash_params(const char *password, size_t len, uint64_t n, const uint8_t salt[16],
		       char out[PASSWD_ENCODED_MAX], char *err, size_t errlen);
/* True if password matches encoded. A malformed encoded string never matches. Parameters
 * are bounded (N at most 2^20, r at most 16, p at most 4, and scrypt's memory, 128 * N * r
 * bytes, at most 256 MiB) so a tampered file cannot make a login cost gigabytes. */
bool passwd_verify(const char *password, size_t len, const char *encoded);

/* The accounts file. */
struct passwd_account {
	char name[31]; /* IRC_NICK_MAX + 1 */
	char encoded[PASSWD_ENCODED_MAX];
	unsigned line; /* where it is in the file */
};
/* Loads file into a malloc'd array (*out, *n), sorted by casefolded name, in time
 * n log n. A missing file is an empty list. Returns 0, or -1 with err "file:line:
 * message" for a malformed line or a duplicate account. */
int passwd_load(const char *file, struct passwd_account **out, size_t *n, char *err,
		size_t errlen);
/* Sets name's password (adding the account if new) and rewrites file atomically. */
int passwd_set(const char *file, const char *name, const char *password, size_t len, char *err,
	       size_t errlen);
/* Finds name (rfc1459 case-insensitively) in accounts as passwd_load sorts them, by
 * bisection; NULL if absent. */
const struct passwd_account *passwd_find(const struct passwd_account *accounts, size_t n,
					 const char *name);

#endif
