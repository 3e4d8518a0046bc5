/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator: one per host. It consumes the host's CommandBatches from
 * mm.actuator.<host-id>, applies them in order through the hypervisor
 * driver (balloons), sysfs (KSM) and migrate_pages(2) (NUMA) within the
 * host's own safety rules, and answers each batch with an ActionResult on
 * mm.events. Alone it keeps guests under pressure alive (fail-safe), and
 * on shutdown it hands every guest its maximum back and KSM its settings.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "actuator.h"
#include "clock.h"
#include "hoststats.h"
#include "hv.h"
#include "log.h"
#include "guestmem.h"
#include "topology.h"

#define DEFAULT_CONF	"/etc/mm/actuator.conf"
#define TICK_MS		250
#define ERR_MAX		256

static const char *const driver_names[] = { "kvm", "xen", "sim", NULL };

#define K(key, type, min, max, def, field, help)			\
	{ "actuator", key, type, min, max, def,				\
	  offsetof(struct actuator_conf, field), NULL, help }

static const struct conf_key conf_table[] = {
	K("host_id", CONF_STRING, 1, TOPO_ID_MAX, NULL, host_id,
	    "this host's id: its queue is mm.actuator.<host_id>; unset: the "
	    "hostname"),
	{ "actuator", "driver", CONF_ENUM, 0, 0, "kvm",
	  offsetof(struct actuator_conf, driver), driver_names,
	  "hypervisor driver: kvm, xen or sim (mm-sim's sockets)" },
	K("vm_dir", CONF_STRING, 1, 4096, "/run/mm/vm", vm_dir,
	    "kvm, sim: directory of the VMs' sockets"),
	K("monitor", CONF_STRING, 1, 16, "actuator", monitor,
	    "kvm, sim: the actuator's QMP socket is <vm_dir>/<vm>.<monitor> "
	    "(QEMU serves one client per monitor; the collector has "
	    "<vm>.qmp)"),
	K("balloon_path", CONF_STRING, 1, 1024,
	    "/machine/peripheral/balloon0", balloon_path,
	    "kvm: QOM path of the virtio balloon"),
	K("proc_root", CONF_STRING, 1, 4096, "/proc", proc_root,
	    "where procfs is (host MemAvailable, the VMs' numa_maps)"),
	K("sys_root", CONF_STRING, 1, 4096, "/sys", sys_root,
	    "where sysfs is (KSM settings, NUMA nodes)"),
	K("rescan", CONF_DURATION_MS, 100, 600000, "1s", rescan_ms,
	    "kvm, sim: rescan of vm_dir"),
	K("poll", CONF_DURATION_MS, 100, 600000, "1s", poll_ms,
	    "kvm, sim: query-balloon period"),
	K("vm_min", CONF_SIZE_KIB, 65536, 1ll << 32, "128M", vm_min_kib,
	    "no guest is ever made smaller than this"),
	K("used_margin", CONF_SIZE_KIB, 0, 1ll << 32, "64M",
	    used_margin_kib,
	    "floor of a guest: its used memory (total - available) plus this"),
	K("stale_after", CONF_DURATION_MS, 100, 3600000, "10s", stale_ms,
	    "older guest stats do not count: no shrinking without fresh ones"),
	K("balloon_interval", CONF_DURATION_MS, 0, 600000, "1s",
	    balloon_interval_ms,
	    "least time between a change of a guest's target and a shrink; "
	    "sooner ones wait (growth never does)"),
	K("op_timeout", CONF_DURATION_MS, 100, 600000, "5s", op_timeout_ms,
	    "a hypervisor request unanswered this long fails"),
	K("failsafe_after", CONF_DURATION_MS, 0, 86400000, "30s",
	    failsafe_after_ms,
	    "no command this long: grow guests under pressure alone (0: "
	    "never)"),
	K("failsafe_interval", CONF_DURATION_MS, 100, 600000, "5s",
	    failsafe_interval_ms, "between two fail-safe steps of a guest"),
	K("failsafe_step", CONF_SIZE_KIB, 1024, 1ll << 32, "256M",
	    failsafe_step_kib, "growth of a guest per fail-safe step"),
	K("failsafe_psi", CONF_INT, 1, 100, "20", failsafe_psi_pct,
	    "guest PSI memory some avg10 (percent) that is pressure"),
	K("failsafe_faults", CONF_INT, 0, 10000000, "1000", failsafe_faults_s,
	    "fail-safe: a guest with this many major faults per second is "
	    "under pressure (0: not used)"),
	K("failsafe_available", CONF_INT, 0, 100, "5", failsafe_avail_pct,
	    "guest available memory (percent of total) below which it is "
	    "pressure"),
	K("host_reserve", CONF_SIZE_KIB, 0, 1ll << 40, "1G", host_reserve_kib,
	    "host MemAvailable the fail-safe never gives away"),
	K("release_on_stop", CONF_BOOL, 0, 0, "yes", release_on_stop,
	    "on shutdown, set every guest back to its maximum"),
	K("release_timeout", CONF_DURATION_MS, 100, 600000, "5s",
	    release_timeout_ms,
	    "bound of the shutdown's waits (release, event confirms)"),
	K("ksm", CONF_BOOL, 0, 0, "yes", ksm,
	    "apply KSM commands (settings found at start are restored on "
	    "stop)"),
	K("numa", CONF_BOOL, 0, 0, "yes", numa,
	    "apply NUMA moves with migrate_pages(2)"),
	K("schedulers", CONF_STRING, 1, 4096, NULL, schedulers,
	    "ids of the schedulers whose batches run here, separated by "
	    "spaces or commas; unset: any"),
	K("clock_skew", CONF_DURATION_MS, 1000, 3600000, "30s",
	    clock_skew_ms,
	    "a batch issued further ahead of this host's clock is refused"),
	BUS_CONF_KEYS(struct actuator_conf, bus),
};

#define NKEYS	(sizeof(conf_table) / sizeof(conf_table[0]))

