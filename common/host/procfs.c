/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /proc memory parsers; see procfs.h. Each file is read whole into one
 * buffer and parsed line by line without trusting anything in it: lines
 * are bounded, numbers must be plain decimals that fit, and a name seen
 * twice keeps its first value.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procfs.h"

/* Longest line considered; longer ones are dropped as malformed. */
#define LINE_MAX_LEN	256

static const char *const mem_names[PROCFS_MEM_COUNT] = {
	[PROCFS_MEM_TOTAL] = "MemTotal",
	[PROCFS_MEM_FREE] = "MemFree",
	[PROCFS_MEM_AVAILABLE] = "MemAvailable",
	[PROCFS_MEM_CACHED] = "Cached",
	[PROCFS_MEM_SWAP_TOTAL] = "SwapTotal",
	[PROCFS_MEM_SWAP_FREE] = "SwapFree",
	[PROCFS_MEM_ANON] = "AnonPages",
	[PROCFS_MEM_ACTIVE_FILE] = "Active(file)",
	[PROCFS_MEM_INACTIVE_FILE] = "Inactive(file)",
	[PROCFS_MEM_SHMEM] = "Shmem",
};

/* vmstat names; the refault ones are summed into PROCFS_VM_REFAULT. */
enum {
	VM_PGMAJFAULT,
	VM_PSWPIN,
	VM_PSWPOUT,
	VM_REFAULT_ANON,
	VM_REFAULT_FILE,
	VM_REFAULT_OLD,
	VM_OOM_KILL,
	VM_BALLOON,
	VM_BALLOON_INFLATE,
	VM_BALLOON_DEFLATE,
	VM_NAMES
};

static const char *const vm_names[VM_NAMES] = {
	[VM_PGMAJFAULT] = "pgmajfault",
	[VM_PSWPIN] = "pswpin",
	[VM_PSWPOUT] = "pswpout",
	[VM_REFAULT_ANON] = "workingset_refault_anon",
	[VM_REFAULT_FILE] = "workingset_refault_file",
	[VM_REFAULT_OLD] = "workingset_refault",
	[VM_OOM_KILL] = "oom_kill",
	[VM_BALLOON] = "nr_balloon_pages",
	[VM_BALLOON_INFLATE] = "balloon_inflate",
	[VM_BALLOON_DEFLATE] = "balloon_deflate",
};

/*
 * Iterate over the lines of text: *pos advances past each; returns the
 * line length (without '\n') and its start, or -1 at the end. A final
 * line without '\n' still counts.
 */
static long
next_line(const char *text, size_t len, size_t *pos, const char **ret_line)
{
	const char *start, *nl;
	size_t n;

	if (*pos >= len)
		return -1;
	start = text + *pos;
	nl = memchr(start, '\n', len - *pos);
	n = nl != NULL ? (size_t)(nl - start) : len - *pos;
	*pos += n + (nl != NULL ? 1 : 0);
	*ret_line = start;
	return (long)n;
}

/* Parse a plain decimal of at most 20 digits from s (n bytes) into *ret.
 * Returns the bytes used, or 0 when s does not start with a number that
 * fits in a uint64_t. */
static size_t
parse_u64(const char *s, size_t n, uint64_t *ret)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (i > 0)
		*ret = v;
	return i;
}

static size_t
skip_blanks(const char *s, size_t n, size_t i)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i;
}

/*
 * Split "name<sep> value[ unit]" into its parts. The name ends at sep
 * (':' for meminfo, ' ' for vmstat); the unit, when present, is returned
 * in *ret_unit (else ""). Returns false for anything else.
 */
static bool
split_line(const char *line, size_t n, char sep, char *name, size_t namelen,
    uint64_t *ret_value, char *unit, size_t unitlen)
{
	const char *end = memchr(line, sep, n);
	size_t i, k, used;
	uint64_t v;

	if (end == NULL || end == line || (size_t)(end - line) >= namelen)
		return false;
	memcpy(name, line, (size_t)(end - line));
	name[end - line] = '\0';
	i = skip_blanks(line, n, (size_t)(end - line) + 1);
	used = parse_u64(line + i, n - i, &v);
	if (used == 0)
		return false;
	i += used;
	k = skip_blanks(line, n, i);
	if (k > i && k < n) {
		/* a unit after one or more blanks */
		for (i = 0; k < n && line[k] != ' ' && i + 1 < unitlen; k++)
			unit[i++] = line[k];
		unit[i] = '\0';
		if (skip_blanks(line, n, k) != n)
			return false;
	} else if (k != n) {
		return false;
	} else {
		unit[0] = '\0';
	}
	*ret_value = v;
	return true;
}

