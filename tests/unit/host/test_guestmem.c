/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one definition of a guest's used memory (guestmem.h) on the cases
 * that matter: the agent reporting or silent, a balloon inside MemTotal
 * (deflate-on-oom) or outside it, a balloon moving, and the memory the
 * guest's kernel keeps for itself; and the policy engine's use of it
 * (pe_guest_used_kib), which alone has an answer for a silent guest.
 * Every expected number is worked out by hand in the comment above it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "guestmem.h"
#include "msg.h"
#include "policy.h"
#include "policymsg.h"

/* A VM of 4 GiB whose kernel keeps 161.95 MiB out of MemTotal: the
 * numbers of tests/fixtures/proc/normal and deflate-on-oom. */
#define VM_KIB		4194304ull	/* 4 * 1024 * 1024 */
#define TOTAL_KIB	4028464ull	/* MemTotal with nothing ballooned */
#define RESERVED_KIB	165840ull	/* 4194304 - 4028464 */

/* The agent reports, no balloon anywhere: MemTotal - MemAvailable. */
static void
test_guestmem_agent_present(void **state)
{
	/* 4028464 - 3301520 = 726944 */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 3301520, false, 0, false, 0),
	    726944);
	/* A balloon known to hold nothing inside MemTotal changes nothing. */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 3301520, true, 0, false, 0),
	    726944);
	/* Everything available: nothing used. */
	assert_int_equal(gm_used_kib(TOTAL_KIB, TOTAL_KIB, false, 0, false,
	    0), 0);
	/* More available than total (a torn read): 0, not 2^64 - 1000. */
	assert_int_equal(gm_used_kib(1000, 2000, false, 0, false, 0), 0);
}

/*
 * deflate-on-oom: a balloon of 1 GiB (262144 pages) leaves MemTotal as it
 * was and holds its pages as used memory; they are not the guest's use.
 */
static void
test_guestmem_deflate_on_oom(void **state)
{
	uint64_t kib = 12345;

	/* The host says deflate-on-oom, the sample 262144 pages:
	 * 262144 * 4 = 1048576 KiB inside MemTotal. */
	assert_true(gm_balloon_in_total(true, true, true, 262144, &kib));
	assert_int_equal(kib, 1048576);
	/* used = 4028464 - 190000 = 3838464, less the balloon:
	 * 3838464 - 1048576 = 2789888 */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, true, kib, false, 0),
	    2789888);
	/* The balloon's actual size does not override what the sample
	 * counted: actual 3 GiB would guess 4028464 - 3145728 = 882736. */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, true, kib, true,
	    3145728), 2789888);
	/* Without the page count the share is unknown (false, 0). */
	kib = 12345;
	assert_false(gm_balloon_in_total(true, true, false, 0, &kib));
	assert_int_equal(kib, 0);
	/* More balloon than use: torn numbers, 0 rather than wrapping.
	 * 1000 - 100 = 900 used, 1000 KiB of balloon. */
	assert_int_equal(gm_used_kib(1000, 100, true, 1000, false, 0), 0);
}

/* Without deflate-on-oom the balloon takes its pages out of MemTotal:
 * nothing of it is inside, whatever its size. */
static void
test_guestmem_balloon_outside_total(void **state)
{
	uint64_t kib = 12345;

	assert_true(gm_balloon_in_total(true, false, true, 262144, &kib));
	assert_int_equal(kib, 0);
	assert_true(gm_balloon_in_total(true, false, false, 0, &kib));
	assert_int_equal(kib, 0);
	/* tests/fixtures/proc/balloon: 1015808 - 312004 = 703804, and the
	 * balloon's actual (1 GiB) is not used once the share is known. */
	assert_int_equal(gm_used_kib(1015808, 312004, true, kib, true,
	    1048576), 703804);
	/* The host does not know the balloon's kind: unknown (false). */
	kib = 12345;
	assert_false(gm_balloon_in_total(false, false, true, 262144, &kib));
	assert_int_equal(kib, 0);
	assert_false(gm_balloon_in_total(false, true, true, 262144, &kib));
}

/*
 * Share unknown (no page count in the sample): what MemTotal has above
 * the balloon's actual size is taken as ballooned. It lags while the
 * balloon moves, and it is nothing once MemTotal is at or below actual
 * (a balloon outside MemTotal lowers MemTotal itself).
 */
