/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Policy message as schedulers and mmctl judge it: sizes no host can
 * hold and KSM settings outside the kernel-sane bounds are refused with the
 * key, value and bound named; a version is newer, old, or too far ahead,
 * and an operator's reset is taken whatever its version.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policymsg.h"

#define TIB	(1024ull * 1024 * 1024)
#define NOW_S	1700000000ull
#define NOW_MS	(NOW_S * 1000)

struct fixture {
	Mm__V1__Policy p;
	Mm__V1__VmLimits defaults;
	Mm__V1__VmRule rule;
	Mm__V1__VmRule *rules[1];
	Mm__V1__VmLimits rule_limits;
	Mm__V1__KsmPolicy ksm;
	Mm__V1__NumaPolicy numa;
	Mm__V1__Param param;
	Mm__V1__Param *params[1];
};

static void
fixture(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	mm__v1__policy__init(&f->p);
	mm__v1__vm_limits__init(&f->defaults);
	mm__v1__vm_rule__init(&f->rule);
	mm__v1__vm_limits__init(&f->rule_limits);
	mm__v1__ksm_policy__init(&f->ksm);
	mm__v1__numa_policy__init(&f->numa);
	mm__v1__param__init(&f->param);
	f->p.has_version = f->p.has_mode = true;
	f->p.version = 7;
	f->p.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
	f->p.defaults = &f->defaults;
	f->rule.pattern = "db-*";
	f->rule.limits = &f->rule_limits;
	f->rules[0] = &f->rule;
	f->p.rules = f->rules;
	f->p.n_rules = 1;
	f->p.ksm = &f->ksm;
	f->p.numa = &f->numa;
	f->params[0] = &f->param;
	f->p.params = f->params;
}

/* pm_from_msg() refuses f, and its reason holds each of the needles. */
static void
assert_refused(struct fixture *f, const char *n1, const char *n2)
{
	struct pm_policy out;
	char why[512] = "";

	assert_int_equal(pm_from_msg(&f->p, &out, why, sizeof(why)), -EINVAL);
	print_message("refused: %s\n", why);
	if (strstr(why, n1) == NULL || (n2 != NULL && strstr(why, n2) == NULL))
		fail_msg("\"%s\" lacks \"%s\" or \"%s\"", why, n1,
		    n2 != NULL ? n2 : "");
}

static void
assert_accepted(struct fixture *f)
{
	struct pm_policy out;
	char why[512] = "";

	if (pm_from_msg(&f->p, &out, why, sizeof(why)) != 0)
		fail_msg("refused: %s", why);
}

static void
test_policymsg_host_reserve_bounded(void **state)
{
	struct fixture f;

	fixture(&f);
	f.p.has_host_reserve_kib = true;
	f.p.host_reserve_kib = 4096 * TIB;	/* 4 PiB, as probed */
	assert_refused(&f, "host_reserve_kib 4398046511104 above "
	    "68719476736", "64 TiB");
	f.p.host_reserve_kib = 64 * TIB;
	assert_accepted(&f);
}

static void
test_policymsg_vm_sizes_bounded(void **state)
{
	struct fixture f;

	fixture(&f);
	f.defaults.has_max_kib = true;
	f.defaults.max_kib = 33 * TIB;
	assert_refused(&f, "defaults: max_kib 35433480192 above 34359738368",
	    "32 TiB");
	f.defaults.max_kib = 32 * TIB;
	assert_accepted(&f);

	f.rule_limits.has_min_kib = true;
	f.rule_limits.min_kib = 1ull << 41;
	assert_refused(&f, "rule \"db-*\": min_kib 2199023255552 above", NULL);
	f.rule_limits.min_kib = 1 * TIB;
	assert_accepted(&f);

	f.rule_limits.has_headroom_kib = true;
	f.rule_limits.headroom_kib = UINT64_MAX;
	assert_refused(&f, "rule \"db-*\": headroom_kib", "above 34359738368");
	f.rule_limits.headroom_kib = 0;
	f.rule_limits.has_headroom_pct = true;
	f.rule_limits.headroom_pct = 101;
	assert_refused(&f, "rule \"db-*\": headroom_pct 101 outside 0..100",
	    NULL);
}

