/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one /proc and /sys parser against the fixture trees: the host's
 * tests/fixtures/host1 (a two-node host with KSM and one QEMU process) and
 * the guests' tests/fixtures/proc/ (a normal guest, both balloon styles,
 * kernels without PSI or with the old refault counter, and hostile content
 * that must lose exactly the bad fields and keep the good ones), and
 * against broken text: what a kernel prints must land in the right report
 * field, and garbage must not.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include <cmocka.h>

#include "hoststats.h"
#include "testutil.h"

static char *proc_root, *sys_root;

static int
setup(void **state)
{
	proc_root = tu_source_path("tests/fixtures/host1/proc");
	sys_root = tu_source_path("tests/fixtures/host1/sys");
	return 0;
}

static int
teardown(void **state)
{
	free(proc_root);
	free(sys_root);
	return 0;
}

static void
test_hoststats_meminfo(void **state)
{
	Mm__V1__Meminfo mi;

	assert_int_equal(hs_read_meminfo(proc_root, &mi), 0);
	assert_true(mi.has_total_kib);
	assert_int_equal(mi.total_kib, 16303412);
	assert_int_equal(mi.free_kib, 1234567);
	assert_int_equal(mi.available_kib, 8765432);
	assert_int_equal(mi.cached_kib, 6543210);
	assert_int_equal(mi.swap_total_kib, 2097148);
	assert_int_equal(mi.swap_free_kib, 2000000);
	assert_int_equal(mi.anon_kib, 3100000);
	assert_int_equal(mi.active_file_kib, 2000000);
	assert_int_equal(mi.inactive_file_kib, 3900000);
	assert_int_equal(mi.shmem_kib, 54321);
}

static void
test_hoststats_meminfo_partial_and_garbage(void **state)
{
	Mm__V1__Meminfo mi;

	assert_int_equal(hs_parse_meminfo("MemTotal: 100 kB\nMemFree: x kB\n"
	    "Cached:\nMemAvailablex: 5 kB\nMemFree 7", &mi), 0);
	assert_true(mi.has_total_kib);
	assert_int_equal(mi.total_kib, 100);
	assert_false(mi.has_free_kib);
	assert_false(mi.has_cached_kib);
	assert_false(mi.has_available_kib);
	assert_int_equal(hs_parse_meminfo("", &mi), -EINVAL);
	assert_int_equal(hs_parse_meminfo("MemTotal: 99999999999999999999999 "
	    "kB\n", &mi), -EINVAL);
	assert_int_equal(hs_read_meminfo("/nonexistent", &mi), -ENOENT);
}

static void
test_hoststats_vmstat(void **state)
{
	Mm__V1__Vmstat vs;

	assert_int_equal(hs_read_vmstat(proc_root, &vs), 0);
	assert_int_equal(vs.major_faults, 4711);
	assert_int_equal(vs.swap_in_pages, 17);
	assert_int_equal(vs.swap_out_pages, 23);
	assert_true(vs.has_refault_pages);
	assert_int_equal(vs.refault_pages, 350);
	assert_int_equal(vs.oom_kills, 2);
	/* Before 5.9 there is one refault counter. */
	assert_int_equal(hs_parse_vmstat("workingset_refault 9\n", &vs), 0);
	assert_int_equal(vs.refault_pages, 9);
	assert_false(vs.has_major_faults);
}

static void
test_hoststats_psi(void **state)
{
	Mm__V1__Psi p;

	assert_int_equal(hs_read_psi(proc_root, &p), 0);
	assert_true(p.some_avg10_pct == 1.25);
	assert_true(p.some_avg60_pct == 0.50);
	assert_true(p.some_avg300_pct == 0.10);
	assert_true(p.full_avg10_pct == 0.75);
	assert_int_equal(p.some_total_us, 123456);
	assert_int_equal(p.full_total_us, 65432);
	/* Out of range and missing pieces stay absent: a line is taken
	 * whole or not at all, so its good values go with its bad ones. */
	assert_int_equal(hs_parse_psi("some avg10=101.00 avg60=nan "
	    "avg300=0.10 total=5\n", &p), -EINVAL);
	assert_false(p.has_some_avg10_pct);
	assert_false(p.has_some_avg60_pct);
	assert_false(p.has_some_avg300_pct);
	assert_false(p.has_some_total_us);
	assert_false(p.has_full_avg10_pct);
	assert_int_equal(hs_parse_psi("some avg10=101.00 avg60=nan "
	    "avg300=0.10 total=5\nfull avg10=0.10 avg60=0.20 avg300=0.30 "
	    "total=4\n", &p), 0);
	assert_false(p.has_some_avg300_pct);
	assert_true(p.has_full_avg60_pct);
	assert_true(p.full_avg60_pct == 0.20);
	assert_int_equal(p.full_total_us, 4);
	assert_int_equal(hs_parse_psi("nothing here\n", &p), -EINVAL);
}

