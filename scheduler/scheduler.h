/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm-scheduler's private header: the daemon's state, its hosts, and the
 * functions its files share.
 */
#ifndef MM_SCHEDULER_H
#define MM_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "bus.h"
#include "bus_conf.h"
#include "daemon.h"
#include "log.h"
#include "metrics_http.h"
#include "msg.h"
#include "policy.h"
#include "policymsg.h"

struct sched_conf {
	char *id;		/* NULL: "sched-<hostname>" */
	char *state_file;
	int64_t command_ttl_ms;
	int64_t heartbeat_ms;	/* an empty batch after this long; 0: none */
	int mode;		/* index into the mode names, until a policy */
	char *stats_pattern;
	bool shard;		/* share the fleet with other schedulers */
	int64_t shard_weight;	/* points on the consistent-hash ring */
	int64_t resend_ms;	/* an unconfirmed target is sent again after */
	int64_t clock_skew_ms;	/* a report or result this far ahead of our
				 * clock is refused */
	int64_t max_hosts;	/* hosts kept at most */
	int64_t host_forget_ms;	/* a host silent this long is forgotten */
	char *history_file;	/* VMs' hourly peaks across restarts */
	int64_t history_save_ms;	/* saved this often, and at stop */
	int64_t handover_after_ms;	/* shard: a silent host's history */
	int64_t events_max_age_ms;	/* mm.events.log's retention, */
	int64_t events_max_kib;		/* set when it is created */
	struct bus_conf bus;
	char *metrics_listen;	/* [metrics] listen */
	int log_level;		/* [log] level */
};

struct batch;
struct vm_event;

/*
 * What the actuator confirmed of a VM's target (reconciliation): the target
 * last sent, in which batch, and whether an ActionResult said it is set.
 * A target sent and not confirmed is sent again until it is.
 */
struct vm_recon {
	uint64_t sent_kib;	/* the target last sent; 0: none */
	uint64_t sent_seq;	/* in this batch */
	uint64_t sent_ms;	/* when (monotonic ms) */
	bool confirmed;		/* a result said it is set (OK, CLAMPED) */
	bool now;		/* send again at the next decision (the batch
				 * expired, came out of order, or the actuator
				 * restarted) */
	unsigned tries;		/* sent again without a confirmation */
};

/* A VM as its last decision left it, for status requests. */
struct vm_status {
	struct pe_decision d;
	char name[129];
	uint64_t actual_kib;
	double psi;
	uint64_t decision_ms;	/* when its target last changed */
	struct vm_recon rc;
};

/* What the scheduler keeps per host. */
struct host {
	char id[65];
	uint64_t last_seq;
	uint64_t last_time_ms;
	uint64_t batch_seq;
	uint64_t batch_ms;	/* when the last batch was sent (realtime) */
	uint64_t seen_ms;	/* last report accepted (monotonic) */
	uint64_t result_ms;	/* last ActionResult's time */
	bool sync;		/* the actuator asked for the desired state */
	uint64_t resent;	/* targets sent again, counter */
	/* What the last batch carried besides balloon targets, should a
	 * newer one supersede it before it is sent (bus_pending()). */
	struct pe_ksm_decision ksm_sent;
	uint64_t ksm_seq;	/* the batch that carried ksm_sent */
	struct pe_numa_move *moves_sent;	/* MOVES_MAX, or NULL */
	size_t nmoves_sent;
	uint64_t moves_seq;
	struct pe_state *pe;
	struct pe_ksm_state ksm;
	struct pe_numa_state *numa;
	uint8_t *report;	/* the last report, packed: decided again
				 * when the policy changes */
	size_t report_len;
	size_t report_cap;	/* bytes allocated at report */
	/* for status requests */
	struct vm_status *vms;
	size_t nvms;
	uint64_t total_kib;
	uint64_t available_kib;
	uint64_t ksm_sharing_pages;
	bool handed_over;	/* silent: its history was sent (handover.c) */
};

/* A host's VMs' history read from the history file, until its first
 * report (history.c). */
struct hist_host {
	char id[65];
	struct pe_vm_history *vms;
	size_t n;
	/* Handed over by another scheduler (handover.c): dropped at this
	 * time (monotonic ms) unless claimed; 0: read from the file. */
	uint64_t expires_ms;
};

