/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How much host memory each balloon policy needs for a workload: synthetic
 * traces (ramps, bursts, diurnal cycles, step changes, many idle VMs, and
 * instantaneous spikes as the worst case) replayed through the policy
 * engine by common/replay.c, as `mmctl sim --policy all --find-capacity`
 * does, at two shortfall bounds. Prints a table; passes or fails nothing.
 *
 *   policy_quality [-o DIR]   (-o also writes each trace as CSV there)
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"

#define MiB	1024ull
#define GiB	(1024ull * 1024ull)
#define STEP	10		/* seconds between samples */
#define HOURS	2

static uint64_t rng = 0x2545f4914f6cdd1dull;

static double
frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

static void
add(struct rp_trace *t, uint64_t s, int vm, double used, uint64_t max)
{
	char name[16];

	if (used < 32 * MiB)
		used = 32 * MiB;
	if (used > (double)max)
		used = (double)max;
	snprintf(name, sizeof(name), "vm-%02d", vm);
	if (rp_trace_add(t, s, name, (uint64_t)used, max) < 0) {
		fprintf(stderr, "policy_quality: trace error\n");
		exit(1);
	}
}

/* The seed's mm_test_mono: 50 MiB up to 3 GiB and back, phase-shifted. */
static void
gen_ramps(struct rp_trace *t)
{
	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 8; v++) {
			double ph = fmod((double)s / 1200.0 + v / 8.0, 1.0);
			double x = ph < 0.5 ? 2 * ph : 2 * (1 - ph);

			add(t, s, v, 50 * MiB + x * (3 * GiB - 50 * MiB),
			    4 * GiB);
		}
}

/* 500 MiB at rest, bursts to 3 GiB for 2-5 min, climbing over 30 s. */
static void
gen_bursts(struct rp_trace *t)
{
	double start[8], len[8];

	for (int v = 0; v < 8; v++)
		start[v] = -1;
	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 8; v++) {
			double in, u = 500 * MiB;

			if (start[v] < 0 && frand() < 0.004) {
				start[v] = (double)s;
				len[v] = 120 + frand() * 180;
			}
			if (start[v] >= 0) {
				in = (double)s - start[v];
				if (in > len[v] + 30)
					start[v] = -1;
				else if (in < 30)
					u += in / 30 * 2.5 * GiB;
				else if (in < len[v])
					u = 3 * GiB;
				else
					u += (1 - (in - len[v]) / 30) * 2.5 *
					    GiB;
			}
			add(t, s, v, u, 4 * GiB);
		}
}

/* A day compressed into two hours: 20 % to 80 % of 8 GiB, phases spread
 * over four hours so peaks only partly overlap. */
static void
gen_diurnal(struct rp_trace *t)
{
	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 12; v++) {
			double ph = 2 * M_PI * ((double)s / 7200.0 + v / 24.0);
			double x = 0.5 + 0.3 * sin(ph) + 0.02 * (frand() - 0.5);

			add(t, s, v, x * 8 * GiB, 8 * GiB);
		}
}

/* Levels that change now and then: 0.5, 1.5 or 3 GiB. */
static void
gen_steps(struct rp_trace *t)
{
	static const double levels[] = { 0.5, 1.5, 3.0 };
	int level[8] = { 0 };

	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 8; v++) {
			if (frand() < 0.005)
				level[v] = (int)(frand() * 3);
			add(t, s, v, levels[level[v]] * GiB, 4 * GiB);
		}
}

/* Forty idle 2 GiB VMs and one that works. */
static void
gen_idle(struct rp_trace *t)
{
	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 41; v++) {
			double u = v == 40 ? (1 + sin((double)s / 600)) *
			    GiB : 200 * MiB + frand() * 100 * MiB;

			add(t, s, v, u, 2 * GiB);
		}
}

/* The worst case: 500 MiB to 3 GiB within one sample. */
static void
gen_spikes(struct rp_trace *t)
{
	for (uint64_t s = 0; s < HOURS * 3600; s += STEP)
		for (int v = 0; v < 8; v++)
			add(t, s, v, ((s / 300 + (uint64_t)v) % 5 == 0 ? 3 :
			    0.5) * GiB, 4 * GiB);
}

static const struct {
	const char *name;
	void (*gen)(struct rp_trace *);
} traces[] = {
	{ "ramps", gen_ramps },
	{ "bursts", gen_bursts },
	{ "diurnal", gen_diurnal },
	{ "steps", gen_steps },
	{ "idle", gen_idle },
	{ "spikes", gen_spikes },
};

static void
write_csv(const struct rp_trace *t, const char *dir, const char *name)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.csv", dir, name);
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		return;
	}
	fprintf(f, "time_s,vm,used_kib,max_kib\n");
	for (size_t i = 0; i < t->n; i++)
		fprintf(f, "%llu,%s,%llu,%llu\n",
		    (unsigned long long)t->samples[i].time_s,
		    t->names[t->samples[i].vm],
		    (unsigned long long)t->samples[i].used_kib,
		    (unsigned long long)t->samples[i].max_kib);
	fclose(f);
}

int
main(int argc, char **argv)
{
	static const double bounds[] = { 0.1, 1.0 };
	const char *dir = NULL;
	int c;

	while ((c = getopt(argc, argv, "o:")) != -1) {
		if (c != 'o') {
			fprintf(stderr, "usage: policy_quality [-o dir]\n");
			return 2;
		}
		dir = optarg;
	}
	printf("%-8s %-18s %8s | %12s %7s %8s | %12s %7s %8s\n", "trace",
	    "policy", "prov GiB", "GiB @0.1%", "saved", "commands",
	    "GiB @1%", "saved", "commands");
	for (size_t i = 0; i < sizeof(traces) / sizeof(*traces); i++) {
		struct rp_trace t;

		memset(&t, 0, sizeof(t));
		traces[i].gen(&t);
		if (dir != NULL)
			write_csv(&t, dir, traces[i].name);
		for (size_t a = 0; rp_variant_name(a) != NULL; a++) {
			struct rp_result r[2];
			struct pe_policy p;

			(void)rp_variant_policy(rp_variant_name(a), &p);
			for (int b = 0; b < 2; b++)
				if (rp_find_capacity(&t, &p, bounds[b],
				    &r[b]) < 0)
					return 1;
			printf("%-8s %-18s %8.1f | %12.1f %6.1f%% %8llu | "
			    "%12.1f %6.1f%% %8llu%s\n", traces[i].name,
			    rp_variant_name(a),
			    (double)r[0].provisioned_kib / GiB,
			    (double)r[0].capacity_kib / GiB, r[0].saved_pct,
			    (unsigned long long)r[0].commands,
			    (double)r[1].capacity_kib / GiB, r[1].saved_pct,
			    (unsigned long long)r[1].commands,
			    r[0].shortfall_pct > 0.1 ? "  (0.1% not "
			    "reachable)" : "");
		}
		rp_trace_free(&t);
	}
	return 0;
}
