/* Unit tests for wall/config: the gateway's and the agent's config files, checked against
 * what docs/config.md promises (keys, defaults, errors reported as file:line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wall/config.h"

/* SHA-256 fingerprints: plain lowercase, and with colons in mixed case. */
#define FP_A "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define FP_B                                                                                    \
	"A0:a1:A2:a3:A4:a5:A6:a7:A8:a9:AA:ab:AC:ad:AE:af:B0:b1:B2:b3:B4:b5:B6:b7:B8:b9:BA:bb:" \
	"BC:bd:BE:bf"

/* A valid gateway config that ends inside [gateway], so text appended to it starts at line
 * 10 and, until the next header, belongs to [gateway]. */
#define GW_BASE                                   \
	"[agent edge]\n"                /* 1 */   \
	"fingerprint = " FP_A "\n"      /* 2 */   \
	"[service web]\n"               /* 3 */   \
	"listen = 127.0.0.1:8080\n"     /* 4 */   \
	"agents = edge\n"               /* 5 */   \
	"[gateway]\n"                   /* 6 */   \
	"listen = 127.0.0.1:7443\n"     /* 7 */   \
	"cert = gw.crt\n"               /* 8 */   \
	"key = gw.key\n"                /* 9 */

/* A valid agent config that ends inside [agent]: appended text starts at line 8. */
#define AG_BASE                                   \
	"[service web]\n"               /* 1 */   \
	"target = 127.0.0.1:8080\n"     /* 2 */   \
	"[agent]\n"                     /* 3 */   \
	"gateway = 127.0.0.1:7443\n"    /* 4 */   \
	"cert = agent.crt\n"            /* 5 */   \
	"key = agent.key\n"             /* 6 */   \
	"gateway_fingerprint = " FP_A "\n" /* 7 */

#define MAX_FILES 8

