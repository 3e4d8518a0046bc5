/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The batch executor: a CommandBatch delivered on the host's queue is
 * checked (sender, dates), queued, then run in order, one command at a
 * time: balloon targets within the VM's limits and the safety floor
 * (act_clamp()), at most one shrink per balloon_interval, KSM settings and
 * NUMA moves. Each batch is answered with an ActionResult; a target that
 * had to wait is set later and answered again (deferred targets).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actuator.h"
#include "clock.h"
#include "hoststats.h"
#include "hv.h"
#include "log.h"

/* A batch being executed, or waiting to be. */
struct job {
	struct job *next;
	struct actuator *a;
	Mm__V1__CommandBatch *b;	/* owned copy */
	Mm__V1__CommandResult *res;	/* one per command */
	Mm__V1__CommandResult **resp;
	Mm__V1__KsmSettings *ksm;	/* read-backs */
	char (*err)[ACT_ERR_MAX];
	size_t i;			/* command being executed */
	uint64_t t0_ms;			/* its start, loop ms */
	bool refreshing;		/* waiting for the balloon reading */
};

/* A hypervisor request of a job: the answer of an older one (timed out)
 * is ignored. Freed by the callback, which the driver always calls. */
struct op {
	struct actuator *a;
	uint64_t gen;
};

/* ---- guests ---- */

bool
act_vm_current(const struct hv_vm *vm, uint64_t *ret_kib)
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

bool
act_vm_fresh(const struct actuator *a, const struct hv_vm *vm)
{
	return vm->guest != NULL && uv_now(a->loop) - vm->guest_rx_ms <=
	    (uint64_t)a->conf.stale_ms;
}

static void
vm_view(const struct actuator *a, const struct hv_vm *vm,
    struct act_vm_view *v)
{
	const Mm__V1__Meminfo *mi = vm->guest ? vm->guest->meminfo : NULL;

	memset(v, 0, sizeof(*v));
	v->max_known = vm->max_known;
	v->max_kib = vm->max_kib;
	v->current_known = act_vm_current(vm, &v->current_kib);
	if (act_vm_fresh(a, vm) && mi != NULL && mi->has_total_kib &&
	    mi->has_available_kib && mi->available_kib <= mi->total_kib) {
		v->used_known = hv_guest_used_kib(vm, vm->guest, &v->used_kib);
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
static void job_next(struct actuator *a);

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
job_new(struct actuator *a, Mm__V1__CommandBatch *b)
{
	struct job *j = calloc(1, sizeof(*j));
	size_t n = b->n_commands ? b->n_commands : 1, i;

	if (j == NULL)
		goto fail;
	j->a = a;
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
		vsnprintf(j->err[j->i], ACT_ERR_MAX, fmt, ap);
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
	struct actuator *a = j->a;
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
	a->failed += nfail;
	a->clamped += nclamp;
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
	act_publish_result(a, &ar, b->seq, NULL, NULL);
	log_debug("batch %" PRIu64 " from \"%s\": %zu commands, %u clamped, "
	    "%u failed", b->seq, b->scheduler_id, b->n_commands, nclamp,
	    nfail);
	if (nfail > 0) {
		snprintf(why, sizeof(why), "batch %" PRIu64 " from \"%s\": "
		    "%u of %zu commands failed, first: %s", b->seq,
		    b->scheduler_id, nfail, b->n_commands, first);
		log_warnx("%s", why);
		act_alert(a, MM__V1__SEVERITY__SEVERITY_WARNING, NULL, b->seq,
		    why, NULL, 0);
	}
done:
	a->cur = NULL;
	job_free(j);
	if (a->stopping)
		act_release(a);
	else
		job_next(a);
}

static void op_timer_cb(uv_timer_t *t);

/* A new request awaited (NULL without memory), bounded by op_timeout. */
static struct op *
op_new(struct actuator *a)
{
	struct op *op = malloc(sizeof(*op));

	if (op == NULL)
		return NULL;
	op->a = a;
	op->gen = ++a->op_gen;
	uv_timer_start(&a->op_timer, op_timer_cb,
	    (uint64_t)a->conf.op_timeout_ms, 0);
	return op;
}

/* The request could not be made: not awaited. */
static void
op_cancel(struct op *op)
{
	struct actuator *a = op->a;

	uv_timer_stop(&a->op_timer);
	a->op_gen++;
	free(op);
}

/* The job awaiting this answer (freed here), or NULL when none does:
 * it timed out already. */
static struct job *
op_done(void *arg)
{
	struct op *op = arg;
	struct actuator *a = op->a;
	bool awaited = op->gen == a->op_gen;

	free(op);
	if (!awaited || a->cur == NULL)
		return NULL;
	uv_timer_stop(&a->op_timer);
	return a->cur;
}

static struct hv_vm *
cmd_vm(const struct job *j)
{
	return hv_find(j->a->hv, j->b->commands[j->i]->balloon->vm_id);
}

static void
job_advance(struct job *j)
{
	j->res[j->i].has_elapsed_ms = 1;
	j->res[j->i].elapsed_ms = (uint32_t)(uv_now(j->a->loop) - j->t0_ms);
	j->i++;
	job_step(j);
}

static void
refresh_done_cb(struct hv *hv, int status, void *arg)
{
	struct job *j = op_done(arg);

	if (j == NULL)
		return;	/* timed out already */
	j->a->op_gen++;
	observe(cmd_vm(j), &j->res[j->i]);
	job_advance(j);
}

static void
balloon_refresh(struct job *j)
{
	const char *id = j->b->commands[j->i]->balloon->vm_id;
	struct op *op = op_new(j->a);

	j->refreshing = true;
	if (op != NULL && hv_refresh(j->a->hv, id, refresh_done_cb, op) == 0)
		return;
	if (op != NULL)
		op_cancel(op);
	observe(cmd_vm(j), &j->res[j->i]);
	job_advance(j);
}

static void
set_done_cb(struct hv *hv, int status, void *arg)
{
	struct job *j = op_done(arg);

	if (j == NULL)
		return;
	if (status < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "hypervisor refused the target: %s", strerror(-status));
		observe(cmd_vm(j), &j->res[j->i]);
		j->a->op_gen++;
		job_advance(j);
		return;
	}
	balloon_refresh(j);
}

static void
op_timer_cb(uv_timer_t *t)
{
	struct actuator *a = t->data;
	struct job *j = a->cur;

	a->op_gen++;	/* a late answer is ignored */
	if (j == NULL)
		return;
	if (!j->refreshing)
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "no answer from the hypervisor within %" PRId64 " ms",
		    a->conf.op_timeout_ms);
	observe(cmd_vm(j), &j->res[j->i]);
	job_advance(j);
}