struct sched_history {
	struct scheduler *s;
	char path[4200];	/* conf.history_file or its default; "":
				 * none */
	struct hist_host *hosts;	/* read, not claimed yet */
	size_t n;
	size_t cap;
	uv_timer_t timer;
	uv_work_t work;
	uint8_t *data;		/* the save being written */
	size_t len;
	int error;		/* of the last write, an errno */
	bool started;		/* history_start() ran, not history_stop() */
	bool busy;		/* a save is being written */
	bool again;		/* save again once it is done */
};

struct sched_counters {
	uint64_t reports;
	uint64_t reports_old;	/* seq not newer: ignored */
	uint64_t reports_bad;	/* bad host id */
	uint64_t reports_wrong_key;	/* body's host is not the key's */
	uint64_t reports_future;	/* time beyond the clock skew */
	uint64_t reports_seq_jump;	/* seq far above the last one */
	uint64_t hosts_refused;	/* new host over max_hosts */
	uint64_t hosts_forgotten;	/* silent for host_forget */
	uint64_t results;	/* ActionResults of our batches */
	uint64_t results_ignored;	/* unknown host, other scheduler, old */
	uint64_t results_future;	/* time beyond the clock skew */
	uint64_t results_wrong_key;	/* body's host is not the key's */
	uint64_t syncs;		/* actuators that asked for their state */
	uint64_t resent;	/* targets sent again, unconfirmed */
	uint64_t distrusted;	/* guest samples not grown on their word */
	uint64_t batches;
	uint64_t commands;
	uint64_t events;
	uint64_t publish_failed;
	uint64_t batches_superseded;	/* replaced, unsent, by a newer one */
	uint64_t batches_refused;	/* not sent: bus_publish() failed */
	uint64_t policies_accepted;
	uint64_t policies_rejected;
	uint64_t policies_old;
	/* refusals (policy, malformed input) */
	uint64_t stats_malformed;	/* dead-lettered by msg_dispatch() */
	uint64_t policies_malformed;	/* ditto */
	uint64_t control_malformed;	/* ditto, or no mmctl reply queue */
	uint64_t results_malformed;	/* ditto, the actuators' results */
	uint64_t history_malformed;	/* ditto, mm.history */
	uint64_t policies_jump;		/* version too far ahead: refused */
	uint64_t policies_reset;	/* accepted as an operator's reset */
	uint64_t history_refused;	/* history file records refused */
	uint64_t history_saved;
	uint64_t history_save_failed;
	uint64_t handover_sent;		/* hosts' history handed over */
	uint64_t handover_failed;	/* ... not published */
	uint64_t handover_received;	/* from other schedulers */
	uint64_t handover_refused;	/* VMs in them refused */
};

struct scheduler {
	uv_loop_t *loop;
	struct bus *bus;
	struct daemon_signals sig;
	struct sched_conf conf;
	char id[65];
	char policy_queue[128];
	char stats_queue[128];
	char control_queue[128];
	char results_queue[128];
	char history_queue[128];	/* shard only */
	uint8_t *policy_msg;	/* the policy in force, packed */
	size_t policy_len;
	struct pm_policy policy;
	bool ready;
	bool stopping;

	/* hosts: open addressing on the id, capacity a power of two */
	struct host **hosts;
	size_t nhosts;
	size_t cap;

	/* scratch of one decision, grown as needed */
	struct pe_guest *guests;
	struct pe_decision *decisions;
	char (*why)[PE_WHY_MAX];	/* reason of each changed decision */
	struct vm_event *events;	/* a decision event's VMs */
	Mm__V1__VmDecision **event_vms;
	size_t scratch_cap;
	struct batch *batch;		/* its commands (decide.c) */

	struct msg_dispatch_stats stats_dispatch;
	struct msg_dispatch_stats policy_dispatch;
	struct msg_dispatch_stats control_dispatch;
	struct msg_dispatch_stats results_dispatch;
	struct msg_dispatch_stats history_dispatch;
	/* How often each kind of refusal may be logged. */
	struct log_limit lim_reports, lim_hosts, lim_results, lim_resend;
	struct log_limit lim_policy, lim_malformed, lim_malformed_policy;
	struct log_limit lim_control, lim_history;
	uv_timer_t sweep;	/* forgets silent hosts */
	struct sched_history hist;
	struct sched_counters n;
	struct mx_hist decide_s;	/* decide_host(), seconds */
	struct mx_hist report_age_s;	/* report time to decision */
	struct mx_server *metrics;	/* [metrics] listen, or NULL */
};

