/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler through a real RabbitMQ: simulated hosts of 50 VMs report
 * once a second each (spread evenly), one VM of each report under
 * pressure so that every report yields a command batch, and apply the
 * balloon targets they are sent, as actuators would. Prints the
 * scheduler's CPU share (from /proc) and the latency from a report's
 * publication to its batch's delivery, and the batches the scheduler
 * refused to send (not sent) or superseded, from its "stopping:" line.
 * Prints figures; never passes or fails on them.
 *
 *   scheduler_broker -b path/to/mm-scheduler [-u URL[,URL...]] [-H hosts]
 *                    [-v vms] [-s seconds] [-S shards] [-B pid[,pid...]]
 *                    [-A | -O] [-q quorum|classic]
 *
 * -S N runs N schedulers with "shard = yes" (ids bench-shard-<k>) and
 * prints each one's CPU share, hosts, latency and refusals beside the
 * totals; a batch's scheduler_id says which shard answered. Without -S,
 * one scheduler without sharding (id bench-sched). -B names the broker's
 * beam.smp processes: their CPU share over the measured window is printed,
 * summed and per pid. -u's URL (a list for a cluster) is the bench's and
 * the schedulers' [bus] url. The bench takes the batches from each host's
 * queue mm.actuator.<host>, as actuators do (-A, the default; quorum
 * queues, or with -q classic as a scheduler from before them declares
 * them, to measure such a build), or with -O from a queue of its own bound
 * to every host's key, leaving the hosts' queues to fill up unread until
 * their batches expire (the benchmark before 2026-12-05).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
#define MAX_SHARDS	64
#define MAX_BROKER_PIDS	16
#define NO_SHARD	UINT8_MAX

/* One mm-scheduler process. */
struct sched {
	char id[32];
	char conf[256];
	char log[256];		/* its stderr */
	pid_t pid;
	double cpu0_s, cpu1_s;
	uint64_t batches;	/* measured */
	size_t hosts;		/* hosts it answered while measuring */
};

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
	uint64_t report_bytes;	/* packed, all published */
	uint64_t batch_bytes;	/* bodies, all delivered */
	bool measuring;
	uint64_t measure_ns;	/* reports sent before are not measured */
	uint32_t *lat_us;
	uint8_t *lat_shard;	/* the shard that answered, by lat_us index */
	size_t nlat;
	size_t nsched;		/* 1 without -S */
	bool sharded;
	struct sched *sched;
	uint8_t *owner;		/* by host: the shard last answering, or
				 * NO_SHARD */
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
	    NULL, NULL) == 0) {
		b->published++;
		b->report_bytes += protobuf_c_message_get_packed_size(
		    (const ProtobufCMessage *)&b->report);
	}
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

/* The index of the scheduler named id, or NO_SHARD. */
static uint8_t
shard_of(const struct bench *b, const char *id)
{
	for (size_t k = 0; id != NULL && k < b->nsched; k++)
		if (strcmp(b->sched[k].id, id) == 0)
			return (uint8_t)k;
	return NO_SHARD;
}

static enum bus_disposition
on_batch(const ProtobufCMessage *m, const struct bus_delivery *d, void *arg)
{
	const Mm__V1__CommandBatch *cb = (const Mm__V1__CommandBatch *)m;
	struct bench *b = arg;
	uint8_t k;
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
	if (!b->measuring)
		return BUS_ACK;
	k = shard_of(b, cb->scheduler_id);
	if (k != NO_SHARD) {
		b->sched[k].batches++;
		if (h < b->hosts)
			b->owner[h] = k;
	}
	if (b->nlat >= MAX_LAT)
		return BUS_ACK;
	if (h < b->hosts && cb->report_seq + SLOTS > b->seq) {
		uint64_t sent = b->sent_ns[h * SLOTS + cb->report_seq % SLOTS];

		if (sent >= b->measure_ns) {
			b->lat_shard[b->nlat] = k;
			b->lat_us[b->nlat++] = (uint32_t)((now_ns() - sent) /
			    1000);
		}
	}
	return BUS_ACK;
}

static enum bus_disposition
delivery_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_COMMAND_BATCH, on_batch },
	};

	((struct bench *)arg)->batch_bytes += d->len;
	return msg_dispatch(table, 1, d, arg, NULL, NULL, 0);
}

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	((struct bench *)arg)->up = up;
	if (!up)
		fprintf(stderr, "scheduler_broker: %s\n", reason);
}

