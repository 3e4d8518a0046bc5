/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine's frame: per-host history, limits from the policy's
 * rules, cooperation tracking, and the steps every algorithm shares. The
 * algorithms themselves are in pressure.c and baselines.c.
 */
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestmem.h"
#include "policy.h"
#include "policy_int.h"

static const char *const algo_names[PE_ALGO_COUNT] = {
	[PE_ALGO_PRESSURE] = "pressure",
	[PE_ALGO_STATIC] = "static",
	[PE_ALGO_XENMM] = "xenmm",
	[PE_ALGO_MOM] = "mom",
};

const char *
pe_algo_name(enum pe_algo a)
{
	return (unsigned)a < PE_ALGO_COUNT ? algo_names[a] : NULL;
}

int
pe_algo_from_name(const char *name, enum pe_algo *ret)
{
	for (int i = 0; name != NULL && i < PE_ALGO_COUNT; i++) {
		if (strcmp(name, algo_names[i]) == 0) {
			*ret = (enum pe_algo)i;
			return 0;
		}
	}
	return -ENOENT;
}

static const char *const reason_names[] = {
	[PE_KEEP] = "keep",
	[PE_GROW_PRESSURE] = "grow-pressure",
	[PE_GROW_NEED] = "grow-need",
	[PE_SHRINK_IDLE] = "shrink-idle",
	[PE_HOLD] = "hold",
	[PE_CAPACITY] = "capacity",
	[PE_BUDGET] = "budget",
	[PE_STATIC] = "static",
	[PE_XENMM] = "xenmm",
	[PE_MOM_SHRINK] = "mom-shrink",
	[PE_MOM_GROW] = "mom-grow",
	[PE_UNMANAGED] = "unmanaged",
	[PE_STALE] = "stale",
	[PE_UNCOOPERATIVE] = "uncooperative",
	[PE_GROW_SPARE] = "grow-spare",
	[PE_GROW_HISTORY] = "grow-history",
};

const char *
pe_reason_name(enum pe_reason r)
{
	return (unsigned)r < sizeof(reason_names) / sizeof(*reason_names) ?
	    reason_names[r] : "unknown";
}

void
pe_policy_defaults(struct pe_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->algo = PE_ALGO_PRESSURE;
	p->host_reserve_kib = 512 * 1024;
	p->vm_overhead_kib = 0;
	p->defaults.weight = 100;
	p->defaults.headroom_kib = 128 * 1024;
	p->defaults.headroom_pct = 10;
	p->psi_low_pct = 1;
	p->psi_high_pct = 20;
	p->faults_high_s = 1000;
	p->avail_low_pct = 5;
	p->grow_pct = 50;
	p->grow_min_kib = 64 * 1024;
	p->shrink_pct = 5;
	p->shrink_max_kib = 256 * 1024;
	p->hold_ms = 30000;
	p->deadband_pct = 5;
	p->deadband_kib = 32 * 1024;
	p->ewma_alpha = 0.3;
	p->peak_halflife_ms = 600000;
	p->spare_pct = 90;
	p->surge_halflife_ms = 3600000;
	p->history_hours = 24;
	p->pool_hours = 48;
	p->reclaim_idle_ms = 300000;
	p->reclaim_psi_budget_pct = 5;
	p->reclaim_interval_ms = 600000;
	p->reclaim_min_kib = 64 * 1024;
	p->reclaim_max_kib = 1024 * 1024;
	p->history_margin_pct = 10;
	p->history_min_hours = 6;
	p->inactive_ms = 5000;
	p->uncooperative_ms = 20000;
}

static int
bad(char *why, size_t whylen, const char *what)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s", what);
	return -EINVAL;
}

