/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm's own balloon policy, in five stages:
 *
 * 1. Each guest's floor, what it must have this round: its used memory
 *    plus headroom (or twice its last rise, when it climbs faster);
 *    under pressure at once a step more, or what it swapped out. A guest
 *    that showed pressure within the hold time keeps what it has; a calm
 *    one gives back at most a bounded step per round.
 * 2. The capacity is shared in levels, each filled for every guest (by
 *    weight) before the next: the memory guests use, their headroom, what
 *    they hold while not calm. A guest the host cannot fill to its floor
 *    is cut to what it got.
 * 3. When every floor fits, what is left is handed out as buffer, but
 *    for spare_pct's share, or more when the VMs' histories show them
 *    climbing beyond their day's peaks together (pool_risk()): first,
 *    by weight, up to the guest's peak in the hours like this one, then
 *    up to its peak of the last day (history, with six
 *    hours of it); then by weight times how much the guest has surged
 *    lately, to each at most twice its largest recent rise, so memory
 *    sits where the next burst is likely; the rest to every guest by
 *    weight, so that memory the host does not need waits in its guests
 *    for the first burst of one that was idle. No surge or even buffer
 *    goes above a guest's weighted share of the host; the history tiers
 *    may (a big VM's daily peak is often several shares), so on a host
 *    whose floors then fill it, a guest that gets pressure can be cut
 *    below what its history gave it while calm: weights decide then.
 * 4. Targets move only when they leave [floor, floor + buffer] by more
 *    than a dead band, so a steady host stands still.
 * 5. Take before give: growth only takes memory that is free now; when
 *    that is short for the guests' floors, calm guests give back down to
 *    their need at once, the largest excess first, and the growth
 *    follows once it is free. Buffers grow on a few guests a round.
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

/* What the guest used at most within the last history_hours (a day),
 * plus a margin: a VM that climbed there will likely climb there again.
 * 0 without enough history. */
static uint64_t
history_level(const struct pe_ctx *c, struct pe_vm *v,
    struct pe_decision *d)
{
	const struct pe_policy *p = c->p;

	if (!pe_history_on(p, v))
		return 0;
	d->history_kib = pe_history_peak_kib(v, p->history_hours);
	d->history_hours = p->history_hours;
	d->history_margin_pct = p->history_margin_pct;
	return pe_history_margin(p, d->history_kib);
}

/* What it used in the hours like this one, plus the margin. */
static uint64_t
soon_level(const struct pe_ctx *c, struct pe_vm *v)
{
	if (!pe_history_on(c->p, v))
		return 0;
	return pe_history_margin(c->p, pe_history_soon_kib(v));
}

/* Stage one. */
static void
floor_of(struct pe_ctx *c, size_t i)
{
	const struct pe_policy *p = c->p;
	const struct pe_guest *g = &c->host->guests[i];
	struct pe_decision *d = &c->out[i];
	struct pe_vm *v = c->vms[i];
	const struct pe_limits *l = v->limits;
	uint64_t cur = d->prev_kib, base, need, fl;
	bool calm;

	v->flexible = false;
	v->floor = v->need_floor = v->use_floor = v->allowance = cur;
	v->hist_level = v->soon_level = cur;
	if (l->unmanaged) {
		d->reason = PE_UNMANAGED;
		return;
	}
	if (g->stale || !g->has_meminfo) {
		d->reason = PE_STALE;
		return;
	}
	base = max64(d->used_kib, (uint64_t)v->used_ewma);
	/* A guest that rose by R since the last report may well rise by R
	 * again before the next: twice its rise, when above the headroom. */
	need = base + max64(pe_headroom(l, base), (uint64_t)(2 * v->rise));
	d->need_kib = need;
	calm = c->now_ms - v->calm_since_ms >= p->hold_ms;
	if (d->pressure > 0) {
		uint64_t step = (uint64_t)((double)max64(p->grow_min_kib,
		    (uint64_t)((double)cur * p->grow_pct / 100)) * d->pressure);

		/* What went to swap is what it lacks: give it back at once. */
		if (d->swapped_kib > 0)
			step = max64(step, d->swapped_kib +
			    pe_headroom(l, cur + d->swapped_kib));
		fl = max64(need, cur + step);
		v->need_floor = fl;
		d->reason = PE_GROW_PRESSURE;
	} else if (need > cur + deadband(p, cur) / 2) {
		/* Within half the dead band, the headroom is the buffer. */
		fl = need;
		v->need_floor = fl;
		d->reason = PE_GROW_NEED;
	} else if (d->coop != PE_COOP_OK) {
		/* Asking it for less again would not free anything. */
		fl = cur;
		v->need_floor = fl;
		d->reason = PE_UNCOOPERATIVE;
	} else if (!calm) {
		fl = cur;
		v->need_floor = min64(cur, need);
		d->reason = cur > need + deadband(p, cur) ? PE_HOLD : PE_KEEP;
	} else {
		uint64_t step = min64((uint64_t)((double)cur *
		    p->shrink_pct / 100), p->shrink_max_kib);

		/* Calm: never up from here (a need within half the dead
		 * band above what it has is covered by its headroom). */
		fl = max64(min64(need, cur), cur > step ? cur - step : 0);
		v->need_floor = min64(fl, need);
	}
	v->floor = min64(max64(fl, d->min_kib), d->max_kib);
	v->hist_level = min64(max64(history_level(c, v, d), v->floor),
	    d->max_kib);
	v->soon_level = min64(max64(soon_level(c, v), v->floor),
	    v->hist_level);
	v->need_floor = min64(max64(v->need_floor, d->min_kib), v->floor);
	v->use_floor = min64(max64(base + d->swapped_kib, d->min_kib),
	    v->need_floor);
	/* A guest that does not shrink keeps what it holds. */
	v->flexible = d->coop == PE_COOP_OK || v->floor > cur;
}

/* What a guest holds of the host: its target, or more while its balloon
 * is still above it. */
static uint64_t
held_kib(const struct pe_ctx *c, size_t i)
{
	const struct pe_guest *g = &c->host->guests[i];
	uint64_t t = c->out[i].prev_kib;

	return g->has_balloon ? max64(t, g->actual_kib) : t;
}

/*
 * Share amount among the flexible guests by wgt(i), none getting more
 * than room(i) (water-filling). Adds each share to *out(i); returns what
 * was left over.
 */
static uint64_t
water_fill(struct pe_ctx *c, uint64_t amount,
    uint64_t (*room)(const struct pe_ctx *, size_t),
    uint64_t (*wgt)(const struct pe_ctx *, size_t), uint64_t *share)
{
	bool again = true;

	for (size_t i = 0; i < c->n; i++) {
		share[i] = 0;
		c->vms[i]->active = c->vms[i]->flexible && room(c, i) > 0;
	}
	while (again && amount > 0) {
		uint64_t weights = 0;

		again = false;
		for (size_t i = 0; i < c->n; i++)
			if (c->vms[i]->active)
				weights += wgt(c, i);
		if (weights == 0)
			break;
		/* Guests that want less than their share get what they
		 * want; the rest is shared again among the others. */
		for (size_t i = 0; i < c->n; i++) {
			uint64_t r = room(c, i);

			if (c->vms[i]->active &&
			    r <= (uint64_t)((double)amount *
			    (double)wgt(c, i) / (double)weights)) {
				c->vms[i]->active = false;
				share[i] = r;
				amount -= r;
				again = true;
			}
		}
		if (again)
			continue;
		for (size_t i = 0; i < c->n; i++) {
			if (!c->vms[i]->active)
				continue;
			share[i] = (uint64_t)((double)amount *
			    (double)wgt(c, i) / (double)weights);
		}
		amount = 0;
	}
	return amount;
}

/*
 * The levels of what a guest gets, each filled for every guest before the
 * next: the memory it uses, its headroom, what it holds while it is not
 * calm; then, when the host has room for all of that, buffers. Each room
 * is what guest i lacks of the level above its allowance so far.
 */
static uint64_t
room_upto(const struct pe_ctx *c, size_t i, uint64_t level)
{
	uint64_t a = c->vms[i]->allowance;

	return level > a ? level - a : 0;
}

static uint64_t
room_to_use(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, c->vms[i]->use_floor);
}

