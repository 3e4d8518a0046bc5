/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler as a user runs it, against a real RabbitMQ: a report with a
 * guest under pressure yields a command batch and a decision event, and
 * one with three such guests one event carrying the three; a
 * shadow policy is accepted and then only events flow, no commands; an
 * invalid policy is rejected with its reason and the old one stays; an
 * older version is ignored with a warning; the policy in force survives a
 * restart.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

#define GiB	(1024ull * 1024ull)

struct world {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *host;
	char *sched;
	char *dir;
	char *conf;
	int pid;
	uint64_t seq;
	uint64_t time_ms;

	unsigned batches;
	unsigned empty_batches;
	uint64_t batch_seq;
	size_t batch_balloons;
	uint64_t batch_target;
	char batch_reason[1024];
	unsigned decisions;		/* events */
	unsigned decided_vms;		/* the VMs in them */
	size_t decision_vms;		/* in the last one */
	bool decision_has_batch;
	uint64_t decision_batch;
	bool decision_shadow;
	uint64_t decision_version;
	char decision_reason[1024];
	unsigned alerts;
	int alert_severity;
	uint64_t alert_version;
	char alert_reason[1024];
	bool got;
	struct msg_dispatch_stats stats;
};

static struct world w;

static enum bus_disposition
on_batch(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *b = (const Mm__V1__CommandBatch *)m;

	if (strcmp(b->host_id, w.host) != 0)
		return BUS_ACK;
	w.batches++;
	w.empty_batches += b->n_commands == 0;
	w.batch_seq = b->seq;
	w.batch_balloons = 0;
	for (size_t i = 0; i < b->n_commands; i++) {
		const Mm__V1__Command *c = b->commands[i];

		if (c->kind_case == MM__V1__COMMAND__KIND_BALLOON) {
			w.batch_balloons++;
			w.batch_target = c->balloon->target_kib;
			snprintf(w.batch_reason, sizeof(w.batch_reason), "%s",
			    c->reason);
		}
	}
	w.got = true;
	return BUS_ACK;
}

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	Mm__V1__VmDecision vd;

	if (e->kind == MM__V1__EVENT_KIND__EVENT_KIND_DECISION) {
		w.decisions++;
		w.decision_vms = 0;
		for (size_t i = 0; msg_event_vm(e, i, &vd); i++) {
			w.decision_vms++;
			snprintf(w.decision_reason, sizeof(w.decision_reason),
			    "%s", vd.reason);
		}
		w.decided_vms += w.decision_vms;
		w.decision_has_batch = e->has_batch_seq;
		w.decision_batch = e->batch_seq;
		w.decision_shadow = e->shadow;
		w.decision_version = e->policy_version;
	} else if (e->kind == MM__V1__EVENT_KIND__EVENT_KIND_ALERT) {
		w.alerts++;
		w.alert_severity = e->severity;
		w.alert_version = e->policy_version;
		snprintf(w.alert_reason, sizeof(w.alert_reason), "%s",
		    e->reason);
	}
	w.got = true;
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_COMMAND_BATCH, on_batch },
		{ MSG_EVENT, on_event },
	};

	return msg_dispatch(table, 2, d, NULL, &w.stats, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	w.up = up;
}

static void
start_scheduler(void)
{
	char *bin = tu_bin_path("mm-scheduler");
	char *argv[] = { bin, "-d", "-c", w.conf, NULL };

	w.pid = tu_spawn(argv);
	free(bin);
	/* Its queues exist already (declared below): reports wait. */
	tu_run_for(&w.loop, 1500);
}

