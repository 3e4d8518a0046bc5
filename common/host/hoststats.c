/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsers of the host's memory statistics; see hoststats.h. Every file is
 * read whole into a bounded buffer and parsed line by line with tables that
 * map a kernel name to a protobuf field, so a kernel that adds or drops a
 * line only adds or drops a field.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hoststats.h"
#include "log.h"
#include "procfs.h"

#define HS_CPUS_MAX	4096
#define HS_CPU_WORDS	(HS_CPUS_MAX / 64)

/* Read path into a malloc'd NUL-terminated buffer of at most HS_FILE_MAX. */
static int
read_text(const char *path, char **ret)
{
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(HS_FILE_MAX + 1);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (len < HS_FILE_MAX) {
		n = read(fd, buf + len, HS_FILE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			free(buf);
			close(fd);
			log_debug("hoststats: read %s: %s", path, strerror(-r));
			return r;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*ret = buf;
	return 0;
}

static int
read_path(char **ret, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
read_path(char **ret, const char *fmt, ...)
{
	char path[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	return read_text(path, ret);
}

static bool
parse_u64(const char *s, char **end, uint64_t *ret)
{
	unsigned long long v;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, end, 10);
	if (errno != 0)
		return false;
	*ret = v;
	return true;
}

/* A field of a "Name: value" or "name value" file: where it goes. */
struct field {
	const char *name;
	size_t value_off;	/* offsetof the uint64_t */
	size_t has_off;		/* offsetof the protobuf_c_boolean */
};

#define F(type, kname, member)						\
	{ kname, offsetof(type, member), offsetof(type, has_##member) }

static const struct field meminfo_fields[] = {
	F(Mm__V1__Meminfo, "MemTotal", total_kib),
	F(Mm__V1__Meminfo, "MemFree", free_kib),
	F(Mm__V1__Meminfo, "MemAvailable", available_kib),
	F(Mm__V1__Meminfo, "Cached", cached_kib),
	F(Mm__V1__Meminfo, "SwapTotal", swap_total_kib),
	F(Mm__V1__Meminfo, "SwapFree", swap_free_kib),
	F(Mm__V1__Meminfo, "AnonPages", anon_kib),
	F(Mm__V1__Meminfo, "Active(file)", active_file_kib),
	F(Mm__V1__Meminfo, "Inactive(file)", inactive_file_kib),
	F(Mm__V1__Meminfo, "Shmem", shmem_kib),
};

static const struct field vmstat_fields[] = {
	F(Mm__V1__Vmstat, "pgmajfault", major_faults),
	F(Mm__V1__Vmstat, "pswpin", swap_in_pages),
	F(Mm__V1__Vmstat, "pswpout", swap_out_pages),
	F(Mm__V1__Vmstat, "oom_kill", oom_kills),
};

static void
set_field(void *msg, const struct field *f, uint64_t v)
{
	*(uint64_t *)((char *)msg + f->value_off) = v;
	*(protobuf_c_boolean *)((char *)msg + f->has_off) = 1;
}

/*
 * Walk "name<sep>value" lines; call each table entry whose name matches.
 * name_end is ':' for meminfo and ' ' for vmstat. Returns how many set.
 */
static int
parse_table(const char *text, char sep, const struct field *t, size_t n,
    void *msg, void (*other)(const char *, size_t, uint64_t, void *))
{
	const char *line = text, *colon, *nl;
	char *end;
	uint64_t v;
	size_t i, len;
	int set = 0;

	for (; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		if (nl == NULL)
			nl = line + strlen(line) - 1;
		colon = memchr(line, sep, (size_t)(nl - line));
		if (colon == NULL || !parse_u64(colon + 1, &end, &v))
			continue;
		len = (size_t)(colon - line);
		for (i = 0; i < n; i++) {
			if (strlen(t[i].name) == len &&
			    memcmp(t[i].name, line, len) == 0) {
				set_field(msg, &t[i], v);
				set++;
				break;
			}
		}
		if (i == n && other != NULL)
			other(line, len, v, msg);
		if (nl[1] == '\0')
			break;
	}
	return set;
}

int
hs_parse_meminfo(const char *text, Mm__V1__Meminfo *ret)
{
	mm__v1__meminfo__init(ret);
	if (parse_table(text, ':', meminfo_fields,
	    sizeof(meminfo_fields) / sizeof(meminfo_fields[0]), ret,
	    NULL) == 0)
		return -EINVAL;
	return 0;
}

/* Refaults: workingset_refault (before 5.9) or its _anon and _file. */
static void
vmstat_other(const char *name, size_t len, uint64_t v, void *arg)
{
	Mm__V1__Vmstat *vs = arg;

	if ((len == 18 && memcmp(name, "workingset_refault", 18) == 0) ||
	    (len == 23 && memcmp(name, "workingset_refault_anon", 23) == 0) ||
	    (len == 23 && memcmp(name, "workingset_refault_file", 23) == 0)) {
		vs->refault_pages += v;
		vs->has_refault_pages = 1;
	}
}

int
hs_parse_vmstat(const char *text, Mm__V1__Vmstat *ret)
{
	int n;

	mm__v1__vmstat__init(ret);
	n = parse_table(text, ' ', vmstat_fields,
	    sizeof(vmstat_fields) / sizeof(vmstat_fields[0]), ret,
	    vmstat_other);
	return n == 0 && !ret->has_refault_pages ? -EINVAL : 0;
}

/* "avg10=1.23": the value in percent, 0..100. */
static bool
psi_avg(const char *line, const char *key, double *ret)
{
	const char *p = strstr(line, key);
	char *end;
	double v;

	if (p == NULL)
		return false;
	errno = 0;
	v = strtod(p + strlen(key), &end);
	if (errno != 0 || end == p + strlen(key) || !(v >= 0.0 && v <= 100.0))
		return false;
	*ret = v;
	return true;
}

static void
psi_line(const char *line, bool full, Mm__V1__Psi *p)
{
	const char *t;
	char *end;
	uint64_t v;
	double d;

#define AVG(key, member)						\
	if (psi_avg(line, key, &d)) {					\
		p->member = d;						\
		p->has_##member = 1;					\
	}
	if (!full) {
		AVG(" avg10=", some_avg10_pct);
		AVG(" avg60=", some_avg60_pct);
		AVG(" avg300=", some_avg300_pct);
	} else {
		AVG(" avg10=", full_avg10_pct);
		AVG(" avg60=", full_avg60_pct);
		AVG(" avg300=", full_avg300_pct);
	}
#undef AVG
	t = strstr(line, " total=");
	if (t == NULL || !parse_u64(t + 7, &end, &v))
		return;
	if (full) {
		p->full_total_us = v;
		p->has_full_total_us = 1;
	} else {
		p->some_total_us = v;
		p->has_some_total_us = 1;
	}
}

int
hs_parse_psi(const char *text, Mm__V1__Psi *ret)
{
	const char *line = text;
	char buf[256];
	size_t len;

	mm__v1__psi__init(ret);
	while (*line != '\0') {
		len = strcspn(line, "\n");
		if (len < sizeof(buf)) {
			memcpy(buf, line, len);
			buf[len] = '\0';
			if (strncmp(buf, "some ", 5) == 0)
				psi_line(buf + 4, false, ret);
			else if (strncmp(buf, "full ", 5) == 0)
				psi_line(buf + 4, true, ret);
		}
		line += len;
		if (*line == '\n')
			line++;
	}
	return ret->has_some_avg10_pct || ret->has_some_total_us ? 0 : -EINVAL;
}

#define READ_AND_PARSE(file, parse)					\
	do {								\
		char *text;						\
		int r = read_path(&text, "%s/" file, proc_root);	\
		if (r < 0)						\
			return r;					\
		r = parse(text, ret);					\
		free(text);						\
		return r;						\
	} while (0)

int
hs_read_meminfo(const char *proc_root, Mm__V1__Meminfo *ret)
{
	READ_AND_PARSE("meminfo", hs_parse_meminfo);
}

int
hs_read_vmstat(const char *proc_root, Mm__V1__Vmstat *ret)
{
	READ_AND_PARSE("vmstat", hs_parse_vmstat);
}

int
hs_read_psi(const char *proc_root, Mm__V1__Psi *ret)
{
	READ_AND_PARSE("pressure/memory", hs_parse_psi);
}

/* One number from a sysfs file. */
static int
read_u64(uint64_t *ret, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
read_u64(uint64_t *ret, const char *fmt, ...)
{
	char path[4096], buf[64], *end;
	va_list ap;
	ssize_t n;
	int fd, r = 0;

	va_start(ap, fmt);
	n = vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		r = -errno;
	close(fd);
	if (r < 0)
		return r;
	buf[n] = '\0';
	if (!parse_u64(buf, &end, ret) || (*end != '\0' && *end != '\n'))
		return -EINVAL;
	return 0;
}

int
hs_read_ksm(const char *sys_root, Mm__V1__KsmStats *ret,
    Mm__V1__KsmSettings *ret_settings)
{
	static const struct field ksm_fields[] = {
		F(Mm__V1__KsmStats, "full_scans", full_scans),
		F(Mm__V1__KsmStats, "pages_shared", shared_pages),
		F(Mm__V1__KsmStats, "pages_sharing", sharing_pages),
		F(Mm__V1__KsmStats, "pages_unshared", unshared_pages),
		F(Mm__V1__KsmStats, "pages_volatile", volatile_pages),
		F(Mm__V1__KsmStats, "ksm_zero_pages", zero_pages),
	};
	const char *dir = "kernel/mm/ksm";
	uint64_t v;
	size_t i;
	int r;

	mm__v1__ksm_stats__init(ret);
	mm__v1__ksm_settings__init(ret_settings);
	r = read_u64(&v, "%s/%s/run", sys_root, dir);
	if (r < 0)
		return r;
	if (v <= 2) {
		ret_settings->run = (Mm__V1__KsmRun)(v + 1);
		ret_settings->has_run = 1;
	}
	if (read_u64(&v, "%s/%s/pages_to_scan", sys_root, dir) == 0 &&
	    v <= UINT32_MAX) {
		ret_settings->pages_to_scan = (uint32_t)v;
		ret_settings->has_pages_to_scan = 1;
	}
	if (read_u64(&v, "%s/%s/sleep_millisecs", sys_root, dir) == 0 &&
	    v <= UINT32_MAX) {
		ret_settings->sleep_ms = (uint32_t)v;
		ret_settings->has_sleep_ms = 1;
	}
	if (read_u64(&v, "%s/%s/merge_across_nodes", sys_root, dir) == 0) {
		ret_settings->merge_across_nodes = v != 0;
		ret_settings->has_merge_across_nodes = 1;
	}
	for (i = 0; i < sizeof(ksm_fields) / sizeof(ksm_fields[0]); i++)
		if (read_u64(&v, "%s/%s/%s", sys_root, dir,
		    ksm_fields[i].name) == 0)
			set_field(ret, &ksm_fields[i], v);
	ret->settings = ret_settings;
	return 0;
}

/* True when <proc_root>/<pid>/comm is "ksmd". */
static bool
is_ksmd(const char *proc_root, int pid)
{
	char path[4096], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/%d/comm", proc_root, pid);
	f = fopen(path, "re");
	if (f == NULL)
		return false;
	if (fgets(comm, sizeof(comm), f) == NULL)
		comm[0] = '\0';
	fclose(f);
	return strcmp(comm, "ksmd\n") == 0;
}

int
hs_read_ksmd_cpu(const char *proc_root, int *pid, uint64_t *ret_ms)
{
	unsigned long long ut, st;
	char path[4096], buf[1024], *p;
	long tck = sysconf(_SC_CLK_TCK);
	FILE *f;

	if (*pid <= 0 || !is_ksmd(proc_root, *pid)) {
		DIR *d = opendir(proc_root);
		struct dirent *de;

		*pid = 0;
		if (d == NULL)
			return -errno;
		/* A kernel thread started at boot: low pids first. */
		while ((de = readdir(d)) != NULL && *pid == 0) {
			int n = atoi(de->d_name);

			if (n > 0 && is_ksmd(proc_root, n))
				*pid = n;
		}
		closedir(d);
		if (*pid == 0)
			return -ENOENT;
	}
	snprintf(path, sizeof(path), "%s/%d/stat", proc_root, *pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -errno;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
	    "%llu", &ut, &st) != 2 || tck <= 0)
		return -EINVAL;
	*ret_ms = (uint64_t)(ut + st) * 1000 / (uint64_t)tck;
	return 0;
}

/* The node number of a "node<N>" directory entry, or -1. */
static int
node_number(const char *name)
{
	char *end;
	long n;

	if (strncmp(name, "node", 4) != 0 || name[4] < '0' || name[4] > '9')
		return -1;
	n = strtol(name + 4, &end, 10);
	if (*end != '\0' || n < 0 || n >= MSG_NODES_MAX)
		return -1;
	return (int)n;
}

/* Bitmap of the nodes present under <sys_root>/devices/system/node. */
static int
node_mask(const char *sys_root, uint64_t *ret_mask)
{
	char path[4096];
	struct dirent *de;
	uint64_t mask = 0;
	DIR *d;
	int n;

	snprintf(path, sizeof(path), "%s/devices/system/node", sys_root);
	d = opendir(path);
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		n = node_number(de->d_name);
		if (n >= 0)
			mask |= 1ull << n;
	}
	closedir(d);
	*ret_mask = mask;
	return 0;
}

/* "Node 0 MemTotal:  5990176 kB" lines: drop "Node N " and parse. */
static int
parse_node_meminfo(const char *text, Mm__V1__NumaNode *ret)
{
	Mm__V1__Meminfo mi;
	char *copy, *p, *q;

	copy = strdup(text);
	if (copy == NULL)
		return -ENOMEM;
	for (p = q = copy; *p != '\0';) {
		if (strncmp(p, "Node ", 5) == 0) {
			p += 5;
			while (*p >= '0' && *p <= '9')
				p++;
			while (*p == ' ')
				p++;
		}
		while (*p != '\0' && *p != '\n')
			*q++ = *p++;
		if (*p == '\n')
			*q++ = *p++;
	}
	*q = '\0';
	hs_parse_meminfo(copy, &mi);
	free(copy);
	ret->total_kib = mi.total_kib;
	ret->has_total_kib = mi.has_total_kib;
	ret->free_kib = mi.free_kib;
	ret->has_free_kib = mi.has_free_kib;
	return 0;
}

int
hs_read_numa_nodes(const char *sys_root, Mm__V1__NumaNode *ret, size_t max,
    size_t *ret_n)
{
	uint64_t mask;
	size_t n = 0;
	char *text;
	int node, r;

	r = node_mask(sys_root, &mask);
	if (r == -ENOENT) {
		*ret_n = 0;
		return 0;
	}
	if (r < 0)
		return r;
	for (node = 0; node < MSG_NODES_MAX && n < max; node++) {
		if (!(mask & (1ull << node)))
			continue;
		mm__v1__numa_node__init(&ret[n]);
		ret[n].node = (uint32_t)node;
		ret[n].has_node = 1;
		r = read_path(&text, "%s/devices/system/node/node%d/meminfo",
		    sys_root, node);
		if (r == 0) {
			r = parse_node_meminfo(text, &ret[n]);
			free(text);
			if (r < 0)
				return r;
		}
		n++;
	}
	*ret_n = n;
	return 0;
}

int
hs_read_numa_maps(const char *proc_root, pid_t pid, uint64_t *ret_pages)
{
	char *text, *line, *save, *tok, *tsave, *end;
	uint64_t pages[MSG_NODES_MAX], v, kps;
	unsigned long node;
	int r;

	r = read_path(&text, "%s/%d/numa_maps", proc_root, (int)pid);
	if (r < 0)
		return r;
	memset(pages, 0, sizeof(pages));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		uint64_t here[MSG_NODES_MAX] = { 0 };

		kps = 4;
		for (tok = strtok_r(line, " ", &tsave); tok != NULL;
		    tok = strtok_r(NULL, " ", &tsave)) {
			if (strncmp(tok, "kernelpagesize_kB=", 18) == 0) {
				if (parse_u64(tok + 18, &end, &v) && v >= 4 &&
				    v <= (1u << 20))
					kps = v;
				continue;
			}
			if (tok[0] != 'N' || tok[1] < '0' || tok[1] > '9')
				continue;
			errno = 0;
			node = strtoul(tok + 1, &end, 10);
			if (errno != 0 || *end != '=' ||
			    node >= MSG_NODES_MAX ||
			    !parse_u64(end + 1, &end, &v) ||
			    v > MSG_PAGES_MAX)
				continue;
			here[node] += v;
		}
		for (node = 0; node < MSG_NODES_MAX; node++)
			pages[node] += here[node] * (kps / 4);
	}
	free(text);
	memcpy(ret_pages, pages, sizeof(pages));
	return 0;
}

int
hs_parse_cpulist(const char *s, uint64_t *bits, size_t nwords)
{
	unsigned long a, b, c;
	char *end;

	memset(bits, 0, nwords * sizeof(*bits));
	while (*s != '\0' && *s != '\n') {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		a = strtoul(s, &end, 10);
		b = a;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return -EINVAL;
			b = strtoul(end + 1, &end, 10);
			if (b < a)
				return -EINVAL;
		}
		for (c = a; c <= b && c < nwords * 64; c++)
			bits[c / 64] |= 1ull << (c % 64);
		if (*end == ',')
			end++;
		else if (*end != '\0' && *end != '\n')
			return -EINVAL;
		s = end;
	}
	return 0;
}

/* The "processor" field (39th) of a task's stat: after "(comm)". */
static int
task_cpu(const char *proc_root, pid_t pid, const char *tid, long *ret)
{
	char *text, *p, *end;
	long cpu;
	int r, i;

	r = read_path(&text, "%s/%d/task/%s/stat", proc_root, (int)pid, tid);
	if (r < 0)
		return r;
	p = strrchr(text, ')');
	r = -EINVAL;
	if (p == NULL)
		goto out;
	p++;
	/* Fields 3..38 to skip, then 39 is processor. */
	for (i = 3; i <= 39; i++) {
		while (*p == ' ')
			p++;
		if (*p == '\0' || *p == '\n')
			goto out;
		if (i == 39)
			break;
		while (*p != ' ' && *p != '\0')
			p++;
	}
	cpu = strtol(p, &end, 10);
	if (end == p || cpu < 0 || cpu >= HS_CPUS_MAX)
		goto out;
	*ret = cpu;
	r = 0;
out:
	free(text);
	return r;
}

int
hs_read_resident_kib(const char *proc_root, pid_t pid, uint64_t *ret_kib)
{
	char path[4096], buf[256], *end;
	uint64_t size, pages;
	long page = sysconf(_SC_PAGESIZE);
	long n;

	/* Read once per guest sample: a small buffer on the stack. */
	if (snprintf(path, sizeof(path), "%s/%d/statm", proc_root,
	    (int)pid) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	n = procfs_read_file(path, buf, sizeof(buf), NULL);
	if (n < 0)
		return (int)n;
	if (!parse_u64(buf, &end, &size) || !parse_u64(end, &end, &pages) ||
	    (*end != ' ' && *end != '\n' && *end != '\0') || page <= 0 ||
	    pages > MSG_KIB_MAX / ((uint64_t)page / 1024))
		return -EINVAL;
	*ret_kib = pages * ((uint64_t)page / 1024);
	return 0;
}

int
hs_read_vcpu_nodes(const char *proc_root, const char *sys_root, pid_t pid,
    uint64_t *ret_mask)
{
	uint64_t (*cpus)[HS_CPU_WORDS], nodes, mask = 0;
	char path[4096], *text;
	struct dirent *de;
	int node, r;
	long cpu;
	DIR *d;

	r = node_mask(sys_root, &nodes);
	if (r < 0)
		return r;
	cpus = calloc(MSG_NODES_MAX, sizeof(*cpus));
	if (cpus == NULL)
		return -ENOMEM;
	for (node = 0; node < MSG_NODES_MAX; node++) {
		if (!(nodes & (1ull << node)))
			continue;
		if (read_path(&text, "%s/devices/system/node/node%d/cpulist",
		    sys_root, node) < 0)
			continue;
		hs_parse_cpulist(text, cpus[node], HS_CPU_WORDS);
		free(text);
	}
	snprintf(path, sizeof(path), "%s/%d/task", proc_root, (int)pid);
	d = opendir(path);
	if (d == NULL) {
		r = -errno;
		free(cpus);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (task_cpu(proc_root, pid, de->d_name, &cpu) < 0)
			continue;
		for (node = 0; node < MSG_NODES_MAX; node++)
			if (cpus[node][cpu / 64] & (1ull << (cpu % 64)))
				mask |= 1ull << node;
	}
	closedir(d);
	free(cpus);
	*ret_mask = mask;
	return 0;
}
