/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one parser of the memory statistics of /proc and /sys, for a host (the
 * collector, the actuator) and a guest (mm-guest-agent): /proc/meminfo,
 * /proc/vmstat and /proc/pressure/memory into the report's own structs,
 * KSM from /sys/kernel/mm/ksm, NUMA nodes from /sys/devices/system/node,
 * and per VM process its numa_maps, the nodes its threads last ran on and
 * its resident memory. Roots of /proc and /sys are parameters, so tests
 * and the simulator point them at fixture trees. Content is untrusted: a
 * line that does not parse or holds an absurd value is dropped and
 * counted, and the field it would have set stays absent.
 */
#ifndef MM_HOSTSTATS_H
#define MM_HOSTSTATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "msg.h"

/*
 * Largest values kept: msg.h's bounds on the wire (MSG_KIB_MAX for KiB,
 * MSG_PAGES_MAX for pages) and, for counters, the largest a signed 64-bit
 * consumer takes. Larger values are dropped as absurd.
 */
#define HS_COUNT_MAX	((1ull << 63) - 1)

/*
 * Largest file read: /proc/meminfo, vmstat and pressure/memory up to
 * HS_PROC_FILE_MAX, the other files (numa_maps, sysfs) up to HS_FILE_MAX.
 * A longer file is parsed up to its last whole line.
 */
#define HS_PROC_FILE_MAX	(64 * 1024)
#define HS_FILE_MAX		(256 * 1024)

/*
 * The fields of Meminfo, Vmstat and Psi that the parsers fill, each once,
 * in the order of the proto: the report's name of a field (its mm.v1
 * name, also the agent's JSON and xenstore key), the kernel's name of it
 * and where it sits in the struct. A new statistic is one line of the
 * proto and one of these tables.
 */
struct hs_field {
	const char *name;	/* "total_kib" */
	const char *kernel;	/* "MemTotal"; Psi: "some avg10" */
	const char *part_of;	/* kernel name of the whole it cannot
				 * exceed (MemFree: MemTotal), or NULL */
	size_t off;		/* offsetof the uint64_t (double if pct) */
	size_t has_off;		/* offsetof its has_ flag */
	uint64_t max;		/* larger values are dropped */
	bool pct;		/* a double, percent 0.00..100.00 */
	bool counter;		/* a guest's counter (vmstat events, PSI
				 * totals): only grows while it runs */
};

struct hs_fields {
	const char *group;	/* "meminfo", "vmstat", "psi" */
	const struct hs_field *f;
	size_t n;
};

/* The tables of Mm__V1__Meminfo, Mm__V1__Vmstat and Mm__V1__Psi. */
extern const struct hs_fields hs_meminfo_fields;
extern const struct hs_fields hs_vmstat_fields;
extern const struct hs_fields hs_psi_fields;

/* Whether msg (borrowed, a struct of f's table) has field f, and its
 * value: an integer (u64) or a percent (pct). */
bool hs_has(const struct hs_field *f, const void *msg);
uint64_t hs_u64(const struct hs_field *f, const void *msg);
double hs_pct(const struct hs_field *f, const void *msg);

/* How many fields of fs msg (borrowed) has. */
unsigned hs_count(const struct hs_fields *fs, const void *msg);

/* True when a and b (borrowed) have the same fields of fs with the same
 * values. */
bool hs_equal(const struct hs_fields *fs, const void *a, const void *b);

/*
 * What a parse of untrusted text dropped: bad counts the lines that did
 * not parse and the values out of range, seen twice (the first is kept),
 * in another unit or larger than their whole (MemFree above MemTotal);
 * truncated says the file was longer than HS_PROC_FILE_MAX.
 */
struct hs_scan {
	unsigned bad;
	bool truncated;
};

/*
 * Parse len bytes of text (borrowed, need not be NUL-terminated) as
 * /proc/meminfo, /proc/vmstat or /proc/pressure/memory into *ret, which is
 * initialised here: fields the text lacks or that are dropped stay absent.
 * Meminfo values must be in kB; vmstat and PSI lines must be exactly the
 * kernel's format. *ret_scan (may be NULL) says what was dropped. Never
 * fails: nothing valid leaves every field absent.
 */
void hs_scan_meminfo(const char *text, size_t len, Mm__V1__Meminfo *ret,
    struct hs_scan *ret_scan);
void hs_scan_vmstat(const char *text, size_t len, Mm__V1__Vmstat *ret,
    struct hs_scan *ret_scan);
void hs_scan_psi(const char *text, size_t len, Mm__V1__Psi *ret,
    struct hs_scan *ret_scan);

/*
 * Read <proc_root>/meminfo, vmstat or pressure/memory (proc_root borrowed,
 * e.g. "/proc") and scan it as above. Returns 0 with *ret and *ret_scan
 * (may be NULL) filled, even when nothing in it was valid, or a negative
 * errno of opening or reading it (-ENOENT: no such file, e.g. a kernel
 * without PSI) with both untouched.
 */
int hs_load_meminfo(const char *proc_root, Mm__V1__Meminfo *ret,
    struct hs_scan *ret_scan);
int hs_load_vmstat(const char *proc_root, Mm__V1__Vmstat *ret,
    struct hs_scan *ret_scan);
int hs_load_psi(const char *proc_root, Mm__V1__Psi *ret,
    struct hs_scan *ret_scan);

/*
 * hs_load_meminfo() from fd, an open /proc/meminfo, read from its start
 * into a buffer on the stack: no open, close or allocation, for callers
 * that look many times a second. Returns 0 or a negative errno.
 */
int hs_pread_meminfo(int fd, Mm__V1__Meminfo *ret, struct hs_scan *ret_scan);

/*
 * The same parsers where only the values matter: root is the /proc
 * directory, text is NUL-terminated; all pointers are borrowed. *ret is
 * initialised (all absent) unless the file cannot be read. Each returns
 * 0, a negative errno of opening or reading the file (-ENOENT when
 * absent), or -EINVAL when nothing in it was valid.
 */
int hs_read_meminfo(const char *proc_root, Mm__V1__Meminfo *ret);
int hs_read_vmstat(const char *proc_root, Mm__V1__Vmstat *ret);
int hs_read_psi(const char *proc_root, Mm__V1__Psi *ret);
int hs_parse_meminfo(const char *text, Mm__V1__Meminfo *ret);
int hs_parse_vmstat(const char *text, Mm__V1__Vmstat *ret);
int hs_parse_psi(const char *text, Mm__V1__Psi *ret);

/*
 * Read all of path (borrowed) into buf (size bytes, at least 2), NUL-
 * terminated. Returns the length read, or a negative errno. Sets
 * *ret_truncated (may be NULL) when the file has more than size - 1 bytes.
 */
long hs_read_file(const char *path, char *buf, size_t size,
    bool *ret_truncated);

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
