/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Free page reporting on real guests (issue 18, part 4): two guests of
 * 1 GiB, one with the balloon's free-page-reporting on and one with it
 * off, each take 512 MiB, hold it and free it. The kvm driver knows which
 * balloon reports; the host's view of each VM (QEMU's resident memory,
 * read as the collector reads it for host_resident_kib) falls by most of
 * the 512 MiB within 10 s on the reporting guest, without a balloon
 * command, and stays on the other. The host's MemAvailable, which the
 * collector reports and the scheduler hands out (its growth budget), rises
 * with it: the scheduler sees the memory as the host's.
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

#include "hoststats.h"
#include "hv.h"
#include "log.h"
#include "testutil.h"
#include "vm.h"

#define MIB		1024ULL
#define GUEST_MIB	1024
#define FREED_MIB	512

static struct vm_host host;
/* What the driver says of each VM's balloon, once known: -1 unknown, 0
 * off, 1 on. */
static int fpr[2] = { -1, -1 };
static const char *const ids[2] = { "fpr-on", "fpr-off" };

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	(void)hv;
	(void)ev;
	(void)arg;
	/* Set with the QOM reply, before the first balloon event. */
	for (int i = 0; i < 2; i++)
		if (strcmp(vm->id, ids[i]) == 0 && vm->balloon_known)
			fpr[i] = vm->free_page_reporting;
}

/* The host's MemAvailable as the collector reads it for its report. */
static uint64_t
host_available_kib(void)
{
	Mm__V1__Meminfo mi;

	assert_int_equal(hs_read_meminfo("/proc", &mi), 0);
	assert_true(mi.has_available_kib);
	return mi.available_kib;
}

static void
test_vm_reporting_gives_freed_memory_back(void **state)
{
	struct vm *vm[2];
	uint64_t held[2], low[2], avail0, avail1 = 0;
	double t_freed, took = -1;

	(void)state;
	vm_host_open(&host, event_cb, NULL);
	for (int i = 0; i < 2; i++) {
		struct vm_opts o = {
			.id = ids[i],
			.dir = host.dir,
			.mem_mib = GUEST_MIB,
			/* 512 MiB after 2 s, held 4 s, then freed. */
			.workload = "mm_test_free:512M:4000:2000",
			.no_free_page_reporting = i == 1,
		};

		vm[i] = vm_start(&o);
		assert_non_null(vm[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (!vm_wait_console(vm[i], "free: held", 60000, NULL, 0)) {
			vm_dump_console(vm[i]);
			fail_msg("%s: the workload never held its memory",
			    ids[i]);
		}
		tu_run_for(&host.loop, 200);
		held[i] = vm_resident_kib(vm[i]);
	}
	for (int i = 0; i < 2; i++)
		assert_true(vm_wait_console(vm[i], "free: freed", 30000, NULL,
		    0));
	/* From the later of the two frees: both are gone by now. The
	 * host's MemAvailable with the memory still in QEMU: the reporting
	 * guest's pages go back 2 s after they are freed at the earliest. */
	avail0 = host_available_kib();
	t_freed = vm_now_s();
	low[0] = held[0];
	low[1] = held[1];
	while (vm_now_s() - t_freed < 10) {
		tu_run_for(&host.loop, 250);
		for (int i = 0; i < 2; i++) {
			uint64_t r = vm_resident_kib(vm[i]);

			if (r < low[i])
				low[i] = r;
		}
		if (took < 0 && held[0] - low[0] >= FREED_MIB * MIB * 3 / 4)
			took = vm_now_s() - t_freed;
	}
	for (int k = 0; k < 4; k++) {
		uint64_t a = host_available_kib();

		avail1 = a > avail1 ? a : avail1;
		tu_run_for(&host.loop, 250);
	}
	fprintf(stderr, "reporting: QEMU resident with reporting %llu -> "
	    "%llu MiB (%.1f s to give back 3/4 of %d MiB), without %llu -> "
	    "%llu MiB\n", (unsigned long long)held[0] / MIB,
	    (unsigned long long)low[0] / MIB, took, FREED_MIB,
	    (unsigned long long)held[1] / MIB,
	    (unsigned long long)low[1] / MIB);
	fprintf(stderr, "reporting: host MemAvailable %llu -> %llu MiB "
	    "(%+lld)\n", (unsigned long long)avail0 / MIB,
	    (unsigned long long)avail1 / MIB,
	    ((long long)avail1 - (long long)avail0) / (long long)MIB);
	/* The driver knows which balloon reports. */
	assert_int_equal(fpr[0], 1);
	assert_int_equal(fpr[1], 0);
	/* Most of it back within 10 s, without a balloon command. */
	assert_true(held[0] - low[0] >= FREED_MIB * MIB * 3 / 4);
	/* The host has it: half of it at least shows in MemAvailable (the
	 * host's other tenants move it too). */
	assert_true(avail1 >= avail0 + (held[0] - low[0]) / 2);
	/* Without reporting, QEMU keeps what the guest freed. */
	assert_true(held[1] - low[1] < 64 * MIB);
	for (int i = 0; i < 2; i++)
		vm_stop(vm[i]);
	vm_host_close(&host);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_reporting_gives_freed_memory_back),
	};

	vm_require();
	if (getenv("MM_TEST_DEBUG") != NULL)
		log_init("test_vm_reporting", 1, false);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
