/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm's own balloon policy. Each VM needs its used memory plus headroom; a
 * guest showing pressure grows at once by a step that scales with the
 * pressure, a calm one shrinks in bounded steps after a hold time, and a
 * dead band keeps a steady guest still. When the wishes exceed the host,
 * memory above the guaranteed minimums is shared by weight; growth only
 * takes memory that is free now, and when that is short the idle guests
 * give back their excess first (take before give).
 */
#include <stdint.h>

#include "policy.h"
#include "policy_int.h"

static uint64_t
max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t
min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t
deadband(const struct pe_policy *p, uint64_t cur)
{
	return max64(p->deadband_kib, (uint64_t)((double)cur *
	    p->deadband_pct / 100));
}

/* A guest's share of contended memory: weight 0 counts as a hundredth. */
static uint64_t
weight(const struct pe_vm *v)
{
	return v->limits->weight > 0 ? 100ull * v->limits->weight : 1;
}

static uint64_t
headroom(const struct pe_limits *l, uint64_t used)
{
	return max64(l->headroom_kib, (uint64_t)((double)used *
	    l->headroom_pct / 100));
}

/* Stage one: what each guest wants on its own. */
static void
wish(struct pe_ctx *c, size_t i)
{
	const struct pe_policy *p = c->p;
	const struct pe_guest *g = &c->host->guests[i];
	struct pe_decision *d = &c->out[i];
	struct pe_vm *v = c->vms[i];
	const struct pe_limits *l = v->limits;
	uint64_t cur = d->prev_kib, base, need, keep, dead, want = cur;

	v->flexible = false;
	if (l->unmanaged) {
		d->reason = PE_UNMANAGED;
		return;
	}
	if (g->stale || !g->has_meminfo) {
		d->reason = PE_STALE;
		return;
	}
	base = max64(d->used_kib, (uint64_t)v->used_ewma);
	need = base + headroom(l, base);
	/* A calm guest gives back only what it has not used lately; the
	 * rest, down to need, only when another guest is short. */
	keep = (uint64_t)v->peak + headroom(l, (uint64_t)v->peak);
	d->need_kib = need;
	dead = deadband(p, cur);
	if (d->pressure > 0) {
		uint64_t step = (uint64_t)((double)max64(p->grow_min_kib,
		    (uint64_t)((double)cur * p->grow_pct / 100)) * d->pressure);

		/* What went to swap is what it lacks: give it back at once. */
		if (d->swapped_kib > 0)
			step = max64(step, d->swapped_kib +
			    headroom(l, cur + d->swapped_kib));
		want = max64(need, cur + step);
		d->reason = PE_GROW_PRESSURE;
	} else if (need > cur) {
		want = need;
		d->reason = PE_GROW_NEED;
	} else if (d->coop != PE_COOP_OK) {
		/* Asking it for less again would not free anything. */
		d->reason = PE_UNCOOPERATIVE;
	} else if (cur > max64(need, keep) + dead) {
		if (c->now_ms - v->calm_since_ms >= p->hold_ms) {
			uint64_t step = min64((uint64_t)((double)cur *
			    p->shrink_pct / 100), p->shrink_max_kib);

			want = max64(max64(need, keep) + dead / 2, cur > step ?
			    cur - step : 0);
			d->reason = PE_SHRINK_IDLE;
		} else {
			d->reason = PE_HOLD;
		}
	}
	want = min64(max64(want, d->min_kib), d->max_kib);
	d->target_kib = want;
	d->step_kib = want;
	/* A guest that does not shrink keeps what it holds. */
	v->flexible = d->coop == PE_COOP_OK || want > cur;
}

/* What a guest the engine cannot move holds of the host. */
static uint64_t
held_kib(const struct pe_ctx *c, size_t i)
{
	const struct pe_guest *g = &c->host->guests[i];
	uint64_t t = c->out[i].target_kib;

	return g->has_balloon ? max64(t, g->actual_kib) : t;
}

/*
 * Stage two: when the wishes exceed the capacity, every flexible guest
 * keeps its minimum and the rest is shared by weight, no guest getting
 * more than it wants (water-filling).
 */
