/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Real guests under a real libvirtd of the test's own (libvirtd.h): QEMU
 * under TCG, domains defined and started through libvirt.
 * (a) A guest boots; libvirt's balloon statistics (virsh dommemstat) come
 *     with the period its XML sets and the balloon goes to its
 *     <currentMemory>; the agent's channel is a socket at the path of the
 *     live XML, and the guest agent's frames arrive on it.
 * (b) A libvirtd restart leaves the guest running, the same QEMU, and
 *     libvirt drives its balloon again (virsh setmem after the restart).
 * (d) Proactive reclaim through libvirt: a guest with a zram swap keeps 96
 *     MiB of 512 hot; hv_reclaim() on the libvirt driver (as mm-actuator
 *     calls it) reaches the agent on the domain's org.mm.control.0
 *     channel, found in the live XML, and the agent reclaims at least
 *     half of the cold part.
 * (c) The fleet test on libvirt: three guests defined through libvirt (one
 *     ramping, two idle) under the real mm-collector, mm-scheduler and
 *     mm-actuator with driver = libvirt: the ramp gets memory the idle
 *     guests give back, every target within the guest's limits, a
 *     libvirtd restart before the ramp after which decisions and balloon
 *     changes resume, and each domain's persistent definition is left as
 *     it was (virsh dumpxml --inactive before and after). fleet.c
 *     writes the daemons' configurations and records what they do, as
 *     for test_vm_fleet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fleet.h"
#include "libvirtd.h"
#include "msg.h"
#include "testutil.h"
#include "tu_hv.h"

#define MIB		1024ULL
#define ONE		"lv1"
#define ONE_MAX_MIB	512
#define ONE_CUR_MIB	384
#define AGENT_PORT	"org.mm.agent.0"

/* The fleet, as test_vm_fleet.c runs it. */
#define NVM		3
#define RAMP		2
#define RAMP_MIB	768
#define IDLE_MIB	384
#define POOL_MIB	1152
#define MONO		"mm_test_mono:50M:400M:25M:1000:5000:20000"
#define MONO_PEAK_MIB	400

static const char *const names[NVM] = { "idle1", "idle2", "ramp" };
static const unsigned max_mib[NVM] = { IDLE_MIB, IDLE_MIB, RAMP_MIB };

static struct {
	char *dir;		/* the libvirtd's and (a)'s guest's */
	char *vmdir;
	struct libvirtd *lv;
	struct vm *one;		/* (a) and (b) */

	/* (c) */
	struct fleet f;
	struct vm *vms[NVM];	/* the fleet's */
	char *inactive[NVM];	/* dumpxml --inactive after define */
	struct fleet_record rec;
} S;

/* One figure of virsh dommemstat (KiB, or seconds for last_update). */
static bool
memstat(const char *name, const char *key, uint64_t *ret)
{
	char *out = NULL, *line, *save;
	size_t klen = strlen(key);
	bool found = false;

	if (libvirtd_virsh(S.lv, &out, "dommemstat %s", name) == 0)
		for (line = strtok_r(out, "\n", &save); line != NULL &&
		    !found; line = strtok_r(NULL, "\n", &save))
			if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
				found = sscanf(line + klen, "%" SCNu64,
				    ret) == 1;
	free(out);
	return found;
}

/* Wait up to timeout_s for the balloon ("actual") to reach want_kib. */
static bool
wait_actual(const char *name, uint64_t want_kib, unsigned timeout_s,
    uint64_t *ret_kib)
{
	double deadline = vm_now_s() + timeout_s;
	uint64_t v = 0;

	do {
		if (memstat(name, "actual", &v) && v == want_kib)
			break;
		usleep(200000);
	} while (vm_now_s() < deadline);
	*ret_kib = v;
	return v == want_kib;
}