static uint64_t
room_to_need(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, c->vms[i]->need_floor);
}

static uint64_t
room_to_floor(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, c->vms[i]->floor);
}

static uint64_t
room_to_soon(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, c->vms[i]->soon_level);
}

/* The first buffer: up to the guest's peak of the last day. */
static uint64_t
room_to_history(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, c->vms[i]->hist_level);
}

/* Buffer stays below the guest's maximum and its weighted share of the
 * host: a guest must never get more calm than under pressure, when the
 * floors fill the host and weights decide. */
static uint64_t
room_even(const struct pe_ctx *c, size_t i)
{
	return room_upto(c, i, min64(c->out[i].max_kib, c->vms[i]->fair));
}

/* The surge buffer goes where bursts come from: at most twice the
 * guest's largest recent rise. */
static uint64_t
room_surge(const struct pe_ctx *c, size_t i)
{
	return min64(room_even(c, i), (uint64_t)(2 * c->vms[i]->surge));
}

static uint64_t
by_weight(const struct pe_ctx *c, size_t i)
{
	return weight(c->vms[i]);
}

/* Weight times what the guest may need at short notice: its largest
 * recent rise (slow to change, so buffers do not churn). */
static uint64_t
by_surge(const struct pe_ctx *c, size_t i)
{
	const struct pe_vm *v = c->vms[i];

	return weight(v) * (uint64_t)(v->surge / 1024 + 16);
}

