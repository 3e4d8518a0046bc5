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

/*
 * The cold model: VMs of 16 GiB at a steady 6 GiB, a sample each 5
 * minutes; then (jump) at 3 h the first of them doubles its use and keeps
 * it; with late, one more at 1 GiB that takes 5 GiB after 8 hours. A
 * quarter of what they keep in use is cold (1.5 GiB each).
 */
static void
flat_trace(struct rp_trace *t, size_t vms, uint64_t hours, bool jump,
    bool late)
{
	memset(t, 0, sizeof(*t));
	for (uint64_t s = 0; s < hours * 3600; s += 300) {
		for (size_t k = 0; k < vms; k++) {
			char name[8];

			snprintf(name, sizeof(name), "v%zu", k);
			assert_int_equal(rp_trace_add(t, s, name, jump &&
			    k == 0 && s >= 3 * 3600 ? 12 * GiB : 6 * GiB,
			    16 * GiB), 0);
		}
		if (late)
			assert_int_equal(rp_trace_add(t, s, "late", s < 8 *
			    3600 ? GiB : 5 * GiB, 16 * GiB), 0);
	}
	t->cold_share = 0.25;
}

/* Replay t under p without reclaim and with it (p opted in), on a host of
 * capacity_kib, or (0) on the smallest with at most 0.1 % short. */
static void
without_and_with(const struct rp_trace *t, struct pe_policy *p,
    uint64_t capacity_kib, struct rp_result *without, struct rp_result *with)
{
	for (int rec = 0; rec < 2; rec++) {
		p->defaults.reclaim = rec;
		assert_int_equal(capacity_kib ? rp_run(t, p, capacity_kib, rec ?
		    with : without) : rp_find_capacity(t, p, 0.1, rec ? with :
		    without), 0);
	}
}

/*
 * Four VMs at a steady 6 GiB all day, and a fifth at 1 GiB that takes 5
 * GiB after 8 hours. With reclaim the steady ones keep 1.5 GiB each in
 * zram at a third of the room once it is cold (an hour), so the fifth
 * fits in what that gave back: the host needs about 4 GiB less. (Before
 * the fifth grows there is room, so the steady ones are calm: the engine
 * asks only calm guests to reclaim.) Without history: its term keeps a
 * day's peak, from before the reclaim, for that day.
 */
static void
test_replay_reclaim_needs_less(void **state)
{
	struct rp_trace t;
	struct pe_policy p;
	struct rp_result without, with;

	(void)state;
	flat_trace(&t, 4, 24, false, true);
	assert_int_equal(rp_variant_policy("pressure-nohistory", &p), 0);
	without_and_with(&t, &p, 0, &without, &with);
	fprintf(stderr, "reclaim: %.2f GiB without, %.2f GiB with, %.2f GiB "
	    "reclaimed\n", (double)without.capacity_kib / GiB,
	    (double)with.capacity_kib / GiB, with.reclaimed_kib / GiB);
	assert_true(with.capacity_kib + 3 * GiB < without.capacity_kib);
	assert_true(with.shortfall_pct <= 0.1);
	/* Most of what is cold (6 GiB, and the late one's quarter), over the
	 * day less its first hour. */
	assert_true(with.reclaimed_kib > 5 * GiB);
	assert_true(without.reclaimed_kib == 0);
	rp_trace_free(&t);
}

/*
 * One VM of two doubles its use after three hours: what it had reclaimed
 * comes back, stalls it, and must fit where the balloon had taken the
 * room that reclaim gave.
 */
