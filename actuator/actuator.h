/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator's private header: its configuration, the safety rules it
 * applies whatever the scheduler says (limits, batch order, fail-safe), the
 * KSM and NUMA writers, and the daemon's state (struct actuator) with the
 * functions its files share. The rules are small pure or root-parameterised
 * pieces; the daemon runs on any loop and bus, so that unit tests run it
 * against fixtures and fakes.
 */
#ifndef MM_ACTUATOR_H
#define MM_ACTUATOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "bus.h"
#include "bus_conf.h"
#include "daemon_host.h"
#include "hv.h"
#include "log.h"
#include "tier.h"
#include "metrics_http.h"
#include "msg.h"
#include "topology.h"

struct actuator_conf {
	char *host_id;			/* NULL: the hostname */
	int driver;			/* enum hv_type */
	char *vm_dir;
	char *libvirt_uri;		/* libvirt: the connection */
	char *monitor;		/* kvm, sim: <vm_dir>/<vm>.<monitor> is QMP */
	char *balloon_path;
	char *proc_root;
	char *sys_root;
	int64_t rescan_ms;
	int64_t poll_ms;
	int64_t vm_min_kib;		/* no guest below this */
	int64_t used_margin_kib;	/* floor: guest's used + this */
	int64_t stale_ms;		/* older guest stats do not count */
	int64_t balloon_interval_ms;	/* per-VM rate limit of changes */
	int64_t op_timeout_ms;		/* one hypervisor request */
	int64_t failsafe_after_ms;	/* no command this long: fail-safe */
	int64_t failsafe_interval_ms;	/* between fail-safe steps */
	int64_t failsafe_step_kib;	/* growth per step */
	int64_t failsafe_psi_pct;	/* some avg10 at or above: pressure */
	int64_t failsafe_avail_pct;	/* available below this: pressure */
	int64_t failsafe_faults_s;	/* major faults per second: pressure */
	int64_t host_reserve_kib;	/* host MemAvailable kept */
	bool release_on_stop;		/* the bounded release on shutdown */
	int64_t release_timeout_ms;	/* bound of the shutdown's waits */
	bool ksm;			/* apply SetKsm */
	bool numa;			/* apply MigrateNuma */
	char *schedulers;		/* ids whose batches run; NULL: any */
	/* [tier]: the host tier (hosttier.c) */
	int tier_mode;			/* enum act_tier_mode */
	char *tier_slow_nodes;		/* node list; NULL: memory tiers */
	int64_t tier_window_ms;		/* one scan window */
	int64_t tier_cold_windows;	/* idle this many windows: cold */
	int64_t tier_quota_kib;		/* moved per pass, whole host */
	int64_t tier_hot_reserve_kib;	/* fast-tier RAM kept per VM */
	int64_t tier_refault_pct;	/* back off above this */
	int64_t tier_min_ram_kib;	/* smallest mapping taken as RAM */
	int64_t tier_sysmem_threshold;	/* move only below this % avail */
	char *tier_vms;			/* globs of the VMs it scans */
	char *tier_exclude;		/* globs of those it leaves alone */
	int64_t clock_skew_ms;		/* batches issued further ahead are
					 * refused */
	struct bus_conf bus;
	char *metrics_listen;		/* [metrics] listen */
	int log_level;			/* [log] level */
};

/* What the table cannot check (conf.c): [tier] slow_nodes is a node
 * list. Returns 0, or -1 after printing why, naming path, to stderr. */
int act_conf_check(const void *conf, const char *path);

/* ---- limits (safety.c) ---- */

struct act_limits {
	uint64_t vm_min_kib;
	uint64_t used_margin_kib;
};

/* What the actuator knows of one VM when it decides. */
struct act_vm_view {
	bool max_known;
	uint64_t max_kib;
	bool current_known;	/* the target in force (else the balloon) */
	uint64_t current_kib;
	bool used_known;	/* fresh guest stats: total - available */
	uint64_t used_kib;
};

enum act_clamp {
	ACT_CLAMP_NONE,
	ACT_CLAMP_MAX,		/* above the VM's maximum */
	ACT_CLAMP_MIN,		/* below vm_min */
	ACT_CLAMP_USED,		/* below the guest's used + margin */
	ACT_CLAMP_NO_STATS,	/* a shrink without fresh guest stats */
};