/* A temporary directory per test, holding the config files it writes. */
struct fixture {
	char dir[64];
	char paths[MAX_FILES][128];
	int npaths;
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/netwall-config-XXXXXX");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	for (int i = 0; i < fx->npaths; i++)
		unlink(fx->paths[i]);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

/* Writes n bytes (the whole string when n is 0) to DIR/name, replacing what was there, and
 * returns the path. */
static const char *fx_write_n(struct fixture *fx, const char *name, const char *text, size_t n)
{
	char tmp[sizeof(fx->paths[0])];
	const char *path = NULL;
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s/%s", fx->dir, name);
	for (int i = 0; i < fx->npaths; i++)
		if (strcmp(fx->paths[i], tmp) == 0)
			path = fx->paths[i];
	if (path == NULL) {
		assert_true(fx->npaths < MAX_FILES);
		memcpy(fx->paths[fx->npaths], tmp, sizeof(tmp));
		path = fx->paths[fx->npaths++];
	}
	f = fopen(path, "w");
	assert_non_null(f);
	if (n == 0)
		n = strlen(text);
	assert_int_equal(fwrite(text, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *fx_write(struct fixture *fx, const char *name, const char *text)
{
	return fx_write_n(fx, name, text, 0);
}

/* DIR/rel, for paths the loader resolves against the config's directory. */
static void fx_path(const struct fixture *fx, const char *rel, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", fx->dir, rel);
}

static void assert_addr(const struct addr *a, const char *want)
{
	char buf[ADDR_STRLEN];

	assert_true(a->len > 0);
	assert_true(a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6);
	assert_int_equal(a->len, a->ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
							     : sizeof(struct sockaddr_in6));
	addr_format((const struct sockaddr *)&a->ss, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void assert_cidr(const struct addr_cidr *c, int family, const char *net, unsigned prefix)
{
	uint8_t want[16] = { 0 };

	assert_int_equal(c->family, family);
	assert_int_equal(inet_pton(family, net, want), 1);
	assert_memory_equal(c->net, want, sizeof(want));
	assert_int_equal(c->prefix, prefix);
}

static void assert_secs(double got, double want)
{
	if (fabs(got - want) > 1e-9)
		fail_msg("got %g seconds, want %g", got, want);
}

static void assert_fp(const uint8_t *fp, uint8_t first)
{
	for (unsigned i = 0; i < TLS_FP_LEN; i++)
		if (fp[i] != (uint8_t)(first + i))
			fail_msg("fingerprint byte %u is %02x, want %02x", i, fp[i],
				 (unsigned)(uint8_t)(first + i));
}

/* Counts msgs' lines, checking each is a whole "PATH:LINE: message" line. */
static int msgs_count(const char *msgs, const char *path)
{
	size_t plen = strlen(path);
	int n = 0;

	for (const char *p = msgs; *p != '\0'; n++) {
		const char *nl = strchr(p, '\n'), *q = p + plen;
		if (nl == NULL)
			fail_msg("message not ended by a newline: '%s'", p);
		if (strncmp(p, path, plen) != 0 || *q != ':')
			fail_msg("message without '%s:': '%.*s'", path, (int)(nl - p), p);
		q++;
		if (*q < '0' || *q > '9')
			fail_msg("message without a line number: '%.*s'", (int)(nl - p), p);
		q += strspn(q, "0123456789");
		if (q[0] != ':' || q[1] != ' ' || q + 2 >= nl)
			fail_msg("message not 'file:line: text': '%.*s'", (int)(nl - p), p);
		p = nl + 1;
	}
	return n;
}

/* Fails unless msgs has a line "PATH:LINE: ..." containing needle. */
static void assert_msg(const char *msgs, const char *path, int line, const char *needle)
{
	char prefix[256];
	size_t plen;

	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	plen = strlen(prefix);
	for (const char *p = msgs; *p != '\0';) {
		const char *nl = strchr(p, '\n');
		size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n >= plen && strncmp(p, prefix, plen) == 0 &&
		    memmem(p + plen, n - plen, needle, strlen(needle)) != NULL)
			return;
		p += n;
		if (*p == '\n')
			p++;
	}
	fail_msg("want a message '%s...%s...', got:\n%s", prefix, needle, msgs);
}

static void assert_msgs_count(const char *msgs, const char *path, int want)
{
	int n = msgs_count(msgs, path);

	if (n != want)
		fail_msg("want %d message(s), got %d:\n%s", want, n, msgs);
}

static struct config_gateway *gw_ok(struct fixture *fx, const char *text)
{
	const char *path = fx_write(fx, "gw.ini", text);
	char *msgs = NULL;
	struct config_gateway *g = config_gateway_load(path, &msgs);

	if (g == NULL)
		fail_msg("gateway config refused:\n%s\n%s", msgs ? msgs : "(no messages)", text);
	assert_null(msgs);
	return g;
}

static struct config_agentd *ag_ok(struct fixture *fx, const char *text)
{
	const char *path = fx_write(fx, "agent.ini", text);
	char *msgs = NULL;
	struct config_agentd *a = config_agent_load(path, &msgs);

	if (a == NULL)
		fail_msg("agent config refused:\n%s\n%s", msgs ? msgs : "(no messages)", text);
	assert_null(msgs);
	return a;
}

/* Loads text as a gateway config that must be refused with nmsgs messages (any number when
 * nmsgs is 0), one of them "PATH:line: ...needle...". */
static void gw_bad(struct fixture *fx, const char *text, int line, const char *needle, int nmsgs)
{
	const char *path = fx_write(fx, "gw.ini", text);
	char *msgs = NULL;
	struct config_gateway *g = config_gateway_load(path, &msgs);

	if (g != NULL) {
		config_gateway_free(g);
		fail_msg("gateway config accepted:\n%s", text);
	}
	assert_non_null(msgs);
	assert_msg(msgs, path, line, needle);
	if (nmsgs > 0)
		assert_msgs_count(msgs, path, nmsgs);
	else
		msgs_count(msgs, path);
	free(msgs);
}

static void ag_bad(struct fixture *fx, const char *text, int line, const char *needle, int nmsgs)
{
	const char *path = fx_write(fx, "agent.ini", text);
	char *msgs = NULL;
	struct config_agentd *a = config_agent_load(path, &msgs);

	if (a != NULL) {
		config_agent_free(a);
		fail_msg("agent config accepted:\n%s", text);
	}
	assert_non_null(msgs);
	assert_msg(msgs, path, line, needle);
	if (nmsgs > 0)
		assert_msgs_count(msgs, path, nmsgs);
	else
		msgs_count(msgs, path);
	free(msgs);
}

/* ---- gateway: valid configs ---- */

static void test_gw_full(void **state)
{
	struct fixture *fx = *state;
	char cert[256];
	struct config_gateway *g = gw_ok(fx,
					 "; netwall gateway, every key\n"     /* 1 */
					 "[gateway]\n"                        /* 2 */
					 "listen = 0.0.0.0:7443\n"            /* 3 */
					 "listen = [::1]:7443\n"              /* 4 */
					 "listen = [::]:7444\n"               /* 5 */
					 "cert = certs/gw.crt\n"              /* 6 */
					 "key = /etc/netwall/gw.key\n"        /* 7 */
					 "admin = 127.0.0.1:9200\n"           /* 8 */
					 "log_level = debug\n"                /* 9 */
					 "ping_interval = 0.5\n"              /* 10 */
					 "peer_timeout = 2.5\n"               /* 11 */
					 "handshake_timeout = 7\n"            /* 12 */
					 "drain_timeout = 30\n"               /* 13 */
					 "stream_window = 1048576\n"          /* 14 */
					 "\n"                                 /* 15 */
					 "[agent edge-1]\n"                   /* 16 */
					 "fingerprint = " FP_A "\n"           /* 17 */
					 "\n"                                 /* 18 */
					 "[agent Edge_2.b]\n"                 /* 19 */
					 "fingerprint = " FP_B "\n"           /* 20 */
					 "\n"                                 /* 21 */
					 "[service web]\n"                    /* 22 */
					 "listen = 0.0.0.0:8080\n"            /* 23 */
					 "listen = [::]:8080\n"               /* 24 */
					 "agents = edge-1, Edge_2.b\n"        /* 25 */
					 "allow = 203.0.113.0/24\n"           /* 26 */
					 "allow = 2001:db8::/32, 127.0.0.1 ::1\n" /* 27 */
					 "max_connections = 500\n"            /* 28 */
					 "proxy_protocol = v2\n"              /* 29 */
					 "\n"                                 /* 30 */
					 "[service ssh]\n"                    /* 31 */
					 "listen = 127.0.0.1:2222\n"          /* 32 */
					 "agents = Edge_2.b\n"                /* 33 */
					 "proxy_protocol = v1\n"              /* 34 */
					 "\n"                                 /* 35 */
					 "[service db]\n"                     /* 36 */
					 "listen = [::1]:5432\n"              /* 37 */
					 "agents = edge-1 Edge_2.b\n"         /* 38 */
					 "allow = 10.0.0.0/8,192.168.0.0/16\n" /* 39 */
					 "proxy_protocol = off\n");           /* 40 */
	const struct config_service *s;

	/* [gateway] */
	assert_int_equal(g->nlisten, 3);
	assert_addr(&g->listen[0], "0.0.0.0:7443");
	assert_addr(&g->listen[1], "[::1]:7443");
	assert_addr(&g->listen[2], "[::]:7444");
	fx_path(fx, "certs/gw.crt", cert, sizeof(cert));
	assert_string_equal(g->c.cert, cert);
	assert_string_equal(g->c.key, "/etc/netwall/gw.key");
	assert_null(g->c.ca);
	assert_true(g->c.d.admin_on);
	assert_addr(&g->c.d.admin, "127.0.0.1:9200");
	assert_int_equal(g->c.d.log_level, LOG_DEBUG);
	assert_secs(g->c.tp.ping_interval, 0.5);
	assert_secs(g->c.tp.peer_timeout, 2.5);
	assert_secs(g->c.tp.handshake_timeout, 7);
	assert_secs(g->c.drain_timeout, 30);
	assert_int_equal(g->c.tp.stream_window, 1048576);

	/* [agent NAME] */
	assert_int_equal(g->nagents, 2);
	assert_string_equal(g->agents[0].name, "edge-1");
	assert_int_equal(g->agents[0].line, 16);
	assert_true(g->agents[0].has_fp);
	assert_fp(g->agents[0].fp, 0x00);
	assert_string_equal(g->agents[1].name, "Edge_2.b");
	assert_int_equal(g->agents[1].line, 19);
	assert_true(g->agents[1].has_fp);
	assert_fp(g->agents[1].fp, 0xa0);

	/* [service NAME] */
	assert_int_equal(g->nservices, 3);
	s = &g->services[0];
	assert_string_equal(s->name, "web");
	assert_int_equal(s->line, 22);
	assert_int_equal(s->nlisten, 2);
	assert_addr(&s->listen[0], "0.0.0.0:8080");
	assert_addr(&s->listen[1], "[::]:8080");
	assert_int_equal(s->nagents, 2);
	assert_string_equal(s->agents[0], "edge-1");
	assert_string_equal(s->agents[1], "Edge_2.b");
	assert_int_equal(s->nallow, 4);
	assert_cidr(&s->allow[0], AF_INET, "203.0.113.0", 24);
	assert_cidr(&s->allow[1], AF_INET6, "2001:db8::", 32);
	assert_cidr(&s->allow[2], AF_INET, "127.0.0.1", 32);
	assert_cidr(&s->allow[3], AF_INET6, "::1", 128);
	assert_int_equal(s->max_connections, 500);
	assert_int_equal(s->proxy, 2);

	s = &g->services[1];
	assert_string_equal(s->name, "ssh");
	assert_int_equal(s->line, 31);
	assert_int_equal(s->nlisten, 1);
	assert_addr(&s->listen[0], "127.0.0.1:2222");
	assert_int_equal(s->nagents, 1);
	assert_string_equal(s->agents[0], "Edge_2.b");
	assert_int_equal(s->nallow, 0);
	assert_int_equal(s->max_connections, 10000);
	assert_int_equal(s->proxy, 1);

	s = &g->services[2];
	assert_string_equal(s->name, "db");
	assert_int_equal(s->line, 36);
	assert_int_equal(s->nlisten, 1);
	assert_addr(&s->listen[0], "[::1]:5432");
	assert_int_equal(s->nagents, 2);
	assert_string_equal(s->agents[0], "edge-1");
	assert_string_equal(s->agents[1], "Edge_2.b");
	assert_int_equal(s->nallow, 2);
	assert_cidr(&s->allow[0], AF_INET, "10.0.0.0", 8);
	assert_cidr(&s->allow[1], AF_INET, "192.168.0.0", 16);
	assert_int_equal(s->max_connections, 10000);
	assert_int_equal(s->proxy, 0);

	config_gateway_free(g);
}

static void test_gw_defaults(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g = gw_ok(fx, "[gateway]\n"
					     "listen = 127.0.0.1:7443\n"
					     "cert = /c.pem\n"
					     "key = /k.pem\n"
					     "[agent edge]\n"
					     "fingerprint = " FP_A "\n"
					     "[service web]\n"
					     "listen = 127.0.0.1:8080\n"
					     "agents = edge\n");

	assert_null(g->c.ca);
	assert_true(g->c.d.admin_on);
	assert_addr(&g->c.d.admin, "127.0.0.1:9100");
	assert_int_equal(g->c.d.log_level, LOG_INFO);
	assert_secs(g->c.tp.ping_interval, 1);
	assert_secs(g->c.tp.peer_timeout, 3);
	assert_secs(g->c.tp.handshake_timeout, 5);
	assert_secs(g->c.drain_timeout, 10);
	assert_int_equal(g->c.tp.stream_window, 4194304);
	assert_int_equal(g->c.memory_budget, 64u << 20);
	assert_int_equal(g->nservices, 1);
	assert_int_equal(g->services[0].nallow, 0);
	assert_int_equal(g->services[0].max_connections, 10000);
	assert_int_equal(g->services[0].proxy, 0);
	config_gateway_free(g);
}

/* A config with no [service] is valid: a gateway that forwards nothing yet. */
static void test_gw_no_agents_or_services(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g = gw_ok(fx, "[gateway]\n"
					     "listen = 127.0.0.1:7443\n"
					     "cert = c.pem\n"
					     "key = k.pem\n");

	assert_int_equal(g->nlisten, 1);
	assert_int_equal(g->nagents, 0);
	assert_int_equal(g->nservices, 0);
	config_gateway_free(g);
}

static void test_gw_admin_off(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g = gw_ok(fx, GW_BASE "admin = off\n");

	assert_false(g->c.d.admin_on);
	config_gateway_free(g);
}

static void test_gw_log_levels(void **state)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	static const enum log_level want[] = { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
	struct fixture *fx = *state;
	char text[1024];

	for (size_t i = 0; i < 4; i++) {
		struct config_gateway *g;
		snprintf(text, sizeof(text), GW_BASE "log_level = %s\n", names[i]);
		g = gw_ok(fx, text);
		assert_int_equal(g->c.d.log_level, want[i]);
		config_gateway_free(g);
	}
}

static void test_gw_relative_paths(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_gateway *g = gw_ok(fx, "[gateway]\n"
					     "listen = 127.0.0.1:7443\n"
					     "cert = gw.crt\n"
					     "key = keys/gw.key\n"
					     "ca = ../shared/agents-ca.pem\n");

	fx_path(fx, "gw.crt", want, sizeof(want));
	assert_string_equal(g->c.cert, want);
	fx_path(fx, "keys/gw.key", want, sizeof(want));
	assert_string_equal(g->c.key, want);
	fx_path(fx, "../shared/agents-ca.pem", want, sizeof(want));
	assert_string_equal(g->c.ca, want);
	config_gateway_free(g);

	g = gw_ok(fx, "[gateway]\n"
		      "listen = 127.0.0.1:7443\n"
		      "cert = /etc/netwall/gw.crt\n"
		      "key = /etc/netwall/gw.key\n"
		      "ca = /etc/netwall/ca.pem\n");
	assert_string_equal(g->c.cert, "/etc/netwall/gw.crt");
	assert_string_equal(g->c.key, "/etc/netwall/gw.key");
	assert_string_equal(g->c.ca, "/etc/netwall/ca.pem");
	config_gateway_free(g);
}

/* A key given twice: the last one counts, and the first value is not leaked. */
static void test_gw_repeated_single_keys(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_gateway *g = gw_ok(fx, GW_BASE "cert = second.crt\n"
						     "key = second.key\n"
						     "ca = first-ca.pem\n"
						     "ca = second-ca.pem\n"
						     "log_level = warn\n"
						     "log_level = error\n");

	fx_path(fx, "second.crt", want, sizeof(want));
	assert_string_equal(g->c.cert, want);
	fx_path(fx, "second.key", want, sizeof(want));
	assert_string_equal(g->c.key, want);
	fx_path(fx, "second-ca.pem", want, sizeof(want));
	assert_string_equal(g->c.ca, want);
	assert_int_equal(g->c.d.log_level, LOG_ERROR);
	config_gateway_free(g);
}

static void test_gw_ca_mode(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_gateway *g;

	/* with ca, an [agent NAME] may go without a fingerprint; one with it keeps it */
	g = gw_ok(fx, "[gateway]\n"                       /* 1 */
		      "listen = 127.0.0.1:7443\n"         /* 2 */
		      "cert = gw.crt\n"                   /* 3 */
		      "key = gw.key\n"                    /* 4 */
		      "ca = agents-ca.pem\n"              /* 5 */
		      "[agent edge]\n"                    /* 6 */
		      "[agent pinned]\n"                  /* 7 */
		      "fingerprint = " FP_B "\n"          /* 8 */
		      "[service web]\n"                   /* 9 */
		      "listen = 127.0.0.1:8080\n"         /* 10 */
		      "agents = edge, pinned\n");         /* 11 */
	fx_path(fx, "agents-ca.pem", want, sizeof(want));
	assert_string_equal(g->c.ca, want);
	assert_int_equal(g->nagents, 2);
	assert_string_equal(g->agents[0].name, "edge");
	assert_int_equal(g->agents[0].line, 6);
	assert_false(g->agents[0].has_fp);
	assert_string_equal(g->agents[1].name, "pinned");
	assert_true(g->agents[1].has_fp);
	assert_fp(g->agents[1].fp, 0xa0);
	config_gateway_free(g);

	/* ca may come after the agent sections */
	g = gw_ok(fx, "[agent edge]\n"
		      "[gateway]\n"
		      "listen = 127.0.0.1:7443\n"
		      "cert = gw.crt\n"
		      "key = gw.key\n"
		      "ca = agents-ca.pem\n");
	assert_int_equal(g->nagents, 1);
	assert_false(g->agents[0].has_fp);
	config_gateway_free(g);

	/* without ca the fingerprint is required, reported at the agent's header */
	gw_bad(fx,
	       "[gateway]\n"                       /* 1 */
	       "listen = 127.0.0.1:7443\n"         /* 2 */
	       "cert = gw.crt\n"                   /* 3 */
	       "key = gw.key\n"                    /* 4 */
	       "[agent pinned]\n"                  /* 5 */
	       "fingerprint = " FP_A "\n"          /* 6 */
	       "\n"                                /* 7 */
	       "[agent edge]\n"                    /* 8 */
	       "[service web]\n"                   /* 9 */
	       "listen = 127.0.0.1:8080\n"         /* 10 */
	       "agents = edge\n",                  /* 11 */
	       8, "[agent edge]: missing 'fingerprint'", 1);
}

/* The documented limits are accepted, bounds included. */
static void test_gw_limits_accepted(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g;

	g = gw_ok(fx, GW_BASE "stream_window = 65536\n"
			      "[service one]\n"
			      "listen = 127.0.0.1:8081\n"
			      "agents = edge\n"
			      "max_connections = 1\n"
			      "[service many]\n"
			      "listen = 127.0.0.1:8082\n"
			      "agents = edge\n"
			      "max_connections = 1000000\n");
	assert_int_equal(g->c.tp.stream_window, 65536);
	assert_int_equal(config_find_service(g, "one")->max_connections, 1);
	assert_int_equal(config_find_service(g, "many")->max_connections, 1000000);
	config_gateway_free(g);

	/* "64 KiB .. 1 GiB" */
	g = gw_ok(fx, GW_BASE "stream_window = 1073741824\n");
	assert_int_equal(g->c.tp.stream_window, 1073741824u);
	config_gateway_free(g);
}

/* ---- gateway: errors ---- */

static void test_gw_unknown_key(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx, GW_BASE "listne = 127.0.0.1:7444\n", 10, "unknown key 'listne' in [gateway]", 1);
	/* a key of another section is unknown here */
	gw_bad(fx, GW_BASE "fingerprint = " FP_A "\n", 10, "unknown key 'fingerprint' in [gateway]",
	       1);
	gw_bad(fx,
	       GW_BASE "[agent two]\n"            /* 10 */
		       "fingerprint = " FP_B "\n" /* 11 */
		       "listen = 127.0.0.1:9\n",  /* 12 */
	       12, "unknown key 'listen' in [agent two]", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "agents = edge\n"             /* 12 */
		       "target = 127.0.0.1:80\n",    /* 13 */
	       13, "unknown key 'target' in [service two]", 1);
}

/* A NUL byte inside a line is reported on that line; the next lines are still read, with
 * their own numbers. */
static void test_nul_byte_in_a_line(void **state)
{
	struct fixture *fx = *state;
	static const char text[] = "[gateway]\nx\0y = 1\nfrobnicate = 1\n[nowhere]\n";
	const char *path = fx_write_n(fx, "gw.ini", text, sizeof(text) - 1);
	char *msgs = NULL;
	struct config_gateway *g = config_gateway_load(path, &msgs);

	assert_null(g);
	assert_msg(msgs, path, 2, "NUL byte in line");
	assert_msg(msgs, path, 3, "unknown key 'frobnicate'");
	assert_msg(msgs, path, 4, "nowhere");
	free(msgs);
}

static void test_gw_unknown_section(void **state)
{
	struct fixture *fx = *state;

	/* the keys of an unknown section are not reported again */
	gw_bad(fx, GW_BASE "[frontend]\nlisten = 127.0.0.1:1\nbogus = 1\n", 10,
	       "unknown section [frontend]", 1);
	/* [agent] belongs to the agent's config; the gateway's agents have names */
	gw_bad(fx, GW_BASE "[agent]\n", 10, "unknown section [agent]", 1);
	gw_bad(fx, GW_BASE "[service]\n", 10, "unknown section [service]", 1);
	gw_bad(fx, GW_BASE "[service we/b]\n", 10, "unknown section [service we/b]", 1);
	gw_bad(fx, GW_BASE "[agent a b]\n", 10, "unknown section [agent a b]", 1);
}

static void test_gw_key_outside_section(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx, "; leading comment\nlisten = 127.0.0.1:7443\n" GW_BASE, 2,
	       "key 'listen' outside any section", 1);
}

static void test_gw_bad_address(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx, GW_BASE "listen = 127.0.0.1\n", 10, "listen: bad address '127.0.0.1'", 1);
	gw_bad(fx, GW_BASE "listen = ::1:7443\n", 10, "listen: bad address", 1);
	gw_bad(fx, GW_BASE "listen = 127.0.0.1:65536\n", 10, "listen: bad address", 1);
	gw_bad(fx, GW_BASE "listen = 127.0.0.1:0\n", 10, "listen: bad address", 1);
	gw_bad(fx, GW_BASE "listen = [::1]\n", 10, "listen: bad address", 1);
	gw_bad(fx, GW_BASE "admin = 127.0.0.1\n", 10, "admin: bad address", 1);
	gw_bad(fx, GW_BASE "admin = on\n", 10, "admin: bad address", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"          /* 10 */
		       "listen = 8081\n"          /* 11 */
		       "agents = edge\n",         /* 12 */
	       11, "listen: bad address '8081'", 1);
}

static void test_gw_bad_cidr(void **state)
{
	static const char *const bad[] = { "10.0.0.0/33", "10.0.0/8", "not-an-address",
					   "10.0.0.0/", "::1/129", "10.0.0.0/-1", "/8" };
	struct fixture *fx = *state;
	char text[1024], needle[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 GW_BASE "[service two]\n"          /* 10 */
				 "listen = 127.0.0.1:8081\n" /* 11 */
				 "agents = edge\n"          /* 12 */
				 "allow = 127.0.0.1\n"      /* 13 */
				 "allow = 192.0.2.0/24, %s\n", /* 14 */
			 bad[i]);
		snprintf(needle, sizeof(needle), "allow: bad address or CIDR '%s'", bad[i]);
		gw_bad(fx, text, 14, needle, 1);
	}
}

static void test_gw_cidr_host_bits(void **state)
{
	static const char *const bad[] = { "10.0.0.1/8", "192.168.1.0/23", "2001:db8::1/32",
					   "203.0.113.128/24" };
	struct fixture *fx = *state;
	char text[1024], needle[64];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 GW_BASE "[service two]\n"           /* 10 */
				 "listen = 127.0.0.1:8081\n" /* 11 */
				 "allow = %s\n"              /* 12 */
				 "agents = edge\n",          /* 13 */
			 bad[i]);
		snprintf(needle, sizeof(needle), "allow: bad address or CIDR '%s'", bad[i]);
		gw_bad(fx, text, 12, needle, 1);
	}
}

