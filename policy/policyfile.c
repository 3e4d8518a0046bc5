/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading and writing policy files. Each key is parsed with the units
 * conf.c knows (768M, 30s) as the file is read, so a bad value is reported
 * on its line; the finished message then goes through msg_validate() and
 * pm_from_msg(), the checks every scheduler applies, and their complaint is
 * placed on the line of the section it is about. Sizes are judged only
 * there, against what a host can hold. The plain keys, read and written
 * alike, come from policykeys.h's table.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "policyfile.h"
#include "policykeys.h"
#include "policymsg.h"

#define SET(m, f, v)	do { (m)->has_##f = true; (m)->f = (v); } while (0)

struct pf_read {
	struct pm_msg *p;
	Mm__V1__VmLimits *limits;	/* of the current [defaults] or [vm] */
	/* where things were, for errors found after reading */
	int policy_line;
	int defaults_line;
	int ksm_line;
	int numa_line;
	int rule_line[PE_RULES_MAX];
	int param_line[PM_PARAMS_MAX];
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
get_bool(const char *key, const char *v, bool *ret, char *why, size_t whylen)
{
	if (conf_parse_bool(v, ret) < 0)
		return bad(why, whylen, "value \"%s\" of \"%s\" is not yes or "
		    "no", v, key);
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

/* The value of k, as text, into its section's message m. */
static int
key_value(const struct pk_key *k, const char *text, void *m, char *why,
    size_t whylen)
{
	const char *unit = k->unit == PK_S ? "s" : "ms";
	struct pk_value v;
	uint64_t x = 0;
	double d = 0;
	bool b = false;
	int e;

	switch (k->unit) {
	case PK_KIB:
	case PK_PAGES:
		e = get_size(k->name, text, &x, why, whylen);
		v = pk_value_u(k->unit == PK_PAGES ? x / 4 : x);
		break;
	case PK_MS:
	case PK_S:
		e = get_ms(k->name, text, &x, why, whylen);
		v = pk_value_u(k->unit == PK_S ? x / 1000 : x);
		if (e == 0 && !pk_in_range(k, v))
			e = bad(why, whylen, "value %s of \"%s\" is out of "
			    "range %llu%s..%llu%s", text, k->name,
			    (unsigned long long)k->min, unit,
			    (unsigned long long)k->max, unit);
		break;
	case PK_BOOL:
		e = get_bool(k->name, text, &b, why, whylen);
		v = pk_value_u(b);
		break;
	default:
		e = get_num(k->name, text, k->min, k->max, &d, why, whylen);
		v = pk_value_d(d);
		break;
	}
	if (e == 0)
		pk_msg_set(k, m, v);
	return e;
}

/* A key of section s into its message m; for an unknown one, in says
 * where for people (" in [ksm]"), others the keys not in the table. */
static int
key_in(enum pk_section s, const char *in, const char *others, void *m,
    const char *key, const char *text, char *why, size_t whylen)
{
	const struct pk_key *k = pk_find(s, key);
	char names[256];

	if (k != NULL)
		return key_value(k, text, m, why, whylen);
	pk_names(s, names, sizeof(names));
	return bad(why, whylen, "unknown key \"%s\"%s (known: %s%s)", key, in,
	    others, names);
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
	return key_in(PK_POLICY, " in [policy]", "version, name, mode, "
	    "algorithm, ", m, k, v, why, whylen);
}

static int
key_param(struct pf_read *r, const char *k, const char *v, int line,
    char *why, size_t whylen)
{
	struct pm_msg *p = r->p;
	size_t i = p->msg.n_params;
	double d;
	int e;

	if (i == PM_PARAMS_MAX)
		return bad(why, whylen, "more than %d parameters",
		    PM_PARAMS_MAX);
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
	r->param_line[i] = line;
	p->msg.n_params++;
	return 0;
}

/* A new section: set up where its keys go. */
static int
enter_section(struct pf_read *r, const char *section, int line, char *why,
    size_t whylen)
{
	struct pm_msg *p = r->p;

	r->limits = NULL;
	if (strcmp(section, "policy") == 0) {
		r->policy_line = line;
	} else if (strcmp(section, "defaults") == 0) {
		r->defaults_line = line;
		r->limits = &p->defaults;
		p->msg.defaults = &p->defaults;
	} else if (strcmp(section, "ksm") == 0) {
		r->ksm_line = line;
		p->msg.ksm = &p->ksm;
	} else if (strcmp(section, "numa") == 0) {
		r->numa_line = line;
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
				    "first on line %d", pat, r->rule_line[j]);
		mm__v1__vm_rule__init(&p->rules[i]);
		mm__v1__vm_limits__init(&p->rule_limits[i]);
		p->rules[i].pattern = pat;
		p->rules[i].limits = &p->rule_limits[i];
		p->rule_ptrs[i] = &p->rules[i];
		r->rule_line[i] = line;
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
		return key_in(PK_LIMITS, "", "", r->limits, key, value, why,
		    whylen);
	if (strcmp(section, "ksm") == 0)
		return key_in(PK_KSM, " in [ksm]", "", &r->p->ksm, key, value,
		    why, whylen);
	if (strcmp(section, "numa") == 0)
		return key_in(PK_NUMA, " in [numa]", "", &r->p->numa, key,
		    value, why, whylen);
	return key_param(r, key, value, line, why, whylen);
}

/* The line of what a validation complaint names. */
static int
line_of(const struct pf_read *r, const char *why)
{
	const struct pm_msg *p = r->p;
	char needle[PE_ID_MAX * 2 + 16];

	for (size_t i = 0; i < p->msg.n_rules; i++) {
		snprintf(needle, sizeof(needle), "rule \"%s\"", p->patterns[i]);
		if (strstr(why, needle) != NULL)
			return r->rule_line[i];
		snprintf(needle, sizeof(needle), "rules[%zu]", i);
		if (strstr(why, needle) != NULL)
			return r->rule_line[i];
	}
	for (size_t i = 0; i < p->msg.n_params; i++) {
		snprintf(needle, sizeof(needle), "\"%s\"", p->param_names[i]);
		if (strstr(why, needle) != NULL)
			return r->param_line[i];
	}
	if (strncmp(why, "defaults", 8) == 0)
		return r->defaults_line;
	if (strncmp(why, "ksm", 3) == 0)
		return r->ksm_line;
	if (strncmp(why, "numa", 4) == 0)
		return r->numa_line;
	return r->policy_line;
}

int
pf_load(const char *path, uint64_t default_version, struct pm_msg *out,
    char *err, size_t errlen)
{
	struct pf_read r = { .p = out };
	struct pm_policy checked;
	char why[512];
	int e;

	pm_msg_init(out);
	e = conf_read_ini(path, read_key, &r, err, errlen);
	if (e < 0)
		return e;
	if (!out->msg.has_version)
		SET(&out->msg, version, default_version);
	if (!out->msg.has_mode)
		SET(&out->msg, mode, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE);
	if (msg_validate(MSG_POLICY, &out->msg.base, why, sizeof(why)) < 0 ||
	    pm_from_msg(&out->msg, &checked, why, sizeof(why)) < 0) {
		int line = line_of(&r, why);

		if (line > 0)
			snprintf(err, errlen, "%s:%d: %s", path, line, why);
		else
			snprintf(err, errlen, "%s: %s", path, why);
		return -EINVAL;
	}
	return 0;
}

/* d in the fewest digits that read back as d ("%g" keeps six: a
 * hold_ms of 3000025 came back as 3000020). */
static void
exact_number(char *buf, size_t size, double d)
{
	for (int prec = 6; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
}

/* k's value v as a file writes it. */
static void
format_value(const struct pk_key *k, struct pk_value v, char *buf,
    size_t size)
{
	switch (k->unit) {
	case PK_KIB:
		conf_format_size_kib(buf, size, (int64_t)v.u);
		break;
	case PK_PAGES:
		conf_format_size_kib(buf, size, (int64_t)v.u * 4);
		break;
	case PK_MS:
	case PK_S:
		snprintf(buf, size, "%llu%s", (unsigned long long)v.u,
		    k->unit == PK_S ? "s" : "ms");
		break;
	case PK_BOOL:
		snprintf(buf, size, "%s", v.u != 0 ? "yes" : "no");
		break;
	default:
		if (pk_whole(k))
			snprintf(buf, size, "%llu", (unsigned long long)v.u);
		else
			exact_number(buf, size, v.d);
		break;
	}
}

/* The keys of section s that its message m (may be NULL) sets. */
static void
write_keys(FILE *f, enum pk_section s, const void *m)
{
	const struct pk_key *k;
	struct pk_value v;
	char b[64];

	if (m == NULL)
		return;
	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		if (k->section != s || !pk_msg_get(k, m, &v))
			continue;
		format_value(k, v, b, sizeof(b));
		fprintf(f, "%s = %s\n", k->name, b);
	}
}

void
pf_write(FILE *f, const Mm__V1__Policy *m)
{
	const char *mode = pm_mode_name((enum pm_mode)m->mode);

	fprintf(f, "[policy]\nversion = %llu\n",
	    (unsigned long long)m->version);
	/* Quoted where it begins with what would not read back: ';' or '#'
	 * (a comment; found by fuzz_policyfile), a quote, a space. */
	if (m->name != NULL)
		fprintf(f, strchr(";#\" \t", m->name[0]) != NULL &&
		    m->name[0] != '\0' ? "name = \"%s\"\n" : "name = %s\n",
		    m->name);
	fprintf(f, "mode = %s\n", mode != NULL ? mode : "?");
	if (m->algorithm != NULL)
		fprintf(f, "algorithm = %s\n", m->algorithm);
	write_keys(f, PK_POLICY, m);
	if (m->defaults != NULL) {
		fprintf(f, "\n[defaults]\n");
		write_keys(f, PK_LIMITS, m->defaults);
	}
	for (size_t i = 0; i < m->n_rules; i++) {
		fprintf(f, "\n[vm %s]\n", m->rules[i]->pattern);
		write_keys(f, PK_LIMITS, m->rules[i]->limits);
	}
	if (m->ksm != NULL) {
		fprintf(f, "\n[ksm]\n");
		write_keys(f, PK_KSM, m->ksm);
	}
	if (m->numa != NULL) {
		fprintf(f, "\n[numa]\n");
		write_keys(f, PK_NUMA, m->numa);
	}
	if (m->n_params > 0) {
		fprintf(f, "\n[params]\n");
		for (size_t i = 0; i < m->n_params; i++) {
			char num[32];

			exact_number(num, sizeof(num), m->params[i]->value);
			fprintf(f, "%s = %s\n", m->params[i]->name, num);
		}
	}
}