/* Keep target_kib of command j->i to set later (deferred_cb). */
static void
defer(struct avm *av, const struct job *j, uint64_t target_kib)
{
	av->deferred = true;
	av->deferred_kib = target_kib;
	av->deferred_until_ms = j->b->expires_ms;
	av->deferred_seq = j->b->seq;
	av->deferred_index = (uint32_t)j->i;
	snprintf(av->deferred_sched, sizeof(av->deferred_sched), "%s",
	    j->b->scheduler_id != NULL ? j->b->scheduler_id : "");
}

/* A target about to be set, for the journal with its reason. */
static void
decision_to_journal(struct job *j, const struct hv_vm *vm, uint64_t t)
{
	const char *why = j->b->commands[j->i]->reason;
	uint64_t cur;

	if (!act_vm_current(vm, &cur))
		cur = 0;
	daemon_journal_decision(j->a->host_id, vm->id, why, "vm \"%s\": "
	    "target %" PRIu64 " MiB (was %" PRIu64 " MiB), batch %" PRIu64
	    " from \"%s\": %s", vm->id, t / 1024, cur / 1024, j->b->seq,
	    j->b->scheduler_id, why != NULL ? why : "no reason given");
}

/* Returns true when it waits for the hypervisor. */
static bool
exec_balloon(struct job *j, const Mm__V1__SetBalloonTarget *c)
{
	struct actuator *a = j->a;
	Mm__V1__CommandResult *r = &j->res[j->i];
	Mm__V1__ResultStatus st = MM__V1__RESULT_STATUS__RESULT_STATUS_OK;
	struct act_vm_view v;
	enum act_clamp why;
	struct hv_vm *vm;
	struct avm *av;
	struct op *op;
	uint64_t t, floor, cur, now = uv_now(a->loop);
	int rc;

	r->vm_id = c->vm_id;
	vm = hv_find(a->hv, c->vm_id);
	if (vm == NULL || vm->user == NULL) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\" is not on this host", c->vm_id);
		return false;
	}
	av = vm->user;
	if (!vm->max_known) {
		/* Just found (a restart): QMP answers in milliseconds. The
		 * target waits for it, not beyond the batch's expiry. */
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\": its maximum is not known yet; deferred until "
		    "it is", c->vm_id);
		defer(av, j, c->target_kib);
		observe(vm, r);
		return false;
	}
	vm_view(a, vm, &v);
	t = act_clamp(&a->lim, &v, c->target_kib, &why, &floor);
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
	av->deferred = false;
	if (why == ACT_CLAMP_NO_STATS) {
		/* Shrinking waits for the guest's stats (after a restart
		 * they take a moment), but not beyond the batch's expiry. */
		defer(av, j, c->target_kib);
		a->deferred++;
	}
	if (vm->target_known && vm->balloon_target_kib == t) {
		balloon_refresh(j);
		return true;
	}
	if (av->changed && now - av->last_change_ms <
	    (uint64_t)a->conf.balloon_interval_ms && act_vm_current(vm, &cur) &&
	    t < cur) {
		/* Only shrinks wait: a guest that needs memory gets it now.
		 * Not dropped: the latest wanted target is set as soon as
		 * the rate limit allows, unless a newer one replaces it. */
		defer(av, j, c->target_kib);
		a->deferred++;
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "rate limit: target changed %" PRIu64 " ms ago; %" PRIu64
		    " KiB deferred by %" PRIu64 " ms", now - av->last_change_ms,
		    t, (uint64_t)a->conf.balloon_interval_ms -
		    (now - av->last_change_ms));
		observe(vm, r);
		r->has_balloon_target_kib = 1;
		r->balloon_target_kib = t;
		return false;
	}
	av->changed = true;
	av->last_change_ms = now;
	j->refreshing = false;
	decision_to_journal(j, vm, t);
	op = op_new(a);
	rc = op != NULL ? hv_set_target(a->hv, c->vm_id, t, set_done_cb, op) :
	    -ENOMEM;
	if (rc < 0) {
		if (op != NULL)
			op_cancel(op);
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "cannot set the target: %s", strerror(-rc));
		observe(vm, r);
		return false;
	}
	return true;
}

