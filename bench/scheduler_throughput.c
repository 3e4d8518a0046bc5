/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The policy engine's speed, in process: hosts of 50 VMs with drifting
 * usage and occasional pressure, decided round after round as the
 * scheduler does when their reports arrive. Prints VM-decisions per second
 * on one core for each algorithm, side by side in one run. (The broker
 * half of this benchmark, 1,000 hosts reporting through RabbitMQ, comes
 * with the scheduler daemon.)
 *
 *   scheduler_throughput [-H hosts] [-v vms-per-host] [-s seconds]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "policy.h"

#define GiB (1024ull * 1024ull)

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct fleet {
	size_t hosts;
	size_t vms;
	struct pe_guest *g;	/* hosts * vms */
	char (*ids)[24];
	struct pe_host *h;
	struct pe_state **st;
	struct pe_decision *out;
};

static void
fleet_init(struct fleet *f)
{
	size_t n = f->hosts * f->vms;

	f->g = calloc(n, sizeof(*f->g));
	f->ids = calloc(n, sizeof(*f->ids));
	f->h = calloc(f->hosts, sizeof(*f->h));
	f->st = calloc(f->hosts, sizeof(*f->st));
	f->out = calloc(f->vms, sizeof(*f->out));
	if (!f->g || !f->ids || !f->h || !f->st || !f->out) {
		perror("calloc");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		struct pe_guest *g = &f->g[i];
		uint64_t cur = (1 + rnd(8)) * GiB;

		snprintf(f->ids[i], sizeof(f->ids[i]), "vm-%zu", i);
		g->vm_id = f->ids[i];
		g->has_meminfo = g->has_balloon = g->has_psi = true;
		g->has_vmstat = true;
		g->total_kib = g->target_kib = g->actual_kib = cur;
		g->available_kib = rnd(cur);
		g->max_kib = 8 * GiB;
	}
	for (size_t h = 0; h < f->hosts; h++) {
		f->h[h].host_id = "bench";
		f->h[h].total_kib = f->vms * 5 * GiB;
		f->h[h].available_kib = f->vms * GiB;
		f->h[h].n_guests = f->vms;
		f->h[h].guests = &f->g[h * f->vms];
		f->h[h].time_ms = 1700000000000ull;
	}
}

static void
fleet_reset(struct fleet *f)
{
	for (size_t h = 0; h < f->hosts; h++) {
		pe_state_free(f->st[h]);
		f->st[h] = pe_state_new();
	}
}

/* One round: every host's report changes a little and is decided,
 * step_ms after the last. */
static void
round_step(struct fleet *f, const struct pe_policy *p, uint64_t step_ms)
{
	for (size_t h = 0; h < f->hosts; h++) {
		struct pe_host *hh = &f->h[h];

		for (size_t i = 0; i < f->vms; i++) {
			struct pe_guest *g = &f->g[h * f->vms + i];

			g->available_kib = rnd(g->total_kib);
			g->psi_some_avg10 = rnd(8) == 0 ? (double)rnd(40) : 0;
			g->major_faults += rnd(100);
		}
		hh->time_ms += step_ms;
		if (pe_decide(f->st[h], hh, p, f->out, f->vms) < 0) {
			fprintf(stderr, "pe_decide failed\n");
			exit(1);
		}
		for (size_t i = 0; i < f->vms; i++) {
			struct pe_guest *g = &f->g[h * f->vms + i];

			g->target_kib = g->actual_kib = g->total_kib =
			    f->out[i].target_kib;
		}
	}
}

static void
round_once(struct fleet *f, const struct pe_policy *p)
{
	round_step(f, p, 1000);
}

int
main(int argc, char **argv)
{
	struct fleet f = { .hosts = 1000, .vms = 50 };
	double seconds = 3;
	bool no_history = false, no_pool = false;
	int c;

	while ((c = getopt(argc, argv, "H:v:s:xp")) != -1) {
		switch (c) {
		case 'x':
			no_history = true;
			break;
		case 'p':
			no_pool = true;
			break;
		case 'H':
			f.hosts = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			f.vms = strtoul(optarg, NULL, 10);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		default:
			fprintf(stderr, "usage: scheduler_throughput [-H hosts] "
			    "[-v vms-per-host] [-s seconds] [-x] [-p]\n"
			    "  -x  pressure without its history term\n"
			    "  -p  pressure without its pool-level risk\n");
			return 2;
		}
	}
	if (f.hosts == 0 || f.vms == 0 || seconds <= 0)
		return 2;
	fleet_init(&f);
	printf("%zu hosts x %zu VMs, one core\n", f.hosts, f.vms);
	for (int a = 0; a < PE_ALGO_COUNT; a++) {
		struct pe_policy p;
		double t0, t;
		uint64_t rounds = 0;

		pe_policy_defaults(&p);
		p.algo = (enum pe_algo)a;
		if (no_history)
			p.history_hours = 0;
		if (no_pool)
			p.pool_hours = 0;
		fleet_reset(&f);
		/* Warm: a day of history first (a report an hour), so that
		 * the history term is measured too. */
		for (int hour = 0; hour < 25; hour++)
			round_step(&f, &p, 3600000);
		t0 = now_s();
		do {
			round_once(&f, &p);
			rounds++;
			t = now_s() - t0;
		} while (t < seconds);
		printf("%-9s %12.0f VM-decisions/s  (%.2f us per host of "
		    "%zu VMs)\n", pe_algo_name(p.algo),
		    (double)(rounds * f.hosts * f.vms) / t,
		    t * 1e6 / (double)(rounds * f.hosts), f.vms);
	}
	return 0;
}
