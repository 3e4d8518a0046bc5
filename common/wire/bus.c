/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The AMQP bus on a libuv loop; see bus.h for the contract. This is the only
 * file that includes librabbitmq's headers.
 *
 * librabbitmq-c 0.11 is a blocking library, so the loop only ever calls it
 * where it cannot block: frames are read with a zero timeout (draining its
 * internal buffer until it reports a timeout, on every wake-up), runtime
 * declarations are sent with nowait, and publishing stops while the bytes
 * in flight exceed a window that fits in the socket's send buffer. The
 * handshake, which is synchronous in the library, runs on the thread pool.
 * Heartbeats are sent, and missed ones reported, by the library's read
 * path, which a timer calls even when no byte arrives.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include "bus.h"
#include "log.h"

#define CH_PUB	1	/* declarations, publishing, confirms */
#define CH_SUB	2	/* qos, consumers, acks */

#define PROP_MAX	256	/* AMQP short strings are at most 255 bytes */
#define MSG_OVERHEAD	256	/* frame and property bytes per message */
#define TICK_MS		200
#define REASON_MAX	512

enum decl_kind { DECL_EXCHANGE, DECL_QUEUE, DECL_BIND, DECL_XBIND };

struct decl {
	enum decl_kind kind;
	char *name;		/* exchange or queue (xbind: destination) */
	char *type;		/* exchange type */
	char *exchange;		/* bind: source */
	char *key;		/* bind: routing key */
	char **args;		/* bind: NULL-terminated key, value pairs */
	unsigned flags;
	uint64_t seq;		/* order of creation, for replay after connect */
	struct bus_queue_opts qopts;
	char *dlx;		/* owned copy of qopts.dead_letter_exchange */
	struct decl *next;
};

struct consumer {
	char *queue;
	char tag[64];
	bool no_ack;
	bool stream;
	enum bus_stream_from from;
	uint64_t time_s;
	int64_t next_offset;	/* stream: resume here, -1 until a delivery */
	uint64_t seq;
	bus_handler_cb handler;
	void *arg;
	struct consumer *next;
};

struct outmsg {
	char *exchange;
	char *key;
	char *content_type;
	char *type;
	char *message_id;
	char *correlation_id;
	char *reply_to;
	uint64_t timestamp;
	bool persistent;
	uint32_t expiration_ms;
	void *body;
	size_t len;
	uint64_t tag;		/* delivery tag once sent */
	bus_confirm_cb cb;
	void *arg;
	struct outmsg *next;
};

struct msgq {
	struct outmsg *head;
	struct outmsg *tail;
	size_t count;
	size_t bytes;
};

/* A delivery being assembled from its method, header and body frames. */
struct inbound {
	bool active;
	bool discard;		/* oversized: read and dead-letter */
	uint64_t tag;
	struct consumer *consumer;
	size_t size;
	size_t got;
	bool redelivered;
	uint64_t timestamp;
	int64_t stream_offset;
	char exchange[PROP_MAX];
	char routing_key[PROP_MAX];
	char content_type[PROP_MAX];
	char type[PROP_MAX];
	char message_id[PROP_MAX];
	char correlation_id[PROP_MAX];
	char reply_to[PROP_MAX];
	char app_id[PROP_MAX];
};

/* One TCP connection; freed after its poll handle's close callback. */
struct conn {
	uv_poll_t poll;
	amqp_connection_state_t amqp;
	struct bus *bus;
	bool polling;
};

/* The handshake, run on the thread pool over copies of what it needs. */
struct connect_job {
	uv_work_t work;
	struct bus *bus;
	struct decl *decls;	/* deep copy */
	struct consumer *consumers;	/* copies: queue, tag, no_ack */
	uint64_t snap_seq;	/* later declarations were not replayed */
	amqp_connection_state_t amqp;	/* result */
	size_t window;		/* result: clamped to the send buffer */
	char reason[REASON_MAX];	/* result when amqp is NULL */
};

enum bus_state { ST_IDLE, ST_CONNECTING, ST_UP, ST_BACKOFF, ST_CLOSING };

