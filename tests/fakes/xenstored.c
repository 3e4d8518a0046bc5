/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xenstored test double; see xenstored.h. One thread polls the
 * listening socket, the clients and a wake-up pipe; one mutex guards the
 * tree, which is a flat array of absolute paths (tests store little).
 * Conflicts are found as C xenstored finds them: each node carries the
 * generation of its last change (a child added or removed changes its
 * parent), a transaction notes the generation of every node it reads or
 * writes, and its commit replays its changes only if none of those nodes
 * changed meanwhile. A transaction works on a copy of the tree, so it
 * also sees nothing committed after its start.
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

#include "xenstored.h"

#define CONN_MAX	16
#define TX_MAX		64
#define WATCH_MAX	64
#define MSG_MAX		(sizeof(struct xsd_sockmsg) + XENSTORE_PAYLOAD_MAX)

struct node {
	char *path;
	char *value;
	size_t len;
	unsigned long gen;	/* of its last change; 0 inside a tx copy */
};

struct tree {
	struct node *n;
	size_t count, cap;
};

struct conn {
	int fd;			/* -1: free slot */
	uint8_t in[MSG_MAX];
	size_t inlen;
};

/* A change a transaction made, replayed on the tree at its commit. */
struct op {
	uint32_t type;		/* XS_WRITE, XS_MKDIR or XS_RM */
	char *path;
	char *value;
	size_t len;
};

/* A node a transaction read or wrote, and its generation then (0: absent). */
struct seen {
	char *path;
	unsigned long gen;
};

struct tx {
	uint32_t id;		/* 0: free slot */
	int conn;
	struct tree t;		/* its copy, with its own changes */
	struct op *ops;
	size_t nops;
	struct seen *seen;
	size_t nseen;
};

struct watch {
	int conn;		/* -1: free slot */
	char *path;		/* as given */
	char *abs;
	char *token;
};

struct xsd_fake {
	pthread_t thread;
	pthread_mutex_t lock;
	int lfd, wake[2];
	char path[108];
	char home[64];
	struct tree tree;
	unsigned long gen;
	struct conn conns[CONN_MAX];
	struct tx txs[TX_MAX];
	struct watch watches[WATCH_MAX];
	uint32_t next_tx;
	unsigned fail_commits;
	unsigned long requests[XS_TYPE_COUNT];
};

/* Tree */

static int
tree_find(const struct tree *t, const char *path)
{
	for (size_t i = 0; i < t->count; i++)
		if (strcmp(t->n[i].path, path) == 0)
			return (int)i;
	return -1;
}

/* The index of path's parent, or -1 (none, or "/"'s). */
static int
tree_parent(const struct tree *t, const char *path)
{
	char *parent = strdup(path), *slash;
	int i = -1;

	slash = parent != NULL ? strrchr(parent, '/') : NULL;
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		i = tree_find(t, parent);
	} else if (slash != NULL && path[1] != '\0') {
		i = tree_find(t, "/");
	}
	free(parent);
	return i;
}

/* Set path to value (copied), its generation to gen; a new node changes
 * its parent too. With keep, an existing node stays as it is. */
static int
tree_set(struct tree *t, const char *path, const char *value, size_t len,
    bool keep, unsigned long gen)
{
	char *parent, *slash;
	int i = tree_find(t, path);
	char *v;

	if (i >= 0 && keep)
		return 0;
	v = malloc(len + 1);
	if (v == NULL)
		return -ENOMEM;
	memcpy(v, value, len);
	v[len] = '\0';
	if (i >= 0) {
		free(t->n[i].value);
		t->n[i].value = v;
		t->n[i].len = len;
		t->n[i].gen = gen;
		return 0;
	}
	/* Missing parents appear empty, as in xenstored. */
	parent = strdup(path);
	slash = parent != NULL ? strrchr(parent, '/') : NULL;
	if (slash != NULL && slash != parent) {
		*slash = '\0';
		tree_set(t, parent, "", 0, true, gen);
	}
	free(parent);
	i = tree_parent(t, path);
	if (i >= 0)
		t->n[i].gen = gen;
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		struct node *n = realloc(t->n, cap * sizeof(*n));

		if (n == NULL) {
			free(v);
			return -ENOMEM;
		}
		t->n = n;
		t->cap = cap;
	}
	t->n[t->count].path = strdup(path);
	t->n[t->count].value = v;
	t->n[t->count].len = len;
	t->n[t->count].gen = gen;
	t->count++;
	return 0;
}

