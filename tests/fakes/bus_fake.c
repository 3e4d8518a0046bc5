/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory bus (bus_fake.h): every function of common/wire/bus.h, on
 * the test's loop, with the published messages kept for the test and the
 * consumers reachable from it. No socket, no librabbitmq.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_fake.h"

#define MAX_BODY_DEFAULT	(4u << 20)

struct consumer {
	char *queue;
	bus_handler_cb handler;
	void *arg;
	bool always_ack;	/* no_ack, or a stream */
};

struct pending {
	bus_confirm_cb cb;
	void *arg;
};

/* A list of names (exchanges, queues, bindings). */
struct names {
	char **v;
	size_t n;
};

struct bus {
	struct bus *next;	/* the open buses */
	uv_loop_t *loop;
	char *app_id;
	size_t max_body;
	void (*state_cb)(struct bus *bus, bool up, const char *reason,
	    void *arg);
	void *state_arg;
	struct names exchanges, queues, bindings;
	struct consumer *cons;
	size_t ncons;
	struct pending *pend;	/* published, not confirmed yet */
	size_t npend;
	uint64_t ids;
	uv_timer_t timer;	/* the next loop turn: connect, confirm */
	bool started, up, closing;
	bus_close_cb close_cb;
	void *close_arg;
	struct bus_stats stats;
};

static struct {
	struct bus *buses;	/* open */
	bool down;		/* bus_fake_set_up(false) */
	bool hold;		/* bus_fake_hold(true) */
	struct bus_fake_msg *msgs;
	size_t n, cap;
} F;

static char *
dup_or_empty(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		abort();	/* a test without memory cannot go on */
	return d;
}

static int
names_add(struct names *l, const char *name)
{
	char **v;

	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return 0;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	l->v = v;
	l->v[l->n] = strdup(name);
	if (l->v[l->n] == NULL)
		return -ENOMEM;
	l->n++;
	return 0;
}

static bool
names_has(const struct names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return true;
	return false;
}

static int
names_del(struct names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++) {
		if (strcmp(l->v[i], name) == 0) {
			free(l->v[i]);
			l->v[i] = l->v[--l->n];
			return 0;
		}
	}
	return -ENOENT;
}

static void
names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

/* Add or remove (op) a binding, kept as one name: "queue\nexchange\nkey". */
static int
binding_op(struct bus *bus, const char *queue, const char *exchange,
    const char *key, int (*op)(struct names *l, const char *name))
{
	char *b;
	int r;

	if (bus == NULL || queue == NULL || exchange == NULL)
		return -EINVAL;
	if (asprintf(&b, "%s\n%s\n%s", queue, exchange, key != NULL ? key :
	    "") < 0)
		return -ENOMEM;
	r = op(&bus->bindings, b);
	free(b);
	return r;
}

static void confirm_all(struct bus *bus, int status);

static void
timer_cb(uv_timer_t *t)
{
	struct bus *bus = t->data;

	if (bus->closing)
		return;
	if (bus->started && !bus->up && !F.down) {
		bus->up = true;
		bus->stats.connects++;
		if (bus->state_cb != NULL)
			bus->state_cb(bus, true, NULL, bus->state_arg);
	}
	if (bus->up && !F.hold)
		confirm_all(bus, 0);
}

/* Run timer_cb on the next loop turn. */
static void
kick(struct bus *bus)
{
	if (!bus->closing)
		uv_timer_start(&bus->timer, timer_cb, 0, 0);
}

static void
confirm_all(struct bus *bus, int status)
{
	struct pending *p = bus->pend;
	size_t n = bus->npend;

	/* Sent: nothing of this bus waits any more. */
	for (size_t i = 0; i < F.n; i++)
		if (F.msgs[i].bus == bus)
			F.msgs[i].held = false;

	/* A confirm callback may publish: those wait for the next turn. */
	bus->pend = NULL;
	bus->npend = 0;
	for (size_t i = 0; i < n; i++) {
		if (status == 0)
			bus->stats.confirmed++;
		p[i].cb(bus, status, p[i].arg);
	}
	free(p);
}

