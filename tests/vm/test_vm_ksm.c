/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KSM on real guests: two identical TCG guests (same kernel, same
 * initramfs, QEMU's guest RAM is mergeable by default) under the real
 * mm-collector, mm-scheduler and mm-actuator. The policy counts this host
 * as short of memory (start below 99 % available), so the scheduler asks
 * for KSM and the actuator turns it on in the host's real
 * /sys/kernel/mm/ksm. Checked: KSM runs, the two QEMUs' pages get merged
 * (/proc/<pid>/ksm_merging_pages: KSM is host-wide and other processes
 * may merge or unmerge meanwhile, so pages_sharing alone says little), and
 * once the actuator stops the host's KSM settings are exactly as found.
 * The test puts them back itself if it fails midway.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet.h"
#include "testutil.h"
#include "tu_hv.h"

#define KSM_DIR		"/sys/kernel/mm/ksm"

static const char *const knobs[] = { "run", "pages_to_scan",
    "sleep_millisecs", "merge_across_nodes" };
#define NKNOBS	(sizeof(knobs) / sizeof(knobs[0]))

static struct {
	struct fleet f;
	struct vm *vms[2];
	char found[NKNOBS][32];		/* the host's settings at start */
	bool have_found;
	uint64_t sharing0, sharing;	/* pages_sharing, first and latest */
	bool seen_ksm, ran;		/* KSM was seen running */
	uint64_t merged;		/* the QEMUs' ksm_merging_pages */
} K;

static bool
read_knob(const char *name, char *buf, size_t len)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", KSM_DIR, name);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(buf, (int)len, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return true;
}

static void
restore_knobs(void)
{
	char path[128], now[32];

	for (size_t i = 0; K.have_found && i < NKNOBS; i++) {
		FILE *f;

		if (read_knob(knobs[i], now, sizeof(now)) &&
		    strcmp(now, K.found[i]) == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", KSM_DIR, knobs[i]);
		f = fopen(path, "w");
		if (f != NULL) {
			fprintf(f, "%s\n", K.found[i]);
			fclose(f);
		}
	}
}

static enum bus_disposition
on_report(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	const Mm__V1__KsmStats *k = r->host != NULL ? r->host->ksm : NULL;

	(void)d;
	(void)arg;
	/* Only this test's host: a report another test's collector left in
	 * the queue must not count. */
	if (k == NULL || !k->has_sharing_pages || r->host_id == NULL ||
	    strcmp(r->host_id, K.f.host) != 0)
		return BUS_ACK;
	if (!K.seen_ksm)
		K.sharing0 = k->sharing_pages;
	K.seen_ksm = true;
	K.sharing = k->sharing_pages;
	K.ran |= k->settings != NULL && k->settings->has_run &&
	    k->settings->run == MM__V1__KSM_RUN__KSM_RUN_MERGE;
	/* The message's KsmRun is the sysfs value plus one. */
	if (getenv("MM_TEST_VERBOSE") != NULL)
		printf("ksm: run=%d scan %u sharing %llu full_scans %llu "
		    "cpu %llu ms\n", k->settings ? (int)k->settings->run - 1 :
		    -1,
		    k->settings ? k->settings->pages_to_scan : 0,
		    (unsigned long long)k->sharing_pages,
		    (unsigned long long)k->full_scans,
		    (unsigned long long)k->ksmd_cpu_ms);
	return BUS_ACK;
}

static int
setup(void **state)
{
	static Mm__V1__KsmPolicy ksm = MM__V1__KSM_POLICY__INIT;

	(void)state;
	vm_require();
	if (access(KSM_DIR "/run", W_OK) != 0) {
		print_message("skipped: %s/run is not writable here\n",
		    KSM_DIR);
		exit(77);
	}
	memset(&K, 0, sizeof(K));
	for (size_t i = 0; i < NKNOBS; i++)
		assert_true(read_knob(knobs[i], K.found[i],
		    sizeof(K.found[i])));
	K.have_found = true;
	atexit(restore_knobs);
	ksm.has_enable = ksm.has_cpu_budget_pct = true;
	ksm.enable = true;
	ksm.cpu_budget_pct = 50;
	/* This host has most of its memory free: call it short. */
	ksm.has_start_available_pct = ksm.has_stop_available_pct = true;
	ksm.start_available_pct = 99;
	ksm.stop_available_pct = 99.5;
	ksm.has_min_pages_to_scan = ksm.has_max_pages_to_scan = true;
	ksm.min_pages_to_scan = 1000;
	ksm.max_pages_to_scan = 5000;
	K.f.ksm = &ksm;
	K.f.on_report = on_report;
	fleet_open(&K.f, "test_vm_ksm");
	fleet_start_collector(&K.f, NULL);
	fleet_start_actuator(&K.f, "ksm = yes\nnuma = no\n");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	fleet_stop(&K.f, &K.f.act);
	/* The fleet owns the twins: fleet_close stops them. */
	fleet_close(&K.f);
	restore_knobs();
	return 0;
}

/* Pages KSM merged of the two QEMUs (kernel 5.19+: ksm_merging_pages). */
static uint64_t
merged_pages(void)
{
	uint64_t sum = 0;

	for (int i = 0; i < 2; i++) {
		char path[64];
		unsigned long long n = 0;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/ksm_merging_pages",
		    (int)K.vms[i]->pid);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fscanf(f, "%llu", &n) == 1)
			sum += n;
		fclose(f);
	}
	return sum;
}

static bool
ksm_merging(void)
{
	K.merged = merged_pages();
	return K.ran && K.merged >= 2560;
}

static void
test_vm_ksm_identical_guests_share(void **state)
{
	static const struct fleet_param params[] = {
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
	};
	char now[32];

	(void)state;
	K.vms[0] = fleet_boot(&K.f, "twin1", 256, NULL);
	assert_non_null(K.vms[0]);
	K.vms[1] = fleet_boot(&K.f, "twin2", 256, NULL);
	assert_non_null(K.vms[1]);
	/* The scheduler comes once the guests are up: its KSM rule stops
	 * ksmd when a full scan has not paid, and a scan of a host without
	 * guests does not. */
	fleet_start_scheduler(&K.f, 0, params, 2);
	/* 10 MiB of the guests merged, at least. */
	if (!tu_run_until_fn(&K.f.loop, ksm_merging, 90000))
		fail_msg("KSM %s; the guests' merged pages: %llu; host "
		    "pages_sharing %llu -> %llu", K.ran ? "ran" :
		    "was not turned on", (unsigned long long)K.merged,
		    (unsigned long long)K.sharing0,
		    (unsigned long long)K.sharing);
	printf("vm ksm: KSM on, %llu of the guests' pages merged (%.1f "
	    "MiB); host pages_sharing %llu -> %llu\n",
	    (unsigned long long)K.merged, (double)K.merged * 4 / 1024,
	    (unsigned long long)K.sharing0, (unsigned long long)K.sharing);

	/* Stopped, the actuator leaves KSM as it found it. */
	assert_int_equal(fleet_stop(&K.f, &K.f.act), 0);
	for (size_t i = 0; i < NKNOBS; i++) {
		assert_true(read_knob(knobs[i], now, sizeof(now)));
		if (strcmp(now, K.found[i]) != 0)
			fail_msg("%s is %s after the actuator stopped, was %s",
			    knobs[i], now, K.found[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_vm_ksm_identical_guests_share, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
