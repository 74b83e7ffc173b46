/* Telling the service manager how the daemon stands (systemd's sd_notify protocol, without
 * libsystemd): one datagram of "KEY=VALUE" lines to the socket in $NOTIFY_SOCKET. */
#ifndef NETWALL_NOTIFY_H
#define NETWALL_NOTIFY_H

/* Sends state ("READY=1", "MAINPID=123\nREADY=1"). Returns 0, also when no manager listens
 * ($NOTIFY_SOCKET unset), or -1 with errno set. */
int notify_send(const char *state);

#endif
