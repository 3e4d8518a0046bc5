/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine's KSM and NUMA decisions: the ksmtuned anchor's steps,
 * mm's profit rule (start, scan more, respect the CPU budget, stop when a
 * full scan does not pay, unmerge on ample memory), and NUMA moves within
 * node room, round quota and the minimum interval per VM.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define GiB	(1024ull * 1024ull)
#define T0	1700000000000ull

static struct pe_ksm_obs
ksm_obs(double free_pct, uint64_t t)
{
	struct pe_ksm_obs o = {
		.present = true,
		.time_ms = t,
		.host_total_kib = 100 * GiB,
		.host_available_kib = (uint64_t)(free_pct * GiB),
		.pages_to_scan = 100,
		.sleep_ms = 20,
		.has_cpu = true,
	};

	return o;
}

/* Apply a decision to the next observation, as the actuator would. */
static void
apply(struct pe_ksm_obs *o, const struct pe_ksm_decision *d)
{
	o->run = d->run;
	o->pages_to_scan = d->pages_to_scan;
	o->sleep_ms = d->sleep_ms;
}

static void
test_ksm_ksmtuned_anchor_steps(void **state)
{
	struct pe_ksm_policy k;
	struct pe_ksm_state st = { 0 };
	struct pe_ksm_obs o = ksm_obs(10, T0);
	struct pe_ksm_decision d;

	pe_ksm_policy_defaults(&k);
	k.algo = PE_KSM_KSMTUNED;
	assert_int_equal(pe_ksm_decide(&st, &o, &k, &d), 0);
	assert_int_equal(d.run, 1);
	assert_int_equal(d.pages_to_scan, 400);
	assert_int_equal(d.reason, PE_KSM_START);
	for (int i = 0; i < 10; i++) {
		apply(&o, &d);
		o.time_ms += 60000;
		pe_ksm_decide(&st, &o, &k, &d);
	}
	assert_int_equal(d.pages_to_scan, 1250);
	/* Memory back above 20 %: decay by 50 down to 64, then stop. */
	o.host_available_kib = 30 * GiB;
	for (int i = 0; i < 30 && d.run == 1; i++) {
		apply(&o, &d);
		o.time_ms += 60000;
		pe_ksm_decide(&st, &o, &k, &d);
		assert_int_equal(d.reason, PE_KSM_LESS);
	}
	assert_int_equal(d.run, 0);
	assert_int_equal(d.pages_to_scan, 64);
}

static void
test_ksm_profit_scans_more_while_it_pays(void **state)
{
	struct pe_ksm_policy k;
	struct pe_ksm_state st = { 0 };
	struct pe_ksm_obs o = ksm_obs(10, T0);
	struct pe_ksm_decision d;

	pe_ksm_policy_defaults(&k);
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_START);
	assert_int_equal(d.run, 1);
	/* 60 s later: 2 % of a core, 300,000 pages merged. */
	apply(&o, &d);
	o.time_ms += 60000;
	o.ksmd_cpu_ms += 1200;
	o.pages_sharing += 300000;
	o.full_scans = 1;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_MORE);
	assert_int_equal(d.pages_to_scan, 400);
	assert_true(d.cpu_pct > 1.9 && d.cpu_pct < 2.1);
	assert_true(d.profit > 249000 && d.profit < 251000);
	/* Then 30 % of a core: over the 10 % budget, scale down. */
	apply(&o, &d);
	o.time_ms += 60000;
	o.ksmd_cpu_ms += 18000;
	o.pages_sharing += 400000;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_LESS);
	assert_int_equal(d.pages_to_scan, 133);	/* 400 * 10 / 30 */
	assert_int_equal(d.run, 1);
}

/* Guests with nothing in common: ksmtuned scans on at full speed, mm stops
 * after two full scans (the first merges nothing, whatever the guests
 * share) and tries again much later. */