static int
limits_validate(const struct pe_limits *l, const char *where, char *why,
    size_t whylen)
{
	char msg[256];

	if (l->max_kib != 0 && l->min_kib > l->max_kib) {
		snprintf(msg, sizeof(msg), "%s: min %llu KiB above max %llu "
		    "KiB", where, (unsigned long long)l->min_kib,
		    (unsigned long long)l->max_kib);
		return bad(why, whylen, msg);
	}
	if (l->weight > 10000) {
		snprintf(msg, sizeof(msg), "%s: weight %u outside 0..10000",
		    where, l->weight);
		return bad(why, whylen, msg);
	}
	if (!(l->headroom_pct >= 0 && l->headroom_pct <= 100)) {
		snprintf(msg, sizeof(msg), "%s: headroom %.1f %% outside "
		    "0..100", where, l->headroom_pct);
		return bad(why, whylen, msg);
	}
	return 0;
}

static bool
pct_ok(double v, double lo, double hi)
{
	return v >= lo && v <= hi;	/* false for NaN */
}

int
pe_policy_validate(const struct pe_policy *p, char *why, size_t whylen)
{
	char where[PE_ID_MAX * 2 + 16];
	int r;

	if (pe_algo_name(p->algo) == NULL)
		return bad(why, whylen, "unknown algorithm");
	r = limits_validate(&p->defaults, "defaults", why, whylen);
	if (r < 0)
		return r;
	if (p->n_rules > PE_RULES_MAX)
		return bad(why, whylen, "too many rules");
	for (size_t i = 0; i < p->n_rules; i++) {
		if (p->rules[i].pattern[0] == '\0')
			return bad(why, whylen, "rule without a pattern");
		snprintf(where, sizeof(where), "rule \"%s\"",
		    p->rules[i].pattern);
		r = limits_validate(&p->rules[i].limits, where, why, whylen);
		if (r < 0)
			return r;
	}
	if (!pct_ok(p->psi_low_pct, 0, 100) ||
	    !pct_ok(p->psi_high_pct, 0, 100) ||
	    p->psi_low_pct >= p->psi_high_pct)
		return bad(why, whylen, "psi thresholds: need 0 <= low < "
		    "high <= 100");
	if (!pct_ok(p->spare_pct, 0, 100))
		return bad(why, whylen, "spare outside 0..100 %");
	if (!pct_ok(p->avail_low_pct, 0, 100) ||
	    !pct_ok(p->grow_pct, 0, 1000) || !pct_ok(p->shrink_pct, 0, 100) ||
	    !pct_ok(p->deadband_pct, 0, 100) ||
	    !pct_ok(p->faults_high_s, 1, 1e9))
		return bad(why, whylen, "a percentage or rate is out of "
		    "range");
	if (!(p->ewma_alpha > 0 && p->ewma_alpha <= 1))
		return bad(why, whylen, "ewma alpha outside (0, 1]");
	if (p->inactive_ms == 0 || p->uncooperative_ms < p->inactive_ms)
		return bad(why, whylen, "need 0 < inactive <= uncooperative");
	return 0;
}

struct pe_state *
pe_state_new(void)
{
	return calloc(1, sizeof(struct pe_state));
}

void
pe_state_free(struct pe_state *st)
{
	if (st == NULL)
		return;
	free(st->vms);
	free(st->scratch);
	free(st->share);
	free(st);
}

uint64_t
pe_guest_used_kib(const struct pe_guest *g)
{
	if (!g->has_meminfo || g->total_kib == 0)
		return g->has_balloon ? g->actual_kib : 0;
	return gm_used_kib(g->total_kib, g->available_kib,
	    g->has_balloon_in_total, g->balloon_in_total_kib, g->has_balloon,
	    g->actual_kib) + g->reserved_kib;
}

uint64_t
pe_capacity_kib(const struct pe_host *host, const struct pe_policy *p)
{
	uint64_t taken = p->host_reserve_kib +
	    p->vm_overhead_kib * (uint64_t)host->n_guests;
	uint64_t cap = host->total_kib > taken ? host->total_kib - taken : 0;

	if (p->guest_capacity_kib > 0 && p->guest_capacity_kib < cap)
		cap = p->guest_capacity_kib;
	return cap;
}

