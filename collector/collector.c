/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-collector: one per host. It follows the host's VMs through a
 * hypervisor driver, sanitizes what their guests report, reads the host's
 * own statistics, and publishes a HostReport on mm.stats (key
 * host.<host-id>) every interval, and sooner, coalesced to one per
 * fast_min_interval, when a guest's pressure starts rising or its use
 * grows by fast_rise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "clock.h"
#include "collector.h"
#include "hoststats.h"
#include "hv.h"
#include "log.h"
#include "guestmem.h"
#include "topology.h"

#define DEFAULT_CONF	"/etc/mm/collector.conf"

static const char *const driver_names[] = { "kvm", "xen", "sim", NULL };

#define K(key, type, min, max, def, field, choices, help)		\
	{ "collector", key, type, min, max, def,			\
	  offsetof(struct collector_conf, field), choices, help }

static const struct conf_key conf_table[] = {
	K("host_id", CONF_STRING, 1, TOPO_ID_MAX, NULL, host_id, NULL,
	    "this host's id in routing keys; unset: the hostname"),
	K("interval", CONF_DURATION_MS, 100, 3600000, "1s", interval_ms,
	    NULL, "period of the HostReport"),
	K("fast_min_interval", CONF_DURATION_MS, 10, 60000, "100ms",
	    fast_min_interval_ms, NULL,
	    "least time between reports sent early on rising pressure"),
	K("fast_rise", CONF_SIZE_KIB, 0, 1ll << 40, "32M", fast_rise_kib, NULL,
	    "a guest using this much more than in the last report is "
	    "reported early too (0: never)"),
	K("driver", CONF_ENUM, 0, 0, "kvm", driver, driver_names,
	    "hypervisor driver: kvm, xen or sim (mm-sim's sockets)"),
	K("vm_dir", CONF_STRING, 1, 4096, "/run/mm/vm", vm_dir, NULL,
	    "kvm, sim: directory of <vm>.qmp and <vm>.agent sockets"),
	K("balloon_path", CONF_STRING, 1, 1024,
	    "/machine/peripheral/balloon0", balloon_path, NULL,
	    "kvm: QOM path of the virtio balloon (agentless guest-stats)"),
	K("proc_root", CONF_STRING, 1, 4096, "/proc", proc_root, NULL,
	    "where procfs is (a fixture tree for tests and mm-sim)"),
	K("sys_root", CONF_STRING, 1, 4096, "/sys", sys_root, NULL,
	    "where sysfs is (a fixture tree for tests and mm-sim)"),
	K("rescan", CONF_DURATION_MS, 100, 600000, "1s", rescan_ms, NULL,
	    "kvm, sim: rescan of vm_dir and agent reconnects"),
	K("agent_timeout", CONF_DURATION_MS, 100, 600000, "3s",
	    agent_timeout_ms, NULL,
	    "kvm: agent silence before falling back to QMP guest-stats"),
	K("stale_after", CONF_DURATION_MS, 100, 3600000, "5s", stale_ms,
	    NULL, "guest samples older than this are reported stale"),
	K("guest_rate", CONF_INT, 1, 1000, "5", guest_rate, NULL,
	    "guest samples accepted per second per VM; more are dropped"),
	K("tolerance", CONF_SIZE_KIB, 0, 1048576, "50M", tolerance_kib, NULL,
	    "slack of the sanitizer's consistency checks"),
	K("psi_jump", CONF_INT, 1, 100, "5", psi_jump_pct, NULL,
	    "rise of a guest's PSI some avg10, in points, that reports early"),
	K("numa", CONF_BOOL, 0, 0, "yes", numa, NULL,
	    "report each VM's memory per node and its vCPUs' nodes"),
	K("numa_interval", CONF_DURATION_MS, 1000, 3600000, "10s",
	    numa_interval_ms, NULL,
	    "how often each VM's numa_maps is read (it walks page tables)"),
	BUS_CONF_KEYS(struct collector_conf, bus),
};

#define NKEYS	(sizeof(conf_table) / sizeof(conf_table[0]))

