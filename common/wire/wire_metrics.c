/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The wire layer's metrics, written the same way by every daemon: the
 * bus's traffic and connection (bus_metrics()) and what the dispatcher
 * refused (msg_dispatch_metrics()). Names are in docs/metrics.md.
 */
#include <stddef.h>

#include "bus.h"
#include "metrics.h"
#include "msg.h"

void
bus_metrics(struct mx *m, const struct bus_stats *st)
{
	mx_single(m, "mm_bus_up", MX_GAUGE, NULL,
	    "1 while connected to a broker", st->up ? 1 : 0);
	mx_single(m, "mm_bus_blocked", MX_GAUGE, NULL,
	    "1 while the broker blocks publishing (connection.blocked)",
	    st->is_blocked ? 1 : 0);
	mx_single(m, "mm_bus_blocked_seconds", MX_COUNTER, "seconds",
	    "time the broker blocked publishing",
	    (double)st->blocked_ms / 1000.0);
	mx_single(m, "mm_bus_published", MX_COUNTER, NULL,
	    "messages taken for publishing", st->published);
	mx_single(m, "mm_bus_confirmed", MX_COUNTER, NULL,
	    "messages the broker confirmed", st->confirmed);
	mx_family(m, "mm_bus_publish_refused", MX_COUNTER, NULL,
	    "publishes refused: by the broker (nacked, each sent again up to "
	    "3 times) or with the outbox full");
	mx_addu(m, st->nacked, 1, "reason", "nacked");
	mx_addu(m, st->dropped, 1, "reason", "outbox_full");
	mx_single(m, "mm_bus_superseded", MX_COUNTER, NULL,
	    "messages replaced, unsent, by a newer one of the same key",
	    st->superseded);
	mx_single(m, "mm_bus_resent", MX_COUNTER, NULL,
	    "messages sent again after a reconnect", st->resent);
	mx_single(m, "mm_bus_outbox_messages", MX_GAUGE, NULL,
	    "messages waiting to be sent", st->outbox);
	mx_single(m, "mm_bus_unconfirmed_messages", MX_GAUGE, NULL,
	    "messages sent and not confirmed yet", st->unconfirmed);
	mx_family(m, "mm_bus_confirm_latency_seconds", MX_HISTOGRAM,
	    "seconds", "from a publish to the broker's confirm");
	mx_hist(m, &st->confirm_s, NULL, NULL);
	mx_family(m, "mm_bus_deliveries", MX_COUNTER, NULL,
	    "messages consumed, by what became of them");
	mx_addu(m, st->acked, 1, "disposition", "acked");
	mx_addu(m, st->rejected, 1, "disposition", "rejected");
	mx_addu(m, st->requeued, 1, "disposition", "requeued");
	mx_single(m, "mm_bus_oversized", MX_COUNTER, NULL,
	    "messages consumed with a body above the size limit (rejected)",
	    st->oversized);
	mx_single(m, "mm_bus_connections", MX_COUNTER, NULL,
	    "connections made to a broker (reconnects are this minus one)",
	    st->connects);
	mx_single(m, "mm_bus_connect_failures", MX_COUNTER, NULL,
	    "connection attempts that failed", st->connect_failures);
	mx_single(m, "mm_bus_disconnects", MX_COUNTER, NULL,
	    "connections lost or dropped", st->disconnects);
	mx_single(m, "mm_bus_failovers", MX_COUNTER, NULL,
	    "connections made to another broker of the list", st->failovers);
	mx_single(m, "mm_bus_confirm_timeouts", MX_COUNTER, NULL,
	    "connections dropped for a publish left unconfirmed",
	    st->confirm_timeouts);
}

void
msg_dispatch_metrics(struct mx *m, const char *const *names,
    const struct msg_dispatch_stats *const *stats, size_t n)
{
	size_t i;

	mx_family(m, "mm_messages_handled", MX_COUNTER, NULL,
	    "messages consumed and handed to their handler");
	for (i = 0; i < n; i++)
		mx_addu(m, stats[i]->ok, 1, "queue", names[i]);
	mx_family(m, "mm_messages_refused", MX_COUNTER, NULL,
	    "messages consumed and dead-lettered as malformed, by reason");
	for (i = 0; i < n; i++) {
		const struct msg_dispatch_stats *s = stats[i];
		const struct {
			const char *reason;
			uint64_t v;
		} r[] = {
			{ "bad_content_type", s->bad_content_type },
			{ "unknown_type", s->unknown_type },
			{ "unexpected_type", s->unexpected_type },
			{ "too_big", s->too_big },
			{ "undecodable", s->undecodable },
			{ "invalid", s->invalid },
		};

		for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++)
			mx_addu(m, r[k].v, 2, "queue", names[i], "reason",
			    r[k].reason);
	}
}
