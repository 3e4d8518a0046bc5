/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler's logic without a broker: the daemon (mm_scheduler_lib) on
 * the test's loop, with the in-memory bus (fakes/bus_fake.h) in place of
 * RabbitMQ. The test plays the collectors and actuators: it hands reports
 * and results to the scheduler's queues and reads the batches it publishes.
 * tests/integration/test_scheduler.c does the same against the real broker.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "bus_fake.h"
#include "msg.h"
#include "clock.h"
#include "scheduler.h"
#include "testutil.h"
#include "topology.h"

#define GiB	(1024ull * 1024ull)
#define HOST	"host-u1"

struct world {
	uv_loop_t loop;
	struct scheduler s;
	char *dir;
	uint64_t seq;
	uint64_t time_ms;
};

static struct world w;

/* A scheduler on a new loop, its state in w.dir. */
static void
start_sched(void)
{
	memset(&w.s, 0, sizeof(w.s));
	bus_fake_reset();
	assert_int_equal(uv_loop_init(&w.loop), 0);
	assert_int_equal(conf_defaults(sched_conf_table, sched_conf_n,
	    &w.s.conf), 0);
	free(w.s.conf.state_file);
	w.s.conf.state_file = malloc(strlen(w.dir) + sizeof("/state"));
	assert_non_null(w.s.conf.state_file);
	strcat(strcpy(w.s.conf.state_file, w.dir), "/state");
	/* The shortest resend the configuration allows; no heartbeat, so
	 * that every batch is a decision's. */
	w.s.conf.resend_ms = 500;
	w.s.conf.heartbeat_ms = 0;
	snprintf(w.s.id, sizeof(w.s.id), "sched-unit");
	assert_int_equal(sched_start(&w.s, &w.loop), 0);
	tu_run_for(&w.loop, 20);
	assert_true(bus_fake_consumed(w.s.stats_queue));
	assert_true(bus_fake_consumed(w.s.results_queue));
	w.time_ms = tu_wall_ms();
}

/* Stop it and run its loop to the end (the history's last save too). */
static void
stop_sched(void)
{
	sched_stop(&w.s);
	assert_int_equal(tu_loop_finish(&w.loop), 0);
	sched_free(&w.s);
}

static int
setup(void **state)
{
	(void)state;
	memset(&w, 0, sizeof(w));
	w.dir = tu_tmpdir();
	start_sched();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	stop_sched();
	tu_rmtree(w.dir);
	free(w.dir);
	return 0;
}

/* Hand the scheduler a report of HOST (one guest, "vm-a", its balloon at
 * size_kib, memory pressure psi) dated ahead_ms from the last one; the
 * disposition its handler returned. */
static enum bus_disposition
report(double psi, uint64_t size_kib, uint64_t ahead_ms)
{
	enum bus_disposition disp = BUS_ACK;
	struct bus_msg bm;
	uint8_t *buf;

	w.time_ms += ahead_ms;
	assert_int_equal(tu_report_msg(HOST, ++w.seq, w.time_ms, psi,
	    size_kib, &bm, &buf), 0);
	assert_int_equal(bus_fake_deliver(w.s.stats_queue, &bm, &disp), 0);
	free(buf);
	return disp;
}

/* The last CommandBatch published to HOST since the last bus_fake_reset()
 * (NULL: none); the caller frees it with msg_free(). */
static Mm__V1__CommandBatch *
last_batch(void)
{
	Mm__V1__CommandBatch *b = NULL;

	for (size_t i = bus_fake_count(); i-- > 0 && b == NULL;) {
		const struct bus_fake_msg *m = bus_fake_msg(i);
		ProtobufCMessage *u;

		if (strcmp(m->exchange, TOPO_EX_COMMANDS) != 0 ||
		    strcmp(m->routing_key, HOST) != 0)
			continue;
		assert_int_equal(msg_unpack(MSG_COMMAND_BATCH, m->body, m->len,
		    &u, NULL, 0), 0);
		b = (Mm__V1__CommandBatch *)u;
	}
	return b;
}

/* vm-a's balloon command in b (NULL: none). */
static const Mm__V1__Command *
balloon_cmd(const Mm__V1__CommandBatch *b)
{
	for (size_t i = 0; b != NULL && i < b->n_commands; i++) {
		const Mm__V1__Command *c = b->commands[i];

		if (c->kind_case == MM__V1__COMMAND__KIND_BALLOON &&
		    strcmp(c->balloon->vm_id, "vm-a") == 0)
			return c;
	}
	return NULL;
}

