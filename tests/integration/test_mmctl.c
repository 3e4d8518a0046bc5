/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mmctl as an operator uses it, against a real RabbitMQ and a real
 * mm-scheduler: a bad policy file is refused with its line and nothing
 * changes; a good one is published and reported accepted, and policy show
 * prints it; status shows the hosts and VMs the scheduler knows; events
 * prints the history the scheduler's event log keeps, filtered, and exits
 * at its end, or with --follow goes on with decisions as they happen; a
 * policy version far ahead is refused and --reset goes back; malformed
 * policies are logged and counted, and status shows the counters.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

static struct {
	char *dir;
	char *sched;
	char *host;
	char *log;	/* the scheduler's stderr */
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

	/* An mmctl that does not end by itself fails the test (124). */
	if (asprintf(&cmd, "MM_AMQP_URL='%s' timeout 60 %s %s 2>&1",
	    tu_broker_url(), bin, args) < 0)
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

static void
assert_lacks(const char *text, const char *needle)
{
	if (strstr(text, needle) != NULL)
		fail_msg("output has \"%s\"", needle);
}

/* A bus that may publish stats, events and policies, started. */
static struct bus *
publisher_open(uv_loop_t *loop)
{
	struct bus_config cfg = { .url = tu_broker_url(), .app_id = "t" };
	struct bus *bus;

	uv_loop_init(loop);
	bus = bus_new(loop, &cfg);
	assert_non_null(bus);
	topo_declare_stats_exchange(bus);
	topo_declare_events_exchange(bus);
	topo_declare_policy_exchange(bus);
	bus_start(bus);
	return bus;
}

/* Close it once the broker has confirmed what it published. */
static void
publisher_close(uv_loop_t *loop, struct bus *bus)
{
	bus_close(bus, 5000, NULL, NULL);
	assert_int_equal(tu_loop_finish(loop), 0);
}

/* Publish events on mm.events as a scheduler would, each with its reason,
 * and wait for the broker's confirms: kinds[i] (an EVENT_KIND) on hosts[i]. */
static void
publish_events(size_t n, const int *kinds, const char *const *hosts,
    const char *const *reasons)
{
	static const char *const key_of[] = { "", TOPO_EV_DECISION,
	    TOPO_EV_RESULT, TOPO_EV_ALERT };
	uv_loop_t loop;
	struct bus *bus = publisher_open(&loop);

	for (size_t i = 0; i < n; i++) {
		Mm__V1__Event e = MM__V1__EVENT__INIT;
		char key[128];

		e.kind = (Mm__V1__EventKind)kinds[i];
		e.has_kind = e.has_time_ms = true;
		e.time_ms = tu_wall_ms();
		e.host_id = (char *)hosts[i];
		e.vm_id = "vm-h";
		e.reason = (char *)reasons[i];
		if (kinds[i] == MM__V1__EVENT_KIND__EVENT_KIND_ALERT) {
			e.has_severity = true;
			e.severity = MM__V1__SEVERITY__SEVERITY_WARNING;
		}
		assert_int_equal(topo_event_key(key, sizeof(key),
		    key_of[kinds[i]], hosts[i]), 0);
		assert_int_equal(msg_publish(bus, MSG_EVENT,
		    (const ProtobufCMessage *)&e, TOPO_EX_EVENTS, key, false,
		    NULL, NULL), 0);
	}
	publisher_close(&loop, bus);
}

/* Read a file the test had a child write (malloc'd). */
static char *
slurp(const char *path)
{
	char *out = calloc(1, 65536);
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	fread(out, 1, 65535, f);
	fclose(f);
	return out;
}

/* Publish one report for w.host so the scheduler knows a host and VM. */
static void
report(void)
{
	static uint64_t seq;
	uv_loop_t loop;
	struct bus *bus = publisher_open(&loop);

	seq++;
	assert_int_equal(tu_publish_report(bus, w.host, seq,
	    1700000000000ull + seq * 1000, 30), 0);
	publisher_close(&loop, bus);
}

static int
setup(void **state)
{
	char text[1024], *bin = tu_bin_path("mm-scheduler"), *conf, *cmd;
	int pid = (int)getpid();

	if (asprintf(&w.sched, "mmctl-s-%d", pid) < 0 ||
	    asprintf(&w.host, "mmctl-h-%d", pid) < 0)
		abort();
	w.dir = tu_tmpdir();
	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\n[bus]\nurl = %s\n", w.sched, w.dir,
	    tu_broker_url());
	conf = tu_write_file(w.dir, "scheduler.conf", text);
	/* Its log, at the default level, goes to a file the tests read. */
	if (asprintf(&w.log, "%s/scheduler.log", w.dir) < 0 ||
	    asprintf(&cmd, "exec %s -d -c %s 2>%s", bin, conf, w.log) < 0)
		abort();
	{
		char *argv[] = { "/bin/sh", "-c", cmd, NULL };

		w.pid = tu_spawn(argv);
	}
	free(cmd);
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
	free(w.log);
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

