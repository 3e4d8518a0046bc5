/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xenstore channel: each report's values as keys under the domain's
 * own data/mm/ (docs/protocol.md, "Guest agent channels"), written in one
 * transaction that is retried when xenstored says EAGAIN. Only the keys
 * whose value changed are written, agent_seq last, so the host watches
 * one key. The other way, a watch on one key the host writes (the reclaim
 * requests of control/mm/reclaim). This is the only file of the agent
 * that includes xenstore.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "guest-agent.h"
#include "log.h"

/* Transactions tried per report before it is dropped. */
#define TX_TRIES	8
/* meminfo, vmstat and psi (23), 3 a cold bucket, 4 of reclaim. */
#define KEYS_MAX	48
/* A watch whose connection broke is set again after this. */
#define WATCH_RETRY_MS	1000

struct kv {
	char key[48];		/* below the prefix: "meminfo/total_kib" */
	char val[32];
};

struct chan_xenstore {
	struct agent_chan ch;
	struct xs_handle *xs;
	char *prefix;
	struct kv last[KEYS_MAX];	/* what xenstore holds, when synced */
	size_t nlast;
	bool synced;			/* last[] is in xenstore */
	int logged_err;
};

struct kv_list {
	struct kv *kv;
	size_t n;
};

static int
add_kv_cb(const struct agent_value *v, void *arg)
{
	struct kv_list *l = arg;
	struct kv *e;

	if (l->n == KEYS_MAX)
		return -ENOSPC;
	e = &l->kv[l->n++];
	snprintf(e->key, sizeof(e->key), "%s/%s", v->group, v->name);
	if (v->is_pct)
		snprintf(e->val, sizeof(e->val), "%.2f", v->pct);
	else
		snprintf(e->val, sizeof(e->val), "%llu",
		    (unsigned long long)v->u);
	return 0;
}

static int
add_u64(struct kv_list *l, const char *key, uint64_t u)
{
	struct agent_value v = { .u = u };
	const char *slash = strrchr(key, '/');
	char group[32];

	/* "cold/0/idle_ms": group "cold/0", name "idle_ms". */
	snprintf(group, sizeof(group), "%.*s", (int)(slash - key), key);
	v.group = group;
	v.name = slash + 1;
	return add_kv_cb(&v, l);
}

/* The cold buckets and the reclaim status, as chan_virtio_frame() puts
 * them in GuestStats.cold and .reclaim. */
static int
add_cold_reclaim(struct kv_list *l, const struct agent_sample *s)
{
	struct agent_value v = { .group = "reclaim", .name = "stall_pct",
	    .is_pct = true, .pct = s->reclaim_stall_pct };
	char key[32];
	int r = 0;

	for (size_t i = 0; i < s->cold.n && i < MSG_COLD_MAX && r == 0;
	    i++) {
		snprintf(key, sizeof(key), "cold/%zu/idle_ms", i);
		r = add_u64(l, key, s->cold.b[i].idle_ms);
		snprintf(key, sizeof(key), "cold/%zu/anon_kib", i);
		r = r != 0 ? r : add_u64(l, key, s->cold.b[i].anon_kib);
		snprintf(key, sizeof(key), "cold/%zu/file_kib", i);
		r = r != 0 ? r : add_u64(l, key, s->cold.b[i].file_kib);
	}
	if (!s->has_reclaim || r != 0)
		return r;
	if ((r = add_u64(l, "reclaim/seq", s->reclaim_seq)) != 0 ||
	    (r = add_u64(l, "reclaim/reclaimed_kib", s->reclaim_kib)) != 0 ||
	    (r = add_u64(l, "reclaim/state",
	    (uint64_t)s->reclaim_state)) != 0)
		return r;
	return add_kv_cb(&v, l);
}

static const struct kv *
find_kv(const struct kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].key, key) == 0)
			return &kv[i];
	return NULL;
}

static bool
put(struct chan_xenstore *c, xs_transaction_t t, const char *key,
    const char *val)
{
	char path[256];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", c->prefix, key) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return false;
	}
	if (val == NULL)
		return xs_rm(c->xs, t, path) || errno == ENOENT;
	return xs_write(c->xs, t, path, val, strlen(val));
}

