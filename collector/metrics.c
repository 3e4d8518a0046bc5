/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's /metrics (docs/metrics.md): what it sees of each VM on
 * this host, the host's own memory, and every count of guest input it
 * refused; written on the loop when Prometheus scrapes.
 */
#include <stdint.h>

#include "bus.h"
#include "collector.h"
#include "metrics.h"

#define KIB	1024.0

struct vm_pass {
	struct mx *m;
	const struct collector *c;
	int what;
};

enum {
	VM_ACTUAL, VM_MAX, VM_USED, VM_AVAILABLE, VM_PRESSURE, VM_AGENT,
	VM_FLAGS, VM_RESIDENT, VM_REPORTING, VM_COLD, VM_COLD_IDLE, VM_COUNT
};

static const struct {
	const char *name;
	enum mx_type type;
	const char *unit;
	const char *help;
} vm_families[VM_COUNT] = {
	{ "mm_vm_actual_bytes", MX_GAUGE, "bytes",
	  "memory the VM's balloon leaves it (balloon actual)" },
	{ "mm_vm_max_bytes", MX_GAUGE, "bytes",
	  "the VM's maximum memory" },
	{ "mm_vm_used_bytes", MX_GAUGE, "bytes",
	  "memory the guest uses, by its last accepted sample" },
	{ "mm_vm_available_bytes", MX_GAUGE, "bytes",
	  "the guest's MemAvailable, by its last accepted sample" },
	{ "mm_vm_pressure_ratio", MX_GAUGE, "ratio",
	  "the guest's memory pressure: PSI some avg10, 0 to 1" },
	{ "mm_vm_agent_up", MX_GAUGE, NULL,
	  "1 while the guest agent's channel is connected" },
	{ "mm_vm_sanitizer_rejections", MX_COUNTER, NULL,
	  "the guest's samples refused or flagged by the sanitizer" },
	{ "mm_vm_host_resident_bytes", MX_GAUGE, "bytes",
	  "the VM's memory the host sees resident (its QEMU process's RSS)" },
	{ "mm_vm_free_page_reporting", MX_GAUGE, NULL,
	  "1 when the VM's balloon has free page reporting: what the guest "
	  "frees goes back to the host within seconds" },
	{ "mm_vm_cold_bytes", MX_GAUGE, "bytes",
	  "guest memory not touched for at least mm_vm_cold_idle_seconds of "
	  "the same bucket (MGLRU), by kind: anon or file" },
	{ "mm_vm_cold_idle_seconds", MX_GAUGE, "seconds",
	  "how long the memory of a cold bucket was not touched, at least" },
};

static void
vm_cb(struct hv_vm *vm, void *arg)
{
	struct vm_pass *p = arg;
	const struct cvm *cv = vm->user;
	const Mm__V1__GuestStats *g = cv != NULL ? cv->clean : NULL;
	uint64_t used, sum = 0;
	unsigned i;

	switch (p->what) {
	case VM_ACTUAL:
		if (vm->balloon_known)
			mx_add(p->m, (double)vm->balloon_actual_kib * KIB, 1,
			    "vm", vm->id);
		break;
	case VM_MAX:
		if (vm->max_known)
			mx_add(p->m, (double)vm->max_kib * KIB, 1, "vm",
			    vm->id);
		break;
	case VM_USED:
		if (g != NULL && hv_guest_used_kib(vm, g, &used))
			mx_add(p->m, (double)used * KIB, 1, "vm", vm->id);
		break;
	case VM_AVAILABLE:
		if (g != NULL && g->meminfo != NULL &&
		    g->meminfo->has_available_kib)
			mx_add(p->m, (double)g->meminfo->available_kib * KIB,
			    1, "vm", vm->id);
		break;
	case VM_PRESSURE:
		if (g != NULL && g->psi != NULL && g->psi->has_some_avg10_pct)
			mx_add(p->m, g->psi->some_avg10_pct / 100.0, 1,
			    "vm", vm->id);
		break;
	case VM_AGENT:
		mx_addu(p->m, vm->agent_up ? 1 : 0, 1, "vm", vm->id);
		break;
	case VM_RESIDENT:
		if (g != NULL && g->has_host_resident_kib)
			mx_add(p->m, (double)g->host_resident_kib * KIB, 1,
			    "vm", vm->id);
		break;
	case VM_REPORTING:
		mx_addu(p->m, vm->free_page_reporting ? 1 : 0, 1, "vm",
		    vm->id);
		break;
	case VM_COLD:
	case VM_COLD_IDLE:
		for (i = 0; g != NULL && i < g->n_cold && i < 9; i++) {
			const Mm__V1__ColdBucket *b = g->cold[i];
			char k[2] = { (char)('1' + i), '\0' };

			if (p->what == VM_COLD_IDLE) {
				mx_add(p->m, (double)b->idle_ms / 1000.0, 2,
				    "vm", vm->id, "bucket", k);
				continue;
			}
			mx_add(p->m, (double)b->anon_kib * KIB, 3, "vm",
			    vm->id, "bucket", k, "kind", "anon");
			mx_add(p->m, (double)b->file_kib * KIB, 3, "vm",
			    vm->id, "bucket", k, "kind", "file");
		}
		break;
	case VM_FLAGS:
		if (cv == NULL)
			break;
		for (i = 0; i < SAN_REASON_COUNT; i++)
			sum += cv->san.count[i];
		mx_addu(p->m, sum, 1, "vm", vm->id);
		break;
	}
}

