/* netwall chat: the chat's administration commands (for now, its accounts). */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "chat/client.h"
#include "chat/irc.h"
#include "chat/passwd.h"
#include "core/addr.h"
#include "cli/cli.h"

static const char chat_usage[] =
	"usage: netwall chat COMMAND [OPTIONS]\n"
	"\n"
	"commands:\n"
	"  serve -c FILE      run the chat server (IRC clients connect to it)\n"
	"  connect HOST:PORT  the terminal client\n"
	"  passwd FILE NAME   add an account to the chat's accounts file, or change its password\n"
	"\n"
	"`netwall chat COMMAND --help` explains a command.\n";

static const char passwd_usage[] =
	"usage: netwall chat passwd FILE NAME\n"
	"\n"
	"Sets the password of account NAME (an IRC nickname; matched case-insensitively) in\n"
	"the accounts file FILE, adding the account if it is new. FILE holds \"name:hash\"\n"
	"lines (salted scrypt hashes) and '#' comments; it is created if missing and rewritten\n"
	"atomically with mode 0600.\n"
	"\n"
	"On a terminal the password is asked twice, without echo. Otherwise one line is read\n"
	"from standard input (for scripts). Passwords are 8 to 256 bytes.\n"
	"\n"
	"  -h, --help  this text\n";

/* The signal that interrupted a password prompt, or 0. */
static volatile sig_atomic_t prompt_signal;

static void on_prompt_signal(int sig)
{
	prompt_signal = sig;
}

/* Reads one line from fd 0 into buf, byte by byte so that no copy of the password stays in
 * a stdio buffer. The line end (LF, and a CR before it) is dropped. Returns the length, or
 * -1 with a message printed: read error, interrupted, nothing read, too long. */
static ssize_t read_password_line(char *buf, size_t size)
{
	size_t len = 0;
	bool any = false;

	for (;;) {
		char c;
		ssize_t got = read(0, &c, 1);

		if (got == -1 && errno == EINTR && prompt_signal == 0)
			continue;
		if (got == -1) {
			if (prompt_signal == 0)
				fprintf(stderr, "netwall chat passwd: read: %s\n", strerror(errno));
			return -1;
		}
		if (got == 0 || c == '\n') {
			if (got == 0 && !any) {
				fprintf(stderr, "netwall chat passwd: no password given\n");
				return -1;
			}
			break;
		}
		any = true;
		if (len + 1 >= size) {
			fprintf(stderr, "netwall chat passwd: password too long (at most %d bytes)\n",
				PASSWD_MAX_LEN);
			c = 0;
			return -1;
		}
		buf[len++] = c;
		c = 0;
	}
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	return (ssize_t)len;
}

/* Prompts on the terminal with echo off; the terminal is restored whatever happens,
 * including SIGINT, SIGTERM, SIGHUP and SIGQUIT, which then end the program. */
static ssize_t prompt_password(const char *prompt, char *buf, size_t size)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa, old[4];
	struct termios saved, quiet;
	ssize_t len;

	if (tcgetattr(0, &saved) == -1) {
		fprintf(stderr, "netwall chat passwd: terminal: %s\n", strerror(errno));
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_prompt_signal; /* no SA_RESTART: read() returns EINTR */
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 4; i++)
		sigaction(sigs[i], &sa, &old[i]);
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	/* echo off before the prompt: what is typed after the prompt is never echoed */
	if (tcsetattr(0, TCSAFLUSH, &quiet) == -1) {
		fprintf(stderr, "netwall chat passwd: terminal: %s\n", strerror(errno));
		len = -1;
		goto out;
	}
	fputs(prompt, stderr);
	fflush(stderr);
	len = read_password_line(buf, size);
	tcsetattr(0, TCSAFLUSH, &saved);
	fputc('\n', stderr);
out:
	for (size_t i = 0; i < 4; i++)
		sigaction(sigs[i], &old[i], NULL);
	if (prompt_signal != 0) {
		OPENSSL_cleanse(buf, size);
		signal(prompt_signal, SIG_DFL);
		raise(prompt_signal);
		exit(128 + prompt_signal);
	}
	return len;
}

/* Gets the new password into buf: twice from a terminal, or one line from stdin. */
static ssize_t get_password(const char *name, char *buf, size_t size)
{
	char prompt[96], again[PASSWD_MAX_LEN + 2];
	ssize_t len, len2;

	if (!isatty(0))
		return read_password_line(buf, size);
	snprintf(prompt, sizeof(prompt), "New password for %s: ", name);
	len = prompt_password(prompt, buf, size);
	if (len == -1)
		return -1;
	if (len < PASSWD_MIN_LEN) /* say so now rather than after a second prompt */
		return len;
	len2 = prompt_password("Again: ", again, sizeof(again));
	if (len2 != -1 && (len2 != len || memcmp(buf, again, (size_t)len) != 0)) {
		fprintf(stderr, "netwall chat passwd: the passwords do not match\n");
		len2 = -1;
	}
	OPENSSL_cleanse(again, sizeof(again));
	return len2 == -1 ? -1 : len;
}

