/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator's rules on their own: a guest's limits (maximum, minimum,
 * used memory plus margin, no blind shrinking), the order of batches across
 * scheduler restarts and failovers, the fail-safe's steps and the host's
 * reserve, KSM writes and their restore on a sysfs fixture tree (with a
 * kernel that refuses merge_across_nodes while pages are shared), and the
 * choice of NUMA nodes within a page quota.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "actuator.h"
#include "ksm_limits.h"
#include "testutil.h"

#define MIB	1024ull
#define GIB	(1024ull * 1024)

static void
test_actuator_clamp(void **state)
{
	struct act_limits l = { .vm_min_kib = 512 * MIB,
	    .used_margin_kib = 256 * MIB };
	struct act_vm_view v = { .max_known = true, .max_kib = 4 * GIB,
	    .current_known = true, .current_kib = 2 * GIB,
	    .used_known = true, .used_kib = GIB };
	enum act_clamp why;
	uint64_t floor;

	/* Within limits. */
	assert_int_equal(act_clamp(&l, &v, 3 * GIB, &why, &floor), 3 * GIB);
	assert_int_equal(why, ACT_CLAMP_NONE);
	assert_int_equal(floor, GIB + 256 * MIB);
	/* Above the maximum. */
	assert_int_equal(act_clamp(&l, &v, 5 * GIB, &why, NULL), 4 * GIB);
	assert_int_equal(why, ACT_CLAMP_MAX);
	/* Below used + margin. */
	assert_int_equal(act_clamp(&l, &v, 600 * MIB, &why, NULL),
	    GIB + 256 * MIB);
	assert_int_equal(why, ACT_CLAMP_USED);
	/* A small guest: the absolute minimum wins. */
	v.used_kib = 100 * MIB;
	assert_int_equal(act_clamp(&l, &v, 10 * MIB, &why, NULL), 512 * MIB);
	assert_int_equal(why, ACT_CLAMP_MIN);
	/* Without fresh stats: growth yes, shrinking no. */
	v.used_known = false;
	assert_int_equal(act_clamp(&l, &v, 3 * GIB, &why, NULL), 3 * GIB);
	assert_int_equal(act_clamp(&l, &v, GIB, &why, NULL), 2 * GIB);
	assert_int_equal(why, ACT_CLAMP_NO_STATS);
	/* A floor above the maximum is the maximum. */
	v.used_known = true;
	v.used_kib = 4 * GIB;
	assert_int_equal(act_clamp(&l, &v, GIB, &why, NULL), 4 * GIB);
	v.max_kib = 256 * MIB;
	assert_int_equal(act_clamp(&l, &v, GIB, &why, NULL), 256 * MIB);
	assert_int_equal(why, ACT_CLAMP_MAX);
}

static void
test_actuator_order(void **state)
{
	struct act_order o = { 0 };

	assert_int_equal(act_order_check(&o, "s1", 5, 1000), ACT_ORDER_FIRST);
	act_order_commit(&o, "s1", 5, 1000, 5000);
	assert_int_equal(act_order_check(&o, "s1", 6, 1100), ACT_ORDER_NEXT);
	/* A redelivered or reordered older batch. */
	assert_int_equal(act_order_check(&o, "s1", 5, 1000), ACT_ORDER_STALE);
	assert_int_equal(act_order_check(&o, "s1", 4, 900), ACT_ORDER_STALE);
	/* The scheduler restarted: seq from 1 again, later. */
	assert_int_equal(act_order_check(&o, "s1", 1, 5000),
	    ACT_ORDER_RESTART);
	/* Another scheduler took over; one of its old batches is stale. */
	assert_int_equal(act_order_check(&o, "s2", 1, 1000),
	    ACT_ORDER_FAILOVER);
	assert_int_equal(act_order_check(&o, "s2", 99, 999), ACT_ORDER_STALE);
	act_order_commit(&o, "s2", 1, 2000, 5000);
	assert_int_equal(act_order_check(&o, "s1", 7, 1500), ACT_ORDER_STALE);
}

/* A batch dated an hour ahead (a forger, a broken clock) is executed at
 * most at this host's time: the real scheduler's next batch still runs. */
static void
test_actuator_order_future(void **state)
{
	struct act_order o = { 0 };
	uint64_t now = 1000000;

	act_order_commit(&o, "evil", UINT64_MAX, now + 3600000, now);
	assert_int_equal(act_order_check(&o, "sched-a", 1, now + 1000),
	    ACT_ORDER_FAILOVER);
	act_order_commit(&o, "sched-a", UINT64_MAX, now + 20000, now + 1000);
	assert_int_equal(act_order_check(&o, "sched-a", 8, now + 2000),
	    ACT_ORDER_RESTART);
}

