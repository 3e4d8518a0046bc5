/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the actuator does on its own. When no batch has run for
 * failsafe_after (the scheduler or the bus is gone), a guest under
 * pressure by its fresh stats grows a step at a time while the host has
 * room (host_reserve kept), never shrinking anything, until the next
 * batch. A stop leaves the guests as they are, so that a restart (an
 * upgrade, a crash, the watchdog) resumes with the targets in force; only
 * with release_on_stop = yes does it release them, within the host's free
 * memory (release.c).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "actuator.h"
#include "hoststats.h"
#include "hv.h"
#include "log.h"

/* Intervals a step waits at most for the balloon to get there and the
 * guest to report on it. */
#define FS_SETTLE_STEPS		5

struct fs_round {
	struct actuator *a;
	uint64_t host_avail_kib;
};

/* The guest's major faults per second between its last two samples. */
static void
fault_rate(struct avm *av, const Mm__V1__GuestStats *g)
{
	uint64_t n;

	if (g->vmstat == NULL || !g->vmstat->has_major_faults ||
	    !g->has_time_ms || g->time_ms == av->fs_faults_ms)
		return;
	n = g->vmstat->major_faults;
	/* A counter that went back is a restarted guest: no rate yet. */
	av->fs_has_rate = av->fs_faults_ms != 0 &&
	    g->time_ms > av->fs_faults_ms && n >= av->fs_faults;
	if (av->fs_has_rate)
		av->fs_faults_s = (double)(n - av->fs_faults) * 1000.0 /
		    (double)(g->time_ms - av->fs_faults_ms);
	av->fs_faults = n;
	av->fs_faults_ms = g->time_ms;
}

static void
failsafe_cb(struct hv_vm *vm, void *arg)
{
	struct fs_round *fr = arg;
	struct actuator *a = fr->a;
	struct avm *av = vm->user;
	const Mm__V1__GuestStats *g = vm->guest;
	uint64_t now = uv_now(a->loop), t, cur;
	struct act_fs_vm f = { 0 };
	Mm__V1__Metric m[3], *mp[3];
	char why[MSG_TEXT_MAX];
	size_t i;
	int r;

	if (av == NULL || g == NULL)
		return;
	fault_rate(av, g);
	if (now < av->fs_next_ms || !vm->max_known || !act_vm_current(vm, &cur))
		return;
	/* The last step's effect is judged on a sample taken after the
	 * balloon got there, not on one from before: else a guest whose
	 * sample lags grows step after step on old numbers. A balloon that
	 * does not get there in FS_SETTLE_STEPS intervals (an uncooperative
	 * guest) holds the next step no longer. */
	if (av->fs_target_kib != 0) {
		if (av->fs_reached_ms == 0 && vm->balloon_known &&
		    vm->balloon_actual_kib >= av->fs_target_kib)
			av->fs_reached_ms = now;
		if ((av->fs_reached_ms == 0 || vm->guest_rx_ms <=
		    av->fs_reached_ms) && now - av->fs_step_ms <
		    FS_SETTLE_STEPS * (uint64_t)a->conf.failsafe_interval_ms)
			return;
	}
	f.fresh = act_vm_fresh(a, vm);
	f.has_faults = av->fs_has_rate;
	f.faults_s = av->fs_faults_s;
	f.has_psi = g->psi && g->psi->has_some_avg10_pct;
	f.psi_some_avg10 = f.has_psi ? g->psi->some_avg10_pct : 0;
	f.has_mem = g->meminfo && g->meminfo->has_total_kib &&
	    g->meminfo->has_available_kib;
	f.total_kib = f.has_mem ? g->meminfo->total_kib : 0;
	f.available_kib = f.has_mem ? g->meminfo->available_kib : 0;
	f.current_kib = cur;
	f.max_kib = vm->max_kib;
	t = act_fs_target(&a->fs, &f, fr->host_avail_kib);
	if (t == 0)
		return;
	av->fs_next_ms = now + (uint64_t)a->conf.failsafe_interval_ms;
	av->fs_target_kib = t;
	av->fs_step_ms = now;
	av->fs_reached_ms = 0;
	av->deferred = false;
	av->changed = true;
	av->last_change_ms = now;
	r = hv_set_target(a->hv, vm->id, t, NULL, NULL);
	if (r < 0) {
		log_warnx("vm \"%s\": fail-safe growth: %s", vm->id,
		    strerror(-r));
		return;
	}
	a->failsafe_steps++;
	fr->host_avail_kib -= t - cur;
	snprintf(why, sizeof(why), "fail-safe: no command for %" PRIu64
	    " s and the guest is under pressure (psi some avg10 %.1f%%, "
	    "%.0f major faults/s, available %" PRIu64 " of %" PRIu64
	    " KiB): grown from %" PRIu64 " to %" PRIu64 " KiB",
	    (now - a->last_cmd_ms) / 1000, f.psi_some_avg10, f.faults_s,
	    f.available_kib, f.total_kib, cur, t);
	log_warnx("vm \"%s\": %s", vm->id, why);
	for (i = 0; i < 3; i++) {
		mm__v1__metric__init(&m[i]);
		m[i].has_value = 1;
		mp[i] = &m[i];
	}
	m[0].name = "psi_some_avg10";
	m[0].value = f.psi_some_avg10;
	m[0].unit = "pct";
	m[1].name = "available_kib";
	m[1].value = (double)f.available_kib;
	m[1].unit = "KiB";
	m[2].name = "host_available_kib";
	m[2].value = (double)fr->host_avail_kib;
	m[2].unit = "KiB";
	{
		Mm__V1__Event ev = MM__V1__EVENT__INIT;

		ev.has_kind = 1;
		ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_ALERT;
		ev.has_severity = 1;
		ev.severity = MM__V1__SEVERITY__SEVERITY_WARNING;
		ev.vm_id = vm->id;
		ev.reason = why;
		ev.n_metrics = 3;
		ev.metrics = mp;
		ev.has_balloon_target_kib = 1;
		ev.balloon_target_kib = t;
		ev.has_balloon_actual_kib = vm->balloon_known;
		ev.balloon_actual_kib = vm->balloon_actual_kib;
		act_publish_event(a, a->alert_key, &ev);
	}
}

