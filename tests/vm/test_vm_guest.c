/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real guests against the host's kvm driver (common/hv/kvm.c): a booted
 * test guest's mm-guest-agent frames arrive over virtio-serial with sane
 * numbers, a QMP balloon command changes what the guest reports within a
 * bounded time (and the time is printed for docs/benchmarks.md), and the
 * mono workload's ramp shows in the reports.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>

#include <cmocka.h>

#include "hv.h"
#include "log.h"
#include "testutil.h"
#include "vm.h"

#define MIB		1024ULL
#define GUEST_MIB	512

/* What the test saw of one VM through the driver. */
struct seen {
	char id[MSG_ID_MAX + 1];
	unsigned samples;
	bool seq_regressed;
	uint64_t first_seq, last_seq;
	uint64_t total_kib, available_kib, anon_kib;
	uint64_t max_anon_kib;
	uint64_t balloon_kib;
	uint64_t balloon_rx_ms;	/* uv_now() of the last balloon change */
	int source;
	uint64_t rx_ms;		/* uv_now() of the last sample */
};

struct host {
	uv_loop_t loop;
	struct hv *hv;
	char *dir;
	struct seen vms[4];
	unsigned nvms;
	int done_status;
	bool done;
};

static struct host host;

static struct seen *
seen_get(struct host *h, const char *id)
{
	unsigned i;

	for (i = 0; i < h->nvms; i++)
		if (strcmp(h->vms[i].id, id) == 0)
			return &h->vms[i];
	if (h->nvms == sizeof(h->vms) / sizeof(h->vms[0]))
		return NULL;
	snprintf(h->vms[h->nvms].id, sizeof(h->vms[0].id), "%s", id);
	return &h->vms[h->nvms++];
}

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	struct host *h = arg;
	struct seen *s = seen_get(h, vm->id);
	const Mm__V1__GuestStats *g = vm->guest;

	(void)hv;
	if (s == NULL)
		return;
	if (vm->balloon_known && vm->balloon_actual_kib != s->balloon_kib) {
		s->balloon_kib = vm->balloon_actual_kib;
		s->balloon_rx_ms = uv_now(&h->loop);
	}
	if (ev != HV_EV_GUEST || g == NULL || !g->has_agent_seq)
		return;
	if (s->samples == 0)
		s->first_seq = g->agent_seq;
	else if (g->agent_seq <= s->last_seq)
		s->seq_regressed = true;
	s->last_seq = g->agent_seq;
	s->samples++;
	s->source = g->has_source ? (int)g->source : -1;
	s->rx_ms = uv_now(&h->loop);
	if (g->meminfo != NULL) {
		s->total_kib = g->meminfo->total_kib;
		s->available_kib = g->meminfo->available_kib;
		s->anon_kib = g->meminfo->anon_kib;
		if (s->anon_kib > s->max_anon_kib)
			s->max_anon_kib = s->anon_kib;
	}
}

static void
wake_cb(uv_timer_t *t)
{
	(void)t;
}

/* Run the loop until pred(s, arg) holds or timeout_ms passes. */
static bool
wait_for(const char *id, bool (*pred)(const struct seen *, uint64_t),
    uint64_t arg, unsigned timeout_ms)
{
	uint64_t deadline;
	uv_timer_t wake;
	bool ok = false;

	uv_update_time(&host.loop);
	deadline = uv_now(&host.loop) + timeout_ms;
	uv_timer_init(&host.loop, &wake);
	uv_timer_start(&wake, wake_cb, 20, 20);
	while (uv_now(&host.loop) < deadline) {
		struct seen *s = seen_get(&host, id);

		if (s != NULL && pred(s, arg)) {
			ok = true;
			break;
		}
		uv_run(&host.loop, UV_RUN_ONCE);
	}
	uv_close((uv_handle_t *)&wake, NULL);
	uv_run(&host.loop, UV_RUN_NOWAIT);
	return ok;
}

static bool
balloon_is(const struct seen *s, uint64_t kib)
{
	return s->balloon_kib == kib;
}

static bool
has_samples(const struct seen *s, uint64_t n)
{
	return s->samples >= n;
}

static bool
total_at_most(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->total_kib <= kib;
}

static bool
total_at_least(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->total_kib >= kib;
}

static bool
available_at_most(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->available_kib <= kib;
}

static bool
available_at_least(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->available_kib >= kib;
}

static bool
anon_at_least(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->anon_kib >= kib;
}

static bool
anon_at_most(const struct seen *s, uint64_t kib)
{
	return s->samples > 0 && s->anon_kib <= kib;
}

static void
done_cb(struct hv *hv, int status, void *arg)
{
	(void)hv;
	(void)arg;
	host.done_status = status;
	host.done = true;
}

