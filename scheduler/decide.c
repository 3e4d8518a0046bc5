/* SPDX-License-Identifier: Apache-2.0 */
/*
 * From a host's report to its commands: the host table, the conversion of
 * a HostReport into the policy engine's view, and the output of each
 * decision as one CommandBatch (shrinks first: take before give) and one
 * decision event per changed target, with its reason and numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "scheduler.h"
#include "topology.h"

static void batch_free(struct batch *b);

/* ---- hosts ---- */

/* 64-bit FNV-1a, for the host table. */
#define FNV_OFFSET	1469598103934665603ull
#define FNV_PRIME	1099511628211ull
/* Slots of the host table when the first host arrives. */
#define HOSTS_CAP_MIN	64

static size_t
hash_id(const char *id)
{
	size_t h = FNV_OFFSET;

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * FNV_PRIME;
	return h;
}

/* Put h in the first free slot of table t (cap a power of two). */
static void
table_put(struct host **t, size_t cap, struct host *h)
{
	size_t j;

	for (j = hash_id(h->id) & (cap - 1); t[j] != NULL; j = (j + 1) &
	    (cap - 1))
		;
	t[j] = h;
}

static void
host_free(struct host *h)
{
	pe_state_free(h->pe);
	pe_numa_state_free(h->numa);
	free(h->report);
	free(h->vms);
	free(h->moves_sent);
	free(h);
}

static bool
host_silent(const struct scheduler *s, const struct host *h, uint64_t now)
{
	return now - h->seen_ms >= (uint64_t)s->conf.host_forget_ms;
}

static void
host_forget(struct scheduler *s, struct host *h, uint64_t now)
{
	log_info("host \"%s\": no report for %llu s, forgotten", h->id,
	    (unsigned long long)(now - h->seen_ms) / 1000);
	host_free(h);
	s->nhosts--;
	s->n.hosts_forgotten++;
}

/* Move s's hosts into a new table of cap slots; with now (monotonic ms)
 * not 0, those silent since host_forget are forgotten instead (open
 * addressing leaves no gaps that way). Returns 0 or -ENOMEM (nothing
 * changed). */
static int
hosts_rebuild(struct scheduler *s, size_t cap, uint64_t now)
{
	struct host **t = calloc(cap, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++) {
		struct host *h = s->hosts[i];

		if (h == NULL)
			continue;
		if (now != 0 && host_silent(s, h, now))
			host_forget(s, h, now);
		else
			table_put(t, cap, h);
	}
	free(s->hosts);
	s->hosts = t;
	s->cap = cap;
	return 0;
}

static int
hosts_grow(struct scheduler *s)
{
	return hosts_rebuild(s, s->cap ? s->cap * 2 : HOSTS_CAP_MIN, 0);
}

struct host *
host_find(struct scheduler *s, const char *id)
{
	size_t j;

	if (s->cap == 0)
		return NULL;
	for (j = hash_id(id) & (s->cap - 1); s->hosts[j] != NULL;
	    j = (j + 1) & (s->cap - 1))
		if (strcmp(s->hosts[j]->id, id) == 0)
			return s->hosts[j];
	return NULL;
}

struct host *
host_get(struct scheduler *s, const char *id)
{
	struct host *h = host_find(s, id);

	if (h != NULL)
		return h;
	/* A host's broker user can publish reports for its own id only
	 * (topic permissions; on_report() checks the body says the same).
	 * What a holder of the scheduler's or a test's wide credentials can
	 * make up is bounded: at most max_hosts. */
	if (s->nhosts >= (size_t)s->conf.max_hosts) {
		errno = EAGAIN;
		return NULL;
	}
	if ((s->nhosts + 1) * 2 > s->cap && hosts_grow(s) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return NULL;
	h->pe = pe_state_new();
	h->numa = pe_numa_state_new();
	if (h->pe == NULL || h->numa == NULL) {
		pe_state_free(h->pe);
		pe_numa_state_free(h->numa);
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(h->id, sizeof(h->id), "%s", id);
	/* Its command queue, bound to mm.commands with its key: the host's
	 * own user may declare the queue but not bind it. Replayed on every
	 * connection; declared and bound already, it changes nothing. */
	if (topo_declare_actuator_queue(s->bus, h->id) < 0)
		log_warnx("host \"%s\": cannot declare its command queue", id);
	table_put(s->hosts, s->cap, h);
	s->nhosts++;
	history_claim(s, h);
	log_info("host \"%s\": first report", id);
	return h;
}

void
hosts_sweep(struct scheduler *s)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);

	for (size_t i = 0; i < s->cap; i++)
		if (s->hosts[i] != NULL && host_silent(s, s->hosts[i], now)) {
			/* Out of memory: tried again at the next sweep. */
			hosts_rebuild(s, s->cap, now);
			return;
		}
}

void
hosts_free(struct scheduler *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		struct host *h = s->hosts[i];

		if (h != NULL)
			host_free(h);
	}
	free(s->hosts);
	free(s->guests);
	free(s->decisions);
	free(s->why);
	free(s->events);
	free(s->event_vms);
	batch_free(s->batch);
	s->batch = NULL;
	s->hosts = NULL;
	s->cap = s->nhosts = 0;
}

