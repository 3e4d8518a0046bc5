/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the policy engine: the history kept per VM and what engine.c
 * hands each algorithm. Not for use outside common/policy/.
 */
#ifndef MM_POLICY_INT_H
#define MM_POLICY_INT_H

#include "policy.h"

struct pe_vm {
	char id[PE_ID_MAX + 1];
	bool seen;
	const struct pe_limits *limits;	/* this call's */
	uint64_t target_kib;	/* last decided */
	uint64_t sent_ms;	/* when it last changed (or was repeated) */
	uint64_t reclaim_ms;	/* when reclaim was last asked */
	double used_ewma;	/* KiB */
	double peak;		/* recent peak of used, decaying; KiB */
	uint64_t peak_ms;	/* when peak was last updated */
	double prev_used;	/* KiB, at the last report */
	double rise;		/* growth of used since then, KiB */
	double surge;		/* largest recent rise, decaying; KiB */
	/* The largest use of each of the last PE_HIST_HOURS hours, in MiB
	 * rounded up (0: no report that hour), a ring: hour h in
	 * hist[h % PE_HIST_HOURS]; hist_hour the newest hour reported,
	 * hist_hours how many hours it spans (at most PE_HIST_HOURS). */
	uint32_t hist[PE_HIST_HOURS];
	uint64_t hist_hour;
	uint32_t hist_hours;
	bool restored;		/* from pe_history_put(), not decided yet */
	/* The largest of the last peak_hours hours, MiB, as of hour
	 * peak_hour (a cache of pe_history_peak_kib(); peak_hours 0: not
	 * computed) */
	uint32_t peak_mib;
	uint32_t peak_hours;
	uint64_t peak_hour;
	/* The same for the hours like the present one (pressure.c's
	 * soon_level()): the last hour and the same hour yesterday, +-1. */
	uint32_t soon_mib;
	uint32_t soon_hours;
	uint64_t soon_hour;
	uint64_t calm_since_ms;	/* last pressure, or first sight */
	uint64_t taken_ms;	/* last gave back for another's floor */
	bool have_prev;
	uint64_t prev_ms;
	uint64_t prev_faults;
	uint64_t prev_swapin;
	uint64_t prev_swapout;
	uint64_t prev_oom;
	bool have_prev_psi;
	uint64_t prev_psi_us;	/* PSI some total at prev_psi_ms */
	uint64_t prev_psi_ms;
	/* shrinking progress */
	uint64_t shrink_since_ms;
	uint64_t best_actual;
	uint64_t progress_ms;
	enum pe_coop coop;
	/* scratch of one call */
	bool flexible;		/* the engine may move its target */
	bool active;		/* still wants more in a water-fill */
	uint64_t floor;		/* what it must have now */
	uint64_t need_floor;	/* the same without holding what it has:
				 * what counts when the host is short */
	uint64_t use_floor;	/* the part of need_floor it uses now */
	uint64_t hist_level;	/* its peak of the last day + margin */
	uint64_t soon_level;	/* ... of the hours like this one */
	uint64_t allowance;	/* what it gets: filled level by level */
	uint64_t fair;		/* its weighted share of the capacity */
};

/* The largest use in v's last hours hours of history (the current one
 * included), KiB; 0 without history. */
uint64_t pe_history_peak_kib(struct pe_vm *v, uint32_t hours);

/* The largest use in the hours like the present one: this hour, the last,
 * and the same hour yesterday and either side of it; KiB. */
uint64_t pe_history_soon_kib(struct pe_vm *v);

/* Add to over_kib[k] how far v's peak of Unix hour newest - k (plus the
 * history margin) went above level_kib, for k below hours (hours without
 * a report count nothing). */
void pe_history_over(const struct pe_policy *p, const struct pe_vm *v,
    uint64_t newest, uint32_t hours, uint64_t level_kib,
    uint64_t *over_kib);

/* Whether the history term counts for v: on, with enough history. */
static inline bool
pe_history_on(const struct pe_policy *p, const struct pe_vm *v)
{
	return p->history_hours > 0 && v->hist_hours >= p->history_min_hours;
}

/* kib plus the policy's history margin. */
static inline uint64_t
pe_history_margin(const struct pe_policy *p, uint64_t kib)
{
	return kib + (uint64_t)((double)kib * p->history_margin_pct / 100);
}

/* The memory a VM keeps available above what it uses: the larger of the
 * rule's size and percentage. */
static inline uint64_t
pe_headroom(const struct pe_limits *l, uint64_t used_kib)
{
	uint64_t pct = (uint64_t)((double)used_kib * l->headroom_pct / 100);

	return l->headroom_kib > pct ? l->headroom_kib : pct;
}

struct pe_state {
	struct pe_vm *vms;
	size_t n;
	size_t cap;
	struct pe_vm **scratch;	/* guest i's history, per call */
	uint64_t *share;	/* guest i's share, per call */
	size_t scratch_cap;
};

/*
 * One decision in progress: out[i] is guest i's decision, already filled
 * with limits, used memory, pressure and cooperation, its target set to the
 * one in force (prev_kib); vms[i] its history. Algorithms set target_kib,
 * need_kib and reason; engine.c clamps to min..max afterwards.
 */
struct pe_ctx {
	const struct pe_policy *p;
	const struct pe_host *host;
	struct pe_decision *out;
	struct pe_vm **vms;
	uint64_t *share;	/* n entries of scratch */
	size_t n;
	uint64_t now_ms;
};

int pe_algo_pressure(struct pe_ctx *c);
int pe_algo_static(struct pe_ctx *c);
int pe_algo_xenmm(struct pe_ctx *c);
int pe_algo_mom(struct pe_ctx *c);

#endif