static int
setup(void **state)
{
	char text[1024];
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-scheduler",
		.state_cb = state_cb,
	};
	const struct bus_queue_opts q = { .exclusive = true,
	    .auto_delete = true };
	char *cq, *eq, key[160];

	w.host = tu_unique("th");
	w.sched = tu_unique("ts");
	/* Ids may not hold what tu_unique() adds after the prefix... */
	for (char *c = w.host; *c; c++)
		if (*c == '.')
			*c = '-';
	for (char *c = w.sched; *c; c++)
		if (*c == '.')
			*c = '-';
	w.dir = tu_tmpdir();
	/* No actuator answers in this world (its balloons follow the
	 * batches, but nothing confirms them): targets are not sent again
	 * within the tests. */
	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\nheartbeat = 2s\nresend = 10m\n"
	    "[bus]\nurl = %s\n",
	    w.sched, w.dir, tu_broker_url());
	w.conf = tu_write_file(w.dir, "scheduler.conf", text);
	w.time_ms = 1700000000000ull;

	uv_loop_init(&w.loop);
	w.bus = bus_new(&w.loop, &cfg);
	assert_non_null(w.bus);
	cq = tu_unique("mm.test.cmds");
	eq = tu_unique("mm.test.events");
	topo_declare_stats_queue(w.bus, "host.#");
	topo_declare_events_exchange(w.bus);
	topo_declare_policy_exchange(w.bus);
	topo_declare_actuator_queue(w.bus, w.host);
	bus_declare_queue(w.bus, cq, &q);
	bus_bind(w.bus, cq, TOPO_EX_COMMANDS, w.host);
	bus_declare_queue(w.bus, eq, &q);
	topo_event_key(key, sizeof(key), "*", w.host);
	bus_bind(w.bus, eq, TOPO_EX_EVENTS, key);
	topo_event_key(key, sizeof(key), "alert", w.sched);
	bus_bind(w.bus, eq, TOPO_EX_EVENTS, key);
	bus_consume(w.bus, cq, false, delivery_cb, NULL);
	bus_consume(w.bus, eq, false, delivery_cb, NULL);
	assert_int_equal(bus_start(w.bus), 0);
	assert_true(tu_run_until(&w.loop, &w.up, 10000));
	free(cq);
	free(eq);
	start_scheduler();
	return 0;
}

static int
teardown(void **state)
{
	assert_int_equal(tu_stop(w.pid, 5000), 0);
	bus_close(w.bus, 1000, NULL, NULL);
	tu_loop_finish(&w.loop);
	tu_rmtree(w.dir);
	return 0;
}

static void
publish_report(double psi)
{
	w.time_ms += 1000;
	assert_int_equal(tu_publish_report(w.bus, w.host, ++w.seq, w.time_ms,
	    psi), 0);
}

static void
publish_policy(uint64_t version, Mm__V1__PolicyMode mode, bool bad)
{
	Mm__V1__Policy p = MM__V1__POLICY__INIT;

	p.has_version = p.has_mode = true;
	p.version = version;
	p.mode = mode;
	p.name = "test";
	p.algorithm = "pressure";
	/* Structurally fine (msg.c refuses min above max before it leaves),
	 * but no scheduler knows this algorithm. */
	if (bad)
		p.algorithm = "squeezed";
	assert_int_equal(msg_publish(w.bus, MSG_POLICY,
	    (const ProtobufCMessage *)&p, TOPO_EX_POLICY, "", true, NULL,
	    NULL), 0);
}

/* Run until a counter passes its old value, or timeout. */
static bool
wait_more(const unsigned *counter, unsigned timeout_ms)
{
	unsigned before = *counter;

	for (unsigned t = 0; t < timeout_ms && *counter == before; t += 50)
		tu_run_for(&w.loop, 50);
	return *counter > before;
}

static void
test_scheduler_pressure_commands_a_bigger_target(void **state)
{
	publish_report(30);
	assert_true(wait_more(&w.batches, 10000));
	assert_true(w.batch_target > 2 * GiB);
	assert_true(w.batch_target <= 8 * GiB);
	assert_non_null(strstr(w.batch_reason, "grow-pressure"));
	assert_true(wait_more(&w.decisions, 2000) || w.decisions > 0);
	assert_false(w.decision_shadow);
	assert_int_equal(w.decision_version, 0);
	assert_non_null(strstr(w.decision_reason, "pressure"));
}

/* A host with nothing to change still hears from the scheduler, every
 * heartbeat (2 s here), so that its actuator's fail-safe stays off. The
 * guest's balloon follows the targets, so the host settles. */
