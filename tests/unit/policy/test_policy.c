/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine: worked examples of each behaviour of the pressure
 * policy, the baselines against their sources' formulas computed by hand,
 * policy validation, and invariants over random inputs (limits, capacity,
 * monotonic in pressure, no oscillation on steady input).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "guestmem.h"
#include "policy.h"

#define MiB	1024ull
#define GiB	(1024ull * 1024ull)
#define T0	1700000000000ull

/* A guest using used_kib of a balloon at cur_kib (actual == target). */
static struct pe_guest
guest(const char *id, uint64_t used_kib, uint64_t cur_kib, uint64_t max_kib)
{
	struct pe_guest g = {
		.vm_id = id,
		.has_meminfo = true,
		.total_kib = cur_kib,
		.available_kib = cur_kib > used_kib ? cur_kib - used_kib : 0,
		.free_kib = cur_kib > used_kib ? cur_kib - used_kib : 0,
		.has_balloon = true,
		.target_kib = cur_kib,
		.actual_kib = cur_kib,
		.max_kib = max_kib,
		.has_psi = true,
		.has_vmstat = true,
	};

	return g;
}

static struct pe_host
host(struct pe_guest *g, size_t n, uint64_t total, uint64_t avail,
    uint64_t t)
{
	struct pe_host h = {
		.host_id = "h1",
		.time_ms = t,
		.total_kib = total,
		.available_kib = avail,
		.n_guests = n,
		.guests = g,
	};

	return h;
}

static struct pe_decision *
decide(struct pe_state *st, const struct pe_host *h, const struct pe_policy *p)
{
	static struct pe_decision out[64];

	assert_int_equal(pe_decide(st, h, p, out, 64), (int)h->n_guests);
	return out;
}

/*
 * QEMU has no balloon target to read back: the engine takes the one it
 * decided last, not the balloon's size while it moves (which would make a
 * new command every round), and says it again when the balloon stays away
 * from it (a lost command).
 */
static void
test_policy_target_in_force_without_readback(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("a", 1 * GiB, 8 * GiB, 8 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;
	uint64_t first;

	pe_policy_defaults(&p);
	p.algo = PE_ALGO_STATIC;
	g.target_kib = 0;
	g.actual_kib = 6 * GiB;		/* below max: static gives it all */
	d = decide(st, &h, &p);
	assert_true(d[0].changed);
	assert_false(d[0].repeat);
	first = d[0].target_kib;
	assert_int_equal(first, 8 * GiB);
	/* The balloon is on its way: no new command. */
	g.actual_kib = 7 * GiB;
	h.time_ms = T0 + 1000;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].prev_kib, first);
	assert_false(d[0].changed);
	/* Still not there long after: the same target again. */
	h.time_ms = T0 + PE_REPEAT_MS - 1;
	assert_false(decide(st, &h, &p)[0].changed);
	h.time_ms = T0 + PE_REPEAT_MS;
	d = decide(st, &h, &p);
	assert_true(d[0].changed);
	assert_true(d[0].repeat);
	assert_int_equal(d[0].target_kib, first);
	/* There: quiet. */
	g.actual_kib = first;
	h.time_ms = T0 + 3 * PE_REPEAT_MS;
	assert_false(decide(st, &h, &p)[0].changed);
	pe_state_free(st);
}

/* With PSI's total, pressure is the stall since the last report: a burst
 * that is over does not keep growing the guest while avg10 decays. */
static void
test_policy_pressure_from_psi_total(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("a", 1 * GiB, 2 * GiB, 8 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	g.has_psi_total = true;
	g.psi_some_total_us = 1000000;
	g.psi_some_avg10 = 50;
	/* No total before: avg10 says pressure. */
	d = decide(st, &h, &p);
	assert_true(d[0].pressure > 0);
	/* A second later, no stall since (avg10 still high): none. */
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].pressure == 0);
	/* Stalled 500 ms of the next second: full pressure. */
	g.psi_some_total_us += 500000;
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].pressure == 1.0);
	assert_int_equal(d[0].reason, PE_GROW_PRESSURE);
	/* 10 % of the next: some. */
	g.psi_some_total_us += 100000;
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].pressure > 0 && d[0].pressure < 1.0);
	pe_state_free(st);
}

/* A guest pool smaller than the host: growth stops at what the pool has
 * not handed out, whatever the host has free. */
static void
test_policy_guest_capacity(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("a", 900 * MiB, 1 * GiB, 4 * GiB),
		guest("b", 256 * MiB, 768 * MiB, 4 * GiB),
	};
	struct pe_host h = host(g, 2, 32 * GiB, 30 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;
	g[0].psi_some_avg10 = 50;	/* a needs more, now */
	d = decide(st, &h, &p);
	assert_true(d[0].target_kib > 1 * GiB + 256 * MiB);
	pe_state_free(st);

	st = pe_state_new();
	p.guest_capacity_kib = 2 * GiB;
	assert_int_equal(pe_capacity_kib(&h, &p), 2 * GiB);
	d = decide(st, &h, &p);
	/* 2 GiB less b's 768 MiB: a gets at most 1280 MiB. */
	assert_true(d[0].target_kib > 1 * GiB);
	assert_true(d[0].target_kib + d[1].target_kib <= 2 * GiB);
	pe_state_free(st);
}

static void
test_policy_pressure_grows_at_once(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("web-1", 1 * GiB, 2 * GiB, 8 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	d = decide(st, &h, &p);
	/* First sight: calm, but not for a hold time yet. */
	assert_int_equal(d[0].reason, PE_HOLD);
	assert_false(d[0].changed);
	g.psi_some_avg10 = 25;		/* above psi_high: full pressure */
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].changed);
	assert_int_equal(d[0].reason, PE_GROW_PRESSURE);
	assert_true(d[0].pressure >= 1.0);
	/* One step: 50 % of 2 GiB. */
	assert_int_equal(d[0].target_kib, 3 * GiB);
	pe_state_free(st);
}

