/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The other /proc and sysfs files of common/host/hoststats.c, read from a
 * scratch proc and sys tree: the first input byte picks the reader, the
 * rest is split at NUL bytes into the files it reads (in the order of
 * files[] below). Readers: KSM's sysfs values, NUMA nodes' meminfo, a
 * process's numa_maps, statm, ksmd's comm and stat, the nodes its threads
 * ran on (task stat and the nodes' cpulists), and a cpulist alone.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "hoststats.h"

#define KSM	"sys/kernel/mm/ksm/"
#define NODE	"sys/devices/system/node/"

struct reader {
	const char *files[10];
};

static const struct reader readers[] = {
	{ { KSM "run", KSM "pages_to_scan", KSM "sleep_millisecs",
	    KSM "merge_across_nodes", KSM "full_scans", KSM "pages_shared",
	    KSM "pages_sharing", KSM "pages_unshared", KSM "pages_volatile",
	    KSM "ksm_zero_pages" } },
	{ { NODE "node0/meminfo", NODE "node1/meminfo", NODE "node7/meminfo",
	    NODE "node63/meminfo", NODE "node64/meminfo" } },
	{ { "proc/42/numa_maps" } },
	{ { "proc/42/statm" } },
	{ { "proc/7/comm", "proc/7/stat" } },
	{ { "proc/42/task/42/stat", "proc/42/task/43/stat",
	    NODE "node0/cpulist", NODE "node1/cpulist" } },
	{ { NULL } },	/* hs_parse_cpulist() */
};

#define NREADERS	(sizeof(readers) / sizeof(readers[0]))

static void
run(unsigned which, const uint8_t *data, size_t size)
{
	Mm__V1__NumaNode nodes[MSG_NODES_MAX];
	uint64_t pages[MSG_NODES_MAX], v, mask, bits[4];
	Mm__V1__KsmSettings set;
	Mm__V1__KsmStats ksm;
	char proc[4096], sys[4096], *s;
	size_t i, n;
	int pid = 0;

	snprintf(proc, sizeof(proc), "%s/proc", fz_dir());
	snprintf(sys, sizeof(sys), "%s/sys", fz_dir());
	switch (which) {
	case 0:
		if (hs_read_ksm(sys, &ksm, &set) == 0) {
			FZ_CHECK(ksm.settings == &set);
			FZ_CHECK(!set.has_run || (set.run >= 1 && set.run <= 3));
		}
		break;
	case 1:
		if (hs_read_numa_nodes(sys, nodes, MSG_NODES_MAX, &n) == 0) {
			FZ_CHECK(n <= MSG_NODES_MAX);
			for (i = 0; i < n; i++) {
				FZ_CHECK(nodes[i].node < MSG_NODES_MAX);
				if (i > 0)
					FZ_CHECK(nodes[i].node >
					    nodes[i - 1].node);
			}
		}
		break;
	case 2:
		(void)hs_read_numa_maps(proc, 42, pages);
		break;
	case 3:
		if (hs_read_resident_kib(proc, 42, &v) == 0)
			FZ_CHECK(v <= MSG_KIB_MAX);
		break;
	case 4:
		if (hs_read_ksmd_cpu(proc, &pid, &v) == 0)
			FZ_CHECK(pid == 7);
		break;
	case 5:
		(void)hs_read_vcpu_nodes(proc, sys, 42, &mask);
		break;
	default:
		s = fz_strndup(data, size);
		(void)hs_parse_cpulist(s, bits, 4);
		free(s);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct reader *r;
	const uint8_t *p, *end, *nul;
	unsigned which;
	size_t i, k;

	if (size < 1)
		return 0;
	which = data[0] % NREADERS;
	r = &readers[which];
	/* Directories stay: a reader sees its files, and no file of an
	 * earlier input. */
	for (k = 0; k < NREADERS; k++)
		for (i = 0; i < 10 && readers[k].files[i] != NULL; i++)
			fz_unlink(readers[k].files[i]);
	p = data + 1;
	end = data + size;
	for (i = 0; i < 10 && r->files[i] != NULL && p <= end; i++) {
		nul = memchr(p, '\0', (size_t)(end - p));
		if (nul == NULL)
			nul = end;
		fz_write(r->files[i], p, (size_t)(nul - p));
		p = nul + 1;
	}
	run(which, data + 1, size - 1);
	return 0;
}
