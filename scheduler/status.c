/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Status requests (mmctl status, top, policy show): every scheduler gets
 * every request on mm.control and answers, for the hosts it owns, what it
 * last saw and decided, with the policy in force. Replies go to the
 * requester's own queue (reply_to), which must be an mmctl queue.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "scheduler.h"
#include "topology.h"

/* Every counter of struct sched_counters under its own name: a counter
 * added there without a line here fails the build. */
/* A StatusReply's size bound: guests per host on average, and how long
 * the reply waits for mmctl in its queue. */
#define STATUS_GUESTS_PER_HOST	16
#define STATUS_REPLY_TTL_MS	10000

#define CTR(f)	{ #f, offsetof(struct sched_counters, f) }
static const struct {
	const char *name;
	size_t offset;
} counters[] = {
	CTR(reports), CTR(reports_old), CTR(reports_bad),
	CTR(reports_wrong_key), CTR(results_wrong_key),
	CTR(reports_future), CTR(reports_seq_jump), CTR(hosts_refused),
	CTR(hosts_forgotten), CTR(results), CTR(results_ignored),
	CTR(results_future), CTR(syncs), CTR(resent), CTR(distrusted),
	CTR(batches), CTR(commands), CTR(events), CTR(publish_failed),
	CTR(batches_superseded), CTR(batches_refused),
	CTR(policies_accepted), CTR(policies_rejected), CTR(policies_old),
	CTR(stats_malformed), CTR(policies_malformed), CTR(control_malformed),
	CTR(results_malformed),
	CTR(policies_jump), CTR(policies_reset), CTR(history_refused),
	CTR(history_saved), CTR(history_save_failed), CTR(history_malformed),
	CTR(handover_sent), CTR(handover_failed), CTR(handover_received),
	CTR(handover_refused),
};
#define NCOUNTERS	(sizeof(counters) / sizeof(counters[0]))
_Static_assert(sizeof(struct sched_counters) == NCOUNTERS * sizeof(uint64_t),
    "a counter of struct sched_counters has no name in scheduler/status.c");

static bool
wanted(const Mm__V1__StatusRequest *q, const char *host_id)
{
	if (q->n_host_ids == 0)
		return true;
	for (size_t i = 0; i < q->n_host_ids; i++)
		if (strcmp(q->host_ids[i], host_id) == 0)
			return true;
	return false;
}

/* reason (PE_WHY_MAX bytes) must live as long as g. */
static void
guest_status(Mm__V1__GuestStatus *g, const struct vm_status *v, char *reason)
{
	mm__v1__guest_status__init(g);
	pe_format_why(&v->d, reason, PE_WHY_MAX);
	g->vm_id = (char *)v->d.vm_id;
	if (v->name[0] != '\0')
		g->vm_name = (char *)v->name;
	g->has_balloon_target_kib = true;
	g->balloon_target_kib = v->d.target_kib;
	g->has_balloon_actual_kib = true;
	g->balloon_actual_kib = v->actual_kib;
	g->has_min_kib = g->has_max_kib = true;
	g->min_kib = v->d.min_kib;
	g->max_kib = v->d.max_kib;
	g->has_psi_some_avg10_pct = true;
	g->psi_some_avg10_pct = v->psi;
	g->reason = reason;
	g->has_used_kib = g->has_need_kib = true;
	g->used_kib = v->d.used_kib;
	g->need_kib = v->d.need_kib;
	g->has_pressure_pct = true;
	g->pressure_pct = v->d.pressure * 100;
	g->has_decision_ms = true;
	g->decision_ms = v->decision_ms;
}