static void
test_hoststats_ksm(void **state)
{
	Mm__V1__KsmStats k;
	Mm__V1__KsmSettings s;

	assert_int_equal(hs_read_ksm(sys_root, &k, &s), 0);
	assert_ptr_equal(k.settings, &s);
	assert_int_equal(s.run, MM__V1__KSM_RUN__KSM_RUN_MERGE);
	assert_int_equal(s.pages_to_scan, 100);
	assert_int_equal(s.sleep_ms, 20);
	assert_true(s.has_merge_across_nodes);
	assert_false(s.merge_across_nodes);
	assert_int_equal(k.full_scans, 12);
	assert_int_equal(k.shared_pages, 1000);
	assert_int_equal(k.sharing_pages, 5000);
	assert_int_equal(k.unshared_pages, 300);
	assert_int_equal(k.volatile_pages, 7);
	assert_int_equal(k.zero_pages, 64);
	assert_int_equal(hs_read_ksm("/nonexistent", &k, &s), -ENOENT);
}

static void
test_hoststats_ksmd_cpu(void **state)
{
	uint64_t ms = 0;
	int pid = 0;

	/* utime 150 + stime 250 ticks. */
	assert_int_equal(hs_read_ksmd_cpu(proc_root, &pid, &ms), 0);
	assert_int_equal(pid, 37);
	assert_int_equal(ms, 400 * 1000 / sysconf(_SC_CLK_TCK));
	/* A stale cached pid is found again. */
	pid = 4242;
	assert_int_equal(hs_read_ksmd_cpu(proc_root, &pid, &ms), 0);
	assert_int_equal(pid, 37);
	pid = 0;
	assert_int_equal(hs_read_ksmd_cpu("/nonexistent", &pid, &ms),
	    -ENOENT);
}

