/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm's AMQP topology: the names of its exchanges and queues and the
 * functions that declare each program's part of it on a bus. Everything is
 * declared idempotently by whoever uses it; docs/protocol.md describes it and
 * deploy/rabbitmq/definitions.json grants each role exactly these names.
 */
#ifndef MM_TOPOLOGY_H
#define MM_TOPOLOGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bus;

/* Exchanges. */
#define TOPO_EX_STATS		"mm.stats"	/* topic, key host.<host-id> */
#define TOPO_EX_COMMANDS	"mm.commands"	/* direct, key <host-id> */
#define TOPO_EX_POLICY		"mm.policy"	/* fanout */
#define TOPO_EX_EVENTS		"mm.events"	/* topic, <kind>.<host-id> */
#define TOPO_EX_CONTROL		"mm.control"	/* direct, requests to schedulers */
#define TOPO_EX_DLX		"mm.dlx"	/* headers, dead letters */
#define TOPO_EX_STATS_SHARD	"mm.stats.shard"	/* x-consistent-hash */
#define TOPO_EX_HISTORY		"mm.history"	/* fanout, between shards */

/* Queues. */
#define TOPO_Q_SCHED_STATS	"mm.scheduler.stats"
#define TOPO_Q_DEAD		"mm.dead"
#define TOPO_Q_ACTUATOR_PREFIX	"mm.actuator."	/* + host id */
#define TOPO_Q_SCHED_PREFIX	"mm.scheduler."	/* + scheduler id + .role */
#define TOPO_Q_MMCTL_PREFIX	"mm.mmctl."	/* + unique id */
#define TOPO_Q_EVENTS_LOG	"mm.events.log"	/* stream of every event */

/* Routing-key prefixes on mm.events. */
#define TOPO_EV_DECISION	"decision"
#define TOPO_EV_RESULT		"result"
#define TOPO_EV_ALERT		"alert"
/* mmctl's end-of-history marks: "mark.<unique>", on the log only. */
#define TOPO_EV_MARK		"mark"

/* Defaults of the stats queue: stale stats are worthless. */
#define TOPO_STATS_MAX_LENGTH	100000u
#define TOPO_STATS_TTL_MS	10000u
#define TOPO_DEAD_MAX_LENGTH	100000u

/* Default retention of the events log ([scheduler] events_max_age and
 * events_max_bytes): a day, at most 256 MiB. The broker truncates whole
 * segments: an eighth of the size, at most 8 MiB, at least 256 KiB. */
#define TOPO_EVENTS_LOG_MAX_AGE_S	86400u
#define TOPO_EVENTS_LOG_MAX_BYTES	(256ull << 20)
#define TOPO_EVENTS_LOG_SEGMENT_MAX	(8ull << 20)
#define TOPO_EVENTS_LOG_SEGMENT_MIN	(256ull << 10)

/* Longest host or scheduler id accepted in a name or routing key. */
#define TOPO_ID_MAX		64

/* True when id is usable in a queue name and routing key: 1..TOPO_ID_MAX
 * characters of [A-Za-z0-9_.-] (as msg.h's ids), not starting or ending
 * with '.' and without "..", so an FQDN works and no topic word is empty. */
bool topo_id_valid(const char *id);

/* The dead-letter exchange and mm.dead, bound to receive only rejected
 * messages (x-match all-with-x, x-first-death-reason = rejected): expired
 * and overflowed ones are dropped. Every consumer declares it. */
int topo_declare_dead(struct bus *bus);

/* mm.stats only: what a collector needs to publish. */
int topo_declare_stats_exchange(struct bus *bus);

/* mm.events only: what a publisher of events needs. */
int topo_declare_events_exchange(struct bus *bus);

/*
 * mm.events, and the stream mm.events.log bound to it with "#": the
 * recent history of every event, which mmctl events reads from an offset.
 * Declared by the scheduler, kept max_age_s seconds and at most max_bytes
 * (0: the defaults above). The retention is the stream's at creation: a
 * stream that exists with another is kept as it is, with a warning
 * (bus_queue_opts.keep_existing), as the broker cannot change it.
 */
int topo_declare_events_log(struct bus *bus, uint32_t max_age_s,
    uint64_t max_bytes);

/* mm.stats, and mm.scheduler.stats bound to it with key pattern
 * (e.g. "host.#"): bounded, dropping the oldest, with a message TTL and
 * dead-lettering of rejected messages. */
int topo_declare_stats_queue(struct bus *bus, const char *pattern);

/*
 * Sharded stats: mm.stats bound (pattern) to the consistent-hash exchange
 * mm.stats.shard, and this scheduler's exclusive queue
 * mm.scheduler.<sched_id>.stats bound to it with weight points on the
 * ring. Each host's reports reach exactly one such queue; when a scheduler
 * leaves, its queue goes with its connection and its hosts move to the
 * others. Writes the queue's name to ret_queue.
 */
int topo_declare_shard_queue(struct bus *bus, const char *sched_id,
    const char *pattern, unsigned weight, char *ret_queue, size_t queue_size);

/* mm.commands and the durable queue mm.actuator.<host_id> bound to it with
 * key host_id: what the scheduler declares for each host it hears from.
 * -EINVAL for a bad host id. */
int topo_declare_actuator_queue(struct bus *bus, const char *host_id);

/*
 * The queue mm.actuator.<host_id> alone, as topo_declare_actuator_queue()
 * declares it, unbound: what an actuator declares. A host's broker user
 * has no read permission on mm.commands, because with it the host could
 * bind its queue with another host's key and read that host's commands;
 * the scheduler binds it. -EINVAL for a bad host id.
 */
int topo_declare_actuator_queue_only(struct bus *bus, const char *host_id);

/* mm.commands only: what a scheduler needs to publish commands. */
int topo_declare_commands_exchange(struct bus *bus);

/* mm.policy, and a durable queue mm.scheduler.<sched_id>.policy bound to it.
 * Writes the queue's name (at most 128 bytes with NUL) to ret_queue. */
int topo_declare_policy_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size);

/* mm.control, and this scheduler's exclusive queue
 * mm.scheduler.<sched_id>.control bound to it with TOPO_CONTROL_STATUS:
 * every scheduler gets every status request. */
#define TOPO_CONTROL_STATUS	"status"
int topo_declare_control_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size);

/* mm.history, and this scheduler's exclusive queue
 * mm.scheduler.<sched_id>.history bound to it: sharded schedulers hand
 * each other the history of hosts that move. Its messages expire after a
 * minute (a host's first report comes within seconds of the move). */
#define TOPO_HISTORY_TTL_MS	60000u
int topo_declare_history_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size);

/* mm.control only: what mmctl needs to send requests. */
int topo_declare_control_exchange(struct bus *bus);

/* mm.policy only: what mmctl needs to publish a policy. */
int topo_declare_policy_exchange(struct bus *bus);

/* Fill buf with the routing key "<kind>.<host_id>" of an event. */
int topo_event_key(char *buf, size_t size, const char *kind,
    const char *host_id);

/* Fill buf with the queue name mm.actuator.<host_id>. */
int topo_actuator_queue(char *buf, size_t size, const char *host_id);

/*
 * Declare scheduler sched_id's queue of actuators' results (the events
 * result.<host-id>), exclusive to it and bounded, for reconciliation. Its
 * name ("mm.scheduler.<id>.results") goes to ret_queue. Returns 0 or
 * -errno.
 */
#define TOPO_RESULTS_MAX_LENGTH	100000u
#define TOPO_RESULTS_TTL_MS	30000u
int topo_declare_results_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size);

#endif
