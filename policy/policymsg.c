/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy message to policy engine: every optional field that is set
 * overrides the engine's default, rules apply over the policy's defaults
 * field by field, and parameters are looked up in one table.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "guestmem.h"
#include "policymsg.h"

enum ptype { P_PCT, P_DOUBLE, P_KIB, P_MS, P_U64, P_U32 };

struct param {
	const char *name;
	enum ptype type;
	size_t offset;		/* into struct pm_policy */
	double min;
	double max;
};

#define B(f)	offsetof(struct pm_policy, balloon.f)
#define K(f)	offsetof(struct pm_policy, ksm.f)
#define N(f)	offsetof(struct pm_policy, numa.f)

static const struct param params[] = {
	{ "psi_low_pct", P_PCT, B(psi_low_pct), 0, 100 },
	{ "psi_high_pct", P_PCT, B(psi_high_pct), 0, 100 },
	{ "faults_high_s", P_DOUBLE, B(faults_high_s), 1, 1e9 },
	{ "avail_low_pct", P_PCT, B(avail_low_pct), 0, 100 },
	{ "grow_pct", P_PCT, B(grow_pct), 0, 1000 },
	{ "grow_min_kib", P_KIB, B(grow_min_kib), 0, PM_VM_KIB_MAX },
	{ "shrink_pct", P_PCT, B(shrink_pct), 0, 100 },
	{ "shrink_max_kib", P_KIB, B(shrink_max_kib), 0, PM_VM_KIB_MAX },
	{ "hold_ms", P_MS, B(hold_ms), 0, 86400000 },
	{ "deadband_pct", P_PCT, B(deadband_pct), 0, 100 },
	{ "deadband_kib", P_KIB, B(deadband_kib), 0, PM_VM_KIB_MAX },
	{ "ewma_alpha", P_DOUBLE, B(ewma_alpha), 0.001, 1 },
	{ "peak_halflife_ms", P_MS, B(peak_halflife_ms), 0, 86400000 },
	{ "spare_pct", P_PCT, B(spare_pct), 0, 100 },
	{ "surge_halflife_ms", P_MS, B(surge_halflife_ms), 0, 86400000 },
	{ "inactive_ms", P_MS, B(inactive_ms), 1, 86400000 },
	{ "uncooperative_ms", P_MS, B(uncooperative_ms), 1, 86400000 },
	{ "vm_overhead_kib", P_KIB, B(vm_overhead_kib), 0, PM_VM_KIB_MAX },
	{ "guest_capacity_kib", P_KIB, B(guest_capacity_kib), 0,
	  PM_HOST_KIB_MAX },
	{ "ksm_min_profit", P_DOUBLE, K(min_profit), 0, 1e12 },
	{ "ksm_ample_pct", P_PCT, K(ample_free_pct), 0, 100 },
	{ "ksm_ample_hold_ms", P_MS, K(ample_hold_ms), 0, 86400000 },
	{ "ksm_retry_ms", P_MS, K(retry_ms), 0, 86400000 },
	{ "ksm_step_up", P_U32, K(step_up), 0, 100000 },
	{ "ksm_step_down", P_U32, K(step_down), 0, 100000 },
	{ "numa_min_remote_pct", P_PCT, N(min_remote_pct), 0, 100 },
	{ "numa_min_pages", P_U64, N(min_pages), 0, PM_NUMA_PAGES_MAX },
};

const char *
pm_param_name(size_t i)
{
	return i < sizeof(params) / sizeof(*params) ? params[i].name : NULL;
}

const char *
pm_mode_name(enum pm_mode m)
{
	switch (m) {
	case PM_ENFORCE:
		return "enforce";
	case PM_SHADOW:
		return "shadow";
	case PM_OFF:
		return "off";
	}
	return NULL;
}

void
pm_defaults(struct pm_policy *p, enum pm_mode mode)
{
	memset(p, 0, sizeof(*p));
	p->mode = mode;
	pe_policy_defaults(&p->balloon);
	pe_ksm_policy_defaults(&p->ksm);
	pe_numa_policy_defaults(&p->numa);
	snprintf(p->name, sizeof(p->name), "built-in");
}

