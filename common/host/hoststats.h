/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host's memory statistics as the collector reports them: /proc/meminfo,
 * /proc/vmstat and /proc/pressure/memory, KSM from /sys/kernel/mm/ksm, NUMA
 * nodes from /sys/devices/system/node, and per VM process its numa_maps,
 * the nodes its threads last ran on and its resident memory. Roots of
 * /proc and /sys are parameters, so tests and the simulator point them at
 * fixture trees.
 */
#ifndef MM_HOSTSTATS_H
#define MM_HOSTSTATS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

/* Largest file read by the parsers; longer files are truncated there. */
#define HS_FILE_MAX	(256 * 1024)

/*
 * The parsers fill protobuf-c structs of mm.v1 directly (they are the
 * report's fields, with has_ flags for presence): *ret is initialised by the
 * parser, fields the file lacks stay absent. root is the /proc (or /sys)
 * directory, e.g. "/proc"; all pointers are borrowed. Each returns 0, or a
 * negative errno of opening or reading the file (-ENOENT when absent),
 * -EINVAL when nothing in it parsed.
 */
int hs_read_meminfo(const char *proc_root, Mm__V1__Meminfo *ret);
int hs_read_vmstat(const char *proc_root, Mm__V1__Vmstat *ret);
int hs_read_psi(const char *proc_root, Mm__V1__Psi *ret);

/* The same parsers on text in memory (NUL-terminated, borrowed). */
int hs_parse_meminfo(const char *text, Mm__V1__Meminfo *ret);
int hs_parse_vmstat(const char *text, Mm__V1__Vmstat *ret);
int hs_parse_psi(const char *text, Mm__V1__Psi *ret);

/*
 * KSM counters and settings from <sys_root>/kernel/mm/ksm. *ret and
 * *ret_settings are initialised here and ret->settings points to
 * ret_settings. Returns 0, or -ENOENT without KSM (no run file).
 */
int hs_read_ksm(const char *sys_root, Mm__V1__KsmStats *ret,
    Mm__V1__KsmSettings *ret_settings);

/*
 * CPU time ksmd has used since boot, in ms (utime + stime of the kernel
 * thread named "ksmd" under proc_root), what KSM tuning weighs merged pages
 * against. *pid caches the thread's pid between calls (start with 0).
 * Returns 0, or -ENOENT without a ksmd thread.
 */
int hs_read_ksmd_cpu(const char *proc_root, int *pid, uint64_t *ret_ms);

/*
 * NUMA nodes from <sys_root>/devices/system/node/node<N>/meminfo, in
 * node order: ret (max entries, caller's array) is initialised and filled;
 * *ret_n is their number. A machine without the directory has none
 * (returns 0 with *ret_n 0).
 */
int hs_read_numa_nodes(const char *sys_root, Mm__V1__NumaNode *ret,
    size_t max, size_t *ret_n);

/*
 * Resident pages (4 KiB) of process pid per node from
 * <proc_root>/<pid>/numa_maps, summing every mapping's N<node>=<pages>
 * scaled by its kernelpagesize_kB. ret_pages has MSG_NODES_MAX entries,
 * zeroed here. Returns 0 or a negative errno.
 */
int hs_read_numa_maps(const char *proc_root, pid_t pid, uint64_t *ret_pages);

/*
 * Resident memory of process pid in KiB: <proc_root>/<pid>/statm's second
 * field (pages) times the page size. For a VM, what the host sees it hold.
 * Returns 0 or a negative errno (-EINVAL when it does not parse).
 */
int hs_read_resident_kib(const char *proc_root, pid_t pid, uint64_t *ret_kib);

/*
 * Which nodes the threads of pid last ran on: each
 * <proc_root>/<pid>/task/<tid>/stat's "processor" field, mapped through
 * <sys_root>/devices/system/node/node<N>/cpulist. *ret_mask gets bit N for
 * node N. Returns 0 or a negative errno (-ENOENT without the task dir).
 */
int hs_read_vcpu_nodes(const char *proc_root, const char *sys_root, pid_t pid,
    uint64_t *ret_mask);

/*
 * Parse a kernel cpulist ("0-3,8,10-11") into a bitmap of bits
 * (caller's array of nwords 64-bit words, zeroed here). CPUs beyond it are
 * ignored. Returns 0 or -EINVAL.
 */
int hs_parse_cpulist(const char *s, uint64_t *bits, size_t nwords);

#endif