/* What the collector keeps per VM (hv_vm.user). */
struct cvm {
	struct san_vm san;
	Mm__V1__GuestStats *clean;	/* sanitized copy, owned */
	bool seen;		/* a sample was sanitized: these are its */
	uint64_t seen_seq;
	uint64_t seen_time_ms;
	uint64_t clean_rx_ms;		/* loop time it arrived */
	bool rising_unreported;		/* a rising sample since the last
					 * report, maybe replaced since */
	bool reported_used;		/* reported_used_kib is set */
	uint64_t reported_used_kib;	/* used memory in the last report */
	unsigned rejects_logged;	/* enum hv_reject bits */
	uint64_t numa_at_ms;		/* last numa_maps reading, loop ms */
	bool have_pages, have_vcpus;
	uint64_t pages[MSG_NODES_MAX];	/* resident 4 KiB pages per node */
	uint64_t vcpu_mask;		/* nodes its threads last ran on */
};

static struct collector {
	struct collector_conf conf;
	int ksmd_pid;		/* cached by hs_read_ksmd_cpu() */
	char host_id[TOPO_ID_MAX + 1];
	char key[TOPO_ID_MAX + 8];
	uv_loop_t loop;
	struct bus *bus;
	struct hv *hv;
	struct daemon_signals sig;
	uv_timer_t tick;
	uv_timer_t fast;
	struct san_limits lim;
	uint64_t seq;
	uint64_t last_pub_ms;
	uint64_t published, fast_published, publish_errors;
	bool fast_pending;
	bool stopping;
	bool bus_was_up;
} C;

/* A deep, malloc'd copy of g through the wire format (validated). */
static Mm__V1__GuestStats *
guest_dup(const Mm__V1__GuestStats *g)
{
	ProtobufCMessage *m;
	uint8_t *buf;
	size_t len;
	int r;

	if (msg_pack(MSG_GUEST_STATS, &g->base, &buf, &len) < 0)
		return NULL;
	r = msg_unpack(MSG_GUEST_STATS, buf, len, &m, NULL, 0);
	free(buf);
	return r < 0 ? NULL : (Mm__V1__GuestStats *)m;
}

/* ---- building and publishing a report ---- */

struct build {
	Mm__V1__GuestStats **guests;
	Mm__V1__GuestStats *stubs;	/* VMs without a sample yet */
	Mm__V1__VmNuma *vm_numa;
	Mm__V1__VmNuma **vm_numa_p;
	Mm__V1__NodePages *pages;	/* MSG_NODES_MAX per VM */
	Mm__V1__NodePages **pages_p;
	uint32_t *vcpu_nodes;		/* MSG_NODES_MAX per VM */
	size_t n, nnuma;
	uint64_t now_mono;
};

/* numa_maps makes the kernel walk the VM's page tables: read it every
 * numa_interval, not every report, and report the last reading. */
static void
refresh_numa(struct cvm *c, struct hv_vm *vm, uint64_t now)
{
	if (c->numa_at_ms != 0 &&
	    now - c->numa_at_ms < (uint64_t)C.conf.numa_interval_ms)
		return;
	c->numa_at_ms = now;
	c->have_pages = hs_read_numa_maps(C.conf.proc_root, vm->pid,
	    c->pages) == 0;
	c->have_vcpus = hs_read_vcpu_nodes(C.conf.proc_root, C.conf.sys_root,
	    vm->pid, &c->vcpu_mask) == 0;
}

static void
add_numa(struct build *b, struct hv_vm *vm, struct cvm *c)
{
	Mm__V1__VmNuma *vn = &b->vm_numa[b->nnuma];
	size_t base = b->nnuma * MSG_NODES_MAX;
	unsigned node;

	refresh_numa(c, vm, b->now_mono);
	if (!c->have_pages && !c->have_vcpus)
		return;
	mm__v1__vm_numa__init(vn);
	vn->vm_id = vm->id;
	vn->nodes = &b->pages_p[base];
	vn->vcpu_nodes = &b->vcpu_nodes[base];
	for (node = 0; c->have_pages && node < MSG_NODES_MAX; node++) {
		Mm__V1__NodePages *np;

		if (c->pages[node] == 0)
			continue;
		np = &b->pages[base + vn->n_nodes];
		mm__v1__node_pages__init(np);
		np->has_node = np->has_pages = 1;
		np->node = node;
		np->pages = c->pages[node];
		b->pages_p[base + vn->n_nodes++] = np;
	}
	for (node = 0; c->have_vcpus && node < MSG_NODES_MAX; node++)
		if (c->vcpu_mask & (1ull << node))
			vn->vcpu_nodes[vn->n_vcpu_nodes++] = node;
	b->vm_numa_p[b->nnuma++] = vn;
}