/* What the actuator keeps per VM (hv_vm.user). */
struct avm {
	bool changed;		/* last_change_ms is set */
	uint64_t last_change_ms;	/* loop ms of the last target write */
	bool deferred;		/* a target waits for the rate limit or
				 * for fresh guest stats */
	uint64_t deferred_kib;
	uint64_t deferred_until_ms;	/* its batch's expiry, epoch ms */
	uint64_t deferred_seq;		/* its batch */
	uint32_t deferred_index;	/* and command in it */
	char deferred_sched[MSG_ID_MAX + 1];	/* the batch's sender */
	uint64_t fs_next_ms;	/* earliest next fail-safe step */
	uint64_t fs_faults;	/* major faults in the sample of */
	uint64_t fs_faults_ms;	/* this time (epoch ms; 0: none yet) */
	double fs_faults_s;	/* the rate between the last two samples */
	bool fs_has_rate;
};

/* A batch being executed, or waiting to be. */
struct job {
	struct job *next;
	Mm__V1__CommandBatch *b;	/* owned copy */
	Mm__V1__CommandResult *res;	/* one per command */
	Mm__V1__CommandResult **resp;
	Mm__V1__KsmSettings *ksm;	/* read-backs */
	char (*err)[ERR_MAX];
	size_t i;			/* command being executed */
	uint64_t t0_ms;			/* its start, loop ms */
	bool refreshing;		/* waiting for the balloon reading */
};

static struct actuator {
	struct actuator_conf conf;
	char host_id[TOPO_ID_MAX + 1];
	char queue[TOPO_ID_MAX + 32];
	char result_key[TOPO_ID_MAX + 32];
	char alert_key[TOPO_ID_MAX + 32];
	uv_loop_t loop;
	struct bus *bus;
	struct hv *hv;
	struct daemon_signals sig;
	uv_timer_t tick;
	uv_timer_t op_timer;
	struct act_limits lim;
	struct act_failsafe fs;
	struct act_order order;
	struct act_ksm ksm;
	bool ksm_ok;
	uint64_t online_mask;
	struct job *head, *tail, *cur;
	uint64_t op_gen;		/* the hypervisor request awaited */
	uint64_t last_cmd_ms;		/* loop ms of the last batch run */
	bool failsafe_on;
	bool stopping, releasing, closed;
	unsigned release_pending, released, release_failed;
	struct msg_dispatch_stats dstats;
	uint64_t batches, expired, stale, clamped, failed, deferred;
	uint64_t misrouted, ignored, failsafe_steps, publish_errors;
	uint64_t refused[ACT_REFUSAL_COUNT];	/* by reason */
	struct log_limit lim_refused;
} A;

static struct hv_vm *
vm_find(const char *id)
{
	return hv_find(A.hv, id);
}

/* ---- events ---- */

static int
publish_event(const char *key, Mm__V1__Event *ev)
{
	int r;

	ev->host_id = A.host_id;
	ev->source_id = A.host_id;
	ev->has_time_ms = 1;
	ev->time_ms = clock_ms(CLOCK_REALTIME);
	r = msg_publish(A.bus, MSG_EVENT, &ev->base, TOPO_EX_EVENTS, key,
	    true, NULL, NULL);
	if (r < 0) {
		A.publish_errors++;
		log_warnx("cannot publish event %s: %s", key, strerror(-r));
	}
	return r;
}

static void
alert(Mm__V1__Severity sev, const char *vm_id, uint64_t batch_seq,
    const char *reason, Mm__V1__Metric **metrics, size_t nmetrics)
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
	publish_event(A.alert_key, &ev);
}

/*
 * Publish ar (its results filled by the caller) as a RESULT event: the
 * host, the time, and the batch it answers (batch_seq 0: none, as when
 * the actuator asks for its targets). vm_id and reason may be NULL.
 */
static void
publish_result(Mm__V1__ActionResult *ar, uint64_t batch_seq,
    const char *vm_id, const char *reason)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;

	ar->host_id = A.host_id;
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
	publish_event(A.result_key, &ev);
}

/* ---- guests ---- */

/* The target in force: what was last set, else the balloon. */
static bool
vm_current(const struct hv_vm *vm, uint64_t *ret_kib)
{
	if (vm->target_known) {
		*ret_kib = vm->balloon_target_kib;
		return true;
	}
	if (vm->balloon_known) {
		*ret_kib = vm->balloon_actual_kib;
		return true;
	}
	return false;
}

static bool
vm_fresh(const struct hv_vm *vm)
{
	return vm->guest != NULL && uv_now(&A.loop) - vm->guest_rx_ms <=
	    (uint64_t)A.conf.stale_ms;
}

/* What the balloon holds inside the guest's MemTotal: all of it with
 * deflate-on-oom (when the sample says how much), none without. */
static uint64_t
balloon_in_total_kib(const struct hv_vm *vm)
{
	const Mm__V1__Vmstat *vs = vm->guest ? vm->guest->vmstat : NULL;
	uint64_t kib;

	if (gm_balloon_in_total(true, vm->deflate_on_oom, vs != NULL &&
	    vs->has_balloon_pages, vs != NULL ? vs->balloon_pages : 0, &kib))
		return kib;
	/* Not in the sample (the balloon's own statistics): what the
	 * balloon held when it was last read. */
	return vm->balloon_known && vm->max_kib > vm->balloon_actual_kib ?
	    vm->max_kib - vm->balloon_actual_kib : 0;
}

static void
vm_view(const struct hv_vm *vm, struct act_vm_view *v)
{
	const Mm__V1__Meminfo *mi = vm->guest ? vm->guest->meminfo : NULL;

	memset(v, 0, sizeof(*v));
	v->max_known = vm->max_known;
	v->max_kib = vm->max_kib;
	v->current_known = vm_current(vm, &v->current_kib);
	if (vm_fresh(vm) && mi != NULL && mi->has_total_kib &&
	    mi->has_available_kib && mi->available_kib <= mi->total_kib) {
		v->used_known = true;
		v->used_kib = gm_used_kib(mi->total_kib, mi->available_kib,
		    vm->doo_known, balloon_in_total_kib(vm),
		    vm->balloon_known, vm->balloon_actual_kib);
	}
}

