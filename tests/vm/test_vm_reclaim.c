/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proactive reclaim on real guests (issue 18, part 2, the guest's side):
 * two guests with a zram swap take 1 GiB each and keep 200 MiB of it hot.
 * The host asks one agent, on its control port, to reclaim up to 1 GiB
 * with a stall budget of 10 % (hv_reclaim(), as mm-actuator would); the
 * agent reclaims a step at a time into zram, the guest's used memory falls
 * by more than half of the cold 824 MiB, and with free page reporting the
 * host gets it back: QEMU's resident memory falls as much, without a
 * balloon command. When a step begins to stall the hot loop above the
 * budget, the agent stops there; the guest's PSI stays within it. The
 * other guest, asked nothing, keeps what it holds.
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
#include "hv.h"
#include "log.h"
#include "testutil.h"
#include "vm.h"

#define MIB		1024ULL
#define COLD_MIB	824	/* 1024 taken, 200 kept hot */
#define BUDGET_PCT	10.0

struct seen {
	uint64_t used_kib;	/* the last sample's, as the scheduler counts */
	double psi10;		/* PSI some avg10 */
	bool has_reclaim;
	uint64_t reclaim_seq, reclaim_kib;
	int reclaim_state;
	double reclaim_stall;
};

static struct vm_host host;
static struct seen seen[2];
static const char *const ids[2] = { "reclaim-on", "reclaim-off" };

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	const Mm__V1__GuestStats *g = vm->guest;

	(void)hv;
	(void)arg;
	if (ev != HV_EV_GUEST || g == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		struct seen *s = &seen[i];

		if (strcmp(vm->id, ids[i]) != 0)
			continue;
		(void)fleet_used_kib(g, &s->used_kib);
		if (g->psi != NULL && g->psi->has_some_avg10_pct)
			s->psi10 = g->psi->some_avg10_pct;
		if (g->reclaim != NULL) {
			s->has_reclaim = true;
			s->reclaim_seq = g->reclaim->seq;
			s->reclaim_kib = g->reclaim->reclaimed_kib;
			s->reclaim_state = (int)g->reclaim->state;
			s->reclaim_stall = g->reclaim->stall_pct;
		}
	}
}

static void
test_vm_reclaim_cold_into_zram(void **state)
{
	struct vm *vm[2];
	uint64_t used0[2], rss0[2], used1[2], rss1[2];
	double t0;
	int r = -1;

	(void)state;
	vm_host_open(&host, event_cb, NULL);
	for (int i = 0; i < 2; i++) {
		struct vm_opts o = {
			.id = ids[i],
			.dir = host.dir,
			.mem_mib = 1536,
			.workload = "mm_test_cold:1024M:200M",
			.interval = "500ms",
			.resend = "1s",
			.zram = true,
		};

		vm[i] = vm_start(&o);
		assert_non_null(vm[i]);
	}
	for (int i = 0; i < 2; i++)
		if (!vm_wait_console(vm[i], "cold: touched", 60000, NULL, 0)) {
			vm_dump_console(vm[i]);
			fail_msg("%s: the workload did not start", ids[i]);
		}
	tu_run_for(&host.loop, 3000);
	for (int i = 0; i < 2; i++) {
		used0[i] = seen[i].used_kib;
		rss0[i] = vm_resident_kib(vm[i]);
	}
	/* The control port comes up with the agent: try for a while. */
	t0 = vm_now_s();
	while (vm_now_s() - t0 < 10 &&
	    (r = hv_reclaim(host.hv, ids[0], 1, 1024 * MIB, BUDGET_PCT)) < 0)
		tu_run_for(&host.loop, 500);
	assert_int_equal(r, 0);
	t0 = vm_now_s();
	while (vm_now_s() - t0 < 120 && (!seen[0].has_reclaim ||
	    seen[0].reclaim_state == MM__V1__RECLAIM_STATE__RECLAIM_STATE_RUNNING))
		tu_run_for(&host.loop, 500);
	/* Reports and free page reporting catch up. */
	tu_run_for(&host.loop, 5000);
	for (int i = 0; i < 2; i++) {
		used1[i] = seen[i].used_kib;
		rss1[i] = vm_resident_kib(vm[i]);
	}
	fprintf(stderr, "reclaim: state %d after %.0f s, %llu MiB reclaimed, "
	    "last step's stall %.1f %%, PSI avg10 %.1f %%; guest used %llu "
	    "-> %llu MiB, QEMU resident %llu -> %llu MiB; the other guest "
	    "used %llu -> %llu MiB, resident %llu -> %llu MiB\n",
	    seen[0].reclaim_state, vm_now_s() - t0,
	    (unsigned long long)seen[0].reclaim_kib / MIB,
	    seen[0].reclaim_stall, seen[0].psi10,
	    (unsigned long long)used0[0] / MIB,
	    (unsigned long long)used1[0] / MIB,
	    (unsigned long long)rss0[0] / MIB,
	    (unsigned long long)rss1[0] / MIB,
	    (unsigned long long)used0[1] / MIB,
	    (unsigned long long)used1[1] / MIB,
	    (unsigned long long)rss0[1] / MIB,
	    (unsigned long long)rss1[1] / MIB);
	if (!seen[0].has_reclaim)
		vm_dump_console(vm[0]);
	assert_true(seen[0].has_reclaim);
	assert_int_equal(seen[0].reclaim_seq, 1);
	/* Done, out of cold memory, or backed off when a step began to
	 * stall the hot part: each is an end, none a failure. */
	assert_true(seen[0].reclaim_state ==
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE ||
	    seen[0].reclaim_state ==
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_EXHAUSTED ||
	    seen[0].reclaim_state ==
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE);
	assert_true(seen[0].reclaim_kib >= COLD_MIB * MIB / 2);
	/* More than half of the cold part left the guest... */
	assert_true(used0[0] > used1[0] + COLD_MIB * MIB / 2);
	/* ...and the host got it back, with no balloon command. */
	assert_true(rss0[0] > rss1[0] + COLD_MIB * MIB / 2);
	/* The hot part kept running within the budget (the step that went
	 * above it was the last). */
	assert_true(seen[0].psi10 <= BUDGET_PCT);
	/* Not asked: nothing moves. */
	assert_false(seen[1].has_reclaim);
	assert_true(used1[1] + 64 * MIB > used0[1]);
	assert_true(rss1[1] + 64 * MIB > rss0[1]);
	for (int i = 0; i < 2; i++)
		vm_stop(vm[i]);
	vm_host_close(&host);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_reclaim_cold_into_zram),
	};

	vm_require();
	if (getenv("MM_TEST_DEBUG") != NULL)
		log_init("test_vm_reclaim", 1, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
