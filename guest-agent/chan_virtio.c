/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The virtio-serial channel: length-prefixed mm.v1.GuestStats frames on
 * the agent's port. Writes never block: while the host side is away the
 * port refuses them (EAGAIN, and POLLHUP), so the newest frame waits and
 * replaces any older waiting one; a broken port is reopened at the next
 * report. A frame begun is always finished on the same open port.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest-agent.h"
#include "log.h"
#include "msg.h"

/* While the host side hangs up, the port is retried this often. */
#define RETRY_MS	1000

struct chan_virtio {
	struct agent_chan ch;
	uv_loop_t *loop;
	char *path;		/* NULL: a test's fd, never reopened */
	int fd;			/* -1 while closed */
	uv_poll_t *poll;	/* watches fd for POLLOUT while a frame waits */
	uv_timer_t *retry;
	uint8_t *cur;		/* the frame being written */
	size_t cur_len, cur_off;
	uint8_t *next;		/* the newest frame not yet begun */
	size_t next_len;
	int logged_err;		/* last open/write error logged, or 0 */
	bool logged_blocked;	/* "host side away" logged */
};

int
chan_virtio_frame(const struct agent_sample *s, uint8_t **ret_buf,
    size_t *ret_len)
{
	Mm__V1__GuestStats g = MM__V1__GUEST_STATS__INIT;
	Mm__V1__ColdBucket cb[MSG_COLD_MAX], *cbp[MSG_COLD_MAX];
	Mm__V1__ReclaimStatus rs = MM__V1__RECLAIM_STATUS__INIT;

	g.vm_id = (char *)s->vm_id;
	g.has_time_ms = true;
	g.time_ms = s->time_ms;
	g.has_source = true;
	g.source = MM__V1__STATS_SOURCE__STATS_SOURCE_AGENT;
	g.has_agent_seq = true;
	g.agent_seq = s->seq;
	/* The sample holds the report's own structs; packing only reads
	 * them. A file that gave nothing is left out whole. */
	if (hs_count(&hs_meminfo_fields, &s->mem) > 0)
		g.meminfo = (Mm__V1__Meminfo *)&s->mem;
	if (hs_count(&hs_vmstat_fields, &s->vm) > 0)
		g.vmstat = (Mm__V1__Vmstat *)&s->vm;
	if (hs_count(&hs_psi_fields, &s->psi) > 0)
		g.psi = (Mm__V1__Psi *)&s->psi;
	for (size_t i = 0; i < s->cold.n && i < MSG_COLD_MAX; i++) {
		mm__v1__cold_bucket__init(&cb[i]);
		cb[i].has_idle_ms = cb[i].has_anon_kib = cb[i].has_file_kib = 1;
		cb[i].idle_ms = s->cold.b[i].idle_ms;
		cb[i].anon_kib = s->cold.b[i].anon_kib;
		cb[i].file_kib = s->cold.b[i].file_kib;
		cbp[i] = &cb[i];
		g.n_cold = i + 1;
	}
	g.cold = g.n_cold > 0 ? cbp : NULL;
	if (s->has_reclaim) {
		rs.has_seq = rs.has_reclaimed_kib = rs.has_state = 1;
		rs.has_stall_pct = 1;
		rs.seq = s->reclaim_seq;
		rs.reclaimed_kib = s->reclaim_kib;
		rs.state = (Mm__V1__ReclaimState)s->reclaim_state;
		rs.stall_pct = s->reclaim_stall_pct;	/* 0..100 */
		g.reclaim = &rs;
	}

	return msg_pack_frame(MSG_GUEST_STATS, &g.base, ret_buf, ret_len);
}

static void
free_handle_cb(uv_handle_t *h)
{
	free(h);
}