/* The VM's history, found where it was last time or by a search. */
/* Make room for n more VMs, so that vm_find() never moves the array. */
static int
vm_reserve(struct pe_state *st, size_t n)
{
	size_t cap = st->cap ? st->cap : 16;
	struct pe_vm *vms;

	while (cap < st->n + n)
		cap *= 2;
	if (cap == st->cap)
		return 0;
	vms = realloc(st->vms, cap * sizeof(*vms));
	if (vms == NULL)
		return -ENOMEM;
	st->vms = vms;
	st->cap = cap;
	return 0;
}

static struct pe_vm *
vm_found(struct pe_vm *v, uint64_t now_ms)
{
	/* Restored from a saved history: calm from now on, as new. */
	if (v->restored) {
		v->restored = false;
		v->calm_since_ms = now_ms;
	}
	return v;
}

static struct pe_vm *
vm_find(struct pe_state *st, size_t hint, const char *id, uint64_t now_ms)
{
	struct pe_vm *v;

	if (hint < st->n && strcmp(st->vms[hint].id, id) == 0)
		return vm_found(&st->vms[hint], now_ms);
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->vms[i].id, id) == 0)
			return vm_found(&st->vms[i], now_ms);
	/* Room was reserved: pointers taken earlier in the call stay. */
	v = &st->vms[st->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->calm_since_ms = now_ms;	/* no history: calm from now on */
	return v;
}

/* The largest use ago hours before the newest hour, MiB. */
static uint32_t
hist_at(const struct pe_vm *v, uint32_t ago)
{
	return v->hist[(v->hist_hour + PE_HIST_HOURS - ago) % PE_HIST_HOURS];
}

bool
pe_history_get(const struct pe_state *st, size_t i,
    struct pe_vm_history *out)
{
	const struct pe_vm *v;

	if (i >= st->n || st->vms[i].hist_hours == 0)
		return false;
	v = &st->vms[i];
	memset(out, 0, sizeof(*out));
	snprintf(out->vm_id, sizeof(out->vm_id), "%s", v->id);
	out->hour = v->hist_hour;
	out->hours = v->hist_hours;
	for (uint32_t k = 0; k < v->hist_hours; k++)
		out->mib[k] = hist_at(v, k);
	return true;
}

size_t
pe_history_vms(const struct pe_state *st)
{
	return st->n;
}

bool
pe_history_valid(const struct pe_vm_history *h)
{
	if (h->vm_id[0] == '\0' || memchr(h->vm_id, '\0',
	    sizeof(h->vm_id)) == NULL || h->hours == 0 ||
	    h->hours > PE_HIST_HOURS || h->hour < h->hours)
		return false;
	for (uint32_t k = 0; k < PE_HIST_HOURS; k++)
		if (h->mib[k] > PE_HIST_MIB_MAX ||
		    (k >= h->hours && h->mib[k] != 0))
			return false;
	return true;
}

int
pe_history_put(struct pe_state *st, const struct pe_vm_history *h)
{
	struct pe_vm *v = NULL;

	if (!pe_history_valid(h))
		return -EINVAL;
	for (size_t i = 0; i < st->n && v == NULL; i++)
		if (strcmp(st->vms[i].id, h->vm_id) == 0)
			v = &st->vms[i];
	if (v == NULL) {
		if (vm_reserve(st, 1) < 0)
			return -ENOMEM;
		v = &st->vms[st->n++];
		memset(v, 0, sizeof(*v));
		snprintf(v->id, sizeof(v->id), "%s", h->vm_id);
		v->restored = true;
	}
	memset(v->hist, 0, sizeof(v->hist));
	v->hist_hour = h->hour;
	v->hist_hours = h->hours;
	v->peak_hours = v->soon_hours = 0;
	for (uint32_t k = 0; k < h->hours; k++)
		v->hist[(h->hour + PE_HIST_HOURS - k) % PE_HIST_HOURS] =
		    h->mib[k];
	return 0;
}

