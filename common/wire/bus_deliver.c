/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's deliveries: frames read without blocking, assembled into
 * messages, handed to consumers, settled and acknowledged.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "bus_int.h"
#include "log.h"

/* ---- deliveries ---- */

static struct consumer *
consumer_by_tag(struct bus *bus, amqp_bytes_t tag)
{
	for (struct consumer *k = bus->consumers; k != NULL; k = k->next)
		if (tag.len == strlen(k->tag) &&
		    memcmp(tag.bytes, k->tag, tag.len) == 0)
			return k;
	return NULL;
}

/*
 * Acks are sent once per drain with "multiple", covering every delivery
 * since the last one: deliveries are settled in order, and anything that
 * is not an ack flushes the acks before it.
 */
int
bus_ack_flush(struct bus *bus)
{
	int r = AMQP_STATUS_OK;

	if (bus->ack_upto != 0 && bus->conn != NULL)
		r = amqp_basic_ack(bus->conn->amqp, CH_SUB, bus->ack_upto, 1);
	bus->ack_upto = 0;
	return r;
}

static void
settle(struct bus *bus, struct inbound *in, enum bus_disposition disp)
{
	amqp_connection_state_t c = bus->conn->amqp;
	int r;

	if (in->consumer != NULL && in->consumer->no_ack)
		return;
	/* A stream keeps its messages: rejecting one would neither remove
	 * nor dead-letter it, so everything is acked (credit for more). */
	if (in->consumer != NULL && in->consumer->stream)
		disp = BUS_ACK;
	if (disp == BUS_ACK) {
		bus->ack_upto = in->tag;
		bus->stats.acked++;
		return;
	}
	r = bus_ack_flush(bus);
	if (r != AMQP_STATUS_OK) {
		bus_fail(bus, "acking: %s", amqp_error_string2(r));
		return;
	}
	switch (disp) {
	case BUS_REQUEUE:
		r = amqp_basic_reject(c, CH_SUB, in->tag, 1);
		bus->stats.requeued++;
		break;
	case BUS_ACK:
	case BUS_REJECT:
	default:
		r = amqp_basic_reject(c, CH_SUB, in->tag, 0);
		bus->stats.rejected++;
		break;
	}
	if (r != AMQP_STATUS_OK)
		bus_fail(bus, "settling delivery: %s", amqp_error_string2(r));
}

/*
 * What handlers publish while a drain hands them deliveries, and the acks,
 * is corked: the kernel sends it in full segments when the drain ends (or
 * every CORK_DELIVERIES deliveries, so a backlog is answered as it goes)
 * instead of one segment per message. Each segment costs a wake-up and a
 * read at the broker and, on loopback, its receive path at the sender.
 */
#define CORK_DELIVERIES	16

static void
cork(struct bus *bus, bool on)
{
	int v = on;

	if (bus->conn == NULL || bus->conn->amqp == NULL)
		return;
	setsockopt(amqp_get_sockfd(bus->conn->amqp), IPPROTO_TCP, TCP_CORK,
	    &v, sizeof(v));
}

static void
deliver(struct bus *bus)
{
	struct inbound *in = &bus->in;
	struct conn *conn = bus->conn;
	struct bus_delivery d;
	enum bus_disposition disp;

	in->active = false;
	if (in->discard || in->consumer == NULL) {
		if (in->discard)
			bus->stats.oversized++;
		settle(bus, in, BUS_REJECT);
		return;
	}
	memset(&d, 0, sizeof(d));
	d.queue = in->consumer->queue;
	d.exchange = in->exchange;
	d.routing_key = in->routing_key;
	d.body = bus->body;
	d.len = in->size;
	d.content_type = in->content_type;
	d.type = in->type;
	d.message_id = in->message_id;
	d.correlation_id = in->correlation_id;
	d.reply_to = in->reply_to;
	d.app_id = in->app_id;
	d.timestamp = in->timestamp;
	d.redelivered = in->redelivered;
	d.stream_offset = in->stream_offset;
	bus->stats.delivered++;
	if (in->consumer->stream && in->stream_offset >= 0)
		in->consumer->next_offset = in->stream_offset + 1;
	if (bus->in_drain && bus->corked++ == 0)
		cork(bus, true);
	disp = in->consumer->handler(bus, &d, in->consumer->arg);
	/* The handler may have lost or closed the connection. */
	if (bus->conn == conn && bus->state == ST_UP)
		settle(bus, in, disp);
}

