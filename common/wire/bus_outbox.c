/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's publishing: the outbox kept while the broker is away, the
 * window of unconfirmed messages, publisher confirms, messages that
 * supersede the one waiting with their key, connection.blocked.
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
	free(m->skey);
	free(m->body);
	free(m);
}

/* ---- keyed messages waiting in the outbox ---- */

static size_t
key_hash(const char *k)
{
	uint64_t h = 1469598103934665603ull;

	for (; *k != '\0'; k++)
		h = (h ^ (unsigned char)*k) * 1099511628211ull;
	return (size_t)h;
}

static struct outmsg **
keyed_slot(struct keyed *t, const char *key)
{
	struct outmsg **pp = &t->slots[key_hash(key) & (t->cap - 1)];

	while (*pp != NULL && strcmp((*pp)->skey, key) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static struct outmsg *
keyed_find(const struct keyed *t, const char *key)
{
	if (t->cap == 0)
		return NULL;
	return *keyed_slot((struct keyed *)t, key);
}

static void
keyed_remove(struct keyed *t, struct outmsg *m)
{
	struct outmsg **pp;

	if (m->skey == NULL || t->cap == 0)
		return;
	pp = keyed_slot(t, m->skey);
	if (*pp == m) {
		*pp = m->hnext;
		m->hnext = NULL;
		t->count--;
	}
}

/* Returns 0 or -ENOMEM; the key must not be in t. */
static int
keyed_add(struct keyed *t, struct outmsg *m)
{
	struct outmsg **pp;

	if (t->count + 1 > t->cap / 2) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct outmsg **slots = calloc(cap, sizeof(*slots));

		if (slots == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < t->cap; i++)
			for (struct outmsg *o = t->slots[i], *next; o != NULL;
			    o = next) {
				next = o->hnext;
				o->hnext = slots[key_hash(o->skey) &
				    (cap - 1)];
				slots[key_hash(o->skey) & (cap - 1)] = o;
			}
		free(t->slots);
		t->slots = slots;
		t->cap = cap;
	}
	pp = keyed_slot(t, m->skey);
	m->hnext = NULL;
	*pp = m;
	t->count++;
	return 0;
}

void
bus_outbox_free(struct bus *bus)
{
	free(bus->keyed.slots);
	memset(&bus->keyed, 0, sizeof(bus->keyed));
}

bool
bus_pending(const struct bus *bus, const char *supersede_key)
{
	return bus != NULL && supersede_key != NULL &&
	    keyed_find(&bus->keyed, supersede_key) != NULL;
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

/* Take m, which is in q, out of it. */
static void
msgq_remove(struct msgq *q, struct outmsg *m)
{
	struct outmsg **pp = &q->head, *prev = NULL;

	while (*pp != m) {
		prev = *pp;
		pp = &prev->next;
	}
	*pp = m->next;
	if (q->tail == m)
		q->tail = prev;
	q->count--;
	q->bytes -= m->len + MSG_OVERHEAD;
	m->next = NULL;
}

/* Put every message of src, in order, in front of dst. */
static void
msgq_prepend(struct msgq *dst, struct msgq *src)
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
	if (status == 0) {
		bus->stats.confirmed++;
		mx_hist_observe(&bus->stats.confirm_s,
		    (double)(uv_hrtime() - m->queued_ns) / 1e9);
	} else if (status == -ESTALE)
		bus->stats.superseded++;
	if (m->cb != NULL)
		m->cb(bus, status, m->arg);
	outmsg_free(m);
}

/*
 * basic.nack for m: the broker did not take it. A message is sent again
 * up to BUS_NACK_RETRIES times, on a new connection (the caller drops
 * this one): RabbitMQ 3.10 can go on refusing every publish to a quorum
 * queue on a channel opened while the queue had no leader. Returns
 * whether m stays (in the unconfirmed queue, for bus_outbox_requeue()).
 */
static bool
nack_keep(struct bus *bus, struct outmsg *m)
{
	bus->stats.nacked++;
	return ++m->nacks <= BUS_NACK_RETRIES;
}

/* basic.ack or basic.nack from the broker on the publishing channel. */
void
bus_handle_confirm(struct bus *bus, uint64_t tag, bool multiple, int status)
{
	struct msgq *q = &bus->unconfirmed, keep = { 0 };
	unsigned nacked = 0;

	if (multiple) {
		while (q->head != NULL && q->head->tag <= tag) {
			struct outmsg *m = bus_msgq_pop(q);

			if (status != 0 && (nacked++, nack_keep(bus, m)))
				msgq_push(&keep, m);
			else
				bus_confirm_done(bus, m, status);
		}
		msgq_prepend(q, &keep);
	} else {
		for (struct outmsg *m = q->head; m != NULL; m = m->next) {
			if (m->tag != tag)
				continue;
			if (status != 0 && (nacked++, nack_keep(bus, m)))
				break;
			msgq_remove(q, m);
			bus_confirm_done(bus, m, status);
			break;
		}
	}
	if (nacked > 0) {
		bus_fail(bus, "the broker refused %u message%s (basic.nack): "
		    "connecting again, they are sent again", nacked,
		    nacked == 1 ? "" : "s");
		return;
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
	while (bus->state == ST_UP && !bus->blocked &&
	    bus->outbox.head != NULL) {
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
		keyed_remove(&bus->keyed, m);
		m->tag = ++bus->next_tag;
		m->sent_ms = mono_ms(bus->loop);
		msgq_push(&bus->unconfirmed, m);
	}
	if (bus->closing && bus->outbox.head == NULL &&
	    bus->unconfirmed.head == NULL && bus->state != ST_CLOSING)
		bus_finish_close(bus);
}

/*
 * m's key has a message waiting in the outbox: m takes its place (its
 * turn in the queue, so a level goes out no later than the one it
 * replaces) and the older one is superseded. The two swap contents, so
 * the queue and the table keep their links. Returns whether it did.
 */
static bool
supersede(struct bus *bus, struct outmsg *m)
{
	struct outmsg *slot = keyed_find(&bus->keyed, m->skey), tmp;

	if (slot == NULL)
		return false;
	bus->outbox.bytes += m->len;
	bus->outbox.bytes -= slot->len;
	tmp = *slot;
	*slot = *m;
	slot->next = tmp.next;
	slot->hnext = tmp.hnext;
	*m = tmp;
	m->next = NULL;
	m->hnext = NULL;
	bus_confirm_done(bus, m, -ESTALE);	/* frees the older one */
	bus_flush(bus);
	return true;
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
	if (msg->supersede_key != NULL && (*msg->supersede_key == '\0' ||
	    strlen(msg->supersede_key) >= PROP_MAX))
		return -EINVAL;
	if (msg->supersede_key == NULL &&
	    bus->outbox.count + bus->unconfirmed.count >= bus->outbox_max) {
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
	m->skey = xstrdup(msg->supersede_key);
	m->body = malloc(msg->len > 0 ? msg->len : 1);
	if (m->exchange == NULL || m->key == NULL || m->message_id == NULL ||
	    !dup_ok(msg->content_type, m->content_type) ||
	    !dup_ok(msg->type, m->type) ||
	    !dup_ok(msg->correlation_id, m->correlation_id) ||
	    !dup_ok(msg->reply_to, m->reply_to) ||
	    !dup_ok(msg->supersede_key, m->skey) || m->body == NULL) {
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
	m->queued_ns = uv_hrtime();
	bus->stats.published++;
	if (m->skey != NULL && supersede(bus, m))
		return 0;
	if (m->skey != NULL && keyed_add(&bus->keyed, m) < 0) {
		bus->stats.published--;
		outmsg_free(m);
		return -ENOMEM;
	}
	msgq_push(&bus->outbox, m);
	bus_flush(bus);
	return 0;
}

/*
 * connection.blocked and unblocked: while blocked nothing is sent (the
 * broker would stop reading the socket, and a publish could block the
 * loop); the outbox keeps it, keyed messages superseding each other.
 */
void
bus_set_blocked(struct bus *bus, bool blocked)
{
	uint64_t now = mono_ms(bus->loop);

	if (blocked == bus->blocked)
		return;
	bus->blocked = blocked;
	if (blocked) {
		bus->stats.blocked++;
		bus->blocked_since = now;
		return;
	}
	bus->stats.blocked_ms += now - bus->blocked_since;
	/* The confirm timeout counts from here for what waited. */
	for (struct outmsg *m = bus->unconfirmed.head; m != NULL; m = m->next)
		if (m->sent_ms < now)
			m->sent_ms = now;
	if (bus->state == ST_UP)
		bus_flush(bus);
}

/*
 * After a connection is lost, what it had not confirmed goes back in
 * front of the outbox, in order. A keyed one whose key has a newer
 * message waiting is superseded by it rather than sent again.
 */
void
bus_outbox_requeue(struct bus *bus)
{
	struct msgq back = { 0 };
	struct outmsg *m;

	while ((m = bus_msgq_pop(&bus->unconfirmed)) != NULL) {
		if (m->skey != NULL && keyed_find(&bus->keyed, m->skey) !=
		    NULL) {
			bus_confirm_done(bus, m, -ESTALE);
			continue;
		}
		if (m->skey != NULL && keyed_add(&bus->keyed, m) < 0) {
			/* Out of memory: sent again, just not superseded. */
			free(m->skey);
			m->skey = NULL;
		}
		msgq_push(&back, m);
	}
	msgq_prepend(&bus->outbox, &back);
}
