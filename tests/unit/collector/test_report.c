/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's report builder without a broker: VMs as a driver shows
 * them (tu_vm_new()), guest samples handed in as the driver's events do,
 * and a copy of the fixture tree tests/fixtures/host1 as /proc and /sys,
 * with each VM process's statm added. What must reach the HostReport: the
 * host's meminfo, KSM and NUMA figures, a guest's sanitized stats with the
 * host's balloon and resident view, the flag (and counted reason) of a
 * guest the sanitizer distrusts, nothing of a guest's padding and nothing
 * of a sample over the per-guest cap, and stale marks on old samples.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "testutil.h"
#include "tu_hv.h"

#define MIB	1024ull
#define GIB	(1024ull * 1024)
#define PID_WEB	4242	/* numa_maps and tasks in the fixture */
#define PID_LIAR 4300
#define STALE_MS 5000

enum { F_INCONS = 1, F_CLAMP = 2, F_RATE = 4, F_NONMONO = 8, F_MISSING = 16,
    F_HOST_VIEW = 32 };

static struct {
	char *tmp, *proc, *sys, *fixture;
	struct collector c;
	struct hv_vm *vms[4];
	size_t nvms;
} T;

/* ---- the fixture tree, copied so that statm files can be added ---- */

static int
copy_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char buf[4096];
	size_t n;
	FILE *f;

	if (type != FTW_F)
		return 0;
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	free(tu_write_file(T.tmp, path + strlen(T.fixture) + 1, buf));
	return 0;
}