static int
find_name(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

void
procfs_parse_meminfo(const char *text, size_t len,
    struct procfs_meminfo *ret)
{
	char name[64], unit[8];
	const char *line;
	size_t pos = 0;
	uint64_t v;
	long n;
	int f;

	memset(ret, 0, sizeof(*ret));
	while ((n = next_line(text, len, &pos, &line)) >= 0) {
		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN || !split_line(line, (size_t)n, ':',
		    name, sizeof(name), &v, unit, sizeof(unit))) {
			ret->bad++;
			continue;
		}
		f = find_name(mem_names, PROCFS_MEM_COUNT, name);
		if (f < 0)
			continue;
		if (procfs_has(ret->have, (unsigned)f) ||
		    strcmp(unit, "kB") != 0 || v > PROCFS_KIB_MAX) {
			ret->bad++;
			continue;
		}
		ret->kib[f] = v;
		ret->have |= 1u << f;
	}
	/* Parts larger than their whole are lies or torn reads. */
	for (f = 0; f < PROCFS_MEM_COUNT; f++) {
		unsigned whole = f == PROCFS_MEM_SWAP_FREE ?
		    PROCFS_MEM_SWAP_TOTAL : PROCFS_MEM_TOTAL;

		if (f == PROCFS_MEM_TOTAL || f == PROCFS_MEM_SWAP_TOTAL ||
		    !procfs_has(ret->have, (unsigned)f) ||
		    !procfs_has(ret->have, whole) ||
		    ret->kib[f] <= ret->kib[whole])
			continue;
		ret->have &= ~(1u << f);
		ret->kib[f] = 0;
		ret->bad++;
	}
}

void
procfs_parse_vmstat(const char *text, size_t len,
    struct procfs_vmstat *ret)
{
	static const int field_of[VM_NAMES] = {
		[VM_PGMAJFAULT] = PROCFS_VM_MAJOR_FAULTS,
		[VM_PSWPIN] = PROCFS_VM_SWAP_IN,
		[VM_PSWPOUT] = PROCFS_VM_SWAP_OUT,
		[VM_REFAULT_ANON] = PROCFS_VM_REFAULT,
		[VM_REFAULT_FILE] = PROCFS_VM_REFAULT,
		[VM_REFAULT_OLD] = PROCFS_VM_REFAULT,
		[VM_OOM_KILL] = PROCFS_VM_OOM_KILLS,
		[VM_BALLOON] = PROCFS_VM_BALLOON,
		[VM_BALLOON_INFLATE] = -1,
		[VM_BALLOON_DEFLATE] = -1,
	};
	uint64_t raw[VM_NAMES] = { 0 };
	uint32_t seen = 0;
	char name[64], unit[8];
	const char *line;
	size_t pos = 0;
	uint64_t v, max;
	long n;
	int i;

