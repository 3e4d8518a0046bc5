/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of policy keys and typed access to where they are kept. The C
 * type of each field is taken from the field itself (_Generic), so that a
 * key cannot be read with the wrong width.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "policykeys.h"
#include "policymsg.h"

#define CTYPE(x)	_Generic((x), uint32_t: PK_T_U32, uint64_t: PK_T_U64, \
	double: PK_T_DOUBLE, bool: PK_T_BOOL, protobuf_c_boolean: PK_T_INT)

#define KEY(sec, mtype, stype, fname, mf, sf, scl, u, lo, hi, dflt, text) { \
	.name = fname, .field = #mf, .section = sec, .unit = u, .min = lo, \
	.max = hi, .def = dflt, .doc = text, .offset = offsetof(stype, sf), \
	.type = CTYPE(((stype *)0)->sf), .scale = scl, \
	.msg_offset = offsetof(mtype, mf), \
	.has_offset = offsetof(mtype, has_##mf), \
	.msg_type = CTYPE(((mtype *)0)->mf) }

#define POLICY(fname, mf, sf, u, lo, hi, dflt, text) \
	KEY(PK_POLICY, Mm__V1__Policy, struct pm_policy, fname, mf, \
	    balloon.sf, 1, u, lo, hi, dflt, text)
#define LIMITS(fname, mf, u, lo, hi, dflt, text) \
	KEY(PK_LIMITS, Mm__V1__VmLimits, struct pe_limits, fname, mf, mf, 1, \
	    u, lo, hi, dflt, text)
#define KSM(fname, mf, sf, u, lo, hi, dflt, text) \
	KEY(PK_KSM, Mm__V1__KsmPolicy, struct pm_policy, fname, mf, sf, 1, \
	    u, lo, hi, dflt, text)
#define NUMA(fname, mf, sf, scl, u, lo, hi, dflt, text) \
	KEY(PK_NUMA, Mm__V1__NumaPolicy, struct pm_policy, fname, mf, \
	    numa.sf, scl, u, lo, hi, dflt, text)
#define PARAM(fname, sf, u, lo, hi, dflt, text) { \
	.name = fname, .field = fname, .section = PK_PARAMS, .unit = u, \
	.min = lo, .max = hi, .def = dflt, .doc = text, \
	.offset = offsetof(struct pm_policy, sf), \
	.type = CTYPE(((struct pm_policy *)0)->sf), .scale = 1, \
	.msg_type = PK_T_DOUBLE }

#define DAY_MS	86400000