static void test_gw_bad_fingerprint(void **state)
{
	static const char *const bad[] = {
		/* 63 and 66 digits */
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20",
		/* not hex */
		"g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"00 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"sha256:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"",
	};
	struct fixture *fx = *state;
	char text[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* in CA mode the bad value is the only problem */
		snprintf(text, sizeof(text),
			 GW_BASE "ca = ca.pem\n"        /* 10 */
				 "[agent two]\n"        /* 11 */
				 "fingerprint = %s\n",  /* 12 */
			 bad[i]);
		gw_bad(fx, text, 12, "fingerprint: want 64 hex digits", 1);
		/* without ca the section then also lacks a fingerprint: not counted here */
		snprintf(text, sizeof(text),
			 GW_BASE "[agent two]\n"        /* 10 */
				 "fingerprint = %s\n",  /* 11 */
			 bad[i]);
		gw_bad(fx, text, 11, "fingerprint: want 64 hex digits", 0);
	}
}

static void test_gw_bad_proxy_protocol(void **state)
{
	static const char *const bad[] = { "v3", "V1", "on", "1", "", "v2,v1" };
	struct fixture *fx = *state;
	char text[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
			 GW_BASE "[service two]\n"           /* 10 */
				 "listen = 127.0.0.1:8081\n" /* 11 */
				 "agents = edge\n"           /* 12 */
				 "proxy_protocol = %s\n",    /* 13 */
			 bad[i]);
		gw_bad(fx, text, 13, "proxy_protocol: want off, v1 or v2", 1);
	}
}

static void test_gw_numbers_out_of_range(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx, GW_BASE "stream_window = 65535\n", 10, "stream_window:", 1);
	gw_bad(fx, GW_BASE "stream_window = 1073741825\n", 10, "stream_window:", 1);
	gw_bad(fx, GW_BASE "stream_window = 4M\n", 10, "stream_window:", 1);
	gw_bad(fx, GW_BASE "stream_window = -65536\n", 10, "stream_window:", 1);
	gw_bad(fx, GW_BASE "ping_interval = soon\n", 10, "ping_interval: want seconds", 1);
	gw_bad(fx, GW_BASE "peer_timeout = -3\n", 10, "peer_timeout: want seconds", 1);
	gw_bad(fx, GW_BASE "handshake_timeout = 5s\n", 10, "handshake_timeout: want seconds", 1);
	gw_bad(fx, GW_BASE "drain_timeout = \n", 10, "drain_timeout: want seconds", 1);
	gw_bad(fx, GW_BASE "log_level = verbose\n", 10,
	       "log_level: want debug, info, warn or error", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"           /* 10 */
		       "listen = 127.0.0.1:8081\n" /* 11 */
		       "agents = edge\n"           /* 12 */
		       "max_connections = 0\n",    /* 13 */
	       13, "max_connections: want 1..", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"           /* 10 */
		       "max_connections = -1\n"    /* 11 */
		       "listen = 127.0.0.1:8081\n" /* 12 */
		       "agents = edge\n",          /* 13 */
	       11, "max_connections: want 1..", 1);
}

