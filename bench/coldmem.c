/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/coldmem: host memory held by guests with a cold working set, side
 * by side in one run under three setups (issue 18). Three real guests of
 * 1536 MiB with a zram swap each take 1 GiB and keep 200 MiB of it hot
 * (mm_test_cold); their agents estimate cold memory every 5 s. Under the
 * real daemons (pressure policy, kvm driver), each setup on fresh guests:
 *   balloon   today: balloon targets follow use; no free page reporting
 *   reporting + the balloons' free page reporting
 *   reclaim   + proactive reclaim: every VM opted in (reclaim = yes),
 *             cold after 5 s, a stall budget of 10 %
 * Printed per setup after the same time: the guests' QEMU resident memory
 * together (what the host holds for them), their balloons together, and
 * the time the guests stalled on memory (PSI some total, the hot sets'
 * cost), from the collector's reports.
 *
 *   coldmem [-t seconds]   (each setup runs that long after the
 *                            workloads took their memory; default 90)
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"
#include "testutil.h"

#define NVM	3
#define MIB	1024ull

static const char *const names[NVM] = { "c0", "c1", "c2" };

struct gstat {
	bool seen;
	uint64_t psi0, psi;		/* PSI some total, us */
	uint64_t actual_kib;
};

static struct {
	struct fleet f;
	struct gstat g[NVM];
	bool measuring;
} C;

struct setup {
	const char *name;
	bool reporting;
	bool reclaim;
	uint64_t rss_kib, balloon_kib;
	double stall_s;
};

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;

	(void)d;
	(void)arg;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];

		for (int k = 0; k < NVM; k++) {
			struct gstat *s = &C.g[k];

			if (strcmp(g->vm_id, names[k]) != 0)
				continue;
			if (g->has_balloon_actual_kib)
				s->actual_kib = g->balloon_actual_kib;
			if (!C.measuring || g->stale || g->psi == NULL ||
			    !g->psi->has_some_total_us)
				continue;
			if (!s->seen) {
				s->seen = true;
				s->psi0 = g->psi->some_total_us;
			}
			s->psi = g->psi->some_total_us;
		}
	}
	return BUS_ACK;
}

static void
run(struct setup *st, unsigned seconds)
{
	static const struct fleet_param params[] = {
		{ "reclaim_idle_ms", 5000 },
		{ "reclaim_psi_budget_pct", 10 },
		{ "reclaim_interval_ms", 30000 },
	};
	static Mm__V1__VmLimits lim = MM__V1__VM_LIMITS__INIT;
	static Mm__V1__VmRule rule = MM__V1__VM_RULE__INIT;
	static Mm__V1__VmRule *rules[] = { &rule };
	struct vm *vm[NVM];

	memset(&C, 0, sizeof(C));
	C.f.on_report = on_report;
	if (st->reclaim) {
		lim.has_reclaim = lim.reclaim = true;
		rule.pattern = "*";
		rule.limits = &lim;
		C.f.rules = rules;
		C.f.n_rules = 1;
	}
	fleet_open(&C.f, "coldmem");
	fleet_start_collector(&C.f, NULL);
	fleet_start_actuator(&C.f, NULL);
	for (int k = 0; k < NVM; k++) {
		struct vm_opts o = {
			.id = names[k],
			.mem_mib = 1536,
			.workload = "mm_test_cold:1024M:200M",
			.interval = "500ms",
			.resend = "1s",
			.cold = "5s",
			.zram = true,
			.no_free_page_reporting = !st->reporting,
		};

		vm[k] = fleet_boot_opts(&C.f, &o);
		if (vm[k] == NULL)
			exit(1);
	}
	for (int k = 0; k < NVM; k++)
		if (!vm_wait_console(vm[k], "cold: touched", 120000, NULL, 0)) {
			vm_dump_console(vm[k]);
			exit(1);
		}
	fleet_start_scheduler(&C.f, 0, params,
	    sizeof(params) / sizeof(params[0]));
	C.measuring = true;
	tu_run_for(&C.f.loop, seconds * 1000);
	st->rss_kib = st->balloon_kib = 0;
	st->stall_s = 0;
	for (int k = 0; k < NVM; k++) {
		st->rss_kib += vm_resident_kib(vm[k]);
		st->balloon_kib += C.g[k].actual_kib;
		st->stall_s += (double)(C.g[k].psi - C.g[k].psi0) / 1e6;
	}
	printf("%-10s host holds %5llu MiB for the guests (QEMU resident), "
	    "balloons %5llu MiB, guests stalled %.2f s\n", st->name,
	    (unsigned long long)st->rss_kib / MIB,
	    (unsigned long long)st->balloon_kib / MIB, st->stall_s);
	fflush(stdout);
	fleet_close(&C.f);
}

int
main(int argc, char **argv)
{
	struct setup s[3] = {
		{ "balloon", false, false, 0, 0, 0 },
		{ "reporting", true, false, 0, 0, 0 },
		{ "reclaim", true, true, 0, 0, 0 },
	};
	unsigned seconds = 90;
	int c;

	while ((c = getopt(argc, argv, "t:h")) != -1) {
		switch (c) {
		case 't':
			seconds = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: coldmem [-t seconds]\n");
			return 2;
		}
	}
	vm_require();
	tu_broker_url();
	printf("coldmem: %d guests of 1536 MiB, each 1024 MiB taken and 200 "
	    "MiB of it hot; %u s under mm per setup\n", NVM, seconds);
	for (int i = 0; i < 3; i++)
		run(&s[i], seconds);
	printf("ratio to balloon: reporting %.2f, reclaim %.2f (host memory "
	    "held); stall %.2f, %.2f, %.2f s\n",
	    (double)s[1].rss_kib / (double)s[0].rss_kib,
	    (double)s[2].rss_kib / (double)s[0].rss_kib, s[0].stall_s,
	    s[1].stall_s, s[2].stall_s);
	return 0;
}
