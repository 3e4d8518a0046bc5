/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-sim: a simulated virtualization host that looks to mm exactly like a
 * KVM host. Per VM it serves two QMP sockets, as a QEMU with two monitors
 * (<dir>/<vm>.qmp for the collector, <dir>/<vm>.actuator), and an agent
 * chardev socket (<dir>/<vm>.agent) sending GuestStats frames, and it keeps a
 * procfs/sysfs tree (<root>/proc, <root>/sys) with the host's meminfo,
 * pressure, vmstat, KSM and two NUMA nodes, so the collector's kvm driver and
 * parsers run unchanged against it. Guests run simple workloads; balloons
 * move toward their target at about 100 MiB/s; a "hostile" guest reports
 * impossible numbers, pads its frames with fields mm does not know, and
 * now and then sends garbage. Each VM's process has a statm with what the
 * guest holds (its use and page cache), which is what the host sees.
 * SIGUSR1 makes every guest report a pressure spike at once (for the
 * collector's fast path).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "clock.h"
#include "conf.h"
#include "log.h"
#include "msg.h"
#include "qmp_server.h"
#include "replay.h"
#include "version.h"

#define TICK_MS		100
#define INFLATE_KIB_S	(100 * 1024)	/* balloon grows: guest shrinks */
#define DEFLATE_KIB_S	(400 * 1024)
#define PID_BASE	100000
/* What a hostile guest pads each frame with, in fields mm does not know. */
#define HOSTILE_PAD	60000

enum workload { WL_IDLE, WL_STATIC, WL_MONO, WL_HOSTILE, WL_TRACE };

/* A guest this far below its need (need > size * OOM_RATIO) kills. */
#define OOM_RATIO	1.3
#define OOM_REST_S	30.0
/* Share of the guests' memory KSM finds identical (same images). */
#define KSM_IDENTICAL	0.15

struct trace_pt {
	double t;
	uint64_t used_kib;
};

struct sim_vm {
	char name[MSG_ID_MAX + 1];
	int index;
	enum workload wl;
	uint64_t max_kib, actual_kib, target_kib;
	uint64_t low_kib, high_kib, need_kib;
	double avg10, avg60, avg300;
	uint64_t some_total_us, major_faults, seq;
	bool spike;
	bool doo;		/* deflate-on-oom balloon */
	uint64_t oom_kills, swap_in, swap_out, swapped_kib;
	double rest_until;	/* killed: at rest until then */
	struct trace_pt *trace;
	size_t ntrace;
	double trace_len;
	uint64_t last_event_kib;
	uint64_t statm_kib;	/* resident memory last written to statm */
	/* <vm>.qmp, <vm>.actuator (QMP) and <vm>.agent */
	struct qmp_server *qmp_srv, *act_srv, *agent_srv;
};

static struct sim {
	uv_loop_t *loop;
	const char *dir;
	const char *root;
	uint64_t host_kib;
	unsigned agent_ms;
	struct sim_vm *vms;
	int nvms;
	uv_timer_t tick, agent_tick, host_tick;
	uv_signal_t sigterm, sigint, sigusr1;
	uint64_t start_ms;
	uint64_t ticks;
	double ksm_sharing;	/* pages */
	double ksm_scanned;	/* pages since the last full scan */
	uint64_t ksm_full_scans;
} sim;

/* ---- the guest model ---- */

static void
vm_step(struct sim_vm *v, double dt_s)
{
	double t = (double)(uv_now(sim.loop) - sim.start_ms) / 1000.0;
	uint64_t step, floor_kib;
	double want10, ratio;

	switch (v->wl) {
	case WL_HOSTILE:
	case WL_IDLE:
		v->need_kib = 256 * 1024 < v->max_kib ? 256 * 1024 :
		    v->max_kib / 2;
		break;
	case WL_STATIC:
		v->need_kib = v->low_kib;
		break;
	case WL_MONO:
		/* Ramp low -> high -> low over 120 s. */
		ratio = fmod(t, 120.0) / 60.0;
		if (ratio > 1.0)
			ratio = 2.0 - ratio;
		v->need_kib = v->low_kib +
		    (uint64_t)((double)(v->high_kib - v->low_kib) * ratio);
		break;
	case WL_TRACE: {
		/* The trace's used memory at this time, looped. */
		double at = v->trace_len > 0 ? fmod(t, v->trace_len) : 0;
		size_t i = 0;

		while (i + 1 < v->ntrace && v->trace[i + 1].t <= at)
			i++;
		v->need_kib = v->trace[i].used_kib;
		break;
	}
	}
	/* Killed by the OOM killer: it comes back small, and rests. */
	if (t < v->rest_until && v->need_kib > 256 * 1024)
		v->need_kib = 256 * 1024;
	if ((double)v->need_kib > (double)v->actual_kib * OOM_RATIO) {
		if (v->doo && v->actual_kib < v->max_kib) {
			/* deflate-on-oom: the balloon gives pages back by
			 * itself, whatever the target; once it is empty the
			 * guest kills like any other. */
			step = (uint64_t)(DEFLATE_KIB_S * dt_s);
			v->actual_kib = v->actual_kib + step < v->max_kib ?
			    v->actual_kib + step : v->max_kib;
		} else {
			v->oom_kills++;
			v->rest_until = t + OOM_REST_S;
			v->need_kib = 256 * 1024;
		}
	}
	/* What does not fit goes out to swap, and comes back. */
	{
		uint64_t cap = v->actual_kib - v->actual_kib / 20;
		uint64_t deficit = v->need_kib > cap ? v->need_kib - cap : 0;

		if (deficit > v->swapped_kib)
			v->swap_out += (deficit - v->swapped_kib) / 4;
		else
			v->swap_in += (v->swapped_kib - deficit) / 4;
		v->swapped_kib = deficit;
	}
	if (v->actual_kib > v->target_kib) {
		step = (uint64_t)(INFLATE_KIB_S * dt_s);
		/* The guest cannot give what it uses. */
		floor_kib = v->need_kib * 9 / 10;
		if (v->target_kib > floor_kib)
			floor_kib = v->target_kib;
		if (v->actual_kib > floor_kib)
			v->actual_kib = v->actual_kib - floor_kib > step ?
			    v->actual_kib - step : floor_kib;
	} else if (v->actual_kib < v->target_kib) {
		step = (uint64_t)(DEFLATE_KIB_S * dt_s);
		v->actual_kib = v->target_kib - v->actual_kib > step ?
		    v->actual_kib + step : v->target_kib;
	}
	/* Pressure in proportion to how far below its need the guest is. */
	want10 = 0.0;
	if (v->need_kib > v->actual_kib * 9 / 10)
		want10 = 100.0 * (double)(v->need_kib - v->actual_kib * 9 / 10) /
		    (double)v->actual_kib * 4.0;
	if (want10 > 100.0)
		want10 = 100.0;
	if (v->spike) {
		/* Each spike adds 20 points: repeated spikes keep rising. */
		v->avg10 = v->avg10 + 20.0 > 100.0 ? 100.0 : v->avg10 + 20.0;
		want10 = v->avg10;
	}
	v->avg10 += (want10 - v->avg10) * (dt_s / 2.0);
	v->avg60 += (v->avg10 - v->avg60) * (dt_s / 60.0);
	v->avg300 += (v->avg10 - v->avg300) * (dt_s / 300.0);
	v->some_total_us += (uint64_t)(v->avg10 / 100.0 * dt_s * 1e6);
	v->major_faults += (uint64_t)(v->avg10 * dt_s * 10.0);
}

static uint64_t
vm_used_kib(const struct sim_vm *v)
{
	uint64_t cap = v->actual_kib - v->actual_kib / 20;

	return v->need_kib < cap ? v->need_kib : cap;
}

/* Its page cache: a quarter of what it does not use. */
static uint64_t
vm_cached_kib(const struct sim_vm *v)
{
	return (v->actual_kib - vm_used_kib(v)) / 4;
}

/* What the host sees the VM's process hold: the guest's use and cache
 * (a hostile guest's lies change nothing here). */
static uint64_t
vm_resident_kib(const struct sim_vm *v)
{
	return vm_used_kib(v) + vm_cached_kib(v);
}

/* What the guest's MemTotal says: a deflate-on-oom balloon leaves it
 * alone and holds its pages as used memory (the kernel does not take them
 * off the managed pages); any other balloon takes them out of it. */
static uint64_t
vm_total_kib(const struct sim_vm *v)
{
	return v->doo ? v->max_kib : v->actual_kib;
}

/* ---- agent frames ---- */

static int
vm_frame(struct sim_vm *v, uint8_t **ret, size_t *ret_len)
{
	Mm__V1__GuestStats g = MM__V1__GUEST_STATS__INIT;
	Mm__V1__Meminfo mi = MM__V1__MEMINFO__INIT;
	Mm__V1__Vmstat vs = MM__V1__VMSTAT__INIT;
	Mm__V1__Psi psi = MM__V1__PSI__INIT;
	uint64_t used = vm_used_kib(v), cached = vm_cached_kib(v);
	ProtobufCMessageUnknownField pad = { 0 }, pad_mi = { 0 };
	static uint8_t pad_data[HOSTILE_PAD + 8];
	static const uint8_t pad_mi_data[] = { 4, 'l', 'i', 'e', 's' };

	g.vm_id = v->name;
	g.has_time_ms = 1;
	g.time_ms = clock_ms(CLOCK_REALTIME);
	g.has_source = 1;
	g.source = MM__V1__STATS_SOURCE__STATS_SOURCE_SIM;
	g.has_agent_seq = 1;
	g.agent_seq = v->seq++;
	g.meminfo = &mi;
	g.vmstat = &vs;
	g.psi = &psi;
#define SET(m, f, val) do { (m).f = (val); (m).has_##f = 1; } while (0)
	SET(mi, total_kib, vm_total_kib(v));
	SET(mi, free_kib, v->actual_kib - used - cached);
	SET(mi, available_kib, v->actual_kib - used);
	SET(mi, cached_kib, cached);
	SET(mi, anon_kib, used);
	SET(vs, major_faults, v->major_faults);
	SET(vs, swap_in_pages, v->swap_in);
	SET(vs, swap_out_pages, v->swap_out);
	SET(vs, oom_kills, v->oom_kills);
	if (v->doo)	/* nr_balloon_pages, 4 KiB pages */
		SET(vs, balloon_pages, (v->max_kib - v->actual_kib) / 4);
	SET(psi, some_avg10_pct, round(v->avg10 * 100.0) / 100.0);
	SET(psi, some_avg60_pct, round(v->avg60 * 100.0) / 100.0);
	SET(psi, some_avg300_pct, round(v->avg300 * 100.0) / 100.0);
	SET(psi, some_total_us, v->some_total_us);
	if (v->wl == WL_HOSTILE) {
		/* Lies a broken or malicious guest tells: more memory than
		 * it has, parts above the total, time going back, host
		 * fields it does not own. */
		mi.total_kib = v->actual_kib * 16;
		mi.free_kib = v->actual_kib * 20;
		g.agent_seq = v->seq % 3;
		vs.major_faults = v->seq % 2 ? 1000 : 10;
		SET(g, balloon_actual_kib, v->max_kib * 8);
		SET(g, stale, 0);
		/* More use than it has: all of its memory. */
		mi.available_kib = 0;
		/* Fields from a "newer agent", which a collector that passed
		 * them on would put in its host's report. */
		pad.tag = 1000;
		pad.wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
		pad.len = 0;
		for (size_t n = HOSTILE_PAD; ; n >>= 7) {
			pad_data[pad.len++] = (uint8_t)((n & 0x7f) |
			    (n > 0x7f ? 0x80 : 0));
			if (n <= 0x7f)
				break;
		}
		memset(pad_data + pad.len, 'x', HOSTILE_PAD);
		pad.len += HOSTILE_PAD;
		pad.data = pad_data;
		g.base.n_unknown_fields = 1;
		g.base.unknown_fields = &pad;
		pad_mi.tag = 99;
		pad_mi.wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
		pad_mi.len = sizeof(pad_mi_data);
		pad_mi.data = (uint8_t *)pad_mi_data;
		mi.base.n_unknown_fields = 1;
		mi.base.unknown_fields = &pad_mi;
	}
#undef SET
	return msg_pack_frame(MSG_GUEST_STATS, &g.base, ret, ret_len);
}

static void
vm_send_frames(struct sim_vm *v)
{
	struct qmp_conn *c;
	uint8_t *frame;
	size_t len;

	for (c = qmp_server_first(v->agent_srv); c != NULL;
	    c = qmp_conn_next(c)) {
		if (v->wl == WL_HOSTILE && v->seq % 5 == 4) {
			/* Now and then bytes that are no GuestStats. */
			static const uint8_t junk[] = { 0, 0, 0, 3, 0xff, 0xff,
			    0xff };

			v->seq++;
			qmp_conn_send(c, junk, sizeof(junk));
			continue;
		}
		if (vm_frame(v, &frame, &len) < 0)
			continue;
		qmp_conn_send(c, frame, len);
		free(frame);
	}
}

/* ---- QMP ---- */

static void
vm_event_balloon(struct sim_vm *v)
{
	json_t *ev = json_pack("{s:s, s:{s:I}, s:{s:I, s:I}}",
	    "event", "BALLOON_CHANGE", "data", "actual",
	    (json_int_t)(v->actual_kib * 1024), "timestamp",
	    "seconds", (json_int_t)(clock_ms(CLOCK_REALTIME) / 1000),
	    "microseconds", (json_int_t)0);

	qmp_server_send_json(v->qmp_srv, json_incref(ev));
	qmp_server_send_json(v->act_srv, ev);
}

static json_t *
qmp_guest_stats(struct sim_vm *v)
{
	uint64_t used = vm_used_kib(v), cached = vm_cached_kib(v);

	return json_pack("{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:I}",
	    "stats",
	    "stat-total-memory", (json_int_t)(vm_total_kib(v) * 1024),
	    "stat-free-memory", (json_int_t)((v->actual_kib - used - cached)
	    * 1024),
	    "stat-available-memory", (json_int_t)((v->actual_kib - used)
	    * 1024),
	    "stat-disk-caches", (json_int_t)(cached * 1024),
	    "stat-major-faults", (json_int_t)v->major_faults,
	    "stat-swap-in", (json_int_t)0,
	    "stat-swap-out", (json_int_t)0,
	    "last-update", (json_int_t)(clock_ms(CLOCK_REALTIME) / 1000));
}

static void
qmp_cb(struct qmp_conn *c, const char *cmd, json_t *args, void *arg)
{
	struct sim_vm *v = arg;
	json_t *ret = NULL;
	const char *prop;
	json_int_t value;

	prop = json_string_value(json_object_get(args, "property"));
	if (cmd == NULL) {
		ret = NULL;
	} else if (strcmp(cmd, "qmp_capabilities") == 0) {
		ret = json_object();
	} else if (strcmp(cmd, "query-memory-size-summary") == 0) {
		ret = json_pack("{s:I}", "base-memory",
		    (json_int_t)(v->max_kib * 1024));
	} else if (strcmp(cmd, "query-balloon") == 0) {
		ret = json_pack("{s:I}", "actual",
		    (json_int_t)(v->actual_kib * 1024));
	} else if (strcmp(cmd, "balloon") == 0 &&
	    json_is_integer(json_object_get(args, "value"))) {
		value = json_integer_value(json_object_get(args, "value"));
		if (value > 0) {
			v->target_kib = (uint64_t)value / 1024;
			if (v->target_kib > v->max_kib)
				v->target_kib = v->max_kib;
			ret = json_object();
		}
	} else if (strcmp(cmd, "qom-set") == 0) {
		ret = json_object();
	} else if (strcmp(cmd, "qom-get") == 0 && prop != NULL &&
	    strcmp(prop, "guest-stats") == 0) {
		ret = qmp_guest_stats(v);
	} else if (strcmp(cmd, "qom-get") == 0 && prop != NULL &&
	    strcmp(prop, "deflate-on-oom") == 0) {
		ret = json_boolean(v->doo);
	} else if (strcmp(cmd, "qom-get") == 0 && prop != NULL &&
	    strcmp(prop, "free-page-reporting") == 0) {
		/* Not modelled: what a simulated guest frees stays. */
		ret = json_false();
	}
	if (ret != NULL)
		qmp_conn_return(c, ret);
	else
		qmp_conn_error(c, "not supported by mm-sim");
}

/* Serve <dir>/<vm>.<suffix>: QMP, or the agent's chardev (qmp false). */
static int
listen_on(struct sim_vm *v, struct qmp_server **ret, const char *suffix,
    bool qmp)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s.%s", sim.dir, v->name, suffix);
	*ret = qmp_server_new(sim.loop, path, qmp ? qmp_cb : NULL, v);
	if (*ret == NULL) {
		log_warnx("%s: %s", path, uv_strerror(-errno));
		return -errno;
	}
	return 0;
}