static void test_gw_peer_timeout_not_above_ping(void **state)
{
	struct fixture *fx = *state;

	/* GW_BASE's [gateway] header is line 6 */
	gw_bad(fx, GW_BASE "ping_interval = 3\npeer_timeout = 3\n", 6,
	       "peer_timeout must be longer than ping_interval", 1);
	gw_bad(fx, GW_BASE "peer_timeout = 2\nping_interval = 5\n", 6,
	       "peer_timeout must be longer than ping_interval", 1);
	/* against the default ping_interval of 1 */
	gw_bad(fx, GW_BASE "peer_timeout = 1\n", 6,
	       "peer_timeout must be longer than ping_interval", 1);
}

static void test_gw_service_unknown_agent(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx,
	       GW_BASE "\n"                          /* 10 */
		       "[service two]\n"             /* 11 */
		       "listen = 127.0.0.1:8081\n"   /* 12 */
		       "agents = edge, ghost\n",     /* 13 */
	       11, "[service two]: agent 'ghost' has no [agent ghost] section", 1);
	/* names are case-sensitive */
	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "agents = Edge\n",            /* 12 */
	       10, "agent 'Edge' has no [agent Edge] section", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "agents = edge, bad!name\n",  /* 12 */
	       12, "agents: bad agent name 'bad!name'", 1);
}

static void test_gw_service_listen_is_tunnel_listen(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "listen = 127.0.0.1:7443\n"   /* 12 */
		       "agents = edge\n",            /* 13 */
	       10, "[service two]: listen address is also the gateway's tunnel address", 1);
	gw_bad(fx,
	       GW_BASE "listen = [::1]:7443\n"       /* 10 */
		       "[service two]\n"             /* 11 */
		       "listen = [::1]:7443\n"       /* 12 */
		       "agents = edge\n",            /* 13 */
	       11, "[service two]: listen address is also the gateway's tunnel address", 1);
}

static void test_gw_missing_required_keys(void **state)
{
	struct fixture *fx = *state;
	static const char agent_and_service[] = "[agent edge]\n"
						"fingerprint = " FP_A "\n"
						"[service web]\n"
						"listen = 127.0.0.1:8080\n"
						"agents = edge\n";
	char text[1024];

	snprintf(text, sizeof(text), "\n\n[gateway]\nlisten = 127.0.0.1:7443\nkey = k.pem\n%s",
		 agent_and_service);
	gw_bad(fx, text, 3, "[gateway]: missing required key 'cert'", 1);
	snprintf(text, sizeof(text), "\n\n[gateway]\nlisten = 127.0.0.1:7443\ncert = c.pem\n%s",
		 agent_and_service);
	gw_bad(fx, text, 3, "[gateway]: missing required key 'key'", 1);
	snprintf(text, sizeof(text), "\n\n[gateway]\ncert = c.pem\nkey = k.pem\n%s",
		 agent_and_service);
	gw_bad(fx, text, 3, "[gateway]: missing required key 'listen'", 1);

	/* all three, each reported at the header */
	snprintf(text, sizeof(text), "\n\n[gateway]\nlog_level = info\n\n%s", agent_and_service);
	gw_bad(fx, text, 3, "missing required key 'cert'", 3);
	gw_bad(fx, text, 3, "missing required key 'key'", 3);
	gw_bad(fx, text, 3, "missing required key 'listen'", 3);

	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "agents = edge\n",            /* 11 */
	       10, "[service two]: missing required key 'listen'", 1);
	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "max_connections = 5\n",      /* 12 */
	       10, "[service two]: missing required key 'agents'", 1);
	/* an empty list is no list */
	gw_bad(fx,
	       GW_BASE "[service two]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "agents = , \n",              /* 12 */
	       10, "[service two]: missing required key 'agents'", 1);
	gw_bad(fx,
	       GW_BASE "[agent two]\n"               /* 10 */
		       "\n",                         /* 11 */
	       10, "[agent two]: missing 'fingerprint'", 1);
}

static void test_gw_duplicate_sections(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx, GW_BASE "\n[gateway]\n", 11, "[gateway] appears twice", 1);
	gw_bad(fx, GW_BASE "[agent edge]\nfingerprint = " FP_B "\n", 10,
	       "[agent edge] appears twice", 1);
	gw_bad(fx,
	       GW_BASE "[service web]\n"             /* 10 */
		       "listen = 127.0.0.1:8081\n"   /* 11 */
		       "agents = edge\n",            /* 12 */
	       10, "[service web] appears twice", 1);
}

static void test_gw_missing_gateway_section(void **state)
{
	struct fixture *fx = *state;

	gw_bad(fx,
	       "[agent edge]\n"
	       "fingerprint = " FP_A "\n"
	       "[service web]\n"
	       "listen = 127.0.0.1:8080\n"
	       "agents = edge\n",
	       1, "missing [gateway] section", 1);
	gw_bad(fx, "", 1, "missing [gateway] section", 1);
	gw_bad(fx, "; nothing but a comment\n", 1, "missing [gateway] section", 1);
	/* an agent's config is not a gateway's: its [service web] has a target, not listen */
	gw_bad(fx, AG_BASE, 3, "unknown section [agent]", 2);
	gw_bad(fx, AG_BASE, 2, "unknown key 'target' in [service web]", 2);
}

static void test_gw_several_errors_reported(void **state)
{
	struct fixture *fx = *state;
	const char *path = fx_write(fx, "gw.ini",
				    GW_BASE "bogus = 1\n"                 /* 10 */
					    "stream_window = 1\n"        /* 11 */
					    "[service two]\n"             /* 12 */
					    "listen = 127.0.0.1:8081\n"   /* 13 */
					    "agents = edge\n"             /* 14 */
					    "proxy_protocol = v9\n");     /* 15 */
	char *msgs = NULL, *second;

	assert_null(config_gateway_load(path, &msgs));
	assert_non_null(msgs);
	assert_msgs_count(msgs, path, 3);
	assert_msg(msgs, path, 10, "unknown key 'bogus'");
	assert_msg(msgs, path, 11, "stream_window:");
	assert_msg(msgs, path, 15, "proxy_protocol:");
	/* in file order */
	second = strchr(msgs, '\n') + 1;
	assert_true(strstr(msgs, ":10: ") < second);
	assert_true(strstr(second, ":11: ") < strstr(second, ":15: "));
	free(msgs);
}

static void test_gw_missing_file(void **state)
{
	struct fixture *fx = *state;
	char path[256], prefix[300];
	char *msgs = NULL;

	fx_path(fx, "nonexistent.ini", path, sizeof(path));
	assert_null(config_gateway_load(path, &msgs));
	assert_non_null(msgs);
	snprintf(prefix, sizeof(prefix), "%s:", path);
	assert_true(strncmp(msgs, prefix, strlen(prefix)) == 0);
	assert_non_null(strstr(msgs, "cannot open"));
	free(msgs);
	/* msgs is optional */
	assert_null(config_gateway_load(path, NULL));
	assert_null(config_agent_load(path, NULL));
}

/* An invalid file returns NULL with messages; msgs may be NULL; a valid one leaves msgs
 * alone. */
static void test_gw_msgs_handover(void **state)
{
	struct fixture *fx = *state;
	const char *path = fx_write(fx, "gw.ini", GW_BASE "bogus = 1\n");
	char *msgs = NULL;
	struct config_gateway *g;

	assert_null(config_gateway_load(path, NULL));
	assert_null(config_gateway_load(path, &msgs));
	assert_non_null(msgs);
	assert_true(strlen(msgs) > 0);
	free(msgs);

	path = fx_write(fx, "gw.ini", GW_BASE);
	msgs = NULL;
	g = config_gateway_load(path, &msgs);
	assert_non_null(g);
	assert_null(msgs);
	config_gateway_free(g);
	config_gateway_free(NULL);
}

/* ---- agent: valid configs ---- */

static void test_ag_full(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_agentd *a = ag_ok(fx,
					"; netwall agent, every key\n"        /* 1 */
					"[agent]\n"                           /* 2 */
					"gateway = 192.0.2.10:7443\n"         /* 3 */
					"gateway = [2001:db8::10]:7443\n"     /* 4 */
					"cert = agent.crt\n"                  /* 5 */
					"key = keys/agent.key\n"              /* 6 */
					"gateway_fingerprint = " FP_B "\n"    /* 7 */
					"server_name = wall.example.net\n"    /* 8 */
					"tunnels = 4\n"                       /* 9 */
					"admin = [::1]:9201\n"                /* 10 */
					"log_level = warn\n"                  /* 11 */
					"backoff_initial = 0.25\n"            /* 12 */
					"backoff_max = 30\n"                  /* 13 */
					"ping_interval = 2\n"                 /* 14 */
					"peer_timeout = 6\n"                  /* 15 */
					"handshake_timeout = 3\n"             /* 16 */
					"connect_timeout = 1.5\n"             /* 17 */
					"drain_timeout = 0\n"                 /* 18 */
					"stream_window = 131072\n"            /* 19 */
					"\n"                                  /* 20 */
					"[service web]\n"                     /* 21 */
					"target = 127.0.0.1:8080\n"           /* 22 */
					"\n"                                  /* 23 */
					"[service api]\n"                     /* 24 */
					"target = [::1]:8443\n"               /* 25 */
					"tls = on\n"                          /* 26 */
					"tls_ca = ca/api.pem\n"               /* 27 */
					"tls_verify = off\n"                  /* 28 */
					"tls_server_name = api.internal\n"    /* 29 */
					"\n"                                  /* 30 */
					"[service sock]\n"                    /* 31 */
					"target = unix:/run/app.sock\n"       /* 32 */
					"\n"                                  /* 33 */
					"[service rel.sock]\n"                /* 34 */
					"target = unix:run/rel.sock\n");      /* 35 */
	const struct config_target *t;

	assert_int_equal(a->ngateways, 2);
	assert_addr(&a->gateways[0], "192.0.2.10:7443");
	assert_string_equal(a->gateway_host[0], "192.0.2.10");
	assert_addr(&a->gateways[1], "[2001:db8::10]:7443");
	assert_string_equal(a->gateway_host[1], "2001:db8::10");
	fx_path(fx, "agent.crt", want, sizeof(want));
	assert_string_equal(a->c.cert, want);
	fx_path(fx, "keys/agent.key", want, sizeof(want));
	assert_string_equal(a->c.key, want);
	assert_null(a->c.ca);
	assert_true(a->has_pin);
	assert_fp(a->gateway_fp, 0xa0);
	assert_string_equal(a->server_name, "wall.example.net");
	assert_int_equal(a->tunnels, 4);
	assert_true(a->c.d.admin_on);
	assert_addr(&a->c.d.admin, "[::1]:9201");
	assert_int_equal(a->c.d.log_level, LOG_WARN);
	assert_secs(a->backoff_initial, 0.25);
	assert_secs(a->backoff_max, 30);
	assert_secs(a->c.tp.ping_interval, 2);
	assert_secs(a->c.tp.peer_timeout, 6);
	assert_secs(a->c.tp.handshake_timeout, 3);
	assert_secs(a->connect_timeout, 1.5);
	assert_secs(a->c.drain_timeout, 0);
	assert_int_equal(a->c.tp.stream_window, 131072);

	assert_int_equal(a->ntargets, 4);
	t = &a->targets[0];
	assert_string_equal(t->name, "web");
	assert_int_equal(t->line, 21);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_TCP);
	assert_addr(&t->ep[0].addr, "127.0.0.1:8080");
	assert_string_equal(t->ep[0].host, "127.0.0.1");
	assert_null(t->ep[0].unix_path);
	assert_false(t->tls);
	assert_true(t->tls_verify);
	assert_null(t->tls_ca);
	assert_null(t->tls_server_name);

	t = &a->targets[1];
	assert_string_equal(t->name, "api");
	assert_int_equal(t->line, 24);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_TCP);
	assert_addr(&t->ep[0].addr, "[::1]:8443");
	assert_string_equal(t->ep[0].host, "::1");
	assert_true(t->tls);
	assert_false(t->tls_verify);
	fx_path(fx, "ca/api.pem", want, sizeof(want));
	assert_string_equal(t->tls_ca, want);
	assert_string_equal(t->tls_server_name, "api.internal");

	t = &a->targets[2];
	assert_string_equal(t->name, "sock");
	assert_int_equal(t->line, 31);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_UNIX);
	assert_string_equal(t->ep[0].unix_path, "/run/app.sock");
	assert_false(t->tls);

	t = &a->targets[3];
	assert_string_equal(t->name, "rel.sock");
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_UNIX);
	fx_path(fx, "run/rel.sock", want, sizeof(want));
	assert_string_equal(t->ep[0].unix_path, want);

	config_agent_free(a);
}

