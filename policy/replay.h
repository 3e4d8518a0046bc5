/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Offline replay of the policy engine over a memory trace (mmctl sim, the
 * policy-quality benchmark): how much host memory a policy needs for a
 * workload, and how often guests go short with it.
 */
#ifndef MM_REPLAY_H
#define MM_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "policy.h"

/* One sample: a VM's used memory at a time (CSV time_s,vm,used_kib,max_kib). */
struct rp_sample {
	uint64_t time_s;
	uint32_t vm;		/* index into the trace's names */
	uint64_t used_kib;
	uint64_t max_kib;
};

struct rp_trace {
	struct rp_sample *samples;	/* ordered by time */
	size_t n;
	size_t cap;
	char (*names)[PE_ID_MAX + 1];
	size_t nvms;
	size_t names_cap;
	size_t steps;		/* distinct times */
	uint64_t provisioned_kib;	/* sum of each VM's largest max */
	/* How the replay models the guests (set before rp_run()): with
	 * free page reporting, what a guest frees goes back to the host
	 * within the step; its page cache still fills what it does not
	 * use. */
	bool free_page_reporting;
	/* The cold-memory model (0: off). A trace carries use only, so it
	 * is an assumption, not a measurement: of the memory a VM kept in
	 * use through the last hour (its smallest use within it), this
	 * share (0..1) is anonymous memory idle long enough to be cold.
	 * rp_run() reports it to the engine as the guest's cold bucket;
	 * VMs whose policy limits opt in (reclaim = yes) have what the
	 * engine asks for reclaimed into their zram. */
	double cold_share;
};

/*
 * Read a trace from f (named path in errors): CSV lines "time_s,vm,
 * used_kib,max_kib", an optional header line, times never going back, VM
 * names as host ids, used_kib <= max_kib. Returns 0, or -EINVAL /-ENOMEM
 * with "path:line: ..." in err. Free with rp_trace_free().
 */
int rp_trace_read(struct rp_trace *t, FILE *f, const char *path, char *err,
    size_t errlen);

/* Append one sample (VM named vm); for traces built in memory. */
int rp_trace_add(struct rp_trace *t, uint64_t time_s, const char *vm,
    uint64_t used_kib, uint64_t max_kib);

void rp_trace_free(struct rp_trace *t);

struct rp_result {
	const char *policy;
	uint64_t capacity_kib;
	uint64_t provisioned_kib;
	double saved_pct;	/* 1 - capacity / provisioned, percent */
	double shortfall_pct;	/* VM-steps short of memory, percent */
	double mean_shortfall_kib;	/* over those VM-steps */
	uint64_t commands;	/* targets changed */
	uint64_t vm_steps;
	/* With t->cold_share only (0 otherwise): */
	double reclaimed_kib;	/* held in the guests' zram, uncompressed,
				 * all VMs together, mean over the steps */
	uint64_t refault_kib;	/* came back from zram, in all */
	double stall_pct;	/* refault stall, percent of VM time */
};

/*
 * Replay t under policy p (its algorithm and knobs) on a host whose guests
 * may use capacity_kib. The policy decides from the report of step t and
 * its targets hold during step t+1. A VM-step is short when its target is
 * below its used memory, or when the guests' resident memory exceeds the
 * capacity (the host swaps: every VM loses its share). A guest's resident
 * memory is the high-water mark of its use within its size, and what it
 * has but does not use fills with page cache (time constant 30 min): all
 * of it stays on the host until a balloon takes it back; with
 * t->free_page_reporting, resident memory is its use plus its page cache,
 * so what it frees goes back at once, and the cache shrinks as use grows
 * into it. A guest short of
 * memory swaps the difference out (pswpout) and shows pressure (PSI) in
 * proportion.
 *
 * With t->cold_share, a VM seen for an hour reports cold_share of its
 * smallest use of the last hour, less what it has reclaimed, as one cold
 * bucket (idle an hour). What the engine asks it to reclaim (reclaim_kib)
 * goes into its zram at RP_RECLAIM_KIB_S at most, within what is cold,
 * and costs the guest a third of it (RP_ZRAM_RATIO 3:1): its memory in
 * use, and so its resident memory, is use less two thirds of what it
 * holds reclaimed. Reclaimed memory comes back (refaults, each page
 * RP_REFAULT_US of stall, shown as PSI over the step, major faults and
 * swap-ins) when use rises above its peak of the last hour, in proportion
 * (10 % above it brings back 10 % of what it holds reclaimed: use within
 * the hour's range is memory touched within it, not cold), and when the
 * cold set shrinks below what it holds reclaimed; what comes back takes
 * room again and goes short when it does not fit. A refault stops the
 * guest's reclaim in progress (it passed its budget).
 * Returns 0 or -ENOMEM.
 */
int rp_run(const struct rp_trace *t, const struct pe_policy *p,
    uint64_t capacity_kib, struct rp_result *ret);

/* The cold model's constants (see rp_run()). */
#define RP_COLD_WINDOW_S	3600	/* cold: in use this long */
#define RP_RECLAIM_KIB_S	65536	/* an agent reclaims this fast */
#define RP_ZRAM_RATIO		3	/* zram compresses 3:1 */
#define RP_REFAULT_US		10	/* stall a page back from zram */

/* The smallest capacity (to 1 MiB) with shortfall_pct <= max_shortfall_pct,
 * and its result. */
int rp_find_capacity(const struct rp_trace *t, const struct pe_policy *p,
    double max_shortfall_pct, struct rp_result *ret);

/*
 * The policies a replay compares, by name: each algorithm with its
 * defaults ("pressure", "static", "xenmm", "mom"), and pressure with one
 * of its terms switched off in turn, to show what each brings
 * ("pressure-nohistory": no history_hours). rp_variant_name(i) for i from
 * 0 is each name in turn, then NULL; rp_variant_policy() fills p with the
 * named one (pe_policy_defaults() first), or returns -ENOENT.
 */
const char *rp_variant_name(size_t i);
int rp_variant_policy(const char *name, struct pe_policy *p);

/* Whether the variant p can ask for proactive reclaim: mm's pressure
 * policies can; the baselines (static, xenmm, MOM) have no such thing,
 * so a comparison runs them without. */
bool rp_policy_can_reclaim(const struct pe_policy *p);

#endif
