/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's declarations: exchanges, queues, bindings and consumers,
 * kept to be replayed on every connect and sent at once when up.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "bus_int.h"
#include "log.h"

/* ---- declarations ---- */

static void
decl_free(struct decl *d)
{
	if (d == NULL)
		return;
	free(d->name);
	free(d->type);
	free(d->exchange);
	free(d->key);
	free(d->dlx);
	if (d->args != NULL) {
		for (char **a = d->args; *a != NULL; a++)
			free(*a);
		free(d->args);
	}
	free(d);
}

void
bus_decl_list_free(struct decl *d)
{
	while (d != NULL) {
		struct decl *next = d->next;

		decl_free(d);
		d = next;
	}
}

static char **
args_dup(const char *const *kv)
{
	size_t n = 0;
	char **copy;

	if (kv == NULL)
		return NULL;
	while (kv[n] != NULL)
		n++;
	if (n % 2 != 0) {
		errno = EINVAL;
		return NULL;
	}
	copy = calloc(n + 1, sizeof(*copy));
	if (copy == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(kv[i]);
		if (copy[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				free(copy[j]);
			free(copy);
			return NULL;
		}
	}
	return copy;
}

struct decl *
bus_decl_dup(const struct decl *src)
{
	struct decl *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->kind = src->kind;
	d->flags = src->flags;
	d->qopts = src->qopts;
	d->name = xstrdup(src->name);
	d->type = xstrdup(src->type);
	d->exchange = xstrdup(src->exchange);
	d->key = xstrdup(src->key);
	d->dlx = xstrdup(src->dlx);
	d->qopts.dead_letter_exchange = d->dlx;
	d->args = args_dup((const char *const *)src->args);
	if (!dup_ok(src->name, d->name) || !dup_ok(src->type, d->type) ||
	    !dup_ok(src->exchange, d->exchange) ||
	    !dup_ok(src->key, d->key) || !dup_ok(src->dlx, d->dlx) ||
	    (src->args != NULL && d->args == NULL)) {
		decl_free(d);
		return NULL;
	}
	return d;
}

static bool
decl_same_bind(const struct decl *d, const char *queue, const char *exchange,
    const char *key)
{
	return d->kind == DECL_BIND && strcmp(d->name, queue) == 0 &&
	    strcmp(d->exchange, exchange) == 0 && strcmp(d->key, key) == 0;
}

bool
bus_exchange_declared(const struct bus *bus, const char *name)
{
	if (name[0] == '\0' || strncmp(name, "amq.", 4) == 0)
		return true;
	for (const struct decl *d = bus->decls; d != NULL; d = d->next)
		if (d->kind == DECL_EXCHANGE && strcmp(d->name, name) == 0)
			return true;
	return false;
}

static void
arg_str(amqp_table_t *t, const char *key, const char *value)
{
	amqp_table_entry_t *e = &t->entries[t->num_entries++];

	e->key = amqp_cstring_bytes(key);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(value);
}

static void
arg_i64(amqp_table_t *t, const char *key, int64_t value)
{
	amqp_table_entry_t *e = &t->entries[t->num_entries++];

	e->key = amqp_cstring_bytes(key);
	e->value.kind = AMQP_FIELD_KIND_I64;
	e->value.value.i64 = value;
}

/* Fill a table of queue arguments; e has room for 9, age (the string
 * x-max-age points to) for "<n>s". */
static amqp_table_t
queue_args(const struct bus_queue_opts *o, amqp_table_entry_t *e,
    char *age, size_t age_size)
{
	amqp_table_t t = { 0, e };

	if (o->stream)
		arg_str(&t, "x-queue-type", "stream");
	else if (o->quorum)
		arg_str(&t, "x-queue-type", "quorum");
	/* Leaders spread over the cluster's nodes, not all on the node
	 * of whoever declared first (3.10 and later). */
	if (o->quorum)
		arg_str(&t, "x-queue-leader-locator", "balanced");
	if (o->max_age_s > 0) {
		snprintf(age, age_size, "%us", o->max_age_s);
		arg_str(&t, "x-max-age", age);
	}
	if (o->max_length_bytes > 0)
		arg_i64(&t, "x-max-length-bytes", (int64_t)o->max_length_bytes);
	if (o->max_segment_bytes > 0)
		arg_i64(&t, "x-stream-max-segment-size-bytes",
		    (int64_t)o->max_segment_bytes);
	if (o->max_length > 0)
		arg_i64(&t, "x-max-length", o->max_length);
	if (o->drop_head)
		arg_str(&t, "x-overflow", "drop-head");
	else if (o->reject_publish)
		arg_str(&t, "x-overflow", "reject-publish");
	if (o->message_ttl_ms > 0)
		arg_i64(&t, "x-message-ttl", o->message_ttl_ms);
	if (o->dead_letter_exchange != NULL)
		arg_str(&t, "x-dead-letter-exchange", o->dead_letter_exchange);
	if (o->expires_ms > 0)
		arg_i64(&t, "x-expires", o->expires_ms);
	return t;
}

/* Fill a table of string arguments from kv pairs; e has room for 8. */
static amqp_table_t
string_args(char **kv, amqp_table_entry_t *e)
{
	amqp_table_t t = { 0, e };

	for (; kv != NULL && kv[0] != NULL && t.num_entries < 8; kv += 2)
		arg_str(&t, kv[0], kv[1]);
	return t;
}

/*
 * Send one declaration on channel ch. With wait, as an RPC whose failure
 * is written to reason (handshake thread); without, with nowait on the
 * loop, where a failure arrives later as a channel.close (a queue with
 * keep_existing is then kept on the handshake that follows).
 */
int
bus_decl_send(amqp_connection_state_t c, const struct decl *d, bool wait,
    char *reason, size_t rsize, amqp_channel_t ch)
{
	amqp_table_entry_t entries[10];
	amqp_table_t args;
	char what[PROP_MAX + 64];
	char age[24];
	int r;

	switch (d->kind) {
	case DECL_EXCHANGE:
		snprintf(what, sizeof(what), "declaring exchange \"%s\"",
		    d->name);
		if (wait) {
			amqp_exchange_declare(c, ch,
			    amqp_cstring_bytes(d->name),
			    amqp_cstring_bytes(d->type), 0,
			    (d->flags & BUS_DURABLE) != 0, 0,
			    (d->flags & BUS_INTERNAL) != 0, amqp_empty_table);
		} else {
			amqp_exchange_declare_t m = {
				.exchange = amqp_cstring_bytes(d->name),
				.type = amqp_cstring_bytes(d->type),
				.durable = (d->flags & BUS_DURABLE) != 0,
				.internal = (d->flags & BUS_INTERNAL) != 0,
				.nowait = 1,
				.arguments = amqp_empty_table,
			};
			r = amqp_send_method(c, ch,
			    AMQP_EXCHANGE_DECLARE_METHOD, &m);
			goto sent;
		}
		break;
	case DECL_QUEUE:
		snprintf(what, sizeof(what), "declaring queue \"%s\"", d->name);
		args = queue_args(&d->qopts, entries, age, sizeof(age));
		if (wait) {
			amqp_queue_declare(c, ch,
			    amqp_cstring_bytes(d->name), 0, d->qopts.durable,
			    d->qopts.exclusive, d->qopts.auto_delete, args);
		} else {
			amqp_queue_declare_t m = {
				.queue = amqp_cstring_bytes(d->name),
				.durable = d->qopts.durable,
				.exclusive = d->qopts.exclusive,
				.auto_delete = d->qopts.auto_delete,
				.nowait = 1,
				.arguments = args,
			};
			r = amqp_send_method(c, ch,
			    AMQP_QUEUE_DECLARE_METHOD, &m);
			goto sent;
		}
		break;
	case DECL_BIND:
		snprintf(what, sizeof(what), "binding queue \"%s\" to \"%s\"",
		    d->name, d->exchange);
		args = string_args(d->args, entries);
		if (wait) {
			amqp_queue_bind(c, ch, amqp_cstring_bytes(d->name),
			    amqp_cstring_bytes(d->exchange),
			    amqp_cstring_bytes(d->key), args);
		} else {
			amqp_queue_bind_t m = {
				.queue = amqp_cstring_bytes(d->name),
				.exchange = amqp_cstring_bytes(d->exchange),
				.routing_key = amqp_cstring_bytes(d->key),
				.nowait = 1,
				.arguments = args,
			};
			r = amqp_send_method(c, ch, AMQP_QUEUE_BIND_METHOD,
			    &m);
			goto sent;
		}
		break;
	case DECL_XBIND:
		snprintf(what, sizeof(what), "binding exchange \"%s\" to "
		    "\"%s\"", d->name, d->exchange);
		if (wait) {
			amqp_exchange_bind(c, ch,
			    amqp_cstring_bytes(d->name),
			    amqp_cstring_bytes(d->exchange),
			    amqp_cstring_bytes(d->key), amqp_empty_table);
		} else {
			amqp_exchange_bind_t m = {
				.destination = amqp_cstring_bytes(d->name),
				.source = amqp_cstring_bytes(d->exchange),
				.routing_key = amqp_cstring_bytes(d->key),
				.nowait = 1,
				.arguments = amqp_empty_table,
			};
			r = amqp_send_method(c, ch,
			    AMQP_EXCHANGE_BIND_METHOD, &m);
			goto sent;
		}
		break;
	}
	{
		amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);

		if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
			bus_format_reply(reason, rsize, what, reply);
			return -EPROTO;
		}
		return 0;
	}
