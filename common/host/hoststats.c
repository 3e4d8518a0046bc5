/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The parser of /proc and /sys memory statistics; see hoststats.h. Every
 * file is read whole into a bounded buffer, cut back to its last whole
 * line when it was longer, and parsed line by line without trusting
 * anything in it: lines are bounded, numbers must be plain decimals that
 * fit, and a name seen twice keeps its first value. Tables map a kernel
 * name to a protobuf field, so a kernel that adds or drops a line only
 * adds or drops a field.
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

#define HS_CPUS_MAX	4096
#define HS_CPU_WORDS	(HS_CPUS_MAX / 64)

/* Longest line of meminfo, vmstat or PSI; longer ones are malformed. */
#define LINE_MAX_LEN	256

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- the fields, once ---- */

#define FIELD(type, kname, member, whole, maxv, is_pct, is_ctr)		\
	{ .name = #member, .kernel = kname, .part_of = whole,		\
	  .off = offsetof(type, member),				\
	  .has_off = offsetof(type, has_##member), .max = maxv,	\
	  .pct = is_pct, .counter = is_ctr }
#define MEM(kname, member, whole)					\
	FIELD(Mm__V1__Meminfo, kname, member, whole, MSG_KIB_MAX, false, \
	    false)
#define VM(kname, member, maxv)						\
	FIELD(Mm__V1__Vmstat, kname, member, NULL, maxv, false, true)
#define VM_LEVEL(kname, member, maxv)					\
	FIELD(Mm__V1__Vmstat, kname, member, NULL, maxv, false, false)
#define PSI_PCT(kname, member)						\
	FIELD(Mm__V1__Psi, kname, member, NULL, 100, true, false)
#define PSI_US(kname, member)						\
	FIELD(Mm__V1__Psi, kname, member, NULL, HS_COUNT_MAX, false, true)
#define KSM(kname, member)						\
	FIELD(Mm__V1__KsmStats, kname, member, NULL, UINT64_MAX, false, \
	    false)

static const struct hs_field meminfo_f[] = {
	MEM("MemTotal", total_kib, NULL),
	MEM("MemFree", free_kib, "MemTotal"),
	MEM("MemAvailable", available_kib, "MemTotal"),
	MEM("Cached", cached_kib, "MemTotal"),
	MEM("SwapTotal", swap_total_kib, NULL),
	MEM("SwapFree", swap_free_kib, "SwapTotal"),
	MEM("AnonPages", anon_kib, "MemTotal"),
	MEM("Active(file)", active_file_kib, "MemTotal"),
	MEM("Inactive(file)", inactive_file_kib, "MemTotal"),
	MEM("Shmem", shmem_kib, "MemTotal"),
};

static const struct hs_field vmstat_f[] = {
	VM("pgmajfault", major_faults, HS_COUNT_MAX),
	VM("pswpin", swap_in_pages, MSG_PAGES_MAX),
	VM("pswpout", swap_out_pages, MSG_PAGES_MAX),
	/* Before 5.9; since, the sum of the two in vmstat_aux[]. */
	VM("workingset_refault", refault_pages, MSG_PAGES_MAX),
	VM("oom_kill", oom_kills, HS_COUNT_MAX),
	/* Since 5.1 (5.7 for virtio); before, inflated less deflated. */
	VM_LEVEL("nr_balloon_pages", balloon_pages, MSG_PAGES_MAX),
};

/* The PSI file's lines are "some ..." and "full ...", each with these
 * keys in this order; the kernel name is the line's and the key's. */
static const struct hs_field psi_f[] = {
	PSI_PCT("some avg10", some_avg10_pct),
	PSI_PCT("some avg60", some_avg60_pct),
	PSI_PCT("some avg300", some_avg300_pct),
	PSI_PCT("full avg10", full_avg10_pct),
	PSI_PCT("full avg60", full_avg60_pct),
	PSI_PCT("full avg300", full_avg300_pct),
	PSI_US("some total", some_total_us),
	PSI_US("full total", full_total_us),
};

const struct hs_fields hs_meminfo_fields = {
	"meminfo", meminfo_f, NELEM(meminfo_f)
};
const struct hs_fields hs_vmstat_fields = {
	"vmstat", vmstat_f, NELEM(vmstat_f)
};
const struct hs_fields hs_psi_fields = { "psi", psi_f, NELEM(psi_f) };

bool
hs_has(const struct hs_field *f, const void *msg)
{
	return *(const protobuf_c_boolean *)((const char *)msg +
	    f->has_off) != 0;
}

uint64_t
hs_u64(const struct hs_field *f, const void *msg)
{
	return *(const uint64_t *)((const char *)msg + f->off);
}

double
hs_pct(const struct hs_field *f, const void *msg)
{
	return *(const double *)((const char *)msg + f->off);
}

unsigned
hs_count(const struct hs_fields *fs, const void *msg)
{
	unsigned n = 0;

	for (size_t i = 0; i < fs->n; i++)
		n += hs_has(&fs->f[i], msg);
	return n;
}

bool
hs_equal(const struct hs_fields *fs, const void *a, const void *b)
{
	for (size_t i = 0; i < fs->n; i++) {
		const struct hs_field *f = &fs->f[i];

		if (hs_has(f, a) != hs_has(f, b))
			return false;
		if (!hs_has(f, a))
			continue;
		if (f->pct ? hs_pct(f, a) != hs_pct(f, b) :
		    hs_u64(f, a) != hs_u64(f, b))
			return false;
	}
	return true;
}

static void
set_u64(void *msg, const struct hs_field *f, uint64_t v)
{
	*(uint64_t *)((char *)msg + f->off) = v;
	*(protobuf_c_boolean *)((char *)msg + f->has_off) = 1;
}

static void
set_pct(void *msg, const struct hs_field *f, double v)
{
	*(double *)((char *)msg + f->off) = v;
	*(protobuf_c_boolean *)((char *)msg + f->has_off) = 1;
}

static void
unset(void *msg, const struct hs_field *f)
{
	*(uint64_t *)((char *)msg + f->off) = 0;
	*(protobuf_c_boolean *)((char *)msg + f->has_off) = 0;
}

static const struct hs_field *
find_field(const struct hs_field *t, size_t n, const char *kernel)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(t[i].kernel, kernel) == 0)
			return &t[i];
	return NULL;
}

