/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-actuator's configuration keys, [actuator] and [bus] of
 * /etc/mm/actuator.conf (documented in mm.conf.5 and deploy/actuator.conf).
 */
#include <stddef.h>
#include <stdio.h>

#include "actuator.h"

static const char *const driver_names[] = { "kvm", "xen", "sim", "libvirt",
	NULL };
/* enum act_tier_mode's order. */
static const char *const tier_modes[] = { "off", "auto", "swap", "node",
	NULL };

#define K(key, type, min, max, def, field, help)			\
	{ "actuator", key, type, min, max, def,				\
	  offsetof(struct actuator_conf, field), NULL, help }
#define T(key, type, min, max, def, field, help)			\
	{ "tier", key, type, min, max, def,				\
	  offsetof(struct actuator_conf, field), NULL, help }

const struct conf_key act_conf_table[] = {
	K("host_id", CONF_STRING, 1, TOPO_ID_MAX, NULL, host_id,
	    "this host's id: its queue is mm.actuator.<host_id>; unset: the "
	    "hostname"),
	{ "actuator", "driver", CONF_ENUM, 0, 0, "kvm",
	  offsetof(struct actuator_conf, driver), driver_names,
	  "hypervisor driver: kvm, xen, sim (mm-sim's sockets) or libvirt" },
	K("libvirt_uri", CONF_STRING, 1, 1023, "qemu:///system", libvirt_uri,
	    "libvirt: the connection URI of the domains' libvirtd"),
	K("vm_dir", CONF_STRING, 1, 4096, "/run/mm/vm", vm_dir,
	    "kvm, sim: directory of the VMs' sockets"),
	K("monitor", CONF_STRING, 1, 16, "actuator", monitor,
	    "kvm, sim: the actuator's QMP socket is <vm_dir>/<vm>.<monitor> "
	    "(QEMU serves one client per monitor; the collector has "
	    "<vm>.qmp)"),
	K("balloon_path", CONF_STRING, 1, 1024,
	    "/machine/peripheral/balloon0", balloon_path,
	    "kvm: QOM path of the virtio balloon"),
	K("proc_root", CONF_STRING, 1, 4096, "/proc", proc_root,
	    "where procfs is (host MemAvailable, the VMs' numa_maps)"),
	K("sys_root", CONF_STRING, 1, 4096, "/sys", sys_root,
	    "where sysfs is (KSM settings, NUMA nodes)"),
	K("rescan", CONF_DURATION_MS, 100, 600000, "1s", rescan_ms,
	    "kvm, sim: rescan of vm_dir; libvirt: reconnects (with backoff)"),
	K("poll", CONF_DURATION_MS, 100, 600000, "1s", poll_ms,
	    "kvm, sim: query-balloon period; libvirt: memory stats period"),
	K("vm_min", CONF_SIZE_KIB, 65536, 1ll << 32, "128M", vm_min_kib,
	    "no guest is ever made smaller than this"),
	K("used_margin", CONF_SIZE_KIB, 0, 1ll << 32, "64M",
	    used_margin_kib,
	    "floor of a guest: its used memory (total - available) plus this"),
	K("stale_after", CONF_DURATION_MS, 100, 3600000, "10s", stale_ms,
	    "older guest stats do not count: no shrinking without fresh ones"),
	K("balloon_interval", CONF_DURATION_MS, 0, 600000, "1s",
	    balloon_interval_ms,
	    "least time between a change of a guest's target and a shrink; "
	    "sooner ones wait (growth never does)"),
	K("op_timeout", CONF_DURATION_MS, 100, 600000, "5s", op_timeout_ms,
	    "a hypervisor request unanswered this long fails"),
	K("failsafe_after", CONF_DURATION_MS, 0, 86400000, "30s",
	    failsafe_after_ms,
	    "no command this long: grow guests under pressure alone (0: "
	    "never)"),
	K("failsafe_interval", CONF_DURATION_MS, 100, 600000, "5s",
	    failsafe_interval_ms, "between two fail-safe steps of a guest"),
	K("failsafe_step", CONF_SIZE_KIB, 1024, 1ll << 32, "256M",
	    failsafe_step_kib, "growth of a guest per fail-safe step"),
	K("failsafe_psi", CONF_INT, 1, 100, "20", failsafe_psi_pct,
	    "guest PSI memory some avg10 (percent) that is pressure"),
	K("failsafe_faults", CONF_INT, 0, 10000000, "1000", failsafe_faults_s,
	    "fail-safe: a guest with this many major faults per second is "
	    "under pressure (0: not used)"),
	K("failsafe_available", CONF_INT, 0, 100, "5", failsafe_avail_pct,
	    "guest available memory (percent of total) below which it is "
	    "pressure"),
	K("host_reserve", CONF_SIZE_KIB, 0, 1ll << 40, "1G", host_reserve_kib,
	    "host MemAvailable the fail-safe and a release never give away"),
	K("release_on_stop", CONF_BOOL, 0, 0, "no", release_on_stop,
	    "no: a stop or restart leaves the guests' targets in force; yes: "
	    "on shutdown, grow the guests toward their maximum, largest "
	    "deficit first, within MemAvailable - host_reserve"),
	K("release_timeout", CONF_DURATION_MS, 100, 600000, "5s",
	    release_timeout_ms,
	    "bound of the shutdown's waits (release, event confirms)"),
	K("ksm", CONF_BOOL, 0, 0, "yes", ksm,
	    "apply KSM commands (settings found at start are restored on "
	    "stop, never by unmerging shared pages)"),
	K("numa", CONF_BOOL, 0, 0, "yes", numa,
	    "apply NUMA moves with migrate_pages(2)"),
	K("schedulers", CONF_STRING, 1, 4096, NULL, schedulers,
	    "ids of the schedulers whose batches run here, separated by "
	    "spaces or commas; unset: any"),
	K("clock_skew", CONF_DURATION_MS, 1000, 3600000, "30s",
	    clock_skew_ms,
	    "a batch issued further ahead of this host's clock is refused"),
	{ "tier", "mode", CONF_ENUM, 0, 0, "off",
	  offsetof(struct actuator_conf, tier_mode), tier_modes,
	  "the host tier, the VMs' cold RAM moved out: off, auto (a slower "
	  "node if any, else swap), swap (MADV_PAGEOUT) or node (move_pages); "
	  "a host without it says so and skips it" },
	T("slow_nodes", CONF_STRING, 1, 255, NULL, tier_slow_nodes,
	    "the slower NUMA nodes (\"2-3\"); unset: the kernel's memory "
	    "tiers (every tier after the first)"),
	T("window", CONF_DURATION_MS, 1000, 3600000, "30s", tier_window_ms,
	    "one scan window: a chunk of a VM's RAM not written or faulted "
	    "in during it is idle for one more window"),
	T("cold_windows", CONF_INT, 1, 60, "4", tier_cold_windows,
	    "idle this many windows in a row: cold (etmem's T)"),
	T("quota", CONF_SIZE_KIB, 2048, 1ll << 32, "1G", tier_quota_kib,
	    "the most moved in one pass, the whole host (etmem's "
	    "node_mig_quota); swap: also at most half the free swap"),
	T("hot_reserve", CONF_SIZE_KIB, 0, 1ll << 32, "1G",
	    tier_hot_reserve_kib,
	    "RAM each VM keeps in the fast tier whatever the scans say "
	    "(etmem's node_hot_reserve)"),
	T("refault_pct", CONF_INT, 1, 100, "10", tier_refault_pct,
	    "a VM whose major faults in the window after a move pass this "
	    "share of the pages moved waits twice as many windows"),
	T("sysmem_threshold", CONF_INT, 1, 100, "100", tier_sysmem_threshold,
	    "move memory only while the host's MemAvailable is below this "
	    "percent of MemTotal (etmem's sysmem_threshold); 100: always"),
	T("vms", CONF_STRING, 1, 4096, "*", tier_vms,
	    "the VMs the tier scans: shell globs of their ids, separated by "
	    "spaces or commas"),
	T("exclude", CONF_STRING, 1, 4096, NULL, tier_exclude,
	    "VMs the tier leaves alone (a database's cache, say): globs as "
	    "for vms"),
	T("min_ram", CONF_SIZE_KIB, 2048, 1ll << 32, "64M", tier_min_ram_kib,
	    "the smallest mapping of a QEMU process taken as guest RAM"),
	BUS_CONF_KEYS(struct actuator_conf, bus),
	METRICS_CONF_KEYS(struct actuator_conf, metrics_listen),
	DAEMON_LOG_KEYS(struct actuator_conf, log_level),
};

const size_t act_conf_nkeys =
    sizeof(act_conf_table) / sizeof(act_conf_table[0]);

int
act_conf_check(const void *conf, const char *path)
{
	const struct actuator_conf *c = conf;
	uint64_t mask;

	if (c->tier_slow_nodes != NULL &&
	    tier_parse_nodes(c->tier_slow_nodes, &mask) < 0) {
		fprintf(stderr, "%s: [tier] slow_nodes \"%s\" is no node "
		    "list (0-63, like \"2-3\" or \"1,3\")\n", path,
		    c->tier_slow_nodes);
		return -1;
	}
	return 0;
}