static void
observe(const struct hv_vm *vm, Mm__V1__CommandResult *r)
{
	if (vm == NULL)
		return;
	r->has_balloon_target_kib = vm->target_known;
	r->balloon_target_kib = vm->balloon_target_kib;
	r->has_balloon_actual_kib = vm->balloon_known;
	r->balloon_actual_kib = vm->balloon_actual_kib;
}

/* ---- executing a batch ---- */

static void job_step(struct job *j);
static void job_next(void);
static void stop_continue(void);

static Mm__V1__CommandBatch *
batch_dup(const Mm__V1__CommandBatch *b)
{
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t len;
	int r;

	if (msg_pack(MSG_COMMAND_BATCH, &b->base, &buf, &len) < 0)
		return NULL;
	r = msg_unpack(MSG_COMMAND_BATCH, buf, len, &m, NULL, 0);
	free(buf);
	return r < 0 ? NULL : (Mm__V1__CommandBatch *)m;
}

static void
job_free(struct job *j)
{
	if (j == NULL)
		return;
	msg_free(j->b ? &j->b->base : NULL);
	free(j->res);
	free(j->resp);
	free(j->ksm);
	free(j->err);
	free(j);
}

static struct job *
job_new(Mm__V1__CommandBatch *b)
{
	struct job *j = calloc(1, sizeof(*j));
	size_t n = b->n_commands ? b->n_commands : 1, i;

	if (j == NULL)
		goto fail;
	j->b = b;
	j->res = calloc(n, sizeof(*j->res));
	j->resp = calloc(n, sizeof(*j->resp));
	j->ksm = calloc(n, sizeof(*j->ksm));
	j->err = calloc(n, sizeof(*j->err));
	if (j->res == NULL || j->resp == NULL || j->ksm == NULL ||
	    j->err == NULL)
		goto fail;
	for (i = 0; i < b->n_commands; i++) {
		mm__v1__command_result__init(&j->res[i]);
		j->res[i].has_index = 1;
		j->res[i].index = (uint32_t)i;
		j->resp[i] = &j->res[i];
	}
	return j;
fail:
	if (j == NULL)
		msg_free(&b->base);
	job_free(j);
	return NULL;
}

static void
set_result(struct job *j, Mm__V1__ResultStatus st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_result(struct job *j, Mm__V1__ResultStatus st, const char *fmt, ...)
{
	Mm__V1__CommandResult *r = &j->res[j->i];
	va_list ap;

	r->has_status = 1;
	r->status = st;
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(j->err[j->i], ERR_MAX, fmt, ap);
		va_end(ap);
		r->error = j->err[j->i];
	}
}

static void
all_results(struct job *j, Mm__V1__ResultStatus st, const char *why)
{
	for (j->i = 0; j->i < j->b->n_commands; j->i++)
		set_result(j, st, "%s", why);
}

static void
job_finish(struct job *j)
{
	Mm__V1__ActionResult ar = MM__V1__ACTION_RESULT__INIT;
	const Mm__V1__CommandBatch *b = j->b;
	const char *first = NULL;
	unsigned nfail = 0, nclamp = 0;
	size_t i;
	char why[MSG_TEXT_MAX];

	for (i = 0; i < b->n_commands; i++) {
		if (j->res[i].status == MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED) {
			nfail++;
			if (first == NULL)
				first = j->res[i].error;
		}
		nclamp += j->res[i].status ==
		    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED;
	}
	A.failed += nfail;
	A.clamped += nclamp;
	if (b->n_commands == 0) {
		/* The scheduler's heartbeat: nothing done, nothing to say. */
		log_debug("batch %" PRIu64 " from \"%s\": heartbeat", b->seq,
		    b->scheduler_id);
		goto done;
	}
	ar.scheduler_id = b->scheduler_id;
	ar.has_policy_version = b->has_policy_version;
	ar.policy_version = b->policy_version;
	ar.n_results = b->n_commands;
	ar.results = j->resp;
	publish_result(&ar, b->seq, NULL, NULL);
	log_debug("batch %" PRIu64 " from \"%s\": %zu commands, %u clamped, "
	    "%u failed", b->seq, b->scheduler_id, b->n_commands, nclamp,
	    nfail);
	if (nfail > 0) {
		snprintf(why, sizeof(why), "batch %" PRIu64 " from \"%s\": "
		    "%u of %zu commands failed, first: %s", b->seq,
		    b->scheduler_id, nfail, b->n_commands, first);
		log_warnx("%s", why);
		alert(MM__V1__SEVERITY__SEVERITY_WARNING, NULL, b->seq, why,
		    NULL, 0);
	}
done:
	A.cur = NULL;
	job_free(j);
	if (A.stopping)
		stop_continue();
	else
		job_next();
}

static void op_timer_cb(uv_timer_t *t);

/* Bound the wait for the hypervisor's answer. */
static void
op_arm(void)
{
	uv_timer_start(&A.op_timer, op_timer_cb,
	    (uint64_t)A.conf.op_timeout_ms, 0);
}

static void
job_advance(struct job *j)
{
	j->res[j->i].has_elapsed_ms = 1;
	j->res[j->i].elapsed_ms = (uint32_t)(uv_now(&A.loop) - j->t0_ms);
	j->i++;
	job_step(j);
}

static void
refresh_done_cb(struct hv *hv, int status, void *arg)
{
	struct job *j = A.cur;

	if ((uintptr_t)arg != A.op_gen || j == NULL)
		return;	/* timed out already */
	A.op_gen++;
	uv_timer_stop(&A.op_timer);
	observe(vm_find(j->b->commands[j->i]->balloon->vm_id), &j->res[j->i]);
	job_advance(j);
}

static void
balloon_refresh(struct job *j)
{
	const char *id = j->b->commands[j->i]->balloon->vm_id;

	j->refreshing = true;
	if (hv_refresh(A.hv, id, refresh_done_cb,
	    (void *)(uintptr_t)++A.op_gen) == 0) {
		op_arm();
		return;
	}
	observe(vm_find(id), &j->res[j->i]);
	job_advance(j);
}

