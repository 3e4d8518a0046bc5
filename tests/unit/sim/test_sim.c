/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-sim seen through the unchanged kvm driver code (driver "sim"): its VMs
 * are found with their simulated pids, their agents report what the
 * workloads hold, and a balloon target set over QMP is reached at about
 * 100 MiB/s when shrinking the guest and faster when growing it back. A
 * malformed trace is refused with the replay's reasons.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "hv.h"
#include "guestmem.h"
#include "testutil.h"
#include "tu_hv.h"

#define MIB	1024ull

static struct {
	uv_loop_t loop;
	struct hv *hv;
	pid_t sim;
	bool set_done;
	int set_status;
} T;

static struct hv_vm *
find(const char *id)
{
	return tu_hv_find(T.hv, id);
}

static bool
c_all_reporting(void)
{
	static const char *const ids[] = { "web", "db", "idle1" };
	unsigned i;

	for (i = 0; i < 3; i++) {
		struct hv_vm *vm = find(ids[i]);

		if (vm == NULL || vm->guest == NULL || !vm->balloon_known)
			return false;
	}
	return true;
}

static uint64_t want_kib;
static bool
c_actual(void)
{
	struct hv_vm *vm = find("web");

	return vm != NULL && vm->balloon_actual_kib == want_kib &&
	    vm->guest != NULL && vm->guest->meminfo->total_kib == want_kib;
}

static void
set_cb(struct hv *hv, int status, void *arg)
{
	T.set_status = status;
	T.set_done = true;
}

static int
teardown(void **state)
{
	if (T.sim > 0) {
		kill(T.sim, SIGKILL);
		waitpid(T.sim, NULL, 0);
	}
	return 0;
}

static void
test_sim_through_kvm_driver(void **state)
{
	struct hv_config cfg = {
		.type = HV_TYPE_SIM,
		.rescan_ms = 100,
		.poll_ms = 100,
	};
	char *dir, *bin, vmdir[1024], root[1024];
	struct hv_vm *vm;
	uint64_t t0, ms;
	int status;

	memset(&T, 0, sizeof(T));
	dir = tu_tmpdir();
	snprintf(vmdir, sizeof(vmdir), "%s/vm", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	assert_true(asprintf(&bin, "%s/bin/mm-sim",
	    getenv("MM_BINARY_DIR")) > 0);
	T.sim = fork();
	assert_true(T.sim >= 0);
	if (T.sim == 0) {
		execl(bin, bin, "-s", vmdir, "-r", root, "-i", "100ms",
		    "-m", "web,2G,static:1G", "-m", "db,4G,mono:512M:3G",
		    "-m", "idle1,1G,idle", (char *)NULL);
		_exit(127);
	}

	uv_loop_init(&T.loop);
	cfg.vm_dir = vmdir;
	T.hv = hv_new(&T.loop, &cfg);
	assert_non_null(T.hv);
	assert_int_equal(hv_start(T.hv), 0);
	assert_true(tu_run_until_fn(&T.loop, c_all_reporting, 10000));

	vm = find("web");
	assert_int_equal(vm->pid, 100000);	/* from web.pid */
	assert_int_equal(vm->balloon_actual_kib, 2048 * MIB);
	assert_int_equal(vm->max_kib, 2048 * MIB);
	assert_int_equal(vm->guest->source,
	    MM__V1__STATS_SOURCE__STATS_SOURCE_SIM);
	assert_int_equal(vm->guest->meminfo->anon_kib, 1024 * MIB);
	assert_int_equal(find("idle1")->guest->meminfo->anon_kib, 256 * MIB);

	/* Shrink web by 512 MiB: about 5 s at 100 MiB/s. */
	uv_update_time(&T.loop);
	t0 = uv_now(&T.loop);
	assert_int_equal(hv_set_target(T.hv, "web", 1536 * MIB, set_cb, NULL),
	    0);
	want_kib = 1536 * MIB;
	assert_true(tu_run_until_fn(&T.loop, c_actual, 15000));
	assert_true(T.set_done);
	assert_int_equal(T.set_status, 0);
	ms = uv_now(&T.loop) - t0;
	print_message("inflated 512 MiB in %llu ms\n", (unsigned long long)ms);
	assert_in_range(ms, 3500, 9000);

	/* Grow it back: faster. */
	t0 = uv_now(&T.loop);
	assert_int_equal(hv_set_target(T.hv, "web", 2048 * MIB, NULL, NULL),
	    0);
	want_kib = 2048 * MIB;
	assert_true(tu_run_until_fn(&T.loop, c_actual, 15000));
	ms = uv_now(&T.loop) - t0;
	print_message("deflated 512 MiB in %llu ms\n", (unsigned long long)ms);
	assert_true(ms < 3500);

	/* The target is capped at the VM's maximum. */
	assert_int_equal(hv_set_target(T.hv, "web", 8192 * MIB, NULL, NULL),
	    0);
	tu_run_for(&T.loop, 500);
	assert_int_equal(find("web")->balloon_actual_kib, 2048 * MIB);

	hv_close(T.hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	kill(T.sim, SIGTERM);
	assert_int_equal(waitpid(T.sim, &status, 0), T.sim);
	T.sim = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* It cleans up its sockets. */
	{
		char path[2048];

		snprintf(path, sizeof(path), "%s/web.qmp", vmdir);
		assert_int_equal(access(path, F_OK), -1);
	}
	tu_rmtree(dir);
	free(dir);
	free(bin);
}

static bool
c_guests(void)
{
	static const char *const ids[] = { "oom", "tr", "doo" };

	for (unsigned i = 0; i < 3; i++) {
		struct hv_vm *vm = find(ids[i]);

		if (vm == NULL || vm->guest == NULL)
			return false;
	}
	return true;
}

static bool
c_oom_killed(void)
{
	struct hv_vm *vm = find("oom");

	return vm != NULL && vm->guest != NULL &&
	    vm->guest->vmstat->oom_kills > 0;
}

static bool
c_trace_high(void)
{
	struct hv_vm *vm = find("tr");

	return vm != NULL && vm->guest != NULL &&
	    vm->guest->meminfo->anon_kib == 700 * MIB;
}

static bool
c_doo_known(void)
{
	return find("doo")->doo_known && find("tr")->doo_known;
}

/* The deflate-on-oom guest, squeezed, took its memory back. */
static bool
c_doo_pushed_back(void)
{
	struct hv_vm *vm = find("doo");

	return vm != NULL && vm->guest != NULL && vm->balloon_known &&
	    vm->guest->meminfo->anon_kib > 600 * MIB &&
	    vm->balloon_actual_kib >= 690 * MIB;
}

static uint64_t
read_ksm(const char *root, const char *name)
{
	char path[2048];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sys/kernel/mm/ksm/%s", root, name);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%llu", &v), 1);
	fclose(f);
	return v;
}

