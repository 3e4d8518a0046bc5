/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host statistics parsers against the fixture tree tests/fixtures/host1
 * (a two-node host with KSM and one QEMU process), and against broken text:
 * what a kernel prints must land in the right report field, and garbage
 * must not.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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
	/* Out of range and missing pieces stay absent. */
	assert_int_equal(hs_parse_psi("some avg10=101.00 avg60=nan "
	    "avg300=0.10 total=5\n", &p), 0);
	assert_false(p.has_some_avg10_pct);
	assert_false(p.has_some_avg60_pct);
	assert_true(p.has_some_avg300_pct);
	assert_false(p.has_full_avg10_pct);
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
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