/*
 * Growth is earned. A guest whose sample the collector flagged (it claims
 * a whole 2 GiB VM in use, under full pressure, while the host sees 512
 * MiB resident) is not grown beyond what the host sees plus its headroom,
 * however much spare memory the host has; without a host view it is not
 * grown at all; a silent (stale) one is not frozen above that either.
 */
static void
test_policy_untrusted_guest_earns_no_growth(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("liar", 2 * GiB, 1 * GiB, 2 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 30 * GiB, T0);
	struct pe_decision *d;
	uint64_t cap;

	pe_policy_defaults(&p);
	g.total_kib = 1 * GiB;
	g.available_kib = 0;
	g.psi_some_avg10 = 90;
	g.untrusted = true;
	g.has_host_used = true;
	g.host_used_kib = 512 * MiB;
	cap = 512 * MiB + (p.defaults.headroom_kib > 512 * MiB *
	    p.defaults.headroom_pct / 100 ? p.defaults.headroom_kib :
	    (uint64_t)(512 * MiB * p.defaults.headroom_pct / 100));
	for (int i = 0; i < 5; i++) {
		d = decide(st, &h, &p);
		assert_true(d[0].target_kib <= cap);
		assert_true(d[0].used_kib <= 512 * MiB);
		assert_true(d[0].pressure == 0);
		g.target_kib = g.actual_kib = d[0].target_kib;
		h.time_ms += 1000;
	}
	/* Believed, the same numbers grow it. */
	g.untrusted = false;
	d = decide(st, &h, &p);
	assert_true(d[0].target_kib > cap);
	/* Stale after that: back toward what the host sees, not held at
	 * what the last word of the guest got it. */
	g.target_kib = g.actual_kib = d[0].target_kib;
	g.stale = true;
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].target_kib <= cap);
	/* No host view (Xen): no growth on its word. */
	g.stale = false;
	g.untrusted = true;
	g.has_host_used = false;
	g.target_kib = g.actual_kib = 1 * GiB;
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_true(d[0].target_kib <= 1 * GiB);
	pe_state_free(st);
}

/* A full guest shows no more used memory than it has; what it swapped
 * out says what it lacks, and is given back in one round. */
static void
test_policy_swapped_out_given_back_at_once(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("burst", 1 * GiB, 1 * GiB, 8 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	decide(st, &h, &p);
	/* 2 GiB went to swap within a second. */
	g.swap_out_pages = 2 * GiB / 4;
	h.time_ms += 1000;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_GROW_PRESSURE);
	assert_int_equal(d[0].swapped_kib, 2 * GiB);
	/* 1 + 2 GiB, and headroom on top (10 %: 307 MiB). */
	assert_true(d[0].target_kib >= 3 * GiB + 300 * MiB);
	assert_true(d[0].target_kib <= 3 * GiB + 320 * MiB);
	pe_state_free(st);
}

static void
test_policy_idle_shrinks_slowly_after_hold(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("idle", 512 * MiB, 4 * GiB, 4 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;
	uint64_t prev = 4 * GiB;
	int rounds = 0;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	g.psi_some_avg10 = 5;
	d = decide(st, &h, &p);
	assert_true(d[0].target_kib >= 4 * GiB);
	/* Calm now, but pressure was recent: hold. */
	g.psi_some_avg10 = 0;
	h.time_ms += 10000;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_HOLD);
	assert_false(d[0].changed);
	/* After the hold, bounded steps down to used + headroom. */
	for (h.time_ms += 30000; rounds < 100; rounds++, h.time_ms += 1000) {
		d = decide(st, &h, &p);
		if (!d[0].changed)
			break;
		assert_int_equal(d[0].reason, PE_SHRINK_IDLE);
		assert_true(prev - d[0].target_kib <= p.shrink_max_kib);
		prev = d[0].target_kib;
		g.target_kib = g.actual_kib = g.total_kib = prev;
		g.available_kib = prev - 512 * MiB;
	}
	assert_true(rounds > 5);
	/* need = 512 MiB + max(128 MiB, 10 %) = 640 MiB; it stops inside
	 * the dead band above that. */
	assert_true(prev >= 640 * MiB);
	assert_true(prev <= 640 * MiB + 64 * MiB);
	pe_state_free(st);
}

static void
test_policy_limits_from_rules_and_host(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("db-1", 100 * MiB, 4 * GiB, 8 * GiB),
		guest("web-1", 7 * GiB, 7 * GiB, 16 * GiB),
	};
	struct pe_host h = host(g, 2, 64 * GiB, 40 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.n_rules = 2;
	snprintf(p.rules[0].pattern, sizeof(p.rules[0].pattern), "db-*");
	p.rules[0].limits = p.defaults;
	p.rules[0].limits.min_kib = 3 * GiB;	/* guaranteed */
	snprintf(p.rules[1].pattern, sizeof(p.rules[1].pattern), "web-*");
	p.rules[1].limits = p.defaults;
	p.rules[1].limits.max_kib = 6 * GiB;	/* below host's 16 GiB */
	g[1].psi_some_avg10 = 50;
	for (int i = 0; i < 50; i++, h.time_ms += 60000) {
		d = decide(st, &h, &p);
		assert_true(d[0].target_kib >= 3 * GiB);
		assert_true(d[1].target_kib <= 6 * GiB);
		g[0].target_kib = g[0].actual_kib = d[0].target_kib;
	}
	assert_int_equal(d[0].target_kib, 3 * GiB);
	assert_int_equal(d[0].min_kib, 3 * GiB);
	assert_int_equal(d[1].target_kib, 6 * GiB);
	assert_int_equal(d[1].max_kib, 6 * GiB);
	pe_state_free(st);
}

