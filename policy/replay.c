/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replay: a trace of used memory per VM and step drives simulated
 * guests whose size is the target the policy set the step before, on a
 * host of a given capacity; the result counts the VM-steps that went short.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"

void
rp_trace_free(struct rp_trace *t)
{
	free(t->samples);
	free(t->names);
	memset(t, 0, sizeof(*t));
}

static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PE_ID_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' ||
		    *s == '.'))
			return false;
	return true;
}

static int
vm_index(struct rp_trace *t, const char *vm, uint32_t *ret)
{
	for (size_t i = 0; i < t->nvms; i++)
		if (strcmp(t->names[i], vm) == 0) {
			*ret = (uint32_t)i;
			return 0;
		}
	if (t->nvms == t->names_cap) {
		size_t cap = t->names_cap ? t->names_cap * 2 : 64;
		char (*names)[PE_ID_MAX + 1] = realloc(t->names,
		    cap * sizeof(*names));

		if (names == NULL)
			return -ENOMEM;
		t->names = names;
		t->names_cap = cap;
	}
	snprintf(t->names[t->nvms], sizeof(t->names[0]), "%s", vm);
	*ret = (uint32_t)t->nvms++;
	return 0;
}

int
rp_trace_add(struct rp_trace *t, uint64_t time_s, const char *vm,
    uint64_t used_kib, uint64_t max_kib)
{
	struct rp_sample *s;
	uint32_t idx;
	int r;

	if (t->n > 0 && time_s < t->samples[t->n - 1].time_s)
		return -EINVAL;
	r = vm_index(t, vm, &idx);
	if (r < 0)
		return r;
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct rp_sample *ss = realloc(t->samples, cap * sizeof(*ss));

		if (ss == NULL)
			return -ENOMEM;
		t->samples = ss;
		t->cap = cap;
	}
	if (t->n == 0 || t->samples[t->n - 1].time_s != time_s)
		t->steps++;
	s = &t->samples[t->n++];
	s->time_s = time_s;
	s->vm = idx;
	s->used_kib = used_kib;
	s->max_kib = max_kib;
	return 0;
}