static void
host_families(struct mx *m, const struct collector *c)
{
	const Mm__V1__Meminfo *mi = &c->host_meminfo;

	mx_single(m, "mm_host_vms", MX_GAUGE, NULL,
	    "VMs the hypervisor driver knows on this host", hv_vm_count(c->hv));
	if (c->have_host_meminfo) {
		mx_family(m, "mm_host_memory_total_bytes", MX_GAUGE, "bytes",
		    "the host's MemTotal");
		mx_add(m, (double)mi->total_kib * KIB, 0);
		mx_family(m, "mm_host_memory_available_bytes", MX_GAUGE,
		    "bytes", "the host's MemAvailable: its free memory");
		mx_add(m, (double)mi->available_kib * KIB, 0);
		mx_family(m, "mm_host_memory_free_bytes", MX_GAUGE, "bytes",
		    "the host's MemFree");
		mx_add(m, (double)mi->free_kib * KIB, 0);
	}
	if (c->have_host_ksm) {
		mx_family(m, "mm_host_ksm_saving_bytes", MX_GAUGE, "bytes",
		    "memory KSM saves on this host (pages_sharing)");
		mx_add(m, (double)c->host_ksm_sharing_pages * 4096.0, 0);
	}
}

static void
counter_families(struct mx *m, const struct collector *c)
{
	struct hv_stats st;
	unsigned i;

	hv_get_stats(c->hv, &st);
	mx_family(m, "mm_collector_reports", MX_COUNTER, NULL,
	    "host reports published, by what sent them");
	mx_addu(m, c->published - c->fast_published, 1, "trigger",
	    "interval");
	mx_addu(m, c->fast_published, 1, "trigger", "pressure");
	mx_single(m, "mm_collector_report_failures", MX_COUNTER, NULL,
	    "host reports the bus refused or could not send",
	    c->publish_errors);
	mx_single(m, "mm_agent_frames", MX_COUNTER, NULL,
	    "guest agent frames accepted", st.frames);
	mx_family(m, "mm_agent_frames_refused", MX_COUNTER, NULL,
	    "guest agent frames refused, by reason");
	mx_addu(m, st.frames_too_big, 1, "reason", "too_big");
	mx_addu(m, st.frames_undecodable, 1, "reason", "undecodable");
	mx_addu(m, st.frames_invalid, 1, "reason", "invalid");
	mx_single(m, "mm_agent_resets", MX_COUNTER, NULL,
	    "guest agent connections dropped by the host", st.agent_resets);
	mx_family(m, "mm_qmp_problems", MX_COUNTER, NULL,
	    "QMP answers refused or missing, by reason");
	mx_addu(m, st.qmp_bad_lines, 1, "reason", "bad_line");
	mx_addu(m, st.qmp_errors, 1, "reason", "error");
	mx_addu(m, st.qmp_hangs, 1, "reason", "hang");
	mx_single(m, "mm_qmp_fallback_samples", MX_COUNTER, NULL,
	    "guest samples read through QMP guest-stats, the agent silent",
	    st.qmp_fallbacks);
	mx_family(m, "mm_sanitizer_rejections", MX_COUNTER, NULL,
	    "guest values refused or flagged by the sanitizer, by reason");
	for (i = 0; i < SAN_REASON_COUNT; i++)
		mx_addu(m, san_total[i], 1, "reason", san_reason_name(i));
}

void
collector_metrics_cb(struct mx *m, void *arg)
{
	struct collector *c = arg;
	struct vm_pass p = { .m = m, .c = c };
	struct bus_stats bs;

	mx_const_label(m, "host", c->host_id);
	for (p.what = 0; p.what < VM_COUNT; p.what++) {
		mx_family(m, vm_families[p.what].name, vm_families[p.what].type,
		    vm_families[p.what].unit, vm_families[p.what].help);
		hv_foreach(c->hv, vm_cb, &p);
	}
	host_families(m, c);
	counter_families(m, c);
	bus_get_stats(c->bus, &bs);
	bus_metrics(m, &bs);
}