/* One attempt: returns 0, -EAGAIN (conflict: try again) or -errno. */
static int
write_tx(struct chan_xenstore *c, const struct kv *kv, size_t n,
    const struct agent_sample *s)
{
	xs_transaction_t t;
	char num[32];
	size_t i;

	t = xs_transaction_start(c->xs);
	if (t == XBT_NULL)
		return errno != 0 ? -errno : -EIO;
	if (!c->synced) {
		/* Start clean: a previous agent may have left other keys. */
		if (!xs_rm(c->xs, t, c->prefix) && errno != ENOENT)
			goto fail;
		if (!put(c, t, "version", "1") ||
		    !put(c, t, "vm_id", s->vm_id))
			goto fail;
	}
	for (i = 0; i < n; i++) {
		const struct kv *old = c->synced ?
		    find_kv(c->last, c->nlast, kv[i].key) : NULL;

		if (old != NULL && strcmp(old->val, kv[i].val) == 0)
			continue;
		if (!put(c, t, kv[i].key, kv[i].val))
			goto fail;
	}
	for (i = 0; c->synced && i < c->nlast; i++)
		if (find_kv(kv, n, c->last[i].key) == NULL &&
		    !put(c, t, c->last[i].key, NULL))
			goto fail;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)s->time_ms);
	if (!put(c, t, "time_ms", num))
		goto fail;
	snprintf(num, sizeof(num), "%llu", (unsigned long long)s->seq);
	if (!put(c, t, "agent_seq", num))
		goto fail;
	if (!xs_transaction_end(c->xs, t, false))
		return errno != 0 ? -errno : -EIO;
	return 0;
fail:
	i = (size_t)errno;
	xs_transaction_end(c->xs, t, true);
	return i != 0 ? -(int)i : -EIO;
}

static int
xenstore_send(struct agent_chan *ch, const struct agent_sample *s)
{
	struct chan_xenstore *c = (struct chan_xenstore *)ch;
	struct kv kv[KEYS_MAX];
	struct kv_list l = { kv, 0 };
	int r = 0, tries;

	if (agent_sample_foreach(s, add_kv_cb, &l) == 0)
		add_cold_reclaim(&l, s);
	if (c->xs == NULL) {
		c->xs = xs_open(0);
		if (c->xs == NULL) {
			r = -errno;
			goto fail;
		}
		c->synced = false;
	}
	for (tries = 0; tries < TX_TRIES; tries++) {
		r = write_tx(c, kv, l.n, s);
		if (r != -EAGAIN)
			break;
		log_debug("xenstore: transaction conflict, retrying");
	}
	if (r < 0)
		goto fail;
	memcpy(c->last, kv, l.n * sizeof(kv[0]));
	c->nlast = l.n;
	c->synced = true;
	if (c->logged_err != 0)
		log_info("xenstore: reports flow again");
	c->logged_err = 0;
	return 0;
fail:
	if (r != c->logged_err) {
		errno = -r;
		log_warn("xenstore: report %llu not written",
		    (unsigned long long)s->seq);
		c->logged_err = r;
	}
	/* After anything but a conflict, reconnect at the next report. */
	if (r != -EAGAIN) {
		xs_close(c->xs);
		c->xs = NULL;
	}
	c->synced = false;
	return r;
}

static void
xenstore_free(struct agent_chan *ch)
{
	struct chan_xenstore *c = (struct chan_xenstore *)ch;

	xs_close(c->xs);
	free(c->prefix);
	free(c);
}

struct agent_chan *
chan_xenstore_new(const char *prefix)
{
	struct chan_xenstore *c = calloc(1, sizeof(*c));
	int e;

	if (c == NULL)
		return NULL;
	c->ch.name = "xenstore";
	c->ch.send = xenstore_send;
	c->ch.free = xenstore_free;
	c->prefix = strdup(prefix);
	c->xs = xs_open(0);
	if (c->prefix == NULL || c->xs == NULL) {
		e = c->prefix == NULL ? ENOMEM : errno;
		xenstore_free(&c->ch);
		errno = e;
		return NULL;
	}
	return &c->ch;
}

/* ---- a key the host writes ---- */

struct chan_xenstore_watch {
	uv_loop_t *loop;
	struct xs_handle *xs;	/* NULL while broken */
	uv_poll_t *poll;
	uv_timer_t *retry;
	char *key;
	void (*cb)(const char *value, size_t len, bool initial, void *arg);
	void *arg;
	char *last;		/* the value last seen; NULL: absent */
	size_t last_len;
	bool seen;		/* a value (or its absence) was read */
	bool logged;		/* the connection's failure was logged */
};

static void
free_handle_cb(uv_handle_t *h)
{
	free(h);
}