/* ---- the host's procfs/sysfs tree ---- */

static void
write_file(const char *rel, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
write_file(const char *rel, const char *fmt, ...)
{
	char path[4096], tmp[4200], *p;
	va_list ap;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", sim.root, rel);
	for (p = path + strlen(sim.root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	if (fclose(f) == 0)
		rename(tmp, path);
}

/* <dir>/<vm>.pid, as libvirt keeps one: the process the collector reads
 * numa_maps and task stats of (under the simulated /proc). */
static void
write_pid(const struct sim_vm *v, int pid)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.pid", sim.dir, v->name);
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "%d\n", pid);
		fclose(f);
	}
}

/* proc/<pid>/statm (in pages, as the kernel has it): the process's size
 * is the VM's, its resident memory what the guest holds. */
static void
write_statm(struct sim_vm *v)
{
	uint64_t page_kib = (uint64_t)sysconf(_SC_PAGESIZE) / 1024;
	char rel[64];

	v->statm_kib = vm_resident_kib(v);
	snprintf(rel, sizeof(rel), "proc/%d/statm", PID_BASE + v->index);
	write_file(rel, "%" PRIu64 " %" PRIu64 " 4096 1024 0 %" PRIu64 " 0\n",
	    v->max_kib / page_kib, v->statm_kib / page_kib,
	    v->statm_kib / page_kib);
}