	memset(ret, 0, sizeof(*ret));
	while ((n = next_line(text, len, &pos, &line)) >= 0) {
		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN || !split_line(line, (size_t)n, ' ',
		    name, sizeof(name), &v, unit, sizeof(unit)) ||
		    unit[0] != '\0') {
			ret->bad++;
			continue;
		}
		i = find_name(vm_names, VM_NAMES, name);
		if (i < 0)
			continue;
		max = field_of[i] == PROCFS_VM_MAJOR_FAULTS ||
		    field_of[i] == PROCFS_VM_OOM_KILLS ?
		    PROCFS_COUNT_MAX : PROCFS_PAGES_MAX;
		if ((seen & (1u << i)) != 0 || v > max) {
			ret->bad++;
			continue;
		}
		raw[i] = v;
		seen |= 1u << i;
	}
	for (i = 0; i < VM_NAMES; i++) {
		if ((seen & (1u << i)) == 0 || field_of[i] < 0 ||
		    field_of[i] == PROCFS_VM_REFAULT)
			continue;
		ret->count[field_of[i]] = raw[i];
		ret->have |= 1u << field_of[i];
	}
	/* Kernels before nr_balloon_pages count what went in and out. */
	if ((seen & (1u << VM_BALLOON)) == 0 &&
	    (seen & (1u << VM_BALLOON_INFLATE)) != 0 &&
	    (seen & (1u << VM_BALLOON_DEFLATE)) != 0 &&
	    raw[VM_BALLOON_INFLATE] >= raw[VM_BALLOON_DEFLATE]) {
		ret->count[PROCFS_VM_BALLOON] = raw[VM_BALLOON_INFLATE] -
		    raw[VM_BALLOON_DEFLATE];
		ret->have |= 1u << PROCFS_VM_BALLOON;
	}
	/* Since 5.9 the kernel splits refaults into anon and file. */
	if ((seen & (1u << VM_REFAULT_ANON)) != 0 &&
	    (seen & (1u << VM_REFAULT_FILE)) != 0)
		v = raw[VM_REFAULT_ANON] + raw[VM_REFAULT_FILE];
	else if ((seen & (1u << VM_REFAULT_OLD)) != 0)
		v = raw[VM_REFAULT_OLD];
	else
		return;
	if (v > PROCFS_PAGES_MAX) {
		ret->bad++;
		return;
	}
	ret->count[PROCFS_VM_REFAULT] = v;
	ret->have |= 1u << PROCFS_VM_REFAULT;
}

/* Parse "avg10=1.23" style: digits, optional '.' and up to 2 decimals. */
static bool
parse_pct(const char *s, size_t n, double *ret)
{
	uint64_t whole, frac = 0;
	size_t i = parse_u64(s, n, &whole), k = 0;

	if (i == 0 || whole > 100)
		return false;
	if (i < n && s[i] == '.') {
		for (i++; i < n && k < 2 && s[i] >= '0' && s[i] <= '9'; i++) {
			frac = frac * 10 + (uint64_t)(s[i] - '0');
			k++;
		}
		if (k == 0)
			return false;
		if (k == 1)
			frac *= 10;
	}
	if (i != n)
		return false;
	*ret = (double)whole + (double)frac / 100.0;
	return *ret <= 100.0;
}

/* One "some ..." or "full ..." line into pct[base..base+2] and *total. */
static bool
parse_psi_line(const char *line, size_t n, double pct[3], uint64_t *total)
{
	static const char *const keys[4] = {
		"avg10=", "avg60=", "avg300=", "total="
	};
	size_t i = 5, end;	/* past "some " or "full " */

	for (int k = 0; k < 4; k++) {
		size_t kl = strlen(keys[k]);

		i = skip_blanks(line, n, i);
		if (n - i < kl || memcmp(line + i, keys[k], kl) != 0)
			return false;
		i += kl;
		for (end = i; end < n && line[end] != ' '; end++)
			;
		if (k < 3) {
			if (!parse_pct(line + i, end - i, &pct[k]))
				return false;
		} else if (parse_u64(line + i, end - i, total) != end - i ||
		    end == i || *total > PROCFS_COUNT_MAX) {
			return false;
		}
		i = end;
	}
	return skip_blanks(line, n, i) == n;
}

void
procfs_parse_psi(const char *text, size_t len, struct procfs_psi *ret)
{
	const char *line;
	size_t pos = 0;
	double pct[3];
	uint64_t total;
	long n;

	memset(ret, 0, sizeof(*ret));
	while ((n = next_line(text, len, &pos, &line)) >= 0) {
		bool some;
		unsigned base;
		uint32_t total_bit;

		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN || n < 5 || (memcmp(line, "some ", 5) &&
		    memcmp(line, "full ", 5))) {
			ret->bad++;
			continue;
		}
		some = line[0] == 's';
		base = some ? PROCFS_PSI_SOME_AVG10 : PROCFS_PSI_FULL_AVG10;
		total_bit = some ? PROCFS_PSI_HAVE_SOME_TOTAL :
		    PROCFS_PSI_HAVE_FULL_TOTAL;
		if ((ret->have & total_bit) != 0 ||
		    !parse_psi_line(line, (size_t)n, pct, &total)) {
			ret->bad++;
			continue;
		}
		for (unsigned k = 0; k < 3; k++) {
			ret->pct[base + k] = pct[k];
			ret->have |= 1u << (base + k);
		}
		if (some)
			ret->some_total_us = total;
		else
			ret->full_total_us = total;
		ret->have |= total_bit;
	}
}

