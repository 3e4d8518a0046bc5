/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proactive reclaim, the whole loop, on real guests under the real daemons
 * (issue 18): two guests with a zram swap take 1 GiB each and keep 200 MiB
 * of it hot; their agents estimate cold memory every 5 s. The policy opts
 * one of them in (a [vm] rule's reclaim = yes): the scheduler asks for its
 * cold memory while it is calm, the actuator hands the request to its
 * agent, which reclaims into zram within the stall budget, and with free
 * page reporting the host gets the memory back: QEMU's resident memory of
 * that guest falls by more than half of the cold 824 MiB within a few
 * minutes. The other guest, not opted in, keeps it all.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fleet.h"
#include "testutil.h"

#define MIB		1024ULL
#define COLD_MIB	824

static struct fleet F;
static struct vm *vm[2];
static const char *const ids[2] = { "loop-on", "loop-off" };

static int
setup(void **state)
{
	static Mm__V1__VmLimits lim = MM__V1__VM_LIMITS__INIT;
	static Mm__V1__VmRule rule = MM__V1__VM_RULE__INIT;
	static Mm__V1__VmRule *rules[] = { &rule };

	(void)state;
	vm_require();
	lim.has_reclaim = true;
	lim.reclaim = true;
	rule.pattern = "loop-on";
	rule.limits = &lim;
	F.rules = rules;
	F.n_rules = 1;
	fleet_open(&F, "test_vm_coldloop");
	fleet_start_collector(&F, NULL);
	fleet_start_actuator(&F, NULL);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fleet_close(&F);
	return 0;
}

static void
test_vm_coldloop_opted_in_guest_gives_back_cold_memory(void **state)
{
	static const struct fleet_param params[] = {
		{ "reclaim_idle_ms", 5000 },
		{ "reclaim_psi_budget_pct", 10 },
		{ "reclaim_interval_ms", 30000 },
	};
	uint64_t rss0[2], rss[2], low[2];
	double t0, took = -1;

	(void)state;
	for (int i = 0; i < 2; i++) {
		struct vm_opts o = {
			.id = ids[i],
			.mem_mib = 1536,
			.workload = "mm_test_cold:1024M:200M",
			.interval = "500ms",
			.resend = "1s",
			.cold = "5s",
			.zram = true,
		};

		vm[i] = fleet_boot_opts(&F, &o);
		assert_non_null(vm[i]);
	}
	for (int i = 0; i < 2; i++)
		if (!vm_wait_console(vm[i], "cold: touched", 60000, NULL, 0)) {
			vm_dump_console(vm[i]);
			fail_msg("%s: the workload did not start", ids[i]);
		}
	for (int i = 0; i < 2; i++)
		low[i] = rss0[i] = vm_resident_kib(vm[i]);
	/* Only now the scheduler: it decides from the guests' cold. */
	fleet_start_scheduler(&F, 0, params, sizeof(params) /
	    sizeof(params[0]));
	t0 = vm_now_s();
	while (vm_now_s() - t0 < 180) {
		tu_run_for(&F.loop, 1000);
		for (int i = 0; i < 2; i++) {
			rss[i] = vm_resident_kib(vm[i]);
			if (rss[i] < low[i])
				low[i] = rss[i];
		}
		if (took < 0 && rss0[0] > low[0] + COLD_MIB * MIB / 2) {
			took = vm_now_s() - t0;
			/* Let the other guest show it stays. */
			t0 = vm_now_s() - 150;
		}
	}
	fprintf(stderr, "coldloop: opted in: QEMU resident %llu -> %llu MiB "
	    "(half the cold part back after %.0f s); not opted in: %llu -> "
	    "%llu MiB\n", (unsigned long long)rss0[0] / MIB,
	    (unsigned long long)low[0] / MIB, took,
	    (unsigned long long)rss0[1] / MIB,
	    (unsigned long long)low[1] / MIB);
	if (took < 0)
		vm_dump_console(vm[0]);
	assert_true(took >= 0);
	assert_true(rss0[1] < low[1] + 64 * MIB);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_vm_coldloop_opted_in_guest_gives_back_cold_memory),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, setup, teardown);
}
