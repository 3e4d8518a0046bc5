/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus against a real RabbitMQ: confirmed publishing, consuming with
 * acks, properties carried end to end, oversized and malformed messages
 * dead-lettered to mm.dead while the consumer keeps running, clear
 * errors for what a user gets wrong (credentials, undeclared exchanges),
 * and stream queues read from an offset, resumed after a reconnect.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bus.h"
#include "msg.h"
#include "testutil.h"
#include "topology.h"

#define N_MSGS 500

struct rx {
	unsigned count;
	unsigned next_expected;
	bool in_order;
	bool done;
	unsigned want;
	char type[256];
	char content_type[256];
	char message_id[256];
	char app_id[256];
	char correlation_id[256];
	uint64_t timestamp;
};

struct tx {
	unsigned confirmed;
	unsigned failed;
	unsigned cancelled;
};

static void
confirm_cb(struct bus *bus, int status, void *arg)
{
	struct tx *tx = arg;

	if (status == 0)
		tx->confirmed++;
	else if (status == -ECANCELED)
		tx->cancelled++;
	else
		tx->failed++;
}

static enum bus_disposition
rx_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct rx *rx = arg;
	unsigned seq;

	if (d->len != sizeof(seq))
		return BUS_REJECT;
	memcpy(&seq, d->body, sizeof(seq));
	if (seq != rx->next_expected)
		rx->in_order = false;
	rx->next_expected = seq + 1;
	snprintf(rx->type, sizeof(rx->type), "%s", d->type);
	snprintf(rx->content_type, sizeof(rx->content_type), "%s",
	    d->content_type);
	snprintf(rx->message_id, sizeof(rx->message_id), "%s", d->message_id);
	snprintf(rx->app_id, sizeof(rx->app_id), "%s", d->app_id);
	snprintf(rx->correlation_id, sizeof(rx->correlation_id), "%s",
	    d->correlation_id);
	rx->timestamp = d->timestamp;
	if (++rx->count >= rx->want)
		rx->done = true;
	return BUS_ACK;
}

static struct bus *
open_bus(uv_loop_t *loop, const char *url, const char *app)
{
	struct bus_config cfg = {
		.url = url,
		.app_id = app,
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 500,
	};
	struct bus *bus = bus_new(loop, &cfg);

	assert_non_null(bus);
	return bus;
}

static void
closed_cb(void *arg)
{
	*(bool *)arg = true;
}

/* Close with a flush and wait until the bus is freed. */
static void
close_bus(uv_loop_t *loop, struct bus *bus)
{
	bool closed = false;

	bus_close(bus, 2000, closed_cb, &closed);
	assert_true(tu_run_until(loop, &closed, 5000));
}

/* What test_bus_supersede_and_url_list receives, in order. */
struct got {
	char bodies[16][16];
	unsigned n;
	bool done;
	unsigned want;
};

static enum bus_disposition
got_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct got *g = arg;

	if (g->n < 16)
		snprintf(g->bodies[g->n], sizeof(g->bodies[0]), "%.*s",
		    (int)d->len, (const char *)d->body);
	g->n++;
	g->done = g->n >= g->want;
	return BUS_ACK;
}

struct stale {
	unsigned confirmed;
	unsigned superseded;
};

static void
stale_cb(struct bus *bus, int status, void *arg)
{
	struct stale *st = arg;

	if (status == 0)
		st->confirmed++;
	else if (status == -ESTALE)
		st->superseded++;
}

static int
publish_text(struct bus *bus, const char *ex, const char *key,
    const char *text, struct stale *st)
{
	struct bus_msg m = {
		.exchange = ex,
		.routing_key = "k",
		.body = text,
		.len = strlen(text),
		.supersede_key = key,
	};

	return bus_publish(bus, &m, stale_cb, st);
}

/*
 * Levels, not edges: messages with a supersede key replace the one of
 * their key still waiting (taking its turn), are never refused for a
 * full outbox, and the replaced one's callback says so; others are
 * refused past outbox_max. The URL list: the first node does not answer,
 * the bus connects to the second and says which.
 */
