/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/reaction: how fast mm gives a real guest the memory it starts to
 * use. One TCG guest (tests/vm's image) under mm-collector, mm-scheduler
 * and mm-actuator on a real RabbitMQ steps its memory up N times
 * (mm_test_steps). The daemons use the kvm driver on a guest QEMU runs
 * for the benchmark, or (-d libvirt) the libvirt driver on a domain of a
 * libvirtd the benchmark starts for itself; -d both runs the two one
 * after the other and prints their figures side by side with the ratios
 * libvirt/kvm. For each step, on this process's clock:
 *   t0  the guest's console says it begins to allocate,
 *   th  ... and that it holds the step (TCG takes 150-750 ms to touch it),
 *   t1  the HostReport that decision was taken on arrives (agent ->
 *       virtio -> collector -> broker),
 *   t2  the scheduler's decision event sets a target that covers the
 *       guest's use after the step and half the pressure policy's
 *       headroom,
 *   t3  the actuator's result says the driver (QMP, or libvirt's
 *       virDomainSetMemoryFlags) set such a target.
 * A step whose use the target in force already covered when it began
 * needs nothing. For the others it prints p50 and p99 of each stage and
 * end to end, from the allocation's beginning (t3 - t0) and from its end
 * (t3 - th, 0 when the target came first: the guest never waited), with
 * the ratio to oVirt MOM's 10 s policy interval and xenmm's 2 s loop.
 *
 *   reaction [-Pv] [-d kvm|libvirt|both] [-n steps] [-s step_mib]
 *            [-p period_ms]
 * -v prints every decision for the guest with its reason; -P keeps the
 * pressure policy's growth step under pressure (grow_pct, grow_min_kib),
 * which grows the guest ahead of most steps.
 * Environment: MM_TEST_AMQP_URL (scripts/rabbitmq.sh env), MM_BINARY_DIR
 * (a build with the daemons and the vm image: ctest -R vm_image); the
 * libvirt driver needs root, libvirtd and virsh (tests/vm/libvirtd.h).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fleet.h"
#include "testutil.h"

#define MAXSTEPS	64
#define GUEST		"step"
#define MIB		1024ull

struct step {
	uint64_t t0, t1, t2, t3;	/* loop ms; 0: not yet */
	uint64_t th;			/* the guest holds the step */
	uint64_t full_kib;		/* used once the step is taken */
	uint64_t enough_kib;		/* a target that covers the step */
	uint64_t target_kib;		/* the covering decision's target */
	bool covered;			/* by the target in force at t0 */
};

/* The stages timed, from and to being indexes of a step's t0, t1, t2,
 * t3, th. */
enum { ST_REPORT, ST_DECISION, ST_APPLIED, ST_BEGIN, ST_HELD, NSTAGE };
static const struct {
	const char *name;
	unsigned from, to;
} stages[NSTAGE] = {
	{ "allocation begins -> report on the bus", 0, 1 },
	{ "report -> covering decision", 1, 2 },
	{ "decision -> balloon applied", 2, 3 },
	{ "allocation begins -> applied", 0, 3 },
	{ "allocation held -> applied", 4, 3 },
};

/* One driver's figures. */
struct figures {
	const char *driver;
	unsigned covered, served;	/* steps */
	size_t n[NSTAGE];		/* samples of each stage */
	uint64_t p50[NSTAGE], p99[NSTAGE];	/* ms */
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
	uint64_t applied_kib;		/* the latest target QMP took */
	uint64_t report_ms;		/* when the latest report came */
	uint64_t decisions, reports;
	bool verbose;		/* print every decision */
} B;

/* The steps begun so far: a report or a decision may come after the
 * next step began. */
static unsigned
begun(void)
{
	return B.cur < B.n ? B.cur : B.n;
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;

	(void)d;
	(void)arg;
	B.reports++;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];

		if (strcmp(g->vm_id, GUEST) != 0 || g->stale ||
		    !fleet_used_kib(g, &B.used_kib))
			continue;
		B.report_ms = clock_ms(CLOCK_MONOTONIC);
		if (B.verbose && B.cur > 0)
			printf("  [%llu ms] report: used %llu MiB (total %llu, "
			    "available %llu, balloon %llu MiB)\n",
			    (unsigned long long)(B.report_ms - B.s[1].t0),
			    (unsigned long long)B.used_kib / MIB,
			    (unsigned long long)g->meminfo->total_kib / MIB,
			    (unsigned long long)g->meminfo->available_kib / MIB,
			    g->vmstat != NULL ? (unsigned long long)
			    g->vmstat->balloon_pages / 256 : 0ull);
	}
	return BUS_ACK;
}