sent:
	if (r != AMQP_STATUS_OK) {
		snprintf(reason, rsize, "%s: %s", what, amqp_error_string2(r));
		return -EIO;
	}
	return 0;
}

/*
 * A stream consumer's x-stream-offset: where it was asked to start, or
 * after a reconnect the offset after the last message it was handed.
 */
static amqp_table_t
consume_args(const struct consumer *k, amqp_table_entry_t *e)
{
	amqp_table_t t = { 0, e };

	if (!k->stream)
		return amqp_empty_table;
	e[0].key = amqp_cstring_bytes("x-stream-offset");
	if (k->next_offset >= 0) {
		e[0].value.kind = AMQP_FIELD_KIND_I64;
		e[0].value.value.i64 = k->next_offset;
	} else if (k->from == BUS_STREAM_TIME) {
		e[0].value.kind = AMQP_FIELD_KIND_TIMESTAMP;
		e[0].value.value.u64 = k->time_s;
	} else {
		e[0].value.kind = AMQP_FIELD_KIND_UTF8;
		e[0].value.value.bytes = amqp_cstring_bytes(
		    k->from == BUS_STREAM_FIRST ? "first" : "next");
	}
	t.num_entries = 1;
	return t;
}

int
bus_consume_send(amqp_connection_state_t c, const struct consumer *k, bool wait,
    char *reason, size_t rsize)
{
	amqp_table_entry_t entries[1];
	amqp_table_t args = consume_args(k, entries);
	char what[PROP_MAX + 32];

	snprintf(what, sizeof(what), "consuming queue \"%s\"", k->queue);
	if (wait) {
		amqp_rpc_reply_t reply;

		amqp_basic_consume(c, CH_SUB, amqp_cstring_bytes(k->queue),
		    amqp_cstring_bytes(k->tag), 0, k->no_ack, 0, args);
		reply = amqp_get_rpc_reply(c);
		if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
			bus_format_reply(reason, rsize, what, reply);
			return -EPROTO;
		}
	} else {
		amqp_basic_consume_t m = {
			.queue = amqp_cstring_bytes(k->queue),
			.consumer_tag = amqp_cstring_bytes(k->tag),
			.no_ack = k->no_ack,
			.nowait = 1,
			.arguments = args,
		};
		int r = amqp_send_method(c, CH_SUB, AMQP_BASIC_CONSUME_METHOD,
		    &m);

		if (r != AMQP_STATUS_OK) {
			snprintf(reason, rsize, "%s: %s", what,
			    amqp_error_string2(r));
			return -EIO;
		}
	}
	return 0;
}

