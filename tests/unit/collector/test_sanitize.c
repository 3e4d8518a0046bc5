/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sanitizer against hostile and broken guests: a table of samples, each
 * with what the host knows, the flags it must carry afterwards and the
 * values it must have been clamped to. A hostile value must never come out
 * unflagged, and an honest guest must come out clean. Fields mm does not
 * know never reach the report, and a guest claiming more use than its
 * process holds resident (read from a fixture /proc) is flagged.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector.h"
#include "hoststats.h"
#include "testutil.h"
#include "tu_hv.h"

#define MIB	1024ull
#define GIB	(1024ull * 1024)
#define NOW	1700000000000ull

enum { F_INCONS = 1, F_CLAMP = 2, F_RATE = 4, F_NONMONO = 8, F_MISSING = 16,
    F_HOST_VIEW = 32 };

/* A sample as the test writes it; 0 fields are absent (except seq). */
struct sample {
	uint64_t seq, total, free, avail, cached, anon;
	uint64_t majflt;
	double avg10, avg60;
	uint64_t time_ms;
	bool set_owned;		/* guest sets balloon/flags/stale itself */
	bool qmp;		/* the balloon's guest-stats: no agent_seq */
	uint64_t bpages;	/* vmstat balloon_pages */
	uint64_t balloon;	/* host: balloon actual (0 unknown) */
	uint64_t target;	/* host: target (Xen; 0 unknown) */
	uint64_t max;		/* host: max (0 unknown) */
};

struct sancase {
	const char *name;
	struct sample prev;	/* fed first unless prev.total == 0 */
	struct sample cur;
	unsigned want_flags;
	uint64_t want_total, want_free, want_majflt;
	int want_rising;	/* -1: don't care */
};

static Mm__V1__GuestStats *
make(const struct sample *s)
{
	Mm__V1__GuestStats *g = calloc(1, sizeof(*g));
	Mm__V1__Meminfo *mi = calloc(1, sizeof(*mi));
	Mm__V1__Vmstat *vs = calloc(1, sizeof(*vs));
	Mm__V1__Psi *p = calloc(1, sizeof(*p));

	mm__v1__guest_stats__init(g);
	mm__v1__meminfo__init(mi);
	mm__v1__vmstat__init(vs);
	mm__v1__psi__init(p);
	g->vm_id = strdup("vm1");
	g->meminfo = mi;
	g->vmstat = vs;
	g->psi = p;
	g->has_agent_seq = !s->qmp;
	g->agent_seq = s->qmp ? 0 : s->seq;
	g->has_time_ms = 1;
	g->time_ms = s->time_ms ? s->time_ms : NOW;
#define S(m, f, v) if (v) { m->f = v; m->has_##f = 1; }
	S(mi, total_kib, s->total);
	S(mi, free_kib, s->free);
	S(mi, available_kib, s->avail);
	S(mi, cached_kib, s->cached);
	S(mi, anon_kib, s->anon);
	S(vs, major_faults, s->majflt);
	S(vs, balloon_pages, s->bpages);
#undef S
	p->has_some_avg10_pct = p->has_some_avg60_pct = 1;
	p->some_avg10_pct = s->avg10;
	p->some_avg60_pct = s->avg60;
	if (s->set_owned) {
		g->has_stale = 1;
		g->has_balloon_actual_kib = 1;
		g->balloon_actual_kib = 1;
		g->n_flags = 1;
		g->flags = malloc(sizeof(*g->flags));
		g->flags[0] = MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_CLAMPED;
		g->vm_uuid = strdup("00000000-0000-0000-0000-000000000001");
	}
	return g;
}

static const struct san_limits lim = {
	.tolerance_kib = 50 * MIB,
	.rate_per_s = 5,
	.psi_jump_pct = 5.0,
};

static Mm__V1__GuestStats *
feed(struct san_vm *s, const struct sample *smp, uint64_t mono)
{
	struct san_host h = {
		.vm_id = "vm1",
		.balloon_known = smp->balloon != 0,
		.balloon_actual_kib = smp->balloon,
		.target_known = smp->target != 0,
		.target_kib = smp->target,
		.max_known = smp->max != 0,
		.max_kib = smp->max,
		.now_ms = NOW,
		.mono_ms = mono,
	};
	Mm__V1__GuestStats *g = make(smp);

	assert_true(san_admit(s, &lim, &h));
	assert_int_equal(san_check(s, &lim, &h, g), 0);
	return g;
}

