/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two mm-schedulers sharing a fleet through the consistent-hash exchange:
 * every host's commands come from exactly one of them, both get a share,
 * and when one leaves, its hosts are taken over by the other.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

#define HOSTS	24

struct world {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *dir;
	char host[HOSTS][32];
	char sched[2][48];
	int pid[2];
	/* bit s of owner[h]: scheduler s sent host h a batch this phase */
	unsigned owner[HOSTS];
	unsigned batches;
	uint64_t seq;
	uint64_t time_ms;
};

static struct world w;

static enum bus_disposition
on_batch(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *b = (const Mm__V1__CommandBatch *)m;

	for (int h = 0; h < HOSTS; h++) {
		if (strcmp(b->host_id, w.host[h]) != 0)
			continue;
		for (int s = 0; s < 2; s++)
			if (strcmp(b->scheduler_id, w.sched[s]) == 0)
				w.owner[h] |= 1u << s;
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

	return msg_dispatch(table, 1, d, NULL, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	w.up = up;
}

static int
start_scheduler(int s)
{
	char text[1024], name[32], *conf, *bin = tu_bin_path("mm-scheduler");
	int pid;

	snprintf(text, sizeof(text), "[scheduler]\nid = %s\nshard = yes\n"
	    "state_file = %s/policy-%d\n[bus]\nurl = %s\n", w.sched[s], w.dir,
	    s, tu_broker_url());
	snprintf(name, sizeof(name), "scheduler-%d.conf", s);
	conf = tu_write_file(w.dir, name, text);
	{
		char *argv[] = { bin, "-d", "-c", conf, NULL };

		pid = tu_spawn(argv);
	}
	free(conf);
	free(bin);
	return pid;
}

/* Every host reports once; wait until each has had a batch. */
static void
report_round(void)
{
	memset(w.owner, 0, sizeof(w.owner));
	w.time_ms += 1000;
	w.seq++;
	for (int h = 0; h < HOSTS; h++)
		assert_int_equal(tu_publish_report(w.bus, w.host[h], w.seq,
		    w.time_ms, 30), 0);
	for (int t = 0; t < 200; t++) {
		int done = 0;

		tu_run_for(&w.loop, 50);
		for (int h = 0; h < HOSTS; h++)
			done += w.owner[h] != 0;
		if (done == HOSTS)
			break;
	}
}

static void
test_sharding_each_host_one_owner_and_handover(void **state)
{
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-sharding",
		.state_cb = state_cb,
	};
	const struct bus_queue_opts q = { .exclusive = true,
	    .auto_delete = true };
	char *cq = tu_unique("mm.test.shard-cmds");
	unsigned owned[2] = { 0, 0 };
	int pid = (int)getpid();

	w.dir = tu_tmpdir();
	w.time_ms = 1700000000000ull;
	for (int s = 0; s < 2; s++)
		snprintf(w.sched[s], sizeof(w.sched[s]), "shard-%d-%d", pid, s);
	uv_loop_init(&w.loop);
	w.bus = bus_new(&w.loop, &cfg);
	assert_non_null(w.bus);
	topo_declare_stats_exchange(w.bus);
	bus_declare_queue(w.bus, cq, &q);
	for (int h = 0; h < HOSTS; h++) {
		snprintf(w.host[h], sizeof(w.host[h]), "sh-%d-%d", pid, h);
		topo_declare_actuator_queue(w.bus, w.host[h]);
		bus_bind(w.bus, cq, TOPO_EX_COMMANDS, w.host[h]);
	}
	bus_consume(w.bus, cq, false, delivery_cb, NULL);
	assert_int_equal(bus_start(w.bus), 0);
	assert_true(tu_run_until(&w.loop, &w.up, 10000));
	w.pid[0] = start_scheduler(0);
	w.pid[1] = start_scheduler(1);
	tu_run_for(&w.loop, 2000);

	/* Two rounds, so a host never moves between them. */
	for (int round = 0; round < 2; round++) {
		report_round();
		for (int h = 0; h < HOSTS; h++) {
			if (w.owner[h] != 1 && w.owner[h] != 2)
				fail_msg("round %d: host %s answered by mask "
				    "%u", round, w.host[h], w.owner[h]);
			owned[w.owner[h] - 1]++;
		}
	}
	fprintf(stderr, "sharding: %u and %u host-rounds\n", owned[0],
	    owned[1]);
	assert_true(owned[0] > 0);
	assert_true(owned[1] > 0);

	/* Scheduler 0 leaves: its queue and binding go with it. */
	assert_int_equal(tu_stop(w.pid[0], 5000), 0);
	tu_run_for(&w.loop, 1000);
	report_round();
	for (int h = 0; h < HOSTS; h++)
		if (w.owner[h] != 2)
			fail_msg("after scheduler 0 left: host %s answered by "
			    "mask %u", w.host[h], w.owner[h]);
	assert_int_equal(tu_stop(w.pid[1], 5000), 0);
	bus_close(w.bus, 1000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&w.loop), 0);
	tu_rmtree(w.dir);
	free(cq);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_sharding_each_host_one_owner_and_handover),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