/* <pid>/statm of a process holding resident_kib. */
static void
write_statm(pid_t pid, uint64_t resident_kib)
{
	uint64_t page_kib = (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
	char name[64], text[128];

	snprintf(name, sizeof(name), "proc/%d/statm", (int)pid);
	snprintf(text, sizeof(text), "900000 %llu 3000 700 0 200000 0\n",
	    (unsigned long long)(resident_kib / page_kib));
	free(tu_write_file(T.tmp, name, text));
}

static int
setup(void **state)
{
	struct collector_conf *cf = &T.c.conf;

	memset(&T, 0, sizeof(T));
	T.fixture = tu_source_path("tests/fixtures/host1");
	T.tmp = tu_tmpdir();
	assert_int_equal(nftw(T.fixture, copy_cb, 16, FTW_PHYS), 0);
	assert_true(asprintf(&T.proc, "%s/proc", T.tmp) > 0);
	assert_true(asprintf(&T.sys, "%s/sys", T.tmp) > 0);
	write_statm(PID_WEB, 1 * GIB);
	write_statm(PID_LIAR, 256 * MIB);

	snprintf(T.c.host_id, sizeof(T.c.host_id), "host-a");
	cf->proc_root = T.proc;
	cf->sys_root = T.sys;
	cf->interval_ms = 1000;
	cf->stale_ms = STALE_MS;
	cf->fast_rise_kib = 32 * MIB;
	cf->numa = true;
	cf->numa_interval_ms = 10000;
	cf->driver = HV_TYPE_KVM;
	T.c.lim.tolerance_kib = 50 * MIB;
	T.c.lim.rate_per_s = 5;
	T.c.lim.psi_jump_pct = 5.0;
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	for (i = 0; i < T.nvms; i++) {
		cvm_free(T.vms[i]->user);
		tu_vm_free(T.vms[i]);
	}
	tu_rmtree(T.tmp);
	free(T.tmp);
	free(T.proc);
	free(T.sys);
	free(T.fixture);
	return 0;
}

/* ---- VMs and their guests ---- */

/* A VM the collector follows, as after HV_EV_ADDED. */
static struct hv_vm *
add_vm(const char *id, pid_t pid, uint64_t actual_kib, uint64_t max_kib)
{
	struct hv_vm *vm = tu_vm_new(id, pid, actual_kib, max_kib);

	vm->user = cvm_new();
	assert_non_null(vm->user);
	T.vms[T.nvms++] = vm;
	return vm;
}

/* A sample of a guest of total_kib with avail_kib available and pressure
 * avg10 (avg60 2%). */
static Mm__V1__GuestStats *
sample(uint64_t seq, uint64_t total_kib, uint64_t avail_kib, double avg10)
{
	Mm__V1__GuestStats *g = calloc(1, sizeof(*g));
	Mm__V1__Meminfo *mi = calloc(1, sizeof(*mi));
	Mm__V1__Psi *p = calloc(1, sizeof(*p));

	assert_true(g != NULL && mi != NULL && p != NULL);
	mm__v1__guest_stats__init(g);
	mm__v1__meminfo__init(mi);
	mm__v1__psi__init(p);
	g->has_agent_seq = g->has_time_ms = 1;
	g->agent_seq = seq;
	g->time_ms = tu_wall_ms();
	mi->has_total_kib = mi->has_free_kib = mi->has_available_kib = 1;
	mi->total_kib = total_kib;
	mi->available_kib = avail_kib;
	mi->free_kib = avail_kib / 2;
	p->has_some_avg10_pct = p->has_some_avg60_pct = 1;
	p->some_avg10_pct = avg10;
	p->some_avg60_pct = 2.0;
	g->meminfo = mi;
	g->psi = p;
	return g;
}

/* The guest of vm sends g at loop time mono_ms, as HV_EV_GUEST; what
 * report_take_guest() says (report early). */
static bool
feed(struct hv_vm *vm, Mm__V1__GuestStats *g, uint64_t mono_ms)
{
	tu_vm_set_guest(vm, g, mono_ms);
	return report_take_guest(&T.c, vm, mono_ms);
}

static struct san_vm *
san_of(struct hv_vm *vm)
{
	return &((struct cvm *)vm->user)->san;
}

static void
build(struct report *rep, uint64_t mono_ms)
{
	assert_int_equal(report_build(&T.c, T.vms, T.nvms, mono_ms, rep), 0);
	/* What would go on the bus is a valid HostReport. */
	assert_int_equal(msg_validate(MSG_HOST_REPORT, &rep->msg.base, NULL,
	    0), 0);
}

static const Mm__V1__GuestStats *
guest(const struct report *rep, const char *id)
{
	size_t i;

	for (i = 0; i < rep->msg.n_guests; i++)
		if (strcmp(rep->msg.guests[i]->vm_id, id) == 0)
			return rep->msg.guests[i];
	fail_msg("no guest \"%s\" in the report", id);
	return NULL;
}

/* ---- tests ---- */

/* The host's own figures, from the fixture /proc and /sys. */
static void
test_report_host_stats(void **state)
{
	const Mm__V1__HostStats *hs;
	struct report rep;

	build(&rep, 1000);
	assert_string_equal(rep.msg.host_id, "host-a");
	assert_int_equal(rep.msg.seq, 0);
	assert_int_equal(rep.msg.interval_ms, 1000);
	assert_int_equal(rep.msg.hypervisor,
	    MM__V1__HYPERVISOR__HYPERVISOR_KVM);
	assert_int_equal(rep.msg.n_guests, 0);
	hs = rep.msg.host;
	assert_non_null(hs->meminfo);
	assert_int_equal(hs->meminfo->total_kib, 16303412);
	assert_int_equal(hs->meminfo->available_kib, 8765432);
	assert_non_null(hs->vmstat);
	assert_non_null(hs->psi);
	assert_non_null(hs->ksm);
	assert_int_equal(hs->ksm->shared_pages, 1000);
	assert_int_equal(hs->ksm->sharing_pages, 5000);
	assert_non_null(hs->ksm->settings);
	assert_true(hs->ksm->has_ksmd_cpu_ms);
	assert_int_equal(hs->ksm->ksmd_cpu_ms,
	    400 * 1000 / sysconf(_SC_CLK_TCK));
	assert_int_equal(hs->n_numa_nodes, 2);
	assert_int_equal(hs->numa_nodes[1]->node, 1);
	assert_int_equal(hs->numa_nodes[1]->total_kib, 8151706);
	assert_int_equal(hs->n_vm_numa, 0);
	report_release(&rep);

	/* Each report its own seq; the driver named. */
	T.c.conf.driver = HV_TYPE_SIM;
	build(&rep, 2000);
	assert_int_equal(rep.msg.seq, 1);
	assert_int_equal(rep.msg.hypervisor,
	    MM__V1__HYPERVISOR__HYPERVISOR_SIM);
	report_release(&rep);

	/* A host without KSM or NUMA: those stay out, the rest is there. */
	tu_rmtree(T.sys);
	build(&rep, 3000);
	assert_null(rep.msg.host->ksm);
	assert_int_equal(rep.msg.host->n_numa_nodes, 0);
	assert_non_null(rep.msg.host->meminfo);
	report_release(&rep);
}

/* An honest guest's sample as the report carries it: its numbers, the
 * host's balloon and resident view, its NUMA placement; a VM without a
 * sample yet is a stale stub. */
static void
test_report_guest_stats(void **state)
{
	struct hv_vm *web = add_vm("web", PID_WEB, 2 * GIB, 4 * GIB);
	const Mm__V1__GuestStats *g;
	const Mm__V1__VmNuma *vn;
	struct report rep;

	add_vm("new", 0, 1 * GIB, 2 * GIB);
	assert_false(feed(web, sample(1, 2 * GIB, 1536 * MIB, 1.0), 1000));
	build(&rep, 1500);
	assert_int_equal(rep.msg.n_guests, 2);
	g = guest(&rep, "web");
	assert_int_equal(g->agent_seq, 1);
	assert_int_equal(g->meminfo->total_kib, 2 * GIB);
	assert_int_equal(g->meminfo->available_kib, 1536 * MIB);
	assert_true(g->has_balloon_actual_kib);
	assert_int_equal(g->balloon_actual_kib, 2 * GIB);
	assert_true(g->has_max_kib);
	assert_int_equal(g->max_kib, 4 * GIB);
	assert_true(g->has_host_resident_kib);
	assert_int_equal(g->host_resident_kib, 1 * GIB);
	assert_false(g->stale);
	assert_false(g->pressure_rising);
	assert_int_equal(g->n_flags, 0);

	assert_int_equal(rep.msg.host->n_vm_numa, 1);
	vn = rep.msg.host->vm_numa[0];
	assert_string_equal(vn->vm_id, "web");
	assert_int_equal(vn->n_nodes, 2);
	assert_int_equal(vn->nodes[0]->pages, 2 + 100000 + 3);
	assert_int_equal(vn->nodes[1]->node, 1);
	assert_int_equal(vn->nodes[1]->pages, 162144 + 512 * 512);
	assert_int_equal(vn->n_vcpu_nodes, 2);

	g = guest(&rep, "new");
	assert_true(g->stale);
	assert_null(g->meminfo);
	assert_true(g->has_balloon_actual_kib);
	assert_int_equal(g->balloon_actual_kib, 1 * GIB);
	assert_int_equal(g->max_kib, 2 * GIB);
	report_release(&rep);
}

/* A guest claiming more than its maximum is clamped and flagged, one
 * claiming more use than its process holds is flagged for the host's
 * view, and a guest setting the host's fields does not reach them; each
 * reason is counted for its VM. */
static void
test_report_sanitizer_flags(void **state)
{
	struct hv_vm *big = add_vm("big", 0, 2 * GIB, 4 * GIB);
	struct hv_vm *liar = add_vm("liar", PID_LIAR, 2 * GIB, 4 * GIB);
	struct hv_vm *honest = add_vm("honest", PID_WEB, 2 * GIB, 4 * GIB);
	Mm__V1__GuestStats *s;
	const Mm__V1__GuestStats *g;
	struct report rep;

	s = sample(1, 64 * GIB, 1 * GIB, 1.0);
	s->has_balloon_actual_kib = 1;
	s->balloon_actual_kib = 64 * GIB;
	feed(big, s, 1000);
	feed(liar, sample(1, 2 * GIB, 512 * MIB, 1.0), 1000);
	feed(honest, sample(1, 2 * GIB, 1536 * MIB, 1.0), 1000);
	build(&rep, 1000);

	g = guest(&rep, "big");
	assert_int_equal(tu_guest_flags(g), F_CLAMP);
	assert_int_equal(g->meminfo->total_kib, 4 * GIB);
	assert_int_equal(g->balloon_actual_kib, 2 * GIB);
	assert_int_equal(san_of(big)->count[SAN_TOTAL_ABOVE_MAX], 1);
	assert_int_equal(san_of(big)->count[SAN_OWNED_FIELD], 1);

	g = guest(&rep, "liar");
	assert_int_equal(tu_guest_flags(g), F_HOST_VIEW);
	assert_int_equal(g->host_resident_kib, 256 * MIB);
	assert_int_equal(g->meminfo->available_kib, 512 * MIB);
	assert_int_equal(san_of(liar)->count[SAN_HOST_VIEW], 1);

	g = guest(&rep, "honest");
	assert_int_equal(tu_guest_flags(g), 0);
	assert_int_equal(san_of(honest)->count[SAN_HOST_VIEW], 0);
	report_release(&rep);
}

/* A guest padding its samples with 60 kB of fields mm does not know adds
 * nothing of them to the report; a sample still above the per-guest cap
 * is refused: the report keeps the guest's last good sample, or a stale
 * stub when it had none. */
static void
test_report_guest_size_cap(void **state)
{
	struct hv_vm *pad = add_vm("pad", 0, 2 * GIB, 4 * GIB);
	struct hv_vm *huge = add_vm("huge", 0, 2 * GIB, 4 * GIB);
	Mm__V1__GuestStats *s;
	const Mm__V1__GuestStats *g;
	struct report rep;
	size_t bytes;

	s = sample(1, 2 * GIB, 1536 * MIB, 1.0);
	tu_msg_add_unknown(&s->base, 1000, 60000);
	feed(pad, s, 1000);
	build(&rep, 1000);
	g = guest(&rep, "pad");
	bytes = msg_packed_size(&g->base);
	print_message("padded guest: %zu bytes in the report\n", bytes);
	assert_true(bytes < 1000);
	assert_int_equal(g->base.n_unknown_fields, 0);
	assert_int_equal(tu_guest_flags(g), F_CLAMP);
	assert_int_equal(san_of(pad)->count[SAN_UNKNOWN_FIELDS], 1);
	report_release(&rep);

	/* A cap below any sample: both refused. */
	T.c.lim.guest_max_bytes = 32;
	feed(pad, sample(2, 3 * GIB, 1 * GIB, 1.0), 1100);
	feed(huge, sample(1, 2 * GIB, 1 * GIB, 1.0), 1100);
	build(&rep, 1100);
	g = guest(&rep, "pad");
	assert_int_equal(g->agent_seq, 1);
	assert_int_equal(g->meminfo->total_kib, 2 * GIB);
	assert_int_equal(san_of(pad)->count[SAN_TOO_BIG], 1);
	g = guest(&rep, "huge");
	assert_null(g->meminfo);
	assert_true(g->stale);
	assert_int_equal(san_of(huge)->count[SAN_TOO_BIG], 1);
	report_release(&rep);
}

/* A sample older than stale_after is reported stale, and its pressure
 * rise is old news; a fresh rise is reported once, early. */
static void
test_report_stale_and_rising(void **state)
{
	struct hv_vm *vm = add_vm("slow", 0, 2 * GIB, 4 * GIB);
	const Mm__V1__GuestStats *g;
	struct report rep;

	assert_false(feed(vm, sample(1, 2 * GIB, 1 * GIB, 1.0), 1000));
	assert_true(feed(vm, sample(2, 2 * GIB, 1 * GIB, 20.0), 1100));
	build(&rep, 1200);
	g = guest(&rep, "slow");
	assert_false(g->stale);
	assert_true(g->pressure_rising);
	report_release(&rep);
	/* Reported: not again. */
	build(&rep, 1300);
	assert_false(guest(&rep, "slow")->pressure_rising);
	report_release(&rep);

	/* Rising, but old by its first report. */
	assert_true(feed(vm, sample(3, 2 * GIB, 1 * GIB, 40.0), 2000));
	build(&rep, 2000 + STALE_MS + 1);
	g = guest(&rep, "slow");
	assert_true(g->stale);
	assert_false(g->pressure_rising);
	assert_int_equal(g->agent_seq, 3);
	report_release(&rep);
	/* stale_after itself is still fresh. */
	assert_true(feed(vm, sample(4, 2 * GIB, 1 * GIB, 45.0), 10000));
	build(&rep, 10000 + STALE_MS);
	g = guest(&rep, "slow");
	assert_false(g->stale);
	assert_true(g->pressure_rising);
	report_release(&rep);
}

/* A guest using fast_rise more than in the last report is reported early;
 * one the host does not know the size of yet waits. */
static void
test_report_fast_rise(void **state)
{
	struct hv_vm *vm = add_vm("grow", 0, 2 * GIB, 4 * GIB);
	struct hv_vm *unknown = add_vm("unsized", 0, 0, 0);
	struct report rep;

	assert_false(feed(vm, sample(1, 2 * GIB, 1536 * MIB, 1.0), 1000));
	build(&rep, 1000);
	report_release(&rep);
	/* 512 MiB used in the report; 16 MiB more is not news, 32 is. */
	assert_false(feed(vm, sample(2, 2 * GIB, 1520 * MIB, 1.0), 1100));
	assert_true(feed(vm, sample(3, 2 * GIB, 1504 * MIB, 1.0), 1200));

	assert_false(feed(unknown, sample(1, 2 * GIB, 1 * GIB, 50.0), 1200));
	build(&rep, 1200);
	assert_null(guest(&rep, "unsized")->meminfo);
	assert_int_equal(san_of(unknown)->count[SAN_RATE], 0);
	report_release(&rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_report_host_stats, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_report_guest_stats, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_report_sanitizer_flags,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_guest_size_cap,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_stale_and_rising,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_report_fast_rise, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
