/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The release: guests grown toward their maximum only as far as the host's
 * MemAvailable minus host_reserve allows, largest deficit first, never
 * above a maximum nor below a guest's size. The plan alone (pure), then on
 * mm-sim with a host short of memory: release_on_stop = yes at a stop,
 * and `mm-actuator --release` run as the package's removal runs it (after
 * the daemon stopped).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "act_harness.h"
#include "bus_fake.h"
#include "testutil.h"

#define GIB	(1024 * MIB)

static struct act_rel_vm *
find(struct act_rel_plan *p, const char *id)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->vms[i].id, id) == 0)
			return &p->vms[i];
	fail_msg("vm \"%s\" not in the plan", id);
	return NULL;
}

static void
vm(struct act_rel_vm *v, const char *id, uint64_t cur, uint64_t max)
{
	memset(v, 0, sizeof(*v));
	snprintf(v->id, sizeof(v->id), "%s", id);
	v->current_known = v->max_known = true;
	v->current_kib = cur;
	v->max_kib = max;
}

/* 1.5 GiB to give: a (lacking 1 GiB) first, then c (524 MiB) gets the
 * 512 MiB left, b (512 MiB) none. */
static void
test_release_plan_largest_first(void **state)
{
	struct act_rel_vm v[3];
	struct act_rel_plan p = { .n = 3, .vms = v,
	    .host_avail_kib = 2 * GIB, .reserve_kib = 512 * MIB };
	char line[512];
	uint64_t grown = 0;

	vm(&v[0], "b", 3 * GIB, 3 * GIB + 512 * MIB);
	vm(&v[1], "c", 500 * MIB, GIB);
	vm(&v[2], "a", GIB, 2 * GIB);
	act_release_plan(&p);
	assert_string_equal(v[0].id, "a");
	assert_string_equal(v[1].id, "c");
	assert_string_equal(v[2].id, "b");
	assert_int_equal(find(&p, "a")->target_kib, 2 * GIB);
	assert_int_equal(find(&p, "a")->outcome, ACT_REL_FULL);
	assert_int_equal(find(&p, "c")->target_kib, 1012 * MIB);
	assert_int_equal(find(&p, "c")->outcome, ACT_REL_PARTIAL);
	assert_int_equal(find(&p, "b")->target_kib, 3 * GIB);
	assert_int_equal(find(&p, "b")->outcome, ACT_REL_NO_ROOM);
	for (size_t i = 0; i < 3; i++) {
		assert_true(v[i].target_kib <= v[i].max_kib);
		assert_true(v[i].target_kib >= v[i].current_kib);
		grown += v[i].target_kib - v[i].current_kib;
	}
	assert_int_equal(grown, p.budget_kib);
	assert_int_equal(p.grant_kib, 1536 * MIB);
	assert_int_equal(p.need_kib, 2060 * MIB);

	act_release_describe(find(&p, "c"), line, sizeof(line));
	assert_string_equal(line, "vm \"c\": 500 -> 1012 of 1024 MiB "
	    "(unconfirmed): the host had no more to give (MemAvailable 2048 "
	    "MiB, host_reserve 512 MiB)");
	act_release_describe(find(&p, "b"), line, sizeof(line));
	assert_string_equal(line, "vm \"b\": left at 3072 of 3584 MiB: no "
	    "host memory left to give it");
	act_release_summary(&p, line, sizeof(line));
	assert_string_equal(line, "release: 1536 of 2060 MiB given back, "
	    "524 MiB left unreleased: the host's MemAvailable 2048 MiB minus "
	    "host_reserve 512 MiB allowed no more");
}

/* No free memory above the reserve: nothing grows, and it says so. */
static void
test_release_plan_no_room(void **state)
{
	struct act_rel_vm v[2];
	struct act_rel_plan p = { .n = 2, .vms = v,
	    .host_avail_kib = 900 * MIB, .reserve_kib = GIB };
	char line[512];

	vm(&v[0], "x", 512 * MIB, GIB);
	vm(&v[1], "y", 256 * MIB, GIB);
	act_release_plan(&p);
	assert_int_equal(p.budget_kib, 0);
	assert_int_equal(p.grant_kib, 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(v[i].target_kib, v[i].current_kib);
		assert_int_equal(v[i].outcome, ACT_REL_NO_ROOM);
	}
	act_release_summary(&p, line, sizeof(line));
	assert_string_equal(line, "release: 0 of 1280 MiB given back, 1280 "
	    "MiB left unreleased: the host's MemAvailable 900 MiB minus "
	    "host_reserve 1024 MiB allowed no more");
	/* Zero MemAvailable, zero reserve: the same. */
	p.host_avail_kib = p.reserve_kib = 0;
	act_release_plan(&p);
	assert_int_equal(p.grant_kib, 0);
	assert_int_equal(find(&p, "x")->target_kib, 512 * MIB);
}

/* A guest above its maximum is not shrunk, one without a maximum is left
 * alone, and plenty of memory gives every other one its maximum. */