static void
close_port(struct chan_virtio *c)
{
	if (c->poll != NULL) {
		uv_close((uv_handle_t *)c->poll, free_handle_cb);
		c->poll = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	/* A half-written frame cannot be finished on another open. */
	free(c->cur);
	c->cur = NULL;
}

static void
log_error(struct chan_virtio *c, const char *what, int err)
{
	if (err == c->logged_err)
		return;
	c->logged_err = err;
	errno = -err;
	log_warn("virtio port \"%s\": %s, keeping the newest report",
	    c->path != NULL ? c->path : "(fd)", what);
}

static int open_port(struct chan_virtio *c);
static void flush(struct chan_virtio *c);

static void
retry_cb(uv_timer_t *t)
{
	struct chan_virtio *c = t->data;

	if (c->fd < 0 && open_port(c) < 0)
		return;
	flush(c);
}

static void
poll_cb(uv_poll_t *p, int status, int events)
{
	struct chan_virtio *c = p->data;

	if (status == 0 && (events & UV_WRITABLE) != 0) {
		flush(c);
		return;
	}
	/*
	 * POLLHUP without POLLOUT: the host side is not connected, and epoll
	 * would report that at every turn of the loop. Look again later.
	 */
	uv_poll_stop(p);
	if (!c->logged_blocked) {
		log_warnx("virtio port \"%s\": host side not connected, "
		    "keeping the newest report",
		    c->path != NULL ? c->path : "(fd)");
		c->logged_blocked = true;
	}
	uv_timer_start(c->retry, retry_cb, RETRY_MS, 0);
}

static int
watch_port(struct chan_virtio *c)
{
	int r;

	if (c->poll == NULL) {
		c->poll = malloc(sizeof(*c->poll));
		if (c->poll == NULL)
			return -ENOMEM;
		r = uv_poll_init(c->loop, c->poll, c->fd);
		if (r < 0) {
			free(c->poll);
			c->poll = NULL;
			return r;
		}
		c->poll->data = c;
	}
	return uv_poll_start(c->poll, UV_WRITABLE, poll_cb);
}

static int
open_port(struct chan_virtio *c)
{
	if (c->path == NULL)
		return -EBADF;
	c->fd = open(c->path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (c->fd < 0) {
		int err = -errno;

		log_error(c, "cannot open", err);
		return err;
	}
	log_debug("virtio port \"%s\" open", c->path);
	return 0;
}

/* Write what waits until done or the port pushes back. */
static void
flush(struct chan_virtio *c)
{
	ssize_t n;
	int r;

	for (;;) {
		if (c->cur == NULL) {
			if (c->next == NULL)
				break;
			c->cur = c->next;
			c->cur_len = c->next_len;
			c->cur_off = 0;
			c->next = NULL;
		}
		n = write(c->fd, c->cur + c->cur_off, c->cur_len - c->cur_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			r = watch_port(c);
			if (r < 0) {
				log_error(c, "cannot watch", r);
				close_port(c);
			}
			return;
		}
		if (n < 0) {
			log_error(c, "write failed", -errno);
			close_port(c);
			return;
		}
		c->cur_off += (size_t)n;
		if (c->cur_off == c->cur_len) {
			free(c->cur);
			c->cur = NULL;
		}
	}
	/* Everything written: the port works. */
	if (c->logged_err != 0 || c->logged_blocked)
		log_info("virtio port \"%s\": reports flow again",
		    c->path != NULL ? c->path : "(fd)");
	c->logged_err = 0;
	c->logged_blocked = false;
	if (c->poll != NULL)
		uv_poll_stop(c->poll);
	uv_timer_stop(c->retry);
}

static int
virtio_send(struct agent_chan *ch, const struct agent_sample *s)
{
	struct chan_virtio *c = (struct chan_virtio *)ch;
	uint8_t *frame;
	size_t len;
	int r;

	r = chan_virtio_frame(s, &frame, &len);
	if (r < 0) {
		log_warnx("virtio: report %llu cannot be encoded (%s)",
		    (unsigned long long)s->seq, strerror(-r));
		return r;
	}
	/* Frames not begun are out of date: only the newest goes out. */
	if (c->cur != NULL && c->cur_off == 0) {
		free(c->cur);
		c->cur = NULL;
	}
	free(c->next);
	c->next = frame;
	c->next_len = len;
	if (c->fd < 0 && open_port(c) < 0)
		return 0;	/* kept; retried at the next report */
	flush(c);
	return 0;
}

static void
virtio_free(struct agent_chan *ch)
{
	struct chan_virtio *c = (struct chan_virtio *)ch;

	close_port(c);
	uv_close((uv_handle_t *)c->retry, free_handle_cb);
	free(c->next);
	free(c->path);
	free(c);
}

static struct chan_virtio *
virtio_alloc(uv_loop_t *loop)
{
	struct chan_virtio *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->retry = malloc(sizeof(*c->retry));
	if (c->retry == NULL) {
		free(c);
		return NULL;
	}
	uv_timer_init(loop, c->retry);
	c->retry->data = c;
	c->ch.name = "virtio";
	c->ch.send = virtio_send;
	c->ch.free = virtio_free;
	c->loop = loop;
	c->fd = -1;
	return c;
}

struct agent_chan *
chan_virtio_new(uv_loop_t *loop, const char *path)
{
	struct chan_virtio *c = virtio_alloc(loop);

	if (c == NULL)
		return NULL;
	c->path = strdup(path);
	if (c->path == NULL) {
		virtio_free(&c->ch);
		errno = ENOMEM;
		return NULL;
	}
	open_port(c);
	return &c->ch;
}

struct agent_chan *
chan_virtio_new_fd(uv_loop_t *loop, int fd)
{
	struct chan_virtio *c = virtio_alloc(loop);

	if (c == NULL)
		return NULL;
	c->fd = fd;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		log_debug("virtio: fd %d stays blocking", fd);
	return &c->ch;
}
