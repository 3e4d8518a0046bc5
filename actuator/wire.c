/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator on the bus: its queue mm.actuator.<host-id> and the one
 * dispatch table of what arrives there (CommandBatch), and what it
 * publishes on mm.events: RESULT events with an ActionResult for each
 * batch, and ALERT events. On every connection it asks the schedulers for
 * its targets, which it may have missed while away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "actuator.h"
#include "clock.h"
#include "log.h"

int
act_publish_event(struct actuator *a, const char *key, Mm__V1__Event *ev)
{
	int r;

	if (a->bus == NULL)
		return -ESHUTDOWN;	/* closed: a late driver callback */
	ev->host_id = a->host_id;
	ev->source_id = a->host_id;
	ev->has_time_ms = 1;
	ev->time_ms = clock_ms(CLOCK_REALTIME);
	r = msg_publish(a->bus, MSG_EVENT, &ev->base, TOPO_EX_EVENTS, key,
	    true, NULL, NULL);
	if (r < 0) {
		a->publish_errors++;
		log_warnx("cannot publish event %s: %s", key, strerror(-r));
	}
	return r;
}

void
act_alert(struct actuator *a, Mm__V1__Severity sev, const char *vm_id,
    uint64_t batch_seq, const char *reason, Mm__V1__Metric **metrics,
    size_t nmetrics)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;

	ev.has_kind = 1;
	ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_ALERT;
	ev.has_severity = 1;
	ev.severity = sev;
	ev.vm_id = (char *)vm_id;
	ev.has_batch_seq = batch_seq != 0;
	ev.batch_seq = batch_seq;
	ev.reason = (char *)reason;
	ev.n_metrics = nmetrics;
	ev.metrics = metrics;
	act_publish_event(a, a->alert_key, &ev);
}

void
act_publish_result(struct actuator *a, Mm__V1__ActionResult *ar,
    uint64_t batch_seq, const char *vm_id, const char *reason)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;

	ar->host_id = a->host_id;
	ar->has_batch_seq = 1;
	ar->batch_seq = batch_seq;
	ar->has_time_ms = 1;
	ar->time_ms = clock_ms(CLOCK_REALTIME);
	ev.has_kind = 1;
	ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_RESULT;
	ev.has_batch_seq = batch_seq != 0;
	ev.batch_seq = batch_seq;
	ev.has_policy_version = ar->has_policy_version;
	ev.policy_version = ar->policy_version;
	ev.vm_id = (char *)vm_id;
	ev.reason = (char *)reason;
	ev.result = ar;
	act_publish_event(a, a->result_key, &ev);
}

static enum bus_disposition
batch_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	return act_batch_receive(arg, (const Mm__V1__CommandBatch *)m);
}

static const struct msg_handler handlers[] = {
	{ MSG_COMMAND_BATCH, batch_cb },
};

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct actuator *a = arg;
	enum bus_disposition r;
	char why[256] = "";

	r = msg_dispatch(handlers, 1, d, a, &a->dstats, why, sizeof(why));
	if (r == BUS_REJECT && strcmp(why, "") != 0)
		log_warnx("malformed message on %s, dead-lettered: %s",
		    d->queue, why);
	return r;
}

/*
 * Ask the schedulers for this host's targets: an actuator that starts or
 * comes back may have missed batches (they expire in its queue), and it
 * does not wait for the next change to get them.
 */
static void
ask_sync(struct actuator *a)
{
	Mm__V1__ActionResult ar = MM__V1__ACTION_RESULT__INIT;

	ar.has_sync = 1;
	ar.sync = 1;
	act_publish_result(a, &ar, 0, NULL, "actuator started or "
	    "reconnected: asks for its targets");
}

static void
bus_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct actuator *a = arg;

	if (up) {
		log_info("connected to the broker at %s",
		    bus_current_url(bus));
		if (!a->stopping)
			ask_sync(a);
	} else if (!a->stopping) {
		log_warnx("broker: %s", reason);
	}
}

int
act_bus_open(struct actuator *a)
{
	struct bus_config bc;
	int r;

	bus_conf_apply(&a->conf.bus, "mm-actuator", &bc);
	bc.state_cb = bus_state_cb;
	bc.state_arg = a;
	a->bus = bus_new(a->loop, &bc);
	if (a->bus == NULL)
		return -errno;
	/* Its queue only: the scheduler binds it to mm.commands (this
	 * host's broker user may not), and declares mm.dlx and mm.dead. */
	if ((r = topo_declare_events_exchange(a->bus)) < 0 ||
	    (r = topo_declare_actuator_queue_only(a->bus, a->host_id)) < 0) {
		log_warnx("declaring the topology: %s", strerror(-r));
		return r;
	}
	r = bus_consume(a->bus, a->queue, false, delivery_cb, a);
	if (r < 0)
		log_warnx("consuming %s: %s", a->queue, strerror(-r));
	return r;
}
