/* The gateway's admin views (gateway_status.c). */
#ifndef NETWALL_GATEWAY_STATUS_H
#define NETWALL_GATEWAY_STATUS_H

#include "core/admin.h"

/* /metrics, /status, the page and /healthz of a gateway (arg: the struct gateway). */
extern const struct admin_ops gateway_status_ops;

#endif
