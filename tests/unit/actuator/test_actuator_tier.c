/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actuator's host tier ([tier], hosttier.c) on mm-sim's VMs, the scans
 * and moves replaced by fakes at struct act_tier_ops (the real ones run on
 * a real kernel in test_vm_tier):
 * - a host without swap or a slower node (mm-sim's /proc and /sys, like
 *   this machine): the actuator says so, its metric says "skipped", and no
 *   pass runs;
 * - with swap: chunks idle for cold_windows windows are paged out, the
 *   coldest first; a pass never moves more than the host's quota, a VM
 *   never keeps less than its hot reserve, the hot chunks never move; a VM
 *   whose moves come back as major faults waits longer; the moves show in
 *   mm_vm_tier_moved_bytes;
 * - with sysmem_threshold, nothing moves while the host has more free
 *   than that, and moves begin once it has less;
 * - a VM the configuration excludes is left alone;
 * - a bad slow_nodes list is refused at start and by mm-actuator -n.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "act_harness.h"
#include "metrics.h"
#include "testutil.h"

#define CHUNKS		64	/* 128 MiB of RAM per VM */
#define HOT		8	/* chunks written every window */
#define CHUNK_KIB	(TIER_CHUNK / 1024)

static const char *const vms[] = { "calm,512M,idle", "faulty,512M,idle",
	NULL };
static struct harness H;

/* What the fakes saw. */
static struct {
	unsigned passes;		/* memory reads: one a pass */
	uint64_t pass_kib[64];		/* paged out in each pass */
	uint64_t max_pass_kib;
	bool hot_moved;
	bool swap;			/* the fake host has swap */
	uint64_t avail_pct;		/* its MemAvailable, % of 16 GiB */
} F;

/* Once a pass (the swap's and memory's room). */
static int
fake_memory(const char *proc_root, struct tier_host *ret)
{
	(void)proc_root;
	ret->swap = F.swap;
	ret->swap_free_kib = 8ull << 20;
	ret->mem_total_kib = 16ull << 20;
	ret->mem_available_kib = ret->mem_total_kib * F.avail_pct / 100;
	if (F.passes < 63)
		F.passes++;
	return 0;
}

/* Once, at start. */
static int
fake_probe(const char *proc_root, const char *sys_root, uint64_t slow,
    struct tier_host *ret)
{
	(void)sys_root;
	(void)slow;
	memset(ret, 0, sizeof(*ret));
	ret->fast_mask = 1;
	return fake_memory(proc_root, ret);
}

static int
fake_open(struct tier_scan *s, const char *proc_root, pid_t pid,
    uint64_t min_bytes)
{
	(void)proc_root;
	(void)min_bytes;
	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->chunks = calloc(CHUNKS, sizeof(*s->chunks));
	assert_non_null(s->chunks);
	s->n = CHUNKS;
	for (size_t i = 0; i < CHUNKS; i++) {
		s->chunks[i].addr = 0x7f0000000000ull + i * TIER_CHUNK;
		s->chunks[i].present = TIER_CHUNK / 4096;
	}
	return 0;
}

static int
fake_begin(struct tier_scan *s, const char *proc_root)
{
	(void)s;
	(void)proc_root;
	return 0;
}

/* The VM whose scan s is. */
static const char *
scan_vm(const struct tier_scan *s)
{
	for (size_t i = 0; i < H.a.tier.n; i++)
		if (&H.a.tier.vms[i].scan == s)
			return H.a.tier.vms[i].id;
	fail_msg("a scan of no VM");
	return NULL;
}

/* The first HOT chunks are written in every window; the others stay
 * idle, and once paged out stay out, except in "faulty", which reads its
 * moved pages back within the next window (major faults). */
static int
fake_end(struct tier_scan *s, const char *proc_root)
{
	bool faulty = strcmp(scan_vm(s), "faulty") == 0;

	(void)proc_root;
	s->refaults = 0;
	for (size_t i = 0; i < s->n; i++) {
		struct tier_chunk *c = &s->chunks[i];

		if (faulty && c->present == 0) {
			c->present = TIER_CHUNK / 4096;
			c->idle = 0;
			s->refaults += c->present;
		} else if (i < HOT) {
			c->idle = 0;
		} else if (c->idle < 255) {
			c->idle++;
		}
	}
	s->windows++;
	return 0;
}

