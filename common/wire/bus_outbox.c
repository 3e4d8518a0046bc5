/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's publishing: the outbox kept while the broker is away, the
 * window of unconfirmed messages, publisher confirms.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "bus_int.h"
#include "log.h"

/* ---- messages in flight ---- */

static void
outmsg_free(struct outmsg *m)
{
	if (m == NULL)
		return;
	free(m->exchange);
	free(m->key);
	free(m->content_type);
	free(m->type);
	free(m->message_id);
	free(m->correlation_id);
	free(m->reply_to);
	free(m->body);
	free(m);
}

static void
msgq_push(struct msgq *q, struct outmsg *m)
{
	m->next = NULL;
	if (q->tail != NULL)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->count++;
	q->bytes += m->len + MSG_OVERHEAD;
}

struct outmsg *
bus_msgq_pop(struct msgq *q)
{
	struct outmsg *m = q->head;

	if (m == NULL)
		return NULL;
	q->head = m->next;
	if (q->head == NULL)
		q->tail = NULL;
	q->count--;
	q->bytes -= m->len + MSG_OVERHEAD;
	m->next = NULL;
	return m;
}

/* Put every message of src, in order, in front of dst. */
void
bus_msgq_prepend(struct msgq *dst, struct msgq *src)
{
	if (src->head == NULL)
		return;
	src->tail->next = dst->head;
	if (dst->tail == NULL)
		dst->tail = src->tail;
	dst->head = src->head;
	dst->count += src->count;
	dst->bytes += src->bytes;
	memset(src, 0, sizeof(*src));
}

void
bus_confirm_done(struct bus *bus, struct outmsg *m, int status)
{
	if (status == 0)
		bus->stats.confirmed++;
	else if (status == -EIO)
		bus->stats.nacked++;
	if (m->cb != NULL)
		m->cb(bus, status, m->arg);
	outmsg_free(m);
}

/* basic.ack or basic.nack from the broker on the publishing channel. */
void
bus_handle_confirm(struct bus *bus, uint64_t tag, bool multiple, int status)
{
	struct msgq *q = &bus->unconfirmed;

	if (multiple) {
		while (q->head != NULL && q->head->tag <= tag)
			bus_confirm_done(bus, bus_msgq_pop(q), status);
	} else {
		struct outmsg **pp = &q->head, *prev = NULL;

		for (; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
			struct outmsg *m = *pp;

			if (m->tag != tag)
				continue;
			*pp = m->next;
			if (q->tail == m)
				q->tail = prev;
			q->count--;
			q->bytes -= m->len + MSG_OVERHEAD;
			bus_confirm_done(bus, m, status);
			break;
		}
	}
	bus_flush(bus);
}

static int
send_one(struct bus *bus, struct outmsg *m)
{
	amqp_basic_properties_t p;
	char expiration[16];
	amqp_bytes_t body = { m->len, m->body };

	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
	    AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p.delivery_mode = m->persistent ? AMQP_DELIVERY_PERSISTENT :
	    AMQP_DELIVERY_NONPERSISTENT;
	p.timestamp = m->timestamp;
	p.app_id = bytes_of(bus->app_id);
	p.message_id = bytes_of(m->message_id);
	if (m->content_type != NULL) {
		p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
		p.content_type = bytes_of(m->content_type);
	}
	if (m->type != NULL) {
		p._flags |= AMQP_BASIC_TYPE_FLAG;
		p.type = bytes_of(m->type);
	}
	if (m->correlation_id != NULL) {
		p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
		p.correlation_id = bytes_of(m->correlation_id);
	}
	if (m->reply_to != NULL) {
		p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
		p.reply_to = bytes_of(m->reply_to);
	}
	if (m->expiration_ms > 0) {
		snprintf(expiration, sizeof(expiration), "%u",
		    m->expiration_ms);
		p._flags |= AMQP_BASIC_EXPIRATION_FLAG;
		p.expiration = amqp_cstring_bytes(expiration);
	}
	return amqp_basic_publish(bus->conn->amqp, CH_PUB,
	    bytes_of(m->exchange), bytes_of(m->key), 0, 0, &p, body);
}

/*
 * Send what the window allows. One message is always allowed when nothing
 * is in flight, so a message larger than the window still goes out.
 */
void
bus_flush(struct bus *bus)
{
	while (bus->state == ST_UP && bus->outbox.head != NULL) {
		struct outmsg *m = bus->outbox.head;
		int r;

		if (bus->unconfirmed.count > 0 &&
		    bus->unconfirmed.bytes + m->len + MSG_OVERHEAD >
		    bus->window)
			break;
		r = send_one(bus, m);
		if (r != AMQP_STATUS_OK) {
			bus_fail(bus, "publishing: %s", amqp_error_string2(r));
			return;
		}
		bus_msgq_pop(&bus->outbox);
		m->tag = ++bus->next_tag;
		msgq_push(&bus->unconfirmed, m);
	}
	if (bus->closing && bus->outbox.head == NULL &&
	    bus->unconfirmed.head == NULL && bus->state != ST_CLOSING)
		bus_finish_close(bus);
}

int
bus_publish(struct bus *bus, const struct bus_msg *msg, bus_confirm_cb cb,
    void *arg)
{
	struct outmsg *m;
	char id[64];

	if (bus == NULL)
		return -EINVAL;
	if (bus->closing)
		return -ESHUTDOWN;
	if (msg == NULL || msg->exchange == NULL ||
	    (msg->body == NULL && msg->len > 0) ||
	    !bus_exchange_declared(bus, msg->exchange))
		return -EINVAL;
	if (bus->outbox.count + bus->unconfirmed.count >= bus->outbox_max) {
		bus->stats.dropped++;
		return -ENOBUFS;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	if (msg->message_id == NULL)
		snprintf(id, sizeof(id), "%s-%llu", bus->id_prefix,
		    (unsigned long long)++bus->id_counter);
	m->exchange = strdup(msg->exchange);
	m->key = strdup(msg->routing_key != NULL ? msg->routing_key : "");
	m->message_id = strdup(msg->message_id != NULL ? msg->message_id :
	    id);
	m->content_type = xstrdup(msg->content_type);
	m->type = xstrdup(msg->type);
	m->correlation_id = xstrdup(msg->correlation_id);
	m->reply_to = xstrdup(msg->reply_to);
	m->body = malloc(msg->len > 0 ? msg->len : 1);
	if (m->exchange == NULL || m->key == NULL || m->message_id == NULL ||
	    !dup_ok(msg->content_type, m->content_type) ||
	    !dup_ok(msg->type, m->type) ||
	    !dup_ok(msg->correlation_id, m->correlation_id) ||
	    !dup_ok(msg->reply_to, m->reply_to) || m->body == NULL) {
		outmsg_free(m);
		return -ENOMEM;
	}
	if (msg->len > 0)
		memcpy(m->body, msg->body, msg->len);
	m->len = msg->len;
	m->timestamp = msg->timestamp ? msg->timestamp :
	    (uint64_t)time(NULL);
	m->persistent = msg->persistent;
	m->expiration_ms = msg->expiration_ms;
	m->cb = cb;
	m->arg = arg;
	msgq_push(&bus->outbox, m);
	bus->stats.published++;
	bus_flush(bus);
	return 0;
}
