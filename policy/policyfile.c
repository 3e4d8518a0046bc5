/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading policy files. Each key is parsed with the units conf.c knows
 * (768M, 30s) as the file is read, so a bad value is reported on its line;
 * the finished message then goes through msg_validate() and pm_from_msg(),
 * the checks every scheduler applies, and their complaint is placed on the
 * line of the section it is about.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "policyfile.h"
#include "policymsg.h"

#define SET(m, f, v)	do { (m)->has_##f = true; (m)->f = (v); } while (0)

struct pf_read {
	struct pf_policy *p;
	Mm__V1__VmLimits *limits;	/* of the current [defaults] or [vm] */
};

static int
bad(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int
get_size(const char *key, const char *v, uint64_t *ret, char *why,
    size_t whylen)
{
	int64_t kib;

	if (conf_parse_size_kib(v, &kib) < 0 || kib < 0)
		return bad(why, whylen, "value \"%s\" of \"%s\" is not a size "
		    "(e.g. 512M, 4G)", v, key);
	*ret = (uint64_t)kib;
	return 0;
}

static int
get_ms(const char *key, const char *v, uint64_t *ret, char *why,
    size_t whylen)
{
	int64_t ms;

	if (conf_parse_duration_ms(v, &ms) < 0 || ms < 0)
		return bad(why, whylen, "value \"%s\" of \"%s\" is not a "
		    "duration (e.g. 500ms, 30s, 5m)", v, key);
	*ret = (uint64_t)ms;
	return 0;
}

static int
get_num(const char *key, const char *v, double lo, double hi, double *ret,
    char *why, size_t whylen)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (end == v || *end != '\0' || errno != 0 || !isfinite(d))
		return bad(why, whylen, "value \"%s\" of \"%s\" is not a "
		    "number", v, key);
	if (d < lo || d > hi)
		return bad(why, whylen, "value %s of \"%s\" is out of range "
		    "%g..%g", v, key, lo, hi);
	*ret = d;
	return 0;
}

static int
get_bool(const char *key, const char *v, protobuf_c_boolean *ret, char *why,
    size_t whylen)
{
	bool b;

	if (conf_parse_bool(v, &b) < 0)
		return bad(why, whylen, "value \"%s\" of \"%s\" is not yes or "
		    "no", v, key);
	*ret = b;
	return 0;
}

static int
get_str(const char *key, const char *v, char *dst, size_t size, char *why,
    size_t whylen)
{
	size_t n = strlen(v);

	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if (n == 0 || n >= size)
		return bad(why, whylen, "value of \"%s\" must be 1 to %zu "
		    "characters", key, size - 1);
	memcpy(dst, v, n);
	dst[n] = '\0';
	return 0;
}

static int
key_policy(struct pf_read *r, const char *k, const char *v, char *why,
    size_t whylen)
{
	Mm__V1__Policy *m = &r->p->msg;
	double d;
	int e;

	if (strcmp(k, "version") == 0) {
		e = get_num(k, v, 1, 9007199254740992.0, &d, why, whylen);
		if (e == 0 && d != floor(d))
			e = bad(why, whylen, "version must be a whole number");
		if (e == 0)
			SET(m, version, (uint64_t)d);
		return e;
	}
	if (strcmp(k, "name") == 0) {
		e = get_str(k, v, r->p->name, sizeof(r->p->name), why, whylen);
		m->name = r->p->name;
		return e;
	}
	if (strcmp(k, "mode") == 0) {
		static const char *const modes[] = { "enforce", "shadow",
		    "off" };

		for (int i = 0; i < 3; i++)
			if (strcmp(v, modes[i]) == 0) {
				SET(m, mode, (Mm__V1__PolicyMode)(i + 1));
				return 0;
			}
		return bad(why, whylen, "mode \"%s\" is not one of: enforce, "
		    "shadow, off", v);
	}
	if (strcmp(k, "algorithm") == 0) {
		enum pe_algo a;

		if (pe_algo_from_name(v, &a) < 0)
			return bad(why, whylen, "unknown algorithm \"%s\" "
			    "(known: pressure, static, xenmm, mom)", v);
		snprintf(r->p->algorithm, sizeof(r->p->algorithm), "%s", v);
		m->algorithm = r->p->algorithm;
		return 0;
	}
	if (strcmp(k, "host_reserve") == 0) {
		uint64_t kib = 0;

		e = get_size(k, v, &kib, why, whylen);
		if (e == 0)
			SET(m, host_reserve_kib, kib);
		return e;
	}
	return bad(why, whylen, "unknown key \"%s\" in [policy] (known: "
	    "version, name, mode, algorithm, host_reserve)", k);
}

