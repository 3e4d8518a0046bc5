/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The offline replay: traces are read with their errors on their lines, a
 * VM-step is short exactly when the model says so, and the capacity search
 * finds the smallest host that keeps the shortfall within its bound.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "replay.h"

#define GiB (1024ull * 1024ull)

static int
read_text(struct rp_trace *t, const char *text, char *err, size_t errlen)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	int r = rp_trace_read(t, f, "t.csv", err, errlen);

	fclose(f);
	return r;
}

static void
test_replay_trace_errors(void **state)
{
	struct rp_trace t;
	char err[256];

	assert_int_equal(read_text(&t, "time_s,vm,used_kib,max_kib\n"
	    "0,a,1,2\n5,a,1\n", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.csv:3: expected time_s,vm,used_kib,"
	    "max_kib");
	assert_int_equal(read_text(&t, "0,a,1,2\n10,a,1,2\n5,a,1,2\n", err,
	    sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.csv:3: time 5 goes back");
	assert_int_equal(read_text(&t, "0,a b,1,2\n", err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(read_text(&t, "", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "t.csv: no samples");
	assert_int_equal(read_text(&t, "0,a,1,2\n0,b,1,4\n10,a,2,2\n", err,
	    sizeof(err)), 0);
	assert_int_equal(t.steps, 2);
	assert_int_equal(t.nvms, 2);
	rp_trace_free(&t);
}

/* Two VMs of 4 GiB using 1 GiB for an hour. */
static void
quiet_trace(struct rp_trace *t)
{
	memset(t, 0, sizeof(*t));
	for (uint64_t s = 0; s < 3600; s += 10) {
		assert_int_equal(rp_trace_add(t, s, "a", 1 * GiB, 4 * GiB), 0);
		assert_int_equal(rp_trace_add(t, s, "b", 1 * GiB, 4 * GiB), 0);
	}
}

static void
test_replay_counts_shortfall(void **state)
{
	struct rp_trace t;
	struct pe_policy p;
	struct rp_result r;

	quiet_trace(&t);
	pe_policy_defaults(&p);
	p.algo = PE_ALGO_STATIC;
	/* Enough for everything: never short. */
	assert_int_equal(rp_run(&t, &p, 8 * GiB, &r), 0);
	assert_int_equal(r.provisioned_kib, 8 * GiB);
	assert_true(r.shortfall_pct == 0);
	assert_int_equal(r.vm_steps, 2 * 359);
	assert_int_equal(r.commands, 0);
	/* 1 GiB for 2 GiB of use: the host swaps, every VM is short. */
	assert_int_equal(rp_run(&t, &p, 1 * GiB, &r), 0);
	assert_true(r.shortfall_pct == 100);
	assert_true(r.saved_pct == 87.5);
	rp_trace_free(&t);
}

static void
test_replay_pressure_needs_less(void **state)
{
	struct rp_trace t;
	struct pe_policy p;
	struct rp_result pressure, fixed;

	quiet_trace(&t);
	pe_policy_defaults(&p);
	assert_int_equal(rp_find_capacity(&t, &p, 0.1, &pressure), 0);
	p.algo = PE_ALGO_STATIC;
	assert_int_equal(rp_find_capacity(&t, &p, 0.1, &fixed), 0);
	assert_true(pressure.shortfall_pct <= 0.1);
	assert_true(fixed.shortfall_pct <= 0.1);
	/* Quiet guests: mm gives back most of what they do not use. */
	assert_true(pressure.capacity_kib < fixed.capacity_kib * 6 / 10);
	assert_true(pressure.commands > 0);
	rp_trace_free(&t);
}

/*
 * Free page reporting in the replay: two VMs of 4 GiB under a static
 * split take turns, one using 3 GiB for ten minutes and then 512 MiB, the
 * other the other way round, a sample a minute. On 6 GiB the host swaps
 * when the first one's freed memory stays resident (the high-water mark);
 * with reporting it goes back, and only some page cache fills in.
 */
static void
test_replay_reporting_gives_freed_memory_back(void **state)
{
	struct rp_trace t = { 0 };
	struct pe_policy p;
	struct rp_result without, with;

	(void)state;
	for (uint64_t s = 0; s < 20 * 60; s += 60) {
		bool first = s < 10 * 60;

		assert_int_equal(rp_trace_add(&t, s, "a", first ? 3 * GiB :
		    GiB / 2, 4 * GiB), 0);
		assert_int_equal(rp_trace_add(&t, s, "b", first ? GiB / 2 :
		    3 * GiB, 4 * GiB), 0);
	}
	pe_policy_defaults(&p);
	p.algo = PE_ALGO_STATIC;
	assert_int_equal(rp_run(&t, &p, 6 * GiB, &without), 0);
	t.free_page_reporting = true;
	assert_int_equal(rp_run(&t, &p, 6 * GiB, &with), 0);
	fprintf(stderr, "reporting: short %.1f %% of VM-steps without, "
	    "%.1f %% with\n", without.shortfall_pct, with.shortfall_pct);
	assert_true(without.shortfall_pct >= 20);
	assert_true(with.shortfall_pct == 0);
	rp_trace_free(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_replay_trace_errors),
		cmocka_unit_test(test_replay_counts_shortfall),
		cmocka_unit_test(test_replay_pressure_needs_less),
		cmocka_unit_test(test_replay_reporting_gives_freed_memory_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
