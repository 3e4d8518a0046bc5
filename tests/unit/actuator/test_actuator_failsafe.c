/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What mm-actuator does alone, without a broker (the in-memory bus) on
 * mm-sim's VMs. With no batch for failsafe_after, a guest under pressure
 * grows by failsafe_step (at most every failsafe_interval) until it is not
 * under pressure, with a warning alert per step, while a guest without
 * pressure is left alone; nothing happens before failsafe_after, and the
 * next batch ends it. A stop leaves every guest at its target and gives
 * KSM the settings found at start back; a restart sets nothing until the
 * scheduler's next batch.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "act_harness.h"
#include "bus_fake.h"
#include "testutil.h"
#include "tu_hv.h"

/* web uses 512 MiB: at 600 MiB it has 88 MiB (15%) available. */
static const char *const vms[] = { "web,768M,static:512M", "idle,512M,idle",
	NULL };

static struct harness H;

static void
conf_fs(struct actuator_conf *c)
{
	c->balloon_interval_ms = 0;
	c->failsafe_after_ms = 2000;
	c->failsafe_interval_ms = 1000;
	c->failsafe_step_kib = 64 * MIB;
	c->failsafe_avail_pct = 20;	/* below 20% available: pressure */
	c->failsafe_psi_pct = 100;
	c->host_reserve_kib = 0;
}

/* A batch, answered OK. */
static void
batch_ok(uint64_t seq, const struct th_cmd *cmds, size_t n)
{
	Mm__V1__Event *ev;

	assert_int_equal(th_batch_now(&H, seq, cmds, n), BUS_ACK);
	ev = th_result(&H, seq, 0, 5000, NULL);
	assert_non_null(ev);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ev->result->results[i]->status,
		    MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	msg_free(&ev->base);
}

static void
test_actuator_failsafe_grows_under_pressure(void **state)
{
	const struct th_cmd squeeze[] = {
		{ "web", 600 * MIB, NULL },
		{ "idle", 448 * MIB, NULL },
	};
	const struct th_cmd again[] = { { "web", 600 * MIB, NULL } };

	th_start(&H, vms, conf_fs);
	batch_ok(1, squeeze, 2);

	/* Under pressure at once, but the scheduler is not silent yet. */
	tu_run_for(&H.loop, 1500);
	assert_int_equal(th_target_kib(&H, "web"), 600 * MIB);
	assert_int_equal(th_alerts("fail-safe"), 0);

	/* Silent for 2 s: one step, after which web has 152 MiB of 664
	 * (23%) available and is left there; idle, without pressure, is
	 * never touched. */
	tu_run_for(&H.loop, 3500);
	assert_int_equal(th_target_kib(&H, "web"), 664 * MIB);
	assert_true(th_wait_actual(&H, "web", 664 * MIB, 3000));
	assert_int_equal(th_alerts("fail-safe"), 1);
	assert_int_equal(th_target_kib(&H, "idle"), 448 * MIB);
	assert_int_equal(th_actual_kib(&H, "idle"), 448 * MIB);

	/* The next batch ends it: squeezed again, web waits another 2 s of
	 * silence before the fail-safe grows it. */
	batch_ok(2, again, 1);
	assert_true(th_wait_actual(&H, "web", 600 * MIB, 3000));
	tu_run_for(&H.loop, 1000);
	assert_int_equal(th_target_kib(&H, "web"), 600 * MIB);
	assert_int_equal(th_alerts("fail-safe"), 1);
	tu_run_for(&H.loop, 2500);
	assert_int_equal(th_target_kib(&H, "web"), 664 * MIB);
	assert_int_equal(th_alerts("fail-safe"), 2);
}

/* Grows as far as the guest's maximum, no further. */
static void
conf_fs_max(struct actuator_conf *c)
{
	conf_fs(c);
	c->failsafe_avail_pct = 100;	/* always under pressure */
	c->failsafe_interval_ms = 300;
}

