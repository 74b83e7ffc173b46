#include "wall/budget.h"

#include "core/log.h"
#include "core/metrics.h"

static struct budget_counts {
	uint64_t limit;
	uint64_t held;
	uint64_t window; /* the part of held that is window granted to peers */
	uint64_t peak;  /* high-water mark of held since the process started */
	uint64_t waits;
} budget = { .limit = UINT64_MAX };

void budget_set_limit(uint64_t limit)
{
	budget.limit = limit;
}

uint64_t budget_limit(void)
{
	return budget.limit;
}

uint64_t budget_held(void)
{
	return budget.held;
}

uint64_t budget_window(void)
{
	return budget.window;
}

uint64_t budget_room(void)
{
	return budget.held < budget.limit ? budget.limit - budget.held : 0;
}

bool budget_take(uint64_t n)
{
	if (n > budget_room())
		return false;
	budget.held += n;
	if (budget.held > budget.peak)
		budget.peak = budget.held;
	return true;
}

void budget_give(uint64_t n)
{
	if (n > budget.held)
		log_fatal("event=bug what=budget_give held=%llu give=%llu",
			  (unsigned long long)budget.held, (unsigned long long)n);
	budget.held -= n;
}

bool budget_take_window(uint64_t n)
{
	if (budget.window + n > budget.limit / 2 || !budget_take(n))
		return false;
	budget.window += n;
	return true;
}

void budget_give_window(uint64_t n)
{
	if (n > budget.window)
		log_fatal("event=bug what=budget_give_window window=%llu give=%llu",
			  (unsigned long long)budget.window, (unsigned long long)n);
	budget.window -= n;
	budget_give(n);
}

void budget_note_wait(void)
{
	budget.waits++;
}

/* ---- metrics ---- */

#define BUDGET_FIELD(f) METRIC_FIELD(struct budget_counts, f)

static const struct metric budget_metrics[] = {
	{ "netwall_memory_budget_bytes", METRIC_GAUGE,
	  "The memory budget (memory_budget) for bytes peers can make us hold.", NULL,
	  BUDGET_FIELD(limit) },
	{ "netwall_memory_held_bytes", METRIC_GAUGE,
	  "Bytes held against the budget: socket bytes not yet framed, and receive window "
	  "granted to the tunnel's peer.", NULL, BUDGET_FIELD(held) },
	{ "netwall_memory_window_bytes", METRIC_GAUGE,
	  "Of netwall_memory_held_bytes, the receive window granted to the tunnel's peer (at "
	  "most half the budget).", NULL, BUDGET_FIELD(window) },
	{ "netwall_memory_held_peak_bytes", METRIC_GAUGE,
	  "The most netwall_memory_held_bytes has been since the process started.", NULL,
	  BUDGET_FIELD(peak) },
	{ "netwall_memory_waits_total", METRIC_COUNTER,
	  "Times a stream stopped reading or went without window because the budget was full.",
	  NULL, BUDGET_FIELD(waits) },
};

void budget_register_metrics(struct metrics *m)
{
	metrics_add(m, budget_metrics, sizeof(budget_metrics) / sizeof(budget_metrics[0]),
		    &budget);
}