static void
test_ksm_profit_stops_when_it_does_not_pay(void **state)
{
	struct pe_ksm_policy ours, anchor;
	struct pe_ksm_state st = { 0 }, st_anchor = { 0 };
	struct pe_ksm_obs o = ksm_obs(10, T0), oa;
	struct pe_ksm_decision d, da;
	int ours_running = 0, anchor_running = 0;

	pe_ksm_policy_defaults(&ours);
	pe_ksm_policy_defaults(&anchor);
	anchor.algo = PE_KSM_KSMTUNED;
	oa = o;
	for (int minute = 0; minute < 10; minute++) {
		pe_ksm_decide(&st, &o, &ours, &d);
		pe_ksm_decide(&st_anchor, &oa, &anchor, &da);
		ours_running += d.run == 1;
		anchor_running += da.run == 1;
		if (minute == 1)	/* after its first full scan */
			assert_int_equal(d.run, 1);
		if (minute == 2) {	/* after its second */
			assert_int_equal(d.reason, PE_KSM_NO_PROFIT);
			assert_int_equal(d.run, 0);
		}
		apply(&o, &d);
		apply(&oa, &da);
		o.time_ms += 60000;
		oa.time_ms += 60000;
		/* ksmd works (1 % of a core) but merges almost nothing. */
		if (o.run == 1) {
			o.ksmd_cpu_ms += 600;
			o.pages_sharing += 10;
			o.full_scans++;
		}
		if (oa.run == 1) {
			oa.ksmd_cpu_ms += 600;
			oa.full_scans++;
		}
	}
	assert_int_equal(anchor_running, 10);
	assert_int_equal(da.pages_to_scan, 1250);
	assert_int_equal(ours_running, 2);
	/* retry_ms (10 min) after stopping, it tries again. */
	o.time_ms = T0 + 2 * 60000 + ours.retry_ms - 1;
	pe_ksm_decide(&st, &o, &ours, &d);
	assert_int_equal(d.run, 0);
	o.time_ms += 1;
	pe_ksm_decide(&st, &o, &ours, &d);
	assert_int_equal(d.reason, PE_KSM_START);
}

/*
 * ksmd merges 3,000 pages a scan of two twin guests, while a process with
 * 2,900 merged pages exits (another guest shut down, or another tenant of
 * the kernel): the host-wide counter ends lower than it began, but ksmd
 * pays, and it keeps running.
 */
static void
test_ksm_profit_survives_an_exit(void **state)
{
	struct pe_ksm_policy k;
	struct pe_ksm_state st = { 0 };
	struct pe_ksm_obs o = ksm_obs(10, T0);
	struct pe_ksm_decision d;

	pe_ksm_policy_defaults(&k);
	o.pages_sharing = 2900;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_START);
	for (int s = 1; s <= 6; s++) {
		apply(&o, &d);
		o.time_ms += 10000;
		o.ksmd_cpu_ms += 100;	/* 1 % of a core */
		o.full_scans = (uint64_t)s;
		if (s >= 2)
			o.pages_sharing += 1000;
		if (s == 3)
			o.pages_sharing -= 2900;	/* the exit */
		pe_ksm_decide(&st, &o, &k, &d);
		assert_int_equal(d.run, 1);
		assert_int_not_equal(d.reason, PE_KSM_NO_PROFIT);
	}
	assert_true(o.pages_sharing < 2900 + 3000);
}

static void
test_ksm_unmerges_on_ample_memory(void **state)
{
	struct pe_ksm_policy k;
	struct pe_ksm_state st = { 0 };
	struct pe_ksm_obs o = ksm_obs(50, T0);
	struct pe_ksm_decision d;

	pe_ksm_policy_defaults(&k);
	o.run = 1;
	o.pages_sharing = 100000;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_KEEP);	/* hold first */
	o.time_ms += k.ample_hold_ms;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_AMPLE);
	assert_int_equal(d.run, 2);
	assert_true(d.changed);
	apply(&o, &d);
	o.pages_sharing = 0;
	o.time_ms += 60000;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.run, 0);
	/* Disabled by policy: a merging host stops. */
	k.enable = false;
	o.run = 1;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_int_equal(d.reason, PE_KSM_DISABLED);
	assert_int_equal(d.run, 0);
	/* No KSM on the host: nothing to decide. */
	o.present = false;
	pe_ksm_decide(&st, &o, &k, &d);
	assert_false(d.changed);
}