/* The balloon target for vm-a in b, 0 when it has none. */
static uint64_t
balloon_target(const Mm__V1__CommandBatch *b)
{
	const Mm__V1__Command *c = balloon_cmd(b);

	return c != NULL ? c->balloon->target_kib : 0;
}

/* Answer batch b as HOST's actuator would: every balloon command with
 * status st. */
static void
result(const Mm__V1__CommandBatch *b, Mm__V1__ResultStatus st)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;
	Mm__V1__ActionResult ar = MM__V1__ACTION_RESULT__INIT;
	Mm__V1__CommandResult cr[8], *crp[8];
	struct bus_msg bm;
	uint8_t *buf;
	char key[128];

	assert_true(b->n_commands <= 8);
	for (size_t i = 0; i < b->n_commands; i++) {
		mm__v1__command_result__init(&cr[i]);
		crp[i] = &cr[i];
		cr[i].has_index = cr[i].has_status = true;
		cr[i].index = (uint32_t)i;
		cr[i].status = st;
		if (b->commands[i]->kind_case == MM__V1__COMMAND__KIND_BALLOON)
			cr[i].vm_id = b->commands[i]->balloon->vm_id;
	}
	ar.host_id = HOST;
	ar.has_batch_seq = ar.has_time_ms = true;
	ar.batch_seq = b->seq;
	ar.time_ms = tu_wall_ms();
	ar.scheduler_id = b->scheduler_id;
	ar.n_results = b->n_commands;
	ar.results = crp;
	ev.has_kind = ev.has_time_ms = true;
	ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_RESULT;
	ev.time_ms = ar.time_ms;
	ev.host_id = HOST;
	ev.result = &ar;
	assert_int_equal(topo_event_key(key, sizeof(key), TOPO_EV_RESULT,
	    HOST), 0);
	assert_int_equal(msg_to_bus(MSG_EVENT, (const ProtobufCMessage *)&ev,
	    TOPO_EX_EVENTS, key, false, &bm, &buf), 0);
	assert_int_equal(bus_fake_deliver(w.s.results_queue, &bm, NULL), 0);
	free(buf);
}

/* A guest under memory pressure gets a bigger target, within its maximum,
 * in a batch to its host's actuator. */
static void
test_sched_pressure_grows_within_max(void **state)
{
	Mm__V1__CommandBatch *b;

	(void)state;
	assert_int_equal(report(30, 2 * GiB, 1000), BUS_ACK);
	b = last_batch();
	assert_non_null(b);
	assert_string_equal(b->scheduler_id, "sched-unit");
	assert_true(b->has_expires_ms && b->expires_ms > tu_wall_ms());
	assert_true(balloon_target(b) > 2 * GiB);
	assert_true(balloon_target(b) <= 8 * GiB);
	msg_free(&b->base);
}

/* A target the actuator does not confirm is sent again after `resend`;
 * once a result says it is set, it is not. */
