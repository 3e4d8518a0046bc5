/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading one sample of the guest's memory from /proc, and walking its
 * values for the channels. Problems with a file are logged when they start
 * and when they end, never once per second.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "guest-agent.h"
#include "log.h"

static void
note_source(const char *root, const char *file, int err, bool bad,
    int *prev_err, bool *prev_bad)
{
	if (err != *prev_err) {
		if (err < 0) {
			errno = -err;
			log_warn("cannot read \"%s/%s\", reporting without "
			    "its fields", root, file);
		} else {
			log_info("\"%s/%s\" is readable again", root, file);
		}
	}
	if (err == 0 && bad && !*prev_bad)
		log_warnx("\"%s/%s\" has malformed or implausible lines; "
		    "reporting without them", root, file);
	*prev_err = err;
	*prev_bad = err == 0 ? bad : *prev_bad;
}

void
agent_sample_read(const char *proc_root, struct agent_sources *src,
    struct agent_sample *ret)
{
	int r;

	r = procfs_read_meminfo(proc_root, &ret->mem);
	if (r < 0)
		memset(&ret->mem, 0, sizeof(ret->mem));
	note_source(proc_root, "meminfo", r, ret->mem.bad > 0 ||
	    ret->mem.truncated || (r == 0 && ret->mem.have == 0),
	    &src->mem_err, &src->mem_bad);

	r = procfs_read_vmstat(proc_root, &ret->vm);
	if (r < 0)
		memset(&ret->vm, 0, sizeof(ret->vm));
	note_source(proc_root, "vmstat", r, ret->vm.bad > 0 ||
	    ret->vm.truncated, &src->vm_err, &src->vm_bad);

	r = procfs_read_psi(proc_root, &ret->psi);
	if (r < 0)
		memset(&ret->psi, 0, sizeof(ret->psi));
	note_source(proc_root, "pressure/memory", r, ret->psi.bad > 0 ||
	    ret->psi.truncated, &src->psi_err, &src->psi_bad);
}

bool
agent_sample_equal(const struct agent_sample *a,
    const struct agent_sample *b)
{
	return a->mem.have == b->mem.have && a->vm.have == b->vm.have &&
	    a->psi.have == b->psi.have &&
	    memcmp(a->mem.kib, b->mem.kib, sizeof(a->mem.kib)) == 0 &&
	    memcmp(a->vm.count, b->vm.count, sizeof(a->vm.count)) == 0 &&
	    memcmp(a->psi.pct, b->psi.pct, sizeof(a->psi.pct)) == 0 &&
	    a->psi.some_total_us == b->psi.some_total_us &&
	    a->psi.full_total_us == b->psi.full_total_us &&
	    strcmp(a->vm_id, b->vm_id) == 0;
}

static const char *const mem_fields[PROCFS_MEM_COUNT] = {
	[PROCFS_MEM_TOTAL] = "total_kib",
	[PROCFS_MEM_FREE] = "free_kib",
	[PROCFS_MEM_AVAILABLE] = "available_kib",
	[PROCFS_MEM_CACHED] = "cached_kib",
	[PROCFS_MEM_SWAP_TOTAL] = "swap_total_kib",
	[PROCFS_MEM_SWAP_FREE] = "swap_free_kib",
	[PROCFS_MEM_ANON] = "anon_kib",
	[PROCFS_MEM_ACTIVE_FILE] = "active_file_kib",
	[PROCFS_MEM_INACTIVE_FILE] = "inactive_file_kib",
	[PROCFS_MEM_SHMEM] = "shmem_kib",
};

static const char *const vm_fields[PROCFS_VM_COUNT] = {
	[PROCFS_VM_MAJOR_FAULTS] = "major_faults",
	[PROCFS_VM_SWAP_IN] = "swap_in_pages",
	[PROCFS_VM_SWAP_OUT] = "swap_out_pages",
	[PROCFS_VM_REFAULT] = "refault_pages",
	[PROCFS_VM_OOM_KILLS] = "oom_kills",
	[PROCFS_VM_BALLOON] = "balloon_pages",
};

static const char *const psi_fields[PROCFS_PSI_COUNT] = {
	[PROCFS_PSI_SOME_AVG10] = "some_avg10_pct",
	[PROCFS_PSI_SOME_AVG60] = "some_avg60_pct",
	[PROCFS_PSI_SOME_AVG300] = "some_avg300_pct",
	[PROCFS_PSI_FULL_AVG10] = "full_avg10_pct",
	[PROCFS_PSI_FULL_AVG60] = "full_avg60_pct",
	[PROCFS_PSI_FULL_AVG300] = "full_avg300_pct",
};

int
agent_sample_foreach(const struct agent_sample *s,
    int (*cb)(const struct agent_value *v, void *arg), void *arg)
{
	struct agent_value v;
	unsigned i;
	int r;

	memset(&v, 0, sizeof(v));
	v.group = "meminfo";
	for (i = 0; i < PROCFS_MEM_COUNT; i++) {
		if (!procfs_has(s->mem.have, i))
			continue;
		v.name = mem_fields[i];
		v.u = s->mem.kib[i];
		if ((r = cb(&v, arg)) != 0)
			return r;
	}
	v.group = "vmstat";
	for (i = 0; i < PROCFS_VM_COUNT; i++) {
		if (!procfs_has(s->vm.have, i))
			continue;
		v.name = vm_fields[i];
		v.u = s->vm.count[i];
		if ((r = cb(&v, arg)) != 0)
			return r;
	}
	v.group = "psi";
	v.is_pct = true;
	for (i = 0; i < PROCFS_PSI_COUNT; i++) {
		if (!procfs_has(s->psi.have, i))
			continue;
		v.name = psi_fields[i];
		v.pct = s->psi.pct[i];
		if ((r = cb(&v, arg)) != 0)
			return r;
	}
	v.is_pct = false;
	if (s->psi.have & PROCFS_PSI_HAVE_SOME_TOTAL) {
		v.name = "some_total_us";
		v.u = s->psi.some_total_us;
		if ((r = cb(&v, arg)) != 0)
			return r;
	}
	if (s->psi.have & PROCFS_PSI_HAVE_FULL_TOTAL) {
		v.name = "full_total_us";
		v.u = s->psi.full_total_us;
		if ((r = cb(&v, arg)) != 0)
			return r;
	}
	return 0;
}

static bool
id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

void
agent_vm_id(const char *name, char buf[65])
{
	char host[256];
	size_t i;

	if (name == NULL || *name == '\0') {
		if (gethostname(host, sizeof(host)) < 0)
			host[0] = '\0';
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	for (i = 0; i < 64 && name[i] != '\0'; i++)
		buf[i] = id_char(name[i]) ? name[i] : '-';
	buf[i] = '\0';
	if (i == 0)
		strcpy(buf, "unknown");
}
