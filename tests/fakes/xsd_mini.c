/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xenstored test double; see xsd_mini.h. One poll() loop on a thread
 * of its own; the store is a flat list of (path, value) with parents
 * implied, which is all a test needs and easy to check by eye.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

#include "xsd_mini.h"

#define MAX_CLIENTS	16
#define MAX_WATCHES	256
#define MAX_NODES	4096

struct client {
	int fd;
	uint8_t buf[sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX];
	size_t len;
};

struct watch {
	int client;
	char *path;
	char *token;
};

struct node {
	char *path;
	char *value;
};

struct xsd_mini {
	char *path;
	int lfd;
	int stop[2];
	pthread_t thread;
	struct client c[MAX_CLIENTS];
	struct watch w[MAX_WATCHES];
	int nw;
	struct node n[MAX_NODES];
	int nn;
	unsigned long requests;
	pthread_mutex_t lock;	/* the store, watches and client writes */
};

static void
send_msg(struct xsd_mini *x, int ci, uint32_t type, uint32_t req_id,
    uint32_t tx_id, const void *data, size_t len)
{
	struct xsd_sockmsg h = { type, req_id, tx_id, (uint32_t)len };
	uint8_t out[sizeof(h) + XENSTORE_PAYLOAD_MAX];
	size_t off = 0;
	ssize_t n;

	if (x->c[ci].fd < 0 || len > XENSTORE_PAYLOAD_MAX)
		return;
	memcpy(out, &h, sizeof(h));
	memcpy(out + sizeof(h), data, len);
	while (off < sizeof(h) + len) {
		n = write(x->c[ci].fd, out + off, sizeof(h) + len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		off += (size_t)n;
	}
}

/* Is path at or below watched (component-wise)? */
static bool
below(const char *path, const char *watched)
{
	size_t l = strlen(watched);

	return strncmp(path, watched, l) == 0 &&
	    (path[l] == '\0' || path[l] == '/');
}

static void
fire(struct xsd_mini *x, const char *path)
{
	char ev[XENSTORE_PAYLOAD_MAX];
	size_t lp, lt;
	int i;

	for (i = 0; i < x->nw; i++) {
		if (path[0] == '@' ? strcmp(path, x->w[i].path) != 0 :
		    !below(path, x->w[i].path))
			continue;
		lp = strlen(path) + 1;
		lt = strlen(x->w[i].token) + 1;
		if (lp + lt > sizeof(ev))
			continue;
		memcpy(ev, path, lp);
		memcpy(ev + lp, x->w[i].token, lt);
		send_msg(x, x->w[i].client, XS_WATCH_EVENT, 0, 0, ev, lp + lt);
	}
}

static int
find(struct xsd_mini *x, const char *path)
{
	int i;

	for (i = 0; i < x->nn; i++)
		if (strcmp(x->n[i].path, path) == 0)
			return i;
	return -1;
}

static bool
exists(struct xsd_mini *x, const char *path)
{
	int i;

	for (i = 0; i < x->nn; i++)
		if (below(x->n[i].path, path))
			return true;
	return false;
}

static int
store(struct xsd_mini *x, const char *path, const char *value, size_t len)
{
	int i = find(x, path);

	if (i < 0) {
		if (x->nn == MAX_NODES)
			return -ENOSPC;
		i = x->nn++;
		x->n[i].path = strdup(path);
		x->n[i].value = NULL;
	}
	free(x->n[i].value);
	x->n[i].value = strndup(value, len);
	return 0;
}

static void
rm(struct xsd_mini *x, const char *path)
{
	int i;

	for (i = x->nn - 1; i >= 0; i--) {
		if (!below(x->n[i].path, path))
			continue;
		free(x->n[i].path);
		free(x->n[i].value);
		x->n[i] = x->n[--x->nn];
	}
}

/* The immediate children of path, NUL-separated, without duplicates. */
static size_t
directory(struct xsd_mini *x, const char *path, char *out, size_t size)
{
	size_t l = strlen(path), len = 0, k;
	const char *child, *p;
	int i;

	for (i = 0; i < x->nn; i++) {
		if (strncmp(x->n[i].path, path, l) != 0 ||
		    x->n[i].path[l] != '/')
			continue;
		child = x->n[i].path + l + 1;
		k = strcspn(child, "/");
		for (p = out; p < out + len; p += strlen(p) + 1)
			if (strlen(p) == k && strncmp(p, child, k) == 0)
				break;
		if (p < out + len || len + k + 1 > size)
			continue;
		memcpy(out + len, child, k);
		out[len + k] = '\0';
		len += k + 1;
	}
	return len;
}

static void
reply_ok(struct xsd_mini *x, int ci, const struct xsd_sockmsg *h)
{
	send_msg(x, ci, h->type, h->req_id, h->tx_id, "OK", 3);
}

static void
reply_err(struct xsd_mini *x, int ci, const struct xsd_sockmsg *h,
    const char *err)
{
	send_msg(x, ci, XS_ERROR, h->req_id, h->tx_id, err, strlen(err) + 1);
}

static void
request(struct xsd_mini *x, int ci, const struct xsd_sockmsg *h, char *p)
{
	char out[XENSTORE_PAYLOAD_MAX];
	size_t plen, len;
	int i;

	x->requests++;
	p[h->len] = '\0';	/* the buffer has room for it */
	plen = strlen(p);
	switch (h->type) {
	case XS_READ:
		i = find(x, p);
		if (i < 0 && !exists(x, p))
			reply_err(x, ci, h, "ENOENT");
		else if (i < 0)
			send_msg(x, ci, h->type, h->req_id, h->tx_id, "", 0);
		else
			send_msg(x, ci, h->type, h->req_id, h->tx_id,
			    x->n[i].value, strlen(x->n[i].value));
		break;
	case XS_WRITE:
		if (plen >= h->len) {
			reply_err(x, ci, h, "EINVAL");
			break;
		}
		store(x, p, p + plen + 1, h->len - plen - 1);
		reply_ok(x, ci, h);
		fire(x, p);
		break;
	case XS_MKDIR:
		if (!exists(x, p))
			store(x, p, "", 0);
		reply_ok(x, ci, h);
		fire(x, p);
		break;
	case XS_RM:
		rm(x, p);
		reply_ok(x, ci, h);
		fire(x, p);
		break;
	case XS_DIRECTORY:
		if (!exists(x, p)) {
			reply_err(x, ci, h, "ENOENT");
			break;
		}
		len = directory(x, p, out, sizeof(out));
		send_msg(x, ci, h->type, h->req_id, h->tx_id, out, len);
		break;
	case XS_WATCH:
		if (x->nw == MAX_WATCHES || plen >= h->len) {
			reply_err(x, ci, h, "ENOSPC");
			break;
		}
		x->w[x->nw].client = ci;
		x->w[x->nw].path = strdup(p);
		x->w[x->nw].token = strdup(p + plen + 1);
		x->nw++;
		reply_ok(x, ci, h);
		/* A new watch fires once at once, as xenstored's does. */
		{
			size_t lt = strlen(p + plen + 1) + 1;

			memcpy(out, p, plen + 1);
			memcpy(out + plen + 1, p + plen + 1, lt);
			send_msg(x, ci, XS_WATCH_EVENT, 0, 0, out,
			    plen + 1 + lt);
		}
		break;
	case XS_UNWATCH:
		for (i = 0; i < x->nw; i++) {
			if (x->w[i].client != ci ||
			    strcmp(x->w[i].path, p) != 0 ||
			    plen >= h->len ||
			    strcmp(x->w[i].token, p + plen + 1) != 0)
				continue;
			free(x->w[i].path);
			free(x->w[i].token);
			x->w[i] = x->w[--x->nw];
			break;
		}
		reply_ok(x, ci, h);
		break;
	case XS_TRANSACTION_START:
		send_msg(x, ci, h->type, h->req_id, h->tx_id, "1", 2);
		break;
	case XS_INTRODUCE:
		reply_ok(x, ci, h);
		fire(x, "@introduceDomain");
		break;
	case XS_RELEASE:
		reply_ok(x, ci, h);
		fire(x, "@releaseDomain");
		break;
	case XS_GET_PERMS:
		send_msg(x, ci, h->type, h->req_id, h->tx_id, "n0", 3);
		break;
	case XS_TRANSACTION_END:
	case XS_SET_PERMS:
	case XS_RESET_WATCHES:
		reply_ok(x, ci, h);
		break;
	default:
		reply_err(x, ci, h, "ENOSYS");
		break;
	}
}

static void
drop(struct xsd_mini *x, int ci)
{
	int i;

	pthread_mutex_lock(&x->lock);
	close(x->c[ci].fd);
	x->c[ci].fd = -1;
	for (i = x->nw - 1; i >= 0; i--) {
		if (x->w[i].client != ci)
			continue;
		free(x->w[i].path);
		free(x->w[i].token);
		x->w[i] = x->w[--x->nw];
	}
	pthread_mutex_unlock(&x->lock);
}

static void
readable(struct xsd_mini *x, int ci)
{
	struct client *c = &x->c[ci];
	struct xsd_sockmsg h;
	ssize_t n;

	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
	if (n <= 0) {
		drop(x, ci);
		return;
	}
	c->len += (size_t)n;
	while (c->len >= sizeof(h)) {
		memcpy(&h, c->buf, sizeof(h));
		if (h.len > XENSTORE_PAYLOAD_MAX) {
			drop(x, ci);
			return;
		}
		if (c->len < sizeof(h) + h.len)
			break;
		{
			char p[XENSTORE_PAYLOAD_MAX + 1];

			memcpy(p, c->buf + sizeof(h), h.len);
			pthread_mutex_lock(&x->lock);
			request(x, ci, &h, p);
			pthread_mutex_unlock(&x->lock);
		}
		if (c->fd < 0)
			return;
		c->len -= sizeof(h) + h.len;
		memmove(c->buf, c->buf + sizeof(h) + h.len, c->len);
	}
}

static void *
serve(void *arg)
{
	struct xsd_mini *x = arg;
	struct pollfd pfd[MAX_CLIENTS + 2];
	int i, n, fd;

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = x->stop[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = x->lfd, .events = POLLIN };
		for (i = 0; i < MAX_CLIENTS; i++)
			pfd[i + 2] = (struct pollfd){ .fd = x->c[i].fd,
			    .events = POLLIN };
		n = poll(pfd, MAX_CLIENTS + 2, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN) {
			fd = accept4(x->lfd, NULL, NULL, SOCK_CLOEXEC);
			for (i = 0; fd >= 0 && i < MAX_CLIENTS; i++) {
				if (x->c[i].fd < 0) {
					x->c[i].fd = fd;
					x->c[i].len = 0;
					break;
				}
			}
			if (fd >= 0 && i == MAX_CLIENTS)
				close(fd);
		}
		for (i = 0; i < MAX_CLIENTS; i++)
			if (x->c[i].fd >= 0 &&
			    (pfd[i + 2].revents & (POLLIN | POLLHUP | POLLERR)))
				readable(x, i);
	}
	return NULL;
}