static void
test_bus_supersede_and_url_list(void **state)
{
	uv_loop_t loop;
	struct bus *bus;
	struct got got = { .want = 5 };
	struct stale st = { 0 };
	char *queue = tu_unique("mm.test.supersede");
	char *ex = tu_unique("mm.test.ex");
	const char *url = tu_broker_url();
	const char *at = strrchr(url, '@'), *colon, *slash;
	char list[1024], shown[512];
	struct bus_stats bs;
	struct bus_config cfg = {
		.app_id = "test-supersede",
		.reconnect_min_ms = 50,
		.reconnect_max_ms = 500,
		.outbox_max = 4,
	};

	/* The same URL on port 1, where nothing listens, then the broker. */
	assert_non_null(at);
	colon = strchr(at, ':');
	slash = strchr(at, '/');
	assert_true(colon != NULL && slash != NULL && colon < slash);
	snprintf(list, sizeof(list), "%.*s:1%s, %s", (int)(colon - url), url,
	    slash, url);
	cfg.url = list;
	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(bus_declare_exchange(bus, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_queue(bus, queue, NULL), 0);
	assert_int_equal(bus_bind(bus, queue, ex, "k"), 0);
	assert_int_equal(bus_consume(bus, queue, false, got_cb, &got), 0);

	/* Before any connection: everything waits in the outbox. */
	assert_int_equal(publish_text(bus, ex, "A", "A1", &st), 0);
	assert_int_equal(publish_text(bus, ex, "B", "B1", &st), 0);
	assert_int_equal(publish_text(bus, ex, NULL, "x1", &st), 0);
	assert_int_equal(publish_text(bus, ex, "A", "A2", &st), 0);
	assert_int_equal(publish_text(bus, ex, NULL, "x2", &st), 0);
	/* Four waiting: the next plain one is refused, keyed ones never. */
	assert_int_equal(publish_text(bus, ex, NULL, "x3", &st), -ENOBUFS);
	assert_int_equal(publish_text(bus, ex, "A", "A3", &st), 0);
	assert_int_equal(publish_text(bus, ex, "C", "C1", &st), 0);
	assert_int_equal(publish_text(bus, ex, "B", "B2", &st), 0);
	assert_true(bus_pending(bus, "A"));
	assert_false(bus_pending(bus, "Z"));
	assert_int_equal(publish_text(bus, ex, "", "E", &st), -EINVAL);
	assert_int_equal(st.superseded, 3);
	bus_get_stats(bus, &bs);
	assert_int_equal(bs.outbox, 5);
	assert_int_equal(bs.superseded, 3);
	assert_int_equal(bs.dropped, 1);

	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &got.done, 15000));
	tu_run_for(&loop, 300);
	/* The newest of each key, in the turn of the first of its key. */
	assert_int_equal(got.n, 5);
	assert_string_equal(got.bodies[0], "A3");
	assert_string_equal(got.bodies[1], "B2");
	assert_string_equal(got.bodies[2], "x1");
	assert_string_equal(got.bodies[3], "x2");
	assert_string_equal(got.bodies[4], "C1");
	assert_int_equal(st.confirmed, 5);
	assert_false(bus_pending(bus, "A"));

	/* The second URL served, and the bus says so, without password. */
	bus_url_redact(url, shown, sizeof(shown));
	assert_string_equal(bus_current_url(bus), shown);
	bus_get_stats(bus, &bs);
	assert_int_equal(bs.connects, 1);
	assert_true(bs.connect_failures >= 1);
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
	free(ex);
}