/* One level: amount water-filled into the allowances; returns the rest. */
static uint64_t
fill(struct pe_ctx *c, uint64_t amount,
    uint64_t (*room)(const struct pe_ctx *, size_t),
    uint64_t (*wgt)(const struct pe_ctx *, size_t))
{
	uint64_t left = water_fill(c, amount, room, wgt, c->share);

	for (size_t i = 0; i < c->n; i++)
		if (c->vms[i]->flexible)
			c->vms[i]->allowance += c->share[i];
	return left;
}

/*
 * Pool-level risk: how far the host's VMs with history went above their
 * day's peak (plus margin) together within one hour, at most, over
 * the last pool_hours (their hours are Unix hours, so they line up: VMs
 * that climbed at the same hour add up, VMs that took turns do not), each
 * hour's peak plus the history margin. False when the term is off or no VM
 * has enough history.
 */
static bool
pool_risk(const struct pe_ctx *c, uint64_t *ret_kib)
{
	const struct pe_policy *p = c->p;
	uint64_t over[PE_HIST_HOURS] = { 0 }, newest = 0, top = 0;
	uint32_t hours = p->pool_hours;
	bool any = false;

	if (hours == 0 || p->history_hours == 0)
		return false;
	for (size_t i = 0; i < c->n; i++) {
		const struct pe_vm *v = c->vms[i];

		if (!v->flexible || !pe_history_on(p, v))
			continue;
		any = true;
		newest = max64(newest, v->hist_hour);
	}
	if (!any)
		return false;
	for (size_t i = 0; i < c->n; i++) {
		struct pe_vm *v = c->vms[i];
		uint64_t level;

		if (!v->flexible || !pe_history_on(p, v))
			continue;
		/* What its own buffer covers: its day's peak, or its need;
		 * not what it holds now (a calm VM's floor follows its
		 * size, and would hide every risk once memory is out). */
		level = max64(v->need_floor, pe_history_margin(p,
		    pe_history_peak_kib(v, p->history_hours)));
		pe_history_over(p, v, newest, hours, level, over);
	}
	for (uint32_t k = 0; k < hours; k++)
		top = max64(top, over[k]);
	*ret_kib = top;
	return true;
}