/* The path of the unix channel named port in the live XML; malloc'd. */
static char *
channel_path(const char *name, const char *port)
{
	char *xml = NULL, *ch, *end, *p, *q, *path = NULL;

	if (libvirtd_virsh(S.lv, &xml, "dumpxml %s", name) != 0) {
		fprintf(stderr, "virsh dumpxml %s: %s\n", name, xml);
		free(xml);
		return NULL;
	}
	for (ch = strstr(xml, "<channel type='unix'>"); ch != NULL && !path;
	    ch = strstr(end, "<channel type='unix'>")) {
		end = strstr(ch, "</channel>");
		if (end == NULL)
			break;
		*end++ = '\0';
		if (strstr(ch, port) == NULL ||
		    (p = strstr(ch, "path='")) == NULL ||
		    (q = strchr(p + 6, '\'')) == NULL)
			continue;
		path = strndup(p + 6, (size_t)(q - p - 6));
	}
	free(xml);
	return path;
}

static bool
read_full(int fd, void *buf, size_t len, double deadline)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		int left = (int)((deadline - vm_now_s()) * 1000);

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

/*
 * Connect to the agent's channel and read one frame (4-byte big-endian
 * length, a GuestStats) within timeout_s; returns it (msg_free()) or
 * NULL after printing why.
 */
static Mm__V1__GuestStats *
agent_frame(const char *path, unsigned timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	double deadline = vm_now_s() + timeout_s;
	ProtobufCMessage *m = NULL;
	uint8_t hdr[4], *body = NULL;
	char why[256] = "";
	uint32_t len;
	int fd;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "connect %s: %s\n", path, strerror(errno));
		goto out;
	}
	if (!read_full(fd, hdr, 4, deadline)) {
		fprintf(stderr, "%s: no frame in %u s\n", path, timeout_s);
		goto out;
	}
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (len == 0 || len > 65536 || (body = malloc(len)) == NULL ||
	    !read_full(fd, body, len, deadline)) {
		fprintf(stderr, "%s: a frame of %u bytes not read\n", path,
		    len);
		goto out;
	}
	if (msg_unpack(MSG_GUEST_STATS, body, len, &m, why, sizeof(why)) < 0)
		fprintf(stderr, "%s: not a GuestStats: %s\n", path, why);
out:
	free(body);
	if (fd >= 0)
		close(fd);
	return (Mm__V1__GuestStats *)m;
}

static int
group_setup(void **state)
{
	(void)state;
	libvirtd_require();
	(void)tu_broker_url();	/* (c) needs the broker: skip early */
	signal(SIGPIPE, SIG_IGN);
	S.dir = tu_tmpdir();
	if (asprintf(&S.vmdir, "%s/vm", S.dir) < 0)
		return -1;
	mkdir(S.vmdir, 0755);
	S.lv = libvirtd_start(S.dir);
	return S.lv != NULL ? 0 : -1;
}

static int
group_teardown(void **state)
{
	(void)state;
	libvirtd_destroy(S.lv, S.one);
	libvirtd_stop(S.lv);
	if (getenv("MM_TEST_KEEP") == NULL)
		tu_rmtree(S.dir);
	else
		fprintf(stderr, "libvirt: kept %s\n", S.dir);
	free(S.dir);
	free(S.vmdir);
	return 0;
}

static void
boot_one(void)
{
	struct vm_opts o = {
		.id = ONE, .dir = S.vmdir, .mem_mib = ONE_MAX_MIB,
		.interval = "500ms", .resend = "1s",
	};

	if (S.one == NULL)
		S.one = libvirtd_boot(S.lv, &o, ONE_CUR_MIB);
	assert_non_null(S.one);
}