/* What the host knows of vm, for the sanitizer (and used memory). */
static void
host_view(const struct hv_vm *vm, struct san_host *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->vm_id = vm->id;
	ret->balloon_known = vm->balloon_known;
	ret->balloon_actual_kib = vm->balloon_actual_kib;
	ret->target_known = vm->target_known;
	ret->target_kib = vm->balloon_target_kib;
	ret->max_known = vm->max_known;
	ret->max_kib = vm->max_kib;
	ret->doo_known = vm->doo_known;
	ret->deflate_on_oom = vm->deflate_on_oom;
}

/* What the guest uses, less a deflate-on-oom balloon in its MemTotal. */
static bool
guest_used_kib(const struct hv_vm *vm, const Mm__V1__GuestStats *g,
    uint64_t *ret)
{
	struct san_host h;

	host_view(vm, &h);
	return san_used_kib(&h, g, ret);
}

static void
add_guest_cb(struct hv_vm *vm, void *arg)
{
	struct build *b = arg;
	struct cvm *c = vm->user;
	Mm__V1__GuestStats *g;
	bool stale;

	if (c == NULL || b->n >= MSG_REPEATED_MAX)
		return;
	if (c->clean != NULL) {
		g = c->clean;
		stale = b->now_mono - c->clean_rx_ms > (uint64_t)C.conf.stale_ms;
		c->reported_used = guest_used_kib(vm, g, &c->reported_used_kib);
	} else {
		g = &b->stubs[b->n];
		mm__v1__guest_stats__init(g);
		g->vm_id = vm->id;
		stale = true;
	}
	g->has_stale = 1;
	g->stale = stale;
	/* A rise seen in any sample since the last report, even if a later
	 * one no longer shows it; an old sample's rise is not news. */
	g->has_pressure_rising = 1;
	g->pressure_rising = !stale && c->rising_unreported;
	c->rising_unreported = false;
	g->has_balloon_actual_kib = vm->balloon_known;
	g->balloon_actual_kib = vm->balloon_actual_kib;
	g->has_balloon_target_kib = vm->target_known;
	g->balloon_target_kib = vm->balloon_target_kib;
	g->has_max_kib = vm->max_known;
	g->max_kib = vm->max_kib;
	g->has_deflate_on_oom = vm->doo_known;
	g->deflate_on_oom = vm->deflate_on_oom;
	b->guests[b->n++] = g;
	if (C.conf.numa && vm->pid > 0)
		add_numa(b, vm, c);
}

