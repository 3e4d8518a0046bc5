/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Three real guests under the real daemons: mm-collector (kvm driver) and
 * mm-scheduler on a real RabbitMQ. One guest ramps (mono 50 MiB -> 400 MiB
 * -> 50 MiB), two idle. There is no actuator yet, so nothing applies the
 * targets, and a target is a bounded step from the balloon's actual size
 * (which stays at the maximum): what follows the ramp is the need in the
 * scheduler's decision events. Checked: the ramping guest's used and need
 * go up with the ramp and back down, no target is ever below the guest's
 * need or outside min..max, idle guests are given less than their maximum,
 * every decision gives a reason. The collector's reports carry all three
 * guests with the agent as their source.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"
#include "tu_hv.h"
#include "vm.h"

#define MIB		1024ULL
#define MAXDEC		1024
#define RAMP_MIB	768
#define IDLE_MIB	384

struct decision {
	char vm[32];
	uint64_t rx_ms;
	uint64_t target_kib;
	double used_kib, need_kib, min_kib, max_kib;
	bool has_reason;
	char reason[160];
};

static struct {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *host, *sched, *dir, *vmdir;
	int col, sch;
	struct vm *vms[3];
	struct decision dec[MAXDEC];
	size_t ndec;
	/* the newest HostReport */
	unsigned reports, guests_fresh_agent;
} F;

static double
metric(const Mm__V1__Event *e, const char *name)
{
	for (size_t i = 0; i < e->n_metrics; i++)
		if (strcmp(e->metrics[i]->name, name) == 0)
			return e->metrics[i]->value;
	return -1;
}

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	struct decision *x;

	(void)d;
	(void)arg;
	if (e->kind != MM__V1__EVENT_KIND__EVENT_KIND_DECISION ||
	    e->host_id == NULL || strcmp(e->host_id, F.host) != 0 ||
	    e->vm_id == NULL || F.ndec == MAXDEC)
		return BUS_ACK;
	x = &F.dec[F.ndec++];
	snprintf(x->vm, sizeof(x->vm), "%s", e->vm_id);
	x->rx_ms = uv_now(&F.loop);
	x->target_kib = e->balloon_target_kib;
	x->used_kib = metric(e, "used_kib");
	x->need_kib = metric(e, "need_kib");
	x->min_kib = metric(e, "min_kib");
	x->max_kib = metric(e, "max_kib");
	x->has_reason = e->reason != NULL && e->reason[0] != '\0';
	snprintf(x->reason, sizeof(x->reason), "%s",
	    x->has_reason ? e->reason : "");
	return BUS_ACK;
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	unsigned n = 0;

	(void)d;
	(void)arg;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];

		if (!g->stale && g->source ==
		    MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT &&
		    g->meminfo != NULL && g->meminfo->total_kib > 0)
			n++;
	}
	F.reports++;
	F.guests_fresh_agent = n;
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_EVENT, on_event },
		{ MSG_HOST_REPORT, on_report },
	};

	(void)bus;
	(void)arg;
	return msg_dispatch(table, 2, d, NULL, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	(void)bus;
	(void)reason;
	(void)arg;
	F.up = up;
}

static void
dashes(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '.')
			*s = '-';
}

/* Start $MM_BINARY_DIR/bin/<name> -d with conf_text as its config. */
static int
start_daemon(const char *name, const char *conf_text)
{
	char file[64], *conf, *bin;
	int pid;

	snprintf(file, sizeof(file), "%s.conf", name);
	conf = tu_write_file(F.dir, file, conf_text);
	bin = tu_bin_path(name);
	{
		char *argv[] = { bin, "-d", "-c", conf, NULL };

		pid = tu_spawn(argv);
	}
	free(bin);
	free(conf);
	return pid;
}