struct bus *
bus_new(uv_loop_t *loop, const struct bus_config *config)
{
	struct bus *bus;

	if (loop == NULL || config == NULL) {
		errno = EINVAL;
		return NULL;
	}
	bus = calloc(1, sizeof(*bus));
	if (bus == NULL)
		return NULL;
	bus->loop = loop;
	bus->app_id = dup_or_empty(config->app_id);
	bus->max_body = config->max_body ? config->max_body :
	    MAX_BODY_DEFAULT;
	bus->state_cb = config->state_cb;
	bus->state_arg = config->state_arg;
	uv_timer_init(loop, &bus->timer);
	bus->timer.data = bus;
	bus->next = F.buses;
	F.buses = bus;
	return bus;
}

int
bus_declare_exchange(struct bus *bus, const char *name, const char *type,
    unsigned flags)
{
	if (bus == NULL || name == NULL || type == NULL)
		return -EINVAL;
	return names_add(&bus->exchanges, name);
}

int
bus_declare_queue(struct bus *bus, const char *name,
    const struct bus_queue_opts *opts)
{
	if (bus == NULL || name == NULL)
		return -EINVAL;
	return names_add(&bus->queues, name);
}

int
bus_bind_args(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key, const char *const *args)
{
	return binding_op(bus, queue, exchange, routing_key, names_add);
}

int
bus_bind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key)
{
	return bus_bind_args(bus, queue, exchange, routing_key, NULL);
}

int
bus_bind_exchange(struct bus *bus, const char *destination,
    const char *source, const char *routing_key)
{
	if (bus == NULL || destination == NULL || source == NULL)
		return -EINVAL;
	return 0;
}

int
bus_unbind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key)
{
	return binding_op(bus, queue, exchange, routing_key, names_del);
}