/*
 * The target the actuator may set for want_kib: never above the maximum,
 * never below the floor, which is vm_min, raised to used + margin with
 * fresh stats, or to the current size without them (no blind shrinking),
 * and lowered to the maximum. ret_why (may be NULL) says which bound
 * applied, ret_floor_kib (may be NULL) the floor. The VM's maximum must be
 * known (max_known).
 */
uint64_t act_clamp(const struct act_limits *l, const struct act_vm_view *v,
    uint64_t want_kib, enum act_clamp *ret_why, uint64_t *ret_floor_kib);

/* Human text of a clamp reason, static. */
const char *act_clamp_name(enum act_clamp why);

/* ---- batch order (safety.c) ---- */

/* The last batch executed (one per actuator: one host). */
struct act_order {
	bool have;
	char scheduler_id[TOPO_ID_MAX + 1];
	uint64_t seq;
	uint64_t issued_ms;
};

enum act_verdict {
	ACT_ORDER_NEXT,		/* same scheduler, higher seq */
	ACT_ORDER_FIRST,	/* nothing executed yet */
	ACT_ORDER_RESTART,	/* same scheduler, seq reset, issued later */
	ACT_ORDER_FAILOVER,	/* another scheduler, issued no earlier */
	ACT_ORDER_STALE,	/* out of order: not to be executed */
};

/*
 * Whether a batch may run after what o says ran last. Within one scheduler
 * the seq orders batches; a scheduler that restarted counts from 1 again
 * but issues later; a different scheduler (failover, resharding) is
 * accepted unless its batch was issued before the last one executed.
 */
enum act_verdict act_order_check(const struct act_order *o,
    const char *scheduler_id, uint64_t seq, uint64_t issued_ms);

/* Remember the batch as the last executed, at now_ms (the actuator's
 * clock) if it was issued later: a batch dated ahead, from a skewed clock
 * or a forger, must not hold back the real ones issued after it. */
void act_order_commit(struct act_order *o, const char *scheduler_id,
    uint64_t seq, uint64_t issued_ms, uint64_t now_ms);

/* Why a batch is refused before it is queued. */
enum act_refusal {
	ACT_OK,
	ACT_REFUSE_SCHEDULER,	/* not one of the configured schedulers */
	ACT_REFUSE_FUTURE,	/* issued beyond the clock skew */
	ACT_REFUSE_TTL,		/* expires more than ACT_TTL_MAX_MS after
				 * it was issued */
	ACT_REFUSAL_COUNT
};

#define ACT_TTL_MAX_MS	3600000ull	/* the scheduler's command_ttl max */

/*
 * Whether a batch from scheduler_id, issued_ms and expiring expires_ms,
 * may be queued at now_ms. schedulers is the configured list (ids
 * separated by spaces or commas; NULL or empty: any).
 */
enum act_refusal act_batch_check(const char *schedulers,
    uint64_t clock_skew_ms, const char *scheduler_id, uint64_t issued_ms,
    uint64_t expires_ms, uint64_t now_ms);

/* Human text of a refusal, static. */
const char *act_refusal_name(enum act_refusal r);

/* ---- fail-safe (safety.c) ---- */

struct act_failsafe {
	double psi_pct;
	double avail_pct;
	double faults_s;	/* major faults per second; 0: not used */
	uint64_t step_kib;
	uint64_t host_reserve_kib;
};

/* A guest as the fail-safe sees it. */
struct act_fs_vm {
	bool fresh;		/* stats younger than stale_after */
	bool has_psi;
	double psi_some_avg10;
	bool has_mem;
	uint64_t total_kib, available_kib;
	bool has_faults;	/* faults_s is known */
	double faults_s;	/* major faults per second lately */
	uint64_t current_kib;	/* target in force */
	uint64_t max_kib;
};

/* True when the guest is under pressure by its latest fresh stats. */
bool act_fs_pressure(const struct act_failsafe *f, const struct act_fs_vm *v);