/* The CPU seconds process pid has used, or -1 if it is gone. */
static double
cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	bool got;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	got = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!got)
		return -1;
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u "
	    "%*u %*u %lu %lu", &ut, &st) != 2)
		fatalx("%s: unexpected format", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* -B's list of broker pids; exits with a message on a bad one. */
static size_t
parse_pids(const char *arg, pid_t *pids, size_t cap)
{
	char comm[64], path[64];
	const char *p = arg;
	size_t n = 0;
	FILE *f;

	while (*p != '\0') {
		char *end;
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || end == p || v <= 0 || v > INT32_MAX ||
		    (*end != ',' && *end != '\0') || n == cap)
			fatalx("-B \"%s\": want up to %zu pids separated by "
			    "commas", arg, cap);
		pids[n] = (pid_t)v;
		snprintf(path, sizeof(path), "/proc/%ld/comm", v);
		f = fopen(path, "r");
		if (f == NULL || fgets(comm, sizeof(comm), f) == NULL)
			fatalx("-B: no process %ld", v);
		fclose(f);
		comm[strcspn(comm, "\n")] = '\0';
		if (strcmp(comm, "beam.smp") != 0)
			log_warnx("-B: process %ld is \"%s\", not beam.smp", v,
			    comm);
		n++;
		p = *end == ',' ? end + 1 : end;
	}
	if (n == 0)
		fatalx("-B: no pid");
	return n;
}

/* The batches a scheduler did not send (refused) and superseded, from its
 * log: the "stopping: N reports, N batches (N superseded, N not sent)"
 * line, or, from schedulers printing only "N batches,", the count of
 * "batch N not sent" warnings and no superseded figure (-1). */
static void
read_refusals(const char *log, long long *ret_refused,
    long long *ret_superseded, long long *ret_events)
{
	char line[4096], *p, *q;
	long long warned = 0, sup = -1, ns = -1;
	unsigned long long rep, bat, a, c;
	FILE *f = fopen(log, "r");

	*ret_refused = *ret_superseded = *ret_events = -1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, " not sent: ") != NULL &&
		    strstr(line, "batch ") != NULL)
			warned++;
		p = strstr(line, "stopping: ");
		if (p == NULL)
			continue;
		/* "..., E events;" in every version of the line */
		q = strstr(p, " events");
		while (q != NULL && q > p && q[-1] >= '0' && q[-1] <= '9')
			q--;
		if (q != NULL)
			*ret_events = strtoll(q, NULL, 10);
		if (sscanf(p, "stopping: %llu reports, %llu batches (%llu "
		    "superseded, %llu not sent)", &rep, &bat, &a, &c) == 4) {
			sup = (long long)a;
			ns = (long long)c;
		}
	}
	fclose(f);
	*ret_refused = ns >= 0 ? ns : warned;
	*ret_superseded = sup;
}

/* Start scheduler s with its stderr in s->log. */
static void
sched_spawn(struct sched *s, const char *bin)
{
	s->pid = fork();
	if (s->pid < 0)
		fatal("fork");
	if (s->pid == 0) {
		int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
			_exit(126);
		execl(bin, bin, "-d", "-c", s->conf, (char *)NULL);
		_exit(127);
	}
}

/* Copy at most 5 lines of a scheduler's log to our stderr; with routine
 * false, not those of every run (start, connection, first reports, stop)
 * nor the "not sent" warnings, which are counted. */
static void
show_log(const struct sched *s, bool routine)
{
	static const char *skip[] = { " starting: ", "connected to the broker",
	    "\": first report", " not sent: ", "stopping: " };
	char line[4096];
	FILE *f = fopen(s->log, "r");
	int n = 0;

	if (f == NULL)
		return;
	fflush(stdout);
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t i = 0;

		while (!routine && i < sizeof(skip) / sizeof(skip[0]) &&
		    strstr(line, skip[i]) == NULL)
			i++;
		if (!routine && i < sizeof(skip) / sizeof(skip[0]))
			continue;
		if (n++ < 5)
			fprintf(stderr, "[%s] %s", s->id, line);
	}
	if (n > 5)
		fprintf(stderr, "[%s] (%d more lines)\n", s->id, n - 5);
	fclose(f);
}

/* SIGTERM every scheduler still running and wait for all. */
static void
stop_scheds(struct bench *b)
{
	for (size_t k = 0; k < b->nsched; k++)
		kill(b->sched[k].pid, SIGTERM);
	for (size_t k = 0; k < b->nsched; k++)
		waitpid(b->sched[k].pid, NULL, 0);
}

