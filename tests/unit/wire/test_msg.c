/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the msg module: every message type survives a round trip with
 * all of its fields set, oversized, undecodable and invalid input is
 * refused with the right error and reason, and msg_dispatch() routes or
 * dead-letters deliveries and counts why, and hands handlers intact
 * messages whatever their size and order, also when they nest.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"

/*
 * Messages are built with malloc'd parts only, so msg_free() frees them
 * like unpacked ones.
 */
static void *
dup_init(const void *init, size_t size)
{
	void *p = malloc(size);

	assert_non_null(p);
	memcpy(p, init, size);
	return p;
}

#define NEW(type, init)	((type *)dup_init(&(type)init, sizeof(type)))
#define SET(m, f, v)	do { (m)->has_##f = 1; (m)->f = (v); } while (0)
#define ARRAY(m, f, n)	do { (m)->n_##f = (n); \
	(m)->f = calloc((n), sizeof(*(m)->f)); \
	assert_non_null((m)->f); } while (0)

static char *
str(const char *s)
{
	char *p = strdup(s);

	assert_non_null(p);
	return p;
}

/* A string of n copies of ch, malloc'd. */
static char *
str_rep(char ch, size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	memset(p, ch, n);
	p[n] = '\0';
	return p;
}

/* Replace a malloc'd string field with value (malloc'd). */
static void
set_str(char **field, char *value)
{
	free(*field);
	*field = value;
}

/* Builders: every field set, values distinct enough to catch mix-ups. */

static Mm__V1__Meminfo *
new_meminfo(uint64_t total)
{
	Mm__V1__Meminfo *mi = NEW(Mm__V1__Meminfo, MM__V1__MEMINFO__INIT);

	SET(mi, total_kib, total);
	SET(mi, free_kib, total / 8);
	SET(mi, available_kib, total / 4);
	SET(mi, cached_kib, total / 16);
	SET(mi, swap_total_kib, 2097152);
	SET(mi, swap_free_kib, 2000000);
	SET(mi, anon_kib, total / 2);
	SET(mi, active_file_kib, total / 32);
	SET(mi, inactive_file_kib, total / 64);
	SET(mi, shmem_kib, 4096);
	return mi;
}

static Mm__V1__Vmstat *
new_vmstat(void)
{
	Mm__V1__Vmstat *vs = NEW(Mm__V1__Vmstat, MM__V1__VMSTAT__INIT);

	SET(vs, major_faults, 1234);
	SET(vs, swap_in_pages, 55);
	SET(vs, swap_out_pages, 66);
	SET(vs, refault_pages, 777);
	SET(vs, oom_kills, 2);
	SET(vs, balloon_pages, 4096);
	return vs;
}

static Mm__V1__Psi *
new_psi(double some10)
{
	Mm__V1__Psi *psi = NEW(Mm__V1__Psi, MM__V1__PSI__INIT);

	SET(psi, some_avg10_pct, some10);
	SET(psi, some_avg60_pct, 3.25);
	SET(psi, some_avg300_pct, 1.5);
	SET(psi, full_avg10_pct, 0.75);
	SET(psi, full_avg60_pct, 0.5);
	SET(psi, full_avg300_pct, 0.25);
	SET(psi, some_total_us, 987654321);
	SET(psi, full_total_us, 123456789);
	return psi;
}

