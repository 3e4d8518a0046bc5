/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End to end: mm-sim serves two simulated guests, mm-actuator started as
 * documented consumes its queue on a real RabbitMQ as the "actuator" user,
 * and the test publishes CommandBatches on mm.commands as a scheduler
 * would. It checks that balloons move as commanded and never outside the
 * limits (clamped and reported), that expired, out-of-order and malformed
 * messages are refused without harm, that batches sent while the actuator
 * is dead are applied when it comes back, that stopping it leaves the
 * guests at their targets and KSM at the settings it found, and that
 * `mm-actuator --release` then gives the guests their maximum back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "hv.h"
#include "msg.h"
#include "testutil.h"
#include "tu_hv.h"
#include "topology.h"

#define MIB	1024ull
#define GIB	(1024ull * 1024)
#define MAXRES	64
#define MAXCMD	8

struct result_seen {
	uint64_t seq;
	char sched[65];
	size_t n;
	int status[MAXCMD];
	uint64_t target[MAXCMD], actual[MAXCMD];
	uint32_t ksm_scan[MAXCMD];
	char error[MAXCMD][256];
};

static struct {
	uv_loop_t loop;
	struct bus *bus;
	struct hv *hv;		/* the test's own view of mm-sim */
	bool up;
	char *host_id;
	char *queue;
	char dir[1024], conf_path[4200], ksm_dir[4200], vmdir[1100];
	char root[1100];
	char *act_bin, *sim_bin;
	struct result_seen res[MAXRES];
	size_t nres;
	unsigned alerts, release_alerts, failsafe_alerts;
	unsigned unconfirmed_alerts;	/* "is it the only consumer?" */
	char unconfirmed_alert[1024];
	uint64_t decided_web_kib;	/* the scheduler's last target of web */
	uint64_t decided_db_kib;
	unsigned decisions;
	unsigned web_decisions;		/* of these, about web */
	unsigned web_above;		/* web's above what it earned */
	uint64_t web_max_kib, web_bound_kib;	/* the largest, and its bound */
	uint64_t failsafe_target;
	char last_alert[1024];
	pid_t sim, act, col, sched;
} T;

#define HEADROOM_KIB	(128 * MIB)	/* the policy's default */
#define WEB_PID		100000		/* mm-sim's first VM */

/* What the host sees web hold: its process's resident memory, from the
 * statm mm-sim keeps (KiB; 0 when unreadable). */
static uint64_t
web_resident_kib(void)
{
	char path[1200];
	unsigned long long size, pages;
	FILE *f;
	int n;

	snprintf(path, sizeof(path), "%s/proc/%d/statm", T.root, WEB_PID);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fscanf(f, "%llu %llu", &size, &pages);
	fclose(f);
	return n == 2 ? pages * 4 : 0;
}

/* web's resident memory, sampled every 100 ms over the last 3 s: a
 * decision rests on a report up to a second or two old. */
#define RES_SAMPLES	30
static uint64_t res_ring[RES_SAMPLES];
static unsigned res_next;

static void
res_sample_cb(uv_timer_t *t)
{
	res_ring[res_next++ % RES_SAMPLES] = web_resident_kib();
}

/* A decision for web: within what the host saw it use lately plus
 * headroom? */
static void
web_decided(uint64_t target_kib)
{
	uint64_t res = 0;
	uint64_t bound;

	for (unsigned i = 0; i < RES_SAMPLES; i++)
		if (res_ring[i] > res)
			res = res_ring[i];
	bound = res + (res / 10 > HEADROOM_KIB ? res / 10 :
	    HEADROOM_KIB);

	T.web_decisions++;
	if (res == 0 || target_kib > bound)
		T.web_above++;
	if (target_kib >= T.web_max_kib) {
		T.web_max_kib = target_kib;
		T.web_bound_kib = bound;
	}
}

static enum bus_disposition
event_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *ev = (const Mm__V1__Event *)m;
	struct result_seen *s;
	size_t i;

	if (ev->kind == MM__V1__EVENT_KIND__EVENT_KIND_ALERT) {
		T.alerts++;
		snprintf(T.last_alert, sizeof(T.last_alert), "%s",
		    ev->reason ? ev->reason : "");
		if (ev->reason && strstr(ev->reason, "actuator stopping"))
			T.release_alerts++;
		if (ev->reason && strstr(ev->reason, "the only consumer of "
		    "its queue")) {
			T.unconfirmed_alerts++;
			snprintf(T.unconfirmed_alert,
			    sizeof(T.unconfirmed_alert), "%s", ev->reason);
		}
		if (ev->reason && strstr(ev->reason, "fail-safe") &&
		    ev->vm_id != NULL && strcmp(ev->vm_id, "web") == 0) {
			T.failsafe_alerts++;
			T.failsafe_target = ev->balloon_target_kib;
			assert_int_equal(ev->severity,
			    MM__V1__SEVERITY__SEVERITY_WARNING);
		}
		return BUS_ACK;
	}
	if (ev->kind == MM__V1__EVENT_KIND__EVENT_KIND_DECISION) {
		Mm__V1__VmDecision vd;

		for (size_t k = 0; msg_event_vm(ev, k, &vd); k++) {
			T.decisions++;
			if (strcmp(vd.vm_id, "web") == 0) {
				T.decided_web_kib = vd.balloon_target_kib;
				web_decided(vd.balloon_target_kib);
			}
			if (strcmp(vd.vm_id, "db") == 0)
				T.decided_db_kib = vd.balloon_target_kib;
		}
		return BUS_ACK;
	}
	if (ev->kind != MM__V1__EVENT_KIND__EVENT_KIND_RESULT ||
	    ev->result == NULL || T.nres == MAXRES)
		return BUS_ACK;
	/* An actuator that starts asks for its targets: no batch. */
	if (ev->result->has_sync && ev->result->sync)
		return BUS_ACK;
	assert_string_equal(ev->host_id, T.host_id);
	s = &T.res[T.nres++];
	memset(s, 0, sizeof(*s));
	s->seq = ev->result->batch_seq;
	snprintf(s->sched, sizeof(s->sched), "%s",
	    ev->result->scheduler_id ? ev->result->scheduler_id : "");
	for (i = 0; i < ev->result->n_results && i < MAXCMD; i++) {
		const Mm__V1__CommandResult *r = ev->result->results[i];
		size_t k = r->index;

		/* In order, except a deferred target's own later result:
		 * one command, its index in the batch. */
		if (ev->result->n_results > 1)
			assert_int_equal(k, i);
		assert_true(k < MAXCMD);
		s->status[k] = r->status;
		s->target[k] = r->balloon_target_kib;
		s->actual[k] = r->balloon_actual_kib;
		s->ksm_scan[k] = r->ksm ? r->ksm->pages_to_scan : 0;
		snprintf(s->error[k], sizeof(s->error[k]), "%s",
		    r->error ? r->error : "");
		s->n++;
	}
	return BUS_ACK;
}