static int
key_limits(Mm__V1__VmLimits *l, const char *k, const char *v, char *why,
    size_t whylen)
{
	uint64_t kib = 0;
	double d;
	int e;

	if (strcmp(k, "min") == 0 || strcmp(k, "max") == 0 ||
	    strcmp(k, "headroom") == 0) {
		e = get_size(k, v, &kib, why, whylen);
		if (e < 0)
			return e;
		if (k[1] == 'i')
			SET(l, min_kib, kib);
		else if (k[1] == 'a')
			SET(l, max_kib, kib);
		else
			SET(l, headroom_kib, kib);
		return 0;
	}
	if (strcmp(k, "weight") == 0) {
		e = get_num(k, v, 0, 10000, &d, why, whylen);
		if (e == 0)
			SET(l, weight, (uint32_t)d);
		return e;
	}
	if (strcmp(k, "headroom_pct") == 0) {
		e = get_num(k, v, 0, 100, &d, why, whylen);
		if (e == 0)
			SET(l, headroom_pct, d);
		return e;
	}
	if (strcmp(k, "unmanaged") == 0) {
		l->has_unmanaged = true;
		return get_bool(k, v, &l->unmanaged, why, whylen);
	}
	return bad(why, whylen, "unknown key \"%s\" (known: min, max, weight, "
	    "headroom, headroom_pct, unmanaged)", k);
}

static int
key_ksm(Mm__V1__KsmPolicy *m, const char *k, const char *v, char *why,
    size_t whylen)
{
	uint64_t ms = 0;
	double d;
	int e;

	if (strcmp(k, "enable") == 0) {
		m->has_enable = true;
		return get_bool(k, v, &m->enable, why, whylen);
	}
	if (strcmp(k, "merge_across_nodes") == 0) {
		m->has_merge_across_nodes = true;
		return get_bool(k, v, &m->merge_across_nodes, why, whylen);
	}
	if (strcmp(k, "sleep") == 0) {
		e = get_ms(k, v, &ms, why, whylen);
		if (e == 0 && (ms < KSM_SLEEP_MS_MIN || ms > KSM_SLEEP_MS_MAX))
			e = bad(why, whylen, "value %s of \"sleep\" is out of "
			    "range %ums..%ums", v, KSM_SLEEP_MS_MIN,
			    KSM_SLEEP_MS_MAX);
		if (e == 0)
			SET(m, sleep_ms, (uint32_t)ms);
		return e;
	}
	if (strcmp(k, "cpu_budget_pct") == 0 ||
	    strcmp(k, "start_available_pct") == 0 ||
	    strcmp(k, "stop_available_pct") == 0) {
		e = get_num(k, v, 0, 100, &d, why, whylen);
		if (e < 0)
			return e;
		if (k[0] == 'c')
			SET(m, cpu_budget_pct, d);
		else if (k[2] == 'a')
			SET(m, start_available_pct, d);
		else
			SET(m, stop_available_pct, d);
		return 0;
	}
	if (strcmp(k, "min_pages_to_scan") == 0 ||
	    strcmp(k, "max_pages_to_scan") == 0) {
		e = get_num(k, v, KSM_PAGES_TO_SCAN_MIN,
		    KSM_PAGES_TO_SCAN_MAX, &d, why, whylen);
		if (e < 0)
			return e;
		if (k[1] == 'i')
			SET(m, min_pages_to_scan, (uint32_t)d);
		else
			SET(m, max_pages_to_scan, (uint32_t)d);
		return 0;
	}
	return bad(why, whylen, "unknown key \"%s\" in [ksm] (known: enable, "
	    "cpu_budget_pct, start_available_pct, stop_available_pct, "
	    "min_pages_to_scan, max_pages_to_scan, sleep, "
	    "merge_across_nodes)", k);
}

static int
key_numa(Mm__V1__NumaPolicy *m, const char *k, const char *v, char *why,
    size_t whylen)
{
	uint64_t x = 0;
	int e;

	if (strcmp(k, "enable") == 0) {
		m->has_enable = true;
		return get_bool(k, v, &m->enable, why, whylen);
	}
	if (strcmp(k, "min_interval") == 0) {
		e = get_ms(k, v, &x, why, whylen);
		if (e == 0)
			SET(m, min_interval_s, (uint32_t)(x / 1000));
		return e;
	}
	if (strcmp(k, "round_quota") == 0 || strcmp(k, "node_reserve") == 0) {
		e = get_size(k, v, &x, why, whylen);
		if (e < 0)
			return e;
		if (k[0] == 'r')
			SET(m, round_pages, x / 4);
		else
			SET(m, node_reserve_kib, x);
		return 0;
	}
	return bad(why, whylen, "unknown key \"%s\" in [numa] (known: enable, "
	    "min_interval, round_quota, node_reserve)", k);
}

static int
key_param(struct pf_read *r, const char *k, const char *v, int line,
    char *why, size_t whylen)
{
	struct pf_policy *p = r->p;
	size_t i = p->msg.n_params;
	double d;
	int e;

	if (i == PF_PARAMS_MAX)
		return bad(why, whylen, "more than %d parameters",
		    PF_PARAMS_MAX);
	e = get_num(k, v, -1e15, 1e15, &d, why, whylen);
	if (e < 0)
		return e;
	if (strlen(k) >= sizeof(p->param_names[i]))
		return bad(why, whylen, "parameter name too long");
	snprintf(p->param_names[i], sizeof(p->param_names[i]), "%s", k);
	mm__v1__param__init(&p->params[i]);
	p->params[i].name = p->param_names[i];
	SET(&p->params[i], value, d);
	p->param_ptrs[i] = &p->params[i];
	p->param_line[i] = line;
	p->msg.n_params++;
	return 0;
}

