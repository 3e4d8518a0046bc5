/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Two mm-schedulers sharing a fleet through the consistent-hash exchange:
 * every host's commands come from exactly one of them, both get a share,
 * and when one leaves, its hosts are taken over by the other. The hosts'
 * history goes with them, when a scheduler joins and when one leaves.
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
	    "state_file = %s/policy-%d\nhistory_file = %s/history-%d\n"
	    "handover_after = 3s\n[bus]\nurl = %s\n", w.sched[s], w.dir,
	    s, w.dir, s, tu_broker_url());
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
	if (w.time_ms < tu_wall_ms())
		w.time_ms = tu_wall_ms();
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

/* A bus that sees every host's commands, hosts and schedulers named
 * after tag (the schedulers not started). */
static void
world_open(const char *tag)
{
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-sharding",
		.state_cb = state_cb,
	};
	const struct bus_queue_opts q = { .exclusive = true,
	    .auto_delete = true };
	char *cq = tu_unique("mm.test.shard-cmds");
	int pid = (int)getpid();

	memset(&w, 0, sizeof(w));
	w.dir = tu_tmpdir();
	w.time_ms = tu_wall_ms();
	for (int s = 0; s < 2; s++)
		snprintf(w.sched[s], sizeof(w.sched[s]), "%s-%d-%d", tag, pid,
		    s);
	uv_loop_init(&w.loop);
	w.bus = bus_new(&w.loop, &cfg);
	assert_non_null(w.bus);
	topo_declare_stats_exchange(w.bus);
	bus_declare_queue(w.bus, cq, &q);
	for (int h = 0; h < HOSTS; h++) {
		snprintf(w.host[h], sizeof(w.host[h]), "%s-h%d-%d", tag, pid,
		    h);
		topo_declare_actuator_queue(w.bus, w.host[h]);
		bus_bind(w.bus, cq, TOPO_EX_COMMANDS, w.host[h]);
	}
	bus_consume(w.bus, cq, false, delivery_cb, NULL);
	assert_int_equal(bus_start(w.bus), 0);
	assert_true(tu_run_until(&w.loop, &w.up, 10000));
	free(cq);
}

static void
world_close(void)
{
	bus_close(w.bus, 1000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&w.loop), 0);
	tu_rmtree(w.dir);
	free(w.dir);
	w.dir = NULL;
}

static void
test_sharding_each_host_one_owner_and_handover(void **state)
{
	unsigned owned[2] = { 0, 0 };

	world_open("sh");
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
	world_close();
}

/* The history file format (scheduler/history.c), written and read here
 * on its own. Hours of the test's VM: HIST_H, the newest the current. */
#define HIST_H	10
#define HIST_VM	"vm-a"

static uint32_t
seeded_mib(int h, uint32_t k)
{
	return 1000u + (uint32_t)h * 10u + k;
}

static void
write_history(const char *path, uint64_t hour)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	fwrite("MMHIST01", 1, 8, f);
	for (int h = 0; h < HOSTS; h++) {
		uint8_t hl = (uint8_t)strlen(w.host[h]), vl = sizeof(HIST_VM) - 1;
		uint32_t hours = HIST_H, mib[HIST_H];

		for (uint32_t k = 0; k < HIST_H; k++)
			mib[k] = seeded_mib(h, k);
		fwrite(&hl, 1, 1, f);
		fwrite(w.host[h], 1, hl, f);
		fwrite(&vl, 1, 1, f);
		fwrite(HIST_VM, 1, vl, f);
		fwrite(&hour, sizeof(hour), 1, f);
		fwrite(&hours, sizeof(hours), 1, f);
		fwrite(mib, sizeof(mib[0]), HIST_H, f);
	}
	assert_int_equal(fclose(f), 0);
}

/* How many hosts' HIST_VM in the history file at path hold every seeded
 * hour before the newest (the hours no report of the test covers). */
static int
hosts_with_seeded_history(const char *path, uint64_t seeded_hour)
{
	size_t len, off = 8;
	uint8_t *b = (uint8_t *)tu_read_file(path, &len);
	int found = 0;

	assert_non_null(b);
	assert_memory_equal(b, "MMHIST01", 8);
	while (off < len) {
		char host[65] = "", vm[65] = "";
		uint8_t hl = b[off], vl;
		uint64_t hour;
		uint32_t hours, mib;
		int h, ok = 1;

		memcpy(host, b + off + 1, hl);
		off += 1 + hl;
		vl = b[off];
		memcpy(vm, b + off + 1, vl);
		off += 1 + vl;
		memcpy(&hour, b + off, 8);
		memcpy(&hours, b + off + 8, 4);
		off += 12;
		for (h = 0; h < HOSTS && strcmp(host, w.host[h]) != 0; h++)
			;
		for (uint32_t k = 1; k < HIST_H && h < HOSTS &&
		    strcmp(vm, HIST_VM) == 0; k++) {
			/* The seeded hour seeded_hour - k, wherever the
			 * newest hour is now. */
			uint64_t at = hour - (seeded_hour - k);

			if (at >= hours) {
				ok = 0;
				break;
			}
			memcpy(&mib, b + off + at * 4, 4);
			ok &= mib == seeded_mib(h, (uint32_t)k);
		}
		found += ok && h < HOSTS && strcmp(vm, HIST_VM) == 0;
		off += (size_t)hours * 4;
	}
	free(b);
	return found;
}

/*
 * Scheduler 0 knows a week... ten hours of every host from its history
 * file. Scheduler 1 joins with none: the hosts that move to it fall
 * silent at 0, which hands their history over (handover_after). Then 0
 * leaves and hands over the rest. Scheduler 1, stopped, has saved the
 * ten seeded hours of every host: none of them were in any report.
 */
static void
test_sharding_history_moves_with_the_hosts(void **state)
{
	uint64_t hour = tu_wall_ms() / 3600000;
	char path[4200];
	int moved = 0;

	world_open("shh");
	snprintf(path, sizeof(path), "%s/history-0", w.dir);
	write_history(path, hour);
	w.pid[0] = start_scheduler(0);
	tu_run_for(&w.loop, 2000);
	report_round();
	report_round();

	/* Scheduler 1 joins: hosts move to it; 0 hears no more of them. */
	w.pid[1] = start_scheduler(1);
	tu_run_for(&w.loop, 2000);
	for (int t = 0; t < 8; t++) {
		report_round();
		tu_run_for(&w.loop, 500);
	}
	for (int h = 0; h < HOSTS; h++)
		moved += w.owner[h] == 2;
	fprintf(stderr, "history: %d of %d hosts moved to the new "
	    "scheduler\n", moved, HOSTS);
	assert_true(moved > 0 && moved < HOSTS);

	/* Scheduler 0 leaves: 1 takes the rest, with their history. */
	assert_int_equal(tu_stop(w.pid[0], 5000), 0);
	tu_run_for(&w.loop, 1000);
	report_round();
	report_round();
	for (int h = 0; h < HOSTS; h++)
		assert_int_equal(w.owner[h], 2);
	assert_int_equal(tu_stop(w.pid[1], 5000), 0);
	snprintf(path, sizeof(path), "%s/history-1", w.dir);
	assert_int_equal(hosts_with_seeded_history(path, hour), HOSTS);
	world_close();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_sharding_each_host_one_owner_and_handover),
		cmocka_unit_test(test_sharding_history_moves_with_the_hosts),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