static const struct msg_handler handlers[] = {
	{ MSG_EVENT, event_cb },
};

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	return msg_dispatch(handlers, 1, d, NULL, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	T.up = up;
}

static const struct result_seen *
result(uint64_t seq)
{
	size_t i;

	for (i = T.nres; i-- > 0;)
		if (T.res[i].seq == seq)
			return &T.res[i];
	return NULL;
}

static uint64_t want_seq;
static bool
have_result(void)
{
	return result(want_seq) != NULL;
}

static bool
deferred_reported(void)
{
	const struct result_seen *r = result(7);

	return r != NULL && r->status[0] ==
	    MM__V1__RESULT_STATUS__RESULT_STATUS_OK &&
	    r->target[0] == 1500 * MIB;
}

static const struct result_seen *
wait_result(uint64_t seq)
{
	want_seq = seq;
	assert_true(tu_run_until_fn(&T.loop, have_result, 10000));
	return result(seq);
}

static const char *want_vm;
static uint64_t want_kib;
static bool
balloon_at(void)
{
	struct hv_vm *vm = tu_hv_find(T.hv, want_vm);

	return vm != NULL && vm->balloon_known &&
	    vm->balloon_actual_kib == want_kib;
}

static void
wait_balloon(const char *vm, uint64_t kib)
{
	want_vm = vm;
	want_kib = kib;
	if (!tu_run_until_fn(&T.loop, balloon_at, 20000)) {
		struct hv_vm *v = tu_hv_find(T.hv, vm);

		fail_msg("vm %s: balloon %llu KiB, want %llu", vm,
		    v ? (unsigned long long)v->balloon_actual_kib : 0ull,
		    (unsigned long long)kib);
	}
}

static bool
guests_seen(void)
{
	struct hv_vm *a = tu_hv_find(T.hv, "web"), *b = tu_hv_find(T.hv, "db");

	return a && b && a->guest && b->guest && a->balloon_known &&
	    b->balloon_known;
}

/* Build and publish a batch of balloon targets (vm, kib pairs; a vm NULL
 * makes a KSM command setting pages_to_scan to kib, a vm "numa:<id>" a
 * move of <id>'s pages to node kib). */
static void
publish_batch(const char *sched, uint64_t seq, uint64_t issued_ms,
    uint64_t expires_ms, size_t n, const char *const *vms,
    const uint64_t *kib)
{
	Mm__V1__CommandBatch b = MM__V1__COMMAND_BATCH__INIT;
	Mm__V1__Command c[MAXCMD], *cp[MAXCMD];
	Mm__V1__SetBalloonTarget bt[MAXCMD];
	Mm__V1__SetKsm sk[MAXCMD];
	Mm__V1__KsmSettings ks[MAXCMD];
	Mm__V1__MigrateNuma mn[MAXCMD];
	size_t i;

	for (i = 0; i < n; i++) {
		mm__v1__command__init(&c[i]);
		c[i].reason = "test";
		if (vms[i] != NULL && strncmp(vms[i], "numa:", 5) == 0) {
			mm__v1__migrate_numa__init(&mn[i]);
			mn[i].vm_id = (char *)vms[i] + 5;
			mn[i].has_to_node = 1;
			mn[i].to_node = (uint32_t)kib[i];
			mn[i].has_max_pages = 1;
			mn[i].max_pages = 1u << 20;
			c[i].kind_case = MM__V1__COMMAND__KIND_NUMA;
			c[i].numa = &mn[i];
		} else if (vms[i] != NULL) {
			mm__v1__set_balloon_target__init(&bt[i]);
			bt[i].vm_id = (char *)vms[i];
			bt[i].has_target_kib = 1;
			bt[i].target_kib = kib[i];
			c[i].kind_case = MM__V1__COMMAND__KIND_BALLOON;
			c[i].balloon = &bt[i];
		} else {
			mm__v1__set_ksm__init(&sk[i]);
			mm__v1__ksm_settings__init(&ks[i]);
			ks[i].has_pages_to_scan = 1;
			ks[i].pages_to_scan = (uint32_t)kib[i];
			sk[i].settings = &ks[i];
			c[i].kind_case = MM__V1__COMMAND__KIND_KSM;
			c[i].ksm = &sk[i];
		}
		cp[i] = &c[i];
	}
	b.host_id = T.host_id;
	b.scheduler_id = (char *)sched;
	b.has_seq = b.has_issued_ms = b.has_expires_ms = 1;
	b.seq = seq;
	b.issued_ms = issued_ms;
	b.expires_ms = expires_ms;
	b.n_commands = n;
	b.commands = cp;
	assert_int_equal(msg_publish(T.bus, MSG_COMMAND_BATCH, &b.base,
	    TOPO_EX_COMMANDS, T.host_id, true, NULL, NULL), 0);
}