static void
test_policy_contention_shared_by_weight(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[3] = {
		guest("a", 6 * GiB, 6 * GiB, 8 * GiB),
		guest("b", 6 * GiB, 6 * GiB, 8 * GiB),
		guest("c", 6 * GiB, 6 * GiB, 8 * GiB),
	};
	/* 12.5 GiB host, 0.5 GiB reserve: 12 GiB for guests. */
	struct pe_host h = host(g, 3, 12 * GiB + 512 * MiB, 20 * GiB, T0);
	struct pe_decision *d;
	uint64_t sum = 0;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.n_rules = 2;
	snprintf(p.rules[0].pattern, sizeof(p.rules[0].pattern), "a");
	p.rules[0].limits = p.defaults;
	p.rules[0].limits.weight = 200;
	p.rules[0].limits.min_kib = 1 * GiB;
	snprintf(p.rules[1].pattern, sizeof(p.rules[1].pattern), "[bc]");
	p.rules[1].limits = p.defaults;
	p.rules[1].limits.min_kib = 1 * GiB;
	d = decide(st, &h, &p);
	for (int i = 0; i < 3; i++) {
		sum += d[i].target_kib;
		assert_int_equal(d[i].reason, PE_CAPACITY);
	}
	assert_true(sum <= 12 * GiB);
	assert_true(sum >= 12 * GiB - 3);
	/* 9 GiB above the minimums, shared 2:1:1. */
	assert_int_equal(d[0].target_kib, 1 * GiB + 9 * GiB / 2);
	assert_int_equal(d[1].target_kib, 1 * GiB + 9 * GiB / 4);
	assert_int_equal(d[1].target_kib, d[2].target_kib);
	pe_state_free(st);
}

static void
test_policy_take_before_give(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("busy", 3 * GiB, 3 * GiB, 8 * GiB),
		guest("idle", 256 * MiB, 4 * GiB, 8 * GiB),
	};
	/* Plenty of capacity, but only 0.5 GiB above the reserve is free. */
	struct pe_host h = host(g, 2, 32 * GiB, 1 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	g[0].psi_some_avg10 = 40;
	g[0].available_kib = 0;
	d = decide(st, &h, &p);
	/* Growth limited to what is free now. */
	assert_int_equal(d[0].reason, PE_BUDGET);
	assert_int_equal(d[0].target_kib, 3 * GiB + 512 * MiB);
	/* The idle guest, though still in its hold time, gives back what
	 * was short in the same round (1.5 GiB wanted, 512 MiB free). */
	assert_int_equal(d[1].reason, PE_SHRINK_IDLE);
	assert_int_equal(d[1].target_kib, 3 * GiB);
	pe_state_free(st);
}

/*
 * A guest whose balloon still shrinks toward an old target, and then needs
 * more: what it still holds is no growth, so the new target comes at once,
 * with nothing free on the host. Above what it holds, growth waits.
 */
static void
test_policy_shrinking_guest_keeps_what_it_holds(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[1] = {
		guest("ramp", 2500 * MiB, 2600 * MiB, 6 * GiB),
	};
	/* Nothing free above the reserve. */
	struct pe_host h = host(g, 1, 16 * GiB, 512 * MiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;
	g[0].actual_kib = g[0].total_kib = 3200 * MiB;
	g[0].available_kib = 700 * MiB;
	d = decide(st, &h, &p);
	/* Used 2,500 MiB plus 250 of headroom. */
	assert_int_equal(d[0].reason, PE_GROW_NEED);
	assert_int_equal(d[0].target_kib, 2750 * MiB);
	/* Used 3,100 MiB: 3,410 MiB needed, 3,200 held, nothing free. */
	h.time_ms += 10000;
	g[0].target_kib = d[0].target_kib;
	g[0].available_kib = 100 * MiB;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_BUDGET);
	assert_int_equal(d[0].target_kib, 3200 * MiB);
	pe_state_free(st);
}

/*
 * One guest climbs on a full host while another idles with a buffer, and
 * balloons move slowly (50 MiB a round). The idle one gives back to the
 * climber's floor; its buffer does not come back while that goes on (it
 * used to: shrink, then regrow from what the shrink freed, every round).
 */
static void
test_policy_no_seesaw_while_another_climbs(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("climb", 1 * GiB, 1536 * MiB, 4 * GiB),
		guest("idle", 256 * MiB, 2 * GiB, 4 * GiB),
	};
	uint64_t used[2] = { 1 * GiB, 256 * MiB }, last_idle = 2 * GiB;
	struct pe_host h = host(g, 2, 4 * GiB + 512 * MiB, 0, T0);
	struct pe_decision *d;
	int ups_after_down = 0;
	bool went_down = false;

	pe_policy_defaults(&p);
	for (int r = 0; r < 40; r++) {
		uint64_t sizes = 0;

		used[0] = 1 * GiB + (uint64_t)r * 64 * MiB;
		if (used[0] > 3 * GiB)
			used[0] = 3 * GiB;
		for (int i = 0; i < 2; i++) {
			uint64_t a = g[i].actual_kib, t = g[i].target_kib;

			a = a < t ? (t - a > 50 * MiB ? a + 50 * MiB : t) :
			    (a - t > 50 * MiB ? a - 50 * MiB : t);
			g[i].actual_kib = g[i].total_kib = a;
			g[i].available_kib = a > used[i] ? a - used[i] : 0;
			sizes += a;
		}
		h.available_kib = 4 * GiB + 512 * MiB > sizes ?
		    4 * GiB + 512 * MiB - sizes : 0;
		d = decide(st, &h, &p);
		for (int i = 0; i < 2; i++)
			g[i].target_kib = d[i].target_kib;
		if (d[1].target_kib < last_idle)
			went_down = true;
		else if (d[1].target_kib > last_idle && went_down)
			ups_after_down++;
		last_idle = d[1].target_kib;
		/* Never below what it uses, whatever the climber wants. */
		assert_true(d[1].target_kib >= used[1]);
		h.time_ms += 500;
	}
	assert_true(went_down);
	assert_int_equal(ups_after_down, 0);
	/* The climber got there: 3 GiB used, its target covers it. */
	assert_true(d[0].target_kib >= 3 * GiB);
	pe_state_free(st);
}

/*
 * The demo's host-a: "web" under pressure with nothing free, "db" still
 * inflating its balloon toward an old target, "cache" idle with a buffer.
 * The capacity counts db at its target, so on paper there is spare for
 * buffers; in fact nothing is free. Buffers do not grow, and the idle
 * guest gives back for web's floor (it did not: it counted as growing).
 */
