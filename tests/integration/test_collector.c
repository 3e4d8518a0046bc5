/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End to end: mm-sim serves four simulated guests (static, mono, idle and a
 * hostile one), mm-collector started as documented publishes to a real
 * RabbitMQ as the least-privileged "collector" user, and a consumer here
 * checks that the HostReports arrive with their message type, match the
 * simulated guests, flag every hostile value, and come early (well before
 * the 1 s timer) when a guest's pressure rises. The hostile guest pads its
 * frames with 60 kB of fields mm does not know, which must not reach the
 * report, and claims more use than its process holds (the host's view).
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
#include <pthread.h>
#include <time.h>

#include "msg.h"
#include "testutil.h"
#include "tu_hv.h"
#include "topology.h"
#include "xenstored.h"

#define MIB	1024ull
#define GIB	(1024ull * 1024)
#define MAXREP	256

struct guest_seen {
	char id[65];
	bool stale, rising;
	uint64_t total, anon, balloon, max;
	bool has_resident;
	uint64_t resident;
	size_t bytes;		/* packed size in the report */
	unsigned flags;		/* bit (flag - 1) */
	int source;
};

struct report_seen {
	uint64_t seq, rx_ms;
	size_t n, len;
	struct guest_seen g[8];
	uint64_t host_total;
	bool ksm;
	size_t numa_nodes, vm_numa;
	int hypervisor;
	char app_id[32];
};

static struct {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *host_id;
	char key[128];
	char *queue;
	struct report_seen rep[MAXREP];
	size_t nrep;
	uint64_t bad;
	pid_t sim, col;		/* killed by teardown if a check failed */
} T;

static enum bus_disposition
report_cb(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;
	struct report_seen *s;
	size_t i, j;

	if (T.nrep == MAXREP)
		return BUS_ACK;
	s = &T.rep[T.nrep++];
	memset(s, 0, sizeof(*s));
	s->seq = r->seq;
	s->rx_ms = uv_now(&T.loop);
	s->hypervisor = r->hypervisor;
	s->len = d->len;
	snprintf(s->app_id, sizeof(s->app_id), "%s", d->app_id);
	if (r->host != NULL) {
		s->host_total = r->host->meminfo ?
		    r->host->meminfo->total_kib : 0;
		s->ksm = r->host->ksm != NULL;
		s->numa_nodes = r->host->n_numa_nodes;
		s->vm_numa = r->host->n_vm_numa;
	}
	for (i = 0; i < r->n_guests && i < 8; i++) {
		const Mm__V1__GuestStats *g = r->guests[i];
		struct guest_seen *gs = &s->g[s->n++];

		snprintf(gs->id, sizeof(gs->id), "%s", g->vm_id);
		gs->stale = g->stale;
		gs->rising = g->pressure_rising;
		gs->total = g->meminfo ? g->meminfo->total_kib : 0;
		gs->anon = g->meminfo ? g->meminfo->anon_kib : 0;
		gs->balloon = g->balloon_actual_kib;
		gs->max = g->max_kib;
		gs->source = g->source;
		gs->has_resident = g->has_host_resident_kib;
		gs->resident = g->host_resident_kib;
		gs->bytes = protobuf_c_message_get_packed_size(&g->base);
		for (j = 0; j < g->n_flags; j++)
			gs->flags |= 1u << (g->flags[j] - 1);
	}
	return BUS_ACK;
}

static const struct msg_handler handlers[] = {
	{ MSG_HOST_REPORT, report_cb },
};

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	enum bus_disposition r;
	char why[256];

	r = msg_dispatch(handlers, 1, d, NULL, NULL, why, sizeof(why));
	if (r != BUS_ACK) {
		fprintf(stderr, "bad delivery: %s\n", why);
		T.bad++;
	}
	return r;
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	T.up = up;
}

