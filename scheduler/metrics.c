/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The scheduler's /metrics (docs/metrics.md): per host aggregates of its
 * VMs (a fleet of 10,000 hosts and 500,000 VMs is too many series per VM
 * at the centre; each host's collector and actuator have those), how long
 * decisions take, and every count of a report, result, policy or batch
 * refused, superseded or failed; written on the loop when Prometheus
 * scrapes.
 */
#include <stdint.h>
#include <time.h>

#include "bus.h"
#include "clock.h"
#include "metrics.h"
#include "scheduler.h"

#define KIB	1024.0

enum {
	H_VMS, H_TOTAL, H_AVAILABLE, H_KSM, H_MAX, H_TARGET, H_USED,
	H_PRESSURE, H_AGE, H_COUNT
};

static const struct {
	const char *name;
	const char *unit;
	const char *help;
} host_families[H_COUNT] = {
	{ "mm_scheduler_host_vms", NULL, "VMs of the host's last report" },
	{ "mm_scheduler_host_memory_total_bytes", "bytes",
	  "the host's MemTotal, by its last report" },
	{ "mm_scheduler_host_memory_available_bytes", "bytes",
	  "the host's MemAvailable, by its last report" },
	{ "mm_scheduler_host_ksm_saving_bytes", "bytes",
	  "memory KSM saves on the host, by its last report" },
	{ "mm_scheduler_host_max_bytes", "bytes",
	  "the sum of the host's VMs' maximum memory: what was promised" },
	{ "mm_scheduler_host_target_bytes", "bytes",
	  "the sum of the host's VMs' targets as last decided" },
	{ "mm_scheduler_host_used_bytes", "bytes",
	  "the sum of what the host's VMs use, by its last report" },
	{ "mm_scheduler_host_pressure_max_ratio", "ratio",
	  "the highest memory pressure (PSI some avg10, 0 to 1) of the "
	  "host's VMs" },
	{ "mm_scheduler_host_report_age_seconds", "seconds",
	  "time since the host's last accepted report" },
};

static double
host_value(const struct host *h, int what, uint64_t now_mono)
{
	double sum = 0;
	size_t i;

	switch (what) {
	case H_VMS:
		return (double)h->nvms;
	case H_TOTAL:
		return (double)h->total_kib * KIB;
	case H_AVAILABLE:
		return (double)h->available_kib * KIB;
	case H_KSM:
		return (double)h->ksm_sharing_pages * 4096.0;
	case H_AGE:
		return h->seen_ms != 0 && now_mono >= h->seen_ms ?
		    (double)(now_mono - h->seen_ms) / 1000.0 : 0;
	}
	for (i = 0; i < h->nvms; i++) {
		const struct pe_decision *d = &h->vms[i].d;

		switch (what) {
		case H_MAX:
			sum += (double)d->max_kib * KIB;
			break;
		case H_TARGET:
			sum += (double)d->target_kib * KIB;
			break;
		case H_USED:
			sum += (double)d->used_kib * KIB;
			break;
		case H_PRESSURE:
			if (h->vms[i].psi / 100.0 > sum)
				sum = h->vms[i].psi / 100.0;
			break;
		}
	}
	return sum;
}

static void
per_host(struct mx *m, const struct scheduler *s)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);
	size_t i;
	int what;

	mx_single(m, "mm_scheduler_hosts", MX_GAUGE, NULL,
	    "hosts this scheduler decides for", s->nhosts);
	for (what = 0; what < H_COUNT; what++) {
		mx_family(m, host_families[what].name, MX_GAUGE,
		    host_families[what].unit, host_families[what].help);
		for (i = 0; i < s->cap; i++)
			if (s->hosts[i] != NULL)
				mx_add(m, host_value(s->hosts[i], what, now),
				    1, "host", s->hosts[i]->id);
	}
	mx_family(m, "mm_scheduler_host_targets_resent", MX_COUNTER, NULL,
	    "targets sent again to the host, unconfirmed");
	for (i = 0; i < s->cap; i++)
		if (s->hosts[i] != NULL)
			mx_addu(m, s->hosts[i]->resent, 1, "host",
			    s->hosts[i]->id);
}

struct count {
	const char *label;
	uint64_t v;
};

static void
family(struct mx *m, const char *name, const char *help, const char *lname,
    const struct count *c, size_t n)
{
	size_t i;

	mx_family(m, name, MX_COUNTER, NULL, help);
	for (i = 0; i < n; i++) {
		if (lname != NULL)
			mx_addu(m, c[i].v, 1, lname, c[i].label);
		else
			mx_addu(m, c[i].v, 0);
	}
}

#define N(a)	(sizeof(a) / sizeof((a)[0]))