/* ---- topology API ---- */

/* Append d to the replayed topology and, when connected, send it now. */
static int
decl_add(struct bus *bus, struct decl *d)
{
	d->seq = bus->seq++;
	*bus->decls_tail = d;
	bus->decls_tail = &d->next;
	if (bus->state == ST_UP) {
		char reason[REASON_MAX];

		if (bus_decl_send(bus->conn->amqp, d, false, reason,
		    sizeof(reason), CH_PUB) < 0)
			bus_fail(bus, "%s", reason);
	}
	return 0;
}

int
bus_declare_exchange(struct bus *bus, const char *name, const char *type,
    unsigned flags)
{
	struct decl *d;

	if (bus == NULL || name == NULL || *name == '\0' || type == NULL ||
	    strlen(name) >= PROP_MAX || bus->closing)
		return -EINVAL;
	for (d = bus->decls; d != NULL; d = d->next)
		if (d->kind == DECL_EXCHANGE && strcmp(d->name, name) == 0)
			return 0;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->kind = DECL_EXCHANGE;
	d->flags = flags;
	d->name = strdup(name);
	d->type = strdup(type);
	if (d->name == NULL || d->type == NULL) {
		decl_free(d);
		return -ENOMEM;
	}
	return decl_add(bus, d);
}

int
bus_declare_queue(struct bus *bus, const char *name,
    const struct bus_queue_opts *opts)
{
	static const struct bus_queue_opts none;
	struct decl *d;

	if (bus == NULL || name == NULL || *name == '\0' ||
	    strlen(name) >= PROP_MAX || bus->closing)
		return -EINVAL;
	/* Replicated queues outlive their connections. */
	if (opts != NULL && opts->quorum && (opts->stream || !opts->durable ||
	    opts->exclusive || opts->auto_delete))
		return -EINVAL;
	for (d = bus->decls; d != NULL; d = d->next)
		if (d->kind == DECL_QUEUE && strcmp(d->name, name) == 0)
			return 0;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->kind = DECL_QUEUE;
	d->qopts = opts != NULL ? *opts : none;
	d->name = strdup(name);
	d->dlx = xstrdup(d->qopts.dead_letter_exchange);
	d->qopts.dead_letter_exchange = d->dlx;
	if (d->name == NULL || !dup_ok(opts ? opts->dead_letter_exchange :
	    NULL, d->dlx)) {
		decl_free(d);
		return -ENOMEM;
	}
	return decl_add(bus, d);
}

