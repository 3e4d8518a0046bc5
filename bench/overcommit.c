/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench/overcommit: three real guests share less memory than they may
 * each grow to, and ramp one after the other (mm_test_mono 50 MiB ->
 * 500 MiB -> 50 MiB). Run twice on the same guests and budget:
 *   static  each balloon set once to a third of the budget (QMP), as an
 *           operator without mm would split the host;
 *   mm      mm-scheduler (pressure policy, its guest pool set to the
 *           budget with guest_capacity_kib) and mm-actuator move the
 *           memory.
 * mm-collector runs in both, and the figures come from its reports: per
 * guest the OOM kills (vmstat oom_kill) and the time stalled on memory
 * (PSI some total), and the most the three balloons held at once.
 * The daemons use the kvm driver on guests QEMU runs for the benchmark
 * (the static split over a QMP monitor of its own), or (-d libvirt) the
 * libvirt driver on domains of a libvirtd the benchmark starts for itself
 * (the static split with virsh setmem --live); -d both runs the two one
 * after the other and prints their figures side by side with the ratios
 * libvirt/kvm.
 *
 *   overcommit [-v] [-d kvm|libvirt|both] [-b budget_mib] [-g gap_s]
 *              [-o static|mm]
 * -v prints every decision; -o runs one side only.
 * Environment: as bench/reaction.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fleet.h"
#include "libvirtd.h"
#include "testutil.h"

#define NVM		3
#define MAX_MIB		768
#define MIB		1024ull

struct gstat {
	bool seen;
	uint64_t oom0, oom;		/* oom_kill at the first, last report */
	uint64_t psi0, psi;		/* PSI some total, us */
	uint64_t actual_kib;
};

static const char *const names[NVM] = { "a", "b", "c" };

/* One side's figures (static or mm) under one driver. */
struct side {
	bool ran;
	unsigned oom, done;	/* OOM kills, ramps done, of the three */
	double stall_s;		/* PSI some, the three together */
	uint64_t max_sum_mib;	/* most the balloons held at once */
	uint64_t wall_s;	/* booted until every ramp ended (or gave up) */
};

static struct {
	struct fleet f;
	struct vm *vms[NVM];
	struct gstat g[NVM];
	uint64_t max_sum_kib;		/* most the balloons held at once */
	bool ramping;			/* the first ramp has begun */
	int verbose;			/* 1: decisions, 2: a's reports */
	uint64_t t0;
} O;

static enum bus_disposition
on_event(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__Event *e = (const Mm__V1__Event *)m;
	Mm__V1__VmDecision vd;

	(void)d;
	(void)arg;
	if (!O.verbose || e->kind != MM__V1__EVENT_KIND__EVENT_KIND_DECISION)
		return BUS_ACK;
	for (size_t i = 0; msg_event_vm(e, i, &vd); i++)
		printf("  [%5.1f s] %s: %s\n",
		    (double)(uv_now(&O.f.loop) - O.t0) / 1000, vd.vm_id,
		    vd.reason != NULL ? vd.reason : "");
	return BUS_ACK;
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	uint64_t sum = 0;

	(void)d;
	(void)arg;
	for (size_t i = 0; i < r->n_guests; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];
		struct gstat *s = NULL;

		for (int k = 0; k < NVM; k++)
			if (strcmp(g->vm_id, names[k]) == 0)
				s = &O.g[k];
		if (s == NULL)
			continue;
		if (O.verbose > 1 && s == &O.g[0]) {
			uint64_t used = 0;

			fleet_used_kib(g, &used);
			printf("  [%5.1f s] a: used %llu MiB, total %llu, avail "
			    "%llu, balloon %llu MiB, stale %d, flags %zu\n",
			    (double)(uv_now(&O.f.loop) - O.t0) / 1000,
			    (unsigned long long)used / MIB,
			    (unsigned long long)(g->meminfo ?
			    g->meminfo->total_kib / MIB : 0),
			    (unsigned long long)(g->meminfo ?
			    g->meminfo->available_kib / MIB : 0),
			    (unsigned long long)g->balloon_actual_kib / MIB,
			    g->stale, g->n_flags);
		}
		if (g->has_balloon_actual_kib) {
			s->actual_kib = g->balloon_actual_kib;
			sum += g->balloon_actual_kib;
		}
		if (g->stale || g->vmstat == NULL || g->psi == NULL ||
		    !g->vmstat->has_oom_kills || !g->psi->has_some_total_us)
			continue;
		if (!s->seen) {
			s->seen = true;
			s->oom0 = g->vmstat->oom_kills;
			s->psi0 = g->psi->some_total_us;
		}
		s->oom = g->vmstat->oom_kills;
		s->psi = g->psi->some_total_us;
	}
	/* Once the split is in force: from the first ramp on. */
	if (O.ramping && sum > O.max_sum_kib)
		O.max_sum_kib = sum;
	return BUS_ACK;
}

