/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rules mm-actuator applies whatever the scheduler says: a guest's
 * limits, the order of batches across scheduler restarts and failovers, and
 * the local fail-safe's steps. Pure functions, so that each rule is tested
 * on its own.
 */
#include <string.h>

#include "actuator.h"

uint64_t
act_clamp(const struct act_limits *l, const struct act_vm_view *v,
    uint64_t want_kib, enum act_clamp *ret_why, uint64_t *ret_floor_kib)
{
	enum act_clamp why = ACT_CLAMP_NONE, floor_why = ACT_CLAMP_MIN;
	uint64_t floor = l->vm_min_kib, t = want_kib;

	if (v->used_known) {
		if (v->used_kib + l->used_margin_kib > floor) {
			floor = v->used_kib + l->used_margin_kib;
			floor_why = ACT_CLAMP_USED;
		}
	} else if (v->current_known && v->current_kib > floor) {
		/* Without fresh stats nobody knows what the guest uses:
		 * growing is safe, shrinking is not. */
		floor = v->current_kib;
		floor_why = ACT_CLAMP_NO_STATS;
	}
	if (floor > v->max_kib)
		floor = v->max_kib;
	if (t > v->max_kib) {
		t = v->max_kib;
		why = ACT_CLAMP_MAX;
	} else if (t < floor) {
		t = floor;
		why = floor_why;
	}
	if (ret_why != NULL)
		*ret_why = why;
	if (ret_floor_kib != NULL)
		*ret_floor_kib = floor;
	return t;
}

const char *
act_clamp_name(enum act_clamp why)
{
	switch (why) {
	case ACT_CLAMP_NONE:
		return "within limits";
	case ACT_CLAMP_MAX:
		return "above the maximum";
	case ACT_CLAMP_MIN:
		return "below the minimum";
	case ACT_CLAMP_USED:
		return "below the guest's used memory plus margin";
	case ACT_CLAMP_NO_STATS:
		return "a shrink without fresh guest stats";
	}
	return "?";
}

enum act_verdict
act_order_check(const struct act_order *o, const char *scheduler_id,
    uint64_t seq, uint64_t issued_ms)
{
	if (!o->have)
		return ACT_ORDER_FIRST;
	if (strcmp(o->scheduler_id, scheduler_id) != 0)
		return issued_ms >= o->issued_ms ? ACT_ORDER_FAILOVER :
		    ACT_ORDER_STALE;
	if (seq > o->seq)
		return ACT_ORDER_NEXT;
	/* Within one run a lower seq was issued no later; a scheduler that
	 * restarted counts from 1 again, with later times. */
	return issued_ms > o->issued_ms ? ACT_ORDER_RESTART : ACT_ORDER_STALE;
}

void
act_order_commit(struct act_order *o, const char *scheduler_id, uint64_t seq,
    uint64_t issued_ms, uint64_t now_ms)
{
	o->have = true;
	strncpy(o->scheduler_id, scheduler_id, sizeof(o->scheduler_id) - 1);
	o->scheduler_id[sizeof(o->scheduler_id) - 1] = '\0';
	o->seq = seq;
	o->issued_ms = issued_ms < now_ms ? issued_ms : now_ms;
}

/* Whether id is one of the words of list (separated by spaces, commas). */
static bool
listed(const char *list, const char *id)
{
	size_t n = strlen(id);
	const char *p = list;

	while (*p != '\0') {
		size_t w;

		p += strspn(p, " ,\t");
		w = strcspn(p, " ,\t");
		if (w == n && w > 0 && strncmp(p, id, n) == 0)
			return true;
		p += w;
	}
	return false;
}

enum act_refusal
act_batch_check(const char *schedulers, uint64_t clock_skew_ms,
    const char *scheduler_id, uint64_t issued_ms, uint64_t expires_ms,
    uint64_t now_ms)
{
	if (schedulers != NULL && schedulers[strspn(schedulers, " ,\t")] !=
	    '\0' && !listed(schedulers, scheduler_id))
		return ACT_REFUSE_SCHEDULER;
	if (issued_ms > now_ms + clock_skew_ms)
		return ACT_REFUSE_FUTURE;
	if (expires_ms > issued_ms + ACT_TTL_MAX_MS)
		return ACT_REFUSE_TTL;
	return ACT_OK;
}

const char *
act_refusal_name(enum act_refusal r)
{
	switch (r) {
	case ACT_REFUSE_SCHEDULER:
		return "not from a scheduler this actuator takes commands from";
	case ACT_REFUSE_FUTURE:
		return "issued further ahead of this host's clock than "
		    "clock_skew";
	case ACT_REFUSE_TTL:
		return "expiring more than an hour after it was issued";
	default:
		return "ok";
	}
}

bool
act_fs_pressure(const struct act_failsafe *f, const struct act_fs_vm *v)
{
	if (!v->fresh)
		return false;
	if (v->has_psi && v->psi_some_avg10 >= f->psi_pct)
		return true;
	/* Where only the balloon's statistics are known (KVM without the
	 * agent: no PSI there), a guest paging in hard is under pressure. */
	if (v->has_faults && f->faults_s > 0 && v->faults_s >= f->faults_s)
		return true;
	return v->has_mem && v->total_kib > 0 &&
	    (double)v->available_kib * 100.0 / (double)v->total_kib <
	    f->avail_pct;
}

uint64_t
act_fs_target(const struct act_failsafe *f, const struct act_fs_vm *v,
    uint64_t host_avail_kib)
{
	uint64_t step = f->step_kib;

	if (!act_fs_pressure(f, v) || v->current_kib >= v->max_kib)
		return 0;
	if (host_avail_kib <= f->host_reserve_kib)
		return 0;
	if (step > v->max_kib - v->current_kib)
		step = v->max_kib - v->current_kib;
	if (step > host_avail_kib - f->host_reserve_kib)
		step = host_avail_kib - f->host_reserve_kib;
	return step == 0 ? 0 : v->current_kib + step;
}