static void
test_guestmem_balloon_moving(void **state)
{
	/* actual 3028464: 4028464 - 3028464 = 1000000 ballooned;
	 * (4028464 - 190000) - 1000000 = 3838464 - 1000000 = 2838464 */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, false, 0, true,
	    3028464), 2838464);
	/* The host reads the balloon deflated by 512 MiB (actual 3670016)
	 * while the guest's numbers are still those of before: 4028464 -
	 * 3670016 = 358448 ballooned; 3838464 - 358448 = 3480016. The guest
	 * seems to have grown by 3480016 - 2838464 = 641552 that it does
	 * not use: the guess lags; a page count in the sample does not. */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, false, 0, true,
	    3670016), 3480016);
	/* MemTotal below actual (1015808 < 1048576): nothing guessed,
	 * 1015808 - 312004 = 703804. */
	assert_int_equal(gm_used_kib(1015808, 312004, false, 0, true,
	    1048576), 703804);
	/* MemTotal equal to actual: nothing either. */
	assert_int_equal(gm_used_kib(1048576, 48576, false, 0, true, 1048576),
	    1000000);
	/* actual 0 means unknown, not "everything ballooned". */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, false, 0, true, 0),
	    3838464);
	/* A guess above use: 0. 4028464 - 28464 = 4000000 ballooned,
	 * 3838464 used. */
	assert_int_equal(gm_used_kib(TOTAL_KIB, 190000, false, 0, true,
	    28464), 0);
}

/* What the guest's kernel keeps out of MemTotal: counted as used. */
static void
test_guestmem_reserved(void **state)
{
	/* deflate-on-oom: MemTotal is all the guest manages;
	 * 4194304 - 4028464 = 165840 (3.95 % of the VM). */
	assert_int_equal(gm_reserved_kib(VM_KIB, TOTAL_KIB, true, true,
	    262144), RESERVED_KIB);
	/* Its page count does not matter then (they are in MemTotal). */
	assert_int_equal(gm_reserved_kib(VM_KIB, TOTAL_KIB, true, false, 0),
	    RESERVED_KIB);
	/* A balloon outside MemTotal of 768 MiB (196608 pages, 786432
	 * KiB): MemTotal 4028464 - 786432 = 3242032, managed 3242032 +
	 * 786432 = 4028464, reserved 4194304 - 4028464 = 165840 again. */
	assert_int_equal(gm_reserved_kib(VM_KIB, 3242032, false, true,
	    196608), RESERVED_KIB);
	/* ...but without its page count nobody knows: 0. */
	assert_int_equal(gm_reserved_kib(VM_KIB, 3242032, false, false, 0),
	    0);
	/* The VM's size or MemTotal unknown: 0. */
	assert_int_equal(gm_reserved_kib(0, TOTAL_KIB, true, true, 0), 0);
	assert_int_equal(gm_reserved_kib(VM_KIB, 0, true, true, 0), 0);
	/* MemTotal at or above the VM's size: nothing reserved. */
	assert_int_equal(gm_reserved_kib(VM_KIB, VM_KIB, true, true, 0), 0);
	assert_int_equal(gm_reserved_kib(VM_KIB, VM_KIB + 1, true, true, 0),
	    0);
}

/*
 * More than a quarter of the VM missing is not a kernel's reservation but
 * torn numbers (a balloon that moved between the two reads): 0. The
 * quarter of 4194304 is 1048576.
 */
static void
test_guestmem_reserved_torn(void **state)
{
	/* 4194304 - 3145728 = 1048576: exactly a quarter, kept. */
	assert_int_equal(gm_reserved_kib(VM_KIB, 3145728, true, true, 0),
	    1048576);
	/* 4194304 - 3145727 = 1048577: above a quarter, 0. */
	assert_int_equal(gm_reserved_kib(VM_KIB, 3145727, true, true, 0), 0);
	/* Half the VM missing: 0. */
	assert_int_equal(gm_reserved_kib(VM_KIB, VM_KIB / 2, true, true, 0),
	    0);
	/* A balloon outside MemTotal whose page count lags: MemTotal
	 * already lost 1 GiB (4028464 - 1048576 = 2979888) but the sample
	 * still counts 0 pages; managed 2979888, missing 4194304 -
	 * 2979888 = 1214416 > 1048576: 0, not 1214416. */
	assert_int_equal(gm_reserved_kib(VM_KIB, 2979888, false, true, 0),
	    0);
}