/* (a) */
static void
test_vm_libvirt_guest(void **state)
{
	uint64_t actual, avail = 0, t1 = 0, t2 = 0;
	Mm__V1__GuestStats *g;
	struct stat st;
	char *path;

	(void)state;
	boot_one();

	/* The balloon goes to <currentMemory>, its stats every second. */
	if (!wait_actual(ONE, ONE_CUR_MIB * MIB, 30, &actual))
		fail_msg("balloon at %llu KiB, not the %u MiB of "
		    "<currentMemory>, 30 s after boot",
		    (unsigned long long)actual, ONE_CUR_MIB);
	assert_true(memstat(ONE, "last_update", &t1));
	usleep(2500000);
	assert_true(memstat(ONE, "last_update", &t2));
	assert_true(memstat(ONE, "available", &avail));
	printf("libvirt: \"%s\" balloon %llu MiB, available %llu MiB, stats "
	    "updated %llu s apart over 2.5 s\n", ONE,
	    (unsigned long long)actual / MIB, (unsigned long long)avail / MIB,
	    (unsigned long long)(t2 - t1));
	assert_true(t2 > t1);
	assert_true(avail > 0 && avail <= ONE_MAX_MIB * MIB);

	/* The agent's channel, found as the driver finds it. */
	path = channel_path(ONE, AGENT_PORT);
	assert_non_null(path);
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		fail_msg("%s (the live XML's channel %s) is not a socket",
		    path, AGENT_PORT);
	g = agent_frame(path, 10);
	assert_non_null(g);
	printf("libvirt: a frame from \"%s\" on %s: seq %llu, MemTotal %llu "
	    "MiB\n", g->vm_id, path, (unsigned long long)g->agent_seq,
	    g->meminfo != NULL ? (unsigned long long)g->meminfo->total_kib /
	    MIB : 0);
	assert_string_equal(g->vm_id, ONE);
	assert_non_null(g->meminfo);
	assert_true(g->meminfo->total_kib > 0 &&
	    g->meminfo->total_kib <= ONE_MAX_MIB * MIB);
	msg_free((ProtobufCMessage *)g);
	free(path);
}

/* (b) */
static void
test_vm_libvirt_restart(void **state)
{
	uint64_t actual;
	Mm__V1__GuestStats *g;
	char *out = NULL, *path;
	pid_t before;

	(void)state;
	boot_one();
	before = libvirtd_qemu_pid(S.lv, ONE);
	assert_true(before > 0);
	assert_int_equal(libvirtd_restart(S.lv), 0);
	assert_int_equal(libvirtd_qemu_pid(S.lv, ONE), before);
	assert_int_equal(libvirtd_virsh(S.lv, &out, "domstate %s", ONE), 0);
	printf("libvirt: after the restart \"%s\" is %s", ONE, out);
	assert_non_null(strstr(out, "running"));
	free(out);

	/* libvirtd has QEMU's monitor again: the balloon follows. */
	assert_int_equal(libvirtd_virsh(S.lv, NULL, "setmem %s %lluK --live",
	    ONE, 320 * MIB), 0);
	if (!wait_actual(ONE, 320 * MIB, 30, &actual))
		fail_msg("balloon at %llu KiB 30 s after setmem 320 MiB",
		    (unsigned long long)actual);
	path = channel_path(ONE, AGENT_PORT);
	assert_non_null(path);
	g = agent_frame(path, 10);
	assert_non_null(g);
	msg_free((ProtobufCMessage *)g);
	free(path);
	printf("libvirt: same qemu (pid %d), balloon set to 320 MiB through "
	    "the restarted libvirtd, agent frames still arrive\n",
	    (int)before);
}

/* (d) */
#define COLD		"lvcold"
#define COLD_MIB	416	/* 512 taken, 96 kept hot */

static struct {
	bool has;
	uint64_t seq, kib;
	int state;
	double stall;
	uint64_t used_kib;	/* the last sample's, as the scheduler counts */
} rc;

static void
reclaim_cb(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	(void)hv;
	(void)arg;
	if (ev != HV_EV_GUEST || vm->guest == NULL ||
	    strcmp(vm->id, COLD) != 0)
		return;
	(void)fleet_used_kib(vm->guest, &rc.used_kib);
	if (vm->guest->reclaim == NULL)
		return;
	rc.has = true;
	rc.seq = vm->guest->reclaim->seq;
	rc.kib = vm->guest->reclaim->reclaimed_kib;
	rc.state = (int)vm->guest->reclaim->state;
	rc.stall = vm->guest->reclaim->stall_pct;
}

static bool
have_used(void)
{
	return rc.used_kib > 0;
}

static bool
reclaim_ended(void)
{
	return rc.has &&
	    rc.state != MM__V1__RECLAIM_STATE__RECLAIM_STATE_RUNNING;
}