/* The q quantile of the sorted v[0..n-1], in ms. */
static double
quantile_ms(const uint32_t *v, size_t n, double q)
{
	return v[(size_t)((double)(n - 1) * q)] / 1000.0;
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

/* Per-shard figures: CPU, hosts, batches, latency, refusals. */
static void
print_shards(struct bench *b, double window_s)
{
	uint32_t *v = calloc(b->nlat + 1, sizeof(*v));
	double total = 0;

	if (v == NULL)
		fatal("calloc");
	for (size_t h = 0; h < b->hosts; h++)
		if (b->owner[h] != NO_SHARD)
			b->sched[b->owner[h]].hosts++;
	for (size_t k = 0; k < b->nsched; k++) {
		struct sched *s = &b->sched[k];
		size_t n = 0;

		for (size_t i = 0; i < b->nlat; i++)
			if (b->lat_shard[i] == k)
				v[n++] = b->lat_us[i];
		qsort(v, n, sizeof(*v), cmp_u32);
		total += s->cpu1_s - s->cpu0_s;
		printf("  shard %s: CPU %.1f %% of a core, %zu hosts, "
		    "%.0f batches/s", s->id, 100 * (s->cpu1_s - s->cpu0_s) /
		    window_s, s->hosts, (double)s->batches / window_s);
		if (n > 0)
			printf(", p50 %.2f ms, p99 %.2f ms, max %.2f ms",
			    quantile_ms(v, n, 0.5), quantile_ms(v, n, 0.99),
			    quantile_ms(v, n, 1));
		printf("\n");
	}
	printf("  schedulers CPU: %.1f %% of a core in all, %.1f %% per "
	    "shard on average\n", 100 * total / window_s,
	    100 * total / window_s / (double)b->nsched);
	free(v);
}

/* After the schedulers stopped: what each refused and superseded. */
static void
print_refusals(const struct bench *b)
{
	long long refused_all = 0, sup_all = 0, events_all = 0;
	bool sup_known = true;

	for (size_t k = 0; k < b->nsched; k++) {
		long long refused, sup, events;

		read_refusals(b->sched[k].log, &refused, &sup, &events);
		events_all += events > 0 ? events : 0;
		if (refused < 0)
			fatalx("%s: cannot read", b->sched[k].log);
		refused_all += refused;
		if (sup < 0)
			sup_known = false;
		else
			sup_all += sup;
		if (b->sharded) {
			printf("  shard %s: batches refused %lld, "
			    "superseded ", b->sched[k].id, refused);
			if (sup < 0)
				printf("n/a\n");
			else
				printf("%lld\n", sup);
		}
	}
	printf("  batches refused (not sent) %lld, superseded ",
	    refused_all);
	if (sup_known)
		printf("%lld\n", sup_all);
	else
		printf("n/a (this scheduler does not count them)\n");
	/* Warm-up and measured window together, as the stop line has it. */
	printf("  events published %lld (%.2f per report)\n",
	    events_all, b->published > 0 ? (double)events_all /
	    (double)b->published : 0.0);
	printf("  bytes: report %.0f, batch %.0f on average\n",
	    b->published > 0 ? (double)b->report_bytes /
	    (double)b->published : 0.0, b->batches > 0 ?
	    (double)b->batch_bytes / (double)b->batches : 0.0);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		fatal("%s", path);
}

int
main(int argc, char **argv)
{
	static struct bench b;
	const char *urls = getenv("MM_TEST_AMQP_URL"), *bin = NULL;
	const char *broker_arg = NULL;
	char dir[] = "/tmp/mm-bench.XXXXXX", text[4096], q[64], *url;
	const struct bus_queue_opts qo = { .exclusive = true,
	    .auto_delete = true };
	pid_t broker[MAX_BROKER_PIDS];
	double broker0[MAX_BROKER_PIDS], broker1[MAX_BROKER_PIDS];
	double seconds = 20, window_s;
	/* Like the hosts' actuators, which empty their queues at once: a
	 * queue nobody reads piles batches up until they expire, which is
	 * not what a fleet asks of its broker. */
	bool actuator_queues = true, classic = false;
	unsigned long shards = 0;
	const char *extra = "";	/* -C: lines for [scheduler] */
	size_t nbroker = 0;
	uint64_t t0, t1, batches0;
	int c;

	b.hosts = 1000;
	b.vms = 50;
	while ((c = getopt(argc, argv, "b:u:H:v:s:S:B:AOq:C:")) != -1) {
		switch (c) {
		case 'C':
			extra = optarg;
			break;
		case 'b':
			bin = optarg;
			break;
		case 'u':
			urls = optarg;
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
		case 'S':
			shards = strtoul(optarg, NULL, 10);
			if (shards == 0 || shards > MAX_SHARDS) {
				fprintf(stderr, "scheduler_broker: -S wants "
				    "1 to %d shards\n", MAX_SHARDS);
				goto usage;
			}
			break;
		case 'B':
			broker_arg = optarg;
			break;
		case 'A':
			actuator_queues = true;
			break;
		case 'O':
			actuator_queues = false;
			break;
		case 'q':
			if (strcmp(optarg, "classic") == 0)
				classic = true;
			else if (strcmp(optarg, "quorum") != 0)
				goto usage;
			break;
		default:
			goto usage;
		}
	}
	if (bin == NULL || urls == NULL || *urls == '\0' || b.hosts == 0 ||
	    b.vms == 0)
		goto usage;
	log_init("scheduler_broker", 0, false);
	if (broker_arg != NULL)
		nbroker = parse_pids(broker_arg, broker, MAX_BROKER_PIDS);
	/* The bench's own connection: the whole list, as the hosts'. */
	url = strdup(urls);
	b.sharded = shards > 0;
	b.nsched = b.sharded ? shards : 1;
	b.sched = calloc(b.nsched, sizeof(*b.sched));
	b.owner = malloc(b.hosts);
	b.host_ids = calloc(b.hosts, sizeof(*b.host_ids));
	b.targets = calloc(b.hosts * b.vms, sizeof(*b.targets));
	if (url == NULL || b.sched == NULL || b.owner == NULL ||
	    b.targets == NULL)
		fatal("calloc");
	memset(b.owner, NO_SHARD, b.hosts);
	for (size_t i = 0; i < b.hosts * b.vms; i++)
		b.targets[i] = 2 * GiB;
	b.sent_ns = calloc(b.hosts * SLOTS, sizeof(*b.sent_ns));
	b.lat_us = calloc(MAX_LAT, sizeof(*b.lat_us));
	b.lat_shard = calloc(MAX_LAT, sizeof(*b.lat_shard));
	if (!b.host_ids || !b.sent_ns || !b.lat_us || !b.lat_shard ||
	    !mkdtemp(dir))
		fatal("setup");
	for (size_t h = 0; h < b.hosts; h++)
		snprintf(b.host_ids[h], sizeof(b.host_ids[h]), "bench-%zu", h);
	build(&b);

	for (size_t k = 0; k < b.nsched; k++) {
		struct sched *s = &b.sched[k];
		int n;

		if (b.sharded)
			snprintf(s->id, sizeof(s->id), "bench-shard-%u",
			    (unsigned)k);
		else
			snprintf(s->id, sizeof(s->id), "bench-sched");
		snprintf(s->conf, sizeof(s->conf), "%s/%s.conf", dir, s->id);
		snprintf(s->log, sizeof(s->log), "%s/%s.log", dir, s->id);
		n = snprintf(text, sizeof(text), "[scheduler]\nid = %s\n"
		    "%sstate_file = %s/%s.policy\n%s%s"
		    "[bus]\nurl = %s\nprefetch = 500\n", s->id,
		    b.sharded ? "shard = yes\n" : "", dir, s->id, extra,
		    *extra != '\0' ? "\n" : "", urls);
		if (n < 0 || (size_t)n >= sizeof(text))
			fatalx("-u: the URL list is too long");
		write_file(s->conf, text);
	}

	uv_loop_init(&b.loop);
	{
		struct bus_config bc = { .url = url, .app_id = "bench-fleet",
		    .state_cb = state_cb, .state_arg = &b, .prefetch = 1000,
		    .outbox_max = 100000 };

		b.bus = bus_new(&b.loop, &bc);
	}
	if (b.bus == NULL)
		fatal("bus_new");
	topo_declare_stats_exchange(b.bus);
	topo_declare_commands_exchange(b.bus);
	if (actuator_queues) {
		/* Classic: as a scheduler from before quorum queues declares
		 * them (and nothing else: its mm.dead is classic too). */
		const struct bus_queue_opts cq = { .durable = true,
		    .dead_letter_exchange = TOPO_EX_DLX };

		for (size_t h = 0; h < b.hosts; h++) {
			if (topo_actuator_queue(q, sizeof(q),
			    b.host_ids[h]) < 0 || (classic ?
			    bus_declare_queue(b.bus, q, &cq) < 0 ||
			    bus_bind(b.bus, q, TOPO_EX_COMMANDS,
			    b.host_ids[h]) < 0 :
			    topo_declare_actuator_queue(b.bus,
			    b.host_ids[h]) < 0))
				fatalx("host \"%s\": cannot declare its queue",
				    b.host_ids[h]);
			bus_consume(b.bus, q, false, delivery_cb, &b);
		}
	} else {
		snprintf(q, sizeof(q), "mm.bench.cmds.%d", (int)getpid());
		bus_declare_queue(b.bus, q, &qo);
		for (size_t h = 0; h < b.hosts; h++)
			bus_bind(b.bus, q, TOPO_EX_COMMANDS, b.host_ids[h]);
		bus_consume(b.bus, q, false, delivery_cb, &b);
	}
	bus_start(b.bus);
	run_until(&b.loop, &b.up);

	for (size_t k = 0; k < b.nsched; k++)
		sched_spawn(&b.sched[k], bin);
	run_for(&b, 2000000000ull);
	for (size_t k = 0; k < b.nsched; k++) {
		int status;

		if (waitpid(b.sched[k].pid, &status, WNOHANG) == 0)
			continue;
		show_log(&b.sched[k], true);
		stop_scheds(&b);
		fatalx("%s exited at start", b.sched[k].id);
	}

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
	for (size_t k = 0; k < b.nsched; k++)
		b.sched[k].cpu0_s = cpu_s(b.sched[k].pid);
	for (size_t i = 0; i < nbroker; i++)
		broker0[i] = cpu_s(broker[i]);
	t0 = now_ns();
	batches0 = b.batches;
	run_until(&b.loop, &b.done);
	for (size_t k = 0; k < b.nsched; k++)
		b.sched[k].cpu1_s = cpu_s(b.sched[k].pid);
	for (size_t i = 0; i < nbroker; i++)
		broker1[i] = cpu_s(broker[i]);
	t1 = now_ns();
	b.measuring = false;
	run_for(&b, 1000000000ull);	/* the last batches */
	window_s = (double)(t1 - t0) / 1e9;

	qsort(b.lat_us, b.nlat, sizeof(*b.lat_us), cmp_u32);
	printf("%zu hosts x %zu VMs at 1 Hz for %.0f s: %.0f reports/s, "
	    "%.0f batches/s\n", b.hosts, b.vms, window_s,
	    (double)b.hosts, (double)(b.batches - batches0) / window_s);
	if (!b.sharded)
		printf("  scheduler CPU: %.1f %% of a core\n", 100 *
		    (b.sched[0].cpu1_s - b.sched[0].cpu0_s) / window_s);
	if (b.nlat > 0)
		printf("  report published -> batch delivered: p50 %.2f ms, "
		    "p99 %.2f ms, max %.2f ms (%zu batches)\n",
		    quantile_ms(b.lat_us, b.nlat, 0.5),
		    quantile_ms(b.lat_us, b.nlat, 0.99),
		    quantile_ms(b.lat_us, b.nlat, 1), b.nlat);
	else
		fprintf(stderr, "scheduler_broker: no batch measured: see the "
		    "schedulers' lines below\n");
	if (b.sharded)
		print_shards(&b, window_s);
	if (nbroker > 0) {
		double sum = 0;

		for (size_t i = 0; i < nbroker; i++)
			sum += broker1[i] - broker0[i];
		printf("  broker CPU: %.1f %% of a core (", 100 * sum /
		    window_s);
		for (size_t i = 0; i < nbroker; i++) {
			if (broker0[i] < 0 || broker1[i] < 0)
				printf("%spid %d gone", i ? ", " : "",
				    (int)broker[i]);
			else
				printf("%spid %d %.1f %%", i ? ", " : "",
				    (int)broker[i], 100 * (broker1[i] -
				    broker0[i]) / window_s);
		}
		printf(")\n");
	}
	stop_scheds(&b);
	print_refusals(&b);
	for (size_t k = 0; k < b.nsched; k++)
		show_log(&b.sched[k], false);
	uv_close((uv_handle_t *)&b.pace, NULL);
	bus_close(b.bus, 1000, NULL, NULL);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
	for (size_t k = 0; k < b.nsched; k++) {
		unlink(b.sched[k].conf);
		unlink(b.sched[k].log);
		snprintf(text, sizeof(text), "%s/%s.policy", dir,
		    b.sched[k].id);
		unlink(text);
	}
	rmdir(dir);
	free(url);
	return 0;
usage:
	fprintf(stderr, "usage: scheduler_broker -b mm-scheduler "
	    "[-u url[,url...]] [-H hosts] [-v vms] [-s seconds] "
	    "[-S shards] [-B broker-pid[,pid...]] [-A | -O] "
	    "[-q quorum|classic] [-C 'key = value']\n"
	    "  -C  a line for each scheduler's [scheduler] section\n");
	return 2;
}
