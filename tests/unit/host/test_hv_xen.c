/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xen driver with the real libxenstore against the xenstored test
 * double (tests/fakes/xenstored.h, $XENSTORED_PATH): domains appear and go
 * with @introduceDomain / @releaseDomain, the agent's data/mm keys are read
 * when agent_seq changes, memory/target and static-max follow their watch,
 * and keys that are not numbers or not valid drop the whole sample (cold
 * buckets and reclaim progress too); a reclaim request goes to the
 * domain's control/mm/reclaim. A guest
 * flooding agent_seq does not stall the loop: reads are coalesced and run
 * off it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hv.h"
#include "testutil.h"
#include "tu_hv.h"
#include "xenstored.h"

#define DOM3	"/local/domain/3"

static struct {
	uv_loop_t loop;
	struct hv *hv;
	struct xsd_fake *xsd;
	unsigned added, removed, guests, balloons, rejected;
	char last_added[80];
	bool set_done;
	int set_status;
} T;

static void
set_cb(struct hv *hv, int status, void *arg)
{
	T.set_done = true;
	T.set_status = status;
}

static bool c_set(void) { return T.set_done; }

static void
event_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	switch (ev) {
	case HV_EV_ADDED:
		T.added++;
		snprintf(T.last_added, sizeof(T.last_added), "%s", vm->id);
		break;
	case HV_EV_REMOVED:
		T.removed++;
		break;
	case HV_EV_GUEST:
		T.guests++;
		break;
	case HV_EV_BALLOON:
		T.balloons++;
		break;
	case HV_EV_REJECTED:
		T.rejected++;
		break;
	}
}

static struct hv_vm *
find(const char *id)
{
	return tu_hv_find(T.hv, id);
}

static bool
run_until(bool (*cond)(void))
{
	return tu_run_until_fn(&T.loop, cond, 5000);
}

static uint64_t want_total;
static bool
c_total(void)
{
	struct hv_vm *vm = find("web");

	return vm != NULL && vm->guest != NULL && vm->guest->meminfo &&
	    vm->guest->meminfo->total_kib == want_total;
}

static uint64_t want_target;
static bool
c_target(void)
{
	struct hv_vm *vm = find("web");

	return vm != NULL && vm->target_known &&
	    vm->balloon_target_kib == want_target;
}

static bool c_dom7(void) { return find("domain-7") != NULL; }
static bool c_web_gone(void) { return find("web") == NULL; }

static unsigned want_bad;
static bool
c_bad(void)
{
	struct hv_stats st;

	hv_get_stats(T.hv, &st);
	return st.frames_undecodable + st.frames_invalid >= want_bad;
}

/* A xenstored with domain 3 "web" (1 GB target, 2 GB maximum) and its
 * agent's first keys, but no agent_seq yet. Returns the temporary
 * directory, malloc'd. */
static char *
xsd_up(void)
{
	char *dir;

	memset(&T, 0, sizeof(T));
	dir = tu_tmpdir();
	T.xsd = xsd_fake_start(dir, 0);	/* dom0's, the host's */
	assert_non_null(T.xsd);
	setenv("XENSTORED_PATH", xsd_fake_path(T.xsd), 1);
	xsd_fake_write(T.xsd, DOM3 "/name", "web");
	xsd_fake_write(T.xsd, DOM3 "/memory/target", "1048576");
	xsd_fake_write(T.xsd, DOM3 "/memory/static-max", "2097152");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/total_kib", "1000000");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/free_kib", "400000");
	return dir;
}

/* The driver on T.loop, once it has read web's first sample. */
static void
hv_up(void)
{
	struct hv_config cfg = { .type = HV_TYPE_XEN, .event_cb = event_cb };

	uv_loop_init(&T.loop);
	T.hv = hv_new(&T.loop, &cfg);
	assert_non_null(T.hv);
	assert_int_equal(hv_start(T.hv), 0);
	want_total = 1000000;
	assert_true(run_until(c_total));
}