/* ---- report to engine ---- */

#define EVENT_METRICS	5	/* the numbers behind each VM's decision */

/* One VM of a decision event, with its numbers. */
struct vm_event {
	Mm__V1__VmDecision vd;
	Mm__V1__Metric m[EVENT_METRICS];
	Mm__V1__Metric *mp[EVENT_METRICS];
};

static int
scratch_reserve(struct scheduler *s, size_t n)
{
	struct pe_guest *g;
	struct pe_decision *d;
	char (*why)[PE_WHY_MAX];
	struct vm_event *ev;
	Mm__V1__VmDecision **evp;

	if (n <= s->scratch_cap)
		return 0;
	g = realloc(s->guests, n * sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	s->guests = g;
	d = realloc(s->decisions, n * sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	s->decisions = d;
	why = realloc(s->why, n * sizeof(*why));
	if (why == NULL)
		return -ENOMEM;
	s->why = why;
	ev = realloc(s->events, n * sizeof(*ev));
	if (ev == NULL)
		return -ENOMEM;
	s->events = ev;
	evp = realloc(s->event_vms, n * sizeof(*evp));
	if (evp == NULL)
		return -ENOMEM;
	s->event_vms = evp;
	s->scratch_cap = n;
	return 0;
}

static void
guest_from_msg(struct pe_guest *g, const Mm__V1__GuestStats *gs)
{
	memset(g, 0, sizeof(*g));
	g->vm_id = gs->vm_id;
	g->vm_name = gs->vm_name;
	pm_guest_memory(g, gs);
	if (gs->psi != NULL && gs->psi->has_some_avg10_pct) {
		g->has_psi = true;
		g->psi_some_avg10 = gs->psi->some_avg10_pct;
		g->has_psi_total = gs->psi->has_some_total_us;
		g->psi_some_total_us = gs->psi->some_total_us;
	}
	if (gs->vmstat != NULL) {
		g->has_vmstat = true;
		g->major_faults = gs->vmstat->major_faults;
		g->swap_in_pages = gs->vmstat->swap_in_pages;
		g->oom_kills = gs->vmstat->oom_kills;
	}
	g->stale = gs->has_stale && gs->stale;
	/* Whatever the collector flagged (clamped, inconsistent, above what
	 * the host sees, too fast) earns the guest no growth. */
	g->untrusted = gs->n_flags > 0;
}

static void
ksm_from_msg(struct pe_ksm_obs *o, const Mm__V1__HostReport *r)
{
	const Mm__V1__KsmStats *k = r->host->ksm;
	const Mm__V1__KsmSettings *st = k->settings;

	memset(o, 0, sizeof(*o));
	o->present = true;
	o->time_ms = r->time_ms;
	if (r->host->meminfo != NULL) {
		o->host_total_kib = r->host->meminfo->total_kib;
		o->host_available_kib = r->host->meminfo->available_kib;
	}
	o->pages_sharing = k->sharing_pages;
	o->full_scans = k->full_scans;
	o->has_cpu = k->has_ksmd_cpu_ms;
	o->ksmd_cpu_ms = k->ksmd_cpu_ms;
	if (st != NULL) {
		o->run = st->run == MM__V1__KSM_RUN__KSM_RUN_MERGE ? 1 :
		    st->run == MM__V1__KSM_RUN__KSM_RUN_UNMERGE ? 2 : 0;
		o->pages_to_scan = st->pages_to_scan;
		o->sleep_ms = st->sleep_ms;
	}
}

/* ---- output ---- */

static void
publish_event(struct scheduler *s, const char *kind, const char *host_id,
    Mm__V1__Event *ev)
{
	char key[160];
	int r;

	ev->source_id = s->id;
	ev->has_time_ms = true;
	ev->time_ms = clock_ms(CLOCK_REALTIME);
	if (!ev->has_policy_version) {
		ev->has_policy_version = true;
		ev->policy_version = s->policy.version;
	}
	if (topo_event_key(key, sizeof(key), kind, host_id) < 0)
		return;
	r = msg_publish(s->bus, MSG_EVENT, (const ProtobufCMessage *)ev,
	    TOPO_EX_EVENTS, key, false, NULL, NULL);
	if (r < 0) {
		s->n.publish_failed++;
		log_debug("event %s: %s", key, strerror(-r));
		return;
	}
	s->n.events++;
}

void
publish_alert(struct scheduler *s, const char *host_id, const char *vm_id,
    int severity, uint64_t policy_version, const char *fmt, ...)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	ev.has_kind = true;
	ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_ALERT;
	ev.host_id = (char *)(host_id != NULL ? host_id : s->id);
	ev.vm_id = (char *)vm_id;
	ev.has_severity = true;
	ev.severity = (Mm__V1__Severity)severity;
	ev.reason = reason;
	/* The version the alert is about, not always the one in force. */
	ev.has_policy_version = true;
	ev.policy_version = policy_version;
	publish_event(s, TOPO_EV_ALERT, ev.host_id, &ev);
}


static void
vm_event_fill(struct vm_event *ve, const struct pe_decision *d,
    const struct pe_guest *g, const char *reason)
{
	static const char *const names[EVENT_METRICS] = {
		"used_kib", "need_kib", "min_kib", "max_kib", "pressure",
	};
	const double vals[EVENT_METRICS] = {
		(double)d->used_kib, (double)d->need_kib, (double)d->min_kib,
		(double)d->max_kib, d->pressure,
	};

	mm__v1__vm_decision__init(&ve->vd);
	for (int i = 0; i < EVENT_METRICS; i++) {
		mm__v1__metric__init(&ve->m[i]);
		ve->m[i].name = (char *)names[i];
		ve->m[i].has_value = true;
		ve->m[i].value = vals[i];
		ve->m[i].unit = i < 4 ? "KiB" : "ratio";
		ve->mp[i] = &ve->m[i];
	}
	ve->vd.vm_id = (char *)d->vm_id;
	ve->vd.reason = (char *)reason;
	ve->vd.n_metrics = EVENT_METRICS;
	ve->vd.metrics = ve->mp;
	ve->vd.has_balloon_target_kib = true;
	ve->vd.balloon_target_kib = d->target_kib;
	if (g->has_balloon) {
		ve->vd.has_balloon_actual_kib = true;
		ve->vd.balloon_actual_kib = g->actual_kib;
	}
}

/* Publish the n VMs at vp as one decision event of h's round: a single
 * VM in the event's own fields, as before Event.vms, several in vms. */
static void
decision_publish(struct scheduler *s, const struct host *h,
    Mm__V1__VmDecision **vp, size_t n)
{
	Mm__V1__Event ev = MM__V1__EVENT__INIT;

	ev.has_kind = true;
	ev.kind = MM__V1__EVENT_KIND__EVENT_KIND_DECISION;
	ev.host_id = (char *)h->id;
	ev.has_shadow = true;
	ev.shadow = s->policy.mode == PM_SHADOW;
	if (n == 1) {
		ev.vm_id = vp[0]->vm_id;
		ev.reason = vp[0]->reason;
		ev.n_metrics = vp[0]->n_metrics;
		ev.metrics = vp[0]->metrics;
		ev.has_balloon_target_kib = vp[0]->has_balloon_target_kib;
		ev.balloon_target_kib = vp[0]->balloon_target_kib;
		ev.has_balloon_actual_kib = vp[0]->has_balloon_actual_kib;
		ev.balloon_actual_kib = vp[0]->balloon_actual_kib;
	} else {
		ev.n_vms = n;
		ev.vms = vp;
	}
	/* The batch that carries these decisions (published next). */
	if (s->policy.mode == PM_ENFORCE) {
		ev.has_batch_seq = true;
		ev.batch_seq = h->batch_seq + 1;
	}
	publish_event(s, TOPO_EV_DECISION, h->id, &ev);
}

/*
 * One decision event for h's round: every changed decision of the n in
 * s->decisions, with its reason in s->why. A round of more than
 * MSG_EVENT_VMS_MAX VMs takes several events of that many.
 */
static void
decision_event(struct scheduler *s, const struct host *h, int n)
{
	/* The scheduler's scratch, room for every guest of the report. */
	struct vm_event *ve = s->events;
	Mm__V1__VmDecision **vp = s->event_vms;
	size_t k = 0;

	for (int i = 0; i < n; i++) {
		if (!s->decisions[i].changed)
			continue;
		vm_event_fill(&ve[k], &s->decisions[i], &s->guests[i],
		    s->why[i]);
		vp[k] = &ve[k].vd;
		if (++k == MSG_EVENT_VMS_MAX) {
			decision_publish(s, h, vp, k);
			k = 0;
		}
	}
	if (k > 0)
		decision_publish(s, h, vp, k);
}

#define MOVES_MAX	16	/* NUMA moves in one batch */

/*
 * Room for one host's commands: balloons, KSM, NUMA moves. The scheduler
 * keeps one, grown to its largest host, rather than allocating six arrays
 * per report.
 */
struct batch {
	Mm__V1__Command *cmds;		/* cap + MOVES_MAX + 1 */
	Mm__V1__Command **ptrs;		/* likewise */
	Mm__V1__SetBalloonTarget *balloons;	/* cap */
	Mm__V1__ReclaimCold *reclaims;		/* cap */
	size_t cap;
	size_t n;
	size_t nr;
	size_t nb;
	size_t nm;
	size_t nc;		/* reclaims */
	Mm__V1__SetKsm ksm;
	Mm__V1__KsmSettings ksm_settings;
	Mm__V1__MigrateNuma moves[MOVES_MAX];
	uint32_t from[MOVES_MAX][PE_NODES_MAX];
	char reasons[MOVES_MAX + 1][PE_WHY_MAX];	/* KSM's and the
							 * moves'; balloons use
							 * the decisions' own */
};

/* s's batch, empty, with room for guests balloons; NULL: out of memory. */
static struct batch *
batch_begin(struct scheduler *s, size_t guests)
{
	struct batch *b = s->batch;
	Mm__V1__Command *cmds, **ptrs;
	Mm__V1__SetBalloonTarget *balloons;
	Mm__V1__ReclaimCold *reclaims;
	size_t n = 2 * guests + MOVES_MAX + 1;

	if (b == NULL) {
		b = calloc(1, sizeof(*b));
		if (b == NULL)
			return NULL;
		s->batch = b;
	}
	if (guests > b->cap || b->cmds == NULL) {
		cmds = realloc(b->cmds, n * sizeof(*cmds));
		if (cmds == NULL)
			return NULL;
		b->cmds = cmds;
		ptrs = realloc(b->ptrs, n * sizeof(*ptrs));
		if (ptrs == NULL)
			return NULL;
		b->ptrs = ptrs;
		balloons = realloc(b->balloons, (guests + 1) *
		    sizeof(*balloons));
		if (balloons == NULL)
			return NULL;
		b->balloons = balloons;
		reclaims = realloc(b->reclaims, (guests + 1) *
		    sizeof(*reclaims));
		if (reclaims == NULL)
			return NULL;
		b->reclaims = reclaims;
		b->cap = guests;
	}
	b->n = b->nr = b->nb = b->nm = b->nc = 0;
	return b;
}

static void
batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	free(b->cmds);
	free(b->ptrs);
	free(b->balloons);
	free(b->reclaims);
	free(b);
}

