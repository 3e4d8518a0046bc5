/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm_test_tier: mm-actuator's host tier (common/host/tier.c, compiled in
 * as it is) against a real kernel with real swap or a second node, inside
 * a guest that plays the host. A child runs mm_test_cold <size> <hot> (the
 * "VM": most of its memory cold, <hot> written every 100 ms); this process
 * scans it every 2 s and, from the third window on, moves the chunks idle
 * for 3 windows, 128 MiB a pass, keeping 96 MiB of hot reserve, until a
 * pass finds nothing. Prints "tier: probe ..." and, when the guest has no
 * tier, "tier: skipped: <why>"; else "tier: done ..." with the child's
 * resident memory before and after, what moved, its major faults and the
 * guest's memory PSI.
 *   mm_test_tier <size> <hot> swap|node<N>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "guest_util.h"
#include "tier.h"

#define WINDOW_MS	2000
#define MIN_IDLE	3
#define QUOTA_KIB	(128u << 10)
#define RESERVE_KIB	(96u << 10)
#define PASSES_MAX	40

/* A line of /proc/<pid>/status ("VmRSS:", "VmSwap:"), KiB. */
static unsigned long long
status_kib(pid_t pid, const char *key)
{
	char path[64], line[256];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, key, strlen(key)) == 0)
			sscanf(line + strlen(key), " %llu", &v);
	fclose(f);
	return v;
}

/* The process's pages on node, all mappings (numa_maps' N<node>=). */
static unsigned long long
node_pages(pid_t pid, unsigned node)
{
	char path[64], line[4096], key[16];
	unsigned long long sum = 0, v;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int)pid);
	snprintf(key, sizeof(key), " N%u=", node);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, key);

		if (p != NULL && sscanf(p + strlen(key), "%llu", &v) == 1)
			sum += v;
	}
	fclose(f);
	return sum;
}

static double
psi_some10(void)
{
	char line[256];
	double v = -1;
	FILE *f = fopen("/proc/pressure/memory", "r");

	if (f == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) != NULL)
		sscanf(line, "some avg10=%lf", &v);
	fclose(f);
	return v;
}

int
main(int argc, char **argv)
{
	unsigned long long rss0, rss1, slow0 = 0, slow1 = 0, faults = 0;
	unsigned long long moved_kib = 0;
	uint64_t last_pages = 0;
	struct tier_host h;
	struct tier_scan s;
	uint64_t want, slow = 0;
	unsigned node = 0, passes = 0, min_idle = MIN_IDLE;
	size_t *idx = NULL;
	bool swap;
	pid_t pid;
	int r, st = 1;

	if (argc != 4 || (strcmp(argv[3], "swap") != 0 &&
	    sscanf(argv[3], "node%u", &node) != 1) || node >= 2) {
		fprintf(stderr, "usage: mm_test_tier <size> <hot> "
		    "swap|node<N>\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	swap = strcmp(argv[3], "swap") == 0;
	want = guest_parse_size(argv[1]);
	if (!swap)
		slow = 1ull << node;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		/* node mode: the "VM" starts on the other (fast) node; a
		 * preference, which does not hold the pages there. */
		unsigned long fast = 1ul << (1 - node);

		if (!swap && syscall(SYS_set_mempolicy, 1 /* MPOL_PREFERRED */,
		    &fast, 8 * sizeof(fast)) < 0)
			_exit(126);
		execlp("mm_test_cold", "mm_test_cold", argv[1], argv[2],
		    (char *)NULL);
		_exit(127);
	}
	/* The child has touched its memory. */
	while (status_kib(pid, "VmRSS:") < want / 1024 * 9 / 10)
		guest_sleep_ms(200);
	r = tier_probe("/proc", "/sys", slow, &h);
	printf("tier: probe swap=%d slow_mask=%#llx fast_mask=%#llx%s%s\n",
	    h.swap, (unsigned long long)h.slow_mask,
	    (unsigned long long)h.fast_mask, h.why[0] ? " why=" : "", h.why);
	if (r < 0 || (swap && !h.swap) || (!swap && !(h.slow_mask & slow))) {
		printf("tier: skipped: %s\n", r < 0 ? strerror(-r) : h.why[0] ?
		    h.why : swap ? "no swap" : "no such slower node");
		st = 0;
		goto out;
	}
	r = tier_scan_open(&s, "/proc", pid, 64u << 20);
	if (r < 0) {
		printf("tier: FAIL no RAM mapping: %s\n", strerror(-r));
		goto out;
	}
	idx = calloc(s.n, sizeof(*idx));
	rss0 = status_kib(pid, "VmRSS:");
	if (!swap)
		slow0 = node_pages(pid, node);
	while (passes < PASSES_MAX) {
		uint64_t kib;
		int64_t done;
		size_t n;

		r = tier_scan_begin(&s, "/proc");
		if (r == 0) {
			guest_sleep_ms(WINDOW_MS);
			r = tier_scan_end(&s, "/proc");
		}
		if (r < 0) {
			printf("tier: FAIL scan: %s\n", strerror(-r));
			goto out_scan;
		}
		faults += s.refaults;
		/* Pages read back soon after a move: wait longer. */
		min_idle = tier_backoff(min_idle, MIN_IDLE, last_pages,
		    s.refaults, 50);
		last_pages = 0;
		if (s.windows < MIN_IDLE)
			continue;
		n = tier_pick(&s, min_idle, QUOTA_KIB, RESERVE_KIB, idx, &kib);
		if (n == 0)
			break;
		passes++;
		done = swap ? tier_pageout(&s, idx, n) :
		    tier_demote(&s, idx, n, node);
		if (done < 0) {
			printf("tier: FAIL %s: %s\n", swap ? "process_madvise" :
			    "move_pages", strerror((int)-done));
			goto out_scan;
		}
		moved_kib += kib;
		last_pages = kib / 4;
		printf("tier: pass %u: %zu chunks, %llu MiB\n", passes, n,
		    (unsigned long long)kib >> 10);
	}
	rss1 = status_kib(pid, "VmRSS:");
	if (!swap)
		slow1 = node_pages(pid, node);
	printf("tier: done mode=%s rss %llu -> %llu MiB, moved %llu MiB in "
	    "%u passes, swap %llu MiB, node%u pages %llu -> %llu MiB, major "
	    "faults %llu, psi some avg10 %.2f\n", argv[3], rss0 >> 10,
	    rss1 >> 10, moved_kib >> 10, passes,
	    status_kib(pid, "VmSwap:") >> 10, node, slow0 >> 8, slow1 >> 8,
	    faults, psi_some10());
	st = 0;
out_scan:
	tier_scan_close(&s);
out:
	free(idx);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return st;
}
