/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-collector's private header: its state, the functions its files share
 * and the sanitizer of untrusted guest numbers. The collector turns what the
 * hypervisor driver and the host's procfs/sysfs say into HostReport
 * messages on mm.stats: report.c builds them (no bus needed), sample.c
 * follows the driver and times them, publish.c puts them on the bus,
 * collector.c starts and stops it all.
 */
#ifndef MM_COLLECTOR_H
#define MM_COLLECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "bus_conf.h"
#include "daemon_host.h"
#include "hv.h"
#include "metrics_http.h"
#include "msg.h"
#include "topology.h"

struct collector_conf {
	char *host_id;			/* NULL: the hostname */
	int64_t interval_ms;		/* periodic report */
	int64_t fast_min_interval_ms;	/* coalescing of pressure reports */
	int64_t fast_rise_kib;		/* used memory up this much: early */
	int driver;			/* enum hv_type */
	char *vm_dir;
	char *libvirt_uri;		/* libvirt: the connection */
	char *balloon_path;
	char *proc_root;
	char *sys_root;
	int64_t rescan_ms;
	int64_t agent_timeout_ms;
	int64_t stale_ms;		/* older guest samples are stale */
	int64_t guest_rate;		/* samples per second per VM */
	int64_t tolerance_kib;		/* slack of consistency checks */
	int64_t psi_jump_pct;		/* avg10 rise, percent points */
	bool numa;			/* numa_maps and vCPU nodes per VM */
	int64_t numa_interval_ms;
	struct bus_conf bus;
	char *metrics_listen;		/* [metrics] listen */
	int log_level;			/* [log] level */
};

/* Why a guest value was distrusted; each maps to one SanitizerFlag. */
enum san_reason {
	SAN_MISSING,		/* no meminfo or no total */
	SAN_TOTAL_ABOVE_MAX,	/* total above the VM's max or balloon */
	SAN_PART_ABOVE_TOTAL,	/* free/available/cached/anon above total */
	SAN_PARTS_EXCEED,	/* free + anon + cached above total */
	SAN_HOST_GREW,		/* host gave memory, guest total unchanged */
	SAN_SEQ_BACK,		/* agent_seq went back: agent restarted */
	SAN_COUNTER_BACK,	/* a counter went back without a restart */
	SAN_FUTURE_TIME,	/* time_ms ahead of the host's clock */
	SAN_RATE,		/* samples faster than allowed */
	SAN_OWNED_FIELD,	/* guest set a field the host owns */
	SAN_UNKNOWN_FIELDS,	/* fields mm does not know: dropped */
	SAN_TOO_BIG,		/* sample above guest_max_bytes: refused */
	SAN_HOST_VIEW,		/* used above what the host sees resident */
	SAN_REASON_COUNT
};

/* Largest GuestStats the collector puts in a report, packed. Known fields
 * take about 300 bytes; a guest must not grow its host's report. */
#define SAN_GUEST_MAX_BYTES	4096

struct san_limits {
	uint64_t tolerance_kib;		/* slack of the consistency checks */
	unsigned rate_per_s;		/* samples accepted per second */
	double psi_jump_pct;		/* avg10 rise that is "rising" */
	size_t guest_max_bytes;		/* 0: SAN_GUEST_MAX_BYTES */
};

/* Monotonic counters of a sample the sanitizer follows: the counter
 * fields of hoststats' vmstat and PSI tables (major faults, swap in and
 * out, refaults, OOM kills; PSI's some and full totals). */
#define SAN_COUNTERS	7

/* Per-VM sanitizer memory; zero it to start. */
struct san_vm {
	bool have_prev;
	bool prev_has_seq;		/* prev was the agent's (QMP has none) */
	uint64_t prev_seq;
	uint64_t prev_total_kib;
	uint64_t prev_host_kib;		/* balloon actual at prev sample */
	uint64_t prev_counter[SAN_COUNTERS];
	bool prev_has_counter[SAN_COUNTERS];
	double prev_avg10;
	double tokens;
	uint64_t tokens_ms;
	bool rate_flag_pending;		/* flag the next accepted sample */
	uint32_t logged;		/* reasons already logged, by bit */
	uint64_t count[SAN_REASON_COUNT];
};