static pid_t
spawn(char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execv(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	return pid;
}

static int
stop(pid_t pid)
{
	int status;

	kill(pid, SIGTERM);
	if (pid == T.col)
		T.col = 0;
	if (pid == T.sim)
		T.sim = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static const struct guest_seen *
guest(const struct report_seen *r, const char *id)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (strcmp(r->g[i].id, id) == 0)
			return &r->g[i];
	return NULL;
}

/* The latest report where all four guests have fresh stats. */
static bool
settled(void)
{
	const struct report_seen *r;
	static const char *const ids[] = { "web", "db", "idle1", "evil" };
	size_t i;

	if (T.nrep < 2)
		return false;
	r = &T.rep[T.nrep - 1];
	for (i = 0; i < 4; i++) {
		const struct guest_seen *g = guest(r, ids[i]);

		if (g == NULL || g->stale || g->total == 0)
			return false;
	}
	return true;
}

static bool
run_until_cond(bool (*cond)(void), unsigned ms)
{
	return tu_run_until_fn(&T.loop, cond, ms);
}

static size_t want_nrep;
static bool
have_nrep(void)
{
	return T.nrep >= want_nrep;
}

static bool
rising_seen(void)
{
	size_t i, j;

	for (i = want_nrep; i < T.nrep; i++)
		for (j = 0; j < T.rep[i].n; j++)
			if (T.rep[i].g[j].rising)
				return true;
	return false;
}

/* T reset, and the consumer of the reports of a new host "<prefix>.<n>"
 * running, first, so that no report is missed. */
static void
consumer_start(const char *prefix)
{
	struct bus_queue_opts qo = { .exclusive = true, .auto_delete = true };
	struct bus_config bc = { 0 };

	memset(&T, 0, sizeof(T));
	T.host_id = tu_unique(prefix);
	snprintf(T.key, sizeof(T.key), "host.%s", T.host_id);
	uv_loop_init(&T.loop);
	bc.url = tu_broker_url();
	bc.app_id = "test_collector";
	bc.state_cb = state_cb;
	T.bus = bus_new(&T.loop, &bc);
	assert_non_null(T.bus);
	T.queue = tu_unique("mm.test.stats");
	assert_int_equal(topo_declare_stats_exchange(T.bus), 0);
	assert_int_equal(bus_declare_queue(T.bus, T.queue, &qo), 0);
	assert_int_equal(bus_bind(T.bus, T.queue, TOPO_EX_STATS, T.key), 0);
	assert_int_equal(bus_consume(T.bus, T.queue, false, delivery_cb,
	    NULL), 0);
	assert_int_equal(bus_start(T.bus), 0);
	assert_true(tu_run_until(&T.loop, &T.up, 15000));
}

static void
consumer_finish(void)
{
	bus_close(T.bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&T.loop), 0);
	free(T.host_id);
	free(T.queue);
}