static Mm__V1__GuestStats *
new_guest(const char *id, uint64_t total)
{
	Mm__V1__GuestStats *g = NEW(Mm__V1__GuestStats,
	    MM__V1__GUEST_STATS__INIT);

	g->vm_id = str(id);
	g->vm_name = str("web server \xc3\xa9t\xc3\xa9");	/* UTF-8 */
	g->vm_uuid = str("1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	SET(g, time_ms, 1764000000123ull);
	SET(g, source, MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);
	SET(g, agent_seq, 42);
	g->meminfo = new_meminfo(total);
	g->vmstat = new_vmstat();
	g->psi = new_psi(12.5);
	ARRAY(g, cold, 2);
	for (size_t i = 0; i < 2; i++) {
		g->cold[i] = NEW(Mm__V1__ColdBucket,
		    MM__V1__COLD_BUCKET__INIT);
		SET(g->cold[i], idle_ms, 60000 * (i + 1));
		SET(g->cold[i], anon_kib, 1048576 >> i);
		SET(g->cold[i], file_kib, 65536 >> i);
	}
	g->reclaim = NEW(Mm__V1__ReclaimStatus, MM__V1__RECLAIM_STATUS__INIT);
	SET(g->reclaim, seq, 3);
	SET(g->reclaim, reclaimed_kib, 65536);
	SET(g->reclaim, state, MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE);
	SET(g->reclaim, stall_pct, 1.5);
	SET(g, balloon_target_kib, total);
	SET(g, balloon_actual_kib, total - 1024);
	SET(g, deflate_on_oom, 1);
	SET(g, free_page_reporting, 1);
	SET(g, min_kib, 524288);
	SET(g, max_kib, 8388608);
	SET(g, host_resident_kib, 4000000);
	SET(g, stale, 1);
	ARRAY(g, flags, 2);
	g->flags[0] = MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED;
	g->flags[1] = MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_NON_MONOTONIC;
	SET(g, pressure_rising, 1);
	return g;
}

static Mm__V1__KsmSettings *
new_ksm_settings(uint32_t pages)
{
	Mm__V1__KsmSettings *ks = NEW(Mm__V1__KsmSettings,
	    MM__V1__KSM_SETTINGS__INIT);

	SET(ks, run, MM__V1__KSM_RUN__KSM_RUN_MERGE);
	SET(ks, pages_to_scan, pages);
	SET(ks, sleep_ms, 20);
	SET(ks, merge_across_nodes, 1);
	return ks;
}

static Mm__V1__HostStats *
new_host_stats(void)
{
	Mm__V1__HostStats *hs = NEW(Mm__V1__HostStats,
	    MM__V1__HOST_STATS__INIT);
	Mm__V1__KsmStats *ksm = NEW(Mm__V1__KsmStats,
	    MM__V1__KSM_STATS__INIT);
	Mm__V1__VmNuma *vn;
	size_t i;

	hs->meminfo = new_meminfo(268435456);
	hs->vmstat = new_vmstat();
	hs->psi = new_psi(0.5);
	SET(ksm, full_scans, 17);
	SET(ksm, shared_pages, 1000);
	SET(ksm, sharing_pages, 9000);
	SET(ksm, unshared_pages, 50000);
	SET(ksm, volatile_pages, 300);
	SET(ksm, zero_pages, 12);
	ksm->settings = new_ksm_settings(100);
	SET(ksm, ksmd_cpu_ms, 360000);
	hs->ksm = ksm;
	ARRAY(hs, numa_nodes, 2);
	for (i = 0; i < 2; i++) {
		hs->numa_nodes[i] = NEW(Mm__V1__NumaNode,
		    MM__V1__NUMA_NODE__INIT);
		SET(hs->numa_nodes[i], node, (uint32_t)i);
		SET(hs->numa_nodes[i], total_kib, 134217728);
		SET(hs->numa_nodes[i], free_kib, 1000000 * (i + 1));
	}
	ARRAY(hs, vm_numa, 1);
	vn = hs->vm_numa[0] = NEW(Mm__V1__VmNuma, MM__V1__VM_NUMA__INIT);
	vn->vm_id = str("vm-1");
	ARRAY(vn, nodes, 2);
	for (i = 0; i < 2; i++) {
		vn->nodes[i] = NEW(Mm__V1__NodePages,
		    MM__V1__NODE_PAGES__INIT);
		SET(vn->nodes[i], node, (uint32_t)i);
		SET(vn->nodes[i], pages, 1000 + i);
	}
	ARRAY(vn, vcpu_nodes, 2);
	vn->vcpu_nodes[0] = 1;
	vn->vcpu_nodes[1] = 0;
	return hs;
}

static Mm__V1__HostReport *
new_host_report(void)
{
	Mm__V1__HostReport *r = NEW(Mm__V1__HostReport,
	    MM__V1__HOST_REPORT__INIT);

	r->host_id = str("host-a.rack1");
	SET(r, seq, 900);
	SET(r, time_ms, 1764000001000ull);
	SET(r, interval_ms, 1000);
	SET(r, hypervisor, MM__V1__HYPERVISOR__HYPERVISOR_KVM);
	r->host = new_host_stats();
	ARRAY(r, guests, 2);
	r->guests[0] = new_guest("vm-1", 4194304);
	r->guests[1] = new_guest("vm-2", 8388608);
	return r;
}

static Mm__V1__CommandBatch *
new_command_batch(void)
{
	Mm__V1__CommandBatch *b = NEW(Mm__V1__CommandBatch,
	    MM__V1__COMMAND_BATCH__INIT);
	Mm__V1__SetBalloonTarget *bt;
	Mm__V1__SetKsm *sk;
	Mm__V1__MigrateNuma *mn;
	Mm__V1__ReclaimCold *rc;
	size_t i;

	b->host_id = str("host-a");
	b->scheduler_id = str("sched-1");
	SET(b, seq, 77);
	SET(b, issued_ms, 1764000002000ull);
	SET(b, expires_ms, 1764000007000ull);
	SET(b, policy_version, 3);
	SET(b, report_seq, 900);
	ARRAY(b, commands, 4);
	for (i = 0; i < 4; i++) {
		b->commands[i] = NEW(Mm__V1__Command, MM__V1__COMMAND__INIT);
		b->commands[i]->reason = str("psi some avg10 12.50% above "
		    "target 5%");
	}
	bt = NEW(Mm__V1__SetBalloonTarget, MM__V1__SET_BALLOON_TARGET__INIT);
	bt->vm_id = str("vm-1");
	SET(bt, target_kib, 3145728);
	b->commands[0]->kind_case = MM__V1__COMMAND__KIND_BALLOON;
	b->commands[0]->balloon = bt;
	sk = NEW(Mm__V1__SetKsm, MM__V1__SET_KSM__INIT);
	sk->settings = new_ksm_settings(250);
	b->commands[1]->kind_case = MM__V1__COMMAND__KIND_KSM;
	b->commands[1]->ksm = sk;
	mn = NEW(Mm__V1__MigrateNuma, MM__V1__MIGRATE_NUMA__INIT);
	mn->vm_id = str("vm-2");
	ARRAY(mn, from_nodes, 2);
	mn->from_nodes[0] = 2;
	mn->from_nodes[1] = 3;
	SET(mn, to_node, 1);
	SET(mn, max_pages, 65536);
	b->commands[2]->kind_case = MM__V1__COMMAND__KIND_NUMA;
	b->commands[2]->numa = mn;
	rc = NEW(Mm__V1__ReclaimCold, MM__V1__RECLAIM_COLD__INIT);
	rc->vm_id = str("vm-3");
	SET(rc, kib, 524288);
	SET(rc, psi_budget_pct, 5.0);
	b->commands[3]->kind_case = MM__V1__COMMAND__KIND_RECLAIM;
	b->commands[3]->reclaim = rc;
	return b;
}

static Mm__V1__ActionResult *
new_action_result(void)
{
	Mm__V1__ActionResult *a = NEW(Mm__V1__ActionResult,
	    MM__V1__ACTION_RESULT__INIT);
	Mm__V1__CommandResult *cr;

	a->host_id = str("host-a");
	SET(a, batch_seq, 77);
	SET(a, time_ms, 1764000002500ull);
	a->scheduler_id = str("sched-1");
	SET(a, policy_version, 3);
	SET(a, sync, 0);
	ARRAY(a, results, 1);
	cr = a->results[0] = NEW(Mm__V1__CommandResult,
	    MM__V1__COMMAND_RESULT__INIT);
	SET(cr, index, 0);
	SET(cr, status, MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	cr->error = str("target 3145728 KiB below floor 4194304 KiB");
	cr->vm_id = str("vm-1");
	SET(cr, elapsed_ms, 15);
	SET(cr, balloon_target_kib, 4194304);
	SET(cr, balloon_actual_kib, 4200000);
	cr->ksm = new_ksm_settings(250);
	SET(cr, moved_pages, 4096);
	return a;
}

static Mm__V1__VmLimits *
new_limits(uint64_t min, uint64_t max)
{
	Mm__V1__VmLimits *l = NEW(Mm__V1__VmLimits, MM__V1__VM_LIMITS__INIT);

	SET(l, min_kib, min);
	SET(l, max_kib, max);
	SET(l, weight, 200);
	SET(l, headroom_kib, 262144);
	SET(l, headroom_pct, 10.0);
	SET(l, unmanaged, 1);
	SET(l, reclaim, 1);
	return l;
}

static Mm__V1__Policy *
new_policy(void)
{
	Mm__V1__Policy *p = NEW(Mm__V1__Policy, MM__V1__POLICY__INIT);
	Mm__V1__KsmPolicy *k = NEW(Mm__V1__KsmPolicy,
	    MM__V1__KSM_POLICY__INIT);
	Mm__V1__NumaPolicy *nu = NEW(Mm__V1__NumaPolicy,
	    MM__V1__NUMA_POLICY__INIT);

	SET(p, version, 3);
	p->name = str("default fleet policy");
	SET(p, mode, MM__V1__POLICY_MODE__POLICY_MODE_SHADOW);
	SET(p, host_reserve_kib, 2097152);
	p->algorithm = str("pressure");
	SET(p, created_ms, 1764000000000ull);
	p->author = str("ops@admin-1");
	SET(p, reset, 0);
	p->defaults = new_limits(524288, 16777216);
	ARRAY(p, rules, 1);
	p->rules[0] = NEW(Mm__V1__VmRule, MM__V1__VM_RULE__INIT);
	p->rules[0]->pattern = str("db-*");
	p->rules[0]->limits = new_limits(8388608, 33554432);
	SET(k, enable, 1);
	SET(k, cpu_budget_pct, 5.0);
	SET(k, start_available_pct, 20.0);
	SET(k, stop_available_pct, 40.0);
	SET(k, min_pages_to_scan, 100);
	SET(k, max_pages_to_scan, 4000);
	SET(k, sleep_ms, 50);
	SET(k, merge_across_nodes, 0);
	p->ksm = k;
	SET(nu, enable, 1);
	SET(nu, min_interval_s, 600);
	SET(nu, round_pages, 262144);
	SET(nu, node_reserve_kib, 1048576);
	p->numa = nu;
	ARRAY(p, params, 2);
	p->params[0] = NEW(Mm__V1__Param, MM__V1__PARAM__INIT);
	p->params[0]->name = str("psi_target_pct");
	SET(p->params[0], value, 5.0);
	p->params[1] = NEW(Mm__V1__Param, MM__V1__PARAM__INIT);
	p->params[1]->name = str("step_kib");
	SET(p->params[1], value, 131072);
	return p;
}

/* A VM's decision as the scheduler makes it: five numbers, a reason of
 * the policy engine's longest (159 bytes). */
static Mm__V1__VmDecision *
new_vm_decision(const char *vm_id)
{
	static const char *const names[] = { "used_kib", "need_kib",
	    "min_kib", "max_kib", "pressure" };
	Mm__V1__VmDecision *v = NEW(Mm__V1__VmDecision,
	    MM__V1__VM_DECISION__INIT);

	v->vm_id = str(vm_id);
	v->reason = str_rep('r', 159);
	ARRAY(v, metrics, 5);
	for (size_t i = 0; i < 5; i++) {
		v->metrics[i] = NEW(Mm__V1__Metric, MM__V1__METRIC__INIT);
		v->metrics[i]->name = str(names[i]);
		SET(v->metrics[i], value, 4294967296.0 + (double)i / 3);
		v->metrics[i]->unit = str(i < 4 ? "KiB" : "ratio");
	}
	SET(v, balloon_target_kib, 16ull << 30);
	SET(v, balloon_actual_kib, 15ull << 30);
	return v;
}

static Mm__V1__Event *
new_event(void)
{
	Mm__V1__Event *e = NEW(Mm__V1__Event, MM__V1__EVENT__INIT);

	SET(e, kind, MM__V1__EVENT_KIND__EVENT_KIND_RESULT);
	e->host_id = str("host-a");
	e->vm_id = str("vm-1");
	SET(e, time_ms, 1764000002600ull);
	e->source_id = str("actuator-host-a");
	SET(e, severity, MM__V1__SEVERITY__SEVERITY_WARNING);
	SET(e, policy_version, 3);
	SET(e, shadow, 1);
	e->reason = str("target clamped to floor");
	ARRAY(e, metrics, 1);
	e->metrics[0] = NEW(Mm__V1__Metric, MM__V1__METRIC__INIT);
	e->metrics[0]->name = str("psi_some_avg10");
	SET(e->metrics[0], value, 12.5);
	e->metrics[0]->unit = str("pct");
	SET(e, balloon_target_kib, 4194304);
	SET(e, balloon_actual_kib, 4200000);
	SET(e, batch_seq, 77);
	e->result = new_action_result();
	ARRAY(e, vms, 1);
	e->vms[0] = new_vm_decision("vm-2");
	return e;
}

static Mm__V1__StatusRequest *
new_status_request(void)
{
	Mm__V1__StatusRequest *q = NEW(Mm__V1__StatusRequest,
	    MM__V1__STATUS_REQUEST__INIT);

	ARRAY(q, host_ids, 2);
	q->host_ids[0] = str("host-a");
	q->host_ids[1] = str("host-b");
	SET(q, guests, 1);
	return q;
}

static Mm__V1__StatusReply *
new_status_reply(void)
{
	Mm__V1__StatusReply *s = NEW(Mm__V1__StatusReply,
	    MM__V1__STATUS_REPLY__INIT);
	Mm__V1__HostStatus *h;
	Mm__V1__GuestStatus *g;

	s->scheduler_id = str("sched-1");
	SET(s, time_ms, 1764000003000ull);
	SET(s, policy_version, 3);
	s->policy_name = str("default fleet policy");
	SET(s, policy_mode, MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE);
	s->error = str("");
	s->policy = new_policy();
	ARRAY(s, counters, 1);
	s->counters[0] = NEW(Mm__V1__Metric, MM__V1__METRIC__INIT);
	s->counters[0]->name = str("reports_future");
	SET(s->counters[0], value, 2);
	s->counters[0]->unit = str("count");
	ARRAY(s, hosts, 1);
	h = s->hosts[0] = NEW(Mm__V1__HostStatus, MM__V1__HOST_STATUS__INIT);
	h->host_id = str("host-a");
	SET(h, report_ms, 1764000001000ull);
	SET(h, report_seq, 900);
	SET(h, batch_seq, 77);
	SET(h, result_ms, 1764000002500ull);
	SET(h, guest_count, 2);
	SET(h, total_kib, 268435456);
	SET(h, available_kib, 67108864);
	SET(h, stale, 1);
	SET(h, reserve_kib, 2097152);
	SET(h, ksm_sharing_pages, 123456);
	SET(h, unconfirmed, 1);
	SET(h, resent, 3);
	ARRAY(h, guests, 1);
	g = h->guests[0] = NEW(Mm__V1__GuestStatus,
	    MM__V1__GUEST_STATUS__INIT);
	g->vm_id = str("vm-1");
	g->vm_name = str("web");
	SET(g, balloon_target_kib, 4194304);
	SET(g, balloon_actual_kib, 4200000);
	SET(g, min_kib, 524288);
	SET(g, max_kib, 8388608);
	SET(g, psi_some_avg10_pct, 12.5);
	g->reason = str("holding");
	SET(g, used_kib, 3000000);
	SET(g, need_kib, 3300000);
	SET(g, pressure_pct, 42.5);
	SET(g, decision_ms, 1764000002000ull);
	return s;
}

/* Generic checks over protobuf-c descriptors. */

/* How many values field fd holds in m: 0 when unset. */
static size_t
values_of(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd)
{
	const char *q = (const char *)m + fd->quantifier_offset;
	const void *const *ptr = (const void *const *)((const char *)m +
	    fd->offset);

	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)q;
	if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)q == fd->id;
	if (fd->type == PROTOBUF_C_TYPE_STRING ||
	    fd->type == PROTOBUF_C_TYPE_MESSAGE)
		return *ptr != NULL;
	return *(const protobuf_c_boolean *)q ? 1 : 0;
}

