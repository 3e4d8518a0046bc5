/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A host of real guests under the real daemons, for the VM tests and the
 * real-guest benchmarks: one libuv loop with a bus connection that sees
 * the host's HostReports and its decision, result and alert events, and
 * mm-scheduler, mm-collector and mm-actuator (kvm driver) started from
 * $MM_BINARY_DIR/bin with configurations written to a temporary directory
 * that also holds the guests' sockets. Needs $MM_TEST_AMQP_URL (the
 * throwaway broker of scripts/rabbitmq.sh, with its users).
 */
#ifndef MM_TEST_FLEET_H
#define MM_TEST_FLEET_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "bus.h"
#include "msg.h"
#include "vm.h"

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
};

struct fleet_param {
	const char *name;	/* a policy parameter (mm-policy(5)) */
	double value;
};

/* Connect to the broker and bind this host's reports and events to the
 * two handlers (set in f before). Fails the test (or exits 1) when the
 * broker is not reachable. */
void fleet_open(struct fleet *f, const char *name);

/* Start the scheduler and give it a policy: version 1, enforce, the
 * pressure algorithm, host_reserve_kib (0: the default) and params. */
void fleet_start_scheduler(struct fleet *f, uint64_t host_reserve_kib,
    const struct fleet_param *params, size_t n);

/* Publish a newer policy (version above the last one) like the above. */
void fleet_policy(struct fleet *f, uint64_t version,
    uint64_t host_reserve_kib, const struct fleet_param *params, size_t n);

/* Start the collector or the actuator with the kvm driver on vmdir;
 * extra is more lines of its main section (may be NULL). */
void fleet_start_collector(struct fleet *f, const char *extra);
void fleet_start_actuator(struct fleet *f, const char *extra);

/* Stop a daemon (SIGTERM, waited for; 0 when it exited 0) and zero its
 * pid. */
int fleet_stop(struct fleet *f, int *pid);

/* Boot a guest whose sockets are in vmdir (the agent samples every
 * 500 ms and resends every second); NULL after printing why. */
struct vm *fleet_boot(struct fleet *f, const char *id, unsigned mem_mib,
    const char *workload);

/* Stop every daemon (the actuator first), close the bus, remove dir. */
void fleet_close(struct fleet *f);

/* What the guest uses: MemTotal - MemAvailable, less what a deflate-on-
 * oom balloon holds; false without meminfo. */
bool fleet_used_kib(const Mm__V1__GuestStats *g, uint64_t *ret);

#endif