/* history.c: the VMs' history across restarts ([scheduler]
 * history_file). history_load() reads it (at start, before any report);
 * history_claim() gives a new host what was read of it; history_start()
 * saves every history_save, history_stop() once more (the loop runs
 * until the write is done); history_free() after the loop. */
void history_load(struct scheduler *s);
/* history_load()'s reading of f (path for messages) at now_hour (Unix
 * time / 3600): 0, or -EINVAL when f is not a history file. */
int history_read(struct scheduler *s, FILE *f, const char *path,
    uint64_t now_hour);
void history_claim(struct scheduler *s, struct host *h);
/* Whether v's newest hour is within the week before now_hour (not from a
 * clock that was ahead): the file's and the hand-over's rule. */
bool history_recent(const struct pe_vm_history *v, uint64_t now_hour);
/* Keep v for host's first report here, merged into what is kept of that
 * VM; a host new to the pending list is dropped at expires_ms (monotonic)
 * by history_expire(). Returns 0, -ENOSPC or -ENOMEM. */
int history_pending_merge(struct scheduler *s, const char *host,
    const struct pe_vm_history *v, uint64_t expires_ms);
void history_expire(struct scheduler *s, uint64_t now_ms);

/* handover.c: sharded schedulers hand over the history of hosts that
 * move (mm.history). history_merge() merges two histories of one VM,
 * hour by hour; handover_silent() sends those of hosts silent for
 * handover_after, once; handover_all() every host's (at stop); on_history
 * takes another scheduler's. */
void history_merge(struct pe_vm_history *into,
    const struct pe_vm_history *from);
void handover_silent(struct scheduler *s);
void handover_all(struct scheduler *s);
enum bus_disposition on_history(const ProtobufCMessage *m,
    const struct bus_delivery *d, void *arg);
void history_start(struct scheduler *s);
void history_stop(struct scheduler *s);
void history_free(struct scheduler *s);

/* decide.c */
/* The host called id, or NULL. */
struct host *host_find(struct scheduler *s, const char *id);
/* The host called id, added if new; NULL with errno ENOMEM, or EAGAIN when
 * a new host is refused (max_hosts). */
struct host *host_get(struct scheduler *s, const char *id);
/* Forget hosts that sent no report for conf.host_forget_ms. */
void hosts_sweep(struct scheduler *s);
/* What an ActionResult says of host h's targets (reconciliation). */
void recon_result(struct scheduler *s, struct host *h,
    const Mm__V1__ActionResult *ar);
void hosts_free(struct scheduler *s);
/* Decide for host h from report r and publish commands and events as the
 * policy's mode says. Returns 0 or a negative errno. */
int decide_host(struct scheduler *s, struct host *h,
    const Mm__V1__HostReport *r);
/* Decide again for every host from its last report (policy changed). */
void decide_all(struct scheduler *s);
/* Answer a status request (status.c). */
enum bus_disposition on_status_request(const ProtobufCMessage *m,
    const struct bus_delivery *d, void *arg);
/* Publish an alert event about host_id (or the scheduler, when NULL). */
void publish_alert(struct scheduler *s, const char *host_id,
    const char *vm_id, int severity, uint64_t policy_version,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* metrics.c: the /metrics text (mx_render_cb; arg is the scheduler). */
void sched_metrics_cb(struct mx *m, void *arg);

/* ---- scheduler.c: the daemon's life ---- */

/* The configuration's keys (scheduler.conf), sched_conf_n of them. */
extern const struct conf_key sched_conf_table[];
extern const size_t sched_conf_n;

/*
 * Start s on loop: s->conf is loaded and s->id set (valid). Reads the
 * state file, declares the scheduler's queues and consumes them, starts
 * the bus and the sweep. Returns 0 or a negative errno (the bus).
 */
int sched_start(struct scheduler *s, uv_loop_t *loop);

/* Stop: close the sweep and the bus (pending confirms get a moment); the
 * loop then ends once the caller closed its own handles. Idempotent. */
void sched_stop(struct scheduler *s);

/* Free what s holds, after its loop ended (the configuration too). */
void sched_free(struct scheduler *s);

#endif