/*
 * The next fail-safe target of a guest under pressure: one step up, no
 * higher than its maximum, and only while host_avail_kib stays above the
 * reserve after it. 0 when nothing should be done.
 */
uint64_t act_fs_target(const struct act_failsafe *f, const struct act_fs_vm *v,
    uint64_t host_avail_kib);

/* ---- release (release.c) ---- */

/* What a release does with one guest. */
enum act_rel_outcome {
	ACT_REL_UNKNOWN,	/* its maximum or size unknown: left alone */
	ACT_REL_AT_MAX,		/* at its maximum already */
	ACT_REL_FULL,		/* grown to its maximum */
	ACT_REL_PARTIAL,	/* grown, short of its maximum: the host's
				 * free memory ran out */
	ACT_REL_NO_ROOM,	/* below its maximum, no host memory left */
};

struct act_rel_plan;

/* One guest of a release: its numbers in, the plan's target out, then
 * the write's outcome. */
struct act_rel_vm {
	char id[MSG_ID_MAX + 1];
	bool max_known;
	uint64_t max_kib;
	bool current_known;
	uint64_t current_kib;	/* the target in force, else the balloon */
	uint64_t target_kib;	/* the plan's; current_kib: nothing to do */
	enum act_rel_outcome outcome;
	int status;		/* the write: 0 or -errno */
	bool done;		/* the write confirmed */
	struct act_rel_plan *plan;	/* set by act_release_plan() */
};

struct act_rel_plan {
	uint64_t host_avail_kib;	/* host MemAvailable, in */
	uint64_t reserve_kib;		/* host_reserve, in */
	uint64_t budget_kib;		/* avail - reserve (0 below it) */
	uint64_t need_kib;		/* sum of max - current */
	uint64_t grant_kib;		/* sum of the growth planned */
	size_t n;
	struct act_rel_vm *vms;		/* malloc'd by act_release_collect() */
	unsigned pending, failed;	/* writes awaited, failed */
	bool given_up;			/* the caller stopped waiting */
	void (*done_cb)(struct act_rel_plan *p, void *arg);
	void *done_arg;
};

/*
 * The release plan, pure: p->vms (p->n of them) with their maximum and
 * current size, p->host_avail_kib and p->reserve_kib in; out, the guests
 * sorted largest deficit (max - current) first (then by id), each given a
 * target_kib and an outcome, and the budget, need and grant of p. A guest
 * grows toward its maximum while the sum of the growth stays within
 * MemAvailable - reserve; none is ever set above its maximum or below its
 * current size; a guest without the numbers is left alone.
 */
void act_release_plan(struct act_rel_plan *p);

/* What the release does or did with v (a line for the log or the
 * terminal, no newline). */
void act_release_describe(const struct act_rel_vm *v, char *buf,
    size_t len);

/* The whole release in a line: given back, left unreleased and why. */
void act_release_summary(const struct act_rel_plan *p, char *buf,
    size_t len);

/*
 * The plan for the VMs hv knows now and the host's MemAvailable from
 * <proc_root>/meminfo, with reserve_kib kept. *ret is the caller's, freed
 * with act_release_free(). Returns 0, or -errno when the host's
 * MemAvailable cannot be read (no release without knowing the host's
 * room), -ENOMEM.
 */
int act_release_collect(struct hv *hv, const char *proc_root,
    uint64_t reserve_kib, struct act_rel_plan *ret);

/*
 * Write the plan's targets that grow a guest; done_cb (may be NULL) is
 * called once every write has been answered, unless p->given_up is set by
 * then. A write refused at once counts as failed (its status set). p must
 * live until the driver is closed (it calls back cancelled writes).
 * Returns the writes awaited (0: done_cb is not called).
 */
unsigned act_release_apply(struct hv *hv, struct act_rel_plan *p,
    void (*done_cb)(struct act_rel_plan *p, void *arg), void *arg);

/* Free what act_release_collect() allocated. */
void act_release_free(struct act_rel_plan *p);

/* ---- `mm-actuator --release` (oneshot.c) ---- */

/* Remove "--release" from argv (updating *argc); true when it was
 * there. */
bool act_release_arg(int *argc, char **argv);

