/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stand-in mover for mm_numa_check: migrate_pages(2) straight from
 * node to node, by raw syscall so the guest needs no libnuma.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa_mover.h"

int
numa_mover_move(pid_t pid, unsigned from, unsigned to)
{
	unsigned long old_nodes = 1UL << from, new_nodes = 1UL << to;
	long r;

	r = syscall(SYS_migrate_pages, pid, 8 * sizeof(old_nodes), &old_nodes,
	    &new_nodes);
	return r < 0 ? -errno : 0;
}

const char *
numa_mover_name(void)
{
	return "migrate_pages";
}