static void
exec_ksm(struct job *j, const Mm__V1__SetKsm *c)
{
	struct actuator *a = j->a;
	char why[ACT_ERR_MAX];
	int r;

	if (!a->conf.ksm) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "ksm commands are disabled in the configuration");
		return;
	}
	if (!a->ksm_ok) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "no KSM on this host");
		return;
	}
	r = c->settings ? act_ksm_apply(&a->ksm, c->settings, why,
	    sizeof(why)) : 0;
	if (r < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "ksm %s", why);
		log_warnx("ksm: %s", why);
	} else {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_OK, NULL);
	}
	if (act_ksm_read(&a->ksm, &j->ksm[j->i]) == 0)
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
	struct actuator *a = j->a;
	uint64_t pages[MSG_NODES_MAX], after[MSG_NODES_MAX];
	struct act_numa_plan p;
	struct hv_vm *vm;
	long left;
	int r;

	j->res[j->i].vm_id = c->vm_id;
	if (!a->conf.numa) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "numa commands are disabled in the configuration");
		return;
	}
	vm = hv_find(a->hv, c->vm_id);
	if (vm == NULL || vm->pid <= 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "vm \"%s\": %s", c->vm_id, vm == NULL ?
		    "not on this host" : "its process is not known");
		return;
	}
	r = hs_read_numa_maps(a->conf.proc_root, vm->pid, pages);
	if (r < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "vm \"%s\": numa_maps of pid %d: %s", c->vm_id,
		    (int)vm->pid, strerror(-r));
		return;
	}
	r = act_numa_plan(a->online_mask, pages, c->from_nodes, c->n_from_nodes,
	    c->to_node, c->has_max_pages ? c->max_pages : 0, &p);
	if (r < 0) {
		set_result(j, r == -ENOENT ?
		    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED :
		    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED, "%s", p.why);
		return;
	}
	if (hv_get_type(a->hv) == HV_TYPE_SIM) {
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
	if (hs_read_numa_maps(a->conf.proc_root, vm->pid, after) == 0 &&
	    pages_on(after, p.from_mask) <= p.pages) {
		j->res[j->i].has_moved_pages = 1;
		j->res[j->i].moved_pages = p.pages -
		    pages_on(after, p.from_mask);
	}
}