static Mm__V1__Command *
batch_add(struct batch *b)
{
	Mm__V1__Command *c = &b->cmds[b->n];

	mm__v1__command__init(c);
	b->ptrs[b->n++] = c;
	return c;
}

static void
batch_balloon(struct batch *b, const struct pe_decision *d, char *reason)
{
	Mm__V1__Command *c = batch_add(b);
	Mm__V1__SetBalloonTarget *t = &b->balloons[b->nb++];

	mm__v1__set_balloon_target__init(t);
	t->vm_id = (char *)d->vm_id;
	t->has_target_kib = true;
	t->target_kib = d->target_kib;
	c->kind_case = MM__V1__COMMAND__KIND_BALLOON;
	c->balloon = t;
	c->reason = reason;
}

static void
batch_reclaim(struct batch *b, const struct pe_decision *d)
{
	static char reason[] = "reclaim: cold memory of a calm guest, into "
	    "its swap";
	Mm__V1__Command *c = batch_add(b);
	Mm__V1__ReclaimCold *r = &b->reclaims[b->nc++];

	mm__v1__reclaim_cold__init(r);
	r->vm_id = (char *)d->vm_id;
	r->has_kib = r->has_psi_budget_pct = true;
	r->kib = d->reclaim_kib;
	r->psi_budget_pct = d->reclaim_budget_pct;
	c->kind_case = MM__V1__COMMAND__KIND_RECLAIM;
	c->reclaim = r;
	c->reason = reason;
}

