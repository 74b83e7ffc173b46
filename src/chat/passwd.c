/* Account passwords: scrypt hashes in "scrypt$N$r$p$salt$hash" form, and the accounts file
 * of "name:encoded" lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "chat/irc.h"
#include "chat/passwd.h"
#include "core/err.h"
#include "core/num.h"
#include "core/xalloc.h"

#define PASSWD_N_DEFAULT (1u << 15) /* about 32 MiB and tens of milliseconds per hash */
#define PASSWD_R_DEFAULT 8
#define PASSWD_P_DEFAULT 1
#define PASSWD_SALT_LEN 16
#define PASSWD_HASH_LEN 32
#define PASSWD_SALT_B64 24 /* base64 of 16 bytes, padding included */
#define PASSWD_HASH_B64 44 /* base64 of 32 bytes, padding included */

/* Ceilings on parameters read from a stored string, so a tampered file cannot make one
 * login cost more than a few seconds or a quarter of a gigabyte. */
#define PASSWD_N_MAX (1u << 20)
#define PASSWD_R_MAX 16
#define PASSWD_P_MAX 4
#define PASSWD_MEM_MAX (256u << 20) /* 128 * r * N bytes, scrypt's big table */
/* What OpenSSL may allocate: the table above plus its smaller buffers. */
#define PASSWD_OPENSSL_MAXMEM (2 * (uint64_t)PASSWD_MEM_MAX)

/* An accounts file line: name, ':', encoded hash, CR LF. Longer lines are refused. */
#define PASSWD_LINE_MAX (sizeof(((struct passwd_account *)0)->name) + PASSWD_ENCODED_MAX + 4)

/* One parsed encoded string. */
struct passwd_parsed {
	uint64_t n, r, p;
	uint8_t salt[PASSWD_SALT_LEN];
	uint8_t hash[PASSWD_HASH_LEN];
};

static bool params_ok(uint64_t n, uint64_t r, uint64_t p)
{
	if (n < 2 || n > PASSWD_N_MAX || (n & (n - 1)) != 0)
		return false;
	if (r < 1 || r > PASSWD_R_MAX || p < 1 || p > PASSWD_P_MAX)
		return false;
	return 128 * r * n <= PASSWD_MEM_MAX;
}

/* Decodes exactly len bytes from the canonical padded base64 in s (slen characters): the
 * text must be what EVP_EncodeBlock would write for those bytes, nothing else. */
static int b64_decode_exact(const char *s, size_t slen, uint8_t *out, size_t len)
{
	uint8_t tmp[PASSWD_HASH_LEN + 3];
	char again[PASSWD_HASH_B64 + 1];
	int got;
	int rc = -1;

	if (len > PASSWD_HASH_LEN || slen != 4 * ((len + 2) / 3))
		return -1;
	/* EVP_DecodeBlock skips surrounding blanks and counts padding as zero bytes: decode,
	 * then insist that encoding the result gives back the very same text. */
	got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)slen);
	if (got < 0 || (size_t)got < len)
		goto out;
	EVP_EncodeBlock((unsigned char *)again, tmp, (int)len);
	if (strlen(again) != slen || memcmp(again, s, slen) != 0)
		goto out;
	memcpy(out, tmp, len);
	rc = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return rc;
}

/* Parses "scrypt$N$r$p$salt$hash" strictly. Returns 0 or -1. */
static int parse_encoded(const char *encoded, struct passwd_parsed *pp)
{
	char copy[PASSWD_ENCODED_MAX];
	char *field[6];
	size_t len, nf = 0;
	char *s;

	if (encoded == NULL)
		return -1;
	len = strnlen(encoded, sizeof(copy));
	if (len >= sizeof(copy))
		return -1;
	memcpy(copy, encoded, len + 1);
	s = copy;
	for (;;) {
		char *dollar = strchr(s, '$');

		if (nf == 6)
			return -1;
		field[nf++] = s;
		if (dollar == NULL)
			break;
		*dollar = '\0';
		s = dollar + 1;
	}
	if (nf != 6 || strcmp(field[0], "scrypt") != 0)
		return -1;
	/* one spelling per value: no leading zeros */
	for (int i = 1; i <= 3; i++) {
		if (field[i][0] == '0')
			return -1;
	}
	if (num_u64(field[1], 2, PASSWD_N_MAX, &pp->n) == -1 ||
	    num_u64(field[2], 1, PASSWD_R_MAX, &pp->r) == -1 ||
	    num_u64(field[3], 1, PASSWD_P_MAX, &pp->p) == -1 || !params_ok(pp->n, pp->r, pp->p))
		return -1;
	if (b64_decode_exact(field[4], strlen(field[4]), pp->salt, PASSWD_SALT_LEN) == -1 ||
	    b64_decode_exact(field[5], strlen(field[5]), pp->hash, PASSWD_HASH_LEN) == -1)
		return -1;
	return 0;
}

