/* Fuzz target for the config files: the input is written to a temporary file and read by
 * conf_load (with handlers that accept everything and pass what they see through the other
 * helpers), by config_kind, and by every daemon's loader: gateway, agent, intake and chat.
 * Each must agree with its messages (NULL and "file:line: text" lines, or a config and none)
 * and free everything it made.
 *
 * Host names in addresses are not looked up: getaddrinfo is replaced below so that only
 * numeric hosts and "localhost" resolve, which keeps a run deterministic and off the network.
 * The input lives in a private directory that also holds admin token files (token: valid,
 * token-short, token-lines: not), so relative paths in it name those or nothing.
 *
 * Built by scripts/fuzz.sh (or `make fuzz`); with -DFUZZ_STANDALONE it is a plain program
 * that runs the files named on its command line. */
#define FUZZ_FILE_IMPL
#include <dlfcn.h>
#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "chat/chat_config.h"
#include "common.h"
#include "core/conf.h"
#include "intake/intake_config.h"
#include "wall/config.h"

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static gai_fn real;
	struct addrinfo h;

	if (real == NULL) {
		real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
		check(real != NULL);
	}
	memset(&h, 0, sizeof(h));
	if (hints != NULL)
		h = *hints;
	if (node != NULL && strcmp(node, "localhost") == 0)
		node = "127.0.0.1";
	h.ai_flags = (h.ai_flags & ~AI_ADDRCONFIG) | AI_NUMERICHOST;
	return real(node, service, &h, res);
}

struct seen {
	int lines; /* lines in the input */
	int sections;
	int keys;
	const uint8_t *data; /* the input, to check that what a handler is told is on its line */
	size_t size;
};

/* True if s occurs on line n (1-based) of the input. */
static bool on_line(const struct seen *s, int n, const char *text)
{
	const uint8_t *p = s->data, *end = s->data + s->size, *nl;

	for (int i = 1; i < n && p < end; i++) {
		nl = memchr(p, '\n', (size_t)(end - p));
		p = nl != NULL ? nl + 1 : end;
	}
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL)
		nl = end;
	return memmem(p, (size_t)(nl - p), text, strlen(text)) != NULL;
}

static int accept_item(const char *item, void *arg)
{
	check(item[0] != '\0');
	check(strcspn(item, ", \t") == strlen(item));
	(*(int *)arg)++;
	return 0;
}

static void on_section(struct conf *c, const char *section)
{
	struct seen *s = c->user;
	char kind[32];
	const char *name;

	check(c->line >= 1 && c->line <= s->lines);
	check(on_line(s, c->line, section));
	s->sections++;
	conf_section_split(section, kind, sizeof(kind), &name);
	check(strlen(kind) < sizeof(kind));
	check(name >= section && name <= section + strlen(section));
	if (conf_name_ok(name))
		check(strlen(name) <= CONF_NAME_MAX);
}

static void on_key(struct conf *c, const char *section, const char *key, const char *value)
{
	struct seen *s = c->user;
	bool b;
	int items = 0;
	char *p;

	check(c->line >= 1 && c->line <= s->lines);
	check(section != NULL && key != NULL && value != NULL);
	check(on_line(s, c->line, key) && on_line(s, c->line, value));
	s->keys++;
	(void)conf_list(value, accept_item, &items);
	if (conf_bool(value, &b) == 0)
		check(strlen(value) <= 5);
	p = conf_path(c, value);
	check(p != NULL);
	check(value[0] == '/' ? strcmp(p, value) == 0 : strlen(p) >= strlen(value));
	free(p);
}

/* msgs is empty or "path:N: text\n" lines with 1 <= N <= lines + 1 (a file of n lines may
 * have its last line's terminator read as line n + 1). */
static int check_msgs(const char *path, const char *m, size_t len, int lines)
{
	size_t plen = strlen(path);
	int n = 0;

	for (size_t off = 0; off < len; n++) {
		const char *line = m + off, *end = memchr(line, '\n', len - off);
		char *num_end;
		long num;

		check(end != NULL);
		check(strncmp(line, path, plen) == 0 && line[plen] == ':');
		num = strtol(line + plen + 1, &num_end, 10);
		check(num_end > line + plen + 1 && num_end[0] == ':' && num_end[1] == ' ');
		check(num >= 1 && num <= lines + 1);
		off = (size_t)(end - m) + 1;
	}
	return n;
}