/* What the host knows of the VM, to check the guest against. */
struct san_host {
	const char *vm_id;
	bool balloon_known;
	uint64_t balloon_actual_kib;
	bool target_known;		/* used where actual is unknown (Xen) */
	uint64_t target_kib;
	bool max_known;
	uint64_t max_kib;
	bool doo_known;			/* the balloon deflates on OOM (kvm) */
	bool deflate_on_oom;
	/* What the host sees the VM hold: its process's resident memory
	 * (kvm, sim); the guest cannot claim to use more. */
	bool resident_known;
	uint64_t resident_kib;
	uint64_t now_ms;		/* wall clock, ms since the epoch */
	uint64_t mono_ms;		/* loop time, for the rate limit */
};

/* Process-wide rejection counters by reason. */
extern uint64_t san_total[SAN_REASON_COUNT];

/* The reason's name ("total_above_max"), static. */
const char *san_reason_name(enum san_reason r);

/*
 * Rate limit: true when a sample arriving now may be used; false counts a
 * SAN_RATE rejection (logged once per VM) and flags the next accepted one.
 */
bool san_admit(struct san_vm *s, const struct san_limits *lim,
    const struct san_host *h);

/*
 * Check and fix g in place: g is the collector's own copy (every part
 * malloc'd, as from msg_unpack()), which sanitizing may extend (flags,
 * meminfo). Fields mm does not know (protobuf-c's unknown_fields, in g and
 * every submessage) are dropped and host-owned fields set by the guest are
 * cleared; host_resident_kib is set from h; values are clamped into range;
 * counters are kept monotonic (an agent restart resets the baseline);
 * g->flags lists a SanitizerFlag per distrusted value and
 * g->pressure_rising is set by the collector's rule. Every rejection is
 * counted in s and san_total and logged once per VM (unknown fields and
 * refusals: each, rate-limited). Returns 0, -EMSGSIZE (g still packs to
 * more than guest_max_bytes: refused, the caller drops it) or -ENOMEM.
 */
int san_check(struct san_vm *s, const struct san_limits *lim,
    const struct san_host *h, Mm__V1__GuestStats *g);

/* ---- the collector ---- */

/* What the collector keeps per VM (hv_vm.user). */
struct cvm {
	struct san_vm san;
	Mm__V1__GuestStats *clean;	/* sanitized copy, owned */
	bool seen;		/* a sample was sanitized: these are its */
	uint64_t seen_seq;
	uint64_t seen_time_ms;
	uint64_t clean_rx_ms;		/* loop time it arrived */
	bool rising_unreported;		/* a rising sample since the last
					 * report, maybe replaced since */
	bool reported_used;		/* reported_used_kib is set */
	uint64_t reported_used_kib;	/* used memory in the last report */
	unsigned rejects_logged;	/* enum hv_reject bits */
	uint64_t numa_at_ms;		/* last numa_maps reading, loop ms */
	bool have_pages, have_vcpus;
	uint64_t pages[MSG_NODES_MAX];	/* resident 4 KiB pages per node */
	uint64_t vcpu_mask;		/* nodes its threads last ran on */
};

struct collector {
	struct collector_conf conf;
	char host_id[TOPO_ID_MAX + 1];
	char key[TOPO_ID_MAX + 8];	/* host.<host_id> */
	struct san_limits lim;
	int ksmd_pid;			/* cached by hs_read_ksmd_cpu() */
	uint64_t seq;			/* of the next report */
	uv_loop_t *loop;
	struct bus *bus;
	struct hv *hv;
	struct daemon_opts opts;
	struct daemon_signals sig;
	uv_timer_t tick;		/* the periodic report */
	uv_timer_t fast;		/* an early one, coalesced */
	uint64_t last_pub_ms;		/* loop time of the last report */
	bool fast_pending;		/* fast is started */
	bool stopping;
	uint64_t published, fast_published, publish_errors;
	uint64_t status_ms;		/* loop time of the last STATUS= */
	struct mx_server *metrics;	/* [metrics] listen, or NULL */
	/* The host's memory as the last report read it, for metrics. */
	bool have_host_meminfo, have_host_ksm;
	Mm__V1__Meminfo host_meminfo;
	uint64_t host_ksm_sharing_pages;
};

