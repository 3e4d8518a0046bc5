/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HostReports of 20 guests through a real RabbitMQ, published and consumed
 * in one process as a collector and a scheduler would: packed, confirmed,
 * routed by mm.stats, unpacked and validated by msg_dispatch(). Phase one
 * saturates the bus for throughput; phase two sends at a fixed rate and
 * measures latency from the publish call to the handler. Prints figures;
 * never passes or fails on them.
 *
 *   bus_throughput [-u URL] [-s SECONDS] [-r RATE] [-g GUESTS] [-w BYTES]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "log.h"
#include "msg.h"
#include "topology.h"

#define MAX_SAMPLES	(1u << 21)

struct bench {
	uv_loop_t loop;
	struct bus *pub;
	struct bus *sub;
	bool pub_up;
	bool sub_up;
	char queue[128];
	unsigned guests;
	size_t window;

	/* Reports indexed by seq: when each was handed to bus_publish(). */
	uint64_t *sent_ns;
	uint64_t next_seq;
	uint64_t received;
	uint64_t phase_first_seq;
	uint32_t *lat_us;
	size_t nlat;
	bool measure_latency;

	uint64_t rate;	/* reports per second in phase two */
	uint64_t phase_end_ns;
	uint64_t phase_start_ns;
	bool done;
	bool drained;
	uv_timer_t pace;
	struct msg_dispatch_stats dstats;
	Mm__V1__HostReport report;
	Mm__V1__GuestStats *gs;
	Mm__V1__GuestStats **gp;
	Mm__V1__Meminfo *mi;
	Mm__V1__Psi *psi;
	Mm__V1__Vmstat *vm;
	char (*ids)[16];
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct bench *b = arg;

	if (!up)
		fprintf(stderr, "bus_throughput: %s\n", reason);
	if (bus == b->pub)
		b->pub_up = up;
	else
		b->sub_up = up;
}

/* A report as a collector of a host with b->guests VMs sends it. */
static void
build_report(struct bench *b)
{
	unsigned n = b->guests;

	mm__v1__host_report__init(&b->report);
	b->gs = calloc(n, sizeof(*b->gs));
	b->gp = calloc(n, sizeof(*b->gp));
	b->mi = calloc(n, sizeof(*b->mi));
	b->psi = calloc(n, sizeof(*b->psi));
	b->vm = calloc(n, sizeof(*b->vm));
	b->ids = calloc(n, sizeof(*b->ids));
	if (!b->gs || !b->gp || !b->mi || !b->psi || !b->vm || !b->ids)
		fatal("calloc");
	for (unsigned i = 0; i < n; i++) {
		Mm__V1__GuestStats *g = &b->gs[i];

		mm__v1__guest_stats__init(g);
		mm__v1__meminfo__init(&b->mi[i]);
		mm__v1__psi__init(&b->psi[i]);
		mm__v1__vmstat__init(&b->vm[i]);
		snprintf(b->ids[i], sizeof(b->ids[i]), "vm-%u", i);
		g->vm_id = b->ids[i];
		g->has_time_ms = true;
		g->time_ms = 1700000000000ull;
		g->has_source = true;
		g->source = MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT;
		g->has_agent_seq = true;
		g->agent_seq = 1000 + i;
		b->mi[i].has_total_kib = true;
		b->mi[i].total_kib = 4194304;
		b->mi[i].has_free_kib = true;
		b->mi[i].free_kib = 1048576 + i * 1024;
		b->mi[i].has_available_kib = true;
		b->mi[i].available_kib = 2097152;
		b->mi[i].has_cached_kib = true;
		b->mi[i].cached_kib = 524288;
		b->mi[i].has_anon_kib = true;
		b->mi[i].anon_kib = 1572864;
		g->meminfo = &b->mi[i];
		b->psi[i].has_some_avg10_pct = true;
		b->psi[i].some_avg10_pct = 1.25;
		b->psi[i].has_some_total_us = true;
		b->psi[i].some_total_us = 123456789;
		g->psi = &b->psi[i];
		b->vm[i].has_major_faults = true;
		b->vm[i].major_faults = 4242;
		g->vmstat = &b->vm[i];
		g->has_balloon_target_kib = true;
		g->balloon_target_kib = 4194304;
		g->has_balloon_actual_kib = true;
		g->balloon_actual_kib = 4194304;
		g->has_min_kib = true;
		g->min_kib = 1048576;
		g->has_max_kib = true;
		g->max_kib = 8388608;
		b->gp[i] = g;
	}
	b->report.host_id = "bench-host";
	b->report.has_seq = true;
	b->report.has_time_ms = true;
	b->report.time_ms = 1700000000000ull;
	b->report.n_guests = n;
	b->report.guests = b->gp;
}