static void
batch_ksm(struct batch *b, const struct scheduler *s,
    const struct pe_ksm_decision *k)
{
	Mm__V1__Command *c = batch_add(b);

	mm__v1__set_ksm__init(&b->ksm);
	mm__v1__ksm_settings__init(&b->ksm_settings);
	b->ksm_settings.has_run = true;
	b->ksm_settings.run = k->run == 1 ? MM__V1__KSM_RUN__KSM_RUN_MERGE :
	    k->run == 2 ? MM__V1__KSM_RUN__KSM_RUN_UNMERGE :
	    MM__V1__KSM_RUN__KSM_RUN_STOP;
	b->ksm_settings.has_pages_to_scan = true;
	b->ksm_settings.pages_to_scan = k->pages_to_scan;
	if (k->sleep_ms > 0) {
		b->ksm_settings.has_sleep_ms = true;
		b->ksm_settings.sleep_ms = k->sleep_ms;
	}
	if (s->policy.merge_across_nodes_set) {
		b->ksm_settings.has_merge_across_nodes = true;
		b->ksm_settings.merge_across_nodes =
		    s->policy.merge_across_nodes;
	}
	b->ksm.settings = &b->ksm_settings;
	c->kind_case = MM__V1__COMMAND__KIND_KSM;
	c->ksm = &b->ksm;
	c->reason = b->reasons[b->nr++];
	snprintf(c->reason, PE_WHY_MAX, "ksm %s: %.1f %% free, ksmd %.1f %% "
	    "of a core, %.0f pages per CPU-second",
	    pe_ksm_reason_name(k->reason), k->free_pct, k->cpu_pct, k->profit);
}

