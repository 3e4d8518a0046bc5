/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host-side memory tier: scans of a process's RAM through soft-dirty
 * bits and pagemap, and the moves (tier.h).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "tier.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT	21
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open	434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise	440
#endif
#define MPOL_MF_MOVE_	(1 << 1)

#define PAGE		4096u
#define CHUNK_PAGES	(TIER_CHUNK / PAGE)
#define PM_PRESENT	(1ull << 63)
#define PM_SWAPPED	(1ull << 62)
#define PM_SOFT_DIRTY	(1ull << 55)
#define IOV_BATCH	512

static int
read_text(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	return 0;
}

int
tier_parse_nodes(const char *s, uint64_t *ret)
{
	unsigned long a, b;
	char *end;

	*ret = 0;
	while (*s != '\0' && *s != '\n') {
		if (!isdigit((unsigned char)*s))
			return -EINVAL;
		a = b = strtoul(s, &end, 10);
		if (*end == '-') {
			s = end + 1;
			if (!isdigit((unsigned char)*s))
				return -EINVAL;
			b = strtoul(s, &end, 10);
		}
		if (a > b || b >= TIER_NODES_MAX)
			return -EINVAL;
		for (; a <= b; a++)
			*ret |= 1ull << a;
		s = end;
		if (*s == ',')
			s++;
	}
	return 0;
}

static uint64_t
meminfo_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	unsigned long long v;

	if (p == NULL || sscanf(p + strlen(key), " %llu", &v) != 1)
		return 0;
	return v;
}

/* The kernel's memory tiers, fastest first: the first with memory nodes
 * is fast, those after it slower. */
static void
probe_tiers(const char *sys_root, uint64_t has_memory, struct tier_host *h)
{
	char dir[4096], path[4200], text[512];
	unsigned tiers[32], n = 0;
	struct dirent *e;
	uint64_t mask;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/devices/virtual/memory_tiering",
	    sys_root);
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL && n < 32) {
		char *end;
		unsigned long id;

		if (strncmp(e->d_name, "memory_tier", 11) != 0 ||
		    !isdigit((unsigned char)e->d_name[11]))
			continue;
		id = strtoul(e->d_name + 11, &end, 10);
		if (*end == '\0' && id < 1000000)
			tiers[n++] = (unsigned)id;
	}
	closedir(d);
	/* A few entries: insertion sort, lowest id (fastest) first. */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && tiers[j - 1] > tiers[j]; j--) {
			unsigned t = tiers[j];

			tiers[j] = tiers[j - 1];
			tiers[j - 1] = t;
		}
	for (unsigned i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/memory_tier%u/nodelist", dir,
		    tiers[i]);
		if (read_text(path, text, sizeof(text)) < 0 ||
		    tier_parse_nodes(text, &mask) < 0)
			continue;
		mask &= has_memory;
		if (h->fast_mask == 0)
			h->fast_mask = mask;
		else
			h->slow_mask |= mask;
	}
}

int
tier_read_memory(const char *proc_root, struct tier_host *ret)
{
	char path[4200], text[8192];
	int r;

	snprintf(path, sizeof(path), "%s/meminfo", proc_root);
	r = read_text(path, text, sizeof(text));
	if (r < 0)
		return r;
	ret->swap = meminfo_kib(text, "SwapTotal:") > 0;
	ret->swap_free_kib = meminfo_kib(text, "SwapFree:");
	ret->mem_total_kib = meminfo_kib(text, "MemTotal:");
	ret->mem_available_kib = meminfo_kib(text, "MemAvailable:");
	return 0;
}

int
tier_probe(const char *proc_root, const char *sys_root, uint64_t slow_nodes,
    struct tier_host *ret)
{
	char path[4200], text[512];
	uint64_t has_memory = 1;	/* no NUMA sysfs: node 0 */
	int r;

