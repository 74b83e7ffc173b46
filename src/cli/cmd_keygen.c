/* netwall keygen, netwall fingerprint */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/conf.h"
#include "core/tls.h"

static const char keygen_usage[] =
	"usage: netwall keygen --out DIR NAME\n"
	"\n"
	"Writes DIR/NAME.key (P-256 private key, mode 0600) and DIR/NAME.crt (self-signed\n"
	"certificate, CN=NAME, valid 10 years) and prints the certificate's SHA-256\n"
	"fingerprint: put it in the peer's config (an agent's goes into the gateway's\n"
	"[agent NAME] fingerprint; the gateway's into the agent's gateway_fingerprint).\n"
	"Existing files are never overwritten. DIR is created if missing.\n"
	"\n"
	"  --out DIR   directory for the key pair (default: .)\n"
	"  -h, --help  this text\n";

int cmd_keygen_main(int argc, char **argv)
{
	const char *dir = ".", *name = NULL;
	uint8_t fp[TLS_FP_LEN];
	char hex[TLS_FP_HEXLEN], err[512];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(keygen_usage, stdout);
			return 0;
		} else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
			dir = argv[++i];
		} else if (argv[i][0] != '-' && name == NULL) {
			name = argv[i];
		} else {
			fprintf(stderr, "netwall keygen: unexpected argument '%s'\n%s", argv[i],
				keygen_usage);
			return 2;
		}
	}
	if (name == NULL || !conf_name_ok(name)) {
		fprintf(stderr, "netwall keygen: NAME is required: letters, digits, '.', '_', '-'\n");
		return 2;
	}
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "netwall keygen: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (tls_keygen(dir, name, fp, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall keygen: %s\n", err);
		return 1;
	}
	tls_fingerprint_hex(fp, hex);
	printf("%s\n", hex);
	fprintf(stderr, "wrote %s/%s.key and %s/%s.crt\n", dir, name, dir, name);
	return 0;
}

int cmd_keygen_fingerprint_main(int argc, char **argv)
{
	uint8_t fp[TLS_FP_LEN];
	char hex[TLS_FP_HEXLEN], err[512];

	if (argc != 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs("usage: netwall fingerprint FILE.crt\n\nPrints the SHA-256 fingerprint of "
		      "the first certificate in a PEM file.\n",
		      argc == 2 ? stdout : stderr);
		return argc == 2 ? 0 : 2;
	}
	if (tls_fingerprint_file(argv[1], fp, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall fingerprint: %s\n", err);
		return 1;
	}
	tls_fingerprint_hex(fp, hex);
	printf("%s\n", hex);
	return 0;
}
