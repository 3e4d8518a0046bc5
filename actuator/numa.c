/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NUMA moves: which nodes a MigrateNuma takes a VM's pages from, within
 * its page quota, and the migrate_pages(2) call on the VM's process. The
 * decision is separate from the system call so that it is tested without a
 * multi-node machine.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "actuator.h"

int
act_numa_plan(uint64_t online_mask, const uint64_t *pages,
    const uint32_t *from_nodes, size_t n_from, uint32_t to_node,
    uint64_t max_pages, struct act_numa_plan *ret)
{
	uint64_t want = 0, picked = 0, sum = 0, total = 0;
	unsigned node, best;
	size_t i;

	memset(ret, 0, sizeof(*ret));
	if (to_node >= MSG_NODES_MAX || !(online_mask & (1ull << to_node))) {
		snprintf(ret->why, sizeof(ret->why), "node %u is not on this "
		    "host", to_node);
		return -EINVAL;
	}
	if (n_from == 0)
		want = online_mask;
	for (i = 0; i < n_from; i++)
		if (from_nodes[i] < MSG_NODES_MAX)
			want |= 1ull << from_nodes[i];
	want &= online_mask & ~(1ull << to_node);
	for (node = 0; node < MSG_NODES_MAX; node++)
		if ((want & (1ull << node)) && pages[node] == 0)
			want &= ~(1ull << node);
	if (want == 0) {
		snprintf(ret->why, sizeof(ret->why), "nothing to move: no "
		    "pages on the source nodes%s",
		    online_mask == (1ull << to_node) ? " (single node host)" :
		    "");
		return -ENOENT;
	}
	/* Whole nodes, smallest first, while the quota holds. */
	for (;;) {
		best = MSG_NODES_MAX;
		for (node = 0; node < MSG_NODES_MAX; node++)
			if ((want & ~picked & (1ull << node)) &&
			    (best == MSG_NODES_MAX ||
			    pages[node] < pages[best]))
				best = node;
		if (best == MSG_NODES_MAX)
			break;
		if (max_pages != 0 && sum + pages[best] > max_pages)
			break;
		picked |= 1ull << best;
		sum += pages[best];
	}
	for (node = 0; node < MSG_NODES_MAX; node++)
		if (want & (1ull << node))
			total += pages[node];
	if (picked == 0) {
		snprintf(ret->why, sizeof(ret->why), "every source node holds "
		    "more than the quota of %llu pages (%llu in all)",
		    (unsigned long long)max_pages, (unsigned long long)total);
		return -ENOENT;
	}
	ret->from_mask = picked;
	ret->to_mask = 1ull << to_node;
	ret->pages = sum;
	return 0;
}

int
act_numa_online(const char *sys_root, uint64_t *ret_mask)
{
	char path[4200];
	struct dirent *e;
	uint64_t mask = 0;
	unsigned long n;
	char *end;
	DIR *d;

	snprintf(path, sizeof(path), "%s/devices/system/node", sys_root);
	d = opendir(path);
	if (d == NULL) {
		if (errno != ENOENT)
			return -errno;
		*ret_mask = 1;	/* no NUMA: node 0 only */
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "node", 4) != 0 ||
		    e->d_name[4] < '0' || e->d_name[4] > '9')
			continue;
		n = strtoul(e->d_name + 4, &end, 10);
		if (*end == '\0' && n < MSG_NODES_MAX)
			mask |= 1ull << n;
	}
	closedir(d);
	*ret_mask = mask != 0 ? mask : 1;
	return 0;
}

long
act_migrate_pages(pid_t pid, uint64_t from_mask, uint64_t to_mask)
{
	unsigned long from = (unsigned long)from_mask;
	unsigned long to = (unsigned long)to_mask;
	long r;

	r = syscall(SYS_migrate_pages, (long)pid, (unsigned long)MSG_NODES_MAX
	    + 1, &from, &to);
	return r < 0 ? -errno : r;
}
