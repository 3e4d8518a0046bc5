/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The message bus: an AMQP 0-9-1 client (librabbitmq-c) on a libuv loop.
 * Publishing is confirmed and never blocks the loop; consuming uses manual
 * acks with a prefetch window; the connection survives broker restarts by
 * reconnecting with backoff, re-declaring the topology, re-attaching the
 * consumers and re-sending every message the broker had not confirmed.
 *
 * Everything here runs on the loop's thread, except the TCP connect and the
 * AMQP handshake, which run on libuv's thread pool so that a broker that
 * accepts connections but does not answer cannot stall the loop.
 */
#ifndef MM_BUS_H
#define MM_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "metrics.h"

struct bus;

struct bus_config {
	/* amqp://user:password@host:port/vhost (vhost URL-encoded), or
	 * amqps:// for TLS (port 5671 by default). The password may come
	 * from elsewhere instead (password, password_file below).
	 * A comma-separated list names the nodes of a cluster (at most
	 * BUS_URLS_MAX, the same scheme, user and vhost in each): the bus
	 * connects to the first that answers, and when the connection is
	 * lost tries the next one at once, going round the list. */
	const char *url;
	/*
	 * The password to log in with, replacing the URL's; NULL for none.
	 * Without it: $CREDENTIALS_DIRECTORY/bus.password when it exists
	 * and is not empty (systemd's LoadCredential=bus.password:...),
	 * else the first line of password_file when it is not empty (the
	 * file must not be readable by others), else the URL's.
	 */
	const char *password;
	const char *password_file;
	/* amqps:// only (refused with amqp://), PEM files: the CAs the
	 * broker's certificate is checked against (required unless
	 * no_verify_peer), and this client's certificate and key (both or
	 * neither). NULL for none. */
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	/* amqps:// only: do not check the broker's certificate (against
	 * ca_file), or its name (against the URL's host). */
	bool no_verify_peer;
	bool no_verify_hostname;
	/* AMQP app_id of published messages and the connection's name. */
	const char *app_id;
	/* Heartbeat in seconds; 0 means 10. */
	unsigned heartbeat_s;
	/* Unacknowledged deliveries per consumer; 0 means 64. */
	unsigned prefetch;
	/* Larger message bodies are dead-lettered unread; 0 means 4 MiB. */
	size_t max_body;
	/* Messages queued or unconfirmed before bus_publish() fails with
	 * -ENOBUFS; 0 means 10000. */
	size_t outbox_max;
	/* Bytes published but not yet confirmed; 0 means 256 KiB. Clamped
	 * to a quarter of the socket's send buffer, so a publish never
	 * blocks on a stalled broker. */
	size_t window_bytes;
	/* Reconnect backoff bounds in ms; 0 means 100 and 3000 (with the
	 * +-25 % jitter a daemon is back at most 3.75 s after its broker). */
	unsigned reconnect_min_ms;
	unsigned reconnect_max_ms;
	/* Connect and handshake timeout in ms; 0 means 5000. */
	unsigned connect_timeout_ms;
	/* A message sent and not confirmed for this long (ms; 0 means 5000)
	 * makes the connection suspect: it is dropped and made again, and
	 * what it had not confirmed is sent again. A broker can hold a
	 * publish unconfirmed for good (RabbitMQ 3.10: a channel opened
	 * while a quorum queue's leader is lost keeps sending to the dead
	 * leader) on a connection that otherwise works and answers
	 * heartbeats. Not counted while the broker blocks publishing. */
	unsigned confirm_timeout_ms;
	/* Called on the loop each time the connection comes up or goes
	 * down; reason is NULL when up. May be NULL. */
	void (*state_cb)(struct bus *bus, bool up, const char *reason,
	    void *arg);
	void *state_arg;
};

/* Where the password bus_new() logs in with comes from. */
enum bus_password_from {
	BUS_PASSWORD_URL,		/* the URL's (or "guest" without one) */
	BUS_PASSWORD_GIVEN,		/* bus_config.password */
	BUS_PASSWORD_CREDENTIAL,	/* $CREDENTIALS_DIRECTORY/bus.password */
	BUS_PASSWORD_FILE,		/* bus_config.password_file */
};

