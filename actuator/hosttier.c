/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The host tier ([tier], issue 18 part 3, etmem's design): every window a
 * pass on libuv's thread pool ends the last scan window of each VM's QEMU
 * process, moves the chunks idle for cold_windows windows to swap or a
 * slower node (common/host/tier.c), within a quota per pass for the whole
 * host and a hot reserve per VM, and begins the next window. A VM whose
 * moved pages come back as major faults waits longer before the next
 * move (tier_backoff()). The pass owns the VMs' table while it runs; the
 * loop only lists the VMs before and reads the outcome after.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actuator.h"

static const struct act_tier_ops default_ops = {
	.probe = tier_probe,
	.memory = tier_read_memory,
	.open = tier_scan_open,
	.begin = tier_scan_begin,
	.end = tier_scan_end,
	.pageout = tier_pageout,
	.demote = tier_demote,
};

static void
vm_close(struct act_tier_vm *v)
{
	if (v->open)
		tier_scan_close(&v->scan);
	v->open = false;
}

static void
tier_free(struct act_tier *t)
{
	for (size_t i = 0; i < t->n; i++)
		vm_close(&t->vms[i]);
	free(t->vms);
	t->vms = NULL;
	t->n = t->cap = 0;
}

/* One VM: end its window, move what is cold, begin the next. quota is
 * what the host may still move in this pass. */
static void
pass_vm(struct act_tier *t, struct act_tier_vm *v, uint64_t *quota,
    size_t **idx, size_t *idx_cap)
{
	const struct actuator_conf *c = t->conf;
	const struct act_tier_ops *o = t->ops;
	uint64_t kib = 0;
	int64_t done;
	size_t n;

	v->err = 0;
	v->moved_kib = v->refaults = 0;
	if (!v->open) {
		v->err = o->open(&v->scan, c->proc_root, v->pid,
		    (uint64_t)c->tier_min_ram_kib * 1024);
		if (v->err < 0)
			return;
		v->open = true;
		v->min_idle = (unsigned)c->tier_cold_windows;
		v->last_pages = 0;
		v->err = o->begin(&v->scan, c->proc_root);
		return;
	}
	v->err = o->end(&v->scan, c->proc_root);
	if (v->err < 0)
		return;
	v->refaults = v->scan.refaults;
	v->min_idle = tier_backoff(v->min_idle,
	    (unsigned)c->tier_cold_windows, v->last_pages, v->refaults,
	    (unsigned)c->tier_refault_pct);
	v->last_pages = 0;
	if (*quota > 0 && v->scan.n > *idx_cap) {
		size_t *p = realloc(*idx, v->scan.n * sizeof(**idx));

		if (p == NULL) {
			v->err = -ENOMEM;
			return;
		}
		*idx = p;
		*idx_cap = v->scan.n;
	}
	n = *quota > 0 ? tier_pick(&v->scan, v->min_idle, *quota,
	    (uint64_t)c->tier_hot_reserve_kib, *idx, &kib) : 0;
	if (n > 0) {
		done = t->mode == ACT_TIER_SWAP ?
		    o->pageout(&v->scan, *idx, n) :
		    o->demote(&v->scan, *idx, n, t->node);
		if (done < 0) {
			v->err = (int)done;
			return;
		}
		v->moved_kib = kib;
		v->last_pages = kib / 4;
		*quota -= kib < *quota ? kib : *quota;
	}
	v->err = o->begin(&v->scan, c->proc_root);
}

static void
pass_work(uv_work_t *w)
{
	struct act_tier *t = w->data;
	const struct actuator_conf *c = t->conf;
	uint64_t quota = (uint64_t)c->tier_quota_kib;
	size_t *idx = NULL, idx_cap = 0;
	struct tier_host h;

	memset(&h, 0, sizeof(h));
	if (t->ops->memory(c->proc_root, &h) < 0)
		memset(&h, 0, sizeof(h));
	/* Swap: at most half of what is still free, so that a pass never
	 * fills it (the guests may need it). */
	if (t->mode == ACT_TIER_SWAP && quota > h.swap_free_kib / 2)
		quota = h.swap_free_kib / 2;
	/* Plenty of fast memory left: scan, move nothing (etmem's
	 * sysmem_threshold). Unknown: move nothing either. */
	t->held_back = c->tier_sysmem_threshold < 100 &&
	    (h.mem_total_kib == 0 || h.mem_available_kib * 100 >=
	    h.mem_total_kib * (uint64_t)c->tier_sysmem_threshold);
	if (t->held_back)
		quota = 0;
	for (size_t i = 0; i < t->n; i++)
		pass_vm(t, &t->vms[i], &quota, &idx, &idx_cap);
	free(idx);
}

static void
pass_done(uv_work_t *w, int status)
{
	struct act_tier *t = w->data;

	(void)status;
	t->busy = false;
	if (t->closing) {
		tier_free(t);
		return;
	}
	t->passes++;
	for (size_t i = 0; i < t->n; i++) {
		struct act_tier_vm *v = &t->vms[i];

		if (v->err < 0) {
			t->errors++;
			if (!v->err_logged)
				log_warnx("tier: vm \"%s\" (pid %d): %s%s",
				    v->id, (int)v->pid, strerror(-v->err),
				    v->err == -ENOENT ? " (no RAM mapping "
				    "of at least min_ram)" : "");
			v->err_logged = true;
			vm_close(v);	/* opened again next pass */
			continue;
		}
		v->err_logged = false;
		if (v->moved_kib == 0)
			continue;
		v->moved_total_kib += v->moved_kib;
		t->moved_kib += v->moved_kib;
		log_info("tier: vm \"%s\": %" PRIu64 " MiB idle for %u windows "
		    "%s", v->id, v->moved_kib / 1024, v->min_idle,
		    t->mode == ACT_TIER_SWAP ? "paged out to swap" :
		    t->state);
	}
}

static struct act_tier_vm *
vm_find(struct act_tier *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->vms[i].id, id) == 0)
			return &t->vms[i];
	return NULL;
}