static void
test_bus_publish_consume_confirmed(void **state)
{
	uv_loop_t loop;
	struct bus *bus;
	struct rx rx = { .want = N_MSGS, .in_order = true };
	struct tx tx = { 0 };
	const struct bus_queue_opts qopts = { .auto_delete = false };
	char *queue = tu_unique("mm.test.bus");
	char *ex = tu_unique("mm.test.ex");
	struct bus_stats st;

	uv_loop_init(&loop);
	bus = open_bus(&loop, tu_broker_url(), "test-bus");
	assert_int_equal(bus_declare_exchange(bus, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_queue(bus, queue, &qopts), 0);
	assert_int_equal(bus_bind(bus, queue, ex, "k"), 0);
	assert_int_equal(bus_consume(bus, queue, false, rx_cb, &rx), 0);
	assert_int_equal(bus_start(bus), 0);

	/* Published before the connection is up: kept and sent in order. */
	for (unsigned i = 0; i < N_MSGS; i++) {
		struct bus_msg m = {
			.exchange = ex,
			.routing_key = "k",
			.body = &i,
			.len = sizeof(i),
			.content_type = "application/x-protobuf",
			.type = "mm.v1.Test",
			.correlation_id = "corr-1",
			.timestamp = 1700000000 + i,
		};

		assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	}
	assert_true(tu_run_until(&loop, &rx.done, 20000));
	tu_run_for(&loop, 200);
	assert_int_equal(rx.count, N_MSGS);
	assert_true(rx.in_order);
	assert_int_equal(tx.confirmed, N_MSGS);
	assert_int_equal(tx.failed, 0);
	assert_string_equal(rx.type, "mm.v1.Test");
	assert_string_equal(rx.content_type, "application/x-protobuf");
	assert_string_equal(rx.app_id, "test-bus");
	assert_string_equal(rx.correlation_id, "corr-1");
	assert_true(strlen(rx.message_id) > 16);
	assert_int_equal(rx.timestamp, 1700000000 + N_MSGS - 1);
	bus_get_stats(bus, &st);
	assert_int_equal(st.published, N_MSGS);
	assert_int_equal(st.confirmed, N_MSGS);
	assert_int_equal(st.acked, N_MSGS);
	assert_int_equal(st.unconfirmed, 0);
	assert_true(st.up);

	close_bus(&loop, bus);

	/* Every delivery was acked: a new consumer gets nothing again. */
	memset(&rx, 0, sizeof(rx));
	rx.want = 1;
	bus = open_bus(&loop, tu_broker_url(), "test-bus-again");
	assert_int_equal(bus_declare_queue(bus, queue, &qopts), 0);
	assert_int_equal(bus_consume(bus, queue, false, rx_cb, &rx), 0);
	assert_int_equal(bus_start(bus), 0);
	tu_run_for(&loop, 1000);
	assert_true(bus_is_up(bus));
	assert_int_equal(rx.count, 0);
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
	free(ex);
}

/*
 * Find a message by id on mm.dead. Everything read is acked: in the test
 * broker mm.dead belongs to the tests (ctest's RESOURCE_LOCK mm_dead keeps
 * them apart), and requeued messages would come straight back ahead of
 * the one we look for.
 */
struct dead_search {
	const char *message_id;
	bool found;
	char type[256];
};

static enum bus_disposition
dead_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct dead_search *s = arg;

	if (strcmp(d->message_id, s->message_id) == 0) {
		s->found = true;
		snprintf(s->type, sizeof(s->type), "%s", d->type);
	}
	return BUS_ACK;
}

static void
assert_dead_lettered(const char *message_id, const char *type)
{
	uv_loop_t loop;
	struct bus *bus;
	struct dead_search s = { .message_id = message_id };

	uv_loop_init(&loop);
	bus = open_bus(&loop, tu_broker_url(), "test-dead");
	assert_int_equal(topo_declare_dead(bus), 0);
	assert_int_equal(bus_consume(bus, TOPO_Q_DEAD, false, dead_cb, &s), 0);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &s.found, 10000));
	assert_string_equal(s.type, type);
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
}

struct hr {
	unsigned good;
	char host[64];
	bool got_good;
	struct msg_dispatch_stats stats;
};