/*
 * The one-shot release: the hypervisor driver of c (no broker), the VMs
 * it finds within release_timeout, the plan applied, a line per guest and
 * the summary on stdout. Returns the exit status: 0, or 1 when a guest
 * could not be read or set, or the host's memory could not be read.
 */
int act_release_oneshot(const struct actuator_conf *c);

/* ---- KSM (ksm.c) ---- */

#define ACT_KSM_NFILES	4

/* KSM settings as found at start, to put back on stop. */
struct act_ksm {
	char *dir;				/* <sys_root>/kernel/mm/ksm */
	bool saved[ACT_KSM_NFILES];
	char value[ACT_KSM_NFILES][32];		/* as read, no newline */
	/* The write of one file; tests replace it. Returns 0 or -errno. */
	int (*write_fn)(const char *path, const char *value, void *arg);
	void *write_arg;
	uint64_t refused;	/* commands outside ksm_limits.h, counter */
};

/*
 * Remember what <sys_root>/kernel/mm/ksm holds now (run, pages_to_scan,
 * sleep_millisecs, merge_across_nodes). sys_root is copied. Returns 0 or
 * -ENOENT without KSM, -ENOMEM.
 */
int act_ksm_init(struct act_ksm *k, const char *sys_root);

/*
 * Write the fields set in s. run=2 (unmerge) is written before
 * merge_across_nodes, which the kernel refuses (EBUSY) while pages are
 * shared. why (whylen bytes) says what failed. Returns 0 or the first
 * error, -EBUSY for merge_across_nodes while pages are shared, -ERANGE
 * (nothing written, k->refused counted) for pages_to_scan or sleep_ms
 * outside ksm_limits.h.
 */
int act_ksm_apply(struct act_ksm *k, const Mm__V1__KsmSettings *s, char *why,
    size_t whylen);

/* Read the settings back into *ret (initialised here). Returns 0 or
 * -errno. */
int act_ksm_read(const struct act_ksm *k, Mm__V1__KsmSettings *ret);

/*
 * Put back what act_ksm_init() found, never unmerging: a changed
 * merge_across_nodes that the kernel refuses while pages are shared stays
 * as it is (-EBUSY), and a run=2 found is not written back. Returns 0 or
 * the first error (every file is tried). Then free what k holds.
 */
int act_ksm_restore(struct act_ksm *k);
void act_ksm_free(struct act_ksm *k);

/* ---- NUMA (numa.c) ---- */

/* What a MigrateNuma turns into. */
struct act_numa_plan {
	uint64_t from_mask;	/* nodes to move from (bit N: node N) */
	uint64_t to_mask;	/* the destination node's bit */
	uint64_t pages;		/* resident pages on from_mask */
	char why[160];		/* when there is nothing to do, or an error */
};

/*
 * Decide the masks of migrate_pages(2) for a move to to_node from
 * from_nodes (n_from, empty: every other node) given the host's nodes
 * (online_mask) and the VM's resident pages per node (pages,
 * MSG_NODES_MAX entries). migrate_pages moves whole nodes, so the quota
 * max_pages (0: none) picks the source nodes, smallest first, that fit.
 * Returns 0 with a plan, -ENOENT when there is nothing to move (plan->why
 * says why), -EINVAL for a destination the host lacks.
 */
int act_numa_plan(uint64_t online_mask, const uint64_t *pages,
    const uint32_t *from_nodes, size_t n_from, uint32_t to_node,
    uint64_t max_pages, struct act_numa_plan *ret);

/* The host's online nodes from <sys_root>/devices/system/node/node<N>.
 * Returns 0 (mask 1 without the directory) or -errno. */
int act_numa_online(const char *sys_root, uint64_t *ret_mask);

/* migrate_pages(2) of pid from from_mask to to_mask. Returns the pages
 * not moved (>= 0) or -errno. */
long act_migrate_pages(pid_t pid, uint64_t from_mask, uint64_t to_mask);

/* ---- the daemon ---- */

/* The configuration keys (conf.c), for conf_defaults(), conf_load() and
 * conf_free() on a struct actuator_conf. */
extern const struct conf_key act_conf_table[];
extern const size_t act_conf_nkeys;