static void
test_release_plan_bounds(void **state)
{
	struct act_rel_vm v[3];
	struct act_rel_plan p = { .n = 3, .vms = v,
	    .host_avail_kib = 64 * GIB, .reserve_kib = GIB };
	char line[512];

	vm(&v[0], "over", 2 * GIB, GIB);
	vm(&v[1], "nomax", 256 * MIB, 0);
	v[1].max_known = false;
	vm(&v[2], "low", 256 * MIB, 4 * GIB);
	act_release_plan(&p);
	assert_int_equal(find(&p, "over")->target_kib, 2 * GIB);
	assert_int_equal(find(&p, "over")->outcome, ACT_REL_AT_MAX);
	assert_int_equal(find(&p, "nomax")->target_kib, 256 * MIB);
	assert_int_equal(find(&p, "nomax")->outcome, ACT_REL_UNKNOWN);
	assert_string_equal(v[2].id, "nomax");	/* unknown ones last */
	assert_int_equal(find(&p, "low")->target_kib, 4 * GIB);
	assert_int_equal(find(&p, "low")->outcome, ACT_REL_FULL);
	act_release_summary(&p, line, sizeof(line));
	assert_string_equal(line, "release: 3840 MiB given back, every guest "
	    "at its maximum (host MemAvailable 65536 MiB, host_reserve 1024 "
	    "MiB)");
	act_release_describe(find(&p, "nomax"), line, sizeof(line));
	assert_string_equal(line, "vm \"nomax\": its maximum unknown, left as "
	    "it is");
}

/* ---- on mm-sim ---- */

/* The sim's host holds 512 MiB + its guests: with web at 600 MiB and
 * idle at 448, a 1760 MiB host has 200 MiB available; less a reserve of
 * 64 MiB, 136 MiB may be given: web (168 MiB short) first, idle (64 MiB
 * short) nothing. */
static const char *const vms[] = { "web,768M,static:512M", "idle,512M,idle",
	NULL };
#define HOST_MEM	"1760M"

static struct harness H;

static void
conf_release(struct actuator_conf *c)
{
	c->balloon_interval_ms = 0;
	c->failsafe_after_ms = 0;
	c->host_reserve_kib = 64 * MIB;
	c->release_on_stop = true;
}

static void
squeeze(void)
{
	const struct th_cmd cmds[] = {
		{ "web", 600 * MIB, NULL },
		{ "idle", 448 * MIB, NULL },
	};
	Mm__V1__Event *ev;

	assert_int_equal(th_batch_now(&H, 1, cmds, 2), BUS_ACK);
	ev = th_result(&H, 1, 0, 5000, NULL);
	assert_non_null(ev);
	msg_free(&ev->base);
	assert_true(th_wait_actual(&H, "web", 600 * MIB, 3000));
	assert_true(th_wait_actual(&H, "idle", 448 * MIB, 3000));
	tu_run_for(&H.loop, 500);	/* the host's meminfo follows */
}

static void
test_release_on_stop_within_free_memory(void **state)
{
	th_start_host(&H, vms, HOST_MEM, conf_release);
	squeeze();
	th_stop(&H);
	assert_true(th_wait_actual(&H, "web", 736 * MIB, 3000));
	tu_run_for(&H.loop, 1000);
	assert_int_equal(th_actual_kib(&H, "web"), 736 * MIB);
	assert_int_equal(th_actual_kib(&H, "idle"), 448 * MIB);
	assert_int_equal(th_alerts("actuator stopping: release: 136 of 232 "
	    "MiB given back, 96 MiB left unreleased"), 1);
}

/* `mm-actuator --release -c FILE` after the daemon stopped: its output,
 * its status, and the guests grown within the host's free memory. */
static void
test_release_oneshot(void **state)
{
	char conf[4096], cmd[8192], out[4096], *path, *bin;
	size_t n;
	FILE *f;
	int st;

	th_start_host(&H, vms, HOST_MEM, conf_release);
	H.a.conf.release_on_stop = false;
	squeeze();
	th_stop(&H);
	tu_run_for(&H.loop, 500);
	assert_int_equal(th_actual_kib(&H, "web"), 600 * MIB);

	snprintf(conf, sizeof(conf), "[actuator]\nhost_id = h1\n"
	    "driver = sim\nvm_dir = %s\nproc_root = %s/proc\n"
	    "sys_root = %s/sys\nrescan = 100ms\npoll = 100ms\n"
	    "host_reserve = 64M\n", H.vmdir, H.root, H.root);
	path = tu_write_file(H.dir, "actuator.conf", conf);
	bin = tu_bin_path("mm-actuator");
	snprintf(cmd, sizeof(cmd), "'%s' --release -c '%s' -d", bin, path);
	f = popen(cmd, "r");
	assert_non_null(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	st = pclose(f);
	free(bin);
	free(path);
	print_message("%s", out);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(out, "vm \"web\": 600 -> 736 of 768 MiB: the "
	    "host had no more to give (MemAvailable 200 MiB, host_reserve 64 "
	    "MiB)\n"));
	assert_non_null(strstr(out, "vm \"idle\": left at 448 of 512 MiB: no "
	    "host memory left to give it\n"));
	assert_non_null(strstr(out, "release: 136 of 232 MiB given back, 96 "
	    "MiB left unreleased"));
	/* web's line comes first: the larger deficit */
	assert_true(strstr(out, "\"web\"") < strstr(out, "\"idle\""));
	assert_true(th_wait_actual(&H, "web", 736 * MIB, 3000));
	tu_run_for(&H.loop, 500);
	assert_int_equal(th_actual_kib(&H, "idle"), 448 * MIB);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_plan_largest_first),
		cmocka_unit_test(test_release_plan_no_room),
		cmocka_unit_test(test_release_plan_bounds),
		cmocka_unit_test_teardown(
		    test_release_on_stop_within_free_memory, th_teardown),
		cmocka_unit_test_teardown(test_release_oneshot, th_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