static void
start_actuator(void)
{
	char *argv[] = { T.act_bin, "-c", T.conf_path, "-d", NULL };

	T.act = tu_spawn(argv);
}

static char *
ksm_value(const char *name)
{
	static char buf[64];
	char path[4400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", T.ksm_dir, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* mm-sim with "web" (2G, using 1G) and "db" (1G, idle), the test's
 * consumer of the host's events, its own view of mm-sim's balloons, and
 * mm-actuator with extra configuration lines. */
static const char *web_workload = "static:1G";

static void
env_start(const char *extra)
{
	struct bus_queue_opts qo = { .exclusive = true, .auto_delete = true };
	struct bus_config bc = { 0 };
	struct hv_config hc = { 0 };
	char vmdir[1100], root[1100], sys[1100], key[160], conf[8192];
	char *tmp;

	memset(&T, 0, sizeof(T));
	tmp = tu_tmpdir();
	snprintf(T.dir, sizeof(T.dir), "%s", tmp);
	free(tmp);
	snprintf(vmdir, sizeof(vmdir), "%s/vm", T.dir);
	snprintf(root, sizeof(root), "%s/root", T.dir);
	snprintf(T.vmdir, sizeof(T.vmdir), "%s", vmdir);
	snprintf(T.root, sizeof(T.root), "%s", root);
	snprintf(sys, sizeof(sys), "%s/sys", T.dir);
	snprintf(T.ksm_dir, sizeof(T.ksm_dir), "%s/kernel/mm/ksm", sys);
	/* The actuator's KSM is a fixture tree: mm-sim rewrites its own. */
	free(tu_write_file(sys, "kernel/mm/ksm/run", "1\n"));
	free(tu_write_file(sys, "kernel/mm/ksm/pages_to_scan", "100\n"));
	free(tu_write_file(sys, "kernel/mm/ksm/sleep_millisecs", "20\n"));
	free(tu_write_file(sys, "kernel/mm/ksm/merge_across_nodes", "1\n"));
	free(tu_write_file(sys, "devices/system/node/node0/cpulist", "0-3\n"));
	free(tu_write_file(sys, "devices/system/node/node1/cpulist", "4-7\n"));
	T.host_id = tu_unique("act");
	T.sim_bin = tu_bin_path("mm-sim");
	T.act_bin = tu_bin_path("mm-actuator");

	uv_loop_init(&T.loop);
	bc.url = tu_broker_url();
	bc.app_id = "test_actuator";
	bc.state_cb = state_cb;
	T.bus = bus_new(&T.loop, &bc);
	assert_non_null(T.bus);
	T.queue = tu_unique("mm.test.events");
	assert_int_equal(topo_declare_events_exchange(T.bus), 0);
	assert_int_equal(topo_declare_actuator_queue(T.bus, T.host_id), 0);
	assert_int_equal(bus_declare_queue(T.bus, T.queue, &qo), 0);
	topo_event_key(key, sizeof(key), TOPO_EV_RESULT, T.host_id);
	assert_int_equal(bus_bind(T.bus, T.queue, TOPO_EX_EVENTS, key), 0);
	topo_event_key(key, sizeof(key), TOPO_EV_ALERT, T.host_id);
	assert_int_equal(bus_bind(T.bus, T.queue, TOPO_EX_EVENTS, key), 0);
	topo_event_key(key, sizeof(key), TOPO_EV_DECISION, T.host_id);
	assert_int_equal(bus_bind(T.bus, T.queue, TOPO_EX_EVENTS, key), 0);
	assert_int_equal(bus_consume(T.bus, T.queue, false, delivery_cb,
	    NULL), 0);
	assert_int_equal(bus_start(T.bus), 0);
	assert_true(tu_run_until(&T.loop, &T.up, 15000));

	{
		char web[1200];
		char *argv[] = { T.sim_bin, "-s", vmdir, "-r", root, "-H",
		    "16G", "-m", web, "-m", "db,1G,idle", NULL };

		snprintf(web, sizeof(web), "web,2G,%s", web_workload);

		T.sim = tu_spawn(argv);
	}
	snprintf(conf, sizeof(conf),
	    "; written by test_actuator\n"
	    "[actuator]\nhost_id = %s\ndriver = sim\nvm_dir = %s\n"
	    "proc_root = %s/proc\nsys_root = %s\nrescan = 200ms\n"
	    "poll = 200ms\nvm_min = 256M\nused_margin = 256M\n%s"
	    "[bus]\nurl = %s\n", T.host_id, vmdir, root, sys, extra,
	    tu_broker_url_as("actuator", "actuator"));
	free(tu_write_file(T.dir, "actuator.conf", conf));
	snprintf(T.conf_path, sizeof(T.conf_path), "%s/actuator.conf", T.dir);
	start_actuator();

	hc.type = HV_TYPE_SIM;
	hc.vm_dir = vmdir;
	hc.rescan_ms = 100;
	hc.poll_ms = 200;
	T.hv = hv_new(&T.loop, &hc);
	assert_non_null(T.hv);
	assert_int_equal(hv_start(T.hv), 0);
	assert_true(tu_run_until_fn(&T.loop, guests_seen, 15000));
	tu_run_for(&T.loop, 1500);	/* the actuator has their stats too */
}

static void
env_finish(void)
{
	if (T.act > 0)
		assert_int_equal(tu_stop(T.act, 10000), 0);
	T.act = 0;
	assert_int_equal(tu_stop(T.sim, 5000), 0);
	T.sim = 0;
	hv_close(T.hv, NULL, NULL);
	bus_close(T.bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	tu_rmtree(T.dir);
	free(T.sim_bin);
	free(T.act_bin);
	free(T.host_id);
	free(T.queue);
}

/* Run `mm-actuator --release -c <the test's conf>`: exits 0 and prints
 * want among its lines. */
static void
release_oneshot(const char *want)
{
	char cmd[8400], out[4096];
	size_t n;
	FILE *f;
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' --release -c '%s' -d", T.act_bin,
	    T.conf_path);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	st = pclose(f);
	print_message("release:\n%s", out);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(out, want));
}

static void
test_actuator_end_to_end(void **state)
{
	const struct result_seen *r;
	uint64_t now;

	env_start("balloon_interval = 1s\nfailsafe_after = 0\n");

	/* Applied, clamped to the floor (idle uses 256M, +256M margin) and
	 * to the maximum, a VM that is not there, and KSM. */
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "web", "db", "ghost", NULL, "numa:web",
		    "numa:db" };
		const uint64_t kib[] = { 1536 * MIB, 100 * MIB, GIB, 500, 1, 7 };

		publish_batch("s1", 1, now, now + 10000, 6, vms, kib);
	}
	r = wait_result(1);
	assert_int_equal(r->n, 6);
	/* NUMA: mm-sim's web is on node 0 of two; its pid is not a
	 * process, so the plan is reported, not executed. */
	assert_int_equal(r->status[4],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED);
	print_message("numa: %s\n", r->error[4]);
	assert_non_null(strstr(r->error[4], "from nodes 0x1 to 0x2"));
	assert_int_equal(r->status[5],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED);
	assert_non_null(strstr(r->error[5], "node 7 is not on this host"));
	assert_int_equal(r->status[0], MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(r->target[0], 1536 * MIB);
	assert_int_equal(r->status[1],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(r->target[1], 512 * MIB);
	print_message("db: %s\n", r->error[1]);
	assert_int_equal(r->status[2],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED);
	assert_int_equal(r->status[3], MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	assert_int_equal(r->ksm_scan[3], 500);
	assert_string_equal(ksm_value("pages_to_scan"), "500");
	wait_balloon("web", 1536 * MIB);
	wait_balloon("db", 512 * MIB);

	/* Above the maximum: clamped to it. */
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "db" };
		const uint64_t kib[] = { 8 * GIB };

		publish_batch("s1", 2, now, now + 10000, 1, vms, kib);
	}
	r = wait_result(2);
	assert_int_equal(r->status[0],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(r->target[0], GIB);

	/* Expired, then out of order: nothing happens. */
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "web" };
		const uint64_t kib[] = { 1100 * MIB };

		publish_batch("s1", 3, now - 20000, now - 10000, 1, vms, kib);
		r = wait_result(3);
		assert_int_equal(r->status[0],
		    MM__V1__RESULT_STATUS__RESULT_STATUS_EXPIRED);
		publish_batch("s1", 2, now - 5000, now + 10000, 1, vms, kib);
		want_seq = 2;
		T.nres = 0;
		r = wait_result(2);
		assert_int_equal(r->status[0],
		    MM__V1__RESULT_STATUS__RESULT_STATUS_OUT_OF_ORDER);
	}
	/* Malformed: dead-lettered, and the actuator goes on. */
	{
		struct bus_msg m = { 0 };

		m.exchange = TOPO_EX_COMMANDS;
		m.routing_key = T.host_id;
		m.body = "\xff\xff garbage";
		m.len = 10;
		m.content_type = MSG_CONTENT_TYPE;
		m.type = "mm.v1.CommandBatch";
		assert_int_equal(bus_publish(T.bus, &m, NULL, NULL), 0);
	}
	tu_run_for(&T.loop, 300);
	assert_true(waitpid(T.act, NULL, WNOHANG) == 0);

	/* Killed mid-run: what the scheduler sends meanwhile waits in the
	 * durable queue, and the actuator converges to the last target. */
	kill(T.act, SIGKILL);
	waitpid(T.act, NULL, 0);
	T.act = 0;
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "web", NULL };
		const uint64_t kib[] = { 1800 * MIB, 700 };

		publish_batch("s1", 4, now, now + 30000, 2, vms, kib);
	}
	{
		const char *vms[] = { "web" };
		const uint64_t kib[] = { 1400 * MIB };

		publish_batch("s1", 5, now + 1, now + 30000, 1, vms, kib);
	}
	tu_run_for(&T.loop, 500);
	start_actuator();
	r = wait_result(5);
	print_message("after restart: batch 5 %d (%s)\n", r->status[0],
	    r->error[0]);
	assert_non_null(result(4));
	wait_balloon("web", 1400 * MIB);
	assert_string_equal(ksm_value("pages_to_scan"), "700");

	/* Rate limit: a second change within balloon_interval is reported
	 * SKIPPED, then set once the interval has passed. */
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "web" };
		const uint64_t a[] = { 1600 * MIB }, b[] = { 1500 * MIB };

		publish_batch("s1", 6, now, now + 10000, 1, vms, a);
		publish_batch("s1", 7, now + 1, now + 10000, 1, vms, b);
	}
	r = wait_result(6);
	assert_int_equal(r->status[0], MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	r = wait_result(7);
	assert_int_equal(r->status[0],
	    MM__V1__RESULT_STATUS__RESULT_STATUS_SKIPPED);
	assert_non_null(strstr(r->error[0], "rate limit"));
	assert_int_equal(r->target[0], 1500 * MIB);
	wait_balloon("web", 1500 * MIB);
	/* What finally happened is reported too. */
	assert_true(tu_run_until_fn(&T.loop, deferred_reported, 5000));
	print_message("rate limit: %s\n", result(7)->error[0]);

	/* Stop: the guests keep their targets, KSM as this actuator found
	 * it (500, set by the one killed). */
	assert_int_equal(tu_stop(T.act, 10000), 0);
	T.act = 0;
	assert_string_equal(ksm_value("pages_to_scan"), "500");
	assert_string_equal(ksm_value("run"), "1");
	tu_run_for(&T.loop, 1000);
	wait_balloon("web", 1500 * MIB);
	assert_int_equal(T.release_alerts, 0);

	/* Then the package's removal: `mm-actuator --release` on the stopped
	 * daemon's configuration gives web its maximum (the 16 GiB host has
	 * room); db is at its maximum already. */
	release_oneshot("vm \"web\": 1500 -> 2048 MiB, its maximum\n");
	wait_balloon("web", 2 * GIB);
	wait_balloon("db", 1 * GIB);

	env_finish();
}