static void
set_done_cb(struct hv *hv, int status, void *arg)
{
	struct job *j = A.cur;

	if ((uintptr_t)arg != A.op_gen || j == NULL)
		return;
	uv_timer_stop(&A.op_timer);
	if (status < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "hypervisor refused the target: %s", strerror(-status));
		observe(vm_find(j->b->commands[j->i]->balloon->vm_id),
		    &j->res[j->i]);
		A.op_gen++;
		job_advance(j);
		return;
	}
	balloon_refresh(j);
}

static void
op_timer_cb(uv_timer_t *t)
{
	struct job *j = A.cur;

	A.op_gen++;	/* a late answer is ignored */
	if (j == NULL)
		return;
	if (!j->refreshing)
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "no answer from the hypervisor within %" PRId64 " ms",
		    A.conf.op_timeout_ms);
	observe(vm_find(j->b->commands[j->i]->balloon->vm_id), &j->res[j->i]);
	job_advance(j);
}

/* Keep target_kib of command j->i to set later (deferred_cb). */
static void
defer(struct avm *a, const struct job *j, uint64_t target_kib)
{
	a->deferred = true;
	a->deferred_kib = target_kib;
	a->deferred_until_ms = j->b->expires_ms;
	a->deferred_seq = j->b->seq;
	a->deferred_index = (uint32_t)j->i;
	snprintf(a->deferred_sched, sizeof(a->deferred_sched), "%s",
	    j->b->scheduler_id != NULL ? j->b->scheduler_id : "");
}

/* Returns true when it waits for the hypervisor. */
static bool
exec_balloon(struct job *j, const Mm__V1__SetBalloonTarget *c)
{
	Mm__V1__CommandResult *r = &j->res[j->i];
	Mm__V1__ResultStatus st = MM__V1__RESULT_STATUS__RESULT_STATUS_OK;
	struct act_vm_view v;
	enum act_clamp why;
	struct hv_vm *vm;
	struct avm *a;
	uint64_t t, floor, cur, now = uv_now(&A.loop);
	int rc;

	r->vm_id = c->vm_id;
	vm = vm_find(c->vm_id);
	if (vm == NULL || vm->user == NULL) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\" is not on this host", c->vm_id);
		return false;
	}
	a = vm->user;
	if (!vm->max_known) {
		/* Just found (a restart): QMP answers in milliseconds. The
		 * target waits for it, not beyond the batch's expiry. */
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\": its maximum is not known yet; deferred until "
		    "it is", c->vm_id);
		defer(a, j, c->target_kib);
		observe(vm, r);
		return false;
	}
	vm_view(vm, &v);
	t = act_clamp(&A.lim, &v, c->target_kib, &why, &floor);
	if (why != ACT_CLAMP_NONE) {
		st = MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED;
		set_result(j, st, "target %" PRIu64 " KiB is %s (%" PRIu64
		    " KiB), set %" PRIu64 " KiB%s", c->target_kib,
		    act_clamp_name(why), why == ACT_CLAMP_MAX ? v.max_kib :
		    floor, t, why == ACT_CLAMP_NO_STATS ? "; the shrink "
		    "waits for fresh stats until the batch expires" : "");
		log_info("vm \"%s\": target %" PRIu64 " MiB is %s, clamping "
		    "to %" PRIu64 " MiB", c->vm_id, c->target_kib / 1024,
		    act_clamp_name(why), t / 1024);
	} else {
		set_result(j, st, NULL);
	}
	a->deferred = false;
	if (why == ACT_CLAMP_NO_STATS) {
		/* Shrinking waits for the guest's stats (after a restart
		 * they take a moment), but not beyond the batch's expiry. */
		defer(a, j, c->target_kib);
		A.deferred++;
	}
	if (vm->target_known && vm->balloon_target_kib == t) {
		balloon_refresh(j);
		return true;
	}
	if (a->changed && now - a->last_change_ms <
	    (uint64_t)A.conf.balloon_interval_ms && vm_current(vm, &cur) &&
	    t < cur) {
		/* Only shrinks wait: a guest that needs memory gets it now.
		 * Not dropped: the latest wanted target is set as soon as
		 * the rate limit allows, unless a newer one replaces it. */
		defer(a, j, c->target_kib);
		A.deferred++;
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "rate limit: target changed %" PRIu64 " ms ago; %" PRIu64
		    " KiB deferred by %" PRIu64 " ms", now - a->last_change_ms,
		    t, (uint64_t)A.conf.balloon_interval_ms -
		    (now - a->last_change_ms));
		observe(vm, r);
		r->has_balloon_target_kib = 1;
		r->balloon_target_kib = t;
		return false;
	}
	a->changed = true;
	a->last_change_ms = now;
	j->refreshing = false;
	rc = hv_set_target(A.hv, c->vm_id, t, set_done_cb,
	    (void *)(uintptr_t)++A.op_gen);
	if (rc < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "cannot set the target: %s", strerror(-rc));
		observe(vm, r);
		return false;
	}
	op_arm();
	return true;
}

static void
exec_ksm(struct job *j, const Mm__V1__SetKsm *c)
{
	char why[ERR_MAX];
	int r;

	if (!A.conf.ksm) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "ksm commands are disabled in the configuration");
		return;
	}
	if (!A.ksm_ok) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "no KSM on this host");
		return;
	}
	r = c->settings ? act_ksm_apply(&A.ksm, c->settings, why,
	    sizeof(why)) : 0;
	if (r < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "ksm %s", why);
		log_warnx("ksm: %s", why);
	} else {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_OK, NULL);
	}
	if (act_ksm_read(&A.ksm, &j->ksm[j->i]) == 0)
		j->res[j->i].ksm = &j->ksm[j->i];
}

static uint64_t
pages_on(const uint64_t *pages, uint64_t mask)
{
	uint64_t sum = 0;
	unsigned n;

	for (n = 0; n < MSG_NODES_MAX; n++)
		if (mask & (1ull << n))
			sum += pages[n];
	return sum;
}