static void test_ag_defaults(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a = ag_ok(fx, "[agent]\n"
					    "gateway = 127.0.0.1:7443\n"
					    "cert = /c.pem\n"
					    "key = /k.pem\n"
					    "gateway_fingerprint = " FP_A "\n"
					    "[service web]\n"
					    "target = 127.0.0.1:8080\n");
	const struct config_target *t;

	assert_int_equal(a->ngateways, 1);
	assert_addr(&a->gateways[0], "127.0.0.1:7443");
	assert_string_equal(a->gateway_host[0], "127.0.0.1");
	assert_true(a->has_pin);
	assert_fp(a->gateway_fp, 0x00);
	assert_null(a->c.ca);
	/* server_name defaults to the host of gateway */
	assert_null(a->server_name);
	assert_int_equal(a->tunnels, 2);
	assert_true(a->c.d.admin_on);
	assert_addr(&a->c.d.admin, "127.0.0.1:9101");
	assert_int_equal(a->c.d.log_level, LOG_INFO);
	assert_secs(a->backoff_initial, 0.1);
	assert_secs(a->backoff_max, 2);
	assert_secs(a->c.tp.ping_interval, 1);
	assert_secs(a->c.tp.peer_timeout, 3);
	assert_secs(a->c.tp.handshake_timeout, 5);
	assert_secs(a->connect_timeout, 5);
	assert_secs(a->c.drain_timeout, 10);
	assert_int_equal(a->c.tp.stream_window, 4194304);
	assert_int_equal(a->c.memory_budget, 64u << 20);

	assert_int_equal(a->ntargets, 1);
	t = &a->targets[0];
	assert_false(t->tls);
	assert_true(t->tls_verify);
	assert_null(t->tls_ca);
	/* tls_server_name defaults to the host of target */
	assert_null(t->tls_server_name);
	assert_string_equal(t->ep[0].host, "127.0.0.1");
	config_agent_free(a);
}

static void test_ag_admin_off(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a = ag_ok(fx, AG_BASE "admin = off\n");

	assert_false(a->c.d.admin_on);
	config_agent_free(a);
}

static void test_ag_ca_mode(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_agentd *a = ag_ok(fx, "[agent]\n"
					    "gateway = 127.0.0.1:7443\n"
					    "cert = agent.crt\n"
					    "key = agent.key\n"
					    "ca = gateway-ca.pem\n"
					    "[service web]\n"
					    "target = 127.0.0.1:8080\n");

	assert_false(a->has_pin);
	fx_path(fx, "gateway-ca.pem", want, sizeof(want));
	assert_string_equal(a->c.ca, want);
	config_agent_free(a);

	/* neither a pin nor a CA: reported at [agent] */
	ag_bad(fx,
	       "[service web]\n"              /* 1 */
	       "target = 127.0.0.1:8080\n"    /* 2 */
	       "[agent]\n"                    /* 3 */
	       "gateway = 127.0.0.1:7443\n"   /* 4 */
	       "cert = agent.crt\n"           /* 5 */
	       "key = agent.key\n",           /* 6 */
	       3, "set 'gateway_fingerprint' (pinned) or 'ca'", 1);
}

/* Repeated keys: gateway and target add, single keys take the last value without leaking the
 * first. */
static void test_ag_repeated_keys(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_agentd *a = ag_ok(fx,
					AG_BASE "gateway = [::1]:7443\n"
						"server_name = first\n"
						"server_name = second\n"
						"cert = other.crt\n"
						"[service two]\n"
						"target = unix:/a.sock\n"
						"target = unix:/b.sock\n"
						"tls_ca = a.pem\n"
						"tls_ca = b.pem\n"
						"tls_server_name = one\n"
						"tls_server_name = two\n");
	const struct config_target *t;

	assert_int_equal(a->ngateways, 2);
	assert_addr(&a->gateways[1], "[::1]:7443");
	assert_string_equal(a->gateway_host[1], "::1");
	assert_string_equal(a->server_name, "second");
	fx_path(fx, "other.crt", want, sizeof(want));
	assert_string_equal(a->c.cert, want);
	t = config_find_target(a, "two");
	assert_non_null(t);
	/* target lines add up: each an address of the service */
	assert_int_equal(t->nep, 2);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_UNIX);
	assert_string_equal(t->ep[0].unix_path, "/a.sock");
	assert_string_equal(t->ep[1].unix_path, "/b.sock");
	fx_path(fx, "b.pem", want, sizeof(want));
	assert_string_equal(t->tls_ca, want);
	assert_string_equal(t->tls_server_name, "two");
	config_agent_free(a);
}

static void test_ag_tunnels_bounds(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a;

	a = ag_ok(fx, AG_BASE "tunnels = 1\n");
	assert_int_equal(a->tunnels, 1);
	config_agent_free(a);
	a = ag_ok(fx, AG_BASE "tunnels = 16\n");
	assert_int_equal(a->tunnels, 16);
	config_agent_free(a);

	ag_bad(fx, AG_BASE "tunnels = 0\n", 8, "tunnels: want 1..16, got '0'", 1);
	ag_bad(fx, AG_BASE "tunnels = 17\n", 8, "tunnels: want 1..16, got '17'", 1);
	ag_bad(fx, AG_BASE "tunnels = -1\n", 8, "tunnels: want 1..16", 1);
	ag_bad(fx, AG_BASE "tunnels = two\n", 8, "tunnels: want 1..16", 1);
	ag_bad(fx, AG_BASE "tunnels = 2.5\n", 8, "tunnels: want 1..16", 1);
}

static void test_ag_unix_target(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_agentd *a = ag_ok(fx, AG_BASE "[service db]\n"
						    "target = unix:/run/postgresql/.s.PGSQL.5432\n"
						    "[service app]\n"
						    "target = unix:sockets/app.sock\n");
	const struct config_target *t;

	t = config_find_target(a, "db");
	assert_non_null(t);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_UNIX);
	assert_string_equal(t->ep[0].unix_path, "/run/postgresql/.s.PGSQL.5432");
	assert_false(t->tls);
	t = config_find_target(a, "app");
	assert_non_null(t);
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_UNIX);
	fx_path(fx, "sockets/app.sock", want, sizeof(want));
	assert_string_equal(t->ep[0].unix_path, want);
	config_agent_free(a);
}

/* TLS to a Unix socket has no host name to verify: it needs tls_server_name, unless
 * verification is off. */
static void test_ag_unix_tls_server_name(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a;

	ag_bad(fx,
	       AG_BASE "[service s]\n"               /* 8 */
		       "target = unix:/run/s.sock\n" /* 9 */
		       "tls = on\n",                 /* 10 */
	       8, "[service s]: TLS to a Unix socket needs tls_server_name", 1);

	a = ag_ok(fx, AG_BASE "[service s]\n"
			      "target = unix:/run/s.sock\n"
			      "tls = yes\n"
			      "tls_server_name = s.internal\n");
	assert_true(a->targets[1].tls);
	assert_true(a->targets[1].tls_verify);
	assert_string_equal(a->targets[1].tls_server_name, "s.internal");
	config_agent_free(a);

	a = ag_ok(fx, AG_BASE "[service s]\n"
			      "target = unix:/run/s.sock\n"
			      "tls = true\n"
			      "tls_verify = no\n");
	assert_true(a->targets[1].tls);
	assert_false(a->targets[1].tls_verify);
	config_agent_free(a);
}

/* Host names are resolved when the config is loaded; localhost is a documented example. */
static void test_ag_target_host_name(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a = ag_ok(fx, AG_BASE "[service local]\n"
						    "target = localhost:80\n");
	const struct config_target *t = &a->targets[1];
	char host[ADDR_STRLEN];

	assert_string_equal(t->name, "local");
	assert_int_equal(t->ep[0].kind, CONFIG_TARGET_TCP);
	assert_string_equal(t->ep[0].host, "localhost");
	assert_int_equal(addr_port((const struct sockaddr *)&t->ep[0].addr.ss), 80);
	addr_format_host((const struct sockaddr *)&t->ep[0].addr.ss, host, sizeof(host));
	if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "::1") != 0)
		fail_msg("localhost resolved to %s", host);
	config_agent_free(a);
}