static void
test_policymsg_ksm_bounded(void **state)
{
	struct fixture f;

	fixture(&f);
	f.ksm.has_max_pages_to_scan = true;
	f.ksm.max_pages_to_scan = UINT32_MAX;
	assert_refused(&f, "ksm: max_pages_to_scan 4294967295 outside "
	    "1..100000", NULL);
	f.ksm.max_pages_to_scan = KSM_PAGES_TO_SCAN_MAX;
	assert_accepted(&f);
	f.ksm.has_min_pages_to_scan = true;
	f.ksm.min_pages_to_scan = 0;
	assert_refused(&f, "ksm: min_pages_to_scan 0 outside 1..100000",
	    NULL);
	f.ksm.min_pages_to_scan = KSM_PAGES_TO_SCAN_MIN;
	assert_accepted(&f);
	f.ksm.has_sleep_ms = true;
	f.ksm.sleep_ms = UINT32_MAX;
	assert_refused(&f, "ksm: sleep_ms 4294967295 outside 1..60000", NULL);
	f.ksm.sleep_ms = 0;
	assert_refused(&f, "ksm: sleep_ms 0 outside", NULL);
	f.ksm.sleep_ms = KSM_SLEEP_MS_MAX;
	assert_accepted(&f);
}

static void
test_policymsg_numa_and_params_bounded(void **state)
{
	struct fixture f;

	fixture(&f);
	f.numa.has_round_pages = true;
	f.numa.round_pages = UINT64_MAX;
	assert_refused(&f, "numa: round_pages 18446744073709551615 above "
	    "17179869184", NULL);
	f.numa.round_pages = 262144;	/* 1 GiB */
	f.numa.has_node_reserve_kib = true;
	f.numa.node_reserve_kib = 65 * TIB;
	assert_refused(&f, "numa: node_reserve_kib", "above 68719476736");
	f.numa.node_reserve_kib = 256 * 1024;
	assert_accepted(&f);

	/* A parameter's range is its table's: a step of 4 PiB is no step. */
	f.param.name = "grow_min_kib";
	f.param.has_value = true;
	f.param.value = 4096.0 * TIB;
	f.p.n_params = 1;
	assert_refused(&f, "parameter \"grow_min_kib\"", "outside 0..");
	f.param.value = 1024 * 1024;
	assert_accepted(&f);
	f.param.name = "guest_capacity_kib";
	f.param.value = 65.0 * TIB;
	assert_refused(&f, "parameter \"guest_capacity_kib\"", "outside 0..");
}

static void
test_policymsg_version_rule(void **state)
{
	char why[256];

	/* Newer, within the bound above the version in force... */
	assert_int_equal(pm_version_check(6, false, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_NEWER);
	assert_int_equal(pm_version_check(NOW_S * 2000 + PM_VERSION_JUMP_MAX,
	    false, NOW_S * 2000, NOW_MS, why, sizeof(why)), PM_VERSION_NEWER);
	/* ...or above the clock: in seconds (mmctl's default version) or
	 * milliseconds (tools), even over a small version or none. */
	assert_int_equal(pm_version_check(NOW_S, false, 0, NOW_MS, why,
	    sizeof(why)), PM_VERSION_NEWER);
	assert_int_equal(pm_version_check(NOW_S + 60, false, 7, NOW_MS, why,
	    sizeof(why)), PM_VERSION_NEWER);
	assert_int_equal(pm_version_check(NOW_S * 1000 + 60000, false,
	    NOW_S + 60, NOW_MS, why, sizeof(why)), PM_VERSION_NEWER);

	/* Not newer: ignored, and the operator is told how to insist. */
	assert_int_equal(pm_version_check(4, false, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_OLD);
	assert_string_equal(why, "policy 4 ignored: version 5 in force; use "
	    "--reset");
	assert_int_equal(pm_version_check(5, false, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_OLD);

	/* 2^64-1 would leave every later apply ignored: refused. */
	assert_int_equal(pm_version_check(UINT64_MAX, false, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_JUMP);
	assert_non_null(strstr(why, "policy 18446744073709551615 refused"));
	assert_non_null(strstr(why, "use --reset"));
	assert_int_equal(pm_version_check(NOW_S * 1000 + PM_VERSION_JUMP_MAX +
	    1, false, 0, NOW_MS, why, sizeof(why)), PM_VERSION_JUMP);
	assert_int_equal(pm_version_check(1ull << 53, false, 0, NOW_MS, why,
	    sizeof(why)), PM_VERSION_JUMP);

	/* A reset is taken whatever its version, lower or far higher. */
	assert_int_equal(pm_version_check(1, true, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_RESET);
	assert_int_equal(pm_version_check(UINT64_MAX, true, 5, NOW_MS, why,
	    sizeof(why)), PM_VERSION_RESET);
	/* After a reset to the top, the bound does not wrap around. */
	assert_int_equal(pm_version_check(UINT64_MAX, false, UINT64_MAX - 1,
	    NOW_MS, why, sizeof(why)), PM_VERSION_NEWER);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policymsg_host_reserve_bounded),
		cmocka_unit_test(test_policymsg_vm_sizes_bounded),
		cmocka_unit_test(test_policymsg_ksm_bounded),
		cmocka_unit_test(test_policymsg_numa_and_params_bounded),
		cmocka_unit_test(test_policymsg_version_rule),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