/* True when id matches one of globs, separated by spaces or commas. */
static bool
glob_any(const char *globs, const char *id)
{
	char pat[256];
	size_t len;

	if (globs == NULL)
		return false;
	for (const char *p = globs; *p != '\0'; p += len) {
		p += strspn(p, " ,\t");
		len = strcspn(p, " ,\t");
		if (len == 0 || len >= sizeof(pat))
			continue;
		memcpy(pat, p, len);
		pat[len] = '\0';
		if (fnmatch(pat, id, 0) == 0)
			return true;
	}
	return false;
}

static void
list_cb(struct hv_vm *vm, void *arg)
{
	struct act_tier *t = arg;
	struct act_tier_vm *v;

	if (vm->pid <= 0)
		return;		/* no process holds its RAM (xen, sim) */
	if (!glob_any(t->conf->tier_vms, vm->id) ||
	    glob_any(t->conf->tier_exclude, vm->id))
		return;		/* left alone, as configured */
	v = vm_find(t, vm->id);
	if (v != NULL && v->pid != vm->pid) {
		vm_close(v);	/* restarted: another process */
		v->pid = vm->pid;
	}
	if (v == NULL) {
		if (t->n == t->cap) {
			size_t ncap = t->cap ? t->cap * 2 : 16;
			void *p = realloc(t->vms, ncap * sizeof(*t->vms));

			if (p == NULL)
				return;	/* next pass */
			t->vms = p;
			t->cap = ncap;
		}
		v = &t->vms[t->n++];
		memset(v, 0, sizeof(*v));
		snprintf(v->id, sizeof(v->id), "%s", vm->id);
		v->pid = vm->pid;
	}
	v->seen = true;
}