#define BUS_PASSWORD_MAX	1024	/* bytes, with the NUL */
#define BUS_URLS_MAX		16	/* URLs in a list */
#define BUS_URL_MAX		1024	/* bytes of one URL, with the NUL */

/* What bus_config_check() found. */
struct bus_check {
	bool tls;			/* amqps:// */
	bool host_is_ip;		/* the URL's host is an IP address */
	enum bus_password_from password_from;
	bool url_password_ignored;	/* the URL has one; another won */
	size_t n_urls;			/* URLs in the list */
	char password[BUS_PASSWORD_MAX];
	char err[512];			/* why the config was refused */
};

/*
 * Check config as bus_new() does, without connecting: the URL (amqp:// or
 * amqps://), the TLS files (readable; certificate and key together; a CA
 * unless no_verify_peer; none on an amqp:// URL) and the password's source
 * (a password_file readable by others is refused). Returns 0 with
 * *ret filled, or a negative errno with ret->err naming the bus_config
 * field at fault (ca_file, password_file, ...) and the URL redacted. The
 * caller should explicit_bzero() ret->password when done.
 */
int bus_config_check(const struct bus_config *config, struct bus_check *ret);

/*
 * url with its password, if any, replaced by "***", into buf (size
 * bytes, truncated, always NUL-terminated): "amqps://mm:***@host/mm".
 * Works on any string, parsed or not. Returns buf. The one way a URL is
 * logged or printed.
 */
char *bus_url_redact(const char *url, char *buf, size_t size);

/* Flags of bus_declare_exchange(). */
#define BUS_DURABLE	0x1u
#define BUS_INTERNAL	0x2u

struct bus_queue_opts {
	bool durable;
	bool exclusive;
	bool auto_delete;
	/* x-max-length; 0 for unbounded. */
	uint32_t max_length;
	/* When full (max_length, max_length_bytes): x-overflow drop-head
	 * drops the oldest (the broker's default too); reject-publish
	 * makes the broker refuse (basic.nack) what is published to it
	 * meanwhile, which the bus sends again on a new connection, up to
	 * three times (bus_confirm_cb): fit only for a queue a consumer
	 * keeps empty. */
	bool drop_head;
	bool reject_publish;
	/* x-message-ttl in ms; 0 for none. */
	uint32_t message_ttl_ms;
	/* x-dead-letter-exchange; NULL for none. */
	const char *dead_letter_exchange;
	/* x-expires in ms (queue deleted when unused); 0 for never. */
	uint32_t expires_ms;
	/*
	 * x-queue-type stream: an append-only log that consumers read from
	 * an offset (bus_consume_stream()) without removing anything. It
	 * must be durable, neither exclusive nor auto-delete, and takes
	 * only the retention limits below (the broker refuses the others).
	 */
	bool stream;
	/* Stream retention: x-max-age in seconds, x-max-length-bytes, and
	 * x-stream-max-segment-size-bytes (the broker drops whole segments,
	 * so this is the granularity of the other two); 0 for the broker's
	 * default. */
	uint32_t max_age_s;
	uint64_t max_length_bytes;
	uint64_t max_segment_bytes;
	/*
	 * When a queue of this name exists with other arguments (the broker
	 * refuses the declaration: PRECONDITION_FAILED), keep it as it is
	 * and go on, logging a warning, instead of failing the connection.
	 * For settings an operator may change in a configuration after the
	 * queue was created (a stream's retention). Checked on every
	 * connection's handshake, on a channel of its own.
	 */
	bool keep_existing;
	/*
	 * x-queue-type quorum: replicated on the cluster's nodes (Raft),
	 * survives the loss of a minority of them. Durable, neither
	 * exclusive nor auto-delete. A queue's type cannot change: a queue
	 * declared before with another type makes the broker refuse the
	 * declaration (PRECONDITION_FAILED) until it is deleted.
	 */
	bool quorum;
};

