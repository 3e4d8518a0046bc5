/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The report builder: each VM's guest samples, sanitized against what the
 * host sees as they arrive, and the host's own statistics, made into one
 * HostReport. It reads procfs and sysfs under the configured roots and
 * knows nothing of the bus or the timers, so that tests build reports from
 * fake VMs and fixture trees.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "collector.h"
#include "hoststats.h"

struct cvm *
cvm_new(void)
{
	return calloc(1, sizeof(struct cvm));
}

void
cvm_free(struct cvm *cv)
{
	if (cv == NULL)
		return;
	msg_free(cv->clean ? &cv->clean->base : NULL);
	free(cv);
}

/* What the host knows of vm, for the sanitizer (and used memory). */
static void
host_view(const struct hv_vm *vm, struct san_host *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->vm_id = vm->id;
	ret->balloon_known = vm->balloon_known;
	ret->balloon_actual_kib = vm->balloon_actual_kib;
	ret->target_known = vm->target_known;
	ret->target_kib = vm->balloon_target_kib;
	ret->max_known = vm->max_known;
	ret->max_kib = vm->max_kib;
	ret->doo_known = vm->doo_known;
	ret->deflate_on_oom = vm->deflate_on_oom;
}

/* ---- a guest's sample ---- */

bool
report_take_guest(struct collector *c, struct hv_vm *vm, uint64_t mono_ms)
{
	struct cvm *cv = vm->user;
	struct san_host h;
	Mm__V1__GuestStats *g;
	uint64_t used;

	host_view(vm, &h);
	h.now_ms = clock_ms(CLOCK_REALTIME);
	h.mono_ms = mono_ms;

	/* Until the host knows the VM's size it cannot check the guest's:
	 * the first samples wait for query-balloon (milliseconds). */
	if (vm->guest == NULL || (!vm->balloon_known && !vm->max_known))
		return false;
	/* A balloon event comes with the sample already checked: it is not
	 * a new one (and the sanitizer would take it for a replay). */
	if (cv->seen && vm->guest->agent_seq == cv->seen_seq &&
	    vm->guest->time_ms == cv->seen_time_ms)
		return false;
	if (!san_admit(&cv->san, &c->lim, &h))
		return false;
	cv->seen = true;
	cv->seen_seq = vm->guest->agent_seq;
	cv->seen_time_ms = vm->guest->time_ms;
	/* The host's side of what the guest says it uses (kvm, sim: the
	 * process; Xen's view is the balloon, checked against the total). */
	if (vm->pid > 0)
		h.resident_known = hs_read_resident_kib(c->conf.proc_root,
		    vm->pid, &h.resident_kib) == 0;
	g = (Mm__V1__GuestStats *)msg_dup(MSG_GUEST_STATS, &vm->guest->base);
	if (g == NULL || san_check(&cv->san, &c->lim, &h, g) < 0) {
		msg_free(g ? &g->base : NULL);
		return false;
	}
	msg_free(cv->clean ? &cv->clean->base : NULL);
	cv->clean = g;
	cv->clean_rx_ms = mono_ms;
	if (g->pressure_rising) {
		cv->rising_unreported = true;
		return true;
	}
	/* Growing fast: the scheduler should know before the next
	 * interval. */
	return c->conf.fast_rise_kib > 0 && cv->reported_used &&
	    hv_guest_used_kib(vm, g, &used) &&
	    used >= cv->reported_used_kib + (uint64_t)c->conf.fast_rise_kib;
}

/* ---- the report ---- */

/* numa_maps makes the kernel walk the VM's page tables: read it every
 * numa_interval, not every report, and report the last reading. */
static void
refresh_numa(struct collector *c, struct cvm *cv, const struct hv_vm *vm,
    uint64_t now)
{
	if (cv->numa_at_ms != 0 &&
	    now - cv->numa_at_ms < (uint64_t)c->conf.numa_interval_ms)
		return;
	cv->numa_at_ms = now;
	cv->have_pages = hs_read_numa_maps(c->conf.proc_root, vm->pid,
	    cv->pages) == 0;
	cv->have_vcpus = hs_read_vcpu_nodes(c->conf.proc_root,
	    c->conf.sys_root, vm->pid, &cv->vcpu_mask) == 0;
}