static void
batch_numa(struct batch *b, const struct pe_numa_move *mv)
{
	Mm__V1__Command *c = batch_add(b);
	Mm__V1__MigrateNuma *m = &b->moves[b->nm];
	uint32_t *from = b->from[b->nm];

	b->nm++;
	mm__v1__migrate_numa__init(m);
	m->vm_id = (char *)mv->vm_id;
	for (unsigned n = 0; n < PE_NODES_MAX; n++)
		if (mv->from_nodes & (1ull << n))
			from[m->n_from_nodes++] = n;
	m->from_nodes = from;
	m->has_to_node = true;
	m->to_node = mv->to_node;
	m->has_max_pages = true;
	m->max_pages = mv->pages;
	c->kind_case = MM__V1__COMMAND__KIND_NUMA;
	c->numa = m;
	c->reason = b->reasons[b->nr++];
	snprintf(c->reason, PE_WHY_MAX, "numa: %llu of its pages away from "
	    "node %u, where its vCPUs ran", (unsigned long long)
	    mv->remote_pages, mv->to_node);
}

static size_t
numa_moves(struct scheduler *s, struct host *h, const Mm__V1__HostReport *r,
    struct pe_numa_move *out, size_t cap)
{
	const Mm__V1__HostStats *hs = r->host;
	struct pe_numa_host nh = { .time_ms = r->time_ms };
	struct pe_numa_vm *vms;
	int n;

	if (!s->policy.numa_managed || hs == NULL || hs->n_numa_nodes < 2 ||
	    hs->n_vm_numa == 0)
		return 0;
	vms = calloc(hs->n_vm_numa, sizeof(*vms));
	if (vms == NULL)
		return 0;
	for (size_t i = 0; i < hs->n_numa_nodes; i++) {
		unsigned node = hs->numa_nodes[i]->node;

		if (node < PE_NODES_MAX) {
			nh.node_free_kib[node] = hs->numa_nodes[i]->free_kib;
			if (node + 1 > nh.n_nodes)
				nh.n_nodes = node + 1;
		}
	}
	for (size_t i = 0; i < hs->n_vm_numa; i++) {
		const Mm__V1__VmNuma *v = hs->vm_numa[i];

		vms[i].vm_id = v->vm_id;
		for (size_t j = 0; j < v->n_nodes; j++)
			if (v->nodes[j]->node < PE_NODES_MAX)
				vms[i].pages[v->nodes[j]->node] =
				    v->nodes[j]->pages;
		for (size_t j = 0; j < v->n_vcpu_nodes; j++)
			if (v->vcpu_nodes[j] < PE_NODES_MAX)
				vms[i].vcpu_nodes |= 1ull << v->vcpu_nodes[j];
	}
	nh.n_vms = hs->n_vm_numa;
	nh.vms = vms;
	n = pe_numa_decide(h->numa, &nh, &s->policy.numa, out, cap);
	free(vms);
	return n > 0 ? (size_t)n : 0;
}

/* A batch's fate at the bus: superseded by a newer one for its host
 * before it was sent (its content went out in the newer one). */
static void
batch_confirm_cb(struct bus *bus, int status, void *arg)
{
	struct scheduler *s = arg;

	(void)bus;
	if (status == -ESTALE) {
		s->n.batches_superseded++;
	} else if (status == -EIO) {
		/* Refused by the broker every time it was sent: the next
		 * decision for the host carries what this one did. */
		s->n.batches_refused++;
		log_warnx("a command batch was refused by the broker "
		    "(basic.nack) each time it was sent");
	}
}

static int
publish_batch(struct scheduler *s, struct host *h, const Mm__V1__HostReport *r,
    struct batch *b)
{
	Mm__V1__CommandBatch cb = MM__V1__COMMAND_BATCH__INIT;
	uint64_t now = clock_ms(CLOCK_REALTIME);
	int rc;

	cb.host_id = h->id;
	cb.scheduler_id = s->id;
	cb.has_seq = true;
	cb.seq = ++h->batch_seq;
	cb.has_issued_ms = true;
	cb.issued_ms = now;
	cb.has_expires_ms = true;
	cb.expires_ms = now + (uint64_t)s->conf.command_ttl_ms;
	cb.has_policy_version = true;
	cb.policy_version = s->policy.version;
	cb.has_report_seq = true;
	cb.report_seq = r->seq;
	cb.n_commands = b->n;
	cb.commands = b->ptrs;
	{
		struct bus_msg m;
		uint8_t *buf;

		rc = msg_to_bus(MSG_COMMAND_BATCH, (const ProtobufCMessage *)&cb,
		    TOPO_EX_COMMANDS, h->id, true, &m, &buf);
		if (rc == 0) {
			/* Commands are absolute and expire: an old one
			 * left in the queue is worth nothing. */
			m.expiration_ms = (uint32_t)s->conf.command_ttl_ms;
			/* A level, not an edge: the newest batch for a host
			 * replaces one still waiting to be sent (it carries
			 * what that one did, decide_host()), so the bus
			 * never refuses one and holds one per host. */
			m.supersede_key = h->id;
			rc = bus_publish(s->bus, &m, batch_confirm_cb, s);
			free(buf);
		}
	}
	if (rc < 0) {
		s->n.publish_failed++;
		s->n.batches_refused++;
		log_warnx("host \"%s\": batch %llu not sent: %s", h->id,
		    (unsigned long long)cb.seq, strerror(-rc));
		return rc;
	}
	h->batch_ms = now;
	s->n.batches++;
	s->n.commands += b->n;
	return 0;
}