/* Close the driver and the xenstored of xsd_up(), remove dir (freed). */
static void
hv_down(char *dir)
{
	hv_close(T.hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	xsd_fake_stop(T.xsd);
	unsetenv("XENSTORED_PATH");
	tu_rmtree(dir);
	free(dir);
}

static void
test_hv_xen_driver(void **state)
{
	struct hv_stats st;
	struct hv_vm *vm;
	char *dir;
	unsigned g;

	dir = xsd_up();
	xsd_fake_write(T.xsd, "/local/domain/0/name", "Domain-0");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/psi/some_avg10_pct", "1.50");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/time_ms", "1700000000000");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "1");

	/* Domain 3 is a VM, dom0 is not; what the agent wrote is read. */
	hv_up();
	assert_int_equal(hv_vm_count(T.hv), 1);
	vm = find("web");
	assert_true(vm->max_known);
	assert_int_equal(vm->max_kib, 2097152);
	assert_int_equal(vm->balloon_target_kib, 1048576);
	assert_int_equal(vm->guest->meminfo->free_kib, 400000);
	assert_true(vm->guest->psi->some_avg10_pct == 1.5);
	assert_int_equal(vm->guest->agent_seq, 1);
	assert_int_equal(vm->guest->time_ms, 1700000000000ull);
	assert_null(vm->guest->vmstat);
	assert_string_equal(vm->guest->vm_id, "web");

	/* A new report: fields first, agent_seq last. */
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/total_kib", "900000");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "2");
	want_total = 900000;
	assert_true(run_until(c_total));

	/* Hostile keys drop the whole sample, counted. */
	g = T.guests;
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/free_kib", "12abc");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "3");
	want_bad = 1;
	assert_true(run_until(c_bad));
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/free_kib", "1");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/meminfo/total_kib",
	    "9999999999999999999");
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "4");
	want_bad = 2;
	assert_true(run_until(c_bad));
	hv_get_stats(T.hv, &st);
	assert_int_equal(st.frames_undecodable, 1);
	assert_int_equal(st.frames_invalid, 1);
	assert_int_equal(T.rejected, 2);
	assert_int_equal(T.guests, g);
	assert_int_equal(find("web")->guest->meminfo->total_kib, 900000);

	/* The toolstack moves the target. */
	xsd_fake_write(T.xsd, DOM3 "/memory/target", "524288");
	want_target = 524288;
	assert_true(run_until(c_target));

	/* The write side: memory/target within static-max, read back, and
	 * completed on the loop, not inside the call. */
	T.set_done = false;
	assert_int_equal(hv_set_target(T.hv, "web", 786432, set_cb, NULL), 0);
	assert_false(T.set_done);
	assert_true(run_until(c_set));
	assert_int_equal(T.set_status, 0);
	{
		char *v = xsd_fake_read(T.xsd, DOM3 "/memory/target");

		assert_string_equal(v, "786432");
		free(v);
	}
	assert_int_equal(find("web")->balloon_target_kib, 786432);
	assert_int_equal(hv_set_target(T.hv, "web", 2097153, set_cb, NULL),
	    -ERANGE);
	assert_int_equal(hv_set_target(T.hv, "nope", 1, set_cb, NULL),
	    -ENOENT);
	/* hv_refresh reads what the toolstack wrote. */
	xsd_fake_write(T.xsd, DOM3 "/memory/target", "700000");
	T.set_done = false;
	assert_int_equal(hv_refresh(T.hv, "web", set_cb, NULL), 0);
	assert_true(run_until(c_set));
	assert_int_equal(find("web")->balloon_target_kib, 700000);

	/* A domain with a name that is not an id. */
	xsd_fake_write(T.xsd, "/local/domain/7/name", "bad name!");
	xsd_fake_fire(T.xsd, "@introduceDomain");
	assert_true(run_until(c_dom7));
	assert_string_equal(T.last_added, "domain-7");

	/* Domain 3 is destroyed. */
	xsd_fake_rm(T.xsd, DOM3);
	xsd_fake_fire(T.xsd, "@releaseDomain");
	assert_true(run_until(c_web_gone));
	assert_int_equal(T.removed, 1);
	assert_int_equal(hv_vm_count(T.hv), 1);

	hv_down(dir);
}

static uint64_t want_seq;
static bool
c_seq(void)
{
	struct hv_vm *vm = find("web");

	return vm != NULL && vm->guest != NULL &&
	    vm->guest->agent_seq == want_seq;
}

/* One more report of web's agent, its keys set (value NULL: removed)
 * before agent_seq; waits until it is read or refused. */
static void
report(unsigned seq, const char *const *kv)
{
	char v[32];

	for (; kv[0] != NULL; kv += 2) {
		if (kv[1] != NULL)
			xsd_fake_write(T.xsd, kv[0], kv[1]);
		else
			xsd_fake_rm(T.xsd, kv[0]);
	}
	snprintf(v, sizeof(v), "%u", seq);
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", v);
}

#define C(i, k)	DOM3 "/data/mm/cold/" #i "/" #k
#define R(k)	DOM3 "/data/mm/reclaim/" #k

