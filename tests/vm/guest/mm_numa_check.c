/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_numa_check: inside a two-node guest, a child process binds <size> of
 * anonymous memory to node <from> and holds it; this process moves the
 * child's pages to node <to> with numa_mover_move() and checks, in the
 * child's /proc/<pid>/numa_maps, that the mapping's pages left <from> and
 * arrived on <to>. Prints one "numa: ..." line with the counts and "numa:
 * ok" or "numa: FAIL <why>"; exits 0 only on ok.
 *   mm_numa_check <size> <from> <to>
 * The mover is its own function (numa_mover.c) so that mm's migration code
 * can replace it once the actuator has one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest_util.h"
#include "numa_mover.h"

#define MPOL_BIND 2

/* Pages of the mapping at addr on each node, from /proc/<pid>/numa_maps. */
static int
count_pages(pid_t pid, unsigned long addr, unsigned long ret_n[2])
{
	char path[64], line[4096];
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *tok, *save;

		if (strtoul(line, NULL, 16) != addr)
			continue;
		found = 1;
		ret_n[0] = ret_n[1] = 0;
		for (tok = strtok_r(line, " \n", &save); tok != NULL;
		    tok = strtok_r(NULL, " \n", &save)) {
			unsigned node;
			unsigned long n;

			if (sscanf(tok, "N%u=%lu", &node, &n) == 2 &&
			    node < 2)
				ret_n[node] = n;
		}
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

static void
hold(size_t size, unsigned from, int wfd)
{
	unsigned long mask = 1UL << from;
	unsigned char *p;

	if (syscall(SYS_set_mempolicy, MPOL_BIND, &mask, 8 * sizeof(mask)) < 0) {
		perror("numa: set_mempolicy");
		_exit(1);
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		_exit(1);
	guest_touch(p, size, 1);
	/* Back to the default policy: a bound process's pages could not be
	 * moved off its nodes by migrate_pages(2). */
	syscall(SYS_set_mempolicy, 0, NULL, 0);
	if (write(wfd, &p, sizeof(p)) != sizeof(p))
		_exit(1);
	for (;;)
		pause();
}

int
main(int argc, char **argv)
{
	unsigned long before[2], after[2], addr, npages;
	unsigned from, to;
	int fds[2], r, status = 1;
	size_t size;
	void *p;
	pid_t pid;

	if (argc != 4) {
		fprintf(stderr, "usage: mm_numa_check <size> <from> <to>\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	size = guest_parse_size(argv[1]);
	from = (unsigned)atoi(argv[2]);
	to = (unsigned)atoi(argv[3]);
	npages = size / 4096;
	if (from > 1 || to > 1 || from == to || pipe(fds) < 0)
		return 2;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		hold(size, from, fds[1]);
	if (read(fds[0], &p, sizeof(p)) != sizeof(p)) {
		printf("numa: FAIL the child could not bind memory to node %u\n",
		    from);
		goto out;
	}
	addr = (unsigned long)p;
	if (count_pages(pid, addr, before) < 0) {
		printf("numa: FAIL no mapping %lx in numa_maps\n", addr);
		goto out;
	}
	r = numa_mover_move(pid, from, to);
	if (r < 0) {
		printf("numa: FAIL move: %s\n", strerror(-r));
		goto out;
	}
	if (count_pages(pid, addr, after) < 0) {
		printf("numa: FAIL mapping gone after the move\n");
		goto out;
	}
	printf("numa: pages %lu before N%u=%lu N%u=%lu after N%u=%lu N%u=%lu "
	    "moved_by=%s\n", npages, from, before[from], to, before[to], from,
	    after[from], to, after[to], numa_mover_name());
	/* All on <from> before (bound), and at least 90 % on <to> after; a
	 * few pages may be busy for a moment and stay behind. */
	if (before[from] < npages * 9 / 10)
		printf("numa: FAIL only %lu of %lu pages on node %u to start "
		    "with\n", before[from], npages, from);
	else if (after[to] < npages * 9 / 10 || after[from] > npages / 10)
		printf("numa: FAIL pages did not move\n");
	else {
		printf("numa: ok\n");
		status = 0;
	}
out:
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return status;
}