/* ---- reading ---- */

static size_t
min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* fd from its start into buf, as hs_read_file(). */
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
 * line is parsed as a value; NUL-terminated there. */
static size_t
whole_lines(char *buf, size_t len)
{
	const char *nl = memrchr(buf, '\n', len);

	len = nl != NULL ? (size_t)(nl - buf + 1) : 0;
	buf[len] = '\0';
	return len;
}

long
hs_read_file(const char *path, char *buf, size_t size, bool *ret_truncated)
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
 * Read path into a malloc'd NUL-terminated *ret of *ret_len bytes, at most
 * max; a longer file is cut back to its last whole line and says so in
 * *ret_truncated (may be NULL).
 */
static int
read_text(const char *path, size_t max, char **ret, size_t *ret_len,
    bool *ret_truncated)
{
	bool trunc = false;
	char *buf;
	long n;

	buf = malloc(max + 1);
	if (buf == NULL)
		return -ENOMEM;
	n = hs_read_file(path, buf, max + 1, &trunc);
	if (n < 0) {
		free(buf);
		log_debug("hoststats: read %s: %s", path, strerror((int)-n));
		return (int)n;
	}
	if (trunc)
		n = (long)whole_lines(buf, (size_t)n);
	*ret = buf;
	if (ret_len != NULL)
		*ret_len = (size_t)n;
	if (ret_truncated != NULL)
		*ret_truncated = trunc;
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
	return read_text(path, HS_FILE_MAX, ret, NULL, NULL);
}

/* ---- numbers and lines ---- */

/* Parse a plain decimal from s (n bytes) into *ret. Returns the bytes
 * used, or 0 when s does not start with a number that fits in 64 bits. */
static size_t
scan_u64(const char *s, size_t n, uint64_t *ret)
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

/* The same on NUL-terminated s after blanks; *end points past it. */
static bool
parse_u64(const char *s, char **end, uint64_t *ret)
{
	size_t n = strlen(s), i = skip_blanks(s, n, 0), used;

	used = scan_u64(s + i, n - i, ret);
	if (used == 0)
		return false;
	*end = (char *)s + i + used;
	return true;
}

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
	used = scan_u64(line + i, n - i, &v);
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