static int
publish_one(struct bench *b)
{
	uint64_t seq = b->next_seq;
	int r;

	b->report.seq = seq;
	b->sent_ns[seq % MAX_SAMPLES] = now_ns();
	r = msg_publish(b->pub, MSG_HOST_REPORT,
	    (const ProtobufCMessage *)&b->report, TOPO_EX_STATS,
	    "host.bench-host", false, NULL, NULL);
	if (r == 0)
		b->next_seq++;
	return r;
}

static enum bus_disposition
report_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct bench *b = arg;

	b->received++;
	if (b->measure_latency && r->seq >= b->phase_first_seq &&
	    b->nlat < MAX_SAMPLES)
		b->lat_us[b->nlat++] = (uint32_t)((now_ns() -
		    b->sent_ns[r->seq % MAX_SAMPLES]) / 1000);
	if (b->received == b->next_seq && now_ns() >= b->phase_end_ns)
		b->drained = true;
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, report_cb },
	};
	struct bench *b = arg;

	return msg_dispatch(table, 1, d, b, &b->dstats, NULL, 0);
}

/* Phase one: keep the outbox full for the whole phase. */
static void
saturate_cb(uv_timer_t *t)
{
	struct bench *b = t->data;
	struct bus_stats st;

	if (now_ns() >= b->phase_end_ns) {
		uv_timer_stop(t);
		b->done = true;
		return;
	}
	bus_get_stats(b->pub, &st);
	for (size_t i = st.outbox + st.unconfirmed; i < 2000; i++)
		if (publish_one(b) < 0)
			break;
}

/* Phase two: b->rate reports per second, on schedule. */
static void
paced_cb(uv_timer_t *t)
{
	struct bench *b = t->data;
	uint64_t now = now_ns();
	uint64_t due;

	if (now >= b->phase_end_ns) {
		uv_timer_stop(t);
		b->done = true;
		return;
	}
	due = b->phase_first_seq + (now - b->phase_start_ns) * b->rate /
	    1000000000ull;
	while (b->next_seq < due)
		if (publish_one(b) < 0)
			break;
}

static void
run_until(uv_loop_t *loop, const bool *flag)
{
	while (!*flag)
		uv_run(loop, UV_RUN_ONCE);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct(const uint32_t *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i] / 1000.0;
}

static void
wait_drained(struct bench *b, unsigned max_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)max_ms * 1000000ull;

	b->drained = b->received == b->next_seq;
	while (!b->drained && now_ns() < deadline)
		uv_run(&b->loop, UV_RUN_NOWAIT);
}

