/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator's batch executor without a broker (the in-memory bus) on
 * mm-sim's VMs: a batch within the limits is applied and answered OK;
 * targets above the maximum, below vm_min or below the guest's used memory
 * plus margin are clamped and answered CLAMPED with what was set; an
 * expired or out-of-order batch changes nothing and is answered so; a
 * batch from an unlisted scheduler, from the future or for another host is
 * dead-lettered unanswered; back from a lost connection it asks for its
 * targets again. What is checked is what a user sees: the balloon of the
 * VM and the ActionResult on mm.events.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "act_harness.h"
#include "bus_fake.h"
#include "testutil.h"

static const char *const vms[] = { "web,768M,static:512M", "idle,512M,idle",
	NULL };

static struct harness H;

/* The result of vm_id's command in ev (NULL: the first one). */
static const Mm__V1__CommandResult *
result_of(const Mm__V1__Event *ev, const char *vm_id)
{
	assert_non_null(ev);
	assert_non_null(ev->result);
	for (size_t i = 0; i < ev->result->n_results; i++) {
		const Mm__V1__CommandResult *r = ev->result->results[i];

		/* A batch refused as a whole answers each command by its
		 * index alone. */
		if (vm_id == NULL || (r->vm_id != NULL &&
		    strcmp(r->vm_id, vm_id) == 0))
			return r;
	}
	fail_msg("no result for vm \"%s\"", vm_id != NULL ? vm_id : "(any)");
	return NULL;
}

static void
conf_exec(struct actuator_conf *c)
{
	c->balloon_interval_ms = 0;	/* no shrink waits */
	c->failsafe_after_ms = 0;	/* never */
	c->vm_min_kib = 384 * MIB;
	free(c->schedulers);
	c->schedulers = strdup("sched-t,sched-u");
}

/* Started, it asks for its targets; a batch within the limits is set on
 * the VMs and answered OK with the targets in place. */