static void
test_policy_short_floor_before_buffers(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[3] = {
		guest("web", 1896 * MiB, 1996 * MiB, 4 * GiB),
		guest("cache", 256 * MiB, 1907 * MiB, 2 * GiB),
		guest("db", 2048 * MiB, 2252 * MiB, 4 * GiB),
	};
	struct pe_host h = host(g, 3, 8 * GiB, 290 * MiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	g[0].psi_some_avg10 = 8.3;
	g[2].actual_kib = g[2].total_kib = 3476 * MiB;
	g[2].available_kib = g[2].free_kib = (3476 - 2048) * MiB;
	d = decide(st, &h, &p);
	/* Web waits for the memory, which the idle guest gives now. */
	assert_true(d[0].pressure > 0);
	assert_int_equal(d[0].target_kib, 1996 * MiB);
	assert_int_equal(d[1].reason, PE_SHRINK_IDLE);
	assert_true(d[1].target_kib <= 1907 * MiB - 256 * MiB);
	assert_true(d[1].target_kib >= d[1].need_kib);
	/* No buffer grew. */
	assert_true(d[2].target_kib <= 2252 * MiB);
	pe_state_free(st);
}

/*
 * Fifty guests first seen on a host with memory to spare all get a buffer,
 * but a few a round (1 + 50/32 = 2), not fifty commands at once: on a
 * scheduler's start, a fleet of such hosts floods the bus otherwise.
 */
static void
test_policy_buffers_a_few_at_a_time(void **state)
{
	enum { N = 50 };
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[N];
	char ids[N][16];
	struct pe_decision d[N];
	struct pe_host h;
	int rounds = 0;
	bool all = false;

	pe_policy_defaults(&p);
	for (int i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "vm-%d", i);
		g[i] = guest(ids[i], 1800 * MiB, 2 * GiB, 8 * GiB);
	}
	h = host(g, N, 256 * GiB, 156 * GiB, T0);
	while (!all && rounds < 60) {
		uint64_t sizes = 0;
		int changed = 0;

		assert_int_equal(pe_decide(st, &h, &p, d, N), N);
		all = true;
		for (int i = 0; i < N; i++) {
			changed += d[i].changed;
			g[i].target_kib = g[i].actual_kib = g[i].total_kib =
			    d[i].target_kib;
			g[i].available_kib = g[i].free_kib =
			    d[i].target_kib - 1800 * MiB;
			sizes += d[i].target_kib;
			all = all && d[i].target_kib >= d[i].need_kib +
			    256 * MiB;
		}
		assert_true(changed <= 2);
		h.available_kib = 256 * GiB - sizes;
		h.time_ms += 1000;
		rounds++;
	}
	/* Every guest has its buffer, after about 50 / 2 rounds. */
	assert_true(all);
	assert_true(rounds >= 20 && rounds <= 40);
	pe_state_free(st);
}

static void
test_policy_uncooperative_guest(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("stuck", 512 * MiB, 4 * GiB, 4 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;
	int alerts = 0;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.hold_ms = 0;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_SHRINK_IDLE);
	/* The guest accepts the target but never moves. */
	g.target_kib = d[0].target_kib;
	for (int s = 1; s <= 25; s++) {
		h.time_ms = T0 + (uint64_t)s * 1000;
		d = decide(st, &h, &p);
		alerts += d[0].alert;
		if (s == 4)
			assert_int_equal(d[0].coop, PE_COOP_OK);
		if (s == 6)
			assert_int_equal(d[0].coop, PE_COOP_INACTIVE);
		if (s >= 21) {
			assert_int_equal(d[0].coop, PE_COOP_UNCOOPERATIVE);
			assert_int_equal(d[0].reason, PE_UNCOOPERATIVE);
			assert_false(d[0].changed);
		}
		g.target_kib = d[0].target_kib;
	}
	/* Once when inactive, once when uncooperative. */
	assert_int_equal(alerts, 2);
	pe_state_free(st);
}

static void
test_policy_static_is_max(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g = guest("a", 1 * GiB, 2 * GiB, 6 * GiB);
	struct pe_host h = host(&g, 1, 32 * GiB, 20 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.algo = PE_ALGO_STATIC;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].target_kib, 6 * GiB);
	assert_int_equal(d[0].reason, PE_STATIC);
	pe_state_free(st);
}

/* xenmm with 4 GiB for two guests using 1 and 3 GiB, headroom 128 MiB:
 * mean 2 GiB, base 2 GiB, tau = (3 GiB + 128 MiB - 2 GiB) / 1 GiB = 1.125,
 * wants 0.875 GiB and 3.125 GiB. */
static void
test_policy_xenmm_worked_example(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("a", 1 * GiB, 2 * GiB, 8 * GiB),
		guest("b", 3 * GiB, 2 * GiB, 8 * GiB),
	};
	struct pe_host h = host(g, 2, 4 * GiB + 512 * MiB, 1 * GiB, T0);
	struct pe_decision *d;

	/* b holds 5 GiB with a deflate-on-oom balloon whose target is
	 * 2 GiB: meminfo shows 3 GiB used of 5, and MemTotal includes the
	 * balloon. */
	g[1].total_kib = 5 * GiB;
	g[1].available_kib = 2 * GiB;
	g[1].actual_kib = 5 * GiB;
	assert_int_equal(pe_guest_used_kib(&g[1]), 3 * GiB);
	/* Told by the sample how much the balloon holds, that counts, not
	 * the host's reading of actual (which lags while it moves). */
	g[1].has_balloon_in_total = true;
	g[1].balloon_in_total_kib = 1 * GiB;
	assert_int_equal(pe_guest_used_kib(&g[1]), 2 * GiB);
	/* A balloon that does not deflate on OOM leaves MemTotal. */
	g[1].balloon_in_total_kib = 0;
	assert_int_equal(pe_guest_used_kib(&g[1]), 3 * GiB);
	g[1].has_balloon_in_total = false;
	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.algo = PE_ALGO_XENMM;
	d = decide(st, &h, &p);
	/* a falls by a tenth of the gap: 2 - (2 - 0.875) / 10 GiB. */
	assert_int_equal(d[0].need_kib, 896 * MiB);
	assert_int_equal(d[0].target_kib, (uint64_t)(2.0 * GiB -
	    (2.0 * GiB - 896.0 * MiB) / 10));
	/* b rises at once. */
	assert_int_equal(d[1].target_kib, 3 * GiB + 128 * MiB);
	assert_int_equal(d[1].reason, PE_XENMM);
	pe_state_free(st);
}