static size_t
value_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_ENUM:
	case PROTOBUF_C_TYPE_BOOL:
		return 4;
	default:
		fail_msg("field %s: type %d not used by mm", fd->name,
		    (int)fd->type);
		return 0;
	}
}

/* The address of value i of fd in m. */
static const void *
value_at(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *fd,
    size_t i)
{
	const char *p = (const char *)m + fd->offset;

	if (fd->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const char *const *)p + i * value_size(fd);
	return p;
}

/* Compare a and b field by field, recursively; path names the place. */
static void
assert_msg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b,
    const char *path)
{
	const ProtobufCMessageDescriptor *desc = a->descriptor;
	char sub[512];
	unsigned f;
	size_t i, n;

	assert_ptr_equal(desc, b->descriptor);
	for (f = 0; f < desc->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[f];

		n = values_of(a, fd);
		if (n != values_of(b, fd))
			fail_msg("%s.%s: %zu values, then %zu", path,
			    fd->name, n, values_of(b, fd));
		for (i = 0; i < n; i++) {
			const void *va = value_at(a, fd, i);
			const void *vb = value_at(b, fd, i);

			snprintf(sub, sizeof(sub), "%s.%s[%zu]", path,
			    fd->name, i);
			if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
				assert_msg_equal(*(void *const *)va,
				    *(void *const *)vb, sub);
			else if (fd->type == PROTOBUF_C_TYPE_STRING) {
				if (strcmp(*(char *const *)va,
				    *(char *const *)vb) != 0)
					fail_msg("%s: \"%s\" then \"%s\"", sub,
					    *(char *const *)va,
					    *(char *const *)vb);
			} else if (memcmp(va, vb, value_size(fd)) != 0)
				fail_msg("%s: value differs", sub);
		}
	}
}

/* Which fields of which message types a message tree sets. */
struct seen {
	const ProtobufCMessageDescriptor *desc[64];
	uint64_t mask[64];
	size_t n;
};

static uint64_t *
seen_mask(struct seen *s, const ProtobufCMessageDescriptor *desc)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->desc[i] == desc)
			return &s->mask[i];
	assert_true(s->n < 64);
	assert_true(desc->n_fields <= 64);
	s->desc[s->n] = desc;
	s->mask[s->n] = 0;
	return &s->mask[s->n++];
}

static void
mark_set(struct seen *s, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *desc = m->descriptor;
	uint64_t *mask = seen_mask(s, desc);
	unsigned f;
	size_t i, n;

	for (f = 0; f < desc->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[f];

		n = values_of(m, fd);
		if (n > 0)
			*mask |= 1ull << f;
		for (i = 0; fd->type == PROTOBUF_C_TYPE_MESSAGE && i < n; i++)
			mark_set(s, *(void *const *)value_at(m, fd, i));
	}
}

/* Fail unless every field of desc and of the types below it is in s. */
static void
assert_all_set(struct seen *s, const ProtobufCMessageDescriptor *desc)
{
	uint64_t *mask = seen_mask(s, desc);
	unsigned f;

	for (f = 0; f < desc->n_fields; f++) {
		const ProtobufCFieldDescriptor *fd = &desc->fields[f];

		if (!(*mask & (1ull << f)))
			fail_msg("%s.%s is never set by the test message",
			    desc->name, fd->name);
		if (fd->type == PROTOBUF_C_TYPE_MESSAGE)
			assert_all_set(s, fd->descriptor);
	}
}

/*
 * Pack m, check every field of its type tree was set, unpack it and compare
 * field by field. Frees m; returns the unpacked copy for typed checks.
 */