/* Remember what status requests show of this decision. */
static void
keep_status(struct host *h, const Mm__V1__HostReport *r,
    const struct pe_decision *d, size_t n)
{
	struct vm_status *vms = h->vms, tmp;
	size_t had = h->nvms;

	if (n > h->nvms) {
		vms = realloc(h->vms, n * sizeof(*vms));
		if (vms == NULL)
			return;
		memset(vms + h->nvms, 0, (n - h->nvms) * sizeof(*vms));
		h->vms = vms;
		had = n;
	}
	h->nvms = n;
	if (r->host != NULL && r->host->meminfo != NULL) {
		h->total_kib = r->host->meminfo->total_kib;
		h->available_kib = r->host->meminfo->available_kib;
	}
	if (r->host != NULL && r->host->ksm != NULL)
		h->ksm_sharing_pages = r->host->ksm->sharing_pages;
	for (size_t i = 0; i < n; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];
		struct vm_status *v = &vms[i];

		/* A VM keeps its index while the report's order holds; when
		 * it does not, what is known of the VM follows its id. */
		if (strcmp(v->d.vm_id, d[i].vm_id) != 0) {
			size_t j;

			for (j = i + 1; j < had; j++)
				if (strcmp(vms[j].d.vm_id, d[i].vm_id) == 0)
					break;
			if (j < had) {
				tmp = *v;
				*v = vms[j];
				vms[j] = tmp;
			} else {
				memset(v, 0, sizeof(*v));
			}
		}
		if (d[i].changed || v->decision_ms == 0)
			v->decision_ms = r->time_ms;
		v->d = d[i];
		pe_copy_str(v->name, sizeof(v->name),
		    g->vm_name != NULL ? g->vm_name : "");
		v->actual_kib = g->balloon_actual_kib;
		v->psi = g->psi != NULL ? g->psi->some_avg10_pct : 0;
	}
}

/* ---- superseding ---- */

static void recon_sent(struct scheduler *s, struct host *h, int n,
    int rc_publish);

/*
 * h's last batch still waits in the bus and the next one will replace
 * it: what it carried besides balloon targets (recon_mark() carries
 * those) goes out in the next one, unless the next one has newer: its
 * KSM settings, its NUMA moves for other VMs. Returns the moves.
 */
static size_t
carry_over(struct host *h, struct pe_ksm_decision *kd,
    struct pe_numa_move *moves, size_t nmoves)
{
	if (h->ksm_seq == h->batch_seq && !kd->changed) {
		*kd = h->ksm_sent;
		kd->changed = true;
	}
	if (h->moves_seq != h->batch_seq)
		return nmoves;
	for (size_t i = 0; i < h->nmoves_sent && nmoves < MOVES_MAX; i++) {
		bool newer = false;

		for (size_t k = 0; k < nmoves && !newer; k++)
			newer = strcmp(moves[k].vm_id,
			    h->moves_sent[i].vm_id) == 0;
		if (!newer)
			moves[nmoves++] = h->moves_sent[i];
	}
	return nmoves;
}

/* Remember what batch h->batch_seq carried (rc: how publishing it
 * went), for reconciliation and for carry_over(). */
static void
sent(struct scheduler *s, struct host *h, int n, int rc,
    const struct pe_ksm_decision *kd, const struct pe_numa_move *moves,
    size_t nmoves)
{
	recon_sent(s, h, n, rc);
	if (rc < 0)
		return;
	if (kd->changed) {
		h->ksm_sent = *kd;
		h->ksm_seq = h->batch_seq;
	}
	if (nmoves > 0 && h->moves_sent == NULL)
		h->moves_sent = calloc(MOVES_MAX, sizeof(*h->moves_sent));
	if (nmoves > 0 && h->moves_sent != NULL) {
		memcpy(h->moves_sent, moves, nmoves * sizeof(*moves));
		h->nmoves_sent = nmoves;
		h->moves_seq = h->batch_seq;
	}
}

/* ---- reconciliation ---- */

/* A target that goes out though unchanged (a repeat, a resend) shrinks
 * when it is below what the balloon holds now. */
static bool
shrinks(const struct pe_decision *d, const struct pe_guest *g)
{
	if (d->target_kib != d->prev_kib)
		return d->target_kib < d->prev_kib;
	return g->has_balloon && d->target_kib < g->actual_kib;
}

#define RESEND_BACKOFF_MAX	4	/* resend_ms doubles up to 16 times */
#define RESEND_ALERT_TRIES	3	/* then an alert: who takes them? */

/* Whether VM's target went out in h's last batch, not confirmed yet. */
static bool
in_last_batch(const struct host *h, const struct vm_recon *rc)
{
	return rc->sent_kib != 0 && !rc->confirmed &&
	    rc->sent_seq == h->batch_seq;
}

/* Whether VM i's target, unchanged by the policy, goes out again: the
 * actuator did not confirm it (it was down, the batch expired or was
 * lost, or it asked for its state). */
