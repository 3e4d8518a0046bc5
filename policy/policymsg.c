/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy message to policy engine and back: every optional field that is
 * set overrides the engine's default, rules apply over the policy's
 * defaults field by field, and every plain key (policykeys.h) is checked
 * and converted by walking the one table.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "guestmem.h"
#include "policykeys.h"
#include "policymsg.h"

_Static_assert(PE_COLD_MAX == MSG_COLD_MAX, "the engine's cold buckets");

const char *
pm_param_name(size_t i)
{
	const struct pk_key *k;
	size_t n = 0;

	for (size_t j = 0; (k = pk_key_at(j)) != NULL; j++)
		if (k->section == PK_PARAMS && n++ == i)
			return k->name;
	return NULL;
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

/*
 * A key's value in m outside its range, as "<where>: <field> <value> ...":
 * a size above what a host can hold names its bound for people.
 */
static int
out_of_range(const struct pk_key *k, const char *where, struct pk_value v,
    char *why, size_t whylen)
{
	const char *sep = *where != '\0' ? ": " : "";

	if (!pk_whole(k))
		return fail(why, whylen, "%s%s%s %g outside %g..%g", where, sep,
		    k->field, v.d, k->min, k->max);
	if ((k->unit == PK_KIB || k->unit == PK_PAGES) && v.u > k->max)
		return fail(why, whylen, "%s%s%s %llu above %llu (%g TiB%s)",
		    where, sep, k->field, (unsigned long long)v.u,
		    (unsigned long long)k->max, k->max / (1 << 30) *
		    (k->unit == PK_PAGES ? 4 : 1),
		    k->unit == PK_PAGES ? " of 4 KiB pages" : "");
	return fail(why, whylen, "%s%s%s %llu outside %llu..%llu", where, sep,
	    k->field, (unsigned long long)v.u, (unsigned long long)k->min,
	    (unsigned long long)k->max);
}

/*
 * The keys of section s that m (may be NULL) sets, checked and copied into
 * base (struct pm_policy, or struct pe_limits for PK_LIMITS), in the
 * table's order. where names the part for people: "defaults",
 * "rule \"<glob>\"", "ksm".
 */
static int
keys_from_msg(enum pk_section s, const void *m, void *base, const char *where,
    char *why, size_t whylen)
{
	const struct pk_key *k;
	struct pk_value v;

	if (m == NULL)
		return 0;
	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		if (k->section != s || !pk_msg_get(k, m, &v))
			continue;
		if (!pk_in_range(k, v))
			return out_of_range(k, where, v, why, whylen);
		pk_struct_set(k, base, v);
	}
	return 0;
}

/* The keys of section s whose value in base differs from dflt's (same
 * struct) into its message m. */
static void
keys_to_msg(enum pk_section s, const void *base, const void *dflt, void *m)
{
	const struct pk_key *k;

	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		struct pk_value v, d;

		if (k->section != s)
			continue;
		v = pk_struct_get(k, base);
		d = pk_struct_get(k, dflt);
		if (pk_whole(k) ? v.u != d.u : v.d != d.d)
			pk_msg_set(k, m, v);
	}
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