static ProtobufCMessage *
roundtrip(enum msg_type t, ProtobufCMessage *m)
{
	ProtobufCMessage *u = NULL;
	struct seen seen = { .n = 0 };
	char why[256] = "";
	uint8_t *buf;
	size_t len;

	mark_set(&seen, m);
	assert_all_set(&seen, m->descriptor);
	assert_int_equal(msg_pack(t, m, &buf, &len), 0);
	assert_true(len > 0 && len <= msg_max_size(t));
	if (msg_unpack(t, buf, len, &u, why, sizeof(why)) != 0)
		fail_msg("unpack: %s", why);
	assert_msg_equal(m, u, msg_type_name(t));
	free(buf);
	msg_free(m);
	return u;
}

static void
test_msg_roundtrip_host_report(void **state)
{
	Mm__V1__HostReport *r = (Mm__V1__HostReport *)roundtrip(
	    MSG_HOST_REPORT, &new_host_report()->base);

	assert_string_equal(r->host_id, "host-a.rack1");
	assert_int_equal(r->seq, 900);
	assert_int_equal(r->n_guests, 2);
	assert_string_equal(r->guests[1]->vm_id, "vm-2");
	assert_int_equal(r->guests[1]->meminfo->total_kib, 8388608);
	assert_true(r->guests[0]->psi->some_avg10_pct == 12.5);
	assert_int_equal(r->guests[0]->flags[1],
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_NON_MONOTONIC);
	assert_int_equal(r->host->ksm->sharing_pages, 9000);
	assert_int_equal(r->host->vm_numa[0]->nodes[1]->pages, 1001);
	msg_free(&r->base);
}

static void
test_msg_roundtrip_guest_stats(void **state)
{
	Mm__V1__GuestStats *g = (Mm__V1__GuestStats *)roundtrip(
	    MSG_GUEST_STATS, &new_guest("vm-7", 2097152)->base);

	assert_string_equal(g->vm_id, "vm-7");
	assert_int_equal(g->source, MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);
	assert_int_equal(g->balloon_actual_kib, 2097152 - 1024);
	assert_true(g->has_deflate_on_oom && g->deflate_on_oom);
	msg_free(&g->base);
}

static void
test_msg_roundtrip_command_batch(void **state)
{
	Mm__V1__CommandBatch *b = (Mm__V1__CommandBatch *)roundtrip(
	    MSG_COMMAND_BATCH, &new_command_batch()->base);

	assert_int_equal(b->n_commands, 4);
	assert_int_equal(b->commands[3]->reclaim->kib, 524288);
	assert_int_equal(b->commands[0]->kind_case,
	    MM__V1__COMMAND__KIND_BALLOON);
	assert_int_equal(b->commands[0]->balloon->target_kib, 3145728);
	assert_int_equal(b->commands[1]->ksm->settings->pages_to_scan, 250);
	assert_int_equal(b->commands[2]->numa->from_nodes[1], 3);
	assert_int_equal(b->expires_ms, 1764000007000ull);
	msg_free(&b->base);
}

static void
test_msg_roundtrip_action_result(void **state)
{
	Mm__V1__ActionResult *a = (Mm__V1__ActionResult *)roundtrip(
	    MSG_ACTION_RESULT, &new_action_result()->base);

	assert_int_equal(a->batch_seq, 77);
	assert_int_equal(a->results[0]->status,
	    MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED);
	assert_int_equal(a->results[0]->moved_pages, 4096);
	msg_free(&a->base);
}

static void
test_msg_roundtrip_policy(void **state)
{
	Mm__V1__Policy *p = (Mm__V1__Policy *)roundtrip(MSG_POLICY,
	    &new_policy()->base);

	assert_int_equal(p->version, 3);
	assert_int_equal(p->mode, MM__V1__POLICY_MODE__POLICY_MODE_SHADOW);
	assert_string_equal(p->rules[0]->pattern, "db-*");
	assert_int_equal(p->rules[0]->limits->max_kib, 33554432);
	assert_true(p->params[1]->value == 131072.0);
	msg_free(&p->base);
}

static void
test_msg_roundtrip_event(void **state)
{
	Mm__V1__Event *e = (Mm__V1__Event *)roundtrip(MSG_EVENT,
	    &new_event()->base);

	assert_int_equal(e->kind, MM__V1__EVENT_KIND__EVENT_KIND_RESULT);
	assert_string_equal(e->metrics[0]->unit, "pct");
	assert_int_equal(e->result->results[0]->balloon_target_kib, 4194304);
	assert_string_equal(e->vms[0]->vm_id, "vm-2");
	msg_free(&e->base);
}

static void
test_msg_roundtrip_status(void **state)
{
	Mm__V1__StatusRequest *q = (Mm__V1__StatusRequest *)roundtrip(
	    MSG_STATUS_REQUEST, &new_status_request()->base);
	Mm__V1__StatusReply *s = (Mm__V1__StatusReply *)roundtrip(
	    MSG_STATUS_REPLY, &new_status_reply()->base);

	assert_string_equal(q->host_ids[1], "host-b");
	assert_int_equal(s->hosts[0]->guests[0]->min_kib, 524288);
	assert_string_equal(s->error, "");
	assert_int_equal(s->hosts[0]->ksm_sharing_pages, 123456);
	assert_int_equal(s->hosts[0]->guests[0]->need_kib, 3300000);
	assert_int_equal(s->policy->numa->round_pages, 262144);
	msg_free(&q->base);
	msg_free(&s->base);
}

/* msg_dup(): a copy equal field by field that outlives the original, and
 * nothing for an invalid message. */
static void
test_msg_dup_copies_deeply(void **state)
{
	Mm__V1__HostReport *r = new_host_report();
	ProtobufCMessage *copy;
	Mm__V1__HostReport *c;

	(void)state;
	copy = msg_dup(MSG_HOST_REPORT, &r->base);
	assert_non_null(copy);
	assert_msg_equal(&r->base, copy, "HostReport");
	msg_free(&r->base);
	c = (Mm__V1__HostReport *)copy;
	assert_string_equal(c->guests[1]->vm_id, "vm-2");
	assert_int_equal(c->host->vm_numa[0]->nodes[1]->pages, 1001);
	msg_free(copy);

	r = new_host_report();
	free(r->host_id);
	r->host_id = strdup("not a host id!");
	errno = 0;
	assert_null(msg_dup(MSG_HOST_REPORT, &r->base));
	assert_int_equal(errno, EINVAL);
	msg_free(&r->base);
}

static void
test_msg_type_names_map_both_ways(void **state)
{
	enum msg_type t, back;

	assert_string_equal(msg_type_name(MSG_HOST_REPORT),
	    "mm.v1.HostReport");
	assert_string_equal(msg_type_name(MSG_COMMAND_BATCH),
	    "mm.v1.CommandBatch");
	for (t = 0; t < MSG_TYPE_COUNT; t++) {
		assert_non_null(msg_type_name(t));
		assert_int_equal(msg_type_from_name(msg_type_name(t), &back),
		    0);
		assert_int_equal(back, t);
		/* The agent's one request from the host is small on
		 * purpose: it reads it with a buffer of its own. */
		assert_true(msg_max_size(t) >= (t == MSG_RECLAIM_REQUEST ?
		    64 : 64 * 1024));
	}
	back = MSG_POLICY;
	assert_int_equal(msg_type_from_name("mm.v1.Nope", &back), -ENOENT);
	assert_int_equal(msg_type_from_name("HostReport", &back), -ENOENT);
	assert_int_equal(msg_type_from_name(NULL, &back), -ENOENT);
	assert_int_equal(back, MSG_POLICY);
	assert_null(msg_type_name(MSG_TYPE_COUNT));
	assert_int_equal(msg_max_size(MSG_TYPE_COUNT), 0);
}

static void
test_msg_unpack_checks_size_first(void **state)
{
	size_t max = msg_max_size(MSG_GUEST_STATS);
	uint8_t *junk = malloc(max + 1);
	ProtobufCMessage *m = NULL;
	char why[256] = "";

	/* Undecodable bytes: only the size can explain -EMSGSIZE. */
	assert_non_null(junk);
	memset(junk, 0xff, max + 1);
	assert_int_equal(msg_unpack(MSG_GUEST_STATS, junk, max + 1, &m, why,
	    sizeof(why)), -EMSGSIZE);
	assert_null(m);
	assert_non_null(strstr(why, "bytes"));
	assert_int_equal(msg_unpack(MSG_GUEST_STATS, junk, max, &m, NULL, 0),
	    -EBADMSG);
	free(junk);
}

