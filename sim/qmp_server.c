/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The QMP and agent sockets; see qmp_server.h. A server frees itself only
 * when its listening handle and every client handle have been closed, since
 * libuv may still call into them until their close callbacks have run.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmp_server.h"

#define LINE_MAX_BYTES	(64 * 1024)

struct qmp_conn {
	uv_pipe_t pipe;
	struct qmp_server *srv;
	char *buf;
	size_t len;
	bool closing;
	json_t *id;		/* of the command being handled, borrowed */
	struct qmp_conn *next;
};

struct qmp_server {
	uv_pipe_t pipe;
	uv_loop_t *loop;
	char *path;
	qmp_command_cb cb;
	void *arg;
	struct qmp_conn *conns;
	unsigned open;		/* conns not closing */
	unsigned long dropped;
	bool closing;
	bool closed;		/* the listening handle's close callback ran */
};

static void
server_maybe_free(struct qmp_server *s)
{
	if (!s->closed || s->conns != NULL)
		return;
	free(s->path);
	free(s);
}

static void
server_closed_cb(uv_handle_t *h)
{
	struct qmp_server *s = h->data;

	s->closed = true;
	server_maybe_free(s);
}

static void
conn_closed_cb(uv_handle_t *h)
{
	struct qmp_conn *c = h->data, **pp;
	struct qmp_server *s = c->srv;

	for (pp = &s->conns; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	free(c->buf);
	free(c);
	s->dropped++;
	server_maybe_free(s);
}

static void
conn_close(struct qmp_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->srv->open--;
	uv_close((uv_handle_t *)&c->pipe, conn_closed_cb);
}

struct wreq {
	uv_write_t req;
	void *buf;
};

static void
wreq_cb(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;

	free(w->buf);
	free(w);
}

/* Send buf (taken). */
static int
conn_send_taken(struct qmp_conn *c, void *buf, size_t len)
{
	struct wreq *w;
	uv_buf_t b = uv_buf_init(buf, (unsigned)len);
	int r;

	if (c->closing) {
		free(buf);
		return -EPIPE;
	}
	w = malloc(sizeof(*w));
	if (w == NULL) {
		free(buf);
		return -ENOMEM;
	}
	w->buf = buf;
	r = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, wreq_cb);
	if (r < 0) {
		free(buf);
		free(w);
	}
	return r;
}

int
qmp_conn_send(struct qmp_conn *c, const void *data, size_t len)
{
	void *buf = malloc(len > 0 ? len : 1);

	if (buf == NULL)
		return -ENOMEM;
	memcpy(buf, data, len);
	return conn_send_taken(c, buf, len);
}

int
qmp_server_send(struct qmp_server *s, const void *data, size_t len)
{
	struct qmp_conn *c;
	int n = 0;

	for (c = s->conns; c != NULL; c = c->next)
		if (!c->closing && qmp_conn_send(c, data, len) == 0)
			n++;
	return n;
}

/* j (taken) as a line of text, or NULL. */
static char *
json_line(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT), *line;

	json_decref(j);
	if (s == NULL)
		return NULL;
	if (asprintf(&line, "%s\r\n", s) < 0)
		line = NULL;
	free(s);
	return line;
}

int
qmp_conn_send_json(struct qmp_conn *c, json_t *j)
{
	char *line = json_line(j);

	if (line == NULL)
		return -ENOMEM;
	return conn_send_taken(c, line, strlen(line));
}

int
qmp_server_send_json(struct qmp_server *s, json_t *j)
{
	char *line = json_line(j);
	int n;

	if (line == NULL)
		return -ENOMEM;
	n = qmp_server_send(s, line, strlen(line));
	free(line);
	return n;
}

/* reply (taken) with the command's id. */
static int
conn_reply(struct qmp_conn *c, json_t *reply)
{
	if (reply == NULL)
		return -ENOMEM;
	if (c->id != NULL)
		json_object_set(reply, "id", c->id);
	return qmp_conn_send_json(c, reply);
}

int
qmp_conn_return(struct qmp_conn *c, json_t *ret)
{
	return conn_reply(c, json_pack("{s:o}", "return", ret));
}

int
qmp_conn_error(struct qmp_conn *c, const char *desc)
{
	return conn_reply(c, json_pack("{s:{s:s, s:s}}", "error", "class",
	    "GenericError", "desc", desc));
}