#define HONEST(seq_)							\
	{ .seq = seq_, .total = 2 * GIB, .free = 1 * GIB,		\
	  .avail = 1536 * MIB, .cached = 512 * MIB, .anon = 512 * MIB,	\
	  .majflt = 100, .balloon = 2 * GIB + 100 * MIB, .max = 4 * GIB }

static const struct sancase cases[] = {
	{ "honest", HONEST(1), HONEST(2), 0, 2 * GIB, 1 * GIB, 100, 0 },
	{ "first sample honest", {0}, HONEST(7), 0, 2 * GIB, 1 * GIB, 100,
	  0 },
	{ "total above max", {0},
	  { .seq = 1, .total = 64 * GIB, .free = 1 * GIB, .max = 4 * GIB },
	  F_CLAMP, 4 * GIB, 1 * GIB, 0, -1 },
	{ "total above balloon, maximum unknown", {0},
	  { .seq = 1, .total = 3 * GIB, .free = 1 * GIB,
	    .balloon = 2 * GIB },
	  F_CLAMP, 2 * GIB + 50 * MIB, 1 * GIB, 0, -1 },
	/* A balloon that deflates on OOM stays in MemTotal: above the
	 * balloon's actual size, not above the maximum, is honest. */
	{ "deflate-on-oom balloon in the total", {0},
	  { .seq = 1, .total = 4 * GIB - 60 * MIB, .free = 1 * GIB,
	    .balloon = 3 * GIB, .max = 4 * GIB },
	  0, 4 * GIB - 60 * MIB, 1 * GIB, 0, -1 },
	{ "deflate-on-oom: the total never follows the balloon",
	  { .seq = 1, .total = 4 * GIB - 60 * MIB, .free = 1 * GIB,
	    .balloon = 3 * GIB, .max = 4 * GIB },
	  { .seq = 2, .total = 4 * GIB - 60 * MIB, .free = 2 * GIB,
	    .balloon = 4 * GIB, .max = 4 * GIB },
	  0, 4 * GIB - 60 * MIB, 2 * GIB, 0, -1 },
	/* Without deflate-on-oom the balloon's pages leave MemTotal: more
	 * of them than the total is right, more than the maximum is not. */
	{ "balloon larger than what is left", {0},
	  { .seq = 1, .total = 1 * GIB, .free = 512 * MIB,
	    .bpages = 3 * GIB / 4, .balloon = 1 * GIB, .max = 4 * GIB },
	  0, 1 * GIB, 512 * MIB, 0, -1 },
	{ "balloon larger than the VM", {0},
	  { .seq = 1, .total = 1 * GIB, .free = 512 * MIB,
	    .bpages = 5 * GIB / 4, .balloon = 1 * GIB, .max = 4 * GIB },
	  F_CLAMP, 1 * GIB, 512 * MIB, 0, -1 },
	{ "free above total", {0},
	  { .seq = 1, .total = 2 * GIB, .free = 3 * GIB },
	  F_CLAMP, 2 * GIB, 2 * GIB, 0, -1 },
	{ "parts exceed total", {0},
	  { .seq = 1, .total = 2 * GIB, .free = 1 * GIB, .anon = 1 * GIB,
	    .cached = 1 * GIB },
	  F_INCONS, 2 * GIB, 1 * GIB, 0, -1 },
	{ "missing total", {0}, { .seq = 1, .free = 1 * GIB },
	  F_MISSING, 0, 1 * GIB, 0, -1 },
	{ "missing free", {0}, { .seq = 1, .total = 1 * GIB },
	  F_MISSING, 1 * GIB, 0, 0, -1 },
	{ "counter back", HONEST(5),
	  { .seq = 6, .total = 2 * GIB, .free = 1 * GIB, .majflt = 3,
	    .balloon = 2 * GIB + 100 * MIB },
	  F_NONMONO, 2 * GIB, 1 * GIB, 100, -1 },
	/* The balloon's guest-stats (QMP) have no agent_seq: the agent's
	 * first report after them is no restart. */
	{ "agent after guest-stats", { .qmp = true, .total = 2 * GIB,
	    .free = 1 * GIB, .balloon = 2 * GIB + 100 * MIB, .max = 4 * GIB,
	    .majflt = 100 },
	  HONEST(0), 0, 2 * GIB, 1 * GIB, 100, -1 },
	{ "agent restart", HONEST(500),
	  { .seq = 0, .total = 2 * GIB, .free = 1 * GIB, .majflt = 3,
	    .balloon = 2 * GIB + 100 * MIB },
	  F_NONMONO, 2 * GIB, 1 * GIB, 3, -1 },
	{ "replayed seq", HONEST(9), HONEST(9), F_NONMONO, 2 * GIB, 1 * GIB,
	  100, -1 },
	{ "host grew, guest did not (xenmm)",
	  { .seq = 1, .total = 2 * GIB, .free = 1 * GIB, .balloon = 2 * GIB },
	  { .seq = 2, .total = 2 * GIB, .free = 1 * GIB, .balloon = 3 * GIB },
	  F_INCONS, 2 * GIB, 1 * GIB, 0, -1 },
	{ "xen: target grew, guest did not",
	  { .seq = 1, .total = 2 * GIB, .free = 1 * GIB, .target = 2 * GIB,
	    .max = 4 * GIB },
	  { .seq = 2, .total = 2 * GIB, .free = 1 * GIB, .target = 3 * GIB,
	    .max = 4 * GIB },
	  F_INCONS, 2 * GIB, 1 * GIB, 0, -1 },
	{ "host grew, guest too",
	  { .seq = 1, .total = 2 * GIB, .free = 1 * GIB, .balloon = 2 * GIB },
	  { .seq = 2, .total = 3 * GIB, .free = 2 * GIB, .balloon = 3 * GIB },
	  0, 3 * GIB, 2 * GIB, 0, -1 },
	{ "future time", {0},
	  { .seq = 1, .total = 1 * GIB, .free = 1 * MIB,
	    .time_ms = NOW + 3600000 },
	  F_CLAMP, 1 * GIB, 1 * MIB, 0, -1 },
	{ "guest sets host-owned fields", {0},
	  { .seq = 1, .total = 1 * GIB, .free = 1 * MIB, .set_owned = true },
	  F_CLAMP, 1 * GIB, 1 * MIB, 0, -1 },
	{ "psi out of range", {0},
	  { .seq = 1, .total = 1 * GIB, .free = 1 * MIB, .avg10 = 250.0 },
	  F_CLAMP, 1 * GIB, 1 * MIB, 0, 1 },
	{ "pressure rising", HONEST(1),
	  { .seq = 2, .total = 2 * GIB, .free = 1 * GIB, .avg10 = 20.0,
	    .avg60 = 2.0, .majflt = 100, .balloon = 2 * GIB + 100 * MIB },
	  0, 2 * GIB, 1 * GIB, 100, 1 },
	{ "pressure high but falling",
	  { .seq = 1, .total = 2 * GIB, .free = 1 * GIB, .avg10 = 40.0,
	    .avg60 = 10.0 },
	  { .seq = 2, .total = 2 * GIB, .free = 1 * GIB, .avg10 = 30.0,
	    .avg60 = 12.0 },
	  0, 2 * GIB, 1 * GIB, 0, 0 },
};