/* The policy engine: the definition plus what the kernel reserves. */
static void
test_guestmem_engine_agent_present(void **state)
{
	struct pe_guest g = {
		.has_meminfo = true,
		.total_kib = TOTAL_KIB,
		.available_kib = 3301520,
		.reserved_kib = RESERVED_KIB,
	};

	/* 726944 + 165840 = 892784 */
	assert_int_equal(pe_guest_used_kib(&g), 892784);
	/* deflate-on-oom, 1 GiB inside MemTotal:
	 * (4028464 - 190000) - 1048576 + 165840 = 2955728 */
	g.available_kib = 190000;
	g.has_balloon_in_total = true;
	g.balloon_in_total_kib = 1048576;
	g.has_balloon = true;
	g.actual_kib = 3145728;
	assert_int_equal(pe_guest_used_kib(&g), 2955728);
	/* Share unknown: guessed from actual 3145728:
	 * 4028464 - 3145728 = 882736 ballooned;
	 * 3838464 - 882736 + 165840 = 3121568 */
	g.has_balloon_in_total = false;
	g.balloon_in_total_kib = 0;
	assert_int_equal(pe_guest_used_kib(&g), 3121568);
}

/*
 * The agent silent (no meminfo): gm_used_kib has nothing to work on. The
 * collector's sanitizer and the actuator's floor (hv_guest_used_kib() in
 * vm_view) then say "unknown", and so does the agent's own
 * report_used_kib (test_agent); only the engine needs a number, and
 * takes the whole balloon actual as used, so that a silent guest is
 * never squeezed on a guess.
 */
static void
test_guestmem_engine_agent_silent(void **state)
{
	struct pe_guest g = {
		.has_meminfo = false,
		.has_balloon = true,
		.actual_kib = 3145728,
		/* what a last sample left: not used without meminfo */
		.total_kib = TOTAL_KIB,
		.available_kib = 3301520,
		.reserved_kib = RESERVED_KIB,
	};

	assert_int_equal(pe_guest_used_kib(&g), 3145728);
	/* MemTotal 0 is no meminfo either. */
	g.has_meminfo = true;
	g.total_kib = 0;
	assert_int_equal(pe_guest_used_kib(&g), 3145728);
	/* Nothing known at all: 0. */
	g.has_meminfo = false;
	g.has_balloon = false;
	assert_int_equal(pe_guest_used_kib(&g), 0);
}

/* From a GuestStats as the collector sends it, through pm_guest_memory()
 * to the engine: the same numbers. */
static void
test_guestmem_engine_from_stats(void **state)
{
	Mm__V1__GuestStats gs = MM__V1__GUEST_STATS__INIT;
	Mm__V1__Meminfo mi = MM__V1__MEMINFO__INIT;
	Mm__V1__Vmstat vs = MM__V1__VMSTAT__INIT;
	struct pe_guest g = { .vm_id = "g" };

	mi.has_total_kib = mi.has_available_kib = 1;
	mi.total_kib = TOTAL_KIB;
	mi.available_kib = 190000;
	vs.has_balloon_pages = 1;
	vs.balloon_pages = 262144;
	gs.meminfo = &mi;
	gs.vmstat = &vs;
	gs.has_deflate_on_oom = gs.deflate_on_oom = 1;
	gs.has_max_kib = 1;
	gs.max_kib = VM_KIB;
	gs.has_balloon_actual_kib = 1;
	gs.balloon_actual_kib = 3145728;
	pm_guest_memory(&g, &gs);
	/* reserved 165840 (MemTotal is all managed with deflate-on-oom);
	 * 3838464 - 1048576 + 165840 = 2955728 */
	assert_int_equal(g.reserved_kib, RESERVED_KIB);
	assert_int_equal(pe_guest_used_kib(&g), 2955728);

	/* Without deflate-on-oom the same MemTotal means the balloon of
	 * 1 GiB is outside it: managed 4028464 + 1048576 = 5077040, above
	 * the VM: reserved 0, and nothing taken out:
	 * 3838464 + 0 = 3838464. */
	gs.deflate_on_oom = 0;
	g = (struct pe_guest){ .vm_id = "g" };
	pm_guest_memory(&g, &gs);
	assert_int_equal(g.reserved_kib, 0);
	assert_int_equal(pe_guest_used_kib(&g), 3838464);

	/* The agent silent: no meminfo, the balloon's actual is used. */
	gs.meminfo = NULL;
	gs.vmstat = NULL;
	g = (struct pe_guest){ .vm_id = "g" };
	pm_guest_memory(&g, &gs);
	assert_false(g.has_meminfo);
	assert_int_equal(pe_guest_used_kib(&g), 3145728);
}

