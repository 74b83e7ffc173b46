/* Unit tests for chat/passwd: scrypt hashes, their strict parsing, the accounts file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat/passwd.h"

#define PW "correct horse"
#define PWLEN (sizeof(PW) - 1)

static const uint8_t salt0[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* Computed at test-writing time, independently of OpenSSL's EVP API, with Python:
 * base64.b64encode(hashlib.scrypt(b"correct horse", salt=bytes(range(16)), n=16, r=8, p=1,
 * dklen=32)) */
static const char known_n16[] =
	"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw==$Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8=";
/* the same with n=32, r=4, p=2: verification must use the parameters it is given */
static const char known_n32_r4_p2[] =
	"scrypt$32$4$2$AAECAwQFBgcICQoLDA0ODw==$ga/mPkDc+WnGQpwfXkwFVW6KGQW6ucaPYO/2YkDQ5nU=";
/* password b"\xff\x00password" (10 bytes, a NUL inside), n=2, r=1, p=1 */
static const char known_binary[] =
	"scrypt$2$1$1$AAECAwQFBgcICQoLDA0ODw==$buCy0nVdSbcIz5uhaqTyS2UPIM2qLEOsRt9i1+nxy/M=";

static void test_known_answer(void **state)
{
	char out[PASSWD_ENCODED_MAX], err[128];

	assert_int_equal(passwd_hash_params(PW, PWLEN, 16, salt0, out, err, sizeof(err)), 0);
	assert_string_equal(out, known_n16);
	assert_true(passwd_verify(PW, PWLEN, known_n16));
	assert_true(passwd_verify(PW, PWLEN, known_n32_r4_p2));
	assert_true(passwd_verify("\xff\0password", 10, known_binary));
	assert_false(passwd_verify("\xff", 1, known_binary));
	assert_false(passwd_verify("\xff\0passwore", 10, known_binary));
}

static void test_verify_right_and_wrong(void **state)
{
	char out[PASSWD_ENCODED_MAX], err[128], pw[] = PW;

	assert_int_equal(passwd_hash_params(PW, PWLEN, 16, salt0, out, err, sizeof(err)), 0);
	assert_true(passwd_verify(PW, PWLEN, out));
	assert_false(passwd_verify("correct horsf", PWLEN, out));
	assert_false(passwd_verify("Correct horse", PWLEN, out));
	assert_false(passwd_verify(PW, PWLEN - 1, out));
	assert_false(passwd_verify("correct horse ", PWLEN + 1, out));
	assert_false(passwd_verify("", 0, out));
	assert_false(passwd_verify(NULL, 0, out));
	/* every single byte off, every single bit */
	for (size_t i = 0; i < PWLEN; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			pw[i] ^= (char)(1 << bit);
			if (passwd_verify(pw, PWLEN, out))
				fail_msg("verified with byte %zu bit %d flipped", i, bit);
			pw[i] ^= (char)(1 << bit);
		}
	}
	assert_true(passwd_verify(pw, PWLEN, out));
}

