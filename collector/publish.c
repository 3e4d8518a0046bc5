/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector on the bus: its connection to the broker, and a report of
 * every VM the driver knows published to mm.stats, key host.<host-id>.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "collector.h"
#include "log.h"

/* systemctl status' line: at most every 5 s, and at each change of the
 * broker's state. */
#define STATUS_EVERY_MS	5000

static void
status_update(struct collector *c, size_t nvms, uint64_t now)
{
	char line[256];

	if (c->status_ms != 0 && now - c->status_ms < STATUS_EVERY_MS)
		return;
	c->status_ms = now;
	snprintf(line, sizeof(line), "host %s: %zu VMs, %" PRIu64 " reports "
	    "(%" PRIu64 " on pressure, %" PRIu64 " failed), broker %s",
	    c->host_id, nvms, c->published, c->fast_published,
	    c->publish_errors, bus_is_up(c->bus) ? "up" : "DOWN");
	daemon_notify_status(line);
}

static void
bus_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct collector *c = arg;

	if (up)
		log_info("connected to the broker at %s",
		    bus_current_url(bus));
	else if (!c->stopping)
		log_warnx("broker: %s", reason);
	c->status_ms = 0;
}

int
publish_open(struct collector *c)
{
	struct bus_config bc;

	bus_conf_apply(&c->conf.bus, "mm-collector", &bc);
	bc.state_cb = bus_state_cb;
	bc.state_arg = c;
	c->bus = bus_new(c->loop, &bc);
	if (c->bus == NULL)
		return -errno;
	return topo_declare_stats_exchange(c->bus);
}

struct vm_list {
	struct hv_vm **vms;
	size_t n;
};

static void
list_vm_cb(struct hv_vm *vm, void *arg)
{
	struct vm_list *l = arg;

	l->vms[l->n++] = vm;
}

int
publish_report(struct collector *c, bool fast)
{
	struct vm_list l = { NULL, 0 };
	size_t nvms = hv_vm_count(c->hv);
	uint64_t now = uv_now(c->loop);
	struct report rep;
	int r;

	if (nvms > 0) {
		l.vms = calloc(nvms, sizeof(*l.vms));
		if (l.vms == NULL)
			return -ENOMEM;
		hv_foreach(c->hv, list_vm_cb, &l);
	}
	r = report_build(c, l.vms, l.n, now, &rep);
	free(l.vms);
	if (r < 0)
		return r;
	r = msg_publish(c->bus, MSG_HOST_REPORT, &rep.msg.base,
	    TOPO_EX_STATS, c->key, false, NULL, NULL);
	if (r < 0) {
		c->publish_errors++;
		if (c->publish_errors == 1 || log_debug_enabled())
			log_warnx("cannot publish report %" PRIu64 ": %s",
			    rep.msg.seq, strerror(-r));
	} else {
		c->published++;
		if (fast)
			c->fast_published++;
		log_debug("report %" PRIu64 "%s: %zu vms", rep.msg.seq,
		    fast ? " (pressure)" : "", rep.msg.n_guests);
	}
	c->last_pub_ms = now;
	status_update(c, rep.msg.n_guests, now);
	report_release(&rep);
	return r;
}