/* A HostReport and everything it points into, for report_build(). */
struct report {
	Mm__V1__HostReport msg;
	Mm__V1__HostStats host;
	Mm__V1__Meminfo meminfo;
	Mm__V1__Vmstat vmstat;
	Mm__V1__Psi psi;
	Mm__V1__KsmStats ksm;
	Mm__V1__KsmSettings ksm_settings;
	Mm__V1__NumaNode nodes[MSG_NODES_MAX];
	Mm__V1__NumaNode *nodes_p[MSG_NODES_MAX];
	/* per VM, malloc'd */
	Mm__V1__GuestStats **guests;
	Mm__V1__GuestStats *stubs;	/* VMs without a sample yet */
	Mm__V1__VmNuma *vm_numa;
	Mm__V1__VmNuma **vm_numa_p;
	Mm__V1__NodePages *pages;	/* MSG_NODES_MAX per VM */
	Mm__V1__NodePages **pages_p;
	uint32_t *vcpu_nodes;		/* MSG_NODES_MAX per VM */
};

/* report.c */

/* A VM's state, zeroed; NULL with errno ENOMEM. cvm_free(NULL) is a no-op;
 * it frees the kept sample too. */
struct cvm *cvm_new(void);
void cvm_free(struct cvm *cv);

/*
 * vm's guest sent a sample (vm->guest; vm->user is its cvm, both
 * borrowed): unless it is the one already taken (a balloon event), comes
 * before the host knows the VM's size, or is over the rate limit, a copy is
 * sanitized against the host's view (the process's resident memory under
 * conf.proc_root) with c->lim and kept for the next report. mono_ms is the
 * loop's time. True when it should be reported before the interval: its
 * pressure is rising, or it uses conf.fast_rise_kib more than in the last
 * report.
 */
bool report_take_guest(struct collector *c, struct hv_vm *vm,
    uint64_t mono_ms);

/*
 * Build the next report (seq c->seq, then incremented) into *ret: the
 * host's statistics read under conf.proc_root and conf.sys_root, and for
 * each of the nvms VMs with a cvm its last sanitized sample, or a stub
 * without one, stale when older than conf.stale_ms at mono_ms, with the
 * host's balloon figures and, with conf.numa, its NUMA placement. Each VM's
 * rising flag is consumed and its used memory noted for fast_rise. vms and
 * the samples are borrowed: publish or copy the report before the next
 * driver event, then report_release() it. Returns 0 or -ENOMEM (nothing to
 * release then).
 */
int report_build(struct collector *c, struct hv_vm *const *vms, size_t nvms,
    uint64_t mono_ms, struct report *ret);

/* Free what report_build() allocated. */
void report_release(struct report *rep);

/* sample.c */

/* The driver's events (hv_config.event_cb); arg is the collector. */
void sample_hv_event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm,
    void *arg);

/* Start the periodic report on c->loop. Returns 0 or a negative errno. */
int sample_start(struct collector *c);

/* Close the timers and free every VM's state (before hv_close()). */
void sample_stop(struct collector *c);

/* publish.c */

/* Connect to the broker as conf.bus says (the bus starts with
 * bus_start()) and declare mm.stats. Returns 0 or a negative errno. */
int publish_open(struct collector *c);

/* metrics.c: the /metrics text (mx_render_cb; arg is the collector). */
void collector_metrics_cb(struct mx *m, void *arg);

/* Build a report of every VM and publish it to mm.stats, key c->key; fast:
 * it comes early. Counted in c. Returns 0 or a negative errno. */
int publish_report(struct collector *c, bool fast);

#endif