/*
 * The "name<sep> value[ unit]" files: each line whose name is in t sets
 * its field once, when its unit is unit and its value within the field's
 * max. Names not in t go to other (may be NULL), which returns false for
 * a value it drops. strict_unit: a line in another unit is malformed
 * whatever its name. Returns the lines dropped.
 */
static unsigned
scan_named(const char *text, size_t len, char sep, const char *unit_want,
    bool strict_unit, const struct hs_field *t, size_t nt, void *msg,
    bool (*other)(const char *name, uint64_t v, void *arg), void *arg)
{
	const struct hs_field *f;
	char name[64], unit[8];
	const char *line;
	unsigned bad = 0;
	size_t pos = 0;
	uint64_t v;
	long n;

	while ((n = next_line(text, len, &pos, &line)) >= 0) {
		bool unit_ok;

		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN || !split_line(line, (size_t)n, sep,
		    name, sizeof(name), &v, unit, sizeof(unit))) {
			bad++;
			continue;
		}
		unit_ok = strcmp(unit, unit_want) == 0;
		if (strict_unit && !unit_ok) {
			bad++;
			continue;
		}
		f = find_field(t, nt, name);
		if (f == NULL) {
			if (other != NULL && !other(name, v, arg))
				bad++;
			continue;
		}
		if (hs_has(f, msg) || !unit_ok || v > f->max) {
			bad++;
			continue;
		}
		set_u64(msg, f, v);
	}
	return bad;
}

static void
scan_done(struct hs_scan *ret_scan, unsigned bad)
{
	if (ret_scan != NULL) {
		ret_scan->bad = bad;
		ret_scan->truncated = false;
	}
}

/* ---- meminfo, vmstat, pressure/memory ---- */

void
hs_scan_meminfo(const char *text, size_t len, Mm__V1__Meminfo *ret,
    struct hs_scan *ret_scan)
{
	const struct hs_field *whole;
	unsigned bad;

	mm__v1__meminfo__init(ret);
	bad = scan_named(text, len, ':', "kB", false, meminfo_f,
	    NELEM(meminfo_f), ret, NULL, NULL);
	/* Parts larger than their whole are lies or torn reads. */
	for (size_t i = 0; i < NELEM(meminfo_f); i++) {
		const struct hs_field *f = &meminfo_f[i];

		if (f->part_of == NULL || !hs_has(f, ret))
			continue;
		whole = find_field(meminfo_f, NELEM(meminfo_f), f->part_of);
		if (!hs_has(whole, ret) || hs_u64(f, ret) <= hs_u64(whole, ret))
			continue;
		unset(ret, f);
		bad++;
	}
	scan_done(ret_scan, bad);
}

/* vmstat names that feed a field through a sum or a difference. */
enum {
	AUX_REFAULT_ANON,
	AUX_REFAULT_FILE,
	AUX_BALLOON_INFLATE,
	AUX_BALLOON_DEFLATE,
	AUX_COUNT
};

static const char *const vmstat_aux[AUX_COUNT] = {
	[AUX_REFAULT_ANON] = "workingset_refault_anon",
	[AUX_REFAULT_FILE] = "workingset_refault_file",
	[AUX_BALLOON_INFLATE] = "balloon_inflate",
	[AUX_BALLOON_DEFLATE] = "balloon_deflate",
};

struct aux {
	uint64_t raw[AUX_COUNT];
	unsigned seen;		/* bit per AUX_ */
};

static bool
vmstat_other(const char *name, uint64_t v, void *arg)
{
	struct aux *a = arg;

	for (unsigned i = 0; i < AUX_COUNT; i++) {
		if (strcmp(vmstat_aux[i], name) != 0)
			continue;
		if ((a->seen & (1u << i)) != 0 || v > MSG_PAGES_MAX)
			return false;
		a->raw[i] = v;
		a->seen |= 1u << i;
		return true;
	}
	return true;
}

static bool
aux_seen(const struct aux *a, unsigned i)
{
	return (a->seen & (1u << i)) != 0;
}