int
bus_bind_args(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key, const char *const *args)
{
	struct decl *d;

	if (bus == NULL || queue == NULL || exchange == NULL ||
	    routing_key == NULL || *queue == '\0' || bus->closing ||
	    strlen(routing_key) >= PROP_MAX)
		return -EINVAL;
	for (d = bus->decls; d != NULL; d = d->next)
		if (decl_same_bind(d, queue, exchange, routing_key))
			return 0;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->kind = DECL_BIND;
	d->name = strdup(queue);
	d->exchange = strdup(exchange);
	d->key = strdup(routing_key);
	d->args = args_dup(args);
	if (d->name == NULL || d->exchange == NULL || d->key == NULL ||
	    (args != NULL && d->args == NULL)) {
		decl_free(d);
		return errno == EINVAL ? -EINVAL : -ENOMEM;
	}
	return decl_add(bus, d);
}

int
bus_bind_exchange(struct bus *bus, const char *destination,
    const char *source, const char *routing_key)
{
	struct decl *d;

	if (bus == NULL || destination == NULL || source == NULL ||
	    routing_key == NULL || *destination == '\0' || bus->closing ||
	    strlen(routing_key) >= PROP_MAX)
		return -EINVAL;
	for (d = bus->decls; d != NULL; d = d->next)
		if (d->kind == DECL_XBIND && strcmp(d->name, destination) == 0 &&
		    strcmp(d->exchange, source) == 0 &&
		    strcmp(d->key, routing_key) == 0)
			return 0;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->kind = DECL_XBIND;
	d->name = strdup(destination);
	d->exchange = strdup(source);
	d->key = strdup(routing_key);
	if (d->name == NULL || d->exchange == NULL || d->key == NULL) {
		decl_free(d);
		return -ENOMEM;
	}
	return decl_add(bus, d);
}