static int64_t
fake_pageout(const struct tier_scan *s, const size_t *idx, size_t n)
{
	struct tier_chunk *c = s->chunks;	/* the kernel changes them */
	uint64_t kib = 0;

	for (size_t i = 0; i < n; i++) {
		if (idx[i] < HOT)
			F.hot_moved = true;
		kib += (uint64_t)c[idx[i]].present * 4;
		c[idx[i]].present = 0;
	}
	F.pass_kib[F.passes] += kib;
	if (F.pass_kib[F.passes] > F.max_pass_kib)
		F.max_pass_kib = F.pass_kib[F.passes];
	return (int64_t)kib * 1024;
}

static int64_t
fake_demote(struct tier_scan *s, const size_t *idx, size_t n, unsigned node)
{
	(void)s;
	(void)idx;
	(void)n;
	(void)node;
	fail_msg("demote in swap mode");
	return -EIO;
}

static const struct act_tier_ops fakes = {
	.probe = fake_probe, .memory = fake_memory, .open = fake_open,
	.begin = fake_begin,
	.end = fake_end, .pageout = fake_pageout, .demote = fake_demote,
};

/* The harness hands over the configuration, the actuator's first member:
 * the fakes go in with it. */
static void
conf_auto(struct actuator_conf *c)
{
	c->tier_mode = ACT_TIER_AUTO;
	c->tier_window_ms = 1000;
}

static void
conf_fakes(struct actuator_conf *c)
{
	struct actuator *a = (struct actuator *)(void *)c;

	a->tier.ops = &fakes;
	c->tier_mode = ACT_TIER_SWAP;
	c->tier_window_ms = 1000;
	c->tier_cold_windows = 2;
	c->tier_quota_kib = 64 * MIB;
	c->tier_hot_reserve_kib = 32 * MIB;
	c->tier_refault_pct = 10;
}

static char *
metrics_text(void)
{
	struct mx *m = mx_new(MX_TEXT);
	size_t len;
	char *text;

	act_metrics_cb(m, &H.a);
	text = strdup(mx_finish(m, &len));
	mx_free(m);
	return text;
}

static void
test_tier_skipped(void **state)
{
	char *text;

	(void)state;
	th_start(&H, vms, conf_auto);
	assert_true(H.a.tier.skipped);
	assert_string_equal(H.a.tier.why,
	    "no swap and no slower NUMA node on this host");
	tu_run_for(&H.loop, 2500);
	assert_int_equal(H.a.tier.passes, 0);
	text = metrics_text();
	assert_non_null(strstr(text, "mm_actuator_tier_state{host=\"h1\","
	    "state=\"skipped\"} 1"));
	free(text);
	th_finish(&H);
}

