/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NUMA placement per host. A VM whose vCPUs ran on one node while its
 * pages are spread over others pays for remote accesses; its pages are
 * moved toward that node, most remote first, when the node has room above
 * a reserve. Like numad, a VM is not moved again for min_interval_ms (300 s
 * by default); like etmem, a round moves at most a quota of pages (1 GiB
 * by default) across all VMs, so migration never swamps the host.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

struct numa_vm {
	char id[PE_ID_MAX + 1];
	uint64_t last_move_ms;
	bool seen;
};

struct pe_numa_state {
	struct numa_vm *vms;
	size_t n;
	size_t cap;
	size_t *order;		/* scratch: candidates, most remote first */
	uint64_t *remote;
	size_t order_cap;
};

void
pe_numa_policy_defaults(struct pe_numa_policy *n)
{
	memset(n, 0, sizeof(*n));
	n->enable = true;
	n->node_reserve_kib = 256 * 1024;
	n->quota_pages = 262144;	/* 1 GiB */
	n->min_interval_ms = 300000;
	n->min_remote_pct = 10;
	n->min_pages = 2560;		/* 10 MiB */
}

struct pe_numa_state *
pe_numa_state_new(void)
{
	return calloc(1, sizeof(struct pe_numa_state));
}

void
pe_numa_state_free(struct pe_numa_state *st)
{
	if (st == NULL)
		return;
	free(st->vms);
	free(st->order);
	free(st->remote);
	free(st);
}

static struct numa_vm *
numa_vm(struct pe_numa_state *st, const char *id)
{
	struct numa_vm *v;

	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->vms[i].id, id) == 0)
			return &st->vms[i];
	if (st->n == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 16;
		struct numa_vm *vms = realloc(st->vms, cap * sizeof(*vms));

		if (vms == NULL)
			return NULL;
		st->vms = vms;
		st->cap = cap;
	}
	v = &st->vms[st->n++];
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	return v;
}

/* The one node its vCPUs ran on, or -1 when none or several. */
static int
home_node(uint64_t mask, unsigned n_nodes)
{
	if (mask == 0 || (mask & (mask - 1)) != 0)
		return -1;
	for (unsigned i = 0; i < n_nodes; i++)
		if (mask == (1ull << i))
			return (int)i;
	return -1;
}

static const uint64_t *sort_remote;

static int
by_remote_desc(const void *a, const void *b)
{
	uint64_t x = sort_remote[*(const size_t *)a];
	uint64_t y = sort_remote[*(const size_t *)b];

	return x < y ? 1 : x > y ? -1 : 0;
}

int
pe_numa_decide(struct pe_numa_state *st, const struct pe_numa_host *h,
    const struct pe_numa_policy *p, struct pe_numa_move *out, size_t cap)
{
	uint64_t room[PE_NODES_MAX];
	uint64_t quota;
	size_t ncand = 0, nmoves = 0;

	if (st == NULL || h == NULL || p == NULL || h->n_nodes > PE_NODES_MAX ||
	    (h->n_vms > 0 && h->vms == NULL))
		return -EINVAL;
	if (!p->enable || h->n_nodes < 2)
		return 0;
	if (st->order_cap < h->n_vms) {
		size_t *order = realloc(st->order, h->n_vms * sizeof(*order));
		uint64_t *remote;

		if (order == NULL)
			return -ENOMEM;
		st->order = order;
		remote = realloc(st->remote, h->n_vms * sizeof(*remote));
		if (remote == NULL)
			return -ENOMEM;
		st->remote = remote;
		st->order_cap = h->n_vms;
	}
	for (unsigned i = 0; i < h->n_nodes; i++)
		room[i] = h->node_free_kib[i] > p->node_reserve_kib ?
		    (h->node_free_kib[i] - p->node_reserve_kib) / 4 : 0;
	for (size_t i = 0; i < st->n; i++)
		st->vms[i].seen = false;
	for (size_t i = 0; i < h->n_vms; i++) {
		const struct pe_numa_vm *vm = &h->vms[i];
		int home = home_node(vm->vcpu_nodes, h->n_nodes);
		uint64_t total = 0, remote = 0;
		struct numa_vm *v;

		if (vm->vm_id == NULL)
			return -EINVAL;
		v = numa_vm(st, vm->vm_id);
		if (v == NULL)
			return -ENOMEM;
		v->seen = true;
		st->remote[i] = 0;
		if (home < 0)
			continue;
		for (unsigned n = 0; n < h->n_nodes; n++) {
			total += vm->pages[n];
			if ((int)n != home)
				remote += vm->pages[n];
		}
		if (remote < p->min_pages || total == 0 ||
		    100.0 * (double)remote / (double)total < p->min_remote_pct)
			continue;
		if (v->last_move_ms != 0 &&
		    h->time_ms - v->last_move_ms < p->min_interval_ms)
			continue;
		st->remote[i] = remote;
		st->order[ncand++] = i;
	}
	sort_remote = st->remote;
	qsort(st->order, ncand, sizeof(*st->order), by_remote_desc);
	quota = p->quota_pages;
	for (size_t c = 0; c < ncand && nmoves < cap && quota > 0; c++) {
		size_t i = st->order[c];
		const struct pe_numa_vm *vm = &h->vms[i];
		unsigned home = (unsigned)home_node(vm->vcpu_nodes, h->n_nodes);
		uint64_t pages = st->remote[i];
		struct pe_numa_move *m = &out[nmoves];

		if (pages > quota)
			pages = quota;
		if (pages > room[home])
			pages = room[home];
		if (pages < p->min_pages)
			continue;
		memset(m, 0, sizeof(*m));
		snprintf(m->vm_id, sizeof(m->vm_id), "%s", vm->vm_id);
		for (unsigned n = 0; n < h->n_nodes; n++)
			if (n != home && vm->pages[n] > 0)
				m->from_nodes |= 1ull << n;
		m->to_node = home;
		m->pages = pages;
		m->remote_pages = st->remote[i];
		room[home] -= pages;
		quota -= pages;
		numa_vm(st, vm->vm_id)->last_move_ms = h->time_ms;
		nmoves++;
	}
	/* Forget VMs that are gone. */
	{
		size_t j = 0;

		for (size_t i = 0; i < st->n; i++)
			if (st->vms[i].seen)
				st->vms[j++] = st->vms[i];
		st->n = j;
	}
	return (int)nmoves;
}
