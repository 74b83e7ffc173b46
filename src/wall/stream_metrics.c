/* The streams' metric tables (stream.h's tstream_stats): streams open and opened, bytes to
 * and from the local sockets, resets and idle timeouts. */
#include <stddef.h>

#include "core/metrics.h"
#include "wall/stream.h"

#define TSTREAM_FIELD(f) METRIC_FIELD(struct tstream_stats, f)

static const struct metric tstream_metrics[] = {
	{ "netwall_streams_open", METRIC_GAUGE, "Streams open.", NULL,
	  TSTREAM_FIELD(streams_open) },
	{ "netwall_streams_total", METRIC_COUNTER, "Streams opened.", NULL,
	  TSTREAM_FIELD(streams_total) },
	{ "netwall_stream_resets_total", METRIC_COUNTER, "Streams ended by a reset.", NULL,
	  TSTREAM_FIELD(resets) },
	{ "netwall_stream_idle_timeouts_total", METRIC_COUNTER,
	  "Streams reset after carrying nothing for idle_timeout.", NULL,
	  TSTREAM_FIELD(idle_timeouts) },
};

/* The byte counters, whose help names the local sockets: [enum tstream_local][in, out]. */
static const struct metric tstream_bytes[2][2] = {
	{ { "netwall_bytes_in_total", METRIC_COUNTER, "Bytes read from visitors.", NULL,
	    TSTREAM_FIELD(bytes_in) },
	  { "netwall_bytes_out_total", METRIC_COUNTER, "Bytes written to visitors.", NULL,
	    TSTREAM_FIELD(bytes_out) } },
	{ { "netwall_bytes_in_total", METRIC_COUNTER, "Bytes read from targets.", NULL,
	    TSTREAM_FIELD(bytes_in) },
	  { "netwall_bytes_out_total", METRIC_COUNTER, "Bytes written to targets.", NULL,
	    TSTREAM_FIELD(bytes_out) } },
};

void tstream_register_metrics(struct metrics *m, enum tstream_local local)
{
	metrics_add(m, tstream_metrics, sizeof(tstream_metrics) / sizeof(tstream_metrics[0]),
		    &tstream_stats);
	metrics_add(m, tstream_bytes[local], 2, &tstream_stats);
}
