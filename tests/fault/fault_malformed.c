/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A malformed message (bytes that are no protobuf message, with the right
 * AMQP type) on every queue the daemons of a running system consume: the
 * scheduler's stats, policy, control and results queues and the
 * actuator's command queue. Each is dead-lettered to mm.dead, counted by
 * the daemon that refused it (its stop line), and every daemon keeps
 * running and handling the good messages that follow: a new policy is
 * accepted, reports are decided on, the actuator keeps taking the
 * scheduler's batches (its fail-safe stays off), a restarted actuator's
 * request for its targets (a result) is answered, and mmctl status gets
 * its reply.
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

#include "clock.h"
#include "fault_util.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

static struct fu F;

enum { Q_STATS, Q_ACTUATOR, Q_POLICY, Q_CONTROL, Q_RESULTS, NQ };

static const char *const queue_names[NQ] = {
	"stats", "actuator", "policy", "control", "results",
};

static unsigned results_before;
static char *id[NQ];

static bool
results_again(struct fu *f)
{
	return f->results > results_before && fu_converged(f);
}

/* The number just before needle in line ("7 malformed reports" -> 7),
 * -1 when needle is not there. */
static long
count_before(const char *line, const char *needle)
{
	const char *p = strstr(line, needle);

	if (p == NULL)
		return -1;
	while (p > line && p[-1] == ' ')
		p--;
	while (p > line && p[-1] >= '0' && p[-1] <= '9')
		p--;
	return strtol(p, NULL, 10);
}

