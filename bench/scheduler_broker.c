/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler through a real RabbitMQ: simulated hosts of 50 VMs report
 * once a second each (spread evenly), one VM of each report under
 * pressure so that every report yields a command batch, and apply the
 * balloon targets they are sent, as actuators would. Prints the
 * scheduler's CPU share (from /proc) and the latency from a report's
 * publication to its batch's delivery. Prints figures; never passes or
 * fails on them.
 *
 *   scheduler_broker -b path/to/mm-scheduler [-u URL] [-H hosts]
 *                    [-v vms] [-s seconds]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "log.h"
#include "msg.h"
#include "topology.h"

#define GiB	(1024ull * 1024ull)
#define SLOTS	64
#define MAX_LAT	(1u << 22)

struct bench {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	size_t hosts;
	size_t vms;
	char (*host_ids)[32];
	uint64_t *targets;	/* hosts * vms: the balloon targets applied */
	uint64_t *sent_ns;	/* hosts * SLOTS, by report seq */
	uint64_t seq;		/* round number */
	size_t next_host;	/* within the round */
	uint64_t round_start_ns;
	uint64_t published;
	uint64_t batches;
	bool measuring;
	uint64_t measure_ns;	/* reports sent before are not measured */
	uint32_t *lat_us;
	size_t nlat;
	uv_timer_t pace;
	uint64_t end_ns;
	bool done;

	Mm__V1__HostReport report;
	Mm__V1__HostStats hs;
	Mm__V1__Meminfo hm;
	Mm__V1__GuestStats *g;
	Mm__V1__GuestStats **gp;
	Mm__V1__Meminfo *gm;
	Mm__V1__Psi *psi;
	char (*vm_ids)[24];
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
build(struct bench *b)
{
	size_t n = b->vms;

	mm__v1__host_report__init(&b->report);
	mm__v1__host_stats__init(&b->hs);
	mm__v1__meminfo__init(&b->hm);
	b->hm.has_total_kib = b->hm.has_available_kib = true;
	b->hm.total_kib = n * 4 * GiB;
	b->hm.available_kib = n * GiB;
	b->hs.meminfo = &b->hm;
	b->g = calloc(n, sizeof(*b->g));
	b->gp = calloc(n, sizeof(*b->gp));
	b->gm = calloc(n, sizeof(*b->gm));
	b->psi = calloc(n, sizeof(*b->psi));
	b->vm_ids = calloc(n, sizeof(*b->vm_ids));
	if (!b->g || !b->gp || !b->gm || !b->psi || !b->vm_ids)
		fatal("calloc");
	for (size_t i = 0; i < n; i++) {
		mm__v1__guest_stats__init(&b->g[i]);
		mm__v1__meminfo__init(&b->gm[i]);
		mm__v1__psi__init(&b->psi[i]);
		snprintf(b->vm_ids[i], sizeof(b->vm_ids[i]), "vm-%zu", i);
		b->g[i].vm_id = b->vm_ids[i];
		/* 1.8 of 2 GiB used: inside the dead band, no shrinking. */
		b->gm[i].has_total_kib = b->gm[i].has_available_kib = true;
		b->gm[i].total_kib = 2 * GiB;
		b->gm[i].available_kib = 200 * 1024;
		b->g[i].meminfo = &b->gm[i];
		b->psi[i].has_some_avg10_pct = true;
		b->g[i].psi = &b->psi[i];
		b->g[i].has_balloon_target_kib = true;
		b->g[i].has_balloon_actual_kib = true;
		b->g[i].balloon_target_kib = b->g[i].balloon_actual_kib =
		    2 * GiB;
		b->g[i].has_max_kib = true;
		b->g[i].max_kib = 8 * GiB;
		b->gp[i] = &b->g[i];
	}
	b->report.has_seq = b->report.has_time_ms = true;
	b->report.host = &b->hs;
	b->report.n_guests = n;
	b->report.guests = b->gp;
}

static void
publish_next(struct bench *b)
{
	size_t h = b->next_host++;
	size_t hot = (size_t)(b->seq + h) % b->vms;
	char key[64];

	for (size_t i = 0; i < b->vms; i++) {
		uint64_t t = b->targets[h * b->vms + i];

		b->psi[i].some_avg10_pct = i == hot ? 30 : 0;
		b->g[i].balloon_target_kib = b->g[i].balloon_actual_kib = t;
		b->gm[i].total_kib = t;
		b->gm[i].available_kib = t > 1843200 ? t - 1843200 : 0;
	}
	b->report.host_id = b->host_ids[h];
	b->report.seq = b->seq;
	b->report.time_ms = clock_ms(CLOCK_REALTIME);
	snprintf(key, sizeof(key), "host.%s", b->host_ids[h]);
	b->sent_ns[h * SLOTS + b->seq % SLOTS] = now_ns();
	if (msg_publish(b->bus, MSG_HOST_REPORT,
	    (const ProtobufCMessage *)&b->report, TOPO_EX_STATS, key, false,
	    NULL, NULL) == 0)
		b->published++;
}

/* Each host once a second, spread over the second. */
static void
pace_cb(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = now_ns();
	size_t due;

	if (now >= b->end_ns) {
		uv_timer_stop(t);
		b->done = true;
		return;
	}
	if (now - b->round_start_ns >= 1000000000ull) {
		while (b->next_host < b->hosts)	/* finish a late round */
			publish_next(b);
		b->seq++;
		b->next_host = 0;
		b->round_start_ns += 1000000000ull;
	}
	due = (size_t)((now - b->round_start_ns) * b->hosts / 1000000000ull);
	while (b->next_host < due && b->next_host < b->hosts)
		publish_next(b);
}

static enum bus_disposition
on_batch(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *cb = (const Mm__V1__CommandBatch *)m;
	struct bench *b = arg;
	size_t h;

	b->batches++;
	/* Host ids are "bench-<n>", VM ids "vm-<n>". */
	h = strtoul(cb->host_id + 6, NULL, 10);
	for (size_t i = 0; h < b->hosts && i < cb->n_commands; i++) {
		const Mm__V1__Command *c = cb->commands[i];
		size_t vm;

		if (c->kind_case != MM__V1__COMMAND__KIND_BALLOON)
			continue;
		vm = strtoul(c->balloon->vm_id + 3, NULL, 10);
		if (vm < b->vms)
			b->targets[h * b->vms + vm] = c->balloon->target_kib;
	}
	if (!b->measuring || b->nlat >= MAX_LAT)
		return BUS_ACK;
	if (h < b->hosts && cb->report_seq + SLOTS > b->seq) {
		uint64_t sent = b->sent_ns[h * SLOTS + cb->report_seq % SLOTS];

		if (sent >= b->measure_ns)
			b->lat_us[b->nlat++] = (uint32_t)((now_ns() - sent) /
			    1000);
	}
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_COMMAND_BATCH, on_batch },
	};

	return msg_dispatch(table, 1, d, arg, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	((struct bench *)arg)->up = up;
	if (!up)
		fprintf(stderr, "scheduler_broker: %s\n", reason);
}

