/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The release: guests handed memory back toward their maximum, but only as
 * far as the host has it. Setting every guest back to its maximum at once
 * is what runs an overcommitted host out of memory, so a release grows the
 * guests that lack the most first, while the sum of the growth stays
 * within the host's MemAvailable minus host_reserve; the rest stay where
 * they are, and the release says so. A stop or a restart of the actuator
 * never releases (the targets in force stay): only `mm-actuator --release`
 * (package removal) and release_on_stop = yes do. The plan is pure; the
 * rest reads the host and the driver and writes the targets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actuator.h"
#include "hoststats.h"
#include "hv.h"
#include "log.h"

/* Largest deficit (max - current) first; equal ones by id, so that a plan
 * is the same on every run. Guests without the numbers go last. */
static int
need_cmp(const void *x, const void *y)
{
	const struct act_rel_vm *a = x, *b = y;
	bool ka = a->max_known && a->current_known;
	bool kb = b->max_known && b->current_known;
	uint64_t da, db;

	if (ka != kb)
		return ka ? -1 : 1;
	da = ka && a->max_kib > a->current_kib ? a->max_kib - a->current_kib :
	    0;
	db = kb && b->max_kib > b->current_kib ? b->max_kib - b->current_kib :
	    0;
	if (da != db)
		return da > db ? -1 : 1;
	return strcmp(a->id, b->id);
}

void
act_release_plan(struct act_rel_plan *p)
{
	uint64_t left, need;
	size_t i;

	p->budget_kib = p->host_avail_kib > p->reserve_kib ?
	    p->host_avail_kib - p->reserve_kib : 0;
	p->need_kib = p->grant_kib = 0;
	if (p->n > 1)
		qsort(p->vms, p->n, sizeof(p->vms[0]), need_cmp);
	left = p->budget_kib;
	for (i = 0; i < p->n; i++) {
		struct act_rel_vm *v = &p->vms[i];

		v->plan = p;
		v->target_kib = v->current_kib;
		if (!v->max_known || !v->current_known) {
			v->outcome = ACT_REL_UNKNOWN;
			continue;
		}
		if (v->current_kib >= v->max_kib) {
			v->outcome = ACT_REL_AT_MAX;
			continue;
		}
		need = v->max_kib - v->current_kib;
		p->need_kib += need;
		if (left == 0) {
			v->outcome = ACT_REL_NO_ROOM;
			continue;
		}
		if (need > left)
			need = left;
		v->target_kib = v->current_kib + need;
		v->outcome = v->target_kib == v->max_kib ? ACT_REL_FULL :
		    ACT_REL_PARTIAL;
		left -= need;
		p->grant_kib += need;
	}
}

void
act_release_describe(const struct act_rel_vm *v, char *buf, size_t len)
{
	const struct act_rel_plan *p = v->plan;

	switch (v->outcome) {
	case ACT_REL_UNKNOWN:
		snprintf(buf, len, "vm \"%s\": %s unknown, left as it is",
		    v->id, v->max_known ? "its size" : "its maximum");
		return;
	case ACT_REL_AT_MAX:
		snprintf(buf, len, "vm \"%s\": at its maximum, %" PRIu64
		    " MiB", v->id, v->max_kib / 1024);
		return;
	case ACT_REL_NO_ROOM:
		snprintf(buf, len, "vm \"%s\": left at %" PRIu64 " of %"
		    PRIu64 " MiB: no host memory left to give it", v->id,
		    v->current_kib / 1024, v->max_kib / 1024);
		return;
	default:
		break;
	}
	if (v->status < 0)
		snprintf(buf, len, "vm \"%s\": %" PRIu64 " -> %" PRIu64
		    " MiB failed: %s", v->id, v->current_kib / 1024,
		    v->target_kib / 1024, strerror(-v->status));
	else if (v->outcome == ACT_REL_FULL)
		snprintf(buf, len, "vm \"%s\": %" PRIu64 " -> %" PRIu64
		    " MiB, its maximum%s", v->id, v->current_kib / 1024,
		    v->target_kib / 1024, v->done ? "" : " (unconfirmed)");
	else
		snprintf(buf, len, "vm \"%s\": %" PRIu64 " -> %" PRIu64
		    " of %" PRIu64 " MiB%s: the host had no more to give "
		    "(MemAvailable %" PRIu64 " MiB, host_reserve %" PRIu64
		    " MiB)", v->id, v->current_kib / 1024,
		    v->target_kib / 1024, v->max_kib / 1024,
		    v->done ? "" : " (unconfirmed)",
		    p != NULL ? p->host_avail_kib / 1024 : 0,
		    p != NULL ? p->reserve_kib / 1024 : 0);
}

