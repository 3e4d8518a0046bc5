/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NUMA inside a real guest: a two-node test guest runs mm_numa_check,
 * which binds a child's memory to node 0, moves it to node 1 and checks
 * the child's numa_maps (tests/vm/guest/mm_numa_check.c). The mover is
 * migrate_pages(2) until the actuator's migration code takes its place.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "vm.h"

static char *dir;

static void
test_vm_numa_pages_move(void **state)
{
	struct vm_opts o = {
		.id = "numa",
		.mem_mib = 512,
		.numa = true,
		.workload = "mm_numa_check:64M:0:1",
	};
	char line[512];
	struct vm *vm;

	(void)state;
	o.dir = dir;
	vm = vm_start(&o);
	assert_non_null(vm);
	if (!vm_wait_console(vm, "mm-init: workload mm_numa_check exited",
	    60000, NULL, 0)) {
		vm_dump_console(vm);
		fail_msg("mm_numa_check did not finish within 60 s");
	}
	if (vm_wait_console(vm, "numa: pages", 0, line, sizeof(line)))
		printf("vm \"numa\": %s\n", line);
	if (!vm_wait_console(vm, "numa: ok", 0, NULL, 0) ||
	    !vm_wait_console(vm, "mm_numa_check exited 0", 0, NULL, 0)) {
		vm_dump_console(vm);
		fail_msg("the pages did not move from node 0 to node 1");
	}
	vm_stop(vm);
}

static int
setup(void **state)
{
	(void)state;
	vm_require();
	dir = tu_tmpdir();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tu_rmtree(dir);
	free(dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_numa_pages_move),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
