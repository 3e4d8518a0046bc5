/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus when the broker fails: killed (SIGKILL) and restarted mid-stream,
 * the flow resumes by itself and no confirmed message is lost; stalled
 * (SIGSTOP), the loop keeps running while publishes wait, and everything is
 * confirmed once the broker continues; silent for two heartbeats, it is
 * dropped and reconnected to. Uses $MM_TEST_BROKER_CTL (the
 * throwaway broker's scripts/rabbitmq.sh) to kill, start, pause and resume.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "testutil.h"

#define N_MSGS		3000u
#define KILL_AT		1000u

static void
ctl_sync(const char *verb)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s %s", tu_broker_ctl(), verb);
	assert_int_equal(system(cmd), 0);
}

struct flow {
	uv_loop_t *loop;
	struct bus *producer;
	struct bus *consumer;
	char *queue;
	unsigned published;
	unsigned confirmed;
	unsigned failed;
	uint8_t confirmed_seq[N_MSGS];
	uint8_t received_seq[N_MSGS];
	unsigned received_distinct;
	bool paused;
	uint64_t paused_at;
	bool killed;
	bool restarted;
	int64_t start_status;
	bool done;
	uv_process_t start_proc;
	uv_timer_t pace;
};

static void
check_done(struct flow *f)
{
	if (f->confirmed + f->failed < N_MSGS)
		return;
	for (unsigned i = 0; i < N_MSGS; i++)
		if (f->confirmed_seq[i] && !f->received_seq[i])
			return;
	f->done = true;
}

static void
start_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct flow *f = p->data;

	f->start_status = sig != 0 ? -sig : status;
	f->restarted = true;
	uv_close((uv_handle_t *)p, NULL);
}

static void
kill_and_restart(struct flow *f)
{
	static char *args[3];
	uv_process_options_t o = { 0 };

	f->killed = true;
	ctl_sync("kill");
	args[0] = (char *)tu_broker_ctl();
	args[1] = "start";
	args[2] = NULL;
	o.file = args[0];
	o.args = args;
	o.exit_cb = start_exit_cb;
	o.flags = UV_PROCESS_WINDOWS_HIDE;
	f->start_proc.data = f;
	assert_int_equal(uv_spawn(f->loop, &f->start_proc, &o), 0);
}

/* Each message's confirm argument encodes its sequence number. */
static struct flow *the_flow;

static void
seq_confirm_cb(struct bus *bus, int status, void *arg)
{
	struct flow *f = the_flow;
	unsigned seq = (unsigned)(uintptr_t)arg;

	if (status == 0) {
		f->confirmed++;
		f->confirmed_seq[seq] = 1;
	} else {
		f->failed++;
	}
	check_done(f);
}

static enum bus_disposition
receive_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct flow *f = arg;
	uint32_t seq;

	if (d->len != sizeof(seq))
		return BUS_REJECT;
	memcpy(&seq, d->body, sizeof(seq));
	if (seq < N_MSGS && !f->received_seq[seq]) {
		f->received_seq[seq] = 1;
		f->received_distinct++;
	}
	check_done(f);
	return BUS_ACK;
}

/* Publish 5 messages every millisecond or so, whatever the broker does. */
static void
pace_cb(uv_timer_t *t)
{
	struct flow *f = t->data;

	for (int i = 0; i < 5 && f->published < N_MSGS; i++) {
		uint32_t seq = f->published;
		struct bus_msg m = {
			.exchange = "",
			.routing_key = f->queue,
			.body = &seq,
			.len = sizeof(seq),
			.type = "mm.test.Seq",
			.persistent = true,
		};

		assert_int_equal(bus_publish(f->producer, &m, seq_confirm_cb,
		    (void *)(uintptr_t)seq), 0);
		f->published++;
	}
	if (f->published == N_MSGS && f->killed)
		uv_timer_stop(t);
	/*
	 * Freeze the broker, go on publishing for 300 ms (those messages
	 * cannot be confirmed), then kill it: some must be re-sent.
	 */
	if (!f->paused && f->confirmed >= KILL_AT) {
		ctl_sync("pause");
		f->paused = true;
		f->paused_at = uv_now(t->loop);
	} else if (f->paused && !f->killed &&
	    uv_now(t->loop) - f->paused_at >= 300) {
		kill_and_restart(f);
	}
}