/* One QMP command on a monitor nobody else uses; 0 or -1. */
static int
qmp_balloon(const char *path, uint64_t bytes)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096], cmd[256];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok = -1;
	ssize_t n;

	if (strlen(path) >= sizeof(sa.sun_path))
		goto out;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"qmp_capabilities\"}\n"
	    "{\"execute\":\"balloon\",\"arguments\":{\"value\":%llu}}\n",
	    (unsigned long long)bytes);
	if (read(fd, buf, sizeof(buf)) <= 0 ||
	    write(fd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		goto out;
	/* Two answers: wait until the second "return" is in. */
	for (size_t got = 0, seen = 0; seen < 2;) {
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			goto out;
		got += (size_t)n;
		buf[got] = '\0';
		seen = 0;
		for (char *p = buf; (p = strstr(p, "\"return\"")) != NULL; p++)
			seen++;
		if (strstr(buf, "\"error\"") != NULL)
			goto out;
	}
	ok = 0;
out:
	if (fd >= 0)
		close(fd);
	return ok;
}

/* One side (with_mm or the static split) on lv's driver (NULL: kvm) into
 * *ret. */
static void
run(bool with_mm, uint64_t budget_kib, unsigned gap_s, struct libvirtd *lv,
    struct side *ret)
{
	/* The pressure policy; the capacity is the budget. Emulated
	 * guests stall now and then: PSI below 20 % is that. Guests that
	 * start at their maximum come down to their need within the 30 s
	 * before the first ramp (the default takes 5 % a round after 30 s
	 * of calm: minutes), as on a host that has run for a while. */
	struct fleet_param params[] = {
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
		{ "hold_ms", 5000 },
		{ "shrink_pct", 25 },
		/* The budget: a guest pool (host_reserve would ask the
		 * host to keep the rest free, which this one does not). */
		{ "guest_capacity_kib", (double)budget_kib },
	};
	uint64_t wall0, t;
	char workload[128], path[4200];
	unsigned done = 0;

	{
		int v = O.verbose;

		memset(&O, 0, sizeof(O));
		O.verbose = v;
	}
	O.f.on_report = on_report;
	O.f.on_event = on_event;
	if (lv != NULL)
		fleet_use_libvirt(&O.f, lv);
	fleet_open(&O.f, "overcommit");
	if (with_mm)
		fleet_start_scheduler(&O.f, 0, params, 5);
	fleet_start_collector(&O.f, NULL);
	if (with_mm)
		fleet_start_actuator(&O.f, NULL);
	for (int k = 0; k < NVM; k++) {
		struct vm_opts o = {
			.id = names[k],
			.dir = O.f.vmdir,
			.mem_mib = MAX_MIB,
			.workload = workload,
			.interval = "500ms",
			.resend = "1s",
			/* Without it the static split would not hold: the
			 * balloon would give up its pages on OOM. */
			.no_deflate_on_oom = true,
		};

		snprintf(workload, sizeof(workload),
		    "mm_test_mono:50M:500M:25M:400:4000:%u",
		    (unsigned)(20 + (NVM - 1 - k) * 5 + k * gap_s) * 1000);
		O.vms[k] = fleet_boot_opts(&O.f, &o);
		if (O.vms[k] == NULL)
			exit(1);
		if (with_mm)
			continue;
		if (lv != NULL) {
			if (libvirtd_virsh(lv, NULL, "setmem %s %lluK --live",
			    names[k], (unsigned long long)budget_kib / NVM) != 0)
				fprintf(stderr, "overcommit: virsh setmem on "
				    "\"%s\" failed\n", names[k]);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.actuator", O.f.vmdir,
		    names[k]);
		if (qmp_balloon(path, budget_kib / NVM * 1024) < 0)
			fprintf(stderr, "overcommit: QMP balloon on %s failed\n",
			    path);
	}
	wall0 = O.t0 = uv_now(&O.f.loop);
	t = wall0 + (30 + NVM * gap_s + 60) * 1000;
	while (uv_now(&O.f.loop) < t && done < NVM) {
		tu_run_for(&O.f.loop, 200);
		O.ramping = O.ramping || vm_wait_console(O.vms[0],
		    "mono: start", 0, NULL, 0);
		done = 0;
		for (int k = 0; k < NVM; k++)
			if (vm_wait_console(O.vms[k], "mm-init: workload", 0,
			    NULL, 0))
				done++;
	}
	tu_run_for(&O.f.loop, 2000);
	memset(ret, 0, sizeof(*ret));
	ret->ran = true;
	ret->wall_s = (uv_now(&O.f.loop) - wall0) / 1000;
	ret->max_sum_mib = O.max_sum_kib / MIB;
	printf("%-6s %s (%llu s):", with_mm ? "mm" : "static",
	    lv != NULL ? "libvirt" : "kvm", (unsigned long long)ret->wall_s);
	for (int k = 0; k < NVM; k++) {
		char line[128] = "";
		bool ok;

		vm_wait_console(O.vms[k], "mm-init: workload", 0, line,
		    sizeof(line));
		ok = strstr(line, "exited 0") != NULL;
		ret->oom += (unsigned)(O.g[k].oom - O.g[k].oom0);
		ret->done += ok;
		ret->stall_s += (double)(O.g[k].psi - O.g[k].psi0) / 1e6;
		printf("  %s: %llu OOM kills, %.1f s stalled, %s;", names[k],
		    (unsigned long long)(O.g[k].oom - O.g[k].oom0),
		    (double)(O.g[k].psi - O.g[k].psi0) / 1e6,
		    ok ? "ramp done" : line[0] != '\0' ? "ramp killed" :
		    "ramp unfinished");
	}
	printf("  balloons held at most %llu MiB together (budget %llu)\n",
	    (unsigned long long)ret->max_sum_mib,
	    (unsigned long long)budget_kib / MIB);
	/* The actuator, the guests (or their domains), the rest. */
	fleet_close(&O.f);
}

/* Both sides (as only says) on driver ("kvm" or "libvirt", under a
 * libvirtd of its own); 1 when libvirtd did not start. */
static int
run_driver(const char *driver, const char *only, uint64_t budget_kib,
    unsigned gap_s, struct side ret[2])
{
	struct libvirtd *lv = NULL;

	memset(ret, 0, 2 * sizeof(*ret));
	if (strcmp(driver, "libvirt") == 0 &&
	    (lv = fleet_libvirtd_start()) == NULL)
		return 1;
	if (only == NULL || strcmp(only, "static") == 0)
		run(false, budget_kib, gap_s, lv, &ret[0]);
	if (only == NULL || strcmp(only, "mm") == 0)
		run(true, budget_kib, gap_s, lv, &ret[1]);
	fleet_libvirtd_stop(lv);
	return 0;
}

/* The two drivers' figures side by side, libvirt/kvm. */
static void
compare(const struct side kvm[2], const struct side lv[2])
{
	static const char *const side_name[2] = { "static", "mm" };
	char r[5][16];

	printf("overcommit: libvirt beside kvm, ratio libvirt/kvm (=: both "
	    "0, -: kvm 0)\n");
	printf("  %-7s %-8s %9s %6s %9s %12s %7s\n", "side", "driver",
	    "OOM kills", "ramps", "stalled", "balloons max", "time");
	for (int i = 0; i < 2; i++) {
		const struct side *x[2] = { &kvm[i], &lv[i] };

		if (!kvm[i].ran || !lv[i].ran)
			continue;
		for (int j = 0; j < 2; j++)
			printf("  %-7s %-8s %9u %4u/3 %7.1f s %8llu MiB %5llu "
			    "s\n", side_name[i], j ? "libvirt" : "kvm",
			    x[j]->oom, x[j]->done, x[j]->stall_s,
			    (unsigned long long)x[j]->max_sum_mib,
			    (unsigned long long)x[j]->wall_s);
		printf("  %-7s %-8s %9s %6s %9s %12s %7s\n", side_name[i],
		    "ratio", fleet_ratio(r[0], 16, lv[i].oom, kvm[i].oom),
		    fleet_ratio(r[1], 16, lv[i].done, kvm[i].done),
		    fleet_ratio(r[2], 16, lv[i].stall_s, kvm[i].stall_s),
		    fleet_ratio(r[3], 16, (double)lv[i].max_sum_mib,
		    (double)kvm[i].max_sum_mib),
		    fleet_ratio(r[4], 16, (double)lv[i].wall_s,
		    (double)kvm[i].wall_s));
	}
}

int
main(int argc, char **argv)
{
	static const char *const usage = "usage: overcommit [-v] "
	    "[-d kvm|libvirt|both] [-b budget_mib] [-g gap_s] "
	    "[-o static|mm]\n";
	unsigned budget_mib = 1280, gap_s = 25;
	const char *only = NULL, *driver = "kvm";
	struct side kvm[2], lv[2];
	int c, rc = 0;

	while ((c = getopt(argc, argv, "b:d:g:o:vh")) != -1) {
		switch (c) {
		case 'd':
			driver = optarg;
			break;
		case 'o':
			only = optarg;
			break;
		case 'v':
			O.verbose++;
			break;
		case 'b':
			budget_mib = (unsigned)atoi(optarg);
			break;
		case 'g':
			gap_s = (unsigned)atoi(optarg);
			break;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc || (only != NULL && strcmp(only, "static") != 0 &&
	    strcmp(only, "mm") != 0)) {
		fputs(usage, stderr);
		return 2;
	}
	if (budget_mib < NVM * 192 || budget_mib > NVM * MAX_MIB ||
	    gap_s < 10) {
		fprintf(stderr, "overcommit: a budget of %u..%u MiB, ramps at "
		    "least 10 s apart\n", NVM * 192, NVM * MAX_MIB);
		return 2;
	}
	if (!fleet_require_driver(driver)) {
		fputs(usage, stderr);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("overcommit: %d %s guests of %u MiB (%u MiB together) on a "
	    "budget of %u MiB; each ramps 50 -> 500 -> 50 MiB, %u s after "
	    "the one before\n", NVM, vm_accel(), MAX_MIB, NVM * MAX_MIB,
	    budget_mib, gap_s);
	fflush(stdout);
	if (strcmp(driver, "libvirt") != 0)
		rc |= run_driver("kvm", only, budget_mib * MIB, gap_s, kvm);
	if (strcmp(driver, "kvm") != 0)
		rc |= run_driver("libvirt", only, budget_mib * MIB, gap_s, lv);
	if (strcmp(driver, "both") == 0)
		compare(kvm, lv);
	return rc;
}
