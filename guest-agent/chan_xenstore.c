/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The xenstore channel: each report's values as keys under the domain's
 * own data/mm/ (docs/protocol.md, "Guest agent channels"), written in one
 * transaction that is retried when xenstored says EAGAIN. Only the keys
 * whose value changed are written, agent_seq last, so the host watches
 * one key. This is the only file of the agent that includes xenstore.h.
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
#define KEYS_MAX	32

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

	agent_sample_foreach(s, add_kv_cb, &l);
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
