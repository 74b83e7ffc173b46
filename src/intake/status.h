/* The intake's admin endpoints: /metrics, /status JSON, the status page, health. */
#ifndef NETWALL_INTAKE_STATUS_H
#define NETWALL_INTAKE_STATUS_H
#include "core/admin.h"

/* The admin views (register_metrics, page_body, status_json, health); their arg is the
 * struct intake. */
extern const struct admin_ops status_admin_ops;

#endif
