/* The intake's pipeline, for one complete MLLP frame: its messages are parsed, their
 * headers validated and routed, handed to the committer, and answered, in the order the
 * frames came, once the store has answered for each. */
#ifndef NETWALL_INTAKE_PIPELINE_H
#define NETWALL_INTAKE_PIPELINE_H
#include "intake/state.h"

/* A complete frame (or the first max_message bytes of an oversize one) of c: copied into
 * a job queued on c, its messages submitted to the store. */
void pipeline_frame(struct conn *c, const uint8_t *p, size_t len, bool oversize);
/* Frees a job whose messages are all answered (or were never submitted). */
void pipeline_job_free(struct job *jb);
/* Writes v in base 36 as exactly width characters (v modulo 36^width, zero-padded). */
void pipeline_base36(char *out, size_t width, uint64_t v);

#endif