int
qmp_conn_return_raw(struct qmp_conn *c, const char *ret)
{
	char *id = NULL, *line;
	int n;

	if (c->id != NULL) {
		id = json_dumps(c->id, JSON_COMPACT | JSON_ENCODE_ANY);
		if (id == NULL)
			return -ENOMEM;
	}
	n = asprintf(&line, "{\"return\":%s%s%s}\r\n", ret,
	    id != NULL ? ",\"id\":" : "", id != NULL ? id : "");
	free(id);
	if (n < 0)
		return -ENOMEM;
	return conn_send_taken(c, line, (size_t)n);
}

static void
command(struct qmp_conn *c, const char *line, size_t len)
{
	json_t *j = json_loadb(line, len, 0, NULL);

	c->id = json_object_get(j, "id");
	c->srv->cb(c, json_string_value(json_object_get(j, "execute")),
	    json_object_get(j, "arguments"), c->srv->arg);
	c->id = NULL;
	json_decref(j);
}

static void
alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct qmp_conn *c = h->data;

	buf->base = c->buf + c->len;
	buf->len = LINE_MAX_BYTES - c->len;
}

static void
read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct qmp_conn *c = st->data;
	char *start, *nl;

	if (n < 0) {
		conn_close(c);
		return;
	}
	if (c->srv->cb == NULL) {
		c->len = 0;	/* the agent channel is one-way */
		return;
	}
	c->len += (size_t)n;
	start = c->buf;
	while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->buf)))) {
		command(c, start, (size_t)(nl - start));
		start = nl + 1;
	}
	c->len -= (size_t)(start - c->buf);
	memmove(c->buf, start, c->len);
	if (c->len == LINE_MAX_BYTES)
		conn_close(c);
}

static void
connection_cb(uv_stream_t *st, int status)
{
	struct qmp_server *s = st->data;
	struct qmp_conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->buf = malloc(LINE_MAX_BYTES)) == NULL) {
		free(c);
		return;
	}
	c->srv = s;
	uv_pipe_init(s->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = s->conns;
	s->conns = c;
	s->open++;
	if (uv_accept(st, (uv_stream_t *)&c->pipe) < 0) {
		conn_close(c);
		return;
	}
	uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
	if (s->cb != NULL)
		qmp_conn_send_json(c, json_pack("{s:{s:{s:{s:i, s:i, s:i}, "
		    "s:s}, s:[]}}", "QMP", "version", "qemu", "major", 8,
		    "minor", 0, "micro", 0, "package", "mm-sim",
		    "capabilities"));
}

struct qmp_server *
qmp_server_new(uv_loop_t *loop, const char *path, qmp_command_cb cb,
    void *arg)
{
	struct qmp_server *s = calloc(1, sizeof(*s));
	int r;

	if (s == NULL)
		return NULL;
	s->path = strdup(path);
	if (s->path == NULL) {
		free(s);
		return NULL;
	}
	s->loop = loop;
	s->cb = cb;
	s->arg = arg;
	unlink(path);
	uv_pipe_init(loop, &s->pipe, 0);
	s->pipe.data = s;
	r = uv_pipe_bind(&s->pipe, path);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&s->pipe, 16, connection_cb);
	if (r < 0) {
		/* The handle is on the loop: it goes by its close callback. */
		s->closing = true;
		uv_close((uv_handle_t *)&s->pipe, server_closed_cb);
		errno = -r;
		return NULL;
	}
	return s;
}

void
qmp_server_close(struct qmp_server *s)
{
	struct qmp_conn *c;

	if (s == NULL || s->closing)
		return;
	s->closing = true;
	for (c = s->conns; c != NULL; c = c->next)
		conn_close(c);
	unlink(s->path);
	uv_close((uv_handle_t *)&s->pipe, server_closed_cb);
}

unsigned
qmp_server_clients(const struct qmp_server *s)
{
	return s->open;
}

unsigned long
qmp_server_dropped(const struct qmp_server *s)
{
	return s->dropped;
}

struct qmp_conn *
qmp_server_first(struct qmp_server *s)
{
	return s->conns;
}

struct qmp_conn *
qmp_conn_next(struct qmp_conn *c)
{
	return c->next;
}