static void
test_vm_libvirt_reclaim(void **state)
{
	struct vm_opts o = {
		.id = COLD, .dir = S.vmdir, .mem_mib = 768,
		.workload = "mm_test_cold:512M:96M",
		.interval = "500ms", .resend = "1s", .zram = true,
	};
	struct hv_config c = {
		.type = HV_TYPE_LIBVIRT, .uri = S.lv->uri,
		.event_cb = reclaim_cb,
	};
	uint64_t used0, used1;
	uv_loop_t loop;
	struct vm *vm;
	struct hv *hv;
	double t0;
	int r = -1;

	(void)state;
	/* (a) and (b)'s guest makes room. */
	libvirtd_destroy(S.lv, S.one);
	S.one = NULL;
	vm = libvirtd_boot(S.lv, &o, 0);
	assert_non_null(vm);
	if (!vm_wait_console(vm, "cold: touched", 60000, NULL, 0)) {
		vm_dump_console(vm);
		fail_msg("the cold workload did not start");
	}
	assert_int_equal(uv_loop_init(&loop), 0);
	hv = hv_new(&loop, &c);
	assert_non_null(hv);
	assert_int_equal(hv_start(hv), 0);
	/* The domain is listed, its agent reports, its control port comes
	 * up with the agent. */
	(void)tu_run_until_fn(&loop, have_used, 20000);
	tu_run_for(&loop, 2000);
	used0 = rc.used_kib;
	t0 = vm_now_s();
	while (vm_now_s() - t0 < 20 &&
	    (r = hv_reclaim(hv, COLD, 1, 1024 * MIB, 10.0)) < 0)
		tu_run_for(&loop, 500);
	assert_int_equal(r, 0);
	t0 = vm_now_s();
	(void)tu_run_until_fn(&loop, reclaim_ended, 120000);
	tu_run_for(&loop, 3000);	/* the reports catch up */
	used1 = rc.used_kib;
	printf("libvirt reclaim: state %d after %.0f s, %llu MiB reclaimed "
	    "(%u cold), last step's stall %.1f %%; guest used %llu -> %llu "
	    "MiB\n", rc.state, vm_now_s() - t0,
	    (unsigned long long)rc.kib / MIB, COLD_MIB, rc.stall,
	    (unsigned long long)used0 / MIB, (unsigned long long)used1 / MIB);
	if (!rc.has)
		vm_dump_console(vm);
	assert_true(rc.has);
	assert_int_equal(rc.seq, 1);
	assert_true(rc.state == MM__V1__RECLAIM_STATE__RECLAIM_STATE_DONE ||
	    rc.state == MM__V1__RECLAIM_STATE__RECLAIM_STATE_EXHAUSTED ||
	    rc.state == MM__V1__RECLAIM_STATE__RECLAIM_STATE_PRESSURE);
	assert_true(rc.kib >= COLD_MIB * MIB / 2);
	/* More than half the cold part left the guest's memory. */
	assert_true(used0 > used1 + COLD_MIB * MIB / 2);
	hv_close(hv, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
	libvirtd_destroy(S.lv, vm);
}

/* (c): the fleet. */

static bool
all_fresh(void)
{
	return fleet_all_fresh(&S.rec);
}

/* The newest target decided for guest k; its maximum if none. */
static uint64_t
last_target(int k)
{
	for (size_t i = S.rec.ndec; i-- > 0;)
		if (S.rec.dec[i].vm == k)
			return S.rec.dec[i].target_kib;
	return max_mib[k] * MIB;
}

static bool
all_at_max(void)
{
	return fleet_all_at_max(&S.rec);
}

static int
fleet_setup(void **state)
{
	static const struct fleet_param params[] = {
		{ "hold_ms", 2000 },
		{ "shrink_pct", 25 },
		{ "psi_low_pct", 20 },
		{ "psi_high_pct", 80 },
		{ "guest_capacity_kib", POOL_MIB * MIB },
	};

	(void)state;
	/* (a) and (b)'s guest makes room. */
	libvirtd_destroy(S.lv, S.one);
	S.one = NULL;
	S.rec.names = names;
	S.rec.max_mib = max_mib;
	S.rec.n = NVM;
	fleet_record(&S.f, &S.rec);
	fleet_use_libvirt(&S.f, S.lv);
	fleet_open(&S.f, "test_vm_libvirt");
	fleet_start_scheduler(&S.f, 0, params, 5);
	return 0;
}

static int
fleet_teardown(void **state)
{
	(void)state;
	/* The actuator, the domains, the other daemons. */
	fleet_close(&S.f);
	for (int i = 0; i < NVM; i++)
		free(S.inactive[i]);
	return 0;
}

/* Each domain's persistent definition is what it was after define. */
static void
check_inactive(const char *when)
{
	char *now = NULL;

	for (int k = 0; k < NVM; k++) {
		assert_int_equal(libvirtd_virsh(S.lv, &now,
		    "dumpxml --inactive %s", names[k]), 0);
		if (strcmp(now, S.inactive[k]) != 0)
			fail_msg("%s the persistent definition of \"%s\" "
			    "changed:\n---- after define\n%s---- now\n%s",
			    when, names[k], S.inactive[k], now);
		free(now);
	}
}

static void
test_vm_libvirt_fleet(void **state)
{
	const double t0 = vm_now_s();
	uint64_t before_kib, base_kib = 0, at_restart_kib, idle_at_peak[2];
	uint64_t after = 0, peak_target = 0, pool_at_peak = 0;
	size_t dec_before;

	(void)state;
	for (int k = 0; k < NVM; k++) {
		S.vms[k] = fleet_boot(&S.f, names[k], max_mib[k],
		    k == RAMP ? MONO : NULL);
		assert_non_null(S.vms[k]);
		assert_int_equal(libvirtd_virsh(S.lv, &S.inactive[k],
		    "dumpxml --inactive %s", names[k]), 0);
	}
	fleet_start_collector(&S.f, NULL);
	fleet_start_actuator(&S.f, NULL);
	if (!tu_run_until_fn(&S.f.loop, all_fresh, 30000))
		fail_msg("the collector's reports never carried 3 fresh agent "
		    "samples from the libvirt guests (%u reports)",
		    S.rec.reports);

	/* Before the ramp the host shrinks the guests toward their need;
	 * then libvirtd restarts under the daemons. */
	if (!vm_wait_console(S.vms[RAMP], "mono: start", 60000, NULL, 0)) {
		vm_dump_console(S.vms[RAMP]);
		fail_msg("mono did not start");
	}
	tu_run_for(&S.f.loop, 200);
	before_kib = S.rec.seen[RAMP].actual_kib;
	base_kib = S.rec.seen[RAMP].used_kib;
	printf("vm libvirt fleet: before the ramp \"ramp\" holds %llu MiB of "
	    "%u (uses %llu), the idle ones %llu and %llu MiB of %u (%zu "
	    "decisions)\n", (unsigned long long)before_kib / MIB, RAMP_MIB,
	    (unsigned long long)base_kib / MIB,
	    (unsigned long long)S.rec.seen[0].actual_kib / MIB,
	    (unsigned long long)S.rec.seen[1].actual_kib / MIB, IDLE_MIB,
	    S.rec.ndec);
	assert_true(before_kib < (RAMP_MIB - 128) * MIB);
	assert_true(base_kib > 0);
	assert_int_equal(libvirtd_restart(S.lv), 0);
	/* From here on the ramp's largest balloon is the one since. */
	at_restart_kib = S.rec.seen[RAMP].actual_kib;
	S.rec.seen[RAMP].max_actual_kib = 0;
	dec_before = S.rec.ndec;

	/* The ramp, to its peak: covered, with the idle guests' memory. */
	for (unsigned t = 0; t < 90000; t += 100) {
		if (vm_wait_console(S.vms[RAMP], "mono: held 400 MiB", 0,
		    NULL, 0))
			break;
		tu_run_for(&S.f.loop, 100);
	}
	tu_run_for(&S.f.loop, 3000);
	idle_at_peak[0] = S.rec.seen[0].actual_kib;
	idle_at_peak[1] = S.rec.seen[1].actual_kib;
	for (int k = 0; k < NVM; k++)
		pool_at_peak += last_target(k);
	if (!vm_wait_console(S.vms[RAMP], "mono: done", 30000, NULL, 0)) {
		vm_dump_console(S.vms[RAMP]);
		fail_msg("mono did not finish");
	}
	tu_run_for(&S.f.loop, 1000);
	for (size_t i = dec_before; i < S.rec.ndec; i++)
		if (S.rec.dec[i].vm == RAMP) {
			after++;
			if (S.rec.dec[i].target_kib > peak_target)
				peak_target = S.rec.dec[i].target_kib;
		}
	printf("vm libvirt fleet: after the restart %llu decisions for "
	    "\"ramp\", target up to %llu MiB, its balloon from %llu up to "
	    "%llu MiB; at the peak the idle guests held %llu and %llu MiB, "
	    "the targets %llu MiB together (pool %u MiB)\n",
	    (unsigned long long)after, (unsigned long long)peak_target / MIB,
	    (unsigned long long)at_restart_kib / MIB,
	    (unsigned long long)S.rec.seen[RAMP].max_actual_kib / MIB,
	    (unsigned long long)idle_at_peak[0] / MIB,
	    (unsigned long long)idle_at_peak[1] / MIB,
	    (unsigned long long)pool_at_peak / MIB, POOL_MIB);
	if (vm_wait_console(S.vms[RAMP], "Out of memory", 0, NULL, 0) ||
	    vm_wait_console(S.vms[RAMP], "oom-kill", 0, NULL, 0)) {
		vm_dump_console(S.vms[RAMP]);
		fail_msg("the ramping guest OOM-killed");
	}
	assert_true(vm_wait_console(S.vms[RAMP],
	    "mm-init: workload mm_test_mono exited 0", 2000, NULL, 0));
	/* Decisions resumed after the restart and were applied: the
	 * target covered the peak on top of what the guest used before,
	 * and the balloon grew with it. */
	assert_true(after > 0);
	assert_true(peak_target >= base_kib + MONO_PEAK_MIB * MIB);
	assert_true(S.rec.seen[RAMP].max_actual_kib >= at_restart_kib +
	    MONO_PEAK_MIB / 2 * MIB);
	/* The ramp's memory came from the idle guests, within the pool. */
	for (int k = 0; k < 2; k++)
		assert_true(idle_at_peak[k] <= (IDLE_MIB - 64) * MIB);
	assert_true(pool_at_peak <= POOL_MIB * MIB);
	/* Every target within the guest's limits, with a reason. */
	for (size_t i = 0; i < S.rec.ndec; i++) {
		const struct fleet_decision *d = &S.rec.dec[i];

		assert_true(d->has_reason);
		assert_true(d->min_kib >= 0 && d->max_kib > 0);
		assert_true((double)d->target_kib >= d->min_kib);
		assert_true((double)d->target_kib <= d->max_kib);
		assert_true(d->target_kib <= max_mib[d->vm] * MIB);
	}
	for (int k = 0; k < NVM; k++)
		assert_false(S.rec.seen[k].out_of_range);
	check_inactive("while mm ran,");

	/* Stop: release_on_stop gives every guest its maximum back, and
	 * the definitions are still as defined. */
	assert_int_equal(fleet_stop(&S.f, &S.f.sch), 0);
	assert_int_equal(fleet_stop(&S.f, &S.f.act), 0);
	if (!tu_run_until_fn(&S.f.loop, all_at_max, 15000))
		fail_msg("after the actuator stopped the guests hold %llu, "
		    "%llu, %llu MiB, not their maximum",
		    (unsigned long long)S.rec.seen[0].actual_kib / MIB,
		    (unsigned long long)S.rec.seen[1].actual_kib / MIB,
		    (unsigned long long)S.rec.seen[2].actual_kib / MIB);
	check_inactive("after mm stopped,");
	printf("vm libvirt fleet: %zu decisions, %u reports, released; "
	    "definitions unchanged; %.0f s\n", S.rec.ndec, S.rec.reports,
	    vm_now_s() - t0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vm_libvirt_guest),
		cmocka_unit_test(test_vm_libvirt_restart),
		cmocka_unit_test(test_vm_libvirt_reclaim),
		cmocka_unit_test_setup_teardown(test_vm_libvirt_fleet,
		    fleet_setup, fleet_teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