static void
test_actuator_exec_within_limits(void **state)
{
	const struct th_cmd cmds[] = {
		{ "web", 700 * MIB, NULL },
		{ "idle", 448 * MIB, NULL },
	};
	const Mm__V1__CommandResult *r;
	Mm__V1__Event *ev;
	size_t at;

	th_start(&H, vms, conf_exec);
	ev = th_result(&H, 0, 0, 2000, NULL);
	assert_non_null(ev);
	assert_true(ev->result->has_sync && ev->result->sync);
	assert_string_equal(ev->result->host_id, "h1");
	msg_free(&ev->base);

	assert_int_equal(th_batch_now(&H, 1, cmds, 2), BUS_ACK);
	ev = th_result(&H, 1, 0, 5000, NULL);
	assert_non_null(ev);
	assert_string_equal(ev->host_id, "h1");
	assert_string_equal(ev->result->scheduler_id, "sched-t");
	assert_int_equal(ev->result->n_results, 2);
	r = result_of(ev, "web");
	assert_int_equal(r->status, MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(r->balloon_target_kib, 700 * MIB);
	r = result_of(ev, "idle");
	assert_int_equal(r->status, MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(r->balloon_target_kib, 448 * MIB);
	msg_free(&ev->base);

	assert_int_equal(th_target_kib(&H, "web"), 700 * MIB);
	assert_true(th_wait_actual(&H, "web", 700 * MIB, 5000));
	assert_true(th_wait_actual(&H, "idle", 448 * MIB, 5000));

	/* Back from a lost connection, it asks for its targets again. */
	bus_fake_set_up(false, "connection reset");
	at = bus_fake_count();
	bus_fake_set_up(true, NULL);
	ev = th_result(&H, 0, at, 2000, NULL);
	assert_non_null(ev);
	assert_true(ev->result->has_sync && ev->result->sync);
	msg_free(&ev->base);
}

/* Above the maximum: the maximum. Below vm_min: vm_min. Below what the
 * guest uses plus the margin: that. Each is CLAMPED, and the VM gets it. */
static void
test_actuator_exec_clamped(void **state)
{
	const struct th_cmd up[] = {
		{ "web", 2048 * MIB, NULL },
		{ "idle", 200 * MIB, NULL },
	};
	const struct th_cmd down[] = { { "web", 100 * MIB, NULL } };
	const Mm__V1__CommandResult *r;
	Mm__V1__Event *ev;

	th_start(&H, vms, conf_exec);
	assert_int_equal(th_batch_now(&H, 1, up, 2), BUS_ACK);
	ev = th_result(&H, 1, 0, 5000, NULL);
	r = result_of(ev, "web");
	assert_int_equal(r->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(r->balloon_target_kib, 768 * MIB);
	assert_non_null(strstr(r->error, "maximum"));
	r = result_of(ev, "idle");
	assert_int_equal(r->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(r->balloon_target_kib, 384 * MIB);
	msg_free(&ev->base);
	assert_true(th_wait_actual(&H, "idle", 384 * MIB, 5000));
	assert_int_equal(th_actual_kib(&H, "web"), 768 * MIB);

	/* web uses 512 MiB; the default margin is 64 MiB. */
	assert_int_equal(th_batch_now(&H, 2, down, 1), BUS_ACK);
	ev = th_result(&H, 2, 0, 5000, NULL);
	r = result_of(ev, "web");
	assert_int_equal(r->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(r->balloon_target_kib, 576 * MIB);
	assert_non_null(strstr(r->error, "used"));
	msg_free(&ev->base);
	assert_int_equal(th_target_kib(&H, "web"), 576 * MIB);
	assert_true(th_wait_actual(&H, "web", 576 * MIB, 6000));
	/* And not below. */
	tu_run_for(&H.loop, 500);
	assert_int_equal(th_actual_kib(&H, "web"), 576 * MIB);
}

/* Out of order, expired: answered so, nothing changes. Unlisted
 * scheduler, from the future, another host: dead-lettered, unanswered,
 * nothing changes. The actuator keeps serving. */
static void
test_actuator_exec_refuses(void **state)
{
	const struct th_cmd first[] = { { "web", 700 * MIB, NULL } };
	const struct th_cmd other[] = { { "web", 600 * MIB, NULL } };
	const struct th_cmd last[] = { { "web", 650 * MIB, NULL } };
	uint64_t now;
	size_t mark;
	Mm__V1__Event *ev;

	th_start(&H, vms, conf_exec);
	assert_int_equal(th_batch_now(&H, 5, first, 1), BUS_ACK);
	ev = th_result(&H, 5, 0, 5000, NULL);
	assert_int_equal(result_of(ev, "web")->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	msg_free(&ev->base);
	assert_true(th_wait_actual(&H, "web", 700 * MIB, 5000));

	/* An older batch of the same scheduler, arriving late. */
	now = tu_wall_ms();
	assert_int_equal(th_batch(&H, NULL, NULL, 4, now - 1000, now + 9000,
	    other, 1), BUS_ACK);
	ev = th_result(&H, 4, 0, 2000, NULL);
	assert_int_equal(result_of(ev, NULL)->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OUT_OF_ORDER);
	msg_free(&ev->base);

	/* Expired in the queue. */
	assert_int_equal(th_batch(&H, NULL, NULL, 6, now - 20000,
	    now - 10000, other, 1), BUS_ACK);
	ev = th_result(&H, 6, 0, 2000, NULL);
	assert_int_equal(result_of(ev, NULL)->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_EXPIRED);
	msg_free(&ev->base);

	mark = bus_fake_count();
	assert_int_equal(th_batch(&H, NULL, "sched-x", 7, now, now + 9000,
	    other, 1), BUS_REJECT);
	assert_int_equal(th_batch(&H, NULL, NULL, 8, now + 120000,
	    now + 130000, other, 1), BUS_REJECT);
	assert_int_equal(th_batch(&H, "h2", NULL, 9, now, now + 9000, other,
	    1), BUS_REJECT);
	tu_run_for(&H.loop, 1000);
	assert_int_equal(bus_fake_count(), mark);
	assert_int_equal(th_target_kib(&H, "web"), 700 * MIB);
	assert_int_equal(th_actual_kib(&H, "web"), 700 * MIB);

	/* A failover to another listed scheduler is fine. */
	now = tu_wall_ms();
	assert_int_equal(th_batch(&H, NULL, "sched-u", 1, now, now + 9000,
	    last, 1), BUS_ACK);
	ev = th_result(&H, 1, mark, 5000, NULL);
	assert_int_equal(result_of(ev, "web")->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	msg_free(&ev->base);
	assert_true(th_wait_actual(&H, "web", 650 * MIB, 5000));
}

/* A second shrink within balloon_interval waits: SKIPPED with the
 * deferral, then set, and a second RESULT for its batch says so. */
static void
conf_rate(struct actuator_conf *c)
{
	c->balloon_interval_ms = 2000;
	c->failsafe_after_ms = 0;
}

static void
test_actuator_exec_rate_limited(void **state)
{
	const struct th_cmd a[] = { { "web", 700 * MIB, NULL } };
	const struct th_cmd b[] = { { "web", 640 * MIB, NULL } };
	const Mm__V1__CommandResult *r;
	Mm__V1__Event *ev;
	size_t at;

	th_start(&H, vms, conf_rate);
	assert_int_equal(th_batch_now(&H, 1, a, 1), BUS_ACK);
	ev = th_result(&H, 1, 0, 5000, &at);
	assert_int_equal(result_of(ev, "web")->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	msg_free(&ev->base);

	assert_int_equal(th_batch_now(&H, 2, b, 1), BUS_ACK);
	ev = th_result(&H, 2, 0, 2000, &at);
	r = result_of(ev, "web");
	assert_int_equal(r->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED);
	assert_non_null(strstr(r->error, "deferred"));
	msg_free(&ev->base);
	assert_int_equal(th_target_kib(&H, "web"), 700 * MIB);

	ev = th_result(&H, 2, at + 1, 5000, NULL);
	r = result_of(ev, "web");
	assert_int_equal(r->status, MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(r->balloon_target_kib, 640 * MIB);
	msg_free(&ev->base);
	assert_true(th_wait_actual(&H, "web", 640 * MIB, 5000));
}

/*
 * Proactive reclaim: a ReclaimCold for "web" becomes a ReclaimRequest on
 * web's agent control socket (a listening socket of the test's here),
 * with the batch's seq and the stall budget, at most what the VM has;
 * answered OK without a vm_id (not a balloon target to reconcile). "idle"
 * has no control socket: SKIPPED, and why.
 */
static void
test_actuator_exec_reclaim(void **state)
{
	static const char *const ids[2] = { "web", "idle" };
	Mm__V1__Command c[2], *cp[2];
	Mm__V1__ReclaimCold rc[2];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	Mm__V1__ReclaimRequest *rq;
	ProtobufCMessage *m;
	uint8_t frame[300];
	Mm__V1__Event *ev;
	int lfd, fd;
	ssize_t n;

	for (int i = 0; i < 2; i++) {
		mm__v1__command__init(&c[i]);
		mm__v1__reclaim_cold__init(&rc[i]);
		rc[i].vm_id = (char *)ids[i];
		rc[i].has_kib = rc[i].has_psi_budget_pct = 1;
		rc[i].kib = (i == 0 ? 256 : 64) * MIB;
		rc[i].psi_budget_pct = 5.0;
		c[i].kind_case = MM__V1__COMMAND__KIND_RECLAIM;
		c[i].reclaim = &rc[i];
		cp[i] = &c[i];
	}
	th_start(&H, vms, conf_exec);
	assert_true(strlen(H.vmdir) + sizeof("/web.control") <=
	    sizeof(sa.sun_path));
	memcpy(sa.sun_path, H.vmdir, strlen(H.vmdir));
	memcpy(sa.sun_path + strlen(H.vmdir), "/web.control",
	    sizeof("/web.control"));
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 1), 0);

	assert_int_equal(th_batch_commands(&H, 3, cp, 2), BUS_ACK);
	ev = th_result(&H, 3, 0, 5000, NULL);
	assert_non_null(ev);
	assert_int_equal(ev->result->n_results, 2);
	assert_null(ev->result->results[0]->vm_id);
	assert_int_equal(ev->result->results[0]->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(ev->result->results[1]->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED);
	assert_non_null(strstr(ev->result->results[1]->error,
	    "no agent control channel"));
	msg_free(&ev->base);

	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	n = read(fd, frame, sizeof(frame));
	assert_true(n > 4);
	assert_int_equal(msg_unpack(MSG_RECLAIM_REQUEST, frame + 4,
	    (size_t)n - 4, &m, NULL, 0), 0);
	rq = (Mm__V1__ReclaimRequest *)m;
	assert_int_equal(rq->seq, 3);
	assert_int_equal(rq->kib, 256 * MIB);
	assert_true(rq->psi_budget_pct == 5.0);
	msg_free(m);
	close(fd);
	close(lfd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_actuator_exec_within_limits,
		    th_teardown),
		cmocka_unit_test_teardown(test_actuator_exec_clamped,
		    th_teardown),
		cmocka_unit_test_teardown(test_actuator_exec_refuses,
		    th_teardown),
		cmocka_unit_test_teardown(test_actuator_exec_reclaim,
		    th_teardown),
		cmocka_unit_test_teardown(test_actuator_exec_rate_limited,
		    th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
