/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The actuator's unit tests run the whole daemon (struct actuator) on the
 * test's loop without a broker: the in-memory bus stands in for RabbitMQ
 * and mm-sim (driver "sim") for the hypervisor. The test plays the
 * scheduler: it delivers CommandBatches to the actuator's queue, reads the
 * events it publishes, and watches the VMs' balloons through their other
 * QMP monitor, as the collector would.
 */
#ifndef MM_ACT_HARNESS_H
#define MM_ACT_HARNESS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "actuator.h"

#define MIB	1024ull

struct harness {
	uv_loop_t loop;
	char *dir;
	char vmdir[1024];
	char root[1024];
	pid_t sim;
	struct actuator a;
	struct hv *watch;	/* the VMs seen through <vm>.qmp */
	bool started;
	char ids[8][64];	/* the VMs' names */
	const char *idp[9];	/* NULL-terminated */
};

/* One command of a batch: a balloon target (ksm NULL) or KSM settings. */
struct th_cmd {
	const char *vm_id;
	uint64_t target_kib;
	const Mm__V1__KsmSettings *ksm;
};

/*
 * Start mm-sim with the VMs of specs (NULL-terminated mm-sim -m
 * arguments) and the actuator on it with the default configuration as
 * changed by conf_fn (may be NULL), host "h1"; wait until the actuator
 * knows every VM's maximum and has fresh stats of each. Fails the test
 * otherwise.
 */
void th_start(struct harness *h, const char *const *specs,
    void (*conf_fn)(struct actuator_conf *c));

/* th_start() with mm-sim's host memory (-H, e.g. "2G"; NULL: its
 * default). */
void th_start_host(struct harness *h, const char *const *specs,
    const char *host_mem, void (*conf_fn)(struct actuator_conf *c));

/* Stop the actuator, as SIGTERM does, and wait until it has closed. */
void th_stop(struct harness *h);

/*
 * Start the actuator again (after th_stop()) with the same configuration
 * on the same sim, as a restart (an upgrade, the watchdog) does, and wait
 * as th_start() does.
 */
void th_restart(struct harness *h);

/* A cmocka teardown: th_finish() of the harness th_start() started last,
 * if any. */
int th_teardown(void **state);

/* Stop the actuator (if running) and the sim, free everything: the
 * actuator's and the watcher's handles must all close. */
void th_finish(struct harness *h);

/*
 * Deliver a batch of host host_id (NULL: "h1") from sched (NULL:
 * "sched-t") with seq, issued at issued_ms and expiring at expires_ms
 * (epoch ms), to the actuator's queue. Returns the disposition.
 */
enum bus_disposition th_batch(struct harness *h, const char *host_id,
    const char *sched, uint64_t seq, uint64_t issued_ms,
    uint64_t expires_ms, const struct th_cmd *cmds, size_t n);

/* th_batch() from "sched-t" to "h1" issued now, expiring in 10 s. */
enum bus_disposition th_batch_now(struct harness *h, uint64_t seq,
    const struct th_cmd *cmds, size_t n);
/* A batch of the commands cp (any kind), as th_batch_now(). */
enum bus_disposition th_batch_commands(struct harness *h, uint64_t seq,
    Mm__V1__Command **cp, size_t n);

/*
 * The first RESULT event published for batch seq (sync results: seq 0)
 * from message from_index on, waiting up to ms for it; NULL when none
 * came. *ret_index (may be NULL) gets its index. msg_free() it.
 */
Mm__V1__Event *th_result(struct harness *h, uint64_t seq, size_t from_index,
    unsigned ms, size_t *ret_index);

/* The event published at index i, or NULL. msg_free() it. */
Mm__V1__Event *th_event(size_t i);

/* Count of ALERT events published whose reason contains text. */
size_t th_alerts(const char *text);

/* The VM's balloon as the watcher sees it (0 when unknown). */
uint64_t th_actual_kib(struct harness *h, const char *vm_id);

/* Run the loop until vm_id's balloon is at kib (within 1 MiB) or ms
 * pass; returns whether it got there. */
bool th_wait_actual(struct harness *h, const char *vm_id, uint64_t kib,
    unsigned ms);

/* The target the actuator last set on vm_id (0 when none). */
uint64_t th_target_kib(struct harness *h, const char *vm_id);

/* The sim's KSM setting name (<root>/sys/kernel/mm/ksm/<name>). */
uint64_t th_ksm(struct harness *h, const char *name);

#endif
