/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kill -9 of each daemon of a running system in turn (mm-scheduler, then
 * mm-collector, then mm-actuator), each dead for longer than the
 * actuator's fail-safe delay and a command batch's life: the guests stay
 * within their limits meanwhile, the restarted daemon resumes (connects,
 * and decides, reports or executes again), and every guest is at the
 * scheduler's target within 5 s of the restart. While the actuator is
 * dead, web's balloon is moved 128 MiB off its target from outside (an
 * operator's virsh setmem): the new actuator asks the scheduler for its
 * targets and must restore it. Prints the convergence times.
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

#define FAILSAFE_MS	2000	/* the actuator's failsafe_after */
#define TTL_MS		2000	/* the scheduler's command_ttl */
#define DOWN_MS		5000	/* longer than both */
#define BACK_MS		5000	/* converged by then after the restart */
#define MOVE_KIB	(128 * FU_MIB)

static struct fu F;

/* What must have happened again since the restart, beyond convergence. */
static unsigned *resumed_counter, resumed_before;

static bool
resumed(struct fu *f)
{
	return *resumed_counter > resumed_before && fu_converged(f);
}

static void
kill_and_restart(struct fu_daemon *d, unsigned *counter, bool move)
{
	unsigned conn = fu_log_count(d, "connected to the broker at");
	unsigned fs_on = fu_log_count(&F.act, "fail-safe on");
	uint64_t web = fu_balloon_kib(&F, 0), t0, spent;
	long ms, conn_ms;

	fu_daemon_kill9(d);
	if (move)
		fu_move_balloon(&F, 0, web - MOVE_KIB);
	fu_run_for(&F, DOWN_MS);
	if (move && fu_balloon_kib(&F, 0) > web - MOVE_KIB + FU_NEAR_KIB)
		fail_msg("web's balloon not moved off its target: %llu MiB",
		    (unsigned long long)fu_balloon_kib(&F, 0) / FU_MIB);
	fprintf(stderr, "fault: %s dead %u ms: web %llu MiB, db %llu MiB; "
	    "actuator's fail-safe turned on %u time(s)\n", d->name, DOWN_MS,
	    (unsigned long long)fu_balloon_kib(&F, 0) / FU_MIB,
	    (unsigned long long)fu_balloon_kib(&F, 1) / FU_MIB,
	    fu_log_count(&F.act, "fail-safe on") - fs_on);
	if (d == &F.sched && fu_log_count(&F.act, "fail-safe on") == fs_on)
		fail_msg("no command for %u ms but the actuator's fail-safe "
		    "did not turn on", DOWN_MS);

	resumed_counter = counter;
	resumed_before = *counter;
	t0 = tu_wall_ms();
	fu_daemon_start(&F, d);
	conn_ms = fu_wait_log(&F, d, "connected to the broker at", conn,
	    BACK_MS);
	if (conn_ms < 0)
		fail_msg("%s not connected %u ms after its restart: %s",
		    d->name, BACK_MS, fu_log_line(d, ""));
	spent = tu_wall_ms() - t0;
	ms = fu_run_until(&F, resumed, spent >= BACK_MS ? 0 :
	    (unsigned)(BACK_MS - spent));
	if (ms < 0)
		fail_msg("%llu ms after the %s's restart: web %llu MiB "
		    "(wanted %llu), db %llu MiB (wanted %llu), %u new "
		    "reports/decisions/results", (unsigned long long)
		    (tu_wall_ms() - t0), d->name, (unsigned long long)
		    fu_balloon_kib(&F, 0) / FU_MIB, (unsigned long long)
		    F.vm[0].decided_kib / FU_MIB, (unsigned long long)
		    fu_balloon_kib(&F, 1) / FU_MIB, (unsigned long long)
		    F.vm[1].decided_kib / FU_MIB, *counter - resumed_before);
	fprintf(stderr, "fault: %s restarted: connected %ld ms, guests at "
	    "the targets %llu ms after the restart (web %llu MiB, db %llu "
	    "MiB)\n", d->name, conn_ms, (unsigned long long)(tu_wall_ms() - t0),
	    (unsigned long long)fu_balloon_kib(&F, 0) / FU_MIB,
	    (unsigned long long)fu_balloon_kib(&F, 1) / FU_MIB);
}

static void
test_fault_kill9(void **state)
{
	fu_start(&F, &(struct fu_opts){
	    .act_extra = "failsafe_after = 2s\nfailsafe_interval = 500ms\n"
		"failsafe_step = 128M\nhost_reserve = 1G\n",
	    .sched_extra = "command_ttl = 2s\nheartbeat = 1s\nresend = 1s\n",
	});
	kill_and_restart(&F.sched, &F.decisions, false);
	kill_and_restart(&F.col, &F.reports, false);
	kill_and_restart(&F.act, &F.results, true);
	fu_assert_safe(&F, "kill -9 of each daemon");
	fu_finish(&F);
}

static int
teardown(void **state)
{
	fu_kill_all(&F);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fault_kill9, teardown),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
