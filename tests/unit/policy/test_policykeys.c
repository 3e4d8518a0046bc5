/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of policy keys, walked: every key's default is the engine's,
 * every key survives file -> message -> policy -> message -> file, and a
 * value outside a key's range is refused, in a file and in a message, with
 * words that name the key. A key added to the table is tested here without
 * a line of test.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policyfile.h"
#include "policykeys.h"
#include "policymsg.h"
#include "testutil.h"

static const char *const headers[] = {
	[PK_POLICY] = "[policy]", [PK_LIMITS] = "[defaults]",
	[PK_KSM] = "[ksm]", [PK_NUMA] = "[numa]", [PK_PARAMS] = "[params]",
};

/* Where k is kept in p. */
static const void *
base_of(const struct pk_key *k, const struct pm_policy *p)
{
	return k->section == PK_LIMITS ? (const void *)&p->balloon.defaults :
	    (const void *)p;
}

static bool
same(const struct pk_key *k, struct pk_value a, struct pk_value b)
{
	return pk_whole(k) ? a.u == b.u : a.d == b.d;
}

/* Whether j is kept where k is (ksm_ample_pct is stop_available_pct). */
static bool
alias(const struct pk_key *k, const struct pk_key *j)
{
	return (k->section == PK_LIMITS) == (j->section == PK_LIMITS) &&
	    k->offset == j->offset;
}

static char *
written(const Mm__V1__Policy *m)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	pf_write(f, m);
	fclose(f);
	return text;
}

/* The value of key name in text's section header, or NULL. */
static char *
value_in(const char *text, const char *header, const char *name)
{
	const char *sec = strstr(text, header), *end, *at;
	char needle[96];

	if (sec == NULL)
		return NULL;
	end = strstr(sec + 1, "\n[");
	snprintf(needle, sizeof(needle), "\n%s = ", name);
	at = strstr(sec, needle);
	if (at == NULL || (end != NULL && at > end))
		return NULL;
	at += strlen(needle);
	return strndup(at, strcspn(at, "\n"));
}

/* m: a policy with k set to v (and nothing else but version and mode). */
static void
msg_with(struct pm_msg *m, const struct pk_key *k, struct pk_value v)
{
	pm_msg_init(m);
	m->msg.has_version = m->msg.has_mode = true;
	m->msg.version = 7;
	m->msg.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
	switch (k->section) {
	case PK_POLICY:
		pk_msg_set(k, &m->msg, v);
		break;
	case PK_LIMITS:
		m->msg.defaults = &m->defaults;
		pk_msg_set(k, &m->defaults, v);
		break;
	case PK_KSM:
		m->msg.ksm = &m->ksm;
		pk_msg_set(k, &m->ksm, v);
		break;
	case PK_NUMA:
		m->msg.numa = &m->numa;
		pk_msg_set(k, &m->numa, v);
		break;
	case PK_PARAMS:
		snprintf(m->param_names[0], sizeof(m->param_names[0]), "%s",
		    k->name);
		m->params[0].name = m->param_names[0];
		m->params[0].has_value = true;
		m->params[0].value = v.d;
		m->param_ptrs[0] = &m->params[0];
		m->msg.n_params = 1;
		break;
	}
}

/* Every key of a equals b's. */
static void
assert_same_policy(const struct pm_policy *a, const struct pm_policy *b)
{
	const struct pk_key *j;

	for (size_t i = 0; (j = pk_key_at(i)) != NULL; i++)
		if (!same(j, pk_struct_get(j, base_of(j, a)),
		    pk_struct_get(j, base_of(j, b))))
			fail_msg("key \"%s\" changed on the way", j->name);
}