/* A number from ROOT/rel, or def when it cannot be read. */
static uint64_t
read_u64(const char *rel, uint64_t def)
{
	char path[4096];
	unsigned long long v;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", sim.root, rel);
	f = fopen(path, "r");
	if (f == NULL)
		return def;
	if (fscanf(f, "%llu", &v) != 1)
		v = def;
	fclose(f);
	return v;
}

/*
 * KSM, as ksmd would do it: the settings are what someone (mm-actuator)
 * wrote; while running, ksmd scans pages_to_scan pages every
 * sleep_millisecs and merges the guests' identical pages (a fixed share of
 * their memory) as it finds them; unmerging (run 2) gives them back.
 */
static void
ksm_step(uint64_t guest_kib, double dt_s)
{
	uint64_t run = read_u64("sys/kernel/mm/ksm/run", 0);
	uint64_t scan = read_u64("sys/kernel/mm/ksm/pages_to_scan", 100);
	uint64_t sleep_ms = read_u64("sys/kernel/mm/ksm/sleep_millisecs", 20);
	double pages = (double)guest_kib / 4, pool = pages * KSM_IDENTICAL;
	double rate, seen;

	if (run == 2) {
		sim.ksm_sharing = 0;
		return;
	}
	if (run != 1 || pages <= 0)
		return;
	rate = (double)scan * 1000.0 / (double)(sleep_ms > 0 ? sleep_ms : 1);
	sim.ksm_scanned += rate * dt_s;
	/* A page scanned is merged if it is one of the identical ones. */
	seen = rate * dt_s / pages;
	sim.ksm_sharing += (pool - sim.ksm_sharing) * (seen < 1 ? seen : 1);
	while (sim.ksm_scanned >= pages) {
		sim.ksm_scanned -= pages;
		sim.ksm_full_scans++;
	}
}