static enum bus_disposition
host_report_cb(const ProtobufCMessage *m, const struct bus_delivery *d,
    void *arg)
{
	struct hr *hr = arg;
	const Mm__V1__HostReport *r = (const Mm__V1__HostReport *)m;

	snprintf(hr->host, sizeof(hr->host), "%s", r->host_id);
	hr->good++;
	hr->got_good = true;
	return BUS_ACK;
}

static enum bus_disposition
dispatch_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	static const struct msg_handler table[] = {
		{ MSG_HOST_REPORT, host_report_cb },
	};
	struct hr *hr = arg;
	char why[256];

	return msg_dispatch(table, 1, d, hr, &hr->stats, why, sizeof(why));
}

static void
test_bus_malformed_dead_lettered(void **state)
{
	uv_loop_t loop;
	struct bus *bus;
	struct hr hr = { 0 };
	struct tx tx = { 0 };
	char *queue = tu_unique("mm.test.malformed");
	char *bad_id = tu_unique("bad");
	const struct bus_queue_opts qopts = {
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	const uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0x42 };
	Mm__V1__HostReport report = MM__V1__HOST_REPORT__INIT;
	struct bus_msg bad = {
		.exchange = TOPO_EX_STATS,
		.routing_key = "host.test-malformed",
		.body = garbage,
		.len = sizeof(garbage),
		.content_type = "application/x-protobuf",
		.type = "mm.v1.HostReport",
		.message_id = bad_id,
	};

	uv_loop_init(&loop);
	bus = open_bus(&loop, tu_broker_url(), "test-malformed");
	assert_int_equal(topo_declare_dead(bus), 0);
	assert_int_equal(topo_declare_stats_exchange(bus), 0);
	assert_int_equal(bus_declare_queue(bus, queue, &qopts), 0);
	assert_int_equal(bus_bind(bus, queue, TOPO_EX_STATS,
	    "host.test-malformed"), 0);
	assert_int_equal(bus_consume(bus, queue, false, dispatch_cb, &hr), 0);
	assert_int_equal(bus_start(bus), 0);

	assert_int_equal(bus_publish(bus, &bad, confirm_cb, &tx), 0);
	report.host_id = "test-malformed";
	report.has_seq = true;
	report.seq = 7;
	report.has_time_ms = true;
	report.time_ms = 1700000000000ull;
	assert_int_equal(msg_publish(bus, MSG_HOST_REPORT,
	    (const ProtobufCMessage *)&report, TOPO_EX_STATS,
	    "host.test-malformed", false, confirm_cb, &tx), 0);

	/* The consumer goes on after the bad message: the good one that
	 * follows it arrives. */
	assert_true(tu_run_until(&loop, &hr.got_good, 10000));
	assert_int_equal(hr.good, 1);
	assert_string_equal(hr.host, "test-malformed");
	assert_int_equal(hr.stats.undecodable + hr.stats.invalid, 1);
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);

	assert_dead_lettered(bad_id, "mm.v1.HostReport");
	free(queue);
	free(bad_id);
}

static enum bus_disposition
count_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct rx *rx = arg;

	rx->count++;
	rx->done = rx->count >= rx->want;
	return BUS_ACK;
}