static int
publish_report(bool fast)
{
	Mm__V1__HostReport rep = MM__V1__HOST_REPORT__INIT;
	Mm__V1__HostStats hs = MM__V1__HOST_STATS__INIT;
	Mm__V1__Meminfo mi;
	Mm__V1__Vmstat vs;
	Mm__V1__Psi psi;
	Mm__V1__KsmStats ksm;
	Mm__V1__KsmSettings ksm_set;
	Mm__V1__NumaNode nodes[MSG_NODES_MAX], *nodes_p[MSG_NODES_MAX];
	struct build b = { 0 };
	size_t nvms = hv_vm_count(C.hv), i, nn = 0;
	int r = -ENOMEM;

	b.now_mono = uv_now(&C.loop);
	if (nvms > 0) {
		b.guests = calloc(nvms, sizeof(*b.guests));
		b.stubs = calloc(nvms, sizeof(*b.stubs));
		b.vm_numa = calloc(nvms, sizeof(*b.vm_numa));
		b.vm_numa_p = calloc(nvms, sizeof(*b.vm_numa_p));
		b.pages = calloc(nvms * MSG_NODES_MAX, sizeof(*b.pages));
		b.pages_p = calloc(nvms * MSG_NODES_MAX, sizeof(*b.pages_p));
		b.vcpu_nodes = calloc(nvms * MSG_NODES_MAX,
		    sizeof(*b.vcpu_nodes));
		if (b.guests == NULL || b.stubs == NULL ||
		    b.vm_numa == NULL || b.vm_numa_p == NULL ||
		    b.pages == NULL || b.pages_p == NULL ||
		    b.vcpu_nodes == NULL)
			goto out;
		hv_foreach(C.hv, add_guest_cb, &b);
	}
	if (hs_read_meminfo(C.conf.proc_root, &mi) == 0)
		hs.meminfo = &mi;
	if (hs_read_vmstat(C.conf.proc_root, &vs) == 0)
		hs.vmstat = &vs;
	if (hs_read_psi(C.conf.proc_root, &psi) == 0)
		hs.psi = &psi;
	if (hs_read_ksm(C.conf.sys_root, &ksm, &ksm_set) == 0) {
		hs.ksm = &ksm;
		if (hs_read_ksmd_cpu(C.conf.proc_root, &C.ksmd_pid,
		    &ksm.ksmd_cpu_ms) == 0)
			ksm.has_ksmd_cpu_ms = 1;
	}
	if (hs_read_numa_nodes(C.conf.sys_root, nodes, MSG_NODES_MAX,
	    &nn) == 0) {
		for (i = 0; i < nn; i++)
			nodes_p[i] = &nodes[i];
		hs.n_numa_nodes = nn;
		hs.numa_nodes = nodes_p;
	}
	hs.n_vm_numa = b.nnuma;
	hs.vm_numa = b.vm_numa_p;

	rep.host_id = C.host_id;
	rep.has_seq = 1;
	rep.seq = C.seq++;
	rep.has_time_ms = 1;
	rep.time_ms = clock_ms(CLOCK_REALTIME);
	rep.has_interval_ms = 1;
	rep.interval_ms = (uint32_t)C.conf.interval_ms;
	rep.has_hypervisor = 1;
	rep.hypervisor = C.conf.driver == HV_TYPE_XEN ?
	    MM__V1__HYPERVISOR__HYPERVISOR_XEN :
	    C.conf.driver == HV_TYPE_SIM ? MM__V1__HYPERVISOR__HYPERVISOR_SIM :
	    MM__V1__HYPERVISOR__HYPERVISOR_KVM;
	rep.host = &hs;
	rep.n_guests = b.n;
	rep.guests = b.guests;

	r = msg_publish(C.bus, MSG_HOST_REPORT, &rep.base, TOPO_EX_STATS,
	    C.key, false, NULL, NULL);
	if (r < 0) {
		C.publish_errors++;
		if (C.publish_errors == 1 || log_debug_enabled())
			log_warnx("cannot publish report %" PRIu64 ": %s",
			    rep.seq, strerror(-r));
	} else {
		C.published++;
		if (fast)
			C.fast_published++;
		log_debug("report %" PRIu64 "%s: %zu vms", rep.seq,
		    fast ? " (pressure)" : "", b.n);
	}
	C.last_pub_ms = b.now_mono;
out:
	free(b.guests);
	free(b.stubs);
	free(b.vm_numa);
	free(b.vm_numa_p);
	free(b.pages);
	free(b.pages_p);
	free(b.vcpu_nodes);
	return r;
}

static void report_soon(void);

/* The periodic report; it stands for an early one that is due, and
 * neither comes within fast_min_interval of the last report. */
static void
tick_cb(uv_timer_t *t)
{
	if (uv_now(&C.loop) - C.last_pub_ms <
	    (uint64_t)C.conf.fast_min_interval_ms) {
		report_soon();
		return;
	}
	uv_timer_stop(&C.fast);
	C.fast_pending = false;
	publish_report(false);
}

static void
fast_cb(uv_timer_t *t)
{
	C.fast_pending = false;
	publish_report(true);
}