static void
test_actuator_batch_check(void **state)
{
	uint64_t now = 1000000, skew = 30000;

	assert_int_equal(act_batch_check(NULL, skew, "evil", now, now + 10000,
	    now), ACT_OK);
	assert_int_equal(act_batch_check(" ", skew, "evil", now, now + 10000,
	    now), ACT_OK);
	assert_int_equal(act_batch_check("sched-a, sched-b", skew, "evil", now,
	    now + 10000, now), ACT_REFUSE_SCHEDULER);
	assert_int_equal(act_batch_check("sched-a, sched-b", skew, "sched-b",
	    now, now + 10000, now), ACT_OK);
	assert_int_equal(act_batch_check("sched-a sched-b", skew, "sched",
	    now, now + 10000, now), ACT_REFUSE_SCHEDULER);
	assert_int_equal(act_batch_check(NULL, skew, "sched-a", now + 3600000,
	    now + 3610000, now), ACT_REFUSE_FUTURE);
	assert_int_equal(act_batch_check(NULL, skew, "sched-a", now + 20000,
	    now + 30000, now), ACT_OK);
	assert_int_equal(act_batch_check(NULL, skew, "sched-a", now,
	    UINT64_MAX, now), ACT_REFUSE_TTL);
}

static void
test_actuator_failsafe(void **state)
{
	struct act_failsafe f = { .psi_pct = 20, .avail_pct = 5,
	    .faults_s = 1000, .step_kib = 256 * MIB,
	    .host_reserve_kib = GIB };
	struct act_fs_vm v = { .fresh = true, .has_psi = true,
	    .psi_some_avg10 = 30, .has_mem = true, .total_kib = 2 * GIB,
	    .available_kib = GIB, .current_kib = 2 * GIB, .max_kib = 4 * GIB };

	/* Under pressure by PSI: one step. */
	assert_int_equal(act_fs_target(&f, &v, 8 * GIB), 2 * GIB + 256 * MIB);
	/* The host keeps its reserve. */
	assert_int_equal(act_fs_target(&f, &v, GIB + 100 * MIB),
	    2 * GIB + 100 * MIB);
	assert_int_equal(act_fs_target(&f, &v, GIB), 0);
	/* Not beyond the maximum. */
	v.current_kib = 4 * GIB - 10 * MIB;
	assert_int_equal(act_fs_target(&f, &v, 8 * GIB), 4 * GIB);
	v.current_kib = 4 * GIB;
	assert_int_equal(act_fs_target(&f, &v, 8 * GIB), 0);
	/* No pressure, or stats too old: nothing. */
	v.current_kib = 2 * GIB;
	v.psi_some_avg10 = 1;
	assert_int_equal(act_fs_target(&f, &v, 8 * GIB), 0);
	/* Pressure by major faults (KVM: no PSI in the balloon's stats),
	 * when a limit is set. */
	v.has_psi = false;
	v.has_faults = true;
	v.faults_s = 999;
	assert_false(act_fs_pressure(&f, &v));
	v.faults_s = 1000;
	assert_true(act_fs_pressure(&f, &v));
	f.faults_s = 0;
	assert_false(act_fs_pressure(&f, &v));
	v.has_faults = false;
	/* Pressure by available memory. */
	v.available_kib = 50 * MIB;
	assert_true(act_fs_pressure(&f, &v));
	v.fresh = false;
	assert_false(act_fs_pressure(&f, &v));
	assert_int_equal(act_fs_target(&f, &v, 8 * GIB), 0);
}

/* ---- KSM on a fixture tree ---- */