static struct bus *
flow_bus(struct flow *f, const char *app)
{
	const struct bus_queue_opts q = {
		.durable = true,
		.expires_ms = 120000,
	};
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = app,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 1000,
		.heartbeat_s = 5,
	};
	struct bus *bus = bus_new(f->loop, &cfg);

	assert_non_null(bus);
	assert_int_equal(bus_declare_queue(bus, f->queue, &q), 0);
	return bus;
}

static void
closed_cb(void *arg)
{
	(*(int *)arg)++;
}

static void
test_bus_restart_loses_no_confirmed_message(void **state)
{
	static struct flow f;
	uv_loop_t loop;
	struct bus_stats ps, cs;
	int closed = 0;

	uv_loop_init(&loop);
	memset(&f, 0, sizeof(f));
	the_flow = &f;
	f.loop = &loop;
	f.queue = tu_unique("mm.test.restart");
	f.producer = flow_bus(&f, "test-restart-producer");
	f.consumer = flow_bus(&f, "test-restart-consumer");
	assert_int_equal(bus_consume(f.consumer, f.queue, false, receive_cb,
	    &f), 0);
	assert_int_equal(bus_start(f.consumer), 0);
	assert_int_equal(bus_start(f.producer), 0);
	uv_timer_init(&loop, &f.pace);
	f.pace.data = &f;
	uv_timer_start(&f.pace, pace_cb, 1, 1);

	assert_true(tu_run_until(&loop, &f.done, 180000));
	assert_true(f.killed);
	/* The bus is back as soon as the AMQP port is; the script still
	 * waits for the management API. */
	assert_true(tu_run_until(&loop, &f.restarted, 120000));
	assert_int_equal(f.start_status, 0);
	/* Every message was confirmed in the end, and every confirmed one
	 * reached the consumer. */
	assert_int_equal(f.failed, 0);
	assert_int_equal(f.confirmed, N_MSGS);
	assert_int_equal(f.received_distinct, N_MSGS);
	bus_get_stats(f.producer, &ps);
	bus_get_stats(f.consumer, &cs);
	assert_true(ps.connects >= 2);
	assert_true(cs.connects >= 2);
	assert_true(ps.disconnects >= 1);
	assert_true(ps.resent > 0);
	fprintf(stderr, "restart: producer connects %llu resent %llu, "
	    "consumer connects %llu delivered %llu (%u distinct)\n",
	    (unsigned long long)ps.connects, (unsigned long long)ps.resent,
	    (unsigned long long)cs.connects,
	    (unsigned long long)cs.delivered, f.received_distinct);

	uv_close((uv_handle_t *)&f.pace, NULL);
	bus_close(f.producer, 1000, closed_cb, &closed);
	bus_close(f.consumer, 0, closed_cb, &closed);
	assert_int_equal(tu_loop_finish(&loop), 0);
	assert_int_equal(closed, 2);
	free(f.queue);
}

struct stall {
	uint64_t last_tick;
	uint64_t max_gap;
	unsigned confirmed;
	bool all_confirmed;
	bool up;
};

static void
stall_tick_cb(uv_timer_t *t)
{
	struct stall *s = t->data;
	uint64_t now = uv_now(t->loop);

	if (s->last_tick != 0 && now - s->last_tick > s->max_gap)
		s->max_gap = now - s->last_tick;
	s->last_tick = now;
}

static void
stall_confirm_cb(struct bus *bus, int status, void *arg)
{
	struct stall *s = arg;

	if (status == 0 && ++s->confirmed == 2000)
		s->all_confirmed = true;
}

static void
stall_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	((struct stall *)arg)->up = up;
}

static void
test_bus_stalled_broker_does_not_block_loop(void **state)
{
	uv_loop_t loop;
	struct stall s = { 0 };
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-stall",
		.state_cb = stall_state_cb,
		.state_arg = &s,
	};
	const struct bus_queue_opts q = { .expires_ms = 60000 };
	char *queue = tu_unique("mm.test.stall");
	static uint8_t body[1024];
	struct bus_stats st;
	uv_timer_t tick;
	struct bus *bus;
	int closed = 0;

	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(bus_declare_queue(bus, queue, &q), 0);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &s.up, 10000));

	ctl_sync("pause");
	uv_timer_init(&loop, &tick);
	tick.data = &s;
	uv_timer_start(&tick, stall_tick_cb, 10, 10);
	/* 2 MB: far more than the socket buffers hold. */
	for (int i = 0; i < 2000; i++) {
		struct bus_msg m = {
			.exchange = "",
			.routing_key = queue,
			.body = body,
			.len = sizeof(body),
		};

		assert_int_equal(bus_publish(bus, &m, stall_confirm_cb, &s),
		    0);
	}
	tu_run_for(&loop, 3000);
	bus_get_stats(bus, &st);
	ctl_sync("resume");
	fprintf(stderr, "stall: longest loop gap %llu ms, %zu in flight, "
	    "%zu waiting\n", (unsigned long long)s.max_gap, st.unconfirmed,
	    st.outbox);
	/* A blocked loop would show a gap of the whole 3 s pause. */
	assert_true(s.max_gap < 1000);
	assert_true(st.outbox > 0);
	assert_int_equal(s.confirmed, 0);

	assert_true(tu_run_until(&loop, &s.all_confirmed, 30000));
	uv_close((uv_handle_t *)&tick, NULL);
	bus_close(bus, 0, closed_cb, &closed);
	assert_int_equal(tu_loop_finish(&loop), 0);
	assert_int_equal(closed, 1);
	free(queue);
}

