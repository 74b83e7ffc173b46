/* Subcommands of the netwall program: each takes argc/argv after its own name and returns
 * the process exit status. */
#ifndef NETWALL_CLI_H
#define NETWALL_CLI_H

int cmd_keygen_main(int argc, char **argv);
int cmd_keygen_fingerprint_main(int argc, char **argv);
int cmd_check_main(int argc, char **argv);
int cmd_gateway_main(int argc, char **argv);
int cmd_agent_main(int argc, char **argv);
int cmd_intake_main(int argc, char **argv);
int cmd_send_main(int argc, char **argv);
int cmd_messages_main(int argc, char **argv);
int cmd_chat_main(int argc, char **argv);
int cmd_chat_serve_main(int argc, char **argv);

#endif
