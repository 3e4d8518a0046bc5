/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mm's topology on a real broker provisioned from
 * deploy/rabbitmq/definitions.json: each role's user can declare and use
 * exactly its part (and is refused outside it), and the management API then
 * lists the exchanges and queues that docs/protocol.md describes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "testutil.h"
#include "topology.h"

struct role {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	bool failed;
	char reason[512];
	unsigned confirmed;
	unsigned nacked;
	bool done;
	unsigned want;
};

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct role *r = arg;

	if (up) {
		r->up = true;
	} else {
		r->failed = true;
		snprintf(r->reason, sizeof(r->reason), "%s", reason);
	}
}

static void
confirm_cb(struct bus *bus, int status, void *arg)
{
	struct role *r = arg;

	if (status == 0)
		r->confirmed++;
	else
		r->nacked++;
	r->done = r->confirmed + r->nacked >= r->want;
}

static enum bus_disposition
ignore_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	return BUS_ACK;
}

static void
role_open(struct role *r, const char *user)
{
	struct bus_config cfg = {
		.url = tu_broker_url_as(user, user),
		.app_id = user,
		.state_cb = state_cb,
		.state_arg = r,
		.reconnect_min_ms = 200,
		.reconnect_max_ms = 200,
	};

	memset(r, 0, sizeof(*r));
	uv_loop_init(&r->loop);
	r->bus = bus_new(&r->loop, &cfg);
	assert_non_null(r->bus);
}

/* Connect; fail the test with the broker's reason if it refuses. */
static void
role_up(struct role *r)
{
	assert_int_equal(bus_start(r->bus), 0);
	tu_run_until(&r->loop, &r->up, 10000);
	if (!r->up)
		fail_msg("not connected: %s", r->reason);
	/* Runtime declarations fail asynchronously: give them a moment. */
	tu_run_for(&r->loop, 300);
	if (r->failed)
		fail_msg("refused: %s", r->reason);
}

static void
role_publish(struct role *r, const char *exchange, const char *key)
{
	uint8_t b = 1;
	struct bus_msg m = {
		.exchange = exchange,
		.routing_key = key,
		.body = &b,
		.len = 1,
		.type = "mm.test.Probe",
	};

	r->want++;
	assert_int_equal(bus_publish(r->bus, &m, confirm_cb, r), 0);
	assert_true(tu_run_until(&r->loop, &r->done, 10000));
	r->done = false;
	if (r->failed)
		fail_msg("publishing to \"%s\" refused: %s", exchange,
		    r->reason);
}

static void
role_close(struct role *r)
{
	bus_close(r->bus, 1000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&r->loop), 0);
}

static void
test_topology_scheduler_role(void **state)
{
	struct role r;
	char queue[128];

	role_open(&r, "scheduler");
	assert_int_equal(topo_declare_stats_queue(r.bus, "host.#"), 0);
	assert_int_equal(topo_declare_actuator_queue(r.bus, "topo-h1"), 0);
	assert_int_equal(topo_declare_policy_queue(r.bus, "topo-s1", queue,
	    sizeof(queue)), 0);
	assert_string_equal(queue, "mm.scheduler.topo-s1.policy");
	assert_int_equal(topo_declare_shard_queue(r.bus, "topo-s1", "host.#",
	    20, queue, sizeof(queue)), 0);
	assert_string_equal(queue, "mm.scheduler.topo-s1.stats");
	assert_int_equal(topo_declare_events_log(r.bus), 0);
	assert_int_equal(bus_consume(r.bus, TOPO_Q_SCHED_STATS, false,
	    ignore_cb, NULL), 0);
	assert_int_equal(bus_consume(r.bus, queue, false, ignore_cb, NULL), 0);
	role_up(&r);
	role_publish(&r, TOPO_EX_COMMANDS, "topo-h1");
	role_publish(&r, TOPO_EX_EVENTS, "decision.topo-h1");
	/* Declared while connected: sent at once. */
	assert_int_equal(topo_declare_actuator_queue(r.bus, "topo-h2"), 0);
	tu_run_for(&r.loop, 300);
	assert_false(r.failed);
	assert_int_equal(r.nacked, 0);
	role_close(&r);
}

static void
test_topology_collector_role(void **state)
{
	struct role r;

	role_open(&r, "collector");
	assert_int_equal(topo_declare_stats_exchange(r.bus), 0);
	role_up(&r);
	role_publish(&r, TOPO_EX_STATS, "host.topo-h1");
	assert_int_equal(r.nacked, 0);
	role_close(&r);
}

static void
test_topology_actuator_role(void **state)
{
	struct role r;

	role_open(&r, "actuator");
	assert_int_equal(topo_declare_actuator_queue(r.bus, "topo-h1"), 0);
	assert_int_equal(topo_declare_events_exchange(r.bus), 0);
	assert_int_equal(bus_consume(r.bus, "mm.actuator.topo-h1", false,
	    ignore_cb, NULL), 0);
	role_up(&r);
	role_publish(&r, TOPO_EX_EVENTS, "result.topo-h1");
	role_close(&r);
}

