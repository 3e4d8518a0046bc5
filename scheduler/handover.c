/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sharded schedulers hand each other the history of the hosts that move
 * between them. The broker's consistent-hash exchange decides which
 * scheduler a host's reports reach, and no scheduler can tell which one
 * that is, so the history goes to all of them (mm.history, fanout) and
 * the one that has the host, or gets its first report within host_forget,
 * takes it:
 *
 * - a host silent here for handover_after (it moved: a scheduler joined,
 *   or it came back from a crash) is sent once; it is sent again only if
 *   it reports here again and falls silent again;
 * - at stop, every host is sent (the others take them over).
 *
 * Taking a history merges it, hour by hour (the larger peak of each hour),
 * into what the receiver has of the VM: a host that moved a minute ago
 * has a minute of history here and a week there. What no host claims is
 * dropped after host_forget. A scheduler that crashes hands nothing over:
 * its hosts start again from what their new scheduler sees (and what it
 * had of them, if they were once its own), as before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "scheduler.h"
#include "topology.h"

/* mm.history message per host: at most this many VMs each (a week of
 * hours is about 700 bytes a VM: 1 MiB a message). */
#define HANDOVER_VMS_MAX	1024

/* Merge from into into: the newest hour of either, and for each hour the
 * larger peak of the two, over at most PE_HIST_HOURS. */
void
history_merge(struct pe_vm_history *into, const struct pe_vm_history *from)
{
	struct pe_vm_history m;
	uint64_t oldest_a = into->hour + 1 - into->hours;
	uint64_t oldest_b = from->hour + 1 - from->hours;
	uint64_t oldest = oldest_a < oldest_b ? oldest_a : oldest_b;

	memset(&m, 0, sizeof(m));
	memcpy(m.vm_id, into->vm_id, sizeof(m.vm_id));
	m.hour = into->hour > from->hour ? into->hour : from->hour;
	m.hours = m.hour + 1 - oldest > PE_HIST_HOURS ? PE_HIST_HOURS :
	    (uint32_t)(m.hour + 1 - oldest);
	for (uint32_t k = 0; k < m.hours; k++) {
		uint64_t hour = m.hour - k;
		uint32_t a = 0, b = 0;

		if (hour <= into->hour && into->hour - hour < into->hours)
			a = into->mib[into->hour - hour];
		if (hour <= from->hour && from->hour - hour < from->hours)
			b = from->mib[from->hour - hour];
		m.mib[k] = a > b ? a : b;
	}
	*into = m;
}

/* ---- sending ---- */

static int
send_part(struct scheduler *s, const char *host_id, bool stopping,
    Mm__V1__VmHistory **vms, size_t n)
{
	Mm__V1__HostHistory hh = MM__V1__HOST_HISTORY__INIT;

	hh.host_id = (char *)host_id;
	hh.scheduler_id = s->id;
	hh.has_time_ms = hh.has_stopping = true;
	hh.time_ms = clock_ms(CLOCK_REALTIME);
	hh.stopping = stopping;
	hh.n_vms = n;
	hh.vms = vms;
	return msg_publish(s->bus, MSG_HOST_HISTORY,
	    (const ProtobufCMessage *)&hh, TOPO_EX_HISTORY, "", false, NULL,
	    NULL);
}

/* Publish h's VMs' history on mm.history, in parts of at most
 * HANDOVER_VMS_MAX VMs. Returns the VMs sent, or a negative errno. */
static int
handover_host(struct scheduler *s, struct host *h, bool stopping)
{
	static struct pe_vm_history hist[HANDOVER_VMS_MAX];
	static Mm__V1__VmHistory msgs[HANDOVER_VMS_MAX];
	static Mm__V1__VmHistory *ptrs[HANDOVER_VMS_MAX];
	size_t n = 0, sent = 0;
	int r = 0;

	for (size_t k = 0; r == 0 && k < pe_history_vms(h->pe); k++) {
		Mm__V1__VmHistory *v = &msgs[n];

		if (!pe_history_get(h->pe, k, &hist[n]))
			continue;
		mm__v1__vm_history__init(v);
		v->vm_id = hist[n].vm_id;
		v->has_newest_hour = true;
		v->newest_hour = hist[n].hour;
		v->n_mib = hist[n].hours;
		v->mib = hist[n].mib;
		ptrs[n] = v;
		if (++n == HANDOVER_VMS_MAX) {
			r = send_part(s, h->id, stopping, ptrs, n);
			sent += n;
			n = 0;
		}
	}
	if (r == 0 && n > 0) {
		r = send_part(s, h->id, stopping, ptrs, n);
		sent += n;
	}
	if (r < 0) {
		s->n.handover_failed++;
		log_warnx_limited(&s->lim_history, "history of host %s not "
		    "handed over: %s", h->id, strerror(-r));
		return r;
	}
	if (sent > 0)
		s->n.handover_sent++;
	return (int)sent;
}

