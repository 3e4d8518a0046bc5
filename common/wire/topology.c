/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Declares mm's exchanges and queues on a bus: each program declares the
 * part it uses, with the same arguments everywhere, so that declarations
 * are idempotent whichever program comes first.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "topology.h"

bool
topo_id_valid(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	n = strlen(id);
	if (n == 0 || n > TOPO_ID_MAX)
		return false;
	/* Dots separate topic words: no empty word, so "*.<id>" and
	 * "#.<id>" bindings match the id literally. */
	if (id[0] == '.' || id[n - 1] == '.' || strstr(id, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-' ||
		    c == '.'))
			return false;
	}
	return true;
}

int
topo_declare_dead(struct bus *bus)
{
	/* "all-with-x" (RabbitMQ 3.10 and later): plain "all" leaves every
	 * x- header out of the match, so x-first-death-reason would match
	 * anything and expired messages would be kept too. */
	static const char *const rejected[] = {
		"x-match", "all-with-x", "x-first-death-reason", "rejected",
		NULL
	};
	const struct bus_queue_opts dead = {
		.durable = true,
		.quorum = true,
		.max_length = TOPO_DEAD_MAX_LENGTH,
		.drop_head = true,
	};
	int r;

	/* A headers exchange, so that only rejected messages are kept:
	 * stats that expire or overflow are stale, not evidence. */
	r = bus_declare_exchange(bus, TOPO_EX_DLX, "headers", BUS_DURABLE);
	if (r == 0)
		r = bus_declare_queue(bus, TOPO_Q_DEAD, &dead);
	if (r == 0)
		r = bus_bind_args(bus, TOPO_Q_DEAD, TOPO_EX_DLX, "", rejected);
	return r;
}

int
topo_declare_stats_exchange(struct bus *bus)
{
	return bus_declare_exchange(bus, TOPO_EX_STATS, "topic", BUS_DURABLE);
}

int
topo_declare_events_exchange(struct bus *bus)
{
	return bus_declare_exchange(bus, TOPO_EX_EVENTS, "topic", BUS_DURABLE);
}

int
topo_declare_events_log(struct bus *bus, uint32_t max_age_s,
    uint64_t max_bytes)
{
	struct bus_queue_opts log = {
		.durable = true,
		.stream = true,
		.keep_existing = true,
	};
	uint64_t seg;
	int r;

	log.max_age_s = max_age_s > 0 ? max_age_s : TOPO_EVENTS_LOG_MAX_AGE_S;
	log.max_length_bytes = max_bytes > 0 ? max_bytes :
	    TOPO_EVENTS_LOG_MAX_BYTES;
	seg = log.max_length_bytes / 8;
	if (seg > TOPO_EVENTS_LOG_SEGMENT_MAX)
		seg = TOPO_EVENTS_LOG_SEGMENT_MAX;
	if (seg < TOPO_EVENTS_LOG_SEGMENT_MIN)
		seg = TOPO_EVENTS_LOG_SEGMENT_MIN;
	log.max_segment_bytes = seg;
	r = topo_declare_events_exchange(bus);
	if (r == 0)
		r = bus_declare_queue(bus, TOPO_Q_EVENTS_LOG, &log);
	if (r == 0)
		r = bus_bind(bus, TOPO_Q_EVENTS_LOG, TOPO_EX_EVENTS, "#");
	return r;
}

int
topo_declare_commands_exchange(struct bus *bus)
{
	return bus_declare_exchange(bus, TOPO_EX_COMMANDS, "direct",
	    BUS_DURABLE);
}

int
topo_declare_policy_exchange(struct bus *bus)
{
	return bus_declare_exchange(bus, TOPO_EX_POLICY, "fanout",
	    BUS_DURABLE);
}