static struct pe_numa_vm
numa_vm(const char *id, uint64_t on0, uint64_t on1, uint64_t vcpus)
{
	struct pe_numa_vm v = { .vm_id = id, .vcpu_nodes = vcpus };

	v.pages[0] = on0;
	v.pages[1] = on1;
	return v;
}

static void
test_numa_moves_toward_vcpu_node(void **state)
{
	struct pe_numa_policy p;
	struct pe_numa_state *st = pe_numa_state_new();
	struct pe_numa_vm vms[3] = {
		numa_vm("spread", 60000, 40000, 1u << 1),	/* 60 % remote */
		numa_vm("local", 1000, 99000, 1u << 1),	/* 1 % remote */
		numa_vm("wide", 50000, 50000, 3u),	/* vCPUs on both */
	};
	struct pe_numa_host h = {
		.time_ms = T0, .n_nodes = 2, .n_vms = 3, .vms = vms,
	};
	struct pe_numa_move m[4];

	pe_numa_policy_defaults(&p);
	h.node_free_kib[0] = 8 * GiB;
	h.node_free_kib[1] = 8 * GiB;
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 1);
	assert_string_equal(m[0].vm_id, "spread");
	assert_int_equal(m[0].to_node, 1);
	assert_int_equal(m[0].from_nodes, 1u << 0);
	assert_int_equal(m[0].pages, 60000);
	/* Not again before min_interval_ms, again after. */
	h.time_ms += 60000;
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 0);
	h.time_ms += p.min_interval_ms;
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 1);
	pe_numa_state_free(st);
}

static void
test_numa_quota_and_room(void **state)
{
	struct pe_numa_policy p;
	struct pe_numa_state *st = pe_numa_state_new();
	struct pe_numa_vm vms[2] = {
		numa_vm("a", 200000, 10000, 1u << 1),
		numa_vm("b", 150000, 10000, 1u << 1),
	};
	struct pe_numa_host h = {
		.time_ms = T0, .n_nodes = 2, .n_vms = 2, .vms = vms,
	};
	struct pe_numa_move m[4];

	pe_numa_policy_defaults(&p);
	h.node_free_kib[0] = 8 * GiB;
	h.node_free_kib[1] = 8 * GiB;
	/* 1 GiB quota = 262144 pages: a (most remote) gets 200000, b the
	 * remaining 62144. */
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 2);
	assert_string_equal(m[0].vm_id, "a");
	assert_int_equal(m[0].pages, 200000);
	assert_string_equal(m[1].vm_id, "b");
	assert_int_equal(m[1].pages, 262144 - 200000);
	pe_numa_state_free(st);

	/* Node 1 has 256 MiB + 40 MiB free: 10240 pages of room above the
	 * reserve. */
	st = pe_numa_state_new();
	h.node_free_kib[1] = 256 * 1024 + 40 * 1024;
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 1);
	assert_int_equal(m[0].pages, 10240);
	/* A one-node host never moves anything. */
	h.n_nodes = 1;
	assert_int_equal(pe_numa_decide(st, &h, &p, m, 4), 0);
	pe_numa_state_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ksm_ksmtuned_anchor_steps),
		cmocka_unit_test(test_ksm_profit_scans_more_while_it_pays),
		cmocka_unit_test(test_ksm_profit_stops_when_it_does_not_pay),
		cmocka_unit_test(test_ksm_profit_survives_an_exit),
		cmocka_unit_test(test_ksm_unmerges_on_ample_memory),
		cmocka_unit_test(test_numa_moves_toward_vcpu_node),
		cmocka_unit_test(test_numa_quota_and_room),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