static void
test_replay_reclaim_refaults_on_jump(void **state)
{
	struct rp_trace t;
	struct pe_policy p;
	struct rp_result without, with;

	(void)state;
	flat_trace(&t, 2, 6, true, false);
	assert_int_equal(rp_variant_policy("pressure-nohistory", &p), 0);
	p.spare_pct = 0;	/* targets follow use, with no buffer */
	without_and_with(&t, &p, 30 * GiB, &without, &with);
	fprintf(stderr, "jump: refault %.2f GiB, stall %.4f %%, short %.2f %% "
	    "of VM-steps by %.0f MiB with reclaim, %.2f %% by %.0f MiB "
	    "without\n", (double)with.refault_kib / GiB, with.stall_pct,
	    with.shortfall_pct, with.mean_shortfall_kib / 1024,
	    without.shortfall_pct, without.mean_shortfall_kib / 1024);
	/* All of the jumping VM's 1.5 GiB, and nothing of the other's. */
	assert_true(with.refault_kib >= 3 * GiB / 2 - 1024 &&
	    with.refault_kib <= 3 * GiB / 2);
	assert_true(with.stall_pct > 0);
	assert_int_equal(without.refault_kib, 0);
	/* The jump is short either way; with reclaim by more, since the
	 * balloon had taken what reclaim freed. */
	assert_true(without.shortfall_pct > 0);
	assert_true(with.shortfall_pct >= without.shortfall_pct);
	assert_true(with.mean_shortfall_kib > without.mean_shortfall_kib +
	    256 * 1024);
	rp_trace_free(&t);
}

/*
 * Use that falls and comes back within the hour is memory touched within
 * it, not cold: nothing reclaimed comes back; the VM still reclaims what
 * stays put (a quarter of its 4 GiB floor).
 */
static void
test_replay_reclaim_within_hour_no_refault(void **state)
{
	struct rp_trace t = { 0 };
	struct pe_policy p;
	struct rp_result r;

	(void)state;
	for (uint64_t s = 0; s < 6 * 3600; s += 300)
		assert_int_equal(rp_trace_add(&t, s, "a", (s / 300) % 2 ?
		    4 * GiB : 5 * GiB, 16 * GiB), 0);
	t.cold_share = 0.25;
	assert_int_equal(rp_variant_policy("pressure", &p), 0);
	p.defaults.reclaim = true;
	assert_int_equal(rp_run(&t, &p, 16 * GiB, &r), 0);
	assert_int_equal(r.refault_kib, 0);
	assert_true(r.reclaimed_kib > 0.5 * GiB);
	rp_trace_free(&t);
}

static void
assert_same(const struct rp_result *a, const struct rp_result *b)
{
	assert_int_equal(a->capacity_kib, b->capacity_kib);
	assert_true(a->shortfall_pct == b->shortfall_pct);
	assert_true(a->mean_shortfall_kib == b->mean_shortfall_kib);
	assert_int_equal(a->commands, b->commands);
	assert_int_equal(a->vm_steps, b->vm_steps);
	assert_int_equal(a->refault_kib, 0);
	assert_true(a->reclaimed_kib == 0 && b->reclaimed_kib == 0);
}

/*
 * The model changes nothing by itself: without reclaim the cold memory
 * stays where it is, and reclaim without the model finds nothing cold.
 * On a trace with a jump, so that any refault or stall would show.
 */
static void
test_replay_cold_off_unchanged(void **state)
{
	struct rp_trace t;
	struct pe_policy p;
	struct rp_result plain, cold, asked;

	(void)state;
	for (size_t a = 0; a < 2; a++) {
		flat_trace(&t, 2, 6, true, false);
		t.cold_share = 0;
		assert_int_equal(rp_variant_policy(a ? "static" : "pressure",
		    &p), 0);
		assert_int_equal(rp_run(&t, &p, 20 * GiB, &plain), 0);
		p.defaults.reclaim = true;
		assert_int_equal(rp_run(&t, &p, 20 * GiB, &asked), 0);
		assert_same(&asked, &plain);
		p.defaults.reclaim = false;
		t.cold_share = 0.25;
		assert_int_equal(rp_run(&t, &p, 20 * GiB, &cold), 0);
		assert_same(&cold, &plain);
		assert_true(cold.stall_pct == 0);
		rp_trace_free(&t);
	}
	/* With both, the same trace does change: the tests above count. */
	flat_trace(&t, 2, 6, true, false);
	p.defaults.reclaim = true;
	assert_int_equal(rp_variant_policy("pressure", &p), 0);
	p.defaults.reclaim = true;
	assert_int_equal(rp_run(&t, &p, 20 * GiB, &cold), 0);
	assert_true(cold.refault_kib > 0);
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
		cmocka_unit_test(test_replay_reclaim_needs_less),
		cmocka_unit_test(test_replay_reclaim_refaults_on_jump),
		cmocka_unit_test(test_replay_reclaim_within_hour_no_refault),
		cmocka_unit_test(test_replay_cold_off_unchanged),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