/* A message to publish. Strings may be NULL; the bus copies everything. */
struct bus_msg {
	const char *exchange;
	const char *routing_key;
	const void *body;
	size_t len;
	const char *content_type;
	/* AMQP type: the full protobuf message name, e.g. "mm.v1.HostReport". */
	const char *type;
	/* NULL: the bus generates a unique id. */
	const char *message_id;
	const char *correlation_id;
	const char *reply_to;
	/* Seconds since the epoch; 0 means now. */
	uint64_t timestamp;
	/* Delivery mode 2: survives a broker restart in a durable queue. */
	bool persistent;
	/* Per-message TTL in ms; 0 for none. */
	uint32_t expiration_ms;
	/*
	 * NULL, or a key (at most 255 bytes) that makes the message a level,
	 * not an edge: while it waits in the outbox (not sent yet, or sent
	 * and not confirmed when the connection was lost), a newer message
	 * with the same key takes its place and the older one's confirm
	 * callback gets -ESTALE. Such messages are never refused for a
	 * full outbox: there is at most one per key.
	 */
	const char *supersede_key;
};

/* A message received; valid only during the handler call. */
struct bus_delivery {
	const char *queue;
	const char *exchange;
	const char *routing_key;
	const void *body;
	size_t len;
	/* Properties; empty strings when the publisher did not set them. */
	const char *content_type;
	const char *type;
	const char *message_id;
	const char *correlation_id;
	const char *reply_to;
	const char *app_id;
	uint64_t timestamp;
	bool redelivered;
	/* The message's offset in a stream (x-stream-offset), -1 for a
	 * delivery from any other queue. */
	int64_t stream_offset;
};

enum bus_disposition {
	BUS_ACK,	/* done with it */
	BUS_REJECT,	/* malformed: dead-letter it, never redeliver */
	BUS_REQUEUE,	/* could not handle it now: deliver again later */
};

typedef enum bus_disposition (*bus_handler_cb)(struct bus *bus,
    const struct bus_delivery *d, void *arg);

/* Called once per published message: status 0 when the broker confirmed
 * it, -EIO when it refused it (basic.nack) four times (each time the
 * connection is made again and the message sent again), -ESTALE when a
 * newer message with its supersede_key replaced it, -ECANCELED when the
 * bus was closed before a confirm. */
typedef void (*bus_confirm_cb)(struct bus *bus, int status, void *arg);

typedef void (*bus_close_cb)(void *arg);

struct bus_stats {
	uint64_t published;	/* accepted by bus_publish() */
	uint64_t confirmed;	/* acked by the broker */
	uint64_t nacked;	/* refused by the broker (basic.nack), each
				 * one sent again up to 3 times */
	uint64_t resent;	/* re-sent after a reconnect */
	uint64_t dropped;	/* refused by bus_publish(): outbox full */
	uint64_t superseded;	/* replaced by a newer one, same key */
	uint64_t delivered;	/* handed to a handler */
	uint64_t acked;
	uint64_t rejected;	/* dead-lettered, including oversized */
	uint64_t oversized;	/* bodies over max_body */
	uint64_t requeued;
	uint64_t connects;	/* successful connections */
	uint64_t connect_failures;
	uint64_t disconnects;
	uint64_t failovers;	/* connected to another URL of the list */
	uint64_t confirm_timeouts;	/* connections dropped for a publish
					 * left unconfirmed (confirm_timeout) */
	uint64_t blocked;	/* times the broker blocked publishing */
	uint64_t blocked_ms;	/* for this long in all */
	/* From bus_publish() to the broker's confirm, seconds. */
	struct mx_hist confirm_s;
	size_t outbox;		/* waiting to be sent */
	size_t unconfirmed;	/* sent, not confirmed yet */
	bool up;
	bool is_blocked;	/* the broker blocks publishing now */
};

/* Write st as the mm_bus_* families (docs/metrics.md) into m. */
void bus_metrics(struct mx *m, const struct bus_stats *st);

/*
 * Create a bus on loop. The config is copied (strings too) and the
 * password read (bus_config_check() says why a config is refused).
 * Nothing connects before bus_start(). Returns NULL with errno set:
 * EINVAL for a bad URL or config, EACCES or ENOENT for a file that cannot
 * be read, ENOMEM. Free with bus_close().
 */