/*
 * Cold buckets and reclaim progress under data/mm/cold/<i>/ and reclaim/
 * surface in the guest sample; a value that is not a number, a bucket
 * after a gap or a fifth one refuse the sample (undecodable), as do
 * values msg_validate() refuses (invalid): an unknown state, a stall
 * above 100 %, a status without seq. The last good sample stays. Then
 * hv_reclaim() puts the request in the domain's control/mm/reclaim.
 */
static void
test_hv_xen_cold_reclaim(void **state)
{
	static const char *const good[] = {
		C(0, idle_ms), "60000", C(0, anon_kib), "1024",
		C(0, file_kib), "2048", C(1, idle_ms), "120000",
		C(1, anon_kib), "512", C(1, file_kib), "0",
		R(seq), "7", R(reclaimed_kib), "65536", R(state), "2",
		R(stall_pct), "1.25", NULL,
	};
	static const char *const not_number[] = { C(1, anon_kib), "5x",
		NULL };
	static const char *const gap[] = { C(1, anon_kib), "512",
		C(3, idle_ms), "1", C(3, anon_kib), "1", C(3, file_kib), "1",
		NULL };
	static const char *const fifth[] = { C(2, idle_ms), "1",
		C(4, idle_ms), "1", NULL };
	static const char *const bad_state[] = { C(2, idle_ms), NULL,
		C(3, idle_ms), NULL, C(3, anon_kib), NULL, C(3, file_kib),
		NULL, C(4, idle_ms), NULL, R(state), "9", NULL };
	static const char *const stall[] = { R(state), "3",
		R(stall_pct), "150.00", NULL };
	static const char *const no_seq[] = { R(stall_pct), "2.00",
		R(seq), NULL, NULL };
	static const char *const none[] = { C(0, idle_ms), NULL,
		C(0, anon_kib), NULL, C(0, file_kib), NULL, C(1, idle_ms),
		NULL, C(1, anon_kib), NULL, C(1, file_kib), NULL,
		R(reclaimed_kib), NULL, R(state), NULL, R(stall_pct), NULL,
		NULL };
	static const char *const *const bad[] = {
		not_number, gap, fifth, bad_state, stall, no_seq,
	};
	const Mm__V1__GuestStats *g;
	struct hv_stats st;
	char *dir, *v;
	size_t i;

	(void)state;
	dir = xsd_up();
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "1");
	hv_up();

	report(2, good);
	want_seq = 2;
	assert_true(run_until(c_seq));
	g = find("web")->guest;
	assert_int_equal(g->n_cold, 2);
	assert_int_equal(g->cold[0]->idle_ms, 60000);
	assert_int_equal(g->cold[0]->anon_kib, 1024);
	assert_int_equal(g->cold[0]->file_kib, 2048);
	assert_int_equal(g->cold[1]->idle_ms, 120000);
	assert_true(g->cold[1]->has_file_kib);
	assert_int_equal(g->cold[1]->file_kib, 0);
	assert_non_null(g->reclaim);
	assert_int_equal(g->reclaim->seq, 7);
	assert_int_equal(g->reclaim->reclaimed_kib, 65536);
	assert_int_equal(g->reclaim->state,
	    MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE);
	assert_true(g->reclaim->stall_pct == 1.25);

	/* Each one after the other: the first three undecodable, the
	 * others invalid. */
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		report(3 + (unsigned)i, bad[i]);
		want_bad = 1 + (unsigned)i;
		assert_true(run_until(c_bad));
	}
	hv_get_stats(T.hv, &st);
	assert_int_equal(st.frames_undecodable, 3);
	assert_int_equal(st.frames_invalid, 3);
	assert_int_equal(T.rejected, 6);
	assert_int_equal(find("web")->guest->agent_seq, 2);
	assert_int_equal(find("web")->guest->n_cold, 2);

	/* Keys removed: no buckets, no status. */
	report(9, none);
	want_seq = 9;
	assert_true(run_until(c_seq));
	g = find("web")->guest;
	assert_int_equal(g->n_cold, 0);
	assert_null(g->reclaim);
	assert_int_equal(g->meminfo->total_kib, 1000000);

	/* The request, for the agent to read: one line, in one write. */
	assert_int_equal(hv_reclaim(T.hv, "web", 12, 262144, 7.5), 0);
	v = xsd_fake_read(T.xsd, DOM3 "/control/mm/reclaim");
	assert_non_null(v);
	assert_string_equal(v, "12 262144 7.50");
	free(v);
	assert_int_equal(hv_reclaim(T.hv, "web", 0, 1024, 10), -EINVAL);
	assert_int_equal(hv_reclaim(T.hv, "web", 13, 1024, 101), -EINVAL);
	assert_int_equal(hv_reclaim(T.hv, "nope", 13, 1024, 10), -ENOENT);
	v = xsd_fake_read(T.xsd, DOM3 "/control/mm/reclaim");
	assert_string_equal(v, "12 262144 7.50");
	free(v);

	hv_down(dir);
}

