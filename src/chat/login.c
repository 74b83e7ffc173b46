/* Registration: CAP, SASL PLAIN, PASS, NICK, USER and REGISTER, the welcome, and the
 * password checks handed to the worker (auth.h) with the delay after a failure. */
#include <event2/buffer.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/channel.h"
#include "chat/login.h"
#include "chat/peer.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"

static bool is_operator(const struct chat *ch, const char *account)
{
	for (size_t i = 0; i < ch->cfg->noperators; i++)
		if (irc_casecmp(ch->cfg->operators[i], account) == 0)
			return true;
	return false;
}

static void welcome(struct client *c)
{
	struct chat *ch = c->ch;
	char text[256], pfx[128], n1[16], n2[16], n3[16], n4[16];
	char lnick[LOG_VALUE_SIZE(IRC_NICK_MAX)], lacc[LOG_VALUE_SIZE(IRC_NICK_MAX)];

	c->registered = true;
	if (c->pass != NULL)
		explicit_bzero(c->pass, c->passlen);
	free(c->pass);
	c->pass = NULL;
	c->passlen = 0;
	c->oper = c->account[0] != '\0' && is_operator(ch, c->account);
	peer_prefix(c, pfx, sizeof(pfx));
	snprintf(text, sizeof(text), "Welcome to the netwall chat %s", pfx);
	peer_numeric(c, "001", text, NULL);
	snprintf(text, sizeof(text), "Your host is %s, running netwall", ch->cfg->server_name);
	peer_numeric(c, "002", text, NULL);
	snprintf(text, sizeof(text), "This server was created %s", ch->created);
	peer_numeric(c, "003", text, NULL);
	peer_numeric(c, "004", ch->cfg->server_name, "netwall", "io", "bnot", NULL);
	snprintf(n1, sizeof(n1), "NICKLEN=%d", IRC_NICK_MAX);
	snprintf(n2, sizeof(n2), "CHANNELLEN=%d", IRC_CHANNEL_MAX);
	snprintf(n3, sizeof(n3), "TOPICLEN=%d", CHAT_TOPIC_MAX);
	snprintf(n4, sizeof(n4), "CHANLIMIT=#&:%llu", (unsigned long long)ch->cfg->max_channels);
	peer_numeric(c, "005", "CASEMAPPING=rfc1459", "CHANTYPES=#&", "PREFIX=(o)@", "CHANMODES=b,,,nt",
		n1, n2, n3, n4, "NETWORK=netwall", "are supported by this server", NULL);
	peer_numeric(c, "422", "MOTD File is missing", NULL);
	if (c->oper)
		peer_numeric(c, "381", "You are now an IRC operator", NULL);
	log_info("event=registered peer=%s nick=%s account=%s", c->host,
		 log_value(lnick, sizeof(lnick), c->nick),
		 c->account[0] ? log_value(lacc, sizeof(lacc), c->account) : "-");
	peer_timer_arm(c, ch->cfg->ping_interval);
}

/* Holds c while its check or the answer to a failure is pending: it is not read, so none of
 * its commands run meanwhile. Releasing reads what arrived in the meantime. */