static bool
failsafe_seen(void)
{
	return T.failsafe_alerts > 0;
}

/* Without commands, a guest under pressure grows in steps up to its
 * maximum, each step an alert; a guest without pressure does not. */
static void
test_actuator_failsafe(void **state)
{
	const struct result_seen *r;
	uint64_t now;
	size_t nres;
	int i;

	env_start("balloon_interval = 200ms\nfailsafe_after = 3s\n"
	    "failsafe_interval = 500ms\nfailsafe_step = 128M\n"
	    "failsafe_psi = 15\nfailsafe_faults = 100\nhost_reserve = 1G\n"
	    "release_on_stop = no\n");
	now = clock_ms(CLOCK_REALTIME);
	{
		const char *vms[] = { "web", "db" };
		const uint64_t kib[] = { 1536 * MIB, 512 * MIB };

		publish_batch("s1", 1, now, now + 10000, 2, vms, kib);
	}
	r = wait_result(1);
	assert_int_equal(r->status[0], MM__V1__RESULT_STATUS__RESULT_STATUS_OK);
	wait_balloon("web", 1536 * MIB);
	/* No pressure yet: the fail-safe, on by now, leaves them alone. */
	tu_run_for(&T.loop, 3000);
	assert_int_equal(T.failsafe_alerts, 0);
	wait_balloon("web", 1536 * MIB);

	/* A heartbeat (a batch without commands) turns it off for
	 * failsafe_after, and has no result to publish. */
	nres = T.nres;
	now = clock_ms(CLOCK_REALTIME);
	publish_batch("s1", 2, now, now + 10000, 0, NULL, NULL);
	for (i = 0; i < 20; i++) {
		kill(T.sim, SIGUSR1);
		tu_run_for(&T.loop, 100);
	}
	assert_int_equal(T.failsafe_alerts, 0);
	assert_int_equal(T.nres, nres);

	/* Pressure in every guest. */
	for (i = 0; i < 5; i++) {
		kill(T.sim, SIGUSR1);
		tu_run_for(&T.loop, 50);
	}
	assert_true(tu_run_until_fn(&T.loop, failsafe_seen, 5000));
	assert_int_equal(T.failsafe_target, 1536 * MIB + 128 * MIB);
	wait_balloon("web", 1536 * MIB + 128 * MIB);
	print_message("fail-safe: %u step(s) for web, last to %llu MiB\n",
	    T.failsafe_alerts, (unsigned long long)T.failsafe_target / MIB);
	/* Never beyond the maximum, however long the pressure. */
	for (i = 0; i < 40; i++) {
		kill(T.sim, SIGUSR1);
		tu_run_for(&T.loop, 100);
	}
	assert_true(T.failsafe_target <= 2 * GIB);
	/* db is idle and its spike ended: at most what pressure earned it;
	 * release_on_stop = no leaves the guests where they are. */
	assert_int_equal(tu_stop(T.act, 10000), 0);
	T.act = 0;
	tu_run_for(&T.loop, 1000);
	assert_true(tu_hv_find(T.hv, "web")->balloon_actual_kib > 1536 * MIB);
	env_finish();
}