static void
test_actuator_failsafe_up_to_maximum(void **state)
{
	const struct th_cmd squeeze[] = { { "web", 600 * MIB, NULL } };

	th_start(&H, vms, conf_fs_max);
	batch_ok(1, squeeze, 1);
	/* Each step waits for a sample taken after the balloon got there
	 * (about a second here): three steps within 10 s. */
	for (unsigned t = 0; t < 10000 &&
	    th_target_kib(&H, "web") < 768 * MIB; t += 100)
		tu_run_for(&H.loop, 100);
	tu_run_for(&H.loop, 1000);
	assert_int_equal(th_target_kib(&H, "web"), 768 * MIB);
	assert_true(th_wait_actual(&H, "web", 768 * MIB, 3000));
	/* 600 + 64 + 64 = 728, then the last 40 MiB. */
	assert_int_equal(th_alerts("fail-safe"), 3);
}

static void
conf_stop(struct actuator_conf *c)
{
	c->balloon_interval_ms = 0;
	c->failsafe_after_ms = 0;
}

/* Stop, with the defaults: the guests keep their targets, KSM gets the
 * settings found at start back, the queue is left. A restart (an upgrade, the watchdog)
 * then sets nothing: it asks the scheduler for its targets and the
 * guests stay where the last batch put them. */
static void
test_actuator_failsafe_stop_keeps(void **state)
{
	Mm__V1__KsmSettings ks = MM__V1__KSM_SETTINGS__INIT;
	const struct th_cmd cmds[] = {
		{ "web", 600 * MIB, NULL },
		{ "idle", 448 * MIB, NULL },
		{ NULL, 0, &ks },
	};
	const struct th_cmd late[] = { { "web", 640 * MIB, NULL } };
	Mm__V1__Event *ev;
	uint64_t scan0, run0;
	size_t mark;

	th_start(&H, vms, conf_stop);
	assert_false(H.a.conf.release_on_stop);
	scan0 = th_ksm(&H, "pages_to_scan");
	run0 = th_ksm(&H, "run");
	ks.has_run = 1;
	ks.run = MM__V1__KSM_RUN__KSM_RUN_MERGE;
	ks.has_pages_to_scan = 1;
	ks.pages_to_scan = (uint32_t)scan0 + 400;
	batch_ok(1, cmds, 3);
	assert_int_equal(th_ksm(&H, "pages_to_scan"), scan0 + 400);
	assert_int_equal(th_ksm(&H, "run"), 1);
	assert_true(th_wait_actual(&H, "web", 600 * MIB, 3000));
	assert_true(th_wait_actual(&H, "idle", 448 * MIB, 3000));

	th_stop(&H);
	assert_false(bus_fake_consumed(H.a.queue));
	assert_int_equal(th_ksm(&H, "pages_to_scan"), scan0);
	assert_int_equal(th_ksm(&H, "run"), run0);
	tu_run_for(&H.loop, 1000);
	assert_int_equal(th_actual_kib(&H, "web"), 600 * MIB);
	assert_int_equal(th_actual_kib(&H, "idle"), 448 * MIB);
	assert_int_equal(th_alerts("actuator stopping"), 0);

	/* The restart. */
	mark = bus_fake_count();
	th_restart(&H);
	ev = th_result(&H, 0, mark, 3000, NULL);
	assert_non_null(ev);	/* it asked for its targets */
	msg_free(&ev->base);
	tu_run_for(&H.loop, 2000);
	assert_int_equal(th_target_kib(&H, "web"), 0);	/* nothing set */
	assert_int_equal(th_target_kib(&H, "idle"), 0);
	assert_int_equal(th_actual_kib(&H, "web"), 600 * MIB);
	assert_int_equal(th_actual_kib(&H, "idle"), 448 * MIB);
	/* and takes the scheduler's next batch as before */
	batch_ok(3, late, 1);
	assert_true(th_wait_actual(&H, "web", 640 * MIB, 3000));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
		    test_actuator_failsafe_grows_under_pressure, th_teardown),
		cmocka_unit_test_teardown(test_actuator_failsafe_up_to_maximum,
		    th_teardown),
		cmocka_unit_test_teardown(test_actuator_failsafe_stop_keeps,
		    th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