static int
consumer_add(struct bus *bus, const char *queue, bus_handler_cb handler,
    void *arg, bool always_ack)
{
	struct consumer *c;

	if (bus == NULL || queue == NULL || handler == NULL)
		return -EINVAL;
	c = realloc(bus->cons, (bus->ncons + 1) * sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	bus->cons = c;
	c = &bus->cons[bus->ncons];
	c->queue = strdup(queue);
	if (c->queue == NULL)
		return -ENOMEM;
	c->handler = handler;
	c->arg = arg;
	c->always_ack = always_ack;
	bus->ncons++;
	return 0;
}

int
bus_consume(struct bus *bus, const char *queue, bool no_ack,
    bus_handler_cb handler, void *arg)
{
	return consumer_add(bus, queue, handler, arg, no_ack);
}

int
bus_consume_stream(struct bus *bus, const char *queue,
    enum bus_stream_from from, uint64_t time_s, bus_handler_cb handler,
    void *arg)
{
	return consumer_add(bus, queue, handler, arg, true);
}

int
bus_start(struct bus *bus)
{
	if (bus->started)
		return -EALREADY;
	bus->started = true;
	kick(bus);
	return 0;
}

static bool
exchange_declared(const struct bus *bus, const char *name)
{
	return name[0] == '\0' || strncmp(name, "amq.", 4) == 0 ||
	    names_has(&bus->exchanges, name);
}

static void
no_confirm_cb(struct bus *bus, int status, void *arg)
{
	(void)bus;
	(void)status;
	(void)arg;
}

/* The message of bus with key that waits, or NULL. */
static struct bus_fake_msg *
held(const struct bus *bus, const char *key)
{
	for (size_t i = 0; key != NULL && i < F.n; i++)
		if (F.msgs[i].held && F.msgs[i].bus == bus &&
		    strcmp(F.msgs[i].supersede_key, key) == 0)
			return &F.msgs[i];
	return NULL;
}

static void
msg_clear(struct bus_fake_msg *m)
{
	free(m->exchange);
	free(m->routing_key);
	free(m->content_type);
	free(m->type);
	free(m->message_id);
	free(m->correlation_id);
	free(m->reply_to);
	free(m->app_id);
	free(m->supersede_key);
	free(m->body);
	memset(m, 0, sizeof(*m));
}

int
bus_publish(struct bus *bus, const struct bus_msg *msg, bus_confirm_cb cb,
    void *arg)
{
	struct bus_fake_msg *old;
	struct bus_fake_msg *m;
	struct pending *p;
	char id[64];

	if (bus == NULL)
		return -EINVAL;
	if (bus->closing)
		return -ESHUTDOWN;
	if (msg == NULL || msg->exchange == NULL ||
	    (msg->body == NULL && msg->len > 0) ||
	    !exchange_declared(bus, msg->exchange))
		return -EINVAL;
	if (F.n == F.cap) {
		size_t cap = F.cap ? F.cap * 2 : 64;

		m = realloc(F.msgs, cap * sizeof(*m));
		if (m == NULL)
			return -ENOMEM;
		F.msgs = m;
		F.cap = cap;
	}
	old = bus->up && !F.hold ? NULL : held(bus, msg->supersede_key);
	if (old != NULL) {
		/* Supersede: the newer one takes its place and its confirm;
		 * the older one's callback hears it was replaced. */
		size_t pend = old->pend;
		struct pending was = bus->pend[pend];

		msg_clear(old);
		bus->pend[pend].cb = cb != NULL ? cb : no_confirm_cb;
		bus->pend[pend].arg = arg;
		bus->stats.superseded++;
		was.cb(bus, -ESTALE, was.arg);
		m = old;
		m->held = true;
		m->pend = pend;
		goto fill;
	}
	if (cb == NULL && msg->supersede_key != NULL && (!bus->up || F.hold))
		cb = no_confirm_cb;
	if (cb != NULL) {
		p = realloc(bus->pend, (bus->npend + 1) * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		bus->pend = p;
		p[bus->npend].cb = cb;
		p[bus->npend].arg = arg;
		bus->npend++;
	}
	m = &F.msgs[F.n++];
	memset(m, 0, sizeof(*m));
	m->held = (!bus->up || F.hold) && msg->supersede_key != NULL;
	m->pend = bus->npend - 1;
fill:
	snprintf(id, sizeof(id), "fake-%llu", (unsigned long long)++bus->ids);
	m->bus = bus;
	m->supersede_key = dup_or_empty(msg->supersede_key);
	m->exchange = dup_or_empty(msg->exchange);
	m->routing_key = dup_or_empty(msg->routing_key);
	m->content_type = dup_or_empty(msg->content_type);
	m->type = dup_or_empty(msg->type);
	m->message_id = dup_or_empty(msg->message_id != NULL ?
	    msg->message_id : id);
	m->correlation_id = dup_or_empty(msg->correlation_id);
	m->reply_to = dup_or_empty(msg->reply_to);
	m->app_id = dup_or_empty(bus->app_id);
	m->body = malloc(msg->len > 0 ? msg->len : 1);
	if (m->body == NULL)
		abort();
	if (msg->len > 0)
		memcpy(m->body, msg->body, msg->len);
	m->len = msg->len;
	m->persistent = msg->persistent;
	bus->stats.published++;
	if (bus->up)
		kick(bus);
	return 0;
}

void
bus_get_stats(const struct bus *bus, struct bus_stats *ret_stats)
{
	*ret_stats = bus->stats;
	ret_stats->outbox = bus->up ? 0 : bus->npend;
	ret_stats->unconfirmed = bus->up ? bus->npend : 0;
	ret_stats->up = bus->up;
}

bool
bus_is_up(const struct bus *bus)
{
	return bus != NULL && bus->up;
}

/* While the fake is down, what was published waits. */
bool
bus_pending(const struct bus *bus, const char *supersede_key)
{
	return held(bus, supersede_key) != NULL;
}

const char *
bus_current_url(const struct bus *bus)
{
	(void)bus;
	return "amqp://fake";
}

static void
closed_cb(uv_handle_t *h)
{
	struct bus *bus = h->data;
	bus_close_cb cb = bus->close_cb;
	void *arg = bus->close_arg;

	/* The broker confirmed what it had, unless it was unreachable. */
	confirm_all(bus, bus->up ? 0 : -ECANCELED);
	names_free(&bus->exchanges);
	names_free(&bus->queues);
	names_free(&bus->bindings);
	for (size_t i = 0; i < bus->ncons; i++)
		free(bus->cons[i].queue);
	free(bus->cons);
	free(bus->app_id);
	free(bus);
	if (cb != NULL)
		cb(arg);
}

void
bus_close(struct bus *bus, unsigned flush_ms, bus_close_cb cb, void *arg)
{
	struct bus **pp;

	if (bus == NULL) {
		if (cb != NULL)
			cb(arg);
		return;
	}
	if (bus->closing)
		return;
	bus->closing = true;
	bus->close_cb = cb;
	bus->close_arg = arg;
	for (pp = &F.buses; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == bus) {
			*pp = bus->next;
			break;
		}
	}
	uv_close((uv_handle_t *)&bus->timer, closed_cb);
}

/* ---- the test's side ---- */

size_t
bus_fake_count(void)
{
	return F.n;
}

const struct bus_fake_msg *
bus_fake_msg(size_t i)
{
	return i < F.n ? &F.msgs[i] : NULL;
}

static const struct consumer *
consumer_find(const char *queue, struct bus **ret_bus)
{
	for (struct bus *b = F.buses; b != NULL; b = b->next) {
		for (size_t i = 0; i < b->ncons; i++) {
			if (strcmp(b->cons[i].queue, queue) == 0) {
				*ret_bus = b;
				return &b->cons[i];
			}
		}
	}
	return NULL;
}

bool
bus_fake_consumed(const char *queue)
{
	struct bus *b;

	return consumer_find(queue, &b) != NULL;
}

bool
bus_fake_queue_declared(const char *queue)
{
	for (struct bus *b = F.buses; b != NULL; b = b->next)
		if (names_has(&b->queues, queue))
			return true;
	return false;
}

int
bus_fake_deliver(const char *queue, const struct bus_msg *m,
    enum bus_disposition *ret_disp)
{
	struct bus_delivery d = { 0 };
	const struct consumer *c;
	enum bus_disposition disp;
	struct bus *bus;

	if (m == NULL || (m->body == NULL && m->len > 0))
		return -EINVAL;
	c = consumer_find(queue, &bus);
	if (c == NULL)
		return -ENOENT;
	if (!bus->up)
		return -ENOTCONN;
	d.queue = queue;
	d.exchange = m->exchange != NULL ? m->exchange : "";
	d.routing_key = m->routing_key != NULL ? m->routing_key : "";
	d.body = m->body;
	d.len = m->len;
	d.content_type = m->content_type != NULL ? m->content_type : "";
	d.type = m->type != NULL ? m->type : "";
	d.message_id = m->message_id != NULL ? m->message_id : "";
	d.correlation_id = m->correlation_id != NULL ? m->correlation_id :
	    "";
	d.reply_to = m->reply_to != NULL ? m->reply_to : "";
	d.app_id = "";
	d.timestamp = m->timestamp ? m->timestamp : (uint64_t)time(NULL);
	d.stream_offset = -1;
	if (m->len > bus->max_body) {
		/* Dead-lettered unread, as the real bus does. */
		bus->stats.oversized++;
		bus->stats.rejected++;
		disp = BUS_REJECT;
	} else {
		/* The handler may add consumers (and move c): read it first. */
		bool always_ack = c->always_ack;

		bus->stats.delivered++;
		disp = c->handler(bus, &d, c->arg);
		if (always_ack)
			disp = BUS_ACK;
		if (disp == BUS_ACK)
			bus->stats.acked++;
		else if (disp == BUS_REJECT)
			bus->stats.rejected++;
		else
			bus->stats.requeued++;
	}
	if (ret_disp != NULL)
		*ret_disp = disp;
	return 0;
}

void
bus_fake_hold(bool hold)
{
	F.hold = hold;
	for (struct bus *b = F.buses; b != NULL && !hold; b = b->next)
		if (b->up)
			kick(b);
}

void
bus_fake_set_up(bool up, const char *reason)
{
	F.down = !up;
	for (struct bus *b = F.buses; b != NULL; b = b->next) {
		if (!b->started || b->up == up)
			continue;
		b->up = up;
		if (up)
			b->stats.connects++;
		else
			b->stats.disconnects++;
		if (b->state_cb != NULL)
			b->state_cb(b, up, up ? NULL : reason, b->state_arg);
		if (up)
			kick(b);
	}
}

void
bus_fake_reset(void)
{
	for (size_t i = 0; i < F.n; i++)
		msg_clear(&F.msgs[i]);
	free(F.msgs);
	F.msgs = NULL;
	F.n = F.cap = 0;
	F.hold = false;
}