static void
timer_cb(uv_timer_t *timer)
{
	struct actuator *a = timer->data;
	struct act_tier *t = &a->tier;
	size_t k = 0;

	if (t->busy || a->hv == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		t->vms[i].seen = false;
	hv_foreach(a->hv, list_cb, t);
	for (size_t i = 0; i < t->n; i++) {
		if (!t->vms[i].seen) {
			vm_close(&t->vms[i]);
			continue;
		}
		t->vms[k++] = t->vms[i];
	}
	t->n = k;
	if (t->n == 0)
		return;
	t->work.data = t;
	if (uv_queue_work(a->loop, &t->work, pass_work, pass_done) == 0)
		t->busy = true;
}

static void
skip(struct act_tier *t, const char *why)
{
	t->mode = ACT_TIER_OFF;
	t->skipped = true;
	snprintf(t->state, sizeof(t->state), "skipped");
	snprintf(t->why, sizeof(t->why), "%s", why);
	log_info("tier: %s: the host tier is skipped", why);
}

int
act_tier_start(struct actuator *a)
{
	const struct actuator_conf *c = &a->conf;
	struct act_tier *t = &a->tier;
	struct tier_host h;
	char why[256];
	int r;

	if (t->ops == NULL)
		t->ops = &default_ops;
	t->conf = c;
	t->mode = ACT_TIER_OFF;
	snprintf(t->state, sizeof(t->state), "off");
	if (c->tier_mode == ACT_TIER_OFF)
		return 0;
	if (c->tier_slow_nodes != NULL &&
	    tier_parse_nodes(c->tier_slow_nodes, &t->slow_mask) < 0) {
		log_warnx("tier: slow_nodes \"%s\" is no node list (0-63, "
		    "like \"2-3\" or \"1,3\")", c->tier_slow_nodes);
		return -EINVAL;
	}
	if (c->driver == HV_TYPE_XEN) {
		skip(t, "xen keeps the guests' memory in no host process");
		return 0;
	}
	r = t->ops->probe(c->proc_root, c->sys_root, t->slow_mask, &h);
	if (r < 0) {
		snprintf(why, sizeof(why), "%s/meminfo: %s", c->proc_root,
		    strerror(-r));
		skip(t, why);
		return 0;
	}
	if (h.slow_mask != 0 && (c->tier_mode == ACT_TIER_AUTO ||
	    c->tier_mode == ACT_TIER_NODE)) {
		t->mode = ACT_TIER_NODE;
		t->node = (unsigned)__builtin_ctzll(h.slow_mask);
		snprintf(t->state, sizeof(t->state), "moved to node %u",
		    t->node);
	} else if (h.swap && (c->tier_mode == ACT_TIER_AUTO ||
	    c->tier_mode == ACT_TIER_SWAP)) {
		t->mode = ACT_TIER_SWAP;
		snprintf(t->state, sizeof(t->state), "paged out to swap");
	} else {
		skip(t, h.why[0] != '\0' ? h.why :
		    c->tier_mode == ACT_TIER_SWAP ? "no swap on this host" :
		    "no slower NUMA node on this host");
		return 0;
	}
	log_info("tier: memory idle for %" PRId64 " windows of %" PRId64
	    " ms is %s, at most %" PRId64 " MiB a pass, %" PRId64 " MiB of "
	    "each VM kept", c->tier_cold_windows, c->tier_window_ms,
	    t->state, c->tier_quota_kib / 1024,
	    c->tier_hot_reserve_kib / 1024);
	uv_timer_init(a->loop, &t->timer);
	t->timer.data = a;
	t->timer_on = true;
	uv_timer_start(&t->timer, timer_cb, (uint64_t)c->tier_window_ms,
	    (uint64_t)c->tier_window_ms);
	return 0;
}

void
act_tier_close(struct actuator *a)
{
	struct act_tier *t = &a->tier;

	if (t->timer_on) {
		uv_timer_stop(&t->timer);
		uv_close((uv_handle_t *)&t->timer, NULL);
		t->timer_on = false;
	}
	t->closing = true;
	if (!t->busy)
		tier_free(t);
}