/* Drop the VMs this report did not mention, keeping the order. */
static void
vm_forget_unseen(struct pe_state *st)
{
	size_t j = 0;

	for (size_t i = 0; i < st->n; i++) {
		if (!st->vms[i].seen)
			continue;
		if (i != j)
			st->vms[j] = st->vms[i];
		st->vms[j++].seen = false;
	}
	st->n = j;
}

static const struct pe_limits *
limits_for(const struct pe_policy *p, const char *id)
{
	for (size_t i = 0; i < p->n_rules; i++)
		if (fnmatch(p->rules[i].pattern, id, 0) == 0)
			return &p->rules[i].limits;
	return &p->defaults;
}

static double
ramp(double x, double lo, double hi)
{
	if (!(x > lo))
		return 0;
	if (x >= hi)
		return 1;
	return (x - lo) / (hi - lo);
}

/* The recent peak of used memory, decaying toward the present. */
static void
track_peak(const struct pe_policy *p, struct pe_vm *v, double used,
    uint64_t now_ms)
{
	if (v->peak_ms != 0 && now_ms > v->peak_ms && v->peak > used &&
	    p->peak_halflife_ms > 0)
		v->peak = used + (v->peak - used) * exp2(-(double)(now_ms -
		    v->peak_ms) / (double)p->peak_halflife_ms);
	if (used > v->peak || p->peak_halflife_ms == 0)
		v->peak = used;
	/* How fast it can grow: its rise since the last report, and the
	 * largest of the recent ones. */
	{
		double rise = v->peak_ms != 0 && used > v->prev_used ?
		    used - v->prev_used : 0;

		v->rise = rise;
	}
	if (v->peak_ms != 0 && now_ms > v->peak_ms &&
	    p->surge_halflife_ms > 0)
		v->surge *= exp2(-(double)(now_ms - v->peak_ms) /
		    (double)p->surge_halflife_ms);
	if (v->rise > v->surge)
		v->surge = v->rise;
	v->prev_used = used;
	v->peak_ms = now_ms;
}

/* The hourly peaks: used_kib counts for the hour of now_ms. */
static void
track_history(struct pe_vm *v, uint64_t used_kib, uint64_t now_ms)
{
	uint64_t hour = now_ms / 3600000;
	uint32_t mib = (uint32_t)((used_kib + 1023) / 1024);

	if (v->hist_hours == 0) {
		v->hist_hour = hour;
		v->hist_hours = 1;
	} else if (hour > v->hist_hour) {
		uint64_t gap = hour - v->hist_hour;

		/* Hours without a report have no peak. */
		for (uint64_t h = 1; h <= gap && h <= PE_HIST_HOURS; h++)
			v->hist[(v->hist_hour + h) % PE_HIST_HOURS] = 0;
		v->hist_hours = gap >= PE_HIST_HOURS ? PE_HIST_HOURS :
		    (uint32_t)(v->hist_hours + gap > PE_HIST_HOURS ?
		    PE_HIST_HOURS : v->hist_hours + gap);
		v->hist_hour = hour;
	}
	/* A clock that went back counts for the newest hour. */
	if (v->hist[v->hist_hour % PE_HIST_HOURS] < mib)
		v->hist[v->hist_hour % PE_HIST_HOURS] = mib;
	/* The cached peak holds within its hour, rising with it. */
	if (v->peak_hour == v->hist_hour && v->peak_mib < mib)
		v->peak_mib = mib;
}