/* conf_load itself. */
static void generic(const char *path, int lines, const uint8_t *data, size_t size)
{
	struct seen s = {.lines = lines, .data = data, .size = size};
	struct conf c;
	const char *m;
	int rc;

	memset(&c, 0, sizeof(c));
	c.file = path;
	c.user = &s;
	c.on_section = on_section;
	c.on_key = on_key;
	rc = conf_load(&c);
	/* the result agrees with the messages: one "file:line: text" line per error */
	check((rc == 0) == (c.errors == 0));
	m = c.msgs.len > 0 ? (const char *)buf_head(&c.msgs) : "";
	check(check_msgs(path, m, c.msgs.len, lines) == c.errors);
	conf_done(&c);
}

/* A loader's result: a config and no messages, or NULL and at least one message line. */
static void loaded(const char *path, const void *cfg, char *msgs, int lines)
{
	if (cfg != NULL) {
		check(msgs == NULL);
		return;
	}
	check(msgs != NULL);
	check(check_msgs(path, msgs, strlen(msgs), lines) >= 1);
	free(msgs);
}

static void gateway(const char *path, int lines)
{
	char *msgs = NULL;
	struct config_gateway *g = config_gateway_load(path, &msgs);

	loaded(path, g, msgs, lines);
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->nagents; i++)
		check(config_find_agent(g, g->agents[i].name) == &g->agents[i]);
	for (size_t i = 0; i < g->nservices; i++)
		check(config_find_service(g, g->services[i].name) == &g->services[i]);
	check(config_find_agent(g, "") == NULL);
	config_gateway_free(g);
}

static void agent(const char *path, int lines)
{
	char *msgs = NULL;
	struct config_agentd *a = config_agent_load(path, &msgs);

	loaded(path, a, msgs, lines);
	if (a == NULL)
		return;
	check(a->ngateways >= 1);
	for (size_t i = 0; i < a->ntargets; i++)
		check(config_find_target(a, a->targets[i].name) == &a->targets[i]);
	config_agent_free(a);
}

static void intake(const char *path, int lines)
{
	static const char *const types[][2] = {
		{"RDE", "O11"}, {"ADT", ""}, {"ORU", "R01"}, {"", ""}, {"AB", "C"}, {"RDEX", "O11"},
	};
	char *msgs = NULL;
	struct intake_config *c = intake_config_load(path, &msgs);

	loaded(path, c, msgs, lines);
	if (c == NULL)
		return;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		enum intake_action a = intake_config_route(c, types[i][0], types[i][1]);

		check(a == INTAKE_ACCEPT || a == INTAKE_IGNORE || a == INTAKE_REJECT);
	}
	intake_config_free(c);
}

static void chat(const char *path, int lines)
{
	char *msgs = NULL;
	struct chat_config *c = chat_config_load(path, &msgs);

	loaded(path, c, msgs, lines);
	chat_config_free(c);
}

/* The admin token files an input can name (admin_token_file = token). */
static void token_files(void)
{
	static const char *const files[][2] = {
		{"token", "  0123456789abcdef0123456789abcdef\n"},
		{"token-short", "short\n"},
		{"token-lines", "0123456789abcdef\n0123456789abcdef\n"},
	};
	static bool done;

	if (done)
		return;
	done = true;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(fuzz_path(files[i][0]), "w");

		check(f != NULL);
		fputs(files[i][1], f);
		check(fclose(f) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	int lines = 1, kind;

	token_files();
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	generic(path, lines, data, size);
	kind = config_kind(path);
	check(kind == 0 || kind == 'g' || kind == 'a' || kind == 'i' || kind == 'c');
	gateway(path, lines);
	agent(path, lines);
	intake(path, lines);
	chat(path, lines);
	return 0;
}
