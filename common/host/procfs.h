/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsers of the memory files of /proc: meminfo, vmstat and pressure/memory,
 * for a guest (mm-guest-agent) or a host (the collector). The root of /proc
 * is a parameter so tests read fixture trees. Content is untrusted: a line
 * that does not parse or holds an absurd value is dropped and counted, and
 * the field it would have set stays absent.
 */
#ifndef MM_PROCFS_H
#define MM_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest values kept, as msg.h bounds them on the wire. */
#define PROCFS_KIB_MAX		(1ull << 42)	/* 4 PiB */
#define PROCFS_PAGES_MAX	(1ull << 40)	/* 4 PiB in 4 KiB pages */
#define PROCFS_COUNT_MAX	((1ull << 63) - 1)	/* counters */

/* Largest file read; longer files are parsed up to the last whole line. */
#define PROCFS_FILE_MAX		(64 * 1024)

/* Fields of /proc/meminfo, all KiB. */
enum procfs_mem {
	PROCFS_MEM_TOTAL,		/* MemTotal */
	PROCFS_MEM_FREE,		/* MemFree */
	PROCFS_MEM_AVAILABLE,		/* MemAvailable */
	PROCFS_MEM_CACHED,		/* Cached */
	PROCFS_MEM_SWAP_TOTAL,		/* SwapTotal */
	PROCFS_MEM_SWAP_FREE,		/* SwapFree */
	PROCFS_MEM_ANON,		/* AnonPages */
	PROCFS_MEM_ACTIVE_FILE,		/* Active(file) */
	PROCFS_MEM_INACTIVE_FILE,	/* Inactive(file) */
	PROCFS_MEM_SHMEM,		/* Shmem */
	PROCFS_MEM_COUNT
};

/* Counters of /proc/vmstat. */
enum procfs_vm {
	PROCFS_VM_MAJOR_FAULTS,		/* pgmajfault */
	PROCFS_VM_SWAP_IN,		/* pswpin, pages */
	PROCFS_VM_SWAP_OUT,		/* pswpout, pages */
	PROCFS_VM_REFAULT,		/* workingset_refault_anon + _file, or
					 * workingset_refault, pages */
	PROCFS_VM_OOM_KILLS,		/* oom_kill */
	PROCFS_VM_BALLOON,		/* nr_balloon_pages, or balloon_inflate
					 * - balloon_deflate: held now (pages) */
	PROCFS_VM_COUNT
};

/* Values of /proc/pressure/memory. */
enum procfs_psi_field {
	PROCFS_PSI_SOME_AVG10,		/* percent 0..100 */
	PROCFS_PSI_SOME_AVG60,
	PROCFS_PSI_SOME_AVG300,
	PROCFS_PSI_FULL_AVG10,
	PROCFS_PSI_FULL_AVG60,
	PROCFS_PSI_FULL_AVG300,
	PROCFS_PSI_COUNT
};

/*
 * What one file gave. have has bit (1 << field) set for each field found
 * valid; other entries are 0. bad counts the lines (or values) dropped as
 * malformed, out of range or inconsistent, and truncated is set when the
 * file was longer than PROCFS_FILE_MAX.
 */
struct procfs_meminfo {
	uint32_t have;
	unsigned bad;
	bool truncated;
	uint64_t kib[PROCFS_MEM_COUNT];
};

struct procfs_vmstat {
	uint32_t have;
	unsigned bad;
	bool truncated;
	uint64_t count[PROCFS_VM_COUNT];
};

struct procfs_psi {
	uint32_t have;		/* bits of enum procfs_psi_field, plus the two below */
	unsigned bad;
	bool truncated;
	double pct[PROCFS_PSI_COUNT];
	uint64_t some_total_us;	/* have & PROCFS_PSI_HAVE_SOME_TOTAL */
	uint64_t full_total_us;	/* have & PROCFS_PSI_HAVE_FULL_TOTAL */
};

#define PROCFS_PSI_HAVE_SOME_TOTAL	(1u << PROCFS_PSI_COUNT)
#define PROCFS_PSI_HAVE_FULL_TOTAL	(1u << (PROCFS_PSI_COUNT + 1))

/* True when bit field of have is set. */
static inline bool
procfs_has(uint32_t have, unsigned field)
{
	return (have & (1u << field)) != 0;
}

/*
 * Parse len bytes of text (borrowed, need not be NUL-terminated) as the
 * named file. Meminfo values must be in kB; values above MemTotal (or
 * SwapFree above SwapTotal) are dropped as inconsistent. Always fills *ret
 * (zeroed first); never fails.
 */
void procfs_parse_meminfo(const char *text, size_t len,
    struct procfs_meminfo *ret);
void procfs_parse_vmstat(const char *text, size_t len,
    struct procfs_vmstat *ret);
void procfs_parse_psi(const char *text, size_t len, struct procfs_psi *ret);

/*
 * Read <root>/meminfo, <root>/vmstat or <root>/pressure/memory, root being
 * the /proc directory (borrowed, e.g. "/proc"), and parse it as above.
 * Returns 0 with *ret filled, or a negative errno when the file cannot be
 * opened or read (-ENOENT: no such file, e.g. a kernel without PSI), with
 * *ret untouched.
 */
int procfs_read_meminfo(const char *root, struct procfs_meminfo *ret);
int procfs_read_vmstat(const char *root, struct procfs_vmstat *ret);
int procfs_read_psi(const char *root, struct procfs_psi *ret);

/*
 * The same for meminfo from fd, an open /proc/meminfo, read from its start
 * into a buffer on the stack: no open, close or allocation, for callers
 * that look many times a second. Returns 0 or a negative errno.
 */
int procfs_pread_meminfo(int fd, struct procfs_meminfo *ret);

/*
 * Read all of path (borrowed) into buf (size bytes, at least 2), NUL-
 * terminated. Returns the length read, or a negative errno. Sets
 * *ret_truncated (may be NULL) when the file has more than size - 1 bytes.
 */
long procfs_read_file(const char *path, char *buf, size_t size,
    bool *ret_truncated);

#endif
