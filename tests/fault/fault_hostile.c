/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A hostile guest beside two honest ones, on the kvm path: mm-sim serves
 * each guest's QMP monitors and agent channel as QEMU and the guest agent
 * would, and "evil" (2 GiB) reports impossible numbers, pads every frame
 * with 60 KB of fields mm does not know and now and then sends garbage.
 * For 20 s, what an operator would check:
 *   - the host's reports keep flowing (a report a second);
 *   - web and db stay within their limits: never above their maximum,
 *     never below what they use or vm_min, no target out of limits, no
 *     failed command; and they stay at the scheduler's targets;
 *   - evil's balloon is never above its maximum;
 *   - the collector says what it refused of evil (its stop line: agent
 *     frames dropped, the sanitizer's reasons).
 * (The xen path's hostile guest, xenstore values written by the guest, is
 * test_collector's, on the xenstored double.)
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault_util.h"
#include "testutil.h"

#define RUN_MS		20000
#define EVIL_MAX_KIB	(2 * FU_GIB)

static struct fu F;

static void
test_fault_hostile_guest(void **state)
{
	unsigned reports, frames_line, san;
	const char *line;

	(void)state;
	fu_start(&F, &(struct fu_opts){
	    .extra_vm = "evil,2G,hostile",
	    .extra_max_kib = EVIL_MAX_KIB,
	});
	reports = F.reports;
	fu_run_for(&F, RUN_MS);
	reports = F.reports - reports;
	fprintf(stderr, "fault: hostile guest: %u reports in %u ms; evil's "
	    "balloon seen %u times, at most %llu MiB, %u above its maximum; "
	    "web %llu MiB, db %llu MiB, converged: %s\n", reports, RUN_MS,
	    F.extra_samples, (unsigned long long)F.extra_highest_kib / FU_MIB,
	    F.extra_over, (unsigned long long)fu_balloon_kib(&F, 0) / FU_MIB,
	    (unsigned long long)fu_balloon_kib(&F, 1) / FU_MIB,
	    fu_converged(&F) ? "yes" : "no");
	/* A report a second (the collector's interval); a little slack for
	 * a loaded machine. */
	if (reports < RUN_MS / 1000 * 3 / 4)
		fail_msg("%u reports in %u ms beside the hostile guest",
		    reports, RUN_MS);
	fu_assert_safe(&F, "a hostile guest");
	assert_true(F.extra_samples > 0);
	assert_int_equal(F.extra_over, 0);
	assert_true(fu_converged(&F));
	fu_stop_all(&F);

	/* What the collector refused, from its stop line. */
	line = fu_log_line(&F.col, "agent frames");
	frames_line = strstr(line, " 0 dropped") == NULL && *line != '\0';
	san = fu_log_count(&F.col, "sanitizer:");
	fprintf(stderr, "fault: collector: %s; %u sanitizer reasons\n", line,
	    san);
	assert_true(frames_line || san > 0);
	fu_cleanup(&F);
}

static int
teardown(void **state)
{
	(void)state;
	fu_kill_all(&F);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fault_hostile_guest, teardown),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
