/* The services of a gateway that share a listen address (see config_route.h). */
#include "wall/config_route.h"

#include <stdio.h>
#include <string.h>

struct route_ctx {
	struct conf *cf;
	struct config_service *s;
};

static int gw_name_item(const char *item, void *arg)
{
	struct route_ctx *x = arg;
	const char *key = x->s->route == CONFIG_ROUTE_SNI ? "sni" : "host";
	char *name;

	if (!sni_name_ok(item, true)) {
		conf_error(x->cf, "%s: bad name '%s' (want a DNS name, or *.NAME for one label "
				  "more)",
			   key, item);
		return -1;
	}
	if (x->s->nnames == CONFIG_MAX_LIST) {
		conf_error(x->cf, "%s: more than %d names", key, CONFIG_MAX_LIST);
		return -1;
	}
	name = x->s->names[x->s->nnames++];
	for (size_t i = 0; item[i] != '\0'; i++)
		name[i] = (char)(item[i] >= 'A' && item[i] <= 'Z' ? item[i] - 'A' + 'a' : item[i]);
	return 0;
}

void config_route_names(struct conf *cf, struct config_service *s, const char *key,
			   const char *v)
{
	struct route_ctx x = { cf, s };
	enum config_route r = key[0] == 's' ? CONFIG_ROUTE_SNI : CONFIG_ROUTE_HOST;

	if (s->route != CONFIG_ROUTE_NONE && s->route != r) {
		conf_error(cf, "%s: the service already has %s (a service is routed by one)", key,
			   r == CONFIG_ROUTE_SNI ? "host" : "sni");
		return;
	}
	if (v[0] == '\0') {
		conf_error(cf, "%s: empty value (want names, e.g. app.example.org, *.example.org)",
			   key);
		return;
	}
	s->route = r;
	s->route_line = cf->line;
	conf_list(v, gw_name_item, &x);
}

static bool route_listens(const struct config_service *s, const struct addr *a)
{
	for (size_t j = 0; j < s->nlisten; j++)
		if (addr_equal(&s->listen[j], a))
			return true;
	return false;
}

/* The first service before index i that listens on a, or NULL. */
static struct config_service *route_sharer(struct config_service *svcs, size_t i,
					   const struct addr *a)
{
	for (size_t k = 0; k < i; k++)
		if (route_listens(&svcs[k], a))
			return &svcs[k];
	return NULL;
}

/* Services sharing a listen address: told apart the same way (a default without names of
 * its own takes its neighbours' way), by names none of them repeats, one default at most. */
static void route_check_shared(struct conf *cf, struct config_service *svcs, size_t i,
			       const struct addr *a)
{
	struct config_service *s = &svcs[i], *o = route_sharer(svcs, i, a);
	char as[ADDR_STRLEN];

	if (o == NULL)
		return;
	addr_format((const struct sockaddr *)&a->ss, as, sizeof(as));
	if (s->route == CONFIG_ROUTE_NONE && s->is_default)
		s->route = o->route;
	if (o->route == CONFIG_ROUTE_NONE && o->is_default)
		o->route = s->route;
	if (s->route == CONFIG_ROUTE_NONE || o->route == CONFIG_ROUTE_NONE) {
		conf_error(cf, "[service %s]: listen %s is also [service %s]'s (services share an "
			       "address only when each sets sni or host)",
			   s->name, as, o->name);
		return;
	}
	for (size_t k = 0; k < i; k++) {
		struct config_service *t = &svcs[k];
		if (!route_listens(t, a))
			continue;
		if (t->route != s->route)
			conf_error(cf, "[service %s]: routed by %s on %s, [service %s] by %s (all "
				       "services of an address use the same)",
				   s->name, s->route == CONFIG_ROUTE_SNI ? "sni" : "host", as,
				   t->name, t->route == CONFIG_ROUTE_SNI ? "sni" : "host");
		if (t->is_default && s->is_default) {
			int line = cf->line;
			cf->line = s->default_line;
			conf_error(cf, "[service %s]: a second default on %s ([service %s] is one)",
				   s->name, as, t->name);
			cf->line = line;
		}
		for (size_t m = 0; m < s->nnames; m++)
			for (size_t n = 0; n < t->nnames; n++)
				if (strcmp(s->names[m], t->names[n]) == 0)
					conf_error(cf, "[service %s]: name %s on %s is also [service "
						       "%s]'s",
						   s->name, s->names[m], as, t->name);
	}
}

void config_route_check(struct conf *cf, struct config_service *svcs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct config_service *s = &svcs[i];
		for (size_t j = 0; j < s->nlisten; j++) {
			cf->line = s->route_line != 0 ? s->route_line : s->line;
			route_check_shared(cf, svcs, i, &s->listen[j]);
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct config_service *s = &svcs[i];
		if (s->is_default && s->route == CONFIG_ROUTE_NONE) {
			cf->line = s->default_line;
			conf_error(cf, "[service %s]: default needs sni or host (or a service "
				       "sharing its address that sets one)",
				   s->name);
		}
		if (s->route != CONFIG_ROUTE_NONE && s->first_byte_timeout > 0) {
			cf->line = s->fbt_line;
			conf_error(cf, "first_byte_timeout: not used with sni or host (the "
				       "gateway's route_timeout bounds the wait for the name)");
		}
	}
}
