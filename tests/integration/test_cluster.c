/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm on a three-node RabbitMQ cluster (scripts/rabbitmq-cluster.sh): a real
 * mm-scheduler given the three nodes' URLs decides for two simulated hosts
 * whose reports and actuators (this test) use the same list. Mid-run the
 * node that leads the first host's command queue (a quorum queue) is
 * killed. What an operator would check:
 *   - the scheduler is connected to another node within 5 s of the loss,
 *     and commands reach both hosts again;
 *   - no command batch is lost: every sequence number the scheduler used
 *     reaches its host's actuator, or was superseded by a newer batch for
 *     the same host before it was sent (the scheduler counts those), and
 *     none was refused. RabbitMQ 3.10 refuses (basic.nack) every publish
 *     to a quorum queue on a channel opened while the queue had no
 *     leader; the bus sends such messages again on a new connection, and
 *     without that this host's commands stopped for good (CI, 1 run in 3).
 * The killed node is started again at the end, so the cluster is whole for
 * what runs next.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "clock.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

#define HOSTS		2
#define MAX_SEQ		4096
#define REPORT_MS	250
#define FAILOVER_MS	5000

struct world {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *dir;
	char *log;		/* the scheduler's stderr */
	const char *urls;
	const char *ctl;
	char sched_urls[1024];	/* the leader's node first */
	uint64_t killed_ms;
	int killed;		/* the node killed, started again at teardown */
	uint64_t first_after[HOSTS];	/* first batch after the kill */
	char host[HOSTS][48];
	char sched[48];
	int pid;
	uint64_t seq;
	uint64_t time_ms;
	/* per host: which batch sequence numbers arrived, and when the
	 * last one did (monotonic ms) */
	uint8_t got[HOSTS][MAX_SEQ];
	uint64_t max_seq[HOSTS];
	uint64_t last_ms[HOSTS];
	unsigned batches;
	unsigned duplicates;
	uv_timer_t pace;
};

static struct world w;

static enum bus_disposition
on_batch(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *b = (const Mm__V1__CommandBatch *)m;

	(void)d;
	(void)arg;
	for (int h = 0; h < HOSTS; h++) {
		if (strcmp(b->host_id, w.host[h]) != 0)
			continue;
		if (b->seq == 0 || b->seq >= MAX_SEQ)
			fail_msg("host %s: batch seq %llu", w.host[h],
			    (unsigned long long)b->seq);
		/* At least once: a batch the broker had not confirmed
		 * when its node died is sent again. */
		w.duplicates += w.got[h][b->seq];
		w.got[h][b->seq] = 1;
		if (b->seq > w.max_seq[h])
			w.max_seq[h] = b->seq;
		w.last_ms[h] = clock_ms(CLOCK_MONOTONIC);
		if (w.killed_ms != 0 && w.first_after[h] == 0)
			w.first_after[h] = w.last_ms[h];
		w.batches++;
	}
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_COMMAND_BATCH, on_batch },
	};

	(void)bus;
	return msg_dispatch(table, 1, d, arg, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	(void)bus;
	(void)reason;
	(void)arg;
	w.up = up;
}

/* Every host reports, under pressure half the time, so batches change. */
static void
pace_cb(uv_timer_t *t)
{
	(void)t;
	w.time_ms += REPORT_MS;
	w.seq++;
	for (int h = 0; h < HOSTS; h++)
		tu_publish_report(w.bus, w.host[h], w.seq, w.time_ms,
		    (w.seq / 4) % 2 ? 30 : 0);
}

/* mm-scheduler with the cluster's URLs, its stderr into w.log. */
static int
start_scheduler(void)
{
	char text[2048], *conf, *bin = tu_bin_path("mm-scheduler");
	pid_t pid;

	snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
	    "state_file = %s/policy\nheartbeat = 500ms\n[bus]\nurl = %s\n",
	    w.sched, w.dir, w.sched_urls);
	conf = tu_write_file(w.dir, "scheduler.conf", text);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { bin, "-d", "-c", conf, NULL };
		int fd = open(w.log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0)
			dup2(fd, 2);
		execv(bin, argv);
		_exit(127);
	}
	free(conf);
	free(bin);
	return (int)pid;
}

/* The number in the scheduler's stop line right before what (e.g.
 * " superseded"), or -1. */
static long
stop_figure(const char *what)
{
	const char *line = tu_file_line(w.log, "stopping:");
	const char *q = strstr(line, what);

	if (q == NULL)
		return -1;
	while (q > line && q[-1] >= '0' && q[-1] <= '9')
		q--;
	return strtol(q, NULL, 10);
}

