/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker killed (SIGKILL) and started again under a running system:
 * mm-sim's two guests, mm-collector, mm-actuator and mm-scheduler. Every
 * daemon is connected again within 5 s of the broker being back (each logs
 * "connected to the broker at"); the targets the scheduler sent just before
 * the broker died, while the actuator was frozen (SIGSTOP), are executed
 * after it; reports, decisions and results flow again, and no guest left
 * its limits meanwhile. Prints the reconnect and convergence times.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "fault_util.h"
#include "testutil.h"

#define BACK_MS		5000	/* every daemon connected again by then */
#define HEADROOM_KIB	(512 * FU_MIB)	/* the second policy's */
#define DOWN_MS		3000	/* the broker stays dead this long before
				 * its start (of 8-12 s); MM_FAULT_DOWN_MS */

static struct fu F;

static bool
decided_growth(struct fu *f)
{
	return f->vm[0].decided_kib >= FU_GIB + HEADROOM_KIB - FU_NEAR_KIB;
}

static unsigned results_before;

static bool
results_again(struct fu *f)
{
	return f->results > results_before && fu_converged(f);
}

/* Note when each daemon logs a new connection (at[i] = 0 until then);
 * true once all have. */
static bool
all_back(struct fu_daemon *const *d, const unsigned *conn, uint64_t *at)
{
	bool all = true;

	for (int i = 0; i < 3; i++) {
		if (at[i] == 0 && fu_log_count(d[i],
		    "connected to the broker at") > conn[i])
			at[i] = tu_wall_ms();
		all = all && at[i] != 0;
	}
	return all;
}

static void
test_fault_broker_restart(void **state)
{
	struct fu_daemon *d[] = { &F.col, &F.act, &F.sched };
	unsigned conn[3], reports, decisions;
	uint64_t killed_ms, back_ms = 0, at_ms[3] = { 0 }, v2;
	pid_t start;
	long after[3];
	long ms;

	/* Batches live a minute: one queued before the broker dies is still
	 * good after it. */
	fu_start(&F, &(struct fu_opts){ .sched_extra = "command_ttl = 60s\n" });
	for (int i = 0; i < 3; i++)
		conn[i] = fu_log_count(d[i], "connected to the broker at");

	/* A command confirmed by the broker and not yet executed when it
	 * dies: the actuator frozen, a policy with 512 MiB of headroom makes
	 * the scheduler grow both guests (web to 1.5 GiB); its batch waits
	 * in the actuator's durable queue (or unacked in the frozen
	 * actuator's socket). */
	kill(F.act.pid, SIGSTOP);
	v2 = clock_ms(CLOCK_REALTIME);
	fu_publish_policy(&F, v2, "fault-2", HEADROOM_KIB);
	if (fu_run_until(&F, decided_growth, 15000) < 0)
		fail_msg("no decision for the new policy's targets: web %llu MiB",
		    (unsigned long long)F.vm[0].decided_kib / FU_MIB);
	fu_run_for(&F, 1000);	/* the batch confirmed by then */
	fprintf(stderr, "fault: decided before the kill: web %llu MiB, db %llu "
	    "MiB; the actuator frozen, web at %llu MiB\n",
	    (unsigned long long)F.vm[0].decided_kib / FU_MIB,
	    (unsigned long long)F.vm[1].decided_kib / FU_MIB,
	    (unsigned long long)fu_balloon_kib(&F, 0) / FU_MIB);
	assert_true(fu_balloon_kib(&F, 0) + FU_NEAR_KIB <
	    F.vm[0].decided_kib);
	killed_ms = tu_wall_ms();
	fu_broker_ctl("kill");
	kill(F.act.pid, SIGCONT);
	fu_run_for(&F, getenv("MM_FAULT_DOWN_MS") != NULL ?
	    (unsigned)atoi(getenv("MM_FAULT_DOWN_MS")) : DOWN_MS);
	for (int i = 0; i < 3; i++)
		if (!fu_daemon_alive(d[i]))
			fail_msg("%s died while the broker was down", d[i]->name);
	reports = F.reports;
	decisions = F.decisions;
	results_before = F.results;

	/* Start it in the background, watching the daemons' logs: one may
	 * connect before the start script returns (it waits for the node,
	 * then provisions). */
	start = fu_broker_start_async();
	while (back_ms == 0 || !all_back(d, conn, at_ms)) {
		int st;

		if (back_ms == 0 && waitpid(start, &st, WNOHANG) == start) {
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
			back_ms = tu_wall_ms();
		}
		all_back(d, conn, at_ms);
		if (tu_wall_ms() - killed_ms > 120000)
			fail_msg("the broker or a daemon not back 120 s after "
			    "the kill");
		fu_run_for(&F, 20);
	}
	fprintf(stderr, "fault: broker down %llu ms (kill to ready)\n",
	    (unsigned long long)(back_ms - killed_ms));
	for (int i = 0; i < 3; i++) {
		after[i] = (long)((int64_t)at_ms[i] - (int64_t)back_ms);
		fprintf(stderr, "fault: %s connected again %ld ms after the "
		    "broker was back\n", d[i]->name, after[i]);
	}
	for (int i = 0; i < 3; i++)
		if (after[i] > BACK_MS)
			fail_msg("%s connected %ld ms after the broker was back "
			    "(at most %u)", d[i]->name, after[i], BACK_MS);

	/* Nothing lost: the guests reach the targets decided before the
	 * kill (the batch queued then, or the answer to the actuator's
	 * sync); reports and results flow again (decisions are events of
	 * changes: none is due). */
	ms = fu_run_until(&F, results_again, 15000);
	if (ms < 0)
		fail_msg("no result, or guests not at the targets, 15 s after "
		    "the connections: web %llu MiB (wanted %llu), db %llu MiB "
		    "(wanted %llu)", (unsigned long long)fu_balloon_kib(&F, 0) /
		    FU_MIB, (unsigned long long)F.vm[0].decided_kib / FU_MIB,
		    (unsigned long long)fu_balloon_kib(&F, 1) / FU_MIB,
		    (unsigned long long)F.vm[1].decided_kib / FU_MIB);
	fprintf(stderr, "fault: results again and guests at the targets %llu "
	    "ms after the broker was back; %u reports and %u decisions "
	    "since\n", (unsigned long long)(tu_wall_ms() - back_ms),
	    F.reports - reports, F.decisions - decisions);
	assert_true(F.reports > reports);
	fu_assert_safe(&F, "broker restart");
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
		cmocka_unit_test_teardown(test_fault_broker_restart, teardown),
	};

	tu_broker_url();
	tu_broker_ctl();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
