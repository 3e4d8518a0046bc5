/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fault suite's simulated host: mm-sim with two guests ("web", 2 GiB,
 * using 1 GiB; "db", 1 GiB, idle), the real mm-collector and mm-actuator
 * (driver = sim) and a real mm-scheduler on the test broker, each
 * daemon's stderr in a log file of its own, a pressure policy, and the
 * test's view of it all: the scheduler's decisions, the actuator's results
 * and alerts from mm.events, the guests' balloons from mm-sim's QMP
 * sockets, sampled every 100 ms against the limits a user counts on.
 */
#ifndef MM_FAULT_UTIL_H
#define MM_FAULT_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#define FU_MIB		1024ull
#define FU_GIB		(1024ull * 1024)
#define FU_NVM		2		/* web, db */
#define FU_VM_MIN_KIB	(256 * FU_MIB)	/* the actuator's vm_min */
#define FU_MARGIN_KIB	(256 * FU_MIB)	/* the actuator's used_margin */
#define FU_NEAR_KIB	(16 * FU_MIB)

/* A daemon started by the suite: its program, config and log. */
struct fu_daemon {
	const char *name;	/* "collector", "actuator", "scheduler" */
	char bin[1024];
	char conf[1200];
	char log[1200];
	pid_t pid;		/* 0: not running */
};

struct fu_vm {
	const char *id;
	uint64_t max_kib;
	uint64_t used_kib;	/* what its workload uses */
	uint64_t decided_kib;	/* the scheduler's latest target, 0: none */
	uint64_t lowest_kib;	/* the smallest balloon seen */
	uint64_t highest_kib;	/* the largest */
};

struct fu {
	uv_loop_t loop;
	struct bus *bus;	/* the test's, as the broker's admin */
	bool up;
	struct hv *hv;		/* the test's view of mm-sim */
	char dir[1024], vmdir[1100], root[1100], sys[1100];
	char state[1200];	/* the scheduler's state_file */
	char daemon_vmdir[1200];	/* vm_dir of the collector, actuator */
	char *host_id, *sched_id, *queue;
	pid_t sim;
	uint64_t policy_version;	/* the one fu_start() published */
	struct fu_daemon col, act, sched;
	struct fu_vm vm[FU_NVM];
	/* From mm.events and mm.stats. */
	unsigned decisions, results, failed_results, alerts, reports;
	unsigned bad_decisions;	/* a target outside [vm_min, max] */
	char bad_decision[256];
	/* The safety sampler (every 100 ms). */
	uv_timer_t sampler;
	unsigned samples, unsafe;
	char unsafe_what[256];
	/* fu_opts.extra_vm: its id and maximum, how often the sampler saw
	 * its balloon, and above its maximum. */
	char extra_id[64];
	uint64_t extra_max_kib, extra_highest_kib;
	unsigned extra_samples, extra_over;
};

struct fu_opts {
	/* Lines added to the actuator's and the scheduler's sections. */
	const char *act_extra;
	const char *sched_extra;
	/* Called once f->dir, f->vmdir exist and before any program starts:
	 * may change f->state and f->daemon_vmdir. */
	void (*prepare)(struct fu *f);
	/* A third guest, as mm-sim's -m NAME,MAX,WORKLOAD (NULL: none),
	 * and its maximum: the sampler counts its balloon above it. */
	const char *extra_vm;
	uint64_t extra_max_kib;
};

/*
 * Start it all in a fresh temporary directory with options o (may be
 * NULL), publish the policy and wait (60 s at most) until the scheduler
 * has shrunk db and both guests are at its targets.
 */
void fu_start(struct fu *f, const struct fu_opts *o);

/* Stop every daemon still running with SIGTERM, asserting each exits 0,
 * then mm-sim; close the test's bus, view and loop. */
void fu_stop_all(struct fu *f);

/* Remove the directory (kept when $MM_FAULT_KEEP is set) and free. */
void fu_cleanup(struct fu *f);

/* fu_stop_all(), then fu_cleanup(). */
void fu_finish(struct fu *f);

/* kill -9 every process still running (a teardown after a failed check). */
void fu_kill_all(struct fu *f);

/* Start d again (its log is appended to). */
void fu_daemon_start(struct fu *f, struct fu_daemon *d);

/* kill -9 d and reap it. */
void fu_daemon_kill9(struct fu_daemon *d);

/* SIGTERM d, wait for it (10 s at most); returns its exit status, or
 * -signal. */
int fu_daemon_stop(struct fu_daemon *d);

/* True while d runs (not exited, not reaped). */
bool fu_daemon_alive(struct fu_daemon *d);

/* How many times needle occurs in d's log. */
unsigned fu_log_count(const struct fu_daemon *d, const char *needle);

/* The last line of d's log containing needle, in a static buffer; "" when
 * none. */
const char *fu_log_line(const struct fu_daemon *d, const char *needle);

/*
 * Run the loop until needle occurs more than `after` times in d's log or
 * timeout_ms pass; returns the ms waited, or -1 on timeout.
 */
long fu_wait_log(struct fu *f, const struct fu_daemon *d, const char *needle,
    unsigned after, unsigned timeout_ms);

/* Run the loop for ms. */
void fu_run_for(struct fu *f, unsigned ms);

/* Run the loop until cond(f) holds or timeout_ms pass; returns the ms
 * waited, or -1. */
long fu_run_until(struct fu *f, bool (*cond)(struct fu *), unsigned timeout_ms);

/*
 * Every guest's balloon at the scheduler's latest target, or at the
 * actuator's floor (used + used_margin) when the target is below it,
 * within FU_NEAR_KIB.
 */
bool fu_converged(struct fu *f);

/* The balloon of vm (index into f->vm) as mm-sim reports it, 0: unknown. */
uint64_t fu_balloon_kib(struct fu *f, int vm);

/* Ask mm-sim to set vm's balloon to kib, as something outside mm would
 * (a guest's balloon driver giving memory back): the test's own QMP
 * connection. */
void fu_move_balloon(struct fu *f, int vm, uint64_t kib);

/* Publish the suite's pressure policy (a 2 s hold, a guest pool of
 * 1.5 GiB) with the given version and name (borrowed); a headroom_kib
 * other than 0 is every VM's headroom, with a pool of 3 GiB. */
void fu_publish_policy(struct fu *f, uint64_t version, const char *name,
    uint64_t headroom_kib);

/* $MM_TEST_BROKER_CTL verb (kill, start, ...), synchronously; skips the
 * test when it is not set. */
void fu_broker_ctl(const char *verb);

/* `$MM_TEST_BROKER_CTL start` in a child process; returns its pid, for
 * the caller to reap. */
pid_t fu_broker_start_async(void);

/* Print the safety sampler's figures and assert it saw nothing unsafe. */
void fu_assert_safe(struct fu *f, const char *when);

/* A message looked for on mm.dead. */
struct fu_dead {
	const char *message_id;
	bool found;
	char type[128];		/* its AMQP type, when found */
};

/*
 * Read mm.dead (acking everything: in the test broker it belongs to the
 * tests) until every message of want[0..n) is found or timeout_ms pass;
 * sets their found and type.
 */
void fu_find_dead(struct fu_dead *want, size_t n, unsigned timeout_ms);

/* Publish a garbage body (bytes that are no protobuf message) of AMQP
 * type `type` to exchange with key, message id message_id. */
void fu_publish_garbage(struct fu *f, const char *exchange, const char *key,
    const char *type, const char *message_id);

#endif