#define ACT_ERR_MAX	256	/* text of one command's result */
#define ACT_TICK_MS	250	/* deferred targets and the fail-safe */

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
	uint64_t fs_target_kib;	/* the last step's target (0: none) */
	uint64_t fs_step_ms;	/* when it was set (uv_now) */
	uint64_t fs_reached_ms;	/* when the balloon was seen there (0:
				 * not yet) */
	uint64_t fs_faults;	/* major faults in the sample of */
	uint64_t fs_faults_ms;	/* this time (epoch ms; 0: none yet) */
	double fs_faults_s;	/* the rate between the last two samples */
	bool fs_has_rate;
};

struct job;	/* a batch being executed or waiting (exec.c) */

/* ---- host tier (hosttier.c) ---- */

enum act_tier_mode {
	ACT_TIER_OFF,
	ACT_TIER_AUTO,		/* a slower node if there is one, else swap */
	ACT_TIER_SWAP,
	ACT_TIER_NODE,
};

/* What the tier does with one VM's process. */
struct act_tier_vm {
	char id[MSG_ID_MAX + 1];
	pid_t pid;
	bool seen;		/* in the pass's listing */
	bool open;		/* scan has its chunks */
	struct tier_scan scan;
	unsigned min_idle;	/* windows; raised on refaults */
	uint64_t last_pages;	/* moved by the last pass */
	/* The pass's outcome, read on the loop after the work. */
	int err;
	bool err_logged;
	uint64_t moved_kib, refaults;
	uint64_t moved_total_kib;	/* counter */
};

/* The scans and moves, replaced by unit tests (tier.h's by default). */
struct act_tier_ops {
	int (*probe)(const char *proc_root, const char *sys_root,
	    uint64_t slow_nodes, struct tier_host *ret);
	int (*memory)(const char *proc_root, struct tier_host *ret);
	int (*open)(struct tier_scan *s, const char *proc_root, pid_t pid,
	    uint64_t min_bytes);
	int (*begin)(struct tier_scan *s, const char *proc_root);
	int (*end)(struct tier_scan *s, const char *proc_root);
	int64_t (*pageout)(const struct tier_scan *s, const size_t *idx,
	    size_t n);
	int64_t (*demote)(struct tier_scan *s, const size_t *idx, size_t n,
	    unsigned node);
};

struct act_tier {
	const struct act_tier_ops *ops;
	int mode;		/* resolved: OFF (also skipped), SWAP, NODE */
	bool skipped;		/* asked for, but the host has no tier */
	unsigned node;		/* NODE: where cold chunks go */
	uint64_t slow_mask;	/* from the configuration, 0: the kernel's */
	char state[64];		/* "off", "skipped", "swap", "node 1" */
	char why[256];		/* skipped: what is missing */
	uv_timer_t timer;
	uv_work_t work;
	bool busy, timer_on, closing;
	struct act_tier_vm *vms;
	size_t n, cap;
	const struct actuator_conf *conf;	/* the actuator's */
	bool held_back;		/* the last pass: the host had plenty */
	uint64_t passes, moved_kib, errors;	/* counters */
};

struct actuator;

/*
 * Start the tier as a->conf says: off, or probe the host (swap, slower
 * nodes) and, where it has the tier asked for, a pass every window. Where
 * it has none: one log line saying so, and the tier stays off (state
 * "skipped"). Returns 0 or -errno (a bad slow_nodes list).
 */
int act_tier_start(struct actuator *a);
/* Close the timer and free the VMs' scans; a pass running on the pool
 * finishes first (its end frees them). */
void act_tier_close(struct actuator *a);

struct actuator {
	struct actuator_conf conf;	/* the caller's, freed by it */
	char host_id[TOPO_ID_MAX + 1];
	char queue[TOPO_ID_MAX + 32];
	char result_key[TOPO_ID_MAX + 32];
	char alert_key[TOPO_ID_MAX + 32];
	uv_loop_t *loop;		/* borrowed */
	struct bus *bus;
	struct hv *hv;
	struct daemon_signals sig;	/* main()'s, closed with the rest */
	bool sig_on;
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
	struct act_rel_plan rel;	/* release_on_stop's */
	struct msg_dispatch_stats dstats;
	uint64_t batches, expired, stale, clamped, failed, deferred;
	uint64_t misrouted, ignored, failsafe_steps, publish_errors;
	uint64_t refused[ACT_REFUSAL_COUNT];	/* by reason */
	struct log_limit lim_refused;
	struct mx_server *metrics;	/* [metrics] listen, or NULL */
	struct act_tier tier;
};

