/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/reaction: how fast mm gives a real guest the memory it starts to
 * use. One TCG guest (tests/vm's image) under mm-collector, mm-scheduler
 * and mm-actuator (kvm driver) on a real RabbitMQ steps its memory up N
 * times (mm_test_steps). For each step, on this process's clock:
 *   t0  the guest's console says it begins to allocate,
 *   t1  a HostReport shows the guest using the new step (agent -> virtio
 *       -> collector -> broker),
 *   t2  the scheduler's decision event raises its target,
 *   t3  the actuator's result says QMP set that target.
 * Prints p50 and p99 of each stage and end to end (t3 - t0), with the
 * ratio to oVirt MOM's 10 s policy interval and xenmm's 2 s loop.
 *
 *   reaction [-v] [-n steps] [-s step_mib] [-p period_ms]
 * -v prints every decision for the guest with its reason.
 * Environment: MM_TEST_AMQP_URL (scripts/rabbitmq.sh env), MM_BINARY_DIR
 * (a build with the daemons and the vm image: ctest -R vm_image).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fleet.h"
#include "testutil.h"

#define MAXSTEPS	64
#define GUEST		"step"
#define MIB		1024ull

struct step {
	uint64_t t0, t1, t2, t3;	/* loop ms; 0: not yet */
	uint64_t want_used_kib;		/* used once the step is taken */
	uint64_t target_kib;		/* the decision's target */
};

static struct {
	struct fleet f;
	struct vm *vm;
	struct step s[MAXSTEPS];
	unsigned n, cur;		/* steps; the one being timed (1..n) */
	uint64_t step_kib;
	uint64_t base_kib;		/* used before the first step */
	uint64_t used_kib;		/* in the latest report */
	uint64_t target_kib;		/* the latest decided target */
	uint64_t decisions, reports;
	bool verbose;		/* print every decision */
} B;

/* The loop's clock is cached per turn: one drain of report, decision and
 * result would look simultaneous. */
static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct step *s = &B.s[B.cur];

	(void)d;
	(void)arg;
	B.reports++;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];

		if (strcmp(g->vm_id, GUEST) != 0 || g->stale ||
		    !fleet_used_kib(g, &B.used_kib))
			continue;
		if (B.cur > 0 && s->t0 != 0 && s->t1 == 0 &&
		    B.used_kib >= s->want_used_kib)
			s->t1 = now_ms();
	}
	return BUS_ACK;
}

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	struct step *s = &B.s[B.cur];
	const Mm__V1__ActionResult *ar = e->result;

	(void)d;
	(void)arg;
	if (e->kind == MM__V1__EVENT_KIND__EVENT_KIND_DECISION &&
	    e->vm_id != NULL && strcmp(e->vm_id, GUEST) == 0) {
		B.decisions++;
		if (B.verbose)
			printf("  [%llu ms] decision: %s\n",
			    (unsigned long long)(now_ms() -
			    B.s[1].t0), e->reason);
		/* The step's decision: the first to raise the target
		 * after the guest's use was reported. */
		if (B.cur > 0 && s->t1 != 0 && s->t2 == 0 &&
		    e->balloon_target_kib > B.target_kib) {
			s->t2 = now_ms();
			s->target_kib = e->balloon_target_kib;
		}
		B.target_kib = e->balloon_target_kib;
		return BUS_ACK;
	}
	if (e->kind != MM__V1__EVENT_KIND__EVENT_KIND_RESULT || ar == NULL ||
	    B.cur == 0 || s->t2 == 0 || s->t3 != 0)
		return BUS_ACK;
	for (size_t i = 0; i < ar->n_results; i++) {
		const Mm__V1__CommandResult *c = ar->results[i];

		if (c->vm_id != NULL && strcmp(c->vm_id, GUEST) == 0 &&
		    c->balloon_target_kib >= s->target_kib &&
		    c->status == MM__V1__RESULT_STATUS__RESULT_STATUS_OK)
			s->t3 = now_ms();
	}
	return BUS_ACK;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n values (sorted in place). */