static char *
read_back(const char *dir, const char *name)
{
	static char buf[64];
	char path[4200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/kernel/mm/ksm/%s", dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* A kernel that refuses merge_across_nodes while run is not 2 (pages
 * shared), as the real one does with EBUSY. */
static int
picky_write(const char *path, const char *value, void *arg)
{
	const char *dir = arg;
	FILE *f;

	if (strstr(path, "merge_across_nodes") != NULL &&
	    strcmp(read_back(dir, "run"), "2") != 0)
		return -EBUSY;
	f = fopen(path, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "%s\n", value);
	fclose(f);
	return 0;
}

static char *
ksm_fixture(void)
{
	char *dir = tu_tmpdir();

	free(tu_write_file(dir, "kernel/mm/ksm/run", "1\n"));
	free(tu_write_file(dir, "kernel/mm/ksm/pages_to_scan", "100\n"));
	free(tu_write_file(dir, "kernel/mm/ksm/sleep_millisecs", "20\n"));
	free(tu_write_file(dir, "kernel/mm/ksm/merge_across_nodes", "1\n"));
	return dir;
}

static void
test_actuator_ksm(void **state)
{
	Mm__V1__KsmSettings s = MM__V1__KSM_SETTINGS__INIT, back;
	struct act_ksm k;
	char why[256], *dir = ksm_fixture(), *none = tu_tmpdir();

	assert_int_equal(act_ksm_init(&k, none), -ENOENT);
	act_ksm_free(&k);
	assert_int_equal(act_ksm_init(&k, dir), 0);
	k.write_fn = picky_write;
	k.write_arg = dir;

	s.has_pages_to_scan = s.has_sleep_ms = s.has_run = 1;
	s.pages_to_scan = 1000;
	s.sleep_ms = 50;
	s.run = MM__V1__KSM_RUN__KSM_RUN_STOP;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), 0);
	assert_string_equal(read_back(dir, "pages_to_scan"), "1000");
	assert_string_equal(read_back(dir, "sleep_millisecs"), "50");
	assert_string_equal(read_back(dir, "run"), "0");
	assert_int_equal(act_ksm_read(&k, &back), 0);
	assert_int_equal(back.pages_to_scan, 1000);
	assert_int_equal(back.run, MM__V1__KSM_RUN__KSM_RUN_STOP);

	/* merge_across_nodes alone is refused while pages are shared... */
	memset(&s, 0, sizeof(s));
	mm__v1__ksm_settings__init(&s);
	s.has_merge_across_nodes = 1;
	s.merge_across_nodes = 0;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "merge_across_nodes: busy"));
	/* ...and done when the same command unmerges first. */
	s.has_run = 1;
	s.run = MM__V1__KSM_RUN__KSM_RUN_UNMERGE;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), 0);
	assert_string_equal(read_back(dir, "merge_across_nodes"), "0");
	assert_string_equal(read_back(dir, "run"), "2");

	/* Restore: everything as found, merge_across_nodes included. */
	assert_int_equal(act_ksm_restore(&k), 0);
	act_ksm_free(&k);
	assert_string_equal(read_back(dir, "run"), "1");
	assert_string_equal(read_back(dir, "pages_to_scan"), "100");
	assert_string_equal(read_back(dir, "sleep_millisecs"), "20");
	assert_string_equal(read_back(dir, "merge_across_nodes"), "1");
	tu_rmtree(dir);
	tu_rmtree(none);
	free(dir);
	free(none);
}

/* A command out of bounds (ksm_limits.h) is refused whole: nothing is
 * written, not even its run, and it is counted. */
static void
test_actuator_ksm_bounds(void **state)
{
	Mm__V1__KsmSettings s = MM__V1__KSM_SETTINGS__INIT;
	struct act_ksm k;
	char why[256], *dir = ksm_fixture();

	assert_int_equal(act_ksm_init(&k, dir), 0);
	k.write_fn = picky_write;
	k.write_arg = dir;

	s.has_pages_to_scan = s.has_run = 1;
	s.pages_to_scan = UINT32_MAX;
	s.run = MM__V1__KSM_RUN__KSM_RUN_STOP;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), -ERANGE);
	assert_string_equal(why, "pages_to_scan 4294967295 outside 1..100000, "
	    "nothing written");
	assert_string_equal(read_back(dir, "pages_to_scan"), "100");
	assert_string_equal(read_back(dir, "run"), "1");
	s.pages_to_scan = 0;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), -ERANGE);

	s.pages_to_scan = KSM_PAGES_TO_SCAN_MAX;
	s.has_sleep_ms = 1;
	s.sleep_ms = UINT32_MAX;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), -ERANGE);
	assert_string_equal(why, "sleep_ms 4294967295 outside 1..60000, "
	    "nothing written");
	assert_string_equal(read_back(dir, "pages_to_scan"), "100");
	assert_string_equal(read_back(dir, "sleep_millisecs"), "20");
	assert_string_equal(read_back(dir, "run"), "1");
	assert_int_equal(k.refused, 3);

	/* The bounds themselves are fine. */
	s.sleep_ms = KSM_SLEEP_MS_MAX;
	assert_int_equal(act_ksm_apply(&k, &s, why, sizeof(why)), 0);
	assert_string_equal(read_back(dir, "pages_to_scan"), "100000");
	assert_string_equal(read_back(dir, "sleep_millisecs"), "60000");
	assert_string_equal(read_back(dir, "run"), "0");
	assert_int_equal(k.refused, 3);
	assert_int_equal(act_ksm_restore(&k), 0);
	act_ksm_free(&k);
	tu_rmtree(dir);
	free(dir);
}