/* run.c */
/* Copy the limits and the fail-safe's thresholds from a->conf: at start
 * and after a reload. */
void act_apply_limits(struct actuator *a);

/*
 * Start the actuator on loop with a->conf (filled by the caller, host_id
 * set; everything else in *a zeroed): its bus (declared, consuming, then
 * started), its hypervisor driver and its timers. A driver that cannot
 * start is fatal (daemon_hv_start()). Returns 0 or -errno; on error what
 * was started is left for act_stop() to close.
 */
int act_start(struct actuator *a, uv_loop_t *loop);
/*
 * Stop (SIGTERM): the batch in progress finishes, queued ones are
 * dropped, the guests keep their targets (release_on_stop = yes: the
 * bounded release, act_release_plan()), KSM settings are put back without
 * unmerging, then every handle is closed and a->closed set; the loop then
 * ends. Once more is a no-op.
 */
void act_stop(struct actuator *a);
/* The end of act_stop(), after the release: close everything. */
void act_close(struct actuator *a);
/* The driver's configuration of c (strings borrowed), without events. */
void act_hv_config(const struct actuator_conf *c, struct hv_config *ret);

/* metrics.c: the /metrics text (mx_render_cb; arg is the actuator). */
void act_metrics_cb(struct mx *m, void *arg);

/* wire.c: the bus glue */
/* Create a->bus, declare the actuator's topology and consume its queue.
 * Returns 0 or -errno. */
int act_bus_open(struct actuator *a);
/* Publish ev on mm.events with key, stamped with the host and the time.
 * ev's strings are borrowed. Returns what msg_publish() returns. */
int act_publish_event(struct actuator *a, const char *key,
    Mm__V1__Event *ev);
/* An ALERT event; vm_id, reason and metrics may be NULL, batch_seq 0. */
void act_alert(struct actuator *a, Mm__V1__Severity sev, const char *vm_id,
    uint64_t batch_seq, const char *reason, Mm__V1__Metric **metrics,
    size_t nmetrics);
/*
 * Publish ar (its results filled by the caller) as a RESULT event: the
 * host, the time, and the batch it answers (batch_seq 0: none, as when
 * the actuator asks for its targets). vm_id and reason may be NULL.
 */
void act_publish_result(struct actuator *a, Mm__V1__ActionResult *ar,
    uint64_t batch_seq, const char *vm_id, const char *reason);

/* exec.c: the batch executor */
/* What to do with a batch delivered on the actuator's queue (borrowed):
 * refused, ignored, or queued and run in turn. */
enum bus_disposition act_batch_receive(struct actuator *a,
    const Mm__V1__CommandBatch *b);
/* Drop the queued batches (stopping); the one in progress finishes. */
void act_jobs_drop(struct actuator *a);
/* Free the queued batches and the one in progress, unfinished. */
void act_jobs_free(struct actuator *a);
/* Set the deferred targets whose time has come (every tick). */
void act_deferred_tick(struct actuator *a);
/* The target in force: what was last set, else the balloon. */
bool act_vm_current(const struct hv_vm *vm, uint64_t *ret_kib);
/* True when the guest's stats are younger than stale_after. */
bool act_vm_fresh(const struct actuator *a, const struct hv_vm *vm);

/* failsafe.c: the scheduler silent, and the stop */
/* The fail-safe's round (every tick): nothing before failsafe_after
 * without a batch, then guests under pressure grow a step. */
void act_failsafe_tick(struct actuator *a);
/* The batch executed: the fail-safe is off. */
void act_failsafe_off(struct actuator *a);
/* After the batch in progress (if any) has finished while stopping: drop
 * the queue, with release_on_stop release the guests within the host's
 * free memory, then act_close(). */
void act_release(struct actuator *a);

#endif
