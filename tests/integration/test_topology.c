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
#include <amqp.h>
#include <amqp_tcp_socket.h>

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
	assert_int_equal(topo_declare_history_queue(r.bus, "topo-s1", queue,
	    sizeof(queue)), 0);
	assert_string_equal(queue, "mm.scheduler.topo-s1.history");
	assert_int_equal(topo_declare_events_log(r.bus, 0, 0), 0);
	assert_int_equal(bus_consume(r.bus, TOPO_Q_SCHED_STATS, false,
	    ignore_cb, NULL), 0);
	assert_int_equal(bus_consume(r.bus, queue, false, ignore_cb, NULL), 0);
	role_up(&r);
	role_publish(&r, TOPO_EX_COMMANDS, "topo-h1");
	role_publish(&r, TOPO_EX_EVENTS, "decision.topo-h1");
	role_publish(&r, TOPO_EX_HISTORY, "");
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

/* ---- a user per host (deploy/rabbitmq/mm-broker-host) ---- */

#define HOST_A	"topo-ha.example"
#define HOST_B	"topo-hb"

/* Add the broker user id (password: id, as tu_broker_url_as() says)
 * with the tool an operator runs. Returns 0 or -1. */
static int
host_add(const char *id)
{
	char *dir = tu_tmpdir(), *pw, cmd[2048];
	char *tool = tu_source_path("deploy/rabbitmq/mm-broker-host");
	int r;

	pw = tu_write_file(dir, "pw", id);
	snprintf(cmd, sizeof(cmd), "MM_RABBITMQCTL='%s ctl' %s add %s "
	    "--password-file %s >/dev/null", getenv("MM_TEST_BROKER_CTL"),
	    tool, id, pw);
	r = system(cmd);
	tu_rmtree(dir);
	free(dir);
	free(pw);
	free(tool);
	return r == 0 ? 0 : -1;
}

/* The host tests need the broker's CLI (scripts/rabbitmq.sh ctl). */
static bool
hosts_ready(void)
{
	return getenv("MM_TEST_BROKER_CTL") != NULL;
}

/* What a host's collector and actuator do, as that host's user. */
static void
host_does_its_part(const char *id)
{
	char key[128], queue[128];
	struct role r;

	if (!hosts_ready())
		skip();
	role_open(&r, id);
	snprintf(queue, sizeof(queue), "%s%s", TOPO_Q_ACTUATOR_PREFIX, id);
	assert_int_equal(topo_declare_stats_exchange(r.bus), 0);
	assert_int_equal(topo_declare_events_exchange(r.bus), 0);
	assert_int_equal(topo_declare_actuator_queue_only(r.bus, id), 0);
	assert_int_equal(bus_consume(r.bus, queue, false, ignore_cb, NULL),
	    0);
	role_up(&r);
	snprintf(key, sizeof(key), "host.%s", id);
	role_publish(&r, TOPO_EX_STATS, key);
	snprintf(key, sizeof(key), "%s.%s", TOPO_EV_RESULT, id);
	role_publish(&r, TOPO_EX_EVENTS, key);
	snprintf(key, sizeof(key), "%s.%s", TOPO_EV_ALERT, id);
	role_publish(&r, TOPO_EX_EVENTS, key);
	assert_int_equal(r.nacked, 0);
	role_close(&r);
}

static void
test_topology_host_user_does_its_part(void **state)
{
	host_does_its_part(HOST_A);
	host_does_its_part(HOST_B);
}

/* Publishing with key on exchange as host A is refused by the broker. */
static void
host_publish_refused(const char *exchange, const char *key)
{
	struct role r;
	uint8_t b = 1;
	struct bus_msg m = {
		.exchange = exchange,
		.routing_key = key,
		.body = &b,
		.len = 1,
		.type = "mm.test.Probe",
	};

	role_open(&r, HOST_A);
	/* The two it may declare; the bus publishes to declared ones. */
	assert_int_equal(topo_declare_stats_exchange(r.bus), 0);
	assert_int_equal(topo_declare_events_exchange(r.bus), 0);
	role_up(&r);
	r.want = 1;
	assert_int_equal(bus_publish(r.bus, &m, confirm_cb, &r), 0);
	assert_true(tu_run_until(&r.loop, &r.failed, 10000));
	if (strstr(r.reason, "ACCESS_REFUSED") == NULL)
		fail_msg("publishing to %s key %s as %s: %s", exchange, key,
		    HOST_A, r.reason);
	assert_int_equal(r.confirmed, 0);
	role_close(&r);
}

/*
 * Publishing to an exchange the bus would not let us publish to without
 * declaring it (which a host's user may not): straight with librabbitmq.
 * Returns the reply code of the broker's channel.close (403 for a
 * refusal), or 0 when the broker confirmed the message.
 */