/* MOM: host 10 % free is under pressure: a 4 GiB guest using 2 GiB
 * shrinks to max(0.95 * 4, 2 + 0.2 * 4) = 3.8 GiB; one using 3.5 GiB would
 * need 4.3 GiB and is left alone. Host 50 % free: a 4 GiB
 * guest using 3.5 GiB (0.5 < 0.8 free) grows to max(4.2, 3.5 + 0.8) =
 * 4.3 GiB; one with enough free stays. */
static void
test_policy_mom_worked_example(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[2] = {
		guest("a", 2 * GiB, 4 * GiB, 8 * GiB),
		guest("b", 3584 * MiB, 4 * GiB, 8 * GiB),
	};
	struct pe_host h = host(g, 2, 40 * GiB, 4 * GiB, T0);
	struct pe_decision *d;

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.algo = PE_ALGO_MOM;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_MOM_SHRINK);
	assert_int_equal(d[0].target_kib, (uint64_t)(0.95 * 4 * GiB));
	/* b: max(3.8, 3.5 + 0.8) = 4.3 GiB is not below 4: left alone. */
	assert_int_equal(d[1].reason, PE_KEEP);
	assert_false(d[1].changed);
	h.available_kib = 20 * GiB;
	h.time_ms += 10000;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reason, PE_KEEP);
	assert_false(d[0].changed);
	assert_int_equal(d[1].reason, PE_MOM_GROW);
	assert_int_equal(d[1].target_kib, (uint64_t)(3584.0 * MiB +
	    0.2 * 4 * GiB));
	pe_state_free(st);
}

/*
 * What nobody needs goes out as buffer: first to a guest that surged
 * lately, up to its weighted share of the host, then to every guest, so
 * that an idle one is ready for a first burst too.
 */
static void
test_policy_spare_goes_where_it_surges(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[4] = {
		guest("steady1", 1 * GiB, 2 * GiB, 8 * GiB),
		guest("steady2", 1 * GiB, 2 * GiB, 8 * GiB),
		guest("steady3", 1 * GiB, 2 * GiB, 8 * GiB),
		guest("bursty", 1 * GiB, 2 * GiB, 8 * GiB),
	};
	/* 8 GiB for guests: 2 GiB each by weight. */
	struct pe_host h = host(g, 4, 8 * GiB + 512 * MiB, 0, T0);
	struct pe_decision *d = NULL;

	pe_policy_defaults(&p);
	for (int r = 0; r < 10; r++) {
		uint64_t sizes = 0;

		for (int i = 0; r > 0 && i < 4; i++) {
			g[i].target_kib = g[i].actual_kib = g[i].total_kib =
			    d[i].target_kib;
			g[i].available_kib = d[i].target_kib - 1 * GiB;
		}
		/* The bursty one climbs 1 GiB and comes back down. */
		if (r == 1)
			g[3].available_kib -= 1 * GiB;
		for (int i = 0; i < 4; i++)
			sizes += g[i].actual_kib;
		h.available_kib = 8 * GiB + 512 * MiB - sizes;
		d = decide(st, &h, &p);
		h.time_ms += 10000;
	}
	for (int i = 0; i < 3; i++) {
		/* The surge buffer first... */
		assert_true(d[3].target_kib >= d[i].target_kib + 64 * MiB);
		/* ...then the rest: the steady ones hold more than their
		 * need, the host having memory to spare. */
		assert_true(d[i].target_kib >= d[i].need_kib + 256 * MiB);
	}
	/* Never above its weighted share of the host (a quarter, equal
	 * weights), so that pressure never gets a guest less than calm. */
	assert_true(d[3].target_kib <= 2 * GiB);
	assert_true(d[0].target_kib + d[1].target_kib + d[2].target_kib +
	    d[3].target_kib <= 8 * GiB);
	pe_state_free(st);
}

/*
 * Proactive reclaim: a calm VM that opted in (limits.reclaim) and whose
 * agent saw 700 MiB of anonymous memory idle for 10 minutes is asked for
 * it, capped at reclaim_max_kib; once, not again within the interval; not
 * a VM that did not opt in, nor one that stalls at or above the budget,
 * nor one whose cold memory was idle for less than reclaim_idle_ms.
 */
static void
test_policy_reclaim_asks_for_cold_memory(void **state)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[4];
	struct pe_host h;
	struct pe_decision *d;
	static const char *const ids[] = { "in", "out", "stalls", "fresh" };

	(void)state;
	pe_policy_defaults(&p);
	p.defaults.reclaim = false;
	p.n_rules = 1;
	snprintf(p.rules[0].pattern, sizeof(p.rules[0].pattern), "*");
	p.rules[0].limits = p.defaults;
	p.rules[0].limits.reclaim = true;
	p.reclaim_max_kib = 512 * MiB;
	for (int i = 0; i < 4; i++) {
		g[i] = guest(ids[i], 1 * GiB, 2 * GiB, 4 * GiB);
		g[i].n_cold = 2;
		g[i].cold[0].idle_ms = 600000;
		g[i].cold[0].anon_kib = 700 * MiB;
		g[i].cold[1].idle_ms = 1200000;
		g[i].cold[1].anon_kib = 600 * MiB;
	}
	/* Only "out" does not match the opt-in rule. */
	snprintf(p.rules[0].pattern, sizeof(p.rules[0].pattern), "[isf]*");
	g[2].psi_some_avg10 = 5;	/* at the budget (5 %) */
	g[3].cold[0].idle_ms = g[3].cold[1].idle_ms = 60000;
	h = host(g, 4, 16 * GiB, 8 * GiB, T0);
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reclaim_kib, 512 * MiB);	/* capped */
	assert_true(d[0].reclaim_budget_pct == 5);
	assert_int_equal(d[1].reclaim_kib, 0);
	assert_int_equal(d[2].reclaim_kib, 0);
	assert_int_equal(d[3].reclaim_kib, 0);
	/* A minute later: not again within reclaim_interval_ms. */
	h.time_ms = T0 + 60000;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reclaim_kib, 0);
	/* After it, again. */
	h.time_ms = T0 + 60000 + p.reclaim_interval_ms;
	d = decide(st, &h, &p);
	assert_int_equal(d[0].reclaim_kib, 512 * MiB);
	pe_state_free(st);
}