int
rp_trace_read(struct rp_trace *t, FILE *f, const char *path, char *err,
    size_t errlen)
{
	char line[512], vm[256];
	unsigned long long ts, used, max;
	uint64_t *seen = NULL;	/* per VM: the step of its last row */
	size_t nseen = 0;
	uint32_t idx;
	int lineno = 0, r;

	memset(t, 0, sizeof(*t));
	while (fgets(line, sizeof(line), f) != NULL) {
		char extra;

		lineno++;
		if (line[0] == '\n' || line[0] == '#' ||
		    (lineno == 1 && strncmp(line, "time_s", 6) == 0))
			continue;
		if (sscanf(line, "%llu,%255[^,],%llu,%llu %c", &ts, vm, &used,
		    &max, &extra) != 4) {
			snprintf(err, errlen, "%s:%d: expected "
			    "time_s,vm,used_kib,max_kib", path, lineno);
			goto fail;
		}
		if (!name_ok(vm)) {
			snprintf(err, errlen, "%s:%d: vm \"%s\" is not 1 to 64 "
			    "of [A-Za-z0-9_.-]", path, lineno, vm);
			goto fail;
		}
		if (max == 0 || used > max || max > (1ull << 42)) {
			snprintf(err, errlen, "%s:%d: need 0 <= used_kib <= "
			    "max_kib <= 4 PiB, max_kib > 0", path, lineno);
			goto fail;
		}
		r = rp_trace_add(t, ts, vm, used, max);
		if (r == -EINVAL) {
			snprintf(err, errlen, "%s:%d: time %llu goes back", path,
			    lineno, ts);
			goto fail;
		}
		if (r < 0)
			goto nomem;
		/* Two rows of one VM at one time would be two VMs to
		 * rp_run(). */
		idx = t->samples[t->n - 1].vm;
		if (idx >= nseen) {
			uint64_t *ns = realloc(seen, t->names_cap *
			    sizeof(*ns));

			if (ns == NULL)
				goto nomem;
			memset(ns + nseen, 0, (t->names_cap - nseen) *
			    sizeof(*ns));
			seen = ns;
			nseen = t->names_cap;
		}
		if (seen[idx] == t->steps) {
			snprintf(err, errlen, "%s:%d: vm \"%s\" twice at time "
			    "%llu", path, lineno, vm, ts);
			goto fail;
		}
		seen[idx] = t->steps;
	}
	free(seen);
	if (t->n == 0) {
		snprintf(err, errlen, "%s: no samples", path);
		rp_trace_free(t);
		return -EINVAL;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	free(seen);
	rp_trace_free(t);
	return -ENOMEM;
fail:
	free(seen);
	rp_trace_free(t);
	return -EINVAL;
}

/* A guest fills the memory it has but does not use with page cache: its
 * untouched memory becomes resident with this time constant. */
#define CACHE_FILL_S	1800.0

/* The cold model's window, in slots: the smallest use of each. */
#define COLD_SLOTS	12
#define COLD_SLOT_S	(RP_COLD_WINDOW_S / COLD_SLOTS)

/* What a simulated VM is at the current step. */
struct rp_vm {
	uint64_t size_kib;	/* the target in force: its memory now */
	uint64_t max_kib;
	uint64_t used_kib;
	uint64_t resident_kib;	/* touched and not given back */
	uint64_t cache_kib;	/* page cache (free page reporting only) */
	uint64_t seen_step;
	uint64_t oom;		/* counter */
	uint64_t swap_out;	/* counter, pages */
	uint64_t last_s;
	/* The cold model (t->cold_share), where used_kib above is what the
	 * guest holds in memory: its use less what went to zram, plus zram. */
	uint64_t first_s;
	uint64_t win_min_kib[COLD_SLOTS];	/* smallest use per slot */
	uint64_t win_max_kib[COLD_SLOTS];	/* largest */
	uint64_t win_slot[COLD_SLOTS];	/* which slot + 1; 0: empty */
	uint64_t cold_kib;	/* cold now */
	uint64_t reclaimed_kib;	/* in zram, uncompressed */
	uint64_t pending_kib;	/* asked, not yet reclaimed */
	uint64_t refault_pages;	/* counter: major faults, swap-ins */
	double stall_s;		/* refault stall within this step ... */
	uint64_t dt_s;		/* ... of this many seconds */
};

/*
 * The cold model for one VM at a step dt_s after its last: its cold set,
 * what comes back from zram, what goes there, and what it then holds in
 * memory (v->used_kib). Assumptions in replay.h (rp_run()).
 */
static void
cold_step(const struct rp_trace *t, struct rp_vm *v, uint64_t now,
    uint64_t dt_s, struct rp_result *ret)
{
	uint64_t slot = now / COLD_SLOT_S, use = v->used_kib, low = use;
	uint64_t peak = 0, back = 0, room, done;
	size_t at = slot % COLD_SLOTS;

	/* The window before this sample: its smallest and largest use. */
	for (size_t k = 0; k < COLD_SLOTS; k++)
		if (v->win_slot[k] + COLD_SLOTS > slot + 1 &&
		    v->win_max_kib[k] > peak)
			peak = v->win_max_kib[k];
	if (v->win_slot[at] != slot + 1) {
		v->win_slot[at] = slot + 1;
		v->win_min_kib[at] = v->win_max_kib[at] = use;
	}
	if (v->win_min_kib[at] > use)
		v->win_min_kib[at] = use;
	if (v->win_max_kib[at] < use)
		v->win_max_kib[at] = use;
	for (size_t k = 0; k < COLD_SLOTS; k++)
		if (v->win_slot[k] + COLD_SLOTS > slot + 1 &&
		    v->win_min_kib[k] < low)
			low = v->win_min_kib[k];
	v->cold_kib = now - v->first_s >= RP_COLD_WINDOW_S ?
	    (uint64_t)((double)low * fmin(t->cold_share, 1)) : 0;
	/* Use back within the window's range is memory touched within it,
	 * not cold; a rise above its peak is new work, which brings back
	 * what it holds reclaimed in proportion. A cold set smaller than
	 * what it holds reclaimed brings the rest back. */
	if (dt_s > 0 && use > peak && v->reclaimed_kib > 0)
		back = peak == 0 ? v->reclaimed_kib : (uint64_t)fmin(
		    (double)v->reclaimed_kib, (double)v->reclaimed_kib *
		    (double)(use - peak) / (double)peak);
	if (v->reclaimed_kib - back > v->cold_kib)
		back = v->reclaimed_kib - v->cold_kib;
	v->reclaimed_kib -= back;
	v->refault_pages += back / 4;
	v->stall_s = (double)(back / 4) * RP_REFAULT_US / 1e6;
	v->dt_s = dt_s;
	ret->refault_kib += back;
	/* The agent stops when the guest stalls; else it goes on with what
	 * it was asked, as fast as it can, while anything is cold. */
	if (back > 0)
		v->pending_kib = 0;
	room = v->cold_kib - v->reclaimed_kib;
	done = v->pending_kib;
	if (done > RP_RECLAIM_KIB_S * dt_s)
		done = RP_RECLAIM_KIB_S * dt_s;
	if (done > room)
		done = room;
	v->reclaimed_kib += done;
	v->pending_kib = done < room ? v->pending_kib - done : 0;
	v->used_kib = use - v->reclaimed_kib + v->reclaimed_kib /
	    RP_ZRAM_RATIO;
}

/* What the agent would report of the cold model: one bucket, idle for the
 * model's window, and the refaults as major faults and swap-ins (zram's
 * are swap-ins too); the stall as the share of the step it took, since a
 * trace does not say when within a sample use rose. */
static void
cold_report(const struct rp_vm *v, struct pe_guest *x)
{
	double psi = v->dt_s > 0 ? 100.0 * v->stall_s / (double)v->dt_s : 0;

	if (psi > x->psi_some_avg10)
		x->psi_some_avg10 = psi > 100 ? 100 : psi;
	x->major_faults = x->swap_in_pages = v->refault_pages;
	if (v->cold_kib > v->reclaimed_kib) {
		x->n_cold = 1;
		x->cold[0].idle_ms = RP_COLD_WINDOW_S * 1000ull;
		x->cold[0].anon_kib = v->cold_kib - v->reclaimed_kib;
	}
}

static uint64_t
provisioned(const struct rp_trace *t)
{
	uint64_t *max = calloc(t->nvms ? t->nvms : 1, sizeof(*max)), sum = 0;

	if (max == NULL)
		return 0;
	for (size_t i = 0; i < t->n; i++)
		if (t->samples[i].max_kib > max[t->samples[i].vm])
			max[t->samples[i].vm] = t->samples[i].max_kib;
	for (size_t i = 0; i < t->nvms; i++)
		sum += max[i];
	free(max);
	return sum;
}

int
rp_run(const struct rp_trace *t, const struct pe_policy *p,
    uint64_t capacity_kib, struct rp_result *ret)
{
	struct rp_vm *vms = calloc(t->nvms ? t->nvms : 1, sizeof(*vms));
	struct pe_guest *g = calloc(t->nvms ? t->nvms : 1, sizeof(*g));
	struct pe_decision *d = calloc(t->nvms ? t->nvms : 1, sizeof(*d));
	uint32_t *idx = calloc(t->nvms ? t->nvms : 1, sizeof(*idx));
	struct pe_state *st = pe_state_new();
	double short_sum = 0, vm_s = 0, stall_s = 0, reclaimed_sum = 0;
	uint64_t short_steps = 0, step = 0;
	size_t i = 0;
	int r = 0;

	memset(ret, 0, sizeof(*ret));
	if (vms == NULL || g == NULL || d == NULL || idx == NULL ||
	    st == NULL) {
		r = -ENOMEM;
		goto out;
	}
	while (i < t->n) {
		uint64_t now = t->samples[i].time_s, resident = 0, sizes = 0;
		size_t n = 0;
		struct pe_host h;

		for (; i < t->n && t->samples[i].time_s == now; i++) {
			const struct rp_sample *s = &t->samples[i];
			struct rp_vm *v = &vms[s->vm];

			if (v->seen_step == step + 1)
				continue;	/* twice in a step: the first
						 * counts (rp_trace_add()) */
			/* It boots at its maximum. */
			if (v->seen_step == 0) {
				v->size_kib = s->max_kib;
				v->first_s = now;
			}
			v->seen_step = step + 1;
			v->used_kib = s->used_kib;
			v->max_kib = s->max_kib;
			idx[n++] = s->vm;
		}
		/*
		 * What this step costs with the targets of the last one. A
		 * guest's touched pages stay on the host (page cache, freed
		 * heap) until its balloon takes them back: resident memory
		 * is the high-water mark of use within its size.
		 */
		for (size_t k = 0; k < n; k++) {
			struct rp_vm *v = &vms[idx[k]];
			double fill = v->seen_step > 1 && now > v->last_s ?
			    1 - exp(-(double)(now - v->last_s) / CACHE_FILL_S) :
			    0;

			if (t->cold_share > 0) {
				uint64_t dt = v->seen_step > 1 &&
				    now > v->last_s ? now - v->last_s : 0;

				cold_step(t, v, now, dt, ret);
				vm_s += (double)dt;
				stall_s += v->stall_s;
				reclaimed_sum += (double)v->reclaimed_kib;
			}
			v->last_s = now;
			if (t->free_page_reporting) {
				uint64_t room = v->size_kib > v->used_kib ?
				    v->size_kib - v->used_kib : 0;

				/* Use takes from the cache; the cache fills
				 * what is left; the rest is reported free. */
				if (v->cache_kib > room)
					v->cache_kib = room;
				v->cache_kib += (uint64_t)((double)(room -
				    v->cache_kib) * fill);
				v->resident_kib = v->used_kib + v->cache_kib;
			} else {
				v->resident_kib += (uint64_t)((double)
				    (v->size_kib - v->resident_kib) * fill);
			}
			if (v->used_kib > v->resident_kib)
				v->resident_kib = v->used_kib;
			if (v->resident_kib > v->size_kib)
				v->resident_kib = v->size_kib;
			resident += v->resident_kib;
			sizes += v->size_kib;
		}
		for (size_t k = 0; k < n && step > 0; k++) {
			struct rp_vm *v = &vms[idx[k]];
			double lack = v->used_kib > v->size_kib ?
			    (double)(v->used_kib - v->size_kib) : 0;

			if (resident > capacity_kib && resident > 0)
				lack += (double)(resident - capacity_kib) *
				    (double)v->resident_kib / (double)resident;
			ret->vm_steps++;
			if (lack > 0) {
				short_steps++;
				short_sum += lack;
			}
		}
		/* The report of this step, as a collector would send it. */
		for (size_t k = 0; k < n; k++) {
			struct rp_vm *v = &vms[idx[k]];
			struct pe_guest *x = &g[k];
			double over = v->used_kib > v->size_kib ?
			    (double)(v->used_kib - v->size_kib) /
			    (double)v->size_kib : 0;

			memset(x, 0, sizeof(*x));
			x->vm_id = t->names[idx[k]];
			x->has_meminfo = x->has_balloon = x->has_psi = true;
			x->total_kib = v->size_kib;
			x->available_kib = v->size_kib > v->used_kib ?
			    v->size_kib - v->used_kib : 0;
			x->free_kib = x->available_kib;
			x->target_kib = x->actual_kib = v->size_kib;
			x->max_kib = v->max_kib;
			/* Short guests stall in proportion to the gap. */
			x->psi_some_avg10 = over > 0 ? (10 + 400 * over > 100 ?
			    100 : 10 + 400 * over) : 0;
			x->has_vmstat = true;
			/* What does not fit goes out to swap. */
			if (v->used_kib > v->size_kib)
				v->swap_out += (v->used_kib - v->size_kib) / 4;
			x->swap_out_pages = v->swap_out;
			if (over > 0.5)
				v->oom++;
			x->oom_kills = v->oom;
			if (t->cold_share > 0)
				cold_report(v, x);
		}
		h.host_id = "sim";
		h.time_ms = now * 1000;
		h.total_kib = capacity_kib + p->host_reserve_kib +
		    p->vm_overhead_kib * n;
		h.available_kib = capacity_kib + p->host_reserve_kib > sizes ?
		    capacity_kib + p->host_reserve_kib - sizes : 0;
		h.n_guests = n;
		h.guests = g;
		r = pe_decide(st, &h, p, d, t->nvms);
		if (r < 0)
			goto out;
		r = 0;
		for (size_t k = 0; k < n; k++) {
			struct rp_vm *v = &vms[idx[k]];

			if (d[k].changed)
				ret->commands++;
			v->size_kib = d[k].target_kib;
			/* A new request replaces what is left of the last. */
			if (t->cold_share > 0 && d[k].reclaim_kib > 0)
				v->pending_kib = d[k].reclaim_kib;
			if (v->resident_kib > v->size_kib)
				v->resident_kib = v->size_kib;
			/* A balloon takes free pages first, then cache. */
			if (v->used_kib + v->cache_kib > v->size_kib)
				v->cache_kib = v->size_kib > v->used_kib ?
				    v->size_kib - v->used_kib : 0;
		}
		step++;
	}
	ret->policy = pe_algo_name(p->algo);
	ret->capacity_kib = capacity_kib;
	ret->provisioned_kib = provisioned(t);
	ret->saved_pct = ret->provisioned_kib > 0 ? 100.0 * (1.0 -
	    (double)capacity_kib / (double)ret->provisioned_kib) : 0;
	ret->shortfall_pct = ret->vm_steps > 0 ? 100.0 *
	    (double)short_steps / (double)ret->vm_steps : 0;
	ret->mean_shortfall_kib = short_steps > 0 ?
	    short_sum / (double)short_steps : 0;
	if (t->cold_share > 0) {
		ret->reclaimed_kib = step > 1 ? reclaimed_sum /
		    (double)(step - 1) : 0;
		ret->stall_pct = vm_s > 0 ? 100.0 * stall_s / vm_s : 0;
	}
out:
	free(vms);
	free(g);
	free(d);
	free(idx);
	pe_state_free(st);
	return r;
}

static void
no_history(struct pe_policy *p)
{
	p->history_hours = 0;
}

static void
no_pool(struct pe_policy *p)
{
	p->pool_hours = 0;
}

bool
rp_policy_can_reclaim(const struct pe_policy *p)
{
	return p->algo == PE_ALGO_PRESSURE;
}

static const struct {
	const char *name;
	enum pe_algo algo;
	void (*off)(struct pe_policy *);
} variants[] = {
	{ "pressure", PE_ALGO_PRESSURE, NULL },
	{ "pressure-nohistory", PE_ALGO_PRESSURE, no_history },
	{ "pressure-nopool", PE_ALGO_PRESSURE, no_pool },
	{ "static", PE_ALGO_STATIC, NULL },
	{ "xenmm", PE_ALGO_XENMM, NULL },
	{ "mom", PE_ALGO_MOM, NULL },
};

const char *
rp_variant_name(size_t i)
{
	return i < sizeof(variants) / sizeof(*variants) ? variants[i].name :
	    NULL;
}

int
rp_variant_policy(const char *name, struct pe_policy *p)
{
	for (size_t i = 0; i < sizeof(variants) / sizeof(*variants); i++) {
		if (strcmp(variants[i].name, name) != 0)
			continue;
		pe_policy_defaults(p);
		p->algo = variants[i].algo;
		if (variants[i].off != NULL)
			variants[i].off(p);
		return 0;
	}
	return -ENOENT;
}

int
rp_find_capacity(const struct rp_trace *t, const struct pe_policy *p,
    double max_shortfall_pct, struct rp_result *ret)
{
	uint64_t lo = 0, hi = provisioned(t);
	struct rp_result best, r;
	int e;

	/* Above the provisioned memory nothing is gained; start there. */
	e = rp_run(t, p, hi, &best);
	if (e < 0)
		return e;
	while (hi - lo > 1024) {
		uint64_t mid = lo + (hi - lo) / 2;

		e = rp_run(t, p, mid, &r);
		if (e < 0)
			return e;
		if (r.shortfall_pct <= max_shortfall_pct) {
			hi = mid;
			best = r;
		} else {
			lo = mid;
		}
	}
	*ret = best;
	return 0;
}