/* A guest's pressure rose: report now, or once fast_min_interval has
 * passed since the last report. */
static void
report_soon(void)
{
	uint64_t now = uv_now(&C.loop), next;

	if (C.fast_pending)
		return;
	next = C.last_pub_ms + (uint64_t)C.conf.fast_min_interval_ms;
	C.fast_pending = true;
	uv_timer_start(&C.fast, fast_cb, next > now ? next - now : 0, 0);
}

/* ---- driver events ---- */

static void
on_guest(struct hv_vm *vm, struct cvm *c)
{
	struct san_host h;
	Mm__V1__GuestStats *g;
	uint64_t used;

	host_view(vm, &h);
	h.now_ms = clock_ms(CLOCK_REALTIME);
	h.mono_ms = uv_now(&C.loop);

	/* Until the host knows the VM's size it cannot check the guest's:
	 * the first samples wait for query-balloon (milliseconds). */
	if (vm->guest == NULL || (!vm->balloon_known && !vm->max_known))
		return;
	/* A balloon event comes with the sample already checked: it is not
	 * a new one (and the sanitizer would take it for a replay). */
	if (c->seen && vm->guest->agent_seq == c->seen_seq &&
	    vm->guest->time_ms == c->seen_time_ms)
		return;
	if (!san_admit(&c->san, &C.lim, &h))
		return;
	c->seen = true;
	c->seen_seq = vm->guest->agent_seq;
	c->seen_time_ms = vm->guest->time_ms;
	/* The host's side of what the guest says it uses (kvm, sim: the
	 * process; Xen's view is the balloon, checked against the total). */
	if (vm->pid > 0)
		h.resident_known = hs_read_resident_kib(C.conf.proc_root,
		    vm->pid, &h.resident_kib) == 0;
	g = guest_dup(vm->guest);
	if (g == NULL || san_check(&c->san, &C.lim, &h, g) < 0) {
		msg_free(g ? &g->base : NULL);
		return;
	}
	msg_free(c->clean ? &c->clean->base : NULL);
	c->clean = g;
	c->clean_rx_ms = h.mono_ms;
	if (g->pressure_rising) {
		c->rising_unreported = true;
		report_soon();
	} else if (C.conf.fast_rise_kib > 0 && c->reported_used &&
	    guest_used_kib(vm, g, &used) &&
	    used >= c->reported_used_kib + (uint64_t)C.conf.fast_rise_kib) {
		/* Growing fast: the scheduler should know before the
		 * next interval. */
		report_soon();
	}
}

static const char *const reject_names[] = {
	[HV_REJECT_TOO_BIG] = "agent frame above the size limit",
	[HV_REJECT_UNDECODABLE] = "guest data that does not decode",
	[HV_REJECT_INVALID] = "guest data that fails validation",
};

static void
on_hv_event(struct hv *hv, enum hv_event ev, struct hv_vm *vm, void *arg)
{
	struct cvm *c = vm->user;

	switch (ev) {
	case HV_EV_ADDED:
		c = calloc(1, sizeof(*c));
		vm->user = c;
		log_info("vm \"%s\" found (pid %d)", vm->id, (int)vm->pid);
		break;
	case HV_EV_REMOVED:
		log_info("vm \"%s\" gone", vm->id);
		if (c != NULL)
			msg_free(c->clean ? &c->clean->base : NULL);
		free(c);
		vm->user = NULL;
		break;
	case HV_EV_GUEST:
		if (c != NULL)
			on_guest(vm, c);
		break;
	case HV_EV_BALLOON:
		break;
	case HV_EV_REJECTED:
		if (c == NULL || (c->rejects_logged & (1u << vm->reject)))
			break;
		c->rejects_logged |= 1u << vm->reject;
		log_warnx("vm \"%s\": %s, dropped (reported once per vm; "
		    "counted)", vm->id, reject_names[vm->reject]);
		break;
	}
}

/* ---- lifecycle ---- */

static void
bus_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	if (up) {
		log_info("connected to the broker");
		C.bus_was_up = true;
	} else if (!C.stopping) {
		log_warnx("broker: %s", reason);
	}
}