static void
exec_numa(struct job *j, const Mm__V1__MigrateNuma *c)
{
	uint64_t pages[MSG_NODES_MAX], after[MSG_NODES_MAX];
	struct act_numa_plan p;
	struct hv_vm *vm;
	long left;
	int r;

	j->res[j->i].vm_id = c->vm_id;
	if (!A.conf.numa) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "numa commands are disabled in the configuration");
		return;
	}
	vm = vm_find(c->vm_id);
	if (vm == NULL || vm->pid <= 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\": %s", c->vm_id, vm == NULL ?
		    "not on this host" : "its process is not known");
		return;
	}
	r = hs_read_numa_maps(A.conf.proc_root, vm->pid, pages);
	if (r < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "vm \"%s\": numa_maps of pid %d: %s", c->vm_id,
		    (int)vm->pid, strerror(-r));
		return;
	}
	r = act_numa_plan(A.online_mask, pages, c->from_nodes, c->n_from_nodes,
	    c->to_node, c->has_max_pages ? c->max_pages : 0, &p);
	if (r < 0) {
		set_result(j, r == -ENOENT ?
		    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED :
		    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED, "%s", p.why);
		return;
	}
	if (hv_get_type(A.hv) == HV_TYPE_SIM) {
		/* mm-sim's pids are not real processes. */
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "sim: would move %" PRIu64 " pages from nodes 0x%" PRIx64
		    " to 0x%" PRIx64, p.pages, p.from_mask, p.to_mask);
		return;
	}
	left = act_migrate_pages(vm->pid, p.from_mask, p.to_mask);
	if (left < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "migrate_pages of pid %d: %s", (int)vm->pid,
		    strerror((int)-left));
		return;
	}
	set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_OK, left > 0 ?
	    "%ld pages could not be moved" : NULL, left);
	if (hs_read_numa_maps(A.conf.proc_root, vm->pid, after) == 0 &&
	    pages_on(after, p.from_mask) <= p.pages) {
		j->res[j->i].has_moved_pages = 1;
		j->res[j->i].moved_pages = p.pages -
		    pages_on(after, p.from_mask);
	}
}

static void
job_step(struct job *j)
{
	const Mm__V1__Command *c;

	for (; j->i < j->b->n_commands; j->i++) {
		c = j->b->commands[j->i];
		j->t0_ms = uv_now(&A.loop);
		switch (c->kind_case) {
		case MM__V1__COMMAND__KIND_BALLOON:
			if (exec_balloon(j, c->balloon))
				return;	/* continues from a callback */
			break;
		case MM__V1__COMMAND__KIND_KSM:
			exec_ksm(j, c->ksm);
			break;
		case MM__V1__COMMAND__KIND_NUMA:
			exec_numa(j, c->numa);
			break;
		default:
			set_result(j,
			    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
			    "no command kind");
			break;
		}
		j->res[j->i].has_elapsed_ms = 1;
		j->res[j->i].elapsed_ms = (uint32_t)(uv_now(&A.loop) -
		    j->t0_ms);
	}
	job_finish(j);
}

static void
job_start(struct job *j)
{
	const Mm__V1__CommandBatch *b = j->b;
	enum act_verdict v;
	uint64_t now = clock_ms(CLOCK_REALTIME);

	A.cur = j;
	A.batches++;
	if (b->expires_ms < now) {
		A.expired++;
		log_info("batch %" PRIu64 " from \"%s\" expired %" PRIu64
		    " ms ago, ignored", b->seq, b->scheduler_id,
		    now - b->expires_ms);
		all_results(j, MM__V1__RESULT_STATUS__RESULT_STATUS_EXPIRED,
		    "batch expired before it could be executed");
		job_finish(j);
		return;
	}
	v = act_order_check(&A.order, b->scheduler_id, b->seq, b->issued_ms);
	if (v == ACT_ORDER_STALE) {
		A.stale++;
		log_info("batch %" PRIu64 " from \"%s\" is out of order (last "
		    "executed %" PRIu64 " from \"%s\"), ignored", b->seq,
		    b->scheduler_id, A.order.seq, A.order.scheduler_id);
		all_results(j, MM__V1__RESULT_STATUS__RESULT_STATUS_OUT_OF_ORDER,
		    "an equal or later batch was executed already");
		job_finish(j);
		return;
	}
	if (v == ACT_ORDER_RESTART || v == ACT_ORDER_FAILOVER)
		log_info("batches now from \"%s\" at %" PRIu64 " (%s)",
		    b->scheduler_id, b->seq, v == ACT_ORDER_RESTART ?
		    "scheduler restarted" : "another scheduler");
	act_order_commit(&A.order, b->scheduler_id, b->seq, b->issued_ms,
	    now);
	A.last_cmd_ms = uv_now(&A.loop);
	if (A.failsafe_on) {
		A.failsafe_on = false;
		log_info("commands again: fail-safe off");
	}
	j->i = 0;
	job_step(j);
}

static void
job_next(void)
{
	struct job *j = A.head;

	if (A.cur != NULL || j == NULL)
		return;
	A.head = j->next;
	if (A.head == NULL)
		A.tail = NULL;
	job_start(j);
}

static enum bus_disposition
batch_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *b = (const Mm__V1__CommandBatch *)m;
	Mm__V1__CommandBatch *copy;
	enum act_refusal rf;
	struct job *j;

	if (strcmp(b->host_id, A.host_id) != 0) {
		if (A.misrouted++ == 0 || log_debug_enabled())
			log_warnx("batch %" PRIu64 " for host \"%s\" on my "
			    "queue, dead-lettered", b->seq, b->host_id);
		return BUS_REJECT;
	}
	rf = act_batch_check(A.conf.schedulers,
	    (uint64_t)A.conf.clock_skew_ms, b->scheduler_id, b->issued_ms,
	    b->expires_ms, clock_ms(CLOCK_REALTIME));
	if (rf != ACT_OK) {
		A.refused[rf]++;
		log_warnx_limited(&A.lim_refused, "batch %" PRIu64 " from "
		    "\"%s\" refused: %s, dead-lettered", b->seq,
		    b->scheduler_id, act_refusal_name(rf));
		return BUS_REJECT;
	}
	if (A.stopping) {
		/* The release supersedes it; the scheduler sends what it
		 * wants again with its next decision. */
		A.ignored++;
		return BUS_ACK;
	}
	copy = batch_dup(b);
	j = copy ? job_new(copy) : NULL;
	if (j == NULL)
		return BUS_REQUEUE;
	if (A.tail != NULL)
		A.tail->next = j;
	else
		A.head = j;
	A.tail = j;
	job_next();
	return BUS_ACK;
}

