/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actuator's /metrics (docs/metrics.md): each VM's target in force,
 * the host's reserve and fail-safe, and every count of a batch or command
 * refused, clamped, deferred or failed; written on the loop when
 * Prometheus scrapes.
 */
#include <stdint.h>

#include "actuator.h"
#include "bus.h"
#include "metrics.h"

#define KIB	1024.0

struct vm_pass {
	struct mx *m;
	const struct actuator *a;
	bool deferred;		/* the second family */
};

static void
vm_cb(struct hv_vm *vm, void *arg)
{
	struct vm_pass *p = arg;
	const struct avm *av = vm->user;
	uint64_t kib;

	if (p->deferred) {
		if (av != NULL)
			mx_addu(p->m, av->deferred ? 1 : 0, 1, "vm", vm->id);
		return;
	}
	if (vm->target_known)
		kib = vm->balloon_target_kib;
	else if (!act_vm_current(vm, &kib))
		return;
	mx_add(p->m, (double)kib * KIB, 1, "vm", vm->id);
}

static void
counters(struct mx *m, const struct actuator *a)
{
	static const char *const refusal[ACT_REFUSAL_COUNT] = {
		[ACT_REFUSE_SCHEDULER] = "scheduler",
		[ACT_REFUSE_FUTURE] = "future",
		[ACT_REFUSE_TTL] = "ttl",
	};
	int i;

	mx_single(m, "mm_actuator_batches", MX_COUNTER, NULL,
	    "command batches taken from the queue, refused ones excepted",
	    a->batches);
	mx_family(m, "mm_actuator_batches_refused", MX_COUNTER, NULL,
	    "batches dead-lettered or not run, by reason");
	for (i = ACT_OK + 1; i < ACT_REFUSAL_COUNT; i++)
		mx_addu(m, a->refused[i], 1, "reason", refusal[i]);
	mx_addu(m, a->misrouted, 1, "reason", "misrouted");
	mx_addu(m, a->expired, 1, "reason", "expired");
	mx_addu(m, a->stale, 1, "reason", "out_of_order");
	mx_addu(m, a->ignored, 1, "reason", "stopping");
	mx_family(m, "mm_actuator_commands", MX_COUNTER, NULL,
	    "balloon commands not applied as sent, by outcome");
	mx_addu(m, a->clamped, 1, "outcome", "clamped");
	mx_addu(m, a->deferred, 1, "outcome", "deferred");
	mx_addu(m, a->failed, 1, "outcome", "failed");
	mx_single(m, "mm_actuator_ksm_refused", MX_COUNTER, NULL,
	    "KSM settings refused as outside the safe limits", a->ksm.refused);
	mx_single(m, "mm_actuator_failsafe_steps", MX_COUNTER, NULL,
	    "guests grown by the fail-safe, the scheduler silent",
	    a->failsafe_steps);
	mx_single(m, "mm_actuator_publish_errors", MX_COUNTER, NULL,
	    "results and alerts the bus refused", a->publish_errors);
}

/* The host tier: its state, and what each VM's process has moved. */
static void
tier(struct mx *m, const struct act_tier *t)
{
	char node[16];
	const char *state = t->skipped ? "skipped" :
	    t->mode == ACT_TIER_SWAP ? "swap" :
	    t->mode == ACT_TIER_NODE ? node : "off";

	snprintf(node, sizeof(node), "node%u", t->node);
	mx_family(m, "mm_actuator_tier_state", MX_GAUGE, NULL,
	    "1 for the host tier's state: off, skipped (the host has no "
	    "swap or slower node), swap or node<N>");
	mx_add(m, 1, 1, "state", state);
	mx_family(m, "mm_vm_tier_moved_bytes", MX_COUNTER, "bytes",
	    "the VM's cold memory the host tier moved out of its RAM");
	for (size_t i = 0; i < t->n; i++)
		mx_add(m, (double)t->vms[i].moved_total_kib * KIB, 1, "vm",
		    t->vms[i].id);
	mx_single(m, "mm_actuator_tier_errors", MX_COUNTER, NULL,
	    "host tier scans or moves that failed", t->errors);
}

void
act_metrics_cb(struct mx *m, void *arg)
{
	struct actuator *a = arg;
	struct vm_pass p = { .m = m, .a = a };
	const struct msg_dispatch_stats *ds = &a->dstats;
	const char *const queue = "commands";
	struct bus_stats bs;

	mx_const_label(m, "host", a->host_id);
	mx_family(m, "mm_vm_target_bytes", MX_GAUGE, "bytes",
	    "the VM's balloon target in force, as mm set it");
	hv_foreach(a->hv, vm_cb, &p);
	p.deferred = true;
	mx_family(m, "mm_vm_target_deferred", MX_GAUGE, NULL,
	    "1 while a target waits (rate limit or fresh guest stats)");
	hv_foreach(a->hv, vm_cb, &p);
	mx_single(m, "mm_host_reserve_bytes", MX_GAUGE, "bytes",
	    "host free memory the actuator keeps (host_reserve)",
	    (double)a->conf.host_reserve_kib * KIB);
	mx_single(m, "mm_actuator_failsafe_active", MX_GAUGE, NULL,
	    "1 while the fail-safe acts (no batch for failsafe_after)",
	    a->failsafe_on ? 1 : 0);
	counters(m, a);
	tier(m, &a->tier);
	msg_dispatch_metrics(m, &queue, &ds, 1);
	if (a->bus != NULL) {
		bus_get_stats(a->bus, &bs);
		bus_metrics(m, &bs);
	}
}
