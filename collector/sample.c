/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When the collector reports: it follows the hypervisor driver's VMs,
 * hands each guest sample to the report builder, and publishes every
 * interval, and sooner, coalesced to one per fast_min_interval, when a
 * sample says a guest's pressure started rising or its use grew by
 * fast_rise.
 */
#include <stdlib.h>

#include "collector.h"
#include "log.h"

static void report_soon(struct collector *c);

/* The periodic report; it stands for an early one that is due, and
 * neither comes within fast_min_interval of the last report. */
static void
tick_cb(uv_timer_t *t)
{
	struct collector *c = t->data;

	if (uv_now(c->loop) - c->last_pub_ms <
	    (uint64_t)c->conf.fast_min_interval_ms) {
		report_soon(c);
		return;
	}
	uv_timer_stop(&c->fast);
	c->fast_pending = false;
	publish_report(c, false);
}

static void
fast_cb(uv_timer_t *t)
{
	struct collector *c = t->data;

	c->fast_pending = false;
	publish_report(c, true);
}

/* A guest's pressure rose: report now, or once fast_min_interval has
 * passed since the last report. */
static void
report_soon(struct collector *c)
{
	uint64_t now = uv_now(c->loop), next;

	if (c->fast_pending)
		return;
	next = c->last_pub_ms + (uint64_t)c->conf.fast_min_interval_ms;
	c->fast_pending = true;
	uv_timer_start(&c->fast, fast_cb, next > now ? next - now : 0, 0);
}

int
sample_start(struct collector *c)
{
	int r;

	r = uv_timer_init(c->loop, &c->tick);
	if (r == 0)
		r = uv_timer_init(c->loop, &c->fast);
	if (r < 0)
		return r;
	c->tick.data = c->fast.data = c;
	return uv_timer_start(&c->tick, tick_cb,
	    (uint64_t)c->conf.interval_ms, (uint64_t)c->conf.interval_ms);
}

/* ---- driver events ---- */

static const char *const reject_names[] = {
	[HV_REJECT_TOO_BIG] = "agent frame above the size limit",
	[HV_REJECT_UNDECODABLE] = "guest data that does not decode",
	[HV_REJECT_INVALID] = "guest data that fails validation",
};

void
sample_hv_event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm,
    void *arg)
{
	struct collector *c = arg;
	struct cvm *cv = vm->user;

	switch (ev) {
	case HV_EV_ADDED:
		vm->user = cvm_new();
		log_info("vm \"%s\" found (pid %d)", vm->id, (int)vm->pid);
		break;
	case HV_EV_REMOVED:
		log_info("vm \"%s\" gone", vm->id);
		cvm_free(cv);
		vm->user = NULL;
		break;
	case HV_EV_GUEST:
		if (cv != NULL && report_take_guest(c, vm, uv_now(c->loop)))
			report_soon(c);
		break;
	case HV_EV_BALLOON:
		break;
	case HV_EV_REJECTED:
		if (cv == NULL || (cv->rejects_logged & (1u << vm->reject)))
			break;
		cv->rejects_logged |= 1u << vm->reject;
		log_warnx("vm \"%s\": %s, dropped (reported once per vm; "
		    "counted)", vm->id, reject_names[vm->reject]);
		break;
	}
}

static void
free_vm_cb(struct hv_vm *vm, void *arg)
{
	cvm_free(vm->user);
	vm->user = NULL;
}

void
sample_stop(struct collector *c)
{
	uv_close((uv_handle_t *)&c->tick, NULL);
	uv_close((uv_handle_t *)&c->fast, NULL);
	hv_foreach(c->hv, free_vm_cb, NULL);
}