static int derive(const char *password, size_t len, const struct passwd_parsed *pp,
		  uint8_t key[PASSWD_HASH_LEN])
{
	if (EVP_PBE_scrypt(password, len, pp->salt, PASSWD_SALT_LEN, pp->n, pp->r, pp->p,
			   PASSWD_OPENSSL_MAXMEM, key, PASSWD_HASH_LEN) != 1)
		return -1;
	return 0;
}

static int hash_with(const char *password, size_t len, uint64_t n, uint64_t r, uint64_t p,
		     const uint8_t salt[PASSWD_SALT_LEN], char out[PASSWD_ENCODED_MAX], char *err,
		     size_t errlen)
{
	struct passwd_parsed pp = {.n = n, .r = r, .p = p};
	char salt64[PASSWD_SALT_B64 + 1], hash64[PASSWD_HASH_B64 + 1];
	int rc = -1;

	if (len < PASSWD_MIN_LEN) {
		err_set(err, errlen, "password too short (at least %d characters)", PASSWD_MIN_LEN);
		return -1;
	}
	if (len > PASSWD_MAX_LEN) {
		err_set(err, errlen, "password too long (at most %d bytes)", PASSWD_MAX_LEN);
		return -1;
	}
	if (!params_ok(n, r, p)) {
		err_set(err, errlen, "bad scrypt parameters N=%llu r=%llu p=%llu",
			(unsigned long long)n, (unsigned long long)r, (unsigned long long)p);
		return -1;
	}
	memcpy(pp.salt, salt, PASSWD_SALT_LEN);
	if (derive(password, len, &pp, pp.hash) == -1) {
		err_set(err, errlen, "scrypt failed");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)salt64, pp.salt, PASSWD_SALT_LEN);
	EVP_EncodeBlock((unsigned char *)hash64, pp.hash, PASSWD_HASH_LEN);
	snprintf(out, PASSWD_ENCODED_MAX, "scrypt$%llu$%llu$%llu$%s$%s", (unsigned long long)n,
		 (unsigned long long)r, (unsigned long long)p, salt64, hash64);
	rc = 0;
out:
	OPENSSL_cleanse(&pp, sizeof(pp));
	OPENSSL_cleanse(hash64, sizeof(hash64));
	return rc;
}

int passwd_hash(const char *password, size_t len, char out[PASSWD_ENCODED_MAX], char *err,
		size_t errlen)
{
	uint8_t salt[PASSWD_SALT_LEN];

	if (RAND_bytes(salt, sizeof(salt)) != 1) {
		err_set(err, errlen, "no random bytes for a salt");
		return -1;
	}
	return hash_with(password, len, PASSWD_N_DEFAULT, PASSWD_R_DEFAULT, PASSWD_P_DEFAULT,
			 salt, out, err, errlen);
}

int passwd_hash_params(const char *password, size_t len, uint64_t n, const uint8_t salt[16],
		       char out[PASSWD_ENCODED_MAX], char *err, size_t errlen)
{
	return hash_with(password, len, n, PASSWD_R_DEFAULT, PASSWD_P_DEFAULT, salt, out, err,
			 errlen);
}

