/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files as an operator writes them: the example in deploy/ reads
 * into the right message and is written back as it was meant, and each kind
 * of mistake is reported on its line with the words the scheduler would
 * use.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "policyfile.h"
#include "testutil.h"

static void
test_policyfile_example_reads(void **state)
{
	char *path = tu_source_path("deploy/policy.example");
	struct pm_msg p;
	char err[512];

	assert_int_equal(pf_load(path, 1234, &p, err, sizeof(err)), 0);
	assert_int_equal(p.msg.version, 1234);
	assert_string_equal(p.msg.name, "default fleet policy");
	assert_int_equal(p.msg.mode, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE);
	assert_string_equal(p.msg.algorithm, "pressure");
	assert_int_equal(p.msg.host_reserve_kib, 2 * 1024 * 1024);
	assert_int_equal(p.msg.defaults->headroom_kib, 256 * 1024);
	assert_int_equal(p.msg.n_rules, 3);
	assert_string_equal(p.msg.rules[0]->pattern, "db-*");
	assert_int_equal(p.msg.rules[0]->limits->min_kib, 4 * 1024 * 1024);
	assert_int_equal(p.msg.rules[0]->limits->weight, 300);
	assert_true(p.msg.rules[2]->limits->unmanaged);
	assert_true(p.msg.ksm->enable);
	assert_int_equal(p.msg.numa->round_pages, 262144);
	assert_int_equal(p.msg.numa->min_interval_s, 300);
	assert_int_equal(p.msg.n_params, 2);
	assert_string_equal(p.msg.params[1]->name, "grow_pct");
	free(path);
}

/* What mmctl policy show prints for it: the file, as written before the
 * writer came from the table of keys. */
static void
test_policyfile_example_written_back(void **state)
{
	static const char want[] =
	    "[policy]\nversion = 1234\nname = default fleet policy\n"
	    "mode = enforce\nalgorithm = pressure\nhost_reserve = 2G\n"
	    "\n[defaults]\nmin = 512M\nweight = 100\nheadroom = 256M\n"
	    "headroom_pct = 10\n"
	    "\n[vm db-*]\nmin = 4G\nweight = 300\n"
	    "\n[vm build-*]\nmax = 8G\nweight = 50\n"
	    "\n[vm appliance-*]\nunmanaged = yes\n"
	    "\n[ksm]\nenable = yes\ncpu_budget_pct = 10\n"
	    "start_available_pct = 20\nstop_available_pct = 40\n"
	    "\n[numa]\nenable = yes\nmin_interval = 300s\nround_quota = 1G\n"
	    "node_reserve = 256M\n"
	    "\n[params]\nhold_ms = 30000\ngrow_pct = 25\n";
	char *path = tu_source_path("deploy/policy.example");
	struct pm_msg p;
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(pf_load(path, 1234, &p, err, sizeof(err)), 0);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	pf_write(f, &p.msg);
	fclose(f);
	assert_string_equal(text, want);
	free(text);
	free(path);
}

struct bad_case {
	const char *text;
	const char *error;
};

static void
test_policyfile_errors_name_the_line(void **state)
{
	static const struct bad_case cases[] = {
		{ "[policy]\nmode = sometimes\n",
		  "p.policy:2: mode \"sometimes\" is not one of: enforce, "
		  "shadow, off" },
		{ "[policy]\nname = x\n[defaults]\nmin = lots\n",
		  "p.policy:4: value \"lots\" of \"min\" is not a size "
		  "(e.g. 512M, 4G)" },
		{ "[policy]\nalgorithm = squeezed\n",
		  "p.policy:2: unknown algorithm \"squeezed\" (known: "
		  "pressure, static, xenmm, mom)" },
		{ "[polcy]\nmode = off\n",
		  "p.policy:1: unknown section [polcy] (known: policy, "
		  "defaults, vm <glob>, ksm, numa, params)" },
		{ "[policy]\nmode = off\n\n[vm db-*]\nmin = 8G\nmax = 4G\n",
		  "p.policy:4: rules[0].limits.min_kib: 8388608 above "
		  "max_kib 4194304" },
		{ "[policy]\nmode = off\n[params]\ngrow_pct = 10\n"
		  "holdd_ms = 5\n",
		  "p.policy:5: unknown parameter \"holdd_ms\"" },
		{ "[policy]\nmode = off\n[vm a]\nweight = 20000\n",
		  "p.policy:4: value 20000 of \"weight\" is out of range "
		  "0..10000" },
		{ "[policy]\nmode = off\n[vm a]\nweight = 1\n[vm a]\n"
		  "weight = 2\n",
		  "p.policy:5: [vm a] appears twice, first on line 3" },
		{ "[policy]\nhost_reservee = 1G\n",
		  "p.policy:2: unknown key \"host_reservee\" in [policy] "
		  "(known: version, name, mode, algorithm, host_reserve)" },
		{ "[policy]\nhost_reserve = 100T\n",
		  "p.policy:1: host_reserve_kib 107374182400 above "
		  "68719476736 (64 TiB)" },
		{ "[defaults]\nweight = 2\nfoo = 1\n",
		  "p.policy:3: unknown key \"foo\" (known: min, max, weight, "
		  "headroom, headroom_pct, unmanaged, reclaim)" },
		{ "[vm x]\nheadroom = 40T\n",
		  "p.policy:1: rule \"x\": headroom_kib 42949672960 above "
		  "34359738368 (32 TiB)" },
		{ "[ksm]\nsleep = 61s\n",
		  "p.policy:2: value 61s of \"sleep\" is out of range "
		  "1ms..60000ms" },
		{ "[ksm]\nbar = 2\n",
		  "p.policy:2: unknown key \"bar\" in [ksm] (known: enable, "
		  "cpu_budget_pct, start_available_pct, stop_available_pct, "
		  "min_pages_to_scan, max_pages_to_scan, sleep, "
		  "merge_across_nodes)" },
		{ "[numa]\nround_quota = 65T\n",
		  "p.policy:1: numa: round_pages 17448304640 above "
		  "17179869184 (64 TiB of 4 KiB pages)" },
		{ "[numa]\nquota = 1\n",
		  "p.policy:2: unknown key \"quota\" in [numa] (known: enable, "
		  "min_interval, round_quota, node_reserve)" },
		{ "[params]\nguest_capacity_kib = 1e11\n",
		  "p.policy:2: parameter \"guest_capacity_kib\": 1e+11 outside "
		  "0..6.87195e+10" },
		{ "[policy]\nmode off\n",
		  "p.policy:2: syntax error, expected \"[section]\" or "
		  "\"key = value\"" },
	};
	char *dir = tu_tmpdir();

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *path = tu_write_file(dir, "p.policy", cases[i].text);
		struct pm_msg p;
		char err[512];
		const char *base;

		assert_int_equal(pf_load(path, 1, &p, err, sizeof(err)),
		    -EINVAL);
		base = strrchr(err, '/') != NULL ? strrchr(err, '/') + 1 : err;
		if (strcmp(base, cases[i].error) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, base,
			    cases[i].error);
		free(path);
	}
	tu_rmtree(dir);
	free(dir);
}

static void
test_policyfile_missing_file(void **state)
{
	struct pm_msg p;
	char err[512];

	assert_int_equal(pf_load("/nonexistent/x.policy", 1, &p, err,
	    sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot open \"/nonexistent/x.policy\": No "
	    "such file or directory");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policyfile_example_reads),
		cmocka_unit_test(test_policyfile_example_written_back),
		cmocka_unit_test(test_policyfile_errors_name_the_line),
		cmocka_unit_test(test_policyfile_missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