static void
test_hoststats_numa_nodes(void **state)
{
	Mm__V1__NumaNode nodes[MSG_NODES_MAX];
	size_t n;

	assert_int_equal(hs_read_numa_nodes(sys_root, nodes, MSG_NODES_MAX,
	    &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(nodes[0].node, 0);
	assert_int_equal(nodes[0].total_kib, 8151706);
	assert_int_equal(nodes[0].free_kib, 600000);
	assert_int_equal(nodes[1].node, 1);
	assert_int_equal(nodes[1].free_kib, 634567);
	assert_int_equal(hs_read_numa_nodes("/nonexistent", nodes,
	    MSG_NODES_MAX, &n), 0);
	assert_int_equal(n, 0);
}

static void
test_hoststats_numa_maps(void **state)
{
	uint64_t pages[MSG_NODES_MAX];

	assert_int_equal(hs_read_numa_maps(proc_root, 4242, pages), 0);
	assert_int_equal(pages[0], 2 + 100000 + 3);
	/* 512 huge pages of 2 MiB are 512 * 512 pages of 4 KiB. */
	assert_int_equal(pages[1], 162144 + 512 * 512);
	assert_int_equal(pages[2], 0);
	assert_int_equal(hs_read_numa_maps(proc_root, 1, pages), -ENOENT);
}

static void
test_hoststats_vcpu_nodes(void **state)
{
	uint64_t mask = 0;

	/* CPU 4 is on node 0, CPU 6 on node 1; "CPU 0/KVM" has a space. */
	assert_int_equal(hs_read_vcpu_nodes(proc_root, sys_root, 4242, &mask),
	    0);
	assert_int_equal(mask, 0x3);
}

static void
test_hoststats_cpulist(void **state)
{
	uint64_t bits[2];

	assert_int_equal(hs_parse_cpulist("0-3,8,10-11\n", bits, 2), 0);
	assert_int_equal(bits[0], 0xd0f);
	assert_int_equal(hs_parse_cpulist("64,127", bits, 2), 0);
	assert_int_equal(bits[0], 0);
	assert_int_equal(bits[1], 0x8000000000000001ull);
	assert_int_equal(hs_parse_cpulist("3-1", bits, 2), -EINVAL);
	assert_int_equal(hs_parse_cpulist("a", bits, 2), -EINVAL);
	assert_int_equal(hs_parse_cpulist("1-", bits, 2), -EINVAL);
}

/*
 * Asserts that msg has exactly the fields of fs named in the NULL-ended
 * list, as "have" masks did.
 */
static void
assert_fields(const struct hs_fields *fs, const void *msg, ...)
{
	const char *name;
	unsigned want = 0;
	va_list ap;

	va_start(ap, msg);
	while ((name = va_arg(ap, const char *)) != NULL) {
		size_t i;

		for (i = 0; i < fs->n && strcmp(fs->f[i].name, name) != 0; i++)
			;
		assert_true(i < fs->n);
		assert_true(hs_has(&fs->f[i], msg));
		want++;
	}
	va_end(ap);
	assert_int_equal(hs_count(fs, msg), want);
}

static char *
guest_fixture(const char *name)
{
	char rel[256];

	snprintf(rel, sizeof(rel), "tests/fixtures/proc/%s", name);
	return tu_source_path(rel);
}

/* Every field of Meminfo, Vmstat and Psi is in the table once, under its
 * proto name, pointing at its own value and has_ flag. */
static void
test_hoststats_tables_match_proto(void **state)
{
	static const struct {
		const struct hs_fields *fs;
		const ProtobufCMessageDescriptor *d;
	} t[] = {
		{ &hs_meminfo_fields, &mm__v1__meminfo__descriptor },
		{ &hs_vmstat_fields, &mm__v1__vmstat__descriptor },
		{ &hs_psi_fields, &mm__v1__psi__descriptor },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(t[i].fs->n, t[i].d->n_fields);
		for (size_t k = 0; k < t[i].fs->n; k++) {
			const struct hs_field *f = &t[i].fs->f[k];
			const ProtobufCFieldDescriptor *fd =
			    protobuf_c_message_descriptor_get_field_by_name(
			    t[i].d, f->name);

			assert_non_null(fd);
			/* In the proto's order, as channels print them. */
			assert_int_equal(fd, &t[i].d->fields[k]);
			assert_int_equal(f->off, fd->offset);
			assert_int_equal(f->has_off, fd->quantifier_offset);
			assert_int_equal(f->pct,
			    fd->type == PROTOBUF_C_TYPE_DOUBLE);
		}
	}
}

static void
test_hoststats_guest_normal(void **state)
{
	char *root = guest_fixture("normal");
	struct hs_scan sc;
	Mm__V1__Meminfo m;
	Mm__V1__Vmstat v;
	Mm__V1__Psi p;

	assert_int_equal(hs_load_meminfo(root, &m, &sc), 0);
	assert_int_equal(hs_count(&hs_meminfo_fields, &m),
	    hs_meminfo_fields.n);
	assert_int_equal(sc.bad, 0);
	assert_false(sc.truncated);
	assert_int_equal(m.total_kib, 4028464);
	assert_int_equal(m.free_kib, 2211948);
	assert_int_equal(m.available_kib, 3301520);
	assert_int_equal(m.cached_kib, 1176400);
	assert_int_equal(m.swap_total_kib, 1048572);
	assert_int_equal(m.swap_free_kib, 1040380);
	assert_int_equal(m.anon_kib, 320288);
	assert_int_equal(m.active_file_kib, 512472);
	assert_int_equal(m.inactive_file_kib, 643672);
	assert_int_equal(m.shmem_kib, 72288);

	assert_int_equal(hs_load_vmstat(root, &v, &sc), 0);
	/* Everything but the balloon: this guest has none. */
	assert_fields(&hs_vmstat_fields, &v, "major_faults", "swap_in_pages",
	    "swap_out_pages", "refault_pages", "oom_kills", NULL);
	assert_int_equal(v.major_faults, 5872);
	assert_int_equal(v.swap_in_pages, 129);
	assert_int_equal(v.swap_out_pages, 2048);
	assert_int_equal(v.refault_pages, 17 + 4203);
	assert_int_equal(v.oom_kills, 2);

	assert_int_equal(hs_load_psi(root, &p, &sc), 0);
	assert_int_equal(hs_count(&hs_psi_fields, &p), hs_psi_fields.n);
	assert_int_equal(sc.bad, 0);
	assert_true(p.some_avg10_pct == 1.52);
	assert_true(p.some_avg60_pct == 0.48);
	assert_true(p.some_avg300_pct == 0.10);
	assert_true(p.full_avg10_pct == 0.40);
	assert_true(p.full_avg300_pct == 0.03);
	assert_int_equal(p.some_total_us, 1843210);
	assert_int_equal(p.full_total_us, 402117);
	free(root);
}

/* The meminfo of fixture name, which has every field. */
static void
full_meminfo(const char *name, Mm__V1__Meminfo *ret)
{
	char *root = guest_fixture(name);

	assert_int_equal(hs_read_meminfo(root, ret), 0);
	assert_int_equal(hs_count(&hs_meminfo_fields, ret),
	    hs_meminfo_fields.n);
	free(root);
}

/* A balloon that takes memory away shrinks MemTotal itself. */
static void
test_hoststats_balloon_shrinks_total(void **state)
{
	Mm__V1__Meminfo m;

	full_meminfo("balloon", &m);
	assert_int_equal(m.total_kib, 1015808);
	assert_int_equal(m.available_kib, 312004);
}

/* With deflate-on-oom MemTotal stays and the balloon hides in "used". */
static void
test_hoststats_deflate_on_oom(void **state)
{
	Mm__V1__Meminfo m;

	full_meminfo("deflate-on-oom", &m);
	assert_int_equal(m.total_kib, 4028464);
	assert_int_equal(m.free_kib, 81920);
	assert_int_equal(m.available_kib, 190000);
}

static void
test_hoststats_no_psi(void **state)
{
	char *root = guest_fixture("no-psi");
	struct hs_scan sc = { .bad = 12345 };
	Mm__V1__Psi p = { .some_total_us = 12345 };

	assert_int_equal(hs_load_psi(root, &p, &sc), -ENOENT);
	/* untouched on error */
	assert_int_equal(p.some_total_us, 12345);
	assert_int_equal(sc.bad, 12345);
	assert_int_equal(hs_read_psi(root, &p), -ENOENT);
	assert_int_equal(p.some_total_us, 12345);
	free(root);
}

static void
test_hoststats_old_refault(void **state)
{
	char *root = guest_fixture("old-kernel");
	Mm__V1__Vmstat v;

	assert_int_equal(hs_read_vmstat(root, &v), 0);
	assert_fields(&hs_vmstat_fields, &v, "major_faults", "swap_in_pages",
	    "swap_out_pages", "refault_pages", NULL);
	assert_int_equal(v.refault_pages, 31337);
	assert_int_equal(v.major_faults, 77);
	free(root);
}

static void
test_hoststats_hostile(void **state)
{
	char *root = guest_fixture("hostile");
	struct hs_scan sc;
	Mm__V1__Meminfo m;
	Mm__V1__Vmstat v;
	Mm__V1__Psi p;

	assert_int_equal(hs_load_meminfo(root, &m, &sc), 0);
	assert_fields(&hs_meminfo_fields, &m, "total_kib", "swap_total_kib",
	    "shmem_kib", NULL);
	assert_int_equal(m.total_kib, 2097152);
	assert_int_equal(m.shmem_kib, 2048);	/* first one */
	assert_int_equal(m.swap_free_kib, 0);	/* above SwapTotal */
	assert_int_equal(sc.bad, 13);

	assert_int_equal(hs_load_vmstat(root, &v, &sc), 0);
	assert_fields(&hs_vmstat_fields, &v, "refault_pages", "oom_kills",
	    NULL);
	assert_int_equal(v.refault_pages, 3);
	assert_int_equal(v.oom_kills, 3);	/* first one */
	assert_int_equal(sc.bad, 4);

	assert_int_equal(hs_load_psi(root, &p, &sc), 0);
	assert_fields(&hs_psi_fields, &p, "full_avg10_pct", "full_avg60_pct",
	    "full_avg300_pct", "full_total_us", NULL);
	assert_true(p.full_avg60_pct == 0.20);
	assert_int_equal(p.full_total_us, 4);
	assert_int_equal(sc.bad, 2);
	free(root);
}

/* The balloon's pages: the gauge where the kernel has it, else what went
 * in less what came out. */
static void
test_hoststats_balloon_pages(void **state)
{
	Mm__V1__Vmstat v;

	assert_int_equal(hs_parse_vmstat("nr_free_pages 10\n"
	    "nr_balloon_pages 2560\nballoon_inflate 9000\n"
	    "balloon_deflate 100\n", &v), 0);
	assert_fields(&hs_vmstat_fields, &v, "balloon_pages", NULL);
	assert_int_equal(v.balloon_pages, 2560);
	assert_int_equal(hs_parse_vmstat("balloon_inflate 9000\n"
	    "balloon_deflate 100\n", &v), 0);
	assert_fields(&hs_vmstat_fields, &v, "balloon_pages", NULL);
	assert_int_equal(v.balloon_pages, 8900);
	/* More out than in makes no sense: unknown. */
	assert_int_equal(hs_parse_vmstat("balloon_inflate 100\n"
	    "balloon_deflate 9000\n", &v), -EINVAL);
	assert_int_equal(hs_count(&hs_vmstat_fields, &v), 0);
}

/* Strings that must not crash or yield a value. */
static void
test_hoststats_garbage_strings(void **state)
{
	static const char *const texts[] = {
		"", "\n\n\n", "MemTotal:", "MemTotal: kB", "MemTotal: 1 kB x",
		"MemTotal:\t\t 12 kB trailing", "some", "some avg10=",
		"some avg10=1.234 avg60=0 avg300=0 total=1",
		"some avg10=1. avg60=0 avg300=0 total=1",
		"some avg10=nan avg60=0 avg300=0 total=1",
		"some avg10=1 avg60=0 avg300=0 total=",
		"some avg10=1 avg60=0 avg300=0 total=9223372036854775808",
		"full avg10=0 avg60=0 avg300=0 total=1 extra=2",
		"some avg10 =1 avg60=0 avg300=0 total=1",
		"pgmajfault 5 junk", "pgmajfault -5", "pgmajfault 0x10",
	};
	struct hs_scan sc;
	Mm__V1__Meminfo m;
	Mm__V1__Vmstat v;
	Mm__V1__Psi p;
	char big[600];

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		hs_scan_meminfo(texts[i], strlen(texts[i]), &m, NULL);
		hs_scan_vmstat(texts[i], strlen(texts[i]), &v, NULL);
		hs_scan_psi(texts[i], strlen(texts[i]), &p, NULL);
		assert_int_equal(hs_count(&hs_meminfo_fields, &m), 0);
		assert_int_equal(hs_count(&hs_vmstat_fields, &v), 0);
		assert_int_equal(hs_count(&hs_psi_fields, &p), 0);
		assert_int_equal(hs_parse_meminfo(texts[i], &m), -EINVAL);
		assert_int_equal(hs_parse_vmstat(texts[i], &v), -EINVAL);
		assert_int_equal(hs_parse_psi(texts[i], &p), -EINVAL);
	}
	/* An overlong line is dropped even if it starts well. */
	memset(big, ' ', sizeof(big));
	memcpy(big, "MemTotal: 1", 11);
	memcpy(big + sizeof(big) - 3, " kB", 3);
	hs_scan_meminfo(big, sizeof(big), &m, &sc);
	assert_int_equal(hs_count(&hs_meminfo_fields, &m), 0);
	assert_int_equal(sc.bad, 1);
	/* Not NUL-terminated: only len bytes count. */
	hs_scan_meminfo("MemTotal: 12 kB\nMemFree: 3 kB", 16, &m, NULL);
	assert_fields(&hs_meminfo_fields, &m, "total_kib", NULL);
}

/* Where the host's and the guest's parsers disagreed, the stricter rule
 * holds for both: a name seen twice keeps its first value, a value with
 * anything after it is dropped, and so is a part above its whole. */
static void
test_hoststats_strict_for_hosts_too(void **state)
{
	Mm__V1__Meminfo m;
	Mm__V1__Vmstat v;
	struct hs_scan sc;
	static const char vm[] = "oom_kill 3\noom_kill 4\npswpin 7 pages\n"
	    "workingset_refault 1\nworkingset_refault_anon 2\n"
	    "workingset_refault_file 3\n";

	hs_scan_vmstat(vm, strlen(vm), &v, &sc);
	assert_fields(&hs_vmstat_fields, &v, "oom_kills", "refault_pages",
	    NULL);
	assert_int_equal(v.oom_kills, 3);
	/* anon + file where the kernel has them, not all three summed */
	assert_int_equal(v.refault_pages, 2 + 3);
	assert_int_equal(sc.bad, 2);
	assert_int_equal(hs_parse_meminfo("MemTotal: 100 kB\n"
	    "Cached: 101 kB\nMemFree: 100 kB\nShmem: 5 MB\n", &m), 0);
	assert_fields(&hs_meminfo_fields, &m, "total_kib", "free_kib", NULL);
}

/* A file larger than the buffer loses its last partial line only. */
static void
test_hoststats_truncated(void **state)
{
	char *dir = tu_tmpdir(), *text, *p;
	struct hs_scan sc;
	Mm__V1__Vmstat v;
	size_t n = 0;

	text = malloc(HS_PROC_FILE_MAX + 4096);
	p = text;
	p += sprintf(p, "pgmajfault 42\n");
	while ((size_t)(p - text) < HS_PROC_FILE_MAX + 100)
		p += sprintf(p, "nr_filler_%zu 1\n", n++);
	sprintf(p, "oom_kill 7\n");
	free(tu_write_file(dir, "vmstat", text));
	assert_int_equal(hs_load_vmstat(dir, &v, &sc), 0);
	assert_true(sc.truncated);
	assert_int_equal(sc.bad, 0);
	assert_fields(&hs_vmstat_fields, &v, "major_faults", NULL);
	assert_int_equal(v.major_faults, 42);
	free(text);
	tu_rmtree(dir);
	free(dir);
}

/* meminfo kept open and read again from its start each time; a long one
 * is cut at its last whole line like any other. */
static void
test_hoststats_pread_meminfo(void **state)
{
	char *dir = tu_tmpdir(), *path, *text, *p;
	struct hs_scan sc;
	Mm__V1__Meminfo m;
	size_t n = 0;
	int fd;

	path = tu_write_file(dir, "meminfo", "MemTotal: 1000 kB\n"
	    "MemAvailable: 600 kB\n");
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(hs_pread_meminfo(fd, &m, &sc), 0);
	assert_fields(&hs_meminfo_fields, &m, "total_kib", "available_kib",
	    NULL);
	assert_int_equal(m.available_kib, 600);
	assert_false(sc.truncated);
	/* Changed under the open fd, as /proc changes: seen. */
	assert_int_equal(pwrite(fd, "MemTotal: 1000 kB\nMemAvailable: 500 kB\n",
	    39, 0), 39);
	assert_int_equal(hs_pread_meminfo(fd, &m, NULL), 0);
	assert_int_equal(m.available_kib, 500);
	/* Nothing valid is not an error here: the fields say it. */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(hs_pread_meminfo(fd, &m, &sc), 0);
	assert_int_equal(hs_count(&hs_meminfo_fields, &m), 0);
	close(fd);

	text = malloc(16384);
	p = text + sprintf(text, "MemTotal: 1000 kB\n");
	while ((size_t)(p - text) < 8192 + 100)
		p += sprintf(p, "Filler%zu: 1 kB\n", n++);
	sprintf(p, "MemFree: 7 kB\n");
	free(path);
	path = tu_write_file(dir, "meminfo", text);
	fd = open(path, O_RDONLY);
	assert_int_equal(hs_pread_meminfo(fd, &m, &sc), 0);
	assert_true(sc.truncated);
	assert_int_equal(sc.bad, 0);
	assert_fields(&hs_meminfo_fields, &m, "total_kib", NULL);
	assert_int_equal(hs_pread_meminfo(-1, &m, &sc), -EBADF);
	close(fd);
	free(text);
	free(path);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hoststats_meminfo),
		cmocka_unit_test(test_hoststats_meminfo_partial_and_garbage),
		cmocka_unit_test(test_hoststats_vmstat),
		cmocka_unit_test(test_hoststats_psi),
		cmocka_unit_test(test_hoststats_ksm),
		cmocka_unit_test(test_hoststats_ksmd_cpu),
		cmocka_unit_test(test_hoststats_numa_nodes),
		cmocka_unit_test(test_hoststats_numa_maps),
		cmocka_unit_test(test_hoststats_vcpu_nodes),
		cmocka_unit_test(test_hoststats_cpulist),
		cmocka_unit_test(test_hoststats_tables_match_proto),
		cmocka_unit_test(test_hoststats_guest_normal),
		cmocka_unit_test(test_hoststats_balloon_shrinks_total),
		cmocka_unit_test(test_hoststats_deflate_on_oom),
		cmocka_unit_test(test_hoststats_no_psi),
		cmocka_unit_test(test_hoststats_old_refault),
		cmocka_unit_test(test_hoststats_hostile),
		cmocka_unit_test(test_hoststats_balloon_pages),
		cmocka_unit_test(test_hoststats_garbage_strings),
		cmocka_unit_test(test_hoststats_strict_for_hosts_too),
		cmocka_unit_test(test_hoststats_truncated),
		cmocka_unit_test(test_hoststats_pread_meminfo),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
