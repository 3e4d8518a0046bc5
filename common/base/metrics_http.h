/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Prometheus endpoint of a daemon: GET /metrics on the [metrics]
 * listen address, served by libmicrohttpd on the daemon's own loop (its
 * epoll descriptor polled by libuv, no thread), so a scrape reads the
 * daemon's state as it is between two callbacks, without locks or copies,
 * and a slow or stuck client never blocks the loop. Only this file
 * includes microhttpd.h.
 */
#ifndef MM_METRICS_HTTP_H
#define MM_METRICS_HTTP_H

#include <stddef.h>

#include <uv.h>

#include "conf.h"
#include "metrics.h"

/* The [metrics] section every daemon has. type is the program's config
 * struct, member a char * field. */
#define METRICS_CONF_KEYS(type, member)					\
	{ "metrics", "listen", CONF_LISTEN, 0, 300, NULL,		\
	  offsetof(type, member), NULL,					\
	  "address of the Prometheus endpoint (/metrics), e.g. "	\
	  "127.0.0.1:9520; unset or empty: none" }

/* Writes the daemon's families into m, on the loop, for one scrape. */
typedef void (*mx_render_cb)(struct mx *m, void *arg);

struct mx_server;

/*
 * Listen on listen (a CONF_LISTEN value, not empty) and serve render_cb's
 * text at /metrics from loop. Returns NULL with errno set: EINVAL (bad
 * address), EADDRINUSE and the like from bind(), ENOMEM. Close with
 * mx_server_close().
 */
struct mx_server *mx_server_new(uv_loop_t *loop, const char *listen,
    mx_render_cb render_cb, void *arg);

/* The address it listens on ("127.0.0.1:9520", the real port where 0
 * was asked for), static in srv. */
const char *mx_server_addr(const struct mx_server *srv);

/* Stop serving and close its handles; srv is freed once they are closed.
 * NULL is a no-op. */
void mx_server_close(struct mx_server *srv);

/*
 * The [metrics] start of a daemon: NULL when listen is NULL or empty;
 * else mx_server_new(), logging where it serves; a failure is fatal
 * (the daemon has not started yet).
 */
struct mx_server *mx_server_start(uv_loop_t *loop, const char *listen,
    mx_render_cb render_cb, void *arg);

#endif