static void
handle_deliver(struct bus *bus, const amqp_basic_deliver_t *m)
{
	struct inbound *in = &bus->in;

	memset(in, 0, sizeof(*in));
	in->active = true;
	in->tag = m->delivery_tag;
	in->redelivered = m->redelivered;
	in->consumer = consumer_by_tag(bus, m->consumer_tag);
	copy_prop(in->exchange, m->exchange, true);
	copy_prop(in->routing_key, m->routing_key, true);
}

/* The x-stream-offset header a stream puts on each delivery, or -1. */
static int64_t
stream_offset_of(const amqp_table_t *h)
{
	for (int i = 0; i < h->num_entries; i++) {
		const amqp_table_entry_t *e = &h->entries[i];

		if (e->key.len != strlen("x-stream-offset") ||
		    memcmp(e->key.bytes, "x-stream-offset", e->key.len) != 0)
			continue;
		if (e->value.kind == AMQP_FIELD_KIND_I64 &&
		    e->value.value.i64 >= 0)
			return e->value.value.i64;
		if (e->value.kind == AMQP_FIELD_KIND_U64 &&
		    e->value.value.u64 <= INT64_MAX)
			return (int64_t)e->value.value.u64;
		return -1;
	}
	return -1;
}

static int
handle_header(struct bus *bus, const amqp_frame_t *f)
{
	struct inbound *in = &bus->in;
	const amqp_basic_properties_t *p = f->payload.properties.decoded;
	uint64_t size = f->payload.properties.body_size;
	amqp_flags_t fl = p->_flags;

	copy_prop(in->content_type, p->content_type,
	    fl & AMQP_BASIC_CONTENT_TYPE_FLAG);
	copy_prop(in->type, p->type, fl & AMQP_BASIC_TYPE_FLAG);
	copy_prop(in->message_id, p->message_id,
	    fl & AMQP_BASIC_MESSAGE_ID_FLAG);
	copy_prop(in->correlation_id, p->correlation_id,
	    fl & AMQP_BASIC_CORRELATION_ID_FLAG);
	copy_prop(in->reply_to, p->reply_to, fl & AMQP_BASIC_REPLY_TO_FLAG);
	copy_prop(in->app_id, p->app_id, fl & AMQP_BASIC_APP_ID_FLAG);
	in->timestamp = (fl & AMQP_BASIC_TIMESTAMP_FLAG) ? p->timestamp : 0;
	in->stream_offset = -1;
	if (fl & AMQP_BASIC_HEADERS_FLAG)
		in->stream_offset = stream_offset_of(&p->headers);
	in->size = 0;
	if (size > bus->max_body) {
		in->discard = true;
		in->size = size;
	} else {
		if (size > bus->body_cap) {
			uint8_t *b = realloc(bus->body, size);

			if (b == NULL)
				return -ENOMEM;
			bus->body = b;
			bus->body_cap = size;
		}
		in->size = size;
	}
	if (size == 0)
		deliver(bus);
	return 0;
}

static int
handle_body(struct bus *bus, const amqp_frame_t *f)
{
	struct inbound *in = &bus->in;
	amqp_bytes_t b = f->payload.body_fragment;

	if (b.len > in->size - in->got)
		return -EPROTO;
	if (!in->discard)
		memcpy(bus->body + in->got, b.bytes, b.len);
	in->got += b.len;
	if (in->got == in->size)
		deliver(bus);
	return 0;
}

static void
handle_method(struct bus *bus, const amqp_frame_t *f)
{
	amqp_connection_state_t c = bus->conn->amqp;
	const amqp_method_t *m = &f->payload.method;

	switch (m->id) {
	case AMQP_BASIC_DELIVER_METHOD:
		handle_deliver(bus, m->decoded);
		break;
	case AMQP_BASIC_ACK_METHOD: {
		const amqp_basic_ack_t *a = m->decoded;

		bus_handle_confirm(bus, a->delivery_tag, a->multiple, 0);
		break;
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *a = m->decoded;

		bus_handle_confirm(bus, a->delivery_tag, a->multiple, -EIO);
		break;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		const amqp_connection_close_t *x = m->decoded;
		amqp_connection_close_ok_t ok = { 0 };

		amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		bus_fail(bus, "connection closed by broker: %u %.*s",
		    x->reply_code, (int)x->reply_text.len,
		    (const char *)x->reply_text.bytes);
		break;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		const amqp_channel_close_t *x = m->decoded;
		amqp_channel_close_ok_t ok = { 0 };

		amqp_send_method(c, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
		    &ok);
		bus_fail(bus, "channel %u closed by broker: %u %.*s",
		    f->channel, x->reply_code, (int)x->reply_text.len,
		    (const char *)x->reply_text.bytes);
		break;
	}
	case AMQP_BASIC_CANCEL_METHOD:
		/* The broker dropped a consumer (its queue was deleted):
		 * reconnecting declares the queue again. */
		bus_fail(bus, "consumer cancelled by broker");
		break;
	case AMQP_CONNECTION_BLOCKED_METHOD: {
		const amqp_connection_blocked_t *x = m->decoded;

		log_warnx("bus: %s blocks publishing: %.*s; messages wait in "
		    "the outbox", bus_current_url(bus), (int)x->reason.len,
		    (const char *)x->reason.bytes);
		bus_set_blocked(bus, true);
		break;
	}
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		log_info("bus: %s publishing again", bus_current_url(bus));
		bus_set_blocked(bus, false);
		break;
	default:
		/* declare-ok, bind-ok, unbind-ok ... */
		break;
	}
}

