/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-collector: one per host. It follows the host's VMs through a
 * hypervisor driver, sanitizes what their guests report, reads the host's
 * own statistics, and publishes a HostReport on mm.stats (key
 * host.<host-id>) every interval, and sooner, coalesced to one per
 * fast_min_interval, when a guest's pressure starts rising or its use
 * grows by fast_rise. This file: its configuration, start and stop.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "bus.h"
#include "collector.h"
#include "log.h"

#define DEFAULT_CONF	"/etc/mm/collector.conf"

static const char *const driver_names[] = { "kvm", "xen", "sim", "libvirt",
	NULL };

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
	    "hypervisor driver: kvm, xen, sim (mm-sim's sockets) or libvirt"),
	K("libvirt_uri", CONF_STRING, 1, 1023, "qemu:///system", libvirt_uri,
	    NULL, "libvirt: the connection URI of the domains' libvirtd"),
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
	    "kvm, sim: rescan of vm_dir and agent reconnects; libvirt: "
	    "reconnects (with backoff)"),
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
	METRICS_CONF_KEYS(struct collector_conf, metrics_listen),
	DAEMON_LOG_KEYS(struct collector_conf, log_level),
};

/* What a reload (SIGHUP) changes in a running collector; the driver, its
 * sockets, the host id and the broker take a restart. */
static const char *const live_keys[] = {
	DAEMON_LOG_LIVE, "collector.interval", "collector.fast_min_interval",
	"collector.fast_rise", "collector.stale_after", "collector.guest_rate",
	"collector.tolerance", "collector.psi_jump", "collector.numa_interval",
	NULL
};

#define NKEYS	(sizeof(conf_table) / sizeof(conf_table[0]))

static void
stop_cb(void *arg)
{
	struct collector *c = arg;
	struct hv_stats st;
	unsigned i;

	if (c->stopping)
		return;
	c->stopping = true;
	daemon_notify_stopping();
	hv_get_stats(c->hv, &st);
	log_info("stopping: %" PRIu64 " reports (%" PRIu64 " on pressure), "
	    "%" PRIu64 " agent frames, %" PRIu64 " dropped", c->published,
	    c->fast_published, st.frames, st.frames_too_big +
	    st.frames_undecodable + st.frames_invalid);
	for (i = 0; i < SAN_REASON_COUNT; i++)
		if (san_total[i] > 0)
			log_info("sanitizer: %s: %" PRIu64, san_reason_name(i),
			    san_total[i]);
	sample_stop(c);
	mx_server_close(c->metrics);
	c->metrics = NULL;
	hv_close(c->hv, NULL, NULL);
	bus_close(c->bus, 1000, NULL, NULL);
	daemon_signals_close(&c->sig);
}

/* What follows from the configuration: ids and the sanitizer's limits. */
static void
configure(struct collector *c)
{
	snprintf(c->host_id, sizeof(c->host_id), "%s", c->conf.host_id);
	snprintf(c->key, sizeof(c->key), "host.%s", c->host_id);
	c->lim.tolerance_kib = (uint64_t)c->conf.tolerance_kib;
	c->lim.rate_per_s = (unsigned)c->conf.guest_rate;
	c->lim.psi_jump_pct = (double)c->conf.psi_jump_pct;
}

static void
reload_cb(void *arg)
{
	struct collector *c = arg;
	int64_t interval = c->conf.interval_ms;

	if (daemon_reload_conf(&c->opts, conf_table, NKEYS, &c->conf,
	    sizeof(c->conf), live_keys, &c->conf.log_level, "collecting") <= 0)
		return;
	configure(c);
	if (c->conf.interval_ms != interval) {
		uv_timer_set_repeat(&c->tick, (uint64_t)c->conf.interval_ms);
		uv_timer_again(&c->tick);
	}
}

/* Connect, find the VMs and start the timers on loop; failures are
 * fatal (nothing runs yet). */
static void
start(struct collector *c, uv_loop_t *loop)
{
	struct hv_config hc = { 0 };
	int r;

	c->loop = loop;
	r = publish_open(c);
	if (r < 0)
		fatalx("bus: %s", strerror(-r));

	hc.type = (enum hv_type)c->conf.driver;
	hc.vm_dir = c->conf.vm_dir;
	hc.uri = c->conf.libvirt_uri;
	hc.balloon_path = c->conf.balloon_path;
	hc.rescan_ms = (unsigned)c->conf.rescan_ms;
	hc.poll_ms = (unsigned)c->conf.interval_ms;
	hc.agent_timeout_ms = (unsigned)c->conf.agent_timeout_ms;
	hc.event_cb = sample_hv_event_cb;
	hc.event_arg = c;
	c->hv = daemon_hv_start(loop, &hc);

	if (daemon_signals_init(&c->sig, loop, stop_cb, reload_cb, c) < 0 ||
	    daemon_watchdog_start(&c->sig, loop) < 0)
		fatalx("signals");
	if (sample_start(c) < 0)
		fatalx("timers");
	if (bus_start(c->bus) < 0)
		fatalx("bus_start");
	c->metrics = mx_server_start(loop, c->conf.metrics_listen,
	    collector_metrics_cb, c);
	log_info("host \"%s\": %s driver, reports every %" PRId64 " ms to %s "
	    "key %s", c->host_id, hv_type_name(hc.type), c->conf.interval_ms,
	    TOPO_EX_STATS, c->key);
	daemon_notify_ready("collecting");
}

int
main(int argc, char **argv)
{
	static struct collector c;
	uv_loop_t loop;
	int r;

	daemon_host_conf(argc, argv, "mm-collector", DEFAULT_CONF, conf_table,
	    NKEYS, &c.conf, &c.conf.host_id, &c.conf.bus, "collector", NULL,
	    &c.opts);
	daemon_set_log_level(&c.opts, c.conf.log_level);
	configure(&c);
	/* A VM or broker gone mid-write is an EPIPE error, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop) < 0)
		fatalx("uv_loop_init");
	start(&c, &loop);
	uv_run(&loop, UV_RUN_DEFAULT);
	r = uv_loop_close(&loop);
	if (r < 0)
		log_warnx("loop not closed cleanly: %s", uv_strerror(r));
	conf_free(conf_table, NKEYS, &c.conf);
	return 0;
}