void
hs_scan_vmstat(const char *text, size_t len, Mm__V1__Vmstat *ret,
    struct hs_scan *ret_scan)
{
	struct aux a = { .seen = 0 };
	unsigned bad;
	uint64_t v;

	mm__v1__vmstat__init(ret);
	bad = scan_named(text, len, ' ', "", true, vmstat_f, NELEM(vmstat_f),
	    ret, vmstat_other, &a);
	/* Kernels before nr_balloon_pages count what went in and out;
	 * more out than in makes no sense. */
	if (!ret->has_balloon_pages && aux_seen(&a, AUX_BALLOON_INFLATE) &&
	    aux_seen(&a, AUX_BALLOON_DEFLATE) &&
	    a.raw[AUX_BALLOON_INFLATE] >= a.raw[AUX_BALLOON_DEFLATE]) {
		ret->balloon_pages = a.raw[AUX_BALLOON_INFLATE] -
		    a.raw[AUX_BALLOON_DEFLATE];
		ret->has_balloon_pages = 1;
	}
	/* Since 5.9 the kernel splits refaults into anon and file. */
	if (aux_seen(&a, AUX_REFAULT_ANON) && aux_seen(&a, AUX_REFAULT_FILE)) {
		v = a.raw[AUX_REFAULT_ANON] + a.raw[AUX_REFAULT_FILE];
		ret->refault_pages = 0;
		ret->has_refault_pages = 0;
		if (v > MSG_PAGES_MAX) {
			bad++;
		} else {
			ret->refault_pages = v;
			ret->has_refault_pages = 1;
		}
	}
	scan_done(ret_scan, bad);
}