static const char *sched_id;
static bool
scheduler_shrank(void)
{
	struct hv_vm *db = tu_hv_find(T.hv, "db");
	size_t i;

	for (i = 0; i < T.nres; i++)
		if (strcmp(T.res[i].sched, sched_id) == 0 && db != NULL &&
		    db->balloon_actual_kib < GIB)
			return true;
	return false;
}

/* The whole chain: mm-collector reports mm-sim's guests, mm-scheduler
 * (pressure policy, short hold, a guest pool of 1.5 GiB for the 3 GiB the
 * guests could hold) decides, mm-actuator applies. The idle guest is
 * shrunk, every target stays within the limits, nothing fails, and
 * stopping the actuator with release_on_stop = yes gives the guests their
 * maximum back (the 16 GiB host has room for it). */
/* mm-collector and mm-scheduler (with extra lines in its section) for
 * T's host, and a pressure policy: a short hold, a guest pool of 1.5 GiB
 * for the 3 GiB the guests could hold. Returns the scheduler's id. */
static char *
chain_start(const char *sched_extra)
{
	Mm__V1__Policy p = MM__V1__POLICY__INIT;
	Mm__V1__Param hold = MM__V1__PARAM__INIT, pool = MM__V1__PARAM__INIT;
	Mm__V1__Param *params[2] = { &hold, &pool };
	char conf[4096], *col_bin, *sched_bin, *path, *sid;

	col_bin = tu_bin_path("mm-collector");
	sched_bin = tu_bin_path("mm-scheduler");
	sid = tu_unique("sched");
	for (char *c = sid; *c; c++)
		if (*c == '.')
			*c = '-';
	sched_id = sid;
	snprintf(conf, sizeof(conf), "[collector]\nhost_id = %s\n"
	    "driver = sim\nvm_dir = %s\nproc_root = %s/proc\n"
	    "sys_root = %s/sys\nrescan = 200ms\n[bus]\nurl = %s\n",
	    T.host_id, T.vmdir, T.root, T.root,
	    tu_broker_url_as("collector", "collector"));
	path = tu_write_file(T.dir, "collector.conf", conf);
	{
		char *argv[] = { col_bin, "-c", path, "-d", NULL };

		T.col = tu_spawn(argv);
	}
	free(path);
	snprintf(conf, sizeof(conf), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\n%s[bus]\nurl = %s\n", sid, T.dir,
	    sched_extra, tu_broker_url_as("scheduler", "scheduler"));
	path = tu_write_file(T.dir, "scheduler.conf", conf);
	{
		char *argv[] = { sched_bin, "-c", path, "-d", NULL };

		T.sched = tu_spawn(argv);
	}
	free(path);
	free(col_bin);
	free(sched_bin);
	tu_run_for(&T.loop, 1000);
	assert_int_equal(topo_declare_policy_exchange(T.bus), 0);
	p.has_version = p.has_mode = 1;
	p.version = clock_ms(CLOCK_REALTIME);
	p.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
	p.name = "test";
	p.algorithm = "pressure";
	hold.name = "hold_ms";
	hold.has_value = 1;
	hold.value = 2000;
	pool.name = "guest_capacity_kib";
	pool.has_value = 1;
	pool.value = 1536 * 1024;
	p.n_params = 2;
	p.params = params;
	assert_int_equal(msg_publish(T.bus, MSG_POLICY, &p.base,
	    TOPO_EX_POLICY, "", true, NULL, NULL), 0);
	return sid;
}