static const struct msg_handler handlers[] = {
	{ MSG_COMMAND_BATCH, batch_cb },
};

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	enum bus_disposition r;
	char why[256] = "";

	r = msg_dispatch(handlers, 1, d, NULL, &A.dstats, why, sizeof(why));
	if (r == BUS_REJECT && strcmp(why, "") != 0)
		log_warnx("malformed message on %s, dead-lettered: %s",
		    d->queue, why);
	return r;
}

/* ---- rate-limited targets and the fail-safe ---- */

/* A deferred target, once QMP (or xenstore) took it. */
struct deferred_set {
	char vm_id[MSG_ID_MAX + 1];
	char sched[MSG_ID_MAX + 1];
	uint64_t target_kib;
	uint64_t seq;
	uint32_t index;
};

/* Say what finally happened to a command reported SKIPPED: a RESULT for
 * its batch with that one command. */
static void
deferred_done_cb(struct hv *hv, int status, void *arg)
{
	struct deferred_set *ds = arg;
	Mm__V1__ActionResult ar = MM__V1__ACTION_RESULT__INIT;
	Mm__V1__CommandResult cr = MM__V1__COMMAND_RESULT__INIT, *crp = &cr;
	char err[128];

	(void)hv;
	cr.has_index = 1;
	cr.index = ds->index;
	cr.has_status = 1;
	cr.status = status == 0 ? MM__V1__RESULT_STATUS__RESULT_STATUS_OK :
	    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED;
	cr.vm_id = ds->vm_id;
	cr.has_balloon_target_kib = status == 0;
	cr.balloon_target_kib = ds->target_kib;
	snprintf(err, sizeof(err), "deferred target %s: %s",
	    status == 0 ? "set" : "failed", status == 0 ? "the rate limit "
	    "let it through" : strerror(-status));
	cr.error = err;
	ar.scheduler_id = ds->sched[0] != '\0' ? ds->sched : NULL;
	ar.n_results = 1;
	ar.results = &crp;
	publish_result(&ar, ds->seq, ds->vm_id, NULL);
	free(ds);
}

static void
deferred_cb(struct hv_vm *vm, void *arg)
{
	struct avm *a = vm->user;
	uint64_t now = uv_now(&A.loop), t;
	struct act_vm_view v;
	struct deferred_set *ds;
	enum act_clamp why;
	int r;

	if (a == NULL || !a->deferred || !vm->max_known || (a->changed &&
	    now - a->last_change_ms < (uint64_t)A.conf.balloon_interval_ms))
		return;
	if (clock_ms(CLOCK_REALTIME) > a->deferred_until_ms) {
		a->deferred = false;
		log_debug("vm \"%s\": deferred target %" PRIu64 " MiB expired",
		    vm->id, a->deferred_kib / 1024);
		return;
	}
	/* The guest may have changed since: its limits are checked again. */
	vm_view(vm, &v);
	t = act_clamp(&A.lim, &v, a->deferred_kib, &why, NULL);
	if (why == ACT_CLAMP_NO_STATS)
		return;	/* still no fresh stats */
	a->deferred = false;
	ds = calloc(1, sizeof(*ds));
	if (ds != NULL) {
		snprintf(ds->vm_id, sizeof(ds->vm_id), "%s", vm->id);
		ds->target_kib = t;
		ds->seq = a->deferred_seq;
		ds->index = a->deferred_index;
		memcpy(ds->sched, a->deferred_sched, sizeof(ds->sched));
	}
	if (vm->target_known && vm->balloon_target_kib == t) {
		/* In place already: the scheduler still learns it is. */
		if (ds != NULL)
			deferred_done_cb(A.hv, 0, ds);
		return;
	}
	a->changed = true;
	a->last_change_ms = now;
	r = hv_set_target(A.hv, vm->id, t, ds != NULL ? deferred_done_cb :
	    NULL, ds);
	if (r < 0) {
		free(ds);
		log_warnx("vm \"%s\": deferred target %" PRIu64 " MiB: %s",
		    vm->id, t / 1024, strerror(-r));
	} else {
		log_debug("vm \"%s\": deferred target %" PRIu64 " MiB set",
		    vm->id, t / 1024);
	}
}

struct fs_round {
	uint64_t host_avail_kib;
};

/* The guest's major faults per second between its last two samples. */
static void
fault_rate(struct avm *a, const Mm__V1__GuestStats *g)
{
	uint64_t n;

	if (g->vmstat == NULL || !g->vmstat->has_major_faults ||
	    !g->has_time_ms || g->time_ms == a->fs_faults_ms)
		return;
	n = g->vmstat->major_faults;
	/* A counter that went back is a restarted guest: no rate yet. */
	a->fs_has_rate = a->fs_faults_ms != 0 && g->time_ms > a->fs_faults_ms &&
	    n >= a->fs_faults;
	if (a->fs_has_rate)
		a->fs_faults_s = (double)(n - a->fs_faults) * 1000.0 /
		    (double)(g->time_ms - a->fs_faults_ms);
	a->fs_faults = n;
	a->fs_faults_ms = g->time_ms;
}

