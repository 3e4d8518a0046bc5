/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Three real guests under the real daemons on a real RabbitMQ: mm-collector
 * and mm-actuator with the kvm driver (QMP balloon, agent on virtio-serial)
 * and mm-scheduler. One guest ramps (mono 50 MiB -> 400 MiB -> 50 MiB,
 * after the host has settled), two stay idle. Checked:
 * - the ramping guest's balloon is first shrunk toward its need, then its
 *   target follows the ramp up, ahead of what the guest holds, and the
 *   guest sees no OOM kill;
 * - the three share a guest pool smaller than their maximums: the
 *   targets of every decision fit in it, and while the ramp peaks the idle
 *   guests have given memory back;
 * - no decided target and no balloon size ever leaves min..max;
 * - every decision event gives a reason;
 * - stopping the actuator with release_on_stop = yes returns all guests
 *   to their maximum (this host's free memory, less the 1 GiB reserve,
 *   has room for it; a plain stop would keep the targets).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet.h"
#include "testutil.h"
#include "tu_hv.h"

#define MIB		1024ULL
#define NVM		3
#define RAMP		2		/* index of the ramping guest */
#define RAMP_MIB	768
#define IDLE_MIB	384
/* The guests' pool: less than the 1,536 MiB they could hold, more than
 * they need at the ramp's peak (about 620 + 2 x 220 MiB). */
#define POOL_MIB	1152
/* mono: 50 MiB -> 400 MiB in 25 MiB steps a second, held 5 s, after 20 s
 * in which the host shrinks the guest toward its need. */
#define MONO		"mm_test_mono:50M:400M:25M:1000:5000:20000"
#define MONO_PEAK_MIB	400

static const char *const names[NVM] = { "idle1", "idle2", "ramp" };
static const unsigned max_mib[NVM] = { IDLE_MIB, IDLE_MIB, RAMP_MIB };

static struct {
	struct fleet f;
	struct vm *vms[NVM];	/* the fleet's */
	struct fleet_record rec;
} F;