int
topo_declare_stats_queue(struct bus *bus, const char *pattern)
{
	/* Not replicated, not durable: stats are stale a second later.
	 * A transient queue whose node is lost goes with it, and the
	 * scheduler declares it again on the node it fails over to. */
	const struct bus_queue_opts opts = {
		.max_length = TOPO_STATS_MAX_LENGTH,
		.drop_head = true,
		.message_ttl_ms = TOPO_STATS_TTL_MS,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	int r;

	r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_stats_exchange(bus);
	if (r == 0)
		r = bus_declare_queue(bus, TOPO_Q_SCHED_STATS, &opts);
	if (r == 0)
		r = bus_bind(bus, TOPO_Q_SCHED_STATS, TOPO_EX_STATS,
		    pattern != NULL ? pattern : "host.#");
	return r;
}

/* "mm.scheduler.<sched_id>.<role>" into queue (size bytes), when it also
 * fits the caller's ret_size. Returns 0, -EINVAL or -ENAMETOOLONG. */
static int
sched_queue(char *queue, size_t size, const char *sched_id, const char *role,
    size_t ret_size)
{
	int n;

	if (!topo_id_valid(sched_id))
		return -EINVAL;
	n = snprintf(queue, size, "%s%s.%s", TOPO_Q_SCHED_PREFIX, sched_id,
	    role);
	if (n < 0 || (size_t)n >= size || (size_t)n >= ret_size)
		return -ENAMETOOLONG;
	return 0;
}

int
topo_declare_shard_queue(struct bus *bus, const char *sched_id,
    const char *pattern, unsigned weight, char *ret_queue, size_t queue_size)
{
	const struct bus_queue_opts opts = {
		.exclusive = true,
		.auto_delete = true,
		.max_length = TOPO_STATS_MAX_LENGTH,
		.drop_head = true,
		.message_ttl_ms = TOPO_STATS_TTL_MS,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	char queue[128], points[16];
	int r;

	if (weight == 0)
		return -EINVAL;
	r = sched_queue(queue, sizeof(queue), sched_id, "stats", queue_size);
	if (r < 0)
		return r;
	snprintf(points, sizeof(points), "%u", weight);
	r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_stats_exchange(bus);
	if (r == 0)
		r = bus_declare_exchange(bus, TOPO_EX_STATS_SHARD,
		    "x-consistent-hash", BUS_DURABLE);
	if (r == 0)
		r = bus_bind_exchange(bus, TOPO_EX_STATS_SHARD, TOPO_EX_STATS,
		    pattern != NULL ? pattern : "host.#");
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_STATS_SHARD, points);
	if (r == 0)
		memcpy(ret_queue, queue, strlen(queue) + 1);
	return r;
}

int
topo_actuator_queue(char *buf, size_t size, const char *host_id)
{
	int n;

	if (!topo_id_valid(host_id))
		return -EINVAL;
	n = snprintf(buf, size, "%s%s", TOPO_Q_ACTUATOR_PREFIX, host_id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int
topo_declare_actuator_queue_only(struct bus *bus, const char *host_id)
{
	const struct bus_queue_opts opts = {
		.durable = true,
		.quorum = true,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	char queue[128];
	int r;

	r = topo_actuator_queue(queue, sizeof(queue), host_id);
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	return r;
}

int
topo_declare_actuator_queue(struct bus *bus, const char *host_id)
{
	char queue[128];
	int r;

	r = topo_actuator_queue(queue, sizeof(queue), host_id);
	if (r == 0)
		r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_commands_exchange(bus);
	if (r == 0)
		r = topo_declare_actuator_queue_only(bus, host_id);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_COMMANDS, host_id);
	return r;
}

int
topo_declare_policy_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size)
{
	const struct bus_queue_opts opts = {
		.durable = true,
		.quorum = true,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	char queue[128];
	int r;

	r = sched_queue(queue, sizeof(queue), sched_id, "policy",
	    queue_size);
	if (r < 0)
		return r;
	r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_policy_exchange(bus);
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_POLICY, "");
	if (r == 0)
		memcpy(ret_queue, queue, strlen(queue) + 1);
	return r;
}

int
topo_declare_control_exchange(struct bus *bus)
{
	return bus_declare_exchange(bus, TOPO_EX_CONTROL, "direct",
	    BUS_DURABLE);
}

int
topo_declare_control_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size)
{
	const struct bus_queue_opts opts = {
		.exclusive = true,
		.auto_delete = true,
		.message_ttl_ms = 10000,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	char queue[128];
	int r;

	r = sched_queue(queue, sizeof(queue), sched_id, "control",
	    queue_size);
	if (r < 0)
		return r;
	r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_control_exchange(bus);
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_CONTROL, TOPO_CONTROL_STATUS);
	if (r == 0)
		memcpy(ret_queue, queue, strlen(queue) + 1);
	return r;
}

int
topo_declare_history_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size)
{
	const struct bus_queue_opts opts = {
		.exclusive = true,
		.auto_delete = true,
		.message_ttl_ms = TOPO_HISTORY_TTL_MS,
	};
	char queue[128];
	int r;

	r = sched_queue(queue, sizeof(queue), sched_id, "history",
	    queue_size);
	if (r < 0)
		return r;
	r = bus_declare_exchange(bus, TOPO_EX_HISTORY, "fanout", BUS_DURABLE);
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_HISTORY, "");
	if (r == 0)
		memcpy(ret_queue, queue, strlen(queue) + 1);
	return r;
}

int
topo_event_key(char *buf, size_t size, const char *kind, const char *host_id)
{
	int n;

	if (kind == NULL || !topo_id_valid(host_id))
		return -EINVAL;
	n = snprintf(buf, size, "%s.%s", kind, host_id);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int
topo_declare_results_queue(struct bus *bus, const char *sched_id,
    char *ret_queue, size_t queue_size)
{
	/* Results matter only while this scheduler runs: what it missed
	 * meanwhile is sent again anyway. */
	const struct bus_queue_opts opts = {
		.exclusive = true,
		.auto_delete = true,
		.max_length = TOPO_RESULTS_MAX_LENGTH,
		.drop_head = true,
		.message_ttl_ms = TOPO_RESULTS_TTL_MS,
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	char queue[128];
	int r;

	r = sched_queue(queue, sizeof(queue), sched_id, "results",
	    queue_size);
	if (r < 0)
		return r;
	r = topo_declare_dead(bus);
	if (r == 0)
		r = topo_declare_events_exchange(bus);
	if (r == 0)
		r = bus_declare_queue(bus, queue, &opts);
	if (r == 0)
		r = bus_bind(bus, queue, TOPO_EX_EVENTS, TOPO_EV_RESULT ".#");
	if (r == 0)
		memcpy(ret_queue, queue, strlen(queue) + 1);
	return r;
}