/* A host's broker user publishes reports with its own key only (topic
 * permissions, test_topology); a report whose body names another host
 * than its key is forged: refused, counted, and it makes no queue. */
static void
test_scheduler_forged_reports_declare_no_queue(void **state)
{
	char id[128], prefix[32], key[128];
	struct bus_msg bm;
	uint8_t *buf;
	char *json;

	snprintf(prefix, sizeof(prefix), "made-up-%d-", (int)getpid());
	snprintf(key, sizeof(key), "host.%s", w.host);
	assert_int_equal(topo_declare_stats_exchange(w.bus), 0);
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "%s%d", prefix, i);
		assert_int_equal(tu_report_msg(id, 1, tu_wall_ms(), 0,
		    2 * GiB, &bm, &buf), 0);
		/* The key of the one real host of this test. */
		bm.routing_key = key;
		assert_int_equal(bus_publish(w.bus, &bm, NULL, NULL), 0);
		free(buf);
	}
	tu_run_for(&w.loop, 2000);
	json = tu_mgmt_get("/api/queues/mm?columns=name");
	snprintf(id, sizeof(id), "\"mm.actuator.%s", prefix);
	if (strstr(json, id) != NULL)
		fail_msg("a forged host got a queue (%s...)", id + 1);
}

static void
test_scheduler_heartbeat_on_a_quiet_host(void **state)
{
	unsigned empty = 0, batches = 0;

	/* Reports 250 ms apart, in real time too: the 30 s hold after
	 * the last test's pressure does not end (no shrink comes). */
	for (int i = 0; i < 30; i++) {
		w.time_ms += 250;
		assert_int_equal(tu_publish_report_sized(w.bus, w.host,
		    ++w.seq, w.time_ms, 0, w.batch_target), 0);
		tu_run_for(&w.loop, 250);
		if (i == 19) {
			empty = w.empty_batches;
			batches = w.batches;
		}
	}
	/* The last 2.5 s of calm reports: only heartbeats, one or two,
	 * not one a report. */
	print_message("last 10 reports: %u batches, %u empty\n",
	    w.batches - batches, w.empty_batches - empty);
	assert_int_equal(w.batches - batches, w.empty_batches - empty);
	assert_true(w.empty_batches - empty >= 1);
	assert_true(w.empty_batches - empty <= 2);
}

/* A report of n guests (names[i]) of 2 GiB each under pressure psi. */
static void
publish_guests(size_t n, const char *const *names, double psi)
{
	Mm__V1__HostReport r = MM__V1__HOST_REPORT__INIT;
	Mm__V1__HostStats hs = MM__V1__HOST_STATS__INIT;
	Mm__V1__Meminfo hm = MM__V1__MEMINFO__INIT, gm = MM__V1__MEMINFO__INIT;
	Mm__V1__GuestStats g[8], *gp[8];
	Mm__V1__Psi p = MM__V1__PSI__INIT;
	char key[160];

	assert_true(n <= 8);
	hm.has_total_kib = hm.has_available_kib = true;
	hm.total_kib = 64 * GiB;
	hm.available_kib = 32 * GiB;
	hs.meminfo = &hm;
	gm.has_total_kib = gm.has_available_kib = true;
	gm.total_kib = 2 * GiB;
	gm.available_kib = GiB / 2;
	p.has_some_avg10_pct = true;
	p.some_avg10_pct = psi;
	for (size_t i = 0; i < n; i++) {
		mm__v1__guest_stats__init(&g[i]);
		g[i].vm_id = (char *)names[i];
		g[i].meminfo = &gm;
		g[i].psi = &p;
		g[i].has_balloon_target_kib = g[i].has_balloon_actual_kib = true;
		g[i].balloon_target_kib = g[i].balloon_actual_kib = 2 * GiB;
		g[i].has_max_kib = true;
		g[i].max_kib = 8 * GiB;
		gp[i] = &g[i];
	}
	w.time_ms += 1000;
	r.host_id = w.host;
	r.has_seq = r.has_time_ms = true;
	r.seq = ++w.seq;
	r.time_ms = w.time_ms;
	r.host = &hs;
	r.n_guests = n;
	r.guests = gp;
	snprintf(key, sizeof(key), "host.%s", w.host);
	assert_int_equal(msg_publish(w.bus, MSG_HOST_REPORT,
	    (const ProtobufCMessage *)&r, TOPO_EX_STATS, key, false, NULL,
	    NULL), 0);
}