static const struct pk_key keys[] = {
	POLICY("host_reserve", host_reserve_kib, host_reserve_kib, PK_KIB, 0,
	    PM_HOST_KIB_MAX, 512 * 1024,
	    "memory each host keeps for itself, never handed to guests"),

	LIMITS("min", min_kib, PK_KIB, 0, PM_VM_KIB_MAX, 0,
	    "guaranteed: never ballooned below (0: the host's floor)"),
	LIMITS("max", max_kib, PK_KIB, 0, PM_VM_KIB_MAX, 0,
	    "never grown above (0: the host's maximum)"),
	LIMITS("weight", weight, PK_NUMBER, 0, 10000, 100,
	    "share of contended memory; 0 gives first"),
	LIMITS("headroom", headroom_kib, PK_KIB, 0, PM_VM_KIB_MAX, 128 * 1024,
	    "kept above used memory, or headroom_pct of it if larger"),
	LIMITS("headroom_pct", headroom_pct, PK_PCT, 0, 100, 10,
	    "kept above used memory, percent of it, or headroom if larger"),
	LIMITS("unmanaged", unmanaged, PK_BOOL, 0, 1, 0,
	    "leave the VM's balloon alone"),
	LIMITS("reclaim", reclaim, PK_BOOL, 0, 1, 0,
	    "ask the VM's agent to reclaim its cold memory into its swap "
	    "(proactive reclaim; the reclaim_* params)"),

	KSM("enable", enable, ksm.enable, PK_BOOL, 0, 1, 1,
	    "let mm drive KSM"),
	KSM("cpu_budget_pct", cpu_budget_pct, ksm.cpu_budget_pct, PK_PCT, 0,
	    100, 10, "ksmd's CPU allowed, percent of one CPU"),
	KSM("start_available_pct", start_available_pct, ksm.start_free_pct,
	    PK_PCT, 0, 100, 20,
	    "merge while host MemAvailable is below this, percent of total"),
	KSM("stop_available_pct", stop_available_pct, ksm.ample_free_pct,
	    PK_PCT, 0, 100, 40,
	    "unmerge once host MemAvailable has stayed above this a while"),
	KSM("min_pages_to_scan", min_pages_to_scan, ksm.min_scan, PK_NUMBER,
	    KSM_PAGES_TO_SCAN_MIN, KSM_PAGES_TO_SCAN_MAX, 64,
	    "pages_to_scan floor"),
	KSM("max_pages_to_scan", max_pages_to_scan, ksm.max_scan, PK_NUMBER,
	    KSM_PAGES_TO_SCAN_MIN, KSM_PAGES_TO_SCAN_MAX, 1250,
	    "pages_to_scan ceiling"),
	KSM("sleep", sleep_ms, ksm.sleep_ms, PK_MS, KSM_SLEEP_MS_MIN,
	    KSM_SLEEP_MS_MAX, 20, "sleep_millisecs to set"),
	KSM("merge_across_nodes", merge_across_nodes, merge_across_nodes,
	    PK_BOOL, 0, 1, 0, "merge_across_nodes to set (unset: left alone)"),

	NUMA("enable", enable, enable, 1, PK_BOOL, 0, 1, 1,
	    "let mm move VMs' pages toward the node their vCPUs run on"),
	NUMA("min_interval", min_interval_s, min_interval_ms, 1000, PK_S, 0,
	    UINT32_MAX, 300, "at least this long between two moves of one VM"),
	NUMA("round_quota", round_pages, quota_pages, 1, PK_PAGES, 0,
	    PM_NUMA_PAGES_MAX, 262144, "at most this much moved per round"),
	NUMA("node_reserve", node_reserve_kib, node_reserve_kib, 1, PK_KIB, 0,
	    PM_HOST_KIB_MAX, 256 * 1024, "kept free on the destination node"),

	PARAM("psi_low_pct", balloon.psi_low_pct, PK_PCT, 0, 100, 1,
	    "PSI some avg10 where pressure starts to count"),
	PARAM("psi_high_pct", balloon.psi_high_pct, PK_PCT, 0, 100, 20,
	    "PSI some avg10 that counts as full pressure"),
	PARAM("faults_high_s", balloon.faults_high_s, PK_NUMBER, 1, 1e9, 1000,
	    "major faults per second that count as full pressure"),
	PARAM("avail_low_pct", balloon.avail_low_pct, PK_PCT, 0, 100, 5,
	    "MemAvailable below this percent of MemTotal is pressure"),
	PARAM("grow_pct", balloon.grow_pct, PK_PCT, 0, 1000, 50,
	    "step up under full pressure, percent"),
	PARAM("grow_min_kib", balloon.grow_min_kib, PK_KIB, 0, PM_VM_KIB_MAX,
	    64 * 1024, "smallest step up under pressure"),
	PARAM("shrink_pct", balloon.shrink_pct, PK_PCT, 0, 100, 5,
	    "step down per decision, percent of the target"),
	PARAM("shrink_max_kib", balloon.shrink_max_kib, PK_KIB, 0,
	    PM_VM_KIB_MAX, 256 * 1024, "largest step down per decision"),
	PARAM("hold_ms", balloon.hold_ms, PK_MS, 0, DAY_MS, 30000,
	    "calm this long before shrinking"),
	PARAM("deadband_pct", balloon.deadband_pct, PK_PCT, 0, 100, 5,
	    "no change within this percent, or deadband_kib if larger"),
	PARAM("deadband_kib", balloon.deadband_kib, PK_KIB, 0, PM_VM_KIB_MAX,
	    32 * 1024, "no change within this, or deadband_pct if larger"),
	PARAM("ewma_alpha", balloon.ewma_alpha, PK_NUMBER, 0.001, 1, 0.3,
	    "smoothing of used memory"),
	PARAM("peak_halflife_ms", balloon.peak_halflife_ms, PK_MS, 0, DAY_MS,
	    600000, "a calm VM keeps memory up to its recent peak, decaying"),
	PARAM("spare_pct", balloon.spare_pct, PK_PCT, 0, 100, 90,
	    "of the memory no VM needs, this much is handed out as buffer"),
	PARAM("surge_halflife_ms", balloon.surge_halflife_ms, PK_MS, 0, DAY_MS,
	    3600000, "how long a surge counts for the buffer, halving so"),
	PARAM("history_hours", balloon.history_hours, PK_NUMBER, 0,
	    PE_HIST_HOURS, 24, "a VM keeps at least its peak of this many "
	    "last hours (0: off)"),
	PARAM("history_margin_pct", balloon.history_margin_pct, PK_PCT, 0,
	    1000, 10, "kept above the peak of history_hours, percent of it"),
	PARAM("history_min_hours", balloon.history_min_hours, PK_NUMBER, 1,
	    PE_HIST_HOURS, 6, "hours of history before it counts"),
	PARAM("reclaim_idle_ms", balloon.reclaim_idle_ms, PK_MS, 1000, DAY_MS,
	    300000, "proactive reclaim: memory idle this long is cold"),
	PARAM("reclaim_psi_budget_pct", balloon.reclaim_psi_budget_pct,
	    PK_PCT, 0, 100, 5, "proactive reclaim: asked only while the "
	    "guest stalls less, and stopped by the agent above it"),
	PARAM("reclaim_interval_ms", balloon.reclaim_interval_ms, PK_MS,
	    10000, DAY_MS, 600000,
	    "proactive reclaim: asked again no sooner"),
	PARAM("reclaim_min_kib", balloon.reclaim_min_kib, PK_KIB, 0,
	    PM_VM_KIB_MAX, 64 * 1024,
	    "proactive reclaim: less cold memory is left alone"),
	PARAM("reclaim_max_kib", balloon.reclaim_max_kib, PK_KIB, 0,
	    PM_VM_KIB_MAX, 1024 * 1024,
	    "proactive reclaim: the most asked at once"),
	PARAM("pool_hours", balloon.pool_hours, PK_NUMBER, 0, PE_HIST_HOURS,
	    48, "the host keeps free at least the most its VMs went above "
	    "their day's peaks together within an hour of this many last "
	    "hours (0: spare_pct's share only)"),
	PARAM("inactive_ms", balloon.inactive_ms, PK_MS, 1, DAY_MS, 5000,
	    "a balloon without progress this long is inactive"),
	PARAM("uncooperative_ms", balloon.uncooperative_ms, PK_MS, 1, DAY_MS,
	    20000, "a balloon without progress this long is uncooperative"),
	PARAM("vm_overhead_kib", balloon.vm_overhead_kib, PK_KIB, 0,
	    PM_VM_KIB_MAX, 0, "per VM, the hypervisor's own"),
	PARAM("guest_capacity_kib", balloon.guest_capacity_kib, PK_KIB, 0,
	    PM_HOST_KIB_MAX, 0, "the most the guests may hold together (0: "
	    "no cap)"),
	PARAM("ksm_min_profit", ksm.min_profit, PK_NUMBER, 0, 1e12, 2000,
	    "pages merged per ksmd CPU-second worth scanning for"),
	PARAM("ksm_ample_pct", ksm.ample_free_pct, PK_PCT, 0, 100, 40,
	    "as stop_available_pct"),
	PARAM("ksm_ample_hold_ms", ksm.ample_hold_ms, PK_MS, 0, DAY_MS, 300000,
	    "memory ample this long before unmerging"),
	PARAM("ksm_retry_ms", ksm.retry_ms, PK_MS, 0, DAY_MS, 600000,
	    "after stopping for lack of profit, try again this late"),
	PARAM("ksm_step_up", ksm.step_up, PK_NUMBER, 0, 100000, 300,
	    "pages_to_scan step up"),
	PARAM("ksm_step_down", ksm.step_down, PK_NUMBER, 0, 100000, 50,
	    "pages_to_scan step down"),
	PARAM("numa_min_remote_pct", numa.min_remote_pct, PK_PCT, 0, 100, 10,
	    "move a VM only above this percent of its pages remote"),
	PARAM("numa_min_pages", numa.min_pages, PK_NUMBER, 0,
	    PM_NUMA_PAGES_MAX, 2560, "and only at least this many pages"),
};