static bool
recon_due(const struct scheduler *s, const struct host *h, size_t i,
    uint64_t now)
{
	const struct pe_decision *d = &s->decisions[i];
	const struct vm_recon *rc = &h->vms[i].rc;
	unsigned shift;

	if (d->reason == PE_UNMANAGED)
		return false;
	if (h->sync)
		return true;
	if (rc->sent_kib == 0 || rc->confirmed)
		return false;
	if (rc->now)
		return true;
	shift = rc->tries < RESEND_BACKOFF_MAX ? rc->tries : RESEND_BACKOFF_MAX;
	return now - rc->sent_ms >= ((uint64_t)s->conf.resend_ms << shift);
}

/* Mark the targets that go out again as changed, with their reason.
 * pending: h's last batch still waits in the bus and the next one
 * replaces it, so what it carried goes out in the next one instead. */
static void
recon_mark(struct scheduler *s, struct host *h, int n, bool pending)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);
	uint64_t sup;

	if (h->nvms != (size_t)n)
		return;	/* keep_status() ran out of memory */
	for (int i = 0; i < n; i++) {
		struct pe_decision *d = &s->decisions[i];
		struct vm_recon *rc = &h->vms[i].rc;

		if (d->changed || d->reason == PE_UNMANAGED)
			continue;
		if (pending && in_last_batch(h, rc)) {
			d->changed = true;
			snprintf(s->why[i], PE_WHY_MAX, "reconcile: %llu MiB: "
			    "the batch that carried it was superseded before "
			    "it was sent", (unsigned long long)d->target_kib /
			    1024);
			continue;
		}
		if (!recon_due(s, h, (size_t)i, now))
			continue;
		d->changed = true;
		snprintf(s->why[i], PE_WHY_MAX, "reconcile: %llu MiB %s",
		    (unsigned long long)d->target_kib / 1024, h->sync ?
		    "again: the actuator asked for its host's targets" :
		    rc->now ? "again: the batch that carried it was not "
		    "executed" : "again: the actuator has not confirmed it");
		rc->tries++;
		s->n.resent++;
		h->resent++;
		if (!h->sync && log_limit_ok(&s->lim_resend, &sup))
			log_info("host \"%s\": vm \"%s\": %s (sent %u times)%s",
			    h->id, d->vm_id, s->why[i], rc->tries,
			    sup > 0 ? "; more like it not logged" : "");
		if (!h->sync && rc->tries == RESEND_ALERT_TRIES)
			publish_alert(s, h->id, d->vm_id, 2, s->policy.version,
			    "vm \"%s\": target %llu MiB sent %u times without "
			    "a result from the actuator of \"%s\"; is it "
			    "running, and is it the only consumer of its "
			    "queue?", d->vm_id, (unsigned long long)
			    d->target_kib / 1024, rc->tries, h->id);
	}
}

/* Remember what went out in batch h->batch_seq (rc: how publishing it
 * went). */
static void
recon_sent(struct scheduler *s, struct host *h, int n, int rc_publish)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);

	if (h->nvms != (size_t)n)
		return;
	for (int i = 0; i < n; i++) {
		const struct pe_decision *d = &s->decisions[i];
		struct vm_recon *rc = &h->vms[i].rc;

		if (!d->changed)
			continue;
		if (rc->sent_kib != d->target_kib)
			rc->tries = 0;
		rc->sent_kib = d->target_kib;
		rc->sent_seq = h->batch_seq;
		rc->sent_ms = now;
		rc->confirmed = false;
		/* Not sent at all: again at the next decision. */
		rc->now = rc_publish < 0;
	}
	if (rc_publish == 0)
		h->sync = false;
}

void
recon_result(struct scheduler *s, struct host *h,
    const Mm__V1__ActionResult *ar)
{
	if (ar->has_sync && ar->sync) {
		s->n.syncs++;
		h->sync = true;
		log_info("host \"%s\": its actuator started or reconnected: "
		    "every target goes out again", h->id);
		return;
	}
	if (ar->scheduler_id == NULL || strcmp(ar->scheduler_id, s->id) != 0) {
		s->n.results_ignored++;
		return;
	}
	s->n.results++;
	h->result_ms = ar->time_ms;
	for (size_t i = 0; i < ar->n_results; i++) {
		const Mm__V1__CommandResult *cr = ar->results[i];
		struct vm_recon *rc = NULL;

		if (cr->vm_id == NULL)
			continue;
		for (size_t k = 0; k < h->nvms; k++)
			if (strcmp(h->vms[k].d.vm_id, cr->vm_id) == 0) {
				rc = &h->vms[k].rc;
				break;
			}
		/* Only the answer to the latest target counts. */
		if (rc == NULL || rc->sent_seq != ar->batch_seq)
			continue;
		switch (cr->status) {
		case MM__V1__RESULT_STATUS__RESULT_STATUS_OK:
		case MM__V1__RESULT_STATUS__RESULT_STATUS_CLAMPED:
			/* Clamped: the actuator's limits; sending it again
			 * would meet them again. */
			rc->confirmed = true;
			rc->tries = 0;
			break;
		case MM__V1__RESULT_STATUS__RESULT_STATUS_EXPIRED:
		case MM__V1__RESULT_STATUS__RESULT_STATUS_OUT_OF_ORDER:
			rc->now = true;
			break;
		default:
			/* Failed, or skipped for now (deferred: a result
			 * follows): sent again after resend. */
			break;
		}
	}
}