/* Read the key; call back when it differs from the last value seen. */
static void
watch_read(struct chan_xenstore_watch *w)
{
	unsigned len = 0;
	char *v = xs_read(w->xs, XBT_NULL, w->key, &len);
	bool initial = !w->seen;

	if (v == NULL && errno != ENOENT) {
		log_debug("xenstore: read \"%s\": %s", w->key,
		    strerror(errno));
		return;
	}
	if (w->seen && (v == NULL ? w->last == NULL : w->last != NULL &&
	    len == w->last_len && memcmp(v, w->last, len) == 0)) {
		free(v);
		return;		/* the watch fired, the value is the same */
	}
	free(w->last);
	w->last = v;
	w->last_len = len;
	w->seen = true;
	w->cb(v, len, initial, w->arg);
}

static void watch_close(struct chan_xenstore_watch *w);
static int watch_open(struct chan_xenstore_watch *w);

static void
watch_retry_cb(uv_timer_t *t)
{
	struct chan_xenstore_watch *w = t->data;

	if (watch_open(w) < 0)
		uv_timer_start(w->retry, watch_retry_cb, WATCH_RETRY_MS, 0);
}

static void
watch_poll_cb(uv_poll_t *p, int status, int events)
{
	struct chan_xenstore_watch *w = p->data;
	bool fired = false;
	char **ev;

	(void)events;
	while (status == 0 && (ev = xs_check_watch(w->xs)) != NULL) {
		fired = true;
		free(ev);
	}
	if (status < 0 || errno != EAGAIN) {
		/* xenstored went away: its watches went with it. */
		if (!w->logged)
			log_warnx("xenstore: watch on \"%s\" lost, setting "
			    "it again", w->key);
		w->logged = true;
		watch_close(w);
		uv_timer_start(w->retry, watch_retry_cb, WATCH_RETRY_MS, 0);
		return;
	}
	if (fired)
		watch_read(w);
}

static void
watch_close(struct chan_xenstore_watch *w)
{
	if (w->poll != NULL) {
		uv_close((uv_handle_t *)w->poll, free_handle_cb);
		w->poll = NULL;
	}
	if (w->xs != NULL)
		xs_close(w->xs);
	w->xs = NULL;
}

/* Connect, watch, and read the key once (a new watch fires at once in
 * xenstored too, but the value is wanted now). 0 or -errno. */
static int
watch_open(struct chan_xenstore_watch *w)
{
	int fd, r;

	w->xs = xs_open(0);
	if (w->xs == NULL)
		return errno != 0 ? -errno : -EIO;
	if (!xs_watch(w->xs, w->key, "mm")) {
		r = errno != 0 ? -errno : -EIO;
		goto fail;
	}
	fd = xs_fileno(w->xs);
	w->poll = malloc(sizeof(*w->poll));
	if (fd < 0 || w->poll == NULL ||
	    uv_poll_init(w->loop, w->poll, fd) < 0) {
		free(w->poll);
		w->poll = NULL;
		r = -EIO;
		goto fail;
	}
	w->poll->data = w;
	uv_poll_start(w->poll, UV_READABLE, watch_poll_cb);
	if (w->logged)
		log_info("xenstore: watching \"%s\" again", w->key);
	w->logged = false;
	watch_read(w);
	return 0;
fail:
	xs_close(w->xs);
	w->xs = NULL;
	return r;
}

struct chan_xenstore_watch *
chan_xenstore_watch_new(uv_loop_t *loop, const char *key,
    void (*cb)(const char *value, size_t len, bool initial, void *arg),
    void *arg)
{
	struct chan_xenstore_watch *w = calloc(1, sizeof(*w));
	int r = -ENOMEM;

	if (w == NULL)
		return NULL;
	w->loop = loop;
	w->cb = cb;
	w->arg = arg;
	w->key = strdup(key);
	w->retry = malloc(sizeof(*w->retry));
	if (w->key == NULL || w->retry == NULL) {
		free(w->retry);
		w->retry = NULL;
		goto fail;
	}
	uv_timer_init(loop, w->retry);
	w->retry->data = w;
	r = watch_open(w);
	if (r < 0)
		goto fail;
	return w;
fail:
	chan_xenstore_watch_free(w);
	errno = -r;
	return NULL;
}

void
chan_xenstore_watch_free(struct chan_xenstore_watch *w)
{
	if (w == NULL)
		return;
	watch_close(w);
	if (w->retry != NULL)
		uv_close((uv_handle_t *)w->retry, free_handle_cb);
	free(w->key);
	free(w->last);
	free(w);
}

bool
chan_xenstore_detect(void)
{
	char buf[16] = "";
	FILE *f;

	if (access("/proc/xen", F_OK) == 0)
		return true;
	f = fopen("/sys/hypervisor/type", "re");
	if (f == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	return strncmp(buf, "xen", 3) == 0;
}