static double
cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
		fatal("%s", path);
	fclose(f);
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2)
		fatalx("%s: unexpected format", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
run_until(uv_loop_t *loop, const bool *flag)
{
	while (!*flag)
		uv_run(loop, UV_RUN_ONCE);
}

static void
run_for(struct bench *b, uint64_t ns)
{
	uint64_t end = now_ns() + ns;

	while (now_ns() < end)
		uv_run(&b->loop, UV_RUN_NOWAIT), usleep(1000);
}

int
main(int argc, char **argv)
{
	static struct bench b;
	const char *url = getenv("MM_TEST_AMQP_URL"), *bin = NULL;
	char dir[] = "/tmp/mm-bench.XXXXXX", conf[256], text[1024], q[64];
	const struct bus_queue_opts qo = { .exclusive = true,
	    .auto_delete = true };
	double seconds = 20, c0, c1;
	uint64_t t0, t1, batches0;
	pid_t pid;
	FILE *f;
	int c;

	b.hosts = 1000;
	b.vms = 50;
	while ((c = getopt(argc, argv, "b:u:H:v:s:")) != -1) {
		switch (c) {
		case 'b':
			bin = optarg;
			break;
		case 'u':
			url = optarg;
			break;
		case 'H':
			b.hosts = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			b.vms = strtoul(optarg, NULL, 10);
			break;
		case 's':
			seconds = atof(optarg);
			break;
		default:
			goto usage;
		}
	}
	if (bin == NULL || url == NULL || b.hosts == 0 || b.vms == 0)
		goto usage;
	log_init("scheduler_broker", 0, false);
	b.host_ids = calloc(b.hosts, sizeof(*b.host_ids));
	b.targets = calloc(b.hosts * b.vms, sizeof(*b.targets));
	if (b.targets == NULL)
		fatal("calloc");
	for (size_t i = 0; i < b.hosts * b.vms; i++)
		b.targets[i] = 2 * GiB;
	b.sent_ns = calloc(b.hosts * SLOTS, sizeof(*b.sent_ns));
	b.lat_us = calloc(MAX_LAT, sizeof(*b.lat_us));
	if (!b.host_ids || !b.sent_ns || !b.lat_us || !mkdtemp(dir))
		fatal("setup");
	for (size_t h = 0; h < b.hosts; h++)
		snprintf(b.host_ids[h], sizeof(b.host_ids[h]), "bench-%zu", h);
	build(&b);

	snprintf(conf, sizeof(conf), "%s/scheduler.conf", dir);
	snprintf(text, sizeof(text), "[scheduler]\nid = bench-sched\n"
	    "state_file = %s/policy\n"
	    "[bus]\nurl = %s\nprefetch = 500\n", dir, url);
	f = fopen(conf, "w");
	if (f == NULL)
		fatal("%s", conf);
	fputs(text, f);
	fclose(f);

	uv_loop_init(&b.loop);
	{
		struct bus_config bc = { .url = url, .app_id = "bench-fleet",
		    .state_cb = state_cb, .state_arg = &b, .prefetch = 1000,
		    .outbox_max = 100000 };

		b.bus = bus_new(&b.loop, &bc);
	}
	if (b.bus == NULL)
		fatal("bus_new");
	snprintf(q, sizeof(q), "mm.bench.cmds.%d", (int)getpid());
	topo_declare_stats_exchange(b.bus);
	topo_declare_commands_exchange(b.bus);
	bus_declare_queue(b.bus, q, &qo);
	for (size_t h = 0; h < b.hosts; h++)
		bus_bind(b.bus, q, TOPO_EX_COMMANDS, b.host_ids[h]);
	bus_consume(b.bus, q, false, delivery_cb, &b);
	bus_start(b.bus);
	run_until(&b.loop, &b.up);

	pid = fork();
	if (pid == 0) {
		execl(bin, bin, "-d", "-c", conf, (char *)NULL);
		_exit(127);
	}
	run_for(&b, 2000000000ull);

	/* Warm up for 5 s (every host seen, the first-seen work done), then
	 * measure the reports sent from then on. */
	uv_timer_init(&b.loop, &b.pace);
	b.pace.data = &b;
	b.round_start_ns = now_ns();
	b.end_ns = b.round_start_ns + (uint64_t)((5 + seconds) * 1e9);
	uv_timer_start(&b.pace, pace_cb, 1, 1);
	run_for(&b, 5000000000ull);
	b.measuring = true;
	b.measure_ns = now_ns();
	c0 = cpu_s(pid);
	t0 = now_ns();
	batches0 = b.batches;
	run_until(&b.loop, &b.done);
	c1 = cpu_s(pid);
	t1 = now_ns();
	run_for(&b, 1000000000ull);	/* the last batches */

	qsort(b.lat_us, b.nlat, sizeof(*b.lat_us), cmp_u32);
	printf("%zu hosts x %zu VMs at 1 Hz for %.0f s: %.0f reports/s, "
	    "%.0f batches/s\n", b.hosts, b.vms, (double)(t1 - t0) / 1e9,
	    (double)b.hosts, (double)(b.batches - batches0) /
	    ((double)(t1 - t0) / 1e9));
	printf("  scheduler CPU: %.1f %% of a core\n", 100 * (c1 - c0) /
	    ((double)(t1 - t0) / 1e9));
	if (b.nlat > 0)
		printf("  report published -> batch delivered: p50 %.2f ms, "
		    "p99 %.2f ms, max %.2f ms (%zu batches)\n",
		    b.lat_us[b.nlat / 2] / 1000.0,
		    b.lat_us[(size_t)((double)(b.nlat - 1) * 0.99)] / 1000.0,
		    b.lat_us[b.nlat - 1] / 1000.0, b.nlat);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	uv_close((uv_handle_t *)&b.pace, NULL);
	bus_close(b.bus, 1000, NULL, NULL);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	unlink(conf);
	snprintf(text, sizeof(text), "%s/policy", dir);
	unlink(text);
	rmdir(dir);
	return 0;
usage:
	fprintf(stderr, "usage: scheduler_broker -b mm-scheduler [-u url] "
	    "[-H hosts] [-v vms] [-s seconds]\n");
	return 2;
}
