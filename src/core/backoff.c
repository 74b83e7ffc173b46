#include "core/backoff.h"

double backoff_next(struct backoff *b, double rand01)
{
	double step = b->initial;

	for (unsigned i = 0; i < b->attempt && step < b->max; i++)
		step *= 2;
	if (step > b->max)
		step = b->max;
	if (b->attempt < 64)
		b->attempt++;
	if (rand01 < 0)
		rand01 = 0;
	if (rand01 >= 1)
		rand01 = 0.999999;
	return step * (0.5 + rand01 / 2);
}

void backoff_reset(struct backoff *b)
{
	b->attempt = 0;
}
