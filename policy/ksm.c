/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KSM tuning per host. The anchor (ksmtuned, and MOM's KSM rules) merges
 * while free memory is below 20 % and steps pages_to_scan +300 / -50
 * within 64..1250, whatever merging yields. mm's rule measures what ksmd
 * buys: pages merged per second of ksmd's CPU. It scans faster while that
 * pays within a CPU budget, slower above the budget, stops when two full
 * scans have not paid (and retries later), and unmerges once the host has
 * had ample memory for a while, giving the guests their pages back.
 */
#include <errno.h>
#include <string.h>

#include "policy.h"

static const char *const ksm_reasons[] = {
	[PE_KSM_KEEP] = "keep",
	[PE_KSM_START] = "start",
	[PE_KSM_MORE] = "scan-more",
	[PE_KSM_LESS] = "scan-less",
	[PE_KSM_NO_PROFIT] = "no-profit",
	[PE_KSM_AMPLE] = "ample-memory",
	[PE_KSM_DISABLED] = "disabled",
};

const char *
pe_ksm_reason_name(enum pe_ksm_reason r)
{
	return (unsigned)r < sizeof(ksm_reasons) / sizeof(*ksm_reasons) ?
	    ksm_reasons[r] : "unknown";
}

void
pe_ksm_policy_defaults(struct pe_ksm_policy *k)
{
	memset(k, 0, sizeof(*k));
	k->enable = true;
	k->algo = PE_KSM_PROFIT;
	k->start_free_pct = 20;
	k->ample_free_pct = 40;
	k->ample_hold_ms = 300000;
	k->cpu_budget_pct = 10;
	k->min_profit = 2000;	/* 8 MiB saved per CPU-second */
	k->min_scan = 64;
	k->max_scan = 1250;
	k->step_up = 300;
	k->step_down = 50;
	k->sleep_ms = 20;
	k->retry_ms = 600000;
}

static uint32_t
clamp_scan(const struct pe_ksm_policy *k, int64_t v)
{
	if (v < k->min_scan)
		return k->min_scan;
	if (v > k->max_scan)
		return k->max_scan;
	return (uint32_t)v;
}

static void
start_merging(struct pe_ksm_state *st, const struct pe_ksm_obs *o,
    const struct pe_ksm_policy *k, struct pe_ksm_decision *d)
{
	d->run = 1;
	d->pages_to_scan = clamp_scan(k, o->pages_to_scan);
	d->reason = PE_KSM_START;
	st->scans_at_start = o->full_scans;
	st->measuring = false;
}

static void
decide_ksmtuned(const struct pe_ksm_obs *o, const struct pe_ksm_policy *k,
    struct pe_ksm_decision *d)
{
	if (d->free_pct < k->start_free_pct) {
		d->pages_to_scan = clamp_scan(k, (int64_t)o->pages_to_scan +
		    k->step_up);
		d->reason = o->run == 1 ? PE_KSM_MORE : PE_KSM_START;
		d->run = 1;
	} else if (o->run == 1) {
		int64_t v = (int64_t)o->pages_to_scan - k->step_down;

		d->pages_to_scan = clamp_scan(k, v);
		d->reason = PE_KSM_LESS;
		if (v <= (int64_t)k->min_scan)
			d->run = 0;
	}
}

static void
decide_profit(struct pe_ksm_state *st, const struct pe_ksm_obs *o,
    const struct pe_ksm_policy *k, struct pe_ksm_decision *d)
{
	if (d->free_pct >= k->ample_free_pct) {
		if (st->ample_since_ms == 0)
			st->ample_since_ms = o->time_ms;
		if (o->time_ms - st->ample_since_ms >= k->ample_hold_ms &&
		    o->run != 0) {
			/* Unmerge what is merged, then stop. */
			d->run = o->pages_sharing > 0 ? 2 : 0;
			d->reason = PE_KSM_AMPLE;
		}
		return;
	}
	st->ample_since_ms = 0;
	if (d->free_pct >= k->start_free_pct) {
		if (o->run == 2)	/* leave unmerging when memory is short */
			d->run = 0;
		return;	/* between the marks: carry on as is */
	}
	if (o->run != 1) {
		if (o->time_ms >= st->retry_at_ms)
			start_merging(st, o, k, d);
		return;
	}
	if (!o->has_cpu) {
		/* Without ksmd's CPU time nothing is measured: step. */
		decide_ksmtuned(o, k, d);
		return;
	}
	if (d->cpu_pct > k->cpu_budget_pct) {
		int64_t v = (int64_t)((double)o->pages_to_scan *
		    k->cpu_budget_pct / d->cpu_pct);

		if (v > (int64_t)o->pages_to_scan - k->step_down)
			v = (int64_t)o->pages_to_scan - k->step_down;
		d->pages_to_scan = clamp_scan(k, v);
		d->reason = PE_KSM_LESS;
		return;
	}
	/* The first full scan merges nothing (a page merges only when its
	 * checksum held from one scan to the next) and drops what exited
	 * processes left in the counts: measure from its end, and judge
	 * once ksmd has looked at everything again. What it merged is the
	 * sum of pages_sharing's rises: the host-wide counter also falls
	 * when a process with merged pages exits (a guest shut down, or
	 * anything else on the kernel), which is no loss of what ksmd does
	 * now; counted as one, it stopped ksmd while it merged two twin
	 * guests, because another tenant's merged pages went away. */
	if (!st->measuring && o->full_scans > st->scans_at_start) {
		st->measuring = true;
		st->scans_at_start = o->full_scans;
		st->gained = 0;
		st->cpu_at_start = o->ksmd_cpu_ms;
	} else if (st->measuring && st->have_prev &&
	    o->pages_sharing > st->prev.pages_sharing) {
		st->gained += o->pages_sharing - st->prev.pages_sharing;
	}
	if (st->measuring && o->full_scans > st->scans_at_start &&
	    o->ksmd_cpu_ms > st->cpu_at_start) {
		double cpu_s = (double)(o->ksmd_cpu_ms - st->cpu_at_start) /
		    1000;

		if ((double)st->gained / cpu_s < k->min_profit) {
			d->run = 0;
			d->reason = PE_KSM_NO_PROFIT;
			st->retry_at_ms = o->time_ms + k->retry_ms;
			return;
		}
	}
	if (d->cpu_pct < k->cpu_budget_pct / 2 &&
	    o->pages_to_scan < k->max_scan) {
		d->pages_to_scan = clamp_scan(k, (int64_t)o->pages_to_scan +
		    k->step_up);
		d->reason = PE_KSM_MORE;
	}
}

int
pe_ksm_decide(struct pe_ksm_state *st, const struct pe_ksm_obs *o,
    const struct pe_ksm_policy *k, struct pe_ksm_decision *d)
{
	if (st == NULL || o == NULL || k == NULL || d == NULL)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	if (!o->present)
		return 0;
	d->run = o->run;
	d->pages_to_scan = o->pages_to_scan;
	d->sleep_ms = o->sleep_ms;
	d->reason = PE_KSM_KEEP;
	d->free_pct = o->host_total_kib > 0 ? 100.0 *
	    (double)o->host_available_kib / (double)o->host_total_kib : 100;
	if (st->have_prev && o->has_cpu && st->prev.has_cpu &&
	    o->time_ms > st->prev.time_ms &&
	    o->ksmd_cpu_ms >= st->prev.ksmd_cpu_ms) {
		double dcpu = (double)(o->ksmd_cpu_ms - st->prev.ksmd_cpu_ms);

		d->cpu_pct = 100 * dcpu / (double)(o->time_ms -
		    st->prev.time_ms);
		d->profit = dcpu > 0 ? ((double)o->pages_sharing -
		    (double)st->prev.pages_sharing) / (dcpu / 1000) : 0;
	}
	if (!k->enable) {
		if (o->run == 1) {
			d->run = 0;
			d->reason = PE_KSM_DISABLED;
		}
	} else if (k->algo == PE_KSM_KSMTUNED) {
		decide_ksmtuned(o, k, d);
	} else {
		decide_profit(st, o, k, d);
	}
	if (d->run == 1 && d->sleep_ms == 0)
		d->sleep_ms = k->sleep_ms;
	d->changed = d->run != o->run || d->pages_to_scan != o->pages_to_scan ||
	    d->sleep_ms != o->sleep_ms;
	st->prev = *o;
	st->have_prev = true;
	return 0;
}