	/* top --once: one view, no screen clearing; with --json, one
	 * compact JSON document on one line. */
	snprintf(args, sizeof(args), "top --once --host %s", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "vm-a");
	assert_lacks(out, "\033[2J");
	free(out);
	snprintf(args, sizeof(args), "top --once --json --host %s", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_true(out[0] == '{');
	assert_non_null(strchr(out, '\n'));
	assert_true(strchr(out, '\n')[1] == '\0');
	assert_has(out, "\"vm\":\"vm-a\"");
	assert_has(out, "\"max_kib\":8388608");
	free(out);
}

/*
 * Events published before mmctl starts are printed from the log, filtered
 * by host and kind, and mmctl ends by itself at the end of the history.
 */
static void
test_mmctl_events_prints_history(void **state)
{
	static const int kinds[] = { MM__V1__EVENT_KIND__EVENT_KIND_DECISION,
	    MM__V1__EVENT_KIND__EVENT_KIND_ALERT,
	    MM__V1__EVENT_KIND__EVENT_KIND_DECISION };
	char *other, *out, args[256];
	const char *hosts[3];
	static const char *const reasons[] = { "hist-decision-1",
	    "hist-alert-1", "hist-other-1" };
	uint64_t t0;

	if (asprintf(&other, "mmctl-o-%d", (int)getpid()) < 0)
		abort();
	hosts[0] = hosts[1] = w.host;
	hosts[2] = other;
	publish_events(3, kinds, hosts, reasons);

	/* Both kinds of w.host, nothing of the other host. The last five
	 * minutes: a test broker may hold a long history of other runs. */
	snprintf(args, sizeof(args), "events --since 5m --host %s", w.host);
	t0 = tu_wall_ms();
	assert_int_equal(mmctl(&out, args), 0);
	assert_true(tu_wall_ms() - t0 < 8000);	/* not the 10 s --wait */
	assert_has(out, "decision ");
	assert_has(out, "vm-h: hist-decision-1");
	assert_has(out, "alert ");
	assert_has(out, "(warning): hist-alert-1");
	assert_lacks(out, "hist-other-1");
	/* The decision was published first and is printed first. */
	assert_true(strstr(out, "hist-decision-1") < strstr(out,
	    "hist-alert-1"));
	free(out);

	/* --json: an object a line, the same two events, in order. */
	snprintf(args, sizeof(args), "events --json --since 5m --host %s",
	    w.host);
	assert_int_equal(mmctl(&out, args), 0);
	{
		const char *a = strstr(out, "\"reason\":\"hist-decision-1\""),
		    *b = strstr(out, "\"reason\":\"hist-alert-1\"");
		unsigned lines = 0;

		assert_non_null(a);
		assert_non_null(b);
		assert_true(a < b);
		for (const char *p = out; *p != '\0'; p = strchr(p, '\n') +
		    1) {
			assert_true(*p == '{');
			assert_non_null(strchr(p, '\n'));
			assert_true(strchr(p, '\n')[-1] == '}');
			lines++;
		}
		/* The two, and the decisions of earlier tests' reports. */
		assert_true(lines >= 2);
	}
	assert_has(out, "\"kind\":\"decision\"");
	assert_has(out, "\"vm\":\"vm-h\"");
	assert_has(out, "\"kind\":\"alert\"");
	assert_has(out, "\"severity\":\"warning\"");
	assert_lacks(out, "hist-other-1");
	free(out);

	/* --kind: the decision only. */
	snprintf(args, sizeof(args), "events --since 5m --host %s --kind "
	    "decision", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "hist-decision-1");
	assert_lacks(out, "hist-alert-1");
	free(out);

	/* Every host, alerts only. */
	assert_int_equal(mmctl(&out, "events --since 5m --kind alert"), 0);
	snprintf(args, sizeof(args), "alert %s vm-h (warning): hist-alert-1",
	    w.host);
	assert_has(out, args);
	assert_lacks(out, "hist-decision-1");
	assert_lacks(out, "hist-other-1");
	free(out);

	/* --since: older events are left out. */
	sleep(2);
	snprintf(args, sizeof(args), "events --host %s --since 1s", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	assert_lacks(out, "hist-decision-1");
	assert_lacks(out, "hist-alert-1");
	free(out);

	assert_int_equal(mmctl(&out, "events --kind gossip"), 2);
	free(out);
	assert_int_equal(mmctl(&out, "events --since soon"), 2);
	free(out);
	free(other);
}

/*
 * A decision event of one round of three VMs (Event.vms) is printed as
 * three decisions would be, one line each with the event's time and
 * host.
 */
static void
test_mmctl_events_prints_each_vm_of_a_round(void **state)
{
	static const char *const vms[] = { "vm-r1", "vm-r2", "vm-r3" };
	Mm__V1__VmDecision vd[3], *vp[3];
	Mm__V1__Event e = MM__V1__EVENT__INIT;
	char *out, args[256], key[128], reason[3][32], line[256];
	uint64_t now_ms = tu_wall_ms();
	struct bus *bus;
	uv_loop_t loop;

	e.has_kind = e.has_time_ms = e.has_batch_seq = true;
	e.kind = MM__V1__EVENT_KIND__EVENT_KIND_DECISION;
	e.time_ms = now_ms;
	e.host_id = w.host;
	e.batch_seq = 41;
	for (size_t i = 0; i < 3; i++) {
		mm__v1__vm_decision__init(&vd[i]);
		vd[i].vm_id = (char *)vms[i];
		snprintf(reason[i], sizeof(reason[i]), "round-%d-%zu",
		    (int)getpid(), i);
		vd[i].reason = reason[i];
		vp[i] = &vd[i];
	}
	e.n_vms = 3;
	e.vms = vp;
	bus = publisher_open(&loop);
	assert_int_equal(topo_event_key(key, sizeof(key), TOPO_EV_DECISION,
	    w.host), 0);
	assert_int_equal(msg_publish(bus, MSG_EVENT,
	    (const ProtobufCMessage *)&e, TOPO_EX_EVENTS, key, false, NULL,
	    NULL), 0);
	publisher_close(&loop, bus);

	snprintf(args, sizeof(args), "events --since 5m --host %s --kind "
	    "decision", w.host);
	assert_int_equal(mmctl(&out, args), 0);
	for (size_t i = 0; i < 3; i++) {
		snprintf(line, sizeof(line), "decision %s %s: %s\n", w.host,
		    vms[i], reason[i]);
		assert_has(out, line);
	}
	/* In the event's order. */
	assert_true(strstr(out, reason[0]) < strstr(out, reason[1]));
	assert_true(strstr(out, reason[1]) < strstr(out, reason[2]));
	free(out);
}

/* On a broker where no scheduler ever ran (here the test broker's default
 * vhost "/"), there is no history, and mmctl says why. */
static void
test_mmctl_events_without_log(void **state)
{
	const char *url = tu_broker_url(), *slash = strrchr(url, '/');
	char *out, args[600];

	assert_non_null(slash);
	snprintf(args, sizeof(args), "--broker '%.*s/%%2f' events",
	    (int)(slash - url), url);
	assert_int_equal(mmctl(&out, args), 1);
	assert_has(out, "no event history");
	assert_has(out, "\"mm.events.log\"");
	free(out);
}

/* --follow prints the history, then decisions as they happen, until
 * Ctrl-C. */
static void
test_mmctl_events_follow_shows_decisions(void **state)
{
	static const int kinds[] = { MM__V1__EVENT_KIND__EVENT_KIND_ALERT };
	static const char *const reasons[] = { "before-follow-1" };
	const char *hosts[] = { w.host };
	char *bin = tu_bin_path("mmctl"), *out, path[256];
	int pid, st;

	publish_events(1, kinds, hosts, reasons);
	snprintf(path, sizeof(path), "%s/events.out", w.dir);
	pid = fork();
	if (pid == 0) {
		freopen(path, "w", stdout);
		setenv("MM_AMQP_URL", tu_broker_url(), 1);
		execl(bin, bin, "events", "--follow", "--since", "5m",
		    "--host", w.host, (char *)NULL);
		_exit(127);
	}
	sleep(3);
	/* Still running: --follow does not stop at the end of the history. */
	assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
	report();
	sleep(3);
	kill(pid, SIGINT);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	out = slurp(path);
	fprintf(stderr, "events:\n%s", out);
	/* The history, then the decision made while following. */
	assert_has(out, "before-follow-1");
	assert_has(strstr(out, "before-follow-1"), "vm-a: grow-pressure");
	free(out);
	free(bin);
}

/* Publish on mm.policy as a broken or hostile tool would: a Policy of
 * this version (with its reset flag), or (version 0) a body that does not
 * decode. */
static void
publish_raw_policy(uint64_t version, bool reset)
{
	uv_loop_t loop;
	struct bus *bus = publisher_open(&loop);
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };
	Mm__V1__Policy p = MM__V1__POLICY__INIT;

	if (version == 0) {
		struct bus_msg m = {
			.exchange = TOPO_EX_POLICY,
			.routing_key = "",
			.body = junk,
			.len = sizeof(junk),
			.content_type = MSG_CONTENT_TYPE,
			.type = "mm.v1.Policy",
		};

		assert_int_equal(bus_publish(bus, &m, NULL, NULL), 0);
	} else {
		p.has_version = p.has_mode = true;
		p.version = version;
		p.mode = MM__V1__POLICY_MODE__POLICY_MODE_ENFORCE;
		p.name = "far ahead";
		p.has_reset = reset;
		p.reset = reset;
		assert_int_equal(msg_publish(bus, MSG_POLICY,
		    (const ProtobufCMessage *)&p, TOPO_EX_POLICY, "", true,
		    NULL, NULL), 0);
	}
	publisher_close(&loop, bus);
}

/* The scheduler's log holds needle (within a few seconds). */
static void
assert_logged(const char *needle)
{
	char *text = NULL;

	for (int i = 0; i < 50; i++) {
		free(text);
		text = slurp(w.log);
		if (strstr(text, needle) != NULL)
			break;
		usleep(100000);
	}
	if (strstr(text, needle) == NULL)
		fail_msg("scheduler log lacks \"%s\":\n%s", needle, text);
	free(text);
}

/*
 * A policy with version 2^64-1 would leave every later apply ignored: it is
 * refused, said in the log and counted, and the next ordinary apply still
 * works.
 */
static void
test_mmctl_policy_far_ahead_refused(void **state)
{
	char *example = tu_source_path("deploy/policy.example");
	char *out, args[512];

	publish_raw_policy(UINT64_MAX, false);
	assert_logged("policy 18446744073709551615 refused: version more "
	    "than 1000000 above");
	assert_int_equal(mmctl(&out, "policy show"), 0);
	assert_lacks(out, "18446744073709551615");
	free(out);
	assert_int_equal(mmctl(&out, "status"), 0);
	assert_has(out, "policies_jump 1");
	free(out);
	sleep(1);	/* mmctl's default version is the time in seconds */
	snprintf(args, sizeof(args), "policy apply %s", example);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "accepted by ");
	free(out);
	free(example);
}