static int
setup(void **state)
{
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test_vm_fleet",
		.state_cb = state_cb,
	};
	const struct bus_queue_opts q = { .exclusive = true,
	    .auto_delete = true };
	char text[2048], key[160], *eq, *sq;

	(void)state;
	vm_require();
	signal(SIGPIPE, SIG_IGN);
	memset(&F, 0, sizeof(F));
	F.host = tu_unique("vmh");
	F.sched = tu_unique("vms");
	dashes(F.host);
	dashes(F.sched);
	F.dir = tu_tmpdir();
	if (asprintf(&F.vmdir, "%s/vm", F.dir) < 0)
		return -1;
	free(tu_write_file(F.vmdir, ".keep", ""));

	uv_loop_init(&F.loop);
	F.bus = bus_new(&F.loop, &cfg);
	assert_non_null(F.bus);
	eq = tu_unique("mm.test.vm.events");
	sq = tu_unique("mm.test.vm.stats");
	topo_declare_stats_queue(F.bus, "host.#");
	topo_declare_events_exchange(F.bus);
	topo_declare_policy_exchange(F.bus);
	topo_declare_actuator_queue(F.bus, F.host);
	bus_declare_queue(F.bus, eq, &q);
	topo_event_key(key, sizeof(key), TOPO_EV_DECISION, F.host);
	bus_bind(F.bus, eq, TOPO_EX_EVENTS, key);
	bus_declare_queue(F.bus, sq, &q);
	snprintf(key, sizeof(key), "host.%s", F.host);
	bus_bind(F.bus, sq, TOPO_EX_STATS, key);
	bus_consume(F.bus, eq, false, delivery_cb, NULL);
	bus_consume(F.bus, sq, false, delivery_cb, NULL);
	assert_int_equal(bus_start(F.bus), 0);
	assert_true(tu_run_until(&F.loop, &F.up, 15000));
	free(eq);
	free(sq);

	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\n[bus]\nurl = %s\n", F.sched, F.dir,
	    tu_broker_url());
	F.sch = start_daemon("mm-scheduler", text);
	{
		/* A short hold, so a test of a minute sees decisions (the
		 * default holds a VM just met for 30 s). Its queue is
		 * declared here too, so the policy waits for the scheduler. */
		Mm__V1__Policy pol = MM__V1__POLICY__INIT;
		Mm__V1__Param hold = MM__V1__PARAM__INIT;
		Mm__V1__Param lo = MM__V1__PARAM__INIT, hi = MM__V1__PARAM__INIT;
		Mm__V1__Param *hp[3] = { &hold, &lo, &hi };
		char pq[128];

		assert_int_equal(topo_declare_policy_queue(F.bus, F.sched, pq,
		    sizeof(pq)), 0);
		pol.has_version = pol.has_mode = true;
		pol.version = 1;
		pol.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
		pol.name = "vm test";
		hold.name = "hold_ms";
		hold.has_value = true;
		hold.value = 2000;
		/* Emulated guests (TCG) stall now and then: PSI below 20 %
		 * is that, not a lack of memory. */
		lo.name = "psi_low_pct";
		lo.has_value = true;
		lo.value = 20;
		hi.name = "psi_high_pct";
		hi.has_value = true;
		hi.value = 80;
		pol.n_params = 3;
		pol.params = hp;
		assert_int_equal(msg_publish(F.bus, MSG_POLICY,
		    (const ProtobufCMessage *)&pol, TOPO_EX_POLICY, "", true,
		    NULL, NULL), 0);
	}
	snprintf(text, sizeof(text), "[collector]\nhost_id = %s\n"
	    "driver = kvm\nvm_dir = %s\ninterval = 1s\n"
	    "fast_min_interval = 100ms\nrescan = 200ms\n[bus]\nurl = %s\n",
	    F.host, F.vmdir, tu_broker_url_as("collector", "collector"));
	F.col = start_daemon("mm-collector", text);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 3; i++)
		vm_stop(F.vms[i]);
	if (F.col > 0)
		tu_stop(F.col, 5000);
	if (F.sch > 0)
		tu_stop(F.sch, 5000);
	bus_close(F.bus, 1000, NULL, NULL);
	tu_loop_finish(&F.loop);
	tu_rmtree(F.dir);
	free(F.dir);
	free(F.vmdir);
	return 0;
}

static struct vm *
boot(const char *id, unsigned mem_mib, const char *workload)
{
	struct vm_opts o = {
		.id = id,
		.dir = F.vmdir,
		.mem_mib = mem_mib,
		.workload = workload,
		.interval = "500ms",
		/* The agent's default (10s) is above the collector's
		 * stale_after (3s): an idle guest would be stale most of
		 * the time and the scheduler would not act on it. */
		.resend = "1s",
	};
	struct vm *vm = vm_start(&o);

	assert_non_null(vm);
	return vm;
}

/* The newest decision for vm, NULL if none. */
static const struct decision *
last_decision(const char *vm)
{
	for (size_t i = F.ndec; i-- > 0;)
		if (strcmp(F.dec[i].vm, vm) == 0)
			return &F.dec[i];
	return NULL;
}

static uint64_t want_used_kib;
static bool
ramp_peak_decided(void)
{
	const struct decision *d = last_decision("ramp");

	return d != NULL && d->used_kib >= (double)want_used_kib;
}

static double want_need_below;
static size_t dec_mark;
static bool
ramp_down_decided(void)
{
	for (size_t i = dec_mark; i < F.ndec; i++)
		if (strcmp(F.dec[i].vm, "ramp") == 0 &&
		    F.dec[i].need_kib <= want_need_below)
			return true;
	return false;
}

static bool
all_fresh(void)
{
	return F.guests_fresh_agent == 3;
}