static void
test_bus_oversized_dead_lettered(void **state)
{
	uv_loop_t loop;
	struct bus *bus;
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-oversized",
		.max_body = 1000,
	};
	struct rx rx = { .want = 1 };
	struct tx tx = { 0 };
	char *queue = tu_unique("mm.test.oversized");
	char *big_id = tu_unique("big");
	const struct bus_queue_opts qopts = {
		.dead_letter_exchange = TOPO_EX_DLX,
	};
	static uint8_t big[300000];
	uint8_t small[10] = { 0 };
	struct bus_msg m = {
		.exchange = "",
		.routing_key = queue,
		.body = big,
		.len = sizeof(big),
		.type = "mm.v1.Big",
		.message_id = big_id,
	};
	struct bus_stats st;

	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(topo_declare_dead(bus), 0);
	assert_int_equal(bus_declare_queue(bus, queue, &qopts), 0);
	assert_int_equal(bus_consume(bus, queue, false, count_cb, &rx), 0);
	assert_int_equal(bus_start(bus), 0);
	/* The 300 kB message spans several frames; the small one after it
	 * must still be delivered. */
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	m.body = small;
	m.len = sizeof(small);
	m.message_id = NULL;
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	assert_true(tu_run_until(&loop, &rx.done, 10000));
	tu_run_for(&loop, 100);
	bus_get_stats(bus, &st);
	assert_int_equal(rx.count, 1);
	assert_int_equal(st.oversized, 1);
	assert_int_equal(st.rejected, 1);
	assert_int_equal(tx.confirmed, 2);
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
	assert_dead_lettered(big_id, "mm.v1.Big");
	free(queue);
	free(big_id);
}

static void
test_bus_refuses_what_cannot_be_sent(void **state)
{
	uv_loop_t loop;
	struct bus_config cfg = {
		.url = "amqp://guest:guest@127.0.0.1:1/",
		.outbox_max = 3,
	};
	struct bus *bus;
	struct tx tx = { 0 };
	uint8_t b = 1;
	struct bus_msg m = { .exchange = "mm.nowhere", .body = &b, .len = 1 };
	struct bus_stats st;

	cfg.url = "http://nope";
	errno = 0;
	assert_null(bus_new(&loop, &cfg));
	assert_int_equal(errno, EINVAL);

	uv_loop_init(&loop);
	cfg.url = "amqp://guest:guest@127.0.0.1:1/";
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	/* An exchange nobody declared on this bus would close the channel
	 * at the broker: refused here instead. */
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), -EINVAL);
	assert_int_equal(bus_declare_exchange(bus, "mm.nowhere", "topic", 0),
	    0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), -ENOBUFS);
	bus_get_stats(bus, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.outbox, 3);
	/* Never connected: closing reports every message as cancelled. */
	bus_close(bus, 1000, NULL, NULL);
	assert_int_equal(tx.cancelled, 3);
	assert_int_equal(tu_loop_finish(&loop), 0);
}

/* A program that publishes and closes at once (mmctl, a test) still
 * delivers: closing waits for the connection and the confirm. */
static void
test_bus_close_right_after_publish_delivers(void **state)
{
	uv_loop_t loop;
	struct bus *bus;
	struct tx tx = { 0 };
	struct rx rx = { .want = 1, .in_order = true };
	char *queue = tu_unique("mm.test.quick");
	const struct bus_queue_opts q = { .expires_ms = 60000 };
	unsigned seq = 0;
	struct bus_msg m = { .exchange = "", .body = &seq, .len = sizeof(seq) };

	uv_loop_init(&loop);
	bus = open_bus(&loop, tu_broker_url(), "test-quick");
	assert_int_equal(bus_declare_queue(bus, queue, &q), 0);
	assert_int_equal(bus_start(bus), 0);
	m.routing_key = queue;
	assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	close_bus(&loop, bus);
	assert_int_equal(tx.confirmed, 1);
	assert_int_equal(tx.cancelled, 0);

	bus = open_bus(&loop, tu_broker_url(), "test-quick-rx");
	assert_int_equal(bus_declare_queue(bus, queue, &q), 0);
	assert_int_equal(bus_consume(bus, queue, false, rx_cb, &rx), 0);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &rx.done, 10000));
	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
}

struct states {
	char reason[512];
	bool failed;
	bool up;
};

static void
state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct states *s = arg;

	if (up) {
		s->up = true;
	} else {
		s->failed = true;
		snprintf(s->reason, sizeof(s->reason), "%s", reason);
	}
}