uint64_t
pe_history_soon_kib(struct pe_vm *v)
{
	static const uint32_t ago[] = { 1, 23, 24, 25 };
	uint32_t top;

	/* The past hours once an hour; this one as it goes. */
	if (v->soon_hour != v->hist_hour || v->soon_hours != v->hist_hours) {
		v->soon_mib = 0;
		for (size_t i = 0; i < sizeof(ago) / sizeof(*ago) &&
		    ago[i] < v->hist_hours; i++)
			if (hist_at(v, ago[i]) > v->soon_mib)
				v->soon_mib = hist_at(v, ago[i]);
		v->soon_hour = v->hist_hour;
		v->soon_hours = v->hist_hours;
	}
	top = hist_at(v, 0);
	if (v->soon_mib > top)
		top = v->soon_mib;
	return (uint64_t)top * 1024;
}

void
pe_history_over(const struct pe_policy *p, const struct pe_vm *v,
    uint64_t newest, uint32_t hours, uint64_t level_kib, uint64_t *over_kib)
{
	for (uint32_t k = 0; k < hours && k <= newest; k++) {
		uint64_t hour = newest - k, ago, peak;

		if (hour > v->hist_hour)
			continue;
		ago = v->hist_hour - hour;
		if (ago >= v->hist_hours)
			break;
		peak = pe_history_margin(p, (uint64_t)hist_at(v,
		    (uint32_t)ago) * 1024);
		if (peak > level_kib)
			over_kib[k] += peak - level_kib;
	}
}

uint64_t
pe_history_peak_kib(struct pe_vm *v, uint32_t hours)
{
	uint32_t top = 0;

	if (hours > v->hist_hours)
		hours = v->hist_hours;
	/* Computed once an hour (a report a second: 3,600 times fewer). */
	if (v->peak_hours == hours && v->peak_hour == v->hist_hour)
		return (uint64_t)v->peak_mib * 1024;
	for (uint32_t h = 0; h < hours; h++)
		if (hist_at(v, h) > top)
			top = hist_at(v, h);
	v->peak_mib = top;
	v->peak_hours = hours;
	v->peak_hour = v->hist_hour;
	return (uint64_t)top * 1024;
}

/*
 * 0..1: how strongly the guest shows it lacks memory right now; and in
 * *swapped_kib how much it pushed out to swap since the last report, the
 * best measure of what it lacks, since a full guest shows no more used
 * memory than it has.
 */
static double
pressure_score(const struct pe_policy *p, const struct pe_guest *g,
    struct pe_vm *v, uint64_t now_ms, uint64_t *swapped_kib)
{
	double s = 0;

	*swapped_kib = 0;
	if (g->has_psi_total && v->have_prev_psi && now_ms > v->prev_psi_ms &&
	    g->psi_some_total_us >= v->prev_psi_us) {
		/* The share of the time since the last report the guest
		 * stalled on memory. */
		double pct = (double)(g->psi_some_total_us - v->prev_psi_us) /
		    (double)(now_ms - v->prev_psi_ms) / 10.0;

		s = ramp(pct, p->psi_low_pct, p->psi_high_pct);
	} else if (g->has_psi) {
		s = ramp(g->psi_some_avg10, p->psi_low_pct, p->psi_high_pct);
	}
	if (g->has_psi_total) {
		v->have_prev_psi = true;
		v->prev_psi_us = g->psi_some_total_us;
		v->prev_psi_ms = now_ms;
	}
	if (g->has_vmstat && v->have_prev && now_ms > v->prev_ms &&
	    g->major_faults >= v->prev_faults &&
	    g->swap_in_pages >= v->prev_swapin) {
		double dt = (double)(now_ms - v->prev_ms) / 1000.0;
		double faults = (double)(g->major_faults - v->prev_faults) / dt;
		double swapin = (double)(g->swap_in_pages - v->prev_swapin) /
		    dt;

		s = fmax(s, ramp(faults, p->faults_high_s / 20,
		    p->faults_high_s));
		s = fmax(s, ramp(swapin, 1, 256));
		if (g->oom_kills > v->prev_oom)
			s = 1;
		if (g->swap_out_pages > v->prev_swapout) {
			*swapped_kib = (g->swap_out_pages - v->prev_swapout) *
			    4;
			s = fmax(s, ramp((double)*swapped_kib, 0,
			    (double)p->grow_min_kib));
		}
	}
	if (g->has_meminfo && g->total_kib > 0) {
		/* Of what the guest has: a deflate-on-oom balloon's pages
		 * are in MemTotal. */
		uint64_t size = pe_guest_used_kib(g) + g->available_kib;
		double avail = 100.0 * (double)g->available_kib /
		    (double)(size > 0 ? size : 1);

		if (avail < p->avail_low_pct)
			s = fmax(s, 0.5 + 0.5 * (p->avail_low_pct - avail) /
			    p->avail_low_pct);
	}
	if (g->has_vmstat) {
		v->have_prev = true;
		v->prev_ms = now_ms;
		v->prev_faults = g->major_faults;
		v->prev_swapin = g->swap_in_pages;
		v->prev_swapout = g->swap_out_pages;
		v->prev_oom = g->oom_kills;
	}
	return s;
}