bool passwd_verify(const char *password, size_t len, const char *encoded)
{
	struct passwd_parsed pp;
	uint8_t key[PASSWD_HASH_LEN];
	bool ok = false;

	/* no stored hash is of a password outside these bounds: skip the work */
	if (password == NULL || len < PASSWD_MIN_LEN || len > PASSWD_MAX_LEN)
		return false;
	if (parse_encoded(encoded, &pp) == -1)
		goto out;
	if (derive(password, len, &pp, key) == -1)
		goto out;
	ok = CRYPTO_memcmp(key, pp.hash, PASSWD_HASH_LEN) == 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(&pp, sizeof(pp));
	return ok;
}

/* Reads the next line of f into line (its LF and a CR before it removed). Returns 1 for a
 * line, 0 at the end, -1 for a line longer than PASSWD_LINE_MAX or a read error. */
static int read_line(FILE *f, char *line, size_t size)
{
	size_t len;

	if (fgets(line, (int)size, f) == NULL)
		return ferror(f) ? -1 : 0;
	len = strlen(line);
	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	else if (!feof(f))
		return -1;
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	return 1;
}

/* True for a blank line or a comment. */
static bool line_skipped(const char *line)
{
	line += strspn(line, " \t");
	return line[0] == '\0' || line[0] == '#';
}

/* Splits an account line in place; returns 0 or -1 with a short reason in *why. */
static int parse_account(char *line, struct passwd_account *a, const char **why)
{
	struct passwd_parsed pp;
	char *colon = strchr(line, ':');

	if (colon == NULL) {
		*why = "expected name:hash";
		return -1;
	}
	*colon = '\0';
	if (!irc_nick_valid(line) || strlen(line) >= sizeof(a->name)) {
		*why = "invalid account name";
		return -1;
	}
	if (parse_encoded(colon + 1, &pp) == -1) {
		*why = "malformed password hash";
		return -1;
	}
	snprintf(a->name, sizeof(a->name), "%s", line);
	snprintf(a->encoded, sizeof(a->encoded), "%s", colon + 1);
	return 0;
}

static int account_cmp(const void *x, const void *y)
{
	const struct passwd_account *a = x, *b = y;
	int d = irc_casecmp(a->name, b->name);

	if (d != 0)
		return d;
	return a->line < b->line ? -1 : a->line > b->line;
}

/* Sorts list by casefolded name (so that passwd_find bisects) and refuses duplicates,
 * naming the first line, in file order, that repeats an account: n log n, where looking
 * each name up in the list read so far was quadratic in the number of accounts. */
static int sort_accounts(struct passwd_account *list, size_t n, const char *file, char *err,
			 size_t errlen)
{
	const struct passwd_account *dup = NULL;

	if (n > 1)
		qsort(list, n, sizeof(*list), account_cmp);
	for (size_t i = 1; i < n; i++) {
		if (irc_casecmp(list[i - 1].name, list[i].name) == 0 &&
		    (dup == NULL || list[i].line < dup->line))
			dup = &list[i];
	}
	if (dup == NULL)
		return 0;
	err_set(err, errlen, "%s:%u: duplicate account '%s'", file, dup->line, dup->name);
	return -1;
}