static void
handle_frame(struct bus *bus, const amqp_frame_t *f)
{
	int r = 0;

	switch (f->frame_type) {
	case AMQP_FRAME_METHOD:
		if (bus->in.active && f->channel == CH_SUB)
			r = -EPROTO;
		else
			handle_method(bus, f);
		break;
	case AMQP_FRAME_HEADER:
		if (!bus->in.active || f->channel != CH_SUB)
			r = -EPROTO;
		else
			r = handle_header(bus, f);
		break;
	case AMQP_FRAME_BODY:
		if (!bus->in.active || f->channel != CH_SUB)
			r = -EPROTO;
		else
			r = handle_body(bus, f);
		break;
	default:
		break;
	}
	if (r < 0)
		bus_fail(bus, "unexpected frame type %u on channel %u: %s",
		    f->frame_type, f->channel, strerror(-r));
}

/* Read every frame there is, then return: librabbitmq buffers frames
 * itself, so the socket alone does not say when it is empty. */
void
bus_drain(struct bus *bus)
{
	struct conn *conn = bus->conn;
	struct timeval zero = { 0, 0 };

	bus->in_drain = true;
	while (bus->conn == conn && bus->state == ST_UP) {
		amqp_frame_t f;
		int r = amqp_simple_wait_frame_noblock(conn->amqp, &f, &zero);

		if (r == AMQP_STATUS_TIMEOUT)
			break;
		if (r != AMQP_STATUS_OK) {
			bus_fail(bus, "reading: %s", amqp_error_string2(r));
			break;
		}
		handle_frame(bus, &f);
		if (bus->corked >= CORK_DELIVERIES && bus->conn == conn) {
			cork(bus, false);
			cork(bus, true);
			bus->corked = 1;
		}
	}
	if (bus->conn == conn && bus->state == ST_UP) {
		int r = bus_ack_flush(bus);

		if (r != AMQP_STATUS_OK)
			bus_fail(bus, "acking: %s", amqp_error_string2(r));
		else
			amqp_maybe_release_buffers(conn->amqp);
	}
	if (bus->corked > 0 && bus->conn == conn)
		cork(bus, false);
	bus->corked = 0;
	bus->in_drain = false;
	if (bus->closing && bus->state == ST_UP)
		bus_flush(bus);
}

void
bus_poll_cb(uv_poll_t *h, int status, int events)
{
	struct conn *conn = h->data;
	struct bus *bus = conn->bus;

	if (bus->conn != conn || bus->state != ST_UP)
		return;
	if (status < 0) {
		bus_fail(bus, "socket: %s", uv_strerror(status));
		return;
	}
	bus_drain(bus);
}

/*
 * Periodic work: librabbitmq sends heartbeats and notices missed ones only
 * from its read path, which the poll alone calls only when bytes arrive.
 */
void
bus_tick_cb(uv_timer_t *t)
{
	struct bus *bus = t->data;
	const struct outmsg *oldest;

	if (bus->state == ST_UP)
		bus_drain(bus);
	/* Confirms can come out of order; the head of the unconfirmed
	 * queue is the oldest one still waiting. A broker that blocks
	 * publishing may hold confirms too: not counted then. */
	oldest = bus->unconfirmed.head;
	if (bus->state == ST_UP && !bus->blocked && oldest != NULL &&
	    mono_ms(bus->loop) - oldest->sent_ms >= bus->confirm_timeout_ms) {
		bus->stats.confirm_timeouts++;
		bus_fail(bus, "no publisher confirm for %u ms (%zu waiting): "
		    "connecting again, they are sent again",
		    bus->confirm_timeout_ms, bus->unconfirmed.count);
		return;
	}
	if (bus->closing && bus->state != ST_CLOSING && bus->job == NULL &&
	    bus_flush_done(bus))
		bus_finish_close(bus);
}