static uint64_t
pct(uint64_t *v, size_t n, double p)
{
	size_t k;

	qsort(v, n, sizeof(*v), cmp_u64);
	k = (size_t)(p / 100.0 * (double)n + 0.999999);
	return v[k == 0 ? 0 : k - 1];
}

static void
stage(const char *name, unsigned from, unsigned to)
{
	uint64_t v[MAXSTEPS];
	size_t n = 0;

	for (unsigned i = 1; i <= B.n; i++) {
		const uint64_t *t = &B.s[i].t0;

		if (t[from] != 0 && t[to] != 0 && t[to] >= t[from])
			v[n++] = t[to] - t[from];
	}
	if (n == 0) {
		printf("  %-34s no samples\n", name);
		return;
	}
	printf("  %-34s p50 %5llu ms  p99 %5llu ms  (%zu of %u steps)\n",
	    name, (unsigned long long)pct(v, n, 50),
	    (unsigned long long)pct(v, n, 99), n, B.n);
}

static bool console_has(const char *needle)
{
	return vm_wait_console(B.vm, needle, 0, NULL, 0);
}

int
main(int argc, char **argv)
{
	/* Growth only from the step itself: no buffer above the need (it
	 * would hide the next steps), so each one asks for a new target.
	 * Emulated guests stall now and then: PSI below 20 % is that. */
	static const struct fleet_param params[] = {
		{ "spare_pct", 0 },
		{ "deadband_pct", 2 },
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
		/* Until the steps: shrink to the need quickly. */
		{ "hold_ms", 2000 },
		{ "shrink_pct", 50 },
	};
	const size_t nsteady = 4;
	unsigned period_ms = 3000, step_mib = 96, mem_mib;
	char workload[128], needle[64];
	uint64_t e2e[MAXSTEPS], t;
	size_t ne = 0;
	int c;

	B.n = 20;
	while ((c = getopt(argc, argv, "n:s:p:vh")) != -1) {
		switch (c) {
		case 'v':
			B.verbose = true;
			break;
		case 'n':
			B.n = (unsigned)atoi(optarg);
			break;
		case 's':
			step_mib = (unsigned)atoi(optarg);
			break;
		case 'p':
			period_ms = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: reaction [-v] [-n steps] "
			    "[-s step_mib] [-p period_ms]\n");
			return 2;
		}
	}
	if (B.n == 0 || B.n >= MAXSTEPS || step_mib < 64 || period_ms < 500) {
		fprintf(stderr, "reaction: 1..63 steps of at least 64 MiB, "
		    "at least 500 ms apart\n");
		return 2;
	}
	vm_require();
	setvbuf(stdout, NULL, _IOLBF, 0);
	B.step_kib = step_mib * MIB;
	mem_mib = 256 + B.n * step_mib + 256;
	B.f.on_report = on_report;
	B.f.on_event = on_event;
	fleet_open(&B.f, "reaction");
	fleet_start_scheduler(&B.f, 0, params, nsteady + 2);
	fleet_start_collector(&B.f, NULL);
	fleet_start_actuator(&B.f, NULL);
	/* 40 s for the host to shrink the guest to its need first. */
	snprintf(workload, sizeof(workload), "mm_test_steps:%uM:%u:%u:40000",
	    step_mib, B.n, period_ms);
	B.vm = fleet_boot(&B.f, GUEST, mem_mib, workload);
	if (B.vm == NULL) {
		fleet_close(&B.f);
		return 1;
	}
	printf("reaction: %s guest of %u MiB (boot %.1f s), %u steps of %u "
	    "MiB every %u ms\n", vm_accel(), mem_mib, B.vm->boot_s, B.n,
	    step_mib, period_ms);
	/* Settled: then the default hold and steps down, so what follows
	 * is growth alone. */
	t = now_ms() + 35000;
	while (now_ms() < t && (B.used_kib == 0 ||
	    B.target_kib == 0 || B.target_kib > B.used_kib + 256 * MIB))
		tu_run_for(&B.f.loop, 100);
	fleet_policy(&B.f, 2, 0, params, nsteady);
	t = now_ms() + 60000;
	while (now_ms() < t && !console_has("steps: begin 1."))
		tu_run_for(&B.f.loop, 50);
	B.base_kib = B.used_kib;
	printf("reaction: before the steps the guest uses %llu MiB, target "
	    "%llu MiB\n", (unsigned long long)B.base_kib / MIB,
	    (unsigned long long)B.target_kib / MIB);
	for (B.cur = 1; B.cur <= B.n; B.cur++) {
		struct step *s = &B.s[B.cur];

		snprintf(needle, sizeof(needle), "steps: begin %u.", B.cur);
		t = now_ms() + 30000;
		while (now_ms() < t && !console_has(needle))
			tu_run_for(&B.f.loop, 2);
		s->t0 = now_ms();
		s->want_used_kib = B.base_kib + B.cur * B.step_kib -
		    B.step_kib / 4;
		/* Until it is applied, or the next step begins. */
		snprintf(needle, sizeof(needle), "steps: begin %u.",
		    B.cur + 1);
		t = now_ms() + period_ms + 5000;
		while (now_ms() < t && s->t3 == 0 &&
		    !console_has(needle))
			tu_run_for(&B.f.loop, 5);
	}
	for (unsigned i = 1; i <= B.n; i++) {
		char line[128];
		unsigned alloc = 0, mib;

		snprintf(needle, sizeof(needle), "steps: held %llu MiB",
		    (unsigned long long)(i * B.step_kib / MIB));
		if (vm_wait_console(B.vm, needle, 0, line, sizeof(line)))
			sscanf(strstr(line, "steps:"), "steps: held %u MiB "
			    "(%u ms)", &mib, &alloc);
		printf("  step %2u at %6llu ms (the guest took %u ms to "
		    "allocate): report +%lld, decision +%lld, applied +%lld ms "
		    "(target %llu MiB)\n", i,
		    (unsigned long long)(B.s[i].t0 - B.s[1].t0), alloc,
		    B.s[i].t1 ? (long long)(B.s[i].t1 - B.s[i].t0) : -1,
		    B.s[i].t2 ? (long long)(B.s[i].t2 - B.s[i].t0) : -1,
		    B.s[i].t3 ? (long long)(B.s[i].t3 - B.s[i].t0) : -1,
		    (unsigned long long)B.s[i].target_kib / MIB);
	}
	printf("reaction: %llu reports, %llu decisions\n",
	    (unsigned long long)B.reports, (unsigned long long)B.decisions);
	{
		unsigned ahead = 0;

		for (unsigned i = 1; i <= B.n; i++)
			if (B.s[i].t1 != 0 && B.s[i].t2 == 0 &&
			    B.target_kib > 0)
				ahead++;
		printf("  %u of %u steps needed no new target: the one in "
		    "force already covered them\n", ahead, B.n);
	}
	stage("allocation -> report on the bus", 0, 1);
	stage("report -> scheduler's decision", 1, 2);
	stage("decision -> QMP balloon applied", 2, 3);
	stage("end to end (allocation -> applied)", 0, 3);
	for (unsigned i = 1; i <= B.n; i++)
		if (B.s[i].t3 != 0)
			e2e[ne++] = B.s[i].t3 - B.s[i].t0;
	if (ne > 0) {
		uint64_t p50 = pct(e2e, ne, 50), p99 = pct(e2e, ne, 99);

		printf("  end to end vs MOM's 10 s policy interval: p50 %.3f, "
		    "p99 %.3f; vs xenmm's 2 s loop: p50 %.3f, p99 %.3f\n",
		    (double)p50 / 10000, (double)p99 / 10000,
		    (double)p50 / 2000, (double)p99 / 2000);
	}
	vm_stop(B.vm);
	fleet_close(&B.f);
	return ne == B.n ? 0 : 1;
}