static void
test_msg_pack_refuses_oversized(void **state)
{
	Mm__V1__Event *e = new_event();
	uint8_t *buf = NULL;
	size_t i, len = 0;

	/* The most VMs with 1 KiB reasons: valid, but above 1 MiB. */
	msg_free(&e->vms[0]->base);
	free(e->vms);
	ARRAY(e, vms, MSG_EVENT_VMS_MAX);
	for (i = 0; i < MSG_EVENT_VMS_MAX; i++) {
		e->vms[i] = new_vm_decision("vm-x");
		set_str(&e->vms[i]->reason, str_rep('r', MSG_TEXT_MAX));
	}
	assert_int_equal(msg_validate(MSG_EVENT, &e->base, NULL, 0), 0);
	assert_int_equal(msg_pack(MSG_EVENT, &e->base, &buf, &len),
	    -EMSGSIZE);
	assert_null(buf);
	assert_int_equal(len, 0);
	msg_free(&e->base);
}

static void
test_msg_unpack_refuses_garbage(void **state)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0x0f };
	Mm__V1__HostReport *r = new_host_report();
	ProtobufCMessage *m = NULL;
	char why[256] = "";
	uint8_t *buf;
	size_t len;

	assert_int_equal(msg_unpack(MSG_HOST_REPORT, junk, sizeof(junk), &m,
	    why, sizeof(why)), -EBADMSG);
	assert_string_equal(why, "not a decodable mm.v1.HostReport");
	/* A valid message cut short. */
	assert_int_equal(msg_pack(MSG_HOST_REPORT, &r->base, &buf, &len), 0);
	assert_int_equal(msg_unpack(MSG_HOST_REPORT, buf, len - 3, &m, why,
	    sizeof(why)), -EBADMSG);
	assert_null(m);
	/* Nothing at all decodes, but lacks the host id. */
	assert_int_equal(msg_unpack(MSG_HOST_REPORT, buf, 0, &m, why,
	    sizeof(why)), -EINVAL);
	assert_string_equal(why, "host_id: missing");
	free(buf);
	msg_free(&r->base);
}

/*
 * Expect m to be refused as a t by msg_validate(), msg_pack() and, after
 * packing it raw as a hostile sender would, by msg_unpack(), with a reason
 * starting with want. Frees m.
 */
static void
expect_invalid(enum msg_type t, ProtobufCMessage *m, const char *want)
{
	ProtobufCMessage *u = NULL;
	char why[256] = "";
	uint8_t *buf = NULL;
	size_t len = 0;

	assert_int_equal(msg_validate(t, m, why, sizeof(why)), -EINVAL);
	if (strncmp(why, want, strlen(want)) != 0)
		fail_msg("why \"%s\", expected \"%s...\"", why, want);
	assert_int_equal(msg_pack(t, m, &buf, &len), -EINVAL);
	assert_null(buf);

	len = protobuf_c_message_get_packed_size(m);
	buf = malloc(len + 1);
	assert_non_null(buf);
	protobuf_c_message_pack(m, buf);
	memset(why, 0, sizeof(why));
	assert_int_equal(msg_unpack(t, buf, len, &u, why, sizeof(why)),
	    -EINVAL);
	if (strncmp(why, want, strlen(want)) != 0)
		fail_msg("unpacked: why \"%s\", expected \"%s...\"", why,
		    want);
	assert_null(u);
	free(buf);
	msg_free(m);
}

static void
test_msg_validate_requires_fields(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__CommandBatch *b;
	Mm__V1__Policy *p;

	r = new_host_report();
	free(r->host_id);
	r->host_id = NULL;
	expect_invalid(MSG_HOST_REPORT, &r->base, "host_id: missing");

	r = new_host_report();
	free(r->guests[1]->vm_id);
	r->guests[1]->vm_id = NULL;
	expect_invalid(MSG_HOST_REPORT, &r->base, "guests[1].vm_id: missing");

	b = new_command_batch();
	b->has_expires_ms = 0;
	expect_invalid(MSG_COMMAND_BATCH, &b->base, "expires_ms: missing");

	b = new_command_batch();
	msg_free(&b->commands[2]->numa->base);
	b->commands[2]->kind_case = MM__V1__COMMAND__KIND__NOT_SET;
	expect_invalid(MSG_COMMAND_BATCH, &b->base,
	    "commands[2].kind: none set");

	p = new_policy();
	p->version = 0;
	expect_invalid(MSG_POLICY, &p->base, "version: zero");

	p = new_policy();
	p->has_mode = 0;
	expect_invalid(MSG_POLICY, &p->base, "mode: missing");
}

static void
test_msg_validate_checks_ids(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__Policy *p;
	char why[256];

	r = new_host_report();
	r->host_id[0] = '\0';
	expect_invalid(MSG_HOST_REPORT, &r->base, "host_id: empty");

	r = new_host_report();
	set_str(&r->host_id, str("host a"));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "host_id: byte 4 is not one of [A-Za-z0-9_.-]");

	r = new_host_report();
	set_str(&r->host_id, str_rep('h', MSG_ID_MAX + 1));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "host_id: longer than 64 bytes");

	/* The longest id is fine. */
	r = new_host_report();
	set_str(&r->host_id, str_rep('h', MSG_ID_MAX));
	assert_int_equal(msg_validate(MSG_HOST_REPORT, &r->base, why,
	    sizeof(why)), 0);
	msg_free(&r->base);

	r = new_host_report();
	set_str(&r->guests[0]->vm_uuid,
	    str("1b4e28ba-2fa1-11d2-883f-0016d3cca42z"));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].vm_uuid: not a UUID (byte 35)");

	/* Param names are ids although other names are texts. */
	p = new_policy();
	set_str(&p->params[1]->name, str("step kib"));
	expect_invalid(MSG_POLICY, &p->base, "params[1].name: byte 4");
}

static void
test_msg_validate_checks_texts(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__CommandBatch *b;
	char why[256];

	r = new_host_report();
	set_str(&r->guests[0]->vm_name, str_rep('n', MSG_NAME_MAX + 1));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].vm_name: longer than 128 bytes");

	r = new_host_report();
	r->guests[1]->vm_name[3] = '\n';
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[1].vm_name: byte 3 is not printable UTF-8");

	r = new_host_report();
	/* Broken UTF-8. */
	set_str(&r->guests[1]->vm_name, str("ab\xc3\x28"));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[1].vm_name: byte 2 is not printable UTF-8");

	r = new_host_report();
	/* A UTF-16 surrogate encoded as UTF-8. */
	set_str(&r->guests[1]->vm_name, str("\xed\xa0\x80"));
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[1].vm_name: byte 0");

	b = new_command_batch();
	set_str(&b->commands[1]->reason, str_rep('r', MSG_TEXT_MAX + 1));
	expect_invalid(MSG_COMMAND_BATCH, &b->base,
	    "commands[1].reason: longer than 1024 bytes");

	/* The longest reason is fine, and texts may be empty. */
	b = new_command_batch();
	set_str(&b->commands[1]->reason, str_rep('r', MSG_TEXT_MAX));
	b->commands[0]->reason[0] = '\0';
	assert_int_equal(msg_validate(MSG_COMMAND_BATCH, &b->base, why,
	    sizeof(why)), 0);
	msg_free(&b->base);
}

static void
test_msg_validate_checks_enums(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__ActionResult *a;

	r = new_host_report();
	r->guests[1]->source = (Mm__V1__StatsSource)99;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[1].source: unknown value 99");

	r = new_host_report();
	r->guests[0]->flags[1] = (Mm__V1__SanitizerFlag)42;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].flags[1]: unknown value 42");

	a = new_action_result();
	a->results[0]->status =
	    MM__V1__RESULT_STATUS__RESULT_STATUS_UNSPECIFIED;
	expect_invalid(MSG_ACTION_RESULT, &a->base,
	    "results[0].status: unspecified");
}

