/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl as an operator uses it, against a real RabbitMQ and a real
 * mm-scheduler: a bad policy file is refused with its line and nothing
 * changes; a good one is published and reported accepted, and policy show
 * prints it; status shows the hosts and VMs the scheduler knows; events
 * prints the decisions as they happen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "testutil.h"
#include "topology.h"

static struct {
	char *dir;
	char *sched;
	char *host;
	int pid;
} w;

/* Run mmctl with args; its stdout and stderr into *out (malloc'd). */
static int
mmctl(char **out, const char *args)
{
	char *bin = tu_bin_path("mmctl"), *cmd;
	size_t cap = 1 << 16, n = 0;
	FILE *p;
	int st;

	if (asprintf(&cmd, "MM_AMQP_URL='%s' %s %s 2>&1", tu_broker_url(), bin,
	    args) < 0)
		abort();
	*out = calloc(1, cap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (n < cap - 1) {
		size_t k = fread(*out + n, 1, cap - 1 - n, p);

		if (k == 0)
			break;
		n += k;
	}
	st = pclose(p);
	free(cmd);
	free(bin);
	fprintf(stderr, "$ mmctl %s\n%s", args, *out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
assert_has(const char *text, const char *needle)
{
	if (strstr(text, needle) == NULL)
		fail_msg("output lacks \"%s\"", needle);
}

/* Publish one report for w.host so the scheduler knows a host and VM. */
static void
report(void)
{
	static uint64_t seq;
	struct bus_config cfg = { .url = tu_broker_url(), .app_id = "t" };
	uv_loop_t loop;
	struct bus *bus;

	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	topo_declare_stats_exchange(bus);
	bus_start(bus);
	seq++;
	assert_int_equal(tu_publish_report(bus, w.host, seq,
	    1700000000000ull + seq * 1000, 30), 0);
	bus_close(bus, 3000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
}

static int
setup(void **state)
{
	char text[1024], *bin = tu_bin_path("mm-scheduler"), *conf;
	int pid = (int)getpid();

	if (asprintf(&w.sched, "mmctl-s-%d", pid) < 0 ||
	    asprintf(&w.host, "mmctl-h-%d", pid) < 0)
		abort();
	w.dir = tu_tmpdir();
	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\n[bus]\nurl = %s\n", w.sched, w.dir,
	    tu_broker_url());
	conf = tu_write_file(w.dir, "scheduler.conf", text);
	{
		char *argv[] = { bin, "-d", "-c", conf, NULL };

		w.pid = tu_spawn(argv);
	}
	free(conf);
	free(bin);
	sleep(2);
	return 0;
}

static int
teardown(void **state)
{
	tu_stop(w.pid, 5000);
	tu_rmtree(w.dir);
	return 0;
}

static void
test_mmctl_bad_policy_changes_nothing(void **state)
{
	char *path = tu_write_file(w.dir, "bad.policy",
	    "[policy]\nname = bad\nmode = enforce\n\n[vm db-*]\nmin = 8G\n"
	    "max = 4G\n");
	char *out, args[512];

	snprintf(args, sizeof(args), "policy apply %s", path);
	assert_int_equal(mmctl(&out, args), 1);
	assert_has(out, "bad.policy:5: rules[0].limits.min_kib: 8388608 "
	    "above max_kib 4194304");
	assert_has(out, "nothing was published");
	free(out);
	/* Still the built-in policy. */
	assert_int_equal(mmctl(&out, "policy show"), 0);
	assert_has(out, "built-in defaults");
	free(out);
	free(path);
}

static void
test_mmctl_policy_apply_and_show(void **state)
{
	char *example = tu_source_path("deploy/policy.example");
	char *out, args[512];

	snprintf(args, sizeof(args), "policy apply %s", example);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "published; waiting for the schedulers");
	assert_has(out, "accepted by ");
	assert_has(out, w.sched);
	free(out);
	assert_int_equal(mmctl(&out, "policy show"), 0);
	assert_has(out, "name = default fleet policy");
	assert_has(out, "[vm db-*]\nmin = 4G\nweight = 300");
	assert_has(out, "host_reserve = 2G");
	free(out);
	free(example);
}

static void
test_mmctl_status_shows_hosts(void **state)
{
	char *out, args[256];

	report();
	sleep(1);
	snprintf(args, sizeof(args), "status --host %s", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "policy ");
	assert_has(out, "\"default fleet policy\" (enforce)");
	assert_has(out, w.host);
	assert_has(out, "vm-a");
	assert_has(out, "grow-pressure");
	free(out);
	snprintf(args, sizeof(args), "status --json --host %s", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "\"vm\": \"vm-a\"");
	assert_has(out, "\"max_kib\": 8388608");
	free(out);
}

static void
test_mmctl_events_show_decisions(void **state)
{
	char *bin = tu_bin_path("mmctl"), *out, args[256];
	int pid;
	FILE *f;

	/* Follow in the background, then cause a decision. */
	snprintf(args, sizeof(args), "%s/events.out", w.dir);
	pid = fork();
	if (pid == 0) {
		freopen(args, "w", stdout);
		setenv("MM_AMQP_URL", tu_broker_url(), 1);
		execl(bin, bin, "events", "--kind", "decision", "--host", w.host,
		    "--wait", "6s", (char *)NULL);
		_exit(127);
	}
	sleep(2);
	report();
	waitpid(pid, NULL, 0);
	f = fopen(args, "r");
	assert_non_null(f);
	out = calloc(1, 65536);
	fread(out, 1, 65535, f);
	fclose(f);
	fprintf(stderr, "events:\n%s", out);
	assert_has(out, "decision ");
	assert_has(out, w.host);
	assert_has(out, "vm-a: grow-pressure");
	free(out);
	free(bin);
	/* Unknown kinds are refused. */
	assert_int_equal(mmctl(&out, "events --kind gossip"), 2);
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mmctl_bad_policy_changes_nothing),
		cmocka_unit_test(test_mmctl_policy_apply_and_show),
		cmocka_unit_test(test_mmctl_status_shows_hosts),
		cmocka_unit_test(test_mmctl_events_show_decisions),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, setup, teardown);
}