/* Three guests of one host decided in one round: one decision event
 * carries the three, with the sequence number of the batch that carries
 * their commands. */
static void
test_scheduler_one_decision_event_per_round(void **state)
{
	static const char *const names[] = { "vm-b", "vm-c", "vm-d" };
	unsigned events = w.decisions, vms = w.decided_vms;
	unsigned batches = w.batches;

	publish_guests(3, names, 30);
	assert_true(wait_more(&w.decisions, 10000));
	/* The batch follows; a second event would come with it. */
	tu_run_for(&w.loop, 1000);
	print_message("one report of 3 guests: %u decision event(s), %u VMs, "
	    "%u batch(es)\n", w.decisions - events, w.decided_vms - vms,
	    w.batches - batches);
	assert_int_equal(w.decisions - events, 1);
	assert_int_equal(w.decision_vms, 3);
	assert_int_equal(w.decided_vms - vms, 3);
	assert_non_null(strstr(w.decision_reason, "pressure"));
	assert_false(w.decision_shadow);
	assert_true(w.decision_has_batch);
	assert_int_equal(w.decision_batch, w.batch_seq);
	assert_int_equal(w.batch_balloons, 3);
}

static void
test_scheduler_shadow_policy_sends_no_commands(void **state)
{
	unsigned batches;

	publish_policy(5, MM__V1__POLICY_MODE__POLICY_MODE_SHADOW, false);
	assert_true(wait_more(&w.alerts, 10000));
	assert_int_equal(w.alert_version, 5);
	assert_int_equal(w.alert_severity, MM__V1__SEVERITY__SEVERITY_INFO);
	assert_non_null(strstr(w.alert_reason, "accepted"));
	tu_run_for(&w.loop, 500);
	batches = w.batches;
	publish_report(30);
	assert_true(wait_more(&w.decisions, 10000));
	assert_true(w.decision_shadow);
	assert_int_equal(w.decision_version, 5);
	tu_run_for(&w.loop, 1500);
	assert_int_equal(w.batches, batches);
}

static void
test_scheduler_rejects_invalid_policy_keeps_old(void **state)
{
	publish_policy(6, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE, true);
	assert_true(wait_more(&w.alerts, 10000));
	assert_int_equal(w.alert_version, 6);
	assert_int_equal(w.alert_severity, MM__V1__SEVERITY__SEVERITY_WARNING);
	assert_non_null(strstr(w.alert_reason, "policy 6 rejected"));
	assert_non_null(strstr(w.alert_reason, "unknown algorithm "
	    "\"squeezed\""));
	assert_non_null(strstr(w.alert_reason, "policy 5 stays"));
	/* Older than what is in force: ignored, and said so (a warning
	 * mmctl policy apply shows). */
	publish_policy(4, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE, false);
	assert_true(wait_more(&w.alerts, 10000));
	assert_int_equal(w.alert_version, 4);
	assert_int_equal(w.alert_severity, MM__V1__SEVERITY__SEVERITY_WARNING);
	assert_string_equal(w.alert_reason, "policy 4 ignored: version 5 in "
	    "force; use --reset");
	publish_report(30);
	assert_true(wait_more(&w.decisions, 10000));
	assert_true(w.decision_shadow);
	assert_int_equal(w.decision_version, 5);
}

static void
test_scheduler_policy_survives_restart(void **state)
{
	unsigned batches = w.batches;

	assert_int_equal(tu_stop(w.pid, 5000), 0);
	start_scheduler();
	publish_report(30);
	assert_true(wait_more(&w.decisions, 10000));
	assert_true(w.decision_shadow);
	assert_int_equal(w.decision_version, 5);
	tu_run_for(&w.loop, 1000);
	assert_int_equal(w.batches, batches);
	assert_int_equal(w.stats.invalid + w.stats.undecodable, 0);
}

