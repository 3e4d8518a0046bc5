/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What mm_numa_check uses to move a process's pages between nodes. Today a
 * direct migrate_pages(2); the actuator's migration code will sit behind the
 * same two functions, so the checker does not change.
 */
#ifndef MM_NUMA_MOVER_H
#define MM_NUMA_MOVER_H

#include <sys/types.h>

/* Move pid's pages on node from to node to. Returns 0 (also when some
 * pages could not be moved: the caller counts them) or -errno. */
int numa_mover_move(pid_t pid, unsigned from, unsigned to);

/* A name for the log: which code did the moving. Static string. */
const char *numa_mover_name(void);

#endif