/* Stages two and three: cut the floors to the capacity, or hand out the
 * spare as buffer. Sets each flexible guest's allowance. */
static void
share_capacity(struct pe_ctx *c)
{
	uint64_t cap = pe_capacity_kib(c->host, c->p);
	uint64_t fixed = 0, mins = 0, rest, weights = 0, give, risk;
	bool cut = false;

	for (size_t i = 0; i < c->n; i++) {
		struct pe_vm *v = c->vms[i];

		if (v->flexible) {
			mins += c->out[i].min_kib;
			weights += weight(v);
			v->allowance = c->out[i].min_kib;
		} else {
			fixed += held_kib(c, i);
		}
	}
	rest = cap > fixed + mins ? cap - fixed - mins : 0;
	for (size_t i = 0; i < c->n; i++)
		c->vms[i]->fair = c->out[i].min_kib + (uint64_t)((double)rest *
		    (double)weight(c->vms[i]) / (double)(weights ? weights : 1));
	rest = fill(c, rest, room_to_use, by_weight);
	rest = fill(c, rest, room_to_need, by_weight);
	rest = fill(c, rest, room_to_floor, by_weight);
	for (size_t i = 0; i < c->n; i++) {
		struct pe_vm *v = c->vms[i];

		if (v->flexible && v->allowance < v->floor) {
			v->floor = v->allowance;
			c->out[i].reason = PE_CAPACITY;
			cut = true;
		}
	}
	if (cut)
		return;
	/* Of what the floors leave, the host keeps the share spare_pct
	 * leaves, or more when its VMs' histories say they climb together
	 * beyond their buffers (pool_risk()), and hands out the rest: first
	 * up to each guest's peak of the hours like this one and of the last
	 * day, then by recent surges. */
	give = (uint64_t)((double)rest * c->p->spare_pct / 100);
	if (pool_risk(c, &risk) && rest - give < risk)
		give = rest > risk ? rest - risk : 0;
	rest = fill(c, give, room_to_soon, by_weight);
	rest = fill(c, rest, room_to_history, by_weight);
	rest = fill(c, rest, room_surge, by_surge);
	/* What the surge buffers leave goes to every guest by weight, so a
	 * host with memory to spare keeps it in its guests, ready for the
	 * first burst of one that has been idle. */
	fill(c, rest, room_even, by_weight);
}

/* How far the trim may take guest i: to its floor; a guest cut to its
 * share of a full host, a dead band below that share (no further than its
 * need), which it keeps without growing back (stage four), so that the
 * trim is taken from a few guests, not a little from each. */
static uint64_t
trim_floor(const struct pe_ctx *c, size_t i)
{
	const struct pe_vm *v = c->vms[i];
	uint64_t dead = deadband(c->p, c->out[i].prev_kib);

	if (c->out[i].reason != PE_CAPACITY || c->out[i].pressure > 0)
		return v->floor;
	return max64(v->use_floor, v->floor > dead ? v->floor - dead : 0);
}

/* Stage four: move only when out of the band by more than the dead band;
 * never leave the sum above the capacity for the sake of the band. */