/* "1.23": digits, optional '.' and up to 2 decimals, 0..100. */
static bool
parse_pct(const char *s, size_t n, double *ret)
{
	uint64_t whole, frac = 0;
	size_t i = scan_u64(s, n, &whole), k = 0;

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

/*
 * One "some avg10=.. avg60=.. avg300=.. total=.." line (or "full ...")
 * into its four fields of psi_f, all or none. False when malformed or
 * when the line was seen before.
 */
static bool
psi_line(const char *line, size_t n, Mm__V1__Psi *p)
{
	static const char *const keys[4] = { "avg10", "avg60", "avg300",
	    "total" };
	const struct hs_field *f[4];
	char kernel[16];
	double pct[3];
	uint64_t total;
	size_t i = 5, end;	/* past "some " or "full " */

	for (int k = 0; k < 4; k++) {
		size_t kl = strlen(keys[k]);

		snprintf(kernel, sizeof(kernel), "%.4s %s", line, keys[k]);
		f[k] = find_field(psi_f, NELEM(psi_f), kernel);
		i = skip_blanks(line, n, i);
		if (n - i < kl + 1 || memcmp(line + i, keys[k], kl) != 0 ||
		    line[i + kl] != '=')
			return false;
		i += kl + 1;
		for (end = i; end < n && line[end] != ' '; end++)
			;
		if (k < 3) {
			if (!parse_pct(line + i, end - i, &pct[k]))
				return false;
		} else if (end == i ||
		    scan_u64(line + i, end - i, &total) != end - i ||
		    total > f[k]->max) {
			return false;
		}
		i = end;
	}
	if (skip_blanks(line, n, i) != n || hs_has(f[3], p))
		return false;
	for (int k = 0; k < 3; k++)
		set_pct(p, f[k], pct[k]);
	set_u64(p, f[3], total);
	return true;
}

void
hs_scan_psi(const char *text, size_t len, Mm__V1__Psi *ret,
    struct hs_scan *ret_scan)
{
	const char *line;
	unsigned bad = 0;
	size_t pos = 0;
	long n;

	mm__v1__psi__init(ret);
	while ((n = next_line(text, len, &pos, &line)) >= 0) {
		if (n == 0)
			continue;
		if (n > LINE_MAX_LEN || n < 5 || (memcmp(line, "some ", 5) &&
		    memcmp(line, "full ", 5)) ||
		    !psi_line(line, (size_t)n, ret))
			bad++;
	}
	scan_done(ret_scan, bad);
}

/*
 * Read <proc_root>/<name> (at most HS_PROC_FILE_MAX) and scan it; the
 * three files differ only in their scanner, hence the macro.
 */
#define LOAD(proc_root, name, scan, ret, ret_scan)			\
	do {								\
		char path[4096], *text = NULL;				\
		struct hs_scan sc;					\
		bool trunc = false;					\
		size_t len = 0;						\
		int r;							\
									\
		if (snprintf(path, sizeof(path), "%s/%s", proc_root,	\
		    name) >= (int)sizeof(path))				\
			return -ENAMETOOLONG;				\
		r = read_text(path, HS_PROC_FILE_MAX, &text, &len,	\
		    &trunc);						\
		if (r < 0)						\
			return r;					\
		scan(text, len, ret, &sc);				\
		free(text);						\
		sc.truncated = trunc;					\
		if (ret_scan != NULL)					\
			*(ret_scan) = sc;				\
		return 0;						\
	} while (0)

int
hs_load_meminfo(const char *proc_root, Mm__V1__Meminfo *ret,
    struct hs_scan *ret_scan)
{
	LOAD(proc_root, "meminfo", hs_scan_meminfo, ret, ret_scan);
}

int
hs_load_vmstat(const char *proc_root, Mm__V1__Vmstat *ret,
    struct hs_scan *ret_scan)
{
	LOAD(proc_root, "vmstat", hs_scan_vmstat, ret, ret_scan);
}

int
hs_load_psi(const char *proc_root, Mm__V1__Psi *ret,
    struct hs_scan *ret_scan)
{
	LOAD(proc_root, "pressure/memory", hs_scan_psi, ret, ret_scan);
}

int
hs_pread_meminfo(int fd, Mm__V1__Meminfo *ret, struct hs_scan *ret_scan)
{
	char buf[8192];
	bool trunc = false;
	long n = read_fd(fd, buf, sizeof(buf), &trunc);

	if (n < 0)
		return (int)n;
	hs_scan_meminfo(buf, trunc ? whole_lines(buf, (size_t)n) :
	    (size_t)n, ret, ret_scan);
	if (ret_scan != NULL)
		ret_scan->truncated = trunc;
	return 0;
}

/* The values-only API: nothing valid is -EINVAL. */
static int
values(int r, const struct hs_fields *fs, const void *msg)
{
	if (r < 0)
		return r;
	return hs_count(fs, msg) == 0 ? -EINVAL : 0;
}

int
hs_read_meminfo(const char *proc_root, Mm__V1__Meminfo *ret)
{
	return values(hs_load_meminfo(proc_root, ret, NULL),
	    &hs_meminfo_fields, ret);
}

int
hs_read_vmstat(const char *proc_root, Mm__V1__Vmstat *ret)
{
	return values(hs_load_vmstat(proc_root, ret, NULL), &hs_vmstat_fields,
	    ret);
}

int
hs_read_psi(const char *proc_root, Mm__V1__Psi *ret)
{
	return values(hs_load_psi(proc_root, ret, NULL), &hs_psi_fields, ret);
}

int
hs_parse_meminfo(const char *text, Mm__V1__Meminfo *ret)
{
	hs_scan_meminfo(text, strlen(text), ret, NULL);
	return values(0, &hs_meminfo_fields, ret);
}

int
hs_parse_vmstat(const char *text, Mm__V1__Vmstat *ret)
{
	hs_scan_vmstat(text, strlen(text), ret, NULL);
	return values(0, &hs_vmstat_fields, ret);
}

int
hs_parse_psi(const char *text, Mm__V1__Psi *ret)
{
	hs_scan_psi(text, strlen(text), ret, NULL);
	return values(0, &hs_psi_fields, ret);
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
	static const struct hs_field ksm_fields[] = {
		KSM("full_scans", full_scans),
		KSM("pages_shared", shared_pages),
		KSM("pages_sharing", sharing_pages),
		KSM("pages_unshared", unshared_pages),
		KSM("pages_volatile", volatile_pages),
		KSM("ksm_zero_pages", zero_pages),
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
	for (i = 0; i < NELEM(ksm_fields); i++)
		if (read_u64(&v, "%s/%s/%s", sys_root, dir,
		    ksm_fields[i].kernel) == 0)
			set_u64(ret, &ksm_fields[i], v);
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
	n = hs_read_file(path, buf, sizeof(buf), NULL);
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