/*
 * Pool-level risk: four VMs with two days of history, each of which
 * climbed from 1 to 4 GiB for one hour yesterday (beyond the last 24
 * hours, so beyond the day's peak each one's buffer covers). When they
 * climbed in the same hour the host keeps free what they took together
 * then (about 13 GiB); when they took turns, about what one took. With
 * pool_hours 0 both hosts keep the same fixed share.
 */
static uint64_t
pool_sum_of_targets(bool together, uint32_t pool_hours)
{
	struct pe_policy p;
	struct pe_state *st = pe_state_new();
	struct pe_guest g[4];
	struct pe_host h;
	struct pe_decision *d;
	uint64_t now_hour = T0 / 3600000, sum = 0;
	static const char *const ids[] = { "a", "b", "c", "d" };

	pe_policy_defaults(&p);
	p.pool_hours = pool_hours;
	for (int i = 0; i < 4; i++) {
		struct pe_vm_history v = { .hour = now_hour, .hours = 48 };

		snprintf(v.vm_id, sizeof(v.vm_id), "%s", ids[i]);
		for (uint32_t k = 0; k < 48; k++)
			v.mib[k] = 1024;
		v.mib[together ? 30 : 30 + 3 * i] = 4096;
		assert_int_equal(pe_history_put(st, &v), 0);
		g[i] = guest(ids[i], 1 * GiB, 2 * GiB, 16 * GiB);
	}
	/* 32 GiB for guests, 512 MiB the host's reserve; a round every
	 * 10 s within the hour, so buffers have grown. */
	h = host(g, 4, 32 * GiB + 512 * MiB, 0, T0);
	for (int r = 0; r < 60; r++) {
		uint64_t sizes = 0;

		for (int i = 0; i < 4; i++) {
			if (r > 0)
				g[i].target_kib = g[i].actual_kib =
				    g[i].total_kib = d[i].target_kib;
			g[i].available_kib = g[i].free_kib =
			    g[i].total_kib - 1 * GiB;
			sizes += g[i].actual_kib;
		}
		h.time_ms = T0 + (uint64_t)r * 10000;
		h.available_kib = 32 * GiB + 512 * MiB - sizes;
		d = decide(st, &h, &p);
	}
	for (int i = 0; i < 4; i++)
		sum += d[i].target_kib;
	pe_state_free(st);
	return sum;
}

static void
test_policy_pool_keeps_what_climbs_together(void **state)
{
	uint64_t together = pool_sum_of_targets(true, 48);
	uint64_t apart = pool_sum_of_targets(false, 48);

	(void)state;
	fprintf(stderr, "pool: guests hold %llu MiB when they climb "
	    "together, %llu MiB when they take turns\n",
	    (unsigned long long)together / MiB,
	    (unsigned long long)apart / MiB);
	/* Together: about 4 x 3.3 GiB kept free of 32. */
	assert_true(together <= 32 * GiB - 12 * GiB);
	/* Apart: one VM's climb kept free, so 8 GiB more in buffers. */
	assert_true(apart >= together + 8 * GiB);
	/* Off: the same fixed share for both. */
	assert_int_equal(pool_sum_of_targets(true, 0),
	    pool_sum_of_targets(false, 0));
}

/*
 * History: a VM that climbed to 6 GiB for one hour keeps, as its first
 * buffer, that peak plus 10 % for a day after it (history_hours 24), once
 * it has six hours of history (history_min_hours 6); before that it is
 * sized exactly as with the term off, and after the day it gives the
 * memory back. A flat neighbour gets no such buffer. Reports every 10 minutes.
 */