static size_t
min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* fd from its start into buf, as procfs_read_file(). */
static long
read_fd(int fd, char *buf, size_t size, bool *ret_truncated)
{
	size_t len = 0;
	ssize_t n;
	char extra;

	while (len < size - 1) {
		n = pread(fd, buf + len, size - 1 - len, (off_t)len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		/* Never more than asked for; said so for the compiler,
		 * whose -O2 range analysis cannot see it. */
		len += min_size((size_t)n, size - 1 - len);
	}
	if (ret_truncated != NULL)
		*ret_truncated = len == size - 1 &&
		    pread(fd, &extra, 1, (off_t)len) > 0;
	buf[len] = '\0';
	return (long)len;
}

/* A truncated read is cut back to its last whole line, so that no half
 * line is parsed as a value. */
static size_t
whole_lines(const char *buf, size_t len)
{
	const char *nl = memrchr(buf, '\n', len);

	return nl != NULL ? (size_t)(nl - buf + 1) : 0;
}

long
procfs_read_file(const char *path, char *buf, size_t size,
    bool *ret_truncated)
{
	long n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read_fd(fd, buf, size, ret_truncated);
	close(fd);
	return n;
}

/*
 * Read root/name into a heap buffer; a truncated file is cut back to its
 * last whole line so no half line is parsed as a value.
 */
static char *
read_whole(const char *root, const char *name, long *ret_len,
    bool *ret_truncated, int *ret_err)
{
	char path[4096];
	char *buf;
	long n;

	if (snprintf(path, sizeof(path), "%s/%s", root, name) >=
	    (int)sizeof(path)) {
		*ret_err = -ENAMETOOLONG;
		return NULL;
	}
	buf = malloc(PROCFS_FILE_MAX);
	if (buf == NULL) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	n = procfs_read_file(path, buf, PROCFS_FILE_MAX, ret_truncated);
	if (n < 0) {
		free(buf);
		*ret_err = (int)n;
		return NULL;
	}
	if (*ret_truncated)
		n = (long)whole_lines(buf, (size_t)n);
	*ret_len = n;
	return buf;
}

#define READ_AND_PARSE(root, name, parse, ret)				\
	do {								\
		bool trunc = false;					\
		long len = 0;						\
		int err = 0;						\
		char *buf = read_whole(root, name, &len, &trunc, &err);	\
									\
		if (buf == NULL)					\
			return err;					\
		parse(buf, (size_t)len, ret);				\
		(ret)->truncated = trunc;				\
		free(buf);						\
		return 0;						\
	} while (0)

int
procfs_read_meminfo(const char *root, struct procfs_meminfo *ret)
{
	READ_AND_PARSE(root, "meminfo", procfs_parse_meminfo, ret);
}

int
procfs_pread_meminfo(int fd, struct procfs_meminfo *ret)
{
	char buf[8192];
	bool trunc = false;
	long n = read_fd(fd, buf, sizeof(buf), &trunc);

	if (n < 0)
		return (int)n;
	procfs_parse_meminfo(buf, trunc ? whole_lines(buf, (size_t)n) :
	    (size_t)n, ret);
	ret->truncated = trunc;
	return 0;
}

int
procfs_read_vmstat(const char *root, struct procfs_vmstat *ret)
{
	READ_AND_PARSE(root, "vmstat", procfs_parse_vmstat, ret);
}

int
procfs_read_psi(const char *root, struct procfs_psi *ret)
{
	READ_AND_PARSE(root, "pressure/memory", procfs_parse_psi, ret);
}