static void
test_bus_bad_credentials_reported(void **state)
{
	uv_loop_t loop;
	struct states s = { 0 };
	struct bus_config cfg = {
		.url = tu_broker_url_as("guest", "wrong-password"),
		.state_cb = state_cb,
		.state_arg = &s,
	};
	struct bus *bus;
	struct bus_stats st;

	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &s.failed, 10000));
	assert_false(s.up);
	/* The reason names what failed, where, and as whom. */
	assert_non_null(strstr(s.reason, "logging in"));
	assert_non_null(strstr(s.reason, "\"guest\""));
	bus_get_stats(bus, &st);
	assert_true(st.connect_failures >= 1);
	bus_close(bus, 0, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
}

/* The stream test's deliveries: sequence numbers and offsets. */
struct srx {
	unsigned count;
	unsigned seq[64];
	int64_t offset[64];
	bool done;
	unsigned want;
};

static enum bus_disposition
srx_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct srx *rx = arg;
	unsigned seq;

	if (d->len != sizeof(seq) || rx->count >= 64)
		return BUS_REJECT;
	memcpy(&seq, d->body, sizeof(seq));
	rx->seq[rx->count] = seq;
	rx->offset[rx->count++] = d->stream_offset;
	if (rx->count >= rx->want)
		rx->done = true;
	return BUS_ACK;
}

static void
publish_seq(uv_loop_t *loop, struct bus *bus, const char *ex, unsigned from,
    unsigned to)
{
	struct tx tx = { 0 };

	for (unsigned i = from; i < to; i++) {
		struct bus_msg m = {
			.exchange = ex,
			.routing_key = "k",
			.body = &i,
			.len = sizeof(i),
			.type = "mm.v1.Test",
		};

		assert_int_equal(bus_publish(bus, &m, confirm_cb, &tx), 0);
	}
	for (int i = 0; i < 100 && tx.confirmed + tx.failed < to - from; i++)
		tu_run_for(loop, 100);
	assert_int_equal(tx.confirmed, to - from);
}

/* Close the broker's side of the connection named app (management API). */
static void
drop_connection(const char *app)
{
	const char *mgmt = getenv("MM_TEST_MGMT_URL");
	char cmd[2048], json[1 << 16], needle[256], enc[768], *at, *name;
	size_t n, k = 0;
	FILE *p;

	if (mgmt == NULL || *mgmt == '\0')
		mgmt = "http://127.0.0.1:15672";
	/* The broker lists new connections a moment after they open. */
	for (int tries = 0; ; tries++) {
		snprintf(cmd, sizeof(cmd), "curl -sf -u guest:guest "
		    "'%s/api/connections?columns=user_provided_name,name'",
		    mgmt);
		p = popen(cmd, "r");
		assert_non_null(p);
		n = fread(json, 1, sizeof(json) - 1, p);
		json[n] = '\0';
		pclose(p);
		snprintf(needle, sizeof(needle),
		    "\"user_provided_name\":\"%s\"", app);
		at = strstr(json, needle);
		if (at != NULL || tries == 50)
			break;
		usleep(100000);
	}
	assert_non_null(at);
	/* {"name":"127.0.0.1:1234 -> 127.0.0.1:5672",...} */
	for (name = at; name > json && strncmp(name, "{", 1) != 0; name--)
		;
	name = strstr(name, "\"name\":\"");
	assert_non_null(name);
	name += strlen("\"name\":\"");
	for (; *name != '"' && k + 4 < sizeof(enc); name++)
		k += (size_t)snprintf(enc + k, sizeof(enc) - k,
		    (*name >= '0' && *name <= '9') || *name == '.' ? "%c" :
		    "%%%02X", (unsigned char)*name);
	snprintf(cmd, sizeof(cmd), "curl -sf -u guest:guest -X DELETE "
	    "'%s/api/connections/%s'", mgmt, enc);
	assert_int_equal(system(cmd), 0);
}

/*
 * A stream keeps what it delivered: read from the first message, from a
 * time, or only what comes next; a consumer whose connection drops
 * resumes after the last message it was given, nothing twice or skipped.
 */