static void
place(struct pe_ctx *c)
{
	uint64_t cap = pe_capacity_kib(c->host, c->p), sum = 0;

	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		struct pe_vm *v = c->vms[i];
		uint64_t cur = d->prev_kib, dead = deadband(c->p, cur);

		if (!v->flexible) {
			sum += held_kib(c, i);
			continue;
		}
		if (cur < v->floor && d->reason == PE_CAPACITY &&
		    d->pressure == 0 && cur >= v->use_floor &&
		    v->floor - cur <= dead) {
			/* Its share of a full host moved a little; it has
			 * what it uses. */
			d->target_kib = cur;
		} else if (cur < v->floor) {
			/* Changing anyway: take the buffer too. */
			d->target_kib = v->allowance;
		} else if (cur > v->allowance && (cur > v->allowance + dead ||
		    (v->allowance == v->floor && d->reason != PE_CAPACITY &&
		    cur > d->need_kib + dead))) {
			/* Above its band, or without a buffer and calm above
			 * its need. A buffer or a share of a full host that
			 * shrinks a little stays: the trim below takes what
			 * the capacity needs, from few guests. */
			d->target_kib = v->allowance;
			if (d->reason != PE_CAPACITY)
				d->reason = PE_SHRINK_IDLE;
		} else if (v->allowance > cur + dead &&
		    c->now_ms - v->taken_ms >= c->p->hold_ms) {
			/* Not while it gives back to others' floors. */
			d->target_kib = v->allowance;
			d->reason = v->allowance <= v->hist_level ?
			    PE_GROW_HISTORY : PE_GROW_SPARE;
		} else {
			d->target_kib = cur;
			if (d->reason == PE_GROW_NEED ||
			    d->reason == PE_GROW_HISTORY ||
			    d->reason == PE_GROW_PRESSURE)
				d->reason = PE_KEEP;
		}
		d->step_kib = d->target_kib;
		sum += d->target_kib;
	}
	/* Over the capacity (buffers the band let stay while another
	 * guest's floor rose): trim buffers above floors, the largest
	 * first and each as far as needed, so that few guests get a
	 * command; a trimmed buffer does not grow back for the hold time. */
	while (sum > cap) {
		struct pe_decision *d;
		uint64_t over = 0, cut;
		size_t worst = c->n;

		for (size_t i = 0; i < c->n; i++) {
			uint64_t t = c->out[i].target_kib;
			uint64_t low = trim_floor(c, i);

			if (c->vms[i]->flexible && t > low && t - low > over) {
				over = t - low;
				worst = i;
			}
		}
		if (worst == c->n)
			break;
		d = &c->out[worst];
		cut = min64(over, sum - cap);
		d->target_kib -= cut;
		sum -= cut;
		if (d->target_kib < d->prev_kib) {
			d->reason = PE_SHRINK_IDLE;
			c->vms[worst]->taken_ms = c->now_ms;
		}
	}
}

enum tier { TIER_PRESSURED, TIER_CALM, TIER_BUFFER };

/* Where guest i's growth starts: its target, or up to its floor what its
 * balloon still holds above that (no growth: the memory is still its own).
 * Held memory above the floor is on its way to another guest. */
static uint64_t
growth_base(const struct pe_ctx *c, size_t i)
{
	uint64_t t = c->out[i].prev_kib;

	return max64(t, min64(held_kib(c, i), c->vms[i]->floor));
}

/* The part of guest i's growth in a tier: up to its floor (pressured or
 * calm guests), or above it (the buffer, everyone). */
static uint64_t
growth_in(const struct pe_ctx *c, size_t i, enum tier t)
{
	const struct pe_decision *d = &c->out[i];
	const struct pe_vm *v = c->vms[i];
	uint64_t cur = growth_base(c, i), f = max64(v->floor, cur);

	if (!v->flexible || d->target_kib <= cur)
		return 0;
	if (t == TIER_BUFFER)
		return d->target_kib > f ? d->target_kib - f : 0;
	if ((d->pressure > 0) != (t == TIER_PRESSURED))
		return 0;
	return min64(d->target_kib, f) - cur;
}

/*
 * Grant budget tier by tier, in proportion to each guest's growth within
 * the tier, adding to given[]; returns what is left. A guest that gains in
 * an earlier tier loses at most that much in a later one, so more
 * pressure never means less memory.
 */
static uint64_t
grant(struct pe_ctx *c, uint64_t budget, enum tier t, uint64_t *given)
{
	uint64_t want = 0;

	for (size_t i = 0; i < c->n; i++)
		want += growth_in(c, i, t);
	if (want <= budget) {
		for (size_t i = 0; i < c->n; i++)
			given[i] += growth_in(c, i, t);
		return budget - want;
	}
	for (size_t i = 0; i < c->n; i++)
		given[i] += (uint64_t)((double)budget *
		    (double)growth_in(c, i, t) / (double)want);
	return 0;
}

