/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's insides, shared by its files and by nothing else; see bus.h
 * for the contract. The only header of mm that includes librabbitmq's.
 *
 * librabbitmq-c 0.11 is a blocking library, so the loop only ever calls it
 * where it cannot block: frames are read with a zero timeout (draining its
 * internal buffer until it reports a timeout, on every wake-up), runtime
 * declarations are sent with nowait, and publishing stops while the bytes
 * in flight exceed a window that fits in the socket's send buffer. The
 * handshake, which is synchronous in the library, runs on the thread pool.
 * Heartbeats are sent, and missed ones reported, by the library's read
 * path, which a timer calls even when no byte arrives.
 *
 * The files, one per section of the bus's work:
 *   bus.c            construction, connection lifecycle, close
 *   bus_decl.c       declarations (exchanges, queues, bindings, consumers)
 *   bus_handshake.c  the connection handshake, on the thread pool
 *   bus_outbox.c     publishing: the outbox, the confirm window
 *   bus_deliver.c    deliveries: frames in, settling, acks
 *   bus_url.c        the checks of the URL, TLS files and password;
 *                    the URL as shown, without its password
 */
#ifndef MM_BUS_INT_H
#define MM_BUS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>

#include "bus.h"

#define CH_PUB	1	/* declarations, publishing, confirms */
#define CH_SUB	2	/* qos, consumers, acks */
#define CH_PROBE	3	/* handshake: declarations that may be refused */

#define PROP_MAX	256	/* AMQP short strings are at most 255 bytes */
#define MSG_OVERHEAD	256	/* frame and property bytes per message */
#define TICK_MS		200
#define BUS_NACK_RETRIES 3	/* a message refused this often is given up */
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
	bool skip;		/* handshake copy: kept as it exists */
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
	char *skey;		/* supersede_key, or NULL */
	struct outmsg *hnext;	/* in bus->keyed while in the outbox */
	void *body;
	size_t len;
	uint64_t tag;		/* delivery tag once sent */
	uint64_t sent_ms;	/* when sent (loop's monotonic ms) */
	uint64_t queued_ns;	/* when bus_publish() took it (uv_hrtime) */
	unsigned nacks;		/* times the broker refused it */
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

/* The keyed messages waiting in the outbox, by key (chained). */
struct keyed {
	struct outmsg **slots;
	size_t cap;		/* a power of two, or 0 */
	size_t count;
};

/* One URL of the list: where to connect. */
struct endpoint {
	char *host;
	int port;
	char *shown;		/* the URL without its password */
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
	size_t ep;		/* the endpoint tried */
	amqp_connection_state_t amqp;	/* result */
	size_t window;		/* result: clamped to the send buffer */
	char reason[REASON_MAX];	/* result when amqp is NULL */
	char warning[REASON_MAX];	/* result: a queue kept as it was */
};

enum bus_state { ST_IDLE, ST_CONNECTING, ST_UP, ST_BACKOFF, ST_CLOSING };

struct bus {
	uv_loop_t *loop;
	enum bus_state state;

	/* configuration */
	char *url;		/* redacted (bus_url_redact()): for messages */
	struct endpoint eps[BUS_URLS_MAX];
	size_t neps;
	size_t ep;		/* the one connected to, or tried next */
	unsigned ep_failed;	/* attempts failed since the last success */
	size_t ep_last;		/* the one last connected to */
	char *user;
	char *password;
	char *vhost;
	bool tls;
	char *ca_file;
	char *cert_file;
	char *key_file;
	bool verify_peer;
	bool verify_hostname;
	char *app_id;
	unsigned heartbeat_s;
	unsigned prefetch;
	size_t max_body;
	size_t outbox_max;
	size_t window_cfg;
	unsigned backoff_min_ms;
	unsigned backoff_max_ms;
	unsigned connect_timeout_ms;
	unsigned confirm_timeout_ms;
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
	bool warned_kept;	/* a keep_existing queue was kept */

	/* publishing */
	struct msgq outbox;
	struct keyed keyed;
	bool blocked;		/* connection.blocked: send nothing */
	uint64_t blocked_since;	/* mono ms */
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

/* Small helpers. */

static inline char *
xstrdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static inline bool
dup_ok(const char *src, const char *copy)
{
	return src == NULL || copy != NULL;
}

static inline amqp_bytes_t
bytes_of(const char *s)
{
	return amqp_cstring_bytes(s != NULL ? s : "");
}

static inline void
copy_prop(char *dst, amqp_bytes_t b, bool present)
{
	size_t n = present ? b.len : 0;

	if (n >= PROP_MAX)
		n = PROP_MAX - 1;
	if (n > 0)
		memcpy(dst, b.bytes, n);
	dst[n] = '\0';
}

static inline uint64_t
mono_ms(uv_loop_t *loop)
{
	uv_update_time(loop);
	return uv_now(loop);
}

/* What one file of the bus calls in another. */

/* bus.c: the lifecycle. */
void bus_connect(struct bus *bus);
void bus_finish_close(struct bus *bus);
bool bus_flush_done(struct bus *bus);
int bus_replay_late(struct bus *bus, uint64_t snap_seq);
/* Drop the connection with a reason (logged at debug, kept for
 * bus_stats), and schedule a reconnect. */
void bus_fail(struct bus *bus, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "what: reason" of a librabbitmq reply into buf. */
void bus_format_reply(char *buf, size_t size, const char *what,
    amqp_rpc_reply_t r);

/* bus_decl.c: declarations. */
void bus_unbind_send(struct bus *bus, const struct decl *d);
int bus_decl_send(amqp_connection_state_t c, const struct decl *d,
    bool wait, char *reason, size_t rsize, amqp_channel_t ch);
int bus_consume_send(amqp_connection_state_t c, const struct consumer *k,
    bool wait, char *reason, size_t rsize);
void bus_decl_list_free(struct decl *d);
struct decl *bus_decl_dup(const struct decl *src);
bool bus_exchange_declared(const struct bus *bus, const char *name);

/* bus_handshake.c: the handshake. */
void bus_job_free(struct connect_job *job);
struct connect_job *bus_job_new(struct bus *bus);
void bus_connect_work_cb(uv_work_t *work);

/* bus_url.c: the URLs of a list, trimmed, into urls. Returns 0,
 * -EINVAL (an empty one), -E2BIG (more than max), -ENAMETOOLONG. */
int bus_url_split(const char *list, char urls[][BUS_URL_MAX], size_t max,
    size_t *ret_n);

/* bus_outbox.c: publishing. */
void bus_outbox_requeue(struct bus *bus);
void bus_outbox_free(struct bus *bus);
void bus_set_blocked(struct bus *bus, bool blocked);
struct outmsg *bus_msgq_pop(struct msgq *q);
void bus_flush(struct bus *bus);
void bus_confirm_done(struct bus *bus, struct outmsg *m, int status);
void bus_handle_confirm(struct bus *bus, uint64_t tag, bool multiple,
    int status);

/* bus_deliver.c: deliveries. */
int bus_ack_flush(struct bus *bus);
void bus_drain(struct bus *bus);
void bus_poll_cb(uv_poll_t *h, int status, int events);
void bus_tick_cb(uv_timer_t *t);

#endif