static void
test_msg_validate_bounds_counts(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__GuestStats **guests;
	size_t i;

	r = new_host_report();
	guests = realloc(r->guests, (MSG_REPEATED_MAX + 1) * sizeof(*guests));
	assert_non_null(guests);
	r->guests = guests;
	for (i = r->n_guests; i <= MSG_REPEATED_MAX; i++)
		guests[i] = new_guest("vm-x", 1048576);
	r->n_guests = MSG_REPEATED_MAX + 1;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests: 4097 elements, at most 4096");

	r = new_host_report();
	free(r->host->vm_numa[0]->vcpu_nodes);
	ARRAY(r->host->vm_numa[0], vcpu_nodes, MSG_NODES_MAX + 1);
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "host.vm_numa[0].vcpu_nodes: 65 elements, at most 64");

	r = new_host_report();
	free(r->guests[0]->flags);
	ARRAY(r->guests[0], flags, 17);
	for (i = 0; i < 17; i++)
		r->guests[0]->flags[i] =
		    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].flags: 17 elements, at most 16");
}

static void
test_msg_validate_checks_ranges(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__CommandBatch *b;
	Mm__V1__Policy *p;
	char why[256];

	r = new_host_report();
	r->guests[1]->meminfo->total_kib = MSG_KIB_MAX + 1;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[1].meminfo.total_kib: 4398046511105 above 4398046511104");

	r = new_host_report();
	r->guests[1]->meminfo->total_kib = MSG_KIB_MAX;
	assert_int_equal(msg_validate(MSG_HOST_REPORT, &r->base, why,
	    sizeof(why)), 0);
	msg_free(&r->base);

	r = new_host_report();
	r->host->psi->some_avg60_pct = 100.5;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "host.psi.some_avg60_pct: 100.5 outside 0..100");

	r = new_host_report();
	r->guests[0]->psi->full_avg10_pct = -0.25;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].psi.full_avg10_pct: -0.25 outside 0..100");

	r = new_host_report();
	r->guests[0]->psi->some_avg10_pct = NAN;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].psi.some_avg10_pct: not a finite number");

	r = new_host_report();
	r->time_ms = MSG_MS_MAX + 1;
	expect_invalid(MSG_HOST_REPORT, &r->base, "time_ms: ");

	r = new_host_report();
	r->host->vm_numa[0]->nodes[1]->pages = MSG_PAGES_MAX + 1;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "host.vm_numa[0].nodes[1].pages: ");

	b = new_command_batch();
	b->commands[2]->numa->to_node = MSG_NODES_MAX;
	expect_invalid(MSG_COMMAND_BATCH, &b->base,
	    "commands[2].numa.to_node: 64 above 63");

	b = new_command_batch();
	b->commands[2]->numa->from_nodes[0] = 1000;
	expect_invalid(MSG_COMMAND_BATCH, &b->base,
	    "commands[2].numa.from_nodes[0]: 1000 above 63");

	p = new_policy();
	p->rules[0]->limits->weight = 10001;
	expect_invalid(MSG_POLICY, &p->base,
	    "rules[0].limits.weight: 10001 above 10000");

	p = new_policy();
	p->params[0]->value = INFINITY;
	expect_invalid(MSG_POLICY, &p->base,
	    "params[0].value: not a finite number");
}

static void
test_msg_validate_checks_order(void **state)
{
	Mm__V1__HostReport *r;
	Mm__V1__CommandBatch *b;
	Mm__V1__Policy *p;
	char why[256];

	r = new_host_report();
	r->guests[0]->min_kib = r->guests[0]->max_kib + 1;
	expect_invalid(MSG_HOST_REPORT, &r->base,
	    "guests[0].min_kib: 8388609 above max_kib 8388608");

	/* Equal bounds are fine; one bound alone is never compared. */
	r = new_host_report();
	r->guests[0]->min_kib = r->guests[0]->max_kib;
	r->guests[1]->min_kib = MSG_KIB_MAX;
	r->guests[1]->has_max_kib = 0;
	assert_int_equal(msg_validate(MSG_HOST_REPORT, &r->base, why,
	    sizeof(why)), 0);
	msg_free(&r->base);

	b = new_command_batch();
	b->expires_ms = b->issued_ms - 1;
	expect_invalid(MSG_COMMAND_BATCH, &b->base,
	    "issued_ms: 1764000002000 above expires_ms 1764000001999");

	p = new_policy();
	p->ksm->start_available_pct = 50.0;
	expect_invalid(MSG_POLICY, &p->base,
	    "ksm.start_available_pct: 50 above stop_available_pct 40");

	p = new_policy();
	p->ksm->min_pages_to_scan = 5000;
	expect_invalid(MSG_POLICY, &p->base,
	    "ksm.min_pages_to_scan: 5000 above max_pages_to_scan 4000");
}

static void
test_msg_validate_refuses_wrong_type(void **state)
{
	Mm__V1__HostReport *r = new_host_report();
	Mm__V1__Event *e = new_event();
	char why[256] = "";

	assert_int_equal(msg_validate(MSG_POLICY, &r->base, why, sizeof(why)),
	    -EINVAL);
	assert_string_equal(why,
	    "message: a mm.v1.HostReport where a mm.v1.Policy belongs");
	assert_int_equal(msg_validate(MSG_TYPE_COUNT, &r->base, why,
	    sizeof(why)), -EINVAL);
	assert_int_equal(msg_validate(MSG_HOST_REPORT, NULL, why,
	    sizeof(why)), -EINVAL);

	/* A submessage of the wrong type, as hand-built code could make. */
	msg_free(&e->result->base);
	e->result = (Mm__V1__ActionResult *)new_command_batch();
	assert_int_equal(msg_validate(MSG_EVENT, &e->base, why, sizeof(why)),
	    -EINVAL);
	assert_string_equal(why, "result: a mm.v1.CommandBatch where a "
	    "mm.v1.ActionResult belongs");
	msg_free(&e->base);
	msg_free(&r->base);
}

static void
test_msg_to_bus_sets_properties(void **state)
{
	Mm__V1__CommandBatch *b = new_command_batch();
	Mm__V1__CommandBatch *u;
	struct bus_msg bm, untouched;
	ProtobufCMessage *m = NULL;
	uint8_t *buf = NULL;

	assert_int_equal(msg_to_bus(MSG_COMMAND_BATCH, &b->base,
	    "mm.commands", "host-a", true, &bm, &buf), 0);
	assert_string_equal(bm.exchange, "mm.commands");
	assert_string_equal(bm.routing_key, "host-a");
	assert_string_equal(bm.content_type, "application/x-protobuf");
	assert_string_equal(bm.type, "mm.v1.CommandBatch");
	assert_true(bm.persistent);
	assert_null(bm.message_id);
	assert_ptr_equal(bm.body, buf);
	assert_int_equal(msg_unpack(MSG_COMMAND_BATCH, bm.body, bm.len, &m,
	    NULL, 0), 0);
	u = (Mm__V1__CommandBatch *)m;
	assert_int_equal(u->seq, 77);
	assert_string_equal(u->scheduler_id, "sched-1");
	msg_free(m);
	free(buf);

	/* Invalid: nothing written. */
	memset(&bm, 0xa5, sizeof(bm));
	memcpy(&untouched, &bm, sizeof(bm));
	buf = NULL;
	b->seq = 78;
	b->has_seq = 0;
	assert_int_equal(msg_to_bus(MSG_COMMAND_BATCH, &b->base,
	    "mm.commands", "host-a", false, &bm, &buf), -EINVAL);
	assert_memory_equal(&bm, &untouched, sizeof(bm));
	assert_null(buf);
	msg_free(&b->base);
}

/* What the dispatch tests' handler saw. */
struct seen_call {
	int calls;
	uint64_t seq;
	char host_id[MSG_ID_MAX + 1];
	char queue[32];
};