static void
test_topology_operator_role(void **state)
{
	struct role r;
	char *queue = tu_unique(TOPO_Q_MMCTL_PREFIX "topo");
	const struct bus_queue_opts q = {
		.exclusive = true,
		.auto_delete = true,
	};

	role_open(&r, "operator");
	assert_int_equal(topo_declare_policy_exchange(r.bus), 0);
	assert_int_equal(topo_declare_events_exchange(r.bus), 0);
	assert_int_equal(bus_declare_queue(r.bus, queue, &q), 0);
	assert_int_equal(bus_bind(r.bus, queue, TOPO_EX_EVENTS, "#"), 0);
	assert_int_equal(bus_consume(r.bus, queue, false, ignore_cb, NULL),
	    0);
	/* mmctl events: the log, from a time, and its end-of-history mark. */
	assert_int_equal(bus_consume_stream(r.bus, TOPO_Q_EVENTS_LOG,
	    BUS_STREAM_TIME, 1700000000, ignore_cb, NULL), 0);
	role_up(&r);
	role_publish(&r, TOPO_EX_POLICY, "");
	role_publish(&r, TOPO_EX_EVENTS, TOPO_EV_MARK ".topo");
	role_close(&r);
	free(queue);
}

/* Least privilege: an operator may mark the events log, not forge an
 * event (topic permission on mm.events). */
static void
test_topology_operator_cannot_forge_events(void **state)
{
	struct role r;
	uint8_t b = 1;
	struct bus_msg m = {
		.exchange = TOPO_EX_EVENTS,
		.routing_key = "decision.topo-h1",
		.body = &b,
		.len = 1,
		.type = "mm.test.Probe",
	};

	role_open(&r, "operator");
	assert_int_equal(topo_declare_events_exchange(r.bus), 0);
	role_up(&r);
	r.want = 1;
	assert_int_equal(bus_publish(r.bus, &m, confirm_cb, &r), 0);
	assert_true(tu_run_until(&r.loop, &r.failed, 10000));
	assert_non_null(strstr(r.reason, "ACCESS_REFUSED"));
	role_close(&r);
}

/* Least privilege: a collector may not touch the command path. */
static void
test_topology_collector_cannot_command(void **state)
{
	struct role r;

	role_open(&r, "collector");
	assert_int_equal(topo_declare_commands_exchange(r.bus), 0);
	assert_int_equal(bus_start(r.bus), 0);
	assert_true(tu_run_until(&r.loop, &r.failed, 10000));
	assert_false(r.up);
	assert_non_null(strstr(r.reason, "ACCESS_REFUSED"));
	assert_non_null(strstr(r.reason, "mm.commands"));
	role_close(&r);
}

static void
assert_listed(const char *json, const char *name)
{
	char needle[256];

	snprintf(needle, sizeof(needle), "\"name\":\"%s\"", name);
	if (strstr(json, needle) == NULL)
		fail_msg("management API does not list %s", name);
}

static void
test_topology_listed_by_management_api(void **state)
{
	static const char *const exchanges[] = {
		TOPO_EX_STATS, TOPO_EX_COMMANDS, TOPO_EX_POLICY,
		TOPO_EX_EVENTS, TOPO_EX_CONTROL, TOPO_EX_DLX,
	};
	static const char *const queues[] = {
		TOPO_Q_SCHED_STATS, TOPO_Q_DEAD, TOPO_Q_EVENTS_LOG,
		"mm.actuator.topo-h1",
		"mm.actuator.topo-h2", "mm.scheduler.topo-s1.policy",
	};
	char *json;

	json = tu_mgmt_get("/api/exchanges/mm?columns=name,type");
	for (size_t i = 0; i < sizeof(exchanges) / sizeof(*exchanges); i++)
		assert_listed(json, exchanges[i]);
	assert_non_null(strstr(json, "\"name\":\"mm.dlx\",\"type\":"
	    "\"headers\""));
	json = tu_mgmt_get("/api/queues/mm?columns=name,arguments");
	for (size_t i = 0; i < sizeof(queues) / sizeof(*queues); i++)
		assert_listed(json, queues[i]);
	/* The stats queue is bounded, drops the oldest and expires them. */
	json = tu_mgmt_get("/api/queues/mm/mm.scheduler.stats");
	assert_non_null(strstr(json, "\"x-overflow\":\"drop-head\""));
	assert_non_null(strstr(json, "\"x-max-length\":"));
	assert_non_null(strstr(json, "\"x-message-ttl\":"));
	/* The events log is a stream with bounded retention. */
	json = tu_mgmt_get("/api/queues/mm/mm.events.log");
	assert_non_null(strstr(json, "\"x-queue-type\":\"stream\""));
	assert_non_null(strstr(json, "\"x-max-age\":\"86400s\""));
	assert_non_null(strstr(json, "\"x-max-length-bytes\":268435456"));
	json = tu_mgmt_get("/api/bindings/mm/e/mm.events/q/mm.events.log");
	assert_non_null(strstr(json, "\"routing_key\":\"#\""));
}