/* A decision for the guest: the step it covers, if any, is decided. */
static void
on_decision(const Mm__V1__VmDecision *vd)
{
	B.decisions++;
	if (B.verbose)
		printf("  [%llu ms] decision: %s\n",
		    (unsigned long long)(clock_ms(CLOCK_MONOTONIC) -
		    B.s[1].t0), vd->reason);
	/* The step's decision: the first since it began to set a target
	 * that covers it. */
	for (unsigned k = 1; k <= begun(); k++) {
		struct step *s = &B.s[k];

		if (s->t0 != 0 && !s->covered && s->t2 == 0 &&
		    vd->balloon_target_kib >= s->enough_kib) {
			/* Decided on the latest report. */
			s->t1 = B.report_ms > s->t0 ? B.report_ms : s->t0;
			s->t2 = clock_ms(CLOCK_MONOTONIC);
			s->target_kib = vd->balloon_target_kib;
		}
	}
	B.target_kib = vd->balloon_target_kib;
}

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	const Mm__V1__ActionResult *ar = e->result;
	Mm__V1__VmDecision vd;

	(void)d;
	(void)arg;
	if (e->kind == MM__V1__EVENT_KIND__EVENT_KIND_DECISION) {
		for (size_t i = 0; msg_event_vm(e, i, &vd); i++)
			if (strcmp(vd.vm_id, GUEST) == 0)
				on_decision(&vd);
		return BUS_ACK;
	}
	if (e->kind != MM__V1__EVENT_KIND__EVENT_KIND_RESULT || ar == NULL)
		return BUS_ACK;
	for (size_t i = 0; i < ar->n_results; i++) {
		const Mm__V1__CommandResult *c = ar->results[i];

		if (c->vm_id == NULL || strcmp(c->vm_id, GUEST) != 0 ||
		    c->status != MM__V1__RESULT_STATUS__RESULT_STATUS_OK)
			continue;
		B.applied_kib = c->balloon_target_kib;
		for (unsigned k = 1; k <= begun(); k++) {
			struct step *s = &B.s[k];

			if (s->t2 != 0 && s->t3 == 0 &&
			    c->balloon_target_kib >= s->enough_kib)
				s->t3 = clock_ms(CLOCK_MONOTONIC);
		}
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

/* Stage k over the steps that needed a new target, into fig; a stage
 * that ends before it begins (the target came while the guest was still
 * allocating) counts as 0. */
static void
stage(unsigned k, struct figures *fig)
{
	const unsigned from = stages[k].from, to = stages[k].to;
	uint64_t v[MAXSTEPS];
	size_t n = 0;

	for (unsigned i = 1; i <= B.n; i++) {
		const struct step *s = &B.s[i];
		const uint64_t t[] = { s->t0, s->t1, s->t2, s->t3, s->th };

		if (!s->covered && t[from] != 0 && t[to] != 0)
			v[n++] = t[to] > t[from] ? t[to] - t[from] : 0;
	}
	fig->n[k] = n;
	if (n == 0) {
		printf("  %-40s no samples\n", stages[k].name);
		return;
	}
	fig->p50[k] = pct(v, n, 50);
	fig->p99[k] = pct(v, n, 99);
	printf("  %-40s p50 %5llu ms  p99 %5llu ms  (%zu steps)\n",
	    stages[k].name, (unsigned long long)fig->p50[k],
	    (unsigned long long)fig->p99[k], n);
}

/* b - a in ms for printing, -1 when b never happened. */
static long long
rel(uint64_t b, uint64_t a)
{
	return b != 0 ? (long long)b - (long long)a : -1;
}

static unsigned
covered(void)
{
	unsigned n = 0;

	for (unsigned i = 1; i <= B.n; i++)
		n += B.s[i].covered;
	return n;
}

static bool
console_has(const char *needle)
{
	return vm_wait_console(B.vm, needle, 0, NULL, 0);
}

/* The two drivers' figures side by side, libvirt/kvm. */
static void
compare(const struct figures *kvm, const struct figures *lv)
{
	char r50[16], r99[16];

	printf("reaction: libvirt beside kvm, p50 / p99 in ms, ratio "
	    "libvirt/kvm (=: both 0)\n");
	printf("  %-40s %13s %13s %13s\n", "stage", "kvm", "libvirt",
	    "ratio");
	printf("  %-40s %13u %13u\n", "steps that needed a new target",
	    B.n - kvm->covered, B.n - lv->covered);
	for (unsigned k = 0; k < NSTAGE; k++) {
		char a[24], b[24], r[40];

		snprintf(a, sizeof(a), "%llu / %llu",
		    (unsigned long long)kvm->p50[k],
		    (unsigned long long)kvm->p99[k]);
		snprintf(b, sizeof(b), "%llu / %llu",
		    (unsigned long long)lv->p50[k],
		    (unsigned long long)lv->p99[k]);
		snprintf(r, sizeof(r), "%s / %s",
		    fleet_ratio(r50, sizeof(r50), (double)lv->p50[k],
		    (double)kvm->p50[k]),
		    fleet_ratio(r99, sizeof(r99), (double)lv->p99[k],
		    (double)kvm->p99[k]));
		if (kvm->n[k] == 0 || lv->n[k] == 0)
			snprintf(r, sizeof(r), "no samples");
		printf("  %-40s %13s %13s %13s\n", stages[k].name, a, b, r);
	}
}

/*
 * One run of the steps on driver ("kvm" or "libvirt"; libvirt: under a
 * libvirtd of the run's own) into *fig. params[0..nsteady) is the policy
 * of the steps, the two after it the settling one. Returns 0 when every
 * step was served, 1 when not or the guest did not boot.
 */
static int
run(const char *driver, unsigned step_mib, unsigned period_ms,
    const struct fleet_param *params, size_t nsteady, struct figures *fig)
{
	char workload[128], needle[64], held[64];
	struct libvirtd *lv = NULL;
	unsigned mem_mib, served = 0;
	bool booted;
	uint64_t t;

	{
		unsigned n = B.n;
		bool verbose = B.verbose;

		memset(&B, 0, sizeof(B));
		B.n = n;
		B.verbose = verbose;
	}
	memset(fig, 0, sizeof(*fig));
	fig->driver = driver;
	B.step_kib = step_mib * MIB;
	mem_mib = 256 + B.n * step_mib + 256;
	if (strcmp(driver, "libvirt") == 0) {
		if ((lv = fleet_libvirtd_start()) == NULL)
			return 1;
		fleet_use_libvirt(&B.f, lv);
	}
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
	booted = B.vm != NULL;
	if (!booted)
		goto out;
	printf("reaction: %s driver, %s guest of %u MiB (boot %.1f s), %u "
	    "steps of %u MiB every %u ms\n", driver, vm_accel(), mem_mib,
	    B.vm->boot_s, B.n, step_mib, period_ms);
	/* Settled: then the default hold and steps down, so what follows
	 * is growth alone. */
	t = clock_ms(CLOCK_MONOTONIC) + 35000;
	while (clock_ms(CLOCK_MONOTONIC) < t && (B.used_kib == 0 ||
	    B.target_kib == 0 || B.target_kib > B.used_kib + 256 * MIB))
		tu_run_for(&B.f.loop, 100);
	fleet_policy(&B.f, 2, 0, params, nsteady);
	t = clock_ms(CLOCK_MONOTONIC) + 60000;
	while (clock_ms(CLOCK_MONOTONIC) < t && !console_has("steps: begin 1."))
		tu_run_for(&B.f.loop, 50);
	B.base_kib = B.used_kib;
	printf("reaction: before the steps the guest uses %llu MiB, target "
	    "%llu MiB\n", (unsigned long long)B.base_kib / MIB,
	    (unsigned long long)B.target_kib / MIB);
	for (B.cur = 1; B.cur <= B.n; B.cur++) {
		struct step *s = &B.s[B.cur];

		snprintf(needle, sizeof(needle), "steps: begin %u.", B.cur);
		t = clock_ms(CLOCK_MONOTONIC) + 30000;
		while (clock_ms(CLOCK_MONOTONIC) < t && !console_has(needle))
			tu_run_for(&B.f.loop, 2);
		s->t0 = clock_ms(CLOCK_MONOTONIC);
		/* From the use last reported, settled since the last
		 * step: what the guest drops under a tight balloon (page
		 * cache, slab) does not count against the step. */
		s->full_kib = B.used_kib + B.step_kib;
		/* Enough: the step and half the pressure policy's
		 * headroom (the larger of 128 MiB and 10 % of use). */
		s->enough_kib = s->full_kib + (s->full_kib / 10 > 128 * MIB ?
		    s->full_kib / 10 : 128 * MIB) / 2;
		s->covered = B.applied_kib >= s->enough_kib;
		/* Until it is held and covered, or the next step begins. */
		snprintf(held, sizeof(held), "steps: held %llu MiB",
		    (unsigned long long)(B.cur * B.step_kib / MIB));
		snprintf(needle, sizeof(needle), "steps: begin %u.",
		    B.cur + 1);
		t = clock_ms(CLOCK_MONOTONIC) + period_ms + 5000;
		while (clock_ms(CLOCK_MONOTONIC) < t && (s->th == 0 ||
		    (s->t3 == 0 && !s->covered)) && !console_has(needle)) {
			tu_run_for(&B.f.loop, 2);
			if (s->th == 0 && console_has(held))
				s->th = clock_ms(CLOCK_MONOTONIC);
		}
	}
	for (unsigned i = 1; i <= B.n; i++) {
		const struct step *s = &B.s[i];

		if (s->covered || s->t3 != 0)
			served++;
		if (s->covered) {
			printf("  step %2u at %6llu ms: held +%lld, report "
			    "+%lld ms; covered by the target in force\n", i,
			    (unsigned long long)(s->t0 - B.s[1].t0),
			    rel(s->th, s->t0), rel(s->t1, s->t0));
			continue;
		}
		printf("  step %2u at %6llu ms: held +%lld, report +%lld, "
		    "decision +%lld, applied +%lld ms (target %llu MiB, "
		    "enough %llu MiB)\n", i,
		    (unsigned long long)(s->t0 - B.s[1].t0), rel(s->th, s->t0),
		    rel(s->t1, s->t0), rel(s->t2, s->t0), rel(s->t3, s->t0),
		    (unsigned long long)s->target_kib / MIB,
		    (unsigned long long)s->enough_kib / MIB);
	}
	fig->covered = covered();
	fig->served = served;
	printf("reaction: %s: %llu reports, %llu decisions; %u of %u steps "
	    "were covered by the target in force when they began\n",
	    driver, (unsigned long long)B.reports,
	    (unsigned long long)B.decisions, fig->covered, B.n);
	for (unsigned k = 0; k < NSTAGE; k++)
		stage(k, fig);
	if (fig->p99[ST_BEGIN] != 0 || fig->p99[ST_HELD] != 0)
		printf("  p99 vs MOM's 10 s policy interval: %.3f from the "
		    "beginning, %.3f from the end; vs xenmm's 2 s loop: %.3f, "
		    "%.3f\n", (double)fig->p99[ST_BEGIN] / 10000,
		    (double)fig->p99[ST_HELD] / 10000,
		    (double)fig->p99[ST_BEGIN] / 2000,
		    (double)fig->p99[ST_HELD] / 2000);
out:
	/* The actuator, the guest (or its domain), the rest. */
	fleet_close(&B.f);
	fleet_libvirtd_stop(lv);
	/* Every step served, the guest never short for long. */
	return booted && served == B.n ? 0 : 1;
}

int
main(int argc, char **argv)
{
	/* Growth only from the step itself: no buffer above the need (it
	 * would hide the next steps), and, unless -P, no step more under
	 * pressure (half the target: it covers the next steps too), so each
	 * one asks for a new target. Emulated guests stall now and then:
	 * PSI below 20 % is that. */
	struct fleet_param params[8] = {
		{ "spare_pct", 0 },
		{ "deadband_pct", 2 },
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
	};
	static const char *const usage = "usage: reaction [-Pv] "
	    "[-d kvm|libvirt|both] [-n steps] [-s step_mib] [-p period_ms]\n";
	size_t nsteady = 4;
	bool pressure_steps = false;
	unsigned period_ms = 3000, step_mib = 96;
	const char *driver = "kvm";
	struct figures fig[2];
	int c, rc = 0;

	B.n = 20;
	while ((c = getopt(argc, argv, "d:n:s:p:Pvh")) != -1) {
		switch (c) {
		case 'd':
			driver = optarg;
			break;
		case 'v':
			B.verbose = true;
			break;
		case 'P':
			pressure_steps = true;
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
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	if (B.n == 0 || B.n >= MAXSTEPS || step_mib < 64 || period_ms < 500) {
		fprintf(stderr, "reaction: 1..63 steps of at least 64 MiB, "
		    "at least 500 ms apart\n");
		return 2;
	}
	if (!pressure_steps) {
		params[nsteady++] = (struct fleet_param){ "grow_pct", 0 };
		params[nsteady++] = (struct fleet_param){ "grow_min_kib", 0 };
	}
	/* Until the steps: shrink to the need quickly. */
	params[nsteady] = (struct fleet_param){ "hold_ms", 2000 };
	params[nsteady + 1] = (struct fleet_param){ "shrink_pct", 50 };
	if (!fleet_require_driver(driver)) {
		fputs(usage, stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(driver, "both") != 0)
		return run(driver, step_mib, period_ms, params, nsteady,
		    &fig[0]);
	rc |= run("kvm", step_mib, period_ms, params, nsteady, &fig[0]);
	rc |= run("libvirt", step_mib, period_ms, params, nsteady, &fig[1]);
	compare(&fig[0], &fig[1]);
	return rc;
}