static void auth_hold(struct client *c, bool on)
{
	struct chat *ch = c->ch;

	if (c->auth_wait == on)
		return;
	c->auth_wait = on;
	if (on) {
		ch->auth_waiting++;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	ch->auth_waiting--;
	if (c->closing || c->budget_wait)
		return;
	bufferevent_enable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}

/* The record of key (made, or the oldest replaced, if absent); its count restarts after
 * CHAT_FAIL_FORGET. A linear walk of CHAT_FAIL_SLOTS, once per failed login. */
static struct fail_rec *fail_find(struct chat *ch, const char *key, double now)
{
	struct fail_rec *old = &ch->fails[0];

	for (size_t i = 0; i < CHAT_FAIL_SLOTS; i++) {
		struct fail_rec *r = &ch->fails[i];
		if (strcmp(r->key, key) == 0) {
			if (now - r->last > CHAT_FAIL_FORGET)
				r->n = 0;
			return r;
		}
		if (r->last < old->last)
			old = r;
	}
	snprintf(old->key, sizeof(old->key), "%s", key);
	old->n = 0;
	return old;
}

/* Counts a failed login of c's address and of account; returns the delay before its
 * answer: CHAT_FAIL_DELAY doubled for each earlier failure of either, at most
 * CHAT_FAIL_DELAY_MAX. */
static double fail_count(struct client *c, const char *account)
{
	struct chat *ch = c->ch;
	double now = clock_mono(), delay = CHAT_FAIL_DELAY;
	char key[CHAT_FAIL_KEY];
	struct fail_rec *src, *acc;
	unsigned n;

	snprintf(key, sizeof(key), "s:%s", c->host);
	src = fail_find(ch, key, now);
	src->n++;
	src->last = now;
	key[0] = 'a';
	irc_casefold(key + 2, account, sizeof(key) - 2);
	acc = fail_find(ch, key, now);
	acc->n++;
	acc->last = now;
	n = src->n > acc->n ? src->n : acc->n;
	while (--n > 0 && delay < CHAT_FAIL_DELAY_MAX)
		delay *= 2;
	return delay < CHAT_FAIL_DELAY_MAX ? delay : CHAT_FAIL_DELAY_MAX;
}

/* The answer to a failed login, the same for every cause (unknown account, wrong or no
 * password, malformed SASL) so that accounts cannot be told apart. PASS: 464 and the end
 * of the connection; SASL: 904, and the end after CHAT_LOGIN_TRIES failures. */
void login_refuse(struct client *c, enum auth_kind kind)
{
	struct chat *ch = c->ch;
	double left = ch->cfg->register_timeout - (clock_mono() - c->started);

	ch->logins_failed++;
	c->fails++;
	auth_hold(c, false);
	if (kind == AUTH_PASS) {
		peer_numeric(c, "464", "Password incorrect", NULL);
		peer_close(c, "Bad password");
		return;
	}
	peer_numeric(c, "904", "SASL authentication failed", NULL);
	if (c->fails >= CHAT_LOGIN_TRIES)
		peer_close(c, "Too many failed logins");
	else if (!c->closing) /* the answer's delay used the registration timer */
		peer_timer_arm(c, left > 0.01 ? left : 0.01);
}

/* A check failed: logged, counted, answered after the delay (c stays held meanwhile). */
static void login_failed(struct client *c, enum auth_kind kind, const char *account)
{
	char acc[LOG_VALUE_SIZE(IRC_NICK_MAX)];
	double delay = fail_count(c, account);

	log_limited(&c->ch->rate, LOG_WARN,
		    "event=login_failed peer=%s account=%s via=%s delay=%.2f", c->host,
		    log_value(acc, sizeof(acc), account), kind == AUTH_PASS ? "pass" : "sasl",
		    delay);
	c->answer = kind;
	c->answer_due = true;
	auth_hold(c, true);
	peer_timer_arm(c, delay);
}

/* Where the checks go. The worker has AUTH_QUEUE_MAX places; ch->checks records the source
 * of each job queued or running. A job may start when (1) its source network (the
 * configured source_prefix_v4/v6, as everywhere else in the chat) has fewer than
 * CHAT_CHECKS_PER_SOURCE jobs, (2) there is a free place, and (3) unless it is a known
 * account's check, fewer than AUTH_QUEUE_MAX - CHAT_CHECKS_KNOWN jobs are not known
 * accounts': a flood of decoys (unknown accounts) cannot take the places of real logins,
 * and the worker runs known accounts' checks ahead of the rest (auth_submit). A login
 * that cannot start waits, held and not read, on ch->check_wait, and starts when a place
 * frees: the waiting known accounts first, then the source networks with the fewest jobs,
 * the oldest first (one busy network cannot starve another). A login still waiting, or
 * still being checked, at its registration deadline is told the server is busy. */

/* Jobs of c's source network queued or running; sets *free_slot (AUTH_QUEUE_MAX if none)
 * and *unknown, the jobs for unknown accounts. A walk of AUTH_QUEUE_MAX. */
static unsigned checks_count(struct client *c, size_t *free_slot, unsigned *unknown)
{
	struct chat *ch = c->ch;
	unsigned n = 0;

	*free_slot = AUTH_QUEUE_MAX;
	*unknown = 0;
	for (size_t i = 0; i < AUTH_QUEUE_MAX; i++) {
		if (ch->checks[i].id == 0) {
			*free_slot = *free_slot < AUTH_QUEUE_MAX ? *free_slot : i;
			continue;
		}
		*unknown += !ch->checks[i].known;
		n += addr_same_net((const struct sockaddr *)&ch->checks[i].src,
				   (const struct sockaddr *)&c->src,
				   (unsigned)ch->cfg->source_prefix_v4,
				   (unsigned)ch->cfg->source_prefix_v6);
	}
	return n;
}

/* May c's job start now (rules above)? Returns its place in ch->checks, or -1; *n is the
 * jobs of its source network. */
static int checks_fit(struct client *c, bool known, unsigned *n)
{
	size_t slot;
	unsigned unknown;

	*n = checks_count(c, &slot, &unknown);
	if (*n >= CHAT_CHECKS_PER_SOURCE || slot == AUTH_QUEUE_MAX)
		return -1;
	if (!known && unknown >= AUTH_QUEUE_MAX - CHAT_CHECKS_KNOWN)
		return -1;
	return (int)slot;
}

/* Records j in ch->checks at slot and hands it to the worker (which takes ownership). */
static void checks_submit(struct client *c, struct auth_job *j, size_t slot)
{
	struct chat *ch = c->ch;

	ch->checks[slot].src = c->src;
	ch->checks[slot].id = c->id;
	ch->checks[slot].known = j->known;
	if (auth_submit(ch->auth, j) == -1) /* ch->checks mirrors the worker's queue */
		abort();
}

static void check_wait_unlink(struct client *c)
{
	struct chat *ch = c->ch;

	if (c->check_prev != NULL)
		c->check_prev->check_next = c->check_next;
	else
		ch->check_wait = c->check_next;
	if (c->check_next != NULL)
		c->check_next->check_prev = c->check_prev;
	else
		ch->check_wait_tail = c->check_prev;
	c->check_prev = c->check_next = NULL;
	ch->held -= sizeof(*c->check_job);
}

/* c leaves the wait list, its job wiped and dropped (c closed, or at its deadline). */
void login_check_drop(struct client *c)
{
	if (c->check_job == NULL)
		return;
	check_wait_unlink(c);
	auth_job_free(c->check_job);
	c->check_job = NULL;
}

/* Starts the waiting logins that fit, best first: known accounts, then the fewest jobs
 * from the same source network, then the oldest. A walk of the wait list (at most
 * max_clients entries, AUTH_QUEUE_MAX comparisons each) per start, run only when a check
 * ends (each check is an scrypt, about a tenth of a second). */
static void checks_next(struct chat *ch)
{
	for (;;) {
		struct client *best = NULL;
		unsigned best_n = 0;
		int best_slot = -1;

		for (struct client *w = ch->check_wait; w != NULL; w = w->check_next) {
			unsigned n;
			int slot = checks_fit(w, w->check_job->known, &n);

			if (slot == -1 || w->closing)
				continue;
			if (best == NULL || (w->check_job->known && !best->check_job->known) ||
			    (w->check_job->known == best->check_job->known && n < best_n)) {
				best = w;
				best_n = n;
				best_slot = slot;
				if (w->check_job->known && n == 0)
					break; /* none can be better */
			}
		}
		if (best == NULL)
			return;
		check_wait_unlink(best);
		checks_submit(best, best->check_job, (size_t)best_slot);
		best->check_job = NULL;
	}
}

static void checks_release(struct chat *ch, uint64_t id)
{
	for (size_t i = 0; i < AUTH_QUEUE_MAX; i++)
		if (ch->checks[i].id == id)
			ch->checks[i].id = 0;
	checks_next(ch);
}

/* Hands a check to the worker and holds c until its answer. encoded NULL: a decoy of the
 * same cost (an unknown account). A login that cannot start (see above) waits for a place,
 * held; a REGISTER is answered TEMPORARILY_UNAVAILABLE at once instead (the client is
 * registered or may retry). */
static void auth_start(struct client *c, enum auth_kind kind, const char *name,
		       const char *password, size_t len, const char *encoded)
{
	struct chat *ch = c->ch;
	struct auth_job *j = auth_job_new();
	unsigned n;
	int slot;

	j->id = c->id;
	j->kind = kind;
	j->known = encoded != NULL && kind != AUTH_REGISTER;
	snprintf(j->name, sizeof(j->name), "%s", name);
	j->len = len < PASSWD_MAX_LEN ? len : PASSWD_MAX_LEN;
	memcpy(j->password, password, j->len);
	snprintf(j->encoded, sizeof(j->encoded), "%s", encoded != NULL ? encoded : ch->decoy);
	j->file = ch->cfg->accounts;
	slot = checks_fit(c, j->known, &n);
	if (slot != -1) {
		checks_submit(c, j, (size_t)slot);
	} else if (kind == AUTH_REGISTER) {
		auth_job_free(j);
		ch->logins_busy++;
		log_limited(&ch->rate, LOG_WARN, "event=login_busy peer=%s", c->host);
		peer_send(c, NULL, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", "*",
		      "Busy, try again", NULL);
		return;
	} else {
		c->check_job = j;
		c->check_prev = ch->check_wait_tail;
		if (ch->check_wait_tail != NULL)
			ch->check_wait_tail->check_next = c;
		else
			ch->check_wait = c;
		ch->check_wait_tail = c;
		ch->held += sizeof(*j);
	}
	auth_hold(c, true);
}

static struct client *client_by_id(struct chat *ch, uint64_t id)
{
	for (struct client *o = ch->clients; o != NULL; o = o->next)
		if (o->id == id)
			return o;
	return NULL;
}

static void register_done(struct client *c, struct auth_job *j)
{
	struct chat *ch = c->ch;
	char nick[LOG_VALUE_SIZE(IRC_NICK_MAX)];

	auth_hold(c, false);
	if (j->result == AUTH_EXISTS) {
		peer_send(c, NULL, "FAIL", "REGISTER", "ACCOUNT_EXISTS", j->name,
		      "Account already exists", NULL);
	} else if (j->result != AUTH_OK) {
		log_error("event=register_failed nick=%s error=\"%s\"",
			  log_value(nick, sizeof(nick), j->name), j->err);
		peer_send(c, NULL, "FAIL", "REGISTER", "TEMPORARILY_UNAVAILABLE", j->name,
		      "The account could not be stored", NULL);
	} else {
		snprintf(c->account, sizeof(c->account), "%s", j->name);
		log_info("event=account_registered peer=%s nick=%s", c->host,
			 log_value(nick, sizeof(nick), j->name));
		peer_send(c, NULL, "REGISTER", "SUCCESS", j->name, "Account created", NULL);
	}
	(void)ch;
}

static void login_done(struct client *c, struct auth_job *j)
{
	char pfx[128];

	if (j->result != AUTH_OK) {
		login_failed(c, j->kind, j->name);
		return;
	}
	auth_hold(c, false);
	snprintf(c->account, sizeof(c->account), "%s", j->name);
	if (j->kind == AUTH_PASS) {
		welcome(c);
		return;
	}
	peer_prefix(c, pfx, sizeof(pfx));
	peer_numeric(c, "900", pfx, c->account, "You are now logged in", NULL);
	peer_numeric(c, "903", "SASL authentication successful", NULL);
}

/* A finished job, on the loop: a REGISTER's new accounts are taken whoever asked; the
 * client, if still there, gets its answer. */
void login_auth_done(struct auth_job *j, void *arg)
{
	struct chat *ch = arg;
	struct client *c = client_by_id(ch, j->id);

	checks_release(ch, j->id);
	if (j->kind == AUTH_REGISTER && j->result == AUTH_OK) {
		if (ch->accounts != NULL)
			explicit_bzero(ch->accounts, ch->naccounts * sizeof(*ch->accounts));
		free(ch->accounts);
		ch->accounts = j->accounts;
		ch->naccounts = j->naccounts;
		j->accounts = NULL;
	}
	if (c != NULL && !c->closing) {
		if (j->kind == AUTH_REGISTER)
			register_done(c, j);
		else
			login_done(c, j);
	}
	auth_job_free(j);
}

/* NICK and USER known and CAP not open: check the password (on the worker), then
 * welcome. Without open_registration a nickname without an account is checked against a
 * decoy, so that it fails like a wrong password, as slowly. */
static void try_register(struct client *c)
{
	struct chat *ch = c->ch;
	const struct passwd_account *a;

	if (c->registered || c->cap_open || c->auth_wait || c->nick[0] == '\0' ||
	    c->user[0] == '\0')
		return;
	if (c->account[0] == '\0') {
		a = passwd_find(ch->accounts, ch->naccounts, c->nick);
		if (a != NULL || !ch->cfg->open_registration) {
			auth_start(c, AUTH_PASS, a != NULL ? a->name : c->nick,
				   c->pass != NULL ? c->pass : "", c->passlen,
				   a != NULL ? a->encoded : NULL);
			return;
		}
	} else if (irc_casecmp(c->account, c->nick) != 0 &&
		   passwd_find(ch->accounts, ch->naccounts, c->nick) != NULL) {
		/* logged in by SASL as someone else, asking for another account's nickname */
		peer_numeric(c, "433", c->nick, "Nickname belongs to another account", NULL);
		c->nick[0] = '\0';
		return;
	}
	welcome(c);
}

void login_cap(struct client *c, struct irc_msg *m)
{
	const char *sub = m->nparams > 0 ? m->params[0] : "";

	if (strcmp(sub, "LS") == 0) {
		if (!c->registered)
			c->cap_open = true;
		peer_send(c, NULL, "CAP", c->nick[0] ? c->nick : "*", "LS", "sasl", NULL);
	} else if (strcmp(sub, "LIST") == 0) {
		peer_send(c, NULL, "CAP", c->nick[0] ? c->nick : "*", "LIST", "", NULL);
	} else if (strcmp(sub, "REQ") == 0 && m->nparams > 1) {
		bool ok = strcmp(m->params[1], "sasl") == 0;
		if (!c->registered)
			c->cap_open = true;
		peer_send(c, NULL, "CAP", c->nick[0] ? c->nick : "*", ok ? "ACK" : "NAK", m->params[1],
		      NULL);
	} else if (strcmp(sub, "END") == 0) {
		c->cap_open = false;
		try_register(c);
	} else {
		peer_numeric(c, "410", sub, "Invalid CAP command", NULL);
	}
}

void login_authenticate(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *arg = m->nparams > 0 ? m->params[0] : "";
	unsigned char raw[CHAT_SASL_MAX];
	const struct passwd_account *a;
	const char *authc, *pw;
	size_t len, n;
	int dec;

	if (c->registered) {
		peer_numeric(c, "907", "You have already authenticated", NULL);
		return;
	}
	if (!c->sasl_wait) {
		if (strcmp(arg, "PLAIN") != 0) {
			peer_numeric(c, "908", "PLAIN", "are available SASL mechanisms", NULL);
			peer_numeric(c, "904", "SASL authentication failed", NULL);
			return;
		}
		c->sasl_wait = true;
		peer_write(c, "AUTHENTICATE +\r\n", 16);
		return;
	}
	c->sasl_wait = false;
	len = strlen(arg);
	if (len == 0 || len > (sizeof(raw) / 3) * 4 || strcmp(arg, "*") == 0) {
		peer_numeric(c, "906", "SASL authentication aborted", NULL);
		return;
	}
	dec = EVP_DecodeBlock(raw, (const unsigned char *)arg, (int)len);
	if (dec < 0) {
		login_refuse(c, AUTH_SASL);
		return;
	}
	n = (size_t)dec;
	while (n > 0 && len > 0 && arg[len - 1] == '=') { /* padding decoded as zero bytes */
		n--;
		len--;
	}
	/* authzid NUL authcid NUL password */
	authc = memchr(raw, 0, n);
	pw = authc != NULL ? memchr(authc + 1, 0, n - (size_t)((const unsigned char *)authc + 1 - raw))
			   : NULL;
	if (authc == NULL || pw == NULL) {
		explicit_bzero(raw, sizeof(raw));
		login_refuse(c, AUTH_SASL);
		return;
	}
	authc++;
	pw++;
	/* authc ends at the NUL before pw: a C string */
	a = passwd_find(ch->accounts, ch->naccounts, authc);
	auth_start(c, AUTH_SASL, a != NULL ? a->name : authc, pw,
		   n - (size_t)((const unsigned char *)pw - raw), a != NULL ? a->encoded : NULL);
	explicit_bzero(raw, sizeof(raw));
}

void login_nick(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *nick = m->nparams > 0 ? m->params[0] : "";
	struct client *o;
	char pfx[128];

	if (nick[0] == '\0') {
		peer_numeric(c, "431", "No nickname given", NULL);
		return;
	}
	if (!irc_nick_valid(nick)) {
		peer_numeric(c, "432", nick, "Erroneous nickname", NULL);
		return;
	}
	o = peer_by_nick(ch, nick);
	if (o != NULL && o != c) {
		peer_numeric(c, "433", nick, "Nickname is already in use", NULL);
		return;
	}
	if (c->registered) {
		const struct passwd_account *a = passwd_find(ch->accounts, ch->naccounts, nick);
		if (a != NULL && irc_casecmp(a->name, c->account) != 0) {
			peer_numeric(c, "433", nick, "Nickname belongs to an account", NULL);
			return;
		}
		peer_prefix(c, pfx, sizeof(pfx));
		ch->scratch.off = ch->scratch.len = 0;
		{
			const char *p[1] = { nick };
			irc_format(&ch->scratch, pfx, "NICK", p, 1, false);
		}
		channel_send_peers(c, true);
		snprintf(c->nick, sizeof(c->nick), "%s", nick);
		return;
	}
	snprintf(c->nick, sizeof(c->nick), "%s", nick);
	try_register(c);
}

/* USER <user> <mode> <unused> <realname>: before registration, with its four parameters
 * (command.c checks both). */
void login_user(struct client *c, struct irc_msg *m)
{
	snprintf(c->user, sizeof(c->user), "%s", m->params[0]);
	for (char *p = c->user; *p; p++)
		if (*p == '@' || *p == '!' || (unsigned char)*p < 0x21)
			*p = '_';
	snprintf(c->real, sizeof(c->real), "%s", m->params[3]);
	try_register(c);
}

/* PASS <password>: before registration (command.c checks it and the parameter); kept,
 * capped at PASSWD_MAX_LEN, until the check at registration. */
void login_pass(struct client *c, struct irc_msg *m)
{
	size_t n;

	n = strlen(m->params[0]);
	if (n > PASSWD_MAX_LEN)
		n = PASSWD_MAX_LEN;
	if (c->pass != NULL)
		explicit_bzero(c->pass, c->passlen);
	free(c->pass);
	c->pass = xmalloc(n + 1);
	memcpy(c->pass, m->params[0], n);
	c->pass[n] = '\0';
	c->passlen = n;
	explicit_bzero(m->params[0], strlen(m->params[0]));
}

/* REGISTER <account> <email|*> <password> (IRCv3 account-registration): with
 * open_registration, a client creates an account for its nickname ("*" or the nickname
 * itself); from then on the nickname needs the password. Over TLS only, so the password
 * never crosses the network in clear (plaintext listeners are for loopback and tunnels:
 * those may register too). */
void login_register(struct client *c, struct irc_msg *m)
{
	struct chat *ch = c->ch;
	const char *name;
	size_t n;

	if (!ch->cfg->open_registration || ch->cfg->accounts == NULL) {
		peer_send(c, NULL, "FAIL", "REGISTER", "DISALLOWED", "*", "Registration is closed here",
		      NULL);
		return;
	}
	if (m->nparams < 3) {
		peer_numeric(c, "461", "REGISTER", "Not enough parameters", NULL);
		return;
	}
	if (c->nick[0] == '\0' || c->account[0] != '\0') {
		peer_send(c, NULL, "FAIL", "REGISTER", "ALREADY_AUTHENTICATED", "*",
		      "Choose a nickname first, and do not log in", NULL);
		return;
	}
	name = strcmp(m->params[0], "*") == 0 ? c->nick : m->params[0];
	if (irc_casecmp(name, c->nick) != 0) {
		peer_send(c, NULL, "FAIL", "REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", name,
		      "The account is named after your nickname", NULL);
		return;
	}
	if (passwd_find(ch->accounts, ch->naccounts, name) != NULL) {
		peer_send(c, NULL, "FAIL", "REGISTER", "ACCOUNT_EXISTS", name, "Account already exists",
		      NULL);
		return;
	}
	n = strlen(m->params[2]);
	if (n < PASSWD_MIN_LEN || n > PASSWD_MAX_LEN) {
		explicit_bzero(m->params[2], n);
		peer_send(c, NULL, "FAIL", "REGISTER", "WEAK_PASSWORD", name,
		      "The password must have 8 to 256 characters", NULL);
		return;
	}
	/* hashing, storing and reading the file again happen on the worker */
	auth_start(c, AUTH_REGISTER, name, m->params[2], n, NULL);
	explicit_bzero(m->params[2], n);
}
