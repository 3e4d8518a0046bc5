/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host-side memory tier (etmem's design, issue 18 part 3): which 2 MiB
 * chunks of a VM's RAM in its QEMU process went untouched for a number of
 * scan windows, and moving the coldest of them to a cheaper tier, swap
 * (process_madvise(MADV_PAGEOUT)) or a slower NUMA node (move_pages(2)),
 * within a quota per pass and a hot reserve per VM.
 *
 * "Touched" is what a kernel without idle page tracking (Debian's) shows a
 * process from outside: a page written or faulted in since the last window
 * has its soft-dirty bit set (/proc/<pid>/clear_refs 4, then pagemap bit
 * 55). A page that is only read looks idle; when such a page is paged out
 * and read again it faults back in, which the caller sees as the process's
 * major faults and answers by backing off (tier_backoff()).
 *
 * libc only, no libuv and no mm library: the guest test program that
 * checks it against a real kernel with real swap compiles this file as it
 * is. The calls block (reads of /proc, the moves): callers run them off
 * their loop.
 */
#ifndef MM_TIER_H
#define MM_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TIER_CHUNK	(2u << 20)	/* bytes scanned and moved as one */
#define TIER_NODES_MAX	64

/* What this host offers as a cheaper tier. */
struct tier_host {
	bool swap;			/* SwapTotal > 0 */
	uint64_t swap_free_kib;
	uint64_t mem_total_kib, mem_available_kib;
	uint64_t slow_mask;		/* slower nodes with memory */
	uint64_t fast_mask;		/* the others with memory */
	char why[160];			/* neither: what is missing */
};

/*
 * Read proc_root/meminfo's swap and the nodes' tiers: slow_nodes (a mask;
 * 0 to read them) names the slower nodes, else the kernel's memory tiers
 * (sys_root/devices/virtual/memory_tiering/memory_tier<N>/nodelist: every
 * tier after the first with memory is slower). Returns 0 (ret->why says
 * "no swap and no slower NUMA node" when there is neither) or -errno when
 * meminfo cannot be read.
 */
int tier_probe(const char *proc_root, const char *sys_root,
    uint64_t slow_nodes, struct tier_host *ret);

/* Only what changes from one pass to the next: ret's swap and memory
 * fields from proc_root/meminfo (the nodes are left as they are). Returns
 * 0 or -errno. */
int tier_read_memory(const char *proc_root, struct tier_host *ret);

/* A node list as sysfs prints it ("0-1,3") as a mask of nodes below
 * TIER_NODES_MAX. Returns 0 or -EINVAL. */
int tier_parse_nodes(const char *s, uint64_t *ret);

/* One chunk of a process's RAM. */
struct tier_chunk {
	uint64_t addr;		/* start, in the process */
	uint16_t present;	/* pages present (of 512) at the last scan */
	uint8_t idle;		/* windows in a row without a touch, max 255 */
	bool demoted;		/* moved to a slower node, not touched since */
};

/* A process's RAM chunks and what the scans saw. */
struct tier_scan {
	pid_t pid;
	struct tier_chunk *chunks;
	size_t n;
	unsigned windows;	/* scans ended */
	uint64_t majflt;	/* its major faults at the last scan */
	uint64_t refaults;	/* major faults during the last window */
};

/*
 * Find pid's RAM: its private or memfd read-write mappings of at least
 * min_bytes (QEMU's guest RAM; its heap and libraries are smaller), in
 * whole chunks. Returns 0 or -errno (-ENOENT: no such mapping).
 */
int tier_scan_open(struct tier_scan *s, const char *proc_root, pid_t pid,
    uint64_t min_bytes);
void tier_scan_close(struct tier_scan *s);

/* Start a window: clear pid's soft-dirty bits. 0 or -errno. */
int tier_scan_begin(struct tier_scan *s, const char *proc_root);

/*
 * End a window: per chunk, pages present now, and whether any was touched
 * (its idle count goes to 0 and it no longer counts as demoted, else the
 * count goes up by one); the process's major faults
 * in the window. 0 or -errno (the process went: -ESRCH or -ENOENT).
 */
int tier_scan_end(struct tier_scan *s, const char *proc_root);

/*
 * The chunks to move: idle for at least min_idle windows and not demoted
 * yet, coldest first, at most quota_kib of present memory, and never so
 * many that less than hot_reserve_kib of the process's present RAM stays
 * in the fast tier (present and not demoted). Fills idx (room for
 * s->n) with chunk indexes; returns how many, *ret_kib what they hold.
 */
size_t tier_pick(const struct tier_scan *s, unsigned min_idle,
    uint64_t quota_kib, uint64_t hot_reserve_kib, size_t *idx,
    uint64_t *ret_kib);

/*
 * Page the chosen chunks out with process_madvise(MADV_PAGEOUT) (Linux
 * 5.10+, CAP_SYS_NICE and ptrace access to pid). Returns the bytes the
 * kernel took the advice for, or -errno (-ENOSYS: no process_madvise).
 */
int64_t tier_pageout(const struct tier_scan *s, const size_t *idx, size_t n);

/*
 * Move the chosen chunks' present pages to node with move_pages(2)
 * (CAP_SYS_NICE) and mark them demoted. Returns the pages now on node, or
 * -errno.
 */
int64_t tier_demote(struct tier_scan *s, const size_t *idx, size_t n,
    unsigned node);

/*
 * The window count after which chunks count as cold, given the last one
 * (min_idle) and the pass's outcome: doubled (at most 64) when the major
 * faults of the window after a move passed refault_pct of the pages moved,
 * else back toward base one step at a time.
 */
unsigned tier_backoff(unsigned min_idle, unsigned base, uint64_t moved_pages,
    uint64_t refaults, unsigned refault_pct);

#endif