static void
share_capacity(struct pe_ctx *c)
{
	uint64_t cap = pe_capacity_kib(c->host, c->p);
	uint64_t fixed = 0, mins = 0, wants = 0, rest;
	bool again = true;

	for (size_t i = 0; i < c->n; i++) {
		if (c->vms[i]->flexible) {
			mins += c->out[i].min_kib;
			wants += c->out[i].target_kib;
		} else {
			fixed += held_kib(c, i);
		}
	}
	if (fixed + wants <= cap)
		return;
	rest = cap > fixed + mins ? cap - fixed - mins : 0;
	for (size_t i = 0; i < c->n; i++)
		c->vms[i]->active = c->vms[i]->flexible &&
		    c->out[i].target_kib > c->out[i].min_kib;
	/* Guests that want less than their share get what they want; the
	 * rest is shared again among the others, until none is left over. */
	while (again) {
		uint64_t weights = 0;

		again = false;
		for (size_t i = 0; i < c->n; i++)
			if (c->vms[i]->active)
				weights += weight(c->vms[i]);
		if (weights == 0)
			break;
		for (size_t i = 0; i < c->n; i++) {
			struct pe_decision *d = &c->out[i];
			uint64_t extra = d->target_kib - d->min_kib;

			if (!c->vms[i]->active)
				continue;
			if (extra <= rest * weight(c->vms[i]) / weights) {
				c->vms[i]->active = false;
				rest -= extra;
				again = true;
			}
		}
		if (again)
			continue;
		for (size_t i = 0; i < c->n; i++) {
			struct pe_decision *d = &c->out[i];

			if (!c->vms[i]->active)
				continue;
			d->target_kib = d->min_kib + rest *
			    weight(c->vms[i]) / weights;
			d->reason = PE_CAPACITY;
		}
	}
}

/* Grant up to budget to the growing guests (pressured == true: those under
 * pressure), in proportion to their growth; returns what was granted. */
static uint64_t
grant(struct pe_ctx *c, uint64_t budget, bool pressured)
{
	uint64_t want = 0, given = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];

		if (c->vms[i]->flexible && d->target_kib > d->prev_kib &&
		    (d->pressure > 0) == pressured)
			want += d->target_kib - d->prev_kib;
	}
	if (want <= budget)
		return want;
	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		uint64_t g;

		if (!c->vms[i]->flexible || d->target_kib <= d->prev_kib ||
		    (d->pressure > 0) != pressured)
			continue;
		g = (uint64_t)((double)budget * (double)(d->target_kib -
		    d->prev_kib) / (double)want);
		d->target_kib = d->prev_kib + g;
		d->reason = PE_BUDGET;
		given += g;
	}
	return given;
}

/*
 * Stage three, take before give: growth comes only from memory free now
 * (less the reserve and what earlier growth has not taken yet). When that
 * is short for guests under pressure, calm guests above their need shrink
 * to it at once; their memory is given in a later round, once freed.
 */
static void
take_before_give(struct pe_ctx *c)
{
	const struct pe_host *h = c->host;
	uint64_t promised = 0, budget, short_kib = 0, pressured_want = 0;

	for (size_t i = 0; i < c->n; i++) {
		const struct pe_guest *g = &h->guests[i];
		struct pe_decision *d = &c->out[i];

		if (g->has_balloon && g->target_kib > g->actual_kib)
			promised += g->target_kib - g->actual_kib;
		if (c->vms[i]->flexible && d->pressure > 0 &&
		    d->target_kib > d->prev_kib)
			pressured_want += d->target_kib - d->prev_kib;
	}
	budget = h->available_kib > c->p->host_reserve_kib + promised ?
	    h->available_kib - c->p->host_reserve_kib - promised : 0;
	if (pressured_want > budget)
		short_kib = pressured_want - budget;
	for (size_t i = 0; i < c->n && short_kib > 0; i++) {
		struct pe_decision *d = &c->out[i];
		uint64_t floor, take;

		if (!c->vms[i]->flexible || d->pressure > 0 ||
		    d->target_kib > d->prev_kib)
			continue;
		floor = max64(d->need_kib + deadband(c->p, d->need_kib) / 2,
		    d->min_kib);
		if (d->target_kib <= floor)
			continue;
		take = min64(d->target_kib - floor, short_kib);
		d->target_kib -= take;
		d->reason = PE_SHRINK_IDLE;
		short_kib -= take;
	}
	budget -= grant(c, budget, true);
	grant(c, budget, false);
}

int
pe_algo_pressure(struct pe_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		wish(c, i);
	share_capacity(c);
	take_before_give(c);
	return 0;
}