static void
test_sanitize_table(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sancase *c = &cases[i];
		struct san_vm s = { 0 };
		Mm__V1__GuestStats *g;

		print_message("case \"%s\"\n", c->name);
		if (c->prev.total != 0)
			msg_free(&feed(&s, &c->prev, 1000)->base);
		g = feed(&s, &c->cur, 2000);
		assert_int_equal(tu_guest_flags(g), c->want_flags);
		if (c->want_total)
			assert_int_equal(g->meminfo->total_kib, c->want_total);
		if (c->want_free)
			assert_int_equal(g->meminfo->free_kib, c->want_free);
		if (c->want_majflt)
			assert_int_equal(g->vmstat->major_faults,
			    c->want_majflt);
		if (c->want_rising >= 0)
			assert_int_equal(g->pressure_rising, c->want_rising);
		assert_false(g->has_balloon_actual_kib);
		assert_null(g->vm_uuid);
		assert_false(g->stale);
		assert_true(g->time_ms <= NOW + 1000);
		/* Whatever came in, what goes out is a valid message. */
		assert_int_equal(msg_validate(MSG_GUEST_STATS, &g->base, NULL,
		    0), 0);
		msg_free(&g->base);
	}
}

/* The sanitizer follows every counter of hoststats' tables: a counter
 * added there without room in san_vm would go unchecked. */
static void
test_sanitize_follows_every_counter(void **state)
{
	const struct hs_fields *fs[] = { &hs_vmstat_fields, &hs_psi_fields };
	unsigned n = 0;

	(void)state;
	for (size_t k = 0; k < 2; k++)
		for (size_t i = 0; i < fs[k]->n; i++)
			n += fs[k]->f[i].counter;
	assert_int_equal(n, SAN_COUNTERS);
}

