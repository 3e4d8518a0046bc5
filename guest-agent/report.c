/* SPDX-License-Identifier: Apache-2.0 */
/*
 * When mm-guest-agent reports: changed stats at once, unchanged ones only
 * every resend interval, pressure immediately, and never two reports
 * closer than the minimum gap, so a burst of events becomes one report;
 * and the used memory it watches, by guestmem.h's one definition. Pure
 * functions of their arguments, for the tests.
 */
#include "guest-agent.h"
#include "guestmem.h"

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
available_low(const Mm__V1__Meminfo *m, int64_t pct)
{
	return m->has_total_kib && m->has_available_kib &&
	    m->available_kib * 100 < m->total_kib * (uint64_t)pct;
}

bool
report_available_dropped(const Mm__V1__Meminfo *prev,
    const Mm__V1__Meminfo *cur, int64_t pct)
{
	return available_low(cur, pct) && !available_low(prev, pct);
}

bool
report_used_kib(const Mm__V1__Meminfo *m, const Mm__V1__Vmstat *v,
    bool balloon_in_total, uint64_t *ret)
{
	uint64_t in_total_kib;
	bool known;

	if (!m->has_total_kib || !m->has_available_kib ||
	    m->available_kib > m->total_kib)
		return false;
	/* The agent knows its own balloon's kind; without its page count a
	 * deflate-on-oom balloon's share is unknown and nothing is taken
	 * out. The balloon's size as the host sees it is not known here. */
	known = gm_balloon_in_total(true, balloon_in_total,
	    v != NULL && v->has_balloon_pages,
	    v != NULL ? v->balloon_pages : 0, &in_total_kib);
	*ret = gm_used_kib(m->total_kib, m->available_kib, known,
	    in_total_kib, false, 0);
	return true;
}