static void
add_numa(struct collector *c, struct report *rep, struct hv_vm *vm,
    struct cvm *cv, uint64_t now)
{
	size_t k = rep->host.n_vm_numa, base = k * MSG_NODES_MAX;
	Mm__V1__VmNuma *vn = &rep->vm_numa[k];
	unsigned node;

	refresh_numa(c, cv, vm, now);
	if (!cv->have_pages && !cv->have_vcpus)
		return;
	mm__v1__vm_numa__init(vn);
	vn->vm_id = vm->id;
	vn->nodes = &rep->pages_p[base];
	vn->vcpu_nodes = &rep->vcpu_nodes[base];
	for (node = 0; cv->have_pages && node < MSG_NODES_MAX; node++) {
		Mm__V1__NodePages *np;

		if (cv->pages[node] == 0)
			continue;
		np = &rep->pages[base + vn->n_nodes];
		mm__v1__node_pages__init(np);
		np->has_node = np->has_pages = 1;
		np->node = node;
		np->pages = cv->pages[node];
		rep->pages_p[base + vn->n_nodes++] = np;
	}
	for (node = 0; cv->have_vcpus && node < MSG_NODES_MAX; node++)
		if (cv->vcpu_mask & (1ull << node))
			vn->vcpu_nodes[vn->n_vcpu_nodes++] = node;
	rep->vm_numa_p[rep->host.n_vm_numa++] = vn;
}

static void
add_guest(struct collector *c, struct report *rep, struct hv_vm *vm,
    uint64_t now)
{
	struct cvm *cv = vm->user;
	Mm__V1__GuestStats *g;
	bool stale;

	if (cv == NULL || rep->msg.n_guests >= MSG_REPEATED_MAX)
		return;
	if (cv->clean != NULL) {
		g = cv->clean;
		stale = now - cv->clean_rx_ms > (uint64_t)c->conf.stale_ms;
		cv->reported_used = hv_guest_used_kib(vm, g,
		    &cv->reported_used_kib);
	} else {
		g = &rep->stubs[rep->msg.n_guests];
		mm__v1__guest_stats__init(g);
		g->vm_id = vm->id;
		stale = true;
	}
	g->has_stale = 1;
	g->stale = stale;
	/* A rise seen in any sample since the last report, even if a later
	 * one no longer shows it; an old sample's rise is not news. */
	g->has_pressure_rising = 1;
	g->pressure_rising = !stale && cv->rising_unreported;
	cv->rising_unreported = false;
	g->has_balloon_actual_kib = vm->balloon_known;
	g->balloon_actual_kib = vm->balloon_actual_kib;
	g->has_balloon_target_kib = vm->target_known;
	g->balloon_target_kib = vm->balloon_target_kib;
	g->has_max_kib = vm->max_known;
	g->max_kib = vm->max_kib;
	g->has_deflate_on_oom = vm->doo_known;
	g->deflate_on_oom = vm->deflate_on_oom;
	g->has_free_page_reporting = 1;
	g->free_page_reporting = vm->free_page_reporting;
	rep->guests[rep->msg.n_guests++] = g;
	if (c->conf.numa && vm->pid > 0)
		add_numa(c, rep, vm, cv, now);
}

