/* The intake's memory budget: every byte a peer makes the intake hold is counted, and at
 * memory_budget reading stops until bytes go (one connection may read past it to finish
 * its frame; senders stalled mid-frame at the budget are closed). */
#ifndef NETWALL_INTAKE_BUDGET_H
#define NETWALL_INTAKE_BUDGET_H
#include "intake/state.h"

/* Brings c's share of in->held up to date; call after anything that changes it. */
void budget_account(struct conn *c);
/* Bytes went: connections stopped for the budget are pumped again, from the loop. */
void budget_released(struct intake *in);
/* At the budget with nobody allowed past it: the resume event chooses one connection. */
void budget_want_overdraft(struct intake *in);
/* c no longer reads past the budget (its frame is whole, or it closes): another may. */
void budget_drop_overdraft(struct conn *c);
/* True if feeding k more bytes to c's framer keeps the budget. */
bool budget_fits(const struct intake *in, const struct conn *c, size_t k);
/* Watches for the peer's close while c is not read for the budget. */
void budget_watch_close(struct conn *c);
/* Loop callbacks, arg the intake: the resume event and the stall look (intake_new makes
 * the events). */
void budget_resume_cb(evutil_socket_t fd, short what, void *arg);
void budget_stall_cb(evutil_socket_t fd, short what, void *arg);

#endif
