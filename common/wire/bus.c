/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bus: construction, the connection's lifecycle, close (bus_int.h
 * says how the bus is laid out).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/random.h>

#include "bus_int.h"
#include "log.h"

void
bus_format_reply(char *buf, size_t size, const char *what,
    amqp_rpc_reply_t r)
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


/* ---- construction ---- */

/* One URL of the list into endpoint i; the first also gives the user,
 * vhost and scheme (bus_config_check() checked that the others agree)
 * and, unless it comes from elsewhere, the password. */
static int
parse_one(struct bus *bus, const char *url, size_t i,
    const struct bus_check *chk)
{
	struct amqp_connection_info info;
	struct endpoint *ep = &bus->eps[i];
	char *buf = strdup(url);
	char shown[BUS_URL_MAX];
	int r = 0;

	if (buf == NULL)
		return -ENOMEM;
	amqp_default_connection_info(&info);
	if (amqp_parse_url(buf, &info) != AMQP_STATUS_OK) {
		free(buf);
		return -EINVAL;
	}
	ep->host = strdup(info.host);
	ep->port = info.port;
	ep->shown = strdup(bus_url_redact(url, shown, sizeof(shown)));
	if (ep->host == NULL || ep->shown == NULL)
		r = -ENOMEM;
	if (i == 0) {
		bus->user = strdup(info.user);
		bus->password = strdup(chk->password_from ==
		    BUS_PASSWORD_URL ? info.password : chk->password);
		bus->vhost = strdup(info.vhost);
		bus->tls = info.ssl;
		if (bus->user == NULL || bus->password == NULL ||
		    bus->vhost == NULL)
			r = -ENOMEM;
	}
	explicit_bzero(buf, strlen(url));
	free(buf);
	return r;
}

/* The URLs (bus_config_check() has accepted them) and the password
 * chosen. */
static int
parse_url(struct bus *bus, const struct bus_config *config,
    const struct bus_check *chk)
{
	char urls[BUS_URLS_MAX][BUS_URL_MAX];
	char shown[BUS_URLS_MAX * 64];
	size_t n;
	int r;

	r = bus_url_split(config->url, urls, BUS_URLS_MAX, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = parse_one(bus, urls[i], i, chk);
		bus->neps = i + 1;
	}
	for (size_t i = 0; i < BUS_URLS_MAX; i++)
		explicit_bzero(urls[i], sizeof(urls[i]));
	if (r < 0)
		return r;
	bus->url = strdup(bus_url_redact(config->url, shown,
	    sizeof(shown)));
	bus->ca_file = xstrdup(config->ca_file);
	bus->cert_file = xstrdup(config->cert_file);
	bus->key_file = xstrdup(config->key_file);
	bus->verify_peer = !config->no_verify_peer;
	bus->verify_hostname = !config->no_verify_hostname;
	if (bus->url == NULL ||
	    !dup_ok(config->ca_file, bus->ca_file) ||
	    !dup_ok(config->cert_file, bus->cert_file) ||
	    !dup_ok(config->key_file, bus->key_file))
		r = -ENOMEM;
	return r;
}

static void
bus_release(struct bus *bus)
{
	struct consumer *k = bus->consumers;

	bus_decl_list_free(bus->decls);
	bus_decl_list_free(bus->unbinds);
	while (k != NULL) {
		struct consumer *next = k->next;

		free(k->queue);
		free(k);
		k = next;
	}
	bus_outbox_free(bus);
	free(bus->url);
	for (size_t i = 0; i < bus->neps; i++) {
		free(bus->eps[i].host);
		free(bus->eps[i].shown);
	}
	free(bus->user);
	if (bus->password != NULL)
		explicit_bzero(bus->password, strlen(bus->password));
	free(bus->password);
	free(bus->ca_file);
	free(bus->cert_file);
	free(bus->key_file);
	free(bus->vhost);
	free(bus->app_id);
	free(bus->body);
	free(bus);
}