int
bus_bind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key)
{
	return bus_bind_args(bus, queue, exchange, routing_key, NULL);
}

void
bus_unbind_send(struct bus *bus, const struct decl *d)
{
	amqp_table_entry_t entries[8];
	amqp_queue_unbind_t m = {
		.queue = amqp_cstring_bytes(d->name),
		.exchange = amqp_cstring_bytes(d->exchange),
		.routing_key = amqp_cstring_bytes(d->key),
		.arguments = string_args(d->args, entries),
	};
	/* queue.unbind has no nowait: its unbind-ok is ignored. */
	int r = amqp_send_method(bus->conn->amqp, CH_PUB,
	    AMQP_QUEUE_UNBIND_METHOD, &m);

	if (r != AMQP_STATUS_OK)
		bus_fail(bus, "unbinding \"%s\": %s", d->name,
		    amqp_error_string2(r));
}

int
bus_unbind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key)
{
	struct decl **pp;

	if (bus == NULL || queue == NULL || exchange == NULL ||
	    routing_key == NULL)
		return -EINVAL;
	for (pp = &bus->decls; *pp != NULL; pp = &(*pp)->next) {
		struct decl *d = *pp;

		if (!decl_same_bind(d, queue, exchange, routing_key))
			continue;
		*pp = d->next;
		if (bus->decls_tail == &d->next)
			bus->decls_tail = pp;
		if (bus->state == ST_UP) {
			bus_unbind_send(bus, d);
		} else if (bus->state == ST_CONNECTING) {
			/* The handshake may be binding it right now. */
			d->next = bus->unbinds;
			bus->unbinds = d;
			return 0;
		}
		decl_free(d);
		return 0;
	}
	return -ENOENT;
}

static struct consumer *
consumer_new(struct bus *bus, const char *queue, bus_handler_cb handler,
    void *arg)
{
	struct consumer *k;

	if (bus == NULL || queue == NULL || *queue == '\0' ||
	    handler == NULL || bus->closing) {
		errno = EINVAL;
		return NULL;
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return NULL;
	k->queue = strdup(queue);
	if (k->queue == NULL) {
		free(k);
		return NULL;
	}
	k->next_offset = -1;
	k->handler = handler;
	k->arg = arg;
	return k;
}

/* Append k to the consumers and attach it now if connected. */
static int
consumer_add(struct bus *bus, struct consumer *k)
{
	snprintf(k->tag, sizeof(k->tag), "%.40s.%u", bus->app_id,
	    bus->nconsumers++);
	k->seq = bus->seq++;
	*bus->consumers_tail = k;
	bus->consumers_tail = &k->next;
	if (bus->state == ST_UP) {
		char reason[REASON_MAX];

		if (bus_consume_send(bus->conn->amqp, k, false, reason,
		    sizeof(reason)) < 0)
			bus_fail(bus, "%s", reason);
	}
	return 0;
}

int
bus_consume(struct bus *bus, const char *queue, bool no_ack,
    bus_handler_cb handler, void *arg)
{
	struct consumer *k = consumer_new(bus, queue, handler, arg);

	if (k == NULL)
		return -errno;
	k->no_ack = no_ack;
	return consumer_add(bus, k);
}

int
bus_consume_stream(struct bus *bus, const char *queue,
    enum bus_stream_from from, uint64_t time_s, bus_handler_cb handler,
    void *arg)
{
	struct consumer *k;

	if (from != BUS_STREAM_FIRST && from != BUS_STREAM_NEXT &&
	    from != BUS_STREAM_TIME)
		return -EINVAL;
	k = consumer_new(bus, queue, handler, arg);
	if (k == NULL)
		return -errno;
	k->stream = true;
	k->from = from;
	k->time_s = time_s;
	return consumer_add(bus, k);
}