/*
 * squeezed's rule: a guest asked to shrink that makes no progress for
 * inactive_ms is inactive, for uncooperative_ms uncooperative.
 */
/* How far a balloon may stay from its target and still have reached it. */
static uint64_t
target_tolerance(uint64_t target_kib)
{
	return target_kib / 100 > 8192 ? target_kib / 100 : 8192;
}

static enum pe_coop
track_coop(const struct pe_policy *p, const struct pe_guest *g,
    struct pe_vm *v, uint64_t target_kib, uint64_t now_ms)
{
	uint64_t tolerance;

	if (!g->has_balloon)
		return v->coop = PE_COOP_OK;
	tolerance = target_tolerance(target_kib);
	if (g->actual_kib <= target_kib + tolerance) {
		v->shrink_since_ms = 0;
		return v->coop = PE_COOP_OK;
	}
	if (v->shrink_since_ms == 0 || g->actual_kib + 1024 < v->best_actual) {
		if (v->shrink_since_ms == 0)
			v->shrink_since_ms = now_ms;
		v->best_actual = g->actual_kib;
		v->progress_ms = now_ms;
	}
	if (now_ms - v->progress_ms >= p->uncooperative_ms)
		v->coop = PE_COOP_UNCOOPERATIVE;
	else if (now_ms - v->progress_ms >= p->inactive_ms)
		v->coop = PE_COOP_INACTIVE;
	else
		v->coop = PE_COOP_OK;
	return v->coop;
}

/*
 * Proactive reclaim, for a VM whose limits opt in: its agent's cold
 * anonymous memory (idle for reclaim_idle_ms, the shortest such bucket:
 * the most memory) is asked for while the guest is calm and stalls less
 * than the budget, at most reclaim_max_kib, once every reclaim_interval_ms.
 * The agent reclaims into the guest's swap and stops above the budget; the
 * balloon then takes what the guest no longer uses, as always.
 */
static void
reclaim_decide(const struct pe_policy *p, const struct pe_guest *g,
    struct pe_vm *v, struct pe_decision *d, uint64_t now_ms)
{
	uint64_t cold = 0;

	if (!v->limits->reclaim || g->stale || g->untrusted ||
	    d->reason == PE_UNMANAGED || d->pressure > 0 || !g->has_psi ||
	    g->psi_some_avg10 >= p->reclaim_psi_budget_pct)
		return;
	if (v->reclaim_ms != 0 && now_ms - v->reclaim_ms <
	    p->reclaim_interval_ms)
		return;
	for (size_t k = 0; k < g->n_cold && k < PE_COLD_MAX; k++)
		if (g->cold[k].idle_ms >= p->reclaim_idle_ms) {
			cold = g->cold[k].anon_kib;
			break;
		}
	if (cold == 0 || cold < p->reclaim_min_kib || p->reclaim_max_kib == 0)
		return;
	d->reclaim_kib = cold < p->reclaim_max_kib ? cold : p->reclaim_max_kib;
	d->reclaim_budget_pct = p->reclaim_psi_budget_pct;
	v->reclaim_ms = now_ms;
}