static void
test_sanitize_rate_limit(void **state)
{
	struct san_host h = { .vm_id = "vm1", .now_ms = NOW, .mono_ms = 1000 };
	struct sample smp = HONEST(1);
	struct san_vm s = { 0 };
	Mm__V1__GuestStats *g;
	unsigned admitted = 0, i;
	uint64_t before = san_total[SAN_RATE];

	/* A guest sending 100 samples in one second gets 5 (+ burst). */
	for (i = 0; i < 100; i++) {
		h.mono_ms = 1000 + i * 10;
		admitted += san_admit(&s, &lim, &h);
	}
	assert_in_range(admitted, 5, 11);
	assert_int_equal(s.count[SAN_RATE], 100 - admitted);
	assert_int_equal(san_total[SAN_RATE] - before, 100 - admitted);
	/* The next accepted sample carries the flag, the one after not. */
	h.mono_ms = 10000;
	assert_true(san_admit(&s, &lim, &h));
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), F_RATE);
	msg_free(&g->base);
	smp.seq = 2;
	h.mono_ms = 11000;
	assert_true(san_admit(&s, &lim, &h));
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), 0);
	msg_free(&g->base);
}

static void
test_sanitize_counts_every_rejection(void **state)
{
	struct sample bad = { .seq = 1, .total = 64 * GIB, .free = 1 * GIB,
	    .max = 4 * GIB };
	struct san_vm s = { 0 };
	uint64_t before = san_total[SAN_TOTAL_ABOVE_MAX];
	unsigned i;

	for (i = 0; i < 4; i++) {
		bad.seq = i + 1;
		msg_free(&feed(&s, &bad, 1000 + i * 1000)->base);
	}
	assert_int_equal(s.count[SAN_TOTAL_ABOVE_MAX], 4);
	assert_int_equal(san_total[SAN_TOTAL_ABOVE_MAX] - before, 4);
	/* Logged once: the bit stays set. */
	assert_true(s.logged & (1u << SAN_TOTAL_ABOVE_MAX));
	assert_string_equal(san_reason_name(SAN_TOTAL_ABOVE_MAX),
	    "total_above_max");
}

/* Through the wire and back, as an agent frame reaches the collector. */
static Mm__V1__GuestStats *
round_trip(Mm__V1__GuestStats *g)
{
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t len;

	assert_int_equal(msg_pack(MSG_GUEST_STATS, &g->base, &buf, &len), 0);
	msg_free(&g->base);
	assert_int_equal(msg_unpack(MSG_GUEST_STATS, buf, len, &m, NULL, 0),
	    0);
	free(buf);
	return (Mm__V1__GuestStats *)m;
}

static size_t
checked_size(const struct sample *smp, bool unknown, unsigned *ret_flags)
{
	struct san_host h = { .vm_id = "vm1", .balloon_known = true,
	    .balloon_actual_kib = smp->balloon, .max_known = true,
	    .max_kib = smp->max, .now_ms = NOW, .mono_ms = 1000 };
	Mm__V1__GuestStats *g = make(smp);
	struct san_vm s = { 0 };
	size_t n;

	if (unknown) {
		tu_msg_add_unknown(&g->base, 1000, 60000);
		tu_msg_add_unknown(&g->meminfo->base, 99, 100);
		tu_msg_add_unknown(&g->psi->base, 77, 10);
	}
	g = round_trip(g);
	assert_int_equal(g->base.n_unknown_fields, unknown ? 1 : 0);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(g->base.n_unknown_fields, 0);
	assert_int_equal(g->meminfo->base.n_unknown_fields, 0);
	assert_int_equal(g->psi->base.n_unknown_fields, 0);
	assert_int_equal(s.count[SAN_UNKNOWN_FIELDS], unknown ? 1 : 0);
	*ret_flags = tu_guest_flags(g);
	n = protobuf_c_message_get_packed_size(&g->base);
	msg_free(&g->base);
	return n;
}

/* A guest padding its frames with fields mm does not know does not grow
 * its host's report: they are dropped, counted, and the sample flagged. */
static void
test_sanitize_unknown_fields(void **state)
{
	struct sample smp = HONEST(1);
	uint64_t before = san_total[SAN_UNKNOWN_FIELDS];
	size_t clean, padded;
	unsigned f;

	clean = checked_size(&smp, false, &f);
	assert_int_equal(f, 0);
	padded = checked_size(&smp, true, &f);
	assert_int_equal(f, F_CLAMP);
	print_message("sanitized sample: %zu bytes honest, %zu with 60 kB "
	    "of unknown fields\n", clean, padded);
	/* The flag's three bytes (field 51), nothing of the padding. */
	assert_int_equal(padded, clean + 3);
	assert_int_equal(san_total[SAN_UNKNOWN_FIELDS] - before, 1);
}

