/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus's handshake, on the thread pool: connect, log in, open the
 * channels, replay the declarations and consumers.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "bus_int.h"
#include "log.h"

/* ---- the handshake, on the thread pool ---- */

void
bus_job_free(struct connect_job *job)
{
	struct consumer *k;

	if (job == NULL)
		return;
	bus_decl_list_free(job->decls);
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
struct connect_job *
bus_job_new(struct bus *bus)
{
	struct connect_job *job = calloc(1, sizeof(*job));
	struct decl **dt;
	struct consumer **kt;

	if (job == NULL)
		return NULL;
	job->bus = bus;
	job->work.data = job;
	job->snap_seq = bus->seq;
	job->ep = bus->ep;
	bus_decl_list_free(bus->unbinds);
	bus->unbinds = NULL;
	dt = &job->decls;
	for (struct decl *d = bus->decls; d != NULL; d = d->next) {
		*dt = bus_decl_dup(d);
		if (*dt == NULL)
			goto fail;
		dt = &(*dt)->next;
	}
	kt = &job->consumers;
	for (struct consumer *k = bus->consumers; k != NULL; k = k->next) {
		*kt = malloc(sizeof(**kt));
		if (*kt == NULL)
			goto fail;
		/* All of it (the handshake's bus_consume_send() reads the stream
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
	bus_job_free(job);
	return NULL;
}

/* A TLS socket with the configured CA, client key and checks. */
static amqp_socket_t *
tls_socket(struct connect_job *job, amqp_connection_state_t c)
{
	const struct bus *bus = job->bus;
	amqp_socket_t *sock = amqp_ssl_socket_new(c);
	int r;

	if (sock == NULL) {
		snprintf(job->reason, sizeof(job->reason),
		    "cannot create a TLS socket");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(sock, bus->verify_peer);
	amqp_ssl_socket_set_verify_hostname(sock, bus->verify_hostname);
	if (bus->ca_file != NULL &&
	    (r = amqp_ssl_socket_set_cacert(sock, bus->ca_file)) !=
	    AMQP_STATUS_OK) {
		snprintf(job->reason, sizeof(job->reason), "ca_file \"%s\": "
		    "not a PEM certificate file: %s", bus->ca_file,
		    amqp_error_string2(r));
		return NULL;
	}
	if (bus->cert_file != NULL &&
	    (r = amqp_ssl_socket_set_key(sock, bus->cert_file,
	    bus->key_file)) != AMQP_STATUS_OK) {
		snprintf(job->reason, sizeof(job->reason), "cert_file \"%s\" "
		    "and key_file \"%s\": not a PEM certificate and its key: "
		    "%s", bus->cert_file, bus->key_file,
		    amqp_error_string2(r));
		return NULL;
	}
	return sock;
}

/* Why opening the socket failed, in the words of the configuration. */
static const char *
open_error(const struct bus *bus, int r)
{
	switch (r) {
	case AMQP_STATUS_SSL_PEER_VERIFY_FAILED:
	case AMQP_STATUS_SSL_CONNECTION_FAILED:
		/* A certificate the CA did not sign fails in the handshake
		 * itself, as a failed connection. */
		return bus->verify_peer ? "TLS handshake failed: the "
		    "broker's certificate failed verification against "
		    "ca_file, or the broker refused this client's "
		    "certificate" : "TLS handshake failed";
	case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED:
		return "TLS certificate verification failed: the broker's "
		    "certificate is not for this host name (verify_hostname)";
	default:
		return amqp_error_string2(r);
	}
}

static int
rpc_check(amqp_connection_state_t c, const char *what, char *reason,
    size_t rsize)
{
	amqp_rpc_reply_t reply = amqp_get_rpc_reply(c);

	if (reply.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	bus_format_reply(reason, rsize, what, reply);
	return -EPROTO;
}

/*
 * Declarations with keep_existing are tried first on a channel of their
 * own: when the broker refuses one because the queue exists with other
 * arguments (406), the channel it closed is acknowledged, the copy is
 * marked to be skipped on CH_PUB, and a warning says so. Other refusals
 * fail the handshake as on CH_PUB.
 */
static int
probe_keep_existing(amqp_connection_state_t c, struct connect_job *job)
{
	for (struct decl *d = job->decls; d != NULL; d = d->next) {
		char reason[REASON_MAX];
		amqp_rpc_reply_t reply;
		amqp_channel_close_t *m;
		amqp_channel_close_ok_t ok = { 0 };

		if (d->kind != DECL_QUEUE || !d->qopts.keep_existing)
			continue;
		amqp_channel_open(c, CH_PROBE);
		if (rpc_check(c, "opening channel", job->reason,
		    sizeof(job->reason)) < 0)
			return -EPROTO;
		if (bus_decl_send(c, d, true, reason, sizeof(reason),
		    CH_PROBE) == 0) {
			amqp_channel_close(c, CH_PROBE, AMQP_REPLY_SUCCESS);
			if (rpc_check(c, "closing channel", job->reason,
			    sizeof(job->reason)) < 0)
				return -EPROTO;
			continue;
		}
		reply = amqp_get_rpc_reply(c);
		m = reply.reply.decoded;
		if (reply.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
		    reply.reply.id != AMQP_CHANNEL_CLOSE_METHOD || m == NULL ||
		    m->reply_code != AMQP_PRECONDITION_FAILED) {
			snprintf(job->reason, sizeof(job->reason), "%s",
			    reason);
			return -EPROTO;
		}
		if (amqp_send_method(c, CH_PROBE,
		    AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK) {
			snprintf(job->reason, sizeof(job->reason), "%.400s: "
			    "acknowledging the refusal failed", reason);
			return -EIO;
		}
		d->skip = true;
		snprintf(job->warning, sizeof(job->warning), "queue \"%.200s\" "
		    "exists with other arguments than configured: kept as "
		    "it is (%.*s)", d->name, (int)(m->reply_text.len < 200 ?
		    m->reply_text.len : 200),
		    (const char *)m->reply_text.bytes);
	}
	return 0;
}

void
bus_connect_work_cb(uv_work_t *work)
{
	struct connect_job *job = work->data;
	struct bus *bus = job->bus;	/* configuration only: immutable */
	const struct endpoint *ep = &bus->eps[job->ep];
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
	if (bus->tls) {
		sock = tls_socket(job, c);
		if (sock == NULL)
			goto fail;
	} else {
		sock = amqp_tcp_socket_new(c);
		if (sock == NULL) {
			snprintf(job->reason, sizeof(job->reason),
			    "cannot create socket");
			goto fail;
		}
	}
	r = amqp_socket_open_noblock(sock, ep->host, ep->port, &tv);
	if (r != AMQP_STATUS_OK) {
		snprintf(job->reason, sizeof(job->reason),
		    "connecting to %s:%d%s: %s", ep->host, ep->port,
		    bus->tls ? " (TLS)" : "", open_error(bus, r));
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
		    "\"%s\" as \"%s\"", ep->host, ep->port, bus->vhost,
		    bus->user);
		bus_format_reply(job->reason, sizeof(job->reason), what, reply);
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
	if (probe_keep_existing(c, job) < 0)
		goto fail;
	for (const struct decl *d = job->decls; d != NULL; d = d->next)
		if (!d->skip && bus_decl_send(c, d, true, job->reason,
		    sizeof(job->reason), CH_PUB) < 0)
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
		if (bus_consume_send(c, k, true, job->reason,
		    sizeof(job->reason)) < 0)
			goto fail;
	amqp_maybe_release_buffers(c);
	return;
fail:
	amqp_destroy_connection(c);
	job->amqp = NULL;
}