int passwd_load(const char *file, struct passwd_account **out, size_t *n, char *err,
		size_t errlen)
{
	struct passwd_account *list = NULL;
	size_t count = 0, cap = 0;
	char line[PASSWD_LINE_MAX];
	unsigned lineno = 0;
	const char *why;
	FILE *f;
	int r;

	*out = NULL;
	*n = 0;
	f = fopen(file, "r");
	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		err_set(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	while ((r = read_line(f, line, sizeof(line))) == 1) {
		struct passwd_account a;

		lineno++;
		if (line_skipped(line))
			continue;
		if (parse_account(line, &a, &why) == -1) {
			err_set(err, errlen, "%s:%u: %s", file, lineno, why);
			goto fail;
		}
		a.line = lineno;
		if (count == cap) {
			cap = cap ? 2 * cap : 16;
			list = xrealloc(list, cap * sizeof(*list));
		}
		list[count++] = a;
	}
	if (r == -1) {
		if (ferror(f))
			err_set(err, errlen, "%s: %s", file, strerror(errno));
		else
			err_set(err, errlen, "%s:%u: line too long", file, lineno + 1);
		goto fail;
	}
	fclose(f);
	if (sort_accounts(list, count, file, err, errlen) == -1)
		goto fail_list;
	*out = list;
	*n = count;
	return 0;
fail:
	fclose(f);
fail_list:
	free(list);
	return -1;
}

const struct passwd_account *passwd_find(const struct passwd_account *accounts, size_t n,
					 const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) { /* accounts are sorted by casefolded name (sort_accounts) */
		size_t mid = lo + (hi - lo) / 2;
		int d = irc_casecmp(name, accounts[mid].name);

		if (d == 0)
			return &accounts[mid];
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Copies file's lines to out, the line of account name replaced by "name:encoded" (the
 * account appended when absent). The file was validated by passwd_load just before. */
static int copy_replacing(FILE *in, FILE *out, const char *name, const char *encoded)
{
	char line[PASSWD_LINE_MAX], work[PASSWD_LINE_MAX];
	bool done = false;
	int r = 0;

	while (in != NULL && (r = read_line(in, line, sizeof(line))) == 1) {
		struct passwd_account a;
		const char *why;

		memcpy(work, line, sizeof(work));
		if (!done && !line_skipped(line) && parse_account(work, &a, &why) == 0 &&
		    irc_casecmp(a.name, name) == 0) {
			fprintf(out, "%s:%s\n", a.name, encoded);
			done = true;
		} else {
			fprintf(out, "%s\n", line);
		}
	}
	if (in != NULL && r == -1)
		return -1;
	if (!done)
		fprintf(out, "%s:%s\n", name, encoded);
	return 0;
}

/* Syncs the directory holding file, so that the rename survives a crash. */
static void sync_dir(const char *file)
{
	const char *slash = strrchr(file, '/');
	char dir[4096];
	int fd;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == file)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - file) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - file), file);
	else
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return;
	fsync(fd);
	close(fd);
}

int passwd_set(const char *file, const char *name, const char *password, size_t len, char *err,
	       size_t errlen)
{
	struct passwd_account *list = NULL;
	char encoded[PASSWD_ENCODED_MAX], tmp[4096];
	FILE *in = NULL, *out = NULL;
	size_t n;
	int fd, rc = -1;

	if (!irc_nick_valid(name)) {
		err_set(err, errlen, "invalid account name '%s'", name);
		return -1;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= sizeof(tmp)) {
		err_set(err, errlen, "%s: path too long", file);
		return -1;
	}
	if (passwd_load(file, &list, &n, err, errlen) == -1)
		return -1;
	free(list);
	if (passwd_hash(password, len, encoded, err, errlen) == -1)
		return -1;

	in = fopen(file, "r");
	if (in == NULL && errno != ENOENT) {
		err_set(err, errlen, "%s: %s", file, strerror(errno));
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		err_set(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	/* the file may have been there already, with another mode */
	if (fchmod(fd, 0600) == -1 || (out = fdopen(fd, "w")) == NULL) {
		err_set(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		goto fail_tmp;
	}
	if (copy_replacing(in, out, name, encoded) == -1) {
		err_set(err, errlen, "%s: read failed or changed while rewriting", file);
		goto fail_tmp;
	}
	if (fflush(out) == EOF || ferror(out) || fsync(fileno(out)) == -1) {
		err_set(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail_tmp;
	}
	if (fclose(out) == EOF) {
		out = NULL;
		err_set(err, errlen, "%s: %s", tmp, strerror(errno));
		goto fail_tmp;
	}
	out = NULL;
	if (rename(tmp, file) == -1) {
		err_set(err, errlen, "rename %s to %s: %s", tmp, file, strerror(errno));
		goto fail_tmp;
	}
	sync_dir(file);
	rc = 0;
	goto out;
fail_tmp:
	if (out != NULL)
		fclose(out);
	out = NULL;
	unlink(tmp);
out:
	if (in != NULL)
		fclose(in);
	OPENSSL_cleanse(encoded, sizeof(encoded));
	return rc;
}
