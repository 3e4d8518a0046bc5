/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When mm-guest-agent reports: changed stats at once, unchanged ones only
 * every resend interval, pressure immediately, and never two reports
 * closer than the minimum gap, so a burst of events becomes one report.
 * Pure functions of their arguments, for the tests.
 */
#include <unistd.h>

#include "guest-agent.h"

enum report_action
report_decide(const struct agent_conf *c, const struct report_state *st,
    const struct agent_sample *s, uint64_t now_ms, bool urgent,
    uint64_t *ret_at_ms)
{
	uint64_t since;

	if (!st->sent_once)
		return REPORT_SEND;
	since = now_ms >= st->last_sent_ms ? now_ms - st->last_sent_ms : 0;
	if (!urgent && agent_sample_equal(s, &st->last) &&
	    since < (uint64_t)c->resend_ms)
		return REPORT_SKIP;
	if (since < (uint64_t)c->min_gap_ms) {
		*ret_at_ms = st->last_sent_ms + (uint64_t)c->min_gap_ms;
		return REPORT_DEFER;
	}
	return REPORT_SEND;
}

void
report_sent(struct report_state *st, const struct agent_sample *s,
    uint64_t now_ms)
{
	st->sent_once = true;
	st->last_sent_ms = now_ms;
	st->last = *s;
}

static bool
available_low(const struct procfs_meminfo *m, int64_t pct)
{
	return procfs_has(m->have, PROCFS_MEM_TOTAL) &&
	    procfs_has(m->have, PROCFS_MEM_AVAILABLE) &&
	    m->kib[PROCFS_MEM_AVAILABLE] * 100 <
	    m->kib[PROCFS_MEM_TOTAL] * (uint64_t)pct;
}

bool
report_available_dropped(const struct procfs_meminfo *prev,
    const struct procfs_meminfo *cur, int64_t pct)
{
	return available_low(cur, pct) && !available_low(prev, pct);
}

bool
report_used_kib(const struct procfs_meminfo *m, const struct procfs_vmstat *v,
    bool balloon_in_total, uint64_t *ret)
{
	uint64_t used, balloon = 0;

	if (!procfs_has(m->have, PROCFS_MEM_TOTAL) ||
	    !procfs_has(m->have, PROCFS_MEM_AVAILABLE) ||
	    m->kib[PROCFS_MEM_AVAILABLE] > m->kib[PROCFS_MEM_TOTAL])
		return false;
	used = m->kib[PROCFS_MEM_TOTAL] - m->kib[PROCFS_MEM_AVAILABLE];
	if (balloon_in_total && v != NULL &&
	    procfs_has(v->have, PROCFS_VM_BALLOON))
		balloon = v->count[PROCFS_VM_BALLOON] *
		    ((uint64_t)sysconf(_SC_PAGESIZE) / 1024);
	*ret = used > balloon ? used - balloon : 0;
	return true;
}