static void test_ag_stream_window(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a;

	a = ag_ok(fx, AG_BASE "stream_window = 65536\n");
	assert_int_equal(a->c.tp.stream_window, 65536);
	config_agent_free(a);
	ag_bad(fx, AG_BASE "stream_window = 65535\n", 8, "stream_window:", 1);
	ag_bad(fx, AG_BASE "stream_window = 0\n", 8, "stream_window:", 1);
}

/* crl: a path relative to the config (the last one counts); CA mode only; not empty. */
static void test_gw_crl(void **state)
{
	struct fixture *fx = *state;
	char want[256];
	struct config_gateway *g = gw_ok(fx, GW_BASE "ca = ca.pem\n"
						     "crl = old.crl\n"
						     "crl = agents.crl\n");

	fx_path(fx, "agents.crl", want, sizeof(want));
	assert_string_equal(g->crl, want);
	assert_int_equal(g->crl_line, 12);
	config_gateway_free(g);
	g = gw_ok(fx, GW_BASE);
	assert_null(g->crl);
	config_gateway_free(g);
	gw_bad(fx, GW_BASE "crl = agents.crl\n", 10, "crl: needs 'ca'", 1);
	gw_bad(fx, GW_BASE "ca = ca.pem\ncrl =\n", 11, "crl: empty value", 1);
}

/* memory_budget: bytes, 1 MiB .. 1 TiB, both included, in [gateway] and [agent]; just
 * outside either bound, or not a plain number, is an error on its line. */
static void test_memory_budget(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g;
	struct config_agentd *a;

	g = gw_ok(fx, GW_BASE "memory_budget = 1048576\n");
	assert_int_equal(g->c.memory_budget, 1048576);
	config_gateway_free(g);
	g = gw_ok(fx, GW_BASE "memory_budget = 1099511627776\n");
	assert_int_equal(g->c.memory_budget, 1099511627776ull);
	config_gateway_free(g);
	gw_bad(fx, GW_BASE "memory_budget = 1048575\n", 10, "memory_budget: want bytes", 1);
	gw_bad(fx, GW_BASE "memory_budget = 1099511627777\n", 10, "memory_budget:", 1);
	gw_bad(fx, GW_BASE "memory_budget = 64M\n", 10, "memory_budget:", 1);
	gw_bad(fx, GW_BASE "memory_budget = \n", 10, "memory_budget:", 1);

	a = ag_ok(fx, AG_BASE "memory_budget = 33554432\n");
	assert_int_equal(a->c.memory_budget, 33554432);
	config_agent_free(a);
	ag_bad(fx, AG_BASE "memory_budget = 1048575\n", 8, "memory_budget:", 1);
	ag_bad(fx, AG_BASE "memory_budget = -1\n", 8, "memory_budget:", 1);
}

/* ---- agent: errors ---- */

static void test_ag_unknown_key(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_BASE "tunnel = 2\n", 8, "unknown key 'tunnel' in [agent]", 1);
	/* gateway keys are not agent keys */
	ag_bad(fx, AG_BASE "listen = 127.0.0.1:7443\n", 8, "unknown key 'listen' in [agent]", 1);
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = 127.0.0.1:9000\n"   /* 9 */
		       "tls_verfy = off\n",          /* 10 */
	       10, "unknown key 'tls_verfy' in [service two]", 1);
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "listen = 127.0.0.1:9000\n"   /* 9 */
		       "target = 127.0.0.1:9000\n",  /* 10 */
	       9, "unknown key 'listen' in [service two]", 1);
}

static void test_ag_unknown_section(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_BASE "[agent edge]\nfingerprint = " FP_A "\n", 8,
	       "unknown section [agent edge]", 1);
	ag_bad(fx, AG_BASE "[targets]\n", 8, "unknown section [targets]", 1);
	ag_bad(fx, AG_BASE "[service]\ntarget = 127.0.0.1:1\n", 8, "unknown section [service]", 1);
	/* a gateway's sections are not an agent's */
	ag_bad(fx, "[gateway]\nlisten = 127.0.0.1:7443\n" AG_BASE, 1, "unknown section [gateway]",
	       1);
}

static void test_ag_key_outside_section(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, "tunnels = 2\n" AG_BASE, 1, "key 'tunnels' outside any section", 1);
}

static void test_ag_bad_address(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_BASE "gateway = 127.0.0.1\n", 8, "gateway: bad address", 1);
	ag_bad(fx, AG_BASE "gateway = 2001:db8::1:7443\n", 8, "gateway: bad address", 1);
	ag_bad(fx, AG_BASE "admin = 127.0.0.1:99999\n", 8, "admin: bad address", 1);
	/* the section then also lacks a target: the count is not pinned */
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = 8080\n",            /* 9 */
	       9, "target: bad address '8080'", 0);
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = [::1]8080\n",       /* 9 */
	       9, "target: bad address", 0);
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = unix\n",            /* 9 */
	       9, "target: bad address 'unix'", 0);
}

static void test_ag_bad_fingerprint(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx,
	       "[service web]\n"                                    /* 1 */
	       "target = 127.0.0.1:8080\n"                          /* 2 */
	       "[agent]\n"                                          /* 3 */
	       "gateway = 127.0.0.1:7443\n"                         /* 4 */
	       "cert = agent.crt\n"                                 /* 5 */
	       "key = agent.key\n"                                  /* 6 */
	       "ca = ca.pem\n"                                      /* 7 */
	       "gateway_fingerprint = " FP_A "00\n",                /* 8 */
	       8, "gateway_fingerprint: want 64 hex digits", 1);
	ag_bad(fx, AG_BASE "gateway_fingerprint = xyz\n", 8,
	       "gateway_fingerprint: want 64 hex digits", 1);
}

static void test_ag_bad_tls_options(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = 127.0.0.1:9000\n"   /* 9 */
		       "tls = maybe\n",              /* 10 */
	       10, "tls: want on or off, got 'maybe'", 1);
	ag_bad(fx,
	       AG_BASE "[service two]\n"             /* 8 */
		       "target = 127.0.0.1:9000\n"   /* 9 */
		       "tls = on\n"                  /* 10 */
		       "tls_verify = ON\n",          /* 11 */
	       11, "tls_verify: want on or off, got 'ON'", 1);
}

static void test_ag_numbers_out_of_range(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_BASE "backoff_initial = fast\n", 8, "backoff_initial: want seconds", 1);
	ag_bad(fx, AG_BASE "backoff_max = -2\n", 8, "backoff_max: want seconds", 1);
	ag_bad(fx, AG_BASE "connect_timeout = 0\n", 8, "connect_timeout: want seconds", 1);
	ag_bad(fx, AG_BASE "handshake_timeout = 1e9\n", 8, "handshake_timeout: want seconds", 1);
	ag_bad(fx, AG_BASE "log_level = trace\n", 8, "log_level:", 1);
}

static void test_ag_timing_checks(void **state)
{
	struct fixture *fx = *state;

	/* AG_BASE's [agent] header is line 3 */
	ag_bad(fx, AG_BASE "ping_interval = 4\npeer_timeout = 4\n", 3,
	       "peer_timeout must be longer than ping_interval", 1);
	ag_bad(fx, AG_BASE "ping_interval = 5\n", 3,
	       "peer_timeout must be longer than ping_interval", 1);
	ag_bad(fx, AG_BASE "backoff_initial = 5\n", 3,
	       "backoff_max is shorter than backoff_initial", 1);
}

static void test_ag_missing_required_keys(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx,
	       "\n"                                 /* 1 */
	       "[agent]\n"                          /* 2 */
	       "cert = a.crt\n"                     /* 3 */
	       "key = a.key\n"                      /* 4 */
	       "gateway_fingerprint = " FP_A "\n"   /* 5 */
	       "[service web]\n"                    /* 6 */
	       "target = 127.0.0.1:80\n",           /* 7 */
	       2, "[agent]: missing required key 'gateway'", 1);
	ag_bad(fx,
	       "\n"                                 /* 1 */
	       "[agent]\n"                          /* 2 */
	       "gateway = 127.0.0.1:7443\n"         /* 3 */
	       "key = a.key\n"                      /* 4 */
	       "gateway_fingerprint = " FP_A "\n"   /* 5 */
	       "[service web]\n"                    /* 6 */
	       "target = 127.0.0.1:80\n",           /* 7 */
	       2, "[agent]: missing required key 'cert'", 1);
	ag_bad(fx,
	       "\n"                                 /* 1 */
	       "[agent]\n"                          /* 2 */
	       "gateway = 127.0.0.1:7443\n"         /* 3 */
	       "cert = a.crt\n"                     /* 4 */
	       "gateway_fingerprint = " FP_A "\n"   /* 5 */
	       "[service web]\n"                    /* 6 */
	       "target = 127.0.0.1:80\n",           /* 7 */
	       2, "[agent]: missing required key 'key'", 1);
	ag_bad(fx,
	       AG_BASE "\n"                          /* 8 */
		       "[service two]\n"             /* 9 */
		       "tls = off\n",                /* 10 */
	       9, "[service two]: missing required key 'target'", 1);
	/* an empty [agent]: every requirement, all at its header */
#define EMPTY_AGENT "[service web]\ntarget = 127.0.0.1:80\n[agent]\n"
	ag_bad(fx, EMPTY_AGENT, 3, "missing required key 'cert'", 4);
	ag_bad(fx, EMPTY_AGENT, 3, "missing required key 'key'", 4);
	ag_bad(fx, EMPTY_AGENT, 3, "missing required key 'gateway'", 4);
	ag_bad(fx, EMPTY_AGENT, 3, "'gateway_fingerprint'", 4);
#undef EMPTY_AGENT
}

