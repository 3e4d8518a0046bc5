/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeping the agent's resident set to what it uses. The kernel maps file
 * pages around each page fault ("fault-around", 64 KiB), so a process that
 * touches a few functions of libc shows most of libc as resident. Once the
 * loop runs, the agent marks its read-only file mappings MADV_RANDOM (no
 * more fault-around) and drops their pages; they come back one page at a
 * time as they are used. Pages a mapping holds privately (relocations)
 * would be lost by that, so such mappings are left alone.
 */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "guest-agent.h"
#include "log.h"

void
agent_trim_rss(void)
{
	unsigned long lo = 0, hi = 0, a, b, kib, dropped = 0;
	char line[512], perms[8] = "", path[8] = "";
	bool candidate = false;
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %7s", &a, &b,
		    perms, path) >= 3 && strchr(line, '-') < strchr(line, ' ')) {
			/* A file mapping, not writable, not shared. */
			lo = a;
			hi = b;
			candidate = perms[0] == 'r' && perms[1] == '-' &&
			    perms[3] == 'p' && path[0] == '/';
			path[0] = '\0';
			continue;
		}
		if (!candidate || sscanf(line, "Anonymous: %lu kB", &kib) != 1)
			continue;
		candidate = false;
		if (kib != 0)
			continue;
		if (madvise((void *)lo, hi - lo, MADV_RANDOM) == 0 &&
		    madvise((void *)lo, hi - lo, MADV_DONTNEED) == 0)
			dropped += (hi - lo) >> 10;
	}
	fclose(f);
	log_debug("footprint: %lu KiB of read-only mappings trimmed", dropped);
}