/* Run the cluster script with args; its exit status (stdout into out). */
static int
cluster(const char *args, char *out, size_t size)
{
	char cmd[1024];
	FILE *p;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "%s %s", w.ctl, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (out != NULL) {
		n = fread(out, 1, size - 1, p);
		out[n] = '\0';
	} else {
		char sink[256];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	return pclose(p);
}

/* The scheduler's log on stderr, when a check is about to fail: what it
 * did around the kill is what a reader of CI output needs. */
static void
show_log(const char *why)
{
	char *text = tu_read_file(w.log, NULL);

	fprintf(stderr, "cluster: %s; the scheduler's log:\n%s\n", why,
	    text != NULL ? text : "(none)");
	free(text);
}

/* Wait (running the loop) until every host had a batch after since. */
static bool
batches_after(uint64_t since, unsigned timeout_ms)
{
	for (unsigned t = 0; t < timeout_ms; t += 50) {
		int ok = 0;

		for (int h = 0; h < HOSTS; h++)
			ok += w.last_ms[h] > since;
		if (ok == HOSTS)
			return true;
		tu_run_for(&w.loop, 50);
	}
	return false;
}

static void
test_cluster_node_lost_nothing_confirmed_lost(void **state)
{
	struct bus_config cfg = {
		.app_id = "test-cluster",
		.state_cb = state_cb,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 1000,
	};
	char out[256], args[256], queue[128];
	uint64_t killed_ms, back_ms = 0;
	long batches, superseded, refused;
	unsigned received = 0, missing = 0;
	int leader;

	(void)state;
	snprintf(w.sched, sizeof(w.sched), "cl-sched-%d", (int)getpid());
	for (int h = 0; h < HOSTS; h++)
		snprintf(w.host[h], sizeof(w.host[h]), "cl-%d-%d",
		    (int)getpid(), h);
	w.dir = tu_tmpdir();
	w.log = malloc(strlen(w.dir) + sizeof("/scheduler.log"));
	assert_non_null(w.log);
	strcat(strcpy(w.log, w.dir), "/scheduler.log");
	w.time_ms = tu_wall_ms();
	cfg.url = w.urls;
	uv_loop_init(&w.loop);
	w.bus = bus_new(&w.loop, &cfg);
	assert_non_null(w.bus);
	assert_int_equal(topo_declare_stats_exchange(w.bus), 0);
	for (int h = 0; h < HOSTS; h++) {
		assert_int_equal(topo_declare_actuator_queue(w.bus, w.host[h]),
		    0);
		assert_int_equal(topo_actuator_queue(queue, sizeof(queue),
		    w.host[h]), 0);
		assert_int_equal(bus_consume(w.bus, queue, false, delivery_cb,
		    NULL), 0);
	}
	assert_int_equal(bus_start(w.bus), 0);
	assert_true(tu_run_until(&w.loop, &w.up, 20000));

	/* The node that leads the first host's command queue is the one
	 * killed; the scheduler is connected to it (its URL first), so it
	 * has to fail over. */
	assert_int_equal(topo_actuator_queue(queue, sizeof(queue),
	    w.host[0]), 0);
	snprintf(args, sizeof(args), "leader %s", queue);
	for (int i = 0; i < 50; i++) {
		if (cluster(args, out, sizeof(out)) == 0)
			break;
		tu_run_for(&w.loop, 200);
	}
	leader = atoi(out);
	assert_true(leader >= 1 && leader <= 3);
	{
		char name[32];
		const char *u;
		size_t off = 0;

		for (int n = 0; n < 3; n++) {
			int node = (leader - 1 + n) % 3 + 1;

			snprintf(name, sizeof(name), "MM_TEST_CLUSTER_URL%d",
			    node);
			u = getenv(name);
			assert_non_null(u);
			off += (size_t)snprintf(w.sched_urls + off,
			    sizeof(w.sched_urls) - off, "%s%s", n ? "," : "",
			    u);
		}
	}
	w.pid = start_scheduler();
	uv_timer_init(&w.loop, &w.pace);
	uv_timer_start(&w.pace, pace_cb, REPORT_MS, REPORT_MS);
	assert_true(batches_after(0, 30000));
	tu_run_for(&w.loop, 3000);

	/* Kill it. */
	fprintf(stderr, "cluster: %s led by node %d; killing it (%u batches "
	    "so far)\n", queue, leader, w.batches);
	snprintf(args, sizeof(args), "kill-node %d", leader);
	assert_int_equal(cluster(args, NULL, 0), 0);
	w.killed = leader;
	killed_ms = clock_ms(CLOCK_MONOTONIC);
	w.killed_ms = killed_ms;

	/* The scheduler on another node, and batches to both hosts again. */
	for (unsigned t = 0; t < 3 * FAILOVER_MS && back_ms == 0; t += 50) {
		tu_run_for(&w.loop, 50);
		if (tu_file_count(w.log, "connected to the broker at") >= 2)
			back_ms = clock_ms(CLOCK_MONOTONIC);
	}
	if (!batches_after(killed_ms, 30000)) {
		for (int h = 0; h < HOSTS; h++)
			fprintf(stderr, "cluster: host %s: last batch %lld ms "
			    "after the kill\n", w.host[h],
			    (long long)(w.last_ms[h] - killed_ms));
		/* Its stop line counts what it received and sent. */
		(void)tu_stop(w.pid, 5000);
		w.pid = 0;
		show_log("no batches to both hosts within 30 s of the kill");
		fail();
	}
	fprintf(stderr, "cluster: scheduler reconnected %llu ms after the "
	    "kill (connections: %u); batches to both hosts again %llu ms "
	    "after it\n", back_ms ? (unsigned long long)(back_ms - killed_ms) :
	    0ull, tu_file_count(w.log, "connected to the broker at"),
	    (unsigned long long)((w.first_after[0] > w.first_after[1] ?
	    w.first_after[0] : w.first_after[1]) - killed_ms));
	/* A graceful close tells the client at once; a killed node only
	 * when the kernel resets the socket: either way well within. */
	assert_true(back_ms != 0);
	assert_true(back_ms - killed_ms <= FAILOVER_MS);

	/* Some more rounds on the two nodes left, then stop and count. */
	tu_run_for(&w.loop, 3000);
	uv_timer_stop(&w.pace);
	assert_int_equal(tu_stop(w.pid, 10000), 0);
	w.pid = 0;
	tu_run_for(&w.loop, 2000);
	batches = stop_figure(" batches (");
	superseded = stop_figure(" superseded");
	refused = stop_figure(" not sent");
	for (int h = 0; h < HOSTS; h++)
		for (uint64_t s = 1; s <= w.max_seq[h]; s++) {
			received += w.got[h][s];
			missing += !w.got[h][s];
		}
	fprintf(stderr, "cluster: the scheduler sent %ld batches (%ld "
	    "superseded, %ld not sent); the actuators got %u distinct (%u "
	    "twice), %u sequence numbers missing\n", batches, superseded,
	    refused, received, w.duplicates, missing);
	assert_true(batches > 0);
	assert_int_equal(refused, 0);
	/* Every batch the scheduler published arrived or was superseded:
	 * the sequence numbers reach as far as it counted, and there are
	 * no more gaps than superseded batches. A batch in flight when the
	 * connection was lost is superseded by a newer one for its host
	 * rather than sent again, though the broker may have taken it:
	 * superseded ones can arrive too. */
	assert_int_equal((long)(received + missing), batches);
	assert_true((long)missing <= superseded);

	bus_close(w.bus, 1000, NULL, NULL);
	uv_close((uv_handle_t *)&w.pace, NULL);
	assert_int_equal(tu_loop_finish(&w.loop), 0);
	tu_rmtree(w.dir);
	free(w.dir);
	free(w.log);
}

/* The killed node is started again whether the test passed or not: the
 * tests after this one need the whole cluster. */
static int
restart_killed(void **state)
{
	char args[32];

	(void)state;
	if (w.killed == 0)
		return 0;
	if (w.pid > 0)
		(void)tu_stop(w.pid, 5000);
	snprintf(args, sizeof(args), "start-node %d", w.killed);
	w.killed = 0;
	return cluster(args, NULL, 0) == 0 ? 0 : -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
		    test_cluster_node_lost_nothing_confirmed_lost,
		    restart_killed),
	};

	w.urls = getenv("MM_TEST_CLUSTER_URLS");
	w.ctl = getenv("MM_TEST_CLUSTER_CTL");
	if (w.urls == NULL || *w.urls == '\0' || w.ctl == NULL) {
		fprintf(stderr, "skipped: MM_TEST_CLUSTER_URLS is not set; "
		    "scripts/test.sh starts a cluster "
		    "(scripts/rabbitmq-cluster.sh) and sets it\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