struct xsd_mini *
xsd_mini_start(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xsd_mini *x;
	int i;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	for (i = 0; i < MAX_CLIENTS; i++)
		x->c[i].fd = -1;
	x->path = strdup(path);
	pthread_mutex_init(&x->lock, NULL);
	strcpy(sa.sun_path, path);
	unlink(path);
	x->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->lfd < 0 || bind(x->lfd, (struct sockaddr *)&sa,
	    sizeof(sa)) < 0 || listen(x->lfd, 16) < 0 ||
	    pipe2(x->stop, O_CLOEXEC) < 0 ||
	    pthread_create(&x->thread, NULL, serve, x) != 0) {
		if (x->lfd >= 0)
			close(x->lfd);
		free(x->path);
		free(x);
		return NULL;
	}
	return x;
}

int
xsd_mini_write(struct xsd_mini *x, const char *path, const char *value)
{
	int r;

	pthread_mutex_lock(&x->lock);
	r = store(x, path, value, strlen(value));
	if (r == 0)
		fire(x, path);
	pthread_mutex_unlock(&x->lock);
	return r;
}

char *
xsd_mini_read(struct xsd_mini *x, const char *path)
{
	char *v = NULL;
	int i;

	pthread_mutex_lock(&x->lock);
	i = find(x, path);
	if (i >= 0)
		v = strdup(x->n[i].value ? x->n[i].value : "");
	pthread_mutex_unlock(&x->lock);
	return v;
}