/*
 * An older version is not applied silently: mmctl says the scheduler
 * ignored it and how to insist; --reset then takes it, and a version no
 * scheduler would take is not even sent.
 */
static void
test_mmctl_policy_reset(void **state)
{
	char *old = tu_write_file(w.dir, "old.policy",
	    "[policy]\nversion = 3\nname = back to 3\nmode = shadow\n");
	char *far = tu_write_file(w.dir, "far.policy",
	    "[policy]\nversion = 9007199254740992\nname = far\n");
	char *out, args[512];

	snprintf(args, sizeof(args), "policy apply %s", old);
	assert_int_equal(mmctl(&out, args), 1);
	assert_has(out, "policy 3 ignored: version ");
	assert_has(out, "in force; use --reset");
	free(out);
	snprintf(args, sizeof(args), "policy apply --reset %s", old);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "published as a reset");
	assert_has(out, "policy 3 \"back to 3\" accepted by ");
	assert_has(out, "(reset: version ");
	free(out);
	assert_int_equal(mmctl(&out, "policy show"), 0);
	assert_has(out, "version = 3\nname = back to 3\nmode = shadow");
	free(out);
	/* The same file again: already in force, no refusal. */
	snprintf(args, sizeof(args), "policy apply %s", old);
	assert_int_equal(mmctl(&out, args), 0);
	assert_has(out, "policy 3 \"back to 3\" already in force at ");
	free(out);

	snprintf(args, sizeof(args), "policy apply %s", far);
	assert_int_equal(mmctl(&out, args), 1);
	assert_has(out, "policy 9007199254740992 refused: version more than "
	    "1000000 above");
	assert_has(out, "nothing was published");
	free(out);
	assert_int_equal(mmctl(&out, "status -v"), 0);
	assert_has(out, "policies_reset 1");
	assert_has(out, "stats_malformed 0");
	free(out);
	free(old);
	free(far);
}