enum bus_disposition
on_status_request(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	const Mm__V1__StatusRequest *q = (const Mm__V1__StatusRequest *)m;
	struct scheduler *s = arg;
	Mm__V1__StatusReply rep = MM__V1__STATUS_REPLY__INIT;
	Mm__V1__HostStatus *hs = NULL, **hp = NULL;
	Mm__V1__GuestStatus *gs = NULL, **gp = NULL;
	Mm__V1__Metric ms[NCOUNTERS], *mp[NCOUNTERS];
	char (*reasons)[PE_WHY_MAX] = NULL;
	ProtobufCMessage *policy = NULL;
	size_t nh = 0, ng = 0, gi = 0;
	struct bus_msg bm;
	uint8_t *buf;
	uint64_t u;
	int r;

	if (strncmp(d->reply_to, TOPO_Q_MMCTL_PREFIX,
	    strlen(TOPO_Q_MMCTL_PREFIX)) != 0) {
		s->n.control_malformed++;
		log_warnx_limited(&s->lim_control, "status request without "
		    "an mmctl reply queue dead-lettered");
		return BUS_REJECT;
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (s->hosts[i] != NULL && wanted(q, s->hosts[i]->id)) {
			nh++;
			ng += q->guests ? s->hosts[i]->nvms : 0;
		}
	}
	if (nh > MSG_REPEATED_MAX || ng > MSG_REPEATED_MAX * STATUS_GUESTS_PER_HOST) {
		rep.error = "too many hosts: ask for some by id";
		nh = ng = 0;
	}
	hs = calloc(nh + 1, sizeof(*hs));
	hp = calloc(nh + 1, sizeof(*hp));
	gs = calloc(ng + 1, sizeof(*gs));
	gp = calloc(ng + 1, sizeof(*gp));
	reasons = calloc(ng + 1, sizeof(*reasons));
	if (hs == NULL || hp == NULL || gs == NULL || gp == NULL ||
	    reasons == NULL)
		goto out;
	nh = 0;
	for (size_t i = 0; i < s->cap; i++) {
		const struct host *h = s->hosts[i];
		Mm__V1__HostStatus *x;

		if (h == NULL || !wanted(q, h->id) || rep.error != NULL)
			continue;
		x = &hs[nh];
		hp[nh++] = x;
		mm__v1__host_status__init(x);
		x->host_id = (char *)h->id;
		x->has_report_ms = x->has_report_seq = true;
		x->report_ms = h->last_time_ms;
		x->report_seq = h->last_seq;
		x->has_batch_seq = true;
		x->batch_seq = h->batch_seq;
		x->has_result_ms = h->result_ms != 0;
		x->result_ms = h->result_ms;
		x->has_guest_count = true;
		x->guest_count = (uint32_t)h->nvms;
		x->has_total_kib = x->has_available_kib = true;
		x->total_kib = h->total_kib;
		x->available_kib = h->available_kib;
		x->has_reserve_kib = true;
		x->reserve_kib = s->policy.balloon.host_reserve_kib;
		x->has_ksm_sharing_pages = true;
		x->ksm_sharing_pages = h->ksm_sharing_pages;
		x->has_unconfirmed = x->has_resent = true;
		x->resent = h->resent;
		for (size_t v = 0; v < h->nvms; v++)
			x->unconfirmed += h->vms[v].rc.sent_kib != 0 &&
			    !h->vms[v].rc.confirmed;
		if (!q->guests)
			continue;
		x->guests = &gp[gi];
		for (size_t v = 0; v < h->nvms; v++) {
			guest_status(&gs[gi], &h->vms[v], reasons[gi]);
			gp[gi] = &gs[gi];
			gi++;
		}
		x->n_guests = h->nvms;
	}
	rep.scheduler_id = s->id;
	rep.has_time_ms = true;
	rep.time_ms = clock_ms(CLOCK_REALTIME);
	rep.has_policy_version = true;
	rep.policy_version = s->policy.version;
	/* A policy may have no name; an empty one is not a valid field. */
	if (s->policy.name[0] != '\0')
		rep.policy_name = s->policy.name;
	rep.has_policy_mode = true;
	rep.policy_mode = (Mm__V1__PolicyMode)s->policy.mode;
	if (s->policy_msg != NULL && msg_unpack(MSG_POLICY, s->policy_msg,
	    s->policy_len, &policy, NULL, 0) == 0)
		rep.policy = (Mm__V1__Policy *)policy;
	rep.n_hosts = nh;
	rep.hosts = hp;
	for (size_t i = 0; i < NCOUNTERS; i++) {
		mm__v1__metric__init(&ms[i]);
		ms[i].name = (char *)counters[i].name;
		ms[i].has_value = true;
		memcpy(&u, (const char *)&s->n + counters[i].offset,
		    sizeof(u));
		ms[i].value = (double)u;
		ms[i].unit = "count";
		mp[i] = &ms[i];
	}
	rep.n_counters = NCOUNTERS;
	rep.counters = mp;
	r = msg_to_bus(MSG_STATUS_REPLY, (const ProtobufCMessage *)&rep, "",
	    d->reply_to, false, &bm, &buf);
	if (r == 0) {
		bm.correlation_id = d->correlation_id;
		bm.expiration_ms = STATUS_REPLY_TTL_MS;
		r = bus_publish(s->bus, &bm, NULL, NULL);
		free(buf);
	}
	if (r < 0)
		log_warnx("status reply not sent: %s", strerror(-r));
out:
	msg_free(policy);
	free(hs);
	free(hp);
	free(gs);
	free(gp);
	free(reasons);
	return BUS_ACK;
}