struct bus {
	uv_loop_t *loop;
	enum bus_state state;

	/* configuration */
	char *url;
	char *host;
	int port;
	char *user;
	char *password;
	char *vhost;
	char *app_id;
	unsigned heartbeat_s;
	unsigned prefetch;
	size_t max_body;
	size_t outbox_max;
	size_t window_cfg;
	unsigned backoff_min_ms;
	unsigned backoff_max_ms;
	unsigned connect_timeout_ms;
	void (*state_cb)(struct bus *, bool, const char *, void *);
	void *state_arg;

	struct decl *decls;
	struct decl **decls_tail;
	struct consumer *consumers;
	struct consumer **consumers_tail;
	unsigned nconsumers;
	uint64_t seq;
	struct decl *unbinds;	/* removed while connecting */

	/* connection */
	struct conn *conn;
	struct connect_job *job;
	uv_timer_t tick;
	uv_timer_t retry;
	unsigned backoff_ms;
	size_t window;
	uint64_t next_tag;
	uint64_t ack_upto;	/* deliveries up to here await one ack */
	struct inbound in;
	uint8_t *body;
	size_t body_cap;
	char last_reason[REASON_MAX];

	/* publishing */
	struct msgq outbox;
	struct msgq unconfirmed;
	char id_prefix[24];
	uint64_t id_counter;

	/* closing */
	bool closing;
	uint64_t flush_deadline_ms;
	int open_handles;
	bus_close_cb close_cb;
	void *close_arg;
	bool in_drain;
	unsigned corked;	/* deliveries since the socket was corked */

	struct bus_stats stats;
};