static bool
below(const char *path, const char *top)
{
	size_t n = strlen(top);

	if (strcmp(top, "/") == 0)
		return true;
	return strncmp(path, top, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/');
}

/* Remove path and what is below it; its parent changes (to gen). */
static int
tree_rm(struct tree *t, const char *path, unsigned long gen)
{
	size_t i = 0;
	int p;

	if (tree_find(t, path) < 0)
		return -ENOENT;
	p = tree_parent(t, path);
	if (p >= 0)
		t->n[p].gen = gen;
	while (i < t->count) {
		if (!below(t->n[i].path, path)) {
			i++;
			continue;
		}
		free(t->n[i].path);
		free(t->n[i].value);
		t->n[i] = t->n[--t->count];
	}
	return 0;
}

static void
tree_free(struct tree *t)
{
	for (size_t i = 0; i < t->count; i++) {
		free(t->n[i].path);
		free(t->n[i].value);
	}
	free(t->n);
	memset(t, 0, sizeof(*t));
}

/* A copy of src, generations and all. */
static int
tree_copy(struct tree *dst, const struct tree *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->n = calloc(src->count ? src->count : 1, sizeof(*dst->n));
	if (dst->n == NULL)
		return -ENOMEM;
	dst->cap = src->count ? src->count : 1;
	for (size_t i = 0; i < src->count; i++) {
		struct node *d = &dst->n[i];

		d->path = strdup(src->n[i].path);
		d->value = malloc(src->n[i].len + 1);
		if (d->path == NULL || d->value == NULL) {
			dst->count = i + 1;
			return -ENOMEM;
		}
		memcpy(d->value, src->n[i].value, src->n[i].len + 1);
		d->len = src->n[i].len;
		d->gen = src->n[i].gen;
	}
	dst->count = src->count;
	return 0;
}

/* Paths */

static void
absolute(const struct xsd_fake *f, const char *path, char *buf, size_t size)
{
	size_t n;

	/* "/..." is absolute; "@introduceDomain" and the like are names. */
	if (path[0] == '/' || path[0] == '@')
		snprintf(buf, size, "%s", path);
	else
		snprintf(buf, size, "%s/%s", f->home, path);
	n = strlen(buf);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
}

/* Wire */

static void
send_msg(int fd, uint32_t type, uint32_t req_id, uint32_t tx_id,
    const void *body, size_t len)
{
	struct xsd_sockmsg h = { type, req_id, tx_id, (uint32_t)len };
	uint8_t buf[MSG_MAX];

	if (len > XENSTORE_PAYLOAD_MAX)
		return;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), body, len);
	if (write(fd, buf, sizeof(h) + len) < 0)
		return;		/* the client is gone; poll will say */
}

static const char *
err_name(int err)
{
	for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]);
	    i++)
		if (xsd_errors[i].errnum == err)
			return xsd_errors[i].errstring;
	return "EINVAL";
}

/* Fire the watches on abs and above it, and with below (a removal) those
 * under it too; a special watch ("@...") fires only on its own name. */
static void
fire_watches(struct xsd_fake *f, const char *abs, bool below_too)
{
	char body[XENSTORE_PAYLOAD_MAX];
	size_t hl = strlen(f->home);

	for (int i = 0; i < WATCH_MAX; i++) {
		struct watch *w = &f->watches[i];
		const char *p = abs;
		bool hit;
		int n;

		if (w->conn < 0)
			continue;
		if (abs[0] == '@' || w->abs[0] == '@')
			hit = strcmp(abs, w->abs) == 0;
		else
			hit = below(abs, w->abs) ||
			    (below_too && below(w->abs, abs));
		if (!hit)
			continue;
		/* A relative watch hears relative paths. */
		if (w->path[0] != '/' && strncmp(abs, f->home, hl) == 0 &&
		    abs[hl] == '/')
			p = abs + hl + 1;
		n = snprintf(body, sizeof(body), "%s%c%s", p, '\0', w->token);
		if (n > 0 && (size_t)n < sizeof(body))
			send_msg(f->conns[w->conn].fd, XS_WATCH_EVENT, 0, 0,
			    body, (size_t)n + 1);
	}
}