struct bus *
bus_new(uv_loop_t *loop, const struct bus_config *config)
{
	struct bus_check chk;
	struct bus *bus;
	uint64_t rnd = 0;
	int r;

	if (loop == NULL || config == NULL) {
		errno = EINVAL;
		return NULL;
	}
	r = bus_config_check(config, &chk);
	if (r < 0) {
		log_debug("bus: %s", chk.err);
		errno = -r;
		return NULL;
	}
	bus = calloc(1, sizeof(*bus));
	if (bus == NULL) {
		explicit_bzero(chk.password, sizeof(chk.password));
		return NULL;
	}
	bus->loop = loop;
	mx_hist_init(&bus->stats.confirm_s, mx_bounds_latency,
	    mx_bounds_latency_n);
	bus->decls_tail = &bus->decls;
	bus->consumers_tail = &bus->consumers;
	bus->app_id = strdup(config->app_id != NULL ? config->app_id : "mm");
	r = bus->app_id != NULL ? parse_url(bus, config, &chk) : -ENOMEM;
	explicit_bzero(chk.password, sizeof(chk.password));
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
	    config->reconnect_max_ms : 3000;
	if (bus->backoff_max_ms < bus->backoff_min_ms)
		bus->backoff_max_ms = bus->backoff_min_ms;
	bus->connect_timeout_ms = config->connect_timeout_ms ?
	    config->connect_timeout_ms : 5000;
	bus->confirm_timeout_ms = config->confirm_timeout_ms ?
	    config->confirm_timeout_ms : 5000;
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
		bus_ack_flush(bus);
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
	bus_outbox_requeue(bus);
	bus_set_blocked(bus, false);
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

/*
 * Try again: with a list, the next URL, at once while some of the list has
 * not been tried since the last success (a node lost, its neighbours
 * serve), with a growing backoff once the whole list has failed.
 */
static void
schedule_retry(struct bus *bus)
{
	unsigned delay = bus->backoff_ms;
	uint32_t jitter = 0;

	bus->ep_failed++;
	if (bus->neps > 1) {
		bus->ep = (bus->ep + 1) % bus->neps;
		if (bus->ep_failed % bus->neps != 0)
			delay = bus->backoff_min_ms;
	}
	/* +-25 % so a fleet does not reconnect in lockstep. */
	if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) !=
	    sizeof(jitter))
		jitter = 0;
	if (delay == bus->backoff_ms)
		bus->backoff_ms = bus->backoff_ms * 2 > bus->backoff_max_ms ?
		    bus->backoff_max_ms : bus->backoff_ms * 2;
	delay = delay * 3 / 4 + (unsigned)(jitter % (delay / 2 + 1));
	bus->state = ST_BACKOFF;
	uv_timer_start(&bus->retry, retry_cb, delay, 0);
}

void
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
	if (bus->closing && (job->amqp == NULL || bus_flush_done(bus))) {
		bus_job_free(job);
		bus_finish_close(bus);
		return;
	}
	if (status < 0 || job->amqp == NULL) {
		bus->stats.connect_failures++;
		log_debug("bus: %s", job->reason);
		schedule_retry(bus);
		notify(bus, false, job->reason[0] ? job->reason :
		    "connection cancelled");
		bus_job_free(job);
		return;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL) {
		bus->stats.connect_failures++;
		schedule_retry(bus);
		notify(bus, false, "out of memory");
		bus_job_free(job);
		return;
	}
	conn->bus = bus;
	conn->amqp = job->amqp;
	job->amqp = NULL;
	/* Said once at warning, then at debug on every reconnect. */
	if (job->warning[0] != '\0') {
		if (bus->warned_kept)
			log_debug("bus: %s", job->warning);
		else
			log_warn("bus: %s", job->warning);
		bus->warned_kept = true;
	}
	bus->window = job->window;
	snap_seq = job->snap_seq;
	bus_job_free(job);
	bus->open_handles++;
	bus->conn = conn;
	r = uv_poll_init(bus->loop, &conn->poll, amqp_get_sockfd(conn->amqp));
	if (r == 0) {
		conn->poll.data = conn;
		conn->polling = true;
		r = uv_poll_start(&conn->poll, UV_READABLE, bus_poll_cb);
	}
	bus->state = ST_UP;
	if (r < 0) {
		bus_fail(bus, "polling socket: %s", uv_strerror(r));
		return;
	}
	if (bus_replay_late(bus, snap_seq) < 0)
		return;
	bus->next_tag = 0;
	bus->backoff_ms = bus->backoff_min_ms;
	if (bus->stats.connects > 0 && bus->ep != bus->ep_last)
		bus->stats.failovers++;
	bus->ep_last = bus->ep;
	bus->ep_failed = 0;
	bus->stats.connects++;
	uv_timer_start(&bus->tick, bus_tick_cb, TICK_MS, TICK_MS);
	notify(bus, true, NULL);
	bus_flush(bus);
	if (bus->state == ST_UP)
		bus_drain(bus);
}