struct pk_value
pk_value_u(uint64_t u)
{
	return (struct pk_value){ .u = u, .d = (double)u };
}

struct pk_value
pk_value_d(double d)
{
	/* 2^64: the first double a uint64_t cannot hold */
	bool fits = d >= 0 && d < 18446744073709551616.0;

	return (struct pk_value){ .u = fits ? (uint64_t)d : 0, .d = d };
}

const struct pk_key *
pk_key_at(size_t i)
{
	return i < sizeof(keys) / sizeof(*keys) ? &keys[i] : NULL;
}

const struct pk_key *
pk_find(enum pk_section s, const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++)
		if (keys[i].section == s && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

bool
pk_whole(const struct pk_key *k)
{
	return k->msg_type != PK_T_DOUBLE;
}

bool
pk_in_range(const struct pk_key *k, struct pk_value v)
{
	double x = pk_whole(k) ? (double)v.u : v.d;

	return x >= k->min && x <= k->max;
}

void
pk_names(enum pk_section s, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys) && len < size;
	    i++) {
		int n;

		if (keys[i].section != s)
			continue;
		n = snprintf(buf + len, size - len, "%s%s",
		    len > 0 ? ", " : "", keys[i].name);
		if (n < 0)
			break;
		len += (size_t)n;
	}
}