void
handover_silent(struct scheduler *s)
{
	uint64_t now = clock_ms(CLOCK_MONOTONIC);

	if (!s->conf.shard)
		return;
	for (size_t i = 0; i < s->cap; i++) {
		struct host *h = s->hosts[i];

		if (h == NULL || h->handed_over || h->seen_ms == 0 ||
		    now - h->seen_ms < (uint64_t)s->conf.handover_after_ms)
			continue;
		h->handed_over = true;
		if (handover_host(s, h, false) > 0)
			log_info("host %s silent for %llu s: its history "
			    "handed over to the scheduler it moved to", h->id,
			    (unsigned long long)(now - h->seen_ms) / 1000);
	}
}

void
handover_all(struct scheduler *s)
{
	size_t hosts = 0;

	if (!s->conf.shard)
		return;
	for (size_t i = 0; i < s->cap; i++)
		if (s->hosts[i] != NULL &&
		    handover_host(s, s->hosts[i], true) > 0)
			hosts++;
	if (hosts > 0)
		log_info("history of %zu hosts handed over to the other "
		    "schedulers", hosts);
}

/* ---- receiving ---- */

/* The message's VM v as a pe_vm_history; false when it cannot be one
 * (the engine's own check, pe_history_valid()). */
static bool
vm_from_msg(const Mm__V1__VmHistory *v, struct pe_vm_history *out)
{
	memset(out, 0, sizeof(*out));
	if (strlen(v->vm_id) > PE_ID_MAX || v->n_mib > PE_HIST_HOURS)
		return false;
	snprintf(out->vm_id, sizeof(out->vm_id), "%s", v->vm_id);
	out->hour = v->newest_hour;
	out->hours = (uint32_t)v->n_mib;
	memcpy(out->mib, v->mib, v->n_mib * sizeof(out->mib[0]));
	return pe_history_valid(out);
}

/* Merge v into host h's VM of that id (or give it v). */
static int
take_into_host(struct host *h, const struct pe_vm_history *v)
{
	struct pe_vm_history cur;

	for (size_t k = 0; k < pe_history_vms(h->pe); k++)
		if (pe_history_get(h->pe, k, &cur) &&
		    strcmp(cur.vm_id, v->vm_id) == 0) {
			history_merge(&cur, v);
			return pe_history_put(h->pe, &cur);
		}
	return pe_history_put(h->pe, v);
}

enum bus_disposition
on_history(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	const Mm__V1__HostHistory *hh = (const Mm__V1__HostHistory *)m;
	struct scheduler *s = arg;
	uint64_t now_hour = clock_ms(CLOCK_REALTIME) / 3600000;
	struct pe_vm_history v;
	struct host *h;
	size_t taken = 0;

	if (strcmp(hh->scheduler_id, s->id) == 0)
		return BUS_ACK;		/* our own */
	if (!topo_id_valid(hh->host_id)) {
		s->n.handover_refused++;
		return BUS_ACK;
	}
	h = host_find(s, hh->host_id);
	for (size_t i = 0; i < hh->n_vms; i++) {
		int r;

		if (!vm_from_msg(hh->vms[i], &v) ||
		    !history_recent(&v, now_hour)) {
			s->n.handover_refused++;
			continue;
		}
		r = h != NULL ? take_into_host(h, &v) :
		    history_pending_merge(s, hh->host_id, &v,
		    clock_ms(CLOCK_MONOTONIC) +
		    (uint64_t)s->conf.host_forget_ms);
		if (r < 0)
			s->n.handover_refused++;
		else
			taken++;
	}
	s->n.handover_received++;
	log_debug("history of host %s (%zu VMs) from %s%s: %s", hh->host_id,
	    taken, hh->scheduler_id, hh->stopping ? ", which stops" : "",
	    h != NULL ? "merged" : "kept for its first report here");
	return BUS_ACK;
}
