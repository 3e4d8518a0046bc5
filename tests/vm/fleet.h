/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A host of real guests under the real daemons, for the VM tests and the
 * real-guest benchmarks: one libuv loop with a bus connection that sees
 * the host's HostReports and its decision, result and alert events, and
 * mm-scheduler, mm-collector and mm-actuator started from
 * $MM_BINARY_DIR/bin with configurations written to a temporary directory
 * that also holds the guests' sockets. The daemons use the kvm driver on
 * guests QEMU runs for the fleet (vm.h), or after fleet_use_libvirt() the
 * libvirt driver on domains of a libvirtd of the caller's (libvirtd.h).
 * Needs $MM_TEST_AMQP_URL (the throwaway broker of scripts/rabbitmq.sh,
 * with its users).
 */
#ifndef MM_TEST_FLEET_H
#define MM_TEST_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"
#include "msg.h"
#include "vm.h"

#define FLEET_MAXVM	8
#define FLEET_MAXDEC	2048

struct libvirtd;
struct fleet_record;

struct fleet {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char *host;		/* the host id */
	char *sched;		/* the scheduler's id */
	char *dir;		/* configurations, state, and vm/ */
	char *vmdir;		/* the guests' sockets */
	int sch, col, act;	/* daemon pids, 0 when not running */
	msg_handler_cb on_report;	/* HostReport of this host, or NULL */
	msg_handler_cb on_event;	/* its Events, or NULL */
	/* Goes with every policy published when set (else: no KSM). */
	Mm__V1__KsmPolicy *ksm;
	/* ... and these VM rules, when set. */
	Mm__V1__VmRule **rules;
	size_t n_rules;
	struct libvirtd *lv;	/* fleet_use_libvirt()'s, borrowed */
	struct fleet_record *rec;	/* fleet_record()'s, borrowed */
	struct vm *vms[FLEET_MAXVM];	/* booted by fleet_boot*() */
};

/* One decision for a recorded guest (a VM of a decision event). */
struct fleet_decision {
	int vm;			/* its index in the record's names */
	uint64_t rx_ms;		/* the fleet's loop time it came */
	uint64_t target_kib;
	uint64_t batch;		/* batch_seq: one round of decisions */
	double used_kib, need_kib, min_kib, max_kib;	/* -1: not given */
	bool has_reason;
	char reason[160];
};

/* What the collector's reports said of one recorded guest. */
struct fleet_seen {
	uint64_t actual_kib, max_kib, used_kib;
	uint64_t min_actual_kib, max_actual_kib;
	bool fresh;		/* the newest report had a fresh agent sample */
	bool out_of_range;	/* some balloon size above its max_mib */
};

/* The decisions and reports of n guests (names[i], at most max_mib[i]). */
struct fleet_record {
	const char *const *names;
	const unsigned *max_mib;
	int n;			/* at most FLEET_MAXVM */
	struct fleet_decision dec[FLEET_MAXDEC];
	size_t ndec;		/* the first FLEET_MAXDEC are kept */
	struct fleet_seen seen[FLEET_MAXVM];
	unsigned reports;	/* HostReports of the host */
};

struct fleet_param {
	const char *name;	/* a policy parameter (mm-policy(5)) */
	double value;
};

/* Connect to the broker and bind this host's reports and events to the
 * two handlers (set in f before, or by fleet_record()). Fails the test
 * (or exits 1) when the broker is not reachable. */
void fleet_open(struct fleet *f, const char *name);

/* Before fleet_open(): record the decisions and reports of rec's guests
 * (names, max_mib and n set, the rest zeroed) in rec, which f borrows
 * until fleet_close(); sets on_event and on_report. */
void fleet_record(struct fleet *f, struct fleet_record *rec);

/* The index of the recorded guest id (NULL allowed), -1 when none. */
int fleet_vm_index(const struct fleet_record *rec, const char *id);

/* Every recorded guest's newest report had a fresh agent sample; every
 * recorded guest's balloon is at its max_mib. */
bool fleet_all_fresh(const struct fleet_record *rec);
bool fleet_all_at_max(const struct fleet_record *rec);

/* The daemons started from now on use driver = libvirt on d's URI, and
 * fleet_boot*() defines the guests as domains of d (the domain's name is
 * the id), which fleet_close() destroys and undefines. d is borrowed:
 * the caller stops it after fleet_close(). */
void fleet_use_libvirt(struct fleet *f, struct libvirtd *d);

/*
 * For the benchmarks' -d: true when driver is "kvm", "libvirt" or "both",
 * after checking that this machine can run it (else exit 77 with a
 * message, as vm_require() and libvirtd_require() do).
 */
bool fleet_require_driver(const char *driver);

/* A libvirtd of its own in a new temporary directory (libvirtd_start());
 * NULL after printing why. fleet_libvirtd_stop() stops it and removes
 * the directory; NULL: no-op. */
struct libvirtd *fleet_libvirtd_start(void);
void fleet_libvirtd_stop(struct libvirtd *d);

/* b / a with two decimals in buf, "=" when both are 0, "-" when a is
 * 0 alone; returns buf. For the benchmarks' libvirt/kvm ratios. */
const char *fleet_ratio(char *buf, size_t len, double b, double a);

/* Start the scheduler and give it a policy: version 1, enforce, the
 * pressure algorithm, host_reserve_kib (0: the default) and params. */
void fleet_start_scheduler(struct fleet *f, uint64_t host_reserve_kib,
    const struct fleet_param *params, size_t n);

/* Publish a newer policy (version above the last one) like the above. */
void fleet_policy(struct fleet *f, uint64_t version,
    uint64_t host_reserve_kib, const struct fleet_param *params, size_t n);

/* Start the collector or the actuator with the kvm driver on vmdir (or
 * the libvirt driver on f->lv's URI); extra is more lines of its main
 * section (may be NULL; the actuator's default: ksm = no, numa = no). */
void fleet_start_collector(struct fleet *f, const char *extra);
void fleet_start_actuator(struct fleet *f, const char *extra);

/* Stop a daemon (SIGTERM, waited for; 0 when it exited 0) and zero its
 * pid. */
int fleet_stop(struct fleet *f, int *pid);

/* Boot a guest whose sockets are in vmdir (the agent samples every
 * 500 ms and resends every second), under QEMU or as a domain of f->lv
 * (at its maximum). Returns it (f owns it until fleet_stop_vm() or
 * fleet_close()) or NULL after printing why, also when f has
 * FLEET_MAXVM guests. fleet_boot_opts() takes o as it is but for its dir
 * (vmdir). */
struct vm *fleet_boot(struct fleet *f, const char *id, unsigned mem_mib,
    const char *workload);
struct vm *fleet_boot_opts(struct fleet *f, const struct vm_opts *o);

/* Stop a guest of fleet_boot*() and free it (libvirt: destroy and
 * undefine its domain). NULL: no-op. */
void fleet_stop_vm(struct fleet *f, struct vm *vm);

/* Stop the actuator, then the guests, the other daemons, close the bus,
 * remove dir. */
void fleet_close(struct fleet *f);

/* What the guest uses: MemTotal - MemAvailable, less what a deflate-on-
 * oom balloon holds; false without meminfo. */
bool fleet_used_kib(const Mm__V1__GuestStats *g, uint64_t *ret);

#endif