static void
test_collector_end_to_end(void **state)
{
	const struct report_seen *r;
	const struct guest_seen *g;
	char *dir, *sim_bin, *col_bin, vmdir[1024], root[1024], conf[16384];
	char conf_path[4096], proc[4200], sys[4200];
	pid_t sim, col;
	uint64_t t0, latency;
	size_t i, first;

	dir = tu_tmpdir();
	snprintf(vmdir, sizeof(vmdir), "%s/vm", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(proc, sizeof(proc), "%s/proc", root);
	snprintf(sys, sizeof(sys), "%s/sys", root);
	assert_true(asprintf(&sim_bin, "%s/bin/mm-sim",
	    getenv("MM_BINARY_DIR")) > 0);
	col_bin = tu_bin_path("mm-collector");
	consumer_start("e2e");

	{
		char *argv[] = { sim_bin, "-s", vmdir, "-r", root, "-H", "16G",
		    "-m", "web,2G,static:1G", "-m", "db,4G,mono:512M:3G",
		    "-m", "idle1,1G,idle", "-m", "evil,1G,hostile", NULL };

		sim = T.sim = spawn(argv);
	}
	snprintf(conf, sizeof(conf),
	    "; written by test_collector\n"
	    "[collector]\nhost_id = %s\ndriver = sim\nvm_dir = %s\n"
	    "proc_root = %s\nsys_root = %s\ninterval = 1s\n"
	    "fast_min_interval = 100ms\nrescan = 200ms\n"
	    "[bus]\nurl = %s\n", T.host_id, vmdir, proc, sys,
	    tu_broker_url_as("collector", "collector"));
	free(tu_write_file(dir, "collector.conf", conf));
	snprintf(conf_path, sizeof(conf_path), "%s/collector.conf", dir);
	{
		char *argv[] = { col_bin, "-c", conf_path, "-d", NULL };

		col = T.col = spawn(argv);
	}

	/* Reports with every guest's fresh stats. */
	assert_true(run_until_cond(settled, 15000));
	r = &T.rep[T.nrep - 1];
	assert_int_equal(T.bad, 0);
	assert_string_equal(r->app_id, "mm-collector");
	assert_int_equal(r->hypervisor, MM__V1__HYPERVISOR__HYPERVISOR_SIM);
	assert_int_equal(r->host_total, 16 * GIB);
	assert_true(r->ksm);
	assert_int_equal(r->numa_nodes, 2);
	assert_int_equal(r->vm_numa, 4);
	assert_int_equal(r->n, 4);
	for (i = 1; i < T.nrep; i++)
		assert_true(T.rep[i].seq > T.rep[i - 1].seq);

	/* Honest guests come through unflagged and as simulated. */
	g = guest(r, "web");
	assert_int_equal(g->flags, 0);
	assert_int_equal(g->source, MM__V1__STATS_SOURCE__STATS_SOURCE_SIM);
	/* The host's view: the process holds the guest's use and cache. */
	assert_true(g->has_resident);
	assert_in_range(g->resident, 1 * GIB, 2 * GIB);
	assert_int_equal(g->total, 2 * GIB);
	assert_int_equal(g->balloon, 2 * GIB);
	assert_int_equal(g->max, 2 * GIB);
	assert_int_equal(g->anon, 1 * GIB);	/* static 1G */
	g = guest(r, "idle1");
	assert_int_equal(g->flags, 0);
	assert_int_equal(g->anon, 256 * MIB);
	g = guest(r, "db");
	assert_int_equal(g->flags, 0);
	assert_in_range(g->anon, 512 * MIB, 3 * GIB);

	/* The hostile guest: never a fresh sample without flags, and its
	 * total never above what the host gave it; its padding never in
	 * the report (its entry no larger than an honest guest's and its
	 * flags); and it uses no more than the host sees it hold. */
	{
		size_t max_len = 0, max_evil = 0, max_web = 0;

		for (i = 0; i < T.nrep; i++) {
			const struct guest_seen *w = guest(&T.rep[i], "web");

			if (T.rep[i].len > max_len)
				max_len = T.rep[i].len;
			if (w != NULL && w->bytes > max_web)
				max_web = w->bytes;
			g = guest(&T.rep[i], "evil");
			if (g != NULL && g->bytes > max_evil)
				max_evil = g->bytes;
			if (g == NULL || g->stale || g->total == 0)
				continue;
			assert_true(g->flags != 0);
			assert_true(g->flags & (1u <<
			    (MM__V1__SANITIZER_FLAG__SANITIZER_FLAG_HOST_VIEW -
			    1)));
			assert_true(g->has_resident);
			assert_true(g->total <= 1 * GIB + 50 * MIB);
			assert_true(g->balloon <= 1 * GIB);
		}
		print_message("largest report %zu bytes; largest guest entry: "
		    "web %zu, evil %zu bytes\n", max_len, max_web, max_evil);
		assert_true(max_evil <= max_web + 16);
		assert_true(max_len < 4096);
	}
	/* No pressure so far, so every report came from the timer. */
	for (i = 0; i < T.nrep; i++)
		for (size_t j = 0; j < T.rep[i].n; j++)
			assert_false(T.rep[i].g[j].rising);

	/* The fast path: a spike just after a timer report is reported
	 * long before the next one. */
	want_nrep = T.nrep + 1;
	assert_true(run_until_cond(have_nrep, 3000));
	first = T.nrep;
	want_nrep = first;
	t0 = uv_now(&T.loop);
	kill(sim, SIGUSR1);
	assert_true(run_until_cond(rising_seen, 3000));
	latency = T.rep[T.nrep - 1].rx_ms - t0;
	print_message("pressure reported %llu ms after the spike, %zu "
	    "report(s) in between\n", (unsigned long long)latency,
	    T.nrep - 1 - first);
	assert_true(latency < 700);
	/* Early reports only, none waiting for the next timer: the spike
	 * may show first as fast growth of used memory (fast_rise) and a
	 * sample later as rising pressure, two early reports. */
	assert_true(T.nrep <= first + 2);
	for (i = first; i < T.nrep; i++)
		assert_true(T.rep[i].rx_ms - t0 < 700);

	/* A burst of spikes: early reports, but never two within
	 * fast_min_interval (100 ms; 90 for the timers' granularity). */
	first = T.nrep;
	for (i = 0; i < 6; i++) {
		kill(sim, SIGUSR1);
		tu_run_for(&T.loop, 40);
	}
	want_nrep = T.nrep + 2;
	assert_true(run_until_cond(have_nrep, 3000));
	{
		unsigned early = 0;

		for (i = first; i < T.nrep; i++) {
			uint64_t gap = T.rep[i].rx_ms - T.rep[i - 1].rx_ms;

			print_message("report %zu: +%llu ms\n", i,
			    (unsigned long long)gap);
			assert_true(gap >= 90);
			early += gap < 800;
		}
		assert_true(early >= 2);
	}
	/* Falling pressure is not news: two timer reports later no guest
	 * is rising. */
	want_nrep = T.nrep + 2;
	assert_true(run_until_cond(have_nrep, 3000));
	for (i = 0; i < T.rep[T.nrep - 1].n; i++)
		assert_false(T.rep[T.nrep - 1].g[i].rising);

	assert_int_equal(stop(col), 0);
	assert_int_equal(stop(sim), 0);
	consumer_finish();
	tu_rmtree(dir);
	free(dir);
	free(sim_bin);
	free(col_bin);
}

#ifdef MM_HAVE_XENSTORE
/* ---- Xen: a guest flooding agent_seq ---- */

#define DOM3		"/local/domain/3"
#define FLOOD_PER_S	2000
#define FLOOD_S		5
#define REPORT_MS	1000

static bool flood_done;		/* written by the flood thread */

/* What a hostile guest does: agent_seq at 2,000 writes a second. */
static void *
flood_main(void *arg)
{
	struct xsd_fake *xsd = arg;
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	char v[32];

	for (unsigned long i = 0; i < FLOOD_PER_S * FLOOD_S; i++) {
		snprintf(v, sizeof(v), "%lu", 100 + i);
		xsd_fake_write(xsd, DOM3 "/data/mm/agent_seq", v);
		if (i % (FLOOD_PER_S / 100) == FLOOD_PER_S / 100 - 1)
			nanosleep(&ts, NULL);
	}
	__atomic_store_n(&flood_done, true, __ATOMIC_RELEASE);
	return NULL;
}

static bool
web_reported(void)
{
	return T.nrep > 0 && guest(&T.rep[T.nrep - 1], "web") != NULL;
}

static bool
flood_over(void)
{
	return __atomic_load_n(&flood_done, __ATOMIC_ACQUIRE);
}

/*
 * mm-collector with the Xen driver, against the xenstored double (the
 * real libxenstore, XENSTORED_PATH): while domain 3 writes agent_seq
 * 2,000 times a second, the host's reports keep coming at their interval
 * (before, the loop sat in synchronous xenstore reads: no report for the
 * whole host for half a minute).
 */
static void
test_collector_xen_flood(void **state)
{
	char *dir = tu_tmpdir(), conf[4096], *path, *col_bin;
	struct xsd_fake *xsd;
	uint64_t gap, max_gap = 0, t0, t1;
	size_t first, n = 0;
	pthread_t th;

	xsd = xsd_fake_start(dir, 0);
	assert_non_null(xsd);
	setenv("XENSTORED_PATH", xsd_fake_path(xsd), 1);
	xsd_fake_write(xsd, DOM3 "/name", "web");
	xsd_fake_write(xsd, DOM3 "/memory/target", "1048576");
	xsd_fake_write(xsd, DOM3 "/memory/static-max", "2097152");
	xsd_fake_write(xsd, DOM3 "/data/mm/meminfo/total_kib", "1000000");
	xsd_fake_write(xsd, DOM3 "/data/mm/meminfo/free_kib", "400000");
	xsd_fake_write(xsd, DOM3 "/data/mm/meminfo/available_kib", "500000");
	xsd_fake_write(xsd, DOM3 "/data/mm/agent_seq", "1");

	consumer_start("xen");
	col_bin = tu_bin_path("mm-collector");
	snprintf(conf, sizeof(conf), "[collector]\nhost_id = %s\n"
	    "driver = xen\ninterval = %dms\nnuma = no\n[bus]\nurl = %s\n",
	    T.host_id, REPORT_MS, tu_broker_url_as("collector", "collector"));
	path = tu_write_file(dir, "collector.conf", conf);
	{
		char *argv[] = { col_bin, "-c", path, "-d", NULL };

		T.col = spawn(argv);
	}
	assert_true(run_until_cond(web_reported, 15000));

	first = T.nrep;
	t0 = uv_now(&T.loop);
	assert_int_equal(pthread_create(&th, NULL, flood_main, xsd), 0);
	assert_true(run_until_cond(flood_over, 60000));
	pthread_join(th, NULL);
	t1 = uv_now(&T.loop);
	/* A report after the flood too: the gap up to it counts. */
	want_nrep = T.nrep + 1;
	assert_true(run_until_cond(have_nrep, 5000));
	for (size_t i = first; i < T.nrep; i++) {
		gap = T.rep[i].rx_ms - (i == first ? t0 : T.rep[i - 1].rx_ms);
		if (gap > max_gap)
			max_gap = gap;
		n += T.rep[i].rx_ms <= t1;
	}
	print_message("%d agent_seq writes in %llu ms: %zu reports meanwhile, "
	    "the longest gap %llu ms (interval %d ms)\n",
	    FLOOD_PER_S * FLOOD_S, (unsigned long long)(t1 - t0), n,
	    (unsigned long long)max_gap, REPORT_MS);
	assert_true(max_gap < 2 * REPORT_MS);
	assert_true(n >= (t1 - t0) / REPORT_MS - 1);

	assert_int_equal(stop(T.col), 0);
	consumer_finish();
	xsd_fake_stop(xsd);
	unsetenv("XENSTORED_PATH");
	tu_rmtree(dir);
	free(dir);
	free(path);
	free(col_bin);
}
#endif

/* After a failed check the programs must not outlive the test. */
static int
teardown(void **state)
{
	if (T.col > 0) {
		kill(T.col, SIGKILL);
		waitpid(T.col, NULL, 0);
	}
	if (T.sim > 0) {
		kill(T.sim, SIGKILL);
		waitpid(T.sim, NULL, 0);
	}
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_collector_end_to_end, teardown),
#ifdef MM_HAVE_XENSTORE
		cmocka_unit_test_teardown(test_collector_xen_flood, teardown),
#endif
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