/*
 * Proactive reclaim: the VM's agent gets a ReclaimRequest on its control
 * port (hv_reclaim()) and reclaims up to kib into the guest's swap on its
 * own, stopping above the stall budget; its progress comes back in its
 * reports. No vm_id in the result: the scheduler reconciles balloon
 * targets by VM, and this is not one.
 */
static void
exec_reclaim(struct job *j, const Mm__V1__ReclaimCold *c)
{
	struct actuator *a = j->a;
	struct hv_vm *vm = hv_find(a->hv, c->vm_id);
	uint64_t kib = c->kib;
	int r;

	if (vm == NULL) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "reclaim: vm \"%s\" is not on this host", c->vm_id);
		return;
	}
	/* Never more than the guest has. */
	if (vm->balloon_known && kib > vm->balloon_actual_kib)
		kib = vm->balloon_actual_kib;
	r = hv_reclaim(a->hv, c->vm_id, j->b->seq, kib, c->psi_budget_pct);
	if (r == -ENOTSUP || r == -ENOTCONN) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
		    "reclaim: vm \"%s\" has no agent control channel (%s)",
		    c->vm_id, strerror(-r));
		return;
	}
	if (r < 0) {
		set_result(j, MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED,
		    "reclaim: vm \"%s\": %s", c->vm_id, strerror(-r));
		return;
	}
	set_result(j, kib < c->kib ?
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED :
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK, kib < c->kib ?
	    "reclaim: vm \"%s\" asked for its %llu MiB at most" : NULL,
	    c->vm_id, (unsigned long long)kib / 1024);
}

static void
job_step(struct job *j)
{
	const Mm__V1__Command *c;

	for (; j->i < j->b->n_commands; j->i++) {
		c = j->b->commands[j->i];
		j->t0_ms = uv_now(j->a->loop);
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
		case MM__V1__COMMAND__KIND_RECLAIM:
			exec_reclaim(j, c->reclaim);
			break;
		default:
			set_result(j,
			    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED,
			    "no command kind");
			break;
		}
		j->res[j->i].has_elapsed_ms = 1;
		j->res[j->i].elapsed_ms = (uint32_t)(uv_now(j->a->loop) -
		    j->t0_ms);
	}
	job_finish(j);
}

static void
job_start(struct job *j)
{
	struct actuator *a = j->a;
	const Mm__V1__CommandBatch *b = j->b;
	enum act_verdict v;
	uint64_t now = clock_ms(CLOCK_REALTIME);

	a->cur = j;
	a->batches++;
	if (b->expires_ms < now) {
		a->expired++;
		log_info("batch %" PRIu64 " from \"%s\" expired %" PRIu64
		    " ms ago, ignored", b->seq, b->scheduler_id,
		    now - b->expires_ms);
		all_results(j, MM__V1__RESULT_STATUS__RESULT_STATUS_EXPIRED,
		    "batch expired before it could be executed");
		job_finish(j);
		return;
	}
	v = act_order_check(&a->order, b->scheduler_id, b->seq, b->issued_ms);
	if (v == ACT_ORDER_STALE) {
		a->stale++;
		log_info("batch %" PRIu64 " from \"%s\" is out of order (last "
		    "executed %" PRIu64 " from \"%s\"), ignored", b->seq,
		    b->scheduler_id, a->order.seq, a->order.scheduler_id);
		all_results(j, MM__V1__RESULT_STATUS__RESULT_STATUS_OUT_OF_ORDER,
		    "an equal or later batch was executed already");
		job_finish(j);
		return;
	}
	if (v == ACT_ORDER_RESTART || v == ACT_ORDER_FAILOVER)
		log_info("batches now from \"%s\" at %" PRIu64 " (%s)",
		    b->scheduler_id, b->seq, v == ACT_ORDER_RESTART ?
		    "scheduler restarted" : "another scheduler");
	act_order_commit(&a->order, b->scheduler_id, b->seq, b->issued_ms,
	    now);
	act_failsafe_off(a);
	j->i = 0;
	job_step(j);
}

static void
job_next(struct actuator *a)
{
	struct job *j = a->head;

	if (a->cur != NULL || j == NULL)
		return;
	a->head = j->next;
	if (a->head == NULL)
		a->tail = NULL;
	job_start(j);
}