void
act_failsafe_tick(struct actuator *a)
{
	Mm__V1__Meminfo mi;
	struct fs_round fr = { .a = a };
	uint64_t now = uv_now(a->loop);

	if (a->conf.failsafe_after_ms == 0 ||
	    now - a->last_cmd_ms < (uint64_t)a->conf.failsafe_after_ms)
		return;
	if (!a->failsafe_on) {
		a->failsafe_on = true;
		log_warnx("no command for %" PRIu64 " s: fail-safe on",
		    (now - a->last_cmd_ms) / 1000);
	}
	if (hs_read_meminfo(a->conf.proc_root, &mi) < 0 ||
	    !mi.has_available_kib)
		return;	/* no growth without knowing the host's room */
	fr.host_avail_kib = mi.available_kib;
	hv_foreach(a->hv, failsafe_cb, &fr);
}

/* A new fail-safe starts from the scheduler's targets, not its last step. */
static void
forget_step_cb(struct hv_vm *vm, void *arg)
{
	struct avm *av = vm->user;

	(void)arg;
	if (av != NULL)
		av->fs_target_kib = 0;
}

void
act_failsafe_off(struct actuator *a)
{
	a->last_cmd_ms = uv_now(a->loop);
	if (a->failsafe_on) {
		a->failsafe_on = false;
		hv_foreach(a->hv, forget_step_cb, NULL);
		log_info("commands again: fail-safe off");
	}
}

/* ---- the stop ---- */

/* The release is over (or timed out): say how it went, then close. */
static void
release_end(struct actuator *a)
{
	Mm__V1__Metric m[3], *mp[3] = { &m[0], &m[1], &m[2] };
	struct act_rel_plan *p = &a->rel;
	char why[MSG_TEXT_MAX], line[512];
	unsigned failed = p->failed + p->pending;
	size_t i;

	if (a->closed)
		return;
	p->given_up = true;
	if (a->conf.release_on_stop) {
		for (i = 0; i < p->n; i++) {
			act_release_describe(&p->vms[i], line, sizeof(line));
			log_info("%s", line);
		}
		act_release_summary(p, line, sizeof(line));
		snprintf(why, sizeof(why), "actuator stopping: %s%s", line,
		    failed > 0 ? ", some writes failed" : "");
		log_info("%s", why);
		for (i = 0; i < 3; i++) {
			mm__v1__metric__init(&m[i]);
			m[i].has_value = 1;
			m[i].unit = "KiB";
		}
		m[0].name = "released_kib";
		m[0].value = (double)p->grant_kib;
		m[1].name = "unreleased_kib";
		m[1].value = (double)(p->need_kib - p->grant_kib);
		m[2].name = "release_failed";
		m[2].value = failed;
		m[2].unit = "count";
		act_alert(a, failed > 0 || p->need_kib > p->grant_kib ?
		    MM__V1__SEVERITY__SEVERITY_WARNING :
		    MM__V1__SEVERITY__SEVERITY_INFO, NULL, 0, why, mp, 3);
	}
	act_close(a);
}

static void
released_cb(struct act_rel_plan *p, void *arg)
{
	release_end(arg);
}

static void
release_timeout_cb(uv_timer_t *t)
{
	struct actuator *a = t->data;

	log_warnx("release: %u guest(s) did not answer within %" PRId64
	    " ms", a->rel.pending, a->conf.release_timeout_ms);
	release_end(a);
}

void
act_release(struct actuator *a)
{
	int r;

	if (a->releasing)
		return;
	a->releasing = true;
	act_jobs_drop(a);
	if (!a->conf.release_on_stop) {
		act_close(a);
		return;
	}
	r = act_release_collect(a->hv, a->conf.proc_root,
	    (uint64_t)a->conf.host_reserve_kib, &a->rel);
	if (r < 0) {
		log_warnx("release: host MemAvailable from %s/meminfo: %s: "
		    "the guests keep their targets", a->conf.proc_root,
		    strerror(-r));
		act_close(a);
		return;
	}
	if (act_release_apply(a->hv, &a->rel, released_cb, a) == 0) {
		release_end(a);
		return;
	}
	uv_timer_start(&a->op_timer, release_timeout_cb,
	    (uint64_t)a->conf.release_timeout_ms, 0);
}