static enum bus_disposition
report_handler(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct seen_call *c = arg;

	assert_ptr_equal(m->descriptor, &mm__v1__host_report__descriptor);
	c->calls++;
	c->seq = r->seq;
	snprintf(c->host_id, sizeof(c->host_id), "%s", r->host_id);
	snprintf(c->queue, sizeof(c->queue), "%s", d->queue);
	return BUS_REQUEUE;
}

static enum bus_disposition
policy_handler(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	fail_msg("policy handler called");
	return BUS_ACK;
}

static const struct msg_handler handlers[] = {
	{ MSG_HOST_REPORT, report_handler },
	{ MSG_POLICY, policy_handler },
};

/* A delivery of body as an mm.v1.HostReport from queue mm.test. */
static struct bus_delivery
delivery(const void *body, size_t len)
{
	struct bus_delivery d = {
		.queue = "mm.test",
		.exchange = "mm.stats",
		.routing_key = "host.host-a",
		.body = body,
		.len = len,
		.content_type = MSG_CONTENT_TYPE,
		.type = "mm.v1.HostReport",
		.message_id = "",
		.correlation_id = "",
		.reply_to = "",
		.app_id = "mm-collector",
	};

	return d;
}

static uint64_t
stats_total(const struct msg_dispatch_stats *s)
{
	return s->ok + s->bad_content_type + s->unknown_type +
	    s->unexpected_type + s->too_big + s->undecodable + s->invalid;
}

/* Dispatch d, expect BUS_REJECT counted once in the given counter. */
#define EXPECT_REJECT(d, counter, want) do { \
	struct msg_dispatch_stats s_ = { 0 }; \
	char why_[256] = ""; \
	assert_int_equal(msg_dispatch(handlers, 2, &(d), &call, &s_, why_, \
	    sizeof(why_)), BUS_REJECT); \
	assert_int_equal(s_.counter, 1); \
	assert_int_equal(stats_total(&s_), 1); \
	if (strstr(why_, (want)) == NULL) \
		fail_msg("why \"%s\" lacks \"%s\"", why_, (want)); \
	assert_int_equal(call.calls, 0); \
} while (0)

static void
test_msg_dispatch_calls_handler(void **state)
{
	Mm__V1__HostReport *r = new_host_report();
	struct msg_dispatch_stats s = { 0 };
	struct seen_call call = { 0 };
	struct bus_delivery d;
	uint8_t *buf;
	size_t len;

	assert_int_equal(msg_pack(MSG_HOST_REPORT, &r->base, &buf, &len), 0);
	d = delivery(buf, len);
	assert_int_equal(msg_dispatch(handlers, 2, &d, &call, &s, NULL, 0),
	    BUS_REQUEUE);
	assert_int_equal(call.calls, 1);
	assert_int_equal(call.seq, 900);
	assert_string_equal(call.host_id, "host-a.rack1");
	assert_string_equal(call.queue, "mm.test");
	assert_int_equal(s.ok, 1);
	assert_int_equal(stats_total(&s), 1);
	/* No stats and no why are fine too. */
	assert_int_equal(msg_dispatch(handlers, 2, &d, &call, NULL, NULL, 0),
	    BUS_REQUEUE);
	assert_int_equal(call.calls, 2);
	free(buf);
	msg_free(&r->base);
}

static void
test_msg_dispatch_rejects_bad_deliveries(void **state)
{
	static const uint8_t junk[] = { 0x0a, 0xff, 0x01 };
	Mm__V1__HostReport *r = new_host_report();
	struct seen_call call = { 0 };
	struct bus_delivery d;
	uint8_t *buf, *big;
	size_t len;

	assert_int_equal(msg_pack(MSG_HOST_REPORT, &r->base, &buf, &len), 0);

	d = delivery(buf, len);
	d.content_type = "application/json";
	EXPECT_REJECT(d, bad_content_type, "application/json");
	d.content_type = "";
	EXPECT_REJECT(d, bad_content_type, "content_type \"\"");

	d = delivery(buf, len);
	d.type = "mm.v1.Nope\n";
	EXPECT_REJECT(d, unknown_type, "type \"mm.v1.Nope?\"");
	d.type = "";
	EXPECT_REJECT(d, unknown_type, "is not an mm message");

	d = delivery(buf, len);
	d.type = "mm.v1.Event";
	EXPECT_REJECT(d, unexpected_type, "no handler for mm.v1.Event");

	big = calloc(1, msg_max_size(MSG_HOST_REPORT) + 1);
	assert_non_null(big);
	d = delivery(big, msg_max_size(MSG_HOST_REPORT) + 1);
	EXPECT_REJECT(d, too_big, "bytes, at most");
	free(big);

	d = delivery(junk, sizeof(junk));
	EXPECT_REJECT(d, undecodable, "not a decodable mm.v1.HostReport");

	/* Decodable, but without a host id: packed raw, as msg_pack refuses. */
	free(r->host_id);
	r->host_id = NULL;
	len = protobuf_c_message_get_packed_size(&r->base);
	assert_true(len > 0);
	protobuf_c_message_pack(&r->base, buf);
	d = delivery(buf, len);
	EXPECT_REJECT(d, invalid, "host_id: missing");
	free(buf);
	msg_free(&r->base);
}

/* What the comparing handler checks each message against, and a delivery
 * it dispatches from inside itself when inner is set. */
struct expect_call {
	const ProtobufCMessage *want;
	const struct bus_delivery *inner;
	const ProtobufCMessage *inner_want;
	int calls;
};

static enum bus_disposition
compare_handler(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, compare_handler },
	};
	struct expect_call *e = arg;
	struct expect_call in = { 0 };

	e->calls++;
	assert_msg_equal(e->want, m, "dispatched");
	if (e->inner != NULL) {
		in.want = e->inner_want;
		assert_int_equal(msg_dispatch(table, 1, e->inner, &in, NULL,
		    NULL, 0), BUS_ACK);
		assert_int_equal(in.calls, 1);
		/* The outer message outlives the inner one. */
		assert_msg_equal(e->want, m, "outer after inner");
	}
	return BUS_ACK;
}

/* A report of n guests, every field set. */
static Mm__V1__HostReport *
new_big_report(size_t n)
{
	Mm__V1__HostReport *r = new_host_report();
	char id[32];

	for (size_t i = 0; i < r->n_guests; i++)
		msg_free(&r->guests[i]->base);
	free(r->guests);
	ARRAY(r, guests, n);
	for (size_t i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "vm-%zu", i);
		r->guests[i] = new_guest(id, 1048576 + i);
	}
	return r;
}

static void
test_msg_dispatch_any_size_in_turn(void **state)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, compare_handler },
	};
	/* 4096 guests unpack to more than the arena keeps: the rest is
	 * malloc'd; 1 and 50 guests fit once it has grown. */
	static const size_t sizes[] = { 1, 4096, 50, 1, 4096, 50, 50 };
	struct bus_delivery d;
	uint8_t *buf;
	size_t len;

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		Mm__V1__HostReport *r = new_big_report(sizes[i]);
		struct expect_call e = { .want = &r->base };

		SET(r, seq, i);
		assert_int_equal(msg_pack(MSG_HOST_REPORT, &r->base, &buf,
		    &len), 0);
		d = delivery(buf, len);
		assert_int_equal(msg_dispatch(table, 1, &d, &e, NULL, NULL,
		    0), BUS_ACK);
		assert_int_equal(e.calls, 1);
		free(buf);
		msg_free(&r->base);
	}
}

static void
test_msg_dispatch_from_a_handler(void **state)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, compare_handler },
	};
	Mm__V1__HostReport *outer = new_big_report(50);
	Mm__V1__HostReport *inner = new_big_report(3);
	struct expect_call e = { .want = &outer->base,
	    .inner_want = &inner->base };
	struct bus_delivery d, di;
	uint8_t *buf, *ibuf;
	size_t len, ilen;

	set_str(&inner->host_id, str("host-b"));
	assert_int_equal(msg_pack(MSG_HOST_REPORT, &outer->base, &buf, &len),
	    0);
	assert_int_equal(msg_pack(MSG_HOST_REPORT, &inner->base, &ibuf,
	    &ilen), 0);
	d = delivery(buf, len);
	di = delivery(ibuf, ilen);
	e.inner = &di;
	assert_int_equal(msg_dispatch(table, 1, &d, &e, NULL, NULL, 0),
	    BUS_ACK);
	assert_int_equal(e.calls, 1);
	free(buf);
	free(ibuf);
	msg_free(&outer->base);
	msg_free(&inner->base);
}