static int
raw_publish(const char *user, const char *exchange, const char *key)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock = amqp_tcp_socket_new(c);
	struct amqp_connection_info ci;
	char *url = strdup(tu_broker_url_as(user, user));
	amqp_basic_properties_t props = { 0 };
	amqp_frame_t f;
	int code = -1;

	assert_non_null(sock);
	assert_int_equal(amqp_parse_url(url, &ci), AMQP_STATUS_OK);
	assert_int_equal(amqp_socket_open(sock, ci.host, ci.port), 0);
	assert_int_equal(amqp_login(c, ci.vhost, 0, 131072, 0,
	    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password).reply_type,
	    AMQP_RESPONSE_NORMAL);
	amqp_channel_open(c, 1);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type,
	    AMQP_RESPONSE_NORMAL);
	amqp_confirm_select(c, 1);
	assert_int_equal(amqp_get_rpc_reply(c).reply_type,
	    AMQP_RESPONSE_NORMAL);
	assert_int_equal(amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange),
	    amqp_cstring_bytes(key), 0, 0, &props, amqp_cstring_bytes("x")),
	    AMQP_STATUS_OK);
	while (amqp_simple_wait_frame(c, &f) == AMQP_STATUS_OK) {
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			code = 0;
			break;
		}
		if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
			code = ((amqp_channel_close_t *)
			    f.payload.method.decoded)->reply_code;
			break;
		}
	}
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(url);
	return code;
}

/* Only schedulers hand each other history (mm.history): sizing rests on
 * it. The scheduler role test declared the exchange. */
static void
test_topology_only_schedulers_hand_over_history(void **state)
{
	assert_int_equal(raw_publish("operator", TOPO_EX_HISTORY, ""), 403);
	assert_int_equal(raw_publish("collector", TOPO_EX_HISTORY, ""), 403);
	assert_int_equal(raw_publish("scheduler", TOPO_EX_HISTORY, ""), 0);
}

/* One host's credentials cannot speak for another host, nor for the
 * scheduler. */
static void
test_topology_host_cannot_publish_for_another(void **state)
{
	if (!hosts_ready())
		skip();
	host_publish_refused(TOPO_EX_STATS, "host." HOST_B);
	host_publish_refused(TOPO_EX_STATS, "host.#");
	host_publish_refused(TOPO_EX_EVENTS, TOPO_EV_RESULT "." HOST_B);
	host_publish_refused(TOPO_EX_EVENTS, TOPO_EV_ALERT "." HOST_B);
	host_publish_refused(TOPO_EX_EVENTS, TOPO_EV_DECISION "." HOST_A);
	host_publish_refused("", TOPO_Q_ACTUATOR_PREFIX HOST_B);
	/* Commands are the scheduler's. */
	assert_int_equal(raw_publish(HOST_A, TOPO_EX_COMMANDS, HOST_A), 403);
	assert_int_equal(raw_publish(HOST_A, TOPO_EX_COMMANDS, HOST_B), 403);
	/* The same path works for what it may do (the check can fail). */
	assert_int_equal(raw_publish(HOST_A, TOPO_EX_STATS, "host." HOST_A),
	    0);
}

/* Started as host A with what setup declared: the broker refuses it and
 * says why, naming what. */
static void
host_start_refused(struct role *r, const char *what)
{
	assert_int_equal(bus_start(r->bus), 0);
	assert_true(tu_run_until(&r->loop, &r->failed, 10000));
	if (strstr(r->reason, "ACCESS_REFUSED") == NULL ||
	    strstr(r->reason, what) == NULL)
		fail_msg("as %s, expected a refusal naming %s: %s", HOST_A,
		    what, r->reason);
	role_close(r);
}

/* Nor read another host's commands: not by consuming its queue, not by
 * binding its own queue with the other host's key. */
static void
test_topology_host_cannot_read_another(void **state)
{
	struct role r;

	if (!hosts_ready())
		skip();
	role_open(&r, HOST_A);
	assert_int_equal(bus_consume(r.bus, TOPO_Q_ACTUATOR_PREFIX HOST_B,
	    false, ignore_cb, NULL), 0);
	host_start_refused(&r, TOPO_Q_ACTUATOR_PREFIX HOST_B);

	role_open(&r, HOST_A);
	assert_int_equal(topo_declare_actuator_queue_only(r.bus, HOST_A), 0);
	assert_int_equal(bus_bind(r.bus, TOPO_Q_ACTUATOR_PREFIX HOST_A,
	    TOPO_EX_COMMANDS, HOST_B), 0);
	host_start_refused(&r, TOPO_EX_COMMANDS);

	role_open(&r, HOST_A);
	assert_int_equal(bus_declare_queue(r.bus, "mm.spy." HOST_A,
	    &(struct bus_queue_opts){ .auto_delete = true }), 0);
	host_start_refused(&r, "mm.spy." HOST_A);
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
		TOPO_EX_EVENTS, TOPO_EX_CONTROL, TOPO_EX_DLX, TOPO_EX_HISTORY,
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
		cmocka_unit_test(test_topology_only_schedulers_hand_over_history),
		cmocka_unit_test(test_topology_listed_by_management_api),
		cmocka_unit_test(test_topology_dead_keeps_rejected_only),
		cmocka_unit_test(test_topology_host_user_does_its_part),
		cmocka_unit_test(test_topology_host_cannot_publish_for_another),
		cmocka_unit_test(test_topology_host_cannot_read_another),
	};

	tu_broker_url();
	if (!hosts_ready())
		print_message("host users not tested: MM_TEST_BROKER_CTL is "
		    "not set (scripts/rabbitmq.sh env sets it)\n");
	else if (host_add(HOST_A) < 0 || host_add(HOST_B) < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