static int
setup(void **state)
{
	static const struct fleet_param params[] = {
		/* A short hold and large steps down, so a test of a
		 * minute sees guests shrink (the default holds a calm
		 * guest 30 s and gives back 5 % a round). */
		{ "hold_ms", 2000 },
		{ "shrink_pct", 25 },
		/* Emulated guests (TCG) stall now and then: PSI below
		 * 20 % is that, not a lack of memory. */
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
		{ "guest_capacity_kib", POOL_MIB * MIB },
	};

	(void)state;
	vm_require();
	memset(&F, 0, sizeof(F));
	F.rec.names = names;
	F.rec.max_mib = max_mib;
	F.rec.n = NVM;
	fleet_record(&F.f, &F.rec);
	fleet_open(&F.f, "test_vm_fleet");
	fleet_start_scheduler(&F.f, 0, params, 5);
	fleet_start_collector(&F.f, NULL);
	fleet_start_actuator(&F.f, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fleet_close(&F.f);
	return 0;
}

static struct vm *
boot(int k, const char *workload)
{
	struct vm *vm = fleet_boot(&F.f, names[k], max_mib[k], workload);

	assert_non_null(vm);
	return vm;
}

/* The newest decision for guest k, NULL if none. */
static const struct fleet_decision *
last_decision(int k)
{
	for (size_t i = F.rec.ndec; i-- > 0;)
		if (F.rec.dec[i].vm == k)
			return &F.rec.dec[i];
	return NULL;
}

static bool
all_fresh(void)
{
	return fleet_all_fresh(&F.rec);
}

static bool
all_at_max(void)
{
	return fleet_all_at_max(&F.rec);
}

/*
 * The targets in force after each batch of decisions (a guest with none
 * yet holds its maximum) fit in the pool; returns the largest sum. Sets
 * *idle_at_peak to the idle guests' targets when the ramp's target was
 * highest.
 */
static uint64_t
pool_sums(uint64_t idle_at_peak[2])
{
	uint64_t target[NVM], worst = 0, peak = 0;
	bool decided[NVM] = { false };

	for (int k = 0; k < NVM; k++)
		target[k] = max_mib[k] * MIB;
	for (size_t i = 0; i < F.rec.ndec; i++) {
		uint64_t sum = 0;
		bool all = true;

		target[F.rec.dec[i].vm] = F.rec.dec[i].target_kib;
		decided[F.rec.dec[i].vm] = true;
		if (i + 1 < F.rec.ndec && F.rec.dec[i + 1].batch == F.rec.dec[i].batch)
			continue;
		/* Counted once every guest had a decision. */
		for (int k = 0; k < NVM; k++) {
			sum += target[k];
			all = all && decided[k];
		}
		if (all && sum > worst)
			worst = sum;
		if (F.rec.dec[i].vm == RAMP && target[RAMP] > peak) {
			peak = target[RAMP];
			idle_at_peak[0] = target[0];
			idle_at_peak[1] = target[1];
		}
	}
	return worst;
}

static void
print_decisions(int k)
{
	for (size_t i = 0; i < F.rec.ndec; i++)
		if (F.rec.dec[i].vm == k)
			printf("  decision %s at %llu ms: target %llu MiB, used "
			    "%.0f MiB, need %.0f MiB: %s\n", names[k],
			    (unsigned long long)(F.rec.dec[i].rx_ms - F.rec.dec[0].rx_ms),
			    (unsigned long long)(F.rec.dec[i].target_kib / MIB),
			    F.rec.dec[i].used_kib / MIB, F.rec.dec[i].need_kib / MIB,
			    F.rec.dec[i].reason);
}

/* The ramp, as the guest's console and the host's reports saw it. */
struct ramp_watch {
	unsigned next_mib;	/* the next "mono: held" value looked for */
	uint64_t held_at_ms[MONO_PEAK_MIB / 25 + 1];
	uint64_t covered_at_ms[MONO_PEAK_MIB / 25 + 1];
	bool peak, done;
};

/*
 * Run the loop for up to timeout_ms while following the ramp: when the
 * guest says "mono: held N MiB" (rising), and when the host's balloon for
 * it first covers N MiB plus what the guest used before (the ramp is on
 * top of it). Returns when mono says it is done.
 */
static void
watch_ramp(struct ramp_watch *w, uint64_t base_kib, unsigned timeout_ms)
{
	char needle[64];

	for (unsigned t = 0; t < timeout_ms && !w->done; t += 100) {
		unsigned i = w->next_mib / 25;

		snprintf(needle, sizeof(needle), "mono: held %u MiB",
		    w->next_mib);
		if (!w->peak && vm_wait_console(F.vms[RAMP], needle, 0, NULL,
		    0)) {
			w->held_at_ms[i] = uv_now(&F.f.loop);
			if (w->next_mib == MONO_PEAK_MIB)
				w->peak = true;
			else
				w->next_mib += 25;
		}
		for (unsigned j = 50 / 25; j <= MONO_PEAK_MIB / 25; j++)
			if (w->held_at_ms[j] != 0 && w->covered_at_ms[j] == 0 &&
			    F.rec.seen[RAMP].actual_kib >= base_kib + j * 25 * MIB)
				w->covered_at_ms[j] = uv_now(&F.f.loop);
		w->done = vm_wait_console(F.vms[RAMP], "mono: done", 0, NULL,
		    0);
		tu_run_for(&F.f.loop, 100);
	}
}

static void
test_vm_fleet_balloons_follow_ramp(void **state)
{
	struct ramp_watch w = { .next_mib = 50 };
	uint64_t before_kib, base_kib, lag, worst_lag = 0, peak_target = 0;
	const struct fleet_decision *d;
	unsigned late = 0;

	(void)state;
	F.vms[0] = boot(0, NULL);
	F.vms[1] = boot(1, NULL);
	F.vms[RAMP] = boot(RAMP, MONO);
	if (!tu_run_until_fn(&F.f.loop, all_fresh, 20000))
		fail_msg("the collector's reports never carried 3 fresh agent "
		    "samples (%u reports)", F.rec.reports);

	/* Before the ramp: the host shrinks the guest toward its need. */
	if (!vm_wait_console(F.vms[RAMP], "mono: start", 60000, NULL, 0)) {
		vm_dump_console(F.vms[RAMP]);
		fail_msg("mono did not start");
	}
	tu_run_for(&F.f.loop, 200);
	before_kib = F.rec.seen[RAMP].actual_kib;
	base_kib = F.rec.seen[RAMP].used_kib;
	printf("vm fleet: before the ramp \"ramp\" holds %llu MiB (uses "
	    "%llu MiB, max %u MiB)\n", (unsigned long long)before_kib / MIB,
	    (unsigned long long)base_kib / MIB, RAMP_MIB);
	print_decisions(RAMP);
	assert_true(before_kib < (RAMP_MIB - 128) * MIB);

	watch_ramp(&w, base_kib, 90000);
	if (!w.done) {
		vm_dump_console(F.vms[RAMP]);
		fail_msg("mono did not finish (reached %u MiB)", w.next_mib);
	}
	/* The guest got what it took, in time, and nothing was killed. */
	for (unsigned j = 50 / 25; j <= MONO_PEAK_MIB / 25; j++) {
		if (w.covered_at_ms[j] == 0) {
			printf("  %u MiB held: never covered\n", j * 25);
			late++;
			continue;
		}
		lag = w.covered_at_ms[j] > w.held_at_ms[j] ?
		    w.covered_at_ms[j] - w.held_at_ms[j] : 0;
		if (lag > worst_lag)
			worst_lag = lag;
	}
	for (size_t i = 0; i < F.rec.ndec; i++)
		if (F.rec.dec[i].vm == RAMP && F.rec.dec[i].target_kib > peak_target)
			peak_target = F.rec.dec[i].target_kib;
	print_decisions(RAMP);
	printf("vm fleet: \"ramp\" peak %u MiB on top of %llu MiB: target up "
	    "to %llu MiB, balloon up to %llu MiB; a step was covered by the "
	    "balloon at worst %llu ms after the guest took it\n",
	    MONO_PEAK_MIB, (unsigned long long)base_kib / MIB,
	    (unsigned long long)peak_target / MIB,
	    (unsigned long long)F.rec.seen[RAMP].max_actual_kib / MIB,
	    (unsigned long long)worst_lag);
	if (vm_wait_console(F.vms[RAMP], "Out of memory", 0, NULL, 0) ||
	    vm_wait_console(F.vms[RAMP], "oom-kill", 0, NULL, 0)) {
		vm_dump_console(F.vms[RAMP]);
		fail_msg("the ramping guest OOM-killed");
	}
	assert_true(vm_wait_console(F.vms[RAMP],
	    "mm-init: workload mm_test_mono exited 0", 2000, NULL, 0));
	assert_int_equal(late, 0);
	assert_true(peak_target >= base_kib + MONO_PEAK_MIB * MIB);
	/* Ahead of the guest: the balloon never trailed a step by more
	 * than a few reports (TCG, three guests on a shared machine). */
	assert_true(worst_lag <= 5000);

	/* The pool held, and the ramp's memory came from the idle guests:
	 * while it peaked they held at most their need plus a share of
	 * what the pool had left. */
	{
		uint64_t idle_at_peak[2] = { 0, 0 }, worst;

		worst = pool_sums(idle_at_peak);
		print_decisions(0);
		printf("vm fleet: pool %u MiB, targets at most %llu MiB "
		    "together; at the ramp's peak the idle guests held %llu "
		    "and %llu MiB\n", POOL_MIB,
		    (unsigned long long)worst / MIB,
		    (unsigned long long)idle_at_peak[0] / MIB,
		    (unsigned long long)idle_at_peak[1] / MIB);
		assert_true(worst > 0 && worst <= POOL_MIB * MIB);
		assert_true(peak_target + idle_at_peak[0] + idle_at_peak[1] <=
		    POOL_MIB * MIB);
		for (int k = 0; k < 2; k++)
			assert_true(idle_at_peak[k] <= (IDLE_MIB - 64) * MIB);
	}
	for (int k = 0; k < 2; k++) {
		d = last_decision(k);
		assert_non_null(d);
		printf("vm fleet: \"%s\" at %llu MiB of %u (uses %.0f MiB, "
		    "needs %.0f MiB)\n", names[k],
		    (unsigned long long)d->target_kib / MIB, max_mib[k],
		    d->used_kib / MIB, d->need_kib / MIB);
		assert_true(F.rec.seen[k].min_actual_kib <= d->target_kib + 8 * MIB);
	}

	/* Every decision: a reason, inside min..max, never below the need
	 * (unless that is above the maximum), except a cut to the guest's
	 * share of a pool too small for every need (before the scheduler
	 * has heard from all three, the silent one holds its maximum), or
	 * growth as far as the pool has memory free, never below what the
	 * guest uses. */
	for (size_t i = 0; i < F.rec.ndec; i++) {
		d = &F.rec.dec[i];
		assert_true(d->has_reason);
		assert_true(d->min_kib >= 0 && d->max_kib > 0);
		assert_true((double)d->target_kib >= d->min_kib);
		assert_true((double)d->target_kib <= d->max_kib);
		assert_true(d->target_kib <= max_mib[d->vm] * MIB);
		if (strncmp(d->reason, "budget:", 7) == 0)
			assert_true((double)d->target_kib >= d->used_kib);
		else if (strncmp(d->reason, "capacity:", 9) != 0)
			assert_true((double)d->target_kib >= (d->need_kib <
			    d->max_kib ? d->need_kib : d->max_kib));
	}
	for (int k = 0; k < NVM; k++)
		assert_false(F.rec.seen[k].out_of_range);

	/* Stop: the scheduler first, then the actuator (release_on_stop)
	 * gives every guest its maximum back, which this host's free
	 * memory allows. */
	assert_int_equal(fleet_stop(&F.f, &F.f.sch), 0);
	assert_int_equal(fleet_stop(&F.f, &F.f.act), 0);
	if (!tu_run_until_fn(&F.f.loop, all_at_max, 15000))
		fail_msg("after the actuator stopped the guests hold %llu, "
		    "%llu, %llu MiB, not their maximum",
		    (unsigned long long)F.rec.seen[0].actual_kib / MIB,
		    (unsigned long long)F.rec.seen[1].actual_kib / MIB,
		    (unsigned long long)F.rec.seen[2].actual_kib / MIB);
	printf("vm fleet: %zu decisions, %u reports; released: all guests "
	    "back at their maximum\n", F.rec.ndec, F.rec.reports);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_vm_fleet_balloons_follow_ramp, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