enum bus_disposition
act_batch_receive(struct actuator *a, const Mm__V1__CommandBatch *b)
{
	Mm__V1__CommandBatch *copy;
	enum act_refusal rf;
	struct job *j;

	if (strcmp(b->host_id, a->host_id) != 0) {
		if (a->misrouted++ == 0 || log_debug_enabled())
			log_warnx("batch %" PRIu64 " for host \"%s\" on my "
			    "queue, dead-lettered", b->seq, b->host_id);
		return BUS_REJECT;
	}
	rf = act_batch_check(a->conf.schedulers,
	    (uint64_t)a->conf.clock_skew_ms, b->scheduler_id, b->issued_ms,
	    b->expires_ms, clock_ms(CLOCK_REALTIME));
	if (rf != ACT_OK) {
		a->refused[rf]++;
		log_warnx_limited(&a->lim_refused, "batch %" PRIu64 " from "
		    "\"%s\" refused: %s, dead-lettered", b->seq,
		    b->scheduler_id, act_refusal_name(rf));
		return BUS_REJECT;
	}
	if (a->stopping) {
		/* The release supersedes it; the scheduler sends what it
		 * wants again with its next decision. */
		a->ignored++;
		return BUS_ACK;
	}
	copy = (Mm__V1__CommandBatch *)msg_dup(MSG_COMMAND_BATCH, &b->base);
	j = copy ? job_new(a, copy) : NULL;
	if (j == NULL)
		return BUS_REQUEUE;
	if (a->tail != NULL)
		a->tail->next = j;
	else
		a->head = j;
	a->tail = j;
	job_next(a);
	return BUS_ACK;
}

void
act_jobs_drop(struct actuator *a)
{
	struct job *j;

	while ((j = a->head) != NULL) {
		a->head = j->next;
		a->ignored++;
		job_free(j);
	}
	a->tail = NULL;
}

void
act_jobs_free(struct actuator *a)
{
	act_jobs_drop(a);
	job_free(a->cur);
	a->cur = NULL;
}

/* ---- deferred targets ---- */

/* A deferred target, once QMP (or xenstore) took it. */
struct deferred_set {
	struct actuator *a;
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
	act_publish_result(ds->a, &ar, ds->seq, ds->vm_id, NULL);
	free(ds);
}

static void
deferred_cb(struct hv_vm *vm, void *arg)
{
	struct actuator *a = arg;
	struct avm *av = vm->user;
	uint64_t now = uv_now(a->loop), t;
	struct act_vm_view v;
	struct deferred_set *ds;
	enum act_clamp why;
	int r;

	if (av == NULL || !av->deferred || !vm->max_known || (av->changed &&
	    now - av->last_change_ms < (uint64_t)a->conf.balloon_interval_ms))
		return;
	if (clock_ms(CLOCK_REALTIME) > av->deferred_until_ms) {
		av->deferred = false;
		log_debug("vm \"%s\": deferred target %" PRIu64 " MiB expired",
		    vm->id, av->deferred_kib / 1024);
		return;
	}
	/* The guest may have changed since: its limits are checked again. */
	vm_view(a, vm, &v);
	t = act_clamp(&a->lim, &v, av->deferred_kib, &why, NULL);
	if (why == ACT_CLAMP_NO_STATS)
		return;	/* still no fresh stats */
	av->deferred = false;
	ds = calloc(1, sizeof(*ds));
	if (ds != NULL) {
		ds->a = a;
		snprintf(ds->vm_id, sizeof(ds->vm_id), "%s", vm->id);
		ds->target_kib = t;
		ds->seq = av->deferred_seq;
		ds->index = av->deferred_index;
		memcpy(ds->sched, av->deferred_sched, sizeof(ds->sched));
	}
	if (vm->target_known && vm->balloon_target_kib == t) {
		/* In place already: the scheduler still learns it is. */
		if (ds != NULL)
			deferred_done_cb(a->hv, 0, ds);
		return;
	}
	av->changed = true;
	av->last_change_ms = now;
	r = hv_set_target(a->hv, vm->id, t, ds != NULL ? deferred_done_cb :
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

void
act_deferred_tick(struct actuator *a)
{
	hv_foreach(a->hv, deferred_cb, a);
}