static void
test_actuator_with_scheduler(void **state)
{
	size_t i, j, mine = 0;
	char *sid;

	env_start("balloon_interval = 1s\nfailsafe_after = 0\n"
	    "release_on_stop = yes\n");
	sid = chain_start("");

	if (!tu_run_until_fn(&T.loop, scheduler_shrank, 60000))
		fail_msg("no shrink from the scheduler: %zu results, db at "
		    "%llu KiB", T.nres, (unsigned long long)
		    tu_hv_find(T.hv, "db")->balloon_actual_kib);
	tu_run_for(&T.loop, 3000);
	for (i = 0; i < T.nres; i++) {
		if (strcmp(T.res[i].sched, sid) != 0)
			continue;
		mine++;
		for (j = 0; j < T.res[i].n; j++) {
			assert_int_not_equal(T.res[i].status[j],
			    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED);
			if (T.res[i].target[j] == 0)
				continue;
			assert_true(T.res[i].target[j] >= 512 * MIB);
			assert_true(T.res[i].target[j] <= 2 * GIB);
		}
	}
	print_message("%zu batches from the scheduler applied; db at %llu "
	    "MiB, web at %llu MiB\n", mine, (unsigned long long)
	    tu_hv_find(T.hv, "db")->balloon_actual_kib / MIB,
	    (unsigned long long)tu_hv_find(T.hv, "web")->balloon_actual_kib /
	    MIB);
	assert_true(tu_hv_find(T.hv, "web")->balloon_actual_kib >=
	    GIB + 256 * MIB);

	/* The scheduler first, so nothing shrinks them again. */
	assert_int_equal(tu_stop(T.sched, 5000), 0);
	T.sched = 0;
	assert_int_equal(tu_stop(T.col, 5000), 0);
	T.col = 0;
	assert_int_equal(tu_stop(T.act, 10000), 0);
	T.act = 0;
	wait_balloon("db", GIB);
	wait_balloon("web", 2 * GIB);
	env_finish();
	free(sid);
}

/* The closed loop. web's use steps from 400 MiB to RISE_KIB at RISE_S
 * (mm-sim's clock) while its actuator is dead (kill -9) for longer than a
 * batch lives; meanwhile the host's management is attacked with valid
 * credentials: a report of this host dated an hour ahead with the largest
 * seq, and empty batches from a scheduler "evil", one an hour ahead. The
 * scheduler still decides from the real reports, which the made-up one
 * does not hold back; what it decides while the actuator is dead is not
 * applied (db still holds what it was to give back, web is short of its
 * target). Once the actuator is back, within 5 s web has the target the
 * scheduler wants and db has shrunk, and soon web has all the memory it
 * needs. (db's shrink meets the actuator's own floor, used + 256 MiB.) */
#define RISE_S		40
#define RISE_KIB	(850 * MIB)	/* below mm-sim's OOM (1.3 x 798 MiB),
					 * within the pool once db shrank to
					 * the actuator's floor (512 MiB) */
#define BACK_MS		5000
#define NEAR_KIB	(16 * MIB)

static unsigned decisions_before;

/* Another holder of the actuators' credentials, consuming this host's
 * command queue and doing nothing with what it takes. */
static struct {
	uv_loop_t *loop;
	struct bus *bus;
	bool up;
	unsigned stolen;
} R;