/* A decision event of one host's round of n VMs (vm-0...). */
static Mm__V1__Event *
new_decision_event(size_t n)
{
	Mm__V1__Event *e = NEW(Mm__V1__Event, MM__V1__EVENT__INIT);
	char id[MSG_ID_MAX + 1];

	SET(e, kind, MM__V1__EVENT_KIND__EVENT_KIND_DECISION);
	e->host_id = str("host-a");
	SET(e, time_ms, 1764000002600ull);
	e->source_id = str("sched-1");
	SET(e, batch_seq, 78);
	ARRAY(e, vms, n);
	for (size_t i = 0; i < n; i++) {
		/* The longest ids, distinct. */
		snprintf(id, sizeof(id), "%0*zu", MSG_ID_MAX, i);
		e->vms[i] = new_vm_decision(id);
	}
	return e;
}

static enum bus_disposition
event_handler(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	(*(int *)arg)++;
	return BUS_ACK;
}

/* Dispatch e (packed raw: msg_pack refuses what is invalid) as an
 * mm.v1.Event; return the disposition, the counters in *ret_stats. */
static enum bus_disposition
dispatch_event(Mm__V1__Event *e, struct msg_dispatch_stats *ret_stats,
    char *why, size_t whylen)
{
	static const struct msg_handler table[] = {
		{ MSG_EVENT, event_handler },
	};
	size_t len = protobuf_c_message_get_packed_size(&e->base);
	uint8_t *buf = malloc(len);
	struct bus_delivery d;
	enum bus_disposition r;
	int calls = 0;

	assert_non_null(buf);
	protobuf_c_message_pack(&e->base, buf);
	d = delivery(buf, len);
	d.type = "mm.v1.Event";
	r = msg_dispatch(table, 1, &d, &calls, ret_stats, why, whylen);
	assert_int_equal(calls, r == BUS_ACK ? 1 : 0);
	free(buf);
	return r;
}

/*
 * A host's round in one event: the most VMs an event may carry, each
 * as the scheduler fills it, fits the size limit and reads back; one more
 * VM, a bad VM id or reason, a missing id or a number that is not one are
 * refused, named, and counted by the dispatcher.
 */
static void
test_msg_validate_event_vms(void **state)
{
	struct msg_dispatch_stats st = { 0 };
	Mm__V1__VmDecision vd, **vms;
	Mm__V1__Event *e, *u;
	char why[256] = "";
	size_t i;

	e = new_decision_event(MSG_EVENT_VMS_MAX);
	assert_true(msg_packed_size(&e->base) <= msg_max_size(MSG_EVENT));
	print_message("an event of %d VMs: %zu bytes, at most %zu\n",
	    MSG_EVENT_VMS_MAX, msg_packed_size(&e->base),
	    msg_max_size(MSG_EVENT));
	assert_int_equal(dispatch_event(e, &st, why, sizeof(why)), BUS_ACK);
	assert_int_equal(st.ok, 1);
	u = (Mm__V1__Event *)msg_dup(MSG_EVENT, &e->base);
	assert_non_null(u);
	msg_free(&e->base);
	for (i = 0; msg_event_vm(u, i, &vd); i++) {
		assert_string_equal(vd.vm_id, u->vms[i]->vm_id);
		assert_int_equal(vd.n_metrics, 5);
		assert_int_equal(vd.balloon_target_kib, 16ull << 30);
	}
	assert_int_equal(i, MSG_EVENT_VMS_MAX);
	msg_free(&u->base);

	/* One VM, the event's own fields as before vms: read as one. */
	e = new_event();
	msg_free(&e->vms[0]->base);
	free(e->vms);
	e->vms = NULL;
	e->n_vms = 0;
	assert_true(msg_event_vm(e, 0, &vd));
	assert_string_equal(vd.vm_id, "vm-1");
	assert_string_equal(vd.reason, "target clamped to floor");
	assert_int_equal(vd.n_metrics, 1);
	assert_int_equal(vd.balloon_target_kib, 4194304);
	assert_int_equal(vd.balloon_actual_kib, 4200000);
	assert_false(msg_event_vm(e, 1, &vd));
	/* No VM named: none. */
	set_str(&e->vm_id, NULL);
	assert_false(msg_event_vm(e, 0, &vd));
	msg_free(&e->base);

	e = new_decision_event(MSG_EVENT_VMS_MAX);
	vms = realloc(e->vms, (MSG_EVENT_VMS_MAX + 1) * sizeof(*vms));
	assert_non_null(vms);
	e->vms = vms;
	e->vms[e->n_vms++] = new_vm_decision("vm-x");
	memset(&st, 0, sizeof(st));
	assert_int_equal(dispatch_event(e, &st, why, sizeof(why)),
	    BUS_REJECT);
	assert_int_equal(st.invalid, 1);
	assert_non_null(strstr(why, "vms: 1025 elements, at most 1024"));
	expect_invalid(MSG_EVENT, &e->base, "vms: 1025 elements, at most 1024");

	e = new_decision_event(3);
	set_str(&e->vms[1]->vm_id, str("vm b"));
	expect_invalid(MSG_EVENT, &e->base,
	    "vms[1].vm_id: byte 2 is not one of [A-Za-z0-9_.-]");

	e = new_decision_event(3);
	set_str(&e->vms[0]->vm_id, NULL);
	expect_invalid(MSG_EVENT, &e->base, "vms[0].vm_id: missing");

	e = new_decision_event(3);
	e->vms[2]->reason[3] = '\033';
	expect_invalid(MSG_EVENT, &e->base,
	    "vms[2].reason: byte 3 is not printable UTF-8");

	e = new_decision_event(3);
	e->vms[0]->metrics[4]->value = NAN;
	expect_invalid(MSG_EVENT, &e->base,
	    "vms[0].metrics[4].value: not a finite number");

	e = new_decision_event(3);
	SET(e->vms[1], balloon_target_kib, MSG_KIB_MAX + 1);
	expect_invalid(MSG_EVENT, &e->base,
	    "vms[1].balloon_target_kib: 4398046511105 above");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_msg_roundtrip_host_report),
		cmocka_unit_test(test_msg_roundtrip_guest_stats),
		cmocka_unit_test(test_msg_roundtrip_command_batch),
		cmocka_unit_test(test_msg_roundtrip_action_result),
		cmocka_unit_test(test_msg_roundtrip_policy),
		cmocka_unit_test(test_msg_roundtrip_event),
		cmocka_unit_test(test_msg_roundtrip_status),
		cmocka_unit_test(test_msg_dup_copies_deeply),
		cmocka_unit_test(test_msg_type_names_map_both_ways),
		cmocka_unit_test(test_msg_unpack_checks_size_first),
		cmocka_unit_test(test_msg_pack_refuses_oversized),
		cmocka_unit_test(test_msg_unpack_refuses_garbage),
		cmocka_unit_test(test_msg_validate_requires_fields),
		cmocka_unit_test(test_msg_validate_checks_ids),
		cmocka_unit_test(test_msg_validate_checks_texts),
		cmocka_unit_test(test_msg_validate_checks_enums),
		cmocka_unit_test(test_msg_validate_bounds_counts),
		cmocka_unit_test(test_msg_validate_checks_ranges),
		cmocka_unit_test(test_msg_validate_checks_order),
		cmocka_unit_test(test_msg_validate_refuses_wrong_type),
		cmocka_unit_test(test_msg_to_bus_sets_properties),
		cmocka_unit_test(test_msg_dispatch_calls_handler),
		cmocka_unit_test(test_msg_dispatch_rejects_bad_deliveries),
		cmocka_unit_test(test_msg_dispatch_any_size_in_turn),
		cmocka_unit_test(test_msg_dispatch_from_a_handler),
		cmocka_unit_test(test_msg_validate_event_vms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
