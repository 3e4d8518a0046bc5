/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cold-memory estimate on a real guest (issue 18, part 1): a guest
 * takes 1 GiB, keeps 200 MiB of it hot and leaves the rest alone; its
 * agent, aging MGLRU every 5 s, reports most of the 824 cold MiB as idle
 * for at least 5 s and never the hot part; a guest whose agent has no
 * estimate ([cold] interval 0, MGLRU off as the Debian kernel boots) says
 * why and reports none. Read through the kvm driver, as the collector
 * reads it.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include <cmocka.h>

#include "hv.h"
#include "log.h"
#include "testutil.h"
#include "vm.h"

#define MIB		1024ULL
#define ALLOC_MIB	1024
#define HOT_MIB		200

struct seen {
	unsigned samples;
	size_t buckets;		/* in the last sample */
	uint64_t idle_ms;	/* its shortest bucket */
	uint64_t anon_kib;
	uint64_t max_anon_kib;	/* the most seen idle >= 4 s */
};

static struct vm_host host;
static struct seen seen[2];

static const char *const ids[2] = { "cold-on", "cold-off" };

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
		s->samples++;
		s->buckets = g->n_cold;
		if (g->n_cold == 0)
			continue;
		s->idle_ms = g->cold[0]->idle_ms;
		s->anon_kib = g->cold[0]->anon_kib;
		if (s->idle_ms >= 4000 && s->anon_kib > s->max_anon_kib)
			s->max_anon_kib = s->anon_kib;
	}
}

static void
test_vm_cold_estimate(void **state)
{
	struct vm *vm[2];
	double t0;

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
			.cold = i == 0 ? "5s" : NULL,
		};

		vm[i] = vm_start(&o);
		assert_non_null(vm[i]);
	}
	for (int i = 0; i < 2; i++)
		if (!vm_wait_console(vm[i], "cold: touched", 60000, NULL, 0)) {
			vm_dump_console(vm[i]);
			fail_msg("%s: the workload did not start", ids[i]);
		}
	/* Three agings at least, then the cold part stays cold. */
	t0 = vm_now_s();
	while (vm_now_s() - t0 < 60 &&
	    seen[0].max_anon_kib < (ALLOC_MIB - HOT_MIB) * MIB * 3 / 4)
		tu_run_for(&host.loop, 500);
	tu_run_for(&host.loop, 6000);
	fprintf(stderr, "cold: %zu buckets, the shortest idle %.1f s holds "
	    "%llu MiB anon (at most %llu MiB seen) of %d MiB left cold; "
	    "%.0f s after the workload began; the other guest %zu buckets\n",
	    seen[0].buckets, (double)seen[0].idle_ms / 1000,
	    (unsigned long long)seen[0].anon_kib / MIB,
	    (unsigned long long)seen[0].max_anon_kib / MIB,
	    ALLOC_MIB - HOT_MIB, vm_now_s() - t0, seen[1].buckets);
	if (seen[0].max_anon_kib < (ALLOC_MIB - HOT_MIB) * MIB * 3 / 4)
		vm_dump_console(vm[0]);
	assert_true(seen[0].samples > 0 && seen[1].samples > 0);
	/* Most of the cold part is found... */
	assert_true(seen[0].max_anon_kib >=
	    (ALLOC_MIB - HOT_MIB) * MIB * 3 / 4);
	/* ...and the hot part is not in it (the guest's own few MiB may). */
	assert_true(seen[0].max_anon_kib <=
	    (ALLOC_MIB - HOT_MIB + 64) * MIB);
	/* No estimate: said on the console, none reported. */
	assert_true(vm_wait_console(vm[1], "no cold-memory estimate", 1000,
	    NULL, 0));
	assert_int_equal(seen[1].buckets, 0);
	for (int i = 0; i < 2; i++)
		vm_stop(vm[i]);
	vm_host_close(&host);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_cold_estimate),
	};

	vm_require();
	if (getenv("MM_TEST_DEBUG") != NULL)
		log_init("test_vm_cold", 1, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