static int chat_passwd_main(int argc, char **argv)
{
	const char *file = NULL, *name = NULL;
	struct passwd_account *accounts = NULL;
	char password[PASSWD_MAX_LEN + 2], err[512];
	bool existed;
	ssize_t len;
	size_t n;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(passwd_usage, stdout);
			return 0;
		} else if (argv[i][0] != '-' && file == NULL) {
			file = argv[i];
		} else if (argv[i][0] != '-' && name == NULL) {
			name = argv[i];
		} else {
			fprintf(stderr, "netwall chat passwd: unexpected argument '%s'\n%s", argv[i],
				passwd_usage);
			return 2;
		}
	}
	if (file == NULL || name == NULL) {
		fprintf(stderr, "netwall chat passwd: FILE and NAME are required\n%s", passwd_usage);
		return 2;
	}
	if (!irc_nick_valid(name)) {
		fprintf(stderr,
			"netwall chat passwd: '%s' is not a valid name: 1 to %d letters, digits and "
			"[]\\`_^{|}-, not starting with a digit or '-'\n",
			name, IRC_NICK_MAX);
		return 2;
	}
	/* a broken file is reported before the password is asked */
	if (passwd_load(file, &accounts, &n, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall chat passwd: %s\n", err);
		return 1;
	}
	existed = passwd_find(accounts, n, name) != NULL;
	free(accounts);

	len = get_password(name, password, sizeof(password));
	if (len == -1)
		goto out;
	if (len < PASSWD_MIN_LEN) {
		fprintf(stderr, "netwall chat passwd: password too short (at least %d characters)\n",
			PASSWD_MIN_LEN);
		goto out;
	}
	if (passwd_set(file, name, password, (size_t)len, err, sizeof(err)) == -1) {
		fprintf(stderr, "netwall chat passwd: %s\n", err);
		goto out;
	}
	printf("%s: account %s %s\n", file, name, existed ? "password changed" : "added");
	rc = 0;
out:
	OPENSSL_cleanse(password, sizeof(password));
	return rc;
}

static const char connect_usage[] =
	"usage: netwall chat connect [OPTIONS] HOST:PORT\n"
	"\n"
	"The terminal client: connects over TLS, logs in, shows messages above a prompt that\n"
	"keeps what you are typing, and reconnects by itself. /help inside lists the commands.\n"
	"\n"
	"  --nick NAME            nickname (default: $USER)\n"
	"  --password-file FILE   the account's password (first line of FILE), sent as PASS\n"
	"  --fingerprint SHA256   pin the server certificate (netwall fingerprint FILE.crt)\n"
	"  --ca FILE              verify the server with this CA bundle (default: system CAs)\n"
	"  --server-name NAME     the name the server's certificate must carry, sent in SNI\n"
	"                         (default: HOST; an address is checked against the\n"
	"                         certificate's IP names and not sent)\n"
	"  --plain                plaintext TCP (only to a loopback or tunnelled server)\n"
	"  -h, --help             this text\n";

static int chat_connect_main(int argc, char **argv)
{
	struct chat_client_opts o = { .tls = true };
	const char *target = NULL, *pwfile = NULL;
	char host[256], err[512], password[PASSWD_MAX_LEN + 2] = "";
	uint16_t port;
	int rc;

	o.nick = getenv("USER") != NULL ? getenv("USER") : "nurse";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(connect_usage, stdout);
			return 0;
		} else if (strcmp(a, "--nick") == 0 && more) {
			o.nick = argv[++i];
		} else if (strcmp(a, "--password-file") == 0 && more) {
			pwfile = argv[++i];
		} else if (strcmp(a, "--fingerprint") == 0 && more) {
			o.fingerprint = argv[++i];
		} else if (strcmp(a, "--ca") == 0 && more) {
			o.ca = argv[++i];
		} else if (strcmp(a, "--server-name") == 0 && more) {
			o.server_name = argv[++i];
		} else if (strcmp(a, "--plain") == 0) {
			o.tls = false;
		} else if (target == NULL && a[0] != '-') {
			target = a;
		} else {
			fprintf(stderr, "netwall chat connect: unexpected argument '%s'\n\n%s", a,
				connect_usage);
			return 2;
		}
	}
	if (target == NULL || addr_split(target, host, sizeof(host), &port) == -1) {
		fprintf(stderr, "netwall chat connect: want HOST:PORT\n\n%s", connect_usage);
		return 2;
	}
	if (!irc_nick_valid(o.nick)) {
		fprintf(stderr, "netwall chat connect: '%s' is not a valid nickname (--nick)\n",
			o.nick);
		return 2;
	}
	if (pwfile != NULL) {
		FILE *f = fopen(pwfile, "r");
		if (f == NULL || fgets(password, sizeof(password), f) == NULL) {
			fprintf(stderr, "netwall chat connect: %s: cannot read a password\n", pwfile);
			if (f != NULL)
				fclose(f);
			return 1;
		}
		fclose(f);
		password[strcspn(password, "\r\n")] = '\0';
		o.password = password;
	}
	o.host = host;
	o.port = port;
	rc = chat_client_run(&o, err, sizeof(err));
	OPENSSL_cleanse(password, sizeof(password));
	if (rc == -1) {
		fprintf(stderr, "netwall chat connect: %s\n", err);
		return 1;
	}
	return 0;
}

int cmd_chat_main(int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "passwd") == 0)
		return chat_passwd_main(argc - 1, argv + 1);
	if (strcmp(sub, "connect") == 0)
		return chat_connect_main(argc - 1, argv + 1);
	if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
		fputs(chat_usage, stdout);
		return 0;
	}
	fputs(chat_usage, stderr);
	if (sub[0] != '\0')
		fprintf(stderr, "\nnetwall chat: unknown command '%s'\n", sub);
	return 2;
}