/* mm-scheduler with conf, its stderr into log. */
static void
start_scheduler_logged(const char *conf, const char *log)
{
	char *bin = tu_bin_path("mm-scheduler"), *cmd;

	assert_true(asprintf(&cmd, "exec %s -d -c %s 2>%s", bin, conf,
	    log) > 0);
	{
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };

		w.pid = tu_spawn(argv);
	}
	free(cmd);
	free(bin);
	tu_run_for(&w.loop, 1500);
}

/*
 * The event history's retention comes from [scheduler] events_max_age and
 * events_max_bytes when the scheduler creates mm.events.log. The broker
 * cannot change a stream's arguments: a scheduler configured otherwise
 * later keeps the stream as it is, says so, and works on (it used to fail
 * every connection on PRECONDITION_FAILED).
 */
static void
test_scheduler_events_retention_from_config(void **state)
{
	char text[1024], *conf, *log, *json;

	assert_int_equal(tu_stop(w.pid, 5000), 0);
	tu_mgmt_request("DELETE", "/api/queues/mm/mm.events.log");
	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\nheartbeat = 2s\nresend = 10m\n"
	    "events_max_age = 2h\nevents_max_bytes = 64M\n"
	    "[bus]\nurl = %s\n", w.sched, w.dir, tu_broker_url());
	conf = tu_write_file(w.dir, "retention.conf", text);
	assert_true(asprintf(&log, "%s/scheduler.log", w.dir) > 0);
	start_scheduler_logged(conf, log);
	json = tu_mgmt_get("/api/queues/mm/mm.events.log");
	assert_non_null(strstr(json, "\"x-queue-type\":\"stream\""));
	assert_non_null(strstr(json, "\"x-max-age\":\"7200s\""));
	assert_non_null(strstr(json, "\"x-max-length-bytes\":67108864"));
	/* Segments: an eighth of the size, at most 8 MiB. */
	assert_non_null(strstr(json,
	    "\"x-stream-max-segment-size-bytes\":8388608"));
	assert_int_equal(tu_stop(w.pid, 5000), 0);
	free(conf);

	/* Changed in the configuration: kept, said, and decisions go on. */
	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\nheartbeat = 2s\nresend = 10m\n"
	    "events_max_age = 3d\nevents_max_bytes = 1G\n"
	    "[bus]\nurl = %s\n", w.sched, w.dir, tu_broker_url());
	conf = tu_write_file(w.dir, "retention.conf", text);
	start_scheduler_logged(conf, log);
	publish_report(30);
	assert_true(wait_more(&w.decisions, 10000));
	json = tu_mgmt_get("/api/queues/mm/mm.events.log");
	assert_non_null(strstr(json, "\"x-max-age\":\"7200s\""));
	assert_non_null(strstr(json, "\"x-max-length-bytes\":67108864"));
	assert_int_equal(tu_file_count(log, "queue \"mm.events.log\" exists "
	    "with other arguments than configured: kept as it is"), 1);
	assert_int_equal(tu_stop(w.pid, 5000), 0);
	free(conf);
	free(log);

	/* Back to the defaults for the tests that follow. */
	tu_mgmt_request("DELETE", "/api/queues/mm/mm.events.log");
	start_scheduler();
	json = tu_mgmt_get("/api/queues/mm/mm.events.log");
	assert_non_null(strstr(json, "\"x-max-age\":\"86400s\""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scheduler_pressure_commands_a_bigger_target),
		cmocka_unit_test(test_scheduler_heartbeat_on_a_quiet_host),
		cmocka_unit_test(test_scheduler_one_decision_event_per_round),
		cmocka_unit_test(test_scheduler_forged_reports_declare_no_queue),
		cmocka_unit_test(test_scheduler_shadow_policy_sends_no_commands),
		cmocka_unit_test(test_scheduler_rejects_invalid_policy_keeps_old),
		cmocka_unit_test(test_scheduler_policy_survives_restart),
		cmocka_unit_test(test_scheduler_events_retention_from_config),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, setup, teardown);
}