static void
write_host(void)
{
	uint64_t used = 512 * 1024, guests = 0, free_kib, node, saved;
	char rel[256];
	int i;

	for (i = 0; i < sim.nvms; i++)
		guests += sim.vms[i].actual_kib;
	ksm_step(guests, 1.0);
	saved = (uint64_t)sim.ksm_sharing * 4;
	used += guests > saved ? guests - saved : 0;
	free_kib = used < sim.host_kib ? sim.host_kib - used : 0;
	write_file("proc/meminfo",
	    "MemTotal:       %" PRIu64 " kB\nMemFree:        %" PRIu64
	    " kB\nMemAvailable:   %" PRIu64 " kB\nCached:         %" PRIu64
	    " kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n"
	    "AnonPages:      %" PRIu64 " kB\nShmem:              0 kB\n",
	    sim.host_kib, free_kib, free_kib, (uint64_t)65536, used);
	write_file("proc/pressure/memory",
	    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	write_file("proc/vmstat", "pgmajfault %" PRIu64 "\npswpin 0\n"
	    "pswpout 0\nworkingset_refault_anon 0\nworkingset_refault_file 0\n"
	    "oom_kill 0\n", sim.ticks);
	write_file("sys/kernel/mm/ksm/full_scans", "%" PRIu64 "\n",
	    sim.ksm_full_scans);
	write_file("sys/kernel/mm/ksm/pages_shared", "%" PRIu64 "\n",
	    (uint64_t)sim.ksm_sharing / 8);
	write_file("sys/kernel/mm/ksm/pages_sharing", "%" PRIu64 "\n",
	    (uint64_t)sim.ksm_sharing);
	write_file("sys/kernel/mm/ksm/pages_unshared", "0\n");
	write_file("sys/kernel/mm/ksm/pages_volatile", "0\n");
	for (node = 0; node < 2; node++) {
		snprintf(rel, sizeof(rel),
		    "sys/devices/system/node/node%" PRIu64 "/meminfo", node);
		write_file(rel, "Node %" PRIu64 " MemTotal: %" PRIu64 " kB\n"
		    "Node %" PRIu64 " MemFree: %" PRIu64 " kB\n", node,
		    sim.host_kib / 2, node, free_kib / 2);
		snprintf(rel, sizeof(rel),
		    "sys/devices/system/node/node%" PRIu64 "/cpulist", node);
		write_file(rel, "%s\n", node == 0 ? "0-3" : "4-7");
	}
	for (i = 0; i < sim.nvms; i++) {
		struct sim_vm *v = &sim.vms[i];
		int pid = PID_BASE + i;

		snprintf(rel, sizeof(rel), "proc/%d/numa_maps", pid);
		write_file(rel, "7f0000000000 bind:%d anon=%" PRIu64
		    " dirty=%" PRIu64 " N%d=%" PRIu64
		    " kernelpagesize_kB=4\n", i % 2, v->actual_kib / 4,
		    v->actual_kib / 4, i % 2, v->actual_kib / 4);
		snprintf(rel, sizeof(rel), "proc/%d/task/%d/stat", pid, pid);
		write_file(rel, "%d (qemu-vcpu) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 "
		    "20 0 1 0 100 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 17 %d 0 0"
		    " 0 0 0\n", pid, (i % 2) * 4);
		write_statm(v);
		write_pid(v, pid);
	}
}

/* ---- timers and signals ---- */

static void
tick_cb(uv_timer_t *t)
{
	int i;

	sim.ticks++;
	for (i = 0; i < sim.nvms; i++) {
		struct sim_vm *v = &sim.vms[i];
		uint64_t diff;

		vm_step(v, TICK_MS / 1000.0);
		/* Before any frame from this state: the host never sees
		 * less than the guest honestly reports. */
		if (vm_resident_kib(v) != v->statm_kib)
			write_statm(v);
		diff = v->actual_kib > v->last_event_kib ?
		    v->actual_kib - v->last_event_kib :
		    v->last_event_kib - v->actual_kib;
		if (diff >= 1024 || (diff > 0 && v->actual_kib ==
		    v->target_kib)) {
			v->last_event_kib = v->actual_kib;
			vm_event_balloon(v);
		}
		if (v->spike) {
			vm_send_frames(v);
			v->spike = false;
		}
	}
}

static void
agent_tick_cb(uv_timer_t *t)
{
	int i;

	for (i = 0; i < sim.nvms; i++)
		vm_send_frames(&sim.vms[i]);
}

static void
host_tick_cb(uv_timer_t *t)
{
	write_host();
}

static void
close_walk_cb(uv_handle_t *h, void *arg)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
signal_cb(uv_signal_t *h, int signum)
{
	char path[4096];
	int i;

	if (signum == SIGUSR1) {
		for (i = 0; i < sim.nvms; i++)
			sim.vms[i].spike = true;
		log_info("pressure spike");
		return;
	}
	for (i = 0; i < sim.nvms; i++) {
		struct sim_vm *v = &sim.vms[i];

		/* Each removes its socket and closes its clients. */
		qmp_server_close(v->qmp_srv);
		qmp_server_close(v->act_srv);
		qmp_server_close(v->agent_srv);
		v->qmp_srv = v->act_srv = v->agent_srv = NULL;
		snprintf(path, sizeof(path), "%s/%s.pid", sim.dir, v->name);
		unlink(path);
	}
	uv_walk(sim.loop, close_walk_cb, NULL);
}

/* The rows for VM v, by name, of a "time_s,vm,used_kib,max_kib" CSV
 * (mmctl sim's, read and checked by the replay's reader); times relative to
 * the first. */
static int
load_trace(struct sim_vm *v, const char *path)
{
	FILE *f = fopen(path, "r");
	struct rp_trace tr;
	char err[512];
	double t0 = -1;
	int r;

	if (f == NULL) {
		r = -errno;
		log_warn("cannot open trace \"%s\"", path);
		return r;
	}
	r = rp_trace_read(&tr, f, path, err, sizeof(err));
	fclose(f);
	if (r < 0) {
		log_warnx("%s", err);
		return r;
	}
	for (size_t i = 0; i < tr.n; i++) {
		const struct rp_sample *s = &tr.samples[i];
		struct trace_pt *pts;

		if (strcmp(tr.names[s->vm], v->name) != 0)
			continue;
		if (t0 < 0)
			t0 = (double)s->time_s;
		pts = realloc(v->trace, (v->ntrace + 1) * sizeof(*pts));
		if (pts == NULL)
			break;
		v->trace = pts;
		v->trace[v->ntrace].t = (double)s->time_s - t0;
		v->trace[v->ntrace].used_kib = s->used_kib < v->max_kib ?
		    s->used_kib : v->max_kib;
		v->ntrace++;
	}
	rp_trace_free(&tr);
	if (v->ntrace == 0) {
		log_warnx("trace \"%s\" has no rows for vm \"%s\"", path,
		    v->name);
		return -EINVAL;
	}
	v->trace_len = v->trace[v->ntrace - 1].t + 10;
	return 0;
}

/* NAME,MAX,WORKLOAD[:A[:B]]: "web,2G,static:1G", "db,4G,mono:512M:3G". */
static int
parse_vm(const char *arg, struct sim_vm *v)
{
	char *s = strdup(arg), *name, *max, *wl, *a, *b, *save = NULL;
	char *save0 = NULL;
	int64_t kib;
	int r = -EINVAL;

	if (s == NULL)
		return -ENOMEM;
	name = strtok_r(s, ",", &save0);
	max = strtok_r(NULL, ",", &save0);
	wl = strtok_r(NULL, ",", &save0);
	if (name == NULL || max == NULL || wl == NULL ||
	    strlen(name) > MSG_ID_MAX ||
	    conf_parse_size_kib(max, &kib) < 0 || kib < 65536)
		goto out;
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->max_kib = v->actual_kib = v->target_kib = (uint64_t)kib;
	v->last_event_kib = v->actual_kib;
	a = strtok_r(wl, ":", &save);
	if (strcmp(a, "idle") == 0) {
		v->wl = WL_IDLE;
	} else if (strcmp(a, "static") == 0) {
		v->wl = WL_STATIC;
		a = strtok_r(NULL, ":", &save);
		if (a == NULL || conf_parse_size_kib(a, &kib) < 0)
			goto out;
		v->low_kib = (uint64_t)kib;
	} else if (strcmp(a, "mono") == 0) {
		v->wl = WL_MONO;
		a = strtok_r(NULL, ":", &save);
		b = strtok_r(NULL, ":", &save);
		if (a == NULL || conf_parse_size_kib(a, &kib) < 0)
			goto out;
		v->low_kib = (uint64_t)kib;
		if (b == NULL || conf_parse_size_kib(b, &kib) < 0 ||
		    (uint64_t)kib < v->low_kib)
			goto out;
		v->high_kib = (uint64_t)kib;
	} else if (strcmp(a, "hostile") == 0) {
		v->wl = WL_HOSTILE;
	} else if (strcmp(a, "trace") == 0) {
		v->wl = WL_TRACE;
		a = strtok_r(NULL, "", &save);
		if (a == NULL || load_trace(v, a) < 0)
			goto out;
	} else {
		goto out;
	}
	/* Options after the workload: doo (a deflate-on-oom balloon). */
	while ((a = strtok_r(NULL, ",", &save0)) != NULL) {
		if (strcmp(a, "doo") != 0)
			goto out;
		v->doo = true;
	}
	r = 0;
out:
	free(s);
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: mm-sim -s DIR -r ROOT [-H HOST_MEM] [-i AGENT_MS] "
	    "[-v] -m NAME,MAX,WORKLOAD[,doo] ...\n"
	    "       mm-sim --version\n"
	    "  WORKLOAD: idle | static:SIZE | mono:LOW:HIGH | hostile |\n"
	    "            trace:FILE (mmctl sim's CSV, this VM's rows, looped)\n"
	    "  doo: a deflate-on-oom balloon (else a guest far below its need"
	    " OOM-kills)\n"
	    "  serves DIR/NAME.qmp, NAME.actuator (QMP) and NAME.agent, "
	    "writes ROOT/proc\n  and ROOT/sys; SIGUSR1: pressure spike (+20 "
	    "points) in every guest\n");
}