static struct tx *
find_tx(struct xsd_fake *f, uint32_t id)
{
	for (int i = 0; i < TX_MAX; i++)
		if (f->txs[i].id != 0 && f->txs[i].id == id)
			return &f->txs[i];
	return NULL;
}

static void
tx_free(struct tx *t)
{
	tree_free(&t->t);
	for (size_t i = 0; i < t->nops; i++) {
		free(t->ops[i].path);
		free(t->ops[i].value);
	}
	free(t->ops);
	for (size_t i = 0; i < t->nseen; i++)
		free(t->seen[i].path);
	free(t->seen);
	memset(t, 0, sizeof(*t));
}

/* Note that t reads or writes path, with the generation its copy has:
 * only the first time, before t changes it. */
static int
tx_see(struct tx *t, const char *path)
{
	struct seen *s;
	int i;

	for (size_t k = 0; k < t->nseen; k++)
		if (strcmp(t->seen[k].path, path) == 0)
			return 0;
	s = realloc(t->seen, (t->nseen + 1) * sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	t->seen = s;
	s = &s[t->nseen];
	s->path = strdup(path);
	if (s->path == NULL)
		return -ENOMEM;
	i = tree_find(&t->t, path);
	s->gen = i >= 0 ? t->t.n[i].gen : 0;
	t->nseen++;
	return 0;
}

/* What a request of t touches: the node; for a new node its missing
 * parents and the first one there; for a removal its parent and all
 * below it. */
static int
tx_touch(struct tx *t, uint32_t type, const char *abs)
{
	char path[XENSTORE_ABS_PATH_MAX + 64], *slash;
	int r = tx_see(t, abs);

	snprintf(path, sizeof(path), "%s", abs);
	if (type == XS_WRITE || type == XS_MKDIR) {
		while (r == 0 && tree_find(&t->t, path) < 0 &&
		    (slash = strrchr(path, '/')) != NULL && slash != path) {
			*slash = '\0';
			r = tx_see(t, path);
		}
	} else if (type == XS_RM) {
		for (size_t k = 0; r == 0 && k < t->t.count; k++)
			if (below(t->t.n[k].path, abs))
				r = tx_see(t, t->t.n[k].path);
		slash = strrchr(path, '/');
		if (r == 0 && slash != NULL && slash != path) {
			*slash = '\0';
			r = tx_see(t, path);
		}
	}
	return r;
}

/* Apply a change to the tree and fire its watches. */
static int
apply(struct xsd_fake *f, uint32_t type, const char *abs, const char *value,
    size_t len)
{
	int r;

	if (type == XS_RM)
		r = tree_rm(&f->tree, abs, ++f->gen);
	else
		r = tree_set(&f->tree, abs, value, len, type == XS_MKDIR,
		    ++f->gen);
	if (r == 0)
		fire_watches(f, abs, type == XS_RM);
	return r;
}

/* Note a change t made to its copy, for its commit. */
static void
tx_log(struct tx *t, uint32_t type, const char *abs, const char *value,
    size_t len)
{
	struct op *o = realloc(t->ops, (t->nops + 1) * sizeof(*o));

	if (o == NULL)
		return;
	t->ops = o;
	o = &o[t->nops++];
	o->type = type;
	o->path = strdup(abs);
	o->value = malloc(len + 1);
	if (o->value != NULL)
		memcpy(o->value, value, len);
	o->len = o->value != NULL ? len : 0;
}

/* Commit (or abort) t: EAGAIN when a node it saw has changed since. */
static int
do_commit(struct xsd_fake *f, struct tx *t, bool commit)
{
	int r = 0;

	if (commit && f->fail_commits > 0) {
		f->fail_commits--;
		r = -EAGAIN;
	}
	for (size_t k = 0; commit && r == 0 && k < t->nseen; k++) {
		int i = tree_find(&f->tree, t->seen[k].path);

		if ((i >= 0 ? f->tree.n[i].gen : 0) != t->seen[k].gen)
			r = -EAGAIN;
	}
	for (size_t k = 0; commit && r == 0 && k < t->nops; k++)
		apply(f, t->ops[k].type, t->ops[k].path,
		    t->ops[k].value != NULL ? t->ops[k].value : "",
		    t->ops[k].len);
	tx_free(t);
	return r;
}

/* Handle one request of conn ci; the lock is held. */
static void
handle(struct xsd_fake *f, int ci, const struct xsd_sockmsg *h,
    const char *body)
{
	int fd = f->conns[ci].fd;
	struct tree *tree = &f->tree;
	struct tx *tx = NULL;
	char abs[XENSTORE_ABS_PATH_MAX + 64], out[XENSTORE_PAYLOAD_MAX];
	const char *arg2;
	size_t n1 = strnlen(body, h->len), outlen = 0, len;
	int r = 0, i;

	if (h->type < XS_TYPE_COUNT)
		f->requests[h->type]++;
	if (h->tx_id != 0 && h->type != XS_TRANSACTION_START) {
		tx = find_tx(f, h->tx_id);
		if (tx == NULL) {
			r = -ENOENT;
			goto reply;
		}
		tree = &tx->t;
	}
	arg2 = n1 < h->len ? body + n1 + 1 : body + h->len;
	absolute(f, body, abs, sizeof(abs));
	if (tx != NULL && h->type != XS_TRANSACTION_END &&
	    tx_touch(tx, h->type, abs) < 0) {
		r = -ENOMEM;
		goto reply;
	}

	switch (h->type) {
	case XS_READ:
		i = tree_find(tree, abs);
		if (i < 0) {
			r = -ENOENT;
			break;
		}
		outlen = tree->n[i].len;
		memcpy(out, tree->n[i].value, outlen);
		goto reply_data;
	case XS_WRITE:
	case XS_MKDIR:
	case XS_RM:
		len = h->type == XS_WRITE ? h->len - (size_t)(arg2 - body) : 0;
		if (tx == NULL) {
			r = apply(f, h->type, abs, arg2, len);
			break;
		}
		if (h->type == XS_RM)
			r = tree_rm(tree, abs, 0);
		else
			r = tree_set(tree, abs, arg2, len,
			    h->type == XS_MKDIR, 0);
		if (r == 0)
			tx_log(tx, h->type, abs, arg2, len);
		break;
	case XS_DIRECTORY:
		if (tree_find(tree, abs) < 0) {
			r = -ENOENT;
			break;
		}
		for (size_t k = 0; k < tree->count; k++) {
			const char *p = tree->n[k].path, *base;
			size_t al = strcmp(abs, "/") == 0 ? 0 : strlen(abs);

			if (strncmp(p, abs, al) != 0 || p[al] != '/' ||
			    strchr(p + al + 1, '/') != NULL || p[al + 1] == 0)
				continue;
			base = p + al + 1;
			if (outlen + strlen(base) + 1 > sizeof(out))
				break;
			memcpy(out + outlen, base, strlen(base) + 1);
			outlen += strlen(base) + 1;
		}
		goto reply_data;
	case XS_TRANSACTION_START:
		for (i = 0; i < TX_MAX && f->txs[i].id != 0; i++)
			;
		if (i == TX_MAX) {
			r = -ENOSPC;
			break;
		}
		if (tree_copy(&f->txs[i].t, &f->tree) < 0) {
			tree_free(&f->txs[i].t);
			r = -ENOMEM;
			break;
		}
		f->txs[i].id = ++f->next_tx;
		f->txs[i].conn = ci;
		outlen = (size_t)snprintf(out, sizeof(out), "%u",
		    f->txs[i].id) + 1;
		goto reply_data;
	case XS_TRANSACTION_END:
		if (tx == NULL) {
			r = -ENOENT;
			break;
		}
		r = do_commit(f, tx, body[0] == 'T');
		break;
	case XS_WATCH:
		for (i = 0; i < WATCH_MAX && f->watches[i].conn >= 0; i++)
			;
		if (i == WATCH_MAX) {
			r = -ENOSPC;
			break;
		}
		f->watches[i].conn = ci;
		f->watches[i].path = strdup(body);
		f->watches[i].abs = strdup(abs);
		f->watches[i].token = strndup(arg2,
		    h->len - (size_t)(arg2 - body));
		send_msg(fd, XS_WATCH, h->req_id, h->tx_id, "OK", 3);
		/* xenstored fires every new watch once. */
		fire_watches(f, abs, false);
		return;
	case XS_UNWATCH:
		r = -ENOENT;
		for (i = 0; i < WATCH_MAX; i++) {
			struct watch *w = &f->watches[i];

			if (w->conn != ci || strcmp(w->path, body) != 0 ||
			    strncmp(w->token, arg2, strlen(w->token)) != 0)
				continue;
			free(w->path);
			free(w->abs);
			free(w->token);
			memset(w, 0, sizeof(*w));
			w->conn = -1;
			r = 0;
			break;
		}
		break;
	case XS_GET_DOMAIN_PATH:
		outlen = (size_t)snprintf(out, sizeof(out),
		    "/local/domain/%s", body) + 1;
		goto reply_data;
	default:
		r = -ENOSYS;
		break;
	}
reply:
	if (r < 0) {
		const char *e = err_name(-r);

		send_msg(fd, XS_ERROR, h->req_id, h->tx_id, e, strlen(e) + 1);
	} else {
		send_msg(fd, h->type, h->req_id, h->tx_id, "OK", 3);
	}
	return;
reply_data:
	send_msg(fd, h->type, h->req_id, h->tx_id, out, outlen);
}

static void
drop_conn(struct xsd_fake *f, int ci)
{
	for (int i = 0; i < WATCH_MAX; i++) {
		struct watch *w = &f->watches[i];

		if (w->conn != ci)
			continue;
		free(w->path);
		free(w->abs);
		free(w->token);
		memset(w, 0, sizeof(*w));
		w->conn = -1;
	}
	for (int i = 0; i < TX_MAX; i++)
		if (f->txs[i].id != 0 && f->txs[i].conn == ci)
			tx_free(&f->txs[i]);
	close(f->conns[ci].fd);
	f->conns[ci].fd = -1;
	f->conns[ci].inlen = 0;
}

/* Read from conn ci and handle each whole request. */
static void
serve_conn(struct xsd_fake *f, int ci)
{
	struct conn *c = &f->conns[ci];
	struct xsd_sockmsg h;
	char body[XENSTORE_PAYLOAD_MAX + 1];
	ssize_t n;

	n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
	if (n <= 0) {
		drop_conn(f, ci);
		return;
	}
	c->inlen += (size_t)n;
	while (c->inlen >= sizeof(h)) {
		memcpy(&h, c->in, sizeof(h));
		if (h.len > XENSTORE_PAYLOAD_MAX) {
			drop_conn(f, ci);
			return;
		}
		if (c->inlen < sizeof(h) + h.len)
			return;
		memcpy(body, c->in + sizeof(h), h.len);
		body[h.len] = '\0';
		handle(f, ci, &h, body);
		c->inlen -= sizeof(h) + h.len;
		memmove(c->in, c->in + sizeof(h) + h.len, c->inlen);
	}
}

static void *
serve(void *arg)
{
	struct xsd_fake *f = arg;
	struct pollfd p[CONN_MAX + 2];
	int idx[CONN_MAX + 2];

	for (;;) {
		int np = 0, fd;

		p[np++] = (struct pollfd){ .fd = f->wake[0], .events = POLLIN };
		p[np++] = (struct pollfd){ .fd = f->lfd, .events = POLLIN };
		for (int i = 0; i < CONN_MAX; i++) {
			if (f->conns[i].fd < 0)
				continue;
			idx[np] = i;
			p[np++] = (struct pollfd){ .fd = f->conns[i].fd,
			    .events = POLLIN };
		}
		if (poll(p, (nfds_t)np, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[0].revents != 0)
			break;
		pthread_mutex_lock(&f->lock);
		if (p[1].revents & POLLIN) {
			fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
			for (int i = 0; fd >= 0 && i < CONN_MAX; i++) {
				if (f->conns[i].fd < 0) {
					f->conns[i].fd = fd;
					fd = -1;
				}
			}
			if (fd >= 0)
				close(fd);	/* too many clients */
		}
		for (int k = 2; k < np; k++)
			if (p[k].revents != 0)
				serve_conn(f, idx[k]);
		pthread_mutex_unlock(&f->lock);
	}
	return NULL;
}

struct xsd_fake *
xsd_fake_start(const char *dir, unsigned domid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct xsd_fake *f = calloc(1, sizeof(*f));
	int e;

	if (f == NULL)
		return NULL;
	f->lfd = f->wake[0] = f->wake[1] = -1;
	for (int i = 0; i < CONN_MAX; i++)
		f->conns[i].fd = -1;
	for (int i = 0; i < WATCH_MAX; i++)
		f->watches[i].conn = -1;
	snprintf(f->home, sizeof(f->home), "/local/domain/%u", domid);
	if ((size_t)snprintf(f->path, sizeof(f->path), "%s/socket", dir) >=
	    sizeof(f->path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
	pthread_mutex_init(&f->lock, NULL);
	tree_set(&f->tree, "/", "", 0, false, ++f->gen);
	tree_set(&f->tree, f->home, "", 0, false, ++f->gen);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)) <
	    0 || listen(f->lfd, 8) < 0 || pipe2(f->wake, O_CLOEXEC) < 0)
		goto fail;
	e = pthread_create(&f->thread, NULL, serve, f);
	if (e != 0) {
		errno = e;
		goto fail;
	}
	return f;
fail:
	e = errno;
	if (f->lfd >= 0)
		close(f->lfd);
	if (f->wake[0] >= 0) {
		close(f->wake[0]);
		close(f->wake[1]);
	}
	tree_free(&f->tree);
	free(f);
	errno = e;
	return NULL;
}

const char *
xsd_fake_path(const struct xsd_fake *f)
{
	return f->path;
}

char *
xsd_fake_read(struct xsd_fake *f, const char *path)
{
	char abs[XENSTORE_ABS_PATH_MAX + 64], *v = NULL;
	int i;

	absolute(f, path, abs, sizeof(abs));
	pthread_mutex_lock(&f->lock);
	i = tree_find(&f->tree, abs);
	if (i >= 0)
		v = strdup(f->tree.n[i].value);
	pthread_mutex_unlock(&f->lock);
	if (i < 0)
		errno = ENOENT;
	return v;
}

int
xsd_fake_write(struct xsd_fake *f, const char *path, const char *value)
{
	char abs[XENSTORE_ABS_PATH_MAX + 64];
	int r;

	absolute(f, path, abs, sizeof(abs));
	pthread_mutex_lock(&f->lock);
	r = apply(f, XS_WRITE, abs, value, strlen(value));
	pthread_mutex_unlock(&f->lock);
	return r;
}

int
xsd_fake_rm(struct xsd_fake *f, const char *path)
{
	char abs[XENSTORE_ABS_PATH_MAX + 64];
	int r;

	absolute(f, path, abs, sizeof(abs));
	pthread_mutex_lock(&f->lock);
	r = apply(f, XS_RM, abs, "", 0);
	pthread_mutex_unlock(&f->lock);
	return r;
}

void
xsd_fake_fire(struct xsd_fake *f, const char *special)
{
	pthread_mutex_lock(&f->lock);
	fire_watches(f, special, false);
	pthread_mutex_unlock(&f->lock);
}

unsigned
xsd_fake_count_nodes(struct xsd_fake *f, const char *path)
{
	char abs[XENSTORE_ABS_PATH_MAX + 64];
	unsigned n = 0;

	absolute(f, path, abs, sizeof(abs));
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->tree.count; i++)
		n += below(f->tree.n[i].path, abs);
	pthread_mutex_unlock(&f->lock);
	return n;
}

void
xsd_fake_fail_commits(struct xsd_fake *f, unsigned n)
{
	pthread_mutex_lock(&f->lock);
	f->fail_commits = n;
	pthread_mutex_unlock(&f->lock);
}

unsigned long
xsd_fake_requests(struct xsd_fake *f, uint32_t type)
{
	unsigned long n = 0;

	pthread_mutex_lock(&f->lock);
	if (type < XS_TYPE_COUNT)
		n = f->requests[type];
	pthread_mutex_unlock(&f->lock);
	return n;
}

void
xsd_fake_stop(struct xsd_fake *f)
{
	if (f == NULL)
		return;
	if (write(f->wake[1], "x", 1) == 1)
		pthread_join(f->thread, NULL);
	for (int i = 0; i < CONN_MAX; i++)
		if (f->conns[i].fd >= 0)
			drop_conn(f, i);
	for (int i = 0; i < TX_MAX; i++)
		if (f->txs[i].id != 0)
			tx_free(&f->txs[i]);
	close(f->lfd);
	close(f->wake[0]);
	close(f->wake[1]);
	unlink(f->path);
	tree_free(&f->tree);
	pthread_mutex_destroy(&f->lock);
	free(f);
}