static void
test_policy_history_keeps_a_days_peak(void **state)
{
	struct pe_policy p, off;
	struct pe_state *st[2] = { pe_state_new(), pe_state_new() };
	struct pe_guest g[2][2];
	struct pe_host h[2];
	struct pe_decision d[2][2];
	bool grew_on_history = false;
	uint64_t at26[2] = { 0, 0 }, at30 = 0;

	(void)state;
	pe_policy_defaults(&p);
	pe_policy_defaults(&off);
	off.history_hours = 0;
	for (int k = 0; k < 2; k++) {
		g[k][0] = guest("daily", 1 * GiB, 2 * GiB, 16 * GiB);
		g[k][1] = guest("flat", 1 * GiB, 2 * GiB, 16 * GiB);
		/* 10 GiB for guests, 512 MiB the host's reserve. */
		h[k] = host(g[k], 2, 10 * GiB + 512 * MiB, 0, T0);
	}
	for (int r = 0; r <= 30 * 6; r++) {
		int hour = r / 6;

		for (int k = 0; k < 2; k++) {
			const struct pe_policy *pk = k == 0 ? &p : &off;
			uint64_t sizes = 0, used;

			for (int i = 0; i < 2; i++) {
				struct pe_guest *x = &g[k][i];

				if (r > 0)
					x->target_kib = x->actual_kib =
					    x->total_kib = d[k][i].target_kib;
				used = i == 0 && hour == 3 ? 6 * GiB : 1 * GiB;
				x->available_kib = x->free_kib =
				    x->total_kib > used ? x->total_kib - used :
				    0;
				sizes += x->actual_kib;
			}
			h[k].time_ms = T0 + (uint64_t)r * 600000;
			h[k].available_kib = 10 * GiB + 512 * MiB > sizes ?
			    10 * GiB + 512 * MiB - sizes : 0;
			assert_int_equal(pe_decide(st[k], &h[k], pk, d[k], 2),
			    2);
		}
		/* Less than six hours of history (6 hours of the clock, the
		 * first begun 13 minutes before T0): as without the term. */
		if (r < 4 * 6) {
			assert_int_equal(d[0][0].target_kib,
			    d[1][0].target_kib);
			assert_int_equal(d[0][1].target_kib,
			    d[1][1].target_kib);
		}
		if (r >= 4 * 6 && hour < 8 &&
		    d[0][0].reason == PE_GROW_HISTORY) {
			char why[PE_WHY_MAX];

			/* What mmctl top and the events say. */
			pe_format_why(&d[0][0], why, sizeof(why));
			assert_non_null(strstr(why, "grow-history: "));
			assert_non_null(strstr(why,
			    "history: 24 h peak 6144 MiB + 10 %"));
			grew_on_history = true;
		}
		if (r == 26 * 6) {
			at26[0] = d[0][0].target_kib;
			at26[1] = d[0][1].target_kib;
			assert_true(d[1][0].target_kib < 6 * GiB);
		}
		if (r == 30 * 6)
			at30 = d[0][0].target_kib;
	}
	fprintf(stderr, "history: daily %llu MiB at hour 26 (flat %llu), "
	    "%llu MiB at hour 30\n", (unsigned long long)at26[0] / MiB,
	    (unsigned long long)at26[1] / MiB, (unsigned long long)at30 / MiB);
	assert_true(grew_on_history);
	/* Its peak of the day before plus 10 %, within the dead band (5 %):
	 * above the peak. */
	assert_true(at26[0] >= 6 * GiB + 6 * GiB / 20);
	/* The flat one has what is left. */
	assert_true(at26[1] + 2 * GiB < at26[0]);
	assert_true(at26[0] + at26[1] <= 10 * GiB);
	/* The peak (hour 3) left the day's window at hour 27. */
	assert_true(at30 < 6 * GiB);
	pe_state_free(st[0]);
	pe_state_free(st[1]);
}