struct bus *bus_new(uv_loop_t *loop, const struct bus_config *config);

/*
 * Declare topology. Declarations are kept and replayed on every connection;
 * made while connected they are also sent at once. Names are copied. They
 * return 0, or -EINVAL for bad arguments, -ENOMEM.
 */
int bus_declare_exchange(struct bus *bus, const char *name, const char *type,
    unsigned flags);
int bus_declare_queue(struct bus *bus, const char *name,
    const struct bus_queue_opts *opts);
int bus_bind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key);
/* bus_bind() with string arguments (for a headers exchange): args is a
 * NULL-terminated list of key, value pairs, at most 8 pairs, or NULL. */
int bus_bind_args(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key, const char *const *args);
/* Bind exchange destination to exchange source: what source routes with
 * a matching key also goes through destination. */
int bus_bind_exchange(struct bus *bus, const char *destination,
    const char *source, const char *routing_key);
/* Remove a binding made with bus_bind(); it is no longer replayed.
 * Returns 0 or -ENOENT. */
int bus_unbind(struct bus *bus, const char *queue, const char *exchange,
    const char *routing_key);

/*
 * Consume queue with manual acks; handler (with arg) gets every delivery and
 * its return value settles it. no_ack consumes without acks (for
 * amq.rabbitmq.reply-to). Returns 0, -EINVAL, -ENOMEM.
 */
int bus_consume(struct bus *bus, const char *queue, bool no_ack,
    bus_handler_cb handler, void *arg);

/* Where a stream consumer starts reading. */
enum bus_stream_from {
	BUS_STREAM_FIRST,	/* the oldest message the stream keeps */
	BUS_STREAM_NEXT,	/* only messages appended from now on */
	BUS_STREAM_TIME,	/* the first chunk written at or after time_s */
};

/*
 * Consume the stream queue (bus_queue_opts.stream) from from (with
 * time_s, seconds since the epoch, for BUS_STREAM_TIME; the broker starts
 * at a chunk boundary, so a few older messages may come first). After a
 * reconnect the consumer resumes after the last message handed to
 * handler, so nothing is delivered twice or skipped. Every delivery is
 * acked whatever handler returns: a stream keeps its messages, rejecting
 * one would neither remove nor dead-letter it. Returns 0, -EINVAL,
 * -ENOMEM.
 */
int bus_consume_stream(struct bus *bus, const char *queue,
    enum bus_stream_from from, uint64_t time_s, bus_handler_cb handler,
    void *arg);

/* Begin connecting; returns 0 or -EALREADY. */
int bus_start(struct bus *bus);

/* Whether a message with supersede_key waits in the outbox (not sent
 * yet): the next one with that key will replace it. */
bool bus_pending(const struct bus *bus, const char *supersede_key);

/* The URL connected to, or last tried, without its password. */
const char *bus_current_url(const struct bus *bus);

/*
 * Queue msg for publishing with confirms. cb (may be NULL) reports the
 * outcome. Returns 0, -EINVAL for a message without exchange or body,
 * -ENOBUFS when outbox_max messages are already waiting (counted as
 * dropped; never for a message with a supersede_key), -ESHUTDOWN after
 * bus_close(). While the broker blocks the connection
 * (connection.blocked: it is short of memory or disk) messages wait in
 * the outbox.
 */
int bus_publish(struct bus *bus, const struct bus_msg *msg, bus_confirm_cb cb,
    void *arg);

/* Snapshot of the counters. */
void bus_get_stats(const struct bus *bus, struct bus_stats *ret_stats);

/* True while connected, topology declared and consumers attached. */
bool bus_is_up(const struct bus *bus);

/*
 * Close the bus: wait up to flush_ms for unconfirmed messages (0: do not
 * wait), close the connection, close every handle, report -ECANCELED to
 * the confirm callbacks still pending, free the bus and then call cb (may
 * be NULL). bus may be NULL (cb is then called at once).
 */
void bus_close(struct bus *bus, unsigned flush_ms, bus_close_cb cb, void *arg);

#endif