static void
test_bus_stream_offsets_and_resume(void **state)
{
	const struct bus_queue_opts qopts = {
		.durable = true,
		.stream = true,
		.max_age_s = 600,
		.max_length_bytes = 1 << 20,
		.max_segment_bytes = 1 << 18,
	};
	char *queue = tu_unique("mm.test.stream");
	char *ex = tu_unique("mm.test.sx");
	char *app = tu_unique("test-stream");
	struct srx first = { .want = 5 }, next = { .want = 1 },
	    since = { .want = 9 };
	struct bus_stats st;
	uv_loop_t loop;
	struct bus *bus, *b2;

	uv_loop_init(&loop);
	bus = open_bus(&loop, tu_broker_url(), app);
	assert_int_equal(bus_declare_exchange(bus, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_queue(bus, queue, &qopts), 0);
	assert_int_equal(bus_bind(bus, queue, ex, "k"), 0);
	assert_int_equal(bus_start(bus), 0);
	publish_seq(&loop, bus, ex, 0, 5);

	/* From the first: everything, in order, with its offset. */
	assert_int_equal(bus_consume_stream(bus, queue, BUS_STREAM_FIRST, 0,
	    srx_cb, &first), 0);
	assert_true(tu_run_until(&loop, &first.done, 10000));
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(first.seq[i], i);
		assert_int_equal(first.offset[i], i);
	}

	/* Dropped by the broker: the consumer comes back after offset 4. */
	drop_connection(app);
	for (int i = 0; i < 100; i++) {
		bus_get_stats(bus, &st);
		if (st.connects >= 2 && st.up)
			break;
		tu_run_for(&loop, 100);
	}
	assert_true(st.connects >= 2 && st.up);
	first.want = 8;
	first.done = false;
	publish_seq(&loop, bus, ex, 5, 8);
	assert_true(tu_run_until(&loop, &first.done, 10000));
	tu_run_for(&loop, 500);
	assert_int_equal(first.count, 8);
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(first.seq[i], i);

	/* "next": only what is appended once it is attached. */
	b2 = open_bus(&loop, tu_broker_url(), "test-stream-next");
	assert_int_equal(bus_declare_queue(b2, queue, &qopts), 0);
	assert_int_equal(bus_consume_stream(b2, queue, BUS_STREAM_NEXT, 0,
	    srx_cb, &next), 0);
	assert_int_equal(bus_start(b2), 0);
	tu_run_for(&loop, 1000);
	assert_true(bus_is_up(b2));
	publish_seq(&loop, bus, ex, 8, 9);
	assert_true(tu_run_until(&loop, &next.done, 10000));
	tu_run_for(&loop, 300);
	assert_int_equal(next.count, 1);
	assert_int_equal(next.seq[0], 8);
	assert_int_equal(next.offset[0], 8);
	close_bus(&loop, b2);

	/* From an hour ago: all nine. */
	b2 = open_bus(&loop, tu_broker_url(), "test-stream-since");
	assert_int_equal(bus_consume_stream(b2, queue, BUS_STREAM_TIME,
	    (uint64_t)time(NULL) - 3600, srx_cb, &since), 0);
	assert_int_equal(bus_start(b2), 0);
	assert_true(tu_run_until(&loop, &since.done, 10000));
	tu_run_for(&loop, 300);
	assert_int_equal(since.count, 9);
	close_bus(&loop, b2);

	close_bus(&loop, bus);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
	free(ex);
	free(app);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_publish_consume_confirmed),
		cmocka_unit_test(test_bus_malformed_dead_lettered),
		cmocka_unit_test(test_bus_oversized_dead_lettered),
		cmocka_unit_test(test_bus_refuses_what_cannot_be_sent),
		cmocka_unit_test(test_bus_close_right_after_publish_delivers),
		cmocka_unit_test(test_bus_bad_credentials_reported),
		cmocka_unit_test(test_bus_stream_offsets_and_resume),
		cmocka_unit_test(test_bus_supersede_and_url_list),
	};

	tu_broker_url();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