int
main(int argc, char **argv)
{
	uv_loop_t loop;
	int64_t v64;
	int c, i, verbose = 0;

	sim.host_kib = 16 * 1024 * 1024;
	sim.agent_ms = 1000;
	sim.vms = calloc((size_t)argc, sizeof(*sim.vms));
	if (sim.vms == NULL)
		return 1;
	if (argc == 2 && strcmp(argv[1], "--version") == 0)
		version_print_exit("mm-sim");
	while ((c = getopt(argc, argv, "s:r:H:i:m:vh")) != -1) {
		switch (c) {
		case 's':
			sim.dir = optarg;
			break;
		case 'r':
			sim.root = optarg;
			break;
		case 'H':
			if (conf_parse_size_kib(optarg, &v64) < 0 || v64 <= 0) {
				usage(stderr);
				return 2;
			}
			sim.host_kib = (uint64_t)v64;
			break;
		case 'i':
			if (conf_parse_duration_ms(optarg, &v64) < 0 ||
			    v64 < 10 || v64 > 60000) {
				usage(stderr);
				return 2;
			}
			sim.agent_ms = (unsigned)v64;
			break;
		case 'm':
			if (parse_vm(optarg, &sim.vms[sim.nvms]) < 0) {
				fprintf(stderr, "mm-sim: bad VM \"%s\"\n",
				    optarg);
				return 2;
			}
			sim.vms[sim.nvms].index = sim.nvms;
			sim.nvms++;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (sim.dir == NULL || sim.root == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("mm-sim", verbose, false);
	mkdir(sim.dir, 0755);
	mkdir(sim.root, 0755);
	uv_loop_init(&loop);
	sim.loop = &loop;
	sim.start_ms = uv_now(&loop);
	/* The tree and the pid files exist before anyone can connect. */
	for (i = 0; i < sim.nvms; i++)
		vm_step(&sim.vms[i], 0.0);
	/* KSM's settings as a fresh kernel has them; then they are
	 * whatever is written to them. */
	write_file("sys/kernel/mm/ksm/run", "0\n");
	write_file("sys/kernel/mm/ksm/pages_to_scan", "100\n");
	write_file("sys/kernel/mm/ksm/sleep_millisecs", "20\n");
	write_file("sys/kernel/mm/ksm/merge_across_nodes", "1\n");
	write_host();
	for (i = 0; i < sim.nvms; i++) {
		struct sim_vm *v = &sim.vms[i];

		if (listen_on(v, &v->qmp_srv, "qmp", true) < 0 ||
		    listen_on(v, &v->act_srv, "actuator", true) < 0 ||
		    listen_on(v, &v->agent_srv, "agent", false) < 0)
			fatalx("cannot serve vm \"%s\"", sim.vms[i].name);
	}
	uv_timer_init(&loop, &sim.tick);
	uv_timer_init(&loop, &sim.agent_tick);
	uv_timer_init(&loop, &sim.host_tick);
	uv_timer_start(&sim.tick, tick_cb, TICK_MS, TICK_MS);
	uv_timer_start(&sim.agent_tick, agent_tick_cb, sim.agent_ms,
	    sim.agent_ms);
	uv_timer_start(&sim.host_tick, host_tick_cb, 1000, 1000);
	uv_signal_init(&loop, &sim.sigterm);
	uv_signal_init(&loop, &sim.sigint);
	uv_signal_init(&loop, &sim.sigusr1);
	uv_signal_start(&sim.sigterm, signal_cb, SIGTERM);
	uv_signal_start(&sim.sigint, signal_cb, SIGINT);
	uv_signal_start(&sim.sigusr1, signal_cb, SIGUSR1);
	/* A client gone mid-write is an EPIPE error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	log_info("serving %d vms in %s, host tree in %s", sim.nvms, sim.dir,
	    sim.root);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	for (i = 0; i < sim.nvms; i++)
		free(sim.vms[i].trace);
	free(sim.vms);
	return 0;
}