static void
test_policy_validation(void **state)
{
	struct pe_policy p;
	char why[256];

	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	assert_int_equal(pe_policy_validate(&p, why, sizeof(why)), 0);
	p.defaults.min_kib = 2 * GiB;
	p.defaults.max_kib = 1 * GiB;
	assert_int_equal(pe_policy_validate(&p, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "defaults: min 2097152 KiB above max "
	    "1048576 KiB");
	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.n_rules = 1;
	snprintf(p.rules[0].pattern, sizeof(p.rules[0].pattern), "web-*");
	p.rules[0].limits = p.defaults;
	p.rules[0].limits.weight = 10001;
	assert_int_equal(pe_policy_validate(&p, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "rule \"web-*\": weight 10001 outside "
	    "0..10000");
	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.algo = PE_ALGO_COUNT;
	assert_int_equal(pe_policy_validate(&p, why, sizeof(why)), -EINVAL);
	pe_policy_defaults(&p);
	p.spare_pct = 0;	/* the mechanism alone */
	p.psi_high_pct = p.psi_low_pct;
	assert_int_equal(pe_policy_validate(&p, why, sizeof(why)), -EINVAL);
	{
		enum pe_algo a;

		assert_int_equal(pe_algo_from_name("mom", &a), 0);
		assert_int_equal(a, PE_ALGO_MOM);
		assert_int_equal(pe_algo_from_name("squeezed", &a), -ENOENT);
	}
}

/* ---- invariants over random inputs ---- */

static uint64_t rng = 88172645463325252ull;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

static void
random_guests(struct pe_guest *g, char (*ids)[16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t max = (1 + rnd(16)) * GiB;
		uint64_t cur = 256 * MiB + rnd(max - 256 * MiB);
		uint64_t used = rnd(cur);

		/* n is at most a few hundred: "vm-" and 3 digits */
		snprintf(ids[i], 16, "vm-%u", (unsigned)(i % 100000));
		g[i] = guest(ids[i], used, cur, max);
		g[i].psi_some_avg10 = rnd(4) == 0 ? (double)rnd(60) : 0;
		g[i].major_faults = rnd(1000);
	}
}

static void
test_policy_invariants_random(void **state)
{
	struct pe_guest g[32];
	char ids[32][16];
	struct pe_policy p;

	for (int iter = 0; iter < 2000; iter++) {
		struct pe_state *st = pe_state_new();
		size_t n = 1 + rnd(32);
		uint64_t total = (4 + rnd(128)) * GiB;
		struct pe_host h;
		struct pe_decision *d;
		uint64_t sum = 0, mins = 0;

		pe_policy_defaults(&p);
		p.defaults.min_kib = rnd(2) ? 256 * MiB : 0;
		p.defaults.weight = (uint32_t)rnd(500);	/* 0 too */
		random_guests(g, ids, n);
		h = host(g, n, total, rnd(total), T0);
		d = decide(st, &h, &p);
		for (size_t i = 0; i < n; i++) {
			assert_true(d[i].target_kib >= d[i].min_kib);
			assert_true(d[i].target_kib <= d[i].max_kib);
			assert_true(d[i].min_kib <= d[i].max_kib);
			sum += d[i].target_kib;
			mins += d[i].min_kib;
		}
		/* When the minimums fit, the targets fit too. */
		if (mins <= pe_capacity_kib(&h, &p))
			assert_true(sum <= pe_capacity_kib(&h, &p));
		pe_state_free(st);
	}
}

static void
test_policy_more_pressure_never_lowers(void **state)
{
	struct pe_guest g[16];
	char ids[16][16];
	struct pe_policy p;

	pe_policy_defaults(&p);
	for (int iter = 0; iter < 2000; iter++) {
		size_t n = 1 + rnd(16), k = rnd(n);
		uint64_t total = (4 + rnd(64)) * GiB;
		struct pe_host h;
		struct pe_state *a = pe_state_new(), *b = pe_state_new();
		struct pe_decision da[16], db[16];
		double psi;

		random_guests(g, ids, n);
		h = host(g, n, total, rnd(total), T0);
		psi = g[k].psi_some_avg10;
		assert_int_equal(pe_decide(a, &h, &p, da, 16), (int)n);
		g[k].psi_some_avg10 = psi + 1 + (double)rnd(50);
		assert_int_equal(pe_decide(b, &h, &p, db, 16), (int)n);
		if (db[k].target_kib < da[k].target_kib)
			fail_msg("iteration %d: vm %zu at psi %.1f got %llu, "
			    "at %.1f got %llu", iter, k, psi,
			    (unsigned long long)da[k].target_kib,
			    g[k].psi_some_avg10,
			    (unsigned long long)db[k].target_kib);
		pe_state_free(a);
		pe_state_free(b);
	}
}

/* Steady input, balloons that follow their targets: the targets settle
 * and then stay put, never alternating. */
static void
test_policy_steady_input_settles(void **state)
{
	struct pe_guest g[16];
	char ids[16][16];
	struct pe_policy p;

	pe_policy_defaults(&p);
	for (int iter = 0; iter < 200; iter++) {
		size_t n = 1 + rnd(16);
		struct pe_state *st = pe_state_new();
		struct pe_decision d[16];
		uint64_t used[16];
		struct pe_host h;
		int changes_late = 0;

		random_guests(g, ids, n);
		for (size_t i = 0; i < n; i++) {
			g[i].psi_some_avg10 = 0;
			used[i] = g[i].total_kib - g[i].available_kib;
		}
		h = host(g, n, 512 * GiB, 256 * GiB, T0);
		for (int round = 0; round < 400; round++) {
			assert_int_equal(pe_decide(st, &h, &p, d, 16), (int)n);
			for (size_t i = 0; i < n; i++) {
				if (round >= 300 && d[i].changed)
					changes_late++;
				g[i].target_kib = g[i].actual_kib =
				    g[i].total_kib = d[i].target_kib;
				g[i].available_kib = d[i].target_kib >
				    used[i] ? d[i].target_kib - used[i] : 0;
			}
			h.time_ms += 1000;
		}
		assert_int_equal(changes_late, 0);
		pe_state_free(st);
	}
}

/* What the guest's kernel keeps for itself is counted as used: its
 * headroom is then memory it can use. The 2,432 MiB test guest shows a
 * MemTotal of 2,342 MiB. */
static void
test_policy_reserved_counted_as_used(void **state)
{
	const uint64_t max = 2432 * 1024, total = 2342 * 1024;
	struct pe_guest g = {
		.has_meminfo = true, .total_kib = total,
		.available_kib = 1000 * 1024, .max_kib = max,
	};

	(void)state;
	/* deflate-on-oom: its 1,000 MiB balloon is inside MemTotal. */
	assert_int_equal(gm_reserved_kib(max, total, true, true, 256000),
	    90 * 1024);
	/* Any other balloon is out of MemTotal: added back. */
	assert_int_equal(gm_reserved_kib(max, total - 1000 * 1024, false,
	    true, 256000), 90 * 1024);
	/* Unknown balloon, unknown size, torn or impossible numbers. */
	assert_int_equal(gm_reserved_kib(max, total, false, false, 0), 0);
	assert_int_equal(gm_reserved_kib(0, total, true, true, 0), 0);
	assert_int_equal(gm_reserved_kib(max, max + 1, true, true, 0), 0);
	assert_int_equal(gm_reserved_kib(max, max / 2, true, true, 0), 0);
	/* A small VM's kernel takes a larger part: 50 of 384 MiB. */
	assert_int_equal(gm_reserved_kib(384 * 1024, 334 * 1024, true, true,
	    0), 50 * 1024);
	/* The engine's used memory carries it. */
	g.reserved_kib = gm_reserved_kib(max, total, true, true, 0);
	assert_int_equal(pe_guest_used_kib(&g), total - 1000 * 1024 +
	    90 * 1024);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_target_in_force_without_readback),
		cmocka_unit_test(test_policy_pressure_from_psi_total),
		cmocka_unit_test(test_policy_guest_capacity),
		cmocka_unit_test(test_policy_reserved_counted_as_used),
		cmocka_unit_test(test_policy_pressure_grows_at_once),
		cmocka_unit_test(test_policy_untrusted_guest_earns_no_growth),
		cmocka_unit_test(test_policy_swapped_out_given_back_at_once),
		cmocka_unit_test(test_policy_idle_shrinks_slowly_after_hold),
		cmocka_unit_test(test_policy_limits_from_rules_and_host),
		cmocka_unit_test(test_policy_contention_shared_by_weight),
		cmocka_unit_test(test_policy_take_before_give),
		cmocka_unit_test(test_policy_shrinking_guest_keeps_what_it_holds),
		cmocka_unit_test(test_policy_no_seesaw_while_another_climbs),
		cmocka_unit_test(test_policy_short_floor_before_buffers),
		cmocka_unit_test(test_policy_buffers_a_few_at_a_time),
		cmocka_unit_test(test_policy_uncooperative_guest),
		cmocka_unit_test(test_policy_static_is_max),
		cmocka_unit_test(test_policy_xenmm_worked_example),
		cmocka_unit_test(test_policy_mom_worked_example),
		cmocka_unit_test(test_policy_spare_goes_where_it_surges),
		cmocka_unit_test(test_policy_history_keeps_a_days_peak),
		cmocka_unit_test(test_policy_pool_keeps_what_climbs_together),
		cmocka_unit_test(test_policy_reclaim_asks_for_cold_memory),
		cmocka_unit_test(test_policy_validation),
		cmocka_unit_test(test_policy_invariants_random),
		cmocka_unit_test(test_policy_more_pressure_never_lowers),
		cmocka_unit_test(test_policy_steady_input_settles),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