/* A malformed policy after good ones is logged at the default level and
 * counted, and mmctl status shows the count. */
static void
test_mmctl_malformed_policy_counted(void **state)
{
	char *out;

	publish_raw_policy(0, false);
	assert_logged("malformed policy dead-lettered");
	assert_int_equal(mmctl(&out, "status"), 0);
	assert_has(out, "policies_malformed 1");
	assert_lacks(out, "stats_malformed");	/* zero: shown with -v */
	free(out);
	assert_int_equal(mmctl(&out, "status --json"), 0);
	assert_has(out, "\"policies_malformed\": 1");
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mmctl_bad_policy_changes_nothing),
		cmocka_unit_test(test_mmctl_policy_apply_and_show),
		cmocka_unit_test(test_mmctl_status_shows_hosts),
		cmocka_unit_test(test_mmctl_events_prints_history),
		cmocka_unit_test(test_mmctl_events_prints_each_vm_of_a_round),
		cmocka_unit_test(test_mmctl_events_follow_shows_decisions),
		cmocka_unit_test(test_mmctl_events_without_log),
		cmocka_unit_test(test_mmctl_policy_far_ahead_refused),
		cmocka_unit_test(test_mmctl_policy_reset),
		cmocka_unit_test(test_mmctl_malformed_policy_counted),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, setup, teardown);
}