/* Several targets: a comma list and more target lines add up; health keys and defaults. */
static void test_ag_several_targets(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a = ag_ok(fx, AG_BASE "[service api]\n"
						    "target = 10.0.0.5:8000, [2001:db8::6]:8000\n"
						    "target =unix:/run/api.sock\n"
						    "health_check = http /healthz?full=1\n"
						    "health_interval = 0.5\n"
						    "health_timeout = 0.25\n"
						    "health_fall = 3\n"
						    "health_rise = 1\n"
						    "[service two]\n"
						    "target = 10.0.0.5:80,10.0.0.6:80\n");
	const struct config_target *t = config_find_target(a, "api");

	assert_int_equal(t->nep, 3);
	assert_addr(&t->ep[0].addr, "10.0.0.5:8000");
	assert_string_equal(t->ep[0].label, "10.0.0.5:8000");
	assert_string_equal(t->ep[0].host, "10.0.0.5");
	assert_addr(&t->ep[1].addr, "[2001:db8::6]:8000");
	assert_string_equal(t->ep[1].label, "[2001:db8::6]:8000");
	assert_int_equal(t->ep[2].kind, CONFIG_TARGET_UNIX);
	assert_string_equal(t->ep[2].unix_path, "/run/api.sock");
	assert_string_equal(t->ep[2].label, "unix:/run/api.sock");
	assert_int_equal(t->health, CONFIG_HEALTH_HTTP);
	assert_string_equal(t->health_path, "/healthz?full=1");
	assert_secs(t->health_interval, 0.5);
	assert_secs(t->health_timeout, 0.25);
	assert_int_equal(t->health_fall, 3);
	assert_int_equal(t->health_rise, 1);
	/* defaults: several targets are checked over TCP, one is not checked */
	t = config_find_target(a, "two");
	assert_int_equal(t->nep, 2);
	assert_int_equal(t->health, CONFIG_HEALTH_TCP);
	assert_secs(t->health_interval, 5);
	assert_secs(t->health_timeout, 2);
	assert_int_equal(t->health_fall, 2);
	assert_int_equal(t->health_rise, 2);
	t = config_find_target(a, "web");
	assert_int_equal(t->nep, 1);
	assert_int_equal(t->health, CONFIG_HEALTH_OFF);
	config_agent_free(a);

	a = ag_ok(fx, "[service web]\n"
		      "target = 127.0.0.1:8080\n"
		      "health_check = tcp\n"
		      "[agent]\n"
		      "gateway = 127.0.0.1:7443\n"
		      "cert = agent.crt\n"
		      "key = agent.key\n"
		      "gateway_fingerprint = " FP_A "\n"
		      "[service two]\n"
			      "target = 10.0.0.5:80, 10.0.0.6:80\n"
			      "health_check = off\n");
	assert_int_equal(a->targets[0].health, CONFIG_HEALTH_TCP);
	assert_int_equal(a->targets[1].health, CONFIG_HEALTH_OFF);
	config_agent_free(a);
}

static void test_ag_bad_targets(void **state)
{
	struct fixture *fx = *state;
	char text[2048];
	size_t off;

	ag_bad(fx, AG_BASE "[service two]\n"                        /* 8 */
			   "target = 10.0.0.5:80, 10.0.0.6:80\n"    /* 9 */
			   "target = 10.0.0.6:80\n",                /* 10 */
	       10, "target: 10.0.0.6:80 given twice in [service two]", 1);
	ag_bad(fx, AG_BASE "[service two]\n"                        /* 8 */
			   "target = unix:/a.sock, unix:/a.sock\n", /* 9 */
	       9, "target: unix:/a.sock given twice", 1);
	ag_bad(fx, AG_BASE "[service two]\n"                        /* 8 */
			   "target = 10.0.0.5:80,\n",               /* 9 */
	       9, "target: an empty or overlong address in the list", 1);
	ag_bad(fx, AG_BASE "[service two]\n"                        /* 8 */
			   "target = 10.0.0.5:80, 8080\n",          /* 9 */
	       9, "target: bad address '8080'", 1);
	/* 16 addresses are the most: the 17th is refused */
	off = (size_t)snprintf(text, sizeof(text), AG_BASE "[service many]\n");
	for (int i = 0; i < 17; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "target = 10.0.0.%d:80\n",
					i + 1);
	ag_bad(fx, text, 25, "target: more than 16 addresses in [service many]", 1);
	text[off - strlen("target = 10.0.0.17:80\n")] = '\0';
	config_agent_free(ag_ok(fx, text));
}

/* AG_BASE and a service of two targets: appended text starts at line 10. */
#define AG_SVC AG_BASE "[service two]\ntarget = 10.0.0.5:80, 10.0.0.6:80\n"

static void test_ag_bad_health(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_SVC "health_check = ping\n", 10,
	       "health_check: want off, tcp or http /PATH, got 'ping'", 1);
	ag_bad(fx, AG_SVC "health_check = http\n", 10, "health_check: want off, tcp or http", 1);
	ag_bad(fx, AG_SVC "health_check = http healthz\n", 10,
	       "health_check: want http /PATH (printable, no spaces), got 'http healthz'", 1);
	ag_bad(fx, AG_SVC "health_check = http /a b\n", 10, "health_check: want http /PATH", 1);
	ag_bad(fx, AG_SVC "health_interval = 0\n", 10,
	       "health_interval: want seconds between 0.05 and 3600, got '0'", 1);
	ag_bad(fx, AG_SVC "health_timeout = 0\n", 10, "health_timeout: want seconds between", 1);
	ag_bad(fx, AG_SVC "health_fall = 0\n", 10,
	       "health_fall: want a whole number between 1 and 100, got '0'", 1);
	ag_bad(fx, AG_SVC "health_rise = 101\n", 10, "health_rise: want a whole number between 1", 1);
	/* health keys belong to a service, not to [agent] */
	ag_bad(fx,
	       "[agent]\n"                           /* 1 */
	       "gateway = 127.0.0.1:7443\n"          /* 2 */
	       "cert = agent.crt\n"                  /* 3 */
	       "key = agent.key\n"                   /* 4 */
	       "gateway_fingerprint = " FP_A "\n"    /* 5 */
	       "health_check = tcp\n"                /* 6 */
	       "[service web]\ntarget = 127.0.0.1:80\n",
	       6, "unknown key 'health_check' in [agent]", 1);
}

static void test_ag_duplicate_sections(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, AG_BASE "\n[agent]\n", 9, "[agent] appears twice", 1);
	ag_bad(fx,
	       AG_BASE "[service web]\n"             /* 8 */
		       "target = 127.0.0.1:8081\n",  /* 9 */
	       8, "[service web] appears twice", 1);
}

static void test_ag_missing_agent_section(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx, "[service web]\ntarget = 127.0.0.1:8080\n", 1, "missing [agent] section", 1);
	ag_bad(fx, "", 1, "missing [agent] section", 1);
}

static void test_ag_no_service(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx,
	       "; no services\n"                    /* 1 */
	       "[agent]\n"                          /* 2 */
	       "gateway = 127.0.0.1:7443\n"         /* 3 */
	       "cert = a.crt\n"                     /* 4 */
	       "key = a.key\n"                      /* 5 */
	       "gateway_fingerprint = " FP_A "\n",  /* 6 */
	       2, "no [service NAME] section", 1);
}

static void test_ag_msgs_handover(void **state)
{
	struct fixture *fx = *state;
	const char *path = fx_write(fx, "agent.ini", AG_BASE "tunnels = 0\n");
	char *msgs = NULL;
	struct config_agentd *a;

	assert_null(config_agent_load(path, NULL));
	assert_null(config_agent_load(path, &msgs));
	assert_non_null(msgs);
	assert_msg(msgs, path, 8, "tunnels:");
	free(msgs);

	path = fx_write(fx, "agent.ini", AG_BASE);
	msgs = NULL;
	a = config_agent_load(path, &msgs);
	assert_non_null(a);
	assert_null(msgs);
	config_agent_free(a);
	config_agent_free(NULL);
}

/* Errors after strings were allocated: the partial config is freed (the sanitizer build checks). */
static void test_ag_error_frees_partial(void **state)
{
	struct fixture *fx = *state;

	ag_bad(fx,
	       AG_BASE "server_name = gw.example\n"  /* 8 */
		       "ca = ca.pem\n"               /* 9 */
		       "[service two]\n"             /* 10 */
		       "target = unix:/run/x.sock\n" /* 11 */
		       "tls_ca = ca.pem\n"           /* 12 */
		       "tls_server_name = x\n"       /* 13 */
		       "bogus = 1\n",                /* 14 */
	       14, "unknown key 'bogus'", 1);
}

/* ---- config_kind ---- */

static void test_kind(void **state)
{
	struct fixture *fx = *state;
	char path[256];

	assert_int_equal(config_kind(fx_write(fx, "k.ini", GW_BASE)), 'g');
	assert_int_equal(config_kind(fx_write(fx, "k.ini", AG_BASE)), 'a');
	/* [agent NAME] is a gateway's section, not the agent's */
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "; gateway\n"
							   "[agent edge]\n"
							   "fingerprint = " FP_A "\n"
							   "\t[gateway]\n")),
			 'g');
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "\n  [agent]\n")), 'a');
	/* neither */
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "[service web]\ntarget = 10.0.0.1:5\n")),
			 0);
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "; [gateway]\n# [agent]\n")), 0);
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "[agent edge]\n")), 0);
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "")), 0);
	fx_path(fx, "nonexistent.ini", path, sizeof(path));
	assert_int_equal(config_kind(path), 0);
}

/* The loader skips a UTF-8 byte order mark; config_kind must see the same sections. */
static void test_kind_bom(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g = gw_ok(fx, "\xef\xbb\xbf[gateway]\n"
					     "listen = 127.0.0.1:7443\n"
					     "cert = c.pem\n"
					     "key = k.pem\n");

	config_gateway_free(g);
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "\xef\xbb\xbf[gateway]\n")), 'g');
	assert_int_equal(config_kind(fx_write(fx, "k.ini", "\xef\xbb\xbf[agent]\n")), 'a');
}

/* ---- config_find_* ---- */