static int
param_from_msg(struct pm_policy *p, const Mm__V1__Param *m, char *why,
    size_t whylen)
{
	const struct pk_key *k = pk_find(PK_PARAMS, m->name);
	struct pk_value v = pk_value_d(m->value);

	if (k == NULL)
		return fail(why, whylen, "unknown parameter \"%s\"", m->name);
	if (!m->has_value || !isfinite(v.d) || !pk_in_range(k, v))
		return fail(why, whylen, "parameter \"%s\": %g outside %g..%g",
		    k->name, v.d, k->min, k->max);
	pk_struct_set(k, p, v);
	return 0;
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
	r = keys_from_msg(PK_POLICY, m, &p, "", why, whylen);
	if (r == 0)
		r = keys_from_msg(PK_LIMITS, m->defaults, &p.balloon.defaults,
		    "defaults", why, whylen);
	if (r < 0)
		return r;
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
		rule->limits = p.balloon.defaults;
		r = keys_from_msg(PK_LIMITS, m->rules[i]->limits, &rule->limits,
		    where, why, whylen);
		if (r < 0)
			return r;
	}
	p.balloon.n_rules = m->n_rules;
	if (m->ksm != NULL) {
		r = keys_from_msg(PK_KSM, m->ksm, &p, "ksm", why, whylen);
		if (r < 0)
			return r;
		p.ksm_managed = true;
		p.merge_across_nodes_set = m->ksm->has_merge_across_nodes;
	}
	if (m->numa != NULL) {
		r = keys_from_msg(PK_NUMA, m->numa, &p, "numa", why, whylen);
		if (r < 0)
			return r;
		p.numa_managed = true;
	}
	for (size_t i = 0; i < m->n_params; i++) {
		r = param_from_msg(&p, m->params[i], why, whylen);
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
pm_msg_init(struct pm_msg *m)
{
	memset(m, 0, sizeof(*m));
	mm__v1__policy__init(&m->msg);
	mm__v1__vm_limits__init(&m->defaults);
	mm__v1__ksm_policy__init(&m->ksm);
	mm__v1__numa_policy__init(&m->numa);
	m->msg.rules = m->rule_ptrs;
	m->msg.params = m->param_ptrs;
}

void
pm_to_msg(const struct pm_policy *p, struct pm_msg *out)
{
	const struct pk_key *k;
	struct pm_policy dflt;

	pm_defaults(&dflt, p->mode);
	pm_msg_init(out);
	out->msg.has_version = out->msg.has_mode = true;
	out->msg.version = p->version;
	out->msg.mode = (Mm__V1__PolicyMode)p->mode;
	snprintf(out->name, sizeof(out->name), "%s", p->name);
	/* A file says a name of 1 to 128 characters, or none. */
	out->msg.name = out->name[0] != '\0' ? out->name : NULL;
	snprintf(out->algorithm, sizeof(out->algorithm), "%s",
	    pe_algo_name(p->balloon.algo));
	out->msg.algorithm = out->algorithm;
	keys_to_msg(PK_POLICY, p, &dflt, &out->msg);
	out->msg.defaults = &out->defaults;
	keys_to_msg(PK_LIMITS, &p->balloon.defaults, &dflt.balloon.defaults,
	    &out->defaults);
	for (size_t i = 0; i < p->balloon.n_rules; i++) {
		snprintf(out->patterns[i], sizeof(out->patterns[i]), "%s",
		    p->balloon.rules[i].pattern);
		mm__v1__vm_rule__init(&out->rules[i]);
		mm__v1__vm_limits__init(&out->rule_limits[i]);
		out->rules[i].pattern = out->patterns[i];
		out->rules[i].limits = &out->rule_limits[i];
		out->rule_ptrs[i] = &out->rules[i];
		/* A rule applies over the policy's defaults. */
		keys_to_msg(PK_LIMITS, &p->balloon.rules[i].limits,
		    &p->balloon.defaults, &out->rule_limits[i]);
	}
	out->msg.n_rules = p->balloon.n_rules;
	if (p->ksm_managed) {
		out->msg.ksm = &out->ksm;
		keys_to_msg(PK_KSM, p, &dflt, &out->ksm);
		out->ksm.has_merge_across_nodes = p->merge_across_nodes_set;
	}
	if (p->numa_managed) {
		out->msg.numa = &out->numa;
		keys_to_msg(PK_NUMA, p, &dflt, &out->numa);
	}
	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		size_t n = out->msg.n_params;
		double v;

		if (k->section != PK_PARAMS || n == PM_PARAMS_MAX)
			continue;
		v = pk_struct_get(k, p).d;
		if (v == pk_struct_get(k, &dflt).d)
			continue;
		snprintf(out->param_names[n], sizeof(out->param_names[n]), "%s",
		    k->name);
		mm__v1__param__init(&out->params[n]);
		out->params[n].name = out->param_names[n];
		out->params[n].has_value = true;
		out->params[n].value = v;
		out->param_ptrs[n] = &out->params[n];
		out->msg.n_params++;
	}
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
	g->n_cold = 0;
	for (size_t k = 0; k < gs->n_cold && k < PE_COLD_MAX; k++) {
		g->cold[k].idle_ms = gs->cold[k]->idle_ms;
		g->cold[k].anon_kib = gs->cold[k]->has_anon_kib ?
		    gs->cold[k]->anon_kib : 0;
		g->n_cold = k + 1;
	}
	if (g->has_meminfo)
		g->reserved_kib = gm_reserved_kib(g->max_kib, g->total_kib,
		    doo, has_pages, pages);
}
