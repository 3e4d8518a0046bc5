/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The baselines mm is compared against, each as its source does it:
 *
 * static  every VM at its maximum: what a host without ballooning does.
 * xenmm   the xenmm project's mmserver (the origin seed): each round,
 *         target_i = T/n + tau * (used_i - mean used), with T the memory
 *         for guests and tau chosen so that the most loaded VM keeps the
 *         headroom free; a target rises at once and falls by a tenth of
 *         the gap per round.
 * mom     oVirt MOM's default balloon rules (balloon.rules): the host is
 *         under pressure below 20 % free (critical below 5 %); then each
 *         guest shrinks to max(0.95 * current, used + 20 % (5 % when
 *         critical) of current); otherwise a guest with less than 20 %
 *         free grows to max(1.05 * current, used + 20 % of current) up to
 *         its maximum; changes under 0.25 % of current are skipped.
 */
#include <stdint.h>

#include "policy.h"
#include "policy_int.h"

int
pe_algo_static(struct pe_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		c->out[i].target_kib = c->out[i].max_kib;
		c->out[i].need_kib = c->out[i].max_kib;
		c->out[i].reason = PE_STATIC;
	}
	return 0;
}

int
pe_algo_xenmm(struct pe_ctx *c)
{
	uint64_t total = pe_capacity_kib(c->host, c->p);
	double mean = 0, umax = 0, base, tau = 0, head;
	size_t n = 0;

	for (size_t i = 0; i < c->n; i++) {
		if (c->vms[i]->limits->unmanaged)
			continue;
		mean += (double)c->out[i].used_kib;
		if ((double)c->out[i].used_kib > umax)
			umax = (double)c->out[i].used_kib;
		n++;
	}
	if (n == 0)
		return 0;
	mean /= (double)n;
	base = (double)total / (double)n;
	head = (double)c->p->defaults.headroom_kib;
	if (umax > mean) {
		tau = (umax + head - base) / (umax - mean);
		if (tau < 0)
			tau = 0;
	}
	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		double want, cur = (double)d->prev_kib;

		if (c->vms[i]->limits->unmanaged) {
			d->reason = PE_UNMANAGED;
			continue;
		}
		want = base + tau * ((double)d->used_kib - mean);
		if (want < 0)
			want = 0;
		d->need_kib = (uint64_t)want;
		d->target_kib = want >= cur ? (uint64_t)want :
		    (uint64_t)(cur - (cur - want) / 10);
		d->reason = PE_XENMM;
	}
	return 0;
}

int
pe_algo_mom(struct pe_ctx *c)
{
	const struct pe_host *h = c->host;
	double host_free = h->total_kib > 0 ?
	    (double)h->available_kib / (double)h->total_kib : 1;
	bool pressure = host_free < 0.20, critical = host_free < 0.05;

	for (size_t i = 0; i < c->n; i++) {
		struct pe_decision *d = &c->out[i];
		double cur = (double)d->prev_kib, used = (double)d->used_kib;
		double want;

		if (c->vms[i]->limits->unmanaged) {
			d->reason = PE_UNMANAGED;
			continue;
		}
		if (pressure) {
			double keep = used + (critical ? 0.05 : 0.20) * cur;

			want = 0.95 * cur > keep ? 0.95 * cur : keep;
			if (want >= cur)
				continue;
			d->reason = PE_MOM_SHRINK;
		} else {
			if (cur - used >= 0.20 * cur)
				continue;
			want = 1.05 * cur > used + 0.20 * cur ? 1.05 * cur :
			    used + 0.20 * cur;
			if (want > (double)d->max_kib)
				want = (double)d->max_kib;
			d->reason = PE_MOM_GROW;
		}
		d->need_kib = (uint64_t)want;
		if ((want > cur ? want - cur : cur - want) < 0.0025 * cur) {
			d->reason = PE_KEEP;
			continue;
		}
		d->target_kib = (uint64_t)want;
	}
	return 0;
}