/*
 * What mm.dead keeps, as docs/protocol.md says: a command batch a consumer
 * rejects lands there, one that expires in its queue does not. Run as
 * guest, which may read mm.dead (ctest's RESOURCE_LOCK mm_dead keeps the
 * tests that empty it apart).
 */
struct dl {
	uv_loop_t loop;
	struct bus *bus;
	bool up;
	char rejected_id[128];
	char expired_id[128];
	bool got_rejected;	/* the actuator queue delivered it */
	bool dead_rejected;	/* found on mm.dead */
	bool dead_expired;
	char reason[64];	/* x-first-death-reason of the rejected one */
};

static void
dl_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct dl *t = arg;

	t->up = up;
}

static enum bus_disposition
dl_actuator_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct dl *t = arg;

	if (strcmp(d->message_id, t->rejected_id) == 0) {
		t->got_rejected = true;
		return BUS_REJECT;
	}
	return BUS_ACK;
}

static enum bus_disposition
dl_dead_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct dl *t = arg;

	if (strcmp(d->message_id, t->rejected_id) == 0)
		t->dead_rejected = true;
	if (strcmp(d->message_id, t->expired_id) == 0)
		t->dead_expired = true;
	return BUS_ACK;
}

static void
test_topology_dead_keeps_rejected_only(void **state)
{
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-dead-letters",
	};
	static struct dl t;
	uint8_t b = 1;
	struct bus_msg m = {
		.exchange = TOPO_EX_COMMANDS,
		.body = &b,
		.len = 1,
		.type = "mm.v1.CommandBatch",
		.persistent = true,
	};
	char host[64], queue[128], *json;
	char *u = tu_unique("dl");

	memset(&t, 0, sizeof(t));
	snprintf(host, sizeof(host), "topo-dl-%d", (int)getpid());
	snprintf(t.rejected_id, sizeof(t.rejected_id), "%s-rejected", u);
	snprintf(t.expired_id, sizeof(t.expired_id), "%s-expired", u);
	free(u);
	cfg.state_cb = dl_state_cb;
	cfg.state_arg = &t;
	uv_loop_init(&t.loop);
	t.bus = bus_new(&t.loop, &cfg);
	assert_non_null(t.bus);
	assert_int_equal(topo_declare_actuator_queue(t.bus, host), 0);
	assert_int_equal(bus_start(t.bus), 0);
	assert_true(tu_run_until(&t.loop, &t.up, 10000));

	/* A batch that expires waiting for its actuator, then one the
	 * actuator refuses. */
	m.routing_key = host;
	m.message_id = t.expired_id;
	m.expiration_ms = 1;
	assert_int_equal(bus_publish(t.bus, &m, NULL, NULL), 0);
	m.message_id = t.rejected_id;
	m.expiration_ms = 0;
	assert_int_equal(bus_publish(t.bus, &m, NULL, NULL), 0);
	tu_run_for(&t.loop, 500);
	assert_int_equal(topo_actuator_queue(queue, sizeof(queue), host), 0);
	assert_int_equal(bus_consume(t.bus, queue, false, dl_actuator_cb, &t),
	    0);
	assert_true(tu_run_until(&t.loop, &t.got_rejected, 10000));

	assert_int_equal(bus_consume(t.bus, TOPO_Q_DEAD, false, dl_dead_cb,
	    &t), 0);
	assert_true(tu_run_until(&t.loop, &t.dead_rejected, 10000));
	/* Both went to mm.dlx in the same order; give the expired one time
	 * to show up anyway. */
	tu_run_for(&t.loop, 1000);
	assert_false(t.dead_expired);
	bus_close(t.bus, 1000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&t.loop), 0);

	/* One binding, and one that filters on the x- header. */
	json = tu_mgmt_get("/api/bindings/mm/e/mm.dlx/q/mm.dead");
	assert_non_null(strstr(json, "\"x-match\":\"all-with-x\""));
	assert_null(strstr(json, "\"x-match\":\"all\""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_topology_scheduler_role),
		cmocka_unit_test(test_topology_collector_role),
		cmocka_unit_test(test_topology_actuator_role),
		cmocka_unit_test(test_topology_operator_role),
		cmocka_unit_test(test_topology_collector_cannot_command),
		cmocka_unit_test(test_topology_operator_cannot_forge_events),
		cmocka_unit_test(test_topology_listed_by_management_api),
		cmocka_unit_test(test_topology_dead_keeps_rejected_only),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