static struct pk_value
load(enum pk_ctype t, const void *p)
{
	switch (t) {
	case PK_T_U32:
		return pk_value_u(*(const uint32_t *)p);
	case PK_T_U64:
		return pk_value_u(*(const uint64_t *)p);
	case PK_T_DOUBLE:
		return pk_value_d(*(const double *)p);
	case PK_T_BOOL:
		return pk_value_u(*(const bool *)p);
	case PK_T_INT:
		return pk_value_u(*(const protobuf_c_boolean *)p != 0);
	}
	return pk_value_u(0);
}

/* Whole numbers are taken from v.u, others from v.d. */
static void
store(enum pk_ctype t, void *p, struct pk_value v)
{
	switch (t) {
	case PK_T_U32:
		*(uint32_t *)p = (uint32_t)v.u;
		break;
	case PK_T_U64:
		*(uint64_t *)p = v.u;
		break;
	case PK_T_DOUBLE:
		*(double *)p = v.d;
		break;
	case PK_T_BOOL:
		*(bool *)p = v.u != 0;
		break;
	case PK_T_INT:
		*(protobuf_c_boolean *)p = v.u != 0;
		break;
	}
}

bool
pk_msg_get(const struct pk_key *k, const void *m, struct pk_value *ret)
{
	const char *base = m;

	if (!*(const protobuf_c_boolean *)(base + k->has_offset))
		return false;
	*ret = load(k->msg_type, base + k->msg_offset);
	return true;
}

void
pk_msg_set(const struct pk_key *k, void *m, struct pk_value v)
{
	char *base = m;

	*(protobuf_c_boolean *)(base + k->has_offset) = true;
	store(k->msg_type, base + k->msg_offset, v);
}

struct pk_value
pk_struct_get(const struct pk_key *k, const void *base)
{
	struct pk_value v = load(k->type, (const char *)base + k->offset);

	return k->scale > 1 ? pk_value_u(v.u / k->scale) : v;
}

void
pk_struct_set(const struct pk_key *k, void *base, struct pk_value v)
{
	if (k->scale > 1)
		v = pk_value_u(v.u * k->scale);
	store(k->type, (char *)base + k->offset, v);
}