static bool
console_says(struct vm *vm, const char *what, unsigned timeout_ms)
{
	/* Keep the bus flowing while waiting on the guest. */
	for (unsigned t = 0; t < timeout_ms; t += 200) {
		if (vm_wait_console(vm, what, 0, NULL, 0))
			return true;
		tu_run_for(&F.loop, 200);
	}
	return false;
}

static void
print_decisions(const char *vm)
{
	for (size_t i = 0; i < F.ndec; i++)
		if (strcmp(F.dec[i].vm, vm) == 0)
			printf("  decision %s at %llu ms: target %llu MiB, used "
			    "%.0f MiB, need %.0f MiB: %s\n", vm,
			    (unsigned long long)(F.dec[i].rx_ms - F.dec[0].rx_ms),
			    (unsigned long long)(F.dec[i].target_kib / MIB),
			    F.dec[i].used_kib / MIB, F.dec[i].need_kib / MIB,
			    F.dec[i].reason);
}

static void
test_vm_fleet_decisions_follow_ramp(void **state)
{
	const struct decision *peak, *d;
	double first_need = -1, max_need = 0, last_need = 0;
	bool idle_shrunk[2] = { false, false };

	(void)state;
	F.vms[0] = boot("idle1", IDLE_MIB, NULL);
	F.vms[1] = boot("idle2", IDLE_MIB, NULL);
	F.vms[2] = boot("ramp", RAMP_MIB,
	    "mm_test_mono:50M:400M:25M:1000:5000");
	if (!tu_run_until_fn(&F.loop, all_fresh, 20000))
		fail_msg("the collector's reports never carried 3 fresh agent "
		    "samples (last: %u of %u reports)", F.guests_fresh_agent,
		    F.reports);

	/* Up: the scheduler sees (nearly) the whole 400 MiB. */
	if (!console_says(F.vms[2], "mono: held 400 MiB", 60000)) {
		vm_dump_console(F.vms[2]);
		fail_msg("mono did not reach 400 MiB");
	}
	want_used_kib = 350 * MIB;
	if (!tu_run_until_fn(&F.loop, ramp_peak_decided, 15000)) {
		print_decisions("ramp");
		fail_msg("no decision for \"ramp\" with used >= 350 MiB");
	}
	peak = last_decision("ramp");

	/* Down: after mono is done, the need falls well below the peak's. */
	if (!console_says(F.vms[2], "mono: done", 60000)) {
		vm_dump_console(F.vms[2]);
		fail_msg("mono did not finish");
	}
	dec_mark = (size_t)(peak - F.dec);
	want_need_below = peak->need_kib - 150.0 * MIB;
	if (!tu_run_until_fn(&F.loop, ramp_down_decided, 30000)) {
		print_decisions("ramp");
		fail_msg("the ramp's need did not come down from %.0f MiB",
		    peak->need_kib / MIB);
	}
	print_decisions("ramp");

	for (size_t i = 0; i < F.ndec; i++) {
		d = &F.dec[i];
		assert_true(d->has_reason);
		assert_true(d->min_kib >= 0 && d->max_kib > 0);
		assert_true((double)d->target_kib >= d->min_kib);
		assert_true((double)d->target_kib <= d->max_kib);
		/* Never below what the guest needs (unless that is above
		 * its maximum). */
		assert_true((double)d->target_kib >=
		    (d->need_kib < d->max_kib ? d->need_kib : d->max_kib));
		if (strcmp(d->vm, "ramp") == 0) {
			assert_true(d->target_kib <= RAMP_MIB * MIB);
			if (first_need < 0)
				first_need = d->need_kib;
			if (d->need_kib > max_need)
				max_need = d->need_kib;
			last_need = d->need_kib;
		} else {
			int k = strcmp(d->vm, "idle1") == 0 ? 0 : 1;

			assert_true(d->target_kib <= IDLE_MIB * MIB);
			if (d->target_kib < IDLE_MIB * MIB)
				idle_shrunk[k] = true;
		}
	}
	printf("vm fleet: %zu decisions; \"ramp\": need %.0f -> %.0f -> %.0f "
	    "MiB (used %.0f MiB at the peak's decision), target %llu MiB\n",
	    F.ndec, first_need / MIB, max_need / MIB, last_need / MIB,
	    peak->used_kib / MIB, (unsigned long long)(peak->target_kib / MIB));
	/* The need covers the peak's use and came down after it. */
	assert_true(peak->need_kib >= peak->used_kib);
	assert_true(max_need >= 350.0 * MIB);
	assert_true(last_need <= max_need - 150.0 * MIB);
	assert_true(idle_shrunk[0]);
	assert_true(idle_shrunk[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_vm_fleet_decisions_follow_ramp, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