void
act_release_summary(const struct act_rel_plan *p, char *buf, size_t len)
{
	uint64_t short_kib = p->need_kib - p->grant_kib;

	if (p->need_kib == 0)
		snprintf(buf, len, "release: %zu guest(s), none below its "
		    "known maximum", p->n);
	else if (short_kib == 0)
		snprintf(buf, len, "release: %" PRIu64 " MiB given back, "
		    "every guest at its maximum (host MemAvailable %" PRIu64
		    " MiB, host_reserve %" PRIu64 " MiB)", p->grant_kib / 1024,
		    p->host_avail_kib / 1024, p->reserve_kib / 1024);
	else
		snprintf(buf, len, "release: %" PRIu64 " of %" PRIu64
		    " MiB given back, %" PRIu64 " MiB left unreleased: the "
		    "host's MemAvailable %" PRIu64 " MiB minus host_reserve %"
		    PRIu64 " MiB allowed no more", p->grant_kib / 1024,
		    p->need_kib / 1024, short_kib / 1024,
		    p->host_avail_kib / 1024, p->reserve_kib / 1024);
}

struct collect {
	struct act_rel_plan *p;
	size_t cap;
};

static void
collect_cb(struct hv_vm *vm, void *arg)
{
	struct collect *c = arg;
	struct act_rel_vm *v;

	if (c->p->n == c->cap)
		return;
	v = &c->p->vms[c->p->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", vm->id);
	v->max_known = vm->max_known;
	v->max_kib = vm->max_kib;
	v->current_known = act_vm_current(vm, &v->current_kib);
}

int
act_release_collect(struct hv *hv, const char *proc_root,
    uint64_t reserve_kib, struct act_rel_plan *ret)
{
	struct collect c = { .p = ret };
	Mm__V1__Meminfo mi;
	int r;

	r = hs_read_meminfo(proc_root, &mi);
	if (r == 0 && !mi.has_available_kib)
		r = -EINVAL;
	if (r < 0)
		return r;
	/* Filled in place: the guests point at their plan. */
	memset(ret, 0, sizeof(*ret));
	ret->reserve_kib = reserve_kib;
	ret->host_avail_kib = mi.available_kib;
	c.cap = hv_vm_count(hv);
	if (c.cap > 0) {
		ret->vms = calloc(c.cap, sizeof(*ret->vms));
		if (ret->vms == NULL)
			return -ENOMEM;
		hv_foreach(hv, collect_cb, &c);
	}
	act_release_plan(ret);
	return 0;
}

static void
set_done_cb(struct hv *hv, int status, void *arg)
{
	struct act_rel_vm *v = arg;
	struct act_rel_plan *p = v->plan;

	v->status = status;
	v->done = status == 0;
	if (status < 0)
		p->failed++;
	if (p->pending > 0 && --p->pending == 0 && !p->given_up &&
	    p->done_cb != NULL)
		p->done_cb(p, p->done_arg);
}

unsigned
act_release_apply(struct hv *hv, struct act_rel_plan *p,
    void (*done_cb)(struct act_rel_plan *p, void *arg), void *arg)
{
	size_t i;
	int r;

	p->done_cb = done_cb;
	p->done_arg = arg;
	for (i = 0; i < p->n; i++) {
		struct act_rel_vm *v = &p->vms[i];

		if (v->target_kib <= v->current_kib)
			continue;
		r = hv_set_target(hv, v->id, v->target_kib, set_done_cb, v);
		if (r < 0) {
			v->status = r;
			p->failed++;
			continue;
		}
		p->pending++;
	}
	return p->pending;
}

void
act_release_free(struct act_rel_plan *p)
{
	free(p->vms);
	p->vms = NULL;
	p->n = 0;
}
