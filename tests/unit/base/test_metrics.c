/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the metrics writer and its endpoint: both exposition formats
 * (a counter's names, # UNIT, # EOF), label escaping, the host label of a
 * per-host daemon, cumulative histogram buckets, the Accept negotiation,
 * listen addresses, and the endpoint on a loop: GET /metrics answered
 * while another client hangs mid-request, other methods and paths
 * refused.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "conf.h"
#include "metrics.h"
#include "metrics_http.h"

static char *
render(enum mx_format f, void (*fn)(struct mx *))
{
	struct mx *m = mx_new(f);
	const char *t;
	size_t len;
	char *copy;

	assert_non_null(m);
	fn(m);
	t = mx_finish(m, &len);
	assert_non_null(t);
	assert_int_equal(strlen(t), len);
	copy = strdup(t);
	mx_free(m);
	return copy;
}

static void
some_families(struct mx *m)
{
	mx_family(m, "mm_x_bytes", MX_GAUGE, "bytes", "a size");
	mx_add(m, 1536.0 * 1024, 1, "vm", "web");
	mx_add(m, 0.25, 1, "vm", "a\"b\\c\nd");
	mx_family(m, "mm_y", MX_COUNTER, NULL, "a count");
	mx_addu(m, 18446744073709551615ull, 0);
}

static void
test_metrics_text_format(void **state)
{
	char *t = render(MX_TEXT, some_families);

	(void)state;
	assert_string_equal(t,
	    "# TYPE mm_x_bytes gauge\n"
	    "# HELP mm_x_bytes a size\n"
	    "mm_x_bytes{vm=\"web\"} 1572864\n"
	    "mm_x_bytes{vm=\"a\\\"b\\\\c\\nd\"} 0.25\n"
	    "# TYPE mm_y_total counter\n"
	    "# HELP mm_y_total a count\n"
	    "mm_y_total 18446744073709551615\n");
	free(t);
}

static void
test_metrics_openmetrics_format(void **state)
{
	char *t = render(MX_OPENMETRICS, some_families);

	(void)state;
	/* The family of a counter is named without _total, its samples
	 * with it; units are declared; the text ends with # EOF. */
	assert_non_null(strstr(t, "# TYPE mm_x_bytes gauge\n"
	    "# UNIT mm_x_bytes bytes\n"));
	assert_non_null(strstr(t, "# TYPE mm_y counter\n# HELP mm_y a count\n"
	    "mm_y_total 18446744073709551615\n"));
	assert_string_equal(t + strlen(t) - 6, "# EOF\n");
	free(t);
}

static const double bounds[] = { 0.01, 0.1, 1 };

static void
histogram(struct mx *m)
{
	struct mx_hist h;

	mx_hist_init(&h, bounds, 3);
	mx_hist_observe(&h, 0.005);
	mx_hist_observe(&h, 0.01);	/* le is inclusive */
	mx_hist_observe(&h, 0.5);
	mx_hist_observe(&h, 7);		/* above every bound: +Inf only */
	mx_const_label(m, "host", "h1");
	mx_family(m, "mm_lat_seconds", MX_HISTOGRAM, "seconds", "latency");
	mx_hist(m, &h, "queue", "stats");
}

static void
test_metrics_histogram(void **state)
{
	char *t = render(MX_TEXT, histogram);

	(void)state;
	assert_non_null(strstr(t,
	    "mm_lat_seconds_bucket{host=\"h1\",queue=\"stats\",le=\"0.01\"} 2\n"
	    "mm_lat_seconds_bucket{host=\"h1\",queue=\"stats\",le=\"0.1\"} 2\n"
	    "mm_lat_seconds_bucket{host=\"h1\",queue=\"stats\",le=\"1\"} 3\n"
	    "mm_lat_seconds_bucket{host=\"h1\",queue=\"stats\",le=\"+Inf\"} 4\n"
	    "mm_lat_seconds_count{host=\"h1\",queue=\"stats\"} 4\n"
	    "mm_lat_seconds_sum{host=\"h1\",queue=\"stats\"} 7.515\n"));
	free(t);
}

static void
const_label(struct mx *m)
{
	mx_const_label(m, "host", "h1");
	mx_family(m, "mm_z", MX_GAUGE, NULL, "z");
	mx_add(m, 1, 0);
	mx_add(m, 2, 1, "vm", "db");
}

static void
test_metrics_const_label(void **state)
{
	char *t = render(MX_TEXT, const_label);

	(void)state;
	assert_non_null(strstr(t, "mm_z{host=\"h1\"} 1\n"
	    "mm_z{host=\"h1\",vm=\"db\"} 2\n"));
	free(t);
}

static void
test_metrics_negotiate(void **state)
{
	(void)state;
	/* What Prometheus 2.42 sends. */
	assert_int_equal(mx_negotiate("application/openmetrics-text;"
	    "version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
	    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), MX_OPENMETRICS);
	assert_int_equal(mx_negotiate("*/*"), MX_TEXT);
	assert_int_equal(mx_negotiate(NULL), MX_TEXT);
	assert_non_null(strstr(mx_content_type(MX_OPENMETRICS),
	    "application/openmetrics-text"));
	assert_non_null(strstr(mx_content_type(MX_TEXT), "version=0.0.4"));
}

static void
test_metrics_listen_addresses(void **state)
{
	struct sockaddr_storage ss;
	unsigned len;

	(void)state;
	assert_int_equal(conf_parse_listen("127.0.0.1:9520", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9520);
	assert_int_equal(conf_parse_listen("[::1]:0", &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(conf_parse_listen("localhost:9520", NULL, NULL),
	    -EINVAL);
	assert_int_equal(conf_parse_listen("127.0.0.1", NULL, NULL), -EINVAL);
	assert_int_equal(conf_parse_listen("127.0.0.1:65536", NULL, NULL),
	    -EINVAL);
	assert_int_equal(conf_parse_listen("127.0.0.1:-1", NULL, NULL),
	    -EINVAL);
	assert_int_equal(conf_parse_listen("::1:9520", NULL, NULL), -EINVAL);
	assert_int_equal(conf_parse_listen("[::1]9520", NULL, NULL), -EINVAL);
}

/* ---- the endpoint on a loop ---- */

struct client {
	int port;
	char reply[8192];
	char refused[3][4096];	/* POST, an unknown path; OpenMetrics */
	uv_async_t done;
};

static int
connect_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	return fd;
}

static void
ask(int port, const char *req, char *out, size_t size)
{
	size_t got = 0;
	ssize_t n;
	int fd = connect_to(port);

	out[0] = '\0';
	if (fd < 0)
		return;
	if (write(fd, req, strlen(req)) < 0)
		goto out;
	while (got + 1 < size && (n = read(fd, out + got, size - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
out:
	close(fd);
}

static void *
client_main(void *arg)
{
	struct client *c = arg;
	int stuck = connect_to(c->port);

	/* A client that sends half a request and waits: the loop must go
	 * on serving the others. */
	if (stuck >= 0 && write(stuck, "GET /metr", 9) < 0)
		stuck = -1;
	ask(c->port, "GET /metrics HTTP/1.0\r\n\r\n", c->reply,
	    sizeof(c->reply));
	ask(c->port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
	    c->refused[0], sizeof(c->refused[0]));
	ask(c->port, "GET /other HTTP/1.0\r\n\r\n", c->refused[1],
	    sizeof(c->refused[1]));
	ask(c->port, "GET /metrics HTTP/1.0\r\nAccept: "
	    "application/openmetrics-text; version=1.0.0\r\n\r\n",
	    c->refused[2], sizeof(c->refused[2]));
	if (stuck >= 0)
		close(stuck);
	uv_async_send(&c->done);
	return NULL;
}

static void
loop_state(struct mx *m, void *arg)
{
	int *turns = arg;

	mx_family(m, "mm_test_turns", MX_GAUGE, NULL, "loop turns");
	mx_addu(m, (uint64_t)*turns, 0);
}

static void
done_cb(uv_async_t *a)
{
	uv_close((uv_handle_t *)a, NULL);
}

static void
test_metrics_endpoint(void **state)
{
	static struct client c;
	struct mx_server *srv;
	uv_loop_t loop;
	pthread_t th;
	int turns = 42;
	const char *addr;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_null(mx_server_new(&loop, "127.0.0.1:x", loop_state, &turns));
	assert_int_equal(errno, EINVAL);
	srv = mx_server_new(&loop, "127.0.0.1:0", loop_state, &turns);
	assert_non_null(srv);
	addr = mx_server_addr(srv);
	assert_non_null(strstr(addr, "127.0.0.1:"));
	c.port = atoi(strchr(addr, ':') + 1);
	assert_true(c.port > 0);
	/* A second server on the same port is refused, clearly. */
	{
		char busy[64];

		snprintf(busy, sizeof(busy), "127.0.0.1:%d", c.port);
		assert_null(mx_server_new(&loop, busy, loop_state, &turns));
		assert_int_equal(errno, EADDRINUSE);
	}
	uv_async_init(&loop, &c.done, done_cb);
	assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);

	assert_non_null(strstr(c.reply, " 200 OK\r\n"));
	assert_non_null(strstr(c.reply, "text/plain; version=0.0.4"));
	assert_non_null(strstr(c.reply, "\r\n\r\n# TYPE mm_test_turns gauge"));
	assert_non_null(strstr(c.reply, "mm_test_turns 42\n"));
	assert_non_null(strstr(c.reply, "mm_metrics_scrapes_total 1\n"));
	assert_non_null(strstr(c.refused[0], " 405 "));
	assert_non_null(strstr(c.refused[1], " 404 "));
	assert_non_null(strstr(c.refused[2], "application/openmetrics-text"));
	/* Two refused before this scrape, which is the second. */
	assert_non_null(strstr(c.refused[2], "mm_metrics_refused_total 2\n"));
	assert_non_null(strstr(c.refused[2], "# EOF\n"));

	mx_server_close(srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_metrics_text_format),
		cmocka_unit_test(test_metrics_openmetrics_format),
		cmocka_unit_test(test_metrics_histogram),
		cmocka_unit_test(test_metrics_const_label),
		cmocka_unit_test(test_metrics_negotiate),
		cmocka_unit_test(test_metrics_listen_addresses),
		cmocka_unit_test(test_metrics_endpoint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