static void
set_target(const char *id, uint64_t kib)
{
	host.done = false;
	assert_int_equal(hv_set_target(host.hv, id, kib, done_cb, NULL), 0);
	assert_true(tu_run_until(&host.loop, &host.done, 10000));
	assert_int_equal(host.done_status, 0);
}

static int
group_setup(void **state)
{
	struct hv_config c = {
		.type = HV_TYPE_KVM,
		.rescan_ms = 200,
		.poll_ms = 200,
		.event_cb = event_cb,
		.event_arg = &host,
	};

	(void)state;
	vm_require();
	/* The driver writes to QMP sockets of guests a test just killed. */
	signal(SIGPIPE, SIG_IGN);
	if (getenv("MM_TEST_DEBUG") != NULL)
		log_init("test_vm_guest", 1, false);
	host.dir = tu_tmpdir();
	c.vm_dir = host.dir;
	assert_int_equal(uv_loop_init(&host.loop), 0);
	host.hv = hv_new(&host.loop, &c);
	assert_non_null(host.hv);
	assert_int_equal(hv_start(host.hv), 0);
	return 0;
}

static int
group_teardown(void **state)
{
	(void)state;
	hv_close(host.hv, NULL, NULL);
	tu_loop_finish(&host.loop);
	tu_rmtree(host.dir);
	free(host.dir);
	return 0;
}

static struct vm *
boot(const char *id, unsigned mem_mib, const char *workload)
{
	struct vm_opts o = {
		.id = id,
		.dir = host.dir,
		.mem_mib = mem_mib,
		.workload = workload,
		.interval = "250ms",
		.resend = "500ms",
	};
	struct vm *vm = vm_start(&o);

	assert_non_null(vm);
	return vm;
}

/* (a) The agent's frames reach the kvm driver: MemTotal below the -m
 * size and plausible for it, agent_seq increasing, source AGENT. */
static void
test_vm_guest_agent_reports(void **state)
{
	struct vm *vm = boot("stats", GUEST_MIB, NULL);
	struct seen *s;

	(void)state;
	if (!wait_for("stats", has_samples, 8, 15000)) {
		struct hv_stats st;

		vm_dump_console(vm);
		hv_get_stats(host.hv, &st);
		s = seen_get(&host, "stats");
		fail_msg("%u agent samples in 15 s, not 8 (driver: %llu frames "
		    "accepted, %llu agent resets)", s->samples,
		    (unsigned long long)st.frames,
		    (unsigned long long)st.agent_resets);
	}
	s = seen_get(&host, "stats");
	printf("vm \"stats\": %u samples, seq %llu..%llu, MemTotal %llu KiB, "
	    "MemAvailable %llu KiB, balloon %llu KiB\n", s->samples,
	    (unsigned long long)s->first_seq,
	    (unsigned long long)s->last_seq,
	    (unsigned long long)s->total_kib,
	    (unsigned long long)s->available_kib,
	    (unsigned long long)s->balloon_kib);
	assert_false(s->seq_regressed);
	assert_true(s->last_seq >= s->first_seq + 7);
	assert_int_equal(s->source, MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT);
	/* The kernel keeps some of -m for itself, never more than 25 %. */
	assert_true(s->total_kib <= GUEST_MIB * MIB);
	assert_true(s->total_kib >= GUEST_MIB * MIB * 3 / 4);
	assert_true(s->available_kib <= s->total_kib);
	assert_true(s->available_kib >= s->total_kib / 2);
	assert_int_equal(s->balloon_kib, GUEST_MIB * MIB);
	vm_stop(vm);
}

static double
ms_since(uint64_t t0)
{
	uv_update_time(&host.loop);
	return (double)(uv_now(&host.loop) - t0);
}

/*
 * Balloon guest id from GUEST_MIB to 320 MiB and back, waiting for the
 * agent's reports to show each step, and print how long that took. With
 * deflate-on-oom (what mm asks for) Linux's balloon driver leaves MemTotal
 * alone and the inflated pages count as allocated, so MemAvailable is what
 * drops; without it MemTotal drops too. Either way by the balloon's size
 * (less 10 % slack).
 */
