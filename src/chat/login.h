/* Registration and the password checks on the worker (see login.c). Private to the chat
 * server's rooms. */
#ifndef NETWALL_CHAT_LOGIN_H
#define NETWALL_CHAT_LOGIN_H
#include "chat/state.h"

/* The answer to a failed login once its delay is over (464 and close, or 904). */
void login_refuse(struct client *c, enum auth_kind kind);
/* Takes c off the list of logins waiting for a check; its job is wiped and freed. */
void login_check_drop(struct client *c);
/* The worker's callback (auth_new): a finished job, on the loop; arg is the chat. */
void login_auth_done(struct auth_job *j, void *arg);
/* The commands of this room, for command.c's table (which checks registration and the
 * minimum parameters before calling them). */
void login_cap(struct client *c, struct irc_msg *m);
void login_authenticate(struct client *c, struct irc_msg *m);
void login_nick(struct client *c, struct irc_msg *m);
void login_user(struct client *c, struct irc_msg *m);
void login_pass(struct client *c, struct irc_msg *m);
void login_register(struct client *c, struct irc_msg *m);

#endif