static void
test_sched_unconfirmed_target_sent_again(void **state)
{
	Mm__V1__CommandBatch *b, *again, *after;
	uint64_t target;

	(void)state;
	assert_int_equal(report(30, 2 * GiB, 1000), BUS_ACK);
	b = last_batch();
	target = balloon_target(b);
	assert_true(target > 2 * GiB);

	/* The balloon got there and the pressure went: the engine has
	 * nothing new to say, but no result came, so the target goes out
	 * again, saying why. */
	bus_fake_reset();
	tu_run_for(&w.loop, 600);
	report(0, target, 1000);
	again = last_batch();
	assert_non_null(again);
	assert_int_equal(balloon_target(again), target);
	assert_true(again->seq > b->seq);
	assert_non_null(strstr(balloon_cmd(again)->reason, "reconcile"));

	/* Confirmed: no more resends, however long it takes. */
	result(again, MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	bus_fake_reset();
	tu_run_for(&w.loop, 1200);
	report(0, target, 1000);
	after = last_batch();
	assert_int_equal(balloon_target(after), 0);
	msg_free(after ? &after->base : NULL);
	msg_free(&again->base);
	msg_free(&b->base);
}

/* A report dated an hour ahead (a host's clock, or a forger) is refused
 * to the dead letters and counted, and the host goes on being decided. */
static void
test_sched_report_ahead_refused_host_still_decided(void **state)
{
	Mm__V1__CommandBatch *b;

	(void)state;
	assert_int_equal(report(0, 2 * GiB, 1000), BUS_ACK);
	assert_int_equal(report(30, 2 * GiB, 3600 * 1000), BUS_REJECT);
	assert_int_equal(w.s.n.reports_future, 1);
	bus_fake_reset();
	w.time_ms -= 3600 * 1000;
	assert_int_equal(report(30, 2 * GiB, 1000), BUS_ACK);
	b = last_batch();
	assert_non_null(b);
	assert_true(balloon_target(b) > 2 * GiB);
	msg_free(&b->base);
}

/* A report of HOST with two guests, vm-a and vm-b, each at its size and
 * pressure (the shape of tu_report_msg()'s one). */
static void
report2(double psi_a, uint64_t size_a, double psi_b, uint64_t size_b)
{
	Mm__V1__HostReport r = MM__V1__HOST_REPORT__INIT;
	Mm__V1__HostStats hs = MM__V1__HOST_STATS__INIT;
	Mm__V1__Meminfo hm = MM__V1__MEMINFO__INIT, gm[2];
	Mm__V1__GuestStats g[2], *gp[2] = { &g[0], &g[1] };
	Mm__V1__Psi p[2];
	const double psi[2] = { psi_a, psi_b };
	const uint64_t size[2] = { size_a, size_b };
	enum bus_disposition disp = BUS_REJECT;
	struct bus_msg bm;
	uint8_t *buf;

	hm.has_total_kib = hm.has_available_kib = true;
	hm.total_kib = 64 * GiB;
	hm.available_kib = 32 * GiB;
	hs.meminfo = &hm;
	for (int i = 0; i < 2; i++) {
		mm__v1__meminfo__init(&gm[i]);
		mm__v1__guest_stats__init(&g[i]);
		mm__v1__psi__init(&p[i]);
		gm[i].has_total_kib = gm[i].has_available_kib = true;
		gm[i].total_kib = size[i];
		gm[i].available_kib = size[i] > 3 * GiB / 2 ?
		    size[i] - 3 * GiB / 2 : 0;
		p[i].has_some_avg10_pct = true;
		p[i].some_avg10_pct = psi[i];
		g[i].vm_id = i == 0 ? "vm-a" : "vm-b";
		g[i].meminfo = &gm[i];
		g[i].psi = &p[i];
		g[i].has_balloon_target_kib = g[i].has_balloon_actual_kib = true;
		g[i].balloon_target_kib = g[i].balloon_actual_kib = size[i];
		g[i].has_max_kib = true;
		g[i].max_kib = 8 * GiB;
	}
	w.time_ms += 1000;
	r.host_id = HOST;
	r.has_seq = r.has_time_ms = true;
	r.seq = ++w.seq;
	r.time_ms = w.time_ms;
	r.host = &hs;
	r.n_guests = 2;
	r.guests = gp;
	assert_int_equal(msg_to_bus(MSG_HOST_REPORT, (const ProtobufCMessage *)&r,
	    TOPO_EX_STATS, "host." HOST, false, &bm, &buf), 0);
	assert_int_equal(bus_fake_deliver(w.s.stats_queue, &bm, &disp), 0);
	assert_int_equal(disp, BUS_ACK);
	free(buf);
}

/* The command batches to HOST in the fake's log. */
static size_t
batches_to_host(void)
{
	size_t n = 0;

	for (size_t i = 0; i < bus_fake_count(); i++)
		n += strcmp(bus_fake_msg(i)->exchange, TOPO_EX_COMMANDS) == 0 &&
		    strcmp(bus_fake_msg(i)->routing_key, HOST) == 0;
	return n;
}

/* The balloon command for vm in b, or NULL. */
static const Mm__V1__Command *
balloon_of(const Mm__V1__CommandBatch *b, const char *vm)
{
	for (size_t i = 0; b != NULL && i < b->n_commands; i++)
		if (b->commands[i]->kind_case == MM__V1__COMMAND__KIND_BALLOON &&
		    strcmp(b->commands[i]->balloon->vm_id, vm) == 0)
			return b->commands[i];
	return NULL;
}

/*
 * The broker does not take the batches (the bus holds them): a host never
 * has more than one batch waiting, the newest, and it still carries what
 * the one it replaced decided (vm-a's target from the first report), so
 * nothing decided is lost and nothing is refused.
 */
static void
test_sched_waiting_batch_superseded_keeps_its_targets(void **state)
{
	Mm__V1__CommandBatch *first, *b;
	const Mm__V1__Command *a, *bb;
	uint64_t target_a;

	(void)state;
	bus_fake_hold(true);
	report2(30, 2 * GiB, 0, 2 * GiB);
	first = last_batch();
	assert_non_null(first);
	target_a = balloon_target(first);
	assert_true(target_a > 2 * GiB);
	assert_true(bus_pending(w.s.bus, HOST));

	/* vm-a is calm at its new size; vm-b comes under pressure. */
	report2(0, target_a, 30, 2 * GiB);
	assert_int_equal(batches_to_host(), 1);
	assert_int_equal(w.s.n.batches_superseded, 1);
	assert_int_equal(w.s.n.batches_refused, 0);
	b = last_batch();
	assert_non_null(b);
	assert_true(b->seq > first->seq);
	a = balloon_of(b, "vm-a");
	bb = balloon_of(b, "vm-b");
	assert_non_null(a);
	assert_non_null(bb);
	assert_int_equal(a->balloon->target_kib, target_a);
	assert_non_null(strstr(a->reason, "superseded"));
	assert_true(bb->balloon->target_kib > 2 * GiB);

	/* The broker back: the one batch goes, nothing waits. */
	bus_fake_hold(false);
	tu_run_for(&w.loop, 20);
	assert_false(bus_pending(w.s.bus, HOST));
	assert_int_equal(batches_to_host(), 1);
	msg_free(&b->base);
	msg_free(&first->base);
}

/* The history file's record of HOST's vm-a: the hours it spans and its
 * largest hourly use, MiB; false when it has none. */
static bool
saved_history(uint32_t *hours, uint32_t *peak_mib)
{
	char path[4200], host[256], vm[256], magic[8];
	bool found = false;
	uint8_t hl, vl;
	FILE *f;

	snprintf(path, sizeof(path), "%s/scheduler.history", w.dir);
	f = fopen(path, "rb");
	if (f == NULL)
		return false;
	assert_int_equal(fread(magic, 1, 8, f), 8);
	assert_memory_equal(magic, "MMHIST01", 8);
	while (fread(&hl, 1, 1, f) == 1) {
		uint64_t hour;
		uint32_t n, mib;

		assert_int_equal(fread(host, 1, hl, f), hl);
		host[hl] = '\0';
		assert_int_equal(fread(&vl, 1, 1, f), 1);
		assert_int_equal(fread(vm, 1, vl, f), vl);
		vm[vl] = '\0';
		assert_int_equal(fread(&hour, sizeof(hour), 1, f), 1);
		assert_int_equal(fread(&n, sizeof(n), 1, f), 1);
		assert_true(n >= 1 && n <= PE_HIST_HOURS);
		if (strcmp(host, HOST) == 0 && strcmp(vm, "vm-a") == 0) {
			found = true;
			*hours = n;
			*peak_mib = 0;
		}
		for (uint32_t k = 0; k < n; k++) {
			assert_int_equal(fread(&mib, sizeof(mib), 1, f), 1);
			if (found && strcmp(vm, "vm-a") == 0 &&
			    strcmp(host, HOST) == 0 && mib > *peak_mib)
				*peak_mib = mib;
		}
	}
	fclose(f);
	return found;
}

/* A report of HOST dated ahead_ms after the last, vm-a using used_kib of
 * a 4 GiB balloon. */
static void
report_used(uint64_t used_kib, uint64_t ahead_ms)
{
	struct bus_msg bm;
	uint8_t *buf;

	w.time_ms += ahead_ms;
	assert_int_equal(tu_report_msg_used(HOST, ++w.seq, w.time_ms, 0,
	    4 * GiB, used_kib, &bm, &buf), 0);
	assert_int_equal(bus_fake_deliver(w.s.stats_queue, &bm, NULL), 0);
	free(buf);
}

/*
 * The VMs' hourly peaks (the policy's history term) outlive a restart:
 * saved at stop to scheduler.history beside the state file, read at start
 * and given to the host at its first report, saved again with what came
 * since. 26 hours of reports every 10 minutes, 3.5 GiB used in one hour
 * (the 21st), 1 GiB otherwise.
 */
static void
test_sched_history_survives_restart(void **state)
{
	uint32_t hours = 0, peak = 0, hours2 = 0, peak2 = 0;

	(void)state;
	w.time_ms = tu_wall_ms() - 26 * 3600000ull;
	for (int r = 0; r < 26 * 6; r++)
		report_used(r / 6 == 20 ? 3584 * 1024 : 1 * GiB, 600000);
	stop_sched();
	assert_true(saved_history(&hours, &peak));
	fprintf(stderr, "history: %u hours saved, peak %u MiB\n", hours,
	    peak);
	assert_true(hours >= 26 && hours <= 27);
	assert_int_equal(peak, 3584);

	/* A new scheduler: one report (now), and the day's peak is still
	 * there, the hours run on. */
	start_sched();
	w.seq += 1000;
	report_used(1 * GiB, 0);
	stop_sched();
	assert_true(saved_history(&hours2, &peak2));
	assert_true(hours2 >= hours);
	assert_int_equal(peak2, 3584);
	start_sched();
}

/* A history file that is not one, or cut short: said in the log,
 * counted, what came before the damage kept, the scheduler decides. */
static void
test_sched_history_damaged_file(void **state)
{
	char path[4200];
	Mm__V1__CommandBatch *b;
	uint32_t hours = 0, peak = 0;
	FILE *f;
	long size;

	(void)state;
	/* A good file of one host... */
	w.time_ms = tu_wall_ms() - 3 * 3600000ull;
	for (int r = 0; r < 3 * 6; r++)
		report_used(1 * GiB, 600000);
	stop_sched();
	assert_true(saved_history(&hours, &peak));
	/* ...with a second record cut in the middle. */
	snprintf(path, sizeof(path), "%s/scheduler.history", w.dir);
	f = fopen(path, "ab");
	assert_non_null(f);
	fwrite("\x07host-u2\x04vm-b\x01\x02", 1, 15, f);
	fclose(f);
	start_sched();
	assert_int_equal(w.s.n.history_refused, 1);
	assert_int_equal(report(30, 2 * GiB, 1000), BUS_ACK);
	b = last_batch();
	assert_non_null(b);
	msg_free(&b->base);
	stop_sched();
	/* The good record was kept and saved again. */
	assert_true(saved_history(&hours, &peak));

	/* Not a history file at all: neither read nor saved over. */
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("policy = something else\n", f);
	fclose(f);
	start_sched();
	assert_int_equal(w.s.n.history_refused, 1);
	assert_int_equal(report(30, 2 * GiB, 1000), BUS_ACK);
	stop_sched();
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fclose(f);
	assert_int_equal(size, (long)strlen("policy = something else\n"));
	start_sched();
}

/* Two schedulers' histories of one VM (handover.c): the newest hour of
 * either, each hour's larger peak, at most a week. */
static void
test_sched_history_merge_takes_each_hours_peak(void **state)
{
	struct pe_vm_history a = { .vm_id = "vm-a", .hour = 1000,
	    .hours = 3, .mib = { 5, 50, 7 } };
	struct pe_vm_history b = { .vm_id = "vm-a", .hour = 999,
	    .hours = 4, .mib = { 60, 1, 8, 9 } };
	const uint32_t want[] = { 5, 60, 7, 8, 9 };

	history_merge(&a, &b);
	assert_string_equal(a.vm_id, "vm-a");
	assert_int_equal(a.hour, 1000);
	assert_int_equal(a.hours, 5);
	for (size_t k = 0; k < 5; k++)
		assert_int_equal(a.mib[k], want[k]);
	assert_int_equal(a.mib[5], 0);

	/* A week, not more: what falls out of it is dropped. */
	memset(&a, 0, sizeof(a));
	strcpy(a.vm_id, "vm-a");
	a.hour = 2000;
	a.hours = PE_HIST_HOURS;
	for (uint32_t k = 0; k < PE_HIST_HOURS; k++)
		a.mib[k] = 100 + k;
	memset(&b, 0, sizeof(b));
	strcpy(b.vm_id, "vm-a");
	b.hour = 2010;
	b.hours = 1;
	b.mib[0] = 3;
	history_merge(&a, &b);
	assert_int_equal(a.hour, 2010);
	assert_int_equal(a.hours, PE_HIST_HOURS);
	assert_int_equal(a.mib[0], 3);
	assert_int_equal(a.mib[1], 0);	/* hours 2009..2001: no report */
	assert_int_equal(a.mib[10], 100);
	assert_int_equal(a.mib[PE_HIST_HOURS - 1], 100 + PE_HIST_HOURS - 11);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_sched_pressure_grows_within_max, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sched_unconfirmed_target_sent_again, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sched_report_ahead_refused_host_still_decided, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_sched_waiting_batch_superseded_keeps_its_targets,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sched_history_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sched_history_damaged_file, setup, teardown),
		cmocka_unit_test(test_sched_history_merge_takes_each_hours_peak),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