void
xsd_mini_rm(struct xsd_mini *x, const char *path)
{
	pthread_mutex_lock(&x->lock);
	rm(x, path);
	fire(x, path);
	pthread_mutex_unlock(&x->lock);
}

void
xsd_mini_fire(struct xsd_mini *x, const char *special)
{
	pthread_mutex_lock(&x->lock);
	fire(x, special);
	pthread_mutex_unlock(&x->lock);
}

unsigned long
xsd_mini_requests(struct xsd_mini *x)
{
	return __atomic_load_n(&x->requests, __ATOMIC_RELAXED);
}

void
xsd_mini_stop(struct xsd_mini *x)
{
	int i;

	if (x == NULL)
		return;
	if (write(x->stop[1], "x", 1) != 1)
		abort();
	pthread_join(x->thread, NULL);
	for (i = 0; i < MAX_CLIENTS; i++)
		if (x->c[i].fd >= 0)
			close(x->c[i].fd);
	for (i = 0; i < x->nw; i++) {
		free(x->w[i].path);
		free(x->w[i].token);
	}
	for (i = 0; i < x->nn; i++) {
		free(x->n[i].path);
		free(x->n[i].value);
	}
	pthread_mutex_destroy(&x->lock);
	close(x->lfd);
	close(x->stop[0]);
	close(x->stop[1]);
	unlink(x->path);
	free(x->path);
	free(x);
}