	memset(ret, 0, sizeof(*ret));
	r = tier_read_memory(proc_root, ret);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/devices/system/node/has_memory",
	    sys_root);
	if (read_text(path, text, sizeof(text)) == 0 &&
	    tier_parse_nodes(text, &has_memory) < 0)
		has_memory = 1;
	if (slow_nodes != 0) {
		ret->slow_mask = slow_nodes & has_memory;
		ret->fast_mask = has_memory & ~slow_nodes;
	} else {
		probe_tiers(sys_root, has_memory, ret);
	}
	if (ret->fast_mask == 0)	/* nothing to move from */
		ret->slow_mask = 0;
	if (!ret->swap && ret->slow_mask == 0)
		snprintf(ret->why, sizeof(ret->why), "no swap and no slower "
		    "NUMA node on this host");
	return 0;
}

static int
add_range(struct tier_scan *s, uint64_t start, uint64_t end, size_t *cap)
{
	start = (start + TIER_CHUNK - 1) & ~(uint64_t)(TIER_CHUNK - 1);
	end &= ~(uint64_t)(TIER_CHUNK - 1);
	for (; start < end; start += TIER_CHUNK) {
		if (s->n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 1024;
			void *p = realloc(s->chunks, ncap * sizeof(*s->chunks));

			if (p == NULL)
				return -ENOMEM;
			s->chunks = p;
			*cap = ncap;
		}
		s->chunks[s->n++] = (struct tier_chunk){ .addr = start };
	}
	return 0;
}

int
tier_scan_open(struct tier_scan *s, const char *proc_root, pid_t pid,
    uint64_t min_bytes)
{
	char path[4200], line[4096 + 256];
	size_t cap = 0;
	FILE *f;
	int r = 0;

	memset(s, 0, sizeof(*s));
	s->pid = pid;
	snprintf(path, sizeof(path), "%s/%d/maps", proc_root, (int)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -errno;
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		unsigned long long start, end, inode;
		char perms[8], name[4096] = "";

		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu %4095s", &start,
		    &end, perms, &inode, name) < 4)
			continue;
		/* Guest RAM: anonymous private, or a memfd QEMU shares with
		 * vhost-user (memory-backend-memfd). */
		if (end - start < min_bytes || perms[0] != 'r' ||
		    perms[1] != 'w')
			continue;
		if (!((perms[3] == 'p' && inode == 0 && name[0] == '\0') ||
		    strncmp(name, "/memfd:", 7) == 0))
			continue;
		r = add_range(s, start, end, &cap);
	}
	fclose(f);
	if (r == 0 && s->n == 0)
		r = -ENOENT;
	if (r < 0)
		tier_scan_close(s);
	return r;
}

void
tier_scan_close(struct tier_scan *s)
{
	free(s->chunks);
	s->chunks = NULL;
	s->n = 0;
}

int
tier_scan_begin(struct tier_scan *s, const char *proc_root)
{
	char path[4200];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%d/clear_refs", proc_root,
	    (int)s->pid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, "4", 1);	/* soft-dirty bits only */
	n = n == 1 ? 0 : -errno;
	close(fd);
	return (int)n;
}

static int
read_majflt(const char *proc_root, pid_t pid, uint64_t *ret)
{
	char path[4200], text[2048];
	unsigned long long v;
	const char *p;
	int r;

	snprintf(path, sizeof(path), "%s/%d/stat", proc_root, (int)pid);
	r = read_text(path, text, sizeof(text));
	if (r < 0)
		return r;
	/* After "(comm) ": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt. */
	p = strrchr(text, ')');
	if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u "
	    "%*u %llu", &v) != 1)
		return -EINVAL;
	*ret = v;
	return 0;
}

int
tier_scan_end(struct tier_scan *s, const char *proc_root)
{
	uint64_t pm[CHUNK_PAGES], majflt = 0;
	char path[4200];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%d/pagemap", proc_root, (int)s->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < s->n; i++) {
		struct tier_chunk *c = &s->chunks[i];
		off_t off = (off_t)(c->addr / PAGE * sizeof(uint64_t));
		bool touched = false;
		unsigned present = 0;
		ssize_t n = pread(fd, pm, sizeof(pm), off);

		if (n != (ssize_t)sizeof(pm)) {
			r = n < 0 ? -errno : -ESRCH;
			break;
		}
		for (unsigned k = 0; k < CHUNK_PAGES; k++) {
			if (pm[k] & PM_PRESENT)
				present++;
			if ((pm[k] & (PM_PRESENT | PM_SWAPPED)) &&
			    (pm[k] & PM_SOFT_DIRTY))
				touched = true;
		}
		c->present = (uint16_t)present;
		if (touched) {
			c->idle = 0;
			c->demoted = false;
		}
		else if (c->idle < 255)
			c->idle++;
	}
	close(fd);
	if (r == 0)
		r = read_majflt(proc_root, s->pid, &majflt);
	if (r < 0)
		return r;
	s->refaults = s->windows > 0 && majflt >= s->majflt ?
	    majflt - s->majflt : 0;
	s->majflt = majflt;
	s->windows++;
	return 0;
}