struct hb {
	unsigned ups;
	unsigned downs;
	char reason[512];
	bool up;
};

static void
hb_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct hb *h = arg;

	h->up = up;
	if (up) {
		h->ups++;
	} else {
		h->downs++;
		snprintf(h->reason, sizeof(h->reason), "%s", reason);
	}
}

/*
 * With a 1 s heartbeat an idle connection stays up (the bus sends
 * heartbeats from its timer, or the broker would close it), and a broker
 * that goes silent is noticed after two heartbeats and reconnected to.
 */
static void
test_bus_heartbeats_keep_and_detect(void **state)
{
	uv_loop_t loop;
	struct hb h = { 0 };
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-heartbeat",
		.heartbeat_s = 1,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 500,
		.connect_timeout_ms = 2000,
		.state_cb = hb_state_cb,
		.state_arg = &h,
	};
	struct bus *bus;
	bool down = false;
	int closed = 0;

	uv_loop_init(&loop);
	bus = bus_new(&loop, &cfg);
	assert_non_null(bus);
	assert_int_equal(bus_start(bus), 0);
	assert_true(tu_run_until(&loop, &h.up, 10000));
	tu_run_for(&loop, 5000);
	assert_int_equal(h.downs, 0);
	assert_true(bus_is_up(bus));

	ctl_sync("pause");
	for (int i = 0; i < 60 && h.downs == 0; i++)
		tu_run_for(&loop, 100);
	down = h.downs > 0;
	ctl_sync("resume");
	assert_true(down);
	assert_non_null(strstr(h.reason, "heartbeat"));
	h.up = false;
	assert_true(tu_run_until(&loop, &h.up, 20000));
	assert_int_equal(h.ups, 2);

	bus_close(bus, 0, closed_cb, &closed);
	assert_int_equal(tu_loop_finish(&loop), 0);
	assert_int_equal(closed, 1);
}

/* The broker's memory alarm back where it was, whatever the test did. */
static int
watermark_restore(void **state)
{
	(void)state;
	ctl_sync("ctl set_vm_memory_high_watermark 0.4");
	return 0;
}

struct blk {
	unsigned confirmed;
	unsigned received;
	bool all;
	unsigned want;
};

static void
blk_confirm_cb(struct bus *bus, int status, void *arg)
{
	struct blk *b = arg;

	(void)bus;
	b->confirmed += status == 0;
}

static enum bus_disposition
blk_rx_cb(struct bus *bus, const struct bus_delivery *d, void *arg)
{
	struct blk *b = arg;

	(void)bus;
	(void)d;
	b->all = ++b->received >= b->want;
	return BUS_ACK;
}

/*
 * A broker short of memory blocks its publishers (connection.blocked): the
 * bus stops sending (a publish would block the loop), says so in its
 * stats, keeps what is published in the outbox, and sends it all once the
 * broker unblocks it.
 */