/* Restore never unmerges (a restart must not grow the host's use by every
 * shared page): merge_across_nodes pinned by shared pages stays, the rest
 * is put back; a run=2 found at start is not written back. */
static void
test_actuator_ksm_restore_busy(void **state)
{
	struct act_ksm k;
	char *dir = ksm_fixture();

	free(tu_write_file(dir, "kernel/mm/ksm/merge_across_nodes", "0\n"));
	assert_int_equal(act_ksm_init(&k, dir), 0);
	k.write_fn = picky_write;
	k.write_arg = dir;
	/* Someone set it to 1 meanwhile (with run=2), then run=1. */
	free(tu_write_file(dir, "kernel/mm/ksm/merge_across_nodes", "1\n"));
	free(tu_write_file(dir, "kernel/mm/ksm/pages_to_scan", "999\n"));
	assert_int_equal(act_ksm_restore(&k), -EBUSY);
	act_ksm_free(&k);
	assert_string_equal(read_back(dir, "merge_across_nodes"), "1");
	assert_string_equal(read_back(dir, "run"), "1");
	assert_string_equal(read_back(dir, "pages_to_scan"), "100");

	free(tu_write_file(dir, "kernel/mm/ksm/run", "2\n"));
	assert_int_equal(act_ksm_init(&k, dir), 0);
	k.write_fn = picky_write;
	k.write_arg = dir;
	free(tu_write_file(dir, "kernel/mm/ksm/run", "1\n"));
	assert_int_equal(act_ksm_restore(&k), 0);
	act_ksm_free(&k);
	assert_string_equal(read_back(dir, "run"), "1");
	tu_rmtree(dir);
	free(dir);
}

static void
test_actuator_numa_plan(void **state)
{
	uint64_t pages[MSG_NODES_MAX] = { 0 };
	struct act_numa_plan p;
	uint32_t from[2];

	/* Single node: nothing to do. */
	pages[0] = 1000;
	assert_int_equal(act_numa_plan(0x1, pages, NULL, 0, 0, 0, &p),
	    -ENOENT);
	assert_non_null(strstr(p.why, "single node"));
	/* A node the host lacks. */
	assert_int_equal(act_numa_plan(0x1, pages, NULL, 0, 1, 0, &p),
	    -EINVAL);
	/* Four nodes, to node 0 from all others within 700 pages: the two
	 * smallest fit, the largest does not. */
	pages[1] = 300;
	pages[2] = 5000;
	pages[3] = 400;
	assert_int_equal(act_numa_plan(0xf, pages, NULL, 0, 0, 700, &p), 0);
	assert_int_equal(p.from_mask, 0xa);
	assert_int_equal(p.to_mask, 0x1);
	assert_int_equal(p.pages, 700);
	/* No quota: every other node. */
	assert_int_equal(act_numa_plan(0xf, pages, NULL, 0, 0, 0, &p), 0);
	assert_int_equal(p.from_mask, 0xe);
	/* Named sources only; an empty one is left out. */
	from[0] = 2;
	from[1] = 5;
	assert_int_equal(act_numa_plan(0xf, pages, from, 2, 0, 0, &p), 0);
	assert_int_equal(p.from_mask, 0x4);
	/* Quota smaller than any node. */
	assert_int_equal(act_numa_plan(0xf, pages, from, 1, 0, 10, &p),
	    -ENOENT);
	assert_non_null(strstr(p.why, "quota"));
}

static void
test_actuator_numa_online(void **state)
{
	char *dir = tu_tmpdir();
	uint64_t mask;

	assert_int_equal(act_numa_online(dir, &mask), 0);
	assert_int_equal(mask, 1);
	free(tu_write_file(dir, "devices/system/node/node0/meminfo", "x\n"));
	free(tu_write_file(dir, "devices/system/node/node3/meminfo", "x\n"));
	free(tu_write_file(dir, "devices/system/node/possible", "0-3\n"));
	assert_int_equal(act_numa_online(dir, &mask), 0);
	assert_int_equal(mask, 0x9);
	tu_rmtree(dir);
	free(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_actuator_clamp),
		cmocka_unit_test(test_actuator_order),
		cmocka_unit_test(test_actuator_order_future),
		cmocka_unit_test(test_actuator_batch_check),
		cmocka_unit_test(test_actuator_failsafe),
		cmocka_unit_test(test_actuator_ksm),
		cmocka_unit_test(test_actuator_ksm_bounds),
		cmocka_unit_test(test_actuator_ksm_restore_busy),
		cmocka_unit_test(test_actuator_numa_plan),
		cmocka_unit_test(test_actuator_numa_online),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