/*
 * One sample, three readers: the collector's sanitizer and the actuator's
 * floor (gm_sample_used_kib(), with the host's word on the balloon) and
 * the engine (pm_guest_memory(), pe_guest_used_kib(), which adds the
 * reserved memory) count the same use, in each case that matters.
 */
static void
test_guestmem_sample_as_everyone_counts_it(void **state)
{
	Mm__V1__GuestStats gs = MM__V1__GUEST_STATS__INIT;
	Mm__V1__Meminfo mi = MM__V1__MEMINFO__INIT;
	Mm__V1__Vmstat vs = MM__V1__VMSTAT__INIT;
	struct pe_guest g;
	uint64_t used = 0;

	(void)state;
	mi.has_total_kib = mi.has_available_kib = 1;
	mi.total_kib = TOTAL_KIB;
	mi.available_kib = 190000;
	vs.has_balloon_pages = 1;
	vs.balloon_pages = 262144;
	gs.meminfo = &mi;
	gs.vmstat = &vs;
	gs.has_deflate_on_oom = gs.deflate_on_oom = 1;
	gs.has_max_kib = 1;
	gs.max_kib = VM_KIB;
	gs.has_balloon_actual_kib = 1;
	gs.balloon_actual_kib = 3145728;

	/* deflate-on-oom, the balloon's pages in the sample:
	 * 4028464 - 190000 - 1048576 = 2789888 */
	assert_true(gm_sample_used_kib(&gs, true, true, true, 3145728, &used));
	assert_int_equal(used, 2789888);
	g = (struct pe_guest){ .vm_id = "g" };
	pm_guest_memory(&g, &gs);
	assert_int_equal(pe_guest_used_kib(&g) - g.reserved_kib, used);

	/* deflate-on-oom, no nr_balloon_pages (a kernel before 5.1): the
	 * balloon guessed as MemTotal above its size:
	 * 4028464 - 3145728 = 882736 ballooned,
	 * 4028464 - 190000 - 882736 = 2955728 used */
	vs.has_balloon_pages = 0;
	assert_true(gm_sample_used_kib(&gs, true, true, true, 3145728, &used));
	assert_int_equal(used, 2955728);
	g = (struct pe_guest){ .vm_id = "g" };
	pm_guest_memory(&g, &gs);
	assert_int_equal(pe_guest_used_kib(&g) - g.reserved_kib, used);

	/* No deflate-on-oom: the balloon is outside MemTotal, nothing to
	 * take out: 4028464 - 190000 = 3838464 */
	vs.has_balloon_pages = 1;
	gs.deflate_on_oom = 0;
	assert_true(gm_sample_used_kib(&gs, true, false, true, 3145728,
	    &used));
	assert_int_equal(used, 3838464);
	g = (struct pe_guest){ .vm_id = "g" };
	pm_guest_memory(&g, &gs);
	assert_int_equal(pe_guest_used_kib(&g) - g.reserved_kib, used);

	/* The agent silent: no number from the sample (the engine falls
	 * back to the balloon's size, test_guestmem_engine_from_stats). */
	gs.meminfo = NULL;
	used = 7;
	assert_false(gm_sample_used_kib(&gs, true, false, true, 3145728,
	    &used));
	assert_int_equal(used, 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_guestmem_agent_present),
		cmocka_unit_test(test_guestmem_deflate_on_oom),
		cmocka_unit_test(test_guestmem_balloon_outside_total),
		cmocka_unit_test(test_guestmem_balloon_moving),
		cmocka_unit_test(test_guestmem_reserved),
		cmocka_unit_test(test_guestmem_reserved_torn),
		cmocka_unit_test(test_guestmem_engine_agent_present),
		cmocka_unit_test(test_guestmem_engine_agent_silent),
		cmocka_unit_test(test_guestmem_engine_from_stats),
		cmocka_unit_test(test_guestmem_sample_as_everyone_counts_it),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