static void
rogue_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	R.up = up;
}

static enum bus_disposition
rogue_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	R.stolen++;
	return BUS_ACK;
}

static void
rogue_start(void)
{
	struct bus_config bc = { 0 };
	char queue[128];

	memset(&R, 0, sizeof(R));
	bc.url = tu_broker_url_as("actuator", "actuator");
	bc.app_id = "rogue";
	bc.state_cb = rogue_state_cb;
	R.bus = bus_new(&T.loop, &bc);
	assert_non_null(R.bus);
	assert_int_equal(topo_actuator_queue(queue, sizeof(queue),
	    T.host_id), 0);
	assert_int_equal(bus_consume(R.bus, queue, false, rogue_cb, NULL), 0);
	assert_int_equal(bus_start(R.bus), 0);
	assert_true(tu_run_until(&T.loop, &R.up, 15000));
}

static bool
unconfirmed_alerted(void)
{
	return T.unconfirmed_alerts > 0;
}

static bool
decided_again(void)
{
	return T.decisions > decisions_before;
}

static bool
near(uint64_t a, uint64_t b)
{
	return (a > b ? a - b : b - a) <= NEAR_KIB;
}

#define DB_FLOOR_KIB	(512 * MIB)	/* the actuator's: used + 256 MiB */

static bool
targets_in_place(void)
{
	struct hv_vm *web = tu_hv_find(T.hv, "web");
	struct hv_vm *db = tu_hv_find(T.hv, "db");
	uint64_t db_want = T.decided_db_kib > DB_FLOOR_KIB ?
	    T.decided_db_kib : DB_FLOOR_KIB;

	return web != NULL && web->balloon_known && db != NULL &&
	    db->balloon_known &&
	    near(web->balloon_actual_kib, T.decided_web_kib) &&
	    db->balloon_actual_kib <= db_want + NEAR_KIB;
}

static bool
web_fed(void)
{
	struct hv_vm *web = tu_hv_find(T.hv, "web");

	return web != NULL && web->balloon_known &&
	    web->balloon_actual_kib >= RISE_KIB + 64 * MIB;
}

static void
test_actuator_lost_commands_sent_again(void **state)
{
	uint64_t t0 = tu_wall_ms(), now, killed_ms, back_ms;
	char trace[4096], *tdir = tu_tmpdir(), *tpath, workload[4200];
	struct hv_vm *web, *db;
	uint64_t db_dead_kib;
	size_t i, j, from;
	char *sid;

	snprintf(trace, sizeof(trace), "time_s,vm,used_kib,max_kib\n"
	    "0,web,%llu,%llu\n%d,web,%llu,%llu\n600,web,%llu,%llu\n",
	    400 * MIB, 2 * GIB, RISE_S, RISE_KIB, 2 * GIB, RISE_KIB, 2 * GIB);
	tpath = tu_write_file(tdir, "web.csv", trace);
	snprintf(workload, sizeof(workload), "trace:%s", tpath);
	web_workload = workload;
	env_start("balloon_interval = 1s\nfailsafe_after = 0\n"
	    "release_on_stop = no\n");
	web_workload = "static:1G";
	sid = chain_start("command_ttl = 2s\n");
	if (!tu_run_until_fn(&T.loop, scheduler_shrank, 25000))
		fail_msg("no shrink from the scheduler within 25 s");
	now = tu_wall_ms();
	assert_true(now < t0 + (RISE_S - 8) * 1000ull);

	/* Valid credentials, made-up messages. */
	assert_int_equal(topo_declare_stats_exchange(T.bus), 0);
	assert_int_equal(tu_publish_report(T.bus, T.host_id, UINT64_MAX,
	    now + 3600000, 0), 0);
	assert_int_equal(tu_publish_report(T.bus, T.host_id, UINT64_MAX - 1,
	    now + 20000, 0), 0);
	publish_batch("evil", UINT64_MAX, now + 3600000, now + 3610000, 0,
	    NULL, NULL);
	publish_batch("evil", UINT64_MAX, now + 20000, now + 30000, 0, NULL,
	    NULL);
	tu_run_for(&T.loop, 1000);

	kill(T.act, SIGKILL);
	waitpid(T.act, NULL, 0);
	T.act = 0;
	killed_ms = tu_wall_ms();
	from = T.nres;
	decisions_before = T.decisions;
	/* Meanwhile another consumer takes the host's batches. */
	rogue_start();

	/* The rise: the scheduler decides from the real reports, which the
	 * made-up one does not hold back. */
	tu_run_for(&T.loop, (unsigned)(t0 + (RISE_S + 8) * 1000ull -
	    tu_wall_ms()));
	if (!tu_run_until_fn(&T.loop, decided_again, 5000))
		fail_msg("no decision from the scheduler since the made-up "
		    "report: real reports held back?");
	web = tu_hv_find(T.hv, "web");
	db = tu_hv_find(T.hv, "db");
	db_dead_kib = db->balloon_actual_kib;
	print_message("actuator dead for %llu s; web at %llu MiB (the "
	    "scheduler wants %llu), db at %llu MiB (wanted %llu)\n",
	    (unsigned long long)(tu_wall_ms() - killed_ms) / 1000,
	    (unsigned long long)web->balloon_actual_kib / MIB,
	    (unsigned long long)T.decided_web_kib / MIB,
	    (unsigned long long)db_dead_kib / MIB,
	    (unsigned long long)T.decided_db_kib / MIB);
	/* Dead for longer than a batch lives (2 s): db's shrink was lost. */
	assert_true(T.decided_db_kib + NEAR_KIB < db_dead_kib);
	/* Taken, not applied: the scheduler says so (after 3 resends). */
	if (!tu_run_until_fn(&T.loop, unconfirmed_alerted, 30000))
		fail_msg("no alert on unconfirmed targets; %u batches taken "
		    "by the other consumer", R.stolen);
	print_message("the other consumer took %u batches; the scheduler "
	    "alerted after resending: \"%s\"\n", R.stolen,
	    T.unconfirmed_alert);
	assert_true(R.stolen > 0);
	bus_close(R.bus, 0, NULL, NULL);

	start_actuator();
	back_ms = tu_wall_ms();
	if (!tu_run_until_fn(&T.loop, targets_in_place, BACK_MS))
		fail_msg("%llu ms after the restart web at %llu MiB (the "
		    "scheduler wants %llu MiB), db at %llu MiB (wants %llu, "
		    "the actuator's floor %llu)", (unsigned long long)
		    (tu_wall_ms() - back_ms), (unsigned long long)
		    tu_hv_find(T.hv, "web")->balloon_actual_kib / MIB,
		    (unsigned long long)T.decided_web_kib / MIB,
		    (unsigned long long)tu_hv_find(T.hv,
		    "db")->balloon_actual_kib / MIB, (unsigned long long)
		    T.decided_db_kib / MIB, DB_FLOOR_KIB / MIB);
	print_message("targets in place %llu ms after the restart: web "
	    "%llu MiB (wanted %llu); db at %llu MiB\n", (unsigned long long)
	    (tu_wall_ms() - back_ms), (unsigned long long)tu_hv_find(T.hv,
	    "web")->balloon_actual_kib / MIB, (unsigned long long)
	    T.decided_web_kib / MIB, (unsigned long long)tu_hv_find(T.hv,
	    "db")->balloon_actual_kib / MIB);

	if (!tu_run_until_fn(&T.loop, web_fed, 20000))
		fail_msg("web at %llu MiB 20 s later, it needs %llu MiB",
		    (unsigned long long)tu_hv_find(T.hv,
		    "web")->balloon_actual_kib / MIB, (unsigned long long)
		    RISE_KIB / MIB);
	print_message("web fed %llu ms after the restart: %llu MiB\n",
	    (unsigned long long)(tu_wall_ms() - back_ms), (unsigned long long)
	    tu_hv_find(T.hv, "web")->balloon_actual_kib / MIB);
	for (i = from; i < T.nres; i++)
		for (j = 0; j < T.res[i].n; j++)
			assert_int_not_equal(T.res[i].status[j],
			    MM__V1__RESULT_STATUS__RESULT_STATUS_FAILED);

	assert_int_equal(tu_stop(T.sched, 5000), 0);
	T.sched = 0;
	assert_int_equal(tu_stop(T.col, 5000), 0);
	T.col = 0;
	env_finish();
	tu_rmtree(tdir);
	free(tdir);
	free(tpath);
	free(sid);
}

