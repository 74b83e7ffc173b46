/* The gateway's steps of a handover. The old process, once the new one polls the sockets
 * (taken): stops accepting tunnels and moves its own (TUNNEL_PING_MOVE): each agent dials
 * a replacement, which only the new process accepts, and keeps the old tunnel, over which
 * the old process goes on carrying visitors. The new process takes no visitors until
 * every agent of every service has a tunnel to it (ready) or HANDOVER_WAIT has passed;
 * then it serves, and the old one drains and closes its tunnels as it exits. If the new
 * process goes away first, the old one takes tunnels again, and each moved tunnel retires
 * once its slot's replacement is back (gw_tunnel_up). */
#include <stdbool.h>
#include <string.h>

#include "core/listener.h"
#include "core/log.h"
#include "wall/gateway_state.h"
#include "wall/gateway_handover.h"
#include "wall/gateway_route.h"
#include "wall/tunnel.h"

static void gw_ho_tunnel_listeners(struct gateway *gw, bool on)
{
	for (size_t i = 0; i < gw->ntls; i++)
		listener_enable(gw->tls[i]->l, on);
}

static void gw_ho_visitor_listeners(struct gateway *gw, bool on)
{
	for (size_t i = 0; i < gw->nsvcs; i++)
		for (size_t j = 0; j < gw->svcs[i]->nls; j++)
			listener_enable(gw->svcs[i]->ls[j]->l, on);
	for (size_t i = 0; i < gw->nroutes; i++)
		gateway_route_enable(gw->routes[i], on);
}

void gateway_handover_taken(void *arg)
{
	struct gateway *gw = arg;

	gw_ho_tunnel_listeners(gw, false);
	for (size_t i = 0; i < gw->ntunnels; i++)
		tunnel_move(gw->tunnels[i]);
	gw->handed_over = true;
	log_info("event=handover_tunnels_moved tunnels=%zu", gw->ntunnels);
}

void gateway_handover_aborted(void *arg)
{
	struct gateway *gw = arg;

	gw->handed_over = false;
	gw_ho_tunnel_listeners(gw, true);
}

void gateway_handover_hold(void *arg)
{
	gw_ho_visitor_listeners(arg, false);
}

/* True when every agent allowed for a service has a tunnel up to us that announced it. */
bool gateway_handover_ready(void *arg)
{
	struct gateway *gw = arg;

	for (size_t i = 0; i < gw->nsvcs; i++) {
		const struct config_service *c = &gw->svcs[i]->cfg;
		for (size_t j = 0; j < c->nagents; j++) {
			bool up = false;
			for (size_t k = 0; k < gw->ntunnels && !up; k++) {
				struct tunnel *t = gw->tunnels[k];
				up = tunnel_is_up(t) && !tunnel_is_retiring(t) &&
				     strcmp(tunnel_peer(t), c->agents[j]) == 0 &&
				     tunnel_serves(t, c->name);
			}
			if (!up)
				return false;
		}
	}
	return true;
}

void gateway_handover_serve(void *arg)
{
	gw_ho_visitor_listeners(arg, true);
}

void gateway_handover_drain(struct gateway *gw)
{
	if (gw->handed_over)
		gw_ho_visitor_listeners(gw, false);
}

bool gateway_handover_idle(struct gateway *gw)
{
	for (size_t i = 0; i < gw->nsvcs && gw->handed_over; i++)
		if (listener_set_stats(gw->svcs[i]->set)->open > 0)
			return false;
	for (size_t i = 0; i < gw->nroutes && gw->handed_over; i++)
		if (gateway_route_waiting(gw->routes[i]) > 0)
			return false;
	return true;
}

void gateway_handover_tunnel_up(struct gateway *gw, struct tunnel *t)
{
	if (gw->handed_over) /* it was in its handshake when the sockets went */
		tunnel_move(t);
}
