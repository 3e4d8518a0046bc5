/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The /metrics endpoint; see metrics_http.h. libmicrohttpd runs with
 * MHD_USE_EPOLL and no thread of its own: its epoll descriptor is a
 * uv_poll_t on the loop and MHD_get_timeout() drives a timer, as its
 * "external select" mode intends. We bind the listening socket ourselves
 * so that port 0 works and the real address can be logged.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "log.h"
#include "metrics_http.h"

#define MX_CONNECTIONS	16	/* scrapers at once */
#define MX_TIMEOUT_S	10	/* an idle or slow client is dropped */

struct mx_server {
	uv_loop_t *loop;
	struct MHD_Daemon *mhd;
	uv_poll_t poll;
	uv_timer_t timer;
	int open_handles;
	mx_render_cb render_cb;
	void *arg;
	char addr[INET6_ADDRSTRLEN + 16];
	uint64_t scrapes;
	uint64_t refused;	/* not GET /metrics */
	double render_s;	/* time spent writing, in all */
};

static void
mhd_log_cb(void *arg, const char *fmt, va_list ap)
{
	char msg[256];

	(void)arg;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("metrics: %s", msg);
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type,
    const char *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

/* The daemon's own families, then the endpoint's. */
static enum MHD_Result
serve(struct mx_server *srv, struct MHD_Connection *conn)
{
	const char *accept, *text;
	enum MHD_Result r;
	enum mx_format f;
	uint64_t t0;
	struct mx *m;
	size_t len;

	accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_ACCEPT);
	f = mx_negotiate(accept);
	m = mx_new(f);
	if (m == NULL)
		return MHD_NO;
	t0 = uv_hrtime();
	srv->scrapes++;
	srv->render_cb(m, srv->arg);
	mx_single(m, "mm_metrics_scrapes", MX_COUNTER, NULL,
	    "scrapes of this endpoint, this one included", srv->scrapes);
	mx_single(m, "mm_metrics_refused", MX_COUNTER, NULL,
	    "requests other than GET or HEAD of /metrics", srv->refused);
	mx_single(m, "mm_metrics_render_seconds", MX_COUNTER, "seconds",
	    "time the daemon's loop spent writing metrics, before this "
	    "scrape", srv->render_s);
	text = mx_finish(m, &len);
	srv->render_s += (double)(uv_hrtime() - t0) / 1e9;
	r = text != NULL ? reply(conn, MHD_HTTP_OK, mx_content_type(f), text,
	    len) : MHD_NO;
	mx_free(m);
	return r;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	static const char index_text[] = "mm: metrics are at /metrics\n";
	static const char *const text_type = "text/plain; charset=utf-8";
	struct mx_server *srv = cls;
	static int first;

	(void)version;
	(void)upload_data;
	/* The first call is for the headers alone; answer on the second. */
	if (*con_cls == NULL) {
		*con_cls = &first;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0;	/* a body is ignored */
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		srv->refused++;
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text_type,
		    "only GET and HEAD\n", 18);
	}
	if (strcmp(url, "/metrics") == 0)
		return serve(srv, conn);
	if (strcmp(url, "/") == 0)
		return reply(conn, MHD_HTTP_OK, text_type, index_text,
		    sizeof(index_text) - 1);
	srv->refused++;
	return reply(conn, MHD_HTTP_NOT_FOUND, text_type, "not found\n", 10);
}

static void timer_cb(uv_timer_t *t);

/* After MHD ran: wake it again when it wants a timeout handled. */
static void
rearm(struct mx_server *srv)
{
	MHD_UNSIGNED_LONG_LONG ms;

	if (MHD_get_timeout(srv->mhd, &ms) == MHD_YES)
		uv_timer_start(&srv->timer, timer_cb, ms, 0);
	else
		uv_timer_stop(&srv->timer);
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct mx_server *srv = p->data;

	(void)status;
	(void)events;
	MHD_run(srv->mhd);
	rearm(srv);
}

static void
timer_cb(uv_timer_t *t)
{
	struct mx_server *srv = t->data;

	MHD_run(srv->mhd);
	rearm(srv);
}

static int
listen_socket(const char *listen_addr, char *addr, size_t addrlen)
{
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN];
	unsigned len;
	socklen_t sl;
	int fd, on = 1, e;

	if (conf_parse_listen(listen_addr, &ss, &len) < 0)
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    listen(fd, MX_CONNECTIONS) < 0)
		goto fail;
	sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		goto fail;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
		snprintf(addr, addrlen, "%s:%u", host, ntohs(in4->sin_port));
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(addr, addrlen, "[%s]:%u", host,
		    ntohs(in6->sin6_port));
	}
	return fd;
fail:
	e = errno;
	close(fd);
	return -e;
}

struct mx_server *
mx_server_new(uv_loop_t *loop, const char *listen_addr,
    mx_render_cb render_cb, void *arg)
{
	const union MHD_DaemonInfo *info;
	struct mx_server *srv;
	int fd, e;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return NULL;
	srv->loop = loop;
	srv->render_cb = render_cb;
	srv->arg = arg;
	fd = listen_socket(listen_addr, srv->addr, sizeof(srv->addr));
	if (fd < 0) {
		e = -fd;
		goto fail;
	}
	/* MHD closes fd from here on, also when it fails to start. */
	srv->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
	    NULL, NULL, access_cb, srv,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb, NULL,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)MX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)MX_TIMEOUT_S,
	    MHD_OPTION_END);
	if (srv->mhd == NULL) {
		e = EIO;
		goto fail;
	}
	info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || uv_poll_init(loop, &srv->poll,
	    info->epoll_fd) < 0) {
		e = EIO;
		goto fail_mhd;
	}
	srv->poll.data = srv;
	srv->open_handles++;
	uv_timer_init(loop, &srv->timer);
	srv->timer.data = srv;
	srv->open_handles++;
	uv_unref((uv_handle_t *)&srv->poll);
	uv_unref((uv_handle_t *)&srv->timer);
	uv_poll_start(&srv->poll, UV_READABLE, poll_cb);
	rearm(srv);
	return srv;
fail_mhd:
	MHD_stop_daemon(srv->mhd);
fail:
	free(srv);
	errno = e;
	return NULL;
}

const char *
mx_server_addr(const struct mx_server *srv)
{
	return srv->addr;
}

static void
close_cb(uv_handle_t *h)
{
	struct mx_server *srv = h->data;

	if (--srv->open_handles == 0)
		free(srv);
}

void
mx_server_close(struct mx_server *srv)
{
	if (srv == NULL)
		return;
	uv_poll_stop(&srv->poll);
	/* Before the epoll descriptor goes with the daemon. */
	uv_close((uv_handle_t *)&srv->poll, close_cb);
	uv_close((uv_handle_t *)&srv->timer, close_cb);
	MHD_stop_daemon(srv->mhd);
	srv->mhd = NULL;
}

struct mx_server *
mx_server_start(uv_loop_t *loop, const char *listen_addr,
    mx_render_cb render_cb, void *arg)
{
	struct mx_server *srv;

	if (listen_addr == NULL || *listen_addr == '\0')
		return NULL;
	srv = mx_server_new(loop, listen_addr, render_cb, arg);
	if (srv == NULL)
		fatal("metrics: cannot listen on %s", listen_addr);
	log_info("metrics at http://%s/metrics", mx_server_addr(srv));
	return srv;
}