static int
fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A size (KiB) or page count the policy sets, against its bound. */
static int
bounded(const char *where, const char *field, uint64_t v, uint64_t max,
    const char *unit, char *why, size_t whylen)
{
	if (v <= max)
		return 0;
	return fail(why, whylen, "%s%s%s %llu above %llu (%s)", where,
	    *where != '\0' ? ": " : "", field, (unsigned long long)v,
	    (unsigned long long)max, unit);
}

/* A VM's sizes no host can give are refused (where: "defaults" or
 * "rule \"<glob>\"", as the engine names them). */
static int
limits_check(const Mm__V1__VmLimits *m, const char *where, char *why,
    size_t whylen)
{
	int r = 0;

	if (m == NULL)
		return 0;
	if (m->has_min_kib)
		r = bounded(where, "min_kib", m->min_kib, PM_VM_KIB_MAX,
		    "32 TiB", why, whylen);
	if (r == 0 && m->has_max_kib)
		r = bounded(where, "max_kib", m->max_kib, PM_VM_KIB_MAX,
		    "32 TiB", why, whylen);
	if (r == 0 && m->has_headroom_kib)
		r = bounded(where, "headroom_kib", m->headroom_kib,
		    PM_VM_KIB_MAX, "32 TiB", why, whylen);
	if (r == 0 && m->has_headroom_pct && !(m->headroom_pct >= 0 &&
	    m->headroom_pct <= 100))
		r = fail(why, whylen, "%s: headroom_pct %g outside 0..100",
		    where, m->headroom_pct);
	return r;
}

/* A KSM setting the policy sets, within ksm_limits.h. */
static int
ksm_ranged(const char *field, bool has, uint32_t v, uint32_t lo,
    uint32_t hi, char *why, size_t whylen)
{
	if (!has || (v >= lo && v <= hi))
		return 0;
	return fail(why, whylen, "ksm: %s %u outside %u..%u", field, v, lo,
	    hi);
}

static int
ksm_check(const Mm__V1__KsmPolicy *k, char *why, size_t whylen)
{
	int r;

	r = ksm_ranged("min_pages_to_scan", k->has_min_pages_to_scan,
	    k->min_pages_to_scan, KSM_PAGES_TO_SCAN_MIN,
	    KSM_PAGES_TO_SCAN_MAX, why, whylen);
	if (r == 0)
		r = ksm_ranged("max_pages_to_scan", k->has_max_pages_to_scan,
		    k->max_pages_to_scan, KSM_PAGES_TO_SCAN_MIN,
		    KSM_PAGES_TO_SCAN_MAX, why, whylen);
	if (r == 0)
		r = ksm_ranged("sleep_ms", k->has_sleep_ms, k->sleep_ms,
		    KSM_SLEEP_MS_MIN, KSM_SLEEP_MS_MAX, why, whylen);
	return r;
}

static int
numa_check(const Mm__V1__NumaPolicy *n, char *why, size_t whylen)
{
	int r = 0;

	if (n->has_round_pages)
		r = bounded("numa", "round_pages", n->round_pages,
		    PM_NUMA_PAGES_MAX, "64 TiB of 4 KiB pages", why, whylen);
	if (r == 0 && n->has_node_reserve_kib)
		r = bounded("numa", "node_reserve_kib", n->node_reserve_kib,
		    PM_HOST_KIB_MAX, "64 TiB", why, whylen);
	return r;
}

enum pm_version_verdict
pm_version_check(uint64_t version, bool reset, uint64_t in_force,
    uint64_t now_ms, char *why, size_t whylen)
{
	/* Versions are often times: mmctl's default is the time in
	 * seconds, tools and tests use milliseconds; both stay within. */
	uint64_t base = in_force > now_ms ? in_force : now_ms;
	uint64_t limit = base > UINT64_MAX - PM_VERSION_JUMP_MAX ?
	    UINT64_MAX : base + PM_VERSION_JUMP_MAX;

	if (reset)
		return PM_VERSION_RESET;
	if (version <= in_force) {
		fail(why, whylen, "policy %llu ignored: version %llu in force; "
		    "use --reset", (unsigned long long)version,
		    (unsigned long long)in_force);
		return PM_VERSION_OLD;
	}
	if (version > limit) {
		fail(why, whylen, "policy %llu refused: version more than %llu "
		    "above %llu (the version in force or the time in "
		    "milliseconds, the larger); use --reset",
		    (unsigned long long)version,
		    (unsigned long long)PM_VERSION_JUMP_MAX,
		    (unsigned long long)base);
		return PM_VERSION_JUMP;
	}
	return PM_VERSION_NEWER;
}