static void
free_vm_cb(struct hv_vm *vm, void *arg)
{
	struct cvm *c = vm->user;

	if (c != NULL)
		msg_free(c->clean ? &c->clean->base : NULL);
	free(c);
	vm->user = NULL;
}

static void
stop_cb(void *arg)
{
	struct hv_stats st;
	unsigned i;

	if (C.stopping)
		return;
	C.stopping = true;
	daemon_notify_stopping();
	hv_get_stats(C.hv, &st);
	log_info("stopping: %" PRIu64 " reports (%" PRIu64 " on pressure), "
	    "%" PRIu64 " agent frames, %" PRIu64 " dropped", C.published,
	    C.fast_published, st.frames, st.frames_too_big +
	    st.frames_undecodable + st.frames_invalid);
	for (i = 0; i < SAN_REASON_COUNT; i++)
		if (san_total[i] > 0)
			log_info("sanitizer: %s: %" PRIu64, san_reason_name(i),
			    san_total[i]);
	uv_close((uv_handle_t *)&C.tick, NULL);
	uv_close((uv_handle_t *)&C.fast, NULL);
	hv_foreach(C.hv, free_vm_cb, NULL);
	hv_close(C.hv, NULL, NULL);
	bus_close(C.bus, 1000, NULL, NULL);
	daemon_signals_close(&C.sig);
}

int
main(int argc, char **argv)
{
	struct daemon_opts opts;
	struct hv_config hc = { 0 };
	struct bus_config bc;
	int r;

	daemon_host_conf(argc, argv, "mm-collector", DEFAULT_CONF, conf_table, NKEYS,
	    &C.conf, &C.conf.host_id, "collector", &opts);
	snprintf(C.host_id, sizeof(C.host_id), "%s", C.conf.host_id);
	snprintf(C.key, sizeof(C.key), "host.%s", C.host_id);
	C.lim.tolerance_kib = (uint64_t)C.conf.tolerance_kib;
	C.lim.rate_per_s = (unsigned)C.conf.guest_rate;
	C.lim.psi_jump_pct = (double)C.conf.psi_jump_pct;

	/* A VM or broker gone mid-write is an EPIPE error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&C.loop) < 0)
		fatalx("uv_loop_init");
	bus_conf_apply(&C.conf.bus, "mm-collector", &bc);
	bc.state_cb = bus_state_cb;
	C.bus = bus_new(&C.loop, &bc);
	if (C.bus == NULL)
		fatal("bus");
	r = topo_declare_stats_exchange(C.bus);
	if (r < 0)
		fatalx("declaring %s: %s", TOPO_EX_STATS, strerror(-r));

	hc.type = (enum hv_type)C.conf.driver;
	hc.vm_dir = C.conf.vm_dir;
	hc.balloon_path = C.conf.balloon_path;
	hc.rescan_ms = (unsigned)C.conf.rescan_ms;
	hc.poll_ms = (unsigned)C.conf.interval_ms;
	hc.agent_timeout_ms = (unsigned)C.conf.agent_timeout_ms;
	hc.event_cb = on_hv_event;
	C.hv = daemon_hv_start(&C.loop, &hc);

	if (daemon_signals_init(&C.sig, &C.loop, stop_cb, NULL, NULL) < 0)
		fatalx("signals");
	uv_timer_init(&C.loop, &C.tick);
	uv_timer_init(&C.loop, &C.fast);
	uv_timer_start(&C.tick, tick_cb, (uint64_t)C.conf.interval_ms,
	    (uint64_t)C.conf.interval_ms);
	if (bus_start(C.bus) < 0)
		fatalx("bus_start");
	log_info("host \"%s\": %s driver, reports every %" PRId64 " ms to %s "
	    "key %s", C.host_id, hv_type_name(hc.type), C.conf.interval_ms,
	    TOPO_EX_STATS, C.key);
	daemon_notify_ready("collecting");

	uv_run(&C.loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&C.loop);
	if (r < 0)
		log_warnx("loop not closed cleanly: %s", uv_strerror(r));
	conf_free(conf_table, NKEYS, &C.conf);
	return 0;
}