static void
usage(void)
{
	fprintf(stderr, "usage: bus_throughput [-u amqp-url] [-s seconds] "
	    "[-r rate] [-g guests] [-w window-bytes]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static struct bench b;
	const char *url = getenv("MM_TEST_AMQP_URL");
	unsigned seconds = 10;
	struct bus_queue_opts q = { .auto_delete = true, .expires_ms = 60000 };
	struct bus_stats ps;
	uint64_t t0, t1, n0;
	double secs, rps;
	int c;

	b.guests = 20;
	b.rate = 5000;
	while ((c = getopt(argc, argv, "u:s:r:g:w:")) != -1) {
		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 's':
			seconds = (unsigned)atoi(optarg);
			break;
		case 'r':
			b.rate = strtoull(optarg, NULL, 10);
			break;
		case 'g':
			b.guests = (unsigned)atoi(optarg);
			break;
		case 'w':
			b.window = strtoull(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (url == NULL || seconds == 0 || b.rate == 0 || b.guests == 0)
		usage();
	log_init("bus_throughput", 0, false);
	b.sent_ns = calloc(MAX_SAMPLES, sizeof(*b.sent_ns));
	b.lat_us = calloc(MAX_SAMPLES, sizeof(*b.lat_us));
	if (b.sent_ns == NULL || b.lat_us == NULL)
		fatal("calloc");
	build_report(&b);
	uv_loop_init(&b.loop);
	snprintf(b.queue, sizeof(b.queue), "mm.bench.stats.%d", (int)getpid());

	{
		struct bus_config pc = { .url = url, .app_id = "bench-collector",
		    .state_cb = state_cb, .state_arg = &b,
		    .window_bytes = b.window };
		struct bus_config sc = { .url = url, .app_id = "bench-scheduler",
		    .state_cb = state_cb, .state_arg = &b, .prefetch = 500 };

		b.pub = bus_new(&b.loop, &pc);
		b.sub = bus_new(&b.loop, &sc);
	}
	if (b.pub == NULL || b.sub == NULL)
		fatal("bus_new");
	topo_declare_stats_exchange(b.pub);
	topo_declare_stats_exchange(b.sub);
	bus_declare_queue(b.sub, b.queue, &q);
	bus_bind(b.sub, b.queue, TOPO_EX_STATS, "host.bench-host");
	bus_consume(b.sub, b.queue, false, delivery_cb, &b);
	bus_start(b.sub);
	run_until(&b.loop, &b.sub_up);
	bus_start(b.pub);
	run_until(&b.loop, &b.pub_up);
	{
		uint8_t *buf;
		size_t len;

		if (msg_pack(MSG_HOST_REPORT,
		    (const ProtobufCMessage *)&b.report, &buf, &len) < 0)
			fatalx("cannot pack the report");
		printf("report: %u guests, %zu bytes packed\n", b.guests, len);
		free(buf);
	}

	/* Phase one: throughput. */
	uv_timer_init(&b.loop, &b.pace);
	b.pace.data = &b;
	t0 = now_ns();
	n0 = b.received;
	b.phase_end_ns = t0 + (uint64_t)seconds * 1000000000ull;
	uv_timer_start(&b.pace, saturate_cb, 0, 1);
	run_until(&b.loop, &b.done);
	wait_drained(&b, 10000);
	t1 = now_ns();
	secs = (double)(t1 - t0) / 1e9;
	rps = (double)(b.received - n0) / secs;
	printf("throughput: %llu reports in %.2f s: %.0f reports/s, "
	    "%.0f guest updates/s\n",
	    (unsigned long long)(b.received - n0), secs, rps,
	    rps * b.guests);

	/* Phase two: latency at a fixed rate. */
	b.done = false;
	b.measure_latency = true;
	b.phase_first_seq = b.next_seq;
	b.phase_start_ns = now_ns();
	b.phase_end_ns = b.phase_start_ns + (uint64_t)seconds * 1000000000ull;
	uv_timer_start(&b.pace, paced_cb, 0, 1);
	run_until(&b.loop, &b.done);
	wait_drained(&b, 10000);
	qsort(b.lat_us, b.nlat, sizeof(*b.lat_us), cmp_u32);
	printf("latency at %llu reports/s (%llu guest updates/s), %zu "
	    "samples: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	    (unsigned long long)b.rate,
	    (unsigned long long)(b.rate * b.guests), b.nlat,
	    pct(b.lat_us, b.nlat, 50), pct(b.lat_us, b.nlat, 99),
	    pct(b.lat_us, b.nlat, 100));
	bus_get_stats(b.pub, &ps);
	printf("publisher: %llu published, %llu confirmed, %llu dropped; "
	    "consumer rejects: %llu\n", (unsigned long long)ps.published,
	    (unsigned long long)ps.confirmed, (unsigned long long)ps.dropped,
	    (unsigned long long)(b.dstats.undecodable + b.dstats.invalid +
	    b.dstats.bad_content_type + b.dstats.unknown_type));

	uv_close((uv_handle_t *)&b.pace, NULL);
	bus_close(b.pub, 2000, NULL, NULL);
	bus_close(b.sub, 0, NULL, NULL);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	return 0;
}