static void
test_bus_blocked_broker_holds_messages(void **state)
{
	uv_loop_t loop;
	struct blk b = { .want = 11 };
	char *queue = tu_unique("mm.test.blocked");
	char *ex = tu_unique("mm.test.ex");
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-blocked",
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 500,
	};
	struct bus *producer, *consumer;
	struct bus_stats st;
	unsigned x = 42;
	struct bus_msg m = { .routing_key = "k", .body = &x, .len = sizeof(x) };

	(void)state;
	uv_loop_init(&loop);
	producer = bus_new(&loop, &cfg);
	cfg.app_id = "test-blocked-rx";
	consumer = bus_new(&loop, &cfg);
	assert_non_null(producer);
	assert_non_null(consumer);
	m.exchange = ex;
	assert_int_equal(bus_declare_exchange(producer, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_exchange(consumer, ex, "direct", 0), 0);
	assert_int_equal(bus_declare_queue(consumer, queue, NULL), 0);
	assert_int_equal(bus_bind(consumer, queue, ex, "k"), 0);
	assert_int_equal(bus_consume(consumer, queue, false, blk_rx_cb, &b),
	    0);
	assert_int_equal(bus_start(consumer), 0);
	assert_int_equal(bus_start(producer), 0);
	for (int i = 0; i < 100 && !(bus_is_up(producer) &&
	    bus_is_up(consumer)); i++)
		tu_run_for(&loop, 100);
	assert_true(bus_is_up(producer) && bus_is_up(consumer));

	/* The alarm: RabbitMQ blocks a connection once it publishes. */
	ctl_sync("ctl set_vm_memory_high_watermark 0.0000001");
	assert_int_equal(bus_publish(producer, &m, blk_confirm_cb, &b), 0);
	for (int i = 0; i < 100; i++) {
		bus_get_stats(producer, &st);
		if (st.is_blocked)
			break;
		tu_run_for(&loop, 100);
	}
	assert_true(st.is_blocked);
	for (int i = 0; i < 10; i++)
		assert_int_equal(bus_publish(producer, &m, blk_confirm_cb, &b),
		    0);
	tu_run_for(&loop, 1000);
	bus_get_stats(producer, &st);
	assert_true(st.is_blocked);
	assert_int_equal(st.blocked, 1);
	assert_int_equal(st.outbox, 10);
	assert_true(st.up);
	assert_int_equal(b.received, 0);

	/* Room again: everything goes, nothing was lost. */
	ctl_sync("ctl set_vm_memory_high_watermark 0.4");
	assert_true(tu_run_until(&loop, &b.all, 20000));
	tu_run_for(&loop, 300);
	bus_get_stats(producer, &st);
	assert_false(st.is_blocked);
	assert_true(st.blocked_ms >= 1000);
	assert_int_equal(st.outbox, 0);
	assert_int_equal(b.confirmed, 11);
	assert_int_equal(b.received, 11);
	assert_int_equal(st.disconnects, 0);
	bus_close(producer, 1000, NULL, NULL);
	bus_close(consumer, 1000, NULL, NULL);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
	free(ex);
}

/*
 * A publish the broker refuses (basic.nack) is sent again on a new
 * connection, up to three times, then given up with -EIO. The broker
 * refuses for real here: a queue of at most one message that rejects
 * publishes when full (x-overflow reject-publish).
 */
struct refuse {
	struct bus *bus;
	const char *queue;
	int status[3];		/* of messages 0, 1, 2; 1 while waiting */
	unsigned downs;
	bool purge;		/* empty the queue at the first refusal */
	bool up;
};

static void
refuse_confirm_cb(struct bus *bus, int status, void *arg)
{
	int *slot = arg;

	(void)bus;
	*slot = status;
}

static void
refuse_state_cb(struct bus *bus, bool up, const char *reason, void *arg)
{
	struct refuse *r = arg;
	char verb[256];

	(void)bus;
	r->up = up;
	if (up)
		return;
	assert_non_null(strstr(reason, "refused"));
	if (r->downs++ == 0 && r->purge) {
		snprintf(verb, sizeof(verb), "ctl purge_queue -p mm %s",
		    r->queue);
		ctl_sync(verb);
	}
}

static void
refuse_publish(struct refuse *r, int i)
{
	static uint8_t body[16];
	struct bus_msg m = {
		.exchange = "",
		.routing_key = r->queue,
		.body = body,
		.len = sizeof(body),
	};

	r->status[i] = 1;
	assert_int_equal(bus_publish(r->bus, &m, refuse_confirm_cb,
	    &r->status[i]), 0);
}

static bool
refuse_wait(uv_loop_t *loop, struct refuse *r, int i)
{
	for (int t = 0; t < 15000 && r->status[i] == 1; t += 20)
		tu_run_for(loop, 20);
	return r->status[i] != 1;
}