static void test_find_gateway(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g = gw_ok(fx, GW_BASE "[agent two]\n"
						     "fingerprint = " FP_B "\n"
						     "[service ssh]\n"
						     "listen = 127.0.0.1:2222\n"
						     "agents = two\n");

	assert_ptr_equal(config_find_agent(g, "edge"), &g->agents[0]);
	assert_ptr_equal(config_find_agent(g, "two"), &g->agents[1]);
	assert_fp(config_find_agent(g, "two")->fp, 0xa0);
	assert_null(config_find_agent(g, "Edge"));
	assert_null(config_find_agent(g, "edg"));
	assert_null(config_find_agent(g, ""));
	assert_null(config_find_agent(g, "web"));

	assert_ptr_equal(config_find_service(g, "web"), &g->services[0]);
	assert_ptr_equal(config_find_service(g, "ssh"), &g->services[1]);
	assert_string_equal(config_find_service(g, "ssh")->agents[0], "two");
	assert_null(config_find_service(g, "SSH"));
	assert_null(config_find_service(g, "edge"));
	assert_null(config_find_service(g, ""));
	config_gateway_free(g);
}

static void test_find_target(void **state)
{
	struct fixture *fx = *state;
	struct config_agentd *a = ag_ok(fx, AG_BASE "[service api]\n"
						    "target = [::1]:8443\n");

	assert_ptr_equal(config_find_target(a, "web"), &a->targets[0]);
	assert_ptr_equal(config_find_target(a, "api"), &a->targets[1]);
	assert_addr(&config_find_target(a, "api")->ep[0].addr, "[::1]:8443");
	assert_null(config_find_target(a, "Web"));
	assert_null(config_find_target(a, "we"));
	assert_null(config_find_target(a, ""));
	config_agent_free(a);
}

/* Services told apart by name on one address: sni, host, default, route_timeout. */
#define GW_SNI_A                                      \
	"[service a]\n"                 /* 10 */      \
	"listen = 127.0.0.1:8443\n"     /* 11 */      \
	"agents = edge\n"               /* 12 */      \
	"sni = App.Example.org, *.Clinic.example\n" /* 13 */

static void test_gw_route_accepted(void **state)
{
	struct fixture *fx = *state;
	struct config_gateway *g;
	const struct config_service *a, *b, *c;

	g = gw_ok(fx, GW_BASE "route_timeout = 2.5\n" /* 10 */
			      "[service a]\n"             /* 11 */
			      "listen = 127.0.0.1:8443\n" /* 12 */
			      "agents = edge\n"           /* 13 */
			      "sni = App.Example.org, *.Clinic.example\n"
			      "[service b]\n"
			      "listen = 127.0.0.1:8443\n"
			      "agents = edge\n"
			      "sni = other.example.org\n"
			      "[service c]\n" /* a default without names: takes sni from a, b */
			      "listen = 127.0.0.1:8443\n"
			      "agents = edge\n"
			      "default = yes\n"
			      "[service d]\n" /* host alone on its address */
			      "listen = 127.0.0.1:8444\n"
			      "agents = edge\n"
			      "host = x.example\n");
	assert_true(fabs(g->route_timeout - 2.5) < 1e-9);
	a = config_find_service(g, "a");
	b = config_find_service(g, "b");
	c = config_find_service(g, "c");
	assert_int_equal(a->route, CONFIG_ROUTE_SNI);
	assert_int_equal(a->nnames, 2);
	assert_string_equal(a->names[0], "app.example.org");
	assert_string_equal(a->names[1], "*.clinic.example");
	assert_false(a->is_default || b->is_default);
	assert_true(c->is_default);
	assert_int_equal(c->route, CONFIG_ROUTE_SNI);
	assert_int_equal(c->nnames, 0);
	assert_int_equal(config_find_service(g, "d")->route, CONFIG_ROUTE_HOST);
	config_gateway_free(g);
}

static void test_gw_route_refused(void **state)
{
	struct fixture *fx = *state;

	/* the default route_timeout */
	{
		struct config_gateway *g = gw_ok(fx, GW_BASE);
		assert_true(fabs(g->route_timeout - 10) < 1e-9);
		config_gateway_free(g);
	}
	/* sharing an address without names, as before */
	gw_bad(fx,
	       GW_BASE "[service two]\n"           /* 10 */
		       "listen = 127.0.0.1:8080\n" /* 11 */
		       "agents = edge\n",          /* 12 */
	       10, "[service two]: listen 127.0.0.1:8080 is also [service web]'s", 1);
	/* one with sni, one without */
	gw_bad(fx,
	       GW_BASE GW_SNI_A "[service b]\n"    /* 14 */
			"listen = 127.0.0.1:8443\n" /* 15 */
			"agents = edge\n",          /* 16 */
	       14, "listen 127.0.0.1:8443 is also [service a]'s", 1);
	/* sni and host on one address */
	gw_bad(fx,
	       GW_BASE GW_SNI_A "[service b]\n"    /* 14 */
			"listen = 127.0.0.1:8443\n" /* 15 */
			"agents = edge\n"           /* 16 */
			"host = b.example\n",       /* 17 */
	       17, "[service b]: routed by host on 127.0.0.1:8443, [service a] by sni", 1);
	/* the same name twice on one address, names compared in lower case */
	gw_bad(fx,
	       GW_BASE GW_SNI_A "[service b]\n"    /* 14 */
			"listen = 127.0.0.1:8443\n" /* 15 */
			"agents = edge\n"           /* 16 */
			"sni = b.example, *.CLINIC.example\n", /* 17 */
	       17, "[service b]: name *.clinic.example on 127.0.0.1:8443 is also [service a]'s",
	       1);
	/* two defaults */
	gw_bad(fx,
	       GW_BASE GW_SNI_A "default = yes\n"  /* 14 */
			"[service b]\n"             /* 15 */
			"listen = 127.0.0.1:8443\n" /* 16 */
			"agents = edge\n"           /* 17 */
			"default = on\n",           /* 18 */
	       18, "[service b]: a second default on 127.0.0.1:8443 ([service a] is one)", 1);
	/* a default with no way to read a name */
	gw_bad(fx,
	       GW_BASE "[service b]\n"             /* 10 */
		       "listen = 127.0.0.1:8443\n" /* 11 */
		       "agents = edge\n"           /* 12 */
		       "default = yes\n",          /* 13 */
	       13, "[service b]: default needs sni or host", 1);
	/* sni and host on one service; bad names; first_byte_timeout; a bad default */
	gw_bad(fx, GW_BASE GW_SNI_A "host = a.example\n", 14,
	       "host: the service already has sni", 1);
	gw_bad(fx, GW_BASE GW_SNI_A "sni = a..example\n", 14, "sni: bad name 'a..example'", 1);
	gw_bad(fx, GW_BASE GW_SNI_A "sni = a.*.example\n", 14, "sni: bad name", 1);
	gw_bad(fx, GW_BASE GW_SNI_A "sni = \n", 14, "sni: empty value", 1);
	gw_bad(fx, GW_BASE GW_SNI_A "host = *\n", 14, "host: the service already has sni", 0);
	gw_bad(fx, GW_BASE GW_SNI_A "first_byte_timeout = 5\n", 14,
	       "first_byte_timeout: not used with sni or host", 1);
	gw_bad(fx, GW_BASE GW_SNI_A "default = maybe\n", 14, "default: want yes or no", 1);
	gw_bad(fx, GW_BASE "route_timeout = 0\n", 10, "route_timeout: want seconds", 1);
}

#define fx_test(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest gateway_tests[] = {
		fx_test(test_gw_full),
		fx_test(test_gw_defaults),
		fx_test(test_gw_no_agents_or_services),
		fx_test(test_gw_admin_off),
		fx_test(test_gw_log_levels),
		fx_test(test_gw_relative_paths),
		fx_test(test_gw_repeated_single_keys),
		fx_test(test_gw_ca_mode),
		fx_test(test_gw_limits_accepted),
		fx_test(test_gw_unknown_key),
		fx_test(test_gw_unknown_section),
		fx_test(test_gw_key_outside_section),
		fx_test(test_nul_byte_in_a_line),
		fx_test(test_gw_bad_address),
		fx_test(test_gw_bad_cidr),
		fx_test(test_gw_cidr_host_bits),
		fx_test(test_gw_bad_fingerprint),
		fx_test(test_gw_bad_proxy_protocol),
		fx_test(test_gw_numbers_out_of_range),
		fx_test(test_gw_peer_timeout_not_above_ping),
		fx_test(test_gw_route_accepted),
		fx_test(test_gw_route_refused),
		fx_test(test_gw_service_unknown_agent),
		fx_test(test_gw_service_listen_is_tunnel_listen),
		fx_test(test_gw_missing_required_keys),
		fx_test(test_gw_duplicate_sections),
		fx_test(test_gw_missing_gateway_section),
		fx_test(test_gw_several_errors_reported),
		fx_test(test_gw_missing_file),
		fx_test(test_gw_msgs_handover),
	};
	const struct CMUnitTest agent_tests[] = {
		fx_test(test_ag_full),
		fx_test(test_ag_defaults),
		fx_test(test_ag_admin_off),
		fx_test(test_ag_ca_mode),
		fx_test(test_ag_repeated_keys),
		fx_test(test_ag_tunnels_bounds),
		fx_test(test_ag_unix_target),
		fx_test(test_ag_unix_tls_server_name),
		fx_test(test_ag_target_host_name),
		fx_test(test_ag_stream_window),
		fx_test(test_memory_budget),
		fx_test(test_gw_crl),
		fx_test(test_ag_unknown_key),
		fx_test(test_ag_unknown_section),
		fx_test(test_ag_key_outside_section),
		fx_test(test_ag_bad_address),
		fx_test(test_ag_bad_fingerprint),
		fx_test(test_ag_bad_tls_options),
		fx_test(test_ag_numbers_out_of_range),
		fx_test(test_ag_timing_checks),
		fx_test(test_ag_missing_required_keys),
		fx_test(test_ag_duplicate_sections),
		fx_test(test_ag_several_targets),
		fx_test(test_ag_bad_targets),
		fx_test(test_ag_bad_health),
		fx_test(test_ag_missing_agent_section),
		fx_test(test_ag_no_service),
		fx_test(test_ag_msgs_handover),
		fx_test(test_ag_error_frees_partial),
	};
	const struct CMUnitTest helper_tests[] = {
		fx_test(test_kind),
		fx_test(test_kind_bom),
		fx_test(test_find_gateway),
		fx_test(test_find_target),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("gateway", gateway_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("agent", agent_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("helpers", helper_tests, NULL, NULL);
	return failed;
}