static void
test_fault_malformed_everywhere(void **state)
{
	char key[160], *cmd, *bin, out[4096], accepted[160];
	char missing[1024] = "";
	struct fu_dead dead[NQ] = { 0 };
	const char *types[NQ] = {
		msg_type_name(MSG_HOST_REPORT),
		msg_type_name(MSG_COMMAND_BATCH), msg_type_name(MSG_POLICY),
		msg_type_name(MSG_STATUS_REQUEST), msg_type_name(MSG_EVENT),
	};
	unsigned fs_on, decisions;
	uint64_t v2;
	const char *line;
	long n;
	FILE *p;
	size_t len;
	int st;

	fu_start(&F, &(struct fu_opts){
	    .act_extra = "failsafe_after = 3s\n",
	    .sched_extra = "heartbeat = 1s\n",
	});
	for (int i = 0; i < NQ; i++) {
		char prefix[32];

		snprintf(prefix, sizeof(prefix), "bad-%s", queue_names[i]);
		id[i] = tu_unique(prefix);
	}
	fs_on = fu_log_count(&F.act, "fail-safe on");
	decisions = F.decisions;

	/* Another host's key: the test's own queue does not see it. */
	fu_publish_garbage(&F, TOPO_EX_STATS, "host.fault-garbage",
	    types[Q_STATS], id[Q_STATS]);
	fu_publish_garbage(&F, TOPO_EX_COMMANDS, F.host_id, types[Q_ACTUATOR],
	    id[Q_ACTUATOR]);
	fu_publish_garbage(&F, TOPO_EX_POLICY, "", types[Q_POLICY],
	    id[Q_POLICY]);
	fu_publish_garbage(&F, TOPO_EX_CONTROL, TOPO_CONTROL_STATUS,
	    types[Q_CONTROL], id[Q_CONTROL]);
	topo_event_key(key, sizeof(key), TOPO_EV_RESULT, "fault-garbage");
	fu_publish_garbage(&F, TOPO_EX_EVENTS, key, types[Q_RESULTS],
	    id[Q_RESULTS]);

	/* Good messages after the bad: a new policy, reports decided on,
	 * the scheduler's batches (heartbeats every second) keeping the
	 * actuator's fail-safe (3 s) off. */
	fu_run_for(&F, 500);
	v2 = clock_ms(CLOCK_REALTIME);
	fu_publish_policy(&F, v2, "fault-2", 0);
	snprintf(accepted, sizeof(accepted), "policy %llu \"fault-2\" accepted",
	    (unsigned long long)v2);
	if (fu_wait_log(&F, &F.sched, accepted, 0, 10000) < 0)
		fail_msg("the policy after the malformed one not accepted: %s",
		    fu_log_line(&F.sched, ""));
	fu_run_for(&F, 6000);
	assert_true(fu_daemon_alive(&F.sched));
	assert_true(fu_daemon_alive(&F.act));
	assert_true(fu_daemon_alive(&F.col));
	fprintf(stderr, "fault: after the malformed messages: %u decisions "
	    "in 6 s, actuator's fail-safe on %u time(s)\n",
	    F.decisions - decisions, fu_log_count(&F.act, "fail-safe on") -
	    fs_on);
	assert_true(F.decisions > decisions);
	assert_int_equal(fu_log_count(&F.act, "fail-safe on"), fs_on);

	/* A restarted actuator asks for its targets with a result on the
	 * results queue: answered. */
	assert_int_equal(fu_daemon_stop(&F.act), 0);
	line = fu_log_line(&F.act, "stopped:");
	fprintf(stderr, "fault: actuator: %s\n", line);
	assert_int_equal(count_before(line, "malformed"), 1);
	results_before = F.results;
	fu_daemon_start(&F, &F.act);
	n = fu_run_until(&F, results_again, 10000);
	if (n < 0)
		fail_msg("a restarted actuator's sync not answered in 10 s");
	fprintf(stderr, "fault: restarted actuator's targets back in %ld ms\n",
	    n);

	/* mmctl status gets its reply from the scheduler. */
	bin = tu_bin_path("mmctl");
	if (asprintf(&cmd, "MM_AMQP_URL='%s' timeout 30 %s status 2>&1",
	    tu_broker_url(), bin) < 0)
		abort();
	p = popen(cmd, "r");
	assert_non_null(p);
	len = fread(out, 1, sizeof(out) - 1, p);
	out[len] = '\0';
	st = pclose(p);
	free(cmd);
	free(bin);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    strstr(out, F.sched_id) == NULL)
		fail_msg("mmctl status after a malformed control request: "
		    "status %d, output:\n%s", st, out);

	/* Counted: the stop lines. */
	assert_int_equal(fu_daemon_stop(&F.sched), 0);
	assert_int_equal(fu_daemon_stop(&F.act), 0);
	line = fu_log_line(&F.sched, "stopping:");
	fprintf(stderr, "fault: scheduler: %s\n", line);
	assert_int_equal(count_before(line, "malformed reports"), 1);
	assert_int_equal(count_before(line, "malformed policies"), 1);
	assert_int_equal(count_before(line, "malformed control requests"), 1);
	if (count_before(line, "malformed results") != 1)
		strcat(missing, " results not counted by the scheduler "
		    "(no \"malformed results\" in its stop line);");

	/* Dead-lettered, each with its type. */
	fu_finish(&F);
	for (int i = 0; i < NQ; i++)
		dead[i].message_id = id[i];
	fu_find_dead(dead, NQ, 10000);
	for (int i = 0; i < NQ; i++) {
		fprintf(stderr, "fault: %s queue: %s %s\n", queue_names[i],
		    id[i], dead[i].found ? "dead-lettered" : "NOT on mm.dead");
		if (!dead[i].found) {
			snprintf(missing + strlen(missing), sizeof(missing) -
			    strlen(missing), " %s not dead-lettered;",
			    queue_names[i]);
			continue;
		}
		assert_string_equal(dead[i].type, types[i]);
	}
	if (missing[0] != '\0')
		fail_msg("malformed messages:%s", missing);
}

static int
teardown(void **state)
{
	fu_kill_all(&F);
	for (int i = 0; i < NQ; i++) {
		free(id[i]);
		id[i] = NULL;
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_fault_malformed_everywhere,
		    teardown),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