size_t
tier_pick(const struct tier_scan *s, unsigned min_idle, uint64_t quota_kib,
    uint64_t hot_reserve_kib, size_t *idx, uint64_t *ret_kib)
{
	uint64_t present_kib = 0, room, kib = 0;
	size_t n = 0, out = 0;

	*ret_kib = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct tier_chunk *c = &s->chunks[i];

		if (c->present == 0 || c->demoted)
			continue;
		present_kib += (uint64_t)c->present * (PAGE / 1024);
		if (c->idle >= min_idle && min_idle > 0)
			idx[n++] = i;
	}
	if (present_kib <= hot_reserve_kib)
		return 0;
	room = present_kib - hot_reserve_kib;
	if (room > quota_kib)
		room = quota_kib;
	/* Coldest first; among equals, in address order (idx is). */
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && s->chunks[idx[j - 1]].idle <
		    s->chunks[idx[j]].idle; j--) {
			size_t t = idx[j];

			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		uint64_t c = (uint64_t)s->chunks[idx[i]].present *
		    (PAGE / 1024);

		if (kib + c > room)
			break;
		kib += c;
		idx[out++] = idx[i];
	}
	*ret_kib = kib;
	return out;
}

int64_t
tier_pageout(const struct tier_scan *s, const size_t *idx, size_t n)
{
	struct iovec iov[IOV_BATCH];
	int64_t done = 0;
	int pidfd;

	pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (pidfd < 0)
		return -errno;
	for (size_t i = 0; i < n;) {
		size_t k = 0;
		ssize_t r;

		for (; k < IOV_BATCH && i < n; k++, i++) {
			iov[k].iov_base = (void *)(uintptr_t)
			    s->chunks[idx[i]].addr;
			iov[k].iov_len = TIER_CHUNK;
		}
		r = syscall(SYS_process_madvise, pidfd, iov, k, MADV_PAGEOUT,
		    0);
		if (r < 0) {
			done = done > 0 ? done : -errno;
			break;
		}
		done += r;
	}
	close(pidfd);
	return done;
}

int64_t
tier_demote(struct tier_scan *s, const size_t *idx, size_t n,
    unsigned node)
{
	void *pages[CHUNK_PAGES];
	int nodes[CHUNK_PAGES], status[CHUNK_PAGES];
	int64_t moved = 0;

	if (node >= TIER_NODES_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		for (unsigned k = 0; k < CHUNK_PAGES; k++) {
			pages[k] = (void *)(uintptr_t)(s->chunks[idx[i]].addr +
			    (uint64_t)k * PAGE);
			nodes[k] = (int)node;
			status[k] = -1;
		}
		/* A positive result counts pages not moved (busy, pinned):
		 * the status array says where each page is. */
		if (syscall(SYS_move_pages, s->pid, CHUNK_PAGES, pages, nodes,
		    status, MPOL_MF_MOVE_) < 0)
			return moved > 0 ? moved : -errno;
		for (unsigned k = 0; k < CHUNK_PAGES; k++)
			if (status[k] == (int)node)
				moved++;
		s->chunks[idx[i]].demoted = true;
	}
	return moved;
}

unsigned
tier_backoff(unsigned min_idle, unsigned base, uint64_t moved_pages,
    uint64_t refaults, unsigned refault_pct)
{
	if (moved_pages > 0 &&
	    refaults * 100 > (uint64_t)refault_pct * moved_pages)
		return min_idle * 2 > 64 ? 64 : min_idle * 2;
	return min_idle > base ? min_idle - 1 : base;
}