static void
test_tier_swap(void **state)
{
	uint64_t left[2] = { 0, 0 };
	char *text, want[128];

	(void)state;
	memset(&F, 0, sizeof(F));
	F.swap = true;
	F.avail_pct = 30;
	th_start(&H, vms, conf_fakes);
	assert_false(H.a.tier.skipped);
	assert_int_equal(H.a.tier.mode, ACT_TIER_SWAP);
	tu_run_for(&H.loop, 7500);
	assert_true(H.a.tier.passes >= 5);
	assert_int_equal(H.a.tier.n, 2);
	for (size_t v = 0; v < 2; v++) {
		const struct act_tier_vm *x = &H.a.tier.vms[v];

		for (size_t i = 0; i < x->scan.n; i++)
			left[v] += (uint64_t)x->scan.chunks[i].present * 4;
		printf("tier: vm \"%s\": %llu MiB moved, %llu MiB kept, cold "
		    "after %u windows\n", x->id,
		    (unsigned long long)x->moved_total_kib / MIB,
		    (unsigned long long)left[v] / MIB, x->min_idle);
	}
	assert_string_equal(H.a.tier.vms[0].id, "calm");
	/* calm: down to its hot reserve, never below it, the hot chunks
	 * left alone. */
	assert_int_equal(H.a.tier.vms[0].moved_total_kib, 96 * MIB);
	assert_int_equal(left[0], 32 * MIB);
	assert_int_equal(H.a.tier.vms[0].min_idle, 2);
	assert_false(F.hot_moved);
	/* faulty: its pages came back, so it waits longer (2 -> 4 windows
	 * at least) and holds its memory again. */
	assert_true(H.a.tier.vms[1].moved_total_kib > 0);
	assert_true(H.a.tier.vms[1].min_idle >= 4);
	/* The host's quota held in every pass, and calm's 96 MiB took two
	 * passes. */
	assert_true(F.max_pass_kib <= 64 * MIB);
	assert_true(F.max_pass_kib > 0);
	text = metrics_text();
	snprintf(want, sizeof(want), "mm_vm_tier_moved_bytes_total{host="
	    "\"h1\",vm=\"calm\"} %llu", 96ull * MIB * 1024);
	if (strstr(text, want) == NULL)
		fail_msg("no \"%s\" in\n%s", want, text);
	assert_non_null(strstr(text, "state=\"swap\"} 1"));
	free(text);
	th_finish(&H);
}

static void
conf_threshold(struct actuator_conf *c)
{
	conf_fakes(c);
	c->tier_sysmem_threshold = 50;
}

static void
test_tier_sysmem_threshold(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	F.swap = true;
	F.avail_pct = 80;
	th_start(&H, vms, conf_threshold);
	tu_run_for(&H.loop, 4500);
	assert_true(H.a.tier.passes >= 3);
	assert_true(H.a.tier.held_back);
	assert_int_equal(H.a.tier.moved_kib, 0);
	/* The host runs short: the chunks idle for long enough go. */
	F.avail_pct = 30;
	tu_run_for(&H.loop, 1500);
	assert_false(H.a.tier.held_back);
	assert_true(H.a.tier.moved_kib > 0);
	assert_true(F.max_pass_kib <= 64 * MIB);
	th_finish(&H);
}

static void
conf_exclude(struct actuator_conf *c)
{
	conf_fakes(c);
	free(c->tier_exclude);
	c->tier_exclude = strdup("db-*, faul*");
}

static void
test_tier_exclude(void **state)
{
	(void)state;
	memset(&F, 0, sizeof(F));
	F.swap = true;
	F.avail_pct = 30;
	th_start(&H, vms, conf_exclude);
	tu_run_for(&H.loop, 4500);
	assert_true(H.a.tier.passes >= 3);
	assert_int_equal(H.a.tier.n, 1);
	assert_string_equal(H.a.tier.vms[0].id, "calm");
	assert_true(H.a.tier.vms[0].moved_total_kib > 0);
	th_finish(&H);
}

static void
test_tier_bad_nodes(void **state)
{
	struct actuator a;

	(void)state;
	memset(&a, 0, sizeof(a));
	a.conf.tier_mode = ACT_TIER_NODE;
	a.conf.tier_slow_nodes = (char *)"1-x";
	assert_int_equal(act_tier_start(&a), -EINVAL);
	/* mm-actuator -n says so, before any start. */
	assert_int_equal(act_conf_check(&a.conf, "actuator.conf"), -1);
	a.conf.tier_slow_nodes = (char *)"64";
	assert_int_equal(act_tier_start(&a), -EINVAL);
	assert_int_equal(act_conf_check(&a.conf, "actuator.conf"), -1);
	a.conf.tier_slow_nodes = (char *)"2-3,5";
	assert_int_equal(act_conf_check(&a.conf, "actuator.conf"), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tier_skipped),
		cmocka_unit_test(test_tier_swap),
		cmocka_unit_test(test_tier_sysmem_threshold),
		cmocka_unit_test(test_tier_exclude),
		cmocka_unit_test(test_tier_bad_nodes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