static void
failsafe_cb(struct hv_vm *vm, void *arg)
{
	struct fs_round *fr = arg;
	struct avm *a = vm->user;
	const Mm__V1__GuestStats *g = vm->guest;
	uint64_t now = uv_now(&A.loop), t, cur;
	struct act_fs_vm f = { 0 };
	Mm__V1__Metric m[3], *mp[3];
	char why[MSG_TEXT_MAX];
	size_t i;
	int r;

	if (a == NULL || g == NULL)
		return;
	fault_rate(a, g);
	if (now < a->fs_next_ms || !vm->max_known || !vm_current(vm, &cur))
		return;
	f.fresh = vm_fresh(vm);
	f.has_faults = a->fs_has_rate;
	f.faults_s = a->fs_faults_s;
	f.has_psi = g->psi && g->psi->has_some_avg10_pct;
	f.psi_some_avg10 = f.has_psi ? g->psi->some_avg10_pct : 0;
	f.has_mem = g->meminfo && g->meminfo->has_total_kib &&
	    g->meminfo->has_available_kib;
	f.total_kib = f.has_mem ? g->meminfo->total_kib : 0;
	f.available_kib = f.has_mem ? g->meminfo->available_kib : 0;
	f.current_kib = cur;
	f.max_kib = vm->max_kib;
	t = act_fs_target(&A.fs, &f, fr->host_avail_kib);
	if (t == 0)
		return;
	a->fs_next_ms = now + (uint64_t)A.conf.failsafe_interval_ms;
	a->deferred = false;
	a->changed = true;
	a->last_change_ms = now;
	r = hv_set_target(A.hv, vm->id, t, NULL, NULL);
	if (r < 0) {
		log_warnx("vm \"%s\": fail-safe growth: %s", vm->id,
		    strerror(-r));
		return;
	}
	A.failsafe_steps++;
	fr->host_avail_kib -= t - cur;
	snprintf(why, sizeof(why), "fail-safe: no command for %" PRIu64
	    " s and the guest is under pressure (psi some avg10 %.1f%%, "
	    "%.0f major faults/s, available %" PRIu64 " of %" PRIu64
	    " KiB): grown from %" PRIu64 " to %" PRIu64 " KiB",
	    (now - A.last_cmd_ms) / 1000, f.psi_some_avg10, f.faults_s,
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
		publish_event(A.alert_key, &ev);
	}
}

static void
tick_cb(uv_timer_t *t)
{
	Mm__V1__Meminfo mi;
	struct fs_round fr;
	uint64_t now = uv_now(&A.loop);

	hv_foreach(A.hv, deferred_cb, NULL);
	if (A.conf.failsafe_after_ms == 0 ||
	    now - A.last_cmd_ms < (uint64_t)A.conf.failsafe_after_ms)
		return;
	if (!A.failsafe_on) {
		A.failsafe_on = true;
		log_warnx("no command for %" PRIu64 " s: fail-safe on",
		    (now - A.last_cmd_ms) / 1000);
	}
	if (hs_read_meminfo(A.conf.proc_root, &mi) < 0 ||
	    !mi.has_available_kib)
		return;	/* no growth without knowing the host's room */
	fr.host_avail_kib = mi.available_kib;
	hv_foreach(A.hv, failsafe_cb, &fr);
}

/* ---- driver events ---- */

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

/* ---- lifecycle ---- */

/*
 * Ask the schedulers for this host's targets: an actuator that starts or
 * comes back may have missed batches (they expire in its queue), and it
 * does not wait for the next change to get them.
 */
static void
ask_sync(void)
{
	Mm__V1__ActionResult ar = MM__V1__ACTION_RESULT__INIT;

	ar.has_sync = 1;
	ar.sync = 1;
	publish_result(&ar, 0, NULL, "actuator started or reconnected: asks "
	    "for its targets");
}

static void
bus_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	if (up) {
		log_info("connected to the broker");
		if (!A.stopping)
			ask_sync();
	} else if (!A.stopping) {
		log_warnx("broker: %s", reason);
	}
}

static void
free_vm_cb(struct hv_vm *vm, void *arg)
{
	free(vm->user);
	vm->user = NULL;
}

static void
close_all(void)
{
	Mm__V1__Metric m[2], *mp[2] = { &m[0], &m[1] };
	char why[MSG_TEXT_MAX];
	int r;

	if (A.closed)
		return;
	A.closed = true;
	uv_timer_stop(&A.op_timer);
	if (A.conf.release_on_stop) {
		snprintf(why, sizeof(why), "actuator stopping: %u guest(s) "
		    "set back to their maximum, %u failed", A.released -
		    A.release_failed, A.release_failed + A.release_pending);
		log_info("%s", why);
		mm__v1__metric__init(&m[0]);
		mm__v1__metric__init(&m[1]);
		m[0].name = "released";
		m[0].has_value = 1;
		m[0].value = A.released - A.release_failed;
		m[0].unit = "count";
		m[1].name = "release_failed";
		m[1].has_value = 1;
		m[1].value = A.release_failed + A.release_pending;
		m[1].unit = "count";
		alert(A.release_failed + A.release_pending > 0 ?
		    MM__V1__SEVERITY__SEVERITY_WARNING :
		    MM__V1__SEVERITY__SEVERITY_INFO, NULL, 0, why, mp, 2);
	}
	if (A.ksm_ok) {
		r = act_ksm_restore(&A.ksm);
		if (r < 0)
			log_warnx("ksm: restoring the settings found at start: "
			    "%s", strerror(-r));
		else
			log_info("ksm: settings found at start restored");
	}
	act_ksm_free(&A.ksm);
	log_info("stopped: %" PRIu64 " batches (%" PRIu64 " expired, %"
	    PRIu64 " out of order), %" PRIu64 " clamped, %" PRIu64
	    " failed, %" PRIu64 " deferred, %" PRIu64 " fail-safe steps, %"
	    PRIu64 " malformed, refused: %" PRIu64 " from other schedulers, %"
	    PRIu64 " from the future, %" PRIu64 " with a long expiry",
	    A.batches, A.expired, A.stale, A.clamped,
	    A.failed, A.deferred, A.failsafe_steps, A.dstats.bad_content_type
	    + A.dstats.unknown_type + A.dstats.unexpected_type +
	    A.dstats.too_big + A.dstats.undecodable + A.dstats.invalid +
	    A.misrouted, A.refused[ACT_REFUSE_SCHEDULER],
	    A.refused[ACT_REFUSE_FUTURE], A.refused[ACT_REFUSE_TTL]);
	uv_close((uv_handle_t *)&A.tick, NULL);
	uv_close((uv_handle_t *)&A.op_timer, NULL);
	hv_foreach(A.hv, free_vm_cb, NULL);
	hv_close(A.hv, NULL, NULL);
	/* Waits, bounded, for the broker to confirm the events. */
	bus_close(A.bus, (unsigned)A.conf.release_timeout_ms, NULL, NULL);
	daemon_signals_close(&A.sig);
}