int
decide_host(struct scheduler *s, struct host *h, const Mm__V1__HostReport *r)
{
	struct pe_host ph = {
		.host_id = h->id,
		.time_ms = r->time_ms,
		.n_guests = r->n_guests,
	};
	struct pe_numa_move moves[MOVES_MAX];
	struct pe_ksm_decision kd = { 0 };
	struct batch *b;
	size_t nmoves;
	bool pending;
	int n;

	if (scratch_reserve(s, r->n_guests + 1) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < r->n_guests; i++) {
		guest_from_msg(&s->guests[i], r->guests[i]);
		s->n.distrusted += s->guests[i].untrusted;
	}
	ph.guests = s->guests;
	if (r->host != NULL && r->host->meminfo != NULL) {
		ph.total_kib = r->host->meminfo->total_kib;
		ph.available_kib = r->host->meminfo->available_kib;
	}
	n = pe_decide(h->pe, &ph, &s->policy.balloon, s->decisions,
	    s->scratch_cap);
	if (n < 0)
		return n;
	if (s->policy.ksm_managed && r->host != NULL && r->host->ksm != NULL) {
		struct pe_ksm_obs o;

		ksm_from_msg(&o, r);
		pe_ksm_decide(&h->ksm, &o, &s->policy.ksm, &kd);
	}
	nmoves = numa_moves(s, h, r, moves, MOVES_MAX);
	keep_status(h, r, s->decisions, (size_t)n);
	for (int i = 0; i < n; i++) {
		const struct pe_decision *d = &s->decisions[i];

		if (d->alert)
			publish_alert(s, h->id, d->vm_id, 2, s->policy.version,
			    "vm \"%s\" is %s: its balloon does not follow "
			    "its target (%llu MiB asked, %llu MiB held)",
			    d->vm_id, d->coop == PE_COOP_UNCOOPERATIVE ?
			    "uncooperative" : "inactive",
			    (unsigned long long)d->target_kib / 1024,
			    (unsigned long long)s->guests[i].actual_kib /
			    1024);
	}
	if (s->policy.mode == PM_OFF)
		return 0;
	for (int i = 0; i < n; i++)
		if (s->decisions[i].changed)
			pe_format_why(&s->decisions[i], s->why[i], PE_WHY_MAX);
	decision_event(s, h, n);
	if (s->policy.mode != PM_ENFORCE)
		return 0;
	b = batch_begin(s, (size_t)n);
	if (b == NULL)
		return -ENOMEM;
	pending = bus_pending(s->bus, h->id);
	recon_mark(s, h, n, pending);
	if (pending)
		nmoves = carry_over(h, &kd, moves, nmoves);
	/* Take before give: what shrinks goes first. */
	for (int i = 0; i < n; i++)
		if (s->decisions[i].changed && shrinks(&s->decisions[i],
		    &s->guests[i]))
			batch_balloon(b, &s->decisions[i], s->why[i]);
	if (kd.changed)
		batch_ksm(b, s, &kd);
	for (size_t i = 0; i < nmoves; i++)
		batch_numa(b, &moves[i]);
	for (int i = 0; i < n; i++)
		if (s->decisions[i].changed && !shrinks(&s->decisions[i],
		    &s->guests[i]))
			batch_balloon(b, &s->decisions[i], s->why[i]);
	/* Cold memory into the guests' swap, after the targets: the
	 * balloons take what it frees at the next decisions. */
	for (int i = 0; i < n; i++)
		if (s->decisions[i].reclaim_kib > 0)
			batch_reclaim(b, &s->decisions[i]);
	/* Nothing to change for a while: an empty batch says the scheduler
	 * is there, or the actuator would take the quiet for its absence
	 * (failsafe_after) and grow guests on its own. */
	if (b->n > 0 || (s->conf.heartbeat_ms > 0 &&
	    clock_ms(CLOCK_REALTIME) - h->batch_ms >=
	    (uint64_t)s->conf.heartbeat_ms))
		sent(s, h, n, publish_batch(s, h, r, b), &kd, moves, nmoves);
	return 0;
}

void
decide_all(struct scheduler *s)
{
	for (size_t i = 0; i < s->cap; i++) {
		struct host *h = s->hosts[i];
		ProtobufCMessage *m;
		char why[256];

		if (h == NULL || h->report == NULL)
			continue;
		if (msg_unpack(MSG_HOST_REPORT, h->report, h->report_len, &m,
		    why, sizeof(why)) < 0)
			continue;
		decide_host(s, h, (const Mm__V1__HostReport *)m);
		msg_free(m);
	}
}