static void bus_connect(struct bus *bus);
static bool flush_done(struct bus *bus);
static void bus_fail(struct bus *bus, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void bus_flush(struct bus *bus);
static void bus_finish_close(struct bus *bus);
static int replay_late(struct bus *bus, uint64_t snap_seq);

/* ---- small helpers ---- */

static char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static bool
dup_ok(const char *src, const char *copy)
{
	return src == NULL || copy != NULL;
}

static amqp_bytes_t
bytes_of(const char *s)
{
	return amqp_cstring_bytes(s != NULL ? s : "");
}

static void
copy_prop(char *dst, amqp_bytes_t b, bool present)
{
	size_t n = present ? b.len : 0;

	if (n >= PROP_MAX)
		n = PROP_MAX - 1;
	if (n > 0)
		memcpy(dst, b.bytes, n);
	dst[n] = '\0';
}

static void
format_reply(char *buf, size_t size, const char *what, amqp_rpc_reply_t r)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(buf, size, "%s: ok", what);
		break;
	case AMQP_RESPONSE_NONE:
		snprintf(buf, size, "%s: no reply", what);
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(buf, size, "%s: %s", what,
		    amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;

			snprintf(buf, size, "%s: connection closed by broker: "
			    "%u %.*s", what, m->reply_code,
			    (int)m->reply_text.len,
			    (const char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;

			snprintf(buf, size, "%s: channel closed by broker: "
			    "%u %.*s", what, m->reply_code,
			    (int)m->reply_text.len,
			    (const char *)m->reply_text.bytes);
		} else {
			snprintf(buf, size, "%s: unexpected method 0x%08x",
			    what, r.reply.id);
		}
		break;
	}
}

static uint64_t
mono_ms(uv_loop_t *loop)
{
	uv_update_time(loop);
	return uv_now(loop);
}

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

static void
decl_list_free(struct decl *d)
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

static struct decl *
decl_dup(const struct decl *src)
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

static bool
exchange_declared(const struct bus *bus, const char *name)
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
 * Send one declaration. With wait, as an RPC whose failure is written to
 * reason (handshake thread); without, with nowait on the loop, where a
 * failure arrives later as a channel.close.
 */
static int
decl_send(amqp_connection_state_t c, const struct decl *d, bool wait,
    char *reason, size_t rsize)
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
			amqp_exchange_declare(c, CH_PUB,
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
			r = amqp_send_method(c, CH_PUB,
			    AMQP_EXCHANGE_DECLARE_METHOD, &m);
			goto sent;
		}
		break;
	case DECL_QUEUE:
		snprintf(what, sizeof(what), "declaring queue \"%s\"", d->name);
		args = queue_args(&d->qopts, entries, age, sizeof(age));
		if (wait) {
			amqp_queue_declare(c, CH_PUB,
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
			r = amqp_send_method(c, CH_PUB,
			    AMQP_QUEUE_DECLARE_METHOD, &m);
			goto sent;
		}
		break;
	case DECL_BIND:
		snprintf(what, sizeof(what), "binding queue \"%s\" to \"%s\"",
		    d->name, d->exchange);
		args = string_args(d->args, entries);
		if (wait) {
			amqp_queue_bind(c, CH_PUB, amqp_cstring_bytes(d->name),
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
			r = amqp_send_method(c, CH_PUB, AMQP_QUEUE_BIND_METHOD,
			    &m);
			goto sent;
		}
		break;
	case DECL_XBIND:
		snprintf(what, sizeof(what), "binding exchange \"%s\" to "
		    "\"%s\"", d->name, d->exchange);
		if (wait) {
			amqp_exchange_bind(c, CH_PUB,
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
			r = amqp_send_method(c, CH_PUB,
			    AMQP_EXCHANGE_BIND_METHOD, &m);
			goto sent;
		}
		break;
	}
	{
		amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);

		if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
			format_reply(reason, rsize, what, reply);
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

static int
consume_send(amqp_connection_state_t c, const struct consumer *k, bool wait,
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
			format_reply(reason, rsize, what, reply);
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

/* ---- construction ---- */

static int
parse_url(struct bus *bus, const char *url)
{
	struct amqp_connection_info info;
	char *buf = strdup(url);
	int r = 0;

	if (buf == NULL)
		return -ENOMEM;
	amqp_default_connection_info(&info);
	if (amqp_parse_url(buf, &info) != AMQP_STATUS_OK || info.ssl) {
		free(buf);
		return -EINVAL;
	}
	bus->host = strdup(info.host);
	bus->user = strdup(info.user);
	bus->password = strdup(info.password);
	bus->vhost = strdup(info.vhost);
	bus->port = info.port;
	if (bus->host == NULL || bus->user == NULL || bus->password == NULL ||
	    bus->vhost == NULL)
		r = -ENOMEM;
	free(buf);
	return r;
}

static void
bus_release(struct bus *bus)
{
	struct consumer *k = bus->consumers;

	decl_list_free(bus->decls);
	decl_list_free(bus->unbinds);
	while (k != NULL) {
		struct consumer *next = k->next;

		free(k->queue);
		free(k);
		k = next;
	}
	free(bus->url);
	free(bus->host);
	free(bus->user);
	free(bus->password);
	free(bus->vhost);
	free(bus->app_id);
	free(bus->body);
	free(bus);
}

struct bus *
bus_new(uv_loop_t *loop, const struct bus_config *config)
{
	struct bus *bus;
	uint64_t rnd = 0;
	int r;

	if (loop == NULL || config == NULL || config->url == NULL) {
		errno = EINVAL;
		return NULL;
	}
	bus = calloc(1, sizeof(*bus));
	if (bus == NULL)
		return NULL;
	bus->loop = loop;
	bus->decls_tail = &bus->decls;
	bus->consumers_tail = &bus->consumers;
	bus->url = strdup(config->url);
	bus->app_id = strdup(config->app_id != NULL ? config->app_id : "mm");
	if (bus->url == NULL || bus->app_id == NULL) {
		bus_release(bus);
		errno = ENOMEM;
		return NULL;
	}
	r = parse_url(bus, config->url);
	if (r < 0) {
		bus_release(bus);
		errno = -r;
		return NULL;
	}
	bus->heartbeat_s = config->heartbeat_s ? config->heartbeat_s : 10;
	bus->prefetch = config->prefetch ? config->prefetch : 64;
	bus->max_body = config->max_body ? config->max_body : 4u << 20;
	bus->outbox_max = config->outbox_max ? config->outbox_max : 10000;
	bus->window_cfg = config->window_bytes ? config->window_bytes :
	    256u << 10;
	bus->backoff_min_ms = config->reconnect_min_ms ?
	    config->reconnect_min_ms : 100;
	bus->backoff_max_ms = config->reconnect_max_ms ?
	    config->reconnect_max_ms : 10000;
	if (bus->backoff_max_ms < bus->backoff_min_ms)
		bus->backoff_max_ms = bus->backoff_min_ms;
	bus->connect_timeout_ms = config->connect_timeout_ms ?
	    config->connect_timeout_ms : 5000;
	bus->state_cb = config->state_cb;
	bus->state_arg = config->state_arg;
	bus->backoff_ms = bus->backoff_min_ms;
	if (bus->prefetch > 65535)
		bus->prefetch = 65535;

	/* Message ids must stay unique across restarts of the program. */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	snprintf(bus->id_prefix, sizeof(bus->id_prefix), "%016llx",
	    (unsigned long long)rnd);

	uv_timer_init(loop, &bus->tick);
	uv_timer_init(loop, &bus->retry);
	bus->tick.data = bus;
	bus->retry.data = bus;
	return bus;
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

		if (decl_send(bus->conn->amqp, d, false, reason,
		    sizeof(reason)) < 0)
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

static void
unbind_send(struct bus *bus, const struct decl *d)
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
			unbind_send(bus, d);
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

		if (consume_send(bus->conn->amqp, k, false, reason,
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

/* ---- the handshake, on the thread pool ---- */

static void
job_free(struct connect_job *job)
{
	struct consumer *k;

	if (job == NULL)
		return;
	decl_list_free(job->decls);
	k = job->consumers;
	while (k != NULL) {
		struct consumer *next = k->next;

		free(k->queue);
		free(k);
		k = next;
	}
	if (job->amqp != NULL)
		amqp_destroy_connection(job->amqp);
	free(job);
}

/* Snapshot what the handshake replays, so the loop may keep declaring. */
static struct connect_job *
job_new(struct bus *bus)
{
	struct connect_job *job = calloc(1, sizeof(*job));
	struct decl **dt;
	struct consumer **kt;

	if (job == NULL)
		return NULL;
	job->bus = bus;
	job->work.data = job;
	job->snap_seq = bus->seq;
	decl_list_free(bus->unbinds);
	bus->unbinds = NULL;
	dt = &job->decls;
	for (struct decl *d = bus->decls; d != NULL; d = d->next) {
		*dt = decl_dup(d);
		if (*dt == NULL)
			goto fail;
		dt = &(*dt)->next;
	}
	kt = &job->consumers;
	for (struct consumer *k = bus->consumers; k != NULL; k = k->next) {
		*kt = malloc(sizeof(**kt));
		if (*kt == NULL)
			goto fail;
		/* All of it (the handshake's consume_send() reads the stream
		 * fields too), with its own queue name and no list. */
		**kt = *k;
		(*kt)->next = NULL;
		(*kt)->queue = strdup(k->queue);
		if ((*kt)->queue == NULL)
			goto fail;
		kt = &(*kt)->next;
	}
	return job;
fail:
	job_free(job);
	return NULL;
}

static int
rpc_check(amqp_connection_state_t c, const char *what, char *reason,
    size_t rsize)
{
	amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);

	if (reply.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	format_reply(reason, rsize, what, reply);
	return -EPROTO;
}

static void
connect_work_cb(uv_work_t *work)
{
	struct connect_job *job = work->data;
	struct bus *bus = job->bus;	/* configuration only: immutable */
	struct timeval tv = {
		.tv_sec = bus->connect_timeout_ms / 1000,
		.tv_usec = (bus->connect_timeout_ms % 1000) * 1000,
	};
	amqp_table_entry_t caps[3], props[3];
	amqp_table_t client_props;
	amqp_connection_state_t c;
	amqp_socket_t *sock;
	amqp_rpc_reply_t reply;
	int r, sndbuf = 1 << 20;
	socklen_t optlen = sizeof(sndbuf);

	c = amqp_new_connection();
	if (c == NULL) {
		snprintf(job->reason, sizeof(job->reason), "out of memory");
		return;
	}
	job->amqp = c;
	sock = amqp_tcp_socket_new(c);
	if (sock == NULL) {
		snprintf(job->reason, sizeof(job->reason),
		    "cannot create socket");
		goto fail;
	}
	r = amqp_socket_open_noblock(sock, bus->host, bus->port, &tv);
	if (r != AMQP_STATUS_OK) {
		snprintf(job->reason, sizeof(job->reason),
		    "connecting to %s:%d: %s", bus->host, bus->port,
		    amqp_error_string2(r));
		goto fail;
	}
	amqp_set_handshake_timeout(c, &tv);
	amqp_set_rpc_timeout(c, &tv);

	/* Ask for a large send buffer and keep the bytes in flight well
	 * inside what we got, so a publish never waits on the broker. */
	setsockopt(amqp_get_sockfd(c), SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    sizeof(sndbuf));
	if (getsockopt(amqp_get_sockfd(c), SOL_SOCKET, SO_SNDBUF, &sndbuf,
	    &optlen) < 0 || sndbuf <= 0)
		sndbuf = 64 << 10;
	job->window = bus->window_cfg;
	if (job->window > (size_t)sndbuf / 4)
		job->window = (size_t)sndbuf / 4;

	caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
	caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
	caps[0].value.value.boolean = 1;
	caps[1].key = amqp_cstring_bytes("publisher_confirms");
	caps[1].value.kind = AMQP_FIELD_KIND_BOOLEAN;
	caps[1].value.value.boolean = 1;
	caps[2].key = amqp_cstring_bytes("connection.blocked");
	caps[2].value.kind = AMQP_FIELD_KIND_BOOLEAN;
	caps[2].value.value.boolean = 1;
	props[0].key = amqp_cstring_bytes("connection_name");
	props[0].value.kind = AMQP_FIELD_KIND_UTF8;
	props[0].value.value.bytes = amqp_cstring_bytes(bus->app_id);
	props[1].key = amqp_cstring_bytes("product");
	props[1].value.kind = AMQP_FIELD_KIND_UTF8;
	props[1].value.value.bytes = amqp_cstring_bytes("mm");
	props[2].key = amqp_cstring_bytes("capabilities");
	props[2].value.kind = AMQP_FIELD_KIND_TABLE;
	props[2].value.value.table.num_entries = 3;
	props[2].value.value.table.entries = caps;
	client_props.num_entries = 3;
	client_props.entries = props;

	reply = amqp_login_with_properties(c, bus->vhost, 0, 131072,
	    (int)bus->heartbeat_s, &client_props, AMQP_SASL_METHOD_PLAIN,
	    bus->user, bus->password);
	if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
		char what[PROP_MAX + 64];

		snprintf(what, sizeof(what), "logging in to %s:%d vhost "
		    "\"%s\" as \"%s\"", bus->host, bus->port, bus->vhost,
		    bus->user);
		format_reply(job->reason, sizeof(job->reason), what, reply);
		goto fail;
	}
	amqp_channel_open(c, CH_PUB);
	if (rpc_check(c, "opening channel", job->reason,
	    sizeof(job->reason)) < 0)
		goto fail;
	amqp_confirm_select(c, CH_PUB);
	if (rpc_check(c, "enabling publisher confirms", job->reason,
	    sizeof(job->reason)) < 0)
		goto fail;
	for (const struct decl *d = job->decls; d != NULL; d = d->next)
		if (decl_send(c, d, true, job->reason,
		    sizeof(job->reason)) < 0)
			goto fail;
	amqp_channel_open(c, CH_SUB);
	if (rpc_check(c, "opening channel", job->reason,
	    sizeof(job->reason)) < 0)
		goto fail;
	amqp_basic_qos(c, CH_SUB, 0, (uint16_t)bus->prefetch, 0);
	if (rpc_check(c, "setting prefetch", job->reason,
	    sizeof(job->reason)) < 0)
		goto fail;
	for (const struct consumer *k = job->consumers; k != NULL;
	    k = k->next)
		if (consume_send(c, k, true, job->reason,
		    sizeof(job->reason)) < 0)
			goto fail;
	amqp_maybe_release_buffers(c);
	return;
fail:
	amqp_destroy_connection(c);
	job->amqp = NULL;
}

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

static struct outmsg *
msgq_pop(struct msgq *q)
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

static void
confirm_done(struct bus *bus, struct outmsg *m, int status)
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
static void
handle_confirm(struct bus *bus, uint64_t tag, bool multiple, int status)
{
	struct msgq *q = &bus->unconfirmed;

	if (multiple) {
		while (q->head != NULL && q->head->tag <= tag)
			confirm_done(bus, msgq_pop(q), status);
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
			confirm_done(bus, m, status);
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
static void
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
		msgq_pop(&bus->outbox);
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
	    !exchange_declared(bus, msg->exchange))
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
static int
ack_flush(struct bus *bus)
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
	r = ack_flush(bus);
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

		handle_confirm(bus, a->delivery_tag, a->multiple, 0);
		break;
	}
	case AMQP_BASIC_NACK_METHOD: {
		const amqp_basic_nack_t *a = m->decoded;

		handle_confirm(bus, a->delivery_tag, a->multiple, -EIO);
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
	default:
		/* declare-ok, bind-ok, unbind-ok, connection.blocked ... */
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
static void
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
		int r = ack_flush(bus);

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

static void
poll_cb(uv_poll_t *h, int status, int events)
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
static void
tick_cb(uv_timer_t *t)
{
	struct bus *bus = t->data;

	if (bus->state == ST_UP)
		bus_drain(bus);
	if (bus->closing && bus->state != ST_CLOSING && bus->job == NULL &&
	    flush_done(bus))
		bus_finish_close(bus);
}

/* ---- connection lifecycle ---- */

/* One handle less; the last one to close while closing frees the bus. */
static void
handle_done(struct bus *bus)
{
	if (--bus->open_handles == 0 && bus->state == ST_CLOSING) {
		bus_close_cb cb = bus->close_cb;
		void *arg = bus->close_arg;

		bus_release(bus);
		if (cb != NULL)
			cb(arg);
	}
}

static void
handle_closed_cb(uv_handle_t *h)
{
	handle_done(h->data);
}

static void
conn_closed_cb(uv_handle_t *h)
{
	struct conn *conn = h->data;
	struct bus *bus = conn->bus;

	free(conn);
	handle_done(bus);
}

/* Drop the connection; unconfirmed messages go back to the outbox. */
static void
conn_teardown(struct bus *bus, bool graceful)
{
	struct conn *conn = bus->conn;

	if (conn == NULL)
		return;
	bus->conn = NULL;
	uv_timer_stop(&bus->tick);
	if (conn->polling)
		uv_poll_stop(&conn->poll);
	if (graceful) {
		/* A handler may close the bus: its ack still counts. */
		bus->conn = conn;
		ack_flush(bus);
		bus->conn = NULL;
		/* At shutdown only: bounded by the RPC timeout. */
		struct timeval tv = { 1, 0 };

		amqp_set_rpc_timeout(conn->amqp, &tv);
		amqp_connection_close(conn->amqp, AMQP_REPLY_SUCCESS);
	}
	amqp_destroy_connection(conn->amqp);
	conn->amqp = NULL;
	if (conn->polling) {
		uv_close((uv_handle_t *)&conn->poll, conn_closed_cb);
	} else {
		free(conn);
		bus->open_handles--;
	}
	bus->in.active = false;
	bus->ack_upto = 0;
	bus->stats.resent += bus->unconfirmed.count;
	msgq_prepend(&bus->outbox, &bus->unconfirmed);
}

static void
notify(struct bus *bus, bool up, const char *reason)
{
	if (!up && reason != NULL) {
		/* Report a failure once, not on every retry. */
		if (strcmp(reason, bus->last_reason) == 0)
			return;
		snprintf(bus->last_reason, sizeof(bus->last_reason), "%s",
		    reason);
	} else {
		bus->last_reason[0] = '\0';
	}
	if (bus->state_cb != NULL && !bus->closing)
		bus->state_cb(bus, up, reason, bus->state_arg);
}

static void
retry_cb(uv_timer_t *t)
{
	bus_connect(t->data);
}

static void
schedule_retry(struct bus *bus)
{
	unsigned delay = bus->backoff_ms;
	uint32_t jitter = 0;

	/* +-25 % so a fleet does not reconnect in lockstep. */
	if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) !=
	    sizeof(jitter))
		jitter = 0;
	delay = delay * 3 / 4 + (unsigned)(jitter % (delay / 2 + 1));
	bus->backoff_ms = bus->backoff_ms * 2 > bus->backoff_max_ms ?
	    bus->backoff_max_ms : bus->backoff_ms * 2;
	bus->state = ST_BACKOFF;
	uv_timer_start(&bus->retry, retry_cb, delay, 0);
}

static void
bus_fail(struct bus *bus, const char *fmt, ...)
{
	char reason[REASON_MAX];
	va_list ap;

	if (bus->state != ST_UP)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	log_debug("bus: %s", reason);
	bus->stats.disconnects++;
	conn_teardown(bus, false);
	if (bus->closing) {
		/* What was not confirmed by now will not be. */
		bus_finish_close(bus);
		return;
	}
	schedule_retry(bus);
	notify(bus, false, reason);
}

static void
connect_after_cb(uv_work_t *work, int status)
{
	struct connect_job *job = work->data;
	struct bus *bus = job->bus;
	struct conn *conn;
	uint64_t snap_seq;
	int r;

	bus->job = NULL;
	bus->open_handles--;	/* the job counted as one */
	/* Closing: connect only to deliver what is waiting, in time. */
	if (bus->closing && (job->amqp == NULL || flush_done(bus))) {
		job_free(job);
		bus_finish_close(bus);
		return;
	}
	if (status < 0 || job->amqp == NULL) {
		bus->stats.connect_failures++;
		log_debug("bus: %s", job->reason);
		schedule_retry(bus);
		notify(bus, false, job->reason[0] ? job->reason :
		    "connection cancelled");
		job_free(job);
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		bus->stats.connect_failures++;
		schedule_retry(bus);
		notify(bus, false, "out of memory");
		job_free(job);
		return;
	}
	conn->bus = bus;
	conn->amqp = job->amqp;
	job->amqp = NULL;
	bus->window = job->window;
	snap_seq = job->snap_seq;
	job_free(job);
	bus->open_handles++;
	bus->conn = conn;
	r = uv_poll_init(bus->loop, &conn->poll, amqp_get_sockfd(conn->amqp));
	if (r == 0) {
		conn->poll.data = conn;
		conn->polling = true;
		r = uv_poll_start(&conn->poll, UV_READABLE, poll_cb);
	}
	bus->state = ST_UP;
	if (r < 0) {
		bus_fail(bus, "polling socket: %s", uv_strerror(r));
		return;
	}
	if (replay_late(bus, snap_seq) < 0)
		return;
	bus->next_tag = 0;
	bus->backoff_ms = bus->backoff_min_ms;
	bus->stats.connects++;
	uv_timer_start(&bus->tick, tick_cb, TICK_MS, TICK_MS);
	notify(bus, true, NULL);
	bus_flush(bus);
	if (bus->state == ST_UP)
		bus_drain(bus);
}

/* Send what was declared, removed or consumed while connecting. */
static int
replay_late(struct bus *bus, uint64_t snap_seq)
{
	char reason[REASON_MAX];
	struct conn *conn = bus->conn;

	for (struct decl *d = bus->unbinds; d != NULL && bus->conn == conn;
	    d = d->next)
		unbind_send(bus, d);
	decl_list_free(bus->unbinds);
	bus->unbinds = NULL;
	for (struct decl *d = bus->decls; d != NULL && bus->conn == conn;
	    d = d->next) {
		if (d->seq >= snap_seq &&
		    decl_send(conn->amqp, d, false, reason,
		    sizeof(reason)) < 0)
			bus_fail(bus, "%s", reason);
	}
	for (struct consumer *k = bus->consumers;
	    k != NULL && bus->conn == conn; k = k->next) {
		if (k->seq >= snap_seq &&
		    consume_send(conn->amqp, k, false, reason,
		    sizeof(reason)) < 0)
			bus_fail(bus, "%s", reason);
	}
	return bus->conn == conn ? 0 : -EIO;
}

/* Closing, and nothing left to wait for: no message or no time. */
static bool
flush_done(struct bus *bus)
{
	return (bus->outbox.head == NULL && bus->unconfirmed.head == NULL) ||
	    mono_ms(bus->loop) >= bus->flush_deadline_ms;
}

static void
bus_connect(struct bus *bus)
{
	struct connect_job *job;
	int r;

	if (bus->closing && flush_done(bus))
		return;
	job = job_new(bus);
	if (job == NULL) {
		schedule_retry(bus);
		return;
	}
	bus->state = ST_CONNECTING;
	bus->job = job;
	bus->open_handles++;
	r = uv_queue_work(bus->loop, &job->work, connect_work_cb,
	    connect_after_cb);
	if (r < 0) {
		bus->job = NULL;
		bus->open_handles--;
		job_free(job);
		schedule_retry(bus);
	}
}

int
bus_start(struct bus *bus)
{
	if (bus == NULL)
		return -EINVAL;
	if (bus->state != ST_IDLE || bus->closing)
		return -EALREADY;
	bus->open_handles = 2;	/* tick, retry */
	bus_connect(bus);
	return 0;
}

bool
bus_is_up(const struct bus *bus)
{
	return bus != NULL && bus->state == ST_UP;
}

void
bus_get_stats(const struct bus *bus, struct bus_stats *ret_stats)
{
	*ret_stats = bus->stats;
	ret_stats->outbox = bus->outbox.count;
	ret_stats->unconfirmed = bus->unconfirmed.count;
	ret_stats->up = bus->state == ST_UP;
}

/* Everything is flushed or given up on: close the connection and the
 * handles; the last close callback frees the bus. */
static void
bus_finish_close(struct bus *bus)
{
	struct outmsg *m;

	if (bus->state == ST_CLOSING)
		return;
	if (bus->job != NULL) {
		/* The handshake cannot be interrupted; its completion
		 * calls us again. */
		uv_cancel((uv_req_t *)&bus->job->work);
		return;
	}
	conn_teardown(bus, true);
	bus->state = ST_CLOSING;
	while ((m = msgq_pop(&bus->outbox)) != NULL)
		confirm_done(bus, m, -ECANCELED);
	uv_timer_stop(&bus->tick);
	uv_timer_stop(&bus->retry);
	if (bus->open_handles == 0) {
		/* bus_start() was never called: no handle to close. */
		bus->open_handles = 2;
	}
	uv_close((uv_handle_t *)&bus->tick, handle_closed_cb);
	uv_close((uv_handle_t *)&bus->retry, handle_closed_cb);
}

void
bus_close(struct bus *bus, unsigned flush_ms, bus_close_cb cb, void *arg)
{
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
	bus->flush_deadline_ms = mono_ms(bus->loop) + flush_ms;
	if (bus->state == ST_IDLE || flush_done(bus)) {
		bus_finish_close(bus);
		return;
	}
	/* bus_flush() and tick_cb() finish when the outbox is empty or the
	 * deadline passes; a connection being made may still deliver. */
	uv_timer_stop(&bus->retry);
	if (bus->state == ST_BACKOFF)
		bus_connect(bus);
	uv_timer_start(&bus->tick, tick_cb, TICK_MS, TICK_MS);
}