/* What a calm guest that is not growing holds above its need. */
static uint64_t
giveable(const struct pe_ctx *c, size_t i)
{
	const struct pe_decision *d = &c->out[i];
	uint64_t floor = max64(d->need_kib, d->min_kib);

	if (!c->vms[i]->flexible || d->pressure > 0 ||
	    d->target_kib > d->prev_kib || d->target_kib <= floor)
		return 0;
	return d->target_kib - floor;
}

/* Stage five. */
static void
take_before_give(struct pe_ctx *c)
{
	const struct pe_host *h = c->host;
	uint64_t promised = 0, budget, short_kib = 0, floors_want = 0;
	uint64_t held = 0;

	for (size_t i = 0; i < c->n; i++) {
		const struct pe_guest *g = &h->guests[i];

		held += held_kib(c, i);
		if (g->has_balloon && g->target_kib > g->actual_kib)
			promised += g->target_kib - g->actual_kib;
		floors_want += growth_in(c, i, TIER_PRESSURED) +
		    growth_in(c, i, TIER_CALM);
	}
	budget = h->available_kib > c->p->host_reserve_kib + promised ?
	    h->available_kib - c->p->host_reserve_kib - promised : 0;
	/* A guest pool smaller than the host: what it has not handed out,
	 * counting what each guest holds or was promised. */
	if (c->p->guest_capacity_kib > 0) {
		uint64_t cap = pe_capacity_kib(h, c->p);

		budget = min64(budget, cap > held ? cap - held : 0);
	}
	if (floors_want > budget)
		short_kib = floors_want - budget;
	/* Short for floors: no buffer grows this round (it would be granted
	 * last anyway), and a guest that only wanted buffer can give. */
	for (size_t i = 0; i < c->n && short_kib > 0; i++) {
		struct pe_decision *d = &c->out[i];
		const struct pe_vm *v = c->vms[i];

		if (!v->flexible || d->pressure > 0 ||
		    d->target_kib <= d->prev_kib || d->target_kib <= v->floor)
			continue;
		d->target_kib = max64(d->prev_kib, v->floor);
		if (d->target_kib == d->prev_kib)
			d->reason = PE_KEEP;
	}
	/* Calm guests that are not growing give back what they hold above
	 * their need, the largest excess first and each all of it, so that
	 * as few guests as possible get a command (in proportion, or down to
	 * a common level, every calm guest of the host got one each round). */
	while (short_kib > 0) {
		size_t top = c->n;
		uint64_t most = 0, take;

		for (size_t i = 0; i < c->n; i++)
			if (giveable(c, i) > most) {
				most = giveable(c, i);
				top = i;
			}
		if (top == c->n)
			break;
		take = min64(most, short_kib);
		c->out[top].target_kib -= take;
		c->out[top].reason = PE_SHRINK_IDLE;
		c->vms[top]->taken_ms = c->now_ms;
		short_kib -= take;
	}
	for (size_t i = 0; i < c->n; i++)
		c->share[i] = 0;
	budget = grant(c, budget, TIER_PRESSURED, c->share);
	budget = grant(c, budget, TIER_CALM, c->share);
	grant(c, budget, TIER_BUFFER, c->share);
	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		uint64_t has = growth_base(c, i);

		if (!c->vms[i]->flexible || d->target_kib <= has ||
		    has + c->share[i] >= d->target_kib)
			continue;
		/* A buffer grows by at least a dead band at a time, not in
		 * every slice of memory another guest's shrinking frees. */
		if (d->prev_kib >= c->vms[i]->floor &&
		    has + c->share[i] < d->prev_kib + deadband(c->p,
		    d->prev_kib)) {
			d->target_kib = d->prev_kib;
			d->reason = PE_KEEP;
			continue;
		}
		d->target_kib = has + c->share[i];
		/* Growth toward the day's peak stays history's, in
		 * slices of what is free. */
		if (d->reason != PE_GROW_HISTORY)
			d->reason = PE_BUDGET;
	}
}