int
pe_decide(struct pe_state *st, const struct pe_host *host,
    const struct pe_policy *p, struct pe_decision *out, size_t cap)
{
	struct pe_ctx c;
	size_t n;
	int r;

	if (st == NULL || host == NULL || p == NULL ||
	    (host->n_guests > 0 && (host->guests == NULL || out == NULL)))
		return -EINVAL;
	n = host->n_guests;
	if (cap < n)
		return -ENOBUFS;
	c.p = p;
	c.host = host;
	c.out = out;
	c.n = n;
	c.now_ms = host->time_ms;
	if (st->scratch_cap < n) {
		struct pe_vm **vms = realloc(st->scratch, n * sizeof(*vms));
		uint64_t *share;

		if (vms == NULL)
			return -ENOMEM;
		st->scratch = vms;
		share = realloc(st->share, n * sizeof(*share));
		if (share == NULL)
			return -ENOMEM;
		st->share = share;
		st->scratch_cap = n;
	}
	c.vms = st->scratch;
	c.share = st->share;
	if (vm_reserve(st, n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct pe_guest *g = &host->guests[i];
		struct pe_decision *d = &out[i];
		const struct pe_limits *l;
		enum pe_coop before;
		struct pe_vm *v;

		if (g->vm_id == NULL)
			return -EINVAL;
		v = vm_find(st, i, g->vm_id, c.now_ms);
		c.vms[i] = v;
		v->seen = true;
		l = limits_for(p, g->vm_name != NULL ? g->vm_name : g->vm_id);
		memset(d, 0, sizeof(*d));
		pe_copy_str(d->vm_id, sizeof(d->vm_id), g->vm_id);
		d->max_kib = g->max_kib;
		if (l->max_kib != 0 && (d->max_kib == 0 ||
		    l->max_kib < d->max_kib))
			d->max_kib = l->max_kib;
		if (d->max_kib == 0)	/* unknown: never above what it has */
			d->max_kib = g->has_balloon ? (g->actual_kib >
			    g->target_kib ? g->actual_kib : g->target_kib) :
			    g->total_kib;
		d->min_kib = l->min_kib > g->min_kib ? l->min_kib : g->min_kib;
		if (d->min_kib > d->max_kib)
			d->min_kib = d->max_kib;
		/* The target in force: the report's where the hypervisor
		 * tells (Xen), else the last one decided here (QEMU has no
		 * target to read back), else what the guest has now. */
		d->prev_kib = g->has_balloon && g->target_kib > 0 ?
		    g->target_kib : v->target_kib ? v->target_kib :
		    g->has_balloon ? g->actual_kib : g->total_kib;
		d->used_kib = pe_guest_used_kib(g);
		/* A guest not believed uses no more than the host sees, and
		 * its pressure is not taken on its word either. */
		if (g->untrusted && g->has_host_used &&
		    g->host_used_kib < d->used_kib)
			d->used_kib = g->host_used_kib;
		d->pressure = g->stale || g->untrusted ? 0 :
		    pressure_score(p, g, v, c.now_ms, &d->swapped_kib);
		if (g->has_meminfo && !g->stale && !g->untrusted) {
			v->used_ewma = v->used_ewma == 0 ?
			    (double)d->used_kib : p->ewma_alpha *
			    (double)d->used_kib + (1 - p->ewma_alpha) *
			    v->used_ewma;
			track_peak(p, v, (double)d->used_kib, c.now_ms);
			track_history(v, d->used_kib, c.now_ms);
		}
		if (d->pressure > 0)
			v->calm_since_ms = c.now_ms;
		before = v->coop;
		d->coop = track_coop(p, g, v, d->prev_kib, c.now_ms);
		d->alert = d->coop > before;
		d->target_kib = d->prev_kib;
		d->reason = PE_KEEP;
		v->limits = l;
	}
	switch (p->algo) {
	case PE_ALGO_PRESSURE:
		r = pe_algo_pressure(&c);
		break;
	case PE_ALGO_STATIC:
		r = pe_algo_static(&c);
		break;
	case PE_ALGO_XENMM:
		r = pe_algo_xenmm(&c);
		break;
	case PE_ALGO_MOM:
		r = pe_algo_mom(&c);
		break;
	default:
		return -EINVAL;
	}
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct pe_decision *d = &out[i];
		const struct pe_guest *g = &host->guests[i];
		struct pe_vm *v = c.vms[i];
		uint64_t off;

		/* Growth is earned: a guest not believed, or silent, has no
		 * more than the host sees it use plus its headroom (and one
		 * that just lied its way up gives it back); without a host
		 * view it is not grown. */
		if ((g->untrusted || g->stale) && d->reason != PE_UNMANAGED) {
			uint64_t earned = g->has_host_used ?
			    g->host_used_kib + pe_headroom(v->limits,
			    g->host_used_kib) : d->prev_kib;

			if (d->target_kib > earned)
				d->target_kib = earned;
		}
		/* Whatever an algorithm asked, the limits hold. */
		if (d->target_kib > d->max_kib)
			d->target_kib = d->max_kib;
		if (d->target_kib < d->min_kib)
			d->target_kib = d->min_kib;
		d->changed = d->target_kib != d->prev_kib;
		/* A balloon still away from its target long after it was
		 * set: the command may have been lost (an actuator that was
		 * down, a batch that expired). Commands are absolute: say it
		 * again now and then. */
		off = g->has_balloon ? (g->actual_kib > d->target_kib ?
		    g->actual_kib - d->target_kib : d->target_kib -
		    g->actual_kib) : 0;
		if (!d->changed && !g->stale && d->reason != PE_UNMANAGED &&
		    off > target_tolerance(d->target_kib) &&
		    c.now_ms - v->sent_ms >= PE_REPEAT_MS)
			d->changed = d->repeat = true;
		if (d->changed)
			v->sent_ms = c.now_ms;
		v->target_kib = d->target_kib;
		reclaim_decide(p, g, v, d, c.now_ms);
	}
	vm_forget_unseen(st);
	return (int)n;
}

