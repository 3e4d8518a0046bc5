/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Policy files as an operator writes them: the example in deploy/ reads
 * into the right message, and each kind of mistake is reported on its line
 * with the words the scheduler would use.
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
	struct pf_policy p;
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
		{ "[policy]\nmode off\n",
		  "p.policy:2: syntax error, expected \"[section]\" or "
		  "\"key = value\"" },
	};
	char *dir = tu_tmpdir();

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *path = tu_write_file(dir, "p.policy", cases[i].text);
		struct pf_policy p;
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
	struct pf_policy p;
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
		cmocka_unit_test(test_policyfile_errors_name_the_line),
		cmocka_unit_test(test_policyfile_missing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