/*
 * Drop optional changes too small to matter (under max(8 MiB, 1 %) of the
 * target): each is a command, and a balloon does not move for a few MiB.
 * Growth a guest needs is never dropped, and a small shrink stays when the
 * host needs it to fit.
 */
static void
skip_small(struct pe_ctx *c)
{
	uint64_t cap = pe_capacity_kib(c->host, c->p), sum = 0;

	for (size_t i = 0; i < c->n; i++)
		sum += c->vms[i]->flexible ? c->out[i].target_kib :
		    held_kib(c, i);
	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		uint64_t small = max64(8 * 1024, d->prev_kib / 100);

		if (!c->vms[i]->flexible || d->reason == PE_CAPACITY ||
		    d->prev_kib < d->min_kib || d->prev_kib > d->max_kib)
			continue;
		/* Only what is optional: buffer growth and calm shrinking. */
		if (d->reason != PE_GROW_SPARE &&
		    d->reason != PE_GROW_HISTORY &&
		    d->reason != PE_SHRINK_IDLE)
			continue;
		if (d->target_kib > d->prev_kib &&
		    d->target_kib - d->prev_kib < small) {
			sum -= d->target_kib - d->prev_kib;
			d->target_kib = d->prev_kib;
			d->reason = PE_KEEP;
		} else if (d->target_kib < d->prev_kib &&
		    d->prev_kib - d->target_kib < small &&
		    sum + (d->prev_kib - d->target_kib) <= cap) {
			sum += d->prev_kib - d->target_kib;
			d->target_kib = d->prev_kib;
			d->reason = PE_KEEP;
		}
	}
}

/*
 * Buffers grow on a few guests a round (1 + n/32), the largest growth
 * first: on a scheduler's start or a policy change every guest of every
 * host would get one at once (50,000 commands and events for 1,000 hosts
 * of 50 VMs, more than the bus carries in a second); the rest follow in
 * the next rounds.
 */
/* Growth of guest i above a floor it has: buffer only. */
static uint64_t
buffer_growth(const struct pe_ctx *c, size_t i)
{
	const struct pe_decision *d = &c->out[i];

	if ((d->reason != PE_GROW_SPARE && d->reason != PE_GROW_HISTORY &&
	    d->reason != PE_BUDGET) ||
	    d->pressure > 0 || d->prev_kib < c->vms[i]->floor ||
	    d->target_kib <= d->prev_kib)
		return 0;
	return d->target_kib - d->prev_kib;
}

static void
few_buffers(struct pe_ctx *c)
{
	size_t limit = 1 + c->n / 32, count = 0, keep = 0;
	uint64_t lo = 0, hi = 0;

	for (size_t i = 0; i < c->n; i++) {
		count += buffer_growth(c, i) > 0;
		hi = max64(hi, buffer_growth(c, i));
	}
	if (count <= limit)
		return;
	/* The smallest growth that more than limit guests exceed: those
	 * above it stay, and of those at it the last ones in the list, up
	 * to the limit (a bisection, not a sort: a host has up to 4,096). */
	while (hi - lo > 1) {
		uint64_t mid = lo + (hi - lo) / 2;
		size_t above = 0;

		for (size_t i = 0; i < c->n; i++)
			above += buffer_growth(c, i) > mid;
		if (above > limit)
			lo = mid;
		else
			hi = mid;
	}
	for (size_t i = 0; i < c->n; i++)
		keep += buffer_growth(c, i) > hi;
	for (size_t i = c->n; i-- > 0;) {
		uint64_t g = buffer_growth(c, i);

		if (g == 0 || g > hi)
			continue;
		if (g == hi && keep < limit) {
			keep++;
			continue;
		}
		c->out[i].target_kib = c->out[i].prev_kib;
		c->out[i].reason = PE_KEEP;
	}
}

int
pe_algo_pressure(struct pe_ctx *c)
{
	for (size_t i = 0; i < c->n; i++)
		floor_of(c, i);
	share_capacity(c);
	place(c);
	take_before_give(c);
	skip_small(c);
	few_buffers(c);
	return 0;
}