static void
balloon_round_trip(const char *id, bool deflate_on_oom)
{
	const uint64_t low_kib = 320 * MIB, drop_kib = GUEST_MIB * MIB - low_kib;
	struct vm_opts o = {
		.id = id,
		.dir = host.dir,
		.mem_mib = GUEST_MIB,
		.interval = "250ms",
		.resend = "500ms",
		.no_deflate_on_oom = !deflate_on_oom,
	};
	struct vm *vm = vm_start(&o);
	uint64_t t0, total0, avail0;
	struct seen *s;
	double down_ms, up_ms;

	assert_non_null(vm);
	if (!wait_for(id, has_samples, 3, 30000)) {
		vm_dump_console(vm);
		fail_msg("no agent samples in 30 s");
	}
	s = seen_get(&host, id);
	total0 = s->total_kib;
	avail0 = s->available_kib;

	uv_update_time(&host.loop);
	t0 = uv_now(&host.loop);
	set_target(id, low_kib);
	if (!wait_for(id, available_at_most, avail0 - drop_kib * 9 / 10,
	    30000) || (!deflate_on_oom && !wait_for(id, total_at_most,
	    total0 - drop_kib * 9 / 10, 5000))) {
		vm_dump_console(vm);
		fail_msg("MemAvailable %llu KiB, MemTotal %llu KiB 30 s after "
		    "ballooning to %llu KiB (before: %llu, %llu)",
		    (unsigned long long)s->available_kib,
		    (unsigned long long)s->total_kib,
		    (unsigned long long)low_kib, (unsigned long long)avail0,
		    (unsigned long long)total0);
	}
	down_ms = ms_since(t0);
	assert_true(wait_for(id, balloon_is, low_kib, 5000));
	printf("vm \"%s\": balloon %llu -> %llu KiB: QMP actual there after "
	    "%.0f ms, the agent reported it after %.0f ms (MemTotal %llu -> "
	    "%llu KiB, MemAvailable %llu -> %llu KiB)\n", id,
	    (unsigned long long)(GUEST_MIB * MIB),
	    (unsigned long long)low_kib, (double)(s->balloon_rx_ms - t0),
	    down_ms,
	    (unsigned long long)total0, (unsigned long long)s->total_kib,
	    (unsigned long long)avail0, (unsigned long long)s->available_kib);
	if (deflate_on_oom)
		assert_int_equal(s->total_kib, total0);

	uv_update_time(&host.loop);
	t0 = uv_now(&host.loop);
	set_target(id, GUEST_MIB * MIB);
	if (!wait_for(id, available_at_least, avail0 - drop_kib / 10, 30000) ||
	    !wait_for(id, total_at_least, total0, 5000))
		fail_msg("MemAvailable %llu KiB, MemTotal %llu KiB 30 s after "
		    "deflating (was %llu, %llu)",
		    (unsigned long long)s->available_kib,
		    (unsigned long long)s->total_kib,
		    (unsigned long long)avail0, (unsigned long long)total0);
	up_ms = ms_since(t0);
	assert_true(wait_for(id, balloon_is, GUEST_MIB * MIB, 5000));
	printf("vm \"%s\": balloon back to %llu KiB: QMP actual there after "
	    "%.0f ms, the agent reported it after %.0f ms\n", id,
	    (unsigned long long)(GUEST_MIB * MIB),
	    (double)(s->balloon_rx_ms - t0), up_ms);
	assert_false(s->seq_regressed);
	vm_stop(vm);
}

/* (b) with deflate-on-oom, as mm runs guests. */
static void
test_vm_guest_balloon(void **state)
{
	(void)state;
	balloon_round_trip("balloon", true);
}

/* (b) without deflate-on-oom: the guest's MemTotal follows the balloon. */
static void
test_vm_guest_balloon_memtotal(void **state)
{
	(void)state;
	balloon_round_trip("balloon-nodoo", false);
}

/* (c) mono 50 MiB -> 300 MiB -> 50 MiB: the guest's anonymous memory in
 * the agent's reports follows the ramp up and back down. */
static void
test_vm_guest_mono_ramp(void **state)
{
	struct vm *vm = boot("mono", 768, "mm_test_mono:50M:300M:25M:300:2000");
	struct seen *s;
	char line[256];

	(void)state;
	if (!wait_for("mono", anon_at_least, 280 * MIB, 60000)) {
		vm_dump_console(vm);
		s = seen_get(&host, "mono");
		fail_msg("anon %llu KiB, not 280 MiB within 60 s of boot",
		    s != NULL ? (unsigned long long)s->anon_kib : 0ULL);
	}
	s = seen_get(&host, "mono");
	printf("vm \"mono\": anon peaked at %llu KiB (MemAvailable %llu KiB)"
	    "\n", (unsigned long long)s->max_anon_kib,
	    (unsigned long long)s->available_kib);
	if (!wait_for("mono", anon_at_most, 80 * MIB, 60000)) {
		vm_dump_console(vm);
		fail_msg("anon still %llu KiB 60 s after the peak",
		    (unsigned long long)s->anon_kib);
	}
	assert_true(vm_wait_console(vm, "mono: done", 10000, line,
	    sizeof(line)));
	assert_true(vm_wait_console(vm, "mm_test_mono exited 0", 5000, NULL,
	    0));
	assert_false(s->seq_regressed);
	vm_stop(vm);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_guest_agent_reports),
		cmocka_unit_test(test_vm_guest_balloon),
		cmocka_unit_test(test_vm_guest_balloon_memtotal),
		cmocka_unit_test(test_vm_guest_mono_ramp),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