/* The host's own statistics; what cannot be read stays out. */
static void
add_host(struct collector *c, struct report *rep)
{
	Mm__V1__HostStats *hs = &rep->host;
	size_t i, nn = 0;

	if (hs_read_meminfo(c->conf.proc_root, &rep->meminfo) == 0) {
		hs->meminfo = &rep->meminfo;
		c->host_meminfo = rep->meminfo;
		c->have_host_meminfo = true;
	}
	if (hs_read_vmstat(c->conf.proc_root, &rep->vmstat) == 0)
		hs->vmstat = &rep->vmstat;
	if (hs_read_psi(c->conf.proc_root, &rep->psi) == 0)
		hs->psi = &rep->psi;
	if (hs_read_ksm(c->conf.sys_root, &rep->ksm, &rep->ksm_settings) == 0) {
		hs->ksm = &rep->ksm;
		c->host_ksm_sharing_pages = rep->ksm.sharing_pages;
		c->have_host_ksm = rep->ksm.has_sharing_pages;
		if (hs_read_ksmd_cpu(c->conf.proc_root, &c->ksmd_pid,
		    &rep->ksm.ksmd_cpu_ms) == 0)
			rep->ksm.has_ksmd_cpu_ms = 1;
	}
	if (hs_read_numa_nodes(c->conf.sys_root, rep->nodes, MSG_NODES_MAX,
	    &nn) == 0) {
		for (i = 0; i < nn; i++)
			rep->nodes_p[i] = &rep->nodes[i];
		hs->n_numa_nodes = nn;
		hs->numa_nodes = rep->nodes_p;
	}
}

static Mm__V1__Hypervisor
hypervisor(int driver)
{
	switch (driver) {
	case HV_TYPE_XEN:
		return MM__V1__HYPERVISOR__HYPERVISOR_XEN;
	case HV_TYPE_SIM:
		return MM__V1__HYPERVISOR__HYPERVISOR_SIM;
	default:
		return MM__V1__HYPERVISOR__HYPERVISOR_KVM;
	}
}

void
report_release(struct report *rep)
{
	free(rep->guests);
	free(rep->stubs);
	free(rep->vm_numa);
	free(rep->vm_numa_p);
	free(rep->pages);
	free(rep->pages_p);
	free(rep->vcpu_nodes);
	rep->guests = NULL;
	rep->stubs = NULL;
	rep->vm_numa = NULL;
	rep->vm_numa_p = NULL;
	rep->pages = NULL;
	rep->pages_p = NULL;
	rep->vcpu_nodes = NULL;
}

int
report_build(struct collector *c, struct hv_vm *const *vms, size_t nvms,
    uint64_t mono_ms, struct report *ret)
{
	Mm__V1__HostReport *m = &ret->msg;
	size_t i;

	memset(ret, 0, sizeof(*ret));
	mm__v1__host_report__init(m);
	mm__v1__host_stats__init(&ret->host);
	if (nvms > 0) {
		ret->guests = calloc(nvms, sizeof(*ret->guests));
		ret->stubs = calloc(nvms, sizeof(*ret->stubs));
		ret->vm_numa = calloc(nvms, sizeof(*ret->vm_numa));
		ret->vm_numa_p = calloc(nvms, sizeof(*ret->vm_numa_p));
		ret->pages = calloc(nvms * MSG_NODES_MAX, sizeof(*ret->pages));
		ret->pages_p = calloc(nvms * MSG_NODES_MAX,
		    sizeof(*ret->pages_p));
		ret->vcpu_nodes = calloc(nvms * MSG_NODES_MAX,
		    sizeof(*ret->vcpu_nodes));
		if (ret->guests == NULL || ret->stubs == NULL ||
		    ret->vm_numa == NULL || ret->vm_numa_p == NULL ||
		    ret->pages == NULL || ret->pages_p == NULL ||
		    ret->vcpu_nodes == NULL) {
			report_release(ret);
			return -ENOMEM;
		}
		for (i = 0; i < nvms; i++)
			add_guest(c, ret, vms[i], mono_ms);
	}
	add_host(c, ret);
	ret->host.vm_numa = ret->vm_numa_p;

	m->host_id = c->host_id;
	m->has_seq = 1;
	m->seq = c->seq++;
	m->has_time_ms = 1;
	m->time_ms = clock_ms(CLOCK_REALTIME);
	m->has_interval_ms = 1;
	m->interval_ms = (uint32_t)c->conf.interval_ms;
	m->has_hypervisor = 1;
	m->hypervisor = hypervisor(c->conf.driver);
	m->host = &ret->host;
	m->guests = ret->guests;
	return 0;
}