static void
mib(char *buf, size_t size, uint64_t kib)
{
	snprintf(buf, size, "%llu MiB", (unsigned long long)(kib / 1024));
}

int
pe_format_why(const struct pe_decision *d, char *buf, size_t size)
{
	char t[32], prev[32], used[32], need[32], peak[32], hist[96] = "";

	mib(t, sizeof(t), d->target_kib);
	mib(prev, sizeof(prev), d->prev_kib);
	mib(used, sizeof(used), d->used_kib);
	mib(need, sizeof(need), d->need_kib);
	if (d->reason == PE_GROW_HISTORY) {
		mib(peak, sizeof(peak), d->history_kib);
		snprintf(hist, sizeof(hist), ", history: %u h peak %s + %.0f %%",
		    d->history_hours, peak, d->history_margin_pct);
	}
	return snprintf(buf, size, "%s: %s -> %s (used %s, need %s%s, "
	    "pressure %.2f%s%s%s)", pe_reason_name(d->reason), prev, t, used,
	    need, hist, d->pressure, d->repeat ? ", repeated: the balloon is not "
	    "there yet" : "",
	    d->coop == PE_COOP_UNCOOPERATIVE ? ", uncooperative" :
	    d->coop == PE_COOP_INACTIVE ? ", inactive" : "",
	    d->target_kib == d->min_kib ? ", at min" :
	    d->target_kib == d->max_kib ? ", at max" : "");
}
