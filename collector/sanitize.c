/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sanitizer of guest numbers: a guest is not trusted, so before its
 * stats leave the host every value is checked against what the host knows
 * and against the guest's own previous sample. Nothing is silently dropped
 * or silently fixed: each distrusted value adds a SanitizerFlag, and each
 * reason is counted and logged the first time a VM shows it (or, for what
 * a guest can repeat at every sample to fill the log or the report, each
 * time within a rate limit).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "guestmem.h"
#include "hoststats.h"
#include "log.h"

/* The guest's clock may run this far ahead of the host's, ms. */
#define SAN_CLOCK_SLACK_MS	1000
/* A guest total that moved less than this did not follow the host. */
#define SAN_TOTAL_STILL_KIB	1024
/* KiB per page of vmstat's balloon_pages. */
#define SAN_PAGE_KIB		4
/* Pressure is a share of time, in percent. */
#define SAN_PCT_MAX		100.0
#define SAN_MS_PER_S		1000.0

uint64_t san_total[SAN_REASON_COUNT];

/* One san_check(): the sample, what it is checked against, and the reasons
 * it showed (each adds its SanitizerFlag). */
struct san_run {
	struct san_vm *s;
	const struct san_limits *lim;
	const struct san_host *h;
	Mm__V1__GuestStats *g;
	/* The host's idea of the guest's size: the balloon's actual size,
	 * else (Xen) the target the toolstack set, as xenmm used; 0. */
	uint64_t host_kib;
	bool hit[SAN_REASON_COUNT];
};

static const struct {
	const char *name;
	Mm__V1__SanitizerFlag flag;
	bool each;		/* log each time, rate-limited */
} reasons[SAN_REASON_COUNT] = {
	[SAN_MISSING] = { "missing_fields",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_MISSING_FIELDS, false },
	[SAN_TOTAL_ABOVE_MAX] = { "total_above_max",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, false },
	[SAN_PART_ABOVE_TOTAL] = { "part_above_total",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, false },
	[SAN_PARTS_EXCEED] = { "parts_exceed_total",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_INCONSISTENT_TOTAL, false },
	[SAN_HOST_GREW] = { "host_grew_guest_did_not",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_INCONSISTENT_TOTAL, false },
	[SAN_SEQ_BACK] = { "seq_back",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_NON_MONOTONIC, false },
	[SAN_COUNTER_BACK] = { "counter_back",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_NON_MONOTONIC, false },
	[SAN_FUTURE_TIME] = { "future_time",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, false },
	[SAN_RATE] = { "rate_limited",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_RATE_LIMITED, false },
	[SAN_OWNED_FIELD] = { "host_owned_field",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, false },
	/* Cut to its known fields, the sample itself is as good as any. */
	[SAN_UNKNOWN_FIELDS] = { "unknown_fields",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, true },
	[SAN_TOO_BIG] = { "too_big",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED, true },
	[SAN_HOST_VIEW] = { "above_host_view",
	    MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_HOST_VIEW, false },
};

/* One limit per reason logged each time: shared by every VM, so that a
 * fleet of hostile guests cannot fill the journal either. */
static struct log_limit each_limit[SAN_REASON_COUNT];

const char *
san_reason_name(enum san_reason r)
{
	return (unsigned)r < SAN_REASON_COUNT ? reasons[r].name : NULL;
}

/* Count r, and log it the first time this VM shows it. */
static void
vreject(struct san_vm *s, const struct san_host *h, enum san_reason r,
    const char *fmt, va_list ap)
{
	char buf[256];
	uint64_t suppressed;

	s->count[r]++;
	san_total[r]++;
	if (reasons[r].each) {
		if (!log_limit_ok(&each_limit[r], &suppressed))
			return;
	} else if (s->logged & (1u << r)) {
		return;
	}
	s->logged |= 1u << r;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!reasons[r].each)
		log_warnx("vm \"%s\": %s (%s; reported once per vm)",
		    h->vm_id, buf, reasons[r].name);
	else if (suppressed > 0)
		log_warnx("vm \"%s\": %s (%s; %" PRIu64 " more, of any vm, "
		    "not logged)", h->vm_id, buf, reasons[r].name, suppressed);
	else
		log_warnx("vm \"%s\": %s (%s; counted)", h->vm_id, buf,
		    reasons[r].name);
}