static void
test_policykeys_table_sound(void **state)
{
	const struct pk_key *k, *j;
	struct pm_policy p;
	size_t params = 0;
	char *man_path = tu_source_path("docs/man/mm-policy.5");
	char man[32768];
	FILE *f = fopen(man_path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(man, 1, sizeof(man) - 1, f);
	man[n] = '\0';
	fclose(f);
	pm_defaults(&p, PM_ENFORCE);
	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		struct pk_value d = pk_struct_get(k, base_of(k, &p));
		double type_max = k->msg_type == PK_T_U32 ? UINT32_MAX :
		    k->msg_type == PK_T_U64 ? 18446744073709551615.0 : INFINITY;

		assert_true(k->doc != NULL && k->doc[0] != '\0');
		assert_true(k->min <= k->def && k->def <= k->max);
		assert_true(k->min >= 0 && k->max <= type_max);
		if ((pk_whole(k) && d.u != (uint64_t)k->def) ||
		    (!pk_whole(k) && d.d != k->def))
			fail_msg("\"%s\": default %g in the table, %g in the "
			    "engine", k->name, k->def, d.d);
		for (size_t i2 = 0; i2 < i; i2++)
			if ((j = pk_key_at(i2))->section == k->section &&
			    strcmp(j->name, k->name) == 0)
				fail_msg("\"%s\" twice", k->name);
		assert_ptr_equal(pk_find(k->section, k->name), k);
		/* Documented for operators too. */
		if (strstr(man, k->name) == NULL)
			fail_msg("\"%s\" missing from mm-policy(5)", k->name);
		params += k->section == PK_PARAMS;
	}
	assert_true(params <= PM_PARAMS_MAX);
	assert_string_equal(pm_param_name(0), "psi_low_pct");
	assert_null(pm_param_name(params));
	free(man_path);
}

/* k at v through a file and back; false when v cannot be (the policy is
 * refused as a whole, or the file cannot say v exactly). */
static bool
round_trip(const char *dir, const struct pk_key *k, struct pk_value v)
{
	struct pm_msg *m0 = malloc(sizeof(*m0)), *m1 = malloc(sizeof(*m1));
	struct pm_policy dflt, s1, s2, s3;
	const struct pk_key *j;
	char *text0, *text2, *path, *v0, *v2;
	char err[512], why[512];
	bool ok = false;

	assert_true(m0 != NULL && m1 != NULL);
	pm_defaults(&dflt, PM_ENFORCE);
	/* file -> message -> policy */
	msg_with(m0, k, v);
	text0 = written(&m0->msg);
	path = tu_write_file(dir, "k.policy", text0);
	if (pf_load(path, 1, m1, err, sizeof(err)) < 0) {
		print_message("%s = %g refused: %s\n", k->name, v.d, err);
		goto out;
	}
	assert_int_equal(pm_from_msg(&m1->msg, &s1, why, sizeof(why)), 0);
	if (!same(k, pk_struct_get(k, base_of(k, &s1)), v)) {
		print_message("%s = %g not said exactly\n", k->name, v.d);
		goto out;
	}
	for (size_t i = 0; (j = pk_key_at(i)) != NULL; i++)
		if (!alias(k, j) && !same(j, pk_struct_get(j, base_of(j, &s1)),
		    pk_struct_get(j, base_of(j, &dflt))))
			fail_msg("setting \"%s\" changed \"%s\"", k->name,
			    j->name);
	/* -> message -> policy */
	pm_to_msg(&s1, m0);
	if (pm_from_msg(&m0->msg, &s2, why, sizeof(why)) < 0)
		fail_msg("\"%s\": pm_to_msg() gave a policy refused: %s",
		    k->name, why);
	assert_same_policy(&s1, &s2);
	/* -> file, which says it as the first did, and reads back */
	text2 = written(&m0->msg);
	v0 = value_in(text0, headers[k->section], k->name);
	v2 = value_in(text2, headers[k->section], k->name);
	if (v0 == NULL || v2 == NULL || strcmp(v0, v2) != 0)
		fail_msg("\"%s\": \"%s\" written, \"%s\" back", k->name,
		    v0 != NULL ? v0 : "(none)", v2 != NULL ? v2 : "(none)");
	free(path);
	path = tu_write_file(dir, "k.policy", text2);
	if (pf_load(path, 1, m1, err, sizeof(err)) < 0)
		fail_msg("\"%s\": written policy refused: %s", k->name, err);
	assert_int_equal(pm_from_msg(&m1->msg, &s3, why, sizeof(why)), 0);
	assert_same_policy(&s1, &s3);
	free(v0);
	free(v2);
	free(text2);
	ok = true;
out:
	free(path);
	free(text0);
	free(m0);
	free(m1);
	return ok;
}

