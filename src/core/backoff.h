/* Reconnect delays: exponential with jitter. Pure arithmetic, so it is unit-tested. */
#ifndef NETWALL_BACKOFF_H
#define NETWALL_BACKOFF_H

struct backoff {
	double initial; /* first delay, seconds */
	double max;     /* ceiling before jitter, seconds */
	unsigned attempt;
};

/* Returns the next delay: min(max, initial * 2^attempt) scaled by (0.5 + rand01 / 2),
 * so delays spread over 50..100 % of the step and agents do not reconnect in lockstep.
 * rand01 is in [0, 1); the caller supplies it so tests are deterministic. */
double backoff_next(struct backoff *b, double rand01);

/* Starts over from the initial delay, after a connection has proved healthy. */
void backoff_reset(struct backoff *b);

#endif