/* Fields set in m override l. */
static void
limits_apply(struct pe_limits *l, const Mm__V1__VmLimits *m)
{
	if (m == NULL)
		return;
	if (m->has_min_kib)
		l->min_kib = m->min_kib;
	if (m->has_max_kib)
		l->max_kib = m->max_kib;
	if (m->has_weight)
		l->weight = m->weight;
	if (m->has_headroom_kib)
		l->headroom_kib = m->headroom_kib;
	if (m->has_headroom_pct)
		l->headroom_pct = m->headroom_pct;
	if (m->has_unmanaged)
		l->unmanaged = m->unmanaged;
}

static int
param_apply(struct pm_policy *p, const Mm__V1__Param *m, char *why,
    size_t whylen)
{
	for (size_t i = 0; i < sizeof(params) / sizeof(*params); i++) {
		const struct param *q = &params[i];
		char *field = (char *)p + q->offset;
		double v = m->value;

		if (strcmp(q->name, m->name) != 0)
			continue;
		if (!m->has_value || !isfinite(v) || v < q->min || v > q->max)
			return fail(why, whylen, "parameter \"%s\": %g outside "
			    "%g..%g", q->name, v, q->min, q->max);
		switch (q->type) {
		case P_PCT:
		case P_DOUBLE:
			memcpy(field, &v, sizeof(v));
			break;
		case P_KIB:
		case P_MS:
		case P_U64: {
			uint64_t u = (uint64_t)v;

			memcpy(field, &u, sizeof(u));
			break;
		}
		case P_U32: {
			uint32_t u = (uint32_t)v;

			memcpy(field, &u, sizeof(u));
			break;
		}
		}
		return 0;
	}
	return fail(why, whylen, "unknown parameter \"%s\"", m->name);
}

