/* The dispatch of one line to its command (see command.c). Private to the chat server's
 * rooms. */
#ifndef NETWALL_CHAT_COMMAND_H
#define NETWALL_CHAT_COMMAND_H
#include <stddef.h>

#include "chat/state.h"

/* Parses one line from c (modified in place; line[len] is a spare byte) and runs it. */
void command_line(struct client *c, char *line, size_t len);

#endif
