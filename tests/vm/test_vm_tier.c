/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host tier (issue 18, part 3) on a real kernel: this host has neither
 * swap nor a slower node, so the guests play the host. Each runs
 * mm_test_tier, which compiles common/host/tier.c as mm-actuator does and
 * drives it on a child holding 384 MiB, 64 MiB of it written every 100 ms:
 * - with a zram swap, process_madvise(MADV_PAGEOUT) of the chunks idle for
 *   three 2 s windows takes the child's resident memory down by at least
 *   half of its cold 320 MiB, the hot part not stalled past 10 % (PSI);
 * - in a two-node guest whose node 1 is named slower, move_pages(2) moves
 *   at least as much to node 1;
 * - without swap or a second node the probe says so and nothing runs.
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

#include "testutil.h"
#include "vm.h"

#define COLD_MIB	320	/* 384 taken, 64 kept hot */

struct done {
	unsigned long long rss0, rss1, moved, swap, slow0, slow1, faults;
	unsigned passes, node;
	double psi;
};

static bool
parse_done(const char *line, struct done *d)
{
	const char *p = strstr(line, "rss ");

	return p != NULL && sscanf(p, "rss %llu -> %llu MiB, moved %llu MiB "
	    "in %u passes, swap %llu MiB, node%u pages %llu -> %llu MiB, "
	    "major faults %llu, psi some avg10 %lf", &d->rss0, &d->rss1,
	    &d->moved, &d->passes, &d->swap, &d->node, &d->slow0, &d->slow1,
	    &d->faults, &d->psi) == 10;
}

static void
test_vm_tier(void **state)
{
	char *dir = tu_tmpdir(), line[512];
	struct vm_opts o[3] = {
		{ .id = "tier-swap", .dir = dir, .mem_mib = 1024,
		  .workload = "mm_test_tier:384M:64M:swap", .zram = true },
		{ .id = "tier-node", .dir = dir, .mem_mib = 1536, .numa = true,
		  .workload = "mm_test_tier:384M:64M:node1" },
		{ .id = "tier-none", .dir = dir, .mem_mib = 768,
		  .workload = "mm_test_tier:384M:64M:swap" },
	};
	struct vm *vm[3];
	struct done d[2];

	(void)state;
	for (int i = 0; i < 3; i++) {
		vm[i] = vm_start(&o[i]);
		assert_non_null(vm[i]);
	}
	for (int i = 0; i < 2; i++) {
		if (!vm_wait_console(vm[i], "tier: done", 180000, line,
		    sizeof(line)) || !parse_done(line, &d[i])) {
			vm_dump_console(vm[i]);
			fail_msg("%s: no \"tier: done\" line", o[i].id);
		}
		printf("%s: %s\n", o[i].id, line);
	}
	if (!vm_wait_console(vm[2], "tier: skipped", 60000, line,
	    sizeof(line))) {
		vm_dump_console(vm[2]);
		fail_msg("tier-none: no \"tier: skipped\" line");
	}
	printf("tier-none: %s\n", line);
	assert_non_null(strstr(line, "no swap and no slower NUMA node"));

	/* Swap: the child's resident memory fell by half its cold part or
	 * more, into the swap, and its hot part kept running. */
	assert_true(d[0].passes > 0);
	assert_true(d[0].rss0 >= d[0].rss1 + COLD_MIB / 2);
	assert_true(d[0].swap >= COLD_MIB / 2);
	assert_true(d[0].psi <= 10.0);
	/* The hot 64 MiB stayed: written every 100 ms, never idle. */
	assert_true(d[0].rss1 >= 64);
	/* Slower node: as much went to node 1. */
	assert_true(d[1].passes > 0);
	assert_true(d[1].slow1 >= d[1].slow0 + COLD_MIB / 2);
	assert_true(d[1].psi <= 10.0);
	for (int i = 0; i < 3; i++)
		vm_stop(vm[i]);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_tier),
	};

	vm_require();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