int
pm_from_msg(const Mm__V1__Policy *m, struct pm_policy *ret, char *why,
    size_t whylen)
{
	char where[PE_ID_MAX * 2 + 16];
	struct pm_policy p;
	int r;

	if (m == NULL)
		return fail(why, whylen, "no policy");
	if (!m->has_version || m->version == 0)
		return fail(why, whylen, "version missing or 0");
	if (!m->has_mode || pm_mode_name((enum pm_mode)m->mode) == NULL)
		return fail(why, whylen, "mode missing or unknown");
	pm_defaults(&p, (enum pm_mode)m->mode);
	p.version = m->version;
	snprintf(p.name, sizeof(p.name), "%s", m->name != NULL ? m->name : "");
	if (m->algorithm != NULL &&
	    pe_algo_from_name(m->algorithm, &p.balloon.algo) < 0)
		return fail(why, whylen, "unknown algorithm \"%s\" (known: "
		    "pressure, static, xenmm, mom)", m->algorithm);
	if (m->has_host_reserve_kib) {
		r = bounded("", "host_reserve_kib", m->host_reserve_kib,
		    PM_HOST_KIB_MAX, "64 TiB", why, whylen);
		if (r < 0)
			return r;
		p.balloon.host_reserve_kib = m->host_reserve_kib;
	}
	r = limits_check(m->defaults, "defaults", why, whylen);
	if (r < 0)
		return r;
	limits_apply(&p.balloon.defaults, m->defaults);
	if (m->n_rules > PE_RULES_MAX)
		return fail(why, whylen, "%zu rules, at most %d", m->n_rules,
		    PE_RULES_MAX);
	for (size_t i = 0; i < m->n_rules; i++) {
		struct pe_rule *rule = &p.balloon.rules[i];
		const char *pat = m->rules[i]->pattern;

		if (pat == NULL || strlen(pat) >= sizeof(rule->pattern))
			return fail(why, whylen, "rule %zu: pattern missing "
			    "or longer than %zu", i + 1,
			    sizeof(rule->pattern) - 1);
		snprintf(rule->pattern, sizeof(rule->pattern), "%s", pat);
		snprintf(where, sizeof(where), "rule \"%s\"", pat);
		r = limits_check(m->rules[i]->limits, where, why, whylen);
		if (r < 0)
			return r;
		rule->limits = p.balloon.defaults;
		limits_apply(&rule->limits, m->rules[i]->limits);
	}
	p.balloon.n_rules = m->n_rules;
	if (m->ksm != NULL) {
		const Mm__V1__KsmPolicy *k = m->ksm;

		r = ksm_check(k, why, whylen);
		if (r < 0)
			return r;
		p.ksm_managed = true;
		if (k->has_enable)
			p.ksm.enable = k->enable;
		if (k->has_cpu_budget_pct)
			p.ksm.cpu_budget_pct = k->cpu_budget_pct;
		if (k->has_start_available_pct)
			p.ksm.start_free_pct = k->start_available_pct;
		if (k->has_stop_available_pct)
			p.ksm.ample_free_pct = k->stop_available_pct;
		if (k->has_min_pages_to_scan)
			p.ksm.min_scan = k->min_pages_to_scan;
		if (k->has_max_pages_to_scan)
			p.ksm.max_scan = k->max_pages_to_scan;
		if (k->has_sleep_ms)
			p.ksm.sleep_ms = k->sleep_ms;
		p.merge_across_nodes_set = k->has_merge_across_nodes;
		p.merge_across_nodes = k->merge_across_nodes;
	}
	if (m->numa != NULL) {
		const Mm__V1__NumaPolicy *n = m->numa;

		r = numa_check(n, why, whylen);
		if (r < 0)
			return r;
		p.numa_managed = true;
		if (n->has_enable)
			p.numa.enable = n->enable;
		if (n->has_min_interval_s)
			p.numa.min_interval_ms = (uint64_t)n->min_interval_s *
			    1000;
		if (n->has_round_pages)
			p.numa.quota_pages = n->round_pages;
		if (n->has_node_reserve_kib)
			p.numa.node_reserve_kib = n->node_reserve_kib;
	}
	for (size_t i = 0; i < m->n_params; i++) {
		r = param_apply(&p, m->params[i], why, whylen);
		if (r < 0)
			return r;
	}
	r = pe_policy_validate(&p.balloon, why, whylen);
	if (r < 0)
		return r;
	if (p.ksm_managed && (!(p.ksm.cpu_budget_pct > 0 &&
	    p.ksm.cpu_budget_pct <= 100) || p.ksm.min_scan > p.ksm.max_scan ||
	    p.ksm.start_free_pct > p.ksm.ample_free_pct))
		return fail(why, whylen, "ksm: need 0 < cpu budget <= 100, "
		    "min <= max pages to scan, start <= stop available");
	*ret = p;
	return 0;
}

void
pm_guest_memory(struct pe_guest *g, const Mm__V1__GuestStats *gs)
{
	const Mm__V1__Vmstat *vs = gs->vmstat;
	bool doo = gs->has_deflate_on_oom && gs->deflate_on_oom;
	bool has_pages = vs != NULL && vs->has_balloon_pages;
	uint64_t pages = has_pages ? vs->balloon_pages : 0;

	if (gs->meminfo != NULL && gs->meminfo->has_total_kib &&
	    gs->meminfo->has_available_kib) {
		g->has_meminfo = true;
		g->total_kib = gs->meminfo->total_kib;
		g->available_kib = gs->meminfo->available_kib;
		g->free_kib = gs->meminfo->free_kib;
	}
	/* The host knows whether the balloon stays in MemTotal; the sample
	 * says how much it holds. */
	g->has_balloon_in_total = gm_balloon_in_total(gs->has_deflate_on_oom,
	    doo, has_pages, pages, &g->balloon_in_total_kib);
	if (gs->has_balloon_actual_kib) {
		g->has_balloon = true;
		g->actual_kib = gs->balloon_actual_kib;
		/* 0: unknown (QEMU has none to read back); the engine
		 * then takes the last one it decided. */
		g->target_kib = gs->has_balloon_target_kib ?
		    gs->balloon_target_kib : 0;
	}
	g->min_kib = gs->has_min_kib ? gs->min_kib : 0;
	g->max_kib = gs->has_max_kib ? gs->max_kib : 0;
	/* The host's own view, for a guest not to be believed. */
	g->has_host_used = gs->has_host_resident_kib;
	g->host_used_kib = gs->has_host_resident_kib ?
	    gs->host_resident_kib : 0;
	if (g->has_meminfo)
		g->reserved_kib = gm_reserved_kib(g->max_kib, g->total_kib,
		    doo, has_pages, pages);
}