static void test_salt_differs(void **state)
{
	char a[PASSWD_ENCODED_MAX], b[PASSWD_ENCODED_MAX], err[128];
	struct timespec t0, t1;

	/* the default cost, once: measured, and printed for the record */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(passwd_hash(PW, PWLEN, a, err, sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# passwd_hash at the default cost: %.0f ms\n",
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	assert_int_equal(strncmp(a, "scrypt$32768$8$1$", 17), 0);
	assert_true(strlen(a) < PASSWD_ENCODED_MAX);
	assert_true(passwd_verify(PW, PWLEN, a));
	assert_false(passwd_verify("correct horsE", PWLEN, a));

	/* a second hash of the same password has another salt, so another string */
	assert_int_equal(passwd_hash(PW, PWLEN, b, err, sizeof(err)), 0);
	assert_string_not_equal(a, b);
	assert_true(passwd_verify(PW, PWLEN, b));
}

static void test_length_limits(void **state)
{
	char out[PASSWD_ENCODED_MAX], err[128];
	char big[PASSWD_MAX_LEN + 1];

	memset(big, 'x', sizeof(big));
	err[0] = '\0';
	assert_int_equal(passwd_hash_params("1234567", PASSWD_MIN_LEN - 1, 16, salt0, out, err,
					    sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(passwd_hash("", 0, out, err, sizeof(err)), -1);
	assert_int_equal(passwd_hash_params(big, PASSWD_MAX_LEN + 1, 16, salt0, out, err,
					    sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "too long"));

	assert_int_equal(passwd_hash_params("12345678", PASSWD_MIN_LEN, 16, salt0, out, err,
					    sizeof(err)),
			 0);
	assert_true(passwd_verify("12345678", PASSWD_MIN_LEN, out));
	assert_int_equal(passwd_hash_params(big, PASSWD_MAX_LEN, 16, salt0, out, err, sizeof(err)),
			 0);
	assert_true(passwd_verify(big, PASSWD_MAX_LEN, out));
	assert_false(passwd_verify(big, PASSWD_MAX_LEN + 1, out));

	/* N must be a power of two, at least 2, at most 2^20 */
	assert_int_equal(passwd_hash_params(PW, PWLEN, 24, salt0, out, err, sizeof(err)), -1);
	assert_int_equal(passwd_hash_params(PW, PWLEN, 1, salt0, out, err, sizeof(err)), -1);
	assert_int_equal(passwd_hash_params(PW, PWLEN, 0, salt0, out, err, sizeof(err)), -1);
	assert_int_equal(passwd_hash_params(PW, PWLEN, 1u << 21, salt0, out, err, sizeof(err)),
			 -1);
}

static void test_malformed_never_verify(void **state)
{
#define SALT "AAECAwQFBgcICQoLDA0ODw=="
#define HASH "Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8="
	static const char *const bad[] = {
		"",
		"scrypt",
		"scrypt$16$8$1$" SALT,                    /* five fields */
		"scrypt$16$8$1$" SALT "$" HASH "$",       /* seven */
		"scrypt$16$8$1$" SALT "$" HASH "$x",      /* seven */
		"scrypt$16$8$" SALT "$" HASH,             /* p missing */
		"Scrypt$16$8$1$" SALT "$" HASH,           /* scheme */
		"bcrypt$16$8$1$" SALT "$" HASH,
		"scrypt$$8$1$" SALT "$" HASH,             /* empty N */
		"scrypt$016$8$1$" SALT "$" HASH,          /* leading zero */
		"scrypt$+16$8$1$" SALT "$" HASH,
		"scrypt$-16$8$1$" SALT "$" HASH,
		"scrypt$ 16$8$1$" SALT "$" HASH,
		"scrypt$16 $8$1$" SALT "$" HASH,
		"scrypt$0x10$8$1$" SALT "$" HASH,
		"scrypt$15$8$1$" SALT "$" HASH,           /* N not a power of two */
		"scrypt$24$8$1$" SALT "$" HASH,
		"scrypt$1$8$1$" SALT "$" HASH,            /* N too small */
		"scrypt$0$8$1$" SALT "$" HASH,
		"scrypt$2097152$8$1$" SALT "$" HASH,      /* N = 2^21 */
		"scrypt$1048576$16$1$" SALT "$" HASH,     /* 2 GiB: over the memory ceiling */
		"scrypt$18446744073709551616$8$1$" SALT "$" HASH,
		"scrypt$16$0$1$" SALT "$" HASH,           /* r */
		"scrypt$16$17$1$" SALT "$" HASH,
		"scrypt$16$8$0$" SALT "$" HASH,           /* p */
		"scrypt$16$8$5$" SALT "$" HASH,
		"scrypt$16$8$1$$" HASH,                   /* empty salt */
		"scrypt$16$8$1$" SALT "$",                /* empty hash */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw=$" HASH,   /* padding short */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw$" HASH,    /* no padding */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODx==$" HASH,  /* non-zero pad bits */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0OD*==$" HASH,  /* not base64 */
		"scrypt$16$8$1$ AECAwQFBgcICQoLDA0ODw==$" HASH,  /* blank inside */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw==$ Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8",
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODwAA$" HASH,  /* 18-byte salt */
		"scrypt$16$8$1$AAECAwQFBgcICQoLDA0O$" HASH,      /* 12-byte salt */
		"scrypt$16$8$1$" SALT "$Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8",
		"scrypt$16$8$1$" SALT "$Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y9=",
		"scrypt$16$8$1$" SALT "$" HASH "x",       /* trailing junk */
		"scrypt$16$8$1$" SALT "$" HASH " ",
		"scrypt$16$8$1$" SALT "$" HASH "\n",
		"scrypt$16$8$1$" SALT "$" HASH "AAAA",    /* a longer hash */
		" scrypt$16$8$1$" SALT "$" HASH,
	};
	char longer[PASSWD_ENCODED_MAX + 10];

	/* the good one, to show the list is not failing for another reason */
	assert_true(passwd_verify(PW, PWLEN, "scrypt$16$8$1$" SALT "$" HASH));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (passwd_verify(PW, PWLEN, bad[i]))
			fail_msg("verified malformed '%s'", bad[i]);
	}
	assert_false(passwd_verify(PW, PWLEN, NULL));
	memset(longer, 'A', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	memcpy(longer, "scrypt$16$8$1$", 14);
	assert_false(passwd_verify(PW, PWLEN, longer));
#undef SALT
#undef HASH
}

/* A temporary directory per test, removed with what is in it. */
struct tmpdir {
	char dir[64];
	char file[96];
};

static int tmp_setup(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	snprintf(t->dir, sizeof(t->dir), "/tmp/test_passwd.XXXXXX");
	if (mkdtemp(t->dir) == NULL) {
		free(t);
		return -1;
	}
	snprintf(t->file, sizeof(t->file), "%s/accounts", t->dir);
	*state = t;
	return 0;
}

static int tmp_teardown(void **state)
{
	struct tmpdir *t = *state;
	char path[128];

	unlink(t->file);
	snprintf(path, sizeof(path), "%s.tmp", t->file);
	unlink(path);
	rmdir(t->dir);
	free(t);
	return 0;
}

static void write_file(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static char *read_all(const char *file)
{
	static char text[4096];
	FILE *f = fopen(file, "r");
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void test_file_missing_is_empty(void **state)
{
	struct tmpdir *t = *state;
	struct passwd_account *a = (void *)1;
	size_t n = 99;
	char err[256];

	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	assert_null(passwd_find(a, n, "alice"));
	free(a);
}

static void test_file_round_trip(void **state)
{
	struct tmpdir *t = *state;
	struct passwd_account *a;
	const struct passwd_account *found;
	char err[256], before[PASSWD_ENCODED_MAX];
	struct stat st;
	size_t n;

	/* passwd_set hashes at the default cost: three accounts, three hashes */
	write_file(t->file, "# chat accounts\n\n   \n# Bob: not an account\n");
	assert_int_equal(passwd_set(t->file, "Alice[1]", "alice's secret", 14, err, sizeof(err)),
			 0);
	assert_int_equal(passwd_set(t->file, "bob", "bob's password", 14, err, sizeof(err)), 0);
	assert_int_equal(stat(t->file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	found = passwd_find(a, n, "alice{1}"); /* rfc1459: [ and { are one letter */
	assert_non_null(found);
	assert_string_equal(found->name, "Alice[1]");
	assert_true(passwd_verify("alice's secret", 14, found->encoded));
	assert_false(passwd_verify("bob's password", 14, found->encoded));
	found = passwd_find(a, n, "BOB");
	assert_non_null(found);
	assert_true(passwd_verify("bob's password", 14, found->encoded));
	assert_null(passwd_find(a, n, "carol"));
	assert_null(passwd_find(a, n, "#"));
	snprintf(before, sizeof(before), "%s", found->encoded);
	free(a);

	/* changing a password keeps the account's spelling, its place and the comments */
	assert_int_equal(passwd_set(t->file, "BOB", "bob's new password", 18, err, sizeof(err)),
			 0);
	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(a[1].name, "bob");
	assert_string_not_equal(a[1].encoded, before);
	assert_true(passwd_verify("bob's new password", 18, a[1].encoded));
	assert_false(passwd_verify("bob's password", 14, a[1].encoded));
	assert_true(passwd_verify("alice's secret", 14, a[0].encoded));
	free(a);
	{
		static const char head[] = "# chat accounts\n\n   \n# Bob: not an account\n"
					   "Alice[1]:scrypt$";

		assert_int_equal(strncmp(read_all(t->file), head, sizeof(head) - 1), 0);
	}

	/* refused: a bad name, a short password; the file is left as it was */
	assert_int_equal(passwd_set(t->file, "1bad", "long enough", 11, err, sizeof(err)), -1);
	assert_int_equal(passwd_set(t->file, "bad name", "long enough", 11, err, sizeof(err)), -1);
	assert_int_equal(passwd_set(t->file, "carol", "short", 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too short"));
	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	free(a);
}

static void test_file_mode_reset(void **state)
{
	struct tmpdir *t = *state;
	char err[256];
	struct stat st;

	write_file(t->file, "");
	assert_int_equal(chmod(t->file, 0644), 0);
	assert_int_equal(passwd_set(t->file, "dave", "dave's password", 15, err, sizeof(err)), 0);
	assert_int_equal(stat(t->file, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* Loads text and expects the error message want. */
static void expect_load_error(const char *file, const char *text, const char *want)
{
	struct passwd_account *a = (void *)1;
	char err[256] = "";
	size_t n = 99;

	write_file(file, text);
	if (passwd_load(file, &a, &n, err, sizeof(err)) != -1)
		fail_msg("loaded '%s'", text);
	assert_null(a);
	assert_int_equal(n, 0);
	if (strstr(err, want) == NULL || strncmp(err, file, strlen(file)) != 0)
		fail_msg("error '%s', wanted '%s'", err, want);
}

static void test_file_errors(void **state)
{
	struct tmpdir *t = *state;
	const char *line = "alice:scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw==$"
			   "Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8=\n";
	char text[2048], big[601];
	struct passwd_account *a;
	char err[256];
	size_t n;

	/* the good line loads, with CR LF too */
	write_file(t->file, line);
	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_true(passwd_verify(PW, PWLEN, a[0].encoded));
	free(a);
	snprintf(text, sizeof(text), "# x\r\n%.*s\r\n", (int)strlen(line) - 1, line);
	write_file(t->file, text);
	assert_int_equal(passwd_load(t->file, &a, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	free(a);

	snprintf(text, sizeof(text), "# accounts\n%s\nALICE:x\n", line);
	expect_load_error(t->file, text, ":4: malformed password hash");
	snprintf(text, sizeof(text), "%s# comment\n%s", line, line);
	expect_load_error(t->file, text, ":3: duplicate account 'alice'");
	snprintf(text, sizeof(text), "%sAlice%s", line, line + 5);
	expect_load_error(t->file, text, ":2: duplicate account 'Alice'");
	expect_load_error(t->file, "\n\njust a name\n", ":3: expected name:hash");
	snprintf(text, sizeof(text), "9lives%s", line + 5);
	expect_load_error(t->file, text, ":1: invalid account name");
	snprintf(text, sizeof(text), "%s", line + 5);
	expect_load_error(t->file, text, ":1: invalid account name");
	snprintf(text, sizeof(text), "al ice%s", line + 5);
	expect_load_error(t->file, text, ":1: invalid account name");
	snprintf(text, sizeof(text), "%.*s $\n", (int)strlen(line) - 1, line);
	expect_load_error(t->file, text, ":1: malformed password hash");
	memset(big, 'a', 600);
	big[600] = '\0';
	snprintf(text, sizeof(text), "%s%s:%s\n", line, big, line + 6);
	expect_load_error(t->file, text, ":2: line too long");

	/* passwd_set refuses to touch a broken file */
	snprintf(text, sizeof(text), "%s%s", line, line);
	write_file(t->file, text);
	assert_int_equal(passwd_set(t->file, "bob", "bob's password", 14, err, sizeof(err)), -1);
	assert_non_null(strstr(err, ":2: duplicate account"));
	assert_string_equal(read_all(t->file), text);
}

/* Writes n accounts u0..u(n-1), all with one (valid) hash, and returns the fastest of
 * three loads, in seconds. */
static double load_time(const char *file, size_t n)
{
	const char *hash = "scrypt$16$8$1$AAECAwQFBgcICQoLDA0ODw==$"
			   "Q7EcH175P/kcU7JE2HRU+qTRrq/BS6UbCRYPdBaC5y8=";
	double best = 1e9;
	FILE *f = fopen(file, "w");

	assert_non_null(f);
	for (size_t i = 0; i < n; i++) /* not in name order: the load sorts */
		fprintf(f, "u%zu:%s\n", (i * 7919) % n, hash);
	fclose(f);
	for (int r = 0; r < 3; r++) {
		struct passwd_account *a;
		struct timespec t0, t1;
		char err[256];
		size_t got;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		assert_int_equal(passwd_load(file, &a, &got, err, sizeof(err)), 0);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_int_equal(got, n);
		assert_non_null(passwd_find(a, got, "U1"));
		assert_null(passwd_find(a, got, "u99999999"));
		free(a);
		if (t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9 < best)
			best = t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	return best;
}

/* Loading 40,000 accounts costs about four times 10,000 (n log n), not sixteen times
 * (a duplicate check against every account read so far). A loose ratio, no absolute time. */
static void test_load_is_linear(void **state)
{
	struct tmpdir *t = *state;
	double small = load_time(t->file, 10000), large = load_time(t->file, 40000);

	if (large > 8 * small)
		fail_msg("10k accounts: %.3f s, 40k: %.3f s (ratio %.1f)", small, large,
			 large / small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_verify_right_and_wrong),
		cmocka_unit_test(test_salt_differs),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_malformed_never_verify),
		cmocka_unit_test_setup_teardown(test_file_missing_is_empty, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_round_trip, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_mode_reset, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_file_errors, tmp_setup, tmp_teardown),
		cmocka_unit_test_setup_teardown(test_load_is_linear, tmp_setup, tmp_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