static void
release_done_cb(struct hv *hv, int status, void *arg)
{
	if (A.closed)
		return;
	if (status < 0)
		A.release_failed++;
	A.release_pending--;
	if (A.release_pending == 0)
		close_all();
}

static void
release_timeout_cb(uv_timer_t *t)
{
	log_warnx("release: %u guest(s) did not answer within %" PRId64
	    " ms", A.release_pending, A.conf.release_timeout_ms);
	close_all();
}

static void
release_cb(struct hv_vm *vm, void *arg)
{
	int r;

	if (!vm->max_known) {
		log_warnx("vm \"%s\": maximum unknown, not released", vm->id);
		return;
	}
	A.released++;
	r = hv_set_target(A.hv, vm->id, vm->max_kib, release_done_cb, NULL);
	if (r < 0) {
		A.release_failed++;
		log_warnx("vm \"%s\": release to %" PRIu64 " MiB: %s", vm->id,
		    vm->max_kib / 1024, strerror(-r));
		return;
	}
	A.release_pending++;
}

/* After the batch in progress (if any) has finished. */
static void
stop_continue(void)
{
	struct job *j;

	if (A.releasing)
		return;
	A.releasing = true;
	while ((j = A.head) != NULL) {
		A.head = j->next;
		A.ignored++;
		job_free(j);
	}
	A.tail = NULL;
	if (A.conf.release_on_stop)
		hv_foreach(A.hv, release_cb, NULL);
	if (A.release_pending == 0) {
		close_all();
		return;
	}
	uv_timer_start(&A.op_timer, release_timeout_cb,
	    (uint64_t)A.conf.release_timeout_ms, 0);
}

static void
stop_cb(void *arg)
{
	if (A.stopping)
		return;
	A.stopping = true;
	daemon_notify_stopping();
	log_info("stopping%s", A.conf.release_on_stop ?
	    ": returning guests to their maximum" : "");
	uv_timer_stop(&A.tick);
	if (A.cur == NULL)
		stop_continue();
	/* else job_finish() continues, within op_timeout */
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct hv_config hc = { 0 };
	struct bus_config bc;
	int r;

	daemon_host_conf(argc, argv, "mm-actuator", DEFAULT_CONF, conf_table, NKEYS,
	    &A.conf, &A.conf.host_id, "actuator", &opts);
	snprintf(A.host_id, sizeof(A.host_id), "%s", A.conf.host_id);
	topo_actuator_queue(A.queue, sizeof(A.queue), A.host_id);
	topo_event_key(A.result_key, sizeof(A.result_key), TOPO_EV_RESULT,
	    A.host_id);
	topo_event_key(A.alert_key, sizeof(A.alert_key), TOPO_EV_ALERT,
	    A.host_id);
	A.lim.vm_min_kib = (uint64_t)A.conf.vm_min_kib;
	A.lim.used_margin_kib = (uint64_t)A.conf.used_margin_kib;
	A.fs.psi_pct = (double)A.conf.failsafe_psi_pct;
	A.fs.avail_pct = (double)A.conf.failsafe_avail_pct;
	A.fs.faults_s = (double)A.conf.failsafe_faults_s;
	A.fs.step_kib = (uint64_t)A.conf.failsafe_step_kib;
	A.fs.host_reserve_kib = (uint64_t)A.conf.host_reserve_kib;

	if (A.conf.ksm) {
		r = act_ksm_init(&A.ksm, A.conf.sys_root);
		A.ksm_ok = r == 0;
		if (r < 0)
			log_info("no KSM under %s (%s): ksm commands will fail",
			    A.conf.sys_root, strerror(-r));
	}
	if (act_numa_online(A.conf.sys_root, &A.online_mask) < 0)
		A.online_mask = 1;

	/* A VM or broker gone mid-write is an EPIPE error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&A.loop) < 0)
		fatalx("uv_loop_init");
	bus_conf_apply(&A.conf.bus, "mm-actuator", &bc);
	bc.state_cb = bus_state_cb;
	A.bus = bus_new(&A.loop, &bc);
	if (A.bus == NULL)
		fatal("bus");
	if ((r = topo_declare_dead(A.bus)) < 0 ||
	    (r = topo_declare_events_exchange(A.bus)) < 0 ||
	    (r = topo_declare_actuator_queue(A.bus, A.host_id)) < 0)
		fatalx("declaring the topology: %s", strerror(-r));
	if (bus_consume(A.bus, A.queue, false, delivery_cb, NULL) < 0)
		fatalx("consuming %s", A.queue);

	hc.type = (enum hv_type)A.conf.driver;
	hc.vm_dir = A.conf.vm_dir;
	hc.qmp_ext = A.conf.monitor;
	/* The agent's socket is the collector's: the guest's use comes from
	 * the balloon's own statistics. */
	hc.no_agent = true;
	hc.balloon_path = A.conf.balloon_path;
	hc.rescan_ms = (unsigned)A.conf.rescan_ms;
	hc.poll_ms = (unsigned)A.conf.poll_ms;
	hc.event_cb = on_hv_event;
	A.hv = daemon_hv_start(&A.loop, &hc);

	if (daemon_signals_init(&A.sig, &A.loop, stop_cb, NULL, NULL) < 0)
		fatalx("signals");
	uv_timer_init(&A.loop, &A.tick);
	uv_timer_init(&A.loop, &A.op_timer);
	uv_timer_start(&A.tick, tick_cb, TICK_MS, TICK_MS);
	A.last_cmd_ms = uv_now(&A.loop);
	if (bus_start(A.bus) < 0)
		fatalx("bus_start");
	log_info("host \"%s\": %s driver, commands from %s, results to %s "
	    "%s", A.host_id, hv_type_name(hc.type), A.queue, TOPO_EX_EVENTS,
	    A.result_key);
	daemon_notify_ready("actuating");

	uv_run(&A.loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&A.loop);
	if (r < 0)
		log_warnx("loop not closed cleanly: %s", uv_strerror(r));
	conf_free(conf_table, NKEYS, &A.conf);
	return 0;
}
