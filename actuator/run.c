/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator's life on its loop: the start (rules from the configuration,
 * KSM settings saved, the bus, the hypervisor driver, a tick for deferred
 * targets and the fail-safe), the VMs as the driver finds them, and the
 * stop, which lets the batch in progress finish and leaves the guests as
 * they are (release_on_stop = yes: the bounded release of release.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actuator.h"
#include "hv.h"
#include "log.h"

static void
on_hv_event(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	switch (ev) {
	case HV_EV_ADDED:
		vm->user = calloc(1, sizeof(struct avm));
		log_info("vm \"%s\" found (pid %d)", vm->id, (int)vm->pid);
		break;
	case HV_EV_REMOVED:
		log_info("vm \"%s\" gone", vm->id);
		free(vm->user);
		vm->user = NULL;
		break;
	default:
		break;
	}
}

static void
tick_cb(uv_timer_t *t)
{
	struct actuator *a = t->data;

	act_deferred_tick(a);
	act_failsafe_tick(a);
}

void
act_hv_config(const struct actuator_conf *c, struct hv_config *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->type = (enum hv_type)c->driver;
	ret->vm_dir = c->vm_dir;
	ret->uri = c->libvirt_uri;
	ret->op_timeout_ms = (unsigned)c->op_timeout_ms;
	ret->qmp_ext = c->monitor;
	/* The agent's socket is the collector's: the guest's use comes from
	 * the balloon's own statistics. */
	ret->no_agent = true;
	ret->balloon_path = c->balloon_path;
	ret->rescan_ms = (unsigned)c->rescan_ms;
	ret->poll_ms = (unsigned)c->poll_ms;
}

void
act_apply_limits(struct actuator *a)
{
	a->lim.vm_min_kib = (uint64_t)a->conf.vm_min_kib;
	a->lim.used_margin_kib = (uint64_t)a->conf.used_margin_kib;
	a->fs.psi_pct = (double)a->conf.failsafe_psi_pct;
	a->fs.avail_pct = (double)a->conf.failsafe_avail_pct;
	a->fs.faults_s = (double)a->conf.failsafe_faults_s;
	a->fs.step_kib = (uint64_t)a->conf.failsafe_step_kib;
	a->fs.host_reserve_kib = (uint64_t)a->conf.host_reserve_kib;
}

int
act_start(struct actuator *a, uv_loop_t *loop)
{
	struct hv_config hc;
	int r;

	a->loop = loop;
	snprintf(a->host_id, sizeof(a->host_id), "%s", a->conf.host_id);
	topo_actuator_queue(a->queue, sizeof(a->queue), a->host_id);
	topo_event_key(a->result_key, sizeof(a->result_key), TOPO_EV_RESULT,
	    a->host_id);
	topo_event_key(a->alert_key, sizeof(a->alert_key), TOPO_EV_ALERT,
	    a->host_id);
	act_apply_limits(a);

	if (a->conf.ksm) {
		r = act_ksm_init(&a->ksm, a->conf.sys_root);
		a->ksm_ok = r == 0;
		if (r < 0)
			log_info("no KSM under %s (%s): ksm commands will fail",
			    a->conf.sys_root, strerror(-r));
	}
	if (act_numa_online(a->conf.sys_root, &a->online_mask) < 0)
		a->online_mask = 1;

	uv_timer_init(loop, &a->tick);
	uv_timer_init(loop, &a->op_timer);
	a->tick.data = a;
	a->op_timer.data = a;
	r = act_bus_open(a);
	if (r < 0)
		return r;

	act_hv_config(&a->conf, &hc);
	hc.event_cb = on_hv_event;
	hc.event_arg = a;
	a->hv = daemon_hv_start(loop, &hc);
	r = act_tier_start(a);
	if (r < 0)
		return r;

	uv_timer_start(&a->tick, tick_cb, ACT_TICK_MS, ACT_TICK_MS);
	a->last_cmd_ms = uv_now(loop);
	r = bus_start(a->bus);
	if (r < 0)
		return r;
	a->metrics = mx_server_start(loop, a->conf.metrics_listen,
	    act_metrics_cb, a);
	log_info("host \"%s\": %s driver, commands from %s, results to %s "
	    "%s", a->host_id, hv_type_name(hc.type), a->queue,
	    TOPO_EX_EVENTS, a->result_key);
	return 0;
}

void
act_stop(struct actuator *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	log_info("stopping: %s", a->conf.release_on_stop ?
	    "release_on_stop: returning guests toward their maximum within "
	    "the host's free memory" : "the guests keep their targets");
	uv_timer_stop(&a->tick);
	if (a->cur == NULL)
		act_release(a);
	/* else the batch's end continues, within op_timeout */
}

static void
free_vm_cb(struct hv_vm *vm, void *arg)
{
	free(vm->user);
	vm->user = NULL;
}

void
act_close(struct actuator *a)
{
	int r;

	if (a->closed)
		return;
	a->closed = true;
	uv_timer_stop(&a->op_timer);
	if (a->ksm_ok) {
		r = act_ksm_restore(&a->ksm);
		if (r < 0)
			log_warnx("ksm: restoring the settings found at start: "
			    "%s", strerror(-r));
		else
			log_info("ksm: settings found at start restored");
	}
	act_ksm_free(&a->ksm);
	log_info("stopped: %" PRIu64 " batches (%" PRIu64 " expired, %"
	    PRIu64 " out of order), %" PRIu64 " clamped, %" PRIu64
	    " failed, %" PRIu64 " deferred, %" PRIu64 " fail-safe steps, %"
	    PRIu64 " malformed, refused: %" PRIu64 " from other schedulers, %"
	    PRIu64 " from the future, %" PRIu64 " with a long expiry",
	    a->batches, a->expired, a->stale, a->clamped,
	    a->failed, a->deferred, a->failsafe_steps,
	    a->dstats.bad_content_type + a->dstats.unknown_type +
	    a->dstats.unexpected_type + a->dstats.too_big +
	    a->dstats.undecodable + a->dstats.invalid + a->misrouted,
	    a->refused[ACT_REFUSE_SCHEDULER], a->refused[ACT_REFUSE_FUTURE],
	    a->refused[ACT_REFUSE_TTL]);
	uv_close((uv_handle_t *)&a->tick, NULL);
	uv_close((uv_handle_t *)&a->op_timer, NULL);
	act_tier_close(a);
	mx_server_close(a->metrics);
	a->metrics = NULL;
	act_jobs_free(a);
	if (a->hv != NULL) {
		hv_foreach(a->hv, free_vm_cb, NULL);
		hv_close(a->hv, NULL, NULL);
		a->hv = NULL;
	}
	/* After the driver, which calls back the writes it cancels. */
	act_release_free(&a->rel);
	/* Waits, bounded, for the broker to confirm the events. */
	bus_close(a->bus, (unsigned)a->conf.release_timeout_ms, NULL, NULL);
	a->bus = NULL;
	if (a->sig_on)
		daemon_signals_close(&a->sig);
}