/* A guest that lies (mm-sim's hostile one: it claims 16 times its size,
 * no memory available and garbage now and then, while it uses 256 MiB)
 * is not grown on its word: every target the scheduler decides for it
 * stays within what the host sees it hold (its process's resident
 * memory) plus the policy's headroom, though the guest pool has room. */
static void
test_actuator_lying_guest_not_grown(void **state)
{
	char *sid;

	uv_timer_t sample;

	web_workload = "hostile";
	env_start("balloon_interval = 1s\nfailsafe_after = 0\n"
	    "release_on_stop = no\n");
	web_workload = "static:1G";
	memset(res_ring, 0, sizeof(res_ring));
	uv_timer_init(&T.loop, &sample);
	uv_timer_start(&sample, res_sample_cb, 0, 100);
	sid = chain_start("");
	tu_run_for(&T.loop, 12000);
	uv_close((uv_handle_t *)&sample, NULL);
	print_message("%u decisions for the lying guest, %u above the host's "
	    "recent view plus headroom; the largest %llu MiB (bound then %llu "
	    "MiB), "
	    "resident now %llu MiB\n", T.web_decisions, T.web_above,
	    (unsigned long long)T.web_max_kib / MIB,
	    (unsigned long long)T.web_bound_kib / MIB,
	    (unsigned long long)web_resident_kib() / MIB);
	/* It started at its 2 GiB maximum: what it did not earn is taken. */
	assert_true(T.web_decisions >= 1);
	assert_int_equal(T.web_above, 0);

	assert_int_equal(tu_stop(T.sched, 5000), 0);
	T.sched = 0;
	assert_int_equal(tu_stop(T.col, 5000), 0);
	T.col = 0;
	env_finish();
	free(sid);
}

/* After a failed check the programs must not outlive the test. */
static int
teardown(void **state)
{
	if (T.act > 0) {
		kill(T.act, SIGKILL);
		waitpid(T.act, NULL, 0);
	}
	if (T.sim > 0) {
		kill(T.sim, SIGKILL);
		waitpid(T.sim, NULL, 0);
	}
	if (T.col > 0) {
		kill(T.col, SIGKILL);
		waitpid(T.col, NULL, 0);
	}
	if (T.sched > 0) {
		kill(T.sched, SIGKILL);
		waitpid(T.sched, NULL, 0);
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_actuator_end_to_end, teardown),
		cmocka_unit_test_teardown(test_actuator_failsafe, teardown),
		cmocka_unit_test_teardown(test_actuator_with_scheduler,
		    teardown),
		cmocka_unit_test_teardown(
		    test_actuator_lost_commands_sent_again, teardown),
		cmocka_unit_test_teardown(
		    test_actuator_lying_guest_not_grown, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