static void
counters(struct mx *m, const struct sched_counters *n)
{
	const struct count reports[] = { { NULL, n->reports } };
	const struct count reports_refused[] = {
		{ "old", n->reports_old }, { "bad_host", n->reports_bad },
		{ "wrong_key", n->reports_wrong_key },
		{ "future", n->reports_future },
		{ "seq_jump", n->reports_seq_jump },
		{ "host_limit", n->hosts_refused },
	};
	const struct count results[] = { { NULL, n->results } };
	const struct count results_refused[] = {
		{ "ignored", n->results_ignored },
		{ "future", n->results_future },
		{ "wrong_key", n->results_wrong_key },
	};
	const struct count batches[] = {
		{ "published", n->batches }, { "superseded",
		n->batches_superseded }, { "refused", n->batches_refused },
	};
	const struct count policies[] = {
		{ "accepted", n->policies_accepted },
		{ "rejected", n->policies_rejected },
		{ "old", n->policies_old }, { "jump", n->policies_jump },
		{ "reset", n->policies_reset },
	};
	const struct count history[] = {
		{ "saved", n->history_saved },
		{ "save_failed", n->history_save_failed },
		{ "refused", n->history_refused },
	};
	const struct count handover[] = {
		{ "sent", n->handover_sent },
		{ "failed", n->handover_failed },
		{ "received", n->handover_received },
	};
	const struct count misc[][1] = {
		{ { NULL, n->hosts_forgotten } }, { { NULL, n->syncs } },
		{ { NULL, n->resent } }, { { NULL, n->distrusted } },
		{ { NULL, n->commands } }, { { NULL, n->events } },
		{ { NULL, n->publish_failed } }, { { NULL, n->handover_refused } },
	};

	family(m, "mm_scheduler_reports", "host reports accepted", NULL,
	    reports, 1);
	family(m, "mm_scheduler_reports_refused", "host reports not taken, by "
	    "reason", "reason", reports_refused, N(reports_refused));
	family(m, "mm_scheduler_results", "actuators' results of our batches",
	    NULL, results, 1);
	family(m, "mm_scheduler_results_refused", "actuators' results not "
	    "taken, by reason", "reason", results_refused,
	    N(results_refused));
	family(m, "mm_scheduler_batches", "command batches, by outcome: "
	    "published, superseded unsent by a newer one, refused by the bus",
	    "outcome", batches, N(batches));
	family(m, "mm_scheduler_policies", "policies received, by outcome",
	    "outcome", policies, N(policies));
	family(m, "mm_scheduler_history_records", "history file records, "
	    "by outcome", "outcome", history, N(history));
	family(m, "mm_scheduler_handovers", "hosts' history handed over "
	    "between shards (sent, failed to send, received)", "outcome",
	    handover, N(handover));
	family(m, "mm_scheduler_handover_vms_refused", "VMs of a handed-over "
	    "history refused (malformed, a week old, from the future, no room)",
	    NULL, misc[7], 1);
	family(m, "mm_scheduler_hosts_forgotten", "hosts forgotten after "
	    "host_forget without a report", NULL, misc[0], 1);
	family(m, "mm_scheduler_syncs", "actuators that asked for their "
	    "targets", NULL, misc[1], 1);
	family(m, "mm_scheduler_targets_resent", "targets sent again, "
	    "unconfirmed", NULL, misc[2], 1);
	family(m, "mm_scheduler_samples_distrusted", "guest samples not "
	    "grown on their word", NULL, misc[3], 1);
	family(m, "mm_scheduler_commands", "commands in published batches",
	    NULL, misc[4], 1);
	family(m, "mm_scheduler_events", "events published", NULL, misc[5],
	    1);
	family(m, "mm_scheduler_publish_failures", "messages the bus "
	    "refused", NULL, misc[6], 1);
}

void
sched_metrics_cb(struct mx *m, void *arg)
{
	struct scheduler *s = arg;
	const char *const names[] = { "stats", "policy", "control",
		"results", "history" };
	const struct msg_dispatch_stats *const stats[] = {
		&s->stats_dispatch, &s->policy_dispatch, &s->control_dispatch,
		&s->results_dispatch, &s->history_dispatch,
	};
	struct bus_stats bs;

	mx_single(m, "mm_scheduler_policy_version", MX_GAUGE, NULL,
	    "version of the policy in force", s->policy.version);
	per_host(m, s);
	mx_family(m, "mm_scheduler_decision_seconds", MX_HISTOGRAM, "seconds",
	    "time to decide one host's round, from its report's arrival to "
	    "its batch handed to the bus");
	mx_hist(m, &s->decide_s, NULL, NULL);
	mx_family(m, "mm_scheduler_report_age_seconds", MX_HISTOGRAM,
	    "seconds", "age of a host report when decided on, from the "
	    "collector's clock: transit through the broker and queueing");
	mx_hist(m, &s->report_age_s, NULL, NULL);
	counters(m, &s->n);
	msg_dispatch_metrics(m, names, stats, N(names));
	bus_get_stats(s->bus, &bs);
	bus_metrics(m, &bs);
}
