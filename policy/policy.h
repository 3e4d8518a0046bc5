/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine: from a host's latest observations, the history kept
 * for it and the policy in force, decide each VM's balloon target with a
 * reason. No I/O and no allocation per decision, so the scheduler daemon
 * and mmctl's offline replay run the same code, and it is fast enough to
 * decide for a whole fleet on one core.
 *
 * Algorithms, selected by name: "pressure" (mm's own, the default), and the
 * baselines "static", "xenmm" and "mom", each reproducing its source for
 * side-by-side comparison (docs/design.md says where each comes from).
 */
#ifndef MM_POLICY_H
#define MM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Cold-memory buckets of a guest at most (GuestStats.cold's MSG_COLD_MAX:
 * the engine does not include the wire's header). */
#define PE_COLD_MAX	4

#define PE_ID_MAX	64	/* as msg.h's ids */
/* A target the balloon has not reached is sent again this often. */
#define PE_REPEAT_MS	15000
#define PE_RULES_MAX	64
#define PE_WHY_MAX	160

enum pe_algo {
	PE_ALGO_PRESSURE,
	PE_ALGO_STATIC,
	PE_ALGO_XENMM,
	PE_ALGO_MOM,
	PE_ALGO_COUNT
};

/* "pressure", "static", "xenmm", "mom"; NULL for an unknown value. */
const char *pe_algo_name(enum pe_algo a);
/* Returns 0 and writes *ret, or -ENOENT for an unknown name. */
int pe_algo_from_name(const char *name, enum pe_algo *ret);

/* Limits of the VMs whose name (or id, without a name) matches a rule's
 * glob (fnmatch). */
struct pe_limits {
	uint64_t min_kib;	/* guaranteed; 0: the host's floor */
	uint64_t max_kib;	/* ceiling; 0: the host's maximum */
	uint32_t weight;	/* share of contended memory, 0..10000;
				 * 0 gives first (a hundredth of 1) */
	uint64_t headroom_kib;	/* spare above used memory ... */
	double headroom_pct;	/* ... or this percent of it, the larger */
	bool unmanaged;		/* leave its balloon alone */
	bool reclaim;		/* opt-in: ask its agent to reclaim its cold
				 * memory into its swap (off by default) */
};

struct pe_rule {
	char pattern[PE_ID_MAX * 2 + 1];
	struct pe_limits limits;
};

#define PE_HIST_HOURS	168	/* a week of hourly peaks per VM */
#define PE_HIST_MIB_MAX	(32u << 20)	/* 32 TiB: no VM uses more */

/*
 * The policy's balloon part, as the engine uses it (the scheduler converts
 * the Policy message; pe_policy_defaults() gives every knob its default).
 */
struct pe_policy {
	enum pe_algo algo;
	uint64_t host_reserve_kib;	/* never handed to guests */
	uint64_t vm_overhead_kib;	/* per VM, the hypervisor's own */
	/* The most the host's guests may hold together, whatever the host
	 * has free (0: no such cap): a pool for guests on a host that runs
	 * other things, or a smaller host for a benchmark. */
	uint64_t guest_capacity_kib;
	struct pe_limits defaults;
	struct pe_rule rules[PE_RULES_MAX];	/* first match wins */
	size_t n_rules;

	/* pressure */
	double psi_low_pct;		/* some avg10 that starts to count */
	double psi_high_pct;		/* some avg10 that counts fully */
	double faults_high_s;		/* major faults/s that count fully */
	double avail_low_pct;		/* MemAvailable below this % of total */
	double grow_pct;		/* step up under full pressure, % */
	uint64_t grow_min_kib;		/* smallest step up under pressure */
	double shrink_pct;		/* step down per decision, % of target */
	uint64_t shrink_max_kib;	/* largest step down per decision */
	uint64_t hold_ms;		/* calm this long before shrinking */
	double deadband_pct;		/* no change within this % ... */
	uint64_t deadband_kib;		/* ... or this many KiB, the larger */
	double ewma_alpha;		/* smoothing of used memory, 0..1 */
	uint64_t peak_halflife_ms;	/* a calm guest keeps memory up to
					 * its recent peak, decaying so */
	double spare_pct;		/* of the capacity nobody needs, this
					 * much is handed out as buffer... */
	uint64_t surge_halflife_ms;	/* ...by recent surges (decaying) */
	/* history: a guest keeps at least the largest use of its last
	 * history_hours hours (0: off) plus history_margin_pct of it, once
	 * it has history_min_hours of history. */
	uint32_t history_hours;
	double history_margin_pct;
	uint32_t history_min_hours;
	/* pool-level risk: of the memory no VM needs, the host keeps free
	 * at least the most its VMs with history went above their day's
	 * peak (hist_level) together within one hour of the last
	 * pool_hours hours (each hour's peak plus history_margin_pct), and
	 * never less than the share spare_pct leaves (0: that share). */
	uint32_t pool_hours;
	/* proactive reclaim, for the VMs whose limits opt in: the anonymous
	 * memory the agent saw idle for reclaim_idle_ms, at least
	 * reclaim_min_kib and at most reclaim_max_kib, is asked for while the
	 * guest's stall (PSI some avg10) is below reclaim_psi_budget_pct,
	 * once every reclaim_interval_ms at most. */
	uint64_t reclaim_idle_ms;
	double reclaim_psi_budget_pct;
	uint64_t reclaim_interval_ms;
	uint64_t reclaim_min_kib;
	uint64_t reclaim_max_kib;

	/* guests that do not balloon (squeezed's thresholds) */
	uint64_t inactive_ms;		/* no progress this long: inactive */
	uint64_t uncooperative_ms;	/* ... this long: uncooperative */
};

/* Fill p with the defaults of every knob (algorithm "pressure"). */
void pe_policy_defaults(struct pe_policy *p);

/*
 * Check p: ranges, min <= max, known algorithm. Returns 0, or -EINVAL
 * with the reason in why (may be NULL).
 */
int pe_policy_validate(const struct pe_policy *p, char *why, size_t whylen);

/* One guest in one report, already sanitized by the collector. */
struct pe_guest {
	const char *vm_id;	/* borrowed for the call */
	const char *vm_name;	/* matched by rules; NULL: vm_id */
	bool has_meminfo;
	uint64_t total_kib;	/* guest MemTotal */
	uint64_t available_kib;	/* guest MemAvailable */
	uint64_t free_kib;	/* guest MemFree */
	/* What the balloon holds inside MemTotal (deflate-on-oom), from
	 * the same sample as the rest; unknown: guessed from actual_kib. */
	bool has_balloon_in_total;
	uint64_t balloon_in_total_kib;
	uint64_t reserved_kib;	/* gm_reserved_kib(), counted as used */
	bool has_balloon;
	uint64_t target_kib;	/* balloon target in force */
	uint64_t actual_kib;	/* balloon actual: the guest's size now */
	uint64_t min_kib;	/* host's floor, 0 when unknown */
	uint64_t max_kib;	/* host's maximum (maxmem), 0 when unknown */
	bool has_psi;
	double psi_some_avg10;	/* percent */
	/* PSI some total (microseconds, a counter): where known, the stall
	 * since the last report is the pressure, not avg10, which carries a
	 * burst for ten seconds after it is over. */
	bool has_psi_total;
	uint64_t psi_some_total_us;
	bool has_vmstat;
	uint64_t major_faults;	/* counters since boot */
	uint64_t swap_in_pages;
	uint64_t swap_out_pages;	/* what it lacked went out to swap */
	uint64_t oom_kills;
	bool stale;		/* no fresh sample: keep its target */
	/*
	 * The sample is not to be believed (the collector flagged it:
	 * clamped, inconsistent, rate-limited, above what the host sees):
	 * its pressure does not count, its use counts no higher than the
	 * host's view, and it is not grown beyond that plus its headroom
	 * (without a host view, not grown at all).
	 */
	bool untrusted;
	/* What the host sees the VM hold (QEMU's resident memory), which a
	 * guest's own numbers cannot raise. */
	bool has_host_used;
	uint64_t host_used_kib;
	/* Cold memory by the agent (GuestStats.cold): anonymous memory idle
	 * for at least idle_ms, shortest first. */
	size_t n_cold;
	struct {
		uint64_t idle_ms;
		uint64_t anon_kib;
	} cold[PE_COLD_MAX];
};

struct pe_host {
	const char *host_id;
	uint64_t time_ms;	/* report time, ms since the epoch */
	uint64_t total_kib;	/* host MemTotal */
	uint64_t available_kib;	/* host MemAvailable */
	size_t n_guests;
	const struct pe_guest *guests;
};

enum pe_reason {
	PE_KEEP,		/* nothing to change */
	PE_GROW_PRESSURE,	/* guest under pressure */
	PE_GROW_NEED,		/* used + headroom above target */
	PE_SHRINK_IDLE,		/* calm for hold_ms, target above need */
	PE_HOLD,		/* would shrink, but pressure was recent */
	PE_CAPACITY,		/* cut to its weighted share of the host */
	PE_BUDGET,		/* growth limited to memory free now */
	PE_STATIC,		/* baseline: at maximum */
	PE_XENMM,		/* baseline: xenmm's formula */
	PE_MOM_SHRINK,		/* baseline: MOM under host pressure */
	PE_MOM_GROW,		/* baseline: MOM, guest short of free */
	PE_UNMANAGED,		/* policy leaves it alone */
	PE_STALE,		/* no fresh data: target kept */
	PE_UNCOOPERATIVE,	/* does not balloon: its memory is not given away */
	PE_GROW_SPARE,		/* host memory nobody needs, as buffer */
	PE_GROW_HISTORY,	/* its peak within history_hours + margin */
};

const char *pe_reason_name(enum pe_reason r);

enum pe_coop { PE_COOP_OK, PE_COOP_INACTIVE, PE_COOP_UNCOOPERATIVE };

struct pe_decision {
	char vm_id[PE_ID_MAX + 1];
	uint64_t target_kib;	/* the new absolute target */
	uint64_t prev_kib;	/* the target it replaces */
	bool changed;		/* target_kib != prev_kib, or a repeat: send a
				 * command */
	bool repeat;		/* the same target again: the balloon has
				 * stayed away from it PE_REPEAT_MS */
	enum pe_reason reason;
	enum pe_coop coop;
	bool alert;		/* coop got worse this round: raise an alert */
	/* The numbers behind it. */
	uint64_t used_kib;
	uint64_t need_kib;
	uint64_t min_kib;
	uint64_t max_kib;
	double pressure;	/* 0..1 */
	uint64_t swapped_kib;	/* swapped out since the last report */
	uint64_t history_kib;	/* its peak of the last history_hours
				 * (0: off, or not enough history) */
	uint32_t history_hours;	/* ... of that many hours */
	double history_margin_pct;	/* ... plus this */
	uint64_t step_kib;	/* what the algorithm's rule asked before
				 * capacity and budget cut it */
	/* Proactive reclaim: ask its agent to reclaim this much into its
	 * swap (0: nothing), with this stall budget. */
	uint64_t reclaim_kib;
	double reclaim_budget_pct;
};

/* A line for people: what was decided and the numbers behind it. Always
 * NUL-terminates buf; returns what snprintf() returns. */
int pe_format_why(const struct pe_decision *d, char *buf, size_t size);

/* Copy an id or name into a fixed field, cut to fit: done for every guest of
 * every report, so without printf. size > 0. */
static inline void
pe_copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Per-host history: smoothed usage, peaks, pressure, cooperation. */
struct pe_state;

/* A new, empty history, or NULL with errno ENOMEM. Free with
 * pe_state_free() (NULL is a no-op). */
struct pe_state *pe_state_new(void);
void pe_state_free(struct pe_state *st);

/* A VM's history of use as the engine keeps it for history_hours, to be
 * saved and given back after a restart. */
struct pe_vm_history {
	char vm_id[PE_ID_MAX + 1];
	uint64_t hour;		/* the newest hour: Unix time / 3600 */
	uint32_t hours;		/* hours it spans, 1..PE_HIST_HOURS */
	uint32_t mib[PE_HIST_HOURS];	/* mib[k]: the largest use in hour
					 * (hour - k), MiB; 0: no report */
};

/* The history of st's i-th VM (i from 0, below pe_history_vms()) into
 * *out; false past the last or for a VM without history. */
bool pe_history_get(const struct pe_state *st, size_t i,
    struct pe_vm_history *out);
/* How many VMs st keeps (with history or not). */
size_t pe_history_vms(const struct pe_state *st);

/* Whether h is one pe_history_get() could give (pe_history_put()'s
 * check, for histories from outside: a file, another scheduler). */
bool pe_history_valid(const struct pe_vm_history *h);

/* Give the VM h->vm_id the history h, for its next decision (a VM the
 * next report does not mention is forgotten, as always). Returns 0,
 * -EINVAL when h is not one pe_history_get() gives (empty id, hours 0 or
 * above PE_HIST_HOURS, a use above PE_HIST_MIB_MAX or in an hour beyond
 * hours), -ENOMEM. */
int pe_history_put(struct pe_state *st, const struct pe_vm_history *h);

/*
 * Decide the targets of host's guests under policy p, updating st. out has
 * room for cap decisions (host->n_guests is enough: one per guest, in the
 * guests' order). VMs missing from host are forgotten. Returns the number
 * of decisions, or -EINVAL (bad arguments), -ENOBUFS (cap too small),
 * -ENOMEM (history could not grow). Everything is borrowed.
 */
int pe_decide(struct pe_state *st, const struct pe_host *host,
    const struct pe_policy *p, struct pe_decision *out, size_t cap);

/*
 * Capacity for guests under p: host total minus reserve minus per-VM
 * overhead, in KiB (0 when that is negative).
 */
uint64_t pe_capacity_kib(const struct pe_host *host, const struct pe_policy *p);

/* The guest's used memory as the engine sees it (balloon excluded). */
uint64_t pe_guest_used_kib(const struct pe_guest *g);

/* ---- KSM ---- */

enum pe_ksm_algo {
	PE_KSM_PROFIT,		/* mm's: merged pages per ksmd CPU-second */
	PE_KSM_KSMTUNED,	/* the anchor: ksmtuned's / MOM's rule */
};

struct pe_ksm_policy {
	bool enable;
	enum pe_ksm_algo algo;
	double start_free_pct;	/* merge below this % of host memory free */
	double ample_free_pct;	/* unmerge above this, after hold */
	uint64_t ample_hold_ms;
	double cpu_budget_pct;	/* ksmd's CPU, % of one core */
	double min_profit;	/* pages merged per ksmd CPU-second */
	uint32_t min_scan;	/* pages_to_scan bounds */
	uint32_t max_scan;
	uint32_t step_up;
	uint32_t step_down;
	uint32_t sleep_ms;
	uint64_t retry_ms;	/* after stopping for lack of profit */
};

/* The defaults: profit algorithm, 20 % / 40 % free, 10 % of a core,
 * 64..1250 pages, +300 / -50. */
void pe_ksm_policy_defaults(struct pe_ksm_policy *k);

/* The host's KSM as read from sysfs (and ksmd's CPU time). */
struct pe_ksm_obs {
	bool present;		/* /sys/kernel/mm/ksm exists */
	uint64_t time_ms;
	uint64_t host_total_kib;
	uint64_t host_available_kib;
	int run;		/* 0 stop, 1 merge, 2 unmerge */
	uint32_t pages_to_scan;
	uint32_t sleep_ms;
	uint64_t pages_sharing;
	uint64_t full_scans;
	bool has_cpu;
	uint64_t ksmd_cpu_ms;
};

enum pe_ksm_reason {
	PE_KSM_KEEP,
	PE_KSM_START,		/* host short of memory: merge */
	PE_KSM_MORE,		/* it pays within the CPU budget: scan more */
	PE_KSM_LESS,		/* over the CPU budget, or ksmtuned's decay */
	PE_KSM_NO_PROFIT,	/* a full scan found too little: stop */
	PE_KSM_AMPLE,		/* ample memory: unmerge */
	PE_KSM_DISABLED,	/* policy says off: stop */
};

const char *pe_ksm_reason_name(enum pe_ksm_reason r);

struct pe_ksm_decision {
	bool changed;
	int run;
	uint32_t pages_to_scan;
	uint32_t sleep_ms;
	enum pe_ksm_reason reason;
	double free_pct;
	double cpu_pct;		/* ksmd, % of a core, since the last obs */
	double profit;		/* pages merged per ksmd CPU-second */
};

struct pe_ksm_state {
	bool have_prev;
	struct pe_ksm_obs prev;
	uint64_t ample_since_ms;
	uint64_t retry_at_ms;
	uint64_t scans_at_start;	/* full_scans when merging started,
					 * then at the end of its first scan */
	bool measuring;			/* the first scan is over */
	uint64_t gained;		/* pages_sharing's rises since then:
					 * a fall is other processes exiting
					 * or unmerging, not ksmd's yield */
	uint64_t cpu_at_start;
};

/*
 * Decide the host's KSM settings. st is zeroed by the caller at first
 * and kept between calls. Returns 0, or -EINVAL.
 */
int pe_ksm_decide(struct pe_ksm_state *st, const struct pe_ksm_obs *o,
    const struct pe_ksm_policy *k, struct pe_ksm_decision *out);

/* ---- NUMA ---- */

#define PE_NODES_MAX	64

struct pe_numa_policy {
	bool enable;
	uint64_t node_reserve_kib;	/* keep free on the destination */
	uint64_t quota_pages;		/* per round, all VMs together */
	uint64_t min_interval_ms;	/* between two moves of one VM */
	double min_remote_pct;		/* move only above this % remote */
	uint64_t min_pages;		/* and at least this many pages */
};

/* Defaults: 256 MiB node reserve, 1 GiB per round (etmem's cap), 300 s
 * between moves of one VM (numad), at least 10 % remote. */
void pe_numa_policy_defaults(struct pe_numa_policy *n);

struct pe_numa_vm {
	const char *vm_id;
	uint64_t pages[PE_NODES_MAX];	/* resident 4 KiB pages per node */
	uint64_t vcpu_nodes;		/* bit n: its vCPUs ran on node n */
};

struct pe_numa_host {
	uint64_t time_ms;
	unsigned n_nodes;
	uint64_t node_free_kib[PE_NODES_MAX];
	size_t n_vms;
	const struct pe_numa_vm *vms;
};

struct pe_numa_move {
	char vm_id[PE_ID_MAX + 1];
	uint64_t from_nodes;		/* bit mask */
	unsigned to_node;
	uint64_t pages;			/* quota for this move */
	uint64_t remote_pages;		/* how many were remote */
};

struct pe_numa_state;

struct pe_numa_state *pe_numa_state_new(void);
void pe_numa_state_free(struct pe_numa_state *st);

/*
 * Plan this round's page migrations: VMs whose vCPUs ran on one node while
 * their pages are spread are moved toward that node, most remote first,
 * within the node's room above its reserve and the round's quota, and not
 * sooner than min_interval_ms after the VM's last move. Returns the
 * number of moves written to out (at most cap), or -EINVAL, -ENOMEM.
 */
int pe_numa_decide(struct pe_numa_state *st, const struct pe_numa_host *h,
    const struct pe_numa_policy *n, struct pe_numa_move *out, size_t cap);

#endif