static void
reject(struct san_vm *s, const struct san_host *h, enum san_reason r,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
reject(struct san_vm *s, const struct san_host *h, enum san_reason r,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreject(s, h, r, fmt, ap);
	va_end(ap);
}

/* Reject with r, and flag the sample for it. */
static void
flag(struct san_run *run, enum san_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
flag(struct san_run *run, enum san_reason r, const char *fmt, ...)
{
	va_list ap;

	run->hit[r] = true;
	va_start(ap, fmt);
	vreject(run->s, run->h, r, fmt, ap);
	va_end(ap);
}

bool
san_admit(struct san_vm *s, const struct san_limits *lim,
    const struct san_host *h)
{
	double rate = lim->rate_per_s ? lim->rate_per_s : 1;

	if (s->tokens_ms == 0)
		s->tokens = rate;
	else if (h->mono_ms > s->tokens_ms)
		s->tokens += rate * (double)(h->mono_ms - s->tokens_ms) /
		    SAN_MS_PER_S;
	if (s->tokens > rate)
		s->tokens = rate;
	s->tokens_ms = h->mono_ms;
	if (s->tokens >= 1.0) {
		s->tokens -= 1.0;
		return true;
	}
	s->rate_flag_pending = true;
	reject(s, h, SAN_RATE, "more than %u samples per second, dropping",
	    (unsigned)rate);
	return false;
}

static int
add_flag(Mm__V1__GuestStats *g, Mm__V1__SanitizerFlag f)
{
	Mm__V1__SanitizerFlag *n;
	size_t i;

	for (i = 0; i < g->n_flags; i++)
		if (g->flags[i] == f)
			return 0;
	n = realloc(g->flags, (g->n_flags + 1) * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	g->flags = n;
	g->flags[g->n_flags++] = f;
	return 0;
}

/* Clamp *v (if present) to at most max, flagging r. */
static void
clamp(struct san_run *run, enum san_reason r, const char *name,
    protobuf_c_boolean has, uint64_t *v, uint64_t max, const char *maxname)
{
	if (!has || *v <= max)
		return;
	flag(run, r, "%s %" PRIu64 " KiB above %s %" PRIu64 " KiB, clamping",
	    name, *v, maxname, max);
	*v = max;
}

static bool
clamp_pct(double *v, protobuf_c_boolean has)
{
	if (!has || (*v >= 0.0 && *v <= SAN_PCT_MAX))
		return false;
	*v = isnan(*v) || *v < 0.0 ? 0.0 : SAN_PCT_MAX;
	return true;
}

/* The monotonic counters of a sample, in prev_counter order. */
static int
counters(Mm__V1__GuestStats *g, uint64_t *ret[SAN_COUNTERS],
    protobuf_c_boolean *has[SAN_COUNTERS])
{
	const struct hs_fields *fs[] = { &hs_vmstat_fields, &hs_psi_fields };
	char *msg[] = { (char *)g->vmstat, (char *)g->psi };
	int n = 0;

	for (size_t k = 0; k < sizeof(fs) / sizeof(fs[0]); k++)
		for (size_t i = 0; i < fs[k]->n; i++) {
			const struct hs_field *f = &fs[k]->f[i];

			if (!f->counter || n == SAN_COUNTERS)
				continue;
			ret[n] = msg[k] != NULL ?
			    (uint64_t *)(msg[k] + f->off) : NULL;
			has[n] = msg[k] != NULL ?
			    (protobuf_c_boolean *)(msg[k] + f->has_off) : NULL;
			n++;
		}
	return n;
}

/* Fields only the collector may set. */
static bool
strip_owned(Mm__V1__GuestStats *g)
{
	bool any = g->has_balloon_target_kib || g->has_balloon_actual_kib ||
	    g->has_deflate_on_oom || g->has_min_kib || g->has_max_kib ||
	    g->has_host_resident_kib || g->has_free_page_reporting ||
	    g->has_stale || g->n_flags > 0 || g->has_pressure_rising ||
	    g->vm_name != NULL || g->vm_uuid != NULL;

	/* A guest naming itself could pass for another VM on a dashboard. */
	free(g->vm_name);
	free(g->vm_uuid);
	g->vm_name = g->vm_uuid = NULL;

	g->has_balloon_target_kib = g->has_balloon_actual_kib = 0;
	g->has_deflate_on_oom = g->has_min_kib = g->has_max_kib = 0;
	g->has_host_resident_kib = 0;
	g->host_resident_kib = 0;
	g->has_free_page_reporting = g->free_page_reporting = 0;
	g->has_stale = g->has_pressure_rising = 0;
	g->stale = g->pressure_rising = 0;
	free(g->flags);
	g->flags = NULL;
	g->n_flags = 0;
	return any;
}

/* What g's guest uses (gm_sample_used_kib()), with h's word on the
 * balloon. */
static bool
san_used_kib(const struct san_host *h, const Mm__V1__GuestStats *g,
    uint64_t *ret_kib)
{
	return gm_sample_used_kib(g, h->doo_known, h->deflate_on_oom,
	    h->balloon_known, h->balloon_actual_kib, ret_kib);
}

/* ---- one function per reason a sample is flagged or refused ---- */

static void
check_unknown_fields(struct san_run *run)
{
	if (msg_drop_unknown(&run->g->base))
		flag(run, SAN_UNKNOWN_FIELDS, "fields mm does not know, "
		    "dropping them");
}

static void
check_owned_fields(struct san_run *run)
{
	if (strip_owned(run->g))
		flag(run, SAN_OWNED_FIELD, "guest set host-owned fields, "
		    "ignoring them");
}

/* Samples were dropped before this one (san_admit() counted them). */
static void
check_rate(struct san_run *run)
{
	if (!run->s->rate_flag_pending)
		return;
	run->hit[SAN_RATE] = true;
	run->s->rate_flag_pending = false;
}

/* A time ahead of the host's clock, or none, becomes the host's. */
static void
check_future_time(struct san_run *run)
{
	Mm__V1__GuestStats *g = run->g;
	uint64_t now = run->h->now_ms;

	if (g->has_time_ms && g->time_ms > now + SAN_CLOCK_SLACK_MS)
		flag(run, SAN_FUTURE_TIME, "time_ms %" PRIu64 " ahead of the "
		    "host's %" PRIu64 ", using the host's", g->time_ms, now);
	if (!g->has_time_ms || run->hit[SAN_FUTURE_TIME]) {
		g->has_time_ms = 1;
		g->time_ms = now;
	}
}

static void
check_missing(struct san_run *run)
{
	const Mm__V1__Meminfo *mi = run->g->meminfo;

	if (mi == NULL || !mi->has_total_kib || mi->total_kib == 0 ||
	    !mi->has_free_kib)
		flag(run, SAN_MISSING, "no meminfo total or free");
}

/* Memory: total <= max. */
static void
check_total_above_max(struct san_run *run, Mm__V1__Meminfo *mi)
{
	const struct san_host *h = run->h;
	uint64_t limit = UINT64_MAX;
	const char *limname = "max";

	/* Not the balloon's actual size where the maximum is known: a
	 * balloon that deflates on OOM stays in the guest's MemTotal (its
	 * pages count as used; the policy engine takes them out, and never
	 * counts more used than the actual). */
	if (h->max_known) {
		limit = h->max_kib;
	} else if (h->balloon_known) {
		limit = h->balloon_actual_kib + run->lim->tolerance_kib;
		limname = "balloon actual + tolerance";
	}
	clamp(run, SAN_TOTAL_ABOVE_MAX, "total", 1, &mi->total_kib, limit,
	    limname);
}

/* Memory: each part <= total. */
static void
check_part_above_total(struct san_run *run, Mm__V1__Meminfo *mi)
{
#define PART(f)								\
	clamp(run, SAN_PART_ABOVE_TOTAL, #f, mi->has_##f, &mi->f,	\
	    mi->total_kib, "total")
	PART(free_kib);
	PART(available_kib);
	PART(cached_kib);
	PART(anon_kib);
	PART(active_file_kib);
	PART(inactive_file_kib);
	PART(shmem_kib);
#undef PART
	clamp(run, SAN_PART_ABOVE_TOTAL, "swap_free",
	    mi->has_swap_free_kib && mi->has_swap_total_kib,
	    &mi->swap_free_kib, mi->swap_total_kib, "swap_total");
}

/* Memory: free + anon + cached <= total (within the tolerance). */
static void
check_parts_exceed(struct san_run *run, const Mm__V1__Meminfo *mi)
{
	uint64_t parts = (mi->has_free_kib ? mi->free_kib : 0) +
	    (mi->has_anon_kib ? mi->anon_kib : 0) +
	    (mi->has_cached_kib ? mi->cached_kib : 0);

	if (parts > mi->total_kib + run->lim->tolerance_kib)
		flag(run, SAN_PARTS_EXCEED, "free + anon + cached %" PRIu64
		    " KiB above total %" PRIu64 " KiB", parts, mi->total_kib);
}

/* Cold memory (GuestStats.cold): each bucket within the guest's total, and
 * shorter idle times holding no less. A guest whose buckets are not is
 * flagged and sends none this time: reclaim must not act on them. */
static void
check_cold(struct san_run *run, const Mm__V1__Meminfo *mi)
{
	Mm__V1__GuestStats *g = run->g;
	uint64_t tol = run->lim->tolerance_kib, prev_idle = 0, prev_sum = 0;
	bool bad = false;

	for (size_t i = 0; i < g->n_cold && !bad; i++) {
		const Mm__V1__ColdBucket *b = g->cold[i];
		uint64_t sum = b->anon_kib + b->file_kib;

		bad = b->anon_kib > MSG_KIB_MAX || b->file_kib > MSG_KIB_MAX ||
		    (mi != NULL && mi->has_total_kib &&
		    sum > mi->total_kib + tol) ||
		    (i > 0 && (b->idle_ms <= prev_idle || sum > prev_sum + tol));
		prev_idle = b->idle_ms;
		prev_sum = sum;
	}
	if (!bad)
		return;
	flag(run, SAN_PARTS_EXCEED, "cold memory above the guest's total, or "
	    "growing with idle time: dropped");
	for (size_t i = 0; i < g->n_cold; i++)
		protobuf_c_message_free_unpacked(&g->cold[i]->base, NULL);
	free(g->cold);
	g->cold = NULL;
	g->n_cold = 0;
}

/* The xenmm seed's check: the host gave memory (its view of the total
 * grew) but the guest's total did not move. Only for a total that followed
 * the balloon: one above it (deflate-on-oom) never does. */
static void
check_host_grew(struct san_run *run, const Mm__V1__Meminfo *mi)
{
	const struct san_vm *s = run->s;
	uint64_t host_kib = run->host_kib, tol = run->lim->tolerance_kib;

	if (s->have_prev && host_kib && s->prev_host_kib &&
	    host_kib > s->prev_host_kib + tol &&
	    s->prev_total_kib <= s->prev_host_kib &&
	    mi->total_kib <= s->prev_total_kib + SAN_TOTAL_STILL_KIB &&
	    mi->total_kib + tol < host_kib)
		flag(run, SAN_HOST_GREW, "host-side total grew %" PRIu64
		    " -> %" PRIu64 " KiB but the guest's stayed %" PRIu64
		    " KiB", s->prev_host_kib, host_kib, mi->total_kib);
}

/* The host's view: a guest using more than its process holds resident
 * claims memory it does not have (host swap, KSM and pages the host never
 * touched are within the tolerance). */
static void
check_host_view(struct san_run *run)
{
	const struct san_host *h = run->h;
	uint64_t used;

	if (!h->resident_known)
		return;
	run->g->has_host_resident_kib = 1;
	run->g->host_resident_kib = h->resident_kib;
	if (san_used_kib(h, run->g, &used) &&
	    used > h->resident_kib + run->lim->tolerance_kib)
		flag(run, SAN_HOST_VIEW, "uses %" PRIu64 " KiB by its own "
		    "numbers, the host sees %" PRIu64 " KiB resident", used,
		    h->resident_kib);
}

/* The balloon's pages: a gauge, never more than the VM's maximum (not its
 * MemTotal: without deflate-on-oom the pages leave it). */
static void
check_balloon_pages(struct san_run *run)
{
	Mm__V1__Vmstat *vs = run->g->vmstat;
	uint64_t pages;

	if (vs == NULL || !run->h->max_known)
		return;
	pages = run->h->max_kib / SAN_PAGE_KIB;
	if (vs->has_balloon_pages && vs->balloon_pages > pages) {
		flag(run, SAN_PART_ABOVE_TOTAL, "balloon_pages %" PRIu64
		    " above the maximum, clamping", vs->balloon_pages);
		vs->balloon_pages = pages;
	}
}

/* Counters are monotonic within one agent run: a seq that went back is
 * a restart. True then. */
static bool
check_seq_back(struct san_run *run)
{
	const Mm__V1__GuestStats *g = run->g;
	const struct san_vm *s = run->s;

	if (!s->prev_has_seq || !g->has_agent_seq || g->agent_seq > s->prev_seq)
		return false;
	flag(run, SAN_SEQ_BACK, "agent_seq went back %" PRIu64 " -> %" PRIu64
	    ", taking it as an agent restart", s->prev_seq, g->agent_seq);
	return true;
}

/* Without a restart, a counter that went back is held at its last value. */
static void
check_counter_back(struct san_run *run, bool restart)
{
	uint64_t *ctr[SAN_COUNTERS];
	protobuf_c_boolean *has[SAN_COUNTERS];
	struct san_vm *s = run->s;
	int i, n = counters(run->g, ctr, has);

	for (i = 0; i < n; i++) {
		if (ctr[i] == NULL || !*has[i] || restart ||
		    !s->prev_has_counter[i] || *ctr[i] >= s->prev_counter[i])
			continue;
		flag(run, SAN_COUNTER_BACK, "counter %d went back %" PRIu64
		    " -> %" PRIu64 ", holding it", i, s->prev_counter[i],
		    *ctr[i]);
		*ctr[i] = s->prev_counter[i];
	}
}

static void
check_psi_range(struct san_run *run)
{
	char *p = (char *)run->g->psi;
	bool c = false;

	if (p == NULL)
		return;
	for (size_t i = 0; i < hs_psi_fields.n; i++) {
		const struct hs_field *f = &hs_psi_fields.f[i];

		if (f->pct)
			c |= clamp_pct((double *)(p + f->off),
			    *(protobuf_c_boolean *)(p + f->has_off));
	}
	if (c)
		flag(run, SAN_PART_ABOVE_TOTAL,
		    "pressure outside 0..100%%, clamping");
}

/* Known fields are bounded well below the cap: a sample above it has found
 * a way around that, and is not passed on. Returns 0 or -EMSGSIZE. */
static int
check_too_big(struct san_run *run)
{
	size_t max_bytes = run->lim->guest_max_bytes ?
	    run->lim->guest_max_bytes : SAN_GUEST_MAX_BYTES;
	size_t bytes = msg_packed_size(&run->g->base);

	if (bytes <= max_bytes)
		return 0;
	reject(run->s, run->h, SAN_TOO_BIG, "sample of %zu bytes, at most "
	    "%zu, refusing it", bytes, max_bytes);
	return -EMSGSIZE;
}

/* Pressure rising: avg10 above avg60 and up since the last sample, or a
 * jump of psi_jump_pct points. */
static void
set_pressure_rising(struct san_run *run)
{
	Mm__V1__GuestStats *g = run->g;
	const Mm__V1__Psi *p = g->psi;
	struct san_vm *s = run->s;
	double prev;

	g->has_pressure_rising = 1;
	g->pressure_rising = 0;
	if (p == NULL || !p->has_some_avg10_pct)
		return;
	prev = s->have_prev ? s->prev_avg10 : 0.0;
	if ((p->has_some_avg60_pct && p->some_avg10_pct > p->some_avg60_pct &&
	    p->some_avg10_pct > prev && s->have_prev) ||
	    p->some_avg10_pct >= prev + run->lim->psi_jump_pct)
		g->pressure_rising = 1;
	s->prev_avg10 = p->some_avg10_pct;
}

/* The accepted sample is the next one's baseline. */
static void
remember(struct san_run *run)
{
	uint64_t *ctr[SAN_COUNTERS];
	protobuf_c_boolean *has[SAN_COUNTERS];
	const Mm__V1__GuestStats *g = run->g;
	struct san_vm *s = run->s;
	int i, n = counters(run->g, ctr, has);

	s->have_prev = true;
	s->prev_has_seq = g->has_agent_seq;
	if (g->has_agent_seq)
		s->prev_seq = g->agent_seq;
	if (g->meminfo != NULL && g->meminfo->has_total_kib)
		s->prev_total_kib = g->meminfo->total_kib;
	s->prev_host_kib = run->host_kib;
	for (i = 0; i < n; i++) {
		s->prev_has_counter[i] = ctr[i] != NULL && *has[i];
		if (s->prev_has_counter[i])
			s->prev_counter[i] = *ctr[i];
	}
}

int
san_check(struct san_vm *s, const struct san_limits *lim,
    const struct san_host *h, Mm__V1__GuestStats *g)
{
	struct san_run run = {
		.s = s, .lim = lim, .h = h, .g = g,
		.host_kib = h->balloon_known ? h->balloon_actual_kib :
		    h->target_known ? h->target_kib : 0,
	};
	Mm__V1__Meminfo *mi = g->meminfo;
	int i, r;

	check_unknown_fields(&run);
	check_owned_fields(&run);
	check_rate(&run);
	check_future_time(&run);
	check_missing(&run);
	if (mi != NULL && mi->has_total_kib) {
		check_total_above_max(&run, mi);
		check_part_above_total(&run, mi);
		check_parts_exceed(&run, mi);
		check_host_grew(&run, mi);
	}
	check_cold(&run, mi);
	check_host_view(&run);
	check_balloon_pages(&run);
	check_counter_back(&run, check_seq_back(&run));
	check_psi_range(&run);
	set_pressure_rising(&run);

	for (i = 0; i < SAN_REASON_COUNT; i++)
		if (run.hit[i] && add_flag(g, reasons[i].flag) < 0)
			return -ENOMEM;
	r = check_too_big(&run);
	if (r < 0)
		return r;
	remember(&run);
	return 0;
}