static void
test_policykeys_round_trip(void **state)
{
	char *dir = tu_tmpdir();
	const struct pk_key *k;

	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		/* Not the default, or a key read nowhere would pass: the
		 * largest value, else a small one others do not object to. */
		double tries[] = { k->max, k->min + 1, k->min + 2,
		    (k->min + k->max) / 2 };
		bool done = false;

		if (k->unit == PK_BOOL)
			tries[0] = tries[1] = tries[2] = tries[3] = !k->def;
		for (size_t t = 0; t < 4 && !done; t++) {
			struct pk_value v = pk_whole(k) ?
			    pk_value_u((uint64_t)tries[t]) :
			    pk_value_d(tries[t]);

			if (tries[t] == k->def || !pk_in_range(k, v))
				continue;
			done = round_trip(dir, k, v);
		}
		if (!done)
			fail_msg("no value of \"%s\" went round", k->name);
	}
	tu_rmtree(dir);
	free(dir);
}

/* v as a file writes k's unit, where the writer cannot (out of range). */
static void
text_of(const struct pk_key *k, double v, char *buf, size_t size)
{
	if (k->section == PK_PARAMS || k->unit == PK_PCT ||
	    k->unit == PK_NUMBER)
		snprintf(buf, size, "%.17g", v);
	else if (k->unit == PK_PAGES)
		snprintf(buf, size, "%.0fK", v * 4);
	else if (k->unit == PK_KIB)
		snprintf(buf, size, "%.0fK", v);
	else
		snprintf(buf, size, "%.0f%s", v, k->unit == PK_S ? "s" : "ms");
}

/* k at v is refused by a file and by a message, naming k. */
static void
assert_refused(const char *dir, const struct pk_key *k, double v)
{
	struct pm_msg *m = malloc(sizeof(*m));
	struct pm_policy p;
	char text[256], value[64], err[512] = "", why[512] = "";
	char *path;
	bool files_say_it = v >= 0 || (k->section == PK_PARAMS ||
	    k->unit == PK_PCT || k->unit == PK_NUMBER);

	assert_non_null(m);
	if (files_say_it) {
		text_of(k, v, value, sizeof(value));
		snprintf(text, sizeof(text), "%s\n%s = %s\n",
		    headers[k->section], k->name, value);
		path = tu_write_file(dir, "bad.policy", text);
		assert_int_equal(pf_load(path, 1, m, err, sizeof(err)),
		    -EINVAL);
		print_message("%s = %s: %s\n", k->name, value, err);
		if (strstr(err, k->name) == NULL &&
		    strstr(err, k->field) == NULL)
			fail_msg("\"%s\" does not name \"%s\"", err, k->name);
		free(path);
	}
	/* A message says only what its field can hold. */
	if (pk_whole(k) && (v < 0 || (k->msg_type == PK_T_U32 &&
	    v > UINT32_MAX))) {
		free(m);
		return;
	}
	msg_with(m, k, pk_whole(k) ? pk_value_u((uint64_t)v) :
	    pk_value_d(v));
	assert_int_equal(pm_from_msg(&m->msg, &p, why, sizeof(why)),
	    -EINVAL);
	if (strstr(why, k->field) == NULL)
		fail_msg("\"%s\" does not name \"%s\"", why, k->field);
	free(m);
}

static void
test_policykeys_out_of_range_refused(void **state)
{
	char *dir = tu_tmpdir();
	const struct pk_key *k;

	for (size_t i = 0; (k = pk_key_at(i)) != NULL; i++) {
		if (k->unit == PK_BOOL)
			continue;
		assert_refused(dir, k, k->max + 1);
		assert_refused(dir, k, pk_whole(k) || k->min <= 0 ?
		    k->min - 1 : k->min / 2);
	}
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policykeys_table_sound),
		cmocka_unit_test(test_policykeys_round_trip),
		cmocka_unit_test(test_policykeys_out_of_range_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