/* A sample that still packs to more than the bound is refused. */
static void
test_sanitize_size_cap(void **state)
{
	struct san_limits small = lim;
	struct san_host h = { .vm_id = "vm1", .now_ms = NOW, .mono_ms = 1000 };
	struct sample smp = HONEST(1);
	struct san_vm s = { 0 };
	Mm__V1__GuestStats *g = make(&smp);

	small.guest_max_bytes = 32;
	assert_int_equal(san_check(&s, &small, &h, g), -EMSGSIZE);
	assert_int_equal(s.count[SAN_TOO_BIG], 1);
	msg_free(&g->base);
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	msg_free(&g->base);
	assert_int_equal(s.count[SAN_TOO_BIG], 1);
}

/* The host's view: the VM process's resident memory from a fixture
 * /proc/<pid>/statm, which the guest's claimed use must not exceed (by
 * more than the tolerance), and which the guest cannot set itself. */
static void
test_sanitize_host_view(void **state)
{
	uint64_t page_kib = (uint64_t)sysconf(_SC_PAGESIZE) / 1024, rss;
	struct san_host h = { .vm_id = "vm1", .balloon_known = true,
	    .balloon_actual_kib = 2 * GIB, .max_known = true,
	    .max_kib = 4 * GIB, .now_ms = NOW, .mono_ms = 1000 };
	struct sample smp = HONEST(1);
	struct san_vm s = { 0 };
	Mm__V1__GuestStats *g;
	char *root, text[128];

	root = tu_tmpdir();
	snprintf(text, sizeof(text), "900000 %llu 3000 700 0 200000 0\n",
	    (unsigned long long)(512 * MIB / page_kib));
	free(tu_write_file(root, "4242/statm", text));
	free(tu_write_file(root, "4243/statm", "12 x 3\n"));
	assert_int_equal(hs_read_resident_kib(root, 4242, &rss), 0);
	assert_int_equal(rss, 512 * MIB);
	assert_int_equal(hs_read_resident_kib(root, 4243, &rss), -EINVAL);
	assert_int_equal(hs_read_resident_kib(root, 4244, &rss), -ENOENT);
	h.resident_known = true;
	h.resident_kib = 512 * MIB;

	/* Honest: 512 MiB used of a process holding 512 MiB. */
	smp.balloon = 2 * GIB;
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), 0);
	assert_true(g->has_host_resident_kib);
	assert_int_equal(g->host_resident_kib, 512 * MIB);
	msg_free(&g->base);

	/* Within the tolerance (host swap, KSM): still honest. */
	smp.seq = 2;
	smp.avail = 1536 * MIB - 40 * MIB;
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), 0);
	msg_free(&g->base);

	/* Claims 1.5 GiB used: more than the host sees it hold. */
	smp.seq = 3;
	smp.avail = 512 * MIB;
	g = make(&smp);
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), F_HOST_VIEW);
	assert_int_equal(s.count[SAN_HOST_VIEW], 1);
	assert_true(s.logged & (1u << SAN_HOST_VIEW));
	msg_free(&g->base);

	/* The guest's own host_resident_kib is the host's field. */
	smp.seq = 4;
	smp.avail = 1536 * MIB;
	g = make(&smp);
	g->has_host_resident_kib = 1;
	g->host_resident_kib = 64 * GIB;
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), F_CLAMP);
	assert_int_equal(g->host_resident_kib, 512 * MIB);
	msg_free(&g->base);
	/* ...and without a host view it is simply gone. */
	h.resident_known = false;
	smp.seq = 5;
	g = make(&smp);
	g->has_host_resident_kib = 1;
	g->host_resident_kib = 64 * GIB;
	assert_int_equal(san_check(&s, &lim, &h, g), 0);
	assert_int_equal(tu_guest_flags(g), F_CLAMP);
	assert_false(g->has_host_resident_kib);
	msg_free(&g->base);

	tu_rmtree(root);
	free(root);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sanitize_table),
		cmocka_unit_test(test_sanitize_follows_every_counter),
		cmocka_unit_test(test_sanitize_rate_limit),
		cmocka_unit_test(test_sanitize_counts_every_rejection),
		cmocka_unit_test(test_sanitize_unknown_fields),
		cmocka_unit_test(test_sanitize_size_cap),
		cmocka_unit_test(test_sanitize_host_view),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