static void
write_ksm(const char *root, const char *name, const char *value)
{
	char path[2048];
	FILE *f;

	snprintf(path, sizeof(path), "%s/sys/kernel/mm/ksm/%s", root, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(value, f);
	fclose(f);
}

/* Guests that behave like real ones: far below their need they OOM-kill
 * (and come back small) unless their balloon deflates on OOM, a trace
 * drives one, and KSM merges what is identical once it is told to run,
 * keeping the settings written. */
static void
test_sim_guests_and_ksm(void **state)
{
	struct hv_config cfg = {
		.type = HV_TYPE_SIM,
		.rescan_ms = 100,
		.poll_ms = 100,
	};
	char *dir, *bin, vmdir[1024], root[1024], trace[1024], spec[1200];
	char spec2[1200], *csv;
	int status;

	memset(&T, 0, sizeof(T));
	dir = tu_tmpdir();
	csv = tu_write_file(dir, "t.csv", "time_s,vm,used_kib,max_kib\n"
	    "0,tr,307200,2097152\n0,other,1,2\n0,doo,204800,1048576\n"
	    "1,tr,716800,2097152\n8,doo,921600,1048576\n"
	    "60,doo,921600,1048576\n");
	snprintf(trace, sizeof(trace), "%s", csv);
	snprintf(vmdir, sizeof(vmdir), "%s/vm", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(spec, sizeof(spec), "tr,2G,trace:%s", trace);
	snprintf(spec2, sizeof(spec2), "doo,1G,trace:%s,doo", trace);
	assert_true(asprintf(&bin, "%s/bin/mm-sim",
	    getenv("MM_BINARY_DIR")) > 0);
	T.sim = fork();
	assert_true(T.sim >= 0);
	if (T.sim == 0) {
		execl(bin, bin, "-s", vmdir, "-r", root, "-i", "100ms",
		    "-m", "oom,1G,static:2G", "-m", spec,
		    "-m", spec2, (char *)NULL);
		_exit(127);
	}
	uv_loop_init(&T.loop);
	cfg.vm_dir = vmdir;
	T.hv = hv_new(&T.loop, &cfg);
	assert_non_null(T.hv);
	assert_int_equal(hv_start(T.hv), 0);
	assert_true(tu_run_until_fn(&T.loop, c_guests, 10000));

	/* 2 GiB wanted in 1 GiB: killed, and back at 256 MiB. */
	assert_true(tu_run_until_fn(&T.loop, c_oom_killed, 5000));
	assert_true(find("oom")->guest->meminfo->anon_kib <= 256 * MIB);

	/* deflate-on-oom, as QEMU shows it: the QOM property, MemTotal at
	 * the VM's size with the balloon's pages in vmstat, so the used
	 * memory the scheduler counts is the guest's own. Held at 256 MiB
	 * while it uses 200, then needing 900 (at 8 s), it deflates by
	 * itself instead of killing, whatever the target. */
	{
		struct hv_vm *vm = find("doo");
		const Mm__V1__GuestStats *g;
		uint64_t used, in_total;
		bool has;

		assert_true(tu_run_until_fn(&T.loop, c_doo_known, 5000));
		assert_true(vm->deflate_on_oom);
		assert_false(find("tr")->deflate_on_oom);
		assert_int_equal(hv_set_target(T.hv, "doo", 256 * MIB, NULL,
		    NULL), 0);
		assert_true(tu_run_until_fn(&T.loop, c_doo_pushed_back,
		    20000));
		g = vm->guest;
		assert_int_equal(g->vmstat->oom_kills, 0);
		assert_int_equal(vm->balloon_target_kib, 256 * MIB);
		assert_int_equal(g->meminfo->total_kib, 1024 * MIB);
		assert_true(g->vmstat->has_balloon_pages);
		has = gm_balloon_in_total(true, true, true,
		    g->vmstat->balloon_pages, &in_total);
		used = gm_used_kib(g->meminfo->total_kib,
		    g->meminfo->available_kib, has, in_total, false, 0);
		assert_in_range(used, g->meminfo->anon_kib - 4,
		    g->meminfo->anon_kib + 4);
	}
	/* The trace's second row. */
	assert_true(tu_run_until_fn(&T.loop, c_trace_high, 15000));

	/* KSM: idle until told, then merging, settings kept. */
	assert_int_equal(read_ksm(root, "run"), 0);
	assert_int_equal(read_ksm(root, "pages_sharing"), 0);
	write_ksm(root, "run", "1\n");
	write_ksm(root, "pages_to_scan", "20000\n");	/* 1 M pages/s */
	tu_run_for(&T.loop, 3500);
	assert_int_equal(read_ksm(root, "run"), 1);
	assert_int_equal(read_ksm(root, "pages_to_scan"), 20000);
	assert_true(read_ksm(root, "pages_sharing") > 1000);
	assert_true(read_ksm(root, "full_scans") > 0);
	write_ksm(root, "run", "2\n");
	tu_run_for(&T.loop, 2500);
	assert_int_equal(read_ksm(root, "pages_sharing"), 0);

	hv_close(T.hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	kill(T.sim, SIGTERM);
	assert_int_equal(waitpid(T.sim, &status, 0), T.sim);
	T.sim = 0;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	tu_rmtree(dir);
	free(dir);
	free(bin);
	free(csv);
}

/* mm-sim's stderr and exit status for a VM driven by a trace of text csv;
 * the messages (malloc'd) are returned. */
static char *
sim_with_trace(const char *csv, int *ret_status)
{
	char *dir = tu_tmpdir(), *bin, *trace, *out, spec[4200], buf[4096];
	size_t n;
	pid_t pid;
	FILE *f;

	trace = tu_write_file(dir, "t.csv", csv);
	snprintf(spec, sizeof(spec), "tr,2G,trace:%s", trace);
	assert_true(asprintf(&bin, "%s/bin/mm-sim",
	    getenv("MM_BINARY_DIR")) > 0);
	assert_true(asprintf(&out, "%s/stderr", dir) > 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (freopen(out, "w", stderr) == NULL)
			_exit(126);
		execl(bin, bin, "-s", dir, "-r", dir, "-m", spec,
		    (char *)NULL);
		_exit(127);
	}
	/* It refuses at once; one that took the trace would serve on. */
	for (int ms = 0; waitpid(pid, ret_status, WNOHANG) == 0; ms += 10) {
		if (ms > 5000) {
			kill(pid, SIGKILL);
			waitpid(pid, ret_status, 0);
			fail_msg("mm-sim took trace \"%s\"", csv);
		}
		usleep(10 * 1000);
	}
	f = fopen(out, "r");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	tu_rmtree(dir);
	free(dir);
	free(bin);
	free(trace);
	free(out);
	return strdup(buf);
}

/* A malformed trace is refused at the start with the replay's reasons
 * (mmctl sim's), naming the file and line. */
static void
test_sim_bad_trace(void **state)
{
	static const struct {
		const char *csv, *want;
	} bad[] = {
		{ "0,tr,1,2\n1,tr,1,2\n0,other,1,2\n",
		    "t.csv:3: time 0 goes back" },
		{ "0,tr,1,2\n1,tr,lots,2\n",
		    "t.csv:2: expected time_s,vm,used_kib,max_kib" },
		{ "0,tr,3,2\n", "t.csv:1: need 0 <= used_kib <= max_kib" },
		{ "0,tr,1,2,9\n",
		    "t.csv:1: expected time_s,vm,used_kib,max_kib" },
		{ "time_s,vm,used_kib,max_kib\n", "t.csv: no samples" },
	};
	char *err;
	int status;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err = sim_with_trace(bad[i].csv, &status);
		if (strstr(err, bad[i].want) == NULL)
			fail_msg("trace %zu: \"%s\", want \"%s\"", i, err,
			    bad[i].want);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
		free(err);
	}
	/* Rows for other VMs only: no trace for this one. */
	err = sim_with_trace("0,other,1,2\n", &status);
	assert_non_null(strstr(err, "has no rows for vm \"tr\""));
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_sim_through_kvm_driver,
		    teardown),
		cmocka_unit_test_teardown(test_sim_guests_and_ksm, teardown),
		cmocka_unit_test(test_sim_bad_trace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