/* Without a xenstored the driver says so instead of hanging. */
static void
test_hv_xen_no_xenstored(void **state)
{
	struct hv_config cfg = { .type = HV_TYPE_XEN };
	uv_loop_t loop;
	struct hv *hv;

	setenv("XENSTORED_PATH", "/nonexistent/socket", 1);
	uv_loop_init(&loop);
	hv = hv_new(&loop, &cfg);
	assert_non_null(hv);
	assert_true(hv_start(hv) < 0);
	hv_close(hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
	unsetenv("XENSTORED_PATH");
}

/* ---- a guest flooding agent_seq ---- */

#define FLOOD_PER_S	2000
#define FLOOD_MS	3000
#define LAG_TICK_MS	100

static struct {
	uint64_t last_tick_ms;
	uint64_t max_late_ms;
	unsigned ticks;
	bool flood_done;	/* written by the flood thread */
	unsigned long writes;
} F;

static void
lag_cb(uv_timer_t *t)
{
	uint64_t now = uv_now(t->loop), late;

	/* uv_now() is the loop's time at this iteration's start: update
	 * it, or a stalled loop would not show. */
	uv_update_time(t->loop);
	now = uv_now(t->loop);
	late = now - F.last_tick_ms > LAG_TICK_MS ?
	    now - F.last_tick_ms - LAG_TICK_MS : 0;
	if (late > F.max_late_ms)
		F.max_late_ms = late;
	F.last_tick_ms = now;
	F.ticks++;
}

/* What a hostile guest does: agent_seq as fast as xenstored takes it. */
static void *
flood_main(void *arg)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	char v[32];
	unsigned long i, n = (unsigned long)FLOOD_PER_S * FLOOD_MS / 1000;

	for (i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%lu", 100 + i);
		xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", v);
		/* 20 writes per 10 ms: 2,000 a second. */
		if (i % (FLOOD_PER_S / 100) == FLOOD_PER_S / 100 - 1)
			nanosleep(&ts, NULL);
	}
	__atomic_store_n(&F.writes, n, __ATOMIC_RELEASE);
	__atomic_store_n(&F.flood_done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool
c_flood_read(void)
{
	struct hv_vm *vm = find("web");
	unsigned long n = __atomic_load_n(&F.writes, __ATOMIC_ACQUIRE);

	return __atomic_load_n(&F.flood_done, __ATOMIC_ACQUIRE) &&
	    vm != NULL && vm->guest != NULL &&
	    vm->guest->agent_seq == 100 + n - 1;
}

static void
test_hv_xen_flood(void **state)
{
	struct hv_stats st;
	uv_timer_t lag;
	pthread_t th;
	uint64_t t0;
	char *dir;

	memset(&F, 0, sizeof(F));
	dir = xsd_up();
	xsd_fake_write(T.xsd, DOM3 "/data/mm/agent_seq", "1");
	hv_up();

	uv_timer_init(&T.loop, &lag);
	F.last_tick_ms = uv_now(&T.loop);
	uv_timer_start(&lag, lag_cb, LAG_TICK_MS, LAG_TICK_MS);
	t0 = uv_now(&T.loop);
	assert_int_equal(pthread_create(&th, NULL, flood_main, NULL), 0);
	/* The loop keeps its period during the flood, and the guest's
	 * latest sample is read soon after it ends. */
	assert_true(tu_run_until_fn(&T.loop, c_flood_read, 60000));
	pthread_join(th, NULL);
	hv_get_stats(T.hv, &st);
	print_message("%lu agent_seq writes in %d ms: %u guest samples "
	    "(%llu watch events folded), %u timer ticks, the latest %llu ms "
	    "late, done after %llu ms\n", F.writes, FLOOD_MS, T.guests,
	    (unsigned long long)st.watch_coalesced, F.ticks,
	    (unsigned long long)F.max_late_ms,
	    (unsigned long long)(uv_now(&T.loop) - t0));
	assert_true(F.max_late_ms < 500);
	/* One read per VM at a time, at most every 100 ms or so. */
	assert_true(T.guests < 2 * FLOOD_MS / 100);
	assert_true(T.guests >= 2);
	assert_true(st.watch_coalesced > F.writes / 2);

	uv_close((uv_handle_t *)&lag, NULL);
	hv_down(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hv_xen_driver),
		cmocka_unit_test(test_hv_xen_cold_reclaim),
		cmocka_unit_test(test_hv_xen_no_xenstored),
		cmocka_unit_test(test_hv_xen_flood),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