static void
test_bus_refused_message_sent_again(void **state)
{
	uv_loop_t loop;
	struct refuse r = { .purge = true };
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-refuse",
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 500,
		.state_cb = refuse_state_cb,
		.state_arg = &r,
	};
	const struct bus_queue_opts q = {
		.max_length = 1,
		.reject_publish = true,
		.expires_ms = 60000,
	};
	char *queue = tu_unique("mm.test.refuse");
	struct bus_stats st;
	int closed = 0;

	(void)state;
	r.queue = queue;
	uv_loop_init(&loop);
	r.bus = bus_new(&loop, &cfg);
	assert_non_null(r.bus);
	assert_int_equal(bus_declare_queue(r.bus, queue, &q), 0);
	assert_int_equal(bus_start(r.bus), 0);
	assert_true(tu_run_until(&loop, &r.up, 10000));

	/* The first fills the queue; the second is refused, the queue
	 * emptied (at the refusal), and it goes in when sent again. */
	refuse_publish(&r, 0);
	assert_true(refuse_wait(&loop, &r, 0));
	assert_int_equal(r.status[0], 0);
	refuse_publish(&r, 1);
	assert_true(refuse_wait(&loop, &r, 1));
	assert_int_equal(r.status[1], 0);
	assert_int_equal(r.downs, 1);
	bus_get_stats(r.bus, &st);
	assert_int_equal(st.nacked, 1);
	assert_int_equal(st.confirmed, 2);
	assert_int_equal(st.resent, 1);

	/* The queue is full again: the third is refused four times and
	 * given up, and the connection is back. */
	refuse_publish(&r, 2);
	assert_true(refuse_wait(&loop, &r, 2));
	assert_int_equal(r.status[2], -EIO);
	bus_get_stats(r.bus, &st);
	fprintf(stderr, "refuse: %llu refusals, %llu connects\n",
	    (unsigned long long)st.nacked, (unsigned long long)st.connects);
	assert_int_equal(st.nacked, 1 + 4);
	assert_int_equal(r.downs, 1 + 4);
	assert_true(tu_run_until(&loop, &r.up, 10000));
	assert_int_equal(st.unconfirmed + st.outbox, 0);

	bus_close(r.bus, 0, closed_cb, &closed);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
}

/*
 * A broker that takes a publish and never confirms it, on a connection
 * that is otherwise fine (heartbeats far off): after confirm_timeout the
 * bus connects again and sends it again. Stopped broker: SIGSTOP.
 */
static void
test_bus_unconfirmed_publish_times_out(void **state)
{
	uv_loop_t loop;
	struct refuse r = { 0 };
	struct bus_config cfg = {
		.url = tu_broker_url(),
		.app_id = "test-confirm-timeout",
		.heartbeat_s = 60,
		.confirm_timeout_ms = 1000,
		.connect_timeout_ms = 1000,
		.reconnect_min_ms = 100,
		.reconnect_max_ms = 500,
		.state_cb = stall_state_cb,
	};
	const struct bus_queue_opts q = { .expires_ms = 60000 };
	char *queue = tu_unique("mm.test.confirm");
	struct stall s = { 0 };
	struct bus_stats st;
	int closed = 0;

	(void)state;
	cfg.state_arg = &s;
	r.queue = queue;
	uv_loop_init(&loop);
	r.bus = bus_new(&loop, &cfg);
	assert_non_null(r.bus);
	assert_int_equal(bus_declare_queue(r.bus, queue, &q), 0);
	assert_int_equal(bus_start(r.bus), 0);
	assert_true(tu_run_until(&loop, &s.up, 10000));

	ctl_sync("pause");
	refuse_publish(&r, 0);
	for (int t = 0; t < 4000 && s.up; t += 20)
		tu_run_for(&loop, 20);
	bus_get_stats(r.bus, &st);
	ctl_sync("resume");
	assert_false(s.up);
	assert_int_equal(st.confirm_timeouts, 1);
	assert_true(refuse_wait(&loop, &r, 0));
	assert_int_equal(r.status[0], 0);
	bus_get_stats(r.bus, &st);
	assert_int_equal(st.resent, 1);
	assert_int_equal(st.confirmed, 1);

	bus_close(r.bus, 0, closed_cb, &closed);
	assert_int_equal(tu_loop_finish(&loop), 0);
	free(queue);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_stalled_broker_does_not_block_loop),
		cmocka_unit_test(test_bus_heartbeats_keep_and_detect),
		cmocka_unit_test(test_bus_refused_message_sent_again),
		cmocka_unit_test(test_bus_unconfirmed_publish_times_out),
		cmocka_unit_test(test_bus_restart_loses_no_confirmed_message),
		cmocka_unit_test_teardown(
		    test_bus_blocked_broker_holds_messages, watermark_restore),
	};

	tu_broker_url();
	tu_broker_ctl();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