/* A new section: set up where its keys go. */
static int
enter_section(struct pf_read *r, const char *section, int line, char *why,
    size_t whylen)
{
	struct pf_policy *p = r->p;

	r->limits = NULL;
	if (strcmp(section, "policy") == 0) {
		p->policy_line = line;
	} else if (strcmp(section, "defaults") == 0) {
		p->defaults_line = line;
		r->limits = &p->defaults;
		p->msg.defaults = &p->defaults;
	} else if (strcmp(section, "ksm") == 0) {
		p->ksm_line = line;
		p->msg.ksm = &p->ksm;
	} else if (strcmp(section, "numa") == 0) {
		p->numa_line = line;
		p->msg.numa = &p->numa;
	} else if (strncmp(section, "vm ", 3) == 0) {
		size_t i = p->msg.n_rules;
		char *pat = p->patterns[i];

		if (i == PE_RULES_MAX)
			return bad(why, whylen, "more than %d [vm ...] "
			    "sections", PE_RULES_MAX);
		if (get_str("vm", section + 3 + strspn(section + 3, " "), pat,
		    sizeof(p->patterns[i]), why, whylen) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(p->patterns[j], pat) == 0)
				return bad(why, whylen, "[vm %s] appears twice, "
				    "first on line %d", pat, p->rule_line[j]);
		mm__v1__vm_rule__init(&p->rules[i]);
		mm__v1__vm_limits__init(&p->rule_limits[i]);
		p->rules[i].pattern = pat;
		p->rules[i].limits = &p->rule_limits[i];
		p->rule_ptrs[i] = &p->rules[i];
		p->rule_line[i] = line;
		p->msg.n_rules++;
		r->limits = &p->rule_limits[i];
	} else if (strcmp(section, "params") != 0) {
		return bad(why, whylen, "unknown section [%s] (known: policy, "
		    "defaults, vm <glob>, ksm, numa, params)", section);
	}
	return 0;
}

static int
read_key(const char *section, const char *key, const char *value, int line,
    void *arg, char *why, size_t whylen)
{
	struct pf_read *r = arg;

	if (key == NULL)
		return enter_section(r, section, line, why, whylen);
	if (strcmp(section, "policy") == 0)
		return key_policy(r, key, value, why, whylen);
	if (r->limits != NULL)
		return key_limits(r->limits, key, value, why, whylen);
	if (strcmp(section, "ksm") == 0)
		return key_ksm(&r->p->ksm, key, value, why, whylen);
	if (strcmp(section, "numa") == 0)
		return key_numa(&r->p->numa, key, value, why, whylen);
	return key_param(r, key, value, line, why, whylen);
}

/* The line of what a validation complaint names. */
static int
line_of(const struct pf_policy *p, const char *why)
{
	char needle[PE_ID_MAX * 2 + 16];

	for (size_t i = 0; i < p->msg.n_rules; i++) {
		snprintf(needle, sizeof(needle), "rule \"%s\"", p->patterns[i]);
		if (strstr(why, needle) != NULL)
			return p->rule_line[i];
		snprintf(needle, sizeof(needle), "rules[%zu]", i);
		if (strstr(why, needle) != NULL)
			return p->rule_line[i];
	}
	for (size_t i = 0; i < p->msg.n_params; i++) {
		snprintf(needle, sizeof(needle), "\"%s\"", p->param_names[i]);
		if (strstr(why, needle) != NULL)
			return p->param_line[i];
	}
	if (strncmp(why, "defaults", 8) == 0)
		return p->defaults_line;
	if (strncmp(why, "ksm", 3) == 0)
		return p->ksm_line;
	if (strncmp(why, "numa", 4) == 0)
		return p->numa_line;
	return p->policy_line;
}

int
pf_load(const char *path, uint64_t default_version, struct pf_policy *out,
    char *err, size_t errlen)
{
	struct pf_read r = { .p = out };
	struct pm_policy checked;
	char why[512];
	int e;

	memset(out, 0, sizeof(*out));
	mm__v1__policy__init(&out->msg);
	mm__v1__vm_limits__init(&out->defaults);
	mm__v1__ksm_policy__init(&out->ksm);
	mm__v1__numa_policy__init(&out->numa);
	out->msg.rules = out->rule_ptrs;
	out->msg.params = out->param_ptrs;
	e = conf_read_ini(path, read_key, &r, err, errlen);
	if (e < 0)
		return e;
	if (!out->msg.has_version)
		SET(&out->msg, version, default_version);
	if (!out->msg.has_mode)
		SET(&out->msg, mode, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE);
	if (msg_validate(MSG_POLICY, &out->msg.base, why, sizeof(why)) < 0 ||
	    pm_from_msg(&out->msg, &checked, why, sizeof(why)) < 0) {
		int line = line_of(out, why);

		if (line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, line, why);
		else
			snprintf(err, errlen, "%s: %s", path, why);
		return -EINVAL;
	}
	return 0;
}