/* Send what was declared, removed or consumed while connecting. */
int
bus_replay_late(struct bus *bus, uint64_t snap_seq)
{
	char reason[REASON_MAX];
	struct conn *conn = bus->conn;

	for (struct decl *d = bus->unbinds; d != NULL && bus->conn == conn;
	    d = d->next)
		bus_unbind_send(bus, d);
	bus_decl_list_free(bus->unbinds);
	bus->unbinds = NULL;
	for (struct decl *d = bus->decls; d != NULL && bus->conn == conn;
	    d = d->next) {
		if (d->seq >= snap_seq &&
		    bus_decl_send(conn->amqp, d, false, reason,
		    sizeof(reason), CH_PUB) < 0)
			bus_fail(bus, "%s", reason);
	}
	for (struct consumer *k = bus->consumers;
	    k != NULL && bus->conn == conn; k = k->next) {
		if (k->seq >= snap_seq &&
		    bus_consume_send(conn->amqp, k, false, reason,
		    sizeof(reason)) < 0)
			bus_fail(bus, "%s", reason);
	}
	return bus->conn == conn ? 0 : -EIO;
}

/* Closing, and nothing left to wait for: no message or no time. */
bool
bus_flush_done(struct bus *bus)
{
	return (bus->outbox.head == NULL && bus->unconfirmed.head == NULL) ||
	    mono_ms(bus->loop) >= bus->flush_deadline_ms;
}

void
bus_connect(struct bus *bus)
{
	struct connect_job *job;
	int r;

	if (bus->closing && bus_flush_done(bus))
		return;
	job = bus_job_new(bus);
	if (job == NULL) {
		schedule_retry(bus);
		return;
	}
	bus->state = ST_CONNECTING;
	bus->job = job;
	bus->open_handles++;
	r = uv_queue_work(bus->loop, &job->work, bus_connect_work_cb,
	    connect_after_cb);
	if (r < 0) {
		bus->job = NULL;
		bus->open_handles--;
		bus_job_free(job);
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

const char *
bus_current_url(const struct bus *bus)
{
	return bus->eps[bus->ep].shown;
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
	if (bus->blocked)
		ret_stats->blocked_ms += mono_ms(bus->loop) -
		    bus->blocked_since;
	ret_stats->is_blocked = bus->blocked;
	ret_stats->outbox = bus->outbox.count;
	ret_stats->unconfirmed = bus->unconfirmed.count;
	ret_stats->up = bus->state == ST_UP;
}

/* Everything is flushed or given up on: close the connection and the
 * handles; the last close callback frees the bus. */
void
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
	while ((m = bus_msgq_pop(&bus->outbox)) != NULL)
		bus_confirm_done(bus, m, -ECANCELED);
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
	if (bus->state == ST_IDLE || bus_flush_done(bus)) {
		bus_finish_close(bus);
		return;
	}
	/* bus_flush() and bus_tick_cb() finish when the outbox is empty or the
	 * deadline passes; a connection being made may still deliver. */
	uv_timer_stop(&bus->retry);
	if (bus->state == ST_BACKOFF)
		bus_connect(bus);
	uv_timer_start(&bus->tick, bus_tick_cb, TICK_MS, TICK_MS);
}
